//! `salvage`: a damaged db or snapshot turned into a restorable snapshot
//! holding every revision that survives, and an exact account of what did not.
//!
//! 1. [`scan::find`] walks the active meta's tree as far as it holds and reads
//!    every other page on its own, recognising `key` and `lease` pages by
//!    content. A revision found in the tree wins over a copy found elsewhere
//!    (revisions never change once written, so copies agree); a copy found
//!    outside the tree at or below the compact revision is left out (it may
//!    be history a compaction deleted), so compacted history does not come back.
//! 2. [`history`] keeps the tree's records over stray copies and trims each
//!    key's history to what etcd could have written; [`write`] lays the
//!    output out from sizes, then writes it in one ordered pass hashed on the
//!    way (every bucket etcd creates, empty where nothing survived), bumped
//!    and marked compacted by default (clients re-list rather than trust a
//!    history with holes), with a SHA-256 trailer, so any etcd's stock
//!    restore accepts it. The whole-file skeleton ([`crate::pipeline`])
//!    checks the input's trailer on the other core meanwhile (a mismatch is
//!    reported, not refused: damage is expected) and commits the output
//!    atomically.
//! 3. The [`SalvageReport`] gives revisions recovered and lost as ranges over
//!    what is knowable — the revisions after the compact revision up to the
//!    latest one found — keys whose history has holes (version gaps), leases
//!    referenced but lost, and the pages that could not be read.

use std::path::Path;

use etcdsnap_bolt::builder::{BuildOptions, Builder};
use etcdsnap_io::{AtomicFile, Cancel, CreateOptions, MappedFile, Meter};

use crate::error::Result;
use crate::hashkv::KeyValueHash;
use crate::pipeline::{interrupted, whole_image, OnMismatch};
use crate::progress::NoProgress;
use crate::rewrite::{finish_output, Observed, RewriteOptions, Watched};
use crate::schema::{MetaInfo, META};
use crate::status::Status;
use crate::trailer::{self, Trailer, TRAILER_LEN};

mod history;
pub mod scan;
mod write;

pub use scan::{Source, UnreadablePage};

/// Options of [`salvage`].
#[derive(Debug, Clone)]
pub struct SalvageOptions {
    /// Bump the revision by this much and mark it compacted (`None`: neither).
    pub bump_revision: Option<i64>,
    /// Replace an existing output.
    pub output: CreateOptions,
    /// Stops the salvage once set.
    pub cancel: Cancel,
    /// The TTL, in seconds, of the lease records written for leases that
    /// kept keys reference but whose records were lost: etcd starts their
    /// clocks when a leader is elected, so a holder still alive keeps its
    /// lease with keep-alives and the keys of a gone one expire, as they
    /// would have. (Without a record, etcd would keep such keys forever.)
    pub lost_lease_ttl: i64,
}

/// [`SalvageOptions::lost_lease_ttl`] by default: an hour, the TTL
/// kube-apiserver gives the leases of its events (`--event-ttl`).
pub const LOST_LEASE_TTL: i64 = 3600;

impl Default for SalvageOptions {
    fn default() -> Self {
        Self {
            bump_revision: Some(1_000_000_000),
            output: CreateOptions::default(),
            cancel: Cancel::default(),
            lost_lease_ttl: LOST_LEASE_TTL,
        }
    }
}

/// An inclusive range of main revisions.
pub type RevRange = (i64, i64);

/// What one top-level bucket came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketOutcome {
    /// The bucket.
    pub name: String,
    /// Records written.
    pub records: u64,
    /// Where they came from: `tree`, `scan` (pages outside the tree), `lost`
    /// (the tree did not reach it and no page was recognised), `empty`.
    pub from: &'static str,
}

/// What [`salvage`] recovered and lost.
#[derive(Debug)]
pub struct SalvageReport {
    /// Page size used to read the input.
    pub page_size: usize,
    /// Pages in the input.
    pub pages: u64,
    /// Whether meta 0 and meta 1 validate.
    pub metas_valid: [bool; 2],
    /// Whether, with no valid meta, the tree was found by its root page.
    pub root_from_scan: bool,
    /// Leaf pages read through the tree.
    pub reachable_leaf_pages: u64,
    /// Pages outside the tree recognised as `key`-bucket pages.
    pub scanned_key_pages: u64,
    /// Pages the tree pointed at that could not be read.
    pub unreadable: Vec<UnreadablePage>,
    /// `key`-bucket records written (revisions, sub-revisions and markers).
    pub revisions_recovered: u64,
    /// Of them, found outside the tree.
    pub revisions_from_scan: u64,
    /// Copies found outside the tree at or below what the tree vouches for,
    /// left out (possibly history a compaction deleted).
    pub compacted_copies_ignored: u64,
    /// The compact revision: history at or below it is not knowable (0 when
    /// the `meta` bucket was not found).
    pub compact_revision: i64,
    /// Whether the `meta` bucket (and so the compact revision) was found.
    pub compact_revision_known: bool,
    /// The latest revision found.
    pub latest_revision: i64,
    /// Main revisions after the compact revision recovered, as ranges.
    pub recovered: Vec<RevRange>,
    /// Main revisions after the compact revision up to the latest lost, as ranges.
    pub lost: Vec<RevRange>,
    /// Live keys (latest revision not a tombstone) in the output.
    pub live_keys: u64,
    /// Keys whose recovered history has a hole (a version skipped, a
    /// generation without its tombstone): their revisions before the hole are
    /// left out, so what is written reads as a history etcd could have made.
    pub keys_with_history_gaps: Vec<Vec<u8>>,
    /// Revisions that survived but were left out that way (counted as lost).
    pub history_trimmed: u64,
    /// Lease ids kept keys reference that no lease record was found for:
    /// each is written anew with [`SalvageOptions::lost_lease_ttl`].
    pub leases_missing: Vec<i64>,
    /// The TTL those lease records were given.
    pub lost_lease_ttl: i64,
    /// Every top-level bucket, as written.
    pub buckets: Vec<BucketOutcome>,
    /// The input's SHA-256 trailer (a mismatch is expected of a damaged snapshot).
    pub input_trailer: Trailer,
    /// `meta/consistent_index` as found (`None` when the `meta` bucket was
    /// lost): a data dir's WAL entries above it are writes the db lacks.
    pub consistent_index: Option<u64>,
    /// What was written.
    pub output: SalvagedOutput,
}

/// The output of a [`salvage`], as `snapshot status` and HashKV see it.
#[derive(Debug, Clone)]
pub struct SalvagedOutput {
    /// Its latest revision (the bumped one, when bumped).
    pub new_revision: i64,
    /// `scheduledCompactRev` set by the bump's compaction mark.
    pub scheduled_compact: Option<i64>,
    /// Its `snapshot status`.
    pub status: Status,
    /// Its HashKV at the latest revision (etcd ≥3.5.16's rule).
    pub hashkv: KeyValueHash,
    /// Its SHA-256 trailer.
    pub trailer: [u8; TRAILER_LEN],
    /// Bytes written, the trailer included.
    pub bytes: u64,
}

/// Salvages `input` (a snapshot or raw db, damaged or not) into the snapshot
/// `output` (see the module docs).
pub fn salvage(input: &Path, output: &Path, opts: &SalvageOptions) -> Result<SalvageReport> {
    let done = interrupted(
        &opts.cancel,
        whole_image(input, OnMismatch::Report, &opts.cancel, &Meter::default(), |file| {
            produce(file, input, output, opts)
        }),
    )?;
    let mut report = done.made;
    report.input_trailer = done.trailer_in;
    Ok(report)
}

/// Finds what survives in `file`, writes it into a temporary file beside
/// `output` (not committed) and accounts for it.
fn produce(
    file: &MappedFile,
    input: &Path,
    output: &Path,
    opts: &SalvageOptions,
) -> Result<(AtomicFile, SalvageReport)> {
    let (image, _) = trailer::split(file);
    let mut found = scan::find(image);
    opts.cancel.check()?;
    let mut meta_info = MetaInfo::default();
    if let Some(m) = found.buckets.get(META) {
        for (k, v) in m {
            // A damaged meta record is left out, not fatal.
            let _ = meta_info.absorb(k, v);
        }
    }
    let known_compact = found.buckets.contains_key(META).then(|| meta_info.compact_rev());
    let compact = known_compact.unwrap_or(0);
    let mut revisions = std::mem::take(&mut found.revisions);
    let ignored = history::choose(&mut revisions, known_compact);
    let (trimmed, holed_keys) = history::trim_broken_history(&mut revisions);
    let account = history::account(&revisions, compact);
    let stamp = write::Stamp::new(account.latest, opts.bump_revision)?;
    let leases_missing = history::leases_missing(&revisions, &found.lease_ids());
    let recreated = write::lease_records(&leases_missing, opts.lost_lease_ttl)?;
    // Laid out from sizes first, so the file is written (and hashed) in order.
    let build = BuildOptions { page_size: u32::try_from(found.page_size).unwrap_or(4096), ..BuildOptions::default() };
    let mut layout = Builder::plan(build)?;
    write::emit(&mut layout, &found, &revisions, &stamp, &recreated)?;
    let planned = layout.finish()?;
    opts.cancel.check()?;
    let out_compact = stamp.scheduled.unwrap_or(0).max(meta_info.compact_rev());
    let mut atomic = AtomicFile::create_with(output, &[input], opts.output)?;
    let tmp = atomic.tmp_path().to_path_buf();
    let ((built, observed), digest) = crate::stream::write_hashed(
        atomic.file()?,
        output,
        Some(&tmp),
        true,
        &opts.cancel,
        (&mut NoProgress, planned.bytes),
        |w| {
            let mut out = Builder::streamed(w, build, &planned)?;
            let mut watched = Watched::new(&mut out, out_compact);
            let built = write::emit(&mut watched, &found, &revisions, &stamp, &recreated)?;
            let (status, kv) = watched.finish()?;
            let (_, summary) = out.finish_streamed()?;
            let observed =
                Observed { status, kv, bytes: summary.bytes, page_size: found.page_size, compact: out_compact };
            Ok((built, observed))
        },
    )?;
    let ro = RewriteOptions { cancel: opts.cancel.clone(), ..RewriteOptions::default() };
    let (atomic, made) = finish_output(atomic, output, &ro, digest, observed)?;
    let from_scan = revisions.values().filter(|(_, s)| *s == Source::Scanned).count() as u64;
    let report = SalvageReport {
        page_size: found.page_size,
        pages: found.pages,
        metas_valid: found.metas_valid,
        root_from_scan: found.root_from_scan,
        reachable_leaf_pages: found.reachable_leaves,
        scanned_key_pages: found.scanned_key_pages,
        unreadable: found.unreadable.clone(),
        revisions_recovered: revisions.len() as u64,
        revisions_from_scan: from_scan,
        compacted_copies_ignored: ignored,
        compact_revision: compact,
        compact_revision_known: known_compact.is_some(),
        latest_revision: account.latest,
        recovered: account.recovered,
        lost: account.lost,
        live_keys: account.live_keys,
        keys_with_history_gaps: holed_keys,
        history_trimmed: trimmed,
        leases_missing,
        lost_lease_ttl: opts.lost_lease_ttl,
        buckets: built.buckets,
        input_trailer: Trailer::Absent,
        consistent_index: meta_info.consistent_index,
        output: SalvagedOutput {
            new_revision: stamp.new_latest,
            scheduled_compact: stamp.scheduled.or(meta_info.scheduled_compact.map(|r| r.main)),
            status: made.st,
            hashkv: made.hkv,
            trailer: made.trailer_out.unwrap_or_default(),
            bytes: made.bytes_out,
        },
    };
    Ok((atomic, report))
}
