//! Faults never lose data: an output that is the input under another name, a
//! write that fails midway (the file-size limit, and a real full disk: a small
//! tmpfs), a rewrite killed with SIGKILL, an input truncated or written in place
//! while it is read. Each: exit 1 or 2 with a message naming the path (or, when
//! killed, nothing committed), the output path untouched, no temporary file
//! left, the input byte-identical (unless the test changed it).
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use large_input::large_input;

mod large_input;

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

/// A tmpfs of `size` mounted over `dir` while this lives: unmounted when dropped,
/// also when the test panics. Mounting must work (we run as root): a test that
/// needs it fails, never skips.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "cannot mount a {size} tmpfs on {} (this test needs root): {}",
            dir.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        Self(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Every file under `dir` with its bytes (paths relative to `dir`).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A private copy of the 3.5.1 fixture's data dir (member/snap with db and
/// .snap files, member/wal) at `to`.
fn data_dir_in(to: &Path) {
    let from = root().join("testdata/etcd-3.5.1/member");
    for (rel, bytes) in tree(&from) {
        let p = to.join("member").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

#[test]
fn a_full_disk_fails_every_writer_cleanly() {
    let dir = scratch("faults-disk-full");
    let (input, bytes) = input_in(&dir);
    let data = dir.join("data");
    data_dir_in(&data);
    let data_before = tree(&data);
    // 256 KiB: less than any output of the fixture (its compacted db is ~1 MiB,
    // its WAL 1.5 MiB).
    let full = dir.join("full");
    let fs = Tmpfs::mount(&full, "256k");
    let out = full.join("out.db");
    std::fs::write(&out, b"previous output").unwrap();
    let before = listing(&full);
    let (i, o, d) = (input.to_str().unwrap(), out.to_str().unwrap(), data.to_str().unwrap());
    let (wal_out, dir_out) = (full.join("wal"), full.join("data"));
    let cases: Vec<(Vec<&str>, &Path)> = vec![
        (vec!["rewrite", i, o, "--force"], &out),
        (vec!["rewrite", i, o, "--force", "--compact"], &out),
        (vec!["bolt", "compact", i, o, "--force"], &out),
        (vec!["wal", "rewrite", d, wal_out.to_str().unwrap()], &wal_out),
        (vec!["rewrite", "--data-dir", d, dir_out.to_str().unwrap()], &dir_out),
    ];
    let mut failures = Vec::new();
    for (args, target) in cases {
        let r = etcdsnap(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        let named = err.contains(target.to_str().unwrap());
        let enospc = err.contains("No space left on device");
        if !matches!(r.status.code(), Some(1 | 2)) || !named || !enospc {
            failures.push(format!(
                "{args:?}: exit {:?}, names the output: {named}, ENOSPC: {enospc}: {err}",
                r.status.code()
            ));
        }
        assert!(std::fs::read(&out).unwrap() == b"previous output", "{args:?}: output changed: {err}");
        assert_eq!(listing(&full), before, "{args:?}: a temporary file or directory was left: {err}");
        assert!(std::fs::read(&input).unwrap() == bytes, "{args:?}: input changed");
        assert!(tree(&data) == data_before, "{args:?}: the input data dir changed");
    }
    drop(fs);
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Starts etcdsnap with `args`, its output captured.
fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `appeared` (polling each millisecond) while `child` runs; false if it ended first.
fn wait_for(child: &mut Child, appeared: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !appeared() {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "nothing appeared in 120 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

/// Overwrites 4 KiB in the middle of `path` with other bytes (same size).
fn scribble(path: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.seek(SeekFrom::Start(len / 2 / 4096 * 4096)).unwrap();
    f.write_all(&[0x5a; 4096]).unwrap();
}

/// The file names under `dir`, recursively (relative).
fn names_under(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walk_names(dir, dir);
    v.sort();
    v
}

fn walk_names(base: &Path, dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        v.push(p.strip_prefix(base).unwrap().to_path_buf());
        if p.is_dir() && !p.is_symlink() {
            v.extend(walk_names(base, &p));
        }
    }
    v
}

/// A writer whose input is truncated (SIGBUS on the mapped input) or written in
/// place while its output is being written: exit 1 naming the input, nothing
/// written, no temporary file or directory left.
#[test]
fn an_input_changed_while_a_writer_reads_it_fails_cleanly() {
    let dir = scratch("faults-input-changed");
    let big = dir.join("big.db");
    let pristine = dir.join("pristine.db");
    large_input(&pristine, 160);
    let data = dir.join("data");
    data_dir_in(&data);
    let data_db = data.join("member/snap/db");
    let out = dir.join("out.db");
    let (b, o) = (big.to_str().unwrap(), out.to_str().unwrap());
    let dir_out = dir.join("data-out");
    let (d, d_out) = (data.to_str().unwrap(), dir_out.to_str().unwrap());
    type Change = fn(&Path);
    let changes: [(&str, Change, &str); 2] = [
        ("truncated", |p| truncate(p, 1 << 20), "truncated by another process"),
        ("written in place", scribble, "written in place"),
    ];
    for (what, change, says) in changes {
        for (args, input, tmp_name) in [
            (vec!["rewrite", b, o, "--force"], &big, ".out.db.tmp."),
            (vec!["rewrite", b, o, "--force", "--compact"], &big, ".out.db.tmp."),
            (vec!["bolt", "compact", b, o, "--force"], &big, ".out.db.tmp."),
            (vec!["rewrite", "--data-dir", d, d_out], &data_db, ".db.tmp."),
        ] {
            std::fs::copy(&pristine, input).unwrap();
            std::fs::write(&out, b"previous output").unwrap();
            let before = names_under(&dir);
            let mut child = spawn(&args);
            // As soon as the output file is being written (for the data dir: its
            // db, inside the temporary directory).
            let writing = wait_for(&mut child, || {
                names_under(&dir).iter().any(|n| n.file_name().unwrap().to_string_lossy().starts_with(tmp_name))
            });
            assert!(writing, "{args:?}: ended before writing its output");
            change(input);
            let r = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&r.stderr);
            assert_eq!(r.status.code(), Some(1), "{what}: {args:?}: {err}");
            assert!(
                err.contains(input.to_str().unwrap()) && err.contains("changed while being read"),
                "{what}: {args:?}: {err}"
            );
            assert!(err.contains(says), "{what}: {args:?}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{what}: {args:?}: one message: {err}");
            assert_eq!(names_under(&dir), before, "{what}: {args:?}: a temporary file or directory was left");
            assert!(std::fs::read(&out).unwrap() == b"previous output", "{what}: {args:?}: output changed");
        }
    }
    for p in [&big, &pristine] {
        std::fs::remove_file(p).unwrap();
    }
}

/// `verify` (and `status --verify-trailer`, a reading command that also reads
/// every byte) of an input truncated or written in place while it reads: exit
/// 1 naming the input, never "ok". The moment is found by trying later and later.
#[test]
fn an_input_changed_while_verify_reads_it_is_a_problem() {
    let dir = scratch("faults-verify-changed");
    let big = dir.join("big.db");
    let pristine = dir.join("pristine.db");
    large_input(&pristine, 160);
    // With a SHA-256 trailer, so that verify reads every byte (and takes a while).
    let mut bytes = std::fs::read(&pristine).unwrap();
    let digest = <sha2::Sha256 as sha2::Digest>::digest(&bytes);
    bytes.extend_from_slice(&digest);
    std::fs::write(&pristine, &bytes).unwrap();
    drop(bytes);
    type Change = fn(&Path);
    let changes: [(&str, Change); 2] = [("truncated", |p| truncate(p, 1 << 20)), ("written in place", scribble)];
    let b = big.to_str().unwrap();
    for ((what, change), cmd) in
        changes.iter().flat_map(|c| [(c, vec!["verify", b]), (c, vec!["status", "--verify-trailer", b])])
    {
        let mut mid_read = 0;
        for attempt in 0..16u32 {
            std::fs::copy(&pristine, &big).unwrap();
            let mut child = spawn(&cmd);
            std::thread::sleep(Duration::from_millis(10 + 20 * u64::from(attempt % 6)));
            if child.try_wait().unwrap().is_some() {
                continue;
            }
            change(&big);
            let r = child.wait_with_output().unwrap();
            let (out, err) = (String::from_utf8_lossy(&r.stdout), String::from_utf8_lossy(&r.stderr));
            let text = format!("{out}{err}");
            // Whenever the change lands (before the file was opened, on a
            // loaded machine: then it is just a damaged file), it is a problem
            // naming the input, never "ok".
            assert_eq!(r.status.code(), Some(1), "{what}: {cmd:?}: attempt {attempt}: {text}");
            assert!(text.contains(b), "{what}: {cmd:?}: {text}");
            if text.contains("changed while being read") {
                mid_read += 1;
                if mid_read >= 2 {
                    break;
                }
            }
        }
        assert!(mid_read >= 1, "{what}: no change landed while {cmd:?} was reading");
    }
    for p in [&big, &pristine] {
        std::fs::remove_file(p).unwrap();
    }
}
