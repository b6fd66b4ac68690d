//! Damaged images, for the corruption suites and fuzz targets: the format's checksums
//! written out from docs/FORMAT.md independently of the core (so a test that reseals
//! with them also checks the documented format), the kinds of [`Damage`] applied to a
//! committed image, a [`BoundedRegion`] that ends runaway loops with an error, and an
//! [`AllocationWatch`] that records the largest allocation a damaged image caused; and
//! the driver the corruption suites share, [`exercise_all`], with its [`Outcomes`].
#![allow(unsafe_code)] // the allocator and `Region` impls forward to `System` and `VecRegion`

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::ops::AddAssign;
use core::panic::AssertUnwindSafe;
use core::sync::atomic::{AtomicU64, Ordering};
use std::alloc::System;
use std::collections::BTreeMap;
use std::{panic, thread};

use hamtdb_core::hash::murmur3_x86_32;
use hamtdb_core::{Error, Region, RegionError, RegionOp, VecRegion};

use crate::SplitMix64;
use crate::counters::{Counter, Counters};

// ---- The format, written out -----------------------------------------------------------

/// Offsets of the two meta slots.
pub const META_SLOTS: [usize; 2] = [0, 512];
/// Offset of the first entry.
pub const DATA_START: usize = 1024;
/// Length of an entry header.
pub const HEADER_LEN: usize = 32;

/// The little-endian `u32` in `b` (4 bytes).
pub fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

/// The little-endian `u64` in `b` (8 bytes).
pub fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// Recomputes a meta slot's checksum (docs/FORMAT.md: murmur3 of bytes 0..252, seed
/// "META").
pub fn reseal_meta(image: &mut [u8], slot: usize) {
    let sum = murmur3_x86_32(&image[slot..slot + 252], 0x4154_454d);
    image[slot + 252..slot + 256].copy_from_slice(&sum.to_le_bytes());
}

/// The entry checksum as docs/FORMAT.md defines it for the entry at `offset` whose bytes
/// (header and payload) are `entry`, in a database with `seed`:
/// `murmur3_x86_32(entry[4 .. 32 + len], entry_seed)`.
pub fn entry_checksum(seed: u64, offset: u64, entry: &[u8]) -> u32 {
    let x = seed ^ offset.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    murmur3_x86_32(&entry[4..], (x as u32) ^ ((x >> 32) as u32))
}

/// Reseals both meta slots' checksums, where the image is long enough to hold them.
pub fn reseal_metas(image: &mut [u8]) {
    for slot in META_SLOTS {
        if image.len() >= slot + 256 {
            reseal_meta(image, slot);
        }
    }
}

/// Reseals every 8-aligned entry header with a known kind whose length fits, with the
/// seed of meta slot 0.
pub fn reseal_entries(image: &mut [u8]) {
    if image.len() < DATA_START {
        return;
    }
    let seed = le64(&image[96..104]);
    let mut off = DATA_START;
    while off + HEADER_LEN <= image.len() {
        let kind_ok = matches!(image[off + 4], 0x01 | 0x02 | 0x10 | 0x11 | 0x12);
        let end = (off + HEADER_LEN).checked_add(le32(&image[off + 12..off + 16]) as usize);
        if end.is_some_and(|end| kind_ok && end <= image.len()) {
            reseal_entry(image, seed, off);
        }
        off += 8;
    }
}

/// Recomputes the checksum of the entry at `offset`, as far as its (possibly damaged)
/// length field lets us.
pub fn reseal_entry(image: &mut [u8], seed: u64, offset: usize) {
    let len = le32(&image[offset + 12..offset + 16]) as usize;
    let end = (offset + HEADER_LEN).saturating_add(len).min(image.len());
    let sum = entry_checksum(seed, offset as u64, &image[offset..end]);
    image[offset..offset + 4].copy_from_slice(&sum.to_le_bytes());
}

/// Offsets and payload lengths of every live-status entry of a kind `kind_ok` accepts
/// whose checksum is valid where it lies (live and stale ones alike).
pub fn valid_entries(image: &[u8], seed: u64, kind_ok: impl Fn(u8) -> bool) -> Vec<(usize, usize)> {
    (DATA_START..image.len().saturating_sub(HEADER_LEN))
        .step_by(8)
        .filter_map(|off| {
            let len = le32(&image[off + 12..off + 16]) as usize;
            let end = off + HEADER_LEN + len;
            (kind_ok(image[off + 4])
                && image[off + 5] == 1
                && end <= image.len()
                && le32(&image[off..off + 4]) == entry_checksum(seed, off as u64, &image[off..end]))
            .then_some((off, len))
        })
        .collect()
}

// ---- Damage ----------------------------------------------------------------------------

/// One damaged variant of a committed image.
#[derive(Clone, Copy, Debug)]
pub enum Damage {
    /// XOR the byte at `offset` with `mask`.
    Flip {
        /// Where.
        offset: usize,
        /// What to XOR it with.
        mask: u8,
    },
    /// Keep only the first `len` bytes.
    Truncate {
        /// Bytes kept.
        len: usize,
    },
    /// Overwrite `len` bytes at `offset` with bytes from `seed` (or zeros, or 0xFF).
    Garbage {
        /// Where.
        offset: usize,
        /// How many bytes.
        len: usize,
        /// Which garbage: `seed % 3` picks zeros, 0xFF or random bytes from `seed`.
        seed: u64,
    },
    /// XOR byte `byte` of the meta slot at `slot` with `mask`, then recompute its
    /// checksum.
    MetaField {
        /// The slot's offset.
        slot: usize,
        /// The byte within the slot.
        byte: usize,
        /// What to XOR it with.
        mask: u8,
    },
    /// Set the meta slot's u64 field at `byte` to `value`, with a valid checksum.
    MetaValue {
        /// The slot's offset.
        slot: usize,
        /// The field's offset within the slot.
        byte: usize,
        /// The forged value.
        value: u64,
    },
    /// XOR byte `byte` of the entry at `entry` (header or payload) with `mask`, then
    /// recompute the entry's checksum.
    EntryField {
        /// The entry's offset.
        entry: usize,
        /// The byte within the entry.
        byte: usize,
        /// What to XOR it with.
        mask: u8,
    },
}

impl Damage {
    /// Whether checksums still vouch for the data (so wrong data served is a bug), or the
    /// damage forged them.
    pub fn checksums_honest(self) -> bool {
        !matches!(
            self,
            Damage::EntryField { .. } | Damage::MetaValue { .. } | Damage::MetaField { .. }
        )
    }

    /// The damaged copy of `base`, an image of a database with `seed`.
    pub fn apply(self, base: &[u8], seed: u64) -> Vec<u8> {
        let mut image = base.to_vec();
        match self {
            Damage::Flip { offset, mask } => image[offset] ^= mask,
            Damage::Truncate { len } => image.truncate(len),
            Damage::Garbage {
                offset,
                len,
                seed: garbage,
            } => {
                let end = (offset + len).min(image.len());
                let range = &mut image[offset..end];
                match garbage % 3 {
                    0 => range.fill(0),
                    1 => range.fill(0xFF),
                    _ => SplitMix64::new(garbage).fill_bytes(range),
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
                if entry + byte < image.len() {
                    image[entry + byte] ^= mask;
                }
                reseal_entry(&mut image, seed, entry);
            }
        }
        image
    }
}

/// The byte-level damage the corruption suites apply to `image`, thinned by `every` (1:
/// all of it), in this order: one bit of every meta byte (below [`DATA_START`]) and of
/// every `3 * every`-th data byte flipped, each bit position in turn, and every
/// `11 * every`-th data byte inverted; the image truncated at every `64 * every`-th length
/// and every 509th; and `garbage` ranges, of up to 16 or up to 600 bytes, overwritten at
/// places drawn from `seed`.
pub fn byte_damage(image: &[u8], every: usize, garbage: usize, seed: u64) -> Vec<Damage> {
    let mut out = Vec::new();
    for offset in 0..image.len() {
        if offset < DATA_START || offset % (3 * every) == 0 {
            out.push(Damage::Flip {
                offset,
                mask: 1 << (offset / 3 % 8),
            });
        }
        if offset >= DATA_START && offset % (11 * every) == 0 {
            out.push(Damage::Flip { offset, mask: 0xFF });
        }
    }
    for len in (0..image.len())
        .step_by(64 * every)
        .chain((1..image.len()).step_by(509))
    {
        out.push(Damage::Truncate { len });
    }
    let mut rng = SplitMix64::new(seed);
    for _ in 0..garbage {
        let offset = rng.below_usize(image.len());
        let longest = if rng.coin() { 16 } else { 600 };
        let len = 1 + rng.below_usize(longest);
        out.push(Damage::Garbage {
            offset,
            len,
            seed: rng.next_u64(),
        });
    }
    out
}

/// Every 8-byte field of the meta slot at `slot` from byte 16 to 152 forged to extreme
/// values (0, 1, 7, 1 KiB, 1 MiB, 1 TiB, `u64::MAX / 2`, `u64::MAX`), checksum valid.
pub fn meta_values(slot: usize) -> impl Iterator<Item = Damage> {
    (16..152).step_by(8).flat_map(move |byte| {
        [0, 1, 7, 1024, 1 << 20, 1 << 40, u64::MAX / 2, u64::MAX].map(|value| Damage::MetaValue {
            slot,
            byte,
            value,
        })
    })
}

/// A bit, another bit or all bits of each header byte after the checksum (4..32) of the
/// entry at `entry` changed, checksum recomputed.
pub fn header_damage(entry: usize) -> impl Iterator<Item = Damage> {
    (4..HEADER_LEN).map(move |byte| Damage::EntryField {
        entry,
        byte,
        mask: [0x01, 0x10, 0xFF][byte % 3],
    })
}

/// A short name for an error's kind, for tallies of outcomes.
pub fn error_kind(e: &Error) -> &'static str {
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

// ---- A region with a budget -------------------------------------------------------------

/// The error code of a call refused because the image's budget ran out.
pub const BUDGET_CODE: i32 = -0xB0D;
/// Region calls one image may make: open, the reads, a compaction and a reopen of an
/// image of some tens of KiB need a few thousand.
pub const CALL_BUDGET: u64 = 200_000;

/// A `VecRegion` that refuses every call after [`CALL_BUDGET`] calls: a loop that a
/// damaged image could keep going ends in an error the test reports.
#[derive(Debug)]
pub struct BoundedRegion {
    inner: VecRegion,
    left: AtomicU64,
}

impl BoundedRegion {
    /// A region holding `image`, with room to grow to 1 MiB.
    pub fn new(image: &[u8]) -> Self {
        BoundedRegion {
            inner: VecRegion::from_bytes(image, 1 << 20),
            left: AtomicU64::new(CALL_BUDGET),
        }
    }

    /// A copy of the region's current bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.inner.to_vec()
    }

    /// Whether the budget ran out. A caller may turn the refused call's error into
    /// another (a read of an entry header reports it as `Corrupted`), so this, not the
    /// error, tells a runaway loop.
    pub fn exhausted(&self) -> bool {
        self.left.load(Ordering::Relaxed) == 0
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

/// Fails on an error that means the budget ran out (a runaway loop).
pub fn bounded<T>(what: &str, r: &Result<T, Error>) -> Result<(), String> {
    match r {
        Err(Error::Region(RegionError::Io {
            code: BUDGET_CODE, ..
        })) => Err(format!("{what} ran past {CALL_BUDGET} region calls")),
        _ => Ok(()),
    }
}

// ---- Allocation watch --------------------------------------------------------------------

/// The largest single allocation a damaged image may cause: far above what an image of
/// some tens of KiB needs, far below what trusting a damaged length field would ask for.
pub const ALLOCATION_LIMIT: usize = 16 << 20;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, noting the largest request made inside [`AllocationWatch::watch`]
/// on each thread. A test binary installs it with
/// `#[global_allocator] static WATCH: AllocationWatch = AllocationWatch;`.
#[derive(Debug)]
pub struct AllocationWatch;

impl AllocationWatch {
    /// Runs `f`, noting the size of every allocation it makes on this thread.
    pub fn watch<T>(f: impl FnOnce() -> T) -> T {
        WATCHING.with(|w| w.set(true));
        let result = f();
        WATCHING.with(|w| w.set(false));
        result
    }

    /// The largest allocation noted on this thread so far.
    pub fn largest() -> usize {
        LARGEST.with(Cell::get)
    }
}

fn note(size: usize) {
    if WATCHING.with(Cell::get) {
        LARGEST.with(|l| l.set(l.get().max(size)));
    }
}

// SAFETY: forwards every call to `System` unchanged; the thread-locals it touches are
// const-initialized `Cell`s without destructors, so using them allocates nothing.
unsafe impl GlobalAlloc for AllocationWatch {
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

// ---- The driver ------------------------------------------------------------------------

/// What exercising damaged images came to: the tallies every corruption suite keeps, and
/// the suite's own [`Counters`].
#[derive(Clone, Debug)]
pub struct Outcomes {
    /// Images exercised.
    pub images: u64,
    /// Images that opened.
    pub opened: u64,
    /// Images refused at open, by [`error_kind`].
    pub rejected: BTreeMap<&'static str, u64>,
    /// What the suite counts besides.
    pub counts: Counters,
    /// The largest allocation an image caused.
    pub largest_allocation: usize,
    /// The images that failed: `"{damage:?}: {why}"`.
    pub failures: Vec<String>,
}

impl Outcomes {
    /// Nothing yet, with the suite's counters `kinds`.
    pub fn new(kinds: &'static [Counter]) -> Self {
        Outcomes {
            images: 0,
            opened: 0,
            rejected: BTreeMap::new(),
            counts: Counters::new(kinds),
            largest_allocation: 0,
            failures: Vec::new(),
        }
    }

    /// Notes an image refused at open with `e`.
    pub fn reject(&mut self, e: &Error) {
        *self.rejected.entry(error_kind(e)).or_default() += 1;
    }

    /// The summary line of the outcomes on images of `image_len` bytes: images, opened,
    /// rejected (in all and by kind), the suite's counts, the largest allocation.
    pub fn summary(&self, image_len: usize) -> String {
        format!(
            "{} images ({image_len} bytes each): {} opened, {} rejected at open {:?}; {}; \
             largest allocation {} bytes",
            self.images,
            self.opened,
            self.rejected.values().sum::<u64>(),
            self.rejected,
            self.counts,
            self.largest_allocation
        )
    }

    /// Asserts what every corruption suite asserts: no image failed (the first 20
    /// failures are shown), and none caused an allocation of [`ALLOCATION_LIMIT`] or more.
    ///
    /// # Panics
    ///
    /// If either is not so.
    pub fn assert_sound(&self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} images failed, e.g.:\n{}",
            self.failures.len(),
            self.images,
            self.failures[..self.failures.len().min(20)].join("\n")
        );
        assert!(
            self.largest_allocation < ALLOCATION_LIMIT,
            "an image caused an allocation of {} bytes",
            self.largest_allocation
        );
    }
}

impl AddAssign for Outcomes {
    /// Adds `other`'s tallies to these (the largest allocation is the larger one).
    fn add_assign(&mut self, other: Outcomes) {
        self.images += other.images;
        self.opened += other.opened;
        for (kind, n) in other.rejected {
            *self.rejected.entry(kind).or_default() += n;
        }
        self.counts += &other.counts;
        self.largest_allocation = self.largest_allocation.max(other.largest_allocation);
        self.failures.extend(other.failures);
    }
}

/// The name prefix of [`exercise_all`]'s worker threads.
const WORKER: &str = "corruption-";

/// Runs `exercise` on every damage in `variants`, split over a few threads, and sums what
/// the threads counted into [`Outcomes`] with the counters `kinds`.
///
/// `exercise(damage, slow, outcomes)` opens the damaged image and checks what it serves,
/// tallying into `outcomes`; `slow` is set on every `slow_every`-th image of a thread
/// (the first included), for the slow part (writes, compaction). Its allocations are
/// watched ([`AllocationWatch`]: the binary must install it). An `Err` or a panic is a
/// failure, recorded with the damage; panics are caught, and their default message kept
/// off stderr.
pub fn exercise_all(
    variants: &[Damage],
    kinds: &'static [Counter],
    slow_every: usize,
    exercise: impl Fn(Damage, bool, &mut Outcomes) -> Result<(), String> + Sync,
) -> Outcomes {
    let exercise = &exercise;
    let threads = thread::available_parallelism().map_or(4, |n| n.get().min(8));
    let chunk = variants.len().div_ceil(threads).max(1);
    // Panics of the workers are caught and reported as failures; keep the default output
    // for every other thread.
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let worker = thread::current()
            .name()
            .is_some_and(|n| n.starts_with(WORKER));
        if !worker {
            default_hook(info);
        }
    }));
    let parts: Vec<Outcomes> = thread::scope(|scope| {
        let handles: Vec<_> = variants
            .chunks(chunk)
            .enumerate()
            .map(|(i, part)| {
                thread::Builder::new()
                    .name(format!("{WORKER}{i}"))
                    .spawn_scoped(scope, move || {
                        let mut out = Outcomes::new(kinds);
                        for (n, &damage) in part.iter().enumerate() {
                            out.images += 1;
                            let slow = n % slow_every == 0;
                            let result = AllocationWatch::watch(|| {
                                panic::catch_unwind(AssertUnwindSafe(|| {
                                    exercise(damage, slow, &mut out)
                                }))
                            });
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
                        out.largest_allocation = AllocationWatch::largest();
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
    drop(panic::take_hook());
    let mut total = Outcomes::new(kinds);
    for part in parts {
        total += part;
    }
    total
}
