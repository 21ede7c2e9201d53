//! The tenant move proven with real Kubernetes: a shared etcd, two real
//! kube-apiservers (1.37.2, built from Go modules) with `--etcd-prefix`
//! `/tenant-a/registry` and `/tenant-b/registry`, Secrets encrypted at rest,
//! and a client-go shared informer that lives through the move.
//!
//! Tenant A (aescbc, then secretbox under a second EncryptionConfiguration) is
//! moved with `etcdsnap rewrite --include /tenant-a/ --keep-key compact_rev_key
//! --rename /tenant-a/registry/=/registry/ --bump-revision N --mark-compacted`,
//! stock `etcdutl snapshot restore`, a new etcd, and kube-apiserver with
//! `--etcd-prefix=/registry` on the same address. The informer (one process,
//! never restarted) must re-list on "too old resource version", hold exactly
//! the live objects, and see new writes with resourceVersions above any it saw;
//! every object read through the new apiserver (Secrets decrypted) equals what
//! the old one served.
//!
//! Negative controls: the same move without `--bump-revision`, from a snapshot
//! older than what the informer saw, hands out resourceVersions the informer
//! already saw, and a watch resuming from its last one is accepted and misses
//! a new write; tenant B (aesgcm, bound to the etcd key) is refused by
//! etcdsnap, and moved anyway its apiserver never gets ready and cannot read
//! the Secrets.
//!
//! Tenant B's Secrets are written in sequence under aesgcm, KMS v2 (the
//! `kmsplugin` oracle on k8s.io/kms, a unix socket kube-apiserver and etcdsnap
//! share) and aescbc, and it moves with `--reencrypt` its EncryptionConfiguration:
//! a new kube-apiserver with `--etcd-prefix=/registry` reads every Secret as
//! the old one served it. Without `--reencrypt`, with a wrong aesgcm key, or
//! with the plugin unreachable the move is refused with nothing written.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

mod etcd_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use etcdsnap_testkit::kube::{
    service_account_keys, write_encryption_config, ApiserverConfig, Informer, KmsPlugin, KubeApiserver, Provider,
    KUBE_VERSION,
};
use etcdsnap_testkit::{free_port, kv_rows, per_version, restore, scratch, EtcdServer, EtcdVersion};
use serde_json::{json, Value};

/// The bump: far above any revision the shared etcd reaches in the test.
const BUMP: u64 = 1_000_000;
/// Tenant A's namespace (watched by the informer) and tenant B's.
const NS_A: &str = "shop";
const NS_B: &str = "bank";
/// What the test reads back through each apiserver, in `k8sdriver dump` form.
const RESOURCES_A: [&str; 5] =
    ["v1/namespaces", "v1/configmaps@shop", "v1/secrets@shop", "example.com/v1/widgets@shop", "v1/events@shop"];

#[path = "k8s_e2e/objects.rs"]
mod objects;
use objects::*;

fn rv_of(obj: &Value) -> u64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no numeric resourceVersion in {obj}"))
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_else(|| panic!("no name in {obj}"))
}

/// kind → name → resourceVersion of the ConfigMaps and Secrets in a dump.
fn live_rvs(dump: &[Value]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut m: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for o in dump {
        let kind = o["kind"].as_str().unwrap_or_default();
        if kind == "ConfigMap" || kind == "Secret" {
            m.entry(kind.to_string()).or_default().insert(name_of(o).to_string(), rv_of(o).to_string());
        }
    }
    m
}

// ---------------------------------------------------------------------------
// Tools

fn etcdsnap_rewrite(input: &Path, output: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .arg("rewrite")
        .arg(input)
        .arg(output)
        .args(args)
        .arg("--json")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Rewrites, asserting success; returns the JSON report.
fn rewrite_ok(input: &Path, output: &Path, args: &[&str]) -> Value {
    let out = etcdsnap_rewrite(input, output, args);
    assert!(
        out.status.success(),
        "etcdsnap rewrite {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn move_args(tenant: &str, bump: Option<u64>) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--include".into(),
        format!("/{tenant}/"),
        "--keep-key".into(),
        "compact_rev_key".into(),
        "--rename".into(),
        format!("/{tenant}/registry/=/registry/"),
    ];
    if let Some(n) = bump {
        a.extend(["--bump-revision".into(), n.to_string()]);
    }
    a.push("--mark-compacted".into());
    a
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `etcdctl snapshot save` of `server` into `path`; returns the snapshot's revision.
fn snapshot_save(server: &EtcdServer, path: &Path) -> u64 {
    server.ctl_ok(&["snapshot", "save", path.to_str().unwrap()]);
    let out = Command::new(server.version().etcdutl())
        .args(["snapshot", "status", "-w", "json"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "snapshot status: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["revision"].as_u64().unwrap()
}

/// Restores `snapshot` into `<dir>/data`, by `etcdsnap restore` or (`stock`) etcdutl, and starts etcd on it.
fn restore_start(version: EtcdVersion, snapshot: &Path, dir: &Path, stock: bool) -> EtcdServer {
    let (data, client, peer) = (dir.join("data"), free_port(), free_port());
    if stock {
        restore(version, snapshot, &data, peer);
    } else {
        etcd_support::etcdsnap_restore(snapshot, &data, peer);
    }
    EtcdServer::start(version, &data, client, peer)
}

/// The raw value of `key` as etcd stores it.
/// Revisions under `prefix` in a snapshot's `key` bucket whose value is sealed
/// with a key-bound provider (aesgcm, KMS v2).
fn key_bound_revisions(snapshot: &Path, prefix: &[u8]) -> u64 {
    let data = std::fs::read(snapshot).unwrap();
    let (image, _) = etcdsnap_mvcc::trailer::split(&data);
    let db = etcdsnap_bolt::Db::open(image).unwrap();
    let bucket = db.bucket(&[b"key"]).unwrap().unwrap();
    let bound = |v: &[u8]| v.starts_with(b"k8s:enc:aesgcm:") || v.starts_with(b"k8s:enc:kms:v2:");
    let kvs = bucket.cursor().map(|e| e.unwrap()).filter(|e| !e.value.is_empty());
    kvs.filter(|e| {
        let kv = etcdsnap_mvcc::kv::KvRef::parse(e.value).unwrap();
        kv.key.starts_with(prefix) && bound(kv.value)
    })
    .count() as u64
}

fn etcd_value(server: &EtcdServer, key: &str) -> Vec<u8> {
    let mut out = server.ctl_ok(&["get", key, "--print-value-only"]);
    assert!(!out.is_empty(), "{key} not found in etcd {}", server.endpoint());
    out.pop(); // etcdctl's newline
    out
}

/// `etcdsnap keys FILE --prefix P --decode --json`: key → its `kube` field.
fn decoded_keys(file: &Path, prefix: &str) -> BTreeMap<String, Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .arg("keys")
        .arg(file)
        .args(["--prefix", prefix, "--decode", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "etcdsnap keys --decode: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["key"].as_str().unwrap().to_string(), v["kube"].clone())
        })
        .collect()
}

/// The etcd key kube-apiserver stores `obj` under (below `--etcd-prefix`).
fn storage_key(obj: &Value) -> String {
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
    let resource = match obj["kind"].as_str().unwrap() {
        "Namespace" => "namespaces".to_string(),
        "ConfigMap" => "configmaps".to_string(),
        "Secret" => "secrets".to_string(),
        "Event" => "events".to_string(),
        "Widget" => "example.com/widgets".to_string(),
        k => panic!("no storage key for {k}"),
    };
    match ns {
        Some(ns) => format!("/registry/{resource}/{ns}/{}", name_of(obj)),
        None => format!("/registry/{resource}/{}", name_of(obj)),
    }
}

/// `keys --decode` of the moved snapshot names every object the new apiserver
/// serves as the API shows it (Secrets: provider and key name instead).
fn assert_decode_matches_api(moved: &Path, objects: &[Value]) {
    let decoded = decoded_keys(moved, "/registry/");
    let fields =
        ["type", "api_version", "kind", "namespace", "name", "uid", "creation_timestamp", "labels", "size", "encoding"];
    for obj in objects {
        let key = storage_key(obj);
        let d = decoded.get(&key).unwrap_or_else(|| panic!("{key} not in keys --decode"));
        if obj["kind"] == "Secret" {
            assert_eq!(d["type"], "encrypted", "{key}: {d}");
            assert!(matches!(d["provider"].as_str(), Some("aescbc" | "secretbox")), "{key}: {d}");
            assert!(matches!(d["key_name"].as_str(), Some("key-cbc" | "key-box")), "{key}: {d}");
            continue;
        }
        let mut names: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut want = fields.to_vec();
        want.sort_unstable();
        assert_eq!(names, want, "{key}: {d}");
        assert_eq!(d["type"], "object");
        assert_eq!(d["api_version"], obj["apiVersion"], "{key}");
        assert_eq!(d["kind"], obj["kind"], "{key}");
        assert_eq!(d["name"], obj["metadata"]["name"], "{key}");
        assert_eq!(d["namespace"].as_str().unwrap(), obj["metadata"]["namespace"].as_str().unwrap_or(""), "{key}");
        assert_eq!(d["uid"], obj["metadata"]["uid"], "{key}");
        assert_eq!(d["creation_timestamp"], obj["metadata"]["creationTimestamp"], "{key}");
        assert_eq!(d["labels"], obj["metadata"].get("labels").cloned().unwrap_or(json!({})), "{key}");
        let encoding = if obj["kind"] == "Widget" { "json" } else { "protobuf" };
        assert_eq!(d["encoding"], encoding, "{key}");
        assert!(d["size"].as_u64().unwrap() > 0);
    }
}

// ---------------------------------------------------------------------------
// The informer's log

fn rv_field(line: &Value) -> Option<u64> {
    line["rv"].as_str().filter(|s| !s.is_empty()).and_then(|s| s.parse().ok())
}

fn is_event(line: &Value) -> bool {
    matches!(line["type"].as_str(), Some("ADDED" | "UPDATED" | "DELETED"))
}

/// No resourceVersion the informer observes goes backwards: per object across
/// its events, and per kind across the lists and watches the reflector makes.
fn assert_monotonic(lines: &[Value]) {
    let mut per_object: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut per_kind: BTreeMap<String, u64> = BTreeMap::new();
    for l in lines {
        let Some(rv) = rv_field(l) else { continue };
        let kind = l["kind"].as_str().unwrap_or_default().to_string();
        if is_event(l) {
            let key = (kind, l["name"].as_str().unwrap_or_default().to_string());
            if let Some(&prev) = per_object.get(&key) {
                assert!(rv >= prev, "resourceVersion of {key:?} went back from {prev} to {rv}: {l}");
            }
            per_object.insert(key, rv);
        } else if matches!(l["type"].as_str(), Some("LIST" | "WATCH")) {
            if let Some(&prev) = per_kind.get(&kind) {
                assert!(rv >= prev, "{kind} reflector went back from resourceVersion {prev} to {rv}: {l}");
            }
            per_kind.insert(kind, rv);
        }
    }
}

fn max_rv(lines: &[Value]) -> u64 {
    lines.iter().filter_map(rv_field).max().unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The test

fn apiserver_config(
    dir: &Path,
    etcd: &str,
    prefix: &str,
    port: u16,
    enc: PathBuf,
    sa: &(PathBuf, PathBuf),
) -> ApiserverConfig {
    ApiserverConfig {
        etcd: etcd.to_string(),
        etcd_prefix: prefix.to_string(),
        port,
        encryption_config: enc,
        sa_keys: sa.clone(),
        dir: dir.to_path_buf(),
        compaction_interval: "0s".to_string(),
    }
}

fn start_both(a: &ApiserverConfig, b: &ApiserverConfig) -> (KubeApiserver, KubeApiserver) {
    std::thread::scope(|s| {
        let ha = s.spawn(|| KubeApiserver::start(a));
        let hb = s.spawn(|| KubeApiserver::start(b));
        (ha.join().unwrap(), hb.join().unwrap())
    })
}

fn key(n: u8) -> [u8; 32] {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = n.wrapping_mul(31).wrapping_add(u8::try_from(i).unwrap());
    }
    k
}

fn tenant_move(version: EtcdVersion) {
    let t0 = Instant::now();
    let dir = scratch(&format!("k8s-e2e-{version}"));
    let sa = service_account_keys(&dir.join("sa"));

    // EncryptionConfigurations: tenant A first aescbc, then secretbox writing
    // with aescbc still readable; tenant B aesgcm, then KMS v2 (its plugin
    // wraps data keys with a KEK from a file), then aescbc, each later one
    // still reading the earlier ones.
    let cbc = Provider::AesCbc { name: "key-cbc".into(), key: key(1) };
    let sbox = Provider::Secretbox { name: "key-box".into(), key: key(2) };
    let gcm = Provider::AesGcm { name: "key-gcm".into(), key: key(3) };
    let plugin = KmsPlugin::start(&dir.join("kms"), "plugin", &key(4), None);
    let kms = Provider::Kms { name: "kms-b".into(), api_version: "v2".into(), socket: plugin.socket().to_path_buf() };
    let cbc_b = Provider::AesCbc { name: "key-cbc-b".into(), key: key(5) };
    let enc_a1 = dir.join("enc-a1.yaml");
    let enc_a2 = dir.join("enc-a2.yaml");
    let enc_b = dir.join("enc-b.yaml");
    let enc_b2 = dir.join("enc-b2.yaml");
    let enc_b3 = dir.join("enc-b3.yaml");
    write_encryption_config(&enc_a1, &[cbc.clone(), Provider::Identity]);
    write_encryption_config(&enc_a2, &[sbox, cbc, Provider::Identity]);
    write_encryption_config(&enc_b, &[gcm.clone(), Provider::Identity]);
    write_encryption_config(&enc_b2, &[kms.clone(), gcm.clone(), Provider::Identity]);
    write_encryption_config(&enc_b3, &[cbc_b.clone(), kms.clone(), gcm, Provider::Identity]);

    // The shared etcd and the two tenants' apiservers. Tenant B runs
    // kube-apiserver's compactor, so compact_rev_key exists as in production.
    let shared_dir = dir.join("shared");
    std::fs::create_dir_all(&shared_dir).unwrap();
    let shared = EtcdServer::start(version, &shared_dir.join("data"), free_port(), free_port());
    let a_config = apiserver_config(&dir.join("a"), &shared.endpoint(), "/tenant-a/registry", free_port(), enc_a1, &sa);
    let mut b_config =
        apiserver_config(&dir.join("b"), &shared.endpoint(), "/tenant-b/registry", free_port(), enc_b.clone(), &sa);
    b_config.compaction_interval = "5s".to_string();
    let (mut api_a, mut api_b) = start_both(&a_config, &b_config);
    eprintln!("[{:?}] shared etcd {version}, kube-apiserver {KUBE_VERSION} for tenants A and B", t0.elapsed());

    // Tenant A, first configuration (aescbc).
    let created = api_a.apply(&[
        create(namespace(NS_A)),
        create(config_map(NS_A, "cm-0", "zero")),
        create(config_map(NS_A, "cm-1", "one")),
        create(config_map(NS_A, "cm-2", "two")),
        create(config_map(NS_A, "cm-3", "three")),
        create(secret(NS_A, "cbc-0", "cbc secret 0")),
        create(secret(NS_A, "cbc-1", "cbc secret 1")),
        create(widget_crd()),
        create(widget("w-0", 1)),
        create(widget("w-1", 2)),
        create(event("ev-0", "cm-0")),
    ]);
    assert_eq!(created.len(), 11);
    // Tenant B: aesgcm Secrets.
    api_b.apply(&[
        create(namespace(NS_B)),
        create(config_map(NS_B, "cm-b", "b")),
        create(secret(NS_B, "gcm-0", "gcm secret 0")),
        create(secret(NS_B, "gcm-1", "gcm secret 1")),
    ]);

    // Tenant A, second configuration (secretbox writes; aescbc still read);
    // tenant B's second (KMS v2 writes), restarted together.
    api_a.stop();
    api_b.stop();
    let a2_config = ApiserverConfig { encryption_config: enc_a2.clone(), ..a_config.clone() };
    let b2_config = ApiserverConfig { encryption_config: enc_b2, ..b_config.clone() };
    (api_a, api_b) = start_both(&a2_config, &b2_config);
    api_b.apply(&[
        create(secret(NS_B, "kms-0", "kms secret 0")),
        create(secret(NS_B, "kms-1", "kms secret 1")),
        update(secret(NS_B, "gcm-1", "gcm secret 1, updated")),
    ]);
    // Tenant B's third (aescbc writes), started beside tenant A's writes.
    api_b.stop();
    let b3_config = ApiserverConfig { encryption_config: enc_b3.clone(), ..b_config.clone() };
    let b3_start = std::thread::spawn(move || KubeApiserver::start(&b3_config));
    api_a.apply(&[
        create(secret(NS_A, "box-0", "box secret 0")),
        create(secret(NS_A, "box-1", "box secret 1")),
        update(config_map(NS_A, "cm-0", "zero, updated")),
    ]);
    // Encrypted at rest, each with its provider and key name; the rest as kube writes it.
    api_b = b3_start.join().unwrap();
    api_b.apply(&[create(secret(NS_B, "cbc-b-0", "cbc secret b0"))]);
    assert!(etcd_value(&shared, "/tenant-a/registry/secrets/shop/cbc-0").starts_with(b"k8s:enc:aescbc:v1:key-cbc:"));
    assert!(etcd_value(&shared, "/tenant-b/registry/secrets/bank/kms-0").starts_with(b"k8s:enc:kms:v2:kms-b:"));
    assert!(etcd_value(&shared, "/tenant-b/registry/secrets/bank/gcm-1").starts_with(b"k8s:enc:kms:v2:kms-b:"));
    assert!(etcd_value(&shared, "/tenant-b/registry/secrets/bank/cbc-b-0").starts_with(b"k8s:enc:aescbc:v1:key-cbc-b:"));
    assert!(etcd_value(&shared, "/tenant-a/registry/secrets/shop/box-0").starts_with(b"k8s:enc:secretbox:v1:key-box:"));
    assert!(etcd_value(&shared, "/tenant-b/registry/secrets/bank/gcm-0").starts_with(b"k8s:enc:aesgcm:v1:key-gcm:"));
    assert!(etcd_value(&shared, "/tenant-a/registry/configmaps/shop/cm-0").starts_with(b"k8s\0"));
    assert!(etcd_value(&shared, "/tenant-a/registry/example.com/widgets/shop/w-0").starts_with(b"{"));

    // The informer, against tenant A's address for the rest of the test.
    let mut informer = Informer::start(api_a.url(), NS_A, &dir);
    eprintln!("[{:?}] objects written, informer synced", t0.elapsed());

    // A snapshot taken while tenant A still serves (for the no-bump control):
    // the informer then sees writes beyond it.
    let early = dir.join("early.db");
    let early_rev = snapshot_save(&shared, &early);
    // A counter updated many times, so the early snapshot lags well behind
    // (more than what an apiserver writes at start-up).
    let mut late_ops = vec![create(config_map(NS_A, "counter", "0"))];
    late_ops.extend((1..=40).map(|i| update(config_map(NS_A, "counter", &i.to_string()))));
    late_ops.extend([
        update(config_map(NS_A, "cm-1", "one, updated")),
        create(config_map(NS_A, "cm-4", "four")),
        delete(config_map(NS_A, "cm-3", "")),
        update(secret(NS_A, "box-0", "box secret 0, updated")),
    ]);
    let late = api_a.apply(&late_ops);
    let last_late = late.iter().map(rv_of).max().unwrap();
    assert!(last_late > early_rev);
    informer.wait_for("the writes after the early snapshot", Duration::from_secs(30), |l| {
        l.iter().any(|v| is_event(v) && rv_field(v) == Some(last_late))
    });
    let before = api_a.dump(&RESOURCES_A);

    // ---- The move.
    let mark = informer.mark();
    api_a.stop();
    informer.wait_for("UNREACHABLE after the stop", Duration::from_secs(60), |l| {
        l.get(mark..).is_some_and(|n| n.iter().any(|v| v["type"] == "UNREACHABLE"))
    });
    let seen_before = informer.lines();
    let max_seen = max_rv(&seen_before);
    let final_snap = dir.join("final.db");
    let final_rev = snapshot_save(&shared, &final_snap);
    assert!(final_rev >= max_seen, "final snapshot {final_rev} below what the informer saw {max_seen}");

    let moved = dir.join("moved.db");
    let rewrite_started = Instant::now();
    let report = rewrite_ok(&final_snap, &moved, &strs(&move_args("tenant-a", Some(BUMP))));
    let rewrite_time = rewrite_started.elapsed();
    assert_eq!(report["new_revision"].as_u64(), Some(final_rev + BUMP), "{report}");
    assert_eq!(report["scheduled_compact_revision"].as_u64(), Some(final_rev + BUMP), "{report}");
    assert_eq!(report["compact_rev_key"], "kept", "{report}");
    assert_eq!(report["key_bound_renamed"], 0, "{report}");
    assert!(
        report["encrypted"]["aescbc"].as_u64().unwrap() >= 2 && report["encrypted"]["secretbox"].as_u64().unwrap() >= 2
    );
    // The tenant's new control plane is restored without etcdutl.
    let new_etcd = restore_start(version, &moved, &dir.join("new-etcd"), false);
    // The Event is stored with an etcd lease (kube's --event-ttl), carried
    // with its id to the new etcd.
    let event_lease = |server: &EtcdServer, key: &str| kv_rows(&server.ctl_json(&["get", key]))[0].lease;
    let lease = event_lease(&shared, "/tenant-a/registry/events/shop/ev-0");
    assert_ne!(lease, 0, "the Event has no lease");
    assert_eq!(event_lease(&new_etcd, "/registry/events/shop/ev-0"), lease);
    // Values are carried byte for byte under the new keys.
    for k in ["secrets/shop/cbc-0", "secrets/shop/box-0", "configmaps/shop/cm-0", "example.com/widgets/shop/w-0"] {
        assert_eq!(
            etcd_value(&new_etcd, &format!("/registry/{k}")),
            etcd_value(&shared, &format!("/tenant-a/registry/{k}"))
        );
    }
    let moved_config = ApiserverConfig {
        etcd: new_etcd.endpoint(),
        etcd_prefix: "/registry".into(),
        dir: dir.join("a-moved"),
        ..a2_config.clone()
    };
    let api_moved = KubeApiserver::start(&moved_config);
    eprintln!(
        "[{:?}] moved: rewrite {rewrite_time:?}, kube-apiserver ready after {:?} on revision {}",
        t0.elapsed(),
        api_moved.ready_after(),
        final_rev + BUMP
    );

    // Every object reads back as the old apiserver served it (Secrets
    // decrypted by the new one), resourceVersions included.
    let after = api_moved.dump(&RESOURCES_A);
    assert_eq!(after.len(), before.len());
    for (x, y) in after.iter().zip(&before) {
        assert_eq!(x, y, "object differs after the move");
    }
    let cbc0 = after.iter().find(|o| o["kind"] == "Secret" && name_of(o) == "cbc-0").unwrap();
    assert_eq!(cbc0["data"]["password"], "Y2JjIHNlY3JldCAw"); // "cbc secret 0"
    let box0 = after.iter().find(|o| o["kind"] == "Secret" && name_of(o) == "box-0").unwrap();
    assert_eq!(box0["data"]["password"], "Ym94IHNlY3JldCAwLCB1cGRhdGVk"); // "box secret 0, updated"
    assert_decode_matches_api(&moved, &after);

    // The informer re-lists: its watch from an old resourceVersion is refused
    // as too old, and each kind lists again at the bumped revision.
    for kind in ["ConfigMap", "Secret"] {
        informer.wait_for(&format!("{kind} re-list after the move"), Duration::from_secs(90), |l| {
            l.get(mark..).is_some_and(|n| {
                n.iter().any(|v| {
                    v["type"] == "LIST" && v["kind"] == kind && rv_field(v).is_some_and(|r| r >= final_rev + BUMP)
                })
            })
        });
    }
    eprintln!("[{:?}] informer re-listed", t0.elapsed());
    let relist = informer.lines_since(mark);
    for kind in ["ConfigMap", "Secret"] {
        assert!(
            relist.iter().any(|v| v["type"] == "WATCH_ERROR"
                && v["kind"] == kind
                && v["error"].as_str().is_some_and(|e| e.contains("too old resource version"))),
            "no 'too old resource version' for {kind}: {relist:?}"
        );
    }

    // New writes after the move: their events carry resourceVersions above
    // anything seen before.
    let mark_new = informer.mark();
    let new = api_moved.apply(&[
        update(config_map(NS_A, "cm-2", "two, after the move")),
        create(config_map(NS_A, "cm-5", "five")),
        delete(config_map(NS_A, "cm-4", "")),
        create(secret(NS_A, "box-2", "box secret 2")),
        update(secret(NS_A, "cbc-1", "cbc secret 1, re-encrypted by secretbox")),
    ]);
    let new_rvs: BTreeSet<u64> = new.iter().filter(|o| name_of(o) != "cm-4").map(rv_of).collect();
    for &rv in &new_rvs {
        assert!(rv > max_seen && rv > final_rev + BUMP, "new write at {rv}, informer had seen {max_seen}");
    }
    informer.wait_for("events of the new writes", Duration::from_secs(30), |l| {
        let got: BTreeSet<u64> =
            l.get(mark_new..).unwrap_or_default().iter().filter(|v| is_event(v)).filter_map(rv_field).collect();
        new_rvs.is_subset(&got)
    });
    let after_writes = informer.lines_since(mark_new);
    for v in after_writes.iter().filter(|v| is_event(v)) {
        assert!(rv_field(v).unwrap() > max_seen, "event after the move with an old resourceVersion: {v}");
    }
    assert!(after_writes.iter().any(|v| v["type"] == "DELETED" && v["name"] == "cm-4"));
    assert!(
        etcd_value(&new_etcd, "/registry/secrets/shop/cbc-1").starts_with(b"k8s:enc:secretbox:v1:key-box:"),
        "a Secret updated after the move is written by the first provider"
    );

    // Exactly the live objects, and nothing ever went backwards.
    let live = live_rvs(&api_moved.dump(&["v1/configmaps@shop", "v1/secrets@shop"]));
    let store: BTreeMap<String, BTreeMap<String, String>> =
        informer.store().into_iter().map(|(kind, s)| (kind, serde_json::from_value(s).unwrap())).collect();
    assert_eq!(store, live, "the informer's store is not the live state");
    let all = informer.lines();
    assert_monotonic(&all);
    assert!(informer.still_running(), "the informer process exited");
    let count = |from: usize, to: usize| all[from..to].iter().filter(|v| is_event(v)).count();
    let rvs = |from: usize, to: usize| {
        let r: Vec<u64> = all[from..to].iter().filter(|v| is_event(v)).filter_map(rv_field).collect();
        (r.iter().min().copied().unwrap_or(0), r.iter().max().copied().unwrap_or(0))
    };
    eprintln!(
        "informer: before the move {} events, resourceVersions {:?} (max seen {max_seen}); after {} events (re-list \
         and new writes), resourceVersions {:?}; {} lists in all",
        count(0, mark),
        rvs(0, mark),
        count(mark, all.len()),
        rvs(mark, all.len()),
        all.iter().filter(|v| v["type"] == "LIST").count()
    );
    drop(informer);

    // ---- Negative control 1: no --bump-revision. The early snapshot (taken
    // before writes the informer saw) moved without a bump hands out
    // revisions the informer already saw: a watch resuming from the
    // informer's last resourceVersion is accepted (no re-list is forced), and
    // a write made meanwhile gets a resourceVersion at or below it, so that
    // watch never delivers it. With the bump the same watch is refused as too
    // old and the reflector re-lists.
    let moved_nb = dir.join("moved-no-bump.db");
    let report_nb = rewrite_ok(&early, &moved_nb, &strs(&move_args("tenant-a", None)));
    assert_eq!(report_nb["new_revision"].as_u64(), Some(early_rev));
    let etcd_nb = restore_start(version, &moved_nb, &dir.join("etcd-no-bump"), true);
    let nb_config = ApiserverConfig {
        etcd: etcd_nb.endpoint(),
        port: free_port(),
        dir: dir.join("a-no-bump"),
        ..moved_config.clone()
    };
    let api_nb = KubeApiserver::start(&nb_config);
    // A watch from the informer's last resourceVersion, and meanwhile a write.
    let (watch_nb, probe) = std::thread::scope(|sc| {
        let w = sc.spawn(|| api_nb.watch_from("v1/configmaps@shop", &max_seen.to_string(), Duration::from_secs(6)));
        std::thread::sleep(Duration::from_secs(2));
        let probe = api_nb.apply(&[create(config_map(NS_A, "probe", "after a move without bump"))]);
        (w.join().unwrap(), probe)
    });
    let probe_rv = rv_of(&probe[0]);
    assert!(
        probe_rv <= max_seen,
        "without --bump-revision a new write got {probe_rv}, expected one at or below {max_seen} (already seen)"
    );
    // The watch is accepted and the write never reaches it: an informer
    // resuming there would miss it and every other write up to {max_seen}.
    assert_eq!(watch_nb, json!({"event": "NONE"}), "no-bump watch from {max_seen}");
    // With the bump the same watch is refused as too old: the reflector must re-list.
    let watch_bumped = api_moved.watch_from("v1/configmaps@shop", &max_seen.to_string(), Duration::from_secs(6));
    let too_old = |w: &Value| {
        w["error"].as_str().is_some_and(|e| e.contains("too old resource version"))
            || w.pointer("/object/message")
                .and_then(Value::as_str)
                .is_some_and(|e| e.contains("too old resource version"))
    };
    assert!(too_old(&watch_bumped), "bumped watch from {max_seen}: {watch_bumped}");
    eprintln!(
        "[{:?}] no bump: a new write got resourceVersion {probe_rv} <= {max_seen}, unseen by a watch from {max_seen}",
        t0.elapsed()
    );

    // ---- Negative control 2: tenant B's aesgcm Secrets are bound to their
    // etcd key. The move with a rename is refused before anything is written,
    // naming the first such key; forced, the real apiserver cannot read them.
    let moved_b = dir.join("moved-b.db");
    let out = etcdsnap_rewrite(&final_snap, &moved_b, &strs(&move_args("tenant-b", Some(BUMP))));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("key-bound") && err.contains("First: /tenant-b/registry/secrets/bank/gcm-0"), "{err}");
    assert!(!moved_b.exists(), "a refused rewrite wrote {}", moved_b.display());
    let secrets_b = api_b.dump(&["v1/secrets@bank"]);
    move_tenant_b_reencrypted(version, &dir, &final_snap, &b_config, &enc_b3, &plugin, &secrets_b);
    let mut forced = move_args("tenant-b", Some(BUMP));
    forced.push("--allow-key-bound-encrypted".into());
    let report_b = rewrite_ok(&final_snap, &moved_b, &strs(&forced));
    // aesgcm gcm-0 and gcm-1's first revision, KMS v2 kms-0, kms-1 and gcm-1's
    // update — less gcm-1's first revision when tenant B's compactor (every 5 s)
    // ran past the update before the snapshot (a slow machine): counted in the file.
    let bound = key_bound_revisions(&final_snap, b"/tenant-b/registry/secrets/");
    assert!((4..=5).contains(&bound), "{bound} key-bound revisions in {}", final_snap.display());
    assert_eq!(report_b["key_bound_renamed"], bound, "{report_b}");
    let etcd_b = restore_start(version, &moved_b, &dir.join("etcd-b"), true);
    let b_moved_config = ApiserverConfig {
        etcd: etcd_b.endpoint(),
        etcd_prefix: "/registry".into(),
        port: free_port(),
        dir: dir.join("b-moved"),
        compaction_interval: "0s".into(),
        ..b_config.clone()
    };
    // It never becomes ready: its own Secrets informer and the Secrets watch
    // cache cannot decrypt them (storage-readiness would give up only after a
    // minute; informer-sync never passes).
    let api_b_moved =
        KubeApiserver::start_excluding(&b_moved_config, &["informer-sync", "poststarthook/storage-readiness"]);
    let readyz = api_b_moved.not_ready(Duration::from_secs(3));
    assert!(readyz.contains("[-]informer-sync failed"), "{readyz}");
    assert_eq!(api_b_moved.get("v1/configmaps@bank", "cm-b").unwrap()["data"]["value"], "b");
    let err = api_b_moved.get("v1/secrets@bank", "gcm-0").expect_err("an aesgcm Secret read under a renamed key");
    // kube names the key below its --etcd-prefix.
    assert!(
        err.contains("corrupt object")
            && err.contains("Key: /secrets/bank/gcm-0")
            && err.contains("cipher: message authentication failed"),
        "{err}"
    );
    // The same Secret read by tenant B's own apiserver, before the move, is fine.
    assert_eq!(api_b.get("v1/secrets@bank", "gcm-0").unwrap()["data"]["password"], "Z2NtIHNlY3JldCAw");
    eprintln!("[{:?}] done", t0.elapsed());
}

/// Tenant B moved with `--reencrypt` its EncryptionConfiguration: refused
/// without it, with a wrong aesgcm key and with the plugin unreachable (nothing
/// written); then moved, restored, and served by a new kube-apiserver on
/// `--etcd-prefix=/registry` that reads every Secret as the old one did.
fn move_tenant_b_reencrypted(
    version: EtcdVersion,
    dir: &Path,
    snapshot: &Path,
    b_config: &ApiserverConfig,
    enc: &Path,
    plugin: &KmsPlugin,
    secrets_before: &[Value],
) {
    let t0 = Instant::now();
    let moved = dir.join("moved-b-reencrypted.db");
    let args = move_args("tenant-b", Some(BUMP));
    let with = |cfg: &Path| {
        let mut a = args.clone();
        a.extend(["--reencrypt".into(), cfg.display().to_string()]);
        etcdsnap_rewrite(snapshot, &moved, &strs(&a))
    };
    let refused = |out: std::process::Output, what: &str| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(!moved.exists(), "{what}: a refused rewrite wrote {}", moved.display());
        err
    };
    let kms = Provider::Kms { name: "kms-b".into(), api_version: "v2".into(), socket: plugin.socket().to_path_buf() };
    let cbc_b = Provider::AesCbc { name: "key-cbc-b".into(), key: key(5) };
    // A wrong aesgcm key.
    let wrong = dir.join("enc-b-wrong.yaml");
    let wrong_gcm = Provider::AesGcm { name: "key-gcm".into(), key: key(9) };
    write_encryption_config(&wrong, &[cbc_b.clone(), kms, wrong_gcm, Provider::Identity]);
    let err = refused(with(&wrong), "wrong aesgcm key");
    assert!(err.contains("/tenant-b/registry/secrets/bank/gcm-0") && err.contains("does not decrypt"), "{err}");
    // The plugin unreachable.
    let gone = dir.join("enc-b-gone.yaml");
    let gone_kms =
        Provider::Kms { name: "kms-b".into(), api_version: "v2".into(), socket: dir.join("kms/no-plugin.sock") };
    let gcm = Provider::AesGcm { name: "key-gcm".into(), key: key(3) };
    write_encryption_config(&gone, &[cbc_b, gone_kms, gcm, Provider::Identity]);
    let err = refused(with(&gone), "plugin unreachable");
    assert!(err.contains("/tenant-b/registry/secrets/bank/") && err.contains("unreachable"), "{err}");

    // The move, through the plugin socket kube-apiserver uses.
    let before = plugin.calls();
    let out = with(enc);
    assert!(out.status.success(), "rewrite --reencrypt: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let after = plugin.calls();
    // Every kept aesgcm and KMS v2 value is re-sealed: how many revisions of
    // the aesgcm Secret are kept depends on whether kube-apiserver's periodic
    // compaction ran before the snapshot (at least its latest one is).
    let gcm_kept = report["encrypted"]["aesgcm"].as_u64().unwrap_or(0);
    assert!(gcm_kept >= 1, "{report}");
    assert_eq!(report["reencrypted"], json!({"aesgcm/key-gcm": gcm_kept, "kms-v2/kms-b": 3}), "{report}");
    assert_eq!(report["encrypted"]["kms"], 3, "{report}");
    assert_eq!(report["encrypted"]["aescbc"], 1, "{report}");
    assert_eq!(report["key_bound_renamed"], 0, "{report}");
    // Every KMS v2 value was written under the DEK seed of one kube-apiserver run.
    assert_eq!(report["plugin_calls"], json!({"kms-v2/kms-b": {"Status": 1, "Decrypt": 1}}), "{report}");
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert_eq!((delta("v2 Decrypt ok"), delta("v2 Encrypt ok")), (1, 0), "the plugin's log: {after:?}");

    let etcd = restore_start(version, &moved, &dir.join("etcd-b-reencrypted"), false);
    let config = ApiserverConfig {
        etcd: etcd.endpoint(),
        etcd_prefix: "/registry".into(),
        port: free_port(),
        dir: dir.join("b-reencrypted"),
        encryption_config: enc.to_path_buf(),
        compaction_interval: "0s".into(),
        ..b_config.clone()
    };
    let api = KubeApiserver::start(&config);
    let secrets_after = api.dump(&["v1/secrets@bank"]);
    assert_eq!(secrets_after.len(), 5, "{secrets_after:?}");
    assert_eq!(secrets_after, secrets_before, "tenant B's Secrets differ after the move");
    let kms0 = secrets_after.iter().find(|o| name_of(o) == "kms-0").unwrap();
    assert_eq!(kms0["data"]["password"], "a21zIHNlY3JldCAw"); // "kms secret 0"
    eprintln!(
        "[{:?}] tenant B moved with --reencrypt (aesgcm, KMS v2, aescbc): kube-apiserver ready after {:?}",
        t0.elapsed(),
        api.ready_after()
    );
}

per_version!(tenant_move: V3_5_35, V3_6_16, V3_7_3);
