//! Rewrites that drop a few keys are patched copy-on-write (issue 10): on
//! every version's fixture, a drop (one key, a prefix of a handful of keys,
//! the keys at the first and the last revision, `compact_rev_key`, with and
//! without a bump) is `patched`, holds exactly what the `--rebuild` of the
//! same rewrite holds (every bucket and entry), reports the same counts and
//! figures but the file size, reports the status and HashKV a read-back of
//! its output gives, passes our verify and check and Go bbolt's check (1.3.6,
//! 1.4.3, 1.5.0), and carries the input's pages. Large drops are rebuilt.
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

use std::path::{Path, PathBuf};

use etcdsnap_bolt::Db;
use etcdsnap_io::CreateOptions;
use etcdsnap_keys::KeyRules;
use etcdsnap_mvcc::hashkv::{hash_kv, TombstoneRule};
use etcdsnap_mvcc::kv::KvRef;
use etcdsnap_mvcc::revision::{BucketKey, Revision};
use etcdsnap_mvcc::rewrite::{
    max_patched_drops, rewrite, NoProgress, OutputLayout, RewriteOptions, RewriteReport, MAX_PATCHED_DROPS,
};
use etcdsnap_mvcc::schema::KEY;
use etcdsnap_mvcc::status::{status, Status};
use etcdsnap_mvcc::trailer;
use etcdsnap_mvcc::verify::{verify, VerifyOptions};
use support::{contents, copy_fixture, kv_bytes, snapshot};

const VERSIONS: [&str; 5] = ["3.4.23", "3.5.1", "3.5.35", "3.6.16", "3.7.3"];

fn scratch(name: &str) -> PathBuf {
    support::scratch("mvcc-drop-patch", name)
}

fn oracles() -> Vec<(&'static str, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("ETCDSNAP_ORACLES").map(PathBuf::from).unwrap_or_else(|| root.join(".oracles"));
    [("1.3.6", "bin/boltoracle"), ("1.4.3", "bbolt-1.4.3/boltoracle"), ("1.5.0", "bbolt-1.5.0/boltoracle")]
        .into_iter()
        .map(|(line, rel)| {
            let bin = dir.join(rel);
            assert!(bin.exists(), "{} missing: run tools/install-oracles.sh", bin.display());
            (line, bin)
        })
        .collect()
}

/// Go bbolt's `Tx.Check` of every line accepts `file` (a snapshot: the trailer is cut first).
fn go_check(file: &Path) {
    let data = std::fs::read(file).unwrap();
    let raw = file.with_extension("raw");
    std::fs::write(&raw, trailer::split(&data).0).unwrap();
    for (line, bin) in oracles() {
        let o = std::process::Command::new(bin).arg("check").arg(&raw).output().unwrap();
        assert_eq!(
            (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned()),
            (Some(0), "OK\n".to_string()),
            "bbolt {line} check of {}: {}",
            file.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// A rewrite that must succeed: its output verifies clean, passes our check,
/// and its reported status and HashKV are what a read-back gives. The run
/// also reads its output back itself (`verify_output`).
fn run_ok(input: &Path, output: &Path, opts: &RewriteOptions) -> RewriteReport {
    let opts = RewriteOptions {
        output: CreateOptions { overwrite: true, remove_stale: false },
        verify_output: true,
        ..opts.clone()
    };
    let r =
        rewrite(input, output, &opts, &mut NoProgress).unwrap_or_else(|e| panic!("rewrite {}: {e}", input.display()));
    let data = std::fs::read(output).unwrap();
    let v = verify(&data, VerifyOptions { require_trailer: r.trailer_out.is_some() });
    assert!(v.is_ok(), "verify {}: {:#?}", output.display(), v.findings);
    let db = Db::open(trailer::split(&data).0).unwrap();
    let c = db.check();
    assert!(c.is_ok(), "bolt check of {}: {:?}", output.display(), c.problems);
    assert_eq!(r.status, status(&db).unwrap());
    assert_eq!(r.hashkv, hash_kv(&db, 0, TombstoneRule::Skip).unwrap());
    assert_eq!(r.status.revision, r.new_revision);
    r
}

/// Every `key` bucket entry of `path`: (bucket key, user key; empty for a marker).
fn key_entries(path: &Path) -> Vec<(BucketKey, Vec<u8>)> {
    let data = std::fs::read(path).unwrap();
    let db = Db::open(trailer::split(&data).0).unwrap();
    let b = db.bucket(&[KEY]).unwrap().unwrap();
    b.cursor()
        .map(|e| e.unwrap())
        .map(|e| {
            let key = if e.value.is_empty() { Vec::new() } else { KvRef::parse(e.value).unwrap().key.to_vec() };
            (BucketKey::parse(e.key).unwrap(), key)
        })
        .collect()
}

fn drop_keys(keys: &[&[u8]]) -> KeyRules {
    KeyRules { drop_keys: keys.iter().map(|k| k.to_vec()).collect(), ..KeyRules::default() }
}

fn exclude(prefixes: &[&[u8]]) -> KeyRules {
    KeyRules { exclude: prefixes.iter().map(|k| k.to_vec()).collect(), ..KeyRules::default() }
}

/// The drop cases of a fixture: (name, options).
fn cases(v: &str) -> Vec<(String, RewriteOptions)> {
    let entries = key_entries(&snapshot(v));
    let users: Vec<&Vec<u8>> = entries.iter().map(|(_, k)| k).filter(|k| !k.is_empty()).collect();
    let count = |pred: &dyn Fn(&[u8]) -> bool| users.iter().filter(|k| pred(k)).count();
    // One key: a key of the middle of history that is not compact_rev_key.
    let one = users.iter().skip(users.len() / 2).find(|k| k.as_slice() != b"compact_rev_key").unwrap();
    // A prefix with a handful of keys: the middle key less its last byte.
    let prefix = &one[..one.len() - 1];
    let n = count(&|k| k.starts_with(prefix));
    assert!((2..=60).contains(&n), "{v}: prefix {} matches {n} entries", String::from_utf8_lossy(prefix));
    let first = users.first().unwrap();
    let last = entries.iter().rev().find(|(_, k)| !k.is_empty()).unwrap();
    assert_eq!(last.0.rev, entries.last().unwrap().0.rev, "{v}: the last entry is a put or delete");
    let base = RewriteOptions::default();
    let bump = RewriteOptions { bump_revision: Some(1_000_000_000), mark_compacted: true, ..Default::default() };
    let mut out = vec![
        ("one key".to_string(), RewriteOptions { rules: drop_keys(&[one]), ..base.clone() }),
        ("one key, bump".to_string(), RewriteOptions { rules: exclude(&[one]), ..bump.clone() }),
        ("a prefix".to_string(), RewriteOptions { rules: exclude(&[prefix]), ..base.clone() }),
        ("first and last".to_string(), RewriteOptions { rules: drop_keys(&[first, &last.1]), ..base.clone() }),
        ("first and last, bump".to_string(), RewriteOptions { rules: drop_keys(&[first, &last.1]), ..bump.clone() }),
    ];
    if users.iter().any(|k| k.as_slice() == b"compact_rev_key") {
        out.push(("compact_rev_key".into(), RewriteOptions { rules: drop_keys(&[b"compact_rev_key"]), ..base }));
        out.push(("compact_rev_key, bump".into(), RewriteOptions { rules: drop_keys(&[b"compact_rev_key"]), ..bump }));
    }
    out
}

#[test]
fn small_drops_are_patched_and_hold_what_the_rebuild_holds() {
    for v in VERSIONS {
        let dir = scratch(v);
        let input = snapshot(v);
        let in_data = std::fs::read(&input).unwrap();
        let hwm = Db::open(trailer::split(&in_data).0).unwrap().hwm();
        for (name, opts) in cases(v) {
            let file = name.replace([' ', ','], "-");
            let (p, p2, r) =
                (dir.join(format!("{file}-p.db")), dir.join(format!("{file}-p2.db")), dir.join(format!("{file}-r.db")));
            let rp = run_ok(&input, &p, &opts);
            let rr = run_ok(&input, &r, &RewriteOptions { rebuild: true, ..opts.clone() });
            let OutputLayout::Patched { replaced, .. } = rp.layout else { panic!("{v} {name}: {:?}", rp.layout) };
            assert!(replaced >= 2 && replaced * 8 <= hwm, "{v} {name}: {replaced} of {hwm} pages");
            assert_eq!(rr.layout, OutputLayout::Rebuilt, "{v} {name}");
            assert!(rp.revisions_filtered > 0, "{v} {name}: drops something");
            run_ok(&input, &p2, &opts);
            assert!(std::fs::read(&p).unwrap() == std::fs::read(&p2).unwrap(), "{v} {name}: deterministic");
            assert!(contents(&p) == contents(&r), "{v} {name}: patched and rebuilt hold the same");
            assert_eq!(rp.hashkv, rr.hashkv, "{v} {name}");
            assert_eq!(
                Status { total_size: 0, ..rp.status.clone() },
                Status { total_size: 0, ..rr.status.clone() },
                "{v} {name}"
            );
            // The same counts and decisions.
            let counts = |r: &RewriteReport| {
                (
                    (r.revisions_read, r.revisions_kept, r.revisions_filtered, r.tombstones),
                    (
                        r.markers_written.clone(),
                        r.old_revision,
                        r.new_revision,
                        r.scheduled_compact,
                        r.finished_compact,
                    ),
                    (r.leases_read, r.leases_kept, r.leases_orphaned, r.rules.clone(), r.compact_rev_key),
                    r.encrypted.clone(),
                )
            };
            assert_eq!(counts(&rp), counts(&rr), "{v} {name}");
            // The input's pages are carried: everything below its high-water
            // mark but the two meta pages is the input's.
            let out = std::fs::read(&p).unwrap();
            let end = hwm as usize * 4096;
            assert!(in_data[8192..end] == out[8192..end], "{v} {name}: carried pages");
            go_check(&p);
        }
    }
}

/// Drops past the threshold (a tenant's third of the keys) are rebuilt.
#[test]
fn large_drops_are_rebuilt() {
    for v in ["3.5.35", "3.6.16"] {
        let dir = scratch(&format!("large-{v}"));
        for (name, rules) in [
            (
                "exclude a tenant",
                KeyRules { keep_keys: vec![b"compact_rev_key".to_vec()], ..exclude(&[b"/tenant-1/"]) },
            ),
            (
                "include a tenant",
                KeyRules {
                    include: vec![b"/tenant-2/".to_vec()],
                    keep_keys: vec![b"compact_rev_key".to_vec()],
                    ..KeyRules::default()
                },
            ),
        ] {
            let opts = RewriteOptions { rules, allow_empty_rules: true, ..Default::default() };
            let r = run_ok(&snapshot(v), &dir.join("out.db"), &opts);
            assert_eq!(r.layout, OutputLayout::Rebuilt, "{v} {name}");
        }
    }
}

/// More dropped entries than [`MAX_PATCHED_DROPS`] are rebuilt even when they
/// sit in few leaves; one fewer is patched.
#[test]
fn the_drop_cap_bounds_patched_drops() {
    let v = "3.5.35";
    let dir = scratch("cap");
    let latest = key_entries(&snapshot(v)).last().unwrap().0.rev.main;
    // The fixture with many puts of two keys after its history, and a large
    // bucket of padding so that their leaves are few of the file's pages.
    let input = dir.join("input.db");
    // `/cap/over` has one entry more than the cap, `/cap/under` the cap.
    assert_eq!(max_patched_drops(4096), MAX_PATCHED_DROPS);
    assert_eq!(max_patched_drops(65536), 256, "16 MiB of 64 KiB leaves");
    let (over, under) = (MAX_PATCHED_DROPS as i64 + 1, MAX_PATCHED_DROPS as i64);
    let mut b = copy_fixture(v, &input, |name, b| {
        if name == KEY {
            for i in 0..over + under {
                let main = latest + 1 + i;
                let key: &[u8] = if i < over { b"/cap/over" } else { b"/cap/under" };
                let version = if i < over { i + 1 } else { i - over + 1 };
                let raw = BucketKey { rev: Revision::new(main, 0), tombstone: false }.to_bytes();
                b.put(&raw, &kv_bytes(key, main - version + 1, main, version, b"")).unwrap();
            }
        }
    });
    b.create_bucket(b"zz-padding", 0).unwrap();
    for i in 0u32..40_000 {
        b.put(&i.to_be_bytes(), &[7u8; 100]).unwrap();
    }
    b.close_bucket().unwrap();
    b.finish().unwrap();
    let drop = |k: &[u8]| RewriteOptions { rules: drop_keys(&[k]), ..Default::default() };
    let r = run_ok(&input, &dir.join("over.db"), &drop(b"/cap/over"));
    assert_eq!((r.layout, r.revisions_filtered), (OutputLayout::Rebuilt, over as u64), "past the cap");
    let r = run_ok(&input, &dir.join("under.db"), &drop(b"/cap/under"));
    assert!(matches!(r.layout, OutputLayout::Patched { .. }), "at the cap: {:?}", r.layout);
    assert_eq!(r.revisions_filtered, under as u64);
    assert_eq!(r.markers_written.len(), 1, "the latest revision is kept by a marker");
    assert!(
        contents(&dir.join("under.db"))
            == contents(&{
                let p = dir.join("under-r.db");
                run_ok(&input, &p, &RewriteOptions { rebuild: true, ..drop(b"/cap/under") });
                p
            })
    );
    go_check(&dir.join("under.db"));
}
