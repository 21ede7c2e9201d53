//! `etcdsnap rewrite`: the snapshot rewrite, with its report.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use etcdsnap_mvcc::rewrite::{rewrite, CompactRevKey, CompactTombstones, NoProgress, Progress, RewriteOptions};
use etcdsnap_mvcc::schema::EtcdLine;
use etcdsnap_mvcc::trailer::hex;
use etcdsnap_mvcc::{MvccError, Refusal};
use serde::Serialize;

use crate::output::{table, Out};
use crate::Outcome;

#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// Input snapshot (with SHA-256 trailer) or raw member/snap/db; never modified.
    input: PathBuf,
    /// Output file (written beside, then renamed; mode 0600; must not be the input).
    output: PathBuf,
    #[command(flatten)]
    rules: crate::rules_args::KeyRuleArgs,
    /// Add one revision marker at the latest revision + N (as etcdutl restore --bump-revision).
    #[arg(long, value_name = "N")]
    bump_revision: Option<i64>,
    /// Schedule a compaction at the new latest revision (as etcdutl restore --mark-compacted).
    #[arg(long, conflicts_with = "compact")]
    mark_compacted: bool,
    /// Compact offline (drop superseded revisions; set scheduled and finished compact revisions).
    #[arg(long)]
    compact: bool,
    /// Revision to compact at with --compact [default: the new latest revision].
    #[arg(long, value_name = "REV", requires = "compact")]
    compact_rev: Option<i64>,
    /// With --compact, a tombstone stored at exactly the compact revision:
    /// `keep` (etcd ≥3.5.16, ≥3.4.34, 3.6, 3.7) or `drop` (etcd ≤3.5.15,
    /// ≤3.4.33, e.g. 3.4.23 and 3.5.1) — to match that etcd's own compaction.
    #[arg(long, value_enum, requires = "compact", default_value_t = TombstonesArg::Keep)]
    compact_tombstones: TombstonesArg,
    /// Stamp the output for an older etcd line (3.5 or 3.6): `meta/storageVersion`
    /// and `cluster/clusterVersion` lowered, as `etcdutl migrate` does to a data dir.
    #[arg(long, value_name = "3.5|3.6", value_parser = parse_target)]
    target_version: Option<EtcdLine>,
    /// Rename values encrypted by key-bound providers (k8s:enc:aesgcm:, k8s:enc:kms:) anyway.
    #[arg(long, conflicts_with = "reencrypt")]
    allow_key_bound_encrypted: bool,
    /// The tenant API server's EncryptionConfiguration: aesgcm values under
    /// renamed keys are decrypted with the old key as authenticated data and
    /// sealed again for the new key (same key name, new nonce). Any value that
    /// does not decrypt stops the rewrite before anything is written.
    #[arg(long, value_name = "CONFIG")]
    reencrypt: Option<PathBuf>,
    /// Drop lease records that no kept key references.
    #[arg(long)]
    drop_orphan_leases: bool,
    #[command(flatten)]
    layout: crate::layout_args::LayoutArgs,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TombstonesArg {
    Keep,
    Drop,
}

fn parse_target(s: &str) -> std::result::Result<EtcdLine, String> {
    match EtcdLine::parse(s) {
        Some(l @ (EtcdLine::V3_5 | EtcdLine::V3_6)) => Ok(l),
        _ => Err(format!("{s:?}: --target-version takes 3.5 or 3.6")),
    }
}

/// A progress line on stderr, redrawn in place; only used when stderr is a terminal.
struct StderrProgress {
    last: u64,
}

impl Progress for StderrProgress {
    fn update(&mut self, phase: &'static str, done: u64, total: u64) {
        if done < self.last.saturating_add(65536) && done != total {
            return;
        }
        self.last = done;
        if total > 0 {
            eprint!(
                "\r{phase}: {done}/{total} revisions ({}%)   ",
                done.saturating_mul(100).checked_div(total).unwrap_or(100)
            );
        } else {
            eprint!("\r{phase}: {done} revisions   ");
        }
    }
}

#[derive(Serialize)]
struct RevisionsJson {
    read: u64,
    kept: u64,
    filtered: u64,
    compacted: u64,
    renamed: u64,
    tombstones: u64,
    markers: Vec<i64>,
}

#[derive(Serialize)]
struct LeasesJson {
    read: u64,
    kept: u64,
    dropped: u64,
    orphaned: u64,
}

#[derive(Serialize)]
struct ReportJson {
    input: String,
    output: String,
    old_revision: i64,
    new_revision: i64,
    scheduled_compact_revision: Option<i64>,
    finished_compact_revision: Option<i64>,
    revisions: RevisionsJson,
    leases: LeasesJson,
    encrypted: std::collections::BTreeMap<String, u64>,
    key_bound_renamed: u64,
    reencrypted: std::collections::BTreeMap<String, u64>,
    roles_rewritten: u64,
    compact_rev_key: &'static str,
    compact_tombstones: Option<&'static str>,
    target_version: Option<&'static str>,
    status_hash: u32,
    status_revision: i64,
    status_total_key: u64,
    status_as_etcd: &'static str,
    hashkv: u32,
    hashkv_compact_revision: i64,
    hashkv_revision: i64,
    trailer_in: &'static str,
    trailer_sha256: Option<String>,
    bytes_in: u64,
    bytes_out: u64,
    elapsed_ms: u64,
}

pub fn run(a: &RewriteArgs, out: &mut Out) -> Result<Outcome> {
    let layout = a.layout.layout()?;
    if let Some(n) = a.bump_revision {
        if n <= 0 {
            bail!("--bump-revision must be positive, got {n}");
        }
    }
    let rules = a.rules.rules()?;
    let opts = RewriteOptions {
        rules,
        bump_revision: a.bump_revision,
        mark_compacted: a.mark_compacted,
        compact: a.compact.then_some(a.compact_rev),
        compact_tombstones: match a.compact_tombstones {
            TombstonesArg::Keep => CompactTombstones::Keep,
            TombstonesArg::Drop => CompactTombstones::Drop,
        },
        target_version: a.target_version,
        reseal: match &a.reencrypt {
            Some(path) => {
                let cfg = etcdsnap_k8s::EncryptionConfig::load(path)?;
                if cfg.aesgcm.is_empty() {
                    bail!("{}: no aesgcm keys: nothing to re-encrypt with", path.display());
                }
                let r: std::sync::Arc<dyn etcdsnap_mvcc::rewrite::Reseal> =
                    std::sync::Arc::new(etcdsnap_k8s::AesGcmResealer::new(&cfg)?);
                Some(r)
            }
            None => None,
        },
        allow_key_bound_encrypted: a.allow_key_bound_encrypted,
        drop_orphan_leases: a.drop_orphan_leases,
        trailer: layout.trailer,
        page_size: layout.page_size,
        fill_percent: layout.fill_percent,
    };
    let tty = std::io::stderr().is_terminal();
    let mut bar = StderrProgress { last: 0 };
    let mut none = NoProgress;
    let progress: &mut dyn Progress = if tty { &mut bar } else { &mut none };
    let r = rewrite(&a.input, &a.output, &opts, progress)
        .map_err(|e| match &e {
            MvccError::Refused(r) => match flag_hint(r) {
                Some(hint) => anyhow::Error::new(e).context(hint),
                None => anyhow::Error::new(e),
            },
            _ => anyhow::Error::new(e),
        })
        .with_context(|| format!("rewriting {} into {}", a.input.display(), a.output.display()))?;
    if tty {
        eprint!("\r\x1b[K");
    }
    // The output's totalKey as etcdutl of the line that wrote it (or the
    // target line) counts it.
    let line = r.status.storage_version().line().unwrap_or(EtcdLine::V3_7);
    let j = ReportJson {
        input: a.input.display().to_string(),
        output: a.output.display().to_string(),
        old_revision: r.old_revision,
        new_revision: r.new_revision,
        scheduled_compact_revision: r.scheduled_compact,
        finished_compact_revision: r.finished_compact,
        revisions: RevisionsJson {
            read: r.revisions_read,
            kept: r.revisions_kept,
            filtered: r.revisions_filtered,
            compacted: r.revisions_compacted,
            renamed: r.revisions_renamed,
            tombstones: r.tombstones,
            markers: r.markers_written.iter().map(|m| m.main).collect(),
        },
        leases: LeasesJson {
            read: r.leases_read,
            kept: r.leases_kept,
            dropped: r.leases_dropped,
            orphaned: r.leases_orphaned,
        },
        encrypted: r.encrypted.clone(),
        key_bound_renamed: r.key_bound_renamed,
        reencrypted: r.resealed.clone(),
        roles_rewritten: r.roles_rewritten,
        compact_rev_key: match r.compact_rev_key {
            CompactRevKey::Absent => "absent",
            CompactRevKey::Kept => "kept",
            CompactRevKey::Dropped => "dropped",
        },
        compact_tombstones: a.compact.then_some(opts.compact_tombstones.as_str()),
        target_version: a.target_version.map(EtcdLine::as_str),
        status_hash: r.status.hash,
        status_revision: r.status.revision,
        status_total_key: if line.counts_live_keys() { r.status.total_key_v36 } else { r.status.total_key },
        status_as_etcd: line.as_str(),
        hashkv: r.hashkv.hash,
        hashkv_compact_revision: r.hashkv.compact_revision,
        hashkv_revision: r.hashkv.revision,
        trailer_in: r.trailer_in.name(),
        trailer_sha256: r.trailer_out.as_ref().map(hex),
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        elapsed_ms: u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
    };
    if a.json {
        out.json(&j)?;
        return Ok(Outcome::Clean);
    }
    let opt = |v: Option<i64>| v.map_or("-".to_string(), |n| n.to_string());
    let enc = if j.encrypted.is_empty() {
        "none".to_string()
    } else {
        j.encrypted.iter().map(|(p, n)| format!("{p} {n}")).collect::<Vec<_>>().join(", ")
    };
    let rows = vec![
        vec!["revision".into(), format!("{} -> {}", j.old_revision, j.new_revision)],
        vec![
            "compaction".into(),
            format!("scheduled {}, finished {}", opt(j.scheduled_compact_revision), opt(j.finished_compact_revision)),
        ],
        vec![
            "revisions".into(),
            format!(
                "{} read, {} kept, {} filtered, {} compacted, {} renamed, {} tombstones",
                j.revisions.read,
                j.revisions.kept,
                j.revisions.filtered,
                j.revisions.compacted,
                j.revisions.renamed,
                j.revisions.tombstones
            ),
        ],
        vec![
            "markers".into(),
            if j.revisions.markers.is_empty() {
                "none".into()
            } else {
                j.revisions.markers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            },
        ],
        vec![
            "leases".into(),
            format!(
                "{} read, {} kept, {} dropped, {} orphaned",
                j.leases.read, j.leases.kept, j.leases.dropped, j.leases.orphaned
            ),
        ],
        vec!["encrypted values".into(), format!("{enc}; {} key-bound under renamed keys", j.key_bound_renamed)],
        vec![
            "re-encrypted".into(),
            if j.reencrypted.is_empty() {
                "none".into()
            } else {
                j.reencrypted.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
            },
        ],
        vec!["roles rewritten".into(), j.roles_rewritten.to_string()],
        vec!["compact_rev_key".into(), j.compact_rev_key.into()],
        vec![
            "storage version".into(),
            j.target_version.map_or("as the input".into(), |t| format!("lowered for etcd {t}")),
        ],
        vec![
            "status hash".into(),
            format!(
                "{} (revision {}, totalKey {} as etcdutl {} counts)",
                j.status_hash, j.status_revision, j.status_total_key, j.status_as_etcd
            ),
        ],
        vec![
            "hashkv".into(),
            format!("{} at revision {} (compact revision {})", j.hashkv, j.hashkv_revision, j.hashkv_compact_revision),
        ],
        vec![
            "trailer".into(),
            j.trailer_sha256.clone().map_or("none (restore needs --skip-hash-check)".into(), |d| format!("sha256 {d}")),
        ],
        vec!["bytes".into(), format!("{} -> {} in {:.2}s", j.bytes_in, j.bytes_out, r.elapsed.as_secs_f64())],
    ];
    for line in table(&rows) {
        out.line(line)?;
    }
    Ok(Outcome::Clean)
}

/// The command-line way out of a refusal, where there is one (the library's
/// messages name no flags).
fn flag_hint(r: &Refusal) -> Option<&'static str> {
    match r {
        Refusal::KeyBoundEncrypted { .. } => Some("refused: --allow-key-bound-encrypted renames them anyway"),
        Refusal::CompactRevKeyUnruled => {
            Some("refused: say what to do with it with --keep-key compact_rev_key or --drop-key compact_rev_key")
        }
        Refusal::BumpOverflow { .. } | Refusal::BumpNotPositive(_) => Some("refused: check --bump-revision"),
        Refusal::CompactAndMarkCompacted => Some("refused: --compact and --mark-compacted exclude each other"),
        _ => None,
    }
}
