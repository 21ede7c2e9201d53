//! `du`: what fills a db, per tenant, Kubernetes resource, namespace or key
//! prefix — live data, history a compaction would free, leased keys, the
//! largest keys — and what a defragmentation would give back.
//!
//! One pass over the `key` bucket in revision order; the state is one small
//! record per distinct user key (the key itself is borrowed from the mapped
//! file), so memory follows the number of keys, not history or value bytes.

use std::collections::HashMap;

use etcdsnap_bolt::{Db, PageUse};

use crate::error::{MvccError, Result};
use crate::keyspace::bounds;
use crate::kv::KvRef;
use crate::revision::BucketKey;
use crate::schema::KEY;

/// How keys are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The part before `/registry/` (`/tenant-1`); `/registry/…` keys form the
    /// group `""`; keys without `/registry/` form [`OTHER`].
    Tenant,
    /// Tenant, `/registry/` and the resource: `/tenant-1/registry/pods`;
    /// an API group segment (one holding a dot, as CRDs and aggregated APIs
    /// are stored: `/registry/example.com/widgets/…`) is kept with its resource.
    Resource,
    /// Tenant and namespace across resources: `/tenant-1/registry/*/default`;
    /// cluster-scoped objects (`/registry/<resource>/<name>`) go to `…/*/` +
    /// [`CLUSTER_SCOPED`].
    Namespace,
    /// The first N `/`-separated segments of the key.
    Prefix(usize),
}

/// Group of keys outside the Kubernetes layout (no `/registry/`).
pub const OTHER: &str = "(other)";
/// Namespace label of cluster-scoped objects.
pub const CLUSTER_SCOPED: &str = "(cluster)";

/// Splits `key` at its first `/registry/`: (tenant prefix, rest after it).
fn registry_split(key: &[u8]) -> Option<(&[u8], &[u8])> {
    const R: &[u8] = b"/registry/";
    let pos = key.windows(R.len()).position(|w| w == R)?;
    Some((key.get(..pos)?, key.get(pos.checked_add(R.len())?..)?))
}

/// The group label of `key`.
pub fn group_of(key: &[u8], by: GroupBy) -> Vec<u8> {
    match by {
        GroupBy::Prefix(n) => {
            // Segments after a leading '/': "/a/b/c" with n = 2 gives "/a/b".
            let start = usize::from(key.first() == Some(&b'/'));
            let mut seen = 0usize;
            for (i, &b) in key.iter().enumerate().skip(start) {
                if b == b'/' {
                    seen = seen.saturating_add(1);
                    if seen == n {
                        return key.get(..i).unwrap_or(key).to_vec();
                    }
                }
            }
            key.to_vec()
        }
        GroupBy::Tenant => match registry_split(key) {
            Some((tenant, _)) => tenant.to_vec(),
            None => OTHER.as_bytes().to_vec(),
        },
        GroupBy::Resource | GroupBy::Namespace => {
            let Some((tenant, rest)) = registry_split(key) else { return OTHER.as_bytes().to_vec() };
            let segs: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
            // A group segment (with a dot) belongs to the resource after it.
            let res_len = if segs.len() > 2 && segs.first().is_some_and(|s| s.contains(&b'.')) { 2 } else { 1 };
            let mut label = tenant.to_vec();
            label.extend_from_slice(b"/registry/");
            match by {
                GroupBy::Resource => {
                    let resource = segs.get(..res_len).unwrap_or(&segs).join(&b'/');
                    label.extend_from_slice(&resource);
                }
                _ => {
                    label.extend_from_slice(b"*/");
                    // <resource…>/<namespace>/<name>, or <resource…>/<name> when cluster-scoped.
                    match segs.len().checked_sub(res_len) {
                        Some(2) => label.extend_from_slice(segs.get(res_len).copied().unwrap_or_default()),
                        _ => label.extend_from_slice(CLUSTER_SCOPED.as_bytes()),
                    }
                }
            }
            label
        }
    }
}

/// One key and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizedKey {
    /// The user key.
    pub key: Vec<u8>,
    /// Bytes of its live value.
    pub value_bytes: u64,
    /// Its revision (`mod_revision`).
    pub mod_revision: i64,
}

/// Usage of one group (or of all: [`DuReport::totals`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Keys alive at the revision.
    pub live_keys: u64,
    /// Bytes of their values.
    pub live_value_bytes: u64,
    /// Bytes they take in the `key` bucket (17-byte revision key plus the stored `KeyValue`).
    pub live_stored_bytes: u64,
    /// Stored revisions that are not live: superseded puts and tombstones
    /// (what a compaction at the revision would free).
    pub history_revisions: u64,
    /// Bytes of those in the `key` bucket.
    pub history_stored_bytes: u64,
    /// Of the history, tombstones.
    pub tombstones: u64,
    /// Live keys attached to a lease.
    pub leased_keys: u64,
    /// The largest live key (by value bytes).
    pub largest: Option<SizedKey>,
}

impl Usage {
    /// Live plus history bytes in the `key` bucket.
    pub fn stored_bytes(&self) -> u64 {
        self.live_stored_bytes.saturating_add(self.history_stored_bytes)
    }

    /// Adds `o` to this usage (the largest key is the larger of both).
    pub fn add(&mut self, o: &Usage) {
        self.live_keys = self.live_keys.saturating_add(o.live_keys);
        self.live_value_bytes = self.live_value_bytes.saturating_add(o.live_value_bytes);
        self.live_stored_bytes = self.live_stored_bytes.saturating_add(o.live_stored_bytes);
        self.history_revisions = self.history_revisions.saturating_add(o.history_revisions);
        self.history_stored_bytes = self.history_stored_bytes.saturating_add(o.history_stored_bytes);
        self.tombstones = self.tombstones.saturating_add(o.tombstones);
        self.leased_keys = self.leased_keys.saturating_add(o.leased_keys);
        if let Some(l) = &o.largest {
            if self.largest.as_ref().is_none_or(|m| l.value_bytes > m.value_bytes) {
                self.largest = Some(l.clone());
            }
        }
    }
}

/// One group's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupUsage {
    /// The group label (see [`GroupBy`]).
    pub group: Vec<u8>,
    /// Its usage.
    pub usage: Usage,
}

/// What [`du`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuReport {
    /// The revision the live/history split is taken at.
    pub revision: i64,
    /// Groups, largest stored bytes first (ties by label).
    pub groups: Vec<GroupUsage>,
    /// Sum over the groups.
    pub totals: Usage,
    /// Revision markers (empty-value entries such as a bump): no group.
    pub markers: u64,
    /// Entries above the revision (only with a revision below the latest): no group.
    pub later_revisions: u64,
    /// The largest live keys of the whole db, largest first.
    pub largest_keys: Vec<SizedKey>,
    /// Bytes of the bbolt image (`hwm × page size`).
    pub db_bytes: u64,
    /// Pages below the high-water mark that hold nothing (free or unreached):
    /// what a defragmentation gives back.
    pub free_pages: u64,
    /// The same in bytes.
    pub free_bytes: u64,
}

/// Options of [`du`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuOptions {
    /// Grouping.
    pub by: GroupBy,
    /// Revision (0: the latest).
    pub rev: i64,
    /// How many of the largest keys to list.
    pub top_keys: usize,
}

/// Per key (the key borrowed from the file, and 24 bytes): its group and its
/// latest revision's sizes. Sizes fit 32 bits: bbolt values are below 2 GiB
/// and keys below 32 KiB.
struct KeyState<'a> {
    key: &'a [u8],
    last_rev: i64,
    group: u32,
    last_bytes: u32,
    last_value: u32,
    last_tomb: bool,
    last_leased: bool,
}

fn size32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Usage of `db` grouped as asked.
pub fn du(db: &Db<'_>, opts: &DuOptions) -> Result<DuReport> {
    let (compact, current) = bounds(db)?;
    if opts.rev > 0 && opts.rev < compact {
        return Err(MvccError::Compacted { rev: opts.rev, compact });
    }
    if opts.rev > current {
        return Err(MvccError::FutureRev { rev: opts.rev, current });
    }
    let rev = if opts.rev == 0 { current } else { opts.rev };
    let mut groups: Vec<GroupUsage> = Vec::new();
    let mut group_ix: HashMap<Vec<u8>, usize> = HashMap::new();
    let ids = crate::keytable::KeyHasher::new();
    let mut keys: crate::keytable::KeyTable<KeyState<'_>> = crate::keytable::KeyTable::new();
    let (mut markers, mut later) = (0u64, 0u64);
    if let Some(b) = db.bucket(&[KEY])? {
        for e in b.cursor() {
            let e = e?;
            let bk = BucketKey::parse(e.key).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
            if bk.rev.main > rev {
                later = later.saturating_add(1);
                continue;
            }
            if e.value.is_empty() {
                markers = markers.saturating_add(1);
                continue;
            }
            let kv = KvRef::parse(e.value).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
            let stored = size32(e.key.len().saturating_add(e.value.len()));
            let id = ids.hash(kv.key);
            if let Some(s) = keys.get(&id) {
                // The previous revision of this key is history now.
                if let Some(g) = groups.get_mut(s.group as usize) {
                    g.usage.history_revisions = g.usage.history_revisions.saturating_add(1);
                    g.usage.history_stored_bytes = g.usage.history_stored_bytes.saturating_add(u64::from(s.last_bytes));
                }
            } else {
                let label = group_of(kv.key, opts.by);
                let next = groups.len();
                let ix = *group_ix.entry(label.clone()).or_insert(next);
                if ix == next {
                    groups.push(GroupUsage { group: label, usage: Usage::default() });
                }
                let group =
                    u32::try_from(ix).map_err(|_| MvccError::value(KEY, e.key, "more than 2^32 groups".into()))?;
                let fresh = KeyState {
                    key: kv.key,
                    group,
                    last_bytes: 0,
                    last_value: 0,
                    last_tomb: false,
                    last_leased: false,
                    last_rev: 0,
                };
                keys.insert(id, fresh).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
            }
            let Some(state) = keys.get_mut(&id) else { continue };
            state.last_bytes = stored;
            state.last_value = size32(kv.value.len());
            state.last_tomb = bk.tombstone;
            state.last_leased = kv.lease != 0;
            state.last_rev = bk.rev.main;
            if bk.tombstone {
                if let Some(g) = groups.get_mut(state.group as usize) {
                    g.usage.tombstones = g.usage.tombstones.saturating_add(1);
                }
            }
        }
    }
    let mut largest: Vec<SizedKey> = Vec::new();
    for s in keys.values() {
        let key = &s.key;
        let Some(g) = groups.get_mut(s.group as usize).map(|g| &mut g.usage) else { continue };
        let (last_bytes, last_value) = (u64::from(s.last_bytes), u64::from(s.last_value));
        if s.last_tomb {
            g.history_revisions = g.history_revisions.saturating_add(1);
            g.history_stored_bytes = g.history_stored_bytes.saturating_add(last_bytes);
            continue;
        }
        g.live_keys = g.live_keys.saturating_add(1);
        g.live_value_bytes = g.live_value_bytes.saturating_add(last_value);
        g.live_stored_bytes = g.live_stored_bytes.saturating_add(last_bytes);
        g.leased_keys = g.leased_keys.saturating_add(u64::from(s.last_leased));
        let sk = || SizedKey { key: key.to_vec(), value_bytes: last_value, mod_revision: s.last_rev };
        let bigger = |m: &SizedKey| (last_value, *key) > (m.value_bytes, m.key.as_slice());
        if g.largest.as_ref().is_none_or(bigger) {
            g.largest = Some(sk());
        }
        if opts.top_keys > 0 && (largest.len() < opts.top_keys || largest.last().is_some_and(bigger)) {
            let pos = largest.partition_point(|m| !bigger(m));
            largest.insert(pos, sk());
            largest.truncate(opts.top_keys);
        }
    }
    groups.sort_by(|a, b| b.usage.stored_bytes().cmp(&a.usage.stored_bytes()).then_with(|| a.group.cmp(&b.group)));
    let mut totals = Usage::default();
    for g in &groups {
        totals.add(&g.usage);
    }
    let check = db.check();
    let free_pages = check.page_use.iter().filter(|u| matches!(u, PageUse::Free | PageUse::Unreached)).count() as u64;
    let page_size = db.page_size() as u64;
    Ok(DuReport {
        revision: rev,
        groups,
        totals,
        markers,
        later_revisions: later,
        largest_keys: largest,
        db_bytes: db.hwm().saturating_mul(page_size),
        free_pages,
        free_bytes: free_pages.saturating_mul(page_size),
    })
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    fn g(key: &str, by: GroupBy) -> String {
        String::from_utf8(group_of(key.as_bytes(), by)).unwrap_or_default()
    }

    #[test]
    fn kubernetes_layout() {
        let k = "/tenant-1/registry/pods/default/pod-1";
        assert_eq!(g(k, GroupBy::Tenant), "/tenant-1");
        assert_eq!(g(k, GroupBy::Resource), "/tenant-1/registry/pods");
        assert_eq!(g(k, GroupBy::Namespace), "/tenant-1/registry/*/default");
        assert_eq!(g("/registry/namespaces/default", GroupBy::Tenant), "");
        assert_eq!(g("/registry/namespaces/default", GroupBy::Namespace), "/registry/*/(cluster)");
        assert_eq!(g("/registry/example.com/widgets/ns1/w", GroupBy::Resource), "/registry/example.com/widgets");
        assert_eq!(g("/registry/example.com/widgets/ns1/w", GroupBy::Namespace), "/registry/*/ns1");
        assert_eq!(
            g("/registry/apiregistration.k8s.io/apiservices/v1.apps", GroupBy::Namespace),
            "/registry/*/(cluster)"
        );
        assert_eq!(g("compact_rev_key", GroupBy::Tenant), OTHER);
        assert_eq!(g("compact_rev_key", GroupBy::Resource), OTHER);
    }

    #[test]
    fn prefix_segments() {
        let k = "/tenant-1/registry/pods/default/pod-1";
        assert_eq!(g(k, GroupBy::Prefix(1)), "/tenant-1");
        assert_eq!(g(k, GroupBy::Prefix(3)), "/tenant-1/registry/pods");
        assert_eq!(g(k, GroupBy::Prefix(9)), k);
        assert_eq!(g("a/b", GroupBy::Prefix(1)), "a");
        assert_eq!(g("compact_rev_key", GroupBy::Prefix(2)), "compact_rev_key");
    }
}
