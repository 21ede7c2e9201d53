//! The JSON Lines report: one `{"type":"backup",…}` line per backup, one
//! `{"type":"cluster",…}` per cluster, a `{"type":"summary",…}` last; and
//! `report merge`, which rebuilds the unsharded report from shards' files.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};

use serde::Serialize;

use crate::error::{RemoteError, Result};
use crate::record::{summarize, BackupRecord, ClusterRecord, FleetReport, Summary};

#[derive(Serialize)]
struct Tagged<'a, T> {
    r#type: &'static str,
    #[serde(flatten)]
    record: &'a T,
}

fn line<T: Serialize>(w: &mut dyn Write, kind: &'static str, record: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, &Tagged { r#type: kind, record })?;
    w.write_all(b"\n")
}

/// Writes one backup line (what a run streams as results finish).
pub fn write_backup(w: &mut dyn Write, b: &BackupRecord) -> std::io::Result<()> {
    line(w, "backup", b)
}

/// Writes the cluster lines and the summary line.
pub fn write_tail(w: &mut dyn Write, clusters: &[ClusterRecord], summary: &Summary) -> std::io::Result<()> {
    for c in clusters {
        line(w, "cluster", c)?;
    }
    line(w, "summary", summary)
}

/// Writes a whole report: backups (in the report's order), clusters, summary.
pub fn write(w: &mut dyn Write, r: &FleetReport) -> std::io::Result<()> {
    for b in &r.backups {
        write_backup(w, b)?;
    }
    write_tail(w, &r.clusters, &r.summary)
}

/// Reads a report written by [`write`]; unknown fields and types are errors.
pub fn read(r: &mut dyn BufRead, name: &str) -> Result<FleetReport> {
    let bad = |n: usize, why: String| RemoteError::Usage(format!("{name}:{n}: {why}"));
    let mut backups = Vec::new();
    let mut clusters = Vec::new();
    let mut summary = None;
    for (i, l) in r.lines().enumerate() {
        let n = i.saturating_add(1);
        let l = l.map_err(|e| RemoteError::Local { path: name.to_string(), source: e })?;
        if l.trim().is_empty() {
            continue;
        }
        let mut v: serde_json::Value = serde_json::from_str(&l).map_err(|e| bad(n, e.to_string()))?;
        let kind = v
            .as_object_mut()
            .and_then(|o| o.remove("type"))
            .and_then(|t| t.as_str().map(str::to_string))
            .ok_or_else(|| bad(n, "no \"type\"".into()))?;
        let de = |e: serde_json::Error| bad(n, format!("{kind} line: {e}"));
        match kind.as_str() {
            "backup" => backups.push(serde_json::from_value::<BackupRecord>(v).map_err(de)?),
            "cluster" => clusters.push(serde_json::from_value::<ClusterRecord>(v).map_err(de)?),
            "summary" if summary.is_none() => summary = Some(serde_json::from_value::<Summary>(v).map_err(de)?),
            "summary" => return Err(bad(n, "a second summary line".into())),
            other => return Err(bad(n, format!("unknown line type {other:?}"))),
        }
    }
    let summary = summary.ok_or_else(|| RemoteError::Usage(format!("{name}: no summary line (an unfinished run?)")))?;
    Ok(FleetReport { backups, clusters, summary })
}

/// Merges shard reports into the report the unsharded run gives: every
/// shard of one `COUNT` present once, the same objective, no object or
/// cluster in two shards. (An unsharded report merges with nothing else.)
pub fn merge(parts: Vec<(String, FleetReport)>) -> Result<FleetReport> {
    let first = parts.first().ok_or_else(|| RemoteError::Usage("report merge: no reports given".into()))?;
    let objective = first.1.summary.objective.clone();
    let mut count = None;
    let mut seen = BTreeSet::new();
    let mut backups = Vec::new();
    let mut clusters = Vec::new();
    let mut ignored = 0u64;
    for (name, r) in parts {
        if r.summary.objective != objective {
            return Err(RemoteError::Usage(format!(
                "{name}: judged with another clock or objective ({:?}) than the first report ({:?}); give every shard the same --now, --max-age and --require",
                r.summary.objective, objective
            )));
        }
        let (index, c) = match r.summary.shard.as_deref().map(|s| s.split_once('/')) {
            Some(Some((i, c))) => (i.parse::<u32>().ok(), c.parse::<u32>().ok()),
            _ => (Some(0), Some(1)),
        };
        let (Some(index), Some(c)) = (index, c) else {
            return Err(RemoteError::Usage(format!("{name}: shard {:?} is not INDEX/COUNT", r.summary.shard)));
        };
        if *count.get_or_insert(c) != c {
            return Err(RemoteError::Usage(format!(
                "{name}: shard {index}/{c}, but other reports are of {count:?} shards"
            )));
        }
        if !seen.insert(index) {
            return Err(RemoteError::Usage(format!("{name}: shard {index}/{c} given twice")));
        }
        ignored = ignored.saturating_add(r.summary.ignored);
        backups.extend(r.backups);
        clusters.extend(r.clusters);
    }
    let count = count.unwrap_or(1);
    if let Some(missing) = (0..count).find(|i| !seen.contains(i)) {
        return Err(RemoteError::Usage(format!(
            "shard {missing}/{count} is missing: the merged report would not cover the fleet"
        )));
    }
    backups.sort_by(|a, b| a.url.cmp(&b.url));
    if let Some(w) = backups.windows(2).find(|w| w.first().map(|b| &b.url) == w.get(1).map(|b| &b.url)) {
        let url = w.first().map(|b| b.url.clone()).unwrap_or_default();
        return Err(RemoteError::Usage(format!("{url} is in two shards' reports")));
    }
    clusters.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    if let Some(w) = clusters.windows(2).find(|w| w.first().map(|c| &c.cluster) == w.get(1).map(|c| &c.cluster)) {
        let c = w.first().map(|c| c.cluster.clone()).unwrap_or_default();
        return Err(RemoteError::Usage(format!("cluster {c:?} is judged in two shards' reports")));
    }
    let summary = summarize(&backups, &clusters, &objective, None, ignored);
    Ok(FleetReport { backups, clusters, summary })
}
