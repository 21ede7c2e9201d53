//! etcd's protobuf messages as hand-written [`prost`] derive structs.
//!
//! One module per upstream protobuf package. Field numbers, wire types and
//! field *emission* match what etcd 3.4 / 3.5 / 3.6 (gogo-protobuf marshalers)
//! actually write, so that decoding and re-encoding a record read from an etcd
//! data directory reproduces the original bytes:
//!
//! * proto3 packages (`mvccpb`, `authpb`, `leasepb`, `membershippb`, the
//!   `rpc.proto` / `raft_internal.proto` part of `etcdserverpb`) omit zero
//!   scalars and pack repeated scalars, like prost's defaults.
//! * proto2 packages (`raftpb`, `walpb`, `snappb`, `etcdserverpb.Metadata` and
//!   the v2 `etcdserverpb.Request`) mark most scalars
//!   `(gogoproto.nullable) = false`, which gogo *always* emits, even when zero.
//!   Those are modelled with prost's `required` label. Nullable proto2 fields
//!   (`optional bytes`, nullable bools) are `Option<_>` so that "absent" and
//!   "present but empty" stay distinguishable. Repeated proto2 scalars are
//!   unpacked (one tag per element).
//!
//! Enum-typed fields are stored as `i32` (prost convention); use the enum's
//! `try_from` / the generated getters to convert.
//!
//! [`wire`] is the one panic-free cursor over the wire format for the
//! decoders that must not copy (stored `KeyValue`s, WAL records, Kubernetes
//! object metadata).

pub mod authpb;
pub mod crc32c;
pub mod etcdserverpb;
pub mod leasepb;
pub mod membershippb;
pub mod mvccpb;
pub mod raftpb;
pub mod snappb;
pub mod walpb;
pub mod wire;

pub use prost;
pub use prost::Message;
