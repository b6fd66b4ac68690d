//! `put`, `get`, `delete` and `len`.

use std::ffi::OsStr;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use crate::args::Encoding;
use crate::codec;
use crate::fail::{self, Access, Fail};

/// A KEY or VALUE from the command line in `encoding`: UTF-8 arguments are taken as the
/// bytes given, whatever they are.
fn argument(what: &str, arg: &OsStr, encoding: Encoding) -> Result<Vec<u8>, Fail> {
    if encoding == Encoding::Utf8 {
        return Ok(arg.as_bytes().to_vec());
    }
    let name = encoding.name();
    let text = arg
        .to_str()
        .ok_or_else(|| Fail::new(fail::USAGE, format!("{what} is not valid {name}")))?;
    codec::decode(text, encoding).map_err(|e| {
        Fail::new(
            fail::USAGE,
            format!("{what} `{text}` is not valid {name}: {e}"),
        )
    })
}

pub(crate) fn put(path: &Path, key: &OsStr, value: &OsStr, encoding: Encoding) -> Result<u8, Fail> {
    let key = argument("KEY", key, encoding)?;
    let value = argument("VALUE", value, encoding)?;
    let db = crate::open(path, Access::Create)?;
    db.put(&key, &value)
        .map_err(|e| fail::db_error(path, Access::Create, e))?;
    crate::close(db, path, Access::Create)?;
    Ok(fail::OK)
}

pub(crate) fn get(
    path: &Path,
    key: &OsStr,
    encoding: Encoding,
    no_newline: bool,
) -> Result<u8, Fail> {
    let key = argument("KEY", key, encoding)?;
    let db = crate::open(path, Access::Read)?;
    let found = print_value(&db, path, &key, encoding, no_newline)?;
    crate::close(db, path, Access::Read)?;
    if found {
        Ok(fail::OK)
    } else {
        Err(Fail::new(fail::NEGATIVE, "key not found"))
    }
}

/// Prints the value of `key`; whether it was there.
fn print_value(
    db: &hamtdb::Db,
    path: &Path,
    key: &[u8],
    encoding: Encoding,
    no_newline: bool,
) -> Result<bool, Fail> {
    let Some(value) = db
        .get(key)
        .map_err(|e| fail::db_error(path, Access::Read, e))?
    else {
        return Ok(false);
    };
    let mut out = crate::stdout();
    let written = match encoding {
        Encoding::Utf8 => out.write_all(&value),
        other => {
            // Hex and base64 never fail.
            let text = codec::encode_str(&value, other).unwrap_or_default();
            out.write_all(text.as_bytes())
        }
    };
    written.map_err(fail::stdout_error)?;
    if !no_newline {
        out.write_all(b"\n").map_err(fail::stdout_error)?;
    }
    crate::flush(&mut out)?;
    Ok(true)
}

pub(crate) fn delete(path: &Path, key: &OsStr, encoding: Encoding) -> Result<u8, Fail> {
    let key = argument("KEY", key, encoding)?;
    let db = crate::open(path, Access::Write)?;
    let found = db
        .delete(&key)
        .map_err(|e| fail::db_error(path, Access::Write, e))?;
    crate::close(db, path, Access::Write)?;
    if found {
        Ok(fail::OK)
    } else {
        Err(Fail::new(fail::NEGATIVE, "key not found: nothing deleted"))
    }
}

pub(crate) fn len(path: &Path) -> Result<u8, Fail> {
    let db = crate::open(path, Access::Read)?;
    let n = db.len();
    crate::close(db, path, Access::Read)?;
    let mut out = crate::stdout();
    writeln!(out, "{n}").map_err(fail::stdout_error)?;
    crate::flush(&mut out)?;
    Ok(fail::OK)
}
