//! `snappb` (`server/etcdserver/api/snap/snappb/snap.proto`, proto2): the `member/snap/*.snap` files.

/// `snappb.snapshot`: the whole content of a `.snap` file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Snapshot {
    /// `crc` (1): CRC-32C (Castagnoli) of `data`; non-nullable, always emitted.
    #[prost(uint32, required, tag = "1")]
    pub crc: u32,
    /// `data` (2): a marshaled `raftpb.Snapshot`; emitted when non-nil.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub data: Option<Vec<u8>>,
}
