//! Our figures against the ones real etcd produced for the committed fixtures
//! (recorded by tools/gen-fixtures.py from the live server and from
//! etcdutl/etcdctl `snapshot status`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::path::{Path, PathBuf};

use base64::Engine;
use etcdsnap_bolt::Db;
use etcdsnap_mvcc::hashkv::{hash_kv, TombstoneRule};
use etcdsnap_mvcc::keyspace::{at_revision, Selection};
use etcdsnap_mvcc::status::status;
use etcdsnap_mvcc::trailer;
use etcdsnap_mvcc::verify::{verify, VerifyOptions};
use serde_json::Value;

fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let v: Vec<PathBuf> = ["etcd-3.4.23", "etcd-3.5.1", "etcd-3.5.35", "etcd-3.6.16", "etcd-3.7.3"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    assert!(v.iter().all(|d| d.join("snapshot.db").exists()));
    v
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or("")).unwrap()
}

#[test]
fn status_equals_etcdutl() {
    for dir in fixture_dirs() {
        let want = json(&dir.join("expected/status.json"));
        let file = std::fs::read(dir.join("snapshot.db")).unwrap();
        let (image, t) = trailer::split(&file);
        assert!(t.is_some());
        let s = status(&Db::open(image).unwrap()).unwrap();
        assert_eq!(u64::from(s.hash), want["hash"].as_u64().unwrap(), "{}", dir.display());
        assert_eq!(s.revision, want["revision"].as_i64().unwrap());
        // The tool of the version that wrote the file counts as its line does.
        let line = s.storage_version().line().unwrap();
        let total = if line.counts_live_keys() { s.total_key_v36 } else { s.total_key };
        assert_eq!(total, want["totalKey"].as_u64().unwrap(), "{}", dir.display());
        assert_eq!(want.get("version").and_then(Value::as_str), s.meta.storage_version.as_deref());
        assert_eq!(s.total_size, want["totalSize"].as_u64().unwrap());
        let get = json(&dir.join("expected/get.json"));
        assert_eq!(s.live_keys, get["count"].as_u64().unwrap());
        assert_eq!(s.total_key_v36, s.live_keys, "no markers in a fixture");
    }
}

#[test]
fn hashkv_at_latest_equals_live_etcd() {
    for dir in fixture_dirs() {
        let want = json(&dir.join("expected/hashkv.json"));
        let h = &want[0]["HashKV"];
        let file = std::fs::read(dir.join("snapshot.db")).unwrap();
        let db = Db::open(trailer::split(&file).0).unwrap();
        for rule in [TombstoneRule::Include, TombstoneRule::Skip] {
            let ours = hash_kv(&db, 0, rule).unwrap();
            assert_eq!(u64::from(ours.hash), h["hash"].as_u64().unwrap(), "{} {rule:?}", dir.display());
            assert_eq!(ours.compact_revision, h["compact_revision"].as_i64().unwrap());
            assert_eq!(ours.current_revision, h["header"]["revision"].as_i64().unwrap());
        }
    }
}

#[test]
fn keys_at_latest_equal_live_get() {
    for dir in fixture_dirs() {
        let want = json(&dir.join("expected/get.json"));
        let file = std::fs::read(dir.join("snapshot.db")).unwrap();
        let db = Db::open(trailer::split(&file).0).unwrap();
        let keys = at_revision(&db, 0, &Selection::default()).unwrap();
        assert_eq!(keys.rev(), want["header"]["revision"].as_i64().unwrap());
        let kvs = want["kvs"].as_array().unwrap();
        assert_eq!(keys.len(), kvs.len());
        for (ours, theirs) in keys.iter().zip(kvs) {
            assert_eq!(ours.kv.key, b64(&theirs["key"]).as_slice());
            assert_eq!(ours.kv.value, b64(&theirs["value"]).as_slice());
            assert_eq!(ours.kv.create_revision, theirs["create_revision"].as_i64().unwrap());
            assert_eq!(ours.kv.mod_revision, theirs["mod_revision"].as_i64().unwrap());
            assert_eq!(ours.kv.version, theirs["version"].as_i64().unwrap());
            assert_eq!(ours.kv.lease, theirs["lease"].as_i64().unwrap_or(0));
        }
    }
}

#[test]
fn fixtures_verify_clean() {
    for dir in fixture_dirs() {
        for (f, trailer_required) in [("snapshot.db", true), ("member/snap/db", false)] {
            let file = std::fs::read(dir.join(f)).unwrap();
            let r = verify(&file, VerifyOptions { require_trailer: trailer_required });
            assert!(r.is_ok(), "{}/{f}: {:#?}", dir.display(), r.findings);
            assert!(r.stats.revisions > 1000 && r.stats.tombstones > 0 && r.stats.leases == 4);
        }
    }
}

/// `KeepSet` (one bit per entry, built with one record per live key) keeps exactly what the full key index
/// (`Index::keep`, every revision of every key) keeps, on every fixture and at
/// revisions around the compaction and the deletes.
#[test]
fn keep_set_keeps_what_the_full_index_keeps() {
    use etcdsnap_mvcc::index::{Index, KeepSet};
    use etcdsnap_mvcc::revision::BucketKey;
    for dir in fixture_dirs() {
        let file = std::fs::read(dir.join("snapshot.db")).unwrap();
        let db = Db::open(trailer::split(&file).0).unwrap();
        let index = Index::build(&db).unwrap();
        for at in [1, 100, 1023, 1147, 1200, 1378, 1380, 1472, 1473] {
            let full = index.keep(at);
            let latest = KeepSet::build(&db, at).unwrap();
            let bucket = db.bucket(&[b"key"]).unwrap().unwrap();
            let mut kept = 0;
            for (ordinal, e) in (0u64..).zip(bucket.cursor()) {
                let e = e.unwrap();
                let bk = BucketKey::parse(e.key).unwrap();
                let ours = latest.keeps(ordinal);
                assert_eq!(ours, full.contains(&bk.rev), "{} at {at}: revision {:?}", dir.display(), bk.rev);
                kept += usize::from(ours);
            }
            assert_eq!(kept, full.len(), "{} at {at}", dir.display());
            assert_eq!(latest.keeps_nothing(), full.is_empty());
        }
    }
}

/// `status` walks the second half of the `key` bucket on another thread and
/// joins it in: the figures equal those of one sequential walk.
#[test]
fn split_status_equals_one_walk() {
    use etcdsnap_mvcc::status::StatusObserver;
    for dir in fixture_dirs() {
        let file = std::fs::read(dir.join("snapshot.db")).unwrap();
        let db = Db::open(trailer::split(&file).0).unwrap();
        assert!(db.bucket(&[b"key"]).unwrap().unwrap().split_cursors(2).unwrap().len() == 2, "{}", dir.display());
        let mut o = StatusObserver::default();
        let root = db.root().unwrap();
        for top in root.cursor() {
            let top = top.unwrap();
            o.open_bucket(top.key);
            for e in root.child(top).unwrap().cursor() {
                let e = e.unwrap();
                if e.is_bucket() {
                    o.open_bucket(e.key);
                    o.close_bucket();
                } else {
                    o.put(e.key, e.value).unwrap();
                }
            }
            o.close_bucket();
        }
        let one = o.finish(db.hwm() * db.page_size() as u64, db.page_size());
        assert_eq!(status(&db).unwrap(), one, "{}", dir.display());
    }
}
