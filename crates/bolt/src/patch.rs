//! Copy-on-write edits of an existing file, the way a bbolt transaction
//! commits them: every page an edit does not touch is carried byte for byte;
//! the pages on the changed root-to-leaf paths are written again as new pages
//! past the old high-water mark; new meta pages point at the new root.
//!
//! A patch applies only where it keeps bbolt's own page shapes: the root
//! bucket is one leaf page, edited top-level buckets hold no nested buckets in
//! the leaves an edit rewrites, appended entries sort after every key the
//! deletes leave in their bucket, and a top-level bucket edited by `Replace`
//! and the root bucket still fit one node each. Otherwise [`plan`] returns
//! `None` and the caller rebuilds the file instead.
//!
//! A rewritten node of an edited bucket that outgrew a page (appended
//! entries) is split as bbolt's `spill` splits it (`splitIndex`, at least
//! `minKeysPerPage` per node, never a node of four or fewer elements, the
//! threshold at 90 % of the page: the `FillPercent` etcd sets on its `key`
//! bucket), its parts go into the parent in its place, and a root that
//! split gets a new branch above it.
//!
//! # Deletes
//!
//! [`Edit::Change`] deletes a sorted set of keys from a bucket (and appends
//! entries after its last key in the same edit), as a transaction that ran
//! `Delete` on each and then committed: each deleted key's leaf is found by
//! descending the branches; every touched leaf is written again without those
//! entries and every ancestor of a touched node once, its branch keys set to
//! the children's new first keys (as `node.spill` sets them). A leaf or branch
//! left empty is dropped from its parent (bbolt's `rebalance` removes empty
//! nodes), a root branch left with one child collapses to that child, and a
//! bucket whose root ends as a leaf of at most a quarter page is written
//! inline (bbolt's `Bucket.inlineable`, re-evaluated at every spill).
//!
//! Unlike bbolt's `rebalance`, a node left underfilled (below a quarter page,
//! or a leaf of one element, a branch of one child below the root) is *not*
//! merged with a sibling: merging would rewrite the sibling too, and bbolt's
//! `Tx.Check` (1.3.6, 1.4.x, 1.5.x) and its cursors accept underfilled nodes,
//! which any bbolt file holds between rebalances anyway. The next bbolt
//! transaction that deletes in such a node rebalances it.
//!
//! A key to delete that the bucket lacks is a caller bug, reported as
//! [`BuildError::AbsentKey`] with the bucket and key (deletes out of order as
//! [`BuildError::KeyOrder`]); a deleted key that names a nested bucket, or a
//! rewritten leaf that holds one, makes the plan `None`.
//!
//! [`Patch::replaced`] counts the input's pages the patch makes unreachable,
//! overflow pages included: every page written again, and every page of a
//! node dropped, collapsed or inlined.
//!
//! The output has no persisted freelist (`pgidNoFreelist`, as etcd writes its
//! files): the pages the patch replaced are then free by being unreachable, and
//! bbolt rebuilds its freelist from the tree at open.

use std::collections::HashMap;

use crate::builder::PageBuf;
use crate::error::{BuildError, Result};
use crate::layout::{BucketHeader, Pgid, BRANCH_PAGE_FLAG, BUCKET_LEAF_FLAG, LEAF_PAGE_FLAG, PGID_NO_FREELIST};
use crate::meta::{meta_page, Meta};
use crate::page::{bucket_value, inline_node, BucketRoot, Node, NodeKind, Pages};
use crate::Db;

/// What to do to one top-level bucket.
#[derive(Debug, Clone, Copy)]
pub enum Edit<'e> {
    /// Delete the keys `delete` (strictly increasing, each a key of the
    /// bucket, none a nested bucket), then add the entries `append` (strictly
    /// increasing, every key after the bucket's last key once the deletes are
    /// made: an appended key may equal a deleted one, as a revision marker
    /// takes the revision of the dropped entry that held it).
    Change {
        /// Keys to delete.
        delete: &'e [&'e [u8]],
        /// Entries to add after the bucket's last key.
        append: &'e [(Vec<u8>, Vec<u8>)],
    },
    /// Replace the bucket's entries by these (sorted, no nested buckets).
    Replace(&'e [(Vec<u8>, Vec<u8>)]),
}

impl<'e> Edit<'e> {
    /// Add these entries (sorted, every key after the bucket's last one).
    pub fn append(entries: &'e [(Vec<u8>, Vec<u8>)]) -> Self {
        Self::Change { delete: &[], append: entries }
    }
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
    /// Pages of the input that the patch made unreachable (overflow pages
    /// included): written again, dropped, collapsed or inlined.
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
#[derive(Debug, Clone, Copy)]
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

/// bbolt's `minKeysPerPage`: a node of at most twice as many elements is
/// never split, whatever its size.
const MIN_KEYS_PER_PAGE: usize = 2;

/// Bytes of one element's header in a page (leaf and branch alike).
const ELEMENT_SIZE: usize = 16;

/// The fill bbolt splits a grown node at, per mille of the page: 900, the
/// `FillPercent` etcd sets on the `key` bucket for its sequential puts — the
/// one bucket whose nodes grow here (markers appended to its last leaf).
const SPLIT_FILL_PER_MILLE: usize = 900;

impl Alloc {
    /// Writes `elems` as one node (with overflow pages when larger than a
    /// page); `None` when bbolt would split it ([`split`]).
    fn node(&mut self, elems: &[Elem<'_>], flag: u16) -> Result<Option<Pgid>> {
        if split(elems, self.page_size).len() > 1 {
            return Ok(None);
        }
        self.write_node(elems, flag).map(Some)
    }

    /// Writes `elems` as the nodes bbolt's `spill` makes of them ([`split`]):
    /// each node's first key and page id, in order.
    fn nodes<'k>(&mut self, elems: &[Elem<'k>], flag: u16) -> Result<Vec<(&'k [u8], Pgid)>> {
        let mut out = Vec::new();
        for run in split(elems, self.page_size) {
            let key = run.first().map_or(&[][..], |e| e.key);
            out.push((key, self.write_node(run, flag)?));
        }
        Ok(out)
    }

    fn write_node(&mut self, elems: &[Elem<'_>], flag: u16) -> Result<Pgid> {
        let buf = fill(elems);
        let id = self.next;
        let overflow = buf.serialize(id, flag, self.page_size, true, &mut self.scratch)?;
        self.out.extend_from_slice(&self.scratch);
        self.next = id.saturating_add(u64::from(overflow)).saturating_add(1);
        Ok(id)
    }
}

/// The runs of `elems` that bbolt's `node.split` writes as separate nodes:
/// while what is left has more than `2 × minKeysPerPage` elements and does
/// not fit a page, a node takes elements up to the fill threshold (at least
/// `minKeysPerPage`, and leaving at least that many).
fn split<'s, 'k>(elems: &'s [Elem<'k>], page_size: usize) -> Vec<&'s [Elem<'k>]> {
    let threshold = page_size.saturating_mul(SPLIT_FILL_PER_MILLE) / 1000;
    let size =
        |run: &[Elem<'_>]| run.iter().fold(crate::layout::PAGE_HEADER_SIZE, |sz, e| sz.saturating_add(element_size(e)));
    let mut runs = Vec::new();
    let mut rest = elems;
    while rest.len() > MIN_KEYS_PER_PAGE.saturating_mul(2) && size(rest) >= page_size {
        // bbolt's splitIndex.
        let mut index = 0usize;
        let mut sz = crate::layout::PAGE_HEADER_SIZE;
        for (i, e) in rest.iter().enumerate().take(rest.len().saturating_sub(MIN_KEYS_PER_PAGE)) {
            index = i;
            let elsize = element_size(e);
            if i >= MIN_KEYS_PER_PAGE && sz.saturating_add(elsize) > threshold {
                break;
            }
            sz = sz.saturating_add(elsize);
        }
        let (head, tail) = rest.split_at(index);
        runs.push(head);
        rest = tail;
    }
    runs.push(rest);
    runs
}

fn element_size(e: &Elem<'_>) -> usize {
    ELEMENT_SIZE.saturating_add(e.key.len()).saturating_add(e.value.len())
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

/// Pages of the run that starts at page `id` (1 + its overflow).
fn span(pages: &Pages<'_>, id: Pgid) -> Result<u64> {
    Ok(u64::from(pages.page(id)?.header.overflow).saturating_add(1))
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
    let mut replaced = span(&pages, meta.root.root)?; // the root bucket's page
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
        let mut ed = Editor { pages: &pages, alloc: &mut alloc, replaced: 0, bucket: e.key };
        let value = match ed.bucket(header, broot, e.value, *edit)? {
            Some(v) => v,
            None => return Ok(None),
        };
        replaced = replaced.saturating_add(ed.replaced);
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

/// A node of an edited bucket after the edit, before it is written.
enum Fresh<'x> {
    /// A leaf's elements (never empty but at the bucket's root).
    Leaf(Vec<Elem<'x>>),
    /// A branch's children (never empty).
    Branch(Vec<Child<'x>>),
}

/// A child of an edited branch.
enum Child<'x> {
    /// Untouched: the input's subtree, under its branch key.
    Carried { key: &'x [u8], id: Pgid },
    /// Edited.
    New(Fresh<'x>),
}

/// What an edit made of a node.
enum Edited<'x> {
    /// Every entry under it was deleted.
    Gone,
    /// What is left.
    Node(Fresh<'x>),
}

/// Edits one top-level bucket.
struct Editor<'p, 'x, 'o> {
    pages: &'p Pages<'x>,
    alloc: &'o mut Alloc,
    /// Input pages made unreachable so far.
    replaced: u64,
    /// The bucket's name, for errors.
    bucket: &'x [u8],
}

impl<'x> Editor<'_, 'x, '_> {
    /// The new value (bucket header, and inline image) of the bucket whose
    /// value is `old`; `None`: not patchable.
    fn bucket(
        &mut self,
        header: BucketHeader,
        root: BucketRoot<'x>,
        old: &'x [u8],
        edit: Edit<'x>,
    ) -> Result<Option<Vec<u8>>> {
        let seq = header.sequence;
        match (edit, root) {
            (Edit::Replace(entries), _) => {
                let elems: Vec<Elem<'_>> =
                    entries.iter().map(|(k, v)| Elem { flags: 0, key: k, value: v, child: 0 }).collect();
                if let BucketRoot::Paged(id) = root {
                    // The whole old tree is replaced; it must be one leaf for the
                    // count of replaced pages to be exact.
                    let node = self.pages.node(id)?;
                    if node.kind != NodeKind::Leaf {
                        return Ok(None);
                    }
                    self.replaced = self.replaced.saturating_add(span(self.pages, id)?);
                }
                small_bucket(self.alloc, seq, &elems)
            }
            (Edit::Change { delete: [], append: [] }, _) => Ok(Some(old.to_vec())),
            (Edit::Change { delete, append }, BucketRoot::Inline(image)) => {
                self.check_order(delete)?;
                let node = inline_node(image).map_err(|k| crate::Error::from(crate::Corruption::new(k)))?;
                let Some(elems) = self.edit_leaf(&node, delete, append, None)? else { return Ok(None) };
                small_bucket(self.alloc, seq, &elems)
            }
            (Edit::Change { delete, append }, BucketRoot::Paged(id)) => {
                self.check_order(delete)?;
                let Some(edited) = self.edit_node(id, delete, append, None, 0)? else { return Ok(None) };
                let mut top = match edited {
                    // Every key deleted: an empty root leaf (inlined below).
                    Edited::Gone => Fresh::Leaf(Vec::new()),
                    Edited::Node(f) => f,
                };
                // A root branch left with one child collapses to it (bbolt's
                // `rebalance` of the root), until a leaf or a wider branch.
                loop {
                    top = match top {
                        Fresh::Branch(mut children) if children.len() == 1 => match children.pop() {
                            Some(Child::New(f)) => f,
                            Some(Child::Carried { id, .. }) => return self.carried_root(id, seq),
                            None => return Ok(None),
                        },
                        other => break self.write_root(&other, seq),
                    };
                }
            }
        }
    }

    /// Refuses deletes that are not strictly increasing.
    fn check_order(&self, delete: &[&[u8]]) -> Result<()> {
        for pair in delete.windows(2) {
            if let [a, b] = pair {
                if a >= b {
                    return Err(BuildError::KeyOrder.at(vec![self.bucket.to_vec()], b).into());
                }
            }
        }
        Ok(())
    }

    /// The bucket's value once its root is the input's page `id` (a root
    /// branch collapsed onto its one child, which the edit left as it was).
    fn carried_root(&mut self, id: Pgid, seq: u64) -> Result<Option<Vec<u8>>> {
        let node = self.pages.node(id)?;
        if node.kind == NodeKind::Leaf {
            let elems = leaf_elems(&node)?;
            if elems.iter().any(|e| e.flags & BUCKET_LEAF_FLAG != 0) {
                return Ok(None);
            }
            if fill(&elems).size() <= self.alloc.page_size / 4 {
                // bbolt inlines the root it just collapsed into.
                self.replaced = self.replaced.saturating_add(span(self.pages, id)?);
                return small_bucket(self.alloc, seq, &elems);
            }
        }
        Ok(Some(BucketHeader { root: id, sequence: seq }.to_bytes().to_vec()))
    }

    /// Writes the edited root of a paged bucket; its new bucket value. A
    /// root that bbolt splits gets a new branch above its parts, as `spill`
    /// does, until one node is left.
    fn write_root(&mut self, top: &Fresh<'x>, seq: u64) -> Result<Option<Vec<u8>>> {
        if let Fresh::Leaf(elems) = top {
            if fill(elems).size() <= self.alloc.page_size / 4 {
                return small_bucket(self.alloc, seq, elems);
            }
        }
        let mut level = self.write(top)?;
        let mut depth = 0usize;
        while level.len() > 1 {
            depth = depth.saturating_add(1);
            if depth >= crate::cursor::MAX_DEPTH {
                return Ok(None);
            }
            let elems: Vec<Elem<'x>> =
                level.iter().map(|&(key, child)| Elem { flags: 0, key, value: &[], child }).collect();
            level = self.alloc.nodes(&elems, BRANCH_PAGE_FLAG)?;
        }
        Ok(level.first().map(|&(_, root)| BucketHeader { root, sequence: seq }.to_bytes().to_vec()))
    }

    /// Writes `node` and its new descendants (children first, left to right)
    /// as bbolt's `spill` does, splitting what outgrew a page: the first key
    /// and page id of each node it became.
    fn write(&mut self, node: &Fresh<'x>) -> Result<Vec<(&'x [u8], Pgid)>> {
        match node {
            Fresh::Leaf(elems) => self.alloc.nodes(elems, LEAF_PAGE_FLAG),
            Fresh::Branch(children) => {
                let mut elems = Vec::with_capacity(children.len());
                for c in children {
                    match c {
                        Child::Carried { key, id } => elems.push(Elem { flags: 0, key, value: &[], child: *id }),
                        Child::New(f) => {
                            for (key, child) in self.write(f)? {
                                elems.push(Elem { flags: 0, key, value: &[], child });
                            }
                        }
                    }
                }
                self.alloc.nodes(&elems, BRANCH_PAGE_FLAG)
            }
        }
    }

    /// The subtree at page `id` without the keys `delete` (all under it) and
    /// with `append` after its last key (when it is the rightmost subtree);
    /// `None`: not patchable. `lower` is its branch key in its parent (every
    /// key left of the subtree sorts before it), `None` at the bucket's root.
    fn edit_node(
        &mut self,
        id: Pgid,
        delete: &[&'x [u8]],
        append: &'x [(Vec<u8>, Vec<u8>)],
        lower: Option<&'x [u8]>,
        depth: usize,
    ) -> Result<Option<Edited<'x>>> {
        if depth >= crate::cursor::MAX_DEPTH {
            return Ok(None);
        }
        let node = self.pages.node(id)?;
        self.replaced = self.replaced.saturating_add(span(self.pages, id)?);
        if node.kind == NodeKind::Leaf {
            let Some(elems) = self.edit_leaf(&node, delete, append, lower)? else { return Ok(None) };
            return Ok(Some(if elems.is_empty() { Edited::Gone } else { Edited::Node(Fresh::Leaf(elems)) }));
        }
        if node.count == 0 {
            return Ok(None); // an empty branch: not a shape bbolt writes
        }
        let mut children = Vec::with_capacity(node.count);
        let mut rest = delete;
        for i in 0..node.count {
            let (key, child) = node.branch(i).map_err(|k| corrupt(&node, k))?;
            let last = i.saturating_add(1) == node.count;
            // The keys below the next branch key descend here (bbolt's
            // `searchPage`: the last element whose key is ≤ the key).
            let split = if last {
                rest.len()
            } else {
                let (next, _) = node.branch(i.saturating_add(1)).map_err(|k| corrupt(&node, k))?;
                rest.partition_point(|k| *k < next)
            };
            let (mine, tail) = (rest.get(..split).unwrap_or(&[]), rest.get(split..).unwrap_or(&[]));
            rest = tail;
            let app = if last { append } else { &[] };
            if mine.is_empty() && app.is_empty() {
                children.push(Child::Carried { key, id: child });
                continue;
            }
            match self.edit_node(child, mine, app, Some(key), depth.saturating_add(1))? {
                None => return Ok(None),
                Some(Edited::Gone) => {}
                Some(Edited::Node(f)) => children.push(Child::New(f)),
            }
        }
        Ok(Some(if children.is_empty() { Edited::Gone } else { Edited::Node(Fresh::Branch(children)) }))
    }

    /// A leaf's elements without `delete` and with `append`; `None` when it
    /// holds a nested bucket, or `append` would not follow the keys left
    /// (those of the leaf, or, when none is left, those before `lower`).
    fn edit_leaf(
        &self,
        node: &Node<'x>,
        delete: &[&'x [u8]],
        append: &'x [(Vec<u8>, Vec<u8>)],
        lower: Option<&'x [u8]>,
    ) -> Result<Option<Vec<Elem<'x>>>> {
        let mut elems = Vec::with_capacity(node.count.saturating_add(append.len()));
        let mut dels = delete.iter().peekable();
        for i in 0..node.count {
            let e = node.leaf(i).map_err(|k| corrupt(node, k))?;
            if e.flags & BUCKET_LEAF_FLAG != 0 {
                return Ok(None);
            }
            if dels.peek().is_some_and(|d| **d == e.key) {
                dels.next();
                continue;
            }
            elems.push(Elem { flags: e.flags, key: e.key, value: e.value, child: 0 });
        }
        if let Some(absent) = dels.next() {
            return Err(BuildError::AbsentKey.at(vec![self.bucket.to_vec()], absent).into());
        }
        if let Some((first, _)) = append.first() {
            let follows = match elems.last() {
                Some(last) => first.as_slice() > last.key,
                // Every key left of this leaf sorts before its branch key.
                None => lower.is_none_or(|l| first.as_slice() >= l),
            };
            if !follows || !appends_in_order(None, append) {
                return Ok(None);
            }
            elems.extend(append.iter().map(|(k, v)| Elem { flags: 0, key: k, value: v, child: 0 }));
        }
        Ok(Some(elems))
    }
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
