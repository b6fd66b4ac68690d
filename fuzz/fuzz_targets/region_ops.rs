//! Arbitrary operation sequences against `VecRegion` and `SliceRegion`, checked
//! against a plain `Vec<u8>` model: every access is either inside the region and
//! agrees with the model, or is a typed error — never a panic.
#![no_main]

use arbitrary::Arbitrary;
use hamtdb_core::{Region, RegionError, RegionOp, SliceRegion, VecRegion};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Read { offset: u64, len: u16 },
    View { offset: u64, len: u16 },
    Write { offset: u64, data: Vec<u8> },
    Grow { min_len: u32 },
    Truncate { new_len: u32 },
    Sync { offset: u64, len: u64 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u16,
    ops: Vec<Op>,
}

fn in_bounds(offset: u64, len: u64, model_len: usize) -> bool {
    offset
        .checked_add(len)
        .is_some_and(|end| end <= model_len as u64)
}

/// Runs `ops` against `region`, whose length follows `model.len()` when `growable`.
fn run(region: &dyn Region, model: &mut Vec<u8>, capacity: usize, growable: bool, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Read { offset, len } => {
                let mut buf = vec![0u8; usize::from(*len)];
                let result = region.read(*offset, &mut buf);
                if in_bounds(*offset, u64::from(*len), model.len()) {
                    result.expect("in-bounds read");
                    let start = *offset as usize;
                    assert_eq!(buf, model[start..start + buf.len()]);
                } else {
                    assert!(matches!(
                        result,
                        Err(RegionError::OutOfBounds(b)) if b.op() == RegionOp::Read
                    ));
                }
            }
            Op::View { offset, len } => {
                let result = region.view(*offset, usize::from(*len));
                if in_bounds(*offset, u64::from(*len), model.len()) {
                    let start = *offset as usize;
                    assert_eq!(
                        result.expect("in-bounds view"),
                        &model[start..start + usize::from(*len)]
                    );
                } else {
                    assert!(result.is_err());
                }
            }
            Op::Write { offset, data } => {
                // SAFETY: single thread, and no view outlives the arm that made it.
                let result = unsafe { region.write(*offset, data) };
                if in_bounds(*offset, data.len() as u64, model.len()) {
                    result.expect("in-bounds write");
                    let start = *offset as usize;
                    model[start..start + data.len()].copy_from_slice(data);
                } else {
                    assert!(result.is_err());
                }
            }
            Op::Grow { min_len } => {
                let min_len = u64::from(*min_len);
                match region.grow(min_len) {
                    Ok(new_len) => {
                        assert!(new_len >= min_len && new_len <= capacity as u64);
                        if growable && new_len as usize > model.len() {
                            model.resize(new_len as usize, 0);
                        }
                    }
                    Err(RegionError::Full { .. }) => assert!(min_len > capacity as u64),
                    Err(other) => panic!("unexpected grow error {other:?}"),
                }
            }
            Op::Truncate { new_len } => {
                // SAFETY: single thread, and no view outlives the arm that made it.
                let new_len = unsafe { region.truncate(u64::from(*new_len)) }.expect("truncate");
                assert!(new_len <= capacity as u64);
                if growable && (new_len as usize) < model.len() {
                    model.truncate(new_len as usize);
                }
            }
            Op::Sync { offset, len } => {
                let result = region.sync(*offset, *len);
                assert_eq!(result.is_ok(), in_bounds(*offset, *len, model.len()));
            }
        }
        assert_eq!(region.len(), model.len() as u64);
    }
}

fuzz_target!(|input: Input| {
    let capacity = usize::from(input.capacity);
    let vec_region = VecRegion::with_capacity(capacity);
    run(&vec_region, &mut Vec::new(), capacity, true, &input.ops);

    let mut backing = vec![0u8; capacity];
    let mut model = backing.clone();
    let slice_region = SliceRegion::new(&mut backing);
    run(&slice_region, &mut model, capacity, false, &input.ops);
    assert_eq!(
        slice_region.view(0, capacity).expect("whole slice"),
        &model[..]
    );
});
