//! How far reading has come, for progress bars: a process-wide count of the
//! segment bytes read (one relaxed atomic add per read of up to 1 MiB). A
//! command's bar reads it from another thread against the segments' total size.

use std::sync::atomic::{AtomicU64, Ordering};

static DONE: AtomicU64 = AtomicU64::new(0);

/// Adds `bytes` read.
pub(crate) fn add(bytes: u64) {
    DONE.fetch_add(bytes, Ordering::Relaxed);
}

/// Segment bytes read since the process started (a bar subtracts the value it started at).
pub fn done() -> u64 {
    DONE.load(Ordering::Relaxed)
}
