//! `Db` in one process: concurrent stress (transfers under compaction and file growth,
//! group commit from many threads), zero-copy values across commits, the read and
//! write API, read-only opens, and releasing the file on drop and close.
//!
//! The tests that need a second process (kills, a full disk, locks across processes)
//! are in `db_process.rs`.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;
use std::collections::{BTreeMap, HashSet};
use std::sync::Barrier;

use hamtdb::log::LogPolicy;
use hamtdb::{Db, DbCompactionPolicy, DbError, Durability, Error, MAX_KEY_LEN, Options, ReadTxn};

mod common;
use common::{Rng, small_growth};

// `Db` is shared between threads by reference: it must be `Send + Sync`.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Db>();
};

// ---------------------------------------------------------------------------------------
// Stress: transfers between accounts.

const ACCOUNTS: u32 = 400;
const INITIAL_BALANCE: u64 = 1_000_000;
const TRANSFERS: u64 = 3_000;
const PINNED_TRANSFERS: u64 = 1_000;

fn account_key(id: u32) -> Vec<u8> {
    format!("account/{id:04}").into_bytes()
}

/// An account's value: balance, id, version, and padding derived from all three (so a
/// torn or misplaced value is detected). Lengths run from about 200 to 700 bytes, on
/// both sides of the default inline limit (512), so values live both inside nodes and
/// in entries of their own.
fn account_value(id: u32, version: u32, balance: u64) -> Vec<u8> {
    let pad = 200 + (version as usize * 37 + id as usize * 11) % 500;
    let mut v = Vec::with_capacity(16 + pad);
    v.extend_from_slice(&balance.to_le_bytes());
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&version.to_le_bytes());
    let seed = balance as u8 ^ (version as u8).wrapping_mul(7) ^ id as u8;
    v.extend((0..pad).map(|i| seed.wrapping_add(i as u8)));
    v
}

/// Decodes and verifies an account value: `(version, balance)`.
fn decode_account(id: u32, v: &[u8]) -> (u32, u64) {
    assert!(v.len() >= 16, "account {id}: short value");
    let balance = u64::from_le_bytes(v[0..8].try_into().unwrap());
    let stored_id = u32::from_le_bytes(v[8..12].try_into().unwrap());
    let version = u32::from_le_bytes(v[12..16].try_into().unwrap());
    assert_eq!(stored_id, id, "value of another account");
    assert_eq!(
        v,
        &account_value(id, version, balance)[..],
        "account {id}: damaged value"
    );
    (version, balance)
}

/// Sum of balances in `snap`, by `get` of every account or by iterating; checks the
/// account count and every value. Also returns a fingerprint of the raw bytes.
fn snapshot_sum(snap: &ReadTxn<'_, hamtdb::FileRegion>, by_iter: bool) -> (u64, u64) {
    assert_eq!(snap.len(), u64::from(ACCOUNTS));
    let mut sum = 0u64;
    let mut fingerprint = 0u64;
    let mut add = |id: u32, v: &[u8]| {
        let (version, balance) = decode_account(id, v);
        sum += balance;
        fingerprint = fingerprint
            .wrapping_mul(31)
            .wrapping_add(u64::from(version) << 32 ^ balance ^ u64::from(id));
    };
    if by_iter {
        let mut pairs = snap.iter().unwrap();
        assert_eq!(pairs.len(), ACCOUNTS as usize);
        pairs.sort();
        for (i, (k, v)) in pairs.into_iter().enumerate() {
            let id = i as u32;
            assert_eq!(k, &account_key(id)[..]);
            add(id, v);
        }
    } else {
        for id in 0..ACCOUNTS {
            let v = snap
                .get(&account_key(id))
                .unwrap()
                .expect("account missing");
            add(id, v);
        }
    }
    (sum, fingerprint)
}

#[test]
fn stress_transfers_keep_the_sum_under_compaction_and_growth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    let db = Db::builder()
        .growth(small_growth())
        .reservation(1 << 30)
        .compaction(DbCompactionPolicy {
            space_percent: 30,
            space_min_bytes: 32 << 10,
            interval: Some(Duration::from_millis(150)),
        })
        .seed(7)
        .open(&path)
        .unwrap();
    let file_len = || std::fs::metadata(&path).unwrap().len();
    let created_len = file_len();
    assert_eq!(created_len, 64 << 10);
    let total = u64::from(ACCOUNTS) * INITIAL_BALANCE;
    for chunk in (0..ACCOUNTS).collect::<Vec<_>>().chunks(50) {
        let mut txn = db.begin_write().unwrap();
        for &id in chunk {
            let new = txn
                .put(&account_key(id), &account_value(id, 0, INITIAL_BALANCE))
                .unwrap();
            assert!(new);
        }
        txn.commit().unwrap();
    }
    // About 180 KB of accounts: the file doubled at least twice while loading.
    let start_len = file_len();
    assert!(start_len >= 4 * created_len, "{start_len}");

    let done = AtomicBool::new(false);
    let readers = 3;
    let snapshots_checked: Vec<AtomicU64> = (0..readers).map(|_| AtomicU64::new(0)).collect();
    let compactions = AtomicU64::new(0);
    let compactions_moving = AtomicU64::new(0);
    let bytes_moved = AtomicU64::new(0);

    let (committed, aborted, growths, max_len) = std::thread::scope(|scope| {
        // Readers: the invariant on every snapshot; an old snapshot is kept for a while
        // and must read exactly the same afterwards (its space is not reused).
        for (r, counter) in snapshots_checked.iter().enumerate() {
            let db = &db;
            let done = &done;
            scope.spawn(move || {
                let mut held: Option<(ReadTxn<'_, _>, u64, u64)> = None;
                let mut n = 0u64;
                loop {
                    let snap = db.begin_read();
                    let (sum, fp) = snapshot_sum(&snap, (n + r as u64).is_multiple_of(2));
                    assert_eq!(sum, total, "reader {r}: sum broken at txid {}", snap.txid());
                    n += 1;
                    if n.is_multiple_of(5) {
                        if let Some((old, old_sum, old_fp)) = held.take() {
                            let again = snapshot_sum(&old, n.is_multiple_of(2));
                            assert_eq!(again, (old_sum, old_fp), "old snapshot changed");
                        }
                        held = Some((snap, sum, fp));
                    }
                    if done.load(Ordering::Acquire) {
                        break;
                    }
                }
                counter.store(n, Ordering::Release);
            });
        }
        // Compaction, explicitly and (by the policy) in the background.
        {
            let db = &db;
            let done = &done;
            let (compactions, compactions_moving, bytes_moved) =
                (&compactions, &compactions_moving, &bytes_moved);
            scope.spawn(move || {
                loop {
                    let report = db.compact().unwrap();
                    compactions.fetch_add(1, Ordering::Relaxed);
                    if report.bytes_moved > 0 {
                        compactions_moving.fetch_add(1, Ordering::Relaxed);
                        bytes_moved.fetch_add(report.bytes_moved, Ordering::Relaxed);
                    }
                    if done.load(Ordering::Acquire) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        // The writer.
        let writer = scope.spawn(|| {
            let mut rng = Rng(0x5eed);
            let (mut committed, mut aborted, mut growths) = (0u64, 0u64, 0u64);
            let mut last_len = start_len;
            let mut max_len = start_len;
            // A snapshot pinned over the first thousand transfers: nothing they free can
            // be reused meanwhile, so the file must grow.
            let mut pin = Some(db.begin_read());
            for i in 0..TRANSFERS {
                if i == PINNED_TRANSFERS {
                    let pin = pin.take().unwrap();
                    assert_eq!(snapshot_sum(&pin, true).0, total);
                }
                let a = rng.below(u64::from(ACCOUNTS)) as u32;
                let b = (a + 1 + rng.below(u64::from(ACCOUNTS) - 1) as u32) % ACCOUNTS;
                let mut txn = db.begin_write().unwrap();
                let (va, ba) = decode_account(a, txn.get(&account_key(a)).unwrap().unwrap());
                let (vb, bb) = decode_account(b, txn.get(&account_key(b)).unwrap().unwrap());
                let amount = rng.below(ba + 1);
                let new_a = account_value(a, va + 1, ba - amount);
                let new_b = account_value(b, vb + 1, bb + amount);
                assert!(!txn.put(&account_key(a), &new_a).unwrap());
                assert!(!txn.put(&account_key(b), &new_b).unwrap());
                assert_eq!(txn.get(&account_key(a)).unwrap(), Some(&new_a[..]));
                assert_eq!(txn.len(), u64::from(ACCOUNTS));
                match i % 10 {
                    // Money out of thin air, then abort: nobody may see it.
                    9 => {
                        txn.put(&account_key(a), &account_value(a, va + 1, ba + 1_000))
                            .unwrap();
                        txn.abort();
                        aborted += 1;
                        continue;
                    }
                    0 | 3 | 6 => txn.commit_with(Durability::Eventual).unwrap(),
                    _ => txn.commit().unwrap(),
                }
                committed += 1;
                let len = std::fs::metadata(&path).unwrap().len();
                if len > last_len {
                    growths += 1;
                }
                last_len = len;
                max_len = max_len.max(len);
            }
            done.store(true, Ordering::Release);
            (committed, aborted, growths, max_len)
        });
        writer.join().unwrap()
    });

    let checked: Vec<u64> = snapshots_checked
        .iter()
        .map(|c| c.load(Ordering::Acquire))
        .collect();
    let report = db.check();
    assert!(report.is_ok(), "{:?}", report.problems);
    let final_snap = db.begin_read();
    assert_eq!(snapshot_sum(&final_snap, true).0, total);
    drop(final_snap);
    // With no snapshot left, a compaction gives the garbage back to the file system.
    let end_len = file_len();
    let last = db.compact().unwrap();
    let compacted_len = file_len();
    assert!(db.check().is_ok());
    let stats = db.stats().unwrap();
    eprintln!(
        "stress transfers: {committed} committed + {aborted} aborted, snapshots checked per \
         reader {checked:?}, file {created_len} B -> {start_len} B after loading, then \
         {growths} growths seen by the writer during transfers (max {max_len} B, end {end_len} B, \
         {compacted_len} B after a last compaction moved {} B), explicit compactions {} ({} moved {} B in all)",
        last.bytes_moved,
        compactions.load(Ordering::Relaxed),
        compactions_moving.load(Ordering::Relaxed),
        bytes_moved.load(Ordering::Relaxed),
    );
    assert_eq!(committed + aborted, TRANSFERS);
    assert!(checked.iter().all(|&n| n > 0), "a reader checked nothing");
    assert!(growths >= 1, "the file never grew");
    assert!(max_len > start_len);
    assert!(compactions.load(Ordering::Relaxed) > 0);
    assert_eq!(compacted_len, stats.region_len);
    assert!(stats.used_end <= compacted_len);
    assert!(
        compacted_len <= 2 * start_len,
        "compaction left {compacted_len} B"
    );

    // Everything survives closing and reopening.
    let versions: u64 = db
        .iter()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let id: u32 = core::str::from_utf8(&k[8..]).unwrap().parse().unwrap();
            u64::from(decode_account(id, v).0)
        })
        .sum();
    // Each committed transfer bumped two versions.
    assert_eq!(versions, 2 * committed);
    db.close().unwrap();
    let db = Db::open(&path).unwrap();
    assert!(db.check().is_ok());
    assert_eq!(snapshot_sum(&db.begin_read(), false).0, total);
}

// ---------------------------------------------------------------------------------------
// Stress: group commit.

fn put_key(thread: usize, i: usize) -> Vec<u8> {
    format!("t{thread}/k{i:05}").into_bytes()
}

fn put_value(thread: usize, i: usize, round: u8) -> Vec<u8> {
    let len = 20 + (i * 53 + thread * 7) % 900;
    (0..len)
        .map(|j| (j as u8) ^ (i as u8) ^ round.wrapping_mul(13) ^ thread as u8)
        .collect()
}

#[test]
fn stress_concurrent_puts_share_group_commits() {
    const THREADS: usize = 4;
    const KEYS: usize = 250;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let db = Db::builder().growth(small_growth()).open(&path).unwrap();
    let txid_before = db.begin_read().txid();
    let start = Barrier::new(THREADS);
    let ops = AtomicU64::new(0);

    let expected: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (db, start, ops) = (&db, &start, &ops);
                scope.spawn(move || {
                    let mut mine = BTreeMap::new();
                    start.wait();
                    for i in 0..KEYS {
                        let (k, v) = (put_key(t, i), put_value(t, i, 0));
                        assert!(db.put(&k, &v).unwrap(), "new key reported as replaced");
                        // The put is committed when it returns: visible to its caller.
                        assert_eq!(db.get_owned(&k).unwrap(), Some(v.clone()));
                        mine.insert(k, v);
                    }
                    for i in (0..KEYS).step_by(2) {
                        let (k, v) = (put_key(t, i), put_value(t, i, 1));
                        assert!(!db.put(&k, &v).unwrap(), "replacement reported as new");
                        assert_eq!(db.get(&k).unwrap().as_deref(), Some(&v[..]));
                        mine.insert(k, v);
                    }
                    for i in (0..KEYS).step_by(4) {
                        let k = put_key(t, i);
                        assert!(db.delete(&k).unwrap());
                        assert!(!db.delete(&k).unwrap(), "deleted twice");
                        assert!(!db.contains_key(&k).unwrap());
                        mine.remove(&k);
                    }
                    ops.fetch_add(
                        (KEYS + KEYS / 2 + 2 * KEYS.div_ceil(4)) as u64,
                        Ordering::Relaxed,
                    );
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let all: BTreeMap<Vec<u8>, Vec<u8>> = expected.into_iter().flatten().collect();
    let commits = db.begin_read().txid() - txid_before;
    let ops = ops.load(Ordering::Relaxed);
    eprintln!(
        "group commit: {THREADS} threads, {ops} put/delete calls, {commits} commits, {} keys",
        all.len()
    );
    // Deleting an absent key commits nothing; every other call is in some commit.
    assert!(commits >= 1 && commits <= ops);
    assert_eq!(db.len(), all.len() as u64);
    let mut pairs = db.iter().unwrap();
    pairs.sort();
    assert_eq!(pairs, all.clone().into_iter().collect::<Vec<_>>());
    assert!(db.check().is_ok());
    db.close().unwrap();
    let db = Db::open(&path).unwrap();
    let mut pairs = db.iter().unwrap();
    pairs.sort();
    assert_eq!(pairs, all.into_iter().collect::<Vec<_>>());
}

#[test]
fn stress_mixed_writers_with_eventual_durability_background_flush_and_compaction() {
    // Group-committed puts and deletes from two threads, explicit transactions from a
    // third, a reader, and the background flusher and compactor, all at once.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.db");
    let db = Db::builder()
        .durability(Durability::Eventual)
        .growth(small_growth())
        .flush_interval(Some(Duration::from_millis(2)))
        .compaction(DbCompactionPolicy {
            space_percent: 20,
            space_min_bytes: 16 << 10,
            interval: Some(Duration::from_millis(10)),
        })
        .open(&path)
        .unwrap();
    let done = AtomicBool::new(false);
    let (maps, txns, snapshots) = std::thread::scope(|scope| {
        let putters: Vec<_> = (0..2)
            .map(|t| {
                let db = &db;
                scope.spawn(move || {
                    let mut mine = BTreeMap::new();
                    let mut rng = Rng(t as u64 + 100);
                    for step in 0..1500 {
                        let i = rng.below(300) as usize;
                        let k = put_key(t, i);
                        if rng.below(4) == 0 {
                            assert_eq!(db.delete(&k).unwrap(), mine.remove(&k).is_some());
                        } else {
                            let v = put_value(t, i, step as u8);
                            assert_eq!(db.put(&k, &v).unwrap(), mine.insert(k, v).is_none());
                        }
                    }
                    mine
                })
            })
            .collect();
        // Transactions keep `txn/sum` equal to the sum of the `txn/i` values.
        let txns = scope.spawn(|| {
            let mut rng = Rng(7);
            for n in 0..400u64 {
                let mut txn = db.begin_write().unwrap();
                let i = rng.below(20);
                let key = format!("txn/{i}");
                let old = txn
                    .get(key.as_bytes())
                    .unwrap()
                    .map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()));
                let sum = txn
                    .get(b"txn/sum")
                    .unwrap()
                    .map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()));
                let new = rng.below(1000);
                txn.put(key.as_bytes(), &new.to_le_bytes()).unwrap();
                txn.put(b"txn/sum", &(sum - old + new).to_le_bytes())
                    .unwrap();
                if n % 3 == 0 {
                    txn.commit_with(Durability::Immediate).unwrap();
                } else {
                    txn.commit().unwrap();
                }
            }
            400
        });
        let reader = scope.spawn(|| {
            let mut checked = 0u64;
            loop {
                let snap = db.begin_read();
                let sum = snap
                    .get(b"txn/sum")
                    .unwrap()
                    .map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()));
                let parts: u64 = (0..20)
                    .filter_map(|i| snap.get(format!("txn/{i}").as_bytes()).unwrap())
                    .map(|v| u64::from_le_bytes(v.try_into().unwrap()))
                    .sum();
                assert_eq!(sum, parts, "a transaction seen in part");
                assert_eq!(snap.iter().unwrap().len() as u64, snap.len());
                checked += 1;
                if done.load(Ordering::Acquire) {
                    break checked;
                }
            }
        });
        let maps: Vec<_> = putters.into_iter().map(|h| h.join().unwrap()).collect();
        let txns = txns.join().unwrap();
        done.store(true, Ordering::Release);
        (maps, txns, reader.join().unwrap())
    });
    let mut expected: BTreeMap<Vec<u8>, Vec<u8>> = maps.into_iter().flatten().collect();
    for (k, v) in db.iter().unwrap() {
        if k.starts_with(b"txn/") {
            expected.insert(k, v);
        }
    }
    let check = |db: &Db| {
        assert!(db.check().is_ok());
        let mut pairs = db.iter().unwrap();
        pairs.sort();
        assert!(pairs.iter().map(|(k, v)| (k, v)).eq(expected.iter()));
    };
    check(&db);
    eprintln!(
        "mixed stress: 3000 group-committed calls, {txns} transactions, {snapshots} snapshots \
         checked, {} keys",
        expected.len()
    );
    db.close().unwrap();
    check(&Db::open(&path).unwrap());
}

#[test]
fn group_commit_gives_each_caller_its_own_result() {
    // One caller's bad put fails alone; the others in the same batch commit.
    const THREADS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder()
        .durability(Durability::Eventual)
        .open(dir.path().join("db"))
        .unwrap();
    let start = Barrier::new(THREADS);
    let too_long = vec![b'x'; MAX_KEY_LEN + 1];
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (db, start, too_long) = (&db, &start, &too_long);
            scope.spawn(move || {
                start.wait();
                for i in 0..100 {
                    if t == 0 && i % 3 == 0 {
                        let err = db.put(too_long, b"v").unwrap_err();
                        assert!(
                            matches!(err, DbError::Core(Error::TooLarge(t)) if t.what() == "key"),
                            "{err:?}"
                        );
                    } else {
                        assert!(db.put(&put_key(t, i), &put_value(t, i, 0)).unwrap());
                    }
                }
            });
        }
    });
    let bad = (0..100).filter(|i| i % 3 == 0).count();
    assert_eq!(db.len(), (THREADS * 100 - bad) as u64);
    assert_eq!(db.get_owned(&too_long).unwrap(), None);
    for t in 0..THREADS {
        for i in 0..100 {
            let expect = (t != 0 || i % 3 != 0).then(|| put_value(t, i, 0));
            assert_eq!(db.get_owned(&put_key(t, i)).unwrap(), expect);
        }
    }
    db.flush().unwrap();
    assert!(db.check().is_ok());
}

// ---------------------------------------------------------------------------------------
// Reading.

#[test]
fn value_stays_valid_while_another_thread_commits_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder()
        .growth(small_growth())
        .open(dir.path().join("db"))
        .unwrap();
    let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let small = b"inline value".to_vec();
    db.put(b"big", &big).unwrap();
    db.put(b"small", &small).unwrap();
    for i in 0..200 {
        db.put(format!("filler{i}").as_bytes(), &[i as u8; 300])
            .unwrap();
    }

    let big_value = db.get(b"big").unwrap().unwrap();
    let small_value = db.get(b"small").unwrap().unwrap();
    let big_ptr = big_value.as_ptr();
    assert_eq!(&*big_value, &big[..]);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for round in 0..30u8 {
                db.put(b"big", &vec![round; 20_000]).unwrap();
                let mut txn = db.begin_write().unwrap();
                txn.put(b"small", &[round; 12]).unwrap();
                for i in 0..200 {
                    let key = format!("filler{i}");
                    if (i + usize::from(round)) % 3 == 0 {
                        txn.delete(key.as_bytes()).unwrap();
                    } else {
                        txn.put(key.as_bytes(), &[round; 700]).unwrap();
                    }
                }
                txn.commit_with(Durability::Eventual).unwrap();
                db.compact().unwrap();
            }
            db.delete(b"big").unwrap();
            db.delete(b"small").unwrap();
            db.compact().unwrap();
        });
    });
    // Same bytes at the same place: the snapshot kept them from reuse and compaction.
    assert_eq!(big_value.as_ptr(), big_ptr);
    assert_eq!(&*big_value, &big[..]);
    assert_eq!(&*small_value, &small[..]);
    assert_eq!(db.get(b"big").unwrap().map(|v| v.to_vec()), None);
    drop((big_value, small_value));
    assert!(db.check().is_ok());
}

#[test]
fn get_get_owned_contains_iter_len_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::builder().seed(42).open(&path).unwrap();
    assert_eq!(db.path(), path);
    assert!(db.is_empty());
    assert_eq!(db.iter().unwrap(), vec![]);
    assert_eq!(db.get(b"missing").unwrap().map(|v| v.to_vec()), None);
    assert_eq!(db.get_owned(b"missing").unwrap(), None);

    let mut expected = BTreeMap::new();
    for i in 0..500u32 {
        let k = format!("key-{i}").into_bytes();
        // Some values inline, some in entries of their own, one empty.
        let v = vec![i as u8; (i as usize * 13) % 1500];
        assert!(db.put(&k, &v).unwrap());
        expected.insert(k, v);
    }
    assert!(!db.delete(b"never there").unwrap());
    assert!(db.delete(b"key-7").unwrap());
    expected.remove(&b"key-7"[..]);

    assert_eq!(db.len(), 499);
    assert!(!db.is_empty());
    assert!(db.contains_key(b"key-8").unwrap());
    assert!(!db.contains_key(b"key-7").unwrap());
    assert_eq!(db.get_owned(b"key-0").unwrap(), Some(vec![]));
    assert_eq!(
        db.get(b"key-100").unwrap().as_deref(),
        Some(&vec![100u8; 1300][..])
    );
    let mut pairs = db.iter().unwrap();
    assert_eq!(pairs.len(), 499);
    pairs.sort();
    assert_eq!(pairs, expected.clone().into_iter().collect::<Vec<_>>());

    let stats = db.stats().unwrap();
    assert_eq!(stats.entries, 499);
    assert_eq!(stats.depth_histogram.iter().sum::<u64>(), 499);
    let live: usize = expected.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert_eq!(stats.live_bytes, live as u64);
    assert!(stats.used_end <= stats.region_len);
    assert_eq!(
        stats.region_len,
        std::fs::metadata(&path).unwrap().len(),
        "region length is the file's"
    );
    let report = db.check();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.keys, 499);
}

#[test]
fn write_txn_sees_its_own_changes_and_abort_or_drop_discards_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db")).unwrap();
    db.put(b"a", b"1").unwrap();

    let mut txn = db.begin_write().unwrap();
    assert!(txn.put(b"b", b"2").unwrap());
    assert!(!txn.put(b"a", b"one").unwrap());
    assert!(txn.delete(b"a").unwrap());
    assert!(!txn.delete(b"a").unwrap());
    assert_eq!(txn.get(b"b").unwrap(), Some(&b"2"[..]));
    assert_eq!(txn.get(b"a").unwrap(), None);
    assert_eq!(txn.len(), 1);
    assert!(!txn.is_empty());
    // Readers meanwhile see the last commit, from this thread and others.
    assert_eq!(db.get_owned(b"a").unwrap(), Some(b"1".to_vec()));
    std::thread::scope(|s| {
        s.spawn(|| assert_eq!(db.get_owned(b"b").unwrap(), None));
    });
    txn.abort();
    assert_eq!(db.len(), 1);
    assert_eq!(db.get_owned(b"a").unwrap(), Some(b"1".to_vec()));

    {
        let mut txn = db.begin_write().unwrap();
        txn.put(b"dropped", b"x").unwrap();
    }
    assert!(!db.contains_key(b"dropped").unwrap());

    let mut txn = db.begin_write().unwrap();
    txn.put(b"c", b"3").unwrap();
    txn.delete(b"a").unwrap();
    txn.commit().unwrap();
    assert_eq!(db.len(), 1);
    assert_eq!(db.get_owned(b"c").unwrap(), Some(b"3".to_vec()));

    // A second writer waits for the first to finish.
    let txn = db.begin_write().unwrap();
    let second_done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let mut t = db.begin_write().unwrap();
            t.put(b"second", b"yes").unwrap();
            t.commit().unwrap();
            second_done.store(true, Ordering::Release);
        });
        let mut txn = txn;
        txn.put(b"first", b"yes").unwrap();
        assert!(!second_done.load(Ordering::Acquire));
        txn.commit().unwrap();
        waiter.join().unwrap();
    });
    assert_eq!(db.len(), 3);
    db.close().unwrap();
}

#[test]
fn eventual_commits_are_visible_at_once_and_survive_flush_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::builder()
        .durability(Durability::Eventual)
        .flush_interval(Some(Duration::from_millis(5)))
        .open(&path)
        .unwrap();
    for i in 0..100u32 {
        db.put(&i.to_le_bytes(), &[i as u8; 64]).unwrap();
        assert_eq!(
            db.get_owned(&i.to_le_bytes()).unwrap(),
            Some(vec![i as u8; 64])
        );
    }
    let mut txn = db.begin_write().unwrap();
    txn.put(b"txn", b"eventual").unwrap();
    txn.commit().unwrap();
    db.flush().unwrap();
    let mut txn = db.begin_write().unwrap();
    txn.put(b"immediate", b"now").unwrap();
    txn.commit_with(Durability::Immediate).unwrap();
    drop(db);
    let db = Db::open(&path).unwrap();
    assert_eq!(db.len(), 102);
    assert_eq!(db.get_owned(b"txn").unwrap(), Some(b"eventual".to_vec()));
    assert_eq!(db.get_owned(b"immediate").unwrap(), Some(b"now".to_vec()));
    assert!(db.check().is_ok());
}

// ---------------------------------------------------------------------------------------
// Opening, locking, closing.

#[test]
fn second_open_in_the_same_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::open(&path).unwrap();
    assert!(matches!(Db::open(&path), Err(DbError::Locked)));
    assert!(matches!(
        Db::builder().read_only(true).open(&path),
        Err(DbError::Locked)
    ));
    db.put(b"k", b"v").unwrap();
    drop(db);
    let db = Db::open(&path).unwrap();
    assert_eq!(db.get_owned(b"k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn read_only_refuses_writes_and_shares_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    assert!(matches!(
        Db::builder().read_only(true).open(&path),
        Err(DbError::Open(hamtdb::OpenError::Io(e))) if e.kind() == std::io::ErrorKind::NotFound
    ));
    assert!(!path.exists(), "a read-only open created the file");
    let db = Db::open(&path).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();

    let options = Db::builder()
        .read_only(true)
        .flush_interval(Some(Duration::from_millis(1)))
        .compaction(DbCompactionPolicy {
            space_percent: 1,
            space_min_bytes: 1,
            interval: Some(Duration::from_millis(1)),
        });
    let first = options.clone().open(&path).unwrap();
    let second = options.clone().open(&path).unwrap();
    assert!(matches!(Db::open(&path), Err(DbError::Locked)));
    for db in [&first, &second] {
        assert!(matches!(db.put(b"k", b"w"), Err(DbError::ReadOnly)));
        assert!(matches!(db.delete(b"k"), Err(DbError::ReadOnly)));
        assert!(matches!(db.begin_write(), Err(DbError::ReadOnly)));
        assert!(matches!(db.compact(), Err(DbError::ReadOnly)));
        assert_eq!(db.get_owned(b"k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(db.len(), 1);
        assert!(db.check().is_ok());
        db.flush().unwrap();
    }
    let err = first.put(b"x", b"y").unwrap_err();
    assert_eq!(err.to_string(), "the database was opened read-only");
    assert!(!err.is_no_space());
    first.close().unwrap();
    assert!(matches!(Db::open(&path), Err(DbError::Locked)));
    drop(second);
    let db = Db::open(&path).unwrap();
    assert_eq!(db.get_owned(b"k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn drop_releases_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    for round in 0..3u8 {
        let db = Db::open(&path).unwrap();
        assert_eq!(db.len(), u64::from(round));
        db.put(&[round], b"dropped, not closed").unwrap();
        drop(db);
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(db.len(), 3);
}

#[test]
fn close_stops_background_threads_and_releases_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let options = Db::builder()
        .durability(Durability::Eventual)
        .growth(small_growth())
        .flush_interval(Some(Duration::from_millis(2)))
        .compaction(DbCompactionPolicy {
            space_percent: 10,
            space_min_bytes: 1,
            interval: Some(Duration::from_millis(3)),
        });
    for round in 0..5u32 {
        let db = options.clone().open(&path).unwrap();
        for i in 0..300u32 {
            db.put(
                &i.to_le_bytes(),
                &vec![round as u8; 100 + (i as usize % 7) * 100],
            )
            .unwrap();
        }
        for i in (0..300u32).step_by(2) {
            db.delete(&i.to_le_bytes()).unwrap();
        }
        // Long-interval threads must stop too, not wait out their interval.
        if round == 4 {
            drop(db);
            break;
        }
        db.close().unwrap();
        let db = Db::open(&path).unwrap();
        assert_eq!(db.len(), 150);
        assert_eq!(
            db.get_owned(&1u32.to_le_bytes()).unwrap(),
            Some(vec![round as u8; 200])
        );
        assert!(db.check().is_ok());
        db.close().unwrap();
    }
    let slow = options
        .flush_interval(Some(Duration::from_secs(3600)))
        .compaction(DbCompactionPolicy {
            interval: Some(Duration::from_secs(3600)),
            ..DbCompactionPolicy::default()
        })
        .open(&path)
        .unwrap();
    slow.put(b"last", b"eventual, synced by close").unwrap();
    slow.close().unwrap();
    let db = Db::open(&path).unwrap();
    assert_eq!(db.len(), 151);
    assert!(db.check().is_ok());
}

#[test]
fn values_and_keys_at_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db")).unwrap();
    let long_key = vec![b'k'; MAX_KEY_LEN];
    assert!(db.put(&long_key, b"longest key").unwrap());
    assert!(db.put(b"", b"empty key").unwrap());
    let big = vec![0xA5; 3 << 20];
    assert!(db.put(b"big", &big).unwrap());
    assert_eq!(db.get(b"big").unwrap().as_deref(), Some(&big[..]));
    assert_eq!(db.get_owned(b"").unwrap(), Some(b"empty key".to_vec()));
    let keys: HashSet<Vec<u8>> = db.iter().unwrap().into_iter().map(|(k, _)| k).collect();
    assert!(keys.contains(&long_key) && keys.contains(&b""[..]));
    assert!(matches!(
        db.put(&vec![0; MAX_KEY_LEN + 1], b""),
        Err(DbError::Core(Error::TooLarge { .. }))
    ));
    assert_eq!(db.len(), 3);
    assert!(db.delete(b"big").unwrap());
    let report = db.compact().unwrap();
    assert!(report.used_end_after < report.used_end_before);
    assert!(db.check().is_ok());
}

#[test]
fn options_builder_sets_every_field() {
    let o: Options = Db::builder()
        .durability(Durability::None)
        .growth(small_growth())
        .reservation(1 << 28)
        .inline_max(64)
        .compaction(DbCompactionPolicy {
            space_percent: 5,
            space_min_bytes: 10,
            interval: None,
        })
        .flush_interval(Some(Duration::from_secs(1)))
        .read_only(false)
        .seed(9)
        .commit_log(false)
        .log_policy(LogPolicy {
            max_log_bytes: 1 << 20,
            ..LogPolicy::default()
        });
    assert_eq!(o.durability, Durability::None);
    assert_eq!(o.growth, small_growth());
    assert_eq!(o.reservation, 1 << 28);
    assert_eq!(o.inline_max, 64);
    assert_eq!(o.compaction.space_percent, 5);
    assert_eq!(o.flush_interval, Some(Duration::from_secs(1)));
    assert_eq!(o.seed, Some(9));
    assert!(!o.commit_log);
    assert_eq!(o.log_policy.max_log_bytes, 1 << 20);
    let d = Options::default();
    assert!(d.commit_log);
    assert_eq!(d.durability, Durability::Immediate);
    assert!(!d.read_only && d.seed.is_none() && d.flush_interval.is_none());
}

/// Regression: a creation killed before its first commit left an empty or all-zero file
/// that `Db::open` refused for ever (`Region(OutOfBounds)`, `NotInitialized`).
#[test]
fn a_file_left_by_an_interrupted_creation_is_formatted() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::File::create(&empty).unwrap();
    let zeros = dir.path().join("zeros");
    std::fs::write(&zeros, vec![0u8; 64 << 10]).unwrap();
    for path in [&empty, &zeros] {
        // Read-only cannot format it: refused, and left as it was.
        assert!(matches!(
            Db::builder().read_only(true).open(path),
            Err(DbError::Core(_))
        ));
        let db = Db::builder().seed(5).open(path).unwrap();
        assert!(db.is_empty());
        db.put(b"k", b"v").unwrap();
        db.close().unwrap();
        let db = Db::open(path).unwrap();
        assert_eq!(db.get_owned(b"k").unwrap(), Some(b"v".to_vec()));
        assert!(db.check().is_ok());
    }

    // Anything else is not formatted over: a file of other data, or a database whose
    // meta slots were wiped.
    let other = dir.path().join("other");
    let mut bytes = vec![0u8; 64 << 10];
    bytes[60_000] = 1;
    std::fs::write(&other, &bytes).unwrap();
    assert!(matches!(
        Db::open(&other),
        Err(DbError::Core(Error::NotInitialized))
    ));
    assert_eq!(std::fs::read(&other).unwrap(), bytes);
    let wiped = dir.path().join("wiped");
    let db = Db::open(&wiped).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();
    let mut image = std::fs::read(&wiped).unwrap();
    image[..1024].fill(0);
    std::fs::write(&wiped, &image).unwrap();
    assert!(Db::open(&wiped).is_err());
    assert_eq!(std::fs::read(&wiped).unwrap(), image);
}

#[test]
fn extension_factor_gives_value_entries_room_and_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let refused = Db::builder().extension_factor(0.9).open(&path);
    assert!(
        matches!(
            refused,
            Err(DbError::Core(hamtdb::Error::InvalidOption { .. }))
        ),
        "{refused:?}"
    );
    // The refused open released the file: the next one is not locked out. (Without
    // pending puts: a first transaction would otherwise build its trie at commit, and
    // size the entry for the last value put.)
    let db = Db::builder()
        .extension_factor(1.5)
        .pending_max_bytes(0)
        .open(&path)
        .unwrap();
    let mut txn = db.begin_write().unwrap();
    txn.put(b"doc", &[1u8; 1000]).unwrap();
    // Fits the 1,500 bytes of room: rewritten in place.
    txn.put(b"doc", &[2u8; 1400]).unwrap();
    txn.commit().unwrap();
    let stats = db.stats().unwrap();
    // A 1,536-byte entry: 32-byte header, 1,500 bytes of room rounded up to 8.
    assert_eq!(stats.slack_bytes, 1536 - 32 - 1400);
    assert_eq!(stats.live_bytes, 3 + 1400);
    db.close().unwrap();
    let db = Db::open(&path).unwrap();
    assert_eq!(db.get_owned(b"doc").unwrap(), Some(vec![2u8; 1400]));
    assert!(db.check().is_ok());
}

// ---------------------------------------------------------------------------------------
// A first transaction on an empty database: puts held in memory, built at commit.

/// Runs random puts (inline and entry-sized values, repeats), deletes, reads and counts
/// in one transaction on a new database with `pending_max_bytes`, against a model; then
/// commits, reopens and compares.
fn first_transaction_matches_a_model(pending_max_bytes: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::builder()
        .pending_max_bytes(pending_max_bytes)
        .inline_max(64)
        .open(&path)
        .unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut rng = Rng(seed);
    let mut txn = db.begin_write().unwrap();
    for step in 0..3_000u64 {
        let key = format!("k{}", rng.below(700)).into_bytes();
        match rng.below(10) {
            0 | 1 => {
                assert_eq!(txn.delete(&key).unwrap(), model.remove(&key).is_some());
            }
            2 => {
                let too_long = vec![1u8; MAX_KEY_LEN + 1];
                let refused = txn.put(&too_long, b"v");
                assert!(
                    matches!(refused, Err(DbError::Core(Error::TooLarge { .. }))),
                    "{refused:?}"
                );
            }
            _ => {
                let len = if rng.below(4) == 0 { 200 } else { 10 } + rng.below(30) as usize;
                let value: Vec<u8> = (0..len).map(|i| (step as usize + i) as u8).collect();
                let new = model.insert(key.clone(), value.clone()).is_none();
                assert_eq!(txn.put(&key, &value).unwrap(), new);
            }
        }
        assert_eq!(txn.get(&key).unwrap(), model.get(&key).map(Vec::as_slice));
        assert_eq!(txn.len(), model.len() as u64);
        assert_eq!(txn.is_empty(), model.is_empty());
    }
    txn.commit().unwrap();
    let check = |db: &Db| {
        assert_eq!(db.len(), model.len() as u64);
        for (k, v) in &model {
            assert_eq!(db.get_owned(k).unwrap().as_ref(), Some(v));
        }
        for i in 0..700 {
            let k = format!("k{i}").into_bytes();
            assert_eq!(db.contains_key(&k).unwrap(), model.contains_key(&k));
        }
        let report = db.check();
        assert!(report.is_ok(), "{:?}", report.problems);
    };
    check(&db);
    db.close().unwrap();
    check(&Db::open(&path).unwrap());
}

#[test]
fn a_first_transaction_held_in_memory_reads_and_commits_like_any_other() {
    first_transaction_matches_a_model(1 << 30, 1);
}

#[test]
fn a_first_transaction_past_its_memory_limit_goes_on_in_the_trie() {
    // 20 KB: the transaction moves to the trie after about a hundred puts.
    first_transaction_matches_a_model(20_000, 2);
}

#[test]
fn an_aborted_first_transaction_leaves_the_database_empty() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db")).unwrap();
    let mut txn = db.begin_write().unwrap();
    for i in 0..100u32 {
        txn.put(&i.to_le_bytes(), &[7; 600]).unwrap();
    }
    assert_eq!(txn.len(), 100);
    txn.abort();
    assert!(db.is_empty());
    let mut txn = db.begin_write().unwrap();
    assert!(txn.put(b"a", b"1").unwrap());
    drop(txn);
    assert!(db.is_empty());
    let mut txn = db.begin_write().unwrap();
    txn.put(b"b", b"2").unwrap();
    txn.commit().unwrap();
    assert_eq!(db.get_owned(b"b").unwrap(), Some(b"2".to_vec()));
    assert!(db.check().is_ok());
}

#[test]
fn a_first_transaction_dropped_or_aborted_after_moving_to_the_trie_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::builder()
        .pending_max_bytes(20_000)
        .inline_max(64)
        .open(&path)
        .unwrap();
    let run = |db: &Db, end: u8| {
        let mut txn = db.begin_write().unwrap();
        for i in 0..300u32 {
            let value = vec![i as u8; if i % 2 == 0 { 300 } else { 8 }];
            assert!(txn.put(&i.to_le_bytes(), &value).unwrap());
            if i % 7 == 0 {
                assert!(txn.delete(&(i / 2).to_le_bytes()).unwrap() || (i / 2) % 7 == 0);
            }
        }
        let len = txn.len();
        assert!(txn.put(&0u32.to_le_bytes(), &[9; 500]).unwrap() || len > 0);
        assert_eq!(txn.get(&0u32.to_le_bytes()).unwrap(), Some(&[9u8; 500][..]));
        match end {
            0 => txn.abort(),
            1 => drop(txn),
            _ => txn.commit().unwrap(),
        }
    };
    let before = db.stats().unwrap();
    run(&db, 0);
    run(&db, 1);
    assert!(db.is_empty());
    assert!(db.check().is_ok(), "{:?}", db.check().problems);
    let after = db.stats().unwrap();
    assert_eq!(
        (after.entries, after.used_end),
        (before.entries, before.used_end)
    );
    run(&db, 2);
    let committed = db.len();
    assert!(committed > 200);
    assert!(db.check().is_ok(), "{:?}", db.check().problems);
    assert_eq!(
        db.get_owned(&0u32.to_le_bytes()).unwrap(),
        Some(vec![9; 500])
    );
    db.close().unwrap();
    let db = Db::open(&path).unwrap();
    assert_eq!(db.len(), committed);
    assert!(db.check().is_ok());
}

/// Puts 64 KB values into a new database reserved at 1 MiB until a put fails, then
/// commits; returns the put's error, the commit's outcome and the keys committed.
fn put_until_full_then_commit(
    pending_max_bytes: usize,
) -> (Option<DbError>, Result<(), DbError>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::builder()
        .pending_max_bytes(pending_max_bytes)
        .reservation(1 << 20)
        .growth(small_growth())
        .open(dir.path().join("db"))
        .unwrap();
    let mut txn = db.begin_write().unwrap();
    let mut failed = None;
    for i in 0..64u32 {
        if let Err(e) = txn.put(&i.to_le_bytes(), &vec![i as u8; 64 << 10]) {
            failed = Some(e);
            break;
        }
    }
    let committed = txn.commit();
    (failed, committed, db.len())
}

#[test]
fn a_full_region_shows_at_the_put_in_the_trie_and_at_the_build_in_memory() {
    // In the trie: the put that does not fit fails, the transaction stays usable and
    // commits what fit.
    let (put, commit, len) = put_until_full_then_commit(0);
    assert!(
        matches!(put, Some(DbError::Core(Error::Region(_)))),
        "{put:?}"
    );
    assert!(commit.is_ok() && len > 0, "{commit:?}, {len} keys");
    // Held in memory (the documented difference, see `DbWriteTxn`): every put is
    // accepted, the build at commit finds the region full, and nothing is committed.
    let (put, commit, pending_len) = put_until_full_then_commit(1 << 30);
    assert!(put.is_none(), "{put:?}");
    assert!(
        matches!(commit, Err(DbError::Core(Error::Region(_)))),
        "{commit:?}"
    );
    assert_eq!(pending_len, 0);
}

#[test]
fn a_failed_move_to_the_trie_fails_the_put_and_leaves_reads_and_the_file_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    // 2 MB of memory for pairs: the move to the trie comes after ~30 puts of 64 KB, and
    // the 1 MiB reservation cannot hold them.
    let db = Db::builder()
        .pending_max_bytes(2 << 20)
        .reservation(1 << 20)
        .growth(small_growth())
        .open(&path)
        .unwrap();
    let mut txn = db.begin_write().unwrap();
    let value = |i: u32| vec![i as u8; 64 << 10];
    let mut accepted = 0u32;
    let failed = loop {
        match txn.put(&accepted.to_le_bytes(), &value(accepted)) {
            Ok(new) => assert!(new),
            Err(e) => break e,
        }
        accepted += 1;
        assert!(accepted < 64, "the move to the trie never failed");
    };
    assert!(
        matches!(failed, DbError::Core(Error::Region(_))),
        "{failed:?}"
    );
    // Reads still answer what was put.
    assert_eq!(txn.len(), u64::from(accepted));
    assert_eq!(txn.get(&0u32.to_le_bytes()).unwrap(), Some(&value(0)[..]));
    // The transaction can only be aborted: later puts and the commit fail.
    assert!(txn.put(b"more", b"x").is_err());
    assert!(txn.commit().is_err());
    assert!(db.is_empty());
    assert!(db.check().is_ok(), "{:?}", db.check().problems);
    let mut txn = db.begin_write().unwrap();
    txn.put(b"after", b"works").unwrap();
    txn.commit().unwrap();
    db.close().unwrap();
    let db = Db::open(&path).unwrap();
    assert_eq!(db.len(), 1);
    assert!(db.check().is_ok());
}

// ---------------------------------------------------------------------------------------
// The commit log.

/// Copies `path` to a new file and renames it over `path`: the same bytes (those the
/// operating system holds, synced or not) in a new inode, free of the locks an open of
/// the old one holds.
fn replace_with_copy(from: &std::path::Path, path: &std::path::Path) {
    let tmp = path.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A database whose file lacks the last `3` commits that its log holds: what power loss
/// after three durable commits leaves when none of the file's pages reached the disk.
fn database_behind_its_log(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("db");
    let db = Db::open(&path).unwrap();
    db.put(b"a", b"1").unwrap();
    db.close().unwrap();
    let saved = dir.join("saved");
    std::fs::copy(&path, &saved).unwrap();
    let db = Db::open(&path).unwrap();
    db.put(b"b", b"2").unwrap();
    db.put(b"c", b"3").unwrap();
    db.delete(b"a").unwrap();
    // Not closed (no checkpoint), and its locks stay with the leaked opens.
    core::mem::forget(db);
    let log = hamtdb::log_path(&path);
    replace_with_copy(&log, &log);
    replace_with_copy(&saved, &path);
    path
}

#[test]
fn the_commit_log_replays_what_the_file_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let path = database_behind_its_log(dir.path());
    // The file alone is at the first commit.
    let without = Db::builder().read_only(true).open(&path);
    // Read-only cannot replay: a typed error that says what to do.
    match without {
        Err(DbError::NeedsRecovery { records: 3 }) => {}
        other => panic!("read-only open of a database behind its log: {other:?}"),
    }
    let message = DbError::NeedsRecovery { records: 3 }.to_string();
    assert!(message.contains("writable"), "{message}");
    // Writable: replayed, then the log is empty and read-only opens work.
    let db = Db::open(&path).unwrap();
    assert_eq!(db.get_owned(b"a").unwrap(), None);
    assert_eq!(db.get_owned(b"b").unwrap(), Some(b"2".to_vec()));
    assert_eq!(db.get_owned(b"c").unwrap(), Some(b"3".to_vec()));
    assert_eq!(db.len(), 2);
    assert!(db.check().is_ok());
    db.close().unwrap();
    let ro = Db::builder().read_only(true).open(&path).unwrap();
    assert_eq!(ro.len(), 2);
}

#[test]
fn turning_the_commit_log_off_replays_and_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = database_behind_its_log(dir.path());
    let log = hamtdb::log_path(&path);
    assert!(log.exists());
    let db = Db::builder().commit_log(false).open(&path).unwrap();
    assert!(!log.exists());
    assert_eq!(db.len(), 2);
    db.put(b"d", b"4").unwrap();
    db.close().unwrap();
    assert!(!log.exists());
    let db = Db::open(&path).unwrap();
    assert_eq!(db.len(), 3);
    assert!(log.exists());
}

#[test]
fn a_damaged_commit_log_header_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    Db::open(&path).unwrap().close().unwrap();
    let log = hamtdb::log_path(&path);
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[3] ^= 0xff;
    bytes[512 + 3] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    assert!(matches!(
        Db::open(&path),
        Err(DbError::Core(Error::Corrupted(c))) if c.offset() == 0
    ));
}

/// A read-only open refuses a log that a writable open refuses: one that starts after
/// the file's last commit (the file is older than the log: it lost commits the log had
/// checkpointed), or one of another database. It used to open and serve the stale file.
#[test]
fn a_read_only_open_refuses_a_log_the_file_is_older_than() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::open(&path).unwrap();
    db.put(b"a", b"1").unwrap();
    db.close().unwrap();
    let old = dir.path().join("old");
    std::fs::copy(&path, &old).unwrap();
    let db = Db::open(&path).unwrap();
    db.put(b"b", b"2").unwrap();
    db.close().unwrap();
    // The log's base is the second close's commit; the file goes back to the first.
    replace_with_copy(&old, &path);
    let refused = |read_only: bool| {
        matches!(
            Db::builder().read_only(read_only).open(&path),
            Err(DbError::Core(Error::Corrupted { .. }))
        )
    };
    assert!(refused(false), "a writable open refuses it");
    assert!(refused(true), "so does a read-only one");

    // Another database's log next to this file.
    let other = dir.path().join("other");
    Db::builder()
        .seed(99)
        .open(&other)
        .unwrap()
        .close()
        .unwrap();
    let x = dir.path().join("x");
    Db::builder().seed(98).open(&x).unwrap().close().unwrap();
    replace_with_copy(&hamtdb::log_path(&other), &hamtdb::log_path(&x));
    assert!(matches!(
        Db::builder().read_only(true).open(&x),
        Err(DbError::Core(Error::Corrupted { .. }))
    ));
}
