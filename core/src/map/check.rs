//! `check`: walks every node and value entry a commit reaches and reports every problem
//! with its offset — checksums, structure, the canonical shape, counts.

use alloc::vec::Vec;

use super::Published;
use super::node::{Branch, Collision, MAX_DEPTH, PairRef, ValueRef, chunk};
use crate::Error;
use crate::buffer::format::EntryKind;
use crate::buffer::ordered::ChunkedMap;
use crate::buffer::space::read_entry;
use crate::region::Region;

/// One problem `check` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Offset of the entry (or meta slot) concerned.
    pub offset: u64,
    /// What is wrong with it.
    pub what: &'static str,
}

/// What [`Map::check`](super::Map::check) found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Every problem found, in the order the walk met them (at most
    /// [`MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
    /// Trie nodes visited.
    pub nodes: u64,
    /// Value entries visited.
    pub value_entries: u64,
    /// Keys found.
    pub keys: u64,
    /// Bytes of the entries visited (headers and slack included).
    pub entry_bytes: u64,
}

/// A damaged image can be wrong everywhere; the report keeps this many problems.
pub const MAX_PROBLEMS: usize = 1000;

impl CheckReport {
    /// Whether nothing was found wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, offset: u64, what: &'static str) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { offset, what });
        }
    }
}

struct Checker<'a, R: Region> {
    region: &'a R,
    meta: Published,
    hash: &'a dyn Fn(&[u8]) -> [u64; 2],
    /// Entries walked so far, offset → the kind they were reached as.
    seen: ChunkedMap,
    report: CheckReport,
}

impl<R: Region> Checker<'_, R> {
    /// Reads and verifies an entry the walk reached; `None` (with a problem noted) when
    /// it cannot be used.
    fn entry(&mut self, offset: u64, kind: EntryKind) -> Option<&[u8]> {
        if self.seen.insert(offset, kind as u64).is_some() {
            self.report.problem(offset, "entry reachable twice");
            return None;
        }
        match read_entry(
            self.region,
            self.meta.seed,
            offset,
            self.meta.used_end,
            true,
        ) {
            Ok((header, payload)) => {
                self.report.entry_bytes += u64::from(header.capacity);
                if header.kind != kind {
                    self.report.problem(offset, "entry of the wrong kind");
                    return None;
                }
                if header.txid > self.meta.txid {
                    self.report
                        .problem(offset, "entry written after the commit");
                }
                Some(payload)
            }
            Err(Error::Corrupted(c)) => {
                self.report.problem(offset, c.what());
                None
            }
            Err(_) => {
                self.report.problem(offset, "entry unreadable");
                None
            }
        }
    }

    fn value(&mut self, value: ValueRef<'_>, key_hash: [u64; 2]) {
        let ValueRef::Entry { offset, len } = value else {
            return;
        };
        self.report.value_entries += 1;
        let Some(payload) = self.entry(offset, EntryKind::Value) else {
            return;
        };
        if payload.len() != len as usize {
            self.report
                .problem(offset, "value entry length differs from its pair");
        }
        let id = read_entry(
            self.region,
            self.meta.seed,
            offset,
            self.meta.used_end,
            false,
        )
        .map(|(h, _)| h.id)
        .unwrap_or(0);
        if id != key_hash[0] {
            self.report
                .problem(offset, "value entry does not carry its key's hash");
        }
    }

    /// Checks one pair found at `node` in slot `slot` (branches) at `depth`.
    fn pair(&mut self, node: u64, depth: u32, slot: Option<usize>, pair: PairRef<'_>) -> [u64; 2] {
        self.report.keys += 1;
        let hash = (self.hash)(pair.key);
        if let Some(slot) = slot
            && chunk(hash, depth) != slot
        {
            self.report
                .problem(node, "key in a slot its hash does not lead to");
        }
        self.value(pair.value, hash);
        hash
    }

    /// Checks the subtree at `offset`, found at `depth` by following `path` (the slots
    /// taken from the root). Returns the number of pairs in it.
    fn node(&mut self, offset: u64, depth: u32, path: [u64; 2]) -> u64 {
        self.report.nodes += 1;
        let kind = if depth < MAX_DEPTH {
            EntryKind::Branch
        } else {
            EntryKind::Collision
        };
        let Some(payload) = self.entry(offset, kind) else {
            return 0;
        };
        let payload = payload.to_vec();
        if read_entry(
            self.region,
            self.meta.seed,
            offset,
            self.meta.used_end,
            false,
        )
        .is_ok_and(|(h, _)| h.id != u64::from(depth))
        {
            self.report
                .problem(offset, "node depth does not match its place");
        }
        let mut pairs = 0u64;
        if depth >= MAX_DEPTH {
            let Ok(c) = Collision::parse(&payload, offset) else {
                self.report.problem(offset, "collision node malformed");
                return 0;
            };
            let mut last: Option<Vec<u8>> = None;
            for i in 0..c.len() {
                let Ok(p) = c.pair(i) else {
                    self.report.problem(offset, "collision pair malformed");
                    continue;
                };
                if last.as_deref().is_some_and(|l| l >= p.key) {
                    self.report.problem(offset, "collision keys out of order");
                }
                last = Some(p.key.to_vec());
                let hash = self.pair(offset, depth, None, p);
                if !same_path(hash, path, depth) {
                    self.report.problem(offset, "collision key off its path");
                }
                pairs += 1;
            }
            if c.len() < 2 {
                self.report
                    .problem(offset, "collision node with fewer than two keys");
            }
            return pairs;
        }
        let Ok(b) = Branch::parse(&payload, offset) else {
            self.report.problem(offset, "branch malformed");
            return 0;
        };
        let mut rank = 0;
        for slot in 0..64 {
            if b.datamap & (1 << slot) == 0 {
                continue;
            }
            match b.pair(rank) {
                Ok(p) => {
                    let hash = self.pair(offset, depth, Some(slot), p);
                    if !same_path(hash, path, depth) {
                        self.report.problem(offset, "key off its node's path");
                    }
                    pairs += 1;
                }
                Err(_) => self.report.problem(offset, "branch pair malformed"),
            }
            rank += 1;
        }
        let mut rank = 0;
        for slot in 0..64u64 {
            if b.nodemap & (1 << slot) == 0 {
                continue;
            }
            match b.child(rank) {
                Ok(child) => {
                    let mut child_path = path;
                    set_chunk(&mut child_path, depth, slot);
                    let below = self.node(child, depth + 1, child_path);
                    if below < 2 {
                        self.report
                            .problem(child, "subtree with fewer than two keys (not canonical)");
                    }
                    pairs += below;
                }
                Err(_) => self.report.problem(offset, "branch child malformed"),
            }
            rank += 1;
        }
        pairs
    }
}

/// Sets the path chunk of `depth` in `path`.
fn set_chunk(path: &mut [u64; 2], depth: u32, slot: u64) {
    let bit = depth * 6;
    for i in 0..6 {
        let b = bit + i;
        if b >= 128 {
            break;
        }
        let v = (slot >> i) & 1;
        path[(b / 64) as usize] |= v << (b % 64);
    }
}

/// Whether `hash` agrees with `path` in the chunks above `depth`.
fn same_path(hash: [u64; 2], path: [u64; 2], depth: u32) -> bool {
    (0..depth).all(|d| chunk(hash, d) == chunk(path, d))
}

/// Checks the commit `meta` of the map in `region`.
pub(crate) fn check<R: Region>(
    region: &R,
    meta: Published,
    hash: &dyn Fn(&[u8]) -> [u64; 2],
) -> CheckReport {
    let mut checker = Checker {
        region,
        meta,
        hash,
        seen: ChunkedMap::new(),
        report: CheckReport::default(),
    };
    let keys = if meta.root == 0 {
        0
    } else {
        checker.node(meta.root, 0, [0, 0])
    };
    if keys != meta.count {
        checker
            .report
            .problem(0, "key count differs from the meta slot's");
    }
    if meta.used_end > region.len() {
        checker.report.problem(0, "used end beyond the region");
    }
    checker.report
}
