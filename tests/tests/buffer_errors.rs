//! Injected region errors while the power stays on: every write, sync, grow and truncate
//! of scripted workloads fails in turn (cleanly, or as a torn write). The buffer must
//! report the error and stay sound: a failed change rolls the transaction back (a
//! failed commit can be retried), nothing half-made is ever committed, and the buffer
//! goes on working — later writes reuse freed space without overwriting anything the
//! committed state still reaches.

use hamtdb_core::{Buffer, Error, RegionError};
use hamtdb_tests::buffer_model::{
    BufferOp, Harness, ModelConfig, ModelState, SizeChange, check_state,
};
use hamtdb_tests::{Fault, FaultRegion, INJECTED_CODE};

use BufferOp::*;

const CAPACITY: usize = 512 << 10;

fn update(id: u16, change: SizeChange, fill: u8) -> BufferOp {
    Update {
        pick: id * 4,
        change,
        fill,
    }
}

fn workloads() -> Vec<(&'static str, ModelConfig, Vec<BufferOp>)> {
    let config = ModelConfig {
        check_each_op: false,
        ..ModelConfig::default()
    };
    vec![
        (
            "two-level id tree",
            config,
            vec![
                AddMany { count: 70, len: 4 },
                Commit,
                // Each of these copies a leaf and the root.
                Add { len: 30, fill: 1 },
                update(3, SizeChange::Grow(40), 2),
                Remove { pick: 5 * 4 },
                update(66, SizeChange::Same, 3),
                Commit,
                Add { len: 9, fill: 4 },
                CommitEventual,
                update(71, SizeChange::Grow(100), 5),
                Sync,
                Commit,
            ],
        ),
        (
            "compaction",
            ModelConfig {
                extension_factor: 1.5,
                ..config
            },
            vec![
                AddMany { count: 30, len: 12 },
                Commit,
                Remove { pick: 2 * 4 },
                Remove { pick: 4 * 4 },
                Remove { pick: 6 * 4 },
                Remove { pick: 20 * 4 },
                update(1, SizeChange::Shrink(10), 6),
                Commit,
                Compact,
                Add { len: 3, fill: 7 },
                CompactStep { budget: 64 },
                Commit,
            ],
        ),
    ]
}

/// Work after the error: it allocates, so it would overwrite anything freed too early.
fn afterwards() -> Vec<BufferOp> {
    vec![
        AddMany { count: 12, len: 40 },
        Update {
            pick: 1,
            change: SizeChange::Grow(600),
            fill: 0xE1,
        },
        Commit,
        Reopen,
        Compact,
        Reopen,
    ]
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

#[test]
fn every_injected_error_leaves_a_sound_buffer() {
    let mut injected = 0u64;
    for (name, config, ops) in workloads() {
        let probe = {
            let mut h = Harness::<FaultRegion>::on(FaultRegion::with_capacity(CAPACITY), config);
            let base = h.buffer().region().op_counts();
            for op in &ops {
                h.apply(op);
            }
            let end = h.buffer().region().op_counts();
            [
                end.writes - base.writes,
                end.syncs - base.syncs,
                end.grows - base.grows,
                end.truncates - base.truncates,
            ]
        };
        let faults = [
            (Fault::Write, probe[0]),
            (Fault::TornWrite { keep_bytes: 5 }, probe[0]),
            (Fault::Sync, probe[1]),
            (Fault::Grow, probe[2]),
            (Fault::GrowNoSpace, probe[2]),
            (Fault::Truncate, probe[3]),
        ];
        for (fault, count) in faults {
            for n in 0..count {
                let mut h =
                    Harness::<FaultRegion>::on(FaultRegion::with_capacity(CAPACITY), config);
                h.buffer().region().inject(fault, n);
                let mut failed = None;
                for op in &ops {
                    if let Err(e) = h.try_apply(op) {
                        assert!(is_injected(&e), "{name}: {fault:?} #{n}: {op:?}: {e:?}");
                        failed = Some(op.clone());
                        break;
                    }
                }
                let Some(op) = failed else {
                    // A truncate that fails is not reported: the tail stays, harmlessly.
                    assert!(
                        matches!(fault, Fault::Truncate),
                        "{name}: {fault:?} #{n} fired nowhere"
                    );
                    continue;
                };
                injected += 1;
                let ctx = format!("{name}: {fault:?} at #{n}, during {op:?}");
                // A failed commit (or sync, which leaves the transaction alone) is
                // followed by a commit of the transaction; any other change was rolled
                // back.
                let expected: Vec<ModelState> = match op {
                    Commit | CommitEventual | Sync => vec![h.pending().clone()],
                    _ => core::iter::once(h.committed())
                        .chain(h.in_flight())
                        .cloned()
                        .collect(),
                };
                let mut buffer = into_buffer(h);
                buffer
                    .commit()
                    .unwrap_or_else(|e| panic!("{ctx}: commit after the error: {e:?}"));
                let state = expected
                    .iter()
                    .find(|s| check_state(&buffer, s).is_ok())
                    .unwrap_or_else(|| {
                        let why = check_state(&buffer, &expected[0]).unwrap_err();
                        panic!("{ctx}: after the error the buffer is neither rolled back nor committed: {why}")
                    });
                let state = state.clone();
                buffer = Buffer::open(buffer.into_region())
                    .unwrap_or_else(|e| panic!("{ctx}: reopen: {e:?}"));
                let mut resumed = Harness::resume(
                    buffer,
                    state,
                    ModelConfig {
                        check_each_op: true,
                        ..config
                    },
                );
                for op in afterwards() {
                    resumed.apply(&op);
                }
            }
        }
    }
    eprintln!(
        "buffer errors: {injected} injected errors, each followed by a commit, reopen and more work"
    );
    assert!(injected > 300);
}

fn into_buffer(h: Harness<FaultRegion>) -> Buffer<FaultRegion> {
    h.into_buffer()
}

/// Regression: an add whose id-tree path copy failed at the root (after the leaf was
/// copied and the old leaf freed) left the transaction half-made; committing it freed
/// the leaf the committed root still pointed to, and the next records overwrote it.
#[test]
fn a_failed_add_never_commits_a_half_copied_path() {
    let mut b = Buffer::create(
        FaultRegion::with_capacity(CAPACITY),
        ModelConfig::default().options(),
    )
    .unwrap();
    let ids: Vec<_> = (0..70u8).map(|i| b.add(&[i; 4]).unwrap()).collect();
    b.commit().unwrap();
    // The record's header and payload, the leaf copy's header and payload: then the
    // root copy fails.
    b.region().inject(Fault::Write, 4);
    assert!(is_injected(&b.add(b"never").unwrap_err()));
    b.commit().unwrap();
    // Reuse whatever was freed: 520-byte records fit a freed 552-byte id node.
    for i in 0..4u8 {
        b.add(&[0xF0 | i; 520]).unwrap();
    }
    b.commit().unwrap();
    let b = Buffer::open(b.into_region()).expect("reopen");
    for (i, &id) in ids.iter().enumerate() {
        assert_eq!(b.get(id).unwrap(), &[i as u8; 4], "record {}", id.get());
    }
    assert_eq!(b.len(), 74);
}
