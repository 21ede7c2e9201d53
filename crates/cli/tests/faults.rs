//! Faults never lose data: an output that is the input under another name, a
//! write that fails midway (the file-size limit stands in for a full disk), a
//! rewrite killed with SIGKILL. Each: exit 2 with a message naming the path (or,
//! when killed, nothing committed), the output path untouched, no temporary file
//! left, the input byte-identical.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A private copy of the 3.5.1 snapshot in `dir`.
fn input_in(dir: &Path) -> (PathBuf, Vec<u8>) {
    let bytes = std::fs::read(root().join("testdata/etcd-3.5.1/snapshot.db")).unwrap();
    let p = dir.join("in.db");
    std::fs::write(&p, &bytes).unwrap();
    (p, bytes)
}

fn etcdsnap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap")).args(args).stdin(Stdio::null()).output().unwrap()
}

/// Names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// The commands that write a file, with their input and output.
fn writers<'a>(input: &'a str, output: &'a str) -> Vec<Vec<&'a str>> {
    vec![vec!["rewrite", input, output], vec!["bolt", "compact", input, output]]
}

#[test]
fn an_output_that_is_the_input_is_refused() {
    let dir = scratch("faults-same-file");
    let (input, bytes) = input_in(&dir);
    std::os::unix::fs::symlink(&input, dir.join("sym.db")).unwrap();
    std::fs::hard_link(&input, dir.join("hard.db")).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let before = listing(&dir);
    let spellings =
        [dir.join("sym.db"), dir.join("hard.db"), dir.join("./in.db"), dir.join("sub/../in.db"), input.clone()];
    for out in &spellings {
        let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
        for args in writers(i, o) {
            let r = etcdsnap(&args);
            let err = String::from_utf8_lossy(&r.stderr);
            assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains(o) && err.contains("same file as an input"), "{args:?}: {err}");
            assert_eq!(std::fs::read(&input).unwrap(), bytes, "{args:?}: input changed");
            assert_eq!(listing(&dir), before, "{args:?}: a file was left or removed");
            assert!(std::fs::symlink_metadata(dir.join("sym.db")).unwrap().file_type().is_symlink());
        }
    }
}

#[test]
fn a_write_that_fails_midway_leaves_the_output_untouched() {
    let dir = scratch("faults-write-fails");
    let (input, bytes) = input_in(&dir);
    let out = dir.join("out.db");
    std::fs::write(&out, b"previous output").unwrap();
    let before = listing(&dir);
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    for args in writers(i, o) {
        // RLIMIT_FSIZE of 256 KiB: writes past it fail with EFBIG (SIGXFSZ ignored),
        // as a full disk fails them with ENOSPC.
        let mut script = String::from("trap '' XFSZ; ulimit -f 256; exec \"$0\"");
        for n in 1..=args.len() {
            script.push_str(&format!(" \"${n}\""));
        }
        let r = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .arg(env!("CARGO_BIN_EXE_etcdsnap"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(".out.db.tmp.") || err.contains(o), "{args:?}: names no path: {err}");
        assert_eq!(std::fs::read(&out).unwrap(), b"previous output", "{args:?}: output changed");
        assert_eq!(listing(&dir), before, "{args:?}: temporary file left");
        assert_eq!(std::fs::read(&input).unwrap(), bytes, "{args:?}: input changed");
    }
}

#[test]
fn a_killed_rewrite_commits_nothing_and_the_next_run_cleans_up() {
    let dir = scratch("faults-sigkill");
    let (input, bytes) = input_in(&dir);
    let out = dir.join("out.db");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let mut killed_while_writing = 0;
    for _ in 0..30 {
        let _ = std::fs::remove_file(&out);
        let mut child = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
            .args(["rewrite", i, o, "--bump-revision", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill (SIGKILL: no cleanup runs) as soon as its temporary file appears.
        let tmp = dir.join(format!(".out.db.tmp.{}", child.id()));
        while !tmp.exists() && child.try_wait().unwrap().is_none() {
            std::hint::spin_loop();
        }
        child.kill().unwrap_or(()); // may have exited already
        let _ = child.wait();
        assert_eq!(std::fs::read(&input).unwrap(), bytes, "input changed");
        if tmp.exists() && !out.exists() {
            killed_while_writing += 1;
        }
        // Either nothing was committed, or the whole file was (rename is atomic).
        if out.exists() {
            let r = etcdsnap(&["verify", o]);
            assert_eq!(r.status.code(), Some(0), "a committed output verifies: {}", String::from_utf8_lossy(&r.stdout));
        }
        // The next run (with --force: the killed run may have committed) succeeds
        // and removes the killed run's temporary file.
        let r = etcdsnap(&["rewrite", i, o, "--bump-revision", "1000", "--force"]);
        assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
        assert_eq!(listing(&dir), ["in.db", "out.db"]);
        if killed_while_writing >= 3 {
            break;
        }
    }
    assert!(killed_while_writing >= 1, "no kill landed while the output was being written");
}

#[test]
fn outputs_are_private() {
    let dir = scratch("faults-mode");
    let (input, _) = input_in(&dir);
    let out = dir.join("out.db");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    for args in writers(i, o) {
        let _ = std::fs::remove_file(&out);
        let r = etcdsnap(&args);
        assert_eq!(r.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&r.stderr));
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{args:?}: outputs hold Secrets");
    }
}

/// Makes `dir` read-only for this process: mode 0555, or, where that does not
/// bind (root), a read-only tmpfs mounted over it. Returns whether a mount must
/// be undone.
fn make_read_only(dir: &Path) -> bool {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let probe = dir.join(".probe");
    if std::fs::write(&probe, b"").is_err() {
        return false;
    }
    std::fs::remove_file(&probe).unwrap();
    let ok = Command::new("mount").args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"]).arg(dir).status().unwrap();
    assert!(ok.success(), "cannot make {} read-only (mode 0555 does not bind and mount failed)", dir.display());
    true
}

#[test]
fn a_read_only_output_directory_is_reported_with_its_path() {
    let dir = scratch("faults-read-only");
    let (input, bytes) = input_in(&dir);
    let ro = dir.join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mounted = make_read_only(&ro);
    let out = ro.join("out.db");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let results: Vec<(Vec<&str>, Output)> = writers(i, o).into_iter().map(|a| (a.clone(), etcdsnap(&a))).collect();
    let listed = listing(&ro);
    if mounted {
        assert!(Command::new("umount").arg(&ro).status().unwrap().success());
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (args, r) in results {
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&ro.display().to_string()), "{args:?}: names no path: {err}");
    }
    assert!(listed.is_empty(), "nothing written: {listed:?}");
    assert_eq!(std::fs::read(&input).unwrap(), bytes);
}
