//! Durable single-put commits of hamtdb, fjall and a raw append + `fdatasync` loop,
//! interleaved in small slices so that all three see the same machine load.
//!
//! `cargo run --release -p hamtdb-bench --example durable_probe -- [keys] [rounds] [per_round]`
//! (defaults 100,000 keys, 100 rounds of 10 commits per store). Each store first loads
//! the same keys with 150-byte values in one durable transaction; a commit then puts an
//! existing key with a new value, durably, as the harness's `commit_single_durable`
//! does. The shared machine makes absolute rates swing by up to 10× from minute to
//! minute (see docs/PERFORMANCE.md); slices of ten commits keep the ratios far steadier
//! than the harness, which runs the stores one after another.
//!
//! `PROBE_ONLY_HAMTDB=1` runs hamtdb alone (for `perf record` / `perf stat`);
//! `PROBE_EVENTUAL=1` opens hamtdb with `Durability::Eventual`, which leaves only the
//! CPU cost of a commit. hamtdb commits through its commit log (the default: the map's
//! pages unsynced, one append and one sync of `<db>-log`, checkpoints by the default
//! policy); `PROBE_NO_LOG=1` turns the log off, so that every commit syncs the map.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::Instant;

use fjall::{Config, PartitionCreateOptions, PersistMode};
use hamtdb::Db;
use hamtdb_bench::data::Rng;

fn arg(args: &[String], i: usize, default: u64) -> u64 {
    args.get(i)
        .map_or(default, |a| a.parse().expect("a number"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let keys = arg(&args, 0, 100_000) as usize;
    let rounds = arg(&args, 1, 100);
    let per = arg(&args, 2, 10);
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let mut rng = Rng::new(1);
    let ks: Vec<[u8; 24]> = (0..keys)
        .map(|_| {
            let mut k = [0u8; 24];
            rng.fill(&mut k);
            k
        })
        .collect();
    let value = |rng: &mut Rng| {
        let mut v = [0u8; 150];
        rng.fill(&mut v);
        v
    };

    let mut builder = Db::builder().seed(7);
    if std::env::var_os("PROBE_EVENTUAL").is_some() {
        builder = builder.durability(hamtdb::Durability::Eventual);
    }
    if std::env::var_os("PROBE_NO_LOG").is_some() {
        builder = builder.commit_log(false);
    }
    let db = builder.open(dir.path().join("db")).unwrap();
    let mut txn = db.begin_write().unwrap();
    for k in &ks {
        txn.put(k, &value(&mut rng)).unwrap();
    }
    txn.commit().unwrap();

    let keyspace = Config::new(dir.path().join("fjall")).open().unwrap();
    let partition = keyspace
        .open_partition("kv", PartitionCreateOptions::default())
        .unwrap();
    let batch = || keyspace.batch().durability(Some(PersistMode::SyncData));
    let mut load = batch();
    for k in &ks {
        load.insert(&partition, &k[..], &value(&mut rng)[..]);
    }
    load.commit().unwrap();

    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("log"))
        .unwrap();

    let (mut t_hamtdb, mut t_fjall, mut t_loop) = (0.0f64, 0.0f64, 0.0f64);
    let only_hamtdb = std::env::var_os("PROBE_ONLY_HAMTDB").is_some();
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..per {
            let k = &ks[rng.below(keys as u64) as usize];
            db.put(k, &value(&mut rng)).unwrap();
        }
        t_hamtdb += t.elapsed().as_secs_f64();
        if only_hamtdb {
            continue;
        }
        let t = Instant::now();
        for _ in 0..per {
            let k = &ks[rng.below(keys as u64) as usize];
            let mut b = batch();
            b.insert(&partition, &k[..], &value(&mut rng)[..]);
            b.commit().unwrap();
        }
        t_fjall += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..per {
            let mut record = [0u8; 174];
            rng.fill(&mut record);
            log.write_all(&record).unwrap();
            log.sync_data().unwrap();
        }
        t_loop += t.elapsed().as_secs_f64();
    }
    let n = (rounds * per) as f64;
    if only_hamtdb {
        println!("commits/s: hamtdb {:.0}", n / t_hamtdb);
        return;
    }
    println!(
        "commits/s: hamtdb {:.0}, fjall {:.0}, fdatasync loop {:.0}; hamtdb/loop {:.2}, \
         fjall/loop {:.2}, hamtdb/fjall {:.2}",
        n / t_hamtdb,
        n / t_fjall,
        n / t_loop,
        t_loop / t_hamtdb,
        t_loop / t_fjall,
        t_fjall / t_hamtdb,
    );
}
