//! The one way a directory is written (a WAL, a data dir, a member's data
//! dir): built under a temporary name beside the target, made durable, and
//! renamed into place whole — or removed.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::atomic::{parent_dir, stale_temps, tmp_prefix, StaleTemp};
use crate::error::{Error, OutputProblem, Result};

/// How [`AtomicDir::create`] treats what it finds at and beside the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirOptions {
    /// Accept an existing but empty target directory (it is replaced).
    pub replace_empty: bool,
    /// Remove stale temporary files and directories of ours beside the
    /// target (listed either way).
    pub remove_stale: bool,
}

/// A directory built under a temporary name beside `target` (mode 0700),
/// made durable and renamed to `target` by [`commit`](AtomicDir::commit).
///
/// A directory is never written over: a target that exists (and, with
/// [`DirOptions::replace_empty`], is not an empty directory) is refused.
/// Dropped without commit, the temporary directory and everything in it is
/// removed and the target is untouched.
#[derive(Debug)]
pub struct AtomicDir {
    target: PathBuf,
    tmp: PathBuf,
    stale: Vec<StaleTemp>,
    /// Lets the SIGBUS handler remove the temporary directory (see `mmap::guard`).
    #[cfg(unix)]
    _guard: crate::mmap::guard::TempRegistration,
}

fn refuse(path: &Path, problem: OutputProblem) -> Error {
    Error::Output { path: path.to_path_buf(), problem }
}

/// Creates `dir` with mode 0700 (etcd wants its data dirs private), parents too.
pub fn create_dir_private(dir: &Path) -> Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| Error::io(dir, e))
}

/// Creates the new file `path` with mode 0600; refuses an existing one.
pub fn create_file_private(path: &Path) -> Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map_err(|e| Error::io(path, e))
}

impl AtomicDir {
    /// Creates the temporary directory for `target` as `opts` say; refuses a
    /// target that exists (unless an empty directory and `replace_empty`), a
    /// missing or non-directory parent and a path without a final name.
    pub fn create(target: impl AsRef<Path>, opts: DirOptions) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        let name = target.file_name().ok_or_else(|| refuse(&target, OutputProblem::NotAFileName))?;
        let parent = parent_dir(&target);
        match fs::metadata(&parent) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(refuse(&parent, OutputProblem::ParentNotADirectory)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(refuse(&parent, OutputProblem::NoParentDirectory))
            }
            Err(e) => return Err(Error::io(&parent, e)),
        }
        match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() && opts.replace_empty => {
                let mut rd = fs::read_dir(&target).map_err(|e| Error::io(&target, e))?;
                if rd.next().is_some() {
                    return Err(refuse(&target, OutputProblem::DirectoryNotEmpty));
                }
            }
            Ok(_) => return Err(refuse(&target, OutputProblem::DirectoryExists)),
            Err(_) => {}
        }
        let mut stale = stale_temps(&target);
        if opts.remove_stale {
            stale.iter_mut().for_each(StaleTemp::remove);
        }
        let mut tmp_name = tmp_prefix(name);
        tmp_name.push(std::process::id().to_string());
        let tmp = parent.join(tmp_name);
        // Our own process's leftover (an earlier call that failed) goes.
        let _ = fs::remove_dir_all(&tmp);
        create_dir_private(&tmp)?;
        Ok(Self {
            #[cfg(unix)]
            _guard: crate::mmap::guard::TempRegistration::dir(&tmp),
            target,
            tmp,
            stale,
        })
    }

    /// The temporary directory, to build in.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Stale temporary files and directories of earlier runs found beside the target.
    pub fn stale(&self) -> &[StaleTemp] {
        &self.stale
    }

    /// fsyncs every file and directory built, renames the directory to the
    /// target (replacing an empty one) and fsyncs the parent.
    pub fn commit(mut self) -> Result<()> {
        sync_tree(&self.tmp, 16)?;
        if fs::symlink_metadata(&self.target).is_ok_and(|m| m.is_dir()) {
            // Only an empty one gets here (create); remove_dir refuses any other.
            fs::remove_dir(&self.target).map_err(|e| Error::io(&self.target, e))?;
        }
        fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        let parent = parent_dir(&self.target);
        #[cfg(unix)]
        File::open(&parent).and_then(|d| d.sync_all()).map_err(|e| Error::io(&parent, e))?;
        // Renamed: nothing for Drop to remove.
        self.tmp = PathBuf::new();
        Ok(())
    }
}

/// fsyncs the files under `dir` and then `dir` itself, `depth` levels down.
fn sync_tree(dir: &Path, depth: u32) -> Result<()> {
    for e in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let path = e.path();
        let t = e.file_type().map_err(|e| Error::io(&path, e))?;
        if t.is_dir() && depth > 0 {
            sync_tree(&path, depth.saturating_sub(1))?;
        } else if t.is_file() {
            File::open(&path).and_then(|f| f.sync_all()).map_err(|e| Error::io(&path, e))?;
        }
    }
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
    Ok(())
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("etcdsnap-io-atomic-dir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn commits_whole_or_leaves_nothing() {
        let d = scratch("commit");
        let target = d.join("out");
        let a = AtomicDir::create(&target, DirOptions::default()).unwrap();
        create_dir_private(&a.path().join("member/wal")).unwrap();
        std::io::Write::write_all(&mut create_file_private(&a.path().join("member/wal/0.wal")).unwrap(), b"x").unwrap();
        assert!(!target.exists());
        a.commit().unwrap();
        assert_eq!(fs::read(target.join("member/wal/0.wal")).unwrap(), b"x");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1, "no temporary left beside the target");

        // Dropped uncommitted: the temporary goes, the target is not made.
        let other = d.join("other");
        let a = AtomicDir::create(&other, DirOptions::default()).unwrap();
        let tmp = a.path().to_path_buf();
        fs::write(tmp.join("f"), b"y").unwrap();
        drop(a);
        assert!(!tmp.exists() && !other.exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_what_it_must_not_write_over() {
        let d = scratch("refuse");
        let target = d.join("out");
        fs::create_dir(&target).unwrap();
        let e = AtomicDir::create(&target, DirOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Output { problem: OutputProblem::DirectoryExists, .. }), "{e}");
        // An empty directory may be replaced when asked; a non-empty one never.
        AtomicDir::create(&target, DirOptions { replace_empty: true, ..DirOptions::default() })
            .unwrap()
            .commit()
            .unwrap();
        fs::write(target.join("f"), b"z").unwrap();
        let e = AtomicDir::create(&target, DirOptions { replace_empty: true, ..DirOptions::default() }).unwrap_err();
        assert!(matches!(e, Error::Output { problem: OutputProblem::DirectoryNotEmpty, .. }), "{e}");
        let e = AtomicDir::create(d.join("missing/out"), DirOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Output { problem: OutputProblem::NoParentDirectory, .. }), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_listed_and_removed() {
        let d = scratch("stale");
        let target = d.join("out");
        // PID 0x7ffffffe is above any pid_max: no such process runs.
        let dead = d.join(".out.tmp.2147483646");
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join("segment"), b"12345").unwrap();
        let a = AtomicDir::create(&target, DirOptions::default()).unwrap();
        assert_eq!(a.stale().len(), 1);
        assert!(a.stale().first().is_some_and(|s| s.dir && s.bytes == 5 && !s.removed));
        assert!(dead.exists());
        drop(a);
        let a = AtomicDir::create(&target, DirOptions { remove_stale: true, ..DirOptions::default() }).unwrap();
        assert!(a.stale().first().is_some_and(|s| s.removed) && !dead.exists());
        fs::remove_dir_all(&d).unwrap();
    }
}
