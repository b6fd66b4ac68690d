//! LMDB through heed, with its defaults: synced on commit (`fdatasync` of the data
//! file and the meta page), memory-mapped reads that borrow the value without copying.
//! LMDB has no compaction in place; `mdb_copy -c` (heed's `copy_to_path` with
//! compaction) writes a compacted copy, and that copy's size is what it would shrink to.

use std::path::{Path, PathBuf};

use heed::types::Bytes;
use heed::{CommitOrAbort, CompactionOption, Database, Env, EnvOpenOptions};

use crate::BenchError;
use crate::data::{Data, Key, Sum, Update};
use crate::engine::{Engine, dir_bytes};

/// Address space LMDB maps: the most the file can grow to.
const MAP_SIZE: usize = 64 << 30;

pub(crate) struct Lmdb {
    env: Env,
    db: Database<'static, Bytes, Bytes>,
    dir: PathBuf,
    copy: PathBuf,
}

impl Lmdb {
    pub(crate) fn create(dir: &Path) -> Result<Self, BenchError> {
        let env_dir = dir.join("env");
        std::fs::create_dir_all(&env_dir)?;
        let mut options = EnvOpenOptions::new();
        options.map_size(MAP_SIZE);
        // SAFETY: heed requires that nothing else opens this environment in a way that
        // breaks LMDB's locking (e.g. opening it twice in one process): the directory
        // was just created inside this run's private temporary directory and is opened
        // exactly once.
        let env = unsafe { options.open(&env_dir)? };
        let wtxn = env.write_txn()?;
        let db = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                opener
                    .create_database::<Bytes, Bytes>(wtxn, None)
                    .map(CommitOrAbort::<_, ()>::Commit)
            })?
            .unwrap_commit();
        Ok(Lmdb {
            env,
            db,
            dir: env_dir,
            copy: dir.join("compacted.mdb"),
        })
    }
}

impl Engine for Lmdb {
    fn bulk_load(&mut self, data: &Data) -> Result<(), BenchError> {
        let mut wtxn = self.env.write_txn()?;
        for (k, v) in data.keys.iter().zip(&data.values) {
            self.db.put(&mut wtxn, k, v)?;
        }
        wtxn.commit()?;
        Ok(())
    }

    fn get_sum(&self, keys: &[Key]) -> Result<Sum, BenchError> {
        let rtxn = self.env.read_txn()?;
        let mut sum = Sum::default();
        for key in keys {
            if let Some(v) = self.db.get(&rtxn, key)? {
                sum.add(v);
            }
        }
        Ok(sum)
    }

    fn write(&mut self, data: &Data, updates: &[Update]) -> Result<(), BenchError> {
        let mut wtxn = self.env.write_txn()?;
        for (i, v) in updates {
            self.db.put(&mut wtxn, &data.keys[*i as usize], v)?;
        }
        wtxn.commit()?;
        Ok(())
    }

    fn remove(&mut self, data: &Data, indexes: &[u32]) -> Result<(), BenchError> {
        let mut wtxn = self.env.write_txn()?;
        for &i in indexes {
            self.db.delete(&mut wtxn, &data.keys[i as usize])?;
        }
        wtxn.commit()?;
        Ok(())
    }

    fn compact(&mut self) -> Option<Result<(), BenchError>> {
        let run = || {
            let file = self
                .env
                .copy_to_path(&self.copy, CompactionOption::Enabled)?;
            file.sync_all()?;
            Ok(())
        };
        Some(run())
    }

    fn iterate(&self) -> Result<Sum, BenchError> {
        let rtxn = self.env.read_txn()?;
        let mut sum = Sum::default();
        for pair in self.db.iter(&rtxn)? {
            sum.add(pair?.1);
        }
        Ok(sum)
    }

    fn disk_bytes(&self) -> Option<u64> {
        Some(dir_bytes(&self.dir))
    }

    fn compacted_bytes(&self) -> Option<u64> {
        std::fs::metadata(&self.copy).ok().map(|m| m.len())
    }

    fn get_owned(&self, key: &Key) -> Result<Option<Vec<u8>>, BenchError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.db.get(&rtxn, key)?.map(<[u8]>::to_vec))
    }
}
