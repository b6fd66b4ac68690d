//! A model of the persistent map ([`Map`]), shared by the map's crash test, its model
//! test and the `map_ops` fuzz target.
//!
//! [`MapHarness`] runs [`MapOp`]s on a map over a [`FaultRegion`] and on a
//! [`BTreeMap`] side by side. It keeps the write transaction and any snapshots open across
//! operations, checks what each operation returns, and tracks what power loss may return
//! to: the last commit known durable, plus the commits published since (eventual ones,
//! and a commit whose meta slot was written before its sync failed). Nothing else is an
//! acceptable recovery.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use hamtdb_core::{
    Durability, Error, KeyHasher, Map, MapOptions, Murmur3, ReadTxn, Region, WriteTxn,
};

use crate::{CrashMode, FaultRegion};

/// The logical content of a map: keys to values.
pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// The region a harnessed map lives on: shared, so that the harness can still take crash
/// images after an operation failed and the map is gone.
pub type HarnessRegion = Arc<FaultRegion>;

/// A map as the harness holds it.
pub type HarnessMap = Map<HarnessRegion, TestHasher>;

/// The key hashers the suites run with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TestHasher {
    /// The default, MurmurHash3 x64_128.
    #[default]
    Murmur,
    /// Three bits of hash from the key's first byte: keys split into 8 slots at depth 0,
    /// then collide all the way down to collision nodes.
    FewBits,
    /// Every key hashes the same: one collision node under a chain of branches.
    Colliding,
    /// The key's first 16 bytes are its hash (zero-padded): short keys that differ
    /// only in their last bytes share paths several levels deep, and keys that differ
    /// only in trailing zeros (`"a"`, `"a\0"`) collide all the way down.
    KeyBytes,
}

impl KeyHasher for TestHasher {
    fn hash(&self, seed: u64, key: &[u8]) -> [u64; 2] {
        match self {
            TestHasher::Murmur => Murmur3.hash(seed, key),
            TestHasher::FewBits => [u64::from(key.first().copied().unwrap_or(0) & 7), 0],
            TestHasher::Colliding => [0x5555_5555_5555_5555, 0xaaaa_aaaa_aaaa_aaaa],
            TestHasher::KeyBytes => {
                let mut bytes = [0u8; 16];
                let n = key.len().min(16);
                bytes[..n].copy_from_slice(&key[..n]);
                let (lo, hi) = bytes.split_at(8);
                [
                    u64::from_le_bytes(lo.try_into().expect("8 bytes")),
                    u64::from_le_bytes(hi.try_into().expect("8 bytes")),
                ]
            }
        }
    }
}

/// One step of a map workload.
#[derive(Clone, PartialEq, Eq)]
pub enum MapOp {
    /// `put` in the write transaction (begun if none is open).
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// `delete` in the write transaction (begun if none is open).
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// [`WriteTxn::fill`] in the write transaction (begun if none is open): builds the
    /// trie from `pairs` when the transaction's trie is empty, else is refused with
    /// `InvalidOption` and changes nothing.
    Fill {
        /// The pairs, in the order given (later ones win).
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// `get` and `contains_key`: in the write transaction if one is open, else on the map.
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// Commits the write transaction durably (begins an empty one if none is open).
    Commit,
    /// Commits the write transaction with [`Durability::Eventual`].
    CommitEventual,
    /// Aborts the write transaction (a no-op if none is open).
    Abort,
    /// [`Map::put`]: a durable commit of its own. Like every operation on the map itself
    /// below, it first drops an open write transaction (the map's writer lock would wait
    /// for it forever).
    MapPut {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// [`Map::delete`].
    MapDelete {
        /// The key.
        key: Vec<u8>,
    },
    /// [`Map::sync`].
    Sync,
    /// [`Map::compact`].
    Compact,
    /// [`Map::compact_step`] with this budget.
    CompactStep {
        /// Bytes the step may take.
        budget: u32,
    },
    /// Closes the map and opens its region again.
    Reopen,
    /// Power loss now: reopens a crash image (its mode chosen by `seed`, see
    /// [`crash_mode`]) and checks that it holds an acceptable state.
    Crash {
        /// Chooses the crash mode.
        seed: u64,
    },
    /// Opens a snapshot of the last commit (at most [`MAX_SNAPSHOTS`] stay open; the
    /// oldest goes first).
    SnapshotOpen,
    /// Checks snapshot `pick % open` against the commit it was taken at.
    SnapshotCheck {
        /// Which one.
        pick: u8,
    },
    /// Drops snapshot `pick % open`.
    SnapshotDrop {
        /// Which one.
        pick: u8,
    },
    /// Checks the committed state in full: `check`, `iter`, `get` of every key, `stats`.
    Check,
}

/// Short bytes print as text where they can, long ones by length and first bytes.
struct Bytes<'a>(&'a [u8]);

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() > 24 {
            write!(f, "[{} bytes: {:02x?}..]", self.0.len(), &self.0[..8])
        } else if let Ok(s) = core::str::from_utf8(self.0)
            && s.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        {
            write!(f, "b{s:?}")
        } else {
            write!(f, "{:02x?}", self.0)
        }
    }
}

impl fmt::Debug for MapOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapOp::Put { key, value } => write!(f, "Put({:?}, {:?})", Bytes(key), Bytes(value)),
            MapOp::Delete { key } => write!(f, "Delete({:?})", Bytes(key)),
            MapOp::Get { key } => write!(f, "Get({:?})", Bytes(key)),
            MapOp::Fill { pairs } => {
                f.write_str("Fill(")?;
                f.debug_list()
                    .entries(pairs.iter().map(|(k, v)| (Bytes(k), Bytes(v))))
                    .finish()?;
                f.write_str(")")
            }
            MapOp::MapPut { key, value } => {
                write!(f, "MapPut({:?}, {:?})", Bytes(key), Bytes(value))
            }
            MapOp::MapDelete { key } => write!(f, "MapDelete({:?})", Bytes(key)),
            MapOp::Commit => f.write_str("Commit"),
            MapOp::CommitEventual => f.write_str("CommitEventual"),
            MapOp::Abort => f.write_str("Abort"),
            MapOp::Sync => f.write_str("Sync"),
            MapOp::Compact => f.write_str("Compact"),
            MapOp::CompactStep { budget } => write!(f, "CompactStep({budget})"),
            MapOp::Reopen => f.write_str("Reopen"),
            MapOp::Crash { seed } => write!(f, "Crash({seed})"),
            MapOp::SnapshotOpen => f.write_str("SnapshotOpen"),
            MapOp::SnapshotCheck { pick } => write!(f, "SnapshotCheck({pick})"),
            MapOp::SnapshotDrop { pick } => write!(f, "SnapshotDrop({pick})"),
            MapOp::Check => f.write_str("Check"),
        }
    }
}

/// Snapshots the harness keeps open at most.
pub const MAX_SNAPSHOTS: usize = 4;

/// The crash mode [`MapOp::Crash`] uses for `seed`: every mode appears.
pub fn crash_mode(seed: u64) -> CrashMode {
    let rest = seed >> 3;
    match seed % 8 {
        0 => CrashMode::DropAllUnsynced,
        1 => CrashMode::KeepAllUnsynced,
        2 => CrashMode::TornLast {
            keep_bytes: (rest % 300) as usize,
        },
        3 | 4 => CrashMode::Random(rest),
        5 | 6 => CrashMode::RandomTornSubset(rest),
        _ => CrashMode::RandomBytes(rest),
    }
}

/// The key numbered `i`: short, distinct, ASCII.
pub fn key(i: u32) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

/// A value of `len` bytes, different for each `(len, fill)`.
pub fn value(len: usize, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| fill.wrapping_add((i as u8).wrapping_mul(31)) ^ (len as u8))
        .collect()
}

/// What the harness did, for the suites' summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapCounts {
    /// Operations applied.
    pub ops: u64,
    /// Commits that went through.
    pub commits: u64,
    /// Crashes simulated.
    pub crashes: u64,
    /// Crashes that recovered a commit newer than the last durable one.
    pub newer: u64,
    /// Snapshot checks made.
    pub snapshot_checks: u64,
}

/// The model's side: what the transaction sees, what was committed, what may survive.
#[derive(Clone, Debug, Default)]
struct Models {
    /// The write transaction's view.
    pending: Model,
    /// The last published commit.
    committed: Model,
    /// The last commit known durable.
    durable: Model,
    /// Commits published since `durable` that a crash may or may not keep.
    published: Vec<Model>,
    /// States an operation that failed may have made durable (a compaction step).
    maybe_durable: Vec<Model>,
}

impl Models {
    fn at(state: Model) -> Self {
        Models {
            pending: state.clone(),
            committed: state.clone(),
            durable: state,
            published: Vec::new(),
            maybe_durable: Vec::new(),
        }
    }

    fn made_durable(&mut self) {
        self.durable = self.committed.clone();
        self.published.clear();
        self.maybe_durable.clear();
    }

    /// A commit was published with `durability` (or, `durable == false`, its meta slot
    /// was written and its sync failed).
    fn published(&mut self, durable: bool) {
        self.committed = self.pending.clone();
        if durable {
            self.made_durable();
        } else {
            self.published.push(self.committed.clone());
        }
    }
}

/// What ended a run of operations that share one open map.
enum Boundary {
    Reopen,
    Crash(u64),
}

/// Runs [`MapOp`]s on a map and a model; see the [module documentation](self).
pub struct MapHarness {
    region: HarnessRegion,
    map: Option<HarnessMap>,
    hasher: TestHasher,
    capacity: usize,
    /// Check the whole state after every operation (slow with many keys).
    pub check_each_op: bool,
    models: Models,
    /// What the harness did.
    pub counts: MapCounts,
}

impl MapHarness {
    /// A new map with `options` and `hasher` on a [`FaultRegion`] of `capacity` bytes.
    pub fn new(capacity: usize, options: MapOptions, hasher: TestHasher) -> Self {
        let region = Arc::new(FaultRegion::with_capacity(capacity));
        let map = Map::create_with_hasher(region.clone(), options, hasher).expect("create");
        MapHarness {
            region,
            map: Some(map),
            hasher,
            capacity,
            check_each_op: false,
            models: Models::default(),
            counts: MapCounts::default(),
        }
    }

    /// A harness around `map`, opened on a region of `capacity` bytes that holds
    /// `state` (a crash test goes on from what recovery found).
    pub fn resume(map: HarnessMap, state: Model, hasher: TestHasher, capacity: usize) -> Self {
        MapHarness {
            region: map_region(&map),
            map: Some(map),
            hasher,
            capacity,
            check_each_op: false,
            models: Models::at(state),
            counts: MapCounts::default(),
        }
    }

    /// The region (also after an operation failed).
    pub fn region(&self) -> &FaultRegion {
        &self.region
    }

    /// The map; `None` after a reopen failed.
    pub fn map(&self) -> Option<&HarnessMap> {
        self.map.as_ref()
    }

    /// The hasher the map was made with.
    pub fn hasher(&self) -> TestHasher {
        self.hasher
    }

    /// The region's capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The model of the last published commit.
    pub fn committed(&self) -> &Model {
        &self.models.committed
    }

    /// The model of the last commit known durable.
    pub fn durable(&self) -> &Model {
        &self.models.durable
    }

    /// Every state a crash image of `mode` may hold: the durable one first; then, unless
    /// every unsynced write is dropped, the commits published since.
    pub fn crash_candidates(&self, mode: CrashMode) -> Vec<&Model> {
        let m = &self.models;
        let mut out = vec![&m.durable];
        out.extend(&m.maybe_durable);
        if mode != CrashMode::DropAllUnsynced {
            out.extend(&m.published);
        }
        out
    }

    /// Applies `ops` in order and stops at the first error the map returns (a power cut,
    /// in a crash test): returns the index of the failed operation and its error. The
    /// states the failed operation may have published are then among
    /// [`crash_candidates`](Self::crash_candidates). Panics as soon as the map disagrees
    /// with the model. Transactions and snapshots opened by `ops` end with the call.
    pub fn run(&mut self, ops: &[MapOp]) -> Result<(), (usize, Error)> {
        let mut i = 0;
        while i < ops.len() {
            let boundary = self.segment(ops, &mut i).map_err(|e| (i, e))?;
            let Some(boundary) = boundary else {
                break;
            };
            self.counts.ops += 1;
            match boundary {
                Boundary::Reopen => self.reopen().map_err(|e| (i, e))?,
                Boundary::Crash(seed) => self.crash(crash_mode(seed)),
            }
            if self.check_each_op {
                self.check_committed();
            }
            i += 1;
        }
        Ok(())
    }

    /// Applies `ops` and panics on any error.
    pub fn apply(&mut self, ops: &[MapOp]) {
        if let Err((i, e)) = self.run(ops) {
            panic!("op {i} ({:?}) failed: {e:?}", ops[i]);
        }
    }

    /// Runs `ops[*i..]` until a reopen or crash (returned, with `*i` at it) or the end.
    fn segment(&mut self, ops: &[MapOp], i: &mut usize) -> Result<Option<Boundary>, Error> {
        let map = self.map.as_ref().expect("the map is open");
        let models = &mut self.models;
        let counts = &mut self.counts;
        let mut txn: Option<WriteTxn<'_, HarnessRegion, TestHasher>> = None;
        let mut snapshots: Vec<(ReadTxn<'_, HarnessRegion, TestHasher>, Model)> = Vec::new();
        // Operations on the map itself wait for the writer lock: the transaction goes
        // first, dropped, which aborts it.
        fn end_txn(txn: &mut Option<WriteTxn<'_, HarnessRegion, TestHasher>>, models: &mut Models) {
            if txn.take().is_some() {
                models.pending = models.committed.clone();
            }
        }
        while *i < ops.len() {
            let op = &ops[*i];
            counts.ops += 1;
            match op {
                MapOp::Put { key, value } => {
                    let t = txn.get_or_insert_with(|| map.begin_write());
                    let new = t.put(key, value)?;
                    let was = models.pending.insert(key.clone(), value.clone());
                    assert_eq!(new, was.is_none(), "{op:?}: put's answer");
                    assert_eq!(t.get(key)?, Some(&value[..]), "{op:?}: read back");
                }
                MapOp::Delete { key } => {
                    let t = txn.get_or_insert_with(|| map.begin_write());
                    let existed = t.delete(key)?;
                    let was = models.pending.remove(key);
                    assert_eq!(existed, was.is_some(), "{op:?}: delete's answer");
                    assert_eq!(t.get(key)?, None, "{op:?}: read back");
                }
                MapOp::Fill { pairs } => {
                    let t = txn.get_or_insert_with(|| map.begin_write());
                    let given = pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice()));
                    if models.pending.is_empty() {
                        let n = t.fill(given)?;
                        models.pending.extend(pairs.iter().cloned());
                        assert_eq!(n, models.pending.len() as u64, "{op:?}: fill's count");
                        for (k, v) in &models.pending {
                            assert_eq!(t.get(k)?, Some(&v[..]), "{op:?}: read back");
                        }
                    } else {
                        let refused = t.fill(given);
                        assert!(
                            matches!(refused, Err(Error::InvalidOption { .. })),
                            "{op:?} on a trie that is not empty: {refused:?}"
                        );
                    }
                }
                MapOp::Get { key } => {
                    if let Some(t) = &txn {
                        let want = models.pending.get(key).map(Vec::as_slice);
                        assert_eq!(t.get(key)?, want, "{op:?} in the transaction");
                        assert_eq!(t.contains_key(key)?, want.is_some(), "{op:?}");
                        assert_eq!(t.len(), models.pending.len() as u64, "{op:?}: len");
                    } else {
                        let want = models.committed.get(key).map(Vec::as_slice);
                        let got = map.get(key)?;
                        assert_eq!(got.as_deref(), want, "{op:?} on the map");
                        assert_eq!(map.contains_key(key)?, want.is_some(), "{op:?}");
                    }
                }
                MapOp::Commit | MapOp::CommitEventual => {
                    let durability = if *op == MapOp::Commit {
                        Durability::Immediate
                    } else {
                        Durability::Eventual
                    };
                    let t = txn.take().unwrap_or_else(|| map.begin_write());
                    commit(map, models, || t.commit_with(durability), durability)?;
                    counts.commits += 1;
                }
                MapOp::Abort => {
                    if let Some(t) = txn.take() {
                        t.abort();
                    }
                    models.pending = models.committed.clone();
                }
                MapOp::MapPut { key, value } => {
                    end_txn(&mut txn, models);
                    let was = models.pending.insert(key.clone(), value.clone());
                    let mut new = None;
                    let put = || map.put(key, value).map(|n| new = Some(n));
                    commit(map, models, put, Durability::Immediate)?;
                    assert_eq!(new, Some(was.is_none()), "{op:?}: put's answer");
                    counts.commits += 1;
                }
                MapOp::MapDelete { key } => {
                    end_txn(&mut txn, models);
                    if models.pending.remove(key).is_some() {
                        let mut gone = None;
                        let delete = || map.delete(key).map(|g| gone = Some(g));
                        commit(map, models, delete, Durability::Immediate)?;
                        assert_eq!(gone, Some(true), "{op:?}: delete's answer");
                        counts.commits += 1;
                    } else {
                        // An absent key commits nothing.
                        let before = published_txid(map);
                        assert!(!map.delete(key)?, "{op:?}: delete's answer");
                        assert_eq!(published_txid(map), before, "{op:?} committed");
                    }
                }
                MapOp::Sync => {
                    end_txn(&mut txn, models);
                    map.sync()?;
                    models.made_durable();
                }
                MapOp::Compact => {
                    end_txn(&mut txn, models);
                    models.maybe_durable.push(models.committed.clone());
                    let before = map.region().len();
                    let report = map.compact()?;
                    assert!(
                        report.used_end_after <= report.used_end_before,
                        "{report:?}"
                    );
                    if snapshots.is_empty() {
                        assert!(map.region().len() <= before.max(report.used_end_after));
                    }
                    models.made_durable();
                }
                MapOp::CompactStep { budget } => {
                    end_txn(&mut txn, models);
                    models.maybe_durable.push(models.committed.clone());
                    let moved = map.compact_step(u64::from(*budget))?;
                    models.maybe_durable.pop();
                    if moved > 0 {
                        models.made_durable();
                    }
                }
                MapOp::Reopen => return Ok(Some(Boundary::Reopen)),
                MapOp::Crash { seed } => return Ok(Some(Boundary::Crash(*seed))),
                MapOp::SnapshotOpen => {
                    if snapshots.len() == MAX_SNAPSHOTS {
                        snapshots.remove(0);
                    }
                    snapshots.push((map.begin_read(), models.committed.clone()));
                }
                MapOp::SnapshotCheck { pick } => {
                    if !snapshots.is_empty() {
                        let (snapshot, model) = &snapshots[usize::from(*pick) % snapshots.len()];
                        if let Err(why) = check_snapshot(snapshot, model) {
                            panic!("{op:?}: snapshot at txid {}: {why}", snapshot.txid());
                        }
                        counts.snapshot_checks += 1;
                    }
                }
                MapOp::SnapshotDrop { pick } => {
                    if !snapshots.is_empty() {
                        let n = snapshots.len();
                        snapshots.remove(usize::from(*pick) % n);
                    }
                }
                MapOp::Check => {
                    if let Err(why) = check_map(map, &models.committed) {
                        panic!("{op:?}: {why}");
                    }
                }
            }
            if self.check_each_op {
                if let Some(t) = &txn {
                    check_txn(t, &models.pending);
                }
                if let Err(why) = check_map(map, &models.committed) {
                    panic!("after {op:?}: {why}");
                }
                if txn.is_none() {
                    assert_eq!(models.pending, models.committed);
                }
            }
            *i += 1;
        }
        Ok(None)
    }

    fn reopen(&mut self) -> Result<(), Error> {
        let map = self.map.take().expect("the map is open");
        let region = map.into_region();
        self.models.pending = self.models.committed.clone();
        let map = Map::open_with_hasher(region, self.hasher)?;
        // Opening makes what it found durable.
        self.models.made_durable();
        self.map = Some(map);
        Ok(())
    }

    /// Power loss now: opens a crash image of `mode` and checks it holds one of the
    /// acceptable states, which the harness then continues from.
    pub fn crash(&mut self, mode: CrashMode) {
        let image = self.region.crash_image(mode);
        let (map, state) = self.open_crash_image(&image, mode).unwrap_or_else(|why| {
            panic!("crash ({mode:?}): {why}");
        });
        self.counts.crashes += 1;
        if state != self.models.durable {
            self.counts.newer += 1;
        }
        self.map = Some(map);
        self.region = map_region(self.map.as_ref().expect("just set"));
        self.models = Models::at(state);
    }

    /// Opens `image` (a crash image of `mode`) and finds the acceptable state it holds.
    pub fn open_crash_image(
        &self,
        image: &[u8],
        mode: CrashMode,
    ) -> Result<(HarnessMap, Model), String> {
        let region = Arc::new(FaultRegion::from_image(image, self.capacity));
        let map = Map::open_with_hasher(region, self.hasher)
            .map_err(|e| format!("open failed: {e:?}"))?;
        let state = match_candidates(&map, &self.crash_candidates(mode))?.clone();
        Ok((map, state))
    }

    /// Checks the committed state against the model in full; panics on a difference.
    pub fn check_committed(&self) {
        let map = self.map.as_ref().expect("the map is open");
        if let Err(why) = check_map(map, &self.models.committed) {
            panic!("map differs from the model: {why}");
        }
    }
}

/// A shared handle on the region of `map`.
fn map_region(map: &HarnessMap) -> HarnessRegion {
    map.region().clone()
}

/// The txid of the map's last published commit.
fn published_txid(map: &HarnessMap) -> u64 {
    map.begin_read().txid()
}

/// Runs `commit` (a commit of `models.pending`) and updates the models by what it
/// published: on error, the commit counts as published (not durable) exactly when the
/// map's published txid moved, that is when its meta slot was written.
fn commit(
    map: &HarnessMap,
    models: &mut Models,
    commit: impl FnOnce() -> Result<(), Error>,
    durability: Durability,
) -> Result<(), Error> {
    let before = published_txid(map);
    match commit() {
        Ok(()) => {
            assert_eq!(
                published_txid(map),
                before + 1,
                "a commit publishes one txid"
            );
            models.published(durability == Durability::Immediate);
            Ok(())
        }
        Err(e) => {
            if published_txid(map) > before {
                models.published(false);
            } else {
                models.pending = models.committed.clone();
            }
            Err(e)
        }
    }
}

/// The pairs of an `iter`, sorted by key.
fn sorted(pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v: Vec<_> = pairs.into_iter().collect();
    v.sort();
    v
}

/// Whether `map`'s committed pairs are exactly `model`'s (cheap: one `iter`).
pub fn same_pairs<R: Region, H: KeyHasher>(map: &Map<R, H>, model: &Model) -> Result<bool, String> {
    let pairs = map.iter().map_err(|e| format!("iter failed: {e:?}"))?;
    Ok(pairs.len() == model.len() && sorted(pairs).into_iter().eq(model.clone()))
}

/// The candidate `map` holds exactly, after a full check of it.
pub fn match_candidates<'a, R: Region, H: KeyHasher>(
    map: &Map<R, H>,
    candidates: &[&'a Model],
) -> Result<&'a Model, String> {
    for candidate in candidates {
        if same_pairs(map, candidate)? {
            check_map(map, candidate)?;
            return Ok(candidate);
        }
    }
    let pairs = map.iter().map_err(|e| format!("iter failed: {e:?}"))?;
    Err(format!(
        "the map's {} pairs match none of the {} acceptable states (of {:?} keys)",
        pairs.len(),
        candidates.len(),
        candidates.iter().map(|c| c.len()).collect::<Vec<_>>()
    ))
}

/// Checks everything a caller can observe of `map`'s last commit against `model`:
/// `len`, `check`, `iter`, `get` and `contains_key` of every key (and of absent ones),
/// and `stats`.
pub fn check_map<R: Region, H: KeyHasher>(map: &Map<R, H>, model: &Model) -> Result<(), String> {
    macro_rules! ensure {
        ($cond:expr, $($fmt:tt)*) => {
            if !$cond {
                return Err(format!($($fmt)*));
            }
        };
    }
    let n = model.len() as u64;
    ensure!(map.len() == n, "len() is {}, model has {n}", map.len());
    ensure!(
        map.is_empty() == (n == 0),
        "is_empty() is {}",
        map.is_empty()
    );
    let report = map.check();
    ensure!(report.is_ok(), "check() found {:?}", report.problems);
    ensure!(
        report.keys == n,
        "check() counted {} keys, model has {n}",
        report.keys
    );
    let pairs = map.iter().map_err(|e| format!("iter() failed: {e:?}"))?;
    ensure!(
        pairs.len() == model.len(),
        "iter() gave {} pairs, model has {n}",
        pairs.len()
    );
    let pairs = sorted(pairs);
    for ((k, v), (mk, mv)) in pairs.iter().zip(model) {
        ensure!(
            k == mk && v == mv,
            "iter() has {:?} = {:?} where the model has {:?} = {:?}",
            Bytes(k),
            Bytes(v),
            Bytes(mk),
            Bytes(mv)
        );
    }
    let snapshot = map.begin_read();
    for (k, v) in model {
        let got = map
            .get(k)
            .map_err(|e| format!("get({:?}) failed: {e:?}", Bytes(k)))?;
        ensure!(
            got.as_deref() == Some(&v[..]),
            "get({:?}) is {:?}, model has {:?}",
            Bytes(k),
            got.as_deref().map(Bytes),
            Bytes(v)
        );
        ensure!(
            snapshot.get(k) == Ok(Some(&v[..])),
            "snapshot get({:?}) differs",
            Bytes(k)
        );
        ensure!(
            map.contains_key(k) == Ok(true),
            "contains_key({:?})",
            Bytes(k)
        );
    }
    drop(snapshot);
    for absent in [&b"absent"[..], b"", b"key-", b"\xff\xff"] {
        if !model.contains_key(absent) {
            let got = map
                .get(absent)
                .map_err(|e| format!("get(absent) failed: {e:?}"))?;
            ensure!(got.is_none(), "get({:?}) found a value", Bytes(absent));
        }
    }
    let stats = map.stats().map_err(|e| format!("stats() failed: {e:?}"))?;
    ensure!(stats.entries == n, "stats().entries is {}", stats.entries);
    let live: u64 = model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    ensure!(
        stats.live_bytes == live,
        "stats().live_bytes is {}, model {live}",
        stats.live_bytes
    );
    let in_depths: u64 = stats.depth_histogram.iter().sum();
    ensure!(in_depths == n, "depth histogram counts {in_depths} keys");
    Ok(())
}

/// Checks a snapshot against the commit it was taken at.
pub fn check_snapshot<R: Region, H: KeyHasher>(
    snapshot: &ReadTxn<'_, R, H>,
    model: &Model,
) -> Result<(), String> {
    let n = model.len() as u64;
    if snapshot.len() != n {
        return Err(format!("len() is {}, model has {n}", snapshot.len()));
    }
    for (k, v) in model {
        match snapshot.get(k) {
            Ok(Some(got)) if got == &v[..] => {}
            other => return Err(format!("get({:?}) is {other:?}", Bytes(k))),
        }
        if snapshot.contains_key(k) != Ok(true) {
            return Err(format!("contains_key({:?}) is not true", Bytes(k)));
        }
    }
    let pairs = snapshot
        .iter()
        .map_err(|e| format!("iter() failed: {e:?}"))?;
    let pairs = sorted(pairs.into_iter().map(|(k, v)| (k.to_vec(), v.to_vec())));
    if !pairs.into_iter().eq(model.clone()) {
        return Err("iter() differs from the model".into());
    }
    Ok(())
}

/// Checks the write transaction's view against the model; panics on a difference.
fn check_txn(txn: &WriteTxn<'_, HarnessRegion, TestHasher>, model: &Model) {
    assert_eq!(txn.len(), model.len() as u64, "transaction len()");
    assert_eq!(txn.is_empty(), model.is_empty());
    for (k, v) in model {
        assert_eq!(
            txn.get(k),
            Ok(Some(&v[..])),
            "transaction get({:?})",
            Bytes(k)
        );
    }
}
