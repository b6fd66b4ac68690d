//! [`FileRegion`]: a [`Region`] over a memory-mapped file, and its options.

use core::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use hamtdb_core::{Region, RegionError, RegionOp};
use rustix::io::Errno;

use crate::error::OpenError;
use crate::mmap::{self, MappedFile};

/// The address space a [`FileRegion`] reserves by default: 1 TiB on 64-bit targets, 1 GiB
/// on smaller ones. It is the most the region can grow to before
/// [`FileRegion::remap`].
pub const DEFAULT_RESERVATION: u64 = if cfg!(target_pointer_width = "64") {
    1 << 40
} else {
    1 << 30
};

/// How much a [`FileRegion`] grows by when it runs out of room.
///
/// An empty file grows to [`initial`](Self::initial). Below
/// [`double_until`](Self::double_until) the length doubles (up to `double_until`): small
/// files grow in few steps. From there on it grows by a fraction of itself, one
/// [`step_divisor`](Self::step_divisor)th, and at least [`step`](Self::step) bytes: the
/// number of growths stays logarithmic while the file is never much longer than what it
/// holds (by default at most 6.25% beyond the used end, where doubling would leave up to
/// 100%). It never goes below `initial` nor below what was asked for, and the file region
/// rounds the result up to whole pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GrowthPolicy {
    /// Length of a new file, and the least any growth reaches. Default 64 KiB.
    pub initial: u64,
    /// Double the length while it is below this. Default 64 MiB.
    pub double_until: u64,
    /// The least bytes added per growth once the length reached `double_until`. Default
    /// 1 MiB.
    pub step: u64,
    /// Once the length reached `double_until`, a growth adds `length / step_divisor`
    /// bytes (or `step`, if that is more). Default 16; 0 counts as 1 (doubling).
    pub step_divisor: u64,
}

impl Default for GrowthPolicy {
    fn default() -> Self {
        GrowthPolicy {
            initial: 64 << 10,
            double_until: 64 << 20,
            step: 1 << 20,
            step_divisor: 16,
        }
    }
}

impl GrowthPolicy {
    /// The length to grow to from `current` bytes when `min_len` are needed (before
    /// rounding up to pages).
    ///
    /// ```
    /// use hamtdb::GrowthPolicy;
    ///
    /// let policy = GrowthPolicy {
    ///     initial: 4096,
    ///     double_until: 1 << 20,
    ///     step: 64 << 10,
    ///     step_divisor: 16,
    /// };
    /// assert_eq!(policy.next_len(0, 1), 4096);
    /// assert_eq!(policy.next_len(4096, 4097), 8192);
    /// assert_eq!(policy.next_len(768 << 10, 768 << 10), 1 << 20); // doubling stops at 1 MiB
    /// assert_eq!(policy.next_len(1 << 20, 1 << 20), (1 << 20) + (64 << 10)); // then `step`
    /// assert_eq!(policy.next_len(16 << 20, 16 << 20), 17 << 20); // or a 16th, if more
    /// assert_eq!(policy.next_len(4096, 1 << 30), 1 << 30); // never less than asked
    /// ```
    pub fn next_len(&self, current: u64, min_len: u64) -> u64 {
        let grown = if current == 0 {
            self.initial
        } else if current < self.double_until {
            current.saturating_mul(2).min(self.double_until)
        } else {
            let fraction = current / self.step_divisor.max(1);
            current.saturating_add(fraction.max(self.step))
        };
        grown.max(self.initial).max(min_len)
    }
}

/// How to open a [`FileRegion`].
///
/// ```
/// use hamtdb::{FileRegionOptions, GrowthPolicy};
///
/// let options = FileRegionOptions::default()
///     .reservation(1 << 30)
///     .growth(GrowthPolicy { initial: 1 << 20, ..GrowthPolicy::default() });
/// assert!(!options.read_only);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileRegionOptions {
    /// How the file grows.
    pub growth: GrowthPolicy,
    /// Bytes of address space mapped at open: the most the region can grow to (see
    /// [`FileRegion`'s reservation](FileRegion#address-space-reservation)). Rounded up to
    /// whole pages, and up to the file's length if the file is longer. Default
    /// [`DEFAULT_RESERVATION`].
    pub reservation: u64,
    /// Open for reading only, with a shared lock: any number of read-only regions of a
    /// file can be open at once, and no writable one. `write`, `grow` and `truncate`
    /// return [`RegionError::ReadOnly`]. Default `false`.
    pub read_only: bool,
    /// Write with `pwrite` on the file rather than by copying into the map, and sync
    /// with `fdatasync`. Views and reads still come from the map (the page cache is the
    /// same). Worth it for a file written in small appends and synced after each (the
    /// commit log): a write through the map takes a write-protect fault on the first
    /// store to each page after a sync, `pwrite` does not. Default `false`.
    pub pwrite: bool,
}

impl Default for FileRegionOptions {
    fn default() -> Self {
        FileRegionOptions {
            growth: GrowthPolicy::default(),
            reservation: DEFAULT_RESERVATION,
            read_only: false,
            pwrite: false,
        }
    }
}

impl FileRegionOptions {
    /// Sets [`growth`](Self::growth).
    pub fn growth(mut self, growth: GrowthPolicy) -> Self {
        self.growth = growth;
        self
    }

    /// Sets [`reservation`](Self::reservation).
    pub fn reservation(mut self, bytes: u64) -> Self {
        self.reservation = bytes;
        self
    }

    /// Sets [`read_only`](Self::read_only).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Sets [`pwrite`](Self::pwrite).
    pub fn pwrite(mut self, pwrite: bool) -> Self {
        self.pwrite = pwrite;
        self
    }
}

/// A [`Region`] over a memory-mapped file, locked against other openers.
///
/// `FileRegion` is `Send + Sync`: one region serves a writer and any number of readers, as
/// the [`Region`] contract intends.
///
/// # Address-space reservation
///
/// The file is mapped once, when it is opened, with a length larger than the file: the
/// *reservation* ([`DEFAULT_RESERVATION`], 1 TiB on 64-bit targets). Growing extends the
/// file inside that range, so the map never moves and a view taken before a
/// [`grow`](Region::grow) stays valid after it, which is the first promise of
/// [`Region`]. This is what LMDB does with its map size. The reservation costs address
/// space, not memory or disk: pages past the end of the file are never touched, because
/// every access is checked against the region's length. A 64-bit Linux process has
/// 128 TiB of address space, so about a hundred regions with the default reservation fit
/// in one process; lower it with [`FileRegionOptions::reservation`] to open more.
///
/// Growing past the reservation is [`RegionError::Full`]. The way out is
/// [`FileRegion::remap`], which maps the file again with a larger reservation; it takes
/// `&mut self`, so the borrow checker proves that no view of the old map is alive. A
/// database that wants to grow without limit calls it between transactions, when it holds
/// the region exclusively.
///
/// # Locking
///
/// Opening takes a `flock` without waiting: exclusive for a writable region, shared for a
/// read-only one, released when the region is dropped. A conflicting lock is
/// [`OpenError::Locked`]. The lock belongs to the open file description, so a second
/// [`FileRegion::open`] of the same file in the same process is refused too.
///
/// # Growth and a full disk
///
/// [`grow`](Region::grow) follows a [`GrowthPolicy`] (double up to 1 GiB, then add 1 GiB),
/// and allocates the new blocks with `fallocate` before the new length is published, so a
/// full disk, a quota or a file-size limit is [`RegionError::NoSpace`] from `grow`, never
/// a SIGBUS on a later write. If the policy's length does not fit the disk, `grow` tries
/// once more with just the length asked for. Where `fallocate` is not supported, zeros are
/// written instead, which allocates too. On any error the length and the file's size are
/// unchanged. (On copy-on-write filesystems such as btrfs or ZFS an overwrite may need new
/// blocks even so; there a full disk can still surface later, as an error from `sync`.)
///
/// # Durability
///
/// [`sync`](Region::sync) is one sync call: `msync(MS_SYNC)` of the pages covering the
/// range, or, when the length changed since the last sync, one `fdatasync` (which writes
/// every dirty page and the new size). [`FileRegion::sync_all`] is always one `fdatasync`.
///
/// Space that `fallocate` allocated is *unwritten* on ext4 and XFS, and the first sync
/// of a write into it also has to convert the extent, which costs small commits two more
/// synchronous metadata writes. So after small commits a `sync` keeps the megabyte past
/// the last written byte written with zeros: when the writes come within half a megabyte
/// of the zeros, it writes zeros up to a megabyte past the last written byte (never past
/// the length) and makes that sync an `fdatasync`, which converts the whole megabyte at
/// once. The zeros go only where nothing was written since the space was allocated (or,
/// for a file opened again, where `lseek(SEEK_DATA)` finds no data), so they change no
/// byte. After a commit that wrote more than 256 KiB past the last sync no zeros are
/// written: such a commit converts its extents once for many bytes anyway.
///
/// A writable region's map is advised `MADV_RANDOM`, so that faults do not read ahead
/// into large page-cache folios: the kernel tracks dirtiness per folio, and a small
/// commit into a 2 MiB folio would make the next sync write all of it.
///
/// # Example
///
/// ```
/// use hamtdb::{FileRegion, FileRegionOptions, Region};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("db");
/// let region = FileRegion::create(&path, FileRegionOptions::default())?;
/// assert_eq!(region.len(), 64 << 10); // the growth policy's initial length
/// // SAFETY: no views alive, single thread.
/// unsafe { region.write(0, b"hello")? };
/// region.sync(0, 5)?;
/// drop(region);
///
/// let region = FileRegion::open(&path, FileRegionOptions::default())?;
/// assert_eq!(region.view(0, 5)?, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FileRegion {
    file: MappedFile,
    path: PathBuf,
    growth: GrowthPolicy,
}

impl FileRegion {
    /// Creates a new file at `path`, locks it and gives it the growth policy's initial
    /// length (allocated on disk); fails with [`io::ErrorKind::AlreadyExists`] if the file
    /// exists.
    ///
    /// The new file and its length are durable when this returns (the file and its
    /// directory are synced). If sizing the file fails (a full disk is
    /// [`OpenError::Region`] with [`RegionError::NoSpace`]) the file is removed.
    pub fn create(path: impl AsRef<Path>, options: FileRegionOptions) -> Result<Self, OpenError> {
        if options.read_only {
            return Err(OpenError::InvalidOptions(
                "a read-only region cannot create its file",
            ));
        }
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let region = Self::from_file(file, path, options)?;
        // From here on the file is ours (we hold the lock), so a failure removes it.
        let initialized = region
            .grow(options.growth.initial.min(region.reservation()))
            .and_then(|_| region.sync_all())
            .map_err(OpenError::Region)
            .and_then(|()| sync_parent_dir(path).map_err(OpenError::Io));
        match initialized {
            Ok(()) => Ok(region),
            Err(err) => {
                drop(region);
                let _ = fs::remove_file(path);
                Err(err)
            }
        }
    }

    /// Opens and locks the existing file at `path`, writable unless
    /// [`options.read_only`](FileRegionOptions::read_only). Its length is the file's
    /// length; opening never changes the file.
    ///
    /// Fails with [`OpenError::Locked`] if another open holds a conflicting lock, and with
    /// [`io::ErrorKind::NotFound`] if there is no file.
    ///
    /// The lock is advisory: it keeps out every hamtdb process, but not a program that
    /// ignores locks. Such a program writing or truncating the file while it is open
    /// changes bytes under live views, which breaks Rust's aliasing rules (undefined
    /// behaviour), and truncation makes later accesses fault with SIGBUS. Do not edit a
    /// database file while it is open.
    pub fn open(path: impl AsRef<Path>, options: FileRegionOptions) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(!options.read_only)
            .open(path)?;
        Self::from_file(file, path, options)
    }

    /// Opens the file at `path` if it exists and creates it otherwise (see
    /// [`open`](Self::open) and [`create`](Self::create)). A read-only region only opens.
    ///
    /// Another process may create the file at the same moment; then one of the two gets
    /// [`OpenError::Locked`], or finds the file still empty (length zero).
    pub fn open_or_create(
        path: impl AsRef<Path>,
        options: FileRegionOptions,
    ) -> Result<Self, OpenError> {
        let path = path.as_ref();
        if options.read_only {
            return Self::open(path, options);
        }
        // A file removed or created between the attempts sends us round again; twice is
        // enough unless another process keeps creating and removing it.
        let mut attempts = 3;
        loop {
            attempts -= 1;
            match Self::open(path, options) {
                Err(OpenError::Io(err)) if err.kind() == io::ErrorKind::NotFound => {}
                other => return other,
            }
            match Self::create(path, options) {
                Err(OpenError::Io(err))
                    if err.kind() == io::ErrorKind::AlreadyExists && attempts > 0 => {}
                other => return other,
            }
        }
    }

    fn from_file(file: File, path: &Path, options: FileRegionOptions) -> Result<Self, OpenError> {
        Ok(FileRegion {
            file: MappedFile::open(file, options.reservation, !options.read_only)?
                .with_file_writes(options.pwrite),
            path: path.to_path_buf(),
            growth: options.growth,
        })
    }

    /// The path the region was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the region was opened read-only.
    pub fn is_read_only(&self) -> bool {
        !self.file.is_writable()
    }

    /// The mapped address space in bytes: the most the region can grow to before
    /// [`remap`](Self::remap).
    pub fn reservation(&self) -> u64 {
        self.file.reservation()
    }

    /// The growth policy in use.
    pub fn growth_policy(&self) -> GrowthPolicy {
        self.growth
    }

    /// A durability barrier for the whole file: one `fdatasync`. When it returns `Ok`,
    /// every byte written before the call and the region's length survive power loss.
    /// Does nothing on a read-only region.
    ///
    /// Errors: [`RegionError::Io`] with [`RegionOp::Sync`].
    pub fn sync_all(&self) -> Result<(), RegionError> {
        self.file.sync_all()
    }

    /// Maps the file again with `reservation` bytes of address space (rounded up to whole
    /// pages, and at least the current length) and returns the new reservation.
    ///
    /// This is how a region grows past its reservation: the new map may be at a different
    /// address, which is sound because `&mut self` proves that no view of the old one is
    /// alive. Contents and length are unchanged. On error the old map stays.
    ///
    /// Errors: [`RegionError::Io`] with [`RegionOp::Grow`] if the address space cannot be
    /// mapped.
    pub fn remap(&mut self, reservation: u64) -> Result<u64, RegionError> {
        self.file.remap(reservation).map_err(|err| RegionError::Io {
            op: RegionOp::Grow,
            code: mmap::error_code(&err),
        })
    }

    /// Extends the file from `old` to `new` bytes, allocating the blocks. On error the
    /// file is cut back to `old`.
    fn allocate(file: &File, old: u64, new: u64) -> Result<(), RegionError> {
        let result = loop {
            match fallocate(file, old, new - old) {
                Err(Errno::INTR) => continue,
                Err(Errno::OPNOTSUPP | Errno::NOSYS) => {
                    break mmap::write_zeros(file, old, new, 64 << 10);
                }
                other => break other.map_err(io::Error::from),
            }
        };
        result.map_err(|err| {
            // `fallocate` may have extended the file part way before failing.
            let _ = rustix::fs::ftruncate(file, old);
            let code = mmap::error_code(&err);
            let no_space = [Errno::NOSPC, Errno::FBIG, Errno::DQUOT]
                .iter()
                .any(|errno| errno.raw_os_error() == code);
            if no_space {
                RegionError::no_space(new)
            } else {
                RegionError::Io {
                    op: RegionOp::Grow,
                    code,
                }
            }
        })
    }
}

/// `fallocate(fd, 0, offset, len)`: allocates blocks and extends the file.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn fallocate(file: &File, offset: u64, len: u64) -> rustix::io::Result<()> {
    rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), offset, len)
}

/// Where rustix has no `fallocate`, report it unsupported so zeros are written instead.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn fallocate(_file: &File, _offset: u64, _len: u64) -> rustix::io::Result<()> {
    Err(Errno::OPNOTSUPP)
}

/// Syncs the directory holding `path`, so that a new file's name survives power loss.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

impl fmt::Debug for FileRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileRegion")
            .field("path", &self.path)
            .field("len", &self.len())
            .field("reservation", &self.reservation())
            .field("read_only", &self.is_read_only())
            .finish()
    }
}

// SAFETY: (1) Views point into the map, which no `&self` method moves or unmaps (the
// reservation is mapped once; only `remap(&mut self)` and drop replace it), and the bytes
// under a view stay backed and unchanged: the length drops only in `truncate`, whose
// contract forbids views of what it releases; `write`'s contract forbids writes under a
// view; the file lock keeps other processes off the file (see `mmap`'s `# Safety`).
// (2) `MappedFile::view` and `MappedFile::write` check every range against the length,
// which never exceeds the file's length nor the reservation. (3) `write` copies exactly
// `data` to `offset`.
//
// This impl and the two forwarding blocks below are the crate's only `unsafe` outside
// `mmap`: the trait requires them.
#[allow(unsafe_code)]
unsafe impl Region for FileRegion {
    #[inline]
    fn len(&self) -> u64 {
        self.file.len()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), RegionError> {
        buf.copy_from_slice(self.file.bytes(RegionOp::Read, offset, buf.len())?);
        Ok(())
    }

    #[inline]
    fn view(&self, offset: u64, len: usize) -> Result<&[u8], RegionError> {
        self.file.view(offset, len)
    }

    unsafe fn write(&self, offset: u64, data: &[u8]) -> Result<(), RegionError> {
        // SAFETY: `MappedFile::write` has the same two conditions as `Region::write`,
        // which the caller keeps.
        unsafe { self.file.write(offset, data) }
    }

    fn grow(&self, min_len: u64) -> Result<u64, RegionError> {
        let reservation = self.reservation();
        let growth = self.growth;
        self.file.extend(|file, old| {
            if min_len <= old {
                return Ok(old);
            }
            let full = RegionError::full(min_len);
            // The reservation is whole pages, so a `min_len` within it rounds up within it.
            let exact = mmap::round_up_to_page(min_len)
                .filter(|&n| n <= reservation)
                .ok_or(full)?;
            let target = mmap::round_up_to_page(growth.next_len(old, min_len))
                .unwrap_or(reservation)
                .clamp(exact, reservation);
            match Self::allocate(file, old, target) {
                Err(RegionError::NoSpace { .. }) if exact < target => {
                    Self::allocate(file, old, exact).map(|()| exact)
                }
                other => other.map(|()| target),
            }
        })
    }

    unsafe fn truncate(&self, new_len: u64) -> Result<u64, RegionError> {
        // Whole pages keep the file's end on a page boundary, so no page is half file.
        let new_len = mmap::round_up_to_page(new_len).unwrap_or(u64::MAX);
        // SAFETY: `MappedFile::shrink` asks that no view of bytes at or after the length
        // it is given be alive, and that no other thread use them during the call. The
        // caller of `Region::truncate` guarantees both for every byte at or after the
        // `new_len` it passed, and rounding up only releases fewer bytes.
        unsafe { self.file.shrink(new_len) }
    }

    fn sync(&self, offset: u64, len: u64) -> Result<(), RegionError> {
        self.file.sync_range(offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(reservation: u64) -> FileRegionOptions {
        FileRegionOptions::default()
            .reservation(reservation)
            .growth(GrowthPolicy {
                initial: 4096,
                double_until: 64 << 10,
                step: 64 << 10,
                step_divisor: 16,
            })
    }

    #[test]
    fn growth_policy_doubles_then_grows_by_a_sixteenth() {
        let policy = GrowthPolicy::default();
        let mut len = 0;
        let mut seen = Vec::new();
        while len < 4 << 30 {
            let next = policy.next_len(len, len + 1);
            if len >= policy.double_until {
                // Past doubling: a sixteenth at a time, so never more than 1/16 spare.
                assert_eq!(next - len, len / 16, "from {len}");
            }
            len = next;
            seen.push(len);
        }
        assert_eq!(seen[0], 64 << 10);
        assert_eq!(seen[1], 128 << 10);
        assert_eq!(seen[10], 64 << 20);
        assert_eq!(seen[11], 68 << 20);
        // Logarithmic: from 64 KiB to 4 GiB in 11 doublings and 69 growths of 6.25%.
        assert_eq!(seen.len(), 11 + 69);
        assert_eq!(policy.next_len(1 << 20, 5 << 30), 5 << 30);
        // Small files past `double_until` still grow by at least `step`.
        let steps = GrowthPolicy {
            double_until: 0,
            ..policy
        };
        assert_eq!(steps.next_len(64 << 10, 64 << 10), (64 << 10) + (1 << 20));
    }

    #[test]
    fn grow_rounds_to_pages_and_clamps_to_the_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let page = mmap::page_size();
        let region = FileRegion::create(dir.path().join("r"), small(8 * page)).unwrap();
        assert_eq!(region.len(), 4096_u64.next_multiple_of(page));
        // Asking for more than the policy's doubling gives what was asked.
        assert_eq!(region.grow(4 * page + 1), Ok(5 * page));
        // The policy would double past the reservation; it stops at the reservation.
        assert_eq!(region.grow(6 * page), Ok(8 * page));
        assert_eq!(fs::metadata(region.path()).unwrap().len(), 8 * page);
        assert!(matches!(
            region.grow(8 * page + 1),
            Err(RegionError::Full { requested }) if requested.get() == 8 * page + 1
        ));
    }

    #[test]
    fn create_refuses_an_existing_file_and_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let region = FileRegion::create(&path, small(1 << 20)).unwrap();
        drop(region);
        assert!(matches!(
            FileRegion::create(&path, small(1 << 20)),
            Err(OpenError::Io(err)) if err.kind() == io::ErrorKind::AlreadyExists
        ));
        assert!(matches!(
            FileRegion::create(dir.path().join("other"), small(1 << 20).read_only(true)),
            Err(OpenError::InvalidOptions(_))
        ));
        assert!(matches!(
            FileRegion::open(dir.path().join("missing"), small(1 << 20)),
            Err(OpenError::Io(err)) if err.kind() == io::ErrorKind::NotFound
        ));
    }

    #[test]
    fn write_zeros_extends_and_allocates() {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(b"keep", 0).unwrap();
        mmap::write_zeros(&file, 4, 200_000, 64 << 10).unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.len(), 200_000);
        // Written, not sparse: at least the length's worth of 512-byte blocks.
        assert!(meta.blocks() * 512 >= 200_000, "{} blocks", meta.blocks());
        let mut buf = vec![1; 200_000];
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf[..4], b"keep");
        assert!(buf[4..].iter().all(|&b| b == 0));
    }

    #[test]
    fn file_region_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<FileRegion>();
    }
}
