//! The other clouds' object stores as input, each against a real emulator on
//! 127.0.0.1 (tests fail, never skip, without it): `gs://` against
//! fake-gcs-server 1.56.1 (object_store's GCS client, `GOOGLE_BASE_URL`),
//! `az://` against Azurite 3.35.0 (`--endpoint`, the account from the
//! standard `AZURE_STORAGE_*` variables), and `https://` — here `http://`
//! with `--allow-http` — against fake-gcs-server's plain object downloads,
//! which any web server could serve. Each store holds every etcd version's
//! committed snapshot and one damaged copy. Asserted: `status` of an object
//! says what it says of the local file; `verify -r` of the prefix (gs, az)
//! gives every object a record equal to the local `verify`, `status` and
//! `hashkv` (the damaged one with problems, exit 1); a missing object exits
//! 2 naming its URL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use etcdsnap_testkit::stores::{AzuriteServer, GcsServer};
use serde_json::Value;

const VERSIONS: [&str; 5] = ["etcd-3.4.23", "etcd-3.5.1", "etcd-3.5.35", "etcd-3.6.16", "etcd-3.7.3"];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(args: &[&str], envs: &[(&'static str, String)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etcdsnap"));
    c.args(args).env_remove("JOB_COMPLETION_INDEX");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The objects (key → local file with the same bytes): every version's
/// snapshot, and the 3.5.35 one with a byte of a middle page changed.
fn objects(scratch: &Path) -> BTreeMap<String, PathBuf> {
    let mut m = BTreeMap::new();
    for v in VERSIONS {
        m.insert(format!("backups/{v}/snapshot.db"), etcdsnap_testkit::testdata().join(v).join("snapshot.db"));
    }
    let mut bytes = std::fs::read(etcdsnap_testkit::testdata().join("etcd-3.5.35/snapshot.db")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let damaged = scratch.join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    m.insert("backups/damaged/snapshot.db".into(), damaged);
    m
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", text(&out.stdout), text(&out.stderr)))
}

/// `status --json` of `url` equals the local file's, but for the name of the input.
fn assert_status_equal(url: &str, file: &Path, flags: &[&str], envs: &[(&'static str, String)]) {
    let args: Vec<&str> = ["status", "--json", url].iter().copied().chain(flags.iter().copied()).collect();
    let remote = run(&args, envs);
    assert_eq!(remote.status.code(), Some(0), "{url}: {}", text(&remote.stderr));
    let local = run(&["status", "--json", file.to_str().unwrap()], &[]);
    let (mut r, mut l) = (json(&remote), json(&local));
    for v in [&mut r, &mut l] {
        v.as_object_mut().unwrap().retain(|k, _| k != "file" && k != "input");
    }
    assert_eq!(r, l, "{url} against {}", file.display());
    assert!(r["revision"].as_i64().unwrap() > 0, "{r}");
}

/// `verify BASE/backups/ -r` gives each object (BASE + key) the local commands' figures.
fn assert_fleet_equal_local(
    base: &str,
    objects: &BTreeMap<String, PathBuf>,
    flags: &[&str],
    envs: &[(&'static str, String)],
) {
    let prefix = format!("{base}backups/");
    let args: Vec<&str> = ["verify", prefix.as_str(), "-r", "--report-format", "jsonl", "-j", "3"]
        .iter()
        .copied()
        .chain(flags.iter().copied())
        .collect();
    let out = run(&args, envs);
    assert_eq!(out.status.code(), Some(1), "one object is damaged: {}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let backups: BTreeMap<String, &Value> =
        lines.iter().filter(|l| l["type"] == "backup").map(|l| (l["url"].as_str().unwrap().to_string(), l)).collect();
    assert_eq!(backups.len(), objects.len(), "{}", text(&out.stdout));
    for (key, file) in objects {
        let url = format!("{base}{key}");
        let b = backups.get(&url).unwrap_or_else(|| panic!("no record of {url}: {}", text(&out.stdout)));
        let f = file.to_str().unwrap();
        let v = json(&run(&["verify", "--json", f], &[]));
        assert_eq!(b["state"] == "valid", v["ok"] == true, "{url}: {b}\nlocal: {v}");
        assert_eq!(b["problem_count"], v["problem_count"], "{url}: {b}\nlocal: {v}");
        assert_eq!(b["trailer"], v["trailer"], "{url}: {b}\nlocal: {v}");
        assert_eq!(b["size"].as_u64(), Some(std::fs::metadata(file).unwrap().len()), "{url}");
        if v["ok"] == true {
            let st = json(&run(&["status", "--json", f], &[]));
            let kv = json(&run(&["hashkv", "--json", f], &[]));
            assert_eq!(b["revision"], st["revision"], "{url}: {b}");
            assert_eq!(
                (b["status_hash"].as_u64(), b["hashkv"].as_u64()),
                (st["hash"].as_u64(), kv["hash"].as_u64()),
                "{url}"
            );
        }
    }
    assert_eq!(backups.values().filter(|b| b["state"] == "valid").count(), VERSIONS.len());
}

/// A missing object: exit 2 (unreadable), its URL named.
fn assert_missing(url: &str, flags: &[&str], envs: &[(&'static str, String)]) {
    let args: Vec<&str> = ["verify", url].iter().copied().chain(flags.iter().copied()).collect();
    let out = run(&args, envs);
    assert_eq!(out.status.code(), Some(2), "{url}: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stderr).contains(url) || text(&out.stdout).contains(url),
        "{url} not named: {}",
        text(&out.stderr)
    );
}

#[test]
fn gcs_and_plain_https_objects_read_as_the_local_files() {
    let scratch = etcdsnap_testkit::scratch("object_stores_gcs");
    let objects = objects(&scratch);
    let data: Vec<(String, Vec<u8>)> = objects.iter().map(|(k, f)| (k.clone(), std::fs::read(f).unwrap())).collect();
    let refs: Vec<(&str, &[u8])> = data.iter().map(|(k, d)| (k.as_str(), d.as_slice())).collect();
    let gcs = GcsServer::start("object_stores_gcs_server", "backups-bucket", &refs);
    let env = gcs.env();
    let http = ["--allow-http"];
    for (key, file) in &objects {
        if key.contains("damaged") {
            continue;
        }
        assert_status_equal(&gcs.url(key), file, &http, &env);
        // The same object as a plain web download (no cloud client, no credentials).
        assert_status_equal(&gcs.http_url(key), file, &http, &[]);
    }
    assert_fleet_equal_local(&gcs.url(""), &objects, &http, &env);
    let damaged = run(&["verify", &gcs.http_url("backups/damaged/snapshot.db"), "--allow-http"], &[]);
    assert_eq!(damaged.status.code(), Some(1), "{}", text(&damaged.stderr));
    assert_missing(&gcs.url("backups/none/snapshot.db"), &http, &env);
    assert_missing(&gcs.http_url("backups/none/snapshot.db"), &http, &[]);
    // http:// without --allow-http is refused, naming the flag.
    let out = run(&["status", &gcs.http_url("backups/etcd-3.5.1/snapshot.db")], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("allow-http"), "{}", text(&out.stderr));
}

#[test]
fn azure_blobs_read_as_the_local_files() {
    let scratch = etcdsnap_testkit::scratch("object_stores_az");
    let objects = objects(&scratch);
    let az = AzuriteServer::start("object_stores_az_server", "backups");
    for (key, file) in &objects {
        az.put(key, std::fs::read(file).unwrap());
    }
    let env = az.env();
    let endpoint = az.endpoint();
    let flags = ["--endpoint", endpoint.as_str(), "--allow-http"];
    for (key, file) in &objects {
        if !key.contains("damaged") {
            assert_status_equal(&az.url(key), file, &flags, &env);
        }
    }
    assert_fleet_equal_local(&az.url(""), &objects, &flags, &env);
    assert_missing(&az.url("backups/none/snapshot.db"), &flags, &env);
    // A wrong account key: unreadable (exit 2), never a verdict on the data.
    let wrong = vec![
        ("AZURE_STORAGE_ACCOUNT_NAME", etcdsnap_testkit::stores::AZURITE_ACCOUNT.to_string()),
        (
            "AZURE_STORAGE_ACCOUNT_KEY",
            "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==".to_string(),
        ),
    ];
    let out =
        run(&["verify", &az.url("backups/etcd-3.5.1/snapshot.db"), "--endpoint", &endpoint, "--allow-http"], &wrong);
    assert_eq!(out.status.code(), Some(2), "{}{}", text(&out.stdout), text(&out.stderr));
}
