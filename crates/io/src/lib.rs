//! The OS plumbing under etcdsnap's formats, kept out of them: inputs mapped
//! read-only with a guard for files truncated while mapped (the workspace's
//! only `unsafe` code, in [`mmap`]), outputs committed atomically — a file
//! ([`AtomicFile`]) or a whole directory ([`AtomicDir`]) built beside its
//! target and renamed into place, with the temporaries of killed runs found
//! and removed — cancellation by signal ([`Cancel`]), and byte meters for
//! progress bars ([`Meter`]). It knows nothing of bbolt or etcd.
//!
//! Every etcdsnap crate's error maps to one [`ErrorKind`], so a caller
//! decides (an exit code, a retry) without knowing which crate failed.

mod atomic;
mod atomic_dir;
mod cancel;
mod error;
mod meter;
pub mod mmap;
pub mod seq;

pub use atomic::{stale_temps, tmp_prefix, AtomicFile, CreateOptions, StaleTemp};
pub use atomic_dir::{create_dir_private, create_file_private, AtomicDir, DirOptions};
pub use cancel::Cancel;
pub use error::{Error, ErrorKind, OutputProblem, Result};
pub use meter::Meter;
/// The SIGBUS guard for inputs truncated while mapped (see the module docs).
#[cfg(unix)]
pub use mmap::guard as fault_guard;
pub use mmap::{pin_mmap_threshold, start_writeback, DirectOut, MappedFile, DIRECT_ALIGN};
