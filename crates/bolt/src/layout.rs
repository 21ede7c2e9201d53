//! Raw on-disk layout of bbolt pages, named as in bbolt's Go source
//! (`page.go`, `db.go` meta, `bucket.go` header). Only offsets, sizes and
//! decoding of fixed headers live here; walking trees is elsewhere.

use crate::le::{u16_at, u32_at, u64_at};

/// A page id (`pgid` in bbolt).
pub type Pgid = u64;

/// bbolt's magic number (`magic`), first field of a meta page.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only data file version bbolt writes (`version`).
pub const VERSION: u32 = 2;
/// Size of the page header that opens every page (`pageHeaderSize`).
pub const PAGE_HEADER_SIZE: usize = 16;
/// Size of a branch page element (`branchPageElementSize`).
pub const BRANCH_ELEMENT_SIZE: usize = 16;
/// Size of a leaf page element (`leafPageElementSize`).
pub const LEAF_ELEMENT_SIZE: usize = 16;
/// Size of a bucket header stored as a bucket entry's value (`bucketHeaderSize`).
pub const BUCKET_HEADER_SIZE: usize = 16;
/// Page offset of the meta struct (right after the page header).
pub const META_OFFSET: usize = PAGE_HEADER_SIZE;
/// Bytes of the meta struct covered by its checksum (`magic` .. `txid`).
pub const META_CHECKSUMMED_LEN: usize = 56;
/// Bytes of the meta struct including the checksum.
pub const META_SIZE: usize = 64;
/// `freelist` value meaning "no freelist persisted" (`pgidNoFreelist`),
/// what etcd writes on Linux (`NoFreelistSync`).
pub const PGID_NO_FREELIST: Pgid = u64::MAX;
/// Largest key bbolt accepts (`MaxKeySize`).
pub const MAX_KEY_SIZE: usize = 32768;
/// Largest value bbolt accepts (`MaxValueSize`).
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;
/// Smallest page size we accept in a meta.
pub const MIN_PAGE_SIZE: u32 = 1024;
/// Largest page size we accept in a meta.
pub const MAX_PAGE_SIZE: u32 = 65536;

/// Whether the builder writes pages of `size` bytes: a power of two from
/// [`MIN_PAGE_SIZE`] to [`MAX_PAGE_SIZE`] (bbolt's own page sizes are OS page
/// sizes). Every such size is a multiple of 512, which keeps an etcd snapshot's
/// trailer findable (`size % 512 == 32`).
pub fn valid_page_size(size: u32) -> bool {
    size.is_power_of_two() && (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&size)
}

/// Page flag of an interior node (`branchPageFlag`).
pub const BRANCH_PAGE_FLAG: u16 = 0x01;
/// Page flag of a leaf node (`leafPageFlag`).
pub const LEAF_PAGE_FLAG: u16 = 0x02;
/// Page flag of a meta page (`metaPageFlag`).
pub const META_PAGE_FLAG: u16 = 0x04;
/// Page flag of a freelist page (`freelistPageFlag`).
pub const FREELIST_PAGE_FLAG: u16 = 0x10;
/// Leaf element flag: the value is a bucket header (`bucketLeafFlag`).
pub const BUCKET_LEAF_FLAG: u32 = 0x01;

/// The kind of a page, from its `flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageType {
    /// Interior B+tree node.
    Branch,
    /// Leaf B+tree node.
    Leaf,
    /// Meta page (ids 0 and 1).
    Meta,
    /// Freelist page.
    Freelist,
    /// Anything else; the raw flags are kept.
    Unknown(u16),
}

impl PageType {
    /// Decodes page `flags`, requiring exactly one known flag (bbolt's `fastCheck`).
    pub fn from_flags(flags: u16) -> Self {
        match flags {
            BRANCH_PAGE_FLAG => Self::Branch,
            LEAF_PAGE_FLAG => Self::Leaf,
            META_PAGE_FLAG => Self::Meta,
            FREELIST_PAGE_FLAG => Self::Freelist,
            other => Self::Unknown(other),
        }
    }

    /// The name bbolt's `pages` command prints.
    pub fn name(self) -> String {
        match self {
            Self::Branch => "branch".into(),
            Self::Leaf => "leaf".into(),
            Self::Meta => "meta".into(),
            Self::Freelist => "freelist".into(),
            Self::Unknown(f) => format!("unknown<{f:02x}>"),
        }
    }
}

/// The 16-byte header at the start of every page (`page` in bbolt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// The page's own id (`id`).
    pub id: Pgid,
    /// Page type flags (`flags`).
    pub flags: u16,
    /// Element count, or freelist id count (`count`).
    pub count: u16,
    /// Extra pages this logical page spans (`overflow`).
    pub overflow: u32,
}

impl PageHeader {
    /// Decodes a header from the first 16 bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Option<Self> {
        Some(Self { id: u64_at(buf, 0)?, flags: u16_at(buf, 8)?, count: u16_at(buf, 10)?, overflow: u32_at(buf, 12)? })
    }

    /// The page type from `flags`.
    pub fn page_type(&self) -> PageType {
        PageType::from_flags(self.flags)
    }

    /// Writes the header into the first 16 bytes of `buf` (which must hold them).
    pub fn write_to(&self, buf: &mut [u8; PAGE_HEADER_SIZE]) {
        let (id, rest) = buf.split_at_mut(8);
        id.copy_from_slice(&self.id.to_le_bytes());
        let (flags, rest) = rest.split_at_mut(2);
        flags.copy_from_slice(&self.flags.to_le_bytes());
        let (count, overflow) = rest.split_at_mut(2);
        count.copy_from_slice(&self.count.to_le_bytes());
        overflow.copy_from_slice(&self.overflow.to_le_bytes());
    }
}

/// A bucket header (`bucket` in bbolt): the value of a bucket entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketHeader {
    /// Root page id; 0 means the bucket is inline (`root`).
    pub root: Pgid,
    /// The bucket's `NextSequence` counter (`sequence`).
    pub sequence: u64,
}

impl BucketHeader {
    /// Decodes a header from the first 16 bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Option<Self> {
        Some(Self { root: u64_at(buf, 0)?, sequence: u64_at(buf, 8)? })
    }

    /// The header's 16 bytes as stored on disk.
    pub fn to_bytes(&self) -> [u8; BUCKET_HEADER_SIZE] {
        let mut out = [0u8; BUCKET_HEADER_SIZE];
        let (root, seq) = out.split_at_mut(8);
        root.copy_from_slice(&self.root.to_le_bytes());
        seq.copy_from_slice(&self.sequence.to_le_bytes());
        out
    }
}

/// FNV-1a, 64 bit: the meta checksum (Go `hash/fnv.New64a`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Deepest B+tree any walk follows (root to leaf), nested buckets included:
/// far beyond what bbolt writes for any file (a tree of 64 levels holds more
/// pages than a file can), so a deeper one is a cycle or corruption.
pub const MAX_DEPTH: usize = 64;

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn page_header_round_trip() {
        let h = PageHeader { id: 0x0102_0304_0506_0708, flags: LEAF_PAGE_FLAG, count: 513, overflow: 7 };
        let mut buf = [0u8; PAGE_HEADER_SIZE];
        h.write_to(&mut buf);
        assert_eq!(PageHeader::parse(&buf), Some(h));
        assert_eq!(PageHeader::parse(&buf[..15]), None);
    }

    #[test]
    fn page_type_names_match_bbolt() {
        assert_eq!(PageType::from_flags(0x01).name(), "branch");
        assert_eq!(PageType::from_flags(0x10).name(), "freelist");
        assert_eq!(PageType::from_flags(0x03).name(), "unknown<03>");
    }
}
