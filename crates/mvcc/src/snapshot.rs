//! `bbolt compact` of a snapshot or db file: every bucket copied into a
//! freshly built file, through the whole-file skeleton ([`crate::pipeline`]).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use etcdsnap_bolt::builder::{BuildOptions, DEFAULT_FILL_PERCENT};
use etcdsnap_io::{AtomicFile, Cancel, CreateOptions, Meter, StaleTemp};

use crate::error::Result;
pub use crate::pipeline::TrailerMode;
use crate::pipeline::{io_err, whole_file, whole_file_unchecked, Input, OnMismatch};
use crate::progress::{NoProgress, Progress};
use crate::trailer::{TrailerState, TRAILER_LEN};

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
    /// Do not hash the input at all (etcdutl's `--skip-hash-check`): its
    /// trailer is read, not checked ([`TrailerState::Unchecked`]), and the
    /// input is read once, by the compaction.
    pub skip_trailer_check: bool,
    /// Whether an existing output may be replaced and stale temporary files removed.
    pub output: CreateOptions,
    /// Stops the write (the temporary file is removed) once set.
    pub cancel: Cancel,
    /// Told the bytes of the input read and hashed (a progress bar's count).
    pub meter: Meter,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            page_size: None,
            fill_percent: DEFAULT_FILL_PERCENT,
            trailer: TrailerMode::LikeInput,
            ignore_trailer_mismatch: false,
            skip_trailer_check: false,
            output: CreateOptions::default(),
            cancel: Cancel::default(),
            meter: Meter::default(),
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
    /// The input's trailer: checked, or only read with
    /// [`CompactOptions::skip_trailer_check`].
    pub trailer_in: TrailerState,
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

/// Copies every bucket of `input` into a freshly built file at `output`
/// (offline `bbolt compact` / defrag), through the atomic writer.
///
/// The layout is planned first (a pass that moves no value bytes), so the meta
/// pages go out first and the file is written in one sequential stream on a
/// second thread that hashes it for the trailer; the input's trailer is checked
/// on a third thread meanwhile (only read with
/// [`CompactOptions::skip_trailer_check`]).
pub fn compact(input: &Path, output: &Path, opts: &CompactOptions) -> Result<CompactReport> {
    compact_with_progress(input, output, opts, &mut NoProgress)
}

/// [`compact`], telling `progress` the bytes written (phase `writing`).
pub fn compact_with_progress(
    input: &Path,
    output: &Path,
    opts: &CompactOptions,
    progress: &mut dyn Progress,
) -> Result<CompactReport> {
    let start = Instant::now();
    let on_mismatch = if opts.ignore_trailer_mismatch { OnMismatch::Report } else { OnMismatch::Refuse };
    let produce = |src: &Input<'_>| {
        // The meta's page size is a u32 to begin with.
        let page_size = opts.page_size.unwrap_or(u32::try_from(src.db.page_size()).unwrap_or(u32::MAX));
        let build = BuildOptions { page_size, fill_percent: opts.fill_percent, ..BuildOptions::default() };
        let want_trailer = opts.trailer.wants_trailer(src.has_trailer);
        // The meter counts the trailer hash and the layout walk (the write
        // walk's reads are reported as bytes written).
        let image = src.db.data().len() as u64;
        let hashed = src.has_trailer && !opts.skip_trailer_check;
        progress.reading(image.saturating_add(if hashed { image } else { 0 }));
        let mut atomic = AtomicFile::create_with(output, &[input], opts.output)?;
        let layout = etcdsnap_bolt::compact::plan(&src.db, build)?;
        let tmp = atomic.tmp_path().to_path_buf();
        let out_file = atomic.file()?;
        let (summary, digest) = crate::stream::write_hashed(
            out_file,
            output,
            Some(&tmp),
            want_trailer,
            &opts.cancel,
            (&mut *progress, layout.bytes),
            |w| Ok(etcdsnap_bolt::compact::compact_streamed(&src.db, w, build, &layout)?.1),
        )?;
        if let Some(d) = &digest {
            atomic.file()?.write_all(d).map_err(io_err(output))?;
        }
        Ok((atomic, (summary, digest, page_size)))
    };
    let done = crate::pipeline::interrupted(
        &opts.cancel,
        if opts.skip_trailer_check {
            whole_file_unchecked(input, &opts.cancel, &opts.meter, produce)
                .map(|c| c.map_trailer(|stored| stored.map_or(TrailerState::Absent, TrailerState::Unchecked)))
        } else {
            whole_file(input, on_mismatch, &opts.cancel, &opts.meter, produce)
                .map(|c| c.map_trailer(TrailerState::Checked))
        },
    )?;
    let (summary, digest, page_size) = done.made;
    let bytes_out = summary.bytes.saturating_add(if digest.is_some() { TRAILER_LEN as u64 } else { 0 });
    Ok(CompactReport {
        bytes_in: done.bytes_in,
        bytes_out,
        trailer_in: done.trailer_in,
        trailer_out: digest,
        page_size,
        buckets: summary.buckets,
        keys: summary.keys,
        stale_temps: done.stale_temps,
        elapsed: start.elapsed(),
    })
}
