//! The rails around writing an output and reading an input: page sizes that
//! keep the trailer rule, existing outputs, rules that match nothing, the bump
//! bound, stale temporary files, SIGINT/SIGTERM during a write, and errors that
//! say what a path is (one message each, exit 2).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use etcdsnap_testkit::{scratch, EtcdVersion};
use large_input::{large_input, OLD_LATEST};
use serde_json::Value;

mod large_input;

fn etcdsnap<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap")).args(args).stdin(Stdio::null()).output().unwrap()
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// Runs etcdsnap, asserts the exit code, returns (stdout, stderr).
fn run(args: &[String], code: i32) -> (String, String) {
    let o = etcdsnap(args);
    let (out, err) = (String::from_utf8_lossy(&o.stdout).to_string(), String::from_utf8_lossy(&o.stderr).to_string());
    assert_eq!(o.status.code(), Some(code), "etcdsnap {args:?}\nstdout: {out}\nstderr: {err}");
    (out, err)
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

/// A refusal: exit 2, one line on stderr, nothing on stdout; returns the line.
fn refused(a: &[String]) -> String {
    let (out, err) = run(a, 2);
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "one message: {err}");
    err
}

fn snapshot() -> PathBuf {
    EtcdVersion::V3_5_1.fixture_snapshot()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    v.sort();
    v
}

fn assert_trailer_rule(file: &Path) {
    let len = std::fs::metadata(file).unwrap().len();
    assert_eq!(len % 512, 32, "{}: size {len} breaks the trailer rule", file.display());
    let (out, _) = run(&args(&["verify", "--require-trailer", "--json", &s(file)]), 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["trailer"], "valid", "{v}");
}

#[test]
fn page_size_must_be_a_power_of_two() {
    let dir = scratch("rails-page-size");
    let out = dir.join("out.db");
    for (cmd, size) in [(&["rewrite"][..], "6000"), (&["bolt", "compact"][..], "3000"), (&["rewrite"][..], "512")] {
        let mut a = args(cmd);
        a.extend(args(&[&s(&snapshot()), &s(&out), "--page-size", size]));
        let e = refused(&a);
        assert!(e.contains("--page-size must be a power of two") && e.contains("% 512 == 32"), "{e}");
        assert!(e.contains(&format!("got {size}")), "{e}");
    }
    assert!(names(&dir).is_empty(), "nothing written: {:?}", names(&dir));
    for (cmd, size) in [(&["rewrite"][..], "8192"), (&["bolt", "compact"][..], "2048")] {
        let out = dir.join(format!("{size}.db"));
        let mut a = args(cmd);
        a.extend(args(&[&s(&snapshot()), &s(&out), "--page-size", size, "--json"]));
        run(&a, 0);
        assert_trailer_rule(&out);
    }
}

#[test]
fn existing_output_needs_force() {
    let dir = scratch("rails-force");
    let out = dir.join("out.db");
    std::fs::write(&out, b"precious").unwrap();
    for cmd in [&["rewrite"][..], &["bolt", "compact"]] {
        let mut a = args(cmd);
        a.extend(args(&[&s(&snapshot()), &s(&out)]));
        let e = refused(&a);
        assert!(e.contains(&format!("{}: output file exists (pass --force to replace it)", out.display())), "{e}");
        assert_eq!(std::fs::read(&out).unwrap(), b"precious");
        assert_eq!(names(&dir), vec!["out.db"]);
        a.push("--force".into());
        run(&a, 0);
        assert_trailer_rule(&out);
        std::fs::write(&out, b"precious").unwrap();
    }
}

#[test]
fn rules_that_match_nothing_are_errors() {
    let dir = scratch("rails-empty-rules");
    let out = dir.join("out.db");
    let typo = ["--include", "/tenant-x/", "--keep-key", "compact_rev_key"];
    let mut a = args(&["rewrite", &s(&snapshot()), &s(&out)]);
    a.extend(args(&typo));
    let e = refused(&a);
    assert!(e.contains("--include /tenant-x/ matched no key in 1217 stored revisions"), "{e}");
    assert!(e.contains("--allow-empty-rules"), "{e}");
    for rule in [&["--drop-key", "compact-rev-key"][..], &["--exclude", "/nope/"], &["--rename", "/nope/=/x/"]] {
        let mut a = args(&["rewrite", &s(&snapshot()), &s(&out)]);
        a.extend(args(rule));
        let e = refused(&a);
        assert!(e.contains(&format!("--{} {} matched no key", &rule[0][2..], rule[1])), "{e}");
    }
    assert!(names(&dir).is_empty());
    a.extend(args(&["--allow-empty-rules", "--json"]));
    let (j, _) = run(&a, 0);
    let v: Value = serde_json::from_str(&j).unwrap();
    assert_eq!(
        v["rules"],
        serde_json::json!([{"rule": "include", "value": "/tenant-x/", "matched": 0},
                           {"rule": "keep-key", "value": "compact_rev_key", "matched": 4}])
    );
    assert_eq!(v["revisions"]["kept"], 5, "compact_rev_key's 4 stored revisions and the marker: {v}");
    // The human report lists them too.
    std::fs::remove_file(&out).unwrap();
    a.pop();
    let (text, _) = run(&a, 0);
    assert!(text.contains("rule include") && text.contains("/tenant-x/  0 revisions"), "{text}");
}

/// `--reencrypt` with a config that has nothing to seal with (aescbc only: not
/// key-bound, so nothing needs re-sealing) is refused by rewrite and restore
/// alike, before anything is written.
#[test]
fn reencrypt_needs_a_key_bound_provider() {
    let dir = scratch("rails-reencrypt-nothing");
    let config = dir.join("enc.yaml");
    std::fs::write(
        &config,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n      - name: k1\n        secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n  - identity: {}\n",
    )
    .unwrap();
    let out = dir.join("out.db");
    let data = dir.join("data");
    for a in [
        args(&["rewrite", &s(&snapshot()), &s(&out), "--reencrypt", &s(&config)]),
        args(&["restore", &s(&snapshot()), "--data-dir", &s(&data), "--reencrypt", &s(&config)]),
    ] {
        let e = refused(&a);
        assert!(e.contains("no aesgcm keys and no kms providers: nothing to re-encrypt with"), "{a:?}: {e}");
        assert!(e.contains(&s(&config)), "{e}");
    }
    assert_eq!(names(&dir), vec!["enc.yaml".to_string()]);
}

#[test]
fn bump_leaves_2_pow_62_revisions_of_headroom() {
    let dir = scratch("rails-bump");
    let out = dir.join("out.db");
    let max = i64::MAX - (1i64 << 62) - OLD_LATEST;
    for n in [max + 1, i64::MAX] {
        let e = refused(&args(&["rewrite", &s(&snapshot()), &s(&out), "--bump-revision", &n.to_string()]));
        assert!(e.contains("2^62") && e.contains(&format!("at most {max} is allowed")), "{e}");
    }
    let (j, _) = run(&args(&["rewrite", &s(&snapshot()), &s(&out), "--bump-revision", &max.to_string(), "--json"]), 0);
    let v: Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["new_revision"].as_i64(), Some((1i64 << 62) - 1));
}

#[test]
fn stale_temporary_files_are_reported_and_removed_with_force() {
    let dir = scratch("rails-stale");
    let out = dir.join("out.db");
    // pid 4194305 is above Linux's pid_max: no process runs under it.
    let stale = dir.join(".out.db.tmp.4194305");
    std::fs::write(&stale, b"0123456789").unwrap();
    let o = etcdsnap(&args(&["rewrite", &s(&snapshot()), &s(&out), "--json"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stale_temp_files"], serde_json::json!([{"path": s(&stale), "bytes": 10, "removed": false}]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&s(&stale)) && err.contains("--force removes it"), "{err}");
    assert!(stale.exists());
    let (j, _) = run(&args(&["bolt", "compact", &s(&snapshot()), &s(&out), "--force", "--json"]), 0);
    let v: Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["stale_temp_files"], serde_json::json!([{"path": s(&stale), "bytes": 10, "removed": true}]));
    assert_eq!(names(&dir), vec!["out.db"]);
}

/// The temporary directories of `wal rewrite` and `rewrite --data-dir`
/// (`.OUT.tmp.PID`) that a killed run left are reported like stale files, and
/// removed with `--force`.
#[test]
fn stale_temporary_directories_are_reported_and_removed_with_force() {
    let dir = scratch("rails-stale-dirs");
    let data = EtcdVersion::V3_5_1.fixture_dir();
    for (cmd, out, inner) in [
        (vec!["wal", "rewrite"], dir.join("wal-out"), "0000000000000000-0000000000000000.wal"),
        (vec!["rewrite", "--data-dir"], dir.join("data-out"), "member/snap/db"),
    ] {
        let mut name = std::ffi::OsString::from(".");
        name.push(out.file_name().unwrap());
        name.push(".tmp.4194305");
        let stale = dir.join(name);
        let file = stale.join(inner);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"0123456789").unwrap();
        let mut a: Vec<String> = cmd.iter().map(|c| c.to_string()).collect();
        a.extend([s(&data), s(&out), "--json".into()]);
        let (j, err) = run(&a, 0);
        let v: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(
            v["stale_temp_files"],
            serde_json::json!([{"path": s(&stale), "bytes": 10, "removed": false}]),
            "{cmd:?}"
        );
        assert!(
            err.contains(&s(&stale)) && err.contains("temporary directory") && err.contains("--force removes it"),
            "{err}"
        );
        assert!(file.exists(), "{cmd:?}: kept without --force");
        std::fs::remove_dir_all(&out).unwrap();
        a.push("--force".into());
        let (j, err) = run(&a, 0);
        let v: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(
            v["stale_temp_files"],
            serde_json::json!([{"path": s(&stale), "bytes": 10, "removed": true}]),
            "{cmd:?}"
        );
        assert!(err.is_empty(), "{cmd:?}: {err}");
        assert!(!stale.exists(), "{cmd:?}: removed with --force");
        std::fs::remove_dir_all(&out).unwrap();
    }
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
}

#[test]
fn errors_say_what_the_path_is() {
    let dir = scratch("rails-errors");
    let data = EtcdVersion::V3_5_1.fixture_dir();
    let wal = data.join("member/wal/0000000000000000-0000000000000000.wal");
    let snap = data.join("member/snap/0000000000000002-0000000000000192.snap");
    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            args(&["status", &s(&data)]),
            format!(
                "{} is an etcd data dir (its db file is {}/member/snap/db); expected a snapshot or db file",
                s(&data),
                s(&data)
            ),
        ),
        (args(&["get", &s(&data.join("member")), "k"]), "is an etcd member dir".into()),
        (args(&["status", &s(&data.join("member/wal"))]), "is a WAL directory".into()),
        (args(&["status", &s(&wal)]), format!("{} is a WAL segment, not a snapshot or db file", s(&wal))),
        (args(&["bolt", "info", &s(&wal)]), "is a WAL segment".into()),
        (args(&["status", &s(&snap)]), format!("{} is a raft .snap file", s(&snap))),
        (args(&["rewrite", &s(&snap), &s(&dir.join("o.db"))]), "is a raft .snap file".into()),
        (args(&["status", &s(&dir.join("missing.db"))]), format!("{}: no such file", s(&dir.join("missing.db")))),
        (
            args(&["status", "/no-such-dir/x.db"]),
            "/no-such-dir/x.db: no such file (directory /no-such-dir does not exist)".into(),
        ),
        (args(&["hashkv", &s(&empty)]), format!("{} is empty; expected a snapshot or db file", s(&empty))),
        (
            args(&["rewrite", &s(&snapshot()), &s(&dir.join("nodir/out.db"))]),
            format!("{}: output directory does not exist", s(&dir.join("nodir"))),
        ),
        (
            args(&["bolt", "compact", &s(&snapshot()), &s(&dir.join("nodir/out.db"))]),
            format!("{}: output directory does not exist", s(&dir.join("nodir"))),
        ),
        (args(&["rewrite", &s(&snapshot()), &s(&dir)]), "output is a directory".into()),
        (args(&["wal", "verify", &s(&dir.join("nowal"))]), format!("{}: no such directory", s(&dir.join("nowal")))),
        (args(&["wal", "dump", &s(&wal)]), "is a file; expected a data dir, member dir or WAL directory".into()),
        (
            args(&["wal", "rewrite", &s(&data), &s(&dir.join("nodir/wal"))]),
            format!("{}: the parent of the output directory is not an existing directory", s(&dir.join("nodir"))),
        ),
        // An OS error is printed once.
        (args(&["wal", "rewrite", &s(&data), &s(&empty)]), format!("{}: Not a directory (os error 20)", s(&empty))),
    ];
    for (a, want) in cases {
        let e = refused(&a);
        assert!(e.contains(&want), "{a:?}: want {want:?} in {e}");
        assert!(!e.contains(".tmp"), "{a:?}: names the internal temporary file: {e}");
        assert!(e.matches("os error").count() <= 1, "{a:?}: {e}");
    }
    assert_eq!(names(&dir), vec!["empty.db"]);
}

// ---------------------------------------------------------------------------
// Interrupts

#[test]
fn sigint_and_sigterm_during_a_write_remove_the_temporary_file() {
    let dir = scratch("rails-interrupt");
    let input = dir.join("big.db");
    large_input(&input, 400);
    let out = dir.join("out.db");
    for (sig, code, name) in [("INT", 130, "SIGINT"), ("TERM", 143, "SIGTERM")] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
            .args(["rewrite", &s(&input), &s(&out), "--trailer"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Signal as soon as the temporary output exists, i.e. while the output is written.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if names(&dir).iter().any(|n| n.starts_with(".out.db.tmp.")) {
                break;
            }
            assert!(child.try_wait().unwrap().is_none(), "{name}: the rewrite ended before its output was started");
            assert!(Instant::now() < deadline, "{name}: no temporary file after 120 s");
            std::thread::sleep(Duration::from_millis(1));
        }
        let kill = Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{name}: {err}");
        assert!(err.contains(&format!("interrupted by {name}")), "{err}");
        assert_eq!(names(&dir), vec!["big.db"], "{name}: no temporary file, no output");
    }
    std::fs::remove_file(&input).unwrap();
}

/// Progress goes to stderr only when it is a terminal (here a pseudo-terminal
/// made by `script`), with total and rate; `--quiet` and pipes get none.
#[test]
fn progress_only_on_a_terminal_and_not_with_quiet() {
    let dir = scratch("rails-progress");
    let bin = env!("CARGO_BIN_EXE_etcdsnap");
    let on_tty = |extra: &str, out: &Path| -> String {
        let cmd = format!("{bin} {extra} bolt compact {} {} > /dev/null", s(&snapshot()), s(out));
        let o = Command::new("script").args(["-qec", &cmd, "/dev/null"]).stdin(Stdio::null()).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let shown = on_tty("", &dir.join("a.db"));
    assert!(shown.contains("writing") && shown.contains("MiB") && shown.contains("/s"), "{shown:?}");
    let quiet = on_tty("--quiet", &dir.join("b.db"));
    assert!(!quiet.contains("writing"), "{quiet:?}");
    // Not a terminal: nothing on stderr.
    let o = etcdsnap(&args(&["bolt", "compact", &s(&snapshot()), &s(&dir.join("c.db"))]));
    assert!(o.status.success() && o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Every reading command draws a bar of bytes against a total known up front,
/// with its rate, on a terminal; none with `--quiet` or on a pipe.
#[test]
fn reading_commands_show_totals_and_rates_on_a_terminal() {
    let bin = env!("CARGO_BIN_EXE_etcdsnap");
    let (snap, data) = (s(&snapshot()), s(&EtcdVersion::V3_5_1.fixture_dir()));
    let commands: Vec<Vec<&str>> = vec![
        vec!["verify", &snap],
        vec!["status", &snap],
        vec!["hashkv", &snap],
        vec!["bolt", "check", &snap],
        vec!["du", &snap],
        vec!["diff", &snap, &data],
        vec!["keys", &snap],
        vec!["wal", "verify", &data],
        vec!["wal", "dump", &data],
    ];
    for c in &commands {
        let on_tty = |quiet: &str| -> String {
            let cmd = format!("{bin} {quiet} {} > /dev/null", c.join(" "));
            let o = Command::new("script").args(["-qec", &cmd, "/dev/null"]).stdin(Stdio::null()).output().unwrap();
            String::from_utf8_lossy(&o.stdout).to_string()
        };
        let shown = on_tty("");
        // "[bar] 1.12 MiB/3.74 MiB 1.02 GiB/s eta 0s": done of a total, and a rate.
        assert!(shown.contains(" MiB ") && shown.contains("B/s") && shown.contains(" eta "), "{c:?}: {shown:?}");
        let total = shown.split_whitespace().find_map(|w| w.strip_prefix("B/")).unwrap_or("");
        assert!(!total.is_empty() && total != "0", "{c:?}: no total in {shown:?}");
        assert!(on_tty("--quiet").trim().is_empty(), "{c:?}");
        let o = etcdsnap(c);
        assert!(o.stderr.is_empty(), "{c:?} on a pipe: {}", String::from_utf8_lossy(&o.stderr));
    }
}
