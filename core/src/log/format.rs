//! Byte layouts of the commit log, mirroring docs/FORMAT.md ("Commit log").
//!
//! ```text
//! log:     [header slot 0 | header slot 1 | record | record | ... | zeros or stale bytes)
//!           0               512             1024
//! header:  [magic 8 | version u32 | 0u32 | seed u64 | epoch u64 | base_txid u64 |
//!           0 (20) | checksum u32]
//! record:  [checksum u32 | len u32 | txid u64 | op count u32 | 0u32 | ops ... ]
//! op:      [kind u8 | 0u8 | key len u16 | value len u32 | key | value]
//! ```
//!
//! Every integer is little-endian, read from a checked slice.

use core::ops::Range;

use crate::buffer::format::{entry_seed, fmix64, get_u32, get_u64};
use crate::hash::murmur3_x86_32;

/// Format version of the commit log, written into its header slots.
pub const LOG_VERSION: u32 = 1;
/// Magic bytes that open each header slot.
pub const LOG_MAGIC: [u8; 8] = *b"hamtdbWL";
/// Where each header slot starts: two sectors, so rewriting one never touches the other.
pub(crate) const LOG_SLOT_OFFSETS: [u64; 2] = [0, 512];
/// Bytes of a header slot that carry fields.
pub(crate) const LOG_HEADER_LEN: usize = 64;
/// First byte of the record area.
pub const LOG_DATA_START: u64 = 1024;
/// Records start at multiples of this.
pub(crate) const LOG_ALIGN: u64 = 8;

// Header slot fields, each defined from the previous one.
pub(crate) const HEADER_MAGIC: Range<usize> = 0..8;
pub(crate) const HEADER_VERSION: Range<usize> = HEADER_MAGIC.end..HEADER_MAGIC.end + 4;
pub(crate) const HEADER_RESERVED: Range<usize> = HEADER_VERSION.end..HEADER_VERSION.end + 4;
pub(crate) const HEADER_SEED: Range<usize> = HEADER_RESERVED.end..HEADER_RESERVED.end + 8;
pub(crate) const HEADER_EPOCH: Range<usize> = HEADER_SEED.end..HEADER_SEED.end + 8;
pub(crate) const HEADER_BASE: Range<usize> = HEADER_EPOCH.end..HEADER_EPOCH.end + 8;
pub(crate) const HEADER_CHECKSUM: Range<usize> = LOG_HEADER_LEN - 4..LOG_HEADER_LEN;
/// The highest valid epoch. A header above it is not taken: its resets would soon wrap
/// the epoch to 0, which loses to the other slot. Only a forged header gets there.
pub(crate) const MAX_EPOCH: u64 = u64::MAX >> 1;
/// Seed of the header checksum ("WLOG").
pub(crate) const HEADER_CHECKSUM_SEED: u32 = 0x474f_4c57;

// Record header fields.
pub(crate) const RECORD_CHECKSUM: Range<usize> = 0..4;
pub(crate) const RECORD_LEN: Range<usize> = RECORD_CHECKSUM.end..RECORD_CHECKSUM.end + 4;
pub(crate) const RECORD_TXID: Range<usize> = RECORD_LEN.end..RECORD_LEN.end + 8;
pub(crate) const RECORD_COUNT: Range<usize> = RECORD_TXID.end..RECORD_TXID.end + 4;
pub(crate) const RECORD_RESERVED: Range<usize> = RECORD_COUNT.end..RECORD_COUNT.end + 4;
/// Bytes of a record before its operations.
pub const RECORD_HEADER_LEN: usize = RECORD_RESERVED.end;

// Operation fields, relative to the operation's start.
pub(crate) const OP_KIND: usize = 0;
pub(crate) const OP_KEY_LEN: Range<usize> = 2..4;
pub(crate) const OP_VALUE_LEN: Range<usize> = OP_KEY_LEN.end..OP_KEY_LEN.end + 4;
/// Bytes of an operation before its key.
pub(crate) const OP_HEADER_LEN: usize = OP_VALUE_LEN.end;
/// Operation kind: put the key with the value.
pub(crate) const OP_PUT: u8 = 1;
/// Operation kind: delete the key (value length zero).
pub(crate) const OP_DELETE: u8 = 2;

/// The decoded fields of a header slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogHeader {
    pub(crate) seed: u64,
    pub(crate) epoch: u64,
    pub(crate) base_txid: u64,
}

/// Why a header slot was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// All zero: never written.
    Blank,
    /// Not a header: wrong magic or checksum.
    Invalid,
    /// A header of another format version.
    Version(u32),
}

impl LogHeader {
    pub(crate) fn encode(&self) -> [u8; LOG_HEADER_LEN] {
        let mut b = [0u8; LOG_HEADER_LEN];
        b[HEADER_MAGIC].copy_from_slice(&LOG_MAGIC);
        b[HEADER_VERSION].copy_from_slice(&LOG_VERSION.to_le_bytes());
        b[HEADER_SEED].copy_from_slice(&self.seed.to_le_bytes());
        b[HEADER_EPOCH].copy_from_slice(&self.epoch.to_le_bytes());
        b[HEADER_BASE].copy_from_slice(&self.base_txid.to_le_bytes());
        let sum = murmur3_x86_32(&b[..HEADER_CHECKSUM.start], HEADER_CHECKSUM_SEED);
        b[HEADER_CHECKSUM].copy_from_slice(&sum.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8; LOG_HEADER_LEN]) -> Result<Self, HeaderProblem> {
        if b.iter().all(|&x| x == 0) {
            return Err(HeaderProblem::Blank);
        }
        let sum = murmur3_x86_32(&b[..HEADER_CHECKSUM.start], HEADER_CHECKSUM_SEED);
        if b[HEADER_MAGIC] != LOG_MAGIC || get_u32(b, HEADER_CHECKSUM) != sum {
            return Err(HeaderProblem::Invalid);
        }
        let version = get_u32(b, HEADER_VERSION);
        if version != LOG_VERSION {
            return Err(HeaderProblem::Version(version));
        }
        let epoch = get_u64(b, HEADER_EPOCH);
        if epoch > MAX_EPOCH {
            return Err(HeaderProblem::Invalid);
        }
        Ok(LogHeader {
            seed: get_u64(b, HEADER_SEED),
            epoch,
            base_txid: get_u64(b, HEADER_BASE),
        })
    }
}

/// The checksum of the record at `offset` whose bytes (checksum field included but not
/// covered) are `bytes`, in a log with `seed` at `epoch`: a record left from an earlier
/// epoch, or copied to another offset, does not verify.
pub(crate) fn record_checksum(seed: u64, epoch: u64, offset: u64, bytes: &[u8]) -> u32 {
    murmur3_x86_32(
        &bytes[RECORD_CHECKSUM.end..],
        entry_seed(seed ^ fmix64(epoch), offset),
    )
}

/// Rounds `n` up to a multiple of [`LOG_ALIGN`], or `None` on overflow.
pub(crate) fn align_up(n: u64) -> Option<u64> {
    Some(n.checked_add(LOG_ALIGN - 1)? & !(LOG_ALIGN - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = LogHeader {
            seed: 0x1234_5678_9abc_def0,
            epoch: 7,
            base_txid: 42,
        };
        let mut b = h.encode();
        assert_eq!(LogHeader::decode(&b), Ok(h));
        b[HEADER_BASE.start] ^= 1;
        assert_eq!(LogHeader::decode(&b), Err(HeaderProblem::Invalid));
        assert_eq!(
            LogHeader::decode(&[0; LOG_HEADER_LEN]),
            Err(HeaderProblem::Blank)
        );
        for (epoch, ok) in [(MAX_EPOCH, true), (MAX_EPOCH + 1, false), (u64::MAX, false)] {
            let h = LogHeader { epoch, ..h };
            assert_eq!(LogHeader::decode(&h.encode()).is_ok(), ok, "epoch {epoch}");
        }
    }

    /// docs/FORMAT.md's tables ("Commit log"), field by field.
    #[test]
    fn offsets_are_format_md_s() {
        assert_eq!(LOG_SLOT_OFFSETS, [0, 512]);
        assert_eq!((LOG_HEADER_LEN, LOG_DATA_START, LOG_ALIGN), (64, 1024, 8));
        assert_eq!(
            [
                HEADER_MAGIC,
                HEADER_VERSION,
                HEADER_RESERVED,
                HEADER_SEED,
                HEADER_EPOCH,
                HEADER_BASE,
                HEADER_CHECKSUM
            ],
            [0..8, 8..12, 12..16, 16..24, 24..32, 32..40, 60..64]
        );
        assert_eq!(HEADER_CHECKSUM_SEED, 0x474f_4c57);
        assert_eq!(
            [
                RECORD_CHECKSUM,
                RECORD_LEN,
                RECORD_TXID,
                RECORD_COUNT,
                RECORD_RESERVED
            ],
            [0..4, 4..8, 8..16, 16..20, 20..24]
        );
        assert_eq!(RECORD_HEADER_LEN, 24);
        assert_eq!(
            (OP_KIND, OP_KEY_LEN, OP_VALUE_LEN, OP_HEADER_LEN),
            (0, 2..4, 4..8, 8)
        );
        assert_eq!((OP_PUT, OP_DELETE), (1, 2));
    }

    #[test]
    fn record_checksum_depends_on_epoch_and_offset() {
        let bytes = [0u8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        let a = record_checksum(1, 1, 1024, &bytes);
        assert_ne!(a, record_checksum(1, 2, 1024, &bytes));
        assert_ne!(a, record_checksum(1, 1, 1032, &bytes));
        assert_ne!(a, record_checksum(2, 1, 1024, &bytes));
        assert_eq!(a, record_checksum(1, 1, 1024, &bytes));
    }
}
