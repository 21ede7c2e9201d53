//! Writing what survived: every bucket etcd creates (empty where nothing
//! survived), the `key` bucket from the kept records and, when bumped, its
//! revision marker, the `meta` bucket with the compaction mark. The same
//! calls go to a size-only planner first and then to the streamed writer,
//! so the output is written (and hashed) strictly in order, in one pass.

use std::collections::{BTreeMap, BTreeSet};

use etcdsnap_bolt::builder::Sink;

use super::history::Records;
use super::scan::{Found, Source};
use super::BucketOutcome;
use crate::error::{MvccError, Refusal, Result};
use crate::revision::Revision;
use crate::rewrite::MIN_REVISION_HEADROOM;
use crate::schema::{ALL_BUCKETS, KEY, LEASE, META, SCHEDULED_COMPACT_REV};

/// What the output's revision becomes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    /// The revision marker appended to the `key` bucket (an empty value at
    /// the new latest revision), when bumped.
    pub(crate) marker: Option<i64>,
    /// The latest revision of the output.
    pub(crate) new_latest: i64,
    /// `scheduledCompactRev` written (the new latest revision, when bumped).
    pub(crate) scheduled: Option<i64>,
}

impl Stamp {
    /// The stamp of a salvage whose latest surviving revision is `latest`,
    /// bumped by `bump` and marked compacted when given.
    pub(crate) fn new(latest: i64, bump: Option<i64>) -> Result<Self> {
        match bump {
            None => Ok(Self { marker: None, new_latest: latest, scheduled: None }),
            Some(n) if n <= 0 => Err(MvccError::Refused(Refusal::BumpNotPositive(n))),
            Some(n) => {
                let max = i64::MAX.saturating_sub(MIN_REVISION_HEADROOM);
                let main = latest
                    .checked_add(n)
                    .filter(|&m| m <= max)
                    .ok_or(MvccError::Refused(Refusal::BumpOverflow { latest, by: n }))?;
                Ok(Self { marker: Some(main), new_latest: main, scheduled: Some(main) })
            }
        }
    }
}

/// What [`emit`] wrote besides the revisions.
pub(crate) struct Built {
    pub(crate) buckets: Vec<BucketOutcome>,
}

/// `lease` bucket records for lease ids whose records were lost: the key is
/// the id as etcd writes it (big-endian), the value a `leasepb.Lease` with
/// `ttl` (no remaining TTL checkpointed).
pub(crate) fn lease_records(ids: &[i64], ttl: i64) -> Result<BTreeMap<[u8; 8], Vec<u8>>> {
    use etcdsnap_proto::prost::Message;
    if ttl <= 0 {
        return Err(MvccError::Refused(Refusal::LeaseTtlNotPositive(ttl)));
    }
    Ok(ids
        .iter()
        .map(|&id| {
            let lease = etcdsnap_proto::leasepb::Lease { id, ttl, remaining_ttl: 0 };
            (id.to_be_bytes(), lease.encode_to_vec())
        })
        .collect())
}

/// Writes every bucket into `out`: `key` from `revisions` (then the
/// marker), the others as the walk found them (`lease` also from recognised
/// pages, `meta` with the stamp's compaction mark).
/// `recreated` are lease records written for lost ones ([`lease_records`]).
pub(crate) fn emit<S: Sink>(
    out: &mut S,
    found: &Found<'_>,
    revisions: &Records<'_>,
    stamp: &Stamp,
    recreated: &BTreeMap<[u8; 8], Vec<u8>>,
) -> Result<Built> {
    let mut names: BTreeSet<&[u8]> = ALL_BUCKETS.iter().copied().collect();
    names.extend(found.buckets.keys().copied());
    let mut outcomes = Vec::new();
    let marker = stamp.marker.map(|m| Revision::new(m, 0).to_bytes());
    let scheduled = stamp.scheduled.map(|r| Revision::new(r, 0).to_bytes());
    for name in names {
        out.create_bucket(name, found.sequences.get(name).copied().unwrap_or(0))?;
        let (records, from) = if name == KEY {
            for (k, (v, _)) in revisions {
                out.put(k, v)?;
            }
            if let Some(m) = &marker {
                out.put(m, b"")?;
            }
            let from = match (revisions.is_empty(), revisions.values().any(|(_, s)| *s == Source::Scanned)) {
                (true, _) => "lost",
                (false, true) => "scan",
                (false, false) => "tree",
            };
            (revisions.len() as u64, from)
        } else {
            let tree = found.buckets.get(name);
            let mut merged: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
            if name == LEASE {
                merged.extend(found.scanned_leases.iter().map(|(k, v)| (*k, *v)));
            }
            merged.extend(tree.into_iter().flatten().map(|(k, v)| (*k, *v)));
            let from = match (tree.is_some(), merged.is_empty()) {
                (true, _) if tree.is_some_and(|t| t.len() == merged.len()) => "tree",
                (_, false) => "scan",
                (true, true) => "empty",
                (false, true) => "lost",
            };
            if name == LEASE {
                for (k, v) in recreated {
                    merged.entry(&k[..]).or_insert(&v[..]);
                }
            }
            let records = merged.len() as u64;
            if name == META {
                if let Some(s) = &scheduled {
                    merged.insert(SCHEDULED_COMPACT_REV, s);
                }
            }
            for (k, v) in &merged {
                out.put(k, v)?;
            }
            (records, from)
        };
        out.close_bucket()?;
        outcomes.push(BucketOutcome { name: String::from_utf8_lossy(name).into_owned(), records, from });
    }
    Ok(Built { buckets: outcomes })
}
