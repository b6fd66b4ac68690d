//! hamtdb side by side with the stores users would pick instead: LMDB (through heed),
//! redb, fjall, a hashbrown `HashMap` as the in-memory ceiling, and a raw append plus
//! `fdatasync` loop as the durability floor, all in one process on the same data.
//!
//! [`run`] executes every workload of issue 6 on every store and returns one [`Record`]
//! per (store, workload); [`report`] turns them into the markdown table, the JSON file
//! and the SVG chart. The binary (`cargo run --release -p hamtdb-bench`) wires them to
//! the command line.

use std::path::PathBuf;

pub mod data;
mod engine;
pub mod report;
mod stores;

pub use data::{Data, Sizes};

/// Every error of the harness, boxed: the peers each have their own types.
pub type BenchError = Box<dyn core::error::Error + Send + Sync>;

pub(crate) fn err(message: impl Into<String>) -> BenchError {
    message.into().into()
}

/// The stores, in the order the table lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Store {
    /// hamtdb: the thread-safe `Db` on a memory-mapped file.
    Hamtdb,
    /// LMDB through heed.
    Lmdb,
    /// redb.
    Redb,
    /// fjall, an LSM tree.
    Fjall,
    /// hashbrown's `HashMap`, in memory: the ceiling.
    Hashbrown,
    /// Appending each put to a file and `fdatasync`: the durability floor.
    Fdatasync,
}

impl Store {
    /// Every store.
    pub const ALL: [Store; 6] = [
        Store::Hamtdb,
        Store::Lmdb,
        Store::Redb,
        Store::Fjall,
        Store::Hashbrown,
        Store::Fdatasync,
    ];

    /// The name in the JSON records.
    pub fn name(self) -> &'static str {
        match self {
            Store::Hamtdb => "hamtdb",
            Store::Lmdb => "lmdb",
            Store::Redb => "redb",
            Store::Fjall => "fjall",
            Store::Hashbrown => "hashbrown",
            Store::Fdatasync => "fdatasync",
        }
    }

    /// The store called `name`.
    pub fn from_name(name: &str) -> Option<Store> {
        Store::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The workloads, in the issue's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    /// Every key put in one transaction.
    BulkLoad,
    /// Every key looked up once, in random order, one thread.
    GetRandom,
    /// The same with two threads, each taking half.
    GetRandom2t,
    /// The same through `get_many` in batches of 16 (hamtdb only).
    GetMany,
    /// As many absent keys looked up.
    GetAbsent,
    /// Durable commits of one put each.
    CommitSingleDurable,
    /// Durable commits of 1,000 puts each.
    CommitBatchDurable,
    /// 100,000 keys given new values of the same size in one transaction; `bytes` is
    /// what the store grew by per update (hamtdb: its used end; the others: their
    /// files).
    Overwrite,
    /// Half of the keys removed in one transaction.
    RemoveHalf,
    /// Bytes on disk after the load.
    SizeAfterLoad,
    /// Bytes on disk after the removal.
    SizeAfterRemove,
    /// Compaction.
    Compact,
    /// Bytes on disk after compaction.
    SizeAfterCompact,
    /// Every pair visited.
    Iterate,
    /// hamtdb's `Map::bulk_load` (sorted, bottom-up) into an empty map, for comparison
    /// with the transaction of puts that `bulk_load` reports. Not one of the issue's
    /// names; listed last.
    BulkLoadFn,
    /// Bytes the data occupies after the load, below the file's preallocated growth
    /// (hamtdb's used end). Not one of the issue's names; listed last.
    UsedAfterLoad,
}

impl Workload {
    /// The issue's workloads, in its order.
    pub const ALL: [Workload; 14] = [
        Workload::BulkLoad,
        Workload::GetRandom,
        Workload::GetRandom2t,
        Workload::GetMany,
        Workload::GetAbsent,
        Workload::CommitSingleDurable,
        Workload::CommitBatchDurable,
        Workload::Overwrite,
        Workload::RemoveHalf,
        Workload::SizeAfterLoad,
        Workload::SizeAfterRemove,
        Workload::Compact,
        Workload::SizeAfterCompact,
        Workload::Iterate,
    ];

    /// The name in the JSON records.
    pub fn name(self) -> &'static str {
        match self {
            Workload::BulkLoad => "bulk_load",
            Workload::GetRandom => "get_random",
            Workload::GetRandom2t => "get_random_2t",
            Workload::GetMany => "get_many",
            Workload::GetAbsent => "get_absent",
            Workload::CommitSingleDurable => "commit_single_durable",
            Workload::CommitBatchDurable => "commit_batch_durable",
            Workload::Overwrite => "overwrite",
            Workload::RemoveHalf => "remove_half",
            Workload::SizeAfterLoad => "size_after_load",
            Workload::SizeAfterRemove => "size_after_remove",
            Workload::Compact => "compact",
            Workload::SizeAfterCompact => "size_after_compact",
            Workload::Iterate => "iterate",
            Workload::BulkLoadFn => "bulk_load_fn",
            Workload::UsedAfterLoad => "used_after_load",
        }
    }

    /// Whether the figure is a size (smaller is better) rather than a rate.
    pub fn is_size(self) -> bool {
        matches!(
            self,
            Workload::SizeAfterLoad
                | Workload::SizeAfterRemove
                | Workload::SizeAfterCompact
                | Workload::UsedAfterLoad
        )
    }
}

/// One figure: a store's result on one workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The store.
    pub store: &'static str,
    /// The workload.
    pub workload: Workload,
    /// Wall-clock milliseconds (`None` for sizes).
    pub ms: Option<f64>,
    /// Operations per second (`None` for sizes).
    pub ops_per_s: Option<f64>,
    /// Bytes on disk for sizes; bytes appended per update for `overwrite`.
    pub bytes: Option<u64>,
}

impl Record {
    fn log_line(&self) -> String {
        let mut line = format!("{:>9} {:<22}", self.store, self.workload.name());
        if let Some(ms) = self.ms {
            line += &format!(" {ms:>10.1} ms");
        }
        if let Some(ops) = self.ops_per_s {
            line += &format!(" {ops:>14.0} ops/s");
        }
        if let Some(bytes) = self.bytes {
            line += &format!(" {bytes:>12} B");
        }
        line
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Counts of each workload.
    pub sizes: Sizes,
    /// Seed of the keys, values and orders.
    pub seed: u64,
    /// The stores to run.
    pub stores: Vec<Store>,
    /// Where the stores' data directories go (a temporary directory inside it, removed
    /// afterwards); `None`: the system's temporary directory.
    pub dir: Option<PathBuf>,
    /// Read every key back after the last workload and compare (slow; for tests).
    pub verify: bool,
}

impl Config {
    /// The issue's workloads over `keys` keys, every store, fixed seed.
    pub fn issue(keys: usize) -> Self {
        Config {
            sizes: Sizes::issue(keys),
            seed: 0x6861_6d74_6462_2101,
            stores: Store::ALL.to_vec(),
            dir: None,
            verify: false,
        }
    }
}

/// Runs every workload on every store of `config`, one store after the other, each in a
/// data directory of its own, and returns the records in the issue's order (stores in
/// [`Store::ALL`] order within a workload). `log` hears each figure as it is measured.
pub fn run(config: &Config, log: &mut dyn FnMut(&str)) -> Result<Vec<Record>, BenchError> {
    let data = Data::generate(config.sizes, config.seed);
    let root = match &config.dir {
        Some(dir) => tempfile::Builder::new()
            .prefix("hamtdb-bench-")
            .tempdir_in(dir)?,
        None => tempfile::Builder::new().prefix("hamtdb-bench-").tempdir()?,
    };
    let mut records = Vec::new();
    for &store in &config.stores {
        let dir = root.path().join(store.name());
        std::fs::create_dir_all(&dir)?;
        log(&format!("-- {} in {}", store.name(), dir.display()));
        let mut rec = engine::Recorder {
            store: store.name(),
            out: &mut records,
            log: &mut *log,
        };
        stores::run(store, &dir, &data, config.verify, &mut rec)
            .map_err(|e| err(format!("{}: {e}", store.name())))?;
        // Free the disk space before the next store.
        std::fs::remove_dir_all(&dir)?;
    }
    root.close()?;
    let order = |r: &Record| {
        let store = Store::from_name(r.store).unwrap_or(Store::Fdatasync);
        (r.workload, store)
    };
    records.sort_by_key(order);
    Ok(records)
}
