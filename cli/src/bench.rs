//! `bench`: a quick self-benchmark on a temporary database — load in batches, random
//! gets, durable single-put commits — printing operations per second.

use core::hint::black_box;
use std::io::Write as _;
use std::time::Instant;

use crate::args::BenchArgs;
use crate::fail::{self, Access, Fail};
use crate::progress::Ui;

/// Pairs a load commit holds.
const LOAD_BATCH: u64 = 10_000;

/// splitmix64: a small, fast, seedable generator (no dependency for a benchmark).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        // The bias of a modulo is irrelevant to a benchmark.
        self.next() % n.max(1)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

fn key(i: u64) -> [u8; 16] {
    let mut k = *b"bench-0000000000";
    let digits = format!("{:010}", i % 10_000_000_000);
    k[6..].copy_from_slice(digits.as_bytes());
    k
}

/// One phase's figures.
struct Phase {
    name: String,
    ops: u64,
    seconds: f64,
}

pub(crate) fn run(options: &BenchArgs, ui: Ui) -> Result<u8, Fail> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("hamtdb-bench-");
    let dir = match &options.dir {
        Some(dir) => builder.tempdir_in(dir),
        None => builder.tempdir(),
    }
    .map_err(|e| Fail::new(fail::IO, format!("cannot make a temporary directory: {e}")))?;
    let path = dir.path().join("bench.db");
    let db = crate::open(&path, Access::Create)?;
    let db_error = |e| fail::db_error(&path, Access::Create, e);
    let mut rng = Rng(options.seed);
    let mut value = vec![0u8; usize::try_from(options.value_size).unwrap_or(0)];
    let mut phases = Vec::new();

    let bar = ui.bar("load", Some(options.keys), false);
    let start = Instant::now();
    let mut i = 0;
    while i < options.keys {
        let end = (i + LOAD_BATCH).min(options.keys);
        let mut txn = db.begin_write().map_err(db_error)?;
        for k in i..end {
            rng.fill(&mut value);
            txn.put(&key(k), &value).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        bar.inc(end - i);
        i = end;
    }
    bar.finish();
    phases.push(Phase {
        name: format!("load (durable commits of {LOAD_BATCH})"),
        ops: options.keys,
        seconds: start.elapsed().as_secs_f64(),
    });

    let bar = ui.bar("random get", Some(options.gets), false);
    let start = Instant::now();
    let mut found = 0u64;
    for n in 0..options.gets {
        let v = db.get(&key(rng.below(options.keys))).map_err(db_error)?;
        found += u64::from(v.is_some_and(|v| black_box(v.len()) == value.len()));
        if n % 4096 == 0 {
            bar.inc(4096.min(options.gets - n));
        }
    }
    bar.finish();
    let seconds = start.elapsed().as_secs_f64();
    if found != options.gets {
        return Err(Fail::new(
            fail::CORRUPT,
            format!(
                "bench: {} of {} gets missed a loaded key",
                options.gets - found,
                options.gets
            ),
        ));
    }
    phases.push(Phase {
        name: "random get".to_owned(),
        ops: options.gets,
        seconds,
    });

    let bar = ui.bar("durable commits", Some(options.commits), false);
    let start = Instant::now();
    for _ in 0..options.commits {
        rng.fill(&mut value);
        db.put(&key(rng.below(options.keys)), &value)
            .map_err(db_error)?;
        bar.inc(1);
    }
    bar.finish();
    phases.push(Phase {
        name: "durable commit (1 put, 1 sync)".to_owned(),
        ops: options.commits,
        seconds: start.elapsed().as_secs_f64(),
    });
    crate::close(db, &path, Access::Create)?;
    let file_size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    let mut text = format!(
        "{} keys, {}-byte values, file {} ({}), seed {}\n{:<34}{:>10}{:>11}{:>14}\n",
        options.keys,
        options.value_size,
        crate::inspect::human(file_size),
        dir.path().display(),
        options.seed,
        "phase",
        "ops",
        "seconds",
        "ops/s"
    );
    for p in &phases {
        // Display only.
        let rate = p.ops as f64 / p.seconds.max(1e-9);
        text += &format!(
            "{:<34}{:>10}{:>11.3}{:>14.0}\n",
            p.name, p.ops, p.seconds, rate
        );
    }
    let mut out = crate::stdout();
    out.write_all(text.as_bytes()).map_err(fail::stdout_error)?;
    crate::flush(&mut out)?;
    dir.close().map_err(|e| {
        Fail::new(
            fail::IO,
            format!("cannot remove the temporary database: {e}"),
        )
    })?;
    Ok(fail::OK)
}
