//! The one skeleton of every operation that reads a whole snapshot or db
//! file and writes another: map the input, check its SHA-256 trailer on a
//! second core while the output is produced, refuse a mismatch, make sure
//! the input did not change while it was read, then commit the output
//! atomically. [`crate::rewrite::rewrite`] and [`crate::snapshot::compact`]
//! run through [`whole_file`] (`compact` with `skip_trailer_check` through
//! [`whole_file_unchecked`], which reads the trailer without hashing the
//! input), [`crate::salvage::salvage`] through
//! [`whole_image`] (its input need not open); [`crate::transform::transform`] (bytes in,
//! any writer out) through [`beside_trailer_check`].
//!
//! A producer only makes the output: it gets the opened input and returns
//! the uncommitted output file with what it made.

use std::path::{Path, PathBuf};

use etcdsnap_bolt::Db;
use etcdsnap_io::{AtomicFile, Cancel, MappedFile, Meter, StaleTemp};

use crate::error::{MvccError, Refusal, Result};
use crate::trailer::{self, Trailer};

/// Whether the output gets a SHA-256 trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrailerMode {
    /// As the input: a snapshot gets a fresh trailer, a raw db none.
    #[default]
    LikeInput,
    /// Always append one.
    Always,
    /// Never append one.
    Never,
}

impl TrailerMode {
    /// The mode of a pair of `--trailer` / `--no-trailer` flags.
    pub fn from_flags(trailer: bool, no_trailer: bool) -> Self {
        match (trailer, no_trailer) {
            (true, _) => Self::Always,
            (_, true) => Self::Never,
            _ => Self::LikeInput,
        }
    }

    /// Whether the output gets a trailer, given whether the input had one.
    pub fn wants_trailer(self, input_has_one: bool) -> bool {
        match self {
            Self::LikeInput => input_has_one,
            Self::Always => true,
            Self::Never => false,
        }
    }
}

/// What a whole-file operation does when the input's trailer does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnMismatch {
    /// Refuse: nothing is committed.
    Refuse,
    /// Go on; the mismatch is in the returned [`Trailer`].
    Report,
}

/// The opened input, as a producer sees it.
pub(crate) struct Input<'f> {
    /// The input's path (for errors, and to refuse writing over it).
    pub(crate) path: &'f Path,
    /// The mapped file (the trailer included).
    pub(crate) file: &'f MappedFile,
    /// The bbolt image (the trailer excluded).
    pub(crate) db: Db<'f>,
    /// Whether the file ends in a trailer.
    pub(crate) has_trailer: bool,
}

impl<'f> Input<'f> {
    /// The bbolt image of `file` (the one at `path`) opened, metered by `meter`.
    fn open(path: &'f Path, file: &'f MappedFile, meter: &'f Meter) -> Result<Self> {
        let (image, stored) = trailer::split(file);
        Ok(Self { path, file, db: Db::open(image)?.metered(meter), has_trailer: stored.is_some() })
    }
}

/// A committed output and what was found on the way.
pub(crate) struct Committed<T, S = Trailer> {
    /// What the producer made.
    pub(crate) made: T,
    /// The input's trailer (checked: a [`Trailer`]; only read: its digest).
    pub(crate) trailer_in: S,
    /// Bytes of the input file.
    pub(crate) bytes_in: u64,
    /// Temporary files of earlier, killed runs beside the output.
    pub(crate) stale_temps: Vec<StaleTemp>,
}

impl<T, S> Committed<T, S> {
    /// The same, its trailer told as `f` says.
    pub(crate) fn map_trailer<U>(self, f: impl FnOnce(S) -> U) -> Committed<T, U> {
        let Self { made, trailer_in, bytes_in, stale_temps } = self;
        Committed { made, trailer_in: f(trailer_in), bytes_in, stale_temps }
    }
}

/// Runs `produce` on the input at `path` while its trailer is checked on
/// another core, then commits the output it returns once the trailer
/// matched (or `on_mismatch` allows it) and the input is unchanged. An
/// output not committed is removed (when its [`AtomicFile`] drops).
pub(crate) fn whole_file<T>(
    path: &Path,
    on_mismatch: OnMismatch,
    cancel: &Cancel,
    meter: &Meter,
    produce: impl FnOnce(&Input<'_>) -> Result<(AtomicFile, T)>,
) -> Result<Committed<T>> {
    let file = MappedFile::open(path)?;
    let input = Input::open(path, &file, meter)?;
    commit_beside(&file, checked(&file, meter), judge(on_mismatch, path), cancel, || produce(&input))
}

/// [`whole_file`] without the trailer check (`bolt compact
/// --skip-hash-check`, as etcdutl's flag): the input's trailer is read, not
/// hashed, so the input is read once, by the producer. The input must still
/// not change while it is read.
pub(crate) fn whole_file_unchecked<T>(
    path: &Path,
    cancel: &Cancel,
    meter: &Meter,
    produce: impl FnOnce(&Input<'_>) -> Result<(AtomicFile, T)>,
) -> Result<Committed<T, Option<[u8; trailer::TRAILER_LEN]>>> {
    let file = MappedFile::open(path)?;
    let input = Input::open(path, &file, meter)?;
    let stored = trailer::split(&file).1;
    commit_beside(&file, || Ok(stored), |_| Ok(()), cancel, || produce(&input))
}

/// The trailer check of `file`: one SHA-256 pass through the sequential reader.
fn checked<'a>(file: &'a MappedFile, meter: &'a Meter) -> impl FnOnce() -> Result<Trailer> + Send + 'a {
    move || Ok(trailer::verify_file(file, Some(meter))?)
}

/// What becomes of a checked trailer: a mismatch refused when `on_mismatch` says so.
fn judge(on_mismatch: OnMismatch, path: &Path) -> impl FnOnce(&Trailer) -> Result<()> + '_ {
    move |t| if on_mismatch == OnMismatch::Refuse { refuse_mismatch(t, path) } else { Ok(()) }
}

/// [`whole_file`] for a producer that reads the mapped file itself, without
/// an opened [`Db`]: one whose input need not open as a bbolt file (salvage).
pub(crate) fn whole_image<T>(
    path: &Path,
    on_mismatch: OnMismatch,
    cancel: &Cancel,
    meter: &Meter,
    produce: impl FnOnce(&MappedFile) -> Result<(AtomicFile, T)>,
) -> Result<Committed<T>> {
    let file = MappedFile::open(path)?;
    commit_beside(&file, checked(&file, meter), judge(on_mismatch, path), cancel, || produce(&file))
}

/// The skeleton's common part: `produce` beside the trailer `check`, its
/// result judged (a mismatch refused when asked), the input's stability
/// checked, the output committed.
fn commit_beside<T, S: Send>(
    file: &MappedFile,
    check: impl FnOnce() -> Result<S> + Send,
    judge: impl FnOnce(&S) -> Result<()>,
    cancel: &Cancel,
    produce: impl FnOnce() -> Result<(AtomicFile, T)>,
) -> Result<Committed<T, S>> {
    let (trailer_in, produced) = beside(check, produce);
    let trailer_in = trailer_in?;
    judge(&trailer_in)?;
    let (atomic, made) = produced?;
    cancel.check()?;
    // The trailer was checked by one pass, the output made by others: both
    // must have read the same file (a change in place is not caught by the
    // hash once it has been computed).
    file.check_unchanged()?;
    let stale_temps = atomic.stale().to_vec();
    atomic.commit()?;
    Ok(Committed { made, trailer_in, bytes_in: file.len() as u64, stale_temps })
}

/// Runs `produce` while `check` verifies the input's trailer on another
/// thread; both results.
pub(crate) fn beside<T, S: Send>(
    check: impl FnOnce() -> Result<S> + Send,
    produce: impl FnOnce() -> T,
) -> (Result<S>, T) {
    std::thread::scope(|scope| {
        let check = scope.spawn(check);
        let produced = produce();
        // A panicked check is an error, never "no trailer".
        (check.join().map_err(|_| MvccError::WorkerPanicked("trailer check")).and_then(|r| r), produced)
    })
}

/// Refuses an input whose SHA-256 trailer does not match its contents.
pub(crate) fn refuse_mismatch(t: &Trailer, input: &Path) -> Result<()> {
    match t {
        Trailer::Mismatch { stored, computed } => Err(MvccError::Refused(Refusal::TrailerMismatch {
            path: input.to_path_buf(),
            stored: trailer::hex(stored),
            computed: trailer::hex(computed),
        })),
        Trailer::Absent | Trailer::Valid(_) => Ok(()),
    }
}

/// An operation's result with any error after `cancel` was set reported as
/// the interruption it is (the error that stopped it is its consequence).
pub(crate) fn interrupted<T>(cancel: &Cancel, r: Result<T>) -> Result<T> {
    r.map_err(|e| match cancel.reason() {
        Some(signal) => MvccError::interrupted(signal),
        None => e,
    })
}

/// An I/O error on `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MvccError + '_ {
    move |source| MvccError::Io { path: PathBuf::from(path), source }
}
