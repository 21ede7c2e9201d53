//! `transform`: the rewrite for embedders — a snapshot's bytes in, a rebuilt
//! snapshot out through any [`Write`], and a per-entry hook ([`EntryHook`]).
//!
//! [`transform`] runs the same two passes as [`rewrite`](crate::rewrite::rewrite)'s
//! rebuild (`RewriteOptions::rebuild`), through the same code, and gives the
//! same bytes for the same options: a plan pass over the `key` bucket, then
//! the output laid out by a builder that only counts pages, then written in
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

use std::fmt::Debug;
use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use etcdsnap_bolt::{Cancel, Db};
use sha2::{Digest, Sha256};

use crate::error::{MvccError, Result};
use crate::kv::KvRef;
use crate::revision::BucketKey;
use crate::rewrite::{OutputLayout, Progress, RewriteOptions, RewriteReport};
use crate::trailer::{self, TRAILER_LEN};

/// What an [`EntryHook`] does with one `key`-bucket entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write it as the key rules made it.
    Keep,
    /// Leave it out (counted in `RewriteReport::revisions_filtered`).
    Drop,
    /// Write it with this value (`mvccpb.KeyValue.value`) instead; every other
    /// field is kept. Refused for a tombstone, which carries no value.
    ReplaceValue(Vec<u8>),
}

/// One `key`-bucket entry, as an [`EntryHook`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The user key as stored in the input.
    pub key: &'a [u8],
    /// The name it gets in the output (`key` unless a rename rule applies).
    pub new_key: &'a [u8],
    /// Its revision and tombstone mark (the `key` bucket's key).
    pub at: BucketKey,
    /// The stored `KeyValue` (a tombstone carries only the key); `kv.key` is `key`.
    pub kv: KvRef<'a>,
}

/// A per-entry hook of [`transform`] and [`rewrite`](crate::rewrite::rewrite)
/// (`RewriteOptions::hook`): keeps, drops or replaces the value of every
/// `key`-bucket entry the key rules keep. Revision markers (empty values) are
/// not shown to it.
///
/// The hook must be deterministic: it is called for every such entry in the
/// plan pass (which decides the latest revision, lease references and the
/// compaction's keep set from its drops) and again in each write pass (a
/// rebuild lays the output out, then writes it), and every call for an entry
/// must give the same decision and the same bytes. A hook that is not is
/// caught where it changes the output's layout or its drop/replace counts
/// ([`MvccError::HookNotDeterministic`]), not everywhere.
///
/// Dropping some revisions of a key but not others rewrites its history (an
/// older value shows again, versions skip): decide on the key to remove a key
/// cleanly. A replaced value is written as given: the key-bound encryption
/// check and [`Reseal`](crate::rewrite::Reseal) concern only values the hook
/// keeps, so a hook that re-encrypts returns values sealed for `new_key`.
pub trait EntryHook: Send + Sync + Debug {
    /// The decision for `entry`, or why the rewrite must stop (reported as
    /// [`MvccError::Hook`] with the key and revision; nothing is written).
    fn decide(&self, entry: &Entry<'_>) -> std::result::Result<Decision, String>;
}

/// `hook`'s decision on the entry stored at `at` with `kv`, to be written as `new_key`.
pub(crate) fn decide(hook: &dyn EntryHook, new_key: &[u8], at: BucketKey, kv: &KvRef<'_>) -> Result<Decision> {
    let fail = |reason: String| MvccError::Hook { key: kv.key.to_vec(), revision: at.rev.main, reason };
    let d = hook.decide(&Entry { key: kv.key, new_key, at, kv: *kv }).map_err(fail)?;
    if at.tombstone && matches!(d, Decision::ReplaceValue(_)) {
        return Err(fail("a tombstone has no value to replace".into()));
    }
    Ok(d)
}

/// What a hook decided over a whole pass, to compare passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HookTally {
    pub(crate) dropped: u64,
    pub(crate) replaced: u64,
}

impl HookTally {
    pub(crate) fn add(&mut self, d: &Decision) {
        match d {
            Decision::Keep => {}
            Decision::Drop => self.dropped = self.dropped.saturating_add(1),
            Decision::ReplaceValue(_) => self.replaced = self.replaced.saturating_add(1),
        }
    }

    /// An error unless `written` (a write pass) equals `self` (the plan pass).
    pub(crate) fn check(self, written: Self) -> Result<()> {
        if self == written {
            return Ok(());
        }
        Err(MvccError::HookNotDeterministic {
            planned_drops: self.dropped,
            planned_replaced: self.replaced,
            drops: written.dropped,
            replaced: written.replaced,
        })
    }
}

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
    transform_inner(input, out, opts, progress).map_err(|e| match opts.cancel.reason() {
        Some(signal) => MvccError::Bolt(etcdsnap_bolt::Error::Interrupted { signal }),
        None => e,
    })
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
    // The trailer is checked on another core while the plan and layout
    // passes run; nothing is written before both are done.
    let (trailer_in, prepared) = std::thread::scope(|scope| {
        let check = scope.spawn(|| trailer::verify(input));
        let prepared = crate::rewrite::plan_and_lay_out(&db, opts, progress).map(|(plan, layout)| (layout, plan));
        (check.join().map_err(|_| MvccError::WorkerPanicked("trailer check")), prepared)
    });
    let trailer_in = trailer_in?;
    crate::rewrite::refuse_mismatch(&trailer_in, Path::new(INPUT))?;
    let (layout, plan) = prepared?;
    opts.cancel.check()?;
    let want_trailer = opts.trailer.wants_trailer(stored.is_some());
    let hashing = Hashing {
        out,
        hasher: want_trailer.then(Sha256::new),
        written: 0,
        next_report: REPORT_EVERY,
        total: layout.bytes(),
        progress,
        cancel: opts.cancel.clone(),
    };
    let (hashing, c, observed) = crate::rewrite::write_rebuilt(&db, hashing, &layout, &plan, opts)?;
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
    let made = crate::rewrite::Made { layout: OutputLayout::Rebuilt, plan, c, st, hkv, trailer_out, bytes_out };
    let report = made.report(opts, trailer_in, input.len() as u64, Vec::new(), start.elapsed());
    Ok((out, report))
}
