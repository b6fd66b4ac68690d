//! Injected I/O errors at every write, sync and grow of a map and of its commit log
//! ([`LoggedMap`], what the std `Db` runs), one fault a run: a failed write (nothing
//! applied, or torn), a failed sync, a failed grow (an I/O error, a full disk).
//!
//! For each: the step that met the fault returns an error and no other step does (the
//! database goes on working: the next commit checkpoints); after every step the visible
//! state is the model's (a failed commit may be visible — its map commit was published —
//! or not, as `WriteTxn::commit_with` documents); and a crash after the run (unsynced
//! writes dropped, or kept) reopens to a state between the last acknowledged durable one
//! and the end, which then takes a durable commit that survives another crash.
//!
//! And a log whose creation was cut by a crash (torn header) opens as a new log.

use std::collections::BTreeMap;

use hamtdb_core::log::{LogPolicy, LoggedMap};
use hamtdb_core::{Durability, Error, Map, MapOptions, RegionError};
use hamtdb_tests::map_model::{key, value};
use hamtdb_tests::{CrashMode, Fault, FaultRegion, INJECTED_CODE, OpCounts};

const MAP_CAPACITY: usize = 512 << 10;
const LOG_CAPACITY: usize = 64 << 10;
const OPTIONS: MapOptions = MapOptions {
    inline_max: 16,
    seed: 0xe770_4c06,
};
const POLICY: LogPolicy = LogPolicy {
    max_log_bytes: 2400,
    max_pending_bytes: 16 << 10,
    max_record_bytes: 900,
};

type Db<'r> = LoggedMap<&'r FaultRegion, &'r FaultRegion>;
type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Clone, Debug)]
enum Step {
    Txn(Vec<(Vec<u8>, Option<Vec<u8>>)>, Durability),
    Flush,
    Checkpoint,
    Compact,
}

fn put(i: u32, round: u32) -> (Vec<u8>, Option<Vec<u8>>) {
    (
        key(i),
        Some(value([8, 40, 150][((i + round) % 3) as usize], round as u8)),
    )
}

fn del(i: u32) -> (Vec<u8>, Option<Vec<u8>>) {
    (key(i), None)
}

fn steps() -> Vec<Step> {
    use Durability::{Eventual, Immediate};
    let mut s = vec![
        Step::Txn(vec![put(40, 1)], Immediate),
        Step::Txn(vec![put(1, 1), del(2), put(41, 0)], Immediate),
        Step::Txn(vec![put(3, 2)], Eventual),
        Step::Flush,
        Step::Txn((50..58).map(|i| put(i, 3)).collect(), Immediate),
        // Over the record bound: not logged, the map syncs.
        Step::Txn((60..70).map(|i| put(i, 2)).collect(), Immediate),
        Step::Txn(vec![del(4)], Eventual),
        Step::Checkpoint,
        Step::Txn(vec![put(5, 4)], Immediate),
        Step::Compact,
    ];
    // Past the log's size bound: a checkpoint instead of an append.
    s.extend((0..8).map(|i| Step::Txn(vec![put(10 + i, 5), put(70 + i, 1)], Immediate)));
    s
}

fn apply(model: &Model, step: &Step) -> Model {
    let mut next = model.clone();
    if let Step::Txn(ops, _) = step {
        for (k, v) in ops {
            match v {
                Some(v) => next.insert(k.clone(), v.clone()),
                None => next.remove(k),
            };
        }
    }
    next
}

fn run_step(db: &Db<'_>, step: &Step) -> Result<(), Error> {
    match step {
        Step::Txn(ops, durability) => {
            let mut txn = db.begin_write();
            for (k, v) in ops {
                match v {
                    Some(v) => txn.put(k, v).map(|_| ())?,
                    None => txn.delete(k).map(|_| ())?,
                }
            }
            txn.commit_with(*durability)
        }
        Step::Flush => db.sync(),
        Step::Checkpoint => db.checkpoint(),
        Step::Compact => {
            while db.compact_step(4 << 10)? > 0 {}
            db.shrink().map(|_| ())
        }
    }
}

fn contents(db: &Db<'_>) -> Model {
    db.map().iter().expect("iterate").into_iter().collect()
}

/// Regions holding copies of the images.
fn regions(map: &[u8], log: &[u8]) -> (FaultRegion, FaultRegion) {
    (
        FaultRegion::from_image(map, MAP_CAPACITY),
        FaultRegion::from_image(log, LOG_CAPACITY),
    )
}

fn open<'r>(map: &'r FaultRegion, log: &'r FaultRegion) -> Db<'r> {
    let map = Map::open(map).expect("the map opens");
    LoggedMap::open(map, Some(log), POLICY)
        .expect("the log opens")
        .0
}

/// The durable images after the set-up: 40 keys, checkpointed.
fn setup() -> (Vec<u8>, Vec<u8>, Model) {
    let (map, log) = (
        FaultRegion::with_capacity(MAP_CAPACITY),
        FaultRegion::with_capacity(LOG_CAPACITY),
    );
    let (db, _) = LoggedMap::open(
        Map::create(&map, OPTIONS).expect("create"),
        Some(&log),
        POLICY,
    )
    .expect("create the log");
    let step = Step::Txn((0..40).map(|i| put(i, 0)).collect(), Durability::Immediate);
    run_step(&db, &step).expect("set-up");
    db.checkpoint().expect("checkpoint");
    let model = contents(&db);
    drop(db);
    (map.durable_image(), log.durable_image(), model)
}

fn is_injected(e: &Error) -> bool {
    matches!(
        e,
        Error::Region(RegionError::Io {
            code: INJECTED_CODE,
            ..
        }) | Error::Region(RegionError::NoSpace { .. })
    )
}

#[derive(Default)]
struct Totals {
    runs: u64,
    failed_steps: u64,
    failed_visible: u64,
    /// Runs where the fault surfaced as a step's error.
    met: u64,
    reopened: u64,
}

/// One run with `fault` injected into the map (`in_log = false`) or the log after `n`
/// calls of its kind. Returns whether the fault was met.
fn run_with_fault(
    base: &(Vec<u8>, Vec<u8>, Model),
    in_log: bool,
    fault: Fault,
    n: u64,
    t: &mut Totals,
) -> bool {
    let what = format!(
        "{fault:?} #{n} in the {}",
        if in_log { "log" } else { "map" }
    );
    let (map, log) = regions(&base.0, &base.1);
    let db = open(&map, &log);
    if in_log { &log } else { &map }.inject(fault, n);
    let mut states = vec![base.2.clone()];
    let mut floor = 0;
    let mut failed = None;
    for (i, step) in steps().iter().enumerate() {
        let before = states.last().cloned().unwrap_or_default();
        let next = apply(&before, step);
        let result = run_step(&db, step);
        let now = contents(&db);
        match result {
            Ok(()) => {
                assert_eq!(now, next, "{what}: step {i} ({step:?}) returned Ok");
                if !matches!(step, Step::Txn(_, Durability::Eventual)) {
                    floor = states.len();
                }
            }
            Err(e) => {
                assert!(is_injected(&e), "{what}: step {i} failed with {e:?}");
                assert!(
                    failed.is_none(),
                    "{what}: step {i} failed too, after step {failed:?}: {e:?}"
                );
                failed = Some(i);
                assert!(
                    now == before || now == next,
                    "{what}: after the failed step {i} the visible state is neither"
                );
                t.failed_steps += 1;
                if now != before {
                    t.failed_visible += 1;
                }
            }
        }
        states.push(now);
    }
    t.runs += 1;
    drop(db);
    map.reset_faults();
    log.reset_faults();
    for mode in [CrashMode::DropAllUnsynced, CrashMode::KeepAllUnsynced] {
        let (m, l) = regions(&map.crash_image(mode), &log.crash_image(mode));
        let db = open(&m, &l);
        let state = contents(&db);
        assert!(
            states[floor..].contains(&state),
            "{what}, {mode:?}: the reopened state is none since the last acknowledged durable \
             one ({} candidates)",
            states.len() - floor
        );
        assert!(db.map().check().is_ok(), "{what}: the reopened map checks");
        let after = Step::Txn(vec![put(999, 9)], Durability::Immediate);
        run_step(&db, &after).expect("a commit after the reopen");
        drop(db);
        let (m2, l2) = regions(&m.durable_image(), &l.durable_image());
        let db = open(&m2, &l2);
        assert_eq!(
            contents(&db),
            apply(&state, &after),
            "{what}, {mode:?}: the commit after the reopen"
        );
        t.reopened += 1;
    }
    failed.is_some()
}

#[test]
fn an_injected_error_at_every_map_or_log_call_is_survived() {
    let base = setup();
    // The calls of each kind a clean run makes.
    let (map, log) = regions(&base.0, &base.1);
    let db = open(&map, &log);
    let opened = [map.op_counts(), log.op_counts()];
    for step in &steps() {
        run_step(&db, step).expect("a clean run");
    }
    drop(db);
    let counts = [map.op_counts(), log.op_counts()];
    let counts = [0, 1].map(|i| OpCounts {
        writes: counts[i].writes - opened[i].writes,
        syncs: counts[i].syncs - opened[i].syncs,
        grows: counts[i].grows - opened[i].grows,
        truncates: counts[i].truncates - opened[i].truncates,
    });
    let mut t = Totals::default();
    for (in_log, c) in [(false, counts[0]), (true, counts[1])] {
        let faults = [
            (Fault::Write, c.writes),
            (Fault::TornWrite { keep_bytes: 7 }, c.writes),
            (Fault::Sync, c.syncs),
            (Fault::Grow, c.grows),
            (Fault::GrowNoSpace, c.grows),
        ];
        for (fault, calls) in faults {
            let mut met = 0;
            for n in 0..calls {
                met += u64::from(run_with_fault(&base, in_log, fault, n, &mut t));
            }
            // A failed append is absorbed (the commit checkpoints instead); a failed
            // reset or map sync is the step's error.
            t.met += met;
        }
    }
    eprintln!(
        "log errors: map calls {:?}, log calls {:?}; {} runs, {} failed steps ({} of them \
         visible), {} crash images reopened",
        counts[0], counts[1], t.runs, t.failed_steps, t.failed_visible, t.reopened
    );
    assert!(t.met > 0 && t.failed_visible > 0 && t.met < t.runs);
}

/// A crash while the log is created (its header torn or lost) leaves a log that opens as
/// a new one: nothing was ever logged in it.
#[test]
fn a_crash_while_the_log_is_created_leaves_a_log_that_opens() {
    let map_region = FaultRegion::with_capacity(MAP_CAPACITY);
    let step = Step::Txn((0..10).map(|i| put(i, 0)).collect(), Durability::Immediate);
    let map = Map::create(&map_region, OPTIONS).expect("create");
    let (db, _) = LoggedMap::open(map, None::<&FaultRegion>, POLICY).expect("no log");
    run_step(&db, &step).expect("commit");
    let model = contents(&db);
    drop(db);
    let map_image = map_region.durable_image();
    let mut images = 0;
    for cut in 0..8 {
        let (map, log) = regions(&map_image, &[]);
        // Only the log loses power: its creation is cut after `cut` calls.
        log.set_cut_after(Some(cut));
        let opened = LoggedMap::open(Map::open(&map).expect("map"), Some(&log), POLICY);
        let done = opened.is_ok();
        drop(opened);
        log.reset_faults();
        let mut modes = vec![CrashMode::DropAllUnsynced, CrashMode::KeepAllUnsynced];
        modes.extend([1, 5, 8, 30, 63].map(|keep_bytes| CrashMode::TornLast { keep_bytes }));
        modes.extend((0..4).map(CrashMode::RandomBytes));
        for mode in modes {
            let (m, l) = regions(&map_image, &log.crash_image(mode));
            let reopened = LoggedMap::open(Map::open(&m).expect("map"), Some(&l), POLICY);
            let (db, _) = reopened.unwrap_or_else(|e| {
                panic!(
                    "creation cut after {cut} calls (finished: {done}), {mode:?}: the log \
                     does not open: {e:?}"
                )
            });
            assert_eq!(contents(&db), model);
            run_step(&db, &Step::Txn(vec![put(99, 1)], Durability::Immediate))
                .expect("a logged commit");
            images += 1;
        }
    }
    assert!(images > 0);
}
