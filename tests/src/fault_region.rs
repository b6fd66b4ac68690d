//! [`FaultRegion`]: a [`Region`] that remembers what power loss could undo, and fails on
//! command.
//!
//! It keeps two images, after redb's `CrashBackend`:
//!
//! - the **volatile** image, what reads see now (every write applied). It is a
//!   [`VecRegion`], so views are zero-copy and stay valid across growth exactly as the
//!   real regions promise;
//! - the **durable** image, what is guaranteed to survive power loss: bytes covered by a
//!   successful [`sync`](Region::sync), at the length the last sync saw.
//!
//! Between them sits the log of **unsynced writes** since the last covering sync, in
//! order. [`FaultRegion::crash_image`] replays a choice of them over the durable image to
//! produce what a power cut at this instant could leave, following the trait's power-loss
//! model: synced bytes survive; each unsynced byte may hold its old value or a new one;
//! the last write, the one in flight, may be torn.
//!
//! Three ways to fail, for three kinds of test:
//!
//! - **crash images** ([`crash`](FaultRegion::crash), [`crash_image`](FaultRegion::crash_image)):
//!   take the image, reopen it with [`from_image`](FaultRegion::from_image), check
//!   recovery;
//! - a **power-cut budget** ([`set_cut_after`](FaultRegion::set_cut_after)): after `n`
//!   mutations every further mutation fails with [`POWER_CUT_CODE`], so a harness can
//!   stop a workload at every write and sync in turn (sequential-storage's byte-level
//!   power cut, at operation granularity with tearing left to the crash image);
//! - **injected errors** ([`inject`](FaultRegion::inject) and its shorthands): the `n`-th
//!   next write, sync, grow or truncate fails with [`INJECTED_CODE`] (redb's error
//!   countdown), to test error paths while the power stays on.
//!
//! # An exhaustive crash test
//!
//! ```
//! use hamtdb_core::{Region, RegionError};
//! use hamtdb_tests::{CrashMode, FaultRegion};
//!
//! // A workload that stops at the first error, as a storage engine would.
//! fn workload(region: &FaultRegion) -> Result<(), RegionError> {
//!     region.grow(64)?;
//!     // SAFETY: no views alive, single thread.
//!     unsafe { region.write(0, b"first")? };
//!     region.sync(0, 64)?;
//!     // SAFETY: as above.
//!     unsafe { region.write(0, b"second")? };
//!     region.sync(0, 64)
//! }
//!
//! // Count the mutations once, then cut the power before each of them in turn.
//! let probe = FaultRegion::with_capacity(64);
//! workload(&probe)?;
//! let ops = probe.op_count();
//! assert_eq!(ops, 5);
//! for cut in 0..=ops {
//!     let region = FaultRegion::with_capacity(64);
//!     region.set_cut_after(Some(cut));
//!     let _ = workload(&region); // fails at mutation `cut` (unless `cut == ops`)
//!     for mode in (0..16).map(CrashMode::Random).chain([CrashMode::DropAllUnsynced]) {
//!         // A real test reopens the engine on the image and checks recovery. Here: the
//!         // image is empty or 64 bytes, each of the first 6 from one of the states.
//!         let image = region.crash_image(mode);
//!         assert!(image.is_empty() || image.len() == 64);
//!         for (i, byte) in image.iter().take(6).enumerate() {
//!             assert!([0, b"first\0"[i], b"second"[i]].contains(byte));
//!         }
//!         let reopened = FaultRegion::from_image(&image, 64);
//!         assert_eq!(reopened.len(), image.len() as u64);
//!     }
//! }
//! # Ok::<(), RegionError>(())
//! ```
#![allow(unsafe_code)] // implementing the unsafe `Region` trait by forwarding to `VecRegion`

use core::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use hamtdb_core::region::checked_range;
use hamtdb_core::{Region, RegionError, RegionOp, VecRegion};

use crate::rng::SplitMix64;

/// The [`RegionError::Io`] code of an error injected by [`FaultRegion::inject`].
pub const INJECTED_CODE: i32 = -0x1E57; // "test"

/// The [`RegionError::Io`] code of every mutation refused after the power-cut budget of
/// [`FaultRegion::set_cut_after`] ran out.
pub const POWER_CUT_CODE: i32 = -0xDEAD;

/// Capacity of [`FaultRegion::new`]: 1 MiB, the size crash tests are expected to use.
/// Larger regions come from [`FaultRegion::with_capacity`].
pub const DEFAULT_FAULT_CAPACITY: usize = 1 << 20;

/// Which power-loss outcome [`FaultRegion::crash_image`] builds.
///
/// Every mode starts from the durable image. The crash image's length is the durable
/// length or the volatile one, as each mode says: they differ only when the region grew
/// or was truncated since the last sync. Bytes beyond the durable length that no kept
/// write covers read as zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrashMode {
    /// No unsynced write survives, and the length is the durable one: exactly
    /// [`FaultRegion::durable_image`].
    DropAllUnsynced,
    /// Every unsynced write survives, and the length is the volatile one: exactly
    /// [`FaultRegion::volatile_image`].
    KeepAllUnsynced,
    /// Every unsynced write but the last survives; the last (the one in flight) keeps
    /// only its first `keep_bytes` bytes (all of them if `keep_bytes` is at least its
    /// length), the bytes after it keep their earlier values. The length is the volatile
    /// one. With no unsynced write this is [`KeepAllUnsynced`](Self::KeepAllUnsynced).
    TornLast {
        /// How many leading bytes of the last unsynced write reached the medium.
        keep_bytes: usize,
    },
    /// What most media do, chosen by the seed: each unsynced write but the last survives
    /// or not on a fair coin; the last one survives, vanishes, or is torn after a random
    /// number of bytes (a third of the time each); the length is the durable or the
    /// volatile one on a coin.
    Random(u64),
    /// As [`Random`](Self::Random), but a torn last write keeps an arbitrary random
    /// subset of its bytes rather than a prefix (media that reorder sectors or cache
    /// lines within a write).
    RandomTornSubset(u64),
    /// The weakest guarantee the [`Region`] contract allows: every byte of every unsynced
    /// write survives or not on its own coin; the length is the durable or the volatile
    /// one on a coin.
    RandomBytes(u64),
}

/// An operation [`FaultRegion::inject`] can make fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// A write fails with [`INJECTED_CODE`] and changes nothing.
    Write,
    /// A write fails with [`INJECTED_CODE`] after its first `keep_bytes` bytes reached the
    /// volatile image (as unsynced bytes), as a real I/O error part-way through a write
    /// may leave them.
    TornWrite {
        /// How many leading bytes of the failed write are applied.
        keep_bytes: usize,
    },
    /// A sync fails with [`INJECTED_CODE`] and makes nothing durable.
    Sync,
    /// A grow fails with [`INJECTED_CODE`] and changes nothing.
    Grow,
    /// A grow fails with [`RegionError::NoSpace`] (a full disk) and changes nothing.
    GrowNoSpace,
    /// A truncate fails with [`INJECTED_CODE`] and changes nothing.
    Truncate,
}

impl Fault {
    fn op(self) -> RegionOp {
        match self {
            Fault::Write | Fault::TornWrite { .. } => RegionOp::Write,
            Fault::Sync => RegionOp::Sync,
            Fault::Grow | Fault::GrowNoSpace => RegionOp::Grow,
            Fault::Truncate => RegionOp::Truncate,
        }
    }
}

/// How many mutations of each kind a [`FaultRegion`] has let through (calls made while
/// the power was on, whatever their outcome).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OpCounts {
    /// Calls of [`Region::write`].
    pub writes: u64,
    /// Calls of [`Region::sync`].
    pub syncs: u64,
    /// Calls of [`Region::grow`].
    pub grows: u64,
    /// Calls of [`Region::truncate`].
    pub truncates: u64,
}

impl OpCounts {
    /// All mutations together: what [`FaultRegion::op_count`] returns.
    pub fn total(&self) -> u64 {
        self.writes + self.syncs + self.grows + self.truncates
    }

    fn bump(&mut self, op: RegionOp) {
        match op {
            RegionOp::Write => self.writes += 1,
            RegionOp::Sync => self.syncs += 1,
            RegionOp::Grow => self.grows += 1,
            RegionOp::Truncate => self.truncates += 1,
            _ => {}
        }
    }
}

/// A write that a power cut could still undo: `bytes` written at `offset`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UnsyncedWrite {
    /// Where the bytes start.
    pub offset: u64,
    /// The bytes written (only the parts no sync has covered since).
    pub bytes: Vec<u8>,
}

impl UnsyncedWrite {
    fn end(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }
}

/// The mutable bookkeeping, behind one mutex.
#[derive(Debug, Default)]
struct State {
    /// What survives power loss; its length is the durable length.
    durable: Vec<u8>,
    /// Unsynced writes, oldest first. A truncate logs zeros over what it released.
    log: Vec<UnsyncedWrite>,
    counts: OpCounts,
    /// Mutations allowed before the power goes; `None` for no cut.
    cut_after: Option<u64>,
    /// Pending injected faults, each with the number of calls of its kind to let through
    /// first.
    faults: Vec<(Fault, u64)>,
}

impl State {
    /// Admits one mutation of kind `op`: refuses it if the power is cut, else counts it
    /// and returns the injected fault that fires on it, if any.
    fn admit(&mut self, op: RegionOp) -> Result<Option<Fault>, RegionError> {
        if self.cut_after.is_some_and(|cut| self.counts.total() >= cut) {
            return Err(RegionError::Io {
                op,
                code: POWER_CUT_CODE,
            });
        }
        self.counts.bump(op);
        let mut fired = None;
        self.faults.retain_mut(|(fault, countdown)| {
            if fault.op() != op {
                return true;
            }
            if *countdown > 0 {
                *countdown -= 1;
                return true;
            }
            // Two faults due on the same call: the first injected wins, the other is
            // spent too.
            fired.get_or_insert(*fault);
            false
        });
        Ok(fired)
    }
}

fn injected(op: RegionOp) -> RegionError {
    RegionError::Io {
        op,
        code: INJECTED_CODE,
    }
}

/// A [`Region`] for tests: a volatile image that reads see, a durable image that power
/// loss keeps, the unsynced writes between them, and injectable faults.
///
/// See the [module documentation](self) for the model. All methods take `&self`; the
/// bookkeeping sits behind a mutex, so the region is `Send + Sync` like the real ones.
/// Views come straight from the inner [`VecRegion`] and stay valid across growth.
///
/// ```
/// use hamtdb_core::Region;
/// use hamtdb_tests::{CrashMode, FaultRegion};
///
/// let region = FaultRegion::with_capacity(4096);
/// region.grow(16)?;
/// // SAFETY: no views alive, single thread.
/// unsafe { region.write(0, b"durable")? };
/// region.sync(0, 16)?;
/// // SAFETY: as above.
/// unsafe { region.write(0, b"pending")? };
/// assert_eq!(region.view(0, 7)?, b"pending");
/// assert_eq!(&region.crash_image(CrashMode::DropAllUnsynced)[..7], b"durable");
/// assert_eq!(&region.crash_image(CrashMode::TornLast { keep_bytes: 3 })[..7], b"penable");
/// # Ok::<(), hamtdb_core::RegionError>(())
/// ```
pub struct FaultRegion {
    volatile: VecRegion,
    state: Mutex<State>,
}

impl FaultRegion {
    /// An empty region that can grow to [`DEFAULT_FAULT_CAPACITY`] bytes.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_FAULT_CAPACITY)
    }

    /// An empty region that can grow to `capacity` bytes; growing past it fails with
    /// [`RegionError::Full`]. The capacity is allocated (zeroed, lazily on most
    /// platforms) up front, as [`VecRegion::with_capacity`] does.
    pub fn with_capacity(capacity: usize) -> Self {
        FaultRegion {
            volatile: VecRegion::with_capacity(capacity),
            state: Mutex::new(State::default()),
        }
    }

    /// A region holding `image`, all of it durable (as a region reopened after a crash
    /// is), that can grow to `capacity` bytes (at least the image's length).
    pub fn from_image(image: &[u8], capacity: usize) -> Self {
        FaultRegion {
            volatile: VecRegion::from_bytes(image, capacity),
            state: Mutex::new(State {
                durable: image.to_vec(),
                ..State::default()
            }),
        }
    }

    /// The most bytes this region can grow to.
    pub fn capacity(&self) -> usize {
        self.volatile.capacity()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the state from the crash harness.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ---- Images -----------------------------------------------------------------------

    /// A copy of what reads see now.
    pub fn volatile_image(&self) -> Vec<u8> {
        // The lock keeps writes (which all take it) off the bytes while they are copied.
        let _state = self.state();
        self.volatile.to_vec()
    }

    /// A copy of what is guaranteed to survive power loss: the synced bytes, at the
    /// length the last sync saw.
    pub fn durable_image(&self) -> Vec<u8> {
        self.state().durable.clone()
    }

    /// The length the last successful sync made durable (the initial length before any).
    pub fn durable_len(&self) -> u64 {
        self.state().durable.len() as u64
    }

    /// How many unsynced writes a crash could still undo.
    pub fn unsynced_write_count(&self) -> usize {
        self.state().log.len()
    }

    /// The unsynced writes, oldest first (a truncate appears as zeros over the released
    /// bytes). Useful to enumerate [`CrashMode::TornLast`] cut points exhaustively.
    pub fn unsynced_writes(&self) -> Vec<UnsyncedWrite> {
        self.state().log.clone()
    }

    /// An image that power loss at this instant could leave, chosen by `seed`: shorthand
    /// for [`crash_image`](Self::crash_image)`(`[`CrashMode::Random`]`(seed))`. The same
    /// seed on the same state gives the same image.
    pub fn crash(&self, seed: u64) -> Vec<u8> {
        self.crash_image(CrashMode::Random(seed))
    }

    /// The image power loss at this instant leaves under `mode`. The region itself is not
    /// changed: reopen the image with [`from_image`](Self::from_image) (or
    /// [`crash_and_reopen`](Self::crash_and_reopen)).
    pub fn crash_image(&self, mode: CrashMode) -> Vec<u8> {
        let state = self.state();
        let durable_len = state.durable.len();
        let volatile_len = self.len() as usize;
        let seed = match mode {
            CrashMode::Random(seed)
            | CrashMode::RandomTornSubset(seed)
            | CrashMode::RandomBytes(seed) => seed,
            _ => 0,
        };
        let mut rng = SplitMix64::new(seed);
        let len = match mode {
            CrashMode::DropAllUnsynced => durable_len,
            CrashMode::KeepAllUnsynced | CrashMode::TornLast { .. } => volatile_len,
            _ if durable_len == volatile_len => durable_len,
            _ if rng.coin() => durable_len,
            _ => volatile_len,
        };

        let mut image = Vec::with_capacity(len);
        image.extend_from_slice(&state.durable[..durable_len.min(len)]);
        image.resize(len, 0);

        let Some((last, earlier)) = state.log.split_last() else {
            return image;
        };
        match mode {
            CrashMode::DropAllUnsynced => {}
            CrashMode::KeepAllUnsynced => {
                for write in &state.log {
                    apply_prefix(&mut image, write, usize::MAX);
                }
            }
            CrashMode::TornLast { keep_bytes } => {
                for write in earlier {
                    apply_prefix(&mut image, write, usize::MAX);
                }
                apply_prefix(&mut image, last, keep_bytes);
            }
            CrashMode::Random(_) | CrashMode::RandomTornSubset(_) => {
                for write in earlier {
                    if rng.coin() {
                        apply_prefix(&mut image, write, usize::MAX);
                    }
                }
                match rng.below(3) {
                    0 => apply_prefix(&mut image, last, usize::MAX),
                    1 => {}
                    _ if matches!(mode, CrashMode::Random(_)) => {
                        let keep = rng.below_usize(last.bytes.len() + 1);
                        apply_prefix(&mut image, last, keep);
                    }
                    _ => apply_random_subset(&mut image, last, &mut rng),
                }
            }
            CrashMode::RandomBytes(_) => {
                for write in &state.log {
                    apply_random_subset(&mut image, write, &mut rng);
                }
            }
        }
        image
    }

    /// A new region holding [`crash_image`](Self::crash_image)`(mode)`, all durable, with
    /// this region's capacity: the region as it comes back after the power returns.
    pub fn crash_and_reopen(&self, mode: CrashMode) -> FaultRegion {
        FaultRegion::from_image(&self.crash_image(mode), self.capacity())
    }

    // ---- Power cut --------------------------------------------------------------------

    /// Cuts the power once `n_ops` mutations (writes, syncs, grows and truncates, counted
    /// by [`op_count`](Self::op_count) since the region was made) have gone through:
    /// every later mutation fails with [`RegionError::Io`] and [`POWER_CUT_CODE`] and
    /// changes nothing. Reads and views keep working, and so do the crash images, which
    /// are what the test wants at that point. `None` restores the power.
    ///
    /// A harness runs its workload once to learn [`op_count`](Self::op_count), then once
    /// per cut point `0 ..= count` on a fresh region, taking crash images after each.
    /// The refused mutation never happens; the one before it is the last unsynced write,
    /// which the crash modes may tear.
    pub fn set_cut_after(&self, n_ops: Option<u64>) {
        self.state().cut_after = n_ops;
    }

    /// Whether the power-cut budget has run out: the next mutation will be refused.
    pub fn is_power_cut(&self) -> bool {
        let state = self.state();
        state
            .cut_after
            .is_some_and(|cut| state.counts.total() >= cut)
    }

    /// How many mutations (writes, syncs, grows, truncates) went through while the power
    /// was on, whatever their outcome; refused ones are not counted.
    pub fn op_count(&self) -> u64 {
        self.state().counts.total()
    }

    /// [`op_count`](Self::op_count) split by kind.
    pub fn op_counts(&self) -> OpCounts {
        self.state().counts
    }

    // ---- Injected errors --------------------------------------------------------------

    /// Makes an operation fail: the next `after` calls of the fault's kind (write, sync,
    /// grow or truncate) succeed as usual, the one after fails as `fault` says, and later
    /// ones succeed again. `after = 0` fails the very next call. Several faults may be
    /// pending at once, each counting down on its own.
    pub fn inject(&self, fault: Fault, after: u64) {
        self.state().faults.push((fault, after));
    }

    /// Fails the write after the next `n` writes, applying nothing:
    /// [`inject`](Self::inject)`(`[`Fault::Write`]`, n)`.
    pub fn fail_write_at(&self, n: u64) {
        self.inject(Fault::Write, n);
    }

    /// Fails the write after the next `n` writes once its first `keep_bytes` bytes reached
    /// the volatile image: [`inject`](Self::inject)`(`[`Fault::TornWrite`]`, n)`.
    pub fn fail_torn_write_at(&self, n: u64, keep_bytes: usize) {
        self.inject(Fault::TornWrite { keep_bytes }, n);
    }

    /// Fails the sync after the next `n` syncs, making nothing durable:
    /// [`inject`](Self::inject)`(`[`Fault::Sync`]`, n)`.
    pub fn fail_sync_at(&self, n: u64) {
        self.inject(Fault::Sync, n);
    }

    /// Fails the grow after the next `n` grows with an I/O error:
    /// [`inject`](Self::inject)`(`[`Fault::Grow`]`, n)`.
    pub fn fail_grow_at(&self, n: u64) {
        self.inject(Fault::Grow, n);
    }

    /// Fails the grow after the next `n` grows with [`RegionError::NoSpace`]:
    /// [`inject`](Self::inject)`(`[`Fault::GrowNoSpace`]`, n)`.
    pub fn fail_grow_with_no_space(&self, n: u64) {
        self.inject(Fault::GrowNoSpace, n);
    }

    /// Fails the truncate after the next `n` truncates:
    /// [`inject`](Self::inject)`(`[`Fault::Truncate`]`, n)`.
    pub fn fail_truncate_at(&self, n: u64) {
        self.inject(Fault::Truncate, n);
    }

    /// Drops every pending injected fault and restores the power. The images, the
    /// unsynced writes and the operation counts are kept.
    pub fn reset_faults(&self) {
        let mut state = self.state();
        state.faults.clear();
        state.cut_after = None;
    }
}

/// Copies the first `keep` bytes of `write` into `image`, clipped to its length.
fn apply_prefix(image: &mut [u8], write: &UnsyncedWrite, keep: usize) {
    let Ok(start) = usize::try_from(write.offset) else {
        return;
    };
    let Some(dest) = image.get_mut(start..) else {
        return;
    };
    let n = keep.min(write.bytes.len()).min(dest.len());
    dest[..n].copy_from_slice(&write.bytes[..n]);
}

/// The part `from .. to` (inside it) of `write`, or nothing if that is empty.
fn piece(write: &UnsyncedWrite, from: u64, to: u64) -> Option<UnsyncedWrite> {
    let lo = usize::try_from(from.checked_sub(write.offset)?).ok()?;
    let hi = usize::try_from(to.checked_sub(write.offset)?).ok()?;
    let bytes = write.bytes.get(lo..hi).filter(|b| !b.is_empty())?;
    Some(UnsyncedWrite {
        offset: from,
        bytes: bytes.to_vec(),
    })
}

/// Copies each byte of `write` into `image` on its own coin.
fn apply_random_subset(image: &mut [u8], write: &UnsyncedWrite, rng: &mut SplitMix64) {
    let Ok(start) = usize::try_from(write.offset) else {
        return;
    };
    let Some(dest) = image.get_mut(start..) else {
        return;
    };
    // One draw per 64 bytes; the draws happen whether or not the bytes are clipped, so
    // the stream does not depend on the image's length beyond this write.
    for (dest, src) in dest.chunks_mut(64).zip(write.bytes.chunks(64)) {
        let mask = rng.next_u64();
        for (i, (d, &s)) in dest.iter_mut().zip(src).enumerate() {
            if mask >> i & 1 == 1 {
                *d = s;
            }
        }
    }
}

impl Default for FaultRegion {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FaultRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("FaultRegion")
            .field("len", &self.len())
            .field("durable_len", &state.durable.len())
            .field("capacity", &self.capacity())
            .field("unsynced_writes", &state.log.len())
            .field("counts", &state.counts)
            .field("cut_after", &state.cut_after)
            .field("pending_faults", &state.faults)
            .finish()
    }
}

// SAFETY: (1) views come from the inner `VecRegion`, which never moves its block while
// `self` lives and keeps its own views valid across `grow`; nothing here writes to the
// volatile bytes except `write` (on the caller's range) and `truncate` (on released
// bytes), both under the caller's contract. (2) `read`, `view` and `write` are bounds
// checked by the `VecRegion` against the same length `len` reports. (3) `write` forwards
// `data` (or a prefix of it, for an injected torn write) to the `VecRegion` at `offset`.
unsafe impl Region for FaultRegion {
    fn len(&self) -> u64 {
        self.volatile.len()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), RegionError> {
        self.volatile.read(offset, buf)
    }

    fn view(&self, offset: u64, len: usize) -> Result<&[u8], RegionError> {
        self.volatile.view(offset, len)
    }

    unsafe fn write(&self, offset: u64, data: &[u8]) -> Result<(), RegionError> {
        let mut state = self.state();
        let fault = state.admit(RegionOp::Write)?;
        let in_bounds = checked_range(RegionOp::Write, offset, data.len() as u64, self.len());
        let data = match fault {
            None => {
                in_bounds?;
                data
            }
            // A torn write leaves its prefix only if the write was valid at all.
            Some(Fault::TornWrite { keep_bytes }) if in_bounds.is_ok() => {
                &data[..keep_bytes.min(data.len())]
            }
            Some(_) => return Err(injected(RegionOp::Write)),
        };
        // SAFETY: the caller keeps `Region::write`'s contract for `offset .. offset +
        // data.len()`, which covers this (possibly shorter) range; the only other views of
        // the volatile bytes we take (`sync`, `volatile_image`) live under the lock we hold.
        unsafe { self.volatile.write(offset, data)? };
        if !data.is_empty() {
            state.log.push(UnsyncedWrite {
                offset,
                bytes: data.to_vec(),
            });
        }
        match fault {
            None => Ok(()),
            Some(_) => Err(injected(RegionOp::Write)),
        }
    }

    fn grow(&self, min_len: u64) -> Result<u64, RegionError> {
        let mut state = self.state();
        match state.admit(RegionOp::Grow)? {
            None => self.volatile.grow(min_len),
            Some(Fault::GrowNoSpace) => Err(RegionError::no_space(min_len)),
            Some(_) => Err(injected(RegionOp::Grow)),
        }
    }

    unsafe fn truncate(&self, new_len: u64) -> Result<u64, RegionError> {
        let mut state = self.state();
        if state.admit(RegionOp::Truncate)?.is_some() {
            return Err(injected(RegionOp::Truncate));
        }
        let old_len = self.len();
        // SAFETY: the caller keeps `Region::truncate`'s contract (no views of the released
        // bytes, no concurrent use of the region), which is `VecRegion::truncate`'s.
        let len = unsafe { self.volatile.truncate(new_len)? };
        if len < old_len {
            // The released bytes may come back zeroed or as they were: an unsynced write
            // of zeros says exactly that.
            state.log.push(UnsyncedWrite {
                offset: len,
                bytes: vec![0; (old_len - len) as usize],
            });
        }
        Ok(len)
    }

    fn sync(&self, offset: u64, len: u64) -> Result<(), RegionError> {
        let mut state = self.state();
        if state.admit(RegionOp::Sync)?.is_some() {
            return Err(injected(RegionOp::Sync));
        }
        let region_len = self.len();
        let range = checked_range(RegionOp::Sync, offset, len, region_len)?;
        // The volatile bytes are not written while we hold the lock.
        let synced = self.volatile.view(offset, range.len())?;
        let State { durable, log, .. } = &mut *state;

        // The length becomes durable: grown bytes join as zeros (unsynced writes to them
        // stay in the log), released bytes leave.
        durable.resize(region_len as usize, 0);
        durable[range.clone()].copy_from_slice(synced);

        // Keep only the unsynced parts of each logged write: outside the synced range,
        // and inside the (now durable) length.
        // Linear in the log: each write is kept, dropped or split in at most two.
        let (start, end) = (range.start as u64, range.end as u64);
        let mut kept = Vec::with_capacity(log.len());
        for write in log.drain(..) {
            let (w_start, w_end) = (write.offset, write.end());
            let untouched = start == end || w_end <= start || w_start >= end;
            if untouched && w_end <= region_len {
                kept.push(write);
            } else if untouched {
                kept.extend(piece(&write, w_start, region_len));
            } else {
                kept.extend(piece(&write, w_start, start));
                kept.extend(piece(&write, end, w_end.min(region_len)));
            }
        }
        *log = kept;
        Ok(())
    }
}
