//! The fault-injecting region keeps its model: what crash images may hold, what syncs make
//! durable, how injected errors and the power cut behave.

use hamtdb_core::{Region, RegionError, RegionOp};
use hamtdb_tests::{
    CrashMode, Fault, FaultRegion, INJECTED_CODE, OpCounts, POWER_CUT_CODE, SplitMix64,
    UnsyncedWrite,
};
use proptest::prelude::*;

/// Writes `data` at `offset`.
fn write(region: &FaultRegion, offset: u64, data: &[u8]) -> Result<(), RegionError> {
    // SAFETY: the tests take views only in `views_taken_before_growth_stay_valid`, which
    // never writes over them, and use one thread.
    unsafe { region.write(offset, data) }
}

/// Truncates to `len`.
fn truncate(region: &FaultRegion, len: u64) -> Result<u64, RegionError> {
    // SAFETY: no views alive, single thread.
    unsafe { region.truncate(len) }
}

/// A 32-byte region of `0xAA`, all durable.
fn synced_region() -> FaultRegion {
    let region = FaultRegion::with_capacity(1024);
    region.grow(32).unwrap();
    write(&region, 0, &[0xAA; 32]).unwrap();
    region.sync(0, 32).unwrap();
    assert_eq!(region.unsynced_write_count(), 0);
    region
}

fn injected(op: RegionOp) -> RegionError {
    RegionError::Io {
        op,
        code: INJECTED_CODE,
    }
}

fn power_cut(op: RegionOp) -> RegionError {
    RegionError::Io {
        op,
        code: POWER_CUT_CODE,
    }
}

/// Asserts that every byte of `image` is the durable byte (zero past the durable length)
/// or the byte of some unsynced write covering it.
fn assert_image_is_plausible(image: &[u8], durable: &[u8], log: &[UnsyncedWrite]) {
    for (i, &byte) in image.iter().enumerate() {
        let old = durable.get(i).copied().unwrap_or(0);
        let from_log = log.iter().any(|w| {
            let start = w.offset as usize;
            i >= start && w.bytes.get(i - start) == Some(&byte)
        });
        assert!(
            byte == old || from_log,
            "byte {i} is {byte:#x}: neither durable ({old:#x}) nor from an unsynced write"
        );
    }
}

// ---- Crash images ---------------------------------------------------------------------

#[test]
fn drop_all_unsynced_loses_unsynced_writes_only() {
    let region = synced_region();
    write(&region, 0, b"AAAA").unwrap();
    region.sync(0, 4).unwrap();
    write(&region, 8, b"BBBB").unwrap();
    assert_eq!(region.unsynced_write_count(), 1);

    let image = region.crash_image(CrashMode::DropAllUnsynced);
    assert_eq!(&image[0..4], b"AAAA");
    assert_eq!(&image[8..12], &[0xAA; 4]);
    assert_eq!(image, region.durable_image());
    // Reads still see the write: crashing is an image, not a change to the region.
    assert_eq!(region.view(8, 4).unwrap(), b"BBBB");
}

#[test]
fn keep_all_unsynced_keeps_every_write_and_equals_the_volatile_image() {
    let region = synced_region();
    write(&region, 0, b"AAAA").unwrap();
    region.sync(0, 4).unwrap();
    write(&region, 8, b"BBBB").unwrap();
    write(&region, 10, b"CC").unwrap();

    let image = region.crash_image(CrashMode::KeepAllUnsynced);
    assert_eq!(&image[0..4], b"AAAA");
    assert_eq!(&image[8..12], b"BBCC");
    assert_eq!(image, region.volatile_image());
}

#[test]
fn torn_last_keeps_exactly_a_prefix_of_the_last_write() {
    let region = synced_region();
    write(&region, 0, b"first").unwrap();
    write(&region, 10, b"0123456789").unwrap();
    for keep in 0..=12 {
        let image = region.crash_image(CrashMode::TornLast { keep_bytes: keep });
        assert_eq!(&image[0..5], b"first", "earlier unsynced writes are kept");
        let kept = keep.min(10);
        assert_eq!(&image[10..10 + kept], &b"0123456789"[..kept]);
        assert!(
            image[10 + kept..].iter().all(|&b| b == 0xAA),
            "bytes after the tear keep their old value (keep = {keep})"
        );
    }
}

#[test]
fn torn_last_without_unsynced_writes_is_the_durable_image() {
    let region = synced_region();
    assert_eq!(
        region.crash_image(CrashMode::TornLast { keep_bytes: 3 }),
        region.durable_image()
    );
}

#[test]
fn random_crash_images_are_plausible_varied_and_reproducible() {
    let region = synced_region();
    write(&region, 0, &[1; 8]).unwrap();
    write(&region, 4, &[2; 8]).unwrap(); // overlaps the first
    write(&region, 16, &[3; 16]).unwrap(); // the last one: may be torn
    let durable = region.durable_image();
    let log = region.unsynced_writes();
    assert_eq!(log.len(), 3);

    for mode in [
        CrashMode::Random as fn(u64) -> CrashMode,
        CrashMode::RandomTornSubset,
        CrashMode::RandomBytes,
    ] {
        let (mut first_kept, mut first_dropped) = (false, false);
        let (mut last_whole, mut last_gone, mut last_torn) = (false, false, false);
        for seed in 0..500 {
            let image = region.crash_image(mode(seed));
            assert_eq!(image.len(), 32, "the length was synced");
            assert_image_is_plausible(&image, &durable, &log);
            assert_eq!(
                image,
                region.crash_image(mode(seed)),
                "same seed, same image"
            );

            // Bytes 0..4 are only covered by the first write.
            first_kept |= image[0..4] == [1; 4];
            first_dropped |= image[0..4] == [0xAA; 4];
            let last = &image[16..32];
            last_whole |= last == [3; 16];
            last_gone |= last == [0xAA; 16];
            last_torn |= last.contains(&3) && last.contains(&0xAA);
        }
        let name = format!("{:?}", mode(0));
        assert!(first_kept && first_dropped, "{name}: both fates of a write");
        assert!(last_torn, "{name}: the last write is sometimes torn");
        if !matches!(mode(0), CrashMode::RandomBytes(_)) {
            // Per-byte coins almost never keep or drop all 16 bytes together.
            assert!(
                last_whole && last_gone,
                "{name}: the last write whole or gone"
            );
        }
    }
    assert_eq!(region.crash(7), region.crash_image(CrashMode::Random(7)));
}

#[test]
fn random_prefix_tears_are_prefixes_and_subset_tears_need_not_be() {
    let region = synced_region();
    write(&region, 0, &[3; 32]).unwrap();
    let mut non_prefix = false;
    for seed in 0..300 {
        let image = region.crash_image(CrashMode::Random(seed));
        let kept = image.iter().take_while(|&&b| b == 3).count();
        assert!(
            image[kept..].iter().all(|&b| b == 0xAA),
            "seed {seed}: not a prefix"
        );

        let image = region.crash_image(CrashMode::RandomTornSubset(seed));
        let kept = image.iter().take_while(|&&b| b == 3).count();
        non_prefix |= image[kept..].contains(&3);
    }
    assert!(non_prefix, "subset tears keep bytes after a lost one");
}

// ---- Sync -----------------------------------------------------------------------------

#[test]
fn sync_of_a_sub_range_makes_only_that_range_durable() {
    let region = synced_region();
    write(&region, 0, &[1; 16]).unwrap();
    write(&region, 20, &[2; 4]).unwrap();
    region.sync(4, 8).unwrap(); // bytes 4..12

    let durable = region.durable_image();
    assert_eq!(&durable[0..4], &[0xAA; 4], "before the synced range");
    assert_eq!(&durable[4..12], &[1; 8], "the synced range");
    assert_eq!(&durable[12..16], &[0xAA; 4], "after it");
    assert_eq!(&durable[20..24], &[0xAA; 4], "another write");

    // The straddling write keeps its outside parts as unsynced; the other is untouched.
    assert_eq!(
        region.unsynced_writes(),
        vec![
            UnsyncedWrite {
                offset: 0,
                bytes: vec![1; 4]
            },
            UnsyncedWrite {
                offset: 12,
                bytes: vec![1; 4]
            },
            UnsyncedWrite {
                offset: 20,
                bytes: vec![2; 4]
            },
        ]
    );
    assert_eq!(
        region.crash_image(CrashMode::DropAllUnsynced),
        region.durable_image()
    );

    region.sync(0, 32).unwrap();
    assert_eq!(region.unsynced_write_count(), 0);
    assert_eq!(region.durable_image(), region.volatile_image());
}

#[test]
fn failed_or_out_of_bounds_sync_makes_nothing_durable() {
    let region = synced_region();
    write(&region, 0, b"new").unwrap();
    assert!(matches!(
        region.sync(0, 33),
        Err(RegionError::OutOfBounds { .. })
    ));
    assert_eq!(&region.durable_image()[0..3], &[0xAA; 3]);
    assert_eq!(region.unsynced_write_count(), 1);
}

// ---- Length ---------------------------------------------------------------------------

#[test]
fn growth_is_durable_only_after_a_sync_and_grown_bytes_are_zero() {
    let region = FaultRegion::from_image(&[0xAA; 16], 1024);
    assert_eq!(region.durable_len(), 16);
    assert_eq!(region.grow(64), Ok(64));
    write(&region, 40, b"tail").unwrap();
    assert_eq!(region.durable_len(), 16);

    assert_eq!(region.crash_image(CrashMode::DropAllUnsynced).len(), 16);
    let kept = region.crash_image(CrashMode::KeepAllUnsynced);
    assert_eq!(kept.len(), 64);
    assert!(kept[16..40].iter().all(|&b| b == 0));
    let lengths: Vec<usize> = (0..64).map(|seed| region.crash(seed).len()).collect();
    assert!(lengths.iter().all(|&len| len == 16 || len == 64));
    assert!(
        lengths.contains(&16) && lengths.contains(&64),
        "both lengths occur"
    );

    // A sync of any range makes the length durable; unsynced bytes stay unsynced.
    region.sync(0, 0).unwrap();
    assert_eq!(region.durable_len(), 64);
    let durable = region.durable_image();
    assert_eq!(&durable[..16], &[0xAA; 16]);
    assert!(
        durable[16..].iter().all(|&b| b == 0),
        "grown bytes are zero"
    );
    for seed in 0..64 {
        let image = region.crash(seed);
        assert_eq!(image.len(), 64);
        // The last write may be torn: each byte is new or still zero.
        for (i, &byte) in image[40..44].iter().enumerate() {
            assert!(byte == b"tail"[i] || byte == 0);
        }
    }
}

#[test]
fn growing_past_the_capacity_is_full_and_changes_nothing() {
    let region = FaultRegion::with_capacity(100);
    assert_eq!(region.capacity(), 100);
    assert_eq!(region.grow(100), Ok(100));
    assert_eq!(region.grow(101), Err(RegionError::full(101)));
    assert_eq!(region.len(), 100);
}

#[test]
fn truncate_can_be_undone_by_a_crash_until_synced() {
    let region = synced_region();
    assert_eq!(truncate(&region, 8), Ok(8));
    assert_eq!(region.len(), 8);

    let old = region.crash_image(CrashMode::DropAllUnsynced);
    assert_eq!(old, vec![0xAA; 32], "the old length with the old bytes");
    assert_eq!(
        region.crash_image(CrashMode::KeepAllUnsynced),
        vec![0xAA; 8]
    );
    for seed in 0..64 {
        let image = region.crash_image(CrashMode::RandomBytes(seed));
        assert!(image.len() == 8 || image.len() == 32);
        assert!(image[8..].iter().all(|&b| b == 0 || b == 0xAA));
    }

    // Regrown bytes read as zero; once synced, no crash brings the old bytes back.
    region.grow(32).unwrap();
    assert!(region.view(8, 24).unwrap().iter().all(|&b| b == 0));
    region.sync(0, 32).unwrap();
    for seed in 0..64 {
        assert_eq!(&region.crash(seed)[8..], &[0; 24]);
    }
}

#[test]
fn truncate_synced_then_regrown_forgets_released_unsynced_writes() {
    let region = synced_region();
    write(&region, 20, b"gone").unwrap();
    truncate(&region, 16).unwrap();
    region.sync(0, 16).unwrap();
    assert_eq!(region.unsynced_write_count(), 0);
    assert_eq!(region.durable_len(), 16);
    region.grow(32).unwrap();
    for seed in 0..32 {
        let image = region.crash_image(CrashMode::RandomBytes(seed));
        assert!(image.len() == 16 || image[16..].iter().all(|&b| b == 0));
    }
}

// ---- Injected errors ------------------------------------------------------------------

#[test]
fn injected_write_error_fires_once_on_the_nth_write_and_changes_nothing() {
    let region = synced_region();
    region.fail_write_at(2);
    write(&region, 0, b"a").unwrap();
    write(&region, 1, b"b").unwrap();
    let before = region.volatile_image();
    assert_eq!(write(&region, 2, b"c"), Err(injected(RegionOp::Write)));
    assert_eq!(region.volatile_image(), before);
    assert_eq!(region.unsynced_write_count(), 2);
    write(&region, 2, b"c").unwrap();
    assert_eq!(region.view(0, 3).unwrap(), b"abc");
}

#[test]
fn injected_torn_write_leaves_an_unsynced_prefix() {
    let region = synced_region();
    region.fail_torn_write_at(0, 3);
    assert_eq!(write(&region, 0, b"hello"), Err(injected(RegionOp::Write)));
    assert_eq!(region.view(0, 5).unwrap(), b"hel\xAA\xAA");
    assert_eq!(
        region.unsynced_writes(),
        vec![UnsyncedWrite {
            offset: 0,
            bytes: b"hel".to_vec()
        }]
    );
    assert_eq!(
        &region.crash_image(CrashMode::DropAllUnsynced)[..3],
        &[0xAA; 3]
    );
}

#[test]
fn injected_sync_error_syncs_nothing_and_a_retry_does() {
    let region = synced_region();
    write(&region, 0, b"data").unwrap();
    region.fail_sync_at(0);
    assert_eq!(region.sync(0, 32), Err(injected(RegionOp::Sync)));
    assert_eq!(&region.durable_image()[..4], &[0xAA; 4]);
    assert_eq!(region.unsynced_write_count(), 1);
    region.sync(0, 32).unwrap();
    assert_eq!(&region.durable_image()[..4], b"data");
}

#[test]
fn injected_grow_errors_change_nothing() {
    let region = FaultRegion::with_capacity(1024);
    region.fail_grow_at(1);
    region.inject(Fault::GrowNoSpace, 2);
    assert_eq!(region.grow(10), Ok(10));
    assert_eq!(region.grow(20), Err(injected(RegionOp::Grow)));
    assert_eq!(region.len(), 10);
    // The no-space fault counted down on both earlier grows.
    assert_eq!(region.grow(30), Err(RegionError::no_space(30)));
    assert_eq!(region.len(), 10);
    assert_eq!(region.grow(30), Ok(30));

    region.fail_grow_with_no_space(0);
    assert_eq!(region.grow(40), Err(RegionError::no_space(40)));
    assert_eq!(region.len(), 30);
}

#[test]
fn injected_truncate_error_changes_nothing() {
    let region = synced_region();
    region.fail_truncate_at(0);
    assert_eq!(truncate(&region, 4), Err(injected(RegionOp::Truncate)));
    assert_eq!(region.len(), 32);
    assert_eq!(region.unsynced_write_count(), 0);
    assert_eq!(truncate(&region, 4), Ok(4));
}

#[test]
fn reset_faults_drops_pending_faults_and_restores_power() {
    let region = synced_region();
    region.fail_write_at(0);
    region.fail_sync_at(0);
    region.set_cut_after(Some(region.op_count()));
    assert!(region.is_power_cut());
    region.reset_faults();
    assert!(!region.is_power_cut());
    write(&region, 0, b"ok").unwrap();
    region.sync(0, 2).unwrap();
    assert_eq!(&region.durable_image()[..2], b"ok");
}

// ---- Power cut ------------------------------------------------------------------------

#[test]
fn power_cut_refuses_every_mutation_after_the_budget() {
    let region = FaultRegion::with_capacity(1024);
    region.set_cut_after(Some(3));
    region.grow(16).unwrap();
    write(&region, 0, b"one").unwrap();
    region.sync(0, 16).unwrap();
    assert_eq!(region.op_count(), 3);
    assert!(region.is_power_cut());

    assert_eq!(write(&region, 0, b"two"), Err(power_cut(RegionOp::Write)));
    assert_eq!(region.sync(0, 16), Err(power_cut(RegionOp::Sync)));
    assert_eq!(region.grow(32), Err(power_cut(RegionOp::Grow)));
    assert_eq!(truncate(&region, 0), Err(power_cut(RegionOp::Truncate)));
    assert_eq!(region.op_count(), 3, "refused mutations are not counted");
    assert_eq!(
        region.op_counts(),
        OpCounts {
            writes: 1,
            syncs: 1,
            grows: 1,
            truncates: 0
        }
    );
    // Reads and crash images still work.
    assert_eq!(region.view(0, 3).unwrap(), b"one");
    assert_eq!(&region.crash(1)[..3], b"one");
    assert_eq!(region.len(), 16);

    region.set_cut_after(None);
    write(&region, 0, b"two").unwrap();
    assert_eq!(region.op_count(), 4);
}

#[test]
fn op_count_counts_failed_mutations_too() {
    let region = FaultRegion::with_capacity(8);
    region.grow(4).unwrap();
    assert!(write(&region, 2, b"oob").is_err());
    assert!(region.grow(9).is_err());
    region.fail_sync_at(0);
    assert!(region.sync(0, 4).is_err());
    assert_eq!(region.op_count(), 4);
}

/// A tiny log-structured workload: append records, syncing after each, then commit a
/// header naming how many records are valid.
fn workload(region: &FaultRegion) -> Result<(), RegionError> {
    region.grow(64)?;
    for record in 1..=3u8 {
        let offset = 8 * u64::from(record);
        write(region, offset, &[record; 8])?;
        region.sync(offset, 8)?;
        write(region, 0, &[record; 8])?; // the header: count of durable records
        region.sync(0, 8)?;
    }
    Ok(())
}

#[test]
fn exhaustive_power_cut_harness_finds_only_recoverable_images() {
    let probe = FaultRegion::with_capacity(64);
    workload(&probe).unwrap();
    let ops = probe.op_count();
    assert_eq!(ops, 13);

    let mut images = 0;
    for cut in 0..=ops {
        let region = FaultRegion::with_capacity(64);
        region.set_cut_after(Some(cut));
        let result = workload(&region);
        assert_eq!(result.is_ok(), cut == ops);
        assert_eq!(region.op_count(), cut);

        let torn = (0..=8).map(|keep_bytes| CrashMode::TornLast { keep_bytes });
        let modes = [CrashMode::DropAllUnsynced, CrashMode::KeepAllUnsynced]
            .into_iter()
            .chain(torn)
            .chain((0..32).map(CrashMode::RandomBytes));
        for mode in modes {
            let image = region.crash_image(mode);
            images += 1;
            if image.is_empty() {
                continue; // the grow never became durable
            }
            // Recovery: the header may be torn, so trust its smallest byte; every record
            // it names must be intact, because the record was synced before the header.
            let count = image[..8].iter().copied().min().unwrap();
            for record in 1..=count {
                let at = 8 * usize::from(record);
                assert_eq!(
                    &image[at..at + 8],
                    &[record; 8],
                    "cut {cut}, {mode:?}: header names record {record}"
                );
            }
            let reopened = FaultRegion::from_image(&image, 64);
            assert_eq!(reopened.volatile_image(), image);
            assert_eq!(reopened.durable_image(), image);
        }
    }
    assert!(images > 500);
}

// ---- Views and sharing ----------------------------------------------------------------

#[test]
fn views_taken_before_growth_stay_valid() {
    let region = FaultRegion::with_capacity(1 << 16);
    region.grow(16).unwrap();
    write(&region, 0, b"0123456789abcdef").unwrap();
    let view = region.view(0, 16).unwrap();
    region.grow(1 << 16).unwrap();
    write(&region, 100, b"elsewhere").unwrap();
    region.sync(0, 1 << 16).unwrap();
    assert_eq!(view, b"0123456789abcdef");
    assert_eq!(view, region.view(0, 16).unwrap());
    assert_eq!(view.as_ptr(), region.view(0, 16).unwrap().as_ptr());
}

#[test]
fn reads_and_views_check_bounds() {
    let region = FaultRegion::from_image(b"abc", 8);
    let mut buf = [0; 3];
    region.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"abc");
    assert!(matches!(
        region.view(1, 3),
        Err(RegionError::OutOfBounds { .. })
    ));
    assert!(matches!(
        write(&region, 2, b"xy"),
        Err(RegionError::OutOfBounds { .. })
    ));
    assert_eq!(region.unsynced_write_count(), 0);
}

#[test]
fn fault_region_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FaultRegion>();
    let region = FaultRegion::default();
    assert_eq!(region.capacity(), hamtdb_tests::DEFAULT_FAULT_CAPACITY);
    assert!(format!("{region:?}").contains("FaultRegion"));
}

#[test]
fn crash_and_reopen_gives_a_fully_durable_region() {
    let region = synced_region();
    write(&region, 0, b"zz").unwrap();
    let reopened = region.crash_and_reopen(CrashMode::KeepAllUnsynced);
    assert_eq!(reopened.capacity(), region.capacity());
    assert_eq!(reopened.durable_image(), region.volatile_image());
    assert_eq!(reopened.unsynced_write_count(), 0);
    assert_eq!(reopened.op_count(), 0);
}

// ---- Model check ----------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Write { offset: u64, len: usize, byte: u8 },
    Sync { offset: u64, len: u64 },
    Grow(u64),
    Truncate(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..256u64, 1..48usize, any::<u8>())
            .prop_map(|(offset, len, byte)| Op::Write { offset, len, byte }),
        2 => (0..256u64, 0..256u64).prop_map(|(offset, len)| Op::Sync { offset, len }),
        1 => (0..256u64).prop_map(Op::Grow),
        1 => (0..256u64).prop_map(Op::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// After any sequence of operations the extreme crash modes equal the two images,
    /// and every random image is made only of durable bytes and unsynced writes.
    #[test]
    fn crash_images_agree_with_the_model(ops in prop::collection::vec(op(), 0..40), seed: u64) {
        let region = FaultRegion::with_capacity(256);
        for op in ops {
            // Errors (out of bounds) are part of the workload; they must change nothing.
            let before = region.volatile_image();
            let failed = match op {
                Op::Write { offset, len, byte } => write(&region, offset, &vec![byte; len]).is_err(),
                Op::Sync { offset, len } => region.sync(offset, len).is_err(),
                Op::Grow(len) => region.grow(len).is_err(),
                Op::Truncate(len) => truncate(&region, len).is_err(),
            };
            if failed {
                prop_assert_eq!(region.volatile_image(), before);
            }
        }
        let durable = region.durable_image();
        let log = region.unsynced_writes();
        prop_assert_eq!(region.crash_image(CrashMode::DropAllUnsynced), durable.clone());
        prop_assert_eq!(region.crash_image(CrashMode::KeepAllUnsynced), region.volatile_image());
        let mut rng = SplitMix64::new(seed);
        for _ in 0..8 {
            let seed = rng.next_u64();
            for mode in [CrashMode::Random(seed), CrashMode::RandomTornSubset(seed), CrashMode::RandomBytes(seed)] {
                let image = region.crash_image(mode);
                prop_assert!(image.len() == durable.len() || image.len() as u64 == region.len());
                assert_image_is_plausible(&image, &durable, &log);
            }
        }
        // A full sync leaves nothing to lose.
        let len = region.len();
        region.sync(0, len).unwrap();
        prop_assert_eq!(region.unsynced_write_count(), 0);
        prop_assert_eq!(region.crash(seed), region.volatile_image());
    }
}
