//! `transform`: the rewrite for embedders — a snapshot's bytes in, a rebuilt
//! snapshot out through any [`Write`], and a per-entry hook ([`EntryHook`]).
//!
//! [`transform`] runs the same two walks as [`rewrite`](crate::rewrite::rewrite)'s
//! rebuild (`RewriteOptions::rebuild`), through the same code, and gives the
//! same bytes for the same options: the analysis, with the output's pages
//! laid out from sizes beside it, then the output written in
//! one sequential stream — meta pages first, no seek, no file, no temporary
//! file, no `copy_file_range` — with the SHA-256 trailer appended as
//! [`RewriteOptions::trailer`] asks. The sink can be an in-memory buffer, a
//! socket or an object-store upload.
//!
//! With default options (no key rule, no bump, no hook) the output is an
//! *identity compaction*: every bucket, key and value of the input, laid out
//! anew in key order with no free pages — what `bbolt compact` does at the
//! bbolt level — so Go bbolt's check accepts it and its `snapshot status`
//! hash and HashKV equal the input's.
//!
//! The [`EntryHook`] sees every `key`-bucket entry the key rules keep and
//! keeps it, drops it or replaces its value; renaming stays the key rules'
//! job ([`etcdsnap_keys::KeyRules::renames`]), so rename collisions and role
//! permissions are handled in one place.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use etcdsnap_mvcc::rewrite::{NoProgress, RewriteOptions};
//! use etcdsnap_mvcc::transform::{transform, Decision, Entry, EntryHook};
//!
//! /// Drops every Event, upper-cases the values of one prefix.
//! #[derive(Debug)]
//! struct Scrub;
//!
//! impl EntryHook for Scrub {
//!     fn decide(&self, e: &Entry<'_>) -> Result<Decision, String> {
//!         if e.key.starts_with(b"/registry/events/") {
//!             return Ok(Decision::Drop);
//!         }
//!         if e.new_key.starts_with(b"/app/") && !e.at.tombstone {
//!             return Ok(Decision::ReplaceValue(e.kv.value.to_ascii_uppercase()));
//!         }
//!         Ok(Decision::Keep)
//!     }
//! }
//!
//! let input = std::fs::read("snapshot.db")?;
//! let opts = RewriteOptions { hook: Some(Arc::new(Scrub)), ..RewriteOptions::default() };
//! let (out, report) = transform(&input, Vec::new(), &opts, &mut NoProgress)?;
//! println!("{} bytes, {} dropped, {} replaced", out.len(), report.revisions_filtered, report.values_replaced);
//! # Ok(()) }
//! ```

use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use etcdsnap_bolt::Db;
use etcdsnap_io::Cancel;
use sha2::{Digest, Sha256};

use crate::error::{MvccError, Result};
use crate::pipeline::{beside, interrupted, refuse_mismatch};
use crate::progress::Progress;
use crate::rewrite::{analyse, write_rebuilt, Made, OutputLayout, Produced, RewriteOptions, RewriteReport};
pub use crate::rewrite::{Decision, Entry, EntryHook};
use crate::trailer::{self, TRAILER_LEN};

/// Stands for the input and the output in errors: neither is a file here.
const INPUT: &str = "<transform input>";
const OUTPUT: &str = "<transform output>";

/// Report progress (and poll the cancel flag) every this many bytes written.
const REPORT_EVERY: u64 = 4 << 20;

/// The writer the builder writes through: hashes (for the trailer), counts,
/// reports progress, and stops once the rewrite is cancelled.
struct Hashing<'p, W: Write> {
    out: W,
    hasher: Option<Sha256>,
    written: u64,
    next_report: u64,
    total: u64,
    progress: &'p mut dyn Progress,
    cancel: Cancel,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.out.write(data)?;
        let done = data.get(..n).unwrap_or(data);
        if let Some(h) = self.hasher.as_mut() {
            h.update(done);
        }
        self.written = self.written.saturating_add(n as u64);
        if self.written >= self.next_report {
            self.next_report = self.written.saturating_add(REPORT_EVERY);
            self.progress.update("writing", self.written, self.total);
            // Not ErrorKind::Interrupted: write_all retries on that.
            if self.cancel.reason().is_some() {
                return Err(io::Error::other("interrupted"));
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Rewrites the snapshot (or raw db) `input` into `out` as
/// [`rewrite`](crate::rewrite::rewrite) does with `rebuild` set — same bytes,
/// same report but for `stale_temps` (none) — and returns `out` with the
/// report (see the module docs).
///
/// A trailer on `input` is checked before anything is written; a mismatch is
/// refused. Everything `rewrite` refuses, and the hook's failures, stop the
/// transform before the first byte reaches `out`. An error after that (an
/// I/O error of `out`, cancellation) leaves an incomplete output in `out`,
/// to be discarded. `out` gets small writes (pages): wrap an unbuffered
/// sink in a [`std::io::BufWriter`].
///
/// `RewriteOptions::rebuild` is implied; `output` and `verify_output`
/// concern output files and are not used (run [`crate::verify::verify`] on
/// the bytes to check them).
pub fn transform<W: Write>(
    input: &[u8],
    out: W,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
) -> Result<(W, RewriteReport)> {
    interrupted(&opts.cancel, transform_inner(input, out, opts, progress))
}

fn transform_inner<W: Write>(
    input: &[u8],
    out: W,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
) -> Result<(W, RewriteReport)> {
    let start = Instant::now();
    crate::rewrite::validate(opts)?;
    let (image, stored) = trailer::split(input);
    let db = Db::open(image)?;
    // The trailer is checked on another core while the first walk runs;
    // nothing is written before both are done.
    let (trailer_in, analysed) = beside(|| Ok(trailer::verify(input)), || analyse(&db, opts, progress));
    let trailer_in = trailer_in?;
    refuse_mismatch(&trailer_in, Path::new(INPUT))?;
    let analysed = analysed?;
    opts.cancel.check()?;
    let want_trailer = opts.trailer.wants_trailer(stored.is_some());
    let hashing = Hashing {
        out,
        hasher: want_trailer.then(Sha256::new),
        written: 0,
        next_report: REPORT_EVERY,
        total: analysed.bytes(),
        progress,
        cancel: opts.cancel.clone(),
    };
    let (hashing, c, observed) = write_rebuilt(&db, hashing, &analysed, opts)?;
    let Hashing { mut out, hasher, written, .. } = hashing;
    let io = |source| MvccError::Io { path: OUTPUT.into(), source };
    let trailer_out: Option<[u8; TRAILER_LEN]> = hasher.map(|h| h.finalize().into());
    if let Some(d) = &trailer_out {
        out.write_all(d).map_err(io)?;
    }
    out.flush().map_err(io)?;
    let bytes_out = written.saturating_add(if trailer_out.is_some() { TRAILER_LEN as u64 } else { 0 });
    opts.cancel.check()?;
    let (st, hkv) = observed.figures(Path::new(OUTPUT))?;
    let made = Made { st, hkv, trailer_out, bytes_out };
    let produced = Produced { layout: OutputLayout::Rebuilt, plan: analysed.plan, c, made };
    let report = produced.report(opts, trailer_in, input.len() as u64, Vec::new(), start.elapsed());
    Ok((out, report))
}
