//! fjall, an LSM tree, with its defaults except compression (off: the values are random
//! bytes). Every write is one atomic batch committed with `PersistMode::SyncData`
//! (`fdatasync` of the journal); lookups return a reference-counted `Slice`.
//!
//! fjall compacts in the background by itself and has no public "compact now": the
//! `compact` figure is a memtable flush, waited for. Its `#[doc(hidden)]`
//! `major_compact` is not used: after a flush it made removed keys readable again in
//! this harness's verification (fjall 2.11.2; the smoke test caught it).

use std::path::{Path, PathBuf};

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

use crate::BenchError;
use crate::data::{Data, Key, Sum, Update};
use crate::engine::{Engine, dir_bytes};

pub(crate) struct Fjall {
    keyspace: Keyspace,
    partition: PartitionHandle,
    dir: PathBuf,
}

impl Fjall {
    pub(crate) fn create(dir: &Path) -> Result<Self, BenchError> {
        let keyspace = Config::new(dir.join("keyspace")).open()?;
        let partition = keyspace.open_partition("kv", PartitionCreateOptions::default())?;
        Ok(Fjall {
            keyspace,
            partition,
            dir: dir.to_path_buf(),
        })
    }

    fn batch(&self) -> fjall::Batch {
        self.keyspace
            .batch()
            .durability(Some(PersistMode::SyncData))
    }
}

impl Engine for Fjall {
    fn bulk_load(&mut self, data: &Data) -> Result<(), BenchError> {
        let mut batch = self.batch();
        for (k, v) in data.keys.iter().zip(&data.values) {
            batch.insert(&self.partition, &k[..], &v[..]);
        }
        batch.commit()?;
        Ok(())
    }

    fn get_sum(&self, keys: &[Key]) -> Result<Sum, BenchError> {
        let mut sum = Sum::default();
        for key in keys {
            if let Some(v) = self.partition.get(key)? {
                sum.add(&v);
            }
        }
        Ok(sum)
    }

    fn write(&mut self, data: &Data, updates: &[Update]) -> Result<(), BenchError> {
        let mut batch = self.batch();
        for (i, v) in updates {
            batch.insert(&self.partition, &data.keys[*i as usize][..], &v[..]);
        }
        batch.commit()?;
        Ok(())
    }

    fn remove(&mut self, data: &Data, indexes: &[u32]) -> Result<(), BenchError> {
        let mut batch = self.batch();
        for &i in indexes {
            batch.remove(&self.partition, &data.keys[i as usize][..]);
        }
        batch.commit()?;
        Ok(())
    }

    fn compact(&mut self) -> Option<Result<(), BenchError>> {
        let run = || {
            self.partition.rotate_memtable_and_wait()?;
            self.keyspace.persist(PersistMode::SyncData)?;
            Ok(())
        };
        Some(run())
    }

    fn iterate(&self) -> Result<Sum, BenchError> {
        let mut sum = Sum::default();
        for pair in self.partition.iter() {
            sum.add(&pair?.1);
        }
        Ok(sum)
    }

    fn disk_bytes(&self) -> Option<u64> {
        Some(dir_bytes(&self.dir))
    }

    fn get_owned(&self, key: &Key) -> Result<Option<Vec<u8>>, BenchError> {
        Ok(self.partition.get(key)?.map(|v| v.to_vec()))
    }
}
