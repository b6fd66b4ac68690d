//! The durability floor: each put appended to a file (key then value) and made durable
//! with `fdatasync` (`File::sync_data`), nothing else.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::data::{Data, KEY_LEN, VALUE_LEN};
use crate::engine::Recorder;
use crate::{BenchError, Workload};

pub(crate) fn run(dir: &Path, data: &Data, rec: &mut Recorder<'_>) -> Result<(), BenchError> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("append.log"))?;
    let mut record = [0u8; KEY_LEN + VALUE_LEN];
    let t = Instant::now();
    for (i, v) in &data.singles {
        record[..KEY_LEN].copy_from_slice(&data.keys[*i as usize]);
        record[KEY_LEN..].copy_from_slice(v);
        file.write_all(&record)?;
        file.sync_data()?;
    }
    rec.timed(
        Workload::CommitSingleDurable,
        t.elapsed(),
        data.singles.len() as u64,
        None,
    );
    let want = (data.singles.len() * record.len()) as u64;
    if file.metadata()?.len() != want {
        return Err(crate::err("fdatasync: the log has the wrong length"));
    }
    Ok(())
}
