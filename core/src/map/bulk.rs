//! Filling an empty trie bottom-up: `Map::bulk_load` and `WriteTxn::fill`.
//!
//! The pairs are placed by an MSD radix sort on their hash chunks, which is the trie's own
//! shape: at each depth one counting pass splits a run of pairs into the 64 slots of a
//! branch; a slot with one key holds it, a slot with more becomes a child built the same
//! way one level down. Children are written before their parents, each node once, at its
//! exact size, straight from the caller's key and value bytes (no per-pair copies).
//!
//! The counting passes are stable, so among pairs with the same key the one given last
//! is still last in its run, and wins. Values too long to be inline are written first,
//! in the order given (the caller does that), so the image is the same whatever the
//! path order.

use alloc::vec::Vec;

use super::node::{MAX_DEPTH, PairRef, ValueRef, chunk, encode_branch_refs, encode_collision_refs};
use super::trie::NodeStoreMut;
use crate::Error;
use crate::buffer::format::{EntryKind, HEADER_LEN};

/// A pair to place: its hash, its key and its value (inline bytes or a value entry
/// already written).
#[derive(Clone, Copy)]
pub(crate) struct Item<'a> {
    pub(crate) hash: [u64; 2],
    pub(crate) key: &'a [u8],
    pub(crate) value: ValueRef<'a>,
}

/// Builds the trie holding `items` (in the order given; later ones win over earlier
/// ones with the same key) and returns its root and its number of keys. The root is a
/// branch even for one pair; no items is no root.
pub(crate) fn build_root<S: NodeStoreMut + ?Sized>(
    store: &mut S,
    items: &mut [Item<'_>],
) -> Result<(u64, u64), Error> {
    if items.is_empty() {
        return Ok((0, 0));
    }
    let mut spare = items.to_vec();
    let mut scratch = Vec::new();
    let mut b = Builder {
        store,
        scratch: &mut scratch,
    };
    b.branch(items, &mut spare, 0)
}

struct Builder<'b, S: NodeStoreMut + ?Sized> {
    store: &'b mut S,
    /// One encoding buffer for every node: a node is encoded after all its children
    /// were written.
    scratch: &'b mut Vec<u8>,
}

impl<S: NodeStoreMut + ?Sized> Builder<'_, S> {
    /// Writes the branch at `depth` holding `items` (`spare` is as long, for the
    /// counting pass) and returns its offset and key count.
    fn branch<'a>(
        &mut self,
        items: &mut [Item<'a>],
        spare: &mut [Item<'a>],
        depth: u32,
    ) -> Result<(u64, u64), Error> {
        if depth >= MAX_DEPTH {
            return self.collision(items, depth);
        }
        // Counting pass: bucket by the chunk at this depth, stably, into `spare`.
        let mut starts = [0usize; 65];
        for it in items.iter() {
            starts[chunk(it.hash, depth) + 1] += 1;
        }
        for i in 0..64 {
            starts[i + 1] += starts[i];
        }
        let mut next = starts;
        for it in items.iter() {
            let c = chunk(it.hash, depth);
            spare[next[c]] = *it;
            next[c] += 1;
        }
        let mut children = [0u64; 64];
        let mut child_count = 0;
        let mut pair_at = [0usize; 64];
        let mut pair_count = 0;
        let (mut datamap, mut nodemap, mut keys) = (0u64, 0u64, 0u64);
        for idx in 0..64 {
            let (lo, hi) = (starts[idx], starts[idx + 1]);
            if lo == hi {
                continue;
            }
            let (earlier, last) = (&spare[lo..hi - 1], &spare[hi - 1]);
            if earlier
                .iter()
                .all(|it| it.hash == last.hash && it.key == last.key)
            {
                // One key (given once or repeated): the last one given stays.
                for lost in earlier {
                    self.drop_value(lost)?;
                }
                pair_at[pair_count] = hi - 1;
                pair_count += 1;
                datamap |= 1 << idx;
                keys += 1;
            } else {
                let (child, n) = self.branch(&mut spare[lo..hi], &mut items[lo..hi], depth + 1)?;
                children[child_count] = child;
                child_count += 1;
                nodemap |= 1 << idx;
                keys += n;
            }
        }
        let mut pairs = [PairRef {
            key: &[],
            value: ValueRef::Inline(&[]),
        }; 64];
        for (slot, &at) in pairs.iter_mut().zip(&pair_at[..pair_count]) {
            *slot = PairRef {
                key: spare[at].key,
                value: spare[at].value,
            };
        }
        encode_branch_refs(
            datamap,
            nodemap,
            &children[..child_count],
            &pairs[..pair_count],
            self.scratch,
        );
        Ok((self.write(EntryKind::Branch, depth)?, keys))
    }

    /// Writes the collision node holding `items` (their hashes agree on every chunk).
    fn collision(&mut self, items: &mut [Item<'_>], depth: u32) -> Result<(u64, u64), Error> {
        // Stable: among equal keys the last one given stays last.
        items.sort_by(|a, b| a.key.cmp(b.key));
        let mut pairs = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            if items.get(i + 1).is_some_and(|next| next.key == it.key) {
                self.drop_value(it)?;
                continue;
            }
            pairs.push(PairRef {
                key: it.key,
                value: it.value,
            });
        }
        encode_collision_refs(&pairs, self.scratch);
        Ok((self.write(EntryKind::Collision, depth)?, pairs.len() as u64))
    }

    /// Frees the value entry of a pair that a later one with the same key replaced.
    fn drop_value(&mut self, lost: &Item<'_>) -> Result<(), Error> {
        match lost.value {
            ValueRef::Entry { offset, .. } => self.store.free_entry(offset),
            ValueRef::Inline(_) => Ok(()),
        }
    }

    /// Writes the encoded node in `scratch` as an entry of exactly its size.
    fn write(&mut self, kind: EntryKind, depth: u32) -> Result<u64, Error> {
        let capacity = HEADER_LEN as u64 + self.scratch.len() as u64;
        self.store
            .write_entry(kind, u64::from(depth), self.scratch, capacity)
    }
}
