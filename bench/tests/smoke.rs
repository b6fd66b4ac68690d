//! Every workload on every store at a small size, through the library: each expected
//! record is there, and every store reads back exactly what the workloads left
//! (`verify`), so that CI exercises the whole harness in seconds.

use hamtdb_bench::{Config, Record, Sizes, Store, Workload, report, run};

fn expected(store: Store) -> Vec<Workload> {
    use Workload::*;
    match store {
        Store::Hamtdb => {
            let mut all = Workload::ALL.to_vec();
            all.extend([BulkLoadFn, UsedAfterLoad]);
            all
        }
        Store::Lmdb | Store::Redb | Store::Fjall => Workload::ALL
            .into_iter()
            .filter(|w| *w != GetMany)
            .collect(),
        Store::Hashbrown => vec![
            BulkLoad,
            GetRandom,
            GetRandom2t,
            GetAbsent,
            Overwrite,
            RemoveHalf,
            Iterate,
        ],
        Store::Fdatasync => vec![CommitSingleDurable],
    }
}

#[test]
fn every_store_runs_every_workload_and_reads_back_what_it_wrote() {
    let config = Config {
        sizes: Sizes {
            keys: 2000,
            single_commits: 5,
            batches: 3,
            batch_len: 50,
            overwrites: 500,
        },
        verify: true,
        ..Config::issue(2000)
    };
    let records = run(&config, &mut |_| {}).expect("the run succeeds");

    for store in Store::ALL {
        let mut got: Vec<Workload> = records
            .iter()
            .filter(|r| r.store == store.name())
            .map(|r| r.workload)
            .collect();
        got.sort();
        let mut want = expected(store);
        want.sort();
        assert_eq!(got, want, "records of {}", store.name());
    }
    for r in &records {
        if r.workload.is_size() {
            assert!(r.bytes.is_some_and(|b| b > 0), "{r:?}");
        } else {
            assert!(r.ms.is_some_and(|ms| ms >= 0.0), "{r:?}");
            assert!(
                r.ops_per_s.is_none_or(|x| x > 0.0 && x.is_finite()),
                "{r:?}"
            );
        }
    }
    // The issue's order: workloads in order, stores in order within one.
    let keys: Vec<_> = records
        .iter()
        .map(|r| (r.workload, Store::from_name(r.store)))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);

    let json = report::json(&records);
    assert_eq!(json.matches("\"store\"").count(), records.len());
    let targets = report::targets(&records, 2000 * (24 + 150));
    assert_eq!(targets.len(), 8);
    let table = report::markdown_table(&records);
    assert_eq!(table.lines().count(), records.len() + 2);
    let svg = report::svg(&records, "smoke");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}

#[test]
fn ratios_are_to_lmdb() {
    let rec = |store: &'static str, workload, ops: f64| Record {
        store,
        workload,
        ms: Some(1.0),
        ops_per_s: Some(ops),
        bytes: None,
    };
    let records = vec![
        rec("hamtdb", Workload::GetRandom, 300.0),
        rec("lmdb", Workload::GetRandom, 100.0),
        rec("hamtdb", Workload::GetMany, 1500.0),
    ];
    assert_eq!(report::ratio_to_lmdb(&records, &records[0]), Some(3.0));
    assert_eq!(report::ratio_to_lmdb(&records, &records[2]), Some(15.0));
    let targets = report::targets(&records, 1);
    assert!(!targets[0].met() && targets[0].measured == 3.0);
    assert!(targets.iter().any(|t| t.measured == 15.0 && t.met()));
}
