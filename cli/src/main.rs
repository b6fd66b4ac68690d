//! `hamtdb`: the command-line tool for hamtdb databases — look inside one, load it,
//! check it and shrink it from a shell.
//!
//! Every failure is a [`fail::Fail`] with a message a person can act on and a
//! documented exit code; nothing panics on any input, and a closed stdout pipe ends a
//! command quietly.

mod args;
mod bench;
mod codec;
mod fail;
mod inspect;
mod kv;
mod progress;
mod transfer;

use std::io;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser as _;
use hamtdb::Db;

use crate::args::{Cli, Command};
use crate::fail::{Access, Fail};
use crate::progress::Ui;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are "errors" that exit 0; a closed stdout is
            // nothing to report.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(fail::USAGE));
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(fail) => {
            fail.report();
            ExitCode::from(fail.code)
        }
    }
}

/// Runs the command; `Ok` carries the exit code of a command that finished (0, or 1
/// for a negative answer it already printed).
fn run(cli: Cli) -> Result<u8, Fail> {
    let ui = Ui::detect(cli.no_progress);
    if let Command::Bench(options) = &cli.command {
        if let Some(db) = &cli.db {
            return Err(Fail::new(
                fail::USAGE,
                format!(
                    "bench runs on a temporary database; `{}` was given as DB",
                    db.display()
                ),
            )
            .hint("run `hamtdb bench` (with `--dir DIR` to choose where)"));
        }
        return bench::run(options, ui);
    }
    let Some(path) = cli.db else {
        return Err(Fail::new(fail::USAGE, "no database given")
            .hint("usage: hamtdb <DB> <COMMAND> [ARGS]... (see `hamtdb --help`)"));
    };
    let path = path.as_path();
    match cli.command {
        Command::Put {
            key,
            value,
            encoding,
        } => kv::put(path, &key, &value, encoding.encoding),
        Command::Get {
            key,
            encoding,
            no_newline,
        } => kv::get(path, &key, encoding.encoding, no_newline),
        Command::Delete { key, encoding } => kv::delete(path, &key, encoding.encoding),
        Command::Len => kv::len(path),
        Command::Scan {
            format,
            encoding,
            limit,
        } => transfer::scan(path, format, encoding, limit),
        Command::Stats { json } => inspect::stats(path, json),
        Command::Check => inspect::check(path, ui),
        Command::Compact => inspect::compact(path, ui),
        Command::Import {
            file,
            format,
            batch,
            skip_bad,
        } => transfer::import(path, &file, format, batch, skip_bad, ui),
        Command::Export { file, format } => transfer::export(path, &file, format, ui),
        Command::Bench(_) => unreachable_bench(),
    }
}

/// `bench` returned above; kept as a typed error rather than a panic.
fn unreachable_bench() -> Result<u8, Fail> {
    Err(Fail::new(fail::USAGE, "bench takes no DB"))
}

/// Opens the database at `path` as `access` allows, explaining every failure.
fn open(path: &Path, access: Access) -> Result<Db, Fail> {
    let result = match access {
        Access::Read => Db::builder().read_only(true).open(path),
        Access::Write => {
            // `Db::open` creates a missing file; commands that only change an existing
            // database must not leave an empty one behind.
            match path.try_exists() {
                Ok(true) => Db::open(path),
                Ok(false) => return Err(fail::missing(path)),
                Err(e) => {
                    return Err(Fail::new(
                        fail::IO,
                        format!("cannot look at {}: {e}", path.display()),
                    ));
                }
            }
        }
        Access::Create => Db::open(path),
    };
    result.map_err(|e| fail::db_error(path, access, e))
}

/// Closes `db`, reporting what the final sync says.
fn close(db: Db, path: &Path, access: Access) -> Result<(), Fail> {
    db.close().map_err(|e| fail::db_error(path, access, e))
}

/// Standard output, buffered.
fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::with_capacity(64 << 10, io::stdout().lock())
}

/// Flushes standard output.
fn flush(out: &mut impl io::Write) -> Result<(), Fail> {
    out.flush().map_err(fail::stdout_error)
}

/// `-` stands for standard input or output.
fn is_dash(path: &Path) -> bool {
    path.as_os_str() == "-"
}
