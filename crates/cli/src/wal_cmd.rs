//! `etcdsnap wal …`: verify, dump, repair and rewrite WAL segments (and check
//! `.snap` files and the db's consistent_index of a data dir).

mod json;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use etcdsnap_mvcc::consistent_index::read_consistent_index;
use etcdsnap_wal::repair::{repair, RepairOutcome};
use etcdsnap_wal::rewrite::{rewrite_with, RewriteOptions, RewriteReport as WalRewriteReport};
use etcdsnap_wal::{list_segments, EntryFilter, EntryKind, WalError, WalFinding, WalPaths, WalReport};
use serde_json::json;

use crate::output::{table, Out};
use crate::Outcome;

#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// Check segments, CRC chain, sequence and index continuity, torn tail, .snap files,
    /// and (data dir) the db's consistent_index; exit 1 on problems.
    Verify(VerifyArgs),
    /// One line per entry (term, index, type, request with keys), like etcd-dump-logs.
    Dump(DumpArgs),
    /// Truncate a torn last record (as etcd's wal.Repair); refuses any other damage.
    Repair(RepairArgs),
    /// Filter and rename keys inside the WAL's requests into a new WAL directory.
    Rewrite(RewriteArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A WAL dir, a member dir or a data dir.
    dir: PathBuf,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// A WAL dir, a member dir or a data dir.
    dir: PathBuf,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
    /// Only entries of these kinds (repeatable): normal, conf, noop, put, delete_range, txn,
    /// range, compaction, lease_grant, lease_revoke, lease_checkpoint, alarm, auth, cluster, v2, unknown.
    #[arg(long = "type", value_name = "KIND")]
    types: Vec<String>,
    /// Only entries with index ≥ N.
    #[arg(long, value_name = "N")]
    start_index: Option<u64>,
    /// Only entries with index ≤ N.
    #[arg(long, value_name = "N")]
    end_index: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// A WAL dir, a member dir or a data dir.
    dir: PathBuf,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// Input: a WAL dir, a member dir or a data dir (never modified).
    input: PathBuf,
    /// Output WAL directory (must not exist or be empty).
    output: PathBuf,
    #[command(flatten)]
    rules: crate::rules_args::KeyRuleArgs,
    /// Remove temporary directories of ours that killed runs left beside OUTPUT (reported either way;
    /// the output itself is never written over).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

/// Whether `e` concerns a path inside the temporary directory beside `output` (`.OUT.tmp.PID`).
fn in_temporary_of(e: &WalError, output: &Path) -> bool {
    let (WalError::Io { path, .. }, Some(name)) = (e, output.file_name()) else { return false };
    let prefix = etcdsnap_io::tmp_prefix(name);
    path.ancestors().filter_map(Path::file_name).any(|n| n.as_encoded_bytes().starts_with(prefix.as_encoded_bytes()))
}

/// The bytes of the WAL segments in `dir`, a progress bar's total (0 when they cannot be listed).
fn segments_bytes(dir: &Path) -> u64 {
    list_segments(dir).map_or(0, |s| s.iter().map(|s| s.size).fold(0u64, u64::saturating_add))
}

pub fn run(cmd: WalCommand, out: &mut Out) -> Result<Outcome> {
    match cmd {
        WalCommand::Verify(a) => verify_cmd(&a, out),
        WalCommand::Dump(a) => dump_cmd(&a, out),
        WalCommand::Repair(a) => repair_cmd(&a, out),
        WalCommand::Rewrite(a) => rewrite_cmd(&a, out),
    }
}

fn wal_dir_of(dir: &Path) -> Result<WalPaths> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("{}: no such directory", dir.display()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        Ok(m) if !m.is_dir() => {
            bail!("{} is a file; expected a data dir, member dir or WAL directory", dir.display())
        }
        Ok(_) => {}
    }
    Ok(WalPaths::resolve(dir))
}

fn verify_cmd(a: &VerifyArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let layout = wal_dir_of(&a.dir)?;
    let counter = etcdsnap_io::Meter::new();
    let spin = crate::progress::Meter::start(
        format!("verifying {}", layout.wal_dir.display()),
        segments_bytes(&layout.wal_dir),
        &counter,
    );
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let report =
        etcdsnap_wal::verify::verify_metered(&layout.wal_dir, layout.snap_dir.as_deref(), threads, Some(&counter))?;
    drop(spin);
    let ci = match &layout.db {
        Some(db) => read_consistent_index(db)?,
        None => None,
    };
    let problems = report.data_dir_problems(ci);
    if a.fmt.structured() {
        out.json(&json::verify_json(&layout, &report, ci, &problems))?;
    } else {
        print_verify(out, &layout, &report, ci, &problems)?;
    }
    Ok(if problems.is_empty() { Outcome::Clean } else { Outcome::Problems })
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn print_verify(
    out: &mut Out,
    layout: &WalPaths,
    r: &WalReport,
    ci: Option<u64>,
    problems: &[WalFinding],
) -> Result<()> {
    let mut rows: Vec<Vec<String>> = vec![
        vec!["wal dir".into(), layout.wal_dir.display().to_string()],
        vec!["segments".into(), r.segments.len().to_string()],
        vec![
            "records".into(),
            format!(
                "{} ({} entries, {} hard states, {} snapshots, {} crc, {} metadata)",
                r.records,
                r.entry_records,
                r.state_records,
                r.snapshots.len(),
                r.crc_records,
                r.metadata_records
            ),
        ],
        vec!["first index".into(), opt(r.first_index)],
        vec!["last index".into(), format!("{} (term {})", opt(r.last_index), r.last_term)],
        vec!["overwritten".into(), r.overwritten.to_string()],
    ];
    if let Some(h) = &r.hard_state {
        rows.push(vec!["hard state".into(), format!("term {} vote {:x} commit {}", h.term, h.vote, h.commit)]);
    }
    if let Some(m) = &r.metadata {
        rows.push(vec!["metadata".into(), format!("node {:x} cluster {:x}", m.node_id, m.cluster_id)]);
    }
    if let Some(s) = r.snapshots.last() {
        rows.push(vec!["last snapshot rec".into(), format!("index {} term {}", s.index, s.term)]);
    }
    let crc = if r.corruption.is_some() { "broken" } else { "ok" };
    rows.push(vec!["crc chain".into(), format!("{crc} (last 0x{:08x})", r.last_crc)]);
    rows.push(vec!["sequence".into(), if r.sequence_gaps.is_empty() { "continuous".into() } else { "gaps".into() }]);
    rows.push(vec![
        "torn tail".into(),
        r.torn.as_ref().map(|t| format!("{} offset {} (repairable)", t.segment, t.offset)).unwrap_or("no".into()),
    ]);
    if layout.snap_dir.is_some() {
        let bad = r.snap_files.iter().filter(|s| s.problem.is_some()).count();
        rows.push(vec!["snap files".into(), format!("{} ({} bad)", r.snap_files.len(), bad)]);
        rows.push(vec![
            "usable snapshot".into(),
            r.usable_snapshot.map(|s| format!("index {} term {}", s.index, s.term)).unwrap_or("-".into()),
        ]);
    }
    if layout.db.is_some() {
        rows.push(vec!["db consistent_index".into(), opt(ci)]);
        if let (Some(n), Some(c), Some(last)) = (json::entries_after(ci, r.last_index), ci, r.last_index) {
            let range = if n > 0 { format!(" (indexes {}..={last})", c.saturating_add(1)) } else { String::new() };
            rows.push(vec!["after the db".into(), format!("{n} entries{range}, replayed by etcd at start")]);
        }
    }
    for l in table(&rows) {
        out.line(l)?;
    }
    let seg_rows: Vec<Vec<String>> =
        std::iter::once(["SEGMENT", "SIZE", "DATA END", "RECORDS", "FIRST", "LAST"].map(String::from).to_vec())
            .chain(r.segments.iter().map(|s| {
                vec![
                    s.segment.name.clone(),
                    s.segment.size.to_string(),
                    s.data_end.to_string(),
                    s.records.to_string(),
                    opt(s.first_index),
                    opt(s.last_index),
                ]
            }))
            .collect();
    out.line("")?;
    for l in table(&seg_rows) {
        out.line(l)?;
    }
    out.line("")?;
    if problems.is_empty() {
        out.line("OK")?;
    } else {
        for p in problems {
            out.line(&p.message)?;
        }
        out.line(format!("{} problems found", problems.len()))?;
    }
    Ok(())
}

fn dump_cmd(a: &DumpArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let kinds = a
        .types
        .iter()
        .map(|t| {
            EntryKind::parse(t).with_context(|| {
                let names: Vec<&str> = EntryKind::ALL.iter().map(|k| k.name()).collect();
                format!("--type {t}: expected one of {}", names.join(", "))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let filter = EntryFilter { kinds, start_index: a.start_index, end_index: a.end_index };
    let layout = wal_dir_of(&a.dir)?;
    let segments = list_segments(&layout.wal_dir)?;
    if segments.is_empty() {
        bail!("{}: no WAL segments", layout.wal_dir.display());
    }
    let mut problem: Option<String> = None;
    let mut out_err: Option<anyhow::Error> = None;
    let counter = etcdsnap_io::Meter::new();
    let bar = crate::progress::Meter::start_streaming(
        format!("reading {}", layout.wal_dir.display()),
        segments.iter().map(|s| s.size).fold(0u64, u64::saturating_add),
        &counter,
    );
    let end = etcdsnap_wal::read_wal_metered(&segments, Some(&counter), |_, f| {
        let Some(e) = f.entry else { return Ok(()) };
        let Some(payload) = filter.select(&e) else { return Ok(()) };
        let tname = e.type_name();
        let r = if a.fmt.structured() {
            out.json(&json::entry_json(&e, &tname, &payload))
        } else {
            out.line(format!("{}\t{}\t{}\t{}", e.term, e.index, tname, payload.summary()))
        };
        r.map_err(|e| {
            out_err = Some(e);
            WalError::Stopped
        })
    });
    drop(bar);
    if let Some(e) = out_err {
        return Err(e);
    }
    match end {
        Ok(end) => {
            if let Some(t) = end.torn {
                problem = Some(format!("{}: offset {}: torn last record ({})", t.segment, t.offset, t.detail));
            }
        }
        Err(WalError::Corrupt(c)) => problem = Some(format!("corrupt: {c}")),
        Err(e) => return Err(e.into()),
    }
    match problem {
        Some(p) => {
            out.flush()?;
            eprintln!("etcdsnap: {p}");
            Ok(Outcome::Problems)
        }
        None => Ok(Outcome::Clean),
    }
}

fn repair_cmd(a: &RepairArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let layout = wal_dir_of(&a.dir)?;
    match repair(&layout.wal_dir) {
        Ok(RepairOutcome::NothingToRepair { segment }) => {
            if a.fmt.structured() {
                out.json(&json!({"repaired": false, "segment": segment}))?;
            } else {
                out.line(format!("nothing to repair: {segment} ends cleanly"))?;
            }
            Ok(Outcome::Clean)
        }
        Ok(RepairOutcome::Repaired { segment, old_size, truncated_at, broken, detail }) => {
            if a.fmt.structured() {
                out.json(&json!({
                    "repaired": true,
                    "segment": segment,
                    "old_size": old_size,
                    "truncated_at": truncated_at,
                    "broken": broken.display().to_string(),
                    "detail": detail,
                }))?;
            } else {
                out.line(format!(
                    "repaired {segment}: torn last record ({detail}); truncated from {old_size} to {truncated_at} bytes; original kept as {}",
                    broken.display()
                ))?;
            }
            Ok(Outcome::Clean)
        }
        Err(WalError::Corrupt(c)) => {
            if a.fmt.structured() {
                out.json(&json!({"repaired": false, "refused": c.to_string()}))?;
            } else {
                out.line(format!("refusing to repair: corrupt: {c} (not a torn last record)"))?;
            }
            Ok(Outcome::Problems)
        }
        Err(e) => Err(e.into()),
    }
}

fn rewrite_cmd(a: &RewriteArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let layout = wal_dir_of(&a.input)?;
    let rules = a.rules.rules()?;
    // etcd replays the entries above the db's consistent_index: a filter may not shift their revisions.
    let consistent_index = replay_check_index(&layout)?;
    let counter = etcdsnap_io::Meter::new();
    let opts = RewriteOptions {
        consistent_index,
        cancel: Some(crate::interrupt::flag_on_signals()?),
        meter: Some(counter.clone()),
    };
    let stale = crate::paths::stale_beside(&a.output, a.force);
    let spin = crate::progress::Meter::start(
        format!("rewriting {}", layout.wal_dir.display()),
        segments_bytes(&layout.wal_dir),
        &counter,
    );
    let result = rewrite_with(&layout.wal_dir, &a.output, &rules, opts);
    drop(spin);
    let report = match result {
        Ok(r) => r,
        Err(WalError::Corrupt(c)) => {
            eprintln!("etcdsnap: corrupt input: {c}");
            return Ok(Outcome::Problems);
        }
        // A write into the temporary directory failed (a full disk): name the output.
        Err(e @ WalError::Io { .. }) if in_temporary_of(&e, &a.output) => {
            return Err(anyhow::Error::new(e).context(format!("writing {}", a.output.display())));
        }
        Err(e) => return Err(e.into()),
    };
    let stale_json = crate::output::stale_files(&stale);
    if a.fmt.structured() {
        let mut j = rewrite_report_json(&a.output, &report);
        if let Some(o) = j.as_object_mut() {
            o.insert("stale_temp_files".into(), serde_json::to_value(&stale_json)?);
        }
        out.json(&j)?;
    } else {
        for l in rewrite_report_lines(&a.output, &report) {
            out.line(l)?;
        }
        for s in &stale {
            let what = if s.removed { "removed" } else { "kept (--force removes it)" };
            out.line(format!("stale temp dir  {} ({} bytes) {what}", s.path.display(), s.bytes))?;
        }
    }
    Ok(Outcome::Clean)
}

/// The `wal rewrite --json` object (also the `wal` part of `rewrite --data-dir`).
pub fn rewrite_report_json(output: &Path, report: &WalRewriteReport) -> serde_json::Value {
    json!({
        "output": output.display().to_string(),
        "segments": report.segments,
        "records": report.records,
        "entries": report.entries,
        "rewritten": report.rewritten,
        "emptied": report.emptied,
        "ops_dropped": report.ops_dropped,
        "compares_dropped": report.compares_dropped,
        "v2_requests": report.v2_requests,
        "permissions_renamed": report.permissions_renamed,
        "permissions_overlapping": report.permissions_overlapping.iter().map(|(i, r)| json!({"index": i, "range": r})).collect::<Vec<_>>(),
        "straddling_ranges": report.straddling.iter().map(|(i, r)| json!({"index": i, "range": r})).collect::<Vec<_>>(),
        "compact_rev_key": report.compact_rev_key.name(),
        "rules": report.rules.iter().map(|m| json!({"rule": m.kind.name(), "value": crate::output::Bytes(&m.value), "matched": m.matched})).collect::<Vec<_>>(),
    })
}

/// The `wal rewrite` simple report.
pub fn rewrite_report_lines(output: &Path, report: &WalRewriteReport) -> Vec<String> {
    let mut rows = vec![
        vec!["output".into(), output.display().to_string()],
        vec!["segments".into(), report.segments.to_string()],
        vec!["records".into(), report.records.to_string()],
        vec!["entries".into(), report.entries.to_string()],
        vec!["rewritten".into(), report.rewritten.to_string()],
        vec!["emptied (now no-ops)".into(), report.emptied.to_string()],
        vec!["txn ops dropped".into(), report.ops_dropped.to_string()],
        vec!["txn compares dropped".into(), report.compares_dropped.to_string()],
        vec!["v2 requests (kept)".into(), report.v2_requests.to_string()],
        vec!["permissions renamed".into(), report.permissions_renamed.to_string()],
        vec!["compact_rev_key".into(), report.compact_rev_key.name().into()],
    ];
    for m in &report.rules {
        rows.push(vec![
            format!("rule {}", m.kind.name()),
            format!("{}  {} keys in requests", etcdsnap_bolt::display_bytes(&m.value), m.matched),
        ]);
    }
    let mut lines = table(&rows);
    for (i, r) in &report.straddling {
        lines.push(format!("index {i}: range {r} covers kept and dropped keys; kept unchanged"));
    }
    for (i, r) in &report.permissions_overlapping {
        lines.push(format!(
            "index {i}: permission {r} reaches inside and outside a rename source; kept unchanged (the snapshot \
             rewrite also grants the renamed part)"
        ));
    }
    lines
}

/// The db's `consistent_index` for the replay check of the WAL laid out as
/// `layout`, warning when no db is beside it (the check is then skipped).
fn replay_check_index(layout: &WalPaths) -> Result<Option<u64>> {
    use etcdsnap_datadir::replay::{replay_check, ReplayCheck};
    let check = replay_check(layout)?;
    if check == ReplayCheck::NoDb {
        eprintln!(
            "etcdsnap: warning: no member/snap/db beside {}: whether the rules shift the revisions of writes \
             etcd replays from the WAL cannot be checked (give the member or data dir)",
            layout.wal_dir.display()
        );
    }
    Ok(check.consistent_index())
}
