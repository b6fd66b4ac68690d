//! `OrderedMap`: an ordered map from `u64` to `u64`, for the free map, the running
//! transaction's own entries and `check`'s visited set.
//!
//! On the host it is a [`ChunkedMap`], a sorted list of sorted chunks (at most
//! [`CHUNK_MAX`] pairs each): a lookup is two binary searches, an insert or a remove
//! shifts at most one chunk's pairs (and, when a chunk splits or empties, the list of
//! chunks). That keeps every operation cheap at any size the core meets, in a fraction of
//! the code of `alloc`'s B-tree, which cost firmware about 4.5 KiB of `.text` for one
//! `BTreeMap<u64, u64>` instantiation (docs/EMBEDDED.md).
//!
//! On Arm (firmware) it is a [`FlatMap`], one sorted `Vec`: half the code again, and an
//! insert or a remove shifts every pair after it, which is cheap at the sizes a
//! microcontroller's region gives (the free extents of a few hundred KiB, the entries
//! one transaction writes). Both pass the same tests. `check`'s visited set, which
//! holds every entry of the map, is a [`ChunkedMap`] everywhere.

use alloc::vec::Vec;

/// The ordered map the core uses: see the module's documentation.
#[cfg(not(target_arch = "arm"))]
pub(crate) type OrderedMap = ChunkedMap;
/// The ordered map the core uses: see the module's documentation.
#[cfg(target_arch = "arm")]
pub(crate) type OrderedMap = FlatMap;

/// An ordered map from `u64` keys to `u64` values, in one sorted `Vec`.
#[derive(Clone, Debug, Default)]
#[cfg_attr(not(target_arch = "arm"), allow(dead_code))]
pub(crate) struct FlatMap {
    /// Sorted by key, keys distinct.
    pairs: Vec<(u64, u64)>,
}

// On the host only the tests use it; on Arm the free map needs no `first`.
#[allow(dead_code)]
impl FlatMap {
    /// An empty map.
    pub(crate) const fn new() -> Self {
        FlatMap { pairs: Vec::new() }
    }

    /// Whether the map holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn find(&self, key: u64) -> Result<usize, usize> {
        self.pairs.binary_search_by_key(&key, |&(k, _)| k)
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: u64) -> Option<u64> {
        Some(self.pairs[self.find(key).ok()?].1)
    }

    /// Whether `key` is present.
    pub(crate) fn contains_key(&self, key: u64) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub(crate) fn insert(&mut self, key: u64, value: u64) -> Option<u64> {
        match self.find(key) {
            Ok(i) => Some(core::mem::replace(&mut self.pairs[i].1, value)),
            Err(i) => {
                self.pairs.insert(i, (key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, key: u64) -> Option<u64> {
        let i = self.find(key).ok()?;
        Some(self.pairs.remove(i).1)
    }

    /// The pair with the largest key below `key`.
    pub(crate) fn last_below(&self, key: u64) -> Option<(u64, u64)> {
        let i = self.pairs.partition_point(|&(k, _)| k < key);
        self.pairs.get(i.checked_sub(1)?).copied()
    }

    /// The pair with the smallest key.
    pub(crate) fn first(&self) -> Option<(u64, u64)> {
        self.pairs.first().copied()
    }

    /// The pair with the largest key.
    pub(crate) fn last(&self) -> Option<(u64, u64)> {
        self.pairs.last().copied()
    }

    /// Every pair, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.pairs.iter().copied()
    }
}

/// Pairs a chunk holds before it splits in two halves.
const CHUNK_MAX: usize = 64;

/// An ordered map from `u64` keys to `u64` values, in sorted chunks.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChunkedMap {
    /// Non-empty chunks, each sorted by key; every key of a chunk is below every key of
    /// the next one.
    chunks: Vec<Vec<(u64, u64)>>,
}

// On Arm only `check` uses it, and not every method.
#[cfg_attr(target_arch = "arm", allow(dead_code))]
impl ChunkedMap {
    /// An empty map.
    pub(crate) const fn new() -> Self {
        ChunkedMap { chunks: Vec::new() }
    }

    /// Whether the map holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The chunk `key` belongs in: the first whose last key is at least `key`, or the
    /// last chunk. The map must not be empty.
    fn chunk_for(&self, key: u64) -> usize {
        let i = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|&(k, _)| k < key));
        i.min(self.chunks.len() - 1)
    }

    /// Where `key` is, or would be inserted: (chunk, position in it, whether present).
    fn find(&self, key: u64) -> Option<(usize, Result<usize, usize>)> {
        if self.chunks.is_empty() {
            return None;
        }
        let c = self.chunk_for(key);
        Some((c, self.chunks[c].binary_search_by_key(&key, |&(k, _)| k)))
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: u64) -> Option<u64> {
        match self.find(key)? {
            (c, Ok(i)) => Some(self.chunks[c][i].1),
            _ => None,
        }
    }

    /// Whether `key` is present.
    pub(crate) fn contains_key(&self, key: u64) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub(crate) fn insert(&mut self, key: u64, value: u64) -> Option<u64> {
        let Some((c, at)) = self.find(key) else {
            self.chunks.push(alloc::vec![(key, value)]);
            return None;
        };
        let chunk = &mut self.chunks[c];
        match at {
            Ok(i) => Some(core::mem::replace(&mut chunk[i].1, value)),
            Err(i) => {
                chunk.insert(i, (key, value));
                if chunk.len() > CHUNK_MAX {
                    let upper = chunk.split_off(CHUNK_MAX / 2);
                    self.chunks.insert(c + 1, upper);
                }
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, key: u64) -> Option<u64> {
        let (c, Ok(i)) = self.find(key)? else {
            return None;
        };
        let (_, value) = self.chunks[c].remove(i);
        if self.chunks[c].is_empty() {
            self.chunks.remove(c);
        }
        Some(value)
    }

    /// The pair with the largest key below `key`.
    pub(crate) fn last_below(&self, key: u64) -> Option<(u64, u64)> {
        // Chunks whose first key is below `key`; the pair sits in the last of them.
        let c = self
            .chunks
            .partition_point(|c| c.first().is_some_and(|&(k, _)| k < key));
        let chunk = self.chunks.get(c.checked_sub(1)?)?;
        let i = chunk.partition_point(|&(k, _)| k < key);
        chunk.get(i.checked_sub(1)?).copied()
    }

    /// The pair with the smallest key.
    pub(crate) fn first(&self) -> Option<(u64, u64)> {
        self.chunks.first()?.first().copied()
    }

    /// The pair with the largest key.
    pub(crate) fn last(&self) -> Option<(u64, u64)> {
        self.chunks.last()?.last().copied()
    }

    /// Every pair, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.chunks.iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn chunked_behaves_like_a_btree_map_under_random_use() {
        random_use(ChunkedMap::new(), |map| {
            assert!(
                map.chunks
                    .iter()
                    .all(|c| !c.is_empty() && c.len() <= CHUNK_MAX)
            );
        });
    }

    #[test]
    fn flat_behaves_like_a_btree_map_under_random_use() {
        random_use(FlatMap::new(), |map| {
            assert!(map.pairs.windows(2).all(|w| w[0].0 < w[1].0));
        });
    }

    /// The operations the tests use, of both map types.
    trait Ops {
        fn insert(&mut self, key: u64, value: u64) -> Option<u64>;
        fn remove(&mut self, key: u64) -> Option<u64>;
        fn get(&self, key: u64) -> Option<u64>;
        fn contains_key(&self, key: u64) -> bool;
        fn last_below(&self, key: u64) -> Option<(u64, u64)>;
        fn first(&self) -> Option<(u64, u64)>;
        fn last(&self) -> Option<(u64, u64)>;
        fn is_empty(&self) -> bool;
        fn all(&self) -> Vec<(u64, u64)>;
    }

    macro_rules! ops {
        ($t:ty) => {
            impl Ops for $t {
                fn insert(&mut self, key: u64, value: u64) -> Option<u64> {
                    <$t>::insert(self, key, value)
                }
                fn remove(&mut self, key: u64) -> Option<u64> {
                    <$t>::remove(self, key)
                }
                fn get(&self, key: u64) -> Option<u64> {
                    <$t>::get(self, key)
                }
                fn contains_key(&self, key: u64) -> bool {
                    <$t>::contains_key(self, key)
                }
                fn last_below(&self, key: u64) -> Option<(u64, u64)> {
                    <$t>::last_below(self, key)
                }
                fn first(&self) -> Option<(u64, u64)> {
                    <$t>::first(self)
                }
                fn last(&self) -> Option<(u64, u64)> {
                    <$t>::last(self)
                }
                fn is_empty(&self) -> bool {
                    <$t>::is_empty(self)
                }
                fn all(&self) -> Vec<(u64, u64)> {
                    self.iter().collect()
                }
            }
        };
    }
    ops!(ChunkedMap);
    ops!(FlatMap);

    fn random_use<M: Ops>(mut map: M, invariants: impl Fn(&M)) {
        // A tiny LCG keeps this deterministic without a dependency.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        let mut model = BTreeMap::new();
        let rounds = if cfg!(miri) { 600 } else { 20_000 };
        for round in 0..rounds {
            // Phases that grow, then shrink, the map: chunks split and empty.
            let growing = (round / 2000) % 2 == 0;
            let key = next(1500) * 8;
            match next(4) {
                0 | 1 if growing => {
                    let value = next(1 << 20);
                    assert_eq!(map.insert(key, value), model.insert(key, value));
                }
                0 => assert_eq!(map.insert(key, 1), model.insert(key, 1)),
                _ => assert_eq!(map.remove(key), model.remove(&key)),
            }
            assert_eq!(map.get(key), model.get(&key).copied());
            assert_eq!(map.contains_key(key + 4), model.contains_key(&(key + 4)));
            let probe = next(1600 * 8);
            assert_eq!(
                map.last_below(probe),
                model.range(..probe).next_back().map(|(&k, &v)| (k, v))
            );
            assert_eq!(map.first(), model.first_key_value().map(|(&k, &v)| (k, v)));
            assert_eq!(map.last(), model.last_key_value().map(|(&k, &v)| (k, v)));
            assert_eq!(map.is_empty(), model.is_empty());
            if round % 500 == 0 {
                let want: Vec<_> = model.iter().map(|(&k, &v)| (k, v)).collect();
                assert_eq!(map.all(), want);
                invariants(&map);
            }
        }
    }

    #[test]
    fn edges_of_the_key_space() {
        edges(ChunkedMap::new());
        edges(FlatMap::new());
    }

    fn edges<M: Ops>(mut map: M) {
        assert_eq!(map.last_below(u64::MAX), None);
        assert_eq!(map.remove(0), None);
        assert_eq!(map.insert(u64::MAX, 1), None);
        assert_eq!(map.insert(0, 2), None);
        assert_eq!(map.last_below(0), None);
        assert_eq!(map.last_below(1), Some((0, 2)));
        assert_eq!(map.last_below(u64::MAX), Some((0, 2)));
        assert_eq!(map.last(), Some((u64::MAX, 1)));
        assert_eq!(map.remove(u64::MAX), Some(1));
        assert_eq!(map.remove(0), Some(2));
        assert!(map.is_empty());
    }
}
