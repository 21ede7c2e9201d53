//! Typed errors: I/O, corrupt data (naming segment, byte offset and raft index), usage.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = WalError> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing a WAL or `.snap` file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// An I/O error on a named path (the OS error is in the message, and only
    /// there: it is not also a `source`, so an error chain prints it once).
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        cause: io::Error,
    },
    /// The WAL is damaged somewhere other than a torn tail.
    #[error("{0}")]
    Corrupt(Corruption),
    /// The input is not usable for the requested operation; nothing was written.
    #[error("{0}")]
    Refused(Refusal),
    /// The caller's visitor stopped the read (for example, its output failed).
    #[error("stopped by the caller")]
    Stopped,
    /// The operation was cancelled (SIGINT/SIGTERM); its temporary output was removed.
    #[error("interrupted (signal {signal}); the temporary output was removed")]
    Interrupted {
        /// The non-zero value the cancel flag was set to (the signal number).
        signal: usize,
    },
    /// An output path was refused, or the input changed while read.
    #[error(transparent)]
    Os(etcdsnap_io::Error),
}

impl From<etcdsnap_io::Error> for WalError {
    fn from(e: etcdsnap_io::Error) -> Self {
        match e {
            etcdsnap_io::Error::Io { path, source } => Self::Io { path, cause: source },
            etcdsnap_io::Error::Interrupted { signal } => Self::Interrupted { signal },
            e => Self::Os(e),
        }
    }
}

/// Why a WAL operation was refused; each names what it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The rules drop a write that etcd replays from the WAL (above the db's
    /// `consistent_index`): every later replayed write would get another
    /// revision than in the source, and an update comparing `mod_revision`
    /// would be lost. Stopping etcd cleanly first puts every applied write in the db.
    #[error(
        "entry {index}: the rules drop a write that etcd replays from the WAL (it is above the db's \
         consistent_index {consistent_index}), so every later replayed write would get another revision than in \
         the source and a kube-apiserver update comparing mod_revision would be lost; stop etcd cleanly \
         (SIGTERM) so the db holds every applied write, then rewrite"
    )]
    ReplayedWriteDropped {
        /// The WAL entry's raft index.
        index: u64,
        /// The db's `consistent_index`.
        consistent_index: u64,
    },
    /// A replayed grant reaches inside and outside a rename source: one WAL
    /// request cannot also grant the renamed part.
    #[error(
        "entry {index}: the permission {permission} reaches inside and outside a rename source and etcd replays it \
         from the WAL, where one request cannot also grant the renamed part; stop etcd cleanly (SIGTERM) so the db \
         holds it, then rewrite"
    )]
    ReplayedOverlappingGrant {
        /// The WAL entry's raft index.
        index: u64,
        /// The permission range, as text.
        permission: String,
    },
    /// The output directory's parent does not exist (or is not a directory).
    #[error("{}: the parent of the output directory is not an existing directory", dir.display())]
    NoOutputParent {
        /// The parent.
        dir: PathBuf,
    },
    /// The directory holds no WAL segment.
    #[error("{}: no WAL segments", dir.display())]
    NoSegments {
        /// The WAL directory.
        dir: PathBuf,
    },
    /// Segment sequence numbers do not follow.
    #[error("segment sequence gap: {next} does not follow {after}")]
    SequenceGap {
        /// The segment before the gap.
        after: String,
        /// The segment after it.
        next: String,
    },
    /// The output directory exists and is not empty.
    #[error("{}: output directory is not empty", dir.display())]
    OutputNotEmpty {
        /// The output directory.
        dir: PathBuf,
    },
    /// The key rules contradict each other.
    #[error("key rules: {0}")]
    Rules(etcdsnap_keys::KeysError),
    /// An entry's data does not decode as a raft entry.
    #[error("entry does not decode: {0}")]
    EntryUndecodable(String),
    /// A rename gives the empty key, which etcd rejects.
    #[error("entry {index}: renaming {key} gives the empty key, which etcd rejects; nothing was written")]
    RenameToEmptyKey {
        /// Raft index of the entry.
        index: u64,
        /// The key before the rename, as text or hex.
        key: String,
    },
    /// The last record is torn: repair the WAL first.
    #[error("{segment}: offset {offset}: the last record is torn ({detail}); repair the WAL first")]
    TornTail {
        /// The segment.
        segment: String,
        /// Byte offset of the torn record.
        offset: u64,
        /// What is torn.
        detail: String,
    },
}

impl Refusal {
    /// A stable kebab-case name of the refusal, for machine-readable output.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ReplayedWriteDropped { .. } => "replayed-write-dropped",
            Self::NoOutputParent { .. } => "no-output-parent",
            Self::ReplayedOverlappingGrant { .. } => "replayed-overlapping-grant",
            Self::NoSegments { .. } => "no-segments",
            Self::SequenceGap { .. } => "sequence-gap",
            Self::OutputNotEmpty { .. } => "output-not-empty",
            Self::Rules(_) => "rules",
            Self::EntryUndecodable(_) => "entry-undecodable",
            Self::RenameToEmptyKey { .. } => "rename-to-empty-key",
            Self::TornTail { .. } => "torn-tail",
        }
    }
}

impl WalError {
    /// What kind of failure this is (the CLI's exit code follows it).
    pub fn kind(&self) -> etcdsnap_io::ErrorKind {
        use etcdsnap_io::ErrorKind as K;
        match self {
            Self::Io { .. } => K::Io,
            Self::Corrupt(_) => K::Corrupt,
            Self::Refused(_) => K::Refused,
            Self::Stopped => K::Internal,
            Self::Interrupted { .. } => K::Interrupted,
            Self::Os(e) => e.kind(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        WalError::Io { path: path.into(), cause: source }
    }
}

/// Where and how a WAL is corrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// Segment file name (`%016x-%016x.wal`).
    pub segment: String,
    /// Byte offset of the failing frame in that segment.
    pub offset: u64,
    /// Raft index of the failing entry, when the record still decodes far enough.
    pub index: Option<u64>,
    /// Index of the last good entry before it, if any.
    pub after_index: Option<u64>,
    /// What is wrong.
    pub kind: CorruptKind,
}

/// The kinds of corruption the reader detects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptKind {
    /// The running CRC-32C over record data does not match the record's `crc` (etcd `ErrCRCMismatch`).
    CrcMismatch {
        /// `crc` stored in the record.
        stored: u32,
        /// CRC computed over the data chain.
        computed: u32,
    },
    /// A `crcType` record does not continue the running CRC of the previous segment.
    CrcRecordMismatch {
        /// `crc` stored in the crc record.
        stored: u32,
        /// Running CRC at that point.
        running: u32,
    },
    /// The `walpb.Record` (or the entry/state/snapshot inside) does not decode.
    Decode(String),
    /// The frame runs past the end of a segment that is not the last one.
    Truncated {
        /// Bytes the frame needs.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// A record type etcd does not know (`unexpected block type`).
    UnknownType(i64),
    /// Metadata records differ (etcd `ErrMetadataConflict`).
    MetadataConflict,
}

impl CorruptKind {
    /// A stable kebab-case name of the kind, for machine-readable output.
    pub fn code(&self) -> &'static str {
        match self {
            CorruptKind::CrcMismatch { .. } => "crc-mismatch",
            CorruptKind::CrcRecordMismatch { .. } => "crc-record-mismatch",
            CorruptKind::Decode(_) => "decode",
            CorruptKind::Truncated { .. } => "truncated",
            CorruptKind::UnknownType(_) => "unknown-type",
            CorruptKind::MetadataConflict => "metadata-conflict",
        }
    }
}

impl fmt::Display for CorruptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptKind::CrcMismatch { stored, computed } => {
                write!(f, "crc mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})")
            }
            CorruptKind::CrcRecordMismatch { stored, running } => {
                write!(f, "crc record 0x{stored:08x} does not continue the running crc 0x{running:08x}")
            }
            CorruptKind::Decode(m) => write!(f, "record does not decode: {m}"),
            CorruptKind::Truncated { needed, available } => {
                write!(f, "frame needs {needed} bytes but only {available} remain in a segment that is not the last")
            }
            CorruptKind::UnknownType(t) => write!(f, "unexpected record type {t}"),
            CorruptKind::MetadataConflict => write!(f, "metadata record differs from the first one"),
        }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: offset {}", self.segment, self.offset)?;
        match (self.index, self.after_index) {
            (Some(i), _) => write!(f, ": index {i}")?,
            (None, Some(a)) => write!(f, ": after index {a}")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.kind)
    }
}
