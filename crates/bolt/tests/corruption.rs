//! Corruption tests: each patches one field of a real etcd fixture and asserts the
//! exact problem and page id, from `check` and from iteration. None may panic.
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

use etcdsnap_bolt::walk::{walk, Visitor};
use etcdsnap_bolt::{BucketHeader, CorruptKind, Corruption, Db, MetaFault, PageHeader, PageType, Pgid};

const PAGE: usize = 4096;

fn fixture() -> Vec<u8> {
    std::fs::read(support::root().join("testdata/etcd-3.5.1/snapshot.db")).unwrap()
}

fn u32_at(d: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(d[o..o + 4].try_into().unwrap())
}
fn u64_at(d: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(d[o..o + 8].try_into().unwrap())
}
fn put_u16(d: &mut [u8], o: usize, v: u16) {
    d[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(d: &mut [u8], o: usize, v: u32) {
    d[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(d: &mut [u8], o: usize, v: u64) {
    d[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

fn header(d: &[u8], id: Pgid) -> PageHeader {
    PageHeader::parse(&d[id as usize * PAGE..]).unwrap()
}

/// Root page of the `key` bucket, which in the fixture is a branch.
fn key_root(d: &[u8]) -> Pgid {
    let db = Db::open(d).unwrap();
    let root = db.bucket(&[b"key"]).unwrap().unwrap().header().root;
    assert_eq!(header(d, root).page_type(), PageType::Branch, "fixture's key bucket must have a branch root");
    root
}

/// Child page ids of branch page `id`.
fn children(d: &[u8], id: Pgid) -> Vec<Pgid> {
    let h = header(d, id);
    (0..h.count as usize).map(|i| u64_at(d, id as usize * PAGE + 16 + 16 * i + 8)).collect()
}

/// The first leaf of the `key` bucket (leftmost descent).
fn first_key_leaf(d: &[u8]) -> Pgid {
    let mut id = key_root(d);
    while header(d, id).page_type() == PageType::Branch {
        id = children(d, id)[0];
    }
    id
}

/// A page with overflow pages.
fn page_with_overflow(d: &[u8]) -> Pgid {
    let db = Db::open(d).unwrap();
    let report = db.check();
    (2..db.hwm())
        .find(|&id| report.page_use[id as usize] == etcdsnap_bolt::PageUse::Tree && header(d, id).overflow > 0)
        .expect("fixture must have overflow pages")
}

fn check(d: &[u8]) -> Vec<Corruption> {
    let db = Db::open(d).unwrap();
    let report = db.check();
    assert_eq!(report.problem_count, report.problems.len() as u64);
    report.problems
}

struct Count(u64);
impl<'a> Visitor<'a> for Count {
    fn enter_bucket(&mut self, _: &[Vec<u8>], _: BucketHeader) -> etcdsnap_bolt::Result<()> {
        Ok(())
    }
    fn value(&mut self, _: &[Vec<u8>], _: &'a [u8], _: &'a [u8]) -> etcdsnap_bolt::Result<()> {
        self.0 += 1;
        Ok(())
    }
}

/// Iterates everything; returns the corruption that stopped it.
fn walk_error(d: &[u8]) -> Corruption {
    let db = Db::open(d).unwrap();
    let err = walk(&db, &mut Count(0)).expect_err("iteration must fail on this file");
    err.corruption().expect("a corrupt-data error").clone()
}

#[test]
fn pristine_fixture_is_clean() {
    let d = fixture();
    assert!(check(&d).is_empty());
    let db = Db::open(&d).unwrap();
    let mut n = Count(0);
    walk(&db, &mut n).unwrap();
    assert!(n.0 > 1000);
}

#[test]
fn meta_checksum() {
    let mut d = fixture();
    d[72] ^= 0x01; // meta 0 checksum; meta 1 takes over
    let db = Db::open(&d).unwrap();
    assert_eq!(db.metas().active, 1);
    let p = check(&d);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].page, Some(0));
    assert!(matches!(p[0].kind, CorruptKind::InvalidMeta { meta: 0, fault: MetaFault::Checksum { .. } }), "{p:?}");
    assert!(p[0].to_string().starts_with("page 0: meta 0: checksum error"), "{}", p[0]);
}

#[test]
fn meta_magic() {
    let mut d = fixture();
    d[16] ^= 0xff; // meta 0 magic
    let p = check(&d);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].page, Some(0));
    assert!(matches!(p[0].kind, CorruptKind::InvalidMeta { meta: 0, fault: MetaFault::Magic(_) }));
    d[PAGE + 16] ^= 0xff; // and meta 1: nothing left to open
    let err = Db::open(&d).unwrap_err();
    let c = err.corruption().unwrap();
    assert_eq!(c.page, Some(0));
    assert!(matches!(c.kind, CorruptKind::InvalidMeta { meta: 0, fault: MetaFault::Magic(0xed0c_da12) }), "{c:?}");
}

#[test]
fn page_flags() {
    let mut d = fixture();
    let leaf = first_key_leaf(&d);
    put_u16(&mut d, leaf as usize * PAGE + 8, 0x40);
    let p = check(&d);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].page, Some(leaf));
    assert_eq!(p[0].kind, CorruptKind::InvalidType { flags: 0x40, expected: "branch or leaf" });
    assert_eq!(p[0].bucket, vec![b"key".to_vec()]);
    let w = walk_error(&d);
    assert_eq!((w.page, w.kind), (Some(leaf), CorruptKind::InvalidType { flags: 0x40, expected: "branch or leaf" }));
}

#[test]
fn element_pos_past_page() {
    let mut d = fixture();
    let leaf = first_key_leaf(&d);
    put_u32(&mut d, leaf as usize * PAGE + 16 + 4, 0x7fff_ffff); // element 0 `pos`
    let count = u64::from(header(&d, leaf).count);
    let p = check(&d);
    assert_eq!(p.len(), 2, "{p:?}");
    // Found by the layout rule (data must follow the element array), then by the read.
    let layout = CorruptKind::ElementLayout { index: 0, found: 16 + 0x7fff_ffff, expected: 16 + 16 * count };
    assert_eq!((p[0].page, &p[0].kind), (Some(leaf), &layout));
    assert_eq!((p[1].page, &p[1].kind), (Some(leaf), &CorruptKind::ElementPastPage { index: 0 }));
    let w = walk_error(&d);
    assert_eq!((w.page, w.kind), (Some(leaf), CorruptKind::ElementPastPage { index: 0 }));
}

#[test]
fn branch_child_pointing_to_ancestor() {
    let mut d = fixture();
    let root = key_root(&d);
    let kids = children(&d, root);
    // Point the last child of the root at the root itself: a cycle.
    let last = kids.len() - 1;
    put_u64(&mut d, root as usize * PAGE + 16 + 16 * last + 8, root);
    let p = check(&d);
    assert!(!p.is_empty());
    assert_eq!((p[0].page, &p[0].kind), (Some(root), &CorruptKind::MultipleReferences), "{p:?}");
    let w = walk_error(&d);
    assert!(matches!(w.kind, CorruptKind::TooDeep { .. } | CorruptKind::Revisited), "{w:?}");
    // The leftmost-descent cycle too: first child = root.
    let mut d = fixture();
    put_u64(&mut d, root as usize * PAGE + 16 + 8, root);
    assert_eq!((check(&d)[0].page, &check(&d)[0].kind), (Some(root), &CorruptKind::MultipleReferences));
    let w = walk_error(&d);
    assert!(matches!(w.kind, CorruptKind::TooDeep { .. }), "{w:?}");
}

#[test]
fn overflow_past_hwm() {
    let mut d = fixture();
    let id = page_with_overflow(&d);
    put_u32(&mut d, id as usize * PAGE + 12, 0x00ff_ffff);
    let hwm = Db::open(&d).unwrap().hwm();
    let p = check(&d);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].page, &p[0].kind), (Some(id), &CorruptKind::OverflowPastHwm { overflow: 0x00ff_ffff, hwm }));
    assert_eq!(walk_error(&d).page, Some(id));
}

#[test]
fn two_keys_swapped() {
    let mut d = fixture();
    let leaf = first_key_leaf(&d);
    let base = leaf as usize * PAGE + 16;
    let (e0, e1) = (base, base + 16);
    let key0 = {
        let pos = u32_at(&d, e0 + 4) as usize;
        let ksize = u32_at(&d, e0 + 8) as usize;
        d[e0 + pos..e0 + pos + ksize].to_vec()
    };
    // Swap elements 0 and 1; `pos` is relative to each element, so adjust it by 16.
    let (f0, p0, k0, v0) = (u32_at(&d, e0), u32_at(&d, e0 + 4), u32_at(&d, e0 + 8), u32_at(&d, e0 + 12));
    let (f1, p1, k1, v1) = (u32_at(&d, e1), u32_at(&d, e1 + 4), u32_at(&d, e1 + 8), u32_at(&d, e1 + 12));
    for (o, v) in [(e0, f1), (e0 + 4, p1 + 16), (e0 + 8, k1), (e0 + 12, v1)] {
        put_u32(&mut d, o, v);
    }
    for (o, v) in [(e1, f0), (e1 + 4, p0 - 16), (e1 + 8, k0), (e1 + 12, v0)] {
        put_u32(&mut d, o, v);
    }
    let count = u64::from(header(&d, leaf).count);
    let p = check(&d);
    assert_eq!(p.len(), 3, "{p:?}");
    // Element 0's data is now where element 1's was: not right after the array.
    let layout = CorruptKind::ElementLayout { index: 0, found: 16 + u64::from(p1) + 16, expected: 16 + 16 * count };
    assert_eq!((p[0].page, &p[0].kind), (Some(leaf), &layout));
    assert_eq!((p[1].page, &p[1].kind), (Some(leaf), &CorruptKind::KeyOrder { index: 1 }));
    assert_eq!(p[1].key.as_deref(), Some(&key0[..]));
    assert!(p[1].to_string().contains("key[1] needs to be > than previous element"), "{}", p[1]);
    // The parent's key for the leaf is no longer the leaf's first key.
    assert!(matches!(p[2].kind, CorruptKind::BranchKeyMismatch { index: 0, child } if child == leaf), "{p:?}");
}

#[test]
fn truncated_file_is_reported_not_panicked() {
    let d = fixture();
    for cut in [0, 10, 100, PAGE, PAGE + 100, 2 * PAGE, d.len() / 2, d.len() - PAGE] {
        let t = &d[..cut];
        match Db::open(t) {
            Err(e) => assert!(e.corruption().is_some(), "{e}"),
            Ok(db) => {
                let r = db.check();
                assert!(!r.is_ok(), "cut at {cut} must be reported");
                assert!(r.problems.iter().any(|p| matches!(p.kind, CorruptKind::FileShorterThanHwm { .. })));
                let _ = walk(&db, &mut Count(0));
            }
        }
    }
}

#[test]
fn byte_patches_never_panic() {
    // Patch a deterministic sample of offsets in every page header and element area
    // of the real fixture with several values; open, check and walk must not panic.
    let d = fixture();
    let pages = d.len() / PAGE;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..400 {
        let page = (next() as usize) % pages;
        let off = page * PAGE + (next() as usize % 96);
        for v in [0x00u8, 0xff, 0x01, 0x80] {
            let mut m = d.clone();
            m[off] = v;
            if let Ok(db) = Db::open(&m) {
                let _ = db.check();
                let _ = walk(&db, &mut Count(0));
            }
        }
    }
}

/// Page id, element offset and bucket name of the first inline bucket in the root bucket's leaf.
fn inline_bucket(d: &[u8]) -> (Pgid, usize, Vec<u8>) {
    let db = Db::open(d).unwrap();
    let root = db.meta().root.root;
    assert_eq!(header(d, root).page_type(), PageType::Leaf);
    for i in 0..header(d, root).count as usize {
        let e = root as usize * PAGE + 16 + 16 * i;
        let (pos, ksize) = (u32_at(d, e + 4) as usize, u32_at(d, e + 8) as usize);
        if u32_at(d, e) & 1 == 1 && u64_at(d, e + pos + ksize) == 0 {
            return (root, e + pos + ksize + 16, d[e + pos..e + pos + ksize].to_vec());
        }
    }
    panic!("fixture must have an inline bucket");
}

#[test]
fn leaf_element_flag_bit_bbolt_never_sets() {
    let mut d = fixture();
    let leaf = first_key_leaf(&d);
    let e = leaf as usize * PAGE + 16 + 2 * 16;
    d[e] |= 0x02;
    let p = check(&d);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].page, &p[0].kind), (Some(leaf), &CorruptKind::UnknownElementFlags { index: 2, flags: 2 }));
    assert_eq!(p[0].key.as_ref().map(Vec::len), Some(17), "names the revision key: {}", p[0]);
    assert!(p[0].to_string().contains("flags 0x2 has bits bbolt never sets"), "{}", p[0]);
}

#[test]
fn lowered_count_breaks_the_element_layout() {
    let mut d = fixture();
    let leaf = first_key_leaf(&d);
    let count = header(&d, leaf).count;
    put_u16(&mut d, leaf as usize * PAGE + 10, count - 1);
    let p = check(&d);
    assert_eq!(p.len(), 1, "{p:?}");
    let expected = 16 + 16 * u64::from(count - 1);
    let kind = CorruptKind::ElementLayout { index: 0, found: expected + 16, expected };
    assert_eq!((p[0].page, &p[0].kind), (Some(leaf), &kind));
}

#[test]
fn overflow_larger_than_the_elements_need() {
    let mut d = fixture();
    let id = page_with_overflow(&d);
    let overflow = header(&d, id).overflow;
    put_u32(&mut d, id as usize * PAGE + 12, overflow + 1);
    let p = check(&d);
    let hit = p.iter().find(|c| matches!(c.kind, CorruptKind::OverflowMismatch { .. })).expect("overflow mismatch");
    assert_eq!(hit.page, Some(id));
    assert!(
        matches!(hit.kind, CorruptKind::OverflowMismatch { overflow: o, expected, .. } if o == overflow + 1 && expected == u64::from(overflow)),
        "{hit:?}"
    );
}

#[test]
fn inline_bucket_page_id_must_be_zero() {
    let mut d = fixture();
    let (root, image, name) = inline_bucket(&d);
    put_u64(&mut d, image, 7);
    let p = check(&d);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].page, &p[0].kind), (Some(root), &CorruptKind::InlinePageId { found: 7 }));
    assert_eq!(p[0].key.as_deref(), Some(&name[..]));
    assert_eq!(p[0].bucket, vec![name]);
}

#[test]
fn meta_page_header_fields() {
    let mut d = fixture();
    put_u16(&mut d, 10, 1); // meta 0 count
    put_u64(&mut d, PAGE, 3); // meta 1 id
    let p = check(&d);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!((p[0].page, &p[0].kind), (Some(0), &CorruptKind::MetaHeader { meta: 0, field: "count", value: 1 }));
    assert_eq!((p[1].page, &p[1].kind), (Some(1), &CorruptKind::MetaHeader { meta: 1, field: "id", value: 3 }));
}

#[test]
fn branch_key_that_is_only_a_lower_bound() {
    // Shorten the last key of the `key` bucket's root branch by one byte: still in
    // order and still a valid lower bound for the search, but not the child's first key.
    let mut d = fixture();
    let root = key_root(&d);
    let last = header(&d, root).count as usize - 1;
    let e = root as usize * PAGE + 16 + 16 * last;
    let ksize = u32_at(&d, e + 4); // branch element: pos, ksize, pgid
    put_u32(&mut d, e + 4, ksize - 1);
    let child = children(&d, root)[last];
    let p = check(&d);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].page, &p[0].kind), (Some(root), &CorruptKind::BranchKeyMismatch { index: last, child }));
    assert_eq!(p[0].key.as_ref().map(Vec::len), Some(16));
}

/// A crafted file: 256 nested buckets, each a chain of 63 one-child branch pages
/// over a leaf holding the next bucket (1 KiB pages). Every per-bucket cap allows
/// it; without the walk budget the checker recursed 16 000 levels and overflowed a
/// 2 MiB thread stack.
fn deep_nested_trees() -> (Vec<u8>, usize) {
    const PS: usize = 1024;
    const NEST: usize = 256;
    const DEPTH: usize = 63;
    let pages = 3 + NEST * (DEPTH + 1);
    let mut d = vec![0u8; pages * PS];
    let mut meta = etcdsnap_bolt::Meta {
        magic: etcdsnap_bolt::layout::MAGIC,
        version: etcdsnap_bolt::layout::VERSION,
        page_size: PS as u32,
        flags: 0,
        root: BucketHeader { root: 2, sequence: 0 },
        freelist: u64::MAX,
        pgid: pages as u64,
        txid: 2,
        checksum: 0,
    };
    for slot in 0..2u64 {
        meta.txid = 2 - slot;
        let page = etcdsnap_bolt::meta::meta_page(&meta, slot);
        d[slot as usize * PS..(slot as usize + 1) * PS].copy_from_slice(&page);
    }
    let node = |d: &mut Vec<u8>, id: usize, flags: u16, elem: [u32; 4], tail: u64, data: &[u8]| {
        let p = id * PS;
        put_u64(d, p, id as u64);
        put_u16(d, p + 8, flags);
        put_u16(d, p + 10, 1);
        for (i, v) in elem.iter().enumerate() {
            put_u32(d, p + 16 + 4 * i, *v);
        }
        if flags == 0x01 {
            put_u64(d, p + 24, tail);
        }
        d[p + 32..p + 32 + data.len()].copy_from_slice(data);
    };
    let bucket_value = |root: u64| {
        let mut v = b"b".to_vec();
        v.extend(root.to_le_bytes());
        v.extend(0u64.to_le_bytes());
        v
    };
    // Root bucket: one bucket `b` rooted at page 3.
    node(&mut d, 2, 0x02, [1, 16, 1, 16], 0, &bucket_value(3));
    for k in 0..NEST {
        let base = 3 + k * (DEPTH + 1);
        for level in 0..DEPTH {
            // branch element: pos 16, ksize 1, child = next page
            node(&mut d, base + level, 0x01, [16, 1, 0, 0], (base + level + 1) as u64, b"b");
        }
        let leaf = base + DEPTH;
        if k + 1 < NEST {
            node(&mut d, leaf, 0x02, [1, 16, 1, 16], 0, &bucket_value(leaf as u64 + 1));
        } else {
            node(&mut d, leaf, 0x02, [0, 16, 1, 1], 0, b"bv");
        }
    }
    // The root bucket's leaf and 15 buckets of 64 levels, then 63 branches of the
    // 16th: its leaf is level 1025.
    (d, 3 + 15 * (DEPTH + 1) + DEPTH)
}

#[test]
fn deep_nested_bucket_trees_stop_at_the_walk_budget_on_a_2_mib_stack() {
    let (d, stopped_at) = deep_nested_trees();
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let db = Db::open(&d).unwrap();
            let report = db.check();
            let mut n = Count(0);
            walk(&db, &mut n).unwrap();
            (report.problems, n.0)
        })
        .unwrap();
    let (p, values) = handle.join().expect("no stack overflow, no panic");
    assert_eq!(p.len(), 1, "{p:?}");
    let max = etcdsnap_bolt::check::MAX_WALK_DEPTH;
    assert_eq!((p[0].page, &p[0].kind), (Some(stopped_at as u64), &CorruptKind::WalkTooDeep { max }));
    assert_eq!(p[0].bucket.len(), 16, "bucket path of the 16th nested bucket");
    // Iteration keeps one cursor per nesting level and does reach the innermost value.
    assert_eq!(values, 1);
}

#[test]
fn inline_bucket_root_pointed_at_a_page() {
    // An inline bucket's root 0 with one bit set: the bucket now claims a page of
    // its own while its value still carries the inline image.
    let mut d = fixture();
    let (root, image, name) = inline_bucket(&d);
    let header = image - 16;
    put_u64(&mut d, header, 256);
    let p = check(&d);
    let hit = p
        .iter()
        .find(|c| matches!(c.kind, CorruptKind::PagedBucketValueLength { .. }))
        .unwrap_or_else(|| panic!("{p:?}"));
    assert_eq!(hit.page, Some(root));
    assert_eq!(hit.key.as_deref(), Some(&name[..]));
    assert_eq!(hit.kind.code(), "paged-bucket-value-length");
}
