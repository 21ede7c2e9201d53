//! `rewrite --reencrypt`: Secrets sealed by kube-apiserver's own aesgcm
//! transformer (k8s.io/apiserver through `k8scrypt`) under
//! `/tenant-a/registry/…` are written into real etcd, snapshotted, moved to
//! `/registry/…` with re-encryption, restored by the stock restore and served
//! by real etcd; the served values open with the same transformer under their
//! new key (and no longer under the old one). aescbc values are carried byte
//! for byte; a wrong key refuses the rewrite before anything is written.
//!
//! KMS: values written by k8s.io/apiserver's KMS v2 transformer in both DEK
//! modes (HKDF seed, what kube-apiserver writes; plain AES-GCM key) and by
//! its KMS v1 transformer, through the `kmsplugin` oracle, are moved the same
//! way; etcdsnap asks the same plugin socket only to decrypt, once per
//! distinct DEK. A wrong key-encryption key, an unknown provider name and an
//! unreachable plugin refuse the rewrite before anything is written.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine;
use etcdsnap_testkit::kube::{write_encryption_config, KmsPlugin, Provider};
use etcdsnap_testkit::{k8scrypt, k8scrypt_run, restore_and_start, scratch, EtcdServer, EtcdVersion};
use serde_json::Value;

const KEY1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
const WRONG: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // 32 other bytes
const CBC: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="; // 32 bytes

/// The tenant move both tests make (IN and OUT follow).
const MOVE_TENANT_A: [&str; 11] = [
    "rewrite",
    "--include",
    "/tenant-a/",
    "--drop-key",
    "compact_rev_key",
    "--rename",
    "/tenant-a/registry/=/registry/",
    "--bump-revision",
    "1000000",
    "--mark-compacted",
    "--json",
];

fn config(dir: &Path, name: &str, provider: &str, secret: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - {provider}:\n          keys:\n            - name: key1\n              secret: {secret}\n      - identity: {{}}\n"
        ),
    )
    .unwrap();
    p
}

fn seal(cfg: &Path, key: &str, plain: &[u8]) -> Vec<u8> {
    let (code, out, err) = k8scrypt_run("seal", cfg, "secrets", key.as_bytes(), plain);
    assert_eq!(code, 0, "k8scrypt seal {key}: {err}");
    out
}

fn put_raw(server: &EtcdServer, key: &str, value: &[u8]) {
    let mut c = server.version().etcdctl_command();
    c.args(["--endpoints", &server.endpoint(), "put", key]).stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(value).unwrap();
    assert!(child.wait().unwrap().success(), "etcdctl put {key}");
}

fn served_value(server: &EtcdServer, key: &str) -> Vec<u8> {
    let v = server.ctl_json(&["get", key]);
    let b64 = v["kvs"][0]["value"].as_str().unwrap_or_else(|| panic!("{key} not served: {v}"));
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
}

fn etcdsnap(args: &[&str], paths: &[&Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap")).args(args).args(paths).stdin(Stdio::null()).output().unwrap()
}

#[test]
fn aesgcm_secrets_move_with_their_tenant() {
    let v = EtcdVersion::V3_6_16;
    let dir = scratch("reencrypt-e2e");
    let gcm = config(&dir, "gcm.yaml", "aesgcm", KEY1);
    let wrong = config(&dir, "wrong.yaml", "aesgcm", WRONG);
    let cbc = config(&dir, "cbc.yaml", "aescbc", CBC);
    let names: Vec<String> = (0..6).map(|i| format!("default/secret-{i}")).collect();
    let snapshot = dir.join("shared.db");
    {
        let server = restore_and_start(v, &v.fixture_snapshot(), "reencrypt-e2e-shared");
        for (i, n) in names.iter().enumerate() {
            let key = format!("/tenant-a/registry/secrets/{n}");
            // Two revisions of each: both are re-encrypted.
            put_raw(&server, &key, &seal(&gcm, &key, format!("old-{i}").as_bytes()));
            put_raw(&server, &key, &seal(&gcm, &key, format!("{{\"data\":{{\"password\":\"p{i}\"}}}}").as_bytes()));
        }
        let cbc_key = "/tenant-a/registry/secrets/default/cbc";
        put_raw(&server, cbc_key, &seal(&cbc, cbc_key, b"cbc-plain"));
        put_raw(&server, "/tenant-a/registry/configmaps/default/cm", b"{}");
        server.ctl_ok(&["snapshot", "save", snapshot.to_str().unwrap()]);
    }
    let args = MOVE_TENANT_A;
    // Without --reencrypt: refused as key-bound, as always.
    let out = dir.join("moved.db");
    let o = etcdsnap(&args, &[&snapshot, &out]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("key-bound"));
    // With the wrong key: refused before anything is written, naming the key and the reason.
    let mut wargs = args.to_vec();
    wargs.extend(["--reencrypt", wrong.to_str().unwrap()]);
    let o = etcdsnap(&wargs, &[&snapshot, &out]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("/tenant-a/registry/secrets/default/secret-0") && err.contains("does not decrypt"), "{err}");
    assert!(!err.contains(WRONG) && !err.contains(KEY1), "key material in a message: {err}");
    assert!(!out.exists());
    // With the right config.
    let mut rargs = args.to_vec();
    rargs.extend(["--reencrypt", gcm.to_str().unwrap()]);
    let o = etcdsnap(&rargs, &[&snapshot, &out]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["reencrypted"]["aesgcm/key1"], 12, "{report}");
    assert_eq!(report["key_bound_renamed"], 0, "{report}");
    assert_eq!(report["encrypted"]["aesgcm"], 12, "{report}");
    assert_eq!(report["encrypted"]["aescbc"], 1, "{report}");

    let server = restore_and_start(v, &out, "reencrypt-e2e-moved");
    for (i, n) in names.iter().enumerate() {
        let (new_key, old_key) = (format!("/registry/secrets/{n}"), format!("/tenant-a/registry/secrets/{n}"));
        let stored = served_value(&server, &new_key);
        assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
        let (code, plain, err) = k8scrypt_run("open", &gcm, "secrets", new_key.as_bytes(), &stored);
        assert_eq!(code, 0, "{new_key}: kube-apiserver's transformer cannot open the moved value: {err}");
        assert_eq!(plain, format!("{{\"data\":{{\"password\":\"p{i}\"}}}}").as_bytes());
        let (code, _, _) = k8scrypt_run("open", &gcm, "secrets", old_key.as_bytes(), &stored);
        assert_eq!(code, 1, "{new_key}: the moved value still opens under its old key");
    }
    // aescbc: carried byte for byte, still readable (not bound to the key).
    let stored = served_value(&server, "/registry/secrets/default/cbc");
    let (code, plain, _) = k8scrypt_run("open", &cbc, "secrets", b"/registry/secrets/default/cbc", &stored);
    assert_eq!((code, plain.as_slice()), (0, &b"cbc-plain"[..]));
}

fn kms(name: &str, api_version: &str, socket: &Path) -> Provider {
    Provider::Kms { name: name.into(), api_version: api_version.into(), socket: socket.to_path_buf() }
}

/// `k8scrypt put-many`: `count` values sealed by one transformer (one DEK), put into `server`.
fn put_many(server: &EtcdServer, cfg: &Path, prefix: &str, count: u32, no_kdf: Option<&str>) {
    let mut c = Command::new(k8scrypt());
    c.arg("put-many").arg(cfg).args(["secrets", &server.endpoint(), prefix, &count.to_string()]);
    if let Some(name) = no_kdf {
        c.env("K8SCRYPT_KMSV2_NO_KDF", name);
    }
    let o = c.stdin(Stdio::null()).output().unwrap();
    assert!(o.status.success(), "k8scrypt put-many {prefix}: {}", String::from_utf8_lossy(&o.stderr));
}

/// key -> value of every key under `prefix` that `server` serves.
fn served_prefix(server: &EtcdServer, prefix: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let v = server.ctl_json(&["get", "--prefix", prefix]);
    let b64 = |x: &Value| base64::engine::general_purpose::STANDARD.decode(x.as_str().unwrap()).unwrap();
    v["kvs"]
        .as_array()
        .map(|a| a.iter().map(|kv| (String::from_utf8(b64(&kv["key"])).unwrap(), b64(&kv["value"]))).collect())
        .unwrap_or_default()
}

#[test]
fn kms_secrets_move_with_their_tenant() {
    let v = EtcdVersion::V3_6_16;
    let dir = scratch("reencrypt-kms");
    let kek = [0x5au8; 32];
    let plugin = KmsPlugin::start(&dir, "kms", &kek, Some("kek-1"));
    // The same key id with another KEK: Decrypt fails as with a rotated-away key.
    let wrong_plugin = KmsPlugin::start(&dir, "wrong", &[0x33u8; 32], Some("kek-1"));
    let socket = plugin.socket().to_path_buf();
    let (seal_v2, seal_v1, tenant) = (dir.join("seal-v2.yaml"), dir.join("seal-v1.yaml"), dir.join("tenant.yaml"));
    write_encryption_config(&seal_v2, &[kms("tenant-kms", "v2", &socket), Provider::Identity]);
    write_encryption_config(&seal_v1, &[kms("old-kms", "v1", &socket), Provider::Identity]);
    // The tenant API server's config: KMS v2 writes, KMS v1 values still read.
    write_encryption_config(
        &tenant,
        &[kms("tenant-kms", "v2", &socket), kms("old-kms", "v1", &socket), Provider::Identity],
    );
    let wrong = dir.join("wrong.yaml");
    write_encryption_config(
        &wrong,
        &[kms("tenant-kms", "v2", wrong_plugin.socket()), kms("old-kms", "v1", &socket), Provider::Identity],
    );
    let renamed = dir.join("renamed.yaml");
    write_encryption_config(&renamed, &[kms("other-kms", "v2", &socket), kms("old-kms", "v1", &socket)]);
    let gone = dir.join("gone.yaml");
    write_encryption_config(
        &gone,
        &[kms("tenant-kms", "v2", &dir.join("no-plugin.sock")), kms("old-kms", "v1", &socket)],
    );

    let snapshot = dir.join("shared.db");
    let old_prefix = "/tenant-a/registry/secrets/";
    let original = {
        let server = restore_and_start(v, &v.fixture_snapshot(), "reencrypt-kms-shared");
        // Seed mode (kube-apiserver's default): 10 Secrets under one DEK seed,
        // then all of them updated under a second seed (two revisions each).
        put_many(&server, &seal_v2, &format!("{old_prefix}seed-"), 10, None);
        put_many(&server, &seal_v2, &format!("{old_prefix}seed-"), 10, None);
        // Plain AES-GCM DEK mode: 4 Secrets under one DEK.
        put_many(&server, &seal_v2, &format!("{old_prefix}plain-"), 4, Some("tenant-kms"));
        // KMS v1: a new DEK per value (upstream's v1 transformer).
        put_many(&server, &seal_v1, &format!("{old_prefix}v1-"), 3, None);
        server.ctl_ok(&["snapshot", "save", snapshot.to_str().unwrap()]);
        served_prefix(&server, old_prefix)
    };
    assert_eq!(original.len(), 17);
    let modes = |p: &str| original.iter().filter(|(k, _)| k.starts_with(&format!("{old_prefix}{p}"))).count();
    assert_eq!((modes("seed-"), modes("plain-"), modes("v1-")), (10, 4, 3));
    for (k, val) in &original {
        let want: &[u8] = if k.contains("/v1-") { b"k8s:enc:kms:v1:old-kms:" } else { b"k8s:enc:kms:v2:tenant-kms:" };
        assert!(val.starts_with(want), "{k}");
    }
    let args = MOVE_TENANT_A;
    let out = dir.join("moved.db");
    let with = |cfg: &Path| {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--reencrypt", cfg.to_str().unwrap()]);
        etcdsnap(&a, &[&snapshot, &out])
    };
    // Refusals: nothing written, the etcd key and the reason named.
    let refused = |o: std::process::Output, what: &str| {
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains("/tenant-a/registry/secrets/"), "{what}: {err}");
        assert!(!out.exists(), "{what}: a refused rewrite wrote {}", out.display());
        err
    };
    let err = refused(etcdsnap(&args, &[&snapshot, &out]), "no --reencrypt");
    assert!(err.contains("key-bound"), "{err}");
    let err = refused(with(&wrong), "wrong KEK");
    assert!(err.contains("tenant-kms") && err.contains("DEK not decrypted"), "{err}");
    assert!(wrong_plugin.calls().get("v2 Decrypt error").is_some_and(|&n| n == 1), "{:?}", wrong_plugin.calls());
    let err = refused(with(&renamed), "unknown provider name");
    assert!(err.contains("no KMS v2 provider named \"tenant-kms\""), "{err}");
    let err = refused(with(&gone), "plugin unreachable");
    assert!(err.contains("no-plugin.sock") && err.contains("unreachable"), "{err}");

    // The move: the plugin is asked for Status once and Decrypt once per distinct DEK.
    let before = plugin.calls();
    let o = with(&tenant);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["reencrypted"]["kms-v2/tenant-kms"], 24, "{report}");
    assert_eq!(report["reencrypted"]["kms-v1/old-kms"], 3, "{report}");
    assert_eq!(report["key_bound_renamed"], 0, "{report}");
    let calls = &report["plugin_calls"];
    assert_eq!(calls["kms-v2/tenant-kms"], serde_json::json!({"Status": 1, "Decrypt": 3}), "{report}");
    assert_eq!(calls["kms-v1/old-kms"], serde_json::json!({"Version": 1, "Decrypt": 3}), "{report}");
    let after = plugin.calls();
    let delta = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert_eq!(
        (delta("v2 Status ok"), delta("v2 Decrypt ok"), delta("v1beta1 Decrypt ok"), delta("v2 Encrypt ok")),
        (1, 3, 3, 0),
        "the plugin's own log: {after:?}"
    );

    // Restored and served; kube-apiserver's transformers open every moved
    // value under its new key, to the plaintext of the original.
    let server = restore_and_start(v, &out, "reencrypt-kms-moved");
    let moved = served_prefix(&server, "/registry/secrets/");
    assert_eq!(moved.len(), original.len());
    for (old_key, old_value) in &original {
        let new_key = old_key.replacen("/tenant-a/registry/", "/registry/", 1);
        let stored = &moved[&new_key];
        assert_eq!(stored.len(), old_value.len(), "{new_key}");
        assert_ne!(stored, old_value, "{new_key}: not re-sealed");
        let (code, want, err) = k8scrypt_run("open", &tenant, "secrets", old_key.as_bytes(), old_value);
        assert_eq!(code, 0, "{old_key}: {err}");
        let (code, got, err) = k8scrypt_run("open", &tenant, "secrets", new_key.as_bytes(), stored);
        assert_eq!(code, 0, "{new_key}: kube-apiserver's transformer cannot open the moved value: {err}");
        assert_eq!(got, want, "{new_key}");
    }
    // Bound to the new key only.
    let (k, val) = moved.iter().next().unwrap();
    let old = k.replacen("/registry/", "/tenant-a/registry/", 1);
    assert_eq!(k8scrypt_run("open", &tenant, "secrets", old.as_bytes(), val).0, 1);
}
