//! [`OpenError`]: why a [`FileRegion`](crate::FileRegion) could not be opened or created.

use core::fmt;
use std::io;

use hamtdb_core::RegionError;

/// What [`FileRegion::create`](crate::FileRegion::create),
/// [`open`](crate::FileRegion::open) and
/// [`open_or_create`](crate::FileRegion::open_or_create) can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// Another open of the file holds a conflicting lock: a writer excludes everyone, a
    /// reader excludes writers. The holder may be another process or another
    /// `FileRegion` of the same file in this process (the lock belongs to each open,
    /// not to the process).
    Locked,
    /// The options cannot work together (for instance creating a read-only region).
    InvalidOptions(&'static str),
    /// Giving a new file its initial length failed (a full disk is
    /// [`RegionError::NoSpace`]); the half-made file has been removed.
    Region(RegionError),
    /// The operating system refused to open, lock, inspect or map the file. A missing
    /// file for [`open`](crate::FileRegion::open) is [`io::ErrorKind::NotFound`] and an
    /// existing one for [`create`](crate::FileRegion::create) is
    /// [`io::ErrorKind::AlreadyExists`].
    Io(io::Error),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Locked => f.write_str("the file is locked by another open of it"),
            OpenError::InvalidOptions(what) => write!(f, "invalid options: {what}"),
            OpenError::Region(err) => write!(f, "could not size the new file: {err}"),
            OpenError::Io(err) => write!(f, "could not open the file: {err}"),
        }
    }
}

impl core::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            OpenError::Region(err) => Some(err),
            OpenError::Io(err) => Some(err),
            OpenError::Locked | OpenError::InvalidOptions(_) => None,
        }
    }
}

impl From<io::Error> for OpenError {
    fn from(err: io::Error) -> Self {
        OpenError::Io(err)
    }
}

impl From<RegionError> for OpenError {
    fn from(err: RegionError) -> Self {
        OpenError::Region(err)
    }
}
