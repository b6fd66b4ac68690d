//! A hint to the CPU that some bytes will be read soon.
//!
//! # Safety
//!
//! This module holds the core's one use of a CPU intrinsic. A prefetch instruction never
//! faults and changes no program state, whatever the address: it only asks the memory
//! system to start loading a cache line. The pointer handed to it comes from a live view
//! anyway, or is derived from one by `wrapping_add` (never dereferenced, so it need not
//! stay inside the slice: no reference to the bytes beyond the view is ever made).
#![allow(unsafe_code)]

/// Starts loading the cache line holding `bytes[0]` into all cache levels.
#[inline(always)]
pub(crate) fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has; the instruction
        // does not dereference its operand architecturally (no fault, no UB for any
        // address), and this one points into a live slice besides.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Starts loading every cache line of the `len` bytes from `bytes[0]` on. Only the first
/// byte needs to be viewed: the lines past it are named by address alone.
#[inline(always)]
pub(crate) fn prefetch_lines(bytes: &[u8], len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = bytes.as_ptr();
        // Offsets of `start`'s line, then of the start of each next line.
        let mut at = 0;
        while at < len {
            // SAFETY: as in `prefetch`: the instruction never dereferences its operand
            // architecturally, so any address is allowed; `wrapping_add` makes the
            // address without asserting that it stays in bounds.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(at).cast::<i8>()) };
            at += 64 - (start.wrapping_add(at).addr() & 63);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, len);
}
