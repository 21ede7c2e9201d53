//! `bolt page FILE ID` and `bolt page-item FILE ID N`: one page as it lies
//! in the file (`etcdsnap_bolt::inspect`), reached by the tree or not.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use etcdsnap_bolt::inspect::{page, Item, PageView};
use etcdsnap_bolt::{display_bytes, PageType};
use serde::Serialize;

use crate::output::{Bytes, Out};
use crate::Outcome;

#[derive(Debug, Args)]
pub struct PageArgs {
    /// A bbolt file: etcd snapshot, member/snap/db, or any bbolt database (read only).
    file: PathBuf,
    /// The page id.
    id: u64,
    /// Also print the page's bytes as hex (16 per line, with offsets in the file).
    #[arg(long)]
    hex: bool,
    /// Page size, when neither meta page of a damaged file gives it.
    #[arg(long)]
    page_size: Option<usize>,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Debug, Args)]
pub struct PageItemArgs {
    /// A bbolt file: etcd snapshot, member/snap/db, or any bbolt database (read only).
    file: PathBuf,
    /// The page id.
    id: u64,
    /// The element's index in the page (from 0).
    index: usize,
    /// Page size, when neither meta page of a damaged file gives it.
    #[arg(long)]
    page_size: Option<usize>,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Serialize)]
struct ItemJson<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<u32>,
    key: Bytes<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Bytes<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pgid: Option<u64>,
}

#[derive(Serialize)]
struct PageJson<'a> {
    file: String,
    id: u64,
    offset: u64,
    header_id: u64,
    kind: String,
    flags: u16,
    count: u16,
    overflow: u32,
    items: Vec<ItemJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    freelist: Vec<u64>,
    problem: Option<String>,
}

/// The page size of `data`: the flag's, else the meta pages'.
fn page_size(data: &[u8], flag: Option<usize>) -> Result<usize> {
    if let Some(p) = flag.filter(|&p| p > 0) {
        return Ok(p);
    }
    match etcdsnap_bolt::Metas::read(data) {
        Ok(m) => Ok(m.active().page_size as usize),
        Err(e) => bail!("{e}; give the page size with --page-size"),
    }
}

fn view<'a>(data: &'a [u8], file: &Path, ps: usize, id: u64) -> Result<PageView<'a>> {
    match page(data, ps, id) {
        Some(v) => Ok(v),
        None => bail!(
            "{}: no page {id} (the file holds {} pages of {ps} bytes)",
            file.display(),
            data.len().checked_div(ps).unwrap_or(0)
        ),
    }
}

fn item_json<'a>(index: usize, it: &Item<'a>) -> ItemJson<'a> {
    match *it {
        Item::Branch { key, pgid } => ItemJson { index, flags: None, key: Bytes(key), value: None, pgid: Some(pgid) },
        Item::Leaf { flags, key, value } => {
            ItemJson { index, flags: Some(flags), key: Bytes(key), value: Some(Bytes(value)), pgid: None }
        }
    }
}

fn kind_name(t: PageType) -> String {
    match t {
        PageType::Branch => "branch".into(),
        PageType::Leaf => "leaf".into(),
        PageType::Meta => "meta".into(),
        PageType::Freelist => "freelist".into(),
        PageType::Unknown(f) => format!("unknown({f:#06x})"),
    }
}

pub fn page_cmd(a: &PageArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let file = crate::paths::map_file(&a.file)?;
    let ps = page_size(&file, a.page_size)?;
    let v = view(&file, &a.file, ps, a.id)?;
    let h = v.header;
    if a.fmt.structured() {
        out.json(&PageJson {
            file: a.file.display().to_string(),
            id: v.id,
            offset: v.offset,
            header_id: h.id,
            kind: kind_name(h.page_type()),
            flags: h.flags,
            count: h.count,
            overflow: h.overflow,
            items: v.items.iter().enumerate().map(|(i, it)| item_json(i, it)).collect(),
            freelist: v.freelist.clone(),
            problem: v.problem.clone(),
        })?;
    } else {
        out.line(format!(
            "page {} at offset {}: {} (flags {:#06x}), {} elements, {} overflow pages",
            v.id,
            v.offset,
            kind_name(h.page_type()),
            h.flags,
            h.count,
            h.overflow
        ))?;
        if let Some(m) = &v.meta {
            out.line(format!(
                "meta: version {}, page size {}, root {}, freelist {}, hwm {}, txid {}, checksum {:#018x}",
                m.version, m.page_size, m.root.root, m.freelist, m.pgid, m.txid, m.checksum
            ))?;
        }
        for (i, it) in v.items.iter().enumerate() {
            out.line(match *it {
                Item::Branch { key, pgid } => format!("{i:>5}  {}  -> page {pgid}", display_bytes(key)),
                Item::Leaf { flags, key, value } => {
                    let what = if flags & 1 != 0 { "bucket" } else { "value" };
                    format!("{i:>5}  {}  {what} of {} bytes", display_bytes(key), value.len())
                }
            })?;
        }
        if !v.freelist.is_empty() {
            out.line(format!("free pages: {:?}", v.freelist))?;
        }
        if let Some(p) = &v.problem {
            out.line(format!("problem: {p}"))?;
        }
        if a.hex {
            for (offset, row) in (v.offset..).step_by(16).zip(v.bytes.chunks(16)) {
                let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
                out.line(format!("{offset:010x}  {}", hex.join(" ")))?;
            }
        }
    }
    Ok(if v.problem.is_some() { Outcome::Problems } else { Outcome::Clean })
}

pub fn page_item_cmd(a: &PageItemArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.fmt.format());
    let file = crate::paths::map_file(&a.file)?;
    let ps = page_size(&file, a.page_size)?;
    let v = view(&file, &a.file, ps, a.id)?;
    let Some(it) = v.items.get(a.index) else {
        let why = v.problem.as_deref().map_or(String::new(), |p| format!(" ({p})"));
        bail!(
            "{}: page {} has {} readable elements, no element {}{why}",
            a.file.display(),
            a.id,
            v.items.len(),
            a.index
        );
    };
    if a.fmt.structured() {
        out.json(&item_json(a.index, it))?;
    } else {
        match *it {
            Item::Branch { key, pgid } => {
                out.line(format!("key: {}", display_bytes(key)))?;
                out.line(format!("page: {pgid}"))?;
            }
            Item::Leaf { flags, key, value } => {
                out.line(format!("key: {}", display_bytes(key)))?;
                out.line(format!("flags: {flags}"))?;
                out.line(format!("value: {}", display_bytes(value)))?;
            }
        }
    }
    Ok(Outcome::Clean)
}
