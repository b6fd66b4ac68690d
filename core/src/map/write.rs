//! Changing the trie inside a write transaction.
//!
//! A transaction does not write trie nodes as it goes. The first time it changes a
//! committed node it copies its bytes into the transaction's arena (and frees the committed
//! entry, which stays readable until the commit no longer needs it); from then on the
//! node's bytes are edited in place. At commit every node in the arena is written
//! exactly once, children first, at its exact size. So a transaction that touches a node
//! a thousand times writes it once, a bulk load leaves no holes, and nothing in the
//! region changes before the commit.
//!
//! Keys sit at the shallowest depth where their hash chunk is unique among their
//! neighbours (CHAMP's layout): a branch slot holds a pair inline or a child node, and a
//! child subtree always holds at least two pairs. Removal restores that: a subtree left
//! with one pair collapses into its parent's slot. So the trie's shape depends only on
//! the set of keys.

use alloc::vec::Vec;

use super::node::{MAX_DEPTH, NodeBuf, PairBuf, Slot, ValueRef, chunk, set_pair_entry};
use super::trie::{self, NodeRef, NodeStore, NodeStoreMut};
use crate::Error;
use crate::buffer::format::{EntryKind, HEADER_LEN};
use crate::error::Corrupt;

/// A node as a transaction refers to it: a committed entry's offset (a multiple of 8),
/// or an arena slot `i` as `i << 1 | 1`. `0` is no node.
pub(crate) type NodeId = u64;

fn is_dirty(id: NodeId) -> bool {
    id & 1 == 1
}

fn slot_of(id: NodeId) -> usize {
    (id >> 1) as usize
}

fn dirty_id(slot: usize) -> NodeId {
    ((slot as u64) << 1) | 1
}

/// The nodes a transaction changed, in memory until commit.
///
/// The map keeps its arena from one transaction to the next (see
/// [`recycle`](Self::recycle)): the byte buffers of the nodes a commit wrote are the
/// buffers the next transaction copies its nodes into, so a small commit allocates no
/// node buffer at all once warm. (With glibc, a `malloc` that misses its thread cache
/// sorts the arena's unsorted free chunks first, up to thousands of them when another
/// thread has been freeing memory: per-commit node copies made that a third of a
/// durable single put's time at 1,000,000 keys, see docs/PERFORMANCE.md.)
#[derive(Default)]
pub(crate) struct Arena {
    nodes: Vec<NodeBuf>,
    /// Buffers of nodes already written, for the next nodes copied in.
    #[cfg(not(target_arch = "arm"))]
    spare: Vec<Vec<u8>>,
}

/// Spare node buffers kept between transactions: more than a single put's path, few
/// enough not to matter.
#[cfg(not(target_arch = "arm"))]
const SPARE_BUFFERS: usize = 32;
/// Largest spare buffer kept (a node's payload is at most a few KiB but for a large
/// collision node).
#[cfg(not(target_arch = "arm"))]
const SPARE_BYTES: usize = 16 << 10;
/// An arena whose node table grew past this many nodes (a large transaction) is not
/// kept whole: its table is dropped rather than held for the next transaction (a table
/// of 1,024 nodes is 48 KiB).
#[cfg(not(target_arch = "arm"))]
const KEPT_NODES: usize = 1024;

// Not on the firmware, whose heap is small and whose image is counted in bytes: there a
// transaction's arena starts empty and its buffers are dropped, as before.
#[cfg(not(target_arch = "arm"))]
impl Arena {
    /// A buffer for a node's bytes: a spare one, or a new, empty one.
    fn buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps `bytes` (a node's buffer, no longer needed) for a later node.
    fn keep(&mut self, bytes: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS && (1..=SPARE_BYTES).contains(&bytes.capacity()) {
            self.spare.push(bytes);
        }
    }

    /// Empties the arena for the next transaction, keeping spare buffers.
    pub(crate) fn recycle(&mut self) {
        if self.nodes.capacity() > KEPT_NODES {
            self.nodes = Vec::new();
            return;
        }
        while let Some(node) = self.nodes.pop() {
            self.keep(node.into_bytes());
        }
    }
}

#[cfg(target_arch = "arm")]
impl Arena {
    fn buffer(&mut self) -> Vec<u8> {
        Vec::new()
    }

    fn keep(&mut self, _bytes: Vec<u8>) {}
}

impl Arena {
    fn push(&mut self, node: NodeBuf) -> NodeId {
        self.nodes.push(node);
        dirty_id(self.nodes.len() - 1)
    }

    fn get(&self, id: NodeId) -> &NodeBuf {
        &self.nodes[slot_of(id)]
    }

    fn get_mut(&mut self, id: NodeId) -> &mut NodeBuf {
        &mut self.nodes[slot_of(id)]
    }
}

/// The nodes on a key's path, root first: one a level, down to a collision node.
const PATH: usize = MAX_DEPTH as usize + 1;
type Path = [NodeId; PATH];

/// A transaction's view of the trie: its arena over the committed entries of `store`.
pub(crate) struct TxnTrie<'a, S: NodeStoreMut> {
    pub(crate) store: &'a mut S,
    pub(crate) arena: &'a mut Arena,
}

impl<S: NodeStoreMut> TxnTrie<'_, S> {
    /// Makes `id` (at `depth`) a node of the arena, copying a committed node in.
    /// Inlined on the host, where most calls find the node already the arena's.
    #[cfg_attr(not(target_arch = "arm"), inline)]
    fn own(&mut self, id: NodeId, depth: u32) -> Result<NodeId, Error> {
        if is_dirty(id) {
            return Ok(id);
        }
        self.copy_in(id, depth)
    }

    /// [`own`](Self::own) for a committed node.
    fn copy_in(&mut self, id: NodeId, depth: u32) -> Result<NodeId, Error> {
        let bytes = self.arena.buffer();
        let node = NodeBuf::from_node_in(&trie::read_node(&*self.store, id, depth)?, bytes)?;
        self.adopt(id, node)
    }

    /// Puts `node`, the copy of the committed node `id`, into the arena in its place.
    fn adopt(&mut self, id: NodeId, node: NodeBuf) -> Result<NodeId, Error> {
        // Damage must be reported, not copied into a fresh node with a valid checksum.
        self.store.entry_verified(id)?;
        // The committed node stays readable (for snapshots and crash recovery) until the
        // commit that replaces it no longer needs it.
        self.store.free_entry(id)?;
        Ok(self.arena.push(node))
    }

    /// Builds the subtree at `depth` holding two pairs whose hashes agree above it:
    /// a node holding both where their hash chunks first differ (or a collision node),
    /// under a chain of one-child branches.
    fn two_pair_subtree(
        &mut self,
        depth: u32,
        a: (&PairBuf, [u64; 2]),
        b: (&PairBuf, [u64; 2]),
    ) -> NodeId {
        let hash = a.1;
        let mut d = depth;
        while d < MAX_DEPTH && chunk(hash, d) == chunk(b.1, d) {
            d += 1;
        }
        let mut node = NodeBuf::empty(d < MAX_DEPTH);
        for (pair, hash) in [a, b] {
            if let Slot::Empty { rank, bit } = node.slot(d, hash, pair.key()) {
                node.insert_rank(rank, bit, pair);
            }
        }
        let mut id = self.arena.push(node);
        while d > depth {
            d -= 1;
            let mut up = NodeBuf::empty(true);
            up.insert_child(chunk(hash, d), id);
            id = self.arena.push(up);
        }
        id
    }

    /// Makes every node on the path of `key` (with `hash`) from `root` down the
    /// transaction's own, each linked from its parent's child slot, into `path`: the
    /// node at depth `d` is `path[d]`. The path ends at the node whose slot for the key
    /// is not a child; returns that node's depth and the slot.
    fn descend(
        &mut self,
        root: NodeId,
        hash: [u64; 2],
        key: &[u8],
        path: &mut Path,
    ) -> Result<(usize, Slot), Error> {
        let (mut id, mut depth, mut parent_slot) = (root, 0, 0);
        loop {
            let owned = self.own(id, depth as u32)?;
            path[depth] = owned;
            if depth > 0 {
                self.arena
                    .get_mut(path[depth - 1])
                    .set_child(parent_slot, owned);
            }
            let node = self.arena.get(owned);
            // A collision node, at the deepest level, has no child slots.
            match node.slot(depth as u32, hash, key) {
                Slot::Child(idx) => {
                    (id, parent_slot) = (node.child_at(idx), idx);
                    depth += 1;
                }
                slot => return Ok((depth, slot)),
            }
        }
    }

    /// Inserts or replaces `pair` (whose key hashes to `hash`) in the trie at `root`
    /// (`0`: none). `hash_of` hashes keys already in the trie when two must be split
    /// apart. Returns the new root and, if the key was there, the replaced value's
    /// entry (`Some(None)` for an inline value).
    pub(crate) fn insert(
        &mut self,
        hash_of: &dyn Fn(&[u8]) -> [u64; 2],
        root: NodeId,
        hash: [u64; 2],
        pair: PairBuf,
    ) -> Result<(NodeId, Option<Option<u64>>), Error> {
        let root = if root == 0 {
            self.arena.push(NodeBuf::empty(true))
        } else {
            root
        };
        let path = &mut [0; PATH];
        let (depth, slot) = self.descend(root, hash, pair.key(), path)?;
        let id = path[depth];
        let depth = depth as u32;
        let node = self.arena.get_mut(id);
        let replaced = match slot {
            Slot::Pair {
                rank,
                bit,
                found: true,
            } => Some(node.replace_rank(rank, bit, &pair).entry()),
            Slot::Pair { rank, bit, .. } => {
                // Another key holds the slot: both go one level down.
                let existing = node.remove_rank(rank, bit);
                let existing_hash = hash_of(existing.key());
                let child =
                    self.two_pair_subtree(depth + 1, (&existing, existing_hash), (&pair, hash));
                self.arena
                    .get_mut(id)
                    .insert_child(chunk(hash, depth), child);
                None
            }
            Slot::Empty { rank, bit } => {
                node.insert_rank(rank, bit, &pair);
                None
            }
            Slot::Child(_) => return Err(Error::corrupted(0, Corrupt::InsertionLostPath)),
        };
        Ok((path[0], replaced))
    }

    /// Removes `key`, which the caller found in the trie at `root`; returns the new
    /// root (`0` when the trie emptied) and the removed value's entry, if it had one.
    pub(crate) fn remove(
        &mut self,
        root: NodeId,
        hash: [u64; 2],
        key: &[u8],
    ) -> Result<(NodeId, Option<u64>), Error> {
        let path = &mut [0; PATH];
        let (mut depth, slot) = self.descend(root, hash, key, path)?;
        let Slot::Pair {
            rank,
            bit,
            found: true,
        } = slot
        else {
            return Err(Error::corrupted(0, Corrupt::KeyVanishedDuringRemoval));
        };
        let removed = self
            .arena
            .get_mut(path[depth])
            .remove_rank(rank, bit)
            .entry();
        // Up the path, what became of the subtree below: `Some(None)` it emptied,
        // `Some(Some(pair))` it shrank to one pair, which belongs in the parent's slot.
        let mut below: Option<Option<PairBuf>> = None;
        loop {
            let node = self.arena.get_mut(path[depth]);
            let idx = chunk(hash, depth as u32);
            match below {
                None => {}
                Some(Some(pair))
                    if depth > 0 && node.pair_count() == 0 && node.child_count() == 1 =>
                {
                    // This node only led to the collapsed subtree: it goes too.
                    below = Some(Some(pair));
                    depth -= 1;
                    continue;
                }
                Some(collapsed) => {
                    node.remove_child(idx);
                    if let Some(pair) = collapsed {
                        node.insert_rank(node.pair_rank(idx), 1 << idx, &pair);
                    }
                }
            }
            below = if node.pair_count() == 0 && node.child_count() == 0 {
                Some(None)
            } else if depth > 0 && node.pair_count() == 1 && node.child_count() == 0 {
                Some(Some(node.remove_rank(0, 0)))
            } else {
                // Its parents already link it.
                return Ok((path[0], removed));
            };
            if depth == 0 {
                // A root only empties (it never collapses into a parent).
                return Ok((0, removed));
            }
            depth -= 1;
        }
    }

    /// Compaction's pass: takes into the arena every committed node that ends above
    /// `limit` where a lower place is free, with the path to it, and copies value
    /// entries the same way, so that the commit writes them low. Stops taking new work
    /// once `budget` bytes were taken. Returns the subtree's node.
    pub(crate) fn relocate(
        &mut self,
        id: NodeId,
        depth: u32,
        limit: u64,
        budget: &mut u64,
    ) -> Result<NodeId, Error> {
        if is_dirty(id) || id == 0 || *budget == 0 {
            return Ok(id);
        }
        let (header, _) = self.store.entry(id)?;
        let cap = u64::from(header.capacity);
        // Read in place: most nodes a step visits move nothing, and copying each one
        // (as `own` does) made a step cost a copy of the whole trie.
        // One list (one `Vec` type, one allocation): the children, relocated in place,
        // then the ranks (as `u64`) of the values that move.
        let mut list: Vec<u64> = Vec::new();
        if let NodeRef::Branch(b) = trie::read_node(&*self.store, id, depth)? {
            for rank in 0..b.child_count() {
                list.push(b.child(rank)?);
            }
        }
        let children = list.len();
        let mut moved = false;
        for child in &mut list {
            let new = self.relocate(*child, depth + 1, limit, budget)?;
            moved |= new != *child;
            *child = new;
        }
        let moves_down =
            |store: &S, off: u64, cap: u64| off + cap > limit && store.lowest_fit(cap) < off;
        // The ranks of the values that move, all chosen before any is copied.
        let node = trie::read_node(&*self.store, id, depth)?;
        for rank in 0..node.pair_count() {
            if let ValueRef::Entry { offset, .. } = node.pair(rank)?.value {
                let (vh, _) = self.store.entry(offset)?;
                if moves_down(self.store, offset, u64::from(vh.capacity)) {
                    list.push(rank as u64);
                }
            }
        }
        if !moved && list.len() == children && !moves_down(self.store, id, cap) {
            return Ok(id);
        }
        // Something moves: the node's copy goes into the arena.
        let mut node = NodeBuf::from_node_in(&node, self.arena.buffer())?;
        let (children, values) = list.split_at(children);
        for (rank, &child) in children.iter().enumerate() {
            node.set_child_rank(rank, child);
        }
        *budget = budget.saturating_sub(cap);
        for &rank in values {
            let rank = rank as usize;
            let ValueRef::Entry { offset, len } = node.value_at_rank(rank) else {
                continue;
            };
            let (vh, bytes) = self.store.entry_verified(offset)?;
            if vh.kind != EntryKind::Value || vh.len != len {
                return Err(Error::corrupted(
                    offset,
                    Corrupt::ExpectedValueEntryOfThisLength,
                ));
            }
            let bytes = bytes.to_vec();
            let new = self.store.write_entry(EntryKind::Value, vh.id, &bytes, 0)?;
            self.store.free_entry(offset)?;
            *budget = budget.saturating_sub(u64::from(vh.capacity));
            set_pair_entry(node.pair_at_rank_mut(rank), new, len);
        }
        self.adopt(id, node)
    }

    /// Writes the arena's nodes reachable from `id` (children first) and returns the
    /// committed offset of `id`.
    pub(crate) fn flush(&mut self, id: NodeId, depth: u32) -> Result<u64, Error> {
        if !is_dirty(id) {
            return Ok(id);
        }
        let mut node = core::mem::take(self.arena.get_mut(id));
        for rank in 0..node.child_count() {
            let child = self.flush(node.child(rank), depth + 1)?;
            node.set_child_rank(rank, child);
        }
        let kind = if depth < MAX_DEPTH {
            EntryKind::Branch
        } else {
            EntryKind::Collision
        };
        let payload = node.finish();
        let capacity = HEADER_LEN as u64 + payload.len() as u64;
        let written = self
            .store
            .write_entry(kind, u64::from(depth), payload, capacity);
        self.arena.keep(node.into_bytes());
        written
    }
}

/// Where a walk down `key`'s path through a transaction's own nodes ends.
enum OwnPath {
    /// The key is in the own node `id`, at this rank among its pairs.
    Pair(NodeId, usize),
    /// The key is absent.
    Absent,
    /// The path leaves the own nodes for the committed node at this offset and depth
    /// (`0`: no node).
    Committed(u64, u32),
}

/// Walks `key`'s path through the transaction's own (arena) nodes: one walk for
/// [`get`] and [`own_pair_mut`].
fn walk_own(arena: &Arena, root: NodeId, hash: [u64; 2], key: &[u8]) -> OwnPath {
    let mut id = root;
    let mut depth = 0;
    while is_dirty(id) {
        let node = arena.get(id);
        match node.slot(depth, hash, key) {
            Slot::Child(idx) => {
                id = node.child_at(idx);
                depth += 1;
            }
            Slot::Pair {
                rank, found: true, ..
            } => return OwnPath::Pair(id, rank),
            _ => return OwnPath::Absent,
        }
    }
    OwnPath::Committed(id, depth)
}

/// Looks `key` up in a transaction's trie: arena nodes first, committed ones below.
pub(crate) fn get<'a, S: NodeStore>(
    store: &'a S,
    arena: &'a Arena,
    root: NodeId,
    hash: [u64; 2],
    key: &[u8],
) -> Result<Option<&'a [u8]>, Error> {
    let value = match walk_own(arena, root, hash, key) {
        OwnPath::Pair(id, rank) => arena.get(id).value_at_rank(rank),
        OwnPath::Absent | OwnPath::Committed(0, _) => return Ok(None),
        OwnPath::Committed(id, depth) => match trie::get_from(store, id, depth, hash, key)? {
            Some(v) => v,
            None => return Ok(None),
        },
    };
    trie::value_bytes(store, value).map(Some)
}

/// The encoded pair of `key` if it lives in one of the transaction's own (arena) nodes,
/// for an in-place rewrite of its value; `None` when the key is absent or only in
/// committed nodes.
#[cfg(feature = "value-slack")]
pub(crate) fn own_pair_mut<'a>(
    arena: &'a mut Arena,
    root: NodeId,
    hash: [u64; 2],
    key: &[u8],
) -> Option<&'a mut [u8]> {
    match walk_own(arena, root, hash, key) {
        OwnPath::Pair(id, rank) => Some(arena.get_mut(id).pair_at_rank_mut(rank)),
        _ => None,
    }
}
