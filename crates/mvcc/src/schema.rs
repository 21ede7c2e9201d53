//! etcd's buckets and meta keys, read into typed values.

use etcdsnap_bolt::Db;
use etcdsnap_proto::prost::Message;
use etcdsnap_proto::{authpb, etcdserverpb, leasepb};

use crate::error::{MvccError, Result};
use crate::revision::{BucketKey, Revision};

/// Bucket holding every revision of every key.
pub const KEY: &[u8] = b"key";
/// Bucket of named meta keys.
pub const META: &[u8] = b"meta";
/// Bucket of leases, keyed by 8-byte big-endian lease ID.
pub const LEASE: &[u8] = b"lease";
/// Bucket of alarms (marshaled `AlarmMember` keys).
pub const ALARM: &[u8] = b"alarm";
/// Bucket of cluster-wide settings (`clusterVersion`, `downgrade`).
pub const CLUSTER: &[u8] = b"cluster";
/// Bucket of members (hex id → JSON).
pub const MEMBERS: &[u8] = b"members";
/// Bucket of removed members (hex id → `removed`).
pub const MEMBERS_REMOVED: &[u8] = b"members_removed";
/// Bucket of auth settings (`authEnabled`, `authRevision`).
pub const AUTH: &[u8] = b"auth";
/// Bucket of users (name → `authpb.User`).
pub const AUTH_USERS: &[u8] = b"authUsers";
/// Bucket of roles (name → `authpb.Role`).
pub const AUTH_ROLES: &[u8] = b"authRoles";
/// Every bucket a running etcd 3.4+ creates.
pub const ALL_BUCKETS: [&[u8]; 10] =
    [ALARM, AUTH, AUTH_ROLES, AUTH_USERS, CLUSTER, KEY, LEASE, MEMBERS, MEMBERS_REMOVED, META];

/// Meta key: raft index of the last applied entry (8-byte BE).
pub const CONSISTENT_INDEX: &[u8] = b"consistent_index";
/// Meta key: raft term of that entry (8-byte BE, 3.5+).
pub const TERM: &[u8] = b"term";
/// Meta key: revision of the last scheduled compaction (17-byte revision).
pub const SCHEDULED_COMPACT_REV: &[u8] = b"scheduledCompactRev";
/// Meta key: revision of the last finished compaction (17-byte revision).
pub const FINISHED_COMPACT_REV: &[u8] = b"finishedCompactRev";
/// Meta key: JSON `raftpb.ConfState` (3.5+).
pub const CONF_STATE: &[u8] = b"confState";
/// Cluster key: the cluster version (`3.5.0`, …) the members agreed on.
pub const CLUSTER_VERSION: &[u8] = b"clusterVersion";
/// Meta key: storage version `X.Y.0` (3.6+).
pub const STORAGE_VERSION: &[u8] = b"storageVersion";

/// The etcd version a db was written by, as far as its schema tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageVersion {
    /// No `term` in meta: written by etcd 3.4 or older.
    V3_4,
    /// `term` present, no `storageVersion`: etcd 3.5.
    V3_5,
    /// `storageVersion` present: its value (3.6 writes `3.6.0`).
    Tagged(String),
}

impl StorageVersion {
    /// Short text: `3.4`, `3.5`, or the stored value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::V3_4 => "3.4",
            Self::V3_5 => "3.5",
            Self::Tagged(s) => s,
        }
    }
}

/// An etcd minor line whose offline tools and start-up rules etcdsnap follows.
///
/// The lines differ in what `etcdutl snapshot status` counts as `totalKey`
/// (3.6+: live user keys; older: every entry of every bucket) and prints
/// (3.6+ adds `version`), and in the storage versions their servers accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EtcdLine {
    /// etcd 3.4.x.
    V3_4,
    /// etcd 3.5.x.
    V3_5,
    /// etcd 3.6.x.
    V3_6,
    /// etcd 3.7.x.
    V3_7,
}

impl EtcdLine {
    /// Every line, oldest first.
    pub const ALL: [EtcdLine; 4] = [EtcdLine::V3_4, EtcdLine::V3_5, EtcdLine::V3_6, EtcdLine::V3_7];

    /// `"3.4"` … `"3.7"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V3_4 => "3.4",
            Self::V3_5 => "3.5",
            Self::V3_6 => "3.6",
            Self::V3_7 => "3.7",
        }
    }

    /// Parses `3.6`, `3.6.0`, `v3.6.16`: the major.minor part names the line.
    pub fn parse(s: &str) -> Option<EtcdLine> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts = s.split('.');
        let (major, minor) = (parts.next()?, parts.next()?);
        if major != "3" || parts.clone().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
            return None;
        }
        EtcdLine::ALL.into_iter().find(|l| l.as_str().ends_with(&format!(".{minor}")))
    }

    /// True for 3.6+, whose `snapshot status` counts live user keys as `totalKey`.
    pub fn counts_live_keys(self) -> bool {
        self >= Self::V3_6
    }

    /// The `storageVersion` value this line's server writes (`None`: 3.4 and
    /// 3.5 write none; 3.5 is recognised by `meta/term`).
    pub fn storage_version(self) -> Option<&'static str> {
        match self {
            Self::V3_4 | Self::V3_5 => None,
            Self::V3_6 => Some("3.6.0"),
            Self::V3_7 => Some("3.7.0"),
        }
    }

    /// The `cluster/clusterVersion` value this line's server writes.
    pub fn cluster_version(self) -> &'static str {
        match self {
            Self::V3_4 => "3.4.0",
            Self::V3_5 => "3.5.0",
            Self::V3_6 => "3.6.0",
            Self::V3_7 => "3.7.0",
        }
    }
}

impl std::fmt::Display for EtcdLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StorageVersion {
    /// The line whose server wrote (or last migrated) the db: `storageVersion`'s
    /// major.minor, else 3.5 or 3.4 by `meta/term`. A stored version newer than
    /// every known line maps to the newest known one (its rules are the 3.6+
    /// rules); a value that does not parse is `None`.
    pub fn line(&self) -> Option<EtcdLine> {
        match self {
            Self::V3_4 => Some(EtcdLine::V3_4),
            Self::V3_5 => Some(EtcdLine::V3_5),
            Self::Tagged(s) => EtcdLine::parse(s).or_else(|| {
                let s = s.strip_prefix('v').unwrap_or(s);
                let mut p = s.split('.');
                let (major, minor) = (p.next()?.parse::<u32>().ok()?, p.next()?.parse::<u32>().ok()?);
                (major > 3 || (major == 3 && minor > 7)).then_some(EtcdLine::V3_7)
            }),
        }
    }
}

/// The `meta` bucket, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaInfo {
    /// `consistent_index`.
    pub consistent_index: Option<u64>,
    /// `term` (3.5+).
    pub term: Option<u64>,
    /// `scheduledCompactRev`.
    pub scheduled_compact: Option<Revision>,
    /// `finishedCompactRev`.
    pub finished_compact: Option<Revision>,
    /// `confState` JSON (3.5+).
    pub conf_state: Option<String>,
    /// `storageVersion` (3.6+).
    pub storage_version: Option<String>,
}

impl MetaInfo {
    /// The storage version the keys present imply.
    pub fn version(&self) -> StorageVersion {
        match (&self.storage_version, self.term) {
            (Some(v), _) => StorageVersion::Tagged(v.clone()),
            (None, Some(_)) => StorageVersion::V3_5,
            (None, None) => StorageVersion::V3_4,
        }
    }

    /// The compaction revision a restarted etcd uses (`compactMainRev`): the
    /// scheduled one when it is ahead (etcd resumes it at start), else the finished one.
    pub fn compact_rev(&self) -> i64 {
        let f = self.finished_compact.map_or(0, |r| r.main);
        let s = self.scheduled_compact.map_or(0, |r| r.main);
        f.max(s)
    }
}

fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

fn compact_rev(v: &[u8], key: &[u8]) -> Result<Revision> {
    BucketKey::parse(v).map(|k| k.rev).map_err(|e| MvccError::meta(key, e.to_string()))
}

/// Reads the `meta` bucket (absent bucket: all fields `None`).
pub fn read_meta(db: &Db<'_>) -> Result<MetaInfo> {
    let mut m = MetaInfo::default();
    let Some(b) = db.bucket(&[META])? else { return Ok(m) };
    for e in b.cursor() {
        let e = e?;
        m.absorb(e.key, e.value)?;
    }
    Ok(m)
}

impl MetaInfo {
    /// Takes in one entry of the `meta` bucket (unknown keys are ignored).
    pub fn absorb(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let bad = |what: &str| MvccError::meta(key, what.to_string());
        match key {
            CONSISTENT_INDEX => self.consistent_index = Some(be_u64(value).ok_or_else(|| bad("not 8 bytes"))?),
            TERM => self.term = Some(be_u64(value).ok_or_else(|| bad("not 8 bytes"))?),
            SCHEDULED_COMPACT_REV => self.scheduled_compact = Some(compact_rev(value, key)?),
            FINISHED_COMPACT_REV => self.finished_compact = Some(compact_rev(value, key)?),
            CONF_STATE => self.conf_state = Some(String::from_utf8_lossy(value).into_owned()),
            STORAGE_VERSION => self.storage_version = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
        Ok(())
    }
}

/// The `lease` bucket's records, decoded, in key order.
pub fn read_leases(db: &Db<'_>) -> Result<Vec<leasepb::Lease>> {
    let Some(b) = db.bucket(&[LEASE])? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in b.cursor() {
        let e = e?;
        let lease = leasepb::Lease::decode(e.value).map_err(|err| MvccError::value(LEASE, e.key, err.to_string()))?;
        out.push(lease);
    }
    Ok(out)
}

/// Whether `authEnabled` is set to 1 (etcd reads anything else as disabled).
pub fn auth_enabled(db: &Db<'_>) -> Result<bool> {
    let Some(b) = db.bucket(&[AUTH])? else { return Ok(false) };
    Ok(b.get(b"authEnabled")? == Some(&[1u8][..]))
}

/// Counts the keys of a bucket (0 when absent).
pub fn count(db: &Db<'_>, bucket: &[u8]) -> Result<u64> {
    let Some(b) = db.bucket(&[bucket])? else { return Ok(0) };
    let mut n = 0u64;
    for e in b.cursor() {
        e?;
        n = n.saturating_add(1);
    }
    Ok(n)
}

/// Decodes the alarms (the `alarm` bucket's keys).
pub fn read_alarms(db: &Db<'_>) -> Result<Vec<etcdserverpb::AlarmMember>> {
    let Some(b) = db.bucket(&[ALARM])? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in b.cursor() {
        let e = e?;
        out.push(
            etcdserverpb::AlarmMember::decode(e.key).map_err(|err| MvccError::value(ALARM, e.key, err.to_string()))?,
        );
    }
    Ok(out)
}

/// A member record of the `members` bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// Member id (the key, lowercase hex without padding).
    pub id: u64,
    /// The stored JSON (`membership.Member`: id, peerURLs, isLearner, name, clientURLs).
    pub json: String,
}

fn hex_id(bucket: &[u8], key: &[u8]) -> Result<u64> {
    std::str::from_utf8(key)
        .ok()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| MvccError::value(bucket, key, "member id is not hex".into()))
}

/// The `members` bucket.
pub fn read_members(db: &Db<'_>) -> Result<Vec<MemberRecord>> {
    let Some(b) = db.bucket(&[MEMBERS])? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in b.cursor() {
        let e = e?;
        let json = std::str::from_utf8(e.value)
            .map_err(|_| MvccError::value(MEMBERS, e.key, "member JSON is not UTF-8".into()))?;
        out.push(MemberRecord { id: hex_id(MEMBERS, e.key)?, json: json.to_string() });
    }
    Ok(out)
}

/// Ids in the `members_removed` bucket.
pub fn read_removed_members(db: &Db<'_>) -> Result<Vec<u64>> {
    let Some(b) = db.bucket(&[MEMBERS_REMOVED])? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in b.cursor() {
        out.push(hex_id(MEMBERS_REMOVED, e?.key)?);
    }
    Ok(out)
}

/// The `cluster` bucket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterInfo {
    /// `clusterVersion` (`X.Y.0`).
    pub cluster_version: Option<String>,
    /// `downgrade` JSON (3.5+).
    pub downgrade: Option<String>,
}

/// Reads the `cluster` bucket.
pub fn read_cluster(db: &Db<'_>) -> Result<ClusterInfo> {
    let mut c = ClusterInfo::default();
    let Some(b) = db.bucket(&[CLUSTER])? else { return Ok(c) };
    if let Some(v) = b.get(b"clusterVersion")? {
        c.cluster_version = Some(String::from_utf8_lossy(v).into_owned());
    }
    if let Some(v) = b.get(b"downgrade")? {
        c.downgrade = Some(String::from_utf8_lossy(v).into_owned());
    }
    Ok(c)
}

/// The `authUsers` bucket, decoded.
pub fn read_users(db: &Db<'_>) -> Result<Vec<authpb::User>> {
    let Some(b) = db.bucket(&[AUTH_USERS])? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in b.cursor() {
        let e = e?;
        out.push(authpb::User::decode(e.value).map_err(|err| MvccError::value(AUTH_USERS, e.key, err.to_string()))?);
    }
    Ok(out)
}

/// The `authRoles` bucket, decoded.
pub fn read_roles(db: &Db<'_>) -> Result<Vec<authpb::Role>> {
    let Some(b) = db.bucket(&[AUTH_ROLES])? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in b.cursor() {
        let e = e?;
        out.push(authpb::Role::decode(e.value).map_err(|err| MvccError::value(AUTH_ROLES, e.key, err.to_string()))?);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn meta_errors_name_the_meta_bucket() {
        let e = MvccError::meta(b"k", String::new());
        assert!(matches!(e, MvccError::Corrupt { ref bucket, .. } if bucket == META), "{e:?}");
    }

    #[test]
    fn fixture_buckets_decode() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/etcd-3.5.1/member/snap/db");
        let data = std::fs::read(path).unwrap();
        let db = Db::open(&data).unwrap();
        let members = read_members(&db).unwrap();
        assert_eq!(members.len(), 1);
        assert!(members[0].json.contains("peerURLs"));
        assert!(read_removed_members(&db).unwrap().is_empty());
        assert_eq!(read_cluster(&db).unwrap().cluster_version.as_deref(), Some("3.5.0"));
        let users: Vec<_> = read_users(&db).unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(users, vec![b"root".to_vec(), b"tenant1-user".to_vec()]);
        let roles = read_roles(&db).unwrap();
        let t1 = roles.iter().find(|r| r.name == b"tenant1-rw").unwrap();
        assert_eq!(t1.key_permission[0].key, b"/tenant-1/".to_vec());
        assert_eq!(t1.key_permission[0].range_end, b"/tenant-10".to_vec());
        assert_eq!(read_meta(&db).unwrap().version(), StorageVersion::V3_5);
        assert!(read_alarms(&db).unwrap().is_empty());
        assert_eq!(read_leases(&db).unwrap().len(), 4);
    }
}
