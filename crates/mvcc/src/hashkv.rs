//! etcd's `HashKV`: CRC-32C over the `key` bucket as a compaction at the
//! compact revision would leave it, up to a revision.

use etcdsnap_bolt::Db;

use crate::error::{MvccError, Result};
use crate::index::Index;
use crate::revision::{BucketKey, Revision};
use crate::schema::{read_meta, KEY};

/// How a tombstone stored at exactly the compact revision is hashed.
///
/// etcd v3.5.16 / v3.4.34 and later keep such tombstones on disk when
/// compacting, and skip them when hashing so that old and new members agree
/// (etcd PRs #18274, #18474, #18475). Earlier releases hash them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TombstoneRule {
    /// Skip them: etcd ≥ 3.5.16, ≥ 3.4.34, and 3.6.
    #[default]
    Skip,
    /// Hash them: etcd ≤ 3.5.15, ≤ 3.4.33.
    Include,
}

/// etcd's `KeyValueHash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyValueHash {
    /// The hash (`hash`).
    pub hash: u32,
    /// The compact revision in effect (`compact_revision`).
    pub compact_revision: i64,
    /// The revision hashed up to (`hash_revision`).
    pub revision: i64,
    /// The current revision of the store (`header.revision`).
    pub current_revision: i64,
}

/// Computes `HashKV` at `rev` (0: the current revision) as an etcd started on
/// this file would answer it.
pub fn hash_kv(db: &Db<'_>, rev: i64, rule: TombstoneRule) -> Result<KeyValueHash> {
    let meta = read_meta(db)?;
    let compact = meta.compact_rev();
    let index = Index::build(db)?;
    let bucket = db.bucket(&[KEY])?;
    let last = match &bucket {
        Some(b) => b.cursor().last_entry()?.map_or(0, |e| BucketKey::lenient_main(e.key)),
        None => 0,
    };
    // etcd raises the current revision to at least the compact revision (#17780).
    let current = last.max(compact);
    // etcd's hashByRev refuses `rev <= compactRev` (Range refuses only `rev < compactRev`):
    // the compact revision itself cannot be hashed.
    if rev > 0 && rev <= compact {
        return Err(MvccError::Compacted { rev, compact });
    }
    if rev > current {
        return Err(MvccError::FutureRev { rev, current });
    }
    let rev = if rev == 0 { current } else { rev };
    let keep = index.keep(rev);
    let mut crc = crc32c::crc32c(KEY);
    if let Some(b) = bucket {
        for e in b.cursor() {
            let e = e?;
            let bk = BucketKey::parse(e.key).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
            let kr = bk.rev;
            if kr >= Revision::new(rev.saturating_add(1), 0) {
                break; // keys are in revision order
            }
            // `compact` comes from the file: saturate rather than overflow.
            if kr < Revision::new(compact.saturating_add(1), 0) && !keep.is_empty() && !keep.contains(&kr) {
                continue;
            }
            if rule == TombstoneRule::Skip && kr.main == compact && bk.tombstone {
                continue;
            }
            crc = crc32c::crc32c_append(crc, e.key);
            crc = crc32c::crc32c_append(crc, e.value);
        }
    }
    Ok(KeyValueHash { hash: crc, compact_revision: compact, revision: rev, current_revision: current })
}
