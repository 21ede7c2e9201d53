//! What a rewrite is asked to do, and the refusals that need only the options.

use etcdsnap_bolt::builder::DEFAULT_FILL_PERCENT;
use etcdsnap_io::{Cancel, CreateOptions, Meter};
use etcdsnap_keys::{KeyRules, Reseal};

use super::hook::EntryHook;
use crate::error::{MvccError, Refusal, Result};
use crate::pipeline::TrailerMode;
use crate::schema::EtcdLine;

/// Revisions a rewrite leaves free above the new latest one: etcd's revisions
/// are int64 and every write takes one; a bump that left fewer would put the
/// store within reach of the end.
pub const MIN_REVISION_HEADROOM: i64 = 1 << 62;

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
    /// Told the bytes of the input read and hashed (a progress bar's count).
    pub meter: Meter,
    /// Before committing, read the output back: run the full check
    /// ([`crate::verify::verify`]) and compare its status and HashKV with the
    /// figures observed while writing it.
    pub verify_output: bool,
    /// Lay out every page anew even when the edits keep every page (a keep-all
    /// bump, mark-compacted, target version): the output is then compacted
    /// (no free pages). By default such edits are patched copy-on-write.
    pub rebuild: bool,
    /// The key space as it stood at this revision: every entry written after
    /// it is cut (refused below the compact revision, whose history is gone).
    /// The revision does not go back: a marker keeps the input's latest.
    pub at_revision: Option<i64>,
    /// What the input's SHA-256 trailer must be.
    pub input_trailer: InputTrailer,
    /// Make the output a restored member's db ([`RestoreStamp`]).
    pub restore: Option<RestoreStamp>,
}

/// What a rewrite requires of its input's SHA-256 trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputTrailer {
    /// Checked when present; a raw db (none) is accepted.
    #[default]
    CheckedIfPresent,
    /// Present and matching, as `snapshot restore` requires without
    /// `--skip-hash-check`.
    Required,
    /// Not checked (`--skip-hash-check`): a mismatch is reported, not refused.
    Skipped,
}

/// What `snapshot restore` stamps on a db so that it belongs to a new
/// cluster: the `members` bucket replaced by the new members, the
/// `members_removed` bucket emptied, and `meta`'s raft position set to the
/// one the new WAL starts at (etcdutl's `TrimMembershipFromBackend`,
/// `AddMember` and `UpdateConsistentIndex`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreStamp {
    /// The `members` entries: member id in hex, the member's JSON (written in key order).
    pub members: Vec<(Vec<u8>, Vec<u8>)>,
    /// `meta/consistent_index`: the index of the last entry the WAL holds.
    pub consistent_index: u64,
    /// `meta/term`: the WAL's term; `None` for the 3.4 line, which has no term.
    pub term: Option<u64>,
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
            meter: Meter::default(),
            verify_output: false,
            rebuild: false,
            at_revision: None,
            input_trailer: InputTrailer::CheckedIfPresent,
            restore: None,
        }
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

/// Refuses options that contradict each other or cannot be met.
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
