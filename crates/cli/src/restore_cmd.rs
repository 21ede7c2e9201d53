//! `etcdsnap restore`: a snapshot into member data dirs, as `etcdutl snapshot
//! restore` writes them, with the rewrite's rules in the same pass.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use etcdsnap_datadir::restore::{restore, RestoreOptions, RestoreReport, Target};
use etcdsnap_mvcc::rewrite::{Progress, RewriteOptions};
use etcdsnap_mvcc::schema::EtcdLine;
use serde::Serialize;

use crate::output::{table, Out};
use crate::rewrite_cmd::{report_json, ReportJson, TombstonesArg};
use crate::Outcome;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot file (`etcdctl snapshot save`) or an object URL (s3://bucket/key, gs://…, az://…, https://…,
    /// read once into a local spool copy), never modified; a raw db needs --skip-hash-check.
    snapshot: PathBuf,
    /// Human-readable name of the member to restore (etcdutl's --name).
    #[arg(long, default_value = "default")]
    name: String,
    /// Path to the data dir [default: <name>.etcd]; refused when it exists and is not empty.
    #[arg(long, value_name = "DIR", conflicts_with = "members_out")]
    data_dir: Option<PathBuf>,
    /// Path to the WAL dir [default: <data-dir>/member/wal]; refused when it exists.
    #[arg(long, value_name = "DIR", conflicts_with = "members_out")]
    wal_dir: Option<PathBuf>,
    /// Initial cluster configuration for restore bootstrap, NAME=URL,… (as etcd's --initial-cluster).
    #[arg(long, default_value = "default=http://localhost:2380")]
    initial_cluster: String,
    /// Initial cluster token for the etcd cluster during restore bootstrap.
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// The member's peer URLs to advertise (must equal its URLs in --initial-cluster).
    #[arg(long, default_value = "http://localhost:2380", conflicts_with = "members_out")]
    initial_advertise_peer_urls: String,
    /// Restore every member of --initial-cluster from one read of the snapshot, each into DIR/<name>.
    #[arg(long, value_name = "DIR")]
    members_out: Option<PathBuf>,
    /// Do not require the SHA-256 trailer, nor check it (a raw member/snap/db, a damaged trailer).
    #[arg(long)]
    skip_hash_check: bool,
    #[command(flatten)]
    rules: crate::rules_args::KeyRuleArgs,
    /// Add one revision marker at the latest revision + N (etcdutl's --bump-revision).
    #[arg(long, value_name = "N")]
    bump_revision: Option<i64>,
    /// Schedule a compaction at the new latest revision (etcdutl's --mark-compacted).
    #[arg(long, conflicts_with = "compact")]
    mark_compacted: bool,
    /// The key space as it stood at revision N (see `rewrite --at-revision`).
    #[arg(long, value_name = "N")]
    at_revision: Option<i64>,
    /// Compact offline at the new latest revision (or --compact-rev).
    #[arg(long)]
    compact: bool,
    /// Revision to compact at with --compact.
    #[arg(long, value_name = "REV", requires = "compact")]
    compact_rev: Option<i64>,
    /// With --compact, a tombstone at exactly the compact revision: keep (etcd ≥3.5.16) or drop (≤3.5.15).
    #[arg(long, value_enum, requires = "compact", default_value_t = TombstonesArg::Keep)]
    compact_tombstones: TombstonesArg,
    /// Restore for an older etcd line than the snapshot's (3.5 or 3.6): its restore's encoding, and the
    /// storage version lowered as `etcdutl migrate` does. Default: the snapshot's own line.
    #[arg(long, value_name = "3.5|3.6", value_parser = crate::rewrite_cmd::parse_target)]
    target_version: Option<EtcdLine>,
    /// The tenant API server's EncryptionConfiguration: values under renamed keys are re-sealed for
    /// their new keys (see `rewrite --reencrypt`).
    #[arg(long, value_name = "CONFIG", conflicts_with = "allow_key_bound_encrypted")]
    reencrypt: Option<PathBuf>,
    /// Rename values encrypted by key-bound providers anyway.
    #[arg(long)]
    allow_key_bound_encrypted: bool,
    /// Drop lease records that no kept key references.
    #[arg(long)]
    drop_orphan_leases: bool,
    /// Accept key rules that match no key.
    #[arg(long)]
    allow_empty_rules: bool,
    /// Replace existing data dirs (each is moved aside, and removed once the new ones are in place).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
    #[command(flatten)]
    remote: crate::remote_args::RemoteArgs,
}

#[derive(Serialize)]
struct MemberJson {
    name: String,
    id: String,
    data_dir: String,
    wal_dir: String,
    db_bytes: u64,
    elapsed_ms: u64,
}

#[derive(Serialize)]
struct RestoreJson<'a> {
    snapshot: String,
    cluster_id: String,
    etcd_line: &'static str,
    revision: i64,
    consistent_index: u64,
    term: u64,
    hashkv: u32,
    hashkv_compact_revision: i64,
    members: Vec<MemberJson>,
    rewrite: ReportJson<'a>,
    elapsed_ms: u64,
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub fn run(a: &RestoreArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let rewrite = RewriteOptions {
        rules: a.rules.rules()?,
        bump_revision: a.bump_revision,
        mark_compacted: a.mark_compacted,
        compact: a.compact.then_some(a.compact_rev),
        compact_tombstones: a.compact_tombstones.into(),
        target_version: a.target_version,
        reseal: crate::rewrite_cmd::resealer(a.reencrypt.as_deref())?,
        allow_key_bound_encrypted: a.allow_key_bound_encrypted,
        drop_orphan_leases: a.drop_orphan_leases,
        allow_empty_rules: a.allow_empty_rules,
        output: etcdsnap_io::CreateOptions { overwrite: false, remove_stale: a.force },
        cancel: crate::interrupt::cancel_on_signals()?,
        meter: etcdsnap_io::Meter::new(),
        at_revision: a.at_revision,
        ..RewriteOptions::default()
    };
    let target = match &a.members_out {
        Some(dir) => Target::All { dir: dir.clone() },
        None => Target::One {
            name: a.name.clone(),
            advertise_peer_urls: a.initial_advertise_peer_urls.clone(),
            data_dir: a.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.etcd", a.name))),
            wal_dir: a.wal_dir.clone(),
        },
    };
    let opts = RestoreOptions {
        rewrite,
        initial_cluster: a.initial_cluster.clone(),
        token: a.initial_cluster_token.clone(),
        target,
        skip_hash_check: a.skip_hash_check,
        force: a.force,
    };
    // An object is read once into a spool copy; the restore reads the copy.
    let local = crate::remote_args::localize(&a.snapshot, &a.remote)?;
    let input = local.as_ref().map_or(a.snapshot.as_path(), |l| l.path());
    let mut bar = crate::progress::Bar::new(format!("restoring {}", a.snapshot.display()), &opts.rewrite.meter);
    let progress: &mut dyn Progress = &mut bar;
    let r = restore(input, &opts, progress)
        .map_err(|e| match e {
            etcdsnap_datadir::DataDirError::Db { context, source } => {
                crate::rewrite_cmd::with_hint(source).context(context)
            }
            e => anyhow::Error::new(e),
        })
        .with_context(|| format!("restoring {}", a.snapshot.display()))
        .map_err(|e| crate::paths::explained(input, e))
        .map_err(|e| crate::remote_args::named_by_url(e, local.as_ref(), &a.snapshot))?;
    drop(bar);
    let out_name = match &a.members_out {
        Some(d) => d.clone(),
        None => r.members.first().map(|m| m.data_dir.clone()).unwrap_or_default(),
    };
    let mut rewrite = report_json(&a.snapshot, &out_name.join("member/snap/db"), &r.db);
    rewrite.at_revision = a.at_revision;
    let j = restore_json(a, &r, rewrite);
    if a.fmt.structured() {
        out.json(&j)?;
        return Ok(Outcome::Clean);
    }
    for line in report_lines(a, &j, &r) {
        out.line(line)?;
    }
    Ok(Outcome::Clean)
}

fn restore_json<'r>(a: &RestoreArgs, r: &'r RestoreReport, rewrite: ReportJson<'r>) -> RestoreJson<'r> {
    RestoreJson {
        snapshot: a.snapshot.display().to_string(),
        cluster_id: format!("{:x}", r.cluster_id),
        etcd_line: r.line.as_str(),
        revision: r.db.hashkv.current_revision,
        consistent_index: r.consistent_index,
        term: r.term,
        hashkv: r.db.hashkv.hash,
        hashkv_compact_revision: r.db.hashkv.compact_revision,
        members: r
            .members
            .iter()
            .map(|m| MemberJson {
                name: m.name.clone(),
                id: format!("{:x}", m.id),
                data_dir: m.data_dir.display().to_string(),
                wal_dir: m.wal_dir.display().to_string(),
                db_bytes: m.db_bytes,
                elapsed_ms: ms(m.elapsed),
            })
            .collect(),
        rewrite,
        elapsed_ms: ms(r.elapsed),
    }
}

fn secs(ms: u64) -> f64 {
    Duration::from_millis(ms).as_secs_f64()
}

fn report_lines(a: &RestoreArgs, j: &RestoreJson<'_>, r: &RestoreReport) -> Vec<String> {
    let mut rows = vec![
        vec![
            "cluster".into(),
            format!(
                "{} ({} member{}, written as etcd {}'s restore writes them)",
                j.cluster_id,
                j.members.len(),
                if j.members.len() == 1 { "" } else { "s" },
                j.etcd_line
            ),
        ],
        vec!["revision".into(), format!("{} -> {}", r.db.old_revision, r.db.new_revision)],
        vec![
            "compaction".into(),
            format!(
                "scheduled {}, finished {}",
                r.db.scheduled_compact.map_or("-".into(), |v| v.to_string()),
                r.db.finished_compact.map_or("-".into(), |v| v.to_string())
            ),
        ],
        vec!["raft".into(), format!("consistent index {}, term {}", j.consistent_index, j.term)],
        vec!["hashkv".into(), format!("{} (compact revision {})", j.hashkv, j.hashkv_compact_revision)],
        vec![
            "revisions".into(),
            format!(
                "{} read, {} kept, {} filtered, {} compacted, {} renamed",
                r.db.revisions_read,
                r.db.revisions_kept,
                r.db.revisions_filtered,
                r.db.revisions_compacted,
                r.db.revisions_renamed
            ),
        ],
    ];
    if let Some(n) = a.at_revision {
        rows.push(vec![
            "point in time".into(),
            format!(
                "revision {n}: {} later revisions cut ({}..={})",
                r.db.revisions_cut,
                n.saturating_add(1),
                r.db.old_revision
            ),
        ]);
    }
    for m in &j.members {
        rows.push(vec![
            format!("member {}", m.name),
            format!("id {}, {} ({} bytes db) in {:.2}s", m.id, m.data_dir, m.db_bytes, secs(m.elapsed_ms)),
        ]);
    }
    rows.push(vec!["elapsed".into(), format!("in {:.2}s", secs(j.elapsed_ms))]);
    table(&rows)
}
