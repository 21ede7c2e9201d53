//! Meta pages 0 and 1: decoding, validation, selection (`meta` in bbolt's `db.go`).

use crate::error::{CorruptKind, Corruption, MetaFault, Result};
use crate::layout::{
    fnv1a64, BucketHeader, PageHeader, Pgid, MAGIC, MAX_PAGE_SIZE, META_CHECKSUMMED_LEN, META_OFFSET, META_SIZE,
    MIN_PAGE_SIZE, PAGE_HEADER_SIZE, PGID_NO_FREELIST, VERSION,
};
use crate::le::{slice_at, u32_at, u64_at};

/// The decoded meta struct of a meta page (`meta` in bbolt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// `magic`, 0xED0CDAED when valid.
    pub magic: u32,
    /// `version`, 2 when valid.
    pub version: u32,
    /// `pageSize` in bytes.
    pub page_size: u32,
    /// `flags` (unused by bbolt, normally 0).
    pub flags: u32,
    /// The root bucket's header (`root`).
    pub root: BucketHeader,
    /// Freelist page id, or [`PGID_NO_FREELIST`] (`freelist`).
    pub freelist: Pgid,
    /// High-water mark: pages `[0, pgid)` are in use (`pgid`).
    pub pgid: Pgid,
    /// Transaction id that wrote this meta (`txid`).
    pub txid: u64,
    /// Stored FNV-1a-64 checksum (`checksum`).
    pub checksum: u64,
}

impl Meta {
    /// Decodes the meta struct of the meta page starting at `page`.
    pub fn parse(page: &[u8]) -> Option<Self> {
        let m = slice_at(page, META_OFFSET, META_SIZE)?;
        Some(Self {
            magic: u32_at(m, 0)?,
            version: u32_at(m, 4)?,
            page_size: u32_at(m, 8)?,
            flags: u32_at(m, 12)?,
            root: BucketHeader::parse(slice_at(m, 16, 16)?)?,
            freelist: u64_at(m, 32)?,
            pgid: u64_at(m, 40)?,
            txid: u64_at(m, 48)?,
            checksum: u64_at(m, 56)?,
        })
    }

    /// The 64 bytes of the meta struct as bbolt writes them.
    pub fn to_bytes(&self) -> [u8; META_SIZE] {
        let mut out = [0u8; META_SIZE];
        let fields: [(usize, &[u8]); 9] = [
            (0, &self.magic.to_le_bytes()),
            (4, &self.version.to_le_bytes()),
            (8, &self.page_size.to_le_bytes()),
            (12, &self.flags.to_le_bytes()),
            (16, &self.root.to_bytes()),
            (32, &self.freelist.to_le_bytes()),
            (40, &self.pgid.to_le_bytes()),
            (48, &self.txid.to_le_bytes()),
            (56, &self.checksum.to_le_bytes()),
        ];
        for (off, bytes) in fields {
            if let Some(dst) = out.get_mut(off..off.saturating_add(bytes.len())) {
                dst.copy_from_slice(bytes);
            }
        }
        out
    }

    /// The checksum bbolt would store for these fields (`meta.sum64`).
    pub fn compute_checksum(&self) -> u64 {
        let bytes = self.to_bytes();
        fnv1a64(bytes.get(..META_CHECKSUMMED_LEN).unwrap_or(&bytes))
    }

    /// bbolt's `meta.validate`: magic, then version, then checksum; plus our page-size range.
    pub fn validate(&self) -> Result<(), MetaFault> {
        if self.magic != MAGIC {
            return Err(MetaFault::Magic(self.magic));
        }
        if self.version != VERSION {
            return Err(MetaFault::Version(self.version));
        }
        let computed = self.compute_checksum();
        if self.checksum != computed {
            return Err(MetaFault::Checksum { stored: self.checksum, computed });
        }
        if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(MetaFault::PageSize(self.page_size));
        }
        Ok(())
    }

    /// Whether the freelist is persisted (not etcd's no-freelist sentinel).
    pub fn has_freelist(&self) -> bool {
        self.freelist != PGID_NO_FREELIST
    }
}

/// One of the two meta pages as found in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaSlot {
    /// The page's header, when the page is inside the file.
    pub header: Option<PageHeader>,
    /// The decoded meta, when the page is inside the file.
    pub meta: Option<Meta>,
    /// `Ok` when the meta validates, else why not.
    pub validity: Result<(), MetaFault>,
}

impl MetaSlot {
    fn read(data: &[u8], offset: usize) -> Self {
        let page = data.get(offset..).unwrap_or(&[]);
        let header = PageHeader::parse(page);
        let meta = Meta::parse(page);
        let validity = match &meta {
            Some(m) => m.validate(),
            None => Err(MetaFault::Truncated),
        };
        Self { header, meta, validity }
    }

    /// The meta when it is valid.
    pub fn valid(&self) -> Option<&Meta> {
        self.meta.as_ref().filter(|_| self.validity.is_ok())
    }
}

/// Both meta pages, the page size and which one is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metas {
    /// Page size, from the first valid meta found.
    pub page_size: u32,
    /// Meta pages 0 and 1.
    pub slots: [MetaSlot; 2],
    /// Index (0 or 1) of the meta in use: the valid one with the highest txid.
    pub active: usize,
}

impl Metas {
    /// Finds the page size and selects the meta, as bbolt's `getPageSize` and `meta()` do.
    ///
    /// Meta 0 gives the page size when valid; otherwise meta 1 is probed at
    /// 1 KiB, 2 KiB, … 64 KiB and must carry its own offset as page size.
    pub fn read(data: &[u8]) -> Result<Self> {
        let len = data.len() as u64;
        if data.len() < PAGE_HEADER_SIZE + META_SIZE {
            return Err(Corruption::new(CorruptKind::FileTooSmall { len }).into());
        }
        let slot0 = MetaSlot::read(data, 0);
        let page_size = match slot0.valid() {
            Some(m) => m.page_size,
            None => Self::probe_meta1(data).ok_or_else(|| {
                let fault = slot0.validity.clone().err().unwrap_or(MetaFault::Truncated);
                Corruption::on_page(0, CorruptKind::InvalidMeta { meta: 0, fault })
            })?,
        };
        let slot1 = MetaSlot::read(data, page_size as usize);
        let active = match (slot0.valid(), slot1.valid()) {
            (Some(a), Some(b)) => usize::from(b.txid > a.txid),
            (Some(_), None) => 0,
            (None, Some(_)) => 1,
            (None, None) => return Err(Corruption::new(CorruptKind::NoValidMeta).into()),
        };
        Ok(Self { page_size, slots: [slot0, slot1], active })
    }

    fn probe_meta1(data: &[u8]) -> Option<u32> {
        (0..=6u32).map(|i| MIN_PAGE_SIZE << i).find(|&size| {
            let slot = MetaSlot::read(data, size as usize);
            slot.valid().is_some_and(|m| m.page_size == size)
        })
    }

    /// The meta in use.
    pub fn active(&self) -> Meta {
        // `read` only returns with `active` pointing at a valid meta.
        match self.slots.get(self.active).and_then(|s| s.meta) {
            Some(m) => m,
            None => Meta {
                magic: 0,
                version: 0,
                page_size: self.page_size,
                flags: 0,
                root: BucketHeader::default(),
                freelist: PGID_NO_FREELIST,
                pgid: 0,
                txid: 0,
                checksum: 0,
            },
        }
    }
}

/// Builds the bytes of a meta page (header and meta, rest zero) as bbolt's `meta.write` does.
pub fn meta_page(meta: &Meta, page_id: Pgid) -> Vec<u8> {
    let mut page = vec![0u8; meta.page_size as usize];
    let header = PageHeader { id: page_id, flags: crate::layout::META_PAGE_FLAG, count: 0, overflow: 0 };
    let mut h = [0u8; PAGE_HEADER_SIZE];
    header.write_to(&mut h);
    let mut m = *meta;
    m.checksum = m.compute_checksum();
    if let Some(dst) = page.get_mut(..PAGE_HEADER_SIZE) {
        dst.copy_from_slice(&h);
    }
    if let Some(dst) = page.get_mut(META_OFFSET..META_OFFSET + META_SIZE) {
        dst.copy_from_slice(&m.to_bytes());
    }
    page
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    fn sample(page_size: u32, txid: u64) -> Meta {
        let mut m = Meta {
            magic: MAGIC,
            version: VERSION,
            page_size,
            flags: 0,
            root: BucketHeader { root: 3, sequence: 0 },
            freelist: 2,
            pgid: 4,
            txid,
            checksum: 0,
        };
        m.checksum = m.compute_checksum();
        m
    }

    fn file(page_size: u32, tx0: u64, tx1: u64) -> Vec<u8> {
        let mut f = meta_page(&sample(page_size, tx0), 0);
        f.extend(meta_page(&sample(page_size, tx1), 1));
        f.resize(4 * page_size as usize, 0);
        f
    }

    #[test]
    fn selects_highest_valid_txid() {
        let f = file(4096, 4, 5);
        let metas = Metas::read(&f).unwrap();
        assert_eq!(metas.active, 1);
        assert_eq!(metas.active().txid, 5);
    }

    #[test]
    fn falls_back_when_newer_meta_is_corrupt() {
        let mut f = file(4096, 4, 5);
        f[4096 + 72] ^= 1; // checksum byte of meta 1
        let metas = Metas::read(&f).unwrap();
        assert_eq!(metas.active, 0);
        assert!(matches!(metas.slots[1].validity, Err(MetaFault::Checksum { .. })));
    }

    #[test]
    fn probes_page_size_from_meta1() {
        for ps in [1024u32, 16384, 65536] {
            let mut f = file(ps, 8, 7);
            f[16] ^= 0xff; // break meta 0's magic
            let metas = Metas::read(&f).unwrap();
            assert_eq!(metas.page_size, ps);
            assert_eq!(metas.active, 1);
            assert!(matches!(metas.slots[0].validity, Err(MetaFault::Magic(_))));
        }
    }

    #[test]
    fn both_invalid_is_an_error() {
        let mut f = file(4096, 1, 2);
        f[20] = 9;
        f[4096 + 20] = 9;
        let err = Metas::read(&f).unwrap_err();
        assert!(err.to_string().contains("version mismatch"), "{err}");
    }
}
