//! Arbitrary bytes as a region: open them as a `Map` and as a `Buffer`, and run every read
//! (`get`, `contains_key`, `get_many`, `iter`, `check`, `stats`; `ids`, `get`, `stats`)
//! and, when the input asks, a write, a commit and a compaction. Each must return `Ok`
//! or a typed error: never panic, never hang, never ask for an absurd allocation (which
//! libFuzzer's `-malloc_limit_mb` reports).
//!
//! The first input byte holds flags: bit 0 reseals both meta slots' checksums and bit 1
//! every entry header's checksum (as docs/FORMAT.md defines them), so the fuzzer gets
//! past the checksums to the structure behind them; bit 2 asks for the writes. The rest
//! is the image. Seed the corpus with the golden images under tests/fixtures/v1/.
#![no_main]

use hamtdb_core::{Buffer, EntryId, Map, VecRegion};
use hamtdb_tests::damage::{reseal_entries, reseal_metas};
use libfuzzer_sys::fuzz_target;

const KEYS: [&[u8]; 6] = [b"", b"a", b"key-1", b"key-7", b"\xff\xff", b"hello"];

fn as_map(image: &[u8], write: bool) {
    let Ok(map) = Map::open(VecRegion::from_bytes(image, image.len() + (64 << 10))) else {
        return;
    };
    let _ = map.len();
    for key in KEYS {
        let _ = map.get(key).map(|v| v.map(|v| v.len()));
        let _ = map.contains_key(key);
    }
    let _ = map.begin_read().get_many(&KEYS);
    let pairs = map.iter();
    let report = map.check();
    // A damaged image may hold pairs where their hash does not lead (so `iter` lists
    // what `get` cannot find); `check` reports that. An image it passes is consistent.
    if report.is_ok() {
        let pairs = pairs.expect("check() is clean, so iter works");
        assert_eq!(pairs.len() as u64, map.len(), "iter and len disagree");
        for (key, value) in pairs.iter().take(256) {
            let got = map.get(key).expect("check() is clean, so get works");
            assert_eq!(got.as_deref(), Some(&value[..]), "iter and get disagree");
        }
    }
    let _ = map.stats();
    let _ = map.space_usage();
    if write && report.is_ok() {
        let _ = map.put(b"fuzz", b"value");
        let _ = map.delete(b"a");
        let _ = map.compact();
        let _ = map.check();
        let region = map.into_region();
        let _ = Map::open(region).map(|m| m.iter().map(|p| p.len()));
    }
}

fn as_buffer(image: &[u8]) {
    let Ok(buffer) = Buffer::open(VecRegion::from_bytes(image, image.len())) else {
        return;
    };
    let _ = buffer.len();
    if let Ok(ids) = buffer.ids() {
        for id in ids.into_iter().take(256) {
            let _ = buffer.get(id).map(<[u8]>::len);
        }
    }
    for n in 0..4 {
        let _ = buffer.get(EntryId::from_u64(n)).map(<[u8]>::len);
    }
    let _ = buffer.stats();
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, image)) = data.split_first() else {
        return;
    };
    let mut image = image.to_vec();
    if flags & 1 != 0 {
        reseal_metas(&mut image);
    }
    if flags & 2 != 0 {
        reseal_entries(&mut image);
    }
    as_map(&image, flags & 4 != 0);
    as_buffer(&image);
});
