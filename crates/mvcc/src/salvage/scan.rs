//! Finding what survives in a damaged file: the tree walked from the active
//! meta as far as it holds together (its records are "reachable"), then
//! every page of the file read on its own, leaf pages recognised by their
//! content (`key`-bucket records: 17- or 18-byte revisions with a
//! `mvccpb.KeyValue` whose `mod_revision` is that revision, or a tombstone's
//! key-only `KeyValue`; `lease` records:
//! an 8-byte id with a `leasepb.Lease` of that id).

use std::collections::BTreeMap;

use etcdsnap_bolt::inspect::{self, Item};
use etcdsnap_bolt::layout::{BRANCH_PAGE_FLAG, BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG, LEAF_PAGE_FLAG};
use etcdsnap_bolt::{Metas, Pgid};
use etcdsnap_proto::{authpb, etcdserverpb, leasepb, Message};

use crate::kv::KvRef;
use crate::revision::BucketKey;
use crate::schema::{ALARM, AUTH_ROLES, AUTH_USERS, KEY, LEASE, META};

/// Deepest tree the walk follows (bbolt's trees are far shallower).
const MAX_DEPTH: usize = 64;

/// A page that could not be read where the tree pointed at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadablePage {
    /// Its id.
    pub id: u64,
    /// The bucket whose tree pointed at it (empty: the root).
    pub bucket: Vec<u8>,
    /// Why it could not be read.
    pub why: String,
}

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The tree of the active meta.
    Reachable,
    /// A page no intact tree reaches (freed, stale, or cut off by damage).
    Scanned,
}

/// What the walk and the scan found; records borrow from the file's bytes.
#[derive(Debug, Default)]
pub struct Found<'a> {
    /// Page size used.
    pub page_size: usize,
    /// Pages in the file.
    pub pages: u64,
    /// Whether each meta page validates.
    pub metas_valid: [bool; 2],
    /// The records of each top-level bucket the walk reached, by bucket.
    pub buckets: BTreeMap<&'a [u8], BTreeMap<&'a [u8], &'a [u8]>>,
    /// Sequence of each top-level bucket reached.
    pub sequences: BTreeMap<&'a [u8], u64>,
    /// `key`-bucket records by bucket key, with where they came from.
    pub revisions: BTreeMap<&'a [u8], (&'a [u8], Source)>,
    /// `lease` records found only by the scan.
    pub scanned_leases: BTreeMap<&'a [u8], &'a [u8]>,
    /// Pages the tree pointed at that could not be read.
    pub unreadable: Vec<UnreadablePage>,
    /// Leaf pages read by the walk.
    pub reachable_leaves: u64,
    /// Leaf pages outside the tree recognised as `key`-bucket pages.
    pub scanned_key_pages: u64,
    /// Whether the tree was found by a scan for root pages (no valid meta).
    pub root_from_scan: bool,
}

impl Found<'_> {
    /// The ids of the lease records found, in the tree or by the scan.
    pub fn lease_ids(&self) -> std::collections::BTreeSet<i64> {
        let tree = self.buckets.get(crate::schema::LEASE).into_iter().flat_map(|b| b.keys());
        tree.chain(self.scanned_leases.keys())
            .filter_map(|k| <[u8; 8]>::try_from(*k).ok())
            .map(i64::from_be_bytes)
            .collect()
    }
}

/// Walks and scans `data` (a bbolt image, trailer removed).
pub fn find(data: &[u8]) -> Found<'_> {
    let metas = Metas::read(data).ok();
    let page_size = metas.as_ref().map_or(4096, |m| m.page_size as usize).max(1024);
    let mut f = Found { page_size, pages: data.len().checked_div(page_size).unwrap_or(0) as u64, ..Found::default() };
    let mut visited = Bits::new(f.pages);
    let root = match &metas {
        Some(m) => {
            f.metas_valid = [m.slots[0].valid().is_some(), m.slots[1].valid().is_some()];
            Some(m.active().root.root)
        }
        // Neither meta says where the tree is: the newest root page found.
        None => newest_root(data, page_size, f.pages),
    };
    if let Some(root) = root {
        f.root_from_scan = metas.is_none();
        let mut w = Walk { data, ps: page_size, visited: &mut visited, found: &mut f };
        w.top_level(root);
    }
    scan(data, page_size, &visited, &mut f);
    f
}

/// Keys a page may hold: from (inclusive), to (exclusive); `None`: unbounded.
type Range<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// What receives each leaf record: key, value, element flags.
type Each<'a, 'e> = dyn FnMut(&'a [u8], &'a [u8], u32) + 'e;

struct Walk<'a, 'f> {
    data: &'a [u8],
    ps: usize,
    visited: &'f mut Bits,
    found: &'f mut Found<'a>,
}

impl<'a> Walk<'a, '_> {
    /// The root bucket's tree: its leaf records are the top-level buckets.
    fn top_level(&mut self, root: Pgid) {
        let mut tops: Vec<(&'a [u8], &'a [u8])> = Vec::new();
        self.leaves(root, b"", 0, (None, None), &mut |k, v, flags| {
            if flags & BUCKET_LEAF_FLAG != 0 {
                tops.push((k, v));
            }
        });
        for (name, header) in tops {
            self.bucket(name, header);
        }
    }

    /// One top-level bucket, from its header (root page, sequence, inline page).
    fn bucket(&mut self, name: &'a [u8], header: &'a [u8]) {
        let (Some(root), Some(seq)) = (le_u64(header, 0), le_u64(header, 8)) else {
            self.unreadable(0, name, "bucket header shorter than 16 bytes");
            return;
        };
        self.found.sequences.insert(name, seq);
        let problems_before = self.found.unreadable.len();
        let mut records: Vec<(&'a [u8], &'a [u8])> = Vec::new();
        if root == 0 {
            let inline = header.get(BUCKET_HEADER_SIZE..).unwrap_or(&[]);
            match inspect::page(inline, inline.len(), 0) {
                Some(v) => {
                    if let Some(p) = &v.problem {
                        self.unreadable(0, name, &format!("inline bucket page: {p}"));
                    }
                    for it in &v.items {
                        if let Item::Leaf { flags, key, value } = it {
                            if flags & BUCKET_LEAF_FLAG == 0 {
                                records.push((key, value));
                            }
                        }
                    }
                }
                None => self.unreadable(0, name, "inline bucket page does not decode"),
            }
        } else {
            self.leaves(root, name, 0, (None, None), &mut |k, v, flags| {
                if flags & BUCKET_LEAF_FLAG == 0 {
                    records.push((k, v));
                }
            });
        }
        // A damaged `meta` bucket would give a wrong compact revision (0:
        // compacted history taken back as live): it is left out instead, so
        // the compact revision is reported unknown.
        let mut meta = crate::schema::MetaInfo::default();
        if name == META
            && (self.found.unreadable.len() > problems_before
                || records.iter().any(|(k, v)| meta.absorb(k, v).is_err()))
        {
            self.unreadable(root, name, "the meta bucket is damaged: left out (the compact revision is unknown)");
            return;
        }
        if name == KEY {
            for (k, v) in records {
                if key_record(k, v) {
                    self.found.revisions.entry(k).or_insert((v, Source::Reachable));
                }
            }
        } else {
            let before = records.len();
            records.retain(|(k, v)| schema_record(name, k, v));
            if records.len() < before {
                let why = format!("{} records that do not decode left out", before.saturating_sub(records.len()));
                self.unreadable(root, name, &why);
            }
            self.found.buckets.entry(name).or_default().extend(records);
        }
    }

    /// Every leaf record under page `id` of bucket `bucket`, as far as the pages hold.
    /// `range`: the keys the parent branch gives this page (its element's
    /// key, inclusive, up to the next element's, exclusive).
    fn leaves(&mut self, id: Pgid, bucket: &[u8], depth: usize, range: Range<'a>, each: &mut Each<'a, '_>) {
        if depth > MAX_DEPTH {
            self.unreadable(id, bucket, "tree deeper than 64 levels (a cycle?)");
            return;
        }
        let Some(v) = inspect::page(self.data, self.ps, id) else {
            self.unreadable(id, bucket, "past the end of the file");
            return;
        };
        // A damaged branch element can point at a stale page (compacted
        // history): a page whose keys are outside its parent's range is not
        // this tree's, so it is left to the scan (and its compact-revision rule).
        let key_of = |it: &Item<'a>| match *it {
            Item::Branch { key, .. } | Item::Leaf { key, .. } => key,
        };
        let (first, last) = (v.items.first().map(key_of), v.items.last().map(key_of));
        if range.0.is_some_and(|lo| first.is_some_and(|f| f < lo))
            || range.1.is_some_and(|hi| last.is_some_and(|l| l >= hi))
        {
            self.unreadable(id, bucket, "its keys are outside the range its parent branch gives");
            return;
        }
        if id < 2 || !self.visited.insert(id) {
            self.unreadable(id, bucket, "page id below 2 or reached twice");
            return;
        }
        if v.header.id != id {
            self.unreadable(id, bucket, &format!("its header says page {}", v.header.id));
            return;
        }
        // A damaged overflow count may be billions: only pages in the file count.
        let overflow = u64::from(v.header.overflow).min(self.found.pages.saturating_sub(id));
        for extra in 1..=overflow {
            self.visited.insert(id.saturating_add(extra));
        }
        if let Some(p) = &v.problem {
            self.unreadable(id, bucket, p);
        }
        match v.header.flags {
            LEAF_PAGE_FLAG => {
                self.found.reachable_leaves = self.found.reachable_leaves.saturating_add(1);
                for it in &v.items {
                    if let Item::Leaf { flags, key, value } = it {
                        each(key, value, *flags);
                    }
                }
            }
            BRANCH_PAGE_FLAG => {
                let children: Vec<(&'a [u8], Pgid)> = v
                    .items
                    .iter()
                    .filter_map(|it| match it {
                        Item::Branch { key, pgid } => Some((*key, *pgid)),
                        Item::Leaf { .. } => None,
                    })
                    .collect();
                for (i, &(key, c)) in children.iter().enumerate() {
                    let hi = children.get(i.saturating_add(1)).map(|n| n.0).or(range.1);
                    self.leaves(c, bucket, depth.saturating_add(1), (Some(key), hi), each);
                }
            }
            f => self.unreadable(id, bucket, &format!("page type 0x{f:02x} where a branch or leaf page should be")),
        }
    }

    fn unreadable(&mut self, id: Pgid, bucket: &[u8], why: &str) {
        self.found.unreadable.push(UnreadablePage { id, bucket: bucket.to_vec(), why: why.to_string() });
    }
}

/// Every page the walk did not read, recognised by content.
fn scan<'a>(data: &'a [u8], ps: usize, visited: &Bits, f: &mut Found<'a>) {
    let mut id: Pgid = 2;
    while id < f.pages {
        let Some(v) = inspect::page(data, ps, id) else { break };
        let next = id.saturating_add(1);
        if visited.contains(id) || v.header.id != id || v.header.flags != LEAF_PAGE_FLAG || v.items.is_empty() {
            id = next;
            continue;
        }
        let skip = u64::from(v.header.overflow);
        if key_page(&v.items) {
            f.scanned_key_pages = f.scanned_key_pages.saturating_add(1);
            for it in &v.items {
                if let Item::Leaf { key, value, .. } = it {
                    f.revisions.entry(key).or_insert((value, Source::Scanned));
                }
            }
        } else if lease_page(&v.items) {
            for it in &v.items {
                if let Item::Leaf { key, value, .. } = it {
                    f.scanned_leases.entry(key).or_insert(value);
                }
            }
        }
        id = next.saturating_add(skip);
    }
}

/// Without a valid meta: the root page of the newest tree, among the leaf
/// pages that list the `key` and `meta` buckets (the root bucket's page,
/// written again by every transaction, so stale copies abound): the one
/// whose inline `meta` bucket holds the highest `consistent_index`.
fn newest_root(data: &[u8], ps: usize, pages: u64) -> Option<Pgid> {
    let mut best: Option<(u64, Pgid)> = None;
    for id in 2..pages {
        let Some(v) = inspect::page(data, ps, id) else { break };
        if v.header.id != id || v.header.flags != LEAF_PAGE_FLAG || v.items.is_empty() {
            continue;
        }
        let mut names = Vec::new();
        let mut ci = None;
        let all_buckets = v.items.iter().all(|it| match it {
            Item::Leaf { flags, key, value } if flags & BUCKET_LEAF_FLAG != 0 => {
                names.push(*key);
                if *key == META {
                    ci = inline_consistent_index(value);
                }
                true
            }
            _ => false,
        });
        if all_buckets && names.contains(&KEY) && names.contains(&META) {
            let score = ci.unwrap_or(0);
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, id));
            }
        }
    }
    best.map(|(_, id)| id)
}

/// `consistent_index` of an inline `meta` bucket's value.
fn inline_consistent_index(bucket: &[u8]) -> Option<u64> {
    if le_u64(bucket, 0)? != 0 {
        return None;
    }
    let inline = bucket.get(BUCKET_HEADER_SIZE..)?;
    let v = inspect::page(inline, inline.len(), 0)?;
    v.items.iter().find_map(|it| match it {
        Item::Leaf { key, value, .. } if *key == crate::schema::CONSISTENT_INDEX => {
            Some(u64::from_be_bytes(<[u8; 8]>::try_from(*value).ok()?))
        }
        _ => None,
    })
}

/// Whether every element is a `key`-bucket record.
fn key_page(items: &[Item<'_>]) -> bool {
    items.iter().all(|it| matches!(it, Item::Leaf { flags: 0, key, value } if key_record(key, value)))
}

/// Whether `key`/`value` is a `key`-bucket record: a revision (a marker's
/// empty value, or a `KeyValue` written at that revision).
fn key_record(key: &[u8], value: &[u8]) -> bool {
    match BucketKey::parse(key) {
        Ok(bk) if value.is_empty() => bk.rev.main > 0,
        // A tombstone's value holds the key only (etcd's delete writes `KeyValue{Key}`).
        Ok(bk) => KvRef::parse(value).is_ok_and(|kv| {
            !kv.key.is_empty() && (kv.mod_revision == bk.rev.main || (bk.tombstone && kv.mod_revision == 0))
        }),
        Err(_) => false,
    }
}

/// Whether a record of a top-level bucket other than `key` has the shape
/// `verify` requires (`lease`: a `leasepb.Lease` of the id it is stored
/// under; `authUsers`/`authRoles`: an `authpb.User`/`Role`; `alarm`: an
/// `AlarmMember` key): a damaged one written out would fail the output's check.
fn schema_record(bucket: &[u8], key: &[u8], value: &[u8]) -> bool {
    match bucket {
        LEASE => lease_record(key, value),
        AUTH_USERS => authpb::User::decode(value).is_ok(),
        AUTH_ROLES => authpb::Role::decode(value).is_ok(),
        ALARM => etcdserverpb::AlarmMember::decode(key).is_ok(),
        _ => true,
    }
}

/// Whether `key`/`value` is a `lease` record: a `leasepb.Lease` of the 8-byte id it is stored under.
fn lease_record(key: &[u8], value: &[u8]) -> bool {
    <[u8; 8]>::try_from(key)
        .is_ok_and(|k| leasepb::Lease::decode(value).is_ok_and(|l| l.id == i64::from_be_bytes(k) && l.id != 0))
}

/// Whether every element is a `lease` record.
fn lease_page(items: &[Item<'_>]) -> bool {
    items.iter().all(|it| matches!(it, Item::Leaf { flags: 0, key, value } if lease_record(key, value)))
}

/// The bucket `LEASE`'s name (for the caller).
pub const LEASE_BUCKET: &[u8] = LEASE;

/// One bit per page of the file: the pages the walk read.
struct Bits(Vec<u64>);

impl Bits {
    fn new(pages: u64) -> Self {
        Bits(vec![0; usize::try_from(pages.div_ceil(64)).unwrap_or(0)])
    }

    /// Marks `id`; false when it was marked already or is past the file.
    fn insert(&mut self, id: Pgid) -> bool {
        let (word, bit) = (usize::try_from(id / 64).unwrap_or(usize::MAX), id % 64);
        match self.0.get_mut(word) {
            Some(w) if *w & (1 << bit) == 0 => {
                *w |= 1 << bit;
                true
            }
            _ => false,
        }
    }

    fn contains(&self, id: Pgid) -> bool {
        let (word, bit) = (usize::try_from(id / 64).unwrap_or(usize::MAX), id % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(<[u8; 8]>::try_from(s).ok()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    /// A page of the tree whose overflow count was damaged into billions (found
    /// by the salvage fuzz target, which then ran for minutes on it): only the
    /// file's pages are marked, and the rest of the file is still scanned.
    #[test]
    fn a_huge_overflow_count_costs_no_more_than_the_file() {
        let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/etcd-small.db");
        let mut data = std::fs::read(seed).unwrap();
        data.truncate(data.len() - 32);
        let clean = find(&data).revisions.len();
        let pages = data.len() / 4096;
        let at = (64 % pages) * 4096 + 15;
        data[at..at + 8].copy_from_slice(&(u64::MAX - 0x40).to_le_bytes());
        let f = find(&data);
        assert_eq!(f.pages, pages as u64);
        assert!(!f.revisions.is_empty() && f.revisions.len() <= clean, "{} of {clean}", f.revisions.len());
    }
}
