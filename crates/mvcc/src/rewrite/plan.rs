//! The analysis: what the rewrite finds out about the input before the
//! parts of the output that depend on all of it are written — the new
//! latest revision and its markers, the compaction's keep set and marks,
//! the lease references — and the refusals that need every entry
//! (rename collisions, key-bound encrypted values, rules that matched nothing).

use std::collections::{HashMap, HashSet};

use etcdsnap_bolt::Db;
use etcdsnap_io::Cancel;
use etcdsnap_keys::{encryption, CompactRevKey, Reseal, RuleCounter, RuleMatch, COMPACT_REV_KEY};

use super::entry::{corrupt, Fate, Value};
use super::options::{CompactTombstones, RewriteOptions, MIN_REVISION_HEADROOM};
use crate::error::{MvccError, Refusal, Result};
use crate::index::{KeepSet, KeepSetBuilder};
use crate::progress::Progress;
use crate::revision::{BucketKey, Revision};
use crate::schema::{read_meta, EtcdLine, MetaInfo, KEY};

/// Poll the cancel flag every this many entries.
pub(crate) const CANCEL_EVERY: u64 = 4096;

/// What the analysis decided.
pub(crate) struct Plan {
    pub(crate) old_latest: Revision,
    pub(crate) new_latest: i64,
    pub(crate) markers: Vec<Revision>,
    pub(crate) keep: Option<(i64, KeepSet)>,
    /// Whether the compaction keeps a tombstone at exactly its revision.
    pub(crate) keep_compact_tombstone: bool,
    /// `--target-version`, checked against the input.
    pub(crate) target: Option<EtcdLine>,
    /// `--reencrypt`.
    pub(crate) reseal: Option<std::sync::Arc<dyn Reseal>>,
    pub(crate) referenced_leases: HashSet<i64>,
    pub(crate) key_bound_renamed: u64,
    pub(crate) compact_rev_key: CompactRevKey,
    pub(crate) scheduled: Option<i64>,
    pub(crate) finished: Option<i64>,
    pub(crate) revisions: u64,
    pub(crate) rules: Vec<RuleMatch>,
    pub(crate) cancel: Cancel,
}

/// The analysis over the `key` bucket, entry by entry in bucket order, fed
/// each entry's [`Fate`] by the pass that walks the bucket.
pub(crate) struct Planner<'a, 'o, 'p> {
    opts: &'o RewriteOptions,
    progress: &'p mut dyn Progress,
    meta: MetaInfo,
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
    pub(crate) fn new(db: &Db<'a>, opts: &'o RewriteOptions, progress: &'p mut dyn Progress) -> Result<Self> {
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
            counter: RuleCounter::new(&opts.rules),
            drops: DropList::Off,
            drop_cap: 0,
        })
    }

    /// Also lists the bucket keys of the entries the rules drop, up to `cap`
    /// of them ([`dropped`](Self::dropped)).
    pub(crate) fn collecting_drops(self, cap: usize) -> Self {
        Self { drops: DropList::Listing(Vec::new()), drop_cap: cap, ..self }
    }

    /// The entries the rules dropped so far, in bucket order; `None` when not
    /// collected or past the cap.
    pub(crate) fn dropped(&self) -> Option<&[&'a [u8]]> {
        match &self.drops {
            DropList::Listing(l) => Some(l),
            DropList::Off | DropList::Past => None,
        }
    }

    /// The next entry of the `key` bucket, stored under `bucket_key`: the
    /// `ordinal`-th, at `at`, with its `fate`.
    pub(crate) fn see(&mut self, ordinal: u64, bucket_key: &'a [u8], at: BucketKey, fate: &Fate<'a, '_>) -> Result<()> {
        let rules = &self.opts.rules;
        self.revisions = self.revisions.saturating_add(1);
        if self.revisions.checked_rem(CANCEL_EVERY) == Some(0) {
            self.opts.cancel.check()?;
        }
        if self.revisions.is_multiple_of(65536) {
            self.progress.update("analysing", self.revisions, 0);
        }
        self.old_latest = at.rev;
        let (kv, key, value) = match fate {
            Fate::Marker => {
                // Not a user key, always kept.
                self.last_kept = at.rev.main;
                if let Some(ix) = self.index.as_mut() {
                    ix.add(ordinal, b"", at);
                }
                return Ok(());
            }
            // Written after the point in time: as if never written.
            Fate::Cut => {
                self.list_drop(bucket_key);
                return Ok(());
            }
            Fate::Filtered(kv) => {
                self.present |= kv.key == COMPACT_REV_KEY;
                self.counter.count(rules, kv.key);
                self.list_drop(bucket_key);
                return Ok(());
            }
            // The hook's drops count as the filter's: they move the latest
            // kept revision, the lease references and the keep set.
            Fate::HookDropped(kv) => {
                self.present |= kv.key == COMPACT_REV_KEY;
                self.counter.count(rules, kv.key);
                return Ok(());
            }
            Fate::Kept { kv, key, value } => (kv, key, value),
        };
        self.present |= kv.key == COMPACT_REV_KEY;
        self.counter.count(rules, kv.key);
        self.hook_kept_compact_rev_key |= kv.key == COMPACT_REV_KEY;
        self.last_kept = at.rev.main;
        if !rules.renames.is_empty() {
            self.no_collision(kv.key, key)?;
        }
        // A replaced value is the hook's: neither checked nor re-sealed.
        if let (false, Value::Renamed, Some(enc)) = (at.tombstone, value, encryption(kv.value)) {
            if enc.key_bound() {
                match &self.opts.reseal {
                    // Every value is decrypted here, before anything is written.
                    Some(r) => {
                        r.check(kv.key, kv.value).map_err(|reason| MvccError::Reseal {
                            key: kv.key.to_vec(),
                            revision: at.rev.main,
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
        if !at.tombstone && kv.lease != 0 {
            self.leased.insert(kv.key, kv.lease);
        } else if !self.leased.is_empty() {
            self.leased.remove(kv.key);
        }
        if let Some(ix) = self.index.as_mut() {
            ix.add(ordinal, kv.key, at);
        }
        Ok(())
    }

    /// Lists a dropped entry's bucket key for a patched drop.
    fn list_drop(&mut self, bucket_key: &'a [u8]) {
        match &mut self.drops {
            DropList::Listing(l) if l.len() < self.drop_cap => l.push(bucket_key),
            DropList::Listing(_) => self.drops = DropList::Past,
            DropList::Off | DropList::Past => {}
        }
    }

    /// Refuses a kept key `source` written as `target` when another kept key
    /// is written as `target` too, or `target` is empty.
    fn no_collision(&mut self, source: &'a [u8], target: &[u8]) -> Result<()> {
        if target.is_empty() {
            // etcd rejects empty keys, and its index would merge this one with the revision markers.
            return Err(MvccError::Refused(Refusal::RenameToEmptyKey { key: source.to_vec() }));
        }
        let rules = &self.opts.rules;
        let collision = |other: &[u8]| {
            MvccError::Refused(Refusal::RenameCollision {
                first: other.to_vec(),
                second: source.to_vec(),
                target: target.to_vec(),
            })
        };
        let h = std::hash::BuildHasher::hash_one(&self.hasher, target);
        match self.targets.get(&h) {
            None => {
                self.targets.insert(h, source);
            }
            Some(&other) if other == source => {}
            Some(&other) if *rules.renamed(other) == *target => return Err(collision(other)),
            Some(_) => match self.spill.get(target) {
                Some(&other) if other != source => return Err(collision(other)),
                Some(_) => {}
                None => {
                    self.spill.insert(target.to_vec(), source);
                }
            },
        }
        Ok(())
    }

    /// The plan, once every entry of the `key` bucket was seen (the
    /// refusals that need all of them are made here).
    pub(crate) fn finish(self) -> Result<Plan> {
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
        let old_compact = meta.compact_rev();
        if let Some(n) = opts.at_revision {
            // The history below the compact revision is gone: no state before it is knowable.
            if n < old_compact {
                return Err(MvccError::Compacted { rev: n, compact: old_compact });
            }
            if n > self.old_latest.main {
                return Err(MvccError::FutureRev { rev: n, current: self.old_latest.main });
            }
        }
        let (markers, new_latest) = latest_and_markers(opts, self.old_latest, self.last_kept)?;
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
    meta: &MetaInfo,
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
pub(crate) struct Stamp {
    pub(crate) markers: Vec<Revision>,
    pub(crate) new_latest: i64,
    pub(crate) scheduled: Option<i64>,
    pub(crate) finished: Option<i64>,
    pub(crate) target: Option<EtcdLine>,
}

impl Plan {
    /// The plan of a rewrite without offline compaction before its analysis
    /// ran: what the options fix and the checked `target`; no markers,
    /// nothing referenced yet. What the buckets before `key` are written with.
    pub(crate) fn provisional(opts: &RewriteOptions, target: Option<EtcdLine>) -> Self {
        Plan {
            keep_compact_tombstone: opts.compact_tombstones == CompactTombstones::Keep,
            target,
            reseal: opts.reseal.clone(),
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
        }
    }

    pub(crate) fn stamp(&self) -> Stamp {
        Stamp {
            markers: self.markers.clone(),
            new_latest: self.new_latest,
            scheduled: self.scheduled,
            finished: self.finished,
            target: self.target,
        }
    }

    /// The compact revision of the output, as a restarted etcd takes it.
    pub(crate) fn compact_revision(&self) -> i64 {
        self.scheduled.unwrap_or(0).max(self.finished.unwrap_or(0))
    }
}

/// The [`Stamp`] of a rewrite that keeps every entry, without reading the
/// `key` bucket: its last entry holds the latest revision.
pub(crate) fn keep_all_stamp(db: &Db<'_>, opts: &RewriteOptions) -> Result<Stamp> {
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

/// Whether the offline compaction drops the `key`-bucket entry `bk` at
/// position `ordinal` (the markers follow the input's entries).
pub(crate) fn compacted_away(plan: &Plan, ordinal: u64, bk: BucketKey) -> bool {
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

/// The checked `--target-version` of `opts` for the input `db`.
pub(crate) fn target(db: &Db<'_>, opts: &RewriteOptions) -> Result<Option<EtcdLine>> {
    match opts.target_version {
        Some(t) => Ok(Some(check_target(&read_meta(db)?, t)?)),
        None => Ok(None),
    }
}

/// Which downgrades a snapshot can take offline. What differs between the
/// schemas of 3.5, 3.6 and 3.7 is only `meta/storageVersion` (3.6's schema
/// step adds it, 3.7's step is empty; server/storage/schema/schema.go) and
/// the `cluster/clusterVersion` the servers compare with their own version at
/// start (3.6 refuses a newer storageVersion, every 3.5+ panics on a newer
/// clusterVersion: MustDetectDowngrade). Key, lease, auth and alarm records
/// are encoded identically in all of them.
fn check_target(meta: &MetaInfo, target: EtcdLine) -> Result<EtcdLine> {
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
