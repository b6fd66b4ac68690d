//! `hamtdb-bench`: every workload on every store, one process, one machine.
//!
//! ```text
//! cargo run --release -p hamtdb-bench -- --keys 1000000 --json target/bench.json
//! ```
//!
//! Options: `--keys N` (default 1,000,000), `--json PATH` (the records), `--svg PATH`
//! (the chart; default `docs/bench/ratios.svg` in the workspace, `--svg none` to skip),
//! `--dir PATH` (where the data directories go; default the system's temporary
//! directory), `--stores a,b,...` (default all), `--seed N`, `--verify` (read every key
//! back at the end).

use std::path::PathBuf;
use std::process::ExitCode;

use hamtdb_bench::{BenchError, Config, Store, Workload, report, run};

struct Args {
    config: Config,
    json: Option<PathBuf>,
    svg: Option<PathBuf>,
}

fn usage() -> String {
    "usage: hamtdb-bench [--keys N] [--json PATH] [--svg PATH|none] [--dir PATH] \
     [--stores hamtdb,lmdb,redb,fjall,hashbrown,fdatasync] [--seed N] [--verify]"
        .into()
}

fn parse() -> Result<Args, BenchError> {
    let mut config = Config::issue(1_000_000);
    let mut json = None;
    let mut svg = Some(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/bench/ratios.svg"
    )));
    let mut keys = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{}", usage()))
        };
        match arg.as_str() {
            "--keys" => keys = Some(value()?.replace('_', "").parse::<usize>()?),
            "--json" => json = Some(PathBuf::from(value()?)),
            "--svg" => {
                let v = value()?;
                svg = (v != "none").then(|| PathBuf::from(v));
            }
            "--dir" => config.dir = Some(PathBuf::from(value()?)),
            "--seed" => config.seed = value()?.parse()?,
            "--stores" => {
                config.stores = value()?
                    .split(',')
                    .map(|s| Store::from_name(s).ok_or_else(|| format!("unknown store {s}")))
                    .collect::<Result<_, _>>()?;
            }
            "--verify" => config.verify = true,
            "-h" | "--help" => return Err(usage().into()),
            other => return Err(format!("unknown argument {other}\n{}", usage()).into()),
        }
    }
    if let Some(keys) = keys {
        let Config {
            seed,
            stores,
            dir,
            verify,
            ..
        } = config;
        config = Config {
            sizes: hamtdb_bench::Sizes::issue(keys),
            seed,
            stores,
            dir,
            verify,
        };
    }
    Ok(Args { config, json, svg })
}

fn main() -> ExitCode {
    match main_inner() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hamtdb-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main_inner() -> Result<(), BenchError> {
    let args = parse()?;
    let sizes = args.config.sizes;
    eprintln!(
        "hamtdb-bench: {} keys of 24 B, values of 150 B, seed {:#x}",
        sizes.keys, args.config.seed
    );
    let mut log = |line: &str| eprintln!("{line}");
    let records = run(&args.config, &mut log)?;

    let logical = (sizes.keys * (24 + 150)) as u64;
    let issue: Vec<_> = records
        .iter()
        .filter(|r| Workload::ALL.contains(&r.workload))
        .cloned()
        .collect();
    println!("{}", report::markdown_table(&issue));
    if let Some(r) = records.iter().find(|r| r.workload == Workload::BulkLoadFn) {
        println!(
            "hamtdb `Map::bulk_load` (sorted, bottom-up, one commit): {:.1} ms, {:.0} ops/s, {} B file \
             ({:.2}× LMDB's bulk load).\n",
            r.ms.unwrap_or(0.0),
            r.ops_per_s.unwrap_or(0.0),
            r.bytes.unwrap_or(0),
            report::ratio_to_lmdb(&records, r).unwrap_or(f64::NAN)
        );
    }
    if let Some(r) = records
        .iter()
        .find(|r| r.workload == Workload::UsedAfterLoad)
    {
        println!(
            "hamtdb used end after the load: {} B ({:.2}× the logical bytes; the file is longer by \
             its preallocated growth).\n",
            r.bytes.unwrap_or(0),
            r.bytes.unwrap_or(0) as f64 / logical as f64
        );
    }
    println!("Logical bytes (keys + values): {logical}\n");
    println!("Targets (issue 6):\n");
    println!(
        "{}",
        report::markdown_targets(&report::targets(&records, logical))
    );

    if let Some(path) = &args.json {
        write(path, &report::json(&records))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.svg {
        let title = format!("hamtdb-bench, {} keys: ratio to LMDB", sizes.keys);
        write(path, &report::svg(&records, &title))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn write(path: &std::path::Path, text: &str) -> Result<(), BenchError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    Ok(())
}
