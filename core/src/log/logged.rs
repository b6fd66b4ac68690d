//! [`LoggedMap`]: a map and its commit log, composed. The one place that decides how a
//! commit becomes durable, when to checkpoint and how to recover; the std `Db` and the
//! crash tests both run it.
//!
//! The invariant: every map commit after the log's `base_txid` is a record of the log,
//! with consecutive txids. So recovery is "open the map (some txid `t`), replay the
//! records after `t`, checkpoint". Every commit that is not logged (too large, a
//! bottom-up build, a compaction step) is made durable in the map and followed by a log
//! reset before the log takes another record; so is every commit whose append failed.

use crate::Error;
use crate::buffer::Durability;
use crate::error::Corrupt;
use crate::map::{KeyHasher, Map, Murmur3, WriteTxn};
use crate::region::Region;

use super::{CommitLog, LOG_DATA_START, LogOp, RecordBuf};

/// When a [`LoggedMap`] checkpoints (syncs the map and empties the log) instead of
/// appending, and which transactions it does not log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogPolicy {
    /// Checkpoint when a record would take the log past this many bytes. Default 64 MiB.
    pub max_log_bytes: u64,
    /// Checkpoint when the map holds this many bytes freed by commits since its last
    /// sync: they cannot be reused before the map is synced, so the map grows by them.
    /// Default 32 MiB.
    pub max_pending_bytes: u64,
    /// A transaction whose record would be larger is not logged: it commits with one
    /// sync of the map, as without a log, and the log is reset. Default 1 MiB.
    pub max_record_bytes: u64,
}

impl Default for LogPolicy {
    fn default() -> Self {
        LogPolicy {
            max_log_bytes: 64 << 20,
            max_pending_bytes: 32 << 20,
            max_record_bytes: 1 << 20,
        }
    }
}

/// What [`LoggedMap::open`] found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The txid the map recovered to on its own.
    pub map_txid: u64,
    /// Records replayed on top of it (one commit each).
    pub replayed: u64,
    /// Whether the log was created (it was missing or never finished formatting).
    pub created: bool,
}

struct LogState<L: Region> {
    log: Option<CommitLog<L>>,
    /// A map commit after the log's base is not in the log (an append, a sync or a reset
    /// failed): the next commit or sync checkpoints instead of appending.
    broken: bool,
    /// The last appended record, emptied: the next transaction records into it, so a
    /// small commit allocates no record buffer.
    spare: Option<RecordBuf>,
}

/// Largest record buffer kept for the next transaction (none on the firmware).
const SPARE_RECORD_BYTES: usize = if cfg!(target_arch = "arm") {
    0
} else {
    64 << 10
};

/// A [`Map`] whose commits are made durable through a [`CommitLog`]: a durable commit
/// is the map's commit without a sync, one record appended to the log and one sync of
/// the log.
///
/// Every write must go through [`begin_write`](Self::begin_write),
/// [`compact_step`](Self::compact_step) and [`shrink`](Self::shrink): a commit made on
/// [`map`](Self::map) directly would be missing from the log. Reads go to the map.
/// Without a log (`None` at open) the same calls commit as the map alone does.
///
/// Locks are taken in one order: the log's, then the map's writer.
pub struct LoggedMap<M: Region, L: Region, H: KeyHasher = Murmur3> {
    map: Map<M, H>,
    state: spin::Mutex<LogState<L>>,
    policy: LogPolicy,
}

impl<M: Region, L: Region, H: KeyHasher> LoggedMap<M, L, H> {
    /// Composes `map` (just opened or created) with the log in `log`: creates the log if
    /// the region holds none (all zero or empty), else replays every record past the
    /// map's commit, one commit each, and checkpoints. With `log = None` commits go to the
    /// map alone.
    ///
    /// Errors: the log's header is damaged ([`Error::Corrupted`] with its offset), it
    /// starts after the map's last commit (the map lost commits it had made durable), a
    /// record that verified does not apply, or a region error.
    pub fn open(
        map: Map<M, H>,
        log: Option<L>,
        policy: LogPolicy,
    ) -> Result<(Self, Recovery), Error> {
        let map_txid = map.txid();
        let mut recovery = Recovery {
            map_txid,
            ..Recovery::default()
        };
        let log = match log {
            None => None,
            Some(region) => {
                let log = match CommitLog::read_header(&region) {
                    Err(Error::NotInitialized) => {
                        // The base must be durable before the log names it.
                        force_sync(&map)?;
                        recovery.created = true;
                        CommitLog::create(region, map.seed(), map_txid)?
                    }
                    Err(e) => return Err(e),
                    Ok((slot, header)) => CommitLog::from_header(region, slot, header)?,
                };
                log.check_fits(map.seed(), map_txid)?;
                recovery.replayed = replay(&map, &log)?;
                Some(log)
            }
        };
        let logged = LoggedMap {
            map,
            state: spin::Mutex::new(LogState {
                log,
                broken: false,
                spare: None,
            }),
            policy,
        };
        {
            let mut state = logged.state.lock();
            if let Some(log) = &mut state.log
                && (log.base_txid() != logged.map.txid() || log.end() > LOG_DATA_START)
            {
                // The log must end at the map's commit before it takes a record: replayed
                // commits are durable only once the map syncs, and a commit the map
                // recovered on its own may be missing from the log.
                logged.map.sync()?;
                if recovery.replayed == 0 {
                    force_sync(&logged.map)?;
                }
                log.reset(logged.map.txid())?;
            }
        }
        Ok((logged, recovery))
    }

    /// The map, for reading. Do not write through it (see the type's documentation).
    pub fn map(&self) -> &Map<M, H> {
        &self.map
    }

    /// The checkpoint policy.
    pub fn policy(&self) -> LogPolicy {
        self.policy
    }

    /// Whether commits go through a log.
    pub fn has_log(&self) -> bool {
        self.state.lock().log.is_some()
    }

    /// Bytes in use in the log (0 without a log).
    pub fn log_bytes(&self) -> u64 {
        self.state.lock().log.as_ref().map_or(0, CommitLog::end)
    }

    /// Starts the write transaction, waiting while another is open.
    pub fn begin_write(&self) -> LoggedTxn<'_, M, L, H> {
        let mut state = self.state.lock();
        let record = if state.log.is_some() {
            Some(state.spare.take().unwrap_or_default())
        } else {
            None
        };
        LoggedTxn {
            txn: self.map.begin_write(),
            state,
            owner: self,
            record,
        }
    }

    /// Makes every commit so far durable: one sync of the log (or of the map, without
    /// a log or after a failure).
    pub fn sync(&self) -> Result<(), Error> {
        let mut state = self.state.lock();
        let st = &mut *state;
        match &mut st.log {
            Some(log) if !st.broken => {
                if let Err(e) = log.sync() {
                    st.broken = true;
                    return Err(e);
                }
                Ok(())
            }
            _ => self.checkpoint_locked(st),
        }
    }

    /// Syncs the map and empties the log.
    pub fn checkpoint(&self) -> Result<(), Error> {
        let mut state = self.state.lock();
        self.checkpoint_locked(&mut state)
    }

    /// One compaction step ([`Map::compact_step`]), then a checkpoint if it moved
    /// anything (the step's commit is not logged).
    pub fn compact_step(&self, budget: u64) -> Result<u64, Error> {
        let mut state = self.state.lock();
        let moved = self.unlogged(&mut state, |map| map.compact_step(budget))?;
        if moved > 0 {
            self.checkpoint_locked(&mut state)?;
        }
        Ok(moved)
    }

    /// [`Map::shrink`], then a checkpoint.
    pub fn shrink(&self) -> Result<u64, Error> {
        let mut state = self.state.lock();
        let end = self.unlogged(&mut state, Map::shrink)?;
        self.checkpoint_locked(&mut state)?;
        Ok(end)
    }

    /// Gives the map and the log back.
    pub fn into_parts(self) -> (Map<M, H>, Option<CommitLog<L>>) {
        (self.map, self.state.into_inner().log)
    }

    /// Runs a map operation that commits outside the log; a failure may have left a
    /// commit visible, so the log is marked broken. The map is synced first: space freed
    /// by the logged commits since its last sync is reusable only after one, and a
    /// compaction needs it.
    fn unlogged<T>(
        &self,
        st: &mut LogState<L>,
        op: impl FnOnce(&Map<M, H>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.map.sync()?;
        let before = self.map.txid();
        let result = op(&self.map);
        if self.map.txid() != before {
            st.broken = true;
        }
        result
    }

    fn checkpoint_locked(&self, st: &mut LogState<L>) -> Result<(), Error> {
        let result = self.map.sync().and_then(|()| match &mut st.log {
            Some(log) => {
                let txid = self.map.txid();
                if log.base_txid() != txid || log.end() > LOG_DATA_START {
                    log.reset(txid)?;
                }
                Ok(())
            }
            None => Ok(()),
        });
        st.broken = result.is_err() && st.log.is_some();
        result
    }

    /// After the map committed (without a sync) the transaction `record` logs: append and
    /// sync, or checkpoint instead when the policy says so or the append failed.
    fn logged_commit(
        &self,
        st: &mut LogState<L>,
        record: Option<RecordBuf>,
        durability: Durability,
    ) -> Result<(), Error> {
        let txid = self.map.txid();
        if let (Some(log), Some(mut record), false) = (&mut st.log, record, st.broken) {
            let full = log.end().saturating_add(record.len()) > self.policy.max_log_bytes
                || self.map.space_usage().pending_bytes > self.policy.max_pending_bytes;
            if !full {
                let appended = log.append(txid, &mut record).and_then(|()| {
                    if durability == Durability::Immediate {
                        log.sync()
                    } else {
                        Ok(())
                    }
                });
                if appended.is_ok() {
                    if record.bytes.capacity() <= SPARE_RECORD_BYTES {
                        record.clear();
                        st.spare = Some(record);
                    }
                    return Ok(());
                }
                // The log cannot take it: the map's own sync makes the commit durable.
            }
        }
        self.checkpoint_locked(st)
    }
}

/// One sync over the whole map region, whatever the map believes is durable: a state
/// recovered on open may sit in the operating system's cache only (a killed process),
/// and the log is about to name it as its base.
fn force_sync<M: Region, H: KeyHasher>(map: &Map<M, H>) -> Result<(), Error> {
    let region = map.region();
    Ok(region.sync(0, region.len())?)
}

/// Applies every record past the map's commit, one commit each (not synced).
fn replay<M: Region, L: Region, H: KeyHasher>(
    map: &Map<M, H>,
    log: &CommitLog<L>,
) -> Result<u64, Error> {
    let mut replayed = 0;
    for record in log.records() {
        let record = record?;
        if record.txid <= map.txid() {
            continue;
        }
        let mut txn = map.begin_write();
        for op in record.ops() {
            match op? {
                LogOp::Put(key, value) => {
                    txn.put(key, value)?;
                }
                LogOp::Delete(key) => {
                    txn.delete(key)?;
                }
            }
        }
        txn.commit_with(Durability::Eventual)?;
        if map.txid() != record.txid {
            return Err(Error::corrupted(
                record.offset,
                Corrupt::LoggedCommitDoesNotFollowMaps,
            ));
        }
        replayed += 1;
    }
    Ok(replayed)
}

/// The write transaction of a [`LoggedMap`]: the map's transaction, and the record of
/// its operations. Reads see its own changes; dropping aborts.
pub struct LoggedTxn<'m, M: Region, L: Region, H: KeyHasher = Murmur3> {
    // Declared first: dropped (aborted) before the log's lock is released.
    txn: WriteTxn<'m, M, H>,
    state: spin::MutexGuard<'m, LogState<L>>,
    owner: &'m LoggedMap<M, L, H>,
    /// `None`: not logged (no log, too large, built bottom-up).
    record: Option<RecordBuf>,
}

impl<M: Region, L: Region, H: KeyHasher> LoggedTxn<'_, M, L, H> {
    /// The value of `key` as this transaction sees it.
    pub fn get(&self, key: &[u8]) -> Result<Option<&[u8]>, Error> {
        self.txn.get(key)
    }

    /// Whether `key` is present as this transaction sees it.
    pub fn contains_key(&self, key: &[u8]) -> Result<bool, Error> {
        self.txn.contains_key(key)
    }

    /// Keys as this transaction sees them.
    pub fn len(&self) -> u64 {
        self.txn.len()
    }

    /// Whether the map is empty as this transaction sees it.
    pub fn is_empty(&self) -> bool {
        self.txn.is_empty()
    }

    /// Sets `key` to `value`; returns `true` when the key was new.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<bool, Error> {
        let new = self.txn.put(key, value)?;
        self.note(|r| r.put(key, value));
        Ok(new)
    }

    /// Removes `key`; returns whether it was there.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        let was = self.txn.delete(key)?;
        if was {
            self.note(|r| r.delete(key));
        }
        Ok(was)
    }

    /// [`WriteTxn::fill`]; the transaction is then not logged (its commit syncs the map).
    pub fn fill<'p>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'p [u8], &'p [u8])>,
    ) -> Result<u64, Error> {
        self.record = None;
        self.txn.fill(pairs)
    }

    fn note(&mut self, push: impl FnOnce(&mut RecordBuf) -> Result<(), Error>) {
        let max = self.owner.policy.max_record_bytes;
        if let Some(record) = &mut self.record
            && (push(record).is_err() || record.len() > max)
        {
            self.record = None;
        }
    }

    /// Publishes the transaction durably.
    pub fn commit(self) -> Result<(), Error> {
        self.commit_with(Durability::Immediate)
    }

    /// Publishes the transaction. With a log: the map commits without a sync, then the
    /// record is appended, and synced if `durability` is `Immediate`; a transaction that
    /// is not logged (or whose append fails, or when the policy says so) is made durable
    /// by a checkpoint instead. On error nothing is published, or, if the error came from
    /// a sync, the commit is visible but may not be durable (as [`WriteTxn::commit_with`]).
    pub fn commit_with(self, durability: Durability) -> Result<(), Error> {
        let LoggedTxn {
            txn,
            mut state,
            owner,
            record,
        } = self;
        if state.log.is_none() {
            return txn.commit_with(durability);
        }
        txn.commit_with(Durability::Eventual)?;
        owner.logged_commit(&mut state, record, durability)
    }

    /// Drops the transaction's changes.
    pub fn abort(self) {
        self.txn.abort();
    }
}
