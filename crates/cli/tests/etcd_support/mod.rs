//! Helpers shared by the etcd-schema CLI tests (status/hashkv/keys/json).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use etcdsnap_testkit::EtcdVersion;
use serde_json::Value;

/// Every fixture file: (version, path), snapshots and raw dbs.
pub fn fixture_files() -> Vec<(EtcdVersion, PathBuf)> {
    let mut v = Vec::new();
    for ver in EtcdVersion::ALL {
        v.push((ver, ver.fixture_snapshot()));
        v.push((ver, ver.fixture_raw_db()));
    }
    v
}

/// Runs `etcdsnap ARGS`.
pub fn etcdsnap<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap")).args(args).output().unwrap()
}

/// Runs `etcdsnap ARGS`, asserts exit 0, returns stdout.
pub fn etcdsnap_ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> Vec<u8> {
    let out = etcdsnap(args);
    assert!(
        out.status.success(),
        "etcdsnap {args:?}: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Parses one JSON object.
pub fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes[..bytes.len().min(2000)])))
}

/// Parses JSON Lines.
pub fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8(bytes.to_vec()).unwrap().lines().map(|l| json(l.as_bytes())).collect()
}

/// Our byte encoding (UTF-8 string, else `{"base64": ...}`) back to bytes.
pub fn our_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Object(m) if m.len() == 1 && m.contains_key("base64") => {
            base64::engine::general_purpose::STANDARD.decode(m["base64"].as_str().unwrap()).unwrap()
        }
        other => panic!("not a byte string: {other}"),
    }
}

/// etcdctl's base64 (absent: empty) to bytes.
pub fn ctl_bytes(v: Option<&Value>) -> Vec<u8> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(s) => base64::engine::general_purpose::STANDARD.decode(s.as_str().unwrap()).unwrap(),
    }
}

fn int(v: &Value, f: &str) -> i64 {
    match v.get(f) {
        None | Some(Value::Null) => 0,
        Some(n) => n.as_i64().unwrap_or_else(|| panic!("{f} not an int in {v}")),
    }
}

/// (key, value, create, mod, version, lease) of one kv.
pub type Row = (Vec<u8>, Vec<u8>, i64, i64, i64, i64);

/// A kv of ours (`keys --json` line or `get --json` kvs element).
pub fn our_row(v: &Value) -> Row {
    (
        our_bytes(&v["key"]),
        our_bytes(&v["value"]),
        int(v, "create_revision"),
        int(v, "mod_revision"),
        int(v, "version"),
        int(v, "lease"),
    )
}

/// A kv of etcdctl's `-w json`.
pub fn ctl_row(v: &Value) -> Row {
    (
        ctl_bytes(v.get("key")),
        ctl_bytes(v.get("value")),
        int(v, "create_revision"),
        int(v, "mod_revision"),
        int(v, "version"),
        int(v, "lease"),
    )
}

/// The kvs of an etcdctl get answer.
pub fn ctl_rows(get: &Value) -> Vec<Row> {
    get.get("kvs").and_then(Value::as_array).map(|a| a.iter().map(ctl_row).collect()).unwrap_or_default()
}

/// Asserts two row lists are equal, reporting the first difference.
pub fn assert_rows_eq(ours: &[Row], theirs: &[Row], what: &str) {
    if ours != theirs {
        let i = ours.iter().zip(theirs).position(|(a, b)| a != b);
        panic!(
            "{what}: {} rows vs etcd's {}; first difference at {i:?}: ours {:?}, etcd {:?}",
            ours.len(),
            theirs.len(),
            i.and_then(|i| ours.get(i)),
            i.and_then(|i| theirs.get(i))
        );
    }
}

/// Bytes of a file.
pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// `etcdsnap restore SNAPSHOT` as the one member `default` with its peer on
/// 127.0.0.1:`peer`, into `data_dir`; asserts success.
pub fn etcdsnap_restore(snapshot: &Path, data_dir: &Path, peer: u16) {
    let url = format!("http://127.0.0.1:{peer}");
    let cluster = format!("default={url}");
    let args = ["restore", s(snapshot), "--initial-cluster", &cluster, "--initial-advertise-peer-urls", &url];
    etcdsnap_ok(&[&args[..], &["-q", "--data-dir", s(data_dir)]].concat());
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
