//! [`SliceRegion`]: a region over a caller's `&mut [u8]`, for firmware and tests.
#![allow(unsafe_code)]

use core::marker::PhantomData;
use core::ptr::NonNull;

use super::raw::RawBytes;
use super::{Region, RegionError, RegionOp, checked_range, checked_view};

/// A fixed region over a mutable byte slice the caller owns: a `static` array in
/// firmware, a stack buffer, a slice of a larger buffer.
///
/// Its length is the slice's length and never changes: `grow` beyond it returns
/// [`RegionError::Full`], `truncate` keeps the length. `sync` does nothing (the bytes are
/// RAM; a caller that keeps them elsewhere persists them itself).
///
/// ```
/// use hamtdb_core::{Region, RegionError, SliceRegion};
///
/// let mut bytes = [0u8; 64];
/// let region = SliceRegion::new(&mut bytes);
/// // SAFETY: no view of bytes 8..11 is alive and no other thread uses the region.
/// unsafe { region.write(8, b"abc")? };
/// assert_eq!(region.view(8, 3)?, b"abc");
/// assert!(matches!(region.grow(65), Err(RegionError::Full { .. })));
/// # Ok::<(), RegionError>(())
/// ```
pub struct SliceRegion<'a> {
    bytes: RawBytes,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl<'a> SliceRegion<'a> {
    /// Wraps `bytes`; the region's length is `bytes.len()`.
    pub fn new(bytes: &'a mut [u8]) -> Self {
        let cap = bytes.len();
        let ptr = NonNull::from(bytes).cast::<u8>();
        // SAFETY: (1) `ptr` comes from a live `&'a mut [u8]` of `cap` initialized bytes,
        // and `_borrow` keeps that exclusive borrow alive for as long as `self`; (2) the
        // exclusive borrow means nothing else accesses the bytes meanwhile.
        let bytes = unsafe { RawBytes::new(ptr, cap) };
        SliceRegion {
            bytes,
            _borrow: PhantomData,
        }
    }

    fn capacity(&self) -> u64 {
        self.bytes.capacity() as u64
    }
}

impl core::fmt::Debug for SliceRegion<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SliceRegion")
            .field("len", &self.capacity())
            .finish()
    }
}

// SAFETY: (1) the slice never moves or shrinks while `self` lives, so views stay valid;
// (2) every access goes through `checked_range` against the slice's length; (3) `write`
// copies exactly `data`.
unsafe impl Region for SliceRegion<'_> {
    #[inline]
    fn len(&self) -> u64 {
        self.capacity()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), RegionError> {
        buf.copy_from_slice(checked_view(
            &self.bytes,
            RegionOp::Read,
            offset,
            buf.len(),
            self.capacity(),
        )?);
        Ok(())
    }

    #[inline]
    fn view(&self, offset: u64, len: usize) -> Result<&[u8], RegionError> {
        checked_view(&self.bytes, RegionOp::View, offset, len, self.capacity())
    }

    unsafe fn write(&self, offset: u64, data: &[u8]) -> Result<(), RegionError> {
        let range = checked_range(RegionOp::Write, offset, data.len() as u64, self.capacity())?;
        // SAFETY: the caller keeps `Region::write`'s contract, which is `RawBytes::write`'s.
        let written = unsafe { self.bytes.write(range.start, data) };
        debug_assert!(written, "checked_range keeps writes inside the slice");
        Ok(())
    }

    fn grow(&self, min_len: u64) -> Result<u64, RegionError> {
        if min_len > self.capacity() {
            return Err(RegionError::full(min_len));
        }
        Ok(self.capacity())
    }

    unsafe fn truncate(&self, _new_len: u64) -> Result<u64, RegionError> {
        Ok(self.capacity())
    }

    fn sync(&self, offset: u64, len: u64) -> Result<(), RegionError> {
        checked_range(RegionOp::Sync, offset, len, self.capacity()).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_views_inside_bounds() {
        let mut bytes = [0u8; 16];
        let region = SliceRegion::new(&mut bytes);
        assert_eq!(region.len(), 16);
        // SAFETY: no views alive, single thread.
        unsafe { region.write(14, b"xy").unwrap() };
        let mut buf = [0u8; 4];
        region.read(12, &mut buf).unwrap();
        assert_eq!(&buf, b"\0\0xy");
        assert_eq!(region.view(15, 1).unwrap(), b"y");
        assert_eq!(region.view(16, 0).unwrap(), b"");
        region.sync(0, 16).unwrap();
        let _ = region;
        assert_eq!(&bytes[14..], b"xy");
    }

    #[test]
    fn out_of_bounds_is_an_error_not_a_panic() {
        let mut bytes = [0u8; 8];
        let region = SliceRegion::new(&mut bytes);
        let oob = |r: Result<(), RegionError>| matches!(r, Err(RegionError::OutOfBounds { .. }));
        // SAFETY: no views alive, single thread.
        assert!(oob(unsafe { region.write(7, b"ab") }));
        assert!(oob(region.read(u64::MAX, &mut [0u8; 1])));
        assert!(region.view(9, 0).is_err());
        assert!(oob(region.sync(4, 5)));
        assert!(matches!(
            region.grow(9),
            Err(RegionError::Full { requested }) if requested.get() == 9
        ));
        assert_eq!(region.grow(8), Ok(8));
        // SAFETY: no views alive, single thread.
        assert_eq!(unsafe { region.truncate(2) }, Ok(8));
        let _ = region;
        assert_eq!(bytes, [0u8; 8], "failed writes must not touch the slice");
    }

    #[test]
    fn empty_slice_is_a_valid_region() {
        let region = SliceRegion::new(&mut []);
        assert!(region.is_empty());
        assert_eq!(region.view(0, 0).unwrap(), b"");
        assert!(region.read(0, &mut [0u8; 1]).is_err());
    }
}
