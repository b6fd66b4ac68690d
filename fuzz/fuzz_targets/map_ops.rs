//! Arbitrary operation sequences on the persistent map, over a `FaultRegion`, checked
//! after every step against the model of `hamtdb_tests::map_model`: every answer of
//! put, delete, get and contains_key, the write transaction's view, open snapshots, and
//! the committed state in full (`check`, `iter`, `get` of every key, `stats`) agree with
//! it. Reopens go through `Map::open`; after a crash (an image of any crash mode, chosen
//! by the input) the reopened map holds exactly the last durable commit or one published
//! after it, and goes on from there. Keys come from a tiny key space and the hasher may
//! be a colliding one, so deep paths and collision nodes are the common case.
#![no_main]

use arbitrary::Arbitrary;
use hamtdb_core::MapOptions;
use hamtdb_tests::map_model::{MapHarness, MapOp, TestHasher, value};
use libfuzzer_sys::fuzz_target;

/// A key: `Small` is 0 to 3 bytes of five symbols (156 keys), `Bytes` anything short.
#[derive(Arbitrary, Debug)]
enum Key {
    Small(u8, u8),
    Bytes(Vec<u8>),
}

impl Key {
    fn bytes(&self) -> Vec<u8> {
        const SYMBOLS: [u8; 5] = [0, 1, b'a', b'b', 0xFF];
        match self {
            Key::Small(len, digits) => {
                let mut d = *digits;
                (0..len % 4)
                    .map(|_| {
                        let s = SYMBOLS[usize::from(d % 5)];
                        d /= 5;
                        s
                    })
                    .collect()
            }
            Key::Bytes(b) => b.iter().copied().take(64).collect(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Put { key: Key, len: u16, fill: u8 },
    Delete { key: Key },
    Get { key: Key },
    Fill { pairs: Vec<(Key, u16, u8)> },
    Commit,
    CommitEventual,
    Abort,
    MapPut { key: Key, len: u16, fill: u8 },
    MapDelete { key: Key },
    Sync,
    Compact,
    CompactStep { budget: u16 },
    Reopen,
    Crash { seed: u64 },
    SnapshotOpen,
    SnapshotCheck { pick: u8 },
    SnapshotDrop { pick: u8 },
    Check,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// 0: Murmur, 1: KeyBytes, 2: FewBits, 3: Colliding.
    hasher: u8,
    /// Inline limit 0, 8, 16 or 512.
    inline: u8,
    seed: u64,
    ops: Vec<Op>,
}

/// Values up to 3000 bytes keep every input within the harness's region.
fn op(op: &Op) -> MapOp {
    let val = |len: u16, fill: u8| value(usize::from(len % 3000), fill);
    match op {
        Op::Put { key, len, fill } => MapOp::Put {
            key: key.bytes(),
            value: val(*len, *fill),
        },
        Op::Delete { key } => MapOp::Delete { key: key.bytes() },
        Op::Get { key } => MapOp::Get { key: key.bytes() },
        Op::Fill { pairs } => MapOp::Fill {
            pairs: pairs
                .iter()
                .take(32)
                .map(|(key, len, fill)| (key.bytes(), val(*len, *fill)))
                .collect(),
        },
        Op::Commit => MapOp::Commit,
        Op::CommitEventual => MapOp::CommitEventual,
        Op::Abort => MapOp::Abort,
        Op::MapPut { key, len, fill } => MapOp::MapPut {
            key: key.bytes(),
            value: val(*len, *fill),
        },
        Op::MapDelete { key } => MapOp::MapDelete { key: key.bytes() },
        Op::Sync => MapOp::Sync,
        Op::Compact => MapOp::Compact,
        Op::CompactStep { budget } => MapOp::CompactStep {
            budget: u32::from(*budget),
        },
        Op::Reopen => MapOp::Reopen,
        Op::Crash { seed } => MapOp::Crash { seed: *seed },
        Op::SnapshotOpen => MapOp::SnapshotOpen,
        Op::SnapshotCheck { pick } => MapOp::SnapshotCheck { pick: *pick },
        Op::SnapshotDrop { pick } => MapOp::SnapshotDrop { pick: *pick },
        Op::Check => MapOp::Check,
    }
}

fuzz_target!(|input: Input| {
    let hasher = match input.hasher % 4 {
        0 => TestHasher::Murmur,
        1 => TestHasher::KeyBytes,
        2 => TestHasher::FewBits,
        _ => TestHasher::Colliding,
    };
    let options = MapOptions {
        inline_max: [0, 8, 16, 512][usize::from(input.inline % 4)],
        seed: input.seed,
    };
    let ops: Vec<MapOp> = input.ops.iter().take(64).map(op).collect();
    let mut harness = MapHarness::new(2 << 20, options, hasher);
    harness.check_each_op = true;
    harness.apply(&ops);
    harness.apply(&[MapOp::Reopen, MapOp::Check]);
});
