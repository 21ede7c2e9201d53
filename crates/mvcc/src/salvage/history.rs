//! Which surviving records are kept, and the account of what was recovered
//! and lost: the tree's records over stray copies, histories with holes
//! trimmed to what etcd could have written, revisions as ranges.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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
/// freed page): it is left out and counted — unless a put above the compact
/// revision names it as its predecessor ([`vouched_below_compact`]). With
/// neither tree nor `meta`, every copy is kept (the report says the compact
/// revision is unknown).
pub(crate) fn choose(all: &mut Records<'_>, compact: Option<i64>) -> u64 {
    let tree_latest = all
        .iter()
        .filter(|(_, (_, s))| *s == Source::Reachable)
        .filter_map(|(k, _)| BucketKey::parse(k).ok())
        .map(|b| b.rev.main)
        .max();
    let floor = compact.or(tree_latest);
    // Records damaged in ways that still decode go first: lost, not ignored copies.
    all.retain(|bk, (v, _)| BucketKey::parse(bk).is_ok_and(|at| sound(&at, v)));
    let before = all.len();
    let stale = compact.map(|c| stale_below_compact(all, c)).unwrap_or_default();
    let vouched = compact.map(|c| vouched_below_compact(all, c)).unwrap_or_default();
    all.retain(|bk, (_, src)| match (*src, BucketKey::parse(bk)) {
        (_, Err(_)) => false,
        (Source::Reachable, Ok(_)) => !stale.contains(bk),
        (Source::Scanned, Ok(at)) => floor.is_none_or(|f| at.rev.main > f) || vouched.contains(bk),
    });
    before.saturating_sub(all.len()) as u64
}

/// Whether a record reads as one etcd wrote at its revision (verify's
/// per-record rules): a put's `mod_revision` is its revision, its
/// `create_revision` in 1..=that, its version at least 1 and exactly 1 when
/// it was created at its own revision, its key not empty;
/// a tombstone carries its key only; an empty value is a revision marker,
/// which is never a tombstone (a tombstone without its key names no key to
/// delete). A record whose bytes were damaged but still decode fails one of
/// them and is left out (lost), not written as if etcd had written it.
fn sound(at: &BucketKey, v: &[u8]) -> bool {
    if v.is_empty() {
        return !at.tombstone;
    }
    let Ok(kv) = KvRef::parse(v) else { return false };
    if kv.key.is_empty() {
        return false;
    }
    if at.tombstone {
        return kv.create_revision == 0
            && kv.mod_revision == 0
            && kv.version == 0
            && kv.value.is_empty()
            && kv.lease == 0;
    }
    // A key created at this revision starts its generation at version 1.
    let start = kv.create_revision != kv.mod_revision || kv.version == 1;
    kv.mod_revision == at.rev.main && (1..=kv.mod_revision).contains(&kv.create_revision) && kv.version >= 1 && start
}

/// Records the tree reaches at or below the compact revision that cannot be
/// what the compaction left. A compaction leaves each key at most one record
/// there, its latest (a put), so a tree record is stale when the same key
/// has a later record at or below the compact revision, in the tree or in
/// any page: the tree then leads, through a damaged pointer, to a page
/// freed before the compaction.
fn stale_below_compact<'a>(all: &Records<'a>, compact: i64) -> BTreeSet<&'a [u8]> {
    // Per key: the latest revision at or below the compact revision, any source.
    let mut latest: HashMap<&[u8], i64> = HashMap::new();
    let mut reachable: Vec<(&[u8], &[u8], i64)> = Vec::new();
    for (bk, (v, src)) in all {
        let (Ok(at), Ok(kv)) = (BucketKey::parse(bk), KvRef::parse(v)) else { continue };
        if at.rev.main > compact || v.is_empty() {
            continue;
        }
        let e = latest.entry(kv.key).or_insert(at.rev.main);
        *e = (*e).max(at.rev.main);
        if *src == Source::Reachable {
            reachable.push((bk, kv.key, at.rev.main));
        }
    }
    reachable
        .into_iter()
        .filter(|(_, key, main)| latest.get(key).is_some_and(|l| l > main))
        .map(|(bk, ..)| bk)
        .collect()
}

/// Copies found outside the tree at or below the compact revision that a
/// put above it vouches for. A put's version counts the puts of its
/// generation (its `create_revision`), so the put with the same
/// `create_revision` and the version one less is the key's write just
/// before it, with no put or tombstone between. When the later put is above
/// the compact revision, that predecessor is the key's latest revision at
/// or below it — the one the compaction keeps — so a copy of it is that
/// revision itself, not deleted history (the base a read between the compact
/// revision and the later put returns).
fn vouched_below_compact<'a>(all: &Records<'a>, compact: i64) -> BTreeSet<&'a [u8]> {
    let put = |bk: &'a [u8], v: &'a [u8]| match (BucketKey::parse(bk), KvRef::parse(v)) {
        (Ok(at), Ok(kv)) if !at.tombstone && !v.is_empty() => Some((at.rev.main, kv)),
        _ => None,
    };
    // (key, create_revision, version) of the predecessor each put above the compact revision names.
    let mut named: HashSet<(&[u8], i64, i64)> = HashSet::new();
    for (bk, (v, _)) in all {
        let Some((_, kv)) = put(bk, v).filter(|(main, _)| *main > compact) else { continue };
        if let Some(prev) = kv.version.checked_sub(1).filter(|p| *p >= 1) {
            named.insert((kv.key, kv.create_revision, prev));
        }
    }
    all.iter()
        .filter(|(_, (_, src))| *src == Source::Scanned)
        .filter_map(|(bk, (v, _))| Some((*bk, put(bk, v)?)))
        .filter(|(_, (main, kv))| *main <= compact && named.contains(&(kv.key, kv.create_revision, kv.version)))
        .map(|(bk, _)| bk)
        .collect()
}

/// Recovered and lost revisions, live keys, keys with holes.
pub(crate) struct Account {
    pub(crate) latest: i64,
    pub(crate) recovered: Vec<RevRange>,
    pub(crate) lost: Vec<RevRange>,
    pub(crate) live_keys: u64,
}

pub(crate) fn account(revisions: &Records<'_>, compact: i64) -> Account {
    // In bucket-key order, so main revisions come sorted.
    let mut mains: Vec<i64> = Vec::new();
    // Per key: whether its latest revision is a put.
    let mut per_key: HashMap<&[u8], bool> = HashMap::new();
    for (bk, (v, _)) in revisions {
        let Ok(at) = BucketKey::parse(bk) else { continue };
        if mains.last() != Some(&at.rev.main) {
            mains.push(at.rev.main);
        }
        let Ok(kv) = KvRef::parse(v) else { continue };
        if v.is_empty() {
            continue;
        }
        per_key.insert(kv.key, !at.tombstone);
    }
    let latest = mains.last().copied().unwrap_or(compact);
    // etcd's first write is revision 2 (the empty store is at 1).
    let first = compact.saturating_add(1).max(2);
    let recovered = ranges(mains.get(mains.partition_point(|&m| m < first)..).unwrap_or_default());
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
    let mut by_key: HashMap<&[u8], Vec<Rec<'_>>> = HashMap::new();
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
    keys.sort_unstable();
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
    let mut last: HashMap<&[u8], (i64, bool)> = HashMap::new();
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

    fn record(key: &[u8], main: i64) -> (Vec<u8>, Vec<u8>) {
        use etcdsnap_proto::prost::Message;
        let kv = etcdsnap_proto::mvccpb::KeyValue {
            key: key.to_vec(),
            create_revision: main,
            mod_revision: main,
            version: 1,
            ..Default::default()
        };
        (crate::revision::Revision::new(main, 0).to_bytes().to_vec(), kv.encode_to_vec())
    }

    fn put(key: &[u8], main: i64, create: i64, version: i64) -> (Vec<u8>, Vec<u8>) {
        use etcdsnap_proto::prost::Message;
        let kv = etcdsnap_proto::mvccpb::KeyValue {
            key: key.to_vec(),
            create_revision: create,
            mod_revision: main,
            version,
            value: b"v".to_vec(),
            ..Default::default()
        };
        (crate::revision::Revision::new(main, 0).to_bytes().to_vec(), kv.encode_to_vec())
    }

    /// A copy outside the tree at or below the compact revision is kept when a
    /// put above it names it as its predecessor (same generation, version one
    /// less); a copy of an older put of that generation, one of another
    /// generation, or one no later put names, stays out.
    #[test]
    fn copies_below_the_compact_revision_named_by_a_later_put_are_kept() {
        let recs = [
            // a: created at 5, put again at 40 (version 2), at 60 (version 3).
            (put(b"a", 5, 5, 1), Source::Scanned),
            (put(b"a", 40, 5, 2), Source::Scanned),
            (put(b"a", 60, 5, 3), Source::Reachable),
            // b: a copy at 30 of generation 30, version 1; the put at 70 starts
            // generation 70 (a tombstone came between): it names no predecessor.
            (put(b"b", 30, 30, 1), Source::Scanned),
            (put(b"b", 70, 70, 1), Source::Reachable),
            // c: a copy at 20 (version 1); the put at 80 has version 3, so the
            // put before it (version 2) is lost and c@20 is not the revision kept.
            (put(b"c", 20, 20, 1), Source::Scanned),
            (put(b"c", 80, 20, 3), Source::Scanned),
        ];
        let mut all: Records<'_> = recs.iter().map(|((k, v), s)| (&k[..], (&v[..], *s))).collect();
        let ignored = choose(&mut all, Some(50));
        let kept: Vec<i64> = all.keys().map(|k| BucketKey::parse(k).unwrap().rev.main).collect();
        assert_eq!(kept, vec![40, 60, 70, 80]);
        assert_eq!(ignored, 3, "a@5, b@30, c@20");
        // Without a compact revision nothing is vouched for this way.
        let mut all: Records<'_> = recs.iter().map(|((k, v), s)| (&k[..], (&v[..], *s))).collect();
        choose(&mut all, None);
        assert!(all.keys().all(|k| BucketKey::parse(k).unwrap().rev.main > 40 || all[k].1 == Source::Reachable));
    }

    /// A tree that reaches, through a damaged pointer, a page freed before the
    /// compaction: its records of a key older than that key's latest record at
    /// or below the compact revision (found anywhere) are left out; the latest
    /// one, and every record above the compact revision, stay.
    #[test]
    fn stale_tree_records_below_the_compact_revision_are_left_out() {
        let recs = [
            (record(b"a", 10), Source::Reachable),
            (record(b"a", 40), Source::Scanned),
            (record(b"b", 20), Source::Reachable),
            (record(b"b", 30), Source::Reachable),
            (record(b"c", 25), Source::Reachable),
            (record(b"c", 60), Source::Reachable),
            (record(b"d", 70), Source::Scanned),
        ];
        let mut all: Records<'_> = recs.iter().map(|((k, v), s)| (&k[..], (&v[..], *s))).collect();
        let ignored = choose(&mut all, Some(50));
        let kept: Vec<i64> = all.keys().map(|k| BucketKey::parse(k).unwrap().rev.main).collect();
        // a@10: stale (a@40 found, below the compact revision, scanned: left out too);
        // b@20: stale (b@30); c@25 is c's latest at or below 50; c@60 and d@70 are above it.
        assert_eq!(kept, vec![25, 30, 60, 70]);
        assert_eq!(ignored, 3);
        // Without a compact revision nothing of the tree is judged so.
        let mut all: Records<'_> = recs.iter().map(|((k, v), s)| (&k[..], (&v[..], *s))).collect();
        choose(&mut all, None);
        assert_eq!(all.len(), 7 - 1, "scanned a@40 is at or below the tree's latest (60)");
    }

    /// Records whose bytes were damaged but still decode, both found by the
    /// salvage fuzz target — a create_revision past its revision, and a key
    /// created at its revision with version 64 — are left out, as lost.
    #[test]
    fn records_etcd_could_not_have_written_are_left_out() {
        use etcdsnap_proto::prost::Message;
        let (k, good) = record(b"a", 47);
        let mut bad = etcdsnap_proto::mvccpb::KeyValue::decode(&good[..]).unwrap();
        bad.create_revision = 48;
        let bad = bad.encode_to_vec();
        let (k3, good3) = record(b"c", 49);
        let mut bad3 = etcdsnap_proto::mvccpb::KeyValue::decode(&good3[..]).unwrap();
        bad3.version = 64;
        let bad3 = bad3.encode_to_vec();
        // Version 64 is sound when the key was created earlier.
        let (k4, good4) = record(b"d", 50);
        let mut later = etcdsnap_proto::mvccpb::KeyValue::decode(&good4[..]).unwrap();
        later.create_revision = 5;
        later.version = 64;
        let later = later.encode_to_vec();
        let (k2, v2) = record(b"b", 48);
        // A tombstone's bucket key (flag 't') with an empty value: no key to delete
        // (found by the fuzz target), unlike a marker, whose bucket key has no flag.
        let mut tomb_key = crate::revision::Revision::new(51, 0).to_bytes().to_vec();
        tomb_key.push(b't');
        let marker = crate::revision::Revision::new(52, 0).to_bytes().to_vec();
        let mut all: Records<'_> = [
            (&k[..], (&bad[..], Source::Reachable)),
            (&k2[..], (&v2[..], Source::Reachable)),
            (&k3[..], (&bad3[..], Source::Reachable)),
            (&k4[..], (&later[..], Source::Reachable)),
            (&tomb_key[..], (&[][..], Source::Reachable)),
            (&marker[..], (&[][..], Source::Reachable)),
        ]
        .into_iter()
        .collect();
        let ignored = choose(&mut all, Some(10));
        assert_eq!(ignored, 0, "not counted as an ignored copy");
        assert_eq!(all.keys().copied().collect::<Vec<_>>(), vec![&k2[..], &k4[..], &marker[..]]);
    }

    #[test]
    fn ranges_of_revisions() {
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), vec![(1, 3), (5, 5), (7, 8)]);
        assert_eq!(ranges(&[]), Vec::<RevRange>::new());
    }
}
