//! Reading the committed trie: nodes, lookups and traversal, over any [`NodeStore`]
//! (a snapshot or the writer's space). Changing it is `write`'s business.

use alloc::vec::Vec;

use super::node::{
    Branch, Collision, MAX_DEPTH, PairRef, SlotAt, SlotRef, ValueRef, branch_slot, child_at, chunk,
    locate_slot, pair_in, pair_pos,
};
use crate::Error;
use crate::buffer::format::{EntryHeader, EntryKind, HEADER_LEN};
use crate::error::Corrupt;

/// Read access to entries.
pub(crate) trait NodeStore {
    /// The entry at `offset` (header checked, checksum not).
    fn entry(&self, offset: u64) -> Result<(EntryHeader, &[u8]), Error>;

    /// The entry at `offset`, its checksum verified. Writers read through this before
    /// they copy anything, so that damage is reported instead of being copied into a
    /// fresh entry with a fresh, valid checksum.
    fn entry_verified(&self, offset: u64) -> Result<(EntryHeader, &[u8]), Error>;

    /// The id and payload of the entry at `offset`, which must be of `kind`: the lookup
    /// path's read, with the header checked as [`entry`](Self::entry) checks it.
    fn payload(&self, offset: u64, kind: EntryKind) -> Result<(u64, &[u8]), Error> {
        let (header, payload) = self.entry(offset)?;
        if header.kind != kind {
            return Err(Error::corrupted(offset, Corrupt::EntryIsNotOfExpectedKind));
        }
        Ok((header.id, payload))
    }

    /// Hints that the `len` bytes at `offset` will be read soon.
    fn prefetch(&self, offset: u64, len: usize) {
        let _ = (offset, len);
    }
}

/// Write access to entries, for the running transaction.
pub(crate) trait NodeStoreMut: NodeStore {
    fn write_entry(
        &mut self,
        kind: EntryKind,
        id: u64,
        payload: &[u8],
        capacity: u64,
    ) -> Result<u64, Error>;
    fn free_entry(&mut self, offset: u64) -> Result<(), Error>;
    /// Where an entry of `capacity` bytes would be allocated now.
    fn lowest_fit(&self, capacity: u64) -> u64;
}

/// A node of either kind, borrowed.
pub(crate) enum NodeRef<'a> {
    Branch(Branch<'a>),
    Collision(Collision<'a>),
}

impl<'a> NodeRef<'a> {
    /// Pairs in the node.
    pub(crate) fn pair_count(&self) -> usize {
        match self {
            NodeRef::Branch(b) => b.pair_count(),
            NodeRef::Collision(c) => c.len(),
        }
    }

    /// The pair at `rank` among the node's pairs.
    pub(crate) fn pair(&self, rank: usize) -> Result<PairRef<'a>, Error> {
        match self {
            NodeRef::Branch(b) => b.pair(rank),
            NodeRef::Collision(c) => c.pair(rank),
        }
    }
}

/// Reads the node at `offset`, which sits at `depth`.
pub(crate) fn read_node<S: NodeStore + ?Sized>(
    s: &S,
    offset: u64,
    depth: u32,
) -> Result<NodeRef<'_>, Error> {
    let (header, payload) = s.entry(offset)?;
    if header.id != u64::from(depth) {
        return Err(Error::corrupted(
            offset,
            Corrupt::NodeDepthDoesNotMatchPlace,
        ));
    }
    match (header.kind, depth < MAX_DEPTH) {
        (EntryKind::Branch, true) => Ok(NodeRef::Branch(Branch::parse(payload, offset)?)),
        (EntryKind::Collision, false) => Ok(NodeRef::Collision(Collision::parse(payload, offset)?)),
        _ => Err(Error::corrupted(
            offset,
            Corrupt::ExpectedTrieNodeOfThisDepth,
        )),
    }
}

/// An edge of a node: a value entry or a child node.
pub(crate) enum Edge {
    Value { offset: u64 },
    Child(u64),
}

/// Calls `f` with every edge of `node`: its value entries in pair order, then its
/// children in slot order: `open`'s walk.
pub(crate) fn for_each_edge(node: &NodeRef<'_>, f: &mut dyn FnMut(Edge)) -> Result<(), Error> {
    for rank in 0..node.pair_count() {
        if let ValueRef::Entry { offset, .. } = node.pair(rank)?.value {
            f(Edge::Value { offset });
        }
    }
    if let NodeRef::Branch(b) = node {
        for i in 0..b.child_count() {
            f(Edge::Child(b.child(i)?));
        }
    }
    Ok(())
}

/// The bytes of a value, reading its value entry if it has one.
pub(crate) fn value_bytes<'a, S: NodeStore + ?Sized>(
    s: &'a S,
    value: ValueRef<'a>,
) -> Result<&'a [u8], Error> {
    match value {
        ValueRef::Inline(v) => Ok(v),
        ValueRef::Entry { offset, len } => {
            let (_, payload) = s.payload(offset, EntryKind::Value)?;
            if payload.len() != len as usize {
                return Err(Error::corrupted(
                    offset,
                    Corrupt::ExpectedValueEntryOfThisLength,
                ));
            }
            Ok(payload)
        }
    }
}

/// Looks `key` (with `hash`) up in the trie at `root`.
pub(crate) fn get<'a, S: NodeStore + ?Sized>(
    s: &'a S,
    root: u64,
    hash: [u64; 2],
    key: &[u8],
) -> Result<Option<ValueRef<'a>>, Error> {
    if root == 0 {
        return Ok(None);
    }
    get_from(s, root, 0, hash, key)
}

/// Looks `key` up in the committed subtree at `off`, which sits at `depth`.
pub(crate) fn get_from<'a, S: NodeStore + ?Sized>(
    s: &'a S,
    mut off: u64,
    mut depth: u32,
    hash: [u64; 2],
    key: &[u8],
) -> Result<Option<ValueRef<'a>>, Error> {
    loop {
        match step(s, off, depth, hash, key)? {
            Step::Found(v) => return Ok(v),
            Step::Child(c) => {
                off = c;
                depth += 1;
            }
        }
    }
}

/// Where one node sends a lookup.
enum Step<'a> {
    /// The lookup ends here: the value, or `None` for an absent key.
    Found(Option<ValueRef<'a>>),
    /// On to the child node at this offset.
    Child(u64),
}

/// Reads the node at `off` (at `depth`) for the lookup of `key`: only its header, its
/// bitmaps and the one slot the hash picks.
#[inline(always)]
fn step<'a, S: NodeStore + ?Sized>(
    s: &'a S,
    off: u64,
    depth: u32,
    hash: [u64; 2],
    key: &[u8],
) -> Result<Step<'a>, Error> {
    let kind = if depth < MAX_DEPTH {
        EntryKind::Branch
    } else {
        EntryKind::Collision
    };
    let (id, payload) = s.payload(off, kind)?;
    if id != u64::from(depth) {
        return Err(Error::corrupted(off, Corrupt::NodeDepthDoesNotMatchPlace));
    }
    if kind == EntryKind::Collision {
        let found = Collision::parse(payload, off)?.find(key)?;
        return Ok(Step::Found(found.map(|p| p.value)));
    }
    Ok(match branch_slot(payload, off, chunk(hash, depth))? {
        SlotRef::Empty => Step::Found(None),
        SlotRef::Pair(p) => Step::Found((p.key == key).then_some(p.value)),
        SlotRef::Child(c) => Step::Child(c),
    })
}

/// Lanes walked together by [`get_many`]: enough independent misses to keep the memory
/// system busy, few enough that the lanes' state stays in registers and L1.
pub(crate) const LANES: usize = 16;

/// Bytes of each key [`get_many`] prefetches before hashing (two lines cover the keys
/// of most uses; a longer key streams in as it is hashed).
const KEY_PREFETCH: usize = 128;

/// Where a lane of [`get_many`] is: each stage reads bytes the previous one prefetched,
/// and prefetches what the next one reads.
#[derive(Clone, Copy)]
enum Lane<'a> {
    /// The node at `off` (its first two lines prefetched): read its header and bitmaps.
    Node { off: u64, depth: u32 },
    /// The slot table entry at `pos` of the node's payload is prefetched: read it.
    Slot {
        off: u64,
        depth: u32,
        payload: &'a [u8],
        slot: SlotAt,
    },
    /// The pair at `pos` of the node's payload is prefetched: compare its key.
    Pair {
        off: u64,
        payload: &'a [u8],
        pos: usize,
    },
}

/// Prefetches the first bytes of the entry at `off`: its header and, in the next line
/// when the entry straddles one, a branch's bitmaps.
#[inline(always)]
fn prefetch_node<S: NodeStore + ?Sized>(s: &S, off: u64) {
    s.prefetch(off, HEADER_LEN + 16);
}

/// Looks up many keys at once, appending each one's value bytes to `out` in order.
///
/// The walks of up to [`LANES`] keys advance together, a stage at a time: a lane reads a
/// node's bitmaps, prefetches the one slot it needs and yields; reads the slot,
/// prefetches the child (or the pair) and yields; and so on. Every dependent cache miss
/// of one key is thus started a round before it is needed, while the other lanes work.
pub(crate) fn get_many<'a, S: NodeStore + ?Sized>(
    s: &'a S,
    root: u64,
    keys: &[&[u8]],
    hash: impl Fn(&[u8]) -> [u64; 2],
    out: &mut Vec<Option<&'a [u8]>>,
) -> Result<(), Error> {
    for keys in keys.chunks(LANES) {
        let base = out.len();
        out.resize(base + keys.len(), None);
        if root == 0 {
            continue;
        }
        prefetch_node(s, root);
        // The keys are the caller's, anywhere in memory (a batch of random keys misses
        // on each): start loading every key before hashing any, so that their misses
        // overlap instead of each hash waiting for its key in turn.
        for k in keys {
            crate::prefetch::prefetch_lines(k, k.len().min(KEY_PREFETCH));
        }
        let mut hashes = [[0u64; 2]; LANES];
        for (h, k) in hashes.iter_mut().zip(keys) {
            *h = hash(k);
        }
        let mut lanes = [Lane::Node {
            off: root,
            depth: 0,
        }; LANES];
        let mut live: u32 = (1u32 << keys.len()) - 1;
        while live != 0 {
            let mut todo = live;
            while todo != 0 {
                let i = todo.trailing_zeros() as usize;
                todo &= todo - 1;
                let found = match lanes[i] {
                    Lane::Node { off, depth } if depth < MAX_DEPTH => {
                        let (id, payload) = s.payload(off, EntryKind::Branch)?;
                        if id != u64::from(depth) {
                            return Err(Error::corrupted(off, Corrupt::NodeDepthDoesNotMatchPlace));
                        }
                        let slot = locate_slot(payload, off, chunk(hashes[i], depth))?;
                        match slot {
                            SlotAt::Empty => None,
                            SlotAt::Child(pos) | SlotAt::Pair(pos) => {
                                if let Some(b) = payload.get(pos..) {
                                    crate::prefetch::prefetch(b);
                                }
                                lanes[i] = Lane::Slot {
                                    off,
                                    depth,
                                    payload,
                                    slot,
                                };
                                continue;
                            }
                        }
                    }
                    Lane::Node { off, depth } => match step(s, off, depth, hashes[i], keys[i])? {
                        Step::Found(v) => v,
                        Step::Child(_) => unreachable_child(off)?,
                    },
                    Lane::Slot {
                        off,
                        depth,
                        payload,
                        slot,
                    } => {
                        if let SlotAt::Child(pos) = slot {
                            let child = child_at(payload, off, pos)?;
                            prefetch_node(s, child);
                            lanes[i] = Lane::Node {
                                off: child,
                                depth: depth + 1,
                            };
                            continue;
                        }
                        let SlotAt::Pair(pos) = slot else {
                            return Err(Error::corrupted(off, Corrupt::LookupLostSlot));
                        };
                        let pos = pair_pos(payload, off, pos)?;
                        if let Some(b) = payload.get(pos..) {
                            crate::prefetch::prefetch(b);
                        }
                        lanes[i] = Lane::Pair { off, payload, pos };
                        continue;
                    }
                    Lane::Pair { off, payload, pos } => {
                        let p = pair_in(payload, off, pos)?;
                        (p.key == keys[i]).then_some(p.value)
                    }
                };
                out[base + i] = found.map(|v| value_bytes(s, v)).transpose()?;
                live &= !(1 << i);
            }
        }
    }
    Ok(())
}

/// A collision node (the deepest level) has no children; a lookup that found one is
/// reading a damaged image.
#[cold]
fn unreachable_child(off: u64) -> Result<Option<ValueRef<'static>>, Error> {
    Err(Error::corrupted(off, Corrupt::CollisionNodeWithChild))
}

/// Visits every pair of the trie at `root`, node by node (storage order, not key order).
/// Stops with `Corrupted` after more nodes than `max_nodes`, so a damaged image whose
/// nodes are shared or looped cannot keep it going.
pub(crate) fn for_each_pair<'a, S: NodeStore + ?Sized>(
    s: &'a S,
    root: u64,
    max_nodes: u64,
    f: &mut dyn FnMut(Visit<'a>) -> Result<(), Error>,
) -> Result<(), Error> {
    if root == 0 {
        return Ok(());
    }
    let mut stack: Vec<(u64, u32)> = alloc::vec![(root, 0)];
    let mut visited = 0u64;
    while let Some((off, depth)) = stack.pop() {
        visited += 1;
        if visited > max_nodes {
            return Err(Error::corrupted(
                off,
                Corrupt::TrieHasMoreNodesThanFitRegion,
            ));
        }
        match read_node(s, off, depth)? {
            NodeRef::Branch(b) => {
                for i in 0..b.pair_count() {
                    let p = b.pair(i)?;
                    f(Visit {
                        key: p.key,
                        value: p.value,
                        depth,
                    })?;
                }
                for i in (0..b.child_count()).rev() {
                    stack.push((b.child(i)?, depth + 1));
                }
            }
            NodeRef::Collision(c) => {
                for i in 0..c.len() {
                    let p = c.pair(i)?;
                    f(Visit {
                        key: p.key,
                        value: p.value,
                        depth,
                    })?;
                }
            }
        }
    }
    Ok(())
}

/// A pair found by [`for_each_pair`], with the depth of the node it sits in.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Visit<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) value: ValueRef<'a>,
    pub(crate) depth: u32,
}
