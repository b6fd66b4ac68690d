//! Power cuts at every region operation of scripted map workloads.
//!
//! For each workload: run it once on a `FaultRegion` to count its mutations; then, for
//! every cut point `n`, run it on a fresh region whose power goes after `n` mutations,
//! stop at the first error (which must be the power cut), and open crash images of
//! several modes. Each must open, pass `check()`, and hold exactly the last durable
//! commit's pairs — or, when unsynced writes may survive, those of a commit published
//! after it: an eventual commit, or the commit in flight when the power went if its meta
//! slot was already written. Nothing else. The map must then keep working from there.

use std::collections::HashMap;
use std::sync::Arc;

use hamtdb_core::hash::murmur3_x64_128;
use hamtdb_core::{Error, Map, MapOptions, RegionError};
use hamtdb_tests::map_model::{MapHarness, MapOp, Model, TestHasher, key, value};
use hamtdb_tests::{Counter, Counters, CrashMode, FaultRegion, POWER_CUT_CODE, crash_run};

use MapOp::*;

/// Room for every workload.
const CAPACITY: usize = 512 << 10;

/// Values above 16 bytes get entries of their own.
const OPTIONS: MapOptions = MapOptions {
    inline_max: 16,
    seed: 0x0123_4567_89ab_cdef,
};

/// A scripted workload: the power cuts fall among `ops`, after `setup`.
struct Workload {
    name: &'static str,
    hasher: TestHasher,
    setup: Vec<MapOp>,
    ops: Vec<MapOp>,
}

/// The length of value `i`'s `round`-th version: inline (8), a small value entry (40) or
/// a larger one (150), in turn.
fn value_len(i: u32, round: u32) -> usize {
    [8, 40, 150][((i + round) % 3) as usize]
}

fn put(i: u32, round: u32) -> MapOp {
    Put {
        key: key(i),
        value: value(value_len(i, round), (i + 7 * round) as u8),
    }
}

fn delete(i: u32) -> MapOp {
    Delete { key: key(i) }
}

/// Puts of keys `range` (version 0), committed.
fn loaded(range: core::ops::Range<u32>) -> Vec<MapOp> {
    let mut ops: Vec<MapOp> = range.map(|i| put(i, 0)).collect();
    ops.push(Commit);
    ops
}

fn workloads() -> Vec<Workload> {
    let murmur = TestHasher::Murmur;
    vec![
        Workload {
            name: "(a) bulk insert in one transaction",
            hasher: murmur,
            setup: vec![],
            ops: {
                let mut ops: Vec<MapOp> = (0..200).map(|i| put(i, 0)).collect();
                ops.push(Put {
                    key: Vec::new(),
                    value: value(30, 1),
                });
                ops.push(Commit);
                ops
            },
        },
        Workload {
            name: "(b) many small durable commits",
            hasher: murmur,
            setup: loaded(0..20),
            ops: (20..60)
                .flat_map(|i| match i % 4 {
                    0 => vec![put(i, 1), Commit],
                    1 => vec![put(i, 1), delete(i - 20), Commit],
                    2 => vec![MapPut {
                        key: key(i),
                        value: value(value_len(i, 2), i as u8),
                    }],
                    _ => vec![MapDelete { key: key(i - 20) }, put(i, 0), Commit],
                })
                .collect(),
        },
        Workload {
            name: "(c) overwrites, inline and large values",
            hasher: murmur,
            setup: loaded(0..60),
            ops: {
                let mut ops = Vec::new();
                for round in 1..4 {
                    // Each round moves a value between inline, small and large entries.
                    ops.extend(
                        (0..60)
                            .filter(|i| i % 2 == round % 2)
                            .map(|i| put(i, round)),
                    );
                    ops.push(Commit);
                }
                // Overwrite the same key twice in one transaction.
                ops.extend([put(5, 7), put(5, 8), put(6, 8), Commit]);
                ops
            },
        },
        Workload {
            name: "(d) delete half",
            hasher: murmur,
            setup: loaded(0..120),
            ops: {
                let mut ops: Vec<MapOp> = (0..60).map(|i| delete(2 * i)).collect();
                ops.insert(30, Commit);
                ops.push(Commit);
                ops
            },
        },
        Workload {
            name: "(e) compaction after deleting half",
            hasher: murmur,
            setup: {
                let mut ops = loaded(0..120);
                ops.extend((0..60).map(|i| delete(2 * i + 1)));
                ops.push(Commit);
                ops
            },
            ops: vec![Compact, put(1, 3), Commit, Compact],
        },
        Workload {
            name: "(f) eventual commits, then sync",
            hasher: murmur,
            setup: loaded(0..40),
            ops: vec![
                put(40, 0),
                put(41, 0),
                CommitEventual,
                delete(3),
                put(4, 1),
                CommitEventual,
                put(5, 2),
                CommitEventual,
                Sync,
                delete(6),
                put(42, 1),
                CommitEventual,
                delete(7),
                delete(8),
                CommitEventual,
                Sync,
                put(43, 2),
                CommitEventual,
                put(44, 0),
                Commit,
            ],
        },
        Workload {
            name: "(g) a snapshot open across commits",
            hasher: murmur,
            setup: loaded(0..60),
            ops: vec![
                SnapshotOpen,
                put(60, 0),
                put(1, 1),
                delete(2),
                Commit,
                SnapshotCheck { pick: 0 },
                SnapshotOpen,
                delete(3),
                delete(4),
                put(5, 2),
                CommitEventual,
                SnapshotCheck { pick: 0 },
                SnapshotCheck { pick: 1 },
                MapPut {
                    key: key(61),
                    value: value(100, 9),
                },
                // Space the snapshots reach must survive the compaction.
                Compact,
                SnapshotCheck { pick: 0 },
                SnapshotCheck { pick: 1 },
                SnapshotDrop { pick: 0 },
                put(6, 1),
                Commit,
                SnapshotCheck { pick: 0 },
                SnapshotDrop { pick: 0 },
                Compact,
            ],
        },
        Workload {
            name: "(h) collision nodes",
            hasher: TestHasher::FewBits,
            setup: loaded(0..24),
            ops: vec![
                put(24, 1),
                put(3, 1),
                delete(9),
                Commit,
                delete(10),
                delete(11),
                put(12, 2),
                CommitEventual,
                Compact,
            ],
        },
        Workload {
            name: "(i) a first load built bottom-up (fill)",
            hasher: murmur,
            setup: vec![],
            ops: vec![
                Fill {
                    // Repeats of keys 0..40 with other values: the last one wins and the
                    // value entries of the others are freed before the commit.
                    pairs: (0..160)
                        .chain(0..40)
                        .enumerate()
                        .map(|(n, i)| {
                            let round = u32::from(n >= 160);
                            (key(i), value(value_len(i, round), (i + 7 * round) as u8))
                        })
                        .collect(),
                },
                put(200, 0),
                Commit,
                delete(3),
                put(4, 2),
                Commit,
            ],
        },
    ]
}

/// The crash images taken at every cut point.
fn modes() -> Vec<CrashMode> {
    let mut modes = vec![CrashMode::DropAllUnsynced, CrashMode::KeepAllUnsynced];
    // The last write is an entry header (32 bytes), a payload, a checksum (4) or a meta
    // slot (256): tear each kind inside.
    modes.extend([0, 2, 17, 100, 255].map(|keep_bytes| CrashMode::TornLast { keep_bytes }));
    modes.extend((0..3).map(CrashMode::Random));
    modes.push(CrashMode::RandomTornSubset(0));
    modes.push(CrashMode::RandomBytes(0));
    modes
}

/// A workload's set-up map, committed durably: its image and its model.
struct Start {
    image: Vec<u8>,
    state: Model,
}

fn start(workload: &Workload) -> Start {
    let mut h = MapHarness::new(CAPACITY, OPTIONS, workload.hasher);
    h.check_each_op = true;
    h.apply(&workload.setup);
    h.apply(&[Sync]);
    let image = h.region().crash_image(CrashMode::DropAllUnsynced);
    assert_eq!(image, h.region().volatile_image(), "the setup is durable");
    Start {
        image,
        state: h.committed().clone(),
    }
}

/// The workload's starting map, opened on the set-up image, whose power goes after
/// `cut` further mutations (`None`: never); and the number of mutations made before.
fn harness(workload: &Workload, start: &Start, cut: Option<u64>) -> (MapHarness, u64) {
    let region = Arc::new(FaultRegion::from_image(&start.image, CAPACITY));
    let map = Map::open_with_hasher(region, workload.hasher).expect("open the set-up image");
    let h = MapHarness::resume(map, start.state.clone(), workload.hasher, CAPACITY);
    let base = h.region().op_count();
    h.region().set_cut_after(cut.map(|n| base + n));
    (h, base)
}

/// What the map must still do after recovery.
fn after_recovery() -> Vec<MapOp> {
    vec![
        put(1000, 1),
        put(1, 2),
        delete(0),
        Commit,
        Reopen,
        Check,
        Compact,
        put(1001, 0),
        CommitEventual,
        Check,
    ]
}

/// What the suite counts.
const COUNTERS: &[Counter] = &[
    Counter::new("cut points", "cut points"),
    Counter::new("images", "crash images"),
    // The others were byte-identical to one already opened, whose state was checked to be
    // acceptable at this cut point too.
    Counter::new("distinct", "distinct ones opened and checked"),
    // Images that held a state newer than the last durable commit.
    Counter::new("newer", "held a commit newer than the last durable one"),
    Counter::new("resumed", "recoveries went on working"),
];

fn is_power_cut(e: &Error) -> bool {
    matches!(
        e,
        Error::Region(RegionError::Io {
            code: POWER_CUT_CODE,
            ..
        })
    )
}

/// Cuts the power at every mutation of `workload` and checks every crash image.
fn crash_at_every_point(workload: &Workload) -> Counters {
    let mut totals = Counters::new(COUNTERS);
    let start = start(workload);
    let (mut probe, base) = harness(workload, &start, None);
    probe.check_each_op = true;
    probe.apply(&workload.ops);
    let count = probe.region().op_count() - base;
    assert!(count > 0, "{}: no mutations", workload.name);
    let finished: Model = probe.committed().clone();
    // Images already opened: a digest of their bytes, and the state they held. Opening is
    // deterministic, so an identical image holds the same state again.
    let mut seen: HashMap<(u64, u64), Model> = HashMap::new();
    for cut in 0..=count {
        let (mut h, _) = harness(workload, &start, Some(cut));
        match h.run(&workload.ops) {
            Ok(()) => assert_eq!(cut, count, "{}: no power cut at {cut}", workload.name),
            Err((i, e)) => assert!(
                cut < count && is_power_cut(&e),
                "{}: cut {cut} of {count}: op {i} ({:?}) failed with {e:?}",
                workload.name,
                workload.ops[i]
            ),
        }
        if cut == count {
            assert_eq!(h.committed(), &finished, "{}: uncut run", workload.name);
        }
        totals.add("cut points", 1);
        for mode in modes() {
            let image = h.region().crash_image(mode);
            let digest = murmur3_x64_128(&image, image.len() as u32);
            let candidates = h.crash_candidates(mode);
            totals.add("images", 1);
            let state = match seen.get(&digest) {
                Some(state) => {
                    assert!(
                        candidates.contains(&state),
                        "{}: cut {cut} of {count}, {mode:?}: an image seen before holds a \
                         state not acceptable here",
                        workload.name
                    );
                    state.clone()
                }
                None => {
                    let (map, state) = h.open_crash_image(&image, mode).unwrap_or_else(|why| {
                        panic!("{}: cut {cut} of {count}, {mode:?}: {why}", workload.name)
                    });
                    totals.add("distinct", 1);
                    seen.insert(digest, state.clone());
                    // Recovery is a sound base for more work: checked where a newer state
                    // came back, and at every 16th cut point (it is the slow part).
                    let newer = state != *h.durable();
                    if newer || (cut % 16 == 0 && mode == CrashMode::KeepAllUnsynced) {
                        let mut resumed =
                            MapHarness::resume(map, state.clone(), h.hasher(), CAPACITY);
                        resumed.apply(&after_recovery());
                        totals.add("resumed", 1);
                    }
                    state
                }
            };
            if state != *h.durable() {
                totals.add("newer", 1);
            }
        }
    }
    totals
}

#[test]
fn every_power_cut_recovers_the_last_durable_commit() {
    let results = crash_run::one_thread_each(workloads(), |w| w.name, crash_at_every_point);
    let sum = crash_run::report("map crash", COUNTERS, &results);
    assert!(
        sum.get("newer") > 0,
        "no image ever kept an in-flight or eventual commit"
    );
}
