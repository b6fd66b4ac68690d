//! The firmware's byte-at-a-time memory functions (examples/firmware/src/mem.rs), held to
//! the standard library's answers on the host. Their names are `memcpy`, `memmove`,
//! `memset` and `memcmp`, so in this binary they also stand in for libc's: every copy
//! and comparison the test process makes goes through them.

#[path = "../../examples/firmware/src/mem.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "the EABI names are for Arm only; the module is the firmware's, public there"
)]
mod mem;

use hamtdb_tests::SplitMix64;

fn bytes(rng: &mut SplitMix64, n: usize, alphabet: u64) -> Vec<u8> {
    (0..n).map(|_| (rng.next_u64() % alphabet) as u8).collect()
}

#[test]
fn memcmp_orders_as_slices_do() {
    let mut rng = SplitMix64::new(0x6d65_6d63_6d70);
    let mut seen = [0usize; 3];
    for _ in 0..20_000 {
        let n = (rng.next_u64() % 40) as usize;
        // A small alphabet and a shared prefix, so that equal runs and late
        // differences (and bytes above 0x7f, which must compare unsigned) all occur.
        let alphabet = [2, 3, 256][(rng.next_u64() % 3) as usize];
        let a = bytes(&mut rng, n, alphabet);
        let mut b = a.clone();
        if n > 0 && rng.next_u64().is_multiple_of(2) {
            let at = (rng.next_u64() % n as u64) as usize;
            b[at] = (rng.next_u64() % 256) as u8;
        }
        // SAFETY: both buffers hold `n` bytes.
        let got = unsafe { mem::memcmp(a.as_ptr(), b.as_ptr(), n) };
        let want = a.cmp(&b);
        assert_eq!(got.cmp(&0), want, "{a:?} vs {b:?}");
        if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
            assert_eq!(got, i32::from(a[i]) - i32::from(b[i]));
        }
        seen[(want as i8 + 1) as usize] += 1;
    }
    assert!(
        seen.iter().all(|&s| s > 1000),
        "every order occurred: {seen:?}"
    );
}

#[test]
fn memmove_and_memset_agree_with_copy_within_and_fill() {
    let mut rng = SplitMix64::new(0x6d65_6d6d_6f76);
    for _ in 0..5_000 {
        let len = 1 + (rng.next_u64() % 64) as usize;
        let mut ours = bytes(&mut rng, len, 256);
        let mut want = ours.clone();
        let src = (rng.next_u64() % len as u64) as usize;
        let dst = (rng.next_u64() % len as u64) as usize;
        let n = (rng.next_u64() % (len - src.max(dst)) as u64 + 1) as usize;
        let n = n.min(len - src.max(dst));
        want.copy_within(src..src + n, dst);
        let base = ours.as_mut_ptr();
        // SAFETY: `src + n` and `dst + n` are at most `len`: both ranges are in `ours`.
        let back = unsafe { mem::memmove(base.wrapping_add(dst), base.wrapping_add(src), n) };
        assert_eq!(back, base.wrapping_add(dst));
        assert_eq!(ours, want, "move {n} from {src} to {dst}");
        let c = rng.next_u64() as u8;
        want[dst..dst + n].fill(c);
        // SAFETY: `dst + n` is at most `len`.
        unsafe { mem::memset(base.wrapping_add(dst), i32::from(c), n) };
        assert_eq!(ours, want, "set {n} at {dst}");
    }
}
