//! `wal rewrite`: the WAL side of a prefix filter/rename (same [`KeyRules`] as
//! the snapshot rewrite). Keys inside put / delete_range / range / txn requests
//! are filtered and renamed; entries left without a request become empty normal
//! entries (a leader no-op) so raft indexes stay contiguous; the key ranges of
//! auth role permission grants and revokes are renamed as the snapshot rewrite
//! renames role permissions; everything else is carried byte for byte. Segment
//! names and record order are those of the input; the CRC chain is regenerated.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use etcdsnap_io::{create_file_private, AtomicDir, DirOptions};
use etcdsnap_keys::{prefix_end, CompactRevKey, KeyRules, RuleCounter, RuleMatch, COMPACT_REV_KEY};
use etcdsnap_proto::etcdserverpb::{request_op, InternalRaftRequest, RequestOp, TxnRequest};
use etcdsnap_proto::raftpb::{Entry, EntryType};
use etcdsnap_proto::Message;

use crate::error::{Refusal, Result, WalError};
use crate::reader::read_wal_metered;
use crate::record::{Encoder, CRC_TYPE, ENTRY_TYPE};
use crate::segment::list_segments;

/// What the rewrite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteReport {
    /// Segments written.
    pub segments: u64,
    /// Records written.
    pub records: u64,
    /// Entry records.
    pub entries: u64,
    /// Entries whose request changed (keys renamed or some operations dropped).
    pub rewritten: u64,
    /// Entries whose requests were all filtered out, written as empty normal entries.
    pub emptied: u64,
    /// Operations (puts, deletes, ranges, nested txns) dropped inside kept txns.
    pub ops_dropped: u64,
    /// Txn compares dropped because their key is filtered out.
    pub compares_dropped: u64,
    /// Ranges that cover both kept and dropped keys, kept unchanged: `(index, "key..end")`.
    pub straddling: Vec<(u64, String)>,
    /// Normal entries that are not InternalRaftRequests (v2 requests), carried unchanged.
    pub v2_requests: u64,
    /// `auth_role_grant_permission` / `auth_role_revoke_permission` requests whose
    /// key range was renamed (as the snapshot rewrite renames role permissions).
    pub permissions_renamed: u64,
    /// Permission grants/revokes that reach both inside and outside a rename
    /// source, kept unchanged (one request cannot also grant the renamed part,
    /// as the snapshot rewrite does): `(index, "key..end")`.
    pub permissions_overlapping: Vec<(u64, String)>,
    /// What happened to `compact_rev_key` (absent: no request names it).
    pub compact_rev_key: CompactRevKey,
    /// Each key rule and how many request keys (single keys: puts, deletes,
    /// gets, compares) it matched; rules that match nothing are not errors
    /// here, as a WAL often holds only a few writes.
    pub rules: Vec<RuleMatch>,
}

impl RewriteReport {
    fn new(rules: &KeyRules) -> Self {
        Self {
            segments: 0,
            records: 0,
            entries: 0,
            rewritten: 0,
            emptied: 0,
            ops_dropped: 0,
            compares_dropped: 0,
            straddling: Vec::new(),
            v2_requests: 0,
            permissions_renamed: 0,
            permissions_overlapping: Vec::new(),
            compact_rev_key: CompactRevKey::Absent,
            rules: RuleCounter::new(rules).into_matches(),
        }
    }
}

enum Fate {
    Same,
    Changed,
    Dropped,
}

enum RangeFate {
    Keep(Vec<u8>, Vec<u8>),
    Drop,
    Straddle,
}

/// `[key, end)` with etcd's conventions: empty end = the single key, `\0` = to infinity.
struct Span<'a> {
    key: &'a [u8],
    end: Option<&'a [u8]>,
}

impl Span<'_> {
    fn contains(&self, k: &[u8]) -> bool {
        k >= self.key && self.end.is_none_or(|e| k < e)
    }

    fn intersects_prefix(&self, p: &[u8]) -> bool {
        let pend = prefix_end(p);
        let below_pend = pend.as_deref().is_none_or(|pe| self.key < pe);
        let above_p = self.end.is_none_or(|e| p < e);
        below_pend && above_p
    }

    fn inside_prefix(&self, p: &[u8]) -> bool {
        if !self.key.starts_with(p) {
            return false;
        }
        match (prefix_end(p), self.end) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(pe), Some(e)) => e <= pe.as_slice(),
        }
    }
}

fn range_fate(rules: &KeyRules, key: &[u8], range_end: &[u8]) -> RangeFate {
    if range_end.is_empty() {
        return match rules.apply(key) {
            Some(k) => RangeFate::Keep(k.into_owned(), Vec::new()),
            None => RangeFate::Drop,
        };
    }
    let span = Span { key, end: (range_end != [0]).then_some(range_end) };
    let all_kept = (rules.include.is_empty() || rules.include.iter().any(|p| span.inside_prefix(p)))
        && !rules.exclude.iter().any(|p| span.intersects_prefix(p))
        && !rules.drop_keys.iter().any(|k| span.contains(k));
    if all_kept {
        let (k, e) = rules.renamed_range(key, range_end);
        return RangeFate::Keep(k, e);
    }
    let no_keep_key = !rules.keep_keys.iter().any(|k| span.contains(k));
    let all_dropped = (!rules.include.is_empty() && !rules.include.iter().any(|p| span.intersects_prefix(p)))
        || rules.exclude.iter().any(|p| span.inside_prefix(p));
    if all_dropped && no_keep_key {
        RangeFate::Drop
    } else {
        RangeFate::Straddle
    }
}

/// Writes of one request that consume a revision when applied, by where they
/// sit: top level (put, delete_range), a txn's success and failure branches
/// (nested txns counted into the branch that holds them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Writes {
    top: u32,
    success: u32,
    failure: u32,
}

impl Writes {
    fn of(r: &InternalRaftRequest) -> Self {
        let mut w = Self { top: u32::from(r.put.is_some() || r.delete_range.is_some()), ..Self::default() };
        if let Some(t) = &r.txn {
            w.success = ops_writes(&t.success);
            w.failure = ops_writes(&t.failure);
        }
        w
    }

    /// Whether a group that wrote before writes nothing now: etcd would then
    /// not consume the revision it consumed in the source.
    fn lost_in(self, after: Writes) -> bool {
        (self.top > 0 && after.top == 0)
            || (self.success > 0 && after.success == 0)
            || (self.failure > 0 && after.failure == 0)
    }
}

fn ops_writes(ops: &[RequestOp]) -> u32 {
    ops.iter()
        .map(|op| match &op.request {
            Some(request_op::Request::RequestPut(_)) | Some(request_op::Request::RequestDeleteRange(_)) => 1,
            Some(request_op::Request::RequestTxn(t)) => ops_writes(&t.success).saturating_add(ops_writes(&t.failure)),
            _ => 0,
        })
        .sum()
}

/// Options of [`rewrite_with`].
#[derive(Debug, Clone, Default)]
pub struct RewriteOptions {
    /// Stops the rewrite once set to a non-zero value (the signal number): the
    /// temporary directory is removed and [`WalError::Interrupted`] returned.
    pub cancel: Option<Arc<AtomicUsize>>,
    /// The db's `consistent_index`: etcd replays the entries above it from the
    /// WAL on start. A filter that drops a write among them would shift the
    /// revision of every later replayed write, so it is refused. `None`: not
    /// known (no db beside the WAL), not checked.
    pub consistent_index: Option<u64>,
    /// Told the segment bytes read (a progress bar's count).
    pub meter: Option<etcdsnap_io::Meter>,
}

struct Ctx<'r> {
    rules: &'r KeyRules,
    index: u64,
    replayed_after: Option<u64>,
    cancel: Option<Arc<AtomicUsize>>,
    report: RewriteReport,
    counter: RuleCounter,
    /// Some request names `compact_rev_key`.
    compact_rev_key_seen: bool,
    /// A request the rules cannot express (a key renamed to the empty key): the rewrite fails.
    refused: Option<Refusal>,
}

impl Ctx<'_> {
    /// Applies the rules to one key range in place.
    fn range(&mut self, key: &mut Vec<u8>, range_end: &mut Vec<u8>) -> Fate {
        if range_end.is_empty() {
            self.counter.count(self.rules, key);
        }
        let span = Span { key, end: (range_end.as_slice() != [0]).then_some(range_end.as_slice()) };
        if (range_end.is_empty() && key.as_slice() == COMPACT_REV_KEY)
            || (!range_end.is_empty() && span.contains(COMPACT_REV_KEY))
        {
            self.compact_rev_key_seen = true;
        }
        match range_fate(self.rules, key, range_end) {
            RangeFate::Keep(k, _) if k.is_empty() => {
                // etcd rejects the empty key, as the snapshot rewrite refuses it.
                self.refused.get_or_insert_with(|| Refusal::RenameToEmptyKey {
                    index: self.index,
                    key: crate::entry::show(key),
                });
                Fate::Same
            }
            RangeFate::Keep(k, e) => {
                if k == *key && e == *range_end {
                    Fate::Same
                } else {
                    *key = k;
                    *range_end = e;
                    Fate::Changed
                }
            }
            RangeFate::Drop => Fate::Dropped,
            RangeFate::Straddle => {
                let text = format!("{}..{}", crate::entry::show(key), crate::entry::show(range_end));
                self.report.straddling.push((self.index, text));
                Fate::Same
            }
        }
    }

    fn ops(&mut self, ops: &mut Vec<RequestOp>) -> bool {
        let mut changed = false;
        let before = ops.len();
        ops.retain_mut(|op| {
            let fate = match &mut op.request {
                Some(request_op::Request::RequestPut(p)) => {
                    let mut end = Vec::new();
                    self.range(&mut p.key, &mut end)
                }
                Some(request_op::Request::RequestDeleteRange(d)) => self.range(&mut d.key, &mut d.range_end),
                Some(request_op::Request::RequestRange(g)) => self.range(&mut g.key, &mut g.range_end),
                Some(request_op::Request::RequestTxn(t)) => self.txn(t),
                None => Fate::Same,
            };
            changed |= matches!(fate, Fate::Changed);
            !matches!(fate, Fate::Dropped)
        });
        let dropped = before.saturating_sub(ops.len());
        self.report.ops_dropped = self.report.ops_dropped.saturating_add(dropped as u64);
        changed || dropped > 0
    }

    fn txn(&mut self, t: &mut TxnRequest) -> Fate {
        let mut changed = false;
        let before = t.compare.len();
        t.compare.retain_mut(|c| match self.range(&mut c.key, &mut c.range_end) {
            Fate::Same => true,
            Fate::Changed => {
                changed = true;
                true
            }
            Fate::Dropped => false,
        });
        let dropped = before.saturating_sub(t.compare.len());
        changed |= dropped > 0;
        changed |= self.ops(&mut t.success);
        changed |= self.ops(&mut t.failure);
        if t.success.is_empty() && t.failure.is_empty() && (before > 0 || changed) {
            // Nothing left to do: the whole txn goes (its compares with it).
            return Fate::Dropped;
        }
        self.report.compares_dropped = self.report.compares_dropped.saturating_add(dropped as u64);
        if changed {
            Fate::Changed
        } else {
            Fate::Same
        }
    }

    fn irr(&mut self, r: &mut InternalRaftRequest) -> Fate {
        if let Some(p) = &mut r.put {
            let mut end = Vec::new();
            return self.range(&mut p.key, &mut end);
        }
        if let Some(d) = &mut r.delete_range {
            return self.range(&mut d.key, &mut d.range_end);
        }
        if let Some(g) = &mut r.range {
            return self.range(&mut g.key, &mut g.range_end);
        }
        if let Some(t) = &mut r.txn {
            return self.txn(t);
        }
        if let Some(g) = &mut r.auth_role_grant_permission {
            return match &mut g.perm {
                Some(p) => self.permission(&mut p.key, &mut p.range_end),
                None => Fate::Same,
            };
        }
        if let Some(v) = &mut r.auth_role_revoke_permission {
            return self.permission(&mut v.key, &mut v.range_end);
        }
        Fate::Same
    }

    /// An auth role permission range: renamed with [`KeyRules::renamed_range`]
    /// exactly as the snapshot rewrite renames the roles' permissions, never filtered.
    fn permission(&mut self, key: &mut Vec<u8>, range_end: &mut Vec<u8>) -> Fate {
        if self.rules.renames.is_empty() {
            return Fate::Same;
        }
        let now = self.rules.renamed_permission(key, range_end);
        let [(k, e)] = now.as_slice() else {
            let text = format!("{}..{}", crate::entry::show(key), crate::entry::show(range_end));
            if self.replayed_after.is_some_and(|ci| self.index > ci) {
                // etcd replays this grant onto the rewritten db, where it would lack the renamed part.
                let index = self.index;
                self.refused
                    .get_or_insert_with(|| Refusal::ReplayedOverlappingGrant { index, permission: text.clone() });
            }
            self.report.permissions_overlapping.push((self.index, text));
            return Fate::Same;
        };
        let (k, e) = (k.clone(), e.clone());
        if k == *key && e == *range_end {
            return Fate::Same;
        }
        *key = k;
        *range_end = e;
        self.report.permissions_renamed = self.report.permissions_renamed.saturating_add(1);
        Fate::Changed
    }

    /// The new entry bytes, or `None` to carry `data` unchanged.
    fn entry(&mut self, data: &[u8]) -> Result<Option<Vec<u8>>> {
        let e = Entry::decode(data).map_err(|e| WalError::Refused(Refusal::EntryUndecodable(e.to_string())))?;
        self.index = e.index;
        let payload = e.data.as_deref().unwrap_or(&[]);
        if e.r#type != EntryType::EntryNormal as i32 || payload.is_empty() {
            return Ok(None);
        }
        let Ok(mut irr) = InternalRaftRequest::decode(payload) else {
            self.report.v2_requests = self.report.v2_requests.saturating_add(1);
            return Ok(None);
        };
        let before = Writes::of(&irr);
        let fate = self.irr(&mut irr);
        if let Some(ci) = self.replayed_after.filter(|&ci| e.index > ci) {
            let after = if matches!(fate, Fate::Dropped) { Writes::default() } else { Writes::of(&irr) };
            if before.lost_in(after) {
                return Err(WalError::Refused(Refusal::ReplayedWriteDropped { index: e.index, consistent_index: ci }));
            }
        }
        let new_data = match fate {
            Fate::Same => return Ok(None),
            Fate::Changed => {
                self.report.rewritten = self.report.rewritten.saturating_add(1);
                Some(irr.encode_to_vec())
            }
            Fate::Dropped => {
                self.report.emptied = self.report.emptied.saturating_add(1);
                None
            }
        };
        Ok(Some(Entry { data: new_data, ..e }.encode_to_vec()))
    }
}

/// Rewrites the WAL of `in_dir` into `out_dir` (which must not exist or be empty),
/// via a temporary directory beside it that is renamed into place when complete.
/// No replay check: see [`rewrite_with`].
pub fn rewrite(in_dir: &Path, out_dir: &Path, rules: &KeyRules) -> Result<RewriteReport> {
    rewrite_with(in_dir, out_dir, rules, RewriteOptions::default())
}

/// [`rewrite`], refusing filters that would shift the revisions of writes etcd
/// replays above `opts.consistent_index`.
pub fn rewrite_with(in_dir: &Path, out_dir: &Path, rules: &KeyRules, opts: RewriteOptions) -> Result<RewriteReport> {
    rules.validate().map_err(|e| WalError::Refused(Refusal::Rules(e)))?;
    let segments = list_segments(in_dir)?;
    if segments.is_empty() {
        return Err(WalError::Refused(Refusal::NoSegments { dir: in_dir.to_path_buf() }));
    }
    if let Some((a, b)) = crate::segment::sequence_gaps(&segments).first() {
        return Err(WalError::Refused(Refusal::SequenceGap { after: a.clone(), next: b.clone() }));
    }
    if let Some(parent) = out_dir.parent().filter(|p| !p.as_os_str().is_empty() && !p.is_dir()) {
        return Err(WalError::Refused(Refusal::NoOutputParent { dir: parent.to_path_buf() }));
    }
    if out_dir.exists() {
        let mut rd = fs::read_dir(out_dir).map_err(|e| WalError::io(out_dir, e))?;
        if rd.next().is_some() {
            return Err(WalError::Refused(Refusal::OutputNotEmpty { dir: out_dir.to_path_buf() }));
        }
    }
    let dir = AtomicDir::create(out_dir, DirOptions { replace_empty: true, remove_stale: false })?;
    let cancel = opts.cancel.clone();
    let result = write_all(&segments, dir.path(), rules, opts).and_then(|report| {
        dir.commit()?;
        Ok(report)
    });
    match cancel.map(|c| c.load(Ordering::SeqCst)).filter(|&s| s != 0) {
        Some(signal) if result.is_err() => Err(WalError::Interrupted { signal }),
        _ => result,
    }
}

fn write_all(
    segments: &[crate::segment::Segment],
    tmp: &Path,
    rules: &KeyRules,
    opts: RewriteOptions,
) -> Result<RewriteReport> {
    let mut ctx = Ctx {
        rules,
        index: 0,
        replayed_after: opts.consistent_index,
        cancel: opts.cancel.clone(),
        report: RewriteReport::new(rules),
        counter: RuleCounter::new(rules),
        compact_rev_key_seen: false,
        refused: None,
    };
    let mut enc: Option<Encoder> = None;
    let mut current: Option<(usize, PathBuf, BufWriter<File>)> = None;
    let end = read_wal_metered(segments, opts.meter.as_ref(), |i, f| {
        if current.as_ref().is_none_or(|(c, _, _)| *c != i) {
            if let Some((_, path, w)) = current.take() {
                finish(path, w)?;
            }
            let name = segments.get(i).map(|s| s.name.as_str()).unwrap_or("");
            let path = tmp.join(name);
            let file = create_file_private(&path)?;
            current = Some((i, path, BufWriter::with_capacity(1 << 20, file)));
            ctx.report.segments = ctx.report.segments.saturating_add(1);
        }
        let Some((_, path, w)) = current.as_mut() else { return Ok(()) };
        // The first crc record seeds the chain (non-zero when older segments were purged).
        let enc = enc.get_or_insert_with(|| Encoder::new(if f.record.rec_type == CRC_TYPE { f.record.crc } else { 0 }));
        let io = |e| WalError::io(path.clone(), e);
        ctx.report.records = ctx.report.records.saturating_add(1);
        if let Some(signal) = ctx.cancel.as_ref().map(|c| c.load(Ordering::Relaxed)).filter(|&s| s != 0) {
            return Err(WalError::Interrupted { signal });
        }
        match f.record.rec_type {
            CRC_TYPE => {
                enc.encode_crc_record(w).map_err(io)?;
            }
            ENTRY_TYPE => {
                ctx.report.entries = ctx.report.entries.saturating_add(1);
                let data = f.record.data();
                let rewritten = ctx.entry(data)?;
                if let Some(r) = ctx.refused.take() {
                    return Err(WalError::Refused(r));
                }
                match rewritten {
                    Some(new) => enc.encode(w, ENTRY_TYPE, Some(&new)).map_err(io)?,
                    None => enc.encode(w, ENTRY_TYPE, Some(data)).map_err(io)?,
                };
            }
            t => {
                enc.encode(w, t, f.record.data).map_err(io)?;
            }
        }
        Ok(())
    })?;
    if let Some((_, path, w)) = current.take() {
        finish(path, w)?;
    }
    if let Some(t) = end.torn {
        return Err(WalError::Refused(Refusal::TornTail { segment: t.segment, offset: t.offset, detail: t.detail }));
    }
    // As the snapshot rewrite: a prefix filter may not drop kube-apiserver's shared key by accident.
    ctx.report.compact_rev_key =
        rules.compact_rev_key(ctx.compact_rev_key_seen).map_err(|e| WalError::Refused(Refusal::Rules(e)))?;
    ctx.report.rules = ctx.counter.into_matches();
    if let Ok(d) = File::open(tmp) {
        d.sync_all().map_err(|e| WalError::io(tmp, e))?;
    }
    Ok(ctx.report)
}

fn finish(path: PathBuf, w: BufWriter<File>) -> Result<()> {
    let f = w.into_inner().map_err(|e| WalError::io(&path, e.into_error()))?;
    f.sync_all().map_err(|e| WalError::io(&path, e))
}
