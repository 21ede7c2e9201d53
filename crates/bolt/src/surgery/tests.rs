use super::*;
use crate::check::PageUse;
use crate::layout::{BucketHeader, PageType, MAGIC, VERSION};
use crate::page::Pages;
use crate::{Db, Freelist};

fn fixture() -> Vec<u8> {
    crate::testdata("etcd-3.5.1/member/snap/db")
}

fn code(e: &crate::Error) -> &'static str {
    e.code()
}

fn keys(data: &[u8], bucket: &[u8]) -> Vec<Vec<u8>> {
    let db = Db::open(data).unwrap();
    db.bucket(&[bucket]).unwrap().unwrap().cursor().map(|e| e.unwrap().key.to_vec()).collect()
}

fn assert_clean(data: &[u8]) {
    let r = Db::open(data).unwrap().check();
    assert!(r.is_ok(), "{:?}", r.problems);
}

/// A reachable page of `kind` with at least `min` elements, and its count.
fn node_page(data: &[u8], kind: PageType, min: u16) -> (Pgid, u16) {
    let db = Db::open(data).unwrap();
    let report = db.check();
    (0u64..)
        .zip(&report.page_use)
        .filter(|(_, u)| **u == PageUse::Tree)
        .map(|(id, _)| (id, db.pages().page(id).unwrap().header))
        .find(|(_, h)| h.page_type() == kind && h.count >= min)
        .map(|(id, h)| (id, h.count))
        .unwrap()
}

#[test]
fn revert_meta_reads_the_older_state() {
    let data = fixture();
    let before = Db::open(&data).unwrap().meta().txid;
    let r = revert_meta(&data).unwrap();
    assert_eq!((r.target, r.source, r.target_txid, r.txid), (1, 0, before, before - 1));
    let out = r.rewrite.apply(&data);
    assert_eq!(out.len(), data.len());
    let db = Db::open(&out).unwrap();
    assert_eq!(db.meta().txid, before - 1);
    assert!(db.metas().slots.iter().all(|s| s.valid().is_some()));
    assert_clean(&out);
}

#[test]
fn revert_meta_replaces_a_torn_newer_meta() {
    let mut data = fixture();
    data[4096 + 72] ^= 1; // meta 1's checksum: bbolt already reads meta 0
    let r = revert_meta(&data).unwrap();
    assert!(matches!(r.target_fault, Some(MetaFault::Checksum { .. })));
    assert_clean(&r.rewrite.apply(&data));
}

#[test]
fn revert_meta_refuses_an_invalid_older_meta() {
    let mut data = fixture();
    data[72] ^= 1; // meta 0's checksum; meta 1 (txid 323) is the newer
    let e = revert_meta(&data).unwrap_err();
    assert_eq!(code(&e), "surgery-invalid-meta");
    assert!(e.to_string().starts_with("page 0: meta 0 is not valid (checksum error"), "{e}");
}

#[test]
fn clear_leaf_elements_removes_those_keys() {
    let data = fixture();
    let before = keys(&data, b"key");
    let (leaf, count) = node_page(&data, PageType::Leaf, 4);
    let node_keys: Vec<Vec<u8>> = {
        let db = Db::open(&data).unwrap();
        let node = db.pages().node(leaf).unwrap();
        (0..usize::from(count)).map(|i| node.key(i).unwrap().to_vec()).collect()
    };
    let c = clear_page_elements(&data, leaf, 1, Some(3)).unwrap();
    assert_eq!((c.removed, c.branch, c.first_key_changed, c.orphans_pages), (2, false, false, false));
    let out = c.rewrite.apply(&data);
    assert_clean(&out);
    let after = keys(&out, b"key");
    if before.contains(&node_keys[1]) {
        assert_eq!(after.len(), before.len() - 2);
        assert!(!after.contains(&node_keys[1]) && !after.contains(&node_keys[2]));
        assert!(after.contains(&node_keys[0]) && after.contains(&node_keys[3]));
    }
    // To the end (`None`) keeps the first element only.
    let c = clear_page_elements(&data, leaf, 1, None).unwrap();
    assert_eq!(c.removed, usize::from(count) - 1);
    assert_clean(&c.rewrite.apply(&data));
}

#[test]
fn clear_refusals_name_the_page() {
    let data = fixture();
    let e = clear_page_elements(&data, 0, 0, None).unwrap_err();
    assert_eq!(code(&e), "surgery-not-a-node");
    assert_eq!(e.to_string(), "page 0: can't clear elements in a meta page (offset 0)");
    let (leaf, count) = node_page(&data, PageType::Leaf, 2);
    let n = usize::from(count);
    for (from, to, msg) in [
        (n, None, format!("the start index ({n}) is out of range [0, {n})")),
        (0, Some(n + 1), format!("the end index ({}) is out of range [0, {n}]", n + 1)),
        (1, Some(1), "the start index (1) is equal to the end index (1)".into()),
        (1, Some(0), "the start index (1) is bigger than the end index (0)".into()),
    ] {
        let e = clear_page_elements(&data, leaf, from, to).unwrap_err();
        assert_eq!(code(&e), "surgery-index-range");
        assert!(e.to_string().contains(&msg) && e.to_string().starts_with(&format!("page {leaf}: ")), "{e}");
    }
    let (branch, _) = node_page(&data, PageType::Branch, 2);
    let e = clear_page_elements(&data, branch, 0, None).unwrap_err();
    assert_eq!(code(&e), "surgery-empty-branch");
    assert!(e.to_string().starts_with(&format!("page {branch}: ")));
    // Beyond the high-water mark: a corruption error naming the page.
    let hwm = Db::open(&data).unwrap().hwm();
    let e = clear_page_elements(&data, hwm, 0, None).unwrap_err();
    assert_eq!(code(&e), "out-of-bounds");
}

#[test]
fn clear_branch_elements_orphans_subtrees_and_abandons_a_freelist() {
    // First give the file a persisted freelist, so the clear has one to abandon.
    // (The rebuild leaves its freelist in the new meta only.)
    let r = rebuild_freelist(&fixture()).unwrap();
    let data = r.rewrite.apply(&fixture());
    let (branch, count) = node_page(&data, PageType::Branch, 2);
    let c = clear_page_elements(&data, branch, usize::from(count) - 1, None).unwrap();
    assert!(c.branch && c.orphans_pages);
    assert_eq!(c.freelist_abandoned, vec![r.meta]);
    let out = c.rewrite.apply(&data);
    assert!(Db::open(&out).unwrap().metas().slots.iter().all(|s| !s.valid().unwrap().has_freelist()));
    assert_clean(&out);
}

#[test]
fn rebuild_writes_the_free_pages_of_the_tree() {
    let data = fixture();
    let free_before = Db::open(&data).unwrap().check().stats.free_pages;
    let r = rebuild_freelist(&data).unwrap();
    assert_eq!(r.previous, PreviousFreelist::NotPersisted);
    let out = r.rewrite.apply(&data);
    let db = Db::open(&out).unwrap();
    assert_eq!(db.meta().txid, r.txid);
    assert_eq!(db.meta().freelist, r.page);
    let Freelist::Persisted { ids, .. } = db.freelist().unwrap() else { panic!("no freelist") };
    assert_eq!(ids.len() as u64, r.free);
    // The freelist took its pages from the free ones (or from the end).
    assert_eq!(r.free + u64::from(r.overflow) + 1, free_before + (r.hwm.1 - r.hwm.0));
    assert_clean(&out);

    // A freelist that lists live pages is replaced by a right one.
    let mut bad = out.clone();
    let (leaf, _) = node_page(&out, PageType::Leaf, 1);
    let at = usize::try_from(r.page).unwrap() * 4096 + 16;
    bad[at..at + 8].copy_from_slice(&leaf.to_le_bytes());
    let report = Db::open(&bad).unwrap().check();
    assert!(report.problems.iter().any(|p| p.kind == crate::CorruptKind::ReachableFreed));
    let again = rebuild_freelist(&bad).unwrap();
    assert!(matches!(again.previous, PreviousFreelist::Persisted { .. }));
    assert_clean(&again.rewrite.apply(&bad));
}

#[test]
fn rebuild_refuses_a_damaged_tree() {
    let mut data = fixture();
    let (leaf, _) = node_page(&data, PageType::Leaf, 1);
    let at = usize::try_from(leaf).unwrap() * 4096 + 8;
    data[at] = 0x40; // page flags: unknown type
    let e = rebuild_freelist(&data).unwrap_err();
    assert_eq!(code(&e), "surgery-damaged-tree");
    assert!(e.to_string().starts_with(&format!("page {leaf}: the tree is damaged")), "{e}");
}

#[test]
fn abandon_sets_the_sentinel_in_valid_metas_only() {
    let r = rebuild_freelist(&fixture()).unwrap();
    let data = r.rewrite.apply(&fixture());
    let slot = usize::from(r.meta);
    let mut damaged = data.clone();
    damaged[slot * 4096 + 72] ^= 1;
    let a = abandon_freelist(&damaged).unwrap();
    assert_eq!((a.invalid.clone(), a.metas.len()), (vec![r.meta], 0));
    let out = a.rewrite.apply(&damaged);
    assert_eq!(out, damaged, "the invalid meta is left alone");
    let a = abandon_freelist(&data).unwrap();
    assert_eq!(a.metas, vec![r.meta]);
    let out = a.rewrite.apply(&data);
    assert!(!Db::open(&out).unwrap().meta().has_freelist());
    assert_clean(&out);
}

#[test]
fn first_fit_runs() {
    assert_eq!(freelist::first_run_for_tests(&[2, 3, 5, 6, 7, 9], 3), Some(2));
    assert_eq!(freelist::first_run_for_tests(&[2, 3, 5, 6, 7, 9], 1), Some(0));
    assert_eq!(freelist::first_run_for_tests(&[2, 4, 6], 2), None);
    assert_eq!(freelist::first_run_for_tests(&[], 1), None);
}

#[test]
fn overflowed_freelist_reads_back() {
    let ps = 1024usize;
    let ids: Vec<Pgid> = (100..100 + 70_000).collect();
    let page = freelist::page_for_tests(3, &ids, ps);
    assert_eq!(u16::from_le_bytes([page[10], page[11]]), 0xFFFF);
    let mut data = vec![0u8; 3 * ps];
    data.extend_from_slice(&page);
    let hwm = (data.len() / ps) as u64;
    let meta = Meta {
        magic: MAGIC,
        version: VERSION,
        page_size: ps as u32,
        flags: 0,
        root: BucketHeader { root: 2, sequence: 0 },
        freelist: 3,
        pgid: hwm,
        txid: 1,
        checksum: 0,
    };
    let Freelist::Persisted { ids: read, .. } = Freelist::read(&Pages::new(&data, ps, hwm), &meta).unwrap() else {
        panic!()
    };
    assert_eq!(read, ids);
}

#[test]
fn rewrite_streams_edits_and_zero_fill() {
    let mut r = Rewrite::new(4);
    r.put(6, vec![9, 9]);
    r.put(1, vec![7]);
    r.put(1, vec![8]);
    assert_eq!(r.apply(&[1, 2, 3, 4]), vec![1, 8, 3, 4, 0, 0, 9, 9]);
    assert_eq!(r.len(), 8);
}
