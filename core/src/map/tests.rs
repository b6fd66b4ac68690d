//! Map tests against `std::collections::HashMap`, with small keys (deep paths) and a
//! deliberately colliding hasher (collision nodes).

use super::*;
use crate::VecRegion;
use proptest::prelude::*;
use std::collections::HashMap;
use std::vec;
use std::vec::Vec;

/// Every key hashes the same: all keys share one path down to a collision node.
#[derive(Clone, Copy, Default)]
struct Colliding;

impl KeyHasher for Colliding {
    fn hash(&self, _seed: u64, _key: &[u8]) -> [u64; 2] {
        [0x5555_5555_5555_5555, 0xaaaa_aaaa_aaaa_aaaa]
    }
}

/// Only 3 bits of hash: keys split at depth 0 into 8 slots, then collide fully.
#[derive(Clone, Copy, Default)]
struct FewBits;

impl KeyHasher for FewBits {
    fn hash(&self, _seed: u64, key: &[u8]) -> [u64; 2] {
        [u64::from(key.first().copied().unwrap_or(0) & 7), 0]
    }
}

fn region() -> VecRegion {
    VecRegion::with_capacity(if cfg!(miri) { 1 << 20 } else { 8 << 20 })
}

/// Keys in the bigger deterministic tests: Miri interprets every instruction.
const MANY: u32 = if cfg!(miri) { 150 } else { 2000 };

fn small_inline() -> MapOptions {
    MapOptions {
        inline_max: 8,
        ..MapOptions::default()
    }
}

type Model = HashMap<Vec<u8>, Vec<u8>>;

/// Failing cases are saved next to the source, except under Miri, whose isolation has
/// no current directory to find it from.
fn persistence() -> Option<std::boxed::Box<dyn proptest::test_runner::FailurePersistence>> {
    if cfg!(miri) {
        None
    } else {
        Some(std::boxed::Box::new(
            proptest::test_runner::FileFailurePersistence::SourceParallel("proptest-regressions"),
        ))
    }
}

#[derive(Clone, Debug)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Commit,
    Abort,
    Reopen,
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0u8..4, 0..4)
}

/// Longest op list: Miri interprets every instruction, so it gets short ones.
const OPS: usize = if cfg!(miri) { 12 } else { 60 };

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key(), prop::collection::vec(any::<u8>(), 0..20)).prop_map(|(k, v)| Op::Put(k, v)),
        3 => key().prop_map(Op::Delete),
        1 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::Reopen),
    ]
}

fn sorted(pairs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut v: Vec<_> = pairs.into_iter().collect();
    v.sort();
    v
}

fn check_snapshot<R: Region, H: KeyHasher>(snapshot: &ReadTxn<'_, R, H>, model: &Model) {
    let report = snapshot.map.check();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.keys, model.len() as u64);
    assert_eq!(snapshot.len(), model.len() as u64);
    for (k, v) in model {
        assert_eq!(snapshot.get(k).unwrap(), Some(&v[..]), "key {k:?}");
    }
    let pairs = snapshot
        .iter()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()));
    assert_eq!(sorted(pairs), sorted(model.clone()));
}

fn check_txn<R: Region, H: KeyHasher>(txn: &WriteTxn<'_, R, H>, model: &Model, probe: &[u8]) {
    assert_eq!(txn.len(), model.len() as u64);
    for (k, v) in model {
        assert_eq!(txn.get(k).unwrap(), Some(&v[..]), "key {k:?}");
    }
    assert_eq!(txn.get(probe).unwrap(), model.get(probe).map(|v| &v[..]));
}

/// Runs `ops`; after each, the transaction shows the live model and a snapshot opened
/// meanwhile shows the committed one.
fn run_model<H: KeyHasher + Copy>(hasher: H, ops: &[Op]) {
    let mut map = Map::create_with_hasher(region(), small_inline(), hasher).unwrap();
    let mut committed = Model::new();
    let mut live = committed.clone();
    let mut i = 0;
    while i < ops.len() {
        {
            let mut txn = map.begin_write();
            while i < ops.len() {
                let probe = match &ops[i] {
                    Op::Put(k, v) => {
                        let new = txn.put(k, v).unwrap();
                        assert_eq!(new, live.insert(k.clone(), v.clone()).is_none());
                        k.clone()
                    }
                    Op::Delete(k) => {
                        assert_eq!(txn.delete(k).unwrap(), live.remove(k).is_some());
                        k.clone()
                    }
                    Op::Commit => {
                        txn.commit().unwrap();
                        committed = live.clone();
                        txn = map.begin_write();
                        Vec::new()
                    }
                    Op::Abort => {
                        txn.abort();
                        live = committed.clone();
                        txn = map.begin_write();
                        Vec::new()
                    }
                    Op::Reopen => break,
                };
                check_txn(&txn, &live, &probe);
                check_snapshot(&map.begin_read(), &committed);
                i += 1;
            }
        }
        if i < ops.len() {
            // Reopen: the open transaction was dropped, which aborts it.
            map = Map::open_with_hasher(map.into_region(), hasher).unwrap();
            live = committed.clone();
            check_snapshot(&map.begin_read(), &committed);
            i += 1;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 128 },
        failure_persistence: persistence(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn model_with_murmur(ops in prop::collection::vec(op(), 1..OPS)) {
        run_model(Murmur3, &ops);
    }

    #[test]
    fn model_with_colliding_hasher(ops in prop::collection::vec(op(), 1..OPS)) {
        run_model(Colliding, &ops);
    }

    #[test]
    fn model_with_few_hash_bits(ops in prop::collection::vec(op(), 1..OPS)) {
        run_model(FewBits, &ops);
    }

    #[test]
    fn shape_depends_only_on_the_key_set(
        // One commit per key on one side: fewer keys under Miri.
        keys in prop::collection::hash_set(
            prop::collection::vec(any::<u8>(), 1..6),
            1..if cfg!(miri) { 12 } else { 40 },
        ),
        extra in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..6), 0..20),
    ) {
        // Build the same key set two ways: sorted inserts in one transaction, and
        // reversed inserts with extra keys put and deleted again across commits.
        let mut sorted_keys: Vec<_> = keys.iter().cloned().collect();
        sorted_keys.sort();
        let a = Map::create(region(), small_inline()).unwrap();
        let mut txn = a.begin_write();
        for k in &sorted_keys {
            txn.put(k, b"v").unwrap();
        }
        txn.commit().unwrap();
        let b = Map::create(region(), small_inline()).unwrap();
        for k in sorted_keys.iter().rev() {
            b.put(k, b"v").unwrap();
        }
        let mut txn = b.begin_write();
        for k in extra.iter().filter(|k| !keys.contains(*k)) {
            txn.put(k, b"extra").unwrap();
        }
        txn.commit().unwrap();
        for k in extra.iter().filter(|k| !keys.contains(*k)) {
            b.delete(k).unwrap();
        }
        prop_assert_eq!(shape(&a), shape(&b));
    }
}

/// The committed trie as nested text: node kinds and the keys in each slot, without
/// offsets.
fn shape<R: Region, H: KeyHasher>(map: &Map<R, H>) -> std::string::String {
    use core::fmt::Write;
    fn walk<S: NodeStore>(s: &S, off: u64, depth: u32, out: &mut std::string::String) {
        match trie::read_node(s, off, depth).unwrap() {
            trie::NodeRef::Branch(b) => {
                write!(out, "B{:x}/{:x}(", b.datamap, b.nodemap).unwrap();
                for i in 0..b.pair_count() {
                    write!(out, "{:?},", b.pair(i).unwrap().key).unwrap();
                }
                for i in 0..b.child_count() {
                    walk(s, b.child(i).unwrap(), depth + 1, out);
                }
                out.push(')');
            }
            trie::NodeRef::Collision(c) => {
                out.push_str("C(");
                for i in 0..c.len() {
                    write!(out, "{:?},", c.pair(i).unwrap().key).unwrap();
                }
                out.push(')');
            }
        }
    }
    let snapshot = map.begin_read();
    let mut out = std::string::String::new();
    if snapshot.meta.root != 0 {
        walk(&snapshot.store, snapshot.meta.root, 0, &mut out);
    }
    out
}

#[test]
fn colliding_keys_meet_in_a_sorted_collision_node() {
    let map = Map::create_with_hasher(region(), small_inline(), Colliding).unwrap();
    for k in [&b"pear"[..], b"apple", b"fig"] {
        map.put(k, k).unwrap();
    }
    let stats = map.stats().unwrap();
    assert_eq!(stats.depth_histogram[node::MAX_DEPTH as usize], 3);
    let want = "C([97, 112, 112, 108, 101],[102, 105, 103],[112, 101, 97, 114],)";
    assert_eq!(shape(&map).matches(want).count(), 1);
    map.delete(b"fig").unwrap();
    map.delete(b"apple").unwrap();
    // One key left: the whole chain collapses into the root.
    assert_eq!(map.stats().unwrap().depth_histogram[0], 1);
    assert!(!shape(&map).contains('C'));
}

#[test]
fn large_values_live_in_their_own_entries() {
    let map = Map::create(region(), small_inline()).unwrap();
    let big = vec![7u8; 10_000];
    map.put(b"big", &big).unwrap();
    map.put(b"small", b"tiny").unwrap();
    assert_eq!(&*map.get(b"big").unwrap().unwrap(), &big[..]);
    map.put(b"big", b"now small").unwrap();
    let map = Map::open(map.into_region()).unwrap();
    assert_eq!(&*map.get(b"big").unwrap().unwrap(), b"now small");
}

#[test]
fn limits_are_typed_errors_and_lose_nothing() {
    // Small under Miri: checksumming a value bigger than the region is most of the work.
    let capacity = if cfg!(miri) { 8 << 10 } else { 16 << 10 };
    let map = Map::create(VecRegion::with_capacity(capacity), MapOptions::default()).unwrap();
    map.put(b"kept", b"value").unwrap();
    let long_key = vec![0u8; MAX_KEY_LEN + 1];
    let mut txn = map.begin_write();
    assert!(matches!(
        txn.put(&long_key, b""),
        Err(Error::TooLarge(t)) if t.what() == "key" && t.max() == MAX_KEY_LEN as u64
    ));
    assert!(matches!(
        txn.put(b"huge", &vec![1u8; 4 * capacity]),
        Err(Error::Region(_))
    ));
    txn.abort();
    assert_eq!(&*map.get(b"kept").unwrap().unwrap(), b"value");
    let map = Map::open(map.into_region()).unwrap();
    assert_eq!(&*map.get(b"kept").unwrap().unwrap(), b"value");
}

#[test]
fn deleting_an_absent_key_writes_nothing() {
    // mmcmap wrote a new path even when the key was absent.
    let map = Map::create(region(), MapOptions::default()).unwrap();
    let mut txn = map.begin_write();
    for i in 0..100u32 {
        txn.put(&i.to_le_bytes(), b"v").unwrap();
    }
    txn.commit().unwrap();
    let txid = map.begin_read().txid();
    assert!(!map.delete(b"absent").unwrap());
    assert_eq!(map.begin_read().txid(), txid, "no commit for an absent key");
    let txn = map.begin_write();
    assert!(!txn.space.has_changes());
}

#[test]
fn deep_deletes_are_linked_back() {
    // mmcmap lost deletes below the root's children; check every delete sticks.
    let map = Map::create(region(), MapOptions::default()).unwrap();
    let mut txn = map.begin_write();
    for i in 0..MANY {
        txn.put(&i.to_le_bytes(), &(i * 7).to_le_bytes()).unwrap();
    }
    txn.commit().unwrap();
    let mut txn = map.begin_write();
    for i in (0..MANY).step_by(3) {
        assert!(txn.delete(&i.to_le_bytes()).unwrap());
    }
    txn.commit().unwrap();
    let map = Map::open(map.into_region()).unwrap();
    for i in 0..MANY {
        let want = (i % 3 != 0).then(|| (i * 7).to_le_bytes());
        let got = map.get(&i.to_le_bytes()).unwrap();
        assert_eq!(got.as_deref(), want.as_ref().map(|w| &w[..]));
    }
    assert_eq!(map.len(), u64::from(MANY - MANY.div_ceil(3)));
}

#[test]
fn snapshots_keep_their_state_while_space_is_reused() {
    let map = Map::create(region(), MapOptions::default()).unwrap();
    let mut txn = map.begin_write();
    let n = if cfg!(miri) { 20u32 } else { 200 };
    for i in 0..n {
        txn.put(&i.to_le_bytes(), b"first").unwrap();
    }
    txn.commit().unwrap();
    let old = map.begin_read();
    // Many commits that replace every node: freed space is reused once no snapshot
    // needs it, but not the space `old` reads.
    for round in 0..5u8 {
        let mut txn = map.begin_write();
        for i in 0..n {
            txn.put(&i.to_le_bytes(), &[round; 12]).unwrap();
        }
        txn.commit().unwrap();
    }
    for i in 0..n {
        assert_eq!(old.get(&i.to_le_bytes()).unwrap(), Some(&b"first"[..]));
    }
    let used_with_snapshot = map.stats().unwrap().used_end;
    drop(old);
    for round in 0..5u8 {
        let mut txn = map.begin_write();
        for i in 0..n {
            txn.put(&i.to_le_bytes(), &[round; 12]).unwrap();
        }
        txn.commit().unwrap();
    }
    // With the snapshot gone, commits reuse freed space instead of growing.
    assert_eq!(map.stats().unwrap().used_end, used_with_snapshot);
}

#[test]
fn readers_on_other_threads_see_whole_commits() {
    let map = Map::create(region(), MapOptions::default()).unwrap();
    let rounds = if cfg!(miri) { 3u32 } else { 50 };
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                for _ in 0..rounds * 4 {
                    let snapshot = map.begin_read();
                    // Every commit writes the same number under all ten keys.
                    let values: Vec<_> = (0..10u8)
                        .map(|k| snapshot.get(&[k]).unwrap().map(<[u8]>::to_vec))
                        .collect();
                    assert!(values.windows(2).all(|w| w[0] == w[1]), "{values:?}");
                }
            });
        }
        for round in 0..rounds {
            let mut txn = map.begin_write();
            for k in 0..10u8 {
                txn.put(&[k], &round.to_le_bytes()).unwrap();
            }
            txn.commit().unwrap();
        }
    });
}

#[test]
fn check_reports_damage_with_offsets() {
    let map = Map::create(region(), small_inline()).unwrap();
    let mut txn = map.begin_write();
    let n = if cfg!(miri) { 40u32 } else { 300 };
    for i in 0..n {
        txn.put(&i.to_le_bytes(), &[i as u8; 20]).unwrap();
    }
    txn.commit().unwrap();
    // A later commit, so that key 0's value entry is old, durable data.
    map.put(b"later", b"x").unwrap();
    let report = map.check();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.keys, u64::from(n) + 1);
    assert_eq!(
        report.value_entries,
        u64::from(n),
        "20-byte values exceed inline_max 8"
    );
    let value_at = {
        let snapshot = map.begin_read();
        let v = snapshot.get(&0u32.to_le_bytes()).unwrap().unwrap();
        v.as_ptr() as u64 - map.region().view(0, 0).unwrap().as_ptr() as u64
    };
    let entry = value_at - crate::buffer::format::HEADER_LEN as u64;
    let mut image = map.into_region().to_vec();
    image[value_at as usize + 3] ^= 0xff;
    let map = Map::open(VecRegion::from_bytes(&image, image.len())).unwrap();
    let report = map.check();
    assert_eq!(
        report.problems,
        vec![Problem {
            offset: entry,
            what: "entry checksum mismatch"
        }]
    );
}

/// Every fifth value is large enough for a value entry of its own.
fn value_of(i: u32) -> Vec<u8> {
    vec![i as u8; if i.is_multiple_of(5) { 900 } else { 40 }]
}

#[test]
fn compaction_after_deleting_half_shrinks_the_region() {
    let map = Map::create(region(), MapOptions::default()).unwrap();
    let n = if cfg!(miri) { 60u32 } else { 3000 };
    let mut txn = map.begin_write();
    for i in 0..n {
        txn.put(&i.to_le_bytes(), &value_of(i)).unwrap();
    }
    txn.commit().unwrap();
    let loaded = map.stats().unwrap().used_end;
    let mut txn = map.begin_write();
    for i in (0..n).filter(|i| i % 2 == 1) {
        txn.delete(&i.to_le_bytes()).unwrap();
    }
    txn.commit().unwrap();
    let report = map.compact().unwrap();
    assert!(report.bytes_moved > 0);
    assert!(
        report.used_end_after * 10 <= loaded * 6,
        "{} after compaction vs {} loaded",
        report.used_end_after,
        loaded
    );
    assert_eq!(
        map.region().len(),
        report.used_end_after,
        "the region was cut"
    );
    assert!(map.check().is_ok());
    let map = Map::open(map.into_region()).unwrap();
    assert!(map.check().is_ok());
    for i in 0..n {
        let got = map.get(&i.to_le_bytes()).unwrap();
        let want = (i % 2 == 0).then(|| value_of(i));
        assert_eq!(got.as_deref(), want.as_deref());
    }
}

/// Compaction takes the bytes the last commit reaches from the space's accounting
/// (`Space::reachable_bytes`) instead of walking the trie: it must agree with the walk
/// `check` makes, after every kind of change, with snapshots open, after an abort, a
/// reopen and a compaction.
#[test]
fn reachable_bytes_agree_with_a_full_walk() {
    fn agree<R: Region>(map: &Map<R>, when: &str) {
        let walked = map.check();
        assert!(walked.is_ok(), "{when}: {walked:?}");
        let counted = map.writer.lock().reachable_bytes();
        assert_eq!(counted, walked.entry_bytes, "{when}");
    }
    let map = Map::create(region(), small_inline()).unwrap();
    let n = if cfg!(miri) { 40u32 } else { 600 };
    agree(&map, "empty");
    let mut txn = map.begin_write();
    for i in 0..n {
        txn.put(&i.to_le_bytes(), &value_of(i)).unwrap();
    }
    txn.commit().unwrap();
    agree(&map, "loaded");
    let snapshot = map.begin_read();
    for i in (0..n).step_by(3) {
        map.put(&i.to_le_bytes(), &value_of(i + 1)).unwrap();
    }
    agree(&map, "overwritten under a snapshot");
    let mut txn = map.begin_write();
    for i in (0..n).step_by(2) {
        txn.delete(&i.to_le_bytes()).unwrap();
    }
    txn.abort();
    agree(&map, "after an abort");
    for i in (0..n).step_by(2) {
        map.delete(&i.to_le_bytes()).unwrap();
    }
    agree(&map, "deleted under a snapshot");
    drop(snapshot);
    map.put(b"after the snapshot", b"v").unwrap();
    agree(&map, "snapshot dropped");
    let map = Map::open(map.into_region()).unwrap();
    agree(&map, "reopened");
    map.compact().unwrap();
    agree(&map, "compacted");
}

#[test]
fn compaction_keeps_what_an_open_snapshot_reads() {
    let map = Map::create(region(), MapOptions::default()).unwrap();
    let mut txn = map.begin_write();
    let n = if cfg!(miri) { 50u32 } else { 500 };
    for i in 0..n {
        txn.put(&i.to_le_bytes(), &[1; 30]).unwrap();
    }
    txn.commit().unwrap();
    let mut txn = map.begin_write();
    for i in 0..n * 4 / 5 {
        txn.delete(&i.to_le_bytes()).unwrap();
    }
    txn.commit().unwrap();
    let snapshot = map.begin_read();
    let before = map.stats().unwrap().used_end;
    map.compact().unwrap();
    assert_eq!(snapshot.len(), u64::from(n / 5));
    for i in n * 4 / 5..n {
        assert_eq!(
            snapshot.get(&i.to_le_bytes()).unwrap(),
            Some(&[1u8; 30][..])
        );
    }
    drop(snapshot);
    let report = map.compact().unwrap();
    assert!(report.used_end_after < before / 2, "{report:?} vs {before}");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 64 },
        failure_persistence: persistence(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn bulk_load_builds_the_trie_puts_build(
        pairs in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..5), prop::collection::vec(any::<u8>(), 0..24)),
            0..if cfg!(miri) { 12 } else { 120 },
        ),
    ) {
        let by_puts = Map::create(region(), small_inline()).unwrap();
        let mut txn = by_puts.begin_write();
        let mut model = Model::new();
        for (k, v) in &pairs {
            txn.put(k, v).unwrap();
            model.insert(k.clone(), v.clone());
        }
        txn.commit().unwrap();
        let bulk = Map::create(region(), small_inline()).unwrap();
        prop_assert_eq!(bulk.bulk_load(pairs.iter().cloned()).unwrap(), model.len() as u64);
        prop_assert_eq!(shape(&bulk), shape(&by_puts));
        let report = bulk.check();
        prop_assert!(report.is_ok(), "{:?}", report.problems);
        let bulk = Map::open(bulk.into_region()).unwrap();
        check_snapshot(&bulk.begin_read(), &model);
    }

    #[test]
    fn get_many_agrees_with_get(
        keys in prop::collection::hash_set(prop::collection::vec(0u8..8, 0..4), 0..60),
        probes in prop::collection::vec(prop::collection::vec(0u8..8, 0..4), 0..40),
    ) {
        let spread = Map::create(region(), small_inline()).unwrap();
        let collide = Map::create_with_hasher(region(), small_inline(), FewBits).unwrap();
        spread.bulk_load(keys.iter().map(|k| (k, [k.len() as u8; 10]))).unwrap();
        collide.bulk_load(keys.iter().map(|k| (k, [k.len() as u8; 10]))).unwrap();
        // Present and absent keys, more than one batch of lanes.
        let wanted: Vec<&[u8]> = probes.iter().chain(keys.iter()).map(Vec::as_slice).collect();
        let (a, b) = (spread.begin_read(), collide.begin_read());
        let (many_a, many_b) = (a.get_many(&wanted).unwrap(), b.get_many(&wanted).unwrap());
        prop_assert_eq!(many_a.len(), wanted.len());
        for (i, k) in wanted.iter().enumerate() {
            prop_assert_eq!(many_a[i], a.get(k).unwrap());
            prop_assert_eq!(many_b[i], b.get(k).unwrap());
        }
    }
}

#[test]
fn bulk_load_refuses_a_map_that_is_not_empty_and_keeps_last_duplicates() {
    let map = Map::create(region(), small_inline()).unwrap();
    let big = [9u8; 100];
    let n = map
        .bulk_load([(&b"a"[..], &big[..]), (b"b", b"1"), (b"a", b"2")])
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(&*map.get(b"a").unwrap().unwrap(), b"2");
    assert!(map.check().is_ok(), "{:?}", map.check().problems);
    assert!(matches!(
        map.bulk_load([(b"c", b"3")]),
        Err(Error::InvalidOption { .. })
    ));
    let map = Map::open(map.into_region()).unwrap();
    assert_eq!(map.len(), 2);
}

#[test]
fn fill_builds_an_emptied_trie_and_a_failed_fill_only_aborts() {
    let map = Map::create_with_hasher(region(), small_inline(), FewBits).unwrap();
    map.put(b"old", b"gone").unwrap();
    let mut txn = map.begin_write();
    assert!(matches!(
        txn.fill([(&b"x"[..], &b"1"[..])]),
        Err(Error::InvalidOption { .. })
    ));
    assert!(txn.delete(b"old").unwrap());
    let big = [7u8; 300];
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0u8..40)
        .map(|i| {
            (
                vec![i % 30, 1],
                if i % 3 == 0 { big.to_vec() } else { vec![i] },
            )
        })
        .collect();
    let n = txn
        .fill(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
        .unwrap();
    assert_eq!(n, 30);
    assert_eq!(txn.len(), 30);
    // Later pairs win: keys 0..10 were given twice.
    assert_eq!(txn.get(&[5, 1]).unwrap(), Some(&[35u8][..]));
    assert_eq!(txn.get(&[3, 1]).unwrap(), Some(&big[..]));
    txn.put(b"after", b"fill").unwrap();
    txn.commit().unwrap();
    assert!(map.check().is_ok(), "{:?}", map.check().problems);
    assert_eq!(map.len(), 31);
    assert!(map.get(b"old").unwrap().is_none());

    let before = map.stats().unwrap();
    let mut txn = map.begin_write();
    for (k, _) in &pairs {
        txn.delete(k).unwrap();
    }
    txn.delete(b"after").unwrap();
    let too_long = vec![0u8; MAX_KEY_LEN + 1];
    let bad = [(&b"fine"[..], &big[..]), (&too_long[..], &b"v"[..])];
    assert!(matches!(txn.fill(bad), Err(Error::TooLarge { .. })));
    assert!(matches!(txn.commit(), Err(Error::TooLarge { .. })));
    assert_eq!(map.len(), 31);
    let after = map.stats().unwrap();
    assert_eq!(
        (after.entries, after.live_bytes),
        (before.entries, before.live_bytes)
    );
    assert!(map.check().is_ok(), "{:?}", map.check().problems);
}

#[test]
fn get_allocates_nothing() {
    let mut bytes = vec![0u8; if cfg!(miri) { 64 << 10 } else { 1 << 20 }];
    let map = Map::create(crate::SliceRegion::new(&mut bytes), small_inline()).unwrap();
    let n = if cfg!(miri) { 50u32 } else { 500 };
    let mut txn = map.begin_write();
    for i in 0..n {
        let value = if i % 7 == 0 {
            vec![1u8; 40]
        } else {
            vec![2u8; 4]
        };
        txn.put(&i.to_le_bytes(), &value).unwrap();
    }
    txn.commit().unwrap();
    // Warm up: the reader table keeps its room once it has it.
    drop(map.get(b"warm").unwrap());
    let (found, allocations) = crate::test_alloc::allocations_during(|| {
        let mut found = 0;
        let snapshot = map.begin_read();
        for i in 0..n + 10 {
            if let Some(v) = snapshot.get(&i.to_le_bytes()).unwrap() {
                found += v.len();
            }
        }
        for i in 0..n {
            found += map.get(&i.to_le_bytes()).unwrap().map_or(0, |v| v.len());
        }
        found
    });
    assert!(found > 0);
    assert_eq!(allocations, 0, "the read path allocated");
}

#[test]
#[cfg(feature = "value-slack")]
fn extension_factor_lets_a_transaction_rewrite_its_own_values_in_place() {
    let map = Map::create(region(), MapOptions::default()).unwrap();
    assert!(matches!(
        map.set_extension_factor(0.5),
        Err(Error::InvalidOption { .. })
    ));
    map.set_extension_factor(2.0).unwrap();
    assert_eq!(map.extension_factor(), 2.0);
    map.put(b"other", &[9u8; 700]).unwrap();
    let mut txn = map.begin_write();
    txn.put(b"k", &[1u8; 600]).unwrap();
    // 1,100 bytes fit the 1,200 the first value was given: rewritten in place.
    assert!(!txn.put(b"k", &[2u8; 1100]).unwrap());
    assert_eq!(txn.get(b"k").unwrap(), Some(&[2u8; 1100][..]));
    // Committed entries are never rewritten: "other" gets a new entry.
    assert!(!txn.put(b"other", &[3u8; 700]).unwrap());
    txn.commit().unwrap();
    let stats = map.stats().unwrap();
    // k: 1,232-byte entry (32-byte header, 1,200 of room) holds 1,100 bytes; other:
    // 1,432-byte entry (room 1,400) holds 700.
    assert_eq!(stats.slack_bytes, 100 + 700);
    assert_eq!(stats.live_bytes, 1 + 1100 + 5 + 700);
    let before = map.begin_read();
    let mut txn = map.begin_write();
    txn.put(b"k", &[4u8; 900]).unwrap();
    txn.commit().unwrap();
    // The snapshot still reads the value the in-place rewrite left before the commit.
    assert_eq!(before.get(b"k").unwrap(), Some(&[2u8; 1100][..]));
    drop(before);
    assert!(map.check().is_ok());
    let map = Map::open(map.into_region()).unwrap();
    assert_eq!(map.extension_factor(), 1.0, "a runtime setting, not stored");
    assert_eq!(&*map.get(b"k").unwrap().unwrap(), &[4u8; 900][..]);
    assert_eq!(&*map.get(b"other").unwrap().unwrap(), &[3u8; 700][..]);
    assert!(map.check().is_ok());
    // Without slack the same overwrite in one transaction writes a new entry of exactly
    // its size (4 bytes of alignment padding) and frees the old one; "other" keeps the
    // room it was written with until compaction moves it.
    let mut txn = map.begin_write();
    txn.put(b"k", &[5u8; 600]).unwrap();
    txn.put(b"k", &[6u8; 1100]).unwrap();
    txn.commit().unwrap();
    assert_eq!(map.stats().unwrap().slack_bytes, 4 + 700);
    assert_eq!(&*map.get(b"k").unwrap().unwrap(), &[6u8; 1100][..]);
}

/// The same map without the `value-slack` feature (the firmware's build): a value an
/// overwrite in its own transaction replaces is a new entry of exactly its room, the old
/// one freed at once, and nothing is left behind.
#[test]
fn a_transaction_overwriting_its_own_value_writes_a_new_entry_and_frees_the_old() {
    let map = Map::create(region(), MapOptions::default()).unwrap();
    let mut txn = map.begin_write();
    txn.put(b"k", &[1u8; 1600]).unwrap();
    let after_first = txn.space.used_end();
    assert!(!txn.put(b"k", &[2u8; 1600]).unwrap());
    assert!(!txn.put(b"k", &[3u8; 1500]).unwrap());
    assert_eq!(txn.get(b"k").unwrap(), Some(&[3u8; 1500][..]));
    // The replaced entries were the transaction's own: their room is reused, so the
    // used end grows by at most one more entry.
    assert!(txn.space.used_end() <= after_first + 32 + 1600);
    txn.commit().unwrap();
    let stats = map.stats().unwrap();
    assert_eq!(stats.live_bytes, 1 + 1500, "{stats:?}");
    if cfg!(feature = "value-slack") {
        // Rewritten in place: the 1,600 bytes of room hold 1,500.
        assert_eq!(stats.slack_bytes, 100, "{stats:?}");
    } else {
        assert_eq!(stats.slack_bytes, 4, "alignment padding only: {stats:?}");
    }
    assert!(map.check().is_ok());
    let map = Map::open(map.into_region()).unwrap();
    assert_eq!(&*map.get(b"k").unwrap().unwrap(), &[3u8; 1500][..]);
}

#[test]
fn compaction_reuses_space_freed_while_a_snapshot_was_open() {
    // The stress test's flake: commits made while a snapshot was open leave their frees
    // pending; once it is dropped, compaction must see that space as free and move the
    // live entries down into it, not stop at once because nothing below looked free.
    let map = Map::create(region(), MapOptions::default()).unwrap();
    let n = if cfg!(miri) { 30u32 } else { 300 };
    let put_all = |round: u8| {
        let mut txn = map.begin_write();
        for i in 0..n {
            txn.put(&i.to_le_bytes(), &[round; 40]).unwrap();
        }
        txn.commit().unwrap();
    };
    put_all(0);
    let snapshot = map.begin_read();
    put_all(1);
    put_all(2);
    drop(snapshot);
    let report = map.compact().unwrap();
    let live = map.check().entry_bytes;
    assert!(report.bytes_moved > 0, "{report:?}");
    assert!(
        report.used_end_after <= DATA_START + live,
        "{report:?}, live entries {live} B"
    );
}

#[test]
fn pending_bytes_count_what_a_snapshot_holds_back() {
    let map = Map::create(region(), MapOptions::default()).unwrap();
    let put_all = |round: u8| {
        let mut txn = map.begin_write();
        for i in 0..50u32 {
            txn.put(&i.to_le_bytes(), &[round; 40]).unwrap();
        }
        txn.commit().unwrap();
    };
    put_all(0);
    assert_eq!(map.space_usage().pending_bytes, 0);
    let snapshot = map.begin_read();
    put_all(1);
    let held = map.space_usage().pending_bytes;
    assert!(held > 0);
    put_all(2);
    let more = map.space_usage().pending_bytes;
    assert!(more > held, "{more} after {held}");
    assert_eq!(map.stats().unwrap().dead_bytes, more);
    drop(snapshot);
    put_all(3);
    assert_eq!(map.space_usage().pending_bytes, 0);
    assert_eq!(map.stats().unwrap().dead_bytes, 0);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "minutes under Miri; sweeps of safe parsing code, run natively"
)]
fn both_payload_reads_agree_on_every_entry_and_every_damaged_byte() {
    // `read_payload` is the fast read on the host and `read_entry` plus a kind check on
    // Arm (smaller firmware): both must give the same outcome, errors included, for any
    // offset and kind, on an intact image and with any one byte damaged.
    use crate::SliceRegion;
    use crate::buffer::format::EntryHeader;
    use crate::buffer::space::{read_payload_fast, read_payload_small};
    let mut bytes = vec![0u8; 8 << 10];
    let used_end = {
        let map = Map::create(SliceRegion::new(&mut bytes), small_inline()).unwrap();
        let mut txn = map.begin_write();
        for i in 0u8..16 {
            let value = vec![i; usize::from(i % 3) * 7];
            txn.put(&[i, i / 8], &value).unwrap();
        }
        txn.commit().unwrap();
        map.begin_read().meta.used_end
    };
    // A header near the region's end whose payload runs past it: the view fails.
    let tail = bytes.len() - 32;
    let header = EntryHeader {
        checksum: 0,
        kind: EntryKind::Branch,
        capacity: 64,
        len: 40,
        txid: 1,
        id: 0,
    };
    bytes[tail..].copy_from_slice(&header.encode());
    let kinds = [
        EntryKind::Branch,
        EntryKind::Collision,
        EntryKind::Value,
        EntryKind::Record,
    ];
    let compare = |bytes: &mut [u8], ends: &[u64], offsets: &mut dyn Iterator<Item = u64>| {
        let region = SliceRegion::new(bytes);
        for off in offsets {
            for &end in ends {
                for kind in kinds {
                    let fast = read_payload_fast(&region, off, end, kind);
                    let small = read_payload_small(&region, off, end, kind);
                    assert_eq!(fast, small, "offset {off}, used end {end}, {kind:?}");
                }
            }
        }
    };
    let past = bytes.len() as u64 + 64;
    compare(
        &mut bytes,
        &[used_end, past],
        &mut (0..used_end + 16).step_by(4),
    );
    compare(
        &mut bytes,
        &[past],
        &mut (tail as u64 - 64..past).step_by(4),
    );
    let mut damaged = bytes.clone();
    // Every byte natively; a sample under Miri, which interprets every instruction.
    let stride = if cfg!(miri) { 29 } else { 1 };
    for at in (DATA_START as usize..used_end as usize).step_by(stride) {
        for flip in [0x01, 0x80, 0xff] {
            damaged[at] ^= flip;
            compare(
                &mut damaged,
                &[used_end],
                &mut (DATA_START..used_end).step_by(8),
            );
            damaged[at] ^= flip;
        }
    }
}

/// Fills a map with `pairs` (repeated keys, values above `inline_max`), commits, and
/// holds the result to the model: lookups one at a time and batched, `check`, and the
/// free space the writer keeps against the free space a reopen finds by walking (a value
/// entry of a replaced duplicate neither leaked nor freed twice).
fn fill_agrees_after_reopen<H: KeyHasher + Copy>(hasher: H, pairs: &[(Vec<u8>, Vec<u8>)]) {
    let map = Map::create_with_hasher(region(), small_inline(), hasher).unwrap();
    let mut model = Model::new();
    for (k, v) in pairs {
        model.insert(k.clone(), v.clone());
    }
    let mut txn = map.begin_write();
    let n = txn
        .fill(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
        .unwrap();
    assert_eq!(n, model.len() as u64);
    for (k, v) in &model {
        assert_eq!(txn.get(k).unwrap(), Some(&v[..]));
    }
    txn.commit().unwrap();
    // A second commit makes the first one's pending frees free.
    map.shrink().unwrap();
    let usage = map.space_usage();
    check_snapshot(&map.begin_read(), &model);
    let mut probes: Vec<&[u8]> = model.keys().map(Vec::as_slice).collect();
    probes.push(b"absent");
    probes.push(b"");
    let snapshot = map.begin_read();
    let many = snapshot.get_many(&probes).unwrap();
    for (k, got) in probes.iter().zip(&many) {
        assert_eq!(*got, snapshot.get(k).unwrap(), "key {k:?}");
        assert_eq!(*got, model.get(*k).map(Vec::as_slice), "key {k:?}");
    }
    drop(snapshot);
    let by_puts = Map::create_with_hasher(region(), small_inline(), hasher).unwrap();
    for (k, v) in pairs {
        by_puts.put(k, v).unwrap();
    }
    assert_eq!(shape(&map), shape(&by_puts));
    let map = Map::open_with_hasher(map.into_region(), hasher).unwrap();
    check_snapshot(&map.begin_read(), &model);
    let reopened = map.space_usage();
    assert_eq!(
        (usage.used_end, usage.free_bytes + usage.pending_bytes),
        (
            reopened.used_end,
            reopened.free_bytes + reopened.pending_bytes
        ),
        "writer's free space vs a reopen's"
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "minutes under Miri; sweeps of safe parsing code, run natively"
)]
fn fill_with_repeated_large_values_frees_each_loser_once() {
    let mut pairs = Vec::new();
    for round in 0u8..4 {
        for k in 0u8..50 {
            let len = 9 + usize::from(k) * 3 + usize::from(round);
            pairs.push((vec![k % 25, k % 7], vec![round ^ k; len]));
        }
        pairs.push((Vec::new(), vec![round; 40]));
    }
    fill_agrees_after_reopen(Murmur3, &pairs);
    fill_agrees_after_reopen(Colliding, &pairs);
    fill_agrees_after_reopen(FewBits, &pairs);
    // One key, given many times.
    let one: Vec<_> = (0u8..10).map(|i| (b"k".to_vec(), vec![i; 100])).collect();
    fill_agrees_after_reopen(Murmur3, &one);
    fill_agrees_after_reopen(Colliding, &one);
    let empty: Vec<_> = (0u8..3).map(|i| (Vec::new(), vec![i; 30])).collect();
    fill_agrees_after_reopen(Colliding, &empty);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "minutes under Miri; sweeps of safe parsing code, run natively"
)]
fn get_many_agrees_with_get_on_every_damaged_byte() {
    // On a damaged image a batched lookup may fail, but never panics, and when every
    // single lookup succeeds it gives their answers.
    use crate::SliceRegion;
    fn run<H: KeyHasher + Copy>(hasher: H) {
        let mut bytes = vec![0u8; 16 << 10];
        let keys: Vec<Vec<u8>> = (0u8..24).map(|i| vec![i, i / 8]).collect();
        let used_end = {
            let map = Map::create_with_hasher(SliceRegion::new(&mut bytes), small_inline(), hasher)
                .unwrap();
            map.bulk_load(
                keys.iter()
                    .map(|k| (k.clone(), vec![k[0]; usize::from(k[0] % 3) * 7])),
            )
            .unwrap();
            map.begin_read().meta.used_end
        };
        let mut probes: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        probes.push(b"");
        probes.push(b"zz");
        // Every byte natively; a sample under Miri, which interprets every instruction.
        let (stride, flips): (usize, &[u8]) = if cfg!(miri) {
            (397, &[0xff])
        } else {
            (1, &[0x01, 0x10, 0x80, 0xff])
        };
        for at in (DATA_START as usize..used_end as usize).step_by(stride) {
            for &flip in flips {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                let Ok(map) = Map::open_with_hasher(SliceRegion::new(&mut damaged), hasher) else {
                    continue;
                };
                let snapshot = map.begin_read();
                let one: Result<Vec<_>, _> = probes.iter().map(|k| snapshot.get(k)).collect();
                let many = snapshot.get_many(&probes);
                match (one, many) {
                    (Ok(one), Ok(many)) => assert_eq!(one, many, "byte {at} ^ {flip:#x}"),
                    (Ok(one), Err(e)) => {
                        panic!("byte {at} ^ {flip:#x}: get {one:?}, get_many {e:?}")
                    }
                    (Err(_), Ok(many)) => panic!("byte {at} ^ {flip:#x}: get_many {many:?}"),
                    (Err(_), Err(_)) => {}
                }
            }
        }
    }
    run(Murmur3);
    run(FewBits);
    run(Colliding);
}

/// A region that remembers the highest offset anything viewed, to hold readers to the
/// Region contract: a snapshot views only bytes below its used end (the writer may be
/// writing above it, and `shrink` may release it).
struct ViewSpy<'a> {
    inner: crate::SliceRegion<'a>,
    highest_view: core::sync::atomic::AtomicU64,
}

// SAFETY: forwards every call to the `SliceRegion`, which keeps the three promises;
// recording an offset changes no behaviour.
#[allow(unsafe_code)]
unsafe impl Region for ViewSpy<'_> {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), crate::RegionError> {
        self.inner.read(offset, buf)
    }
    fn view(&self, offset: u64, len: usize) -> Result<&[u8], crate::RegionError> {
        let v = self.inner.view(offset, len)?;
        self.highest_view
            .fetch_max(offset, core::sync::atomic::Ordering::Relaxed);
        Ok(v)
    }
    unsafe fn write(&self, offset: u64, data: &[u8]) -> Result<(), crate::RegionError> {
        // SAFETY: the caller keeps `Region::write`'s contract, which is the inner one's.
        unsafe { self.inner.write(offset, data) }
    }
    fn grow(&self, min_len: u64) -> Result<u64, crate::RegionError> {
        self.inner.grow(min_len)
    }
    unsafe fn truncate(&self, new_len: u64) -> Result<u64, crate::RegionError> {
        // SAFETY: the caller keeps `Region::truncate`'s contract, which is the inner one's.
        unsafe { self.inner.truncate(new_len) }
    }
    fn sync(&self, offset: u64, len: u64) -> Result<(), crate::RegionError> {
        self.inner.sync(offset, len)
    }
}

#[test]
#[allow(unsafe_code)] // damages the image through `Region::write`
fn get_many_views_nothing_past_the_snapshot_on_a_damaged_child_offset() {
    use crate::SliceRegion;
    let mut bytes = vec![0u8; 64 << 10];
    let keys: Vec<Vec<u8>> = (0u32..200).map(|i| i.to_le_bytes().to_vec()).collect();
    let (root, used_end) = {
        let map = Map::create(SliceRegion::new(&mut bytes), small_inline()).unwrap();
        map.bulk_load(keys.iter().map(|k| (k, b"v"))).unwrap();
        let s = map.begin_read();
        (s.meta.root, s.meta.used_end)
    };
    let spy = ViewSpy {
        inner: SliceRegion::new(&mut bytes),
        highest_view: core::sync::atomic::AtomicU64::new(0),
    };
    // `open` walks the whole trie, so the damage comes after it (another process
    // writing the file, a bad page read back): the root's first child offset (right
    // after its two bitmaps) now points past the used end, inside the region, where a
    // writer appends while the snapshot is open.
    let map = Map::open(&spy).unwrap();
    let past = (used_end + 4096) & !7;
    assert!(past + 64 < spy.len());
    // SAFETY: no view is alive (no snapshot is open) and no other thread uses the region.
    unsafe { spy.write(root + HEADER_LEN as u64 + 16, &past.to_le_bytes()) }.unwrap();
    let snapshot = map.begin_read();
    assert_eq!(snapshot.meta.used_end, used_end);
    spy.highest_view
        .store(0, core::sync::atomic::Ordering::Relaxed);
    let probes: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    for k in &probes {
        let _ = snapshot.get(k);
    }
    assert!(
        spy.highest_view.load(core::sync::atomic::Ordering::Relaxed) < used_end,
        "get viewed past the used end"
    );
    assert!(snapshot.get_many(&probes).is_err());
    let highest = spy.highest_view.load(core::sync::atomic::Ordering::Relaxed);
    assert!(
        highest < used_end,
        "get_many viewed offset {highest}, past the snapshot's used end {used_end}"
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "minutes under Miri; sweeps of safe parsing code, run natively"
)]
fn a_fill_that_runs_out_of_room_part_way_leaves_the_map_as_it_was() {
    // Region sizes from "the values do not fit" to "everything fits": the fill fails
    // while writing values, while freeing replaced ones, or while writing nodes. Each
    // time the commit refuses, the map is as it was, and a later transaction works.
    use crate::SliceRegion;
    let mut pairs = Vec::new();
    for round in 0u8..3 {
        for k in 0u8..40 {
            pairs.push((vec![k, k % 3], vec![round ^ k; 20 + usize::from(k)]));
        }
    }
    let (mut filled, mut refused) = (0, 0);
    for size in (4096..24_576).step_by(if cfg!(miri) { 4096 } else { 256 }) {
        let mut bytes = vec![0u8; size];
        let Ok(map) =
            Map::create_with_hasher(SliceRegion::new(&mut bytes), small_inline(), FewBits)
        else {
            continue;
        };
        let before = map.space_usage();
        let mut txn = map.begin_write();
        match txn.fill(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))) {
            Ok(n) => {
                assert_eq!(n, 40);
                if txn.commit().is_ok() {
                    filled += 1;
                    assert_eq!(map.len(), 40);
                }
            }
            Err(e) => {
                refused += 1;
                assert!(matches!(e, Error::Region(_)), "{e:?}");
                assert_eq!(txn.commit(), Err(e));
                assert!(map.is_empty());
                assert_eq!(map.space_usage(), before, "size {size}");
            }
        }
        let report = map.check();
        assert!(report.is_ok(), "size {size}: {:?}", report.problems);
        let n = map.len();
        if n == 0 {
            // The room the failed fill took is back.
            map.put(b"later", b"works").unwrap();
            assert!(map.check().is_ok());
        }
        let map = Map::open_with_hasher(map.into_region(), FewBits).unwrap();
        assert!(map.check().is_ok());
        assert_eq!(map.len(), n.max(1));
    }
    assert!(
        filled > 0 && refused > 0,
        "{filled} filled, {refused} refused"
    );
}

/// Hashes that agree on the 126 bits the 21 branch levels use and differ in the top two.
#[derive(Clone, Copy, Default)]
struct TopBits;

impl KeyHasher for TopBits {
    fn hash(&self, _seed: u64, key: &[u8]) -> [u64; 2] {
        [
            0x1234,
            u64::from(key.first().copied().unwrap_or(0) & 3) << 62,
        ]
    }
}

#[test]
fn keys_differing_only_in_the_unused_hash_bits_share_a_collision_node() {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0u8..12)
        .map(|i| (vec![i, i / 4], vec![i; 3 + usize::from(i) * 2]))
        .collect();
    fill_agrees_after_reopen(TopBits, &pairs);
}
