//! Commands on etcd snapshot and db files: status, hashkv, verify (the key space: `keys_cmd`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use etcdsnap_bolt::{display_bytes, Db};
use etcdsnap_io::MappedFile;
use etcdsnap_mvcc::hashkv::{hash_kv, TombstoneRule};
use etcdsnap_mvcc::schema::EtcdLine;
use etcdsnap_mvcc::status_report::{status_report, StatusError, StatusGate, StatusOptions};
use etcdsnap_mvcc::trailer::{self, Trailer, TrailerState};
use etcdsnap_mvcc::verify::{verify_file, VerifyOptions, VerifyReport};
use etcdsnap_mvcc::Verdict;
use serde::Serialize;

use crate::output::{table, Out, OwnedBytes};
use crate::Outcome;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Snapshot file (with SHA-256 trailer) or raw member/snap/db; or an
    /// object's URL (s3://, gs://, az://, https://), read once into a spool copy.
    file: PathBuf,
    /// Also verify the SHA-256 trailer (etcdutl's status does not; `verify` always does).
    #[arg(long)]
    verify_trailer: bool,
    /// Give the figures `etcdutl snapshot status` of this etcd line prints:
    /// 3.4/3.5 count every entry of every bucket as `totalKey`, 3.6/3.7 count
    /// live user keys and add `version` [default: the line that wrote the
    /// file, from `meta/storageVersion`, else `meta/term` (3.5) or neither (3.4)]
    #[arg(long, value_parser = parse_line)]
    as_etcd: Option<EtcdLine>,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
    #[command(flatten)]
    remote: crate::remote_args::RemoteArgs,
}

fn parse_line(s: &str) -> std::result::Result<EtcdLine, String> {
    EtcdLine::parse(s).ok_or_else(|| format!("{s:?} is not an etcd line etcdsnap knows (3.4, 3.5, 3.6, 3.7)"))
}

/// Which tombstones at the compact revision HashKV hashes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuleArg {
    /// Skip them, as etcd 3.6, ≥3.5.16 and ≥3.4.34 do.
    Skip,
    /// Hash them, as etcd ≤3.5.15 and ≤3.4.33 do.
    Include,
}

#[derive(Debug, Args)]
pub struct HashkvArgs {
    /// Snapshot file or raw member/snap/db, or an object's URL (s3://, gs://, az://, https://).
    file: PathBuf,
    /// Revision to hash up to [default: the latest].
    #[arg(long, default_value_t = 0)]
    rev: i64,
    /// Tombstones stored at exactly the compact revision: `skip` (etcd 3.6, ≥3.5.16, ≥3.4.34) or `include` (older).
    #[arg(long, value_enum, default_value_t = RuleArg::Skip)]
    tombstone_rule: RuleArg,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
    #[command(flatten)]
    remote: crate::remote_args::RemoteArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Snapshot files or raw db files; or object and prefix URLs (s3://bucket/prefix/,
    /// gs://, az://, https://), each object read once into a spool copy. Each is verified.
    #[arg(required_unless_present = "from_list")]
    files: Vec<PathBuf>,
    /// A file without a SHA-256 trailer is a problem.
    #[arg(long)]
    require_trailer: bool,
    /// The API server's EncryptionConfiguration: open every Kubernetes value
    /// (latest revision of each live key) with its resource's providers
    /// (aescbc, aesgcm, secretbox, KMS v2/v1 through the plugin sockets the
    /// config names, one Decrypt per distinct DEK) and count them per
    /// resource and key; a value that does not open, a plain value where the
    /// config encrypts, or one sealed under a key it does not list is a problem.
    #[arg(long, value_name = "FILE")]
    encryption_config: Option<PathBuf>,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
    #[command(flatten)]
    fleet: crate::fleet_cmd::FleetArgs,
}

pub(crate) fn map(path: &Path) -> Result<MappedFile> {
    crate::paths::map_file(path)
}

/// The bbolt image of a snapshot (trailer cut off) or db file.
pub(crate) fn open<'a>(path: &Path, file: &'a MappedFile) -> Result<Db<'a>> {
    crate::paths::open_snapshot(path, file)
}

/// snake_case like every JSON of ours and etcdctl's (etcdutl's `totalKey`/`totalSize` are `total_key`/`total_size`).
#[derive(Serialize)]
struct StatusJson {
    hash: u32,
    revision: i64,
    total_key: u64,
    total_size: u64,
    /// Only under the 3.6+ rule, as etcdutl 3.6+ prints it: `meta/storageVersion` or "".
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    as_etcd: &'static str,
    total_key_v35: u64,
    total_key_v36: u64,
    trailer: &'static str,
    trailer_sha256: Option<String>,
    page_size: usize,
    storage_version: String,
    consistent_index: Option<u64>,
    term: Option<u64>,
    scheduled_compact_revision: Option<i64>,
    finished_compact_revision: Option<i64>,
    live_keys: u64,
    revisions: u64,
    tombstones: u64,
    markers: u64,
    leases: u64,
    members: u64,
    auth_enabled: bool,
}

pub fn status_cmd(a: &StatusArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let counter = etcdsnap_io::Meter::new();
    let local = crate::remote_args::localize(&a.file, &a.remote)?;
    let file = map(local.as_ref().map_or(a.file.as_path(), |l| l.path()))?;
    let db = open(&a.file, &file)?.metered(&counter);
    // The library runs the check, the figures and the digest when asked side by side: their bytes count.
    let passes = if a.verify_trailer { 3 } else { 2 };
    let spin = crate::progress::Meter::start(
        format!("reading {}", a.file.display()),
        (file.len() as u64).saturating_mul(passes),
        &counter,
    );
    let opts = StatusOptions { verify_trailer: a.verify_trailer, as_etcd: a.as_etcd };
    let gate = status_report(&file, &db, &opts);
    drop(spin);
    let r = match gate {
        Ok(StatusGate::Report(r)) => r,
        // Like etcdutl, figures of a structurally damaged file are refused.
        Ok(StatusGate::Damaged(check)) => {
            for p in check.problems.iter().take(10) {
                eprintln!("{p}");
            }
            eprintln!(
                "etcdsnap: {}: snapshot file integrity check failed. {} errors found (see `etcdsnap verify`)",
                a.file.display(),
                check.problem_count
            );
            return Ok(Outcome::Problems);
        }
        Err(StatusError::Figures(e)) => {
            return Err(anyhow::Error::new(e).context(format!("reading {}", a.file.display())));
        }
        Err(StatusError::UnknownLine { storage_version }) => bail!(
            "{}: meta/storageVersion {:?} names no etcd version; choose one with --as-etcd",
            a.file.display(),
            storage_version
        ),
        Err(StatusError::Input(e)) => return Err(e.into()),
        Err(e) => return Err(e.into()),
    };
    let (s, e) = (&r.status, &r.etcdutl);
    let j = StatusJson {
        hash: e.hash,
        revision: e.revision,
        total_key: e.total_key,
        total_size: e.total_size,
        version: e.version.clone(),
        as_etcd: e.line.as_str(),
        total_key_v35: s.total_key,
        total_key_v36: s.total_key_v36,
        trailer: r.trailer.name(),
        trailer_sha256: r.trailer.stored().map(|d| trailer::hex(&d)),
        page_size: s.page_size,
        storage_version: s.storage_version().as_str().to_string(),
        consistent_index: s.meta.consistent_index,
        term: s.meta.term,
        scheduled_compact_revision: s.meta.scheduled_compact.map(|r| r.main),
        finished_compact_revision: s.meta.finished_compact.map(|r| r.main),
        live_keys: s.live_keys,
        revisions: s.revisions,
        tombstones: s.tombstones,
        markers: s.markers,
        leases: s.leases,
        members: s.members,
        auth_enabled: s.auth_enabled,
    };
    // A damaged trailer is a problem found, whatever the output format.
    let outcome = Outcome::from(r.verdict());
    if let TrailerState::Checked(Trailer::Mismatch { stored, computed }) = &r.trailer {
        eprintln!(
            "etcdsnap: {}: the SHA-256 trailer does not match: stored {}, computed {}",
            a.file.display(),
            trailer::hex(stored),
            trailer::hex(computed)
        );
    }
    if a.fmt.structured() {
        out.json(&j)?;
        return Ok(outcome);
    }
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
    let opti = |v: Option<i64>| v.map_or("-".to_string(), |n| n.to_string());
    let rows: Vec<Vec<String>> = vec![
        vec!["hash".into(), format!("{:x} ({})", j.hash, j.hash)],
        vec!["revision".into(), j.revision.to_string()],
        vec![
            "total keys".into(),
            format!(
                "{} (etcdutl {} count; 3.4/3.5 count {}, 3.6+ count {})",
                j.total_key, j.as_etcd, j.total_key_v35, j.total_key_v36
            ),
        ],
        vec!["total size".into(), j.total_size.to_string()],
        vec![
            "trailer".into(),
            format!("{}{}", j.trailer, j.trailer_sha256.as_ref().map(|d| format!(" sha256 {d}")).unwrap_or_default()),
        ],
        vec!["storage version".into(), j.storage_version.clone()],
        vec!["page size".into(), j.page_size.to_string()],
        vec!["consistent index".into(), opt(j.consistent_index)],
        vec!["term".into(), opt(j.term)],
        vec![
            "compacted".into(),
            format!("scheduled {}, finished {}", opti(j.scheduled_compact_revision), opti(j.finished_compact_revision)),
        ],
        vec!["live keys".into(), j.live_keys.to_string()],
        vec!["revisions".into(), format!("{} ({} tombstones, {} markers)", j.revisions, j.tombstones, j.markers)],
        vec!["leases".into(), j.leases.to_string()],
        vec!["members".into(), j.members.to_string()],
        vec!["auth".into(), if j.auth_enabled { "enabled" } else { "disabled" }.into()],
    ];
    for line in table(&rows) {
        out.line(line)?;
    }
    Ok(outcome)
}

#[derive(Serialize)]
struct HashkvJson {
    hash: u32,
    compact_revision: i64,
    hash_revision: i64,
    current_revision: i64,
    tombstone_rule: &'static str,
}

pub fn hashkv_cmd(a: &HashkvArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    if a.rev < 0 {
        bail!("--rev must not be negative");
    }
    let counter = etcdsnap_io::Meter::new();
    let local = crate::remote_args::localize(&a.file, &a.remote)?;
    let file = map(local.as_ref().map_or(a.file.as_path(), |l| l.path()))?;
    let db = open(&a.file, &file)?.metered(&counter);
    let (rule, name) = match a.tombstone_rule {
        RuleArg::Skip => (TombstoneRule::Skip, "skip"),
        RuleArg::Include => (TombstoneRule::Include, "include"),
    };
    // Two passes over the key bucket: the keep set, then the hash.
    let spin = crate::progress::Meter::start(
        format!("hashing {}", a.file.display()),
        (file.len() as u64).saturating_mul(2),
        &counter,
    );
    let h = hash_kv(&db, a.rev, rule).with_context(|| format!("hashing {}", a.file.display()))?;
    drop(spin);
    crate::paths::unchanged(&file)?;
    let j = HashkvJson {
        hash: h.hash,
        compact_revision: h.compact_revision,
        hash_revision: h.revision,
        current_revision: h.current_revision,
        tombstone_rule: name,
    };
    if a.fmt.structured() {
        out.json(&j)?;
    } else {
        for line in table(&[
            vec!["hash".into(), j.hash.to_string()],
            vec!["hash revision".into(), j.hash_revision.to_string()],
            vec!["compact revision".into(), j.compact_revision.to_string()],
            vec!["current revision".into(), j.current_revision.to_string()],
        ]) {
            out.line(line)?;
        }
    }
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
struct FindingJson {
    severity: &'static str,
    kind: &'static str,
    bucket: OwnedBytes,
    page: Option<u64>,
    key: Option<OwnedBytes>,
    revision: Option<String>,
    user_key: Option<OwnedBytes>,
    message: String,
}

#[derive(Serialize)]
struct VerifyJson {
    file: String,
    ok: bool,
    problem_count: u64,
    warning_count: u64,
    trailer: &'static str,
    revision: i64,
    revisions: u64,
    tombstones: u64,
    markers: u64,
    live_keys: u64,
    leases: u64,
    findings: Vec<FindingJson>,
    /// The census of `--encryption-config` (absent without it, or when the file has problems).
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption: Option<etcdsnap_k8s::census::CensusReport>,
}

fn verify_json(path: &Path, r: &VerifyReport) -> VerifyJson {
    VerifyJson {
        file: path.display().to_string(),
        ok: r.is_ok(),
        problem_count: r.problem_count,
        warning_count: r.warning_count(),
        trailer: r.trailer.name(),
        revision: r.stats.revision,
        revisions: r.stats.revisions,
        tombstones: r.stats.tombstones,
        markers: r.stats.markers,
        live_keys: r.stats.live_keys,
        leases: r.stats.leases,
        findings: r
            .findings
            .iter()
            .map(|f| FindingJson {
                severity: f.severity.name(),
                kind: f.kind.code(),
                bucket: OwnedBytes(f.bucket.clone()),
                page: f.page,
                key: f.key.clone().map(OwnedBytes),
                revision: f.revision.map(|r| r.to_string()),
                user_key: f.user_key.clone().map(OwnedBytes),
                message: f.message.clone(),
            })
            .collect(),
        encryption: None,
    }
}

pub fn verify_cmd(a: &VerifyArgs, out: &mut Out) -> Result<Outcome> {
    if a.fleet.requested() || a.files.iter().any(|f| crate::remote_args::is_url(f)) {
        let census = crate::census_view::opener(a.encryption_config.as_deref())?;
        return crate::fleet_cmd::verify(&a.files, a.require_trailer, a.fmt.structured(), &a.fleet, census, out);
    }
    out.set_format(a.fmt.format());
    let opener = crate::census_view::opener(a.encryption_config.as_deref())?;
    let mut outcome = Outcome::Clean;
    for path in &a.files {
        let mut census = None;
        let r = match map(path) {
            Ok(file) => {
                // Passes: the trailer digest (when there is one), the bbolt check, the MVCC checks.
                let len = file.len() as u64;
                let counter = etcdsnap_io::Meter::new();
                let spin = crate::progress::Meter::start(
                    format!("verifying {}", path.display()),
                    etcdsnap_mvcc::verify::planned_reads(len),
                    &counter,
                );
                let opts = VerifyOptions { require_trailer: a.require_trailer };
                let mut r = verify_file(&file, opts, Some(&counter));
                drop(spin);
                if let Err(e) = file.check_unchanged() {
                    r.input_changed(e.to_string());
                }
                if let (Some(o), true) = (&opener, r.is_ok()) {
                    census = Some(crate::census_view::run(path, &file, o)?);
                }
                r
            }
            // An unreadable file is a finding of this file, not the end of the run.
            Err(e) => VerifyReport::unreadable(format!("{e:#}")),
        };
        let census_ok = census.as_ref().is_none_or(etcdsnap_k8s::census::CensusReport::is_ok);
        if r.verdict() == Verdict::Problems || !census_ok {
            outcome = Outcome::Problems;
        }
        let mut j = verify_json(path, &r);
        j.ok = j.ok && census_ok;
        j.encryption = census;
        if a.fmt.structured() {
            out.json(&j)?;
            continue;
        }
        if j.ok {
            out.line(format!(
                "{}: OK (revision {}, {} revisions, {} live keys, {} leases, trailer {}{})",
                j.file,
                j.revision,
                j.revisions,
                j.live_keys,
                j.leases,
                j.trailer,
                if j.warning_count > 0 { format!(", {} warnings", j.warning_count) } else { String::new() }
            ))?;
        } else if j.problem_count > 0 {
            out.line(format!("{}: {} problems", j.file, j.problem_count))?;
        } else {
            out.line(format!("{}: encryption problems (revision {}, {} live keys)", j.file, j.revision, j.live_keys))?;
        }
        if let Some(c) = &j.encryption {
            crate::census_view::lines(c, out)?;
        }
        for f in &j.findings {
            let mut at = Vec::new();
            if !f.bucket.0.is_empty() {
                at.push(format!("bucket {}", display_bytes(&f.bucket.0)));
            }
            if let Some(p) = f.page {
                at.push(format!("page {p}"));
            }
            if let Some(r) = &f.revision {
                at.push(format!("revision {r}"));
            }
            if let Some(k) = &f.user_key {
                at.push(format!("key {}", display_bytes(&k.0)));
            } else if let Some(k) = &f.key {
                at.push(format!("key {}", display_bytes(&k.0)));
            }
            if at.is_empty() {
                out.line(format!("  {}: {}", f.severity, f.message))?;
            } else {
                out.line(format!("  {}: {}: {}", f.severity, at.join(", "), f.message))?;
            }
        }
    }
    Ok(outcome)
}
