//! [`MappedFile`]: a locked file, its memory map and the length that bounds every access.
//! This is the only module of the crate that turns raw memory into references or writes
//! it; elsewhere `unsafe` appears only where the `Region` trait demands it, to forward its
//! contract here.
//!
//! # Safety
//!
//! A memory map lets Rust read a file through `&[u8]`, and Rust assumes the bytes under a
//! shared reference neither change nor vanish while it lives. Three things could break
//! that; this module closes each off.
//!
//! - **Someone else changes the file.** A write or truncation by another process would
//!   change or unmap bytes under a live reference. memmap2 marks its file-backed map
//!   constructors `unsafe` "because of the potential for *Undefined Behavior* (UB) using
//!   the map if the underlying file is subsequently modified, in or out of process"; its
//!   `MmapRaw` constructor is safe only because it hands out raw pointers, and turning
//!   those into references is what this module does. [`MappedFile::open`] takes a
//!   `flock` before it maps anything (exclusive for a writable map, shared for a
//!   read-only one) and holds it until the value is dropped, because the lock belongs to
//!   the open file description that the value owns. Every hamtdb process takes that lock,
//!   so no cooperating process can write the file while it is mapped. A process that
//!   ignores advisory locks (a text editor, `truncate(1)`, `dd`) can still break this; no
//!   library can stop it, and the docs of [`FileRegion::open`](crate::FileRegion::open)
//!   say so.
//! - **The map moves.** Growing a map by re-mapping may move it (`mremap` with
//!   `MREMAP_MAYMOVE`, or `munmap` then `mmap`), leaving every reference into the old
//!   range dangling; memmap2's `MmapMut::remap` takes `&mut self` and is `unsafe` for
//!   that reason. Instead the address space is reserved up front, as LMDB does: the file
//!   is mapped `MAP_SHARED` with a length, the *reservation*, larger than the file, which
//!   POSIX allows ("The `mmap()` function can be used to map a region of memory that is
//!   larger than the current size of the object") and memmap2 passes through when given
//!   `MmapOptions::len` (it consults the file's size only when no length is set). Growing
//!   extends the file inside the mapped range, so the map never moves while `&self` is
//!   borrowed. Only [`MappedFile::remap`] replaces it, and it takes `&mut self`, which
//!   proves that no view is alive.
//! - **SIGBUS beyond the end of the file.** Pages of the reservation past the end of the
//!   file have nothing behind them: touching them raises SIGBUS (memmap2's `remap` docs
//!   call an access beyond the end of the file UB), and so may writing a page whose
//!   blocks cannot be allocated on a full disk. Every access is checked against `len`,
//!   and `len` never exceeds the file's length: it is raised only after the file has been
//!   extended (checked with `fstat`, not trusted) and lowered before the file is
//!   truncated. Growth allocates the blocks (`fallocate`) before the new length is
//!   published, so a full disk is an error from `grow`, not a fault on a later write.
//!   (Copy-on-write filesystems such as btrfs or ZFS may still need new blocks for an
//!   overwrite; there `fallocate` narrows the window without closing it.)
//!
//! Within the process, the bytes under a view change only through [`MappedFile::write`]
//! or [`MappedFile::shrink`], which are `unsafe` with the preconditions of
//! [`Region::write`](hamtdb_core::Region::write) and
//! [`Region::truncate`](hamtdb_core::Region::truncate).
#![allow(unsafe_code)]

use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use hamtdb_core::RegionError;
use hamtdb_core::RegionOp;
use hamtdb_core::region::checked_range;
use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{FlockOperation, fdatasync, flock, ftruncate};
use rustix::io::Errno;

use crate::error::OpenError;

/// The operating system's page size in bytes.
pub(crate) fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// `n` rounded up to a whole number of pages, or `None` on overflow.
pub(crate) fn round_up_to_page(n: u64) -> Option<u64> {
    n.checked_next_multiple_of(page_size())
}

/// The error number of `err`, or `EIO` for errors that carry none.
pub(crate) fn error_code(err: &io::Error) -> i32 {
    err.raw_os_error()
        .unwrap_or_else(|| Errno::IO.raw_os_error())
}

fn io_error(op: RegionOp, err: &io::Error) -> RegionError {
    RegionError::Io {
        op,
        code: error_code(err),
    }
}

/// Locks a mutex, ignoring poisoning: every step done under these leaves their
/// invariants intact, so a panic in one holder harms no other.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A file locked for this process and mapped with an address-space reservation.
///
/// Invariant: `len <= map.len()` (the reservation), and the file is at least `len` bytes
/// long. Reads, views and writes stay below `len`.
pub(crate) struct MappedFile {
    // Declared before `file` so the map goes before the lock is released.
    map: MmapRaw,
    file: File,
    len: AtomicU64,
    writable: bool,
    /// Serializes changes of the length.
    resize: Mutex<()>,
    /// How many times the length has changed; bumped before each new length is
    /// published, so a reader that sees the new length also sees the bump.
    len_changes: AtomicU64,
    /// A value of `len_changes` read before an `fdatasync` that then succeeded: the
    /// length as of that change is durable.
    len_synced: AtomicU64,
    /// Serializes the `fdatasync` calls that make a length change durable, so that
    /// concurrent `sync_range` calls share one.
    sync_lock: Mutex<()>,
    /// One past the last byte written through this value, or where the file's data ended
    /// at open ([`data_end`]): bytes at or past it have not been written since they were
    /// allocated, so they read as zero. Raised only under `zeroed`.
    touched: AtomicU64,
    /// What [`zero_ahead`](Self::zero_ahead) did last. Its lock orders raising `touched`
    /// against pre-zeroing.
    zeroed: Mutex<ZeroAhead>,
    /// Writes go through `pwrite` on the file, syncs are `fdatasync` (see
    /// `FileRegionOptions::pwrite`).
    file_writes: bool,
}

/// The state of [`MappedFile::zero_ahead`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ZeroAhead {
    /// The end of the space above `touched` already written with zeros.
    end: u64,
    /// `touched` at the last sync: how far the writes between two syncs reached tells a
    /// small commit from a large one.
    touched_at_sync: u64,
}

/// How far past the last written byte [`MappedFile::zero_ahead`] keeps the file written
/// with zeros, and (half of it) how close the writes may come before it writes more.
///
/// Growth allocates blocks with `fallocate`, which on ext4 and XFS leaves them
/// *unwritten*: the first sync of a write into such a block must also convert the extent
/// and write that metadata. For small commits that are two extra synchronous metadata
/// writes per commit (traced on ext4: a durable single put took ~370 µs when it touched
/// a new block, ~200 µs when not). Zeros written ahead and synced together with one
/// commit convert a whole megabyte at once.
const ZERO_AHEAD: u64 = 1 << 20;

/// How often a refused lock is tried again, and the pause between tries (about 50 ms in
/// all: far longer than a fork-to-exec window, short enough for a real conflict).
const LOCK_RETRIES: u32 = 10;
const LOCK_RETRY_PAUSE: core::time::Duration = core::time::Duration::from_millis(5);

impl MappedFile {
    /// Locks `file` (exclusively if `writable`, shared otherwise, without waiting) and
    /// maps `reservation` bytes of address space over it, or the file's length rounded up
    /// to pages if that is more.
    ///
    /// `file` must have been opened for reading, and for writing too if `writable`.
    pub(crate) fn open(file: File, reservation: u64, writable: bool) -> Result<Self, OpenError> {
        let operation = if writable {
            FlockOperation::NonBlockingLockExclusive
        } else {
            FlockOperation::NonBlockingLockShared
        };
        // flock belongs to the open file description, and a child that another thread
        // forks holds a copy of every descriptor until its `exec` closes them. A lock
        // released just before such a fork stays held for that instant, so a refusal is
        // retried a few times before it is reported.
        let mut attempt = 0;
        loop {
            match flock(&file, operation) {
                Ok(()) => break,
                Err(Errno::WOULDBLOCK) if attempt < LOCK_RETRIES => {
                    attempt += 1;
                    std::thread::sleep(LOCK_RETRY_PAUSE);
                }
                Err(Errno::WOULDBLOCK) => return Err(OpenError::Locked),
                Err(err) => return Err(OpenError::Io(err.into())),
            }
        }
        // Read the length only under the lock: before it, a writer may still be growing.
        let len = file.metadata()?.len();
        let map = map_file(&file, reservation_bytes(reservation, len)?, writable)?;
        let touched = if writable { data_end(&file, len) } else { len };
        Ok(MappedFile {
            map,
            file,
            len: AtomicU64::new(len),
            writable,
            resize: Mutex::new(()),
            len_changes: AtomicU64::new(0),
            len_synced: AtomicU64::new(0),
            sync_lock: Mutex::new(()),
            touched: AtomicU64::new(touched),
            zeroed: Mutex::new(ZeroAhead {
                end: 0,
                touched_at_sync: touched,
            }),
            file_writes: false,
        })
    }

    /// Writes through `pwrite` on the file instead of the map when `on`, and syncs with
    /// `fdatasync`.
    pub(crate) fn with_file_writes(mut self, on: bool) -> Self {
        self.file_writes = on;
        self
    }

    /// The current length in bytes.
    #[inline]
    pub(crate) fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// The mapped address space in bytes: the most the length can grow to.
    pub(crate) fn reservation(&self) -> u64 {
        self.map.len() as u64
    }

    pub(crate) fn is_writable(&self) -> bool {
        self.writable
    }

    /// The address of byte `offset` of the map; dereferenced only for offsets checked
    /// against `len`, where it stays inside the mapping.
    #[inline]
    fn at(&self, offset: usize) -> *mut u8 {
        self.map.as_mut_ptr().wrapping_add(offset)
    }

    /// Borrows `len` bytes at `offset`, checked against the current length.
    #[inline]
    pub(crate) fn view(&self, offset: u64, len: usize) -> Result<&[u8], RegionError> {
        self.bytes(RegionOp::View, offset, len)
    }

    /// Borrows `len` bytes at `offset` for `op` (which an out-of-bounds error names),
    /// checked against the current length.
    #[inline]
    pub(crate) fn bytes(
        &self,
        op: RegionOp,
        offset: u64,
        len: usize,
    ) -> Result<&[u8], RegionError> {
        let range = checked_range(op, offset, len as u64, self.len())?;
        // SAFETY: `slice::from_raw_parts` needs the pointer valid for reads of
        // `range.len()` initialized bytes inside one allocation, for the whole borrow, and
        // the bytes unmodified meanwhile.
        // (1) The range lies below `len`, so inside the mapping, which is one allocation
        // that is neither moved nor unmapped while `&self` is borrowed (only
        // `remap(&mut self)` and drop replace it); its length is at most `isize::MAX`
        // (memmap2 refuses longer maps).
        // (2) The range lies below the end of the file (the invariant of `len`), so the
        // pages are backed and initialized (file contents, or zeros for fresh space). The
        // file cannot shrink under the view: only `shrink` lowers the length, and its
        // contract forbids views of what it releases; other processes are kept off the
        // file by the lock taken in `open`.
        // (3) Nobody writes these bytes while the slice lives: `write` and `shrink` are
        // `unsafe` with exactly that precondition.
        Ok(unsafe { core::slice::from_raw_parts(self.at(range.start), range.len()) })
    }

    /// Copies `data` to `offset`, checked against the current length.
    ///
    /// # Safety
    ///
    /// 1. No view returned by [`view`](Self::view) that overlaps
    ///    `offset .. offset + data.len()` is alive during or after this call.
    /// 2. No other thread reads, views or writes those bytes while this call runs.
    pub(crate) unsafe fn write(&self, offset: u64, data: &[u8]) -> Result<(), RegionError> {
        if !self.writable {
            return Err(RegionError::ReadOnly);
        }
        let range = checked_range(RegionOp::Write, offset, data.len() as u64, self.len())?;
        let end = range.end as u64;
        let touched = self.touched.load(Ordering::Acquire);
        if end > touched {
            if round_up_to_page(touched).is_some_and(|page_end| end <= page_end) {
                // Within the page `touched` is in: `zero_ahead` starts at the next page
                // boundary at the earliest, and raises like this one never move that
                // boundary, so no lock is needed (bulk writes take it once a page).
                self.touched.fetch_max(end, Ordering::AcqRel);
            } else {
                // Under the lock, so that a concurrent `zero_ahead` either sees the new
                // end and starts past it, or finishes its zeros before these bytes are
                // written.
                let _zeroed = lock(&self.zeroed);
                self.touched.fetch_max(end, Ordering::AcqRel);
            }
        }
        if self.file_writes {
            // The page cache under the map is the file's: views see these bytes. Below
            // `len`, so the file does not grow.
            return self
                .file
                .write_all_at(data, offset)
                .map_err(|err| io_error(RegionOp::Write, &err));
        }
        // SAFETY: `ptr::copy_nonoverlapping` needs the source valid for reads and the
        // destination valid for writes of `data.len()` bytes, and the two not to overlap.
        // (1) The source is a live slice of that length.
        // (2) The destination lies below `len`: inside the mapping (mapped writable,
        // `MAP_SHARED`, since `writable`), and backed by the file (the invariant of
        // `len`); no other thread touches it during the copy (caller's condition 2).
        // (3) `data` cannot overlap the destination: that would make it a live borrow of
        // the bytes being written, which the caller's condition 1 rules out.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), self.at(range.start), data.len()) };
        Ok(())
    }

    /// Lengthens the region. Under the resize lock, `allocate` gets the file and the
    /// current length, extends the file (allocating its blocks) and returns the length to
    /// publish; a length not above the current one changes nothing.
    ///
    /// The new length is published only if it fits the reservation and the file really is
    /// that long (checked with `fstat`), so a mistake in `allocate` is an error, never an
    /// access beyond the file.
    pub(crate) fn extend(
        &self,
        allocate: impl FnOnce(&File, u64) -> Result<u64, RegionError>,
    ) -> Result<u64, RegionError> {
        if !self.writable {
            return Err(RegionError::ReadOnly);
        }
        let _resize = lock(&self.resize);
        let old = self.len();
        let new = allocate(&self.file, old)?;
        if new <= old {
            return Ok(old);
        }
        let file_len = self
            .file
            .metadata()
            .map_err(|err| io_error(RegionOp::Grow, &err))?
            .len();
        if new > self.reservation() || new > file_len {
            // Best effort: the caller is told the length did not change, so neither should
            // the file.
            let _ = ftruncate(&self.file, old);
            return Err(RegionError::Io {
                op: RegionOp::Grow,
                code: Errno::INVAL.raw_os_error(),
            });
        }
        self.len_changes.fetch_add(1, Ordering::Release);
        self.len.store(new, Ordering::Release);
        Ok(new)
    }

    /// Cuts the file and the region to `new_len` bytes, if that is shorter; returns the
    /// new length.
    ///
    /// # Safety
    ///
    /// 1. No view of any byte at or after `new_len` is alive during or after this call.
    /// 2. No other thread reads, views or writes those bytes while this call runs.
    pub(crate) unsafe fn shrink(&self, new_len: u64) -> Result<u64, RegionError> {
        if !self.writable {
            return Err(RegionError::ReadOnly);
        }
        let _resize = lock(&self.resize);
        let old = self.len();
        if new_len >= old {
            return Ok(old);
        }
        // Lower the bound before the file shrinks, so no checked access can reach the
        // released pages at any instant.
        self.len_changes.fetch_add(1, Ordering::Release);
        self.len.store(new_len, Ordering::Release);
        {
            // Bytes at or past `new_len` are released; grown again, they read as zero.
            let mut zeroed = lock(&self.zeroed);
            zeroed.end = zeroed.end.min(new_len);
            zeroed.touched_at_sync = zeroed.touched_at_sync.min(new_len);
            self.touched.fetch_min(new_len, Ordering::AcqRel);
        }
        if let Err(err) = ftruncate(&self.file, new_len) {
            // The file kept its length (or, at worst, shrank part way): restore the
            // length the file still covers.
            if let Ok(meta) = self.file.metadata() {
                self.len.store(old.min(meta.len()), Ordering::Release);
            }
            return Err(RegionError::Io {
                op: RegionOp::Truncate,
                code: err.raw_os_error(),
            });
        }
        Ok(new_len)
    }

    /// Maps the file again with a new reservation (at least the current length); returns
    /// it. No `unsafe` is needed: `&mut self` proves that no view of the old map is alive,
    /// so dropping it cannot leave a reference dangling.
    pub(crate) fn remap(&mut self, reservation: u64) -> io::Result<u64> {
        let bytes = reservation_bytes(reservation, self.len())?;
        // Map first, so that on failure the old map stays in place.
        self.map = map_file(&self.file, bytes, self.writable)?;
        Ok(self.reservation())
    }

    /// A durability barrier for `offset .. offset + len` and for the region's length.
    ///
    /// If the length changed since the last `fdatasync`, or [`zero_ahead`](Self::zero_ahead)
    /// just wrote zeros, this is one `fdatasync`: it writes every dirty page of the file,
    /// the range included, and the size, which `msync` on a range does not promise to.
    /// Otherwise it is one `msync(MS_SYNC)` of the pages covering the range.
    pub(crate) fn sync_range(&self, offset: u64, len: u64) -> Result<(), RegionError> {
        // Read the length first: a grow bumps `len_changes` before publishing its length,
        // so if this range is inside a new length, the bump is visible below.
        let range = checked_range(RegionOp::Sync, offset, len, self.len())?;
        if !self.writable {
            return Ok(());
        }
        if self.zero_ahead() || self.file_writes {
            return self.datasync();
        }
        let changes = self.len_changes.load(Ordering::Acquire);
        if self.len_synced.load(Ordering::Acquire) < changes {
            let _sync = lock(&self.sync_lock);
            // Another caller may have synced the length while this one waited; its
            // `fdatasync` may have started before our bytes were written, so the range
            // still needs its own `msync` below.
            if self.len_synced.load(Ordering::Acquire) < changes {
                return self.datasync();
            }
        }
        self.map
            .flush_range(range.start, range.len())
            .map_err(|err| io_error(RegionOp::Sync, &err))
    }

    /// Writes zeros over the space just past the last written byte, when the writes
    /// since the last sync were small (under a quarter of [`ZERO_AHEAD`]) and have come
    /// within half of `ZERO_AHEAD` of the zeros written before (or past them), so that
    /// this sync turns that space into written extents in one go; returns whether it
    /// wrote any. The zeros end at `ZERO_AHEAD` past the last written byte, or at the
    /// length. A large commit pays one extent conversion for many bytes anyway; zeros
    /// ahead of it would only be written twice.
    ///
    /// The bytes it writes lie at or past `touched`: nothing has written them since they
    /// were allocated, so they read as zero already and no snapshot reaches them; their
    /// contents do not change. A write that would reach them raises `touched` under the
    /// `zeroed` lock first, so it waits for these zeros and lands after them. The resize
    /// lock is held so that the file cannot shrink meanwhile (a write past the end of the
    /// file would lengthen it).
    fn zero_ahead(&self) -> bool {
        let _resize = lock(&self.resize);
        let mut zeroed = lock(&self.zeroed);
        let touched = self.touched.load(Ordering::Acquire);
        let advance = touched.saturating_sub(zeroed.touched_at_sync);
        zeroed.touched_at_sync = touched;
        if advance > ZERO_AHEAD / 4 || touched.saturating_add(ZERO_AHEAD / 2) <= zeroed.end {
            return false;
        }
        let Some(start) = round_up_to_page(touched) else {
            return false;
        };
        let start = start.max(zeroed.end);
        let end = touched.saturating_add(ZERO_AHEAD).min(self.len());
        if start >= end {
            return false;
        }
        // Only a speed-up: if it fails (a full copy-on-write filesystem), the zeros that
        // did land change nothing, and the range is not tried again.
        let written = write_zeros(&self.file, start, end, page_size()).is_ok();
        zeroed.end = end;
        written
    }

    /// `fdatasync`: every byte written so far, and the length, become durable.
    pub(crate) fn sync_all(&self) -> Result<(), RegionError> {
        if !self.writable {
            return Ok(());
        }
        self.datasync()
    }

    fn datasync(&self) -> Result<(), RegionError> {
        let changes = self.len_changes.load(Ordering::Acquire);
        datasync_file(&self.file).map_err(|err| RegionError::Io {
            op: RegionOp::Sync,
            code: err.raw_os_error(),
        })?;
        self.len_synced.fetch_max(changes, Ordering::AcqRel);
        Ok(())
    }
}

/// Where the file's data ends, in whole pages and at most `len`: at and past it the file
/// has only holes and unwritten (allocated, never written) extents, which read as zero.
/// `len` when the system cannot tell. A file grown with `fallocate` by an earlier open
/// keeps its unwritten tail, which [`MappedFile::zero_ahead`] can then write in advance.
///
/// A binary search over `lseek(SEEK_DATA)`: no data at or past `x` (`ENXIO`) holds for
/// every `x` past some point, and this finds the first such page. Page-cache pages count
/// as data, and so does any error, so the answer errs towards `len`.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn data_end(file: &File, len: u64) -> u64 {
    use rustix::fs::{SeekFrom, seek};
    let page = page_size();
    let no_data_from = |x: u64| matches!(seek(file, SeekFrom::Data(x)), Err(Errno::NXIO));
    match seek(file, SeekFrom::Data(0)) {
        Err(Errno::NXIO) => return 0,
        Ok(_) => {}
        Err(_) => return len,
    }
    // In pages: no data from `hi` on (it is at or past the end), data from `lo` on.
    let (mut lo, mut hi) = (0, len.div_ceil(page));
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if no_data_from(mid * page) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    (hi * page).min(len)
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn data_end(_file: &File, len: u64) -> u64 {
    len
}

/// Writes zeros from `start` to `end` with `pwrite` calls of at most `chunk` bytes (at
/// most 64 KiB). The page cache sizes the folios it creates for a write by the write's
/// length, so page-sized calls keep later small commits from dirtying large folios.
pub(crate) fn write_zeros(file: &File, start: u64, end: u64, chunk: u64) -> io::Result<()> {
    const MAX_CHUNK: u64 = 64 << 10;
    static ZEROS: [u8; MAX_CHUNK as usize] = [0; MAX_CHUNK as usize];
    let chunk = chunk.clamp(1, MAX_CHUNK);
    let mut at = start;
    while at < end {
        // Up to the next multiple of `chunk`, so the calls stay aligned.
        let n = (end - at).min(chunk - at % chunk);
        // `n <= MAX_CHUNK`, which fits a usize.
        file.write_all_at(&ZEROS[..n as usize], at)?;
        at += n;
    }
    Ok(())
}

#[cfg(not(target_vendor = "apple"))]
fn datasync_file(file: &File) -> rustix::io::Result<()> {
    fdatasync(file)
}

/// Apple's `fsync` does not reach the medium; `F_FULLFSYNC` does.
#[cfg(target_vendor = "apple")]
fn datasync_file(file: &File) -> rustix::io::Result<()> {
    rustix::fs::fcntl_fullfsync(file)
}

/// The reservation to map: at least `requested`, the file's length and one page, in whole
/// pages, and addressable as one Rust slice (at most `isize::MAX` bytes).
fn reservation_bytes(requested: u64, file_len: u64) -> io::Result<usize> {
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the reservation does not fit in the address space",
        )
    };
    let bytes = round_up_to_page(requested.max(file_len).max(1)).ok_or_else(too_big)?;
    usize::try_from(bytes)
        .ok()
        .filter(|&n| isize::try_from(n).is_ok())
        .ok_or_else(too_big)
}

/// Maps `reservation` bytes of `file`, `MAP_SHARED`, from offset zero. memmap2 takes the
/// given length as is (it consults the file's size only when no length is set), so the
/// map may extend past the end of the file. `MAP_NORESERVE` asks the kernel not to
/// account swap for it; shared file maps are not accounted on Linux anyway, so this only
/// matters elsewhere.
///
/// A writable map is advised `MADV_RANDOM`: a fault then reads (or zero-fills) one page
/// instead of reading ahead into a large folio, and the page cache keeps the file in
/// 4 KiB folios. That matters for durable commits: the kernel tracks dirtiness per
/// folio, so one byte written into a 2 MiB folio made by readahead dirties, and the next
/// sync writes, all 2 MiB (traced at 1,000,000 keys: single-put commits writing 1–2 MiB
/// requests).
fn map_file(file: &File, reservation: usize, writable: bool) -> io::Result<MmapRaw> {
    let mut options = MmapOptions::new();
    options.len(reservation).no_reserve_swap();
    if writable {
        let map = options.map_raw(file)?;
        // Advice only: where it is refused, commits write more, nothing else changes.
        let _ = map.advise(memmap2::Advice::Random);
        Ok(map)
    } else {
        options.map_raw_read_only(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_reservation_larger_than_the_file() {
        let file = tempfile::tempfile().unwrap();
        file.set_len(page_size()).unwrap();
        let map = MappedFile::open(file, 1 << 40, true).unwrap();
        assert_eq!(map.reservation(), 1 << 40);
        assert_eq!(map.len(), page_size());
        // SAFETY: no views alive, single thread.
        unsafe { map.write(10, b"abc").unwrap() };
        assert_eq!(map.view(10, 3).unwrap(), b"abc");
        // Past the file's end the reservation is mapped but refused, never touched.
        assert!(matches!(
            map.view(page_size(), 1),
            Err(RegionError::OutOfBounds { .. })
        ));
    }

    #[test]
    fn extend_refuses_a_length_the_file_does_not_have() {
        let file = tempfile::tempfile().unwrap();
        let map = MappedFile::open(file, 1 << 20, true).unwrap();
        // `allocate` claims a length without extending the file: not published.
        assert!(matches!(
            map.extend(|_, _| Ok(4096)),
            Err(RegionError::Io {
                op: RegionOp::Grow,
                ..
            })
        ));
        assert_eq!(map.len(), 0);
        // Nor beyond the reservation, even if the file is that long.
        let grown = map.extend(|file, _| {
            file.set_len(2 << 20).unwrap();
            Ok(2 << 20)
        });
        assert!(grown.is_err());
        assert_eq!(map.len(), 0);
        assert_eq!(map.file.metadata().unwrap().len(), 0, "file cut back");
    }

    #[test]
    fn zeros_ahead_keep_written_bytes_the_length_and_zero_space() {
        let file = tempfile::tempfile().unwrap();
        let map = MappedFile::open(file, 1 << 30, true).unwrap();
        let len = 4 * ZERO_AHEAD;
        map.extend(|file, _| {
            file.set_len(len).unwrap();
            Ok(len)
        })
        .unwrap();
        // A large write: no zeros ahead of it.
        let big = ZERO_AHEAD / 2;
        // SAFETY: no views alive, single thread.
        unsafe { map.write(0, &[6; ZERO_AHEAD as usize / 2]).unwrap() };
        assert!(!map.zero_ahead());
        // A small one: zeros one step ahead of it.
        let at = big + 100;
        // SAFETY: as above.
        unsafe { map.write(at, &[7; 5000]).unwrap() };
        map.sync_range(0, at + 5000).unwrap();
        let ahead = at + 5000 + ZERO_AHEAD;
        assert_eq!(lock(&map.zeroed).end, ahead, "zeros one step ahead");
        // Within half a step of the zeros: nothing more is written.
        // SAFETY: as above.
        unsafe { map.write(at + 5000, &[8; 100]).unwrap() };
        assert!(!map.zero_ahead());
        // A jump past the zeros is a large write; a small one after it gets zeros,
        // which start after it and stop at the length.
        let far = 3 * ZERO_AHEAD;
        // SAFETY: as above.
        unsafe { map.write(far, &[9; 10]).unwrap() };
        map.sync_range(0, far + 10).unwrap();
        assert_eq!(lock(&map.zeroed).end, ahead);
        // SAFETY: as above.
        unsafe { map.write(far + 10, &[9; 10]).unwrap() };
        map.sync_range(0, far + 20).unwrap();
        assert_eq!(lock(&map.zeroed).end, len, "clamped to the length");
        assert_eq!(map.len(), len);
        assert_eq!(map.file.metadata().unwrap().len(), len);
        assert!(map.view(0, big as usize).unwrap().iter().all(|&b| b == 6));
        assert!(map.view(at, 5000).unwrap().iter().all(|&b| b == 7));
        assert!(map.view(at + 5000, 100).unwrap().iter().all(|&b| b == 8));
        assert!(map.view(far, 20).unwrap().iter().all(|&b| b == 9));
        let gap = map.view(at + 5100, (far - at - 5100) as usize).unwrap();
        assert!(gap.iter().all(|&b| b == 0));
        let rest = map.view(far + 20, (len - far - 20) as usize).unwrap();
        assert!(rest.iter().all(|&b| b == 0));
        // Shrinking pulls the marks back; space grown again reads as zero.
        // SAFETY: no views alive, single thread.
        unsafe { map.shrink(ZERO_AHEAD).unwrap() };
        assert_eq!(lock(&map.zeroed).end, ZERO_AHEAD);
        assert_eq!(map.touched.load(Ordering::Acquire), ZERO_AHEAD);
        map.extend(|file, _| {
            file.set_len(len).unwrap();
            Ok(len)
        })
        .unwrap();
        map.sync_range(0, 1).unwrap();
        assert!(map.view(ZERO_AHEAD, 4096).unwrap().iter().all(|&b| b == 0));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn an_unwritten_tail_found_at_open_is_zeroed_ahead_without_touching_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = vec![5u8; 10_000];
        {
            let file = File::create(&path).unwrap();
            file.write_all_at(&data, 0).unwrap();
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, 4 << 20).unwrap();
            file.sync_all().unwrap();
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let map = MappedFile::open(file, 1 << 30, true).unwrap();
        let touched = map.touched.load(Ordering::Acquire);
        assert!((10_000..=4 << 20).contains(&touched), "{touched}");
        map.sync_range(0, 1).unwrap();
        assert_eq!(map.view(0, data.len()).unwrap(), &data[..]);
        let tail = map.view(10_000, (4 << 20) - 10_000).unwrap();
        assert!(tail.iter().all(|&b| b == 0));
        assert_eq!(map.len(), 4 << 20);
    }

    #[test]
    fn reservation_is_whole_pages_and_covers_the_file() {
        let page = page_size();
        assert_eq!(reservation_bytes(0, 0).unwrap() as u64, page);
        assert_eq!(reservation_bytes(page + 1, 0).unwrap() as u64, 2 * page);
        assert_eq!(reservation_bytes(page, 3 * page).unwrap() as u64, 3 * page);
        assert!(reservation_bytes(u64::MAX, 0).is_err());
    }
}
