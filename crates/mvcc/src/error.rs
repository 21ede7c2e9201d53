//! Errors of the MVCC layer.

use std::path::PathBuf;

use etcdsnap_bolt::display_bytes;

/// Errors of the MVCC layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MvccError {
    /// The bbolt layer failed (corrupt page structure, the builder, I/O beneath).
    #[error(transparent)]
    Bolt(#[from] etcdsnap_bolt::Error),
    /// The file system failed, an output path was refused, the input changed
    /// while read, or the operation was cancelled.
    #[error(transparent)]
    Os(#[from] etcdsnap_io::Error),
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
    /// An entry hook ([`crate::rewrite::EntryHook`]) failed on an entry, or
    /// asked for what cannot be written (a value for a tombstone).
    #[error("entry hook failed on {} at revision {revision}: {reason}; nothing was written", display_bytes(key))]
    Hook {
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
    /// The rewrite was refused before anything was written: the options cannot be
    /// honoured on this input.
    #[error("{0}; nothing was written")]
    Refused(Refusal),
    /// The output read back does not verify, or its figures differ from those
    /// observed while writing it (a bug); nothing was committed.
    #[error("output {path} failed its read-back verification: {what}; nothing was written")]
    OutputVerification {
        /// The output.
        path: PathBuf,
        /// What differs or which problem was found.
        what: String,
    },
    /// A worker thread panicked (a bug); its result is unknown.
    #[error("internal error: the {0} worker thread panicked")]
    WorkerPanicked(&'static str),
}

/// Why a rewrite was refused; each names what it concerns. Messages name no
/// command-line flag: the CLI adds the hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A rename turns a key into the empty key, which etcd rejects (and which its
    /// index would merge with the revision markers).
    #[error("rename of {} gives the empty key, which etcd rejects", display_bytes(key))]
    RenameToEmptyKey {
        /// The key before the rename.
        key: Vec<u8>,
    },
    /// A rename of a role permission's key range gives the empty key (etcd's
    /// `isValidPermissionRange` refuses it).
    #[error(
        "rename of the permission on {} of role {} gives the empty key, which etcd rejects",
        display_bytes(key),
        display_bytes(role)
    )]
    PermissionRenameToEmptyKey {
        /// The role.
        role: Vec<u8>,
        /// The permission's key before the rename.
        key: Vec<u8>,
    },
    /// Two keys would have the same name after renaming.
    #[error(
        "rename collision: {} and {} would both become {}",
        display_bytes(first),
        display_bytes(second),
        display_bytes(target)
    )]
    RenameCollision {
        /// One key.
        first: Vec<u8>,
        /// The other key.
        second: Vec<u8>,
        /// The name both would get.
        target: Vec<u8>,
    },
    /// `compact_rev_key` (written by kube-apiserver, shared by every tenant) would
    /// be dropped by the prefix filter, and no rule says whether to keep it.
    #[error(
        "compact_rev_key (written by kube-apiserver, shared by every tenant) would be dropped by the prefix \
         filter: a keep or drop rule for it must say what to do"
    )]
    CompactRevKeyUnruled,
    /// Values encrypted by a key-bound provider (`k8s:enc:aesgcm:`, `k8s:enc:kms:`)
    /// would be renamed: kube-apiserver authenticates the etcd key and could not
    /// decrypt them under the new one.
    #[error(
        "{count} values under renamed keys are encrypted by a key-bound provider (aesgcm or kms), which \
         authenticates the etcd key: kube-apiserver could not decrypt them under the new key. First: {}. \
         Re-encrypt them before the move, or allow renaming key-bound encrypted values",
        display_bytes(first)
    )]
    KeyBoundEncrypted {
        /// How many such values.
        count: u64,
        /// The first such key.
        first: Vec<u8>,
    },
    /// The bump does not leave 2^62 revisions of headroom below i64::MAX
    /// (etcd could never write again once it reaches the limit).
    #[error(
        "bumping revision {latest} by {by} leaves fewer than 2^62 revisions before etcd's int64 limit (at most {} is allowed)",
        (i64::MAX - (1i64 << 62)).saturating_sub(*latest)
    )]
    BumpOverflow {
        /// The latest revision of the input.
        latest: i64,
        /// The bump asked for.
        by: i64,
    },
    /// A bump of zero or less.
    #[error("a revision bump must be positive, got {0}")]
    BumpNotPositive(i64),
    /// A TTL of zero or less for the lease records a salvage writes anew.
    #[error("the TTL of a lost lease's new record must be positive, got {0}")]
    LeaseTtlNotPositive(i64),
    /// An offline compaction and marking the file for compaction at start were
    /// both asked for: the first already compacts.
    #[error("an offline compaction already compacts; marking the file compacted would schedule it again")]
    CompactAndMarkCompacted,
    /// Key rules matched no key of the input (a typo would keep almost nothing).
    #[error("{} matched no key in {revisions} stored revisions (a typo?)", rules.join(", "))]
    RulesMatchedNothing {
        /// The rules, as given.
        rules: Vec<String>,
        /// Stored revisions read.
        revisions: u64,
    },
    /// The key rules contradict each other.
    #[error("key rules: {0}")]
    Rules(etcdsnap_keys::KeysError),
    /// The input's SHA-256 trailer does not match its bytes.
    #[error("{}: SHA-256 trailer mismatch (stored {stored}, computed {computed}): the input is damaged", path.display())]
    TrailerMismatch {
        /// The input.
        path: PathBuf,
        /// The stored digest, hex.
        stored: String,
        /// The computed digest, hex.
        computed: String,
    },
    /// The input has no SHA-256 trailer and one is required (a restore
    /// without `--skip-hash-check`, as etcdutl refuses it).
    #[error("{}: snapshot missing hash (no SHA-256 trailer) but --skip-hash-check=false", path.display())]
    TrailerMissing {
        /// The input.
        path: PathBuf,
    },
    /// A restore needs a bucket every etcd server creates at start; the
    /// input lacks it (not a snapshot of an etcd server?).
    #[error("the input has no `{bucket}` bucket, which every etcd ≥3.4 server creates at start: not a snapshot of an etcd server")]
    RestoreBucketMissing {
        /// The bucket's name.
        bucket: String,
    },
}

impl Refusal {
    /// A stable kebab-case name of the refusal, for machine-readable output.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RenameToEmptyKey { .. } => "rename-to-empty-key",
            Self::PermissionRenameToEmptyKey { .. } => "permission-rename-to-empty-key",
            Self::RenameCollision { .. } => "rename-collision",
            Self::CompactRevKeyUnruled => "compact-rev-key-unruled",
            Self::KeyBoundEncrypted { .. } => "key-bound-encrypted",
            Self::BumpOverflow { .. } => "bump-overflow",
            Self::BumpNotPositive(_) => "bump-not-positive",
            Self::LeaseTtlNotPositive(_) => "lease-ttl-not-positive",
            Self::CompactAndMarkCompacted => "compact-and-mark-compacted",
            Self::Rules(_) => "rules",
            Self::RulesMatchedNothing { .. } => "rules-matched-nothing",
            Self::TrailerMismatch { .. } => "trailer-mismatch",
            Self::TrailerMissing { .. } => "trailer-missing",
            Self::RestoreBucketMissing { .. } => "restore-bucket-missing",
        }
    }
}

impl MvccError {
    /// What kind of failure this is (the CLI's exit code follows it).
    pub fn kind(&self) -> etcdsnap_io::ErrorKind {
        use etcdsnap_io::ErrorKind as K;
        match self {
            Self::Bolt(e) => e.kind(),
            Self::Os(e) => e.kind(),
            Self::Io { .. } => K::Io,
            Self::Corrupt { .. } => K::Corrupt,
            Self::Compacted { .. }
            | Self::FutureRev { .. }
            | Self::Reseal { .. }
            | Self::Hook { .. }
            | Self::TargetVersion { .. }
            | Self::Refused(_) => K::Refused,
            Self::OutputVerification { .. } | Self::WorkerPanicked(_) => K::Internal,
        }
    }

    /// An interruption by `signal` (see [`etcdsnap_io::Cancel`]).
    pub fn interrupted(signal: usize) -> Self {
        Self::Os(etcdsnap_io::Error::Interrupted { signal })
    }

    /// A corrupt value in the `meta` bucket.
    pub fn meta(key: &[u8], what: String) -> Self {
        // The bucket's name, as `schema::META` spells it (the schema depends on this module).
        Self::Corrupt { bucket: b"meta".to_vec(), key: key.to_vec(), what }
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
