//! The main job: create a database in a temporary directory, write 100,000 pairs in
//! batches, read them back, delete half, compact, reopen, verify, and report.
//!
//! `cargo run --release --example quickstart`

use core::error::Error;
use std::time::Instant;

use hamtdb::Db;

const PAIRS: u32 = 100_000;
const BATCH: u32 = 1_000;

fn key(i: u32) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..4].copy_from_slice(b"key:");
    k[4..8].copy_from_slice(&i.to_le_bytes());
    k[8..].copy_from_slice(
        &u64::from(i)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .to_le_bytes(),
    );
    k
}

fn value(i: u32, round: u8) -> Vec<u8> {
    let len = 50 + (i % 100) as usize;
    (0..len).map(|j| (i as usize + j) as u8 ^ round).collect()
}

fn file_size(db: &Db) -> std::io::Result<u64> {
    Ok(std::fs::metadata(db.path())?.len())
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("quickstart.hamt");
    let db = Db::open(&path)?;

    let t = Instant::now();
    for batch in 0..PAIRS / BATCH {
        let mut txn = db.begin_write()?;
        for i in batch * BATCH..(batch + 1) * BATCH {
            txn.put(&key(i), &value(i, 0))?;
        }
        txn.commit()?;
    }
    let logical: u64 = (0..PAIRS).map(|i| 16 + value(i, 0).len() as u64).sum();
    println!(
        "wrote    {PAIRS} pairs in {} durable commits of {BATCH}: {:.0} ms ({:.0} pairs/s)",
        PAIRS / BATCH,
        ms(t),
        f64::from(PAIRS) / t.elapsed().as_secs_f64()
    );
    println!(
        "file     {} bytes for {logical} bytes of keys and values ({:.2}x)",
        file_size(&db)?,
        db.stats()?.used_end as f64 / logical as f64
    );

    let t = Instant::now();
    for i in 0..PAIRS {
        let got = db.get(&key(i))?.ok_or("a written key is missing")?;
        if *got != value(i, 0)[..] {
            return Err(format!("key {i} reads back wrong").into());
        }
    }
    println!(
        "read     {PAIRS} pairs back: {:.0} ms ({:.0} gets/s)",
        ms(t),
        f64::from(PAIRS) / t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let mut txn = db.begin_write()?;
    for i in (0..PAIRS).filter(|i| i % 2 == 1) {
        txn.delete(&key(i))?;
    }
    txn.commit()?;
    println!("deleted  {} pairs: {:.0} ms", PAIRS / 2, ms(t));

    let before = file_size(&db)?;
    let t = Instant::now();
    let report = db.compact()?;
    println!(
        "compact  {:.0} ms, {} steps, {} bytes moved: file {before} -> {} bytes",
        ms(t),
        report.steps,
        report.bytes_moved,
        file_size(&db)?
    );
    db.close()?;

    let t = Instant::now();
    let db = Db::open(&path)?;
    println!("reopen   {:.1} ms, {} keys", ms(t), db.len());
    let report = db.check();
    if !report.is_ok() {
        return Err(format!("check found problems: {:?}", report.problems).into());
    }
    for i in 0..PAIRS {
        let got = db.get_owned(&key(i))?;
        let want = (i % 2 == 0).then(|| value(i, 0));
        if got != want {
            return Err(format!("key {i} is wrong after reopening").into());
        }
    }
    println!(
        "verified {} keys present, {} absent; check: {} nodes, {} keys, no problems",
        PAIRS / 2,
        PAIRS / 2,
        report.nodes,
        report.keys
    );
    db.close()?;
    Ok(())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}
