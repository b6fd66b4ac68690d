//! The buffer's golden image, `tests/fixtures/v1/buffer.img`: format version 1 as this
//! code writes it. Every later version must open it with exactly these contents
//! (`golden_image_opens_with_its_contents`), and as long as the format is version 1 the
//! current code must write it byte for byte (`current_code_writes_the_golden_image`).
//!
//! Regenerate it only for a deliberate format change (and a new `vN` directory):
//! `HAMTDB_BLESS=1 cargo test -p hamtdb-tests --test buffer_golden`.

use hamtdb_core::{
    Buffer, BufferOptions, CompactionPolicy, Durability, EntryId, Error, RecordStatus, Region,
    VecRegion,
};

/// Relative to the package root, where `cargo test` runs integration tests.
const FIXTURE: &str = "fixtures/v1/buffer.img";

const SEED: u64 = 0x0123_4567_89AB_CDEF;

fn options() -> BufferOptions {
    BufferOptions {
        extension_factor: 1.5,
        compaction: CompactionPolicy {
            space_percent: 50,
            space_min_bytes: 1 << 20,
            interval_secs: 3600,
        },
        seed: SEED,
    }
}

fn id(n: u64) -> EntryId {
    EntryId::from_u64(n)
}

/// 100 bytes of a fixed pattern.
fn pattern() -> Vec<u8> {
    (0..100u8).map(|i| i.wrapping_mul(7) ^ 0x5A).collect()
}

/// The script that writes the golden image: records (one empty), an update that moves
/// one, removes, a compaction, an eventual commit and a sync, and a record removed after
/// the compaction (so the image holds a removed record's bytes and stale free space).
fn write_golden() -> Vec<u8> {
    let mut b = Buffer::create(VecRegion::with_capacity(1 << 20), options()).unwrap();
    assert_eq!(b.add(b"hello").unwrap(), id(1));
    assert_eq!(b.add(b"").unwrap(), id(2));
    assert_eq!(b.add(b"to be removed").unwrap(), id(3));
    assert_eq!(b.add(&pattern()).unwrap(), id(4));
    b.commit().unwrap();
    b.update(id(1), b"hello, world: longer than its room")
        .unwrap();
    b.remove(id(3)).unwrap();
    b.commit().unwrap();
    b.compact().unwrap();
    assert_eq!(b.add(b"after compaction").unwrap(), id(5));
    b.update(id(4), &pattern()[..60]).unwrap();
    b.commit_with(Durability::Eventual).unwrap();
    b.sync().unwrap();
    assert_eq!(b.add(b"removed after compaction").unwrap(), id(6));
    b.commit().unwrap();
    b.remove(id(6)).unwrap();
    b.commit().unwrap();
    b.into_region().to_vec()
}

fn fixture() -> Vec<u8> {
    std::fs::read(FIXTURE).unwrap_or_else(|e| panic!("{FIXTURE}: {e}"))
}

#[test]
fn current_code_writes_the_golden_image() {
    let written = write_golden();
    if std::env::var_os("HAMTDB_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all("fixtures/v1").unwrap();
        std::fs::write(FIXTURE, &written).unwrap();
        eprintln!("wrote {FIXTURE} ({} bytes)", written.len());
    }
    let golden = fixture();
    assert!(golden.len() < 64 << 10, "fixture is {} bytes", golden.len());
    if let Some(at) =
        (0..written.len().max(golden.len())).find(|&i| written.get(i) != golden.get(i))
    {
        panic!(
            "the current code writes a different image: first difference at byte {at} \
             (written {} bytes, golden {} bytes). A format change needs a new version and a \
             new fixture directory, not a re-blessed v1.",
            written.len(),
            golden.len()
        );
    }
}

#[test]
fn golden_image_opens_with_its_contents() {
    let golden = fixture();
    // The region header, as docs/FORMAT.md pins it: magic, version 1, kind 1 (buffer) in
    // the slot with the higher txid.
    let txid = |slot: usize| u64::from_le_bytes(golden[slot + 16..slot + 24].try_into().unwrap());
    let slot = if txid(512) > txid(0) { 512 } else { 0 };
    assert_eq!(&golden[slot..slot + 8], b"hamtdbMS");
    assert_eq!(golden[slot + 8..slot + 12], 1u32.to_le_bytes());
    assert_eq!(golden[slot + 12..slot + 16], 1u32.to_le_bytes());
    assert_eq!(golden[slot + 96..slot + 104], SEED.to_le_bytes());

    let mut b = Buffer::open(VecRegion::from_bytes(&golden, 1 << 20)).unwrap();
    assert_eq!(b.len(), 4);
    assert_eq!(b.ids().unwrap(), [id(1), id(2), id(4), id(5)]);
    assert_eq!(b.get(id(1)).unwrap(), b"hello, world: longer than its room");
    assert_eq!(b.get(id(2)).unwrap(), b"");
    assert_eq!(b.get(id(4)).unwrap(), &pattern()[..60]);
    assert_eq!(b.get(id(5)).unwrap(), b"after compaction");
    // Record 3 was reclaimed by the compaction, record 6 was removed after it.
    assert_eq!(b.get(id(3)), Err(Error::Removed { id: 3.into() }));
    assert_eq!(b.header(id(3)), Err(Error::Removed { id: 3.into() }));
    assert_eq!(b.get(id(6)), Err(Error::Removed { id: 6.into() }));
    let removed = b.header(id(6)).unwrap();
    assert_eq!((removed.status, removed.len), (RecordStatus::Removed, 24));
    assert_eq!(b.get(id(7)), Err(Error::NotFound { id: 7.into() }));
    // Moved by its update: room for 60 × 1.5 bytes, the entry rounded up to 8.
    let header = b.header(id(4)).unwrap();
    assert_eq!(
        (header.status, header.len, header.capacity),
        (RecordStatus::Live, 60, 96)
    );
    let stats = b.stats().unwrap();
    assert_eq!((stats.live_count, stats.removed_count), (4, 1));
    assert_eq!(stats.live_bytes, 34 + 60 + 16);
    assert_eq!(stats.used_end, b.region().len());
    // The options are in the image: the time policy compacts an hour after the last
    // compaction (at 0 on the caller's clock).
    assert!(!b.tick(3599).unwrap());
    assert!(b.tick(3600).unwrap());
    assert_eq!(b.stats().unwrap().removed_count, 0);
    // And the image is a working buffer.
    let added = b.add(b"new").unwrap();
    assert_eq!(added, id(7));
    b.commit().unwrap();
    let b = Buffer::open(b.into_region()).unwrap();
    assert_eq!(b.ids().unwrap(), [id(1), id(2), id(4), id(5), id(7)]);
    assert_eq!(b.get(id(7)).unwrap(), b"new");
}
