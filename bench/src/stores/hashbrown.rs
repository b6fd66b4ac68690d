//! The in-memory ceiling: hashbrown's `HashMap` of owned byte strings (what a program
//! that keeps its pairs in memory would write), with its default hasher.

use hashbrown::HashMap;

use crate::BenchError;
use crate::data::{Data, Key, Sum, Update};
use crate::engine::Engine;

#[derive(Default)]
pub(crate) struct InMemory {
    map: HashMap<Vec<u8>, Vec<u8>>,
}

impl Engine for InMemory {
    fn bulk_load(&mut self, data: &Data) -> Result<(), BenchError> {
        for (k, v) in data.keys.iter().zip(&data.values) {
            self.map.insert(k.to_vec(), v.to_vec());
        }
        Ok(())
    }

    fn get_sum(&self, keys: &[Key]) -> Result<Sum, BenchError> {
        let mut sum = Sum::default();
        for key in keys {
            if let Some(v) = self.map.get(&key[..]) {
                sum.add(v);
            }
        }
        Ok(sum)
    }

    fn durable(&self) -> bool {
        false
    }

    fn write(&mut self, data: &Data, updates: &[Update]) -> Result<(), BenchError> {
        for (i, v) in updates {
            self.map.insert(data.keys[*i as usize].to_vec(), v.to_vec());
        }
        Ok(())
    }

    fn remove(&mut self, data: &Data, indexes: &[u32]) -> Result<(), BenchError> {
        for &i in indexes {
            self.map.remove(&data.keys[i as usize][..]);
        }
        Ok(())
    }

    fn compact(&mut self) -> Option<Result<(), BenchError>> {
        None
    }

    fn iterate(&self) -> Result<Sum, BenchError> {
        let mut sum = Sum::default();
        for v in self.map.values() {
            sum.add(v);
        }
        Ok(sum)
    }

    fn disk_bytes(&self) -> Option<u64> {
        None
    }

    fn get_owned(&self, key: &Key) -> Result<Option<Vec<u8>>, BenchError> {
        Ok(self.map.get(&key[..]).cloned())
    }
}
