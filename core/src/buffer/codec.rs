//! Codecs: how typed keys and values become record bytes and back.
//!
//! [`Encode`] turns a value into bytes and [`Codec`] adds the way back. They are two
//! traits so that a codec for an owned type can also encode its borrowed forms: the
//! [`Utf8Codec`] of `String` encodes a `&str`, the [`BytesCodec`] of `Vec<u8>` a
//! `&[u8]`, and [`TypedBuffer`](super::TypedBuffer) looks keys up by either.
//!
//! Built in: [`BytesCodec`] (the bytes as they are), [`Utf8Codec`] (UTF-8 text, checked
//! on decode) and fixed-width little-endian integers ([`LeU64`], [`LeI32`], …). The std
//! crate adds a serde codec behind its `serde` feature.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Why a value could not be encoded or bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// A fixed-width encoding got the wrong number of bytes.
    Length {
        /// Bytes the encoding has.
        expected: u64,
        /// Bytes given.
        found: u64,
    },
    /// Text is not valid UTF-8; the bytes before `valid_up_to` are.
    InvalidUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        valid_up_to: u64,
    },
    /// The bytes hold a complete value followed by `count` bytes more.
    TrailingBytes {
        /// Bytes left over after the value.
        count: u64,
    },
    /// The value cannot be encoded (a codec's own reason).
    Encode(String),
    /// The bytes are not a valid encoding (a codec's own reason).
    Decode(String),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Length { expected, found } => {
                write!(f, "expected {expected} bytes, found {found}")
            }
            CodecError::InvalidUtf8 { valid_up_to } => {
                write!(f, "invalid UTF-8 after byte {valid_up_to}")
            }
            CodecError::TrailingBytes { count } => {
                write!(f, "{count} bytes left over after the value")
            }
            CodecError::Encode(why) => write!(f, "cannot encode: {why}"),
            CodecError::Decode(why) => write!(f, "cannot decode: {why}"),
        }
    }
}

impl core::error::Error for CodecError {}

/// Turns a `T` into bytes.
///
/// An encoding must be deterministic: a value encodes to the same bytes every time.
/// Used for keys it must also be faithful: two keys are equal exactly when their
/// encodings are, since [`TypedBuffer`](super::TypedBuffer) compares encoded keys. A
/// codec that encodes several types (an owned type and its borrowed forms) must give
/// equal values of each the same bytes.
pub trait Encode<T: ?Sized> {
    /// Appends the encoding of `value` to `out`. On error, `out` may hold part of it
    /// after what it held before.
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError>;
}

/// Turns a `T` into bytes and back.
///
/// ```
/// use hamtdb_core::{Codec, CodecError, Encode};
///
/// /// A point as two little-endian `i32`s.
/// struct PointCodec;
///
/// impl Encode<(i32, i32)> for PointCodec {
///     fn encode(&self, &(x, y): &(i32, i32), out: &mut Vec<u8>) -> Result<(), CodecError> {
///         out.extend_from_slice(&x.to_le_bytes());
///         out.extend_from_slice(&y.to_le_bytes());
///         Ok(())
///     }
/// }
///
/// impl Codec<(i32, i32)> for PointCodec {
///     fn decode(&self, bytes: &[u8]) -> Result<(i32, i32), CodecError> {
///         let bytes: [u8; 8] = bytes.try_into().map_err(|_| CodecError::Length {
///             expected: 8,
///             found: bytes.len() as u64,
///         })?;
///         let (x, y) = bytes.split_at(4);
///         Ok((
///             i32::from_le_bytes(x.try_into().unwrap()),
///             i32::from_le_bytes(y.try_into().unwrap()),
///         ))
///     }
/// }
///
/// let mut out = Vec::new();
/// PointCodec.encode(&(1, -2), &mut out)?;
/// assert_eq!(PointCodec.decode(&out)?, (1, -2));
/// # Ok::<(), CodecError>(())
/// ```
pub trait Codec<T>: Encode<T> {
    /// The value that `bytes` (exactly, with nothing after it) encode.
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError>;

    /// The encoding of `value` in a new vector.
    fn to_bytes(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        self.encode(value, &mut out)?;
        Ok(out)
    }
}

/// Bytes as they are: `Vec<u8>` values, also encoding `[u8]` and `[u8; N]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BytesCodec;

impl Encode<[u8]> for BytesCodec {
    fn encode(&self, value: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(value);
        Ok(())
    }
}

impl<const N: usize> Encode<[u8; N]> for BytesCodec {
    fn encode(&self, value: &[u8; N], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(value);
        Ok(())
    }
}

impl Encode<Vec<u8>> for BytesCodec {
    fn encode(&self, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(value);
        Ok(())
    }
}

impl Codec<Vec<u8>> for BytesCodec {
    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(bytes.to_vec())
    }
}

/// UTF-8 text: `String` values, also encoding `str`. Decoding checks the bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Utf8Codec;

impl Encode<str> for Utf8Codec {
    fn encode(&self, value: &str, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(value.as_bytes());
        Ok(())
    }
}

impl Encode<String> for Utf8Codec {
    fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(value.as_bytes());
        Ok(())
    }
}

impl Codec<String> for Utf8Codec {
    fn decode(&self, bytes: &[u8]) -> Result<String, CodecError> {
        match core::str::from_utf8(bytes) {
            Ok(text) => Ok(String::from(text)),
            Err(e) => Err(CodecError::InvalidUtf8 {
                valid_up_to: e.valid_up_to() as u64,
            }),
        }
    }
}

/// Fixed-width little-endian integer codecs, one type each, so that an integer literal
/// passed to a [`TypedBuffer`](super::TypedBuffer) takes the codec's type.
macro_rules! le_codecs {
    ($($name:ident: $int:ty = $width:literal,)*) => {$(
        #[doc = concat!("`", stringify!($int), "` as ", stringify!($width),
            " little-endian bytes.")]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;

        impl Encode<$int> for $name {
            fn encode(&self, value: &$int, out: &mut Vec<u8>) -> Result<(), CodecError> {
                out.extend_from_slice(&value.to_le_bytes());
                Ok(())
            }
        }

        impl Codec<$int> for $name {
            fn decode(&self, bytes: &[u8]) -> Result<$int, CodecError> {
                match bytes.try_into() {
                    Ok(array) => Ok(<$int>::from_le_bytes(array)),
                    Err(_) => Err(CodecError::Length {
                        expected: $width,
                        found: bytes.len() as u64,
                    }),
                }
            }
        }
    )*};
}

le_codecs! {
    LeU8: u8 = 1,
    LeU16: u16 = 2,
    LeU32: u32 = 4,
    LeU64: u64 = 8,
    LeU128: u128 = 16,
    LeI8: i8 = 1,
    LeI16: i16 = 2,
    LeI32: i32 = 4,
    LeI64: i64 = 8,
    LeI128: i128 = 16,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn round_trip<T, C>(codec: &C, value: T) -> Vec<u8>
    where
        T: PartialEq + fmt::Debug,
        C: Codec<T>,
    {
        let bytes = codec.to_bytes(&value).unwrap();
        assert_eq!(codec.decode(&bytes).unwrap(), value);
        bytes
    }

    #[test]
    fn bytes_round_trip_including_empty() {
        assert_eq!(round_trip(&BytesCodec, vec![]), b"");
        assert_eq!(round_trip(&BytesCodec, vec![0, 255, 7]), [0, 255, 7]);
        let mut out = vec![9];
        BytesCodec.encode(b"ab", &mut out).unwrap();
        BytesCodec.encode(&b"c"[..], &mut out).unwrap();
        assert_eq!(out, b"\x09abc", "encode appends");
    }

    #[test]
    fn utf8_round_trips_and_rejects_invalid_text() {
        assert_eq!(round_trip(&Utf8Codec, String::new()), b"");
        assert_eq!(
            round_trip(&Utf8Codec, String::from("grüß")),
            "grüß".as_bytes()
        );
        let mut out = Vec::new();
        Utf8Codec.encode("grüß", &mut out).unwrap();
        assert_eq!(out, "grüß".as_bytes(), "str and String encode alike");
        assert_eq!(
            Utf8Codec.decode(b"ok\xff"),
            Err(CodecError::InvalidUtf8 { valid_up_to: 2 })
        );
        assert_eq!(
            Utf8Codec.decode(&"ü".as_bytes()[..1]),
            Err(CodecError::InvalidUtf8 { valid_up_to: 0 })
        );
    }

    #[test]
    fn integers_are_fixed_width_little_endian() {
        assert_eq!(round_trip(&LeU64, u64::MAX), [0xff; 8]);
        assert_eq!(round_trip(&LeU64, 0), [0; 8]);
        assert_eq!(round_trip(&LeU32, 0x0102_0304), [4, 3, 2, 1]);
        assert_eq!(round_trip(&LeI64, -1), [0xff; 8]);
        assert_eq!(round_trip(&LeI64, i64::MIN), [0, 0, 0, 0, 0, 0, 0, 0x80]);
        assert_eq!(round_trip(&LeU8, 200), [200]);
        assert_eq!(round_trip(&LeI16, -2), [0xfe, 0xff]);
        assert_eq!(round_trip(&LeU128, u128::MAX), [0xff; 16]);
        assert_eq!(round_trip(&LeI128, 1), {
            let mut b = [0; 16];
            b[0] = 1;
            b
        });
        assert_eq!(
            LeU64.decode(&[1, 2, 3]),
            Err(CodecError::Length {
                expected: 8,
                found: 3
            })
        );
        assert_eq!(
            LeU8.decode(&[]),
            Err(CodecError::Length {
                expected: 1,
                found: 0
            })
        );
    }

    #[test]
    fn errors_display() {
        use alloc::string::ToString;
        assert_eq!(
            CodecError::Length {
                expected: 8,
                found: 3
            }
            .to_string(),
            "expected 8 bytes, found 3"
        );
        assert_eq!(
            CodecError::InvalidUtf8 { valid_up_to: 2 }.to_string(),
            "invalid UTF-8 after byte 2"
        );
        assert_eq!(
            CodecError::Decode("bad tag".into()).to_string(),
            "cannot decode: bad tag"
        );
    }
}
