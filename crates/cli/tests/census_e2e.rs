//! `verify --encryption-config`: the decryptability census of a snapshot of
//! real etcd holding values sealed by k8s.io/apiserver's own transformers
//! (`k8scrypt`): Secrets under aescbc, aesgcm, secretbox, KMS v2 (HKDF seed
//! and plain DEK modes) and KMS v1 through the `kmsplugin` oracle, ConfigMaps
//! under aesgcm, a plain Pod; and the findings: a Secret under a key the
//! census config does not list, a plaintext Secret and ConfigMap where the
//! config encrypts, a value damaged by one byte. Asserted: exact counts per
//! resource and key, the named keys, exit codes, one Decrypt per distinct DEK
//! at the plugin, no key material or plaintext in any output; the same
//! census in each backup's record of a fleet run over a real S3 server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

#[path = "sealing/mod.rs"]
mod sealing;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use etcdsnap_k8s::census::{CensusKind, CensusReport};
use etcdsnap_remote::record::BackupRecord;
use etcdsnap_testkit::kube::KmsPlugin;
use etcdsnap_testkit::s3::S3Server;
use etcdsnap_testkit::{free_port, k8scrypt, scratch, EtcdServer, EtcdVersion};
use sealing::{aes, put_raw, seal, write_config, IDENTITY};
use serde_json::Value;

const CBC: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=";
const GCM: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const BOX: &str = "Ym94LWtleS0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc=";
const CMK: &str = "Y29uZmlnbWFwLWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE=";
const RETIRED: &str = "cmV0aXJlZC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM=";
const SECRETS: [&str; 5] = [CBC, GCM, BOX, CMK, RETIRED];
/// In every plaintext written: never in any output.
const MARK: &str = "PLAINTEXT-MARK";

fn kms(version: &str, name: &str, socket: &Path) -> String {
    format!(
        "      - kms:\n          apiVersion: {version}\n          name: {name}\n          endpoint: unix://{}\n          timeout: 3s\n",
        socket.display()
    )
}

fn put_many(server: &EtcdServer, cfg: &Path, prefix: &str, count: u32, no_kdf: Option<&str>) {
    let mut c = Command::new(k8scrypt());
    c.arg("put-many").arg(cfg).args(["secrets", &server.endpoint(), prefix, &count.to_string()]);
    if let Some(name) = no_kdf {
        c.env("K8SCRYPT_KMSV2_NO_KDF", name);
    }
    let o = c.stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "k8scrypt put-many {prefix}: {}", String::from_utf8_lossy(&o.stderr));
}

fn etcdsnap(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap")).args(args).stdin(Stdio::null()).output().unwrap()
}

fn decrypts(p: &KmsPlugin) -> (u64, u64) {
    let c = p.calls();
    (c.get("v2 Decrypt ok").copied().unwrap_or(0), c.get("v1beta1 Decrypt ok").copied().unwrap_or(0))
}

/// resource → "provider/key" → (opened, failed).
fn counts(r: &CensusReport) -> BTreeMap<(String, String), (u64, u64)> {
    r.keys.iter().map(|k| ((k.resource.clone(), format!("{}/{}", k.provider, k.key)), (k.opened, k.failed))).collect()
}

fn no_secrets_in(what: &str, out: &[u8]) {
    let s = String::from_utf8_lossy(out);
    assert!(!s.contains(MARK), "{what}: a plaintext in the output:\n{s}");
    for k in SECRETS {
        assert!(!s.contains(k) && !s.contains(&k[..12]), "{what}: key material in the output");
    }
}

#[test]
fn census_counts_and_names_what_the_config_cannot_read() {
    let v = EtcdVersion::V3_6_16;
    let dir = scratch("census-e2e");
    let plugin = KmsPlugin::start(&dir, "kms", &[0x5au8; 32], Some("kek-1"));
    let sock = plugin.socket().to_path_buf();
    let cfg = |name: &str, rules: &[(&str, Vec<String>)]| {
        let p = dir.join(name);
        write_config(&p, rules);
        p
    };
    // The sealing configs: one writing provider each, as an API server before each rotation.
    let cbc = cfg("cbc.yaml", &[("secrets", vec![aes("aescbc", "cbc1", CBC)])]);
    let gcm = cfg("gcm.yaml", &[("secrets", vec![aes("aesgcm", "gcm1", GCM)])]);
    let sbox = cfg("box.yaml", &[("secrets", vec![aes("secretbox", "box1", BOX)])]);
    let v2 = cfg("v2.yaml", &[("secrets", vec![kms("v2", "kms2", &sock)])]);
    let v1 = cfg("v1.yaml", &[("secrets", vec![kms("v1", "kms1", &sock)])]);
    let cm = cfg("cm.yaml", &[("configmaps", vec![aes("aesgcm", "cmkey", CMK)])]);
    let retired = cfg("retired.yaml", &[("secrets", vec![aes("aescbc", "retired", RETIRED)])]);
    // The census config: today's API server (aescbc writes Secrets; the others still read).
    let census_cfg = |name: &str, v2_socket: &Path| {
        cfg(
            name,
            &[
                (
                    "secrets",
                    vec![
                        aes("aescbc", "cbc1", CBC),
                        aes("aesgcm", "gcm1", GCM),
                        aes("secretbox", "box1", BOX),
                        kms("v2", "kms2", v2_socket),
                        kms("v1", "kms1", &sock),
                        IDENTITY.into(),
                    ],
                ),
                ("configmaps", vec![aes("aesgcm", "cmkey", CMK), IDENTITY.into()]),
                ("*.", vec![IDENTITY.into()]),
            ],
        )
    };
    let census = census_cfg("census.yaml", &sock);
    // The same key id under another KEK (a rotated-away key), and no plugin at all.
    let wrong_plugin = KmsPlugin::start(&dir, "wrong", &[0x33u8; 32], Some("kek-1"));
    let wrong = census_cfg("wrong.yaml", wrong_plugin.socket());
    let gone = census_cfg("gone.yaml", &dir.join("no-plugin.sock"));

    let (data, snapshot, clean) = (dir.join("etcd"), dir.join("census.db"), dir.join("clean.db"));
    let mut server = EtcdServer::start(v, &data, free_port(), free_port());
    let secret = |n: &str| format!("{{\"kind\":\"Secret\",\"metadata\":{{\"name\":\"{n}\"}},\"data\":\"{MARK}-{n}\"}}");
    let put_sealed = |c: &Path, res: &str, key: &str| {
        let name = key.rsplit('/').next().unwrap().to_string();
        put_raw(&server, key, &seal(c, res, key, secret(&name).as_bytes()));
    };
    for i in 0..3 {
        put_sealed(&cbc, "secrets", &format!("/registry/secrets/cbc/s{i}"));
    }
    for i in 0..2 {
        let key = format!("/registry/secrets/gcm/s{i}");
        // An older revision under the retired key: history is not counted.
        put_sealed(&retired, "secrets", &key);
        put_sealed(&gcm, "secrets", &key);
    }
    for i in 0..2 {
        put_sealed(&sbox, "secrets", &format!("/registry/secrets/box/s{i}"));
    }
    for i in 0..2 {
        put_sealed(&cm, "configmaps", &format!("/registry/configmaps/default/cm{i}"));
    }
    put_raw(&server, "/registry/pods/default/p0", format!("{{\"kind\":\"Pod\",\"x\":\"{MARK}\"}}").as_bytes());
    put_raw(&server, "/unrelated/key", b"not kubernetes");
    // KMS v2: 4 values under one HKDF seed, 3 under one plain AES-GCM DEK; KMS v1: a DEK per value.
    put_many(&server, &v2, "/registry/secrets/seed-", 4, None);
    put_many(&server, &v2, "/registry/secrets/plain-", 3, Some("kms2"));
    put_many(&server, &v1, "/registry/secrets/v1-", 2, None);
    // The findings.
    let bad = [
        "/registry/secrets/bad/retired",
        "/registry/secrets/bad/plain",
        "/registry/secrets/bad/damaged",
        "/registry/configmaps/default/plain",
    ];
    put_sealed(&retired, "secrets", bad[0]);
    put_raw(&server, bad[1], secret("plain").as_bytes());
    let mut damaged = seal(&gcm, "secrets", bad[2], secret("damaged").as_bytes());
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x20;
    put_raw(&server, bad[2], &damaged);
    put_raw(&server, bad[3], format!("{{\"kind\":\"ConfigMap\",\"data\":\"{MARK}\"}}").as_bytes());
    server.ctl_ok(&["snapshot", "save", snapshot.to_str().unwrap()]);
    for k in bad {
        server.ctl_ok(&["del", k]);
    }
    server.ctl_ok(&["snapshot", "save", clean.to_str().unwrap()]);
    server.stop();

    // JSON: exact counts, the findings named, exit 1.
    let before = decrypts(&plugin);
    let o =
        etcdsnap(&["verify", "--encryption-config", census.to_str().unwrap(), "--json", snapshot.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    no_secrets_in("verify --json", &o.stdout);
    no_secrets_in("verify --json stderr", &o.stderr);
    let after = decrypts(&plugin);
    // One Decrypt per distinct DEK: the seed, the plain DEK (v2); two v1 DEKs.
    assert_eq!((after.0 - before.0, after.1 - before.1), (2, 2), "{:?}", plugin.calls());
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["ok"], false);
    assert_eq!(j["problem_count"], 0, "the file itself is sound");
    let r: CensusReport = serde_json::from_value(j["encryption"].clone()).unwrap();
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    let want: BTreeMap<(String, String), (u64, u64)> = [
        (s("configmaps", "aesgcm/cmkey"), (2, 0)),
        (s("configmaps", "identity/"), (1, 0)),
        (s("pods", "identity/"), (1, 0)),
        (s("secrets", "aescbc/cbc1"), (3, 0)),
        (s("secrets", "aesgcm/gcm1"), (2, 1)),
        (s("secrets", "identity/"), (1, 0)),
        (s("secrets", "kms-v1/kms1"), (2, 0)),
        (s("secrets", "kms-v2/kms2"), (7, 0)),
        (s("secrets", "secretbox/box1"), (2, 0)),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts(&r), want, "{r:#?}");
    assert_eq!((r.values, r.opened, r.failed, r.plaintext, r.unknown_key), (23, 21, 1, 2, 1), "{r:#?}");
    let named: Vec<(CensusKind, &str, &str)> =
        r.findings.iter().map(|f| (f.kind, f.key.as_str(), f.resource.as_str())).collect();
    assert_eq!(
        named,
        vec![
            (CensusKind::Failed, bad[2], "secrets"),
            (CensusKind::Plaintext, bad[3], "configmaps"),
            (CensusKind::Plaintext, bad[1], "secrets"),
            (CensusKind::UnknownKey, bad[0], "secrets"),
        ]
    );
    let unknown = &r.findings[3];
    assert_eq!((unknown.provider.as_str(), unknown.key_name.as_str()), ("aescbc", "retired"));
    assert!(r.findings[1].message.contains("aesgcm/cmkey"), "{}", r.findings[1].message);

    // Text: the same, in words.
    let o = etcdsnap(&["verify", "--encryption-config", census.to_str().unwrap(), snapshot.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    no_secrets_in("verify", &o.stdout);
    let text = String::from_utf8_lossy(&o.stdout);
    for k in bad {
        assert!(text.contains(k), "{k} not named:\n{text}");
    }
    assert!(
        text.contains("secrets kms-v2/kms2: 7 opened") && text.contains("secrets aesgcm/gcm1: 2 opened, 1 failed"),
        "{text}"
    );

    // KMS v2 through a plugin that refuses the DEKs, or is not there: those values fail, each
    // distinct DEK asked for once (and an absent plugin dialled once), the rest still counted.
    for (what, config) in [("wrong KEK", &wrong), ("no plugin", &gone)] {
        let o =
            etcdsnap(&["verify", "--encryption-config", config.to_str().unwrap(), "--json", clean.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{what}");
        no_secrets_in(what, &o.stdout);
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        let r: CensusReport = serde_json::from_value(j["encryption"].clone()).unwrap();
        assert_eq!((r.values, r.opened, r.failed), (19, 12, 7), "{what}: {r:#?}");
        assert_eq!(counts(&r)[&s("secrets", "kms-v2/kms2")], (0, 7), "{what}");
        assert!(r.findings.iter().all(|f| f.kind == CensusKind::Failed && f.key_name == "kms2"), "{what}");
        let why = if what == "wrong KEK" { "DEK not decrypted" } else { "unreachable" };
        assert!(r.findings[0].message.contains(why), "{what}: {}", r.findings[0].message);
    }
    assert_eq!(wrong_plugin.calls().get("v2 Decrypt error"), Some(&2), "{:?}", wrong_plugin.calls());

    // Without the findings: exit 0, the counts of what is left.
    let o = etcdsnap(&["verify", "--encryption-config", census.to_str().unwrap(), "--json", clean.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let r: CensusReport = serde_json::from_value(j["encryption"].clone()).unwrap();
    assert_eq!((r.values, r.opened, r.findings.len()), (19, 19, 0), "{r:#?}");
    // Without --encryption-config: no census, and the snapshot is clean.
    let o = etcdsnap(&["verify", "--json", snapshot.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(serde_json::from_slice::<Value>(&o.stdout).unwrap().get("encryption").is_none());

    // Fleet: each backup's record carries the census; the findings make it a backup with problems.
    let s3 = S3Server::start("census-s3", "census");
    s3.put("c1/census.db", std::fs::read(&snapshot).unwrap());
    s3.put("c1/clean.db", std::fs::read(&clean).unwrap());
    let mut c = Command::new(env!("CARGO_BIN_EXE_etcdsnap"));
    c.args(["verify", &s3.url(""), "--recursive", "--encryption-config", census.to_str().unwrap()])
        .args(["--report-format", "jsonl", "--endpoint", &s3.endpoint(), "--allow-http"])
        .arg("--prometheus")
        .arg(dir.join("fleet.prom"))
        .arg("--junit")
        .arg(dir.join("fleet.xml"))
        .env_remove("JOB_COMPLETION_INDEX");
    for (k, val) in s3.env() {
        c.env(k, val);
    }
    let before = decrypts(&plugin);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    no_secrets_in("fleet", &o.stdout);
    let after = decrypts(&plugin);
    // Two backups share the DEKs: still one Decrypt each.
    assert_eq!((after.0 - before.0, after.1 - before.1), (2, 2), "{:?}", plugin.calls());
    let mut records: Vec<BackupRecord> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "backup")
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("type");
            serde_json::from_value(v).unwrap()
        })
        .collect();
    records.sort_by(|a, b| a.url.cmp(&b.url));
    assert_eq!(records.len(), 2, "{}", String::from_utf8_lossy(&o.stdout));
    let (bad_rec, clean_rec) = (&records[0], &records[1]);
    assert_eq!(bad_rec.state.name(), "problems");
    assert_eq!(bad_rec.problem_count, 4);
    let kinds: Vec<&str> = bad_rec.problems.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(kinds, ["encryption-failed", "encryption-plaintext", "encryption-plaintext", "encryption-unknown-key"]);
    assert!(bad_rec.problems[3].message.contains(bad[0]));
    assert_eq!(bad_rec.encryption.as_ref().map(|e| (e.values, e.opened)), Some((23, 21)));
    // The other formats carry the same.
    let prom = std::fs::read_to_string(dir.join("fleet.prom")).unwrap();
    for (object, result, n) in [
        ("census", "opened", 21),
        ("census", "failed", 1),
        ("census", "plaintext", 2),
        ("census", "unknown_key", 1),
        ("clean", "opened", 19),
        ("clean", "failed", 0),
    ] {
        let line = format!("etcdsnap_backup_encryption_values{{cluster=\"\",object=\"s3://census/c1/{object}.db\",result=\"{result}\"}} {n}\n");
        assert!(prom.contains(&line), "{line} not in:\n{prom}");
    }
    let junit = std::fs::read_to_string(dir.join("fleet.xml")).unwrap();
    assert!(junit.contains("encryption-unknown-key") && junit.contains(bad[0]), "{junit}");
    no_secrets_in("junit", junit.as_bytes());
    no_secrets_in("prometheus", prom.as_bytes());
    assert_eq!(clean_rec.state.name(), "valid");
    assert_eq!(clean_rec.encryption.as_ref().map(|e| (e.values, e.opened, e.is_ok())), Some((19, 19, true)));
}
