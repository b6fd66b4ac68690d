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
    VecRegion::with_capacity(8 << 20)
}

fn small_inline() -> MapOptions {
    MapOptions {
        inline_max: 8,
        ..MapOptions::default()
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

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key(), prop::collection::vec(any::<u8>(), 0..20)).prop_map(|(k, v)| Op::Put(k, v)),
        3 => key().prop_map(Op::Delete),
        1 => Just(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::Reopen),
    ]
}

fn check_against<R: Region, H: KeyHasher>(map: &Map<R, H>, model: &HashMap<Vec<u8>, Vec<u8>>) {
    assert_eq!(map.len(), model.len() as u64);
    for (k, v) in model {
        assert_eq!(map.get(k).unwrap(), Some(&v[..]), "key {k:?}");
    }
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = map
        .iter()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    pairs.sort();
    let mut want: Vec<_> = model.clone().into_iter().collect();
    want.sort();
    assert_eq!(pairs, want);
}

fn run_model<H: KeyHasher + Copy>(hasher: H, ops: &[Op]) {
    let mut map = Map::create_with_hasher(region(), small_inline(), hasher).unwrap();
    let mut committed: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut live = committed.clone();
    for op in ops {
        match op {
            Op::Put(k, v) => {
                let new = map.put(k, v).unwrap();
                assert_eq!(new, live.insert(k.clone(), v.clone()).is_none());
            }
            Op::Delete(k) => {
                assert_eq!(map.delete(k).unwrap(), live.remove(k).is_some());
                assert_eq!(map.get(k).unwrap(), None);
            }
            Op::Commit => {
                map.commit().unwrap();
                committed = live.clone();
            }
            Op::Abort => {
                map.abort();
                live = committed.clone();
            }
            Op::Reopen => {
                map = Map::open_with_hasher(map.into_region(), hasher).unwrap();
                live = committed.clone();
            }
        }
        check_against(&map, &live);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 128 },
        ..ProptestConfig::default()
    })]

    #[test]
    fn model_with_murmur(ops in prop::collection::vec(op(), 1..60)) {
        run_model(Murmur3, &ops);
    }

    #[test]
    fn model_with_colliding_hasher(ops in prop::collection::vec(op(), 1..40)) {
        run_model(Colliding, &ops);
    }

    #[test]
    fn model_with_few_hash_bits(ops in prop::collection::vec(op(), 1..40)) {
        run_model(FewBits, &ops);
    }

    #[test]
    fn shape_depends_only_on_the_key_set(
        keys in prop::collection::hash_set(prop::collection::vec(any::<u8>(), 1..6), 1..40),
        extra in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..6), 0..20),
    ) {
        // Build the same key set two ways: sorted inserts, and reversed inserts with extra
        // keys added and deleted again. The images' trees must be identical node by node.
        let mut sorted: Vec<_> = keys.iter().cloned().collect();
        sorted.sort();
        let mut a = Map::create(region(), small_inline()).unwrap();
        for k in &sorted {
            a.put(k, b"v").unwrap();
        }
        let mut b = Map::create(region(), small_inline()).unwrap();
        for k in sorted.iter().rev() {
            b.put(k, b"v").unwrap();
        }
        for k in &extra {
            if !keys.contains(k) {
                b.put(k, b"extra").unwrap();
            }
        }
        for k in &extra {
            if !keys.contains(k) {
                b.delete(k).unwrap();
            }
        }
        prop_assert_eq!(shape(&a), shape(&b));
    }
}

/// The trie as nested text: node kinds and the keys in each slot, without offsets.
fn shape<R: Region, H: KeyHasher>(map: &Map<R, H>) -> std::string::String {
    use core::fmt::Write;
    fn walk<R: Region>(s: &Space<R>, off: u64, depth: u32, out: &mut std::string::String) {
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
    let mut out = std::string::String::new();
    if map.root != 0 {
        walk(&map.space, map.root, 0, &mut out);
    }
    out
}

#[test]
fn colliding_keys_meet_in_a_sorted_collision_node() {
    let mut map = Map::create_with_hasher(region(), small_inline(), Colliding).unwrap();
    for k in [&b"pear"[..], b"apple", b"fig"] {
        map.put(k, k).unwrap();
    }
    let stats = map.stats().unwrap();
    assert_eq!(stats.depth_histogram[node::MAX_DEPTH as usize], 3);
    assert_eq!(
        shape(&map)
            .matches("C([97, 112, 112, 108, 101],[102, 105, 103],[112, 101, 97, 114],)")
            .count(),
        1
    );
    map.delete(b"fig").unwrap();
    map.delete(b"apple").unwrap();
    // One key left: the whole chain collapses into the root.
    assert_eq!(map.stats().unwrap().depth_histogram[0], 1);
    assert!(!shape(&map).contains('C'));
}

#[test]
fn large_values_live_in_their_own_entries() {
    let mut map = Map::create(region(), small_inline()).unwrap();
    let big = vec![7u8; 10_000];
    map.put(b"big", &big).unwrap();
    map.put(b"small", b"tiny").unwrap();
    map.commit().unwrap();
    assert_eq!(map.get(b"big").unwrap(), Some(&big[..]));
    map.put(b"big", b"now small").unwrap();
    map.commit().unwrap();
    let map = Map::open(map.into_region()).unwrap();
    assert_eq!(map.get(b"big").unwrap(), Some(&b"now small"[..]));
}

#[test]
fn limits_are_typed_errors_and_lose_nothing() {
    let mut map = Map::create(VecRegion::with_capacity(16 << 10), MapOptions::default()).unwrap();
    map.put(b"kept", b"value").unwrap();
    map.commit().unwrap();
    let long_key = vec![0u8; MAX_KEY_LEN + 1];
    assert!(matches!(
        map.put(&long_key, b""),
        Err(Error::TooLarge { what: "key", .. })
    ));
    assert!(matches!(
        map.put(b"huge", &vec![1u8; 64 << 10]),
        Err(Error::Region(_))
    ));
    map.abort();
    assert_eq!(map.get(b"kept").unwrap(), Some(&b"value"[..]));
    let map = Map::open(map.into_region()).unwrap();
    assert_eq!(map.get(b"kept").unwrap(), Some(&b"value"[..]));
}

#[test]
fn deleting_an_absent_key_writes_nothing() {
    // mmcmap wrote a new path even when the key was absent.
    let mut map = Map::create(region(), MapOptions::default()).unwrap();
    for i in 0..100u32 {
        map.put(&i.to_le_bytes(), b"v").unwrap();
    }
    map.commit().unwrap();
    let used = map.space.used_end();
    assert!(!map.delete(b"absent").unwrap());
    assert!(!map.space.has_changes());
    assert_eq!(map.space.used_end(), used);
}

#[test]
fn deep_deletes_are_linked_back() {
    // mmcmap lost deletes below the root's children; check every delete sticks.
    let mut map = Map::create(region(), MapOptions::default()).unwrap();
    for i in 0..2000u32 {
        map.put(&i.to_le_bytes(), &(i * 7).to_le_bytes()).unwrap();
    }
    map.commit().unwrap();
    for i in (0..2000u32).step_by(3) {
        assert!(map.delete(&i.to_le_bytes()).unwrap());
    }
    map.commit().unwrap();
    let map = Map::open(map.into_region()).unwrap();
    for i in 0..2000u32 {
        let want = (i % 3 != 0).then(|| (i * 7).to_le_bytes());
        assert_eq!(
            map.get(&i.to_le_bytes()).unwrap(),
            want.as_ref().map(|w| &w[..])
        );
    }
    assert_eq!(map.len(), 2000 - 667);
}
