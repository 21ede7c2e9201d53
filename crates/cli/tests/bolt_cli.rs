//! The `etcdsnap bolt …` commands end to end: JSON contracts (unknown fields denied),
//! exit codes, and human output, on real etcd fixtures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde::Deserialize;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn fixture(rel: &str) -> PathBuf {
    root().join("testdata").join(rel)
}

fn etcdsnap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap")).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct MetaJson {
    page: u8,
    valid: bool,
    error: Option<String>,
    magic: Option<String>,
    version: Option<u32>,
    page_size: Option<u32>,
    flags: Option<u32>,
    root: Option<u64>,
    root_sequence: Option<u64>,
    freelist: Option<u64>,
    pgid: Option<u64>,
    txid: Option<u64>,
    checksum: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct InfoJson {
    file: String,
    file_size: u64,
    page_size: usize,
    active_meta: usize,
    hwm: u64,
    used_bytes: u64,
    bytes_beyond_hwm: u64,
    freelist: String,
    freelist_page: Option<u64>,
    freelist_ids: Option<usize>,
    metas: Vec<MetaJson>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum JsonBytes {
    Text(String),
    Base64 { base64: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ProblemJson {
    kind: String,
    page: Option<u64>,
    offset: Option<u64>,
    bucket: Vec<JsonBytes>,
    key: Option<JsonBytes>,
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct CheckJson {
    file: String,
    ok: bool,
    problem_count: u64,
    problems: Vec<ProblemJson>,
    buckets: u64,
    inline_buckets: u64,
    keys: u64,
    branch_pages: u64,
    leaf_pages: u64,
    overflow_pages: u64,
    free_pages: u64,
    max_depth: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageJson {
    id: u64,
    #[serde(rename = "type")]
    kind: String,
    items: Option<u64>,
    overflow: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct BucketJson {
    name: JsonBytes,
    sequence: u64,
    inline: bool,
    root: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyJson {
    key: JsonBytes,
    bucket: bool,
    value_size: usize,
}

const ETCD_BUCKETS: [&str; 10] =
    ["alarm", "auth", "authRoles", "authUsers", "cluster", "key", "lease", "members", "members_removed", "meta"];

#[test]
fn info_json_describes_snapshot_and_raw_db() {
    for (rel, trailer) in
        [("etcd-3.5.1/snapshot.db", true), ("etcd-3.4.23/snapshot.db", true), ("etcd-3.5.1/member/snap/db", false)]
    {
        let o = etcdsnap(&["bolt", "info", "--json", fixture(rel).to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        let info: InfoJson = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(info.page_size, 4096);
        assert_eq!(info.used_bytes, info.hwm * 4096);
        assert_eq!(info.file_size, std::fs::metadata(fixture(rel)).unwrap().len());
        if trailer {
            assert_eq!(info.bytes_beyond_hwm, 32, "{rel}: a snapshot is WriteTo output plus a 32-byte SHA-256");
        }
        assert_eq!(info.freelist, "none", "etcd writes no freelist");
        assert_eq!(info.metas.len(), 2);
        assert!(info.metas.iter().all(|m| m.valid && m.freelist.is_none()));
        let active = &info.metas[info.active_meta];
        let other = &info.metas[1 - info.active_meta];
        assert!(active.txid > other.txid);
        assert_eq!(active.pgid, Some(info.hwm));
    }
}

#[test]
fn check_json_is_clean_on_fixtures_and_exit_1_on_damage() {
    let f = fixture("etcd-3.5.1/snapshot.db");
    let o = etcdsnap(&["bolt", "check", "--json", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let c: CheckJson = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(c.ok && c.problem_count == 0 && c.problems.is_empty());
    assert_eq!(c.buckets, 10);
    assert!(c.keys > 1000 && c.branch_pages > 0 && c.overflow_pages > 0 && c.free_pages > 0);

    let human = etcdsnap(&["bolt", "check", f.to_str().unwrap()]);
    assert_eq!(stdout(&human), "OK\n");

    // Damage: meta 0 checksum.
    let dir = scratch("cli-check");
    let bad = dir.join("bad.db");
    let mut data = std::fs::read(&f).unwrap();
    data[72] ^= 1;
    std::fs::write(&bad, &data).unwrap();
    let o = etcdsnap(&["bolt", "check", "--json", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let c: CheckJson = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(!c.ok);
    assert_eq!(c.problem_count, 1);
    assert_eq!(c.problems[0].page, Some(0));
    assert_eq!(c.problems[0].kind, "invalid-meta");
    assert!(c.problems[0].message.starts_with("page 0: meta 0: checksum error"));
    let human = etcdsnap(&["bolt", "check", bad.to_str().unwrap()]);
    assert_eq!(human.status.code(), Some(1));
    assert!(stdout(&human).ends_with("1 errors found\n"), "{}", stdout(&human));
}

#[test]
fn exit_2_on_usage_io_and_unreadable_input() {
    assert_eq!(etcdsnap(&["bolt", "check"]).status.code(), Some(2));
    assert_eq!(etcdsnap(&["bolt", "frobnicate"]).status.code(), Some(2));
    let o = etcdsnap(&["bolt", "check", "/nonexistent/file.db"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/file.db"));
    let dir = scratch("cli-exit2");
    let junk = dir.join("junk.db");
    std::fs::write(&junk, vec![0x5au8; 16384]).unwrap();
    let o = etcdsnap(&["bolt", "info", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid database"), "{}", String::from_utf8_lossy(&o.stderr));
    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(etcdsnap(&["bolt", "check", empty.to_str().unwrap()]).status.code(), Some(2));
}

#[test]
fn pages_json_accounts_for_every_page() {
    let f = fixture("etcd-3.4.23/snapshot.db");
    let info: InfoJson =
        serde_json::from_str(&stdout(&etcdsnap(&["bolt", "info", "--json", f.to_str().unwrap()]))).unwrap();
    let o = etcdsnap(&["bolt", "pages", "--json", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let pages: Vec<PageJson> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut covered = 0;
    let mut next = 0;
    for p in &pages {
        assert_eq!(p.id, next, "pages are listed in order, overflow runs skipped");
        let span = if p.kind == "free" { 1 } else { 1 + u64::from(p.overflow.unwrap()) };
        assert!(["meta", "leaf", "branch", "free"].contains(&p.kind.as_str()), "{p:?}");
        if p.kind != "free" {
            assert!(p.items.is_some());
        }
        covered += span;
        next = p.id + span;
    }
    assert_eq!(covered, info.hwm);
    assert_eq!(pages[0].kind, "meta");
    assert_eq!(pages[1].kind, "meta");
    let human = stdout(&etcdsnap(&["bolt", "pages", f.to_str().unwrap()]));
    assert!(human.starts_with("ID"));
    assert_eq!(human.lines().count(), pages.len() + 1);
}

#[test]
fn buckets_and_keys() {
    for rel in ["etcd-3.5.1/snapshot.db", "etcd-3.4.23/member/snap/db"] {
        let f = fixture(rel);
        let o = etcdsnap(&["bolt", "buckets", f.to_str().unwrap()]);
        assert_eq!(stdout(&o).lines().collect::<Vec<_>>(), ETCD_BUCKETS);
        let o = etcdsnap(&["bolt", "buckets", "--json", f.to_str().unwrap()]);
        let b: Vec<BucketJson> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(b.len(), 10);
        assert_eq!(b[5].name, JsonBytes::Text("key".into()));
        assert!(!b[5].inline && b[5].root >= 2);

        let o = etcdsnap(&["bolt", "keys", "--json", f.to_str().unwrap(), "key"]);
        assert_eq!(o.status.code(), Some(0));
        let keys: Vec<KeyJson> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(keys.len() > 1000);
        for k in &keys {
            assert!(!k.bucket && k.value_size > 0);
            // Revision keys are binary: 8-byte main, '_', 8-byte sub, optional 't'.
            match &k.key {
                JsonBytes::Base64 { base64 } => assert!(base64.len() == 24 || base64.len() == 28, "{base64}"),
                JsonBytes::Text(t) => assert!(t.len() == 17 || t.len() == 18),
            }
        }
        let o = etcdsnap(&["bolt", "keys", "--json", f.to_str().unwrap(), "meta"]);
        let meta: Vec<KeyJson> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(meta.iter().any(|k| k.key == JsonBytes::Text("consistent_index".into())));
        let o = etcdsnap(&["bolt", "keys", "--hex", f.to_str().unwrap(), "6d657461"]);
        assert!(stdout(&o).lines().any(|l| l == "consistent_index"));
        let o = etcdsnap(&["bolt", "keys", f.to_str().unwrap(), "nope"]);
        assert_eq!(o.status.code(), Some(2));
    }
}

#[test]
fn closed_stdout_is_not_an_error() {
    let f = fixture("etcd-3.5.1/snapshot.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["bolt", "dump", f.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(err.is_empty(), "{err}");
}

/// FNV-1a 64, the meta checksum.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Four 64 KiB pages whose two valid metas claim a high-water mark of 2^40 pages
/// (64 PiB): a root leaf at page 3, no freelist.
fn huge_hwm_file(dir: &Path) -> PathBuf {
    const PS: usize = 65536;
    let mut d = vec![0u8; 4 * PS];
    for (slot, txid) in [(0usize, 2u64), (1, 1)] {
        let p = slot * PS;
        d[p..p + 8].copy_from_slice(&(slot as u64).to_le_bytes());
        d[p + 8..p + 10].copy_from_slice(&4u16.to_le_bytes());
        let mut m = Vec::new();
        m.extend(0xED0C_DAEDu32.to_le_bytes());
        m.extend(2u32.to_le_bytes());
        m.extend((PS as u32).to_le_bytes());
        m.extend(0u32.to_le_bytes());
        m.extend(3u64.to_le_bytes()); // root
        m.extend(0u64.to_le_bytes()); // root sequence
        m.extend(u64::MAX.to_le_bytes()); // no freelist
        m.extend((1u64 << 40).to_le_bytes()); // pgid
        m.extend(txid.to_le_bytes());
        let sum = fnv1a(&m);
        m.extend(sum.to_le_bytes());
        d[p + 16..p + 80].copy_from_slice(&m);
    }
    d[3 * PS..3 * PS + 8].copy_from_slice(&3u64.to_le_bytes());
    d[3 * PS + 8..3 * PS + 10].copy_from_slice(&2u16.to_le_bytes());
    let f = dir.join("huge-hwm.db");
    std::fs::write(&f, d).unwrap();
    f
}

/// Runs etcdsnap under a 1 GB address-space limit and a 60 s timeout.
fn etcdsnap_limited(args: &[&str]) -> Output {
    let mut cmd = String::from("ulimit -v 1000000; exec timeout 60 \"$0\"");
    for i in 1..=args.len() {
        cmd.push_str(&format!(" \"${i}\""));
    }
    Command::new("sh").arg("-c").arg(cmd).arg(env!("CARGO_BIN_EXE_etcdsnap")).args(args).output().unwrap()
}

#[test]
fn a_huge_high_water_mark_costs_no_more_than_the_file() {
    let dir = scratch("cli-huge-hwm");
    let f = huge_hwm_file(&dir);
    let f = f.to_str().unwrap();
    let o = etcdsnap_limited(&["bolt", "pages", "--json", f]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let pages: Vec<PageJson> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<(u64, &str)> = pages.iter().map(|p| (p.id, p.kind.as_str())).collect();
    assert_eq!(kinds, [(0, "meta"), (1, "meta"), (2, "free"), (3, "leaf"), (4, "missing")]);
    let o = etcdsnap_limited(&["bolt", "pages", f]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&o).lines().count(), 6);
    for args in [&["bolt", "check", f][..], &["bolt", "info", f], &["verify", f], &["bolt", "dump", f]] {
        let o = etcdsnap_limited(args);
        assert!(
            matches!(o.status.code(), Some(0..=2)),
            "{args:?}: {:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = etcdsnap_limited(&["bolt", "check", f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("shorter than pgid × pageSize"), "{}", stdout(&o));
}

#[cfg(unix)]
#[test]
fn fifos_devices_and_directories_are_refused() {
    let dir = scratch("cli-not-a-file");
    let fifo = dir.join("backup.db");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let fifo = fifo.to_str().unwrap();
    for (path, kind) in [(fifo, "FIFO"), ("/dev/zero", "character device"), (dir.to_str().unwrap(), "directory")] {
        // A directory is named as such by the path checks before the read.
        let message = if kind == "directory" {
            format!("{path} is a directory")
        } else {
            format!("{path} is not a regular file but a {kind}")
        };
        for args in [&["bolt", "check", path][..], &["bolt", "pages", path]] {
            let o = etcdsnap_limited(args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains(&message), "{args:?}: {err}");
        }
        // `verify` reports an unreadable file as a problem of that file and goes on.
        let o = etcdsnap_limited(&["verify", path]);
        assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(stdout(&o).contains(&message), "{}", stdout(&o));
    }
}

/// `bolt dump -w json` holds exactly the canonical text dump's records.
#[test]
fn dump_json_is_the_canonical_dump() {
    use base64::Engine;
    fn bytes(v: &serde_json::Value) -> Vec<u8> {
        match v {
            serde_json::Value::String(s) => s.as_bytes().to_vec(),
            other => base64::engine::general_purpose::STANDARD.decode(other["base64"].as_str().unwrap()).unwrap(),
        }
    }
    fn hex(b: &[u8]) -> String {
        b.iter().map(|c| format!("{c:02x}")).collect()
    }
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/etcd-3.5.1/snapshot.db");
    let f = f.to_str().unwrap();
    let text = String::from_utf8(etcdsnap(&["bolt", "dump", f]).stdout).unwrap();
    let o = etcdsnap(&["bolt", "dump", f, "-w", "json"]);
    assert!(o.status.success());
    let mut from_json = Vec::new();
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let path = || v["path"].as_array().unwrap().iter().map(|p| hex(&bytes(p))).collect::<Vec<_>>().join("/");
        from_json.push(match v["type"].as_str().unwrap() {
            "bucket" => format!("B {} {}", path(), v["sequence"]),
            "key" => {
                let value = bytes(&v["value"]);
                let value = if value.is_empty() { "-".to_string() } else { hex(&value) };
                format!("K {} {} {value}", path(), hex(&bytes(&v["key"])))
            }
            "end" => format!("END {} {}", v["buckets"], v["keys"]),
            t => panic!("unknown record type {t}"),
        });
    }
    assert_eq!(from_json, text.lines().collect::<Vec<_>>());
}
