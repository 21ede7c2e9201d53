//! The records of a fleet run — one per backup, one per cluster, one
//! summary — and the rules that turn backups into per-cluster findings.
//! Every report format (JSON Lines, JUnit, Prometheus) is rendered from
//! these, and `report merge` rebuilds them from shards' JSON Lines.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What became of one backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupState {
    /// Read whole, every check passed.
    Valid,
    /// Read whole, a check found problems (trailer, structure, MVCC).
    Problems,
    /// The object changed (ETag, size) while it was read: no verdict on it.
    Changed,
    /// It could not be read (after retries): no verdict on it.
    Unreadable,
}

impl BackupState {
    /// `valid`, `problems`, `changed`, `unreadable`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Problems => "problems",
            Self::Changed => "changed",
            Self::Unreadable => "unreadable",
        }
    }
}

/// One problem of a backup, as `verify --json` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemRecord {
    /// The finding's kebab-case kind (`trailer-mismatch`, `element-layout`, …, `changed`, `unreadable`).
    pub kind: String,
    /// What was found, where.
    pub message: String,
}

/// One backup object's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRecord {
    /// The object's URL.
    pub url: String,
    /// The cluster `--group-by` mapped it to (null without `--group-by`).
    pub cluster: Option<String>,
    /// `valid`, `problems`, `changed` or `unreadable`.
    pub state: BackupState,
    /// Size in bytes, as listed.
    pub size: u64,
    /// Last-modified time, as listed (RFC 3339, UTC).
    pub last_modified: String,
    /// Seconds from last-modified to the report's `now`.
    pub age_seconds: i64,
    /// ETag as listed.
    pub etag: Option<String>,
    /// The SHA-256 trailer: `valid`, `mismatch`, `absent`, or `unknown` when not read whole.
    pub trailer: String,
    /// Latest revision (when the file could be read).
    pub revision: Option<i64>,
    /// `etcdutl snapshot status`'s hash (only for valid backups).
    pub status_hash: Option<u32>,
    /// etcd's HashKV at the latest revision, tombstone rule `skip` (only for valid backups).
    pub hashkv: Option<u32>,
    /// HashKV's compact revision.
    pub hashkv_compact_revision: Option<i64>,
    /// The decryptability census (`--encryption-config`; absent without it):
    /// the shape of `verify --json`'s `encryption`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<etcdsnap_k8s::census::CensusReport>,
    /// Valid and younger than `--max-age` (valid, when there is no `--max-age`).
    pub fresh: bool,
    /// Problems found in all.
    pub problem_count: u64,
    /// The first problems (at most 10).
    pub problems: Vec<ProblemRecord>,
}

/// Why a cluster fails its backup objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterFinding {
    /// Expected (`--expect-groups`) but no backup object at all.
    Missing,
    /// Backups present, none valid.
    NoValidBackup,
    /// Valid backups present, the newest older than `--max-age`.
    Stale,
    /// Fewer fresh valid backups than `--require`.
    TooFew,
}

impl ClusterFinding {
    /// `missing`, `no_valid_backup`, `stale`, `too_few`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::NoValidBackup => "no_valid_backup",
            Self::Stale => "stale",
            Self::TooFew => "too_few",
        }
    }
}

/// One cluster's backups against the objective (`--max-age`, `--require`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterRecord {
    /// The cluster name (the `--group-by` capture).
    pub cluster: String,
    /// Named in `--expect-groups`.
    pub expected: bool,
    /// Backup objects found.
    pub backups: u64,
    /// Of those, valid.
    pub valid: u64,
    /// Of those, younger than `--max-age`.
    pub fresh_valid: u64,
    /// The newest valid backup's URL.
    pub newest_valid: Option<String>,
    /// Its age in seconds.
    pub newest_valid_age_seconds: Option<i64>,
    /// Its revision.
    pub newest_valid_revision: Option<i64>,
    /// Why the cluster fails its objective (null: it meets it).
    pub finding: Option<ClusterFinding>,
    /// The finding in words.
    pub message: Option<String>,
}

/// The objective and the clock a run judged by; shards of one run share it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// The report's clock (RFC 3339, UTC): `--now`, else the start of the run.
    pub now: String,
    /// `--max-age` in seconds.
    pub max_age_seconds: Option<u64>,
    /// `--require`: fresh valid backups each cluster needs.
    pub require: u64,
}

/// Totals of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// The objective judged by.
    pub objective: Objective,
    /// `INDEX/COUNT` of a shard's report; null for a whole (or merged) run.
    pub shard: Option<String>,
    /// Backup objects checked.
    pub objects: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Objects per state.
    pub valid: u64,
    /// Objects with problems.
    pub problems: u64,
    /// Objects that changed while read.
    pub changed: u64,
    /// Objects that could not be read.
    pub unreadable: u64,
    /// Listed objects `--group-by` did not match (not checked).
    pub ignored: u64,
    /// Clusters judged.
    pub clusters: u64,
    /// Clusters with a finding.
    pub clusters_failing: u64,
    /// Clusters per finding.
    pub missing: u64,
    /// Clusters with backups but none valid.
    pub no_valid_backup: u64,
    /// Clusters whose newest valid backup is too old.
    pub stale: u64,
    /// Clusters with fewer fresh valid backups than required.
    pub too_few: u64,
}

impl Summary {
    /// Exit status of the run: 2 when an object was unreadable, 1 for
    /// problems, changed objects or cluster findings, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.unreadable > 0 {
            2
        } else if self.problems > 0 || self.changed > 0 || self.clusters_failing > 0 {
            1
        } else {
            0
        }
    }
}

/// A whole report: backups sorted by URL, clusters by name, the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetReport {
    /// Every backup checked.
    pub backups: Vec<BackupRecord>,
    /// Every cluster judged (with `--group-by`).
    pub clusters: Vec<ClusterRecord>,
    /// Totals.
    pub summary: Summary,
}

/// Judges clusters: each cluster seen in `backups` and each of `expected`.
pub fn judge_clusters(backups: &[BackupRecord], expected: &[String], objective: &Objective) -> Vec<ClusterRecord> {
    let mut by: BTreeMap<&str, Vec<&BackupRecord>> = BTreeMap::new();
    for e in expected {
        by.entry(e.as_str()).or_default();
    }
    for b in backups {
        if let Some(c) = &b.cluster {
            by.entry(c.as_str()).or_default().push(b);
        }
    }
    by.into_iter()
        .map(|(name, bs)| {
            let valid: Vec<&&BackupRecord> = bs.iter().filter(|b| b.state == BackupState::Valid).collect();
            let fresh_valid = bs.iter().filter(|b| b.fresh).count() as u64;
            // Newest: the smallest age; ties broken by URL for a stable answer.
            let newest = valid.iter().min_by(|a, b| a.age_seconds.cmp(&b.age_seconds).then_with(|| b.url.cmp(&a.url)));
            let require = objective.require.max(1);
            let (finding, message) = if bs.is_empty() {
                (Some(ClusterFinding::Missing), Some("expected, but no backup was found".to_string()))
            } else if valid.is_empty() {
                (Some(ClusterFinding::NoValidBackup), Some(format!("none of {} backups is valid", bs.len())))
            } else if fresh_valid == 0 {
                let age = newest.map(|b| b.age_seconds).unwrap_or_default();
                let max = objective.max_age_seconds.unwrap_or_default();
                (Some(ClusterFinding::Stale), Some(format!("newest valid backup is {age}s old, more than {max}s")))
            } else if fresh_valid < require {
                (Some(ClusterFinding::TooFew), Some(format!("{fresh_valid} fresh valid backups, {require} required")))
            } else {
                (None, None)
            };
            ClusterRecord {
                cluster: name.to_string(),
                expected: expected.iter().any(|e| e == name),
                backups: bs.len() as u64,
                valid: valid.len() as u64,
                fresh_valid,
                newest_valid: newest.map(|b| b.url.clone()),
                newest_valid_age_seconds: newest.map(|b| b.age_seconds),
                newest_valid_revision: newest.and_then(|b| b.revision),
                finding,
                message,
            }
        })
        .collect()
}

/// Totals over `backups` and `clusters` (`ignored` is counted by the lister).
pub fn summarize(
    backups: &[BackupRecord],
    clusters: &[ClusterRecord],
    objective: &Objective,
    shard: Option<String>,
    ignored: u64,
) -> Summary {
    let count = |s: BackupState| backups.iter().filter(|b| b.state == s).count() as u64;
    let findings = |f: ClusterFinding| clusters.iter().filter(|c| c.finding == Some(f)).count() as u64;
    Summary {
        objective: objective.clone(),
        shard,
        objects: backups.len() as u64,
        bytes: backups.iter().fold(0u64, |a, b| a.saturating_add(b.size)),
        valid: count(BackupState::Valid),
        problems: count(BackupState::Problems),
        changed: count(BackupState::Changed),
        unreadable: count(BackupState::Unreadable),
        ignored,
        clusters: clusters.len() as u64,
        clusters_failing: clusters.iter().filter(|c| c.finding.is_some()).count() as u64,
        missing: findings(ClusterFinding::Missing),
        no_valid_backup: findings(ClusterFinding::NoValidBackup),
        stale: findings(ClusterFinding::Stale),
        too_few: findings(ClusterFinding::TooFew),
    }
}
