//! Byte layouts of the region's meta slots and entry headers, mirroring docs/FORMAT.md.
//!
//! ```text
//! region:  [meta slot 0 | meta slot 1 | entry | entry | ... | used_end ... len)
//!           0             512           1024
//! entry:   [checksum u32 | kind u8 | status u8 | 0u16 | capacity u32 | len u32 |
//!           txid u64 | id u64 | payload (len) | slack]
//! ```
//!
//! Every integer is little-endian and read with `from_le_bytes` from a checked slice, so
//! the layout is the same on every host and unaligned offsets are fine.

use core::ops::Range;

use crate::Error;
use crate::error::Corrupt;
use crate::hash::murmur3_x86_32;

/// Current format version, written into every meta slot.
pub const FORMAT_VERSION: u32 = 1;

/// Where each meta slot starts.
pub const META_SLOT_OFFSETS: [u64; 2] = [0, 512];
/// Bytes of a meta slot that carry fields (the rest of its 512-byte sector is zero).
pub const META_LEN: usize = 256;
/// First byte of the data area: entries start here.
pub const DATA_START: u64 = 1024;
/// Entries start at multiples of this, and capacities are multiples of it.
pub const ENTRY_ALIGN: u64 = 8;

// Meta slot fields, each defined from the previous one.
pub(crate) const META_MAGIC: Range<usize> = 0..8;
pub(crate) const META_VERSION: Range<usize> = META_MAGIC.end..META_MAGIC.end + 4;
pub(crate) const META_KIND: Range<usize> = META_VERSION.end..META_VERSION.end + 4;
pub(crate) const META_TXID: Range<usize> = META_KIND.end..META_KIND.end + 8;
pub(crate) const META_ROOT: Range<usize> = META_TXID.end..META_TXID.end + 8;
pub(crate) const META_USED_END: Range<usize> = META_ROOT.end..META_ROOT.end + 8;
pub(crate) const META_COUNT: Range<usize> = META_USED_END.end..META_USED_END.end + 8;
pub(crate) const META_NEXT_ID: Range<usize> = META_COUNT.end..META_COUNT.end + 8;
pub(crate) const META_REMOVED_COUNT: Range<usize> = META_NEXT_ID.end..META_NEXT_ID.end + 8;
pub(crate) const META_REMOVED_BYTES: Range<usize> =
    META_REMOVED_COUNT.end..META_REMOVED_COUNT.end + 8;
pub(crate) const META_DURABLE_BASE: Range<usize> =
    META_REMOVED_BYTES.end..META_REMOVED_BYTES.end + 8;
pub(crate) const META_NEW_COUNT: Range<usize> = META_DURABLE_BASE.end..META_DURABLE_BASE.end + 8;
pub(crate) const META_NEW_DIGEST: Range<usize> = META_NEW_COUNT.end..META_NEW_COUNT.end + 8;
pub(crate) const META_SEED: Range<usize> = META_NEW_DIGEST.end..META_NEW_DIGEST.end + 8;
pub(crate) const META_FREE_ROOT: Range<usize> = META_SEED.end..META_SEED.end + 8;
pub(crate) const META_HEIGHT: Range<usize> = META_FREE_ROOT.end..META_FREE_ROOT.end + 4;
pub(crate) const META_EXTENSION: Range<usize> = META_HEIGHT.end..META_HEIGHT.end + 4;
pub(crate) const META_SPACE_PERCENT: usize = META_EXTENSION.end;
pub(crate) const META_INTERVAL: Range<usize> = 124..128;
pub(crate) const META_SPACE_MIN: Range<usize> = META_INTERVAL.end..META_INTERVAL.end + 8;
pub(crate) const META_LAST_COMPACT: Range<usize> = META_SPACE_MIN.end..META_SPACE_MIN.end + 8;
pub(crate) const META_LIVE_BYTES: Range<usize> = META_LAST_COMPACT.end..META_LAST_COMPACT.end + 8;
pub(crate) const META_INLINE_MAX: Range<usize> = META_LIVE_BYTES.end..META_LIVE_BYTES.end + 4;
pub(crate) const META_CHECKSUM: Range<usize> = 252..256;

/// Magic bytes that open every meta slot.
pub const META_MAGIC_BYTES: [u8; 8] = *b"hamtdbMS";
/// Seed of the meta slot checksum ("META").
pub(crate) const META_CHECKSUM_SEED: u32 = 0x4154_454d;

/// Structure kept in a region, recorded in its meta slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum StructureKind {
    /// The entry buffer's record store.
    Buffer = 1,
    /// The HAMT map.
    Map = 2,
}

impl StructureKind {
    fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(StructureKind::Buffer),
            2 => Some(StructureKind::Map),
            _ => None,
        }
    }
}

/// The decoded fields of a meta slot, held as the slot's numeric fields widened to
/// `u64`, in [`META_FIELDS`] order (version and kind included, the reserved free-space
/// root zero), behind one accessor per field.
///
/// A word array rather than a struct of named fields: encoding and decoding are then one
/// loop over the field table each way, and a copy is one block copy, where rustc copied
/// the twenty-two fields one by one through the stack (firmware `.text`,
/// docs/EMBEDDED.md). The narrow fields hold values that fit their width: the decoder
/// reads each from as many bytes as its type has, and the setters take the narrow type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    words: [u64; META_FIELDS.len()],
}

// Each field's index in `Meta::words` and `META_FIELDS`.
const F_VERSION: usize = 0;
const F_KIND: usize = 1;
const F_TXID: usize = 2;
const F_ROOT: usize = 3;
const F_USED_END: usize = 4;
const F_COUNT: usize = 5;
const F_NEXT_ID: usize = 6;
const F_REMOVED_COUNT: usize = 7;
const F_REMOVED_BYTES: usize = 8;
const F_DURABLE_BASE: usize = 9;
const F_NEW_COUNT: usize = 10;
const F_NEW_DIGEST: usize = 11;
const F_SEED: usize = 12;
const F_FREE_ROOT: usize = 13;
const F_HEIGHT: usize = 14;
const F_EXTENSION: usize = 15;
const F_SPACE_PERCENT: usize = 16;
const F_INTERVAL: usize = 17;
const F_SPACE_MIN: usize = 18;
const F_LAST_COMPACT: usize = 19;
const F_LIVE_BYTES: usize = 20;
const F_INLINE_MAX: usize = 21;

/// A getter and a setter for each `u64` field of [`Meta`].
macro_rules! meta_u64 {
    ($($get:ident, $set:ident = $index:expr;)*) => {
        impl Meta {
            $(
                #[inline]
                pub(crate) fn $get(&self) -> u64 {
                    self.words[$index]
                }

                #[inline]
                pub(crate) fn $set(&mut self, value: u64) {
                    self.words[$index] = value;
                }
            )*
        }
    };
}

/// A getter and a setter for each narrow field of [`Meta`]: the word holds a value of
/// the field's type (see [`Meta`]), so the narrowing cast is exact.
macro_rules! meta_narrow {
    ($($get:ident, $set:ident: $ty:ty = $index:expr;)*) => {
        impl Meta {
            $(
                #[inline]
                pub(crate) fn $get(&self) -> $ty {
                    self.words[$index] as $ty
                }

                #[inline]
                pub(crate) fn $set(&mut self, value: $ty) {
                    self.words[$index] = u64::from(value);
                }
            )*
        }
    };
}

meta_u64! {
    txid, set_txid = F_TXID;
    root, set_root = F_ROOT;
    used_end, set_used_end = F_USED_END;
    count, set_count = F_COUNT;
    next_id, set_next_id = F_NEXT_ID;
    removed_count, set_removed_count = F_REMOVED_COUNT;
    removed_bytes, set_removed_bytes = F_REMOVED_BYTES;
    durable_base, set_durable_base = F_DURABLE_BASE;
    new_count, set_new_count = F_NEW_COUNT;
    new_digest, set_new_digest = F_NEW_DIGEST;
    space_min_bytes, set_space_min_bytes = F_SPACE_MIN;
    last_compact_secs, set_last_compact_secs = F_LAST_COMPACT;
    live_bytes, set_live_bytes = F_LIVE_BYTES;
}

meta_narrow! {
    height, set_height: u32 = F_HEIGHT;
    extension, set_extension: u32 = F_EXTENSION;
    space_percent, set_space_percent: u8 = F_SPACE_PERCENT;
    interval_secs, set_interval_secs: u32 = F_INTERVAL;
    inline_max, set_inline_max: u32 = F_INLINE_MAX;
}

impl Meta {
    /// A meta of `kind` for a database with `seed`, every other field zero.
    pub(crate) fn new(kind: StructureKind, seed: u64) -> Meta {
        let mut words = [0u64; META_FIELDS.len()];
        words[F_VERSION] = u64::from(FORMAT_VERSION);
        words[F_KIND] = kind as u64;
        words[F_SEED] = seed;
        Meta { words }
    }

    /// The structure kind (checked by the decoder, set by [`Meta::new`]).
    pub(crate) fn kind(&self) -> StructureKind {
        if self.words[F_KIND] == StructureKind::Buffer as u64 {
            StructureKind::Buffer
        } else {
            StructureKind::Map
        }
    }

    /// The database's seed.
    pub(crate) fn seed(&self) -> u64 {
        self.words[F_SEED]
    }
}

#[inline]
pub(crate) fn get_u32(bytes: &[u8], r: Range<usize>) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[r]);
    u32::from_le_bytes(b)
}

#[inline]
pub(crate) fn get_u64(bytes: &[u8], r: Range<usize>) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[r]);
    u64::from_le_bytes(b)
}

fn put_u32(bytes: &mut [u8], r: Range<usize>, v: u32) {
    bytes[r].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(bytes: &mut [u8], r: Range<usize>, v: u64) {
    bytes[r].copy_from_slice(&v.to_le_bytes());
}

/// Why a meta slot was not taken, when it was not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetaProblem {
    /// No magic: never written, or overwritten by something else.
    Blank,
    /// Magic present but the checksum fails: a torn or damaged slot.
    BadChecksum,
    /// A valid slot of a version this build does not read.
    Version(u32),
    /// A valid slot of an unknown structure kind.
    Kind(u32),
}

impl Meta {
    /// Encodes the slot, checksum included.
    pub(crate) fn encode(&self) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        b[META_MAGIC].copy_from_slice(&META_MAGIC_BYTES);
        for (&(at, width), value) in META_FIELDS.iter().zip(self.words) {
            b[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
        }
        let sum = murmur3_x86_32(&b[..META_CHECKSUM.start], META_CHECKSUM_SEED);
        put_u32(&mut b, META_CHECKSUM, sum);
        b
    }

    /// Decodes and verifies a slot.
    pub(crate) fn decode(b: &[u8; META_LEN]) -> Result<Meta, MetaProblem> {
        if b[META_MAGIC] != META_MAGIC_BYTES {
            return Err(MetaProblem::Blank);
        }
        let sum = murmur3_x86_32(&b[..META_CHECKSUM.start], META_CHECKSUM_SEED);
        if sum != get_u32(b, META_CHECKSUM) {
            return Err(MetaProblem::BadChecksum);
        }
        let mut words = [0u64; META_FIELDS.len()];
        for (value, &(at, width)) in words.iter_mut().zip(&META_FIELDS) {
            let mut le = [0u8; 8];
            le[..width].copy_from_slice(&b[at..at + width]);
            *value = u64::from_le_bytes(le);
        }
        // The version and kind were read from 4 bytes, so these casts are exact.
        let version = words[F_VERSION] as u32;
        if version != FORMAT_VERSION {
            return Err(MetaProblem::Version(version));
        }
        let kind_raw = words[F_KIND] as u32;
        if StructureKind::from_u32(kind_raw).is_none() {
            return Err(MetaProblem::Kind(kind_raw));
        }
        // The free-space root is reserved: read as zero whatever the slot holds (and
        // written as zero).
        words[F_FREE_ROOT] = 0;
        Ok(Meta { words })
    }
}

/// The meta slot's numeric fields in the order of `Meta`'s words: (offset, width in
/// bytes). One loop encodes and one decodes them all, which is a fraction of
/// the code of twenty-two separate copies.
const META_FIELDS: [(usize, usize); 22] = [
    (META_VERSION.start, 4),
    (META_KIND.start, 4),
    (META_TXID.start, 8),
    (META_ROOT.start, 8),
    (META_USED_END.start, 8),
    (META_COUNT.start, 8),
    (META_NEXT_ID.start, 8),
    (META_REMOVED_COUNT.start, 8),
    (META_REMOVED_BYTES.start, 8),
    (META_DURABLE_BASE.start, 8),
    (META_NEW_COUNT.start, 8),
    (META_NEW_DIGEST.start, 8),
    (META_SEED.start, 8),
    (META_FREE_ROOT.start, 8),
    (META_HEIGHT.start, 4),
    (META_EXTENSION.start, 4),
    (META_SPACE_PERCENT, 1),
    (META_INTERVAL.start, 4),
    (META_SPACE_MIN.start, 8),
    (META_LAST_COMPACT.start, 8),
    (META_LIVE_BYTES.start, 8),
    (META_INLINE_MAX.start, 4),
];

// Entry header fields.
pub(crate) const ENTRY_CHECKSUM: Range<usize> = 0..4;
pub(crate) const ENTRY_KIND: usize = ENTRY_CHECKSUM.end;
pub(crate) const ENTRY_STATUS: usize = ENTRY_KIND + 1;
pub(crate) const ENTRY_RESERVED: Range<usize> = ENTRY_STATUS + 1..ENTRY_STATUS + 3;
pub(crate) const ENTRY_CAPACITY: Range<usize> = ENTRY_RESERVED.end..ENTRY_RESERVED.end + 4;
pub(crate) const ENTRY_LEN: Range<usize> = ENTRY_CAPACITY.end..ENTRY_CAPACITY.end + 4;
pub(crate) const ENTRY_TXID: Range<usize> = ENTRY_LEN.end..ENTRY_LEN.end + 8;
pub(crate) const ENTRY_ID: Range<usize> = ENTRY_TXID.end..ENTRY_TXID.end + 8;
/// Bytes of an entry header.
pub const HEADER_LEN: usize = ENTRY_ID.end;
/// Largest capacity an entry can have (its field is a `u32`, rounded to [`ENTRY_ALIGN`]).
pub const MAX_CAPACITY: u64 = (u32::MAX as u64) & !(ENTRY_ALIGN - 1);
/// Largest payload an entry can hold.
pub const MAX_PAYLOAD: u64 = MAX_CAPACITY - HEADER_LEN as u64;

/// The status byte of a live entry.
pub(crate) const STATUS_LIVE: u8 = 0x01;

/// What an entry holds, from its kind byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EntryKind {
    /// A buffer record.
    Record = 0x01,
    /// A node of the buffer's id tree.
    IdNode = 0x02,
    /// A branch node of the map's trie.
    Branch = 0x10,
    /// A collision node of the map's trie (keys whose hashes agree in every bit used).
    Collision = 0x11,
    /// A value stored outside its trie node (larger than the inline limit).
    Value = 0x12,
}

impl EntryKind {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        match v {
            0x01 => Some(EntryKind::Record),
            0x02 => Some(EntryKind::IdNode),
            0x10 => Some(EntryKind::Branch),
            0x11 => Some(EntryKind::Collision),
            0x12 => Some(EntryKind::Value),
            _ => None,
        }
    }
}

/// A decoded entry header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryHeader {
    pub(crate) checksum: u32,
    pub(crate) kind: EntryKind,
    pub(crate) capacity: u32,
    pub(crate) len: u32,
    pub(crate) txid: u64,
    pub(crate) id: u64,
}

impl EntryHeader {
    /// Encodes the header with a zero checksum; [`seal_checksum`] fills it in.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        put_u32(&mut b, ENTRY_CHECKSUM, self.checksum);
        b[ENTRY_KIND] = self.kind as u8;
        b[ENTRY_STATUS] = STATUS_LIVE;
        put_u32(&mut b, ENTRY_CAPACITY, self.capacity);
        put_u32(&mut b, ENTRY_LEN, self.len);
        put_u64(&mut b, ENTRY_TXID, self.txid);
        put_u64(&mut b, ENTRY_ID, self.id);
        b
    }

    /// Decodes and sanity-checks a header read at `offset` (not the checksum: that needs
    /// the payload). `region_end` bounds the entry.
    pub(crate) fn decode(b: &[u8], offset: u64, region_end: u64) -> Result<Self, Error> {
        if b.len() < HEADER_LEN {
            return Err(Error::corrupted(offset, Corrupt::EntryHeaderCutShort));
        }
        let kind = EntryKind::from_u8(b[ENTRY_KIND])
            .ok_or(Error::corrupted(offset, Corrupt::UnknownEntryKind))?;
        if b[ENTRY_STATUS] != STATUS_LIVE || b[ENTRY_RESERVED] != [0, 0] {
            return Err(Error::corrupted(offset, Corrupt::BadEntryStatus));
        }
        let capacity = get_u32(b, ENTRY_CAPACITY);
        let len = get_u32(b, ENTRY_LEN);
        let cap64 = u64::from(capacity);
        if cap64 < HEADER_LEN as u64 || cap64 % ENTRY_ALIGN != 0 {
            return Err(Error::corrupted(offset, Corrupt::BadEntryCapacity));
        }
        if u64::from(len) > cap64 - HEADER_LEN as u64 {
            return Err(Error::corrupted(
                offset,
                Corrupt::EntryLengthExceedsCapacity,
            ));
        }
        if offset.checked_add(cap64).is_none_or(|end| end > region_end) {
            return Err(Error::corrupted(offset, Corrupt::EntryRunsPastUsedEnd));
        }
        Ok(EntryHeader {
            checksum: get_u32(b, ENTRY_CHECKSUM),
            kind,
            capacity,
            len,
            txid: get_u64(b, ENTRY_TXID),
            id: get_u64(b, ENTRY_ID),
        })
    }
}

/// The checksum seed of the entry at `offset` in a database with `seed`.
pub(crate) fn entry_seed(seed: u64, offset: u64) -> u32 {
    let x = seed ^ offset.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x as u32) ^ ((x >> 32) as u32)
}

/// The checksum of an entry whose header and payload are `bytes` (checksum field
/// included but not covered).
pub(crate) fn entry_checksum(seed: u64, offset: u64, bytes: &[u8]) -> u32 {
    murmur3_x86_32(&bytes[ENTRY_CHECKSUM.end..], entry_seed(seed, offset))
}

/// MurmurHash3's 64-bit finalizer.
pub(crate) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// An entry's term in a meta slot's `new_digest`.
pub(crate) fn digest_term(offset: u64, checksum: u32) -> u64 {
    fmix64(offset.rotate_left(32) ^ u64::from(checksum))
}

/// Rounds `n` up to a multiple of [`ENTRY_ALIGN`], or `None` on overflow.
pub(crate) fn align_up(n: u64) -> Option<u64> {
    Some(n.checked_add(ENTRY_ALIGN - 1)? & !(ENTRY_ALIGN - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_meta() -> Meta {
        let mut m = Meta::new(StructureKind::Buffer, 42);
        m.set_txid(7);
        m.set_root(1024);
        m.set_used_end(4096);
        m.set_count(3);
        m.set_next_id(4);
        m.set_removed_count(1);
        m.set_removed_bytes(64);
        m.set_durable_base(6);
        m.set_new_count(2);
        m.set_new_digest(0xdead_beef);
        m.set_height(1);
        m.set_extension(65536);
        m.set_space_percent(50);
        m.set_interval_secs(60);
        m.set_space_min_bytes(4096);
        m.set_last_compact_secs(9);
        m.set_live_bytes(100);
        m.set_inline_max(512);
        m
    }

    #[test]
    fn meta_round_trips_and_detects_damage() {
        let meta = sample_meta();
        let bytes = meta.encode();
        assert_eq!(Meta::decode(&bytes), Ok(meta));
        for i in 0..META_LEN {
            let mut damaged = bytes;
            damaged[i] ^= 0x40;
            assert!(Meta::decode(&damaged).is_err(), "flip at byte {i} accepted");
        }
        assert_eq!(Meta::decode(&[0; META_LEN]), Err(MetaProblem::Blank));
    }

    #[test]
    fn meta_layout_is_pinned() {
        // The field offsets are a contract with every image ever written.
        assert_eq!(META_SEED, 96..104);
        assert_eq!(META_HEIGHT, 112..116);
        assert_eq!(META_SPACE_PERCENT, 120);
        assert_eq!(META_LAST_COMPACT, 136..144);
        assert_eq!(HEADER_LEN, 32);
        assert_eq!(ENTRY_ID, 24..32);
        let bytes = sample_meta().encode();
        assert_eq!(&bytes[..8], b"hamtdbMS");
        assert_eq!(bytes[META_TXID], 7u64.to_le_bytes());
    }

    #[test]
    fn header_decode_rejects_nonsense() {
        let header = EntryHeader {
            checksum: 0,
            kind: EntryKind::Record,
            capacity: 64,
            len: 32,
            txid: 1,
            id: 1,
        };
        let good = header.encode();
        assert_eq!(EntryHeader::decode(&good, 1024, 2048), Ok(header));
        let bad = |mutate: fn(&mut [u8; HEADER_LEN])| {
            let mut b = good;
            mutate(&mut b);
            EntryHeader::decode(&b, 1024, 2048).is_err()
        };
        assert!(bad(|b| b[ENTRY_KIND] = 0));
        assert!(bad(|b| b[ENTRY_STATUS] = 0));
        assert!(bad(
            |b| b[ENTRY_CAPACITY].copy_from_slice(&20u32.to_le_bytes())
        ));
        assert!(bad(
            |b| b[ENTRY_CAPACITY].copy_from_slice(&65u32.to_le_bytes())
        ));
        assert!(bad(|b| b[ENTRY_LEN].copy_from_slice(&33u32.to_le_bytes())));
        assert!(
            EntryHeader::decode(&good, 2000, 2048).is_err(),
            "past the end"
        );
        assert!(EntryHeader::decode(&good, u64::MAX - 8, u64::MAX).is_err());
    }

    #[test]
    fn checksum_depends_on_offset_and_seed() {
        let bytes = [1u8; 40];
        let a = entry_checksum(1, 1024, &bytes);
        assert_ne!(a, entry_checksum(1, 1032, &bytes));
        assert_ne!(a, entry_checksum(2, 1024, &bytes));
        assert_eq!(a, entry_checksum(1, 1024, &bytes));
    }
}
