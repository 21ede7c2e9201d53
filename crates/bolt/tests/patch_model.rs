//! Copy-on-write patches that delete keys (and append after the last key)
//! against the builder's model: a file is built from a random tree, one
//! top-level bucket is patched with random deletes and appends, and the
//! output read back with our reader equals the model with the same edit; our
//! check is clean, and the page accounting is exact: every page of the input
//! the output no longer reaches is counted in `Patch::replaced`, every new
//! page is reached, and no carried page is reached that the input did not
//! reach. A sample is also judged by Go bbolt's check (1.3.6, 1.4.3, 1.5.0).
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

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;

use etcdsnap_bolt::builder::BuildOptions;
use etcdsnap_bolt::page::BucketRoot;
use etcdsnap_bolt::patch::{plan, Edit, Patch};
use etcdsnap_bolt::{BuildError, Db, Error, PageType, PageUse, Pgid};
use proptest::prelude::*;
use support::model::{build, read_tree, tree, value, Node, Tree};

/// Name of the edited bucket.
const EDITED: &[u8] = b"edited";

/// The output of `patch` applied to `input`.
fn output(input: &[u8], patch: &Patch) -> Vec<u8> {
    let db = Db::open(input).unwrap();
    let metas = patch.meta_pages();
    let mut out = Vec::new();
    for piece in patch.pieces(&db, &metas) {
        out.extend_from_slice(piece);
    }
    assert_eq!(out.len() as u64, patch.bytes());
    out
}

/// The keys of each leaf of the bucket `name`, in order (one leaf for an inline bucket).
fn leaves(data: &[u8], name: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let db = Db::open(data).unwrap();
    let b = db.bucket(&[name]).unwrap().unwrap();
    match b.root() {
        BucketRoot::Inline(_) => vec![b.cursor().map(|e| e.unwrap().key.to_vec()).collect()],
        BucketRoot::Paged(id) => {
            let mut out = Vec::new();
            collect_leaves(&db, id, &mut out);
            out
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

/// Whether a leaf of the bucket spans more than a page with more than four
/// elements: bbolt would split it, so a patch that rewrites it declines. (Our
/// builder writes such leaves: small elements share a large value's overflow run.)
fn oversized_leaf(data: &[u8], name: &[u8]) -> bool {
    let db = Db::open(data).unwrap();
    let b = db.bucket(&[name]).unwrap().unwrap();
    let BucketRoot::Paged(id) = b.root() else { return false };
    let mut oversized = false;
    walk_leaves(&db, id, &mut |h| oversized |= h.overflow > 0 && h.count > 4);
    oversized
}

fn walk_leaves(db: &Db<'_>, id: Pgid, f: &mut dyn FnMut(&etcdsnap_bolt::PageHeader)) {
    let page = db.pages().page(id).unwrap();
    if page.header.page_type() == PageType::Leaf {
        return f(&page.header);
    }
    for i in 0..usize::from(page.header.count) {
        let e = 16 + 16 * i;
        walk_leaves(db, u64::from_le_bytes(page.bytes[e + 8..e + 16].try_into().unwrap()), f);
    }
}

fn collect_leaves(db: &Db<'_>, id: Pgid, out: &mut Vec<Vec<Vec<u8>>>) {
    let page = db.pages().page(id).unwrap();
    let b = page.bytes;
    let count = usize::from(page.header.count);
    match page.header.page_type() {
        PageType::Leaf => {
            let keys = (0..count)
                .map(|i| {
                    let e = 16 + 16 * i;
                    let (pos, ksize) = (u32_at(b, e + 4), u32_at(b, e + 8));
                    b[e + pos..e + pos + ksize].to_vec()
                })
                .collect();
            out.push(keys);
        }
        PageType::Branch => {
            for i in 0..count {
                let e = 16 + 16 * i;
                let child = u64::from_le_bytes(b[e + 8..e + 16].try_into().unwrap());
                collect_leaves(db, child, out);
            }
        }
        other => panic!("page {id} is a {other:?}"),
    }
}

/// How many leaves sit under each child of the bucket's root branch.
fn leaves_per_root_child(data: &[u8], name: &[u8]) -> Vec<usize> {
    let db = Db::open(data).unwrap();
    let b = db.bucket(&[name]).unwrap().unwrap();
    let BucketRoot::Paged(id) = b.root() else { panic!("inline") };
    let page = db.pages().page(id).unwrap();
    assert_eq!(page.header.page_type(), PageType::Branch);
    (0..usize::from(page.header.count))
        .map(|i| {
            let e = 16 + 16 * i;
            let child = u64::from_le_bytes(page.bytes[e + 8..e + 16].try_into().unwrap());
            let mut out = Vec::new();
            collect_leaves(&db, child, &mut out);
            out.len()
        })
        .collect()
}

/// Depth of the bucket's tree (1: one leaf; 0: inline).
fn depth(data: &[u8], name: &[u8]) -> usize {
    let db = Db::open(data).unwrap();
    let b = db.bucket(&[name]).unwrap().unwrap();
    let BucketRoot::Paged(mut id) = b.root() else { return 0 };
    let mut d = 1;
    loop {
        let page = db.pages().page(id).unwrap();
        if page.header.page_type() == PageType::Leaf {
            return d;
        }
        id = u64::from_le_bytes(page.bytes[24..32].try_into().unwrap());
        d += 1;
    }
}

/// Pages the tree walk of `data`'s check reaches (tree pages and their overflow).
fn reached(data: &[u8]) -> Vec<bool> {
    let db = Db::open(data).unwrap();
    let report = db.check();
    assert!(report.is_ok(), "{:?}", report.problems);
    report.page_use.iter().map(|u| matches!(u, PageUse::Tree | PageUse::Overflow)).collect()
}

/// `model` with `delete` and `append` applied to the bucket `name`.
fn edited_model(model: &Tree, name: &[u8], delete: &[Vec<u8>], append: &[(Vec<u8>, Vec<u8>)]) -> Tree {
    let mut m = model.clone();
    let Some(Node::Bucket(b)) = m.entries.get_mut(name) else { panic!("no bucket") };
    for k in delete {
        assert!(b.entries.remove(k).is_some(), "the test deletes only present keys");
    }
    for (k, v) in append {
        b.entries.insert(k.clone(), Node::Value(v.clone()));
    }
    m
}

/// Patches `input` (built from `model`) with the edit and checks the output;
/// returns it, or `None` when the plan declined.
fn patch_and_check(
    input: &[u8],
    model: &Tree,
    name: &[u8],
    delete: &[Vec<u8>],
    append: &[(Vec<u8>, Vec<u8>)],
) -> Option<(Vec<u8>, Patch)> {
    let db = Db::open(input).unwrap();
    let dels: Vec<&[u8]> = delete.iter().map(Vec::as_slice).collect();
    let edits = HashMap::from([(name, Edit::Change { delete: &dels, append })]);
    let patch = plan(&db, &edits).unwrap()?;
    // Deterministic.
    let again = plan(&db, &edits).unwrap().unwrap();
    assert!(again.pages == patch.pages && again.meta == patch.meta && again.replaced == patch.replaced);
    let out = output(input, &patch);
    let back = read_tree(&Db::open(&out).unwrap().root().unwrap());
    let want = edited_model(model, name, delete, append);
    assert!(back == want, "the patched output reads back different from the model");
    // Page accounting.
    let (before, after) = (reached(input), reached(&out));
    let carried = usize::try_from(patch.carried).unwrap();
    assert_eq!(after.len() as u64, patch.meta.pgid);
    for id in 0..carried {
        assert!(!after[id] || before[id], "carried page {id} was free in the input and is reached now");
    }
    for (id, r) in after.iter().enumerate().skip(carried) {
        assert!(r, "new page {id} is not reached");
    }
    let lost = (0..carried).filter(|&id| before[id] && !after[id]).count() as u64;
    assert_eq!(lost, patch.replaced, "replaced pages");
    let new_pages = patch.pages.len() / db.page_size();
    assert_eq!((patch.meta.pgid - patch.carried) as usize, new_pages);
    Some((out, patch))
}

/// How a case picks the keys to delete from the leaves of the edited bucket.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// Each key with probability 1/n.
    Random(u32),
    /// Every key of one leaf.
    Leaf(usize),
    /// The first key of leaves, each with probability 1/n.
    FirstKeys(u32),
    /// Every key of a run of adjacent leaves.
    Leaves(usize, usize),
    /// Every key of the bucket.
    All,
    /// No key.
    Nothing,
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        4 => (1u32..40).prop_map(Pick::Random),
        2 => any::<usize>().prop_map(Pick::Leaf),
        2 => (1u32..4).prop_map(Pick::FirstKeys),
        2 => (any::<usize>(), 1usize..200).prop_map(|(a, n)| Pick::Leaves(a, n)),
        1 => Just(Pick::All),
        1 => Just(Pick::Nothing),
    ]
}

/// A small deterministic generator for the random picks.
struct Rng(u64);

impl Rng {
    fn one_in(&mut self, n: u32) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.is_multiple_of(u64::from(n))
    }
}

fn picked(leaves: &[Vec<Vec<u8>>], p: Pick, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed | 1);
    let n = leaves.len().max(1);
    let mut out: Vec<Vec<u8>> = match p {
        Pick::Random(k) => leaves.iter().flatten().filter(|_| rng.one_in(k)).cloned().collect(),
        Pick::Leaf(i) => leaves.get(i % n).cloned().unwrap_or_default(),
        Pick::FirstKeys(k) => leaves.iter().filter_map(|l| l.first()).filter(|_| rng.one_in(k)).cloned().collect(),
        Pick::Leaves(a, len) => leaves.iter().skip(a % n).take(len).flatten().cloned().collect(),
        Pick::All => leaves.iter().flatten().cloned().collect(),
        Pick::Nothing => Vec::new(),
    };
    out.sort();
    out
}

/// Keys after `last`, increasing.
fn appended(last: Option<&Vec<u8>>, n: usize, vlen: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let base = last.cloned().unwrap_or_else(|| vec![0x10]);
    (0..n)
        .map(|i| {
            let mut k = base.clone();
            k.extend_from_slice(&[0xff, u8::try_from(i).unwrap()]);
            (k, vec![i as u8; vlen])
        })
        .collect()
}

/// A values-only bucket: keys of one length (branch keys then never grow) or of any length.
fn values_bucket(max: usize) -> impl Strategy<Value = Tree> {
    let fixed = prop::collection::btree_map(prop::collection::vec(any::<u8>(), 17), small_value(), 0..max);
    let any_len = prop::collection::btree_map(support::model::key(), small_value(), 0..max);
    (prop_oneof![fixed, any_len], any::<u64>()).prop_map(|(entries, sequence)| Tree {
        sequence,
        entries: entries.into_iter().map(|(k, v)| (k, Node::Value(v))).collect(),
    })
}

/// Values mostly small; a large one now and then (its leaf then spans pages).
fn small_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        30 => prop::collection::vec(any::<u8>(), 0..64),
        6 => prop::collection::vec(any::<u8>(), 64..600),
        1 => value(),
    ]
}

/// The edited bucket beside up to three others (so the root stays one leaf).
fn db_tree(max: usize) -> impl Strategy<Value = Tree> {
    (values_bucket(max), prop::collection::vec(tree(), 0..3)).prop_map(|(edited, others)| {
        let mut entries = BTreeMap::new();
        entries.insert(EDITED.to_vec(), Node::Bucket(edited));
        for (i, t) in others.into_iter().enumerate() {
            entries.insert(vec![b'o', i as u8], Node::Bucket(t));
        }
        Tree { sequence: 0, entries }
    })
}

fn small_options() -> impl Strategy<Value = BuildOptions> {
    (prop_oneof![Just(1024u32), Just(4096)], prop_oneof![Just(1.0f64), 0.1f64..1.0], 1u64..1000).prop_map(
        |(page_size, fill_percent, txid)| BuildOptions { page_size, fill_percent, txid, inline_buckets: true },
    )
}

/// Whether the root bucket of `data` is one leaf (a patch rewrites only such a root).
fn root_is_one_leaf(data: &[u8]) -> bool {
    let db = Db::open(data).unwrap();
    db.pages().page(db.meta().root.root).unwrap().header.page_type() == PageType::Leaf
}

/// Whether every key of the edited bucket has one length.
fn fixed_keys(model: &Tree) -> bool {
    let Some(Node::Bucket(b)) = model.entries.get(EDITED) else { return false };
    b.entries.keys().all(|k| k.len() == 17)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_deletes_and_appends_match_the_model(
        model in db_tree(1500),
        opts in small_options(),
        p in pick(),
        seed in any::<u64>(),
        (n_append, vlen) in prop_oneof![3 => Just((0usize, 0usize)), 1 => (1usize..20, 0usize..100)],
    ) {
        let input = build(&model, opts);
        let leaves = leaves(&input, EDITED);
        let delete = picked(&leaves, p, seed);
        let Some(Node::Bucket(b)) = model.entries.get(EDITED) else { unreachable!() };
        let append = appended(b.entries.keys().next_back(), n_append, vlen);
        let outcome = patch_and_check(&input, &model, EDITED, &delete, &append);
        // Deletes alone with keys of one length never grow a node: always patched.
        if append.is_empty() && fixed_keys(&model) && root_is_one_leaf(&input) && !oversized_leaf(&input, EDITED) {
            prop_assert!(outcome.is_some(), "a delete-only edit declined");
        }
    }
}

/// A bucket of `n` keys of 17 bytes (like etcd's revision keys), values of 0..40 bytes.
fn big_model(n: u32) -> Tree {
    let entries = (0..n)
        .map(|i| {
            let mut k = vec![0u8; 17];
            k[..8].copy_from_slice(&u64::from(i).to_be_bytes());
            k[8] = b'_';
            (k, Node::Value(vec![(i % 251) as u8; (i % 41) as usize]))
        })
        .collect();
    let mut root = BTreeMap::new();
    root.insert(EDITED.to_vec(), Node::Bucket(Tree { sequence: 5, entries }));
    let small = [(b"a".to_vec(), Node::Value(b"1".to_vec()))].into_iter().collect();
    root.insert(b"meta".to_vec(), Node::Bucket(Tree { sequence: 0, entries: small }));
    Tree { sequence: 0, entries: root }
}

fn page4k() -> BuildOptions {
    BuildOptions { page_size: 4096, ..BuildOptions::default() }
}

/// Named deep-tree cases: (name, keys deleted, entries appended).
type Case = (&'static str, Vec<Vec<u8>>, Vec<(Vec<u8>, Vec<u8>)>);

fn deep_cases(leaves: &[Vec<Vec<u8>>], groups: &[usize]) -> Vec<Case> {
    let in_last_child = *groups.last().unwrap();
    assert!(groups.len() >= 3 && in_last_child > 10, "{groups:?}");
    let all: Vec<Vec<u8>> = leaves.iter().flatten().cloned().collect();
    let n = leaves.len();
    let last = all.last().cloned();
    let mut cases: Vec<Case> = vec![
        ("one key", vec![all[all.len() / 2].clone()], vec![]),
        ("first key of the bucket", vec![all[0].clone()], vec![]),
        ("last key of the bucket", vec![all[all.len() - 1].clone()], vec![]),
        ("first key of a middle leaf", vec![leaves[n / 2][0].clone()], vec![]),
        ("first key of every leaf", leaves.iter().map(|l| l[0].clone()).collect(), vec![]),
        ("every key of the first leaf", leaves[0].clone(), vec![]),
        ("every key of a middle leaf", leaves[n / 2].clone(), vec![]),
        ("every key of the last leaf", leaves[n - 1].clone(), vec![]),
        ("every key of the last leaf, with appends", leaves[n - 1].clone(), appended(last.as_ref(), 3, 10)),
        ("appends only", vec![], appended(last.as_ref(), 5, 10)),
        ("every key of half the leaves", leaves[..n / 2].iter().flatten().cloned().collect(), vec![]),
        (
            "every key outside the root's last child",
            leaves[..n - in_last_child].iter().flatten().cloned().collect(),
            vec![],
        ),
        ("every key but the last 10 leaves'", leaves[..n - 10].iter().flatten().cloned().collect(), vec![]),
        ("every key but the last leaf's", leaves[..n - 1].iter().flatten().cloned().collect(), vec![]),
        ("every key but the first leaf's", leaves[1..].iter().flatten().cloned().collect(), vec![]),
        ("every key but one", all[1..].to_vec(), vec![]),
        ("every key", all.clone(), vec![]),
        ("every key, with appends", all.clone(), appended(last.as_ref(), 2, 3)),
        ("every 7th key", all.iter().step_by(7).cloned().collect(), vec![]),
    ];
    cases.push(("every other key", all.iter().step_by(2).cloned().collect(), vec![]));
    // An appended key may take the place of a deleted one (a revision marker
    // at the revision of the dropped entry that held it).
    let last_key = all[all.len() - 1].clone();
    cases.push(("the last key deleted and appended again", vec![last_key.clone()], vec![(last_key, Vec::new())]));
    let leaf = leaves[n - 1].clone();
    let again = vec![(leaf[0].clone(), b"x".to_vec()), (leaf[leaf.len() - 1].clone(), Vec::new())];
    cases.push(("the last leaf emptied and its first and last keys appended", leaf, again));
    cases
}

#[test]
fn deep_trees_patch_every_shape() {
    let model = big_model(40_000);
    let input = build(&model, page4k());
    assert_eq!(depth(&input, EDITED), 3, "the test wants a tree of branches of branches");
    let leaves = leaves(&input, EDITED);
    let groups = leaves_per_root_child(&input, EDITED);
    for (name, delete, append) in deep_cases(&leaves, &groups) {
        let (out, patch) =
            patch_and_check(&input, &model, EDITED, &delete, &append).unwrap_or_else(|| panic!("{name}: declined"));
        let d = depth(&out, EDITED);
        match name {
            "every key" | "every key but one" => assert_eq!(d, 0, "{name}: an inline bucket"),
            "every key, with appends" => assert_eq!(d, 0, "{name}: an inline bucket of the appends"),
            "every key but the last leaf's" | "every key but the first leaf's" => {
                assert_eq!(d, 1, "{name}: the root collapses to the leaf")
            }
            "every key outside the root's last child" | "every key but the last 10 leaves'" => {
                assert_eq!(d, 2, "{name}: the root collapses to a branch")
            }
            _ => assert_eq!(d, 3, "{name}"),
        }
        // A delete of one key rewrites one page per level (and the root bucket's leaf).
        if name == "one key" {
            assert_eq!(patch.replaced, 4, "{name}");
            assert_eq!(patch.pages.len(), 4 * 4096, "{name}");
        }
        // The collapsed-onto child is carried: only the dropped pages, the
        // root branch and the root bucket's leaf are replaced.
        if name == "every key outside the root's last child" {
            let dropped_leaves = (leaves.len() - groups.last().unwrap()) as u64;
            let dropped_branches = (groups.len() - 1) as u64;
            assert_eq!(patch.replaced, dropped_leaves + dropped_branches + 2, "{name}");
            assert_eq!(patch.pages.len(), 4096, "{name}: only the root bucket's leaf is new");
        }
    }
}

#[test]
fn inline_buckets_delete_from_their_image() {
    let entries = (0u8..10).map(|i| (vec![b'k', i], Node::Value(vec![i; 3]))).collect();
    let model = Tree {
        sequence: 0,
        entries: [(EDITED.to_vec(), Node::Bucket(Tree { sequence: 9, entries }))].into_iter().collect(),
    };
    let input = build(&model, page4k());
    assert_eq!(depth(&input, EDITED), 0);
    let keys: Vec<Vec<u8>> = (0u8..10).map(|i| vec![b'k', i]).collect();
    for delete in [vec![keys[0].clone()], vec![keys[3].clone(), keys[9].clone()], keys.clone()] {
        let append = appended(keys.last(), 2, 5);
        for append in [vec![], append] {
            let (out, patch) = patch_and_check(&input, &model, EDITED, &delete, &append).unwrap();
            assert_eq!(depth(&out, EDITED), 0);
            assert_eq!(patch.replaced, 1, "only the root bucket's page");
            let db = Db::open(&out).unwrap();
            assert_eq!(db.bucket(&[EDITED]).unwrap().unwrap().sequence(), 9);
        }
    }
}

/// A bucket of `n` 17-byte keys with values of `vlen` bytes each.
fn model_of(n: u32, vlen: usize) -> Tree {
    let mut t = big_model(n);
    if let Some(Node::Bucket(b)) = t.entries.get_mut(EDITED) {
        for v in b.entries.values_mut() {
            *v = Node::Value(vec![7; vlen]);
        }
    }
    t
}

/// Appends that outgrow the bucket's last leaf, patched and checked against
/// the model: (name, input, output).
fn grown_cases() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut case = |name: &str, model: Tree, opts: BuildOptions, delete_first: bool, n: usize, vlen: usize| {
        let input = build(&model, opts);
        let leaves = leaves(&input, EDITED);
        let last = leaves.last().unwrap().last().cloned();
        let delete = if delete_first { vec![leaves[0][0].clone()] } else { Vec::new() };
        let (o, _) = patch_and_check(&input, &model, EDITED, &delete, &appended(last.as_ref(), n, vlen))
            .unwrap_or_else(|| panic!("{name}: declined"));
        out.push((name.to_string(), input, o));
    };
    // Small pages, a delete elsewhere: the last leaf splits in several.
    case("small pages", big_model(40), BuildOptions { page_size: 1024, ..BuildOptions::default() }, true, 200, 50);
    // A bucket whose root is one leaf: the root splits, a branch goes above.
    case("root leaf", model_of(30, 40), page4k(), false, 60, 40);
    // A deep tree: its last leaf splits, the branch above takes the parts.
    case("deep tree", big_model(40_000), page4k(), false, 250, 100);
    // Large values (each in an overflow run, as etcd's big objects): put one
    // at a time, as etcd does, they gather four to the last leaf (bbolt never
    // splits four); one more entry, an empty marker, splits it in two.
    let mut model = model_of(8, 3000);
    let mut input = build(&model, page4k());
    let last_leaf = |input: &[u8]| leaves(input, EDITED).last().unwrap().clone();
    while last_leaf(&input).len() < 4 {
        let append = appended(last_leaf(&input).last(), 1, 3000);
        let (o, _) = patch_and_check(&input, &model, EDITED, &[], &append).expect("large values: declined");
        model = edited_model(&model, EDITED, &[], &append);
        input = o;
    }
    let append = appended(last_leaf(&input).last(), 1, 0);
    let (o, _) = patch_and_check(&input, &model, EDITED, &[], &append).expect("large values: declined");
    out.push(("large values".to_string(), input, o));
    out
}

#[test]
fn appends_that_outgrow_a_page_split_as_bbolt_spills() {
    for (name, input, out) in grown_cases() {
        // No leaf larger than a page with more than four elements is left.
        assert!(!oversized_leaf(&out, EDITED), "{name}: an oversized leaf");
        assert!(leaves(&out, EDITED).len() > leaves(&input, EDITED).len(), "{name}: no leaf was added");
        if name == "root leaf" {
            assert_eq!((depth(&input, EDITED), depth(&out, EDITED)), (1, 2), "{name}: depth");
        }
    }
}

#[test]
fn caller_bugs_are_errors_with_the_bucket_and_key() {
    let model = big_model(2000);
    let input = build(&model, page4k());
    let db = Db::open(&input).unwrap();
    let absent = b"no such key".to_vec();
    let present = leaves(&input, EDITED)[3][2].clone();
    let run = |delete: Vec<&[u8]>| {
        let edits = HashMap::from([(EDITED, Edit::Change { delete: &delete, append: &[] })]);
        plan(&db, &edits).map(|p| p.is_some())
    };
    let kind = |r: Result<bool, Error>| match r {
        Err(Error::Build(f)) => {
            assert_eq!(f.bucket, vec![EDITED.to_vec()]);
            (f.kind, f.key)
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(kind(run(vec![&absent])), (BuildError::AbsentKey, absent.clone()));
    assert_eq!(kind(run(vec![&present, &absent])).0, BuildError::AbsentKey);
    assert_eq!(kind(run(vec![&present, &present])), (BuildError::KeyOrder, present.clone()));
    let err = run(vec![&absent]).unwrap_err();
    assert!(err.to_string().contains("not in the bucket"), "{err}");
}

#[test]
fn nested_buckets_decline() {
    let mut model = big_model(500);
    let Some(Node::Bucket(b)) = model.entries.get_mut(EDITED) else { unreachable!() };
    let nested = Tree { sequence: 1, entries: [(b"x".to_vec(), Node::Value(vec![1]))].into_iter().collect() };
    let name = b.entries.keys().nth(100).unwrap().clone();
    b.entries.insert(name.clone(), Node::Bucket(nested));
    let input = build(&model, page4k());
    let db = Db::open(&input).unwrap();
    let leaves = leaves(&input, EDITED);
    let home = leaves.iter().position(|l| l.contains(&name)).unwrap();
    // Deleting the nested bucket, or any key of its leaf: declined.
    for k in [&name, &leaves[home][0]] {
        let delete = [k.as_slice()];
        let edits = HashMap::from([(EDITED, Edit::Change { delete: &delete, append: &[] })]);
        assert!(plan(&db, &edits).unwrap().is_none());
    }
    // A key of another leaf: patched.
    let other = leaves[(home + 2) % leaves.len()][0].clone();
    assert!(patch_and_check(&input, &model, EDITED, &[other], &[]).is_some());
}

#[test]
fn go_bbolt_accepts_patched_deletes() {
    let dir = support::scratch("patch-go");
    let model = big_model(40_000);
    let input = build(&model, page4k());
    let leaves = leaves(&input, EDITED);
    let mut outs = Vec::new();
    for (name, delete, append) in deep_cases(&leaves, &leaves_per_root_child(&input, EDITED)) {
        let (out, _) = patch_and_check(&input, &model, EDITED, &delete, &append).unwrap();
        outs.push((name.to_string(), out));
    }
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    use proptest::strategy::ValueTree;
    for i in 0..6 {
        let model = db_tree(1500).new_tree(&mut runner).unwrap().current();
        let opts = small_options().new_tree(&mut runner).unwrap().current();
        let input = build(&model, opts);
        let delete = picked(&leaves_of(&input), Pick::Random(3), i);
        if let Some((out, _)) = patch_and_check(&input, &model, EDITED, &delete, &[]) {
            outs.push((format!("random {i}"), out));
        }
    }
    outs.extend(grown_cases().into_iter().map(|(name, _, out)| (format!("grown {name}"), out)));
    for (name, out) in &outs {
        let f = dir.join(format!("{}.db", name.replace([' ', ','], "-")));
        std::fs::write(&f, out).unwrap();
        for (line, bin) in support::oracle_lines() {
            let o = std::process::Command::new(bin).args([OsStr::new("check"), f.as_os_str()]).output().unwrap();
            assert_eq!(
                (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned()),
                (Some(0), "OK\n".to_string()),
                "{name}: bbolt {line}"
            );
        }
    }
}

fn leaves_of(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
    leaves(input, EDITED)
}
