//! The model of a bbolt file the builder and patch tests share: a tree of
//! nested buckets as `BTreeMap`s, its proptest generators, and writing and
//! reading it with our builder and reader.

use std::collections::BTreeMap;
use std::io::Cursor;

use etcdsnap_bolt::builder::{BuildOptions, Builder};
use etcdsnap_bolt::Bucket;
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Value(Vec<u8>),
    Bucket(Tree),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    pub sequence: u64,
    pub entries: BTreeMap<Vec<u8>, Node>,
}

pub fn write_tree<W: std::io::Write>(b: &mut Builder<W>, t: &Tree) {
    for (k, n) in &t.entries {
        match n {
            Node::Value(v) => b.put(k, v).unwrap(),
            Node::Bucket(sub) => {
                b.create_bucket(k, sub.sequence).unwrap();
                write_tree(b, sub);
                b.close_bucket().unwrap();
            }
        }
    }
}

pub fn build(root: &Tree, opts: BuildOptions) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut b = Builder::new(&mut out, opts).unwrap();
    write_tree(&mut b, root);
    let summary = b.finish().unwrap();
    let data = out.into_inner();
    assert_eq!(summary.bytes, data.len() as u64);
    assert_eq!(summary.meta.pgid * u64::from(opts.page_size), data.len() as u64);
    data
}

pub fn read_tree(b: &Bucket<'_>) -> Tree {
    let mut t = Tree { sequence: b.sequence(), entries: BTreeMap::new() };
    for e in b.cursor() {
        let e = e.unwrap();
        let node =
            if e.is_bucket() { Node::Bucket(read_tree(&b.child(e).unwrap())) } else { Node::Value(e.value.to_vec()) };
        t.entries.insert(e.key.to_vec(), node);
    }
    t
}

pub fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 1..24),
        1 => prop::collection::vec(any::<u8>(), 1..3),
        1 => prop::collection::vec(any::<u8>(), 100..600),
    ]
}

pub fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..64),
        2 => prop::collection::vec(any::<u8>(), 64..2000),
        1 => prop::collection::vec(any::<u8>(), 0..1).prop_map(|_| Vec::new()),
        1 => (3000usize..20000).prop_map(|n| (0..n).map(|i| (i * 7) as u8).collect()),
    ]
}

pub fn leaf_tree() -> impl Strategy<Value = Tree> {
    (any::<u64>(), prop::collection::btree_map(key(), value().prop_map(Node::Value), 0..300))
        .prop_map(|(sequence, entries)| Tree { sequence, entries })
}

pub fn tree() -> impl Strategy<Value = Tree> {
    leaf_tree().prop_recursive(3, 24, 6, |inner| {
        (
            any::<u64>(),
            prop::collection::btree_map(
                key(),
                prop_oneof![value().prop_map(Node::Value), inner.prop_map(Node::Bucket)],
                0..40,
            ),
        )
            .prop_map(|(sequence, entries)| Tree { sequence, entries })
    })
}

/// A root holds only buckets.
pub fn root_tree() -> impl Strategy<Value = Tree> {
    prop::collection::btree_map(key(), tree().prop_map(Node::Bucket), 0..6)
        .prop_map(|entries| Tree { sequence: 0, entries })
}

pub fn options() -> impl Strategy<Value = BuildOptions> {
    (prop_oneof![Just(1024u32), Just(4096), Just(16384), Just(65536)], 0.1f64..=1.0, 1u64..1000, any::<bool>())
        .prop_map(|(page_size, fill_percent, txid, inline_buckets)| BuildOptions {
            page_size,
            fill_percent,
            txid,
            inline_buckets,
        })
}
