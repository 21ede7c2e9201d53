//! `walpb` (`server/storage/wal/walpb/record.proto`, 3.5: `server/wal/walpb`, proto2): WAL records.

use crate::raftpb::ConfState;

/// `walpb.Record`: one framed WAL record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Record {
    /// `type` (1): one of the `*_TYPE` constants; non-nullable, always emitted.
    #[prost(int64, required, tag = "1")]
    pub r#type: i64,
    /// `crc` (2): running CRC-32C of all `data` so far; non-nullable, always emitted.
    #[prost(uint32, required, tag = "2")]
    pub crc: u32,
    /// `data` (3): payload; emitted when non-nil (CRC records have none).
    #[prost(bytes = "vec", optional, tag = "3")]
    pub data: Option<Vec<u8>>,
}

/// `metadataType` = 1: data is the opaque metadata (etcd: `etcdserverpb.Metadata`).
pub const METADATA_TYPE: i64 = 1;
/// `entryType` = 2: data is a `raftpb.Entry`.
pub const ENTRY_TYPE: i64 = 2;
/// `stateType` = 3: data is a `raftpb.HardState`.
pub const STATE_TYPE: i64 = 3;
/// `crcType` = 4: no data; `crc` carries the running CRC of the previous file.
pub const CRC_TYPE: i64 = 4;
/// `snapshotType` = 5: data is a [`Snapshot`].
pub const SNAPSHOT_TYPE: i64 = 5;

/// `walpb.Snapshot`: a snapshot marker in the WAL.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Snapshot {
    /// `index` (1): non-nullable, always emitted.
    #[prost(uint64, required, tag = "1")]
    pub index: u64,
    /// `term` (2): non-nullable, always emitted.
    #[prost(uint64, required, tag = "2")]
    pub term: u64,
    /// `conf_state` (3): populated since 3.5; absent in older WALs.
    #[prost(message, optional, tag = "3")]
    pub conf_state: Option<ConfState>,
}
