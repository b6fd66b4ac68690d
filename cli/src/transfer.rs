//! `scan`, `import` and `export`: pairs as lines of JSON Lines or TSV, streamed.
//!
//! Export and scan read one snapshot. The `Db` API offers no streaming iterator, only a
//! `Vec` of every pair: they take [`ReadTxn::iter`](hamtdb::ReadTxn::iter) on a
//! `begin_read()` snapshot, whose pairs borrow the memory-mapped file, so what is held
//! is two slices a pair, never a copy of the keys and values. Import reads a line at a
//! time and commits every `--batch` pairs, so its memory stays flat.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read as _, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::args::{Encoding, FileFormat, ScanFormat, TransferFormat};
use crate::codec;
use crate::fail::{self, Access, Fail};
use crate::inspect::plural;
use crate::progress::Ui;

/// The longest line `import` reads (keys and values of up to 64 MiB in base64).
const MAX_LINE: usize = 96 << 20;

/// Bad lines `import --skip-bad` prints before it only counts them.
const MAX_REPORTED: u64 = 100;

/// One JSON Lines record.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonPair<'a> {
    #[serde(borrow)]
    key: Cow<'a, str>,
    #[serde(borrow)]
    value: Cow<'a, str>,
}

/// How each pair becomes a line.
#[derive(Clone, Copy, Debug)]
enum LineFormat {
    Json(Encoding),
    Tsv(Encoding),
}

impl LineFormat {
    fn of(file: &Path, format: FileFormat) -> Self {
        let tsv = match format.format {
            Some(f) => f == TransferFormat::Tsv,
            None => file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("tsv")),
        };
        if tsv {
            LineFormat::Tsv(format.encoding)
        } else {
            LineFormat::Json(format.encoding)
        }
    }

    /// The flags that select this format again.
    fn flags(self) -> String {
        let (name, encoding) = match self {
            LineFormat::Json(e) => ("jsonl", e),
            LineFormat::Tsv(e) => ("tsv", e),
        };
        format!("--format {name} --encoding {}", encoding.name())
    }

    /// Appends the line for `key`, `value` (newline included) to `out`.
    fn write(self, key: &[u8], value: &[u8], out: &mut Vec<u8>) -> Result<(), Fail> {
        match self {
            LineFormat::Tsv(encoding) => {
                codec::encode_tsv(key, encoding, out);
                out.push(b'\t');
                codec::encode_tsv(value, encoding, out);
            }
            LineFormat::Json(encoding) => {
                let field = |what: &str, bytes: &[u8]| {
                    codec::encode_str(bytes, encoding).ok_or_else(|| {
                        let mut start = String::new();
                        codec::hex_encode(&key[..key.len().min(32)], &mut start);
                        Fail::new(
                            fail::BAD_INPUT,
                            format!(
                                "a stored {what} is not valid UTF-8, which JSON cannot hold \
                                 (key in hex: {start}{})",
                                if key.len() > 32 { "..." } else { "" }
                            ),
                        )
                        .hint("use --encoding base64 or --encoding hex (or --format tsv)")
                    })
                };
                let pair = JsonPair {
                    key: Cow::Owned(field("key", key)?),
                    value: Cow::Owned(field("value", value)?),
                };
                serde_json::to_writer(&mut *out, &pair)
                    .map_err(|e| Fail::new(fail::BAD_INPUT, format!("cannot write JSON: {e}")))?;
            }
        }
        out.push(b'\n');
        Ok(())
    }

    /// Parses one line (without its line ending).
    fn parse(self, line: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
        match self {
            LineFormat::Json(encoding) => {
                let pair: JsonPair<'_> = serde_json::from_slice(line).map_err(json_message)?;
                let key = codec::decode(&pair.key, encoding)
                    .map_err(|e| field_error("key", encoding, &e))?;
                let value = codec::decode(&pair.value, encoding)
                    .map_err(|e| field_error("value", encoding, &e))?;
                Ok((key, value))
            }
            LineFormat::Tsv(encoding) => {
                let Some(tab) = line.iter().position(|&b| b == b'\t') else {
                    return Err("expected `key<TAB>value`, found no tab".into());
                };
                let (key, value) = (&line[..tab], &line[tab + 1..]);
                if value.contains(&b'\t') {
                    return Err("more than one tab (a tab inside a field is written `\\t`)".into());
                }
                let key = codec::decode_tsv(key, encoding)
                    .map_err(|e| field_error("key", encoding, &e))?;
                let value = codec::decode_tsv(value, encoding)
                    .map_err(|e| field_error("value", encoding, &e))?;
                Ok((key, value))
            }
        }
    }
}

/// Why a field of an import line could not be decoded.
fn field_error(what: &str, encoding: Encoding, error: &str) -> String {
    match encoding {
        Encoding::Utf8 => format!("{what}: {error}"),
        other => format!("{what} is not valid {}: {error}", other.name()),
    }
}

/// serde_json's message without its "at line 1 column N" (each line is parsed alone).
fn json_message(e: serde_json::Error) -> String {
    let message = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match message.strip_suffix(&suffix) {
        Some(m) => format!("column {}: {m}", e.column()),
        None => message,
    }
}

pub(crate) fn scan(
    path: &Path,
    format: ScanFormat,
    encoding: Encoding,
    limit: Option<u64>,
) -> Result<u8, Fail> {
    let line = match format {
        ScanFormat::Text => LineFormat::Tsv(Encoding::Utf8),
        ScanFormat::Hex => LineFormat::Tsv(Encoding::Hex),
        ScanFormat::Json => LineFormat::Json(encoding),
    };
    let db = crate::open(path, Access::Read)?;
    {
        let snapshot = db.begin_read();
        let pairs = snapshot
            .iter()
            .map_err(|e| fail::db_error(path, Access::Read, e.into()))?;
        let mut out = crate::stdout();
        let mut buf = Vec::new();
        let limit = limit.unwrap_or(u64::MAX);
        for (key, value) in pairs
            .iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            buf.clear();
            line.write(key, value, &mut buf)?;
            out.write_all(&buf).map_err(fail::stdout_error)?;
        }
        crate::flush(&mut out)?;
    }
    crate::close(db, path, Access::Read)?;
    Ok(fail::OK)
}

pub(crate) fn export(path: &Path, file: &Path, format: FileFormat, ui: Ui) -> Result<u8, Fail> {
    let line = LineFormat::of(file, format);
    let db = crate::open(path, Access::Read)?;
    let to_stdout = crate::is_dash(file);
    let write_error = |e: io::Error| {
        if to_stdout {
            fail::stdout_error(e)
        } else {
            Fail::new(fail::IO, format!("cannot write {}: {e}", file.display()))
        }
    };
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(crate::stdout())
    } else {
        refuse_same_file(path, file)?;
        Box::new(io::BufWriter::with_capacity(
            256 << 10,
            File::create(file).map_err(write_error)?,
        ))
    };
    let count;
    {
        let snapshot = db.begin_read();
        let pairs = snapshot
            .iter()
            .map_err(|e| fail::db_error(path, Access::Read, e.into()))?;
        count = pairs.len();
        let bar = ui.bar("exporting", Some(snapshot.len()), false);
        let mut buf = Vec::with_capacity(64 << 10);
        for (key, value) in &pairs {
            line.write(key, value, &mut buf)?;
            if buf.len() >= 32 << 10 {
                out.write_all(&buf).map_err(write_error)?;
                buf.clear();
            }
            bar.inc(1);
        }
        out.write_all(&buf).map_err(write_error)?;
        out.flush().map_err(write_error)?;
        bar.finish();
    }
    drop(out);
    if !to_stdout {
        // The export is a copy someone may rely on: make it durable before saying so.
        File::open(file)
            .and_then(|f| f.sync_all())
            .map_err(write_error)?;
    }
    crate::close(db, path, Access::Read)?;
    if !to_stdout {
        let mut stdout = crate::stdout();
        writeln!(stdout, "exported {count} pairs to {}", file.display())
            .map_err(fail::stdout_error)?;
        crate::flush(&mut stdout)?;
    }
    Ok(fail::OK)
}

/// Writing the export over the open database would cut the file under its memory map.
fn refuse_same_file(db: &Path, file: &Path) -> Result<(), Fail> {
    if let (Ok(a), Ok(b)) = (std::fs::metadata(db), std::fs::metadata(file))
        && a.dev() == b.dev()
        && a.ino() == b.ino()
    {
        return Err(Fail::new(
            fail::USAGE,
            format!(
                "{} is the database itself; export to another file",
                file.display()
            ),
        ));
    }
    Ok(())
}

/// What reading one line found.
enum LineRead {
    Eof,
    /// A line, its ending removed, and the bytes it took.
    Line(u64),
    /// A line longer than [`MAX_LINE`], skipped; the bytes it took.
    TooLong(u64),
}

fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<LineRead> {
    buf.clear();
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
    let n = reader.by_ref().take(limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(LineRead::Eof);
    }
    let mut taken = u64::try_from(n).unwrap_or(u64::MAX);
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(LineRead::Line(taken));
    }
    if buf.len() <= MAX_LINE {
        // The last line, without a newline.
        return Ok(LineRead::Line(taken));
    }
    buf.clear();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                taken += u64::try_from(i + 1).unwrap_or(0);
                break;
            }
            None => {
                let len = available.len();
                reader.consume(len);
                taken += u64::try_from(len).unwrap_or(0);
            }
        }
    }
    Ok(LineRead::TooLong(taken))
}

pub(crate) fn import(
    path: &Path,
    file: &Path,
    format: FileFormat,
    batch: u64,
    skip_bad: bool,
    ui: Ui,
) -> Result<u8, Fail> {
    let line_format = LineFormat::of(file, format);
    let from_stdin = crate::is_dash(file);
    let name = if from_stdin {
        "standard input".to_owned()
    } else {
        file.display().to_string()
    };
    let read_error = |e: io::Error| Fail::new(fail::IO, format!("cannot read {name}: {e}"));
    let (mut reader, total): (Box<dyn BufRead>, Option<u64>) = if from_stdin {
        (Box::new(BufReader::new(io::stdin().lock())), None)
    } else {
        let f = File::open(file).map_err(read_error)?;
        let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        (Box::new(BufReader::with_capacity(256 << 10, f)), len)
    };
    let db = crate::open(path, Access::Create)?;
    let db_error = |e| fail::db_error(path, Access::Create, e);
    let bar = ui.bar("importing", total, true);
    let mut txn = db.begin_write().map_err(db_error)?;
    let (mut pending, mut imported, mut commits, mut skipped) = (0u64, 0u64, 0u64, 0u64);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        let read = read_line(&mut reader, &mut buf).map_err(read_error)?;
        line_no += 1;
        let problem = match read {
            LineRead::Eof => break,
            LineRead::TooLong(n) => {
                bar.inc(n);
                Some(format!("longer than {} bytes", MAX_LINE))
            }
            LineRead::Line(n) => {
                bar.inc(n);
                if buf.is_empty() {
                    continue;
                }
                match line_format.parse(&buf) {
                    Err(e) => Some(e),
                    Ok((key, value)) => match txn.put(&key, &value) {
                        Ok(_) => None,
                        Err(hamtdb::DbError::Core(e @ hamtdb::Error::TooLarge { .. })) => {
                            Some(e.to_string())
                        }
                        Err(e) => return Err(db_error(e)),
                    },
                }
            }
        };
        match problem {
            None => {
                pending += 1;
                if pending == batch {
                    txn.commit().map_err(db_error)?;
                    commits += 1;
                    imported += pending;
                    pending = 0;
                    txn = db.begin_write().map_err(db_error)?;
                }
            }
            Some(problem) if skip_bad => {
                skipped += 1;
                if skipped <= MAX_REPORTED {
                    bar.warn(&format!(
                        "hamtdb: {name} line {line_no}: {problem} (skipped)"
                    ));
                }
                if skipped == MAX_REPORTED {
                    bar.warn("hamtdb: further bad lines are counted, not shown");
                }
            }
            Some(problem) => {
                // Keep every line before the bad one, so that the import can resume
                // from it.
                if pending > 0 {
                    txn.commit().map_err(db_error)?;
                    imported += pending;
                } else {
                    txn.abort();
                }
                bar.finish();
                crate::close(db, path, Access::Create)?;
                let resume = if from_stdin {
                    format!("resume from it with `... | tail -n +{line_no} | hamtdb DB import -`")
                } else {
                    format!(
                        "resume from it with `tail -n +{line_no} {name} | hamtdb {} import - {}`",
                        path.display(),
                        line_format.flags()
                    )
                };
                return Err(Fail::new(
                    fail::BAD_INPUT,
                    format!("{name} line {line_no}: {problem}"),
                )
                .hint(format!(
                    "the {imported} pairs before line {line_no} were imported; fix the line and \
                     {resume}, or pass --skip-bad to skip bad lines"
                )));
            }
        }
    }
    if pending > 0 {
        txn.commit().map_err(db_error)?;
        commits += 1;
        imported += pending;
    } else {
        txn.abort();
    }
    bar.finish();
    crate::close(db, path, Access::Create)?;
    let mut out = crate::stdout();
    let mut summary = format!(
        "imported {} in {}",
        plural(imported, "pair"),
        plural(commits, "commit")
    );
    if skipped > 0 {
        summary += &format!("; skipped {}", plural(skipped, "bad line"));
    }
    writeln!(out, "{summary}").map_err(fail::stdout_error)?;
    crate::flush(&mut out)?;
    Ok(fail::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_skipped_whole() {
        let mut input = vec![b'a'; MAX_LINE + 10];
        input.extend_from_slice(b"\nnext\n");
        let mut reader = &input[..];
        let mut buf = Vec::new();
        assert!(matches!(
            read_line(&mut reader, &mut buf),
            Ok(LineRead::TooLong(_))
        ));
        assert!(matches!(
            read_line(&mut reader, &mut buf),
            Ok(LineRead::Line(5))
        ));
        assert_eq!(buf, b"next");
        assert!(matches!(
            read_line(&mut reader, &mut buf),
            Ok(LineRead::Eof)
        ));
    }

    #[test]
    fn json_errors_name_the_column_not_line_one() {
        let f = LineFormat::Json(Encoding::Utf8);
        let e = f.parse(br#"{"key": "a", "valu": "b"}"#).unwrap_err();
        assert!(e.starts_with("column "), "{e}");
        assert!(!e.contains("line 1"), "{e}");
        assert!(f.parse(br#"{"key": "a"}"#).unwrap_err().contains("value"));
    }
}
