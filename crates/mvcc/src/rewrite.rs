//! `rewrite`: filter, rename, bump, mark compacted or compact an etcd snapshot
//! offline, so that the stock restore of any etcd version accepts the result
//! and no client ever sees a revision go backwards.
//!
//! Two passes over the `key` bucket, both streaming: the first decides
//! (filters, rename collisions, key-bound encrypted values, lease references,
//! the compaction's keep set), the second writes through the bbolt builder.
//! Nothing but `key`-bucket values under renamed keys, the compaction meta
//! keys and renamed role permissions is re-encoded; every other byte is carried.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use etcdsnap_bolt::builder::{BuildOptions, Builder, DEFAULT_FILL_PERCENT};
use etcdsnap_bolt::{AtomicFile, Bucket, Cancel, CreateOptions, Db, MappedFile, StaleTemp};
use etcdsnap_keys::{encryption, KeyRules, RuleCounter, RuleMatch};
use etcdsnap_proto::{authpb, Message};

use crate::error::{MvccError, Result};
use crate::hashkv::{hash_kv, KeyValueHash, TombstoneRule};
use crate::index::Index;
use crate::kv::{encode_with_key, KvRef};
use crate::revision::{BucketKey, Revision};
use crate::schema::{read_meta, AUTH_ROLES, FINISHED_COMPACT_REV, KEY, LEASE, META, SCHEDULED_COMPACT_REV};
use crate::snapshot::TrailerMode;
use crate::status::{status, Status};
use crate::trailer::{self, Trailer, TRAILER_LEN};

pub use etcdsnap_keys::{CompactRevKey, COMPACT_REV_KEY};

/// Revisions a rewrite leaves free above the new latest one: etcd's revisions
/// are int64 and every write takes one; a bump that left fewer would put the
/// store within reach of the end.
pub const MIN_REVISION_HEADROOM: i64 = 1 << 62;

/// Poll the cancel flag every this many entries.
const CANCEL_EVERY: u64 = 4096;

/// Options of [`rewrite`].
#[derive(Debug, Clone, PartialEq)]
pub struct RewriteOptions {
    /// Which keys to keep and how to rename them.
    pub rules: KeyRules,
    /// Add one empty-value `key` entry at (latest + N, 0), as etcdutl's `--bump-revision`.
    pub bump_revision: Option<i64>,
    /// Set `scheduledCompactRev` to the new latest revision, as etcdutl's `--mark-compacted`.
    pub mark_compacted: bool,
    /// Compact offline at this revision (`Some(None)`: the new latest revision).
    pub compact: Option<Option<i64>>,
    /// Rename values encrypted by key-bound providers anyway.
    pub allow_key_bound_encrypted: bool,
    /// Drop lease records no kept key references.
    pub drop_orphan_leases: bool,
    /// Trailer of the output.
    pub trailer: TrailerMode,
    /// Page size of the output; `None` keeps the input's.
    pub page_size: Option<u32>,
    /// Fill percent of the output's pages.
    pub fill_percent: f64,
    /// Accept rules that match no key (refused by default: usually a typo).
    pub allow_empty_rules: bool,
    /// Whether an existing output may be replaced and stale temporary files removed.
    pub output: CreateOptions,
    /// Stops the rewrite (the temporary file is removed) once set.
    pub cancel: Cancel,
}

impl Default for RewriteOptions {
    fn default() -> Self {
        Self {
            rules: KeyRules::default(),
            bump_revision: None,
            mark_compacted: false,
            compact: None,
            allow_key_bound_encrypted: false,
            drop_orphan_leases: false,
            trailer: TrailerMode::LikeInput,
            page_size: None,
            fill_percent: DEFAULT_FILL_PERCENT,
            allow_empty_rules: false,
            output: CreateOptions::default(),
            cancel: Cancel::default(),
        }
    }
}

/// What [`rewrite`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct RewriteReport {
    /// Entries of the input's `key` bucket.
    pub revisions_read: u64,
    /// Entries written to the output's `key` bucket (markers included).
    pub revisions_kept: u64,
    /// Entries dropped by the key filter.
    pub revisions_filtered: u64,
    /// Entries dropped by the offline compaction.
    pub revisions_compacted: u64,
    /// Entries whose key was renamed.
    pub revisions_renamed: u64,
    /// Tombstones written.
    pub tombstones: u64,
    /// Revision markers written (empty values), the filter's and the bump's.
    pub markers_written: Vec<Revision>,
    /// Lease records in the input.
    pub leases_read: u64,
    /// Lease records written.
    pub leases_kept: u64,
    /// Lease records dropped (`drop_orphan_leases`).
    pub leases_dropped: u64,
    /// Lease records no kept live key references.
    pub leases_orphaned: u64,
    /// Kept values by Kubernetes encryption provider.
    pub encrypted: BTreeMap<String, u64>,
    /// Of those, values of key-bound providers under renamed keys.
    pub key_bound_renamed: u64,
    /// Roles whose permissions were renamed.
    pub roles_rewritten: u64,
    /// Every permission a rename changed.
    pub permissions_changed: Vec<PermissionChange>,
    /// Each key rule and how many stored revisions it matched.
    pub rules: Vec<RuleMatch>,
    /// Temporary files of earlier, killed runs found beside the output.
    pub stale_temps: Vec<StaleTemp>,
    /// `compact_rev_key`.
    pub compact_rev_key: CompactRevKey,
    /// Latest revision of the input.
    pub old_revision: i64,
    /// Latest revision of the output.
    pub new_revision: i64,
    /// `scheduledCompactRev` of the output.
    pub scheduled_compact: Option<i64>,
    /// `finishedCompactRev` of the output.
    pub finished_compact: Option<i64>,
    /// `snapshot status` figures of the output.
    pub status: Status,
    /// HashKV of the output at its latest revision, as etcd reports it once started.
    pub hashkv: KeyValueHash,
    /// The input's trailer.
    pub trailer_in: Trailer,
    /// The output's trailer digest, when written.
    pub trailer_out: Option<[u8; TRAILER_LEN]>,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// One auth role permission a rename changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionChange {
    /// The role.
    pub role: Vec<u8>,
    /// `authpb.Permission.permType`: 0 read, 1 write, 2 readwrite.
    pub perm_type: i32,
    /// The permission's key in the input.
    pub key: Vec<u8>,
    /// Its range end in the input (empty: the single key; `\0`: to the end).
    pub range_end: Vec<u8>,
    /// The `(key, range_end)` permissions of this type it became.
    pub now: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Progress of a long rewrite or compaction, for a progress bar.
pub trait Progress {
    /// `done` of `total` units of `phase` are processed (`total` 0: unknown):
    /// `analysing` counts `key`-bucket entries, `writing` bytes of the output.
    fn update(&mut self, phase: &'static str, done: u64, total: u64);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&mut self, _: &'static str, _: u64, _: u64) {}
}

/// What the first pass decided.
struct Plan<'a> {
    old_latest: Revision,
    new_latest: i64,
    markers: Vec<Revision>,
    keep: Option<(i64, HashSet<Revision>)>,
    referenced_leases: HashSet<i64>,
    key_bound_renamed: u64,
    compact_rev_key: CompactRevKey,
    scheduled: Option<i64>,
    finished: Option<i64>,
    revisions: u64,
    rules: Vec<RuleMatch>,
    cancel: Cancel,
    _keys: std::marker::PhantomData<&'a ()>,
}

fn corrupt(key: &[u8], e: impl ToString) -> MvccError {
    MvccError::value(KEY, key, e.to_string())
}

fn display(k: &[u8]) -> String {
    etcdsnap_bolt::display_bytes(k)
}

fn plan<'a>(db: &Db<'a>, opts: &RewriteOptions, progress: &mut dyn Progress) -> Result<Plan<'a>> {
    let rules = &opts.rules;
    let meta = read_meta(db)?;
    let mut old_latest = Revision::default();
    let mut last_kept = 0i64;
    let mut index = opts.compact.is_some().then(Index::default);
    // Lease of each kept key whose latest revision is a put with a lease: only
    // those keys, so memory follows leased keys, not the key space.
    let mut leased: HashMap<&'a [u8], i64> = HashMap::new();
    // Source keys by a hash of the key they become: collisions are confirmed by
    // comparing the renamed keys, so no renamed key is kept in memory.
    let hasher = std::collections::hash_map::RandomState::new();
    let mut targets: HashMap<u64, &'a [u8]> = HashMap::new();
    // Exact map for the rare keys whose 64-bit hash clashes with another target's.
    let mut spill: HashMap<Vec<u8>, &'a [u8]> = HashMap::new();
    let (mut key_bound, mut first_key_bound) = (0u64, None::<&[u8]>);
    let (mut present, mut revisions) = (false, 0u64);
    let mut counter = RuleCounter::new(rules);
    if let Some(b) = db.bucket(&[KEY])? {
        for e in b.cursor() {
            let e = e?;
            revisions += 1;
            if revisions % CANCEL_EVERY == 0 {
                opts.cancel.check()?;
            }
            if revisions % 65536 == 0 {
                progress.update("analysing", revisions, 0);
            }
            let bk = BucketKey::parse(e.key).map_err(|err| corrupt(e.key, err))?;
            old_latest = bk.rev;
            if e.value.is_empty() {
                // A revision marker (etcdutl's bump): not a user key, always kept.
                last_kept = bk.rev.main;
                if let Some(ix) = index.as_mut() {
                    ix.add(b"", bk);
                }
                continue;
            }
            let kv = KvRef::parse(e.value).map_err(|err| corrupt(e.key, err))?;
            present |= kv.key == COMPACT_REV_KEY;
            counter.count(rules, kv.key);
            if !rules.keeps(kv.key) {
                continue;
            }
            last_kept = bk.rev.main;
            let renamed = rules.rename_for(kv.key).is_some();
            if !rules.renames.is_empty() {
                let target = rules.renamed(kv.key);
                if target.is_empty() {
                    // etcd rejects empty keys, and its index would merge this one with the revision markers.
                    return Err(MvccError::Invalid(format!(
                        "rename of {} gives the empty key, which etcd rejects; nothing was written",
                        display(kv.key)
                    )));
                }
                let collision = |other: &[u8]| {
                    MvccError::Invalid(format!(
                        "rename collision: {} and {} would both become {}; nothing was written",
                        display(other),
                        display(kv.key),
                        display(&target)
                    ))
                };
                let h = std::hash::BuildHasher::hash_one(&hasher, &*target);
                match targets.get(&h) {
                    None => {
                        targets.insert(h, kv.key);
                    }
                    Some(&other) if other == kv.key => {}
                    Some(&other) if rules.renamed(other) == target => return Err(collision(other)),
                    Some(_) => match spill.get(&*target) {
                        Some(&other) if other != kv.key => return Err(collision(other)),
                        Some(_) => {}
                        None => {
                            spill.insert(target.to_vec(), kv.key);
                        }
                    },
                }
            }
            if !bk.tombstone {
                if let Some(enc) = encryption(kv.value) {
                    if renamed && enc.key_bound() {
                        key_bound += 1;
                        first_key_bound.get_or_insert(kv.key);
                    }
                }
            }
            if !bk.tombstone && kv.lease != 0 {
                leased.insert(kv.key, kv.lease);
            } else {
                leased.remove(kv.key);
            }
            if let Some(ix) = index.as_mut() {
                ix.add(kv.key, bk);
            }
        }
    }
    let compact_rev_key = rules.compact_rev_key(present).map_err(|e| MvccError::Invalid(e.to_string()))?;
    if let (Some(first), false) = (first_key_bound, opts.allow_key_bound_encrypted) {
        return Err(MvccError::Invalid(format!(
            "{key_bound} values under renamed keys are encrypted by a key-bound provider (aesgcm or kms), which \
             authenticates the etcd key: kube-apiserver could not decrypt them under the new key. First: {}. \
             Re-encrypt them before the move, or pass --allow-key-bound-encrypted; nothing was written",
            display(first)
        )));
    }
    let unmatched = counter.unmatched();
    if !unmatched.is_empty() && !opts.allow_empty_rules {
        let names: Vec<String> = unmatched.iter().map(ToString::to_string).collect();
        return Err(MvccError::Invalid(format!(
            "{} matched no key in {revisions} stored revisions (a typo?); pass --allow-empty-rules if that is \
             intended; nothing was written",
            names.join(", ")
        )));
    }
    let mut markers = Vec::new();
    let new_latest = match opts.bump_revision {
        Some(n) => {
            let max = i64::MAX - MIN_REVISION_HEADROOM;
            let main = old_latest.main.checked_add(n).filter(|&m| m <= max).ok_or_else(|| {
                MvccError::Invalid(format!(
                    "--bump-revision {n} would take the latest revision from {} to beyond {max}, leaving fewer than \
                     2^62 revisions before etcd's int64 limit; at most {} is allowed here",
                    old_latest.main,
                    max.saturating_sub(old_latest.main)
                ))
            })?;
            markers.push(Revision::new(main, 0));
            main
        }
        None => {
            // The entry holding the highest revision was filtered out: keep the revision.
            if last_kept < old_latest.main {
                markers.push(Revision::new(old_latest.main, 0));
            }
            old_latest.main
        }
    };
    let old_compact = meta.compact_rev();
    let keep = match (opts.compact, index) {
        (Some(at), Some(mut ix)) => {
            let r = at.unwrap_or(new_latest);
            if r > new_latest {
                return Err(MvccError::FutureRev { rev: r, current: new_latest });
            }
            if r < old_compact {
                return Err(MvccError::Compacted { rev: r, compact: old_compact });
            }
            for m in &markers {
                ix.add(b"", BucketKey { rev: *m, tombstone: false });
            }
            Some((r, ix.keep(r)))
        }
        _ => None,
    };
    let (scheduled, finished) = match (&keep, opts.mark_compacted) {
        (Some((r, _)), _) => (Some(*r), Some(*r)),
        (None, true) => (Some(new_latest), meta.finished_compact.map(|r| r.main)),
        (None, false) => (meta.scheduled_compact.map(|r| r.main), meta.finished_compact.map(|r| r.main)),
    };
    let referenced_leases = leased.into_values().collect();
    Ok(Plan {
        old_latest,
        new_latest,
        markers,
        keep,
        referenced_leases,
        key_bound_renamed: key_bound,
        compact_rev_key,
        scheduled,
        finished,
        revisions,
        rules: counter.into_matches(),
        cancel: opts.cancel.clone(),
        _keys: std::marker::PhantomData,
    })
}

#[derive(Default)]
struct Counts {
    kept: u64,
    filtered: u64,
    compacted: u64,
    renamed: u64,
    tombstones: u64,
    markers: Vec<Revision>,
    leases_read: u64,
    leases_kept: u64,
    leases_dropped: u64,
    leases_orphaned: u64,
    roles_rewritten: u64,
    permissions_changed: Vec<PermissionChange>,
    // Written values by encryption provider (after filtering and compaction).
    encrypted: BTreeMap<String, u64>,
}

fn compacted_away(plan: &Plan<'_>, rev: Revision) -> bool {
    match &plan.keep {
        Some((r, keep)) => rev.main <= *r && !keep.contains(&rev),
        None => false,
    }
}

fn write_key_bucket<W: Write>(
    b: &Bucket<'_>,
    out: &mut Builder<W>,
    plan: &Plan<'_>,
    rules: &KeyRules,
    c: &mut Counts,
) -> Result<()> {
    let mut buf = Vec::new();
    let mut done = 0u64;
    for e in b.cursor() {
        let e = e?;
        done += 1;
        if done % CANCEL_EVERY == 0 {
            plan.cancel.check()?;
        }
        let bk = BucketKey::parse(e.key).map_err(|err| corrupt(e.key, err))?;
        if e.value.is_empty() {
            if compacted_away(plan, bk.rev) {
                c.compacted += 1;
                continue;
            }
            out.put(e.key, e.value)?;
            c.kept += 1;
            continue;
        }
        let kv = KvRef::parse(e.value).map_err(|err| corrupt(e.key, err))?;
        // The filter first: entries of dropped keys count as filtered, with or without --compact.
        let Some(key) = rules.apply(kv.key) else {
            c.filtered += 1;
            continue;
        };
        if compacted_away(plan, bk.rev) {
            c.compacted += 1;
            continue;
        }
        c.kept += 1;
        c.tombstones += u64::from(bk.tombstone);
        if let (false, Some(enc)) = (bk.tombstone, encryption(kv.value)) {
            *c.encrypted.entry(enc.to_string()).or_insert(0) += 1;
        }
        if let Cow::Owned(new_key) = key {
            encode_with_key(&kv, &new_key, &mut buf);
            out.put(e.key, &buf)?;
            c.renamed += 1;
        } else {
            out.put(e.key, e.value)?;
        }
    }
    for m in &plan.markers {
        if compacted_away(plan, *m) {
            continue;
        }
        out.put(&m.to_bytes(), b"")?;
        c.kept += 1;
        c.markers.push(*m);
    }
    Ok(())
}

fn write_meta<W: Write>(b: &Bucket<'_>, out: &mut Builder<W>, plan: &Plan<'_>) -> Result<()> {
    let mut entries: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for e in b.cursor() {
        let e = e?;
        if e.is_bucket() {
            return Err(MvccError::value(META, e.key, "unexpected nested bucket".into()));
        }
        entries.insert(e.key.to_vec(), e.value.to_vec());
    }
    for (key, rev) in [(SCHEDULED_COMPACT_REV, plan.scheduled), (FINISHED_COMPACT_REV, plan.finished)] {
        if let Some(r) = rev {
            let bytes = Revision::new(r, 0).to_bytes().to_vec();
            // Carry the stored bytes when unchanged.
            entries.entry(key.to_vec()).and_modify(|v| {
                if BucketKey::parse(v).map(|k| k.rev.main) != Ok(r) {
                    v.clone_from(&bytes);
                }
            });
            entries.entry(key.to_vec()).or_insert(bytes);
        }
    }
    for (k, v) in &entries {
        out.put(k, v)?;
    }
    Ok(())
}

fn write_leases<W: Write>(
    b: &Bucket<'_>,
    out: &mut Builder<W>,
    plan: &Plan<'_>,
    drop: bool,
    c: &mut Counts,
) -> Result<()> {
    for e in b.cursor() {
        let e = e?;
        c.leases_read += 1;
        let id = <[u8; 8]>::try_from(e.key)
            .map(i64::from_be_bytes)
            .map_err(|_| MvccError::value(LEASE, e.key, "lease key is not 8 bytes".into()))?;
        if !plan.referenced_leases.contains(&id) {
            c.leases_orphaned += 1;
            if drop {
                c.leases_dropped += 1;
                continue;
            }
        }
        c.leases_kept += 1;
        out.put(e.key, e.value)?;
    }
    Ok(())
}

fn write_roles<W: Write>(b: &Bucket<'_>, out: &mut Builder<W>, rules: &KeyRules, c: &mut Counts) -> Result<()> {
    for e in b.cursor() {
        let e = e?;
        if rules.renames.is_empty() {
            out.put(e.key, e.value)?;
            continue;
        }
        let mut role =
            authpb::Role::decode(e.value).map_err(|err| MvccError::value(AUTH_ROLES, e.key, err.to_string()))?;
        let mut perms: Vec<authpb::Permission> = Vec::with_capacity(role.key_permission.len());
        let mut changes = Vec::new();
        for p in &role.key_permission {
            let now = rules.renamed_permission(&p.key, &p.range_end);
            if now.iter().any(|(k, _)| k.is_empty()) {
                // etcd refuses a permission with an empty key (isValidPermissionRange).
                return Err(MvccError::Invalid(format!(
                    "rename of the permission on {} of role {} gives the empty key, which etcd rejects; nothing was \
                     written",
                    display(&p.key),
                    display(&role.name)
                )));
            }
            if now.len() != 1 || now.first().is_some_and(|(k, end)| *k != p.key || *end != p.range_end) {
                changes.push(PermissionChange {
                    role: role.name.clone(),
                    perm_type: p.perm_type,
                    key: p.key.clone(),
                    range_end: p.range_end.clone(),
                    now: now.clone(),
                });
            }
            for (key, range_end) in now {
                add_permission(&mut perms, authpb::Permission { perm_type: p.perm_type, key, range_end });
            }
        }
        if changes.is_empty() {
            out.put(e.key, e.value)?;
            continue;
        }
        // etcd keeps a role's permissions sorted by key (RoleGrantPermission's permSlice).
        perms.sort_by(|a, b| a.key.cmp(&b.key));
        role.key_permission = perms;
        c.roles_rewritten += 1;
        c.permissions_changed.extend(changes);
        out.put(e.key, &role.encode_to_vec())?;
    }
    Ok(())
}

/// Adds `p` as etcd's RoleGrantPermission would: a grant on a range the role
/// already has merges the permission types instead of listing the range twice.
fn add_permission(perms: &mut Vec<authpb::Permission>, p: authpb::Permission) {
    const READWRITE: i32 = 2;
    match perms.iter_mut().find(|q| q.key == p.key && q.range_end == p.range_end) {
        Some(q) if q.perm_type != p.perm_type => q.perm_type = READWRITE,
        Some(_) => {}
        None => perms.push(p),
    }
}

/// Writes every bucket of `db`, transformed, into `out` (run twice: layout, then output).
fn emit<W: Write>(
    db: &Db<'_>,
    out: &mut Builder<W>,
    plan: &Plan<'_>,
    opts: &RewriteOptions,
    c: &mut Counts,
) -> Result<()> {
    let root = db.root()?;
    for top in root.cursor() {
        let top = top?;
        let bucket = root.child(top)?;
        out.create_bucket(top.key, bucket.sequence())?;
        match top.key {
            KEY => write_key_bucket(&bucket, out, plan, &opts.rules, c)?,
            META => write_meta(&bucket, out, plan)?,
            LEASE => write_leases(&bucket, out, plan, opts.drop_orphan_leases, c)?,
            AUTH_ROLES => write_roles(&bucket, out, &opts.rules, c)?,
            _ => etcdsnap_bolt::compact::copy_bucket(&bucket, out)?,
        }
        out.close_bucket()?;
    }
    Ok(())
}

fn validate(opts: &RewriteOptions) -> Result<()> {
    opts.rules.validate().map_err(|e| MvccError::Invalid(e.to_string()))?;
    if opts.bump_revision.is_some_and(|n| n <= 0) {
        return Err(MvccError::Invalid("--bump-revision must be positive".into()));
    }
    if opts.compact.is_some() && opts.mark_compacted {
        return Err(MvccError::Invalid("--compact already compacts; --mark-compacted would schedule it again".into()));
    }
    Ok(())
}

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
    rewrite_inner(input, output, opts, progress).map_err(|e| match opts.cancel.reason() {
        Some(signal) => MvccError::Bolt(etcdsnap_bolt::Error::Interrupted { signal }),
        None => e,
    })
}

fn rewrite_inner(
    input: &Path,
    output: &Path,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
) -> Result<RewriteReport> {
    let start = Instant::now();
    validate(opts)?;
    let file = MappedFile::open(input)?;
    let db = Db::open(trailer::split(&file).0)?;
    // The input's trailer is checked on another thread while the plan pass reads.
    let (trailer_in, plan) = std::thread::scope(|scope| {
        let check = scope.spawn(|| trailer::verify(&file));
        let plan = plan(&db, opts, progress);
        (check.join().unwrap_or(Trailer::Absent), plan)
    });
    if let Trailer::Mismatch { stored, computed } = trailer_in {
        return Err(MvccError::Invalid(format!(
            "{}: SHA-256 trailer mismatch (stored {}, computed {}): the input is damaged",
            input.display(),
            trailer::hex(&stored),
            trailer::hex(&computed)
        )));
    }
    let plan = plan?;
    let page_size = opts.page_size.unwrap_or(db.page_size() as u32);
    let build = BuildOptions {
        page_size,
        fill_percent: opts.fill_percent,
        txid: db.meta().txid.max(1),
        ..BuildOptions::default()
    };
    // Lay the file out first, so its meta pages can be written first and the
    // whole file hashed while it is written.
    let mut layout = Builder::plan(build)?;
    emit(&db, &mut layout, &plan, opts, &mut Counts::default())?;
    let layout = layout.finish()?;

    let want_trailer = opts.trailer.wants_trailer(trailer_in.is_present());
    let mut atomic = AtomicFile::create_with(output, &[input], opts.output)?;
    let out_file = atomic.file()?;
    let total = layout.bytes;
    let sink = (progress, total);
    let ((c, summary), trailer_out) =
        crate::stream::write_hashed(out_file, output, want_trailer, &opts.cancel, sink, |w| {
            let mut out = Builder::streamed(w, build, &layout)?;
            let mut c = Counts::default();
            emit(&db, &mut out, &plan, opts, &mut c)?;
            let (_, summary) = out.finish_streamed()?;
            Ok((c, summary))
        })?;
    let f = atomic.file()?;
    if let Some(d) = &trailer_out {
        f.write_all(d).map_err(|source| MvccError::Io { path: output.to_path_buf(), source })?;
    }
    let bytes_out = summary.bytes + if trailer_out.is_some() { TRAILER_LEN as u64 } else { 0 };
    opts.cancel.check()?;
    let stale_temps = atomic.stale().to_vec();
    atomic.commit()?;

    // Figures of what was written, read back from the output.
    let written = MappedFile::open(output)?;
    let out_db = Db::open(trailer::split(&written).0)?;
    let st = status(&out_db)?;
    let hkv = hash_kv(&out_db, 0, TombstoneRule::Skip)?;
    Ok(RewriteReport {
        revisions_read: plan.revisions,
        revisions_kept: c.kept,
        revisions_filtered: c.filtered,
        revisions_compacted: c.compacted,
        revisions_renamed: c.renamed,
        tombstones: c.tombstones,
        markers_written: c.markers,
        leases_read: c.leases_read,
        leases_kept: c.leases_kept,
        leases_dropped: c.leases_dropped,
        leases_orphaned: c.leases_orphaned,
        encrypted: c.encrypted,
        key_bound_renamed: plan.key_bound_renamed,
        roles_rewritten: c.roles_rewritten,
        permissions_changed: c.permissions_changed,
        rules: plan.rules,
        stale_temps,
        compact_rev_key: plan.compact_rev_key,
        old_revision: plan.old_latest.main,
        new_revision: plan.new_latest,
        scheduled_compact: plan.scheduled,
        finished_compact: plan.finished,
        status: st,
        hashkv: hkv,
        trailer_in,
        trailer_out,
        bytes_in: file.len() as u64,
        bytes_out,
        elapsed: start.elapsed(),
    })
}
