//! Consistency check of a whole file: bbolt's `tx.Check()` and what it panics on.
//!
//! One walk from the root bucket visits every page of every bucket tree once,
//! marks it reachable, checks page headers, element bounds and key order
//! (bbolt 1.3.7+ rules), nested and inline buckets, and then accounts every
//! page below the HWM as reachable, free, or leaked. The walk keeps a
//! per-page state table, so a page reached twice is reported and not walked
//! again: no cycle can make it loop, and recursion depth is capped (per tree,
//! per bucket nesting, and in all).
//!
//! Beyond what bbolt checks, pages must be laid out exactly as bbolt's writer
//! lays them out, because a single flipped bit otherwise often leaves a page
//! that still parses: element data in order and contiguous after the element
//! array, `overflow` exactly what that data needs, no leaf element flag but
//! `bucketLeafFlag`, each branch key equal to its child's first key, inline
//! pages with id 0 and no spare bytes, both metas valid with clean headers.
//! Each rule states its reason where it is checked; DIFFERENCES.md lists them.

use crate::db::Db;
use crate::error::{CorruptKind, Corruption};
use crate::freelist::Freelist;
use crate::layout::{PageHeader, PageType, Pgid, BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG};
use crate::page::{bucket_value, inline_node, BucketRoot, Node, NodeKind, Pages};

/// Deepest B+tree the checker descends.
pub const MAX_TREE_DEPTH: usize = crate::cursor::MAX_DEPTH;
/// Deepest bucket nesting the checker follows.
pub const MAX_BUCKET_DEPTH: usize = 256;
/// Most tree levels the checker's walk descends at once, summed over nested
/// buckets. The two caps above alone would allow 64 levels in each of 256 nested
/// buckets, over 16 000 recursive calls and megabytes of stack on a crafted file;
/// no real file comes near this (etcd nests buckets one level, trees a few).
pub const MAX_WALK_DEPTH: usize = 1024;

/// Options of a check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Problems kept in the report; the rest are only counted.
    pub max_problems: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self { max_problems: 10_000 }
    }
}

/// What a page is used for, as found by the check's walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageUse {
    /// Not reached and not on a freelist.
    Unreached,
    /// A meta page.
    Meta,
    /// The persisted freelist (or one of its overflow pages).
    Freelist,
    /// A branch or leaf page of a bucket tree (first page of its run).
    Tree,
    /// An overflow page of a tree page.
    Overflow,
    /// Free: on the freelist, or (no freelist persisted) not reached by any tree.
    Free,
}

/// Counts gathered while checking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Buckets, nested and inline included, not counting the root bucket.
    pub buckets: u64,
    /// Of those, inline buckets.
    pub inline_buckets: u64,
    /// Key/value pairs that are not buckets, in every bucket.
    pub keys: u64,
    /// Branch pages (first page of each run).
    pub branch_pages: u64,
    /// Leaf pages (first page of each run).
    pub leaf_pages: u64,
    /// Overflow pages of branch and leaf pages.
    pub overflow_pages: u64,
    /// Free pages (listed, or unreached when no freelist is persisted).
    pub free_pages: u64,
    /// Depth of the deepest bucket tree.
    pub max_depth: u64,
}

/// The result of [`check`]: problems found, counts, and the use of every page.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Problems, in the order found, at most `max_problems`.
    pub problems: Vec<Corruption>,
    /// How many problems were found in all.
    pub problem_count: u64,
    /// Counts over the file.
    pub stats: CheckStats,
    /// Use of each page below the HWM that is inside the file.
    pub page_use: Vec<PageUse>,
}

impl CheckReport {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problem_count == 0
    }
}

struct Checker<'a, 'o> {
    pages: Pages<'a>,
    opts: &'o CheckOptions,
    page_use: Vec<PageUse>,
    freed: Vec<bool>,
    problems: Vec<Corruption>,
    problem_count: u64,
    stats: CheckStats,
    path: Vec<Vec<u8>>,
    /// Tree levels entered and not yet left, over all nested buckets.
    walk_depth: usize,
}

impl<'a> Checker<'a, '_> {
    fn report(&mut self, c: Corruption) {
        self.problem_count = self.problem_count.saturating_add(1);
        if self.problems.len() < self.opts.max_problems {
            let c = match (c.offset, c.page) {
                (None, Some(p)) => match self.pages.offset_of(p) {
                    Some(o) => c.at_offset(o),
                    None => c,
                },
                _ => c,
            };
            self.problems.push(c.in_bucket(&self.path));
        }
    }

    fn report_page(&mut self, page: Pgid, kind: CorruptKind) {
        self.report(Corruption::on_page(page, kind));
    }

    fn use_of(&self, id: Pgid) -> Option<PageUse> {
        usize::try_from(id).ok().and_then(|i| self.page_use.get(i)).copied()
    }

    fn set_use(&mut self, id: Pgid, use_: PageUse) {
        if let Some(u) = usize::try_from(id).ok().and_then(|i| self.page_use.get_mut(i)) {
            *u = use_;
        }
    }

    fn is_freed(&self, id: Pgid) -> bool {
        usize::try_from(id).ok().and_then(|i| self.freed.get(i)).copied().unwrap_or(false)
    }

    /// Claims pages `id ..= id + overflow` for `use_`, reporting double use and freed pages.
    /// Returns false when the first page was already claimed (do not walk it again).
    fn claim(&mut self, id: Pgid, overflow: u32, use_: PageUse) -> bool {
        let mut first_ok = true;
        for k in 0..=u64::from(overflow) {
            let Some(p) = id.checked_add(k) else { break };
            let Some(current) = self.use_of(p) else { break };
            if current != PageUse::Unreached {
                self.report_page(p, CorruptKind::MultipleReferences);
                if k == 0 {
                    first_ok = false;
                    break;
                }
                continue;
            }
            // bbolt tests only the first page of a run against the freed set.
            if k == 0 && self.is_freed(p) {
                self.report_page(p, CorruptKind::ReachableFreed);
            }
            self.set_use(p, if k == 0 { use_ } else { overflow_use(use_) });
        }
        first_ok
    }

    fn check_freelist(&mut self, meta: &crate::meta::Meta) {
        match Freelist::read(&self.pages, meta) {
            Ok(Freelist::NotPersisted) => {}
            Ok(Freelist::Persisted { page, overflow, ids }) => {
                for id in ids {
                    let slot = usize::try_from(id)
                        .ok()
                        .filter(|_| id >= 2 && id < self.pages.hwm())
                        .and_then(|i| self.freed.get_mut(i));
                    match slot {
                        None => self.report_page(id, CorruptKind::FreelistIdOutOfRange { id }),
                        Some(true) => self.report_page(id, CorruptKind::AlreadyFreed),
                        Some(f) => *f = true,
                    }
                }
                self.claim(page, overflow, PageUse::Freelist);
            }
            Err(e) => {
                if let Some(c) = e.corruption() {
                    self.report(c.clone());
                }
            }
        }
    }

    /// Walks one bucket's tree (or inline page); `parent` is the page holding its
    /// bucket entry (its key is the last element of `self.path`).
    fn bucket(&mut self, root: BucketRoot<'a>, parent: Option<Pgid>, nesting: usize) {
        if nesting > MAX_BUCKET_DEPTH {
            self.report(Corruption::new(CorruptKind::BucketsTooDeep { max: MAX_BUCKET_DEPTH }));
            return;
        }
        match root {
            BucketRoot::Paged(id) => {
                self.tree(id, None, None, 1, nesting);
            }
            BucketRoot::Inline(image) => {
                let name = self.path.last().cloned().unwrap_or_default();
                let at = |kind| located(parent, kind).with_key(&name);
                let node = match inline_node(image) {
                    Ok(node) => node,
                    Err(kind) => return self.report(at(kind)),
                };
                // bbolt writes an inline page with `node.write` into a zeroed buffer
                // (`bucket.write`), which sets only flags and count: the id stays 0.
                if let Some(h) = PageHeader::parse(image).filter(|h| h.id != 0) {
                    self.report(at(CorruptKind::InlinePageId { found: h.id }));
                }
                // The buffer is exactly `bucketHeaderSize + node.size()` long, so the
                // image ends where the last element's value ends.
                match node.layout() {
                    Ok(used) if used != image.len() as u64 => {
                        self.report(at(CorruptKind::InlineSizeMismatch { len: image.len() as u64, used }));
                    }
                    Ok(_) => {}
                    Err(kind) => self.report(at(kind)),
                }
                self.leaf(&node, None, None, nesting);
            }
        }
    }

    /// Reports elements that are not where bbolt's writer puts them, and an
    /// `overflow` other than the one bbolt allocates for the bytes they use:
    /// `node.spill` allocates exactly `ceil(node.size() / pageSize)` pages.
    fn page_layout(&mut self, id: Pgid, node: &Node<'a>, overflow: u32) {
        match node.layout() {
            Ok(used) => {
                let page_size = (self.pages.page_size() as u64).max(1);
                let expected = used.div_ceil(page_size).saturating_sub(1);
                if u64::from(overflow) != expected {
                    self.report_page(id, CorruptKind::OverflowMismatch { overflow, used, expected });
                }
            }
            Err(kind) => self.report_page(id, kind),
        }
    }

    /// Walks the subtree at page `id`; returns its first key and its largest key
    /// (as bbolt's `recursivelyCheckPagesInternal` does, for the order checks of the
    /// parent), or nothing when the page could not be walked.
    fn tree(
        &mut self,
        id: Pgid,
        min_closed: Option<&'a [u8]>,
        max_open: Option<&'a [u8]>,
        depth: usize,
        nesting: usize,
    ) -> Span<'a> {
        if self.walk_depth >= MAX_WALK_DEPTH {
            self.report_page(id, CorruptKind::WalkTooDeep { max: MAX_WALK_DEPTH });
            return Span::default();
        }
        self.walk_depth = self.walk_depth.saturating_add(1);
        let span = self.tree_page(id, min_closed, max_open, depth, nesting);
        self.walk_depth = self.walk_depth.saturating_sub(1);
        span
    }

    /// [`Self::tree`] once the walk budget allows one more level.
    fn tree_page(
        &mut self,
        id: Pgid,
        min_closed: Option<&'a [u8]>,
        max_open: Option<&'a [u8]>,
        depth: usize,
        nesting: usize,
    ) -> Span<'a> {
        if depth > MAX_TREE_DEPTH {
            self.report_page(id, CorruptKind::TooDeep { max: MAX_TREE_DEPTH });
            return Span::default();
        }
        if id >= self.pages.hwm() {
            self.report_page(id, CorruptKind::OutOfBounds { hwm: self.pages.hwm() });
            return Span::default();
        }
        let page = match self.pages.page(id) {
            Ok(p) => p,
            Err(c) => {
                self.report(c);
                // Keep the page from being reported as leaked too.
                if self.use_of(id) == Some(PageUse::Unreached) {
                    self.set_use(id, PageUse::Tree);
                }
                return Span::default();
            }
        };
        if !self.claim(id, page.header.overflow, PageUse::Tree) {
            return Span::default();
        }
        self.stats.overflow_pages = self.stats.overflow_pages.saturating_add(u64::from(page.header.overflow));
        self.stats.max_depth = self.stats.max_depth.max(depth as u64);
        // `from_flags` accepts exactly one known flag, as bbolt 1.3.7+'s `fastCheck`.
        let kind = match page.header.page_type() {
            PageType::Branch => NodeKind::Branch,
            PageType::Leaf => NodeKind::Leaf,
            _ => {
                self.report_page(id, CorruptKind::InvalidType { flags: page.header.flags, expected: "branch or leaf" });
                return Span::default();
            }
        };
        let node = match Node::new(Some(id), kind, page.header.count, page.bytes) {
            Ok(n) => n,
            Err(k) => {
                self.report_page(id, k);
                return Span::default();
            }
        };
        self.page_layout(id, &node, page.header.overflow);
        match kind {
            NodeKind::Leaf => {
                self.stats.leaf_pages = self.stats.leaf_pages.saturating_add(1);
                // Rebalancing removes a leaf that deletes emptied (`node.rebalance`);
                // only a bucket's root leaf may be empty.
                if node.count == 0 && depth > 1 {
                    self.report_page(id, CorruptKind::EmptyLeaf);
                }
                self.leaf(&node, min_closed, max_open, nesting)
            }
            NodeKind::Branch => {
                self.stats.branch_pages = self.stats.branch_pages.saturating_add(1);
                if node.count == 0 {
                    self.report_page(id, CorruptKind::EmptyBranch);
                    return Span::default();
                }
                let mut running_min = min_closed;
                let mut span = Span::default();
                for i in 0..node.count {
                    let (key, child) = match node.branch(i) {
                        Ok(kc) => kc,
                        Err(k) => {
                            self.report_page(id, k);
                            return span;
                        }
                    };
                    if i == 0 {
                        span.first = Some(key);
                    }
                    self.key_order(id, i, key, running_min, max_open);
                    let next_key = if i.saturating_add(1) < node.count {
                        node.branch(i.saturating_add(1)).ok().map(|(k, _)| k)
                    } else {
                        max_open
                    };
                    let sub = self.tree(child, Some(key), next_key, depth.saturating_add(1), nesting);
                    // `node.spill` sets each branch key to its child's first key
                    // (`parent.put(.., inodes[0].key, ..)`) whenever the child is
                    // written, and a child is written whenever its keys change; so a
                    // different key means the branch or the child is damaged (the
                    // search still works with a lower bound, which hides the damage).
                    if sub.first.is_some_and(|first| first != key) {
                        self.report(
                            Corruption::on_page(id, CorruptKind::BranchKeyMismatch { index: i, child }).with_key(key),
                        );
                    }
                    span.last = sub.last;
                    running_min = sub.last;
                }
                span
            }
        }
    }

    /// bbolt's `verifyKeyOrder`.
    fn key_order(&mut self, page: Pgid, i: usize, key: &[u8], prev: Option<&[u8]>, max_open: Option<&[u8]>) {
        if let Some(prev) = prev {
            if i == 0 && prev > key {
                self.report(Corruption::on_page(page, CorruptKind::KeyBelowAncestor { index: i }).with_key(key));
            }
            if i > 0 && prev >= key {
                self.report(Corruption::on_page(page, CorruptKind::KeyOrder { index: i }).with_key(key));
            }
        }
        if max_open.is_some_and(|m| key >= m) {
            self.report(Corruption::on_page(page, CorruptKind::KeyNotBelowNext { index: i }).with_key(key));
        }
    }

    /// Checks a leaf's elements and walks the buckets it holds; returns its last key.
    fn leaf(
        &mut self,
        node: &Node<'a>,
        min_closed: Option<&'a [u8]>,
        max_open: Option<&'a [u8]>,
        nesting: usize,
    ) -> Span<'a> {
        let mut running_min = min_closed;
        let mut first = None;
        let page = node.page;
        for i in 0..node.count {
            let e = match node.leaf(i) {
                Ok(e) => e,
                Err(k) => {
                    self.report(located(page, k));
                    return Span { first, last: running_min };
                }
            };
            if i == 0 {
                first = Some(e.key);
            }
            // bbolt defines one leaf element flag, `bucketLeafFlag`, and its writer
            // stores only 0 or that flag; readers test that bit alone and would
            // silently ignore any other, so another set bit is damage.
            if e.flags & !BUCKET_LEAF_FLAG != 0 {
                self.report(
                    located(page, CorruptKind::UnknownElementFlags { index: i, flags: e.flags }).with_key(e.key),
                );
            }
            match page {
                Some(p) => self.key_order(p, i, e.key, running_min, max_open),
                None => {
                    if i > 0 && running_min.is_some_and(|prev| prev >= e.key) {
                        self.report(Corruption::new(CorruptKind::BadInlineBucket { reason: "keys out of order" }));
                    }
                }
            }
            if e.key.is_empty() {
                self.report(located(page, CorruptKind::EmptyKey { index: i }));
            }
            running_min = Some(e.key);
            if !e.is_bucket() {
                self.stats.keys = self.stats.keys.saturating_add(1);
                continue;
            }
            self.stats.buckets = self.stats.buckets.saturating_add(1);
            if page.is_none() {
                self.report(
                    Corruption::new(CorruptKind::BadInlineBucket { reason: "contains a nested bucket" })
                        .with_key(e.key),
                );
                continue;
            }
            let root = match bucket_value(e.value) {
                Ok((_, root)) => root,
                Err(k) => {
                    self.report(located(page, k).with_key(e.key));
                    continue;
                }
            };
            // `bucket.spill` stores a bucket with its own pages as exactly the 16-byte
            // header, and an inline one as header + page image: a longer value with a
            // root page is damage (typically an inline bucket's zero root flipped to
            // point at some page, whose contents would then pass for the bucket's).
            if matches!(root, BucketRoot::Paged(_)) && e.value.len() != BUCKET_HEADER_SIZE {
                self.report(
                    located(page, CorruptKind::PagedBucketValueLength { len: e.value.len() as u64 }).with_key(e.key),
                );
            }
            self.path.push(e.key.to_vec());
            match root {
                BucketRoot::Paged(r) if r < 2 => {
                    self.report(located(page, CorruptKind::BucketRootOutOfRange { root: r }).with_key(e.key));
                }
                BucketRoot::Paged(_) => self.bucket(root, page, nesting.saturating_add(1)),
                BucketRoot::Inline(_) => {
                    self.stats.inline_buckets = self.stats.inline_buckets.saturating_add(1);
                    self.bucket(root, page, nesting.saturating_add(1));
                }
            }
            self.path.pop();
        }
        Span { first, last: running_min }
    }
}

/// The first and the largest key of a subtree, when it could be read.
#[derive(Debug, Clone, Copy, Default)]
struct Span<'a> {
    first: Option<&'a [u8]>,
    last: Option<&'a [u8]>,
}

fn located(page: Option<Pgid>, kind: CorruptKind) -> Corruption {
    match page {
        Some(p) => Corruption::on_page(p, kind),
        None => Corruption::new(kind),
    }
}

fn overflow_use(use_: PageUse) -> PageUse {
    match use_ {
        PageUse::Freelist => PageUse::Freelist,
        _ => PageUse::Overflow,
    }
}

/// Checks the whole file: metas, freelist, every bucket tree, page accounting.
pub fn check(db: &Db<'_>, opts: &CheckOptions) -> CheckReport {
    run(db, opts, true)
}

/// [`check`] as if no freelist were persisted: every page no tree reaches is
/// free, whatever the freelist says (bbolt's `freepages()`), and the freelist
/// itself is neither read nor reported on. What a freelist rebuild starts from.
pub(crate) fn check_tree(db: &Db<'_>, opts: &CheckOptions) -> CheckReport {
    run(db, opts, false)
}

fn run(db: &Db<'_>, opts: &CheckOptions, read_freelist: bool) -> CheckReport {
    let pages = db.pages();
    let meta = db.meta();
    // Sized by the file, not by the meta's `pgid` alone (see `Pages::readable`).
    let tracked = usize::try_from(pages.readable()).unwrap_or(0);
    let mut c = Checker {
        pages,
        opts,
        page_use: vec![PageUse::Unreached; tracked],
        freed: vec![false; tracked],
        problems: Vec::new(),
        problem_count: 0,
        stats: CheckStats::default(),
        path: Vec::new(),
        walk_depth: 0,
    };

    // Both metas must be valid, the inactive one too. bbolt writes a meta page
    // with one `pwrite` after syncing the data pages, and the whole meta struct
    // (bytes 0..80) lies in the page's first 512-byte sector, which disks write
    // atomically: a crash leaves the old or the new meta, both valid. Every file
    // written by etcd that we have (raw dbs and snapshots of 3.4 to 3.7) has two
    // valid metas, T and T-1. So an invalid one is damage, even though bbolt
    // would fall back to the other.
    for (i, slot) in db.metas().slots.iter().enumerate() {
        let (id, meta_no) = (i as Pgid, u8::from(i == 1));
        if let Err(fault) = &slot.validity {
            c.report_page(id, CorruptKind::InvalidMeta { meta: meta_no, fault: fault.clone() });
        }
        let Some(h) = slot.header else { continue };
        if h.page_type() != PageType::Meta {
            c.report_page(id, CorruptKind::InvalidType { flags: h.flags, expected: "meta" });
        }
        // The header is not covered by the checksum; `meta.write` sets id to the
        // slot (`txid % 2`, or 0 and 1 in `WriteTo`), count and overflow to 0.
        for (field, value, want) in
            [("id", h.id, id), ("count", u64::from(h.count), 0), ("overflow", u64::from(h.overflow), 0)]
        {
            if value != want {
                c.report_page(id, CorruptKind::MetaHeader { meta: meta_no, field, value });
            }
        }
    }
    let needed = pages.hwm().saturating_mul(db.page_size() as u64);
    if (db.data().len() as u64) < needed {
        c.report(Corruption::new(CorruptKind::FileShorterThanHwm { len: db.data().len() as u64, needed }));
    }
    if pages.hwm() < 2 {
        c.report(Corruption::new(CorruptKind::MetaField { field: "pgid", value: pages.hwm(), hwm: pages.hwm() }));
    }
    for u in c.page_use.iter_mut().take(2) {
        *u = PageUse::Meta;
    }
    if read_freelist {
        c.check_freelist(&meta);
    }

    let root = meta.root.root;
    if root < 2 || root >= pages.hwm() {
        c.report(Corruption::new(CorruptKind::MetaField { field: "root", value: root, hwm: pages.hwm() }));
    } else {
        c.bucket(BucketRoot::Paged(root), None, 0);
    }

    let persisted = read_freelist && meta.has_freelist();
    let mut leaked = Vec::new();
    for (i, (u, freed)) in c.page_use.iter_mut().zip(&c.freed).enumerate() {
        if *u == PageUse::Unreached {
            if *freed || !persisted {
                *u = PageUse::Free;
            } else {
                leaked.push(i as Pgid);
            }
        }
    }
    for id in leaked {
        c.report_page(id, CorruptKind::UnreachableUnfreed);
    }
    c.stats.free_pages = c.page_use.iter().filter(|u| **u == PageUse::Free).count() as u64;
    CheckReport { problems: c.problems, problem_count: c.problem_count, stats: c.stats, page_use: c.page_use }
}

impl Db<'_> {
    /// Runs every consistency check (see [`check`]).
    pub fn check(&self) -> CheckReport {
        check(self, &CheckOptions::default())
    }
}
