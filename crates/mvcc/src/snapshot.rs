//! Whole-file operations on an etcd snapshot or db file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use etcdsnap_bolt::builder::{BuildOptions, DEFAULT_FILL_PERCENT};
use etcdsnap_bolt::{AtomicFile, Cancel, CreateOptions, Db, MappedFile, StaleTemp};

use crate::trailer::{self, Trailer, TRAILER_LEN};

/// Errors of whole-file operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The bbolt layer failed (I/O, corruption, builder).
    #[error(transparent)]
    Bolt(#[from] etcdsnap_bolt::Error),
    /// The input's trailer does not match its contents.
    #[error("{path}: snapshot SHA-256 trailer mismatch (stored {stored}, computed {computed})")]
    TrailerMismatch {
        /// The input file.
        path: PathBuf,
        /// Stored digest, hex.
        stored: String,
        /// Computed digest, hex.
        computed: String,
    },
    /// A worker thread panicked (a bug); its result is unknown.
    #[error("internal error: the {0} worker thread panicked")]
    WorkerPanicked(&'static str),
    /// Writing the output failed.
    #[error("I/O error on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

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

/// Options of [`compact`].
#[derive(Debug, Clone, PartialEq)]
pub struct CompactOptions {
    /// Page size of the output; `None` keeps the input's.
    pub page_size: Option<u32>,
    /// Fill percent of the output's pages.
    pub fill_percent: f64,
    /// Trailer of the output.
    pub trailer: TrailerMode,
    /// Accept an input whose trailer does not match (it is reported, not fatal).
    pub ignore_trailer_mismatch: bool,
    /// Whether an existing output may be replaced and stale temporary files removed.
    pub output: CreateOptions,
    /// Stops the write (the temporary file is removed) once set.
    pub cancel: Cancel,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            page_size: None,
            fill_percent: DEFAULT_FILL_PERCENT,
            trailer: TrailerMode::LikeInput,
            ignore_trailer_mismatch: false,
            output: CreateOptions::default(),
            cancel: Cancel::default(),
        }
    }
}

/// What [`compact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// Bytes of the input file.
    pub bytes_in: u64,
    /// Bytes of the output file (trailer included).
    pub bytes_out: u64,
    /// The input's trailer.
    pub trailer_in: Trailer,
    /// The output's trailer digest, when one was written.
    pub trailer_out: Option<[u8; TRAILER_LEN]>,
    /// Output page size.
    pub page_size: u32,
    /// Buckets written.
    pub buckets: u64,
    /// Keys written.
    pub keys: u64,
    /// Temporary files of earlier, killed runs found beside the output.
    pub stale_temps: Vec<StaleTemp>,
    /// Wall time.
    pub elapsed: Duration,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io { path: path.to_path_buf(), source }
}

/// Copies every bucket of `input` into a freshly built file at `output`
/// (offline `bbolt compact` / defrag), through the atomic writer.
///
/// The layout is planned first (a pass that moves no value bytes), so the meta
/// pages go out first and the file is written in one sequential stream on a
/// second thread that hashes it for the trailer; the input's trailer is checked
/// on a third thread meanwhile.
pub fn compact(input: &Path, output: &Path, opts: &CompactOptions) -> Result<CompactReport, SnapshotError> {
    compact_with_progress(input, output, opts, &mut crate::rewrite::NoProgress)
}

/// [`compact`], telling `progress` the bytes written (phase `writing`).
pub fn compact_with_progress(
    input: &Path,
    output: &Path,
    opts: &CompactOptions,
    progress: &mut dyn crate::rewrite::Progress,
) -> Result<CompactReport, SnapshotError> {
    compact_inner(input, output, opts, progress).map_err(|e| match opts.cancel.reason() {
        Some(signal) => SnapshotError::Bolt(etcdsnap_bolt::Error::Interrupted { signal }),
        None => e,
    })
}

fn compact_inner(
    input: &Path,
    output: &Path,
    opts: &CompactOptions,
    progress: &mut dyn crate::rewrite::Progress,
) -> Result<CompactReport, SnapshotError> {
    let start = Instant::now();
    let file = MappedFile::open(input)?;
    let input_has_trailer = trailer::has_trailer(file.len() as u64);
    let (image, _) = trailer::split(&file);
    let db = Db::open(image)?;
    // The meta's page size is a u32 to begin with.
    let page_size = opts.page_size.unwrap_or(u32::try_from(db.page_size()).unwrap_or(u32::MAX));
    let build = BuildOptions { page_size, fill_percent: opts.fill_percent, ..BuildOptions::default() };
    let want_trailer = opts.trailer.wants_trailer(input_has_trailer);
    let mut out = AtomicFile::create_with(output, &[input], opts.output)?;
    let out_file = out.file()?;
    let (trailer_in, written) = std::thread::scope(|scope| {
        let check = scope.spawn(|| trailer::verify(&file));
        let written = etcdsnap_bolt::compact::plan(&db, build).map_err(crate::MvccError::from).and_then(|layout| {
            let sink = (progress, layout.bytes);
            crate::stream::write_hashed(out_file, output, want_trailer, &opts.cancel, sink, |w| {
                Ok(etcdsnap_bolt::compact::compact_streamed(&db, w, build, &layout)?.1)
            })
        });
        // A panicked check is an error, never "no trailer".
        (check.join().map_err(|_| SnapshotError::WorkerPanicked("trailer check")), written)
    });
    let trailer_in = trailer_in?;
    if let Trailer::Mismatch { stored, computed } = trailer_in {
        if !opts.ignore_trailer_mismatch {
            return Err(SnapshotError::TrailerMismatch {
                path: input.to_path_buf(),
                stored: trailer::hex(&stored),
                computed: trailer::hex(&computed),
            });
        }
    }
    let (summary, digest) = written.map_err(|e| match e {
        crate::MvccError::Bolt(b) => SnapshotError::Bolt(b),
        crate::MvccError::Io { path, source } => SnapshotError::Io { path, source },
        other => SnapshotError::Io { path: output.to_path_buf(), source: std::io::Error::other(other.to_string()) },
    })?;
    let f = out.file()?;
    if let Some(d) = &digest {
        f.write_all(d).map_err(io_err(output))?;
    }
    let bytes_out = summary.bytes.saturating_add(if digest.is_some() { TRAILER_LEN as u64 } else { 0 });
    opts.cancel.check()?;
    // What was read must be one version of the input (see MappedFile::check_unchanged).
    file.check_unchanged()?;
    let stale_temps = out.stale().to_vec();
    out.commit()?;
    Ok(CompactReport {
        bytes_in: file.len() as u64,
        bytes_out,
        trailer_in,
        trailer_out: digest,
        page_size,
        buckets: summary.buckets,
        keys: summary.keys,
        stale_temps,
        elapsed: start.elapsed(),
    })
}
