//! A user-defined [`Region`] over memory the user owns: a Linux `memfd` (anonymous
//! shared memory) mapped by two processes.
//!
//! The parent creates the memfd, maps it read-write, builds a map in it and commits.
//! Then it unmaps it and *seals* it (`F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW`): from
//! then on the kernel refuses every change to its bytes, from any process. It starts
//! itself again as the reader, which inherits the descriptor, maps it read-only, opens
//! the map and checks every value; it exits non-zero on any mismatch, and so does the
//! parent.
//!
//! The seal is what makes the reader's zero-copy views sound across processes: a
//! `&[u8]` into shared memory is only a promise that the bytes do not change while it
//! lives, and the `Region` contract leaves that promise to the writer. Inside one
//! process the map keeps it; between processes something must (here the seal; a
//! long-lived shared database would use a lock that every process takes, as
//! `FileRegion` does with `flock`).
//!
//! `cargo run --example shm -p hamtdb`

use core::ptr::NonNull;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, ExitCode};

use hamtdb::region::checked_range;
use hamtdb::{Map, MapOptions, Region, RegionError, RegionOp};
use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{MemfdFlags, SealFlags};

/// Bytes of shared memory.
const SHM_BYTES: u64 = 256 << 10;
/// Keys the parent writes.
const KEYS: u32 = 1000;

fn key(i: u32) -> [u8; 8] {
    let mut k = *b"shm:\0\0\0\0";
    k[4..].copy_from_slice(&i.to_le_bytes());
    k
}

fn value(i: u32) -> Vec<u8> {
    let len = 1 + (i % 50) as usize;
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

/// A fixed-size region over a shared mapping.
///
/// It never grows (`grow` past its length is [`RegionError::Full`]); `sync` only checks
/// bounds, because shared memory is RAM and does not survive a reboot anyway (a region
/// over a persistent medium would make its bytes durable there).
struct ShmRegion {
    map: MmapRaw,
    writable: bool,
}

impl ShmRegion {
    fn new(file: &File, writable: bool) -> std::io::Result<Self> {
        let mut options = MmapOptions::new();
        options.len(SHM_BYTES as usize);
        let map = if writable {
            options.map_raw(file)?
        } else {
            options.map_raw_read_only(file)?
        };
        Ok(ShmRegion { map, writable })
    }

    fn base(&self) -> NonNull<u8> {
        NonNull::new(self.map.as_mut_ptr()).expect("a mapping is never at address 0")
    }
}

// SAFETY: (1) the mapping is made once with a fixed length and never moved or unmapped
// while `self` lives, so a view stays valid for its borrow of `self`; (2) `read`, `view`
// and `write` check every range with `checked_range` against that length; (3) `write`
// copies exactly `data`. Bytes under a view cannot change: in this process only through
// `write`, whose caller promises no view overlaps; in other processes not at all, because
// the writer is gone and the memfd is sealed before the reader maps it (see the module
// docs).
#[allow(unsafe_code)]
unsafe impl Region for ShmRegion {
    fn len(&self) -> u64 {
        SHM_BYTES
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), RegionError> {
        checked_range(RegionOp::Read, offset, buf.len() as u64, SHM_BYTES)?;
        buf.copy_from_slice(self.view(offset, buf.len())?);
        Ok(())
    }

    fn view(&self, offset: u64, len: usize) -> Result<&[u8], RegionError> {
        let range = checked_range(RegionOp::View, offset, len as u64, SHM_BYTES)?;
        // SAFETY: the range lies inside the mapping (checked above), whose pages are
        // readable and initialized (a memfd reads as zero until written); the slice
        // borrows `self`, which keeps the mapping alive; nobody changes those bytes while
        // it lives (see the `unsafe impl` comment).
        Ok(unsafe {
            core::slice::from_raw_parts(self.base().as_ptr().wrapping_add(range.start), len)
        })
    }

    unsafe fn write(&self, offset: u64, data: &[u8]) -> Result<(), RegionError> {
        if !self.writable {
            return Err(RegionError::ReadOnly);
        }
        let range = checked_range(RegionOp::Write, offset, data.len() as u64, SHM_BYTES)?;
        let target = self.base().as_ptr().wrapping_add(range.start);
        // SAFETY: the target lies inside the writable mapping (checked above); the
        // caller promises that no view overlaps it and no other thread touches it, so
        // `data` (a live shared borrow) cannot overlap it either.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), target, data.len()) };
        Ok(())
    }

    fn grow(&self, min_len: u64) -> Result<u64, RegionError> {
        if min_len <= SHM_BYTES {
            Ok(SHM_BYTES)
        } else if !self.writable {
            Err(RegionError::ReadOnly)
        } else {
            Err(RegionError::full(min_len))
        }
    }

    unsafe fn truncate(&self, _new_len: u64) -> Result<u64, RegionError> {
        Ok(SHM_BYTES)
    }

    fn sync(&self, offset: u64, len: u64) -> Result<(), RegionError> {
        checked_range(RegionOp::Sync, offset, len, SHM_BYTES).map(|_| ())
    }
}

fn io(op: RegionOp) -> impl Fn(std::io::Error) -> RegionError {
    move |e| RegionError::Io {
        op,
        code: e.raw_os_error().unwrap_or(0),
    }
}

/// The writer: returns the sealed memfd holding a committed map.
fn write_shared() -> Result<OwnedFd, Box<dyn core::error::Error>> {
    // Not close-on-exec: the reader inherits the descriptor.
    let fd = rustix::fs::memfd_create("hamtdb-shm", MemfdFlags::ALLOW_SEALING)?;
    let file = File::from(fd);
    file.set_len(SHM_BYTES)?;
    let region = ShmRegion::new(&file, true).map_err(io(RegionOp::Grow))?;
    let map = Map::create(region, MapOptions::default())?;
    let mut txn = map.begin_write();
    for i in 0..KEYS {
        txn.put(&key(i), &value(i))?;
    }
    txn.commit()?;
    map.delete(&key(0))?;
    println!(
        "writer (pid {}): {} keys committed in a {} KiB memfd",
        std::process::id(),
        map.len(),
        SHM_BYTES >> 10
    );
    // Unmap before sealing: the kernel refuses F_SEAL_WRITE while a writable shared
    // mapping exists.
    drop(map);
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
    )?;
    Ok(file.into())
}

/// The reader, in the child process: checks every value; an error on any mismatch.
fn read_shared(fd: &str) -> Result<(), Box<dyn core::error::Error>> {
    // The inherited descriptor, opened again by path: no raw-descriptor `unsafe`.
    let file = File::open(format!("/proc/self/fd/{fd}"))?;
    let region = ShmRegion::new(&file, false).map_err(io(RegionOp::Read))?;
    let map = Map::open(region)?;
    if map.len() != u64::from(KEYS) - 1 {
        return Err(format!("reader: {} keys, expected {}", map.len(), KEYS - 1).into());
    }
    let snapshot = map.begin_read();
    if snapshot.get(&key(0))?.is_some() {
        return Err("reader: the deleted key is present".into());
    }
    for i in 1..KEYS {
        match snapshot.get(&key(i))? {
            Some(v) if v == value(i).as_slice() => {}
            other => return Err(format!("reader: key {i} reads {other:?}").into()),
        }
    }
    drop(snapshot);
    if !matches!(
        map.put(b"x", b"y"),
        Err(hamtdb::Error::Region(RegionError::ReadOnly))
    ) {
        return Err("reader: a write to the read-only mapping did not fail".into());
    }
    println!(
        "reader (pid {}): {} keys read and verified through a read-only mapping",
        std::process::id(),
        map.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("--reader") => match args.get(2) {
            Some(fd) => read_shared(fd),
            None => Err("usage: shm --reader FD".into()),
        },
        _ => run_parent(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shm example failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_parent() -> Result<(), Box<dyn core::error::Error>> {
    let fd = write_shared()?;
    let status = Command::new(std::env::current_exe()?)
        .arg("--reader")
        .arg(fd.as_raw_fd().to_string())
        .status()?;
    if !status.success() {
        return Err(format!("the reader process failed: {status}").into());
    }
    println!("shared-memory example: ok");
    Ok(())
}
