//! Portability of the image: a database written by the std backend (a `Db` on a
//! memory-mapped file) opens and reads identically through a `SliceRegion` over the
//! file's bytes, and an image built in a `SliceRegion` opens and reads identically as a
//! file through `Db`. The format is little-endian and fixed-width throughout, so the
//! same holds across machines; the core's tests also run under Miri on a big-endian
//! target (`.ci/run`).

use std::collections::BTreeMap;

use hamtdb::{Db, Map, MapOptions, SliceRegion};

type Pairs = BTreeMap<Vec<u8>, Vec<u8>>;

/// A mix of inline and out-of-line values, an empty key and an empty value, and
/// overwrites and deletes, so the image holds every node kind and some free space.
fn expected() -> Pairs {
    let mut pairs = Pairs::new();
    for i in 0..600u32 {
        let len = if i.is_multiple_of(9) {
            700
        } else {
            (i % 40) as usize
        };
        pairs.insert(
            i.to_le_bytes().to_vec(),
            (0..len).map(|j| (i as usize ^ j) as u8).collect(),
        );
    }
    pairs.insert(Vec::new(), b"empty key".to_vec());
    pairs.insert(b"empty value".to_vec(), Vec::new());
    pairs
}

/// Writes `expected()` through `put`/`delete` calls: first junk values, then the real
/// ones, then deletes of keys not in `expected()`.
fn fill(mut put: impl FnMut(&[u8], &[u8]), mut delete: impl FnMut(&[u8])) {
    let pairs = expected();
    for key in pairs.keys() {
        put(key, b"junk");
    }
    for i in 1000..1100u32 {
        put(&i.to_le_bytes(), b"to be deleted");
    }
    for (key, value) in &pairs {
        put(key, value);
    }
    for i in 1000..1100u32 {
        delete(&i.to_le_bytes());
    }
}

fn read_all<R: hamtdb::Region>(map: &Map<R>) -> Pairs {
    let report = map.check();
    assert!(report.is_ok(), "{:?}", report.problems);
    let pairs: Pairs = map.iter().unwrap().into_iter().collect();
    // Point reads agree with the traversal.
    for (key, value) in &pairs {
        assert_eq!(map.get(key).unwrap().as_deref(), Some(value.as_slice()));
    }
    assert_eq!(map.get(&1000u32.to_le_bytes()).unwrap().as_deref(), None);
    assert_eq!(map.len(), pairs.len() as u64);
    pairs
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("hamtdb-portability-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("db")
}

#[test]
fn a_file_written_by_db_reads_identically_through_a_slice_region() {
    let path = temp_path("file-to-slice");
    let db = Db::open(&path).unwrap();
    fill(
        |k, v| {
            db.put(k, v).unwrap();
        },
        |k| {
            assert!(db.delete(k).unwrap());
        },
    );
    let through_db: Pairs = db.iter().unwrap().into_iter().collect();
    db.close().unwrap();
    assert_eq!(through_db, expected());

    let mut bytes = std::fs::read(&path).unwrap();
    let map = Map::open(SliceRegion::new(&mut bytes)).unwrap();
    assert_eq!(read_all(&map), expected());
    drop(map);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn an_image_built_in_a_slice_region_reads_identically_through_db() {
    let mut bytes = vec![0u8; 1 << 20];
    let map = Map::create(SliceRegion::new(&mut bytes), MapOptions::default()).unwrap();
    fill(
        |k, v| {
            map.put(k, v).unwrap();
        },
        |k| {
            assert!(map.delete(k).unwrap());
        },
    );
    assert_eq!(read_all(&map), expected());
    drop(map);

    let path = temp_path("slice-to-file");
    std::fs::write(&path, &bytes).unwrap();
    let db = Db::builder().read_only(true).open(&path).unwrap();
    let report = db.check();
    assert!(report.is_ok(), "{:?}", report.problems);
    let through_db: Pairs = db.iter().unwrap().into_iter().collect();
    assert_eq!(through_db, expected());
    for (key, value) in &expected() {
        assert_eq!(db.get_owned(key).unwrap().as_ref(), Some(value));
    }
    db.close().unwrap();
    // Writable too: the std backend takes the image over and goes on from it.
    let db = Db::open(&path).unwrap();
    db.put(b"after", b"move").unwrap();
    assert_eq!(db.len(), expected().len() as u64 + 1);
    db.close().unwrap();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}
