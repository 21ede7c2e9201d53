//! Errors of data-dir operations.

use std::path::PathBuf;

/// Errors of data-dir operations; each names the path concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// The path is not what the operation needs (the message names it and
    /// says what it is).
    #[error("{what}")]
    Input {
        /// The path given.
        path: PathBuf,
        /// What it is, and what was expected.
        what: String,
    },
    /// The db failed (its rewrite, or reading its consistent_index).
    #[error("{context}")]
    Db {
        /// What was being done to which file.
        context: String,
        /// The cause.
        #[source]
        source: etcdsnap_mvcc::MvccError,
    },
    /// The db's `consistent_index` could not be read.
    #[error(transparent)]
    ConsistentIndex(#[from] etcdsnap_mvcc::consistent_index::ConsistentIndexError),
    /// The WAL failed.
    #[error("{context}")]
    Wal {
        /// What was being done to which directory.
        context: String,
        /// The cause.
        #[source]
        source: etcdsnap_wal::WalError,
    },
    /// The new cluster's configuration is refused (`--initial-cluster`,
    /// `--name`, `--initial-advertise-peer-urls`), as etcd words it.
    #[error("{0}")]
    Cluster(String),
    /// An output dir exists and is not empty.
    #[error("{what}")]
    Exists {
        /// The dir.
        path: PathBuf,
        /// What is wrong, as etcdutl words it.
        what: String,
    },
    /// The file system failed or refused the output.
    #[error(transparent)]
    Os(#[from] etcdsnap_io::Error),
}

impl DataDirError {
    /// What kind of failure this is.
    pub fn kind(&self) -> etcdsnap_io::ErrorKind {
        match self {
            Self::Input { .. } | Self::Cluster(_) | Self::Exists { .. } => etcdsnap_io::ErrorKind::Refused,
            Self::Db { source, .. } => source.kind(),
            Self::ConsistentIndex(etcdsnap_mvcc::consistent_index::ConsistentIndexError::Read { source, .. }) => {
                source.kind()
            }
            Self::ConsistentIndex(_) => etcdsnap_io::ErrorKind::Corrupt,
            Self::Wal { source, .. } => source.kind(),
            Self::Os(e) => e.kind(),
        }
    }

    /// An input error about `path`; `what` names it.
    pub fn input(path: &std::path::Path, what: impl Into<String>) -> Self {
        Self::Input { path: path.to_path_buf(), what: what.into() }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = DataDirError> = std::result::Result<T, E>;
