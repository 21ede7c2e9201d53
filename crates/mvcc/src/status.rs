//! `snapshot status`: etcdutl's figures (hash, revision, totalKey, totalSize)
//! computed the way etcdutl computes them, plus what an operator also wants to know.

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

/// Slices of the `key` bucket [`status`] walks side by side (three measured
/// no faster than two on two cores: the walk is CPU-bound, beside the check).
const STATUS_PARTS: usize = 2;

/// Computes [`Status`] in one pass over the file: the later slices of the
/// `key` bucket (by the root's children) on other threads, their CRCs and
/// per-key outcomes joined in order, so the figures are those of one walk.
pub fn status(db: &Db<'_>) -> Result<Status> {
    let mut o = StatusObserver::default();
    let root = db.root()?;
    let parts = match db.bucket(&[KEY])? {
        Some(b) => b.split_cursors(STATUS_PARTS)?,
        None => Vec::new(),
    };
    let mut parts = parts.into_iter();
    let mut first = parts.next();
    std::thread::scope(|s| {
        let mut rest: Vec<_> = parts
            .map(|c| {
                let mut slice = StatusObserver::key_slice(o.keys.clone());
                s.spawn(move || slice.walk(c).map(|()| slice))
            })
            .collect();
        for top in root.cursor() {
            let top = top?;
            if !top.is_bucket() {
                // etcdutl fails on a top-level key that is not a bucket ("cannot get hash of bucket").
                return Err(MvccError::value(b"", top.key, "top-level key is not a bucket".into()));
            }
            o.open_bucket(top.key);
            let bucket = root.child(top)?;
            let cursor = match (top.key == KEY).then(|| first.take()).flatten() {
                Some(c) => c,
                None => bucket.cursor(),
            };
            o.walk(cursor)?;
            if top.key == KEY {
                for h in rest.drain(..) {
                    let part = h.join().map_err(|_| MvccError::WorkerPanicked("status"))??;
                    o.absorb(part)?;
                }
            }
            o.close_bucket();
        }
        Ok(())
    })?;
    Ok(o.finish(db.hwm().saturating_mul(db.page_size() as u64), db.page_size()))
}

/// What an observer keeps per user key of the `key` bucket.
#[derive(Debug)]
enum PerKey {
    /// Nothing: the caller counts live keys itself.
    Untracked,
    /// The live keys: a put adds its key, a tombstone removes it.
    Live(crate::keytable::KeyTable<()>),
    /// For a slice walked elsewhere: whether each key's last entry in the
    /// slice is a put (a tombstone must remove the key from the live keys of
    /// what came before).
    Last(crate::keytable::KeyTable<bool>),
}

/// Which top-level bucket entries belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Top {
    #[default]
    Other,
    Key,
    Meta,
    Lease,
    Members,
    Auth,
}

/// [`Status`] from the buckets and entries of a db as they are walked or
/// written, in order: `open_bucket` (a top-level bucket, or a bucket nested in
/// one), `put`, `close_bucket`. What a nested bucket holds is not counted, as
/// etcdutl's `ForEach` over the top-level buckets does not see it. Memory: a
/// 16-byte identity and a 4-byte slot per live key.
#[derive(Debug)]
pub struct StatusObserver {
    /// What is kept per user key.
    per_key: PerKey,
    /// Whether the `key` bucket's share of the hash comes from the caller
    /// ([`key_bucket_crc`](Self::key_bucket_crc)), who hashes it anyway.
    key_crc_given: bool,
    /// The hash before the `key` bucket's name, while its share is awaited.
    crc_before_key: Option<u32>,
    crc: u32,
    /// Bytes hashed into `crc`.
    len: u64,
    total_key: u64,
    revision: i64,
    revisions: u64,
    tombstones: u64,
    markers: u64,
    keys: crate::keytable::KeyHasher,
    marker_live: bool,
    leases: u64,
    members: u64,
    auth_enabled: bool,
    meta: MetaInfo,
    depth: usize,
    top: Top,
}

impl Default for StatusObserver {
    fn default() -> Self {
        Self {
            per_key: PerKey::Live(crate::keytable::KeyTable::new()),
            key_crc_given: false,
            crc_before_key: None,
            crc: 0,
            len: 0,
            total_key: 0,
            revision: 0,
            revisions: 0,
            tombstones: 0,
            markers: 0,
            keys: crate::keytable::KeyHasher::new(),
            marker_live: false,
            leases: 0,
            members: 0,
            auth_enabled: false,
            meta: MetaInfo::default(),
            depth: 0,
            top: Top::Other,
        }
    }
}

impl StatusObserver {
    /// An observer that leaves the live-key count to the caller
    /// ([`finish_with_live`](Self::finish_with_live)), who keeps per-key state anyway.
    pub fn without_live_keys() -> Self {
        Self { per_key: PerKey::Untracked, ..Self::default() }
    }

    /// An observer of a slice of the `key` bucket (inside it, from a CRC of
    /// zero), for [`absorb`](Self::absorb) into the observer of what came
    /// before it; `keys` must be that observer's.
    fn key_slice(keys: crate::keytable::KeyHasher) -> Self {
        Self {
            per_key: PerKey::Last(crate::keytable::KeyTable::new()),
            keys,
            depth: 1,
            top: Top::Key,
            ..Self::default()
        }
    }

    /// The entries of `cursor`, in the open bucket: nested buckets by name.
    fn walk(&mut self, cursor: etcdsnap_bolt::Cursor<'_>) -> Result<()> {
        for e in cursor {
            let e = e?;
            if e.is_bucket() {
                self.open_bucket(e.key);
                self.close_bucket();
            } else {
                self.put(e.key, e.value)?;
            }
        }
        Ok(())
    }

    /// The same observer, but the `key` bucket (its name, entries and nested
    /// bucket names) is left out of the hash until the caller gives its CRC
    /// and length with [`key_bucket_crc`](Self::key_bucket_crc) — as
    /// [`KvHasher::stream_crc`](crate::hashkv::KvHasher::stream_crc) has them.
    pub fn key_crc_given(self) -> Self {
        Self { key_crc_given: true, ..self }
    }

    /// The `key` bucket's share of the hash, for an observer made with
    /// [`key_crc_given`](Self::key_crc_given): CRC-32C and length of its
    /// name, entries and nested bucket names in order. Call it once the
    /// bucket closed, before the next bucket opens.
    pub fn key_bucket_crc(&mut self, crc: u32, len: u64) {
        if let Some(before) = self.crc_before_key.take() {
            self.crc = etcdsnap_proto::crc32c::combine(before, crc, len);
        }
    }

    /// Whether the open top-level bucket's bytes are hashed by the caller.
    fn hashed_outside(&self) -> bool {
        self.key_crc_given && self.top == Top::Key
    }

    /// A bucket opens: top-level when none is open, else nested in the open one.
    pub fn open_bucket(&mut self, name: &[u8]) {
        match self.depth {
            0 => {
                self.top = match name {
                    KEY => Top::Key,
                    schema::META => Top::Meta,
                    schema::LEASE => Top::Lease,
                    schema::MEMBERS => Top::Members,
                    schema::AUTH => Top::Auth,
                    _ => Top::Other,
                };
                if self.hashed_outside() {
                    self.crc_before_key = Some(self.crc);
                } else {
                    self.crc = etcdsnap_proto::crc32c::append(self.crc, name);
                }
            }
            // A nested bucket's value reads as nil in Go's ForEach.
            1 => self.count(name, None),
            _ => {}
        }
        self.depth = self.depth.saturating_add(1);
    }

    /// The innermost open bucket closes.
    pub fn close_bucket(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn count(&mut self, key: &[u8], value: Option<&[u8]>) {
        if !self.hashed_outside() {
            self.crc = etcdsnap_proto::crc32c::append(self.crc, key);
            self.len = self.len.saturating_add(key.len() as u64);
            if let Some(v) = value {
                self.crc = etcdsnap_proto::crc32c::append(self.crc, v);
                self.len = self.len.saturating_add(v.len() as u64);
            }
        }
        self.total_key = self.total_key.saturating_add(1);
    }

    /// An entry of the innermost open bucket.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if self.depth != 1 {
            return Ok(());
        }
        self.count(key, Some(value));
        match self.top {
            Top::Key => {
                self.revision = BucketKey::lenient_main(key);
                self.revisions = self.revisions.saturating_add(1);
                let tomb = BucketKey::parse(key).map(|k| k.tombstone).unwrap_or(false);
                if value.is_empty() {
                    self.markers = self.markers.saturating_add(1);
                }
                self.tombstones = self.tombstones.saturating_add(u64::from(tomb));
                if matches!(self.per_key, PerKey::Untracked) {
                    return Ok(());
                }
                let kv = KvRef::parse(value).map_err(|err| MvccError::value(KEY, key, err.to_string()))?;
                let id = self.keys.hash(kv.key);
                if kv.key.is_empty() {
                    self.marker_live = !tomb;
                }
                self.key_outcome(id, !tomb).map_err(|e| MvccError::value(KEY, key, e.to_string()))?;
            }
            Top::Meta => self.meta.absorb(key, value)?,
            Top::Lease => self.leases = self.leases.saturating_add(1),
            Top::Members => self.members = self.members.saturating_add(1),
            Top::Auth if key == b"authEnabled" => self.auth_enabled = value == [1u8],
            Top::Auth | Top::Other => {}
        }
        Ok(())
    }

    /// A key's latest entry so far is a put (`true`) or a tombstone.
    fn key_outcome(&mut self, id: crate::keytable::KeyId, put: bool) -> Result<(), crate::keytable::TableFull> {
        match &mut self.per_key {
            PerKey::Untracked => {}
            PerKey::Live(live) if put => {
                live.insert(id, ())?;
            }
            PerKey::Live(live) => {
                live.remove(&id);
            }
            PerKey::Last(last) => {
                last.insert(id, put)?;
            }
        }
        Ok(())
    }

    /// Takes in a slice of the `key` bucket walked elsewhere
    /// ([`key_slice`](Self::key_slice)), as if its entries had been put here now.
    fn absorb(&mut self, part: StatusObserver) -> Result<()> {
        self.crc = etcdsnap_proto::crc32c::combine(self.crc, part.crc, part.len);
        self.len = self.len.saturating_add(part.len);
        self.total_key = self.total_key.saturating_add(part.total_key);
        if part.revisions > 0 {
            self.revision = part.revision;
        }
        self.revisions = self.revisions.saturating_add(part.revisions);
        self.tombstones = self.tombstones.saturating_add(part.tombstones);
        self.markers = self.markers.saturating_add(part.markers);
        let PerKey::Last(last) = part.per_key else { return Ok(()) };
        if let Some(&put) = last.get(&self.keys.hash(b"")) {
            self.marker_live = put;
        }
        for (id, put) in last.into_entries() {
            self.key_outcome(id, put).map_err(|e| MvccError::value(KEY, b"", e.to_string()))?;
        }
        Ok(())
    }

    /// The figures, for a file of `total_size` bytes in use (`pgid × pageSize`).
    pub fn finish(self, total_size: u64, page_size: usize) -> Status {
        let live = match &self.per_key {
            PerKey::Live(live) => live.len() as u64,
            PerKey::Last(last) => last.values().filter(|&&put| put).count() as u64,
            PerKey::Untracked => 0,
        };
        let marker = self.marker_live;
        self.finish_with_live(total_size, page_size, live, marker)
    }

    /// The figures, with the live keys (the empty key included) counted by
    /// the caller, and whether the empty key is live.
    pub fn finish_with_live(self, total_size: u64, page_size: usize, live: u64, marker_live: bool) -> Status {
        let total_key_v36 = live;
        Status {
            hash: self.crc,
            revision: self.revision,
            total_key: self.total_key,
            total_key_v36,
            total_size,
            page_size,
            meta: self.meta,
            revisions: self.revisions,
            tombstones: self.tombstones,
            markers: self.markers,
            live_keys: total_key_v36.saturating_sub(u64::from(marker_live)),
            leases: self.leases,
            members: self.members,
            auth_enabled: self.auth_enabled,
        }
    }
}
