use alloc::vec::Vec;

use super::format::{HEADER_BASE, RECORD_LEN};
use super::*;
use crate::map::{Map, MapOptions};
use crate::region::VecRegion;

fn put_record(key: &[u8], value: &[u8]) -> RecordBuf {
    let mut r = RecordBuf::new();
    r.put(key, value).unwrap();
    r
}

fn txids<R: Region>(log: &CommitLog<R>) -> Vec<u64> {
    log.records().map(|r| r.unwrap().txid).collect()
}

fn image(log: &CommitLog<VecRegion>) -> Vec<u8> {
    log.region()
        .view(0, log.region().len() as usize)
        .unwrap()
        .to_vec()
}

fn region_of(bytes: &[u8]) -> VecRegion {
    VecRegion::from_bytes(bytes, bytes.len().max(4096))
}

#[test]
fn records_round_trip_with_consecutive_txids() {
    let mut log = CommitLog::create(VecRegion::new(), 9, 10).unwrap();
    let mut r = RecordBuf::new();
    r.put(b"a", b"1").unwrap();
    r.delete(b"b").unwrap();
    r.put(b"", &[7; 300]).unwrap();
    log.append(11, &mut r).unwrap();
    log.append(12, &mut put_record(b"c", b"3")).unwrap();
    assert!(matches!(
        log.append(14, &mut put_record(b"d", b"4")),
        Err(Error::InvalidOption { .. })
    ));
    log.sync().unwrap();
    let end = log.end();
    let log = CommitLog::open(log.into_region()).unwrap();
    assert_eq!(log.end(), end);
    assert_eq!(log.last_txid(), 12);
    assert_eq!(txids(&log), [11, 12]);
    let first = log.records().next().unwrap().unwrap();
    let ops: Vec<LogOp<'_>> = first.ops().map(Result::unwrap).collect();
    assert_eq!(
        ops,
        [
            LogOp::Put(b"a", b"1"),
            LogOp::Delete(b"b"),
            LogOp::Put(b"", &[7; 300])
        ]
    );
}

#[test]
fn a_torn_or_damaged_record_ends_the_log() {
    let mut log = CommitLog::create(VecRegion::new(), 1, 0).unwrap();
    for txid in 1..=3 {
        log.append(txid, &mut put_record(&[txid as u8], b"value"))
            .unwrap();
    }
    let bytes = image(&log);
    let second = LOG_DATA_START as usize + 40;
    // Every single flipped byte inside the second record ends the log after the first.
    let rec_len = 24 + 8 + 1 + 5;
    for at in second..second + rec_len {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x5a;
        let log = CommitLog::open(region_of(&damaged)).unwrap();
        assert_eq!(txids(&log), [1], "byte {at}");
        assert_eq!(log.end(), second as u64);
    }
    // A hostile length: bounded by the region, no panic, the log ends there.
    let mut damaged = bytes.clone();
    damaged[second + RECORD_LEN.start..second + RECORD_LEN.end]
        .copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(txids(&CommitLog::open(region_of(&damaged)).unwrap()), [1]);
    // The log cut short inside the third record.
    let third = second + 40;
    let cut = &bytes[..third + 10];
    assert_eq!(txids(&CommitLog::open(region_of(cut)).unwrap()), [1, 2]);
}

#[test]
fn reset_makes_old_records_stale_and_survives_a_torn_header() {
    let mut log = CommitLog::create(VecRegion::new(), 1, 0).unwrap();
    for txid in 1..=3 {
        log.append(txid, &mut put_record(b"k", b"v")).unwrap();
    }
    let before = image(&log);
    log.reset(3).unwrap();
    assert_eq!(log.epoch(), 2);
    // The old records are still there, at offsets where records of txid 4.. would be:
    // even a reset to base 0 would not take them (another epoch).
    let after = image(&log);
    assert_eq!(
        &after[LOG_DATA_START as usize..],
        &before[LOG_DATA_START as usize..]
    );
    let reopened = CommitLog::open(region_of(&after)).unwrap();
    assert_eq!(reopened.base_txid(), 3);
    assert_eq!(txids(&reopened), Vec::<u64>::new());
    // A torn reset (the new slot damaged) falls back to the old header and records.
    let mut torn = after.clone();
    torn[512 + HEADER_BASE.start] ^= 1;
    let reopened = CommitLog::open(region_of(&torn)).unwrap();
    assert_eq!(reopened.base_txid(), 0);
    assert_eq!(txids(&reopened), [1, 2, 3]);
    // Both slots damaged: a typed error with the offset.
    let mut both = torn;
    both[HEADER_BASE.start] ^= 1;
    assert!(matches!(
        CommitLog::open(region_of(&both)),
        Err(Error::Corrupted(c)) if c.offset() == 0
    ));
    // Never formatted.
    assert_eq!(
        CommitLog::open(region_of(&[0; 2048])).unwrap_err(),
        Error::NotInitialized
    );
    assert_eq!(
        CommitLog::open(VecRegion::new()).unwrap_err(),
        Error::NotInitialized
    );
}

#[test]
fn a_verified_record_with_bad_ops_is_corrupted() {
    let mut log = CommitLog::create(VecRegion::new(), 1, 0).unwrap();
    let mut r = RecordBuf::new();
    r.put(b"key", b"value").unwrap();
    // Claim a longer key than the record holds; the checksum covers the lie.
    r.bytes[RECORD_HEADER_LEN + 2] = 200;
    log.append(1, &mut r).unwrap();
    assert!(matches!(
        CommitLog::open(log.into_region()),
        Err(Error::Corrupted { .. })
    ));
}

type Logged = LoggedMap<VecRegion, VecRegion>;

fn options() -> MapOptions {
    MapOptions {
        inline_max: 16,
        seed: 5,
    }
}

#[test]
fn logged_map_replays_records_past_the_map() {
    let (db, recovery) = Logged::open(
        Map::create(VecRegion::new(), options()).unwrap(),
        Some(VecRegion::new()),
        LogPolicy::default(),
    )
    .unwrap();
    assert!(recovery.created);
    // What power loss leaves of the map: nothing after this is synced to it.
    let created = db.map().region().to_vec();
    for i in 0u32..20 {
        let mut txn = db.begin_write();
        txn.put(&i.to_le_bytes(), &[i as u8; 40]).unwrap();
        if i % 3 == 0 {
            txn.delete(&(i / 2).to_le_bytes()).unwrap();
        }
        txn.commit().unwrap();
    }
    let expected = {
        let mut pairs = db.map().iter().unwrap();
        pairs.sort();
        pairs
    };
    assert!(db.log_bytes() > LOG_DATA_START);
    // Power loss with nothing of the map synced since creation: only the log has them.
    let (_, log) = db.into_parts();
    let log_region = log.unwrap().into_region();
    let map_region = VecRegion::from_bytes(&created, 1 << 20);
    let (db, recovery) = Logged::open(
        Map::open(map_region).unwrap(),
        Some(log_region),
        LogPolicy::default(),
    )
    .unwrap();
    assert_eq!(recovery.replayed, 20);
    let mut pairs = db.map().iter().unwrap();
    pairs.sort();
    assert_eq!(pairs, expected);
    assert_eq!(db.log_bytes(), LOG_DATA_START, "checkpointed after replay");
}

#[test]
fn large_transactions_and_policy_bounds_checkpoint_instead() {
    let policy = LogPolicy {
        max_log_bytes: 4096,
        max_pending_bytes: u64::MAX,
        max_record_bytes: 1000,
    };
    let (db, _) = Logged::open(
        Map::create(VecRegion::new(), options()).unwrap(),
        Some(VecRegion::new()),
        policy,
    )
    .unwrap();
    let mut txn = db.begin_write();
    txn.put(b"big", &[1; 2000]).unwrap();
    txn.commit().unwrap();
    assert_eq!(db.log_bytes(), LOG_DATA_START, "not logged");
    let mut max_seen = 0;
    // Enough commits to pass the log bound at least once (fewer under Miri, where each
    // commit takes seconds).
    let commits = if cfg!(miri) { 40 } else { 100 };
    for i in 0u32..commits {
        let mut txn = db.begin_write();
        txn.put(&i.to_le_bytes(), &[2; 100]).unwrap();
        txn.commit().unwrap();
        max_seen = max_seen.max(db.log_bytes());
    }
    assert!(max_seen <= 4096 && max_seen > 2048, "{max_seen}");
    assert_eq!(db.map().len(), u64::from(commits) + 1);
}
