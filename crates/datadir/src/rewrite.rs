//! A whole etcd data dir rewritten with one set of rules: its db
//! (`member/snap/db`, the snapshot rewrite) and its WAL (`member/wal`, the
//! WAL rewrite, with the replay check against the input db's
//! `consistent_index`), and its raft `.snap` files copied (they hold
//! membership and the raft state, no user keys). The WAL goes first: it is
//! small, and its refusals (a rule that would shift replayed revisions, an
//! unnamed `compact_rev_key`) then cost no db rewrite. Everything is built
//! in a temporary directory beside the output ([`AtomicDir`]) and renamed
//! into place when complete; on any error or interrupt it is removed.

use std::fs;
use std::path::Path;

use etcdsnap_io::{create_dir_private, AtomicDir, DirOptions, StaleTemp};
use etcdsnap_mvcc::rewrite::{rewrite, Progress, RewriteOptions, RewriteReport};
use etcdsnap_wal::rewrite::{rewrite_with, RewriteOptions as WalOptions, RewriteReport as WalReport};
use etcdsnap_wal::WalPaths;

use crate::error::{DataDirError, Result};
use crate::replay::replay_check;

/// What the data-dir rewrite did.
#[derive(Debug)]
pub struct DataDirReport {
    /// The db's rewrite.
    pub db: RewriteReport,
    /// The WAL's rewrite.
    pub wal: WalReport,
    /// `.snap` files copied.
    pub snap_files: u64,
    /// Temporary directories of killed runs found beside the output
    /// (removed when `opts.output.remove_stale`).
    pub stale_temps: Vec<StaleTemp>,
}

/// Checks that `input` is a data dir; its layout.
fn data_dir(input: &Path) -> Result<WalPaths> {
    if input.is_file() {
        return Err(DataDirError::input(input, format!("{} is a file; expected an etcd data dir", input.display())));
    }
    if !input.is_dir() {
        let what = format!("{}: no such directory; expected an etcd data dir", input.display());
        return Err(DataDirError::input(input, what));
    }
    if !input.join("member/snap/db").is_file() || !input.join("member/wal").is_dir() {
        let what = format!("{} is not an etcd data dir (it needs member/snap/db and member/wal)", input.display());
        return Err(DataDirError::input(input, what));
    }
    Ok(WalPaths::resolve(input))
}

/// Rewrites the data dir `input` into the new data dir `output` with the
/// db rewrite's `opts` (their rules, cancel flag and meter serve the WAL
/// rewrite too); see the module docs. An existing `output` is refused.
pub fn rewrite_data_dir(
    input: &Path,
    output: &Path,
    opts: &RewriteOptions,
    progress: &mut dyn Progress,
) -> Result<DataDirReport> {
    let layout = data_dir(input)?;
    let dir = AtomicDir::create(output, DirOptions { replace_empty: false, remove_stale: opts.output.remove_stale })?;
    let stale_temps = dir.stale().to_vec();
    let tmp = dir.path();
    create_dir_private(&tmp.join("member/snap"))?;
    let wal_opts = WalOptions {
        consistent_index: replay_check(&layout)?.consistent_index(),
        cancel: opts.cancel.flag(),
        meter: Some(opts.meter.clone()),
    };
    let wal = rewrite_with(&layout.wal_dir, &tmp.join("member/wal"), &opts.rules, wal_opts).map_err(|source| {
        DataDirError::Wal { context: format!("rewriting the WAL {}", layout.wal_dir.display()), source }
    })?;
    let db_in = input.join("member/snap/db");
    let db = rewrite(&db_in, &tmp.join("member/snap/db"), opts, progress)
        .map_err(|source| DataDirError::Db { context: format!("rewriting the db {}", db_in.display()), source })?;
    let mut snap_files = 0u64;
    if let Some(snap_dir) = &layout.snap_dir {
        let io = |e| etcdsnap_io::Error::io(snap_dir, e);
        for e in fs::read_dir(snap_dir).map_err(io)? {
            let e = e.map_err(io)?;
            if e.file_name().to_string_lossy().ends_with(".snap") {
                let to = tmp.join("member/snap").join(e.file_name());
                fs::copy(e.path(), &to).map_err(|err| etcdsnap_io::Error::io(&to, err))?;
                snap_files = snap_files.saturating_add(1);
            }
        }
    }
    dir.commit()?;
    Ok(DataDirReport { db, wal, snap_files, stale_temps })
}
