//! How far reading has come, for progress bars: a process-wide count of the
//! bytes worked through. Leaf pages (with their overflow) add their size as the
//! cursors and the checker read them, and callers add what else they work
//! through (the bytes a trailer hash covered). A command's bar reads it from
//! another thread against a total known up front (the file's size times its
//! passes). One relaxed atomic add per leaf page, nothing per entry.
//!
//! Branch pages are not counted: lookups descend through them again and again,
//! while a scan reads each leaf once.

use std::sync::atomic::{AtomicU64, Ordering};

static DONE: AtomicU64 = AtomicU64::new(0);

/// Adds `bytes` worked through.
pub fn add(bytes: u64) {
    DONE.fetch_add(bytes, Ordering::Relaxed);
}

/// Bytes worked through since the process started (a bar subtracts the value it started at).
pub fn done() -> u64 {
    DONE.load(Ordering::Relaxed)
}
