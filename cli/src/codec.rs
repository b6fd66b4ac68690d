//! Bytes as text: hex, base64, UTF-8, and the backslash escapes of TSV and `scan`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::args::Encoding;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` in lowercase hex.
pub(crate) fn hex_encode(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(b & 0xf)]));
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes hex (either case).
pub(crate) fn hex_decode(text: &[u8]) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", text.len()));
    }
    text.chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| match (hex_digit(pair[0]), hex_digit(pair[1])) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err(format!("not a hex digit at character {}", i * 2 + 1)),
        })
        .collect()
}

/// Appends `bytes` with the escapes of TSV and `scan --format text`: `\\`, `\t`, `\n`,
/// `\r`, and `\xHH` for other control bytes and for bytes that are not UTF-8. Printable
/// UTF-8 passes through, so text stays readable and every byte string round-trips.
pub(crate) fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                // ASCII controls are one byte each.
                c if c.is_ascii_control() => escape_byte(c as u8, out),
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        for &b in chunk.invalid() {
            escape_byte(b, out);
        }
    }
}

fn escape_byte(b: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(&[
        b'\\',
        b'x',
        HEX_DIGITS[usize::from(b >> 4)],
        HEX_DIGITS[usize::from(b & 0xf)],
    ]);
}

/// Undoes [`escape`]. A backslash must start one of `\\ \t \n \r \xHH`.
pub(crate) fn unescape(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match text.get(i) {
            Some(b'\\') => out.push(b'\\'),
            Some(b't') => out.push(b'\t'),
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b'x') => {
                let digits = text
                    .get(i + 1..i + 3)
                    .ok_or_else(|| format!("`\\x` needs two hex digits (character {})", i))?;
                match (hex_digit(digits[0]), hex_digit(digits[1])) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(format!("`\\x` needs two hex digits (character {i})")),
                }
                i += 2;
            }
            Some(&other) => {
                return Err(format!(
                    "unknown escape `\\{}` (character {i}); write a backslash as `\\\\`",
                    char::from(other).escape_default()
                ));
            }
            None => return Err("a lone backslash ends the field; write it as `\\\\`".into()),
        }
        i += 1;
    }
    Ok(out)
}

/// Decodes a field given as text in `encoding` (UTF-8 text is taken as it is).
pub(crate) fn decode(text: &str, encoding: Encoding) -> Result<Vec<u8>, String> {
    match encoding {
        Encoding::Utf8 => Ok(text.as_bytes().to_vec()),
        Encoding::Hex => hex_decode(text.as_bytes()),
        Encoding::Base64 => BASE64.decode(text).map_err(|e| e.to_string()),
    }
}

/// Encodes `bytes` as a string in `encoding`; `None` when `encoding` is UTF-8 and the
/// bytes are not.
pub(crate) fn encode_str(bytes: &[u8], encoding: Encoding) -> Option<String> {
    match encoding {
        Encoding::Utf8 => core::str::from_utf8(bytes).ok().map(str::to_owned),
        Encoding::Hex => {
            let mut s = String::new();
            hex_encode(bytes, &mut s);
            Some(s)
        }
        Encoding::Base64 => Some(BASE64.encode(bytes)),
    }
}

/// Decodes a TSV field: UTF-8 fields carry backslash escapes.
pub(crate) fn decode_tsv(field: &[u8], encoding: Encoding) -> Result<Vec<u8>, String> {
    match encoding {
        Encoding::Utf8 => unescape(field),
        Encoding::Hex => hex_decode(field),
        Encoding::Base64 => BASE64.decode(field).map_err(|e| e.to_string()),
    }
}

/// Appends a TSV field (never fails: UTF-8 fields escape what is not text).
pub(crate) fn encode_tsv(bytes: &[u8], encoding: Encoding, out: &mut Vec<u8>) {
    match encoding {
        Encoding::Utf8 => escape(bytes, out),
        Encoding::Hex => {
            let mut s = String::new();
            hex_encode(bytes, &mut s);
            out.extend_from_slice(s.as_bytes());
        }
        Encoding::Base64 => {
            let start = out.len();
            out.resize(
                start + base64::encoded_len(bytes.len(), true).unwrap_or(0),
                0,
            );
            let n = BASE64.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
            out.truncate(start + n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        let mut s = String::new();
        hex_encode(&[0, 0x7f, 0xff, 0x10], &mut s);
        assert_eq!(s, "007fff10");
        assert_eq!(hex_decode(b"007FfF10").unwrap(), [0, 0x7f, 0xff, 0x10]);
        assert!(hex_decode(b"abc").is_err());
        assert!(hex_decode(b"zz").is_err());
    }

    #[test]
    fn escapes_round_trip_every_byte() {
        let all: Vec<u8> = (0..=255u8).chain("héllo\t\\".bytes()).collect();
        let mut out = Vec::new();
        escape(&all, &mut out);
        assert!(!out.contains(&b'\t') && !out.contains(&b'\n') && !out.contains(&b'\r'));
        assert_eq!(unescape(&out).unwrap(), all);
        let mut out = Vec::new();
        escape("ünï".as_bytes(), &mut out);
        assert_eq!(out, "ünï".as_bytes());
    }

    #[test]
    fn bad_escapes_are_errors() {
        assert!(unescape(b"a\\").is_err());
        assert!(unescape(b"\\q").is_err());
        assert!(unescape(b"\\x4").is_err());
        assert!(unescape(b"\\xg0").is_err());
    }

    #[test]
    fn base64_tsv_fields_round_trip() {
        for len in 0..10 {
            let bytes: Vec<u8> = (0..len).map(|i: u8| i.wrapping_mul(37)).collect();
            let mut out = b"x".to_vec();
            encode_tsv(&bytes, Encoding::Base64, &mut out);
            assert_eq!(decode_tsv(&out[1..], Encoding::Base64).unwrap(), bytes);
        }
    }
}
