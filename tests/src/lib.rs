//! Test doubles shared by hamtdb's test suites and fuzz targets.
//!
//! - [`FaultRegion`] (module [`fault_region`]): a [`Region`](hamtdb_core::Region) with a
//!   volatile and a durable image, crash images, a power-cut budget and injected errors.
//! - [`SplitMix64`] (module [`rng`]): a tiny deterministic generator, so every random
//!   test reproduces from a printed seed.
//! - [`buffer_model`]: a model of the entry buffer and a harness that runs operations on
//!   a buffer and the model side by side; [`strategies`]: proptest strategies for it.
//!
//! A plain library with no test-only configuration, so fuzz targets can use it too.
#![deny(unsafe_code)]

pub mod buffer_model;
pub mod counters;
pub mod crash_run;
pub mod damage;
pub mod fault_region;
pub mod log_damage;
pub mod map_model;
pub mod rng;
pub mod strategies;

pub use counters::{Counter, Counters};
pub use fault_region::{
    CrashMode, DEFAULT_FAULT_CAPACITY, Fault, FaultRegion, INJECTED_CODE, OpCounts, POWER_CUT_CODE,
    UnsyncedWrite,
};
pub use rng::SplitMix64;
