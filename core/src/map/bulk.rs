//! `bulk_load`: builds a whole trie bottom-up from a set of pairs, writing every node
//! once, children before parents, in path order.

use alloc::vec::Vec;

use super::node::{MAX_DEPTH, NodeBuf, PairBuf, chunk};
use super::trie::NodeStoreMut;
use crate::Error;
use crate::buffer::format::{EntryKind, HEADER_LEN};

/// A pair with its hash, ready to be placed.
pub(crate) struct Placed {
    pub(crate) hash: [u64; 2],
    pub(crate) pair: PairBuf,
}

/// The hash's path as one number, the chunk of depth 0 most significant: sorting by it
/// puts every subtree's pairs next to each other.
fn path_order(hash: [u64; 2]) -> u128 {
    (0..MAX_DEPTH).fold(0u128, |acc, d| (acc << 6) | chunk(hash, d) as u128)
}

/// Sorts `pairs` into path order (keys in byte order within a collision set) and drops
/// all but the last of any repeated key; returns the dropped ones.
pub(crate) fn sort_and_dedup(pairs: &mut Vec<Placed>) -> Vec<Placed> {
    // Stable, so among equal keys the last one given stays last.
    pairs.sort_by_cached_key(|p| path_order(p.hash));
    // Within one path (a collision set), keys in byte order; the path order is sorted
    // already, so only runs of equal hashes need the second pass.
    let mut start = 0;
    while start < pairs.len() {
        let path = path_order(pairs[start].hash);
        let end = start
            + pairs[start..]
                .iter()
                .take_while(|p| path_order(p.hash) == path)
                .count();
        pairs[start..end].sort_by(|a, b| a.pair.key.cmp(&b.pair.key));
        start = end;
    }
    let mut out: Vec<Placed> = Vec::with_capacity(pairs.len());
    let mut dropped = Vec::new();
    for p in pairs.drain(..) {
        match out.last_mut() {
            Some(last) if last.pair.key == p.pair.key => {
                dropped.push(core::mem::replace(last, p));
            }
            _ => out.push(p),
        }
    }
    *pairs = out;
    dropped
}

/// Writes the subtree at `depth` holding `pairs` (path-sorted, at least two) and returns
/// its offset.
pub(crate) fn build<S: NodeStoreMut + ?Sized>(
    store: &mut S,
    pairs: &mut [Placed],
    depth: u32,
) -> Result<u64, Error> {
    let mut node = NodeBuf::default();
    let (kind, payload) = if depth >= MAX_DEPTH {
        node.pairs = pairs.iter_mut().map(|p| take(&mut p.pair)).collect();
        (EntryKind::Collision, node.encode_collision())
    } else {
        let mut start = 0;
        while start < pairs.len() {
            let idx = chunk(pairs[start].hash, depth);
            let end = start
                + pairs[start..]
                    .iter()
                    .take_while(|p| chunk(p.hash, depth) == idx)
                    .count();
            if end - start == 1 {
                node.insert_pair(idx, take(&mut pairs[start].pair));
            } else {
                let child = build(store, &mut pairs[start..end], depth + 1)?;
                node.insert_child(idx, child);
            }
            start = end;
        }
        (EntryKind::Branch, node.encode_branch())
    };
    let capacity = HEADER_LEN as u64 + payload.len() as u64;
    store.write_entry(kind, u64::from(depth), &payload, capacity)
}

/// The root of `pairs`: a branch even for one pair (the root never collapses).
pub(crate) fn build_root<S: NodeStoreMut + ?Sized>(
    store: &mut S,
    pairs: &mut [Placed],
) -> Result<u64, Error> {
    match pairs {
        [] => Ok(0),
        [one] => {
            let mut node = NodeBuf::default();
            node.insert_pair(chunk(one.hash, 0), take(&mut one.pair));
            let payload = node.encode_branch();
            let capacity = HEADER_LEN as u64 + payload.len() as u64;
            store.write_entry(EntryKind::Branch, 0, &payload, capacity)
        }
        _ => build(store, pairs, 0),
    }
}

fn take(pair: &mut PairBuf) -> PairBuf {
    core::mem::replace(
        pair,
        PairBuf {
            key: Vec::new(),
            value: super::node::ValueBuf::Inline(Vec::new()),
        },
    )
}
