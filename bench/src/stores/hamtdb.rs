//! hamtdb: the thread-safe [`Db`] for every write (durable on commit, as `Db::open`
//! defaults), and a [`ReadTxn`](hamtdb::ReadTxn) snapshot for reads, which borrows
//! values from the map without copying (what `Db::get` does, without a snapshot per
//! lookup).

use std::path::{Path, PathBuf};
use std::time::Instant;

use hamtdb::{Db, FileRegion, FileRegionOptions, Map, MapOptions};

use crate::data::{Data, Key, Sum, Update};
use crate::engine::{Engine, Recorder, dir_bytes};
use crate::{BenchError, Workload};

/// Keys looked up together by `get_many`.
const GET_MANY_BATCH: usize = 16;

/// Seed of the hash and checksums: fixed, so that every run builds the same trie.
const SEED: u64 = 0x5eed_0fbe_4c4d;

pub(crate) struct Hamtdb {
    db: Db,
    dir: PathBuf,
}

impl Hamtdb {
    pub(crate) fn create(dir: &Path) -> Result<Self, BenchError> {
        // `HAMTDB_BENCH_NO_LOG=1`: durable commits sync the map, without the commit log.
        let log = std::env::var_os("HAMTDB_BENCH_NO_LOG").is_none();
        let db = Db::builder()
            .seed(SEED)
            .commit_log(log)
            .open(dir.join("bench.hamt"))?;
        Ok(Hamtdb {
            db,
            dir: dir.to_path_buf(),
        })
    }
}

impl Engine for Hamtdb {
    fn bulk_load(&mut self, data: &Data) -> Result<(), BenchError> {
        let mut txn = self.db.begin_write()?;
        for (k, v) in data.keys.iter().zip(&data.values) {
            txn.put(k, v)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn get_sum(&self, keys: &[Key]) -> Result<Sum, BenchError> {
        let snapshot = self.db.begin_read();
        let mut sum = Sum::default();
        for key in keys {
            if let Some(v) = snapshot.get(key)? {
                sum.add(v);
            }
        }
        Ok(sum)
    }

    fn get_many_sum(&self, keys: &[Key]) -> Option<Result<Sum, BenchError>> {
        let run = || {
            let snapshot = self.db.begin_read();
            let mut sum = Sum::default();
            for chunk in keys.chunks(GET_MANY_BATCH) {
                let mut refs: [&[u8]; GET_MANY_BATCH] = [&[]; GET_MANY_BATCH];
                for (r, k) in refs.iter_mut().zip(chunk) {
                    *r = k;
                }
                for v in snapshot
                    .get_many(&refs[..chunk.len()])?
                    .into_iter()
                    .flatten()
                {
                    sum.add(v);
                }
            }
            Ok(sum)
        };
        Some(run())
    }

    fn write(&mut self, data: &Data, updates: &[Update]) -> Result<(), BenchError> {
        if let [(i, v)] = updates {
            // A single put is `Db::put`: its own durable commit.
            self.db.put(&data.keys[*i as usize], v)?;
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        for (i, v) in updates {
            txn.put(&data.keys[*i as usize], v)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn remove(&mut self, data: &Data, indexes: &[u32]) -> Result<(), BenchError> {
        let mut txn = self.db.begin_write()?;
        for &i in indexes {
            txn.delete(&data.keys[i as usize])?;
        }
        txn.commit()?;
        Ok(())
    }

    fn compact(&mut self) -> Option<Result<(), BenchError>> {
        Some(self.db.compact().map(|_| ()).map_err(Into::into))
    }

    fn iterate(&self) -> Result<Sum, BenchError> {
        let snapshot = self.db.begin_read();
        let mut sum = Sum::default();
        for (_, v) in snapshot.iter()? {
            sum.add(v);
        }
        Ok(sum)
    }

    fn disk_bytes(&self) -> Option<u64> {
        Some(dir_bytes(&self.dir))
    }

    fn used_bytes(&self) -> Option<u64> {
        self.db.stats().ok().map(|s| s.used_end)
    }

    fn get_owned(&self, key: &Key) -> Result<Option<Vec<u8>>, BenchError> {
        Ok(self.db.get_owned(key)?)
    }
}

/// `Map::bulk_load` into a new map on its own file, timed like `bulk_load`.
pub(crate) fn bulk_load_fn(
    dir: &Path,
    data: &Data,
    rec: &mut Recorder<'_>,
) -> Result<(), BenchError> {
    let path = dir.join("bulk.hamt");
    let region = FileRegion::create(&path, FileRegionOptions::default())?;
    let map = Map::create(
        region,
        MapOptions {
            seed: SEED,
            ..MapOptions::default()
        },
    )?;
    let t = Instant::now();
    let count = map.bulk_load(data.keys.iter().zip(&data.values))?;
    rec.timed(
        Workload::BulkLoadFn,
        t.elapsed(),
        count,
        std::fs::metadata(&path).ok().map(|m| m.len()),
    );
    if count != data.keys.len() as u64 {
        return Err(crate::err(format!("bulk_load stored {count} keys")));
    }
    Ok(())
}
