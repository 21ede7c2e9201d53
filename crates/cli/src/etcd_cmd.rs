//! Commands on etcd snapshot and db files: status, hashkv, verify, keys, get.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use etcdsnap_bolt::{display_bytes, Db, MappedFile};
use etcdsnap_mvcc::hashkv::{hash_kv, TombstoneRule};
use etcdsnap_mvcc::header::header;
use etcdsnap_mvcc::keyspace::{all_revisions, at_revision, Selection};
use etcdsnap_mvcc::kv::KvRef;
use etcdsnap_mvcc::status::status;
use etcdsnap_mvcc::trailer::{self, Trailer};
use etcdsnap_mvcc::verify::{verify, Severity, VerifyOptions};
use serde::Serialize;

use crate::output::{table, Bytes, Out, OwnedBytes};
use crate::Outcome;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Snapshot file (with SHA-256 trailer) or raw member/snap/db.
    file: PathBuf,
    /// Also verify the SHA-256 trailer (etcdutl's status does not; `verify` always does).
    #[arg(long)]
    verify_trailer: bool,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
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
    /// Snapshot file or raw member/snap/db.
    file: PathBuf,
    /// Revision to hash up to [default: the latest].
    #[arg(long, default_value_t = 0)]
    rev: i64,
    /// Tombstones stored at exactly the compact revision: `skip` (etcd 3.6, ≥3.5.16, ≥3.4.34) or `include` (older).
    #[arg(long, value_enum, default_value_t = RuleArg::Skip)]
    tombstone_rule: RuleArg,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Snapshot files or raw db files; each is verified.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// A file without a SHA-256 trailer is a problem.
    #[arg(long)]
    require_trailer: bool,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Snapshot file or raw member/snap/db.
    file: PathBuf,
    /// Only keys starting with this prefix.
    #[arg(long, default_value = "")]
    prefix: OsString,
    /// Revision to read at [default: the latest].
    #[arg(long, default_value_t = 0)]
    rev: i64,
    /// List every stored revision (puts, tombstones, markers) instead of the key space at a revision.
    #[arg(long, conflicts_with = "rev")]
    all_revisions: bool,
    /// At most this many lines (0: no limit).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Print keys as hex escapes (`\x2f\x72…`, as etcdctl --hex) instead of raw bytes.
    #[arg(long)]
    hex: bool,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Snapshot file or raw member/snap/db.
    file: PathBuf,
    /// The key (with --prefix: the prefix).
    key: OsString,
    /// Get every key starting with KEY, in key order.
    #[arg(long)]
    prefix: bool,
    /// At most this many keys (0: no limit); JSON `count` still counts them all, as etcd's.
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Print only keys (each followed by an empty line, as etcdctl --keys-only).
    #[arg(long, conflicts_with = "print_value_only")]
    keys_only: bool,
    /// Print only values.
    #[arg(long)]
    print_value_only: bool,
    /// Print keys and values as hex escapes (`\x2f\x72…`, as etcdctl --hex) instead of raw bytes.
    #[arg(long)]
    hex: bool,
    /// Revision to read at [default: the latest].
    #[arg(long, default_value_t = 0)]
    rev: i64,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Debug, Args)]
pub struct DuArgs {
    /// Snapshot file or raw member/snap/db.
    file: PathBuf,
    /// Group keys by their first N `/`-separated segments (`/tenant-1/registry/` is 2).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    depth: u16,
    /// Only the N largest prefixes (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

/// Command-line bytes as given (no UTF-8 required on Unix, like etcdctl's arguments).
fn arg_bytes(s: &OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        s.as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        s.to_string_lossy().as_bytes().to_vec()
    }
}

/// Bytes as etcdctl --hex prints them: every byte as `\xNN`.
fn hex_escaped(b: &[u8]) -> Vec<u8> {
    b.iter().flat_map(|c| format!("\\x{c:02x}").into_bytes()).collect()
}

/// Bytes as given, or hex-escaped with `hex`.
fn shown(b: &[u8], hex: bool) -> Cow<'_, [u8]> {
    if hex {
        Cow::Owned(hex_escaped(b))
    } else {
        Cow::Borrowed(b)
    }
}

fn map(path: &Path) -> Result<MappedFile> {
    crate::paths::map_file(path)
}

/// The bbolt image of a snapshot (trailer cut off) or db file.
fn open<'a>(path: &Path, file: &'a MappedFile) -> Result<Db<'a>> {
    crate::paths::open_snapshot(path, file)
}

/// The trailer as `status` reports it: verified only on request, as etcdutl never does.
enum TrailerState {
    Absent,
    /// Present, digest not checked.
    Present([u8; trailer::TRAILER_LEN]),
    Verified(Trailer),
}

impl TrailerState {
    fn name(&self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Present(_) => "present",
            Self::Verified(t) => t.name(),
        }
    }

    fn stored(&self) -> Option<[u8; trailer::TRAILER_LEN]> {
        match self {
            Self::Absent | Self::Verified(Trailer::Absent) => None,
            Self::Present(d)
            | Self::Verified(Trailer::Valid(d))
            | Self::Verified(Trailer::Mismatch { stored: d, .. }) => Some(*d),
        }
    }
}

/// snake_case like every JSON of ours and etcdctl's (etcdutl's `totalKey`/`totalSize` are `total_key`/`total_size`).
#[derive(Serialize)]
struct StatusJson {
    hash: u32,
    revision: i64,
    total_key: u64,
    total_size: u64,
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
    let file = map(&a.file)?;
    let db = open(&a.file, &file)?;
    // The bbolt check, the figures and (when asked) the trailer digest are
    // independent passes over the mapped file: run them side by side.
    let spin = crate::progress::Spinner::start(format!("reading {}", a.file.display()));
    let (t, check, s) = std::thread::scope(|scope| {
        let digest = a.verify_trailer.then(|| scope.spawn(|| trailer::verify(&file)));
        let check = scope.spawn(|| db.check());
        let s = status(&db);
        let t = match digest {
            Some(h) => h.join().map(TrailerState::Verified).unwrap_or(TrailerState::Absent),
            None => match trailer::split(&file).1 {
                Some(d) => TrailerState::Present(d),
                None => TrailerState::Absent,
            },
        };
        (t, check.join(), s)
    });
    drop(spin);
    let check = check.map_err(|_| anyhow::anyhow!("bbolt check thread panicked"))?;
    // Like etcdutl, figures of a structurally damaged file are refused.
    if !check.is_ok() {
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
    let s = s.with_context(|| format!("reading {}", a.file.display()))?;
    let j = StatusJson {
        hash: s.hash,
        revision: s.revision,
        total_key: s.total_key,
        total_size: s.total_size,
        total_key_v36: s.total_key_v36,
        trailer: t.name(),
        trailer_sha256: t.stored().map(|d| trailer::hex(&d)),
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
    let outcome =
        if matches!(t, TrailerState::Verified(Trailer::Mismatch { .. })) { Outcome::Problems } else { Outcome::Clean };
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
            format!("{} (etcd 3.4/3.5 count), {} (etcd 3.6 count)", j.total_key, j.total_key_v36),
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
    let file = map(&a.file)?;
    let db = open(&a.file, &file)?;
    let (rule, name) = match a.tombstone_rule {
        RuleArg::Skip => (TombstoneRule::Skip, "skip"),
        RuleArg::Include => (TombstoneRule::Include, "include"),
    };
    let spin = crate::progress::Spinner::start(format!("hashing {}", a.file.display()));
    let h = hash_kv(&db, a.rev, rule).with_context(|| format!("hashing {}", a.file.display()))?;
    drop(spin);
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
}

pub fn verify_cmd(a: &VerifyArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let mut outcome = Outcome::Clean;
    for path in &a.files {
        let j = match map(path) {
            Ok(file) => {
                let spin = crate::progress::Spinner::start(format!("verifying {}", path.display()));
                let r = verify(&file, VerifyOptions { require_trailer: a.require_trailer });
                drop(spin);
                VerifyJson {
                    file: path.display().to_string(),
                    ok: r.is_ok(),
                    problem_count: r.problem_count,
                    warning_count: r.findings.iter().filter(|f| f.severity == Severity::Warning).count() as u64,
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
                            severity: if f.severity == Severity::Problem { "problem" } else { "warning" },
                            bucket: OwnedBytes(f.bucket.clone()),
                            page: f.page,
                            key: f.key.clone().map(OwnedBytes),
                            revision: f.revision.map(|r| r.to_string()),
                            user_key: f.user_key.clone().map(OwnedBytes),
                            message: f.message.clone(),
                        })
                        .collect(),
                }
            }
            // An unreadable file is a finding of this file, not the end of the run.
            Err(e) => VerifyJson {
                file: path.display().to_string(),
                ok: false,
                problem_count: 1,
                warning_count: 0,
                trailer: "absent",
                revision: 0,
                revisions: 0,
                tombstones: 0,
                markers: 0,
                live_keys: 0,
                leases: 0,
                findings: vec![FindingJson {
                    severity: "problem",
                    bucket: OwnedBytes(Vec::new()),
                    page: None,
                    key: None,
                    revision: None,
                    user_key: None,
                    message: format!("{e:#}"),
                }],
            },
        };
        if !j.ok {
            outcome = Outcome::Problems;
        }
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
        } else {
            out.line(format!("{}: {} problems", j.file, j.problem_count))?;
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

#[derive(Serialize)]
struct KvJson<'a> {
    key: Bytes<'a>,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    value: Bytes<'a>,
    lease: i64,
}

impl<'a> From<&KvRef<'a>> for KvJson<'a> {
    fn from(kv: &KvRef<'a>) -> Self {
        Self {
            key: Bytes(kv.key),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            value: Bytes(kv.value),
            lease: kv.lease,
        }
    }
}

#[derive(Serialize)]
struct StoredJson<'a> {
    revision: i64,
    sub: i64,
    tombstone: bool,
    marker: bool,
    #[serde(flatten)]
    kv: KvJson<'a>,
}

pub fn keys_cmd(a: &KeysArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    if a.rev < 0 {
        bail!("--rev must not be negative");
    }
    let file = map(&a.file)?;
    let db = open(&a.file, &file)?;
    let sel = Selection { prefix: arg_bytes(&a.prefix), key: None };
    let limit = if a.limit == 0 { usize::MAX } else { a.limit };
    if a.all_revisions {
        let all = all_revisions(&db, &sel).with_context(|| format!("reading {}", a.file.display()))?;
        for s in all.iter().take(limit) {
            if a.fmt.structured() {
                out.json(&StoredJson {
                    revision: s.at.rev.main,
                    sub: s.at.rev.sub,
                    tombstone: s.at.tombstone,
                    marker: s.kv == KvRef::default(),
                    kv: KvJson::from(&s.kv),
                })?;
            } else {
                let mark = if s.at.tombstone { " (deleted)" } else { "" };
                let mut line = format!("{}{mark}  ", s.at.rev).into_bytes();
                line.extend_from_slice(&shown(s.kv.key, a.hex));
                out.bytes_line(&line)?;
            }
        }
        return Ok(Outcome::Clean);
    }
    let (_, keys) = at_revision(&db, a.rev, &sel).with_context(|| format!("reading {}", a.file.display()))?;
    for v in keys.iter().take(limit) {
        if a.fmt.structured() {
            out.json(&KvJson::from(&v.kv))?;
        } else {
            out.bytes_line(&shown(v.kv.key, a.hex))?;
        }
    }
    Ok(Outcome::Clean)
}

/// Bytes as etcdctl's JSON has them: base64.
struct B64<'a>(&'a [u8]);

impl Serialize for B64<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.0))
    }
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// `etcdserverpb.ResponseHeader` as etcdctl's `-w json` prints it (zero fields omitted, ids as numbers).
#[derive(Serialize)]
struct CtlHeader {
    #[serde(skip_serializing_if = "is_zero_u64")]
    cluster_id: u64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    member_id: u64,
    #[serde(skip_serializing_if = "is_zero_i64")]
    revision: i64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    raft_term: u64,
}

/// `mvccpb.KeyValue` as etcdctl's `-w json` prints it (see [`B64Kv`]).
struct CtlKv<'a> {
    key: &'a [u8],
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    value: &'a [u8],
    lease: i64,
}

impl Serialize for B64Kv<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let kv = &self.0;
        let mut m = s.serialize_map(None)?;
        if !kv.key.is_empty() {
            m.serialize_entry("key", &B64(kv.key))?;
        }
        for (name, n) in
            [("create_revision", kv.create_revision), ("mod_revision", kv.mod_revision), ("version", kv.version)]
        {
            if n != 0 {
                m.serialize_entry(name, &n)?;
            }
        }
        if !kv.value.is_empty() {
            m.serialize_entry("value", &B64(kv.value))?;
        }
        if kv.lease != 0 {
            m.serialize_entry("lease", &kv.lease)?;
        }
        m.end()
    }
}

/// A kv in etcdctl's JSON: base64 bytes, zero fields left out.
struct B64Kv<'a>(CtlKv<'a>);

/// `etcdserverpb.RangeResponse` as `etcdctl get -w json` prints it.
#[derive(Serialize)]
struct GetJson<'a> {
    header: CtlHeader,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    kvs: Vec<B64Kv<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    more: bool,
    #[serde(skip_serializing_if = "is_zero_u64")]
    count: u64,
}

pub fn get_cmd(a: &GetArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    if a.fmt.structured() && (a.print_value_only || a.hex) {
        bail!(
            "--print-value-only and --hex shape the simple output; -w json/table/fields print keys and values as JSON"
        );
    }
    if a.rev < 0 {
        bail!("--rev must not be negative");
    }
    let file = map(&a.file)?;
    let db = open(&a.file, &file)?;
    let key = arg_bytes(&a.key);
    let sel =
        if a.prefix { Selection { prefix: key, key: None } } else { Selection { prefix: Vec::new(), key: Some(key) } };
    let (_, keys) = at_revision(&db, a.rev, &sel).with_context(|| format!("reading {}", a.file.display()))?;
    let limit = if a.limit == 0 { usize::MAX } else { a.limit };
    let shown_keys = &keys[..keys.len().min(limit)];
    if a.fmt.structured() {
        let h = header(&db).with_context(|| format!("reading {}", a.file.display()))?;
        out.json(&GetJson {
            header: CtlHeader {
                cluster_id: h.cluster_id,
                member_id: h.member_id,
                revision: h.revision,
                raft_term: h.raft_term,
            },
            kvs: shown_keys
                .iter()
                .map(|v| {
                    B64Kv(CtlKv {
                        key: v.kv.key,
                        create_revision: v.kv.create_revision,
                        mod_revision: v.kv.mod_revision,
                        version: v.kv.version,
                        value: if a.keys_only { b"" } else { v.kv.value },
                        lease: v.kv.lease,
                    })
                })
                .collect(),
            more: shown_keys.len() < keys.len(),
            count: keys.len() as u64,
        })?;
        return Ok(Outcome::Clean);
    }
    // As etcdctl's simple output: key line, value line, raw bytes (a value may hold newlines).
    for v in shown_keys {
        if !a.print_value_only {
            out.bytes_line(&shown(v.kv.key, a.hex))?;
        }
        let value = if a.keys_only { &[][..] } else { v.kv.value };
        out.bytes_line(&shown(value, a.hex))?;
    }
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
struct UsageJson<'a> {
    prefix: Bytes<'a>,
    live_keys: u64,
    live_bytes: u64,
    revisions: u64,
    bytes: u64,
}

pub fn du_cmd(a: &DuArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let file = map(&a.file)?;
    let db = open(&a.file, &file)?;
    let spin = crate::progress::Spinner::start(format!("reading {}", a.file.display()));
    let all = etcdsnap_mvcc::usage::usage(&db, usize::from(a.depth))
        .with_context(|| format!("reading {}", a.file.display()))?;
    drop(spin);
    let limit = if a.limit == 0 { usize::MAX } else { a.limit };
    if a.fmt.structured() {
        for u in all.iter().take(limit) {
            out.json(&UsageJson {
                prefix: Bytes(&u.prefix),
                live_keys: u.live_keys,
                live_bytes: u.live_bytes,
                revisions: u.revisions,
                bytes: u.bytes,
            })?;
        }
        return Ok(Outcome::Clean);
    }
    let mut rows =
        vec![vec!["PREFIX".to_string(), "BYTES".into(), "REVISIONS".into(), "LIVE BYTES".into(), "LIVE KEYS".into()]];
    for u in all.iter().take(limit) {
        let name = if u.prefix.is_empty() { "(revision markers)".to_string() } else { display_bytes(&u.prefix) };
        rows.push(vec![
            name,
            u.bytes.to_string(),
            u.revisions.to_string(),
            u.live_bytes.to_string(),
            u.live_keys.to_string(),
        ]);
    }
    let (bytes, live): (u64, u64) = all.iter().fold((0, 0), |(b, l), u| (b + u.bytes, l + u.live_bytes));
    rows.push(vec!["total".into(), bytes.to_string(), String::new(), live.to_string(), String::new()]);
    for line in table(&rows) {
        out.line(line.trim_end())?;
    }
    Ok(Outcome::Clean)
}
