//! redb with its defaults: `Durability::Immediate` commits, values read through
//! `AccessGuard`s that borrow its page cache, compaction in place.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};

use crate::BenchError;
use crate::data::{Data, Key, Sum, Update};
use crate::engine::{Engine, dir_bytes};

const TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new("kv");

pub(crate) struct Redb {
    db: Database,
    dir: PathBuf,
}

impl Redb {
    pub(crate) fn create(dir: &Path) -> Result<Self, BenchError> {
        let db = Database::create(dir.join("bench.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(TABLE)?;
        txn.commit()?;
        Ok(Redb {
            db,
            dir: dir.to_path_buf(),
        })
    }
}

impl Engine for Redb {
    fn bulk_load(&mut self, data: &Data) -> Result<(), BenchError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for (k, v) in data.keys.iter().zip(&data.values) {
                table.insert(&k[..], &v[..])?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn get_sum(&self, keys: &[Key]) -> Result<Sum, BenchError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        let mut sum = Sum::default();
        for key in keys {
            if let Some(v) = table.get(&key[..])? {
                sum.add(v.value());
            }
        }
        Ok(sum)
    }

    fn write(&mut self, data: &Data, updates: &[Update]) -> Result<(), BenchError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for (i, v) in updates {
                table.insert(&data.keys[*i as usize][..], &v[..])?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn remove(&mut self, data: &Data, indexes: &[u32]) -> Result<(), BenchError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for &i in indexes {
                table.remove(&data.keys[i as usize][..])?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn compact(&mut self) -> Option<Result<(), BenchError>> {
        Some(self.db.compact().map(|_| ()).map_err(Into::into))
    }

    fn iterate(&self) -> Result<Sum, BenchError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        let mut sum = Sum::default();
        for pair in table.iter()? {
            sum.add(pair?.1.value());
        }
        Ok(sum)
    }

    fn disk_bytes(&self) -> Option<u64> {
        Some(dir_bytes(&self.dir))
    }

    fn get_owned(&self, key: &Key) -> Result<Option<Vec<u8>>, BenchError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        Ok(table.get(&key[..])?.map(|v| v.value().to_vec()))
    }
}
