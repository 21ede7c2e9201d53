//! `etcdsnap rewrite` end to end with REAL etcd: the output of each rewrite is
//! checked offline (our verify, Go bbolt's check, `etcdutl snapshot status`),
//! restored with the stock tool of the fixture's etcd version (3.5.1: `etcdutl
//! snapshot restore`, 3.4.23: `etcdctl snapshot restore`), always WITHOUT
//! `--skip-hash-check`, served by that version's etcd on loopback and read back
//! with etcdctl: keys, values, revisions, leases, the served revision, old
//! revisions refused as compacted, `endpoint hashkv` against the report, and the
//! revision the next put gets.
//!
//! The `--json` report is parsed into a mirror of `ReportJson` in
//! `src/rewrite_cmd.rs` with `deny_unknown_fields`, and serialised back to the
//! very same JSON, so the two cannot drift apart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use etcdsnap_testkit::{
    boltoracle_check_ok, free_port, header_revision, kv_rows, restore, scratch, BboltVersion, EtcdServer, EtcdVersion,
    KvRow,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

const OLD_LATEST: i64 = 1473;
const OLD_COMPACT: i64 = 1147;
const BUMP: i64 = 1_000_000_000;

#[path = "rewrite_e2e/harness.rs"]
mod harness;

use harness::*;

// ---------------------------------------------------------------------------
// 1. Tenant move

fn move_tenant_1(k: &[u8]) -> Option<Vec<u8>> {
    if k == b"compact_rev_key" {
        return Some(k.to_vec());
    }
    let rest = k.strip_prefix(b"/tenant-1/")?;
    Some(match rest.strip_prefix(b"registry/") {
        Some(r) => [&b"/registry/"[..], r].concat(),
        None => k.to_vec(),
    })
}

fn tenant_move(version: EtcdVersion) {
    let dir = scratch(&format!("rewrite-e2e-move-{version}"));
    let out = dir.join("tenant-1.db");
    let r = rewrite(
        &version.fixture_snapshot(),
        &out,
        &[
            "--include",
            "/tenant-1/",
            "--rename",
            "/tenant-1/registry/=/registry/",
            "--bump-revision",
            "1000000000",
            "--mark-compacted",
            "--keep-key",
            "compact_rev_key",
        ],
    );
    let new = OLD_LATEST + BUMP;
    assert_eq!(r.new_revision, new);
    assert_eq!(r.revisions.markers, vec![new]);
    assert_eq!(r.scheduled_compact_revision, Some(new));
    assert_eq!(r.finished_compact_revision, Some(OLD_COMPACT));
    assert_eq!(r.hashkv_compact_revision, new);
    assert_eq!(r.compact_rev_key, "kept");
    assert_eq!(r.trailer_in, "valid");
    assert!(r.revisions.renamed > 0 && r.revisions.filtered > 0);
    // What each rule matched.
    let rules: Vec<(&str, &Value, u64)> = r.rules.iter().map(|m| (m.rule.as_str(), &m.value, m.matched)).collect();
    assert_eq!(rules.len(), 3, "{rules:?}");
    assert_eq!((rules[0].0, rules[0].1.as_str()), ("include", Some("/tenant-1/")));
    assert_eq!((rules[1].0, rules[1].1.as_str()), ("keep-key", Some("compact_rev_key")));
    assert_eq!(
        (rules[2].0, rules[2].1.as_str(), rules[2].2),
        ("rename", Some("/tenant-1/registry/=/registry/"), r.revisions.renamed)
    );
    assert!(rules[0].2 > 0 && rules[1].2 > 0);
    // The tenant's prefix grant holds the rename source: it stays and gains the image.
    assert_eq!(r.roles_rewritten, 1);
    assert_eq!(
        serde_json::to_value(&r.permissions_changed).unwrap(),
        serde_json::json!([{"role": "tenant1-rw", "perm_type": "READWRITE", "key": "/tenant-1/",
            "range_end": "/tenant-10", "now": [{"key": "/tenant-1/", "range_end": "/tenant-10"},
            {"key": "/registry/", "range_end": "/registry0"}]}])
    );
    assert!(r.stale_temp_files.is_empty());
    check_offline(version, &out, &r);

    let (server, log) = restore_start(version, &out, &format!("rewrite-e2e-move-{version}-etcd"));
    // etcd runs the scheduled compaction (3.5.1 at the server's start, 3.4.23 in the restore).
    assert!(log.contains(RESUMED) && log.contains(&format!("\"scheduled-compact-revision\":{new}")), "{log}");
    // HashKV before any new write.
    assert_hashkv_matches_report(&server, &r);
    let (rev, rows) = served_get(&server, &[]);
    assert_eq!(rev, new, "served revision");
    assert!(rev >= OLD_LATEST + BUMP);
    let want = expected_rows(version, move_tenant_1);
    assert!(want.iter().any(|r| b64d(&r.key) == b"compact_rev_key"));
    assert!(want.iter().all(|r| !b64d(&r.key).starts_with(b"/tenant-")));
    assert_rows(version, &rows, &want);
    assert_watch_compacted(&server, OLD_LATEST);
    assert_watch_compacted(&server, 2);
    assert_get_compacted(&server, OLD_LATEST);
    assert_eq!(put_revision(&server, "/registry/after"), new + 1);
    assert_tenant_user_follows_the_data(&server);
}

/// With auth enabled (the fixture's root user), the tenant's user reads and
/// writes its renamed data under `/registry/` and its old prefix, and nothing else.
fn assert_tenant_user_follows_the_data(server: &EtcdServer) {
    let v = server.version();
    let enable = server.ctl(&["auth", "enable"]);
    assert!(enable.status.success(), "{v}: auth enable: {}", String::from_utf8_lossy(&enable.stderr));
    let user = ["--user", "tenant1-user:tenant1-pass"];
    let run = |args: &[&str]| server.ctl(&[&user[..], args].concat());
    let got = run(&["get", "/registry/", "--prefix", "--keys-only"]);
    let text = String::from_utf8_lossy(&got.stdout).to_string();
    assert!(got.status.success(), "{v}: tenant user reads /registry/: {}", String::from_utf8_lossy(&got.stderr));
    assert!(text.contains("/registry/pods/") && text.contains("/registry/after"), "{v}: {text}");
    let put = run(&["put", "/registry/by-tenant", "x"]);
    assert!(put.status.success(), "{v}: tenant user writes /registry/: {}", String::from_utf8_lossy(&put.stderr));
    assert!(run(&["put", "/tenant-1/still-mine", "x"]).status.success(), "{v}: the old prefix grant stays");
    for denied in [&["get", "/tenant-2/", "--prefix"][..], &["get", "compact_rev_key"], &["put", "/other", "x"]] {
        let o = run(denied);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("permission denied"), "{v}: {denied:?} allowed: {err}");
    }
}

etcdsnap_testkit::per_version!(tenant_move);

// ---------------------------------------------------------------------------
// 2. Filter without bump, dropping the tenant whose put holds the latest revision

fn exclude_last_writer(version: EtcdVersion) {
    let dir = scratch(&format!("rewrite-e2e-exclude-{version}"));
    let out = dir.join("no-tenant-3.db");
    let r = rewrite(&version.fixture_snapshot(), &out, &["--exclude", "/tenant-3/"]);
    assert_eq!(r.new_revision, OLD_LATEST);
    assert_eq!(r.revisions.markers, vec![OLD_LATEST], "the filter's marker keeps the revision");
    assert_eq!(r.scheduled_compact_revision, Some(OLD_COMPACT));
    assert_eq!(r.finished_compact_revision, Some(OLD_COMPACT));
    assert_eq!(r.hashkv_compact_revision, OLD_COMPACT);
    assert_eq!(r.compact_rev_key, "kept");
    check_offline(version, &out, &r);

    let (server, _) = restore_start(version, &out, &format!("rewrite-e2e-exclude-{version}-etcd"));
    assert_hashkv_matches_report(&server, &r);
    let (rev, rows) = served_get(&server, &[]);
    assert_eq!(rev, OLD_LATEST, "served revision must not go back below the old latest");
    let want = expected_rows(version, |k| (!k.starts_with(b"/tenant-3/")).then(|| k.to_vec()));
    assert_rows(version, &rows, &want);
    // Old revisions after the old compaction are still readable.
    let (_, at_1400) = served_get(&server, &["--rev", "1400"]);
    assert!(!at_1400.is_empty());
    assert!(at_1400.iter().all(|r| !b64d(&r.key).starts_with(b"/tenant-3/")));
    assert_get_compacted(&server, OLD_COMPACT - 1);
    assert_eq!(put_revision(&server, "/tenant-1/after"), OLD_LATEST + 1);
}

etcdsnap_testkit::per_version!(exclude_last_writer);

// ---------------------------------------------------------------------------
// 3. Offline compaction against the same rewrite without it

fn offline_compact(version: EtcdVersion) {
    let dir = scratch(&format!("rewrite-e2e-compact-{version}"));
    let args = ["--include", "/tenant-1/", "--keep-key", "compact_rev_key", "--bump-revision", "1000"];
    let plain_out = dir.join("plain.db");
    let plain = rewrite(&version.fixture_snapshot(), &plain_out, &args);
    let compact_out = dir.join("compacted.db");
    let mut cargs = args.to_vec();
    cargs.push("--compact");
    let compacted = rewrite(&version.fixture_snapshot(), &compact_out, &cargs);

    let new = OLD_LATEST + 1000;
    assert_eq!(plain.new_revision, new);
    assert_eq!(compacted.new_revision, new);
    assert_eq!(compacted.scheduled_compact_revision, Some(new));
    assert_eq!(compacted.finished_compact_revision, Some(new));
    assert_eq!(compacted.hashkv_compact_revision, new);
    assert_eq!(plain.scheduled_compact_revision, Some(OLD_COMPACT));
    assert_eq!(plain.finished_compact_revision, Some(OLD_COMPACT));
    assert!(compacted.revisions.compacted > 0);
    assert_eq!(compacted.revisions.filtered, plain.revisions.filtered, "filtered entries are counted as filtered");
    assert!(compacted.bytes_out < plain.bytes_out, "{} !< {}", compacted.bytes_out, plain.bytes_out);
    check_offline(version, &plain_out, &plain);
    check_offline(version, &compact_out, &compacted);

    let (s_plain, _) = restore_start(version, &plain_out, &format!("rewrite-e2e-compact-{version}-plain-etcd"));
    let (s_comp, log) = restore_start(version, &compact_out, &format!("rewrite-e2e-compact-{version}-compacted-etcd"));
    // Nothing left to compact: neither the restore nor the server resumes a scheduled
    // compaction, and etcd takes the finished compaction revision from the file.
    assert!(!log.contains(RESUMED), "{log}");
    assert!(log.contains(&format!("\"restored-compact-revision\":{new}")), "{log}");
    assert_hashkv_matches_report(&s_comp, &compacted);
    assert_hashkv_matches_report(&s_plain, &plain);

    let (rev_p, rows_p) = served_get(&s_plain, &[]);
    let (rev_c, rows_c) = served_get(&s_comp, &[]);
    assert_eq!((rev_p, rev_c), (new, new));
    assert_rows(version, &rows_c, &rows_p);
    let want =
        expected_rows(version, |k| (k.starts_with(b"/tenant-1/") || k == b"compact_rev_key").then(|| k.to_vec()));
    assert_rows(version, &rows_c, &want);
    let at = new.to_string();
    assert_eq!(served_get(&s_comp, &["--rev", &at]).1, served_get(&s_plain, &["--rev", &at]).1);

    // Older revisions: still there in the plain variant, compacted in the other.
    assert!(!served_get(&s_plain, &["--rev", "1400"]).1.is_empty());
    assert_get_compacted(&s_comp, 1400);
    assert_get_compacted(&s_comp, new - 1);
    assert_watch_compacted(&s_comp, new - 1);
    assert_eq!(put_revision(&s_comp, "/tenant-1/after"), new + 1);
}

etcdsnap_testkit::per_version!(offline_compact);

// ---------------------------------------------------------------------------
// 4. Keep-all bump: every key served as before, revisions far above, old ones compacted

fn keep_all_bump(version: EtcdVersion) {
    let dir = scratch(&format!("rewrite-e2e-bump-{version}"));
    let out = dir.join("bumped.db");
    let args = ["--bump-revision", "1000000000", "--mark-compacted"];
    let r = rewrite(&version.fixture_snapshot(), &out, &[&args[..], &["--verify-output"]].concat());
    assert_eq!(r.revisions.filtered + r.revisions.renamed + r.revisions.compacted, 0);
    // A keep-all bump keeps every page: patched copy-on-write (the key
    // bucket's rightmost path, the meta bucket and the root page written again).
    let (server, rev, rows) = patched_and_served(version, &out, &r, "bump", 2);
    assert_rows(version, &rows, &expected_rows(version, |k| Some(k.to_vec())));
    assert_watch_compacted(&server, OLD_LATEST);

    // The same edit with every page laid out anew: another file, served identically.
    let patched = Patched { out: &out, report: &r, server: &server, served: (rev, rows), name: "bump" };
    rebuilt_serves_the_same(version, &dir, &args, patched);
}

/// A bumped (`BUMP`, mark-compacted) rewrite `r` into `out`, patched with at
/// least `pages` pages written again: checked offline, restored and started;
/// its HashKV as reported; it serves the new revision. The server and
/// (revision, rows) it serves.
fn patched_and_served(
    version: EtcdVersion,
    out: &Path,
    r: &ReportJson,
    name: &str,
    pages: u64,
) -> (EtcdServer, i64, Vec<KvRow>) {
    let new = OLD_LATEST + BUMP;
    assert_eq!((r.new_revision, r.scheduled_compact_revision), (new, Some(new)));
    assert_eq!(r.layout, "patched");
    assert!(r.pages_rewritten.is_some_and(|n| n >= pages), "{:?}", r.pages_rewritten);
    check_offline(version, out, r);
    let (server, _) = restore_start(version, out, &format!("rewrite-e2e-{name}-{version}-etcd"));
    assert_hashkv_matches_report(&server, r);
    let (rev, rows) = served_get(&server, &[]);
    assert_eq!(rev, new);
    (server, rev, rows)
}

/// A patched rewrite's output, served.
struct Patched<'a> {
    out: &'a Path,
    report: &'a ReportJson,
    server: &'a EtcdServer,
    /// What it serves: (revision, rows).
    served: (i64, Vec<KvRow>),
    /// The test's name, for the rebuilt server's.
    name: &'a str,
}

/// The rewrite of `patched` made again with `--rebuild` (same `args`): another
/// file, the same report figures, served identically, the next put at the
/// same revision.
fn rebuilt_serves_the_same(version: EtcdVersion, dir: &Path, args: &[&str], patched: Patched<'_>) {
    let r = patched.report;
    let rebuilt_out = dir.join("rebuilt.db");
    let rb = rewrite(&version.fixture_snapshot(), &rebuilt_out, &[args, &["--rebuild"]].concat());
    assert_eq!((rb.layout.as_str(), rb.pages_rewritten), ("rebuilt", None));
    assert_ne!(std::fs::read(patched.out).unwrap(), std::fs::read(&rebuilt_out).unwrap(), "two layouts");
    assert_eq!((rb.status_hash, rb.hashkv, rb.status_total_key), (r.status_hash, r.hashkv, r.status_total_key));
    assert_eq!(rb.revisions, r.revisions);
    check_offline(version, &rebuilt_out, &rb);
    let name = format!("rewrite-e2e-{}-{version}-rebuilt-etcd", patched.name);
    let (rebuilt, _) = restore_start(version, &rebuilt_out, &name);
    assert_eq!(served_get(&rebuilt, &[]), patched.served, "{version}: patched and rebuilt serve the same");
    assert_eq!(served_hashkv(&rebuilt), served_hashkv(patched.server), "{version}: endpoint hashkv");
    let next = r.new_revision + 1;
    assert_eq!(put_revision(patched.server, "/tenant-1/after"), next);
    assert_eq!(put_revision(&rebuilt, "/tenant-1/after"), next);
}

etcdsnap_testkit::per_version!(keep_all_bump);

// ---------------------------------------------------------------------------
// 4b. A bump that drops a few keys: patched copy-on-write, served as the rebuild

const DROPPED_KEY: &str = "/tenant-1/registry/configmaps/default/big-5k";
const DROPPED_PREFIX: &str = "/tenant-2/registry/configmaps/default/configmap-defa-1";

fn drop_patched(version: EtcdVersion) {
    let dir = scratch(&format!("rewrite-e2e-drop-{version}"));
    let out = dir.join("patched.db");
    let args =
        ["--drop-key", DROPPED_KEY, "--exclude", DROPPED_PREFIX, "--bump-revision", "1000000000", "--mark-compacted"];
    let r = rewrite(&version.fixture_snapshot(), &out, &[&args[..], &["--verify-output"]].concat());
    assert!(r.revisions.filtered > 0, "{:?}", r.revisions);
    // A few dropped entries: their leaves and branches, the key bucket's
    // rightmost path, the meta bucket and the root page written again.
    let (server, rev, rows) = patched_and_served(version, &out, &r, "drop", 3);
    let kept =
        |k: &[u8]| (k != DROPPED_KEY.as_bytes() && !k.starts_with(DROPPED_PREFIX.as_bytes())).then(|| k.to_vec());
    assert_rows(version, &rows, &expected_rows(version, kept));

    // The same rewrite rebuilt: another file, the same report figures, served identically.
    let patched = Patched { out: &out, report: &r, server: &server, served: (rev, rows), name: "drop" };
    rebuilt_serves_the_same(version, &dir, &args, patched);
}

etcdsnap_testkit::per_version!(drop_patched);

// ---------------------------------------------------------------------------
// 5. Parity with upstream's own bump (etcdutl restore --bump-revision --mark-compacted, 3.5.10+)

fn parity_with_etcdutl_bump(version: EtcdVersion) {
    assert!(version.restore_can_bump());
    let dir = scratch(&format!("rewrite-e2e-parity-{version}"));
    let n = "1000000000";
    // Upstream: the original snapshot, bumped by etcdutl while restoring.
    let theirs_data = dir.join("etcdutl-data");
    let (tc, tp) = (free_port(), free_port());
    let fixture = version.fixture_snapshot();
    etcdsnap_testkit::restore_with(version, &fixture, &theirs_data, tp, &["--bump-revision", n, "--mark-compacted"]);
    let theirs = EtcdServer::start(version, &theirs_data, tc, tp);
    // Ours: rewritten offline, then a plain restore.
    let out = dir.join("ours.db");
    let r = rewrite(&fixture, &out, &["--bump-revision", n, "--mark-compacted"]);
    let (ours, _) = restore_start(version, &out, &format!("rewrite-e2e-parity-{version}-ours"));

    let (rev_t, rows_t) = served_get(&theirs, &[]);
    let (rev_o, rows_o) = served_get(&ours, &[]);
    assert_eq!(rev_o, rev_t, "{version}: served revision, ours vs etcdutl's bump");
    assert_eq!(rev_o, r.new_revision);
    assert_rows(version, &rows_o, &rows_t);
    assert_eq!(served_hashkv(&ours), served_hashkv(&theirs), "{version}: endpoint hashkv, ours vs etcdutl's bump");
    for server in [&ours, &theirs] {
        assert_get_compacted(server, r.new_revision - 1);
        assert_watch_compacted(server, OLD_LATEST);
    }
    assert_eq!(put_revision(&ours, "/after"), put_revision(&theirs, "/after"));

    // Byte parity of the restored dbs: both restored with the same peer URL (so
    // the same member id), every bucket, key and value is the same.
    let peer = free_port();
    let (a, b) = (dir.join("cmp-etcdutl"), dir.join("cmp-ours"));
    etcdsnap_testkit::restore_with(version, &fixture, &a, peer, &["--bump-revision", n, "--mark-compacted"]);
    restore(version, &out, &b, peer);
    let dump = |d: &Path| version.bbolt().dump(&d.join("member/snap/db"));
    assert!(dump(&a) == dump(&b), "{version}: restored dbs differ (ours vs etcdutl's bump)");
}

etcdsnap_testkit::per_version!(parity_with_etcdutl_bump: V3_5_35, V3_6_16, V3_7_3);

// ---------------------------------------------------------------------------
// 6. Offline compaction at a tombstone's revision = the version's own compaction

/// The first single-key delete after the fixture's compaction: its tombstone's revision.
fn tombstone_revision(version: EtcdVersion) -> i64 {
    let text = std::fs::read_to_string(version.fixture_dir().join("writes.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|w| {
            w["op"] == "del" && w["prefix"] == false && w["deleted"] == 1 && w["rev"].as_i64().unwrap() > OLD_COMPACT
        })
        .and_then(|w| w["rev"].as_i64())
        .unwrap()
}

fn all_revisions(file: &Path) -> Vec<Value> {
    let out = etcdsnap(&["keys", "--all-revisions", "--json"], &[file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn compact_at_tombstone_like_etcd(version: EtcdVersion) {
    let dir = scratch(&format!("rewrite-e2e-tombcompact-{version}"));
    let at = tombstone_revision(version);
    // etcd's own compaction, online, then a snapshot of the result.
    let online = dir.join("online.db");
    {
        let (server, _) =
            restore_start(version, &version.fixture_snapshot(), &format!("rewrite-e2e-tomb-{version}-online"));
        server.ctl_ok(&["compact", &at.to_string(), "--physical"]);
        server.ctl_ok(&["snapshot", "save", online.to_str().unwrap()]);
    }
    // Ours, offline, with the rule of that release (3.4.23 and 3.5.1 drop the tombstone).
    let rule = if version.keeps_compact_tombstone() { "keep" } else { "drop" };
    let offline = dir.join("offline.db");
    let r = rewrite(
        &version.fixture_snapshot(),
        &offline,
        &["--compact", "--compact-rev", &at.to_string(), "--compact-tombstones", rule],
    );
    assert_eq!(r.compact_tombstones.as_deref(), Some(rule));
    assert_eq!((r.scheduled_compact_revision, r.finished_compact_revision), (Some(at), Some(at)));
    let ours = all_revisions(&offline);
    let theirs = all_revisions(&online);
    let tomb_at = |v: &[Value]| v.iter().any(|e| e["revision"] == at && e["tombstone"] == true);
    assert_eq!(tomb_at(&theirs), version.keeps_compact_tombstone(), "{version}: etcd's own rule");
    assert_eq!(ours.len(), theirs.len(), "{version}: stored revisions after compacting at {at}");
    assert!(ours == theirs, "{version}: the key buckets differ after compacting at {at}");
    check_offline(version, &offline, &r);
    let (served, _) = restore_start(version, &offline, &format!("rewrite-e2e-tomb-{version}-offline"));
    assert_hashkv_matches_report(&served, &r);
}

etcdsnap_testkit::per_version!(compact_at_tombstone_like_etcd);

// ---------------------------------------------------------------------------
// 7. Upgrade paths: a file written by one line, rewritten, restored and served by the next

fn tenant_move_across(from: EtcdVersion, to: EtcdVersion) {
    let dir = scratch(&format!("rewrite-e2e-upgrade-{from}-{to}"));
    let out = dir.join("tenant-1.db");
    let r = rewrite(
        &from.fixture_snapshot(),
        &out,
        &[
            "--include",
            "/tenant-1/",
            "--rename",
            "/tenant-1/registry/=/registry/",
            "--bump-revision",
            "1000000000",
            "--mark-compacted",
            "--keep-key",
            "compact_rev_key",
        ],
    );
    let (server, _) = restore_start(to, &out, &format!("rewrite-e2e-upgrade-{from}-{to}-etcd"));
    assert_hashkv_matches_report(&server, &r);
    let (rev, rows) = served_get(&server, &[]);
    assert_eq!(rev, OLD_LATEST + BUMP);
    assert_rows(to, &rows, &expected_rows(from, move_tenant_1));
    assert_watch_compacted(&server, OLD_LATEST);
    assert_eq!(put_revision(&server, "/registry/after"), OLD_LATEST + BUMP + 1);
}

#[test]
fn upgrade_3_5_35_rewritten_restored_by_3_6_16() {
    tenant_move_across(EtcdVersion::V3_5_35, EtcdVersion::V3_6_16);
}

#[test]
fn upgrade_3_6_16_rewritten_restored_by_3_7_3() {
    tenant_move_across(EtcdVersion::V3_6_16, EtcdVersion::V3_7_3);
}

// ---------------------------------------------------------------------------
// 8. Going to an older etcd on purpose: --target-version

fn cluster_version_of(file: &Path) -> String {
    let out = etcdsnap(&["bolt", "dump"], &[file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let prefix = format!("K {} {} ", hex(b"cluster"), hex(b"clusterVersion"));
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no clusterVersion in {}", file.display()));
    let v = line.strip_prefix(&prefix).unwrap();
    String::from_utf8((0..v.len()).step_by(2).map(|i| u8::from_str_radix(&v[i..i + 2], 16).unwrap()).collect()).unwrap()
}

fn target_version(from: EtcdVersion, to: EtcdVersion) {
    let dir = scratch(&format!("rewrite-e2e-target-{from}-{to}"));
    // Unstamped, the older line refuses what the newer one wrote (3.6 on a 3.7
    // file: `version "3.7.0" is not supported`).
    if from == EtcdVersion::V3_7_3 {
        let data = dir.join("unstamped");
        let (c, p) = (free_port(), free_port());
        restore(to, &from.fixture_snapshot(), &data, p);
        let log = EtcdServer::start_expect_exit(to, &data, c, p);
        assert!(log.contains("is not supported"), "{to} on {from}'s data: {}", etcdsnap_testkit::tail(&log, 20));
    }
    let out = dir.join("stamped.db");
    let r = rewrite(&from.fixture_snapshot(), &out, &["--target-version", to.minor()]);
    assert_eq!(r.target_version.as_deref(), Some(to.minor()));
    assert_eq!(r.new_revision, OLD_LATEST);
    assert_eq!(cluster_version_of(&out), format!("{}.0", to.minor()));
    let st = etcdsnap(&["status", "--json"], &[&out]);
    let st: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["as_etcd"], to.minor(), "{st}");
    check_offline(to, &out, &r);
    let (server, _) = restore_start(to, &out, &format!("rewrite-e2e-target-{from}-{to}-etcd"));
    assert_hashkv_matches_report(&server, &r);
    let (rev, rows) = served_get(&server, &[]);
    assert_eq!(rev, OLD_LATEST);
    assert_rows(to, &rows, &expected_rows(from, |k| Some(k.to_vec())));
    assert_eq!(put_revision(&server, "/after"), OLD_LATEST + 1);
    // Refused upward or sideways: etcd migrates up by itself.
    let e = rewrite_refused(&to.fixture_snapshot(), &dir.join("up.db"), &["--target-version", to.minor()]);
    assert!(e.contains("not newer than the target"), "{e}");
}

#[test]
fn target_version_3_7_3_to_3_6_16() {
    target_version(EtcdVersion::V3_7_3, EtcdVersion::V3_6_16);
}

#[test]
fn target_version_3_6_16_to_3_5_35() {
    target_version(EtcdVersion::V3_6_16, EtcdVersion::V3_5_35);
}

// ---------------------------------------------------------------------------
// Refusals, raw db input, the report's fields

/// Refusals exit 2 and write nothing: rename collision, key-bound encrypted values,
/// compact_rev_key without a rule.
#[test]
fn refusals_write_nothing() {
    let dir = scratch("rewrite-e2e-refusals");
    let input = EtcdVersion::V3_5_1.fixture_snapshot();
    let out = dir.join("out.db");
    let e = rewrite_refused(&input, &out, &["--rename", "/tenant-1/=/x/", "--rename", "/tenant-2/=/x/"]);
    assert!(e.contains("rename collision"), "{e}");
    let e = rewrite_refused(
        &input,
        &out,
        &["--include", "/tenant-2/", "--keep-key", "compact_rev_key", "--rename", "/tenant-2/registry/=/registry/"],
    );
    assert!(e.contains("key-bound") && e.contains("First: /tenant-2/registry/secrets/"), "{e}");
    assert!(e.contains("--allow-key-bound-encrypted"), "the CLI names the flag: {e}");
    let e = rewrite_refused(&input, &out, &["--include", "/tenant-1/"]);
    assert!(e.contains("compact_rev_key") && e.contains("--keep-key compact_rev_key"), "{e}");
    let e = rewrite_refused(&input, &out, &["--bump-revision", "0"]);
    assert!(e.contains("--bump-revision"), "{e}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no temporary files left");

    // Allowed: the report counts the providers.
    let r = rewrite(
        &input,
        &out,
        &[
            "--include",
            "/tenant-2/",
            "--keep-key",
            "compact_rev_key",
            "--rename",
            "/tenant-2/registry/=/registry/",
            "--allow-key-bound-encrypted",
            "--drop-orphan-leases",
        ],
    );
    assert_eq!(r.encrypted.keys().collect::<Vec<_>>(), vec!["aesgcm"]);
    assert_eq!(r.key_bound_renamed, r.encrypted["aesgcm"]);
    assert_eq!((r.leases.read, r.leases.kept, r.leases.dropped, r.leases.orphaned), (4, 1, 3, 3));
}

/// (11) A raw member/snap/db: no trailer by default; with --trailer one the stock
/// restore of both versions accepts with its hash check.
#[test]
fn raw_db_input() {
    for version in EtcdVersion::ALL {
        let dir = scratch(&format!("rewrite-e2e-rawdb-{version}"));
        let input = version.fixture_raw_db();
        let args = ["--include", "/tenant-1/", "--drop-key", "compact_rev_key"];
        let plain = dir.join("plain.db");
        let r = rewrite(&input, &plain, &args);
        assert_eq!(r.trailer_in, "absent");
        assert_eq!(r.trailer_sha256, None);
        assert_eq!(r.compact_rev_key, "dropped");
        assert_eq!(r.bytes_out % 4096, 0);
        boltoracle_check_ok(&plain);

        let with = dir.join("trailer.db");
        let mut targs = args.to_vec();
        targs.push("--trailer");
        let r = rewrite(&input, &with, &targs);
        check_offline(version, &with, &r);
        restore(version, &with, &dir.join("data"), free_port());
    }
}
