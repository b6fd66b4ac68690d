//! Hashing: standard MurmurHash3 (x86_32 and x64_128), as published with SMHasher.
//!
//! The map takes its path bits from [`murmur3_x64_128`] with a per-database seed kept in
//! the meta slot, so a user who picks keys cannot aim them all at one path. Entry
//! checksums use [`murmur3_x86_32`]. Both match the reference implementation bit for
//! bit; the tests check SMHasher's verification values and published triples.

mod murmur3;

pub use murmur3::{murmur3_x64_128, murmur3_x86_32};
