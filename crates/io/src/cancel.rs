//! Cancelling a long write from outside (a signal handler sets the flag).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A shared flag that long operations poll; non-zero (e.g. the signal number)
/// means stop, remove the temporary output and return [`Error::Interrupted`].
///
/// Options holding one compare equal whatever the flag: it is not an option
/// of the output, only a way to stop making it.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Option<Arc<AtomicUsize>>);

impl Cancel {
    /// A token that reads `flag` (set it to a non-zero reason to cancel).
    pub fn new(flag: Arc<AtomicUsize>) -> Self {
        Self(Some(flag))
    }

    /// The shared flag, for code that polls it directly (`None`: never cancelled).
    pub fn flag(&self) -> Option<Arc<AtomicUsize>> {
        self.0.clone()
    }

    /// The reason the flag was set to, when it was.
    pub fn reason(&self) -> Option<usize> {
        self.0.as_ref().map(|f| f.load(Ordering::Relaxed)).filter(|&r| r != 0)
    }

    /// `Err(Interrupted)` once cancelled.
    pub fn check(&self) -> Result<()> {
        match self.reason() {
            Some(signal) => Err(Error::Interrupted { signal }),
            None => Ok(()),
        }
    }
}

impl PartialEq for Cancel {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_reason_once_set() {
        let flag = Arc::new(AtomicUsize::new(0));
        let c = Cancel::new(flag.clone());
        assert!(c.check().is_ok() && Cancel::default().check().is_ok());
        flag.store(15, Ordering::Relaxed);
        assert!(matches!(c.check(), Err(Error::Interrupted { signal: 15 })));
    }
}
