//! `Space`: entries, allocation and commits over one region.
//!
//! This is the part of the buffer that both the record store and the map stand on. It
//! hands out entries from free space, lets the running transaction write only into
//! entries it allocated itself, and publishes a transaction by sealing its entries'
//! checksums and writing a meta slot — never the slot of the last durable commit. A
//! durable commit is one `sync` over `0 .. used_end`; the meta's digest of everything
//! written since the last durable commit lets `open` tell a complete commit from a torn
//! one (docs/FORMAT.md, "Commits and recovery").
//!
//! Space freed by a commit is "pending" until a later commit is durable (a crash could
//! fall back to a state that still needs it) and no open snapshot is older; then it
//! returns to the free map. On open the free map is rebuilt by walking everything the
//! chosen root reaches.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use super::format::{
    DATA_START, ENTRY_ALIGN, ENTRY_CAPACITY, ENTRY_ID, ENTRY_KIND, ENTRY_LEN, ENTRY_RESERVED,
    EntryHeader, EntryKind, HEADER_LEN, MAX_CAPACITY, META_LEN, META_SLOT_OFFSETS, Meta,
    MetaProblem, STATUS_LIVE, StructureKind, digest_term, entry_checksum, get_u32, get_u64,
};

use super::free::FreeMap;
use super::ordered::OrderedMap;
use crate::error::{Corrupt, Input};
use crate::{Error, Region, RegionError};

/// When a commit becomes durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Synced before `commit` returns: one `sync` over the written range.
    #[default]
    Immediate,
    /// Durable after the next explicit `sync`/flush (or a later `Immediate` commit);
    /// until then a crash returns to the last durable commit.
    Eventual,
    /// Like `Eventual`; the name says the caller does not intend to sync soon.
    None,
}

/// How a structure on top of `Space` names the entries an entry points to. Used by the
/// recovery walk and the free-space rebuild.
pub(crate) trait Walker {
    /// Pushes onto `out` the offsets of the entries that the entry at `offset`, with
    /// `header` and `payload`, points to. Malformed payloads are `Corrupted` errors.
    fn children(
        &self,
        offset: u64,
        header: &EntryHeader,
        payload: &[u8],
        out: &mut Vec<u64>,
    ) -> Result<(), Error>;

    /// Whether a meta slot's key count and root agree, by the structure's own rule (a
    /// slot that fails it is refused at open like any other inconsistent one).
    fn count_agrees_with_root(&self, _count: u64, _root: u64) -> bool {
        true
    }
}

/// Most entries of a transaction's free list whose allocation the next transaction
/// reuses (not on the firmware).
#[cfg(not(target_arch = "arm"))]
const KEPT_FREES: usize = 1024;

/// Entries the pending list has room for from the start (384 KiB; none on the
/// firmware). Between two syncs of the map (with a commit log, up to thousands of
/// commits) every commit adds the entries it freed; growing the list by doubling while
/// commits run put a `realloc` of up to megabytes on the commit path, which glibc serves
/// on its slow path (sorting and merging every free chunk of the arena first: ~250 ms
/// each in `durable_probe` at 1,000,000 keys, see docs/PERFORMANCE.md).
#[cfg(not(target_arch = "arm"))]
const PENDING_RESERVE: usize = 16 << 10;

/// An empty pending list, with room for [`PENDING_RESERVE`] entries.
#[cfg(not(target_arch = "arm"))]
fn pending_list() -> Vec<(u64, u64, u64)> {
    Vec::with_capacity(PENDING_RESERVE)
}

/// The firmware's: no room reserved.
#[cfg(target_arch = "arm")]
fn pending_list() -> Vec<(u64, u64, u64)> {
    Vec::new()
}

/// Changes of the running transaction, undone by `abort`.
#[derive(Debug, Default)]
struct Txn {
    /// Entries this transaction allocated and still holds, offset → capacity: they may be
    /// changed in place, are sealed (checksummed) at commit, and return to free space on
    /// abort. Ordered, so that commit seals them in address order without sorting.
    own: OrderedMap,
    /// Committed entries this transaction freed: (offset, capacity, digest term if the
    /// entry was written after the durable base).
    frees: Vec<(u64, u64, Option<u64>)>,
    /// `used_end` when the transaction began.
    start_used_end: u64,
}

/// Entries and commits over a region.
pub(crate) struct Space<R: Region> {
    region: R,
    /// The last published commit.
    committed: Meta,
    committed_slot: usize,
    /// The last commit known durable, and its slot (never overwritten).
    durable_txid: u64,
    durable_slot: usize,
    /// Entries reachable from `committed.root` with txid above `durable_txid`.
    base_count: u64,
    base_digest: u64,
    free: FreeMap,
    /// Space freed by commits, waiting to be reusable: (freeing txid, offset, capacity).
    pending: Vec<(u64, u64, u64)>,
    /// The sum of the capacities in `pending`, kept so that reading it per commit does
    /// not walk a queue that grows while snapshots or unsynced commits hold it back.
    pending_bytes: u64,
    /// The txid of the oldest snapshot that may still read the region, kept by the
    /// structure on top (`u64::MAX`: none). Freed space older than it is reusable.
    reader_floor: u64,
    used_end: u64,
    txn: Txn,
}

/// Reads meta slot `slot`.
fn read_slot<R: Region>(region: &R, slot: usize) -> Result<Result<Meta, MetaProblem>, Error> {
    let mut bytes = [0u8; META_LEN];
    region.read(META_SLOT_OFFSETS[slot], &mut bytes)?;
    Ok(Meta::decode(&bytes))
}

impl<R: Region> Space<R> {
    /// Formats `region` for a new structure: zeroes slot 1, writes `meta` (txid 1, no
    /// root) into slot 0, and syncs. Boxed, like `open`'s: the map keeps it so, and a
    /// box moves through `?` as one word.
    pub(crate) fn create(region: R, mut meta: Meta) -> Result<Box<Self>, Error> {
        if region.len() < DATA_START {
            region.grow(DATA_START)?;
        }
        meta.set_txid(1);
        meta.set_root(0);
        meta.set_used_end(DATA_START);
        meta.set_durable_base(0);
        meta.set_new_count(0);
        meta.set_new_digest(0);
        // SAFETY: the region was handed to us by value and no structure exists on it yet,
        // so nothing views the meta slots; `Space` is the only writer.
        unsafe { region.write(META_SLOT_OFFSETS[1], &[0u8; META_LEN])? };
        // SAFETY: as above.
        unsafe { region.write(META_SLOT_OFFSETS[0], &meta.encode())? };
        region.sync(0, DATA_START)?;
        let free = FreeMap::new();
        Ok(Box::new(Space {
            region,
            committed: meta,
            committed_slot: 0,
            durable_txid: 1,
            durable_slot: 0,
            base_count: 0,
            base_digest: 0,
            free,
            pending: pending_list(),
            pending_bytes: 0,
            reader_floor: u64::MAX,
            used_end: DATA_START,
            txn: Txn {
                start_used_end: DATA_START,
                ..Txn::default()
            },
        }))
    }

    /// Opens the structure of `kind` in `region`: picks the newest meta slot whose commit
    /// verifies, rebuilds the free map, and makes what it found durable. The chosen meta
    /// is copied once, into the boxed space (firmware: -84 B of 176-byte moves).
    pub(crate) fn open(
        region: R,
        kind: StructureKind,
        walker: &dyn Walker,
    ) -> Result<Box<Self>, Error> {
        // The valid slots' metas, by slot.
        let mut candidates: [Option<Meta>; 2] = [None, None];
        let mut blank = 0;
        let mut first_problem = None;
        // A slot the chosen commit must not leave behind: torn, or a newer commit that
        // failed verification (see `finish_open`).
        let mut rejected = None;
        for (slot, &slot_off) in META_SLOT_OFFSETS.iter().enumerate() {
            match read_slot(&region, slot)? {
                Ok(meta) => candidates[slot] = Some(meta),
                Err(MetaProblem::Blank) => blank += 1,
                Err(MetaProblem::Version(found)) => {
                    first_problem.get_or_insert(Error::UnsupportedVersion { found });
                }
                Err(MetaProblem::Kind(found)) => {
                    first_problem.get_or_insert(Error::WrongKind { found });
                }
                Err(MetaProblem::BadChecksum) => {
                    rejected = Some(slot);
                    first_problem.get_or_insert(Error::corrupted(
                        slot_off,
                        Corrupt::MetaSlotChecksumMismatch,
                    ));
                }
            }
        }
        // A slot of a later format version has a valid checksum, so it was written on
        // purpose, most likely by a newer hamtdb: opening the other slot would roll its
        // commit back and let the next commit overwrite it.
        if let Some(e @ Error::UnsupportedVersion { .. }) = first_problem {
            return Err(e);
        }
        if candidates.iter().all(Option::is_none) {
            return Err(match first_problem {
                Some(e) => e,
                None if blank == 2 => Error::NotInitialized,
                None => Error::corrupted(0, Corrupt::NoValidMetaSlot),
            });
        }
        // Newest first: slot 1 first when both are valid and it is newer.
        let newer_first = match &candidates {
            [Some(a), Some(b)] if b.txid() > a.txid() => [1, 0],
            _ => [0, 1],
        };
        let mut last_err = None;
        for slot in newer_first {
            let Some(meta) = &candidates[slot] else {
                continue;
            };
            if meta.kind() != kind {
                last_err = Some(Error::WrongKind {
                    found: meta.kind() as u32,
                });
                continue;
            }
            match Self::verify_commit(&region, meta, META_SLOT_OFFSETS[slot], walker) {
                Ok(()) => return Self::finish_open(region, slot, meta, walker, rejected),
                Err(e) => {
                    rejected = Some(slot);
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or(Error::corrupted(0, Corrupt::NoUsableMetaSlot)))
    }

    /// Checks that every entry the commit wrote since its durable base is intact.
    fn verify_commit(
        region: &R,
        meta: &Meta,
        slot_off: u64,
        walker: &dyn Walker,
    ) -> Result<(), Error> {
        let len = region.len();
        if meta.used_end() < DATA_START
            || meta.used_end() > len
            || !meta.used_end().is_multiple_of(8)
        {
            return Err(Error::corrupted(
                slot_off,
                Corrupt::MetaUsedEndOutsideRegion,
            ));
        }
        if meta.durable_base() >= meta.txid() {
            return Err(Error::corrupted(
                slot_off,
                Corrupt::MetaDurableBaseNotBelowTxid,
            ));
        }
        // Forged with a valid checksum, these would overflow later arithmetic: the next
        // txid, and the count a delete lowers or a put raises.
        if meta.txid() == u64::MAX {
            return Err(Error::corrupted(slot_off, Corrupt::MetaTxidAtLimit));
        }
        // A record or a key takes at least 8 bytes below the used end.
        if meta.count() > meta.used_end() / 8 {
            return Err(Error::corrupted(
                slot_off,
                Corrupt::MetaCountLargerThanRegionHolds,
            ));
        }
        // The walk below counts every visit, revisits too, and stops past `new_count`:
        // that bound is what ends it on a shared or cyclic structure, so it must be a
        // count of distinct entries (each at least a header, all below the used end).
        if meta.new_count() > (meta.used_end() - DATA_START) / HEADER_LEN as u64 {
            return Err(Error::corrupted(
                slot_off,
                Corrupt::MetaNewCountLargerThanRegionHolds,
            ));
        }
        if !walker.count_agrees_with_root(meta.count(), meta.root()) {
            return Err(Error::corrupted(
                slot_off,
                Corrupt::MapMetaCountDisagreesWithRoot,
            ));
        }
        let mut count = 0u64;
        let mut digest = 0u64;
        // Each new entry is counted at most `new_count` times before we stop, so a cycle
        // or shared subtree in a hostile image cannot keep this walk going.
        walk(region, meta, walker, &mut |off, header| {
            // Older entries were durable before this commit: damage in one of them is
            // reported when it is read, and must not pass for a torn commit here (the
            // fallback commit may reach space reused since).
            if header.txid <= meta.durable_base() {
                return Ok(false);
            }
            let (header, _) = read_entry(region, meta.seed(), off, meta.used_end(), true)?;
            if header.txid > meta.txid() {
                return Err(Error::corrupted(off, Corrupt::EntryWrittenAfterCommit));
            }
            count += 1;
            if count > meta.new_count() {
                return Err(Error::corrupted(
                    slot_off,
                    Corrupt::CommitReachesMoreNewEntriesThanItWrote,
                ));
            }
            digest = digest.wrapping_add(digest_term(off, header.checksum));
            Ok(true)
        })?;
        if count != meta.new_count() || digest != meta.new_digest() {
            return Err(Error::corrupted(
                slot_off,
                Corrupt::CommitIncompleteDigestMismatch,
            ));
        }
        Ok(())
    }

    fn finish_open(
        region: R,
        slot: usize,
        meta: &Meta,
        walker: &dyn Walker,
        rejected: Option<usize>,
    ) -> Result<Box<Self>, Error> {
        let free = rebuild_free_map(&region, meta, walker)?;
        // A newer commit that failed verification (torn by a crash) must stay rejected:
        // its txid is handed out again, and a retry that rewrites the same entries at the
        // same places could complete it after the fact (or, for a torn slot, complete its
        // bytes). The slot is erased before anything else is written, and the sync below
        // makes that durable.
        if let Some(stale) = rejected {
            // SAFETY: nothing is built on the region yet, and no reader views meta slots.
            match unsafe { region.write(META_SLOT_OFFSETS[stale], &[0u8; META_LEN]) } {
                Ok(()) | Err(RegionError::ReadOnly) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // What we found may sit only in a page cache (a process died after an eventual
        // commit); make it durable before anything is built on top of it.
        match region.sync(0, meta.used_end()) {
            Ok(()) | Err(RegionError::ReadOnly) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Box::new(Space {
            region,
            committed: *meta,
            committed_slot: slot,
            durable_txid: meta.txid(),
            durable_slot: slot,
            base_count: 0,
            base_digest: 0,
            free,
            pending: pending_list(),
            pending_bytes: 0,
            reader_floor: u64::MAX,
            used_end: meta.used_end(),
            txn: Txn {
                start_used_end: meta.used_end(),
                ..Txn::default()
            },
        }))
    }

    // ---- reading ----

    pub(crate) fn region(&self) -> &R {
        &self.region
    }

    /// The last published commit.
    pub(crate) fn committed(&self) -> &Meta {
        &self.committed
    }

    /// The id of the running transaction.
    pub(crate) fn txid(&self) -> u64 {
        self.committed.txid() + 1
    }

    pub(crate) fn seed(&self) -> u64 {
        self.committed.seed()
    }

    pub(crate) fn used_end(&self) -> u64 {
        self.used_end
    }

    /// Reads the entry at `offset` without verifying its checksum.
    pub(crate) fn entry(&self, offset: u64) -> Result<(EntryHeader, &[u8]), Error> {
        read_entry(&self.region, self.seed(), offset, self.used_end, false)
    }

    /// Reads the entry at `offset` and verifies its checksum (entries of the running
    /// transaction are not sealed yet and are returned unverified).
    pub(crate) fn entry_verified(&self, offset: u64) -> Result<(EntryHeader, &[u8]), Error> {
        let verify = !self.txn.own.contains_key(offset);
        read_entry(&self.region, self.seed(), offset, self.used_end, verify)
    }

    /// Whether the entry at `offset` belongs to the running transaction (and may be
    /// changed in place).
    pub(crate) fn is_own(&self, offset: u64) -> bool {
        self.txn.own.contains_key(offset)
    }

    // ---- writing (the running transaction) ----

    /// Allocates `capacity` bytes (a multiple of 8) at the lowest free address, growing
    /// the region if no free extent fits.
    fn alloc(&mut self, capacity: u64) -> Result<u64, Error> {
        if let Some(off) = self.free.allocate(capacity) {
            self.txn.own.insert(off, capacity);
            return Ok(off);
        }
        let off = self.used_end;
        let end = off
            .checked_add(capacity)
            .ok_or(Error::too_large(Input::Region, u64::MAX))?;
        if end > self.region.len() {
            self.region.grow(end)?;
        }
        self.used_end = end;
        self.txn.own.insert(off, capacity);
        Ok(off)
    }

    /// Writes a new entry of `kind` with `payload` and room for `capacity` bytes in all
    /// (header included, rounded up to 8); returns its offset. The entry belongs to the
    /// running transaction until it commits.
    pub(crate) fn write_entry(
        &mut self,
        kind: EntryKind,
        id: u64,
        payload: &[u8],
        capacity: u64,
    ) -> Result<u64, Error> {
        let min = HEADER_LEN as u64 + payload.len() as u64;
        let capacity = super::format::align_up(capacity.max(min)).filter(|&c| c <= MAX_CAPACITY);
        let Some(capacity) = capacity else {
            return Err(Error::too_large(Input::Entry, min));
        };
        let off = self.alloc(capacity)?;
        let header = EntryHeader {
            checksum: 0,
            kind,
            capacity: capacity as u32,
            len: payload.len() as u32,
            txid: self.txid(),
            id,
        };
        let written = self
            .write_own(off, &header.encode())
            .and_then(|()| self.write_own(off + HEADER_LEN as u64, payload));
        if let Err(e) = written {
            self.free_entry(off)?;
            return Err(e);
        }
        Ok(off)
    }

    /// Replaces the payload of an entry of the running transaction; it must fit.
    pub(crate) fn rewrite_own(&mut self, offset: u64, payload: &[u8]) -> Result<(), Error> {
        let (mut header, _) = self.entry(offset)?;
        if !self.is_own(offset)
            || payload.len() as u64 > u64::from(header.capacity) - HEADER_LEN as u64
        {
            return Err(Error::corrupted(offset, Corrupt::RewriteOfEntryNotOwned));
        }
        header.len = payload.len() as u32;
        self.write_own(offset, &header.encode())?;
        self.write_own(offset + HEADER_LEN as u64, payload)
    }

    /// Writes `bytes` at `at` inside an entry the running transaction owns.
    fn write_own(&self, at: u64, bytes: &[u8]) -> Result<(), Error> {
        // SAFETY: `at` lies inside an entry allocated by the running transaction (every
        // caller passes an offset in `txn.own` plus an in-capacity position). No
        // published snapshot reaches such an entry, so no reader views or reads these
        // bytes; `&self` views handed out by `Space` borrow `self`, and the writer path
        // (`&mut self` callers) holds none across this call.
        unsafe { self.region.write(at, bytes)? };
        Ok(())
    }

    /// Frees the entry at `offset`: at once if the running transaction wrote it, else
    /// when it is no longer needed (after a later durable commit and once no snapshot is
    /// older than this transaction).
    pub(crate) fn free_entry(&mut self, offset: u64) -> Result<(), Error> {
        if let Some(cap) = self.txn.own.remove(offset) {
            self.free.release(offset, cap);
            return Ok(());
        }
        let (header, _) = self.entry(offset)?;
        let term = (header.txid > self.durable_txid).then(|| digest_term(offset, header.checksum));
        self.txn
            .frees
            .push((offset, u64::from(header.capacity), term));
        Ok(())
    }

    /// Publishes the running transaction with `root`; `fill` sets the structure's own
    /// meta fields. With [`Durability::Immediate`] the commit is synced before this
    /// returns.
    pub(crate) fn commit(
        &mut self,
        root: u64,
        durability: Durability,
        fill: impl FnOnce(&mut Meta),
    ) -> Result<(), Error> {
        let txid = self.txid();
        let mut count = self.base_count;
        let mut digest = self.base_digest;
        // Seal: each entry the transaction wrote gets its checksum now, once.
        // In address order (`own` is ordered), so the writes run through the region once.
        for (off, _) in self.txn.own.iter() {
            let (header, _) = self.entry(off)?;
            let end = off + HEADER_LEN as u64 + u64::from(header.len);
            let bytes = self.region.view(off, (end - off) as usize)?;
            let sum = entry_checksum(self.seed(), off, bytes);
            self.write_own(off, &sum.to_le_bytes())?;
            count += 1;
            digest = digest.wrapping_add(digest_term(off, sum));
        }
        for &(_, _, term) in &self.txn.frees {
            if let Some(term) = term {
                count -= 1;
                digest = digest.wrapping_sub(term);
            }
        }
        let mut meta = self.committed;
        fill(&mut meta);
        meta.set_txid(txid);
        meta.set_root(root);
        meta.set_used_end(self.used_end);
        meta.set_durable_base(self.durable_txid);
        meta.set_new_count(count);
        meta.set_new_digest(digest);
        let slot = 1 - self.durable_slot;
        // SAFETY: the slot is not the durable one, and no reader views meta slots (the
        // committed meta is kept in memory), so nobody reads these bytes meanwhile.
        unsafe { self.region.write(META_SLOT_OFFSETS[slot], &meta.encode())? };

        // Published: from here on the transaction's changes are the committed state.
        self.committed = meta;
        self.committed_slot = slot;
        self.base_count = count;
        self.base_digest = digest;
        let frees = self.frees_to_pending(txid);
        self.txn = Txn {
            start_used_end: self.used_end,
            frees,
            ..Txn::default()
        };
        if durability == Durability::Immediate {
            self.sync()?;
        }
        self.reclaim();
        Ok(())
    }

    /// Moves the entries the transaction freed to the pending list; returns the emptied
    /// list, whose allocation the next transaction reuses (up to a bound): a small
    /// commit then allocates nothing here (see `Arena` in map/write.rs on why that
    /// matters).
    #[cfg(not(target_arch = "arm"))]
    fn frees_to_pending(&mut self, txid: u64) -> Vec<(u64, u64, Option<u64>)> {
        let mut frees = core::mem::take(&mut self.txn.frees);
        for &(off, cap, _) in &frees {
            self.pending.push((txid, off, cap));
            self.pending_bytes += cap;
        }
        frees.clear();
        if frees.capacity() > KEPT_FREES {
            frees = Vec::new();
        }
        frees
    }

    /// The firmware's: the list is dropped (its heap is small, its image counted in
    /// bytes).
    #[cfg(target_arch = "arm")]
    fn frees_to_pending(&mut self, txid: u64) -> Vec<(u64, u64, Option<u64>)> {
        for (off, cap, _) in core::mem::take(&mut self.txn.frees) {
            self.pending.push((txid, off, cap));
            self.pending_bytes += cap;
        }
        Vec::new()
    }

    /// Makes the last commit durable: one `sync` over `0 .. used_end`.
    pub(crate) fn sync(&mut self) -> Result<(), Error> {
        if self.durable_txid == self.committed.txid() {
            return Ok(());
        }
        self.region.sync(0, self.committed.used_end())?;
        self.durable_txid = self.committed.txid();
        self.durable_slot = self.committed_slot;
        self.base_count = 0;
        self.base_digest = 0;
        // Entries the running transaction freed so far are committed ones, durable now:
        // they no longer count in the digest the next commit writes.
        for free in &mut self.txn.frees {
            free.2 = None;
        }
        self.reclaim();
        Ok(())
    }

    /// Undoes the running transaction: its entries return to free space and the entries
    /// it freed stay.
    pub(crate) fn abort(&mut self) {
        for (off, cap) in core::mem::take(&mut self.txn.own).iter() {
            self.free.release(off, cap);
        }
        self.free.cut_at(self.txn.start_used_end);
        self.used_end = self.txn.start_used_end;
        self.txn = Txn {
            start_used_end: self.used_end,
            ..Txn::default()
        };
    }

    /// Returns pending space to the free map once no crash fallback and no snapshot can
    /// reach it.
    fn reclaim(&mut self) {
        let floor = self.durable_txid.min(self.reader_floor);
        // In freeing order. A reader at txid `t` sees the state of commit `t`; an entry
        // freed by commit `f` is needed by states before `f`.
        let done = self.pending.partition_point(|p| p.0 <= floor);
        for &(_, off, cap) in &self.pending[..done] {
            self.pending_bytes -= cap;
            self.free.release(off, cap);
        }
        self.pending.drain(..done);
    }

    /// Tells the space the txid of the oldest snapshot still open (`u64::MAX`: none) and
    /// returns to free space whatever no snapshot and no crash fallback can reach.
    ///
    /// A structure with concurrent readers calls this after publishing a commit, with
    /// the floor read after the publication: a reader that registers later sees the new
    /// commit and needs nothing it freed. Until it is called again the floor stays, so
    /// `commit` reclaims nothing a registered reader may need.
    pub(crate) fn set_reader_floor(&mut self, floor: u64) {
        self.reader_floor = floor;
        self.reclaim();
    }

    /// Where an entry of `capacity` bytes would be allocated now.
    pub(crate) fn lowest_fit(&self, capacity: u64) -> u64 {
        self.free.peek(capacity).unwrap_or(self.used_end)
    }

    /// Whether the running transaction changed anything.
    pub(crate) fn has_changes(&self) -> bool {
        !self.txn.own.is_empty() || !self.txn.frees.is_empty()
    }

    /// Lowers `used_end` to the end of the last allocated entry (dropping the free extent
    /// that ends at `used_end`); the next commit publishes it. Space still pending stays.
    pub(crate) fn shrink_to_fit(&mut self) {
        if let Some((off, _)) = self.free.extent_ending_at(self.used_end) {
            self.free.cut_at(off);
            self.used_end = off;
            self.txn.start_used_end = self.txn.start_used_end.min(off);
        }
    }

    /// Gives the region's bytes beyond the durable `used_end` back to the medium.
    ///
    /// Only once the commit that lowered `used_end` is durable: then neither the current
    /// state nor the crash fallback reaches past it.
    pub(crate) fn release_tail(&mut self) -> Result<(), Error> {
        if self.durable_txid != self.committed.txid() || self.reader_floor < self.committed.txid() {
            return Ok(());
        }
        let end = self.committed.used_end();
        if self.region.len() > end {
            // SAFETY: the bytes at and past `end` hold no entry reachable from the durable
            // commit (the current state) nor from any open snapshot (there is none), so
            // nothing views them; `&mut self` keeps every other user of the region out
            // for the duration of the call.
            unsafe { self.region.truncate(end)? };
        }
        Ok(())
    }

    /// Gives the region back.
    pub(crate) fn into_region(self) -> R {
        self.region
    }

    /// Bytes of the data area held by entries the last commit reaches: everything below
    /// `used_end` that is neither free nor pending. Exact between transactions (the
    /// free map is rebuilt from the reachable entries on open, and every later
    /// allocation and free goes through this type), so it costs no walk.
    pub(crate) fn reachable_bytes(&self) -> u64 {
        let (free, pending) = self.free_bytes();
        self.used_end
            .saturating_sub(DATA_START)
            .saturating_sub(free + pending)
    }

    /// Free bytes below `used_end` and bytes waiting to become free.
    pub(crate) fn free_bytes(&self) -> (u64, u64) {
        (self.free.total(), self.pending_bytes)
    }
}

/// Reads and sanity-checks the entry at `offset`, optionally verifying its checksum.
pub(crate) fn read_entry<R: Region>(
    region: &R,
    seed: u64,
    offset: u64,
    used_end: u64,
    verify: bool,
) -> Result<(EntryHeader, &[u8]), Error> {
    if offset < DATA_START || !offset.is_multiple_of(8) || offset >= used_end {
        return Err(Error::corrupted(
            offset,
            Corrupt::EntryOffsetOutsideDataArea,
        ));
    }
    let head = region
        .view(offset, HEADER_LEN)
        .map_err(|_| Error::corrupted(offset, Corrupt::EntryHeaderOutsideRegion))?;
    let header = EntryHeader::decode(head, offset, used_end)?;
    let total = HEADER_LEN + header.len as usize;
    let whole = region
        .view(offset, total)
        .map_err(|_| Error::corrupted(offset, Corrupt::EntryOutsideRegion))?;
    if verify && entry_checksum(seed, offset, whole) != header.checksum {
        return Err(Error::corrupted(offset, Corrupt::EntryChecksumMismatch));
    }
    Ok((header, &whole[HEADER_LEN..]))
}

/// The payload of the entry at `offset`, which must be of `kind`, and the id its header
/// carries: the lookup path's read, with exactly [`read_entry`]'s checks and errors.
///
/// On the host, [`read_payload_fast`] inlined into each lookup. On Arm (firmware, where
/// code size is what counts) [`read_entry`] followed by the kind check, in one
/// out-of-line copy: the same outcome (a core test compares the two on every entry and
/// damaged byte of an image), and the fast copy and its error path leave the image.
#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[cfg_attr(target_arch = "arm", inline(never))]
pub(crate) fn read_payload<R: Region>(
    region: &R,
    offset: u64,
    used_end: u64,
    kind: EntryKind,
) -> Result<(u64, &[u8]), Error> {
    if cfg!(target_arch = "arm") {
        read_payload_small(region, offset, used_end, kind)
    } else {
        read_payload_fast(region, offset, used_end, kind)
    }
}

/// [`read_payload`] as [`read_entry`] and a kind check.
pub(crate) fn read_payload_small<R: Region>(
    region: &R,
    offset: u64,
    used_end: u64,
    kind: EntryKind,
) -> Result<(u64, &[u8]), Error> {
    let (header, payload) = read_entry(region, 0, offset, used_end, false)?;
    if header.kind != kind {
        return Err(wrong_kind(offset, kind));
    }
    Ok((header.id, payload))
}

/// [`read_payload`] for lookups: it checks what [`read_entry`] checks (the offset,
/// kind, status, capacity and length against `used_end`) but decodes only the fields a
/// lookup uses, and leaves errors to [`read_entry`] so that they say the same.
#[inline(always)]
pub(crate) fn read_payload_fast<R: Region>(
    region: &R,
    offset: u64,
    used_end: u64,
    kind: EntryKind,
) -> Result<(u64, &[u8]), Error> {
    if offset < DATA_START || !offset.is_multiple_of(ENTRY_ALIGN) || offset >= used_end {
        return Err(payload_error(region, offset, used_end, kind));
    }
    let Ok(head) = region.view(offset, HEADER_LEN) else {
        return Err(payload_error(region, offset, used_end, kind));
    };
    // Kind, status and the two reserved bytes in one comparison.
    let tag = get_u32(head, ENTRY_KIND..ENTRY_RESERVED.end);
    let want = u32::from(kind as u8) | u32::from(STATUS_LIVE) << 8;
    let capacity = u64::from(get_u32(head, ENTRY_CAPACITY));
    let len = get_u32(head, ENTRY_LEN);
    let id = get_u64(head, ENTRY_ID);
    let fits = capacity >= HEADER_LEN as u64
        && capacity.is_multiple_of(ENTRY_ALIGN)
        && u64::from(len) <= capacity - HEADER_LEN as u64
        && capacity <= used_end - offset;
    if tag != want || !fits {
        return Err(payload_error(region, offset, used_end, kind));
    }
    match region.view(offset + HEADER_LEN as u64, len as usize) {
        Ok(payload) => Ok((id, payload)),
        Err(_) => Err(payload_error(region, offset, used_end, kind)),
    }
}

/// Why [`read_payload`] refused the entry at `offset`.
#[cold]
#[inline(never)]
fn payload_error<R: Region>(region: &R, offset: u64, used_end: u64, kind: EntryKind) -> Error {
    match read_entry(region, 0, offset, used_end, false) {
        Err(e) => e,
        Ok(_) => wrong_kind(offset, kind),
    }
}

/// The error of an entry of another kind than the `kind` a lookup expected.
fn wrong_kind(offset: u64, kind: EntryKind) -> Error {
    Error::corrupted(
        offset,
        match kind {
            EntryKind::Value => Corrupt::ExpectedValueEntryOfThisLength,
            _ => Corrupt::ExpectedTrieNodeOfThisDepth,
        },
    )
}

/// Walks the entries `meta.root` reaches, depth first, reading each (checksum not
/// verified): `visit` gets its offset and header and says whether to follow its edges.
/// One walk for the commit check and the free-map rebuild of `open`.
fn walk<R: Region>(
    region: &R,
    meta: &Meta,
    walker: &dyn Walker,
    visit: &mut dyn FnMut(u64, &EntryHeader) -> Result<bool, Error>,
) -> Result<(), Error> {
    let mut stack = Vec::new();
    if meta.root() != 0 {
        stack.push(meta.root());
    }
    while let Some(off) = stack.pop() {
        let (header, payload) = read_entry(region, meta.seed(), off, meta.used_end(), false)?;
        if visit(off, &header)? {
            // The edges go straight onto the stack, popped last first as before.
            walker.children(off, &header, payload, &mut stack)?;
        }
    }
    Ok(())
}

/// Walks everything `meta.root` reaches and returns the free extents of the data area.
/// Entries that overlap (a shared or cyclic structure in a damaged image) are an error,
/// which also bounds the walk.
fn rebuild_free_map<R: Region>(
    region: &R,
    meta: &Meta,
    walker: &dyn Walker,
) -> Result<FreeMap, Error> {
    let units = ((meta.used_end() - DATA_START) / 8) as usize;
    // One bit per 8-byte unit, in words of the machine's width (a 64-bit shift is a
    // library call or a branchy sequence on a 32-bit core).
    const BITS: usize = usize::BITS as usize;
    let mut used = vec![0usize; units.div_ceil(BITS)];
    walk(region, meta, walker, &mut |off, header| {
        let first = ((off - DATA_START) / 8) as usize;
        let last = first + (u64::from(header.capacity) / 8) as usize;
        for unit in first..last {
            let (word, bit) = (unit / BITS, unit % BITS);
            if used[word] & (1 << bit) != 0 {
                return Err(Error::corrupted(
                    off,
                    Corrupt::EntriesOverlapOrAreReachableTwice,
                ));
            }
            used[word] |= 1 << bit;
        }
        Ok(true)
    })?;
    let mut free = FreeMap::new();
    let mut run_start = None;
    for unit in 0..=units {
        let is_free = unit < units && used[unit / BITS] & (1 << (unit % BITS)) == 0;
        match (is_free, run_start) {
            (true, None) => run_start = Some(unit),
            (false, Some(start)) => {
                free.release(DATA_START + start as u64 * 8, (unit - start) as u64 * 8);
                run_start = None;
            }
            _ => {}
        }
    }
    Ok(free)
}

impl<R: Region> crate::map::trie::NodeStore for Space<R> {
    fn entry(&self, offset: u64) -> Result<(EntryHeader, &[u8]), Error> {
        Space::entry(self, offset)
    }

    fn payload(&self, offset: u64, kind: EntryKind) -> Result<(u64, &[u8]), Error> {
        read_payload(&self.region, offset, self.used_end, kind)
    }

    fn entry_verified(&self, offset: u64) -> Result<(EntryHeader, &[u8]), Error> {
        Space::entry_verified(self, offset)
    }
}

impl<R: Region> crate::map::trie::NodeStoreMut for Space<R> {
    fn write_entry(
        &mut self,
        kind: EntryKind,
        id: u64,
        payload: &[u8],
        capacity: u64,
    ) -> Result<u64, Error> {
        Space::write_entry(self, kind, id, payload, capacity)
    }

    fn free_entry(&mut self, offset: u64) -> Result<(), Error> {
        Space::free_entry(self, offset)
    }

    fn lowest_fit(&self, capacity: u64) -> u64 {
        Space::lowest_fit(self, capacity)
    }
}
