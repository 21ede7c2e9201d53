//! The in-memory key index etcd rebuilds from the `key` bucket at start
//! (`restoreIntoIndex`): per user key, generations of revisions, each ended by
//! a tombstone. It decides what a compaction keeps (`keyIndex.keep`).

use std::collections::{HashMap, HashSet};

use etcdsnap_bolt::Db;

use crate::error::{MvccError, Result};
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

/// What etcd's `keyIndex.keep(at)` decides, in memory that follows the number
/// of keys, not their history: per user key, its latest revision at or below
/// `at` and whether that is a put.
///
/// `keep(at)` keeps, per key, the latest revision ≤ `at` unless it is a
/// tombstone (a tombstone always ends a generation that is not the last one,
/// and `keep` drops those; a generation whose tombstone is ≤ `at` is passed
/// over, which leaves nothing of it ≤ `at`). So a revision is kept exactly when
/// it is its key's latest revision ≤ `at` and a put. Keys are held as a 128-bit
/// hash under two random SipHash keys, so a collision (which would merge two
/// keys' records) is beyond reach even for crafted keys; one record is 48 bytes
/// of table space.
#[derive(Debug)]
pub struct LatestAt {
    at: i64,
    keys: KeyHasher,
    latest: KeyMap<(Revision, bool)>,
}

/// A user key's identity in per-key tables: a 128-bit hash under two random
/// SipHash keys (fresh per table), so no crafted key set can make two keys
/// share a record. Two `u64`s (8-byte aligned: a table entry with a `u32`
/// beside it takes 24 bytes, not the 32 a `u128` would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId([u64; 2]);

impl std::hash::Hash for KeyId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // One random half is hash enough for a table (equality checks both).
        state.write_u64(self.0[0]);
    }
}

/// Makes [`KeyId`]s from keys.
#[derive(Debug, Clone)]
pub struct KeyHasher(std::collections::hash_map::RandomState, std::collections::hash_map::RandomState);

impl KeyHasher {
    /// Fresh random keys.
    pub fn new() -> Self {
        Self(std::collections::hash_map::RandomState::new(), std::collections::hash_map::RandomState::new())
    }

    /// The identity of `key`.
    pub fn hash(&self, key: &[u8]) -> KeyId {
        use std::hash::BuildHasher;
        KeyId([self.0.hash_one(key), self.1.hash_one(key)])
    }
}

/// Hashes a [`KeyId`] as its first half: it is a keyed hash already, so
/// hashing it again would only cost time.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached by KeyId (it writes one u64); fold anything else in.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// A table keyed by [`KeyId`].
pub type KeyMap<V> = HashMap<KeyId, V, std::hash::BuildHasherDefault<IdHasher>>;
/// A set of [`KeyId`]s.
pub type KeySet = HashSet<KeyId, std::hash::BuildHasherDefault<IdHasher>>;

impl Default for KeyHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl LatestAt {
    /// An empty record for revision `at`.
    pub fn new(at: i64) -> Self {
        Self { at, keys: KeyHasher::new(), latest: KeyMap::default() }
    }

    /// Built from every entry of the `key` bucket.
    pub fn build(db: &Db<'_>, at: i64) -> Result<Self> {
        let mut l = Self::new(at);
        let Some(bucket) = db.bucket(&[KEY])? else { return Ok(l) };
        for e in bucket.cursor() {
            let e = e?;
            let bk = BucketKey::parse(e.key).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
            if bk.rev.main > at {
                break; // bucket order is revision order
            }
            let kv = KvRef::parse(e.value).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
            l.add(kv.key, bk);
        }
        Ok(l)
    }

    /// Adds one entry, in bucket order; entries above `at` are ignored.
    pub fn add(&mut self, key: &[u8], bk: BucketKey) {
        if bk.rev.main <= self.at {
            let h = self.keys.hash(key);
            self.latest.insert(h, (bk.rev, !bk.tombstone));
        }
    }

    /// Whether a compaction at `at` keeps revision `rev` of `key` (etcd's `keep`).
    pub fn keeps(&self, key: &[u8], rev: Revision) -> bool {
        self.latest.get(&self.keys.hash(key)).is_some_and(|&(r, put)| put && r == rev)
    }

    /// Whether `keep` would be empty (no key has a put as its latest revision ≤ `at`).
    pub fn keeps_nothing(&self) -> bool {
        !self.latest.values().any(|&(_, put)| put)
    }
}

#[cfg(test)]
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
