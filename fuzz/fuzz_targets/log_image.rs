//! Arbitrary bytes as a commit log behind a fixed map: open them as a bare `CommitLog`
//! (every record and operation read) and through `LoggedMap::open` (replayed into the
//! map). Each must return `Ok` or a typed error: never panic, never hang, never ask for
//! an absurd allocation (which libFuzzer's `-malloc_limit_mb` reports). A log that
//! opened must leave a map whose `check()` is clean, and a durable commit made after the
//! open must survive a reopen from the map's bytes as the open's checkpoint left them.
//!
//! The first input byte holds flags: bit 0 sets both header slots' seed to the map's and
//! reseals them, bit 1 reseals every 8-aligned record with the current header's seed and
//! epoch (as docs/FORMAT.md defines the checksums), so the fuzzer gets past them to the
//! operations; bit 2 asks for the commit after the open. The rest is the log image.
//! Seed the corpus with tests/fixtures/v1/log.img behind a zero flags byte (and the same
//! with flags 3).
#![no_main]

use std::sync::OnceLock;

use hamtdb_core::log::{CommitLog, LogPolicy, LoggedMap};
use hamtdb_core::{Map, MapOptions, VecRegion};
use hamtdb_tests::log_damage::{
    HEADER_SEED, LOG_DATA_START, LOG_SLOTS, RECORD_HEADER_LEN, current_log_header,
    reseal_log_header, reseal_log_record,
};
use libfuzzer_sys::fuzz_target;

/// The seed of tests/fixtures/v1/log.img, so the fixture replays into this map.
const SEED: u64 = 0x0123_4567_89AB_CDEF;

/// A small map at txid 0 with a few pairs.
fn map_image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let options = MapOptions {
            inline_max: 16,
            seed: SEED,
        };
        let map = Map::create(VecRegion::new(), options).expect("create");
        map.region().to_vec()
    })
}

fn reseal(image: &mut [u8], flags: u8) {
    if flags & 1 != 0 {
        for slot in LOG_SLOTS {
            if image.len() >= slot + 64 {
                image[slot + HEADER_SEED..slot + HEADER_SEED + 8]
                    .copy_from_slice(&SEED.to_le_bytes());
                reseal_log_header(image, slot);
            }
        }
    }
    if flags & 2 != 0
        && let Some((_, seed, epoch, _)) = current_log_header(image)
    {
        let mut at = LOG_DATA_START;
        while at + RECORD_HEADER_LEN <= image.len() {
            reseal_log_record(image, seed, epoch, at);
            at += 8;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, image)) = data.split_first() else {
        return;
    };
    let mut image = image.to_vec();
    reseal(&mut image, flags);
    let capacity = image.len() + (64 << 10);

    if let Ok(log) = CommitLog::open(VecRegion::from_bytes(&image, capacity)) {
        for record in log.records() {
            let Ok(record) = record else { break };
            for op in record.ops() {
                if op.is_err() {
                    break;
                }
            }
        }
    }

    let map = Map::open(VecRegion::from_bytes(map_image(), 1 << 20)).expect("the map opens");
    let Ok((db, _)) = LoggedMap::open(
        map,
        Some(VecRegion::from_bytes(&image, capacity)),
        LogPolicy::default(),
    ) else {
        return;
    };
    assert!(db.map().check().is_ok(), "a replayed map does not check");
    if flags & 4 == 0 {
        return;
    }
    let synced = db.map().region().to_vec();
    let mut txn = db.begin_write();
    if txn.put(b"fuzz", b"durable").is_err() || txn.commit().is_err() {
        return;
    }
    let (_, log) = db.into_parts();
    let log = log.expect("a log").into_region().to_vec();
    let map = Map::open(VecRegion::from_bytes(&synced, 1 << 20)).expect("the map reopens");
    let (db, _) = LoggedMap::open(
        map,
        Some(VecRegion::from_bytes(&log, capacity)),
        LogPolicy::default(),
    )
    .expect("a log this code wrote reopens");
    let pairs = db.map().iter().expect("iterate");
    assert!(
        pairs.iter().any(|(k, v)| k == b"fuzz" && v == b"durable"),
        "a durable commit after recovery was lost"
    );
});
