//! MurmurHash3 by Austin Appleby (public domain), x86_32 and x64_128 variants.
//!
//! Blocks are read little-endian whatever the host, so hashes (and with them the on-disk
//! trie shape and checksums) are the same on every platform.

const C1_32: u32 = 0xcc9e_2d51;
const C2_32: u32 = 0x1b87_3593;

#[inline(always)]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Out of line on Arm, where its two 64-bit multiplies take a dozen instructions each.
#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[cfg_attr(target_arch = "arm", inline(never))]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Little-endian integer from up to 8 bytes (missing high bytes are zero).
#[inline(always)]
fn le_tail(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// MurmurHash3_x86_32 of `data` with `seed`.
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(C1_32).rotate_left(15).wrapping_mul(C2_32);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        // At most 3 bytes: the value fits a u32.
        let k = (le_tail(tail) as u32)
            .wrapping_mul(C1_32)
            .rotate_left(15)
            .wrapping_mul(C2_32);
        h ^= k;
    }
    // The reference mixes in the length as a 32-bit value.
    h ^= data.len() as u32;
    fmix32(h)
}

const C1_64: u64 = 0x87c3_7b91_1142_53d5;
const C2_64: u64 = 0x4cf5_ad43_2745_937f;

/// MurmurHash3_x64_128 of `data` with `seed`, as the two 64-bit halves `(h1, h2)`
/// (the reference writes `h1` then `h2`, each little-endian, as its 16 output bytes).
#[inline]
pub fn murmur3_x64_128(data: &[u8], seed: u32) -> (u64, u64) {
    let mut h1 = u64::from(seed);
    let mut h2 = u64::from(seed);
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let (lo, hi) = block.split_at(8);
        let mut k1 = le_tail(lo);
        let mut k2 = le_tail(hi);
        k1 = k1.wrapping_mul(C1_64).rotate_left(31).wrapping_mul(C2_64);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2_64).rotate_left(33).wrapping_mul(C1_64);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    if tail.len() > 8 {
        let k2 = le_tail(&tail[8..])
            .wrapping_mul(C2_64)
            .rotate_left(33)
            .wrapping_mul(C1_64);
        h2 ^= k2;
    }
    if !tail.is_empty() {
        let k1 = le_tail(&tail[..tail.len().min(8)])
            .wrapping_mul(C1_64)
            .rotate_left(31)
            .wrapping_mul(C2_64);
        h1 ^= k1;
    }
    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// SMHasher's `VerificationTest`: hash keys {}, {0}, {0,1}, ... {0..254} with seed
    /// `256 - i`, concatenate the outputs, hash that with seed 0, and read the first
    /// four bytes as a little-endian u32.
    fn verification(hash_bytes: impl Fn(&[u8], u32) -> Vec<u8>) -> u32 {
        let key: Vec<u8> = (0..=255u8).collect();
        let mut all = Vec::new();
        for i in 0..256 {
            all.extend(hash_bytes(&key[..i], 256 - i as u32));
        }
        let last = hash_bytes(&all, 0);
        u32::from_le_bytes([last[0], last[1], last[2], last[3]])
    }

    fn x86_32_bytes(data: &[u8], seed: u32) -> Vec<u8> {
        murmur3_x86_32(data, seed).to_le_bytes().to_vec()
    }

    fn x64_128_bytes(data: &[u8], seed: u32) -> Vec<u8> {
        let (h1, h2) = murmur3_x64_128(data, seed);
        let mut out = h1.to_le_bytes().to_vec();
        out.extend(h2.to_le_bytes());
        out
    }

    #[test]
    // 2 x 256 hashes of up to 255 bytes: 20 s under Miri, for code with no unsafe and
    // no memory access beyond safe slice indexing; the native run checks the values.
    #[cfg_attr(miri, ignore)]
    fn smhasher_verification_values() {
        assert_eq!(verification(x86_32_bytes), 0xB0F5_7EE3);
        assert_eq!(verification(x64_128_bytes), 0x6384_BA69);
    }

    #[test]
    fn x86_32_known_triples() {
        let cases: &[(&[u8], u32, u32)] = &[
            (b"", 0, 0),
            (b"", 1, 0x514E_28B7),
            (b"", 0xffff_ffff, 0x81F1_6F39),
            (b"\0\0\0\0", 0, 0x2362_F9DE),
            (b"aaaa", 0x9747_b28c, 0x5A97_808A),
            (b"aaa", 0x9747_b28c, 0x283E_0130),
            (b"aa", 0x9747_b28c, 0x5D21_1726),
            (b"a", 0x9747_b28c, 0x7FA0_9EA6),
            (b"abcd", 0x9747_b28c, 0xF047_8627),
            (b"Hello, world!", 0x9747_b28c, 0x2488_4CBA),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x9747_b28c,
                0x2FA8_26CD,
            ),
        ];
        for &(data, seed, want) in cases {
            assert_eq!(murmur3_x86_32(data, seed), want, "{data:?} seed {seed:#x}");
        }
    }

    #[test]
    fn x64_128_known_triples() {
        assert_eq!(murmur3_x64_128(b"", 0), (0, 0));
        assert_eq!(
            murmur3_x64_128(b"The quick brown fox jumps over the lazy dog", 0),
            (0xe34b_bc7b_bc07_1b6c, 0x7a43_3ca9_c49a_9347)
        );
    }

    #[test]
    fn every_tail_length_is_distinct() {
        // Each tail branch (0..15 extra bytes) must feed into the hash.
        let data: Vec<u8> = (1..=40u8).collect();
        let mut seen = std::collections::HashSet::new();
        for len in 0..=data.len() {
            assert!(seen.insert(murmur3_x64_128(&data[..len], 7)));
            assert!(seen.insert((u64::from(murmur3_x86_32(&data[..len], 7)), 0)));
        }
    }
}
