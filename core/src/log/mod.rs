//! The commit log: a map's transactions as logical operations, appended one record a
//! commit to a second region, so that a durable commit is one contiguous write and one
//! sync of that region instead of a sync of the map's scattered pages.
//!
//! ```text
//! [header slot 0 | header slot 1 | record txid b+1 | record b+2 | ... | end: zeros or stale)
//!  0               512             1024
//! ```
//!
//! The header names the `base_txid` the log starts after and an `epoch`; records carry
//! consecutive txids from `base_txid + 1`, each checksummed with a seed made of the
//! epoch and its offset, so a record left from before a [`reset`](CommitLog::reset)
//! never verifies. Reading stops at the first record that does not verify or does not
//! carry the next txid: a torn tail is the end of the log, not an error. A reset writes
//! the header slot not in use (epoch + 1) and syncs, so a torn reset leaves the other.
//!
//! [`LoggedMap`] composes a [`Map`](crate::Map) with a log: see its documentation for the
//! commit, checkpoint and recovery rules. The byte layout is in docs/FORMAT.md.

pub(crate) mod format;
mod logged;

use alloc::vec::Vec;

use crate::Error;
use crate::buffer::format::{get_u32, get_u64};
use crate::error::{Corrupt, Input, Opt};
use crate::region::Region;

use format::{
    HeaderProblem, LOG_ALIGN, LOG_HEADER_LEN, LOG_SLOT_OFFSETS, LogHeader, OP_DELETE,
    OP_HEADER_LEN, OP_KEY_LEN, OP_KIND, OP_PUT, OP_VALUE_LEN, RECORD_CHECKSUM, RECORD_COUNT,
    RECORD_LEN, RECORD_TXID, align_up, record_checksum,
};
pub use format::{LOG_DATA_START, LOG_MAGIC, LOG_VERSION, RECORD_HEADER_LEN};
pub use logged::{LogPolicy, LoggedMap, LoggedTxn, Recovery};

/// One logged operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOp<'a> {
    /// Set the key to the value.
    Put(&'a [u8], &'a [u8]),
    /// Remove the key.
    Delete(&'a [u8]),
}

/// A record being built: the operations of one transaction, encoded as they come.
#[derive(Clone, Debug)]
pub struct RecordBuf {
    bytes: Vec<u8>,
    count: u32,
}

impl Default for RecordBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordBuf {
    /// An empty record.
    pub fn new() -> Self {
        RecordBuf {
            bytes: alloc::vec![0; RECORD_HEADER_LEN],
            count: 0,
        }
    }

    /// Empties the record for reuse, keeping its allocation.
    pub fn clear(&mut self) {
        self.bytes.truncate(RECORD_HEADER_LEN);
        self.bytes[..RECORD_HEADER_LEN].fill(0);
        self.count = 0;
    }

    /// Bytes the record takes in the log, header included, before alignment.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether the record holds no operation.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Operations held.
    pub fn op_count(&self) -> u32 {
        self.count
    }

    /// Appends a put. Keys longer than 65,535 bytes or values longer than `u32::MAX`
    /// are [`Error::TooLarge`] (the map refuses them first).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.push(OP_PUT, key, value)
    }

    /// Appends a delete.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), Error> {
        self.push(OP_DELETE, key, &[])
    }

    fn push(&mut self, kind: u8, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let key_len = u16::try_from(key.len())
            .map_err(|_| Error::too_large(Input::LoggedKey, key.len() as u64))?;
        let value_len = u32::try_from(value.len())
            .map_err(|_| Error::too_large(Input::LoggedValue, value.len() as u64))?;
        let mut head = [0u8; OP_HEADER_LEN];
        head[OP_KIND] = kind;
        head[OP_KEY_LEN].copy_from_slice(&key_len.to_le_bytes());
        head[OP_VALUE_LEN].copy_from_slice(&value_len.to_le_bytes());
        self.bytes.extend_from_slice(&head);
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(value);
        self.count += 1;
        Ok(())
    }
}

/// A record read back from the log.
#[derive(Clone, Copy, Debug)]
pub struct LogRecord<'a> {
    /// The transaction id of the commit it logs.
    pub txid: u64,
    /// Where it starts in the log region.
    pub offset: u64,
    count: u32,
    ops: &'a [u8],
}

impl<'a> LogRecord<'a> {
    /// Where the next record starts (the record's length, aligned). A record lies in
    /// its region, so this does not overflow.
    fn end(&self) -> u64 {
        (self.offset + RECORD_HEADER_LEN as u64 + self.ops.len() as u64).next_multiple_of(LOG_ALIGN)
    }

    /// Number of operations.
    pub fn op_count(&self) -> u32 {
        self.count
    }

    /// The operations in order. A record that verified but whose operations do not
    /// parse (written by something else) yields one `Corrupted` error, then ends.
    pub fn ops(&self) -> LogOps<'a> {
        LogOps {
            bytes: self.ops,
            at: 0,
            left: self.count,
            offset: self.offset + RECORD_HEADER_LEN as u64,
        }
    }
}

/// Iterator over a record's operations.
#[derive(Clone, Debug)]
pub struct LogOps<'a> {
    bytes: &'a [u8],
    at: usize,
    left: u32,
    offset: u64,
}

impl<'a> Iterator for LogOps<'a> {
    type Item = Result<LogOp<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return if self.at == self.bytes.len() {
                None
            } else {
                self.at = self.bytes.len();
                Some(Err(self.bad(Corrupt::BytesAfterLastLoggedOperation)))
            };
        }
        self.left -= 1;
        let result = self.parse();
        if result.is_err() {
            self.left = 0;
            self.at = self.bytes.len();
        }
        Some(result)
    }
}

impl<'a> LogOps<'a> {
    fn bad(&self, what: Corrupt) -> Error {
        Error::corrupted(self.offset + self.at as u64, what)
    }

    fn parse(&mut self) -> Result<LogOp<'a>, Error> {
        let rest = &self.bytes[self.at..];
        let head = rest
            .get(..OP_HEADER_LEN)
            .ok_or(self.bad(Corrupt::LoggedOperationCutShort))?;
        let key_len = usize::from(u16::from_le_bytes([
            head[OP_KEY_LEN.start],
            head[OP_KEY_LEN.start + 1],
        ]));
        let value_len = get_u32(head, OP_VALUE_LEN) as usize;
        let kind = head[OP_KIND];
        let body = &rest[OP_HEADER_LEN..];
        let key = body
            .get(..key_len)
            .ok_or(self.bad(Corrupt::LoggedKeyPastRecord))?;
        let op = match kind {
            OP_PUT => {
                let value = body
                    .get(key_len..key_len.saturating_add(value_len))
                    .ok_or(self.bad(Corrupt::LoggedValuePastRecord))?;
                LogOp::Put(key, value)
            }
            OP_DELETE if value_len == 0 => LogOp::Delete(key),
            _ => return Err(self.bad(Corrupt::UnknownLoggedOperation)),
        };
        self.at += OP_HEADER_LEN + key_len + value_len;
        Ok(op)
    }
}

/// A commit log over a region. See the [module documentation](self).
///
/// ```
/// use hamtdb_core::log::{CommitLog, LogOp, RecordBuf};
/// use hamtdb_core::VecRegion;
///
/// let mut log = CommitLog::create(VecRegion::new(), 7, 0)?;
/// let mut record = RecordBuf::new();
/// record.put(b"k", b"v")?;
/// log.append(1, &mut record)?;
/// log.sync()?;
/// let log = CommitLog::open(log.into_region())?;
/// let records: Vec<_> = log.records().collect::<Result<_, _>>()?;
/// assert_eq!(records.len(), 1);
/// assert_eq!(records[0].ops().next(), Some(Ok(LogOp::Put(b"k", b"v"))));
/// # Ok::<(), hamtdb_core::Error>(())
/// ```
#[derive(Debug)]
pub struct CommitLog<R: Region> {
    region: R,
    header: LogHeader,
    /// The slot holding `header`.
    slot: usize,
    /// Where the next record goes.
    end: u64,
    /// Txid of the last record (`base_txid` when there is none).
    last_txid: u64,
    /// Records below this are durable.
    synced_end: u64,
}

impl<R: Region> CommitLog<R> {
    /// Formats `region` as an empty log starting after `base_txid`, with checksums
    /// seeded by `seed`, and syncs it.
    pub fn create(region: R, seed: u64, base_txid: u64) -> Result<Self, Error> {
        region.grow(LOG_DATA_START)?;
        let mut log = CommitLog {
            region,
            header: LogHeader {
                seed,
                epoch: 0,
                base_txid,
            },
            // The first reset writes slot 0.
            slot: 1,
            end: LOG_DATA_START,
            last_txid: base_txid,
            synced_end: LOG_DATA_START,
        };
        log.reset(base_txid)?;
        Ok(log)
    }

    /// Opens the log in `region` and finds its end (reads every record once).
    ///
    /// Errors: [`Error::NotInitialized`] when both header slots are all zero (a log
    /// whose creation never finished); [`Error::Corrupted`] when no slot is valid or a
    /// record that verified does not parse; [`Error::UnsupportedVersion`].
    pub fn open(region: R) -> Result<Self, Error> {
        let (slot, header) = Self::read_header(&region)?;
        Self::from_header(region, slot, header)
    }

    /// The valid header slot with the highest epoch.
    pub(crate) fn read_header(region: &R) -> Result<(usize, LogHeader), Error> {
        let mut best: Option<(usize, LogHeader)> = None;
        let mut blank = 0;
        let mut version = None;
        for (slot, &offset) in LOG_SLOT_OFFSETS.iter().enumerate() {
            let mut b = [0u8; LOG_HEADER_LEN];
            if region.len() < offset + LOG_HEADER_LEN as u64 {
                blank += 1;
                continue;
            }
            region.read(offset, &mut b)?;
            match LogHeader::decode(&b) {
                Ok(h) => {
                    if best.is_none_or(|(_, b)| h.epoch > b.epoch) {
                        best = Some((slot, h));
                    }
                }
                Err(HeaderProblem::Blank) => blank += 1,
                Err(HeaderProblem::Version(v)) => version = Some(v),
                Err(HeaderProblem::Invalid) => {}
            }
        }
        // A slot of another version is refused by name even when the other slot is
        // valid: taking the older slot would drop the newer writer's records and
        // overwrite its header at the next reset.
        if let Some(found) = version {
            return Err(Error::UnsupportedVersion { found });
        }
        match best {
            Some(found) => Ok(found),
            None if blank == LOG_SLOT_OFFSETS.len() => Err(Error::NotInitialized),
            None if Self::creation_cut_short(region)? => Err(Error::NotInitialized),
            None => Err(Error::corrupted(0, Corrupt::NoValidCommitLogHeader)),
        }
    }

    /// Whether a log with no valid header slot is one whose creation a crash cut short:
    /// `create` writes slot 0 and syncs it before the log takes anything, so slot 1 all
    /// zero and nothing from [`LOG_DATA_START`] on is a torn first header in front of a
    /// log that never held a record. Reads the whole region (this is the error path).
    fn creation_cut_short(region: &R) -> Result<bool, Error> {
        let mut chunk = [0u8; 512];
        let mut zero_from = |start: u64, end: u64| -> Result<bool, Error> {
            let mut at = start;
            while at < end {
                let n = (end - at).min(chunk.len() as u64) as usize;
                let buf = &mut chunk[..n];
                region.read(at, buf)?;
                if buf.iter().any(|&b| b != 0) {
                    return Ok(false);
                }
                at += n as u64;
            }
            Ok(true)
        };
        let len = region.len();
        let slot1 = LOG_SLOT_OFFSETS[1];
        Ok(
            zero_from(slot1.min(len), (slot1 + LOG_HEADER_LEN as u64).min(len))?
                && zero_from(LOG_DATA_START.min(len), len)?,
        )
    }

    /// The log in `region` with `header` (from `slot`): finds its end.
    pub(crate) fn from_header(region: R, slot: usize, header: LogHeader) -> Result<Self, Error> {
        let mut log = CommitLog {
            region,
            header,
            slot,
            end: LOG_DATA_START,
            last_txid: header.base_txid,
            synced_end: LOG_DATA_START,
        };
        let mut end = LOG_DATA_START;
        let mut last = header.base_txid;
        for record in log.records() {
            let record = record?;
            // The operations must parse: a record that verified and does not is damage
            // (or another writer), not a torn tail.
            for op in record.ops() {
                op?;
            }
            last = record.txid;
            end = record.end();
        }
        log.end = end;
        log.synced_end = end;
        log.last_txid = last;
        Ok(log)
    }

    /// The records from `base_txid + 1` on, in order, up to the first that does not
    /// verify.
    pub fn records(&self) -> Records<'_, R> {
        Records {
            log: self,
            at: Some(LOG_DATA_START),
            next_txid: self.header.base_txid.checked_add(1),
        }
    }

    /// Reads the record at `offset` if it verifies and carries `txid`.
    fn record_at(&self, offset: u64, txid: u64) -> Result<Option<LogRecord<'_>>, Error> {
        let region_len = self.region.len();
        if offset
            .checked_add(RECORD_HEADER_LEN as u64)
            .is_none_or(|e| e > region_len)
        {
            return Ok(None);
        }
        let mut head = [0u8; RECORD_HEADER_LEN];
        self.region.read(offset, &mut head)?;
        let len = get_u32(&head, RECORD_LEN);
        if (len as usize) < RECORD_HEADER_LEN
            || get_u64(&head, RECORD_TXID) != txid
            || u64::from(len) > region_len - offset
        {
            return Ok(None);
        }
        // `len` fits the region, which is addressable.
        let bytes = self.region.view(offset, len as usize)?;
        let sum = record_checksum(self.header.seed, self.header.epoch, offset, bytes);
        if sum != get_u32(bytes, RECORD_CHECKSUM) {
            return Ok(None);
        }
        Ok(Some(LogRecord {
            txid,
            offset,
            count: get_u32(bytes, RECORD_COUNT),
            ops: &bytes[RECORD_HEADER_LEN..],
        }))
    }

    /// Whether this log can be the log of a map with `seed` at commit `txid`:
    /// [`Error::Corrupted`] (at the header slot) when it belongs to another database, or
    /// when it starts after `txid` (the map lost commits it had made durable).
    /// [`LoggedMap::open`] refuses such a log; a read-only open should too.
    pub fn check_fits(&self, seed: u64, txid: u64) -> Result<(), Error> {
        let at = LOG_SLOT_OFFSETS[self.slot];
        if self.header.seed != seed {
            return Err(Error::corrupted(
                at,
                Corrupt::CommitLogBelongsToAnotherDatabase,
            ));
        }
        if self.header.base_txid > txid {
            return Err(Error::corrupted(
                at,
                Corrupt::CommitLogStartsAfterMapsLastCommit,
            ));
        }
        Ok(())
    }

    /// The txid the log starts after: the map's commits after it are the records.
    pub fn base_txid(&self) -> u64 {
        self.header.base_txid
    }

    /// Txid of the last record, or [`base_txid`](Self::base_txid) when there is none.
    pub fn last_txid(&self) -> u64 {
        self.last_txid
    }

    /// The epoch: how many times the log was reset.
    pub fn epoch(&self) -> u64 {
        self.header.epoch
    }

    /// The checksum seed.
    pub fn seed(&self) -> u64 {
        self.header.seed
    }

    /// Where the next record goes: the bytes in use.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Whether records were appended since the last [`sync`](Self::sync).
    pub fn has_unsynced(&self) -> bool {
        self.synced_end < self.end
    }

    /// The region.
    pub fn region(&self) -> &R {
        &self.region
    }

    /// Gives the region back.
    pub fn into_region(self) -> R {
        self.region
    }

    /// Appends `record` as the commit `txid`, which must follow the last one, without
    /// syncing. The region grows as needed. `record`'s header is filled in here.
    ///
    /// On error the log's end is unchanged (bytes may have been written past it; they do
    /// not verify or are overwritten by the next append).
    #[allow(unsafe_code)] // `Region::write`, past the end no record reaches
    pub fn append(&mut self, txid: u64, record: &mut RecordBuf) -> Result<(), Error> {
        if Some(txid) != self.last_txid.checked_add(1) {
            return Err(Error::invalid_option(Opt::LogOrder));
        }
        let len = u32::try_from(record.bytes.len())
            .map_err(|_| Error::too_large(Input::LogRecord, record.len()))?;
        let offset = self.end;
        let next = offset
            .checked_add(u64::from(len))
            .and_then(align_up)
            .ok_or(Error::too_large(Input::Log, u64::MAX))?;
        if self.region.len() < next {
            self.region.grow(next)?;
        }
        let b = &mut record.bytes;
        b[RECORD_LEN].copy_from_slice(&len.to_le_bytes());
        b[RECORD_TXID].copy_from_slice(&txid.to_le_bytes());
        b[RECORD_COUNT].copy_from_slice(&record.count.to_le_bytes());
        let sum = record_checksum(self.header.seed, self.header.epoch, offset, b);
        b[RECORD_CHECKSUM].copy_from_slice(&sum.to_le_bytes());
        // SAFETY: `offset ..` lies at or past the log's end: no record handed out by
        // `records` reaches it (they borrow `self`, which is `&mut` here), and the log is
        // the region's only user.
        unsafe { self.region.write(offset, b)? };
        self.end = next;
        self.last_txid = txid;
        Ok(())
    }

    /// Makes every appended record durable: one sync of the bytes appended since the
    /// last one (nothing when there are none).
    pub fn sync(&mut self) -> Result<(), Error> {
        if self.synced_end >= self.end {
            return Ok(());
        }
        self.region
            .sync(self.synced_end, self.end - self.synced_end)?;
        self.synced_end = self.end;
        Ok(())
    }

    /// Empties the log: the next record carries `base_txid + 1`. Writes the header slot
    /// not in use with the next epoch (so no record written before verifies again) and
    /// syncs it. A crash before the sync returns leaves either header.
    #[allow(unsafe_code)] // `Region::write` of a header slot, which nothing views
    pub fn reset(&mut self, base_txid: u64) -> Result<(), Error> {
        // An epoch that wrapped to 0 would lose to the other slot's (and let its records
        // verify again): only a forged header gets here, as 2^64 resets do not happen.
        let epoch = self.header.epoch.checked_add(1).ok_or(Error::corrupted(
            LOG_SLOT_OFFSETS[self.slot],
            Corrupt::CommitLogEpochExhausted,
        ))?;
        let header = LogHeader {
            seed: self.header.seed,
            epoch,
            base_txid,
        };
        let slot = 1 - self.slot;
        let offset = LOG_SLOT_OFFSETS[slot];
        // A log cut short (shorter than its header slots, so it holds no record) is
        // whole again after the reset.
        if self.region.len() < LOG_DATA_START {
            self.region.grow(LOG_DATA_START)?;
        }
        // SAFETY: header slots are never viewed (headers are read by copy), and the log is
        // the region's only user; `&mut self` keeps record views away.
        unsafe { self.region.write(offset, &header.encode())? };
        self.region.sync(offset, LOG_HEADER_LEN as u64)?;
        self.header = header;
        self.slot = slot;
        self.end = LOG_DATA_START;
        self.synced_end = LOG_DATA_START;
        self.last_txid = base_txid;
        Ok(())
    }
}

/// Iterator over a log's records; see [`CommitLog::records`].
#[derive(Debug)]
pub struct Records<'l, R: Region> {
    log: &'l CommitLog<R>,
    at: Option<u64>,
    next_txid: Option<u64>,
}

impl<'l, R: Region> Iterator for Records<'l, R> {
    type Item = Result<LogRecord<'l>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let (at, txid) = (self.at?, self.next_txid?);
        match self.log.record_at(at, txid) {
            Ok(Some(record)) => {
                self.at = Some(record.end());
                self.next_txid = txid.checked_add(1);
                Some(Ok(record))
            }
            Ok(None) => {
                self.at = None;
                None
            }
            Err(e) => {
                self.at = None;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests;
