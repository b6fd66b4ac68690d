//! One module per store: each implements [`Engine`](crate::engine::Engine) over its own
//! data directory, except the `fdatasync` floor, which only commits.

mod fdatasync;
mod fjall;
mod hamtdb;
mod hashbrown;
mod lmdb;
mod redb;

use std::path::Path;

use crate::data::Data;
use crate::engine::{Recorder, drive};
use crate::{BenchError, Store};

/// Runs every workload `store` has, in `dir`.
pub(crate) fn run(
    store: Store,
    dir: &Path,
    data: &Data,
    verify: bool,
    rec: &mut Recorder<'_>,
) -> Result<(), BenchError> {
    match store {
        Store::Hamtdb => {
            drive(&mut hamtdb::Hamtdb::create(dir)?, data, verify, rec)?;
            hamtdb::bulk_load_fn(dir, data, rec)
        }
        Store::Lmdb => drive(&mut lmdb::Lmdb::create(dir)?, data, verify, rec),
        Store::Redb => drive(&mut redb::Redb::create(dir)?, data, verify, rec),
        Store::Fjall => drive(&mut fjall::Fjall::create(dir)?, data, verify, rec),
        Store::Hashbrown => drive(&mut hashbrown::InMemory::default(), data, verify, rec),
        Store::Fdatasync => fdatasync::run(dir, data, rec),
    }
}
