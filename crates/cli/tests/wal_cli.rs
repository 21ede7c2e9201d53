//! `etcdsnap wal …` against the fixtures and real etcd: dump vs writes.jsonl,
//! verify JSON and exit codes, torn tail + repair + etcd start, rewrite of a data
//! dir (db + WAL) served by etcd, and writes that only exist in the WAL.
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
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use etcdsnap_testkit::{free_port, kv_rows, scratch, EtcdServer, EtcdVersion};
use serde_json::{json, Value};

const SEG0: &str = "0000000000000000-0000000000000000.wal";
const RULES: &[&str] =
    &["--include", "/tenant-1/", "--keep-key", "compact_rev_key", "--rename", "/tenant-1/registry/=/registry/"];

fn etcdsnap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap")).args(args).stdin(Stdio::null()).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = etcdsnap(args);
    assert!(
        o.status.success(),
        "etcdsnap {args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The fixture's data dir (member/{wal,snap}), copied: etcd writes into it.
fn data_copy(v: EtcdVersion, name: &str) -> PathBuf {
    let data = scratch(name).join("data");
    copy_tree(&v.fixture_dir().join("member"), &data.join("member"));
    data
}

fn op_of_write(w: &Value) -> Option<Value> {
    let op = w["op"].as_str().unwrap();
    Some(match op {
        "put" => json!({"op": "put", "key": w["key"], "lease": w["lease"]}),
        "del" => json!({"op": "del", "key": w["key"], "prefix": w["prefix"]}),
        "txn" => json!({"op": "txn", "compares": w["compare"].as_array().unwrap().len(),
            "ops": w["ops"].as_array().unwrap().iter().filter_map(op_of_write).collect::<Vec<_>>()}),
        "lease-grant" => json!({"op": "lease-grant", "id": w["id"]}),
        "compact" => json!({"op": "compact", "rev": w["rev"]}),
        "auth" => json!({"op": "auth"}),
        _ => panic!("unknown write {w}"),
    })
}

fn lease_hex(v: &Value) -> Value {
    match v.as_i64().unwrap_or(0) {
        0 => Value::Null,
        l => json!(format!("{l:x}")),
    }
}

fn op_of_request(r: &Value) -> Option<Value> {
    if let Some(put) = r.get("put").or_else(|| r.get("request_put")) {
        return Some(json!({"op": "put", "key": put["key"], "lease": lease_hex(&put["lease"])}));
    }
    if let Some(d) = r.get("delete_range") {
        return Some(json!({"op": "del", "key": d["key"], "prefix": d["range_end"] != json!("")}));
    }
    if let Some(t) = r.get("txn") {
        let ops = t["success"].as_array().unwrap().iter().filter_map(op_of_request).collect::<Vec<_>>();
        return Some(json!({"op": "txn", "compares": t["compare"].as_array().unwrap().len(), "ops": ops}));
    }
    if let Some(l) = r.get("lease_grant") {
        return Some(json!({"op": "lease-grant", "id": format!("{:016x}", l["id"].as_i64().unwrap())}));
    }
    if let Some(c) = r.get("compaction") {
        return Some(json!({"op": "compact", "rev": c["revision"]}));
    }
    if r.as_object().unwrap().keys().any(|k| k.starts_with("auth_")) {
        return Some(json!({"op": "auth"}));
    }
    None
}

#[test]
fn dump_json_lists_every_write_in_order() {
    for v in EtcdVersion::ALL {
        let writes: Vec<Value> = fs::read_to_string(v.fixture_dir().join("writes.jsonl"))
            .unwrap()
            .lines()
            .map(|l| op_of_write(&serde_json::from_str(l).unwrap()).unwrap())
            .collect();
        let dump = ok(&["wal", "dump", "--json", p(&v.fixture_dir())]);
        let mut kinds = BTreeMap::<String, usize>::new();
        let mut last_index = 0;
        let ops: Vec<Value> = dump
            .lines()
            .filter_map(|l| {
                let e: Value = serde_json::from_str(l).unwrap();
                let idx = e["index"].as_u64().unwrap();
                assert_eq!(idx, last_index + 1, "indexes are contiguous");
                last_index = idx;
                *kinds.entry(e["kind"].as_str().unwrap().to_string()).or_default() += 1;
                if e["request"].is_null() {
                    return None;
                }
                op_of_request(&e["request"])
            })
            .collect();
        assert_eq!(ops.len(), writes.len(), "{v}: {kinds:?}");
        for (i, (a, b)) in ops.iter().zip(&writes).enumerate() {
            assert_eq!(a, b, "{v}: write #{i}");
        }
        // Non-generator entries: the conf change, the leader no-op, member attributes
        // and cluster version: v2 requests up to 3.5, v3 ClusterMemberAttrSet /
        // ClusterVersionSet requests from 3.6 on.
        assert_eq!(kinds.get("conf"), Some(&1));
        assert_eq!(kinds.get("noop"), Some(&1));
        let (attr_kind, other) = if v.counts_live_keys() { ("cluster", "v2") } else { ("v2", "cluster") };
        assert_eq!(kinds.get(attr_kind), Some(&2), "{v}: {kinds:?}");
        assert_eq!(kinds.get(other), None, "{v}: {kinds:?}");
        // Text dump: one line per entry, filters work.
        let puts = ok(&["wal", "dump", p(&v.fixture_dir()), "--type", "put"]);
        assert_eq!(puts.lines().count(), writes.iter().filter(|w| w["op"] == "put").count());
        let first = puts.lines().next().unwrap();
        assert!(first.ends_with("\tnormal\tput key=compact_rev_key value_len=1"), "{v}: {first}");
        let idx = first.split('\t').nth(1).unwrap();
        let one = ok(&["wal", "dump", p(&v.fixture_dir()), "--start-index", idx, "--end-index", idx]);
        assert_eq!(one.trim(), first);
    }
}

/// `wal dump` lists exactly the entries etcd's own reader (`wal.OpenForRead` +
/// `ReadAll` of that version) returns, and `wal verify` agrees the chain is whole.
fn dump_counts_like_etcds_reader(v: EtcdVersion) {
    let wal = v.fixture_dir().join("member/wal");
    let out = Command::new(v.walcount()).arg(&wal).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "walcount {v}: {}", String::from_utf8_lossy(&out.stderr));
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dump = ok(&["wal", "dump", "--json", p(&v.fixture_dir())]);
    let entries: Vec<Value> = dump.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(theirs["entries"].as_u64().unwrap() > 1000, "{theirs}");
    assert_eq!(entries.len() as u64, theirs["entries"].as_u64().unwrap(), "{v}: entries, ours vs etcd's reader");
    assert_eq!(entries.first().unwrap()["index"], theirs["first_index"], "{v}");
    assert_eq!(entries.last().unwrap()["index"], theirs["last_index"], "{v}");
    let verify: Value = serde_json::from_str(&ok(&["wal", "verify", "--json", p(&v.fixture_dir())])).unwrap();
    assert_eq!((verify["crc_ok"].as_bool(), verify["problems"].as_array().map(Vec::len)), (Some(true), Some(0)), "{v}");
    assert_eq!(verify["hard_state"]["commit"], theirs["commit"], "{v}: HardState.commit");
    assert_eq!(verify["hard_state"]["term"], theirs["term"], "{v}: HardState.term");
    assert_eq!(verify["last_index"], theirs["last_index"], "{v}");
}

etcdsnap_testkit::per_version!(dump_counts_like_etcds_reader);

#[test]
fn verify_json_and_exit_codes() {
    let v = EtcdVersion::V3_5_1;
    let out = ok(&["wal", "verify", "--json", p(&v.fixture_dir())]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["problems"], json!([]));
    assert_eq!(j["first_index"], json!(1));
    assert_eq!(j["last_index"], j["hard_state"]["commit"]);
    assert_eq!(j["consistent_index"], j["last_index"]);
    assert_eq!(j["crc_ok"], json!(true));
    assert_eq!(j["torn"], Value::Null);
    assert_eq!(j["segments"].as_array().unwrap().len(), 1);
    assert_eq!(j["snap_files"].as_array().unwrap().len(), 6);
    // A member dir and a wal dir work too.
    ok(&["wal", "verify", p(&v.fixture_dir().join("member"))]);
    ok(&["wal", "verify", p(&v.fixture_dir().join("member/wal"))]);

    let data = data_copy(v, "wal-cli-verify-bad");
    let seg = data.join("member/wal").join(SEG0);
    let mut b = fs::read(&seg).unwrap();
    b[200_000] ^= 0xff;
    fs::write(&seg, &b).unwrap();
    let o = etcdsnap(&["wal", "verify", "--json", p(&data)]);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["corruption"]["segment"], json!(SEG0));
    assert!(j["corruption"]["offset"].as_u64().unwrap() <= 200_000);
    assert!(j["corruption"]["index"].is_u64() || j["corruption"]["after_index"].is_u64());
    // Each problem is typed: a stable kind, the file and offset, and a message.
    let problems = j["problems"].as_array().unwrap();
    let corrupt = problems.iter().find(|p| p["file"] == json!(SEG0)).expect("a problem naming the segment");
    let kinds = ["crc-mismatch", "crc-record-mismatch", "decode", "truncated", "unknown-type", "metadata-conflict"];
    assert!(kinds.contains(&corrupt["kind"].as_str().unwrap()), "{corrupt}");
    assert_eq!(corrupt["offset"], j["corruption"]["offset"]);
    assert!(corrupt["message"].as_str().unwrap().starts_with("corrupt: "), "{corrupt}");
    for p in problems {
        let mut keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["file", "index", "kind", "message", "offset"], "{p}");
    }
    let o = etcdsnap(&["wal", "repair", p(&data)]);
    assert_eq!(o.status.code(), Some(1), "repair refuses corruption");
    assert!(String::from_utf8_lossy(&o.stdout).contains("refusing"));
    let o = etcdsnap(&["wal", "verify", "/nonexistent/dir"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Cuts the last segment inside its last sector-spanning entry record (torn write).
fn make_torn(seg: &Path) -> u64 {
    let dump = ok(&["wal", "verify", "--json", p(seg.parent().unwrap())]);
    let j: Value = serde_json::from_str(&dump).unwrap();
    let data_end = j["segments"][0]["data_end"].as_u64().unwrap();
    // Walk the frames ourselves: 8-byte length words, padding in the top byte.
    let b = fs::read(seg).unwrap();
    let mut off = 0u64;
    let mut frames = Vec::new();
    while off < data_end {
        let w = u64::from_le_bytes(b[off as usize..][..8].try_into().unwrap());
        let rec = w & !(0xff << 56);
        let pad = if w >> 63 == 1 { (w >> 56) & 7 } else { 0 };
        frames.push((off, 8 + rec + pad));
        off += 8 + rec + pad;
    }
    let &(start, len) = frames.iter().rev().find(|(o, l)| (o + 8) / 512 != (o + l - 1) / 512 && *l > 100).unwrap();
    let cut = ((start + 8) / 512 + 1) * 512;
    let end = (start + len).div_ceil(4096) * 4096;
    let mut b = b;
    b.truncate(cut as usize);
    b.resize(end as usize, 0);
    fs::write(seg, &b).unwrap();
    start
}

#[test]
fn torn_tail_repair_then_etcd_starts() {
    let v = EtcdVersion::V3_5_1;
    let data = data_copy(v, "wal-cli-torn");
    let off = make_torn(&data.join("member/wal").join(SEG0));
    let o = etcdsnap(&["wal", "verify", "--json", p(&data)]);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["torn"]["offset"], json!(off));
    assert_eq!(j["corruption"], Value::Null);
    let out = ok(&["wal", "repair", p(&data)]);
    assert!(out.contains("repaired"), "{out}");
    assert!(data.join("member/wal").join(format!("{SEG0}.broken")).exists());
    assert_eq!(fs::metadata(data.join("member/wal").join(SEG0)).unwrap().len(), off);
    let out = ok(&["wal", "repair", p(&data)]);
    assert!(out.contains("nothing to repair"), "{out}");
    // WAL is clean now (the db is ahead of the shortened log, which verify reports).
    let j: Value = serde_json::from_str(
        &String::from_utf8(etcdsnap(&["wal", "verify", "--json", p(&data.join("member/wal"))]).stdout).unwrap(),
    )
    .unwrap();
    assert_eq!(j["problems"], json!([]));
    fs::remove_file(data.join("member/wal").join(format!("{SEG0}.broken"))).unwrap();
    let server = EtcdServer::start(v, &data, free_port(), free_port());
    let got = server.ctl_json(&["get", "compact_rev_key"]);
    assert_eq!(kv_rows(&got).len(), 1);
    server.ctl_ok(&["put", "/after-repair", "x"]);
}

/// Expected (key, value) pairs after the RULES filter/rename, from the fixture's get.json.
fn expected_filtered(v: EtcdVersion) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    kv_rows(&v.expected_json("get.json"))
        .into_iter()
        .filter_map(|r| {
            let k = b64.decode(&r.key).unwrap();
            let val = b64.decode(&r.value).unwrap();
            if k == b"compact_rev_key" {
                return Some((k, val));
            }
            let rest = k.strip_prefix(b"/tenant-1/")?;
            let nk = match rest.strip_prefix(b"registry/") {
                Some(r) => [b"/registry/".as_slice(), r].concat(),
                None => k.clone(),
            };
            Some((nk, val))
        })
        .collect()
}

fn served(server: &EtcdServer, prefix: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let args: Vec<&str> = if prefix.is_empty() { vec!["get", "", "--prefix"] } else { vec!["get", prefix, "--prefix"] };
    kv_rows(&server.ctl_json(&args))
        .into_iter()
        .map(|r| (b64.decode(&r.key).unwrap(), b64.decode(&r.value).unwrap()))
        .collect()
}

/// `etcdsnap rewrite --data-dir`: db, WAL and .snap files in one command.
fn rewrite_data_dir(src: &Path, out: &Path) {
    let mut args = vec!["rewrite", "--data-dir", p(src), p(out)];
    args.extend(RULES);
    args.push("--json");
    let rep: Value = serde_json::from_str(&ok(&args)).unwrap();
    let keys: Vec<&str> = rep.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["input", "output", "db", "wal", "snap_files", "stale_temp_files"], "{rep}");
    assert_eq!(rep["stale_temp_files"], serde_json::json!([]), "{rep}");
    let wal = &rep["wal"];
    assert!(wal["emptied"].as_u64().unwrap() > 0, "{rep}");
    assert_eq!(wal["compact_rev_key"], "kept", "{rep}");
    assert_eq!(wal["rules"].as_array().unwrap().len(), RULES.len() / 2, "{rep}");
    assert_eq!(rep["db"]["compact_rev_key"], "kept", "{rep}");
    assert_eq!(rep["db"]["trailer_sha256"], Value::Null, "a data dir's db has no trailer: {rep}");
    let snaps = fs::read_dir(src.join("member/snap"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".snap"))
        .count();
    assert_eq!(rep["snap_files"].as_u64(), Some(snaps as u64));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(out).unwrap().permissions().mode() & 0o777, 0o700);
    }
    ok(&["wal", "verify", p(out)]);
}

/// A refused data-dir rewrite leaves nothing beside its output.
#[test]
fn data_dir_rewrite_refusals_leave_nothing() {
    let v = EtcdVersion::V3_5_1;
    let dir = scratch("wal-cli-datadir-refused");
    let out = dir.join("data");
    let src = v.fixture_dir();
    for (extra, want) in [
        (&["--include", "/tenant-1/"][..], "--keep-key compact_rev_key or --drop-key compact_rev_key"),
        (&["--include", "/tenant-9/", "--keep-key", "compact_rev_key"], "--include /tenant-9/ matched no key"),
    ] {
        let mut args = vec!["rewrite", "--data-dir", p(&src), p(&out)];
        args.extend(extra);
        let o = etcdsnap(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{err}");
        assert!(fs::read_dir(&dir).unwrap().next().is_none(), "nothing written: {err}");
    }
    let snap = v.fixture_snapshot();
    let o = etcdsnap(&["rewrite", "--data-dir", p(&snap), p(&out)]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("is a file; expected an etcd data dir"));
}

/// `wal rewrite` follows the snapshot rewrite's compact_rev_key rule: a prefix
/// filter that would drop kube-apiserver's shared key needs a rule naming it.
#[test]
fn wal_rewrite_needs_a_compact_rev_key_rule() {
    let v = EtcdVersion::V3_5_1;
    let dir = scratch("wal-cli-crk");
    let out = dir.join("wal");
    let o = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["wal", "rewrite", p(&v.fixture_dir()), p(&out), "--include", "/tenant-1/"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--keep-key compact_rev_key or --drop-key compact_rev_key"), "{err}");
    assert!(fs::read_dir(&dir).unwrap().next().is_none(), "nothing written");
    let rep: Value = serde_json::from_str(&ok(&[
        "wal",
        "rewrite",
        p(&v.fixture_dir()),
        p(&out),
        "--include",
        "/tenant-1/",
        "--drop-key",
        "compact_rev_key",
        "--json",
    ]))
    .unwrap();
    assert_eq!(rep["compact_rev_key"], "dropped", "{rep}");
}

#[test]
fn rewritten_data_dir_is_served_by_etcd() {
    for v in EtcdVersion::ALL {
        let out = scratch(&format!("wal-cli-rewrite-{v}")).join("data");
        rewrite_data_dir(&v.fixture_dir(), &out);
        let server = EtcdServer::start(v, &out, free_port(), free_port());
        assert_eq!(served(&server, ""), expected_filtered(v), "{v}");
    }
}

fn spawn_etcd(v: EtcdVersion, data: &Path, client: u16, peer: u16) -> std::process::Child {
    let c = format!("http://127.0.0.1:{client}");
    let pu = format!("http://127.0.0.1:{peer}");
    let log = fs::File::create(data.with_extension("killed.log")).unwrap();
    Command::new(v.etcd())
        .args(["--name", "default", "--data-dir", p(data)])
        .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
        .args(["--listen-peer-urls", &pu, "--initial-advertise-peer-urls", &pu])
        .args(["--initial-cluster", &format!("default={pu}")])
        // The backend commits only every 10 minutes: the writes below stay in the WAL only.
        .args(["--backend-batch-interval", "10m", "--backend-batch-limit", "1000000"])
        .env_remove("ETCD_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn ctl(v: EtcdVersion, client: u16, args: &[&str]) -> Output {
    v.etcdctl_command()
        .args(["--endpoints", &format!("http://127.0.0.1:{client}")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Starts etcd on `data` with a backend that never commits, waits for it.
fn start_wal_only(v: EtcdVersion, data: &Path) -> (std::process::Child, u16) {
    let client = free_port();
    let child = spawn_etcd(v, data, client, free_port());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ctl(v, client, &["endpoint", "health"]).status.success() {
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, client)
}

fn put_rev(v: EtcdVersion, client: u16, key: &str, value: &str) -> i64 {
    let o = ctl(v, client, &["put", key, value, "-w", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    j["header"]["revision"].as_i64().unwrap()
}

/// kube-apiserver's update: a txn that writes only if the key still has the
/// mod_revision the writer read; returns whether the success branch ran.
fn guarded_update(v: EtcdVersion, client: u16, key: &str, mod_rev: i64, value: &str) -> bool {
    let mut child = v
        .etcdctl_command()
        .args(["--endpoints", &format!("http://127.0.0.1:{client}"), "txn", "-w", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let script = format!("mod(\"{key}\") = \"{mod_rev}\"\n\nput {key} {value}\n\nput {key}-lost {value}\n\n");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    j["succeeded"].as_bool().unwrap_or(false)
}

fn wal_consistent_and_last(data: &Path) -> (u64, u64) {
    let j: Value =
        serde_json::from_str(&String::from_utf8(etcdsnap(&["wal", "verify", "--json", p(data)]).stdout).unwrap())
            .unwrap();
    (j["consistent_index"].as_u64().unwrap(), j["last_index"].as_u64().unwrap())
}

/// Writes only in the WAL (the db lags: etcd was killed before its backend
/// committed) replay on the rewritten data dir with their own revisions: a
/// guarded update comparing mod_revision takes the same branch as in the source.
#[test]
fn writes_only_in_the_wal_survive_the_rewrite() {
    let v = EtcdVersion::V3_5_1;
    let data = data_copy(v, "wal-cli-walonly");
    let (mut child, client) = start_wal_only(v, &data);
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(put_rev(v, client, &format!("/tenant-1/registry/walonly/k{i}"), &format!("v{i}")));
    }
    assert!(ctl(v, client, &["del", "/tenant-1/registry/namespaces/default"]).status.success());
    assert!(guarded_update(v, client, "/tenant-1/registry/walonly/k0", revs[0], "updated"));
    let last_rev = put_rev(v, client, "/tenant-1/registry/walonly/last", "x");
    child.kill().unwrap(); // SIGKILL: no final backend commit.
    child.wait().unwrap();
    let (ci, last) = wal_consistent_and_last(&data);
    assert!(ci < last, "the db must lag the WAL (consistent_index {ci}, last index {last})");

    let out = scratch("wal-cli-walonly-out").join("data");
    rewrite_data_dir(&data, &out);
    let server = EtcdServer::start(v, &out, free_port(), free_port());
    let got = served(&server, "/registry/walonly/");
    let mut want: BTreeMap<Vec<u8>, Vec<u8>> =
        (1..5).map(|i| (format!("/registry/walonly/k{i}").into_bytes(), format!("v{i}").into_bytes())).collect();
    want.insert(b"/registry/walonly/k0".to_vec(), b"updated".to_vec());
    want.insert(b"/registry/walonly/last".to_vec(), b"x".to_vec());
    assert_eq!(got, want, "the guarded update took its success branch on replay too");
    let j = server.ctl_json(&["get", "/registry/walonly/last"]);
    assert_eq!(j["kvs"][0]["mod_revision"].as_i64(), Some(last_rev), "replayed writes keep their revisions");
    assert_eq!(j["header"]["revision"].as_i64(), Some(last_rev));
    assert!(served(&server, "/registry/namespaces/default").is_empty());
    assert_eq!(served(&server, "/registry/namespaces/").len(), 4);
}

/// A filtered write of another tenant among the writes etcd replays would shift
/// every later replayed revision (a guarded update would then take its else
/// branch and be lost without an error): `wal rewrite` refuses, saying to stop
/// etcd cleanly; after a clean stop the same rewrite is served with the
/// source's revisions.
#[test]
fn filtered_writes_etcd_would_replay_are_refused() {
    let v = EtcdVersion::V3_5_1;
    let data = data_copy(v, "wal-cli-replay-shift");
    let (mut child, client) = start_wal_only(v, &data);
    let r1 = put_rev(v, client, "/tenant-1/registry/walonly/a", "1");
    put_rev(v, client, "/tenant-2/registry/walonly/other", "filtered");
    assert!(guarded_update(v, client, "/tenant-1/registry/walonly/a", r1, "2"));
    child.kill().unwrap();
    child.wait().unwrap();
    let (ci, last) = wal_consistent_and_last(&data);
    assert!(ci < last);

    let dir = scratch("wal-cli-replay-shift-out");
    let out_wal = dir.join("wal");
    let mut args = vec!["wal", "rewrite", p(&data), p(&out_wal)];
    args.extend(RULES);
    let o = etcdsnap(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("stop etcd cleanly") && err.contains(&format!("consistent_index {ci}")), "{err}");
    assert!(fs::read_dir(&dir).unwrap().next().is_none(), "nothing written");

    // A clean stop: etcd applies the WAL to the db and commits it at shutdown.
    let mut server = EtcdServer::start(v, &data, free_port(), free_port());
    let source_rev = server.ctl_json(&["get", "/tenant-1/registry/walonly/a"])["kvs"][0]["mod_revision"].as_i64();
    server.stop();
    let (ci, last) = wal_consistent_and_last(&data);
    assert_eq!(ci, last, "after a clean stop the db holds every applied write");
    let out = scratch("wal-cli-replay-shift-clean").join("data");
    rewrite_data_dir(&data, &out);
    let server = EtcdServer::start(v, &out, free_port(), free_port());
    let j = server.ctl_json(&["get", "/registry/walonly/a"]);
    assert_eq!(j["kvs"][0]["mod_revision"].as_i64(), source_rev);
    assert_eq!(
        served(&server, "/registry/walonly/"),
        BTreeMap::from([(b"/registry/walonly/a".to_vec(), b"2".to_vec())])
    );
}
