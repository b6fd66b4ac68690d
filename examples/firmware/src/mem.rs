//! Byte-at-a-time `memcpy`, `memmove`, `memset` and `memcmp`, in place of
//! `compiler_builtins`' word-at-a-time ones: about 2.7 KiB of `.text` less, for copies
//! and comparisons a few times slower.
//! The map copies little (nodes of a few hundred bytes), so the image takes the size.
//!
//! The loops use volatile accesses so that the compiler cannot recognise them as a
//! copy and turn them back into a call to the very function they implement.

use core::ptr::{read_volatile, write_volatile};

/// Copies `n` bytes from `src` to `dst`, which may overlap. The loops live here, behind
/// a name the compiler gives no meaning to: a call to a function named `memmove` is
/// lowered to the EABI `__aeabi_memmove`, which would call back into it.
///
/// # Safety
///
/// `src` is valid for reads and `dst` for writes of `n` bytes.
#[inline(never)]
unsafe fn copy_bytes(dst: *mut u8, src: *const u8, n: usize) {
    let copy = |i: usize| {
        // SAFETY: `i < n`, so `src + i` lies in the `n` readable bytes (the caller's
        // promise).
        let b = unsafe { read_volatile(src.wrapping_add(i)) };
        // SAFETY: `i < n`, so `dst + i` lies in the `n` writable bytes.
        unsafe { write_volatile(dst.wrapping_add(i), b) };
    };
    // Upwards when `dst` is at or below `src`, downwards otherwise: either way each
    // byte is read before a write of the copy can reach it.
    if (dst as usize) <= (src as usize) {
        (0..n).for_each(copy);
    } else {
        (0..n).rev().for_each(copy);
    }
}

/// Sets `n` bytes at `dst` to `c`; see [`copy_bytes`] for why it is not `memset` itself.
///
/// # Safety
///
/// `dst` is valid for writes of `n` bytes.
#[inline(never)]
unsafe fn set_bytes(dst: *mut u8, c: u8, n: usize) {
    for i in 0..n {
        // SAFETY: `i < n`: inside the range the caller vouches for.
        unsafe { write_volatile(dst.wrapping_add(i), c) }
    }
}

/// Copies `n` bytes from `src` to `dst`; the ranges may overlap.
///
/// # Safety
///
/// `src` is valid for reads and `dst` for writes of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's promise is `copy_bytes`'s.
    unsafe { copy_bytes(dst, src, n) };
    dst
}

/// Copies `n` bytes from `src` to `dst`, which do not overlap.
///
/// # Safety
///
/// As [`memmove`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's promise is `copy_bytes`'s.
    unsafe { copy_bytes(dst, src, n) };
    dst
}

/// Sets `n` bytes at `dst` to `c`.
///
/// # Safety
///
/// `dst` is valid for writes of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's promise is `set_bytes`'s.
    unsafe { set_bytes(dst, c as u8, n) };
    dst
}

/// Compares `n` bytes at `a` and `b`: the difference of the first pair of bytes that
/// differ (as unsigned bytes), or 0. Keys are compared with it.
///
/// # Safety
///
/// `a` and `b` are valid for reads of `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: `i < n`, so `a + i` lies in the `n` readable bytes (the caller's
        // promise).
        let x = unsafe { read_volatile(a.wrapping_add(i)) };
        // SAFETY: as above, for `b`.
        let y = unsafe { read_volatile(b.wrapping_add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

// The ARM EABI names the compiler calls: `4`/`8` promise aligned pointers, which a byte
// loop does not need, and `__aeabi_memset` takes the length before the byte.

macro_rules! eabi_copy {
    ($($name:ident),*) => {$(
        /// [`memmove`] under an ARM EABI name.
        ///
        /// # Safety
        ///
        /// As [`memmove`].
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(dst: *mut u8, src: *const u8, n: usize) {
            // SAFETY: the caller's promise is `copy_bytes`'s.
            unsafe { copy_bytes(dst, src, n) };
        }
    )*};
}

macro_rules! eabi_set {
    ($($name:ident),*) => {$(
        /// [`memset`] under an ARM EABI name (length first).
        ///
        /// # Safety
        ///
        /// As [`memset`].
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(dst: *mut u8, n: usize, c: i32) {
            // SAFETY: the caller's promise is `set_bytes`'s.
            unsafe { set_bytes(dst, c as u8, n) };
        }
    )*};
}

macro_rules! eabi_clear {
    ($($name:ident),*) => {$(
        /// [`memset`] to zero under an ARM EABI name.
        ///
        /// # Safety
        ///
        /// As [`memset`].
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(dst: *mut u8, n: usize) {
            // SAFETY: the caller's promise is `set_bytes`'s.
            unsafe { set_bytes(dst, 0, n) };
        }
    )*};
}

eabi_copy!(
    __aeabi_memcpy,
    __aeabi_memcpy4,
    __aeabi_memcpy8,
    __aeabi_memmove,
    __aeabi_memmove4,
    __aeabi_memmove8
);
eabi_set!(__aeabi_memset, __aeabi_memset4, __aeabi_memset8);
eabi_clear!(__aeabi_memclr, __aeabi_memclr4, __aeabi_memclr8);
