//! How far reading has come, for progress bars: a count of the bytes worked
//! through that the caller creates, hands to the readers, and polls from
//! another thread. Readers add in large steps (a leaf page, a hashed chunk,
//! a WAL record batch): one relaxed atomic add, nothing per entry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A shared count of bytes worked through; clones count into the same total.
/// The default meter is its own (nobody polls it).
#[derive(Debug, Clone, Default)]
pub struct Meter(Arc<AtomicU64>);

impl Meter {
    /// A meter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` worked through.
    pub fn add(&self, bytes: u64) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes worked through so far.
    pub fn done(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Options holding one compare equal whatever the count: it is not an
/// option of the work, only a way to watch it.
impl PartialEq for Meter {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn clones_count_into_one_total() {
        let m = Meter::new();
        let c = m.clone();
        m.add(3);
        c.add(4);
        assert_eq!((m.done(), c.done(), Meter::new().done()), (7, 7, 0));
    }
}
