//! hamtdb: an embedded, persistent key-value store, a copy-on-write hash trie on a
//! memory-mapped file.
//!
//! [`Db`] is the type most users touch: a thread-safe database in one file, with
//! snapshot readers that never wait, group commit and background flushing and
//! compaction.
//!
//! This crate is the std backend over the `no_std` core, [`hamtdb_core`], whose public
//! items it re-exports. It supplies the file: [`FileRegion`] is a [`Region`] over a
//! memory-mapped file, locked against other openers, that grows without moving and
//! reports a full disk as an error.
//!
//! All `unsafe` code that touches the map lives in one private module, `mmap`, whose
//! safety argument covers the risks of a memory map (another process changing the file,
//! the map moving, SIGBUS beyond the end of the file) and how this crate avoids each.
#![deny(unsafe_code)]

mod db;
mod error;
mod file_region;
mod mmap;
mod pending;
mod record_io;
#[cfg(feature = "serde")]
mod serde_codec;

pub use db::{Db, DbCompactionPolicy, DbWriteTxn, Options, log_path};
pub use error::{DbError, OpenError};
pub use file_region::{DEFAULT_RESERVATION, FileRegion, FileRegionOptions, GrowthPolicy};
pub use hamtdb_core::*;
pub use record_io::RecordReader;
#[cfg(feature = "serde")]
pub use serde_codec::SerdeCodec;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
