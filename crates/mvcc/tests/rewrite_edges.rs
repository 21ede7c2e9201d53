//! Edge cases of the snapshot rewrite on the committed fixtures (etcd 3.4.23 and
//! 3.5.1): rewriting a rewritten output again, offline compaction in the middle
//! of history, a filter that drops every key, renames that overlap or collide
//! through a second rule, renames to the empty prefix, page sizes, and
//! tombstones under a rename. Library level: no etcd is started.
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
use etcdsnap_keys::{KeyRules, Rename};
use etcdsnap_mvcc::hashkv::{hash_kv, TombstoneRule};
use etcdsnap_mvcc::keyspace::{all_revisions, at_revision, Selection};
use etcdsnap_mvcc::kv::KvRef;
use etcdsnap_mvcc::revision::{BucketKey, Revision};
use etcdsnap_mvcc::rewrite::{rewrite, NoProgress, RewriteOptions, RewriteReport};
use etcdsnap_mvcc::schema::{AUTH_ROLES, KEY};
use etcdsnap_mvcc::status::status;
use etcdsnap_mvcc::trailer;
use etcdsnap_mvcc::verify::{verify, VerifyOptions};
use etcdsnap_mvcc::MvccError;
use etcdsnap_proto::{authpb, Message};
use support::{contents, copy_fixture, kv_bytes, snapshot};

const VERSIONS: [&str; 5] = ["3.4.23", "3.5.1", "3.5.35", "3.6.16", "3.7.3"];
const OLD_LATEST: i64 = 1473;
const OLD_COMPACT: i64 = 1147;

fn scratch(name: &str) -> PathBuf {
    support::scratch("mvcc-rewrite-edges", name)
}

fn rules(include: &[&str], keep: &[&str], drop: &[&str], rename: &[&str]) -> KeyRules {
    let v = |s: &[&str]| s.iter().map(|s| s.as_bytes().to_vec()).collect();
    KeyRules {
        include: v(include),
        exclude: Vec::new(),
        keep_keys: v(keep),
        drop_keys: v(drop),
        renames: rename.iter().map(|r| Rename::parse(r).unwrap()).collect(),
    }
}

/// Tests write several outputs to one path: replacing them is allowed here.
fn run(input: &Path, output: &Path, opts: &RewriteOptions) -> Result<RewriteReport, MvccError> {
    // Every run also reads its output back (`verify_output`): a figure observed
    // while writing that differs from the file fails the rewrite itself.
    let opts = RewriteOptions {
        output: CreateOptions { overwrite: true, remove_stale: false },
        verify_output: true,
        ..opts.clone()
    };
    rewrite(input, output, &opts, &mut NoProgress)
}

/// A rewrite that must succeed, with an output that verifies clean (trailer
/// required when one was written), passes the bolt check, and whose report
/// figures are the output's.
fn run_ok(input: &Path, output: &Path, opts: &RewriteOptions) -> RewriteReport {
    let r = run(input, output, opts).unwrap_or_else(|e| panic!("rewrite {}: {e}", input.display()));
    let data = std::fs::read(output).unwrap();
    let v = verify(&data, VerifyOptions { require_trailer: r.trailer_out.is_some() });
    assert!(v.is_ok(), "verify {}: {:#?}", output.display(), v.findings);
    let db = Db::open(trailer::split(&data).0).unwrap();
    assert!(db.check().is_ok(), "bolt check of {}", output.display());
    assert_eq!(r.status, status(&db).unwrap());
    assert_eq!(r.hashkv, hash_kv(&db, 0, TombstoneRule::Skip).unwrap());
    assert_eq!(r.status.revision, r.new_revision);
    assert!(r.new_revision >= r.old_revision);
    r
}

/// A refusal: an error, and no output file.
fn run_err(input: &Path, output: &Path, opts: &RewriteOptions) -> String {
    let e = match run(input, output, opts) {
        Ok(r) => panic!("rewrite of {} succeeded but should fail: {r:?}", input.display()),
        Err(e) => e.to_string(),
    };
    assert!(!output.exists(), "{} exists after a refused rewrite ({e})", output.display());
    e
}

/// The key space at `rev` (0: latest), owned: (revision read, [(key, create, mod, version, value, lease)]).
type Kv = (Vec<u8>, i64, i64, i64, Vec<u8>, i64);

fn owned(kv: &KvRef<'_>) -> Kv {
    (kv.key.to_vec(), kv.create_revision, kv.mod_revision, kv.version, kv.value.to_vec(), kv.lease)
}

fn keyspace(path: &Path, rev: i64) -> Result<(i64, Vec<Kv>), MvccError> {
    let data = std::fs::read(path).unwrap();
    let db = Db::open(trailer::split(&data).0).unwrap();
    at_revision(&db, rev, &Selection::default()).map(|ks| (ks.rev(), ks.iter().map(|x| owned(&x.kv)).collect()))
}

/// Every `key` bucket entry: (bucket key, raw value).
fn entries(path: &Path) -> Vec<(BucketKey, Vec<u8>)> {
    let data = std::fs::read(path).unwrap();
    let db = Db::open(trailer::split(&data).0).unwrap();
    let b = db.bucket(&[KEY]).unwrap().unwrap();
    b.cursor().map(|e| e.unwrap()).map(|e| (BucketKey::parse(e.key).unwrap(), e.value.to_vec())).collect()
}

fn markers(path: &Path) -> Vec<Revision> {
    entries(path).into_iter().filter(|(_, v)| v.is_empty()).map(|(k, _)| k.rev).collect()
}

// ---------------------------------------------------------------------------

/// (1) bump 1000 + mark-compacted, then bump 1000 again, then --compact: the
/// revision keeps rising, the first run's marker and scheduled compaction are
/// carried, the final compaction drops the older marker as etcd's would, and
/// the key space at latest never changes.
#[test]
fn rewrite_of_a_rewrite() {
    for v in VERSIONS {
        let dir = scratch(&format!("chain-{v}"));
        let (a, b, c) = (dir.join("a.db"), dir.join("b.db"), dir.join("c.db"));
        let (_, want) = keyspace(&snapshot(v), 0).unwrap();

        let ra = run_ok(
            &snapshot(v),
            &a,
            &RewriteOptions { bump_revision: Some(1000), mark_compacted: true, ..RewriteOptions::default() },
        );
        assert_eq!(ra.new_revision, OLD_LATEST + 1000);
        assert_eq!((ra.scheduled_compact, ra.finished_compact), (Some(OLD_LATEST + 1000), Some(OLD_COMPACT)));
        assert_eq!(markers(&a), vec![Revision::new(OLD_LATEST + 1000, 0)]);

        let rb = run_ok(&a, &b, &RewriteOptions { bump_revision: Some(1000), ..RewriteOptions::default() });
        assert_eq!(rb.old_revision, OLD_LATEST + 1000);
        assert_eq!(rb.new_revision, OLD_LATEST + 2000, "new latest = previous latest + N");
        assert_eq!(rb.markers_written, vec![Revision::new(OLD_LATEST + 2000, 0)]);
        assert_eq!(rb.revisions_kept, rb.revisions_read + 1, "the first run's marker is carried");
        assert_eq!(markers(&b), vec![Revision::new(OLD_LATEST + 1000, 0), Revision::new(OLD_LATEST + 2000, 0)]);
        assert_eq!(
            (rb.scheduled_compact, rb.finished_compact),
            (Some(OLD_LATEST + 1000), Some(OLD_COMPACT)),
            "the first run's scheduled compaction is carried"
        );
        assert_eq!(rb.hashkv.compact_revision, OLD_LATEST + 1000);
        // Compacting below the compaction the first run scheduled is refused.
        let bad = dir.join("bad.db");
        let e =
            run_err(&b, &bad, &RewriteOptions { compact: Some(Some(OLD_LATEST + 999)), ..RewriteOptions::default() });
        assert!(e.contains("compacted"), "{e}");

        let rc = run_ok(&b, &c, &RewriteOptions { compact: Some(None), ..RewriteOptions::default() });
        assert_eq!(rc.new_revision, OLD_LATEST + 2000);
        assert!(rc.markers_written.is_empty());
        assert_eq!(markers(&c), vec![Revision::new(OLD_LATEST + 2000, 0)], "etcd's compaction keeps the newest marker");
        assert_eq!((rc.scheduled_compact, rc.finished_compact), (Some(OLD_LATEST + 2000), Some(OLD_LATEST + 2000)));
        // The same entries are hashed whether etcd compacts B at start (at 2473) or
        // we compacted offline at 3473: only the compact revision differs.
        assert_eq!(rc.hashkv.hash, rb.hashkv.hash);

        for (name, p) in [("a", &a), ("b", &b), ("c", &c)] {
            let (_, got) = keyspace(p, 0).unwrap();
            assert_eq!(got, want, "{v} {name}: key space at latest");
        }
        // Reads below the compaction fail on the compacted output.
        assert!(matches!(keyspace(&c, OLD_LATEST), Err(MvccError::Compacted { .. })));
    }
}

/// (2) --compact at 1300 in the middle of history: reads at 1300 ..= latest are the
/// input's, every entry above 1300 is kept byte for byte, and 1299 is compacted.
#[test]
fn compact_in_the_middle() {
    for v in VERSIONS {
        let dir = scratch(&format!("mid-{v}"));
        let out = dir.join("out.db");
        let at = 1300;
        let r = run_ok(&snapshot(v), &out, &RewriteOptions { compact: Some(Some(at)), ..RewriteOptions::default() });
        assert_eq!(r.new_revision, OLD_LATEST);
        assert_eq!((r.scheduled_compact, r.finished_compact), (Some(at), Some(at)));
        assert_eq!(r.hashkv.compact_revision, at);
        assert!(r.revisions_compacted > 0);
        for rev in at..=OLD_LATEST {
            assert_eq!(keyspace(&out, rev).unwrap(), keyspace(&snapshot(v), rev).unwrap(), "{v}: key space at {rev}");
        }
        assert_eq!(keyspace(&out, 0).unwrap(), keyspace(&snapshot(v), 0).unwrap());
        match keyspace(&out, at - 1) {
            Err(MvccError::Compacted { rev, compact }) => assert_eq!((rev, compact), (at - 1, at)),
            other => panic!("{v}: read at {} on the compacted output: {other:?}", at - 1),
        }
        let (ei, eo) = (entries(&snapshot(v)), entries(&out));
        let above =
            |e: &Vec<(BucketKey, Vec<u8>)>| e.iter().filter(|(k, _)| k.rev.main > at).cloned().collect::<Vec<_>>();
        assert_eq!(above(&eo), above(&ei), "{v}: every revision above the compaction kept");
        assert_eq!(eo.len() as u64, r.revisions_kept);
        assert_eq!(r.revisions_kept + r.revisions_compacted, r.revisions_read);

        // Compacting at a tombstone's revision: the deleted key is gone at it and after.
        let tomb =
            ei.iter().filter(|(k, _)| k.tombstone && k.rev.main > OLD_COMPACT + 1).map(|(k, _)| k.rev.main).next();
        let tomb = tomb.expect("fixture: a delete after the compaction");
        let out = dir.join("tomb.db");
        let r = run_ok(&snapshot(v), &out, &RewriteOptions { compact: Some(Some(tomb)), ..RewriteOptions::default() });
        assert_eq!(r.finished_compact, Some(tomb));
        for rev in [tomb, tomb + 1, OLD_LATEST] {
            assert_eq!(keyspace(&out, rev).unwrap(), keyspace(&snapshot(v), rev).unwrap(), "{v}: at {rev}");
        }
    }
}

/// A bump is bounded so that at least 2^62 revisions stay free above the new latest.
#[test]
fn bump_keeps_revision_headroom() {
    let v = VERSIONS[0];
    let dir = scratch(&format!("headroom-{v}"));
    let max = i64::MAX - (1i64 << 62) - OLD_LATEST;
    let out = dir.join("max.db");
    let r = run_ok(&snapshot(v), &out, &RewriteOptions { bump_revision: Some(max), ..RewriteOptions::default() });
    assert_eq!(r.new_revision, (1i64 << 62) - 1);
    for n in [max + 1, i64::MAX - OLD_LATEST, i64::MAX] {
        let e = run_err(
            &snapshot(v),
            &dir.join("over.db"),
            &RewriteOptions { bump_revision: Some(n), ..Default::default() },
        );
        assert!(e.contains("2^62") && e.contains(&format!("at most {max}")), "{e}");
    }
}

/// An existing output is refused unless replacing it is allowed, and left as it was.
#[test]
fn existing_output_is_refused_by_default() {
    let v = VERSIONS[0];
    let dir = scratch(&format!("exists-{v}"));
    let out = dir.join("out.db");
    std::fs::write(&out, b"keep me").unwrap();
    let e = rewrite(&snapshot(v), &out, &RewriteOptions::default(), &mut NoProgress).unwrap_err().to_string();
    assert!(e.contains("out.db: output file exists"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
}

/// (3) A filter that drops every key: only the marker at the old latest revision.
#[test]
fn filter_drops_everything() {
    for v in VERSIONS {
        let dir = scratch(&format!("nothing-{v}"));
        let base =
            RewriteOptions { rules: rules(&["/nothing/"], &[], &["compact_rev_key"], &[]), ..Default::default() };
        // A prefix that matches nothing is refused by default (a typo keeps almost nothing).
        let e = run_err(&snapshot(v), &dir.join("refused.db"), &base);
        assert!(e.contains("--include /nothing/ matched no key in 1217 stored revisions"), "{e}");
        let base = RewriteOptions { allow_empty_rules: true, ..base };
        for (name, opts) in [
            ("plain", base.clone()),
            ("compact", RewriteOptions { compact: Some(None), ..base.clone() }),
            ("leases", RewriteOptions { drop_orphan_leases: true, ..base.clone() }),
        ] {
            let out = dir.join(format!("{name}.db"));
            let r = run_ok(&snapshot(v), &out, &opts);
            assert_eq!(r.new_revision, OLD_LATEST, "{v} {name}");
            assert_eq!(r.markers_written, vec![Revision::new(OLD_LATEST, 0)]);
            assert_eq!(r.revisions_kept, 1);
            assert_eq!(r.revisions_filtered + r.revisions_compacted, r.revisions_read);
            assert_eq!(r.status.live_keys, 0);
            assert_eq!(
                entries(&out),
                vec![(BucketKey { rev: Revision::new(OLD_LATEST, 0), tombstone: false }, vec![])]
            );
            let (rev, keys) = keyspace(&out, 0).unwrap();
            assert_eq!((rev, keys), (OLD_LATEST, vec![]));
            if name == "leases" {
                assert_eq!((r.leases_kept, r.leases_dropped), (0, 4));
            }
        }
    }
}

/// (4) Renames whose targets fall among other kept keys without hitting one are
/// fine; a collision made by a second rule is refused naming both keys.
#[test]
fn overlapping_renames() {
    for v in VERSIONS {
        let dir = scratch(&format!("overlap-{v}"));
        let out = dir.join("out.db");
        let from = "/tenant-1/registry/configmaps/default/";
        let to = "/tenant-1/registry/configmaps/frontend/";
        let opts = RewriteOptions {
            rules: rules(&["/tenant-1/"], &["compact_rev_key"], &[], &[&format!("{from}={to}")]),
            ..Default::default()
        };
        let r = run_ok(&snapshot(v), &out, &opts);
        assert!(r.revisions_renamed > 0);
        let (_, input) = keyspace(&snapshot(v), 0).unwrap();
        let mut want: Vec<Kv> = input
            .into_iter()
            .filter(|kv| kv.0.starts_with(b"/tenant-1/") || kv.0 == b"compact_rev_key")
            .map(|mut kv| {
                if let Some(rest) = kv.0.strip_prefix(from.as_bytes()) {
                    kv.0 = [to.as_bytes(), rest].concat();
                }
                kv
            })
            .collect();
        want.sort();
        let (_, got) = keyspace(&out, 0).unwrap();
        assert_eq!(got, want, "{v}: renamed key space");

        // configmap-defa-0 and deployment-defa-0 both become /c/defa-0.
        let opts = RewriteOptions {
            rules: rules(
                &["/tenant-1/"],
                &["compact_rev_key"],
                &[],
                &[
                    "/tenant-1/registry/configmaps/default/configmap-=/c/",
                    "/tenant-1/registry/deployments/default/deployment-=/c/",
                ],
            ),
            ..Default::default()
        };
        let e = run_err(&snapshot(v), &dir.join("collide.db"), &opts);
        assert!(e.contains("rename collision"), "{e}");
        assert!(e.contains("/tenant-1/registry/configmaps/default/configmap-defa-"), "{e}");
        assert!(e.contains("/tenant-1/registry/deployments/default/deployment-defa-"), "{e}");
    }
}

/// A raw db: the fixture with `extra` appended to its `key` bucket and `roles` to its roles.
fn with_extra(v: &str, out: &Path, extra: &[(BucketKey, Vec<u8>)], roles: &[authpb::Role]) {
    let b = copy_fixture(v, out, |name, b| {
        if name == KEY {
            for (k, val) in extra {
                b.put(&k.to_bytes(), val).unwrap();
            }
        }
        if name == AUTH_ROLES {
            for role in roles {
                b.put(&role.name, &role.encode_to_vec()).unwrap();
            }
        }
    });
    b.finish().unwrap();
    let r = verify(&std::fs::read(out).unwrap(), VerifyOptions::default());
    assert!(r.is_ok(), "constructed input: {:#?}", r.findings);
}

fn put(main: i64) -> BucketKey {
    BucketKey { rev: Revision::new(main, 0), tombstone: false }
}

/// (5) `--rename /tenant-1/=`: keys lose the prefix; a key equal to FROM would
/// become the empty key, which etcd rejects (and which its index would merge with
/// the revision markers): refused before anything is written.
#[test]
fn rename_to_empty_prefix() {
    for v in VERSIONS {
        let dir = scratch(&format!("empty-{v}"));
        let out = dir.join("out.db");
        let opts = RewriteOptions { rules: rules(&[], &[], &[], &["/tenant-1/="]), ..Default::default() };
        let r = run_ok(&snapshot(v), &out, &opts);
        assert!(r.revisions_renamed > 0);
        let (_, got) = keyspace(&out, 0).unwrap();
        assert!(got.iter().any(|kv| kv.0.starts_with(b"registry/configmaps/")));
        assert!(got.iter().all(|kv| !kv.0.starts_with(b"/tenant-1/") && !kv.0.is_empty()));
        // The role's /tenant-1/ prefix permission now covers every key: etcd
        // refuses an empty permission key and writes "all keys" as ["\0", "\0").
        let data = std::fs::read(&out).unwrap();
        let db = Db::open(trailer::split(&data).0).unwrap();
        let roles = db.bucket(&[AUTH_ROLES]).unwrap().unwrap();
        let mut seen = false;
        for e in roles.cursor() {
            let e = e.unwrap();
            let role = authpb::Role::decode(e.value).unwrap();
            for p in &role.key_permission {
                assert!(valid_permission_range(&p.key, &p.range_end), "{v}: role {:?}: {p:?}", role.name);
            }
            if e.key == b"tenant1-rw" {
                assert_eq!(role.key_permission.len(), 1);
                assert_eq!(
                    (&role.key_permission[0].key[..], &role.key_permission[0].range_end[..]),
                    (&b"\0"[..], &b"\0"[..])
                );
                seen = true;
            }
        }
        assert!(seen, "fixture: role tenant1-rw");

        // An input holding the key "/tenant-1/" itself (put at 1474, deleted at 1475).
        let input = dir.join("with-exact.db");
        with_extra(
            v,
            &input,
            &[
                (put(OLD_LATEST + 1), kv_bytes(b"/tenant-1/", OLD_LATEST + 1, OLD_LATEST + 1, 1, b"x")),
                (
                    BucketKey { rev: Revision::new(OLD_LATEST + 2, 0), tombstone: true },
                    kv_bytes(b"/tenant-1/", 0, 0, 0, b""),
                ),
            ],
            &[],
        );
        let e = run_err(&input, &dir.join("exact.db"), &opts);
        assert!(e.contains("empty key") && e.contains("/tenant-1/"), "{e}");
        // Filtered out, it is no obstacle.
        let opts = RewriteOptions { rules: rules(&[], &[], &["/tenant-1/"], &["/tenant-1/="]), ..Default::default() };
        let r = run(&input, &dir.join("exact-dropped.db"), &opts).unwrap();
        assert_eq!(r.new_revision, OLD_LATEST + 2);
        let vr = verify(&std::fs::read(dir.join("exact-dropped.db")).unwrap(), VerifyOptions::default());
        assert!(vr.is_ok(), "{:#?}", vr.findings);

        // A single-key permission on "/tenant-1/" itself would name the empty key: refused.
        let input = dir.join("with-role.db");
        let perm = authpb::Permission { perm_type: 0, key: b"/tenant-1/".to_vec(), range_end: Vec::new() };
        with_extra(v, &input, &[], &[authpb::Role { name: b"zz-single".to_vec(), key_permission: vec![perm] }]);
        let opts = RewriteOptions { rules: rules(&[], &[], &[], &["/tenant-1/="]), ..Default::default() };
        let e = run_err(&input, &dir.join("role.db"), &opts);
        assert!(e.contains("empty key") && e.contains("zz-single") && e.contains("/tenant-1/"), "{e}");
    }
}

/// etcd's `isValidPermissionRange` (server/auth/range_perm_cache.go).
fn valid_permission_range(key: &[u8], end: &[u8]) -> bool {
    !key.is_empty() && (end.is_empty() || key < end || end == b"\0")
}

/// (6) Page sizes: 1 KiB, 4 KiB and 16 KiB outputs all verify clean and have the
/// same (layout-independent) status hash, key space and HashKV.
#[test]
fn page_sizes() {
    for v in VERSIONS {
        let dir = scratch(&format!("pages-{v}"));
        let opts = RewriteOptions {
            rules: rules(&["/tenant-1/"], &["compact_rev_key"], &[], &["/tenant-1/registry/=/registry/"]),
            bump_revision: Some(1000),
            mark_compacted: true,
            ..Default::default()
        };
        let mut reports = Vec::new();
        for ps in [1024u32, 4096, 16384, 65536] {
            let out = dir.join(format!("{ps}.db"));
            let r = run_ok(&snapshot(v), &out, &RewriteOptions { page_size: Some(ps), ..opts.clone() });
            assert_eq!(r.status.page_size, ps as usize);
            let data = std::fs::read(&out).unwrap();
            assert_eq!((data.len() - 32) % ps as usize, 0, "{v} {ps}: whole pages + trailer");
            reports.push((ps, r, keyspace(&out, 0).unwrap()));
        }
        let (_, r0, k0) = &reports[1];
        for (ps, r, k) in &reports {
            assert_eq!(r.status.hash, r0.status.hash, "{v} {ps}: status hash");
            assert_eq!(r.hashkv, r0.hashkv, "{v} {ps}: hashkv");
            assert_eq!((r.status.revisions, r.status.live_keys), (r0.status.revisions, r0.status.live_keys));
            assert_eq!(k, k0, "{v} {ps}: key space");
        }
    }
}

/// (7) Tombstones under a renamed prefix are stored under the new key, with the
/// same revisions, and still end the key's generation.
#[test]
fn tombstones_follow_renames() {
    for v in VERSIONS {
        let dir = scratch(&format!("tomb-{v}"));
        let out = dir.join("out.db");
        let opts = RewriteOptions {
            rules: rules(&["/tenant-1/"], &["compact_rev_key"], &[], &["/tenant-1/registry/=/moved/"]),
            ..Default::default()
        };
        run_ok(&snapshot(v), &out, &opts);
        let (di, dout) = (std::fs::read(snapshot(v)).unwrap(), std::fs::read(&out).unwrap());
        let (dbi, dbo) = (Db::open(trailer::split(&di).0).unwrap(), Db::open(trailer::split(&dout).0).unwrap());
        let sel = |p: &str| Selection { prefix: p.as_bytes().to_vec(), key: None };
        let tin = all_revisions(&dbi, &sel("/tenant-1/registry/")).unwrap();
        let tout = all_revisions(&dbo, &sel("/moved/")).unwrap();
        assert_eq!(tin.len(), tout.len());
        assert!(all_revisions(&dbo, &sel("/tenant-1/registry/")).unwrap().is_empty());
        let mut tombstones = 0;
        for (i, o) in tin.iter().zip(&tout) {
            assert_eq!(i.at, o.at, "{v}: revision and tombstone mark carried");
            assert_eq!(o.kv.key, [&b"/moved/"[..], &i.kv.key[b"/tenant-1/registry/".len()..]].concat());
            tombstones += u64::from(o.at.tombstone);
            if o.at.tombstone {
                let k = o.kv.key.to_vec();
                let visible = |db: &Db<'_>, key: &[u8]| {
                    let s = Selection { prefix: Vec::new(), key: Some(key.to_vec()) };
                    at_revision(db, o.at.rev.main, &s).unwrap().len()
                };
                assert_eq!(visible(&dbo, &k), 0, "{v}: deleted at {}", o.at.rev);
                assert_eq!(visible(&dbi, i.kv.key), 0);
            }
        }
        assert!(tombstones > 0, "fixture: tenant 1 deletes keys");
    }
}

/// The input's trailer is checked while the output is being written: a
/// snapshot whose SHA-256 does not match (one value byte changed, structure
/// intact) is refused, and neither the output nor a temporary file remains.
#[test]
fn trailer_mismatch_discards_the_written_output() {
    for v in VERSIONS {
        let dir = scratch(&format!("mismatch-{v}"));
        let mut data = std::fs::read(snapshot(v)).unwrap();
        // The last byte of the latest value in the `key` bucket: a value byte,
        // so only the trailer can tell.
        let last = entries(&snapshot(v)).into_iter().rev().find(|(_, val)| !val.is_empty()).unwrap().1;
        let at = data.windows(last.len()).rposition(|w| w == last.as_slice()).unwrap() + last.len() - 1;
        data[at] ^= 0x01;
        let input = dir.join("damaged.db");
        std::fs::write(&input, &data).unwrap();
        let out = dir.join("out.db");
        let e = run_err(
            &input,
            &out,
            &RewriteOptions { bump_revision: Some(10), mark_compacted: true, ..Default::default() },
        );
        assert!(e.contains("trailer") || e.contains("SHA-256"), "{v}: {e}");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("damaged.db")], "{v}: only the input remains");
    }
}

/// Edits that keep every page are patched copy-on-write: the output carries
/// the input's pages, holds exactly what the full rebuild of the same edit
/// holds (every bucket, sequence, key and value), reports the same figures
/// but its size, and is byte-identical from run to run. Bump, mark-compacted,
/// target version and no edit at all, on every version's fixture.
#[test]
fn patch_and_rebuild_hold_the_same() {
    use etcdsnap_mvcc::rewrite::OutputLayout;
    use etcdsnap_mvcc::schema::EtcdLine;
    for v in VERSIONS {
        let dir = scratch(&format!("patch-{v}"));
        let mut cases = vec![
            ("none", RewriteOptions::default()),
            ("bump", RewriteOptions { bump_revision: Some(1_000_000), mark_compacted: true, ..Default::default() }),
            ("mark", RewriteOptions { mark_compacted: true, ..Default::default() }),
        ];
        if matches!(v, "3.6.16" | "3.7.3") {
            let t = if v == "3.7.3" { EtcdLine::V3_6 } else { EtcdLine::V3_5 };
            cases.push((
                "target",
                RewriteOptions { target_version: Some(t), bump_revision: Some(10), ..Default::default() },
            ));
        }
        for (name, opts) in cases {
            let (p, p2, r) =
                (dir.join(format!("{name}-p.db")), dir.join(format!("{name}-p2.db")), dir.join(format!("{name}-r.db")));
            let rp = run_ok(&snapshot(v), &p, &opts);
            run_ok(&snapshot(v), &p2, &opts);
            let rr = run_ok(&snapshot(v), &r, &RewriteOptions { rebuild: true, ..opts.clone() });
            assert!(
                matches!(rp.layout, OutputLayout::Patched { replaced, .. } if replaced >= 1),
                "{v} {name}: {:?}",
                rp.layout
            );
            assert_eq!(rr.layout, OutputLayout::Rebuilt, "{v} {name}");
            assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(&p2).unwrap(), "{v} {name}: deterministic");
            assert_eq!(contents(&p), contents(&r), "{v} {name}: patched and rebuilt hold the same");
            assert_eq!(rp.hashkv, rr.hashkv, "{v} {name}");
            assert_eq!(
                etcdsnap_mvcc::status::Status { total_size: 0, ..rp.status.clone() },
                etcdsnap_mvcc::status::Status { total_size: 0, ..rr.status.clone() },
                "{v} {name}"
            );
            // The input's pages are carried: everything below its high-water
            // mark but the two meta pages is the input's.
            let (input, out) = (std::fs::read(snapshot(v)).unwrap(), std::fs::read(&p).unwrap());
            let hwm = Db::open(trailer::split(&input).0).unwrap().hwm() as usize * 4096;
            assert_eq!(input[8192..hwm], out[8192..hwm], "{v} {name}: carried pages");
        }
    }
}
