//! `verify` on damaged copies of a real etcd 3.5.1 snapshot. Each copy is
//! written through the bbolt builder (as `rewrite` writes files) with ONE thing
//! altered; only the trailer test patches bytes. Verification must report
//! exactly that problem, naming the bucket, the revision and the user key; an
//! unaltered copy must verify clean.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;

use etcdsnap_bolt::builder::{BuildOptions, Builder};
use etcdsnap_bolt::compact::copy_bucket;
use etcdsnap_bolt::Db;
use etcdsnap_mvcc::keyspace::{at_revision, Selection};
use etcdsnap_mvcc::kv::{encode_with_key, KvRef};
use etcdsnap_mvcc::revision::{BucketKey, Revision};
use etcdsnap_mvcc::schema::{KEY, LEASE, META, SCHEDULED_COMPACT_REV};
use etcdsnap_mvcc::trailer;
use etcdsnap_mvcc::verify::{verify, Finding, FindingKind, Severity, VerifyOptions, VerifyReport};

fn fixture() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/etcd-3.5.1/snapshot.db");
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// What to do with one entry of a top-level bucket.
enum Edit {
    Keep,
    Drop,
    Replace(Vec<u8>, Vec<u8>),
}

/// Copies the fixture through the builder; `edit(bucket, key, value)` may alter
/// entries of `altered` buckets; `omit` names a bucket left out entirely.
/// Appends a fresh SHA-256 trailer, as `snapshot save` does.
fn rebuild(image: &[u8], altered: &[u8], omit: Option<&[u8]>, mut edit: impl FnMut(&[u8], &[u8]) -> Edit) -> Vec<u8> {
    let db = Db::open(image).unwrap();
    let mut out = Cursor::new(Vec::new());
    let mut b = Builder::new(
        &mut out,
        BuildOptions { page_size: db.page_size() as u32, txid: db.meta().txid, ..BuildOptions::default() },
    )
    .unwrap();
    let root = db.root().unwrap();
    for top in root.cursor() {
        let top = top.unwrap();
        assert!(top.is_bucket());
        if Some(top.key) == omit {
            continue;
        }
        let bucket = root.child(top).unwrap();
        b.create_bucket(top.key, bucket.sequence()).unwrap();
        if top.key == altered {
            for e in bucket.cursor() {
                let e = e.unwrap();
                assert!(!e.is_bucket());
                match edit(e.key, e.value) {
                    Edit::Keep => b.put(e.key, e.value).unwrap(),
                    Edit::Drop => {}
                    Edit::Replace(k, v) => b.put(&k, &v).unwrap(),
                }
            }
        } else {
            copy_bucket(&bucket, &mut b).unwrap();
        }
        b.close_bucket().unwrap();
    }
    b.finish().unwrap();
    let mut file = out.into_inner();
    let digest = trailer::digest(&file);
    file.extend_from_slice(&digest);
    file
}

/// One entry of the fixture's `key` bucket.
#[derive(Clone)]
struct Entry {
    key: Vec<u8>,
    value: Vec<u8>,
    bk: BucketKey,
    kv_key: Vec<u8>,
    kv: (i64, i64, i64, i64), // create, mod, version, lease
}

fn entries(image: &[u8]) -> Vec<Entry> {
    let db = Db::open(image).unwrap();
    let b = db.bucket(&[KEY]).unwrap().unwrap();
    b.cursor()
        .map(|e| {
            let e = e.unwrap();
            let kv = KvRef::parse(e.value).unwrap();
            Entry {
                key: e.key.to_vec(),
                value: e.value.to_vec(),
                bk: BucketKey::parse(e.key).unwrap(),
                kv_key: kv.key.to_vec(),
                kv: (kv.create_revision, kv.mod_revision, kv.version, kv.lease),
            }
        })
        .collect()
}

/// Positions of every entry, per user key, in bucket order.
fn by_user_key(es: &[Entry]) -> HashMap<Vec<u8>, Vec<usize>> {
    let mut m: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for (i, e) in es.iter().enumerate() {
        m.entry(e.kv_key.clone()).or_default().push(i);
    }
    m
}

fn reencode(value: &[u8], f: impl FnOnce(&mut KvRef<'_>)) -> Vec<u8> {
    let mut kv = KvRef::parse(value).unwrap();
    f(&mut kv);
    let mut out = Vec::new();
    encode_with_key(&kv, kv.key, &mut out);
    out
}

/// Replaces the value of the `key`-bucket entry with revision key `target`.
fn replace_value(image: &[u8], target: &[u8], value: Vec<u8>) -> Vec<u8> {
    rebuild(image, KEY, None, |k, _| if k == target { Edit::Replace(k.to_vec(), value.clone()) } else { Edit::Keep })
}

fn problems(r: &VerifyReport) -> Vec<&Finding> {
    r.findings.iter().filter(|f| f.severity == Severity::Problem).collect()
}

/// Asserts exactly one problem, in the `key` bucket, at `e`, whose message contains `needle`.
fn assert_one_key_problem(r: &VerifyReport, e: &Entry, needle: &str) {
    assert!(!r.is_ok());
    let p = problems(r);
    assert_eq!(p.len(), 1, "expected exactly one problem, got {p:#?}");
    assert_eq!(r.problem_count, 1);
    let f = p[0];
    assert_eq!(f.bucket, KEY, "{f:?}");
    assert_eq!(f.revision, Some(e.bk.rev), "{f:?}");
    assert_eq!(f.user_key.as_deref(), Some(e.kv_key.as_slice()), "{f:?}");
    assert_eq!(f.key.as_deref(), Some(e.key.as_slice()), "{f:?}");
    assert!(f.message.contains(needle), "message {:?} lacks {needle:?}", f.message);
}

fn check(file: &[u8]) -> VerifyReport {
    verify(file, VerifyOptions { require_trailer: true })
}

#[test]
fn undamaged_copy_verifies_clean() {
    let file = fixture();
    let image = trailer::split(&file).0;
    let copy = rebuild(image, KEY, None, |_, _| Edit::Keep);
    let r = check(&copy);
    assert!(r.is_ok(), "{:#?}", r.findings);
    assert!(matches!(r.trailer, trailer::Trailer::Valid(_)));
    let orig = check(&file);
    assert!(orig.is_ok());
    assert_eq!(r.stats, orig.stats, "the copy holds the same content");
}

#[test]
fn a_mod_revision_differs_from_the_revision() {
    let file = fixture();
    let image = trailer::split(&file).0;
    let es = entries(image);
    let e = es.iter().find(|e| !e.bk.tombstone && !e.value.is_empty() && e.bk.rev.main > 1300).unwrap().clone();
    let v = reencode(&e.value, |kv| kv.mod_revision = e.bk.rev.main + 1000);
    let r = check(&replace_value(image, &e.key, v));
    assert_one_key_problem(&r, &e, &format!("mod_revision {} differs", e.bk.rev.main + 1000));
}

#[test]
fn b_put_with_version_0() {
    let file = fixture();
    let image = trailer::split(&file).0;
    let es = entries(image);
    let keys = by_user_key(&es);
    // A key stored once, created before its stored revision (older ones compacted
    // away): version 0 breaks nothing else.
    let e = es
        .iter()
        .find(|e| !e.bk.tombstone && keys[&e.kv_key].len() == 1 && e.kv.0 != e.bk.rev.main && e.kv.2 > 1)
        .unwrap()
        .clone();
    let v = reencode(&e.value, |kv| kv.version = 0);
    let r = check(&replace_value(image, &e.key, v));
    assert_one_key_problem(&r, &e, "put with version 0");
}

#[test]
fn c_tombstone_carrying_a_value() {
    let file = fixture();
    let image = trailer::split(&file).0;
    let es = entries(image);
    let e = es.iter().find(|e| e.bk.tombstone).unwrap().clone();
    let v = reencode(&e.value, |kv| kv.value = b"not empty");
    let r = check(&replace_value(image, &e.key, v));
    assert_one_key_problem(&r, &e, "tombstone carries more than its key");
}

#[test]
fn d_malformed_revision_key() {
    let file = fixture();
    let image = trailer::split(&file).0;
    let es = entries(image);
    let keys = by_user_key(&es);
    // A key stored once, at sub 0, after a smaller main: cutting its revision key
    // to 16 bytes keeps the bucket sorted and leaves no later revision dangling.
    let i = (1..es.len())
        .find(|&i| {
            let e = &es[i];
            !e.bk.tombstone
                && e.bk.rev.sub == 0
                && es[i - 1].bk.rev.main < e.bk.rev.main
                && keys[&e.kv_key].len() == 1
                && e.kv.3 == 0
        })
        .unwrap();
    let e = es[i].clone();
    let short = e.key[..16].to_vec();
    let r = check(&rebuild(image, KEY, None, |k, v| {
        if k == e.key.as_slice() {
            Edit::Replace(short.clone(), v.to_vec())
        } else {
            Edit::Keep
        }
    }));
    assert!(!r.is_ok());
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].bucket, KEY);
    assert_eq!(p[0].key.as_deref(), Some(short.as_slice()));
    assert_eq!(p[0].revision, None, "a malformed key has no revision");
    assert!(p[0].message.contains("malformed revision key"), "{}", p[0].message);
    assert_eq!(p[0].kind, FindingKind::RevisionKeyMalformed);
    assert_eq!(p[0].kind.code(), "revision-key-malformed");
}

#[test]
fn e_live_key_references_a_missing_lease() {
    let file = fixture();
    let image = trailer::split(&file).0;
    let db = Db::open(image).unwrap();
    let live = at_revision(&db, 0, &Selection::default()).unwrap();
    let mut per_lease: HashMap<i64, Vec<(Revision, Vec<u8>)>> = HashMap::new();
    for v in &live {
        if v.kv.lease != 0 {
            per_lease.entry(v.kv.lease).or_default().push((v.at.rev, v.kv.key.to_vec()));
        }
    }
    let (&lease, users) = per_lease.iter().min_by_key(|(id, v)| (v.len(), **id)).unwrap();
    let mut want = users.clone();
    want.sort();
    let lease_key = lease.to_be_bytes();
    let r = check(&rebuild(image, LEASE, None, |k, _| if k == lease_key.as_slice() { Edit::Drop } else { Edit::Keep }));
    assert!(!r.is_ok());
    assert_eq!(r.stats.leases, 3);
    let p = problems(&r);
    assert_eq!(p.len(), want.len(), "one problem per live key of lease {lease:x}: {p:#?}");
    let mut got: Vec<(Revision, Vec<u8>)> = p
        .iter()
        .map(|f| {
            assert_eq!(f.bucket, KEY);
            assert!(f.message.contains(&format!("references lease {lease:x}")), "{}", f.message);
            assert_eq!(f.key, Some(BucketKey { rev: f.revision.unwrap(), tombstone: false }.to_bytes()));
            (f.revision.unwrap(), f.user_key.clone().unwrap())
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn f_scheduled_compact_below_finished() {
    let file = fixture();
    let image = trailer::split(&file).0;
    let r = check(&rebuild(image, META, None, |k, _| {
        if k == SCHEDULED_COMPACT_REV {
            Edit::Replace(k.to_vec(), Revision::new(1000, 0).to_bytes().to_vec())
        } else {
            Edit::Keep
        }
    }));
    assert!(!r.is_ok());
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].bucket, META);
    assert_eq!(p[0].key.as_deref(), Some(SCHEDULED_COMPACT_REV));
    assert!(p[0].message.contains("scheduledCompactRev 1000 < finishedCompactRev 1147"), "{}", p[0].message);
    assert_eq!(p[0].kind, FindingKind::CompactRevisionsOutOfOrder);
}

#[test]
fn g_missing_key_bucket() {
    let file = fixture();
    let image = trailer::split(&file).0;
    let r = check(&rebuild(image, b"", Some(KEY), |_, _| Edit::Keep));
    assert!(!r.is_ok());
    let p = problems(&r);
    assert_eq!(p[0].bucket, KEY, "{p:#?}");
    assert_eq!(p[0].message, "required bucket missing");
    assert_eq!(p[0].kind, FindingKind::BucketMissing);
    // Consequences only: with no `key` bucket the latest revision is 0, below
    // both compact revisions kept in `meta`.
    for f in &p[1..] {
        assert_eq!(f.bucket, META, "{f:?}");
        assert!(f.message.contains("compact revision 1147 is beyond the latest revision 0"), "{f:?}");
    }
    assert!(p.len() <= 3, "{p:#?}");
    assert_eq!(r.stats.revisions, 0);
}

#[test]
fn h_version_does_not_continue() {
    let file = fixture();
    let image = trailer::split(&file).0;
    let es = entries(image);
    let keys = by_user_key(&es);
    // The last revision of a key whose previous revision is a live put.
    let e = keys
        .values()
        .filter(|ix| ix.len() >= 2)
        .filter_map(|ix| {
            let (last, prev) = (&es[ix[ix.len() - 1]], &es[ix[ix.len() - 2]]);
            (!last.bk.tombstone && !prev.bk.tombstone && last.kv.0 == prev.kv.0).then(|| last.clone())
        })
        .min_by_key(|e| e.bk.rev)
        .unwrap();
    let v = reencode(&e.value, |kv| kv.version += 5);
    let r = check(&replace_value(image, &e.key, v));
    assert_one_key_problem(&r, &e, &format!("version {} do not continue", e.kv.2 + 5));
}

#[test]
fn i_trailer_mismatch() {
    let mut file = fixture();
    let n = file.len();
    file[n - 7] ^= 0x40;
    let r = check(&file);
    assert!(!r.is_ok());
    assert!(matches!(r.trailer, trailer::Trailer::Mismatch { .. }));
    let p = problems(&r);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].bucket.is_empty());
    assert_eq!(p[0].revision, None);
    assert!(p[0].message.contains("SHA-256 trailer mismatch"), "{}", p[0].message);
    assert_eq!(p[0].kind.code(), "trailer-mismatch");
    // The rest of the file is intact.
    assert_eq!(r.stats, check(&fixture()).stats);
}

#[test]
fn j_version_at_i64_max_does_not_overflow() {
    let file = fixture();
    let image = trailer::split(&file).0;
    let es = entries(image);
    let keys = by_user_key(&es);
    // A live put followed by another put of the same key: give the first version
    // i64::MAX, so "previous version + 1" would overflow.
    let (prev, last) = keys
        .values()
        .filter(|ix| ix.len() >= 2)
        .filter_map(|ix| {
            let (last, prev) = (&es[ix[ix.len() - 1]], &es[ix[ix.len() - 2]]);
            (!last.bk.tombstone && !prev.bk.tombstone && last.kv.0 == prev.kv.0).then(|| (prev.clone(), last.clone()))
        })
        .min_by_key(|(p, _)| p.bk.rev)
        .unwrap();
    let v = reencode(&prev.value, |kv| kv.version = i64::MAX);
    let r = check(&replace_value(image, &prev.key, v));
    let p = problems(&r);
    let at_last: Vec<_> = p.iter().filter(|f| f.revision == Some(last.bk.rev)).collect();
    assert_eq!(at_last.len(), 1, "{p:#?}");
    assert_eq!(at_last[0].kind, FindingKind::VersionMismatch);
    assert!(at_last[0].message.contains(&format!("version {}", i64::MAX)), "{}", at_last[0].message);
}
