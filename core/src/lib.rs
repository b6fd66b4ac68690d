//! The `no_std` core of hamtdb.
//!
//! Layers, each talking only to the one below it:
//!
//! - [`region`]: the [`Region`] trait, the only thing the core knows about storage, with
//!   [`SliceRegion`] (a caller's `&mut [u8]`) and [`VecRegion`] (the heap).
//!
//! The core never touches files, threads or clocks; the std crate `hamtdb` supplies them.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod hash;
pub mod region;

pub use region::{Region, RegionError, RegionOp, SliceRegion, VecRegion};
