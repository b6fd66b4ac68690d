//! The firmware's heap: power-of-two size classes over an array the heap owns, each
//! class a list of the blocks given back to it, fresh blocks cut from the array's unused
//! end. Nothing is split or merged: a class keeps the blocks of its peak, which suits a
//! program whose allocations repeat (a transaction's nodes, the free map's vectors), and
//! the code is a few hundred bytes smaller than a first-fit list allocator.
//!
//! It is for one core whose interrupt handlers do not allocate: the state lives in
//! `Cell`s, and [`SizeClassHeap`] is `Sync` on that premise.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};
use core::mem::MaybeUninit;
use core::ptr;

/// Classes of 8 B, 16 B, ... up to 32 KiB.
const CLASSES: usize = 13;

/// A fixed heap of `N` bytes, handed out in power-of-two blocks.
pub(crate) struct SizeClassHeap<const N: usize> {
    /// The memory.
    mem: UnsafeCell<[MaybeUninit<u8>; N]>,
    /// Bytes of `mem` cut into blocks so far (alignment gaps included).
    used: Cell<usize>,
    /// Each class's first free block (null: none); a free block's first word is the
    /// next one.
    free: [Cell<*mut u8>; CLASSES],
}

// SAFETY: the heap is used from one thread of execution only: the firmware runs on one
// core and allocates only from `main`, never from an interrupt handler (and the host
// test that runs it has one thread), so no two calls into it ever overlap.
unsafe impl<const N: usize> Sync for SizeClassHeap<N> {}

impl<const N: usize> SizeClassHeap<N> {
    /// An empty heap.
    pub(crate) const fn new() -> Self {
        SizeClassHeap {
            mem: UnsafeCell::new([MaybeUninit::uninit(); N]),
            used: Cell::new(0),
            free: [const { Cell::new(ptr::null_mut()) }; CLASSES],
        }
    }

    /// Bytes cut from the array so far: the heap's high-water mark.
    #[allow(dead_code, reason = "for the host test")]
    pub(crate) fn used(&self) -> usize {
        self.used.get()
    }

    /// Whether `block` lies in this heap's array.
    #[allow(dead_code, reason = "for the host test")]
    pub(crate) fn contains(&self, block: *mut u8) -> bool {
        let base = self.mem.get().cast::<u8>().addr();
        (base..base + N).contains(&block.addr())
    }
}

/// The class of `layout`: the power of two at least its size, its alignment and 8.
fn class(layout: Layout) -> usize {
    let size = layout.size().max(layout.align()).max(8);
    (usize::BITS - (size - 1).leading_zeros()) as usize - 3
}

// SAFETY: `alloc` returns null or a block of at least `layout.size()` bytes, aligned to
// `layout.align()`, inside `mem`, that no live allocation overlaps: a block is either
// cut fresh past every block cut before, or taken off its class's list, where only
// `dealloc` puts blocks (of that class) their owner gave back.
unsafe impl<const N: usize> GlobalAlloc for SizeClassHeap<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let class = class(layout);
        if class >= CLASSES {
            return ptr::null_mut();
        }
        let head = &self.free[class];
        let block = head.get();
        if !block.is_null() && block.addr().is_multiple_of(layout.align()) {
            // SAFETY: `block` is a free block of this class (at least 8 bytes, aligned to
            // 8, inside `mem`): `dealloc` wrote the next free block into its first word.
            head.set(unsafe { block.cast::<*mut u8>().read() });
            return block;
        }
        let base = self.mem.get().cast::<u8>();
        let gap = base
            .wrapping_add(self.used.get())
            .align_offset(layout.align().max(8));
        let start = self.used.get() + gap;
        match start.checked_add(8 << class) {
            Some(end) if end <= N => {
                self.used.set(end);
                base.wrapping_add(start)
            }
            _ => ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let head = &self.free[class(layout)];
        // SAFETY: the caller gives back a block `alloc` returned for `layout` (so one of
        // this class: at least 8 bytes, aligned to 8) and no longer uses it.
        unsafe { block.cast::<*mut u8>().write(head.get()) };
        head.set(block);
    }
}
