//! What a rewrite reports.

use std::collections::BTreeMap;
use std::time::Duration;

use etcdsnap_io::StaleTemp;
use etcdsnap_keys::{CompactRevKey, RuleMatch};

use super::options::RewriteOptions;
use super::plan::Plan;
use super::write::Counts;
use crate::hashkv::KeyValueHash;
use crate::revision::Revision;
use crate::status::Status;
use crate::trailer::{Trailer, TRAILER_LEN};

/// What [`rewrite`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct RewriteReport {
    /// Entries of the input's `key` bucket.
    pub revisions_read: u64,
    /// Entries written to the output's `key` bucket (markers included).
    pub revisions_kept: u64,
    /// Entries dropped by the key filter or the entry hook.
    pub revisions_filtered: u64,
    /// Entries written after `at_revision`, cut.
    pub revisions_cut: u64,
    /// Entries dropped by the offline compaction.
    pub revisions_compacted: u64,
    /// Entries whose key was renamed.
    pub revisions_renamed: u64,
    /// Entries written with the value the entry hook gave ([`Decision::ReplaceValue`](super::hook::Decision::ReplaceValue)).
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
        /// The output's bytes `[carried_from, carried_to)` are the input's
        /// bytes at the same offsets (its pages from 2 to its high-water mark).
        carried_from: u64,
        /// End of the carried bytes.
        carried_to: u64,
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

/// A finished output's figures.
pub(crate) struct Made {
    pub(crate) st: Status,
    pub(crate) hkv: KeyValueHash,
    pub(crate) trailer_out: Option<[u8; TRAILER_LEN]>,
    pub(crate) bytes_out: u64,
}

/// How an output was made, with its figures: what the report says.
pub(crate) struct Produced {
    pub(crate) layout: OutputLayout,
    pub(crate) plan: Plan,
    pub(crate) c: Counts,
    pub(crate) made: Made,
}

impl Produced {
    /// The report of the output committed as `done`.
    pub(crate) fn report(
        self,
        opts: &RewriteOptions,
        trailer_in: Trailer,
        bytes_in: u64,
        stale_temps: Vec<StaleTemp>,
        elapsed: Duration,
    ) -> RewriteReport {
        let Self { layout, plan, c, made: Made { st, hkv, trailer_out, bytes_out } } = self;
        RewriteReport {
            revisions_read: plan.revisions,
            revisions_kept: c.kept,
            revisions_filtered: c.filtered,
            revisions_cut: c.cut,
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
