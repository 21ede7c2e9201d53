//! `raftpb` (etcd's raft `raftpb/raft.proto`, proto2): raft log entries, states and snapshots.
//!
//! In etcd ≤3.6 (gogo marshaler) almost every scalar is `(gogoproto.nullable) = false`
//! and therefore always emitted; those fields use prost's `required` label here.

/// `raftpb.EntryType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum EntryType {
    /// `EntryNormal` = 0: data is empty (leader no-op) or an `InternalRaftRequest`.
    EntryNormal = 0,
    /// `EntryConfChange` = 1: data is a [`ConfChange`].
    EntryConfChange = 1,
    /// `EntryConfChangeV2` = 2: data is a [`ConfChangeV2`].
    EntryConfChangeV2 = 2,
}

/// `raftpb.Entry`: one raft log entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// `Type` (1): [`EntryType`]; always emitted.
    #[prost(enumeration = "EntryType", required, tag = "1")]
    pub r#type: i32,
    /// `Term` (2): always emitted.
    #[prost(uint64, required, tag = "2")]
    pub term: u64,
    /// `Index` (3): always emitted.
    #[prost(uint64, required, tag = "3")]
    pub index: u64,
    /// `Data` (4): emitted when non-nil.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub data: Option<Vec<u8>>,
}

/// `raftpb.SnapshotMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotMetadata {
    /// `conf_state` (1): non-nullable, always emitted.
    #[prost(message, required, tag = "1")]
    pub conf_state: ConfState,
    /// `index` (2): always emitted.
    #[prost(uint64, required, tag = "2")]
    pub index: u64,
    /// `term` (3): always emitted.
    #[prost(uint64, required, tag = "3")]
    pub term: u64,
}

/// `raftpb.Snapshot`: the payload of a `.snap` file (`snappb.snapshot.data`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Snapshot {
    /// `data` (1): the application snapshot (etcd ≤3.6: v2 store JSON); emitted when non-nil.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub data: Option<Vec<u8>>,
    /// `metadata` (2): non-nullable, always emitted.
    #[prost(message, required, tag = "2")]
    pub metadata: SnapshotMetadata,
}

/// `raftpb.MessageType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    /// `MsgHup` = 0.
    MsgHup = 0,
    /// `MsgBeat` = 1.
    MsgBeat = 1,
    /// `MsgProp` = 2.
    MsgProp = 2,
    /// `MsgApp` = 3.
    MsgApp = 3,
    /// `MsgAppResp` = 4.
    MsgAppResp = 4,
    /// `MsgVote` = 5.
    MsgVote = 5,
    /// `MsgVoteResp` = 6.
    MsgVoteResp = 6,
    /// `MsgSnap` = 7.
    MsgSnap = 7,
    /// `MsgHeartbeat` = 8.
    MsgHeartbeat = 8,
    /// `MsgHeartbeatResp` = 9.
    MsgHeartbeatResp = 9,
    /// `MsgUnreachable` = 10.
    MsgUnreachable = 10,
    /// `MsgSnapStatus` = 11.
    MsgSnapStatus = 11,
    /// `MsgCheckQuorum` = 12.
    MsgCheckQuorum = 12,
    /// `MsgTransferLeader` = 13.
    MsgTransferLeader = 13,
    /// `MsgTimeoutNow` = 14.
    MsgTimeoutNow = 14,
    /// `MsgReadIndex` = 15.
    MsgReadIndex = 15,
    /// `MsgReadIndexResp` = 16.
    MsgReadIndexResp = 16,
    /// `MsgPreVote` = 17.
    MsgPreVote = 17,
    /// `MsgPreVoteResp` = 18.
    MsgPreVoteResp = 18,
    /// `MsgStorageAppend` = 19 (raft 3.6+).
    MsgStorageAppend = 19,
    /// `MsgStorageAppendResp` = 20 (raft 3.6+).
    MsgStorageAppendResp = 20,
    /// `MsgStorageApply` = 21 (raft 3.6+).
    MsgStorageApply = 21,
    /// `MsgStorageApplyResp` = 22 (raft 3.6+).
    MsgStorageApplyResp = 22,
    /// `MsgForgetLeader` = 23 (raft 3.6+).
    MsgForgetLeader = 23,
}

/// `raftpb.Message`: a raft peer message (network only, never in the WAL).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// `type` (1): [`MessageType`]; always emitted.
    #[prost(enumeration = "MessageType", required, tag = "1")]
    pub r#type: i32,
    /// `to` (2): always emitted.
    #[prost(uint64, required, tag = "2")]
    pub to: u64,
    /// `from` (3): always emitted.
    #[prost(uint64, required, tag = "3")]
    pub from: u64,
    /// `term` (4): always emitted.
    #[prost(uint64, required, tag = "4")]
    pub term: u64,
    /// `logTerm` (5): always emitted.
    #[prost(uint64, required, tag = "5")]
    pub log_term: u64,
    /// `index` (6): always emitted.
    #[prost(uint64, required, tag = "6")]
    pub index: u64,
    /// `entries` (7).
    #[prost(message, repeated, tag = "7")]
    pub entries: Vec<Entry>,
    /// `commit` (8): always emitted.
    #[prost(uint64, required, tag = "8")]
    pub commit: u64,
    /// `snapshot` (9): always emitted by raft ≤3.5 (non-nullable), nullable in raft 3.6.
    #[prost(message, optional, tag = "9")]
    pub snapshot: Option<Snapshot>,
    /// `reject` (10): always emitted.
    #[prost(bool, required, tag = "10")]
    pub reject: bool,
    /// `rejectHint` (11): always emitted.
    #[prost(uint64, required, tag = "11")]
    pub reject_hint: u64,
    /// `context` (12): emitted when non-nil.
    #[prost(bytes = "vec", optional, tag = "12")]
    pub context: Option<Vec<u8>>,
    /// `vote` (13): raft 3.6+ only (always emitted there), absent before.
    #[prost(uint64, optional, tag = "13")]
    pub vote: Option<u64>,
    /// `responses` (14): raft 3.6+ only.
    #[prost(message, repeated, tag = "14")]
    pub responses: Vec<Message>,
}

/// `raftpb.HardState`: term, vote and commit index, persisted as WAL `stateType` records.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HardState {
    /// `term` (1): always emitted.
    #[prost(uint64, required, tag = "1")]
    pub term: u64,
    /// `vote` (2): always emitted.
    #[prost(uint64, required, tag = "2")]
    pub vote: u64,
    /// `commit` (3): always emitted.
    #[prost(uint64, required, tag = "3")]
    pub commit: u64,
}

/// `raftpb.ConfChangeTransition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConfChangeTransition {
    /// `ConfChangeTransitionAuto` = 0.
    ConfChangeTransitionAuto = 0,
    /// `ConfChangeTransitionJointImplicit` = 1.
    ConfChangeTransitionJointImplicit = 1,
    /// `ConfChangeTransitionJointExplicit` = 2.
    ConfChangeTransitionJointExplicit = 2,
}

/// `raftpb.ConfState`: the cluster configuration.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfState {
    /// `voters` (1): unpacked repeated uint64.
    #[prost(uint64, repeated, packed = "false", tag = "1")]
    pub voters: Vec<u64>,
    /// `learners` (2): unpacked repeated uint64.
    #[prost(uint64, repeated, packed = "false", tag = "2")]
    pub learners: Vec<u64>,
    /// `voters_outgoing` (3): unpacked repeated uint64.
    #[prost(uint64, repeated, packed = "false", tag = "3")]
    pub voters_outgoing: Vec<u64>,
    /// `learners_next` (4): unpacked repeated uint64.
    #[prost(uint64, repeated, packed = "false", tag = "4")]
    pub learners_next: Vec<u64>,
    /// `auto_leave` (5): non-nullable, always emitted.
    #[prost(bool, required, tag = "5")]
    pub auto_leave: bool,
}

/// `raftpb.ConfChangeType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ConfChangeType {
    /// `ConfChangeAddNode` = 0.
    ConfChangeAddNode = 0,
    /// `ConfChangeRemoveNode` = 1.
    ConfChangeRemoveNode = 1,
    /// `ConfChangeUpdateNode` = 2.
    ConfChangeUpdateNode = 2,
    /// `ConfChangeAddLearnerNode` = 3.
    ConfChangeAddLearnerNode = 3,
}

/// `raftpb.ConfChange`: data of an `EntryConfChange` entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfChange {
    /// `id` / Go `ID` (1): emitted by etcd ≤3.6 (gogo, non-nullable) even when
    /// 0, left out by 3.7 (google.golang.org/protobuf, proto2 presence) when
    /// unset; `Some(0)` and `None` keep each form byte for byte.
    #[prost(uint64, optional, tag = "1")]
    pub id: Option<u64>,
    /// `type` (2): [`ConfChangeType`]; always emitted.
    #[prost(enumeration = "ConfChangeType", required, tag = "2")]
    pub r#type: i32,
    /// `node_id` / Go `NodeID` (3): always emitted.
    #[prost(uint64, required, tag = "3")]
    pub node_id: u64,
    /// `context` (4): emitted when non-nil (etcd: member JSON).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub context: Option<Vec<u8>>,
}

/// `raftpb.ConfChangeSingle`: one operation of a [`ConfChangeV2`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfChangeSingle {
    /// `type` (1): [`ConfChangeType`]; always emitted.
    #[prost(enumeration = "ConfChangeType", required, tag = "1")]
    pub r#type: i32,
    /// `node_id` / Go `NodeID` (2): always emitted.
    #[prost(uint64, required, tag = "2")]
    pub node_id: u64,
}

/// `raftpb.ConfChangeV2`: data of an `EntryConfChangeV2` entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfChangeV2 {
    /// `transition` (1): [`ConfChangeTransition`]; always emitted.
    #[prost(enumeration = "ConfChangeTransition", required, tag = "1")]
    pub transition: i32,
    /// `changes` (2).
    #[prost(message, repeated, tag = "2")]
    pub changes: Vec<ConfChangeSingle>,
    /// `context` (3): emitted when non-nil.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub context: Option<Vec<u8>>,
}
