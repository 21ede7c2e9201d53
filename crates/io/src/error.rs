//! Errors of the OS plumbing, and the kinds every etcdsnap error maps to.

use std::fmt;
use std::path::PathBuf;

/// What kind of failure an error of any etcdsnap crate is: what a caller
/// (the CLI's exit code, a retry loop) decides on without knowing the crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing failed (a missing file, a full disk, permissions).
    Io,
    /// The input's bytes break a rule of their format.
    Corrupt,
    /// The input uses something this version does not handle.
    Unsupported,
    /// The request contradicts itself or what the input holds (a refusal:
    /// nothing was written).
    Refused,
    /// The input changed while it was read: what was read is not trusted.
    InputChanged,
    /// Cancelled by a signal; temporary outputs were removed.
    Interrupted,
    /// A bug: a worker thread panicked, an internal check failed.
    Internal,
}

impl ErrorKind {
    /// A stable kebab-case name, for machine-readable output.
    pub fn code(self) -> &'static str {
        match self {
            Self::Io => "io",
            Self::Corrupt => "corrupt",
            Self::Unsupported => "unsupported",
            Self::Refused => "refused",
            Self::InputChanged => "input-changed",
            Self::Interrupted => "interrupted",
            Self::Internal => "internal",
        }
    }
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("I/O error on {path}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The input is not a regular file (a FIFO, device, socket or directory):
    /// reading one could block forever or never end, and a map of it means nothing.
    #[error("{path} is not a regular file but a {kind}")]
    NotRegularFile {
        /// The path given.
        path: PathBuf,
        /// What it is instead (`FIFO`, `directory`, `character device`, …).
        kind: &'static str,
    },
    /// An output path cannot be written as asked.
    #[error("{}: {problem}", path.display())]
    Output {
        /// The path concerned (the output, or its directory).
        path: PathBuf,
        /// What is wrong with it.
        problem: OutputProblem,
    },
    /// The input file was changed by another process while it was being read.
    #[error("{path}: the file changed while being read ({what}); nothing read from it is trusted")]
    InputChanged {
        /// The input.
        path: PathBuf,
        /// What changed (size, or written in place).
        what: String,
    },
    /// The operation was cancelled (SIGINT/SIGTERM); nothing was written.
    #[error("interrupted (signal {signal}); the temporary output file was removed")]
    Interrupted {
        /// The signal number (or other non-zero reason) the [`Cancel`](crate::Cancel) was set to.
        signal: usize,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io { .. } | Self::NotRegularFile { .. } => ErrorKind::Io,
            Self::Output { .. } => ErrorKind::Refused,
            Self::InputChanged { .. } => ErrorKind::InputChanged,
            Self::Interrupted { .. } => ErrorKind::Interrupted,
        }
    }
}

/// Why an output path cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputProblem {
    /// The output exists and replacing it was not allowed.
    Exists,
    /// The output's directory does not exist.
    NoParentDirectory,
    /// What should be the output's directory is not a directory.
    ParentNotADirectory,
    /// The output is a directory.
    IsADirectory,
    /// The output is one of the inputs.
    IsInput,
    /// The output path has no file name (`..`, `/`).
    NotAFileName,
    /// The output directory exists (a directory is never written over).
    DirectoryExists,
    /// The output directory exists and is not empty.
    DirectoryNotEmpty,
}

impl fmt::Display for OutputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Exists => "output file exists (pass --force to replace it)",
            Self::NoParentDirectory => "output directory does not exist",
            Self::ParentNotADirectory => "output directory is not a directory",
            Self::IsADirectory => "output is a directory; expected a file name",
            Self::IsInput => "output is the same file as an input; refusing to overwrite it",
            Self::NotAFileName => "output path does not name a file",
            Self::DirectoryExists => "output exists; a directory is never written over (remove it first)",
            Self::DirectoryNotEmpty => "output directory is not empty; a directory is never written over",
        })
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
