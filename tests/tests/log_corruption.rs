//! Damaged commit logs: a log of several records (behind a map that holds none of them)
//! with every byte flipped (three masks), truncated at every length, ranges overwritten
//! with garbage, and checksum-honest forgeries (header fields and record fields changed
//! and resealed as docs/FORMAT.md defines the checksums: bad op lengths, txid gaps, huge
//! counts, forged epochs and bases). Each image is opened twice: as a bare `CommitLog`
//! (its records read) and through `LoggedMap::open` (replayed into the map).
//!
//! Each must give a typed error, or: for damage the checksums still vouch for, exactly
//! a prefix of the committed records (the map then holds the state after one of the
//! commits); for forgeries, some consistent map. Never a panic, a runaway (every region
//! call counts against a budget) or an allocation past the bound. And a database that
//! opened must keep a durable commit made after it: it is committed, the map's bytes
//! are taken as they were before it (its commit is not synced), and the reopen must
//! hold it.

use core::panic::AssertUnwindSafe;
use std::collections::BTreeMap;
use std::panic;

use hamtdb_core::log::{CommitLog, LogOp, LogPolicy, LoggedMap};
use hamtdb_core::{Error, Map, MapOptions, Region, VecRegion};
use hamtdb_tests::SplitMix64;
use hamtdb_tests::damage::{
    ALLOCATION_LIMIT, AllocationWatch, BoundedRegion, Damage, bounded, error_kind,
};
use hamtdb_tests::log_damage::{
    HEADER_BASE, HEADER_EPOCH, LOG_HEADER_LEN, LOG_SLOTS, RECORD_HEADER_LEN, current_log_header,
    log_records, reseal_log_header, reseal_log_record,
};
use hamtdb_tests::map_model::{key, value};

#[global_allocator]
static WATCH: AllocationWatch = AllocationWatch;

const OPTIONS: MapOptions = MapOptions {
    inline_max: 16,
    seed: 0x0005_eed0_f10c,
};
const MAP_CAPACITY: usize = 1 << 20;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// A transaction's operations (`None` value: a delete).
type Ops = Vec<(Vec<u8>, Option<Vec<u8>>)>;
/// A record as read back: its txid and operations.
type OwnedRecord = (u64, Ops);

/// The map's image (at the log's base), the log's image, the map's state after each
/// logged commit (`states[0]`: the base) and the records.
struct Base {
    map: Vec<u8>,
    log: Vec<u8>,
    states: Vec<Model>,
    records: Vec<OwnedRecord>,
}

fn contents<L: Region>(db: &LoggedMap<VecRegion, L>) -> Model {
    db.map().iter().expect("iterate").into_iter().collect()
}

fn read_records<R: Region>(log: &CommitLog<R>) -> Result<Vec<OwnedRecord>, Error> {
    let mut out = Vec::new();
    for record in log.records() {
        let record = record?;
        let mut ops = Vec::new();
        for op in record.ops() {
            ops.push(match op? {
                LogOp::Put(k, v) => (k.to_vec(), Some(v.to_vec())),
                LogOp::Delete(k) => (k.to_vec(), None),
            });
        }
        out.push((record.txid, ops));
    }
    Ok(out)
}

/// Three checkpoints (both header slots valid, epoch 4, stale records of earlier epochs in
/// the record area), then seven logged commits the map holds only unsynced.
fn base() -> Base {
    let map = Map::create(VecRegion::with_capacity(MAP_CAPACITY), OPTIONS).expect("create");
    let (db, _) =
        LoggedMap::open(map, Some(VecRegion::new()), LogPolicy::default()).expect("create the log");
    let commit = |ops: &[(Vec<u8>, Option<Vec<u8>>)]| {
        let mut txn = db.begin_write();
        for (k, v) in ops {
            match v {
                Some(v) => {
                    txn.put(k, v).expect("put");
                }
                None => {
                    txn.delete(k).expect("delete");
                }
            }
        }
        txn.commit().expect("commit");
    };
    for round in 0..2u32 {
        for i in 0..6 {
            commit(&[(key(i + 10 * round), Some(value(30, i as u8)))]);
        }
        db.checkpoint().expect("checkpoint");
    }
    for i in 0..3 {
        commit(&[(key(100 + i), Some(value(20, 1)))]);
    }
    db.checkpoint().expect("checkpoint");
    let map_image = db.map().region().to_vec();
    let mut states = vec![contents(&db)];
    let txns: Vec<Ops> = vec![
        vec![(key(1), Some(value(8, 2)))],
        vec![(key(2), None), (key(200), Some(value(150, 3)))],
        vec![(Vec::new(), Some(value(0, 0)))],
        (300..308).map(|i| (key(i), Some(value(17, 4)))).collect(),
        vec![(key(200), Some(value(5, 5))), (key(300), None)],
        vec![(vec![0xAB; 300], Some(value(40, 6)))],
        vec![
            (key(11), None),
            (key(12), None),
            (key(13), Some(value(16, 7))),
        ],
    ];
    for ops in &txns {
        commit(ops);
        states.push(contents(&db));
    }
    let (_, log) = db.into_parts();
    let log = log.expect("a log");
    let records = read_records(&log).expect("the undamaged log reads");
    assert_eq!(records.len(), txns.len());
    let log = log.into_region().to_vec();
    assert_eq!(
        log_records(&log).len(),
        txns.len(),
        "FORMAT.md reads them too"
    );
    assert_eq!(
        current_log_header(&log).map(|h| h.2),
        Some(4),
        "the creation and three checkpoints: epoch 4"
    );
    Base {
        map: map_image,
        log,
        states,
        records,
    }
}

/// One damaged log image.
struct Case {
    what: String,
    image: Vec<u8>,
    /// The checksums still vouch for what verifies: only a prefix may be read.
    honest: bool,
}

fn cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();
    let len = base.log.len();
    let honest = |what: String, damage: Damage| Case {
        what,
        image: damage.apply(&base.log, 0),
        honest: true,
    };
    for offset in 0..len {
        for mask in [0x01, 0x80, 0xFF] {
            cases.push(honest(
                format!("flip {offset} ^ {mask:#x}"),
                Damage::Flip { offset, mask },
            ));
        }
    }
    for cut in 0..len {
        cases.push(honest(
            format!("truncate {cut}"),
            Damage::Truncate { len: cut },
        ));
    }
    let mut rng = SplitMix64::new(0x10c);
    for n in 0..300 {
        let offset = rng.below(len as u64) as usize;
        let glen = 1 + rng.below(64) as usize;
        cases.push(honest(
            format!("garbage {glen} at {offset} ({n})"),
            Damage::Garbage {
                offset,
                len: glen,
                seed: rng.next_u64(),
            },
        ));
    }

    // Forgeries: the header.
    let (slot, seed, epoch, base_txid) = current_log_header(&base.log).expect("a header");
    let forge = |what: String, honest: bool, f: &dyn Fn(&mut Vec<u8>)| {
        let mut image = base.log.clone();
        f(&mut image);
        Case {
            what,
            image,
            honest,
        }
    };
    for s in LOG_SLOTS {
        for byte in 0..60 {
            for mask in [0x01, 0x80] {
                cases.push(forge(
                    format!("header {s} byte {byte} ^ {mask:#x}, resealed"),
                    false,
                    &|im| {
                        im[s + byte] ^= mask;
                        reseal_log_header(im, s);
                    },
                ));
            }
        }
        for (field, name) in [(HEADER_EPOCH, "epoch"), (HEADER_BASE, "base")] {
            for v in [
                0,
                1,
                2,
                4,
                base_txid.wrapping_sub(1),
                base_txid + 1,
                base_txid + 7,
                u64::MAX - 1,
                u64::MAX,
            ] {
                cases.push(forge(
                    format!("header {s} {name} = {v}, resealed"),
                    false,
                    &|im| {
                        im[s + field..s + field + 8].copy_from_slice(&v.to_le_bytes());
                        reseal_log_header(im, s);
                    },
                ));
            }
        }
    }
    cases.push(forge("header slots swapped".into(), true, &|im| {
        let (a, b) = im.split_at_mut(LOG_SLOTS[1]);
        a[..LOG_HEADER_LEN].swap_with_slice(&mut b[..LOG_HEADER_LEN]);
    }));
    cases.push(forge("current slot zeroed".into(), true, &|im| {
        im[slot..slot + LOG_HEADER_LEN].fill(0);
    }));

    // Forgeries: the records, each field and the first operation bytes, resealed.
    let records = log_records(&base.log);
    let reseal = |im: &mut Vec<u8>, at: usize| reseal_log_record(im, seed, epoch, at);
    for (k, &(at, rlen, _)) in records.iter().enumerate() {
        for byte in 4..rlen.min(RECORD_HEADER_LEN + 48) {
            for mask in [0x01, 0x80, 0xFF] {
                cases.push(forge(
                    format!("record {k} byte {byte} ^ {mask:#x}, resealed"),
                    false,
                    &|im| {
                        im[at + byte] ^= mask;
                        reseal(im, at);
                    },
                ));
            }
        }
        let set32 = |im: &mut Vec<u8>, field: usize, v: u32| {
            im[at + field..at + field + 4].copy_from_slice(&v.to_le_bytes());
        };
        for count in [0, 1, 2, 1000, u32::MAX] {
            cases.push(forge(
                format!("record {k} count = {count}, resealed"),
                false,
                &|im| {
                    set32(im, 16, count);
                    reseal(im, at);
                },
            ));
        }
        for l in [0, 8, 23, 24, 25, rlen as u32 - 1, rlen as u32 + 8, u32::MAX] {
            cases.push(forge(
                format!("record {k} len = {l}, resealed"),
                false,
                &|im| {
                    set32(im, 4, l);
                    reseal(im, at);
                },
            ));
        }
        for (what, field, v) in [
            ("key len", 2usize, 0xFFFFu32),
            ("value len", 4, u32::MAX),
            ("value len", 4, 1 << 20),
        ] {
            cases.push(forge(
                format!("record {k} first op {what} = {v:#x}, resealed"),
                false,
                &|im| {
                    let op = at + RECORD_HEADER_LEN;
                    if field == 2 {
                        im[op + 2..op + 4].copy_from_slice(&(v as u16).to_le_bytes());
                    } else {
                        im[op + 4..op + 8].copy_from_slice(&v.to_le_bytes());
                    }
                    reseal(im, at);
                },
            ));
        }
        // A txid gap, resealed: the log ends before it, whatever follows.
        for gap in [2u64, 1 << 40] {
            cases.push(forge(
                format!("record {k} txid + {gap}, resealed"),
                true,
                &|im| {
                    let t = u64::from_le_bytes(im[at + 8..at + 16].try_into().unwrap());
                    im[at + 8..at + 16].copy_from_slice(&(t + gap).to_le_bytes());
                    reseal(im, at);
                },
            ));
        }
        // The record moved to the next free offset: its seed names its old offset.
        cases.push(forge(
            format!("record {k} copied past the end"),
            true,
            &|im| {
                let end = (im.len()).next_multiple_of(8);
                let rec = im[at..at + rlen].to_vec();
                im.resize(end, 0);
                im.extend_from_slice(&rec);
            },
        ));
    }
    // Every record resealed under the other slot's epoch, that slot made current.
    cases.push(forge(
        "records resealed for a forged newer slot".into(),
        false,
        &|im| {
            let other = LOG_SLOTS[1 - LOG_SLOTS.iter().position(|&s| s == slot).unwrap()];
            im.copy_within(slot..slot + LOG_HEADER_LEN, other);
            im[other + HEADER_EPOCH..other + HEADER_EPOCH + 8]
                .copy_from_slice(&(epoch + 1).to_le_bytes());
            reseal_log_header(im, other);
            for &(at, _, _) in &records {
                reseal_log_record(im, seed, epoch + 1, at);
            }
        },
    ));
    cases
}

/// What one case came to.
enum Outcome {
    Error(&'static str),
    /// Opened: the index of the state it replayed to (`None`: a forged one).
    Opened {
        state: Option<usize>,
    },
}

fn check_case(case: &Case, base: &Base) -> Result<Outcome, String> {
    // The bare log: records read, and whether they are the committed ones.
    let region = BoundedRegion::new(&case.image);
    let read = CommitLog::open(region).and_then(|log| read_records(&log));
    bounded("CommitLog::open", &read)?;
    let log_records = match &read {
        Ok(records) => {
            let prefix =
                records.len() <= base.records.len() && records[..] == base.records[..records.len()];
            if case.honest && !prefix {
                return Err(format!(
                    "the log read {} records that are not a prefix of the committed ones",
                    records.len()
                ));
            }
            Some(records.len())
        }
        Err(_) => None,
    };

    // Through the map.
    let map = Map::open(VecRegion::from_bytes(&base.map, MAP_CAPACITY)).expect("the map opens");
    let opened = LoggedMap::open(
        map,
        Some(BoundedRegion::new(&case.image)),
        LogPolicy::default(),
    );
    bounded("LoggedMap::open", &opened)?;
    let db = match opened {
        Ok((db, _)) => db,
        Err(e) => {
            return Ok(Outcome::Error(error_kind(&e)));
        }
    };
    let report = db.map().check();
    if !report.is_ok() {
        return Err(format!("the replayed map does not check: {report:?}"));
    }
    let state = contents(&db);
    let index = base.states.iter().position(|s| *s == state);
    if case.honest {
        let Some(i) = index else {
            return Err("the replayed map is none of the committed states".into());
        };
        if log_records.is_some_and(|n| n != i) {
            return Err(format!(
                "the bare log read {log_records:?} records, the map replayed {i}"
            ));
        }
    }

    // A durable commit after recovery survives a crash that loses the map's unsynced
    // bytes (the map as the open's checkpoint left it).
    let synced_map = db.map().region().to_vec();
    let mut txn = db.begin_write();
    let committed = txn
        .put(b"after recovery", b"durable")
        .and_then(|_| txn.commit());
    bounded("a commit after recovery", &committed)?;
    committed.map_err(|e| format!("a commit after recovery failed: {e:?}"))?;
    let (_, log) = db.into_parts();
    let log_image = log.expect("a log").into_region().to_vec();
    let map = Map::open(VecRegion::from_bytes(&synced_map, MAP_CAPACITY)).expect("reopen map");
    let reopened = LoggedMap::open(
        map,
        Some(BoundedRegion::new(&log_image)),
        LogPolicy::default(),
    );
    bounded("the reopen", &reopened)?;
    let (db, _) = reopened.map_err(|e| format!("the reopen failed: {e:?}"))?;
    let mut expected = state;
    expected.insert(b"after recovery".to_vec(), b"durable".to_vec());
    if contents(&db) != expected {
        return Err("the durable commit after recovery was lost on reopen".into());
    }
    Ok(Outcome::Opened { state: index })
}

#[test]
fn damaged_logs_give_typed_errors_or_a_prefix_of_the_records() {
    let base = base();
    let cases = cases(&base);
    let mut failures = Vec::new();
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    let mut largest = 0;
    for case in &cases {
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            AllocationWatch::watch(|| check_case(case, &base))
        }));
        largest = largest.max(AllocationWatch::largest());
        match result {
            // A log cut anywhere is a torn tail: it opens (to a prefix), whatever the
            // length, as one shorter than its header slots (nothing in it) does.
            Ok(Ok(Outcome::Error(kind))) if case.what.starts_with("truncate") => {
                failures.push(format!("{}: {kind}", case.what));
            }
            Ok(Ok(Outcome::Error(kind))) => *tally.entry(format!("error {kind}")).or_default() += 1,
            Ok(Ok(Outcome::Opened { state })) => {
                let what = match state {
                    Some(i) if i == base.records.len() => "all records".to_string(),
                    Some(i) => format!("prefix of {i}"),
                    None => "another state (forged)".to_string(),
                };
                *tally.entry(what).or_default() += 1;
            }
            Ok(Err(why)) => failures.push(format!("{}: {why}", case.what)),
            Err(_) => failures.push(format!("{}: panicked", case.what)),
        }
    }
    eprintln!(
        "log corruption: {} damaged logs ({} bytes, {} records), largest allocation {largest} B",
        cases.len(),
        base.log.len(),
        base.records.len()
    );
    for (what, n) in &tally {
        eprintln!("log corruption:   {what:<28} {n:>6}");
    }
    assert!(
        largest <= ALLOCATION_LIMIT,
        "an allocation of {largest} bytes"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures[..failures.len().min(40)].join("\n")
    );
    // The sweep reached every outcome it is about.
    assert!(tally.keys().any(|k| k.starts_with("prefix")));
    assert!(tally.keys().any(|k| k.starts_with("error")));
    assert!(tally.contains_key("all records"));
}
