//! The map's golden images, format version 1 as this code writes it. Every later version
//! must open them with exactly these contents, or refuse them with a clear error:
//!
//! - `tests/fixtures/v1/map.img`: the default hasher (MurmurHash3 x64_128 with the
//!   image's seed): a bulk load, puts, overwrites that move values between inline and
//!   value entries, deletes, a compaction, eventual commits and a sync, an empty key and
//!   a long one, stale bytes in free space.
//! - `tests/fixtures/v1/map_collisions.img`: collision nodes, which MurmurHash3 never
//!   makes in practice, written with [`KeyIsHash`] (the key's first 16 bytes are its
//!   hash): keys that differ only in trailing zero bytes share a collision node at depth
//!   21, others a deep chain of branches.
//!
//! As long as the format is version 1, the current code must write both byte for byte
//! (`current_code_writes_the_golden_images`): the scripts are deterministic (fixed seeds,
//! a fresh zeroed region, no clock), so any difference is a change of the format or of
//! its allocation and layout decisions, which should be deliberate.
//!
//! Regenerate only for a deliberate format change (and a new `vN` directory):
//! `HAMTDB_BLESS=1 cargo test -p hamtdb-tests --test map_golden`.

use std::collections::BTreeMap;

use hamtdb_core::{Buffer, Durability, Error, KeyHasher, Map, MapOptions, Murmur3, VecRegion};
use hamtdb_tests::damage::reseal_meta;

/// Relative to the package root, where `cargo test` runs integration tests.
const MAP_FIXTURE: &str = "fixtures/v1/map.img";
const COLLISIONS_FIXTURE: &str = "fixtures/v1/map_collisions.img";

const SEED: u64 = 0x0123_4567_89AB_CDEF;
const INLINE_MAX: u32 = 16;

/// The key's first 16 bytes, zero-padded, as two little-endian u64s: the hash of the
/// collisions image. Pinned here, with the image.
#[derive(Clone, Copy, Debug)]
struct KeyIsHash;

impl KeyHasher for KeyIsHash {
    fn hash(&self, _seed: u64, key: &[u8]) -> [u64; 2] {
        let mut b = [0u8; 16];
        let n = key.len().min(16);
        b[..n].copy_from_slice(&key[..n]);
        [
            u64::from_le_bytes(b[..8].try_into().unwrap()),
            u64::from_le_bytes(b[8..].try_into().unwrap()),
        ]
    }
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// One step of a script; applied to a map to write the image, and to a `BTreeMap` for
/// the contents the image must hold (so the expectation does not come from the map).
enum Step {
    BulkLoad(Vec<(Vec<u8>, Vec<u8>)>),
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Commit(Durability),
    Sync,
    Compact,
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

/// `len` bytes of a fixed pattern, different for each `(len, fill)`.
fn value(len: usize, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| fill.wrapping_add((i as u8).wrapping_mul(31)) ^ (len as u8))
        .collect()
}

/// Value lengths on both sides of the inline limit (16): inline, just inline, just in a
/// value entry, a larger entry.
const LENS: [usize; 6] = [0, 5, 16, 17, 40, 300];

fn map_script() -> Vec<Step> {
    use Step::*;
    let mut s = vec![BulkLoad(
        (0..120)
            .map(|i| (key(i), value(LENS[i as usize % 6], i as u8)))
            .collect(),
    )];
    s.extend((120..200).map(|i| Put(key(i), value(LENS[i as usize % 6], i as u8))));
    s.push(Put(Vec::new(), b"the empty key".to_vec()));
    s.push(Put(vec![0xA5; 300], value(20, 1)));
    s.push(Commit(Durability::Immediate));
    // Overwrites: inline <-> value entry, and the same key twice in one transaction.
    s.extend(
        (0..200)
            .step_by(3)
            .map(|i| Put(key(i), value(LENS[(i as usize + 3) % 6], 0x80))),
    );
    s.push(Put(key(7), value(3, 3)));
    s.push(Put(key(7), value(33, 4)));
    s.extend((1..200).step_by(4).map(|i| Delete(key(i))));
    s.push(Commit(Durability::Immediate));
    s.push(Compact);
    s.extend((200..220).map(|i| Put(key(i), value(LENS[i as usize % 6], i as u8))));
    s.push(Commit(Durability::Eventual));
    s.push(Delete(key(2)));
    s.push(Put(key(4), value(100, 5)));
    s.push(Commit(Durability::Eventual));
    s.push(Sync);
    // Deletes after the compaction: stale bytes in free space.
    s.extend((10..60).step_by(6).map(|i| Delete(key(i))));
    s.push(Commit(Durability::Immediate));
    s
}

fn collisions_script() -> Vec<Step> {
    use Step::*;
    let mut s = Vec::new();
    // Three groups that collide all the way down: "a", "a\0", "a\0\0", ...
    for (g, base) in [&b"a"[..], b"bb", b"c\x01"].into_iter().enumerate() {
        for zeros in 0..4 {
            let mut k = base.to_vec();
            k.extend(core::iter::repeat_n(0u8, zeros));
            s.push(Put(k, value(LENS[(g + zeros) % 6], (g * 4 + zeros) as u8)));
        }
    }
    // 16-byte keys that differ only in the last byte: a chain of branches to depth ~20.
    for last in 0..5u8 {
        let mut k = vec![0x33; 15];
        k.push(last);
        s.push(Put(k, value(LENS[usize::from(last) % 6], last)));
    }
    // Ordinary short keys beside them.
    s.extend((0..20).map(|i| Put(key(i), value(LENS[i as usize % 6], i as u8))));
    s.push(Commit(Durability::Immediate));
    // A group shrinks to one key (the collision node collapses), another loses one.
    s.push(Delete(b"bb".to_vec()));
    s.push(Delete(b"bb\0".to_vec()));
    s.push(Delete(b"bb\0\0".to_vec()));
    s.push(Delete(b"a\0".to_vec()));
    s.push(Put(b"c\x01\0".to_vec(), value(50, 9)));
    s.push(Commit(Durability::Immediate));
    s
}

fn options() -> MapOptions {
    MapOptions {
        inline_max: INLINE_MAX,
        seed: SEED,
    }
}

/// Runs `script` on a fresh map with `hasher`; returns the image and the contents.
fn write<H: KeyHasher>(script: &[Step], hasher: H) -> (Vec<u8>, Model) {
    let map =
        Map::create_with_hasher(VecRegion::with_capacity(1 << 20), options(), hasher).unwrap();
    let mut model = Model::new();
    let mut pending = Model::new();
    let mut txn = None;
    for step in script {
        match step {
            Step::BulkLoad(pairs) => {
                assert_eq!(map.bulk_load(pairs.clone()).unwrap(), pairs.len() as u64);
                pending.extend(pairs.iter().cloned());
                model = pending.clone();
            }
            Step::Put(k, v) => {
                let t = txn.get_or_insert_with(|| map.begin_write());
                t.put(k, v).unwrap();
                pending.insert(k.clone(), v.clone());
            }
            Step::Delete(k) => {
                let t = txn.get_or_insert_with(|| map.begin_write());
                assert!(t.delete(k).unwrap(), "{k:?} is present");
                pending.remove(k);
            }
            Step::Commit(durability) => {
                txn.take().unwrap().commit_with(*durability).unwrap();
                model = pending.clone();
            }
            Step::Sync => map.sync().unwrap(),
            Step::Compact => {
                let report = map.compact().unwrap();
                assert!(report.used_end_after < report.used_end_before, "{report:?}");
            }
        }
    }
    assert!(txn.is_none(), "the script ends with a commit");
    drop(txn);
    (map.into_region().to_vec(), model)
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Panics at the first byte where `written` and the fixture at `path` differ.
fn same_bytes(path: &str, written: &[u8]) {
    if std::env::var_os("HAMTDB_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all("fixtures/v1").unwrap();
        std::fs::write(path, written).unwrap();
        eprintln!("wrote {path} ({} bytes)", written.len());
    }
    let golden = read(path);
    assert!(golden.len() < 64 << 10, "{path} is {} bytes", golden.len());
    if let Some(at) =
        (0..written.len().max(golden.len())).find(|&i| written.get(i) != golden.get(i))
    {
        panic!(
            "{path}: the current code writes a different image: first difference at byte \
             {at} (written {} bytes, golden {} bytes). A format change needs a new version \
             and a new fixture directory, not a re-blessed v1.",
            written.len(),
            golden.len()
        );
    }
}

#[test]
fn current_code_writes_the_golden_images() {
    let (map, _) = write(&map_script(), Murmur3);
    same_bytes(MAP_FIXTURE, &map);
    let (collisions, _) = write(&collisions_script(), KeyIsHash);
    same_bytes(COLLISIONS_FIXTURE, &collisions);
    // And writing is deterministic within one build (so a difference above is a change).
    assert_eq!(write(&map_script(), Murmur3).0, map);
}

/// The newer meta slot, as docs/FORMAT.md pins it.
fn newest_slot(image: &[u8]) -> usize {
    let txid = |slot: usize| u64::from_le_bytes(image[slot + 16..slot + 24].try_into().unwrap());
    if txid(512) > txid(0) { 512 } else { 0 }
}

/// Opens `image` with `hasher` and checks it holds exactly `model`, and works on.
fn check_contents<H: KeyHasher>(image: &[u8], hasher: H, model: &Model) -> Map<VecRegion, H> {
    let slot = newest_slot(image);
    assert_eq!(&image[slot..slot + 8], b"hamtdbMS");
    assert_eq!(image[slot + 8..slot + 12], 1u32.to_le_bytes(), "version");
    assert_eq!(image[slot + 12..slot + 16], 2u32.to_le_bytes(), "kind: map");
    assert_eq!(
        image[slot + 40..slot + 48],
        (model.len() as u64).to_le_bytes()
    );
    assert_eq!(image[slot + 96..slot + 104], SEED.to_le_bytes());
    assert_eq!(image[slot + 152..slot + 156], INLINE_MAX.to_le_bytes());

    let map = Map::open_with_hasher(VecRegion::from_bytes(image, 1 << 20), hasher).unwrap();
    assert_eq!(map.len(), model.len() as u64);
    let report = map.check();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.keys, model.len() as u64);
    let mut pairs = map.iter().unwrap();
    pairs.sort();
    assert!(pairs.into_iter().eq(model.clone()));
    for (k, v) in model {
        assert_eq!(map.get(k).unwrap().as_deref(), Some(&v[..]), "get({k:?})");
    }
    let keys: Vec<&[u8]> = model.keys().map(Vec::as_slice).collect();
    let snapshot = map.begin_read();
    let many = snapshot.get_many(&keys).unwrap();
    assert!(
        many.iter()
            .zip(model.values())
            .all(|(g, v)| *g == Some(&v[..]))
    );
    drop(snapshot);
    for absent in [&b"absent"[..], b"key-1", b"key-9999"] {
        if !model.contains_key(absent) {
            assert_eq!(map.get(absent).unwrap().as_deref(), None);
        }
    }
    let stats = map.stats().unwrap();
    assert_eq!(stats.entries, model.len() as u64);
    let live: u64 = model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    assert_eq!(stats.live_bytes, live);
    map
}

#[test]
fn golden_map_opens_with_its_contents() {
    let (_, model) = write(&map_script(), Murmur3);
    // The script's outcome, pinned independently of the code: 220 keys put (plus the
    // empty and the long one), 50 deleted by the second transaction, key-2 and 9 more
    // (key-10, key-16, ..., key-58) after.
    assert_eq!(model.len(), 222 - 50 - 1 - 9);
    assert_eq!(model[&key(7)], value(33, 4));
    assert_eq!(model[&key(4)], value(100, 5));
    assert_eq!(model[&Vec::new()], b"the empty key");
    let golden = read(MAP_FIXTURE);
    let map = check_contents(&golden, Murmur3, &model);
    let report = map.check();
    // Both kinds of value storage are in the image.
    assert!(report.value_entries > 50, "{report:?}");
    assert!(report.value_entries < model.len() as u64, "{report:?}");
    // And the image is a working map: write, compact, reopen.
    let mut model = model;
    map.put(b"new", b"value").unwrap();
    assert!(map.delete(&key(0)).unwrap());
    map.compact().unwrap();
    model.insert(b"new".to_vec(), b"value".to_vec());
    model.remove(&key(0));
    let map = Map::open(map.into_region()).unwrap();
    check_contents(&map.region().to_vec(), Murmur3, &model);
}

#[test]
fn golden_collisions_open_with_their_contents() {
    let (_, model) = write(&collisions_script(), KeyIsHash);
    assert_eq!(model.len(), 12 - 4 + 5 + 20);
    assert_eq!(model[&b"c\x01\0".to_vec()], value(50, 9));
    let golden = read(COLLISIONS_FIXTURE);
    let map = check_contents(&golden, KeyIsHash, &model);
    let stats = map.stats().unwrap();
    // "a", "a\0\0", "a\0\0\0" and the four "c\x01..." keys sit in collision nodes at the
    // bottom; "bb\0\0\0" was left alone, so its node collapsed into a pair higher up.
    assert_eq!(stats.depth_histogram[21], 7, "{:?}", stats.depth_histogram);
    assert!(stats.depth_histogram[1..21].iter().sum::<u64>() >= 5);
}

#[test]
fn a_later_format_version_is_refused_by_name() {
    let mut image = read(MAP_FIXTURE);
    for slot in [0, 512] {
        image[slot + 8..slot + 12].copy_from_slice(&2u32.to_le_bytes());
        reseal_meta(&mut image, slot);
    }
    let opened = Map::open(VecRegion::from_bytes(&image, 1 << 20));
    assert_eq!(opened.err(), Some(Error::UnsupportedVersion { found: 2 }));
    let opened = Buffer::open(VecRegion::from_bytes(&image, 1 << 20));
    assert_eq!(opened.err(), Some(Error::UnsupportedVersion { found: 2 }));
}

#[test]
fn a_map_image_is_not_a_buffer() {
    let image = read(MAP_FIXTURE);
    let opened = Buffer::open(VecRegion::from_bytes(&image, 1 << 20));
    assert_eq!(opened.err(), Some(Error::WrongKind { found: 2 }));
}

/// Regression: a meta slot of a later version was skipped when the other slot was of
/// version 1, so this version opened the commit before the newer writer's and its next
/// commit would have overwritten that slot (docs/FORMAT.md: "a slot of an unknown version
/// is reported as `UnsupportedVersion` rather than ignored").
#[test]
fn a_later_version_in_one_slot_is_refused_too() {
    for slot in [0, 512] {
        let mut image = read(MAP_FIXTURE);
        image[slot + 8..slot + 12].copy_from_slice(&2u32.to_le_bytes());
        reseal_meta(&mut image, slot);
        let opened = Map::open(VecRegion::from_bytes(&image, 1 << 20));
        assert_eq!(opened.err(), Some(Error::UnsupportedVersion { found: 2 }));
    }
}
