//! `rewrite --data-dir IN OUT`: an etcd data dir rewritten whole, with the same
//! rules for its db (`member/snap/db`, the snapshot rewrite) and its WAL
//! (`member/wal`, the WAL rewrite, with the replay check against the input
//! db's consistent_index), and its raft `.snap` files copied (they hold
//! membership and the raft state, no user keys). The WAL goes first: it is
//! small, and its refusals (a rule that would shift replayed revisions, an
//! unnamed `compact_rev_key`) then cost no db rewrite. Everything is written
//! into `.OUT.tmp.PID` beside OUT and renamed into place when complete; on any
//! error or interrupt that directory is removed.
//!
//! Two library calls (the db and the WAL live in crates that know nothing of
//! each other); this module only lays out the directories.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use etcdsnap_mvcc::rewrite::{rewrite, Progress, RewriteOptions, RewriteReport};
use etcdsnap_wal::rewrite::{rewrite_with, RewriteOptions as WalOptions, RewriteReport as WalReport};
use etcdsnap_wal::Layout;

/// What the data-dir rewrite did.
pub struct DataDirReport {
    /// The db's rewrite.
    pub db: RewriteReport,
    /// The WAL's rewrite.
    pub wal: WalReport,
    /// `.snap` files copied.
    pub snap_files: u64,
    /// Temporary directories of killed runs found beside the output (removed with `--force`).
    pub stale_temps: Vec<etcdsnap_io::StaleTemp>,
}

fn mkdir_private(dir: &Path) -> Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        // etcd wants its data dir 0700.
        b.mode(0o700);
    }
    b.create(dir).with_context(|| format!("creating {}", dir.display()))
}

/// Checks IN is a data dir and OUT can be created; returns the temporary directory to build in.
fn prepare(input: &Path, output: &Path) -> Result<(Layout, PathBuf)> {
    let (db, wal) = (input.join("member/snap/db"), input.join("member/wal"));
    if input.is_file() {
        bail!("{} is a file; expected an etcd data dir", input.display());
    }
    if !input.is_dir() {
        bail!("{}: no such directory; expected an etcd data dir", input.display());
    }
    if !db.is_file() || !wal.is_dir() {
        bail!("{} is not an etcd data dir (it needs member/snap/db and member/wal)", input.display());
    }
    let layout = Layout::resolve(input);
    if output.exists() {
        bail!("{}: output exists; a data dir is never written over (remove it first)", output.display());
    }
    let name =
        output.file_name().with_context(|| format!("{}: output path does not name a directory", output.display()))?;
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!("{}: output directory does not exist", parent.display());
    }
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    Ok((layout, parent.join(tmp_name)))
}

fn build(
    layout: &Layout,
    input: &Path,
    tmp: &Path,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
) -> Result<DataDirReport> {
    mkdir_private(&tmp.join("member/snap"))?;
    let consistent_index = crate::wal_cmd::replay_check_index(layout)?;
    let cancel = Some(crate::interrupt::flag_on_signals()?);
    let wal = rewrite_with(
        &layout.wal_dir,
        &tmp.join("member/wal"),
        &opts.rules,
        WalOptions { consistent_index, cancel, meter: None },
    )
    .with_context(|| format!("rewriting the WAL {}", layout.wal_dir.display()))?;
    let db_in = input.join("member/snap/db");
    let db = rewrite(&db_in, &tmp.join("member/snap/db"), opts, progress)
        .with_context(|| format!("rewriting the db {}", db_in.display()))?;
    let mut snap_files = 0u64;
    if let Some(snap_dir) = &layout.snap_dir {
        for e in fs::read_dir(snap_dir).with_context(|| format!("reading {}", snap_dir.display()))? {
            let e = e.with_context(|| format!("reading {}", snap_dir.display()))?;
            if e.file_name().to_string_lossy().ends_with(".snap") {
                let to = tmp.join("member/snap").join(e.file_name());
                fs::copy(e.path(), &to)
                    .with_context(|| format!("copying {} to {}", e.path().display(), to.display()))?;
                snap_files = snap_files.saturating_add(1);
            }
        }
    }
    for d in [tmp.join("member/snap"), tmp.join("member"), tmp.to_path_buf()] {
        fs::File::open(&d).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", d.display()))?;
    }
    Ok(DataDirReport { db, wal, snap_files, stale_temps: Vec::new() })
}

/// Rewrites the data dir `input` into the new data dir `output` (see the module docs).
pub fn rewrite_data_dir(
    input: &Path,
    output: &Path,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
) -> Result<DataDirReport> {
    let (layout, tmp) = prepare(input, output)?;
    let stale_temps = crate::paths::stale_beside(output, opts.output.remove_stale);
    // Removed by the SIGBUS handler too, if the input db is truncated while mapped.
    #[cfg(unix)]
    let _guard = etcdsnap_io::fault_guard::TempRegistration::dir(&tmp);
    let built = build(&layout, input, &tmp, opts, progress);
    let done = built.and_then(|r| {
        fs::rename(&tmp, output).with_context(|| format!("renaming {} to {}", tmp.display(), output.display()))?;
        if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = fs::File::open(parent).and_then(|f| f.sync_all());
        }
        Ok(DataDirReport { stale_temps, ..r })
    });
    if done.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    done
}
