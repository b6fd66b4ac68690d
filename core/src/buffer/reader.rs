//! [`EntryReader`]: a cursor over a record's bytes.

/// Where [`EntryReader::seek`] counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekFrom {
    /// From the first byte.
    Start(u64),
    /// From one past the last byte.
    End(i64),
    /// From the current position.
    Current(i64),
}

/// A cursor over a record's bytes, borrowed from the buffer without copying: read,
/// seek, and read at a position. The std crate adapts it to `std::io::Read + Seek`.
#[derive(Clone, Debug)]
pub struct EntryReader<'a> {
    bytes: &'a [u8],
    pos: u64,
}

impl<'a> EntryReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        EntryReader { bytes, pos: 0 }
    }

    /// The record's length.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether the record is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The current position (may lie past the end after a seek).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// All of the record's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Copies bytes from the current position into `buf` and advances; returns how many
    /// (0 at the end).
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.read_at(self.pos, buf);
        self.pos += n as u64;
        n
    }

    /// Copies bytes from `pos` into `buf` without moving the cursor; returns how many.
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> usize {
        let Ok(start) = usize::try_from(pos) else {
            return 0;
        };
        let Some(rest) = self.bytes.get(start..) else {
            return 0;
        };
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        n
    }

    /// Moves the cursor; returns the new position, or `None` (cursor unchanged) when it
    /// would be negative or overflow.
    pub fn seek(&mut self, to: SeekFrom) -> Option<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }?;
        self.pos = new;
        Some(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_seeks_and_reads_at() {
        let mut r = EntryReader::new(b"hello world");
        let mut buf = [0u8; 5];
        assert_eq!(r.read(&mut buf), 5);
        assert_eq!(&buf, b"hello");
        assert_eq!(r.seek(SeekFrom::End(-5)), Some(6));
        assert_eq!(r.read(&mut buf), 5);
        assert_eq!(&buf, b"world");
        assert_eq!(r.read(&mut buf), 0);
        assert_eq!(r.seek(SeekFrom::Current(-20)), None);
        assert_eq!(r.position(), 11);
        assert_eq!(r.read_at(4, &mut buf[..3]), 3);
        assert_eq!(&buf[..3], b"o w");
        assert_eq!(r.read_at(u64::MAX, &mut buf), 0);
        assert_eq!(r.seek(SeekFrom::Start(100)), Some(100));
        assert_eq!(r.read(&mut buf), 0);
    }
}
