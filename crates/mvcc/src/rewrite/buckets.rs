//! The buckets besides `key`, as the rewrite writes them: `meta` with the
//! compaction marks, storage version and a restore's raft position,
//! `members` replaced by a restore's, `cluster` lowered to a target line,
//! `lease` without orphans when asked, `authRoles` with renamed permissions.

use std::collections::BTreeMap;

use etcdsnap_bolt::builder::Sink;
use etcdsnap_bolt::Bucket;
use etcdsnap_keys::KeyRules;
use etcdsnap_proto::{authpb, Message};

use super::options::RestoreStamp;
use super::plan::{Plan, Stamp};
use super::report::PermissionChange;
use super::write::Counts;
use crate::error::{MvccError, Refusal, Result};
use crate::revision::{BucketKey, Revision};
use crate::schema::{
    EtcdLine, AUTH_ROLES, CLUSTER, CLUSTER_VERSION, CONSISTENT_INDEX, FINISHED_COMPACT_REV, LEASE, META,
    SCHEDULED_COMPACT_REV, STORAGE_VERSION, TERM,
};

/// The `meta` bucket: the compaction marks and the storage version of `plan`.
pub(crate) fn write_meta<S: Sink>(
    b: &Bucket<'_>,
    out: &mut S,
    plan: &Stamp,
    restore: Option<&RestoreStamp>,
) -> Result<()> {
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
    if let Some(r) = restore {
        // etcd never stores a zero index (UnsafeUpdateConsistentIndex).
        if r.consistent_index > 0 {
            entries.insert(CONSISTENT_INDEX.to_vec(), r.consistent_index.to_be_bytes().to_vec());
        }
        if let Some(term) = r.term.filter(|&t| t > 0) {
            entries.insert(TERM.to_vec(), term.to_be_bytes().to_vec());
        }
    }
    for (k, v) in &entries {
        out.put(k, v)?;
    }
    Ok(())
}

/// The `members` bucket of a restore: the new cluster's members, in key order.
pub(crate) fn write_members<S: Sink>(out: &mut S, restore: &RestoreStamp) -> Result<()> {
    let sorted: BTreeMap<&[u8], &[u8]> = restore.members.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    for (k, v) in sorted {
        out.put(k, v)?;
    }
    Ok(())
}

/// The `cluster` bucket: `clusterVersion` lowered to the target line, the
/// rest (`downgrade`) carried.
pub(crate) fn write_cluster<S: Sink>(b: &Bucket<'_>, out: &mut S, target: EtcdLine) -> Result<()> {
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

/// The `lease` bucket, without the leases no kept key references when `drop`.
pub(crate) fn write_leases<S: Sink>(
    b: &Bucket<'_>,
    out: &mut S,
    plan: &Plan,
    drop: bool,
    c: &mut Counts,
) -> Result<()> {
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

/// The `authRoles` bucket, each role's permissions renamed as the key rules rename keys.
pub(crate) fn write_roles<S: Sink>(b: &Bucket<'_>, out: &mut S, rules: &KeyRules, c: &mut Counts) -> Result<()> {
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
