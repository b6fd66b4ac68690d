//! [`SplitMix64`]: a tiny deterministic pseudo-random generator for tests and fuzz targets.
//!
//! Crash tests must be reproducible from a printed seed, on every platform and across
//! dependency upgrades, so the generator lives here rather than in a crate whose stream
//! may change between versions. SplitMix64 (Steele, Lea and Flood, 2014; the seeding
//! generator of Java's `SplittableRandom` and of the xoshiro family) is one add and two
//! multiply-xorshift rounds per output, passes BigCrush, and any seed — zero included —
//! gives a full-period stream. It is **not** cryptographic.

use core::ops::Range;

/// A SplitMix64 generator: the same seed always yields the same stream.
///
/// ```
/// use hamtdb_tests::SplitMix64;
///
/// let mut a = SplitMix64::new(42);
/// let mut b = SplitMix64::new(42);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let roll = a.below(6);
/// assert!(roll < 6);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The golden-ratio increment that walks the state through all 2^64 values.
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    /// A generator whose stream is fixed by `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(Self::GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next 32 random bits (the high half of [`next_u64`](Self::next_u64), which is
    /// the better-mixed one).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A value in `0 .. bound`, or 0 when `bound` is 0.
    ///
    /// Uses Lemire's multiply-shift reduction; its bias (at most `bound / 2^64`) does not
    /// matter for tests, and it keeps one draw per call so streams stay easy to reason
    /// about.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A `usize` in `0 .. bound`, or 0 when `bound` is 0.
    pub fn below_usize(&mut self, bound: usize) -> usize {
        // Exact: `below(b) < b`, and `b` came from a `usize`.
        self.below(bound as u64) as usize
    }

    /// A value in `range`, or `range.start` when the range is empty.
    pub fn in_range(&mut self, range: Range<u64>) -> u64 {
        range.start + self.below(range.end.saturating_sub(range.start))
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// `true` with probability `numerator / denominator` (always `false` when the
    /// denominator is 0, always `true` when the numerator is at least the denominator).
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }

    /// Fills `buf` with random bytes.
    pub fn fill_bytes(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// A new generator seeded from this one, for handing an independent stream to a
    /// sub-task without disturbing the order of draws that follow.
    pub fn fork(&mut self) -> SplitMix64 {
        SplitMix64::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_stream() {
        // Reference values of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn bounded_draws_stay_in_bounds() {
        let mut rng = SplitMix64::new(7);
        for bound in [1u64, 2, 3, 10, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(rng.below(bound) < bound);
            }
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.in_range(5..5), 5);
        assert!((10..20).contains(&rng.in_range(10..20)));
        assert!(!rng.chance(0, 10));
        assert!(rng.chance(10, 10));
    }

    #[test]
    fn fill_bytes_handles_partial_chunks() {
        let mut a = SplitMix64::new(3);
        let mut b = SplitMix64::new(3);
        let mut buf = [0u8; 13];
        a.fill_bytes(&mut buf);
        let first = b.next_u64().to_le_bytes();
        assert_eq!(&buf[..8], &first);
        assert_eq!(&buf[8..], &b.next_u64().to_le_bytes()[..5]);
    }
}
