//! `transform` (bytes in, any `Write` out) and the entry hook on the committed
//! fixtures (written by real etcd 3.4.23 … 3.7.3): the same bytes as the file
//! rewrite's rebuild, the identity compaction, hook drops equal to the key
//! rules' filter, replaced values at every revision, and hook failures that
//! write nothing. Library level: no etcd is started (the restore of a
//! transformed snapshot by real etcd is in `crates/cli/tests/transform_e2e.rs`).
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

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use etcdsnap_bolt::Db;
use etcdsnap_io::{Cancel, CreateOptions};
use etcdsnap_keys::{KeyRules, Rename};
use etcdsnap_mvcc::hashkv::{hash_kv, TombstoneRule};
use etcdsnap_mvcc::keyspace::{all_revisions, at_revision, Selection};
use etcdsnap_mvcc::rewrite::{rewrite, NoProgress, OutputLayout, RewriteOptions, RewriteReport};
use etcdsnap_mvcc::snapshot::TrailerMode;
use etcdsnap_mvcc::status::status;
use etcdsnap_mvcc::trailer::{self, Trailer};
use etcdsnap_mvcc::transform::{transform, Decision, Entry, EntryHook};
use etcdsnap_mvcc::verify::{verify, VerifyOptions};
use etcdsnap_mvcc::{MvccError, Refusal};
use support::{all_entries, fixture_dir as fixture, snapshot};

const VERSIONS: [&str; 5] = ["3.4.23", "3.5.1", "3.5.35", "3.6.16", "3.7.3"];

/// The server's raw bbolt file (no trailer).
fn scratch(name: &str) -> PathBuf {
    support::scratch("mvcc-transform", name)
}

fn raw_db(version: &str) -> PathBuf {
    fixture(version).join("member/snap/db")
}

fn rules(include: &[&str], exclude: &[&str], keep: &[&str], rename: &[&str]) -> KeyRules {
    let v = |s: &[&str]| s.iter().map(|s| s.as_bytes().to_vec()).collect();
    KeyRules {
        include: v(include),
        exclude: v(exclude),
        keep_keys: v(keep),
        drop_keys: Vec::new(),
        renames: rename.iter().map(|r| Rename::parse(r).unwrap()).collect(),
    }
}

/// Drops every entry whose stored key starts with the prefix.
#[derive(Debug)]
struct DropPrefix(&'static str);

impl EntryHook for DropPrefix {
    fn decide(&self, e: &Entry<'_>) -> Result<Decision, String> {
        Ok(if e.key.starts_with(self.0.as_bytes()) { Decision::Drop } else { Decision::Keep })
    }
}

/// Upper-cases the value of every put whose stored key starts with the prefix.
#[derive(Debug)]
struct Upper(&'static str);

impl EntryHook for Upper {
    fn decide(&self, e: &Entry<'_>) -> Result<Decision, String> {
        assert_eq!(e.kv.key, e.key);
        if e.at.tombstone || !e.key.starts_with(self.0.as_bytes()) {
            return Ok(Decision::Keep);
        }
        Ok(Decision::ReplaceValue(e.kv.value.to_ascii_uppercase()))
    }
}

/// Fails on one key.
#[derive(Debug)]
struct FailOn(Vec<u8>);

impl EntryHook for FailOn {
    fn decide(&self, e: &Entry<'_>) -> Result<Decision, String> {
        if e.key == self.0 {
            return Err("the vault refused it".into());
        }
        Ok(Decision::Keep)
    }
}

/// Replaces every value, tombstones' too.
#[derive(Debug)]
struct ReplaceAll;

impl EntryHook for ReplaceAll {
    fn decide(&self, _: &Entry<'_>) -> Result<Decision, String> {
        Ok(Decision::ReplaceValue(b"x".to_vec()))
    }
}

/// Drops the first entry it is ever shown, then keeps everything: not deterministic.
#[derive(Debug, Default)]
struct Flaky(AtomicU64);

impl EntryHook for Flaky {
    fn decide(&self, _: &Entry<'_>) -> Result<Decision, String> {
        Ok(if self.0.fetch_add(1, Ordering::Relaxed) == 0 { Decision::Drop } else { Decision::Keep })
    }
}

fn with_hook(hook: impl EntryHook + 'static, opts: RewriteOptions) -> RewriteOptions {
    RewriteOptions { hook: Some(Arc::new(hook)), ..opts }
}

/// A transform into a `Vec` that must succeed, with an output that verifies
/// clean, passes the bolt check, and whose report figures are the output's.
fn transform_ok(input: &[u8], opts: &RewriteOptions) -> (Vec<u8>, RewriteReport) {
    let (out, r) = transform(input, Vec::new(), opts, &mut NoProgress).unwrap_or_else(|e| panic!("transform: {e}"));
    assert_eq!(r.bytes_out, out.len() as u64, "bytes_out");
    assert_eq!(r.bytes_in, input.len() as u64, "bytes_in");
    assert_eq!(r.layout, OutputLayout::Rebuilt);
    assert!(r.stale_temps.is_empty());
    match r.trailer_out {
        Some(d) => assert_eq!(trailer::verify(&out), Trailer::Valid(d), "fresh trailer"),
        None => assert_eq!(trailer::verify(&out), Trailer::Absent),
    }
    let v = verify(&out, VerifyOptions { require_trailer: r.trailer_out.is_some() });
    assert!(v.is_ok(), "verify: {:#?}", v.findings);
    let db = Db::open(trailer::split(&out).0).unwrap();
    assert!(db.check().is_ok(), "bolt check");
    assert_eq!(r.status, status(&db).unwrap(), "report status vs output");
    assert_eq!(r.hashkv, hash_kv(&db, 0, TombstoneRule::Skip).unwrap(), "report hashkv vs output");
    assert_eq!(r.status.revision, r.new_revision);
    assert_eq!(
        r.revisions_read + r.markers_written.len() as u64,
        r.revisions_kept + r.revisions_filtered + r.revisions_compacted
    );
    (out, r)
}

/// `rewrite` of `input` into a file, rebuilt; the output's bytes and the report.
fn rewrite_file(input: &Path, output: &Path, opts: &RewriteOptions) -> (Vec<u8>, RewriteReport) {
    let opts = RewriteOptions {
        rebuild: true,
        verify_output: true,
        output: CreateOptions { overwrite: true, remove_stale: false },
        ..opts.clone()
    };
    let r =
        rewrite(input, output, &opts, &mut NoProgress).unwrap_or_else(|e| panic!("rewrite {}: {e}", input.display()));
    (std::fs::read(output).unwrap(), r)
}

fn tenant_move() -> RewriteOptions {
    RewriteOptions {
        rules: rules(&["/tenant-1/"], &[], &["compact_rev_key"], &["/tenant-1/registry/=/registry/"]),
        bump_revision: Some(1_000_000_000),
        mark_compacted: true,
        ..RewriteOptions::default()
    }
}

fn tenant_compact() -> RewriteOptions {
    RewriteOptions {
        rules: rules(&["/tenant-1/"], &[], &["compact_rev_key"], &[]),
        bump_revision: Some(1000),
        compact: Some(None),
        drop_orphan_leases: true,
        ..RewriteOptions::default()
    }
}

/// `transform` into memory gives the bytes (and the report, time aside) of
/// the file rewrite's rebuild, for snapshots and raw dbs, with and without
/// rules, hooks, compaction, trailers and another page size.
#[test]
fn same_bytes_as_the_file_rebuild() {
    let cases: Vec<(&str, RewriteOptions)> = vec![
        ("identity", RewriteOptions::default()),
        ("move", tenant_move()),
        ("compact", tenant_compact()),
        ("hooks", with_hook(Upper("/tenant-1/registry/configmaps/"), tenant_compact())),
        ("drop-hook", with_hook(DropPrefix("/tenant-3/"), RewriteOptions::default())),
        ("no-trailer", RewriteOptions { trailer: TrailerMode::Never, ..tenant_move() }),
        ("page-16k", RewriteOptions { page_size: Some(16384), fill_percent: 0.5, ..RewriteOptions::default() }),
    ];
    for v in VERSIONS {
        let dir = scratch(&format!("same-{v}"));
        for input in [snapshot(v), raw_db(v)] {
            let data = std::fs::read(&input).unwrap();
            for (name, opts) in &cases {
                let (mem, rm) = transform_ok(&data, opts);
                let (file, rf) = rewrite_file(&input, &dir.join(format!("{name}.db")), opts);
                assert!(mem == file, "{v} {name} {}: transform and rewrite differ", input.display());
                assert_eq!(RewriteReport { elapsed: rf.elapsed, ..rm }, rf, "{v} {name}: reports differ");
            }
        }
    }
}

/// A hook needs the rebuild: a keep-all rewrite with one is not patched, and
/// gives the bytes of `transform`.
#[test]
fn a_hook_is_never_patched() {
    for v in VERSIONS {
        let dir = scratch(&format!("unpatched-{v}"));
        let opts = with_hook(Upper("/tenant-2/"), RewriteOptions { bump_revision: Some(10), ..Default::default() });
        let out = dir.join("out.db");
        let patchable =
            RewriteOptions { output: CreateOptions { overwrite: true, remove_stale: false }, ..opts.clone() };
        let r = rewrite(&snapshot(v), &out, &patchable, &mut NoProgress).unwrap();
        assert_eq!(r.layout, OutputLayout::Rebuilt, "{v}");
        assert!(r.values_replaced > 0);
        let (mem, _) = transform_ok(&std::fs::read(snapshot(v)).unwrap(), &opts);
        assert!(mem == std::fs::read(&out).unwrap(), "{v}");
    }
}

/// Default options: an identity compaction. Every bucket, key and value is
/// the input's, so `snapshot status` (but its size) and HashKV are too.
#[test]
fn identity_compaction() {
    for v in VERSIONS {
        for input in [snapshot(v), raw_db(v)] {
            let data = std::fs::read(&input).unwrap();
            let (out, r) = transform_ok(&data, &RewriteOptions::default());
            let a = Db::open(trailer::split(&data).0).unwrap();
            let b = Db::open(trailer::split(&out).0).unwrap();
            let (sa, sb) = (status(&a).unwrap(), status(&b).unwrap());
            assert_eq!(sb.hash, sa.hash, "{v}: status hash");
            assert_eq!(sa, etcdsnap_mvcc::status::Status { total_size: sa.total_size, ..sb.clone() }, "{v}");
            assert!(sb.total_size <= sa.total_size, "{v}: compaction grew the file");
            for rule in [TombstoneRule::Include, TombstoneRule::Skip] {
                assert_eq!(hash_kv(&b, 0, rule).unwrap(), hash_kv(&a, 0, rule).unwrap(), "{v}: hashkv {rule:?}");
            }
            assert_eq!(all_entries(&b), all_entries(&a), "{v}: buckets differ");
            assert_eq!(r.trailer_out.is_some(), trailer::split(&data).1.is_some(), "{v}: trailer like the input's");
            assert_eq!((r.revisions_kept, r.revisions_filtered, r.values_replaced), (r.revisions_read, 0, 0));
            assert!(r.markers_written.is_empty());
        }
    }
}

type Kv = (Vec<u8>, Vec<u8>, i64, i64, i64, i64);

/// The key space at `rev` (0: latest): (key, value, create, mod, version, lease).
fn keyspace(file: &[u8], rev: i64) -> (i64, Vec<Kv>) {
    let db = Db::open(trailer::split(file).0).unwrap();
    let keys = at_revision(&db, rev, &Selection::default()).unwrap();
    let at = keys.rev();
    let kvs = keys
        .iter()
        .map(|k| {
            let kv = k.kv;
            (kv.key.to_vec(), kv.value.to_vec(), kv.create_revision, kv.mod_revision, kv.version, kv.lease)
        })
        .collect();
    (at, kvs)
}

/// A hook that drops a prefix gives the key rules' `exclude` of it: the same
/// key space at every revision, the same bytes, the same counts.
#[test]
fn hook_drop_equals_exclude_rule() {
    for v in VERSIONS {
        let data = std::fs::read(snapshot(v)).unwrap();
        for prefix in ["/tenant-2/", "/tenant-1/registry/secrets/", "/tenant-3/registry/configmaps/"] {
            for (name, base) in [
                ("plain", RewriteOptions::default()),
                ("compact", RewriteOptions { compact: Some(None), drop_orphan_leases: true, ..Default::default() }),
                ("bump", RewriteOptions { bump_revision: Some(77), mark_compacted: true, ..Default::default() }),
            ] {
                let by_rule = RewriteOptions { rules: rules(&[], &[prefix], &[], &[]), ..base.clone() };
                let (a, ra) = transform_ok(&data, &by_rule);
                let (b, rb) = transform_ok(&data, &with_hook(DropPrefix(prefix), base));
                assert!(rb.revisions_filtered > 0, "{v} {prefix}: fixture has keys under it");
                let (at, want) = keyspace(&a, 0);
                assert_eq!(keyspace(&b, 0), (at, want), "{v} {prefix} {name}: key space at latest");
                let da = Db::open(trailer::split(&a).0).unwrap();
                let db = Db::open(trailer::split(&b).0).unwrap();
                let revs = |d: &Db<'_>| -> Vec<_> {
                    all_revisions(d, &Selection::default()).unwrap().iter().map(|s| (s.at, s.kv.to_owned())).collect()
                };
                assert_eq!(revs(&db), revs(&da), "{v} {prefix} {name}: stored revisions");
                assert!(a == b, "{v} {prefix} {name}: bytes differ");
                assert_eq!(
                    RewriteReport { elapsed: ra.elapsed, rules: ra.rules.clone(), ..rb },
                    ra,
                    "{v} {prefix} {name}: reports differ"
                );
                assert_eq!(rb.values_replaced, 0);
            }
        }
    }
}

/// A hook that upper-cases values: every put at every revision carries the
/// new value, every other field and every tombstone as stored; the report
/// counts the values.
#[test]
fn hook_replaces_values_at_every_revision() {
    for v in VERSIONS {
        let data = std::fs::read(snapshot(v)).unwrap();
        for (prefix, base) in [("", RewriteOptions::default()), ("/tenant-1/", tenant_move())] {
            let (out, r) = transform_ok(&data, &with_hook(Upper(prefix), base.clone()));
            let (plain, _) = transform_ok(&data, &base);
            let revs = |file: &[u8]| -> Vec<_> {
                let db = Db::open(trailer::split(file).0).unwrap();
                all_revisions(&db, &Selection::default()).unwrap().iter().map(|s| (s.at, s.kv.to_owned())).collect()
            };
            let (got, want) = (revs(&out), revs(&plain));
            assert_eq!(got.len(), want.len());
            // What the hook saw under `prefix` is renamed to /registry/ by the tenant move.
            let hooked = |k: &[u8]| if prefix.is_empty() { !k.is_empty() } else { k.starts_with(b"/registry/") };
            let (mut replaced, mut renamed) = (0u64, 0u64);
            for ((at, g), (at_w, mut w)) in got.into_iter().zip(want) {
                assert_eq!(at, at_w);
                if hooked(&w.key) && !prefix.is_empty() {
                    renamed += 1;
                }
                // Markers carry no key; tombstones no value.
                if hooked(&w.key) && !at.tombstone {
                    w.value = w.value.to_ascii_uppercase();
                    replaced += 1;
                }
                assert_eq!(g, w, "{v} {prefix:?} at {at:?}");
            }
            assert_eq!(r.values_replaced, replaced, "{v} {prefix:?}");
            assert_eq!(r.revisions_renamed, renamed, "{v} {prefix:?}");
            assert!(replaced > 100, "{v}: fixture has puts");
            // No value starts with k8s:enc: any more.
            assert!(r.encrypted.is_empty(), "{v}: {:?}", r.encrypted);
            // Every revision still readable: the latest one's values are upper case.
            let (_, latest) = keyspace(&out, 0);
            assert!(latest.iter().all(|kv| kv.1 == kv.1.to_ascii_uppercase()));
        }
    }
}

/// A replaced value is the hook's: key-bound encrypted values under a renamed
/// key, refused when carried, are written as the hook gave them.
#[test]
fn replaced_values_skip_the_key_bound_check() {
    for v in VERSIONS {
        let data = std::fs::read(snapshot(v)).unwrap();
        let opts = RewriteOptions {
            rules: rules(&["/tenant-2/"], &[], &["compact_rev_key"], &["/tenant-2/registry/=/registry/"]),
            ..RewriteOptions::default()
        };
        let mut out = Vec::new();
        let e = transform(&data, &mut out, &opts, &mut NoProgress).unwrap_err();
        assert!(matches!(e, MvccError::Refused(Refusal::KeyBoundEncrypted { .. })), "{v}: {e}");
        assert!(out.is_empty(), "{v}: bytes written before a refusal");
        let (_, r) = transform_ok(&data, &with_hook(Upper("/tenant-2/registry/secrets/"), opts));
        assert!(r.values_replaced > 5, "{v}");
        assert_eq!(r.key_bound_renamed, 0);
    }
}

/// A failing hook: the typed error names key and revision, and nothing is
/// written — not to the `Vec`, and no file by `rewrite`.
#[test]
fn failing_hook_writes_nothing() {
    for v in VERSIONS {
        let data = std::fs::read(snapshot(v)).unwrap();
        let db = Db::open(trailer::split(&data).0).unwrap();
        let victim = b"/tenant-3/registry/configmaps/".as_slice();
        let first = all_revisions(&db, &Selection { prefix: victim.to_vec(), key: None }).unwrap()[0];
        let opts = with_hook(FailOn(first.kv.key.to_vec()), RewriteOptions::default());
        let mut out = Vec::new();
        let e = transform(&data, &mut out, &opts, &mut NoProgress).unwrap_err();
        match &e {
            MvccError::Hook { key, revision, reason } => {
                assert_eq!(key.as_slice(), first.kv.key);
                assert_eq!(*revision, first.at.rev.main, "{v}: the first revision of the key");
                assert_eq!(reason, "the vault refused it");
            }
            e => panic!("{v}: {e}"),
        }
        let msg = e.to_string();
        assert!(msg.contains(&String::from_utf8_lossy(first.kv.key).into_owned()), "{msg}");
        assert!(msg.contains(&format!("revision {}", first.at.rev.main)), "{msg}");
        assert!(out.is_empty(), "{v}: {} bytes written", out.len());

        let dir = scratch(&format!("failing-{v}"));
        let path = dir.join("out.db");
        let e = rewrite(&snapshot(v), &path, &opts, &mut NoProgress).unwrap_err();
        assert!(matches!(e, MvccError::Hook { .. }), "{v}: {e}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{v}: files left behind");

        // A value for a tombstone is refused, naming the first tombstone.
        let tomb = all_revisions(&db, &Selection::default()).unwrap().into_iter().find(|s| s.at.tombstone).unwrap();
        let e = transform(&data, &mut out, &with_hook(ReplaceAll, RewriteOptions::default()), &mut NoProgress);
        match e.unwrap_err() {
            MvccError::Hook { key, revision, reason } => {
                assert_eq!((key.as_slice(), revision), (tomb.kv.key, tomb.at.rev.main));
                assert!(reason.contains("tombstone"), "{reason}");
            }
            e => panic!("{v}: {e}"),
        }
        assert!(out.is_empty());

        // The hook is asked once per entry: one that would change its mind
        // (it drops only the first entry it is ever shown) gives one
        // consistent output, that entry dropped.
        let (_, r) =
            transform(&data, Vec::new(), &with_hook(Flaky::default(), RewriteOptions::default()), &mut NoProgress)
                .unwrap();
        assert_eq!(r.revisions_filtered, 1, "{v}");
        assert_eq!(r.revisions_kept, r.revisions_read - 1, "{v}");
    }
}

/// Counts its calls; keeps everything.
#[derive(Debug, Default)]
struct Counting(AtomicU64);

impl EntryHook for Counting {
    fn decide(&self, _: &Entry<'_>) -> Result<Decision, String> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Decision::Keep)
    }
}

/// A key-bound re-sealer that counts its calls and flips the sealed bytes.
#[derive(Debug, Default)]
struct CountingReseal {
    checks: AtomicU64,
    reseals: AtomicU64,
}

impl etcdsnap_keys::Reseal for CountingReseal {
    fn check(&self, _: &[u8], _: &[u8]) -> Result<String, String> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        Ok("aesgcm/test".into())
    }

    fn reseal(&self, _: &[u8], _: &[u8], _: &[u8], value: &[u8]) -> Result<(String, Vec<u8>), String> {
        self.reseals.fetch_add(1, Ordering::Relaxed);
        let mut v = value.to_vec();
        if let Some(b) = v.last_mut() {
            *b ^= 0xff;
        }
        Ok(("aesgcm/test".into(), v))
    }
}

/// A rebuild decides each `key`-bucket entry once: the hook is asked once
/// per entry the rules keep and each key-bound value under a renamed key is
/// checked once (the analysis) and re-sealed once (the write), with and
/// without the offline compaction that used to take a third walk.
#[test]
fn a_rebuild_asks_the_hook_and_reseals_once_per_entry() {
    for v in VERSIONS {
        let data = std::fs::read(snapshot(v)).unwrap();
        let db = Db::open(trailer::split(&data).0).unwrap();
        let revs = all_revisions(&db, &Selection::default()).unwrap();
        let rules = rules(&[], &[], &[], &["/tenant-2/=/t2/"]);
        let kept = revs.iter().filter(|s| rules.keeps(s.kv.key)).count() as u64;
        let key_bound = revs
            .iter()
            .filter(|s| s.kv.key.starts_with(b"/tenant-2/") && !s.at.tombstone)
            .filter(|s| etcdsnap_keys::encryption(s.kv.value).is_some_and(|e| e.key_bound()))
            .count() as u64;
        assert!(key_bound > 0, "{v}: the fixture has key-bound values under /tenant-2/");
        for compact in [None, Some(None)] {
            let hook = Arc::new(Counting::default());
            let reseal = Arc::new(CountingReseal::default());
            let opts = RewriteOptions {
                rules: rules.clone(),
                hook: Some(hook.clone()),
                reseal: Some(reseal.clone()),
                compact,
                ..RewriteOptions::default()
            };
            let (_, r) = transform(&data, Vec::new(), &opts, &mut NoProgress).unwrap();
            assert_eq!(hook.0.load(Ordering::Relaxed), kept, "{v} {compact:?}: hook calls");
            assert_eq!(reseal.checks.load(Ordering::Relaxed), key_bound, "{v} {compact:?}: checks");
            let resealed: u64 = r.resealed.values().sum();
            assert_eq!(reseal.reseals.load(Ordering::Relaxed), resealed, "{v} {compact:?}: reseals");
            if compact.is_none() {
                assert_eq!(resealed, key_bound, "{v}: every key-bound value re-sealed");
            } else {
                assert!(resealed < key_bound && resealed > 0, "{v}: compacted history is not re-sealed");
            }
        }
    }
}

/// A damaged trailer is refused before anything is written; a cancelled
/// transform says so; a failing sink is an error.
#[test]
fn refusals_and_failures() {
    let v = "3.5.1";
    let mut data = std::fs::read(snapshot(v)).unwrap();
    let last = data.len() - 1;
    data[last] ^= 1;
    let mut out = Vec::new();
    let e = transform(&data, &mut out, &RewriteOptions::default(), &mut NoProgress).unwrap_err();
    assert!(matches!(e, MvccError::Refused(Refusal::TrailerMismatch { .. })), "{e}");
    assert!(out.is_empty());
    data[last] ^= 1;

    let flag = Arc::new(AtomicUsize::new(2));
    let opts = RewriteOptions { cancel: Cancel::new(flag), ..RewriteOptions::default() };
    let e = transform(&data, &mut out, &opts, &mut NoProgress).unwrap_err();
    assert!(matches!(e, MvccError::Os(etcdsnap_io::Error::Interrupted { signal: 2 })), "{e}");

    /// Accepts `0` more bytes, then fails.
    struct Full(usize);
    impl Write for Full {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 < b.len() {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    assert!(transform(&data, Full(100_000), &RewriteOptions::default(), &mut NoProgress).is_err());
    // Exactly the output's size fits; the trailer is the last write.
    let (mem, _) = transform_ok(&data, &RewriteOptions::default());
    let (full, r) = transform(&data, Full(mem.len()), &RewriteOptions::default(), &mut NoProgress).unwrap();
    assert_eq!((full.0, r.bytes_out), (0, mem.len() as u64));
    assert!(transform(&data, Full(mem.len() - 1), &RewriteOptions::default(), &mut NoProgress).is_err());
}
