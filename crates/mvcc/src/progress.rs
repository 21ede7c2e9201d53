//! Progress of a long whole-file operation, for a progress bar.

/// Told how far a rewrite, transform or compaction has come.
pub trait Progress {
    /// `done` of `total` units of `phase` are processed (`total` 0: unknown):
    /// `analysing` counts `key`-bucket entries, `writing` bytes of the output.
    fn update(&mut self, phase: &'static str, done: u64, total: u64);

    /// The bytes of input the operation plans to read before it reports
    /// bytes written (its passes over the file, counted by the meter in its
    /// options), told before the first one and again whenever the plan
    /// changes (a drop too large to patch is rebuilt: more passes).
    fn reading(&mut self, _total: u64) {}
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&mut self, _: &'static str, _: u64, _: u64) {}
}
