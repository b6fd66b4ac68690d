//! End-to-end tests of the `hamtdb` binary: every subcommand, round trips of random
//! binary pairs, corruption, locks, bad input, and clean output off a terminal.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use assert_cmd::Command;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use predicates::prelude::*;

fn hamtdb() -> Command {
    assert_cmd::cargo::cargo_bin_cmd!("hamtdb")
}

/// A command on the database at `db`.
fn on(db: &Path) -> Command {
    let mut cmd = hamtdb();
    cmd.arg(db);
    cmd
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("test.db");
    (dir, db)
}

/// splitmix64, so that the random pairs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, max_len: u64) -> Vec<u8> {
        let len = self.next() % (max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Parses JSON Lines of `{"key", "value"}` with `decode` for both fields.
fn parse_jsonl(text: &[u8], decode: impl Fn(&str) -> Vec<u8>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut pairs = BTreeMap::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        let key = decode(v["key"].as_str().unwrap());
        let value = decode(v["value"].as_str().unwrap());
        assert!(pairs.insert(key, value).is_none(), "a key exported twice");
    }
    pairs
}

/// Imports `jsonl` (UTF-8 keys and values) into `db`.
fn import_text(db: &Path, jsonl: &str) {
    on(db)
        .args(["import", "-"])
        .write_stdin(jsonl.to_owned())
        .assert()
        .success()
        .stderr("");
}

#[test]
fn put_get_delete_len() {
    let (_dir, db) = temp();
    on(&db)
        .args(["put", "apple", "red"])
        .assert()
        .success()
        .stdout("")
        .stderr("");
    on(&db).args(["put", "pear", "green"]).assert().success();
    on(&db)
        .args(["get", "apple"])
        .assert()
        .success()
        .stdout("red\n")
        .stderr("");
    on(&db)
        .args(["get", "-n", "apple"])
        .assert()
        .success()
        .stdout("red");
    on(&db)
        .args(["get", "-e", "hex", "6170706c65"])
        .assert()
        .success()
        .stdout("726564\n");
    on(&db)
        .args(["get", "-e", "base64", "YXBwbGU="])
        .assert()
        .success()
        .stdout("cmVk\n");
    // Binary key and value through hex.
    on(&db)
        .args(["put", "-e", "hex", "00ff", "0a0d00"])
        .assert()
        .success();
    on(&db)
        .args(["get", "-e", "hex", "00FF"])
        .assert()
        .success()
        .stdout("0a0d00\n");
    on(&db).arg("len").assert().success().stdout("3\n");
    on(&db)
        .args(["get", "plum"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("key not found"));
    on(&db)
        .args(["delete", "apple"])
        .assert()
        .success()
        .stdout("")
        .stderr("");
    on(&db)
        .args(["delete", "apple"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not found"));
    on(&db).args(["get", "apple"]).assert().code(1);
    on(&db).arg("len").assert().success().stdout("2\n");
}

#[test]
fn bad_encodings_on_the_command_line_are_usage_errors() {
    let (_dir, db) = temp();
    on(&db)
        .args(["put", "-e", "hex", "6b", "zz"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("VALUE `zz` is not valid hex"));
    on(&db)
        .args(["put", "-e", "base64", "!!", "YQ=="])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("KEY `!!` is not valid base64"));
    assert!(!db.exists(), "a refused put created the database");
    on(&db).args(["put", "k"]).assert().code(2);
    on(&db).args(["frobnicate"]).assert().code(2);
    on(&db).args(["scan", "--format", "xml"]).assert().code(2);
    on(&db)
        .args(["import", "-", "--batch", "0"])
        .assert()
        .code(2);
    hamtdb()
        .args(["get", "k"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no database given"));
}

#[test]
fn commands_that_only_read_or_change_never_create_the_database() {
    let (_dir, db) = temp();
    for args in [
        &["get", "k"][..],
        &["len"],
        &["scan"],
        &["stats"],
        &["check"],
        &["export", "-"],
        &["delete", "k"],
        &["compact"],
    ] {
        on(&db)
            .args(args)
            .assert()
            .code(3)
            .stdout("")
            .stderr(predicate::str::contains("no database at"))
            .stderr(predicate::str::contains("hint: create one with"));
        assert!(!db.exists(), "`{}` created the database", args[0]);
    }
    let nested = db.join("nested.db");
    on(&nested)
        .args(["put", "k", "v"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("directory does not exist"));
}

#[test]
fn help_documents_every_subcommand_and_the_exit_codes() {
    hamtdb()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes:"))
        .stdout(predicate::str::contains("4  the database is corrupt"));
    for sub in [
        "put", "get", "delete", "len", "scan", "stats", "check", "compact", "import", "export",
        "bench",
    ] {
        hamtdb()
            .args([sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Usage:"))
            .stdout(predicate::str::contains("Exit codes:"));
    }
}

#[test]
fn scan_formats_and_limit() {
    let (_dir, db) = temp();
    import_text(
        &db,
        "{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"tab\\tkey\",\"value\":\"x\\ny\"}\n",
    );
    on(&db)
        .args(["put", "-e", "hex", "ff", "00"])
        .assert()
        .success();
    let text = on(&db)
        .arg("scan")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let mut lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    assert_eq!(lines, [&b"\\xff\t\\x00"[..], b"a\t1", b"tab\\tkey\tx\\ny"]);

    let hex_out = on(&db)
        .args(["scan", "-f", "hex"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let mut lines: Vec<&[u8]> = hex_out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [&b"61\t31"[..], b"746162096b6579\t780a79", b"ff\t00"]
    );

    // JSON of bytes that are not UTF-8 needs base64 or hex, and says so.
    on(&db)
        .args(["scan", "-f", "json"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("not valid UTF-8"))
        .stderr(predicate::str::contains("--encoding base64"));
    let json = on(&db)
        .args(["scan", "-f", "json", "-e", "base64"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let pairs = parse_jsonl(&json, |s| BASE64.decode(s).unwrap());
    assert_eq!(
        pairs.get(&b"tab\tkey"[..]).map(Vec::as_slice),
        Some(&b"x\ny"[..])
    );
    assert_eq!(pairs.get(&[0xff][..]).map(Vec::as_slice), Some(&[0][..]));

    on(&db)
        .args(["scan", "--limit", "2"])
        .assert()
        .success()
        .stdout(predicate::function(|s: &str| s.lines().count() == 2));
    on(&db)
        .args(["scan", "--limit", "0"])
        .assert()
        .success()
        .stdout("");
}

#[test]
fn stats_table_and_json() {
    let (_dir, db) = temp();
    let lines: String = (0..500)
        .map(|i| format!("{{\"key\":\"key{i}\",\"value\":\"value{i}\"}}\n"))
        .collect();
    import_text(&db, &lines);
    on(&db)
        .arg("stats")
        .assert()
        .success()
        .stderr("")
        .stdout(predicate::str::is_match(r"(?m)^entries\s+500$").unwrap())
        .stdout(predicate::str::contains("depth histogram"))
        .stdout(predicate::str::contains("live"))
        .stdout(predicate::str::contains("dead"))
        .stdout(predicate::str::contains("free"))
        .stdout(predicate::str::contains("file size"))
        .stdout(predicate::str::contains("last txid"));
    let out = on(&db)
        .args(["stats", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["entries"], 500);
    let depths: u64 = v["depth_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap())
        .sum();
    assert_eq!(depths, 500);
    let live: u64 = (0..500)
        .map(|i| format!("key{i}value{i}").len() as u64)
        .sum();
    assert_eq!(v["live_bytes"], live);
    assert_eq!(v["file_size"], std::fs::metadata(&db).unwrap().len());
    assert!(v["last_txid"].as_u64().unwrap() >= 1);
    let used = v["used_end"].as_u64().unwrap();
    // Every byte up to the used end is accounted for, once.
    let part = |name: &str| v[name].as_u64().unwrap();
    let free_below = part("free_bytes") - (part("file_size") - used);
    assert_eq!(
        live + part("slack_bytes") + part("overhead_bytes") + part("dead_bytes") + free_below,
        used
    );
    assert_eq!(part("slack_bytes"), 0, "inline values only");
}

#[test]
fn check_is_clean_on_a_good_database() {
    let (_dir, db) = temp();
    on(&db).args(["put", "a", "1"]).assert().success();
    on(&db)
        .arg("check")
        .assert()
        .success()
        .stderr("")
        .stdout(predicate::str::contains("no problems"));
}

/// A database whose value entry for `victim` (larger than the inline limit, so in an
/// entry of its own) was written by an early commit; later commits made it durable, so
/// opening does not look at it again. Returns the value's entry offset.
fn database_with_a_flipped_value_byte(db: &Path) -> u64 {
    let payload = "VICTIM-PAYLOAD-".repeat(100);
    on(db).args(["put", "victim", &payload]).assert().success();
    for i in 0..3 {
        on(db)
            .args(["put", &format!("later{i}"), "x"])
            .assert()
            .success();
    }
    let mut image = std::fs::read(db).unwrap();
    let at = image
        .windows(payload.len())
        .position(|w| w == payload.as_bytes())
        .expect("the value is in the file");
    // FORMAT.md: an entry is a 32-byte header, then the payload; entries start at
    // multiples of 8.
    let entry = at - 32;
    assert_eq!(entry % 8, 0);
    image[at + 100] ^= 0x55;
    std::fs::write(db, &image).unwrap();
    entry as u64
}

#[test]
fn check_names_the_offset_of_a_flipped_byte_and_exits_1() {
    let (_dir, db) = temp();
    let entry = database_with_a_flipped_value_byte(&db);
    on(&db)
        .arg("check")
        .assert()
        .code(1)
        .stdout(predicate::str::contains(format!(
            "offset {entry}: entry checksum mismatch"
        )))
        .stdout(predicate::str::contains("1 problem"));
}

#[test]
fn a_corrupt_database_is_exit_4_with_its_offset() {
    let (_dir, db) = temp();
    on(&db).args(["put", "a", "1"]).assert().success();
    on(&db).args(["put", "b", "2"]).assert().success();
    // Cut the file just past the meta slots: both point beyond its end.
    let image = std::fs::read(&db).unwrap();
    std::fs::write(&db, &image[..1040]).unwrap();
    for args in [&["get", "a"][..], &["put", "c", "3"], &["scan"], &["stats"]] {
        on(&db)
            .args(args)
            .assert()
            .code(4)
            .stdout("")
            .stderr(predicate::str::is_match(r"is corrupt at offset \d+: ").unwrap())
            .stderr(predicate::str::contains("hamtdb").and(predicate::str::contains("check")));
    }
    // `check` reports it as a problem found.
    on(&db)
        .arg("check")
        .assert()
        .code(1)
        .stdout(predicate::str::is_match(r"offset \d+: .*does not open").unwrap());
    // The refused put did not touch the file.
    assert_eq!(std::fs::read(&db).unwrap(), &image[..1040]);

    let junk = db.with_extension("junk");
    std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
    on(&junk)
        .arg("len")
        .assert()
        .code(4)
        .stderr(predicate::str::contains("not a hamtdb database"));
}

#[test]
fn compact_shows_bytes_before_and_after() {
    let (_dir, db) = temp();
    let lines: String = (0..3000)
        .map(|i| format!("{{\"key\":\"key{i}\",\"value\":\"{}\"}}\n", "v".repeat(600)))
        .collect();
    import_text(&db, &lines);
    let deletes: String = (0..3000)
        .filter(|i| i % 10 != 0)
        .map(|i| format!("{{\"key\":\"key{i}\",\"value\":\"\"}}\n"))
        .collect();
    // Shrink the values to nothing, leaving their old entries to compact away.
    import_text(&db, &deletes);
    let before = std::fs::metadata(&db).unwrap().len();
    let out = on(&db)
        .arg("compact")
        .assert()
        .success()
        .stderr("")
        .get_output()
        .stdout
        .clone();
    let after = std::fs::metadata(&db).unwrap().len();
    assert!(after < before, "{after} < {before}");
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(&format!("({before} -> {after} bytes)")),
        "{out}"
    );
    on(&db).arg("len").assert().success().stdout("3000\n");
    on(&db).arg("check").assert().success();
    on(&db)
        .args(["get", "key10"])
        .assert()
        .success()
        .stdout(format!("{}\n", "v".repeat(600)));
}

type Pair = (Vec<u8>, Vec<u8>);
type Pairs = BTreeMap<Vec<u8>, Vec<u8>>;

/// 10,000 random binary pairs (some keys repeated, some values in entries of their own).
fn random_pairs() -> (Vec<Pair>, Pairs) {
    let mut rng = Rng(0x5eed);
    let mut list = Vec::new();
    for _ in 0..10_000 {
        let key = rng.bytes(24);
        let value = if rng.next().is_multiple_of(20) {
            rng.bytes(2000)
        } else {
            rng.bytes(64)
        };
        list.push((key, value));
    }
    let map = list.iter().cloned().collect();
    (list, map)
}

#[test]
fn import_export_round_trips_10000_random_binary_pairs() {
    let (dir, db) = temp();
    let (list, expected) = random_pairs();
    let input = dir.path().join("in.jsonl");
    let mut text = String::new();
    for (k, v) in &list {
        text += &format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}\n",
            BASE64.encode(k),
            BASE64.encode(v)
        );
    }
    std::fs::write(&input, text).unwrap();
    on(&db)
        .arg("import")
        .arg(&input)
        .args(["--encoding", "base64", "--batch", "1000"])
        .assert()
        .success()
        .stderr("")
        .stdout("imported 10000 pairs in 10 commits\n");
    on(&db)
        .arg("len")
        .assert()
        .success()
        .stdout(format!("{}\n", expected.len()));

    // JSON Lines in hex, to a file.
    let out = dir.path().join("out.jsonl");
    on(&db)
        .arg("export")
        .arg(&out)
        .args(["-e", "hex"])
        .assert()
        .success()
        .stderr("");
    let exported = parse_jsonl(&std::fs::read(&out).unwrap(), unhex);
    assert!(exported == expected, "hex JSON Lines export differs");

    // TSV with backslash escapes through stdout, into a second database through stdin.
    let tsv = on(&db)
        .args(["export", "-", "--format", "tsv"])
        .assert()
        .success()
        .stderr("")
        .get_output()
        .stdout
        .clone();
    assert_eq!(tsv.iter().filter(|&&b| b == b'\n').count(), expected.len());
    let db2 = dir.path().join("copy.db");
    on(&db2)
        .args(["import", "-", "--format", "tsv"])
        .write_stdin(tsv)
        .assert()
        .success()
        .stderr("");
    let again = on(&db2)
        .args(["export", "-", "-e", "base64"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let again = parse_jsonl(&again, |s| BASE64.decode(s).unwrap());
    assert!(again == expected, "TSV round trip differs");

    // The hex scan shows the same pairs.
    let scan = on(&db2)
        .args(["scan", "-f", "hex"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let scanned: BTreeMap<Vec<u8>, Vec<u8>> = String::from_utf8(scan)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (unhex(k), unhex(v))
        })
        .collect();
    assert!(scanned == expected, "hex scan differs");
}

#[test]
fn bad_import_lines_are_reported_with_their_line_numbers() {
    let (dir, db) = temp();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"key\":\"a\",\"value\":\"1\"}\n\
         {\"key\":\"b\",\"value\":\"2\"}\n\
         not json\n\
         {\"key\":\"c\"}\n\
         \n\
         {\"key\":\"d\",\"value\":\"4\"}\n",
    )
    .unwrap();
    // Stops at the first, keeping the lines before it, and says how to resume.
    on(&db)
        .arg("import")
        .arg(&input)
        .assert()
        .code(5)
        .stdout("")
        .stderr(predicate::str::contains("in.jsonl line 3: "))
        .stderr(predicate::str::contains(
            "the 2 pairs before line 3 were imported",
        ))
        .stderr(predicate::str::contains("tail -n +3"))
        .stderr(predicate::str::contains("line 4").not());
    on(&db).arg("len").assert().success().stdout("2\n");

    on(&db)
        .arg("import")
        .arg(&input)
        .arg("--skip-bad")
        .assert()
        .success()
        .stderr(predicate::str::contains("line 3: "))
        .stderr(predicate::str::contains(
            "line 4: column 11: missing field `value` (skipped)",
        ))
        .stdout("imported 3 pairs in 1 commit; skipped 2 bad lines\n");
    on(&db).arg("len").assert().success().stdout("3\n");

    // TSV: no tab, a bad escape, a bad hex digit, a key too large.
    let tsv = format!(
        "k1\tv1\nno tab here\nk2\t\\q\nk3\tv3\n{}\tv\n",
        "x".repeat(70_000)
    );
    on(&db)
        .args(["import", "-", "--format", "tsv", "--skip-bad"])
        .write_stdin(tsv)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "standard input line 2: expected `key<TAB>value`",
        ))
        .stderr(predicate::str::contains(
            "standard input line 3: value: unknown escape",
        ))
        .stderr(predicate::str::contains(
            "standard input line 5: key is 70000 bytes",
        ));
    on(&db)
        .args(["import", "-", "--format", "tsv", "--encoding", "hex"])
        .write_stdin("6b\t76\n6b\tzz\n")
        .assert()
        .code(5)
        .stderr(predicate::str::contains("line 2: value is not valid hex"));
    on(&db).args(["get", "k"]).assert().success().stdout("v\n");
}

#[test]
fn a_locked_database_gives_the_lock_error() {
    let (_dir, db) = temp();
    on(&db).args(["put", "a", "1"]).assert().success();
    {
        // The lock belongs to the open file description: a child process sees it.
        let writer = hamtdb::Db::open(&db).unwrap();
        for args in [
            &["get", "a"][..],
            &["put", "b", "2"],
            &["check"],
            &["export", "-"],
        ] {
            on(&db)
                .args(args)
                .assert()
                .code(3)
                .stdout("")
                .stderr(predicate::str::contains("is locked by another process"));
        }
        writer.close().unwrap();
    }
    {
        // Readers share the file; writers wait for them.
        let reader = hamtdb::Db::builder().read_only(true).open(&db).unwrap();
        on(&db).args(["get", "a"]).assert().success().stdout("1\n");
        on(&db).arg("len").assert().success().stdout("1\n");
        on(&db)
            .args(["put", "b", "2"])
            .assert()
            .code(3)
            .stderr(predicate::str::contains("is locked"));
        drop(reader);
    }
    on(&db).args(["put", "b", "2"]).assert().success();
}

/// Copies `from` to a new file renamed over `to`: the bytes the system holds, in a new
/// inode free of the locks held on the old one.
fn replace_with_copy(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

#[test]
fn a_database_behind_its_commit_log_is_exit_3_until_opened_writable() {
    let (dir, db) = temp();
    on(&db).args(["put", "a", "1"]).assert().success();
    let saved = dir.path().join("saved");
    std::fs::copy(&db, &saved).unwrap();
    // Two durable commits in the log, none of the file's pages: what power loss can leave.
    let writer = hamtdb::Db::open(&db).unwrap();
    writer.put(b"b", b"2").unwrap();
    writer.put(b"c", b"3").unwrap();
    core::mem::forget(writer);
    let log = hamtdb::log_path(&db);
    replace_with_copy(&log, &log);
    replace_with_copy(&saved, &db);
    for args in [&["get", "b"][..], &["len"], &["check"]] {
        on(&db).args(args).assert().code(3).stdout("").stderr(
            predicate::str::contains("commit log").and(predicate::str::contains("writable")),
        );
    }
    on(&db).arg("compact").assert().success();
    on(&db).args(["get", "c"]).assert().success().stdout("3\n");
    on(&db).arg("len").assert().success().stdout("3\n");
}

#[test]
fn nothing_on_stderr_off_a_terminal() {
    // assert_cmd pipes stderr: no progress bars, no summaries there.
    let (dir, db) = temp();
    let lines: String = (0..2000)
        .map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"v{i}\"}}\n"))
        .collect();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, lines).unwrap();
    on(&db)
        .arg("import")
        .arg(&input)
        .assert()
        .success()
        .stderr("");
    let out = dir.path().join("out.tsv");
    on(&db)
        .arg("export")
        .arg(&out)
        .assert()
        .success()
        .stderr("");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2000);
    on(&db).arg("check").assert().success().stderr("");
    on(&db).arg("compact").assert().success().stderr("");
    hamtdb()
        .args([
            "bench",
            "--keys",
            "2000",
            "--gets",
            "2000",
            "--commits",
            "3",
        ])
        .arg("--dir")
        .arg(dir.path())
        .assert()
        .success()
        .stderr("");
}

#[test]
fn bench_prints_ops_per_second_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    hamtdb()
        .args([
            "bench",
            "--keys",
            "3000",
            "--gets",
            "3000",
            "--commits",
            "3",
            "--value-size",
            "700",
        ])
        .arg("--dir")
        .arg(dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("ops/s"))
        .stdout(predicate::str::contains("load"))
        .stdout(predicate::str::contains("random get"))
        .stdout(predicate::str::contains("durable commit"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "bench left files"
    );
    hamtdb()
        .args(["some.db", "bench"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("temporary database"));
}

#[test]
fn export_refuses_to_overwrite_the_database() {
    let (_dir, db) = temp();
    on(&db).args(["put", "a", "1"]).assert().success();
    let before = std::fs::read(&db).unwrap();
    on(&db)
        .arg("export")
        .arg(&db)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is the database itself"));
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    let (_dir, db) = temp();
    let value = "v".repeat(200);
    let lines: String = (0..5000)
        .map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"{value}\"}}\n"))
        .collect();
    import_text(&db, &lines);
    for command in ["scan", "export"] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("hamtdb"))
            .arg(&db)
            .arg(command)
            .args(if command == "export" {
                &["-"][..]
            } else {
                &[][..]
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 100];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{command}: {status:?} {stderr}");
        assert_eq!(stderr, "", "{command}");
    }
}

#[test]
fn key_and_value_round_trip_through_stdin_and_files_with_odd_bytes() {
    let (dir, db) = temp();
    // Every byte value as a key and a value, through TSV's escapes.
    let mut tsv = Vec::new();
    for b in 0..=255u8 {
        let mut field = Vec::new();
        match b {
            b'\\' => field.extend_from_slice(b"\\\\"),
            b'\t' => field.extend_from_slice(b"\\t"),
            b'\n' => field.extend_from_slice(b"\\n"),
            b'\r' => field.extend_from_slice(b"\\r"),
            _ => field.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
        tsv.extend_from_slice(&field);
        tsv.push(b'\t');
        tsv.extend_from_slice(&field);
        tsv.push(b'\n');
    }
    let input = dir.path().join("bytes.tsv");
    std::fs::File::create(&input)
        .unwrap()
        .write_all(&tsv)
        .unwrap();
    on(&db)
        .arg("import")
        .arg(&input)
        .assert()
        .success()
        .stderr("");
    on(&db).arg("len").assert().success().stdout("256\n");
    for b in [0u8, b'\t', 0x7f, 0x80, 0xff] {
        on(&db)
            .args(["get", "-e", "hex", &hex(&[b])])
            .assert()
            .success()
            .stdout(format!("{}\n", hex(&[b])));
    }
}
