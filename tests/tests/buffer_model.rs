//! The entry buffer against a model: random sequences of add, update (growing,
//! shrinking, same length), remove, commit (durable and eventual), sync, abort, compact,
//! compact_step, reopen and tick, checked after every step against a `BTreeMap` of the
//! committed state and of the running transaction (see `hamtdb_tests::buffer_model`).
//!
//! A failure prints the shrunk operation list, e.g.
//! `[Add { len: 3, fill: 0 }, Commit, Update { pick: 1, change: Grow(9), fill: 0 }]`,
//! which replays with `replay(&ops, config)` in a unit test. Failing seeds are kept in
//! `tests/proptest-regressions/buffer_model.txt` (committed).

use hamtdb_core::{CompactionPolicy, VecRegion};
use hamtdb_tests::FaultRegion;
use hamtdb_tests::buffer_model::{BufferOp, Harness, ModelConfig, ModelRegion, SizeChange};
use hamtdb_tests::strategies::{buffer_ops, model_config};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

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
            "proptest-regressions/buffer_model.txt",
        ))),
        ..ProptestConfig::default()
    }
}

/// Runs `ops` on a fresh buffer in a region of kind `R`, checking after every step.
fn replay<R: ModelRegion>(ops: &[BufferOp], config: ModelConfig) -> Harness<R> {
    let mut harness = Harness::<R>::new(config);
    for op in ops {
        harness.apply(op);
    }
    // And the committed state survives a last reopen.
    harness.apply(&BufferOp::Reopen);
    harness
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn buffer_matches_model_on_vec_region(
        config in model_config(),
        ops in buffer_ops(60, false),
    ) {
        replay::<VecRegion>(&ops, config);
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// The same on a `FaultRegion` (no faults), with crashes: after each, the buffer must
    /// hold exactly the last durable commit or one published since (an eventual commit
    /// whose writes all survived), and go on from there.
    #[test]
    fn buffer_matches_model_on_fault_region_with_crashes(
        config in model_config(),
        ops in buffer_ops(60, true),
    ) {
        replay::<FaultRegion>(&ops, config);
    }
}

// ---- Scripted cases the generator finds only rarely -----------------------------------

/// Regression: `sync()` inside a transaction that had freed entries of an eventual
/// commit left their digest terms in the transaction, so the next durable commit wrote
/// a wrong digest and reopening fell back to the commit before it.
#[test]
fn sync_inside_a_transaction_keeps_the_next_commit() {
    use BufferOp::*;
    let ops = [
        Add { len: 0, fill: 0 },
        CommitEventual,
        Add { len: 0, fill: 0 },
        Sync,
        Commit,
        Reopen,
    ];
    let harness = replay::<VecRegion>(&ops, ModelConfig::default());
    assert_eq!(harness.pending().records.len(), 2);
}

/// Regression: compaction copied an id node after its records had filled the holes
/// below it, so the node landed at the end and the region grew.
#[test]
fn compaction_of_a_small_tree_packs_it() {
    use BufferOp::*;
    let ops = [AddMany { count: 20, len: 0 }, Remove { pick: 9 }, Compact];
    let harness = replay::<VecRegion>(&ops, ModelConfig::default());
    let stats = harness.buffer().stats().unwrap();
    // 19 headers and one 552-byte id node after the two meta sectors.
    assert_eq!(stats.used_end, 1024 + 19 * 32 + 552);
}

/// Every kind of update on records of the running transaction (in place) and on committed
/// ones (moved), with room from an extension factor of 1.5.
#[test]
fn updates_in_place_and_moved() {
    use BufferOp::*;
    let config = ModelConfig {
        extension_factor: 1.5,
        ..ModelConfig::default()
    };
    let ops = [
        Add { len: 40, fill: 1 },
        Add { len: 0, fill: 2 },
        Update {
            pick: 1,
            change: SizeChange::Grow(15),
            fill: 3,
        },
        Update {
            pick: 1,
            change: SizeChange::Shrink(50),
            fill: 4,
        },
        Update {
            pick: 5,
            change: SizeChange::Grow(7),
            fill: 5,
        },
        Commit,
        Update {
            pick: 1,
            change: SizeChange::Same,
            fill: 6,
        },
        Update {
            pick: 1,
            change: SizeChange::Grow(500),
            fill: 7,
        },
        Update {
            pick: 1,
            change: SizeChange::Grow(1),
            fill: 8,
        },
        Remove { pick: 5 },
        // pick 8 is id 2 whatever lives: removing it again is an error.
        Remove { pick: 8 },
        CommitEventual,
        Abort,
        Sync,
        Compact,
        Reopen,
    ];
    let harness = replay::<VecRegion>(&ops, config);
    assert_eq!(harness.pending().records.len(), 1);
    assert_eq!(harness.counts.compactions, 1);
}

/// More than 64 records: the id tree grows a level, then shrinks under compaction.
#[test]
fn id_tree_grows_and_compacts() {
    use BufferOp::*;
    let ops = [
        AddMany { count: 70, len: 5 },
        Commit,
        AddMany { count: 70, len: 0 },
        Commit,
        Remove { pick: 1 },
        Remove { pick: 5 },
        Remove { pick: 400 },
        Commit,
        CompactStep { budget: 64 },
        Compact,
        Reopen,
        AddMany { count: 3, len: 9 },
        Commit,
    ];
    let harness = replay::<FaultRegion>(&ops, ModelConfig::default());
    assert_eq!(harness.pending().records.len(), 140 - 3 + 3);
    assert_eq!(harness.pending().next_id, 144);
}

/// The time policy by the caller's clock and the space policy at commit.
#[test]
fn compaction_policies_follow_the_model() {
    use BufferOp::*;
    let config = ModelConfig {
        compaction: CompactionPolicy {
            space_percent: 30,
            space_min_bytes: 64,
            interval_secs: 10,
        },
        ..ModelConfig::default()
    };
    let ops = [
        AddMany { count: 10, len: 20 },
        Commit,
        Tick { advance: 9 },
        Tick { advance: 1 },
        Remove { pick: 1 },
        Commit,
        Remove { pick: 1 },
        Remove { pick: 1 },
        Remove { pick: 1 },
        Commit,
        Tick { advance: 3 },
    ];
    let harness = replay::<VecRegion>(&ops, config);
    // One by the clock at 10, one by space when 4 of 10 equal records were removed.
    assert_eq!(harness.counts.compactions, 2);
}
