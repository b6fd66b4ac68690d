//! The free-space map: extents of the data area that hold nothing reachable.
//!
//! Extents are kept coalesced, by address, and indexed by size class so that an
//! allocation takes the **lowest** address that fits: live data then drifts towards the
//! start of the region, which is what lets compaction cut the tail.
//!
//! On Arm (firmware) there is no size-class index: an allocation scans the extents in
//! address order for the extent the classes would pick ([`FreeMap::peek_scan`], the same
//! answer, which a test checks on every allocation of a random workload). The few
//! extents of a microcontroller's region make the scan cheap, and the index's code is
//! gone from the image.

#[cfg(not(target_arch = "arm"))]
use alloc::vec::Vec;

use super::ordered::OrderedMap;

/// How many too-small extents of the exact class an allocation looks at before it
/// settles for a larger class.
const EXACT_CLASS_PROBES: usize = 8;

/// The size class of an extent of `len` bytes: class `c` holds extents of
/// `2^c .. 2^(c+1)` bytes (0 to 63).
fn class_of(len: u64) -> usize {
    (63 - len.max(1).leading_zeros()) as usize
}

/// Free extents of the data area.
#[derive(Debug, Clone)]
pub(crate) struct FreeMap {
    /// Offset → length of every extent.
    by_offset: OrderedMap,
    /// The same extents by size class, offset → length: the length at hand saves a
    /// `by_offset` lookup in `peek`. As long as the largest class used so far: a
    /// `Vec` rather than an array of all 64 classes, which made the free map (and the
    /// space and map around it) large to move and cost firmware code at every move.
    #[cfg(not(target_arch = "arm"))]
    by_class: Vec<OrderedMap>,
    total: u64,
}

impl Default for FreeMap {
    fn default() -> Self {
        FreeMap {
            by_offset: OrderedMap::new(),
            #[cfg(not(target_arch = "arm"))]
            by_class: Vec::new(),
            total: 0,
        }
    }
}

impl FreeMap {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Total free bytes.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The extent that ends exactly at `end`, if any.
    pub(crate) fn extent_ending_at(&self, end: u64) -> Option<(u64, u64)> {
        let (off, len) = self.by_offset.last_below(end)?;
        (off + len == end).then_some((off, len))
    }

    fn insert_raw(&mut self, off: u64, len: u64) {
        self.by_offset.insert(off, len);
        #[cfg(not(target_arch = "arm"))]
        {
            let class = class_of(len);
            if self.by_class.len() <= class {
                self.by_class.resize_with(class + 1, OrderedMap::new);
            }
            self.by_class[class].insert(off, len);
        }
    }

    fn remove_raw(&mut self, off: u64, len: u64) {
        self.by_offset.remove(off);
        #[cfg(not(target_arch = "arm"))]
        if let Some(set) = self.by_class.get_mut(class_of(len)) {
            set.remove(off);
        }
        #[cfg(target_arch = "arm")]
        let _ = len;
    }

    /// Returns `off .. off + len` to the map, merging with neighbours. The range must not
    /// overlap a free extent (the callers free each entry once).
    pub(crate) fn release(&mut self, mut off: u64, mut len: u64) {
        if len == 0 {
            return;
        }
        debug_assert!(!self.overlaps(off, len), "double free of {off}+{len}");
        self.total += len;
        if let Some((p_off, p_len)) = self.extent_ending_at(off) {
            self.remove_raw(p_off, p_len);
            off = p_off;
            len += p_len;
        }
        if let Some(n_len) = self.by_offset.get(off + len) {
            self.remove_raw(off + len, n_len);
            len += n_len;
        }
        self.insert_raw(off, len);
    }

    /// Whether any byte of `off .. off + len` is free.
    pub(crate) fn overlaps(&self, off: u64, len: u64) -> bool {
        // Extents are disjoint and sorted: the last one starting below the end reaches
        // furthest of those, so it overlaps if any does.
        self.by_offset
            .last_below(off + len)
            .is_some_and(|(p, pl)| p + pl > off)
    }

    /// Takes `len` bytes at the lowest address that fits, if any extent does.
    pub(crate) fn allocate(&mut self, len: u64) -> Option<u64> {
        let off = self.peek(len)?;
        let ext_len = self.by_offset.get(off)?;
        self.remove_raw(off, ext_len);
        self.total -= len;
        if ext_len > len {
            self.insert_raw(off + len, ext_len - len);
        }
        Some(off)
    }

    /// Where [`allocate`](Self::allocate) would put `len` bytes, without taking them.
    #[cfg(target_arch = "arm")]
    pub(crate) fn peek(&self, len: u64) -> Option<u64> {
        self.peek_scan(len)
    }

    /// [`peek`](Self::peek) without the class index: the first extent in address order
    /// that the classes would pick, which is the lowest of (a) the first extent of
    /// `len`'s class that fits, among the lowest [`EXACT_CLASS_PROBES`] of that class,
    /// and (b) the lowest extent of a larger class.
    #[cfg(any(test, target_arch = "arm"))]
    pub(crate) fn peek_scan(&self, len: u64) -> Option<u64> {
        let class = class_of(len);
        let mut probes = 0;
        for (off, ext_len) in self.by_offset.iter() {
            let c = class_of(ext_len);
            if c > class {
                return Some(off);
            }
            if c == class && probes < EXACT_CLASS_PROBES {
                if ext_len >= len {
                    return Some(off);
                }
                probes += 1;
            }
        }
        None
    }

    /// Where [`allocate`](Self::allocate) would put `len` bytes, without taking them.
    #[cfg(not(target_arch = "arm"))]
    pub(crate) fn peek(&self, len: u64) -> Option<u64> {
        let class = class_of(len);
        let mut best: Option<u64> = None;
        let Some(exact) = self.by_class.get(class) else {
            // No extent of this class or a larger one.
            return None;
        };
        // The exact class may hold extents too small; look at a few of the lowest.
        for (off, ext_len) in exact.iter().take(EXACT_CLASS_PROBES) {
            if ext_len >= len {
                best = Some(off);
                break;
            }
        }
        for set in &self.by_class[class + 1..] {
            if let Some((off, _)) = set.first()
                && best.is_none_or(|b| off < b)
            {
                best = Some(off);
            }
        }
        best
    }

    /// Takes exactly `off .. off + len`, which must lie inside one free extent.
    #[cfg(test)]
    pub(crate) fn take(&mut self, off: u64, len: u64) -> bool {
        let Some((e_off, e_len)) = self.by_offset.last_below(off + 1) else {
            return false;
        };
        if e_off + e_len < off + len {
            return false;
        }
        self.remove_raw(e_off, e_len);
        self.total -= len;
        if off > e_off {
            self.insert_raw(e_off, off - e_off);
        }
        if e_off + e_len > off + len {
            self.insert_raw(off + len, e_off + e_len - off - len);
        }
        true
    }

    /// Drops every free byte at or above `end` (the data area was cut there).
    pub(crate) fn cut_at(&mut self, end: u64) {
        while let Some((off, len)) = self.by_offset.last() {
            if off + len <= end {
                break;
            }
            self.remove_raw(off, len);
            self.total -= len;
            if off < end {
                self.insert_raw(off, end - off);
                self.total += end - off;
                break;
            }
        }
    }

    /// Free extents in address order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.by_offset.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn allocates_lowest_fitting_address_and_coalesces() {
        let mut free = FreeMap::new();
        free.release(1000, 64);
        free.release(2000, 512);
        free.release(5000, 32);
        assert_eq!(free.total(), 608);
        // 32 fits at 1000 (lowest), not at 5000.
        assert_eq!(free.allocate(32), Some(1000));
        // 100 only fits at 2000.
        assert_eq!(free.allocate(100), Some(2000));
        assert_eq!(free.allocate(1000), None);
        free.release(1000, 32);
        // 1000..1032 merges with the remaining 1032..1064.
        assert_eq!(free.iter().collect::<Vec<_>>()[0], (1000, 64));
        free.release(2000, 100);
        assert_eq!(free.extent_ending_at(2512), Some((2000, 512)));
        assert_eq!(free.total(), 64 + 512 + 32);
    }

    #[test]
    fn the_scan_picks_what_the_classes_pick_past_the_probe_limit() {
        let mut free = FreeMap::new();
        // Ten extents of 8 bytes (class 3, too small for 12), then one of 15 (class 3,
        // fits, but past the probes), then one of 40 (class 5).
        for i in 0..10 {
            free.release(i * 100, 8);
        }
        free.release(1000, 15);
        free.release(2000, 40);
        assert_eq!(free.peek(12), Some(2000));
        assert_eq!(free.peek_scan(12), Some(2000));
        free.release(3000, 64);
        assert_eq!(free.peek_scan(8), free.peek(8));
        assert_eq!(free.peek_scan(100), None);
        assert_eq!(free.peek(100), None);
    }

    #[test]
    fn take_and_cut() {
        let mut free = FreeMap::new();
        free.release(0, 100);
        assert!(free.take(40, 20));
        assert_eq!(free.iter().collect::<Vec<_>>(), [(0, 40), (60, 40)]);
        assert!(!free.take(30, 20), "overlaps an allocated byte");
        free.cut_at(70);
        assert_eq!(free.iter().collect::<Vec<_>>(), [(0, 40), (60, 10)]);
        assert_eq!(free.total(), 50);
        assert!(free.overlaps(65, 10));
        assert!(!free.overlaps(40, 20));
    }

    #[test]
    fn matches_a_byte_model_under_random_use() {
        // A tiny LCG keeps this deterministic without a dependency.
        let mut state = 0x1234_5678u64;
        let mut next = |m: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            (state >> 33) % m
        };
        let mut free = FreeMap::new();
        let mut model = [true; 512];
        free.release(0, 512);
        let mut live: Vec<(u64, u64)> = Vec::new();
        for _ in 0..if cfg!(miri) { 150 } else { 2000 } {
            if next(2) == 0 {
                let len = next(40) + 1;
                assert_eq!(free.peek(len), free.peek_scan(len), "allocating {len}");
                if let Some(off) = free.allocate(len) {
                    for b in &mut model[off as usize..(off + len) as usize] {
                        assert!(*b, "allocated a byte that was not free");
                        *b = false;
                    }
                    live.push((off, len));
                } else {
                    // A refusal is only allowed when no extent of a larger class exists.
                    assert!(free.iter().all(|(_, l)| class_of(l) <= class_of(len)));
                }
            } else if !live.is_empty() {
                let (off, len) = live.swap_remove(next(live.len() as u64) as usize);
                free.release(off, len);
                for b in &mut model[off as usize..(off + len) as usize] {
                    *b = true;
                }
            }
            assert_eq!(free.total(), model.iter().filter(|&&f| f).count() as u64);
        }
    }
}
