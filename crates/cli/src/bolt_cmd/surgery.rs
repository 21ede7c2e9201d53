//! `bolt surgery …`: `bbolt surgery` equivalents (`etcdsnap_bolt::surgery`)
//! that always write a new file. The input is read, never changed; the output
//! is written beside its target and renamed (refused when it exists, unless
//! `--force`); a snapshot's SHA-256 trailer is written again for the new
//! bytes; the output is checked before it is committed and the check is reported.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use etcdsnap_bolt::surgery::{self, PreviousFreelist, Rewrite};
use etcdsnap_bolt::{check, CheckOptions, Db};
use etcdsnap_io::{AtomicFile, CreateOptions, MappedFile};
use etcdsnap_mvcc::trailer;
use serde::Serialize;

use super::ProblemJson;
use crate::output::{stale_files, Out, StaleJson};
use crate::Outcome;

#[derive(Debug, Subcommand)]
pub enum SurgeryCommand {
    /// Copy the older meta page over the newer, so the file reads as before its last
    /// transaction (`bbolt surgery revert-meta-page`).
    RevertMeta(SurgeryIo),
    /// Remove elements [FROM, TO) of a branch or leaf page (`bbolt surgery clear-page-elements`).
    ClearPageElements(ClearArgs),
    /// Rebuild or abandon the freelist (`bbolt surgery freelist rebuild|abandon`).
    #[command(subcommand)]
    Freelist(FreelistCommand),
}

#[derive(Debug, Subcommand)]
pub enum FreelistCommand {
    /// Write a freelist computed from the tree: every page no bucket reaches is free,
    /// whatever the old freelist said.
    Rebuild(SurgeryIo),
    /// Drop the persisted freelist from both meta pages; bbolt rebuilds it by scanning at open.
    Abandon(SurgeryIo),
}

#[derive(Debug, Args)]
pub struct SurgeryIo {
    /// Input: a bbolt file, etcd snapshot or member/snap/db (never modified).
    input: PathBuf,
    /// Output file (written beside, then renamed; mode 0600; must not be the input).
    output: PathBuf,
    /// Replace an existing OUT, and remove temporary files interrupted runs left beside it.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    fmt: crate::output::FormatArgs,
}

#[derive(Debug, Args)]
pub struct ClearArgs {
    #[command(flatten)]
    io: SurgeryIo,
    /// The branch or leaf page.
    #[arg(long)]
    page: u64,
    /// First element to remove (from 0).
    #[arg(long)]
    from: usize,
    /// One past the last element to remove; -1 = to the end of the page.
    #[arg(long, allow_negative_numbers = true)]
    to: i64,
}

/// What every surgery reports besides its own fields.
#[derive(Serialize)]
struct Written {
    input: String,
    output: String,
    bytes_out: u64,
    trailer_out: Option<String>,
    output_ok: bool,
    output_problem_count: u64,
    output_problems: Vec<ProblemJson>,
    stale_temp_files: Vec<StaleJson>,
}

/// Problems of the output listed in full (the rest are counted).
const SHOWN_PROBLEMS: usize = 20;

pub fn run(cmd: SurgeryCommand, out: &mut Out) -> Result<Outcome> {
    match cmd {
        SurgeryCommand::RevertMeta(io) => revert_meta(&io, out),
        SurgeryCommand::ClearPageElements(a) => clear(&a, out),
        SurgeryCommand::Freelist(FreelistCommand::Rebuild(io)) => rebuild(&io, out),
        SurgeryCommand::Freelist(FreelistCommand::Abandon(io)) => abandon(&io, out),
    }
}

/// Maps the input, runs `op` on its bbolt image, writes and checks the output.
fn apply<T>(
    io: &SurgeryIo,
    what: &str,
    op: impl FnOnce(&[u8]) -> etcdsnap_bolt::Result<T>,
    rewrite_of: impl Fn(&T) -> &Rewrite,
) -> Result<(T, Written)> {
    let file = crate::paths::map_file(&io.input)?;
    let (image, had_trailer) = trailer::split(&file);
    let result = op(image).with_context(|| format!("{what} of {}", io.input.display()))?;
    let rewrite = rewrite_of(&result);
    let opts = CreateOptions { overwrite: io.force, remove_stale: io.force };
    let mut atomic = AtomicFile::create_with(&io.output, &[&io.input], opts)?;
    let tmp = atomic.tmp_path().to_path_buf();
    {
        let mut w = std::io::BufWriter::new(atomic.file()?);
        rewrite.write_to(image, &mut w).with_context(|| format!("writing {}", tmp.display()))?;
        w.flush().with_context(|| format!("writing {}", tmp.display()))?;
    }
    crate::paths::unchanged(&file)?;
    let written = MappedFile::open(&tmp)?;
    let trailer_out = had_trailer.is_some().then(|| trailer::digest(&written));
    let (ok, count, problems) = match Db::open(&written) {
        Ok(db) => {
            let r = check::check(&db, &CheckOptions { max_problems: SHOWN_PROBLEMS });
            (r.is_ok(), r.problem_count, r.problems.iter().map(ProblemJson::from).collect())
        }
        Err(e) => {
            let p = e.corruption().map(ProblemJson::from).into_iter().collect();
            (false, 1, p)
        }
    };
    let mut bytes_out = written.len() as u64;
    drop(written);
    if let Some(d) = trailer_out {
        atomic.file()?.write_all(&d).with_context(|| format!("writing {}", tmp.display()))?;
        bytes_out = bytes_out.saturating_add(d.len() as u64);
    }
    let stale = stale_files(atomic.stale());
    atomic.commit()?;
    let w = Written {
        input: io.input.display().to_string(),
        output: io.output.display().to_string(),
        bytes_out,
        trailer_out: trailer_out.as_ref().map(trailer::hex),
        output_ok: ok,
        output_problem_count: count,
        output_problems: problems,
        stale_temp_files: stale,
    };
    Ok((result, w))
}

/// The lines every surgery ends with: what was written and how its check went.
fn print_written(w: &Written, out: &mut Out) -> Result<()> {
    let trailer = w.trailer_out.as_ref().map_or(String::new(), |d| format!(", sha256 trailer {d}"));
    out.line(format!("wrote {} ({} bytes{trailer})", w.output, w.bytes_out))?;
    if w.output_ok {
        return out.line("output check: OK");
    }
    out.line(format!("output check: {} problems", w.output_problem_count))?;
    for p in &w.output_problems {
        out.line(format!("  {}", p.message))?;
    }
    Ok(())
}

#[derive(Serialize)]
struct RevertJson {
    operation: &'static str,
    target_meta: u8,
    source_meta: u8,
    target_txid: u64,
    target_fault: Option<String>,
    txid: u64,
    #[serde(flatten)]
    written: Written,
}

fn revert_meta(io: &SurgeryIo, out: &mut Out) -> Result<Outcome> {
    out.set_format(io.fmt.format());
    let (r, written) = apply(io, "revert-meta", surgery::revert_meta, |r| &r.rewrite)?;
    let j = RevertJson {
        operation: "revert-meta",
        target_meta: r.target,
        source_meta: r.source,
        target_txid: r.target_txid,
        target_fault: r.target_fault.as_ref().map(ToString::to_string),
        txid: r.txid,
        written,
    };
    if io.fmt.structured() {
        out.json(&j)?;
        return Ok(Outcome::Clean);
    }
    out.line(format!(
        "meta {} (txid {}) replaced by meta {} (txid {}): the file reads as of txid {}",
        j.target_meta, j.target_txid, j.source_meta, j.txid, j.txid
    ))?;
    if let Some(f) = &j.target_fault {
        out.line(format!("meta {} was not valid ({f}); bbolt already read meta {}", j.target_meta, j.source_meta))?;
    }
    print_written(&j.written, out)?;
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
struct ClearJson {
    operation: &'static str,
    page: u64,
    page_type: &'static str,
    count: usize,
    from: usize,
    to: Option<usize>,
    removed: usize,
    overflow_before: u32,
    overflow_after: u32,
    orphans_pages: bool,
    freelist_abandoned: Vec<u8>,
    first_key_changed: bool,
    #[serde(flatten)]
    written: Written,
}

fn clear(a: &ClearArgs, out: &mut Out) -> Result<Outcome> {
    out.set_format(a.io.fmt.format());
    let to = match a.to {
        -1 => None,
        t => match usize::try_from(t) {
            Ok(t) => Some(t),
            Err(_) => bail!("--to {t}: give an element index, or -1 for the end of the page"),
        },
    };
    let (c, written) =
        apply(&a.io, "clear-page-elements", |d| surgery::clear_page_elements(d, a.page, a.from, to), |r| &r.rewrite)?;
    let j = ClearJson {
        operation: "clear-page-elements",
        page: c.page,
        page_type: if c.branch { "branch" } else { "leaf" },
        count: c.count,
        from: a.from,
        to,
        removed: c.removed,
        overflow_before: c.overflow.0,
        overflow_after: c.overflow.1,
        orphans_pages: c.orphans_pages,
        freelist_abandoned: c.freelist_abandoned.clone(),
        first_key_changed: c.first_key_changed,
        written,
    };
    if a.io.fmt.structured() {
        out.json(&j)?;
        return Ok(Outcome::Clean);
    }
    let end = to.map_or("end".to_string(), |t| t.to_string());
    if j.removed == 0 {
        out.line(format!("page {} ({}) has no elements: nothing removed", j.page, j.page_type))?;
    } else {
        out.line(format!(
            "page {} ({}): removed elements [{}, {end}), {} of {}; overflow {} -> {}",
            j.page, j.page_type, j.from, j.removed, j.count, j.overflow_before, j.overflow_after
        ))?;
    }
    if !j.freelist_abandoned.is_empty() {
        let metas: Vec<String> = j.freelist_abandoned.iter().map(ToString::to_string).collect();
        out.line(format!(
            "pages became unreachable: the freelist was abandoned in meta {} (bbolt rebuilds it at open)",
            metas.join(", ")
        ))?;
    }
    if j.first_key_changed && j.removed > 0 {
        out.line(
            "element 0 was removed: the branch key leading to this page (if any) is now a lower bound only \
             (bbolt accepts it; `etcdsnap bolt check` reports branch-key-mismatch)",
        )?;
    }
    print_written(&j.written, out)?;
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
struct RebuildJson {
    operation: &'static str,
    previous: &'static str,
    previous_page: Option<u64>,
    previous_ids: Option<usize>,
    page: u64,
    overflow: u32,
    free_pages: u64,
    txid: u64,
    meta: u8,
    hwm_before: u64,
    hwm_after: u64,
    #[serde(flatten)]
    written: Written,
}

fn rebuild(io: &SurgeryIo, out: &mut Out) -> Result<Outcome> {
    out.set_format(io.fmt.format());
    let (r, written) = apply(io, "freelist rebuild", surgery::rebuild_freelist, |r| &r.rewrite)?;
    let (previous, previous_page, previous_ids) = match r.previous {
        PreviousFreelist::NotPersisted => ("none", None, None),
        PreviousFreelist::Persisted { page, ids } => ("persisted", Some(page), Some(ids)),
        PreviousFreelist::Unreadable { page } => ("unreadable", Some(page), None),
    };
    let j = RebuildJson {
        operation: "freelist-rebuild",
        previous,
        previous_page,
        previous_ids,
        page: r.page,
        overflow: r.overflow,
        free_pages: r.free,
        txid: r.txid,
        meta: r.meta,
        hwm_before: r.hwm.0,
        hwm_after: r.hwm.1,
        written,
    };
    if io.fmt.structured() {
        out.json(&j)?;
        return Ok(Outcome::Clean);
    }
    let was = match (previous_page, previous_ids) {
        (Some(p), Some(n)) => format!("page {p}, {n} ids"),
        (Some(p), None) => format!("page {p}, unreadable"),
        _ => "not persisted".into(),
    };
    out.line(format!(
        "freelist written at page {} ({} overflow pages): {} free pages; meta {} txid {} (was: {was})",
        j.page, j.overflow, j.free_pages, j.meta, j.txid
    ))?;
    if j.hwm_after != j.hwm_before {
        out.line(format!("high-water mark {} -> {}", j.hwm_before, j.hwm_after))?;
    }
    print_written(&j.written, out)?;
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
struct AbandonJson {
    operation: &'static str,
    metas: Vec<u8>,
    invalid_metas: Vec<u8>,
    #[serde(flatten)]
    written: Written,
}

fn abandon(io: &SurgeryIo, out: &mut Out) -> Result<Outcome> {
    out.set_format(io.fmt.format());
    let (a, written) = apply(io, "freelist abandon", surgery::abandon_freelist, |r| &r.rewrite)?;
    let j = AbandonJson { operation: "freelist-abandon", metas: a.metas, invalid_metas: a.invalid, written };
    if io.fmt.structured() {
        out.json(&j)?;
        return Ok(Outcome::Clean);
    }
    if j.metas.is_empty() {
        out.line("no valid meta page had a persisted freelist: nothing changed")?;
    } else {
        let metas: Vec<String> = j.metas.iter().map(ToString::to_string).collect();
        out.line(format!("freelist abandoned in meta {}: bbolt rebuilds it by scanning at open", metas.join(", ")))?;
    }
    for m in &j.invalid_metas {
        out.line(format!("meta {m} is not valid and was left as it is"))?;
    }
    print_written(&j.written, out)?;
    Ok(Outcome::Clean)
}
