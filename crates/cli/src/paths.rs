//! Inputs as the commands map them, with errors that say what a path is when
//! it is not what a command expects (the recognition itself is the
//! library's: [`etcdsnap_datadir::input`]).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use etcdsnap_bolt::Db;
use etcdsnap_datadir::input::{classify, db_file_of, detect};
use etcdsnap_io::MappedFile;
use etcdsnap_mvcc::trailer;

/// For the commands that also take a data dir or member dir (`du`, `diff`):
/// the db file `path` stands for, mapped.
pub fn map_db_or_dir(path: &Path) -> Result<(PathBuf, MappedFile)> {
    let db = db_file_of(path)?;
    let file = map_file(&db)?;
    Ok((db, file))
}

/// Maps an input file that must be a snapshot or db file, saying what the path
/// is when it is not a readable file.
pub fn map_file(path: &Path) -> Result<MappedFile> {
    match MappedFile::open(path) {
        Ok(f) => Ok(f),
        Err(e) => Err(explained(path, anyhow::Error::new(e).context(format!("cannot read {}", path.display())))),
    }
}

/// `err`, a failure to read `path` as a snapshot or db file, replaced by
/// what `path` is when that explains it (a directory, a WAL segment, …).
pub fn explained(path: &Path, err: anyhow::Error) -> anyhow::Error {
    match detect(path).not_a_db_file(path) {
        Some(what) => anyhow!(what),
        None => err,
    }
}

/// Why `bytes` at `path` are not a bbolt file, naming what they are when recognised.
fn not_bbolt(path: &Path, bytes: &[u8], err: etcdsnap_bolt::Error) -> anyhow::Error {
    match classify(bytes).not_a_db_file(path) {
        Some(what) => anyhow!(what),
        None => anyhow::Error::new(err).context(format!("{} is not a readable bbolt file", path.display())),
    }
}

/// The bbolt image of a snapshot (trailer cut off) or db file.
pub fn open_snapshot<'a>(path: &Path, file: &'a MappedFile) -> Result<Db<'a>> {
    let (image, _) = trailer::split(file);
    Db::open(image).map_err(|e| not_bbolt(path, file, e))
}

/// A bbolt file read as it is (no trailer handling), for the `bolt` commands.
pub fn open_bolt<'a>(path: &Path, file: &'a MappedFile) -> Result<Db<'a>> {
    Db::open(file).map_err(|e| not_bbolt(path, file, e))
}

/// Temporary files and directories of ours beside `output` that killed runs
/// left (`.NAME.tmp.PID`, process gone), removed when `remove` (`--force`).
/// For the outputs that are directories; file outputs get theirs from `AtomicFile`.
pub fn stale_beside(output: &Path, remove: bool) -> Vec<etcdsnap_io::StaleTemp> {
    let mut stale = etcdsnap_io::stale_temps(output);
    if remove {
        stale.iter_mut().for_each(etcdsnap_io::StaleTemp::remove);
    }
    stale
}

/// Fails when `file` was changed by another process since it was mapped (see
/// `MappedFile::check_unchanged`): what a command read from it is then no
/// statement about any version of the file. Exit 1, like a failed check.
pub fn unchanged(file: &MappedFile) -> Result<()> {
    file.check_unchanged().map_err(anyhow::Error::new)
}
