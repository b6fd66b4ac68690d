//! The commit log's golden image, log format version 1 as this code writes it:
//! `tests/fixtures/v1/log.img`, the log of a map with seed `0x0123_4567_89AB_CDEF` after
//! its creation, logged commits, a checkpoint (so slot 1 is current, epoch 2) and more
//! logged commits: puts inline and long, an overwrite, deletes, the empty key, a
//! transaction of several operations and an eventual commit followed by a sync.
//!
//! As long as the log format is version 1, the current code must write it byte for byte
//! (`current_code_writes_the_golden_log`), and the image is read here by hand as
//! docs/FORMAT.md ("Commit log") describes it, so the section is pinned: every offset,
//! the checksums, the record and operation layouts.
//!
//! Regenerate only for a deliberate format change (and a new `vN` directory):
//! `HAMTDB_BLESS=1 cargo test -p hamtdb-tests --test log_golden`.

use std::collections::BTreeMap;

use hamtdb_core::log::{
    CommitLog, LOG_DATA_START, LOG_MAGIC, LOG_VERSION, LogPolicy, LoggedMap, RECORD_HEADER_LEN,
};
use hamtdb_core::{Durability, Error, Map, MapOptions, VecRegion};
use hamtdb_tests::damage::{le32, le64};
use hamtdb_tests::log_damage::{
    current_log_header, log_header_valid, log_record_checksum, log_records, reseal_log_header,
};

/// Relative to the package root, where `cargo test` runs integration tests.
const LOG_FIXTURE: &str = "fixtures/v1/log.img";
const SEED: u64 = 0x0123_4567_89AB_CDEF;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// A transaction: `None` value is a delete.
type Txn = Vec<(Vec<u8>, Option<Vec<u8>>)>;

fn key(i: u32) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

/// Before the checkpoint, and after it (the records the image holds).
fn script() -> (Vec<Txn>, Vec<(Txn, Durability)>) {
    let before = vec![
        (0..4)
            .map(|i| (key(i), Some(vec![b'a' + i as u8; 8])))
            .collect(),
        vec![(key(1), None)],
    ];
    let after = vec![
        (
            vec![(key(10), Some(b"ten".to_vec()))],
            Durability::Immediate,
        ),
        (vec![(key(0), Some(vec![0x5A; 300]))], Durability::Immediate),
        (
            vec![(Vec::new(), Some(b"the empty key".to_vec()))],
            Durability::Immediate,
        ),
        (
            vec![
                (key(2), None),
                (key(11), Some(Vec::new())),
                (key(3), Some(b"over".to_vec())),
            ],
            Durability::Immediate,
        ),
        (
            vec![(key(12), Some(b"eventual".to_vec()))],
            Durability::Eventual,
        ),
    ];
    (before, after)
}

fn apply(model: &mut Model, txn: &Txn) {
    for (k, v) in txn {
        match v {
            Some(v) => model.insert(k.clone(), v.clone()),
            None => model.remove(k),
        };
    }
}

struct Written {
    log: Vec<u8>,
    /// The map at the log's base, and its contents then.
    base_map: Vec<u8>,
    base: Model,
    last: Model,
}

fn write() -> Written {
    let options = MapOptions {
        inline_max: 16,
        seed: SEED,
    };
    let map = Map::create(VecRegion::new(), options).unwrap();
    let (db, _) = LoggedMap::open(map, Some(VecRegion::new()), LogPolicy::default()).unwrap();
    let run = |txn: &Txn, durability| {
        let mut t = db.begin_write();
        for (k, v) in txn {
            match v {
                Some(v) => t.put(k, v).map(|_| ()),
                None => t.delete(k).map(|_| ()),
            }
            .unwrap();
        }
        t.commit_with(durability).unwrap();
    };
    let (before, after) = script();
    let mut model = Model::new();
    for txn in &before {
        run(txn, Durability::Immediate);
        apply(&mut model, txn);
    }
    db.checkpoint().unwrap();
    let base_map = db.map().region().to_vec();
    let base = model.clone();
    for (txn, durability) in &after {
        run(txn, *durability);
        apply(&mut model, txn);
    }
    db.sync().unwrap();
    let (_, log) = db.into_parts();
    Written {
        log: log.unwrap().into_region().to_vec(),
        base_map,
        base,
        last: model,
    }
}

fn read() -> Vec<u8> {
    std::fs::read(LOG_FIXTURE).unwrap_or_else(|e| panic!("{LOG_FIXTURE}: {e}"))
}

#[test]
fn current_code_writes_the_golden_log() {
    let written = write().log;
    if std::env::var_os("HAMTDB_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all("fixtures/v1").unwrap();
        std::fs::write(LOG_FIXTURE, &written).unwrap();
        eprintln!("wrote {LOG_FIXTURE} ({} bytes)", written.len());
    }
    let golden = read();
    if let Some(at) =
        (0..written.len().max(golden.len())).find(|&i| written.get(i) != golden.get(i))
    {
        panic!(
            "{LOG_FIXTURE}: the current code writes a different log: first difference at \
             byte {at} (written {} bytes, golden {} bytes). A format change needs a new \
             version and a new fixture directory, not a re-blessed v1.",
            written.len(),
            golden.len()
        );
    }
    assert_eq!(write().log, written, "writing is deterministic");
}

/// The golden log read by hand, as docs/FORMAT.md describes it.
#[test]
fn the_golden_log_is_what_format_md_says() {
    let image = read();
    let (before, after) = script();
    // The named constants are FORMAT.md's numbers.
    assert_eq!(LOG_DATA_START, 1024);
    assert_eq!(RECORD_HEADER_LEN, 24);
    assert_eq!(&LOG_MAGIC, b"hamtdbWL");
    assert_eq!(LOG_VERSION, 1);

    // Header slots at 0 and 512: 64 bytes used, the rest of the sector zero.
    let mut txid = 1 + before.len() as u64; // the map's creation is txid 1
    for (slot, epoch) in [(0usize, 1u64), (512, 2)] {
        let h = &image[slot..slot + 512];
        assert!(log_header_valid(&image, slot), "slot {slot}");
        assert_eq!(&h[0..8], b"hamtdbWL");
        assert_eq!(le32(&h[8..12]), 1, "version");
        assert_eq!(le32(&h[12..16]), 0, "reserved");
        assert_eq!(le64(&h[16..24]), SEED, "seed");
        assert_eq!(le64(&h[24..32]), epoch, "epoch");
        if slot == 512 {
            assert_eq!(le64(&h[32..40]), txid, "base_txid: the checkpoint's commit");
        }
        assert!(h[40..60].iter().all(|&b| b == 0), "reserved");
        assert!(h[64..].iter().all(|&b| b == 0), "the rest of the slot");
    }
    assert_eq!(current_log_header(&image).map(|h| h.0), Some(512));

    // Records from 1024, each at a multiple of 8, consecutive txids, checksums as
    // FORMAT.md defines them (computed here, not by the core).
    let records = log_records(&image);
    assert_eq!(records.len(), after.len());
    let mut at = 1024;
    for ((offset, len, rtxid), (txn, _)) in records.iter().zip(&after) {
        txid += 1;
        assert_eq!((*offset, *rtxid), (at, txid));
        let r = &image[at..at + len];
        assert_eq!(le32(&r[0..4]), log_record_checksum(SEED, 2, at as u64, r));
        assert_eq!(le32(&r[4..8]) as usize, *len);
        assert_eq!(le64(&r[8..16]), txid);
        assert_eq!(le32(&r[16..20]) as usize, txn.len(), "count");
        assert_eq!(le32(&r[20..24]), 0, "reserved");
        let mut op = 24;
        for (k, v) in txn {
            let (kind, vlen) = match v {
                Some(v) => (1, v.len()),
                None => (2, 0),
            };
            assert_eq!(r[op], kind);
            assert_eq!(r[op + 1], 0, "reserved");
            assert_eq!(u16::from_le_bytes([r[op + 2], r[op + 3]]) as usize, k.len());
            assert_eq!(le32(&r[op + 4..op + 8]) as usize, vlen);
            assert_eq!(&r[op + 8..op + 8 + k.len()], &k[..]);
            if let Some(v) = v {
                assert_eq!(&r[op + 8 + k.len()..op + 8 + k.len() + vlen], &v[..]);
            }
            op += 8 + k.len() + vlen;
        }
        assert_eq!(op, *len, "the operations fill the record");
        at = (at + len).next_multiple_of(8);
    }
}

/// The golden log replays onto the map at its base, to the script's last state.
#[test]
fn the_golden_log_replays() {
    let written = write();
    let map = Map::open(VecRegion::from_bytes(&written.base_map, 1 << 20)).unwrap();
    assert_eq!(
        map.iter().unwrap().into_iter().collect::<Model>(),
        written.base
    );
    let (db, recovery) = LoggedMap::open(
        map,
        Some(VecRegion::from_bytes(&read(), 1 << 20)),
        LogPolicy::default(),
    )
    .unwrap();
    assert_eq!(recovery.replayed, script().1.len() as u64);
    assert_eq!(
        db.map().iter().unwrap().into_iter().collect::<Model>(),
        written.last
    );
}

/// A header of a later log version in either slot is refused by name, not skipped for
/// the other slot: taking the older slot would drop the newer writer's records and
/// overwrite its header at the next reset.
#[test]
fn a_later_log_version_in_one_slot_is_refused() {
    for slot in [0, 512] {
        let mut image = read();
        image[slot + 8..slot + 12].copy_from_slice(&2u32.to_le_bytes());
        reseal_log_header(&mut image, slot);
        let opened = CommitLog::open(VecRegion::from_bytes(&image, 1 << 20));
        assert_eq!(
            opened.err(),
            Some(Error::UnsupportedVersion { found: 2 }),
            "slot {slot}"
        );
    }
}
