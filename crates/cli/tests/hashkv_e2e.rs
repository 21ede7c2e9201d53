//! `etcdsnap hashkv` (default tombstone rule) against real etcd of every
//! version: each fixture
//! snapshot is restored with its version's stock tool (hash checked) and served;
//! `etcdctl endpoint hashkv --rev N` and our figure must agree for the latest
//! revision and revisions after the compaction, and both must refuse the
//! compact revision itself (etcd's hashByRev refuses `rev <= compactRev`), a
//! revision below it, and a future revision.
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

use etcd_support::{etcdsnap, json};
use etcdsnap_testkit::{restore_and_start, EtcdServer, EtcdVersion};
use serde_json::Value;

const COMPACT: i64 = 1147;
const LATEST: i64 = 1473;

/// The rule of the version: 3.4.23 and 3.5.1 `include` (and refuse the
/// compact revision), later releases `skip` (the default; they hash at it).
fn rule(version: EtcdVersion) -> &'static str {
    if version.keeps_compact_tombstone() {
        "skip"
    } else {
        "include"
    }
}

fn ours(file: &Path, rev: i64, rule: &str) -> std::process::Output {
    let mut args =
        vec!["hashkv".to_string(), file.display().to_string(), "--rev".into(), rev.to_string(), "--json".into()];
    if rule != "skip" {
        args.extend(["--tombstone-rule".to_string(), rule.to_string()]);
    }
    etcdsnap(&args)
}

fn etcd_hashkv(server: &EtcdServer, rev: i64) -> std::process::Output {
    server.ctl(&["endpoint", "hashkv", "--rev", &rev.to_string(), "-w", "json"])
}

fn check_version(version: EtcdVersion) {
    let server = restore_and_start(version, &version.fixture_snapshot(), &format!("hashkv_e2e-{version}"));
    let files = [version.fixture_snapshot(), version.fixture_raw_db()];
    let accepts_compact = version.keeps_compact_tombstone();
    let mut revs = vec![0, 1148, 1200, 1300, 1472, LATEST];
    if accepts_compact {
        revs.push(COMPACT);
    }
    for rev in revs {
        let out = etcd_hashkv(&server, rev);
        assert!(out.status.success(), "etcd {version} hashkv --rev {rev}: {}", String::from_utf8_lossy(&out.stderr));
        let theirs: Value = json(&out.stdout);
        let h = &theirs[0]["HashKV"];
        for file in &files {
            let o = ours(file, rev, rule(version));
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
            assert_eq!(us["tombstone_rule"], rule(version));
        }
    }
    // Refusals: etcd and we agree.
    let mut refused = vec![
        (1000, "required revision has been compacted", "has been compacted"),
        (COMPACT - 1, "required revision has been compacted", "has been compacted"),
        (99999, "required revision is a future revision", "is a future revision"),
    ];
    if !accepts_compact {
        refused.push((COMPACT, "required revision has been compacted", "has been compacted"));
    }
    for (rev, etcd_says, we_say) in refused {
        let out = etcd_hashkv(&server, rev);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "etcd {version} accepted hashkv --rev {rev}");
        assert!(err.contains(etcd_says), "etcd {version} --rev {rev}: {err}");
        for file in &files {
            let o = ours(file, rev, rule(version));
            let e = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "etcdsnap hashkv --rev {rev}: {e}");
            assert!(e.contains(we_say), "etcdsnap hashkv --rev {rev}: {e}");
            assert!(o.stdout.is_empty());
        }
    }
}

etcdsnap_testkit::per_version!(check_version);
