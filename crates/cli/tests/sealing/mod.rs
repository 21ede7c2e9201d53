//! Sealing Kubernetes values for the census tests: EncryptionConfiguration
//! YAML, k8s.io/apiserver's own transformers (`k8scrypt`) sealing a value,
//! and `etcdctl put` of the raw bytes into a real etcd.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use etcdsnap_testkit::{k8scrypt_run, EtcdServer};

/// One `aescbc`/`aesgcm`/`secretbox` provider with a single key.
pub fn aes(kind: &str, name: &str, secret: &str) -> String {
    format!("      - {kind}:\n          keys:\n            - name: {name}\n              secret: {secret}\n")
}

/// `identity: {}`, as a provider.
pub const IDENTITY: &str = "      - identity: {}\n";

/// An EncryptionConfiguration: each resource's providers, in order.
pub fn write_config(path: &Path, rules: &[(&str, Vec<String>)]) {
    let mut s = String::from("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n");
    for (res, providers) in rules {
        s.push_str(&format!("  - resources: [\"{res}\"]\n    providers:\n"));
        for p in providers {
            s.push_str(p);
        }
    }
    std::fs::write(path, s).unwrap();
}

/// `plain` sealed by `cfg`'s writing provider for `resource` at etcd key `key`.
pub fn seal(cfg: &Path, resource: &str, key: &str, plain: &[u8]) -> Vec<u8> {
    let (code, out, err) = k8scrypt_run("seal", cfg, resource, key.as_bytes(), plain);
    assert_eq!(code, 0, "k8scrypt seal {key}: {err}");
    out
}

/// `etcdctl put KEY` with the raw `value` on stdin.
pub fn put_raw(server: &EtcdServer, key: &str, value: &[u8]) {
    let mut c = server.version().etcdctl_command();
    c.args(["--endpoints", &server.endpoint(), "put", key]).stdin(Stdio::piped()).stdout(Stdio::null());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(value).unwrap();
    assert!(child.wait().unwrap().success(), "etcdctl put {key}");
}
