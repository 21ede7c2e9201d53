//! Copy-on-write edits of an existing file, the way a bbolt transaction
//! commits them: every page an edit does not touch is carried byte for byte;
//! the pages on the changed root-to-leaf paths are written again as new pages
//! past the old high-water mark; new meta pages point at the new root.
//!
//! A patch applies only where it keeps bbolt's own page shapes: the root
//! bucket is one leaf page, edited top-level buckets hold no nested buckets,
//! appended entries sort after every key of their bucket, and every rewritten
//! node still fits one page (bbolt would split it). Otherwise [`plan`] returns
//! `None` and the caller rebuilds the file instead.
//!
//! The output has no persisted freelist (`pgidNoFreelist`, as etcd writes its
//! files): the pages the patch replaced are then free by being unreachable, and
//! bbolt rebuilds its freelist from the tree at open.

use std::collections::HashMap;

use crate::builder::PageBuf;
use crate::error::Result;
use crate::layout::{BucketHeader, Pgid, BRANCH_PAGE_FLAG, BUCKET_LEAF_FLAG, LEAF_PAGE_FLAG, PGID_NO_FREELIST};
use crate::meta::{meta_page, Meta};
use crate::page::{bucket_value, inline_node, BucketRoot, Node, NodeKind, Pages};
use crate::Db;

/// What to do to one top-level bucket.
#[derive(Debug, Clone, Copy)]
pub enum Edit<'e> {
    /// Add these entries (sorted, every key after the bucket's last one).
    Append(&'e [(Vec<u8>, Vec<u8>)]),
    /// Replace the bucket's entries by these (sorted, no nested buckets).
    Replace(&'e [(Vec<u8>, Vec<u8>)]),
}

/// A planned patch: the output is meta pages 0 and 1 for `meta`, the input's
/// pages `[2, carried)` unchanged, then `pages` (from page `carried` on).
#[derive(Debug, Clone)]
pub struct Patch {
    /// Meta 0 of the output (page 1 has `txid − 1`).
    pub meta: Meta,
    /// The input's pages below this id are carried (the input's high-water mark).
    pub carried: Pgid,
    /// The new pages, whole pages.
    pub pages: Vec<u8>,
    /// Pages of the input that the patch replaced (now unreachable).
    pub replaced: u64,
}

impl Patch {
    /// Bytes of the output (`pgid × pageSize`).
    pub fn bytes(&self) -> u64 {
        self.meta.pgid.saturating_mul(u64::from(self.meta.page_size))
    }

    /// Meta pages 0 and 1: the same tree, txids T and T−1 (as `Tx.WriteTo`).
    pub fn meta_pages(&self) -> Vec<u8> {
        let meta1 = Meta { txid: self.meta.txid.saturating_sub(1), ..self.meta };
        let mut out = meta_page(&self.meta, 0);
        out.extend_from_slice(&meta_page(&Meta { checksum: meta1.compute_checksum(), ..meta1 }, 1));
        out
    }

    /// Where the carried pages start, in the input and in the output.
    pub fn carried_offset(&self) -> u64 {
        u64::from(self.meta.page_size).saturating_mul(2)
    }

    /// The output, in order, as slices: the meta pages (`metas`, from
    /// [`meta_pages`](Self::meta_pages)), the carried pages of `db`, the new pages.
    pub fn pieces<'s>(&'s self, db: &Db<'s>, metas: &'s [u8]) -> [&'s [u8]; 3] {
        let ps = u64::from(self.meta.page_size);
        let start = usize::try_from(ps.saturating_mul(2)).unwrap_or(usize::MAX);
        let end = usize::try_from(self.carried.saturating_mul(ps)).unwrap_or(usize::MAX);
        [metas, db.data().get(start..end).unwrap_or(&[]), &self.pages]
    }
}

/// One element of a node being rewritten.
struct Elem<'a> {
    flags: u32,
    key: &'a [u8],
    value: &'a [u8],
    child: Pgid,
}

/// Pages written so far, from `next` on.
struct Alloc {
    next: Pgid,
    page_size: usize,
    out: Vec<u8>,
    scratch: Vec<u8>,
}

impl Alloc {
    /// Writes `elems` as one node (with overflow pages when larger than a
    /// page); `None` when bbolt would split it: larger than a page and more
    /// than `2 × minKeysPerPage` elements (bbolt's `node.split`).
    fn node(&mut self, elems: &[Elem<'_>], flag: u16) -> Result<Option<Pgid>> {
        const UNSPLIT: usize = 4;
        let buf = fill(elems);
        if buf.size() > self.page_size && elems.len() > UNSPLIT {
            return Ok(None);
        }
        let id = self.next;
        let overflow = buf.serialize(id, flag, self.page_size, true, &mut self.scratch)?;
        self.out.extend_from_slice(&self.scratch);
        self.next = id.saturating_add(u64::from(overflow)).saturating_add(1);
        Ok(Some(id))
    }
}

fn fill(elems: &[Elem<'_>]) -> PageBuf {
    let mut buf = PageBuf::default();
    for e in elems {
        buf.push(e.flags, e.key, e.value, e.child);
    }
    buf
}

fn leaf_elems<'a>(node: &Node<'a>) -> Result<Vec<Elem<'a>>> {
    let mut v = Vec::with_capacity(node.count);
    for i in 0..node.count {
        let e = node.leaf(i).map_err(|k| corrupt(node, k))?;
        v.push(Elem { flags: e.flags, key: e.key, value: e.value, child: 0 });
    }
    Ok(v)
}

/// Plans `edits` (by top-level bucket name) on `db`; `None` when the patch
/// would not keep bbolt's page shapes (see the module docs).
pub fn plan(db: &Db<'_>, edits: &HashMap<&[u8], Edit<'_>>) -> Result<Option<Patch>> {
    let meta = db.meta();
    let pages = db.pages();
    let page_size = db.page_size();
    let root = pages.node(meta.root.root)?;
    if root.kind != NodeKind::Leaf {
        return Ok(None);
    }
    let mut alloc = Alloc { next: db.hwm(), page_size, out: Vec::new(), scratch: Vec::new() };
    let mut replaced = 1u64; // the root page
    let mut values: Vec<Vec<u8>> = Vec::new();
    let mut top = leaf_elems(&root)?;
    let mut found = 0usize;
    for e in &mut top {
        let Some(edit) = edits.get(e.key) else { continue };
        found = found.saturating_add(1);
        if e.flags & BUCKET_LEAF_FLAG == 0 {
            return Ok(None);
        }
        let (header, broot) = bucket_value(e.value).map_err(|k| corrupt(&root, k))?;
        let value = match edit_bucket(&pages, &mut alloc, header, broot, *edit, &mut replaced)? {
            Some(v) => v,
            None => return Ok(None),
        };
        values.push(value);
    }
    if found != edits.len() {
        return Ok(None); // an edit of a bucket the file lacks
    }
    // The edited values, in element order.
    let mut values = values.iter();
    for e in &mut top {
        if edits.contains_key(e.key) {
            if let Some(v) = values.next() {
                e.value = v;
            }
        }
    }
    let Some(new_root) = alloc.node(&top, LEAF_PAGE_FLAG)? else { return Ok(None) };
    let m = Meta {
        root: BucketHeader { root: new_root, sequence: meta.root.sequence },
        freelist: PGID_NO_FREELIST,
        pgid: alloc.next,
        ..meta
    };
    let meta = Meta { checksum: m.compute_checksum(), ..m };
    Ok(Some(Patch { meta, carried: db.hwm(), pages: alloc.out, replaced }))
}

/// The new value (bucket header, and inline image) of an edited bucket.
fn edit_bucket(
    pages: &Pages<'_>,
    alloc: &mut Alloc,
    header: BucketHeader,
    root: BucketRoot<'_>,
    edit: Edit<'_>,
    replaced: &mut u64,
) -> Result<Option<Vec<u8>>> {
    let seq = header.sequence;
    match (edit, root) {
        (Edit::Replace(entries), _) => {
            let elems: Vec<Elem<'_>> =
                entries.iter().map(|(k, v)| Elem { flags: 0, key: k, value: v, child: 0 }).collect();
            if let BucketRoot::Paged(id) = root {
                // The whole old tree is replaced; it must be one leaf for the
                // count of replaced pages to be exact.
                let node = pages.node(id)?;
                if node.kind != NodeKind::Leaf {
                    return Ok(None);
                }
                *replaced = replaced.saturating_add(1);
            }
            small_bucket(alloc, seq, &elems)
        }
        (Edit::Append(entries), BucketRoot::Inline(image)) => {
            let node = inline_node(image).map_err(|k| crate::Error::from(crate::Corruption::new(k)))?;
            let mut elems = leaf_elems(&node)?;
            if elems.iter().any(|e| e.flags & BUCKET_LEAF_FLAG != 0) {
                return Ok(None);
            }
            if !appends_in_order(elems.last().map(|e| e.key), entries) {
                return Ok(None);
            }
            elems.extend(entries.iter().map(|(k, v)| Elem { flags: 0, key: k, value: v, child: 0 }));
            small_bucket(alloc, seq, &elems)
        }
        (Edit::Append(entries), BucketRoot::Paged(id)) => {
            // The rightmost root-to-leaf path.
            let mut path = vec![pages.node(id)?];
            while let Some(node) = path.last().filter(|n| n.kind == NodeKind::Branch) {
                let last = node.count.checked_sub(1).ok_or_else(|| empty(node))?;
                let (_, child) = node.branch(last).map_err(|k| corrupt(node, k))?;
                if path.len() >= crate::cursor::MAX_DEPTH {
                    return Ok(None);
                }
                path.push(pages.node(child)?);
            }
            let Some(leaf) = path.pop() else { return Ok(None) };
            let mut elems = leaf_elems(&leaf)?;
            if elems.iter().any(|e| e.flags & BUCKET_LEAF_FLAG != 0)
                || !appends_in_order(elems.last().map(|e| e.key), entries)
            {
                return Ok(None);
            }
            elems.extend(entries.iter().map(|(k, v)| Elem { flags: 0, key: k, value: v, child: 0 }));
            let Some(mut child) = alloc.node(&elems, LEAF_PAGE_FLAG)? else { return Ok(None) };
            *replaced = replaced.saturating_add(1);
            // Each ancestor again, its last element pointing at the new child
            // (whose first key did not change).
            while let Some(node) = path.pop() {
                let mut elems = Vec::with_capacity(node.count);
                for i in 0..node.count {
                    let (key, c) = node.branch(i).map_err(|k| corrupt(&node, k))?;
                    elems.push(Elem { flags: 0, key, value: &[], child: c });
                }
                if let Some(last) = elems.last_mut() {
                    last.child = child;
                }
                let Some(id) = alloc.node(&elems, BRANCH_PAGE_FLAG)? else { return Ok(None) };
                *replaced = replaced.saturating_add(1);
                child = id;
            }
            Ok(Some(BucketHeader { root: child, sequence: seq }.to_bytes().to_vec()))
        }
    }
}

fn empty(node: &Node<'_>) -> crate::Error {
    corrupt(node, crate::CorruptKind::ElementPastPage { index: 0 })
}

fn corrupt(node: &Node<'_>, kind: crate::CorruptKind) -> crate::Error {
    match node.page {
        Some(p) => crate::Corruption::on_page(p, kind),
        None => crate::Corruption::new(kind),
    }
    .into()
}

/// Whether `entries` are strictly increasing and all after `last`.
fn appends_in_order(last: Option<&[u8]>, entries: &[(Vec<u8>, Vec<u8>)]) -> bool {
    let mut prev = last;
    for (k, _) in entries {
        if k.is_empty() || prev.is_some_and(|p| p >= k.as_slice()) {
            return false;
        }
        prev = Some(k);
    }
    true
}

/// A bucket of only `elems`: inline when bbolt would inline it (a leaf of at
/// most a quarter page), else one leaf page; `None` past one page.
fn small_bucket(alloc: &mut Alloc, sequence: u64, elems: &[Elem<'_>]) -> Result<Option<Vec<u8>>> {
    let buf = fill(elems);
    if buf.size() <= alloc.page_size / 4 {
        let mut value = BucketHeader { root: 0, sequence }.to_bytes().to_vec();
        let mut image = Vec::new();
        buf.serialize(0, LEAF_PAGE_FLAG, alloc.page_size, false, &mut image)?;
        value.extend_from_slice(&image);
        return Ok(Some(value));
    }
    Ok(alloc.node(elems, LEAF_PAGE_FLAG)?.map(|root| BucketHeader { root, sequence }.to_bytes().to_vec()))
}
