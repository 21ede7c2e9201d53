//! Errors of the MVCC layer.

use std::path::PathBuf;

use etcdsnap_bolt::display_bytes;

/// Errors of the MVCC layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MvccError {
    /// The bbolt layer failed (I/O, corrupt page structure).
    #[error(transparent)]
    Bolt(#[from] etcdsnap_bolt::Error),
    /// A value or key that etcd could not read.
    #[error("bucket {}, key {}: {what}", display_bytes(bucket), display_bytes(key))]
    Corrupt {
        /// The bucket.
        bucket: Vec<u8>,
        /// The key.
        key: Vec<u8>,
        /// What is wrong.
        what: String,
    },
    /// The requested revision was compacted away (etcd's `ErrCompacted`).
    #[error("mvcc: required revision {rev} has been compacted (compact revision {compact})")]
    Compacted {
        /// Requested revision.
        rev: i64,
        /// Compact revision.
        compact: i64,
    },
    /// The requested revision is beyond the current one (etcd's `ErrFutureRev`).
    #[error("mvcc: required revision {rev} is a future revision (current revision {current})")]
    FutureRev {
        /// Requested revision.
        rev: i64,
        /// Current revision.
        current: i64,
    },
    /// Reading or writing a file failed.
    #[error("I/O error on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key-bound encrypted value cannot be re-sealed for its renamed key.
    #[error(
        "cannot re-encrypt the value of {} at revision {revision}: {reason}; nothing was written",
        display_bytes(key)
    )]
    Reseal {
        /// The key (as stored in the input).
        key: Vec<u8>,
        /// Its revision.
        revision: i64,
        /// Why.
        reason: String,
    },
    /// The file cannot be stamped for the requested older etcd line.
    #[error("cannot rewrite storage version {file} for etcd {target}: {reason}")]
    TargetVersion {
        /// The storage version of the input (`3.4`, `3.5`, `3.6.0`, …).
        file: String,
        /// The requested line.
        target: &'static str,
        /// Why not.
        reason: &'static str,
    },
    /// The options cannot be honoured (e.g. a rename collision).
    #[error("{0}")]
    Invalid(String),
}

impl MvccError {
    /// A corrupt value in the `meta` bucket.
    pub fn meta(key: &[u8], what: String) -> Self {
        Self::Corrupt { bucket: crate::schema::META.to_vec(), key: key.to_vec(), what }
    }

    /// A corrupt value in `bucket`.
    pub fn value(bucket: &[u8], key: &[u8], what: String) -> Self {
        Self::Corrupt { bucket: bucket.to_vec(), key: key.to_vec(), what }
    }
}

impl From<etcdsnap_bolt::Corruption> for MvccError {
    fn from(c: etcdsnap_bolt::Corruption) -> Self {
        Self::Bolt(c.into())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = MvccError> = std::result::Result<T, E>;
