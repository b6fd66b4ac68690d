//! [`SerdeCodec`]: any serde type as record bytes, in the postcard format (feature
//! `serde`).

use core::fmt;
use core::marker::PhantomData;

use hamtdb_core::{Codec, CodecError, Encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes a `T` with [postcard](https://docs.rs/postcard), a compact format with no
/// schema in the bytes: changing `T`'s fields changes how stored records decode.
///
/// Decoding rejects bytes left over after the value. Postcard encodes a value the same
/// way every time, as [`Encode`] asks, except for types whose serialization is not
/// deterministic (a `std::collections::HashMap`'s order): do not use those as keys.
///
/// ```
/// use hamtdb::{BufferOptions, SerdeCodec, TypedBuffer, Utf8Codec, VecRegion};
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct User {
///     name: String,
///     admin: bool,
/// }
///
/// let region = VecRegion::with_capacity(1 << 16);
/// let mut users =
///     TypedBuffer::create(region, BufferOptions::default(), Utf8Codec, SerdeCodec::new())?;
/// users.insert("ada", &User { name: "Ada".into(), admin: true })?;
/// assert_eq!(users.get("ada")?, Some(User { name: "Ada".into(), admin: true }));
/// # Ok::<(), hamtdb::TypedError>(())
/// ```
pub struct SerdeCodec<T> {
    types: PhantomData<fn() -> T>,
}

impl<T> SerdeCodec<T> {
    /// The codec.
    pub const fn new() -> Self {
        SerdeCodec { types: PhantomData }
    }
}

// By hand: derives would ask `T` for the same traits, which a codec does not need.
impl<T> Default for SerdeCodec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for SerdeCodec<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SerdeCodec<T> {}

impl<T> fmt::Debug for SerdeCodec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SerdeCodec<{}>", core::any::type_name::<T>())
    }
}

/// Appends to a caller's vector, keeping what it held (postcard's `to_extend` takes
/// its writer by value).
struct Append<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Append<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
        self.0.extend(bytes);
    }
}

impl<T: Serialize> Encode<T> for SerdeCodec<T> {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        postcard::to_extend(value, Append(out))
            .map(drop)
            .map_err(|e| CodecError::Encode(e.to_string()))
    }
}

impl<T: Serialize + DeserializeOwned> Codec<T> for SerdeCodec<T> {
    fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let (value, rest) =
            postcard::take_from_bytes(bytes).map_err(|e| CodecError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CodecError::TrailingBytes {
                count: rest.len() as u64,
            });
        }
        Ok(value)
    }
}
