//! The [`Engine`] trait each store implements, and the driver that runs every workload
//! on one of them in the order and times it.

use core::time::Duration;
use std::path::Path;
use std::time::Instant;

use crate::data::{Data, Key, Sum, Update};
use crate::{BenchError, Record, Workload, err};

/// One store under test. Writes are durable on commit where the store is durable at all.
pub(crate) trait Engine: Sync {
    /// Loads every key of `data` in one transaction.
    fn bulk_load(&mut self, data: &Data) -> Result<(), BenchError>;
    /// Looks up each of `keys` and sums the values found.
    fn get_sum(&self, keys: &[Key]) -> Result<Sum, BenchError>;
    /// As [`get_sum`](Self::get_sum), through a batched lookup; `None` when the store
    /// has none.
    fn get_many_sum(&self, _keys: &[Key]) -> Option<Result<Sum, BenchError>> {
        None
    }
    /// Whether commits survive a crash (false for the in-memory map).
    fn durable(&self) -> bool {
        true
    }
    /// Applies `updates` to the keys of `data` in one transaction, committed durably.
    fn write(&mut self, data: &Data, updates: &[Update]) -> Result<(), BenchError>;
    /// Removes the keys of `data` at `indexes` in one transaction, committed durably.
    fn remove(&mut self, data: &Data, indexes: &[u32]) -> Result<(), BenchError>;
    /// Compacts; `None` when the store cannot.
    fn compact(&mut self) -> Option<Result<(), BenchError>>;
    /// Visits every pair and sums the values.
    fn iterate(&self) -> Result<Sum, BenchError>;
    /// Bytes the store takes on disk; `None` for the in-memory map.
    fn disk_bytes(&self) -> Option<u64>;
    /// Bytes the store's data actually occupies, where it can tell (hamtdb: the used end
    /// of its region, below the file's preallocated growth); else [`disk_bytes`](Self::disk_bytes).
    fn used_bytes(&self) -> Option<u64> {
        self.disk_bytes()
    }
    /// After compaction only, if it differs from `disk_bytes` (LMDB compacts into a copy).
    fn compacted_bytes(&self) -> Option<u64> {
        self.disk_bytes()
    }
    /// Lookup of one key, copied out (for verification only).
    fn get_owned(&self, key: &Key) -> Result<Option<Vec<u8>>, BenchError>;
}

/// Sum of the lengths of the files under `dir`.
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => total += dir_bytes(&entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Collects records for one store.
pub(crate) struct Recorder<'a> {
    pub(crate) store: &'static str,
    pub(crate) out: &'a mut Vec<Record>,
    pub(crate) log: &'a mut dyn FnMut(&str),
}

impl Recorder<'_> {
    pub(crate) fn timed(
        &mut self,
        workload: Workload,
        took: Duration,
        ops: u64,
        bytes: Option<u64>,
    ) {
        let ms = took.as_secs_f64() * 1e3;
        let ops_per_s = (ms > 0.0).then(|| ops as f64 / (ms / 1e3));
        self.push(Record {
            store: self.store,
            workload,
            ms: Some(ms),
            ops_per_s,
            bytes,
        });
    }

    pub(crate) fn size(&mut self, workload: Workload, bytes: Option<u64>) {
        if let Some(bytes) = bytes {
            self.push(Record {
                store: self.store,
                workload,
                ms: None,
                ops_per_s: None,
                bytes: Some(bytes),
            });
        }
    }

    fn push(&mut self, record: Record) {
        (self.log)(&record.log_line());
        self.out.push(record);
    }
}

fn expect(what: &str, got: Sum, want: Sum) -> Result<(), BenchError> {
    if got != want {
        return Err(err(format!("{what}: read {got:?}, expected {want:?}")));
    }
    Ok(())
}

/// Runs every workload on `engine` (already created, empty) and records it.
pub(crate) fn drive<E: Engine>(
    engine: &mut E,
    data: &Data,
    verify: bool,
    rec: &mut Recorder<'_>,
) -> Result<(), BenchError> {
    let n = data.keys.len() as u64;
    let loaded = data.loaded_sum();

    let t = Instant::now();
    engine.bulk_load(data)?;
    rec.timed(Workload::BulkLoad, t.elapsed(), n, None);
    let size_after_load = engine.disk_bytes();
    let used_after_load = engine.used_bytes();

    let t = Instant::now();
    let sum = engine.get_sum(&data.lookups)?;
    rec.timed(Workload::GetRandom, t.elapsed(), n, None);
    expect("get_random", sum, loaded)?;

    let (a, b) = data.lookups.split_at(data.lookups.len() / 2);
    let t = Instant::now();
    let sum = std::thread::scope(|s| {
        let shared: &E = engine;
        let other = s.spawn(move || shared.get_sum(b));
        let mine = shared.get_sum(a);
        let other = other
            .join()
            .map_err(|_| err("get_random_2t: a reader thread panicked"))?;
        Ok::<_, BenchError>(mine?.merge(other?))
    })?;
    rec.timed(Workload::GetRandom2t, t.elapsed(), n, None);
    expect("get_random_2t", sum, loaded)?;

    let t = Instant::now();
    if let Some(sum) = engine.get_many_sum(&data.lookups) {
        rec.timed(Workload::GetMany, t.elapsed(), n, None);
        expect("get_many", sum?, loaded)?;
    }

    let t = Instant::now();
    let sum = engine.get_sum(&data.absent)?;
    rec.timed(Workload::GetAbsent, t.elapsed(), n, None);
    expect("get_absent", sum, Sum::default())?;

    // Iteration before any change, so that it visits exactly the loaded pairs.
    let t = Instant::now();
    let sum = engine.iterate()?;
    rec.timed(Workload::Iterate, t.elapsed(), n, None);
    expect("iterate", sum, loaded)?;

    if engine.durable() {
        let t = Instant::now();
        for update in &data.singles {
            engine.write(data, core::slice::from_ref(update))?;
        }
        rec.timed(
            Workload::CommitSingleDurable,
            t.elapsed(),
            data.singles.len() as u64,
            None,
        );

        let t = Instant::now();
        for batch in &data.batches {
            engine.write(data, batch)?;
        }
        let puts: usize = data.batches.iter().map(Vec::len).sum();
        rec.timed(Workload::CommitBatchDurable, t.elapsed(), puts as u64, None);
    } else {
        for update in data.singles.iter().chain(data.batches.iter().flatten()) {
            engine.write(data, core::slice::from_ref(update))?;
        }
    }

    let before = engine.used_bytes();
    let t = Instant::now();
    engine.write(data, &data.overwrites)?;
    let took = t.elapsed();
    let count = data.overwrites.len() as u64;
    let after = engine.used_bytes();
    let per_update = match (before, after) {
        (Some(b), Some(a)) if count > 0 => Some(a.saturating_sub(b) / count),
        _ => None,
    };
    rec.timed(Workload::Overwrite, took, count, per_update);

    let t = Instant::now();
    engine.remove(data, &data.removed)?;
    rec.timed(
        Workload::RemoveHalf,
        t.elapsed(),
        data.removed.len() as u64,
        None,
    );

    rec.size(Workload::SizeAfterLoad, size_after_load);
    if used_after_load != size_after_load {
        rec.size(Workload::UsedAfterLoad, used_after_load);
    }
    rec.size(Workload::SizeAfterRemove, engine.disk_bytes());

    let t = Instant::now();
    if let Some(done) = engine.compact() {
        done?;
        rec.timed(Workload::Compact, t.elapsed(), 1, None);
        rec.size(Workload::SizeAfterCompact, engine.compacted_bytes());
    }

    if verify {
        verify_final(engine, data)?;
    }
    Ok(())
}

/// Reads every key back and compares it with what the workloads left.
fn verify_final<E: Engine>(engine: &E, data: &Data) -> Result<(), BenchError> {
    for (i, want) in data.final_values().into_iter().enumerate() {
        let got = engine.get_owned(&data.keys[i])?;
        if got.as_deref() != want.map(|v| &v[..]) {
            return Err(err(format!("key {i}: read {got:?}, expected {want:?}")));
        }
    }
    for key in data.absent.iter().take(100) {
        if engine.get_owned(key)?.is_some() {
            return Err(err("an absent key was found"));
        }
    }
    Ok(())
}
