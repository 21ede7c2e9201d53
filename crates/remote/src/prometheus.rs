//! The Prometheus text exposition report (for node_exporter's textfile
//! collector or a Pushgateway): per-backup gauges labelled with `cluster`
//! and `object`, per-cluster freshness gauges, and run totals.

use std::io::Write;

use crate::record::{BackupState, FleetReport};

fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn head(w: &mut dyn Write, name: &str, help: &str) -> std::io::Result<()> {
    writeln!(w, "# HELP {name} {help}")?;
    writeln!(w, "# TYPE {name} gauge")
}

/// Writes `r` in the Prometheus text format (version 0.0.4).
pub fn write(w: &mut dyn Write, r: &FleetReport) -> std::io::Result<()> {
    let b_labels = |b: &crate::record::BackupRecord| {
        format!(r#"cluster="{}",object="{}""#, label(b.cluster.as_deref().unwrap_or_default()), label(&b.url))
    };
    head(w, "etcdsnap_backup_valid", "1 when the backup was read whole and every check passed, else 0.")?;
    for b in &r.backups {
        writeln!(w, "etcdsnap_backup_valid{{{}}} {}", b_labels(b), u8::from(b.state == BackupState::Valid))?;
    }
    head(w, "etcdsnap_backup_revision", "Latest revision stored in the backup.")?;
    for b in &r.backups {
        if let Some(rev) = b.revision {
            writeln!(w, "etcdsnap_backup_revision{{{}}} {rev}", b_labels(b))?;
        }
    }
    head(w, "etcdsnap_backup_age_seconds", "Seconds from the backup's last-modified time to the run's clock.")?;
    for b in &r.backups {
        writeln!(w, "etcdsnap_backup_age_seconds{{{}}} {}", b_labels(b), b.age_seconds)?;
    }
    head(w, "etcdsnap_backup_bytes", "Size of the backup object in bytes.")?;
    for b in &r.backups {
        writeln!(w, "etcdsnap_backup_bytes{{{}}} {}", b_labels(b), b.size)?;
    }
    head(w, "etcdsnap_backup_problems", "Problems found in the backup (0 for a valid one).")?;
    for b in &r.backups {
        writeln!(w, "etcdsnap_backup_problems{{{}}} {}", b_labels(b), b.problem_count)?;
    }
    // Only runs with --encryption-config have it (other reports stay as they were).
    if r.backups.iter().any(|b| b.encryption.is_some()) {
        head(
            w,
            "etcdsnap_backup_encryption_values",
            "Kubernetes values of the backup by census result (--encryption-config): opened, failed, plaintext, unknown_key.",
        )?;
        for b in &r.backups {
            let Some(c) = &b.encryption else { continue };
            for (result, n) in
                [("opened", c.opened), ("failed", c.failed), ("plaintext", c.plaintext), ("unknown_key", c.unknown_key)]
            {
                writeln!(w, "etcdsnap_backup_encryption_values{{{},result=\"{result}\"}} {n}", b_labels(b))?;
            }
        }
    }
    head(
        w,
        "etcdsnap_cluster_backup_ok",
        "1 when the cluster meets its objective (enough fresh valid backups), else 0.",
    )?;
    for c in &r.clusters {
        writeln!(
            w,
            "etcdsnap_cluster_backup_ok{{cluster=\"{}\"}} {}",
            label(&c.cluster),
            u8::from(c.finding.is_none())
        )?;
    }
    head(w, "etcdsnap_cluster_fresh_valid_backups", "Valid backups of the cluster younger than --max-age.")?;
    for c in &r.clusters {
        writeln!(w, "etcdsnap_cluster_fresh_valid_backups{{cluster=\"{}\"}} {}", label(&c.cluster), c.fresh_valid)?;
    }
    head(w, "etcdsnap_cluster_newest_valid_backup_age_seconds", "Age of the cluster's newest valid backup.")?;
    for c in &r.clusters {
        if let Some(age) = c.newest_valid_age_seconds {
            writeln!(w, "etcdsnap_cluster_newest_valid_backup_age_seconds{{cluster=\"{}\"}} {age}", label(&c.cluster))?;
        }
    }
    let s = &r.summary;
    head(w, "etcdsnap_fleet_objects", "Backup objects checked, by state.")?;
    for (state, n) in
        [("valid", s.valid), ("problems", s.problems), ("changed", s.changed), ("unreadable", s.unreadable)]
    {
        writeln!(w, "etcdsnap_fleet_objects{{state=\"{state}\"}} {n}")?;
    }
    head(w, "etcdsnap_fleet_clusters_failing", "Clusters without enough fresh valid backups.")?;
    writeln!(w, "etcdsnap_fleet_clusters_failing {}", s.clusters_failing)?;
    head(w, "etcdsnap_fleet_report_timestamp_seconds", "The clock the run judged ages by (Unix seconds).")?;
    let ts = chrono::DateTime::parse_from_rfc3339(&s.objective.now).map(|t| t.timestamp()).unwrap_or_default();
    writeln!(w, "etcdsnap_fleet_report_timestamp_seconds {ts}")
}
