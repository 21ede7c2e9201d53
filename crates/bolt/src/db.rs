//! A bbolt database file opened for reading over a byte slice.

use crate::bucket::Bucket;
use crate::error::{CorruptKind, Corruption, Result};
use crate::freelist::Freelist;
use crate::meta::{Meta, Metas};
use crate::page::{BucketRoot, Pages};

/// A bbolt file, read zero-copy from a byte slice (usually a memory map).
///
/// Opening reads only the two meta pages; every other page is read and
/// checked when a cursor reaches it.
#[derive(Debug, Clone)]
pub struct Db<'a> {
    data: &'a [u8],
    metas: Metas,
    pages: Pages<'a>,
}

impl<'a> Db<'a> {
    /// Opens the database in `data`: finds the page size, validates both metas and
    /// selects the valid one with the highest txid.
    ///
    /// Bytes beyond `pgid × pageSize` (preallocation, a snapshot's SHA-256
    /// trailer) are ignored.
    pub fn open(data: &'a [u8]) -> Result<Self> {
        let metas = Metas::read(data)?;
        let meta = metas.active();
        let pages = Pages::new(data, metas.page_size as usize, meta.pgid);
        Ok(Self { data, metas, pages })
    }

    /// This db, telling `meter` the bytes of every leaf page its readers
    /// and checker read (leaf pages are read once by a scan; branch pages,
    /// which lookups descend through again and again, are not counted).
    pub fn metered(self, meter: &'a etcdsnap_io::Meter) -> Self {
        Self { pages: self.pages.metered(meter), ..self }
    }

    /// The meter given to [`metered`](Self::metered), for the other passes
    /// over the same file (a trailer hash) to count into.
    pub fn meter(&self) -> Option<&'a etcdsnap_io::Meter> {
        self.pages.meter()
    }

    /// The file's bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Both meta pages and which one is in use.
    pub fn metas(&self) -> &Metas {
        &self.metas
    }

    /// The meta in use.
    pub fn meta(&self) -> Meta {
        self.metas.active()
    }

    /// Page size in bytes, as stored in the meta.
    pub fn page_size(&self) -> usize {
        self.pages.page_size()
    }

    /// The high-water mark (`meta.pgid`).
    pub fn hwm(&self) -> u64 {
        self.pages.hwm()
    }

    /// Page access with bounds checks.
    pub fn pages(&self) -> Pages<'a> {
        self.pages
    }

    /// The root bucket, whose keys are the top-level bucket names.
    pub fn root(&self) -> Result<Bucket<'a>> {
        let header = self.meta().root;
        if header.root < 2 || header.root >= self.hwm() {
            return Err(
                Corruption::new(CorruptKind::MetaField { field: "root", value: header.root, hwm: self.hwm() }).into()
            );
        }
        Ok(Bucket::new(self.pages, header, BucketRoot::Paged(header.root), Vec::new()))
    }

    /// The bucket at `path` (top-level name first), or `None` when any part is missing.
    pub fn bucket<P: AsRef<[u8]>>(&self, path: &[P]) -> Result<Option<Bucket<'a>>> {
        let mut b = self.root()?;
        for name in path {
            match b.bucket(name.as_ref())? {
                Some(child) => b = child,
                None => return Ok(None),
            }
        }
        Ok(Some(b))
    }

    /// The persisted freelist, or the fact that there is none (etcd's sentinel).
    pub fn freelist(&self) -> Result<Freelist> {
        Freelist::read(&self.pages, &self.meta())
    }
}
