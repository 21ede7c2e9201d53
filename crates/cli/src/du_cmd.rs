//! `etcdsnap du`: what fills a snapshot, per tenant, resource, namespace or prefix.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use etcdsnap_bolt::display_bytes;
use etcdsnap_mvcc::du::{du, DuOptions, GroupBy, SizedKey, Usage};
use serde::Serialize;

use crate::etcd_cmd::open;
use crate::output::{table, Bytes, Out};
use crate::Outcome;

#[derive(Debug, Args)]
pub struct DuArgs {
    /// Snapshot file, raw member/snap/db, or an etcd data dir or member dir;
    /// or an object's URL (s3://, gs://, az://, https://).
    file: PathBuf,
    /// Grouping: `tenant` (the part before /registry/), `resource`
    /// (tenant/registry/<resource>, CRD groups kept), `namespace`, or
    /// `prefix:N` (the first N path segments).
    #[arg(long, default_value = "tenant", value_parser = parse_by)]
    by: GroupBy,
    /// Groups shown in the table (the rest are summed in one row; JSON lists all).
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// How many of the largest keys to list.
    #[arg(long, default_value_t = 10)]
    top_keys: usize,
    /// Revision to split live data from history at [default: the latest].
    #[arg(long, default_value_t = 0)]
    rev: i64,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
    #[command(flatten)]
    remote: crate::remote_args::RemoteArgs,
}

fn parse_by(s: &str) -> std::result::Result<GroupBy, String> {
    match s {
        "tenant" => Ok(GroupBy::Tenant),
        "resource" => Ok(GroupBy::Resource),
        "namespace" => Ok(GroupBy::Namespace),
        _ => match s.strip_prefix("prefix:").map(str::parse::<usize>) {
            Some(Ok(n)) if n > 0 => Ok(GroupBy::Prefix(n)),
            _ => Err(format!("{s:?}: expected tenant, resource, namespace or prefix:N with N ≥ 1")),
        },
    }
}

#[derive(Serialize)]
struct KeyJson<'a> {
    key: Bytes<'a>,
    value_bytes: u64,
    mod_revision: i64,
}

impl<'a> KeyJson<'a> {
    fn of(k: &'a SizedKey) -> Self {
        KeyJson { key: Bytes(&k.key), value_bytes: k.value_bytes, mod_revision: k.mod_revision }
    }
}

#[derive(Serialize)]
struct UsageJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<Bytes<'a>>,
    live_keys: u64,
    live_value_bytes: u64,
    live_stored_bytes: u64,
    history_revisions: u64,
    history_stored_bytes: u64,
    tombstones: u64,
    leased_keys: u64,
    share: f64,
    largest: Option<KeyJson<'a>>,
}

fn usage_json<'a>(group: Option<&'a [u8]>, u: &'a Usage, file_bytes: u64) -> UsageJson<'a> {
    UsageJson {
        group: group.map(Bytes),
        live_keys: u.live_keys,
        live_value_bytes: u.live_value_bytes,
        live_stored_bytes: u.live_stored_bytes,
        history_revisions: u.history_revisions,
        history_stored_bytes: u.history_stored_bytes,
        tombstones: u.tombstones,
        leased_keys: u.leased_keys,
        share: share(u.stored_bytes(), file_bytes),
        largest: u.largest.as_ref().map(KeyJson::of),
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    // Four decimals are plenty for a share of a file.
    ((part as f64 / whole as f64) * 10_000.0).round() / 10_000.0
}

#[derive(Serialize)]
struct DuJson<'a> {
    file: String,
    by: String,
    revision: i64,
    file_bytes: u64,
    db_bytes: u64,
    free_pages: u64,
    free_bytes: u64,
    markers: u64,
    later_revisions: u64,
    totals: UsageJson<'a>,
    groups: Vec<UsageJson<'a>>,
    largest_keys: Vec<KeyJson<'a>>,
}

fn by_name(by: GroupBy) -> String {
    match by {
        GroupBy::Tenant => "tenant".into(),
        GroupBy::Resource => "resource".into(),
        GroupBy::Namespace => "namespace".into(),
        GroupBy::Prefix(n) => format!("prefix:{n}"),
    }
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS.iter().skip(1) {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if unit == "B" {
        format!("{n} B")
    } else {
        format!("{v:.1} {unit}")
    }
}

pub fn run(a: &DuArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    if a.rev < 0 {
        bail!("--rev must not be negative");
    }
    // An object's URL is read once into a spool copy; the report and errors name the URL.
    let local = crate::remote_args::localize(&a.file, &a.remote)?;
    let (path, file) = crate::paths::map_db_or_dir(local.as_ref().map_or(a.file.as_path(), |l| l.path()))?;
    let path = if local.is_some() { a.file.clone() } else { path };
    let counter = etcdsnap_io::Meter::new();
    let db = open(&path, &file)?.metered(&counter);
    // Two passes over the key bucket: the latest revision per key, then the usage.
    let bar = crate::progress::Meter::start(
        format!("reading {}", path.display()),
        (file.len() as u64).saturating_mul(2),
        &counter,
    );
    let r = du(&db, &DuOptions { by: a.by, rev: a.rev, top_keys: a.top_keys })
        .with_context(|| format!("reading {}", path.display()))?;
    drop(bar);
    crate::paths::unchanged(&file)?;
    let file_bytes = file.len() as u64;
    if a.fmt.structured() {
        let j = DuJson {
            file: path.display().to_string(),
            by: by_name(a.by),
            revision: r.revision,
            file_bytes,
            db_bytes: r.db_bytes,
            free_pages: r.free_pages,
            free_bytes: r.free_bytes,
            markers: r.markers,
            later_revisions: r.later_revisions,
            totals: usage_json(None, &r.totals, file_bytes),
            groups: r.groups.iter().map(|g| usage_json(Some(&g.group), &g.usage, file_bytes)).collect(),
            largest_keys: r.largest_keys.iter().map(KeyJson::of).collect(),
        };
        out.json(&j)?;
        return Ok(Outcome::Clean);
    }
    let mut rows = vec![vec![
        by_name(a.by).to_uppercase(),
        "LIVE KEYS".into(),
        "LIVE VALUES".into(),
        "LIVE STORED".into(),
        "HISTORY REVS".into(),
        "HISTORY STORED".into(),
        "LEASED".into(),
        "SHARE".into(),
        "LARGEST KEY".into(),
    ]];
    let row = |label: String, u: &Usage| {
        vec![
            label,
            u.live_keys.to_string(),
            human(u.live_value_bytes),
            human(u.live_stored_bytes),
            format!("{} ({} tombstones)", u.history_revisions, u.tombstones),
            human(u.history_stored_bytes),
            u.leased_keys.to_string(),
            format!("{:.1}%", share(u.stored_bytes(), file_bytes) * 100.0),
            u.largest.as_ref().map_or("-".into(), |k| format!("{} ({})", display_bytes(&k.key), human(k.value_bytes))),
        ]
    };
    let label = |g: &[u8]| if g.is_empty() { "(top level)".to_string() } else { display_bytes(g).to_string() };
    for g in r.groups.iter().take(a.top) {
        rows.push(row(label(&g.group), &g.usage));
    }
    if r.groups.len() > a.top {
        let mut rest = Usage::default();
        for g in r.groups.iter().skip(a.top) {
            rest.add(&g.usage);
        }
        rest.largest = None;
        rows.push(row(format!("({} more groups)", r.groups.len().saturating_sub(a.top)), &rest));
    }
    rows.push(row("TOTAL".into(), &r.totals));
    for line in table(&rows) {
        out.line(line)?;
    }
    out.line("")?;
    out.line(format!(
        "revision {}; file {} (db {}); defragmentation would free {} ({} pages); {} markers{}",
        r.revision,
        human(file_bytes),
        human(r.db_bytes),
        human(r.free_bytes),
        r.free_pages,
        r.markers,
        if r.later_revisions > 0 { format!(", {} revisions after --rev", r.later_revisions) } else { String::new() }
    ))?;
    if !r.largest_keys.is_empty() {
        out.line("largest keys:")?;
        for k in &r.largest_keys {
            out.line(format!("  {:>10}  {}  (rev {})", human(k.value_bytes), display_bytes(&k.key), k.mod_revision))?;
        }
    }
    Ok(Outcome::Clean)
}
