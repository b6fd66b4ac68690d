//! The persistent HAMT map: what the Go library mmcmap did — a Murmur-hashed hash array
//! mapped trie, copy-on-write, in one region — with checksums, crash-safe commits and
//! canonical deletes.
//!
//! - `node`: node payloads byte by byte.
//! - `trie`: lookup, copy-on-write insert, canonical removal, traversal.
//! - [`Map`]: the public type.

pub(crate) mod node;
pub(crate) mod trie;

use alloc::vec::Vec;

use crate::buffer::format::{EntryHeader, EntryKind, MAX_PAYLOAD, Meta, StructureKind};
use crate::buffer::space::{Durability, Space, Walker};
use crate::hash::murmur3_x64_128;
use crate::{Error, Region};
pub use node::MAX_KEY_LEN;
use node::{Branch, Collision, PairBuf, ValueBuf, ValueRef};
use trie::Removal;

/// Largest value the format holds.
pub const MAX_VALUE_LEN: u64 = MAX_PAYLOAD;

/// Turns a key into the 128 bits of hash that choose its path.
///
/// The default, [`Murmur3`], is MurmurHash3 x64_128 seeded per database. Tests use a
/// deliberately colliding hasher to drive keys into collision nodes; an image must be
/// opened with the hasher that wrote it.
pub trait KeyHasher {
    /// The hash of `key` in a database with `seed`.
    fn hash(&self, seed: u64, key: &[u8]) -> [u64; 2];
}

/// MurmurHash3 x64_128, seeded with the database's seed folded to 32 bits.
#[derive(Clone, Copy, Debug, Default)]
pub struct Murmur3;

impl KeyHasher for Murmur3 {
    fn hash(&self, seed: u64, key: &[u8]) -> [u64; 2] {
        let (a, b) = murmur3_x64_128(key, (seed ^ (seed >> 32)) as u32);
        [a, b]
    }
}

/// Options of a new map; stored in the image, so `open` needs none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapOptions {
    /// Values up to this many bytes live inside their trie node; larger ones get an
    /// entry of their own (so that copying a node on write stays cheap).
    pub inline_max: u32,
    /// Per-database seed for hashing and checksums. Give a random one (the std crate
    /// does): keys chosen by an adversary then cannot be aimed at one path.
    pub seed: u64,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            inline_max: 512,
            seed: 0x6a09_e667_f3bc_c908,
        }
    }
}

/// A key and its value, borrowed from the region.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// What [`Map::stats`] reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapStats {
    /// Keys in the map.
    pub entries: u64,
    /// `depth_histogram[d]`: keys held by nodes at depth `d` (the root is depth 0).
    pub depth_histogram: [u64; node::MAX_DEPTH as usize + 1],
    /// Bytes of keys and values.
    pub live_bytes: u64,
    /// Bytes freed by commits and not reusable yet (a crash or snapshot may need them).
    pub dead_bytes: u64,
    /// Free bytes below the used end, plus the region beyond it.
    pub free_bytes: u64,
    /// End of the used part of the region.
    pub used_end: u64,
    /// The region's length.
    pub region_len: u64,
}

/// The map's edges, for recovery and the free-space rebuild.
struct MapWalker;

impl Walker for MapWalker {
    fn children(
        &self,
        offset: u64,
        header: &EntryHeader,
        payload: &[u8],
        out: &mut Vec<u64>,
    ) -> Result<(), Error> {
        let mut push_value = |v: ValueRef<'_>| {
            if let ValueRef::Entry { offset, .. } = v {
                out.push(offset);
            }
        };
        match header.kind {
            EntryKind::Branch => {
                let b = Branch::parse(payload, offset)?;
                for i in 0..b.pair_count() {
                    push_value(b.pair(i)?.value);
                }
                for i in 0..b.child_count() {
                    out.push(b.child(i)?);
                }
                Ok(())
            }
            EntryKind::Collision => {
                let c = Collision::parse(payload, offset)?;
                for i in 0..c.len() {
                    push_value(c.pair(i)?.value);
                }
                Ok(())
            }
            EntryKind::Value => Ok(()),
            _ => Err(Error::corrupted(offset, "buffer entry in a map")),
        }
    }
}

/// A persistent hash map from byte keys to byte values in one region.
///
/// Changes (`put`, `delete`) form a transaction that [`commit`](Self::commit)
/// publishes; after a crash, reopening gives exactly the last durable commit. Reads see
/// the transaction's own changes. `get` borrows the value from the region without
/// copying.
///
/// ```
/// use hamtdb_core::{Map, MapOptions, VecRegion};
///
/// let mut map = Map::create(VecRegion::with_capacity(1 << 20), MapOptions::default())?;
/// assert!(map.put(b"apple", b"red")?);
/// assert!(!map.put(b"apple", b"green")?); // replaced
/// map.commit()?;
/// assert_eq!(map.get(b"apple")?, Some(&b"green"[..]));
/// let map = Map::open(map.into_region())?;
/// assert_eq!(map.len(), 1);
/// # Ok::<(), hamtdb_core::Error>(())
/// ```
pub struct Map<R: Region, H: KeyHasher = Murmur3> {
    space: Space<R>,
    hasher: H,
    root: u64,
    count: u64,
}

impl<R: Region> Map<R, Murmur3> {
    /// Formats `region` as an empty map.
    pub fn create(region: R, options: MapOptions) -> Result<Self, Error> {
        Self::create_with_hasher(region, options, Murmur3)
    }

    /// Opens the map in `region` at its last committed state.
    pub fn open(region: R) -> Result<Self, Error> {
        Self::open_with_hasher(region, Murmur3)
    }
}

impl<R: Region, H: KeyHasher> Map<R, H> {
    /// Like [`Map::create`], hashing keys with `hasher`.
    pub fn create_with_hasher(region: R, options: MapOptions, hasher: H) -> Result<Self, Error> {
        if u64::from(options.inline_max) > MAX_PAYLOAD / 128 {
            return Err(Error::InvalidOption {
                what: "inline_max must be at most 32 MiB",
            });
        }
        let meta = Meta {
            kind: StructureKind::Map,
            txid: 0,
            root: 0,
            used_end: 0,
            count: 0,
            next_id: 0,
            removed_count: 0,
            removed_bytes: 0,
            durable_base: 0,
            new_count: 0,
            new_digest: 0,
            seed: options.seed,
            height: 0,
            extension: 0,
            space_percent: 0,
            interval_secs: 0,
            space_min_bytes: 0,
            last_compact_secs: 0,
            live_bytes: 0,
            inline_max: options.inline_max,
        };
        let space = Space::create(region, meta)?;
        Ok(Map {
            space,
            hasher,
            root: 0,
            count: 0,
        })
    }

    /// Like [`Map::open`], hashing keys with `hasher` (the one the image was written
    /// with).
    pub fn open_with_hasher(region: R, hasher: H) -> Result<Self, Error> {
        let space = Space::open(region, StructureKind::Map, &MapWalker)?;
        let meta = *space.committed();
        Ok(Map {
            space,
            hasher,
            root: meta.root,
            count: meta.count,
        })
    }

    /// Gives the region back.
    pub fn into_region(self) -> R {
        self.space.into_region()
    }

    /// Number of keys, in O(1).
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether the map holds no keys.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn hash(&self, key: &[u8]) -> [u64; 2] {
        self.hasher.hash(self.space.seed(), key)
    }

    /// The value of `key`, borrowed from the region without copying.
    pub fn get(&self, key: &[u8]) -> Result<Option<&[u8]>, Error> {
        match trie::get(&self.space, self.root, self.hash(key), key)? {
            Some(v) => Ok(Some(trie::value_bytes(&self.space, v)?)),
            None => Ok(None),
        }
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &[u8]) -> Result<bool, Error> {
        Ok(trie::get(&self.space, self.root, self.hash(key), key)?.is_some())
    }

    /// Sets `key` to `value`; returns `true` when the key was new, `false` when it
    /// replaced a value.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<bool, Error> {
        if key.len() > MAX_KEY_LEN {
            return Err(Error::TooLarge {
                what: "key",
                len: key.len() as u64,
                max: MAX_KEY_LEN as u64,
            });
        }
        if value.len() as u64 > MAX_VALUE_LEN {
            return Err(Error::TooLarge {
                what: "value",
                len: value.len() as u64,
                max: MAX_VALUE_LEN,
            });
        }
        let hash = self.hash(key);
        let value = if value.len() as u64 <= u64::from(self.space.committed().inline_max) {
            ValueBuf::Inline(value.to_vec())
        } else {
            let offset = self
                .space
                .write_entry(EntryKind::Value, hash[0], value, 0)?;
            ValueBuf::Entry {
                offset,
                len: value.len() as u32,
            }
        };
        let pair = PairBuf {
            key: key.to_vec(),
            value: value.clone(),
        };
        let hasher = &self.hasher;
        let seed = self.space.seed();
        let hash_of = |k: &[u8]| hasher.hash(seed, k);
        let (root, replaced) =
            match trie::insert(&mut self.space, &hash_of, self.root, 0, hash, pair) {
                Ok(done) => done,
                Err(e) => {
                    if let ValueBuf::Entry { offset, .. } = value {
                        self.space.free_entry(offset)?;
                    }
                    return Err(e);
                }
            };
        self.root = root;
        match replaced {
            None => {
                self.count += 1;
                Ok(true)
            }
            Some(old) => {
                self.free_value(old)?;
                Ok(false)
            }
        }
    }

    fn free_value(&mut self, value: ValueBuf) -> Result<(), Error> {
        if let ValueBuf::Entry { offset, .. } = value {
            self.space.free_entry(offset)?;
        }
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        let hash = self.hash(key);
        let (removal, value) = trie::remove(&mut self.space, self.root, 0, hash, key)?;
        match removal {
            Removal::NotFound => return Ok(false),
            Removal::Node(root) => self.root = root,
            Removal::Emptied => self.root = 0,
            Removal::Collapsed(_) => {
                return Err(Error::corrupted(
                    self.root,
                    "root collapsed into its parent",
                ));
            }
        }
        self.count -= 1;
        if let Some(v) = value {
            self.free_value(v)?;
        }
        Ok(true)
    }

    /// Publishes the running transaction durably (one sync).
    pub fn commit(&mut self) -> Result<(), Error> {
        self.commit_with(Durability::Immediate)
    }

    /// Publishes the running transaction with the given durability.
    pub fn commit_with(&mut self, durability: Durability) -> Result<(), Error> {
        let count = self.count;
        self.space
            .commit(self.root, durability, |m| m.count = count)
    }

    /// Makes the last commit durable.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.space.sync()
    }

    /// Drops the running transaction's changes.
    pub fn abort(&mut self) {
        self.space.abort();
        let meta = self.space.committed();
        self.root = meta.root;
        self.count = meta.count;
    }

    /// Keys by the depth of the node that holds them, and space accounting.
    pub fn stats(&self) -> Result<MapStats, Error> {
        let mut stats = MapStats {
            entries: self.count,
            used_end: self.space.used_end(),
            region_len: self.space.region().len(),
            ..MapStats::default()
        };
        let max_nodes = self.space.used_end() / 32;
        trie::for_each_pair(&self.space, self.root, max_nodes, &mut |p| {
            stats.depth_histogram[p.depth as usize] += 1;
            stats.live_bytes +=
                (p.key.len() + trie::value_bytes(&self.space, p.value)?.len()) as u64;
            Ok(())
        })?;
        let (free, pending) = self.space.free_bytes();
        stats.free_bytes = free + stats.region_len.saturating_sub(stats.used_end);
        stats.dead_bytes = pending;
        Ok(stats)
    }

    /// Every pair, in storage order (a hash trie has no key order).
    pub fn iter(&self) -> Result<Vec<Pair<'_>>, Error> {
        let mut out = Vec::with_capacity(self.count as usize);
        let max_nodes = self.space.used_end() / 32;
        trie::for_each_pair(&self.space, self.root, max_nodes, &mut |p| {
            out.push((p.key, trie::value_bytes(&self.space, p.value)?));
            Ok(())
        })?;
        Ok(out)
    }
}
#[cfg(test)]
mod tests;
