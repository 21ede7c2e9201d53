//! etcd's backend schema on top of bbolt: the snapshot trailer and whole-file
//! operations on snapshot files (compaction now; status, hashkv, verify and
//! rewrite build on it).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod snapshot;
pub mod trailer;
