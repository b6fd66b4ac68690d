//! A model of the entry buffer ([`Buffer`]), shared by the model test, the crash test and
//! the `buffer_ops` fuzz target.
//!
//! [`ModelState`] is the logical content of a buffer at one point: live records by id,
//! removed records compaction has not reclaimed yet, and the next id. [`Harness`] runs
//! [`BufferOp`]s on a real buffer and on the model side by side and checks, after every
//! operation, everything a caller can observe: `get` of every id ever handed out (live,
//! [`Error::Removed`] or [`Error::NotFound`]), `header`, `ids()`, `len()` and
//! `stats()`, including an exact space balance whenever no transaction is running.
//!
//! The harness also tracks what power loss may return to: the last commit known durable
//! plus the commits published since (eventual ones, and the one in flight when an
//! operation failed). [`Harness::try_apply`] stops at the first unexpected error, as a
//! crash test under a power cut wants; [`Harness::apply`] panics on it.

use std::collections::BTreeMap;
use std::fmt;

use hamtdb_core::buffer::format::{DATA_START, ENTRY_ALIGN, HEADER_LEN};
use hamtdb_core::{
    Buffer, BufferOptions, BufferStats, CompactionPolicy, Durability, EntryId, Error, RecordHeader,
    RecordStatus, Region, VecRegion,
};

use crate::{CrashMode, FaultRegion};

/// A removed record that compaction has not reclaimed yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemovedRecord {
    /// Its payload length when it was removed (`header` still reports it).
    pub len: u64,
    /// Bytes its entry holds, header included (what the space policy counts).
    pub held: u64,
}

/// The logical content of a buffer at one commit, or within the running transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelState {
    /// Live records by id.
    pub records: BTreeMap<u64, Vec<u8>>,
    /// Removed records not yet reclaimed by compaction.
    pub removed: BTreeMap<u64, RemovedRecord>,
    /// The id the next `add` hands out; every id in `1 .. next_id` that is not live was
    /// removed.
    pub next_id: u64,
}

impl Default for ModelState {
    fn default() -> Self {
        ModelState {
            records: BTreeMap::new(),
            removed: BTreeMap::new(),
            next_id: 1,
        }
    }
}

impl ModelState {
    /// The error `get` must return for `id`, or `None` if the id is live.
    pub fn expected_error(&self, id: u64) -> Option<Error> {
        if self.records.contains_key(&id) {
            None
        } else if id != 0 && id < self.next_id {
            Some(Error::Removed { id: id.into() })
        } else {
            Some(Error::NotFound { id: id.into() })
        }
    }

    /// Payload bytes of live records.
    pub fn live_bytes(&self) -> u64 {
        self.records.values().map(|v| v.len() as u64).sum()
    }

    /// Bytes held by removed records (the space policy's numerator).
    pub fn removed_bytes(&self) -> u64 {
        self.removed.values().map(|r| r.held).sum()
    }

    /// This state after a compaction reclaimed every removed record.
    pub fn compacted(&self) -> ModelState {
        ModelState {
            removed: BTreeMap::new(),
            ..self.clone()
        }
    }
}

/// The payload of an `add` or `update`: `len` bytes derived from `fill`, different for
/// different fills and lengths, so a record that shows another record's bytes is caught.
pub fn payload(len: usize, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| fill ^ (i as u8).wrapping_mul(37) ^ ((i >> 8) as u8).wrapping_mul(101))
        .collect()
}

/// Checks everything a caller can observe of `buffer` against `state`; returns the first
/// difference found.
pub fn check_state<R: Region>(buffer: &Buffer<R>, state: &ModelState) -> Result<(), String> {
    macro_rules! ensure {
        ($cond:expr, $($fmt:tt)*) => {
            if !$cond {
                return Err(format!($($fmt)*));
            }
        };
    }
    let count = state.records.len() as u64;
    ensure!(
        buffer.len() == count,
        "len() is {}, model has {count}",
        buffer.len()
    );
    ensure!(
        buffer.is_empty() == (count == 0),
        "is_empty() is {}",
        buffer.is_empty()
    );
    let ids = buffer.ids().map_err(|e| format!("ids() failed: {e:?}"))?;
    let want: Vec<EntryId> = state
        .records
        .keys()
        .map(|&id| EntryId::from_u64(id))
        .collect();
    ensure!(
        ids == want,
        "ids() is {:?}, model has {:?}",
        raw(&ids),
        raw(&want)
    );
    // Every id ever handed out, plus 0 and the next one (never handed out).
    for id in 0..=state.next_id {
        let eid = EntryId::from_u64(id);
        let got = buffer.get(eid);
        let header = buffer.header(eid);
        match state.records.get(&id) {
            Some(data) => {
                ensure!(
                    got == Ok(&data[..]),
                    "get({id}) is {}, model has {} bytes",
                    show(&got),
                    data.len()
                );
                let reader = buffer
                    .reader(eid)
                    .map_err(|e| format!("reader({id}) failed: {e:?}"))?;
                ensure!(reader.bytes() == &data[..], "reader({id}) differs from get");
                ensure!(
                    matches!(header, Ok(RecordHeader { status: RecordStatus::Live, len, capacity })
                        if len == data.len() as u64 && capacity >= len),
                    "header({id}) is {header:?}, model has a live record of {} bytes",
                    data.len()
                );
            }
            None => {
                let want = state.expected_error(id).expect("not live");
                ensure!(
                    got == Err(want),
                    "get({id}) is {}, model says {want:?}",
                    show(&got)
                );
                match state.removed.get(&id) {
                    Some(removed) => ensure!(
                        matches!(header, Ok(RecordHeader { status: RecordStatus::Removed, len, capacity })
                            if len == removed.len && capacity + HEADER_LEN as u64 == removed.held),
                        "header({id}) is {header:?}, model has {removed:?}"
                    ),
                    None => ensure!(
                        header == Err(want),
                        "header({id}) is {header:?}, model says {want:?}"
                    ),
                }
            }
        }
    }
    let stats = buffer
        .stats()
        .map_err(|e| format!("stats() failed: {e:?}"))?;
    ensure!(
        stats.live_count == count,
        "stats().live_count {} != {count}",
        stats.live_count
    );
    ensure!(
        stats.live_bytes == state.live_bytes(),
        "stats().live_bytes {} != {}",
        stats.live_bytes,
        state.live_bytes()
    );
    ensure!(
        stats.removed_count == state.removed.len() as u64,
        "stats().removed_count {} != {}",
        stats.removed_count,
        state.removed.len()
    );
    ensure!(
        stats.used_end >= DATA_START && stats.used_end <= stats.region_len,
        "used end {} outside {DATA_START} ..= region length {}",
        stats.used_end,
        stats.region_len
    );
    ensure!(
        accounted(&stats) <= stats.region_len - DATA_START,
        "stats account for more bytes than the region has: {stats:?}"
    );
    ensure!(
        stats.region_len == buffer.region().len(),
        "stats().region_len {} != region length {}",
        stats.region_len,
        buffer.region().len()
    );
    Ok(())
}

/// Bytes of the data area `stats` accounts for.
fn accounted(stats: &BufferStats) -> u64 {
    stats.live_bytes
        + stats.slack_bytes
        + stats.overhead_bytes
        + stats.dead_bytes
        + stats.free_bytes
}

/// Checks that `stats` account for every byte of the data area: when no transaction is
/// running, each byte is live payload, slack, a header or id node, dead (removed, or
/// freed and waiting for a durable commit) or free.
pub fn check_exact_accounting<R: Region>(buffer: &Buffer<R>) -> Result<(), String> {
    let stats = buffer
        .stats()
        .map_err(|e| format!("stats() failed: {e:?}"))?;
    if accounted(&stats) != stats.region_len - DATA_START {
        return Err(format!(
            "stats account for {} bytes of a {}-byte data area: {stats:?}",
            accounted(&stats),
            stats.region_len - DATA_START
        ));
    }
    Ok(())
}

fn raw(ids: &[EntryId]) -> Vec<u64> {
    ids.iter().map(|id| id.get()).collect()
}

fn show(got: &Result<&[u8], Error>) -> String {
    match got {
        Ok(bytes) => format!("Ok({} bytes)", bytes.len()),
        Err(e) => format!("Err({e:?})"),
    }
}

/// How an update changes a record's length.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SizeChange {
    /// Longer by this many bytes.
    Grow(u16),
    /// Shorter by this many bytes (down to empty).
    Shrink(u16),
    /// The same length, new bytes.
    Same,
}

impl fmt::Debug for SizeChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeChange::Grow(n) => write!(f, "Grow({n})"),
            SizeChange::Shrink(n) => write!(f, "Shrink({n})"),
            SizeChange::Same => f.write_str("Same"),
        }
    }
}

/// One step of a model test. Ids are picked from the model's current state by `pick`
/// (see [`Harness::target`]), so every generated sequence is meaningful and a shrunk
/// failure prints as a short, readable script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BufferOp {
    /// `add(payload(len, fill))`.
    Add {
        /// Payload length.
        len: u16,
        /// Payload pattern.
        fill: u8,
    },
    /// `count` adds of `len` bytes (to grow the id tree past one level).
    AddMany {
        /// How many records.
        count: u8,
        /// Payload length of each.
        len: u16,
    },
    /// `update` of the record `pick` selects, to a length `change` says.
    Update {
        /// Which id (see [`Harness::target`]).
        pick: u16,
        /// New length relative to the current one.
        change: SizeChange,
        /// Payload pattern.
        fill: u8,
    },
    /// `remove` of the record `pick` selects.
    Remove {
        /// Which id (see [`Harness::target`]).
        pick: u16,
    },
    /// `commit()` (durable).
    Commit,
    /// `commit_with(Durability::Eventual)`.
    CommitEventual,
    /// `sync()`.
    Sync,
    /// `abort()`.
    Abort,
    /// `compact()`.
    Compact,
    /// `compact_step(budget)`.
    CompactStep {
        /// Bytes the step may copy.
        budget: u32,
    },
    /// `Buffer::open(buffer.into_region())`.
    Reopen,
    /// `tick(clock + advance)`.
    Tick {
        /// Seconds the caller's clock moves on.
        advance: u16,
    },
    /// Power loss now (a [`FaultRegion`] crash image chosen by `seed`), then `open`. On a
    /// region that cannot lose power it is a [`Reopen`](Self::Reopen).
    Crash {
        /// Chooses the crash mode and the image.
        seed: u64,
    },
}

/// A region the harness can run on: how to make one, and what power loss leaves.
pub trait ModelRegion: Region + Sized {
    /// An empty region with room for any model test.
    fn fresh() -> Self;

    /// The region as power loss at this instant could leave it (chosen by `seed`), with
    /// the mode used; `None` if this kind of region does not lose power.
    fn crash(&self, seed: u64) -> Option<(Self, CrashMode)>;
}

/// Capacity of the regions the harness makes.
pub const MODEL_REGION_CAPACITY: usize = 4 << 20;

impl ModelRegion for VecRegion {
    fn fresh() -> Self {
        VecRegion::with_capacity(MODEL_REGION_CAPACITY)
    }

    fn crash(&self, _seed: u64) -> Option<(Self, CrashMode)> {
        None
    }
}

impl ModelRegion for FaultRegion {
    fn fresh() -> Self {
        FaultRegion::with_capacity(MODEL_REGION_CAPACITY)
    }

    fn crash(&self, seed: u64) -> Option<(Self, CrashMode)> {
        let mode = crash_mode(seed);
        let image = self.crash_image(mode);
        Some((FaultRegion::from_image(&image, self.capacity()), mode))
    }
}

/// The crash mode `seed` picks: each of the [`CrashMode`]s, with a seed or tear point
/// from the rest of the bits.
pub fn crash_mode(seed: u64) -> CrashMode {
    let rest = seed >> 3;
    match seed % 6 {
        0 => CrashMode::DropAllUnsynced,
        1 => CrashMode::KeepAllUnsynced,
        2 => CrashMode::TornLast {
            keep_bytes: (rest % 300) as usize,
        },
        3 => CrashMode::Random(rest),
        4 => CrashMode::RandomTornSubset(rest),
        _ => CrashMode::RandomBytes(rest),
    }
}

/// Options of a model run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelConfig {
    /// The buffer's extension factor.
    pub extension_factor: f64,
    /// The buffer's compaction policy.
    pub compaction: CompactionPolicy,
    /// Check the whole state after every operation (slower; the crash test turns it off
    /// for its many re-runs).
    pub check_each_op: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            extension_factor: 1.0,
            compaction: CompactionPolicy::default(),
            check_each_op: true,
        }
    }
}

impl ModelConfig {
    /// The buffer options of this configuration, with a fixed seed.
    pub fn options(&self) -> BufferOptions {
        BufferOptions {
            extension_factor: self.extension_factor,
            compaction: self.compaction,
            seed: 0x5eed_0fb0_ffe4,
        }
    }

    /// The extension factor as the image stores it (1/65536 units).
    fn extension(&self) -> u64 {
        (self.extension_factor * 65536.0 + 0.5) as u64
    }

    /// Payload capacity compaction gives a record of `len` bytes.
    pub fn ideal_capacity(&self, len: u64) -> u64 {
        let room = (u128::from(len) * u128::from(self.extension())).div_ceil(65536) as u64;
        (HEADER_LEN as u64 + room).next_multiple_of(ENTRY_ALIGN) - HEADER_LEN as u64
    }
}

/// Counters of what a harness did, for the suites' summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HarnessCounts {
    /// Operations applied.
    pub ops: u64,
    /// Compactions run (by `compact`, a policy or `tick`).
    pub compactions: u64,
    /// Crashes simulated.
    pub crashes: u64,
}

/// A buffer and its model, side by side.
pub struct Harness<R: ModelRegion> {
    buffer: Option<Buffer<R>>,
    config: ModelConfig,
    /// The running transaction's view.
    pending: ModelState,
    /// The last published commit.
    committed: ModelState,
    /// The last commit known durable.
    durable: ModelState,
    /// Commits published since `durable` (eventual ones), oldest first.
    published: Vec<ModelState>,
    /// States an operation that failed may have published (a commit in flight), each
    /// with whether it may even be durable (a compaction commits durably in steps).
    in_flight: Vec<(ModelState, bool)>,
    /// Whether the running transaction changed nothing yet.
    txn_clean: bool,
    clock: u64,
    last_compact_secs: u64,
    /// What the harness did.
    pub counts: HarnessCounts,
}

impl<R: ModelRegion> Harness<R> {
    /// A new buffer on [`ModelRegion::fresh`] with `config`'s options.
    pub fn new(config: ModelConfig) -> Self {
        Self::on(R::fresh(), config)
    }

    /// A new buffer on `region`.
    pub fn on(region: R, config: ModelConfig) -> Self {
        let buffer = Buffer::create(region, config.options()).expect("create");
        Self::with_buffer(buffer, config)
    }

    /// A harness around a freshly created `buffer` (nothing added yet).
    pub fn with_buffer(buffer: Buffer<R>, config: ModelConfig) -> Self {
        Harness {
            buffer: Some(buffer),
            config,
            pending: ModelState::default(),
            committed: ModelState::default(),
            durable: ModelState::default(),
            published: Vec::new(),
            in_flight: Vec::new(),
            txn_clean: true,
            clock: 0,
            last_compact_secs: 0,
            counts: HarnessCounts::default(),
        }
    }

    /// A harness around `buffer`, opened on an image that holds `state` (a crash test
    /// resumes from what recovery found).
    pub fn resume(buffer: Buffer<R>, state: ModelState, config: ModelConfig) -> Self {
        let mut harness = Self::with_buffer(buffer, config);
        harness.pending = state.clone();
        harness.committed = state.clone();
        harness.durable = state;
        harness
    }

    /// Gives the buffer back.
    pub fn into_buffer(mut self) -> Buffer<R> {
        self.buffer.take().expect("buffer present")
    }

    /// The buffer under test.
    pub fn buffer(&self) -> &Buffer<R> {
        self.buffer.as_ref().expect("buffer present")
    }

    fn buffer_mut(&mut self) -> &mut Buffer<R> {
        self.buffer.as_mut().expect("buffer present")
    }

    /// The model of the running transaction.
    pub fn pending(&self) -> &ModelState {
        &self.pending
    }

    /// The model of the last published commit.
    pub fn committed(&self) -> &ModelState {
        &self.committed
    }

    /// The states an operation that failed may have published.
    pub fn in_flight(&self) -> impl Iterator<Item = &ModelState> {
        self.in_flight.iter().map(|(state, _)| state)
    }

    /// The model of the last commit known durable.
    pub fn durable(&self) -> &ModelState {
        &self.durable
    }

    /// Every state a power cut now may leave: the durable one first, then the commits
    /// published since, then those an operation that failed may have published.
    pub fn crash_candidates(&self) -> Vec<&ModelState> {
        core::iter::once(&self.durable)
            .chain(&self.published)
            .chain(self.in_flight.iter().map(|(state, _)| state))
            .collect()
    }

    /// The id `pick` selects: usually a live record (three picks in four when there is
    /// one), else any id up to the next one, so that removed and never-issued ids are
    /// exercised too.
    pub fn target(&self, pick: u16) -> u64 {
        let live = &self.pending.records;
        let pick = u64::from(pick);
        if !live.is_empty() && pick % 4 != 0 {
            let i = (pick / 4) as usize % live.len();
            *live.keys().nth(i).expect("in range")
        } else {
            (pick / 4) % (self.pending.next_id + 1)
        }
    }

    fn space_policy_due(&self, state: &ModelState) -> bool {
        let policy = self.config.compaction;
        let removed = state.removed_bytes();
        if policy.space_percent == 0 || removed < policy.space_min_bytes.max(1) {
            return false;
        }
        let total = removed + state.live_bytes();
        u128::from(removed) * 100 >= u128::from(total) * u128::from(policy.space_percent.min(100))
    }

    /// Applies `op` to buffer and model and checks them; panics on any difference or
    /// unexpected error.
    pub fn apply(&mut self, op: &BufferOp) {
        if let Err(e) = self.try_apply(op) {
            panic!("{op:?} failed: {e:?}");
        }
    }

    /// Applies `op`; returns the buffer's error if it failed where the model expected
    /// success (a region error under a power cut). The states the operation may have
    /// published before failing are then in [`crash_candidates`](Self::crash_candidates).
    /// Panics when the buffer succeeds where it must fail, returns the wrong error or data,
    /// or disagrees with the model afterwards.
    pub fn try_apply(&mut self, op: &BufferOp) -> Result<(), Error> {
        self.counts.ops += 1;
        let mut ends_txn = false;
        match *op {
            BufferOp::Add { len, fill } => self.add(&payload(usize::from(len), fill))?,
            BufferOp::AddMany { count, len } => {
                for i in 0..count {
                    self.add(&payload(usize::from(len), i))?;
                }
            }
            BufferOp::Update { pick, change, fill } => {
                let id = self.target(pick);
                let old = self.pending.records.get(&id).map_or(0, Vec::len);
                let len = match change {
                    SizeChange::Grow(n) => old + usize::from(n),
                    SizeChange::Shrink(n) => old.saturating_sub(usize::from(n)),
                    SizeChange::Same => old,
                };
                let data = payload(len, fill);
                let result = self.buffer_mut().update(EntryId::from_u64(id), &data);
                match self.pending.expected_error(id) {
                    None => {
                        result?;
                        self.pending.records.insert(id, data);
                        self.txn_clean = false;
                    }
                    Some(want) => assert_eq!(result, Err(want), "update({id})"),
                }
            }
            BufferOp::Remove { pick } => {
                let id = self.target(pick);
                let eid = EntryId::from_u64(id);
                match self.pending.expected_error(id) {
                    None => {
                        let header = self.buffer().header(eid)?;
                        self.buffer_mut().remove(eid)?;
                        let data = self.pending.records.remove(&id).expect("live");
                        self.pending.removed.insert(
                            id,
                            RemovedRecord {
                                len: data.len() as u64,
                                held: header.capacity + HEADER_LEN as u64,
                            },
                        );
                        self.txn_clean = false;
                    }
                    Some(want) => {
                        assert_eq!(self.buffer_mut().remove(eid), Err(want), "remove({id})")
                    }
                }
            }
            BufferOp::Commit => {
                self.commit(Durability::Immediate)?;
                ends_txn = true;
            }
            BufferOp::CommitEventual => {
                self.commit(Durability::Eventual)?;
                ends_txn = true;
            }
            BufferOp::Sync => {
                self.buffer_mut().sync()?;
                self.made_durable();
            }
            BufferOp::Abort => {
                self.buffer_mut().abort();
                self.pending = self.committed.clone();
                ends_txn = true;
            }
            BufferOp::Compact => {
                let reclaimed = self.pending.removed.len() as u64;
                self.in_flight = self.compaction_in_flight();
                let report = self.buffer_mut().compact()?;
                assert_eq!(report.reclaimed_records, reclaimed, "{report:?}");
                assert!(
                    report.used_end_after <= report.used_end_before,
                    "{report:?}"
                );
                self.compacted();
                ends_txn = true;
            }
            BufferOp::CompactStep { budget } => {
                self.in_flight = vec![(self.pending.clone(), false)];
                let moved = self.buffer_mut().compact_step(u64::from(budget))?;
                self.in_flight.clear();
                if moved == 0 {
                    // Nothing published: the transaction must have had no changes.
                    assert_eq!(self.pending, self.committed, "compact_step returned 0");
                } else {
                    self.committed = self.pending.clone();
                    self.made_durable();
                }
                ends_txn = true;
            }
            BufferOp::Reopen => {
                self.reopen()?;
                ends_txn = true;
            }
            BufferOp::Tick { advance } => {
                self.clock += u64::from(advance);
                let interval = u64::from(self.config.compaction.interval_secs);
                let due = (interval != 0
                    && self.clock.saturating_sub(self.last_compact_secs) >= interval)
                    || self.space_policy_due(&self.pending);
                if due {
                    self.in_flight = self.compaction_in_flight();
                }
                let clock = self.clock;
                let ticked = self.buffer_mut().tick(clock)?;
                assert_eq!(
                    ticked, due,
                    "tick({clock}) after last compaction at {}",
                    self.last_compact_secs
                );
                if due {
                    self.compacted();
                    self.last_compact_secs = clock;
                    ends_txn = true;
                }
            }
            BufferOp::Crash { seed } => {
                self.crash(seed);
                ends_txn = true;
            }
        }
        if ends_txn {
            self.txn_clean = true;
        }
        if self.config.check_each_op {
            self.check()
        }
        Ok(())
    }

    fn add(&mut self, data: &[u8]) -> Result<(), Error> {
        let id = self.buffer_mut().add(data)?;
        assert_eq!(
            id.get(),
            self.pending.next_id,
            "add handed out an unexpected id"
        );
        self.pending.records.insert(id.get(), data.to_vec());
        self.pending.next_id += 1;
        self.txn_clean = false;
        Ok(())
    }

    fn commit(&mut self, durability: Durability) -> Result<(), Error> {
        let due = self.space_policy_due(&self.pending);
        self.in_flight = if due {
            self.compaction_in_flight()
        } else {
            vec![(self.pending.clone(), false)]
        };
        self.buffer_mut().commit_with(durability)?;
        if due {
            self.compacted();
        } else {
            self.in_flight.clear();
            self.committed = self.pending.clone();
            match durability {
                Durability::Immediate => self.made_durable(),
                _ => self.published.push(self.committed.clone()),
            }
        }
        Ok(())
    }

    /// What a compaction cut short may have published: the running transaction, then
    /// the same without removed records; each step is a durable commit.
    fn compaction_in_flight(&self) -> Vec<(ModelState, bool)> {
        vec![
            (self.pending.clone(), true),
            (self.pending.compacted(), true),
        ]
    }

    /// A compaction (which commits the running transaction durably) finished.
    fn compacted(&mut self) {
        self.counts.compactions += 1;
        self.in_flight.clear();
        self.pending = self.pending.compacted();
        self.committed = self.pending.clone();
        self.made_durable();
        if self.config.check_each_op {
            self.check_compacted();
        }
    }

    /// The last commit became durable.
    fn made_durable(&mut self) {
        self.durable = self.committed.clone();
        self.published.clear();
    }

    fn reopen(&mut self) -> Result<(), Error> {
        let region = self.buffer.take().expect("buffer present").into_region();
        self.buffer = Some(Buffer::open(region)?);
        self.pending = self.committed.clone();
        // Opening makes what it found durable.
        self.made_durable();
        Ok(())
    }

    /// Simulates power loss now and reopens what it left.
    fn crash(&mut self, seed: u64) {
        let Some((region, mode)) = self.buffer().region().crash(seed) else {
            self.reopen().expect("reopen");
            return;
        };
        self.counts.crashes += 1;
        let buffer = match Buffer::open(region) {
            Ok(b) => b,
            Err(e) => panic!("open after a crash ({mode:?}) failed: {e:?}"),
        };
        let state = match_crash_candidates(&buffer, &self.crash_candidates_for(mode))
            .unwrap_or_else(|why| panic!("after a crash ({mode:?}): {why}"))
            .clone();
        self.buffer = Some(buffer);
        self.pending = state.clone();
        self.committed = state;
        self.in_flight.clear();
        self.made_durable();
    }

    /// The states a crash image of `mode` may hold: when every unsynced write is
    /// dropped, only the durable one (or one a compaction cut short made durable).
    pub fn crash_candidates_for(&self, mode: CrashMode) -> Vec<&ModelState> {
        match mode {
            CrashMode::DropAllUnsynced => core::iter::once(&self.durable)
                .chain(
                    self.in_flight
                        .iter()
                        .filter(|(_, durable)| *durable)
                        .map(|(state, _)| state),
                )
                .collect(),
            _ => self.crash_candidates(),
        }
    }

    /// Checks the buffer against the running transaction's model (and, between
    /// transactions, the exact space balance); panics on a difference.
    pub fn check(&self) {
        if let Err(why) = check_state(self.buffer(), &self.pending) {
            panic!("buffer differs from the model: {why}");
        }
        if self.txn_clean
            && let Err(why) = check_exact_accounting(self.buffer())
        {
            panic!("{why}");
        }
    }

    /// Checks what a finished compaction promises: nothing removed or dead left, and the
    /// region cut at the used end.
    fn check_compacted(&self) {
        let stats = self.buffer().stats().expect("stats");
        assert_eq!(stats.removed_count, 0, "{stats:?}");
        assert_eq!(stats.dead_bytes, 0, "{stats:?}");
        assert_eq!(stats.used_end, stats.region_len, "{stats:?}");
    }
}

/// Returns the first of `candidates` that `buffer` matches exactly, or a description of
/// how it differs from each.
pub fn match_crash_candidates<'a, R: Region>(
    buffer: &Buffer<R>,
    candidates: &[&'a ModelState],
) -> Result<&'a ModelState, String> {
    let mut why = Vec::new();
    for (i, candidate) in candidates.iter().enumerate() {
        match check_state(buffer, candidate) {
            Ok(()) => {
                check_exact_accounting(buffer)?;
                return Ok(candidate);
            }
            Err(e) => why.push(format!("candidate {i}: {e}")),
        }
    }
    Err(format!(
        "the image matches none of the {} acceptable states: {}",
        candidates.len(),
        why.join("; ")
    ))
}
