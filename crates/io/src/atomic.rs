//! The one way every command writes a file: beside the target, then renamed.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, OutputProblem, Result};

/// A file written under a temporary name beside `target` (mode 0600), made
/// durable and renamed over `target` by [`commit`](AtomicFile::commit).
///
/// Dropped without commit, the temporary file is removed and the target is
/// untouched. Creating one whose target is one of the inputs is refused.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    stale: Vec<StaleTemp>,
    overwrite: bool,
    /// Lets the SIGBUS handler remove the temporary file (see `mmap::guard`).
    #[cfg(unix)]
    _guard: crate::mmap::guard::TempRegistration,
}

/// Whether `a` and `b` name the same existing file (same device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    }
}

/// How [`AtomicFile::create_with`] treats what it finds at and beside the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// Replace an existing target (refused by default).
    pub overwrite: bool,
    /// Remove stale temporary files of ours beside the target (listed either way).
    pub remove_stale: bool,
}

/// A temporary file or directory an earlier, killed run left beside the
/// target (`.NAME.tmp.PID` whose process no longer runs): a file of a snapshot
/// or db write, a directory of a WAL or data-dir rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleTemp {
    /// Its path.
    pub path: PathBuf,
    /// Its size in bytes (a directory's: the files in it).
    pub bytes: u64,
    /// Whether it is a directory.
    pub dir: bool,
    /// Whether it was removed.
    pub removed: bool,
}

impl StaleTemp {
    /// Removes it (a directory with everything in it); records whether that worked.
    pub fn remove(&mut self) {
        let r = if self.dir { std::fs::remove_dir_all(&self.path) } else { std::fs::remove_file(&self.path) };
        self.removed = r.is_ok();
    }
}

/// The bytes of the files under `dir` (not following links; a few levels, as ours are).
fn dir_bytes(dir: &Path, depth: u32) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() && depth > 0 => dir_bytes(&e.path(), depth.saturating_sub(1)),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .fold(0u64, u64::saturating_add)
}

/// The directory a target is written in (`.` for a bare file name).
pub(crate) fn parent_dir(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The prefix of our temporary names for `name`: `.NAME.tmp.`.
pub fn tmp_prefix(name: &std::ffi::OsStr) -> std::ffi::OsString {
    let mut p = std::ffi::OsString::from(".");
    p.push(name);
    p.push(".tmp.");
    p
}

/// Whether process `pid` runs (Linux: `/proc/PID`); `None` when that cannot be told.
fn process_runs(pid: u32) -> Option<bool> {
    let proc_root = Path::new("/proc/self");
    proc_root.exists().then(|| Path::new("/proc").join(pid.to_string()).exists())
}

/// Temporary files and directories of ours beside `target` (`.NAME.tmp.PID`)
/// left by processes that no longer run. Those of running processes (another
/// etcdsnap writing the same output) and, where liveness cannot be told, all
/// of them, are left out.
pub fn stale_temps(target: &Path) -> Vec<StaleTemp> {
    let (Some(name), dir) = (target.file_name(), parent_dir(target)) else { return Vec::new() };
    let prefix = tmp_prefix(name);
    let prefix = prefix.to_string_lossy();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<StaleTemp> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file_name = e.file_name();
            let file_name = file_name.to_str()?;
            let pid: u32 = file_name.strip_prefix(&*prefix)?.parse().ok()?;
            if pid == std::process::id() || process_runs(pid) != Some(false) {
                return None;
            }
            let meta = std::fs::symlink_metadata(e.path()).ok()?;
            if meta.is_dir() {
                let path = e.path();
                return Some(StaleTemp { bytes: dir_bytes(&path, 8), path, dir: true, removed: false });
            }
            meta.is_file().then(|| StaleTemp { path: e.path(), bytes: meta.len(), dir: false, removed: false })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn output_error(path: &Path, kind: OutputProblem) -> Error {
    Error::Output { path: path.to_path_buf(), problem: kind }
}

impl AtomicFile {
    /// Creates the temporary file for `target`, replacing an existing target on
    /// commit; refuses when `target` is any of `inputs`.
    pub fn create(target: impl AsRef<Path>, inputs: &[&Path]) -> Result<Self> {
        Self::create_with(target, inputs, CreateOptions { overwrite: true, remove_stale: false })
    }

    /// Creates the temporary file for `target` as `opts` say: an existing
    /// target is refused unless `overwrite`; stale temporary files of ours
    /// beside it are listed ([`stale`](Self::stale)) and removed with
    /// `remove_stale`. A missing or non-directory parent, a directory as the
    /// target and a target that is one of `inputs` are refused, naming the path.
    pub fn create_with(target: impl AsRef<Path>, inputs: &[&Path], opts: CreateOptions) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        if inputs.iter().any(|i| same_file(i, &target)) {
            return Err(output_error(&target, OutputProblem::IsInput));
        }
        let name = target.file_name().ok_or_else(|| output_error(&target, OutputProblem::NotAFileName))?;
        let dir = parent_dir(&target);
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(output_error(&dir, OutputProblem::ParentNotADirectory)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(output_error(&dir, OutputProblem::NoParentDirectory))
            }
            Err(e) => return Err(Error::io(&dir, e)),
        }
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => return Err(output_error(&target, OutputProblem::IsADirectory)),
            Ok(_) if !opts.overwrite => return Err(output_error(&target, OutputProblem::Exists)),
            _ => {}
        }
        let mut stale = stale_temps(&target);
        if opts.remove_stale {
            stale.iter_mut().for_each(StaleTemp::remove);
        }
        let mut tmp_name = tmp_prefix(name);
        tmp_name.push(std::process::id().to_string());
        let tmp = dir.join(tmp_name);
        let mut open = OpenOptions::new();
        open.read(true).write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            open.mode(0o600);
        }
        let file = open.open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(Self {
            #[cfg(unix)]
            _guard: crate::mmap::guard::TempRegistration::file(&tmp),
            target,
            tmp,
            file: Some(file),
            stale,
            overwrite: opts.overwrite,
        })
    }

    /// Stale temporary files of earlier runs found beside the target when it was created.
    pub fn stale(&self) -> &[StaleTemp] {
        &self.stale
    }

    /// The temporary file, to write into.
    pub fn file(&mut self) -> Result<&mut File> {
        let tmp = self.tmp.clone();
        self.file.as_mut().ok_or_else(|| Error::io(tmp, io::Error::other("already committed")))
    }

    /// Path of the temporary file.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// fsyncs the file, renames it over the target, and fsyncs the directory.
    pub fn commit(mut self) -> Result<()> {
        let file = self.file.take().ok_or_else(|| Error::io(&self.tmp, io::Error::other("already committed")))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        drop(file);
        if self.overwrite {
            std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        } else {
            // No clobbering even if the target appeared since `create_with` looked:
            // a hard link fails when it exists. Filesystems without hard links
            // fall back to a second look and a rename.
            match std::fs::hard_link(&self.tmp, &self.target) {
                Ok(()) => std::fs::remove_file(&self.tmp).map_err(|e| Error::io(&self.tmp, e))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(output_error(&self.target, OutputProblem::Exists));
                }
                Err(_) if std::fs::symlink_metadata(&self.target).is_ok() => {
                    return Err(output_error(&self.target, OutputProblem::Exists));
                }
                Err(_) => std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, e))?,
            }
        }
        let dir = parent_dir(&self.target);
        #[cfg(unix)]
        File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(&dir, e))?;
        // Renamed: nothing for Drop to remove.
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;
    use std::io::Write;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("etcdsnap-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn commit_replaces_target_with_mode_0600() {
        let d = dir("commit");
        let target = d.join("out.db");
        std::fs::write(&target, b"old").unwrap();
        let mut f = AtomicFile::create(&target, &[]).unwrap();
        f.file().unwrap().write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"old", "target untouched until commit");
        f.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn drop_without_commit_removes_temp_and_keeps_target() {
        let d = dir("drop");
        let target = d.join("out.db");
        std::fs::write(&target, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&target, &[]).unwrap();
            f.file().unwrap().write_all(b"partial").unwrap();
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn existing_target_missing_parent_and_stale_temps() {
        let d = dir("rails");
        let target = d.join("out.db");
        std::fs::write(&target, b"old").unwrap();
        let refuse = CreateOptions::default();
        let e = AtomicFile::create_with(&target, &[], refuse).unwrap_err();
        assert!(matches!(e, Error::Output { problem: OutputProblem::Exists, .. }), "{e}");
        assert!(e.to_string().contains("out.db") && e.to_string().contains("exists"), "{e}");
        // A missing directory is named as such, not the temporary file inside it.
        let e = AtomicFile::create_with(d.join("nope/out.db"), &[], refuse).unwrap_err();
        assert_eq!(e.to_string(), format!("{}: output directory does not exist", d.join("nope").display()));
        let e = AtomicFile::create_with(&d, &[], refuse).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        // A temporary file of a process that no longer runs (pid beyond pid_max) is stale.
        let stale = d.join(".out.db.tmp.4194305");
        std::fs::write(&stale, b"partial").unwrap();
        let ours = d.join(format!(".out.db.tmp.{}", std::process::id()));
        let other = d.join(".other.db.tmp.4194305");
        std::fs::write(&other, b"x").unwrap();
        let listed = stale_temps(&target);
        assert_eq!(listed, vec![StaleTemp { path: stale.clone(), bytes: 7, dir: false, removed: false }]);
        let f = AtomicFile::create_with(&target, &[], CreateOptions { overwrite: true, remove_stale: false }).unwrap();
        assert_eq!(f.stale().len(), 1);
        assert!(stale.exists() && ours.exists());
        drop(f);
        let f = AtomicFile::create_with(&target, &[], CreateOptions { overwrite: true, remove_stale: true }).unwrap();
        assert!(f.stale()[0].removed && !stale.exists() && other.exists());
    }

    #[test]
    fn a_target_appearing_before_commit_is_not_clobbered() {
        let d = dir("race");
        let target = d.join("out.db");
        let mut f = AtomicFile::create_with(&target, &[], CreateOptions::default()).unwrap();
        f.file().unwrap().write_all(b"new").unwrap();
        std::fs::write(&target, b"someone else's").unwrap();
        let e = f.commit().unwrap_err();
        assert!(e.to_string().contains("output file exists"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"someone else's");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1, "temporary file removed");
        // Without a rival, the no-clobber commit leaves exactly the output.
        let other = d.join("other.db");
        let mut f = AtomicFile::create_with(&other, &[], CreateOptions::default()).unwrap();
        f.file().unwrap().write_all(b"mine").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&other).unwrap(), b"mine");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
    }

    #[test]
    fn refuses_to_overwrite_an_input() {
        let d = dir("same");
        let input = d.join("in.db");
        std::fs::write(&input, b"data").unwrap();
        let err = AtomicFile::create(&input, &[&input]).unwrap_err();
        assert!(err.to_string().contains("in.db"), "{err}");
        // Also through another path to the same file.
        let link = d.join("link.db");
        std::fs::hard_link(&input, &link).unwrap();
        assert!(AtomicFile::create(&link, &[&input]).is_err());
        assert_eq!(std::fs::read(&input).unwrap(), b"data");
    }
}
