//! The firmware example's work (examples/firmware/src/demo.rs), run on the host: the
//! image itself builds for a Cortex-M without a test harness, so its sequence — create,
//! put, get, delete, commit, reopen from the same bytes, compact — is checked here, on a
//! 64 KiB array like the firmware's.

#[path = "../../examples/firmware/src/demo.rs"]
mod demo;

#[test]
fn the_firmware_sequence_succeeds_in_64_kib() {
    let mut bytes = vec![0u8; 64 * 1024];
    let summary = demo::run(&mut bytes).unwrap();
    assert_eq!(
        summary.keys,
        u64::from(demo::KEYS) - u64::from(demo::KEYS.div_ceil(3))
    );
    assert!(summary.used_after < summary.used_before);
    // The bytes hold the compacted map: it opens again and holds what the summary says.
    let map = hamtdb::Map::open(hamtdb::SliceRegion::new(&mut bytes)).unwrap();
    assert_eq!(map.len(), summary.keys);
}

#[test]
fn the_firmware_sequence_reports_a_full_region_as_an_error() {
    let mut bytes = vec![0u8; 2 * 1024];
    assert!(matches!(
        demo::run(&mut bytes),
        Err(demo::Failed::Map(demo::ErrorKind::RegionFull))
    ));
}
