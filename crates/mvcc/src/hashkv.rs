//! etcd's `HashKV`: CRC-32C over the `key` bucket as a compaction at the
//! compact revision would leave it, up to a revision.

use etcdsnap_bolt::Db;

use crate::error::{MvccError, Result};
use crate::index::LatestAt;
use crate::revision::{BucketKey, Revision};
use crate::schema::{read_meta, KEY};

/// How a tombstone stored at exactly the compact revision is hashed, and
/// whether the compact revision itself may be hashed.
///
/// etcd v3.5.16 / v3.4.34 and later keep such tombstones on disk when
/// compacting, and skip them when hashing so that old and new members agree
/// (etcd PRs #18274, #18474, #18475). Earlier releases hash them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TombstoneRule {
    /// Skip them, and hash at the compact revision on request: etcd ≥ 3.5.16,
    /// ≥ 3.4.34, 3.6 and 3.7 (the second part seen on 3.5.35, 3.6.16, 3.7.3).
    #[default]
    Skip,
    /// Hash them, and refuse the compact revision itself: etcd ≤ 3.5.15,
    /// ≤ 3.4.33 (both parts seen on 3.4.23 and 3.5.1).
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
    let bucket = db.bucket(&[KEY])?;
    let last = match &bucket {
        Some(b) => b.cursor().last_entry()?.map_or(0, |e| BucketKey::lenient_main(e.key)),
        None => 0,
    };
    // etcd raises the current revision to at least the compact revision (#17780).
    let current = last.max(compact);
    // etcd 3.5.35, 3.6 and 3.7's hashByRev refuse `rev < compactRev`; 3.4.23
    // and 3.5.1 (the releases that also hash the tombstone at the compact
    // revision) refuse `rev <= compactRev`, the compact revision itself.
    if rev > 0 && (rev < compact || (rule == TombstoneRule::Include && rev == compact)) {
        return Err(MvccError::Compacted { rev, compact });
    }
    if rev > current {
        return Err(MvccError::FutureRev { rev, current });
    }
    let rev = if rev == 0 { current } else { rev };
    // etcd's `Keep(rev)`, from one record per key (see LatestAt), then the hash pass.
    let keep = LatestAt::build(db, rev)?;
    let keep_empty = keep.keeps_nothing();
    let mut crc = crc32c::crc32c(KEY);
    if let Some(b) = bucket {
        for e in b.cursor() {
            let e = e?;
            let bk = BucketKey::parse(e.key).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
            let kr = bk.rev;
            if kr >= Revision::new(rev.saturating_add(1), 0) {
                break; // keys are in revision order
            }
            if kr.main <= compact && !keep_empty {
                let kv =
                    crate::kv::KvRef::parse(e.value).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
                if !keep.keeps(kv.key, kr) {
                    continue;
                }
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
