//! `diff`, `history_diff` and `du` on real fixtures and on copies of them with
//! planted differences: each plant is found exactly, and nothing else.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::path::PathBuf;

use etcdsnap_bolt::builder::{BuildOptions, Builder};
use etcdsnap_bolt::Db;
use etcdsnap_keys::{KeyRules, Rename};
use etcdsnap_mvcc::diff::{diff, history_diff, DiffKind, DiffOptions};
use etcdsnap_mvcc::du::{du, DuOptions, GroupBy};
use etcdsnap_mvcc::kv::KvRef;
use etcdsnap_mvcc::revision::{BucketKey, Revision};
use etcdsnap_mvcc::schema::{KEY, LEASE};
use etcdsnap_mvcc::status::status;
use etcdsnap_mvcc::trailer;
use etcdsnap_proto::{mvccpb, Message};

const VERSIONS: [&str; 5] = ["3.4.23", "3.5.1", "3.5.35", "3.6.16", "3.7.3"];
const LATEST: i64 = 1473;

fn fixture(v: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../testdata/etcd-{v}/snapshot.db"));
    let data = std::fs::read(p).unwrap();
    trailer::split(&data).0.to_vec()
}

enum Edit {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

/// A copy of `image` through the builder: `edit` decides each entry of each
/// top-level bucket, `extra` entries are appended to the named bucket (keys
/// must sort after the bucket's last key).
fn build(image: &[u8], edit: impl Fn(&[u8], &[u8], &[u8]) -> Edit, extra: &[(&[u8], Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    // A directory of its own: another test's clean-up cannot remove it
    // between its creation and the file's.
    let dir = std::env::temp_dir().join(format!("etcdsnap-diff-{}-{}", std::process::id(), rand_name()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("out.db");
    {
        let db = Db::open(image).unwrap();
        let f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut b = Builder::new(f, BuildOptions::default()).unwrap();
        let root = db.root().unwrap();
        for top in root.cursor() {
            let top = top.unwrap();
            let bucket = root.child(top).unwrap();
            b.create_bucket(top.key, bucket.sequence()).unwrap();
            for e in bucket.cursor() {
                let e = e.unwrap();
                match edit(top.key, e.key, e.value) {
                    Edit::Keep => b.put(e.key, e.value).unwrap(),
                    Edit::Drop => {}
                    Edit::Replace(v) => b.put(e.key, &v).unwrap(),
                }
            }
            for (bucket, k, v) in extra {
                if *bucket == top.key {
                    b.put(k, v).unwrap();
                }
            }
            b.close_bucket().unwrap();
        }
        b.finish().unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    bytes
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}-{}", std::thread::current().name().unwrap_or("t").replace("::", "-"), N.fetch_add(1, Ordering::Relaxed))
}

/// The last put (not a tombstone) after the compaction, with its bucket key.
fn a_late_put(image: &[u8]) -> (Vec<u8>, Vec<u8>, mvccpb::KeyValue) {
    let db = Db::open(image).unwrap();
    let b = db.bucket(&[KEY]).unwrap().unwrap();
    let mut found = None;
    for e in b.cursor() {
        let e = e.unwrap();
        let bk = BucketKey::parse(e.key).unwrap();
        let kv = KvRef::parse(e.value).unwrap();
        if !bk.tombstone && bk.rev.main > 1300 && bk.rev.main < 1400 && kv.key.starts_with(b"/tenant-1/") {
            found = Some((e.key.to_vec(), kv.key.to_vec(), kv.to_owned()));
        }
    }
    found.unwrap()
}

fn put_at(main: i64, key: &[u8], value: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let kv = mvccpb::KeyValue {
        key: key.to_vec(),
        create_revision: main,
        mod_revision: main,
        version: 1,
        value: value.to_vec(),
        lease: 0,
    };
    (Revision::new(main, 0).to_bytes().to_vec(), kv.encode_to_vec())
}

#[test]
fn a_copy_is_equal_to_its_original() {
    for v in VERSIONS {
        let img = fixture(v);
        let copy = build(&img, |_, _, _| Edit::Keep, &[]);
        let (a, b) = (Db::open(&img).unwrap(), Db::open(&copy).unwrap());
        let r = diff(&a, &b, &DiffOptions::default()).unwrap();
        assert!(r.is_equal(), "{v}: {:?} {:?}", r.keys.first(), r.buckets.first());
        assert_eq!((r.keys_a, r.keys_b), (718, 718));
        let h = history_diff(&a, &b).unwrap();
        assert_eq!(h.first_difference, None, "{v}");
        assert!(h.compared > 300);
    }
}

#[test]
fn a_changed_value_is_found_exactly() {
    let img = fixture("3.5.1");
    let (rk, key, kv) = a_late_put(&img);
    let changed = mvccpb::KeyValue { value: b"planted".to_vec(), ..kv.clone() }.encode_to_vec();
    let b_img = build(
        &img,
        |bucket, k, _| if bucket == KEY && k == rk.as_slice() { Edit::Replace(changed.clone()) } else { Edit::Keep },
        &[],
    );
    let (a, b) = (Db::open(&img).unwrap(), Db::open(&b_img).unwrap());
    let r = diff(&a, &b, &DiffOptions::default()).unwrap();
    // The key's latest revision may be later than the planted one: then only history differs.
    let latest_is_planted = r.keys.len() == 1;
    if latest_is_planted {
        assert_eq!(r.keys[0].key, key);
        assert_eq!((r.keys[0].kind, r.keys[0].fields.as_slice()), (DiffKind::Changed, &["value"][..]));
        assert_eq!(r.keys[0].b.unwrap().value, b"planted");
    } else {
        assert!(r.keys.is_empty(), "{:?}", r.keys);
    }
    assert!(r.buckets.is_empty());
    let h = history_diff(&a, &b).unwrap();
    assert_eq!(h.first_difference, Some(BucketKey::parse(&rk).unwrap().rev.main));
    assert_eq!((h.only_a, h.only_b, h.changed), (0, 0, 1));
    assert!(h.at_first_a.iter().any(|s| s.key == key) && h.at_first_b.iter().any(|s| s.key == key));
}

#[test]
fn a_deleted_key_an_extra_revision_and_a_lease_are_found_exactly() {
    let img = fixture("3.5.1");
    let (_, key, _) = a_late_put(&img);
    // B: key deleted at 1474, a new key put at 1475, one lease's TTL changed.
    let tomb = {
        let mut k = Revision::new(LATEST + 1, 0).to_bytes().to_vec();
        k.push(b't');
        (k, mvccpb::KeyValue { key: key.clone(), ..Default::default() }.encode_to_vec())
    };
    let (nk, nv) = put_at(LATEST + 2, b"/tenant-1/registry/configmaps/default/planted", b"{}");
    let a = Db::open(&img).unwrap();
    let first_lease = a.bucket(&[LEASE]).unwrap().unwrap().cursor().next().unwrap().unwrap().key.to_vec();
    let b_img = build(
        &img,
        |bucket, k, v| {
            if bucket == LEASE && k == first_lease.as_slice() {
                let mut l = etcdsnap_proto::leasepb::Lease::decode(v).unwrap();
                l.ttl += 1;
                Edit::Replace(l.encode_to_vec())
            } else {
                Edit::Keep
            }
        },
        &[(KEY, tomb.0.clone(), tomb.1.clone()), (KEY, nk, nv)],
    );
    let b = Db::open(&b_img).unwrap();
    let r = diff(&a, &b, &DiffOptions::default()).unwrap();
    let kinds: Vec<(Vec<u8>, DiffKind)> = r.keys.iter().map(|d| (d.key.clone(), d.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (b"/tenant-1/registry/configmaps/default/planted".to_vec(), DiffKind::OnlyB),
            (key.clone(), DiffKind::OnlyA)
        ]
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(r.buckets.len(), 1, "{:?}", r.buckets);
    assert_eq!(
        (r.buckets[0].bucket, r.buckets[0].key.as_slice(), r.buckets[0].kind),
        (LEASE, first_lease.as_slice(), DiffKind::Changed)
    );
    let h = history_diff(&a, &b).unwrap();
    assert_eq!(h.first_difference, Some(LATEST + 1));
    assert_eq!((h.only_a, h.only_b, h.changed), (0, 2, 0));
    assert_eq!(h.at_first_a, vec![]);
    assert_eq!(h.at_first_b.len(), 1);
    assert!(h.at_first_b[0].at.tombstone && h.at_first_b[0].key == key);
}

#[test]
fn a_tenant_equals_its_renamed_copy() {
    let img = fixture("3.6.16");
    let from = b"/tenant-2/registry/".to_vec();
    let moved = build(
        &img,
        |bucket, _, v| {
            if bucket != KEY {
                return Edit::Keep;
            }
            let kv = KvRef::parse(v).unwrap();
            match kv.key.strip_prefix(from.as_slice()) {
                Some(rest) => {
                    let mut o = kv.to_owned();
                    o.key = [&b"/registry/"[..], rest].concat();
                    Edit::Replace(o.encode_to_vec())
                }
                None if kv.key.is_empty() => Edit::Keep,
                None => Edit::Drop,
            }
        },
        &[],
    );
    let (a, b) = (Db::open(&img).unwrap(), Db::open(&moved).unwrap());
    let rules =
        KeyRules { renames: vec![Rename::parse("/tenant-2/registry/=/registry/").unwrap()], ..KeyRules::default() };
    let r = diff(&a, &b, &DiffOptions { rules, ..DiffOptions::default() }).unwrap();
    assert!(r.is_equal(), "{:?} {:?}", r.keys.first(), r.buckets.first());
    assert!(r.keys_a > 200 && r.keys_a == r.keys_b);
    // Without the rename everything of tenant 2 differs.
    let r = diff(&a, &b, &DiffOptions::default()).unwrap();
    assert_eq!(r.keys.len() as u64, r.keys_a + r.keys_b);
    assert_eq!(r.keys.iter().filter(|d| d.kind == DiffKind::OnlyA).count() as u64, r.keys_a);
}

#[test]
fn du_totals_equal_status_on_every_fixture() {
    for v in VERSIONS {
        let img = fixture(v);
        let db = Db::open(&img).unwrap();
        let s = status(&db).unwrap();
        for by in [GroupBy::Tenant, GroupBy::Resource, GroupBy::Namespace, GroupBy::Prefix(2)] {
            let r = du(&db, &DuOptions { by, rev: 0, top_keys: 3 }).unwrap();
            let sum = |f: fn(&etcdsnap_mvcc::du::Usage) -> u64| r.groups.iter().map(|g| f(&g.usage)).sum::<u64>();
            assert_eq!(sum(|u| u.live_keys), s.live_keys, "{v} {by:?}");
            assert_eq!(sum(|u| u.tombstones), s.tombstones, "{v} {by:?}");
            assert_eq!(sum(|u| u.live_keys) + sum(|u| u.history_revisions) + r.markers, s.revisions, "{v} {by:?}");
            assert_eq!(r.totals.live_keys, s.live_keys);
            assert_eq!(r.totals.history_revisions, sum(|u| u.history_revisions));
            assert_eq!(r.largest_keys.len(), 3);
            assert_eq!(r.largest_keys[0].key, b"/tenant-3/registry/configmaps/frontend/assets-100k");
        }
        let tenants = du(&db, &DuOptions { by: GroupBy::Tenant, rev: 0, top_keys: 0 }).unwrap();
        let names: Vec<&[u8]> = tenants.groups.iter().map(|g| g.group.as_slice()).collect();
        for t in [&b"/tenant-1"[..], b"/tenant-2", b"/tenant-3", b"(other)"] {
            assert!(names.contains(&t), "{v}: {names:?}");
        }
        // At an earlier revision fewer revisions are counted and the rest are "later".
        let early = du(&db, &DuOptions { by: GroupBy::Tenant, rev: 1200, top_keys: 0 }).unwrap();
        assert!(early.later_revisions > 0);
        assert_eq!(
            early.totals.live_keys + early.totals.history_revisions + early.markers + early.later_revisions,
            s.revisions
        );
    }
}
