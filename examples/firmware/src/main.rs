//! hamtdb's map on a Cortex-M4F: a [`Map`](hamtdb_core::Map) on a
//! [`SliceRegion`](hamtdb_core::SliceRegion) over a `static` 64 KiB array, with the
//! core's allocations served by a fixed 16 KiB heap. `.ci/run` builds this image and
//! holds its `.text` to the budget in docs/EMBEDDED.md.
//!
//! On success the core parks in `wfi`; on failure it stops at a `udf` (a permanent
//! undefined-instruction fault), which a debugger shows at once.
#![no_std]
#![no_main]

mod demo;
mod mem;

use core::mem::MaybeUninit;

use cortex_m_rt::entry;
use embedded_alloc::LlffHeap;

/// Bytes of heap. The demo's peak is far below this (docs/EMBEDDED.md gives the figures
/// per operation).
const HEAP_BYTES: usize = 16 * 1024;

/// Bytes of the database.
const DB_BYTES: usize = 64 * 1024;

#[global_allocator]
static HEAP: LlffHeap = LlffHeap::empty();

#[entry]
fn main() -> ! {
    // `#[entry]` turns each `static mut` declared here into a `&'static mut` reference,
    // safely: the entry function runs once and cannot be called again, so these are the
    // only references to the two arrays, ever.
    static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];
    static mut DB: [u8; DB_BYTES] = [0; DB_BYTES];

    // SAFETY: `init` requires (1) that it is called once, before any allocation: this is
    // the first statement to run after reset and `main` runs once; (2) that the memory is
    // valid, unused by anything else and lives forever: `HEAP_MEM` is a `&'static mut`
    // to a static array that nothing else names.
    unsafe { HEAP.init(HEAP_MEM.as_mut_ptr() as usize, HEAP_BYTES) }

    match demo::run(DB) {
        Ok(summary) => {
            core::hint::black_box(summary);
            loop {
                cortex_m::asm::wfi();
            }
        }
        Err(failed) => {
            core::hint::black_box(failed);
            cortex_m::asm::udf()
        }
    }
}

/// A panic stops the core at a permanent fault, without formatting the message: with
/// `panic = "abort"` nothing unwinds, and no `core::fmt` code is linked for it.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    cortex_m::asm::udf()
}
