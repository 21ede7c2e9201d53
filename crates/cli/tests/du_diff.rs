//! `etcdsnap du` and `etcdsnap diff` end to end: JSON contracts (unknown fields
//! denied), totals against `status` on every fixture, a tenant against its
//! moved copy written by `rewrite`, and two copies of one etcd's data where real
//! etcd made one extra write.
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

use std::path::Path;

use etcd_support::{etcdsnap, fixture_files, json};
use etcdsnap_testkit::{header_revision, restore_and_start, scratch, EtcdVersion};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct KeyJson {
    key: Value,
    value_bytes: u64,
    mod_revision: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct UsageJson {
    #[serde(default)]
    group: Option<Value>,
    live_keys: u64,
    live_value_bytes: u64,
    live_stored_bytes: u64,
    history_revisions: u64,
    history_stored_bytes: u64,
    tombstones: u64,
    leased_keys: u64,
    share: f64,
    largest: Option<KeyJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DuJson {
    file: String,
    by: String,
    revision: i64,
    file_bytes: u64,
    db_bytes: u64,
    free_pages: u64,
    free_bytes: u64,
    markers: u64,
    later_revisions: u64,
    totals: UsageJson,
    groups: Vec<UsageJson>,
    largest_keys: Vec<KeyJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SideJson {
    key: Value,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
    value_bytes: u64,
    #[serde(default)]
    value: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct KeyDiffJson {
    key: Value,
    kind: String,
    fields: Vec<String>,
    a: Option<SideJson>,
    b: Option<SideJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct BucketDiffJson {
    bucket: Value,
    key: Value,
    kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DiffJson {
    a: String,
    b: String,
    equal: bool,
    rev_a: i64,
    rev_b: i64,
    keys_a: u64,
    keys_b: u64,
    only_a: u64,
    only_b: u64,
    changed: u64,
    keys: Vec<KeyDiffJson>,
    buckets_compared: Vec<Value>,
    buckets: Vec<BucketDiffJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct StoredJson {
    revision: i64,
    sub: i64,
    tombstone: bool,
    key: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct HistoryJson {
    a: String,
    b: String,
    equal: bool,
    compared_after: i64,
    compared: u64,
    first_difference: Option<i64>,
    at_first_a: Vec<StoredJson>,
    at_first_b: Vec<StoredJson>,
    only_a: u64,
    only_b: u64,
    changed: u64,
    latest_a: i64,
    latest_b: i64,
}

fn run(args: &[&str], paths: &[&Path], code: i32) -> Vec<u8> {
    let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    all.extend(paths.iter().map(|p| p.as_os_str().to_os_string()));
    let out = etcdsnap(&all);
    assert_eq!(out.status.code(), Some(code), "etcdsnap {all:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn du_json_totals_equal_status_on_every_fixture() {
    for (_, file) in fixture_files() {
        let status = json(&run(&["status", "--json"], &[&file], 0));
        for by in ["tenant", "resource", "namespace", "prefix:2"] {
            let d: DuJson = serde_json::from_slice(&run(&["du", "--json", "--by", by], &[&file], 0)).unwrap();
            assert_eq!(d.by, by);
            let live: u64 = d.groups.iter().map(|g| g.live_keys).sum();
            let hist: u64 = d.groups.iter().map(|g| g.history_revisions).sum();
            let tombs: u64 = d.groups.iter().map(|g| g.tombstones).sum();
            assert_eq!(live, status["live_keys"].as_u64().unwrap(), "{} {by}", file.display());
            assert_eq!(tombs, status["tombstones"].as_u64().unwrap());
            assert_eq!(live + hist + d.markers, status["revisions"].as_u64().unwrap());
            assert_eq!(d.totals.live_keys, live);
            assert!(d.groups.iter().all(|g| g.group.is_some()) && d.totals.group.is_none());
            assert_eq!(d.db_bytes, status["total_size"].as_u64().unwrap());
            assert_eq!(d.revision, 1473);
        }
    }
    // Human output: a table with a TOTAL row; usage errors exit 2.
    let f = EtcdVersion::V3_5_1.fixture_snapshot();
    let text = String::from_utf8(run(&["du"], &[&f], 0)).unwrap();
    assert!(text.lines().any(|l| l.starts_with("TOTAL ") && l.contains(" 718 ")), "{text}");
    run(&["du", "--by", "prefix:0"], &[&f], 2);
}

#[test]
fn diff_of_a_tenant_with_its_moved_copy_is_equal() {
    let dir = scratch("du-diff-moved");
    for v in [EtcdVersion::V3_5_1, EtcdVersion::V3_7_3] {
        let src = v.fixture_snapshot();
        let out = dir.join(format!("moved-{v}.db"));
        run(
            &[
                "rewrite",
                "--include",
                "/tenant-1/",
                "--keep-key",
                "compact_rev_key",
                "--rename",
                "/tenant-1/registry/=/registry/",
                "--bump-revision",
                "1000000000",
                "--mark-compacted",
                "--json",
            ],
            &[&src, &out],
            0,
        );
        let d: DiffJson = serde_json::from_slice(&run(
            &["diff", "--json", "--rename", "/tenant-1/registry/=/registry/"],
            &[&src, &out],
            0,
        ))
        .unwrap();
        assert!(d.equal && d.keys.is_empty() && d.buckets.is_empty(), "{v}: {d:?}");
        assert_eq!((d.keys_a, d.rev_a, d.rev_b), (d.keys_b, 1473, 1_000_001_473));
        assert!(d.keys_a > 200);
        // Without the rename: everything of the tenant differs, exit 1.
        let d: DiffJson = serde_json::from_slice(&run(&["diff", "--json"], &[&src, &out], 1)).unwrap();
        assert!(!d.equal && d.only_a > 400 && d.only_b > 200, "{v}");
    }
}

/// Two copies of one etcd's data, one with a real extra write by etcd: the
/// key-space diff names exactly that key, `--history` finds its revision.
#[test]
fn diff_finds_a_members_extra_write() {
    let v = EtcdVersion::V3_6_16;
    let dir = scratch("du-diff-extra");
    let a = v.fixture_snapshot();
    let b = dir.join("b.db");
    {
        let server = restore_and_start(v, &a, "du-diff-extra-etcd");
        let put = server.ctl_json(&["put", "/tenant-2/registry/configmaps/default/extra", "{}"]);
        assert_eq!(header_revision(&put), 1474);
        server.ctl_ok(&["snapshot", "save", b.to_str().unwrap()]);
    }
    let d: DiffJson = serde_json::from_slice(&run(&["diff", "--json", "--values"], &[&a, &b], 1)).unwrap();
    assert_eq!((d.only_a, d.only_b, d.changed), (0, 1, 0), "{d:?}");
    assert_eq!(d.keys[0].key, "/tenant-2/registry/configmaps/default/extra");
    assert_eq!(d.keys[0].b.as_ref().unwrap().value.as_ref().unwrap(), "{}");
    // Restore rewrote the members: that is reported too (and only that).
    assert!(d.buckets.iter().all(|x| x.bucket == "members"), "{:?}", d.buckets);
    let h: HistoryJson = serde_json::from_slice(&run(&["diff", "--history", "--json"], &[&a, &b], 1)).unwrap();
    assert_eq!(h.first_difference, Some(1474));
    assert_eq!((h.only_a, h.only_b, h.changed), (0, 1, 0));
    assert_eq!(h.at_first_b.len(), 1);
    assert_eq!(h.at_first_b[0].key, "/tenant-2/registry/configmaps/default/extra");
    // The same file against itself: equal, exit 0; a data dir is read through member/snap/db.
    let h: HistoryJson =
        serde_json::from_slice(&run(&["diff", "--history", "--json"], &[&a, &v.fixture_dir()], 0)).unwrap();
    assert!(h.equal && h.first_difference.is_none());
}

/// du and diff take a snapshot, a raw db, a data dir or a member dir; the db a
/// directory stands for is decided in one place (paths.rs) and named in the
/// report; a directory that is neither says what it is.
#[test]
fn du_and_diff_read_data_dirs_and_member_dirs_through_their_db() {
    let v = EtcdVersion::V3_5_1;
    let data = v.fixture_dir();
    let db = data.join("member/snap/db");
    let want: Value = serde_json::from_slice(&run(&["du", "--json"], &[&db], 0)).unwrap();
    for p in [data.clone(), data.join("member")] {
        let got: Value = serde_json::from_slice(&run(&["du", "--json"], &[&p], 0)).unwrap();
        assert_eq!(got, want, "{}", p.display());
        let d: Value = serde_json::from_slice(&run(&["diff", "--json"], &[&p, &db], 0)).unwrap();
        assert_eq!(d["equal"], Value::Bool(true), "{}", p.display());
    }
    let dir = scratch("du-plain-dir");
    for args in [vec!["du"], vec!["diff", db.to_str().unwrap()]] {
        let mut a = args.clone();
        a.push(dir.to_str().unwrap());
        let o = etcdsnap(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {err}");
        assert!(
            err.contains(&format!(
                "{} is a directory; expected a snapshot or db file, or an etcd data dir",
                dir.display()
            )),
            "{err}"
        );
    }
    std::fs::remove_dir(&dir).unwrap();
}
