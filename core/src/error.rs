//! The core's error type: one enum for every layer above the region, so that a caller
//! matches on what went wrong (a full region, a damaged image, a value too large) rather
//! than on where.

use core::fmt;

use crate::region::RegionError;

/// What a buffer or map operation can fail with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The region failed or is full; nothing already committed is affected.
    Region(RegionError),
    /// The image is damaged or was not written by hamtdb: `what` was wrong at `offset`.
    Corrupted {
        /// Byte offset in the region of the structure found wrong.
        offset: u64,
        /// What was wrong with it.
        what: &'static str,
    },
    /// The region holds no hamtdb image (no valid meta slot and no magic).
    NotInitialized,
    /// The image is of a format version this build does not read.
    UnsupportedVersion {
        /// The version found in the image.
        found: u32,
    },
    /// The image holds another kind of structure (a buffer opened as a map, or the
    /// reverse).
    WrongKind {
        /// The structure kind found in the image.
        found: u32,
    },
    /// `what` is `len` bytes long, more than the format allows (`max`).
    TooLarge {
        /// Which input was too large.
        what: &'static str,
        /// Its length.
        len: u64,
        /// The largest length allowed.
        max: u64,
    },
    /// The entry id was never handed out.
    NotFound {
        /// The id asked for.
        id: u64,
    },
    /// The entry id was removed.
    Removed {
        /// The id asked for.
        id: u64,
    },
    /// An option was out of its range.
    InvalidOption {
        /// Which option, and what it must be.
        what: &'static str,
    },
}

impl Error {
    /// Shorthand for [`Error::Corrupted`].
    pub(crate) const fn corrupted(offset: u64, what: &'static str) -> Self {
        Error::Corrupted { offset, what }
    }
}

impl From<RegionError> for Error {
    fn from(e: RegionError) -> Self {
        Error::Region(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Region(e) => write!(f, "region error: {e}"),
            Error::Corrupted { offset, what } => {
                write!(f, "corrupted image at offset {offset}: {what}")
            }
            Error::NotInitialized => f.write_str("the region holds no hamtdb image"),
            Error::UnsupportedVersion { found } => {
                write!(f, "unsupported format version {found}")
            }
            Error::WrongKind { found } => {
                write!(f, "the image holds another kind of structure ({found})")
            }
            Error::TooLarge { what, len, max } => {
                write!(f, "{what} is {len} bytes, more than the {max} allowed")
            }
            Error::NotFound { id } => write!(f, "entry {id} does not exist"),
            Error::Removed { id } => write!(f, "entry {id} was removed"),
            Error::InvalidOption { what } => write!(f, "invalid option: {what}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Region(e) => Some(e),
            _ => None,
        }
    }
}
