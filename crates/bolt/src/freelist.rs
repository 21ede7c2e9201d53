//! The freelist page (`freelist` in bbolt), or its absence.

use crate::error::{CorruptKind, Corruption, Result};
use crate::layout::{PageType, Pgid, PAGE_HEADER_SIZE};
use crate::le::u64_at;
use crate::meta::Meta;
use crate::page::Pages;

/// Count value meaning "the real count is in the first u64 after the header".
const COUNT_OVERFLOWED: u16 = 0xFFFF;

/// What the meta says about free pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freelist {
    /// A freelist page holds these ids (free and pending, as written; unsorted as read).
    Persisted {
        /// The freelist page id.
        page: Pgid,
        /// Extra pages the freelist spans.
        overflow: u32,
        /// The ids listed.
        ids: Vec<Pgid>,
    },
    /// No freelist is persisted (`NoFreelistSync`, etcd's default): free pages are
    /// those below the HWM that no tree reaches.
    NotPersisted,
}

impl Freelist {
    /// Reads the freelist the meta points at.
    pub fn read(pages: &Pages<'_>, meta: &Meta) -> Result<Self> {
        if !meta.has_freelist() {
            return Ok(Self::NotPersisted);
        }
        let id = meta.freelist;
        if id < 2 {
            return Err(
                Corruption::new(CorruptKind::MetaField { field: "freelist", value: id, hwm: pages.hwm() }).into()
            );
        }
        let page = pages.page(id)?;
        if page.header.page_type() != PageType::Freelist {
            return Err(Corruption::on_page(
                id,
                CorruptKind::InvalidType { flags: page.header.flags, expected: "freelist" },
            )
            .into());
        }
        let (count, first) = if page.header.count == COUNT_OVERFLOWED {
            let n = u64_at(page.bytes, PAGE_HEADER_SIZE)
                .ok_or_else(|| Corruption::on_page(id, CorruptKind::ElementsPastPage { count: page.header.count }))?;
            (n, PAGE_HEADER_SIZE + 8)
        } else {
            (u64::from(page.header.count), PAGE_HEADER_SIZE)
        };
        let room = (page.bytes.len().saturating_sub(first) / 8) as u64;
        if count > room {
            return Err(Corruption::on_page(id, CorruptKind::ElementsPastPage { count: page.header.count }).into());
        }
        let ids = page
            .bytes
            .get(first..)
            .unwrap_or(&[])
            .chunks_exact(8)
            .take(usize::try_from(count).unwrap_or(usize::MAX))
            .filter_map(|c| u64_at(c, 0))
            .collect();
        Ok(Self::Persisted { page: id, overflow: page.header.overflow, ids })
    }
}
