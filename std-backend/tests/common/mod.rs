//! Helpers shared by the `Db` test binaries.

use hamtdb::GrowthPolicy;

/// splitmix64: a small, seeded generator (no dependency needed).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Growth from 64 KiB, doubling: small files that grow often.
pub(crate) fn small_growth() -> GrowthPolicy {
    GrowthPolicy {
        initial: 64 << 10,
        double_until: 1 << 30,
        step: 1 << 30,
        step_divisor: 1,
    }
}
