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

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::panic::AssertUnwindSafe;
use core::sync::atomic::{AtomicU64, Ordering};
use std::alloc::System;
use std::collections::BTreeMap;
use std::panic;

use hamtdb_core::hash::murmur3_x86_32;
use hamtdb_core::{
    Buffer, BufferOptions, Durability, EntryId, Error, Region, RegionError, RegionOp, VecRegion,
};
use hamtdb_tests::SplitMix64;
use hamtdb_tests::buffer_model::payload;

// ---- Allocation watch -----------------------------------------------------------------

/// The largest single allocation a corrupted image may cause: far above what an 8 KiB
/// image needs, far below what trusting a damaged length field would ask for.
const ALLOCATION_LIMIT: usize = 16 << 20;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting the largest request of a watching thread.
struct Watch;

// SAFETY: forwards every call to `System` unchanged; the thread-locals it touches are
// const-initialized `Cell`s without destructors, so using them allocates nothing.
unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller keeps `GlobalAlloc::alloc`'s contract, which is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `dealloc`, and the caller keeps `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    if WATCHING.with(Cell::get) {
        LARGEST.with(|l| l.set(l.get().max(size)));
    }
}

#[global_allocator]
static WATCH: Watch = Watch;

// ---- A region with a budget -----------------------------------------------------------

/// The error code of a call refused because the image's budget ran out.
const BUDGET_CODE: i32 = -0xB0D;
/// Region calls one image may make: open, the reads, a compaction and a reopen of an
/// 8 KiB image need a few thousand.
const CALL_BUDGET: u64 = 200_000;

/// A `VecRegion` that refuses every call after a budget: a loop that a damaged image could
/// keep going ends in an error the test reports.
struct BoundedRegion {
    inner: VecRegion,
    left: AtomicU64,
}

impl BoundedRegion {
    fn new(image: &[u8]) -> Self {
        BoundedRegion {
            inner: VecRegion::from_bytes(image, 1 << 20),
            left: AtomicU64::new(CALL_BUDGET),
        }
    }

    fn spend(&self, op: RegionOp) -> Result<(), RegionError> {
        let left = self.left.load(Ordering::Relaxed);
        if left == 0 {
            return Err(RegionError::Io {
                op,
                code: BUDGET_CODE,
            });
        }
        self.left.store(left - 1, Ordering::Relaxed);
        Ok(())
    }
}

// SAFETY: every method forwards to the inner `VecRegion` (which keeps the three promises)
// or fails before touching it.
unsafe impl Region for BoundedRegion {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), RegionError> {
        self.spend(RegionOp::Read)?;
        self.inner.read(offset, buf)
    }

    fn view(&self, offset: u64, len: usize) -> Result<&[u8], RegionError> {
        self.spend(RegionOp::Read)?;
        self.inner.view(offset, len)
    }

    unsafe fn write(&self, offset: u64, data: &[u8]) -> Result<(), RegionError> {
        self.spend(RegionOp::Write)?;
        // SAFETY: the caller keeps `Region::write`'s contract, which is the inner one's.
        unsafe { self.inner.write(offset, data) }
    }

    fn grow(&self, min_len: u64) -> Result<u64, RegionError> {
        self.spend(RegionOp::Grow)?;
        self.inner.grow(min_len)
    }

    unsafe fn truncate(&self, new_len: u64) -> Result<u64, RegionError> {
        self.spend(RegionOp::Truncate)?;
        // SAFETY: the caller keeps `Region::truncate`'s contract, which is the inner one's.
        unsafe { self.inner.truncate(new_len) }
    }

    fn sync(&self, offset: u64, len: u64) -> Result<(), RegionError> {
        self.spend(RegionOp::Sync)?;
        self.inner.sync(offset, len)
    }
}

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
    let payloads = valid_entries(&image)
        .into_iter()
        .filter(|&off| image[off + 4] == 1)
        .filter_map(|off| {
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

/// One damaged variant of the base image.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// XOR the byte at `offset` with `mask`.
    Flip { offset: usize, mask: u8 },
    /// Keep only the first `len` bytes.
    Truncate { len: usize },
    /// Overwrite `len` bytes at `offset` with bytes from `seed` (or zeros, or 0xFF).
    Garbage {
        offset: usize,
        len: usize,
        seed: u64,
    },
    /// XOR byte `byte` of the meta slot at `slot` with `mask`, then recompute its
    /// checksum.
    MetaField { slot: usize, byte: usize, mask: u8 },
    /// Set the meta slot's u64 field at `byte` to `value`, with a valid checksum.
    MetaValue {
        slot: usize,
        byte: usize,
        value: u64,
    },
    /// XOR byte `byte` of the header of the entry at `entry` with `mask`, then recompute
    /// the entry's checksum.
    EntryField { entry: usize, byte: usize, mask: u8 },
}

impl Damage {
    /// Whether checksums still vouch for the data (so a wrong `get` is a bug), or the
    /// damage forged them.
    fn checksums_honest(self) -> bool {
        !matches!(
            self,
            Damage::EntryField { .. } | Damage::MetaValue { .. } | Damage::MetaField { .. }
        )
    }

    fn apply(self, base: &[u8]) -> Vec<u8> {
        let mut image = base.to_vec();
        match self {
            Damage::Flip { offset, mask } => image[offset] ^= mask,
            Damage::Truncate { len } => image.truncate(len),
            Damage::Garbage { offset, len, seed } => {
                let end = (offset + len).min(image.len());
                let range = &mut image[offset..end];
                match seed % 3 {
                    0 => range.fill(0),
                    1 => range.fill(0xFF),
                    _ => SplitMix64::new(seed).fill_bytes(range),
                }
            }
            Damage::MetaField { slot, byte, mask } => {
                image[slot + byte] ^= mask;
                reseal_meta(&mut image, slot);
            }
            Damage::MetaValue { slot, byte, value } => {
                image[slot + byte..slot + byte + 8].copy_from_slice(&value.to_le_bytes());
                reseal_meta(&mut image, slot);
            }
            Damage::EntryField { entry, byte, mask } => {
                image[entry + byte] ^= mask;
                reseal_entry(&mut image, entry);
            }
        }
        image
    }
}

/// Recomputes a meta slot's checksum (docs/FORMAT.md: murmur3 of bytes 0..252, seed
/// "META").
fn reseal_meta(image: &mut [u8], slot: usize) {
    let sum = murmur3_x86_32(&image[slot..slot + 252], 0x4154_454d);
    image[slot + 252..slot + 256].copy_from_slice(&sum.to_le_bytes());
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

/// The documented entry checksum of the entry at `offset` whose bytes (header and
/// payload) are `entry`.
fn entry_checksum(offset: usize, entry: &[u8]) -> u32 {
    let x = SEED ^ (offset as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    murmur3_x86_32(&entry[4..], (x as u32) ^ ((x >> 32) as u32))
}

/// Recomputes the checksum of the entry at `offset`, as far as its (possibly damaged)
/// length field lets us.
fn reseal_entry(image: &mut [u8], offset: usize) {
    let len = le32(&image[offset + 12..offset + 16]) as usize;
    let end = (offset + 32).saturating_add(len).min(image.len());
    let sum = entry_checksum(offset, &image[offset..end]);
    image[offset..offset + 4].copy_from_slice(&sum.to_le_bytes());
}

/// Offsets of every entry in the data area whose checksum is valid where it lies (the
/// live ones and stale ones alike).
fn valid_entries(image: &[u8]) -> Vec<usize> {
    (1024..image.len().saturating_sub(32))
        .step_by(8)
        .filter(|&off| {
            let len = le32(&image[off + 12..off + 16]) as usize;
            let kind_ok = matches!(image[off + 4], 1 | 2) && image[off + 5] == 1;
            kind_ok
                && off + 32 + len <= image.len()
                && le32(&image[off..off + 4]) == entry_checksum(off, &image[off..off + 32 + len])
        })
        .collect()
}

/// The damaged variants: a deterministic selection that keeps a debug-build run within
/// seconds.
fn variants(base: &Base) -> Vec<Damage> {
    let image = &base.image;
    let mut out = Vec::new();
    let mut rng = SplitMix64::new(0xD00D);
    // One bit of every byte of both meta sectors, and of a third of the data area's
    // bytes (each bit position in turn); every 11th data byte inverted.
    for offset in 0..image.len() {
        if offset < 1024 || offset % 3 == 0 {
            out.push(Damage::Flip {
                offset,
                mask: 1 << (offset / 3 % 8),
            });
        }
        if offset >= 1024 && offset % 11 == 0 {
            out.push(Damage::Flip { offset, mask: 0xFF });
        }
    }
    // Every 64th length, and some odd ones.
    for len in (0..image.len())
        .step_by(64)
        .chain((1..image.len()).step_by(509))
    {
        out.push(Damage::Truncate { len });
    }
    for _ in 0..500 {
        let offset = rng.below_usize(image.len());
        let longest = if rng.coin() { 16 } else { 600 };
        let len = 1 + rng.below_usize(longest);
        out.push(Damage::Garbage {
            offset,
            len,
            seed: rng.next_u64(),
        });
    }
    // Structure-aware: both meta slots, every field byte, and extreme field values.
    for slot in [0, 512] {
        for byte in 8..252 {
            for mask in [0x01, 0xFF] {
                out.push(Damage::MetaField { slot, byte, mask });
            }
        }
        for byte in (16..152).step_by(8) {
            for value in [0, 1, 7, 1024, 1 << 20, 1 << 40, u64::MAX / 2, u64::MAX] {
                out.push(Damage::MetaValue { slot, byte, value });
            }
        }
    }
    // Every header byte of every third valid entry, checksum recomputed.
    for entry in valid_entries(image).into_iter().step_by(3) {
        for byte in 4..32 {
            let mask = [0x01, 0x10, 0xFF][byte % 3];
            out.push(Damage::EntryField { entry, byte, mask });
        }
    }
    out
}

// ---- Exercising one image -------------------------------------------------------------

#[derive(Default, Debug)]
struct Outcomes {
    images: u64,
    opened: u64,
    rejected: BTreeMap<&'static str, u64>,
    compacted: u64,
    corrupted_gets: u64,
    payload_flips: u64,
    largest_allocation: usize,
    failures: Vec<String>,
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::Corrupted { .. } => "Corrupted",
        Error::NotInitialized => "NotInitialized",
        Error::UnsupportedVersion { .. } => "UnsupportedVersion",
        Error::WrongKind { .. } => "WrongKind",
        Error::Region(RegionError::OutOfBounds { .. }) => "Region(OutOfBounds)",
        Error::Region(_) => "Region(other)",
        Error::TooLarge { .. } => "TooLarge",
        Error::NotFound { .. } => "NotFound",
        Error::Removed { .. } => "Removed",
        Error::InvalidOption { .. } => "InvalidOption",
        _ => "other",
    }
}

/// Fails on an error that means the budget ran out (a runaway loop).
fn bounded<T>(what: &str, r: &Result<T, Error>) -> Result<(), String> {
    match r {
        Err(Error::Region(RegionError::Io {
            code: BUDGET_CODE, ..
        })) => Err(format!("{what} ran past {CALL_BUDGET} region calls")),
        _ => Ok(()),
    }
}

/// Opens the damaged image and runs every read on it, then, if `compact`, a compaction
/// and a reopen.
fn exercise(base: &Base, damage: Damage, compact: bool, out: &mut Outcomes) -> Result<(), String> {
    let image = damage.apply(&base.image);
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
            *out.rejected.entry(kind(&e)).or_default() += 1;
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
            Err(Error::Corrupted { .. }) => out.corrupted_gets += 1,
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
        out.payload_flips += 1;
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
    out.compacted += 1;
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

/// Runs `exercise` on every variant, on a few threads, catching panics.
fn run_all(base: &Base, variants: &[Damage]) -> Outcomes {
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get().min(8));
    let chunk = variants.len().div_ceil(threads);
    // Panics of the workers are caught and reported below; keep the default output for
    // every other thread.
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let worker = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("corruption-"));
        if !worker {
            default_hook(info);
        }
    }));
    let parts: Vec<Outcomes> = std::thread::scope(|scope| {
        let handles: Vec<_> = variants
            .chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                std::thread::Builder::new()
                    .name(format!("corruption-{i}"))
                    .spawn_scoped(scope, move || {
                        let mut out = Outcomes::default();
                        for (n, &damage) in part.iter().enumerate() {
                            out.images += 1;
                            // Compaction on every other image: it is the slow part.
                            let compact = n % 2 == 0;
                            WATCHING.with(|w| w.set(true));
                            let result = panic::catch_unwind(AssertUnwindSafe(|| {
                                exercise(base, damage, compact, &mut out)
                            }));
                            WATCHING.with(|w| w.set(false));
                            let why = match result {
                                Ok(Ok(())) => continue,
                                Ok(Err(why)) => why,
                                Err(panic) => format!(
                                    "panicked: {}",
                                    panic
                                        .downcast_ref::<String>()
                                        .map(String::as_str)
                                        .or_else(|| panic.downcast_ref::<&str>().copied())
                                        .unwrap_or("?")
                                ),
                            };
                            out.failures.push(format!("{damage:?}: {why}"));
                        }
                        out.largest_allocation = LARGEST.with(Cell::get);
                        out
                    })
                    .expect("spawn")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    let _ = panic::take_hook();
    let mut total = Outcomes::default();
    for part in parts {
        total.images += part.images;
        total.opened += part.opened;
        total.compacted += part.compacted;
        total.corrupted_gets += part.corrupted_gets;
        total.payload_flips += part.payload_flips;
        total.largest_allocation = total.largest_allocation.max(part.largest_allocation);
        for (k, v) in part.rejected {
            *total.rejected.entry(k).or_default() += v;
        }
        total.failures.extend(part.failures);
    }
    total
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
    let out = run_all(&base, &variants);
    eprintln!(
        "buffer corruption: {} images ({} bytes each): {} opened, {} compacted, {} gets found \
         a damaged record, {} flips in live payloads caught; rejected at open: {:?}; largest \
         allocation {} bytes",
        out.images,
        base.image.len(),
        out.opened,
        out.compacted,
        out.corrupted_gets,
        out.payload_flips,
        out.rejected,
        out.largest_allocation
    );
    let shown: Vec<&String> = out.failures.iter().take(20).collect();
    assert!(
        out.failures.is_empty(),
        "{} of {} images failed, e.g.:\n{}",
        out.failures.len(),
        out.images,
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(out.largest_allocation < ALLOCATION_LIMIT);
    assert!(out.images >= 5_000);
    assert!(
        out.opened > 1000,
        "most single-bit flips in free space or payloads open"
    );
    assert!(
        out.corrupted_gets > 100,
        "payload damage is caught by checksums"
    );
    assert!(
        out.payload_flips > 500,
        "{} payload flips",
        out.payload_flips
    );
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
