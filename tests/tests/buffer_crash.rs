//! Power cuts at every region operation of scripted buffer workloads.
//!
//! For each workload: run it once on a `FaultRegion` to count its mutations; then, for
//! every cut point `n`, run it on a fresh region whose power goes after `n` mutations,
//! stop at the first error, and open crash images of several modes. Each must open, and
//! hold exactly the last durable commit — or, when unsynced writes may survive, a commit
//! published after it: an eventual commit, or the commit in flight when the power went
//! (its meta slot may have been written before its sync). Nothing else: no torn state, no
//! mix. The buffer must then keep working from there (add, update, remove, commit,
//! reopen, compact).

use hamtdb_core::buffer::format::META_SLOT_OFFSETS;
use hamtdb_core::{Buffer, Error, Region, RegionError};
use hamtdb_tests::buffer_model::{
    BufferOp, Harness, ModelConfig, ModelState, SizeChange, check_state, match_crash_candidates,
    payload,
};
use hamtdb_tests::damage::{entry_checksum, le32, le64};
use hamtdb_tests::{Counter, Counters, CrashMode, FaultRegion, POWER_CUT_CODE, crash_run};

use BufferOp::*;

/// Room for every workload.
const CAPACITY: usize = 256 << 10;

/// Builds the buffer a workload starts from, and its committed state.
type Setup = fn(ModelConfig) -> (Buffer<FaultRegion>, ModelState);

/// A scripted workload: the power cuts fall among `ops`, after `setup`.
struct Workload {
    name: &'static str,
    config: ModelConfig,
    setup: Setup,
    ops: Vec<BufferOp>,
}

/// An empty buffer.
fn empty(config: ModelConfig) -> (Buffer<FaultRegion>, ModelState) {
    let region = FaultRegion::with_capacity(CAPACITY);
    let buffer = Buffer::create(region, config.options()).expect("create");
    (buffer, ModelState::default())
}

/// `Remove` of exactly `id` (see `Harness::target`: a pick divisible by 4 names an id).
fn remove(id: u16) -> BufferOp {
    Remove { pick: id * 4 }
}

/// `Update` of exactly `id`.
fn update(id: u16, change: SizeChange, fill: u8) -> BufferOp {
    Update {
        pick: id * 4,
        change,
        fill,
    }
}

fn workloads() -> Vec<Workload> {
    let ext = |extension_factor| ModelConfig {
        extension_factor,
        check_each_op: false,
        ..ModelConfig::default()
    };
    vec![
        Workload {
            name: "adds with commits",
            setup: empty,
            config: ext(1.0),
            ops: vec![
                Add { len: 10, fill: 1 },
                Add { len: 0, fill: 2 },
                Add { len: 100, fill: 3 },
                Commit,
                Add { len: 33, fill: 4 },
                Add { len: 1, fill: 5 },
                Commit,
                Add { len: 200, fill: 6 },
                Commit,
            ],
        },
        Workload {
            name: "in-place updates within a transaction",
            setup: empty,
            config: ext(1.5),
            ops: vec![
                AddMany { count: 4, len: 20 },
                Commit,
                Add { len: 40, fill: 1 },
                update(5, SizeChange::Shrink(25), 2),
                update(5, SizeChange::Grow(30), 3),
                update(5, SizeChange::Same, 4),
                Commit,
                Add { len: 30, fill: 5 },
                update(6, SizeChange::Same, 6),
                update(6, SizeChange::Grow(10), 7),
                update(2, SizeChange::Same, 8),
                update(2, SizeChange::Shrink(5), 9),
                Commit,
            ],
        },
        Workload {
            name: "migrations past the committed capacity",
            setup: empty,
            config: ext(1.0),
            ops: vec![
                Add { len: 10, fill: 1 },
                Add { len: 10, fill: 2 },
                Add { len: 10, fill: 3 },
                Commit,
                update(1, SizeChange::Grow(50), 4),
                update(2, SizeChange::Grow(60), 5),
                update(3, SizeChange::Grow(1), 6),
                Commit,
                update(1, SizeChange::Grow(300), 7),
                update(2, SizeChange::Shrink(40), 8),
                update(1, SizeChange::Grow(8), 9),
                Commit,
            ],
        },
        Workload {
            name: "removes",
            setup: empty,
            config: ext(1.0),
            ops: vec![
                AddMany { count: 6, len: 12 },
                Commit,
                remove(2),
                remove(4),
                remove(6),
                Commit,
                remove(1),
                update(3, SizeChange::Grow(20), 1),
                Add { len: 5, fill: 2 },
                remove(7),
                Commit,
            ],
        },
        Workload {
            name: "compaction after removing half",
            setup: empty,
            config: ext(1.25),
            ops: vec![
                AddMany { count: 24, len: 16 },
                Add { len: 300, fill: 1 },
                Commit,
                remove(2),
                remove(4),
                remove(6),
                remove(8),
                remove(10),
                remove(12),
                remove(14),
                remove(16),
                remove(18),
                remove(20),
                remove(22),
                remove(24),
                Commit,
                update(25, SizeChange::Shrink(200), 2),
                Compact,
                Add { len: 7, fill: 3 },
                Commit,
            ],
        },
        Workload {
            name: "eventual commits and sync",
            setup: empty,
            config: ext(1.0),
            ops: vec![
                Add { len: 10, fill: 1 },
                Add { len: 20, fill: 2 },
                Commit,
                Add { len: 30, fill: 3 },
                CommitEventual,
                update(1, SizeChange::Grow(5), 4),
                CommitEventual,
                Sync,
                Add { len: 0, fill: 5 },
                remove(2),
                CommitEventual,
                update(3, SizeChange::Shrink(10), 6),
                Add { len: 44, fill: 7 },
                CommitEventual,
                remove(4),
                Sync,
                Add { len: 8, fill: 8 },
                CommitEventual,
                Commit,
            ],
        },
        Workload {
            name: "id tree grows a level",
            setup: empty,
            config: ext(1.0),
            ops: vec![
                AddMany { count: 62, len: 0 },
                Commit,
                AddMany { count: 4, len: 3 },
                Commit,
                remove(65),
                update(64, SizeChange::Grow(9), 1),
                Commit,
            ],
        },
        Workload {
            name: "compaction policy and steps",
            setup: empty,
            config: ModelConfig {
                compaction: hamtdb_core::CompactionPolicy {
                    space_percent: 30,
                    space_min_bytes: 1,
                    interval_secs: 0,
                },
                ..ext(2.0)
            },
            ops: vec![
                AddMany { count: 10, len: 24 },
                Commit,
                remove(1),
                remove(3),
                Commit,
                remove(5),
                remove(7),
                CommitEventual,
                update(2, SizeChange::Shrink(20), 1),
                Commit,
                CompactStep { budget: 40 },
                Add { len: 9, fill: 2 },
                CompactStep { budget: 1 },
            ],
        },
    ]
}

/// The crash images taken at every cut point.
fn modes() -> Vec<CrashMode> {
    let mut modes = vec![CrashMode::DropAllUnsynced, CrashMode::KeepAllUnsynced];
    modes.extend([0, 1, 7, 31, 100, 255].map(|keep_bytes| CrashMode::TornLast { keep_bytes }));
    modes.extend((0..4).map(CrashMode::Random));
    modes.extend((0..2).map(CrashMode::RandomTornSubset));
    modes.extend((0..2).map(CrashMode::RandomBytes));
    modes
}

/// The workload's starting buffer, whose power goes after `cut` further mutations
/// (`None`: never), and the number of mutations its setup made.
fn harness(workload: &Workload, cut: Option<u64>) -> (Harness<FaultRegion>, u64) {
    let (buffer, state) = (workload.setup)(workload.config);
    let base = buffer.region().op_count();
    buffer.region().set_cut_after(cut.map(|n| base + n));
    (Harness::resume(buffer, state, workload.config), base)
}

/// Runs `ops` until the first error, which must be the power cut; returns whether one
/// happened.
fn run_until_cut(harness: &mut Harness<FaultRegion>, ops: &[BufferOp]) -> bool {
    for op in ops {
        match harness.try_apply(op) {
            Ok(()) => {}
            Err(Error::Region(RegionError::Io {
                code: POWER_CUT_CODE,
                ..
            })) => return true,
            Err(e) => panic!("{op:?} failed with {e:?}, not the power cut"),
        }
    }
    false
}

/// What the buffer must still do after recovery.
fn after_recovery() -> Vec<BufferOp> {
    vec![
        Add {
            len: 17,
            fill: 0xA1,
        },
        Update {
            pick: 1,
            change: SizeChange::Grow(40),
            fill: 0xA2,
        },
        Remove { pick: 2 },
        Commit,
        Reopen,
        Compact,
        Add { len: 3, fill: 0xA3 },
        Commit,
    ]
}

/// What the suite counts.
const COUNTERS: &[Counter] = &[
    Counter::new("cut points", "cut points"),
    Counter::new("images", "images"),
    // Images that held a state newer than the last durable commit.
    Counter::new("newer", "held a commit newer than the last durable one"),
];

/// Cuts the power at every mutation of `workload` and checks every crash image.
fn crash_at_every_point(workload: &Workload) -> Counters {
    let mut totals = Counters::new(COUNTERS);
    let (mut probe, base) = harness(workload, None);
    let full_config = ModelConfig {
        check_each_op: true,
        ..workload.config
    };
    assert!(!run_until_cut(&mut probe, &workload.ops));
    let count = probe.buffer().region().op_count() - base;
    for cut in 0..=count {
        let (mut h, _) = harness(workload, Some(cut));
        let was_cut = run_until_cut(&mut h, &workload.ops);
        assert_eq!(
            was_cut,
            cut < count,
            "{}: cut {cut} of {count}",
            workload.name
        );
        totals.add("cut points", 1);
        for mode in modes() {
            let image = h.buffer().region().crash_image(mode);
            let region = FaultRegion::from_image(&image, CAPACITY);
            let buffer = Buffer::open(region).unwrap_or_else(|e| {
                panic!("{}: cut {cut}, {mode:?}: open failed: {e:?}", workload.name)
            });
            let candidates = h.crash_candidates_for(mode);
            let state = match_crash_candidates(&buffer, &candidates)
                .unwrap_or_else(|why| panic!("{}: cut {cut}, {mode:?}: {why}", workload.name))
                .clone();
            totals.add("images", 1);
            if state != *h.durable() {
                totals.add("newer", 1);
            }
            // Recovery is a sound base for more work (checked on a few modes: it is the
            // slow part).
            if matches!(
                mode,
                CrashMode::KeepAllUnsynced | CrashMode::Random(0) | CrashMode::RandomBytes(1)
            ) {
                let mut resumed = Harness::resume(buffer, state, full_config);
                for op in after_recovery() {
                    resumed.apply(&op);
                }
            }
        }
    }
    totals
}

#[test]
fn every_power_cut_recovers_the_last_durable_commit() {
    let results = crash_run::one_thread_each(workloads(), |w| w.name, crash_at_every_point);
    for (_, totals) in &results {
        assert!(totals.get("cut points") > 0);
    }
    let sum = crash_run::report("buffer crash", COUNTERS, &results);
    assert!(
        sum.get("newer") > 0,
        "no image ever kept an in-flight commit"
    );
}

// ---- A commit recovery rejected stays rejected -----------------------------------------

/// The durable image with the unsynced writes `keep` selects applied (a crash image
/// built by hand).
fn image_keeping(region: &FaultRegion, keep: impl Fn(usize, &[u8]) -> bool) -> Vec<u8> {
    let mut image = region.crash_image(CrashMode::DropAllUnsynced);
    image.resize(region.len() as usize, 0);
    for (i, write) in region.unsynced_writes().iter().enumerate() {
        if keep(i, &write.bytes) {
            let at = write.offset as usize;
            image[at..at + write.bytes.len()].copy_from_slice(&write.bytes);
        }
    }
    image
}

/// A commit whose meta slot reached the medium but whose record did not is rejected on
/// open. If the caller then does the same work again (same record, same place, same
/// transaction id) and the power goes before it commits, the old meta slot must not
/// come back to life over the rewritten bytes.
#[test]
fn a_commit_rejected_at_open_never_comes_back() {
    let config = ModelConfig::default();
    let zombie = payload(64, 0x5A);
    // Run 1: a durable commit, then one that is cut at its sync.
    let mut b = Buffer::create(FaultRegion::with_capacity(CAPACITY), config.options()).unwrap();
    let kept = b.add(b"durable").unwrap();
    b.commit().unwrap();
    b.add(&zombie).unwrap();
    let writes_before_commit = b.region().unsynced_write_count();
    // Sealing writes one checksum per new entry (the record, the id node), then the
    // meta slot; the sync is refused.
    b.region().set_cut_after(Some(b.region().op_count() + 3));
    assert!(b.commit().is_err());
    let log = b.region().unsynced_writes();
    assert_eq!(log.len(), writes_before_commit + 3);
    // The crash keeps everything but the record's payload.
    let image = image_keeping(b.region(), |_, bytes| bytes != &zombie[..]);
    let reopened = Buffer::open(FaultRegion::from_image(&image, CAPACITY)).unwrap();
    assert_eq!(
        reopened.ids().unwrap(),
        vec![kept],
        "the torn commit is rejected"
    );
    // The rejected commit's meta slot is still in the image, valid on its own.
    assert!(
        META_SLOT_OFFSETS
            .iter()
            .any(|&o| image[o as usize + 16] == 3
                && image[o as usize..o as usize + 8] == *b"hamtdbMS"),
        "the rejected meta slot (txid 3) was written"
    );

    // Run 2: the same record again, not committed; the power goes.
    let mut b = reopened;
    b.add(&zombie).unwrap();
    // Every crash image must hold the durable commit only.
    let mut images = 0;
    let log2 = b.region().unsynced_writes();
    for mask in 0u32..1 << log2.len() {
        let image = image_keeping(b.region(), |i, _| mask >> i & 1 == 1);
        let opened = Buffer::open(FaultRegion::from_image(&image, CAPACITY)).unwrap();
        let mut durable = ModelState::default();
        durable.records.insert(kept.get(), b"durable".to_vec());
        durable.next_id = 2;
        if let Err(why) = check_state(&opened, &durable) {
            panic!("unsynced writes {mask:#b} of {log2:?}: {why}");
        }
        images += 1;
    }
    assert!(images >= 16);
}

// ---- Phantom headers ------------------------------------------------------------------

/// A record entry (header and payload) that the format accepts at `offset`: right kind,
/// status, capacity and length, and a checksum valid for that place and `seed`.
fn craft_record(seed: u64, offset: u64, id: u64, txid: u64, data: &[u8]) -> Vec<u8> {
    let capacity = (32 + data.len()).next_multiple_of(8) as u32;
    let mut entry = vec![0u8; 32];
    entry[4] = 0x01; // record
    entry[5] = 0x01; // live
    entry[8..12].copy_from_slice(&capacity.to_le_bytes());
    entry[12..16].copy_from_slice(&(data.len() as u32).to_le_bytes());
    entry[16..24].copy_from_slice(&txid.to_le_bytes());
    entry[24..32].copy_from_slice(&id.to_le_bytes());
    entry.extend_from_slice(data);
    let sum = entry_checksum(seed, offset, &entry);
    entry[0..4].copy_from_slice(&sum.to_le_bytes());
    entry
}

/// What a recovery that scanned the data area would take for a record at `offset`: its
/// id and payload, if the bytes there form a valid record entry.
fn scan_record(image: &[u8], seed: u64, offset: usize) -> Option<(u64, Vec<u8>)> {
    let h = image.get(offset..offset + 32)?;
    if h[4] != 0x01 || h[5] != 0x01 || h[6..8] != [0, 0] {
        return None;
    }
    let (capacity, len) = (le32(&h[8..12]) as usize, le32(&h[12..16]) as usize);
    if capacity < 32 || capacity % 8 != 0 || len > capacity - 32 {
        return None;
    }
    let entry = image.get(offset..offset + 32 + len)?;
    (le32(&h[0..4]) == entry_checksum(seed, offset as u64, entry))
        .then(|| (le64(&h[24..32]), entry[32..].to_vec()))
}

/// The offset of the only occurrence of `needle` in `image`.
fn find(image: &[u8], needle: &[u8]) -> usize {
    let hits: Vec<usize> = image
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "expected one occurrence");
    hits[0]
}

/// Where the entry of the next record of `len` bytes will be written: adds a placeholder,
/// looks for it, and aborts (allocation is deterministic: the lowest free place).
fn next_record_offset(buffer: &mut Buffer<FaultRegion>, len: usize) -> u64 {
    let placeholder = payload(len, 0xEE);
    buffer.add(&placeholder).unwrap();
    let at = find(&buffer.region().volatile_image(), &placeholder) - 32;
    buffer.abort();
    at as u64
}

const RESURRECTED: &[u8] = b"a removed record, resurrected by a scan";

/// Records 1 and 2, and record 3 whose payload holds two things a scanning recovery
/// could take for entries: a byte-exact copy of record 2's entry (valid only at record
/// 2's offset), and an entry crafted to be valid exactly where it lies, claiming id 1 —
/// which the workload removes.
fn phantom_setup(config: ModelConfig) -> (Buffer<FaultRegion>, ModelState) {
    let seed = config.options().seed;
    let (mut buffer, mut state) = empty(config);
    let (victim, other) = (payload(24, 0x11), payload(40, 0x22));
    buffer.add(&victim).unwrap();
    buffer.add(&other).unwrap();
    buffer.commit().unwrap();
    let image = buffer.region().volatile_image();
    let other_at = find(&image, &other) - 32;
    let mut copy = image[other_at..other_at + 32 + other.len()].to_vec();
    copy.resize(copy.len().next_multiple_of(8), 0xC0);

    let phantom_len = 8 + copy.len() + craft_record(seed, 0, 1, 3, RESURRECTED).len() + 16;
    let at = next_record_offset(&mut buffer, phantom_len);
    let phantom_at = at + 32 + 8 + copy.len() as u64;
    let mut data = payload(8, 0x33);
    data.extend_from_slice(&copy);
    // txid 3: the commit that writes it, as a real entry of that commit would have.
    data.extend_from_slice(&craft_record(seed, phantom_at, 1, 3, RESURRECTED));
    data.extend_from_slice(&payload(16, 0x44));
    assert_eq!(data.len(), phantom_len);
    assert_eq!(buffer.add(&data).unwrap().get(), 3);
    buffer.commit().unwrap();

    let image = buffer.region().volatile_image();
    assert_eq!(
        find(&image, &data) as u64,
        at + 32,
        "record 3 where expected"
    );
    // The scanner is right about real entries and fooled by the phantom, not the copy.
    assert_eq!(
        scan_record(&image, seed, other_at),
        Some((2, other.clone()))
    );
    assert_eq!(
        scan_record(&image, seed, phantom_at as usize),
        Some((1, RESURRECTED.to_vec())),
        "the phantom is a valid entry at its offset"
    );
    assert_eq!(
        scan_record(&image, seed, at as usize + 32 + 8),
        None,
        "a moved copy is not"
    );

    state.records.insert(1, victim);
    state.records.insert(2, other);
    state.records.insert(3, data);
    state.next_id = 4;
    (buffer, state)
}

/// A record torn by a power cut mid-payload leaves, in free space, a prefix that holds an
/// entry valid at its offset and claiming id 2 with the next commit's txid — exactly what
/// the next record will be. After recovery a shorter record 2 is written at the same
/// place, and the id node copied with it right behind: they end just before the phantom.
fn torn_setup(config: ModelConfig) -> (Buffer<FaultRegion>, ModelState) {
    let seed = config.options().seed;
    let (mut buffer, mut state) = empty(config);
    let first = payload(16, 0x55);
    buffer.add(&first).unwrap();
    buffer.commit().unwrap();

    let crafted_len = craft_record(seed, 0, 2, 3, RESURRECTED).len();
    // Room before the phantom for record 2's 40-byte entry and a 552-byte id node.
    let lead = 568;
    let torn_len = lead + crafted_len + 64;
    let at = next_record_offset(&mut buffer, torn_len);
    let phantom_at = at + 32 + lead as u64;
    let mut torn = payload(lead, 0x66);
    torn.extend_from_slice(&craft_record(seed, phantom_at, 2, 3, RESURRECTED));
    torn.extend_from_slice(&payload(64, 0x77));
    // The power goes right after the payload write, which is torn after the phantom.
    let region = buffer.region();
    // The placeholder grew the region already: the header write, then the payload write.
    region.set_cut_after(Some(region.op_count() + 2));
    buffer.add(&torn).unwrap_err();
    let last = buffer.region().unsynced_writes().pop().expect("a write");
    assert_eq!(
        (last.offset, last.bytes.len()),
        (at + 32, torn.len()),
        "payload last"
    );
    let image = buffer.region().crash_image(CrashMode::TornLast {
        keep_bytes: lead + crafted_len,
    });
    assert_eq!(
        scan_record(&image, seed, phantom_at as usize),
        Some((2, RESURRECTED.to_vec())),
        "the torn prefix holds a valid entry"
    );

    let mut buffer = Buffer::open(FaultRegion::from_image(&image, CAPACITY)).unwrap();
    assert_eq!(buffer.len(), 1);
    // Record 2 at the torn record's place: 4 bytes, a 40-byte entry.
    let second = payload(4, 0x88);
    assert_eq!(buffer.add(&second).unwrap().get(), 2);
    buffer.commit().unwrap();
    let image = buffer.region().volatile_image();
    assert_eq!(find(&image, &second) as u64, at + 32);
    assert_eq!(
        scan_record(&image, seed, at as usize),
        Some((2, second.clone()))
    );
    assert_eq!(
        scan_record(&image, seed, phantom_at as usize),
        Some((2, RESURRECTED.to_vec())),
        "and the phantom right behind it still validates"
    );

    state.records.insert(1, first);
    state.records.insert(2, second);
    state.next_id = 3;
    (buffer, state)
}

/// Entries are parsed only where a committed structure points: a valid-looking entry
/// inside a payload, or left in free space by a torn write, is never taken for a record —
/// not after removes, moves and compaction, and not after a power cut at any point of
/// them. `ids()`, `len()`, `stats()` and every `get` match the model in every crash image,
/// and the removed record the phantom claims to be stays removed.
#[test]
fn phantom_header_from_torn_write_is_never_parsed() {
    let config = ModelConfig {
        check_each_op: false,
        ..ModelConfig::default()
    };
    let workloads = [
        Workload {
            name: "phantom inside a payload",
            config,
            setup: phantom_setup,
            ops: vec![
                remove(1),
                Commit,
                // Record 3 moves; its old bytes, phantom included, become free space.
                update(3, SizeChange::Grow(100), 0x99),
                Commit,
                Compact,
                Add {
                    len: 50,
                    fill: 0xAA,
                },
                Commit,
                remove(2),
                Compact,
            ],
        },
        Workload {
            name: "phantom left by a torn write",
            config,
            setup: torn_setup,
            ops: vec![
                update(2, SizeChange::Grow(100), 0x99),
                Commit,
                Add { len: 8, fill: 0xAB },
                Commit,
                remove(1),
                Compact,
                Add { len: 0, fill: 0 },
                Commit,
            ],
        },
    ];
    let mut totals = Counters::new(COUNTERS);
    for workload in &workloads {
        totals += &crash_at_every_point(workload);
    }
    eprintln!("buffer crash: phantoms: {totals}");
    assert!(totals.get("images") > 100);
}
