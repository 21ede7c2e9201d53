//! `freelist abandon` and `freelist rebuild`.

use super::{abandon_in, meta_page_from, Refusal, Rewrite, SurgeryFailure};
use crate::check::{check_tree, CheckOptions, PageUse};
use crate::db::Db;
use crate::error::{CorruptKind, Corruption, Result};
use crate::freelist::Freelist;
use crate::layout::{PageHeader, Pgid, FREELIST_PAGE_FLAG, PAGE_HEADER_SIZE, PGID_NO_FREELIST};
use crate::meta::{meta_page, Meta, Metas};

/// A freelist page's count that says the real count is in the first id slot.
const COUNT_OVERFLOWED: usize = 0xFFFF;

/// Bytes of one page id in a freelist page.
const PGID_SIZE: usize = 8;

/// The result of [`abandon_freelist`].
#[derive(Debug, Clone)]
pub struct Abandoned {
    /// The output.
    pub rewrite: Rewrite,
    /// Meta pages whose freelist was dropped.
    pub metas: Vec<u8>,
    /// Meta pages left as they were because they are not valid.
    pub invalid: Vec<u8>,
}

/// Sets the no-freelist sentinel (`pgidNoFreelist`) in both metas, checksums
/// recomputed, so bbolt rebuilds the free set from the tree at open (bbolt's
/// `surgery freelist abandon`). An invalid meta is left as it is.
pub fn abandon_freelist(data: &[u8]) -> Result<Abandoned> {
    let metas = Metas::read(data)?;
    let mut rewrite = Rewrite::new(data.len() as u64);
    let changed = abandon_in(data, &metas, &mut rewrite)?;
    let invalid = (0u8..).zip(&metas.slots).filter(|(_, s)| s.valid().is_none()).map(|(i, _)| i).collect();
    Ok(Abandoned { rewrite, metas: changed, invalid })
}

/// What the file said about free pages before a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviousFreelist {
    /// No freelist was persisted (the sentinel).
    NotPersisted,
    /// A freelist page listing this many ids.
    Persisted {
        /// Its page.
        page: Pgid,
        /// Ids it listed.
        ids: usize,
    },
    /// The meta pointed at a freelist page that does not read.
    Unreadable {
        /// The page.
        page: Pgid,
    },
}

/// The result of [`rebuild_freelist`].
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// The output.
    pub rewrite: Rewrite,
    /// The freelist the file had (ignored).
    pub previous: PreviousFreelist,
    /// The new freelist page.
    pub page: Pgid,
    /// Its overflow pages.
    pub overflow: u32,
    /// Free page ids it lists.
    pub free: u64,
    /// The txid of the new meta (the active one's + 1).
    pub txid: u64,
    /// The high-water mark before and after (it grows when no free run holds the freelist).
    pub hwm: (Pgid, Pgid),
    /// The meta page the new meta went into (`txid % 2`); the other one holds
    /// the previous state with its freelist abandoned.
    pub meta: u8,
}

/// Whether a problem of the tree walk leaves the set of pages in use unknown:
/// a page that was not walked, or walked twice. Key order, layout and other
/// rules whose breach still lets every page be read are no obstacle.
fn hides_pages(kind: &CorruptKind) -> bool {
    match kind {
        CorruptKind::KeyOrder { .. }
        | CorruptKind::KeyBelowAncestor { .. }
        | CorruptKind::KeyNotBelowNext { .. }
        | CorruptKind::BranchKeyMismatch { .. }
        | CorruptKind::EmptyLeaf
        | CorruptKind::EmptyKey { .. }
        | CorruptKind::ElementLayout { .. }
        | CorruptKind::OverflowMismatch { .. }
        | CorruptKind::UnknownElementFlags { .. }
        | CorruptKind::InlinePageId { .. }
        | CorruptKind::InlineSizeMismatch { .. }
        | CorruptKind::InvalidMeta { .. }
        | CorruptKind::MetaHeader { .. }
        // The freelist is not read by the walk; these cannot occur.
        | CorruptKind::ReachableFreed
        | CorruptKind::AlreadyFreed
        | CorruptKind::UnreachableUnfreed
        | CorruptKind::FreelistIdOutOfRange { .. } => false,
        CorruptKind::FileTooSmall { .. }
        | CorruptKind::NoValidMeta
        | CorruptKind::MetaField { .. }
        | CorruptKind::FileShorterThanHwm { .. }
        | CorruptKind::OutOfBounds { .. }
        | CorruptKind::PastEndOfFile
        | CorruptKind::IdMismatch { .. }
        | CorruptKind::OverflowPastHwm { .. }
        | CorruptKind::InvalidType { .. }
        | CorruptKind::ElementsPastPage { .. }
        | CorruptKind::ElementPastPage { .. }
        | CorruptKind::EmptyBranch
        | CorruptKind::TooDeep { .. }
        | CorruptKind::BucketsTooDeep { .. }
        | CorruptKind::WalkTooDeep { .. }
        | CorruptKind::Revisited
        | CorruptKind::MultipleReferences
        | CorruptKind::BucketValueTooShort { .. }
        | CorruptKind::BucketRootOutOfRange { .. }
        | CorruptKind::BadInlineBucket { .. }
        | CorruptKind::NotABucket
        | CorruptKind::PagedBucketValueLength { .. } => true,
    }
}

/// Problems the walk keeps before giving up on telling them apart.
const MAX_WALK_PROBLEMS: usize = 100_000;

/// Writes a freelist computed from the tree of the active meta, whatever the
/// file's freelist said (bbolt's `surgery freelist rebuild`, which needs an
/// abandoned freelist first and then lets bbolt commit an empty transaction).
///
/// As that commit: every page in `[2, pgid)` no bucket tree reaches is free;
/// the freelist takes `size / pageSize + 1` pages (bbolt's estimate) from the
/// first run of free pages long enough, else from the high-water mark up; a
/// meta with txid + 1 pointing at it goes into page `txid % 2`. The other meta
/// page gets the previous state with its freelist abandoned, so neither meta
/// points at the old freelist. Refused when the tree is damaged so that the
/// pages in use are not known ([`Refusal::DamagedTree`]).
pub fn rebuild_freelist(data: &[u8]) -> Result<Rebuilt> {
    let db = Db::open(data)?;
    let ps = db.page_size();
    let meta = db.meta();
    let previous = match db.freelist() {
        Ok(Freelist::NotPersisted) => PreviousFreelist::NotPersisted,
        Ok(Freelist::Persisted { page, ids, .. }) => PreviousFreelist::Persisted { page, ids: ids.len() },
        Err(_) => PreviousFreelist::Unreadable { page: meta.freelist },
    };
    let report = check_tree(&db, &CheckOptions { max_problems: MAX_WALK_PROBLEMS });
    let fatal = report.problems.iter().find(|p| hides_pages(&p.kind)).cloned().or_else(|| {
        // Problems past the ones kept may hide pages too.
        (report.problem_count > report.problems.len() as u64).then(|| report.problems.first().cloned()).flatten()
    });
    if let Some(problem) = fatal {
        let (page, offset) = (problem.page, problem.offset);
        return Err(SurgeryFailure { page, offset, kind: Refusal::DamagedTree { problem: Box::new(problem) } }.into());
    }
    let hwm = db.hwm();
    let mut free: Vec<Pgid> =
        (0u64..).zip(&report.page_use).filter(|(_, u)| **u == PageUse::Free).map(|(id, _)| id).collect();
    let listed = |n: usize| if n >= COUNT_OVERFLOWED { n.saturating_add(1) } else { n };
    let size = PGID_SIZE.saturating_mul(listed(free.len())).saturating_add(PAGE_HEADER_SIZE);
    let span = size.checked_div(ps).unwrap_or(0).saturating_add(1);
    let span64 = span as u64;
    let (start, new_hwm) = match first_run(&free, span) {
        Some(i) => {
            let start = free.get(i).copied().unwrap_or(hwm);
            let end = i.saturating_add(span).min(free.len());
            free.drain(i..end);
            (start, hwm)
        }
        None => {
            let end = hwm.checked_add(span64).ok_or(SurgeryFailure {
                page: None,
                offset: None,
                kind: Refusal::Overflow { field: "pgid" },
            })?;
            (hwm, end)
        }
    };
    let overflow = u32::try_from(span.saturating_sub(1))
        .map_err(|_| Corruption::on_page(start, CorruptKind::ElementsPastPage { count: u16::MAX }))?;
    let page = freelist_page(start, overflow, &free, span.saturating_mul(ps));
    let txid = meta.txid.checked_add(1).ok_or(SurgeryFailure {
        page: Some(db.metas().active as Pgid),
        offset: None,
        kind: Refusal::Overflow { field: "txid" },
    })?;
    let new_meta = Meta { txid, freelist: start, pgid: new_hwm, ..meta };
    let slot = u8::from(txid % 2 == 1);
    let other = 1u8.saturating_sub(slot);
    let mut rewrite = Rewrite::new(data.len() as u64);
    rewrite.put(start.saturating_mul(ps as u64), page);
    rewrite.put(u64::from(slot).saturating_mul(ps as u64), meta_page(&new_meta, Pgid::from(slot)));
    let old = Meta { freelist: PGID_NO_FREELIST, ..meta };
    let active = u8::from(db.metas().active == 1);
    rewrite.put(u64::from(other).saturating_mul(ps as u64), meta_page_from(data, ps, other, active, &old)?);
    Ok(Rebuilt {
        rewrite,
        previous,
        page: start,
        overflow,
        free: free.len() as u64,
        txid,
        hwm: (hwm, new_hwm),
        meta: slot,
    })
}

/// Index in `free` (sorted) of the first run of `n` consecutive ids (bbolt's
/// array freelist `allocate`: first fit, lowest ids first).
fn first_run(free: &[Pgid], n: usize) -> Option<usize> {
    let mut start = 0usize;
    let mut prev: Option<Pgid> = None;
    for (i, &id) in free.iter().enumerate() {
        if prev.and_then(|p| p.checked_add(1)) != Some(id) {
            start = i;
        }
        prev = Some(id);
        if n > 0 && i.saturating_sub(start).saturating_add(1) == n {
            return Some(start);
        }
    }
    None
}

/// A freelist page (bbolt's `freelist.write`): the header, then the ids — after
/// the real count when there are 0xFFFF or more — zero-padded to `len`.
fn freelist_page(id: Pgid, overflow: u32, ids: &[Pgid], len: usize) -> Vec<u8> {
    let mut page = Vec::with_capacity(len);
    let count = u16::try_from(ids.len()).ok().filter(|&c| usize::from(c) < COUNT_OVERFLOWED).unwrap_or(u16::MAX);
    let mut head = [0u8; PAGE_HEADER_SIZE];
    PageHeader { id, flags: FREELIST_PAGE_FLAG, count, overflow }.write_to(&mut head);
    page.extend_from_slice(&head);
    if usize::from(count) == COUNT_OVERFLOWED {
        page.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    }
    for id in ids {
        page.extend_from_slice(&id.to_le_bytes());
    }
    page.resize(len.max(page.len()), 0);
    page
}

#[cfg(test)]
pub(super) fn first_run_for_tests(free: &[Pgid], n: usize) -> Option<usize> {
    first_run(free, n)
}

/// A freelist page at `id` listing `ids`, as many pages long as bbolt allocates.
#[allow(clippy::arithmetic_side_effects)]
#[cfg(test)]
pub(super) fn page_for_tests(id: Pgid, ids: &[Pgid], page_size: usize) -> Vec<u8> {
    let n = if ids.len() >= COUNT_OVERFLOWED { ids.len() + 1 } else { ids.len() };
    let span = (PAGE_HEADER_SIZE + PGID_SIZE * n) / page_size + 1;
    freelist_page(id, u32::try_from(span - 1).unwrap_or(0), ids, span * page_size)
}
