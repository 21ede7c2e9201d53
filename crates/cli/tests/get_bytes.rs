//! `get` and `keys` print bytes as stored: raw on stdout like etcdctl, escaped
//! only with `--hex`, never through a lossy text conversion. Judged against
//! `expected/get.json` of each fixture (etcdctl's own base64 of the same data).
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

use base64::Engine;
use etcd_support::{etcdsnap, etcdsnap_ok};
use etcdsnap_testkit::EtcdVersion;

fn b64(v: &serde_json::Value) -> Vec<u8> {
    v.as_str().map(|s| base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap_or_default()
}

/// (key, value) of every live key, as etcdctl served them before the snapshot.
fn expected(version: EtcdVersion) -> Vec<(Vec<u8>, Vec<u8>)> {
    let get = version.expected_json("get.json");
    get["kvs"].as_array().unwrap().iter().map(|kv| (b64(&kv["key"]), b64(&kv["value"]))).collect()
}

fn hex_escaped(b: &[u8]) -> Vec<u8> {
    b.iter().flat_map(|c| format!("\\x{c:02x}").into_bytes()).collect()
}

#[cfg(unix)]
fn os(b: &[u8]) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b).to_os_string()
}

#[test]
fn encrypted_secret_value_comes_out_byte_identical() {
    for version in EtcdVersion::ALL {
        let snap = version.fixture_snapshot();
        let kvs = expected(version);
        let (key, value) =
            kvs.iter().find(|(_, v)| std::str::from_utf8(v).is_err()).expect("a non-UTF-8 (encrypted) value");
        assert!(value.starts_with(b"k8s:enc:aesgcm:"), "{version}");
        let snap = snap.as_os_str().to_os_string();

        // Value only: exactly the stored bytes and etcdctl's newline.
        let out = etcdsnap_ok(&[os(b"get"), snap.clone(), os(key), os(b"--print-value-only")]);
        let mut want = value.clone();
        want.push(b'\n');
        assert_eq!(out, want, "{version}: value of {}", String::from_utf8_lossy(key));

        // Key, then value, as etcdctl's simple output.
        let out = etcdsnap_ok(&[os(b"get"), snap.clone(), os(key)]);
        assert_eq!(out, [key.as_slice(), b"\n", value, b"\n"].concat());

        // --hex escapes every byte, as etcdctl --hex.
        let out = etcdsnap_ok(&[os(b"get"), snap.clone(), os(key), os(b"--hex")]);
        assert_eq!(out, [hex_escaped(key), b"\n".to_vec(), hex_escaped(value), b"\n".to_vec()].concat());

        // --keys-only: the key and an empty line, as etcdctl.
        let out = etcdsnap_ok(&[os(b"get"), snap.clone(), os(key), os(b"--keys-only")]);
        assert_eq!(out, [key.as_slice(), b"\n\n"].concat());
    }
}

#[test]
fn prefix_get_returns_every_value_unchanged() {
    let version = EtcdVersion::V3_5_1;
    let snap = version.fixture_snapshot().as_os_str().to_os_string();
    let want: Vec<(Vec<u8>, Vec<u8>)> =
        expected(version).into_iter().filter(|(k, _)| k.starts_with(b"/tenant-2/registry/secrets/")).collect();
    assert!(want.len() > 5);
    let out = etcdsnap_ok(&[os(b"get"), snap.clone(), os(b"/tenant-2/registry/secrets/"), os(b"--prefix")]);
    let joined: Vec<u8> = want.iter().flat_map(|(k, v)| [k.as_slice(), b"\n", v, b"\n"].concat()).collect();
    assert_eq!(out, joined);

    // --limit keeps the first N in key order.
    let out = etcdsnap_ok(&[
        os(b"get"),
        snap.clone(),
        os(b"/tenant-2/registry/secrets/"),
        os(b"--prefix"),
        os(b"--limit"),
        os(b"2"),
        os(b"--keys-only"),
    ]);
    let joined: Vec<u8> = want.iter().take(2).flat_map(|(k, _)| [k.as_slice(), b"\n\n"].concat()).collect();
    assert_eq!(out, joined);

    // keys: raw keys, one per line; --hex escapes them; --limit cuts.
    let out = etcdsnap_ok(&[os(b"keys"), snap.clone(), os(b"--prefix"), os(b"/tenant-2/registry/secrets/")]);
    let joined: Vec<u8> = want.iter().flat_map(|(k, _)| [k.as_slice(), b"\n"].concat()).collect();
    assert_eq!(out, joined);
    let out = etcdsnap_ok(&[
        os(b"keys"),
        snap,
        os(b"--prefix"),
        os(b"/tenant-2/registry/secrets/"),
        os(b"--hex"),
        os(b"--limit"),
        os(b"1"),
    ]);
    assert_eq!(out, [hex_escaped(&want[0].0), b"\n".to_vec()].concat());
}

#[test]
fn value_only_and_keys_only_conflict() {
    let snap = EtcdVersion::V3_5_1.fixture_snapshot();
    let o = etcdsnap(&[
        "get".as_ref(),
        snap.as_os_str(),
        "k".as_ref(),
        "--keys-only".as_ref(),
        "--print-value-only".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}
