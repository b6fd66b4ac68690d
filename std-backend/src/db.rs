//! [`Db`]: the core map on a [`FileRegion`], shared between threads, with group commit
//! and background flushing and compaction.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use hamtdb_core::log::{CommitLog, LogPolicy, LoggedMap, LoggedTxn};
use hamtdb_core::{
    CheckReport, Durability, Error, Map, MapCompactReport, MapOptions, MapStats, Murmur3,
    OwnedPair, ReadTxn, Region, RegionError, Value,
};

use crate::error::DbError;
use crate::file_region::{DEFAULT_RESERVATION, FileRegion, FileRegionOptions, GrowthPolicy};
use crate::pending::PendingPuts;

/// When the database compacts by itself (the policies of mmcb).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DbCompactionPolicy {
    /// Space: compact when reclaimable bytes (free below the used end, or freed and
    /// waiting) are at least this percentage of the used bytes **and** at least
    /// `space_min_bytes`. `0` is off.
    pub space_percent: u8,
    /// With `space_percent`: the least number of reclaimable bytes worth a compaction.
    pub space_min_bytes: u64,
    /// Time: compact this often. `None` is off.
    pub interval: Option<Duration>,
}

/// How to open a [`Db`]. `Db::builder()` starts from the defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// Durability of `put`, `delete` and [`DbWriteTxn::commit`]. Default
    /// [`Durability::Immediate`]: synced before the call returns.
    pub durability: Durability,
    /// How the file grows.
    pub growth: GrowthPolicy,
    /// Address space reserved for the file's mapping (the most it can grow to).
    pub reservation: u64,
    /// Values up to this many bytes live inside their trie node (new databases only).
    pub inline_max: u32,
    /// Room given to values stored outside their node, as a multiple of their length
    /// (1.0 to 16.0; default 1.0). A transaction that overwrites a value it wrote itself
    /// with one that fits the room rewrites it in place; see
    /// [`Map::set_extension_factor`](hamtdb_core::Map::set_extension_factor).
    pub extension_factor: f64,
    /// Background compaction.
    pub compaction: DbCompactionPolicy,
    /// With [`Durability::Eventual`]: a background thread syncs this often. `None`:
    /// only [`Db::flush`], a later durable commit, or closing syncs.
    pub flush_interval: Option<Duration>,
    /// Open for reading only, with a shared lock: other read-only opens may share the
    /// file, writers are refused. Writes return [`DbError::ReadOnly`].
    pub read_only: bool,
    /// Hash and checksum seed of a new database. `None` (the default) draws a random
    /// one from the operating system, so that nobody can choose keys that all share one
    /// path.
    pub seed: Option<u64>,
    /// Most memory a write transaction that began on an empty database uses to hold its
    /// puts and build the trie bottom-up at commit (see [`DbWriteTxn`]): the keys and
    /// values plus about 160 bytes a put. Default 1 GiB; `0` puts every pair into the
    /// trie as it comes.
    pub pending_max_bytes: usize,
    /// Make durable commits through a commit log, the file `<path>-log` next to the
    /// database (default `true`): a durable commit then writes its changes to the
    /// database file without syncing it, appends one record to the log and syncs the
    /// log, one contiguous write instead of the file's scattered pages. The file is
    /// synced and the log emptied at a checkpoint: when the log or the space freed since
    /// the last one passes [`log_policy`](Self::log_policy)'s bounds, after a
    /// compaction, a transaction too large to log, and on close. Opening replays the
    /// log's records the file does not hold yet.
    ///
    /// `false`: every durable commit syncs the database file. A log left by an earlier
    /// open is replayed and removed.
    pub commit_log: bool,
    /// When the commit log checkpoints, and which transactions it does not log.
    pub log_policy: LogPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Immediate,
            growth: GrowthPolicy::default(),
            reservation: DEFAULT_RESERVATION,
            inline_max: MapOptions::default().inline_max,
            extension_factor: 1.0,
            compaction: DbCompactionPolicy::default(),
            flush_interval: None,
            read_only: false,
            seed: None,
            pending_max_bytes: 1 << 30,
            commit_log: true,
            log_policy: LogPolicy::default(),
        }
    }
}

impl Options {
    /// Sets [`durability`](Self::durability).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`growth`](Self::growth).
    pub fn growth(mut self, growth: GrowthPolicy) -> Self {
        self.growth = growth;
        self
    }

    /// Sets [`reservation`](Self::reservation).
    pub fn reservation(mut self, bytes: u64) -> Self {
        self.reservation = bytes;
        self
    }

    /// Sets [`inline_max`](Self::inline_max).
    pub fn inline_max(mut self, bytes: u32) -> Self {
        self.inline_max = bytes;
        self
    }

    /// Sets [`extension_factor`](Self::extension_factor).
    pub fn extension_factor(mut self, factor: f64) -> Self {
        self.extension_factor = factor;
        self
    }

    /// Sets [`compaction`](Self::compaction).
    pub fn compaction(mut self, policy: DbCompactionPolicy) -> Self {
        self.compaction = policy;
        self
    }

    /// Sets [`flush_interval`](Self::flush_interval).
    pub fn flush_interval(mut self, every: Option<Duration>) -> Self {
        self.flush_interval = every;
        self
    }

    /// Sets [`read_only`](Self::read_only).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Sets [`seed`](Self::seed).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets [`pending_max_bytes`](Self::pending_max_bytes).
    pub fn pending_max_bytes(mut self, bytes: usize) -> Self {
        self.pending_max_bytes = bytes;
        self
    }

    /// Sets [`commit_log`](Self::commit_log).
    pub fn commit_log(mut self, on: bool) -> Self {
        self.commit_log = on;
        self
    }

    /// Sets [`log_policy`](Self::log_policy).
    pub fn log_policy(mut self, policy: LogPolicy) -> Self {
        self.log_policy = policy;
        self
    }

    /// Opens the database at `path`, creating it if it does not exist (unless
    /// read-only).
    pub fn open(self, path: impl AsRef<Path>) -> Result<Db, DbError> {
        Db::open_with(path.as_ref(), self)
    }
}

/// One change waiting for a group commit.
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// Changes queued by `put`/`delete` callers; one of them, the leader, applies the whole
/// queue in one transaction and one sync, then hands every caller its result.
#[derive(Default)]
struct Batch {
    queue: Vec<(u64, Op)>,
    next_ticket: u64,
    results: std::collections::HashMap<u64, Result<bool, Error>>,
    leader: bool,
}

/// What the threads share.
struct Shared {
    db: LoggedMap<FileRegion, FileRegion, Murmur3>,
    options: Options,
    path: PathBuf,
    /// Writers queue here, so that they sleep instead of spinning on the core's lock.
    writer: Mutex<()>,
    batch: Mutex<Batch>,
    batch_done: Condvar,
    /// Commits made with `Eventual` durability that no sync covered yet.
    unsynced: AtomicBool,
    stop: Mutex<bool>,
    stop_signal: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave the guarded state half-changed in a way that
    // matters here (the core keeps its own invariants), so carry on.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A database: the HAMT map on a memory-mapped file, safe to share between threads.
///
/// Readers never wait for writers: each read runs on a snapshot of the last commit.
/// Writers are serialized; `put` and `delete` from many threads are batched into shared
/// commits (group commit), so concurrent durable writers share syncs. The file is locked
/// for as long as the `Db` is open: another process (or another `Db` on the same file)
/// gets [`DbError::Locked`]. That lock is what keeps the memory map sound; a program that
/// writes the file while it is open, ignoring the lock, breaks every guarantee.
///
/// Durable commits go through a commit log, the file `<path>-log` next to the database
/// (see [`Options::commit_log`] and [`log_path`]): keep the two files together (copy,
/// move or delete them together, with the database closed). Only the holder of the
/// database's exclusive lock writes the log. A read-only open of a database whose log
/// holds commits the file lacks (after a crash) returns [`DbError::NeedsRecovery`]:
/// open it writable once to replay them.
///
/// A commit that returns an error (from `put`, `delete`, [`DbWriteTxn::commit`]) may still
/// be visible to readers afterwards: when the error came from writing or syncing the log
/// or the file, the commit was already published in memory. It may or may not survive a
/// crash (a reopen shows it or not, never a part of it); the next durable commit,
/// [`flush`](Self::flush) or [`close`](Self::close) that returns `Ok` makes it durable
/// with everything before it. An error before publishing (a key too large, no room)
/// leaves nothing visible.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let db = hamtdb::Db::open(dir.path().join("my.db"))?;
/// db.put(b"apple", b"red")?;
/// assert_eq!(db.get(b"apple")?.as_deref(), Some(&b"red"[..]));
///
/// let mut txn = db.begin_write()?;
/// txn.put(b"pear", b"green")?;
/// txn.delete(b"apple")?;
/// txn.commit()?;
/// assert_eq!(db.len(), 1);
/// db.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Db {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    closed: bool,
}

impl core::fmt::Debug for Db {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.shared.path)
            .field("len", &self.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens the database at `path` with default [`Options`], creating it if missing (or
    /// if it is an empty or all-zero file, as a creation cut short by a crash leaves).
    pub fn open(path: impl AsRef<Path>) -> Result<Db, DbError> {
        Db::open_with(path.as_ref(), Options::default())
    }

    /// Default options, to change and then [`Options::open`].
    pub fn builder() -> Options {
        Options::default()
    }

    fn open_with(path: &Path, options: Options) -> Result<Db, DbError> {
        let region_options = FileRegionOptions::default()
            .growth(options.growth)
            .reservation(options.reservation)
            .read_only(options.read_only);
        let mut created = true;
        let map = if options.read_only || path.exists() {
            let region = FileRegion::open(path, region_options)?;
            if !options.read_only && never_formatted(&region)? {
                // A creation that died before its first commit (killed, or the power
                // lost) leaves an empty file or one of zeros, which `Map::open` refuses
                // for ever. Nothing was ever stored in it: format it as creating would.
                let map = format(region, &options)?;
                sync_parent_dir(path)?;
                map
            } else {
                created = false;
                Map::open(region)?
            }
        } else {
            format(FileRegion::create(path, region_options)?, &options)?
        };
        map.set_extension_factor(options.extension_factor)?;
        let db = with_log(map, path, &options, created)?;
        let shared = Arc::new(Shared {
            db,
            path: path.to_path_buf(),
            writer: Mutex::new(()),
            batch: Mutex::new(Batch::default()),
            batch_done: Condvar::new(),
            unsynced: AtomicBool::new(false),
            stop: Mutex::new(false),
            stop_signal: Condvar::new(),
            options,
        });
        let mut threads = Vec::new();
        if !shared.options.read_only {
            if let Some(every) = shared.options.flush_interval {
                let s = shared.clone();
                threads.push(std::thread::spawn(move || s.flusher(every)));
            }
            let policy = shared.options.compaction;
            if policy.space_percent > 0 || policy.interval.is_some() {
                let s = shared.clone();
                threads.push(std::thread::spawn(move || s.compactor(policy)));
            }
        }
        Ok(Db {
            shared,
            threads,
            closed: false,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The value of `key` at the last commit, borrowed from the file without copying;
    /// it holds a snapshot (keeping its bytes from being reused) until dropped.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value<'_, FileRegion>>, DbError> {
        Ok(self.shared.map().get(key)?)
    }

    /// The value of `key` at the last commit, copied out.
    pub fn get_owned(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self.shared.map().get(key)?.map(|v| v.to_vec()))
    }

    /// Whether `key` is present at the last commit.
    pub fn contains_key(&self, key: &[u8]) -> Result<bool, DbError> {
        Ok(self.shared.map().contains_key(key)?)
    }

    /// Number of keys at the last commit.
    pub fn len(&self) -> u64 {
        self.shared.map().len()
    }

    /// Whether the database held no keys at the last commit.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every pair at the last commit, copied out, in storage order.
    pub fn iter(&self) -> Result<Vec<OwnedPair>, DbError> {
        Ok(self.shared.map().iter()?)
    }

    /// Sets `key` to `value`, committed with the default durability (shared with other
    /// threads' concurrent writes). Returns `true` when the key was new.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<bool, DbError> {
        self.shared.submit(Op::Put(key.to_vec(), value.to_vec()))
    }

    /// Removes `key`, committed with the default durability. Returns whether it was
    /// there.
    pub fn delete(&self, key: &[u8]) -> Result<bool, DbError> {
        self.shared.submit(Op::Delete(key.to_vec()))
    }

    /// A snapshot of the last commit; it never waits for writers.
    pub fn begin_read(&self) -> ReadTxn<'_, FileRegion> {
        self.shared.map().begin_read()
    }

    /// The write transaction, waiting while another is open.
    pub fn begin_write(&self) -> Result<DbWriteTxn<'_>, DbError> {
        self.shared.writable()?;
        let guard = lock(&self.shared.writer);
        let txn = self.shared.db.begin_write();
        Ok(DbWriteTxn {
            pending: (txn.is_empty() && self.shared.options.pending_max_bytes > 0)
                .then(PendingPuts::new),
            failed: None,
            txn,
            shared: &self.shared,
            _writer: guard,
        })
    }

    /// Makes every commit so far durable (one sync).
    pub fn flush(&self) -> Result<(), DbError> {
        self.shared.flush()
    }

    /// Compacts now: moves live data towards the start of the file in bounded steps
    /// (writers get their turn between steps, readers never stop) and shrinks the file.
    pub fn compact(&self) -> Result<MapCompactReport, DbError> {
        self.shared.writable()?;
        self.shared.compact()
    }

    /// Keys by depth and space accounting.
    pub fn stats(&self) -> Result<MapStats, DbError> {
        Ok(self.shared.map().stats()?)
    }

    /// Verifies every node and value of the last commit; every problem with its offset.
    pub fn check(&self) -> CheckReport {
        self.shared.map().check()
    }

    /// Stops the background threads, syncs what is not yet durable and releases the
    /// file. Errors are returned, not swallowed (dropping a `Db` closes it too, but has
    /// nowhere to report them).
    pub fn close(mut self) -> Result<(), DbError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), DbError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        *lock(&self.shared.stop) = true;
        self.shared.stop_signal.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if self.shared.options.read_only {
            return Ok(());
        }
        let _writer = lock(&self.shared.writer);
        self.shared.unsynced.store(false, Ordering::Release);
        Ok(self.shared.db.checkpoint()?)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

impl Shared {
    fn map(&self) -> &Map<FileRegion, Murmur3> {
        self.db.map()
    }

    fn writable(&self) -> Result<(), DbError> {
        if self.options.read_only {
            return Err(DbError::ReadOnly);
        }
        Ok(())
    }

    /// Queues `op` and returns its result once a group commit applied it.
    fn submit(&self, op: Op) -> Result<bool, DbError> {
        self.writable()?;
        let mut batch = lock(&self.batch);
        let ticket = batch.next_ticket;
        batch.next_ticket += 1;
        batch.queue.push((ticket, op));
        loop {
            if let Some(result) = batch.results.remove(&ticket) {
                return Ok(result?);
            }
            if batch.leader {
                batch = self
                    .batch_done
                    .wait(batch)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // Lead: take everything queued so far and commit it together.
            batch.leader = true;
            let ops = core::mem::take(&mut batch.queue);
            drop(batch);
            let results = self.apply(ops);
            batch = lock(&self.batch);
            batch.results.extend(results);
            batch.leader = false;
            self.batch_done.notify_all();
        }
    }

    /// Applies `ops` in one transaction and commits it with the default durability.
    fn apply(&self, ops: Vec<(u64, Op)>) -> Vec<(u64, Result<bool, Error>)> {
        let _writer = lock(&self.writer);
        let run = |txn: &mut LoggedTxn<'_, FileRegion, FileRegion>| {
            ops.iter()
                .map(|(ticket, op)| {
                    let result = match op {
                        Op::Put(k, v) => txn.put(k, v),
                        Op::Delete(k) => txn.delete(k),
                    };
                    (*ticket, result)
                })
                .collect::<Vec<_>>()
        };
        let mut txn = self.db.begin_write();
        let mut results = run(&mut txn);
        // With the commit log, space freed since the file's last sync is reusable only
        // after a checkpoint: a batch that ran out of room gets one, and a second try.
        if results
            .iter()
            .any(|(_, r)| r.as_ref().is_err_and(is_out_of_room))
            && self.map().space_usage().pending_bytes > 0
        {
            txn.abort();
            // A failed checkpoint shows again in the second try's results.
            let _ = self.db.checkpoint();
            txn = self.db.begin_write();
            results = run(&mut txn);
        }
        if results.iter().all(|(_, r)| r.is_err()) {
            txn.abort();
            return results;
        }
        let durability = self.options.durability;
        if let Err(e) = txn.commit_with(durability) {
            for (_, r) in &mut results {
                *r = Err(e);
            }
        } else if durability != Durability::Immediate {
            self.unsynced.store(true, Ordering::Release);
        }
        results
    }

    fn flush(&self) -> Result<(), DbError> {
        let _writer = lock(&self.writer);
        self.unsynced.store(false, Ordering::Release);
        if let Err(e) = self.db.sync() {
            // Not durable after all: the flusher tries again on its next tick.
            self.unsynced.store(true, Ordering::Release);
            return Err(e.into());
        }
        Ok(())
    }

    fn compact(&self) -> Result<MapCompactReport, DbError> {
        let mut report = MapCompactReport {
            used_end_before: self.map().space_usage().used_end,
            ..MapCompactReport::default()
        };
        // A step walks the trie down to what it moves, and what it cannot prune it reads:
        // on a large, fragmented map that walk costs more than the copying. Steps of an
        // eighth of the used length (as `Map::compact` takes) keep it to a handful of
        // walks; writers still get their turn between steps.
        let step = COMPACT_STEP_BYTES.max(report.used_end_before / 8);
        // Each step moves entries strictly down, so the steps end; the bound (as in
        // `Map::compact`) guards against a damaged image.
        for _ in 0..1024 {
            let moved = {
                let _writer = lock(&self.writer);
                self.db.compact_step(step)?
            };
            if moved == 0 || self.stopping() {
                break;
            }
            report.bytes_moved += moved;
            report.steps += 1;
            // Once the entries past the packed end have moved, a step moves mostly the
            // paths the last one rewrote, a little lower each time: on a layout that
            // logged commits fragmented that went on for ~40 steps (15 s at 1 M keys)
            // for the same file in the end. A step that moved less than a quarter of
            // its budget, with the used end no higher than at the start, ends it.
            if moved < step / 4 && self.map().space_usage().used_end <= report.used_end_before {
                break;
            }
        }
        let _writer = lock(&self.writer);
        report.used_end_after = self.db.shrink()?;
        report.steps += 1;
        Ok(report)
    }

    fn stopping(&self) -> bool {
        *lock(&self.stop)
    }

    /// Sleeps `every`, or until stopped; returns whether to go on.
    fn wait(&self, every: Duration) -> bool {
        let stop = lock(&self.stop);
        let (stop, _) = self
            .stop_signal
            .wait_timeout_while(stop, every, |stop| !*stop)
            .unwrap_or_else(PoisonError::into_inner);
        !*stop
    }

    fn flusher(&self, every: Duration) {
        while self.wait(every) {
            if self.unsynced.load(Ordering::Acquire) {
                // A failed background sync is retried on the next tick; `flush` and
                // `close` report errors to the caller.
                let _ = self.flush();
            }
        }
    }

    fn compactor(&self, policy: DbCompactionPolicy) {
        let tick = policy
            .interval
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        let mut last = Instant::now();
        while self.wait(tick) {
            let time_due = policy.interval.is_some_and(|every| last.elapsed() >= every);
            let usage = self.map().space_usage();
            let reclaimable = usage.free_bytes + usage.pending_bytes;
            let space_due = policy.space_percent > 0
                && reclaimable >= policy.space_min_bytes.max(1)
                && u128::from(reclaimable) * 100
                    >= u128::from(usage.used_end) * u128::from(policy.space_percent);
            if time_due || space_due {
                // Errors surface on the next explicit call; the thread keeps going.
                let _ = self.compact();
                last = Instant::now();
            }
        }
    }
}

/// Whether `e` says the region has no room (a full disk or reservation).
fn is_out_of_room(e: &Error) -> bool {
    matches!(
        e,
        Error::Region(RegionError::NoSpace { .. } | RegionError::Full { .. })
    )
}

/// The commit log's file of the database at `path`: `<path>-log` (see
/// [`Options::commit_log`]).
pub fn log_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push("-log");
    PathBuf::from(name)
}

/// Address space reserved for the commit log's mapping.
fn log_reservation(policy: &LogPolicy) -> u64 {
    policy
        .max_log_bytes
        .saturating_add(policy.max_record_bytes)
        .saturating_mul(2)
        .max(64 << 20)
}

/// Composes `map` with its commit log as `options` say: replays what the log holds past
/// the map; refuses to open read-only when it holds any. A log left next to a database
/// file that was just `created` belonged to a database that is gone: it is removed.
fn with_log(
    map: Map<FileRegion, Murmur3>,
    path: &Path,
    options: &Options,
    created: bool,
) -> Result<LoggedMap<FileRegion, FileRegion, Murmur3>, DbError> {
    let log_path = log_path(path);
    if created && !options.read_only && log_path.exists() {
        std::fs::remove_file(&log_path)?;
    }
    let policy = options.log_policy;
    // Appends with `pwrite`: no write-protect fault per commit (see docs/PERFORMANCE.md).
    let region_options = FileRegionOptions::default()
        .reservation(log_reservation(&policy))
        .read_only(options.read_only)
        .pwrite(true);
    if options.read_only {
        if log_path.exists() {
            let region = FileRegion::open(&log_path, region_options)?;
            match CommitLog::open(region) {
                Err(Error::NotInitialized) => {}
                Err(e) => return Err(e.into()),
                Ok(log) => {
                    let txid = map.txid();
                    // Refused as a writable open refuses it, not served stale.
                    log.check_fits(map.seed(), txid)?;
                    let mut records = 0;
                    for record in log.records() {
                        if record?.txid > txid {
                            records += 1;
                        }
                    }
                    if records > 0 {
                        return Err(DbError::NeedsRecovery { records });
                    }
                }
            }
        }
        return Ok(LoggedMap::open(map, None, policy)?.0);
    }
    if !options.commit_log {
        if !log_path.exists() {
            return Ok(LoggedMap::open(map, None, policy)?.0);
        }
        // Replay what an earlier open logged, checkpoint, and go on without the log.
        let region = FileRegion::open(&log_path, region_options)?;
        let (db, _) = LoggedMap::open(map, Some(region), policy)?;
        let (map, log) = db.into_parts();
        drop(log);
        std::fs::remove_file(&log_path)?;
        sync_parent_dir(path)?;
        return Ok(LoggedMap::open(map, None, policy)?.0);
    }
    let region = FileRegion::open_or_create(&log_path, region_options)?;
    let (db, recovery) = LoggedMap::open(map, Some(region), policy)?;
    if recovery.created {
        sync_parent_dir(path)?;
    }
    Ok(db)
}

/// Formats `region` as a new, empty map with `options`.
fn format(region: FileRegion, options: &Options) -> Result<Map<FileRegion, Murmur3>, DbError> {
    let seed = match options.seed {
        Some(seed) => seed,
        None => random_seed()?,
    };
    let map_options = MapOptions {
        inline_max: options.inline_max,
        seed,
    };
    Ok(Map::create(region, map_options)?)
}

/// Whether `region` is what a creation that died before its first commit leaves behind:
/// an empty file, or one that is all zeros (sized, but no meta slot written yet). Any
/// other file, a damaged database or not a database at all, is left to `Map::open`.
fn never_formatted(region: &FileRegion) -> Result<bool, DbError> {
    const CHUNK: u64 = 1 << 20;
    let len = region.len();
    let mut at = 0;
    while at < len {
        let n = (len - at).min(CHUNK);
        // `n <= CHUNK`, which fits a usize.
        let bytes = region
            .view(at, n as usize)
            .map_err(|e| DbError::Core(Error::Region(e)))?;
        if bytes.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n;
    }
    Ok(true)
}

/// Syncs the directory holding `path`, so that the file's name survives power loss.
fn sync_parent_dir(path: &Path) -> Result<(), DbError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The least bytes a compaction step copies before it commits and lets writers in.
const COMPACT_STEP_BYTES: u64 = 4 << 20;

/// A 64-bit seed from the operating system's random source.
fn random_seed() -> Result<u64, DbError> {
    let mut bytes = [0u8; 8];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(DbError::Io(e.into())),
        }
    }
    Ok(u64::from_le_bytes(bytes))
}

/// The database's write transaction: reads see its own changes; [`commit`](Self::commit)
/// publishes them with the database's default durability; dropping aborts.
///
/// A transaction that begins on an empty database holds its puts in memory (up to
/// [`Options::pending_max_bytes`]) and builds the trie bottom-up at commit,
/// several times faster than putting each pair into the trie: a first import is one such
/// transaction. Its reads, deletes and counts are answered from memory; past that size
/// it puts what it holds into the trie and goes on as any other transaction.
///
/// One difference shows when the file cannot hold the pairs (a full disk or
/// reservation): the build at commit (or at the move to the trie) fails with the
/// region's error and the transaction commits nothing, where a transaction putting into
/// the trie fails the put that does not fit and may still commit the others. Either way
/// nothing committed before is touched.
pub struct DbWriteTxn<'d> {
    txn: LoggedTxn<'d, FileRegion, FileRegion>,
    pending: Option<PendingPuts>,
    /// Set when building the trie from `pending` failed: the transaction can only be
    /// aborted, and its writes return this.
    failed: Option<Error>,
    shared: &'d Shared,
    _writer: MutexGuard<'d, ()>,
}

impl DbWriteTxn<'_> {
    /// The value of `key` as this transaction sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<&[u8]>, DbError> {
        match &self.pending {
            Some(pending) => Ok(pending.get(key)),
            None => Ok(self.txn.get(key)?),
        }
    }

    /// Sets `key` to `value`; returns `true` when the key was new.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<bool, DbError> {
        if let Some(e) = self.failed {
            return Err(e.into());
        }
        if let Some(pending) = &mut self.pending {
            hamtdb_core::map::check_lengths(key, value)?;
            let max = self.shared.options.pending_max_bytes;
            if pending.has_room(key.len() + value.len(), max) {
                return Ok(pending.put(key, value));
            }
            self.fill_pending()?;
        }
        Ok(self.txn.put(key, value)?)
    }

    /// Removes `key`; returns whether it was there.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, DbError> {
        if let Some(e) = self.failed {
            return Err(e.into());
        }
        match &mut self.pending {
            Some(pending) => Ok(pending.delete(key)),
            None => Ok(self.txn.delete(key)?),
        }
    }

    /// Keys as this transaction sees them.
    pub fn len(&self) -> u64 {
        match &self.pending {
            Some(pending) => pending.len(),
            None => self.txn.len(),
        }
    }

    /// Whether the database is empty as this transaction sees it.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds the trie from the puts held in memory; the transaction goes on as any
    /// other.
    fn fill_pending(&mut self) -> Result<(), DbError> {
        if let Some(pending) = self.pending.take()
            && pending.len() > 0
            && let Err(e) = self.txn.fill(pending.pairs())
        {
            // The transaction can only be aborted now (its writes and its commit return
            // the error); until then its reads answer what was put.
            self.pending = Some(pending);
            self.failed = Some(e);
            return Err(e.into());
        }
        Ok(())
    }

    /// Publishes the transaction with the database's default durability.
    pub fn commit(self) -> Result<(), DbError> {
        let durability = self.shared.options.durability;
        self.commit_with(durability)
    }

    /// Publishes the transaction with `durability`.
    pub fn commit_with(mut self, durability: Durability) -> Result<(), DbError> {
        let shared = self.shared;
        self.fill_pending()?;
        self.txn.commit_with(durability)?;
        if durability != Durability::Immediate {
            shared.unsynced.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Drops the transaction's changes.
    pub fn abort(self) {
        self.txn.abort();
    }
}
