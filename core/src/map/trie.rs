//! Reading the committed trie: nodes, lookups and traversal, over any [`NodeStore`]
//! (a snapshot or the writer's space). Changing it is `write`'s business.

use alloc::vec::Vec;

use super::node::{Branch, Collision, MAX_DEPTH, SlotRef, ValueRef, chunk};
use crate::Error;
use crate::buffer::format::{EntryHeader, EntryKind};

/// Read access to entries.
pub(crate) trait NodeStore {
    /// The entry at `offset` (header checked, checksum not).
    fn entry(&self, offset: u64) -> Result<(EntryHeader, &[u8]), Error>;

    /// The entry at `offset`, its checksum verified. Writers read through this before
    /// they copy anything, so that damage is reported instead of being copied into a
    /// fresh entry with a fresh, valid checksum.
    fn entry_verified(&self, offset: u64) -> Result<(EntryHeader, &[u8]), Error>;

    /// Hints that the entry at `offset` will be read soon.
    fn prefetch(&self, offset: u64) {
        let _ = offset;
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
            "node depth does not match its place",
        ));
    }
    match (header.kind, depth < MAX_DEPTH) {
        (EntryKind::Branch, true) => Ok(NodeRef::Branch(Branch::parse(payload, offset)?)),
        (EntryKind::Collision, false) => Ok(NodeRef::Collision(Collision::parse(payload, offset)?)),
        _ => Err(Error::corrupted(
            offset,
            "expected a trie node of this depth",
        )),
    }
}

/// The bytes of a value, reading its value entry if it has one.
pub(crate) fn value_bytes<'a, S: NodeStore + ?Sized>(
    s: &'a S,
    value: ValueRef<'a>,
) -> Result<&'a [u8], Error> {
    match value {
        ValueRef::Inline(v) => Ok(v),
        ValueRef::Entry { offset, len } => {
            let (header, payload) = s.entry(offset)?;
            if header.kind != EntryKind::Value || header.len != len {
                return Err(Error::corrupted(
                    offset,
                    "expected a value entry of this length",
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
        match read_node(s, off, depth)? {
            NodeRef::Branch(b) => match b.slot(chunk(hash, depth))? {
                SlotRef::Empty => return Ok(None),
                SlotRef::Pair(p) => return Ok((p.key == key).then_some(p.value)),
                SlotRef::Child(c) => {
                    off = c;
                    depth += 1;
                }
            },
            NodeRef::Collision(c) => return Ok(c.find(key)?.map(|p| p.value)),
        }
    }
}

/// Lanes walked together by [`get_many`]: enough independent misses to keep the memory
/// system busy, few enough that the lanes' state stays in registers and L1.
pub(crate) const LANES: usize = 16;

/// Looks up many keys at once: the walks of up to [`LANES`] keys advance level by level
/// together, and each next node is prefetched before the other lanes are served, so the
/// cache misses of different keys overlap instead of queueing.
pub(crate) fn get_many<'a, S: NodeStore + ?Sized>(
    s: &'a S,
    root: u64,
    hashes: &[[u64; 2]],
    keys: &[&[u8]],
    out: &mut Vec<Option<ValueRef<'a>>>,
) -> Result<(), Error> {
    for (hashes, keys) in hashes.chunks(LANES).zip(keys.chunks(LANES)) {
        let base = out.len();
        out.resize(base + keys.len(), None);
        if root == 0 {
            continue;
        }
        let mut at = [(root, 0u32); LANES];
        let mut live: u32 = (1u32 << keys.len()) - 1;
        s.prefetch(root);
        while live != 0 {
            let mut lanes = live;
            while lanes != 0 {
                let i = lanes.trailing_zeros() as usize;
                lanes &= lanes - 1;
                let (off, depth) = at[i];
                let found = match read_node(s, off, depth)? {
                    NodeRef::Branch(b) => match b.slot(chunk(hashes[i], depth))? {
                        SlotRef::Empty => None,
                        SlotRef::Pair(p) => (p.key == keys[i]).then_some(p.value),
                        SlotRef::Child(c) => {
                            at[i] = (c, depth + 1);
                            s.prefetch(c);
                            continue;
                        }
                    },
                    NodeRef::Collision(c) => c.find(keys[i])?.map(|p| p.value),
                };
                out[base + i] = found;
                live &= !(1 << i);
            }
        }
    }
    Ok(())
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
                "trie has more nodes than fit its region",
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
