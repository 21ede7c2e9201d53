//! The bbolt file format: a zero-copy reader, a checker and a streaming writer.
//!
//! bbolt (`go.etcd.io/bbolt`) is the B+tree store inside every etcd `member/snap/db`
//! and snapshot file. This crate reads it from a byte slice, never panics on any
//! input, and reports corruption with the page id, bucket and key where it is.
//! It knows nothing of etcd.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let file = std::fs::read("snapshot.db")?;
//! let db = etcdsnap_bolt::Db::open(&file)?;
//! if let Some(bucket) = db.bucket(&[b"key"])? {
//!     for entry in bucket.cursor() {
//!         let entry = entry?;
//!         println!("{} bytes", entry.value.len());
//!     }
//! }
//! assert!(db.check().is_ok());
//! # Ok(()) }
//! ```

mod bucket;
pub mod builder;
pub mod check;
pub mod compact;
mod cursor;
mod db;
pub mod dump;
mod error;
mod freelist;
pub mod info;
pub mod inspect;
pub mod layout;
mod le;
pub mod meta;
pub mod page;
pub mod page_list;
pub mod patch;
pub mod surgery;
pub mod walk;

pub use bucket::Bucket;
pub use check::{CheckOptions, CheckReport, PageUse};
pub use cursor::{Cursor, Entry, MAX_DEPTH};
pub use db::Db;
pub use error::{display_bytes, BuildError, BuildFailure, CorruptKind, Corruption, Error, MetaFault, Result};
pub use freelist::Freelist;
pub use info::{DbInfo, FreelistState};
pub use layout::{BucketHeader, PageHeader, PageType, Pgid};
pub use meta::{Meta, MetaSlot, Metas};
pub use page_list::{PageKind, PageList, PageRow};

/// A committed fixture under the repository's `testdata/` (unit tests).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn testdata(rel: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata").join(rel)).unwrap()
}
