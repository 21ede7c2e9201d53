//! The rebuild: every page of the output written anew, in two walks of the
//! `key` bucket. The first ([`analyse`]) runs the analysis and lays the
//! output's pages out from the sizes of what will be written (a builder that
//! only counts pages, fed lengths: nothing is encoded or re-sealed); the
//! second ([`write_rebuilt`]) writes it in one sequential stream, meta pages
//! first, so the whole file is hashed as it goes out. Each entry is decided
//! by [`fate`](super::entry::fate) in both walks; the entry hook is asked in
//! the first and its answers replayed in the second, and values are re-sealed
//! once, in the second.

use std::io::Write;
use std::path::Path;

use etcdsnap_bolt::builder::{BuildOptions, BuildSummary, Builder, Discard};
use etcdsnap_bolt::{Db, Entry as BoltEntry};
use etcdsnap_io::AtomicFile;

use super::entry::Fate;
use super::hook::{HookMemo, HookStep};
use super::observe::{finish_output, Observed, Watched};
use super::options::RewriteOptions;
use super::plan::{compacted_away, Plan};
use super::report::{OutputLayout, Produced};
use super::write::{emit, walk_analysing, Counts, KeyPass};
use crate::error::{MvccError, Result};
use crate::pipeline::Input;
use crate::progress::Progress;
use crate::revision::BucketKey;
use crate::schema::KEY;

/// Walks of the input a rebuild makes before it reports bytes written: the
/// analysis (the second walk is the write).
pub(crate) const WALKS_BEFORE_WRITING: u64 = 1;

/// The first walk's findings: the plan, the page layout, the hook's answers.
pub(crate) struct Analysed {
    pub(crate) plan: Plan,
    build: BuildOptions,
    planned: BuildSummary,
    memo: HookMemo,
}

impl Analysed {
    /// Bytes of the bbolt image (`pgid × pageSize`).
    pub(crate) fn bytes(&self) -> u64 {
        self.planned.bytes
    }
}

/// The first walk: the analysis, and the output's page layout.
pub(crate) fn analyse(db: &Db<'_>, opts: &RewriteOptions, progress: &mut dyn Progress) -> Result<Analysed> {
    // The meta's page size is a u32 to begin with.
    let page_size = opts.page_size.unwrap_or(u32::try_from(db.page_size()).unwrap_or(u32::MAX));
    let build = BuildOptions {
        page_size,
        fill_percent: opts.fill_percent,
        txid: db.meta().txid.max(1),
        ..BuildOptions::default()
    };
    let mut layout = Builder::plan(build)?;
    let mut memo = HookMemo::default();
    let mut hook = HookStep::ask(opts.hook.as_deref(), &mut memo);
    let mut sizes = KeySizes::new(opts);
    let (plan, _) = walk_analysing(db, &mut layout, opts, progress, &mut hook, &mut sizes)?;
    Ok(Analysed { plan, build, planned: layout.finish()?, memo })
}

/// The second walk: the output written into `w` as [`analyse`] laid it
/// out, its status and HashKV observed on the way; returns `w`.
pub(crate) fn write_rebuilt<W: Write>(
    db: &Db<'_>,
    w: W,
    a: &Analysed,
    opts: &RewriteOptions,
) -> Result<(W, Counts, Observed)> {
    let compact = a.plan.compact_revision();
    let mut out = Builder::streamed(w, a.build, &a.planned)?;
    let mut c = Counts::default();
    let mut watched = Watched::new(&mut out, compact);
    emit(db, &mut watched, &a.plan, &mut a.memo.replay(), opts, &mut c)?;
    let (status, kv) = watched.finish()?;
    let (w, summary) = out.finish_streamed()?;
    let page_size = usize::try_from(a.build.page_size).unwrap_or(usize::MAX);
    Ok((w, c, Observed { status, kv, bytes: summary.bytes, page_size, compact }))
}

/// A rebuilt output file at `output`, written (hashed on the way) into a
/// temporary file beside it; not committed.
pub(crate) fn write_file(
    src: &Input<'_>,
    output: &Path,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
) -> Result<(AtomicFile, Produced)> {
    let a = analyse(&src.db, opts, progress)?;
    let want_trailer = opts.trailer.wants_trailer(src.has_trailer);
    let mut atomic = AtomicFile::create_with(output, &[src.path], opts.output)?;
    let tmp = atomic.tmp_path().to_path_buf();
    let out_file = atomic.file()?;
    let sink = (progress, a.bytes());
    let ((c, observed), trailer_out) =
        crate::stream::write_hashed(out_file, output, Some(&tmp), want_trailer, &opts.cancel, sink, |w| {
            let (_, c, observed) = write_rebuilt(&src.db, w, &a, opts)?;
            Ok((c, observed))
        })?;
    let (atomic, made) = finish_output(atomic, output, opts, trailer_out, observed)?;
    Ok((atomic, Produced { layout: OutputLayout::Rebuilt, plan: a.plan, c, made }))
}

/// A value length too large for a bbolt value (and the tombstone mark).
const DROPPED: u32 = u32::MAX;
/// The bit of a [`KeySizes`] length that marks a tombstone (an 18-byte key).
const TOMBSTONE: u32 = 1 << 31;

/// The first walk's record of the `key` bucket: the written length of each
/// entry's value (4 bytes per entry), so the bucket's pages are laid out
/// once the analysis is complete — an offline compaction decides what the
/// bucket keeps only then — without walking it again.
struct KeySizes {
    lens: Vec<u32>,
    compaction: Option<CompactionFacts>,
}

/// What the offline compaction needs of the entries beyond the keep set:
/// which are above its revision R, and which are tombstones at R.
struct CompactionFacts {
    /// R when the options give it; `None`: the new latest revision, at or
    /// above every entry of the input.
    at: Option<i64>,
    /// The first entry above R.
    first_above: Option<u64>,
    /// Tombstones at R (R unknown yet: at the highest revision so far).
    tombstones: Vec<u64>,
    /// The revision of `tombstones` when R is unknown yet.
    tombstones_at: i64,
}

impl KeySizes {
    fn new(opts: &RewriteOptions) -> Self {
        let compaction =
            opts.compact.map(|at| CompactionFacts { at, first_above: None, tombstones: Vec::new(), tombstones_at: 0 });
        Self { lens: Vec::new(), compaction }
    }

    /// Whether the offline compaction removes the kept entry at `ordinal`.
    fn compacted(&self, plan: &Plan, ordinal: u64, tombstone: bool) -> bool {
        let (Some((r, keep)), Some(c)) = (&plan.keep, &self.compaction) else { return false };
        let at_or_below = c.first_above.is_none_or(|f| ordinal < f);
        // Newer etcd keeps a tombstone at exactly R (see CompactTombstones).
        let tombstone_at_r = tombstone
            && plan.keep_compact_tombstone
            && (c.at.is_some() || *r == plan.old_latest.main)
            && c.tombstones.binary_search(&ordinal).is_ok();
        at_or_below && !keep.keeps(ordinal) && !tombstone_at_r
    }
}

impl KeyPass<Builder<Discard>> for KeySizes {
    fn entry(
        &mut self,
        _: &mut Builder<Discard>,
        _: &Plan,
        ordinal: u64,
        e: &BoltEntry<'_>,
        at: BucketKey,
        fate: Fate<'_, '_>,
        _: &mut Counts,
    ) -> Result<()> {
        let len = match fate.written_len(e.value) {
            None => DROPPED,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|&n| n < TOMBSTONE)
                .ok_or_else(|| MvccError::value(KEY, e.key, format!("a value of {n} bytes is too large for bbolt")))?,
        };
        self.lens.push(if at.tombstone && len != DROPPED { len | TOMBSTONE } else { len });
        if let Some(c) = self.compaction.as_mut() {
            let main = at.rev.main;
            match c.at {
                Some(r) => {
                    if main > r && c.first_above.is_none() {
                        c.first_above = Some(ordinal);
                    }
                    if at.tombstone && main == r {
                        c.tombstones.push(ordinal);
                    }
                }
                None => {
                    if main != c.tombstones_at {
                        c.tombstones_at = main;
                        c.tombstones.clear();
                    }
                    if at.tombstone {
                        c.tombstones.push(ordinal);
                    }
                }
            }
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Builder<Discard>, plan: &Plan, done: u64, _: &mut Counts) -> Result<()> {
        for (ordinal, &v) in (0u64..).zip(&self.lens) {
            if v == DROPPED {
                continue;
            }
            let tombstone = v & TOMBSTONE != 0;
            if self.compacted(plan, ordinal, tombstone) {
                continue;
            }
            out.put_sized(&stand_in_key(ordinal, tombstone), (v & !TOMBSTONE) as usize)?;
        }
        for (ordinal, m) in (done..).zip(&plan.markers) {
            if !compacted_away(plan, ordinal, BucketKey { rev: *m, tombstone: false }) {
                out.put_sized(&stand_in_key(ordinal, false), 0)?;
            }
        }
        self.lens = Vec::new();
        Ok(())
    }
}

/// A key of a `key`-bucket entry's length (17 bytes, 18 for a tombstone)
/// that sorts by `ordinal`: the layout depends on key lengths only.
fn stand_in_key(ordinal: u64, tombstone: bool) -> Vec<u8> {
    let mut k = ordinal.to_be_bytes().to_vec();
    k.resize(if tombstone { 18 } else { 17 }, 0);
    k
}
