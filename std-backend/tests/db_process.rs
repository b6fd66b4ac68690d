//! `Db` across processes: SIGKILL at random moments while committing, a full disk (a
//! small tmpfs, and `RLIMIT_FSIZE`), locks between processes, and eventual commits that
//! a flush made durable before the process died.
//!
//! Tests that need a second process re-run this test binary with the filter
//! `child_process --exact` and the environment variable [`CHILD_ENV`] naming the part to
//! play; [`child_process`] does nothing in a normal run.

use core::time::Duration;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use hamtdb::{Db, DbError, Durability};

mod common;
use common::{Rng, small_growth};

const CHILD_ENV: &str = "HAMTDB_DB_TEST_CHILD";
const CHILD_PATH_ENV: &str = "HAMTDB_DB_TEST_PATH";

/// Exit codes of the child process.
const CHILD_LOCKED: i32 = 20;
const CHILD_OPENED: i32 = 21;
const CHILD_OPEN_FAILED: i32 = 22;
const CHILD_DONE: i32 = 23;

fn child_command(role: &str, path: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, role)
        .env(CHILD_PATH_ENV, path);
    command
}

/// Runs a child to its end; its exit code.
fn run_child(role: &str, path: &Path) -> i32 {
    let status = child_command(role, path)
        // The harness's progress lines would interleave with ours; failures go to stderr.
        .stdout(Stdio::null())
        .status()
        .unwrap();
    status
        .code()
        .unwrap_or_else(|| panic!("child {role} was killed: {status}"))
}

/// Starts a child whose stdout the caller reads.
fn spawn_piped(role: &str, path: &Path) -> Child {
    child_command(role, path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Kills a child when dropped (a failing test must not leave it running).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One line the child wrote, whole (a line cut by the kill is not counted). The test
/// harness may print its own text before ours on the same line, so the tag is searched.
fn tagged(line: &str, tag: &str) -> Option<u64> {
    let line = line.strip_suffix('\n')?;
    let at = line.find(tag)?;
    line[at + tag.len()..].trim().parse().ok()
}

/// Reads the child's stdout on a thread: every whole line goes to the channel.
fn read_lines(child: &mut Child) -> (mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.ends_with('\n') => {
                    let _ = tx.send(line.clone());
                }
                Ok(_) => {}
            }
        }
    });
    (rx, reader)
}

/// A line on stdout, written whole and flushed at once.
fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("\n{line}\n").as_bytes()).unwrap();
    out.flush().unwrap();
}

/// The other process of the multi-process tests; a no-op unless [`CHILD_ENV`] is set.
#[test]
fn child_process() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let path = PathBuf::from(std::env::var_os(CHILD_PATH_ENV).unwrap());
    let code = match role.as_str() {
        "open" => child_open(&path, false),
        "open-read-only" => child_open(&path, true),
        "kill-writer" => child_kill_writer(&path),
        "create" => child_create(&path),
        "eventual-writer" => child_eventual_writer(&path),
        "file-size-limit" => child_fill_to_file_size_limit(&path),
        other => panic!("unknown child role {other}"),
    };
    std::process::exit(code);
}

// ---------------------------------------------------------------------------------------
// Locks across processes.

/// Child: opens the database; a read-only open also checks its contents and that
/// writes are refused.
fn child_open(path: &Path, read_only: bool) -> i32 {
    match Db::builder().read_only(read_only).open(path) {
        Ok(db) => {
            assert_eq!(db.get_owned(b"owner").unwrap(), Some(b"parent".to_vec()));
            if read_only {
                assert!(matches!(db.put(b"k", b"v"), Err(DbError::ReadOnly)));
                assert!(matches!(db.delete(b"owner"), Err(DbError::ReadOnly)));
                assert!(matches!(db.begin_write(), Err(DbError::ReadOnly)));
                assert!(db.check().is_ok());
            }
            db.close().unwrap();
            CHILD_OPENED
        }
        Err(DbError::Locked) => CHILD_LOCKED,
        Err(err) => {
            eprintln!("child: open failed: {err}");
            CHILD_OPEN_FAILED
        }
    }
}

#[test]
fn a_writer_excludes_other_processes_until_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::open(&path).unwrap();
    db.put(b"owner", b"parent").unwrap();
    assert_eq!(run_child("open", &path), CHILD_LOCKED);
    assert_eq!(run_child("open-read-only", &path), CHILD_LOCKED);
    db.close().unwrap();
    assert_eq!(run_child("open", &path), CHILD_OPENED);

    let db = Db::open(&path).unwrap();
    assert_eq!(run_child("open", &path), CHILD_LOCKED);
    drop(db);
    assert_eq!(run_child("open-read-only", &path), CHILD_OPENED);
}

#[test]
fn read_only_opens_share_the_file_across_processes_and_exclude_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::open(&path).unwrap();
    db.put(b"owner", b"parent").unwrap();
    db.close().unwrap();

    let reader = Db::builder().read_only(true).open(&path).unwrap();
    let second_reader = Db::builder().read_only(true).open(&path).unwrap();
    // Another process reads at the same time; writers are refused everywhere.
    assert_eq!(run_child("open-read-only", &path), CHILD_OPENED);
    assert_eq!(run_child("open", &path), CHILD_LOCKED);
    assert!(matches!(Db::open(&path), Err(DbError::Locked)));
    assert!(matches!(reader.put(b"k", b"v"), Err(DbError::ReadOnly)));
    assert_eq!(
        reader.get_owned(b"owner").unwrap(),
        Some(b"parent".to_vec())
    );
    drop(second_reader);
    assert_eq!(run_child("open", &path), CHILD_LOCKED);
    reader.close().unwrap();
    assert_eq!(run_child("open", &path), CHILD_OPENED);
}

// ---------------------------------------------------------------------------------------
// SIGKILL while committing.

/// Child: creates a new database (to be killed while it does).
fn child_create(path: &Path) -> i32 {
    report("CREATING 0");
    let db = Db::builder().seed(3).open(path).unwrap();
    db.put(b"created", b"yes").unwrap();
    report("CREATED 0");
    db.close().unwrap();
    CHILD_DONE
}

#[test]
fn sigkill_while_creating_leaves_a_database_that_opens() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0xc0ffee);
    let (mut absent, mut blank, mut complete) = (0, 0, 0);
    for round in 0..30 {
        let path = dir.path().join(format!("new{round}.db"));
        let mut child = spawn_piped("create", &path);
        let (lines, reader) = read_lines(&mut child);
        let mut child = KillOnDrop(child);
        loop {
            let line = lines.recv_timeout(Duration::from_secs(30)).unwrap();
            if tagged(&line, "CREATING ").is_some() {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(12_000)));
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        reader.join().unwrap();
        if !path.exists() {
            absent += 1;
            continue;
        }
        // Whatever the kill left, the path opens: as the new database, or as an empty
        // one if the creation never committed.
        let db = Db::open(&path).unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert!(db.check().is_ok());
        match db.get_owned(b"created").unwrap() {
            Some(v) => {
                assert_eq!(v, b"yes");
                complete += 1;
            }
            None => {
                assert!(db.is_empty());
                blank += 1;
            }
        }
        db.put(b"after", b"the crash").unwrap();
        db.close().unwrap();
        let db = Db::open(&path).unwrap();
        assert_eq!(db.get_owned(b"after").unwrap(), Some(b"the crash".to_vec()));
    }
    eprintln!(
        "kill while creating: {absent} no file, {blank} left before the first commit, \
         {complete} complete"
    );
}

/// Commits the kill test makes before the child stops by itself (it is killed long
/// before).
const KILL_WRITER_MAX: u64 = 100_000;

fn commit_key(n: u64, j: usize) -> Vec<u8> {
    format!("c/{n}/{j}").into_bytes()
}

/// Value `j` of commit `n`: 16 bytes, 300 (inline) and 1000 (an entry of its own).
fn commit_value(n: u64, j: usize) -> Vec<u8> {
    let len = [16, 300, 1000][j];
    let mut v = n.to_le_bytes().to_vec();
    v.extend((8..len).map(|i| (n as u8).wrapping_mul(3) ^ (i as u8) ^ j as u8));
    v
}

fn tmp_key(n: u64) -> Vec<u8> {
    format!("tmp/{n}").into_bytes()
}

fn counter(db: &Db) -> u64 {
    db.get(b"counter")
        .unwrap()
        .map_or(0, |v| u64::from_le_bytes(v[..].try_into().unwrap()))
}

/// Child: commit after commit, each one transaction that sets `counter` to `n`, adds
/// three keys of its own, rewrites three shared `last/j` keys and moves the `tmp` key;
/// every 10th also compacts. Writes `ACK n` once `n` is committed.
fn child_kill_writer(path: &Path) -> i32 {
    let db = Db::builder().growth(small_growth()).open(path).unwrap();
    let start = counter(&db);
    report(&format!("READY {start}"));
    for n in start + 1..=start + KILL_WRITER_MAX {
        let mut txn = db.begin_write().unwrap();
        txn.put(b"counter", &n.to_le_bytes()).unwrap();
        for j in 0..3 {
            assert!(txn.put(&commit_key(n, j), &commit_value(n, j)).unwrap());
            txn.put(format!("last/{j}").as_bytes(), &commit_value(n, j))
                .unwrap();
        }
        assert!(txn.put(&tmp_key(n), &n.to_le_bytes()).unwrap());
        assert_eq!(txn.delete(&tmp_key(n - 1)).unwrap(), n > 1);
        txn.commit().unwrap();
        report(&format!("ACK {n}"));
        if n % 10 == 0 {
            db.compact().unwrap();
        }
    }
    CHILD_DONE
}

/// Verifies the database after a kill: every commit up to the counter complete, none
/// after it, no part of a later one. Returns the counter.
fn verify_commits(db: &Db, from: u64) -> u64 {
    let report = db.check();
    assert!(report.is_ok(), "{:?}", report.problems);
    let c = counter(db);
    // `counter`, three keys per commit, `last/0..3`, `tmp/c`.
    let expected_len = if c == 0 { 0 } else { 1 + 3 * c + 3 + 1 };
    assert_eq!(db.len(), expected_len, "counter {c}");
    for n in from.max(1)..=c {
        for j in 0..3 {
            assert_eq!(
                db.get(&commit_key(n, j)).unwrap().as_deref(),
                Some(&commit_value(n, j)[..]),
                "commit {n} key {j} (counter {c})"
            );
        }
    }
    for j in 0..3 {
        assert!(!db.contains_key(&commit_key(c + 1, j)).unwrap());
        if c > 0 {
            assert_eq!(
                db.get_owned(format!("last/{j}").as_bytes()).unwrap(),
                Some(commit_value(c, j)),
                "a part of a transaction (counter {c})"
            );
        }
    }
    if c > 0 {
        assert_eq!(
            db.get_owned(&tmp_key(c)).unwrap(),
            Some(c.to_le_bytes().to_vec())
        );
        assert!(!db.contains_key(&tmp_key(c - 1)).unwrap());
    }
    c
}

#[test]
fn sigkill_while_committing_loses_no_acknowledged_commit() {
    const ROUNDS: u32 = 100;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kill.db");
    // Created here: a kill in the middle of creating the file is not what this tests.
    Db::builder()
        .growth(small_growth())
        .open(&path)
        .unwrap()
        .close()
        .unwrap();
    let mut rng = Rng(0xdead_beef);
    let mut recovered = 0u64;
    let (mut total_acked, mut killed_before_ready, mut killed_mid_ack) = (0u64, 0, 0);
    let started = Instant::now();
    for round in 0..ROUNDS {
        let mut child = spawn_piped("kill-writer", &path);
        let (lines, reader) = read_lines(&mut child);
        let mut child = KillOnDrop(child);
        let mut acks = Vec::new();
        let mut ready = None;
        let take = |line: String, acks: &mut Vec<u64>, ready: &mut Option<u64>| {
            if let Some(n) = tagged(&line, "ACK ") {
                acks.push(n);
            } else if let Some(c) = tagged(&line, "READY ") {
                *ready = Some(c);
            }
        };
        match rng.below(4) {
            // Anywhere: while the binary starts, while `Db::open` recovers, or later.
            0 => std::thread::sleep(Duration::from_micros(rng.below(40_000))),
            // After a number of acknowledged commits.
            1 => {
                let want = 1 + rng.below(20) as usize;
                while acks.len() < want {
                    let line = lines
                        .recv_timeout(Duration::from_secs(30))
                        .expect("the child stopped writing");
                    take(line, &mut acks, &mut ready);
                }
                std::thread::sleep(Duration::from_micros(rng.below(3000)));
            }
            // A while after the open.
            _ => {
                while ready.is_none() {
                    let line = lines
                        .recv_timeout(Duration::from_secs(30))
                        .expect("the child did not open the database");
                    take(line, &mut acks, &mut ready);
                }
                std::thread::sleep(Duration::from_micros(rng.below(60_000)));
            }
        }
        child.0.kill().unwrap();
        let status = child.0.wait().unwrap();
        assert!(
            status.code().is_none(),
            "the child ended by itself: {status}"
        );
        reader.join().unwrap();
        for line in lines.try_iter() {
            take(line, &mut acks, &mut ready);
        }

        // What the child reported is consistent with what the last round recovered.
        match ready {
            Some(c) => assert_eq!(c, recovered, "round {round}: the child started elsewhere"),
            None => {
                assert!(acks.is_empty());
                killed_before_ready += 1;
            }
        }
        for (i, &n) in acks.iter().enumerate() {
            assert_eq!(
                n,
                recovered + 1 + i as u64,
                "round {round}: acks out of order"
            );
        }
        let last_acked = acks.last().copied().unwrap_or(recovered);
        total_acked += acks.len() as u64;

        // Reopen: nothing acknowledged lost, nothing partial.
        if round % 2 == 1 {
            // A read-only open after a crash sees the same state as a writable one.
            let db = Db::builder().read_only(true).open(&path).unwrap();
            assert!(db.check().is_ok());
            let c = counter(&db);
            assert!(c == last_acked || c == last_acked + 1);
            db.close().unwrap();
        }
        let db = Db::open(&path).unwrap();
        let from = if round % 10 == 9 { 1 } else { recovered };
        let c = verify_commits(&db, from);
        assert!(
            c == last_acked || c == last_acked + 1,
            "round {round}: recovered counter {c}, last acknowledged {last_acked}"
        );
        if c > last_acked {
            // Committed, killed before it said so.
            killed_mid_ack += 1;
        }
        recovered = c;
        db.close().unwrap();
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(verify_commits(&db, 1), recovered);
    eprintln!(
        "kill test: {ROUNDS} SIGKILL rounds, {total_acked} acknowledged commits ({recovered} \
         recovered in all), {killed_before_ready} kills before the open finished, \
         {killed_mid_ack} commits found that were not yet acknowledged, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(total_acked >= u64::from(ROUNDS) / 4);
}

// ---------------------------------------------------------------------------------------
// Eventual durability, flush, then the process dies.

const EVENTUAL_FLUSHED: u64 = 200;

fn eventual_key(i: u64) -> Vec<u8> {
    format!("e{i:06}").into_bytes()
}

/// Child: eventual commits, a flush, more eventual commits, then waits to be killed.
fn child_eventual_writer(path: &Path) -> i32 {
    let db = Db::builder()
        .durability(Durability::Eventual)
        .open(path)
        .unwrap();
    for i in 0..EVENTUAL_FLUSHED {
        db.put(&eventual_key(i), &[i as u8; 100]).unwrap();
    }
    db.flush().unwrap();
    report(&format!("FLUSHED {EVENTUAL_FLUSHED}"));
    for i in EVENTUAL_FLUSHED..EVENTUAL_FLUSHED * 10 {
        db.put(&eventual_key(i), &[i as u8; 100]).unwrap();
    }
    report("WRITTEN 0");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn flushed_eventual_commits_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut rng = Rng(11);
    for round in 0..3 {
        let _ = std::fs::remove_file(&path);
        let mut child = spawn_piped("eventual-writer", &path);
        let (lines, reader) = read_lines(&mut child);
        let mut child = KillOnDrop(child);
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .expect("the child did not flush");
            if tagged(&line, "FLUSHED ").is_some() {
                break;
            }
        }
        if round == 2 {
            loop {
                let line = lines.recv_timeout(Duration::from_secs(30)).unwrap();
                if tagged(&line, "WRITTEN ").is_some() {
                    break;
                }
            }
        } else {
            std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        reader.join().unwrap();

        let db = Db::open(&path).unwrap();
        assert!(db.check().is_ok());
        // Everything flushed, and of the rest a prefix: each put was a commit.
        let n = db.len();
        assert!(n >= EVENTUAL_FLUSHED, "round {round}: only {n} keys");
        for i in 0..n {
            assert_eq!(
                db.get_owned(&eventual_key(i)).unwrap(),
                Some(vec![i as u8; 100])
            );
        }
        assert!(!db.contains_key(&eventual_key(n)).unwrap());
        eprintln!("eventual kill round {round}: {n} of 2000 eventual commits visible");
        db.close().unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// A full disk.

fn fill_key(i: u64) -> Vec<u8> {
    format!("fill/{i:06}").into_bytes()
}

fn fill_value(i: u64) -> Vec<u8> {
    let len = 700 + (i as usize * 131) % 1200;
    (0..len).map(|j| (j as u8) ^ (i as u8)).collect()
}

/// Puts until a put fails; the acknowledged pairs and the error.
fn fill(db: &Db, acked: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> DbError {
    for i in acked.len() as u64.. {
        match db.put(&fill_key(i), &fill_value(i)) {
            Ok(new) => {
                assert!(new);
                acked.insert(fill_key(i), fill_value(i));
            }
            Err(err) => return err,
        }
        assert!(i < 1_000_000, "the disk never filled");
    }
    unreachable!()
}

fn assert_exactly(db: &Db, acked: &BTreeMap<Vec<u8>, Vec<u8>>) {
    let report = db.check();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(db.len(), acked.len() as u64);
    let mut pairs = db.iter().unwrap();
    pairs.sort();
    assert!(
        pairs.iter().map(|(k, v)| (k, v)).eq(acked.iter()),
        "contents differ from what was acknowledged"
    );
}

/// After the first `NoSpace`: more writes fail cleanly (or fit), nothing is lost, and
/// what was acknowledged is exactly what a reopen shows. Returns how many later writes
/// failed.
fn after_no_space(db: &Db, acked: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> usize {
    assert_exactly(db, acked);
    let mut failures = 0;
    for _ in 0..5 {
        let i = acked.len() as u64;
        match db.put(&fill_key(i), &fill_value(i)) {
            Ok(_) => {
                acked.insert(fill_key(i), fill_value(i));
            }
            Err(err) => {
                assert!(err.is_no_space(), "{err:?}");
                failures += 1;
            }
        }
    }
    // A large transaction fails as a whole.
    let mut txn = db.begin_write().unwrap();
    let mut failed = false;
    for i in 0..200 {
        if let Err(err) = txn.put(format!("txn/{i}").as_bytes(), &[7; 4000]) {
            assert!(err.is_no_space(), "{err:?}");
            failed = true;
            break;
        }
    }
    if failed {
        txn.abort();
    } else {
        let err = txn.commit().unwrap_err();
        assert!(err.is_no_space(), "{err:?}");
    }
    assert!(!db.contains_key(b"txn/0").unwrap());
    assert_exactly(db, acked);
    failures
}

/// Child: under a file-size limit, fills the database to the limit.
fn child_fill_to_file_size_limit(path: &Path) -> i32 {
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

    let db = Db::builder()
        .growth(small_growth())
        .seed(1)
        .open(path)
        .unwrap();
    let mut acked = BTreeMap::new();
    let err = fill(&db, &mut acked);
    assert!(err.is_no_space(), "expected no space, got {err:?}");
    let failures = after_no_space(&db, &mut acked);
    assert!(failures > 0);
    db.close().unwrap();
    let db = Db::open(path).unwrap();
    assert_exactly(&db, &acked);
    drop(db);
    report(&format!("ACKED {}", acked.len()));
    CHILD_DONE
}

const FSIZE_LIMIT: u64 = 512 << 10;

#[test]
fn file_size_limit_is_no_space_and_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut child = spawn_piped("file-size-limit", &path);
    let (lines, reader) = read_lines(&mut child);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert_eq!(status.code(), Some(CHILD_DONE), "{status}");
    let acked = lines
        .try_iter()
        .find_map(|line| tagged(&line, "ACKED "))
        .expect("the child reported nothing");

    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len <= FSIZE_LIMIT, "{len}");
    let db = Db::open(&path).unwrap();
    let expected = (0..acked).map(|i| (fill_key(i), fill_value(i))).collect();
    assert_exactly(&db, &expected);
    eprintln!(
        "RLIMIT_FSIZE {FSIZE_LIMIT} B: {acked} puts acknowledged before no space, file {len} B"
    );
    // Without the limit, writing goes on.
    db.put(b"more", &[1; 100_000]).unwrap();
    assert!(db.check().is_ok());
}

/// Unmounts a tmpfs when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Option<Tmpfs> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return None;
    }
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output();
    match mounted {
        Ok(out) if out.status.success() => Some(Tmpfs(dir.to_path_buf())),
        Ok(out) => {
            eprintln!(
                "skipped: mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        Err(err) => {
            eprintln!("skipped: cannot run mount: {err}");
            None
        }
    }
}

#[test]
fn full_tmpfs_is_no_space_and_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mount) = mount_tmpfs(dir.path(), "2M") else {
        return;
    };
    let path = mount.0.join("db");
    let db = Db::builder()
        .growth(small_growth())
        .reservation(64 << 20)
        .seed(2)
        .open(&path)
        .unwrap();
    let mut acked = BTreeMap::new();
    let err = fill(&db, &mut acked);
    assert!(err.is_no_space(), "expected no space, got {err:?}");
    let first_failure = acked.len();
    let failures = after_no_space(&db, &mut acked);
    assert!(failures > 0);
    let len = std::fs::metadata(&path).unwrap().len();

    // No room for a new database either; the half-made file is removed.
    let other = mount.0.join("other");
    let new_db = match Db::open(&other) {
        Err(err) => {
            assert!(err.is_no_space(), "{err:?}");
            assert!(!other.exists());
            "no space".to_string()
        }
        // The disk had room for the new file's first 64 KiB after all.
        Ok(db) => {
            drop(db);
            std::fs::remove_file(&other).unwrap();
            "it fit".to_string()
        }
    };

    db.close().unwrap();
    let db = Db::open(&path).unwrap();
    assert_exactly(&db, &acked);
    // Still full: the reopened database fails cleanly too.
    let more = after_no_space(&db, &mut acked);

    // Deleting makes room again (possibly only after some retries, once the space the
    // deletes free is reusable).
    let mut deleted = 0;
    let keys: Vec<Vec<u8>> = acked.keys().step_by(2).cloned().collect();
    let mut delete_failures = 0;
    for k in keys {
        match db.delete(&k) {
            Ok(found) => {
                assert!(found);
                acked.remove(&k);
                deleted += 1;
            }
            Err(err) => {
                assert!(err.is_no_space(), "{err:?}");
                delete_failures += 1;
            }
        }
    }
    assert_exactly(&db, &acked);
    let i = 1_000_000;
    // The failed write can be retried now that there is room.
    assert!(db.put(&fill_key(i), &fill_value(i)).unwrap());
    acked.insert(fill_key(i), fill_value(i));
    db.close().unwrap();
    let db = Db::open(&path).unwrap();
    assert_exactly(&db, &acked);
    eprintln!(
        "tmpfs 2M full: first no-space after {first_failure} puts (file {len} B), then \
         {failures}/5 and {more}/5 further puts failed cleanly (a new database: {new_db}); \
         {deleted} deletes ok, {delete_failures} failed; a put after deleting succeeded",
    );
    assert!(deleted > 0, "nothing could be deleted on a full disk");
    drop(db);
    drop(mount);
}
