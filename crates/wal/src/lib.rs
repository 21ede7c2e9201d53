//! etcd's write-ahead log and `.snap` files, offline: read, verify, dump, repair and rewrite.
//!
//! Layers, as in the rest of etcdsnap: the raw layout ([`record`]: framing and
//! `walpb.Record`; [`entry`]: `raftpb.Entry` and its payload), a reader
//! ([`decoder`] for one segment, [`reader`] across segments with the CRC-32C
//! chain), and writers ([`record::Encoder`], [`rewrite`], [`repair`]).
//! Reading is zero-copy over each segment's bytes and never panics on any input;
//! errors name the segment file, byte offset and raft index where known.
//!
//! Upstream: `server/wal/{decoder,encoder,wal,repair,util}.go` (etcd 3.5),
//! `pkg/crc`, `server/etcdserver/api/snap/snapshotter.go`.

pub mod decoder;
pub mod entry;
pub mod error;
pub mod filter;
pub mod paths;
pub mod reader;
pub mod record;
pub mod repair;
pub mod rewrite;
pub mod segment;
pub mod snapfile;
pub mod verify;
mod wire;

pub use decoder::{Failure, Frame, SegmentDecoder};
pub use entry::{Payload, RawEntry};
pub use error::{CorruptKind, Corruption, Refusal, Result, WalError};
/// The protobuf messages the decoded payloads use.
pub use etcdsnap_proto as proto;
pub use filter::{EntryFilter, EntryKind};
pub use paths::WalPaths;
pub use reader::{read_wal, read_wal_metered, ReadEnd, TornTail};
pub use record::{Encoder, RawRecord};
pub use segment::{list_segments, parse_segment_name, segment_name, Segment};
pub use verify::{verify, verify_with, WalFinding, WalFindingKind, WalReport};
