//! The file page by page, as `bbolt pages` lists it: id, type, items, overflow.
//!
//! Which pages are free comes from the check's walk ([`PageUse`]), because a
//! file without a persisted freelist (etcd's `NoFreelistSync`) says it nowhere.
//! The listing stops at the end of the file: a meta claiming a huge high-water
//! mark must not make a caller hold or print a row per page that is not there,
//! so one [`PageKind::Missing`] row stands for every page from its id up to the HWM.

use crate::check::{check, CheckOptions, CheckReport, PageUse};
use crate::db::Db;
use crate::layout::{PageHeader, PageType, Pgid, PAGE_HEADER_SIZE};
use crate::le::u64_at;
use crate::page::Pages;

/// `count` value meaning "the freelist's real count is the first u64 after the header".
const COUNT_OVERFLOWED: u16 = 0xFFFF;

/// What a listed page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// A page in use, of the type its header names.
    Used(PageType),
    /// A free page (on the freelist, or reached by no tree when none is persisted).
    Free,
    /// Below the HWM but not in the file, or its header cannot be read.
    Missing,
}

impl PageKind {
    /// `branch`, `leaf`, `meta`, `freelist`, `unknown<ff>`, `free` or `missing`:
    /// the `type` column of `bbolt pages`.
    pub fn name(self) -> String {
        match self {
            Self::Used(t) => t.name(),
            Self::Free => "free".into(),
            Self::Missing => "missing".into(),
        }
    }
}

/// One row of the listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRow {
    /// The page id.
    pub id: Pgid,
    /// What the page is.
    pub kind: PageKind,
    /// Elements on the page (freelist: ids listed, the overflowed count included); `None` unless used.
    pub items: Option<u64>,
    /// The header's `overflow`; `None` unless used.
    pub overflow: Option<u32>,
}

impl PageRow {
    fn bare(id: Pgid, kind: PageKind) -> Self {
        Self { id, kind, items: None, overflow: None }
    }

    /// Pages this row covers in the walk: the page and its overflow run (1 for free and missing rows).
    fn step(&self) -> u64 {
        match self.kind {
            PageKind::Used(_) => u64::from(self.overflow.unwrap_or(0)).saturating_add(1),
            PageKind::Free | PageKind::Missing => 1,
        }
    }
}

/// Every page below the high-water mark, in id order, a logical page (with its
/// overflow run) as one row (bbolt's `pages` command). An iterator of [`PageRow`].
#[derive(Debug, Clone)]
pub struct PageList<'a> {
    pages: Pages<'a>,
    page_use: Vec<PageUse>,
    /// Next id to list.
    next: Pgid,
    /// Rows stop here: the pages wholly inside the file.
    end: Pgid,
    /// Whether the row standing for the pages past the file's end was given.
    tail_done: bool,
}

impl<'a> PageList<'a> {
    /// Lists the pages of `db`, running the check's walk to tell free pages from used ones.
    pub fn new(db: &Db<'a>) -> Self {
        Self::with_report(db, &check(db, &CheckOptions { max_problems: 0 }))
    }

    /// Lists the pages of `db` with the page use of a check already run on it.
    pub fn with_report(db: &Db<'a>, report: &CheckReport) -> Self {
        let pages = db.pages();
        Self { pages, page_use: report.page_use.clone(), next: 0, end: pages.readable(), tail_done: false }
    }

    fn row(&self, id: Pgid) -> PageRow {
        let use_ = usize::try_from(id).ok().and_then(|i| self.page_use.get(i)).copied();
        match (use_, self.pages.raw(id).and_then(PageHeader::parse)) {
            (None, _) | (_, None) => PageRow::bare(id, PageKind::Missing),
            (Some(PageUse::Free), _) => PageRow::bare(id, PageKind::Free),
            (Some(_), Some(h)) => {
                let items = match (h.page_type(), h.count) {
                    (PageType::Freelist, COUNT_OVERFLOWED) => {
                        self.pages.raw(id).and_then(|p| u64_at(p, PAGE_HEADER_SIZE))
                    }
                    _ => Some(u64::from(h.count)),
                };
                PageRow { id, kind: PageKind::Used(h.page_type()), items, overflow: Some(h.overflow) }
            }
        }
    }
}

impl Iterator for PageList<'_> {
    type Item = PageRow;

    fn next(&mut self) -> Option<PageRow> {
        if self.next < self.end {
            let row = self.row(self.next);
            self.next = self.next.saturating_add(row.step());
            return Some(row);
        }
        if self.tail_done {
            return None;
        }
        self.tail_done = true;
        (self.next < self.pages.hwm()).then(|| PageRow::bare(self.next, PageKind::Missing))
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    #[test]
    fn lists_every_page_of_a_real_file_once() {
        let data = crate::testdata("etcd-3.5.1/member/snap/db");
        let db = Db::open(&data).unwrap();
        let rows: Vec<PageRow> = PageList::new(&db).collect();
        // Metas first, then ids rising by each row's run, covering 0..HWM with no gap.
        assert_eq!(rows[0], PageRow { id: 0, kind: PageKind::Used(PageType::Meta), items: Some(0), overflow: Some(0) });
        assert_eq!(rows[1].kind, PageKind::Used(PageType::Meta));
        let mut next = 0;
        for r in &rows {
            assert_eq!(r.id, next, "{r:?}");
            next = r.id + r.step();
        }
        assert_eq!(next, db.hwm());
        // etcd persists no freelist: its free pages come from the walk.
        let report = db.check();
        let free = report.page_use.iter().filter(|u| **u == PageUse::Free).count();
        assert!(free > 0, "fixture should have free pages");
        assert_eq!(rows.iter().filter(|r| r.kind == PageKind::Free).count(), free);
        assert!(rows.iter().all(|r| r.kind != PageKind::Missing));
        // Items are the header's count.
        let leaf = rows.iter().find(|r| r.kind == PageKind::Used(PageType::Leaf)).unwrap();
        let h = PageHeader::parse(&data[leaf.id as usize * PAGE..]).unwrap();
        assert_eq!(leaf.items, Some(u64::from(h.count)));
        assert_eq!(leaf.overflow, Some(h.overflow));
        assert!(rows.iter().any(|r| r.kind == PageKind::Used(PageType::Branch)));
        assert!(rows.iter().any(|r| r.overflow.is_some_and(|o| o > 0)), "fixture should have overflow runs");
    }

    #[test]
    fn pages_past_the_end_of_the_file_are_one_missing_row() {
        let mut data = crate::testdata("etcd-3.5.1/member/snap/db");
        let hwm = Db::open(&data).unwrap().hwm();
        // Cut the file to 200 pages: the rest up to the HWM is one row.
        data.truncate(200 * PAGE);
        let db = Db::open(&data).unwrap();
        assert_eq!(db.hwm(), hwm);
        let rows: Vec<PageRow> = PageList::new(&db).collect();
        let last = *rows.last().unwrap();
        assert_eq!(last, PageRow::bare(last.id, PageKind::Missing));
        assert!(last.id >= 200 && last.id < hwm, "{last:?}");
        assert!(rows[..rows.len() - 1].iter().all(|r| r.id < 200));
        assert_eq!(rows.iter().filter(|r| r.kind == PageKind::Missing && r.id >= 200).count(), 1);
    }

    #[test]
    fn an_unreadable_header_is_missing_and_steps_one_page() {
        let data = crate::testdata("etcd-3.5.1/member/snap/db");
        let db = Db::open(&data).unwrap();
        // A page use table shorter than the file: the pages it does not cover are missing.
        let mut report = db.check();
        report.page_use.truncate(10);
        let rows: Vec<PageRow> = PageList::with_report(&db, &report).collect();
        assert_eq!(rows.iter().filter(|r| r.id >= 10).count() as u64, db.pages().readable() - 10);
        assert!(rows.iter().filter(|r| r.id >= 10).all(|r| r.kind == PageKind::Missing));
    }

    #[test]
    fn overflowed_freelist_count_is_read_after_the_header() {
        // A persisted freelist page whose count overflowed: items are the u64 after the header.
        let mut data = vec![0u8; 4 * PAGE];
        let src = crate::testdata("etcd-3.5.1/member/snap/db");
        data[..2 * PAGE].copy_from_slice(&src[..2 * PAGE]);
        let h = PageHeader { id: 2, flags: 0x10, count: COUNT_OVERFLOWED, overflow: 0 };
        let mut buf = [0u8; PAGE_HEADER_SIZE];
        h.write_to(&mut buf);
        data[2 * PAGE..2 * PAGE + PAGE_HEADER_SIZE].copy_from_slice(&buf);
        data[2 * PAGE + 16..2 * PAGE + 24].copy_from_slice(&70_000u64.to_le_bytes());
        let pages = Pages::new(&data, PAGE, 4);
        let list = PageList {
            pages,
            page_use: vec![PageUse::Meta, PageUse::Meta, PageUse::Freelist, PageUse::Free],
            next: 0,
            end: pages.readable(),
            tail_done: false,
        };
        let rows: Vec<PageRow> = list.collect();
        assert_eq!(
            rows[2],
            PageRow { id: 2, kind: PageKind::Used(PageType::Freelist), items: Some(70_000), overflow: Some(0) }
        );
        assert_eq!(rows[3], PageRow::bare(3, PageKind::Free));
        assert_eq!(rows.len(), 4);
        assert_eq!(PageKind::Free.name(), "free");
        assert_eq!(PageKind::Missing.name(), "missing");
        assert_eq!(PageKind::Used(PageType::Freelist).name(), "freelist");
    }
}
