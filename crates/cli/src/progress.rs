//! Progress on stderr, only when stderr is a terminal and `--quiet` was not
//! given: a bar with total, rate and ETA where the library reports progress
//! (rewrite and bolt compact: entries analysed, bytes written), and a spinner
//! with the elapsed time for one-pass commands (status, hashkv, verify, bolt
//! check, wal verify). Nothing is drawn into a pipe or a log.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcdsnap_mvcc::rewrite::Progress;
use indicatif::{ProgressBar, ProgressStyle};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: no progress at all.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

fn enabled() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// A bar fed by the library's [`Progress`] calls; cleared when dropped.
pub struct Bar {
    bar: Option<ProgressBar>,
    phase: &'static str,
}

impl Bar {
    /// A bar, drawn only when progress is enabled.
    pub fn new() -> Self {
        Self { bar: enabled().then(ProgressBar::no_length), phase: "" }
    }
}

impl Progress for Bar {
    fn update(&mut self, phase: &'static str, done: u64, total: u64) {
        let Some(bar) = &self.bar else { return };
        if phase != self.phase {
            self.phase = phase;
            bar.set_style(if total > 0 {
                style("{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            } else {
                style("{msg:>10} {spinner} {human_pos} entries, {per_sec}, {elapsed}")
            });
            bar.set_message(phase);
            if total > 0 {
                bar.set_length(total);
            }
        }
        bar.set_position(done);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A spinner with a message and the elapsed time while a one-pass command runs; cleared when dropped.
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    /// Starts one (when progress is enabled).
    pub fn start(message: String) -> Self {
        Self(enabled().then(|| {
            let pb = ProgressBar::new_spinner();
            pb.set_style(style("{spinner} {msg} {elapsed}"));
            pb.set_message(message);
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        }))
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
