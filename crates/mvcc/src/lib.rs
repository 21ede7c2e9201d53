//! etcd's backend schema on top of bbolt: the snapshot trailer, revision keys,
//! typed buckets, `snapshot status` and `HashKV` figures identical to etcd's,
//! MVCC verification, the key space at a revision, and whole-file operations.

pub mod consistent_index;
pub mod diff;
pub mod du;
mod error;
pub mod hashkv;
pub mod header;
pub mod index;
pub mod keyspace;
mod keytable;
pub mod kv;
mod pipeline;
mod progress;
pub mod revision;
pub mod rewrite;
pub mod salvage;
pub mod schema;
pub mod snapshot;
pub mod status;
pub mod status_report;
mod stream;
pub mod trailer;
pub mod transform;
mod verdict;
pub mod verify;

// The operations an embedder starts from; the modules hold the rest.
pub use error::{MvccError, Refusal, Result};
pub use hashkv::{hash_kv, KeyValueHash, TombstoneRule};
pub use pipeline::TrailerMode;
pub use progress::{NoProgress, Progress};
pub use rewrite::{rewrite, RewriteOptions, RewriteReport};
pub use snapshot::{compact, CompactOptions, CompactReport};
pub use status::{status, Status};
pub use transform::transform;
pub use verdict::Verdict;
pub use verify::{verify, VerifyOptions, VerifyReport};
