//! The id tree: the buffer's copy-on-write index from stable id to record.
//!
//! A radix tree with 64 slots a node, 6 bits of the id a level (docs/FORMAT.md, "Id
//! node"). Level-0 slots point at records, tagged live or removed; higher slots point at
//! child nodes. A change copies the path from the root unless a node already belongs to
//! the running transaction, in which case it is changed in place.

use alloc::vec::Vec;

use super::format::{EntryHeader, EntryKind, HEADER_LEN};
use super::space::{Space, Walker};
use crate::error::Corrupt;
use crate::{Error, Region};

/// Slots per node.
pub(crate) const FANOUT: usize = 64;
const BITS: u32 = 6;
/// Every node is allocated with room for all 64 slots, so slots are added in place.
pub(crate) const NODE_CAPACITY: u64 = (HEADER_LEN + 8 + 8 * FANOUT) as u64;
/// Most levels a tree can have: 64-bit ids, 6 bits a level.
pub(crate) const MAX_HEIGHT: u32 = 11;

/// What a slot points to, from the low 3 bits of its tagged offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A child id node.
    Node(u64),
    /// A live record.
    Live(u64),
    /// A removed record, kept until compaction.
    Removed(u64),
}

impl Slot {
    pub(crate) fn offset(self) -> u64 {
        match self {
            Slot::Node(o) | Slot::Live(o) | Slot::Removed(o) => o,
        }
    }

    fn encode(self) -> u64 {
        match self {
            Slot::Node(o) => o,
            Slot::Live(o) => o | 1,
            Slot::Removed(o) => o | 2,
        }
    }

    fn decode(raw: u64, level: u32, at: u64) -> Result<Slot, Error> {
        let off = raw & !7;
        match (raw & 7, level) {
            (0, 1..) => Ok(Slot::Node(off)),
            (1, 0) => Ok(Slot::Live(off)),
            (2, 0) => Ok(Slot::Removed(off)),
            _ => Err(Error::corrupted(at, Corrupt::BadIdNodeSlotTag)),
        }
    }
}

/// A node's slots, decoded.
#[derive(Clone, Debug)]
struct Node {
    bitmap: u64,
    slots: Vec<u64>,
}

impl Node {
    fn empty() -> Self {
        Node {
            bitmap: 0,
            slots: Vec::new(),
        }
    }

    fn parse(payload: &[u8], at: u64) -> Result<Self, Error> {
        let bitmap_bytes: [u8; 8] = payload
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::corrupted(at, Corrupt::IdNodeTooShort))?;
        let bitmap = u64::from_le_bytes(bitmap_bytes);
        let n = bitmap.count_ones() as usize;
        if payload.len() != 8 + 8 * n {
            return Err(Error::corrupted(
                at,
                Corrupt::IdNodeLengthDoesNotMatchBitmap,
            ));
        }
        let slots = payload[8..]
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect();
        Ok(Node { bitmap, slots })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 8 * self.slots.len());
        out.extend_from_slice(&self.bitmap.to_le_bytes());
        for s in &self.slots {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    fn rank(&self, idx: usize) -> usize {
        (self.bitmap & ((1u64 << idx) - 1)).count_ones() as usize
    }

    fn get(&self, idx: usize) -> Option<u64> {
        (self.bitmap & (1 << idx) != 0).then(|| self.slots[self.rank(idx)])
    }

    fn set(&mut self, idx: usize, value: Option<u64>) {
        let rank = self.rank(idx);
        let present = self.bitmap & (1 << idx) != 0;
        match (value, present) {
            (Some(v), true) => self.slots[rank] = v,
            (Some(v), false) => {
                self.slots.insert(rank, v);
                self.bitmap |= 1 << idx;
            }
            (None, true) => {
                self.slots.remove(rank);
                self.bitmap &= !(1 << idx);
            }
            (None, false) => {}
        }
    }
}

fn slot_index(id: u64, level: u32) -> usize {
    ((id >> (BITS * level)) & (FANOUT as u64 - 1)) as usize
}

/// Ids below this fit a tree of `height` levels.
fn id_limit(height: u32) -> u64 {
    if height >= MAX_HEIGHT {
        u64::MAX
    } else {
        1u64 << (BITS * height)
    }
}

/// Reads the id node at `offset`, checking its kind and level (its checksum was checked
/// by [`verify_nodes`] when the buffer was opened, or it was written since).
fn read_node<R: Region>(space: &Space<R>, offset: u64, level: u32) -> Result<Node, Error> {
    let (header, payload) = space.entry(offset)?;
    if header.kind != EntryKind::IdNode || header.id != u64::from(level) {
        return Err(Error::corrupted(offset, Corrupt::ExpectedIdNodeOfThisLevel));
    }
    Node::parse(payload, offset)
}

/// Finds the slot of `id`, if it has one.
pub(crate) fn lookup<R: Region>(
    space: &Space<R>,
    root: u64,
    height: u32,
    id: u64,
) -> Result<Option<Slot>, Error> {
    if root == 0 || id >= id_limit(height) {
        return Ok(None);
    }
    let mut node_off = root;
    for level in (0..height).rev() {
        let node = read_node(space, node_off, level)?;
        let Some(raw) = node.get(slot_index(id, level)) else {
            return Ok(None);
        };
        match Slot::decode(raw, level, node_off)? {
            Slot::Node(child) => node_off = child,
            record => return Ok(Some(record)),
        }
    }
    Err(Error::corrupted(root, Corrupt::IdTreeDeeperThanHeight))
}

/// Sets (or, with `None`, clears) the slot of `id`, copying the path as needed. Returns
/// the new root and height.
pub(crate) fn set<R: Region>(
    space: &mut Space<R>,
    mut root: u64,
    mut height: u32,
    id: u64,
    value: Option<Slot>,
) -> Result<(u64, u32), Error> {
    while id >= id_limit(height) {
        if value.is_none() {
            return Ok((root, height));
        }
        if root != 0 {
            let mut node = Node::empty();
            node.set(0, Some(Slot::Node(root).encode()));
            root = space.write_entry(
                EntryKind::IdNode,
                u64::from(height),
                &node.encode(),
                NODE_CAPACITY,
            )?;
        }
        height += 1;
    }
    let new_root = set_in(space, root, height - 1, id, value)?;
    Ok((new_root, if new_root == 0 { 0 } else { height }))
}

fn set_in<R: Region>(
    space: &mut Space<R>,
    node_off: u64,
    level: u32,
    id: u64,
    value: Option<Slot>,
) -> Result<u64, Error> {
    let mut node = if node_off == 0 {
        Node::empty()
    } else {
        read_node(space, node_off, level)?
    };
    let idx = slot_index(id, level);
    let new_raw = if level == 0 {
        value.map(Slot::encode)
    } else {
        let child = match node.get(idx) {
            Some(raw) => Slot::decode(raw, level, node_off)?.offset(),
            None => 0,
        };
        if child == 0 && value.is_none() {
            return Ok(node_off);
        }
        let new_child = set_in(space, child, level - 1, id, value)?;
        (new_child != 0).then(|| Slot::Node(new_child).encode())
    };
    if node.get(idx) == new_raw {
        return Ok(node_off);
    }
    node.set(idx, new_raw);
    write_node(space, node_off, level, &node)
}

/// Writes `node` in place of the one at `old` (copying unless the running transaction
/// owns it); an empty node is dropped. Returns the node's offset, or 0.
fn write_node<R: Region>(
    space: &mut Space<R>,
    old: u64,
    level: u32,
    node: &Node,
) -> Result<u64, Error> {
    if node.bitmap == 0 {
        if old != 0 {
            space.free_entry(old)?;
        }
        return Ok(0);
    }
    if old != 0 && space.is_own(old) {
        space.rewrite_own(old, &node.encode())?;
        return Ok(old);
    }
    let new = space.write_entry(
        EntryKind::IdNode,
        u64::from(level),
        &node.encode(),
        NODE_CAPACITY,
    )?;
    if old != 0 {
        space.free_entry(old)?;
    }
    Ok(new)
}

/// Compaction's callback: copies a record if it should move; returns its new slot and
/// the bytes copied.
pub(crate) type RelocateRecord<'a, R> =
    dyn FnMut(&mut Space<R>, Slot) -> Result<(Slot, u64), Error> + 'a;

/// Compaction's pass over the tree: `relocate_record` may copy each live record and
/// returns its (possibly new) slot and the bytes it copied; a node is copied when a slot
/// changed or when `should_move` says it lies too high and a lower place fits. Stops
/// taking new work once `budget` bytes were copied. Returns the node's new offset.
///
/// A node that lies too high moves **before** its children: moved afterwards, it would
/// find the holes below filled by its own records and land at the end of the region,
/// so that compaction grew the region instead of shrinking it.
pub(crate) fn relocate<R: Region>(
    space: &mut Space<R>,
    node_off: u64,
    level: u32,
    should_move: &dyn Fn(u64, u64) -> bool,
    relocate_record: &mut RelocateRecord<'_, R>,
    budget: &mut u64,
) -> Result<u64, Error> {
    let mut node = read_node(space, node_off, level)?;
    let mut at = node_off;
    let needs_move =
        !space.is_own(at) && should_move(at, NODE_CAPACITY) && space.lowest_fit(NODE_CAPACITY) < at;
    if needs_move {
        // The copy belongs to the running transaction: slot changes below rewrite it in
        // place.
        at = write_node(space, at, level, &node)?;
        *budget = budget.saturating_sub(NODE_CAPACITY);
    }
    let mut changed = false;
    for i in 0..node.slots.len() {
        if *budget == 0 {
            break;
        }
        let slot = Slot::decode(node.slots[i], level, at)?;
        let new = match slot {
            Slot::Node(child) => {
                let child = relocate(
                    space,
                    child,
                    level - 1,
                    should_move,
                    relocate_record,
                    budget,
                )?;
                Slot::Node(child)
            }
            record => {
                let (new, copied) = relocate_record(space, record)?;
                *budget = budget.saturating_sub(copied);
                new
            }
        };
        if new != slot {
            node.slots[i] = new.encode();
            changed = true;
        }
    }
    if !changed {
        return Ok(at);
    }
    write_node(space, at, level, &node)
}

/// Verifies the checksum of every node of the tree, parents before children.
///
/// Open verifies only what the commits since the last durable one wrote; a damaged slot
/// in an older node could point a record at a stale copy of itself (valid where it lies)
/// or be copied into a fresh node with a fresh checksum. Nodes are a small part of the
/// data, so the buffer checks them all once when it opens and trusts them afterwards
/// (records are checked on every read).
pub(crate) fn verify_nodes<R: Region>(
    space: &Space<R>,
    root: u64,
    height: u32,
) -> Result<(), Error> {
    for_each_node(space, root, height, &mut |off| {
        space.entry_verified(off).map(|_| ())
    })
}

/// Visits every node's offset, parents before children.
pub(crate) fn for_each_node<R: Region>(
    space: &Space<R>,
    root: u64,
    height: u32,
    f: &mut dyn FnMut(u64) -> Result<(), Error>,
) -> Result<(), Error> {
    if root == 0 {
        return Ok(());
    }
    let mut stack = alloc::vec![(root, height - 1)];
    while let Some((off, level)) = stack.pop() {
        f(off)?;
        if level > 0 {
            let node = read_node(space, off, level)?;
            for &raw in &node.slots {
                stack.push((Slot::decode(raw, level, off)?.offset(), level - 1));
            }
        }
    }
    Ok(())
}

/// Visits every slot in id order: `f(id, slot)`.
pub(crate) fn for_each<R: Region>(
    space: &Space<R>,
    root: u64,
    height: u32,
    f: &mut dyn FnMut(u64, Slot) -> Result<(), Error>,
) -> Result<(), Error> {
    if root == 0 {
        return Ok(());
    }
    for_each_in(space, root, height - 1, 0, f)
}

fn for_each_in<R: Region>(
    space: &Space<R>,
    node_off: u64,
    level: u32,
    prefix: u64,
    f: &mut dyn FnMut(u64, Slot) -> Result<(), Error>,
) -> Result<(), Error> {
    let node = read_node(space, node_off, level)?;
    for idx in 0..FANOUT {
        let Some(raw) = node.get(idx) else { continue };
        let id = prefix | ((idx as u64) << (BITS * level));
        match Slot::decode(raw, level, node_off)? {
            Slot::Node(child) => for_each_in(space, child, level - 1, id, f)?,
            record => f(id, record)?,
        }
    }
    Ok(())
}

/// The id tree's edges, for the recovery walk and the free-space rebuild.
pub(crate) struct IdWalker;

impl Walker for IdWalker {
    fn children(
        &self,
        offset: u64,
        header: &EntryHeader,
        payload: &[u8],
        out: &mut Vec<u64>,
    ) -> Result<(), Error> {
        match header.kind {
            EntryKind::Record => Ok(()),
            EntryKind::IdNode => {
                let level = u32::try_from(header.id)
                    .ok()
                    .filter(|&l| l < MAX_HEIGHT)
                    .ok_or(Error::corrupted(offset, Corrupt::IdNodeLevelOutOfRange))?;
                let node = Node::parse(payload, offset)?;
                for &raw in &node.slots {
                    out.push(Slot::decode(raw, level, offset)?.offset());
                }
                Ok(())
            }
            _ => Err(Error::corrupted(offset, Corrupt::MapEntryInBuffer)),
        }
    }
}
