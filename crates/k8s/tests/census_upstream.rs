//! The census opens what k8s.io/apiserver's own transformers sealed
//! (`k8scrypt`, the EncryptionConfiguration loader and prefix transformers of
//! kube-apiserver): aescbc (16- and 32-byte keys), secretbox and aesgcm, and
//! refuses the same values damaged by one byte, under another key, or (for
//! aesgcm only) under another etcd key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation
)]

use std::path::Path;

use etcdsnap_k8s::census::{Census, CensusKind, CensusReport, Opener};
use etcdsnap_k8s::EncryptionConfig;
use etcdsnap_testkit::{k8scrypt_run, scratch};

const K32: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
const K16: &str = "YWJjZGVmZ2hpamtsbW5vcA=="; // 16 bytes
const OTHER: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // 32 other bytes

fn config(dir: &Path, name: &str, provider: &str, key_name: &str, secret: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - {provider}:\n          keys:\n            - name: {key_name}\n              secret: {secret}\n"
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

fn census(cfg: &Path, values: &[(&str, &[u8])]) -> CensusReport {
    let opener = Opener::new(&EncryptionConfig::load(cfg).unwrap()).unwrap();
    let mut c = Census::new(&opener);
    for (k, v) in values {
        c.add(k.as_bytes(), v);
    }
    c.finish()
}

#[test]
fn opens_what_upstream_sealed_and_refuses_damage() {
    let dir = scratch("census-upstream");
    for (provider, secret, prefix) in [
        ("aescbc", K32, "k8s:enc:aescbc:v1:k1:"),
        ("aescbc", K16, "k8s:enc:aescbc:v1:k1:"),
        ("secretbox", K32, "k8s:enc:secretbox:v1:k1:"),
        ("aesgcm", K32, "k8s:enc:aesgcm:v1:k1:"),
    ] {
        let what = format!("{provider} ({} base64 chars)", secret.len());
        let cfg = config(&dir, &format!("{provider}-{}.yaml", secret.len()), provider, "k1", secret);
        let wrong = config(&dir, &format!("{provider}-{}-wrong.yaml", secret.len()), provider, "k1", OTHER);
        // Plaintexts of many lengths: every padding length of CBC, empty included.
        let plains: Vec<Vec<u8>> = (0..40usize).map(|n| (0..n).map(|i| b'a' + (i % 26) as u8).collect()).collect();
        let keys: Vec<String> = (0..plains.len()).map(|i| format!("/registry/secrets/ns/s-{i}")).collect();
        let sealed: Vec<Vec<u8>> = keys.iter().zip(&plains).map(|(k, p)| seal(&cfg, k, p)).collect();
        for s in &sealed {
            assert!(s.starts_with(prefix.as_bytes()), "{what}: {:?}", String::from_utf8_lossy(&s[..prefix.len()]));
        }
        let values: Vec<(&str, &[u8])> =
            keys.iter().map(String::as_str).zip(sealed.iter().map(Vec::as_slice)).collect();
        let r = census(&cfg, &values);
        assert_eq!((r.values, r.opened, r.failed), (40, 40, 0), "{what}: {r:?}");
        assert_eq!(r.keys.len(), 1, "{what}");
        assert_eq!((r.keys[0].provider.as_str(), r.keys[0].key.as_str(), r.keys[0].opened), (provider, "k1", 40));
        // The same values under another secret of the same name: none opens (CBC by its padding,
        // which a wrong key passes about once in 256: the count must be nearly all).
        let r = census(&wrong, &values);
        assert!(r.failed >= 38 && r.failed + r.opened == 40, "{what} wrong key: {r:?}");
        if provider != "aescbc" {
            assert_eq!(r.failed, 40, "{what}: an authenticated value opened under a wrong key");
        }
        // One byte flipped in the tag/last block: upstream refuses it, so must we (checked with k8scrypt too).
        let mut damaged = sealed[16].clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0x01;
        let (code, _, _) = k8scrypt_run("open", &cfg, "secrets", keys[16].as_bytes(), &damaged);
        let r = census(&cfg, &[(keys[16].as_str(), &damaged)]);
        assert_eq!(r.failed == 1, code != 0, "{what}: we and upstream disagree on a damaged value: {r:?}");
        // Key binding: only aesgcm authenticates the etcd key.
        let moved = census(&cfg, &[("/registry/secrets/other/moved", &sealed[5])]);
        let (code, _, _) = k8scrypt_run("open", &cfg, "secrets", b"/registry/secrets/other/moved", &sealed[5]);
        assert_eq!(moved.opened == 1, code == 0, "{what}: we and upstream disagree on a moved value");
        assert_eq!(moved.opened == 1, provider != "aesgcm", "{what}: {moved:?}");
        if moved.failed == 1 {
            let f = &moved.findings[0];
            assert_eq!(
                (f.kind, f.key.as_str(), f.key_name.as_str()),
                (CensusKind::Failed, "/registry/secrets/other/moved", "k1")
            );
            assert!(
                !f.message.contains(K32)
                    && !f.message.contains(&plains[5].iter().map(|&b| b as char).collect::<String>())
            );
        }
    }
}
