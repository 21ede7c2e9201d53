//! The builder against a model: random trees of nested buckets are written by
//! our builder, read back with our reader equal to a `BTreeMap` model, and our
//! check is clean. A sample is also judged by Go bbolt (check and dump).
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

use std::ffi::OsStr;
use std::io::Cursor;

use etcdsnap_bolt::builder::{BuildOptions, Builder};
use etcdsnap_bolt::{Bucket, BuildError, Db, Error};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use support::model::{build, options, read_tree, root_tree, write_tree, Node, Tree};

/// The same tree through a plan and a streamed build (meta pages first, no seeking).
fn build_streamed(root: &Tree, opts: BuildOptions) -> Vec<u8> {
    let mut plan = Builder::plan(opts).unwrap();
    write_tree(&mut plan, root);
    let layout = plan.finish().unwrap();
    let mut b = Builder::streamed(Vec::new(), opts, &layout).unwrap();
    write_tree(&mut b, root);
    let (data, summary) = b.finish_streamed().unwrap();
    assert_eq!(summary, layout);
    data
}

fn assert_round_trip(root: &Tree, opts: BuildOptions) -> Vec<u8> {
    let data = build(root, opts);
    let db = Db::open(&data).unwrap();
    assert_eq!(db.page_size(), opts.page_size as usize);
    let report = db.check();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.stats.free_pages, 0, "the builder leaves no free pages");
    let mut back = read_tree(&db.root().unwrap());
    back.sequence = root.sequence;
    assert_eq!(&back, root);
    // Seeks find every key.
    fn seek_all(t: &Tree, b: &Bucket<'_>) {
        for (k, n) in &t.entries {
            let e = b.entry(k).unwrap().expect("key present");
            assert_eq!(e.key, &k[..]);
            if let Node::Bucket(sub) = n {
                seek_all(sub, &b.child(e).unwrap());
            }
        }
    }
    seek_all(root, &db.root().unwrap());
    // Split cursors, one after another, walk exactly what one cursor walks.
    fn split_all(b: &Bucket<'_>) {
        let whole: Vec<_> = b.cursor().map(|e| e.unwrap()).collect();
        for parts in [1, 2, 3, 7, 1000] {
            let cursors = b.split_cursors(parts).unwrap();
            assert!(!cursors.is_empty() && cursors.len() <= parts);
            let joined: Vec<_> = cursors.into_iter().flat_map(|c| c.map(|e| e.unwrap())).collect();
            assert_eq!(joined, whole, "{parts} parts");
        }
        for e in b.cursor() {
            let e = e.unwrap();
            if e.is_bucket() {
                split_all(&b.child(e).unwrap());
            }
        }
    }
    split_all(&db.root().unwrap());
    data
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_read_back_equal(root in root_tree(), opts in options()) {
        assert_round_trip(&root, opts);
    }

    #[test]
    fn output_is_deterministic(root in root_tree(), opts in options()) {
        prop_assert_eq!(build(&root, opts), build(&root, opts));
    }

    #[test]
    fn planned_streamed_build_equals_seek_back_build(root in root_tree(), opts in options()) {
        prop_assert_eq!(build_streamed(&root, opts), build(&root, opts));
    }
}

fn bucket(entries: Vec<(Vec<u8>, Node)>) -> Node {
    Node::Bucket(Tree { sequence: 7, entries: entries.into_iter().collect() })
}

/// Thousands of keys, 1-byte and 32768-byte keys, values of 0 bytes to several pages,
/// empty buckets, inline-sized buckets, deep nesting.
fn edge_tree() -> Tree {
    let many: Vec<(Vec<u8>, Node)> = (0u32..20_000)
        .map(|i| (format!("k{i:08}").into_bytes(), Node::Value(i.to_be_bytes().repeat((i % 9) as usize))))
        .collect();
    let big_values: Vec<(Vec<u8>, Node)> =
        (0u32..40).map(|i| (vec![b'v', i as u8], Node::Value(vec![i as u8; 1 + i as usize * 1500]))).collect();
    let mut deep = bucket(vec![(b"leaf".to_vec(), Node::Value(b"x".to_vec()))]);
    for i in 0..12 {
        deep = bucket(vec![(vec![b'd', i], deep), (vec![b'e', i], Node::Value(vec![i]))]);
    }
    let root = vec![
        (b"empty".to_vec(), bucket(vec![])),
        (
            b"inline".to_vec(),
            bucket(vec![(b"a".to_vec(), Node::Value(b"1".to_vec())), (b"b".to_vec(), Node::Value(Vec::new()))]),
        ),
        (b"many".to_vec(), bucket(many)),
        (b"big".to_vec(), bucket(big_values)),
        (
            b"keys".to_vec(),
            bucket(vec![
                (vec![0x00], Node::Value(b"one byte".to_vec())),
                (vec![0x61; 32768], Node::Value(b"max key".to_vec())),
                (vec![0xff; 32768], Node::Value(vec![0xab; 70000])),
                (vec![0xff; 32767], bucket(vec![(vec![1], Node::Value(vec![]))])),
            ]),
        ),
        (b"nested".to_vec(), deep),
    ];
    Tree { sequence: 0, entries: root.into_iter().collect() }
}

#[test]
fn edge_cases_round_trip_at_every_page_size() {
    let t = edge_tree();
    for page_size in [1024, 4096, 16384, 65536] {
        for fill_percent in [0.5, 0.9, 1.0] {
            assert_round_trip(&t, BuildOptions { page_size, fill_percent, ..BuildOptions::default() });
        }
    }
}

#[test]
fn edge_cases_stream_like_they_seek() {
    let t = edge_tree();
    for page_size in [1024, 4096, 65536] {
        let opts = BuildOptions { page_size, ..BuildOptions::default() };
        assert!(build_streamed(&t, opts) == build(&t, opts), "page size {page_size}");
    }
}

#[test]
fn a_streamed_build_that_leaves_its_plan_fails() {
    let opts = BuildOptions::default();
    let mut plan = Builder::plan(opts).unwrap();
    plan.create_bucket(b"b", 0).unwrap();
    plan.put(b"k", b"v").unwrap();
    let layout = plan.finish().unwrap();
    let mut b = Builder::streamed(Vec::new(), opts, &layout).unwrap();
    b.create_bucket(b"b", 0).unwrap();
    b.put(b"k", &[7u8; 9000]).unwrap();
    match b.finish_streamed() {
        Err(Error::Build(f)) => assert_eq!(f.kind, BuildError::LayoutChanged),
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_database() {
    let data = assert_round_trip(&Tree::default(), BuildOptions::default());
    assert_eq!(data.len(), 4 * 4096, "metas, freelist, empty root leaf");
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let mut out = Cursor::new(Vec::new());
    let mut b = Builder::new(&mut out, BuildOptions::default()).unwrap();
    let kind = |e: Error| match e {
        Error::Build(f) => f.kind,
        other => panic!("{other}"),
    };
    assert_eq!(kind(b.put(b"k", b"v").unwrap_err()), BuildError::ValueInRoot);
    assert_eq!(kind(b.close_bucket().unwrap_err()), BuildError::NoOpenBucket);
    b.create_bucket(b"b", 0).unwrap();
    assert_eq!(kind(b.put(b"", b"v").unwrap_err()), BuildError::EmptyKey);
    assert_eq!(kind(b.put(&vec![1; 32769], b"v").unwrap_err()), BuildError::KeyTooLarge { len: 32769 });
    b.put(b"m", b"v").unwrap();
    let err = b.put(b"m", b"v").unwrap_err();
    assert!(err.to_string().contains("bucket b, key m"), "{err}");
    assert_eq!(kind(err), BuildError::KeyOrder);
    assert_eq!(kind(b.put(b"a", b"v").unwrap_err()), BuildError::KeyOrder);
    assert_eq!(kind(b.create_bucket(b"a", 0).unwrap_err()), BuildError::KeyOrder);
    b.close_bucket().unwrap();
    assert_eq!(kind(b.create_bucket(b"a", 0).unwrap_err()), BuildError::KeyOrder);
    assert!(Builder::new(Cursor::new(Vec::new()), BuildOptions { page_size: 512, ..BuildOptions::default() }).is_err());
    // In range but not a power of two: a file of such pages breaks etcd's trailer rule (size % 512).
    for bad in [3000, 6000, 4097, 65535] {
        let e = Builder::new(Cursor::new(Vec::new()), BuildOptions { page_size: bad, ..BuildOptions::default() })
            .unwrap_err();
        assert!(e.to_string().contains("power of two"), "{e}");
    }
    // The builder still finishes into a valid file after refused calls.
    b.finish().unwrap();
    let data = out.into_inner();
    let db = Db::open(&data).unwrap();
    assert!(db.check().is_ok());
    assert_eq!(db.bucket(&[b"b"]).unwrap().unwrap().get(b"m").unwrap(), Some(&b"v"[..]));
}

#[test]
fn go_bbolt_accepts_builder_output() {
    let dir = support::scratch("builder-go");
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut trees: Vec<(Tree, BuildOptions)> = (0..6)
        .map(|_| {
            (root_tree().new_tree(&mut runner).unwrap().current(), options().new_tree(&mut runner).unwrap().current())
        })
        .collect();
    trees.push((edge_tree(), BuildOptions::default()));
    trees.push((edge_tree(), BuildOptions { page_size: 1024, fill_percent: 0.5, ..BuildOptions::default() }));
    for (i, (t, opts)) in trees.iter().enumerate() {
        let data = assert_round_trip(t, *opts);
        let f = dir.join(format!("tree-{i}.db"));
        std::fs::write(&f, &data).unwrap();
        let (code, out) = support::run_oracle(&[OsStr::new("check"), f.as_os_str()]);
        assert_eq!((code, String::from_utf8_lossy(&out).into_owned()), (0, "OK\n".to_string()), "tree {i} {opts:?}");
        let (code, go_dump) = support::run_oracle(&[OsStr::new("dump"), f.as_os_str()]);
        assert_eq!(code, 0);
        let mut ours = Vec::new();
        etcdsnap_bolt::dump::dump(&Db::open(&data).unwrap(), &mut ours).unwrap();
        assert!(ours == go_dump, "tree {i}: Go reads something else than we wrote");
    }
}
