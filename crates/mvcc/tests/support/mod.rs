//! Helpers shared by the mvcc integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use etcdsnap_bolt::Db;

/// A bucket's entries in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Every top-level bucket: name → (sequence, entries).
pub fn all_entries(db: &Db<'_>) -> BTreeMap<Vec<u8>, (u64, Entries)> {
    let root = db.root().unwrap();
    let mut out = BTreeMap::new();
    for top in root.cursor() {
        let top = top.unwrap();
        let b = root.child(top).unwrap();
        let entries = b.cursor().map(|e| e.unwrap()).map(|e| (e.key.to_vec(), e.value.to_vec())).collect();
        out.insert(top.key.to_vec(), (b.sequence(), entries));
    }
    out
}
