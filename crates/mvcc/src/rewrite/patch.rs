//! The patched rewrite: the input's pages carried, only the changed
//! root-to-leaf paths written again (copy-on-write, as a bbolt transaction
//! commits), for edits that keep every entry (a bump, mark-compacted, a
//! target version) or drop a few. The output is written from the patch on
//! one core while this one walks the input through the rewrite's rules to
//! observe the output's figures and counts.

use std::path::Path;

use etcdsnap_bolt::builder::{Sink, DEFAULT_FILL_PERCENT};
use etcdsnap_bolt::patch::{Edit, Patch};
use etcdsnap_bolt::Db;
use etcdsnap_io::{AtomicFile, Cancel};

use super::buckets::{write_cluster, write_members, write_meta};
use super::entry::fate;
use super::hook::HookStep;
use super::observe::{finish_output, Nothing, Observed, Watched};
use super::options::{RestoreStamp, RewriteOptions};
use super::plan::{keep_all_stamp, Plan, Planner, Stamp};
use super::report::{OutputLayout, Produced};
use super::write::{emit, walk_analysing, Counts, WriteAsSeen};
use crate::error::{MvccError, Result};
use crate::pipeline::Input;
use crate::progress::Progress;
use crate::schema::{CLUSTER, KEY, MEMBERS, MEMBERS_REMOVED, META};
use crate::stream::Piece;

/// Whether the options keep the input's layout and at most drop entries (no
/// rename, no entry hook, no offline compaction, no lease dropped, same page
/// size and fill): then a copy-on-write patch can carry the input's pages.
/// Keep-all edits are always patched; drops are when small ([`drop_pass`],
/// [`drop_is_small`]).
fn patchable(db: &Db<'_>, opts: &RewriteOptions) -> bool {
    // Include, exclude and drop-key rules only drop entries; renames re-encode them.
    let drops_only = opts.rules.renames.is_empty();
    let same_layout = opts.page_size.is_none_or(|p| usize::try_from(p).ok() == Some(db.page_size()))
        && opts.fill_percent == DEFAULT_FILL_PERCENT;
    // An entry hook may drop or change any entry: it needs the rebuild.
    let no_hook = opts.hook.is_none();
    !opts.rebuild && drops_only && no_hook && opts.compact.is_none() && !opts.drop_orphan_leases && same_layout
}

/// Most `key`-bucket entries a patched rewrite drops (files of 4 KiB pages;
/// fewer with larger pages, see [`max_patched_drops`]). The drop pass keeps
/// their bucket keys (borrowed from the input's map) and the patch holds at
/// most one rewritten leaf per dropped entry (and their branches) in memory
/// until it is written, so this bounds the memory of a patched drop; past it
/// the rewrite is rebuilt.
pub const MAX_PATCHED_DROPS: usize = 4096;

/// The rewritten leaves a patched drop may hold: 16 MiB of pages.
const PATCHED_DROP_BYTES: usize = 16 << 20;

/// Most entries a patched drop of a file of `page_size` pages drops:
/// [`MAX_PATCHED_DROPS`], and no more leaves than 16 MiB of pages.
pub fn max_patched_drops(page_size: usize) -> usize {
    MAX_PATCHED_DROPS.min(PATCHED_DROP_BYTES.checked_div(page_size).unwrap_or(0))
}

/// A patched drop may rewrite at most 1/`PATCHED_DROP_SHARE` of the input's
/// pages (`replaced` ≤ high-water mark / 8); past it the rewrite is rebuilt,
/// which also writes a smaller file (no free pages).
pub const PATCHED_DROP_SHARE: u64 = 8;

/// Walks of the input a patched rewrite makes before the one that observes
/// the output's figures: the drop pass (when rules drop entries).
pub(crate) const DROP_PASS_WALKS: u64 = 1;

/// The walks of the input a patched rewrite of `db` with `opts` makes;
/// `None` when it cannot be patched (a rebuild).
pub(crate) fn planned_walks(db: &Db<'_>, opts: &RewriteOptions) -> Option<u64> {
    patchable(db, opts).then_some(if keeps_all(opts) { 1 } else { DROP_PASS_WALKS.saturating_add(1) })
}

/// Whether the options keep every entry (no rules, no point in time).
fn keeps_all(opts: &RewriteOptions) -> bool {
    opts.rules.is_empty() && opts.at_revision.is_none()
}

/// What a patch is made from.
enum Basis<'a> {
    /// Every entry kept: the stamp, taken from the last entry alone.
    KeepAll(Stamp),
    /// Some entries dropped: their bucket keys (in bucket order) and the
    /// analysis that found them.
    Drops(Vec<&'a [u8]>, Plan),
}

impl Basis<'_> {
    fn stamp(&self) -> Stamp {
        match self {
            Basis::KeepAll(s) => s.clone(),
            Basis::Drops(_, plan) => plan.stamp(),
        }
    }
}

/// The patched output, written into a temporary file beside `output` and
/// not committed; `None` when the rewrite must be rebuilt instead (options
/// a patch cannot express, a drop too large, a shape the patch declines).
pub(crate) fn write_file(
    src: &Input<'_>,
    output: &Path,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
) -> Result<Option<(AtomicFile, Produced)>> {
    if !patchable(&src.db, opts) {
        return Ok(None);
    }
    let basis = if keeps_all(opts) {
        Basis::KeepAll(keep_all_stamp(&src.db, opts)?)
    } else {
        match drop_pass(&src.db, opts, progress)? {
            Some(basis) => basis,
            None => return Ok(None),
        }
    };
    let drops: &[&[u8]] = match &basis {
        Basis::KeepAll(_) => &[],
        Basis::Drops(keys, _) => keys,
    };
    let Some(patch) = patch_plan(&src.db, &basis.stamp(), drops, opts.restore.as_ref())? else { return Ok(None) };
    if !drops.is_empty() && !drop_is_small(&src.db, &patch) {
        return Ok(None);
    }
    write_patched(src, output, opts, progress, basis, &patch).map(Some)
}

/// The analysis over the `key` bucket, listing the entries the rules drop;
/// `None` past [`max_patched_drops`] of them. Memory beyond the analysis'
/// is the dropped entries' keys only.
fn drop_pass<'a>(db: &Db<'a>, opts: &RewriteOptions, progress: &mut dyn Progress) -> Result<Option<Basis<'a>>> {
    let mut planner = Planner::new(db, opts, progress)?.collecting_drops(max_patched_drops(db.page_size()));
    let mut hook = HookStep::Absent;
    if let Some(b) = db.bucket(&[KEY])? {
        for (ordinal, e) in (0u64..).zip(b.cursor()) {
            let e = e?;
            let (at, fate) = fate(opts, &mut hook, ordinal, &e)?;
            planner.see(ordinal, e.key, at, &fate)?;
            if planner.dropped().is_none() {
                return Ok(None);
            }
        }
    }
    let keys = planner.dropped().map(<[&[u8]]>::to_vec).unwrap_or_default();
    Ok(Some(Basis::Drops(keys, planner.finish()?)))
}

/// Whether a drop `patch` of `db` is small enough to be patched rather than
/// rebuilt ([`PATCHED_DROP_SHARE`]).
fn drop_is_small(db: &Db<'_>, patch: &Patch) -> bool {
    patch.replaced.saturating_mul(PATCHED_DROP_SHARE) <= db.hwm()
}

/// The copy-on-write patch that deletes the `key`-bucket entries `drops` (in
/// bucket order) and stamps `stamp` on `db` (`None`: rebuild).
fn patch_plan(db: &Db<'_>, stamp: &Stamp, drops: &[&[u8]], restore: Option<&RestoreStamp>) -> Result<Option<Patch>> {
    let markers: Vec<(Vec<u8>, Vec<u8>)> = stamp.markers.iter().map(|m| (m.to_bytes().to_vec(), Vec::new())).collect();
    let meta_bucket = db.bucket(&[META])?;
    let mut meta = Collect::default();
    if let Some(b) = &meta_bucket {
        write_meta(b, &mut meta, stamp, restore)?;
    }
    let mut members = Collect::default();
    if let Some(r) = restore {
        write_members(&mut members, r)?;
    }
    let cluster_bucket = db.bucket(&[CLUSTER])?;
    let mut cluster = Collect::default();
    if let (Some(target), Some(b)) = (stamp.target, &cluster_bucket) {
        write_cluster(b, &mut cluster, target)?;
    }
    let mut edits = std::collections::HashMap::new();
    if !markers.is_empty() || !drops.is_empty() {
        edits.insert(KEY, Edit::Change { delete: drops, append: &markers });
    }
    if meta_bucket.is_some() {
        edits.insert(META, Edit::Replace(&meta.0));
    }
    if restore.is_some() {
        // The restore checked both buckets exist.
        edits.insert(MEMBERS, Edit::Replace(&members.0));
        edits.insert(MEMBERS_REMOVED, Edit::Replace(&[]));
    }
    if stamp.target.is_some() && cluster_bucket.is_some() {
        edits.insert(CLUSTER, Edit::Replace(&cluster.0));
    }
    Ok(etcdsnap_bolt::patch::plan(db, &edits)?)
}

/// Writes the patched output — new meta pages, the input's pages, the new
/// pages — hashed on the way on another core, while this one observes the
/// output's figures and counts by walking the input through the rewrite's
/// rules (with the analysis beside it when the patch keeps every entry).
fn write_patched(
    src: &Input<'_>,
    output: &Path,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
    basis: Basis<'_>,
    patch: &Patch,
) -> Result<(AtomicFile, Produced)> {
    let stamp = basis.stamp();
    let db = &src.db;
    let want_trailer = opts.trailer.wants_trailer(src.has_trailer);
    let mut atomic = AtomicFile::create_with(output, &[src.path], opts.output)?;
    let tmp = atomic.tmp_path().to_path_buf();
    let out_file = atomic.file()?;
    let metas = patch.meta_pages();
    let [metas_bytes, carried, pages] = patch.pieces(db, &metas);
    let pieces = [
        Piece::Bytes(metas_bytes),
        Piece::Carried { bytes: carried, file: src.file.file(), offset: patch.carried_offset() },
        Piece::Bytes(pages),
    ];
    let compact = stamp.scheduled.unwrap_or(0).max(stamp.finished.unwrap_or(0));
    // Stops the writer when this side fails.
    let stop_flag = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Cancel::new(stop_flag.clone());
    let (trailer_out, observed) = std::thread::scope(|scope| {
        let (cancel, stop_w) = (&opts.cancel, &stop);
        let writer = scope.spawn(move || {
            crate::stream::write_pieces(out_file, output, Some(&tmp), want_trailer, &[cancel, stop_w], &pieces)
        });
        let observed = observe(db, output, opts, progress, basis, &stamp, compact);
        if observed.is_err() {
            stop_flag.store(1, std::sync::atomic::Ordering::Relaxed);
        }
        let written = writer.join().map_err(|_| MvccError::WorkerPanicked("output writer"));
        (written, observed)
    });
    // This side's error explains a stopped writer.
    let (plan, c, (observed, kv)) = observed?;
    // A direct write from a map whose file shrank fails (EFAULT) rather than
    // faulting: name the input that changed, not the output.
    let trailer_out = match trailer_out? {
        Ok(t) => t,
        Err(e) => {
            src.file.check_unchanged()?;
            return Err(e);
        }
    };
    let observed = Observed { status: observed, kv, bytes: patch.bytes(), page_size: db.page_size(), compact };
    let (atomic, made) = finish_output(atomic, output, opts, trailer_out, observed)?;
    let carried_to = patch.carried.saturating_mul(db.page_size() as u64);
    let layout = OutputLayout::Patched { replaced: patch.replaced, carried_from: patch.carried_offset(), carried_to };
    Ok((atomic, Produced { layout, plan, c, made }))
}

/// The patched output's figures and counts, watched from the input walked
/// through the rewrite's rules, and the plan.
fn observe(
    db: &Db<'_>,
    output: &Path,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
    basis: Basis<'_>,
    stamp: &Stamp,
    compact: i64,
) -> Result<(Plan, Counts, (crate::status::StatusObserver, crate::hashkv::KvHasher))> {
    let mut nothing = Nothing;
    let mut watched = Watched::new(&mut nothing, compact);
    let (plan, c) = match basis {
        Basis::KeepAll(_) => {
            let mut pass = WriteAsSeen(Vec::new());
            let (plan, c) = walk_analysing(db, &mut watched, opts, progress, &mut HookStep::Absent, &mut pass)?;
            // The one check that stays: the patch being written was made from
            // a stamp taken from the last entry alone, the report comes from
            // the whole analysis; were they to differ, the report would
            // describe another file than the one written.
            if plan.stamp() != *stamp {
                return Err(MvccError::OutputVerification {
                    path: output.to_path_buf(),
                    what: format!("the patch was made for {stamp:?}, the plan gives {:?}", plan.stamp()),
                });
            }
            (plan, c)
        }
        Basis::Drops(_, plan) => {
            let mut c = Counts::default();
            emit(db, &mut watched, &plan, &mut HookStep::Absent, opts, &mut c)?;
            (plan, c)
        }
    };
    Ok((plan, c, watched.finish()?))
}

/// Entries a sink was given, for edits of small buckets.
#[derive(Default)]
struct Collect(Vec<(Vec<u8>, Vec<u8>)>);

impl Sink for Collect {
    fn create_bucket(&mut self, name: &[u8], _: u64) -> etcdsnap_bolt::Result<()> {
        Err(etcdsnap_bolt::BuildError::ValueInRoot.at(Vec::new(), name).into())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> etcdsnap_bolt::Result<()> {
        self.0.push((key.to_vec(), value.to_vec()));
        Ok(())
    }

    fn close_bucket(&mut self) -> etcdsnap_bolt::Result<()> {
        Ok(())
    }
}
