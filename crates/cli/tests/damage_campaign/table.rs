//! The campaign's tally: per damage class, cases salvaged / refused /
//! panicked, the share of revisions and of live keys recovered, and every
//! broken invariant with the case that broke it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::check::Verdict;
use super::damage::{class_names, Case};

#[derive(Debug, Default)]
struct Row {
    cases: u64,
    salvaged: u64,
    refused: u64,
    panicked: u64,
    revisions: (u64, u64),
    live_keys: (u64, u64),
    below: (u64, u64),
    /// Cases that lost at least one revision.
    lossy: u64,
    unknowable_tail: u64,
    compact_unknown: u64,
    extra_records: u64,
    missing_records: u64,
    payload_damaged: u64,
    resurrected: u64,
    leases_recreated: u64,
    slowest: Duration,
}

/// Per class, over every input.
#[derive(Debug, Default)]
pub struct Table {
    rows: BTreeMap<String, Row>,
    /// `input | class | what: problem` for panics and broken invariants.
    bugs: Vec<String>,
    /// Refusal reasons, by class.
    refusals: BTreeMap<String, BTreeMap<String, u64>>,
}

/// One line for a verdict (`DAMAGE_SHOW=1`).
pub fn summary(v: &Verdict) -> String {
    match v {
        Verdict::Salvaged(s) => format!(
            "salvaged: revisions {}/{}, live keys {}/{}, tail {}, violations {:?}",
            s.revisions.0, s.revisions.1, s.live_keys.0, s.live_keys.1, s.unknowable_tail, s.violations
        ),
        Verdict::Refused { kind, reason } => format!("refused ({kind}): {reason}"),
        Verdict::Panicked(p) => format!("PANIC: {p}"),
    }
}

fn pct((n, d): (u64, u64)) -> String {
    if d == 0 {
        "-".into()
    } else {
        format!("{:.1}", 100.0 * n as f64 / d as f64)
    }
}

fn add(a: &mut (u64, u64), b: (u64, u64)) {
    a.0 += b.0;
    a.1 += b.1;
}

impl Table {
    pub fn add(&mut self, input: &str, case: &Case, v: &Verdict, took: Duration) {
        let r = self.rows.entry(case.class.clone()).or_default();
        r.cases += 1;
        r.slowest = r.slowest.max(took);
        let at = format!("{input} | {} | {}", case.class, case.what);
        match v {
            Verdict::Salvaged(s) => {
                r.salvaged += 1;
                add(&mut r.revisions, s.revisions);
                add(&mut r.live_keys, s.live_keys);
                add(&mut r.below, s.below);
                r.lossy += u64::from(s.revisions.0 < s.revisions.1);
                r.unknowable_tail += s.unknowable_tail;
                r.compact_unknown += u64::from(s.compact_unknown);
                r.extra_records += s.extra_records;
                r.missing_records += s.missing_records;
                r.payload_damaged += s.payload_damaged;
                r.resurrected += s.resurrected;
                r.leases_recreated += s.leases_recreated;
                self.bugs.extend(s.violations.iter().map(|x| format!("{at}: {x}")));
            }
            Verdict::Refused { kind, reason } => {
                r.refused += 1;
                // A refusal must say why: an error kind and a message.
                if reason.trim().is_empty() {
                    self.bugs.push(format!("{at}: refused ({kind}) without a reason"));
                }
                let short: String = reason.chars().take(110).collect();
                *self.refusals.entry(case.class.clone()).or_default().entry(format!("{kind}: {short}")).or_default() +=
                    1;
            }
            Verdict::Panicked(p) => {
                r.panicked += 1;
                self.bugs.push(format!("{at}: panicked: {p}"));
            }
        }
    }

    pub fn print(&self) {
        println!(
            "{:<31} {:>5} {:>5} {:>4} {:>4} {:>7} {:>7} {:>6} {:>5} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>8}",
            "class",
            "cases",
            "salv",
            "ref",
            "pan",
            "revs%",
            "live%",
            "base%",
            "lossy",
            "tail",
            "c-unk",
            "resur",
            "paybd",
            "extra",
            "miss",
            "lrec",
            "slowest"
        );
        let mut total = Row::default();
        for name in class_names() {
            let Some(r) = self.rows.get(&name) else { continue };
            println!(
                "{:<31} {:>5} {:>5} {:>4} {:>4} {:>7} {:>7} {:>6} {:>5} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>8.2?}",
                name,
                r.cases,
                r.salvaged,
                r.refused,
                r.panicked,
                pct(r.revisions),
                pct(r.live_keys),
                pct(r.below),
                r.lossy,
                r.unknowable_tail,
                r.compact_unknown,
                r.resurrected,
                r.payload_damaged,
                r.extra_records,
                r.missing_records,
                r.leases_recreated,
                r.slowest
            );
            total.cases += r.cases;
            total.salvaged += r.salvaged;
            total.refused += r.refused;
            total.panicked += r.panicked;
            add(&mut total.revisions, r.revisions);
            add(&mut total.live_keys, r.live_keys);
            add(&mut total.below, r.below);
        }
        println!(
            "{:<31} {:>5} {:>5} {:>4} {:>4} {:>7} {:>7} {:>6}",
            "ALL",
            total.cases,
            total.salvaged,
            total.refused,
            total.panicked,
            pct(total.revisions),
            pct(total.live_keys),
            pct(total.below)
        );
        println!("(revs%/live%: share of the original's revisions after its compact revision / live keys recovered,");
        println!(" over salvaged cases; base%: share of the original's records at or below its compact revision —");
        println!(" each key's base for reads after it — recovered; lossy: cases that lost a revision; tail: revisions after the latest one");
        println!(" found, unknowable; c-unk: compact revision unknown; resur: compacted history output while the");
        println!(" compact revision is unknown; paybd: records whose own bytes the damage hit, output as damaged;");
        println!(" extra/miss: records of other buckets not in the original / lost; lrec: lease records written");
        println!(" anew for leases whose records were lost while kept keys reference them)");
        for (class, reasons) in &self.refusals {
            for (why, n) in reasons {
                println!("refused {class} x{n}: {why}");
            }
        }
        for b in &self.bugs {
            println!("BUG {b}");
        }
    }

    /// No panic, no broken invariant, every case salvaged or refused with a reason.
    pub fn assert_sound(&self) {
        assert!(self.bugs.is_empty(), "{} broken invariants or panics:\n{}", self.bugs.len(), self.bugs.join("\n"));
        assert!(!self.rows.is_empty(), "no case ran");
    }
}
