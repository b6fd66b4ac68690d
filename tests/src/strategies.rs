//! proptest strategies for the suites: operation sequences and configurations of the
//! entry buffer's model test ([`crate::buffer_model`]) and the map's
//! ([`crate::map_model`]).

use hamtdb_core::{CompactionPolicy, MapOptions};
use proptest::collection::vec;
use proptest::prelude::*;

use crate::buffer_model::{BufferOp, ModelConfig, SizeChange};
use crate::map_model::{MapOp, TestHasher, value};

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

// ---- The map ---------------------------------------------------------------------------

/// A map key, mostly from a tiny key space (0 to 3 bytes of five symbols: 156 keys) so
/// that puts overwrite, deletes hit, and — under [`TestHasher::KeyBytes`] and
/// [`TestHasher::FewBits`] — paths run deep and end in collision nodes; sometimes a
/// `key-N` key or a longer arbitrary one.
pub fn map_key() -> impl Strategy<Value = Vec<u8>> {
    let symbol = prop_oneof![Just(0u8), Just(1), Just(b'a'), Just(b'b'), Just(0xFF)];
    prop_oneof![
        12 => vec(symbol, 0..4),
        2 => (0u32..40).prop_map(crate::map_model::key),
        1 => vec(any::<u8>(), 0..300),
    ]
}

/// A value: mostly below or near the inline limits [`map_options`] picks, sometimes a
/// few hundred bytes or a few KiB (always a value entry).
pub fn map_value() -> impl Strategy<Value = Vec<u8>> {
    let len = prop_oneof![
        6 => 0usize..24,
        3 => 24usize..200,
        1 => 200usize..3000,
    ];
    (len, any::<u8>()).prop_map(|(len, fill)| value(len, fill))
}

/// One map operation; `Crash` only when `with_crash`.
pub fn map_op(with_crash: bool) -> BoxedStrategy<MapOp> {
    let base = prop_oneof![
        14 => (map_key(), map_value()).prop_map(|(key, value)| MapOp::Put { key, value }),
        6 => map_key().prop_map(|key| MapOp::Delete { key }),
        4 => map_key().prop_map(|key| MapOp::Get { key }),
        1 => prop::collection::vec((map_key(), map_value()), 0..24)
            .prop_map(|pairs| MapOp::Fill { pairs }),
        4 => Just(MapOp::Commit),
        2 => Just(MapOp::CommitEventual),
        2 => Just(MapOp::Abort),
        1 => (map_key(), map_value()).prop_map(|(key, value)| MapOp::MapPut { key, value }),
        1 => map_key().prop_map(|key| MapOp::MapDelete { key }),
        1 => Just(MapOp::Sync),
        2 => Just(MapOp::Compact),
        1 => prop_oneof![Just(1u32), 1u32..512, 512u32..100_000]
            .prop_map(|budget| MapOp::CompactStep { budget }),
        2 => Just(MapOp::Reopen),
        2 => Just(MapOp::SnapshotOpen),
        2 => any::<u8>().prop_map(|pick| MapOp::SnapshotCheck { pick }),
        1 => any::<u8>().prop_map(|pick| MapOp::SnapshotDrop { pick }),
        1 => Just(MapOp::Check),
    ];
    if with_crash {
        prop_oneof![
            20 => base,
            1 => any::<u64>().prop_map(|seed| MapOp::Crash { seed }),
        ]
        .boxed()
    } else {
        base.boxed()
    }
}

/// A sequence of up to `max` map operations.
pub fn map_ops(max: usize, with_crash: bool) -> impl Strategy<Value = Vec<MapOp>> {
    vec(map_op(with_crash), 1..max)
}

/// Every hasher of the suites, the colliding ones more often than Murmur (whose tries
/// of a few dozen keys are one or two levels deep).
pub fn test_hasher() -> impl Strategy<Value = TestHasher> {
    prop_oneof![
        2 => Just(TestHasher::Murmur),
        2 => Just(TestHasher::KeyBytes),
        1 => Just(TestHasher::FewBits),
        1 => Just(TestHasher::Colliding),
    ]
}

/// Map options: inline limits from 0 (every non-empty value in an entry of its own) to
/// the default 512, and any seed.
pub fn map_options() -> impl Strategy<Value = MapOptions> {
    let inline_max = prop_oneof![Just(0u32), Just(8), Just(16), Just(512)];
    (inline_max, any::<u64>()).prop_map(|(inline_max, seed)| MapOptions { inline_max, seed })
}
