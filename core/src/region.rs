//! The `Region` trait: the only thing the core knows about storage.
//!
//! A region is a contiguous byte space, addressed by `u64` offsets from zero, that may
//! grow and can be made durable. It is small enough to implement over a static array in
//! firmware ([`SliceRegion`]), the heap ([`VecRegion`]), a memory-mapped file (the std
//! crate's `FileRegion`) or a shared-memory segment.
//!
//! # Sharing and zero-copy views
//!
//! Every method takes `&self`, so one region can be shared by a writer and any number of
//! readers. Readers get bytes without copying through [`Region::view`]; a view is a plain
//! `&[u8]`, and Rust promises that the bytes under it do not change while it lives.
//! That promise is kept by the one who writes: [`Region::write`] is `unsafe`, and its
//! caller must guarantee that nobody reads or views the bytes it writes at the same time.
//! The core keeps that guarantee by writing only into space that no published snapshot
//! can reach (free or not-yet-committed space), and by creating views only over entries
//! reachable from a snapshot that outlives them. Views say nothing about bytes outside
//! their range, so a writer working elsewhere in the same region is fine.
//!
//! Existing bytes never move: [`Region::grow`] keeps every byte at its address (a memory
//! map reserves its address space up front for this), so a view stays valid across
//! growth.
//!
//! # Power loss
//!
//! Each method states what survives a power cut. In short: new space after `grow` reads
//! as zero; bytes covered by a [`Region::sync`] that returned `Ok` survive; about bytes
//! written and not yet synced nothing is promised: after a crash each may hold the old
//! data or the new, and the write in flight at the instant of the cut may be torn at any
//! byte boundary.

mod raw;
mod slice;
mod vec;

use core::fmt;

use crate::error::{PackedU64, Tagged};

pub use slice::SliceRegion;
pub use vec::{DEFAULT_VEC_CAPACITY, VecRegion};

/// Which region operation failed, carried by [`RegionError::Io`] and
/// [`RegionError::OutOfBounds`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RegionOp {
    /// [`Region::read`].
    Read,
    /// [`Region::write`].
    Write,
    /// [`Region::grow`].
    Grow,
    /// [`Region::truncate`].
    Truncate,
    /// [`Region::sync`].
    Sync,
    /// [`Region::view`].
    View,
}

impl RegionOp {
    const ALL: [RegionOp; 6] = [
        RegionOp::Read,
        RegionOp::Write,
        RegionOp::Grow,
        RegionOp::Truncate,
        RegionOp::Sync,
        RegionOp::View,
    ];
}

impl fmt::Display for RegionOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RegionOp::Read => "read",
            RegionOp::Write => "write",
            RegionOp::Grow => "grow",
            RegionOp::Truncate => "truncate",
            RegionOp::Sync => "sync",
            RegionOp::View => "view",
        })
    }
}

/// Which operation asked for bytes outside the region, and from which offset; carried
/// by [`RegionError::OutOfBounds`].
///
/// Eight bytes: the offset keeps 56 bits (from `2^56 - 2^32` on, 64 PiB less 4 GiB, it
/// reads as `2^56 - 1`), the operation one byte.
///
/// ```
/// use hamtdb_core::region::{Bounds, RegionOp};
/// let b = Bounds::new(RegionOp::View, 4096);
/// assert_eq!((b.op(), b.offset()), (RegionOp::View, 4096));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bounds(Tagged);

impl Bounds {
    /// `op` asked for bytes from `offset` on that are not all inside the region.
    #[inline]
    pub const fn new(op: RegionOp, offset: u64) -> Self {
        Bounds(Tagged::new(op as u8, offset))
    }

    /// The operation.
    pub fn op(self) -> RegionOp {
        RegionOp::ALL
            .get(usize::from(self.0.code()))
            .copied()
            .unwrap_or(RegionOp::Read)
    }

    /// The first byte asked for (saturating at `2^56 - 1`: see the type's notes).
    #[inline]
    pub const fn offset(self) -> u64 {
        self.0.value()
    }
}

impl fmt::Debug for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounds")
            .field("op", &self.op())
            .field("offset", &self.offset())
            .finish()
    }
}

/// What a region operation can fail with.
///
/// 12 bytes with 4-byte alignment on every target: a word-wide tag (so that
/// [`Error`](crate::Error) keeps its own tag in this one's spare values) and at most
/// two `u32` words of detail, so that `?` moves an error as three words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u32)]
pub enum RegionError {
    /// An operation asked for a byte range that is not inside the region's current
    /// length; [`Bounds`] says which operation and from which offset.
    OutOfBounds(Bounds),
    /// The region cannot grow to `requested` bytes: it has a fixed capacity (a
    /// [`SliceRegion`], a [`VecRegion`]'s reservation, a file region's address-space
    /// reservation) below that.
    Full {
        /// Length asked for.
        requested: PackedU64,
    },
    /// The medium has no room for `requested` bytes (a full disk, a quota, a file-size
    /// limit). Nothing already stored is affected.
    NoSpace {
        /// Length asked for.
        requested: PackedU64,
    },
    /// The region was opened read-only.
    ReadOnly,
    /// The operating system or device reported an error; `code` is its error number
    /// (`errno` on Unix), or a backend-defined code where there is none.
    Io {
        /// The operation that failed.
        op: RegionOp,
        /// The error number.
        code: i32,
    },
}

impl RegionError {
    /// [`RegionError::OutOfBounds`]: `op` asked for bytes from `offset` on.
    #[inline]
    pub const fn out_of_bounds(op: RegionOp, offset: u64) -> Self {
        RegionError::OutOfBounds(Bounds::new(op, offset))
    }

    /// [`RegionError::Full`]: the region cannot grow to `requested` bytes.
    #[inline]
    pub const fn full(requested: u64) -> Self {
        RegionError::Full {
            requested: PackedU64::new(requested),
        }
    }

    /// [`RegionError::NoSpace`]: the medium has no room for `requested` bytes.
    #[inline]
    pub const fn no_space(requested: u64) -> Self {
        RegionError::NoSpace {
            requested: PackedU64::new(requested),
        }
    }
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RegionError::OutOfBounds(b) => write!(
                f,
                "{} at offset {} is outside the region",
                b.op(),
                b.offset()
            ),
            RegionError::Full { requested } => write!(
                f,
                "region full: {requested} bytes requested, more than its capacity"
            ),
            RegionError::NoSpace { requested } => {
                write!(
                    f,
                    "no space left on the medium to grow to {requested} bytes"
                )
            }
            RegionError::ReadOnly => f.write_str("region is read-only"),
            RegionError::Io { op, code } => write!(f, "{op} failed with error {code}"),
        }
    }
}

impl core::error::Error for RegionError {}

/// A contiguous, growable byte space that can be made durable.
///
/// See the [module documentation](self) for the sharing rules that make zero-copy views
/// sound and for the power-loss model. Implementations must keep three promises that the
/// core relies on for soundness, which is why the trait is `unsafe` to implement:
///
/// 1. A slice returned by [`view`](Region::view) stays valid (allocated, at the same
///    address, with the same contents unless [`write`](Region::write) is called on its
///    bytes) for as long as the borrow of `self` it came from, whatever other methods are
///    called meanwhile on other byte ranges — including [`grow`](Region::grow).
/// 2. `read`, `view` and `write` check bounds against [`len`](Region::len) and return
///    [`RegionError::OutOfBounds`] instead of touching memory outside the region.
/// 3. `write` touches exactly the bytes it was given.
///
/// # Safety
///
/// Implementors must uphold the three promises above.
#[allow(unsafe_code)] // the contract that makes zero-copy views sound
pub unsafe trait Region {
    /// The current length in bytes. Offsets `0 .. len()` can be read.
    ///
    /// Power loss: the length after a crash is at least the length of the last
    /// successful `grow` followed by a successful `sync`; a region may come back longer.
    fn len(&self) -> u64;

    /// Whether the region holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    ///
    /// Errors: [`RegionError::OutOfBounds`] if the range is not inside `0 .. len()`.
    /// Power loss: reading has no effect on what is stored.
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), RegionError>;

    /// Borrows `len` bytes starting at `offset` without copying.
    ///
    /// The bytes stay as they are for as long as the slice lives, provided every caller of
    /// [`write`](Region::write) keeps its safety contract.
    ///
    /// Errors: [`RegionError::OutOfBounds`] if the range is not inside `0 .. len()`.
    fn view(&self, offset: u64, len: usize) -> Result<&[u8], RegionError>;

    /// Copies `data` into the region at `offset`.
    ///
    /// The bytes are visible to later reads at once; they are durable only after a
    /// [`sync`](Region::sync) covering them returns `Ok`.
    ///
    /// Errors: [`RegionError::OutOfBounds`] if the range is not inside `0 .. len()` (grow
    /// first); [`RegionError::ReadOnly`]; [`RegionError::Io`].
    ///
    /// Power loss: until a covering `sync` returns, each written byte may survive as the
    /// old value or the new one, independently of the others; the write in flight at
    /// the instant of the cut may be torn anywhere.
    ///
    /// # Safety
    ///
    /// 1. No view returned by [`view`](Region::view) that overlaps
    ///    `offset .. offset + data.len()` is alive during or after this call.
    /// 2. No other thread reads, views or writes any of those bytes while this call runs
    ///    (the caller serializes writers and keeps readers off unpublished space).
    unsafe fn write(&self, offset: u64, data: &[u8]) -> Result<(), RegionError>;

    /// Makes the region at least `min_len` bytes long and returns the new length.
    ///
    /// A region may grow by more than asked (a file region follows its growth policy).
    /// New bytes read as zero. Existing bytes keep their addresses, so live views stay
    /// valid. Asking for less than the current length changes nothing.
    ///
    /// Errors: [`RegionError::Full`] when the region's capacity is fixed and too small;
    /// [`RegionError::NoSpace`] when the medium is full (a file region allocates the
    /// blocks before using them, so a full disk is reported here and never later as a
    /// fault); [`RegionError::ReadOnly`]; [`RegionError::Io`]. On error the length and
    /// contents are unchanged.
    ///
    /// Power loss: the growth is durable after the next successful `sync`; until then a
    /// crash may leave the old length. Grown bytes read as zero either way.
    fn grow(&self, min_len: u64) -> Result<u64, RegionError>;

    /// Releases the bytes at and after `new_len`, if the region can; returns the new
    /// length, which is at least `new_len` (a fixed region keeps its length).
    ///
    /// If the region later grows again, the released bytes read as zero.
    ///
    /// Power loss: a crash may leave the old length, and the released bytes with their old
    /// contents or as zero.
    ///
    /// # Safety
    ///
    /// 1. No view of any byte at or after `new_len` is alive during or after this call,
    ///    and no read of those bytes runs concurrently.
    /// 2. No other thread writes those bytes, grows or truncates the region while this
    ///    call runs. (Readers of bytes below `new_len` may go on: implementations lower
    ///    the length before releasing anything.)
    unsafe fn truncate(&self, new_len: u64) -> Result<u64, RegionError>;

    /// A durability barrier for `offset .. offset + len`: when it returns `Ok`, every
    /// byte written to that range before the call survives power loss, and so does the
    /// region's length.
    ///
    /// An implementation may sync more than asked (a whole page, the whole file), never
    /// less. A region that is not persistent (RAM) returns `Ok` at once.
    ///
    /// Errors: [`RegionError::OutOfBounds`]; [`RegionError::Io`]. After an error nothing
    /// is promised about unsynced bytes, as after a crash.
    fn sync(&self, offset: u64, len: u64) -> Result<(), RegionError>;
}

// A shared region is still one region: these forward every call, so each promise holds
// exactly when it holds for `R`.

// SAFETY: forwards to `R`, which keeps the three promises; a reference adds no behaviour.
#[allow(unsafe_code)]
unsafe impl<R: Region + ?Sized> Region for &R {
    #[inline]
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), RegionError> {
        (**self).read(offset, buf)
    }
    #[inline]
    fn view(&self, offset: u64, len: usize) -> Result<&[u8], RegionError> {
        (**self).view(offset, len)
    }
    unsafe fn write(&self, offset: u64, data: &[u8]) -> Result<(), RegionError> {
        // SAFETY: the caller keeps `Region::write`'s contract, which is `R::write`'s.
        unsafe { (**self).write(offset, data) }
    }
    fn grow(&self, min_len: u64) -> Result<u64, RegionError> {
        (**self).grow(min_len)
    }
    unsafe fn truncate(&self, new_len: u64) -> Result<u64, RegionError> {
        // SAFETY: the caller keeps `Region::truncate`'s contract, which is `R::truncate`'s.
        unsafe { (**self).truncate(new_len) }
    }
    fn sync(&self, offset: u64, len: u64) -> Result<(), RegionError> {
        (**self).sync(offset, len)
    }
}

// SAFETY: forwards to `R`, which keeps the three promises; the `Arc` keeps `R` at one
// address for as long as any clone lives, so views stay valid.
#[allow(unsafe_code)]
unsafe impl<R: Region + ?Sized> Region for alloc::sync::Arc<R> {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), RegionError> {
        (**self).read(offset, buf)
    }
    fn view(&self, offset: u64, len: usize) -> Result<&[u8], RegionError> {
        (**self).view(offset, len)
    }
    unsafe fn write(&self, offset: u64, data: &[u8]) -> Result<(), RegionError> {
        // SAFETY: the caller keeps `Region::write`'s contract, which is `R::write`'s.
        unsafe { (**self).write(offset, data) }
    }
    fn grow(&self, min_len: u64) -> Result<u64, RegionError> {
        (**self).grow(min_len)
    }
    unsafe fn truncate(&self, new_len: u64) -> Result<u64, RegionError> {
        // SAFETY: the caller keeps `Region::truncate`'s contract, which is `R::truncate`'s.
        unsafe { (**self).truncate(new_len) }
    }
    fn sync(&self, offset: u64, len: u64) -> Result<(), RegionError> {
        (**self).sync(offset, len)
    }
}

/// Checks that `offset .. offset + len` lies inside `0 .. region_len` and returns it as a
/// `usize` range; outside it is [`RegionError::OutOfBounds`] naming `op`. Shared by
/// every region implementation so they agree on bounds.
#[inline]
pub fn checked_range(
    op: RegionOp,
    offset: u64,
    len: u64,
    region_len: u64,
) -> Result<core::ops::Range<usize>, RegionError> {
    let oob = RegionError::out_of_bounds(op, offset);
    let end = offset.checked_add(len).ok_or(oob)?;
    if end > region_len {
        return Err(oob);
    }
    let start = usize::try_from(offset).map_err(|_| oob)?;
    let end = usize::try_from(end).map_err(|_| oob)?;
    Ok(start..end)
}

/// The bytes `offset .. offset + len` of `bytes` for `op`, checked against `limit` (the
/// region's length): the read and view path of the regions over a [`raw::RawBytes`].
#[inline]
fn checked_view(
    bytes: &raw::RawBytes,
    op: RegionOp,
    offset: u64,
    len: usize,
    limit: u64,
) -> Result<&[u8], RegionError> {
    let range = checked_range(op, offset, len as u64, limit)?;
    bytes.view(range).ok_or(RegionError::Io { op, code: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_range_accepts_exact_fit_and_rejects_overflow() {
        let read = RegionOp::Read;
        assert_eq!(checked_range(read, 0, 10, 10), Ok(0..10));
        assert_eq!(checked_range(read, 10, 0, 10), Ok(10..10));
        assert_eq!(
            checked_range(RegionOp::Write, 5, 6, 10),
            Err(RegionError::out_of_bounds(RegionOp::Write, 5))
        );
        assert!(checked_range(read, u64::MAX, 2, u64::MAX).is_err());
        assert!(checked_range(read, 11, 0, 10).is_err());
    }
}
