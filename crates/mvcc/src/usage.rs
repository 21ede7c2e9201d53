//! What fills a database: the `key` bucket's bytes grouped by key prefix, the
//! live key space apart from the history (older revisions and tombstones)
//! that only a compaction frees. The bytes are the stored entries' (revision
//! key and value), which is what the backend quota counts, less page overhead.

use std::collections::HashMap;

use etcdsnap_bolt::Db;

use crate::error::{MvccError, Result};
use crate::kv::KvRef;
use crate::revision::BucketKey;
use crate::schema::KEY;

/// The usage of one key prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixUsage {
    /// The prefix (its first `depth` `/`-separated segments); empty for revision markers.
    pub prefix: Vec<u8>,
    /// Keys alive at the latest revision.
    pub live_keys: u64,
    /// Bytes of their latest revisions.
    pub live_bytes: u64,
    /// Stored revisions (puts and tombstones).
    pub revisions: u64,
    /// Bytes of every stored revision.
    pub bytes: u64,
}

/// The first `depth` segments of `key`, a segment ending at each `/` (the
/// leading `/` of etcd keys opens the first): `/tenant-1/registry/pods/a` at
/// depth 2 is `/tenant-1/registry/`; a key with fewer segments is itself.
pub fn prefix_of(key: &[u8], depth: usize) -> &[u8] {
    let skip = usize::from(key.first() == Some(&b'/'));
    let mut seen = 0;
    for (i, &b) in key.iter().enumerate().skip(skip) {
        if b == b'/' {
            seen += 1;
            if seen == depth {
                return key.get(..=i).unwrap_or(key);
            }
        }
    }
    key
}

/// Usage by prefix of `depth` segments, largest `bytes` first.
pub fn usage(db: &Db<'_>, depth: usize) -> Result<Vec<PrefixUsage>> {
    let mut by: HashMap<Vec<u8>, PrefixUsage> = HashMap::new();
    // Latest entry of each key: (its size, whether it is a tombstone).
    let mut latest: HashMap<&[u8], (u64, bool)> = HashMap::new();
    let Some(b) = db.bucket(&[KEY])? else { return Ok(Vec::new()) };
    for e in b.cursor() {
        let e = e?;
        let bk = BucketKey::parse(e.key).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
        let kv = KvRef::parse(e.value).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
        let size = (e.key.len() + e.value.len()) as u64;
        let u = by.entry(prefix_of(kv.key, depth).to_vec()).or_default();
        u.revisions += 1;
        u.bytes += size;
        if !kv.key.is_empty() {
            latest.insert(kv.key, (size, bk.tombstone));
        }
    }
    for (key, (size, tombstone)) in latest {
        if tombstone {
            continue;
        }
        let u = by.entry(prefix_of(key, depth).to_vec()).or_default();
        u.live_keys += 1;
        u.live_bytes += size;
    }
    let mut out: Vec<PrefixUsage> = by.into_iter().map(|(prefix, u)| PrefixUsage { prefix, ..u }).collect();
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.prefix.cmp(&b.prefix)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_by_segments() {
        assert_eq!(prefix_of(b"/tenant-1/registry/pods/a", 1), b"/tenant-1/");
        assert_eq!(prefix_of(b"/tenant-1/registry/pods/a", 2), b"/tenant-1/registry/");
        assert_eq!(prefix_of(b"/a", 2), b"/a");
        assert_eq!(prefix_of(b"compact_rev_key", 1), b"compact_rev_key");
        assert_eq!(prefix_of(b"a/b/c", 1), b"a/");
        assert_eq!(prefix_of(b"", 1), b"");
    }
}
