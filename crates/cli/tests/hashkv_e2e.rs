//! `etcdsnap hashkv --tombstone-rule include` against real etcd: each fixture
//! snapshot is restored with its version's stock tool (hash checked) and served;
//! `etcdctl endpoint hashkv --rev N` and our figure must agree for the latest
//! revision and revisions after the compaction, and both must refuse the
//! compact revision itself (etcd's hashByRev refuses `rev <= compactRev`), a
//! revision below it, and a future revision.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod etcd_support;

use std::path::Path;

use etcd_support::{etcdsnap, json};
use etcdsnap_testkit::{restore_and_start, EtcdServer, EtcdVersion};
use serde_json::Value;

const COMPACT: i64 = 1147;
const LATEST: i64 = 1473;

fn ours(file: &Path, rev: i64) -> std::process::Output {
    etcdsnap(&[
        "hashkv".as_ref(),
        file.as_os_str(),
        "--rev".as_ref(),
        rev.to_string().as_ref(),
        "--json".as_ref(),
        "--tombstone-rule".as_ref(),
        "include".as_ref(),
    ])
}

fn etcd_hashkv(server: &EtcdServer, rev: i64) -> std::process::Output {
    server.ctl(&["endpoint", "hashkv", "--rev", &rev.to_string(), "-w", "json"])
}

fn check_version(version: EtcdVersion) {
    let server = restore_and_start(version, &version.fixture_snapshot(), &format!("hashkv_e2e-{version}"));
    let files = [version.fixture_snapshot(), version.fixture_raw_db()];
    for rev in [0, 1148, 1200, 1300, 1472, LATEST] {
        let out = etcd_hashkv(&server, rev);
        assert!(out.status.success(), "etcd {version} hashkv --rev {rev}: {}", String::from_utf8_lossy(&out.stderr));
        let theirs: Value = json(&out.stdout);
        let h = &theirs[0]["HashKV"];
        for file in &files {
            let o = ours(file, rev);
            assert!(
                o.status.success(),
                "etcdsnap hashkv {} --rev {rev}: {}",
                file.display(),
                String::from_utf8_lossy(&o.stderr)
            );
            let us = json(&o.stdout);
            let what = format!("{version} {} --rev {rev}", file.display());
            assert_eq!(us["hash"], h["hash"], "{what}: ours {us}, etcd {theirs}");
            assert_eq!(us["compact_revision"], h["compact_revision"], "{what}");
            assert_eq!(us["current_revision"], h["header"]["revision"], "{what}");
            assert_eq!(us["hash_revision"], if rev == 0 { LATEST } else { rev }, "{what}");
            assert_eq!(us["tombstone_rule"], "include");
        }
    }
    // Refusals: etcd and we agree.
    for (rev, etcd_says, we_say) in [
        (COMPACT, "required revision has been compacted", "has been compacted"),
        (1000, "required revision has been compacted", "has been compacted"),
        (99999, "required revision is a future revision", "is a future revision"),
    ] {
        let out = etcd_hashkv(&server, rev);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "etcd {version} accepted hashkv --rev {rev}");
        assert!(err.contains(etcd_says), "etcd {version} --rev {rev}: {err}");
        for file in &files {
            let o = ours(file, rev);
            let e = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "etcdsnap hashkv --rev {rev}: {e}");
            assert!(e.contains(we_say), "etcdsnap hashkv --rev {rev}: {e}");
            assert!(o.stdout.is_empty());
        }
    }
}

#[test]
fn hashkv_equals_etcd_3_4_23() {
    check_version(EtcdVersion::V3_4_23);
}

#[test]
fn hashkv_equals_etcd_3_5_1() {
    check_version(EtcdVersion::V3_5_1);
}
