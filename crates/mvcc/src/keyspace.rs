//! The key space as etcd serves it at a revision: for every user key, the
//! newest revision at or below it, unless that is a delete.

use std::collections::HashMap;

use etcdsnap_bolt::Db;

use crate::error::{MvccError, Result};
use crate::kv::KvRef;
use crate::revision::BucketKey;
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

fn each_entry<'a>(db: &Db<'a>, mut f: impl FnMut(BucketKey, KvRef<'a>) -> Result<bool>) -> Result<()> {
    let Some(b) = db.bucket(&[KEY])? else { return Ok(()) };
    for e in b.cursor() {
        let e = e?;
        let bk = BucketKey::parse(e.key).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
        let kv = KvRef::parse(e.value).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
        if !f(bk, kv)? {
            break;
        }
    }
    Ok(())
}

/// The keys visible at `rev` (0: current), sorted by key, as etcd's Range returns them.
pub fn at_revision<'a>(db: &Db<'a>, rev: i64, sel: &Selection) -> Result<(i64, Vec<Visible<'a>>)> {
    let (compact, current) = bounds(db)?;
    if rev > 0 && rev < compact {
        return Err(MvccError::Compacted { rev, compact });
    }
    if rev > current {
        return Err(MvccError::FutureRev { rev, current });
    }
    let rev = if rev == 0 { current } else { rev };
    let mut latest: HashMap<&'a [u8], Visible<'a>> = HashMap::new();
    each_entry(db, |at, kv| {
        if at.rev.main > rev {
            return Ok(false);
        }
        // Markers (empty values) decode to an empty key, which Range never returns.
        if !kv.key.is_empty() && sel.matches(kv.key) {
            latest.insert(kv.key, Visible { at, kv });
        }
        Ok(true)
    })?;
    let mut out: Vec<Visible<'a>> = latest.into_values().filter(|v| !v.at.tombstone).collect();
    out.sort_unstable_by(|a, b| a.kv.key.cmp(b.kv.key));
    Ok((rev, out))
}

/// Every stored revision of the selected keys, in revision order.
pub fn all_revisions<'a>(db: &Db<'a>, sel: &Selection) -> Result<Vec<Stored<'a>>> {
    let mut out = Vec::new();
    each_entry(db, |at, kv| {
        if sel.matches(kv.key) {
            out.push(Stored { at, kv });
        }
        Ok(true)
    })?;
    Ok(out)
}
