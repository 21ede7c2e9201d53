//! The key space as etcd serves it at a revision: for every user key, the
//! newest revision at or below it, unless that is a delete.
//!
//! A [`KeySpace`] holds memory in proportion to the keys live at the revision,
//! not to the revisions stored: one pass in revision order keeps, per live key,
//! a 32-byte slot (the stored value borrowed from the mapped file, and its
//! revision), found again through a table of slot numbers hashed by key. A
//! delete frees its key's slot for the next new key, so keys deleted for good
//! cost nothing; the table is dropped before the slots are sorted by key.
//! Keys and fields are decoded from the stored value when asked for.
//! [`each_revision`] streams every stored revision without holding any.

use std::cmp::Ordering;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use etcdsnap_bolt::Db;
use hashbrown::HashTable;

use crate::error::{MvccError, Result};
use crate::kv::KvRef;
use crate::revision::{BucketKey, Revision};
use crate::schema::{read_meta, KEY};

/// One key as a Range at some revision returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visible<'a> {
    /// Where it is stored.
    pub at: BucketKey,
    /// The stored `KeyValue`.
    pub kv: KvRef<'a>,
}

/// One stored revision of a key (for `--all-revisions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored<'a> {
    /// Revision and tombstone mark.
    pub at: BucketKey,
    /// The stored `KeyValue` (a tombstone carries only the key; a marker nothing).
    pub kv: KvRef<'a>,
}

/// Selection of keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only keys starting with this (empty: all).
    pub prefix: Vec<u8>,
    /// Only this exact key (overrides `prefix`).
    pub key: Option<Vec<u8>>,
}

impl Selection {
    fn matches(&self, k: &[u8]) -> bool {
        match &self.key {
            Some(key) => k == key.as_slice(),
            None => k.starts_with(&self.prefix),
        }
    }
}

/// Revisions bounding what can be read: (compact revision, current revision).
pub fn bounds(db: &Db<'_>) -> Result<(i64, i64)> {
    let compact = read_meta(db)?.compact_rev();
    let last = match db.bucket(&[KEY])? {
        Some(b) => b.cursor().last_entry()?.map_or(0, |e| BucketKey::lenient_main(e.key)),
        None => 0,
    };
    Ok((compact, last.max(compact)))
}

/// Every entry of the `key` bucket in revision order, decoded, with its raw
/// bucket key and value, until `f` says stop.
fn each_entry<'a>(
    db: &Db<'a>,
    mut f: impl FnMut(BucketKey, KvRef<'a>, &'a [u8], &'a [u8]) -> Result<bool>,
) -> Result<()> {
    let Some(b) = db.bucket(&[KEY])? else { return Ok(()) };
    for e in b.cursor() {
        let e = e?;
        let bk = BucketKey::parse(e.key).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
        let kv = KvRef::parse(e.value).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
        if !f(bk, kv, e.key, e.value)? {
            break;
        }
    }
    Ok(())
}

/// A live key: its stored value (borrowed from the file; the key and fields
/// are decoded from it when asked for) and its revision. A freed slot has an
/// empty value (a live key's never is) and the next free slot in `main`.
#[derive(Debug, Clone, Copy)]
struct Slot<'a> {
    raw: &'a [u8],
    main: i64,
    sub: i64,
}

/// `main` of a free slot that ends the free list.
const NO_FREE: i64 = -1;

impl<'a> Slot<'a> {
    fn key(&self) -> &'a [u8] {
        KvRef::key_of(self.raw)
    }

    fn is_free(&self) -> bool {
        self.raw.is_empty()
    }

    fn visible(&self) -> Visible<'a> {
        Visible {
            at: BucketKey { rev: Revision::new(self.main, self.sub), tombstone: false },
            // The value decoded when the slot was filled; it decodes again unless
            // the mapped file changed since (which the CLI checks and reports).
            kv: KvRef::parse(self.raw).unwrap_or_default(),
        }
    }
}

/// The key of slot `i` (empty for a slot that does not exist).
fn slot_key<'a>(slots: &[Slot<'a>], i: u32) -> &'a [u8] {
    usize::try_from(i).ok().and_then(|i| slots.get(i)).map_or(&[][..], Slot::key)
}

/// The keys visible at a revision, as etcd's Range returns them (sorted by
/// key), from [`at_revision`]. Items are decoded from the mapped file when
/// read: `get` and `iter` are cheap but not free. A value that no longer
/// decodes (the file changed under the map since it was read) reads as an
/// empty `KeyValue` rather than failing.
#[derive(Debug, Clone)]
pub struct KeySpace<'a> {
    rev: i64,
    slots: Vec<Slot<'a>>,
}

impl<'a> KeySpace<'a> {
    /// The revision read at (the current one when 0 was asked for).
    pub fn rev(&self) -> i64 {
        self.rev
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no key is visible.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The `i`th key in key order.
    pub fn get(&self, i: usize) -> Option<Visible<'a>> {
        self.slots.get(i).map(Slot::visible)
    }

    /// The keys in key order.
    pub fn iter(&self) -> Iter<'_, 'a> {
        Iter(self.slots.iter())
    }
}

impl<'s, 'a> IntoIterator for &'s KeySpace<'a> {
    type Item = Visible<'a>;
    type IntoIter = Iter<'s, 'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The keys of a [`KeySpace`] in its order, decoded one by one.
#[derive(Debug, Clone)]
pub struct Iter<'s, 'a>(std::slice::Iter<'s, Slot<'a>>);

impl<'a> Iterator for Iter<'_, 'a> {
    type Item = Visible<'a>;

    fn next(&mut self) -> Option<Visible<'a>> {
        self.0.next().map(Slot::visible)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }

    fn nth(&mut self, n: usize) -> Option<Visible<'a>> {
        self.0.nth(n).map(Slot::visible)
    }
}

impl<'a> DoubleEndedIterator for Iter<'_, 'a> {
    fn next_back(&mut self) -> Option<Visible<'a>> {
        self.0.next_back().map(Slot::visible)
    }
}

impl ExactSizeIterator for Iter<'_, '_> {}

/// The live keys during a pass in revision order: a slot each, found by key
/// through a table of slot numbers (u32: 4 bytes and a control byte an entry,
/// where a map of key slices to decoded values took ~100), and a list of the
/// slots deletes freed, threaded through their `main`.
struct Live<'a> {
    state: RandomState,
    table: HashTable<u32>,
    slots: Vec<Slot<'a>>,
    free: i64,
}

impl Default for Live<'_> {
    fn default() -> Self {
        Self { state: RandomState::new(), table: HashTable::new(), slots: Vec::new(), free: NO_FREE }
    }
}

impl<'a> Live<'a> {
    /// `key` (the key of `slot.raw`) is now `slot`; false when a new key finds
    /// no slot number left.
    fn put(&mut self, key: &[u8], slot: Slot<'a>) -> bool {
        let hash = self.state.hash_one(key);
        let slots = &mut self.slots;
        match self.table.find_entry(hash, |&i| slot_key(slots, i) == key) {
            Ok(entry) => {
                if let Some(s) = usize::try_from(*entry.get()).ok().and_then(|i| slots.get_mut(i)) {
                    *s = slot;
                }
            }
            Err(absent) => {
                let reused = usize::try_from(self.free).ok().and_then(|f| Some((f, slots.get_mut(f)?)));
                let i = match reused {
                    Some((f, s)) => {
                        self.free = s.main;
                        *s = slot;
                        f
                    }
                    None => {
                        slots.push(slot);
                        slots.len().saturating_sub(1)
                    }
                };
                let Ok(i) = u32::try_from(i) else { return false };
                let state = &self.state;
                absent.into_table().insert_unique(hash, i, |&j| state.hash_one(slot_key(slots, j)));
            }
        }
        true
    }

    /// `key` is deleted: its slot goes on the free list. A delete of a key not
    /// live (its put compacted away) changes nothing.
    fn delete(&mut self, key: &[u8]) {
        let hash = self.state.hash_one(key);
        let slots = &mut self.slots;
        if let Ok(entry) = self.table.find_entry(hash, |&i| slot_key(slots, i) == key) {
            let (i, _) = entry.remove();
            if let Some(s) = usize::try_from(i).ok().and_then(|i| slots.get_mut(i)) {
                *s = Slot { raw: &[], main: self.free, sub: 0 };
                self.free = i64::from(i);
            }
        }
    }

    /// The live keys' slots, in no order; the table is gone first.
    fn into_slots(self) -> Vec<Slot<'a>> {
        drop(self.table);
        let mut slots = self.slots;
        slots.retain(|s| !s.is_free());
        slots
    }
}

/// The keys visible at `rev` (0: current), sorted by key, as etcd's Range returns them.
pub fn at_revision<'a>(db: &Db<'a>, rev: i64, sel: &Selection) -> Result<KeySpace<'a>> {
    read(db, rev, |k| sel.matches(k), |a, b| a.cmp(b))
}

/// The keys visible at `rev` (0: current) for which `keep` holds, in the order
/// `order` gives their keys (a total preorder; ties in no particular order).
pub(crate) fn read<'a>(
    db: &Db<'a>,
    rev: i64,
    mut keep: impl FnMut(&[u8]) -> bool,
    mut order: impl FnMut(&[u8], &[u8]) -> Ordering,
) -> Result<KeySpace<'a>> {
    let (compact, current) = bounds(db)?;
    if rev > 0 && rev < compact {
        return Err(MvccError::Compacted { rev, compact });
    }
    if rev > current {
        return Err(MvccError::FutureRev { rev, current });
    }
    let rev = if rev == 0 { current } else { rev };
    let mut live = Live::default();
    each_entry(db, |at, kv, bucket_key, raw| {
        if at.rev.main > rev {
            return Ok(false);
        }
        // Markers (empty values) decode to an empty key, which Range never returns.
        if kv.key.is_empty() || !keep(kv.key) {
            return Ok(true);
        }
        if at.tombstone {
            live.delete(kv.key);
        } else if !live.put(kv.key, Slot { raw, main: at.rev.main, sub: at.rev.sub }) {
            return Err(MvccError::value(
                KEY,
                bucket_key,
                "more than 2^32 live keys: beyond what a key space holds".into(),
            ));
        }
        Ok(true)
    })?;
    let mut slots = live.into_slots();
    slots.sort_unstable_by(|a, b| order(a.key(), b.key()));
    Ok(KeySpace { rev, slots })
}

/// Calls `f` with every stored revision of the selected keys (puts,
/// tombstones, and with an empty selection markers), in revision order, until
/// it returns false or fails. Nothing is held between calls.
pub fn each_revision<'a>(db: &Db<'a>, sel: &Selection, mut f: impl FnMut(Stored<'a>) -> Result<bool>) -> Result<()> {
    each_entry(db, |at, kv, _, _| if sel.matches(kv.key) { f(Stored { at, kv }) } else { Ok(true) })
}

/// Every stored revision of the selected keys, in revision order, collected
/// (memory in proportion to the revisions: prefer [`each_revision`]).
pub fn all_revisions<'a>(db: &Db<'a>, sel: &Selection) -> Result<Vec<Stored<'a>>> {
    let mut out = Vec::new();
    each_revision(db, sel, |s| {
        out.push(s);
        Ok(true)
    })?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Cursor;

    use etcdsnap_bolt::builder::{BuildOptions, Builder};
    use etcdsnap_proto::mvccpb::KeyValue;
    use etcdsnap_proto::Message;
    use proptest::prelude::*;

    use super::*;

    /// A change: put `key` with `value`, or delete it (`None`).
    type Op = (Vec<u8>, Option<Vec<u8>>);

    /// A `key` bucket (and nothing else) holding `txns` from revision 2 on, one
    /// main revision per transaction, as etcd writes them: puts carry the whole
    /// `KeyValue`, deletes a tombstone with the key only.
    fn db_of(txns: &[Vec<Op>]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut b = Builder::new(&mut out, BuildOptions::default()).unwrap();
        b.create_bucket(KEY, 0).unwrap();
        let mut live: BTreeMap<Vec<u8>, (i64, i64)> = BTreeMap::new();
        for (t, ops) in txns.iter().enumerate() {
            let main = t as i64 + 2;
            for (sub, (key, value)) in ops.iter().enumerate() {
                let mut at = Revision::new(main, sub as i64).to_bytes().to_vec();
                let kv = match value {
                    Some(value) => {
                        let (create, version) = live.get(key).map_or((main, 1), |&(c, v)| (c, v + 1));
                        live.insert(key.clone(), (create, version));
                        KeyValue {
                            key: key.clone(),
                            create_revision: create,
                            mod_revision: main,
                            version,
                            value: value.clone(),
                            lease: 0,
                        }
                    }
                    None => {
                        at.push(b't');
                        live.remove(key);
                        KeyValue { key: key.clone(), ..KeyValue::default() }
                    }
                };
                b.put(&at, &kv.encode_to_vec()).unwrap();
            }
        }
        b.close_bucket().unwrap();
        b.finish().unwrap();
        out.into_inner()
    }

    /// The key space at `rev` by replaying `txns` into a map: (key, main, sub, value).
    fn model(txns: &[Vec<Op>], rev: i64, sel: &Selection) -> Vec<(Vec<u8>, i64, i64, Vec<u8>)> {
        let mut m: BTreeMap<Vec<u8>, (i64, i64, Vec<u8>)> = BTreeMap::new();
        for (t, ops) in txns.iter().enumerate().take_while(|(t, _)| *t as i64 + 2 <= rev) {
            for (sub, (key, value)) in ops.iter().enumerate() {
                match value {
                    Some(v) => m.insert(key.clone(), (t as i64 + 2, sub as i64, v.clone())),
                    None => m.remove(key),
                };
            }
        }
        m.into_iter().filter(|(k, _)| sel.matches(k)).map(|(k, (main, sub, v))| (k, main, sub, v)).collect()
    }

    fn ours(db: &Db<'_>, rev: i64, sel: &Selection) -> Vec<(Vec<u8>, i64, i64, Vec<u8>)> {
        let ks = at_revision(db, rev, sel).unwrap();
        assert_eq!(ks.len(), ks.iter().len());
        let got: Vec<_> =
            ks.iter().map(|v| (v.kv.key.to_vec(), v.at.rev.main, v.at.rev.sub, v.kv.value.to_vec())).collect();
        for (i, v) in ks.iter().enumerate() {
            assert_eq!(ks.get(i), Some(v));
            assert!(!v.at.tombstone);
            assert_eq!(v.kv.mod_revision, v.at.rev.main);
        }
        assert_eq!(ks.get(ks.len()), None);
        got
    }

    fn put(k: &str, v: &str) -> Op {
        (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
    }

    fn del(k: &str) -> Op {
        (k.as_bytes().to_vec(), None)
    }

    #[test]
    fn deletes_free_slots_that_new_keys_reuse() {
        let txns = vec![
            vec![put("/a", "1"), put("/b", "1")], // 2
            vec![del("/a")],                      // 3: /a's slot freed
            vec![put("/c", "1")],                 // 4: takes /a's slot
            vec![put("/a", "2"), del("/b")],      // 5: /a back (new slot), /b freed
            vec![put("/d", "1"), put("/e", "1")], // 6: /d takes /b's slot, /e a new one
            vec![del("/c"), del("/zz")],          // 7: /c deleted for good; /zz never lived
            vec![put("/b", "3"), del("/e")],      // 8
            vec![put("/e", "4"), put("/e", "5")], // 9: two puts in one transaction
        ];
        let bytes = db_of(&txns);
        let db = Db::open(&bytes).unwrap();
        let all = Selection::default();
        let only = |k: &str| Selection { prefix: Vec::new(), key: Some(k.as_bytes().to_vec()) };
        for rev in 2..=9 {
            for sel in [all.clone(), only("/a"), only("/c"), Selection { prefix: b"/b".to_vec(), key: None }] {
                assert_eq!(ours(&db, rev, &sel), model(&txns, rev, &sel), "at {rev} with {sel:?}");
            }
        }
        assert_eq!(at_revision(&db, 0, &all).unwrap().rev(), 9);
        let keys = |rev| ours(&db, rev, &all).into_iter().map(|(k, main, sub, _)| (k, main, sub)).collect::<Vec<_>>();
        assert_eq!(keys(4), [(b"/b".to_vec(), 2, 1), (b"/c".to_vec(), 4, 0)]);
        assert_eq!(keys(7), [(b"/a".to_vec(), 5, 0), (b"/d".to_vec(), 6, 0), (b"/e".to_vec(), 6, 1)]);
        assert_eq!(
            keys(9),
            [(b"/a".to_vec(), 5, 0), (b"/b".to_vec(), 8, 0), (b"/d".to_vec(), 6, 0), (b"/e".to_vec(), 9, 1)]
        );
        assert!(matches!(at_revision(&db, 10, &all), Err(MvccError::FutureRev { rev: 10, current: 9 })));
    }

    #[test]
    fn a_new_key_takes_the_slot_a_delete_freed() {
        let values: Vec<Vec<u8>> = ["/a", "/b", "/c", "/d", "/e"]
            .iter()
            .map(|k| KeyValue { key: k.as_bytes().to_vec(), ..KeyValue::default() }.encode_to_vec())
            .collect();
        let slot = |i: usize, main| Slot { raw: &values[i], main, sub: 0 };
        let mut live = Live::default();
        for (i, main) in [(0, 2), (1, 3), (2, 4)] {
            assert!(live.put(KvRef::key_of(&values[i]), slot(i, main)));
        }
        live.delete(b"/b");
        live.delete(b"/a");
        live.delete(b"/never");
        // Freed last, taken first: /d goes where /a was, /e where /b was, /b anew at the end.
        assert!(live.put(b"/d", slot(3, 5)));
        assert!(live.put(b"/e", slot(4, 6)));
        assert!(live.put(b"/c", slot(2, 7)));
        assert!(live.put(b"/b", slot(1, 8)));
        let got: Vec<_> = live.slots.iter().map(|s| (s.key(), s.main)).collect();
        assert_eq!(got, [(&b"/d"[..], 5), (b"/e", 6), (b"/c", 7), (b"/b", 8)]);
        live.delete(b"/c");
        let left: Vec<_> = live.into_slots().iter().map(|s| s.key()).collect();
        assert_eq!(left, [&b"/d"[..], b"/e", b"/b"]);
    }

    #[test]
    fn each_revision_streams_in_revision_order_and_stops() {
        let txns = vec![vec![put("/a", "1"), put("/b", "1")], vec![del("/a")], vec![put("/a", "2")]];
        let bytes = db_of(&txns);
        let db = Db::open(&bytes).unwrap();
        let sel = Selection { prefix: b"/a".to_vec(), key: None };
        let all = all_revisions(&db, &sel).unwrap();
        let seen: Vec<_> = all.iter().map(|s| (s.at.rev.main, s.at.rev.sub, s.at.tombstone)).collect();
        assert_eq!(seen, [(2, 0, false), (3, 0, true), (4, 0, false)]);
        let mut n = 0;
        each_revision(&db, &sel, |_| {
            n += 1;
            Ok(n < 2)
        })
        .unwrap();
        assert_eq!(n, 2);
    }

    fn txns() -> impl Strategy<Value = Vec<Vec<Op>>> {
        // Few keys, so that keys die, come back and hand slots on.
        let key = prop::sample::select(vec!["/a", "/a/b", "/b", "/c", "/c/d", "/e", "/f", "/g"]);
        let op = (key, prop::option::weighted(0.6, "[a-z]{0,3}"))
            .prop_map(|(k, v)| (k.as_bytes().to_vec(), v.map(String::into_bytes)));
        prop::collection::vec(prop::collection::vec(op, 1..4), 1..40)
    }

    proptest! {
        #[test]
        fn agrees_with_a_replay(txns in txns(), prefix in prop::sample::select(vec!["", "/a", "/c/", "/x"])) {
            let bytes = db_of(&txns);
            let db = Db::open(&bytes).unwrap();
            let sel = Selection { prefix: prefix.as_bytes().to_vec(), key: None };
            for rev in 1..=txns.len() as i64 + 1 {
                prop_assert_eq!(ours(&db, rev, &sel), model(&txns, rev, &sel), "at {}", rev);
            }
        }
    }
}
