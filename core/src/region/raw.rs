//! Raw byte memory shared by the in-core regions.
//!
//! # Safety
//!
//! This is the one place in the core that touches memory through raw pointers. A
//! [`RawBytes`] is a pointer and a capacity that stay valid for its whole life; the
//! region that owns it decides the length inside that capacity. Readers copy or borrow
//! bytes, the writer copies into them, and the two never meet on the same bytes because
//! [`Region::write`](super::Region::write) is `unsafe` with exactly that precondition.
//! Memory is never reallocated, so a borrowed slice cannot dangle while its owner lives.
#![allow(unsafe_code)]

use core::ptr::NonNull;

/// A fixed block of bytes addressed through a raw pointer.
pub(crate) struct RawBytes {
    ptr: NonNull<u8>,
    cap: usize,
}

// SAFETY: `RawBytes` is a pointer to plain bytes with no thread affinity. Data races are
// excluded by the callers of `write`, whose contract forbids concurrent access to the
// bytes being written; reads and views of other bytes may run on any thread.
unsafe impl Send for RawBytes {}
// SAFETY: as for `Send`: shared access only reads, and writes are serialized and kept off
// the bytes other threads access by the `write` contract.
unsafe impl Sync for RawBytes {}

impl RawBytes {
    /// Wraps `cap` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// 1. `ptr` is valid for reads and writes of `cap` bytes, and all of them are
    ///    initialized, for the whole life of the returned value.
    /// 2. Nothing else accesses those bytes during that time except through this value.
    pub(crate) unsafe fn new(ptr: NonNull<u8>, cap: usize) -> Self {
        RawBytes { ptr, cap }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The address of byte `offset`; only dereferenced by callers that checked
    /// `offset <= cap`, where it stays inside (or one past) the allocation.
    fn at(&self, offset: usize) -> *mut u8 {
        self.ptr.as_ptr().wrapping_add(offset)
    }

    /// Borrows `range`, or `None` when it does not fit the capacity.
    #[inline]
    pub(crate) fn view(&self, range: core::ops::Range<usize>) -> Option<&[u8]> {
        if range.start > range.end || range.end > self.cap {
            return None;
        }
        // SAFETY: (1) the range lies inside the `cap` initialized bytes that `new`'s
        // contract keeps valid while `self` lives, and the returned borrow cannot outlive
        // `self`; (2) nobody writes these bytes while the slice lives, by the contract of
        // `write` below, which every writer must keep.
        Some(unsafe { core::slice::from_raw_parts(self.at(range.start), range.len()) })
    }

    /// Copies `data` to `offset`. Returns `false` (writing nothing) when it does not fit.
    ///
    /// # Safety
    ///
    /// 1. No slice returned by [`view`](Self::view) overlapping the target bytes is alive.
    /// 2. No other thread accesses the target bytes during the call.
    pub(crate) unsafe fn write(&self, offset: usize, data: &[u8]) -> bool {
        let fits = offset
            .checked_add(data.len())
            .is_some_and(|end| end <= self.cap);
        if !fits {
            return false;
        }
        // SAFETY: the target lies inside the valid allocation (checked above); `data` is a
        // shared borrow, which cannot overlap bytes nobody may view while we write (1);
        // no other thread touches the target (2).
        unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), self.at(offset), data.len());
        }
        true
    }

    /// Sets `range` to zero. Returns `false` (writing nothing) when it does not fit.
    ///
    /// # Safety
    ///
    /// The same as [`write`](Self::write), for the bytes of `range`.
    pub(crate) unsafe fn zero(&self, range: core::ops::Range<usize>) -> bool {
        if range.start > range.end || range.end > self.cap {
            return false;
        }
        // SAFETY: the range lies inside the valid allocation (checked above) and nobody
        // views or accesses it during the call, by this function's contract.
        unsafe {
            core::ptr::write_bytes(self.at(range.start), 0, range.len());
        }
        true
    }
}
