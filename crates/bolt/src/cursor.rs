//! A cursor over one bucket: first / next / seek in key byte order, zero-copy.

use crate::error::{CorruptKind, Corruption, Error, Result};
use crate::layout::{BucketHeader, Pgid};
use crate::page::{inline_node, BucketRoot, LeafElem, Node, NodeKind, Pages};

pub use crate::layout::MAX_DEPTH;

/// One key of a bucket and its value, borrowed from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value; for a nested bucket, the bucket header and any inline page image.
    pub value: &'a [u8],
    /// The leaf element's flags (`flags`); bit 0 marks a nested bucket.
    pub flags: u32,
}

impl<'a> Entry<'a> {
    /// Whether the entry is a nested bucket (`bucketLeafFlag`).
    pub fn is_bucket(&self) -> bool {
        self.flags & crate::layout::BUCKET_LEAF_FLAG != 0
    }

    /// The nested bucket's header, when the entry is a bucket.
    pub fn bucket_header(&self) -> Option<BucketHeader> {
        if self.is_bucket() {
            BucketHeader::parse(self.value)
        } else {
            None
        }
    }

    fn from_leaf(e: LeafElem<'a>) -> Self {
        Self { key: e.key, value: e.value, flags: e.flags }
    }
}

#[derive(Debug, Clone, Copy)]
struct Frame<'a> {
    node: Node<'a>,
    index: usize,
}

/// A position in a bucket's tree, moved with [`first`](Cursor::first),
/// [`next`](Cursor::next_entry) and [`seek`](Cursor::seek) (bbolt's `Cursor`).
///
/// Used as an [`Iterator`], it yields every entry from the first (or from the
/// current position, after a seek) and stops after the first error. Every
/// page id read from the file is checked, the descent is capped at
/// [`MAX_DEPTH`], and a walk that reaches more pages than the file holds stops
/// with an error, so a corrupt file cannot make it loop.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    pages: Pages<'a>,
    root: BucketRoot<'a>,
    path: Vec<Vec<u8>>,
    stack: Vec<Frame<'a>>,
    visits: u64,
    state: IterState,
    /// Iteration covers the root's elements `span.0..span.1` (the whole root
    /// when `None`): see [`Bucket::split_cursors`].
    span: Option<(usize, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IterState {
    /// Not positioned yet: the iterator starts with `first`.
    Fresh,
    /// Positioned on an entry that the iterator has not yielded yet.
    Pending,
    /// Positioned on an entry already yielded.
    Yielded,
    /// Past the end or after an error.
    Done,
}

impl<'a> Cursor<'a> {
    /// A cursor over the bucket at `path` whose tree starts at `root`.
    pub(crate) fn new(pages: Pages<'a>, root: BucketRoot<'a>, path: &[Vec<u8>]) -> Self {
        Self {
            pages,
            root,
            path: path.to_vec(),
            stack: Vec::with_capacity(8),
            visits: 0,
            state: IterState::Fresh,
            span: None,
        }
    }

    /// A cursor whose iteration covers the subtrees under the root's
    /// elements `start..end` only.
    pub(crate) fn spanning(self, start: usize, end: usize) -> Self {
        Self { span: Some((start, end)), ..self }
    }

    fn corrupt(&self, page: Option<Pgid>, kind: CorruptKind) -> Error {
        let mut c = Corruption::new(kind).in_bucket(&self.path);
        if let Some(p) = page {
            c.page = Some(p);
            if let Some(o) = self.pages.offset_of(p) {
                c = c.at_offset(o);
            }
        }
        c.into()
    }

    fn load(&mut self, id: Pgid) -> Result<Node<'a>> {
        self.visits = self.visits.saturating_add(1);
        // A full scan loads each page once; more loads than readable pages means a
        // page is shared or revisited (bounded by the file, not by the meta's HWM).
        if self.visits > self.pages.readable().saturating_add(MAX_DEPTH as u64) {
            return Err(self.corrupt(Some(id), CorruptKind::Revisited));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.corrupt(Some(id), CorruptKind::TooDeep { max: MAX_DEPTH }));
        }
        let node = self.pages.node(id).map_err(|c| Error::from(c.in_bucket(&self.path)))?;
        if node.kind == NodeKind::Branch && node.count == 0 {
            return Err(self.corrupt(Some(id), CorruptKind::EmptyBranch));
        }
        Ok(node)
    }

    fn reset(&mut self) -> Result<()> {
        self.stack.clear();
        self.visits = 0;
        let node = match self.root {
            BucketRoot::Paged(id) => self.load(id)?,
            BucketRoot::Inline(image) => inline_node(image).map_err(|k| self.corrupt(None, k))?,
        };
        self.stack.push(Frame { node, index: 0 });
        Ok(())
    }

    /// Descends from the top frame's current element to the leftmost leaf below it.
    fn descend_first(&mut self) -> Result<()> {
        while let Some(top) = self.stack.last() {
            if top.node.kind == NodeKind::Leaf {
                return Ok(());
            }
            let page = top.node.page;
            let (_, child) = top.node.branch(top.index).map_err(|k| self.corrupt(page, k))?;
            let node = self.load(child)?;
            self.stack.push(Frame { node, index: 0 });
        }
        Ok(())
    }

    /// The entry under the cursor, if the top frame is a leaf with an element at its index.
    fn current(&self) -> Result<Option<Entry<'a>>> {
        let Some(top) = self.stack.last() else { return Ok(None) };
        if top.node.kind != NodeKind::Leaf || top.index >= top.node.count {
            return Ok(None);
        }
        let e = top.node.leaf(top.index).map_err(|k| self.corrupt(top.node.page, k))?;
        Ok(Some(Entry::from_leaf(e)))
    }

    /// Moves to the next leaf element, skipping empty leaves; false at the end.
    fn advance(&mut self) -> Result<bool> {
        loop {
            // Pop exhausted frames, then step the deepest one that has a next element.
            loop {
                let at_root = self.stack.len() == 1;
                let span_end = self.span.map(|(_, end)| end);
                let Some(top) = self.stack.last_mut() else { return Ok(false) };
                let end = match span_end {
                    Some(end) if at_root => end.min(top.node.count),
                    _ => top.node.count,
                };
                if top.index.saturating_add(1) < end {
                    top.index = top.index.saturating_add(1);
                    break;
                }
                self.stack.pop();
            }
            self.descend_first()?;
            if self.stack.last().is_some_and(|t| t.node.count > 0) {
                return Ok(true);
            }
        }
    }

    /// Moves to the first entry of the bucket (bbolt's `Cursor.First`), or of
    /// its span for a cursor of [`Bucket::split_cursors`].
    pub fn first(&mut self) -> Result<Option<Entry<'a>>> {
        self.state = IterState::Done;
        self.reset()?;
        if let Some((start, end)) = self.span {
            if self.stack.last().is_some_and(|t| start >= end || start >= t.node.count) {
                return Ok(None);
            }
            self.set_top_index(start);
        }
        self.descend_first()?;
        if self.stack.last().is_some_and(|t| t.node.count == 0) && !self.advance()? {
            return Ok(None);
        }
        let cur = self.current()?;
        self.state = if cur.is_some() { IterState::Yielded } else { IterState::Done };
        Ok(cur)
    }

    /// Moves to the next entry (bbolt's `Cursor.Next`); `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'a>>> {
        match self.state {
            IterState::Fresh => return self.first(),
            IterState::Done => return Ok(None),
            IterState::Pending | IterState::Yielded => {}
        }
        self.state = IterState::Done;
        if !self.advance()? {
            return Ok(None);
        }
        let cur = self.current()?;
        if cur.is_some() {
            self.state = IterState::Yielded;
        }
        Ok(cur)
    }

    fn set_top_index(&mut self, i: usize) {
        if let Some(top) = self.stack.last_mut() {
            top.index = i;
        }
    }

    /// Moves to the last entry of the bucket (bbolt's `Cursor.Last`).
    pub fn last_entry(&mut self) -> Result<Option<Entry<'a>>> {
        self.state = IterState::Done;
        self.reset()?;
        loop {
            let Some(node) = self.stack.last().map(|t| t.node) else { return Ok(None) };
            let i = node.count.saturating_sub(1);
            self.set_top_index(i);
            match node.kind {
                NodeKind::Leaf => break,
                NodeKind::Branch => {
                    let (_, child) = node.branch(i).map_err(|k| self.corrupt(node.page, k))?;
                    let child = self.load(child)?;
                    self.stack.push(Frame { node: child, index: 0 });
                }
            }
        }
        if self.stack.last().is_some_and(|t| t.node.count > 0) {
            let cur = self.current()?;
            if cur.is_some() {
                self.state = IterState::Pending;
            }
            return Ok(cur);
        }
        // An empty rightmost leaf (only an empty root in files bbolt writes): scan.
        let mut last = None;
        let mut c = self.clone();
        c.state = IterState::Fresh;
        for e in c {
            last = Some(e?);
        }
        Ok(last)
    }

    /// Moves to the first entry whose key is >= `key` (bbolt's `Cursor.Seek`).
    pub fn seek(&mut self, key: &[u8]) -> Result<Option<Entry<'a>>> {
        self.state = IterState::Done;
        self.reset()?;
        loop {
            let Some(node) = self.stack.last().map(|t| t.node) else { return Ok(None) };
            match node.kind {
                NodeKind::Branch => {
                    let i = node.branch_index(key).map_err(|k| self.corrupt(node.page, k))?;
                    let (_, child) = node.branch(i).map_err(|k| self.corrupt(node.page, k))?;
                    self.set_top_index(i);
                    let child = self.load(child)?;
                    self.stack.push(Frame { node: child, index: 0 });
                }
                NodeKind::Leaf => {
                    let i = node.lower_bound(key).map_err(|k| self.corrupt(node.page, k))?;
                    self.set_top_index(i);
                    break;
                }
            }
        }
        let at_end = self.stack.last().is_none_or(|t| t.index >= t.node.count);
        if at_end && !self.advance()? {
            return Ok(None);
        }
        let cur = self.current()?;
        if cur.is_some() {
            self.state = IterState::Pending;
        }
        Ok(cur)
    }
}

impl<'a> Iterator for Cursor<'a> {
    type Item = Result<Entry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = match self.state {
            IterState::Pending => {
                self.state = IterState::Yielded;
                self.current()
            }
            _ => self.next_entry(),
        };
        match r {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.state = IterState::Done;
                None
            }
            Err(e) => {
                self.state = IterState::Done;
                Some(Err(e))
            }
        }
    }
}
