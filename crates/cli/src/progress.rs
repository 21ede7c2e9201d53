//! Progress on stderr, only when stderr is a terminal and `--quiet` was not
//! given, always with a total known up front, the rate and the ETA: a [`Bar`]
//! where the library reports progress itself (rewrite and bolt compact: the
//! input read, then the bytes written), and a [`Meter`] for the reading
//! commands (status, hashkv, verify, keys, get, du, diff, bolt check, wal
//! verify/dump/rewrite): a thread polls the byte meter ([`etcdsnap_io::Meter`])
//! the command handed the libraries (leaf pages read, bytes hashed, segment
//! bytes read) ten times a second against the file's size times the
//! command's passes over it. Nothing is drawn into a
//! pipe or a log, nor under output streaming to the same terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
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

/// A bar fed by the library's [`Progress`] calls (rewrite, bolt compact);
/// cleared when dropped. Until the library reports a phase with a total of its
/// own (`writing`: bytes of the planned output), it shows the input read so
/// far (the plan pass, and the trailer hash beside it) against the total the
/// library planned ([`Progress::reading`]), polled from the meter given to
/// the library like a [`Meter`].
pub struct Bar {
    bar: Option<ProgressBar>,
    phase: &'static str,
    reading: Option<Meter>,
}

impl Bar {
    /// A bar, drawn only when progress is enabled, reading `counter` until
    /// the library says how much it reads.
    pub fn new(message: String, counter: &etcdsnap_io::Meter) -> Self {
        let reading = Meter::start(message, 0, counter);
        Self { bar: None, phase: "", reading: Some(reading) }
    }
}

impl Progress for Bar {
    fn reading(&mut self, total: u64) {
        if let Some(m) = &self.reading {
            m.set_total(total);
        }
    }

    fn update(&mut self, phase: &'static str, done: u64, total: u64) {
        if total == 0 || !enabled() {
            // The reading meter shows this phase already.
            return;
        }
        if phase != self.phase {
            self.phase = phase;
            drop(self.reading.take());
            let bar = self.bar.get_or_insert_with(|| ProgressBar::new(total));
            bar.set_style(style("{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"));
            bar.set_message(phase);
            bar.set_length(total);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        drop(self.reading.take());
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A bar of bytes worked through out of `total`, with rate and ETA, fed from a
/// library counter by a polling thread; cleared when dropped.
pub struct Meter {
    bar: Option<ProgressBar>,
    stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
}

impl Meter {
    /// Starts one (when progress is enabled): `total` bytes, e.g. the file's size times its passes.
    pub fn start(message: String, total: u64, counter: &etcdsnap_io::Meter) -> Self {
        Self::start_if(enabled(), message, total, counter)
    }

    /// As [`start`](Self::start), but not while stdout is a terminal too: a
    /// command that prints while it reads (wal dump) would have its lines cut
    /// by the bar.
    pub fn start_streaming(message: String, total: u64, counter: &etcdsnap_io::Meter) -> Self {
        Self::start_if(enabled() && !std::io::stdout().is_terminal(), message, total, counter)
    }

    fn start_if(on: bool, message: String, total: u64, counter: &etcdsnap_io::Meter) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !on {
            return Self { bar: None, stop, poller: None };
        }
        let counter = counter.clone();
        let read = move || counter.done();
        let start = read();
        let pb = ProgressBar::new(total.max(1));
        // Figures first: a long path is cut (wide_msg) rather than wrapping the line.
        pb.set_style(style("[{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {wide_msg}"));
        pb.set_message(message);
        let (bar, flag) = (pb.clone(), stop.clone());
        let poller = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    // Passes can end short of the total (free pages are not read): never past it.
                    let total = bar.length().unwrap_or(total);
                    bar.set_position(read().saturating_sub(start).min(total));
                    // Woken early by Drop, so that a command's end never waits for a tick.
                    std::thread::park_timeout(Duration::from_millis(100));
                }
            })
            .ok();
        Self { bar: Some(pb), stop, poller }
    }
}

impl Meter {
    /// A new total (the library planned its reads).
    pub fn set_total(&self, total: u64) {
        if let Some(b) = &self.bar {
            b.set_length(total.max(1));
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.poller.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
