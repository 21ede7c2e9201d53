//! `rewrite`: filter, rename, bump, mark compacted or compact an etcd snapshot
//! offline, so that the stock restore of any etcd version accepts the result
//! and no client ever sees a revision go backwards.
//!
//! The pipeline, top to bottom:
//!
//! 1. [`rewrite`] (below) validates the options ([`options`]) and runs the
//!    whole-file skeleton ([`crate::pipeline`]): the input mapped, its
//!    trailer checked on a second core, the output committed only once the
//!    trailer matched and the input did not change.
//! 2. Every `key`-bucket entry's fate — kept, dropped by the rules or the
//!    hook, renamed, given the hook's value — is decided in one place
//!    ([`entry`]); the analysis ([`plan`]) turns the fates into the new latest
//!    revision, markers, compaction keep set and refusals.
//! 3. The output is either **patched** ([`patch`]: the input's pages carried,
//!    changed paths copied on write; keep-all edits and small drops) or
//!    **rebuilt** ([`rebuild`]: walk 1 analyses and lays pages out from
//!    sizes, walk 2 writes). Both write the buckets through [`write`] (`key`)
//!    and [`buckets`] (the others), watched by [`observe`] for the output's
//!    `snapshot status` and HashKV, and end in a [`RewriteReport`] ([`report`]).
//!
//! Nothing but `key`-bucket values under renamed keys or replaced by the
//! entry hook, the compaction meta keys and renamed role permissions is
//! re-encoded; every other byte is carried.
//!
//! [`crate::transform::transform`] is the rebuild without files: bytes in,
//! any `Write` out, through the same code.

use std::path::Path;
use std::time::Instant;

use crate::error::{MvccError, Refusal, Result};
use crate::pipeline::{interrupted, whole_file, OnMismatch};
pub use crate::progress::{NoProgress, Progress};
use crate::schema::{MEMBERS, MEMBERS_REMOVED, META};

mod buckets;
mod entry;
mod hook;
mod observe;
mod options;
mod patch;
mod plan;
mod rebuild;
mod report;
mod write;

pub use etcdsnap_keys::{CompactRevKey, Reseal, COMPACT_REV_KEY};
pub use hook::{Decision, Entry, EntryHook};
pub use options::{CompactTombstones, InputTrailer, RestoreStamp, RewriteOptions, MIN_REVISION_HEADROOM};
pub use patch::{max_patched_drops, MAX_PATCHED_DROPS, PATCHED_DROP_SHARE};
pub use report::{OutputLayout, PermissionChange, RewriteReport};

pub(crate) use observe::{finish_output, Observed, Watched};
pub(crate) use options::validate;
pub(crate) use rebuild::{analyse, write_rebuilt};
pub(crate) use report::{Made, Produced};

/// Rewrites the snapshot or db at `input` into `output` (see the module docs).
///
/// Once `opts.cancel` is set the rewrite stops, removes its temporary file and
/// returns the bolt layer's `Interrupted` error.
pub fn rewrite(
    input: &Path,
    output: &Path,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
) -> Result<RewriteReport> {
    let start = Instant::now();
    validate(opts)?;
    let done = interrupted(
        &opts.cancel,
        whole_file(input, on_mismatch(opts), &opts.cancel, &opts.meter, |src| {
            require_input(src, opts)?;
            // What the meter counts before bytes written are reported: the
            // trailer hash beside the walks of the file.
            let image = src.db.data().len() as u64;
            let hashed = if src.has_trailer { image } else { 0 };
            let walks = |n: u64| hashed.saturating_add(image.saturating_mul(n));
            let patching = patch::planned_walks(&src.db, opts);
            progress.reading(walks(patching.unwrap_or(rebuild::WALKS_BEFORE_WRITING)));
            match patch::write_file(src, output, opts, progress)? {
                Some(patched) => Ok(patched),
                None => {
                    // A drop pass that found too much to patch was walked already.
                    let done = patching.map_or(0, |_| patch::DROP_PASS_WALKS);
                    progress.reading(walks(done.saturating_add(rebuild::WALKS_BEFORE_WRITING)));
                    rebuild::write_file(src, output, opts, progress)
                }
            }
        }),
    )?;
    Ok(done.made.report(opts, done.trailer_in, done.bytes_in, done.stale_temps, start.elapsed()))
}

/// What the skeleton does with a trailer mismatch under `opts`.
fn on_mismatch(opts: &RewriteOptions) -> OnMismatch {
    match opts.input_trailer {
        InputTrailer::Skipped => OnMismatch::Report,
        InputTrailer::CheckedIfPresent | InputTrailer::Required => OnMismatch::Refuse,
    }
}

/// Refuses an input without the trailer `opts` require, or without the
/// buckets a restore replaces.
fn require_input(src: &crate::pipeline::Input<'_>, opts: &RewriteOptions) -> Result<()> {
    if opts.input_trailer == InputTrailer::Required && !src.has_trailer {
        return Err(MvccError::Refused(Refusal::TrailerMissing { path: src.path.to_path_buf() }));
    }
    if opts.restore.is_some() {
        for name in [MEMBERS, MEMBERS_REMOVED, META] {
            if src.db.bucket(&[name])?.is_none() {
                let bucket = String::from_utf8_lossy(name).into_owned();
                return Err(MvccError::Refused(Refusal::RestoreBucketMissing { bucket }));
            }
        }
    }
    Ok(())
}
