//! Page access with bounds checks, and views of branch and leaf nodes.

use crate::error::{CorruptKind, Corruption};
use crate::layout::{
    BucketHeader, PageHeader, PageType, Pgid, BRANCH_ELEMENT_SIZE, BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG,
    LEAF_ELEMENT_SIZE, PAGE_HEADER_SIZE,
};
use crate::le::{slice_at, u32_at, u64_at};

/// The file's pages: the bytes, the page size and the high-water mark.
#[derive(Debug, Clone, Copy)]
pub struct Pages<'a> {
    data: &'a [u8],
    page_size: usize,
    hwm: Pgid,
    /// Told the bytes of each leaf page read (a progress bar's count).
    meter: Option<&'a etcdsnap_io::Meter>,
}

/// One logical page: its header and its bytes, overflow pages included.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    /// The page id.
    pub id: Pgid,
    /// The decoded header.
    pub header: PageHeader,
    /// The page's bytes from its header to the end of its overflow run.
    pub bytes: &'a [u8],
}

impl<'a> Pages<'a> {
    /// A view of `data` cut into pages of `page_size`, in use below `hwm`.
    pub fn new(data: &'a [u8], page_size: usize, hwm: Pgid) -> Self {
        Self { data, page_size, hwm, meter: None }
    }

    /// The meter told the bytes of each leaf page read, if any.
    pub fn meter(&self) -> Option<&'a etcdsnap_io::Meter> {
        self.meter
    }

    /// These pages, telling `meter` the bytes of each leaf page read.
    pub fn metered(self, meter: &'a etcdsnap_io::Meter) -> Self {
        Self { meter: Some(meter), ..self }
    }

    /// The page size in bytes.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The high-water mark (`meta.pgid`).
    pub fn hwm(&self) -> Pgid {
        self.hwm
    }

    /// Pages that can be read: below the HWM and wholly inside the file. Loops and
    /// tables sized by a page count use this, never the HWM alone, which a damaged
    /// or crafted meta can make as large as 2^64 - 1.
    pub fn readable(&self) -> u64 {
        let in_file = self.data.len().checked_div(self.page_size).unwrap_or(0) as u64;
        self.hwm.min(in_file)
    }

    /// The whole file.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Byte offset of page `id` in the file, if it fits in `u64`.
    pub fn offset_of(&self, id: Pgid) -> Option<u64> {
        id.checked_mul(self.page_size as u64)
    }

    /// The `page_size` bytes of page `id` without any check of its header, if inside the file.
    pub fn raw(&self, id: Pgid) -> Option<&'a [u8]> {
        let off = usize::try_from(self.offset_of(id)?).ok()?;
        slice_at(self.data, off, self.page_size)
    }

    /// Page `id` with its overflow run, checked like bbolt's `tx.page` + `fastCheck`:
    /// below the HWM, inside the file, self-identifying, overflow below the HWM.
    pub fn page(&self, id: Pgid) -> Result<Page<'a>, Corruption> {
        let fail = |kind| {
            let c = Corruption::on_page(id, kind);
            match self.offset_of(id) {
                Some(o) => c.at_offset(o),
                None => c,
            }
        };
        if id >= self.hwm {
            return Err(fail(CorruptKind::OutOfBounds { hwm: self.hwm }));
        }
        let first = self.raw(id).ok_or_else(|| fail(CorruptKind::PastEndOfFile))?;
        let header = PageHeader::parse(first).ok_or_else(|| fail(CorruptKind::PastEndOfFile))?;
        if header.id != id {
            return Err(fail(CorruptKind::IdMismatch { found: header.id }));
        }
        let span = u64::from(header.overflow) + 1;
        if id.checked_add(span).is_none_or(|end| end > self.hwm) {
            return Err(fail(CorruptKind::OverflowPastHwm { overflow: header.overflow, hwm: self.hwm }));
        }
        let len = usize::try_from(span)
            .ok()
            .and_then(|s| s.checked_mul(self.page_size))
            .ok_or_else(|| fail(CorruptKind::PastEndOfFile))?;
        let off = usize::try_from(self.offset_of(id).unwrap_or(u64::MAX)).unwrap_or(usize::MAX);
        let bytes = slice_at(self.data, off, len).ok_or_else(|| fail(CorruptKind::PastEndOfFile))?;
        if let (PageType::Leaf, Some(m)) = (header.page_type(), self.meter) {
            m.add(len as u64);
        }
        Ok(Page { id, header, bytes })
    }

    /// Page `id` as a branch or leaf node.
    pub(crate) fn node(&self, id: Pgid) -> Result<Node<'a>, Corruption> {
        let page = self.page(id)?;
        let kind = match page.header.page_type() {
            PageType::Branch => NodeKind::Branch,
            PageType::Leaf => NodeKind::Leaf,
            _ => {
                return Err(Corruption::on_page(
                    id,
                    CorruptKind::InvalidType { flags: page.header.flags, expected: "branch or leaf" },
                ))
            }
        };
        Node::new(Some(id), kind, page.header.count, page.bytes).map_err(|k| Corruption::on_page(id, k))
    }
}

/// Whether a node is interior or a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Branch,
    Leaf,
}

/// A branch or leaf page (or an inline bucket's page image) with a validated element array.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    /// Page id, `None` for an inline bucket.
    pub page: Option<Pgid>,
    pub kind: NodeKind,
    pub count: usize,
    bytes: &'a [u8],
}

/// A leaf element: flags, key and value (for a bucket, the bucket header and any inline page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeafElem<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl LeafElem<'_> {
    pub fn is_bucket(&self) -> bool {
        self.flags & BUCKET_LEAF_FLAG != 0
    }
}

impl<'a> Node<'a> {
    /// Checks that `count` elements fit after the header of `bytes`.
    pub fn new(page: Option<Pgid>, kind: NodeKind, count: u16, bytes: &'a [u8]) -> Result<Self, CorruptKind> {
        let count = usize::from(count);
        let array_end = count
            .checked_mul(LEAF_ELEMENT_SIZE) // same size for branch elements
            .and_then(|n| n.checked_add(PAGE_HEADER_SIZE));
        if array_end.is_none_or(|end| end > bytes.len()) {
            return Err(CorruptKind::ElementsPastPage { count: u16::try_from(count).unwrap_or(u16::MAX) });
        }
        Ok(Self { page, kind, count, bytes })
    }

    fn element_offset(i: usize) -> usize {
        // i < count and count * 16 + 16 <= len were checked in `new`.
        PAGE_HEADER_SIZE.saturating_add(i.saturating_mul(BRANCH_ELEMENT_SIZE))
    }

    /// Branch element `i`: its key and child page id.
    pub fn branch(&self, i: usize) -> Result<(&'a [u8], Pgid), CorruptKind> {
        let bad = CorruptKind::ElementPastPage { index: i };
        if i >= self.count {
            return Err(bad);
        }
        let e = Self::element_offset(i);
        let pos = u32_at(self.bytes, e).ok_or(bad.clone())? as usize;
        let ksize = u32_at(self.bytes, e.saturating_add(4)).ok_or(bad.clone())? as usize;
        let child = u64_at(self.bytes, e.saturating_add(8)).ok_or(bad.clone())?;
        let key = e.checked_add(pos).and_then(|k| slice_at(self.bytes, k, ksize)).ok_or(bad)?;
        Ok((key, child))
    }

    /// Leaf element `i`.
    pub fn leaf(&self, i: usize) -> Result<LeafElem<'a>, CorruptKind> {
        let bad = CorruptKind::ElementPastPage { index: i };
        if i >= self.count {
            return Err(bad);
        }
        let e = Self::element_offset(i);
        let flags = u32_at(self.bytes, e).ok_or(bad.clone())?;
        let pos = u32_at(self.bytes, e.saturating_add(4)).ok_or(bad.clone())? as usize;
        let ksize = u32_at(self.bytes, e.saturating_add(8)).ok_or(bad.clone())? as usize;
        let vsize = u32_at(self.bytes, e.saturating_add(12)).ok_or(bad.clone())? as usize;
        let k = e.checked_add(pos).ok_or(bad.clone())?;
        let key = slice_at(self.bytes, k, ksize).ok_or(bad.clone())?;
        let value = k.checked_add(ksize).and_then(|v| slice_at(self.bytes, v, vsize)).ok_or(bad)?;
        Ok(LeafElem { flags, key, value })
    }

    /// Checks that the elements' data sits where bbolt's writer (`node.write`) puts
    /// it: element 0's right after the element array, each next one right after the
    /// previous element's key (and value, in a leaf), never past the node's bytes.
    /// Returns the bytes the node uses (bbolt's `node.size()`).
    ///
    /// bbolt never leaves gaps, overlaps or reordered data, so any other layout is
    /// damage; this is what catches a lowered `count` (element 0's data then no
    /// longer starts after the array) and a changed `pos`, `ksize` or `vsize`
    /// (the next element's data no longer follows).
    pub fn layout(&self) -> Result<u64, CorruptKind> {
        let bytes_len = self.bytes.len() as u64;
        let mut expected =
            (self.count as u64).saturating_mul(BRANCH_ELEMENT_SIZE as u64).saturating_add(PAGE_HEADER_SIZE as u64);
        for i in 0..self.count {
            let e = Self::element_offset(i);
            let bad = CorruptKind::ElementPastPage { index: i };
            let (pos, ksize, vsize) = match self.kind {
                NodeKind::Branch => (u32_at(self.bytes, e), u32_at(self.bytes, e.saturating_add(4)), Some(0)),
                NodeKind::Leaf => (
                    u32_at(self.bytes, e.saturating_add(4)),
                    u32_at(self.bytes, e.saturating_add(8)),
                    u32_at(self.bytes, e.saturating_add(12)),
                ),
            };
            let (Some(pos), Some(ksize), Some(vsize)) = (pos, ksize, vsize) else { return Err(bad) };
            let found = (e as u64).saturating_add(u64::from(pos));
            if found != expected {
                return Err(CorruptKind::ElementLayout { index: i, found, expected });
            }
            expected = expected.saturating_add(u64::from(ksize)).saturating_add(u64::from(vsize));
            if expected > bytes_len {
                return Err(bad);
            }
        }
        Ok(expected)
    }

    /// The key of element `i`, whatever the node kind.
    pub fn key(&self, i: usize) -> Result<&'a [u8], CorruptKind> {
        match self.kind {
            NodeKind::Branch => self.branch(i).map(|(k, _)| k),
            NodeKind::Leaf => self.leaf(i).map(|e| e.key),
        }
    }

    /// Index of the first element whose key is >= `key` (leaf search), or `count`.
    pub fn lower_bound(&self, key: &[u8]) -> Result<usize, CorruptKind> {
        let (mut lo, mut hi) = (0usize, self.count);
        while lo < hi {
            // lo < hi: neither the midpoint nor its successor overflows.
            let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
            if self.key(mid)? < key {
                lo = mid.saturating_add(1);
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Index of the child to descend into for `key`: the last element whose key is <= `key`,
    /// or 0 when every key is greater (bbolt's `searchPage` on branches).
    pub fn branch_index(&self, key: &[u8]) -> Result<usize, CorruptKind> {
        let (mut lo, mut hi) = (0usize, self.count);
        // Find the first index with key > `key`.
        while lo < hi {
            // lo < hi: neither the midpoint nor its successor overflows.
            let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
            if self.key(mid)? <= key {
                lo = mid.saturating_add(1);
            } else {
                hi = mid;
            }
        }
        Ok(lo.saturating_sub(1))
    }
}

/// Where a bucket's tree lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketRoot<'a> {
    /// A tree rooted at this page.
    Paged(Pgid),
    /// An inline bucket: the leaf page image stored in the parent's value.
    Inline(&'a [u8]),
}

/// Decodes a bucket entry's value into its header and root.
pub(crate) fn bucket_value(value: &[u8]) -> Result<(BucketHeader, BucketRoot<'_>), CorruptKind> {
    let header = BucketHeader::parse(value).ok_or(CorruptKind::BucketValueTooShort { len: value.len() })?;
    let root = if header.root == 0 {
        BucketRoot::Inline(value.get(BUCKET_HEADER_SIZE..).unwrap_or(&[]))
    } else {
        BucketRoot::Paged(header.root)
    };
    Ok((header, root))
}

/// The root node of an inline bucket's page image.
pub(crate) fn inline_node(image: &[u8]) -> Result<Node<'_>, CorruptKind> {
    let header = PageHeader::parse(image).ok_or(CorruptKind::BadInlineBucket { reason: "page header truncated" })?;
    if header.page_type() != PageType::Leaf {
        return Err(CorruptKind::BadInlineBucket { reason: "page is not a leaf" });
    }
    if header.overflow != 0 {
        return Err(CorruptKind::BadInlineBucket { reason: "page has overflow" });
    }
    Node::new(None, NodeKind::Leaf, header.count, image)
}
