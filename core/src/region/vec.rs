//! [`VecRegion`]: a growable region on the heap, for in-memory databases and tests.
#![allow(unsafe_code)]

use alloc::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use alloc::vec::Vec;
use core::ptr::NonNull;
// usize, not u64: 32-bit microcontrollers have no 64-bit atomics, and the length never
// exceeds the capacity, a usize.
use core::sync::atomic::{AtomicUsize, Ordering};

use super::raw::RawBytes;
use super::{Region, RegionError, RegionOp, checked_range, checked_view};

/// Alignment of the heap block. No more than what `malloc` guarantees anyway: for a
/// larger alignment the system allocator cannot use `calloc`, and zeroes the whole
/// capacity eagerly instead of letting the OS hand out zero pages as they are touched.
const ALIGN: usize = 16;

/// Capacity reserved by [`VecRegion::new`]: 64 MiB of address space. Pages are only
/// touched as the region grows into them.
pub const DEFAULT_VEC_CAPACITY: usize = 64 << 20;

/// A region on the heap that grows up to a capacity reserved when it is made.
///
/// The whole capacity is allocated zeroed up front and never reallocated, which is what
/// keeps views valid while the region grows (the same choice a file region makes with its
/// address-space reservation). On most platforms the allocator hands out large zeroed
/// blocks lazily, so an unused reservation costs address space, not memory. Growing past
/// the capacity returns [`RegionError::Full`]. `sync` does nothing: the bytes are RAM.
///
/// ```
/// use hamtdb_core::{Region, VecRegion};
///
/// let region = VecRegion::with_capacity(1 << 20);
/// assert_eq!(region.len(), 0);
/// region.grow(4096)?;
/// // SAFETY: no views alive, single thread.
/// unsafe { region.write(0, b"hello")? };
/// assert_eq!(region.view(0, 5)?, b"hello");
/// # Ok::<(), hamtdb_core::RegionError>(())
/// ```
pub struct VecRegion {
    bytes: RawBytes,
    len: AtomicUsize,
}

impl VecRegion {
    /// An empty region with [`DEFAULT_VEC_CAPACITY`] bytes of room.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_VEC_CAPACITY)
    }

    /// An empty region that can grow to `capacity` bytes.
    ///
    /// Aborts through [`handle_alloc_error`] if the allocator refuses, as `Vec` does; use
    /// [`try_with_capacity`](Self::try_with_capacity) to get an error instead.
    pub fn with_capacity(capacity: usize) -> Self {
        match Self::try_with_capacity(capacity) {
            Ok(region) => region,
            Err(_) => handle_alloc_error(Self::layout(capacity).unwrap_or(Layout::new::<u8>())),
        }
    }

    /// An empty region that can grow to `capacity` bytes, or [`RegionError::Full`] if the
    /// allocator cannot reserve that much.
    pub fn try_with_capacity(capacity: usize) -> Result<Self, RegionError> {
        let full = RegionError::full(capacity as u64);
        let ptr = match Self::layout(capacity) {
            None => return Err(full),
            // A zero-sized allocation is not allowed; an aligned dangling pointer is valid
            // for zero-byte accesses.
            Some(_) if capacity == 0 => NonNull::<u128>::dangling().cast::<u8>(),
            // SAFETY: the layout has a non-zero size (the arm above took zero).
            Some(layout) => NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or(full)?,
        };
        // SAFETY: (1) `ptr` is a fresh zeroed allocation of `capacity` bytes (or dangling
        // for zero bytes), freed only in `Drop`; (2) it is owned by this value alone.
        let bytes = unsafe { RawBytes::new(ptr, capacity) };
        Ok(VecRegion {
            bytes,
            len: AtomicUsize::new(0),
        })
    }

    /// A region holding a copy of `image`, with room to grow to `capacity` bytes (at
    /// least the image's length).
    pub fn from_bytes(image: &[u8], capacity: usize) -> Self {
        let region = Self::with_capacity(capacity.max(image.len()));
        // SAFETY: the region was just made: no views exist and no other thread has it.
        let copied = unsafe { region.bytes.write(0, image) };
        debug_assert!(copied, "capacity is at least the image length");
        region.len.store(image.len(), Ordering::Release);
        region
    }

    /// A copy of the region's current bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let len = self.len.load(Ordering::Acquire) as u64;
        match checked_range(RegionOp::View, 0, len, len)
            .ok()
            .and_then(|r| self.bytes.view(r))
        {
            Some(bytes) => bytes.to_vec(),
            None => Vec::new(),
        }
    }

    /// The most bytes this region can grow to.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    fn layout(capacity: usize) -> Option<Layout> {
        Layout::from_size_align(capacity, ALIGN).ok()
    }
}

impl Default for VecRegion {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for VecRegion {
    fn drop(&mut self) {
        if let Some(layout) = Self::layout(self.bytes.capacity()).filter(|l| l.size() > 0) {
            // SAFETY: the pointer came from `alloc_zeroed` with this same layout (non-zero
            // capacities only), and `&mut self` means no view of it is alive.
            unsafe { dealloc(self.bytes.as_ptr(), layout) };
        }
    }
}

impl core::fmt::Debug for VecRegion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VecRegion")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

// SAFETY: (1) the block is never reallocated while `self` lives and views borrow `self`,
// so they stay valid across `grow`; (2) every access is checked against the current
// length, which never exceeds the capacity; (3) `write` copies exactly `data`.
unsafe impl Region for VecRegion {
    #[inline]
    fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire) as u64
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), RegionError> {
        buf.copy_from_slice(checked_view(
            &self.bytes,
            RegionOp::Read,
            offset,
            buf.len(),
            self.len(),
        )?);
        Ok(())
    }

    #[inline]
    fn view(&self, offset: u64, len: usize) -> Result<&[u8], RegionError> {
        checked_view(&self.bytes, RegionOp::View, offset, len, self.len())
    }

    unsafe fn write(&self, offset: u64, data: &[u8]) -> Result<(), RegionError> {
        let range = checked_range(RegionOp::Write, offset, data.len() as u64, self.len())?;
        // SAFETY: the caller keeps `Region::write`'s contract, which is `RawBytes::write`'s.
        let written = unsafe { self.bytes.write(range.start, data) };
        debug_assert!(written, "the length never exceeds the capacity");
        Ok(())
    }

    fn grow(&self, min_len: u64) -> Result<u64, RegionError> {
        let capacity = self.capacity() as u64;
        if min_len > capacity {
            return Err(RegionError::full(min_len));
        }
        // Bytes beyond the length are zero (allocated zeroed, and `truncate` zeroes what it
        // releases), so growing is only a matter of publishing the new length.
        // Fits: min_len <= capacity, a usize.
        let min_len = min_len as usize;
        Ok(self.len.fetch_max(min_len, Ordering::AcqRel).max(min_len) as u64)
    }

    unsafe fn truncate(&self, new_len: u64) -> Result<u64, RegionError> {
        let old = self.len();
        if new_len >= old {
            return Ok(old);
        }
        let range = checked_range(RegionOp::Truncate, new_len, old - new_len, old)?;
        // Fits: new_len < old length <= capacity, a usize.
        self.len.store(new_len as usize, Ordering::Release);
        // SAFETY: the caller guarantees that no view of the released bytes is alive and
        // that no other thread reads or writes them during this call; the length was
        // lowered first, so no new checked access can reach them.
        let zeroed = unsafe { self.bytes.zero(range) };
        debug_assert!(zeroed, "the old length never exceeds the capacity");
        Ok(new_len)
    }

    fn sync(&self, offset: u64, len: u64) -> Result<(), RegionError> {
        checked_range(RegionOp::Sync, offset, len, self.len()).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_capacity_and_new_space_reads_zero() {
        let region = VecRegion::with_capacity(256);
        assert_eq!(region.grow(10), Ok(10));
        // SAFETY: no views alive, single thread.
        unsafe { region.write(0, &[0xAA; 10]).unwrap() };
        let view = region.view(0, 10).unwrap();
        assert_eq!(region.grow(200), Ok(200));
        // A view taken before growth is still valid and unchanged after it.
        assert_eq!(view, &[0xAA; 10]);
        assert!(region.view(10, 190).unwrap().iter().all(|&b| b == 0));
        assert_eq!(region.grow(50), Ok(200), "growing to less is a no-op");
        assert!(matches!(
            region.grow(257),
            Err(RegionError::Full { requested }) if requested.get() == 257
        ));
        assert_eq!(region.len(), 200);
    }

    #[test]
    fn truncate_releases_and_regrowth_reads_zero() {
        let region = VecRegion::with_capacity(64);
        region.grow(64).unwrap();
        // SAFETY: no views alive, single thread.
        unsafe { region.write(0, &[7; 64]).unwrap() };
        // SAFETY: no views alive, single thread.
        assert_eq!(unsafe { region.truncate(16) }, Ok(16));
        assert!(region.read(16, &mut [0u8; 1]).is_err());
        region.grow(64).unwrap();
        assert_eq!(region.view(0, 16).unwrap(), &[7; 16]);
        assert!(region.view(16, 48).unwrap().iter().all(|&b| b == 0));
    }

    #[test]
    fn out_of_bounds_is_an_error_not_a_panic() {
        let region = VecRegion::with_capacity(8);
        region.grow(4).unwrap();
        // SAFETY: no views alive, single thread.
        assert!(unsafe { region.write(3, b"ab") }.is_err());
        assert!(region.view(0, 5).is_err());
        assert!(region.read(u64::MAX, &mut [0u8; 2]).is_err());
        assert!(region.sync(0, 5).is_err());
    }

    #[test]
    fn from_bytes_and_to_vec_round_trip() {
        let region = VecRegion::from_bytes(b"image", 0);
        assert_eq!(region.capacity(), 5);
        assert_eq!(region.to_vec(), b"image");
        let empty = VecRegion::with_capacity(0);
        assert!(empty.is_empty());
        assert_eq!(empty.to_vec(), b"");
        assert!(empty.grow(1).is_err());
    }

    #[test]
    fn region_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<VecRegion>();
        assert_send_sync::<crate::SliceRegion<'static>>();
    }
}
