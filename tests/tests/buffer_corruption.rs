//! Damaged images: thousands of variants of one committed buffer image — every byte
//! with a bit flipped, bytes inverted, the image truncated at many lengths, ranges
//! overwritten with garbage, and structure-aware damage (meta fields and entry headers
//! changed and their checksums recomputed, so that only the sanity checks stand in the
//! way). For each, `open`, then `ids`, `get`/`header`/`reader` of every id, `stats` and
//! `compact` must return `Ok` or a typed error: never panic, never run away (every
//! region call counts against a budget), never ask for an absurd allocation. And a
//! damaged image never makes `get` return bytes that were not committed for that id —
//! not before compaction, and not after it (compaction must not launder a damaged
//! record into a fresh checksum).

use std::collections::BTreeMap;

use hamtdb_core::{Buffer, BufferOptions, Durability, EntryId, Error, VecRegion};
use hamtdb_tests::Counter;
use hamtdb_tests::buffer_model::payload;
use hamtdb_tests::damage::{
    AllocationWatch, BoundedRegion, Damage, Outcomes, bounded, byte_damage, exercise_all,
    header_damage, le32, meta_values, valid_entries,
};

#[global_allocator]
static WATCH: AllocationWatch = AllocationWatch;

// ---- The committed image --------------------------------------------------------------

const SEED: u64 = 0x0bad_c0de_5eed;

/// A committed image and what was committed: every record's bytes at the last two
/// commits (a damaged newest meta slot legitimately falls back to the one before).
struct Base {
    image: Vec<u8>,
    latest: BTreeMap<u64, Vec<u8>>,
    previous: BTreeMap<u64, Vec<u8>>,
    next_id: u64,
    /// Where each live record's payload lies: (start, end, id).
    payloads: Vec<(usize, usize, u64)>,
}

impl Base {
    /// The live record whose payload holds the byte at `offset`, if any.
    fn payload_owner(&self, offset: usize) -> Option<u64> {
        self.payloads
            .iter()
            .find(|&&(start, end, _)| (start..end).contains(&offset))
            .map(|&(_, _, id)| id)
    }

    /// Whether `data` was committed for `id` in one of the two states.
    fn committed(&self, id: u64, data: &[u8]) -> bool {
        self.latest.get(&id).is_some_and(|d| d == data)
            || self.previous.get(&id).is_some_and(|d| d == data)
    }
}

/// 80 records (two id-tree levels), moved by growing updates, some removed, a
/// compaction, eventual and durable commits: stale copies, removed records and free
/// space all appear in the image.
fn base_image() -> Base {
    let options = BufferOptions {
        extension_factor: 1.25,
        seed: SEED,
        ..BufferOptions::default()
    };
    let mut b = Buffer::create(VecRegion::with_capacity(1 << 20), options).unwrap();
    let mut model = BTreeMap::new();
    let id = |n: u64| EntryId::from_u64(n);
    for i in 0..80u64 {
        let data = payload((i * 7 % 61) as usize, i as u8);
        let got = b.add(&data).unwrap();
        model.insert(got.get(), data);
    }
    b.commit().unwrap();
    for n in (1..=80).step_by(5) {
        let data = payload(model[&n].len() + 30, 0x40 + n as u8);
        b.update(id(n), &data).unwrap();
        model.insert(n, data);
    }
    for n in (3..=80).step_by(7) {
        b.remove(id(n)).unwrap();
        model.remove(&n);
    }
    b.commit().unwrap();
    b.compact().unwrap();
    for i in 0..5u8 {
        let got = b.add(&payload(20, 0x90 + i)).unwrap();
        model.insert(got.get(), payload(20, 0x90 + i));
    }
    b.commit_with(Durability::Eventual).unwrap();
    let data = payload(50, 0xA0);
    b.update(id(2), &data).unwrap();
    model.insert(2, data);
    b.remove(id(4)).unwrap();
    model.remove(&4);
    b.commit().unwrap();
    let previous = model.clone();
    let data = payload(9, 0xB0);
    b.update(id(6), &data).unwrap();
    model.insert(6, data);
    b.remove(id(9)).unwrap();
    model.remove(&9);
    let got = b.add(b"last").unwrap();
    model.insert(got.get(), b"last".to_vec());
    b.commit().unwrap();
    let next_id = got.get() + 1;
    let image = b.into_region().to_vec();
    let payloads = valid_entries(&image, SEED, |kind| kind == 1)
        .into_iter()
        .filter_map(|(off, _)| {
            let id = u64::from_le_bytes(image[off + 24..off + 32].try_into().unwrap());
            let len = le32(&image[off + 12..off + 16]) as usize;
            let data = &image[off + 32..off + 32 + len];
            (model.get(&id).is_some_and(|d| d == data) && len > 0).then_some((
                off + 32,
                off + 32 + len,
                id,
            ))
        })
        .collect::<Vec<_>>();
    assert_eq!(
        payloads.len(),
        model.values().filter(|d| !d.is_empty()).count(),
        "every live record found once"
    );
    Base {
        image,
        latest: model,
        previous,
        next_id,
        payloads,
    }
}

// ---- Damage ---------------------------------------------------------------------------

/// The damaged variants: a deterministic selection that keeps a debug-build run within
/// seconds.
fn variants(base: &Base) -> Vec<Damage> {
    let image = &base.image;
    // One bit of every byte of both meta sectors, and of a third of the data area's
    // bytes (each bit position in turn); every 11th data byte inverted; every 64th
    // length, and some odd ones; 500 garbage ranges.
    let mut out = byte_damage(image, 1, 500, 0xD00D);
    // Structure-aware: both meta slots, every field byte, and extreme field values.
    for slot in [0, 512] {
        for byte in 8..252 {
            for mask in [0x01, 0xFF] {
                out.push(Damage::MetaField { slot, byte, mask });
            }
        }
        out.extend(meta_values(slot));
    }
    // Every header byte of every third valid entry, checksum recomputed.
    for (entry, _) in valid_entries(image, SEED, |kind| matches!(kind, 1 | 2))
        .into_iter()
        .step_by(3)
    {
        out.extend(header_damage(entry));
    }
    out
}

// ---- Exercising one image -------------------------------------------------------------

/// What the suite counts besides images opened and rejected.
const COUNTERS: &[Counter] = &[
    Counter::new("compacted", "compacted"),
    Counter::new("corrupted gets", "gets found a damaged record"),
    Counter::new("payload flips", "flips in live payloads caught"),
];

/// Opens the damaged image and runs every read on it, then, if `compact`, a compaction
/// and a reopen.
fn exercise(base: &Base, damage: Damage, compact: bool, out: &mut Outcomes) -> Result<(), String> {
    let image = damage.apply(&base.image, SEED);
    // A flip in a live record's payload: open must not fail, and only that record may
    // be unreadable.
    let victim = match damage {
        Damage::Flip { offset, .. } => base.payload_owner(offset),
        _ => None,
    };
    let mut buffer = match Buffer::open(BoundedRegion::new(&image)) {
        Ok(b) => b,
        Err(e) => {
            bounded("open", &Err::<(), _>(e))?;
            if let Some(id) = victim {
                return Err(format!(
                    "damage in record {id}'s payload made open fail: {e:?}"
                ));
            }
            out.reject(&e);
            return Ok(());
        }
    };
    out.opened += 1;
    let honest = damage.checksums_honest();
    let last_id = base.next_id + 1;
    bounded("ids", &buffer.ids())?;
    bounded("stats", &buffer.stats())?;
    let _ = buffer.len();
    let mut readable = BTreeMap::new();
    for n in 0..=last_id {
        let id = EntryId::from_u64(n);
        let got = buffer.get(id);
        bounded("get", &got)?;
        match got {
            Ok(data) => {
                if honest && !base.committed(n, data) {
                    return Err(format!(
                        "get({n}) returned {} bytes never committed for it",
                        data.len()
                    ));
                }
                readable.insert(n, data.to_vec());
            }
            Err(Error::Corrupted { .. }) => out.counts.add("corrupted gets", 1),
            Err(_) => {}
        }
        bounded("header", &buffer.header(id))?;
        if let Ok(reader) = buffer.reader(id) {
            let mut buf = [0u8; 7];
            let _ = reader.read_at(3, &mut buf);
        }
    }
    if !compact {
        return Ok(());
    }
    if let Some(victim) = victim {
        out.counts.add("payload flips", 1);
        // The newest commit with the damaged record reported, or (damage in what the
        // newest commit wrote makes it look torn) the one before, whole.
        let latest = !readable.contains_key(&victim)
            && base
                .latest
                .iter()
                .all(|(n, d)| *n == victim || readable.get(n) == Some(d));
        let previous = base
            .previous
            .iter()
            .all(|(n, d)| readable.get(n) == Some(d));
        if !latest && !previous {
            return Err(format!(
                "damage in record {victim}'s payload: readable records {:?}",
                readable.keys().collect::<Vec<_>>()
            ));
        }
    }
    if honest {
        // Damage never mixes states: what is readable comes from one commit.
        let from =
            |state: &BTreeMap<u64, Vec<u8>>| readable.iter().all(|(n, d)| state.get(n) == Some(d));
        if !from(&base.latest) && !from(&base.previous) {
            return Err("readable records come from different commits".to_string());
        }
    }
    let compacted = buffer.compact();
    bounded("compact", &compacted)?;
    if compacted.is_err() {
        return Ok(());
    }
    out.counts.add("compacted", 1);
    for n in 0..=last_id {
        let got = buffer.get(EntryId::from_u64(n));
        bounded("get after compact", &got)?;
        if let Ok(data) = got {
            if honest && !base.committed(n, data) {
                return Err(format!(
                    "after compaction get({n}) returned {} bytes never committed for it",
                    data.len()
                ));
            }
            if honest && readable.get(&n).is_none_or(|before| before != data) {
                return Err(format!("compaction changed record {n}"));
            }
        }
    }
    let reopened = Buffer::open(buffer.into_region());
    bounded("reopen after compact", &reopened)?;
    if let Ok(b) = reopened {
        bounded("ids after reopen", &b.ids())?;
    }
    Ok(())
}

#[test]
fn damaged_images_give_typed_errors_never_panics_or_wrong_data() {
    let base = base_image();
    assert!(
        base.image.len() < 32 << 10,
        "base image is {} bytes",
        base.image.len()
    );
    // The pristine image opens to the latest state.
    {
        let b = Buffer::open(VecRegion::from_bytes(&base.image, 1 << 20)).unwrap();
        let ids: Vec<u64> = b.ids().unwrap().iter().map(|id| id.get()).collect();
        assert_eq!(ids, base.latest.keys().copied().collect::<Vec<_>>());
        for (&n, data) in &base.latest {
            assert_eq!(b.get(EntryId::from_u64(n)).unwrap(), &data[..]);
        }
    }
    let variants = variants(&base);
    // Compaction on every other image: it is the slow part.
    let out = exercise_all(&variants, COUNTERS, 2, |damage, compact, out| {
        exercise(&base, damage, compact, out)
    });
    eprintln!("buffer corruption: {}", out.summary(base.image.len()));
    out.assert_sound();
    assert!(out.images >= 5_000);
    assert!(
        out.opened > 1000,
        "most single-bit flips in free space or payloads open"
    );
    assert!(
        out.counts.get("corrupted gets") > 100,
        "payload damage is caught by checksums"
    );
    let payload_flips = out.counts.get("payload flips");
    assert!(payload_flips > 500, "{payload_flips} payload flips");
}

// ---- Damage that must not be laundered ------------------------------------------------

fn find(image: &[u8], needle: &[u8]) -> usize {
    image
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("present")
}

fn options() -> BufferOptions {
    BufferOptions {
        seed: SEED,
        ..BufferOptions::default()
    }
}

/// A damaged record that compaction moves must not come out of it with a fresh, valid
/// checksum: compaction refuses, or the record stays damaged (and reported).
#[test]
fn compaction_never_launders_a_damaged_record() {
    let mut b = Buffer::create(VecRegion::with_capacity(1 << 20), options()).unwrap();
    let big = b.add(&payload(800, 1)).unwrap();
    let small = b.add(&payload(8, 2)).unwrap();
    let kept = payload(100, 3);
    let id = b.add(&kept).unwrap();
    b.commit().unwrap();
    b.remove(big).unwrap();
    b.commit().unwrap();
    // An empty commit: open then verifies only the root (the entries of the last commit
    // since the last durable one, and their children).
    b.commit().unwrap();
    let mut image = b.into_region().to_vec();
    let at = find(&image, &kept) + 50;
    image[at] ^= 0x04;

    let mut b = Buffer::open(VecRegion::from_bytes(&image, 1 << 20)).unwrap();
    assert!(matches!(b.get(id), Err(Error::Corrupted { .. })));
    let compacted = b.compact();
    assert!(
        matches!(compacted, Ok(_) | Err(Error::Corrupted { .. })),
        "{compacted:?}"
    );
    b.abort();
    let reopened = Buffer::open(VecRegion::from_bytes(&b.region().to_vec(), 1 << 20)).unwrap();
    for b in [&b, &reopened] {
        assert_eq!(b.get(small).unwrap(), &payload(8, 2)[..]);
        match b.get(id) {
            Err(Error::Corrupted { .. }) => {}
            Ok(data) => assert_eq!(data, &kept[..], "damaged bytes handed out as good"),
            other => panic!("{other:?}"),
        }
    }
}

/// A damaged id node that points a record at an older copy of itself (left in free space
/// by an update) must not make `get` return the old bytes. (Open verifies only what the
/// commits since the last durable one wrote, and their children; the rest is verified
/// when read.)
#[test]
fn a_damaged_id_node_never_serves_an_old_version() {
    let mut b = Buffer::create(VecRegion::with_capacity(1 << 20), options()).unwrap();
    // Two levels; the last commit is empty, so open verifies the root and nothing below.
    for n in 0..70u8 {
        b.add(&payload(16, n)).unwrap();
    }
    b.commit().unwrap();
    let id = EntryId::from_u64(5);
    let old = b.get(id).unwrap().to_vec();
    let new = payload(24, 0x55);
    b.update(id, &new).unwrap();
    b.commit().unwrap();
    b.update(EntryId::from_u64(68), &payload(1000, 0x66))
        .unwrap();
    b.commit().unwrap();
    b.commit().unwrap();
    let mut image = b.into_region().to_vec();
    let old_at = (find(&image, &old) - 32) as u64;
    let new_at = (find(&image, &new) - 32) as u64;
    // The leaf slot of record 5: its tagged offset (live: tag 1), little-endian.
    let slot = (new_at | 1).to_le_bytes();
    let slot_at = find(&image, &slot);
    image[slot_at..slot_at + 8].copy_from_slice(&(old_at | 1).to_le_bytes());

    match Buffer::open(VecRegion::from_bytes(&image, 1 << 20)) {
        Err(e) => assert!(matches!(e, Error::Corrupted { .. }), "{e:?}"),
        Ok(b) => match b.get(id) {
            Err(Error::Corrupted { .. }) => {}
            Ok(data) => assert_eq!(data, &new[..], "an old version served as current"),
            other => panic!("{other:?}"),
        },
    }
}
