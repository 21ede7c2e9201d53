//! What a path given as input is, so that an error says it: missing, a
//! directory (data dir, member dir, WAL dir), a WAL segment, a raft `.snap`
//! file, an empty file, or bytes that are no bbolt file. Recognised by layout
//! and content (the segment's first CRC record, the `.snap` file's CRC-32C),
//! not by name. The one place that decides which file a data dir or member
//! dir stands for, too.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use etcdsnap_bolt::Db;
use etcdsnap_io::MappedFile;
use etcdsnap_mvcc::trailer;

/// What a directory is, for messages: data dir, member dir, WAL dir, or just a directory.
fn describe_dir(dir: &Path) -> String {
    let has_wal = |d: &Path| {
        std::fs::read_dir(d)
            .map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().ends_with(".wal")))
            .unwrap_or(false)
    };
    if dir.join("member/snap/db").is_file() || dir.join("member/wal").is_dir() {
        format!("an etcd data dir (its db file is {})", dir.join("member/snap/db").display())
    } else if dir.join("snap/db").is_file() || dir.join("wal").is_dir() {
        format!("an etcd member dir (its db file is {})", dir.join("snap/db").display())
    } else if has_wal(dir) {
        "a WAL directory (read it with `etcdsnap wal verify|dump`)".to_string()
    } else {
        "a directory".to_string()
    }
}

/// For the commands that also take a data dir or member dir (`du`, `diff`):
/// the db file `path` stands for (a data dir's `member/snap/db`, a member
/// dir's `snap/db`, else `path` itself), mapped.
pub fn map_db_or_dir(path: &Path) -> Result<(PathBuf, MappedFile)> {
    let db = if path.is_dir() {
        let (data_db, member_db) = (path.join("member/snap/db"), path.join("snap/db"));
        if data_db.is_file() {
            data_db
        } else if member_db.is_file() {
            member_db
        } else if path.join("member").is_dir() {
            bail!("{} is an etcd data dir without its db file ({} does not exist)", path.display(), data_db.display())
        } else {
            bail!("{} is {}; expected a snapshot or db file, or an etcd data dir", path.display(), describe_dir(path))
        }
    } else {
        path.to_path_buf()
    };
    let file = map_file(&db)?;
    Ok((db, file))
}

/// Maps an input file that must be a snapshot or db file, saying what the path
/// is when it is not a readable file.
pub fn map_file(path: &Path) -> Result<MappedFile> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            match parent {
                Some(p) if !p.exists() => {
                    bail!("{}: no such file (directory {} does not exist)", path.display(), p.display())
                }
                _ => bail!("{}: no such file", path.display()),
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        Ok(m) if m.is_dir() => {
            bail!("{} is {}; expected a snapshot or db file", path.display(), describe_dir(path))
        }
        Ok(_) => MappedFile::open(path).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Why `bytes` at `path` are not a bbolt file, naming what they are when recognised.
fn not_bbolt(path: &Path, bytes: &[u8], err: etcdsnap_bolt::Error) -> anyhow::Error {
    let p = path.display();
    if bytes.is_empty() {
        anyhow!("{p} is empty; expected a snapshot or db file")
    } else if etcdsnap_wal::segment::looks_like_segment(bytes) {
        anyhow!(
            "{p} is a WAL segment, not a snapshot or db file (read WAL segments with `etcdsnap wal verify|dump` \
             on their directory)"
        )
    } else if etcdsnap_wal::snapfile::looks_like_snap_file(bytes) {
        anyhow!(
            "{p} is a raft .snap file (member/snap/*.snap), not a snapshot or db file; the db file is member/snap/db"
        )
    } else {
        anyhow::Error::new(err).context(format!("{p} is not a readable bbolt file"))
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

/// Checks, before a library call reads it, that `path` is a snapshot or db file.
pub fn check_snapshot_input(path: &Path) -> Result<()> {
    let file = map_file(path)?;
    open_snapshot(path, &file).map(|_| ())
}
