//! `verify` of backups in object storage (many at once, judged per cluster)
//! and `report merge`: arguments into the library's options, records out in
//! the chosen formats. The checks, the objective and the formats are
//! `etcdsnap-remote`'s.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use etcdsnap_remote::record::{BackupRecord, ClusterRecord, FleetReport, Summary};
use etcdsnap_remote::{jsonl, junit, prometheus, FleetOptions, Shard};

use crate::output::Out;
use crate::remote_args::RemoteArgs;
use crate::Outcome;

/// What stdout carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ReportFormat {
    /// A line per backup as it finishes, the failing clusters, a summary.
    #[default]
    Text,
    /// JSON Lines: a `backup` line per backup as it finishes, `cluster` lines, a `summary` line.
    Jsonl,
    /// JUnit XML at the end: a testsuite per cluster, a testcase per backup and per cluster objective.
    Junit,
    /// Prometheus text exposition at the end (textfile collector, Pushgateway).
    Prometheus,
}

/// The report files, written whole at the end (backups sorted by URL); each
/// FILE may be an object URL (`s3://bucket/reports/run-1/shard-0.jsonl`),
/// put once when the run is done.
#[derive(Debug, Clone, Args)]
pub struct ReportFiles {
    /// Format of stdout (`--json` is `jsonl`).
    #[arg(long, value_enum, value_name = "FORMAT", help_heading = "Reports")]
    report_format: Option<ReportFormat>,
    /// Also write the JSON Lines report to FILE or object URL (what `report merge` reads).
    #[arg(long, value_name = "FILE", help_heading = "Reports")]
    jsonl: Option<PathBuf>,
    /// Also write the JUnit XML report to FILE or object URL.
    #[arg(long, value_name = "FILE", help_heading = "Reports")]
    junit: Option<PathBuf>,
    /// Also write the Prometheus text exposition to FILE (e.g. node_exporter's textfile directory) or object URL.
    #[arg(long, value_name = "FILE", help_heading = "Reports")]
    prometheus: Option<PathBuf>,
}

/// The fleet flags of `verify`.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Every object under a prefix URL, not only its direct children.
    #[arg(short = 'r', long, help_heading = "Fleet")]
    recursive: bool,
    /// A file of object or prefix URLs, one a line (# comments).
    #[arg(long, value_name = "FILE", help_heading = "Fleet")]
    from_list: Option<PathBuf>,
    /// Objects checked at once; each holds one local spool copy.
    #[arg(short = 'j', long, default_value_t = 4, value_name = "N", help_heading = "Fleet")]
    jobs: usize,
    /// Regex mapping an object's URL to its cluster: the group named
    /// `cluster`, else the first group. Objects it does not match are ignored.
    #[arg(long, value_name = "REGEX", help_heading = "Fleet")]
    group_by: Option<String>,
    /// A cluster needs a valid backup younger than this (e.g. 24h, 90m, 7d).
    #[arg(long, value_name = "DURATION", help_heading = "Fleet")]
    max_age: Option<String>,
    /// Fresh valid backups each cluster needs.
    #[arg(long, default_value_t = 1, value_name = "N", help_heading = "Fleet")]
    require: u64,
    /// File of cluster names that must have backups (one a line): one with none is a finding.
    #[arg(long, value_name = "FILE", help_heading = "Fleet")]
    expect_groups: Option<PathBuf>,
    /// Check only shard INDEX of COUNT (by a hash of the cluster); INDEX
    /// defaults to $JOB_COMPLETION_INDEX (`--shard /4`).
    #[arg(long, value_name = "INDEX/COUNT", help_heading = "Fleet")]
    shard: Option<String>,
    /// The clock ages are judged by: RFC 3339, Unix seconds, or job:JOB_NAME
    /// (the time a CronJob scheduled that Job, so every shard of it agrees) [default: now].
    #[arg(long, value_name = "TIME", help_heading = "Fleet")]
    now: Option<String>,
    #[command(flatten)]
    reports: ReportFiles,
    #[command(flatten)]
    remote: RemoteArgs,
}

impl FleetArgs {
    /// Whether a fleet-only flag was given (so local files cannot be meant).
    pub fn requested(&self) -> bool {
        self.recursive || self.from_list.is_some() || self.group_by.is_some() || self.shard.is_some()
    }
}

/// `verify URL… [fleet flags]`.
pub fn verify(
    inputs: &[PathBuf],
    require_trailer: bool,
    json: bool,
    a: &FleetArgs,
    census: Option<std::sync::Arc<etcdsnap_k8s::census::Opener>>,
    out: &mut Out,
) -> Result<Outcome> {
    let mut urls = Vec::new();
    for p in inputs {
        match p.to_str().filter(|s| etcdsnap_remote::is_remote(s)) {
            Some(u) => urls.push(u.to_string()),
            None => bail!(
                "{}: local files and object storage URLs (or fleet flags) cannot be mixed; verify local files in a separate run",
                p.display()
            ),
        }
    }
    if let Some(list) = &a.from_list {
        urls.extend(etcdsnap_remote::fleet::read_list(list)?);
    }
    if a.expect_groups.is_some() && a.group_by.is_none() {
        bail!("--expect-groups needs --group-by (which says what a cluster is)");
    }
    if a.jobs == 0 {
        bail!("-j/--jobs must be at least 1");
    }
    let group_by = a.group_by.as_deref().map(regex::Regex::new).transpose().context("--group-by")?;
    let env_index = std::env::var("JOB_COMPLETION_INDEX").ok();
    let opts = FleetOptions {
        inputs: urls,
        recursive: a.recursive,
        jobs: a.jobs,
        group_by,
        max_age: a.max_age.as_deref().map(etcdsnap_remote::parse_duration).transpose()?,
        require: a.require,
        expect_groups: a
            .expect_groups
            .as_deref()
            .map(etcdsnap_remote::fleet::read_list)
            .transpose()?
            .unwrap_or_default(),
        shard: a.shard.as_deref().map(|s| Shard::parse(s, env_index.as_deref())).transpose()?,
        now: a.now.as_deref().map(etcdsnap_remote::parse_now).transpose()?,
        require_trailer,
        spool_dir: a.remote.spool_dir().map(Path::to_path_buf),
        store: a.remote.store_options()?,
        census,
    };
    let format = stdout_format(a.reports.report_format, json);
    // Each backup's line is out (flushed) as soon as it is done.
    let report = etcdsnap_remote::verify_fleet(&opts, &mut |b| {
        let w = out.writer();
        match format {
            ReportFormat::Text => writeln!(w, "{}", text_line(b))?,
            ReportFormat::Jsonl => jsonl::write_backup(w, b)?,
            ReportFormat::Junit | ReportFormat::Prometheus => return Ok(()),
        }
        w.flush()
    })?;
    finish(&report, format, &a.reports, &a.remote, true, out)
}

fn stdout_format(f: Option<ReportFormat>, json: bool) -> ReportFormat {
    match (f, json) {
        (Some(f), _) => f,
        (None, true) => ReportFormat::Jsonl,
        (None, false) => ReportFormat::Text,
    }
}

/// Writes the tail of stdout (or the whole, for the end-only formats) and the report files.
fn finish(
    r: &FleetReport,
    format: ReportFormat,
    files: &ReportFiles,
    remote: &RemoteArgs,
    streamed: bool,
    out: &mut Out,
) -> Result<Outcome> {
    let mut buf = Vec::new();
    match format {
        ReportFormat::Text => {
            if !streamed {
                for b in &r.backups {
                    writeln!(buf, "{}", text_line(b))?;
                }
            }
            for c in r.clusters.iter().filter(|c| c.finding.is_some()) {
                writeln!(buf, "{}", cluster_line(c))?;
            }
            writeln!(buf, "{}", summary_line(&r.summary))?;
        }
        ReportFormat::Jsonl if streamed => jsonl::write_tail(&mut buf, &r.clusters, &r.summary)?,
        ReportFormat::Jsonl => jsonl::write(&mut buf, r)?,
        ReportFormat::Junit => junit::write(&mut buf, r)?,
        ReportFormat::Prometheus => prometheus::write(&mut buf, r)?,
    }
    out.writer().write_all(&buf)?;
    write_file(files.jsonl.as_deref(), remote, |w| jsonl::write(w, r))?;
    write_file(files.junit.as_deref(), remote, |w| junit::write(w, r))?;
    write_file(files.prometheus.as_deref(), remote, |w| prometheus::write(w, r))?;
    Ok(match r.summary.exit_code() {
        0 => Outcome::Clean,
        1 => Outcome::Problems,
        _ => Outcome::Unreadable,
    })
}

/// Writes a report file whole, or not at all (temporary file renamed over
/// it; an object: one PUT of the whole report).
fn write_file(
    path: Option<&Path>,
    remote: &RemoteArgs,
    f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    if let Some(url) = path.to_str().filter(|s| etcdsnap_remote::is_remote(s)) {
        let mut buf = Vec::new();
        f(&mut buf).with_context(|| format!("writing {url}"))?;
        etcdsnap_remote::objects::write_object(url, buf, &remote.store_options()?)
            .with_context(|| format!("writing the report {url}"))?;
        return Ok(());
    }
    let mut file = etcdsnap_io::AtomicFile::create(path, &[])?;
    let mut w = std::io::BufWriter::new(file.file()?);
    f(&mut w).with_context(|| format!("writing {}", path.display()))?;
    w.flush().with_context(|| format!("writing {}", path.display()))?;
    drop(w);
    file.commit()?;
    Ok(())
}

fn text_line(b: &BackupRecord) -> String {
    let cluster = b.cluster.as_deref().map(|c| format!("cluster {c}, ")).unwrap_or_default();
    let rev = b.revision.map(|r| format!("revision {r}, ")).unwrap_or_default();
    let mut s = format!(
        "{}: {} ({cluster}{rev}age {}s, {} bytes, trailer {}",
        b.url,
        b.state.name(),
        b.age_seconds,
        b.size,
        b.trailer
    );
    if let (Some(h), Some(kv)) = (b.status_hash, b.hashkv) {
        s.push_str(&format!(", hash {h}, hashkv {kv}"));
    }
    if let Some(c) = &b.encryption {
        s.push_str(&format!(
            ", encryption: {} values, {} opened, {} failed, {} plaintext, {} unknown key",
            c.values, c.opened, c.failed, c.plaintext, c.unknown_key
        ));
    }
    if !b.fresh && b.state == etcdsnap_remote::BackupState::Valid {
        s.push_str(", older than --max-age");
    }
    s.push(')');
    for p in &b.problems {
        s.push_str(&format!("\n  problem: {}: {}", p.kind, p.message));
    }
    if b.problem_count > b.problems.len() as u64 {
        s.push_str(&format!("\n  … {} problems in all", b.problem_count));
    }
    s
}

fn cluster_line(c: &ClusterRecord) -> String {
    format!(
        "cluster {}: {}: {}",
        c.cluster,
        c.finding.map(|f| f.name()).unwrap_or("ok"),
        c.message.as_deref().unwrap_or_default()
    )
}

fn summary_line(s: &Summary) -> String {
    let shard = s.shard.as_deref().map(|x| format!("shard {x}: ")).unwrap_or_default();
    let mut line = format!(
        "{shard}{} objects, {} bytes: {} valid, {} with problems, {} changed while read, {} unreadable",
        s.objects, s.bytes, s.valid, s.problems, s.changed, s.unreadable
    );
    if s.ignored > 0 {
        line.push_str(&format!(", {} not matched by --group-by", s.ignored));
    }
    if s.clusters > 0 {
        line.push_str(&format!(
            "; {} clusters, {} failing ({} missing, {} without a valid backup, {} stale, {} too few)",
            s.clusters, s.clusters_failing, s.missing, s.no_valid_backup, s.stale, s.too_few
        ));
    }
    line
}

/// Commands on reports.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Combine the JSON Lines reports of `verify --shard I/N` runs into the unsharded report.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' JSON Lines reports (`verify … --jsonl FILE`), every shard
    /// once: files, object URLs, a prefix URL ending in `/` (its `*.jsonl`
    /// objects) or a URL with `*` in its last segment (`s3://b/run-1/shard-*.jsonl`).
    #[arg(required = true, value_name = "FILE|URL")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    reports: ReportFiles,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub fn report_cmd(cmd: &ReportCommand, out: &mut Out) -> Result<Outcome> {
    let ReportCommand::Merge(a) = cmd;
    let mut parts = Vec::new();
    for f in &a.files {
        if let Some(url) = f.to_str().filter(|s| etcdsnap_remote::is_remote(s)) {
            let store = a.remote.store_options()?;
            for (name, bytes) in etcdsnap_remote::objects::read_objects(url, &store)? {
                let r = jsonl::read(&mut bytes.as_ref(), &name)?;
                parts.push((name, r));
            }
            continue;
        }
        let file = std::fs::File::open(f).with_context(|| format!("cannot read {}", f.display()))?;
        let name = f.display().to_string();
        let r = jsonl::read(&mut std::io::BufReader::new(file), &name)?;
        parts.push((name, r));
    }
    let merged = jsonl::merge(parts)?;
    let format = a.reports.report_format.unwrap_or(ReportFormat::Jsonl);
    finish(&merged, format, &a.reports, &a.remote, false, out)
}
