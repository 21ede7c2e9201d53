//! What can go wrong reading backups from object storage, by kind: the
//! caller maps kinds to exit codes (unreadable 2, changed and problems 1).

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A URL or an option that cannot be used (no object read yet).
    #[error("{0}")]
    Usage(String),
    /// The store could not be listed or the object not read (after retries).
    #[error("{url}: {message}")]
    Unreadable {
        /// The object or prefix.
        url: String,
        /// What failed, with the store's own error.
        message: String,
    },
    /// The object changed (ETag, size) between the listing and the end of
    /// the read: what was read is no statement about any version of it.
    #[error("{url}: changed while it was read: {message}")]
    Changed {
        /// The object.
        url: String,
        /// What differed.
        message: String,
    },
    /// Writing the results failed (a closed pipe ends the run quietly).
    #[error("writing the results: {0}")]
    Output(#[source] std::io::Error),
    /// A local file (spool, list, report) could not be read or written.
    #[error("{path}: {source}")]
    Local {
        /// The local path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl RemoteError {
    pub(crate) fn local(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Local { path: path.display().to_string(), source }
    }

    /// `Changed` errors say the input moved, not that it is damaged.
    pub fn is_changed(&self) -> bool {
        matches!(self, Self::Changed { .. })
    }
}

/// Results of this crate.
pub type Result<T, E = RemoteError> = std::result::Result<T, E>;
