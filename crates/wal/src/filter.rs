//! Which raft entries a dump shows: an index range and entry kinds, in the
//! spirit of `etcd-dump-logs --start-index --entry-type`.
//!
//! A kind is either the entry's raft type (`normal`, `conf`) or what its
//! payload holds ([`Payload::kind`]: `put`, `txn`, `lease_grant`, …), so
//! `normal` selects every normal entry and `put` only the puts among them.

use etcdsnap_proto::raftpb::EntryType;

use crate::entry::{Payload, RawEntry};

/// A kind of raft entry a filter can select.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Every `EntryNormal` entry, whatever its payload.
    Normal,
    /// Every `EntryConfChange` and `EntryConfChangeV2` entry.
    Conf,
    /// A normal entry without data (the leader's no-op after an election).
    Noop,
    /// `InternalRaftRequest.put`.
    Put,
    /// `InternalRaftRequest.delete_range`.
    DeleteRange,
    /// `InternalRaftRequest.txn`.
    Txn,
    /// `InternalRaftRequest.range` (a serializable read through raft).
    Range,
    /// `InternalRaftRequest.compaction`.
    Compaction,
    /// `InternalRaftRequest.lease_grant`.
    LeaseGrant,
    /// `InternalRaftRequest.lease_revoke`.
    LeaseRevoke,
    /// `InternalRaftRequest.lease_checkpoint`.
    LeaseCheckpoint,
    /// `InternalRaftRequest.alarm`.
    Alarm,
    /// Any `InternalRaftRequest.auth_*` or `authenticate` request.
    Auth,
    /// Cluster version, member attributes and downgrade requests.
    Cluster,
    /// A v2 `Request` (3.4's membership attributes and cluster version).
    V2,
    /// Data that decodes as none of the above.
    Unknown,
}

impl EntryKind {
    /// Every kind, in the order `wal dump --type` lists them.
    pub const ALL: [EntryKind; 16] = [
        Self::Normal,
        Self::Conf,
        Self::Noop,
        Self::Put,
        Self::DeleteRange,
        Self::Txn,
        Self::Range,
        Self::Compaction,
        Self::LeaseGrant,
        Self::LeaseRevoke,
        Self::LeaseCheckpoint,
        Self::Alarm,
        Self::Auth,
        Self::Cluster,
        Self::V2,
        Self::Unknown,
    ];

    /// The snake_case name (`delete_range`); payload kinds are [`Payload::kind`]'s names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Conf => "conf",
            Self::Noop => "noop",
            Self::Put => "put",
            Self::DeleteRange => "delete_range",
            Self::Txn => "txn",
            Self::Range => "range",
            Self::Compaction => "compaction",
            Self::LeaseGrant => "lease_grant",
            Self::LeaseRevoke => "lease_revoke",
            Self::LeaseCheckpoint => "lease_checkpoint",
            Self::Alarm => "alarm",
            Self::Auth => "auth",
            Self::Cluster => "cluster",
            Self::V2 => "v2",
            Self::Unknown => "unknown",
        }
    }

    /// The kind named `name`, as [`name`](Self::name) spells it.
    pub fn parse(name: &str) -> Option<EntryKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether `entry`, whose decoded payload is `payload`, is of this kind.
    pub fn matches(self, entry: &RawEntry<'_>, payload: &Payload) -> bool {
        if payload.kind() == self.name() {
            return true;
        }
        let raft_type = EntryType::try_from(entry.entry_type);
        match self {
            Self::Normal => raft_type == Ok(EntryType::EntryNormal),
            Self::Conf => matches!(raft_type, Ok(EntryType::EntryConfChange | EntryType::EntryConfChangeV2)),
            _ => false,
        }
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which entries to keep: an inclusive index range and kinds (none: every kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Entries of any of these kinds; empty keeps every kind.
    pub kinds: Vec<EntryKind>,
    /// Only entries with index ≥ this.
    pub start_index: Option<u64>,
    /// Only entries with index ≤ this.
    pub end_index: Option<u64>,
}

impl EntryFilter {
    /// Whether an entry at `index` is inside the range (checked before the payload is decoded).
    pub fn admits_index(&self, index: u64) -> bool {
        !(self.start_index.is_some_and(|s| index < s) || self.end_index.is_some_and(|e| index > e))
    }

    /// Whether `entry` with its decoded `payload` is of a kind the filter keeps.
    pub fn admits_kind(&self, entry: &RawEntry<'_>, payload: &Payload) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k.matches(entry, payload))
    }

    /// The payload of `entry` when the filter keeps it, decoded only when its index is in range.
    pub fn select(&self, entry: &RawEntry<'_>) -> Option<Payload> {
        if !self.admits_index(entry.index) {
            return None;
        }
        let payload = entry.payload();
        self.admits_kind(entry, &payload).then_some(payload)
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use etcdsnap_proto::etcdserverpb::{InternalRaftRequest, LeaseGrantRequest, PutRequest};
    use etcdsnap_proto::raftpb::ConfChange;
    use etcdsnap_proto::Message;

    use super::*;

    fn entry(entry_type: EntryType, index: u64, data: &[u8]) -> RawEntry<'_> {
        RawEntry { entry_type: entry_type as i32, term: 2, index, data: (!data.is_empty()).then_some(data) }
    }

    fn put() -> Vec<u8> {
        InternalRaftRequest {
            put: Some(PutRequest { key: b"/a".to_vec(), value: b"1".to_vec(), ..Default::default() }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn lease_grant() -> Vec<u8> {
        InternalRaftRequest { lease_grant: Some(LeaseGrantRequest { ttl: 60, id: 7 }), ..Default::default() }
            .encode_to_vec()
    }

    #[test]
    fn names_round_trip_and_match_the_payload_kinds() {
        for k in EntryKind::ALL {
            assert_eq!(EntryKind::parse(k.name()), Some(k));
            assert_eq!(k.to_string(), k.name());
        }
        assert_eq!(EntryKind::parse("Put"), None);
        assert_eq!(EntryKind::parse("conf_v2"), None);
        // Every kind a payload can report is a kind a filter can name.
        let (put, grant) = (put(), lease_grant());
        for (e, want) in [
            (entry(EntryType::EntryNormal, 1, b""), "noop"),
            (entry(EntryType::EntryNormal, 1, &put), "put"),
            (entry(EntryType::EntryNormal, 1, &grant), "lease_grant"),
            (entry(EntryType::EntryConfChange, 1, b""), "conf"),
        ] {
            let p = e.payload();
            assert_eq!(p.kind(), want);
            assert!(EntryKind::parse(p.kind()).is_some());
        }
    }

    #[test]
    fn raft_types_and_payload_kinds_select() {
        let (put, grant) = (put(), lease_grant());
        let cc = ConfChange { id: Some(1), node_id: 9, ..Default::default() }.encode_to_vec();
        let noop = entry(EntryType::EntryNormal, 10, b"");
        let put = entry(EntryType::EntryNormal, 11, &put);
        let grant = entry(EntryType::EntryNormal, 12, &grant);
        let conf = entry(EntryType::EntryConfChange, 13, &cc);
        let conf_v2 = entry(EntryType::EntryConfChangeV2, 14, b"");
        let odd = RawEntry { entry_type: 7, term: 2, index: 15, data: Some(b"x") };
        let all = [noop, put, grant, conf, conf_v2, odd];
        let kept = |kinds: &[EntryKind]| -> Vec<u64> {
            let f = EntryFilter { kinds: kinds.to_vec(), ..Default::default() };
            all.iter().filter(|e| f.select(e).is_some()).map(|e| e.index).collect()
        };
        assert_eq!(kept(&[]), vec![10, 11, 12, 13, 14, 15]);
        assert_eq!(kept(&[EntryKind::Normal]), vec![10, 11, 12]);
        assert_eq!(kept(&[EntryKind::Conf]), vec![13, 14]);
        assert_eq!(kept(&[EntryKind::Put]), vec![11]);
        assert_eq!(kept(&[EntryKind::Noop, EntryKind::LeaseGrant]), vec![10, 12]);
        assert_eq!(kept(&[EntryKind::Unknown]), vec![15]);
        assert_eq!(kept(&[EntryKind::Txn, EntryKind::Auth]), Vec::<u64>::new());
    }

    #[test]
    fn index_range_is_inclusive_and_checked_first() {
        let f = EntryFilter { kinds: Vec::new(), start_index: Some(5), end_index: Some(7) };
        let admitted: Vec<u64> = (3..10).filter(|&i| f.admits_index(i)).collect();
        assert_eq!(admitted, vec![5, 6, 7]);
        assert!(EntryFilter::default().admits_index(0) && EntryFilter::default().admits_index(u64::MAX));
        // Out of range: no payload even for an entry of a kept kind.
        let put = put();
        let f = EntryFilter { kinds: vec![EntryKind::Put], start_index: Some(100), end_index: None };
        assert!(f.select(&entry(EntryType::EntryNormal, 99, &put)).is_none());
        assert_eq!(f.select(&entry(EntryType::EntryNormal, 100, &put)).map(|p| p.kind()), Some("put"));
    }

    #[test]
    fn filters_a_real_wal() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/etcd-3.5.1/member/wal");
        let segments = crate::list_segments(&dir).unwrap();
        let f = EntryFilter { kinds: vec![EntryKind::Put, EntryKind::Conf], start_index: Some(2), end_index: None };
        let (mut all, mut kept, mut puts, mut confs) = (0u64, 0u64, 0u64, 0u64);
        crate::read_wal(&segments, |_, frame| {
            let Some(e) = frame.entry else { return Ok(()) };
            all += 1;
            if let Some(p) = f.select(&e) {
                assert!(e.index >= 2);
                kept += 1;
                match p.kind() {
                    "put" => puts += 1,
                    "conf" => confs += 1,
                    other => panic!("kept a {other} entry at {}", e.index),
                }
            }
            Ok(())
        })
        .unwrap();
        assert!(puts > 0, "the fixture's workload puts keys");
        assert_eq!(kept, puts + confs);
        assert!(kept < all);
    }
}
