//! proptest strategies for the suites: operation sequences and configurations of the
//! entry buffer's model test ([`crate::buffer_model`]).

use hamtdb_core::CompactionPolicy;
use proptest::collection::vec;
use proptest::prelude::*;

use crate::buffer_model::{BufferOp, ModelConfig, SizeChange};

/// A payload length: mostly small, sometimes a few hundred bytes, rarely a few KiB.
pub fn payload_len() -> impl Strategy<Value = u16> {
    prop_oneof![
        6 => 0u16..24,
        3 => 24u16..400,
        1 => 400u16..4000,
    ]
}

/// How an update changes a record's length: grow, shrink or keep it, by small and large
/// amounts (small growth often stays within the record's room, large growth migrates).
pub fn size_change() -> impl Strategy<Value = SizeChange> {
    prop_oneof![
        3 => (1u16..8).prop_map(SizeChange::Grow),
        2 => (8u16..600).prop_map(SizeChange::Grow),
        3 => (1u16..200).prop_map(SizeChange::Shrink),
        2 => Just(SizeChange::Same),
    ]
}

/// One buffer operation; `Crash` only when `with_crash`.
pub fn buffer_op(with_crash: bool) -> BoxedStrategy<BufferOp> {
    let base = prop_oneof![
        12 => (payload_len(), any::<u8>()).prop_map(|(len, fill)| BufferOp::Add { len, fill }),
        1 => (20u8..90, 0u16..16).prop_map(|(count, len)| BufferOp::AddMany { count, len }),
        10 => (any::<u16>(), size_change(), any::<u8>())
            .prop_map(|(pick, change, fill)| BufferOp::Update { pick, change, fill }),
        6 => any::<u16>().prop_map(|pick| BufferOp::Remove { pick }),
        5 => Just(BufferOp::Commit),
        3 => Just(BufferOp::CommitEventual),
        2 => Just(BufferOp::Sync),
        2 => Just(BufferOp::Abort),
        2 => Just(BufferOp::Compact),
        2 => prop_oneof![Just(1u32), 1u32..256, 256u32..100_000]
            .prop_map(|budget| BufferOp::CompactStep { budget }),
        2 => Just(BufferOp::Reopen),
        1 => (0u16..40).prop_map(|advance| BufferOp::Tick { advance }),
    ];
    if with_crash {
        prop_oneof![
            17 => base,
            1 => any::<u64>().prop_map(|seed| BufferOp::Crash { seed }),
        ]
        .boxed()
    } else {
        base.boxed()
    }
}

/// A sequence of up to `max` operations.
pub fn buffer_ops(max: usize, with_crash: bool) -> impl Strategy<Value = Vec<BufferOp>> {
    vec(buffer_op(with_crash), 1..max)
}

/// A buffer configuration: extension factors 1.0 to 2.0, with or without the space and
/// time compaction policies.
pub fn model_config() -> impl Strategy<Value = ModelConfig> {
    let factor = prop_oneof![Just(1.0), Just(1.2), Just(1.5), Just(2.0)];
    let policy = prop_oneof![
        2 => Just(CompactionPolicy::default()),
        1 => (20u8..80, prop_oneof![Just(1u64), Just(256), Just(4096)], 0u32..30).prop_map(
            |(space_percent, space_min_bytes, interval_secs)| CompactionPolicy {
                space_percent,
                space_min_bytes,
                interval_secs,
            }
        ),
    ];
    (factor, policy).prop_map(|(extension_factor, compaction)| ModelConfig {
        extension_factor,
        compaction,
        check_each_op: true,
    })
}
