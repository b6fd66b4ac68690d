//! Arbitrary operation sequences on the entry buffer, over a `FaultRegion`, checked after
//! every step against the model of `hamtdb_tests::buffer_model`: every `get`, `header`,
//! `ids()`, `len()` and `stats()` agree with it, compaction reclaims what it must, and
//! after a crash (an image of any crash mode, chosen by the input) the reopened buffer
//! holds exactly the last durable commit or one published after it — never a torn or
//! mixed state — and goes on from there.
#![no_main]

use arbitrary::Arbitrary;
use hamtdb_core::CompactionPolicy;
use hamtdb_tests::FaultRegion;
use hamtdb_tests::buffer_model::{BufferOp, Harness, ModelConfig, SizeChange};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Change {
    Grow(u16),
    Shrink(u16),
    Same,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Add { len: u16, fill: u8 },
    AddMany { count: u8, len: u8 },
    Update { pick: u16, change: Change, fill: u8 },
    Remove { pick: u16 },
    Commit,
    CommitEventual,
    Sync,
    Abort,
    Compact,
    CompactStep { budget: u16 },
    Reopen,
    Tick { advance: u8 },
    Crash { seed: u64 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Extension factor 1.0, 1.25, 1.5 or 1.75.
    factor: u8,
    /// Space percentage, minimum removed bytes (in 64-byte units), interval in seconds.
    policy: Option<(u8, u8, u8)>,
    ops: Vec<Op>,
}

/// Bounded sizes keep every input within the harness's region.
fn op(op: &Op) -> BufferOp {
    match *op {
        Op::Add { len, fill } => BufferOp::Add {
            len: len % 4096,
            fill,
        },
        Op::AddMany { count, len } => BufferOp::AddMany {
            count: count % 100,
            len: u16::from(len),
        },
        Op::Update {
            pick,
            ref change,
            fill,
        } => BufferOp::Update {
            pick,
            change: match *change {
                Change::Grow(n) => SizeChange::Grow(n % 2048),
                Change::Shrink(n) => SizeChange::Shrink(n),
                Change::Same => SizeChange::Same,
            },
            fill,
        },
        Op::Remove { pick } => BufferOp::Remove { pick },
        Op::Commit => BufferOp::Commit,
        Op::CommitEventual => BufferOp::CommitEventual,
        Op::Sync => BufferOp::Sync,
        Op::Abort => BufferOp::Abort,
        Op::Compact => BufferOp::Compact,
        Op::CompactStep { budget } => BufferOp::CompactStep {
            budget: u32::from(budget),
        },
        Op::Reopen => BufferOp::Reopen,
        Op::Tick { advance } => BufferOp::Tick {
            advance: u16::from(advance),
        },
        Op::Crash { seed } => BufferOp::Crash { seed },
    }
}

fuzz_target!(|input: Input| {
    let compaction = match input.policy {
        None => CompactionPolicy::default(),
        Some((percent, min, interval)) => CompactionPolicy {
            space_percent: percent % 101,
            space_min_bytes: u64::from(min) * 64,
            interval_secs: u32::from(interval),
        },
    };
    let config = ModelConfig {
        extension_factor: 1.0 + f64::from(input.factor % 4) * 0.25,
        compaction,
        check_each_op: true,
    };
    let mut harness = Harness::<FaultRegion>::new(config);
    for o in input.ops.iter().take(48) {
        harness.apply(&op(o));
    }
});
