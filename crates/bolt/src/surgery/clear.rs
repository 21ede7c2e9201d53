//! `clear-page-elements`: remove a range of elements from one branch or leaf page.

use super::{abandon_in, Refusal, Rewrite, SurgeryFailure};
use crate::builder::PageBuf;
use crate::db::Db;
use crate::error::{Corruption, Result};
use crate::layout::{PageType, Pgid, BRANCH_PAGE_FLAG, LEAF_PAGE_FLAG};
use crate::page::{bucket_value, BucketRoot, Node, NodeKind};

/// The result of [`clear_page_elements`].
#[derive(Debug, Clone)]
pub struct ClearedElements {
    /// The output.
    pub rewrite: Rewrite,
    /// The page changed.
    pub page: Pgid,
    /// Whether it is a branch page (else a leaf).
    pub branch: bool,
    /// Elements the page held.
    pub count: usize,
    /// Elements removed (0 when the page was empty: nothing is done).
    pub removed: usize,
    /// The page's `overflow` before and after.
    pub overflow: (u32, u32),
    /// Pages the clear made unreachable: a branch's removed children, a leaf's
    /// removed nested buckets with pages of their own, the overflow pages the
    /// page no longer needs. bbolt must not keep listing them as in use.
    pub orphans_pages: bool,
    /// Meta pages whose persisted freelist was dropped (the no-freelist
    /// sentinel set) so that bbolt rebuilds it from the tree at open: done
    /// when pages became unreachable and a freelist is persisted.
    pub freelist_abandoned: Vec<u8>,
    /// Whether the page's first key changed (element 0 removed): the branch
    /// element leading to it, if any, is now a lower bound only. bbolt reads
    /// and checks such a tree; `etcdsnap bolt check` reports it.
    pub first_key_changed: bool,
}

/// Removes elements `from .. to` (`to` exclusive, `None` = to the end) from
/// branch or leaf page `id` (bbolt's `ClearPageElements`).
///
/// The page is written again with the remaining elements laid out as bbolt's
/// `node.write` lays them out and `overflow` recomputed. When that leaves
/// pages unreachable (a branch's children, a leaf's paged nested buckets, a
/// shrunk overflow run) and the file persists a freelist, the freelist is
/// abandoned in both metas, as bbolt's surgeon does when asked to (its CLI only
/// warns). An empty page is left as it is. Refused: pages other than branch
/// and leaf, ranges outside the page, and a branch left with no element.
pub fn clear_page_elements(data: &[u8], id: Pgid, from: usize, to: Option<usize>) -> Result<ClearedElements> {
    let db = Db::open(data)?;
    let pages = db.pages();
    let ps = pages.page_size();
    let page = pages.page(id)?;
    let at = |kind| {
        let c = Corruption::on_page(id, kind);
        match pages.offset_of(id) {
            Some(o) => c.at_offset(o),
            None => c,
        }
    };
    let refuse = |kind| SurgeryFailure::on_page(id, ps, kind);
    let (kind, flag) = match page.header.page_type() {
        PageType::Branch => (NodeKind::Branch, BRANCH_PAGE_FLAG),
        PageType::Leaf => (NodeKind::Leaf, LEAF_PAGE_FLAG),
        _ => return Err(refuse(Refusal::NotANode { flags: page.header.flags }).into()),
    };
    let count = usize::from(page.header.count);
    let mut out = ClearedElements {
        rewrite: Rewrite::new(data.len() as u64),
        page: id,
        branch: kind == NodeKind::Branch,
        count,
        removed: 0,
        overflow: (page.header.overflow, page.header.overflow),
        orphans_pages: false,
        freelist_abandoned: Vec::new(),
        first_key_changed: false,
    };
    if count == 0 {
        return Ok(out);
    }
    let end = to.unwrap_or(count);
    if from >= count || end > count || from >= end {
        return Err(refuse(Refusal::IndexRange { from, to, count }).into());
    }
    let node = Node::new(Some(id), kind, page.header.count, page.bytes).map_err(at)?;
    let mut buf = PageBuf::default();
    for i in (0..from).chain(end..count) {
        match kind {
            NodeKind::Branch => {
                let (key, child) = node.branch(i).map_err(at)?;
                buf.push(0, key, &[], child);
            }
            NodeKind::Leaf => {
                let e = node.leaf(i).map_err(at)?;
                buf.push(e.flags, e.key, e.value, 0);
            }
        }
    }
    if kind == NodeKind::Branch && from == 0 && end == count {
        return Err(refuse(Refusal::EmptyBranch).into());
    }
    // What the removed elements held: a branch's children always, a leaf's
    // nested buckets when they have pages (an inline bucket lives in the value).
    let mut orphans = kind == NodeKind::Branch;
    if kind == NodeKind::Leaf {
        for i in from..end {
            let e = node.leaf(i).map_err(at)?;
            if e.is_bucket() && matches!(bucket_value(e.value), Ok((_, BucketRoot::Paged(_)))) {
                orphans = true;
            }
        }
    }
    let mut bytes = Vec::new();
    let overflow = buf.serialize(id, flag, ps, true, &mut bytes)?;
    // Fewer elements, packed, never need more pages than the page had.
    if overflow > page.header.overflow {
        return Err(at(crate::error::CorruptKind::OverflowMismatch {
            overflow: page.header.overflow,
            used: buf.size() as u64,
            expected: u64::from(overflow),
        })
        .into());
    }
    let offset = pages.offset_of(id).unwrap_or(u64::MAX);
    out.rewrite.put(offset, bytes);
    out.removed = end.saturating_sub(from);
    out.overflow.1 = overflow;
    out.orphans_pages = orphans || overflow != page.header.overflow;
    out.first_key_changed = from == 0;
    if out.orphans_pages && db.meta().has_freelist() {
        out.freelist_abandoned = abandon_in(data, db.metas(), &mut out.rewrite)?;
    }
    Ok(out)
}
