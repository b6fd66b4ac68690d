//! `FileRegion` against real files: growth, reopening, syncing, locks across processes,
//! read-only sharing, a full disk, the reservation and `remap`.
//!
//! Tests that need a second process re-run this test binary with the filter
//! `child_process --exact` and the environment variable [`CHILD_ENV`] naming the part to
//! play; [`child_process`] does nothing in a normal run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Barrier;

use hamtdb::{
    FileRegion, FileRegionOptions, GrowthPolicy, OpenError, Region, RegionError, RegionOp,
};

const CHILD_ENV: &str = "HAMTDB_FILE_REGION_TEST_CHILD";
const CHILD_PATH_ENV: &str = "HAMTDB_FILE_REGION_TEST_PATH";

/// Exit codes of the child process.
const CHILD_LOCKED: i32 = 20;
const CHILD_OPENED: i32 = 21;
const CHILD_OPEN_FAILED: i32 = 22;
const CHILD_NO_SPACE_OK: i32 = 30;

const PAGE: u64 = 4096;

fn page() -> u64 {
    let page = rustix::param::page_size() as u64;
    assert_eq!(page % PAGE, 0);
    page
}

/// Options with a small reservation and a small, doubling growth policy.
fn small_options(reservation: u64) -> FileRegionOptions {
    FileRegionOptions::default()
        .reservation(reservation)
        .growth(GrowthPolicy {
            initial: 16 << 10,
            double_until: 1 << 30,
            step: 1 << 30,
            step_divisor: 1,
        })
}

/// A byte pattern that differs per `seed` and per position.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8) | 1)
        .collect()
}

fn write(region: &FileRegion, offset: u64, data: &[u8]) {
    // SAFETY: the tests write only bytes that no live view covers, from one thread.
    unsafe { region.write(offset, data) }.unwrap();
}

fn read(region: &FileRegion, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    region.read(offset, &mut buf).unwrap();
    buf
}

fn spawn_child(role: &str, path: &Path) -> i32 {
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, role)
        .env(CHILD_PATH_ENV, path)
        // The harness's progress lines would interleave with ours; failures go to stderr.
        .stdout(Stdio::null())
        .status()
        .unwrap();
    status
        .code()
        .unwrap_or_else(|| panic!("child {role} was killed: {status}"))
}

/// The other process of the multi-process tests; a no-op unless [`CHILD_ENV`] is set.
#[test]
fn child_process() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let path = PathBuf::from(std::env::var_os(CHILD_PATH_ENV).unwrap());
    let code = match role.as_str() {
        "open" => match FileRegion::open(&path, small_options(1 << 20)) {
            Ok(_) => CHILD_OPENED,
            Err(OpenError::Locked) => CHILD_LOCKED,
            Err(err) => {
                eprintln!("child: open failed: {err}");
                CHILD_OPEN_FAILED
            }
        },
        "file-size-limit" => child_grow_past_file_size_limit(&path),
        other => panic!("unknown child role {other}"),
    };
    std::process::exit(code);
}

#[test]
fn data_survives_five_growth_steps_and_views_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let region = FileRegion::create(&path, small_options(64 << 20)).unwrap();
    let mut len = region.len();
    assert_eq!(len, (16_u64 << 10).next_multiple_of(page()));

    // One pattern per step, each at the start of the space that step added.
    let mut written: Vec<(u64, Vec<u8>)> = vec![(0, pattern(0, 1000))];
    write(&region, 0, &written[0].1);
    let early_view = region.view(0, 1000).unwrap();

    for step in 1..=6_u8 {
        let old = len;
        len = region.grow(old + 1).unwrap();
        assert!(
            len >= 2 * old,
            "step {step}: doubling policy, {old} -> {len}"
        );
        assert_eq!(region.len(), len);
        assert_eq!(fs::metadata(&path).unwrap().len(), len);
        // New space reads as zero.
        let fresh = region.view(old, (len - old) as usize).unwrap();
        assert!(fresh.iter().all(|&b| b == 0), "step {step}: fresh space");
        // Earlier patterns are intact, through both read and view.
        for (offset, data) in &written {
            assert_eq!(&read(&region, *offset, data.len()), data, "step {step}");
            assert_eq!(region.view(*offset, data.len()).unwrap(), &data[..]);
        }
        // The view taken before any growth still reads the same bytes.
        assert_eq!(early_view, &written[0].1[..], "step {step}: early view");
        let data = pattern(step, 777 + usize::from(step));
        write(&region, old, &data);
        assert_eq!(read(&region, old, data.len()), data);
        written.push((old, data));
    }
    assert_eq!(written.len(), 7);
    assert_eq!(early_view, &written[0].1[..]);
    region.sync(0, len).unwrap();
    drop(region);

    // Reopening shows the same length and data.
    let region = FileRegion::open(&path, small_options(64 << 20)).unwrap();
    assert_eq!(region.len(), len);
    for (offset, data) in &written {
        assert_eq!(&read(&region, *offset, data.len()), data);
    }
}

#[test]
fn new_space_reads_zero_and_reopen_keeps_data_and_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let region = FileRegion::open_or_create(&path, small_options(16 << 20)).unwrap();
    let first = region.len();
    write(&region, first - 3, b"end");
    let grown = region.grow(first + 100_000).unwrap();
    assert!(grown >= first + 100_000);
    assert_eq!(grown % page(), 0);
    assert!(
        read(&region, first, (grown - first) as usize)
            .iter()
            .all(|&b| b == 0)
    );
    assert_eq!(
        region.grow(10),
        Ok(grown),
        "growing to less changes nothing"
    );
    write(&region, grown - 4, b"tail");
    region.sync_all().unwrap();
    drop(region);

    // `open_or_create` on an existing file opens it.
    let region = FileRegion::open_or_create(&path, small_options(16 << 20)).unwrap();
    assert_eq!(region.len(), grown);
    assert_eq!(read(&region, first - 3, 3), b"end");
    assert_eq!(read(&region, grown - 4, 4), b"tail");
    assert_eq!(region.path(), path);
    let on_disk = fs::read(&path).unwrap();
    assert_eq!(on_disk.len() as u64, grown);
    assert_eq!(&on_disk[(grown - 4) as usize..], b"tail");
}

#[test]
fn sync_of_a_sub_range_and_out_of_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let region = FileRegion::create(&path, small_options(16 << 20)).unwrap();
    let len = region.len();
    write(&region, 5000, b"synced bytes");
    // An unaligned sub-range inside one page, then one spanning pages.
    assert_eq!(region.sync(5000, 12), Ok(()));
    assert_eq!(region.sync(100, len - 200), Ok(()));
    assert_eq!(
        region.sync(len, 0),
        Ok(()),
        "an empty range at the end is in bounds"
    );
    // After a grow the length changed: the sync takes the `fdatasync` path.
    let grown = region.grow(len + 1).unwrap();
    write(&region, grown - 10, b"new bytes!");
    assert_eq!(region.sync(grown - 10, 10), Ok(()));
    assert_eq!(&fs::read(&path).unwrap()[5000..5012], b"synced bytes");

    assert_eq!(
        region.sync(grown - 1, 2),
        Err(RegionError::out_of_bounds(RegionOp::Sync, grown - 1))
    );
    assert!(matches!(
        region.sync(u64::MAX, 1),
        Err(RegionError::OutOfBounds { .. })
    ));
    assert_eq!(region.sync_all(), Ok(()));
}

#[test]
fn second_open_in_the_same_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let region = FileRegion::create(&path, small_options(1 << 20)).unwrap();
    assert!(matches!(
        FileRegion::open(&path, small_options(1 << 20)),
        Err(OpenError::Locked)
    ));
    assert!(matches!(
        FileRegion::open(&path, small_options(1 << 20).read_only(true)),
        Err(OpenError::Locked)
    ));
    assert!(matches!(
        FileRegion::open_or_create(&path, small_options(1 << 20)),
        Err(OpenError::Locked)
    ));
    drop(region);
    assert!(FileRegion::open(&path, small_options(1 << 20)).is_ok());
}

#[test]
fn lock_is_refused_to_a_child_process_until_the_parent_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let region = FileRegion::create(&path, small_options(1 << 20)).unwrap();
    assert_eq!(spawn_child("open", &path), CHILD_LOCKED);
    drop(region);
    assert_eq!(spawn_child("open", &path), CHILD_OPENED);
}

#[test]
fn read_only_opens_share_the_file_and_exclude_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let region = FileRegion::create(&path, small_options(1 << 20)).unwrap();
    write(&region, 10, b"shared");
    let len = region.len();
    drop(region);

    let read_only = small_options(1 << 20).read_only(true);
    let first = FileRegion::open(&path, read_only).unwrap();
    let second = FileRegion::open(&path, read_only).unwrap();
    assert!(first.is_read_only() && second.is_read_only());
    assert_eq!(first.view(10, 6).unwrap(), b"shared");
    assert_eq!(second.view(10, 6).unwrap(), b"shared");
    assert_eq!(first.len(), len);

    // A writer is refused while a reader holds the file, here and in another process.
    assert!(matches!(
        FileRegion::open(&path, small_options(1 << 20)),
        Err(OpenError::Locked)
    ));
    assert_eq!(spawn_child("open", &path), CHILD_LOCKED);

    // SAFETY: no views of these bytes alive, single thread.
    assert_eq!(unsafe { first.write(0, b"x") }, Err(RegionError::ReadOnly));
    assert_eq!(first.grow(len + 1), Err(RegionError::ReadOnly));
    // SAFETY: no views alive past the new length, single thread.
    assert_eq!(unsafe { first.truncate(0) }, Err(RegionError::ReadOnly));
    assert_eq!(first.sync(0, 16), Ok(()));
    assert_eq!(first.sync_all(), Ok(()));
    assert_eq!(first.len(), len);

    drop(first);
    assert!(matches!(
        FileRegion::open(&path, small_options(1 << 20)),
        Err(OpenError::Locked)
    ));
    drop(second);
    let writer = FileRegion::open(&path, small_options(1 << 20)).unwrap();
    assert_eq!(read(&writer, 10, 6), b"shared");
}

/// Size of the file before the child process tries to grow it past its file-size limit.
const FSIZE_START: u64 = 64 << 10;
/// The child's `RLIMIT_FSIZE`.
const FSIZE_LIMIT: u64 = 256 << 10;
/// What the child can grow to by asking for exactly that (the policy's step is too big).
const FSIZE_EXACT: u64 = 200 << 10;

fn fsize_options() -> FileRegionOptions {
    // Steps of 1 MiB from the start: every policy growth overshoots the limit.
    FileRegionOptions::default()
        .reservation(16 << 20)
        .growth(GrowthPolicy {
            initial: FSIZE_START,
            double_until: 0,
            step: 1 << 20,
            step_divisor: 16,
        })
}

/// Child: under `RLIMIT_FSIZE`, growing past the limit is `NoSpace` and loses nothing.
fn child_grow_past_file_size_limit(path: &Path) -> i32 {
    // SAFETY: `signal` with `SIG_IGN` installs no handler code; the test process is
    // single-threaded here (`--test-threads=1`) and nothing else manages SIGXFSZ.
    let previous = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    assert_ne!(previous, libc::SIG_ERR);
    let limit = rustix::process::getrlimit(rustix::process::Resource::Fsize);
    rustix::process::setrlimit(
        rustix::process::Resource::Fsize,
        rustix::process::Rlimit {
            current: Some(FSIZE_LIMIT),
            maximum: limit.maximum,
        },
    )
    .unwrap();

    let region = FileRegion::open(path, fsize_options()).unwrap();
    assert_eq!(region.len(), FSIZE_START);
    let before = read(&region, 0, FSIZE_START as usize);

    // The policy wants 64 KiB + 1 MiB, past the limit; `grow` falls back to what was asked.
    let exact = FSIZE_EXACT.next_multiple_of(page());
    assert_eq!(region.grow(FSIZE_EXACT), Ok(exact));
    write(&region, exact - 4, b"last");

    // Past the limit even exactly: `NoSpace`, nothing changed.
    let err = region.grow(FSIZE_LIMIT + 1).unwrap_err();
    assert!(
        matches!(err, RegionError::NoSpace { .. }),
        "expected NoSpace, got {err:?}"
    );
    assert_eq!(region.len(), exact);
    assert_eq!(fs::metadata(path).unwrap().len(), exact);
    assert_eq!(read(&region, 0, FSIZE_START as usize), before);
    assert_eq!(read(&region, exact - 4, 4), b"last");
    region.sync_all().unwrap();
    drop(region);

    // Reopened: the same length and data.
    let region = FileRegion::open(path, fsize_options()).unwrap();
    assert_eq!(region.len(), exact);
    assert_eq!(read(&region, 0, FSIZE_START as usize), before);
    assert_eq!(read(&region, exact - 4, 4), b"last");
    CHILD_NO_SPACE_OK
}

#[test]
fn file_size_limit_is_no_space_from_grow_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let region = FileRegion::create(&path, fsize_options()).unwrap();
    assert_eq!(region.len(), FSIZE_START);
    let data = pattern(9, FSIZE_START as usize);
    write(&region, 0, &data);
    region.sync_all().unwrap();
    drop(region);

    assert_eq!(spawn_child("file-size-limit", &path), CHILD_NO_SPACE_OK);

    let region = FileRegion::open(&path, fsize_options()).unwrap();
    let exact = FSIZE_EXACT.next_multiple_of(page());
    assert_eq!(region.len(), exact);
    assert_eq!(read(&region, 0, data.len()), data);
    assert_eq!(read(&region, exact - 4, 4), b"last");
}

/// Unmounts a tmpfs when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_tmpfs_is_no_space_from_grow() {
    if !rustix::process::geteuid().is_root() {
        println!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1M", "tmpfs"])
        .arg(dir.path())
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            println!(
                "skipped: mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(err) => {
            println!("skipped: cannot run mount: {err}");
            return;
        }
    }
    let mount = Tmpfs(dir.path().to_path_buf());
    let path = mount.0.join("db");

    let region = FileRegion::create(&path, small_options(64 << 20)).unwrap();
    let data = pattern(3, 1000);
    write(&region, 0, &data);
    let len = region.grow(512 << 10).unwrap();
    write(&region, len - 4, b"tail");

    let err = region.grow(2 << 20).unwrap_err();
    assert!(
        matches!(err, RegionError::NoSpace { .. }),
        "expected NoSpace, got {err:?}"
    );
    assert_eq!(region.len(), len);
    assert_eq!(fs::metadata(&path).unwrap().len(), len);
    assert_eq!(read(&region, 0, data.len()), data);
    assert_eq!(read(&region, len - 4, 4), b"tail");
    // Every allocated page can be written: no SIGBUS on a full medium.
    write(&region, 0, &vec![0xEE; len as usize]);
    region.sync_all().unwrap();
    drop(region);

    let region = FileRegion::open(&path, small_options(64 << 20)).unwrap();
    assert_eq!(region.len(), len);
    assert!(read(&region, 0, len as usize).iter().all(|&b| b == 0xEE));
    drop(region);
    drop(mount);
}

#[test]
fn growth_past_the_reservation_is_full_until_remap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let reservation = 64 << 10;
    let mut region = FileRegion::create(&path, small_options(reservation)).unwrap();
    assert_eq!(region.reservation(), reservation);
    write(&region, 0, b"before remap");
    assert_eq!(region.grow(reservation), Ok(reservation));
    write(&region, reservation - 5, b"last!");
    assert_eq!(
        region.grow(reservation + 1),
        Err(RegionError::full(reservation + 1))
    );
    assert_eq!(region.len(), reservation);

    assert_eq!(region.remap(1 << 20), Ok(1 << 20));
    assert_eq!(region.reservation(), 1 << 20);
    assert_eq!(region.len(), reservation);
    assert_eq!(read(&region, 0, 12), b"before remap");
    assert_eq!(read(&region, reservation - 5, 5), b"last!");
    let grown = region.grow(reservation + 1).unwrap();
    assert!(grown > reservation && grown <= 1 << 20);
    assert!(
        read(&region, reservation, (grown - reservation) as usize)
            .iter()
            .all(|&b| b == 0)
    );
    write(&region, grown - 1, b"z");
    // A reservation below the length is raised to the length.
    assert_eq!(region.remap(1), Ok(grown));
    assert_eq!(read(&region, grown - 1, 1), b"z");
    assert!(matches!(
        region.grow(grown + 1),
        Err(RegionError::Full { .. })
    ));

    // A file longer than the reservation asked for is mapped whole.
    drop(region);
    let region = FileRegion::open(&path, small_options(4096)).unwrap();
    assert_eq!(region.reservation(), grown);
    assert_eq!(read(&region, 0, 12), b"before remap");
}

#[test]
fn out_of_bounds_read_write_and_view_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let region = FileRegion::create(dir.path().join("db"), small_options(1 << 20)).unwrap();
    let len = region.len();
    let oob = RegionError::out_of_bounds;
    let view = RegionOp::View;
    assert_eq!(region.view(len - 1, 2).err(), Some(oob(view, len - 1)));
    assert_eq!(region.view(len, 1).err(), Some(oob(view, len)));
    assert_eq!(region.view(len, 0).map(<[u8]>::len), Ok(0));
    // Inside the reservation but past the file: refused, never touched.
    assert_eq!(
        region.view(len + 4096, 1).err(),
        Some(oob(view, len + 4096))
    );
    assert_eq!(
        region.read(len - 2, &mut [0; 3]),
        Err(oob(RegionOp::Read, len - 2))
    );
    assert!(region.read(u64::MAX, &mut [0; 2]).is_err());
    // SAFETY: no views alive, single thread.
    let refused = unsafe { region.write(len - 1, b"ab") };
    assert_eq!(refused, Err(oob(RegionOp::Write, len - 1)));
    // SAFETY: no views alive, single thread.
    assert!(unsafe { region.write(u64::MAX - 1, b"abc") }.is_err());
    // Nothing was written by the refused calls.
    assert_eq!(read(&region, len - 2, 2), [0, 0]);
}

#[test]
fn truncate_releases_the_tail_and_regrowth_reads_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let page = page();
    let region = FileRegion::create(&path, small_options(1 << 20)).unwrap();
    region.grow(4 * page).unwrap();
    write(&region, 0, &vec![7; 4 * page as usize]);
    // SAFETY: no views alive, single thread.
    assert_eq!(unsafe { region.truncate(page + 1) }, Ok(2 * page));
    assert_eq!(region.len(), 2 * page);
    assert_eq!(fs::metadata(&path).unwrap().len(), 2 * page);
    assert!(region.view(2 * page, 1).is_err());
    region.sync(0, 1).unwrap();
    region.grow(4 * page).unwrap();
    assert!(read(&region, 0, 2 * page as usize).iter().all(|&b| b == 7));
    assert!(
        read(&region, 2 * page, 2 * page as usize)
            .iter()
            .all(|&b| b == 0)
    );
    // Truncating to more than the length changes nothing.
    let len = region.len();
    // SAFETY: no views alive, single thread.
    assert_eq!(unsafe { region.truncate(len + 1) }, Ok(len));
}

#[test]
fn readers_keep_their_views_while_a_writer_grows() {
    let dir = tempfile::tempdir().unwrap();
    let region = FileRegion::create(dir.path().join("db"), small_options(64 << 20)).unwrap();
    let head = pattern(42, 4096);
    write(&region, 0, &head);
    let start = region.len();
    let readers = 4;
    let views_taken = Barrier::new(readers + 1);
    std::thread::scope(|scope| {
        for _ in 0..readers {
            scope.spawn(|| {
                let view = region.view(0, head.len()).unwrap();
                views_taken.wait();
                for _ in 0..200 {
                    assert_eq!(view, &head[..]);
                    // The length only grows; the writer never touches the first `start`
                    // bytes, so reading them races with nothing.
                    assert!(region.len() >= start);
                    assert_eq!(&read(&region, 0, head.len()), &head);
                    assert!(region.view(4096, (start - 4096) as usize).is_ok());
                    std::thread::yield_now();
                }
            });
        }
        views_taken.wait();
        let mut len = start;
        for step in 0..8_u8 {
            let old = len;
            len = region.grow(old + 1).unwrap();
            // Only space no reader can see yet (above the old length) is written.
            write(&region, old, &[step; 64]);
        }
    });
    assert_eq!(read(&region, 0, head.len()), head);
    assert!(region.len() >= start << 8);
}

#[test]
fn pwrite_mode_writes_through_the_file_and_views_see_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let options = small_options(1 << 20).pwrite(true);
    let region = FileRegion::create(&path, options).unwrap();
    region.grow(40 << 10).unwrap();
    let data = pattern(3, 5000);
    write(&region, 3000, &data);
    // The map sees what `pwrite` put in the page cache.
    assert_eq!(region.view(3000, data.len()).unwrap(), &data[..]);
    assert_eq!(read(&region, 2990, 10), vec![0; 10]);
    region.sync(3000, data.len() as u64).unwrap();
    // Past the length is refused as in the mapped mode.
    // SAFETY: no views are alive.
    let beyond = unsafe { region.write(region.len() - 1, &[1, 2]) };
    assert!(matches!(beyond, Err(RegionError::OutOfBounds { .. })));
    drop(region);
    let region = FileRegion::open(&path, small_options(1 << 20)).unwrap();
    assert_eq!(read(&region, 3000, data.len()), data);
}
