//! The persistent map against a model: random sequences of put, delete and get (in a
//! write transaction and on the map), durable and eventual commits, abort, sync,
//! compact and compaction steps, reopen, snapshots opened, checked and dropped across
//! commits, and (in the second property) power cuts — run by
//! `hamtdb_tests::map_model::MapHarness`, which checks every answer against a model of
//! the transaction, the last commit and every open snapshot, and after every step runs
//! `check()`, `iter()`, `get` of every key and `stats()` on the committed state.
//!
//! Keys come from a tiny key space (so puts overwrite and deletes hit) and the hashers
//! include deliberately colliding ones: `KeyBytes` (the key is the hash: short keys share
//! deep paths, `"a"` and `"a\0"` collide), `FewBits` (everything collides below depth 0)
//! and `Colliding` (one collision node under a chain of 21 branches).
//!
//! A failure prints the shrunk operation list, e.g.
//! `[Put(b"a", b""), Commit, SnapshotOpen, Delete(b"a"), Compact, SnapshotCheck(0)]`,
//! which replays with `replay(&ops, options, hasher)` in a test below. Failing seeds are
//! kept in `tests/proptest-regressions/map_model.txt` (committed).

use hamtdb_core::{Durability, Map, MapOptions, VecRegion};
use hamtdb_tests::map_model::{MapHarness, MapOp, TestHasher, key, value};
use hamtdb_tests::strategies::{map_ops, map_options, test_hasher};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use MapOp::*;

/// Room for the longest sequence with its snapshots held open.
const CAPACITY: usize = 2 << 20;

/// `cases` cases, or `PROPTEST_CASES` when set (for long runs).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        // Relative to the package root, where `cargo test` runs integration tests.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/map_model.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// Runs `ops` on a fresh map, checking the whole state after every step, then reopens it
/// and checks the committed state once more.
fn replay(ops: &[MapOp], options: MapOptions, hasher: TestHasher) -> MapHarness {
    let mut harness = MapHarness::new(CAPACITY, options, hasher);
    harness.check_each_op = true;
    harness.apply(ops);
    harness.apply(&[Reopen, Check]);
    harness
}

proptest! {
    #![proptest_config(config(192))]

    #[test]
    fn map_matches_model(
        options in map_options(),
        hasher in test_hasher(),
        ops in map_ops(80, false),
    ) {
        replay(&ops, options, hasher);
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// With power cuts: after each, the map must hold exactly the last durable commit
    /// or one published since, and go on from there.
    #[test]
    fn map_matches_model_with_crashes(
        options in map_options(),
        hasher in test_hasher(),
        ops in map_ops(80, true),
    ) {
        replay(&ops, options, hasher);
    }
}

// ---- Scripted cases the generator finds only rarely -----------------------------------

fn put(key: &[u8], len: usize) -> MapOp {
    Put {
        key: key.to_vec(),
        value: value(len, key.len() as u8),
    }
}

fn delete(key: &[u8]) -> MapOp {
    Delete { key: key.to_vec() }
}

const SMALL_INLINE: MapOptions = MapOptions {
    inline_max: 8,
    seed: 7,
};

/// Under `KeyBytes`, `"a"`, `"a\0"` and `"a\0\0"` hash alike: one collision node 21
/// levels down, which must collapse back to a plain pair as its keys are deleted, in a
/// transaction, across commits and under compaction, with a snapshot holding the old
/// shape.
#[test]
fn collision_node_grows_and_collapses() {
    let ops = [
        put(b"a", 3),
        put(b"a\0", 40),
        put(b"b", 0),
        Commit,
        SnapshotOpen,
        put(b"a\0\0", 8),
        delete(b"a"),
        Get { key: b"a".to_vec() },
        Commit,
        SnapshotOpen,
        delete(b"a\0"),
        Commit,
        Compact,
        SnapshotCheck { pick: 0 },
        SnapshotCheck { pick: 1 },
        delete(b"a\0\0"),
        Abort,
        Reopen,
        delete(b"a\0\0"),
        Commit,
        Check,
    ];
    let h = replay(&ops, SMALL_INLINE, TestHasher::KeyBytes);
    assert_eq!(h.committed().len(), 1);
    assert!(h.committed().contains_key(&b"b"[..]));
}

/// Every key in one collision node (`Colliding`): inserts, overwrites between inline
/// and value-entry values, deletes down to one key and to none.
#[test]
fn one_collision_node_for_every_key() {
    let mut ops: Vec<MapOp> = (0..30)
        .map(|i| put(&key(i), (i as usize * 7) % 40))
        .collect();
    ops.push(Commit);
    ops.extend((0..30).step_by(2).map(|i| put(&key(i), 60)));
    ops.push(CommitEventual);
    ops.push(SnapshotOpen);
    ops.extend((0..29).map(|i| delete(&key(i))));
    ops.push(Commit);
    ops.push(SnapshotCheck { pick: 0 });
    ops.push(Compact);
    ops.push(Reopen);
    ops.push(delete(&key(29)));
    ops.push(Commit);
    let h = replay(&ops, SMALL_INLINE, TestHasher::Colliding);
    assert!(h.committed().is_empty());
    let stats = h.map().expect("open").stats().unwrap();
    assert_eq!(stats.entries, 0);
}

/// Many keys under `FewBits`: eight collision nodes of dozens of keys each, and the
/// depth histogram says so.
#[test]
fn few_bits_builds_deep_collision_nodes() {
    let mut ops: Vec<MapOp> = (0..200).map(|i| put(&key(i), 4)).collect();
    ops.push(Commit);
    let h = replay(&ops, SMALL_INLINE, TestHasher::FewBits);
    let stats = h.map().expect("open").stats().unwrap();
    assert_eq!(stats.entries, 200);
    // Every `key-N` starts with 'k' (0x6b): one slot at depth 0, so one collision node
    // at the bottom, under a chain of branches.
    assert_eq!(
        stats.depth_histogram[21], 200,
        "{:?}",
        stats.depth_histogram
    );
}

/// Regression (found by `map_matches_model_with_crashes`): a compaction step with a
/// snapshot open moved a value entry down into the hole left by an older version, which
/// left no room below for the node pointing at it; the rewritten node went past the used
/// end, and the snapshot pinned the places the step freed, so `compact` left the used
/// end higher than it found it (1528 → 1624 bytes).
#[test]
fn compaction_with_a_snapshot_open_never_raises_the_used_end() {
    let options = MapOptions {
        inline_max: 0,
        seed: 0,
    };
    let map = Map::create(VecRegion::with_capacity(1 << 20), options).unwrap();
    map.put(b"", &value(49, 0)).unwrap();
    let mut txn = map.begin_write();
    txn.put(b"", b"").unwrap();
    txn.commit_with(Durability::Eventual).unwrap();
    let snapshot = map.begin_read();
    map.put(b"", &value(57, 0)).unwrap();
    let report = map.compact().unwrap();
    assert!(
        report.used_end_after <= report.used_end_before,
        "{report:?}"
    );
    assert_eq!(snapshot.get(b""), Ok(Some(&b""[..])));
    drop(snapshot);
    // Without the snapshot the same compaction packs the map.
    let report = map.compact().unwrap();
    assert!(report.used_end_after < report.used_end_before, "{report:?}");
    assert!(map.check().is_ok());
    assert_eq!(map.get(b"").unwrap().as_deref(), Some(&value(57, 0)[..]));
}
