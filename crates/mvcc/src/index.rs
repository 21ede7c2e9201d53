//! The in-memory key index etcd rebuilds from the `key` bucket at start
//! (`restoreIntoIndex`): per user key, generations of revisions, each ended by
//! a tombstone. It decides what a compaction keeps (`keyIndex.keep`).

use std::collections::{HashMap, HashSet};

use etcdsnap_bolt::Db;

use crate::error::{MvccError, Result};
pub use crate::keytable::{KeyHasher, KeyId};
use crate::kv::KvRef;
use crate::revision::{BucketKey, Revision};
use crate::schema::KEY;

/// Revisions of one key: generations oldest first; every generation but the
/// last ends with its tombstone; the last may be empty (key deleted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyIndex {
    generations: Vec<Vec<Revision>>,
}

impl KeyIndex {
    fn put(&mut self, rev: Revision) {
        match self.generations.last_mut() {
            Some(g) => g.push(rev),
            None => self.generations.push(vec![rev]),
        }
    }

    fn tombstone(&mut self, rev: Revision) {
        // etcd refuses a tombstone on an empty generation; restore logs and goes on.
        if self.generations.last().is_some_and(|g| !g.is_empty()) {
            self.put(rev);
            self.generations.push(Vec::new());
        }
    }

    fn is_empty(&self) -> bool {
        self.generations.len() <= 1 && self.generations.first().is_none_or(|g| g.is_empty())
    }

    /// Adds to `available` the revision a compaction at `at` keeps (etcd's `keep`).
    fn keep(&self, at: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let last = self.generations.len().saturating_sub(1);
        // The first generation still alive after `at` (ended by a later tombstone), else the last.
        let gen_idx = self
            .generations
            .iter()
            .take(last)
            .position(|g| g.last().is_some_and(|tomb| tomb.main > at))
            .unwrap_or(last);
        let Some(g) = self.generations.get(gen_idx) else { return };
        if let Some(rev_idx) = g.iter().rposition(|r| r.main <= at) {
            let Some(&rev) = g.get(rev_idx) else { return };
            // A tombstone ending a non-final generation is not kept.
            if rev_idx == g.len().saturating_sub(1) && gen_idx != last {
                available.remove(&rev);
            } else {
                available.insert(rev);
            }
        }
    }
}

/// The key index of a whole `key` bucket.
#[derive(Debug, Default)]
pub struct Index<'a> {
    keys: HashMap<&'a [u8], KeyIndex>,
}

impl<'a> Index<'a> {
    /// Builds the index as etcd does at start, from every entry of the `key` bucket.
    pub fn build(db: &Db<'a>) -> Result<Self> {
        let mut idx = Index::default();
        let Some(bucket) = db.bucket(&[KEY])? else { return Ok(idx) };
        for e in bucket.cursor() {
            let e = e?;
            let bk = BucketKey::parse(e.key).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
            let kv = KvRef::parse(e.value).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
            idx.add(kv.key, bk);
        }
        Ok(idx)
    }

    /// Adds one entry of the `key` bucket, in bucket order, as etcd's restore does.
    pub fn add(&mut self, key: &'a [u8], bk: BucketKey) {
        match (self.keys.get_mut(key), bk.tombstone) {
            (Some(ki), true) => ki.tombstone(bk.rev),
            (Some(ki), false) => ki.put(bk.rev),
            (None, true) => {}
            (None, false) => {
                self.keys.insert(key, KeyIndex { generations: vec![vec![bk.rev]] });
            }
        }
    }

    /// The revisions a compaction at `at` would keep (etcd's `index.Keep`).
    pub fn keep(&self, at: i64) -> HashSet<Revision> {
        let mut available = HashSet::new();
        for ki in self.keys.values() {
            ki.keep(at, &mut available);
        }
        available
    }

    /// Number of user keys indexed.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is indexed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What etcd's `keyIndex.keep(at)` decides for a compaction at `at`, as one
/// bit per `key`-bucket entry (by its ordinal: its position in bucket order).
///
/// `keep(at)` keeps, per key, the latest revision ≤ `at` unless it is a
/// tombstone (a tombstone always ends a generation that is not the last one,
/// and `keep` drops those; a generation whose tombstone is ≤ `at` is passed
/// over, which leaves nothing of it ≤ `at`). So an entry is kept exactly when
/// it is its key's latest revision ≤ `at` and a put.
///
/// Built by [`KeepSetBuilder`] in one pass; once built it holds one bit per
/// entry and nothing per key (a bucket of 50 million revisions: 6 MiB), so
/// the pass that uses it has no per-key table beside its own.
#[derive(Debug, Clone, Default)]
pub struct KeepSet {
    at: i64,
    bits: Vec<u64>,
}

/// Builds a [`KeepSet`]: per live key (latest revision ≤ `at` a put), its
/// 128-bit identity and the ordinal of that entry, a 24-byte record and a
/// 4-byte slot.
/// A tombstone removes its key's record, so deleted keys cost nothing.
#[derive(Debug)]
pub struct KeepSetBuilder {
    set: KeepSet,
    keys: KeyHasher,
    latest: crate::keytable::KeyTable<u64>,
}

impl KeepSet {
    /// Built from every entry of the `key` bucket (ordinals: bucket positions).
    pub fn build(db: &Db<'_>, at: i64) -> Result<Self> {
        let mut l = KeepSetBuilder::new(at);
        let Some(bucket) = db.bucket(&[KEY])? else { return Ok(l.finish()) };
        for (ordinal, e) in (0u64..).zip(bucket.cursor()) {
            let e = e?;
            let bk = BucketKey::parse(e.key).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
            if bk.rev.main > at {
                break; // bucket order is revision order
            }
            let kv = KvRef::parse(e.value).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
            l.add(ordinal, kv.key, bk);
        }
        Ok(l.finish())
    }

    /// The compact revision.
    pub fn at(&self) -> i64 {
        self.at
    }

    /// Whether the compaction keeps the entry at `ordinal`.
    pub fn keeps(&self, ordinal: u64) -> bool {
        let (word, bit) = position(ordinal);
        self.bits.get(word).is_some_and(|w| w & bit != 0)
    }

    /// Whether `keep` is empty (no key has a put as its latest revision ≤ `at`).
    pub fn keeps_nothing(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    fn set(&mut self, ordinal: u64, on: bool) {
        let (word, bit) = position(ordinal);
        if self.bits.len() <= word {
            if !on {
                return;
            }
            self.bits.resize(word.saturating_add(1), 0);
        }
        if let Some(w) = self.bits.get_mut(word) {
            if on {
                *w |= bit;
            } else {
                *w &= !bit;
            }
        }
    }
}

/// Word index and bit mask of an ordinal.
fn position(ordinal: u64) -> (usize, u64) {
    (usize::try_from(ordinal / 64).unwrap_or(usize::MAX), 1u64.wrapping_shl((ordinal % 64) as u32))
}

impl KeepSetBuilder {
    /// An empty builder for a compaction at `at`.
    pub fn new(at: i64) -> Self {
        Self { set: KeepSet { at, bits: Vec::new() }, keys: KeyHasher::new(), latest: crate::keytable::KeyTable::new() }
    }

    /// Adds the entry at `ordinal` (entries come in bucket order, ordinals
    /// increasing); entries above `at` are ignored.
    pub fn add(&mut self, ordinal: u64, key: &[u8], bk: BucketKey) {
        if bk.rev.main > self.set.at {
            return;
        }
        let id = self.keys.hash(key);
        // A full table (2^32 live keys) keeps the entry as if it were the
        // key's last: more is kept, nothing is lost.
        let before =
            if bk.tombstone { self.latest.remove(&id) } else { self.latest.insert(id, ordinal).unwrap_or(None) };
        if let Some(old) = before {
            self.set.set(old, false);
        }
        if !bk.tombstone {
            self.set.set(ordinal, true);
        }
    }

    /// The set, without the per-key table.
    pub fn finish(self) -> KeepSet {
        self.set
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    fn r(main: i64) -> Revision {
        Revision::new(main, 0)
    }

    #[test]
    fn keep_follows_etcd() {
        // put 2, put 4, delete 6, put 8 (new generation), put 10.
        let mut ki = KeyIndex::default();
        ki.put(r(2));
        ki.put(r(4));
        ki.tombstone(r(6));
        ki.put(r(8));
        ki.put(r(10));
        let keep = |at| {
            let mut s = HashSet::new();
            ki.keep(at, &mut s);
            let mut v: Vec<_> = s.into_iter().map(|r| r.main).collect();
            v.sort();
            v
        };
        assert_eq!(keep(1), Vec::<i64>::new());
        assert_eq!(keep(3), vec![2]);
        assert_eq!(keep(5), vec![4]);
        assert_eq!(keep(6), Vec::<i64>::new(), "the tombstone ending a generation is not kept");
        assert_eq!(keep(7), Vec::<i64>::new());
        assert_eq!(keep(9), vec![8]);
        assert_eq!(keep(100), vec![10]);
    }

    #[test]
    fn tombstone_of_unknown_key_is_ignored() {
        let mut ki = KeyIndex::default();
        ki.tombstone(r(3));
        assert!(ki.is_empty());
    }
}
