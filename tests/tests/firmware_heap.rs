//! The firmware's size-class heap (examples/firmware/src/heap.rs), run on the host with
//! the firmware's size: the demo's whole sequence must fit in it, and the blocks it hands
//! out must be aligned and never overlap. No test harness (`harness = false`): the heap
//! is for one thread of execution, and a harness runs tests on several.

#[path = "../../examples/firmware/src/demo.rs"]
mod demo;
#[path = "../../examples/firmware/src/heap.rs"]
mod heap;

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::alloc::System;

/// The firmware's heap size (examples/firmware/src/main.rs `HEAP_BYTES`).
const HEAP_BYTES: usize = 16 * 1024;

/// The firmware's heap first; what it refuses comes from the system (so that a failing
/// assertion can still format its message) and is recorded: whether a request the heap
/// has a class for was refused (the heap ran out), and the largest request refused.
struct FirmwareHeapFirst {
    heap: heap::SizeClassHeap<HEAP_BYTES>,
    refused: AtomicBool,
    largest_refused: AtomicUsize,
}

// SAFETY: every block comes from `heap` or from `System` and goes back to the one it
// came from (`contains` tells them apart): both are allocators that uphold the contract.
unsafe impl GlobalAlloc for FirmwareHeapFirst {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout (non-zero size).
        let block = unsafe { self.heap.alloc(layout) };
        if !block.is_null() {
            return block;
        }
        // Past the largest class (32 KiB) a request is refused by design, not for
        // lack of room: the host build reserves a few such buffers up front that the
        // firmware build does not (`cfg(target_arch = "arm")` in the core).
        if layout.size() <= 32 * 1024 {
            self.refused.store(true, Ordering::Relaxed);
        }
        self.largest_refused
            .fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if self.heap.contains(block) {
            // SAFETY: `block` came from `heap.alloc(layout)` and is given back once.
            unsafe { self.heap.dealloc(block, layout) }
        } else {
            // SAFETY: `block` came from `System.alloc(layout)` and is given back once.
            unsafe { System.dealloc(block, layout) }
        }
    }
}

#[global_allocator]
static HEAP: FirmwareHeapFirst = FirmwareHeapFirst {
    heap: heap::SizeClassHeap::new(),
    refused: AtomicBool::new(false),
    largest_refused: AtomicUsize::new(0),
};

fn main() {
    // The firmware's sequence in the firmware's heap. Pointers are twice as wide here as
    // on the Cortex-M, so the host's use bounds the firmware's from above.
    // The database array is the firmware's static, not heap: it comes from the system.
    let mut db = vec![0u8; 64 * 1024];
    let before = HEAP.heap.used();
    HEAP.refused.store(false, Ordering::Relaxed);
    let summary = demo::run(&mut db);
    assert!(
        !HEAP.refused.load(Ordering::Relaxed),
        "the demo needed more than the firmware's {HEAP_BYTES}-byte heap"
    );
    let summary = summary.expect("the demo runs in the firmware's heap");
    assert_eq!(
        summary.keys,
        u64::from(demo::KEYS) - u64::from(demo::KEYS.div_ceil(3))
    );
    println!(
        "firmware_heap: the demo cut {} B of the {HEAP_BYTES}-byte heap",
        HEAP.heap.used() - before
    );

    blocks_are_aligned_and_disjoint();
    println!("firmware_heap: blocks aligned and disjoint, ok");
}

/// A separate heap, driven directly: random sizes and alignments, frees in a scrambled
/// order, every live block filled with its own byte and checked before it is freed, and
/// a request past the array refused with null.
fn blocks_are_aligned_and_disjoint() {
    static LOCAL: heap::SizeClassHeap<32768> = heap::SizeClassHeap::new();
    let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..4_000u32 {
        let r = next();
        if live.len() < 24 && r % 3 != 0 {
            let size = 1 + (r >> 8) as usize % 300;
            let align = 1 << ((r >> 20) % 5);
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: `layout` has a non-zero size.
            let block = unsafe { LOCAL.alloc(layout) };
            assert!(!block.is_null(), "round {round}: {layout:?} refused");
            assert!(block.addr().is_multiple_of(align));
            assert!(LOCAL.contains(block) && LOCAL.contains(block.wrapping_add(size - 1)));
            // SAFETY: `block` is a fresh allocation of `size` bytes.
            unsafe { block.write_bytes(round as u8, size) };
            live.push((block, layout, round as u8));
        } else if !live.is_empty() {
            let (block, layout, fill) = live.swap_remove((r >> 8) as usize % live.len());
            // SAFETY: `block` is live, of `layout.size()` bytes, and was filled.
            let bytes = unsafe { core::slice::from_raw_parts(block, layout.size()) };
            assert!(bytes.iter().all(|&b| b == fill), "a block was overwritten");
            // SAFETY: `block` came from `LOCAL.alloc(layout)` and is freed once.
            unsafe { LOCAL.dealloc(block, layout) };
        }
    }
    // SAFETY: a non-zero size, larger than what is left of the heap.
    let too_big = unsafe { LOCAL.alloc(Layout::from_size_align(32768, 8).unwrap()) };
    assert!(too_big.is_null());
}
