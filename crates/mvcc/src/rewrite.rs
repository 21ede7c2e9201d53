//! `rewrite`: filter, rename, bump, mark compacted or compact an etcd snapshot
//! offline, so that the stock restore of any etcd version accepts the result
//! and no client ever sees a revision go backwards.
//!
//! Two passes over the `key` bucket, both streaming: the first decides
//! (filters, rename collisions, key-bound encrypted values, lease references,
//! the compaction's keep set), the second writes through the bbolt builder.
//! Nothing but `key`-bucket values under renamed keys or replaced by the
//! entry hook, the compaction meta keys and renamed role permissions is
//! re-encoded; every other byte is carried.
//!
//! [`crate::transform::transform`] is the rebuild without files: bytes in,
//! any `Write` out, through the same code.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use etcdsnap_bolt::builder::{BuildOptions, Builder, Sink, DEFAULT_FILL_PERCENT};
use etcdsnap_bolt::{AtomicFile, Bucket, Cancel, CreateOptions, Db, MappedFile, StaleTemp};
use etcdsnap_keys::{encryption, KeyRules, RuleCounter, RuleMatch};
use etcdsnap_proto::{authpb, Message};

use crate::error::{MvccError, Refusal, Result};
use crate::hashkv::{hash_kv, KeyValueHash, KvHasher, TombstoneRule};
use crate::index::{KeepSet, KeepSetBuilder};
use crate::kv::{encode_with_key, KvRef};
use crate::revision::{BucketKey, Revision};
use crate::schema::{
    read_meta, EtcdLine, AUTH_ROLES, CLUSTER, CLUSTER_VERSION, FINISHED_COMPACT_REV, KEY, LEASE, META,
    SCHEDULED_COMPACT_REV, STORAGE_VERSION,
};
use crate::snapshot::TrailerMode;
use crate::status::{status, Status, StatusObserver};
use crate::stream::Piece;
use crate::trailer::{self, Trailer, TRAILER_LEN};
use crate::transform::{Decision, EntryHook, HookTally};

pub use etcdsnap_keys::{CompactRevKey, COMPACT_REV_KEY};

/// Revisions a rewrite leaves free above the new latest one: etcd's revisions
/// are int64 and every write takes one; a bump that left fewer would put the
/// store within reach of the end.
pub const MIN_REVISION_HEADROOM: i64 = 1 << 62;

/// Poll the cancel flag every this many entries.
const CANCEL_EVERY: u64 = 4096;

/// Options of [`rewrite`].
#[derive(Debug, Clone)]
pub struct RewriteOptions {
    /// Which keys to keep and how to rename them.
    pub rules: KeyRules,
    /// Add one empty-value `key` entry at (latest + N, 0), as etcdutl's `--bump-revision`.
    pub bump_revision: Option<i64>,
    /// Set `scheduledCompactRev` to the new latest revision, as etcdutl's `--mark-compacted`.
    pub mark_compacted: bool,
    /// Compact offline at this revision (`Some(None)`: the new latest revision).
    pub compact: Option<Option<i64>>,
    /// What the offline compaction does with a tombstone stored at exactly the
    /// compact revision.
    pub compact_tombstones: CompactTombstones,
    /// Re-seal key-bound encrypted values under renamed keys instead of
    /// refusing them (`--reencrypt`).
    pub reseal: Option<std::sync::Arc<dyn Reseal>>,
    /// Keeps, drops or replaces the value of each `key`-bucket entry the key
    /// rules keep ([`EntryHook`]); a hook makes every rewrite a rebuild.
    pub hook: Option<std::sync::Arc<dyn EntryHook>>,
    /// Stamp the output for an older etcd line (`meta/storageVersion`,
    /// `cluster/clusterVersion`), as `etcdutl migrate --target-version` does to
    /// a data dir: only 3.5 and 3.6, and only below the input's own line.
    pub target_version: Option<EtcdLine>,
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
    /// Before committing, read the output back: run the full check
    /// ([`crate::verify::verify`]) and compare its status and HashKV with the
    /// figures observed while writing it.
    pub verify_output: bool,
    /// Lay out every page anew even when the edits keep every page (a keep-all
    /// bump, mark-compacted, target version): the output is then compacted
    /// (no free pages). By default such edits are patched copy-on-write.
    pub rebuild: bool,
}

impl Default for RewriteOptions {
    fn default() -> Self {
        Self {
            rules: KeyRules::default(),
            bump_revision: None,
            mark_compacted: false,
            compact: None,
            compact_tombstones: CompactTombstones::Keep,
            target_version: None,
            reseal: None,
            hook: None,
            allow_key_bound_encrypted: false,
            drop_orphan_leases: false,
            trailer: TrailerMode::LikeInput,
            page_size: None,
            fill_percent: DEFAULT_FILL_PERCENT,
            allow_empty_rules: false,
            output: CreateOptions::default(),
            cancel: Cancel::default(),
            verify_output: false,
            rebuild: false,
        }
    }
}

/// Re-seals values that a key-bound encryption provider wrote (the etcd key is
/// their authenticated data), so they stay readable under their renamed key.
/// Implemented by `etcdsnap-k8s` from a Kubernetes EncryptionConfiguration.
pub trait Reseal: Send + Sync + std::fmt::Debug {
    /// Called in the analysis pass, before anything is written, for every
    /// key-bound value under a renamed key: decrypts it under `old_key` and
    /// returns the label it is counted under (`aesgcm/key1`), or why it
    /// cannot be re-sealed (wrong key, unknown key name, unsupported provider).
    fn check(&self, old_key: &[u8], value: &[u8]) -> std::result::Result<String, String>;

    /// The value sealed again for `new_key`: same provider and key name, a
    /// new nonce. `rev` (the revision key) is unique per stored value, so an
    /// implementation can derive nonces that are fresh per run yet identical
    /// across the passes of one run (the layout pass and the write pass must
    /// see the same bytes). The output has the input's length.
    fn reseal(
        &self,
        old_key: &[u8],
        new_key: &[u8],
        rev: &[u8],
        value: &[u8],
    ) -> std::result::Result<(String, Vec<u8>), String>;

    /// Calls made to outside services so far (a KMS plugin's `Status`,
    /// `Decrypt`), by provider label and method; for the report.
    fn calls(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        BTreeMap::new()
    }
}

/// What a compaction at revision R does with a tombstone stored at exactly R.
///
/// etcd ≥3.5.16, ≥3.4.34, 3.6 and 3.7 keep it (their index compaction selects
/// the generation whose tombstone equals R and keeps that tombstone; etcd PR
/// #18274 with backports #18474/#18475); etcd ≤3.5.15 and ≤3.4.33 — 3.4.23 and
/// 3.5.1 among them — delete it with the rest of its generation. Served keys
/// and `endpoint hashkv` are the same either way (HashKV never hashes that
/// tombstone); the stored revisions, and so `snapshot status`'s hash, differ.
///
/// The default is `Keep`, the rule of every maintained release. A file cannot
/// tell which patch release wrote it (3.5.1 and 3.5.35 write the same schema),
/// so matching a ≤3.5.15 / ≤3.4.33 etcd byte for byte needs `Drop` explicitly;
/// a kept tombstone is harmless there (it is deleted at its next compaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompactTombstones {
    /// Keep it (etcd ≥3.5.16, ≥3.4.34, 3.6, 3.7).
    #[default]
    Keep,
    /// Delete it (etcd ≤3.5.15, ≤3.4.33).
    Drop,
}

impl CompactTombstones {
    /// `keep` or `drop`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Drop => "drop",
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
    /// Entries dropped by the key filter or the entry hook.
    pub revisions_filtered: u64,
    /// Entries dropped by the offline compaction.
    pub revisions_compacted: u64,
    /// Entries whose key was renamed.
    pub revisions_renamed: u64,
    /// Entries written with the value the entry hook gave ([`Decision::ReplaceValue`]).
    pub values_replaced: u64,
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
    /// Of those, values of key-bound providers under renamed keys (left as
    /// they are: unreadable under the new key).
    pub key_bound_renamed: u64,
    /// Values re-sealed for their renamed key (`--reencrypt`), by provider/key name.
    pub resealed: BTreeMap<String, u64>,
    /// Calls the re-sealing made to outside services (KMS plugins), by
    /// provider and method ([`Reseal::calls`]).
    pub reseal_calls: BTreeMap<String, BTreeMap<String, u64>>,
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
    /// How the output was laid out.
    pub layout: OutputLayout,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// How a rewrite laid its output out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLayout {
    /// Every page written anew, in key order (free pages dropped).
    Rebuilt,
    /// The input's pages carried; `replaced` of them written again as new
    /// pages on the changed root-to-leaf paths (copy-on-write, as a bbolt
    /// transaction commits).
    Patched {
        /// Pages written again.
        replaced: u64,
    },
}

impl OutputLayout {
    /// `rebuilt` or `patched`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rebuilt => "rebuilt",
            Self::Patched { .. } => "patched",
        }
    }
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
pub(crate) struct Plan<'a> {
    old_latest: Revision,
    new_latest: i64,
    markers: Vec<Revision>,
    keep: Option<(i64, KeepSet)>,
    /// Whether the compaction keeps a tombstone at exactly its revision.
    keep_compact_tombstone: bool,
    /// `--target-version`, checked against the input.
    target: Option<EtcdLine>,
    /// `--reencrypt`.
    reseal: Option<std::sync::Arc<dyn Reseal>>,
    /// The entry hook, and what it decided in this pass.
    hook: Option<std::sync::Arc<dyn EntryHook>>,
    hook_tally: HookTally,
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

pub(crate) fn plan<'a>(db: &Db<'a>, opts: &RewriteOptions, progress: &mut dyn Progress) -> Result<Plan<'a>> {
    let mut planner = Planner::new(db, opts, progress)?;
    if let Some(b) = db.bucket(&[KEY])? {
        for e in b.cursor() {
            planner.entry(&e?)?;
        }
    }
    planner.finish()
}

/// The analysis pass over the `key` bucket, entry by entry in bucket order:
/// run by [`plan`] over the bucket alone, or beside the write pass where
/// nothing written depends on what it finds (a patched rewrite).
struct Planner<'a, 'o, 'p> {
    opts: &'o RewriteOptions,
    progress: &'p mut dyn Progress,
    meta: crate::schema::MetaInfo,
    old_latest: Revision,
    last_kept: i64,
    /// etcd's keep set for the offline compaction: one record per live key
    /// while this pass runs, one bit per entry after it.
    index: Option<KeepSetBuilder>,
    /// Lease of each kept key whose latest revision is a put with a lease: only
    /// those keys, so memory follows leased keys, not the key space.
    leased: HashMap<&'a [u8], i64>,
    /// Source keys by a hash of the key they become: collisions are confirmed by
    /// comparing the renamed keys, so no renamed key is kept in memory.
    hasher: std::collections::hash_map::RandomState,
    targets: HashMap<u64, &'a [u8]>,
    /// Exact map for the rare keys whose 64-bit hash clashes with another target's.
    spill: HashMap<Vec<u8>, &'a [u8]>,
    key_bound: u64,
    first_key_bound: Option<&'a [u8]>,
    present: bool,
    revisions: u64,
    /// Whether a revision of compact_rev_key survives the entry hook.
    hook_kept_compact_rev_key: bool,
    hook_tally: HookTally,
    counter: RuleCounter,
    /// The bucket keys of the entries the rules drop (for a patched drop).
    drops: DropList<'a>,
    drop_cap: usize,
}

/// Whether a [`Planner`] lists the entries the rules drop.
enum DropList<'a> {
    Off,
    Listing(Vec<&'a [u8]>),
    /// More than the cap were dropped.
    Past,
}

impl<'a, 'o, 'p> Planner<'a, 'o, 'p> {
    fn new(db: &Db<'a>, opts: &'o RewriteOptions, progress: &'p mut dyn Progress) -> Result<Self> {
        Ok(Self {
            opts,
            progress,
            meta: read_meta(db)?,
            old_latest: Revision::default(),
            last_kept: 0,
            index: opts.compact.map(|at| KeepSetBuilder::new(at.unwrap_or(i64::MAX))),
            leased: HashMap::new(),
            hasher: std::collections::hash_map::RandomState::new(),
            targets: HashMap::new(),
            spill: HashMap::new(),
            key_bound: 0,
            first_key_bound: None,
            present: false,
            revisions: 0,
            hook_kept_compact_rev_key: false,
            hook_tally: HookTally::default(),
            counter: RuleCounter::new(&opts.rules),
            drops: DropList::Off,
            drop_cap: 0,
        })
    }

    /// Also lists the bucket keys of the entries the rules drop, up to `cap`
    /// of them ([`dropped`](Self::dropped)).
    fn collecting_drops(self, cap: usize) -> Self {
        Self { drops: DropList::Listing(Vec::new()), drop_cap: cap, ..self }
    }

    /// The entries the rules dropped so far, in bucket order; `None` when not
    /// collected or past the cap.
    fn dropped(&self) -> Option<&[&'a [u8]]> {
        match &self.drops {
            DropList::Listing(l) => Some(l),
            DropList::Off | DropList::Past => None,
        }
    }

    /// The next entry of the `key` bucket.
    fn entry(&mut self, e: &etcdsnap_bolt::Entry<'a>) -> Result<()> {
        let (opts, rules) = (self.opts, &self.opts.rules);
        // The entry's position in bucket order: the write pass counts the same way.
        let ordinal = self.revisions;
        self.revisions = self.revisions.saturating_add(1);
        if self.revisions.checked_rem(CANCEL_EVERY) == Some(0) {
            opts.cancel.check()?;
        }
        if self.revisions.is_multiple_of(65536) {
            self.progress.update("analysing", self.revisions, 0);
        }
        let bk = BucketKey::parse(e.key).map_err(|err| corrupt(e.key, err))?;
        self.old_latest = bk.rev;
        if e.value.is_empty() {
            // A revision marker (etcdutl's bump): not a user key, always kept.
            self.last_kept = bk.rev.main;
            if let Some(ix) = self.index.as_mut() {
                ix.add(ordinal, b"", bk);
            }
            return Ok(());
        }
        let kv = KvRef::parse(e.value).map_err(|err| corrupt(e.key, err))?;
        self.present |= kv.key == COMPACT_REV_KEY;
        self.counter.count(rules, kv.key);
        if !rules.keeps(kv.key) {
            match &mut self.drops {
                DropList::Listing(l) if l.len() < self.drop_cap => l.push(e.key),
                DropList::Listing(_) => self.drops = DropList::Past,
                DropList::Off | DropList::Past => {}
            }
            return Ok(());
        }
        let target = rules.renamed(kv.key);
        // The hook's drops count as the filter's: they move the latest
        // kept revision, the lease references and the keep set.
        let replaced = match &opts.hook {
            Some(h) => {
                let d = crate::transform::decide(&**h, &target, bk, &kv)?;
                self.hook_tally.add(&d);
                match d {
                    Decision::Drop => return Ok(()),
                    Decision::Keep => false,
                    Decision::ReplaceValue(_) => true,
                }
            }
            None => false,
        };
        self.hook_kept_compact_rev_key |= kv.key == COMPACT_REV_KEY;
        self.last_kept = bk.rev.main;
        let renamed = rules.rename_for(kv.key).is_some();
        if !rules.renames.is_empty() {
            if target.is_empty() {
                // etcd rejects empty keys, and its index would merge this one with the revision markers.
                return Err(MvccError::Refused(Refusal::RenameToEmptyKey { key: kv.key.to_vec() }));
            }
            let collision = |other: &[u8]| {
                MvccError::Refused(Refusal::RenameCollision {
                    first: other.to_vec(),
                    second: kv.key.to_vec(),
                    target: target.to_vec(),
                })
            };
            let h = std::hash::BuildHasher::hash_one(&self.hasher, &*target);
            match self.targets.get(&h) {
                None => {
                    self.targets.insert(h, kv.key);
                }
                Some(&other) if other == kv.key => {}
                Some(&other) if rules.renamed(other) == target => return Err(collision(other)),
                Some(_) => match self.spill.get(&*target) {
                    Some(&other) if other != kv.key => return Err(collision(other)),
                    Some(_) => {}
                    None => {
                        self.spill.insert(target.to_vec(), kv.key);
                    }
                },
            }
        }
        // A replaced value is the hook's: neither checked nor re-sealed.
        if !bk.tombstone && !replaced {
            if let Some(enc) = encryption(kv.value) {
                if renamed && enc.key_bound() {
                    match &opts.reseal {
                        // Every value is decrypted here, before anything is written.
                        Some(r) => {
                            r.check(kv.key, kv.value).map_err(|reason| MvccError::Reseal {
                                key: kv.key.to_vec(),
                                revision: bk.rev.main,
                                reason,
                            })?;
                        }
                        None => {
                            self.key_bound = self.key_bound.saturating_add(1);
                            self.first_key_bound.get_or_insert(kv.key);
                        }
                    }
                }
            }
        }
        if !bk.tombstone && kv.lease != 0 {
            self.leased.insert(kv.key, kv.lease);
        } else if !self.leased.is_empty() {
            self.leased.remove(kv.key);
        }
        if let Some(ix) = self.index.as_mut() {
            ix.add(ordinal, kv.key, bk);
        }
        Ok(())
    }

    /// The plan, once every entry of the `key` bucket was seen (the
    /// refusals that need all of them are made here).
    fn finish(self) -> Result<Plan<'a>> {
        let opts = self.opts;
        let rules = &opts.rules;
        let (meta, revisions) = (&self.meta, self.revisions);
        let compact_rev_key =
            match rules.compact_rev_key(self.present).map_err(|_| MvccError::Refused(Refusal::CompactRevKeyUnruled))? {
                // The rules keep it, the hook dropped every revision of it: an explicit drop too.
                CompactRevKey::Kept if !self.hook_kept_compact_rev_key => CompactRevKey::Dropped,
                k => k,
            };
        if let (Some(first), false) = (self.first_key_bound, opts.allow_key_bound_encrypted) {
            return Err(MvccError::Refused(Refusal::KeyBoundEncrypted {
                count: self.key_bound,
                first: first.to_vec(),
            }));
        }
        let unmatched = self.counter.unmatched();
        if !unmatched.is_empty() && !opts.allow_empty_rules {
            let rules: Vec<String> = unmatched.iter().map(ToString::to_string).collect();
            return Err(MvccError::Refused(Refusal::RulesMatchedNothing { rules, revisions }));
        }
        let (markers, new_latest) = latest_and_markers(opts, self.old_latest, self.last_kept)?;
        let old_compact = meta.compact_rev();
        let keep = match (opts.compact, self.index) {
            (Some(at), Some(mut ix)) => {
                let r = at.unwrap_or(new_latest);
                if r > new_latest {
                    return Err(MvccError::FutureRev { rev: r, current: new_latest });
                }
                if r < old_compact {
                    return Err(MvccError::Compacted { rev: r, compact: old_compact });
                }
                // The markers follow the input's entries in the write pass.
                for (ordinal, m) in (revisions..).zip(&markers) {
                    ix.add(ordinal, b"", BucketKey { rev: *m, tombstone: false });
                }
                Some((r, ix.finish()))
            }
            _ => None,
        };
        let (scheduled, finished) = compact_marks(keep.as_ref().map(|(r, _)| *r), opts, new_latest, meta);
        let referenced_leases = self.leased.into_values().collect();
        let target = match opts.target_version {
            Some(t) => Some(check_target(meta, t)?),
            None => None,
        };
        Ok(Plan {
            keep_compact_tombstone: opts.compact_tombstones == CompactTombstones::Keep,
            target,
            reseal: opts.reseal.clone(),
            hook: opts.hook.clone(),
            hook_tally: self.hook_tally,
            old_latest: self.old_latest,
            new_latest,
            markers,
            keep,
            referenced_leases,
            key_bound_renamed: self.key_bound,
            compact_rev_key,
            scheduled,
            finished,
            revisions,
            rules: self.counter.into_matches(),
            cancel: opts.cancel.clone(),
            _keys: std::marker::PhantomData,
        })
    }
}

/// The new latest revision and the revision markers to write, from the
/// input's latest revision and the latest one a kept entry holds.
fn latest_and_markers(opts: &RewriteOptions, old_latest: Revision, last_kept: i64) -> Result<(Vec<Revision>, i64)> {
    let mut markers = Vec::new();
    let new_latest = match opts.bump_revision {
        Some(n) => {
            let max = i64::MAX.saturating_sub(MIN_REVISION_HEADROOM);
            let main = old_latest
                .main
                .checked_add(n)
                .filter(|&m| m <= max)
                .ok_or(MvccError::Refused(Refusal::BumpOverflow { latest: old_latest.main, by: n }))?;
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
    Ok((markers, new_latest))
}

/// `scheduledCompactRev` and `finishedCompactRev` of the output.
fn compact_marks(
    compacted_at: Option<i64>,
    opts: &RewriteOptions,
    new_latest: i64,
    meta: &crate::schema::MetaInfo,
) -> (Option<i64>, Option<i64>) {
    match (compacted_at, opts.mark_compacted) {
        (Some(r), _) => (Some(r), Some(r)),
        (None, true) => (Some(new_latest), meta.finished_compact.map(|r| r.main)),
        (None, false) => (meta.scheduled_compact.map(|r| r.main), meta.finished_compact.map(|r| r.main)),
    }
}

/// What the meta bucket and the end of the `key` bucket of the output get:
/// all a patch needs to know before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    markers: Vec<Revision>,
    new_latest: i64,
    scheduled: Option<i64>,
    finished: Option<i64>,
    target: Option<EtcdLine>,
}

impl Plan<'_> {
    /// The plan of a rewrite without offline compaction before its analysis
    /// ([`emit_analysing`]): what the options fix and the checked `target`;
    /// no markers, nothing referenced yet.
    fn provisional(opts: &RewriteOptions, target: Option<EtcdLine>) -> Self {
        Plan {
            keep_compact_tombstone: opts.compact_tombstones == CompactTombstones::Keep,
            target,
            reseal: opts.reseal.clone(),
            hook: opts.hook.clone(),
            hook_tally: HookTally::default(),
            old_latest: Revision::default(),
            new_latest: 0,
            markers: Vec::new(),
            keep: None,
            referenced_leases: HashSet::new(),
            key_bound_renamed: 0,
            compact_rev_key: CompactRevKey::Absent,
            scheduled: None,
            finished: None,
            revisions: 0,
            rules: Vec::new(),
            cancel: opts.cancel.clone(),
            _keys: std::marker::PhantomData,
        }
    }

    fn stamp(&self) -> Stamp {
        Stamp {
            markers: self.markers.clone(),
            new_latest: self.new_latest,
            scheduled: self.scheduled,
            finished: self.finished,
            target: self.target,
        }
    }
}

/// The [`Stamp`] of a rewrite that keeps every entry, without reading the
/// `key` bucket: its last entry holds the latest revision.
fn keep_all_stamp(db: &Db<'_>, opts: &RewriteOptions) -> Result<Stamp> {
    let meta = read_meta(db)?;
    let last = match db.bucket(&[KEY])? {
        Some(b) => b.cursor().last_entry()?,
        None => None,
    };
    let old_latest = match last {
        Some(e) => BucketKey::parse(e.key).map_err(|err| corrupt(e.key, err))?.rev,
        None => Revision::default(),
    };
    let (markers, new_latest) = latest_and_markers(opts, old_latest, old_latest.main)?;
    let (scheduled, finished) = compact_marks(None, opts, new_latest, &meta);
    let target = match opts.target_version {
        Some(t) => Some(check_target(&meta, t)?),
        None => None,
    };
    Ok(Stamp { markers, new_latest, scheduled, finished, target })
}

#[derive(Default)]
pub(crate) struct Counts {
    kept: u64,
    filtered: u64,
    compacted: u64,
    renamed: u64,
    values_replaced: u64,
    // What the entry hook decided in this pass (compacted entries included).
    hook_tally: HookTally,
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
    // Re-sealed values by provider/key name.
    resealed: BTreeMap<String, u64>,
}

/// Whether the offline compaction drops the `key`-bucket entry `bk` at
/// position `ordinal` (the markers follow the input's entries).
fn compacted_away(plan: &Plan<'_>, ordinal: u64, bk: BucketKey) -> bool {
    match &plan.keep {
        Some((r, keep)) => {
            let rev = bk.rev;
            // The keep set is the ≤3.5.15 compaction's; newer etcd also keeps a
            // tombstone at exactly the compact revision.
            let kept_tombstone = plan.keep_compact_tombstone && bk.tombstone && rev.main == *r;
            rev.main <= *r && !keep.keeps(ordinal) && !kept_tombstone
        }
        None => false,
    }
}

/// Writes the `key` bucket `b` as `plan` says: its entries, then the markers.
fn write_key_bucket<S: Sink>(
    b: &Bucket<'_>,
    out: &mut S,
    plan: &Plan<'_>,
    rules: &KeyRules,
    c: &mut Counts,
) -> Result<()> {
    let done = write_key_entries(b, out, plan, rules, c, None)?;
    write_key_tail(out, plan, done, c)
}

/// Writes the input entries of the `key` bucket `b` as `plan` says; their
/// count. `planner`, if any, is given every entry first (the analysis run
/// beside the write: see [`emit_analysing`]).
fn write_key_entries<'a, S: Sink>(
    b: &Bucket<'a>,
    out: &mut S,
    plan: &Plan<'_>,
    rules: &KeyRules,
    c: &mut Counts,
    mut planner: Option<&mut Planner<'a, '_, '_>>,
) -> Result<u64> {
    let mut buf = Vec::new();
    let mut done = 0u64;
    for e in b.cursor() {
        let e = e?;
        if let Some(p) = planner.as_deref_mut() {
            p.entry(&e)?;
        }
        let ordinal = done;
        done = done.saturating_add(1);
        if done.checked_rem(CANCEL_EVERY) == Some(0) {
            plan.cancel.check()?;
        }
        let bk = BucketKey::parse(e.key).map_err(|err| corrupt(e.key, err))?;
        if e.value.is_empty() {
            if compacted_away(plan, ordinal, bk) {
                c.compacted = c.compacted.saturating_add(1);
                continue;
            }
            out.put(e.key, e.value)?;
            c.kept = c.kept.saturating_add(1);
            continue;
        }
        let kv = KvRef::parse(e.value).map_err(|err| corrupt(e.key, err))?;
        // The filter first: entries of dropped keys count as filtered, with or without --compact.
        let Some(key) = rules.apply(kv.key) else {
            c.filtered = c.filtered.saturating_add(1);
            continue;
        };
        // Then the hook, as in the plan pass (which saw its drops).
        let replaced = match &plan.hook {
            Some(h) => {
                let d = crate::transform::decide(&**h, &key, bk, &kv)?;
                c.hook_tally.add(&d);
                match d {
                    Decision::Keep => None,
                    Decision::Drop => {
                        c.filtered = c.filtered.saturating_add(1);
                        continue;
                    }
                    Decision::ReplaceValue(v) => Some(v),
                }
            }
            None => None,
        };
        if compacted_away(plan, ordinal, bk) {
            c.compacted = c.compacted.saturating_add(1);
            continue;
        }
        c.kept = c.kept.saturating_add(1);
        c.tombstones = c.tombstones.saturating_add(u64::from(bk.tombstone));
        let value = replaced.as_deref().unwrap_or(kv.value);
        if let (false, Some(enc)) = (bk.tombstone, encryption(value)) {
            let n = c.encrypted.entry(enc.to_string()).or_insert(0);
            *n = n.saturating_add(1);
        }
        if let Some(value) = &replaced {
            // Written as the hook gave it (under the new key, never re-sealed).
            encode_with_key(&KvRef { value, ..kv }, &key, &mut buf);
            out.put(e.key, &buf)?;
            c.values_replaced = c.values_replaced.saturating_add(1);
            if let Cow::Owned(_) = key {
                c.renamed = c.renamed.saturating_add(1);
            }
        } else if let Cow::Owned(new_key) = key {
            let sealed;
            let kv = match (&plan.reseal, bk.tombstone, encryption(kv.value)) {
                (Some(r), false, Some(enc)) if enc.key_bound() => {
                    let (label, v) = r
                        .reseal(kv.key, &new_key, e.key, kv.value)
                        .map_err(|reason| MvccError::Reseal { key: kv.key.to_vec(), revision: bk.rev.main, reason })?;
                    let n = c.resealed.entry(label).or_insert(0);
                    *n = n.saturating_add(1);
                    sealed = v;
                    KvRef { value: &sealed, ..kv }
                }
                _ => kv,
            };
            encode_with_key(&kv, &new_key, &mut buf);
            out.put(e.key, &buf)?;
            c.renamed = c.renamed.saturating_add(1);
        } else {
            out.put(e.key, e.value)?;
        }
    }
    Ok(done)
}

/// The end of the `key` bucket after its `done` input entries: the hook's
/// decisions compared with the analysis', then the revision markers.
fn write_key_tail<S: Sink>(out: &mut S, plan: &Plan<'_>, done: u64, c: &mut Counts) -> Result<()> {
    plan.hook_tally.check(c.hook_tally)?;
    for (ordinal, m) in (done..).zip(&plan.markers) {
        if compacted_away(plan, ordinal, BucketKey { rev: *m, tombstone: false }) {
            continue;
        }
        out.put(&m.to_bytes(), b"")?;
        c.kept = c.kept.saturating_add(1);
        c.markers.push(*m);
    }
    Ok(())
}

/// Which downgrades a snapshot can take offline. What differs between the
/// schemas of 3.5, 3.6 and 3.7 is only `meta/storageVersion` (3.6's schema
/// step adds it, 3.7's step is empty; server/storage/schema/schema.go) and
/// the `cluster/clusterVersion` the servers compare with their own version at
/// start (3.6 refuses a newer storageVersion, every 3.5+ panics on a newer
/// clusterVersion: MustDetectDowngrade). Key, lease, auth and alarm records
/// are encoded identically in all of them.
fn check_target(meta: &crate::schema::MetaInfo, target: EtcdLine) -> Result<EtcdLine> {
    let sv = meta.version();
    let err = |reason| MvccError::TargetVersion { file: sv.as_str().to_string(), target: target.as_str(), reason };
    if !matches!(target, EtcdLine::V3_5 | EtcdLine::V3_6) {
        return Err(err("only 3.5 and 3.6 can be targeted (3.4 has no storage versions to lower to; newer lines migrate up by themselves)"));
    }
    let Some(line) = sv.line() else { return Err(err("the input's storageVersion does not parse")) };
    if line <= target {
        return Err(err(
            "the input is not newer than the target; etcd migrates its storage version up by itself at start",
        ));
    }
    Ok(target)
}

fn write_meta<S: Sink>(b: &Bucket<'_>, out: &mut S, plan: &Stamp) -> Result<()> {
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
    match plan.target.map(EtcdLine::storage_version) {
        None => {}
        // 3.5 has no storageVersion; etcdutl migrate to 3.5 deletes it.
        Some(None) => {
            entries.remove(STORAGE_VERSION);
        }
        Some(Some(v)) => {
            entries.insert(STORAGE_VERSION.to_vec(), v.as_bytes().to_vec());
        }
    }
    for (k, v) in &entries {
        out.put(k, v)?;
    }
    Ok(())
}

/// The `cluster` bucket: `clusterVersion` lowered to the target line, the
/// rest (`downgrade`) carried.
fn write_cluster<S: Sink>(b: &Bucket<'_>, out: &mut S, target: EtcdLine) -> Result<()> {
    for e in b.cursor() {
        let e = e?;
        if e.is_bucket() {
            return Err(MvccError::value(CLUSTER, e.key, "unexpected nested bucket".into()));
        }
        if e.key == CLUSTER_VERSION {
            out.put(e.key, target.cluster_version().as_bytes())?;
        } else {
            out.put(e.key, e.value)?;
        }
    }
    Ok(())
}

fn write_leases<S: Sink>(b: &Bucket<'_>, out: &mut S, plan: &Plan<'_>, drop: bool, c: &mut Counts) -> Result<()> {
    for e in b.cursor() {
        let e = e?;
        c.leases_read = c.leases_read.saturating_add(1);
        let id = <[u8; 8]>::try_from(e.key)
            .map(i64::from_be_bytes)
            .map_err(|_| MvccError::value(LEASE, e.key, "lease key is not 8 bytes".into()))?;
        if !plan.referenced_leases.contains(&id) {
            c.leases_orphaned = c.leases_orphaned.saturating_add(1);
            if drop {
                c.leases_dropped = c.leases_dropped.saturating_add(1);
                continue;
            }
        }
        c.leases_kept = c.leases_kept.saturating_add(1);
        out.put(e.key, e.value)?;
    }
    Ok(())
}

fn write_roles<S: Sink>(b: &Bucket<'_>, out: &mut S, rules: &KeyRules, c: &mut Counts) -> Result<()> {
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
                return Err(MvccError::Refused(Refusal::PermissionRenameToEmptyKey {
                    role: role.name.clone(),
                    key: p.key.clone(),
                }));
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
        c.roles_rewritten = c.roles_rewritten.saturating_add(1);
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

/// The output's `snapshot status` and HashKV figures, observed from what the
/// write pass hands the builder, so the output need not be read back.
struct Watched<'a, S: Sink> {
    out: &'a mut S,
    status: StatusObserver,
    kv: KvHasher,
    depth: usize,
    in_key: bool,
    failed: Option<MvccError>,
}

impl<'a, S: Sink> Watched<'a, S> {
    fn new(out: &'a mut S, compact: i64) -> Self {
        Self {
            out,
            // The HashKV records are per key already: they count the live
            // keys; and its CRC runs over the `key` bucket: it gives status
            // that bucket's share of the hash.
            status: StatusObserver::without_live_keys().key_crc_given(),
            // HashKV as etcd ≥3.5.16 answers it (the report's rule).
            kv: KvHasher::new(compact, TombstoneRule::Skip),
            depth: 0,
            in_key: false,
            failed: None,
        }
    }

    fn finish(self) -> Result<(StatusObserver, KvHasher)> {
        match self.failed {
            Some(e) => Err(e),
            None => Ok((self.status, self.kv)),
        }
    }
}

impl<S: Sink> Sink for Watched<'_, S> {
    fn create_bucket(&mut self, name: &[u8], sequence: u64) -> etcdsnap_bolt::Result<()> {
        self.out.create_bucket(name, sequence)?;
        self.status.open_bucket(name);
        if self.depth == 0 {
            self.in_key = name == KEY;
        } else if self.depth == 1 && self.in_key {
            // Status hashes a nested bucket's name; HashKV does not.
            self.kv.pass(name);
        }
        self.depth = self.depth.saturating_add(1);
        Ok(())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> etcdsnap_bolt::Result<()> {
        self.out.put(key, value)?;
        if self.failed.is_none() {
            let mut watch = || -> Result<()> {
                self.status.put(key, value)?;
                if self.depth == 1 && self.in_key {
                    self.kv.add(key, value)?;
                }
                Ok(())
            };
            self.failed = watch().err();
        }
        Ok(())
    }

    fn close_bucket(&mut self) -> etcdsnap_bolt::Result<()> {
        self.out.close_bucket()?;
        self.status.close_bucket();
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 && self.in_key {
            let (crc, len) = self.kv.stream_crc();
            self.status.key_bucket_crc(crc, len);
        }
        Ok(())
    }
}

/// Writes every bucket of `db`, transformed, into `out` (run twice: layout, then output).
fn emit<S: Sink>(db: &Db<'_>, out: &mut S, plan: &Plan<'_>, opts: &RewriteOptions, c: &mut Counts) -> Result<()> {
    let root = db.root()?;
    for top in root.cursor() {
        let top = top?;
        let bucket = root.child(top)?;
        out.create_bucket(top.key, bucket.sequence())?;
        emit_bucket(top.key, &bucket, out, plan, opts, c)?;
        out.close_bucket()?;
    }
    Ok(())
}

/// Writes one top-level bucket, transformed.
fn emit_bucket<S: Sink>(
    name: &[u8],
    bucket: &Bucket<'_>,
    out: &mut S,
    plan: &Plan<'_>,
    opts: &RewriteOptions,
    c: &mut Counts,
) -> Result<()> {
    match (name, plan.target) {
        (KEY, _) => write_key_bucket(bucket, out, plan, &opts.rules, c),
        (META, _) => write_meta(bucket, out, &plan.stamp()),
        (LEASE, _) => write_leases(bucket, out, plan, opts.drop_orphan_leases, c),
        (AUTH_ROLES, _) => write_roles(bucket, out, &opts.rules, c),
        (CLUSTER, Some(target)) => write_cluster(bucket, out, target),
        _ => Ok(etcdsnap_bolt::compact::copy_bucket(bucket, out)?),
    }
}

/// [`emit`] with the analysis pass run beside it, for a rewrite where
/// nothing written before the end of the `key` bucket depends on what the
/// analysis finds (no offline compaction): the `key` bucket's entries are
/// written from `provisional` ([`Plan::provisional`]) while the [`Planner`]
/// sees each of them; its plan then writes the markers and the buckets after
/// `key` (the lease references are complete by then: `lease` sorts after
/// `key`). The buckets before `key` need only the rules and the target.
/// One walk of the `key` bucket instead of two. Returns the plan.
fn emit_analysing<'a, S: Sink>(
    db: &Db<'a>,
    out: &mut S,
    provisional: &Plan<'_>,
    opts: &RewriteOptions,
    c: &mut Counts,
    progress: &mut dyn Progress,
) -> Result<Plan<'a>> {
    /// Where the analysis is: running beside the write, or done.
    enum Analysis<'a, 'o, 'p> {
        Running(Box<Planner<'a, 'o, 'p>>),
        Done(Box<Plan<'a>>),
    }
    let mut state = Analysis::Running(Box::new(Planner::new(db, opts, progress)?));
    let root = db.root()?;
    for top in root.cursor() {
        let top = top?;
        let bucket = root.child(top)?;
        out.create_bucket(top.key, bucket.sequence())?;
        state = match state {
            Analysis::Running(mut p) if top.key == KEY => {
                let done = write_key_entries(&bucket, out, provisional, &opts.rules, c, Some(&mut *p))?;
                let plan = p.finish()?;
                write_key_tail(out, &plan, done, c)?;
                Analysis::Done(Box::new(plan))
            }
            state => {
                let plan = match &state {
                    Analysis::Done(p) => p,
                    Analysis::Running(_) => provisional,
                };
                emit_bucket(top.key, &bucket, out, plan, opts, c)?;
                state
            }
        };
        out.close_bucket()?;
    }
    match state {
        Analysis::Running(p) => p.finish(),
        Analysis::Done(plan) => Ok(*plan),
    }
}

/// `verify_output`: the written file (at `tmp`, committed as `output`) passes
/// the full check, and its status and HashKV read back equal what was observed.
fn read_back(tmp: &Path, output: &Path, st: &Status, hkv: &KeyValueHash) -> Result<()> {
    let fail = |what: String| MvccError::OutputVerification { path: output.to_path_buf(), what };
    let written = MappedFile::open(tmp)?;
    let report = crate::verify::verify(&written, crate::verify::VerifyOptions::default());
    if let Some(first) = report.findings.iter().find(|f| f.severity == crate::verify::Severity::Problem) {
        let what = format!("{} problem(s), the first: {} ({})", report.problem_count, first.message, first.kind.code());
        return Err(fail(what));
    }
    let db = Db::open(trailer::split(&written).0)?;
    let read = status(&db)?;
    if read != *st {
        return Err(fail(format!("status read back {read:?} differs from the one observed {st:?}")));
    }
    let read = hash_kv(&db, 0, TombstoneRule::Skip)?;
    if read != *hkv {
        return Err(fail(format!("HashKV read back {read:?} differs from the one observed {hkv:?}")));
    }
    Ok(())
}

/// Refuses an input whose SHA-256 trailer does not match its contents.
pub(crate) fn refuse_mismatch(t: &Trailer, input: &Path) -> Result<()> {
    match t {
        Trailer::Mismatch { stored, computed } => Err(MvccError::Refused(Refusal::TrailerMismatch {
            path: input.to_path_buf(),
            stored: trailer::hex(stored),
            computed: trailer::hex(computed),
        })),
        Trailer::Absent | Trailer::Valid(_) => Ok(()),
    }
}

pub(crate) fn validate(opts: &RewriteOptions) -> Result<()> {
    opts.rules.validate().map_err(|e| MvccError::Refused(Refusal::Rules(e)))?;
    if let Some(n) = opts.bump_revision.filter(|&n| n <= 0) {
        return Err(MvccError::Refused(Refusal::BumpNotPositive(n)));
    }
    if opts.compact.is_some() && opts.mark_compacted {
        return Err(MvccError::Refused(Refusal::CompactAndMarkCompacted));
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

/// A sink that keeps nothing: what the observers of a patched output watch.
struct Nothing;

impl Sink for Nothing {
    fn create_bucket(&mut self, _: &[u8], _: u64) -> etcdsnap_bolt::Result<()> {
        Ok(())
    }

    fn put(&mut self, _: &[u8], _: &[u8]) -> etcdsnap_bolt::Result<()> {
        Ok(())
    }

    fn close_bucket(&mut self) -> etcdsnap_bolt::Result<()> {
        Ok(())
    }
}

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

/// What a rewrite that only drops entries deletes from the `key` bucket: the
/// bucket keys (revisions) of the entries the rules drop, in bucket order.
struct Drops<'a> {
    keys: Vec<&'a [u8]>,
    stamp: Stamp,
}

/// The analysis pass ([`Planner`]) over the `key` bucket, listing the
/// entries the rules drop: those and the [`Stamp`] of the output (the write
/// pass runs the analysis again and refuses a different stamp). `None` past
/// [`max_patched_drops`] dropped entries. Memory beyond the analysis' is the
/// dropped entries' keys only.
fn drop_pass<'a>(db: &Db<'a>, opts: &RewriteOptions) -> Result<Option<Drops<'a>>> {
    let mut progress = NoProgress;
    let mut planner = Planner::new(db, opts, &mut progress)?.collecting_drops(max_patched_drops(db.page_size()));
    if let Some(b) = db.bucket(&[KEY])? {
        for e in b.cursor() {
            planner.entry(&e?)?;
            if planner.dropped().is_none() {
                return Ok(None);
            }
        }
    }
    let keys = planner.dropped().map(<[&[u8]]>::to_vec).unwrap_or_default();
    let stamp = planner.finish()?.stamp();
    Ok(Some(Drops { keys, stamp }))
}

/// Whether a drop `patch` of `db` is small enough to be patched rather than
/// rebuilt ([`PATCHED_DROP_SHARE`]).
fn drop_is_small(db: &Db<'_>, patch: &etcdsnap_bolt::patch::Patch) -> bool {
    patch.replaced.saturating_mul(PATCHED_DROP_SHARE) <= db.hwm()
}

/// The patch of a patchable rewrite (see [`patchable`]) and the stamp it was
/// made for; `None`: rebuild (a drop too large, or a shape the patch declines).
fn patch_for(db: &Db<'_>, opts: &RewriteOptions) -> Result<Option<(Stamp, etcdsnap_bolt::patch::Patch)>> {
    let drops = if opts.rules.is_empty() {
        Drops { keys: Vec::new(), stamp: keep_all_stamp(db, opts)? }
    } else {
        match drop_pass(db, opts)? {
            Some(d) => d,
            None => return Ok(None),
        }
    };
    let Some(patch) = patch_plan(db, &drops.stamp, &drops.keys)? else { return Ok(None) };
    if !drops.keys.is_empty() && !drop_is_small(db, &patch) {
        return Ok(None);
    }
    Ok(Some((drops.stamp, patch)))
}

/// The copy-on-write patch that deletes the `key`-bucket entries `drops` (in
/// bucket order) and stamps `stamp` on `db` (`None`: rebuild).
fn patch_plan(db: &Db<'_>, stamp: &Stamp, drops: &[&[u8]]) -> Result<Option<etcdsnap_bolt::patch::Patch>> {
    use etcdsnap_bolt::patch::Edit;
    let markers: Vec<(Vec<u8>, Vec<u8>)> = stamp.markers.iter().map(|m| (m.to_bytes().to_vec(), Vec::new())).collect();
    let meta_bucket = db.bucket(&[META])?;
    let mut meta = Collect::default();
    if let Some(b) = &meta_bucket {
        write_meta(b, &mut meta, stamp)?;
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
    if stamp.target.is_some() && cluster_bucket.is_some() {
        edits.insert(CLUSTER, Edit::Replace(&cluster.0));
    }
    Ok(etcdsnap_bolt::patch::plan(db, &edits)?)
}

/// Writes the patched output — new meta pages, the input's pages, the new
/// pages — hashed on the way on one core, while this one makes the rewrite's
/// plan (which must give the stamp the patch was made from) and then walks
/// the input through the rewrite's rules once more to observe the output's
/// figures and counts.
fn write_patched<'a>(
    src: &Source<'_, 'a>,
    output: &Path,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
    stamp: &Stamp,
    patch: &etcdsnap_bolt::patch::Patch,
) -> Result<Written<'a>> {
    let db = src.db;
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
        let observed = (|| {
            let mut c = Counts::default();
            let mut nothing = Nothing;
            let mut watched = Watched::new(&mut nothing, compact);
            let provisional = Plan::provisional(opts, stamp.target);
            let plan = emit_analysing(db, &mut watched, &provisional, opts, &mut c, progress)?;
            if plan.stamp() != *stamp {
                return Err(MvccError::OutputVerification {
                    path: output.to_path_buf(),
                    what: format!("the patch was made for {stamp:?}, the plan gives {:?}", plan.stamp()),
                });
            }
            Ok((plan, c, watched.finish()?))
        })();
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
    let layout = OutputLayout::Patched { replaced: patch.replaced };
    finish_output(atomic, output, opts, Produced { trailer_out, observed, layout, plan, c })
}

/// The input of a rewrite as the writers need it.
struct Source<'s, 'a> {
    db: &'s Db<'a>,
    file: &'s MappedFile,
    has_trailer: bool,
    path: &'s Path,
}

/// What a writer made of the output before its end: the digest to append,
/// the figures observed, the layout, the plan it followed and its counts.
struct Produced<'a> {
    trailer_out: Option<[u8; TRAILER_LEN]>,
    observed: Observed,
    layout: OutputLayout,
    plan: Plan<'a>,
    c: Counts,
}

/// What the write pass observed of an output of `bytes` (`pgid × pageSize`).
pub(crate) struct Observed {
    status: StatusObserver,
    kv: KvHasher,
    bytes: u64,
    page_size: usize,
    compact: i64,
}

/// Both writers' end: the trailer appended, the figures made (and, with
/// `verify_output`, compared with a read-back of the temporary file).
fn finish_output<'a>(
    mut atomic: AtomicFile,
    output: &Path,
    opts: &RewriteOptions,
    made: Produced<'a>,
) -> Result<Written<'a>> {
    let Produced { trailer_out, observed: o, layout, plan, c } = made;
    let f = atomic.file()?;
    if let Some(d) = &trailer_out {
        f.write_all(d).map_err(|source| MvccError::Io { path: output.to_path_buf(), source })?;
    }
    let bytes_out = o.bytes.saturating_add(if trailer_out.is_some() { TRAILER_LEN as u64 } else { 0 });
    opts.cancel.check()?;
    let (st, hkv) = figures(o.status, o.kv, o.bytes, o.page_size, o.compact, output)?;
    if opts.verify_output {
        f.sync_data().map_err(|source| MvccError::Io { path: atomic.tmp_path().to_path_buf(), source })?;
        read_back(atomic.tmp_path(), output, &st, &hkv)?;
    }
    Ok(Written { layout, atomic, plan, c, st, hkv, trailer_out, bytes_out })
}

/// The output's HashKV from what was observed, and a check of the compact
/// revision written against the planned one.
fn figures(
    observed: StatusObserver,
    kv: KvHasher,
    total_size: u64,
    page_size: usize,
    compact: i64,
    output: &Path,
) -> Result<(Status, KeyValueHash)> {
    let (live, marker_live) = kv.live();
    let st = observed.finish_with_live(total_size, page_size, live, marker_live);
    let current = st.revision.max(compact);
    let hkv =
        KeyValueHash { hash: kv.finish(), compact_revision: compact, revision: current, current_revision: current };
    if st.meta.compact_rev() != compact {
        return Err(MvccError::OutputVerification {
            path: output.to_path_buf(),
            what: format!("compact revision written {} differs from the planned {compact}", st.meta.compact_rev()),
        });
    }
    Ok((st, hkv))
}

/// What [`write`] produced: the output, written but not committed, and its figures.
struct Written<'a> {
    layout: OutputLayout,
    atomic: AtomicFile,
    plan: Plan<'a>,
    c: Counts,
    st: Status,
    hkv: KeyValueHash,
    trailer_out: Option<[u8; TRAILER_LEN]>,
    bytes_out: u64,
}

/// The page layout of a rebuilt output, computed before it is written so its
/// meta pages can go first and the whole file be written (and hashed) in order.
pub(crate) struct Layout {
    build: BuildOptions,
    planned: etcdsnap_bolt::builder::BuildSummary,
}

impl Layout {
    /// Bytes of the bbolt image (`pgid × pageSize`).
    pub(crate) fn bytes(&self) -> u64 {
        self.planned.bytes
    }
}

/// The analysis and the layout of a rebuilt output: the write pass fed to a
/// builder that only counts pages, with the analysis beside it
/// ([`emit_analysing`]), or before it for an offline compaction (whose keep
/// set decides what the `key` bucket keeps).
pub(crate) fn plan_and_lay_out<'a>(
    db: &Db<'a>,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
) -> Result<(Plan<'a>, Layout)> {
    if opts.compact.is_some() {
        let plan = plan(db, opts, progress)?;
        let layout = lay_out(db, opts, &plan)?;
        return Ok((plan, layout));
    }
    let target = match opts.target_version {
        Some(t) => Some(check_target(&read_meta(db)?, t)?),
        None => None,
    };
    let (build, mut layout) = layout_builder(db, opts)?;
    let plan =
        emit_analysing(db, &mut layout, &Plan::provisional(opts, target), opts, &mut Counts::default(), progress)?;
    Ok((plan, Layout { build, planned: layout.finish()? }))
}

/// The options of a rebuilt output and a builder that only counts its pages.
fn layout_builder(
    db: &Db<'_>,
    opts: &RewriteOptions,
) -> Result<(BuildOptions, Builder<etcdsnap_bolt::builder::Discard>)> {
    // The meta's page size is a u32 to begin with.
    let page_size = opts.page_size.unwrap_or(u32::try_from(db.page_size()).unwrap_or(u32::MAX));
    let build = BuildOptions {
        page_size,
        fill_percent: opts.fill_percent,
        txid: db.meta().txid.max(1),
        ..BuildOptions::default()
    };
    Ok((build, Builder::plan(build)?))
}

/// Lays the rebuilt output out after `plan` was made: the write pass fed to
/// a builder that only counts pages.
fn lay_out(db: &Db<'_>, opts: &RewriteOptions, plan: &Plan<'_>) -> Result<Layout> {
    let (build, mut layout) = layout_builder(db, opts)?;
    emit(db, &mut layout, plan, opts, &mut Counts::default())?;
    Ok(Layout { build, planned: layout.finish()? })
}

/// Writes the rebuilt output laid out by [`lay_out`] into `w` in one
/// sequential stream, meta pages first, observing its status and HashKV
/// figures; returns `w`. Both the file rewrite and
/// [`crate::transform::transform`] write through here.
pub(crate) fn write_rebuilt<W: Write>(
    db: &Db<'_>,
    w: W,
    layout: &Layout,
    plan: &Plan<'_>,
    opts: &RewriteOptions,
) -> Result<(W, Counts, Observed)> {
    // The compact revision of the output, as a restarted etcd takes it.
    let compact = plan.scheduled.unwrap_or(0).max(plan.finished.unwrap_or(0));
    let mut out = Builder::streamed(w, layout.build, &layout.planned)?;
    let mut c = Counts::default();
    let mut watched = Watched::new(&mut out, compact);
    emit(db, &mut watched, plan, opts, &mut c)?;
    let (status, kv) = watched.finish()?;
    let (w, summary) = out.finish_streamed()?;
    let page_size = usize::try_from(layout.build.page_size).unwrap_or(usize::MAX);
    Ok((w, c, Observed { status, kv, bytes: summary.bytes, page_size, compact }))
}

impl Observed {
    /// The output's status and HashKV ([`figures`]); `output` names it in errors.
    pub(crate) fn figures(self, output: &Path) -> Result<(Status, KeyValueHash)> {
        figures(self.status, self.kv, self.bytes, self.page_size, self.compact, output)
    }
}

/// Lays the output out, then writes it (hashed on the way) into a temporary
/// file beside `output`, observing its status and HashKV figures.
fn write<'a>(
    db: &Db<'a>,
    input_has_trailer: bool,
    output: &Path,
    input: &Path,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
) -> Result<Written<'a>> {
    let (plan, layout) = plan_and_lay_out(db, opts, progress)?;
    let want_trailer = opts.trailer.wants_trailer(input_has_trailer);
    let mut atomic = AtomicFile::create_with(output, &[input], opts.output)?;
    let out_file = atomic.file()?;
    let sink = (progress, layout.bytes());
    let ((c, figures), trailer_out) =
        crate::stream::write_hashed(out_file, output, want_trailer, &opts.cancel, sink, |w| {
            let (_, c, figures) = write_rebuilt(db, w, &layout, &plan, opts)?;
            Ok((c, figures))
        })?;
    let made = Produced { trailer_out, observed: figures, layout: OutputLayout::Rebuilt, plan, c };
    finish_output(atomic, output, opts, made)
}

/// A finished output's figures and how it was made: what the report says.
pub(crate) struct Made<'a> {
    pub(crate) layout: OutputLayout,
    pub(crate) plan: Plan<'a>,
    pub(crate) c: Counts,
    pub(crate) st: Status,
    pub(crate) hkv: KeyValueHash,
    pub(crate) trailer_out: Option<[u8; TRAILER_LEN]>,
    pub(crate) bytes_out: u64,
}

impl Made<'_> {
    /// The report of a rewrite of an input of `bytes_in` bytes.
    pub(crate) fn report(
        self,
        opts: &RewriteOptions,
        trailer_in: Trailer,
        bytes_in: u64,
        stale_temps: Vec<StaleTemp>,
        elapsed: Duration,
    ) -> RewriteReport {
        let Self { layout, plan, c, st, hkv, trailer_out, bytes_out } = self;
        RewriteReport {
            revisions_read: plan.revisions,
            revisions_kept: c.kept,
            revisions_filtered: c.filtered,
            revisions_compacted: c.compacted,
            revisions_renamed: c.renamed,
            values_replaced: c.values_replaced,
            tombstones: c.tombstones,
            markers_written: c.markers,
            leases_read: c.leases_read,
            leases_kept: c.leases_kept,
            leases_dropped: c.leases_dropped,
            leases_orphaned: c.leases_orphaned,
            encrypted: c.encrypted,
            resealed: c.resealed,
            reseal_calls: opts.reseal.as_ref().map(|r| r.calls()).unwrap_or_default(),
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
            layout,
            bytes_in,
            bytes_out,
            elapsed,
        }
    }
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
    let has_trailer = trailer::split(&file).1.is_some();
    // The input's trailer is checked on another core for the whole rewrite;
    // the output is committed only once it matched.
    let (trailer_in, written) = std::thread::scope(|scope| {
        let check = scope.spawn(|| trailer::verify(&file));
        let written = (|| {
            if patchable(&db, opts) {
                if let Some((stamp, patch)) = patch_for(&db, opts)? {
                    let src = Source { db: &db, file: &file, has_trailer, path: input };
                    return write_patched(&src, output, opts, progress, &stamp, &patch);
                }
            }
            write(&db, has_trailer, output, input, opts, progress)
        })();
        // A panicked check is an error, never "no trailer".
        (check.join().map_err(|_| MvccError::WorkerPanicked("trailer check")), written)
    });
    let trailer_in = trailer_in?;
    // An unfinished output (dropped here) is removed.
    refuse_mismatch(&trailer_in, input)?;
    let Written { layout, atomic, plan, c, st, hkv, trailer_out, bytes_out } = written?;
    opts.cancel.check()?;
    // The trailer was checked by one pass; the output was made by others.
    // Both must have read the same file (a change in place is not caught by
    // the hash once it has been computed).
    file.check_unchanged()?;
    let stale_temps = atomic.stale().to_vec();
    atomic.commit()?;
    let made = Made { layout, plan, c, st, hkv, trailer_out, bytes_out };
    Ok(made.report(opts, trailer_in, file.len() as u64, stale_temps, start.elapsed()))
}
