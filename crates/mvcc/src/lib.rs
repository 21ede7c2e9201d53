//! etcd's backend schema on top of bbolt: the snapshot trailer, revision keys,
//! typed buckets, `snapshot status` and `HashKV` figures identical to etcd's,
//! MVCC verification, the key space at a revision, and whole-file operations.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod hashkv;
pub mod header;
pub mod index;
pub mod keyspace;
pub mod kv;
pub mod revision;
pub mod rewrite;
pub mod schema;
pub mod snapshot;
pub mod status;
pub mod stream;
pub mod trailer;
pub mod usage;
pub mod verify;

pub use error::{MvccError, Result};
