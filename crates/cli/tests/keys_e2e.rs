//! `etcdsnap keys` / `get` against real etcd: each fixture snapshot is restored
//! with its version's stock tool (hash checked) and served; our listing of the
//! file must equal `etcdctl get` of the server, at the latest revision, at a
//! revision between compaction and head, under a prefix, and for one key.
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

use etcd_support::{assert_rows_eq, ctl_row, ctl_rows, etcdsnap_ok, json, json_lines, our_row, Row};
use etcdsnap_testkit::{header_revision, restore_and_start, EtcdVersion};

fn check_version(version: EtcdVersion) {
    let snap = version.fixture_snapshot();
    let server = restore_and_start(version, &snap, &format!("keys_e2e-{version}"));
    let files = [snap.clone(), version.fixture_raw_db()];
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();

    // Whole key space, latest and at revisions between compaction and head.
    for rev in [0i64, 1147, 1148, 1300, 1472] {
        let mut args = vec!["get", "", "--prefix"];
        let r = rev.to_string();
        if rev > 0 {
            args.extend(["--rev", &r]);
        }
        let theirs = server.ctl_json(&args);
        let want = ctl_rows(&theirs);
        assert!(!want.is_empty());
        assert_eq!(theirs["count"].as_u64(), Some(want.len() as u64));
        for f in &files {
            let mut a = vec!["keys".to_string(), s(f), "--json".into()];
            if rev > 0 {
                a.extend(["--rev".into(), r.clone()]);
            }
            let ours: Vec<Row> = json_lines(&etcdsnap_ok(&a)).iter().map(our_row).collect();
            assert_rows_eq(&ours, &want, &format!("{version} {} keys --rev {rev}", f.display()));
        }
    }

    // A prefix, latest and at 1300.
    for rev in [0i64, 1300] {
        let r = rev.to_string();
        let mut args = vec!["get", "/tenant-2/", "--prefix"];
        if rev > 0 {
            args.extend(["--rev", &r]);
        }
        let want = ctl_rows(&server.ctl_json(&args));
        assert!(!want.is_empty());
        let mut a = vec!["keys".to_string(), s(&snap), "--json".into(), "--prefix".into(), "/tenant-2/".into()];
        if rev > 0 {
            a.extend(["--rev".into(), r.clone()]);
        }
        let ours: Vec<Row> = json_lines(&etcdsnap_ok(&a)).iter().map(our_row).collect();
        assert_rows_eq(&ours, &want, &format!("{version} keys --prefix /tenant-2/ --rev {rev}"));
    }

    // One key: revision, count, kvs; also a missing key.
    for (key, rev) in [("compact_rev_key", 0i64), ("compact_rev_key", 1300), ("/no/such/key", 0)] {
        let r = rev.to_string();
        let mut args = vec!["get", key];
        if rev > 0 {
            args.extend(["--rev", &r]);
        }
        let theirs = server.ctl_json(&args);
        let mut a = vec!["get".to_string(), s(&snap), key.into(), "--json".into()];
        if rev > 0 {
            a.extend(["--rev".into(), r.clone()]);
        }
        let ours = json(&etcdsnap_ok(&a));
        let what = format!("{version} get {key} --rev {rev}");
        // etcd answers with the store's current revision in the header, whatever --rev says.
        assert_eq!(header_revision(&ours), header_revision(&theirs), "{what}");
        assert_eq!(header_revision(&theirs), 1473, "{what}");
        assert_eq!(ours["count"].as_u64(), theirs["count"].as_u64(), "{what}");
        let ours_kvs: Vec<Row> = ours["kvs"].as_array().map(|k| k.iter().map(ctl_row).collect()).unwrap_or_default();
        assert_rows_eq(&ours_kvs, &ctl_rows(&theirs), &what);
        if key == "compact_rev_key" {
            assert_eq!(ours_kvs.len(), 1, "{what}");
        }
    }

    // --all-revisions lists every entry of the `key` bucket.
    for f in &files {
        let all = etcdsnap_ok(&["keys".to_string(), s(f), "--all-revisions".into(), "--json".into()]);
        let bolt = etcdsnap_ok(&["bolt".to_string(), "keys".into(), s(f), "key".into(), "--json".into()]);
        let all = json_lines(&all);
        assert_eq!(all.len(), json_lines(&bolt).len(), "{}", f.display());
        assert_eq!(all.len(), 1217, "testdata/README.md: 1,217 entries in the key bucket");
        assert!(all
            .windows(2)
            .all(|w| (w[0]["revision"].as_i64(), w[0]["sub"].as_i64())
                < (w[1]["revision"].as_i64(), w[1]["sub"].as_i64())));
    }
}

etcdsnap_testkit::per_version!(check_version);
