//! `etcdsnap rewrite`: the snapshot rewrite, with its report.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use etcdsnap_mvcc::rewrite::{rewrite, CompactTombstones, Progress, RewriteOptions, RewriteReport};
use etcdsnap_mvcc::schema::EtcdLine;
use etcdsnap_mvcc::status_report::EtcdutlStatus;
use etcdsnap_mvcc::trailer::hex;
use etcdsnap_mvcc::{MvccError, Refusal};
use serde::Serialize;

use crate::output::{stale_files, table, Bytes, Out, OwnedBytes, StaleJson};
use crate::Outcome;

#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// Input snapshot (with SHA-256 trailer) or raw member/snap/db, or an object URL (s3://bucket/key, gs://…,
    /// az://…, https://…, read once into a local spool copy); never modified.
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
    /// The key space as it stood at revision N: every revision written after N is cut (refused when N
    /// is below the compact revision); the latest revision stays (a marker), so clients never go back.
    #[arg(long, value_name = "N")]
    at_revision: Option<i64>,
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
    /// The tenant API server's EncryptionConfiguration: aesgcm, KMS v2 and KMS
    /// v1 values under renamed keys are decrypted with the old key as
    /// authenticated data and sealed again for the new key (same key name or
    /// DEK, new nonce). KMS data keys come from the provider's plugin socket
    /// (Decrypt only, once per distinct DEK). Any value that does not decrypt
    /// stops the rewrite before anything is written.
    #[arg(long, value_name = "CONFIG")]
    reencrypt: Option<PathBuf>,
    /// Drop lease records that no kept key references.
    #[arg(long)]
    drop_orphan_leases: bool,
    /// Accept key rules that match no key (by default an error: a typo would keep almost nothing).
    #[arg(long)]
    allow_empty_rules: bool,
    /// Replace an existing OUT, and remove temporary files interrupted runs left beside it.
    #[arg(long)]
    force: bool,
    /// Before committing OUT, read it back: run the full verification and check that its status and HashKV
    /// equal the figures observed while writing it (costs about one `verify` of OUT).
    #[arg(long)]
    verify_output: bool,
    /// Lay out every page anew even when the edits keep every page (keep-all bump, --mark-compacted,
    /// --target-version), dropping the input's free pages; by default those are patched copy-on-write.
    #[arg(long)]
    rebuild: bool,
    /// IN and OUT are etcd data dirs: rewrite member/snap/db and the WAL with the same rules and copy the .snap
    /// files, into a new OUT (must not exist).
    #[arg(long)]
    data_dir: bool,
    #[command(flatten)]
    output_file: crate::output_args::OutputArgs,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
    #[command(flatten)]
    remote: crate::remote_args::RemoteArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TombstonesArg {
    Keep,
    Drop,
}

impl From<TombstonesArg> for CompactTombstones {
    fn from(t: TombstonesArg) -> Self {
        match t {
            TombstonesArg::Keep => Self::Keep,
            TombstonesArg::Drop => Self::Drop,
        }
    }
}

/// The resealer of `--reencrypt CONFIG` (rewrite and restore): refused when
/// the config has nothing to seal with.
pub(crate) fn resealer(config: Option<&Path>) -> Result<Option<std::sync::Arc<dyn etcdsnap_mvcc::rewrite::Reseal>>> {
    let Some(path) = config else { return Ok(None) };
    let cfg = etcdsnap_k8s::EncryptionConfig::load(path)?;
    if cfg.aesgcm.is_empty() && cfg.kms.is_empty() {
        bail!("{}: no aesgcm keys and no kms providers: nothing to re-encrypt with", path.display());
    }
    Ok(Some(std::sync::Arc::new(etcdsnap_k8s::ConfigResealer::new(&cfg)?)))
}

pub(crate) fn parse_target(s: &str) -> std::result::Result<EtcdLine, String> {
    match EtcdLine::parse(s) {
        Some(l @ (EtcdLine::V3_5 | EtcdLine::V3_6)) => Ok(l),
        _ => Err(format!("{s:?}: --target-version takes 3.5 or 3.6")),
    }
}

/// The command-line way out of a refusal, where there is one (the library's
/// messages name no flags).
fn flag_hint(r: &Refusal) -> Option<&'static str> {
    match r {
        Refusal::KeyBoundEncrypted { .. } => {
            Some("refused: --reencrypt CONFIG re-seals them for the new key; --allow-key-bound-encrypted renames them anyway")
        }
        Refusal::CompactRevKeyUnruled => {
            Some("refused: say what to do with it with --keep-key compact_rev_key or --drop-key compact_rev_key")
        }
        Refusal::BumpOverflow { .. } | Refusal::BumpNotPositive(_) => Some("refused: check --bump-revision"),
        Refusal::CompactAndMarkCompacted => Some("refused: --compact and --mark-compacted exclude each other"),
        Refusal::RulesMatchedNothing { .. } => Some("refused: pass --allow-empty-rules if that is intended"),
        _ => None,
    }
}

pub(crate) fn with_hint(e: MvccError) -> anyhow::Error {
    match &e {
        MvccError::Refused(r) => match flag_hint(r) {
            Some(hint) => anyhow::Error::new(e).context(hint),
            None => anyhow::Error::new(e),
        },
        _ => anyhow::Error::new(e),
    }
}

fn display(b: &[u8]) -> String {
    etcdsnap_bolt::display_bytes(b)
}

#[derive(Serialize)]
struct RevisionsJson {
    read: u64,
    kept: u64,
    filtered: u64,
    compacted: u64,
    renamed: u64,
    cut: u64,
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
struct RuleJson {
    rule: &'static str,
    value: OwnedBytes,
    matched: u64,
}

#[derive(Serialize)]
struct RangeJson<'a> {
    key: Bytes<'a>,
    range_end: Bytes<'a>,
}

#[derive(Serialize)]
struct PermissionJson<'a> {
    role: Bytes<'a>,
    perm_type: &'static str,
    key: Bytes<'a>,
    range_end: Bytes<'a>,
    now: Vec<RangeJson<'a>>,
}

/// etcdctl's names of `authpb.Permission.Type`.
fn perm_name(t: i32) -> &'static str {
    match t {
        0 => "READ",
        1 => "WRITE",
        2 => "READWRITE",
        _ => "UNKNOWN",
    }
}

/// A permission range as etcdctl's `role get` shows it.
fn range_text(key: &[u8], end: &[u8]) -> String {
    let k = etcdsnap_bolt::display_bytes(key);
    match end {
        [] => k,
        [0] => format!("[{k}, <open ended>"),
        e => format!("[{k}, {})", etcdsnap_bolt::display_bytes(e)),
    }
}

#[derive(Serialize)]
pub(crate) struct ReportJson<'a> {
    input: String,
    output: String,
    old_revision: i64,
    new_revision: i64,
    pub(crate) at_revision: Option<i64>,
    scheduled_compact_revision: Option<i64>,
    finished_compact_revision: Option<i64>,
    revisions: RevisionsJson,
    leases: LeasesJson,
    encrypted: std::collections::BTreeMap<String, u64>,
    key_bound_renamed: u64,
    reencrypted: std::collections::BTreeMap<String, u64>,
    plugin_calls: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    roles_rewritten: u64,
    permissions_changed: Vec<PermissionJson<'a>>,
    rules: Vec<RuleJson>,
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
    layout: &'static str,
    pages_rewritten: Option<u64>,
    bytes_in: u64,
    bytes_out: u64,
    stale_temp_files: Vec<StaleJson>,
    elapsed_ms: u64,
}

pub fn run(a: &RewriteArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let layout = a.output_file.checked()?;
    let rules = a.rules.rules()?;
    let opts = RewriteOptions {
        rules,
        bump_revision: a.bump_revision,
        mark_compacted: a.mark_compacted,
        compact: a.compact.then_some(a.compact_rev),
        compact_tombstones: a.compact_tombstones.into(),
        target_version: a.target_version,
        reseal: resealer(a.reencrypt.as_deref())?,
        hook: None,
        allow_key_bound_encrypted: a.allow_key_bound_encrypted,
        drop_orphan_leases: a.drop_orphan_leases,
        trailer: layout.trailer,
        page_size: layout.page_size,
        fill_percent: layout.fill_percent,
        allow_empty_rules: a.allow_empty_rules,
        output: etcdsnap_io::CreateOptions { overwrite: a.force, remove_stale: a.force },
        cancel: crate::interrupt::cancel_on_signals()?,
        verify_output: a.verify_output,
        rebuild: a.rebuild,
        meter: etcdsnap_io::Meter::new(),
        at_revision: a.at_revision,
        ..RewriteOptions::default()
    };
    if a.data_dir && crate::remote_args::is_url(&a.input) {
        bail!("{}: --data-dir takes a local data dir; an object URL names one snapshot file", a.input.display());
    }
    // An object is read once into a spool copy; the rewrite reads the copy.
    let local = crate::remote_args::localize(&a.input, &a.remote)?;
    let input = local.as_ref().map_or(a.input.as_path(), |l| l.path());
    // The library says how much it reads before writing (Progress::reading).
    let db_in = if a.data_dir { a.input.join("member/snap/db") } else { a.input.clone() };
    let mut bar = crate::progress::Bar::new(format!("reading {}", db_in.display()), &opts.meter);
    let progress: &mut dyn Progress = &mut bar;
    if a.data_dir {
        let r = etcdsnap_datadir::rewrite::rewrite_data_dir(&a.input, &a.output, &opts, progress)
            .with_context(|| format!("rewriting the data dir {} into {}", a.input.display(), a.output.display()))?;
        drop(bar);
        return data_dir_report(a, &r, out);
    }
    let r = rewrite(input, &a.output, &opts, progress)
        .map_err(with_hint)
        .with_context(|| format!("rewriting {} into {}", a.input.display(), a.output.display()))
        .map_err(|e| crate::paths::explained(input, e))
        .map_err(|e| crate::remote_args::named_by_url(e, local.as_ref(), &a.input))?;
    drop(bar);
    let mut j = report_json(&a.input, &a.output, &r);
    j.compact_tombstones = a.compact.then_some(opts.compact_tombstones.as_str());
    j.target_version = a.target_version.map(EtcdLine::as_str);
    j.at_revision = a.at_revision;
    if a.fmt.structured() {
        out.json(&j)?;
        return Ok(Outcome::Clean);
    }
    for line in report_lines(&j, &r) {
        out.line(line)?;
    }
    Ok(Outcome::Clean)
}

/// The `rewrite --json` object.
pub(crate) fn report_json<'r>(input: &Path, output: &Path, r: &'r RewriteReport) -> ReportJson<'r> {
    let etcdutl = EtcdutlStatus::as_written(&r.status);
    ReportJson {
        input: input.display().to_string(),
        output: output.display().to_string(),
        old_revision: r.old_revision,
        new_revision: r.new_revision,
        at_revision: None,
        scheduled_compact_revision: r.scheduled_compact,
        finished_compact_revision: r.finished_compact,
        revisions: RevisionsJson {
            read: r.revisions_read,
            kept: r.revisions_kept,
            filtered: r.revisions_filtered,
            compacted: r.revisions_compacted,
            renamed: r.revisions_renamed,
            cut: r.revisions_cut,
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
        plugin_calls: r.reseal_calls.clone(),
        roles_rewritten: r.roles_rewritten,
        permissions_changed: r
            .permissions_changed
            .iter()
            .map(|p| PermissionJson {
                role: Bytes(&p.role),
                perm_type: perm_name(p.perm_type),
                key: Bytes(&p.key),
                range_end: Bytes(&p.range_end),
                now: p.now.iter().map(|(k, e)| RangeJson { key: Bytes(k), range_end: Bytes(e) }).collect(),
            })
            .collect(),
        rules: r
            .rules
            .iter()
            .map(|m| RuleJson { rule: m.kind.name(), value: OwnedBytes(m.value.clone()), matched: m.matched })
            .collect(),
        compact_rev_key: r.compact_rev_key.name(),
        compact_tombstones: None,
        target_version: None,
        status_hash: etcdutl.hash,
        status_revision: etcdutl.revision,
        // totalKey as etcdutl of the output's own line (its storage version) counts it.
        status_total_key: etcdutl.total_key,
        status_as_etcd: etcdutl.line.as_str(),
        hashkv: r.hashkv.hash,
        hashkv_compact_revision: r.hashkv.compact_revision,
        hashkv_revision: r.hashkv.revision,
        trailer_in: r.trailer_in.name(),
        trailer_sha256: r.trailer_out.as_ref().map(hex),
        layout: r.layout.as_str(),
        pages_rewritten: match r.layout {
            etcdsnap_mvcc::rewrite::OutputLayout::Patched { replaced, .. } => Some(replaced),
            etcdsnap_mvcc::rewrite::OutputLayout::Rebuilt => None,
        },
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        stale_temp_files: stale_files(&r.stale_temps),
        elapsed_ms: u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
    }
}

/// The `rewrite` simple report.
fn report_lines(j: &ReportJson<'_>, r: &RewriteReport) -> Vec<String> {
    let opt = |v: Option<i64>| v.map_or("-".to_string(), |n| n.to_string());
    let enc = if j.encrypted.is_empty() {
        "none".to_string()
    } else {
        j.encrypted.iter().map(|(p, n)| format!("{p} {n}")).collect::<Vec<_>>().join(", ")
    };
    let mut rows = vec![
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
        vec![
            "storage version".into(),
            j.target_version.map_or("as the input".into(), |t| format!("lowered for etcd {t}")),
        ],
        vec!["roles rewritten".into(), j.roles_rewritten.to_string()],
        vec!["compact_rev_key".into(), j.compact_rev_key.into()],
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
        vec![
            "layout".into(),
            match j.pages_rewritten {
                Some(n) => format!("patched: input pages carried, {n} written again"),
                None => "rebuilt: every page laid out anew".into(),
            },
        ],
        vec!["bytes".into(), format!("{} -> {} in {:.2}s", j.bytes_in, j.bytes_out, r.elapsed.as_secs_f64())],
    ];
    if let Some(n) = j.at_revision {
        let cut = format!(
            "revision {n}: {} later revisions cut ({}..={})",
            j.revisions.cut,
            n.saturating_add(1),
            j.old_revision
        );
        rows.insert(3, vec!["point in time".into(), cut]);
    }
    // KMS plugin calls, after the re-encrypted counts (only when a plugin was asked).
    if !j.plugin_calls.is_empty() {
        let calls: Vec<String> = j
            .plugin_calls
            .iter()
            .map(|(p, m)| {
                let m: Vec<String> = m.iter().map(|(k, n)| format!("{k} {n}")).collect();
                format!("{p}: {}", m.join(", "))
            })
            .collect();
        let at =
            rows.iter().position(|r| r.first().is_some_and(|c| c == "re-encrypted")).map_or(0, |i| i.saturating_add(1));
        rows.insert(at, vec!["plugin calls".into(), calls.join("; ")]);
    }
    // What each rule matched, and every permission a rename changed, after the summary.
    let at = rows.len().saturating_sub(5);
    let mut extra: Vec<Vec<String>> = r
        .rules
        .iter()
        .map(|m| vec![format!("rule {}", m.kind.name()), format!("{}  {} revisions", display(&m.value), m.matched)])
        .collect();
    for p in &r.permissions_changed {
        let now: Vec<String> = p.now.iter().map(|(k, e)| range_text(k, e)).collect();
        extra.push(vec![
            "permission".into(),
            format!(
                "role {} {} {} -> {}",
                display(&p.role),
                perm_name(p.perm_type),
                range_text(&p.key, &p.range_end),
                now.join(", ")
            ),
        ]);
    }
    for s in &r.stale_temps {
        let what = if s.removed { "removed" } else { "kept (--force removes it)" };
        extra.push(vec!["stale temp file".into(), format!("{} ({} bytes) {what}", s.path.display(), s.bytes)]);
    }
    rows.splice(at..at, extra);
    table(&rows)
}

#[derive(Serialize)]
struct DataDirJson<'r> {
    input: String,
    output: String,
    db: ReportJson<'r>,
    wal: serde_json::Value,
    snap_files: u64,
    stale_temp_files: Vec<StaleJson>,
}

/// `rewrite --data-dir`: the db's report, the WAL's, and the `.snap` files copied.
fn data_dir_report(a: &RewriteArgs, r: &etcdsnap_datadir::rewrite::DataDirReport, out: &mut Out) -> Result<Outcome> {
    let member = a.output.join("member");
    let db = report_json(&a.input.join("member/snap/db"), &member.join("snap/db"), &r.db);
    let stale_temp_files = stale_files(&r.stale_temps);
    if a.fmt.structured() {
        out.json(&DataDirJson {
            input: a.input.display().to_string(),
            output: a.output.display().to_string(),
            wal: crate::wal_cmd::rewrite_report_json(&member.join("wal"), &r.wal),
            db,
            snap_files: r.snap_files,
            stale_temp_files,
        })?;
        return Ok(Outcome::Clean);
    }
    out.line(format!("db ({})", member.join("snap/db").display()))?;
    for line in report_lines(&db, &r.db) {
        out.line(format!("  {line}"))?;
    }
    out.line(format!("wal ({})", member.join("wal").display()))?;
    for line in crate::wal_cmd::rewrite_report_lines(&member.join("wal"), &r.wal) {
        out.line(format!("  {line}"))?;
    }
    out.line(format!("snap files: {} copied", r.snap_files))?;
    for s in &r.stale_temps {
        let what = if s.removed { "removed" } else { "kept (--force removes it)" };
        out.line(format!("stale temp dir: {} ({} bytes) {what}", s.path.display(), s.bytes))?;
    }
    Ok(Outcome::Clean)
}
