//! The puts of a write transaction that began on an empty database, held in memory
//! until commit.
//!
//! A first load (an import, a rebuild) is one transaction of puts into nothing. Putting
//! each pair into the trie as it comes costs a walk, a node change and two small
//! allocations a pair; holding the pairs in one append-only byte log with a hash index,
//! and building the trie bottom-up once at commit (`WriteTxn::fill`), costs an append
//! and a probe. Reads, deletes and counts of the transaction are answered from the log,
//! so the transaction answers as one that put each pair into the trie would; only
//! running out of room shows later, at the build (see `DbWriteTxn`).

use core::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

/// Where one put's bytes sit in the log: the key at `at`, the value right after it.
#[derive(Clone, Copy)]
struct Put {
    at: usize,
    key_len: u32,
    value_len: u32,
    /// Still the key's value: not replaced by a later put, nor deleted.
    live: bool,
}

/// Memory a put costs besides its bytes: its place in the log (24), its index slot
/// with the table's slack (~32), and the two 48-byte items of the commit's radix build.
const BYTES_PER_PUT: usize = 160;

/// An entry of the index: a put and its key's hash, so that growing the index reads
/// no put.
#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    put: u32,
}

/// The transaction's puts, in the order given.
pub(crate) struct PendingPuts {
    log: Vec<u8>,
    puts: Vec<Put>,
    /// The live put of each key, by the key's hash.
    index: HashTable<Slot>,
    hasher: hashbrown::DefaultHashBuilder,
    live: u64,
}

impl PendingPuts {
    pub(crate) fn new() -> Self {
        PendingPuts {
            log: Vec::new(),
            puts: Vec::new(),
            index: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            live: 0,
        }
    }

    fn key<'l>(log: &'l [u8], p: &Put) -> &'l [u8] {
        &log[p.at..p.at + p.key_len as usize]
    }

    fn value<'l>(log: &'l [u8], p: &Put) -> &'l [u8] {
        let start = p.at + p.key_len as usize;
        &log[start..start + p.value_len as usize]
    }

    /// Whether a put of `len` more bytes of key and value keeps the memory this holds,
    /// and the trie builder will need at commit, within `max_bytes`, and the index
    /// within its 32-bit positions.
    pub(crate) fn has_room(&self, len: usize, max_bytes: usize) -> bool {
        let puts = self.puts.len().saturating_add(1);
        let held = self
            .log
            .len()
            .saturating_add(len)
            .saturating_add(puts.saturating_mul(BYTES_PER_PUT));
        puts <= u32::MAX as usize && held <= max_bytes
    }

    /// Sets `key` to `value` (lengths already checked against the format's limits, and
    /// [`has_room`](Self::has_room) said yes); returns `true` when the key was new.
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8]) -> bool {
        let hash = self.hasher.hash_one(key);
        // Below u32::MAX: `has_room`.
        let id = self.puts.len() as u32;
        let put = Put {
            at: self.log.len(),
            // Both fit: the caller checked them against MAX_KEY_LEN and MAX_VALUE_LEN.
            key_len: key.len() as u32,
            value_len: value.len() as u32,
            live: true,
        };
        self.log.extend_from_slice(key);
        self.log.extend_from_slice(value);
        self.puts.push(put);
        let (log, puts) = (&self.log, &mut self.puts);
        let entry = self.index.entry(
            hash,
            |s| s.hash == hash && Self::key(log, &puts[s.put as usize]) == key,
            |s| s.hash,
        );
        match entry {
            Entry::Occupied(mut slot) => {
                let old = core::mem::replace(&mut slot.get_mut().put, id);
                puts[old as usize].live = false;
                false
            }
            Entry::Vacant(slot) => {
                slot.insert(Slot { hash, put: id });
                self.live += 1;
                true
            }
        }
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let hash = self.hasher.hash_one(key);
        let slot = self.index.find(hash, |s| {
            s.hash == hash && Self::key(&self.log, &self.puts[s.put as usize]) == key
        })?;
        Some(Self::value(&self.log, &self.puts[slot.put as usize]))
    }

    /// Removes `key`; returns whether it was there.
    pub(crate) fn delete(&mut self, key: &[u8]) -> bool {
        let hash = self.hasher.hash_one(key);
        let (log, puts) = (&self.log, &mut self.puts);
        match self.index.find_entry(hash, |s| {
            s.hash == hash && Self::key(log, &puts[s.put as usize]) == key
        }) {
            Ok(slot) => {
                let (s, _) = slot.remove();
                puts[s.put as usize].live = false;
                self.live -= 1;
                true
            }
            Err(_) => false,
        }
    }

    /// Keys held.
    pub(crate) fn len(&self) -> u64 {
        self.live
    }

    /// Every live pair, in the order put.
    pub(crate) fn pairs(&self) -> Pairs<'_> {
        Pairs {
            log: &self.log,
            puts: self.puts.iter(),
            left: self.live as usize,
        }
    }
}

/// The live pairs of [`PendingPuts`], in the order put; knows its length, so that the
/// trie builder sizes its work once.
pub(crate) struct Pairs<'a> {
    log: &'a [u8],
    puts: core::slice::Iter<'a, Put>,
    left: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let p = self.puts.by_ref().find(|p| p.live)?;
        self.left = self.left.saturating_sub(1);
        Some((
            PendingPuts::key(self.log, p),
            PendingPuts::value(self.log, p),
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn answers_like_a_map_and_lists_live_pairs_in_put_order() {
        let mut pending = PendingPuts::new();
        let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut order: Vec<Vec<u8>> = Vec::new();
        let mut x = 7u64;
        for _ in 0..5_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = vec![(x >> 60) as u8, (x >> 52) as u8 & 3];
            let value = vec![(x >> 40) as u8; (x >> 33) as usize % 40];
            match x >> 62 {
                0 => {
                    assert_eq!(pending.delete(&key), model.remove(&key).is_some());
                    order.retain(|k| *k != key);
                }
                _ => {
                    let new = model.insert(key.clone(), value.clone()).is_none();
                    assert_eq!(pending.put(&key, &value), new);
                    order.retain(|k| *k != key);
                    order.push(key.clone());
                }
            }
            assert_eq!(pending.get(&key), model.get(&key).map(Vec::as_slice));
            assert_eq!(pending.len(), model.len() as u64);
        }
        let listed: Vec<(Vec<u8>, Vec<u8>)> = pending
            .pairs()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        let expected: Vec<(Vec<u8>, Vec<u8>)> = order
            .iter()
            .map(|k| (k.clone(), model[k].clone()))
            .collect();
        assert_eq!(listed, expected);
    }

    #[test]
    fn room_counts_the_bytes_and_each_put() {
        let mut pending = PendingPuts::new();
        assert!(pending.has_room(40, 40 + BYTES_PER_PUT));
        assert!(!pending.has_room(41, 40 + BYTES_PER_PUT));
        pending.put(&[1; 10], &[2; 30]);
        assert!(pending.has_room(0, 40 + 2 * BYTES_PER_PUT));
        assert!(!pending.has_room(1, 40 + 2 * BYTES_PER_PUT));
    }
}
