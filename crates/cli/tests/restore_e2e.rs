//! `etcdsnap restore` against every etcd line's own restore and server:
//! parity with the stock `snapshot restore` of the snapshot's line (the same
//! WAL bytes, the same `.snap` membership, the same Go bbolt dump of the db
//! but where DIFFERENCES.md says why not), three-member clusters restored in
//! one run that start, elect, serve the same revision and HashKV on every
//! member, replicate writes and survive a restart, and the refusals.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use etcdsnap_proto::{raftpb, snappb, Message};
use etcdsnap_testkit::{free_port, scratch, EtcdServer, EtcdVersion};
use serde_json::Value;

const CLUSTER3: &str = "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:2381,n3=http://127.0.0.1:2382";

fn etcdsnap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap")).args(args).output().unwrap()
}

fn ok_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--json", "-q"]);
    let out = etcdsnap(&all);
    assert!(out.status.success(), "etcdsnap {all:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn one_file(dir: &Path, suffix: &str) -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(v.len(), 1, "one {suffix} in {}: {v:?}", dir.display());
    v.pop().unwrap()
}

/// The membership a `.snap` file holds: each member's raftAttributes, the
/// v2 store's counters, and the raft metadata (ConfState, index, term).
fn snap_membership(path: &Path) -> (Vec<(String, String)>, Value, Vec<u8>) {
    let file = snappb::Snapshot::decode(&std::fs::read(path).unwrap()[..]).unwrap();
    let data = file.data.unwrap();
    assert_eq!(file.crc, etcdsnap_proto::crc32c::checksum(&data), "{}: crc", path.display());
    let raft = raftpb::Snapshot::decode(&data[..]).unwrap();
    let store: Value = serde_json::from_slice(raft.data.as_deref().unwrap()).unwrap();
    let members = store["Root"]["Children"]["0"]["Children"]["members"]["Children"].as_object().unwrap();
    let mut m: Vec<(String, String)> = members
        .iter()
        .map(|(id, node)| (id.clone(), node["Children"]["raftAttributes"]["Value"].as_str().unwrap().to_string()))
        .collect();
    m.sort();
    (m, store["Stats"].clone(), raft.metadata.encode_to_vec())
}

/// The stock restore of `version` as member `name` of [`CLUSTER3`].
fn stock_restore(version: EtcdVersion, snapshot: &Path, name: &str, data_dir: &Path) {
    let port = 2380 + name[1..].parse::<u16>().unwrap() - 1;
    let mut cmd = version.snapshot_tool_command();
    cmd.args(["snapshot", "restore", s(snapshot), "--name", name, "--initial-cluster", CLUSTER3]).args([
        "--initial-advertise-peer-urls",
        &format!("http://127.0.0.1:{port}"),
        "--data-dir",
        s(data_dir),
    ]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Byte parity with the stock restore of each snapshot's own line.
#[test]
fn parity_with_the_stock_restore_of_every_line() {
    for version in EtcdVersion::ALL {
        let dir = scratch(&format!("restore-parity-{version}"));
        let snapshot = version.fixture_snapshot();
        let ours = dir.join("ours");
        let r = ok_json(&["restore", s(&snapshot), "--initial-cluster", CLUSTER3, "--members-out", s(&ours)]);
        assert_eq!(r["etcd_line"], version.minor(), "{r}");
        assert_eq!(r["members"].as_array().unwrap().len(), 3);
        for name in ["n1", "n2", "n3"] {
            let theirs = dir.join(format!("stock-{name}"));
            stock_restore(version, &snapshot, name, &theirs);
            let mine = ours.join(name);
            let ctx = format!("etcd {version} member {name}");
            // The WAL: identical bytes (etcd preallocates 64 MB; ours is sparse).
            let wal = |d: &Path| std::fs::read(one_file(&d.join("member/wal"), ".wal")).unwrap();
            assert!(wal(&theirs) == wal(&mine), "{ctx}: WAL bytes differ");
            // The .snap: same name and membership; identical bytes up to 3.5
            // (3.6+ add the members in Go map order, which is random).
            let (a, b) = (one_file(&theirs.join("member/snap"), ".snap"), one_file(&mine.join("member/snap"), ".snap"));
            assert_eq!(a.file_name(), b.file_name(), "{ctx}");
            assert_eq!(snap_membership(&a), snap_membership(&b), "{ctx}: .snap membership");
            if version < EtcdVersion::V3_6_16 {
                assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "{ctx}: .snap bytes");
            }
            // The db, as that line's Go bbolt dumps it.
            let dump = |d: &Path| String::from_utf8(version.bbolt().dump(&d.join("member/snap/db"))).unwrap();
            let (theirs_dump, mine_dump) = (dump(&theirs), dump(&mine));
            if version == EtcdVersion::V3_4_23 {
                // 3.4's restore leaves the old members in the db (DIFFERENCES.md); all else is equal.
                let without = |d: &str| -> Vec<String> {
                    d.lines()
                        .filter(|l| !l.contains(" 6d656d62657273 ") && !l.starts_with("END"))
                        .map(String::from)
                        .collect()
                };
                assert_eq!(without(&theirs_dump), without(&mine_dump), "{ctx}: db dump besides members");
                assert_eq!(
                    mine_dump.lines().filter(|l| l.starts_with("K 6d656d62657273 ")).count(),
                    3,
                    "{ctx}: our members bucket"
                );
            } else {
                assert_eq!(theirs_dump, mine_dump, "{ctx}: Go bbolt dump of the db");
            }
        }
    }
}

/// Three members restored in one run start on each line and behave as one cluster.
#[test]
fn three_members_from_one_run_start_on_every_line() {
    for version in EtcdVersion::ALL {
        let dir = scratch(&format!("restore-cluster-{version}"));
        run_cluster(version, &dir, &[], |_| {});
    }
}

/// A tenant move in the same command: the restored cluster serves the tenant under /registry/.
#[test]
fn tenant_move_in_the_restore_command() {
    for version in EtcdVersion::ALL {
        let dir = scratch(&format!("restore-tenant-{version}"));
        let rules = [
            "--include",
            "/tenant-1/",
            "--keep-key",
            "compact_rev_key",
            "--rename",
            "/tenant-1/registry/=/registry/",
            "--bump-revision",
            "1000000",
            "--mark-compacted",
        ];
        run_cluster(version, &dir, &rules, |servers| {
            let all = servers[0].ctl_json(&["get", "", "--prefix", "--keys-only"]);
            let keys: Vec<String> = all["kvs"]
                .as_array()
                .map(|kvs| {
                    kvs.iter()
                        .map(|kv| {
                            use base64::Engine;
                            let k =
                                base64::engine::general_purpose::STANDARD.decode(kv["key"].as_str().unwrap()).unwrap();
                            String::from_utf8_lossy(&k).into_owned()
                        })
                        .collect()
                })
                .unwrap_or_default();
            assert!(!keys.is_empty(), "{version}: no keys after the move");
            for k in &keys {
                assert!(
                    k.starts_with("/registry/")
                        || k.starts_with("/tenant-1/")
                        || k == "compact_rev_key"
                        || k.starts_with("restore-e2e"),
                    "{version}: key {k} is outside the moved tenant"
                );
            }
            assert!(keys.iter().any(|k| k.starts_with("/registry/")), "{version}: nothing renamed: {keys:?}");
        });
    }
}

/// Restores the fixture of `version` into three members with `extra` flags,
/// starts them, checks the cluster, then runs `more` on the servers.
fn run_cluster(version: EtcdVersion, dir: &Path, extra: &[&str], more: impl FnOnce(&[EtcdServer])) {
    let names = ["n1", "n2", "n3"];
    let ports: Vec<(u16, u16)> = names.iter().map(|_| (free_port(), free_port())).collect();
    let cluster: Vec<String> =
        names.iter().zip(&ports).map(|(n, (_, p))| format!("{n}=http://127.0.0.1:{p}")).collect();
    let cluster = cluster.join(",");
    let out = dir.join("members");
    let snapshot = version.fixture_snapshot();
    let mut args = vec!["restore", s(&snapshot), "--initial-cluster", &cluster, "--members-out"];
    args.push(s(&out));
    args.extend_from_slice(extra);
    let report = ok_json(&args);
    let ctx = format!("etcd {version}");
    let mut servers: Vec<EtcdServer> = names
        .iter()
        .zip(&ports)
        .map(|(n, (c, p))| EtcdServer::spawn_member(version, n, &out.join(n), *c, *p, &cluster))
        .collect();
    for srv in &mut servers {
        srv.wait_healthy();
    }
    // member list matches the flags.
    let list = servers[0].ctl_json(&["member", "list"]);
    let mut got: Vec<(String, String, String)> = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                format!("{:x}", m["ID"].as_u64().unwrap()),
                m["peerURLs"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String, String)> = report["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let name = m["name"].as_str().unwrap().to_string();
            let i = names.iter().position(|n| *n == name).unwrap();
            (name, m["id"].as_str().unwrap().to_string(), format!("http://127.0.0.1:{}", ports[i].1))
        })
        .collect();
    want.sort();
    assert_eq!(got, want, "{ctx}: member list");
    assert_eq!(format!("{:x}", list["header"]["cluster_id"].as_u64().unwrap()), report["cluster_id"], "{ctx}");
    // Same revision and HashKV on every member, equal to the report's.
    let revision = report["revision"].as_i64().unwrap();
    let mut hashes = Vec::new();
    for srv in &servers {
        let st = srv.ctl_json(&["endpoint", "status"]);
        assert_eq!(
            st[0]["Status"]["header"]["revision"].as_i64(),
            Some(revision),
            "{ctx}: revision of {}",
            srv.endpoint()
        );
        let hk = srv.ctl_json(&["endpoint", "hashkv"]);
        hashes.push(hk[0]["HashKV"]["hash"].as_u64().unwrap());
    }
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{ctx}: members disagree on HashKV {hashes:?}");
    if version.keeps_compact_tombstone() {
        // The report's HashKV is the ≥3.5.16 rule's (3.4.23 and 3.5.1 also hash
        // the tombstone at the compact revision).
        assert_eq!(hashes[0], report["hashkv"].as_u64().unwrap(), "{ctx}: HashKV vs the report");
    }
    // Writes replicate.
    servers[0].ctl_ok(&["put", "restore-e2e", "replicated"]);
    let got = servers[2].ctl_ok(&["get", "restore-e2e", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&got).trim(), "replicated", "{ctx}");
    // A member restarted re-reads its WAL and rejoins.
    servers[1].stop();
    servers[0].ctl_ok(&["put", "restore-e2e-2", "while-down"]);
    let (c, p) = ports[1];
    servers[1] = EtcdServer::spawn_member(version, names[1], &out.join(names[1]), c, p, &cluster);
    servers[1].wait_healthy();
    let got = servers[1].ctl_ok(&["get", "restore-e2e-2", "--print-value-only", "--consistency", "l"]);
    assert_eq!(String::from_utf8_lossy(&got).trim(), "while-down", "{ctx}: after restart");
    more(&servers);
    // A snapshot of the restored cluster verifies.
    let snap = dir.join("saved.db");
    servers[0].ctl_ok(&["snapshot", "save", s(&snap)]);
    let v = etcdsnap(&["verify", s(&snap)]);
    assert!(
        v.status.success(),
        "{ctx}: verify of the restored cluster's snapshot: {}",
        String::from_utf8_lossy(&v.stdout)
    );
    for srv in &mut servers {
        srv.stop();
    }
}

/// Lists `dir`'s entries (names), for "nothing left behind".
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn refusals_leave_nothing_behind() {
    let dir = scratch("restore-refusals");
    let snap = EtcdVersion::V3_5_35.fixture_snapshot();
    let refused = |args: &[&str], want: &str| {
        let before = entries(&dir);
        let out = etcdsnap(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
        assert_eq!(entries(&dir), before, "{args:?} left files behind");
    };
    let data = dir.join("d");
    let d = s(&data);
    // A member not in the cluster; duplicate URLs; URLs that do not match.
    refused(
        &["restore", s(&snap), "--name", "x", "--initial-cluster", CLUSTER3, "--data-dir", d],
        "couldn't find local name \"x\"",
    );
    refused(
        &[
            "restore",
            s(&snap),
            "--name",
            "a",
            "--initial-cluster",
            "a=http://h:1,b=http://h:1",
            "--initial-advertise-peer-urls",
            "http://h:1",
            "--data-dir",
            d,
        ],
        "duplicate url",
    );
    refused(
        &[
            "restore",
            s(&snap),
            "--name",
            "n1",
            "--initial-cluster",
            CLUSTER3,
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:9",
            "--data-dir",
            d,
        ],
        "missing from --initial-advertise-peer-urls",
    );
    // Duplicate names under --members-out name one member with two URLs: etcd's rule.
    // A damaged trailer, and a raw db, without --skip-hash-check.
    let bad = dir.join("bad.db");
    let mut bytes = std::fs::read(&snap).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&bad, &bytes).unwrap();
    refused(&["restore", s(&bad), "--data-dir", d], "trailer mismatch");
    // Missing parents are created (as etcdutl does), and removed again on failure.
    refused(&["restore", s(&bad), "--data-dir", s(&dir.join("p/q/r"))], "trailer mismatch");
    let raw = EtcdVersion::V3_5_35.fixture_raw_db();
    refused(&["restore", s(&raw), "--data-dir", d], "--skip-hash-check");
    // With it, both restore.
    let r = ok_json(&["restore", s(&bad), "--data-dir", d, "--skip-hash-check"]);
    assert_eq!(r["members"][0]["name"], "default");
    // An existing non-empty data dir is refused, and kept as it was.
    let marker = data.join("member/snap/db");
    let before = std::fs::read(&marker).unwrap();
    refused(&["restore", s(&snap), "--data-dir", d], "not empty");
    assert!(std::fs::read(&marker).unwrap() == before);
    // --force replaces it.
    let r = ok_json(&["restore", s(&snap), "--data-dir", d, "--force", "--bump-revision", "5", "--mark-compacted"]);
    assert!(r["revision"].as_i64().unwrap() > 5, "{r}");
    assert!(std::fs::read(&marker).unwrap() != before, "--force did not replace the db");
    assert_eq!(entries(&dir), ["bad.db", "d"], "--force left the old dir behind");
    ok_json(&["restore", s(&snap), "--data-dir", s(&dir.join("p/q/r"))]);
    assert!(dir.join("p/q/r/member/snap/db").is_file());
    std::fs::remove_dir_all(dir.join("p")).unwrap();
    // A wal dir that exists is refused.
    let wal = dir.join("w");
    std::fs::create_dir(&wal).unwrap();
    refused(&["restore", s(&snap), "--data-dir", s(&dir.join("e")), "--wal-dir", s(&wal)], "wal-dir");
    std::fs::remove_dir(&wal).unwrap();
    // A separate wal dir: the WAL goes there.
    ok_json(&["restore", s(&snap), "--data-dir", s(&dir.join("e")), "--wal-dir", s(&wal)]);
    assert_eq!(entries(&wal), ["0000000000000000-0000000000000000.wal"]);
    assert!(!dir.join("e/member/wal").exists());
}

/// `--at-revision N`: the restored member serves what the original served at
/// N (`get --rev N`), the revision does not go back, and N below the compact
/// revision is refused naming it.
#[test]
fn at_revision_serves_the_past() {
    for version in EtcdVersion::ALL {
        let dir = scratch(&format!("restore-at-{version}"));
        let snapshot = version.fixture_snapshot();
        let original = etcdsnap_testkit::restore_and_start(version, &snapshot, &format!("restore-at-orig-{version}"));
        let st = original.ctl_json(&["endpoint", "status"]);
        let latest = st[0]["Status"]["header"]["revision"].as_i64().unwrap();
        let status = ok_json(&["status", s(&snapshot)]);
        let compact = status["finished_compact_revision"].as_i64();
        let compact = compact.unwrap_or_else(|| panic!("no compact revision in {status}"));
        let n = compact + (latest - compact) / 2;
        assert!(n > compact && n < latest, "{version}: fixture has no history to go back in ({compact}..{latest})");
        let past = original.ctl_json(&["get", "", "--prefix", "--rev", &n.to_string()]);
        let data = dir.join("data");
        let (c, p) = (free_port(), free_port());
        let peer = format!("http://127.0.0.1:{p}");
        let r = ok_json(&[
            "restore",
            s(&snapshot),
            "--at-revision",
            &n.to_string(),
            "--initial-cluster",
            &format!("default={peer}"),
            "--initial-advertise-peer-urls",
            &peer,
            "--data-dir",
            s(&data),
        ]);
        assert!(r["rewrite"]["revisions"]["cut"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["rewrite"]["at_revision"].as_i64(), Some(n));
        let restored = EtcdServer::start(version, &data, c, p);
        let now = restored.ctl_json(&["get", "", "--prefix"]);
        assert_eq!(now["kvs"], past["kvs"], "{version}: key space at {n}");
        assert_eq!(now["header"]["revision"].as_i64(), Some(latest), "{version}: the revision went back");
        // Below the compact revision: refused, naming it.
        let out = etcdsnap(&[
            "restore",
            s(&snapshot),
            "--at-revision",
            &(compact - 1).to_string(),
            "--data-dir",
            s(&dir.join("x")),
        ]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("compact revision {compact}")), "{err}");
        assert!(!dir.join("x").exists());
    }
}
