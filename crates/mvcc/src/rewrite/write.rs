//! The write pass: every bucket of the input, transformed, into a sink (a
//! builder, a size-only planner, or an observer of a patched output), and
//! the walk that runs the analysis beside it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use etcdsnap_bolt::builder::Sink;
use etcdsnap_bolt::{Bucket, Db, Entry as BoltEntry};
use etcdsnap_keys::encryption;

use super::buckets::{write_cluster, write_leases, write_members, write_meta, write_roles};
use super::entry::{fate, Fate, Value};
use super::hook::HookStep;
use super::options::RewriteOptions;
use super::plan::{compacted_away, target, Plan, Planner, CANCEL_EVERY};
use super::report::PermissionChange;
use crate::error::{MvccError, Result};
use crate::kv::{encode_with_key, KvRef};
use crate::progress::Progress;
use crate::revision::{BucketKey, Revision};
use crate::schema::{AUTH_ROLES, CLUSTER, KEY, LEASE, MEMBERS, MEMBERS_REMOVED, META};

/// What the write pass did, for the report.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) kept: u64,
    pub(crate) filtered: u64,
    /// Entries after `at_revision`.
    pub(crate) cut: u64,
    pub(crate) compacted: u64,
    pub(crate) renamed: u64,
    pub(crate) values_replaced: u64,
    pub(crate) tombstones: u64,
    pub(crate) markers: Vec<Revision>,
    pub(crate) leases_read: u64,
    pub(crate) leases_kept: u64,
    pub(crate) leases_dropped: u64,
    pub(crate) leases_orphaned: u64,
    pub(crate) roles_rewritten: u64,
    pub(crate) permissions_changed: Vec<PermissionChange>,
    /// Written values by encryption provider (after filtering and compaction).
    pub(crate) encrypted: BTreeMap<String, u64>,
    /// Re-sealed values by provider/key name.
    pub(crate) resealed: BTreeMap<String, u64>,
}

fn bump(n: &mut u64) {
    *n = n.saturating_add(1);
}

/// Writes every bucket of `db`, transformed as `plan` says, into `out`; the
/// hook's decisions come from `hook`.
pub(crate) fn emit<S: Sink>(
    db: &Db<'_>,
    out: &mut S,
    plan: &Plan,
    hook: &mut HookStep<'_>,
    opts: &RewriteOptions,
    c: &mut Counts,
) -> Result<()> {
    let root = db.root()?;
    for top in root.cursor() {
        let top = top?;
        let bucket = root.child(top)?;
        out.create_bucket(top.key, bucket.sequence())?;
        if top.key == KEY {
            let done = write_key_entries(&bucket, out, plan, opts, hook, c)?;
            write_key_tail(out, plan, done, c)?;
        } else {
            emit_bucket(top.key, &bucket, out, plan, opts, c)?;
        }
        out.close_bucket()?;
    }
    Ok(())
}

/// Writes one top-level bucket other than `key`, transformed.
pub(crate) fn emit_bucket<S: Sink>(
    name: &[u8],
    bucket: &Bucket<'_>,
    out: &mut S,
    plan: &Plan,
    opts: &RewriteOptions,
    c: &mut Counts,
) -> Result<()> {
    match (name, plan.target) {
        (META, _) => write_meta(bucket, out, &plan.stamp(), opts.restore.as_ref()),
        (MEMBERS, _) if opts.restore.is_some() => opts.restore.as_ref().map_or(Ok(()), |r| write_members(out, r)),
        // A restore's new cluster has no removed members (TrimMembershipFromBackend).
        (MEMBERS_REMOVED, _) if opts.restore.is_some() => Ok(()),
        (LEASE, _) => write_leases(bucket, out, plan, opts.drop_orphan_leases, c),
        (AUTH_ROLES, _) => write_roles(bucket, out, &opts.rules, c),
        (CLUSTER, Some(target)) => write_cluster(bucket, out, target),
        _ => Ok(etcdsnap_bolt::compact::copy_bucket(bucket, out)?),
    }
}

/// Writes the input entries of the `key` bucket `b` as `plan` says; their count.
fn write_key_entries<S: Sink>(
    b: &Bucket<'_>,
    out: &mut S,
    plan: &Plan,
    opts: &RewriteOptions,
    hook: &mut HookStep<'_>,
    c: &mut Counts,
) -> Result<u64> {
    let mut buf = Vec::new();
    let mut done = 0u64;
    for e in b.cursor() {
        let e = e?;
        let ordinal = done;
        done = done.saturating_add(1);
        if done.checked_rem(CANCEL_EVERY) == Some(0) {
            plan.cancel.check()?;
        }
        let (at, fate) = fate(opts, hook, ordinal, &e)?;
        write_key_entry(out, plan, ordinal, &e, at, fate, &mut buf, c)?;
    }
    Ok(done)
}

/// Writes the `ordinal`-th entry `e` of the `key` bucket, stored at `at`, as its `fate` says.
#[allow(clippy::too_many_arguments)]
fn write_key_entry<S: Sink>(
    out: &mut S,
    plan: &Plan,
    ordinal: u64,
    e: &BoltEntry<'_>,
    at: BucketKey,
    fate: Fate<'_, '_>,
    buf: &mut Vec<u8>,
    c: &mut Counts,
) -> Result<()> {
    let (kv, key, value) = match fate {
        // Entries of dropped keys count as filtered, with or without --compact.
        Fate::Filtered(_) | Fate::HookDropped(_) => {
            bump(&mut c.filtered);
            return Ok(());
        }
        Fate::Cut => {
            bump(&mut c.cut);
            return Ok(());
        }
        _ if compacted_away(plan, ordinal, at) => {
            bump(&mut c.compacted);
            return Ok(());
        }
        Fate::Marker => {
            out.put(e.key, e.value)?;
            bump(&mut c.kept);
            return Ok(());
        }
        Fate::Kept { kv, key, value } => (kv, key, value),
    };
    bump(&mut c.kept);
    c.tombstones = c.tombstones.saturating_add(u64::from(at.tombstone));
    let written = match value {
        Value::Replaced(v) => v,
        Value::Stored | Value::Renamed => kv.value,
    };
    if let (false, Some(enc)) = (at.tombstone, encryption(written)) {
        bump(c.encrypted.entry(enc.to_string()).or_insert(0));
    }
    let renamed = matches!(key, Cow::Owned(_));
    match value {
        Value::Stored => return Ok(out.put(e.key, e.value)?),
        // Written as the hook gave it (under the new key, never re-sealed).
        Value::Replaced(v) => {
            encode_with_key(&KvRef { value: v, ..kv }, &key, buf);
            bump(&mut c.values_replaced);
        }
        Value::Renamed => {
            let sealed = reseal(plan, e.key, at, &kv, &key, c)?;
            let kv = KvRef { value: sealed.as_deref().unwrap_or(kv.value), ..kv };
            encode_with_key(&kv, &key, buf);
        }
    }
    if renamed {
        bump(&mut c.renamed);
    }
    Ok(out.put(e.key, buf)?)
}

/// The value of a renamed entry re-sealed for `new_key`, when `--reencrypt`
/// asks and a key-bound provider wrote it; `None`: written as stored.
fn reseal(
    plan: &Plan,
    bucket_key: &[u8],
    at: BucketKey,
    kv: &KvRef<'_>,
    new_key: &[u8],
    c: &mut Counts,
) -> Result<Option<Vec<u8>>> {
    let (Some(r), false, Some(enc)) = (&plan.reseal, at.tombstone, encryption(kv.value)) else { return Ok(None) };
    if !enc.key_bound() {
        return Ok(None);
    }
    let fail = |reason: String| MvccError::Reseal { key: kv.key.to_vec(), revision: at.rev.main, reason };
    let (label, v) = r.reseal(kv.key, new_key, bucket_key, kv.value).map_err(fail)?;
    if v.len() != kv.value.len() {
        // The pages were laid out from the stored length.
        return Err(fail(format!("the re-sealed value has {} bytes, the stored one {}", v.len(), kv.value.len())));
    }
    bump(c.resealed.entry(label).or_insert(0));
    Ok(Some(v))
}

/// The end of the `key` bucket after its `done` input entries: the revision markers.
fn write_key_tail<S: Sink>(out: &mut S, plan: &Plan, done: u64, c: &mut Counts) -> Result<()> {
    for (ordinal, m) in (done..).zip(&plan.markers) {
        if compacted_away(plan, ordinal, BucketKey { rev: *m, tombstone: false }) {
            continue;
        }
        out.put(&m.to_bytes(), b"")?;
        bump(&mut c.kept);
        c.markers.push(*m);
    }
    Ok(())
}

/// What a walk with the analysis beside it does with the `key` bucket.
pub(crate) trait KeyPass<S> {
    /// The `ordinal`-th entry `e`, stored at `at`, with its `fate` (the
    /// analysis has seen it); `provisional` is the plan before the analysis ends.
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        out: &mut S,
        provisional: &Plan,
        ordinal: u64,
        e: &BoltEntry<'_>,
        at: BucketKey,
        fate: Fate<'_, '_>,
        c: &mut Counts,
    ) -> Result<()>;

    /// The end of the bucket after `done` entries, with the analysis' plan.
    fn end(&mut self, out: &mut S, plan: &Plan, done: u64, c: &mut Counts) -> Result<()>;
}

/// Writes the `key` bucket as it goes, then its markers: the walk of an
/// output where nothing in the `key` bucket depends on the analysis (no
/// offline compaction: the patched rewrite's observation).
pub(crate) struct WriteAsSeen(pub(crate) Vec<u8>);

impl<S: Sink> KeyPass<S> for WriteAsSeen {
    fn entry(
        &mut self,
        out: &mut S,
        provisional: &Plan,
        ordinal: u64,
        e: &BoltEntry<'_>,
        at: BucketKey,
        fate: Fate<'_, '_>,
        c: &mut Counts,
    ) -> Result<()> {
        write_key_entry(out, provisional, ordinal, e, at, fate, &mut self.0, c)
    }

    fn end(&mut self, out: &mut S, plan: &Plan, done: u64, c: &mut Counts) -> Result<()> {
        write_key_tail(out, plan, done, c)
    }
}

/// Walks every top-level bucket of `db` into `out` with the analysis
/// ([`Planner`]) running over the `key` bucket: the buckets before `key`
/// (they need only the rules and the target) are written with the
/// provisional plan, the `key` bucket through `pass`, the buckets after it
/// with the analysis' plan (the lease references are complete by then:
/// `lease` sorts after `key`). One walk of the `key` bucket. Returns the plan.
pub(crate) fn walk_analysing<'a, S: Sink, P: KeyPass<S>>(
    db: &Db<'a>,
    out: &mut S,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
    hook: &mut HookStep<'_>,
    pass: &mut P,
) -> Result<(Plan, Counts)> {
    /// Where the analysis is: running beside the walk, or done.
    enum Analysis<'a, 'o, 'p> {
        Running(Box<Planner<'a, 'o, 'p>>),
        Done(Box<Plan>),
    }
    let provisional = Plan::provisional(opts, target(db, opts)?);
    let mut state = Analysis::Running(Box::new(Planner::new(db, opts, progress)?));
    let mut c = Counts::default();
    let root = db.root()?;
    for top in root.cursor() {
        let top = top?;
        let bucket = root.child(top)?;
        out.create_bucket(top.key, bucket.sequence())?;
        state = match state {
            Analysis::Running(mut p) if top.key == KEY => {
                let mut done = 0u64;
                for e in bucket.cursor() {
                    let e: BoltEntry<'a> = e?;
                    let ordinal = done;
                    done = done.saturating_add(1);
                    let (at, fate) = fate(opts, hook, ordinal, &e)?;
                    p.see(ordinal, e.key, at, &fate)?;
                    pass.entry(out, &provisional, ordinal, &e, at, fate, &mut c)?;
                }
                let plan = p.finish()?;
                pass.end(out, &plan, done, &mut c)?;
                Analysis::Done(Box::new(plan))
            }
            state => {
                let plan = match &state {
                    Analysis::Done(p) => p,
                    Analysis::Running(_) => &provisional,
                };
                emit_bucket(top.key, &bucket, out, plan, opts, &mut c)?;
                state
            }
        };
        out.close_bucket()?;
    }
    let plan = match state {
        Analysis::Running(p) => p.finish()?,
        Analysis::Done(plan) => *plan,
    };
    Ok((plan, c))
}
