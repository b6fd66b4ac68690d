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
//! `nodemap` is. Reads borrow pairs straight out of the node's bytes; writes decode a
//! node into a [`NodeBuf`], change it, and encode it again.

use alloc::vec::Vec;

use super::trie::NodeRef;
use crate::Error;

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

/// Reads the pair starting at `at` in `payload`.
#[inline]
fn pair_at(payload: &[u8], at: usize, node: u64) -> Result<PairRef<'_>, Error> {
    let bad = || Error::corrupted(node, "pair runs past its node");
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
        _ => return Err(Error::corrupted(node, "unknown pair flags")),
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
        let datamap = rd_u64(payload, 0).ok_or(Error::corrupted(at, "branch too short"))?;
        let nodemap = rd_u64(payload, 8).ok_or(Error::corrupted(at, "branch too short"))?;
        if datamap & nodemap != 0 {
            return Err(Error::corrupted(at, "branch slot is both pair and child"));
        }
        let fixed = BRANCH_FIXED + 8 * ones(nodemap) + 4 * ones(datamap);
        if payload.len() < fixed {
            return Err(Error::corrupted(at, "branch tables run past its end"));
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
            .ok_or(Error::corrupted(self.at, "child index past the table"))
    }

    /// The pair at rank `rank` among the pairs.
    pub(crate) fn pair(&self, rank: usize) -> Result<PairRef<'a>, Error> {
        let at = rd_u32(self.payload, self.offsets_start() + 4 * rank)
            .ok_or(Error::corrupted(self.at, "pair index past the table"))?;
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
        return Err(Error::corrupted(at, "branch too short"));
    };
    if datamap & nodemap != 0 {
        return Err(Error::corrupted(at, "branch slot is both pair and child"));
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
    rd_u64(payload, pos).ok_or(Error::corrupted(at, "child index past the table"))
}

/// The position of the pair whose table entry [`locate_slot`] found at `pos`.
#[inline(always)]
pub(crate) fn pair_pos(payload: &[u8], at: u64, pos: usize) -> Result<usize, Error> {
    rd_u32(payload, pos)
        .map(|p| p as usize)
        .ok_or(Error::corrupted(at, "pair index past the table"))
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
        let count = rd_u32(payload, 0).ok_or(Error::corrupted(at, "collision node too short"))?;
        let count = count as usize;
        // Checked: on a 32-bit target a forged count could wrap the product.
        let table = count
            .checked_mul(4)
            .and_then(|t| t.checked_add(COLLISION_FIXED));
        if table.is_none_or(|t| payload.len() < t) {
            return Err(Error::corrupted(at, "collision table runs past its end"));
        }
        Ok(Collision { count, payload, at })
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn pair(&self, i: usize) -> Result<PairRef<'a>, Error> {
        let at = rd_u32(self.payload, COLLISION_FIXED + 4 * i)
            .ok_or(Error::corrupted(self.at, "pair index past the table"))?;
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

/// An owned pair, held as its encoded bytes (the pair layout above: header, key, then
/// the inline value or the value entry's offset). One allocation a pair, and a node is
/// encoded by copying its pairs whole.
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

    pub(crate) fn from_ref(p: &PairRef<'_>) -> Self {
        PairBuf::new(p.key, p.value)
    }

    /// The pair's header word (see [`new`](Self::new)). The bytes were built by `new`,
    /// so the reads below cannot fail; they fall back to empty rather than panic.
    fn head(&self) -> u64 {
        rd_u64(&self.0, 0).unwrap_or(0)
    }

    fn key_end(&self) -> usize {
        PAIR_HEADER + (self.head() & 0xffff) as usize
    }

    pub(crate) fn key(&self) -> &[u8] {
        self.0.get(PAIR_HEADER..self.key_end()).unwrap_or(&[])
    }

    pub(crate) fn value(&self) -> ValueRef<'_> {
        let head = self.head();
        let end = self.key_end();
        if (head >> 16) as u16 == FLAG_VALUE_REF {
            ValueRef::Entry {
                offset: rd_u64(&self.0, end).unwrap_or(0),
                len: (head >> 32) as u32,
            }
        } else {
            ValueRef::Inline(self.0.get(end..).unwrap_or(&[]))
        }
    }

    /// The value entry's offset, if the value has an entry of its own.
    pub(crate) fn entry(&self) -> Option<u64> {
        match self.value() {
            ValueRef::Entry { offset, .. } => Some(offset),
            ValueRef::Inline(_) => None,
        }
    }

    /// Points the pair at a value entry of `len` bytes at `offset` (the pair's value
    /// must already be in an entry).
    pub(crate) fn set_entry(&mut self, offset: u64, len: u32) {
        let end = self.key_end();
        if let Some(b) = self.0.get_mut(4..8) {
            b.copy_from_slice(&len.to_le_bytes());
        }
        if let Some(b) = self.0.get_mut(end..end + 8) {
            b.copy_from_slice(&offset.to_le_bytes());
        }
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

/// A node being changed: a branch (slots in index order) or a collision node (pairs in
/// key order).
#[derive(Clone, Debug, Default)]
pub(crate) struct NodeBuf {
    pub(crate) datamap: u64,
    pub(crate) nodemap: u64,
    pub(crate) children: Vec<u64>,
    pub(crate) pairs: Vec<PairBuf>,
}

impl NodeBuf {
    /// Decodes a committed node.
    pub(crate) fn from_node(node: &NodeRef<'_>) -> Result<Self, Error> {
        let mut buf = NodeBuf {
            pairs: Vec::with_capacity(node.pair_count() + 1),
            ..NodeBuf::default()
        };
        if let NodeRef::Branch(b) = node {
            buf.datamap = b.datamap;
            buf.nodemap = b.nodemap;
            buf.children.reserve_exact(b.child_count());
            for i in 0..b.child_count() {
                buf.children.push(b.child(i)?);
            }
        }
        for rank in 0..node.pair_count() {
            buf.pairs.push(PairBuf::from_ref(&node.pair(rank)?));
        }
        Ok(buf)
    }

    fn pair_rank(&self, idx: usize) -> usize {
        ones(self.datamap & ((1u64 << idx) - 1))
    }

    fn child_rank(&self, idx: usize) -> usize {
        ones(self.nodemap & ((1u64 << idx) - 1))
    }

    /// Puts `pair` at empty slot `idx`.
    pub(crate) fn insert_pair(&mut self, idx: usize, pair: PairBuf) {
        let rank = self.pair_rank(idx);
        self.pairs.insert(rank, pair);
        self.datamap |= 1 << idx;
    }

    /// Takes the pair out of slot `idx`.
    pub(crate) fn take_pair(&mut self, idx: usize) -> PairBuf {
        let rank = self.pair_rank(idx);
        self.datamap &= !(1 << idx);
        self.pairs.remove(rank)
    }

    pub(crate) fn pair(&self, idx: usize) -> &PairBuf {
        &self.pairs[self.pair_rank(idx)]
    }

    pub(crate) fn child_at(&self, idx: usize) -> u64 {
        self.children[self.child_rank(idx)]
    }

    pub(crate) fn pair_mut(&mut self, idx: usize) -> &mut PairBuf {
        let rank = self.pair_rank(idx);
        &mut self.pairs[rank]
    }

    /// Puts a child at empty slot `idx`.
    pub(crate) fn insert_child(&mut self, idx: usize, child: u64) {
        let rank = self.child_rank(idx);
        self.children.insert(rank, child);
        self.nodemap |= 1 << idx;
    }

    pub(crate) fn set_child(&mut self, idx: usize, child: u64) {
        let rank = self.child_rank(idx);
        self.children[rank] = child;
    }

    pub(crate) fn remove_child(&mut self, idx: usize) {
        let rank = self.child_rank(idx);
        self.nodemap &= !(1 << idx);
        self.children.remove(rank);
    }

    /// Encodes the node as a branch (`branch`) or a collision node: one encoder for
    /// both, which differ only in the fixed part before the pair table.
    pub(crate) fn encode(&self, branch: bool) -> Vec<u8> {
        let head = if branch {
            BRANCH_FIXED + 8 * self.children.len()
        } else {
            COLLISION_FIXED
        };
        let fixed = head + 4 * self.pairs.len();
        let total = fixed + self.pairs.iter().map(PairBuf::encoded_len).sum::<usize>();
        let mut out = Vec::with_capacity(total);
        if branch {
            out.extend_from_slice(&self.datamap.to_le_bytes());
            out.extend_from_slice(&self.nodemap.to_le_bytes());
            for c in &self.children {
                out.extend_from_slice(&c.to_le_bytes());
            }
        } else {
            // count u32 | 0u32
            out.extend_from_slice(&u64::from(self.pairs.len() as u32).to_le_bytes());
        }
        self.encode_pairs(fixed, &mut out);
        out
    }

    #[cfg(test)]
    pub(crate) fn encode_branch(&self) -> Vec<u8> {
        self.encode(true)
    }

    #[cfg(test)]
    pub(crate) fn encode_collision(&self) -> Vec<u8> {
        self.encode(false)
    }

    fn encode_pairs(&self, fixed: usize, out: &mut Vec<u8>) {
        let mut at = fixed;
        for p in &self.pairs {
            // Node payloads are bounded by the entry capacity (a u32), checked by the
            // writer before encoding.
            out.extend_from_slice(&(at as u32).to_le_bytes());
            at += p.encoded_len();
        }
        for p in &self.pairs {
            p.encode_into(out);
        }
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
/// [`NodeBuf::encode_branch`] of the node with these slots, without owning them.
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
/// same bytes as [`NodeBuf::encode_collision`].
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
    use alloc::vec;

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

    #[test]
    fn branch_round_trips() {
        let mut n = NodeBuf::default();
        n.insert_pair(5, PairBuf::new(b"k5", ValueRef::Inline(b"v5")));
        n.insert_pair(
            1,
            PairBuf::new(
                b"k1",
                ValueRef::Entry {
                    offset: 4096,
                    len: 10_000,
                },
            ),
        );
        n.insert_child(3, 8192);
        let bytes = n.encode_branch();
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
        let again = NodeBuf::from_node(&NodeRef::Branch(b)).unwrap();
        assert_eq!(again.encode_branch(), bytes);
    }

    #[test]
    fn borrowed_encoders_write_the_same_bytes() {
        let mut n = NodeBuf::default();
        n.insert_pair(7, PairBuf::new(b"seven", ValueRef::Inline(b"value 7")));
        n.insert_pair(
            2,
            PairBuf::new(
                b"two",
                ValueRef::Entry {
                    offset: 4096,
                    len: 900,
                },
            ),
        );
        n.insert_child(40, 8192);
        n.insert_child(3, 1024);
        let refs: Vec<PairRef<'_>> = n
            .pairs
            .iter()
            .map(|p| PairRef {
                key: p.key(),
                value: p.value(),
            })
            .collect();
        let mut out = vec![0xee; 3];
        encode_branch_refs(n.datamap, n.nodemap, &n.children, &refs, &mut out);
        assert_eq!(out, n.encode_branch());
        let mut c = NodeBuf {
            pairs: n.pairs.clone(),
            ..NodeBuf::default()
        };
        c.pairs.sort_by(|a, b| a.key().cmp(b.key()));
        let mut sorted = refs.clone();
        sorted.sort_by(|a, b| a.key.cmp(b.key));
        encode_collision_refs(&sorted, &mut out);
        assert_eq!(out, c.encode_collision());
    }

    #[test]
    fn damaged_nodes_are_errors() {
        let mut n = NodeBuf::default();
        n.insert_pair(0, PairBuf::new(&[1; 10], ValueRef::Inline(&[2; 10])));
        let bytes = n.encode_branch();
        assert!(branch_slot(&bytes, 0, 0).is_ok());
        for cut in 0..bytes.len() {
            if let Ok(b) = Branch::parse(&bytes[..cut], 0) {
                assert!(b.pair(0).is_err(), "cut at {cut} parsed a whole pair");
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
