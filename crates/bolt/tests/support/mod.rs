//! Shared helpers of the bolt integration tests: fixture paths and the Go oracle.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

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
    assert!(out.len() >= 4, "expected fixtures of etcd 3.4 and 3.5, found {out:?}");
    out
}

/// The Go bbolt oracle binary; the test fails (never skips) when it is absent.
pub fn oracle() -> PathBuf {
    let dir = std::env::var_os("ETCDSNAP_ORACLES").map(PathBuf::from).unwrap_or_else(|| root().join(".oracles"));
    let bin = dir.join("bin/boltoracle");
    assert!(bin.exists(), "{} missing: run tools/install-oracles.sh (the test command does)", bin.display());
    bin
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
