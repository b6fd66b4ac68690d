//! [`Fail`]: why a command stopped, said so that a person can act on it, with its exit
//! code (the table is `args::EXIT_CODES`).

use std::io::{self, Write as _};
use std::path::Path;

use hamtdb::{DbError, Error, OpenError, RegionError};

/// Success.
pub(crate) const OK: u8 = 0;
/// `check` found problems; `get` / `delete`: the key is not there.
pub(crate) const NEGATIVE: u8 = 1;
/// Bad arguments.
pub(crate) const USAGE: u8 = 2;
/// I/O, a missing database, a lock.
pub(crate) const IO: u8 = 3;
/// A corrupt database or not a hamtdb file.
pub(crate) const CORRUPT: u8 = 4;
/// Bad input data.
pub(crate) const BAD_INPUT: u8 = 5;

/// A command's failure: the message for stderr (empty: say nothing) and the exit code.
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) code: u8,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

impl Fail {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Fail {
            code,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A reader went away (`hamtdb DB scan | head`): stop quietly, successfully.
    pub(crate) fn quiet() -> Self {
        Fail::new(OK, "")
    }

    /// Prints the message and hint on stderr (errors writing there are ignored: there is
    /// nowhere left to report them).
    pub(crate) fn report(&self) {
        if self.message.is_empty() {
            return;
        }
        let mut err = io::stderr().lock();
        let _ = writeln!(err, "hamtdb: {}", self.message);
        if let Some(hint) = &self.hint {
            let _ = writeln!(err, "hint: {hint}");
        }
    }
}

/// A write to standard output failed: a closed pipe ends the command quietly.
pub(crate) fn stdout_error(err: io::Error) -> Fail {
    if err.kind() == io::ErrorKind::BrokenPipe {
        Fail::quiet()
    } else {
        Fail::new(IO, format!("could not write to standard output: {err}"))
    }
}

/// How a command opens the database, which decides what a missing file means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read-only, shared lock; never creates.
    Read,
    /// Read-write, exclusive lock; never creates.
    Write,
    /// Read-write, creating a missing database.
    Create,
}

/// Explains a database error on `path`.
pub(crate) fn db_error(path: &Path, access: Access, err: DbError) -> Fail {
    let shown = path.display();
    match err {
        DbError::Locked => Fail::new(IO, format!("{shown} is locked by another process")).hint(
            "a writer (put, delete, import, compact) excludes everyone; readers (get, \
                 len, scan, stats, check, export) exclude writers. Retry once the other \
                 program has closed it.",
        ),
        DbError::ReadOnly => Fail::new(IO, format!("{shown} was opened read-only")),
        DbError::Open(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
            if access == Access::Create {
                Fail::new(
                    IO,
                    format!("cannot create {shown}: its directory does not exist"),
                )
            } else {
                missing(path)
            }
        }
        DbError::Open(OpenError::Io(e)) if e.kind() == io::ErrorKind::PermissionDenied => {
            Fail::new(IO, format!("{shown}: permission denied"))
        }
        DbError::Open(OpenError::Region(e)) => region_error(path, e),
        DbError::Open(e) => Fail::new(IO, format!("cannot open {shown}: {e}")),
        DbError::Core(e) => core_error(path, e),
        DbError::Io(e) => Fail::new(IO, format!("{shown}: I/O error: {e}")),
        DbError::NeedsRecovery { records } => Fail::new(
            IO,
            format!(
                "{shown}: its commit log ({shown}-log) holds {records} commits that the \
                 file does not have yet, and a read-only open cannot replay them"
            ),
        )
        .hint(format!(
            "open it writable once to replay them, for instance `hamtdb {shown} compact`"
        )),
        other => Fail::new(IO, format!("{shown}: {other}")),
    }
}

/// There is no database at `path`.
pub(crate) fn missing(path: &Path) -> Fail {
    let shown = path.display();
    Fail::new(IO, format!("no database at {shown}")).hint(format!(
        "create one with `hamtdb {shown} put KEY VALUE` or `hamtdb {shown} import FILE`"
    ))
}

fn region_error(path: &Path, err: RegionError) -> Fail {
    let shown = path.display();
    match err {
        RegionError::NoSpace { requested } => Fail::new(
            IO,
            format!("{shown}: the disk is full (growing to {requested} bytes failed)"),
        )
        .hint("nothing committed was lost; free some space and retry"),
        other => Fail::new(IO, format!("{shown}: {other}")),
    }
}

fn core_error(path: &Path, err: Error) -> Fail {
    let shown = path.display();
    match err {
        Error::Corrupted(c) => Fail::new(
            CORRUPT,
            format!("{shown} is corrupt at offset {}: {}", c.offset(), c.what()),
        )
        .hint(format!(
            "`hamtdb {shown} check` lists every problem; nothing was changed"
        )),
        Error::NotInitialized => Fail::new(
            CORRUPT,
            format!("{shown} is not a hamtdb database (no valid meta slot)"),
        ),
        Error::UnsupportedVersion { found } => Fail::new(
            CORRUPT,
            format!("{shown} has format version {found}, which this hamtdb does not read"),
        ),
        Error::WrongKind { found } => Fail::new(
            CORRUPT,
            format!("{shown} holds another hamtdb structure (kind {found}), not a map"),
        ),
        Error::TooLarge { .. } => Fail::new(BAD_INPUT, err.to_string()),
        Error::Region(e) => region_error(path, e),
        other => Fail::new(IO, format!("{shown}: {other}")),
    }
}
