//! The layout of a healthy bbolt file, as the damage classes need it: what
//! kind each page is (meta, freelist, branch, `key`-bucket leaf, other
//! bucket leaf, the root bucket's leaf holding the inline buckets, overflow,
//! free), and where its structural bytes are, by class (the classes of the
//! bit-flip campaign, `crates/mvcc/tests/flip_campaign.rs`).
//!
//! Read with plain indexing: the input is an undamaged original that checks
//! clean (a panic here is a broken original, not a finding).

use std::collections::BTreeMap;

/// What a page of the healthy file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageKind {
    Meta,
    Freelist,
    Branch,
    /// A leaf of the `key` bucket.
    KeyLeaf,
    /// A leaf of another paged bucket (`lease`, `members`, `auth*` ...).
    OtherLeaf,
    /// A leaf of the root bucket: the top-level bucket headers and the inline buckets.
    RootLeaf,
    /// A continuation page of a page with `overflow` > 0.
    Overflow,
    /// Below the high-water mark, reached by no tree.
    Free,
}

impl PageKind {
    pub const ALL: [PageKind; 8] = [
        PageKind::Meta,
        PageKind::Freelist,
        PageKind::Branch,
        PageKind::KeyLeaf,
        PageKind::OtherLeaf,
        PageKind::RootLeaf,
        PageKind::Overflow,
        PageKind::Free,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PageKind::Meta => "meta",
            PageKind::Freelist => "freelist",
            PageKind::Branch => "branch",
            PageKind::KeyLeaf => "leaf-key",
            PageKind::OtherLeaf => "leaf-other",
            PageKind::RootLeaf => "bucket-inline",
            PageKind::Overflow => "overflow",
            PageKind::Free => "free",
        }
    }
}

/// Where a structural byte is (the bit-flip campaign's classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ByteClass {
    Meta,
    BranchHeader,
    LeafHeader,
    FreelistHeader,
    BranchElements,
    LeafElements,
    BucketRoot,
    InlinePageHeader,
    InlineElements,
    BucketSequence,
}

impl ByteClass {
    pub const ALL: [ByteClass; 10] = [
        ByteClass::Meta,
        ByteClass::BranchHeader,
        ByteClass::LeafHeader,
        ByteClass::FreelistHeader,
        ByteClass::BranchElements,
        ByteClass::LeafElements,
        ByteClass::BucketRoot,
        ByteClass::InlinePageHeader,
        ByteClass::InlineElements,
        ByteClass::BucketSequence,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ByteClass::Meta => "meta",
            ByteClass::BranchHeader => "branch-header",
            ByteClass::LeafHeader => "leaf-header",
            ByteClass::FreelistHeader => "freelist-header",
            ByteClass::BranchElements => "branch-elements",
            ByteClass::LeafElements => "leaf-elements",
            ByteClass::BucketRoot => "bucket-root",
            ByteClass::InlinePageHeader => "inline-page-header",
            ByteClass::InlineElements => "inline-elements",
            ByteClass::BucketSequence => "bucket-sequence",
        }
    }
}

/// The healthy file's layout.
#[derive(Debug)]
pub struct FileMap {
    pub ps: usize,
    /// The active meta's high-water mark (`pgid`).
    pub hwm: u64,
    /// Index of the active meta page (0 or 1).
    pub active: usize,
    /// Kind of every page below the high-water mark.
    pub kinds: Vec<PageKind>,
    /// Structural byte ranges `(start, len)` by class.
    pub bytes: BTreeMap<ByteClass, Vec<(usize, usize)>>,
}

pub fn u16_at(d: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(d[o..o + 2].try_into().unwrap())
}
pub fn u32_at(d: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(d[o..o + 4].try_into().unwrap())
}
pub fn u64_at(d: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(d[o..o + 8].try_into().unwrap())
}

impl FileMap {
    /// Maps `d` (an image without trailer).
    pub fn new(d: &[u8]) -> FileMap {
        let ps = u32_at(d, 16 + 8) as usize;
        let active = usize::from(u64_at(d, ps + 16 + 48) > u64_at(d, 16 + 48));
        let m = active * ps + 16;
        let (root, freelist, hwm) = (u64_at(d, m + 16), u64_at(d, m + 32), u64_at(d, m + 40));
        let mut map = FileMap { ps, hwm, active, kinds: vec![PageKind::Free; hwm as usize], bytes: BTreeMap::new() };
        map.kinds[0] = PageKind::Meta;
        map.kinds[1] = PageKind::Meta;
        map.add(ByteClass::Meta, 0, 80);
        map.add(ByteClass::Meta, ps, 80);
        if freelist != u64::MAX {
            map.set(d, freelist, PageKind::Freelist);
            map.add(ByteClass::FreelistHeader, freelist as usize * ps, 16);
        }
        map.tree(d, root, None);
        map
    }

    fn add(&mut self, class: ByteClass, start: usize, len: usize) {
        self.bytes.entry(class).or_default().push((start, len));
    }

    fn set(&mut self, d: &[u8], id: u64, kind: PageKind) {
        let overflow = u32_at(d, id as usize * self.ps + 12) as u64;
        self.kinds[id as usize] = kind;
        for o in 1..=overflow {
            self.kinds[(id + o) as usize] = PageKind::Overflow;
        }
    }

    /// The pages of a tree; `bucket` is `None` for the root bucket.
    fn tree(&mut self, d: &[u8], id: u64, bucket: Option<&[u8]>) {
        let p = id as usize * self.ps;
        let flags = u16_at(d, p + 8);
        let count = u16_at(d, p + 10) as usize;
        if flags == 0x01 {
            self.set(d, id, PageKind::Branch);
            self.add(ByteClass::BranchHeader, p, 16);
            self.add(ByteClass::BranchElements, p + 16, 16 * count);
            for i in 0..count {
                self.tree(d, u64_at(d, p + 16 + 16 * i + 8), bucket);
            }
            return;
        }
        assert_eq!(flags, 0x02, "page {id}");
        let kind = match bucket {
            None => PageKind::RootLeaf,
            Some(b"key") => PageKind::KeyLeaf,
            Some(_) => PageKind::OtherLeaf,
        };
        self.set(d, id, kind);
        self.add(ByteClass::LeafHeader, p, 16);
        self.leaf(d, p, count, ByteClass::LeafElements);
    }

    /// The element array of a leaf (page or inline image at `p`) and the buckets it holds.
    fn leaf(&mut self, d: &[u8], p: usize, count: usize, class: ByteClass) {
        self.add(class, p + 16, 16 * count);
        for i in 0..count {
            let e = p + 16 + 16 * i;
            if u32_at(d, e) & 1 == 0 {
                continue;
            }
            let k = e + u32_at(d, e + 4) as usize;
            let name = d[k..k + u32_at(d, e + 8) as usize].to_vec();
            let v = k + name.len();
            self.add(ByteClass::BucketRoot, v, 8);
            self.add(ByteClass::BucketSequence, v + 8, 8);
            let root = u64_at(d, v);
            if root != 0 {
                self.tree(d, root, Some(&name));
            } else {
                let ip = v + 16;
                self.add(ByteClass::InlinePageHeader, ip, 16);
                self.leaf(d, ip, u16_at(d, ip + 10) as usize, ByteClass::InlineElements);
            }
        }
    }

    /// The pages of one kind.
    pub fn pages(&self, kind: PageKind) -> Vec<u64> {
        (0..self.hwm).filter(|&i| self.kinds[i as usize] == kind).collect()
    }
}
