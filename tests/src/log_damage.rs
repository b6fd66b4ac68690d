//! The commit log's format written out from docs/FORMAT.md ("Commit log") independently
//! of the core, for the log's corruption sweep, golden test and fuzz target: a test that
//! reseals a header or a record with these also checks the documented format.

use hamtdb_core::hash::murmur3_x86_32;

use crate::damage::{le32, le64};

/// Offsets of the two header slots.
pub const LOG_SLOTS: [usize; 2] = [0, 512];
/// Bytes of a header slot that carry fields.
pub const LOG_HEADER_LEN: usize = 64;
/// Offset of the first record.
pub const LOG_DATA_START: usize = 1024;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 24;
/// Header fields, as offsets within a slot.
pub const HEADER_SEED: usize = 16;
/// The epoch's offset within a slot.
pub const HEADER_EPOCH: usize = 24;
/// The base txid's offset within a slot.
pub const HEADER_BASE: usize = 32;
/// The checksum's offset within a slot.
pub const HEADER_CHECKSUM: usize = 60;

/// MurmurHash3's 64-bit finalizer (`fmix64`).
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Recomputes the checksum of the header slot at `slot`: murmur3 of bytes 0..60, seed
/// "WLOG".
pub fn reseal_log_header(image: &mut [u8], slot: usize) {
    let sum = murmur3_x86_32(&image[slot..slot + HEADER_CHECKSUM], 0x474f_4c57);
    image[slot + HEADER_CHECKSUM..slot + LOG_HEADER_LEN].copy_from_slice(&sum.to_le_bytes());
}

/// Whether the header slot at `slot` carries a valid checksum and magic.
pub fn log_header_valid(image: &[u8], slot: usize) -> bool {
    image.len() >= slot + LOG_HEADER_LEN
        && &image[slot..slot + 8] == b"hamtdbWL"
        && le32(&image[slot + HEADER_CHECKSUM..slot + LOG_HEADER_LEN])
            == murmur3_x86_32(&image[slot..slot + HEADER_CHECKSUM], 0x474f_4c57)
}

/// The current header: `(slot, seed, epoch, base_txid)` of the valid slot with the highest
/// epoch.
pub fn current_log_header(image: &[u8]) -> Option<(usize, u64, u64, u64)> {
    LOG_SLOTS
        .iter()
        .filter(|&&s| log_header_valid(image, s))
        .map(|&s| {
            (
                s,
                le64(&image[s + HEADER_SEED..s + HEADER_SEED + 8]),
                le64(&image[s + HEADER_EPOCH..s + HEADER_EPOCH + 8]),
                le64(&image[s + HEADER_BASE..s + HEADER_BASE + 8]),
            )
        })
        .max_by_key(|h| h.2)
}

/// The checksum of the record at `offset` whose bytes (header and operations) are
/// `record`, in a log with `seed` at `epoch`:
/// `murmur3_x86_32(record[4..len], entry_seed(seed ^ fmix64(epoch), offset))`.
pub fn log_record_checksum(seed: u64, epoch: u64, offset: u64, record: &[u8]) -> u32 {
    let x = (seed ^ fmix64(epoch)) ^ offset.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    murmur3_x86_32(&record[4..], (x as u32) ^ ((x >> 32) as u32))
}

/// Recomputes the checksum of the record at `offset`, as far as its (possibly damaged)
/// length field and the image let us.
pub fn reseal_log_record(image: &mut [u8], seed: u64, epoch: u64, offset: usize) {
    if offset + RECORD_HEADER_LEN > image.len() {
        return;
    }
    let len = le32(&image[offset + 4..offset + 8]) as usize;
    let end = offset
        .saturating_add(len.max(RECORD_HEADER_LEN))
        .min(image.len());
    let sum = log_record_checksum(seed, epoch, offset as u64, &image[offset..end]);
    image[offset..offset + 4].copy_from_slice(&sum.to_le_bytes());
}

/// The records of the current epoch as FORMAT.md reads them: `(offset, len, txid)` from
/// 1024 on, each with the next txid and a valid checksum.
pub fn log_records(image: &[u8]) -> Vec<(usize, usize, u64)> {
    let Some((_, seed, epoch, base)) = current_log_header(image) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut at = LOG_DATA_START;
    let mut txid = base.wrapping_add(1);
    while at + RECORD_HEADER_LEN <= image.len() {
        let len = le32(&image[at + 4..at + 8]) as usize;
        if len < RECORD_HEADER_LEN
            || len > image.len() - at
            || le64(&image[at + 8..at + 16]) != txid
            || le32(&image[at..at + 4])
                != log_record_checksum(seed, epoch, at as u64, &image[at..at + len])
        {
            break;
        }
        out.push((at, len, txid));
        at = (at + len).next_multiple_of(8);
        txid = txid.wrapping_add(1);
    }
    out
}
