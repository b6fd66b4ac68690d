//! hamtdb's map on a Cortex-M4F: a [`Map`](hamtdb_core::Map) on a
//! [`SliceRegion`](hamtdb_core::SliceRegion) over a `static` 64 KiB array, with the
//! core's allocations served by a fixed 16 KiB heap (src/heap.rs). `.ci/run` builds this image and
//! holds its `.text` to the budget in docs/EMBEDDED.md.
//!
//! On success the core parks in `wfi`; on failure it stops at a `udf` (a permanent
//! undefined-instruction fault), which a debugger shows at once.
#![no_std]
#![no_main]

mod demo;
mod heap;
mod mem;

use cortex_m_rt::entry;

/// Bytes of heap. The demo cuts about 9 KiB of it on a 64-bit host
/// (tests/tests/firmware_heap.rs), less here with 32-bit pointers.
const HEAP_BYTES: usize = 16 * 1024;

/// Bytes of the database.
const DB_BYTES: usize = 64 * 1024;

#[global_allocator]
static HEAP: heap::SizeClassHeap<HEAP_BYTES> = heap::SizeClassHeap::new();

#[entry]
fn main() -> ! {
    // `#[entry]` turns each `static mut` declared here into a `&'static mut` reference,
    // safely: the entry function runs once and cannot be called again, so these are the
    // only references to the two arrays, ever.
    static mut DB: [u8; DB_BYTES] = [0; DB_BYTES];

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
