//! The `no_std` core of hamtdb.
//!
//! Layers, each talking only to the one below it:
//!
//! - [`region`]: the [`Region`] trait, the only thing the core knows about storage, with
//!   [`SliceRegion`] (a caller's `&mut [u8]`) and [`VecRegion`] (the heap).
//! - [`buffer`]: entries, free space and crash-safe commits over a region, and
//!   [`Buffer`], a store of records with stable ids.
//! - [`hash`]: MurmurHash3 for checksums and the map's path bits.
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
pub mod region;

pub use buffer::{
    Buffer, BufferOptions, BufferStats, CompactReport, CompactionPolicy, Durability, EntryId,
    EntryReader, RecordHeader, RecordStatus, SeekFrom,
};
pub use error::Error;
pub use region::{Region, RegionError, RegionOp, SliceRegion, VecRegion};
