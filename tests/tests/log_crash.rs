//! Power cuts at every write and sync of a map and its commit log ([`LoggedMap`], the
//! composition the std `Db` runs).
//!
//! Both regions share one power supply: a run's power goes after `n` mutations counted
//! across both, for every `n`. Then crash images of both regions (several modes each)
//! are reopened through `LoggedMap::open` (the map recovers, the log replays), and the
//! state must be exactly the model's state at one commit between the last acknowledged
//! durable one and the one in flight: every durable commit that returned is there, and
//! nothing of a commit is there in part. Then the database must keep working.
#![allow(unsafe_code)] // the power-cut wrapper forwards `Region::write` and `truncate`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use hamtdb_core::log::{LogPolicy, LoggedMap};
use hamtdb_core::{Durability, Error, Map, MapOptions, Region, RegionError, RegionOp};
use hamtdb_tests::map_model::{key, value};
use hamtdb_tests::{Counter, Counters, CrashMode, FaultRegion, POWER_CUT_CODE, crash_run};

const MAP_CAPACITY: usize = 512 << 10;
const LOG_CAPACITY: usize = 256 << 10;

const OPTIONS: MapOptions = MapOptions {
    inline_max: 16,
    seed: 0x0123_4567_89ab_cdef,
};

/// One power supply for both regions: mutations counted across them, refused once the
/// budget is spent.
#[derive(Default)]
struct Power {
    ops: u64,
    cut: Option<u64>,
}

/// A [`FaultRegion`] on a shared [`Power`].
#[derive(Clone)]
struct Powered {
    inner: Arc<FaultRegion>,
    power: Arc<Mutex<Power>>,
}

impl Powered {
    fn gate(&self, op: RegionOp) -> Result<(), RegionError> {
        let mut power = self.power.lock().unwrap_or_else(PoisonError::into_inner);
        if power.cut.is_some_and(|cut| power.ops >= cut) {
            return Err(RegionError::Io {
                op,
                code: POWER_CUT_CODE,
            });
        }
        power.ops += 1;
        Ok(())
    }
}

// SAFETY: forwards to `FaultRegion`, which keeps the three promises; refusing a
// mutation before it happens touches no memory.
unsafe impl Region for Powered {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), RegionError> {
        self.inner.read(offset, buf)
    }
    fn view(&self, offset: u64, len: usize) -> Result<&[u8], RegionError> {
        self.inner.view(offset, len)
    }
    unsafe fn write(&self, offset: u64, data: &[u8]) -> Result<(), RegionError> {
        self.gate(RegionOp::Write)?;
        // SAFETY: the caller keeps `Region::write`'s contract.
        unsafe { self.inner.write(offset, data) }
    }
    fn grow(&self, min_len: u64) -> Result<u64, RegionError> {
        self.gate(RegionOp::Grow)?;
        self.inner.grow(min_len)
    }
    unsafe fn truncate(&self, new_len: u64) -> Result<u64, RegionError> {
        self.gate(RegionOp::Truncate)?;
        // SAFETY: the caller keeps `Region::truncate`'s contract.
        unsafe { self.inner.truncate(new_len) }
    }
    fn sync(&self, offset: u64, len: u64) -> Result<(), RegionError> {
        self.gate(RegionOp::Sync)?;
        self.inner.sync(offset, len)
    }
}

type Db = LoggedMap<Powered, Powered>;
type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Clone, Debug)]
enum TOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

#[derive(Clone, Debug)]
enum Step {
    /// One transaction.
    Txn(Vec<TOp>, Durability),
    /// A transaction on an empty map built bottom-up (not logged).
    Fill(Vec<(Vec<u8>, Vec<u8>)>),
    /// `LoggedMap::sync`: what `Db::flush` runs.
    Flush,
    Checkpoint,
    /// Compaction steps then a shrink, as `Db::compact` runs them.
    Compact,
}

struct Workload {
    name: &'static str,
    policy: LogPolicy,
    setup: Vec<Step>,
    steps: Vec<Step>,
}

fn put(i: u32, round: u32) -> TOp {
    TOp::Put(
        key(i),
        value(
            [8, 40, 150][((i + round) % 3) as usize],
            (i + 7 * round) as u8,
        ),
    )
}

fn del(i: u32) -> TOp {
    TOp::Delete(key(i))
}

fn durable(ops: Vec<TOp>) -> Step {
    Step::Txn(ops, Durability::Immediate)
}

fn eventual(ops: Vec<TOp>) -> Step {
    Step::Txn(ops, Durability::Eventual)
}

fn loaded(range: core::ops::Range<u32>) -> Vec<Step> {
    vec![durable(range.map(|i| put(i, 0)).collect())]
}

fn workloads() -> Vec<Workload> {
    let policy = LogPolicy::default();
    vec![
        Workload {
            name: "(a) single-put durable commits",
            policy,
            setup: loaded(0..20),
            steps: (20..44)
                .map(|i| match i % 4 {
                    0 => durable(vec![put(i, 0)]),
                    1 => durable(vec![put(i - 20, 1)]),
                    2 => durable(vec![del(i - 20)]),
                    _ => durable(vec![del(1000 + i)]),
                })
                .collect(),
        },
        Workload {
            name: "(b) multi-op transactions",
            policy,
            setup: loaded(0..30),
            steps: (0..6)
                .map(|t| {
                    durable(
                        (0..8)
                            .map(|j| {
                                let i = t * 8 + j;
                                match j % 3 {
                                    0 => put(30 + i, 0),
                                    1 => put(i % 30, t + 1),
                                    _ => del((i * 7) % 30),
                                }
                            })
                            .collect(),
                    )
                })
                .collect(),
        },
        Workload {
            name: "(c) eventual commits, flush, checkpoint",
            policy,
            setup: loaded(0..20),
            steps: vec![
                eventual(vec![put(20, 0), put(1, 1)]),
                eventual(vec![del(2)]),
                Step::Flush,
                durable(vec![put(21, 0)]),
                eventual(vec![put(3, 2), put(3, 3)]),
                Step::Checkpoint,
                durable(vec![del(4), put(22, 1)]),
                eventual(vec![put(23, 0)]),
                durable(vec![put(24, 2)]),
                eventual(vec![del(5)]),
            ],
        },
        Workload {
            name: "(d) log wrap by size and by pending bytes",
            policy: LogPolicy {
                max_log_bytes: 1400,
                max_pending_bytes: 6 << 10,
                max_record_bytes: 1 << 20,
            },
            setup: loaded(0..20),
            steps: (0..24)
                .map(|i| durable(vec![put(i % 20, i / 20 + 1), put(40 + i, 1)]))
                .collect(),
        },
        Workload {
            name: "(e) compaction between logged commits",
            policy,
            setup: {
                let mut s = loaded(0..80);
                s.push(durable((0..40).map(|i| del(2 * i + 1)).collect()));
                s
            },
            steps: vec![
                durable(vec![put(1, 3)]),
                eventual(vec![put(3, 1), del(4)]),
                Step::Compact,
                durable(vec![put(5, 2)]),
                durable(vec![del(6)]),
                Step::Compact,
                eventual(vec![put(7, 1)]),
            ],
        },
        Workload {
            name: "(f) unlogged: a bottom-up fill, a transaction over the record bound",
            policy: LogPolicy {
                max_record_bytes: 600,
                ..LogPolicy::default()
            },
            setup: vec![],
            steps: vec![
                Step::Fill((0..30).map(|i| (key(i), value(40, i as u8))).collect()),
                durable(vec![put(30, 0)]),
                durable((31..45).map(|i| put(i, 2)).collect()),
                durable(vec![del(0)]),
                eventual(vec![put(1, 5)]),
                durable((0..10).map(|i| TOp::Put(key(i), value(100, 9))).collect()),
            ],
        },
    ]
}

fn apply_model(model: &Model, step: &Step) -> Option<Model> {
    let mut next = model.clone();
    match step {
        Step::Txn(ops, _) => {
            for op in ops {
                match op {
                    TOp::Put(k, v) => {
                        next.insert(k.clone(), v.clone());
                    }
                    TOp::Delete(k) => {
                        next.remove(k);
                    }
                }
            }
        }
        Step::Fill(pairs) => next.extend(pairs.iter().cloned()),
        _ => return None,
    }
    Some(next)
}

fn run_step(db: &Db, step: &Step) -> Result<(), Error> {
    match step {
        Step::Txn(ops, durability) => {
            let mut txn = db.begin_write();
            for op in ops {
                match op {
                    TOp::Put(k, v) => {
                        txn.put(k, v)?;
                    }
                    TOp::Delete(k) => {
                        txn.delete(k)?;
                    }
                }
            }
            txn.commit_with(*durability)
        }
        Step::Fill(pairs) => {
            let mut txn = db.begin_write();
            txn.fill(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))?;
            txn.commit()
        }
        Step::Flush => db.sync(),
        Step::Checkpoint => db.checkpoint(),
        Step::Compact => {
            for _ in 0..64 {
                if db.compact_step(4 << 10)? == 0 {
                    break;
                }
            }
            db.shrink().map(|_| ())
        }
    }
}

/// What a run went through: the model's state after each commit that returned, the
/// first of them a crash must keep, and the commit in flight when the power went.
struct Trace {
    states: Vec<Model>,
    floor: usize,
    in_flight: Option<Model>,
}

impl Trace {
    fn candidates(&self) -> impl Iterator<Item = &Model> {
        self.states[self.floor..].iter().chain(&self.in_flight)
    }
}

fn is_power_cut(e: &Error) -> bool {
    matches!(
        e,
        Error::Region(RegionError::Io {
            code: POWER_CUT_CODE,
            ..
        })
    )
}

/// Runs `steps`, stopping at the first error, which must be the power cut.
fn run(db: &Db, start: Model, steps: &[Step]) -> Trace {
    let mut trace = Trace {
        states: vec![start],
        floor: 0,
        in_flight: None,
    };
    for (i, step) in steps.iter().enumerate() {
        let last = trace.states.last().cloned().unwrap_or_default();
        let next = apply_model(&last, step);
        match run_step(db, step) {
            Ok(()) => {
                if let Some(next) = next {
                    trace.states.push(next);
                }
                // Durable once it returned: a durable commit, a flush, a checkpoint, a
                // compaction (it checkpoints).
                if !matches!(step, Step::Txn(_, Durability::Eventual)) {
                    trace.floor = trace.states.len() - 1;
                }
            }
            Err(e) => {
                assert!(is_power_cut(&e), "step {i} ({step:?}) failed with {e:?}");
                trace.in_flight = next;
                return trace;
            }
        }
    }
    trace
}

fn contents(db: &Db) -> Model {
    db.map().iter().expect("iterate").into_iter().collect()
}

/// Opens a database on copies of `map` and `log` images, with a fresh power supply.
fn open(map: &[u8], log: &[u8], policy: LogPolicy, cut: Option<u64>) -> (Db, Arc<Mutex<Power>>) {
    let power = Arc::new(Mutex::new(Power::default()));
    let region = |image: &[u8], capacity| Powered {
        inner: Arc::new(FaultRegion::from_image(image, capacity)),
        power: power.clone(),
    };
    let map = Map::open(region(map, MAP_CAPACITY)).expect("the map opens");
    let (db, _) = LoggedMap::open(map, Some(region(log, LOG_CAPACITY)), policy)
        .expect("the log opens and replays");
    let ops = power.lock().unwrap().ops;
    power.lock().unwrap().cut = cut.map(|n| ops + n);
    (db, power)
}

/// What the suite counts.
const COUNTERS: &[Counter] = &[
    Counter::new("cut points", "cut points"),
    Counter::new("images", "image pairs opened and checked"),
    Counter::new("records replayed", "records replayed"),
    Counter::new(
        "newer than the floor",
        "states newer than the last acknowledged durable commit",
    ),
];

fn mode_pairs() -> Vec<(CrashMode, CrashMode)> {
    use CrashMode::*;
    let mut pairs = vec![
        (DropAllUnsynced, DropAllUnsynced),
        (KeepAllUnsynced, KeepAllUnsynced),
        (DropAllUnsynced, KeepAllUnsynced),
        (KeepAllUnsynced, DropAllUnsynced),
    ];
    for keep in [0, 5, 30, 100] {
        pairs.push((KeepAllUnsynced, TornLast { keep_bytes: keep }));
        pairs.push((TornLast { keep_bytes: keep }, KeepAllUnsynced));
    }
    pairs.extend((0..3).map(|s| (Random(s), Random(s + 100))));
    pairs.push((RandomTornSubset(1), RandomBytes(2)));
    pairs
}

fn crash_at_every_point(w: &Workload) -> Counters {
    // The set-up, durable.
    let map_region = Powered {
        inner: Arc::new(FaultRegion::with_capacity(MAP_CAPACITY)),
        power: Arc::default(),
    };
    let log_region = Powered {
        inner: Arc::new(FaultRegion::with_capacity(LOG_CAPACITY)),
        power: map_region.power.clone(),
    };
    let map = Map::create(map_region.clone(), OPTIONS).expect("create");
    let (db, recovery) =
        LoggedMap::open(map, Some(log_region.clone()), w.policy).expect("create the log");
    assert!(recovery.created);
    let setup = run(&db, Model::new(), &w.setup);
    db.checkpoint().expect("checkpoint the set-up");
    let start = setup.states.last().cloned().unwrap_or_default();
    let map_image = map_region.inner.durable_image();
    let log_image = log_region.inner.durable_image();
    drop(db);

    let (probe, power) = open(&map_image, &log_image, w.policy, None);
    let base = power.lock().unwrap().ops;
    let full = run(&probe, start.clone(), &w.steps);
    assert!(full.in_flight.is_none());
    let count = power.lock().unwrap().ops - base;
    drop(probe);

    let mut totals = Counters::new(COUNTERS);
    for cut in 0..=count {
        let (db, _) = open(&map_image, &log_image, w.policy, Some(cut));
        let trace = run(&db, start.clone(), &w.steps);
        if cut == count {
            assert!(trace.in_flight.is_none(), "{}: uncut run failed", w.name);
        }
        totals.add("cut points", 1);
        let (map, log) = db.into_parts();
        let map = map.into_region();
        let log = log.expect("a log").into_region();
        for (map_mode, log_mode) in mode_pairs() {
            let map_image = map.inner.crash_image(map_mode);
            let log_image = log.inner.crash_image(log_mode);
            totals.add("images", 1);
            let db = open_checked(
                &map_image,
                &log_image,
                w,
                cut,
                map_mode,
                log_mode,
                &mut totals,
            );
            let state = contents(&db);
            assert!(
                trace.candidates().any(|c| *c == state),
                "{}: cut {cut} of {count}, {map_mode:?}/{log_mode:?}: the state is none of \
                 the commits from the last durable one ({} candidates)",
                w.name,
                trace.candidates().count()
            );
            if state != trace.states[trace.floor] {
                totals.add("newer than the floor", 1);
            }
            let report = db.map().check();
            assert!(report.is_ok(), "{}: cut {cut}: {report:?}", w.name);
            // Recovery is a sound base: a durable commit survives the next crash.
            if cut % 8 == 0 {
                resume(db, state, w);
            }
        }
    }
    totals
}

fn open_checked(
    map: &[u8],
    log: &[u8],
    w: &Workload,
    cut: u64,
    map_mode: CrashMode,
    log_mode: CrashMode,
    totals: &mut Counters,
) -> Db {
    let power = Arc::new(Mutex::new(Power::default()));
    let region = |image: &[u8], capacity| Powered {
        inner: Arc::new(FaultRegion::from_image(image, capacity)),
        power: power.clone(),
    };
    let opened = Map::open(region(map, MAP_CAPACITY))
        .and_then(|m| LoggedMap::open(m, Some(region(log, LOG_CAPACITY)), w.policy));
    match opened {
        Ok((db, recovery)) => {
            totals.add("records replayed", recovery.replayed);
            db
        }
        Err(e) => panic!(
            "{}: cut {cut}, {map_mode:?}/{log_mode:?}: reopen failed: {e:?}",
            w.name
        ),
    }
}

fn resume(db: Db, mut state: Model, w: &Workload) {
    let step = durable(vec![put(2000, 1), del(0)]);
    run_step(&db, &step).expect("a commit after recovery");
    state = apply_model(&state, &step).unwrap_or(state);
    let (map, log) = db.into_parts();
    let map = map.into_region().inner.durable_image();
    let log = log.expect("a log").into_region().inner.durable_image();
    let (db, _) = open(&map, &log, w.policy, None);
    assert_eq!(
        contents(&db),
        state,
        "{}: the commit after recovery",
        w.name
    );
}

#[test]
fn every_power_cut_of_map_or_log_recovers_an_acknowledged_state() {
    let results = crash_run::one_thread_each(workloads(), |w| w.name, crash_at_every_point);
    let sum = crash_run::report("log crash", COUNTERS, &results);
    assert!(
        sum.get("records replayed") > 0,
        "no crash image ever needed the log"
    );
}
