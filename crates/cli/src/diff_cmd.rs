//! `etcdsnap diff`: where two snapshots (or dbs, or members' data dirs) part.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use etcdsnap_bolt::display_bytes;
use etcdsnap_keys::{KeyRules, Rename};
use etcdsnap_mvcc::diff::{diff, history_diff, DiffOptions, Side, StoredRev};
use serde::Serialize;

use crate::etcd_cmd::open;
use crate::output::{table, Bytes, Out};
use crate::Outcome;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// First snapshot, raw db, data dir or member dir.
    a: PathBuf,
    /// Second snapshot, raw db, data dir or member dir.
    b: PathBuf,
    /// Only keys under this prefix (named as in B).
    #[arg(long, default_value = "")]
    prefix: String,
    /// Compare the key spaces at this revision [default: each side's latest].
    #[arg(long, default_value_t = 0)]
    rev: i64,
    /// Rename A's keys before comparing (repeatable; A is limited to the rename
    /// sources, B to the targets): a tenant of a shared etcd against its moved copy.
    #[arg(long, value_name = "FROM=TO")]
    rename: Vec<String>,
    /// Print the differing values too.
    #[arg(long)]
    values: bool,
    /// Compare the stored histories of two members of one cluster instead: the
    /// first revision at which their `key` buckets differ, and the keys there.
    #[arg(long, conflicts_with_all = ["prefix", "rev", "rename", "values"])]
    history: bool,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Serialize)]
struct SideJson<'a> {
    key: Bytes<'a>,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
    value_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Bytes<'a>>,
}

fn side_json<'a>(s: &Side<'a>, values: bool) -> SideJson<'a> {
    SideJson {
        key: Bytes(s.key),
        create_revision: s.create_revision,
        mod_revision: s.mod_revision,
        version: s.version,
        lease: s.lease,
        value_bytes: s.value.len() as u64,
        value: values.then_some(Bytes(s.value)),
    }
}

#[derive(Serialize)]
struct KeyDiffJson<'a> {
    key: Bytes<'a>,
    kind: &'static str,
    fields: &'a [&'static str],
    a: Option<SideJson<'a>>,
    b: Option<SideJson<'a>>,
}

#[derive(Serialize)]
struct BucketDiffJson<'a> {
    bucket: Bytes<'a>,
    key: Bytes<'a>,
    kind: &'static str,
}

#[derive(Serialize)]
struct DiffJson<'a> {
    a: String,
    b: String,
    equal: bool,
    rev_a: i64,
    rev_b: i64,
    keys_a: u64,
    keys_b: u64,
    only_a: u64,
    only_b: u64,
    changed: u64,
    keys: Vec<KeyDiffJson<'a>>,
    buckets_compared: Vec<Bytes<'a>>,
    buckets: Vec<BucketDiffJson<'a>>,
}

#[derive(Serialize)]
struct StoredJson<'a> {
    revision: i64,
    sub: i64,
    tombstone: bool,
    key: Bytes<'a>,
}

#[derive(Serialize)]
struct HistoryJson<'a> {
    a: String,
    b: String,
    equal: bool,
    compared_after: i64,
    compared: u64,
    first_difference: Option<i64>,
    at_first_a: Vec<StoredJson<'a>>,
    at_first_b: Vec<StoredJson<'a>>,
    only_a: u64,
    only_b: u64,
    changed: u64,
    latest_a: i64,
    latest_b: i64,
}

fn stored_json(s: &StoredRev) -> StoredJson<'_> {
    StoredJson { revision: s.at.rev.main, sub: s.at.rev.sub, tombstone: s.at.tombstone, key: Bytes(&s.key) }
}

pub fn run(a: &DiffArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    if a.rev < 0 {
        bail!("--rev must not be negative");
    }
    let ((pa, fa), (pb, fb)) = (crate::paths::map_db_or_dir(&a.a)?, crate::paths::map_db_or_dir(&a.b)?);
    let counter = etcdsnap_io::Meter::new();
    let (da, db) = (open(&pa, &fa)?.metered(&counter), open(&pb, &fb)?.metered(&counter));
    // One pass over each side.
    let bar = crate::progress::Meter::start(
        format!("comparing {} and {}", pa.display(), pb.display()),
        (fa.len() as u64).saturating_add(fb.len() as u64),
        &counter,
    );
    if a.history {
        let h = history_diff(&da, &db).with_context(|| format!("comparing {} and {}", pa.display(), pb.display()))?;
        drop(bar);
        crate::paths::unchanged(&fa)?;
        crate::paths::unchanged(&fb)?;
        let equal = h.first_difference.is_none();
        if a.fmt.structured() {
            out.json(&HistoryJson {
                a: pa.display().to_string(),
                b: pb.display().to_string(),
                equal,
                compared_after: h.compared_after,
                compared: h.compared,
                first_difference: h.first_difference,
                at_first_a: h.at_first_a.iter().map(stored_json).collect(),
                at_first_b: h.at_first_b.iter().map(stored_json).collect(),
                only_a: h.only_a,
                only_b: h.only_b,
                changed: h.changed,
                latest_a: h.latest_a,
                latest_b: h.latest_b,
            })?;
        } else {
            out.line(format!(
                "compared {} stored revisions after revision {} (latest: A {}, B {})",
                h.compared, h.compared_after, h.latest_a, h.latest_b
            ))?;
            match h.first_difference {
                None => out.line("histories are equal")?,
                Some(r) => {
                    out.line(format!("first difference at revision {r}"))?;
                    for (side, revs) in [("A", &h.at_first_a), ("B", &h.at_first_b)] {
                        if revs.is_empty() {
                            out.line(format!("  {side}: nothing stored at {r}"))?;
                        }
                        for s in revs {
                            let what = if s.at.tombstone { "delete" } else { "put" };
                            out.line(format!("  {side}: {r}_{} {what} {}", s.at.rev.sub, display_bytes(&s.key)))?;
                        }
                    }
                    out.line(format!(
                        "in all: {} only in A, {} only in B, {} with different values",
                        h.only_a, h.only_b, h.changed
                    ))?;
                }
            }
        }
        return Ok(if equal { Outcome::Clean } else { Outcome::Problems });
    }

    let mut rules = KeyRules::default();
    for r in &a.rename {
        rules.renames.push(Rename::parse(r).with_context(|| format!("--rename {r}"))?);
    }
    let opts = DiffOptions { prefix: a.prefix.as_bytes().to_vec(), rev: a.rev, rules };
    let r = diff(&da, &db, &opts).with_context(|| format!("comparing {} and {}", pa.display(), pb.display()))?;
    drop(bar);
    crate::paths::unchanged(&fa)?;
    crate::paths::unchanged(&fb)?;
    let count = |k: etcdsnap_mvcc::diff::DiffKind| r.keys.iter().filter(|d| d.kind == k).count() as u64;
    let (only_a, only_b, changed) = (
        count(etcdsnap_mvcc::diff::DiffKind::OnlyA),
        count(etcdsnap_mvcc::diff::DiffKind::OnlyB),
        count(etcdsnap_mvcc::diff::DiffKind::Changed),
    );
    let equal = r.is_equal();
    if a.fmt.structured() {
        out.json(&DiffJson {
            a: pa.display().to_string(),
            b: pb.display().to_string(),
            equal,
            rev_a: r.rev_a,
            rev_b: r.rev_b,
            keys_a: r.keys_a,
            keys_b: r.keys_b,
            only_a,
            only_b,
            changed,
            keys: r
                .keys
                .iter()
                .map(|d| KeyDiffJson {
                    key: Bytes(&d.key),
                    kind: d.kind.as_str(),
                    fields: &d.fields,
                    a: d.a.as_ref().map(|s| side_json(s, a.values)),
                    b: d.b.as_ref().map(|s| side_json(s, a.values)),
                })
                .collect(),
            buckets_compared: r.buckets_compared.iter().map(|b| Bytes(b)).collect(),
            buckets: r
                .buckets
                .iter()
                .map(|d| BucketDiffJson { bucket: Bytes(d.bucket), key: Bytes(&d.key), kind: d.kind.as_str() })
                .collect(),
        })?;
    } else {
        out.line(format!(
            "A: {} keys at revision {}; B: {} keys at revision {}",
            r.keys_a, r.rev_a, r.keys_b, r.rev_b
        ))?;
        let mut rows = Vec::new();
        for d in &r.keys {
            let detail = match (&d.a, &d.b) {
                (Some(x), Some(y)) => d
                    .fields
                    .iter()
                    .map(|f| match *f {
                        "value" if a.values => format!(
                            "value {:?} -> {:?}",
                            display_bytes(x.value).to_string(),
                            display_bytes(y.value).to_string()
                        ),
                        "value" => format!("value ({} -> {} bytes)", x.value.len(), y.value.len()),
                        "create_revision" => format!("create_revision {} -> {}", x.create_revision, y.create_revision),
                        "mod_revision" => format!("mod_revision {} -> {}", x.mod_revision, y.mod_revision),
                        "version" => format!("version {} -> {}", x.version, y.version),
                        _ => format!("lease {:x} -> {:x}", x.lease, y.lease),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                (Some(x), None) | (None, Some(x)) => format!("mod_revision {}", x.mod_revision),
                (None, None) => String::new(),
            };
            rows.push(vec![d.kind.as_str().to_string(), display_bytes(&d.key).to_string(), detail]);
        }
        for d in &r.buckets {
            rows.push(vec![
                d.kind.as_str().to_string(),
                format!("{}/{}", display_bytes(d.bucket), display_bytes(&d.key)),
                "bucket entry".into(),
            ]);
        }
        for line in table(&rows) {
            out.line(line)?;
        }
        out.line(if equal {
            "equal".to_string()
        } else {
            format!(
                "{only_a} keys only in A, {only_b} only in B, {changed} changed; {} bucket entries differ",
                r.buckets.len()
            )
        })?;
    }
    Ok(if equal { Outcome::Clean } else { Outcome::Problems })
}
