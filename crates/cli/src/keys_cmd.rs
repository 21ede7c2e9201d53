//! Commands on the key space of a snapshot or db file: keys, get, du. Keys and
//! values are bytes end to end: raw on stdout as etcdctl prints them, escaped
//! only with `--hex`.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use etcdsnap_bolt::Db;
use etcdsnap_io::MappedFile;
use etcdsnap_mvcc::header::header;
use etcdsnap_mvcc::keyspace::{at_revision, each_revision, KeySpace, Selection, Stored, Visible};
use etcdsnap_mvcc::kv::KvRef;
use serde::Serialize;

use crate::kube_view::{kube_json, kube_line, KubeJson};
use crate::output::{Bytes, Out};
use crate::Outcome;

fn map(path: &Path) -> Result<MappedFile> {
    crate::paths::map_file(path)
}

fn open<'a>(path: &Path, file: &'a MappedFile) -> Result<Db<'a>> {
    crate::paths::open_snapshot(path, file)
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Snapshot file or raw member/snap/db, or an object's URL (s3://, gs://, az://, https://).
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
    /// Decode Kubernetes values: kind, namespace/name, uid, creation time, labels, size, or the encryption provider.
    #[arg(long)]
    decode: bool,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
    #[command(flatten)]
    remote: crate::remote_args::RemoteArgs,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Snapshot file or raw member/snap/db, or an object's URL (s3://, gs://, az://, https://).
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
    /// Decode a Kubernetes value: kind, namespace/name, uid, creation time,
    /// labels, size, or the encryption provider (a line after the value; in
    /// JSON a `kube` member of each kv).
    #[arg(long)]
    decode: bool,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
    #[command(flatten)]
    remote: crate::remote_args::RemoteArgs,
}

/// The key space of `db` (mapped from `file`, at `path`) at `rev`, with a
/// progress meter, checked unchanged after reading.
fn read_at<'a>(path: &Path, file: &MappedFile, db: &Db<'a>, rev: i64, sel: &Selection) -> Result<KeySpace<'a>> {
    let counter = db.meter().cloned().unwrap_or_default();
    let spin = crate::progress::Meter::start(format!("reading {}", path.display()), file.len() as u64, &counter);
    let keys = at_revision(db, rev, sel).with_context(|| format!("reading {}", path.display()))?;
    drop(spin);
    crate::paths::unchanged(file)?;
    Ok(keys)
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

#[derive(Serialize)]
struct KvJson<'a> {
    key: Bytes<'a>,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    value: Bytes<'a>,
    lease: i64,
    /// With `--decode` only: the Kubernetes value (null when it is not one).
    #[serde(skip_serializing_if = "Option::is_none")]
    kube: Option<Option<KubeJson>>,
}

impl<'a> KvJson<'a> {
    fn new(kv: &KvRef<'a>, decode: bool) -> Self {
        Self {
            key: Bytes(kv.key),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            value: Bytes(kv.value),
            lease: kv.lease,
            kube: decode.then(|| kube_json(kv.value)),
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

/// One stored revision as `keys --all-revisions` prints it.
fn stored_line(a: &KeysArgs, out: &mut Out, s: &Stored<'_>) -> Result<()> {
    if a.fmt.structured() {
        out.json(&StoredJson {
            revision: s.at.rev.main,
            sub: s.at.rev.sub,
            tombstone: s.at.tombstone,
            marker: s.kv == KvRef::default(),
            kv: KvJson::new(&s.kv, a.decode),
        })
    } else {
        let mark = if s.at.tombstone { " (deleted)" } else { "" };
        let mut line = format!("{}{mark}  ", s.at.rev).into_bytes();
        line.extend_from_slice(&shown(s.kv.key, a.hex));
        if a.decode && !s.at.tombstone {
            line.extend_from_slice(format!("  {}", kube_line(s.kv.value)).as_bytes());
        }
        out.bytes_line(&line)
    }
}

pub fn keys_cmd(a: &KeysArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    if a.rev < 0 {
        bail!("--rev must not be negative");
    }
    // An object's URL is read once into a spool copy (removed on return); errors still name the URL.
    let local = crate::remote_args::localize(&a.file, &a.remote)?;
    let file = map(local.as_ref().map_or(a.file.as_path(), |l| l.path()))?;
    let counter = etcdsnap_io::Meter::new();
    let db = open(&a.file, &file)?.metered(&counter);
    let sel = Selection { prefix: arg_bytes(&a.prefix), key: None };
    let limit = if a.limit == 0 { usize::MAX } else { a.limit };
    if a.all_revisions {
        // Printed while walking: nothing is held per revision. The input is
        // checked unchanged at the end, as after reading a key space.
        let spin = crate::progress::Meter::start_streaming(
            format!("reading {}", a.file.display()),
            file.len() as u64,
            &counter,
        );
        let (mut shown_lines, mut failed) = (0usize, None);
        let walked = each_revision(&db, &sel, |s| {
            if shown_lines >= limit {
                return Ok(false);
            }
            shown_lines = shown_lines.saturating_add(1);
            match stored_line(a, out, &s) {
                Ok(()) => Ok(true),
                Err(e) => {
                    failed = Some(e);
                    Ok(false)
                }
            }
        });
        drop(spin);
        walked.with_context(|| format!("reading {}", a.file.display()))?;
        if let Some(e) = failed {
            return Err(e);
        }
        crate::paths::unchanged(&file)?;
        return Ok(Outcome::Clean);
    }
    let keys = read_at(&a.file, &file, &db, a.rev, &sel)?;
    for v in keys.iter().take(limit) {
        if a.fmt.structured() {
            out.json(&KvJson::new(&v.kv, a.decode))?;
        } else if a.decode {
            let mut line = shown(v.kv.key, a.hex).into_owned();
            line.extend_from_slice(format!("  {}", kube_line(v.kv.value)).as_bytes());
            out.bytes_line(&line)?;
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
    /// With `--decode` only (not etcdctl's): the Kubernetes value, null when it is not one.
    kube: Option<Option<KubeJson>>,
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
        if let Some(k) = &kv.kube {
            m.serialize_entry("kube", k)?;
        }
        m.end()
    }
}

/// A kv in etcdctl's JSON: base64 bytes, zero fields left out.
struct B64Kv<'a>(CtlKv<'a>);

/// The `kvs` of a [`GetJson`]: the first `shown` keys of a key space, each
/// serialized as it is decoded (no list of them is built).
struct CtlKvs<'k, 'a> {
    keys: &'k KeySpace<'a>,
    shown: usize,
    keys_only: bool,
    decode: bool,
}

impl CtlKvs<'_, '_> {
    fn is_empty(&self) -> bool {
        self.shown == 0
    }
}

impl Serialize for CtlKvs<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.keys.iter().take(self.shown).map(|v: Visible<'_>| {
            B64Kv(CtlKv {
                key: v.kv.key,
                create_revision: v.kv.create_revision,
                mod_revision: v.kv.mod_revision,
                version: v.kv.version,
                value: if self.keys_only { b"" } else { v.kv.value },
                lease: v.kv.lease,
                kube: self.decode.then(|| kube_json(v.kv.value)),
            })
        }))
    }
}

/// `etcdserverpb.RangeResponse` as `etcdctl get -w json` prints it.
#[derive(Serialize)]
struct GetJson<'k, 'a> {
    header: CtlHeader,
    #[serde(skip_serializing_if = "CtlKvs::is_empty")]
    kvs: CtlKvs<'k, 'a>,
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
    // An object's URL is read once into a spool copy (removed on return); errors still name the URL.
    let local = crate::remote_args::localize(&a.file, &a.remote)?;
    let file = map(local.as_ref().map_or(a.file.as_path(), |l| l.path()))?;
    let counter = etcdsnap_io::Meter::new();
    let db = open(&a.file, &file)?.metered(&counter);
    let key = arg_bytes(&a.key);
    let sel =
        if a.prefix { Selection { prefix: key, key: None } } else { Selection { prefix: Vec::new(), key: Some(key) } };
    let keys = read_at(&a.file, &file, &db, a.rev, &sel)?;
    let limit = if a.limit == 0 { usize::MAX } else { a.limit };
    let shown_keys = keys.len().min(limit);
    if a.fmt.structured() {
        let h = header(&db).with_context(|| format!("reading {}", a.file.display()))?;
        out.json(&GetJson {
            header: CtlHeader {
                cluster_id: h.cluster_id,
                member_id: h.member_id,
                revision: h.revision,
                raft_term: h.raft_term,
            },
            kvs: CtlKvs { keys: &keys, shown: shown_keys, keys_only: a.keys_only, decode: a.decode },
            more: shown_keys < keys.len(),
            count: keys.len() as u64,
        })?;
        return Ok(Outcome::Clean);
    }
    // As etcdctl's simple output: key line, value line, raw bytes (a value may hold newlines).
    for v in keys.iter().take(shown_keys) {
        if !a.print_value_only {
            out.bytes_line(&shown(v.kv.key, a.hex))?;
        }
        let value = if a.keys_only { &[][..] } else { v.kv.value };
        out.bytes_line(&shown(value, a.hex))?;
        if a.decode {
            out.line(kube_line(v.kv.value))?;
        }
    }
    Ok(Outcome::Clean)
}
