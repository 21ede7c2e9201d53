//! Per-key tables whose memory follows the keys they hold: a record per key
//! in fixed-size chunks, found through a table of 4-byte slot numbers.
//!
//! A `HashMap<KeyId, V>` grows by doubling and, while it does, holds the old
//! and the new table at once: at 600k keys of 56 bytes that is 88 MiB for a
//! moment, for 34 MiB of records. Here only the slot table (4 bytes a bucket
//! and a control byte) doubles; the records sit in chunks of [`CHUNK`] that
//! are never moved, and a removal moves the last record into the hole, so the
//! records stay dense and a deleted key costs nothing.

use hashbrown::HashTable;

/// A user key's identity in per-key tables: a 128-bit hash under two random
/// SipHash keys (fresh per table), so no crafted key set can make two keys
/// share a record. Two `u64`s (8-byte aligned: a record with a `u64` beside it
/// takes 24 bytes, not the 32 a `u128` would). Tables of them:
/// [`KeyTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId([u64; 2]);

impl KeyId {
    /// The half a hash table buckets by (both halves are random keyed hashes).
    pub fn bucket_hash(&self) -> u64 {
        self.0[0]
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

impl Default for KeyHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// Records per chunk.
pub const CHUNK: usize = 4096;

/// A table keyed by [`KeyId`] (already a keyed random hash, so its first half
/// is the bucket hash).
#[derive(Debug, Clone)]
pub struct KeyTable<V> {
    slots: HashTable<u32>,
    chunks: Vec<Vec<(KeyId, V)>>,
    len: usize,
}

impl<V> Default for KeyTable<V> {
    fn default() -> Self {
        Self { slots: HashTable::new(), chunks: Vec::new(), len: 0 }
    }
}

fn place(slot: u32) -> (usize, usize) {
    let s = usize::try_from(slot).unwrap_or(usize::MAX);
    (s / CHUNK, s % CHUNK)
}

fn record<V>(chunks: &[Vec<(KeyId, V)>], slot: u32) -> Option<&(KeyId, V)> {
    let (c, i) = place(slot);
    chunks.get(c)?.get(i)
}

fn hash_of<V>(chunks: &[Vec<(KeyId, V)>], slot: u32) -> u64 {
    record(chunks, slot).map_or(0, |(id, _)| id.bucket_hash())
}

impl<V> KeyTable<V> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `id`.
    pub fn get(&self, id: &KeyId) -> Option<&V> {
        let chunks = &self.chunks;
        let slot = *self.slots.find(id.bucket_hash(), |&s| record(chunks, s).is_some_and(|(k, _)| k == id))?;
        record(chunks, slot).map(|(_, v)| v)
    }

    /// The value of `id`, to change.
    pub fn get_mut(&mut self, id: &KeyId) -> Option<&mut V> {
        let chunks = &self.chunks;
        let slot = *self.slots.find(id.bucket_hash(), |&s| record(chunks, s).is_some_and(|(k, _)| k == id))?;
        let (c, i) = place(slot);
        self.chunks.get_mut(c)?.get_mut(i).map(|(_, v)| v)
    }

    /// Sets the value of `id`; returns the one it replaces. Fails only when
    /// the table would hold more than 2^32 keys.
    pub fn insert(&mut self, id: KeyId, value: V) -> Result<Option<V>, TableFull> {
        if let Some(v) = self.get_mut(&id) {
            return Ok(Some(std::mem::replace(v, value)));
        }
        let slot = u32::try_from(self.len).map_err(|_| TableFull)?;
        let (c, _) = place(slot);
        if self.chunks.len() <= c {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let Some(chunk) = self.chunks.get_mut(c) else { return Err(TableFull) };
        chunk.push((id, value));
        self.len = self.len.saturating_add(1);
        let chunks = &self.chunks;
        self.slots.insert_unique(id.bucket_hash(), slot, |&s| hash_of(chunks, s));
        Ok(None)
    }

    /// Removes `id`; returns its value.
    pub fn remove(&mut self, id: &KeyId) -> Option<V> {
        let chunks = &self.chunks;
        let entry = self.slots.find_entry(id.bucket_hash(), |&s| record(chunks, s).is_some_and(|(k, _)| k == id));
        let slot = entry.ok()?.remove().0;
        let last = u32::try_from(self.len.checked_sub(1)?).ok()?;
        // The last record moves into the hole: repoint its slot entry first.
        if slot != last {
            let chunks = &self.chunks;
            let moved = record(chunks, last).map(|(k, _)| *k)?;
            if let Some(s) = self.slots.find_mut(moved.bucket_hash(), |&s| s == last) {
                *s = slot;
            }
        }
        let (lc, _) = place(last);
        let (id_last, v_last) = self.chunks.get_mut(lc)?.pop()?;
        if self.chunks.last().is_some_and(Vec::is_empty) {
            self.chunks.pop();
        }
        self.len = self.len.saturating_sub(1);
        if slot == last {
            return Some(v_last);
        }
        let (c, i) = place(slot);
        let hole = self.chunks.get_mut(c)?.get_mut(i)?;
        let (_, v) = std::mem::replace(hole, (id_last, v_last));
        Some(v)
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.chunks.iter().flatten().map(|(_, v)| v)
    }

    /// Every key and value, without the slot table, in no particular order.
    pub fn into_entries(self) -> impl Iterator<Item = (KeyId, V)> {
        drop(self.slots);
        self.chunks.into_iter().flatten()
    }

    /// The values, without the keys and the slot table, in no particular order.
    pub fn into_values(self) -> impl Iterator<Item = V> {
        drop(self.slots);
        self.chunks.into_iter().flatten().map(|(_, v)| v)
    }
}

/// A [`KeyTable`] would hold more than 2^32 keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than 2^32 keys in one table")]
pub struct TableFull;

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn follows_a_hash_map_through_inserts_and_removes() {
        let h = KeyHasher::new();
        let mut ours: KeyTable<u64> = KeyTable::new();
        let mut model: HashMap<u32, u64> = HashMap::new();
        // A deterministic mix of inserts, overwrites and removes over 20k keys,
        // crossing several chunks and slot-table growths, removing from the
        // middle and the end.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = (x % 20_000) as u32;
            let id = h.hash(&k.to_be_bytes());
            if x.is_multiple_of(3) {
                assert_eq!(ours.remove(&id), model.remove(&k), "step {step} remove {k}");
            } else {
                assert_eq!(ours.insert(id, step).unwrap(), model.insert(k, step), "step {step} insert {k}");
            }
            assert_eq!(ours.len(), model.len());
        }
        for (k, v) in &model {
            assert_eq!(ours.get(&h.hash(&k.to_be_bytes())), Some(v));
        }
        let mut a: Vec<u64> = ours.values().copied().collect();
        let mut b: Vec<u64> = model.values().copied().collect();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        // Emptied completely, then reused.
        for k in model.keys() {
            assert!(ours.remove(&h.hash(&k.to_be_bytes())).is_some());
        }
        assert!(ours.is_empty() && ours.values().next().is_none());
        assert_eq!(ours.insert(h.hash(b"again"), 7).unwrap(), None);
        assert_eq!(ours.get(&h.hash(b"again")), Some(&7));
    }
}
