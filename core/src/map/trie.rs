//! The hash array mapped trie: lookups, copy-on-write inserts and canonical removal.
//!
//! Keys sit at the shallowest depth where their hash chunk is unique among their
//! neighbours (CHAMP's layout): a branch slot holds either a pair inline or a child node,
//! and a child subtree always holds at least two pairs. Removal restores that: a subtree
//! left with one pair collapses into its parent's slot. So the trie's shape depends only
//! on the set of keys, not on the order of operations.
//!
//! Writes copy each node on the path unless the running transaction already owns it; a
//! node the transaction owns is rewritten in place when it still fits, and then its
//! parent does not change at all.

use alloc::vec::Vec;

use super::node::{
    Branch, Collision, MAX_DEPTH, NodeBuf, PairBuf, SlotRef, ValueBuf, ValueRef, chunk,
};
use crate::Error;
use crate::buffer::format::{EntryHeader, EntryKind, HEADER_LEN};

/// Read access to entries.
pub(crate) trait NodeStore {
    /// The entry at `offset` (header checked, checksum not).
    fn entry(&self, offset: u64) -> Result<(EntryHeader, &[u8]), Error>;
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
    fn rewrite_own(&mut self, offset: u64, payload: &[u8]) -> Result<(), Error>;
    fn is_own(&self, offset: u64) -> bool;
    fn free_entry(&mut self, offset: u64) -> Result<(), Error>;
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
    let mut off = root;
    let mut depth = 0;
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

/// Writes `node` in place of the node at `old` (0: none): in place when the transaction
/// owns `old` and it fits, else to a new entry, freeing `old`. Returns the offset.
fn write_node<S: NodeStoreMut + ?Sized>(
    s: &mut S,
    old: u64,
    depth: u32,
    node: &NodeBuf,
) -> Result<u64, Error> {
    let (kind, payload) = if depth < MAX_DEPTH {
        (EntryKind::Branch, node.encode_branch())
    } else {
        (EntryKind::Collision, node.encode_collision())
    };
    if old != 0 && s.is_own(old) {
        let (header, _) = s.entry(old)?;
        if payload.len() as u64 <= u64::from(header.capacity) - HEADER_LEN as u64 {
            s.rewrite_own(old, &payload)?;
            return Ok(old);
        }
    }
    let capacity = HEADER_LEN as u64 + payload.len() as u64;
    let new = s.write_entry(kind, u64::from(depth), &payload, capacity)?;
    if old != 0 {
        s.free_entry(old)?;
    }
    Ok(new)
}

fn decode<S: NodeStore + ?Sized>(s: &S, off: u64, depth: u32) -> Result<NodeBuf, Error> {
    match read_node(s, off, depth)? {
        NodeRef::Branch(b) => NodeBuf::from_branch(&b),
        NodeRef::Collision(c) => NodeBuf::from_collision(&c),
    }
}

/// Builds the subtree at `depth` holding two pairs whose hashes agree above it.
fn two_pair_subtree<S: NodeStoreMut + ?Sized>(
    s: &mut S,
    depth: u32,
    a: (PairBuf, [u64; 2]),
    b: (PairBuf, [u64; 2]),
) -> Result<u64, Error> {
    let mut node = NodeBuf::default();
    if depth >= MAX_DEPTH {
        let (mut x, mut y) = (a.0, b.0);
        if y.key < x.key {
            core::mem::swap(&mut x, &mut y);
        }
        node.pairs = alloc::vec![x, y];
        return write_node(s, 0, MAX_DEPTH, &node);
    }
    let (ia, ib) = (chunk(a.1, depth), chunk(b.1, depth));
    if ia == ib {
        let child = two_pair_subtree(s, depth + 1, a, b)?;
        node.insert_child(ia, child);
    } else {
        node.insert_pair(ia, a.0);
        node.insert_pair(ib, b.0);
    }
    write_node(s, 0, depth, &node)
}

/// Inserts or replaces `pair` (whose key hashes to `hash`) in the subtree at `off`.
/// `hash_of` hashes keys already in the trie when two must be split apart. Returns the
/// subtree's new offset and the value replaced, if the key was there.
pub(crate) fn insert<S: NodeStoreMut + ?Sized>(
    s: &mut S,
    hash_of: &dyn Fn(&[u8]) -> [u64; 2],
    off: u64,
    depth: u32,
    hash: [u64; 2],
    pair: PairBuf,
) -> Result<(u64, Option<ValueBuf>), Error> {
    if off == 0 {
        let mut node = NodeBuf::default();
        node.insert_pair(chunk(hash, depth), pair);
        return Ok((write_node(s, 0, depth, &node)?, None));
    }
    let mut node = decode(s, off, depth)?;
    if depth >= MAX_DEPTH {
        let replaced = match node
            .pairs
            .binary_search_by(|p| p.key.as_slice().cmp(&pair.key))
        {
            Ok(i) => Some(core::mem::replace(&mut node.pairs[i], pair).value),
            Err(i) => {
                node.pairs.insert(i, pair);
                None
            }
        };
        return Ok((write_node(s, off, depth, &node)?, replaced));
    }
    let idx = chunk(hash, depth);
    let bit = 1u64 << idx;
    let replaced = if node.datamap & bit != 0 {
        let existing = node.pair_mut(idx);
        if existing.key == pair.key {
            Some(core::mem::replace(&mut existing.value, pair.value))
        } else {
            let existing = node.take_pair(idx);
            let existing_hash = hash_of(&existing.key);
            let child = two_pair_subtree(s, depth + 1, (existing, existing_hash), (pair, hash))?;
            node.insert_child(idx, child);
            None
        }
    } else if node.nodemap & bit != 0 {
        let rank = (node.nodemap & (bit - 1)).count_ones() as usize;
        let child = node.children[rank];
        let (new_child, replaced) = insert(s, hash_of, child, depth + 1, hash, pair)?;
        if new_child == child {
            // The child was the transaction's own and changed in place.
            return Ok((off, replaced));
        }
        node.set_child(idx, new_child);
        replaced
    } else {
        node.insert_pair(idx, pair);
        None
    };
    Ok((write_node(s, off, depth, &node)?, replaced))
}

/// What removing a key did to a subtree.
pub(crate) enum Removal {
    /// The key was not there; nothing changed.
    NotFound,
    /// The subtree is now at this offset (possibly the same).
    Node(u64),
    /// The subtree shrank to one pair, which belongs inline in the parent.
    Collapsed(PairBuf),
    /// The subtree is empty (only a root can become empty).
    Emptied,
}

/// Removes `key` from the subtree at `off`; returns what became of the subtree and the
/// removed value.
pub(crate) fn remove<S: NodeStoreMut + ?Sized>(
    s: &mut S,
    off: u64,
    depth: u32,
    hash: [u64; 2],
    key: &[u8],
) -> Result<(Removal, Option<ValueBuf>), Error> {
    if off == 0 {
        return Ok((Removal::NotFound, None));
    }
    let mut node = decode(s, off, depth)?;
    let removed;
    if depth >= MAX_DEPTH {
        let Ok(i) = node.pairs.binary_search_by(|p| p.key.as_slice().cmp(key)) else {
            return Ok((Removal::NotFound, None));
        };
        removed = node.pairs.remove(i).value;
    } else {
        let idx = chunk(hash, depth);
        let bit = 1u64 << idx;
        if node.datamap & bit != 0 {
            if node.pair_mut(idx).key != key {
                return Ok((Removal::NotFound, None));
            }
            removed = node.take_pair(idx).value;
        } else if node.nodemap & bit != 0 {
            let rank = (node.nodemap & (bit - 1)).count_ones() as usize;
            let child = node.children[rank];
            let (result, value) = remove(s, child, depth + 1, hash, key)?;
            match result {
                Removal::NotFound => return Ok((Removal::NotFound, None)),
                Removal::Node(c) if c == child => return Ok((Removal::Node(off), value)),
                Removal::Node(c) => node.set_child(idx, c),
                Removal::Collapsed(pair) => {
                    if depth > 0 && node.pairs.is_empty() && node.children.len() == 1 {
                        // This node only led to the collapsed subtree: collapse it too.
                        s.free_entry(off)?;
                        return Ok((Removal::Collapsed(pair), value));
                    }
                    node.remove_child(idx);
                    node.insert_pair(idx, pair);
                }
                Removal::Emptied => node.remove_child(idx),
            }
            return finish_removal(s, off, depth, node, value);
        } else {
            return Ok((Removal::NotFound, None));
        }
    }
    finish_removal(s, off, depth, node, Some(removed))
}

/// Writes a node after a removal, collapsing it when the canonical form says so.
fn finish_removal<S: NodeStoreMut + ?Sized>(
    s: &mut S,
    off: u64,
    depth: u32,
    mut node: NodeBuf,
    value: Option<ValueBuf>,
) -> Result<(Removal, Option<ValueBuf>), Error> {
    if node.pairs.is_empty() && node.children.is_empty() {
        s.free_entry(off)?;
        return Ok((Removal::Emptied, value));
    }
    if depth > 0 && node.pairs.len() == 1 && node.children.is_empty() {
        s.free_entry(off)?;
        return Ok((Removal::Collapsed(node.pairs.remove(0)), value));
    }
    Ok((Removal::Node(write_node(s, off, depth, &node)?), value))
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
