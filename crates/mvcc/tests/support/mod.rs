//! Helpers shared by the mvcc integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use etcdsnap_bolt::Db;

/// A bucket's entries in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Every top-level bucket: name → (sequence, entries).
pub fn all_entries(db: &Db<'_>) -> BTreeMap<Vec<u8>, (u64, Entries)> {
    let root = db.root().unwrap();
    let mut out = BTreeMap::new();
    for top in root.cursor() {
        let top = top.unwrap();
        let b = root.child(top).unwrap();
        let entries = b.cursor().map(|e| e.unwrap()).map(|e| (e.key.to_vec(), e.value.to_vec())).collect();
        out.insert(top.key.to_vec(), (b.sequence(), entries));
    }
    out
}

/// The committed fixture directory of an etcd version (`testdata/etcd-V`).
pub fn fixture_dir(version: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata").join(format!("etcd-{version}"))
}

/// The fixture snapshot (with its SHA-256 trailer) of an etcd version.
pub fn snapshot(version: &str) -> std::path::PathBuf {
    fixture_dir(version).join("snapshot.db")
}

/// A fresh empty directory `group/name` under cargo's per-target temp dir.
pub fn scratch(group: &str, name: &str) -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(group).join(name);
    if d.exists() {
        std::fs::remove_dir_all(&d).unwrap();
    }
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// (bucket path, key, value): one entry of a file.
pub type Item = (Vec<Vec<u8>>, Vec<u8>, Vec<u8>);

/// Every bucket (with its sequence) and entry of a file, in order.
pub fn contents(path: &std::path::Path) -> Vec<Item> {
    struct All(Vec<Item>);
    impl<'a> etcdsnap_bolt::walk::Visitor<'a> for All {
        fn enter_bucket(&mut self, path: &[Vec<u8>], h: etcdsnap_bolt::BucketHeader) -> etcdsnap_bolt::Result<()> {
            self.0.push((path.to_vec(), b"<bucket>".to_vec(), h.sequence.to_le_bytes().to_vec()));
            Ok(())
        }
        fn value(&mut self, path: &[Vec<u8>], k: &'a [u8], v: &'a [u8]) -> etcdsnap_bolt::Result<()> {
            self.0.push((path.to_vec(), k.to_vec(), v.to_vec()));
            Ok(())
        }
    }
    let data = std::fs::read(path).unwrap();
    let db = Db::open(etcdsnap_mvcc::trailer::split(&data).0).unwrap();
    let mut all = All(Vec::new());
    etcdsnap_bolt::walk::walk(&db, &mut all).unwrap();
    all.0
}

/// An encoded `mvccpb.KeyValue` (no lease).
pub fn kv_bytes(key: &[u8], create: i64, modr: i64, version: i64, value: &[u8]) -> Vec<u8> {
    use etcdsnap_proto::Message;
    etcdsnap_proto::mvccpb::KeyValue {
        key: key.to_vec(),
        create_revision: create,
        mod_revision: modr,
        version,
        value: value.to_vec(),
        lease: 0,
    }
    .encode_to_vec()
}

/// A 4 KiB-page copy of `version`'s fixture into `out`: every top-level
/// bucket copied, then `extend(name, builder)` before it closes (to add
/// entries). Returns the builder, to add buckets and finish.
pub fn copy_fixture(
    version: &str,
    out: &std::path::Path,
    mut extend: impl FnMut(&[u8], &mut FixtureBuilder),
) -> FixtureBuilder {
    use etcdsnap_bolt::builder::{BuildOptions, Builder};
    let data = std::fs::read(snapshot(version)).unwrap();
    let db = Db::open(etcdsnap_mvcc::trailer::split(&data).0).unwrap();
    let f = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    let mut b = Builder::new(f, BuildOptions { page_size: 4096, ..BuildOptions::default() }).unwrap();
    let root = db.root().unwrap();
    for top in root.cursor() {
        let top = top.unwrap();
        let bucket = root.child(top).unwrap();
        b.create_bucket(top.key, bucket.sequence()).unwrap();
        etcdsnap_bolt::compact::copy_bucket(&bucket, &mut b).unwrap();
        extend(top.key, &mut b);
        b.close_bucket().unwrap();
    }
    b
}

/// The builder [`copy_fixture`] writes with.
pub type FixtureBuilder = etcdsnap_bolt::builder::Builder<std::io::BufWriter<std::fs::File>>;
