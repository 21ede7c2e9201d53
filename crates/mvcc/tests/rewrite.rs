//! The snapshot rewrite engine on the committed fixtures (written by real etcd
//! 3.4.23 and 3.5.1), checked against figures computed here independently by
//! reading input and output with the bolt reader: determinism, refusals that
//! write nothing, key-bound encrypted values, orphan leases, role permission
//! renames, `compact_rev_key` rules, raw db input and trailers.
//!
//! The end-to-end half (stock restore + real etcd serving the output) is in
//! `crates/cli/tests/rewrite_e2e.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use etcdsnap_bolt::Db;
use etcdsnap_io::CreateOptions;
use etcdsnap_keys::{KeyRules, Rename};
use etcdsnap_mvcc::hashkv::{hash_kv, TombstoneRule};
use etcdsnap_mvcc::keyspace::{at_revision, Selection};
use etcdsnap_mvcc::kv::KvRef;
use etcdsnap_mvcc::revision::{BucketKey, Revision};
use etcdsnap_mvcc::rewrite::{rewrite, CompactRevKey, NoProgress, PermissionChange, RewriteOptions, RewriteReport};
use etcdsnap_mvcc::schema::{
    ALARM, AUTH, AUTH_ROLES, AUTH_USERS, CLUSTER, FINISHED_COMPACT_REV, KEY, LEASE, MEMBERS, MEMBERS_REMOVED, META,
    SCHEDULED_COMPACT_REV,
};
use etcdsnap_mvcc::snapshot::TrailerMode;
use etcdsnap_mvcc::status::status;
use etcdsnap_mvcc::trailer::{self, Trailer};
use etcdsnap_mvcc::verify::{verify, VerifyOptions};
use etcdsnap_mvcc::MvccError;
use etcdsnap_proto::{authpb, Message};
use serde_json::Value;
use support::{fixture_dir, snapshot, Entries};

const VERSIONS: [&str; 5] = ["3.4.23", "3.5.1", "3.5.35", "3.6.16", "3.7.3"];
const OLD_LATEST: i64 = 1473;
const OLD_COMPACT: i64 = 1147;

fn scratch(name: &str) -> PathBuf {
    support::scratch("mvcc-rewrite", name)
}

fn expected(version: &str, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture_dir(version).join("expected").join(name)).unwrap()).unwrap()
}

fn strs(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[derive(Default)]
struct R<'a> {
    include: &'a [&'a str],
    exclude: &'a [&'a str],
    keep: &'a [&'a str],
    drop: &'a [&'a str],
    rename: &'a [&'a str],
}

impl R<'_> {
    fn rules(&self) -> KeyRules {
        KeyRules {
            include: strs(self.include),
            exclude: strs(self.exclude),
            keep_keys: strs(self.keep),
            drop_keys: strs(self.drop),
            renames: self.rename.iter().map(|r| Rename::parse(r).unwrap()).collect(),
        }
    }
    fn opts(&self) -> RewriteOptions {
        RewriteOptions { rules: self.rules(), ..RewriteOptions::default() }
    }
}

/// Tests write several outputs to one path: replacing them is allowed here.
fn run(input: &Path, output: &Path, opts: &RewriteOptions) -> Result<RewriteReport, MvccError> {
    let opts = RewriteOptions { output: CreateOptions { overwrite: true, remove_stale: false }, ..opts.clone() };
    rewrite(input, output, &opts, &mut NoProgress)
}

fn run_ok(input: &Path, output: &Path, opts: &RewriteOptions) -> RewriteReport {
    let r =
        run(input, output, opts).unwrap_or_else(|e| panic!("rewrite {} -> {}: {e}", input.display(), output.display()));
    check_report_against_output(input, output, opts, &r);
    r
}

/// A refusal: an error, and nothing at all left in the output's directory.
fn run_err(input: &Path, output: &Path, opts: &RewriteOptions) -> String {
    let dir = output.parent().unwrap();
    let before: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    let e = match run(input, output, opts) {
        Ok(r) => panic!("rewrite {} succeeded but should fail: {r:?}", input.display()),
        Err(e) => e,
    };
    assert!(!output.exists(), "{} exists after a refused rewrite ({e})", output.display());
    let after: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before, after, "refused rewrite left files behind ({e})");
    e.to_string()
}

/// All top-level buckets of a file (snapshot or raw db): name → (sequence, entries).
fn read_all(path: &Path) -> BTreeMap<Vec<u8>, (u64, Entries)> {
    let data = std::fs::read(path).unwrap();
    support::all_entries(&Db::open(trailer::split(&data).0).unwrap())
}

/// One `key` bucket entry, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rev {
    raw_key: Vec<u8>,
    bk: BucketKey,
    raw_value: Vec<u8>,
    key: Vec<u8>,
    create: i64,
    modr: i64,
    version: i64,
    value: Vec<u8>,
    lease: i64,
}

fn revs(entries: &Entries) -> Vec<Rev> {
    entries
        .iter()
        .map(|(k, v)| {
            let kv = KvRef::parse(v).unwrap();
            Rev {
                raw_key: k.clone(),
                bk: BucketKey::parse(k).unwrap(),
                raw_value: v.clone(),
                key: kv.key.to_vec(),
                create: kv.create_revision,
                modr: kv.mod_revision,
                version: kv.version,
                value: kv.value.to_vec(),
                lease: kv.lease,
            }
        })
        .collect()
}

fn key_revs(path: &Path) -> Vec<Rev> {
    revs(&read_all(path)[KEY].1)
}

fn new_markers(r: &RewriteReport) -> u64 {
    r.markers_written.len() as u64
}

/// What every successful rewrite must satisfy, whatever the options: the report's
/// figures are the output's (status, hashkv, size, trailer), the revision counts
/// add up, and the output verifies clean.
fn check_report_against_output(input: &Path, output: &Path, opts: &RewriteOptions, r: &RewriteReport) {
    let data = std::fs::read(output).unwrap();
    assert_eq!(r.bytes_out, data.len() as u64, "bytes_out");
    assert_eq!(r.bytes_in, std::fs::metadata(input).unwrap().len(), "bytes_in");
    let db = Db::open(trailer::split(&data).0).unwrap();
    assert_eq!(r.status, status(&db).unwrap(), "report status vs output");
    assert_eq!(r.hashkv, hash_kv(&db, 0, TombstoneRule::Skip).unwrap(), "report hashkv vs output");
    assert_eq!(r.status.revision, r.new_revision, "latest revision of the output");
    match r.trailer_out {
        Some(d) => assert_eq!(trailer::verify(&data), Trailer::Valid(d), "fresh trailer"),
        None => assert_eq!(trailer::verify(&data), Trailer::Absent),
    }
    let v = verify(&data, VerifyOptions { require_trailer: r.trailer_out.is_some() });
    assert!(v.is_ok(), "verify {}: {:#?}", output.display(), v.findings);
    assert!(db.check().is_ok(), "bolt check of {}", output.display());
    // Counts: every input entry is kept, filtered or compacted; new markers are extra.
    let input_revs = key_revs(input);
    assert_eq!(r.revisions_read, input_revs.len() as u64);
    assert_eq!(r.revisions_read + new_markers(r), r.revisions_kept + r.revisions_filtered + r.revisions_compacted);
    let out_revs = revs(&read_all(output)[KEY].1);
    assert_eq!(r.revisions_kept, out_revs.len() as u64, "kept vs output entries");
    let filtered = input_revs.iter().filter(|e| !e.raw_value.is_empty() && !opts.rules.keeps(&e.key)).count() as u64;
    assert_eq!(r.revisions_filtered, filtered, "entries dropped by the key filter");
    assert_eq!(r.tombstones, out_revs.iter().filter(|e| e.bk.tombstone).count() as u64);
    // Encrypted values are counted among the values written (tombstones carry none).
    let mut enc: BTreeMap<String, u64> = BTreeMap::new();
    for e in out_revs.iter().filter(|e| !e.bk.tombstone) {
        if let Some(p) = provider(&e.value) {
            *enc.entry(p).or_default() += 1;
        }
    }
    assert_eq!(r.encrypted, enc, "encrypted values kept");
    // Revisions never go backwards.
    assert!(r.new_revision >= r.old_revision, "{} < {}", r.new_revision, r.old_revision);
    assert_eq!(r.old_revision, OLD_LATEST);
}

// ---------------------------------------------------------------------------

fn tenant_move() -> RewriteOptions {
    RewriteOptions {
        bump_revision: Some(1_000_000_000),
        mark_compacted: true,
        ..R {
            include: &["/tenant-1/"],
            keep: &["compact_rev_key"],
            rename: &["/tenant-1/registry/=/registry/"],
            ..R::default()
        }
        .opts()
    }
}

fn tenant_compact() -> RewriteOptions {
    RewriteOptions {
        bump_revision: Some(1000),
        compact: Some(None),
        ..R { include: &["/tenant-1/"], keep: &["compact_rev_key"], ..R::default() }.opts()
    }
}

/// (5) Same input and options twice: identical bytes (and the same report, time aside).
#[test]
fn deterministic_output() {
    for v in VERSIONS {
        let dir = scratch(&format!("determinism-{v}"));
        for (name, opts) in [("move", tenant_move()), ("compact", tenant_compact())] {
            let (a, b) = (dir.join(format!("{name}-a.db")), dir.join(format!("{name}-b.db")));
            let ra = run_ok(&snapshot(v), &a, &opts);
            let rb = run_ok(&snapshot(v), &b, &opts);
            assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "{v} {name}: bytes differ");
            assert_eq!(RewriteReport { elapsed: rb.elapsed, ..ra }, rb, "{v} {name}: reports differ");
        }
    }
}

/// The tenant move, checked entry by entry against the input.
#[test]
fn tenant_move_entries() {
    for v in VERSIONS {
        let dir = scratch(&format!("move-{v}"));
        let out = dir.join("out.db");
        let r = run_ok(&snapshot(v), &out, &tenant_move());
        let input = key_revs(&snapshot(v));
        let output = key_revs(&out);
        let want: Vec<Rev> =
            input.iter().filter(|e| e.key.starts_with(b"/tenant-1/") || e.key == b"compact_rev_key").cloned().collect();
        assert_eq!(output.len(), want.len() + 1, "{v}: kept entries + one bump marker");
        for (o, i) in output.iter().zip(&want) {
            assert_eq!(o.raw_key, i.raw_key, "{v}: revision keys are carried");
            let renamed = match i.key.strip_prefix(b"/tenant-1/registry/") {
                Some(rest) => [&b"/registry/"[..], rest].concat(),
                None => i.key.clone(),
            };
            assert_eq!(o.key, renamed);
            assert_eq!((o.create, o.modr, o.version, o.lease), (i.create, i.modr, i.version, i.lease));
            assert_eq!(o.value, i.value, "{v}: values byte-equal");
            if o.key == i.key {
                assert_eq!(o.raw_value, i.raw_value, "{v}: unrenamed entries are carried byte for byte");
            }
        }
        let marker = output.last().unwrap();
        assert_eq!(marker.bk, BucketKey { rev: Revision::new(OLD_LATEST + 1_000_000_000, 0), tombstone: false });
        assert!(marker.raw_value.is_empty(), "the bump marker has an empty value");
        assert_eq!(r.markers_written, vec![Revision::new(OLD_LATEST + 1_000_000_000, 0)]);
        assert_eq!(r.new_revision, OLD_LATEST + 1_000_000_000);
        assert_eq!(r.scheduled_compact, Some(r.new_revision));
        assert_eq!(r.finished_compact, Some(OLD_COMPACT), "etcd finishes the compaction at first start");
        // etcd resumes the scheduled compaction at start: HashKV is then taken at it.
        assert_eq!(r.hashkv.compact_revision, r.new_revision);
        assert_eq!(r.compact_rev_key, CompactRevKey::Kept);
        assert_eq!(
            r.revisions_renamed,
            want.iter().filter(|e| e.key.starts_with(b"/tenant-1/registry/")).count() as u64
        );
        // The role's /tenant-1/ prefix grant holds the rename source: it stays and gains /registry/.
        assert_eq!(r.roles_rewritten, 1);
        assert_eq!(
            r.permissions_changed,
            vec![PermissionChange {
                role: b"tenant1-rw".to_vec(),
                perm_type: 2,
                key: b"/tenant-1/".to_vec(),
                range_end: b"/tenant-10".to_vec(),
                now: vec![
                    (b"/tenant-1/".to_vec(), b"/tenant-10".to_vec()),
                    (b"/registry/".to_vec(), b"/registry0".to_vec())
                ],
            }]
        );
        assert_eq!(r.trailer_in, trailer::verify(&std::fs::read(snapshot(v)).unwrap()));
        assert!(r.trailer_out.is_some());
        // Live keys at the latest revision: tenant 1 (renamed) + compact_rev_key.
        let get = expected(v, "get.json");
        let live = get["kvs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|kv| {
                let k = b64(&kv["key"]);
                k.starts_with(b"/tenant-1/") || k == b"compact_rev_key"
            })
            .count() as u64;
        assert_eq!(r.status.live_keys, live);
        let data = std::fs::read(&out).unwrap();
        let db = Db::open(trailer::split(&data).0).unwrap();
        let keys = at_revision(&db, 0, &Selection::default()).unwrap();
        assert_eq!(keys.rev(), OLD_LATEST + 1_000_000_000);
        assert_eq!(keys.len() as u64, live);
    }
}

fn b64(v: &Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).unwrap()
}

/// A filter that removes the entry holding the latest revision (a tenant-3 put at
/// 1473) keeps the revision with an empty-value marker at (1473, 0).
#[test]
fn filter_keeps_high_water_mark() {
    for v in VERSIONS {
        let dir = scratch(&format!("exclude3-{v}"));
        let out = dir.join("out.db");
        let input = key_revs(&snapshot(v));
        let last = input.last().unwrap();
        assert_eq!(last.bk.rev.main, OLD_LATEST);
        assert!(last.key.starts_with(b"/tenant-3/"), "fixture: the last write is a tenant-3 put");
        let opts = R { exclude: &["/tenant-3/"], ..R::default() }.opts();
        let r = run_ok(&snapshot(v), &out, &opts);
        assert_eq!(r.new_revision, OLD_LATEST);
        assert_eq!(r.markers_written, vec![Revision::new(OLD_LATEST, 0)]);
        assert_eq!(r.compact_rev_key, CompactRevKey::Kept);
        assert_eq!(r.scheduled_compact, Some(OLD_COMPACT));
        assert_eq!(r.finished_compact, Some(OLD_COMPACT));
        assert_eq!(r.hashkv.compact_revision, OLD_COMPACT);
        let output = key_revs(&out);
        let m = output.last().unwrap();
        assert_eq!(m.bk.rev, Revision::new(OLD_LATEST, 0));
        assert!(m.raw_value.is_empty());
        assert!(output.iter().all(|e| !e.key.starts_with(b"/tenant-3/")));
        // Without a filter nothing is marked.
        let all = dir.join("all.db");
        let r = run_ok(&snapshot(v), &all, &RewriteOptions::default());
        assert!(r.markers_written.is_empty());
        assert_eq!(r.revisions_kept, r.revisions_read);
        // Meta compact keys carried byte for byte when unchanged.
        assert_eq!(read_all(&all)[META], read_all(&snapshot(v))[META]);
    }
}

/// (6) Two renames onto the same keys: refused before anything is written.
#[test]
fn rename_collision_writes_nothing() {
    for v in VERSIONS {
        let dir = scratch(&format!("collision-{v}"));
        let out = dir.join("out.db");
        let e =
            run_err(&snapshot(v), &out, &R { rename: &["/tenant-1/=/x/", "/tenant-2/=/x/"], ..R::default() }.opts());
        assert!(e.contains("rename collision"), "{e}");
        assert!(e.contains("/tenant-1/") && e.contains("/tenant-2/") && e.contains("/x/"), "{e}");
        // A rename onto keys that exist unrenamed collides too.
        let e = run_err(&snapshot(v), &out, &R { rename: &["/tenant-1/=/tenant-2/"], ..R::default() }.opts());
        assert!(e.contains("rename collision"), "{e}");
        // Filtering one side out removes the collision (and leaves one rename matching nothing).
        let one_side = R {
            include: &["/tenant-1/"],
            keep: &["compact_rev_key"],
            rename: &["/tenant-1/=/x/", "/tenant-2/=/x/"],
            ..R::default()
        }
        .opts();
        let e = run_err(&snapshot(v), &out, &one_side);
        assert!(e.contains("--rename /tenant-2/=/x/ matched no key"), "{e}");
        let r = run_ok(&snapshot(v), &out, &RewriteOptions { allow_empty_rules: true, ..one_side });
        let matched: Vec<(String, u64)> = r.rules.iter().map(|m| (m.to_string(), m.matched)).collect();
        assert_eq!(matched[3], ("--rename /tenant-2/=/x/".to_string(), 0), "{matched:?}");
        assert_eq!(matched[2].1, r.revisions_renamed, "{matched:?}");
    }
}

/// Provider name of a Kubernetes-encrypted value.
fn provider(value: &[u8]) -> Option<String> {
    let rest = value.strip_prefix(b"k8s:enc:")?;
    let end = rest.iter().position(|&b| b == b':')?;
    Some(String::from_utf8(rest[..end].to_vec()).unwrap())
}

/// (7) Renaming values bound to their key by aesgcm/kms is refused (naming the first
/// such key and the count), allowed with the flag, and counted in the report.
#[test]
fn key_bound_encrypted_values() {
    for v in VERSIONS {
        let dir = scratch(&format!("keybound-{v}"));
        let input = key_revs(&snapshot(v));
        for (tenant, want_provider) in [("tenant-2", "aesgcm"), ("tenant-3", "kms")] {
            let prefix = format!("/{tenant}/");
            let rename = format!("/{tenant}/registry/=/registry/");
            let kept: Vec<&Rev> = input.iter().filter(|e| e.key.starts_with(prefix.as_bytes())).collect();
            let mut providers: BTreeMap<String, u64> = BTreeMap::new();
            for e in kept.iter().filter(|e| !e.bk.tombstone) {
                if let Some(p) = provider(&e.value) {
                    *providers.entry(p).or_default() += 1;
                }
            }
            let bound: Vec<&&Rev> = kept
                .iter()
                .filter(|e| !e.bk.tombstone && provider(&e.value).as_deref() == Some(want_provider))
                .collect();
            assert!(bound.len() > 5, "fixture: {tenant} has {want_provider} secrets");
            assert_eq!(providers.keys().collect::<Vec<_>>(), vec![want_provider], "{v} {tenant}");
            let first = String::from_utf8(bound[0].key.clone()).unwrap();

            let r = R { include: &[&prefix], keep: &["compact_rev_key"], rename: &[&rename], ..R::default() };
            let out = dir.join(format!("{tenant}.db"));
            let e = run_err(&snapshot(v), &out, &r.opts());
            assert!(e.contains(&format!("{} values", bound.len())), "{v} {tenant}: count missing in: {e}");
            assert!(e.contains(&format!("First: {first}")), "{v} {tenant}: first key {first} missing in: {e}");
            assert!(e.contains("allow renaming key-bound encrypted values"), "{e}");
            assert!(!e.contains("--"), "library messages name no CLI flags: {e}");

            let allow = RewriteOptions { allow_key_bound_encrypted: true, ..r.opts() };
            let rep = run_ok(&snapshot(v), &out, &allow);
            assert_eq!(rep.encrypted, providers, "{v} {tenant}");
            assert_eq!(rep.key_bound_renamed, bound.len() as u64);
            // Values are carried unchanged, only the key moves.
            let o = key_revs(&out);
            let renamed_first = format!("/registry/{}", first.strip_prefix(&format!("/{tenant}/registry/")).unwrap());
            let got = o.iter().find(|e| e.key == renamed_first.as_bytes()).unwrap();
            assert_eq!(got.value, bound[0].value);

            // Kept but not renamed: counted, not refused.
            let plain = R { include: &[&prefix], keep: &["compact_rev_key"], ..R::default() };
            let rep = run_ok(&snapshot(v), &out, &plain.opts());
            assert_eq!(rep.encrypted, providers);
            assert_eq!(rep.key_bound_renamed, 0);
            // Compacted offline: only the values still written are counted (checked in run_ok).
            let rep = run_ok(&snapshot(v), &out, &RewriteOptions { compact: Some(None), ..plain.opts() });
            assert!(rep.encrypted[want_provider] <= providers[want_provider]);
        }
    }
}

fn lease_ids(entries: &Entries) -> BTreeSet<i64> {
    entries.iter().map(|(k, _)| i64::from_be_bytes(k.as_slice().try_into().unwrap())).collect()
}

/// (8) Leases no kept live key references: counted; dropped only when asked; else carried byte for byte.
#[test]
fn orphan_leases() {
    for v in VERSIONS {
        let dir = scratch(&format!("leases-{v}"));
        let get = expected(v, "get.json");
        let referenced: BTreeSet<i64> = get["kvs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|kv| b64(&kv["key"]).starts_with(b"/tenant-2/"))
            .filter_map(|kv| kv["lease"].as_i64())
            .collect();
        let in_leases = read_all(&snapshot(v))[LEASE].1.clone();
        let all = lease_ids(&in_leases);
        assert_eq!(all.len(), 4, "fixture: 4 leases");
        assert_eq!(referenced.len(), 1, "fixture: tenant 2 uses one lease");
        let orphaned = all.difference(&referenced).count() as u64;

        let base = R { include: &["/tenant-2/"], keep: &["compact_rev_key"], ..R::default() };
        let out = dir.join("keep.db");
        let r = run_ok(&snapshot(v), &out, &base.opts());
        assert_eq!((r.leases_read, r.leases_kept, r.leases_dropped, r.leases_orphaned), (4, 4, 0, orphaned));
        assert_eq!(read_all(&out)[LEASE], read_all(&snapshot(v))[LEASE], "lease bucket carried byte for byte");

        let out = dir.join("drop.db");
        let r = run_ok(&snapshot(v), &out, &RewriteOptions { drop_orphan_leases: true, ..base.opts() });
        assert_eq!((r.leases_read, r.leases_kept, r.leases_dropped, r.leases_orphaned), (4, 1, orphaned, orphaned));
        let out_leases = read_all(&out)[LEASE].1.clone();
        assert_eq!(lease_ids(&out_leases), referenced);
        let want: Entries = in_leases
            .iter()
            .filter(|(k, _)| referenced.contains(&i64::from_be_bytes(k.as_slice().try_into().unwrap())))
            .cloned()
            .collect();
        assert_eq!(out_leases, want, "kept lease records byte for byte");
        assert_eq!(r.status.leases, 1);
    }
}

/// (9) `--rename /tenant-1/=/t1/` rewrites the role's prefix permission (and its range
/// end); every other bucket stays byte for byte.
#[test]
fn role_permission_rename() {
    for v in VERSIONS {
        let dir = scratch(&format!("roles-{v}"));
        let out = dir.join("out.db");
        let r = run_ok(&snapshot(v), &out, &R { rename: &["/tenant-1/=/t1/"], ..R::default() }.opts());
        assert_eq!(r.roles_rewritten, 1);
        assert_eq!(r.compact_rev_key, CompactRevKey::Kept);
        assert!(r.markers_written.is_empty());
        let a = read_all(&snapshot(v));
        let b = read_all(&out);
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "same buckets");
        for name in [MEMBERS, MEMBERS_REMOVED, CLUSTER, AUTH, AUTH_USERS, ALARM, LEASE] {
            assert_eq!(a[name], b[name], "{v}: bucket {} differs", String::from_utf8_lossy(name));
        }
        let meta = |m: &(u64, Entries)| -> Entries {
            m.1.iter().filter(|(k, _)| k != SCHEDULED_COMPACT_REV && k != FINISHED_COMPACT_REV).cloned().collect()
        };
        assert_eq!(meta(&a[META]), meta(&b[META]));
        assert_eq!(a[META], b[META], "{v}: nothing compacts, so even the compact keys are carried");
        assert_eq!(a[AUTH_ROLES].0, b[AUTH_ROLES].0);
        let roles_a: HashMap<Vec<u8>, Vec<u8>> = a[AUTH_ROLES].1.iter().cloned().collect();
        let roles_b: HashMap<Vec<u8>, Vec<u8>> = b[AUTH_ROLES].1.iter().cloned().collect();
        assert_eq!(roles_a.len(), roles_b.len());
        assert!(roles_a.contains_key(&b"tenant1-rw"[..]) && roles_a.contains_key(&b"root"[..]));
        for (name, va) in &roles_a {
            let vb = &roles_b[name];
            if name != b"tenant1-rw" {
                assert_eq!(va, vb, "role {} carried", String::from_utf8_lossy(name));
                continue;
            }
            let ra = authpb::Role::decode(va.as_slice()).unwrap();
            let rb = authpb::Role::decode(vb.as_slice()).unwrap();
            assert_eq!(ra.key_permission.len(), 1);
            assert_eq!(ra.key_permission[0].key, b"/tenant-1/");
            assert_eq!(ra.key_permission[0].range_end, b"/tenant-10");
            assert_eq!(rb.name, ra.name);
            assert_eq!(rb.key_permission.len(), 1);
            assert_eq!(rb.key_permission[0].perm_type, ra.key_permission[0].perm_type);
            assert_eq!(rb.key_permission[0].key, b"/t1/");
            assert_eq!(rb.key_permission[0].range_end, b"/t10");
        }
        // Key bucket: same revisions; tenant-1 keys renamed in every revision
        // (tombstones included), others byte for byte.
        let (ia, ib) = (revs(&a[KEY].1), revs(&b[KEY].1));
        assert_eq!(ia.len(), ib.len());
        let mut renamed_tombstones = 0;
        for (x, y) in ia.iter().zip(&ib) {
            assert_eq!(x.raw_key, y.raw_key);
            match x.key.strip_prefix(b"/tenant-1/") {
                Some(rest) => {
                    assert_eq!(y.key, [&b"/t1/"[..], rest].concat());
                    assert_eq!(
                        (x.create, x.modr, x.version, &x.value, x.lease),
                        (y.create, y.modr, y.version, &y.value, y.lease)
                    );
                    renamed_tombstones += u64::from(x.bk.tombstone);
                }
                None => assert_eq!(x.raw_value, y.raw_value),
            }
        }
        assert!(renamed_tombstones > 0, "fixture: tenant 1 has tombstones");
        assert_eq!(r.revisions_renamed, ia.iter().filter(|e| e.key.starts_with(b"/tenant-1/")).count() as u64);
    }
}

/// (10) `compact_rev_key` is never dropped by accident of a prefix filter.
#[test]
fn compact_rev_key_needs_a_rule() {
    for v in VERSIONS {
        let dir = scratch(&format!("crk-{v}"));
        let out = dir.join("out.db");
        let e = run_err(&snapshot(v), &out, &R { include: &["/tenant-1/"], ..R::default() }.opts());
        assert!(e.contains("compact_rev_key") && e.contains("a keep or drop rule"), "{e}");
        let e = run_err(&snapshot(v), &out, &R { exclude: &["compact_rev_key"], ..R::default() }.opts());
        assert!(e.contains("compact_rev_key"), "{e}");
        let e = run_err(
            &snapshot(v),
            &out,
            &R { include: &["/tenant-1/"], keep: &["compact_rev_key"], drop: &["compact_rev_key"], ..R::default() }
                .opts(),
        );
        assert!(e.contains("compact_rev_key"), "{e}");

        let r = run_ok(
            &snapshot(v),
            &out,
            &R { include: &["/tenant-1/"], drop: &["compact_rev_key"], ..R::default() }.opts(),
        );
        assert_eq!(r.compact_rev_key, CompactRevKey::Dropped);
        assert!(key_revs(&out).iter().all(|e| e.key != b"compact_rev_key"));

        let r = run_ok(
            &snapshot(v),
            &out,
            &R { include: &["/tenant-1/"], keep: &["compact_rev_key"], ..R::default() }.opts(),
        );
        assert_eq!(r.compact_rev_key, CompactRevKey::Kept);
        let want: Vec<Rev> = key_revs(&snapshot(v)).into_iter().filter(|e| e.key == b"compact_rev_key").collect();
        let got: Vec<Rev> = key_revs(&out).into_iter().filter(|e| e.key == b"compact_rev_key").collect();
        assert!(!want.is_empty());
        assert_eq!(got, want, "every stored revision of compact_rev_key carried");
    }
}

/// (11) Raw `member/snap/db` input: no trailer by default; a valid one with `Always`.
#[test]
fn raw_db_input_trailer() {
    for v in VERSIONS {
        let dir = scratch(&format!("rawdb-{v}"));
        let input = fixture_dir(v).join("member/snap/db");
        let base = R { include: &["/tenant-1/"], keep: &["compact_rev_key"], ..R::default() }.opts();
        let out = dir.join("plain.db");
        let r = run_ok(&input, &out, &base);
        assert_eq!(r.trailer_in, Trailer::Absent);
        assert_eq!(r.trailer_out, None);
        let data = std::fs::read(&out).unwrap();
        assert_eq!(data.len() % 4096, 0, "a plain bbolt file");
        assert!(!trailer::has_trailer(data.len() as u64));

        let out = dir.join("trailer.db");
        let r = run_ok(&input, &out, &RewriteOptions { trailer: TrailerMode::Always, ..base.clone() });
        let data = std::fs::read(&out).unwrap();
        assert_eq!(data.len() % 512, 32);
        let d = r.trailer_out.unwrap();
        assert_eq!(trailer::verify(&data), Trailer::Valid(d));
        assert_eq!(&data[data.len() - 32..], &d[..]);
        let vr = verify(&data, VerifyOptions { require_trailer: true });
        assert!(vr.is_ok(), "{:#?}", vr.findings);

        // And a snapshot with Never: no trailer.
        let out = dir.join("never.db");
        let r = run_ok(&snapshot(v), &out, &RewriteOptions { trailer: TrailerMode::Never, ..base });
        assert_eq!(r.trailer_out, None);
        assert!(matches!(r.trailer_in, Trailer::Valid(_)));
        assert_eq!(std::fs::metadata(&out).unwrap().len() % 4096, 0);
    }
}

/// Offline compaction: what remains is what etcd's compaction at the new latest
/// revision keeps; latest reads are unchanged; both compact keys are set.
#[test]
fn offline_compact() {
    for v in VERSIONS {
        let dir = scratch(&format!("compact-{v}"));
        let plain = dir.join("plain.db");
        let compacted = dir.join("compacted.db");
        let rp = run_ok(&snapshot(v), &plain, &RewriteOptions { compact: None, ..tenant_compact() });
        let rc = run_ok(&snapshot(v), &compacted, &tenant_compact());
        assert_eq!(rc.new_revision, OLD_LATEST + 1000);
        assert_eq!(rc.scheduled_compact, Some(rc.new_revision));
        assert_eq!(rc.finished_compact, Some(rc.new_revision));
        assert_eq!(rc.status.meta.scheduled_compact, Some(Revision::new(rc.new_revision, 0)));
        assert_eq!(rc.status.meta.finished_compact, Some(Revision::new(rc.new_revision, 0)));
        assert_eq!(rc.hashkv.compact_revision, rc.new_revision);
        assert!(rc.revisions_compacted > 0);
        assert!(rc.bytes_out < rp.bytes_out, "{} !< {}", rc.bytes_out, rp.bytes_out);
        assert_eq!(rp.scheduled_compact, Some(OLD_COMPACT));
        let (dp, dc) = (std::fs::read(&plain).unwrap(), std::fs::read(&compacted).unwrap());
        let (p, c) = (Db::open(trailer::split(&dp).0).unwrap(), Db::open(trailer::split(&dc).0).unwrap());
        let keys_p = at_revision(&p, 0, &Selection::default()).unwrap();
        let keys_c = at_revision(&c, 0, &Selection::default()).unwrap();
        assert_eq!(keys_p.rev(), keys_c.rev());
        let kv_p: Vec<KvRef<'_>> = keys_p.iter().map(|x| x.kv).collect();
        let kv_c: Vec<KvRef<'_>> = keys_c.iter().map(|x| x.kv).collect();
        assert_eq!(kv_p, kv_c);
        // Only the live revisions (and the marker) remain: no tombstones, one entry per live key.
        assert_eq!(rc.tombstones, 0);
        assert_eq!(rc.revisions_kept, keys_c.len() as u64 + 1);
        // Compacting below the old compaction or above the latest is refused.
        let out = dir.join("bad.db");
        run_err(&snapshot(v), &out, &RewriteOptions { compact: Some(Some(OLD_COMPACT - 1)), ..tenant_compact() });
        run_err(&snapshot(v), &out, &RewriteOptions { compact: Some(Some(rc.new_revision + 1)), ..tenant_compact() });
        // --compact with --mark-compacted is refused.
        run_err(&snapshot(v), &out, &RewriteOptions { mark_compacted: true, ..tenant_compact() });
    }
}
