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
    /// The input is not usable for the requested operation (no segments, output not empty, …).
    #[error("{0}")]
    Invalid(String),
    /// The operation was cancelled (SIGINT/SIGTERM); its temporary output was removed.
    #[error("interrupted (signal {signal}); the temporary output was removed")]
    Interrupted {
        /// The non-zero value the cancel flag was set to (the signal number).
        signal: usize,
    },
}

impl WalError {
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
