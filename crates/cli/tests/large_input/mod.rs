//! A large input for tests that must catch a command while it runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, dead_code)]

use std::io::BufWriter;
use std::path::Path;

use etcdsnap_bolt::builder::{BuildOptions, Builder};
use etcdsnap_bolt::Db;
use etcdsnap_proto::{mvccpb, Message};
use etcdsnap_testkit::EtcdVersion;

/// The latest revision of the 3.5.1 fixture.
pub const OLD_LATEST: i64 = 1473;

/// A raw db of the fixture with `n` 1 MiB values appended to its `key` bucket
/// (revisions after the latest), so that writing a rewrite of it takes a while.
pub fn large_input(path: &Path, n: i64) {
    let data = std::fs::read(EtcdVersion::V3_5_1.fixture_snapshot()).unwrap();
    let db = Db::open(etcdsnap_mvcc::trailer::split(&data).0).unwrap();
    let f = BufWriter::new(std::fs::File::create(path).unwrap());
    let mut b = Builder::new(f, BuildOptions::default()).unwrap();
    let root = db.root().unwrap();
    let value: Vec<u8> = (0..1usize << 20).map(|i| (i * 7 % 251) as u8).collect();
    for top in root.cursor() {
        let top = top.unwrap();
        let bucket = root.child(top).unwrap();
        b.create_bucket(top.key, bucket.sequence()).unwrap();
        etcdsnap_bolt::compact::copy_bucket(&bucket, &mut b).unwrap();
        if top.key == b"key" {
            for i in 0..n {
                let rev = OLD_LATEST + 1 + i;
                let kv = mvccpb::KeyValue {
                    key: format!("/big/{i:06}").into_bytes(),
                    create_revision: rev,
                    mod_revision: rev,
                    version: 1,
                    value: value.clone(),
                    lease: 0,
                };
                let mut k = rev.to_be_bytes().to_vec();
                k.push(b'_');
                k.extend_from_slice(&0i64.to_be_bytes());
                b.put(&k, &kv.encode_to_vec()).unwrap();
            }
        }
        b.close_bucket().unwrap();
    }
    b.finish().unwrap();
}
