//! `salvage`: a damaged db or snapshot turned into a restorable snapshot
//! holding every revision that survives, and an exact account of what did not.
//!
//! 1. [`scan::find`] walks the active meta's tree as far as it holds and reads
//!    every other page on its own, recognising `key` and `lease` pages by
//!    content. A revision found in the tree wins over a copy found elsewhere
//!    (revisions never change once written, so copies agree); a copy found
//!    outside the tree at or below the compact revision is left out (it may
//!    be history a compaction deleted), so compacted history does not come back.
//! 2. The records are written into a fresh file (every bucket etcd creates,
//!    empty where nothing survived), then through the rewrite: bumped and
//!    marked compacted by default (clients re-list rather than trust a
//!    history with holes), with a SHA-256 trailer, so any etcd's stock
//!    restore accepts it.
//! 3. The [`SalvageReport`] gives revisions recovered and lost as ranges over
//!    what is knowable — the revisions after the compact revision up to the
//!    latest one found — keys whose history has holes (version gaps), leases
//!    referenced but lost, and the pages that could not be read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use etcdsnap_bolt::builder::{BuildOptions, Builder};
use etcdsnap_io::{AtomicFile, Cancel, CreateOptions, MappedFile};

use crate::error::{MvccError, Result};
use crate::kv::KvRef;
use crate::revision::BucketKey;
use crate::rewrite::{rewrite, NoProgress, RewriteOptions, RewriteReport};
use crate::schema::{MetaInfo, ALL_BUCKETS, KEY, LEASE, META};
use crate::TrailerMode;

pub mod scan;

pub use scan::{Source, UnreadablePage};

/// Options of [`salvage`].
#[derive(Debug, Clone)]
pub struct SalvageOptions {
    /// Bump the revision by this much and mark it compacted (`None`: neither).
    pub bump_revision: Option<i64>,
    /// Replace an existing output.
    pub output: CreateOptions,
    /// Stops the salvage once set.
    pub cancel: Cancel,
}

impl Default for SalvageOptions {
    fn default() -> Self {
        Self { bump_revision: Some(1_000_000_000), output: CreateOptions::default(), cancel: Cancel::default() }
    }
}

/// An inclusive range of main revisions.
pub type RevRange = (i64, i64);

/// What one top-level bucket came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketOutcome {
    /// The bucket.
    pub name: String,
    /// Records written.
    pub records: u64,
    /// Where they came from: `tree`, `scan` (pages outside the tree), `lost`
    /// (the tree did not reach it and no page was recognised), `empty`.
    pub from: &'static str,
}

/// What [`salvage`] recovered and lost.
#[derive(Debug)]
pub struct SalvageReport {
    /// Page size used to read the input.
    pub page_size: usize,
    /// Pages in the input.
    pub pages: u64,
    /// Whether meta 0 and meta 1 validate.
    pub metas_valid: [bool; 2],
    /// Whether, with no valid meta, the tree was found by its root page.
    pub root_from_scan: bool,
    /// Leaf pages read through the tree.
    pub reachable_leaf_pages: u64,
    /// Pages outside the tree recognised as `key`-bucket pages.
    pub scanned_key_pages: u64,
    /// Pages the tree pointed at that could not be read.
    pub unreadable: Vec<UnreadablePage>,
    /// `key`-bucket records written (revisions, sub-revisions and markers).
    pub revisions_recovered: u64,
    /// Of them, found outside the tree.
    pub revisions_from_scan: u64,
    /// Copies found outside the tree at or below what the tree vouches for,
    /// left out (possibly history a compaction deleted).
    pub compacted_copies_ignored: u64,
    /// The compact revision: history at or below it is not knowable (0 when
    /// the `meta` bucket was not found).
    pub compact_revision: i64,
    /// Whether the `meta` bucket (and so the compact revision) was found.
    pub compact_revision_known: bool,
    /// The latest revision found.
    pub latest_revision: i64,
    /// Main revisions after the compact revision recovered, as ranges.
    pub recovered: Vec<RevRange>,
    /// Main revisions after the compact revision up to the latest lost, as ranges.
    pub lost: Vec<RevRange>,
    /// Live keys (latest revision not a tombstone) in the output.
    pub live_keys: u64,
    /// Keys whose recovered history has a hole (a version skipped, a
    /// generation without its tombstone): their revisions before the hole are
    /// left out, so what is written reads as a history etcd could have made.
    pub keys_with_history_gaps: Vec<Vec<u8>>,
    /// Revisions that survived but were left out that way (counted as lost).
    pub history_trimmed: u64,
    /// Lease ids kept keys reference that no lease record was found for.
    pub leases_missing: Vec<i64>,
    /// Every top-level bucket, as written.
    pub buckets: Vec<BucketOutcome>,
    /// The rewrite that bumped and marked the output (or only added the trailer).
    pub rewrite: RewriteReport,
}

/// Salvages `input` (a snapshot or raw db, damaged or not) into the snapshot
/// `output` (see the module docs).
pub fn salvage(input: &Path, output: &Path, opts: &SalvageOptions) -> Result<SalvageReport> {
    let file = MappedFile::open(input)?;
    let (image, _) = crate::trailer::split(&file);
    let mut found = scan::find(image);
    opts.cancel.check()?;
    let mut meta_info = MetaInfo::default();
    if let Some(m) = found.buckets.get(META) {
        for (k, v) in m {
            // A damaged meta record is left out, not fatal.
            let _ = meta_info.absorb(k, v);
        }
    }
    let known_compact = found.buckets.contains_key(META).then(|| meta_info.compact_rev());
    let compact = known_compact.unwrap_or(0);
    let mut revisions = std::mem::take(&mut found.revisions);
    let ignored = choose(&mut revisions, known_compact);
    let (trimmed, holed_keys) = trim_broken_history(&mut revisions);
    // The clean file is a temporary beside the output, never committed
    // (removed when dropped), named apart from the output's own temporary.
    let clean_name = format!("{}.clean", output.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    let clean = output.with_file_name(clean_name);
    let mut tmp = AtomicFile::create_with(&clean, &[input], CreateOptions { overwrite: true, remove_stale: false })?;
    let tmp_path = tmp.tmp_path().to_path_buf();
    let built = write_clean(tmp.file()?, &found, &revisions, found.page_size)?;
    tmp.file()?.flush().map_err(|source| MvccError::Io { path: tmp_path.clone(), source })?;
    // The clean file goes through the rewrite (bump, marks, trailer) into the output.
    let ro = RewriteOptions {
        bump_revision: opts.bump_revision,
        mark_compacted: opts.bump_revision.is_some(),
        trailer: TrailerMode::Always,
        output: CreateOptions { overwrite: opts.output.overwrite, remove_stale: false },
        cancel: opts.cancel.clone(),
        ..RewriteOptions::default()
    };
    let rewrite_report = rewrite(&tmp_path, output, &ro, &mut NoProgress)?;
    drop(tmp);
    let account = account(&revisions, compact);
    let from_scan = revisions.values().filter(|(_, s)| *s == Source::Scanned).count() as u64;
    Ok(SalvageReport {
        page_size: found.page_size,
        pages: found.pages,
        metas_valid: found.metas_valid,
        root_from_scan: found.root_from_scan,
        reachable_leaf_pages: found.reachable_leaves,
        scanned_key_pages: found.scanned_key_pages,
        unreadable: found.unreadable.clone(),
        revisions_recovered: revisions.len() as u64,
        revisions_from_scan: from_scan,
        compacted_copies_ignored: ignored,
        compact_revision: compact,
        compact_revision_known: known_compact.is_some(),
        latest_revision: account.latest,
        recovered: account.recovered,
        lost: account.lost,
        live_keys: account.live_keys,
        keys_with_history_gaps: holed_keys,
        history_trimmed: trimmed,
        leases_missing: leases_missing(&revisions, &built.leases),
        buckets: built.buckets,
        rewrite: rewrite_report,
    })
}

/// The records to keep: every record of the tree, and the copies found
/// outside it that are newer than what the tree vouches for — above the
/// compact revision (revisions are never changed or deleted after it, so a
/// copy there is the revision itself), or, without a readable `meta`
/// bucket, above the tree's latest revision. An older copy may be history a
/// compaction deleted (a deleted key's last put outlives its tombstone in a
/// freed page): it is left out and counted. With neither tree nor `meta`,
/// every copy is kept (the report says the compact revision is unknown).
fn choose(all: &mut Records<'_>, compact: Option<i64>) -> u64 {
    let tree_latest = all
        .iter()
        .filter(|(_, (_, s))| *s == Source::Reachable)
        .filter_map(|(k, _)| BucketKey::parse(k).ok())
        .map(|b| b.rev.main)
        .max();
    let floor = compact.or(tree_latest);
    let before = all.len();
    all.retain(|bk, (_, src)| match (*src, BucketKey::parse(bk)) {
        (_, Err(_)) => false,
        (Source::Reachable, Ok(_)) => true,
        (Source::Scanned, Ok(at)) => floor.is_none_or(|f| at.rev.main > f),
    });
    before.saturating_sub(all.len()) as u64
}

/// What [`write_clean`] wrote besides the revisions.
struct Built {
    buckets: Vec<BucketOutcome>,
    leases: BTreeSet<i64>,
}

/// Writes every bucket etcd creates: `key` from `revisions`, the others as
/// the walk found them (`lease` also from recognised pages).
fn write_clean(
    out: &mut std::fs::File,
    found: &scan::Found<'_>,
    revisions: &Records<'_>,
    page_size: usize,
) -> Result<Built> {
    let opts = BuildOptions { page_size: u32::try_from(page_size).unwrap_or(4096), ..BuildOptions::default() };
    let mut b = Builder::new(std::io::BufWriter::new(out), opts)?;
    let mut names: BTreeSet<&[u8]> = ALL_BUCKETS.iter().copied().collect();
    names.extend(found.buckets.keys().copied());
    let mut outcomes = Vec::new();
    let mut leases = BTreeSet::new();
    for name in names {
        b.create_bucket(name, found.sequences.get(name).copied().unwrap_or(0))?;
        let (records, from) = if name == KEY {
            for (k, (v, _)) in revisions {
                b.put(k, v)?;
            }
            let from = match (revisions.is_empty(), revisions.values().any(|(_, s)| *s == Source::Scanned)) {
                (true, _) => "lost",
                (false, true) => "scan",
                (false, false) => "tree",
            };
            (revisions.len() as u64, from)
        } else {
            let tree = found.buckets.get(name);
            let mut merged: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
            if name == LEASE {
                merged.extend(found.scanned_leases.iter().map(|(k, v)| (*k, *v)));
            }
            merged.extend(tree.into_iter().flatten().map(|(k, v)| (*k, *v)));
            for (k, v) in &merged {
                if name == LEASE {
                    if let Ok(id) = <[u8; 8]>::try_from(*k) {
                        leases.insert(i64::from_be_bytes(id));
                    }
                }
                b.put(k, v)?;
            }
            let from = match (tree.is_some(), merged.is_empty()) {
                (true, _) if tree.is_some_and(|t| t.len() == merged.len()) => "tree",
                (_, false) => "scan",
                (true, true) => "empty",
                (false, true) => "lost",
            };
            (merged.len() as u64, from)
        };
        b.close_bucket()?;
        outcomes.push(BucketOutcome { name: String::from_utf8_lossy(name).into_owned(), records, from });
    }
    b.finish()?;
    Ok(Built { buckets: outcomes, leases })
}

/// Recovered and lost revisions, live keys, keys with holes.
struct Account {
    latest: i64,
    recovered: Vec<RevRange>,
    lost: Vec<RevRange>,
    live_keys: u64,
}

fn account(revisions: &Records<'_>, compact: i64) -> Account {
    let mut mains: BTreeSet<i64> = BTreeSet::new();
    // Per key: whether its latest revision is a put.
    let mut per_key: BTreeMap<&[u8], bool> = BTreeMap::new();
    for (bk, (v, _)) in revisions {
        let Ok(at) = BucketKey::parse(bk) else { continue };
        mains.insert(at.rev.main);
        let Ok(kv) = KvRef::parse(v) else { continue };
        if v.is_empty() {
            continue;
        }
        per_key.insert(kv.key, !at.tombstone);
    }
    let latest = mains.last().copied().unwrap_or(compact);
    // etcd's first write is revision 2 (the empty store is at 1).
    let first = compact.saturating_add(1).max(2);
    let after: Vec<i64> = mains.range(first..).copied().collect();
    let recovered = ranges(&after);
    let mut lost = Vec::new();
    let mut next = first;
    for &(a, b) in &recovered {
        if a > next {
            lost.push((next, a.saturating_sub(1)));
        }
        next = b.saturating_add(1);
    }
    let live_keys = per_key.values().filter(|live| **live).count() as u64;
    Account { latest, recovered, lost, live_keys }
}

/// Leaves out, for each key, the revisions before the last hole in its
/// history (by verify's rules: a put continues the previous put's
/// create_revision with the next version; after a tombstone a put starts a
/// generation at its own revision with version 1; no tombstone follows a
/// tombstone). The revisions left out and the keys concerned.
fn trim_broken_history(revisions: &mut Records<'_>) -> (u64, Vec<Vec<u8>>) {
    // (main, create, version, tombstone, bucket key) of each key's records, in revision order.
    type Rec<'b> = (i64, i64, i64, bool, &'b [u8]);
    let mut by_key: BTreeMap<&[u8], Vec<Rec<'_>>> = BTreeMap::new();
    for (bk, (v, _)) in revisions.iter() {
        let (Ok(at), Ok(kv)) = (BucketKey::parse(bk), KvRef::parse(v)) else { continue };
        if v.is_empty() {
            continue;
        }
        by_key.entry(kv.key).or_default().push((at.rev.main, kv.create_revision, kv.version, at.tombstone, bk));
    }
    let mut trimmed = 0u64;
    let mut keys = Vec::new();
    for (key, recs) in by_key {
        let breaks = |p: &Rec<'_>, c: &Rec<'_>| match (p.3, c.3) {
            (true, true) => true,
            (false, true) => false,
            (true, false) => c.1 != c.0 || c.2 != 1,
            (false, false) => c.1 != p.1 || Some(c.2) != p.2.checked_add(1),
        };
        let cut = recs
            .windows(2)
            .enumerate()
            .rev()
            .find(|(_, w)| matches!(w, [p, c] if breaks(p, c)))
            .map(|(i, _)| i.saturating_add(1));
        if let Some(cut) = cut {
            for r in recs.iter().take(cut) {
                revisions.remove(r.4);
                trimmed = trimmed.saturating_add(1);
            }
            keys.push(key.to_vec());
        }
    }
    (trimmed, keys)
}

/// `key`-bucket records by bucket key, with where each was found.
type Records<'a> = BTreeMap<&'a [u8], (&'a [u8], Source)>;

/// Sorted distinct values as inclusive ranges.
fn ranges(sorted: &[i64]) -> Vec<RevRange> {
    let mut out: Vec<RevRange> = Vec::new();
    for &r in sorted {
        match out.last_mut() {
            Some((_, end)) if end.saturating_add(1) == r => *end = r,
            _ => out.push((r, r)),
        }
    }
    out
}

/// Lease ids the kept keys' latest revisions reference without a lease record.
fn leases_missing(revisions: &Records<'_>, leases: &BTreeSet<i64>) -> Vec<i64> {
    let mut last: BTreeMap<&[u8], (i64, bool)> = BTreeMap::new();
    for (bk, (v, _)) in revisions {
        let (Ok(at), Ok(kv)) = (BucketKey::parse(bk), KvRef::parse(v)) else { continue };
        if !v.is_empty() {
            last.insert(kv.key, (kv.lease, at.tombstone));
        }
    }
    let missing: BTreeSet<i64> =
        last.values().filter(|(l, tomb)| *l != 0 && !tomb && !leases.contains(l)).map(|(l, _)| *l).collect();
    missing.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_revisions() {
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), vec![(1, 3), (5, 5), (7, 8)]);
        assert_eq!(ranges(&[]), Vec::<RevRange>::new());
    }
}
