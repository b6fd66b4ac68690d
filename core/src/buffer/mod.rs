//! The entry buffer: the layer that owns a region's space.
//!
//! - [`format`]: the byte layout of meta slots and entry headers (docs/FORMAT.md).
//! - `space`: allocation of entries, commits with one sync, recovery on open.
//! - `free`: the free-space map (lowest address first).
//! - `ids`: the copy-on-write id tree from stable id to record.
//! - [`Buffer`]: the public record store (what mmcb offered), crash-safe.
//! - [`Codec`]: how typed keys and values become bytes.
//! - [`TypedBuffer`]: typed key-value records on a buffer (mmcb's typed maps).
mod codec;
pub mod format;
mod free;
mod ids;
pub(crate) mod ordered;
mod reader;
pub(crate) mod space;
mod store;
mod typed;

pub use codec::{
    BytesCodec, Codec, CodecError, Encode, LeI8, LeI16, LeI32, LeI64, LeI128, LeU8, LeU16, LeU32,
    LeU64, LeU128, Utf8Codec,
};
pub use reader::{EntryReader, SeekFrom};
pub use space::Durability;
pub use store::{
    Buffer, BufferOptions, BufferStats, CompactReport, CompactionPolicy, EntryId, RecordHeader,
    RecordStatus,
};
pub use typed::{TypedBuffer, TypedError, TypedIter};

/// The extension factor's fixed point, shared with the map's value entries.
#[cfg(feature = "value-slack")]
pub(crate) use store::extension_from_factor;
pub(crate) use store::{EXTENSION_ONE, room_for};
