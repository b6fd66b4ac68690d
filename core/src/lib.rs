//! The `no_std` core of hamtdb.
//!
//! Layers, each talking only to the one below it:
//!
//! - [`region`]: the [`Region`] trait, the only thing the core knows about storage, with
//!   [`SliceRegion`] (a caller's `&mut [u8]`) and [`VecRegion`] (the heap).
//! - [`buffer`]: entries, free space and crash-safe commits over a region, and
//!   [`Buffer`], a store of records with stable ids.
//! - [`hash`]: MurmurHash3 for checksums and the map's path bits.
//! - [`log`]: the commit log, and [`LoggedMap`](log::LoggedMap), a map whose durable
//!   commits are one append and one sync of the log.
//!
//! The core never touches files, threads or clocks; the std crate `hamtdb` supplies them.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod buffer;
mod error;
pub mod hash;
pub mod log;
pub mod map;
mod prefetch;
pub mod region;
#[cfg(test)]
mod test_alloc;

pub use buffer::{
    Buffer, BufferOptions, BufferStats, BytesCodec, Codec, CodecError, CompactReport,
    CompactionPolicy, Durability, Encode, EntryId, EntryReader, LeI8, LeI16, LeI32, LeI64, LeI128,
    LeU8, LeU16, LeU32, LeU64, LeU128, RecordHeader, RecordStatus, SeekFrom, TypedBuffer,
    TypedError, TypedIter, Utf8Codec,
};
pub use error::{Corruption, Error, InvalidOption, PackedU64, TooLarge};
pub use map::{
    CheckReport, KeyHasher, MAX_KEY_LEN, MAX_VALUE_LEN, Map, MapCompactReport, MapOptions,
    MapStats, Murmur3, OwnedPair, Pair, ReadTxn, SpaceUsage, Value, WriteTxn,
};
pub use region::{Bounds, Region, RegionError, RegionOp, SliceRegion, VecRegion};
