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

/// What a [`Db`](crate::Db) operation can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum DbError {
    /// Another process, or another open `Db` in this one, holds the file: a writer
    /// excludes everyone, read-only opens exclude writers.
    Locked,
    /// The database was opened read-only.
    ReadOnly,
    /// Opening or creating the file failed.
    Open(OpenError),
    /// The core refused: a damaged image (`Corrupted` with an offset), a full disk
    /// (`Region(NoSpace)`), a key or value too large, ...
    Core(hamtdb_core::Error),
    /// The operating system failed otherwise.
    Io(io::Error),
    /// Opened read-only, but the commit log (`<path>-log`) holds `records` commits the
    /// database file does not: replaying them writes the file. Open it writable once.
    NeedsRecovery {
        /// Commits waiting in the log.
        records: u64,
    },
}

impl DbError {
    /// Whether the medium ran out of room (a full disk, a quota, a file-size limit).
    /// Nothing committed is lost; the failed write can be retried once there is room.
    pub fn is_no_space(&self) -> bool {
        matches!(
            self,
            DbError::Core(hamtdb_core::Error::Region(RegionError::NoSpace { .. }))
                | DbError::Open(OpenError::Region(RegionError::NoSpace { .. }))
        )
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Locked => f.write_str("the database is locked by another open of it"),
            DbError::ReadOnly => f.write_str("the database was opened read-only"),
            DbError::Open(err) => write!(f, "could not open the database: {err}"),
            DbError::Core(err) => err.fmt(f),
            DbError::Io(err) => write!(f, "I/O error: {err}"),
            DbError::NeedsRecovery { records } => write!(
                f,
                "the commit log holds {records} commits the database file does not have yet; \
                 open the database writable once to replay them"
            ),
        }
    }
}

impl core::error::Error for DbError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            DbError::Open(err) => Some(err),
            DbError::Core(err) => Some(err),
            DbError::Io(err) => Some(err),
            DbError::Locked | DbError::ReadOnly | DbError::NeedsRecovery { .. } => None,
        }
    }
}

impl From<OpenError> for DbError {
    fn from(err: OpenError) -> Self {
        match err {
            OpenError::Locked => DbError::Locked,
            other => DbError::Open(other),
        }
    }
}

impl From<hamtdb_core::Error> for DbError {
    fn from(err: hamtdb_core::Error) -> Self {
        DbError::Core(err)
    }
}

impl From<io::Error> for DbError {
    fn from(err: io::Error) -> Self {
        DbError::Io(err)
    }
}
