//! `rewrite --reencrypt`: Secrets sealed by kube-apiserver's own aesgcm
//! transformer (k8s.io/apiserver through `k8scrypt`) under
//! `/tenant-a/registry/…` are written into real etcd, snapshotted, moved to
//! `/registry/…` with re-encryption, restored by the stock restore and served
//! by real etcd; the served values open with the same transformer under their
//! new key (and no longer under the old one). aescbc values are carried byte
//! for byte; a wrong key refuses the rewrite before anything is written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine;
use etcdsnap_testkit::{k8scrypt_run, restore_and_start, scratch, EtcdServer, EtcdVersion};
use serde_json::Value;

const KEY1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
const WRONG: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // 32 other bytes
const CBC: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="; // 32 bytes

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
    let args = [
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
