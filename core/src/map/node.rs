//! Trie node payloads, byte by byte (docs/FORMAT.md, "Map nodes").
//!
//! ```text
//! branch:    [datamap u64 | nodemap u64 | child u64 × C | pair offset u32 × D | pairs]
//! collision: [count u32 | 0u32 | pair offset u32 × N | pairs (sorted by key)]
//! pair:      [key_len u16 | flags u16 | value_len u32 | key | value, or value entry u64]
//! ```
//!
//! A branch holds its slots densely: slot `i` is a pair when bit `i` of `datamap` is set
//! (the pair's rank among the set bits picks its offset), a child node when bit `i` of
//! `nodemap` is. Reads borrow pairs straight out of the node's bytes; writes copy a
//! node's bytes into a [`NodeBuf`] and edit them in place.

use alloc::vec::Vec;

use super::trie::NodeRef;
use crate::Error;
use crate::error::Corrupt;

/// Bits of the hash a level consumes: 64 slots a branch.
pub(crate) const BITS: u32 = 6;
/// Depth at which the 128-bit hash has no whole chunk left: nodes there are collision
/// nodes.
pub(crate) const MAX_DEPTH: u32 = 128 / BITS;
/// Longest key the format holds (its length is a `u16`).
pub const MAX_KEY_LEN: usize = u16::MAX as usize;

const BRANCH_FIXED: usize = 16;
const COLLISION_FIXED: usize = 8;
const PAIR_HEADER: usize = 8;
/// Room a node being changed allocates beyond its bytes: a few slots' worth, so that
/// most changes to it do not reallocate.
const ROOM: usize = 128;
const FLAG_VALUE_REF: u16 = 1;

/// The slot index of `hash` at `depth`: bits `6·depth .. 6·depth + 6` of the 128-bit
/// hash, low half first.
#[inline]
pub(crate) fn chunk(hash: [u64; 2], depth: u32) -> usize {
    let bit = depth * BITS;
    let v = if bit + BITS <= 64 {
        hash[0] >> bit
    } else if bit >= 64 {
        hash[1] >> (bit - 64)
    } else {
        (hash[0] >> bit) | (hash[1] << (64 - bit))
    };
    (v & 63) as usize
}

#[inline]
fn rd_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[inline]
fn rd_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A value as a pair stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueRef<'a> {
    /// The bytes, inside the node.
    Inline(&'a [u8]),
    /// A value entry at `offset` holding `len` bytes.
    Entry { offset: u64, len: u32 },
}

/// A key and its value, borrowed from a node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PairRef<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) value: ValueRef<'a>,
}

/// Reads the pair starting at `at` in `payload`. Out of line on Arm, where the lookup
/// shares the one copy the node readers call (firmware: 108 bytes); inlined elsewhere.
#[cfg_attr(not(target_arch = "arm"), inline)]
#[cfg_attr(target_arch = "arm", inline(never))]
fn pair_at(payload: &[u8], at: usize, node: u64) -> Result<PairRef<'_>, Error> {
    let bad = || Error::corrupted(node, Corrupt::PairRunsPastNode);
    // key_len u16 | flags u16 | value_len u32, read as one word.
    let head = rd_u64(payload, at).ok_or_else(bad)?;
    let klen = (head & 0xffff) as usize;
    let flags = (head >> 16) as u16;
    let vlen = (head >> 32) as u32;
    let kstart = at + PAIR_HEADER;
    let key = payload.get(kstart..kstart + klen).ok_or_else(bad)?;
    let vstart = kstart + klen;
    let value = match flags {
        0 => ValueRef::Inline(
            payload
                // Checked: on a 32-bit target a forged length could wrap the sum.
                .get(vstart..vstart.checked_add(vlen as usize).ok_or_else(bad)?)
                .ok_or_else(bad)?,
        ),
        FLAG_VALUE_REF => ValueRef::Entry {
            offset: rd_u64(payload, vstart).ok_or_else(bad)?,
            len: vlen,
        },
        _ => return Err(Error::corrupted(node, Corrupt::UnknownPairFlags)),
    };
    Ok(PairRef { key, value })
}

/// A branch node's payload, borrowed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Branch<'a> {
    pub(crate) datamap: u64,
    pub(crate) nodemap: u64,
    payload: &'a [u8],
    /// Offset of the node, for error reports.
    at: u64,
}

/// What a branch holds at a slot.
pub(crate) enum SlotRef<'a> {
    Empty,
    Pair(PairRef<'a>),
    Child(u64),
}

/// Bits set in `x`: a branch's rank arithmetic. Out of line on Arm: Cortex-M has no
/// population-count instruction, and each inlined copy of the bit-twiddling costs
/// firmware about 40 bytes; elsewhere it stays inlined.
#[cfg_attr(target_arch = "arm", inline(never))]
fn ones(x: u64) -> usize {
    x.count_ones() as usize
}

impl<'a> Branch<'a> {
    pub(crate) fn parse(payload: &'a [u8], at: u64) -> Result<Self, Error> {
        let datamap = rd_u64(payload, 0).ok_or(Error::corrupted(at, Corrupt::BranchTooShort))?;
        let nodemap = rd_u64(payload, 8).ok_or(Error::corrupted(at, Corrupt::BranchTooShort))?;
        if datamap & nodemap != 0 {
            return Err(Error::corrupted(at, Corrupt::BranchSlotIsBothPairAndChild));
        }
        let fixed = BRANCH_FIXED + 8 * ones(nodemap) + 4 * ones(datamap);
        if payload.len() < fixed {
            return Err(Error::corrupted(at, Corrupt::BranchTablesRunPastEnd));
        }
        Ok(Branch {
            datamap,
            nodemap,
            payload,
            at,
        })
    }

    fn children_start(&self) -> usize {
        BRANCH_FIXED
    }

    fn offsets_start(&self) -> usize {
        BRANCH_FIXED + 8 * ones(self.nodemap)
    }

    /// The child node at rank `rank` among the children.
    pub(crate) fn child(&self, rank: usize) -> Result<u64, Error> {
        rd_u64(self.payload, self.children_start() + 8 * rank)
            .ok_or(Error::corrupted(self.at, Corrupt::ChildIndexPastTable))
    }

    /// The pair at rank `rank` among the pairs.
    pub(crate) fn pair(&self, rank: usize) -> Result<PairRef<'a>, Error> {
        let at = rd_u32(self.payload, self.offsets_start() + 4 * rank)
            .ok_or(Error::corrupted(self.at, Corrupt::PairIndexPastTable))?;
        pair_at(self.payload, at as usize, self.at)
    }

    pub(crate) fn pair_count(&self) -> usize {
        ones(self.datamap)
    }

    pub(crate) fn child_count(&self) -> usize {
        ones(self.nodemap)
    }
}

/// Where slot `idx` of a branch points inside its payload: found from the bitmaps alone,
/// so that a batched lookup can prefetch the slot before reading it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SlotAt {
    Empty,
    /// The child offset is the `u64` at this position.
    Child(usize),
    /// The pair's position is the `u32` at this position (an entry of the pair table).
    Pair(usize),
}

/// Locates slot `idx` of the branch whose payload is `payload` (the node at `at`) from
/// its bitmaps.
#[inline(always)]
pub(crate) fn locate_slot(payload: &[u8], at: u64, idx: usize) -> Result<SlotAt, Error> {
    let (Some(datamap), Some(nodemap)) = (rd_u64(payload, 0), rd_u64(payload, 8)) else {
        return Err(Error::corrupted(at, Corrupt::BranchTooShort));
    };
    if datamap & nodemap != 0 {
        return Err(Error::corrupted(at, Corrupt::BranchSlotIsBothPairAndChild));
    }
    let bit = 1u64 << idx;
    let below = bit - 1;
    Ok(if nodemap & bit != 0 {
        SlotAt::Child(BRANCH_FIXED + 8 * ones(nodemap & below))
    } else if datamap & bit != 0 {
        let table = BRANCH_FIXED + 8 * ones(nodemap);
        SlotAt::Pair(table + 4 * ones(datamap & below))
    } else {
        SlotAt::Empty
    })
}

/// The child offset [`locate_slot`] found at `pos`.
#[inline(always)]
pub(crate) fn child_at(payload: &[u8], at: u64, pos: usize) -> Result<u64, Error> {
    rd_u64(payload, pos).ok_or(Error::corrupted(at, Corrupt::ChildIndexPastTable))
}

/// The position of the pair whose table entry [`locate_slot`] found at `pos`.
#[inline(always)]
pub(crate) fn pair_pos(payload: &[u8], at: u64, pos: usize) -> Result<usize, Error> {
    rd_u32(payload, pos)
        .map(|p| p as usize)
        .ok_or(Error::corrupted(at, Corrupt::PairIndexPastTable))
}

/// The pair starting at `pos` of the payload of the node at `at`.
#[inline(always)]
pub(crate) fn pair_in(payload: &[u8], at: u64, pos: usize) -> Result<PairRef<'_>, Error> {
    pair_at(payload, pos, at)
}

/// What slot `idx` of the branch whose payload is `payload` (the node at `at`) holds,
/// reading only the bitmaps and that slot: the lookup path's [`Branch::parse`] and
/// `slot` in one. Every read is bounds-checked, so a damaged node gives an error (or,
/// where its tables lie, a wrong slot that `check` reports), never a panic.
#[inline(always)]
pub(crate) fn branch_slot(payload: &[u8], at: u64, idx: usize) -> Result<SlotRef<'_>, Error> {
    Ok(match locate_slot(payload, at, idx)? {
        SlotAt::Empty => SlotRef::Empty,
        SlotAt::Child(pos) => SlotRef::Child(child_at(payload, at, pos)?),
        SlotAt::Pair(pos) => SlotRef::Pair(pair_at(payload, pair_pos(payload, at, pos)?, at)?),
    })
}

/// A collision node's payload, borrowed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Collision<'a> {
    count: usize,
    payload: &'a [u8],
    at: u64,
}

impl<'a> Collision<'a> {
    pub(crate) fn parse(payload: &'a [u8], at: u64) -> Result<Self, Error> {
        let count =
            rd_u32(payload, 0).ok_or(Error::corrupted(at, Corrupt::CollisionNodeTooShort))?;
        let count = count as usize;
        // Checked: on a 32-bit target a forged count could wrap the product.
        let table = count
            .checked_mul(4)
            .and_then(|t| t.checked_add(COLLISION_FIXED));
        if table.is_none_or(|t| payload.len() < t) {
            return Err(Error::corrupted(at, Corrupt::CollisionTableRunsPastEnd));
        }
        Ok(Collision { count, payload, at })
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn pair(&self, i: usize) -> Result<PairRef<'a>, Error> {
        let at = rd_u32(self.payload, COLLISION_FIXED + 4 * i)
            .ok_or(Error::corrupted(self.at, Corrupt::PairIndexPastTable))?;
        pair_at(self.payload, at as usize, self.at)
    }

    /// Binary search by key bytes.
    pub(crate) fn find(&self, key: &[u8]) -> Result<Option<PairRef<'a>>, Error> {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let p = self.pair(mid)?;
            match p.key.cmp(key) {
                core::cmp::Ordering::Equal => return Ok(Some(p)),
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(None)
    }
}

/// The key of the encoded pair `b` (the pair layout above). Pairs handed to these
/// readers were built by [`PairBuf::new`] or checked by [`NodeBuf::from_node_in`], so the
/// reads cannot fail; they fall back to empty rather than panic.
fn pair_key(b: &[u8]) -> &[u8] {
    b.get(PAIR_HEADER..pair_key_end(b)).unwrap_or(&[])
}

fn pair_key_end(b: &[u8]) -> usize {
    PAIR_HEADER + (rd_u64(b, 0).unwrap_or(0) & 0xffff) as usize
}

/// The value of the encoded pair `b`.
fn pair_value(b: &[u8]) -> ValueRef<'_> {
    let head = rd_u64(b, 0).unwrap_or(0);
    let end = pair_key_end(b);
    if (head >> 16) as u16 == FLAG_VALUE_REF {
        ValueRef::Entry {
            offset: rd_u64(b, end).unwrap_or(0),
            len: (head >> 32) as u32,
        }
    } else {
        ValueRef::Inline(b.get(end..).unwrap_or(&[]))
    }
}

/// The value entry's offset of the encoded pair `b`, if its value has an entry.
pub(crate) fn pair_entry(b: &[u8]) -> Option<u64> {
    match pair_value(b) {
        ValueRef::Entry { offset, .. } => Some(offset),
        ValueRef::Inline(_) => None,
    }
}

/// Points the encoded pair `b` at a value entry of `len` bytes at `offset` (its value
/// must already be in an entry). Changes no length: a node holding the pair keeps its
/// layout.
pub(crate) fn set_pair_entry(b: &mut [u8], offset: u64, len: u32) {
    let end = pair_key_end(b);
    if let Some(x) = b.get_mut(4..8) {
        x.copy_from_slice(&len.to_le_bytes());
    }
    if let Some(x) = b.get_mut(end..end + 8) {
        x.copy_from_slice(&offset.to_le_bytes());
    }
}

/// An owned pair, held as its encoded bytes (the pair layout above: header, key, then
/// the inline value or the value entry's offset). A node takes it in by copying it whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PairBuf(Vec<u8>);

impl PairBuf {
    /// Encodes `key` and `value`. The key's length is checked against
    /// [`MAX_KEY_LEN`] and an inline value's against the node's limits before a pair is
    /// built.
    pub(crate) fn new(key: &[u8], value: ValueRef<'_>) -> Self {
        let (flags, vlen, tail) = match value {
            ValueRef::Inline(v) => (0, v.len() as u32, v),
            ValueRef::Entry { len, .. } => (FLAG_VALUE_REF, len, &[][..]),
        };
        // key_len u16 | flags u16 | value_len u32, written as one word.
        let head = key.len() as u64 | u64::from(flags) << 16 | u64::from(vlen) << 32;
        let mut b = Vec::with_capacity(PAIR_HEADER + key.len() + tail.len().max(8));
        b.extend_from_slice(&head.to_le_bytes());
        b.extend_from_slice(key);
        match value {
            ValueRef::Inline(v) => b.extend_from_slice(v),
            ValueRef::Entry { offset, .. } => b.extend_from_slice(&offset.to_le_bytes()),
        }
        PairBuf(b)
    }

    pub(crate) fn key(&self) -> &[u8] {
        pair_key(&self.0)
    }

    /// The value entry's offset, if the value has an entry of its own.
    pub(crate) fn entry(&self) -> Option<u64> {
        pair_entry(&self.0)
    }
}

/// Where a key goes in a node being changed.
pub(crate) enum Slot {
    /// The branch slot of this index holds a child.
    Child(usize),
    /// The pair at `rank` (counted by the datamap bit `bit`; `0` in a collision node)
    /// sits there; `found` when its key is the one looked for.
    Pair { rank: usize, bit: u64, found: bool },
    /// Nothing: a pair would go at `rank`, counted by `bit`.
    Empty { rank: usize, bit: u64 },
}

/// A node being changed, held as its payload: the very bytes the entry will hold
/// (the layouts above), except that a child slot may hold a transaction's own node id
/// (odd) instead of an offset until the commit writes that child, and that the fixed
/// part (bitmaps or count) is kept in the fields and written into the bytes by
/// [`finish`](Self::finish). Changes edit the bytes in place (a slot in or out is a
/// shift, a bitmap bit and a pass over the pair table), so copying a committed node in
/// is one copy and writing it out needs no encoding.
///
/// The bytes are always canonical: tables in slot order, pairs packed after the pair
/// table in the same order, nothing after the last pair. [`from_node_in`](Self::from_node_in)
/// refuses a committed node that is not, so the arithmetic below never meets a layout
/// it does not expect.
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeBuf {
    bytes: Vec<u8>,
    /// A branch's bitmaps (zero in a collision node).
    pub(crate) datamap: u64,
    pub(crate) nodemap: u64,
    /// Pairs in the node.
    pairs: usize,
    /// Where the pair table starts: after the bitmaps and children of a branch, after
    /// the count of a collision node.
    table: usize,
}

impl NodeBuf {
    /// An empty branch (`branch`) or collision node.
    pub(crate) fn empty(branch: bool) -> Self {
        let table = if branch {
            BRANCH_FIXED
        } else {
            COLLISION_FIXED
        };
        let mut bytes = alloc::vec![0; ROOM];
        bytes.truncate(table);
        NodeBuf {
            bytes,
            table,
            ..NodeBuf::default()
        }
    }

    /// [`from_node_in`](Self::from_node_in) into a new buffer (tests).
    #[cfg(test)]
    pub(crate) fn from_node(node: &NodeRef<'_>) -> Result<Self, Error> {
        Self::from_node_in(node, Vec::new())
    }

    /// Copies a committed node in, checking every pair and that the layout is
    /// canonical, into `bytes`: a spare buffer whose allocation is reused (its contents
    /// are dropped).
    pub(crate) fn from_node_in(node: &NodeRef<'_>, mut bytes: Vec<u8>) -> Result<Self, Error> {
        let (payload, at, mut buf) = match node {
            NodeRef::Branch(b) => (
                b.payload,
                b.at,
                NodeBuf {
                    datamap: b.datamap,
                    nodemap: b.nodemap,
                    pairs: b.pair_count(),
                    table: BRANCH_FIXED + 8 * b.child_count(),
                    ..NodeBuf::default()
                },
            ),
            NodeRef::Collision(c) => (
                c.payload,
                c.at,
                NodeBuf {
                    pairs: c.count,
                    table: COLLISION_FIXED,
                    ..NodeBuf::default()
                },
            ),
        };
        let mut pos = buf.table + 4 * buf.pairs;
        for rank in 0..buf.pairs {
            let p = pair_at(payload, pos, at)?;
            if rd_u32(payload, buf.table + 4 * rank) != Some(pos as u32) {
                return Err(Error::corrupted(at, Corrupt::NodeLayoutIsNotCanonical));
            }
            pos += ref_encoded_len(&p);
        }
        if pos != payload.len() {
            return Err(Error::corrupted(at, Corrupt::NodeLayoutIsNotCanonical));
        }
        bytes.clear();
        bytes.extend_from_slice(payload);
        buf.bytes = bytes;
        Ok(buf)
    }

    /// The node's byte buffer, for reuse.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Writes the fixed part into the bytes and returns the payload as the entry holds
    /// it (once no child slot holds an own id).
    pub(crate) fn finish(&mut self) -> &[u8] {
        let (a, b) = if self.table == COLLISION_FIXED {
            (self.pairs as u64, None)
        } else {
            (self.datamap, Some(self.nodemap))
        };
        self.set_word(0, a);
        if let Some(b) = b {
            self.set_word(8, b);
        }
        &self.bytes
    }

    fn set_word(&mut self, at: usize, v: u64) {
        if let Some(b) = self.bytes.get_mut(at..at + 8) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }

    /// Pairs in the node.
    pub(crate) fn pair_count(&self) -> usize {
        self.pairs
    }

    pub(crate) fn child_count(&self) -> usize {
        ones(self.nodemap)
    }

    fn pair_start(&self, rank: usize) -> usize {
        if rank < self.pairs {
            rd_u32(&self.bytes, self.table + 4 * rank).unwrap_or(0) as usize
        } else {
            self.bytes.len()
        }
    }

    fn pair_range(&self, rank: usize) -> core::ops::Range<usize> {
        self.pair_start(rank)..self.pair_start(rank + 1)
    }

    /// The encoded pair at `rank` among the node's pairs.
    pub(crate) fn pair_at_rank(&self, rank: usize) -> &[u8] {
        self.bytes.get(self.pair_range(rank)).unwrap_or(&[])
    }

    pub(crate) fn pair_at_rank_mut(&mut self, rank: usize) -> &mut [u8] {
        let range = self.pair_range(rank);
        self.bytes.get_mut(range).unwrap_or(&mut [])
    }

    pub(crate) fn key_at_rank(&self, rank: usize) -> &[u8] {
        pair_key(self.pair_at_rank(rank))
    }

    pub(crate) fn value_at_rank(&self, rank: usize) -> ValueRef<'_> {
        pair_value(self.pair_at_rank(rank))
    }

    /// A collision node's rank of `key`: `Ok` where it is, `Err` where it would go.
    pub(crate) fn find_key(&self, key: &[u8]) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.pair_count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.key_at_rank(mid).cmp(key) {
                core::cmp::Ordering::Equal => return Ok(mid),
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
            }
        }
        Err(lo)
    }

    pub(crate) fn pair_rank(&self, idx: usize) -> usize {
        ones(self.datamap & ((1u64 << idx) - 1))
    }

    fn child_rank(&self, idx: usize) -> usize {
        ones(self.nodemap & ((1u64 << idx) - 1))
    }

    /// Moves the bytes from `from` to the end so that they start at `to`, growing or
    /// shortening the node (grown bytes are zero until written).
    fn move_tail(&mut self, from: usize, to: usize) {
        let len = self.bytes.len();
        let new_len = len + to - from;
        if to > from {
            self.bytes.resize(new_len, 0);
        }
        self.bytes.copy_within(from..len, to);
        self.bytes.truncate(new_len);
    }

    /// Adds `all` to every pair table entry and `more` as well to those from rank
    /// `from` on (wrapping: a negative change is its two's complement). Node payloads
    /// are bounded by the entry capacity (a u32), checked by the writer before it
    /// writes the node, so the positions fit.
    fn shift_table(&mut self, all: usize, from: usize, more: usize) {
        let table = self.table;
        let entries = self.bytes[table..table + 4 * self.pairs].chunks_exact_mut(4);
        for (rank, entry) in entries.enumerate() {
            let mut pos = rd_u32(entry, 0).unwrap_or(0) as usize;
            pos = pos.wrapping_add(all);
            if rank >= from {
                pos = pos.wrapping_add(more);
            }
            entry.copy_from_slice(&(pos as u32).to_le_bytes());
        }
    }

    /// Puts the encoded `pair` at `rank` among the pairs, and sets `bit` in the
    /// datamap (a collision node passes 0). Every byte after the new table entry moves
    /// once: the table's tail and the pairs before the new one by 4, the pairs after it
    /// by 4 and the pair's length.
    pub(crate) fn insert_rank(&mut self, rank: usize, bit: u64, pair: &PairBuf) {
        let pair = &pair.0[..];
        let (at, entry) = (self.pair_start(rank), self.table + 4 * rank);
        self.move_tail(at, at + 4 + pair.len());
        self.bytes.copy_within(entry..at, entry + 4);
        self.bytes[at + 4..at + 4 + pair.len()].copy_from_slice(pair);
        self.bytes[entry..entry + 4].copy_from_slice(&(at as u32).to_le_bytes());
        self.datamap |= bit;
        self.pairs += 1;
        self.shift_table(4, rank + 1, pair.len());
    }

    /// Takes the pair at `rank` out and clears `bit` in the datamap: the reverse of
    /// [`insert_rank`](Self::insert_rank).
    pub(crate) fn remove_rank(&mut self, rank: usize, bit: u64) -> PairBuf {
        let range = self.pair_range(rank);
        let entry = self.table + 4 * rank;
        let pair = PairBuf(self.bytes[range.clone()].to_vec());
        self.bytes.copy_within(entry + 4..range.start, entry);
        self.move_tail(range.end, range.start - 4);
        self.datamap &= !bit;
        self.pairs -= 1;
        self.shift_table(4usize.wrapping_neg(), rank, range.len().wrapping_neg());
        pair
    }

    /// Replaces the pair at `rank` (counted by `bit`) by `pair`; returns the old one.
    pub(crate) fn replace_rank(&mut self, rank: usize, bit: u64, pair: &PairBuf) -> PairBuf {
        let old = self.remove_rank(rank, bit);
        self.insert_rank(rank, bit, pair);
        old
    }

    /// Where `key` (with `hash`) goes in this node, which sits at `depth`. Inlined on
    /// the host, where every level of every change and lookup asks.
    #[cfg_attr(not(target_arch = "arm"), inline)]
    pub(crate) fn slot(&self, depth: u32, hash: [u64; 2], key: &[u8]) -> Slot {
        if depth >= MAX_DEPTH {
            return match self.find_key(key) {
                Ok(rank) => Slot::Pair {
                    rank,
                    bit: 0,
                    found: true,
                },
                Err(rank) => Slot::Empty { rank, bit: 0 },
            };
        }
        let idx = chunk(hash, depth);
        let bit = 1u64 << idx;
        if self.nodemap & bit != 0 {
            return Slot::Child(idx);
        }
        let rank = self.pair_rank(idx);
        if self.datamap & bit != 0 {
            Slot::Pair {
                rank,
                bit,
                found: self.key_at_rank(rank) == key,
            }
        } else {
            Slot::Empty { rank, bit }
        }
    }

    /// The child at rank `rank` (an offset, or a transaction's own node id).
    pub(crate) fn child(&self, rank: usize) -> u64 {
        rd_u64(&self.bytes, BRANCH_FIXED + 8 * rank).unwrap_or(0)
    }

    pub(crate) fn set_child_rank(&mut self, rank: usize, child: u64) {
        self.set_word(BRANCH_FIXED + 8 * rank, child);
    }

    pub(crate) fn child_at(&self, idx: usize) -> u64 {
        self.child(self.child_rank(idx))
    }

    pub(crate) fn set_child(&mut self, idx: usize, child: u64) {
        self.set_child_rank(self.child_rank(idx), child);
    }

    /// Puts a child at empty slot `idx`.
    pub(crate) fn insert_child(&mut self, idx: usize, child: u64) {
        let at = BRANCH_FIXED + 8 * self.child_rank(idx);
        self.move_tail(at, at + 8);
        self.nodemap |= 1 << idx;
        self.table += 8;
        self.set_child(idx, child);
        self.shift_table(8, 0, 0);
    }

    pub(crate) fn remove_child(&mut self, idx: usize) {
        let at = BRANCH_FIXED + 8 * self.child_rank(idx);
        self.move_tail(at + 8, at);
        self.nodemap &= !(1 << idx);
        self.table -= 8;
        self.shift_table(8usize.wrapping_neg(), 0, 0);
    }
}

/// The bytes a pair takes in a node.
fn ref_encoded_len(p: &PairRef<'_>) -> usize {
    PAIR_HEADER
        + p.key.len()
        + match p.value {
            ValueRef::Inline(v) => v.len(),
            ValueRef::Entry { .. } => 8,
        }
}

/// Appends the pair table (from `fixed`) and the pairs of a node to `out`.
fn encode_ref_pairs(pairs: &[PairRef<'_>], fixed: usize, out: &mut Vec<u8>) {
    let mut at = fixed;
    for p in pairs {
        // Payloads are bounded by the entry capacity (a u32), checked by the writer.
        out.extend_from_slice(&(at as u32).to_le_bytes());
        at += ref_encoded_len(p);
    }
    for p in pairs {
        // Key length is checked against MAX_KEY_LEN before a pair is built.
        out.extend_from_slice(&(p.key.len() as u16).to_le_bytes());
        match p.value {
            ValueRef::Inline(v) => {
                out.extend_from_slice(&0u16.to_le_bytes());
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(p.key);
                out.extend_from_slice(v);
            }
            ValueRef::Entry { offset, len } => {
                out.extend_from_slice(&FLAG_VALUE_REF.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(p.key);
                out.extend_from_slice(&offset.to_le_bytes());
            }
        }
    }
}

/// Encodes a branch from borrowed parts into `out` (cleared first): the same bytes as
/// a [`NodeBuf`] with these slots holds, without owning them.
/// `children` and `pairs` are in slot order.
pub(crate) fn encode_branch_refs(
    datamap: u64,
    nodemap: u64,
    children: &[u64],
    pairs: &[PairRef<'_>],
    out: &mut Vec<u8>,
) {
    out.clear();
    let fixed = BRANCH_FIXED + 8 * children.len() + 4 * pairs.len();
    out.reserve(fixed + pairs.iter().map(ref_encoded_len).sum::<usize>());
    out.extend_from_slice(&datamap.to_le_bytes());
    out.extend_from_slice(&nodemap.to_le_bytes());
    for c in children {
        out.extend_from_slice(&c.to_le_bytes());
    }
    encode_ref_pairs(pairs, fixed, out);
}

/// Encodes a collision node from pairs in key order into `out` (cleared first): the
/// same bytes as a collision [`NodeBuf`] holding them.
pub(crate) fn encode_collision_refs(pairs: &[PairRef<'_>], out: &mut Vec<u8>) {
    out.clear();
    let fixed = COLLISION_FIXED + 4 * pairs.len();
    out.reserve(fixed + pairs.iter().map(ref_encoded_len).sum::<usize>());
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    encode_ref_pairs(pairs, fixed, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_all_128_bits_in_order() {
        let h = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
        assert_eq!(chunk(h, 0), 0x2f);
        assert_eq!(chunk(h, 1), (0x0123_4567_89ab_cdefu64 >> 6) as usize & 63);
        // Depth 10 straddles the halves: bits 60..64 of h[0] and 0..2 of h[1].
        assert_eq!(chunk(h, 10), (0x3210 & 3) << 4);
        assert_eq!(
            chunk(h, 11),
            ((0xfedc_ba98_7654_3210u64 >> 2) & 63) as usize
        );
        assert_eq!(MAX_DEPTH, 21);
    }

    // The edits by slot index (branches) and by rank (collision nodes).
    impl NodeBuf {
        fn insert_pair(&mut self, idx: usize, pair: &PairBuf) {
            self.insert_rank(self.pair_rank(idx), 1 << idx, pair);
        }
        fn take_pair(&mut self, idx: usize) -> PairBuf {
            self.remove_rank(self.pair_rank(idx), 1 << idx)
        }
        fn replace_pair(&mut self, idx: usize, pair: &PairBuf) -> PairBuf {
            self.replace_rank(self.pair_rank(idx), 1 << idx, pair)
        }
    }

    fn pairs_of(n: &NodeBuf) -> Vec<PairRef<'_>> {
        (0..n.pair_count())
            .map(|r| PairRef {
                key: n.key_at_rank(r),
                value: n.value_at_rank(r),
            })
            .collect()
    }

    fn children_of(n: &NodeBuf) -> Vec<u64> {
        (0..n.child_count()).map(|r| n.child(r)).collect()
    }

    #[test]
    fn branch_round_trips() {
        let mut n = NodeBuf::empty(true);
        n.insert_pair(5, &PairBuf::new(b"k5", ValueRef::Inline(b"v5")));
        n.insert_pair(
            1,
            &PairBuf::new(
                b"k1",
                ValueRef::Entry {
                    offset: 4096,
                    len: 10_000,
                },
            ),
        );
        n.insert_child(3, 8192);
        let bytes = n.finish().to_vec();
        let b = Branch::parse(&bytes, 0).unwrap();
        assert!(matches!(
            branch_slot(&bytes, 0, 3).unwrap(),
            SlotRef::Child(8192)
        ));
        assert!(matches!(branch_slot(&bytes, 0, 2).unwrap(), SlotRef::Empty));
        let SlotRef::Pair(p) = branch_slot(&bytes, 0, 1).unwrap() else {
            panic!("slot 1")
        };
        assert_eq!(p.key, b"k1");
        assert_eq!(
            p.value,
            ValueRef::Entry {
                offset: 4096,
                len: 10_000
            }
        );
        let SlotRef::Pair(p) = branch_slot(&bytes, 0, 5).unwrap() else {
            panic!("slot 5")
        };
        assert_eq!(p.value, ValueRef::Inline(b"v5"));
        let mut again = NodeBuf::from_node(&NodeRef::Branch(b)).unwrap();
        assert_eq!(again.finish(), &bytes[..]);
    }

    /// A node edited in place, slot by slot in any order, holds exactly the bytes the
    /// borrowed encoders (`bulk`'s, written from scratch) give for its slots.
    #[test]
    fn in_place_edits_match_a_fresh_encoding() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut out = Vec::new();
        // Under Miri (the unsafe-free node code is checked there for UB, not coverage)
        // two rounds (a collision node, a branch): each takes ~25 s there.
        let rounds = if cfg!(miri) { 2 } else { 200 };
        for round in 0..rounds {
            let branch = round % 4 != 0;
            let mut n = NodeBuf::empty(branch);
            for step in 0..60 {
                let r = next();
                let idx = (r % 64) as usize;
                let bit = 1u64 << idx;
                let key = [idx as u8, (r >> 8) as u8 % 3];
                let value = [step as u8; 5];
                let len = (r >> 16) as usize % 6;
                let pair = if r & (1 << 40) != 0 {
                    PairBuf::new(
                        &key[..1 + (r >> 41) as usize % 2],
                        ValueRef::Inline(&value[..len]),
                    )
                } else {
                    PairBuf::new(
                        &key,
                        ValueRef::Entry {
                            offset: r >> 44 << 3,
                            len: 1000,
                        },
                    )
                };
                if branch {
                    if n.datamap & bit != 0 {
                        match r >> 50 & 3 {
                            0 => drop(n.take_pair(idx)),
                            1 => drop(n.replace_pair(idx, &pair)),
                            _ => {
                                let p = n.take_pair(idx);
                                n.insert_child(idx, r >> 20 << 3);
                                assert_eq!(n.nodemap & bit, bit);
                                let _ = p;
                            }
                        }
                    } else if n.nodemap & bit != 0 {
                        if r >> 50 & 1 == 0 {
                            n.remove_child(idx);
                        } else {
                            n.set_child(idx, r >> 21 << 3);
                        }
                    } else {
                        n.insert_pair(idx, &pair);
                    }
                } else {
                    match n.slot(MAX_DEPTH, [0; 2], pair.key()) {
                        Slot::Pair { rank, .. } if r >> 50 & 1 == 0 => drop(n.remove_rank(rank, 0)),
                        Slot::Pair { rank, .. } => drop(n.replace_rank(rank, 0, &pair)),
                        Slot::Empty { rank, .. } => n.insert_rank(rank, 0, &pair),
                        Slot::Child(_) => unreachable!("a collision node has no children"),
                    }
                }
                let (datamap, nodemap) = (n.datamap, n.nodemap);
                let children = children_of(&n);
                let refs = pairs_of(&n);
                if branch {
                    encode_branch_refs(datamap, nodemap, &children, &refs, &mut out);
                } else {
                    assert!(refs.windows(2).all(|w| w[0].key < w[1].key));
                    encode_collision_refs(&refs, &mut out);
                }
                let mut copy = n.clone();
                assert_eq!(copy.finish(), &out[..], "round {round} step {step}");
                // And a node copied in from those bytes is the same node.
                let node = if branch {
                    NodeRef::Branch(Branch::parse(&out, 8).unwrap())
                } else {
                    NodeRef::Collision(Collision::parse(&out, 8).unwrap())
                };
                let mut back = NodeBuf::from_node(&node).unwrap();
                assert_eq!(back.finish(), &out[..]);
            }
        }
    }

    #[test]
    fn a_node_not_laid_out_canonically_is_refused() {
        let mut n = NodeBuf::empty(true);
        n.insert_pair(1, &PairBuf::new(b"a", ValueRef::Inline(b"1")));
        n.insert_pair(2, &PairBuf::new(b"b", ValueRef::Inline(b"2")));
        let bytes = n.finish().to_vec();
        // A byte after the last pair.
        let mut longer = bytes.clone();
        longer.push(0);
        let b = Branch::parse(&longer, 0).unwrap();
        assert!(NodeBuf::from_node(&NodeRef::Branch(b)).is_err());
        // The pairs in the other order (both offsets still point at whole pairs).
        let mut swapped = bytes.clone();
        let (first, second) = (rd_u32(&bytes, 16).unwrap(), rd_u32(&bytes, 20).unwrap());
        swapped[16..20].copy_from_slice(&second.to_le_bytes());
        swapped[20..24].copy_from_slice(&first.to_le_bytes());
        let b = Branch::parse(&swapped, 0).unwrap();
        assert!(b.pair(0).is_ok() && b.pair(1).is_ok());
        assert!(NodeBuf::from_node(&NodeRef::Branch(b)).is_err());
        let b = Branch::parse(&bytes, 0).unwrap();
        assert!(NodeBuf::from_node(&NodeRef::Branch(b)).is_ok());
    }

    #[test]
    fn damaged_nodes_are_errors() {
        let mut n = NodeBuf::empty(true);
        n.insert_pair(0, &PairBuf::new(&[1; 10], ValueRef::Inline(&[2; 10])));
        let bytes = n.finish().to_vec();
        assert!(branch_slot(&bytes, 0, 0).is_ok());
        for cut in 0..bytes.len() {
            if let Ok(b) = Branch::parse(&bytes[..cut], 0) {
                assert!(b.pair(0).is_err(), "cut at {cut} parsed a whole pair");
                assert!(NodeBuf::from_node(&NodeRef::Branch(b)).is_err());
            }
            let lookup = branch_slot(&bytes[..cut], 0, 0);
            assert!(lookup.is_err(), "cut at {cut}: a lookup read a whole pair");
        }
        let mut both = bytes.clone();
        both[8] = 1; // nodemap bit 0 as well as datamap bit 0
        assert!(Branch::parse(&both, 0).is_err());
        assert!(branch_slot(&both, 0, 0).is_err());
    }
}
