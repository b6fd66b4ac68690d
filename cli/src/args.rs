//! The command line: every subcommand, its options and its `--help`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit codes, shown after `--help` and repeated in the README.
pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  check found problems; get or delete: the key is not there
  2  usage: bad arguments, or a KEY or VALUE that is not valid in its --encoding
  3  I/O error, no database at DB, the database is locked by another process, or
     its commit log (DB-log) holds commits that only a writable open can replay
  4  the database is corrupt (the message names the offset) or not a hamtdb file
  5  bad input data: a malformed import line (named by its line number), a key or
     value too large, or stored bytes that the chosen output encoding cannot show

Commands that write (put, delete, import, compact) lock DB for themselves; the others
open it read-only and share it with other readers. Only put and import create a
missing database.";

/// The `hamtdb` command.
#[derive(Debug, Parser)]
#[command(
    name = "hamtdb",
    version,
    about = "Look inside, load, check and shrink a hamtdb database",
    override_usage = "hamtdb <DB> <COMMAND> [ARGS]...\n       hamtdb bench [OPTIONS]",
    after_help = EXIT_CODES,
    disable_help_subcommand = true
)]
pub(crate) struct Cli {
    /// The database file.
    #[arg(value_name = "DB")]
    pub(crate) db: Option<PathBuf>,

    /// Never draw progress bars (they are drawn only when stderr is a terminal).
    #[arg(long, global = true)]
    pub(crate) no_progress: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Set KEY to VALUE (creates the database if it is missing).
    #[command(after_help = EXIT_CODES)]
    Put {
        /// The key.
        key: OsString,
        /// The value.
        value: OsString,
        #[command(flatten)]
        encoding: ArgEncoding,
    },
    /// Print the value of KEY (exit code 1 if it is not there).
    #[command(after_help = EXIT_CODES)]
    Get {
        /// The key.
        key: OsString,
        #[command(flatten)]
        encoding: ArgEncoding,
        /// Print the value's bytes exactly, without the final newline.
        #[arg(short = 'n', long)]
        no_newline: bool,
    },
    /// Remove KEY (exit code 1 if it was not there).
    #[command(after_help = EXIT_CODES)]
    Delete {
        /// The key.
        key: OsString,
        #[command(flatten)]
        encoding: ArgEncoding,
    },
    /// Print the number of keys.
    #[command(after_help = EXIT_CODES)]
    Len,
    /// Print every pair, one a line, in storage order (a hash trie has no key order).
    #[command(after_help = EXIT_CODES)]
    Scan {
        /// text: `key<TAB>value` with backslash escapes (as `export --format tsv`);
        /// hex: both in hex; json: JSON Lines as `export` writes them.
        #[arg(long, short, value_enum, default_value_t = ScanFormat::Text)]
        format: ScanFormat,
        /// How `--format json` writes the bytes.
        #[arg(long, short, value_enum, default_value_t = Encoding::Utf8)]
        encoding: Encoding,
        /// Print at most this many pairs.
        #[arg(long, short)]
        limit: Option<u64>,
    },
    /// Print entries, depth histogram, space accounting, file size and last transaction.
    #[command(after_help = EXIT_CODES)]
    Stats {
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Verify every node and value; print each problem with its offset (exit code 1 if
    /// any).
    #[command(after_help = EXIT_CODES)]
    Check,
    /// Move live data to the start of the file and shrink it; print the sizes before and
    /// after.
    #[command(after_help = EXIT_CODES)]
    Compact,
    /// Load pairs from FILE (`-` for standard input), committing every --batch pairs
    /// (creates the database if it is missing).
    #[command(after_help = EXIT_CODES)]
    Import {
        /// JSON Lines or TSV file; `-` reads standard input.
        file: PathBuf,
        #[command(flatten)]
        format: FileFormat,
        /// Pairs per commit: memory stays flat however large the file.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
        batch: u64,
        /// Report malformed lines and go on, instead of stopping at the first.
        #[arg(long)]
        skip_bad: bool,
    },
    /// Write every pair to FILE (`-` for standard output), one a line.
    #[command(after_help = EXIT_CODES)]
    Export {
        /// Output file (overwritten); `-` writes standard output.
        file: PathBuf,
        #[command(flatten)]
        format: FileFormat,
    },
    /// Benchmark a temporary database: bulk load, random gets, durable commits (ops/s).
    #[command(after_help = EXIT_CODES)]
    Bench(BenchArgs),
}

/// `--encoding` of KEY and VALUE on the command line.
#[derive(Debug, Args, Clone, Copy)]
pub(crate) struct ArgEncoding {
    /// How KEY and VALUE are written, and how `get` prints the value. utf8: the bytes
    /// as given (and printed as they are).
    #[arg(long, short, value_enum, default_value_t = Encoding::Utf8)]
    pub(crate) encoding: Encoding,
}

/// `--format` and `--encoding` of an import or export file.
#[derive(Debug, Args, Clone, Copy)]
pub(crate) struct FileFormat {
    /// jsonl: `{"key": ..., "value": ...}` a line; tsv: `key<TAB>value` a line.
    /// Default: tsv for a `.tsv` file name, else jsonl.
    #[arg(long, short, value_enum)]
    pub(crate) format: Option<TransferFormat>,
    /// How the bytes are written. utf8 in JSON needs valid UTF-8; utf8 in TSV escapes
    /// `\\`, `\t`, `\n`, `\r` and other bytes as `\xHH`.
    #[arg(long, short, value_enum, default_value_t = Encoding::Utf8)]
    pub(crate) encoding: Encoding,
}

/// `bench` options.
#[derive(Debug, Args, Clone)]
pub(crate) struct BenchArgs {
    /// Keys to load.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub(crate) keys: u64,
    /// Bytes a value.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=(1 << 20)))]
    pub(crate) value_size: u32,
    /// Random gets.
    #[arg(long, default_value_t = 200_000)]
    pub(crate) gets: u64,
    /// Durable single-put commits (one sync each).
    #[arg(long, default_value_t = 200)]
    pub(crate) commits: u64,
    /// Seed of the random keys and values.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Directory for the temporary database (default: the system's temporary
    /// directory). It is removed afterwards.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
}

/// How bytes are spelled in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Encoding {
    /// UTF-8 text.
    Utf8,
    /// Standard base64 with padding.
    Base64,
    /// Hexadecimal, two digits a byte.
    Hex,
}

impl Encoding {
    /// The name `--encoding` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf8",
            Encoding::Base64 => "base64",
            Encoding::Hex => "hex",
        }
    }
}

/// `scan --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ScanFormat {
    /// `key<TAB>value`, backslash-escaped.
    Text,
    /// `key<TAB>value` in hex.
    Hex,
    /// JSON Lines.
    Json,
}

/// `import` / `export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TransferFormat {
    /// JSON Lines: `{"key": ..., "value": ...}`.
    Jsonl,
    /// Tab-separated: `key<TAB>value`.
    Tsv,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn db_then_command_and_bench_alone_parse() {
        let cli = Cli::try_parse_from(["hamtdb", "my.db", "get", "k"]).unwrap();
        assert_eq!(cli.db.as_deref(), Some(std::path::Path::new("my.db")));
        assert!(matches!(cli.command, Command::Get { .. }));
        let cli = Cli::try_parse_from(["hamtdb", "bench", "--keys", "10"]).unwrap();
        assert!(cli.db.is_none());
        assert!(matches!(
            cli.command,
            Command::Bench(BenchArgs { keys: 10, .. })
        ));
    }
}
