//! `snapshot status`: etcdutl's figures (hash, revision, totalKey, totalSize)
//! computed the way etcdutl computes them, plus what an operator also wants to know.

use std::collections::HashSet;

use etcdsnap_bolt::Db;

use crate::error::{MvccError, Result};
use crate::kv::KvRef;
use crate::revision::BucketKey;
use crate::schema::{self, MetaInfo, StorageVersion, KEY};

/// Figures of a db, etcdutl's first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// etcdutl `hash`: CRC-32C over every top-level bucket name and every key and value in it.
    pub hash: u32,
    /// etcdutl `revision`: main revision of the last key of the `key` bucket.
    pub revision: i64,
    /// etcdutl ≤3.5 `totalKey`: every key/value in every bucket.
    pub total_key: u64,
    /// etcdutl 3.6+ `totalKey`: live user keys (put adds, tombstone removes).
    pub total_key_v36: u64,
    /// etcdutl `totalSize`: `pgid × pageSize`.
    pub total_size: u64,
    /// bbolt page size.
    pub page_size: usize,
    /// The `meta` bucket.
    pub meta: MetaInfo,
    /// Entries in the `key` bucket (every stored revision).
    pub revisions: u64,
    /// Of those, tombstones.
    pub tombstones: u64,
    /// Entries with an empty value (revision markers such as etcdutl's bump).
    pub markers: u64,
    /// Live keys at the latest revision (same as `total_key_v36` minus markers).
    pub live_keys: u64,
    /// Lease records.
    pub leases: u64,
    /// Members in the `members` bucket.
    pub members: u64,
    /// Whether auth is enabled.
    pub auth_enabled: bool,
}

impl Status {
    /// The storage version the meta keys imply.
    pub fn storage_version(&self) -> StorageVersion {
        self.meta.version()
    }
}

/// Computes [`Status`] in one pass over the file (plus the small buckets).
pub fn status(db: &Db<'_>) -> Result<Status> {
    let mut crc = 0u32;
    let mut total_key = 0u64;
    let (mut revision, mut revisions, mut tombstones, mut markers) = (0i64, 0u64, 0u64, 0u64);
    let mut live: HashSet<&[u8]> = HashSet::new();
    let root = db.root()?;
    for top in root.cursor() {
        let top = top?;
        crc = crc32c::crc32c_append(crc, top.key);
        if !top.is_bucket() {
            // etcdutl fails on a top-level key that is not a bucket ("cannot get hash of bucket").
            return Err(MvccError::value(b"", top.key, "top-level key is not a bucket".into()));
        }
        let bucket = root.child(top)?;
        let is_key = top.key == KEY;
        for e in bucket.cursor() {
            let e = e?;
            crc = crc32c::crc32c_append(crc, e.key);
            // A nested bucket's value reads as nil in Go's ForEach.
            if !e.is_bucket() {
                crc = crc32c::crc32c_append(crc, e.value);
            }
            total_key = total_key.saturating_add(1);
            if is_key {
                revision = BucketKey::lenient_main(e.key);
                revisions = revisions.saturating_add(1);
                let tomb = BucketKey::parse(e.key).map(|k| k.tombstone).unwrap_or(false);
                if e.value.is_empty() {
                    markers = markers.saturating_add(1);
                }
                let kv = KvRef::parse(e.value).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
                if tomb {
                    tombstones = tombstones.saturating_add(1);
                    live.remove(kv.key);
                } else {
                    live.insert(kv.key);
                }
            }
        }
    }
    let total_key_v36 = live.len() as u64;
    let live_keys = total_key_v36.saturating_sub(u64::from(live.contains(&b""[..])));
    Ok(Status {
        hash: crc,
        revision,
        total_key,
        total_key_v36,
        total_size: db.hwm().saturating_mul(db.page_size() as u64),
        page_size: db.page_size(),
        meta: schema::read_meta(db)?,
        revisions,
        tombstones,
        markers,
        live_keys,
        leases: schema::count(db, schema::LEASE)?,
        members: schema::count(db, schema::MEMBERS)?,
        auth_enabled: schema::auth_enabled(db)?,
    })
}
