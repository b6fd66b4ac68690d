//! [`RecordReader`]: a record's bytes as `std::io::Read + Seek + BufRead`, over the
//! core's [`EntryReader`].

use std::io::{self, BufRead, Read, Seek};

use hamtdb_core::{EntryReader, SeekFrom};

/// A record's bytes as a `std::io` reader, borrowed from the buffer without copying.
///
/// Make one from [`Buffer::reader`](hamtdb_core::Buffer::reader) or
/// [`TypedBuffer::value_reader`](hamtdb_core::TypedBuffer::value_reader). Seeking past
/// the end is allowed (reads there return 0 bytes); seeking before the start is an
/// [`io::ErrorKind::InvalidInput`] error that leaves the position unchanged.
///
/// ```
/// use std::io::{Read, Seek, SeekFrom};
///
/// use hamtdb::{Buffer, BufferOptions, RecordReader, VecRegion};
///
/// let mut buffer = Buffer::create(VecRegion::with_capacity(1 << 16), BufferOptions::default())?;
/// let id = buffer.add(b"hello, world")?;
/// let mut reader = RecordReader::new(buffer.reader(id)?);
/// reader.seek(SeekFrom::End(-5))?;
/// let mut tail = String::new();
/// reader.read_to_string(&mut tail)?;
/// assert_eq!(tail, "world");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct RecordReader<'a> {
    inner: EntryReader<'a>,
}

impl<'a> RecordReader<'a> {
    /// Wraps `inner`, keeping its position.
    pub fn new(inner: EntryReader<'a>) -> Self {
        RecordReader { inner }
    }

    /// The core cursor, e.g. for [`EntryReader::read_at`].
    pub fn get_ref(&self) -> &EntryReader<'a> {
        &self.inner
    }

    /// Gives the core cursor back.
    pub fn into_inner(self) -> EntryReader<'a> {
        self.inner
    }

    /// The record's length.
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    /// Whether the record is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Copies bytes from `pos` into `buf` without moving the cursor; returns how many
    /// (0 at or past the end).
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> usize {
        self.inner.read_at(pos, buf)
    }

    /// The bytes from the position to the end (empty past the end).
    fn rest(&self) -> &'a [u8] {
        let bytes = self.inner.bytes();
        usize::try_from(self.inner.position())
            .ok()
            .and_then(|pos| bytes.get(pos..))
            .unwrap_or_default()
    }
}

impl<'a> From<EntryReader<'a>> for RecordReader<'a> {
    fn from(inner: EntryReader<'a>) -> Self {
        RecordReader::new(inner)
    }
}

impl Read for RecordReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.inner.read(buf))
    }

    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let rest = self.rest();
        buf.extend_from_slice(rest);
        self.consume(rest.len());
        Ok(rest.len())
    }
}

impl BufRead for RecordReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(self.rest())
    }

    fn consume(&mut self, amt: usize) {
        let pos = self.inner.position().saturating_add(amt as u64);
        self.inner.seek(SeekFrom::Start(pos));
    }
}

impl Seek for RecordReader<'_> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let to = match pos {
            io::SeekFrom::Start(p) => SeekFrom::Start(p),
            io::SeekFrom::End(d) => SeekFrom::End(d),
            io::SeekFrom::Current(d) => SeekFrom::Current(d),
        };
        self.inner.seek(to).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid seek to a negative or overflowing position",
            )
        })
    }

    fn stream_position(&mut self) -> io::Result<u64> {
        Ok(self.inner.position())
    }
}
