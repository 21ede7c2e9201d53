//! The raft half of a restored member, byte for byte as etcdutl's
//! `saveWALAndSnap` writes it: the first WAL segment (crc, metadata, empty
//! snapshot, one ConfChange entry per member, the HardState, the snapshot
//! record at the last entry) and the `.snap` file holding the v2 store with
//! the members.
//!
//! Up to 3.6 etcd marshals with gogo-protobuf, which writes every
//! non-nullable field even when zero (`ConfChange.ID = 0`,
//! `ConfState.auto_leave = false`); 3.7 marshals with protobuf-go and writes
//! only the fields it sets. Both read either.

use etcdsnap_mvcc::schema::EtcdLine;
use etcdsnap_wal::proto::wire::put_varint;
use etcdsnap_wal::record::{Encoder, ENTRY_TYPE, METADATA_TYPE, SNAPSHOT_TYPE, STATE_TYPE};

use super::cluster::{json_string, Cluster};

/// The term every restored WAL starts at.
pub const TERM: u64 = 1;

/// Size of a WAL segment etcd preallocates (`SegmentSizeBytes`).
pub const SEGMENT_BYTES: u64 = 64 * 1000 * 1000;

/// How a line's marshaller writes zero-valued fields.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zeros {
    /// gogo-protobuf (≤3.6): non-nullable fields always.
    Written,
    /// protobuf-go (3.7): only what was set.
    Omitted,
}

impl Zeros {
    fn of(line: EtcdLine) -> Self {
        if line >= EtcdLine::V3_7 {
            Zeros::Omitted
        } else {
            Zeros::Written
        }
    }
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(out, u64::from((field << 3) | wire));
}

fn varint(out: &mut Vec<u8>, field: u32, v: u64) {
    tag(out, field, 0);
    put_varint(out, v);
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    tag(out, field, 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// `etcdserverpb.Metadata{NodeID, ClusterID}`.
fn metadata(node: u64, cluster: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, 1, node);
    varint(&mut out, 2, cluster);
    out
}

/// `raftpb.ConfChange{Type: ConfChangeAddNode, NodeID, Context}`.
fn conf_change_add(z: Zeros, node: u64, context: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if z == Zeros::Written {
        varint(&mut out, 1, 0); // ID
    }
    varint(&mut out, 2, 0); // ConfChangeAddNode
    varint(&mut out, 3, node);
    bytes(&mut out, 4, context);
    out
}

/// `raftpb.Entry{Type: EntryConfChange, Term, Index, Data}`.
fn conf_change_entry(term: u64, index: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, 1, 1); // EntryConfChange
    varint(&mut out, 2, term);
    varint(&mut out, 3, index);
    bytes(&mut out, 4, data);
    out
}

/// `raftpb.HardState{Term, Vote, Commit}`.
fn hard_state(term: u64, vote: u64, commit: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, 1, term);
    varint(&mut out, 2, vote);
    varint(&mut out, 3, commit);
    out
}

/// `raftpb.ConfState{Voters}`.
fn conf_state(z: Zeros, voters: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in voters {
        varint(&mut out, 1, *v);
    }
    if z == Zeros::Written {
        varint(&mut out, 5, 0); // auto_leave
    }
    out
}

/// `walpb.Snapshot{Index, Term, ConfState}`.
fn wal_snapshot(index: u64, term: u64, conf: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, 1, index);
    varint(&mut out, 2, term);
    if let Some(c) = conf {
        bytes(&mut out, 3, c);
    }
    out
}

/// What every member of a restored cluster starts from.
#[derive(Debug)]
pub struct RaftStart {
    /// The ConfChange entries' last index: the commit index, and the db's `consistent_index`.
    pub commit: u64,
    /// The raft snapshot's `.snap` file name.
    pub snap_name: String,
    /// The `.snap` file's bytes (the same for every member).
    pub snap_file: Vec<u8>,
    entries: Vec<Vec<u8>>,
    state: Vec<u8>,
    snapshot: Vec<u8>,
}

impl RaftStart {
    /// The raft start of `cluster` as the `line`'s restore writes it.
    pub fn new(cluster: &Cluster, line: EtcdLine) -> RaftStart {
        let z = Zeros::of(line);
        let ids = cluster.ids();
        let entries: Vec<Vec<u8>> = (1u64..)
            .zip(&cluster.members)
            .map(|(index, m)| conf_change_entry(TERM, index, &conf_change_add(z, m.id, m.json().as_bytes())))
            .collect();
        let commit = entries.len() as u64;
        let vote = ids.first().copied().unwrap_or(0);
        let conf = conf_state(z, &ids);
        let mut meta = Vec::new();
        bytes(&mut meta, 1, &conf);
        varint(&mut meta, 2, commit);
        varint(&mut meta, 3, TERM);
        let mut raft_snap = Vec::new();
        bytes(&mut raft_snap, 1, v2_store(cluster, line).as_bytes());
        bytes(&mut raft_snap, 2, &meta);
        let mut snap_file = Vec::new();
        varint(&mut snap_file, 1, u64::from(etcdsnap_wal::proto::crc32c::checksum(&raft_snap)));
        bytes(&mut snap_file, 2, &raft_snap);
        RaftStart {
            commit,
            snap_name: format!("{TERM:016x}-{commit:016x}.snap"),
            snap_file,
            entries,
            state: hard_state(TERM, vote, commit),
            // 3.4's walpb.Snapshot has no ConfState (3.5 added it).
            snapshot: wal_snapshot(commit, TERM, (line >= EtcdLine::V3_5).then_some(&conf[..])),
        }
    }

    /// The first WAL segment of the member `node` of `cluster` (unpadded).
    pub fn wal_segment(&self, node: u64, cluster: u64) -> Vec<u8> {
        let mut enc = Encoder::new(0);
        let mut out = Vec::new();
        // wal.Create's empty snapshot: index and term written as zeros by every line.
        let empty_snapshot = wal_snapshot(0, 0, None);
        let metadata = metadata(node, cluster);
        let records: Vec<(i64, &[u8])> = [(METADATA_TYPE, &metadata[..]), (SNAPSHOT_TYPE, &empty_snapshot)]
            .into_iter()
            .chain(self.entries.iter().map(|e| (ENTRY_TYPE, &e[..])))
            .chain([(STATE_TYPE, &self.state[..]), (SNAPSHOT_TYPE, &self.snapshot[..])])
            .collect();
        // Writing into a Vec cannot fail.
        let _ = enc.encode_crc_record(&mut out);
        for (t, d) in records {
            let _ = enc.encode(&mut out, t, Some(d));
        }
        out
    }
}

/// The v2 store (`v2store.Save()`) after the members were added: what the
/// raft snapshot carries and 3.4/3.5 read membership from. Members are added
/// in id order (3.6+ adds them in map order, which is random; any order
/// loads the same).
fn v2_store(cluster: &Cluster, line: EtcdLine) -> String {
    const EXPIRE: &str = "\"ExpireTime\":\"0001-01-01T00:00:00Z\"";
    let node = |path: &str, index: usize, value: &str, children: &str| {
        format!(
            "{{\"Path\":{},\"CreatedIndex\":{index},\"ModifiedIndex\":{index},{EXPIRE},\"Value\":{},\"Children\":{children}}}",
            json_string(path),
            json_string(value)
        )
    };
    let indexed: Vec<(usize, &super::cluster::Member)> = (1usize..).zip(&cluster.members).collect();
    // Go writes map keys sorted as strings.
    let mut by_key: Vec<&(usize, &super::cluster::Member)> = indexed.iter().collect();
    by_key.sort_by_key(|(_, m)| m.id_hex());
    let members: Vec<String> = by_key
        .iter()
        .map(|(i, m)| {
            let dir = format!("/0/members/{}", m.id_hex());
            let attrs = node(&format!("{dir}/raftAttributes"), *i, &m.raft_attributes_json(), "null");
            format!("{}:{}", json_string(&m.id_hex()), node(&dir, *i, "", &format!("{{\"raftAttributes\":{attrs}}}")))
        })
        .collect();
    let n = indexed.len();
    let members_dir = if n == 0 {
        String::new()
    } else {
        format!("\"members\":{}", node("/0/members", 1, "", &format!("{{{}}}", members.join(","))))
    };
    let root = node(
        "/",
        0,
        "",
        &format!("{{\"0\":{},\"1\":{}}}", node("/0", 0, "", &format!("{{{members_dir}}}")), node("/1", 0, "", "{}")),
    );
    let capacity = 1000usize.max(n);
    let mut events: Vec<String> = indexed
        .iter()
        .map(|(i, m)| {
            format!(
                "{{\"action\":\"create\",\"node\":{{\"key\":{},\"value\":{},\"modifiedIndex\":{i},\"createdIndex\":{i}}}}}",
                json_string(&format!("/0/members/{}/raftAttributes", m.id_hex())),
                json_string(&m.raft_attributes_json())
            )
        })
        .collect();
    events.resize(capacity, "null".to_string());
    // 3.6+ first looks for members already stored (verifyNoMembersInStore): one failed get.
    let gets_fail = u8::from(line >= EtcdLine::V3_6);
    format!(
        "{{\"Root\":{root},\"WatcherHub\":{{\"EventHistory\":{{\"Queue\":{{\"Events\":[{}],\"Size\":{n},\"Front\":0,\"Back\":{},\"Capacity\":{capacity}}},\"StartIndex\":{},\"LastIndex\":{n}}}}},\"CurrentIndex\":{n},\"Stats\":{{\"getsSuccess\":0,\"getsFail\":{gets_fail},\"setsSuccess\":0,\"setsFail\":0,\"deleteSuccess\":0,\"deleteFail\":0,\"updateSuccess\":0,\"updateFail\":0,\"createSuccess\":{n},\"createFail\":0,\"compareAndSwapSuccess\":0,\"compareAndSwapFail\":0,\"compareAndDeleteSuccess\":0,\"compareAndDeleteFail\":0,\"expireCount\":0,\"watchers\":0}},\"CurrentVersion\":2}}",
        events.join(","),
        n.checked_rem(capacity).unwrap_or(0),
        usize::from(n > 0),
    )
}
