//! Damaged map images: thousands of variants of two committed map images (one with the
//! default hasher, one with collision nodes) — a bit of every meta byte and of a third of
//! the data bytes flipped, bytes inverted, truncations at many lengths, ranges
//! overwritten with garbage, and checksum-honest damage (meta fields and entry headers
//! changed and their checksums recomputed, so only the sanity checks stand in the way).
//! For each: `open`, `get` and `contains_key` of every key, `get_many`, `iter`, `check`,
//! `stats`, and on every sixth image a write, a compaction and a reopen. Each returns
//! `Ok` or a typed error: never a panic, never a runaway (every region call counts
//! against a budget), never an absurd allocation.
//!
//! And what is served is right when `check()` says so: for damage that left checksums
//! honest, a map whose `check()` is clean holds exactly the latest commit or the one
//! before (damage to the newest commit's entries makes open fall back), and `iter`,
//! `get` and `get_many` agree with it. (`get` reads without verifying checksums — it is
//! zero-copy and allocation-free — so on an image that `check()` finds damaged it may
//! serve damaged bytes; the test counts those cases.)

use core::panic::AssertUnwindSafe;
use std::panic;

use hamtdb_core::{Error, Map, MapOptions, VecRegion};
use hamtdb_tests::Counter;
use hamtdb_tests::damage::{
    AllocationWatch, BoundedRegion, CALL_BUDGET, Damage, Outcomes, bounded, byte_damage,
    exercise_all, header_damage, meta_values, reseal_entries, reseal_entry, reseal_meta,
    reseal_metas, valid_entries,
};
use hamtdb_tests::map_model::{Model, TestHasher, key, value};

#[global_allocator]
static WATCH: AllocationWatch = AllocationWatch;

// ---- The committed images -------------------------------------------------------------

const SEED: u64 = 0x0bad_c0de_5eed;

/// A committed image, the hasher it was written with, and its last two commits (a
/// damaged newest commit legitimately falls back to the one before).
struct Base {
    name: &'static str,
    hasher: TestHasher,
    image: Vec<u8>,
    latest: Model,
    previous: Model,
}

impl Base {
    /// Every key either commit holds, and some absent ones.
    fn keys(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self.latest.keys().cloned().collect();
        keys.extend(
            self.previous
                .keys()
                .filter(|k| !self.latest.contains_key(*k))
                .cloned(),
        );
        keys.extend([b"absent".to_vec(), Vec::new(), key(9999)]);
        keys
    }

    /// The commit `pairs` (sorted) is exactly, if any.
    fn which(&self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Option<&Model> {
        [&self.latest, &self.previous].into_iter().find(|m| {
            m.len() == pairs.len()
                && m.iter()
                    .zip(pairs)
                    .all(|((k, v), (pk, pv))| k == pk && v == pv)
        })
    }
}

/// Value lengths on both sides of the inline limit (16).
const LENS: [usize; 6] = [0, 5, 16, 17, 40, 200];

/// Runs a workload on a fresh map and returns its image and last two commits: puts,
/// overwrites between inline and value entries, deletes, a compaction, an eventual
/// commit and a sync, then two more commits (stale copies and free space in the image).
fn base_image(name: &'static str, hasher: TestHasher, keys: &[Vec<u8>]) -> Base {
    let options = MapOptions {
        inline_max: 16,
        seed: SEED,
    };
    let map = Map::create_with_hasher(VecRegion::with_capacity(1 << 20), options, hasher).unwrap();
    let mut model = Model::new();
    let put = |t: &mut hamtdb_core::WriteTxn<'_, VecRegion, TestHasher>,
               model: &mut Model,
               k: &[u8],
               v: Vec<u8>| {
        t.put(k, &v).unwrap();
        model.insert(k.to_vec(), v);
    };
    let mut t = map.begin_write();
    for (i, k) in keys.iter().enumerate() {
        put(&mut t, &mut model, k, value(LENS[i % 6], i as u8));
    }
    t.commit().unwrap();
    let mut t = map.begin_write();
    for (i, k) in keys.iter().enumerate().step_by(3) {
        put(
            &mut t,
            &mut model,
            k,
            value(LENS[(i + 2) % 6], 0x40 ^ i as u8),
        );
    }
    for k in keys.iter().skip(1).step_by(5) {
        t.delete(k).unwrap();
        model.remove(k);
    }
    t.commit().unwrap();
    map.compact().unwrap();
    let mut t = map.begin_write();
    for (i, k) in keys.iter().enumerate().skip(2).step_by(7) {
        put(&mut t, &mut model, k, value(LENS[(i + 4) % 6], 0x90));
    }
    t.commit_with(hamtdb_core::Durability::Eventual).unwrap();
    map.sync().unwrap();
    let mut t = map.begin_write();
    for k in keys.iter().skip(3).step_by(11) {
        if model.remove(k).is_some() {
            t.delete(k).unwrap();
        }
    }
    t.commit().unwrap();
    let previous = model.clone();
    let mut t = map.begin_write();
    put(&mut t, &mut model, b"last", value(30, 0xB0));
    put(&mut t, &mut model, &keys[0], value(4, 0xB1));
    t.delete(&keys[4]).unwrap();
    model.remove(&keys[4]);
    t.commit().unwrap();
    assert!(map.check().is_ok());
    Base {
        name,
        hasher,
        image: map.into_region().to_vec(),
        latest: model,
        previous,
    }
}

/// 100 `key-N` keys under MurmurHash3; and 32 keys under `KeyBytes` of which groups of
/// four differ only in trailing zeros (collision nodes at depth 21).
fn bases() -> Vec<Base> {
    let murmur: Vec<Vec<u8>> = (0..100).map(key).collect();
    let colliding: Vec<Vec<u8>> = (0..8u8)
        .flat_map(|g| (0..4).map(move |z| [&[b'a' + g][..], &vec![0; z]].concat()))
        .collect();
    vec![
        base_image("murmur", TestHasher::Murmur, &murmur),
        base_image("collisions", TestHasher::KeyBytes, &colliding),
    ]
}

// ---- Damage ---------------------------------------------------------------------------

/// The damaged variants of `image`: a deterministic selection; `every` thins the
/// byte-wise ones for the second base.
fn variants(image: &[u8], every: usize) -> Vec<Damage> {
    let mut out = byte_damage(image, every, 200, 0xD00D ^ image.len() as u64);
    for slot in [0, 512] {
        for byte in 8..252 {
            out.push(Damage::MetaField {
                slot,
                byte,
                mask: [0x01, 0xFF][byte % 2],
            });
        }
        out.extend(meta_values(slot));
    }
    // Header bytes of every other valid entry, and payload bytes (bitmaps, child offsets,
    // pair offsets, key and value lengths), checksum recomputed.
    for (i, (entry, len)) in valid_entries(image, SEED, |kind| matches!(kind, 0x10..=0x12))
        .into_iter()
        .enumerate()
    {
        if i % every != 0 {
            continue;
        }
        out.extend(header_damage(entry));
        for byte in (32..32 + len.min(96)).step_by(2 + every) {
            let mask = [0x01, 0x80, 0xFF][byte % 3];
            out.push(Damage::EntryField { entry, byte, mask });
        }
    }
    out
}

// ---- Exercising one image -------------------------------------------------------------

/// What the suite counts besides images opened and rejected.
const COUNTERS: &[Counter] = &[
    // Opened, honest damage, `check()` clean: the data was verified to be one commit.
    Counter::new(
        "clean and right",
        "clean by check() and verified equal to a commit",
    ),
    // Opened and `check()` reported problems.
    Counter::new("check found", "found damaged by check()"),
    // Of those (honest damage), `get` served bytes never committed for the key.
    Counter::new(
        "unverified gets",
        "of them served unverified bytes through get",
    ),
    // Images on which a write, a compaction and a reopen were tried, and went through.
    Counter::new("written", "took a write"),
    Counter::new("compacted", "compacted"),
];

type DamagedMap = Map<BoundedRegion, TestHasher>;

/// Opens the damaged image, runs every read on it, checks what it served, then, if
/// `write`, a put, a delete, a compaction and a reopen.
fn exercise(base: &Base, damage: Damage, write: bool, out: &mut Outcomes) -> Result<(), String> {
    let image = damage.apply(&base.image, SEED);
    let map: DamagedMap = match Map::open_with_hasher(BoundedRegion::new(&image), base.hasher) {
        Ok(m) => m,
        Err(e) => {
            bounded("open", &Err::<(), _>(e))?;
            out.reject(&e);
            return Ok(());
        }
    };
    out.opened += 1;
    let keys = base.keys();
    let _ = map.len();
    let mut got = Vec::new();
    for k in &keys {
        let r = map.get(k);
        bounded("get", &r)?;
        got.push(r.ok().map(|v| v.map(|v| v.to_vec())));
        bounded("contains_key", &map.contains_key(k))?;
    }
    {
        let snapshot = map.begin_read();
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let many = snapshot.get_many(&refs);
        bounded("get_many", &many)?;
        if let Ok(many) = &many
            && many.len() != keys.len()
        {
            return Err(format!("get_many gave {} answers", many.len()));
        }
    }
    let pairs = map.iter();
    bounded("iter", &pairs)?;
    let report = map.check();
    if report.problems.iter().any(|p| p.what.is_empty()) {
        return Err("a problem without a description".into());
    }
    bounded("stats", &map.stats())?;
    let honest = damage.checksums_honest();
    if report.is_ok() {
        let Ok(mut pairs) = pairs else {
            return Err(format!("check() is clean but iter failed: {pairs:?}"));
        };
        pairs.sort();
        match base.which(&pairs) {
            Some(state) => {
                for (k, g) in keys.iter().zip(&got) {
                    if g.as_ref() != Some(&state.get(k).cloned()) {
                        return Err(format!("check() is clean but get({k:?}) is {g:?}"));
                    }
                }
                if map.len() != state.len() as u64 {
                    return Err(format!("len() is {}", map.len()));
                }
                out.counts.add("clean and right", 1);
            }
            None if honest => {
                return Err(format!(
                    "check() is clean but iter() holds {} pairs of neither commit",
                    pairs.len()
                ));
            }
            None => {}
        }
    } else {
        out.counts.add("check found", 1);
        if honest {
            let wrong = keys.iter().zip(&got).any(|(k, g)| {
                matches!(g, Some(Some(v)) if base.latest.get(k) != Some(v) && base.previous.get(k) != Some(v))
            });
            out.counts.add("unverified gets", u64::from(wrong));
        }
    }
    if !write {
        return Ok(());
    }
    let put = map.put(b"after damage", b"v");
    bounded("put", &put)?;
    let deleted = map.delete(&keys[0]);
    bounded("delete", &deleted)?;
    if put.is_ok() && deleted.is_ok() {
        out.counts.add("written", 1);
    }
    let compacted = map.compact();
    bounded("compact", &compacted)?;
    if compacted.is_ok() {
        out.counts.add("compacted", 1);
        // Compaction copies only entries whose checksums verify: a map that was clean
        // stays clean.
        if report.is_ok() && put.is_ok() && deleted.is_ok() && !map.check().is_ok() {
            return Err("compaction damaged a clean map".into());
        }
    }
    let reopened = Map::open_with_hasher(map.into_region(), base.hasher);
    bounded("reopen", &reopened)?;
    if let Ok(m) = reopened {
        bounded("iter after reopen", &m.iter())?;
    }
    Ok(())
}

#[test]
fn damaged_map_images_give_typed_errors_never_panics_or_unchecked_wrong_data() {
    let mut all = Outcomes::new(COUNTERS);
    for (i, base) in bases().iter().enumerate() {
        assert!(
            base.image.len() < 48 << 10,
            "{} image is {} bytes",
            base.name,
            base.image.len()
        );
        // The pristine image opens to the latest commit.
        let pristine = exercise(
            base,
            Damage::Truncate { len: usize::MAX },
            true,
            &mut Outcomes::new(COUNTERS),
        );
        assert_eq!(pristine, Ok(()));
        let variants = variants(&base.image, [8, 10][i]);
        // Writes and compaction on every sixth image: the slow part.
        let mut out = exercise_all(&variants, COUNTERS, 6, |damage, write, out| {
            exercise(base, damage, write, out)
        });
        eprintln!(
            "map corruption ({}): {}",
            base.name,
            out.summary(base.image.len())
        );
        let rejected = out.rejected.values().sum::<u64>();
        assert!(
            out.opened > out.images / 4,
            "{}: most damage in data opens",
            base.name
        );
        assert!(
            out.counts.get("check found") > 100,
            "{}: check() finds damage",
            base.name
        );
        assert!(
            out.counts.get("clean and right") > 100,
            "{}: harmless damage stays readable",
            base.name
        );
        assert!(rejected > 100, "{}", base.name);
        assert!(out.counts.get("compacted") > 30, "{}", base.name);
        for failure in &mut out.failures {
            *failure = format!("{}: {failure}", base.name);
        }
        all += out;
    }
    eprintln!(
        "map corruption: {} images in all, {} failed",
        all.images,
        all.failures.len()
    );
    all.assert_sound();
    assert!(all.images >= 4_000, "{} images", all.images);
}

/// Regression: a meta slot forged with a valid checksum could make later arithmetic
/// overflow: a txid of `u64::MAX` (the next commit's txid), a key count of `u64::MAX`
/// (a put) or below the trie's keys (a delete). The first two, and a count of 0 under a
/// root, are refused at open (the other slot is used); a count too low makes the delete
/// that would take it below 0 a `Corrupted` error.
#[test]
fn forged_meta_counters_give_errors_not_overflows() {
    let base = &bases()[0];
    let slot = {
        let txid = |s: usize| u64::from_le_bytes(base.image[s + 16..s + 24].try_into().unwrap());
        if txid(512) > txid(0) { 512 } else { 0 }
    };
    let forged = |byte: usize, value: u64| {
        let image = Damage::MetaValue { slot, byte, value }.apply(&base.image, SEED);
        Map::open_with_hasher(VecRegion::from_bytes(&image, 1 << 20), base.hasher).unwrap()
    };
    for byte in [16, 40] {
        let map = forged(byte, u64::MAX);
        assert_eq!(
            map.len(),
            base.previous.len() as u64,
            "fell back (field {byte})"
        );
        assert!(map.put(b"k", b"v").unwrap());
    }
    // A count of 0 under a root is refused too (an empty map's root is 0).
    assert_eq!(forged(40, 0).len(), base.previous.len() as u64, "fell back");
    // A count of 1 under more keys opens; the second delete would take it below 0.
    let map = forged(40, 1);
    assert_eq!(map.len(), 1);
    let mut present = base.latest.keys();
    assert!(map.delete(present.next().unwrap()).unwrap());
    assert!(matches!(
        map.delete(present.next().unwrap()),
        Err(Error::Corrupted { .. })
    ));
    assert!(!map.check().is_ok());
}

/// Regression: a branch whose child offset is not an entry's (odd, so it read as one of
/// the transaction's own node ids; or zero, "no node") under a valid checksum made a
/// write transaction index its arena out of bounds. Every such forgery, in every branch
/// with children that the last commit did not write (its entries are covered by the
/// meta's digest), must give errors on writes and compaction, never a panic.
#[test]
fn forged_child_offsets_give_errors_not_panics() {
    let options = MapOptions {
        inline_max: 16,
        seed: SEED,
    };
    let map = Map::create(VecRegion::with_capacity(1 << 20), options).unwrap();
    let keys: Vec<Vec<u8>> = (0..3000).map(key).collect();
    map.bulk_load(keys.iter().map(|k| (k.as_slice(), b"v".as_slice())))
        .unwrap();
    map.put(b"last", b"commit").unwrap();
    let image = map.into_region().to_vec();
    let branches = valid_entries(&image, SEED, |kind| kind == 0x10);
    let mut forged = 0;
    let mut refused = 0;
    for (at, len) in branches {
        let nodemap = u64::from_le_bytes(image[at + 40..at + 48].try_into().unwrap());
        let children = (nodemap.count_ones() as usize).min((len - 16) / 8);
        for rank in 0..children {
            for bad in [|c: u64| c | 1, |c: u64| c + 4, |_: u64| 0] {
                let slot = at + 32 + 16 + 8 * rank;
                let child = u64::from_le_bytes(image[slot..slot + 8].try_into().unwrap());
                let mut image = image.clone();
                image[slot..slot + 8].copy_from_slice(&bad(child).to_le_bytes());
                reseal_entry(&mut image, SEED, at);
                forged += 1;
                let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                    let Ok(map) = Map::open(VecRegion::from_bytes(&image, 1 << 20)) else {
                        return true;
                    };
                    let mut failed = false;
                    for k in keys.iter().step_by(7) {
                        failed |= map.put(k, b"forged").is_err();
                        failed |= map.delete(k).is_err();
                    }
                    failed | map.compact().is_err()
                }));
                match outcome {
                    Ok(failed) => refused += usize::from(failed),
                    Err(_) => panic!("branch at {at}, child {rank}: a forged offset panicked"),
                }
            }
        }
    }
    println!("forged child offsets: {forged}, refused with an error: {refused}");
    assert!(refused > 0, "some forged branch is reachable");
}

/// An empty map's root is 0 (docs/FORMAT.md): a meta slot that counts no key but names a
/// root, or counts keys without one, is forged, and is refused at open with its offset.
/// Before, such a slot (checksum resealed) opened, and every first load into it failed
/// with `InvalidOption` (the trie its count called empty was not).
#[test]
fn a_meta_slot_whose_count_and_root_disagree_is_refused() {
    const COUNT: usize = 40;
    const ROOT: usize = 24;
    let options = MapOptions {
        inline_max: 16,
        seed: SEED,
    };
    let map = Map::create(VecRegion::with_capacity(1 << 20), options).unwrap();
    for i in 0..50 {
        map.put(&key(i), b"v").unwrap();
    }
    let loaded = map.into_region().to_vec();
    let map = Map::open(VecRegion::from_bytes(&loaded, 1 << 20)).unwrap();
    for i in 0..50 {
        assert!(map.delete(&key(i)).unwrap());
    }
    // Deleting every key brings the root back to 0: the rule holds for real images, and
    // a map emptied so takes a first load.
    assert_eq!(map.begin_read().len(), 0);
    let emptied = map.into_region().to_vec();
    let map = Map::open(VecRegion::from_bytes(&emptied, 1 << 20)).unwrap();
    let mut txn = map.begin_write();
    assert_eq!(txn.fill([(b"k".as_slice(), b"v".as_slice())]).unwrap(), 1);
    txn.commit().unwrap();

    let forge = |image: &[u8], field: usize, value: u64| {
        let mut image = image.to_vec();
        for slot in [0usize, 512] {
            image[slot + field..slot + field + 8].copy_from_slice(&value.to_le_bytes());
            reseal_meta(&mut image, slot);
        }
        image
    };
    // Both slots forged, so neither is a fallback: a count of 0 under a root, and a
    // root of 0 under a count of 50.
    for (field, value) in [(COUNT, 0), (ROOT, 0)] {
        let forged = forge(&loaded, field, value);
        let Err(Error::Corrupted(c)) = Map::open(VecRegion::from_bytes(&forged, 1 << 20)) else {
            panic!("a slot with field {field} forged to {value} opened");
        };
        assert!([0, 512].contains(&c.offset()), "offset {}", c.offset());
        assert_eq!(c.what(), "map meta count and root disagree on emptiness");
    }
}

/// Regression, found by the `open_image` fuzz target: a slot whose `new_count` was forged
/// to about 2^63, over entries that reach one another in a cycle, kept the open walk
/// going for ever (it stops only past `new_count` visits). Such a slot is now refused:
/// `new_count` cannot exceed the entries the used end can hold. The input is the fuzzer's
/// (first byte its flags; 7: reseal the meta slots and every entry header).
#[test]
fn a_forged_new_count_cannot_keep_the_open_walk_going() {
    let input = include_bytes!("../fixtures/regress/open_image-new-count-cycle.bin");
    let mut image = input[1..].to_vec();
    reseal_metas(&mut image);
    reseal_entries(&mut image);
    let region = BoundedRegion::new(&image);
    let opened = Map::open(&region).map(|m| m.len());
    assert!(
        !region.exhausted(),
        "open ran past {CALL_BUDGET} region calls ({opened:?})"
    );
}
