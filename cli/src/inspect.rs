//! `stats`, `check` and `compact`.

use std::io::Write as _;
use std::path::Path;

use hamtdb::{DbError, Error};

use crate::fail::{self, Access, Fail};
use crate::progress::Ui;

/// `1536` → `1.5 KiB`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Display only: the rounding of a u64 to f64 does not matter.
    let mut size = bytes as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

/// `1 commit`, `2 commits`.
pub(crate) fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn file_len(path: &Path) -> Result<u64, Fail> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| Fail::new(fail::IO, format!("cannot look at {}: {e}", path.display())))
}

pub(crate) fn stats(path: &Path, json: bool) -> Result<u8, Fail> {
    let db = crate::open(path, Access::Read)?;
    let stats = db
        .stats()
        .map_err(|e| fail::db_error(path, Access::Read, e))?;
    let txid = db.begin_read().txid();
    crate::close(db, path, Access::Read)?;
    let file_size = file_len(path)?;
    // Free space below the used end: the rest of `free_bytes` is the file beyond it.
    let free_below = stats
        .free_bytes
        .saturating_sub(stats.region_len.saturating_sub(stats.used_end));
    let depths = match stats.depth_histogram.iter().rposition(|&n| n != 0) {
        Some(last) => &stats.depth_histogram[..=last],
        None => &[][..],
    };
    let mut out = crate::stdout();
    let written = if json {
        let value = serde_json::json!({
            "entries": stats.entries,
            "last_txid": txid,
            "file_size": file_size,
            "used_end": stats.used_end,
            "live_bytes": stats.live_bytes,
            "slack_bytes": stats.slack_bytes,
            "overhead_bytes": stats.overhead_bytes,
            "dead_bytes": stats.dead_bytes,
            "free_bytes": stats.free_bytes,
            "depth_histogram": depths,
        });
        serde_json::to_writer_pretty(&mut out, &value)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        let row = |name: &str, bytes: u64, note: &str| {
            let line = format!("{name:<12}{:>12}  {bytes:>14} bytes  {note}", human(bytes));
            format!("{}\n", line.trim_end())
        };
        let mut text = format!("{:<12}{:>12}\n", "entries", stats.entries);
        text += &format!("{:<12}{:>12}\n", "last txid", txid);
        text += &row("file size", file_size, "");
        text += &row("used", stats.used_end, "up to the used end:");
        text += &row("  live", stats.live_bytes, "keys and values");
        text += &row(
            "  slack",
            stats.slack_bytes,
            "room in value entries beyond their values",
        );
        text += &row(
            "  overhead",
            stats.overhead_bytes,
            "entry headers, trie nodes, meta slots",
        );
        text += &row(
            "  dead",
            stats.dead_bytes,
            "freed, reusable after a later durable commit",
        );
        text += &row("  free", free_below, "free below the used end");
        text += &row(
            "free",
            stats.free_bytes,
            "free below the used end and the file beyond it",
        );
        text += "depth histogram (keys by the depth of the node holding them):\n";
        if depths.is_empty() {
            text += "  (empty)\n";
        }
        for (depth, n) in depths.iter().enumerate() {
            text += &format!("  depth {depth:<3}{n:>12}\n");
        }
        out.write_all(text.as_bytes())
    };
    written.map_err(fail::stdout_error)?;
    crate::flush(&mut out)?;
    Ok(fail::OK)
}

pub(crate) fn check(path: &Path, ui: Ui) -> Result<u8, Fail> {
    let mut out = crate::stdout();
    let db = match crate::open(path, Access::Read) {
        Ok(db) => db,
        Err(fail) => {
            // A database too damaged to open is what `check` is for: report it as a
            // problem found (exit 1) when the core named the offset.
            return match hamtdb::Db::builder().read_only(true).open(path) {
                Err(DbError::Core(Error::Corrupted(c))) => {
                    let (offset, what) = (c.offset(), c.what());
                    writeln!(out, "offset {offset}: {what} (the database does not open)")
                        .and_then(|()| writeln!(out, "1 problem"))
                        .map_err(fail::stdout_error)?;
                    crate::flush(&mut out)?;
                    Ok(fail::NEGATIVE)
                }
                _ => Err(fail),
            };
        }
    };
    let spinner = ui.bar("checking", None, false);
    let report = db.check();
    spinner.finish();
    crate::close(db, path, Access::Read)?;
    let mut text = String::new();
    for p in &report.problems {
        text += &format!("offset {}: {}\n", p.offset, p.what);
    }
    let problems = match report.problems.len() {
        0 => "no problems".to_owned(),
        1 => "1 problem".to_owned(),
        n if n >= hamtdb::map::MAX_PROBLEMS => format!("{n} problems (the report stops there)"),
        n => format!("{n} problems"),
    };

    text += &format!(
        "checked {}, {}, {} ({}): {problems}\n",
        plural(report.nodes, "node"),
        plural(report.value_entries, "value entry").replace("entrys", "entries"),
        plural(report.keys, "key"),
        human(report.entry_bytes),
    );
    out.write_all(text.as_bytes()).map_err(fail::stdout_error)?;
    crate::flush(&mut out)?;
    Ok(if report.is_ok() {
        fail::OK
    } else {
        fail::NEGATIVE
    })
}

pub(crate) fn compact(path: &Path, ui: Ui) -> Result<u8, Fail> {
    let db = crate::open(path, Access::Write)?;
    let before = file_len(path)?;
    let spinner = ui.bar("compacting", None, false);
    let report = db
        .compact()
        .map_err(|e| fail::db_error(path, Access::Write, e))?;
    spinner.finish();
    crate::close(db, path, Access::Write)?;
    let after = file_len(path)?;
    let mut out = crate::stdout();
    writeln!(
        out,
        "file size  {} -> {} ({before} -> {after} bytes)\n\
         used       {} -> {} ({} -> {} bytes)\n\
         moved      {} in {}",
        human(before),
        human(after),
        human(report.used_end_before),
        human(report.used_end_after),
        report.used_end_before,
        report.used_end_after,
        human(report.bytes_moved),
        plural(report.steps, "commit"),
    )
    .map_err(fail::stdout_error)?;
    crate::flush(&mut out)?;
    Ok(fail::OK)
}
