//! Which surviving records are kept, and the account of what was recovered
//! and lost: the tree's records over stray copies, histories with holes
//! trimmed to what etcd could have written, revisions as ranges.

use std::collections::{BTreeMap, BTreeSet};

use super::scan::Source;
use super::RevRange;
use crate::kv::KvRef;
use crate::revision::BucketKey;

/// `key`-bucket records by bucket key, with where each was found.
pub(crate) type Records<'a> = BTreeMap<&'a [u8], (&'a [u8], Source)>;

/// The records to keep: every record of the tree, and the copies found
/// outside it that are newer than what the tree vouches for — above the
/// compact revision (revisions are never changed or deleted after it, so a
/// copy there is the revision itself), or, without a readable `meta`
/// bucket, above the tree's latest revision. An older copy may be history a
/// compaction deleted (a deleted key's last put outlives its tombstone in a
/// freed page): it is left out and counted. With neither tree nor `meta`,
/// every copy is kept (the report says the compact revision is unknown).
pub(crate) fn choose(all: &mut Records<'_>, compact: Option<i64>) -> u64 {
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

/// Recovered and lost revisions, live keys, keys with holes.
pub(crate) struct Account {
    pub(crate) latest: i64,
    pub(crate) recovered: Vec<RevRange>,
    pub(crate) lost: Vec<RevRange>,
    pub(crate) live_keys: u64,
}

pub(crate) fn account(revisions: &Records<'_>, compact: i64) -> Account {
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
pub(crate) fn trim_broken_history(revisions: &mut Records<'_>) -> (u64, Vec<Vec<u8>>) {
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
pub(crate) fn leases_missing(revisions: &Records<'_>, leases: &BTreeSet<i64>) -> Vec<i64> {
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
