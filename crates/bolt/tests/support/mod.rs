//! Shared helpers of the bolt integration tests: fixture paths and the Go oracle.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod model;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Every bbolt file written by real etcd under testdata/ (snapshots and raw db copies).
pub fn etcd_fixtures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("testdata")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.file_name().unwrap().to_string_lossy().starts_with("etcd-") {
            continue;
        }
        for f in ["snapshot.db", "member/snap/db"] {
            let p = dir.join(f);
            assert!(p.exists(), "fixture {} is missing", p.display());
            out.push(p);
        }
    }
    out.sort();
    assert!(out.len() >= 10, "expected fixtures of etcd 3.4.23, 3.5.1, 3.5.35, 3.6.16 and 3.7.3, found {out:?}");
    out
}

/// The Go bbolt oracle binary; the test fails (never skips) when it is absent.
pub fn oracle() -> PathBuf {
    let dir = std::env::var_os("ETCDSNAP_ORACLES").map(PathBuf::from).unwrap_or_else(|| root().join(".oracles"));
    let bin = dir.join("bin/boltoracle");
    assert!(bin.exists(), "{} missing: run tools/install-oracles.sh (the test command does)", bin.display());
    bin
}

/// The oracle built against every Go bbolt line the etcd versions use: 1.3.6
/// (etcd 3.4.23, 3.5.1), 1.4.3 (3.6; also 1.3.7+'s page and key-order checks,
/// as in 3.5.35's 1.3.12) and 1.5.0 (3.7). Fails (never skips) when one is absent.
pub fn oracle_lines() -> Vec<(&'static str, PathBuf)> {
    let dir = std::env::var_os("ETCDSNAP_ORACLES").map(PathBuf::from).unwrap_or_else(|| root().join(".oracles"));
    let mut v = vec![("1.3.6", oracle())];
    for line in ["1.4.3", "1.5.0"] {
        let bin = dir.join(format!("bbolt-{line}/boltoracle"));
        assert!(bin.exists(), "{} missing: run tools/install-oracles.sh (the test command does)", bin.display());
        v.push((line, bin));
    }
    v
}

/// Runs the oracle and returns (exit code, stdout).
pub fn run_oracle(args: &[&std::ffi::OsStr]) -> (i32, Vec<u8>) {
    let out = Command::new(oracle()).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), out.stdout)
}

/// A fresh scratch directory under target/ for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
