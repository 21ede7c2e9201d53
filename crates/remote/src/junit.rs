//! The JUnit XML report: one testsuite per cluster, one testcase per backup
//! (a failure for problems, an error when it could not be judged: changed
//! or unreadable), and one `objective` testcase per cluster that fails when
//! the cluster has no fresh valid backup — so a CI system shows a missing or
//! stale cluster as a failed test even when every file present is valid.

use std::collections::BTreeMap;
use std::io::Write;

use crate::record::{BackupRecord, BackupState, ClusterRecord, FleetReport};

/// The testsuite of backups without a cluster (no `--group-by`).
pub const UNGROUPED: &str = "(ungrouped)";

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // XML 1.0 cannot carry other control characters at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

#[derive(Default)]
struct Suite<'a> {
    backups: Vec<&'a BackupRecord>,
    cluster: Option<&'a ClusterRecord>,
}

impl Suite<'_> {
    fn counts(&self) -> (usize, usize, usize) {
        let failures = self.backups.iter().filter(|b| b.state == BackupState::Problems).count();
        let errors =
            self.backups.iter().filter(|b| matches!(b.state, BackupState::Changed | BackupState::Unreadable)).count();
        let objective_failed = usize::from(self.cluster.is_some_and(|c| c.finding.is_some()));
        let tests = self.backups.len().saturating_add(usize::from(self.cluster.is_some()));
        (tests, failures.saturating_add(objective_failed), errors)
    }
}

/// Writes `r` as JUnit XML.
pub fn write(w: &mut dyn Write, r: &FleetReport) -> std::io::Result<()> {
    let mut suites: BTreeMap<&str, Suite<'_>> = BTreeMap::new();
    for b in &r.backups {
        suites.entry(b.cluster.as_deref().unwrap_or(UNGROUPED)).or_default().backups.push(b);
    }
    for c in &r.clusters {
        suites.entry(c.cluster.as_str()).or_default().cluster = Some(c);
    }
    let (mut tests, mut failures, mut errors) = (0usize, 0usize, 0usize);
    for s in suites.values() {
        let (t, f, e) = s.counts();
        tests = tests.saturating_add(t);
        failures = failures.saturating_add(f);
        errors = errors.saturating_add(e);
    }
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        w,
        r#"<testsuites name="etcdsnap verify" tests="{tests}" failures="{failures}" errors="{errors}" timestamp="{}">"#,
        esc(&r.summary.objective.now)
    )?;
    for (name, s) in &suites {
        let (t, f, e) = s.counts();
        writeln!(w, r#"  <testsuite name="{}" tests="{t}" failures="{f}" errors="{e}">"#, esc(name))?;
        for b in &s.backups {
            write!(w, r#"    <testcase classname="{}" name="{}""#, esc(name), esc(&b.url))?;
            let detail = || {
                let mut d = format!(
                    "size {} bytes, age {}s, revision {}, trailer {}",
                    b.size,
                    b.age_seconds,
                    b.revision.map_or("-".to_string(), |r| r.to_string()),
                    b.trailer
                );
                for p in &b.problems {
                    d.push_str(&format!("\n{}: {}", p.kind, p.message));
                }
                d
            };
            let first = b.problems.first().map(|p| p.message.as_str()).unwrap_or_default();
            match b.state {
                BackupState::Valid => writeln!(w, "/>")?,
                BackupState::Problems => writeln!(
                    w,
                    ">\n      <failure type=\"problems\" message=\"{} problems: {}\">{}</failure>\n    </testcase>",
                    b.problem_count,
                    esc(first),
                    esc(&detail())
                )?,
                BackupState::Changed | BackupState::Unreadable => writeln!(
                    w,
                    ">\n      <error type=\"{}\" message=\"{}\">{}</error>\n    </testcase>",
                    b.state.name(),
                    esc(first),
                    esc(&detail())
                )?,
            }
        }
        if let Some(c) = s.cluster {
            write!(w, r#"    <testcase classname="{}" name="objective: a fresh valid backup""#, esc(name))?;
            match (c.finding, &c.message) {
                (Some(f), m) => writeln!(
                    w,
                    ">\n      <failure type=\"{}\" message=\"{}\"/>\n    </testcase>",
                    f.name(),
                    esc(m.as_deref().unwrap_or_default())
                )?,
                (None, _) => writeln!(w, "/>")?,
            }
        }
        writeln!(w, "  </testsuite>")?;
    }
    writeln!(w, "</testsuites>")
}
