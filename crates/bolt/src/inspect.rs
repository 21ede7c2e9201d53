//! One page decoded as it lies in the file, whatever the tree says about it
//! (`bbolt page` / `bbolt page-item`): its header and elements, for looking
//! at damage and at pages no tree reaches. Decoding stops at the first
//! element that does not fit, and says why; nothing here panics.

use crate::error::CorruptKind;
use crate::layout::{PageHeader, PageType, Pgid, PAGE_HEADER_SIZE};
use crate::le::u64_at;
use crate::meta::Meta;
use crate::page::{Node, NodeKind};

/// A freelist page's count that says the real count is in the first id slot.
const COUNT_OVERFLOWED: u16 = 0xFFFF;

/// One element of a branch or leaf page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// A branch element: the first key of a child page, and that page.
    Branch {
        /// The key.
        key: &'a [u8],
        /// The child page id (`pgid`).
        pgid: Pgid,
    },
    /// A leaf element: a key and its value (a bucket header when `flags` has
    /// the bucket bit).
    Leaf {
        /// Element flags (`flags`: 1 = bucket).
        flags: u32,
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
}

/// One page as it lies in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageView<'a> {
    /// The id asked for.
    pub id: Pgid,
    /// Its byte offset (`id × page size`).
    pub offset: u64,
    /// The decoded header (its `id` may differ from the one asked for: damage).
    pub header: PageHeader,
    /// The page's bytes, overflow pages included (cut at the end of the file).
    pub bytes: &'a [u8],
    /// Branch or leaf elements, in order.
    pub items: Vec<Item<'a>>,
    /// The meta, for a meta page whose fields decode.
    pub meta: Option<Meta>,
    /// The page ids of a freelist page.
    pub freelist: Vec<Pgid>,
    /// Why decoding stopped early, when it did.
    pub problem: Option<String>,
}

/// Page `id` of `data` (a whole bbolt file) with pages of `page_size` bytes;
/// `None` when the file has no such page.
pub fn page(data: &[u8], page_size: usize, id: Pgid) -> Option<PageView<'_>> {
    let offset = id.checked_mul(page_size as u64)?;
    let start = usize::try_from(offset).ok()?;
    let first = data.get(start..start.checked_add(page_size)?)?;
    let header = PageHeader::parse(first)?;
    let span = usize::try_from(u64::from(header.overflow).saturating_add(1)).unwrap_or(usize::MAX);
    let len = span.saturating_mul(page_size);
    let end = start.saturating_add(len).min(data.len());
    let bytes = data.get(start..end)?;
    let mut view = PageView {
        id,
        offset,
        header,
        bytes,
        items: Vec::new(),
        meta: None,
        freelist: Vec::new(),
        problem: (end < start.saturating_add(len))
            .then(|| format!("its {} overflow page(s) run past the end of the file", header.overflow)),
    };
    if header.id != id {
        view.problem = Some(format!("its header says page {}", header.id));
    }
    match header.page_type() {
        PageType::Branch | PageType::Leaf => decode_node(&mut view),
        PageType::Meta => {
            view.meta = Meta::parse(bytes);
            if view.meta.is_none() {
                view.problem = Some("the meta fields do not decode".into());
            }
        }
        PageType::Freelist => decode_freelist(&mut view),
        PageType::Unknown(flags) => view.problem = Some(format!("unknown page flags {flags:#06x}")),
    }
    Some(view)
}

fn decode_node(view: &mut PageView<'_>) {
    let kind = if view.header.page_type() == PageType::Branch { NodeKind::Branch } else { NodeKind::Leaf };
    let node = match Node::new(Some(view.id), kind, view.header.count, view.bytes) {
        Ok(n) => n,
        Err(k) => return view.problem = Some(describe(&k)),
    };
    for i in 0..usize::from(view.header.count) {
        let item = match kind {
            NodeKind::Branch => node.branch(i).map(|(key, pgid)| Item::Branch { key, pgid }),
            NodeKind::Leaf => node.leaf(i).map(|e| Item::Leaf { flags: e.flags, key: e.key, value: e.value }),
        };
        match item {
            Ok(it) => view.items.push(it),
            Err(k) => return view.problem = Some(describe(&k)),
        }
    }
}

fn decode_freelist(view: &mut PageView<'_>) {
    let (count, first) = if view.header.count == COUNT_OVERFLOWED {
        match u64_at(view.bytes, PAGE_HEADER_SIZE) {
            Some(n) => (n, PAGE_HEADER_SIZE.saturating_add(8)),
            None => return view.problem = Some("the overflowed count does not fit".into()),
        }
    } else {
        (u64::from(view.header.count), PAGE_HEADER_SIZE)
    };
    let ids = view.bytes.get(first..).unwrap_or(&[]).chunks_exact(8);
    if (ids.len() as u64) < count {
        view.problem = Some(format!("{count} ids do not fit in the page ({} do)", ids.len()));
    }
    view.freelist = ids.take(usize::try_from(count).unwrap_or(usize::MAX)).filter_map(|c| u64_at(c, 0)).collect();
}

fn describe(k: &CorruptKind) -> String {
    crate::error::Corruption::new(k.clone()).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_tree_reads() {
        let data = crate::testdata("etcd-3.5.1/member/snap/db");
        let db = crate::Db::open(&data).unwrap();
        let ps = db.page_size();
        let m = page(&data, ps, 0).unwrap();
        assert_eq!(m.meta.map(|m| m.page_size), Some(ps as u32));
        // Every leaf of the `key` bucket holds, in order, what its cursor reads.
        let keys: Vec<Vec<u8>> =
            db.bucket(&[b"key"]).unwrap().unwrap().cursor().map(|e| e.unwrap().key.to_vec()).collect();
        let mut from_pages = Vec::new();
        for id in 2..db.hwm() {
            let Some(v) = page(&data, ps, id) else { continue };
            for it in &v.items {
                if let Item::Leaf { flags: 0, key, .. } = it {
                    if key.len() >= 17 && key.len() <= 18 && keys.binary_search(&key.to_vec()).is_ok() {
                        from_pages.push(key.to_vec());
                    }
                }
            }
        }
        from_pages.sort();
        from_pages.dedup();
        assert_eq!(from_pages, keys);
        assert!(page(&data, ps, u64::MAX / 2).is_none());
    }

    #[test]
    fn damage_is_described_not_a_panic() {
        let mut data = crate::testdata("etcd-3.5.1/member/snap/db");
        let ps = crate::Db::open(&data).unwrap().page_size();
        let leaf = (2..(data.len() / ps) as u64)
            .find(|&id| {
                page(&data, ps, id).is_some_and(|v| v.header.page_type() == PageType::Leaf && v.header.count > 2)
            })
            .unwrap();
        // A count far past what the page holds.
        let at = leaf as usize * ps + 10;
        data[at..at + 2].copy_from_slice(&u16::MAX.to_le_bytes());
        let v = page(&data, ps, leaf).unwrap();
        assert!(v.problem.is_some() && v.items.is_empty(), "{v:?}");
    }
}
