//! The persistent HAMT map: what the Go library mmcmap did — a Murmur-hashed hash array
//! mapped trie, copy-on-write, in one region — with checksums, crash-safe commits and
//! canonical deletes.
//!
//! - `node`: node payloads byte by byte.
//! - `trie`: reading the committed trie: lookup and traversal.
//! - `write`: changing it inside a write transaction, and writing the changes at commit.
//! - [`Map`], [`ReadTxn`], [`WriteTxn`]: the public types.

mod bulk;
mod check;
pub(crate) mod node;
pub(crate) mod trie;
mod write;

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
#[cfg(feature = "value-slack")]
use core::sync::atomic::{AtomicU32, Ordering};

#[cfg(feature = "value-slack")]
use crate::buffer::extension_from_factor;
use crate::buffer::format::{
    DATA_START, EntryHeader, EntryKind, HEADER_LEN, MAX_PAYLOAD, Meta, StructureKind,
};
use crate::buffer::space::{Durability, Space, Walker, read_entry, read_payload};
use crate::buffer::{EXTENSION_ONE, room_for};
use crate::error::{Corrupt, Input, Opt};
use crate::hash::murmur3_x64_128;
use crate::{Error, Region};
pub use node::MAX_KEY_LEN;
use node::{Branch, Collision, PairBuf, ValueRef};
use trie::{Edge, NodeRef, NodeStore};
use write::{Arena, NodeId, TxnTrie};

pub use check::{CheckReport, MAX_PROBLEMS, Problem};

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
    #[inline]
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

/// A key and its value, copied out.
pub type OwnedPair = (Vec<u8>, Vec<u8>);

/// Bytes a compaction step copies before it commits.
const COMPACT_STEP_BYTES: u64 = 4 << 20;

/// What [`Map::space_usage`] reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpaceUsage {
    /// End of the used part of the region.
    pub used_end: u64,
    /// Free bytes below the used end (reusable now).
    pub free_bytes: u64,
    /// Bytes freed by commits that a snapshot or a crash may still need.
    pub pending_bytes: u64,
}

fn usage_of<R: Region>(space: &Space<R>) -> SpaceUsage {
    let (free, pending) = space.free_bytes();
    SpaceUsage {
        used_end: space.used_end(),
        free_bytes: free,
        pending_bytes: pending,
    }
}

/// What [`Map::compact`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapCompactReport {
    /// Bytes of nodes and values copied to lower addresses.
    pub bytes_moved: u64,
    /// Commits made.
    pub steps: u64,
    /// Used end before.
    pub used_end_before: u64,
    /// Used end after.
    pub used_end_after: u64,
}

/// What [`Map::stats`] reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapStats {
    /// Keys in the map.
    pub entries: u64,
    /// `depth_histogram[d]`: keys held by nodes at depth `d` (the root is depth 0).
    pub depth_histogram: [u64; node::MAX_DEPTH as usize + 1],
    /// Bytes of keys and values.
    pub live_bytes: u64,
    /// Room in value entries beyond their values (see
    /// [`Map::set_extension_factor`]), and the 8-byte alignment padding of those entries.
    pub slack_bytes: u64,
    /// The structure around the live bytes: entry headers, node bitmaps and child
    /// offsets, the meta slots.
    pub overhead_bytes: u64,
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
        let node = match header.kind {
            EntryKind::Branch => NodeRef::Branch(Branch::parse(payload, offset)?),
            EntryKind::Collision => NodeRef::Collision(Collision::parse(payload, offset)?),
            EntryKind::Value => return Ok(()),
            _ => return Err(Error::corrupted(offset, Corrupt::BufferEntryInMap)),
        };
        trie::for_each_edge(&node, &mut |edge| {
            out.push(match edge {
                Edge::Value { offset, .. } => offset,
                Edge::Child(c) => c,
            });
        })
    }

    /// A map holds no key exactly when its root is 0 (its trie is canonical,
    /// docs/FORMAT.md); a slot forged otherwise would send a first load into a trie it
    /// cannot fill, or walk nodes a count of zero says are not there.
    fn count_agrees_with_root(&self, count: u64, root: u64) -> bool {
        (count == 0) == (root == 0)
    }
}

/// What readers need of a commit: the few fields of its meta slot a snapshot uses (the
/// whole [`Meta`] is 176 bytes, and it was copied at every `begin_read` and commit).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Published {
    pub(crate) txid: u64,
    pub(crate) root: u64,
    pub(crate) used_end: u64,
    pub(crate) count: u64,
    pub(crate) seed: u64,
}

impl Published {
    fn of(meta: &Meta) -> Self {
        Published {
            txid: meta.txid(),
            root: meta.root(),
            used_end: meta.used_end(),
            count: meta.count(),
            seed: meta.seed(),
        }
    }
}

/// The last published commit and the snapshots still open.
struct Snapshots {
    published: Published,
    /// Space figures as of the last commit, kept here so that reading them never waits
    /// for a writer.
    usage: SpaceUsage,
    /// Open snapshots by txid, with how many share it.
    /// Open snapshots: (txid, how many share it). A short list (snapshots of distinct
    /// commits are few) whose room is kept, so opening a snapshot does not allocate.
    readers: Vec<(u64, usize)>,
}

impl Snapshots {
    /// The oldest txid a snapshot may read: an open one, or the published commit (a
    /// reader may register at it any moment).
    fn floor(&self) -> u64 {
        let oldest = self.readers.iter().map(|r| r.0).min().unwrap_or(u64::MAX);
        oldest.min(self.published.txid)
    }
}

/// A persistent hash map from byte keys to byte values in one region.
///
/// Any number of [`ReadTxn`] snapshots may be open while one [`WriteTxn`] works: a
/// snapshot sees the state of the commit it started at, whatever commits later, and
/// never waits for the writer. Writers are serialized (a second [`Map::begin_write`]
/// waits; [`Map::try_begin_write`] does not). After a crash, reopening gives exactly the
/// last durable commit. Values are borrowed from the region without copying.
///
/// ```
/// use hamtdb_core::{Map, MapOptions, VecRegion};
///
/// let map = Map::create(VecRegion::with_capacity(1 << 20), MapOptions::default())?;
/// let mut txn = map.begin_write();
/// assert!(txn.put(b"apple", b"red")?);
/// assert!(!txn.put(b"apple", b"green")?); // replaced
/// txn.commit()?;
///
/// let snapshot = map.begin_read();
/// map.put(b"pear", b"yellow")?; // a commit of its own
/// assert_eq!(snapshot.get(b"apple")?, Some(&b"green"[..]));
/// assert_eq!(snapshot.get(b"pear")?, None); // later commits are invisible to it
/// drop(snapshot);
///
/// let map = Map::open(map.into_region())?;
/// assert_eq!(map.len(), 2);
/// # Ok::<(), hamtdb_core::Error>(())
/// ```
pub struct Map<R: Region, H: KeyHasher = Murmur3> {
    region: Arc<R>,
    /// Boxed: a `Map` is then a few words to move from its constructors to the caller,
    /// not the whole space with its meta (140 bytes less firmware).
    writer: spin::Mutex<Box<Space<Arc<R>>>>,
    /// The arena of the last write transaction, emptied, with its spare node buffers:
    /// the next transaction takes it (never contended: only the writer, under
    /// `writer`, locks it). Not on the firmware (see `Arena`).
    #[cfg(not(target_arch = "arm"))]
    arena: spin::Mutex<Arena>,
    snapshots: spin::Mutex<Snapshots>,
    hasher: H,
    seed: u64,
    inline_max: u32,
    /// Room given to value entries, in 1/65536 of their length (see
    /// [`Map::set_extension_factor`]); a runtime setting, not stored in the region.
    #[cfg(feature = "value-slack")]
    extension: AtomicU32,
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
            return Err(Error::invalid_option(Opt::InlineMax));
        }
        let mut meta = Meta::new(StructureKind::Map, options.seed);
        meta.set_inline_max(options.inline_max);
        let region = Arc::new(region);
        Ok(Self::from_space(
            region.clone(),
            Space::create(region, meta)?,
            hasher,
        ))
    }

    /// Like [`Map::open`], hashing keys with `hasher` (the one the image was written
    /// with).
    pub fn open_with_hasher(region: R, hasher: H) -> Result<Self, Error> {
        let region = Arc::new(region);
        let space = Space::open(region.clone(), StructureKind::Map, &MapWalker)?;
        Ok(Self::from_space(region, space, hasher))
    }

    fn from_space(region: Arc<R>, space: Box<Space<Arc<R>>>, hasher: H) -> Self {
        let committed = space.committed();
        let published = Published::of(committed);
        let inline_max = committed.inline_max();
        let usage = usage_of(&space);
        Map {
            region,
            seed: published.seed,
            inline_max,
            writer: spin::Mutex::new(space),
            #[cfg(not(target_arch = "arm"))]
            arena: spin::Mutex::new(Arena::default()),
            snapshots: spin::Mutex::new(Snapshots {
                published,
                usage,
                readers: Vec::with_capacity(8),
            }),
            hasher,
            #[cfg(feature = "value-slack")]
            extension: AtomicU32::new(EXTENSION_ONE),
        }
    }

    /// Sets the room a value entry gets: a value of `len` bytes stored outside its node
    /// (above `inline_max`) gets `ceil(len × factor)` bytes, so that overwriting it with
    /// a value as large within the same transaction rewrites it in place instead of
    /// writing a new entry. Entries a commit has published are never changed in place
    /// (readers and crash recovery still need them), so slack helps only transactions
    /// that overwrite their own values, at the price of space until compaction, which
    /// gives every entry it moves exactly the room its value needs. `factor` is
    /// between 1.0 (the default: no slack) and 16.0; it is not stored in the region.
    /// (Cargo feature `value-slack`, on by default.)
    #[cfg(feature = "value-slack")]
    pub fn set_extension_factor(&self, factor: f64) -> Result<(), Error> {
        let extension = extension_from_factor(factor)?;
        self.extension.store(extension, Ordering::Relaxed);
        Ok(())
    }

    /// The extension factor values are written with (see
    /// [`set_extension_factor`](Self::set_extension_factor)).
    #[cfg(feature = "value-slack")]
    pub fn extension_factor(&self) -> f64 {
        f64::from(self.extension()) / f64::from(EXTENSION_ONE)
    }

    /// Room given to value entries, in 1/65536 of their length.
    #[inline]
    fn extension(&self) -> u32 {
        #[cfg(feature = "value-slack")]
        return self.extension.load(Ordering::Relaxed);
        #[cfg(not(feature = "value-slack"))]
        EXTENSION_ONE
    }

    /// Gives the region back.
    pub fn into_region(self) -> R {
        let Map { region, writer, .. } = self;
        drop(writer);
        match Arc::try_unwrap(region) {
            Ok(region) => region,
            // Every clone lives in `self`, which is consumed: none is left.
            Err(_) => unreachable!("the map holds the only references to its region"),
        }
    }

    /// The region.
    pub fn region(&self) -> &R {
        &self.region
    }

    /// Number of keys at the last commit, in O(1).
    pub fn len(&self) -> u64 {
        self.lock_snapshots().published.count
    }

    /// Whether the map held no keys at the last commit.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The transaction id of the last commit: each commit takes the next one.
    pub fn txid(&self) -> u64 {
        self.lock_snapshots().published.txid
    }

    /// The per-database seed (hashing and checksums).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The snapshot table, locked; see [`lock_writer`](Self::lock_writer).
    #[cfg_attr(target_arch = "arm", inline(never))]
    fn lock_snapshots(&self) -> spin::MutexGuard<'_, Snapshots> {
        self.snapshots.lock()
    }

    /// The writer's space, locked (waiting while a write transaction is open). Out of
    /// line on Arm: each inlined spin loop costs firmware about 50 bytes of `.text`.
    #[cfg_attr(target_arch = "arm", inline(never))]
    fn lock_writer(&self) -> spin::MutexGuard<'_, Box<Space<Arc<R>>>> {
        self.writer.lock()
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> [u64; 2] {
        self.hasher.hash(self.seed, key)
    }

    /// A snapshot of the last commit. It never waits for a writer, and the space it can
    /// reach is not reused until it is dropped.
    pub fn begin_read(&self) -> ReadTxn<'_, R, H> {
        let mut snapshots = self.lock_snapshots();
        let meta = snapshots.published;
        match snapshots.readers.iter_mut().find(|r| r.0 == meta.txid) {
            Some(r) => r.1 += 1,
            None => snapshots.readers.push((meta.txid, 1)),
        }
        ReadTxn {
            map: self,
            meta,
            store: SnapshotStore {
                region: &self.region,
                seed: meta.seed,
                used_end: meta.used_end,
            },
        }
    }

    /// Starts the write transaction, waiting while another is open.
    pub fn begin_write(&self) -> WriteTxn<'_, R, H> {
        self.start_write(self.lock_writer())
    }

    /// Starts the write transaction, or `None` if another is open.
    pub fn try_begin_write(&self) -> Option<WriteTxn<'_, R, H>> {
        self.writer.try_lock().map(|guard| self.start_write(guard))
    }

    fn start_write<'m>(
        &'m self,
        space: spin::MutexGuard<'m, Box<Space<Arc<R>>>>,
    ) -> WriteTxn<'m, R, H> {
        let meta = *space.committed();
        WriteTxn {
            map: self,
            space,
            #[cfg(not(target_arch = "arm"))]
            arena: core::mem::take(&mut *self.arena.lock()),
            #[cfg(target_arch = "arm")]
            arena: Arena::default(),
            root: meta.root(),
            count: meta.count(),
            finished: false,
            failed: None,
        }
    }

    /// The value of `key` at the last commit. The value borrows the region without
    /// copying and holds a snapshot until dropped.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value<'_, R, H>>, Error> {
        let snapshot = self.begin_read();
        let Some(bytes) = snapshot.get_for_map(key)? else {
            return Ok(None);
        };
        Ok(Some(Value {
            bytes,
            _snapshot: snapshot,
        }))
    }

    /// Whether `key` was present at the last commit.
    pub fn contains_key(&self, key: &[u8]) -> Result<bool, Error> {
        self.begin_read().contains_key(key)
    }

    /// Sets `key` to `value` in a transaction of its own, committed durably. Returns
    /// `true` when the key was new.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<bool, Error> {
        let mut txn = self.begin_write();
        let new = txn.put(key, value)?;
        txn.commit()?;
        Ok(new)
    }

    /// Removes `key` in a transaction of its own, committed durably (nothing is written
    /// when the key is absent). Returns whether it was there.
    pub fn delete(&self, key: &[u8]) -> Result<bool, Error> {
        let mut txn = self.begin_write();
        if !txn.delete(key)? {
            return Ok(false);
        }
        txn.commit()?;
        Ok(true)
    }

    /// Makes the last commit durable (after [`Durability::Eventual`] commits).
    pub fn sync(&self) -> Result<(), Error> {
        self.lock_writer().sync()
    }

    /// Every pair of the last commit, in storage order (a hash trie has no key order).
    pub fn iter(&self) -> Result<Vec<OwnedPair>, Error> {
        let snapshot = self.begin_read();
        Ok(snapshot
            .iter()?
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect())
    }

    /// Keys by the depth of the node that holds them, and space accounting, at the last
    /// commit.
    pub fn stats(&self) -> Result<MapStats, Error> {
        let snapshot = self.begin_read();
        let mut stats = MapStats {
            entries: snapshot.meta.count,
            used_end: snapshot.meta.used_end,
            region_len: self.region.len(),
            ..MapStats::default()
        };
        let store = &snapshot.store;
        trie::for_each_pair(store, snapshot.meta.root, snapshot.max_nodes(), &mut |p| {
            stats.depth_histogram[p.depth as usize] += 1;
            let value = trie::value_bytes(store, p.value)?;
            stats.live_bytes += (p.key.len() + value.len()) as u64;
            if let ValueRef::Entry { offset, len } = p.value {
                let (header, _) = store.entry(offset)?;
                stats.slack_bytes +=
                    u64::from(header.capacity).saturating_sub(HEADER_LEN as u64 + u64::from(len));
            }
            Ok(())
        })?;
        let usage = self.space_usage();
        stats.free_bytes = usage.free_bytes + stats.region_len.saturating_sub(stats.used_end);
        stats.dead_bytes = usage.pending_bytes;
        stats.overhead_bytes = stats.used_end.saturating_sub(
            stats.live_bytes + stats.slack_bytes + stats.dead_bytes + usage.free_bytes,
        );
        Ok(stats)
    }

    /// Fills an empty map from `pairs` in one durable commit, far faster than one `put`
    /// at a time: the pairs are placed by radix passes on their hash chunks and the trie
    /// is written bottom-up, each node once, packed (see [`WriteTxn::fill`]). A repeated key keeps its last value. Returns the number
    /// of keys. A map that is not empty is an [`Error::InvalidOption`].
    pub fn bulk_load<K, V>(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<u64, Error>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut txn = self.begin_write();
        let pairs: Vec<(K, V)> = pairs.into_iter().collect();
        let count = txn.fill(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))?;
        txn.commit()?;
        Ok(count)
    }

    /// Moves live nodes and values towards the start of the region and cuts its used
    /// end, in bounded steps, each a durable commit: a crash at any point leaves a valid
    /// state, and readers go on meanwhile (a writer waits between steps). Space that an
    /// open snapshot can still reach stays until the snapshot is dropped, so the cut may
    /// be smaller while snapshots are open.
    pub fn compact(&self) -> Result<MapCompactReport, Error> {
        let mut report = MapCompactReport {
            used_end_before: self.lock_writer().used_end(),
            ..MapCompactReport::default()
        };
        // Each step moves entries strictly down, so the steps end; the bound is a guard
        // against a damaged image.
        // Each step walks the trie down to what it moves: steps of an eighth of the used
        // length keep a big map's compaction to a handful of walks.
        let step = COMPACT_STEP_BYTES.max(report.used_end_before / 8);
        for _ in 0..1024 {
            let moved = self.compact_step(step)?;
            if moved == 0 {
                break;
            }
            report.bytes_moved += moved;
            report.steps += 1;
        }
        report.used_end_after = self.shrink()?;
        report.steps += 1;
        Ok(report)
    }

    /// Cuts the used end at the last live byte in a durable commit, and gives the
    /// region's bytes beyond it back (once no snapshot needs them). The last part of
    /// [`compact`](Self::compact); returns the new used end.
    pub fn shrink(&self) -> Result<u64, Error> {
        let mut txn = self.begin_write();
        // Space freed by earlier commits becomes free once no snapshot needs it; learn
        // the current floor before cutting.
        txn.learn_reader_floor();
        txn.space.shrink_to_fit();
        txn.commit()?;
        let mut space = self.lock_writer();
        space.release_tail()?;
        self.lock_snapshots().usage = usage_of(&space);
        Ok(space.used_end())
    }

    /// Cheap space figures as of the last commit, without walking the trie and without
    /// waiting for a writer: the used end, the free bytes below it, and the bytes freed
    /// by commits that are not reusable yet.
    pub fn space_usage(&self) -> SpaceUsage {
        self.lock_snapshots().usage
    }

    /// One compaction step: copies up to about `budget` bytes of nodes and values that
    /// lie above where a tightly packed region would end into lower free space, and
    /// commits durably. Returns the bytes taken (0: nothing left to move).
    pub fn compact_step(&self, budget: u64) -> Result<u64, Error> {
        let mut txn = self.begin_write();
        // Space freed while snapshots were open becomes free once they are gone; learn
        // the current floor, or nothing may look free below the tail and nothing moves.
        txn.learn_reader_floor();
        // Where a tightly packed region would end: every byte below the used end is
        // reachable from the last commit, free, or pending, so the
        // space's own accounting gives the reachable bytes without walking the trie.
        let limit = DATA_START + txn.space.reachable_bytes();
        let mut left = budget.max(1);
        let mut trie = TxnTrie {
            store: &mut **txn.space,
            arena: &mut txn.arena,
        };
        txn.root = trie.relocate(txn.root, 0, limit, &mut left)?;
        let taken = budget.max(1) - left;
        if taken == 0 {
            txn.abort();
            return Ok(0);
        }
        // Moving an entry rewrites the path above it, and a rewritten node goes to the
        // lowest free place that fits — past the used end when none is left below. Without
        // snapshots that rise is temporary: the commit frees the old places and the next
        // step moves the path down into them. An open snapshot pins what this step frees
        // until it is dropped, so the rise would outlast the compaction: a compaction must
        // never leave the region longer than it found it, so such a step is abandoned.
        // Flushing here places the nodes (the commit finds them written).
        let end_before = txn.space.committed().used_end();
        let mut trie = TxnTrie {
            store: &mut **txn.space,
            arena: &mut txn.arena,
        };
        txn.root = trie.flush(txn.root, 0)?;
        if txn.space.used_end() > end_before && self.snapshots_open() {
            txn.abort();
            return Ok(0);
        }
        txn.commit()?;
        Ok(taken)
    }

    /// Whether any snapshot is open.
    fn snapshots_open(&self) -> bool {
        !self.lock_snapshots().readers.is_empty()
    }

    /// Walks every node and value entry of the last commit and reports every problem
    /// with its offset: checksums, structure, canonical shape, key count. Readers and
    /// writers go on meanwhile (it reads a snapshot).
    pub fn check(&self) -> CheckReport {
        let snapshot = self.begin_read();
        let hash = |k: &[u8]| self.hash(k);
        check::check(&self.region, snapshot.meta, &hash)
    }

    fn release_snapshot(&self, txid: u64) {
        let mut snapshots = self.lock_snapshots();
        if let Some(at) = snapshots.readers.iter().position(|r| r.0 == txid) {
            snapshots.readers[at].1 -= 1;
            if snapshots.readers[at].1 == 0 {
                snapshots.readers.swap_remove(at);
            }
        }
    }
}

/// Reads a snapshot's entries: the region, bounded by the snapshot's used end.
struct SnapshotStore<'a, R: Region> {
    region: &'a R,
    seed: u64,
    used_end: u64,
}

impl<R: Region> NodeStore for SnapshotStore<'_, R> {
    fn entry(&self, offset: u64) -> Result<(EntryHeader, &[u8]), Error> {
        read_entry(self.region, self.seed, offset, self.used_end, false)
    }

    fn entry_verified(&self, offset: u64) -> Result<(EntryHeader, &[u8]), Error> {
        read_entry(self.region, self.seed, offset, self.used_end, true)
    }

    #[inline(always)]
    fn payload(&self, offset: u64, kind: EntryKind) -> Result<(u64, &[u8]), Error> {
        read_payload(self.region, offset, self.used_end, kind)
    }

    fn prefetch(&self, offset: u64, len: usize) {
        // One byte is viewed (the entry's first, inside the snapshot); the lines after it
        // are only named by address. The offset is not checked yet (a damaged child
        // offset may point anywhere): nothing at or past the used end is viewed, where
        // the writer appends and `shrink` releases.
        if offset >= self.used_end {
            return;
        }
        if let Ok(bytes) = self.region.view(offset, 1) {
            crate::prefetch::prefetch_lines(bytes, len);
        }
    }
}

/// A consistent snapshot of the map at one commit.
// The store first, at offset 0: a lookup passes `&self.store` without an addition.
#[repr(C)]
pub struct ReadTxn<'m, R: Region, H: KeyHasher = Murmur3> {
    store: SnapshotStore<'m, Arc<R>>,
    map: &'m Map<R, H>,
    meta: Published,
}

impl<'m, R: Region, H: KeyHasher> ReadTxn<'m, R, H> {
    fn max_nodes(&self) -> u64 {
        self.meta.used_end / HEADER_LEN as u64
    }

    /// The value of `key` in this snapshot, borrowed from the region.
    pub fn get(&self, key: &[u8]) -> Result<Option<&[u8]>, Error> {
        let hash = self.map.hash(key);
        match trie::get(&self.store, self.meta.root, hash, key)? {
            Some(v) => Ok(Some(trie::value_bytes(&self.store, v)?)),
            None => Ok(None),
        }
    }

    /// Like [`get`](Self::get), with the map's lifetime: the caller keeps the snapshot
    /// open for as long as it uses the bytes (see [`Value`]).
    fn get_for_map(&self, key: &[u8]) -> Result<Option<&'m [u8]>, Error> {
        match self.get(key)? {
            Some(v) => Ok(Some(rebase(&self.map.region, v)?)),
            None => Ok(None),
        }
    }

    /// Looks up many keys at once, in order: the walks of up to 16 keys advance
    /// together and prefetch their next nodes, so their cache misses overlap. On a large
    /// map this answers several times as many lookups per second as `get` in a loop.
    pub fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<&[u8]>>, Error> {
        let mut found = Vec::with_capacity(keys.len());
        let hash = |k: &[u8]| self.map.hash(k);
        trie::get_many(&self.store, self.meta.root, keys, hash, &mut found)?;
        Ok(found)
    }

    /// Whether `key` is in this snapshot.
    pub fn contains_key(&self, key: &[u8]) -> Result<bool, Error> {
        let hash = self.map.hash(key);
        Ok(trie::get(&self.store, self.meta.root, hash, key)?.is_some())
    }

    /// Keys in this snapshot.
    pub fn len(&self) -> u64 {
        self.meta.count
    }

    /// Whether this snapshot holds no keys.
    pub fn is_empty(&self) -> bool {
        self.meta.count == 0
    }

    /// The transaction id of the commit this snapshot shows.
    pub fn txid(&self) -> u64 {
        self.meta.txid
    }

    /// Every pair, in storage order.
    pub fn iter(&self) -> Result<Vec<Pair<'_>>, Error> {
        let store = &self.store;
        // The count comes from the image: a damaged one must not size the allocation
        // (a pair takes at least its 8-byte header below the used end).
        let pairs = self.meta.count.min(self.meta.used_end / 8).min(1 << 20);
        let mut out = Vec::with_capacity(pairs as usize);
        trie::for_each_pair(store, self.meta.root, self.max_nodes(), &mut |p| {
            out.push((p.key, trie::value_bytes(store, p.value)?));
            Ok(())
        })?;
        Ok(out)
    }
}

/// Refuses a key or value longer than the format holds ([`MAX_KEY_LEN`],
/// [`MAX_VALUE_LEN`]) with [`Error::TooLarge`], as `put` does; for layers that hold
/// pairs before they reach the map.
pub fn check_lengths(key: &[u8], value: &[u8]) -> Result<(), Error> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::too_large(Input::Key, key.len() as u64));
    }
    if value.len() as u64 > MAX_VALUE_LEN {
        return Err(Error::too_large(Input::Value, value.len() as u64));
    }
    Ok(())
}

/// The same bytes as `v`, which lies in `region`, borrowed with the region's lifetime.
fn rebase<'r, R: Region>(region: &'r R, v: &[u8]) -> Result<&'r [u8], Error> {
    let base = region.view(0, 0)?.as_ptr() as usize;
    let at = (v.as_ptr() as usize).wrapping_sub(base);
    Ok(region.view(at as u64, v.len())?)
}

impl<R: Region, H: KeyHasher> Drop for ReadTxn<'_, R, H> {
    fn drop(&mut self) {
        self.map.release_snapshot(self.meta.txid);
    }
}

/// A value read by [`Map::get`]: the bytes, borrowed from the region, and the snapshot
/// that keeps them from being reused. Derefs to `[u8]`.
pub struct Value<'m, R: Region, H: KeyHasher = Murmur3> {
    // Declared before the snapshot: dropped first, so the borrow never outlives it.
    bytes: &'m [u8],
    _snapshot: ReadTxn<'m, R, H>,
}

impl<R: Region, H: KeyHasher> core::ops::Deref for Value<'_, R, H> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.bytes
    }
}

impl<R: Region, H: KeyHasher> core::fmt::Debug for Value<'_, R, H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.bytes.fmt(f)
    }
}

/// The write transaction: reads see its own changes; [`commit`](Self::commit)
/// publishes them, [`abort`](Self::abort) or dropping drops them.
pub struct WriteTxn<'m, R: Region, H: KeyHasher = Murmur3> {
    map: &'m Map<R, H>,
    space: spin::MutexGuard<'m, Box<Space<Arc<R>>>>,
    arena: Arena,
    root: NodeId,
    count: u64,
    finished: bool,
    /// Set when an in-place value rewrite failed part-way: the value's bytes are then
    /// unknown, so the transaction may only be aborted (commit returns this error).
    failed: Option<Error>,
}

impl<R: Region, H: KeyHasher> WriteTxn<'_, R, H> {
    /// The value of `key` as this transaction sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<&[u8]>, Error> {
        let hash = self.map.hash(key);
        write::get(&**self.space, &self.arena, self.root, hash, key)
    }

    /// Whether `key` is present as this transaction sees it.
    pub fn contains_key(&self, key: &[u8]) -> Result<bool, Error> {
        let hash = self.map.hash(key);
        // The committed nodes below the arena, read with exactly the space's checks
        // (`read_entry` up to its used end) through the snapshot store type, whose trie
        // code `Map::get` already has: firmware carries one copy of it. (`get` cannot
        // do the same: its bytes must borrow the space, not a local store.)
        let store = SnapshotStore {
            region: &self.map.region,
            seed: self.space.seed(),
            used_end: self.space.used_end(),
        };
        Ok(write::get(&store, &self.arena, self.root, hash, key)?.is_some())
    }

    /// Keys as this transaction sees them.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether the map is empty as this transaction sees it.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Puts every pair of `pairs` into this transaction's trie, which must be empty
    /// (a new map, or every key deleted in this transaction), far faster than one `put`
    /// at a time: the trie is built bottom-up, each node written once, packed (see
    /// [`Map::bulk_load`]). A repeated key keeps its last value. Returns the number of
    /// keys. A trie that is not empty is an [`Error::InvalidOption`].
    ///
    /// On an error the transaction can only be aborted: `commit` returns the error.
    pub fn fill<'p>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'p [u8], &'p [u8])>,
    ) -> Result<u64, Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.root != 0 {
            return Err(Error::invalid_option(Opt::FillNeedsEmpty));
        }
        let map = self.map;
        let extension = map.extension();
        let pairs = pairs.into_iter();
        let mut items = Vec::with_capacity(pairs.size_hint().0);
        let place = |txn: &mut Self| -> Result<(u64, u64), Error> {
            for (key, value) in pairs {
                check_lengths(key, value)?;
                let hash = map.hash(key);
                let value = if value.len() as u64 <= u64::from(map.inline_max) {
                    ValueRef::Inline(value)
                } else {
                    // Written in the order given, before any node: the image does not
                    // depend on the order the trie is built in.
                    let capacity = HEADER_LEN as u64 + room_for(value.len(), extension);
                    let offset =
                        txn.space
                            .write_entry(EntryKind::Value, hash[0], value, capacity)?;
                    ValueRef::Entry {
                        offset,
                        len: value.len() as u32,
                    }
                };
                items.push(bulk::Item { hash, key, value });
            }
            bulk::build_root(&mut **txn.space, &mut items)
        };
        match place(self) {
            Ok((root, count)) => {
                self.root = root;
                self.count = count;
                Ok(count)
            }
            Err(e) => {
                // Entries written so far are the transaction's own and unreachable: the
                // transaction can only be aborted.
                self.failed = Some(e);
                Err(e)
            }
        }
    }

    /// Sets `key` to `value`; returns `true` when the key was new, `false` when it
    /// replaced a value.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<bool, Error> {
        let map = self.map;
        let hash = map.hash(key);
        #[cfg(feature = "value-slack")]
        if self.rewrite_own_value(key, value, hash)? {
            return Ok(false);
        }
        let pair = self.pair_for(key, value, hash)?;
        let value_entry = pair.entry();
        let hash_of = |k: &[u8]| map.hash(k);
        let mut trie = TxnTrie {
            store: &mut **self.space,
            arena: &mut self.arena,
        };
        let (root, replaced) = match trie.insert(&hash_of, self.root, hash, pair) {
            Ok(done) => done,
            Err(e) => {
                // Every entry the transaction wrote must be reachable at commit.
                self.free_value(value_entry)?;
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

    /// Tells the space the oldest snapshot still open, so that what only older
    /// snapshots needed becomes free and nothing a live one reads does.
    fn learn_reader_floor(&mut self) {
        let floor = self.map.lock_snapshots().floor();
        self.space.set_reader_floor(floor);
    }

    /// Overwrites the value of `key` in place when the transaction wrote its value
    /// entry itself and the new value fits that entry's room; returns whether it did.
    #[cfg(feature = "value-slack")]
    fn rewrite_own_value(
        &mut self,
        key: &[u8],
        value: &[u8],
        hash: [u64; 2],
    ) -> Result<bool, Error> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if value.len() as u64 <= u64::from(self.map.inline_max)
            || value.len() as u64 > MAX_VALUE_LEN
        {
            return Ok(false);
        }
        // A value entry the transaction wrote is referenced from one of its own nodes.
        let Some(pair) = write::own_pair_mut(&mut self.arena, self.root, hash, key) else {
            return Ok(false);
        };
        let Some(offset) = node::pair_entry(pair) else {
            return Ok(false);
        };
        if !self.space.is_own(offset) {
            return Ok(false);
        }
        let (header, _) = self.space.entry(offset)?;
        if value.len() as u64 > u64::from(header.capacity) - HEADER_LEN as u64 {
            return Ok(false);
        }
        if let Err(e) = self.space.rewrite_own(offset, value) {
            self.failed = Some(e);
            return Err(e);
        }
        // Fits: `value.len()` is at most the entry's capacity, a u32.
        node::set_pair_entry(pair, offset, value.len() as u32);
        Ok(true)
    }

    /// Checks a key and value against the format's limits and builds their pair,
    /// writing a value entry for a value above the inline limit.
    fn pair_for(&mut self, key: &[u8], value: &[u8], hash: [u64; 2]) -> Result<PairBuf, Error> {
        check_lengths(key, value)?;
        let value = if value.len() as u64 <= u64::from(self.map.inline_max) {
            ValueRef::Inline(value)
        } else {
            let extension = self.map.extension();
            let capacity = HEADER_LEN as u64 + room_for(value.len(), extension);
            let offset = self
                .space
                .write_entry(EntryKind::Value, hash[0], value, capacity)?;
            ValueRef::Entry {
                offset,
                len: value.len() as u32,
            }
        };
        Ok(PairBuf::new(key, value))
    }

    /// Frees the value entry at `entry`, if the value had one.
    fn free_value(&mut self, entry: Option<u64>) -> Result<(), Error> {
        if let Some(offset) = entry {
            self.space.free_entry(offset)?;
        }
        Ok(())
    }

    /// Removes `key`; returns whether it was there. An absent key changes nothing.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        if !self.contains_key(key)? {
            return Ok(false);
        }
        let hash = self.map.hash(key);
        let mut trie = TxnTrie {
            store: &mut **self.space,
            arena: &mut self.arena,
        };
        let (root, value) = trie.remove(self.root, hash, key)?;
        self.root = root;
        // A damaged image's meta may count fewer keys than its trie holds.
        self.count = self
            .count
            .checked_sub(1)
            .ok_or(Error::corrupted(0, Corrupt::MetaCountBelowKeysInTrie))?;
        self.free_value(value)?;
        Ok(true)
    }

    /// Publishes the transaction durably: one sync.
    pub fn commit(self) -> Result<(), Error> {
        self.commit_with(Durability::Immediate)
    }

    /// Publishes the transaction with the given durability. On error nothing is
    /// published (or, if the error came from the sync, the commit is visible but may not
    /// be durable) and the transaction is dropped.
    pub fn commit_with(mut self, durability: Durability) -> Result<(), Error> {
        self.finished = true;
        let result = self.publish(durability);
        if result.is_err() && self.space.committed().txid() < self.space.txid() - 1 {
            self.space.abort();
        }
        result
    }

    fn publish(&mut self, durability: Durability) -> Result<(), Error> {
        if let Some(e) = self.failed {
            self.space.abort();
            return Err(e);
        }
        let map = self.map;
        // Reclaim nothing a snapshot at the published commit may need.
        self.learn_reader_floor();
        let mut trie = TxnTrie {
            store: &mut **self.space,
            arena: &mut self.arena,
        };
        let root = match trie.flush(self.root, 0) {
            Ok(root) => root,
            Err(e) => {
                self.space.abort();
                return Err(e);
            }
        };
        let count = self.count;
        let published = self
            .space
            .commit(root, Durability::None, |m| m.set_count(count));
        if let Err(e) = published {
            self.space.abort();
            return Err(e);
        }
        let meta = Published::of(self.space.committed());
        // Publish, then read the floor: a reader registering from now on sees `meta`.
        let floor = {
            let mut snapshots = map.lock_snapshots();
            snapshots.published = meta;
            snapshots.floor()
        };
        if durability == Durability::Immediate {
            self.space.sync()?;
        }
        self.space.set_reader_floor(floor);
        map.lock_snapshots().usage = usage_of(&self.space);
        Ok(())
    }

    /// Drops the transaction's changes.
    pub fn abort(mut self) {
        self.finished = true;
        self.space.abort();
    }
}

impl<R: Region, H: KeyHasher> Drop for WriteTxn<'_, R, H> {
    fn drop(&mut self) {
        if !self.finished {
            self.space.abort();
        }
        // Still under the writer lock (`space` is dropped after this): hand the arena's
        // buffers to the next transaction.
        #[cfg(not(target_arch = "arm"))]
        {
            self.arena.recycle();
            *self.map.arena.lock() = core::mem::take(&mut self.arena);
        }
    }
}

#[cfg(test)]
mod tests;
