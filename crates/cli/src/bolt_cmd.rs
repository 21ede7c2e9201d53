//! `etcdsnap bolt …`: the bbolt layer (info, check, pages, buckets, keys, dump).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use etcdsnap_bolt::{
    check, display_bytes, Bucket, CheckOptions, Corruption, Db, DbInfo, FreelistState, MetaSlot, PageList,
};
use etcdsnap_io::MappedFile;
use serde::Serialize;

use crate::output::{table, Bytes, Out, OwnedBytes};
use crate::Outcome;

mod page;
mod surgery;

#[derive(Debug, Subcommand)]
pub enum BoltCommand {
    /// Page size, both meta pages, high-water mark, freelist and file size.
    Info(FileArgs),
    /// Consistency check (everything bbolt's `tx.Check()` reports, and more); exit 1 on problems.
    Check(FileArgs),
    /// Every page below the high-water mark: id, type, items, overflow (like `bbolt pages`).
    Pages(FileArgs),
    /// The top-level buckets.
    Buckets(FileArgs),
    /// The keys of a bucket (nested buckets by path).
    Keys(KeysArgs),
    /// Canonical dump of every bucket, key and value (same text as tools/boltoracle dump).
    Dump(DumpArgs),
    /// Copy every bucket into a new, compact file (offline `bbolt compact` / etcd defrag).
    Compact(CompactArgs),
    /// One page as it lies in the file: header and elements (`bbolt page`); exit 1 if it does not decode.
    Page(page::PageArgs),
    /// One element of a page: its key and value, or key and child page (`bbolt page-item`).
    PageItem(page::PageItemArgs),
    /// Page-level repairs like `bbolt surgery`, always into a new file (revert-meta,
    /// clear-page-elements, freelist rebuild|abandon).
    #[command(subcommand)]
    Surgery(surgery::SurgeryCommand),
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Input: etcd snapshot, member/snap/db, or any bbolt file (never modified).
    input: PathBuf,
    /// Output file (written beside, then renamed; mode 0600; must not be the input).
    output: PathBuf,
    #[command(flatten)]
    output_file: crate::output_args::OutputArgs,
    /// Do not hash the input to check its SHA-256 trailer (etcdutl's flag): the input is read
    /// once, and a damaged trailer goes unnoticed. The output still gets a fresh trailer.
    #[arg(long)]
    skip_hash_check: bool,
    /// Replace an existing OUT, and remove temporary files interrupted runs left beside it.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// A bbolt file: etcd snapshot, member/snap/db, or any bbolt database.
    file: PathBuf,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// A bbolt file.
    file: PathBuf,
    /// Bucket path: the top-level bucket, then nested buckets.
    #[arg(required = true)]
    bucket: Vec<String>,
    /// Read the bucket names as hex.
    #[arg(long)]
    hex: bool,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// A bbolt file.
    file: PathBuf,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

pub fn run(cmd: BoltCommand) -> Result<Outcome> {
    let mut out = Out::new();
    let outcome = match cmd {
        BoltCommand::Info(a) => info(&a, &mut out),
        BoltCommand::Check(a) => check_cmd(&a, &mut out),
        BoltCommand::Pages(a) => pages(&a, &mut out),
        BoltCommand::Buckets(a) => buckets(&a, &mut out),
        BoltCommand::Keys(a) => keys(&a, &mut out),
        BoltCommand::Dump(a) => dump(&a, &mut out),
        BoltCommand::Compact(a) => compact(&a, &mut out),
        BoltCommand::Page(a) => page::page_cmd(&a, &mut out),
        BoltCommand::PageItem(a) => page::page_item_cmd(&a, &mut out),
        BoltCommand::Surgery(c) => surgery::run(c, &mut out),
    }?;
    out.flush()?;
    Ok(outcome)
}

fn map(path: &Path) -> Result<MappedFile> {
    crate::paths::map_file(path)
}

fn open<'a>(path: &Path, file: &'a MappedFile) -> Result<Db<'a>> {
    crate::paths::open_bolt(path, file)
}

#[derive(Serialize)]
struct MetaJson {
    page: u8,
    valid: bool,
    error: Option<String>,
    magic: Option<String>,
    version: Option<u32>,
    page_size: Option<u32>,
    flags: Option<u32>,
    root: Option<u64>,
    root_sequence: Option<u64>,
    freelist: Option<u64>,
    pgid: Option<u64>,
    txid: Option<u64>,
    checksum: Option<String>,
}

fn meta_json(page: u8, slot: &MetaSlot) -> MetaJson {
    let m = slot.meta.as_ref();
    MetaJson {
        page,
        valid: slot.validity.is_ok(),
        error: slot.validity.as_ref().err().map(ToString::to_string),
        magic: m.map(|m| format!("{:#010x}", m.magic)),
        version: m.map(|m| m.version),
        page_size: m.map(|m| m.page_size),
        flags: m.map(|m| m.flags),
        root: m.map(|m| m.root.root),
        root_sequence: m.map(|m| m.root.sequence),
        freelist: m.filter(|m| m.has_freelist()).map(|m| m.freelist),
        pgid: m.map(|m| m.pgid),
        txid: m.map(|m| m.txid),
        checksum: m.map(|m| format!("{:#018x}", m.checksum)),
    }
}

#[derive(Serialize)]
struct InfoJson {
    file: String,
    file_size: u64,
    page_size: usize,
    active_meta: usize,
    hwm: u64,
    used_bytes: u64,
    bytes_beyond_hwm: u64,
    freelist: &'static str,
    freelist_page: Option<u64>,
    freelist_ids: Option<usize>,
    metas: Vec<MetaJson>,
}

fn info(a: &FileArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let file = map(&a.file)?;
    let db = open(&a.file, &file)?;
    let meta = db.meta();
    let i = DbInfo::of(&db);
    let info = InfoJson {
        file: a.file.display().to_string(),
        file_size: i.file_size,
        page_size: i.page_size,
        active_meta: i.active_meta,
        hwm: i.hwm,
        used_bytes: i.used_bytes,
        bytes_beyond_hwm: i.bytes_beyond_hwm,
        freelist: i.freelist.name(),
        freelist_page: i.freelist.page(),
        freelist_ids: i.freelist.ids(),
        metas: db.metas().slots.iter().enumerate().map(|(i, s)| meta_json(u8::from(i == 1), s)).collect(),
    };
    if a.fmt.structured() {
        out.json(&info)?;
        return Ok(Outcome::Clean);
    }
    let mut rows = vec![
        vec!["file".into(), info.file.clone()],
        vec!["file size".into(), info.file_size.to_string()],
        vec!["page size".into(), info.page_size.to_string()],
        vec!["active meta".into(), format!("{} (txid {})", info.active_meta, meta.txid)],
        vec!["high-water mark".into(), format!("{} pages ({} bytes)", info.hwm, info.used_bytes)],
        vec!["bytes beyond HWM".into(), info.bytes_beyond_hwm.to_string()],
        vec![
            "freelist".into(),
            match i.freelist {
                FreelistState::Persisted { page, ids } => format!("page {page}, {ids} ids"),
                FreelistState::Unreadable { page } => format!("page {page}, unreadable"),
                FreelistState::NotPersisted => "not persisted (NoFreelistSync)".into(),
            },
        ],
        vec!["root bucket".into(), format!("page {}", meta.root.root)],
    ];
    for m in &info.metas {
        let state = match &m.error {
            None => format!("valid, txid {}, root {}", m.txid.unwrap_or(0), m.root.unwrap_or(0)),
            Some(e) => format!("INVALID: {e}"),
        };
        rows.push(vec![format!("meta {}", m.page), state]);
    }
    for line in table(&rows) {
        out.line(line)?;
    }
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
pub struct ProblemJson {
    pub kind: &'static str,
    pub page: Option<u64>,
    pub offset: Option<u64>,
    pub bucket: Vec<OwnedBytes>,
    pub key: Option<OwnedBytes>,
    pub message: String,
}

impl From<&Corruption> for ProblemJson {
    fn from(c: &Corruption) -> Self {
        Self {
            kind: c.kind.code(),
            page: c.page,
            offset: c.offset,
            bucket: c.bucket.iter().map(|b| OwnedBytes(b.clone())).collect(),
            key: c.key.as_ref().map(|k| OwnedBytes(k.clone())),
            message: c.to_string(),
        }
    }
}

#[derive(Serialize)]
struct CheckJson {
    file: String,
    ok: bool,
    problem_count: u64,
    problems: Vec<ProblemJson>,
    buckets: u64,
    inline_buckets: u64,
    keys: u64,
    branch_pages: u64,
    leaf_pages: u64,
    overflow_pages: u64,
    free_pages: u64,
    max_depth: u64,
}

fn check_cmd(a: &FileArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let counter = etcdsnap_io::Meter::new();
    let file = map(&a.file)?;
    let db = open(&a.file, &file)?.metered(&counter);
    let spin = crate::progress::Meter::start(format!("checking {}", a.file.display()), file.len() as u64, &counter);
    let report = check::check(&db, &CheckOptions::default());
    drop(spin);
    crate::paths::unchanged(&file)?;
    let outcome = if report.is_ok() { Outcome::Clean } else { Outcome::Problems };
    if a.fmt.structured() {
        let s = &report.stats;
        out.json(&CheckJson {
            file: a.file.display().to_string(),
            ok: report.is_ok(),
            problem_count: report.problem_count,
            problems: report.problems.iter().map(ProblemJson::from).collect(),
            buckets: s.buckets,
            inline_buckets: s.inline_buckets,
            keys: s.keys,
            branch_pages: s.branch_pages,
            leaf_pages: s.leaf_pages,
            overflow_pages: s.overflow_pages,
            free_pages: s.free_pages,
            max_depth: s.max_depth,
        })?;
        return Ok(outcome);
    }
    for p in &report.problems {
        out.line(p.to_string())?;
    }
    let hidden = report.problem_count.saturating_sub(report.problems.len() as u64);
    if hidden > 0 {
        out.line(format!("... and {hidden} more"))?;
    }
    if report.is_ok() {
        out.line("OK")?;
    } else {
        out.line(format!("{} errors found", report.problem_count))?;
    }
    Ok(outcome)
}

#[derive(Serialize)]
struct PageJson {
    id: u64,
    #[serde(rename = "type")]
    kind: String,
    items: Option<u64>,
    overflow: Option<u32>,
}

fn pages(a: &FileArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let file = map(&a.file)?;
    let db = open(&a.file, &file)?;
    let mut rows = vec![vec!["ID".into(), "TYPE".into(), "ITEMS".into(), "OVRFLW".into()]];
    for row in PageList::new(&db) {
        let row = PageJson { id: row.id, kind: row.kind.name(), items: row.items, overflow: row.overflow };
        if a.fmt.structured() {
            out.json(&row)?;
        } else {
            rows.push(vec![
                row.id.to_string(),
                row.kind,
                row.items.map(|n| n.to_string()).unwrap_or_default(),
                row.overflow.map(|n| n.to_string()).unwrap_or_default(),
            ]);
        }
    }
    if !a.fmt.structured() {
        for line in table(&rows) {
            out.line(line.trim_end())?;
        }
    }
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
struct BucketJson<'a> {
    name: Bytes<'a>,
    sequence: u64,
    inline: bool,
    root: u64,
}

fn buckets(a: &FileArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let file = map(&a.file)?;
    let db = open(&a.file, &file)?;
    let root = db.root()?;
    for entry in root.cursor() {
        let entry = entry?;
        if !entry.is_bucket() {
            continue;
        }
        let b = root.child(entry)?;
        if a.fmt.structured() {
            out.json(&BucketJson {
                name: Bytes(entry.key),
                sequence: b.sequence(),
                inline: b.is_inline(),
                root: b.header().root,
            })?;
        } else {
            out.line(display_bytes(entry.key))?;
        }
    }
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
struct KeyJson<'a> {
    key: Bytes<'a>,
    bucket: bool,
    value_size: usize,
}

fn decode_name(s: &str, hex: bool) -> Result<Vec<u8>> {
    if !hex {
        return Ok(s.as_bytes().to_vec());
    }
    if !s.len().is_multiple_of(2) {
        bail!("{s:?} is not hex: odd length");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i.saturating_add(2))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .with_context(|| format!("{s:?} is not hex"))
        })
        .collect()
}

fn keys(a: &KeysArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let file = map(&a.file)?;
    let db = open(&a.file, &file)?;
    let path = a.bucket.iter().map(|s| decode_name(s, a.hex)).collect::<Result<Vec<_>>>()?;
    let bucket: Bucket<'_> = match db.bucket(&path)? {
        Some(b) => b,
        None => bail!("bucket {} not found", path.iter().map(|p| display_bytes(p)).collect::<Vec<_>>().join("/")),
    };
    for entry in bucket.cursor() {
        let entry = entry?;
        if a.fmt.structured() {
            out.json(&KeyJson { key: Bytes(entry.key), bucket: entry.is_bucket(), value_size: entry.value.len() })?;
        } else {
            out.line(display_bytes(entry.key))?;
        }
    }
    Ok(Outcome::Clean)
}

fn dump(a: &DumpArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let file = map(&a.file)?;
    let db = open(&a.file, &file)?;
    if !a.fmt.structured() {
        etcdsnap_bolt::dump::dump(&db, out.writer())?;
        return Ok(Outcome::Clean);
    }
    let mut v = JsonDump { out, failed: None, buckets: 0, keys: 0 };
    let walked = etcdsnap_bolt::walk::walk(&db, &mut v);
    let (buckets, keys) = (v.buckets, v.keys);
    if let Some(e) = v.failed.take() {
        return Err(e);
    }
    walked?;
    out.json(&serde_json::json!({"type": "end", "buckets": buckets, "keys": keys}))?;
    Ok(Outcome::Clean)
}

/// `bolt dump -w json`: the canonical dump's records as JSON Lines.
struct JsonDump<'o> {
    out: &'o mut Out,
    /// An output error, which stops the walk.
    failed: Option<anyhow::Error>,
    buckets: u64,
    keys: u64,
}

impl JsonDump<'_> {
    fn emit(&mut self, v: serde_json::Value) -> etcdsnap_bolt::Result<()> {
        self.out.json(&v).map_err(|e| {
            self.failed = Some(e);
            etcdsnap_bolt::Error::io("<stdout>", std::io::Error::other("output failed"))
        })
    }
}

impl<'a> etcdsnap_bolt::walk::Visitor<'a> for JsonDump<'_> {
    fn enter_bucket(&mut self, path: &[Vec<u8>], header: etcdsnap_bolt::BucketHeader) -> etcdsnap_bolt::Result<()> {
        self.buckets = self.buckets.saturating_add(1);
        let path: Vec<Bytes<'_>> = path.iter().map(|p| Bytes(p)).collect();
        self.emit(serde_json::json!({"type": "bucket", "path": path, "sequence": header.sequence}))
    }

    fn value(&mut self, path: &[Vec<u8>], key: &'a [u8], value: &'a [u8]) -> etcdsnap_bolt::Result<()> {
        self.keys = self.keys.saturating_add(1);
        let path: Vec<Bytes<'_>> = path.iter().map(|p| Bytes(p)).collect();
        self.emit(serde_json::json!({"type": "key", "path": path, "key": Bytes(key), "value": Bytes(value)}))
    }
}

#[derive(Serialize)]
struct CompactJson {
    input: String,
    output: String,
    bytes_in: u64,
    bytes_out: u64,
    page_size: u32,
    buckets: u64,
    keys: u64,
    trailer_in: &'static str,
    trailer_out: Option<String>,
    stale_temp_files: Vec<crate::output::StaleJson>,
    elapsed_ms: u64,
}

fn compact(a: &CompactArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    use etcdsnap_mvcc::snapshot::CompactOptions;
    use etcdsnap_mvcc::trailer::hex;
    let l = a.output_file.checked()?;
    let opts = CompactOptions {
        page_size: l.page_size,
        fill_percent: l.fill_percent,
        trailer: l.trailer,
        skip_trailer_check: a.skip_hash_check,
        output: etcdsnap_io::CreateOptions { overwrite: a.force, remove_stale: a.force },
        cancel: crate::interrupt::cancel_on_signals()?,
        ..CompactOptions::default()
    };
    // The library says how much it reads before writing (Progress::reading).
    let mut bar = crate::progress::Bar::new(format!("reading {}", a.input.display()), &opts.meter);
    let r = etcdsnap_mvcc::snapshot::compact_with_progress(&a.input, &a.output, &opts, &mut bar)
        .with_context(|| format!("compacting {} into {}", a.input.display(), a.output.display()))
        .map_err(|e| crate::paths::explained(&a.input, e))?;
    drop(bar);
    let j = CompactJson {
        input: a.input.display().to_string(),
        output: a.output.display().to_string(),
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        page_size: r.page_size,
        buckets: r.buckets,
        keys: r.keys,
        trailer_in: r.trailer_in.name(),
        trailer_out: r.trailer_out.as_ref().map(hex),
        stale_temp_files: crate::output::stale_files(&r.stale_temps),
        elapsed_ms: u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
    };
    if a.fmt.structured() {
        out.json(&j)?;
    } else {
        let gain = if j.bytes_out > 0 { j.bytes_in as f64 / j.bytes_out as f64 } else { 0.0 };
        out.line(format!("{} -> {}: {} -> {} bytes (gain={gain:.2}x)", j.input, j.output, j.bytes_in, j.bytes_out))?;
        out.line(format!(
            "{} buckets, {} keys, page size {}, {:.2}s",
            j.buckets,
            j.keys,
            j.page_size,
            r.elapsed.as_secs_f64()
        ))?;
        match &j.trailer_out {
            Some(d) => out.line(format!("sha256 trailer {d}"))?,
            None => out.line("no trailer")?,
        }
    }
    Ok(Outcome::Clean)
}
