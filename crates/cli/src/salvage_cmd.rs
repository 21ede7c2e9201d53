//! `etcdsnap salvage`: a damaged db or snapshot into a restorable snapshot, with the loss report.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use etcdsnap_mvcc::salvage::{salvage, RevRange, SalvageOptions, SalvageReport};
use serde::Serialize;

use crate::output::{table, Bytes, Out};
use crate::Outcome;

#[derive(Debug, Args)]
pub struct SalvageArgs {
    /// Damaged snapshot, raw member/snap/db, or data dir (its member/snap/db); never modified.
    input: PathBuf,
    /// Output snapshot (with a SHA-256 trailer), for `etcdsnap restore` or any etcd's `snapshot restore`.
    output: PathBuf,
    /// Raise the revision by N and mark it compacted, so clients re-list instead of trusting a history
    /// with holes.
    #[arg(long, value_name = "N", default_value_t = 1_000_000_000, conflicts_with = "no_bump")]
    bump_revision: i64,
    /// Keep the revisions as found (no bump, no compaction mark).
    #[arg(long)]
    no_bump: bool,
    /// TTL in seconds of the lease records written for leases that kept keys reference but whose
    /// records were lost (from a leader's election on: a live holder keeps it alive, a gone one's keys
    /// expire).
    #[arg(long, value_name = "SECONDS", default_value_t = etcdsnap_mvcc::salvage::LOST_LEASE_TTL)]
    lost_lease_ttl: i64,
    /// Replace an existing OUTPUT.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Serialize)]
struct PageJson<'a> {
    id: u64,
    bucket: Bytes<'a>,
    why: &'a str,
}

#[derive(Serialize)]
struct BucketJson<'a> {
    name: &'a str,
    records: u64,
    from: &'a str,
}

#[derive(Serialize)]
struct SalvageJson<'a> {
    input: String,
    output: String,
    page_size: usize,
    pages: u64,
    metas_valid: [bool; 2],
    reachable_leaf_pages: u64,
    scanned_key_pages: u64,
    unreadable_pages: Vec<PageJson<'a>>,
    revisions_recovered: u64,
    revisions_from_scan: u64,
    compacted_copies_ignored: u64,
    compact_revision: i64,
    latest_revision: i64,
    recovered: &'a [RevRange],
    lost: &'a [RevRange],
    lost_revisions: i64,
    live_keys: u64,
    keys_with_history_gaps: Vec<Bytes<'a>>,
    history_trimmed: u64,
    compact_revision_known: bool,
    leases_missing: &'a [i64],
    lost_lease_ttl: i64,
    buckets: Vec<BucketJson<'a>>,
    input_trailer: &'static str,
    new_revision: i64,
    scheduled_compact_revision: Option<i64>,
    hashkv: u32,
    trailer_sha256: String,
    bytes: u64,
    consistent_index: Option<u64>,
    /// A data dir's WAL beside the db (`null` for a file).
    wal: Option<WalJson>,
}

/// What a data dir's WAL holds beyond the db: writes etcd would replay at
/// start, reported, not applied.
#[derive(Serialize)]
struct WalJson {
    dir: String,
    /// The WAL's last entry index, as far as it reads.
    last_index: Option<u64>,
    /// Entries above the db's `consistent_index` (null when either is unknown).
    entries_after_db: Option<u64>,
    /// Problems `wal verify` finds, or why the WAL could not be read.
    problems: Vec<String>,
}

/// The WAL of the data dir `dir`, read as `wal verify` reads it, beside the
/// salvaged db's `consistent_index`.
fn wal_beside(dir: &std::path::Path, ci: Option<u64>) -> WalJson {
    let paths = etcdsnap_wal::paths::WalPaths::resolve(dir);
    let shown = paths.wal_dir.display().to_string();
    match etcdsnap_wal::verify::verify(&paths.wal_dir, paths.snap_dir.as_deref()) {
        Ok(r) => WalJson {
            dir: shown,
            last_index: r.last_index,
            entries_after_db: r.last_index.zip(ci).map(|(last, ci)| last.saturating_sub(ci)),
            problems: r.problems().iter().map(ToString::to_string).collect(),
        },
        Err(e) => WalJson { dir: shown, last_index: None, entries_after_db: None, problems: vec![e.to_string()] },
    }
}

fn count(r: &[RevRange]) -> i64 {
    r.iter().map(|(a, b)| b.saturating_sub(*a).saturating_add(1)).sum()
}

fn show(r: &[RevRange]) -> String {
    if r.is_empty() {
        return "none".into();
    }
    let mut parts: Vec<String> =
        r.iter().take(20).map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
    if r.len() > 20 {
        parts.push(format!("… ({} ranges)", r.len()));
    }
    parts.join(", ")
}

pub fn run(a: &SalvageArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let input = if a.input.is_dir() { a.input.join("member/snap/db") } else { a.input.clone() };
    let opts = SalvageOptions {
        bump_revision: (!a.no_bump).then_some(a.bump_revision),
        output: etcdsnap_io::CreateOptions { overwrite: a.force, remove_stale: a.force },
        cancel: crate::interrupt::cancel_on_signals()?,
        lost_lease_ttl: a.lost_lease_ttl,
    };
    let r = salvage(&input, &a.output, &opts)
        .with_context(|| format!("salvaging {} into {}", input.display(), a.output.display()))?;
    let mut j = json(a, &input, &r);
    if a.input.is_dir() {
        j.wal = Some(wal_beside(&a.input, r.consistent_index));
    }
    if a.fmt.structured() {
        out.json(&j)?;
    } else {
        for l in lines(&j, &r) {
            out.line(l)?;
        }
    }
    // Something lost is a finding, as a failed check is: exit 1.
    let lossless = r.lost.is_empty() && r.unreadable.is_empty() && r.keys_with_history_gaps.is_empty();
    Ok(if lossless { Outcome::Clean } else { Outcome::Problems })
}

fn json<'r>(a: &SalvageArgs, input: &std::path::Path, r: &'r SalvageReport) -> SalvageJson<'r> {
    SalvageJson {
        input: input.display().to_string(),
        output: a.output.display().to_string(),
        page_size: r.page_size,
        pages: r.pages,
        metas_valid: r.metas_valid,
        reachable_leaf_pages: r.reachable_leaf_pages,
        scanned_key_pages: r.scanned_key_pages,
        unreadable_pages: r
            .unreadable
            .iter()
            .map(|p| PageJson { id: p.id, bucket: Bytes(&p.bucket), why: &p.why })
            .collect(),
        revisions_recovered: r.revisions_recovered,
        revisions_from_scan: r.revisions_from_scan,
        compacted_copies_ignored: r.compacted_copies_ignored,
        compact_revision: r.compact_revision,
        latest_revision: r.latest_revision,
        recovered: &r.recovered,
        lost: &r.lost,
        lost_revisions: count(&r.lost),
        live_keys: r.live_keys,
        keys_with_history_gaps: r.keys_with_history_gaps.iter().map(|k| Bytes(k)).collect(),
        history_trimmed: r.history_trimmed,
        compact_revision_known: r.compact_revision_known,
        leases_missing: &r.leases_missing,
        lost_lease_ttl: r.lost_lease_ttl,
        buckets: r.buckets.iter().map(|b| BucketJson { name: &b.name, records: b.records, from: b.from }).collect(),
        input_trailer: r.input_trailer.name(),
        new_revision: r.output.new_revision,
        scheduled_compact_revision: r.output.scheduled_compact,
        hashkv: r.output.hashkv.hash,
        trailer_sha256: etcdsnap_mvcc::trailer::hex(&r.output.trailer),
        bytes: r.output.bytes,
        consistent_index: r.consistent_index,
        wal: None,
    }
}

fn lines(j: &SalvageJson<'_>, r: &SalvageReport) -> Vec<String> {
    let valid = |v: bool| if v { "valid" } else { "invalid" };
    let mut rows = vec![
        vec![
            "input".into(),
            format!(
                "{} pages of {} bytes; meta 0 {}, meta 1 {}; trailer {}",
                j.pages,
                j.page_size,
                valid(j.metas_valid[0]),
                valid(j.metas_valid[1]),
                j.input_trailer
            ),
        ],
        vec![
            "pages".into(),
            format!(
                "{} leaf pages read through the tree, {} unreadable; {} key pages found outside it",
                j.reachable_leaf_pages,
                j.unreadable_pages.len(),
                j.scanned_key_pages
            ),
        ],
        vec![
            "revisions".into(),
            format!(
                "{} recovered ({} from outside the tree); {} compacted copies left out",
                j.revisions_recovered, j.revisions_from_scan, j.compacted_copies_ignored
            ),
        ],
        vec![
            "knowable".into(),
            if j.compact_revision_known {
                format!(
                    "revisions {}..={} (at or below the compact revision {} only each key's latest is kept)",
                    j.compact_revision.saturating_add(1).max(2),
                    j.latest_revision,
                    j.compact_revision
                )
            } else {
                format!(
                    "revisions 1..={} (the meta bucket is lost: the compact revision is unknown)",
                    j.latest_revision
                )
            },
        ],
        vec!["recovered".into(), show(j.recovered)],
        vec![
            "lost".into(),
            format!("{} ({} revisions; their keys are not recorded elsewhere)", show(j.lost), j.lost_revisions),
        ],
        vec!["live keys".into(), j.live_keys.to_string()],
        vec![
            "history gaps".into(),
            if r.keys_with_history_gaps.is_empty() {
                "none".into()
            } else {
                let shown: Vec<String> =
                    r.keys_with_history_gaps.iter().take(10).map(|k| etcdsnap_bolt::display_bytes(k)).collect();
                format!(
                    "{} keys, {} older revisions left out: {}",
                    r.keys_with_history_gaps.len(),
                    j.history_trimmed,
                    shown.join(", ")
                )
            },
        ],
        vec![
            "leases missing".into(),
            if j.leases_missing.is_empty() {
                "none".into()
            } else {
                format!(
                    "{} (records written anew, TTL {} s)",
                    j.leases_missing.iter().map(|l| format!("{l:x}")).collect::<Vec<_>>().join(", "),
                    j.lost_lease_ttl
                )
            },
        ],
    ];
    for b in &j.buckets {
        rows.push(vec![format!("bucket {}", b.name), format!("{} records ({})", b.records, b.from)]);
    }
    if let Some(w) = &j.wal {
        let after = match (w.entries_after_db, j.consistent_index, w.last_index) {
            (Some(0), ..) => "no entries after the db's consistent_index".to_string(),
            (Some(n), Some(ci), Some(last)) => format!(
                "{n} entries after the db's consistent_index ({}..={last}): writes a restart would have \
                 replayed, not in the output (not applied)",
                ci.saturating_add(1)
            ),
            _ => "entries after the db unknown (consistent_index or the WAL's last index unknown)".to_string(),
        };
        rows.push(vec!["wal".into(), format!("{}: {after}", w.dir)]);
        for p in &w.problems {
            rows.push(vec!["wal problem".into(), p.clone()]);
        }
    }
    for p in &r.unreadable {
        rows.push(vec![
            format!("unreadable {}", p.id),
            format!("{} ({})", p.why, etcdsnap_bolt::display_bytes(&p.bucket)),
        ]);
    }
    rows.push(vec![
        "output".into(),
        format!(
            "revision {}{}; {} bytes; trailer sha256 {}",
            j.new_revision,
            j.scheduled_compact_revision.map(|c| format!(", marked compacted at {c}")).unwrap_or_default(),
            j.bytes,
            j.trailer_sha256
        ),
    ]);
    table(&rows)
}
