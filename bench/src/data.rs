//! The workload's data: random keys and values from a fixed seed, the order of the
//! lookups, absent keys, and the updates and removals every store receives alike.

/// Bytes of every key.
pub const KEY_LEN: usize = 24;
/// Bytes of every value.
pub const VALUE_LEN: usize = 150;

/// A key.
pub type Key = [u8; KEY_LEN];
/// A value.
pub type Val = [u8; VALUE_LEN];
/// A new value for the key at an index of [`Data::keys`].
pub type Update = (u32, Val);

/// SplitMix64: small, fast, and the same stream on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// A number below `n` (`n > 0`), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        self.fill(&mut a);
        a
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// How much of each workload to run. [`Sizes::issue`] is the issue's definition; tests
/// use smaller counts so that a debug build finishes in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Keys loaded.
    pub keys: usize,
    /// Durable commits of one put each.
    pub single_commits: usize,
    /// Durable commits of `batch_len` puts each.
    pub batches: usize,
    /// Puts per batch commit.
    pub batch_len: usize,
    /// Keys overwritten in one transaction (at most `keys`).
    pub overwrites: usize,
}

impl Sizes {
    /// The issue's workloads over `keys` keys: 1,000 single-put commits, 100 batches of
    /// 1,000 puts, 100,000 overwrites (or every key, when fewer).
    pub fn issue(keys: usize) -> Self {
        Sizes {
            keys,
            single_commits: 1000,
            batches: 100,
            batch_len: 1000,
            overwrites: keys.min(100_000),
        }
    }
}

/// Everything the workloads read, generated once and shared by every store.
pub struct Data {
    /// The loaded keys.
    pub keys: Vec<Key>,
    /// Their values at load.
    pub values: Vec<Val>,
    /// Every loaded key once, in random order: the lookups.
    pub lookups: Vec<Key>,
    /// As many keys that are not loaded.
    pub absent: Vec<Key>,
    /// One durable commit each (existing keys, new values: the key count stays put, so
    /// the size workloads compare like with like).
    pub singles: Vec<Update>,
    /// Each a durable commit of many puts (existing keys, new values).
    pub batches: Vec<Vec<Update>>,
    /// Distinct existing keys with new values, one transaction.
    pub overwrites: Vec<Update>,
    /// Indexes of the keys removed (every second one: the keys are random, so a random
    /// half).
    pub removed: Vec<u32>,
}

impl Data {
    /// Generates the data for `sizes` from `seed`.
    pub fn generate(sizes: Sizes, seed: u64) -> Self {
        let n = sizes.keys;
        assert!(
            n > 0 && n <= u32::MAX as usize,
            "keys must be in 1..=u32::MAX"
        );
        let mut rng = Rng::new(seed);
        let keys: Vec<Key> = (0..n).map(|_| rng.array()).collect();
        let values: Vec<Val> = (0..n).map(|_| rng.array()).collect();
        let mut lookups = keys.clone();
        rng.shuffle(&mut lookups);
        let absent: Vec<Key> = (0..n).map(|_| rng.array()).collect();
        let update = |rng: &mut Rng| (rng.below(n as u64) as u32, rng.array());
        let singles = (0..sizes.single_commits)
            .map(|_| update(&mut rng))
            .collect();
        let batches = (0..sizes.batches)
            .map(|_| (0..sizes.batch_len).map(|_| update(&mut rng)).collect())
            .collect();
        let mut order: Vec<u32> = (0..n as u32).collect();
        rng.shuffle(&mut order);
        let overwrites = order[..sizes.overwrites.min(n)]
            .iter()
            .map(|&i| (i, rng.array()))
            .collect();
        let removed = (0..n as u32).step_by(2).collect();
        Data {
            keys,
            values,
            lookups,
            absent,
            singles,
            batches,
            overwrites,
            removed,
        }
    }

    /// Bytes of keys and values loaded.
    pub fn logical_bytes(&self) -> u64 {
        (self.keys.len() * (KEY_LEN + VALUE_LEN)) as u64
    }

    /// The [`Sum`] a lookup of every loaded key must produce right after the load.
    pub fn loaded_sum(&self) -> Sum {
        let mut sum = Sum::default();
        for v in &self.values {
            sum.add(v);
        }
        sum
    }

    /// Each key's value after every workload ran (`None`: removed), in key order.
    pub fn final_values(&self) -> Vec<Option<&Val>> {
        let mut out: Vec<Option<&Val>> = self.values.iter().map(Some).collect();
        let updates = self
            .singles
            .iter()
            .chain(self.batches.iter().flatten())
            .chain(&self.overwrites);
        for (i, v) in updates {
            out[*i as usize] = Some(v);
        }
        for &i in &self.removed {
            out[i as usize] = None;
        }
        out
    }
}

/// What a pass over some values saw: how many, and a cheap fingerprint of them (their
/// first eight bytes and their length), so that reading the wrong value is noticed
/// without comparing every byte in the timed loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum {
    /// Values seen.
    pub found: u64,
    /// Wrapping sum of the values' fingerprints.
    pub fingerprint: u64,
}

impl Sum {
    /// Counts `value`.
    #[inline]
    pub fn add(&mut self, value: &[u8]) {
        let mut head = [0u8; 8];
        let n = value.len().min(8);
        head[..n].copy_from_slice(&value[..n]);
        self.found += 1;
        self.fingerprint = self
            .fingerprint
            .wrapping_add(u64::from_le_bytes(head))
            .wrapping_add(value.len() as u64);
    }

    /// Both sums together.
    pub fn merge(self, other: Sum) -> Sum {
        Sum {
            found: self.found + other.found,
            fingerprint: self.fingerprint.wrapping_add(other.fingerprint),
        }
    }
}
