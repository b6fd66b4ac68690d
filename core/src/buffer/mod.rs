//! The entry buffer: the layer that owns a region's space.
//!
//! - [`format`]: the byte layout of meta slots and entry headers (docs/FORMAT.md).
//! - `space`: allocation of entries, commits with one sync, recovery on open.
//! - `free`: the free-space map (lowest address first).
//! - `ids`: the copy-on-write id tree from stable id to record.
//! - [`Buffer`]: the public record store (what mmcb offered), crash-safe.
pub mod format;
mod free;
mod ids;
mod reader;
mod space;
mod store;

pub use reader::{EntryReader, SeekFrom};
pub use space::Durability;
pub use store::{
    Buffer, BufferOptions, BufferStats, CompactReport, CompactionPolicy, EntryId, RecordHeader,
    RecordStatus,
};
