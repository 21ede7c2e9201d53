//! Buckets: the root bucket and nested ones, paged or inline (`Bucket` in bbolt).

use crate::cursor::{Cursor, Entry};
use crate::error::{CorruptKind, Corruption, Result};
use crate::layout::BucketHeader;
use crate::page::{bucket_value, BucketRoot, Pages};

/// A read-only handle on a bucket of a [`Db`](crate::Db).
#[derive(Debug, Clone)]
pub struct Bucket<'a> {
    pages: Pages<'a>,
    header: BucketHeader,
    root: BucketRoot<'a>,
    path: Vec<Vec<u8>>,
}

impl<'a> Bucket<'a> {
    pub(crate) fn new(pages: Pages<'a>, header: BucketHeader, root: BucketRoot<'a>, path: Vec<Vec<u8>>) -> Self {
        Self { pages, header, root, path }
    }

    pub(crate) fn pages(&self) -> Pages<'a> {
        self.pages
    }

    /// Where the bucket's tree lives.
    pub fn root(&self) -> BucketRoot<'a> {
        self.root
    }

    /// The bucket header (root page id, sequence).
    pub fn header(&self) -> BucketHeader {
        self.header
    }

    /// The bucket's `NextSequence` counter.
    pub fn sequence(&self) -> u64 {
        self.header.sequence
    }

    /// Whether the bucket is stored inline in its parent's leaf.
    pub fn is_inline(&self) -> bool {
        matches!(self.root, BucketRoot::Inline(_))
    }

    /// Cursors over up to `parts` consecutive slices of the bucket, in order:
    /// the root's children divided as evenly as their count allows, so that
    /// iterating them one after another yields exactly what [`cursor`](Self::cursor)
    /// yields. For walking a large bucket on several threads (per-part results
    /// combined in order). One cursor when the root is a leaf. Each cursor
    /// iterates (as an iterator, or `first`/`next_entry`) its own slice only;
    /// `seek` and `last_entry` act on the whole bucket.
    pub fn split_cursors(&self, parts: usize) -> Result<Vec<Cursor<'a>>> {
        let children = match self.root {
            BucketRoot::Paged(id) => {
                let node = self.pages.node(id).map_err(|c| crate::Error::from(c.in_bucket(&self.path)))?;
                if node.kind == crate::page::NodeKind::Branch {
                    node.count
                } else {
                    0
                }
            }
            BucketRoot::Inline(_) => 0,
        };
        let parts = parts.clamp(1, children.max(1));
        if parts == 1 {
            return Ok(vec![self.cursor()]);
        }
        let mut out = Vec::with_capacity(parts);
        let mut start = 0usize;
        for p in 1..=parts {
            let end = children.saturating_mul(p).checked_div(parts).unwrap_or(children);
            out.push(self.cursor().spanning(start, end));
            start = end;
        }
        Ok(out)
    }

    /// Names from the top-level bucket down to this one; empty for the root bucket.
    pub fn path(&self) -> &[Vec<u8>] {
        &self.path
    }

    /// A cursor over this bucket; as an iterator it yields every entry in key order.
    pub fn cursor(&self) -> Cursor<'a> {
        Cursor::new(self.pages(), self.root(), self.path())
    }

    /// The entry stored under `key`, bucket or value.
    pub fn entry(&self, key: &[u8]) -> Result<Option<Entry<'a>>> {
        let mut c = self.cursor();
        Ok(c.seek(key)?.filter(|e| e.key == key))
    }

    /// The value stored under `key`; `None` when absent or when `key` names a bucket (bbolt's `Get`).
    pub fn get(&self, key: &[u8]) -> Result<Option<&'a [u8]>> {
        Ok(self.entry(key)?.filter(|e| !e.is_bucket()).map(|e| e.value))
    }

    /// The nested bucket `name`; `None` when absent or when `name` is a plain key (bbolt's `Bucket`).
    pub fn bucket(&self, name: &[u8]) -> Result<Option<Bucket<'a>>> {
        match self.entry(name)? {
            Some(e) if e.is_bucket() => self.child(e).map(Some),
            _ => Ok(None),
        }
    }

    /// Opens the nested bucket held by entry `e` of this bucket.
    pub fn child(&self, e: Entry<'a>) -> Result<Bucket<'a>> {
        let mut path = self.path.clone();
        path.push(e.key.to_vec());
        let fail = |kind| Corruption::new(kind).in_bucket(&path).with_key(e.key);
        if !e.is_bucket() {
            return Err(fail(CorruptKind::NotABucket).into());
        }
        if self.is_inline() {
            return Err(fail(CorruptKind::BadInlineBucket { reason: "contains a nested bucket" }).into());
        }
        let (header, root) = bucket_value(e.value).map_err(fail)?;
        if let BucketRoot::Paged(id) = root {
            if id < 2 || id >= self.pages.hwm() {
                return Err(fail(CorruptKind::BucketRootOutOfRange { root: id }).into());
            }
        }
        Ok(Bucket::new(self.pages, header, root, path))
    }
}
