//! [`TypedBuffer`]: typed key-value records on a [`Buffer`], like mmcb's typed maps.
//!
//! Each record of the buffer holds one pair, the key encoded by the key codec and the
//! value by the value codec (little-endian):
//!
//! ```text
//! 0         4                  4 + key_len
//! +---------+------------------+----------------------+
//! | key_len | key              | value                |
//! | u32     | key_len bytes    | to the record's end  |
//! +---------+------------------+----------------------+
//! ```
//!
//! Keys are unique. An index from encoded key to record id lives in memory and is
//! rebuilt when the buffer is opened, by reading every record's key.

use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use hashbrown::HashMap;

use super::codec::{Codec, CodecError, Encode};
use super::reader::EntryReader;
use super::space::Durability;
use super::store::{Buffer, BufferOptions, CompactReport, EntryId};
use crate::error::Input;
use crate::{Error, Region};

/// Bytes of the key length at the start of a record.
const KEY_LEN_SIZE: usize = 4;
/// Where the key starts.
const KEY_START: usize = KEY_LEN_SIZE;

/// What a [`TypedBuffer`] operation can fail with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypedError {
    /// The buffer underneath failed (a full region, a damaged image, …).
    Buffer(Error),
    /// A key or value given to the operation could not be encoded.
    Codec(CodecError),
    /// The key or value stored in record `id` could not be decoded.
    Decode {
        /// The record.
        id: EntryId,
        /// What the codec found wrong.
        error: CodecError,
    },
    /// Record `id` is not a key-value record: `what` was wrong.
    Malformed {
        /// The record.
        id: EntryId,
        /// What was wrong with it.
        what: &'static str,
    },
    /// Two records hold the same key.
    DuplicateKey {
        /// The record with the lower id.
        first: EntryId,
        /// The other record.
        second: EntryId,
    },
    /// An [`abort`](TypedBuffer::abort) could not rebuild the key index, so every
    /// operation but another `abort` refuses to run.
    IndexLost,
}

impl From<Error> for TypedError {
    fn from(e: Error) -> Self {
        TypedError::Buffer(e)
    }
}

impl From<CodecError> for TypedError {
    fn from(e: CodecError) -> Self {
        TypedError::Codec(e)
    }
}

impl fmt::Display for TypedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypedError::Buffer(e) => write!(f, "buffer error: {e}"),
            TypedError::Codec(e) => write!(f, "codec error: {e}"),
            TypedError::Decode { id, error } => {
                write!(f, "record {} does not decode: {error}", id.get())
            }
            TypedError::Malformed { id, what } => {
                write!(f, "record {} is not a key-value record: {what}", id.get())
            }
            TypedError::DuplicateKey { first, second } => write!(
                f,
                "records {} and {} hold the same key",
                first.get(),
                second.get()
            ),
            TypedError::IndexLost => {
                f.write_str("the key index was lost by a failed abort; abort again or reopen")
            }
        }
    }
}

impl core::error::Error for TypedError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            TypedError::Buffer(e) => Some(e),
            TypedError::Codec(e) | TypedError::Decode { error: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// The key and value bytes of record `id`.
fn split(id: EntryId, record: &[u8]) -> Result<(&[u8], &[u8]), TypedError> {
    let malformed = |what| TypedError::Malformed { id, what };
    let (len, rest) = record
        .split_first_chunk::<KEY_LEN_SIZE>()
        .ok_or(malformed("shorter than a key length"))?;
    usize::try_from(u32::from_le_bytes(*len))
        .ok()
        .and_then(|len| rest.split_at_checked(len))
        .ok_or(malformed("the key runs past the record's end"))
}

/// How the index can be brought back to the committed state on abort.
enum Undo {
    /// The index entries the running transaction changed, as they were, oldest first.
    Log(Vec<(Vec<u8>, Option<EntryId>)>),
    /// The log is unknown (a commit failed part way, or the buffer came with pending
    /// changes): rebuild the index from the buffer.
    Rebuild,
    /// A rebuild failed: the index is not to be trusted until one succeeds.
    Lost,
}

/// A store of typed key-value pairs with unique keys, on a [`Buffer`].
///
/// Keys are encoded by `KC` and values by `VC` (see [`Codec`]). Lookups go through an
/// in-memory index of encoded keys, and take any key type the key codec can
/// [`Encode`]: a `&str` for a `String` key, for example. Changes form a transaction, as
/// in the buffer: [`commit`](Self::commit) publishes them and [`abort`](Self::abort)
/// drops them, index included.
///
/// ```
/// use hamtdb_core::{BufferOptions, LeU64, TypedBuffer, Utf8Codec, VecRegion};
///
/// let region = VecRegion::with_capacity(1 << 20);
/// let mut born = TypedBuffer::create(region, BufferOptions::default(), Utf8Codec, LeU64)?;
/// born.insert("Ada", &1815)?;
/// born.insert("Alan", &1912)?;
/// born.commit()?;
/// born.insert("Grace", &1906)?;
/// born.abort()?;
///
/// let region = born.into_inner().into_region();
/// let born = TypedBuffer::open(region, Utf8Codec, LeU64)?;
/// assert_eq!(born.get("Ada")?, Some(1815));
/// assert_eq!(born.get("Grace")?, None);
/// assert_eq!(born.len(), 2);
/// # Ok::<(), hamtdb_core::TypedError>(())
/// ```
pub struct TypedBuffer<R: Region, K, V, KC, VC> {
    buffer: Buffer<R>,
    index: HashMap<Vec<u8>, EntryId>,
    undo: Undo,
    key_codec: KC,
    value_codec: VC,
    types: PhantomData<fn() -> (K, V)>,
}

impl<R, K, V, KC, VC> TypedBuffer<R, K, V, KC, VC>
where
    R: Region,
    KC: Codec<K>,
    VC: Codec<V>,
{
    /// Formats `region` as an empty buffer of key-value records.
    pub fn create(
        region: R,
        options: BufferOptions,
        key_codec: KC,
        value_codec: VC,
    ) -> Result<Self, TypedError> {
        let buffer = Buffer::create(region, options)?;
        Ok(Self::with_index(
            buffer,
            HashMap::new(),
            key_codec,
            value_codec,
        ))
    }

    /// Opens the buffer in `region` at its last committed state and indexes its keys.
    ///
    /// Fails with [`TypedError::Decode`] if a key does not decode, with
    /// [`TypedError::Malformed`] for a record too short for its key, and with
    /// [`TypedError::DuplicateKey`] if two records hold the same key.
    pub fn open(region: R, key_codec: KC, value_codec: VC) -> Result<Self, TypedError> {
        Self::from_buffer(Buffer::open(region)?, key_codec, value_codec)
    }

    /// Uses `buffer`, whose records must all be key-value records, and indexes its keys
    /// (failing as [`open`](Self::open) does). Its pending changes stay pending.
    pub fn from_buffer(
        buffer: Buffer<R>,
        key_codec: KC,
        value_codec: VC,
    ) -> Result<Self, TypedError> {
        let index = build_index(&buffer, &key_codec)?;
        let mut typed = Self::with_index(buffer, index, key_codec, value_codec);
        // The buffer may hold pending changes that the index cannot undo.
        typed.undo = Undo::Rebuild;
        Ok(typed)
    }

    fn with_index(
        buffer: Buffer<R>,
        index: HashMap<Vec<u8>, EntryId>,
        key_codec: KC,
        value_codec: VC,
    ) -> Self {
        TypedBuffer {
            buffer,
            index,
            undo: Undo::Log(Vec::new()),
            key_codec,
            value_codec,
            types: PhantomData,
        }
    }

    /// The buffer underneath (for stats, record headers or raw reads).
    pub fn buffer(&self) -> &Buffer<R> {
        &self.buffer
    }

    /// Gives the buffer back, pending changes included.
    pub fn into_inner(self) -> Buffer<R> {
        self.buffer
    }

    /// The number of keys.
    pub fn len(&self) -> u64 {
        self.index.len() as u64
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn usable(&self) -> Result<(), TypedError> {
        match self.undo {
            Undo::Lost => Err(TypedError::IndexLost),
            _ => Ok(()),
        }
    }

    fn encode_key<Q: ?Sized>(&self, key: &Q) -> Result<Vec<u8>, TypedError>
    where
        KC: Encode<Q>,
    {
        let mut out = Vec::new();
        self.key_codec.encode(key, &mut out)?;
        Ok(out)
    }

    fn remember(&mut self, key: Vec<u8>, was: Option<EntryId>) {
        if let Undo::Log(log) = &mut self.undo {
            log.push((key, was));
        }
    }

    /// Stores `value` under `key`, replacing the value the key had; returns whether it
    /// had one. A replaced record keeps its id and is updated in place when it fits.
    pub fn insert<Q, W>(&mut self, key: &Q, value: &W) -> Result<bool, TypedError>
    where
        Q: ?Sized,
        W: ?Sized,
        KC: Encode<Q>,
        VC: Encode<W>,
    {
        self.usable()?;
        let mut record = Vec::from([0; KEY_START]);
        self.key_codec.encode(key, &mut record)?;
        let key_end = record.len();
        let key_len = u32::try_from(key_end - KEY_START)
            .map_err(|_| Error::too_large(Input::TypedKey, (key_end - KEY_START) as u64))?;
        record[..KEY_START].copy_from_slice(&key_len.to_le_bytes());
        self.value_codec.encode(value, &mut record)?;
        let encoded_key = &record[KEY_START..key_end];
        if let Some(&id) = self.index.get(encoded_key) {
            self.buffer.update(id, &record)?;
            return Ok(true);
        }
        let id = self.buffer.add(&record)?;
        record.truncate(key_end);
        record.drain(..KEY_START);
        self.index.insert(record.clone(), id);
        self.remember(record, None);
        Ok(false)
    }

    /// The record of `key` and its value's bytes, if the key is stored.
    fn lookup<Q: ?Sized>(&self, key: &Q) -> Result<Option<(EntryId, &[u8])>, TypedError>
    where
        KC: Encode<Q>,
    {
        self.usable()?;
        let encoded = self.encode_key(key)?;
        let Some(&id) = self.index.get(encoded.as_slice()) else {
            return Ok(None);
        };
        let (stored, value) = split(id, self.buffer.get(id)?)?;
        if stored != encoded.as_slice() {
            return Err(TypedError::Malformed {
                id,
                what: "the record holds another key than the index has",
            });
        }
        Ok(Some((id, value)))
    }

    /// The value stored under `key`.
    pub fn get<Q: ?Sized>(&self, key: &Q) -> Result<Option<V>, TypedError>
    where
        KC: Encode<Q>,
    {
        let Some((id, value)) = self.lookup(key)? else {
            return Ok(None);
        };
        match self.value_codec.decode(value) {
            Ok(value) => Ok(Some(value)),
            Err(error) => Err(TypedError::Decode { id, error }),
        }
    }

    /// A cursor over the encoded value stored under `key`, without copying or decoding
    /// it (for large values; the std crate adapts it to `std::io::Read + Seek`).
    pub fn value_reader<Q: ?Sized>(&self, key: &Q) -> Result<Option<EntryReader<'_>>, TypedError>
    where
        KC: Encode<Q>,
    {
        Ok(self.lookup(key)?.map(|(_, value)| EntryReader::new(value)))
    }

    /// Whether `key` is stored (from the index alone; the record is not read).
    pub fn contains_key<Q: ?Sized>(&self, key: &Q) -> Result<bool, TypedError>
    where
        KC: Encode<Q>,
    {
        self.usable()?;
        let encoded = self.encode_key(key)?;
        Ok(self.index.contains_key(encoded.as_slice()))
    }

    /// Removes `key` and its value; returns whether it was stored.
    pub fn remove<Q: ?Sized>(&mut self, key: &Q) -> Result<bool, TypedError>
    where
        KC: Encode<Q>,
    {
        self.usable()?;
        let encoded = self.encode_key(key)?;
        let Some(&id) = self.index.get(encoded.as_slice()) else {
            return Ok(false);
        };
        self.buffer.remove(id)?;
        self.index.remove(encoded.as_slice());
        self.remember(encoded, Some(id));
        Ok(true)
    }

    /// The pairs in the order their keys were first inserted (record id order),
    /// decoded one at a time.
    pub fn iter(&self) -> Result<TypedIter<'_, R, K, V, KC, VC>, TypedError> {
        self.usable()?;
        Ok(TypedIter {
            typed: self,
            ids: self.buffer.ids()?.into_iter(),
        })
    }

    /// Publishes the running transaction durably, as [`Buffer::commit`] does.
    pub fn commit(&mut self) -> Result<(), TypedError> {
        self.commit_with(Durability::Immediate)
    }

    /// Publishes the running transaction with the given durability, as
    /// [`Buffer::commit_with`] does.
    pub fn commit_with(&mut self, durability: Durability) -> Result<(), TypedError> {
        self.usable()?;
        let result = self.buffer.commit_with(durability);
        self.committed(result.is_ok());
        Ok(result?)
    }

    /// After an attempt to commit: a successful one starts a new undo log; after a
    /// failed one, what is committed is unknown, so an abort must rebuild the index.
    fn committed(&mut self, ok: bool) {
        self.undo = if ok {
            Undo::Log(Vec::new())
        } else {
            Undo::Rebuild
        };
    }

    /// Makes the last commit durable, as [`Buffer::sync`] does.
    pub fn sync(&mut self) -> Result<(), TypedError> {
        Ok(self.buffer.sync()?)
    }

    /// Commits pending changes and compacts, as [`Buffer::compact`] does.
    pub fn compact(&mut self) -> Result<CompactReport, TypedError> {
        self.usable()?;
        let result = self.buffer.compact();
        self.committed(result.is_ok());
        Ok(result?)
    }

    /// Compacts when a compaction policy is due, as [`Buffer::tick`] does (committing
    /// pending changes first); returns whether it compacted.
    pub fn tick(&mut self, now_secs: u64) -> Result<bool, TypedError> {
        self.usable()?;
        match self.buffer.tick(now_secs) {
            Ok(false) => Ok(false),
            Ok(true) => {
                self.committed(true);
                Ok(true)
            }
            Err(e) => {
                self.committed(false);
                Err(e.into())
            }
        }
    }

    /// Drops the running transaction's changes and brings the index back to the
    /// committed keys. Fails only when the index has to be rebuilt (after a failed
    /// commit) and a committed record cannot be read; then every other operation fails
    /// with [`TypedError::IndexLost`] until an abort succeeds.
    pub fn abort(&mut self) -> Result<(), TypedError> {
        self.buffer.abort();
        match core::mem::replace(&mut self.undo, Undo::Log(Vec::new())) {
            Undo::Log(log) => {
                for (key, was) in log.into_iter().rev() {
                    match was {
                        Some(id) => self.index.insert(key, id),
                        None => self.index.remove(&key),
                    };
                }
                Ok(())
            }
            Undo::Rebuild | Undo::Lost => match build_index(&self.buffer, &self.key_codec) {
                Ok(index) => {
                    self.index = index;
                    Ok(())
                }
                Err(e) => {
                    self.index.clear();
                    self.undo = Undo::Lost;
                    Err(e)
                }
            },
        }
    }
}

/// Indexes the keys of `buffer`, checking that each decodes and none repeats.
fn build_index<R, K, KC>(
    buffer: &Buffer<R>,
    key_codec: &KC,
) -> Result<HashMap<Vec<u8>, EntryId>, TypedError>
where
    R: Region,
    KC: Codec<K>,
{
    let ids = buffer.ids()?;
    let mut index = HashMap::with_capacity(ids.len());
    for id in ids {
        let (key, _) = split(id, buffer.get(id)?)?;
        if let Err(error) = key_codec.decode(key) {
            return Err(TypedError::Decode { id, error });
        }
        if let Some(first) = index.insert(key.to_vec(), id) {
            return Err(TypedError::DuplicateKey { first, second: id });
        }
    }
    Ok(index)
}

/// The pairs of a [`TypedBuffer`], from [`TypedBuffer::iter`].
pub struct TypedIter<'a, R: Region, K, V, KC, VC> {
    typed: &'a TypedBuffer<R, K, V, KC, VC>,
    ids: alloc::vec::IntoIter<EntryId>,
}

impl<R, K, V, KC, VC> Iterator for TypedIter<'_, R, K, V, KC, VC>
where
    R: Region,
    KC: Codec<K>,
    VC: Codec<V>,
{
    type Item = Result<(K, V), TypedError>;

    fn next(&mut self) -> Option<Self::Item> {
        let id = self.ids.next()?;
        let pair = || {
            let (key, value) = split(id, self.typed.buffer.get(id)?)?;
            let decode_error = |error| TypedError::Decode { id, error };
            let key = self.typed.key_codec.decode(key).map_err(decode_error)?;
            let value = self.typed.value_codec.decode(value).map_err(decode_error)?;
            Ok((key, value))
        };
        Some(pair())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ids.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VecRegion;
    use crate::buffer::codec::{BytesCodec, LeU64, Utf8Codec};
    use alloc::string::{String, ToString};
    use alloc::vec;

    type Names = TypedBuffer<VecRegion, String, u64, Utf8Codec, LeU64>;

    fn names() -> Names {
        let region = VecRegion::with_capacity(1 << 16);
        TypedBuffer::create(region, BufferOptions::default(), Utf8Codec, LeU64).unwrap()
    }

    fn reopen(typed: Names) -> Names {
        TypedBuffer::open(typed.into_inner().into_region(), Utf8Codec, LeU64).unwrap()
    }

    fn pairs(typed: &Names) -> Vec<(String, u64)> {
        typed.iter().unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn insert_get_overwrite_remove_reopen() {
        let mut t = names();
        assert!(!t.insert("a", &1).unwrap());
        assert!(!t.insert(&String::from("b"), &2).unwrap());
        assert!(t.insert("a", &u64::MAX).unwrap(), "overwrite");
        assert!(!t.insert("", &0).unwrap(), "empty key");
        assert_eq!(t.get("a").unwrap(), Some(u64::MAX));
        assert_eq!(t.get("zz").unwrap(), None);
        assert!(t.contains_key("b").unwrap());
        assert!(t.remove("b").unwrap());
        assert!(!t.remove("b").unwrap());
        assert_eq!(t.len(), 2);
        t.commit().unwrap();
        let t = reopen(t);
        assert_eq!(
            pairs(&t),
            vec![("a".to_string(), u64::MAX), (String::new(), 0)]
        );
        assert_eq!(t.buffer().len(), 2);
    }

    #[test]
    fn abort_restores_the_index() {
        let mut t = names();
        t.insert("kept", &1).unwrap();
        t.insert("removed", &2).unwrap();
        t.commit().unwrap();
        t.insert("new", &3).unwrap();
        t.insert("kept", &10).unwrap();
        t.remove("removed").unwrap();
        t.remove("new").unwrap();
        t.insert("new", &4).unwrap();
        t.abort().unwrap();
        assert_eq!(t.get("kept").unwrap(), Some(1));
        assert_eq!(t.get("removed").unwrap(), Some(2));
        assert_eq!(t.get("new").unwrap(), None);
        assert_eq!(t.len(), 2);
        // The aborted record's id is handed out again: the index must not keep it.
        t.insert("other", &5).unwrap();
        assert_eq!(t.get("new").unwrap(), None);
        assert_eq!(t.get("other").unwrap(), Some(5));
    }

    #[test]
    fn from_buffer_with_pending_changes_rebuilds_on_abort() {
        let mut buffer = names().into_inner();
        let mut record = vec![1, 0, 0, 0, b'k'];
        record.extend_from_slice(&7u64.to_le_bytes());
        buffer.add(&record).unwrap();
        let mut t = Names::from_buffer(buffer, Utf8Codec, LeU64).unwrap();
        assert_eq!(t.get("k").unwrap(), Some(7));
        t.abort().unwrap();
        assert_eq!(t.get("k").unwrap(), None);
        assert!(t.is_empty());
    }

    #[test]
    fn damaged_records_are_typed_errors_on_open() {
        let open = |records: &[&[u8]]| {
            let region = VecRegion::with_capacity(1 << 16);
            let mut buffer = Buffer::create(region, BufferOptions::default()).unwrap();
            for r in records {
                buffer.add(r).unwrap();
            }
            buffer.commit().unwrap();
            Names::open(buffer.into_region(), Utf8Codec, LeU64).map(|_| ())
        };
        assert!(matches!(
            open(&[b"\x01\x00"]),
            Err(TypedError::Malformed { .. })
        ));
        assert!(matches!(
            open(&[b"\x05\x00\x00\x00abc"]),
            Err(TypedError::Malformed { .. })
        ));
        assert!(matches!(
            open(&[b"\x01\x00\x00\x00\xff"]),
            Err(TypedError::Decode {
                error: CodecError::InvalidUtf8 { valid_up_to: 0 },
                ..
            })
        ));
        let dup = open(&[b"\x01\x00\x00\x00k", b"\x01\x00\x00\x00k"]);
        assert!(
            matches!(dup, Err(TypedError::DuplicateKey { first, second })
            if first.get() == 1 && second.get() == 2)
        );
        // A value that does not decode fails only when read.
        open(&[b"\x01\x00\x00\x00kxyz"]).unwrap();
    }

    #[test]
    fn value_reader_sees_only_the_value() {
        let region = VecRegion::with_capacity(1 << 16);
        let mut t =
            TypedBuffer::create(region, BufferOptions::default(), BytesCodec, BytesCodec).unwrap();
        t.insert(b"key", b"value").unwrap();
        let reader = t.value_reader(b"key").unwrap().unwrap();
        assert_eq!(reader.bytes(), b"value");
        assert!(t.value_reader(b"nope").unwrap().is_none());
        assert_eq!(t.get(&b"key"[..]).unwrap(), Some(b"value".to_vec()));
    }
}
