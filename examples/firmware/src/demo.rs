//! The firmware's work, kept free of anything target-specific so that a host test
//! (`tests/tests/firmware_demo.rs`) runs the very same code: create a map on a byte
//! array, put, get, delete, commit, reopen from the same bytes, compact.
//!
//! It formats nothing: a failure is a [`Failed`] step, not a message, so the image
//! carries no `core::fmt` machinery for it. Of a map error it keeps the kind
//! ([`ErrorKind`]), not the details: with nothing reading the offsets and texts, the
//! optimiser drops their construction from the image (about 1.2 KiB).

use hamtdb_core::{Error, Map, MapOptions, ReadTxn, RegionError, SliceRegion};

/// Keys the demo writes.
pub(crate) const KEYS: u8 = 48;

/// Values longer than this get an entry of their own (the rest live in their node).
const INLINE_MAX: u32 = 16;

/// The step at which the demo found something wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failed {
    /// A map operation returned an error of this kind.
    Map(ErrorKind),
    /// A value read back was not the one written.
    WrongValue,
    /// The map's key count was not the expected one.
    WrongCount,
    /// Compaction did not shrink the used space.
    NoCompaction,
}

/// What kind of error a map operation returned: the demo keeps the kind, not the
/// details (offsets, lengths), which nothing on the device would read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The region is full.
    RegionFull,
    /// Another region error.
    Region,
    /// The image is damaged.
    Corrupted,
    /// Any other error.
    Other,
}

impl From<Error> for Failed {
    fn from(e: Error) -> Self {
        Failed::Map(match e {
            Error::Region(RegionError::Full { .. }) => ErrorKind::RegionFull,
            Error::Region(_) => ErrorKind::Region,
            Error::Corrupted(_) => ErrorKind::Corrupted,
            _ => ErrorKind::Other,
        })
    }
}

/// What a successful run leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Keys in the map at the end.
    pub(crate) keys: u64,
    /// The used end before and after compaction.
    pub(crate) used_before: u64,
    /// See `used_before`.
    pub(crate) used_after: u64,
}

fn key(i: u8) -> [u8; 8] {
    // One 8-byte constant and a byte store, not eight byte stores.
    let mut k = *b"sensor/\0";
    k[7] = i;
    k
}

/// Short values live inline; every fourth key gets a value long enough for an entry of
/// its own.
fn value(i: u8, round: u8, out: &mut [u8; 40]) -> &[u8] {
    let len = if i.is_multiple_of(4) { 40 } else { 4 };
    for (n, b) in out.iter_mut().enumerate() {
        *b = i ^ round ^ (n as u8);
    }
    &out[..len]
}

fn expect_value(map: &ReadTxn<'_, SliceRegion<'_>>, i: u8, round: u8) -> Result<(), Failed> {
    let mut want = [0u8; 40];
    let want = value(i, round, &mut want);
    match map.get(&key(i))? {
        Some(got) if got == want => Ok(()),
        _ => Err(Failed::WrongValue),
    }
}

/// Checks every key after the writes: each third one deleted, the even ones holding
/// their round-1 value, the rest their round-0 value.
fn check_all(map: &Map<SliceRegion<'_>>) -> Result<(), Failed> {
    let map = map.begin_read();
    for i in 0..KEYS {
        if i.is_multiple_of(3) {
            if map.get(&key(i))?.is_some() {
                return Err(Failed::WrongValue);
            }
        } else {
            expect_value(&map, i, if i.is_multiple_of(2) { 1 } else { 0 })?;
        }
    }
    Ok(())
}

/// Runs the whole sequence on `bytes` (zeroed, any size that holds the keys: 64 KiB in
/// the firmware).
pub(crate) fn run(bytes: &mut [u8]) -> Result<Summary, Failed> {
    let options = MapOptions {
        inline_max: INLINE_MAX,
        seed: 0x0123_4567_89ab_cdef,
    };
    {
        let map = Map::create(SliceRegion::new(&mut *bytes), options)?;
        // Round 0: every key, in one transaction.
        let mut txn = map.begin_write();
        let mut buf = [0u8; 40];
        for i in 0..KEYS {
            txn.put(&key(i), value(i, 0, &mut buf))?;
        }
        txn.commit()?;
        // Round 1: overwrite the even keys, one commit each (old nodes become garbage).
        // (Plain ranges scaled, not `step_by`: its iterator is code of its own.)
        for n in 0..KEYS / 2 {
            let i = 2 * n;
            map.put(&key(i), value(i, 1, &mut buf))?;
        }
        // Delete every third key.
        for n in 0..KEYS.div_ceil(3) {
            if !map.delete(&key(3 * n))? {
                return Err(Failed::WrongCount);
            }
        }
        // Before reopening: every key as the writes left it.
        check_all(&map)?;
    }

    // Reopen from the same bytes: everything committed is there.
    let map = Map::open(SliceRegion::new(bytes))?;
    let live = u64::from(KEYS) - u64::from(KEYS.div_ceil(3));
    if map.len() != live {
        return Err(Failed::WrongCount);
    }
    check_all(&map)?;

    // Compact: live data moves down and the used end is cut.
    let report = map.compact()?;
    if report.used_end_after >= report.used_end_before {
        return Err(Failed::NoCompaction);
    }
    check_all(&map)?;
    Ok(Summary {
        keys: map.len(),
        used_before: report.used_end_before,
        used_after: report.used_end_after,
    })
}
