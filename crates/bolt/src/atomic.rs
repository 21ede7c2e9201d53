//! The one way every command writes a file: beside the target, then renamed.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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

/// Removes `<prefix><pid>` files in `dir` left by a process that no longer runs
/// (killed while writing: SIGKILL runs no cleanup). Only on Linux, where
/// `/proc/<pid>` says whether a process runs; elsewhere they stay.
fn remove_stale_temps(dir: &Path, prefix: &std::ffi::OsStr) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let (Some(prefix), Ok(entries)) = (prefix.to_str(), std::fs::read_dir(dir)) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let running = Path::new("/proc").join(pid).exists();
        if !running && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl AtomicFile {
    /// Creates the temporary file for `target`; refuses when `target` is any of `inputs`.
    pub fn create(target: impl AsRef<Path>, inputs: &[&Path]) -> Result<Self> {
        let target = target.as_ref().to_path_buf();
        if inputs.iter().any(|i| same_file(i, &target)) {
            return Err(Error::io(
                &target,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "output is the same file as an input; refusing to overwrite it",
                ),
            ));
        }
        let name = target
            .file_name()
            .ok_or_else(|| Error::io(&target, io::Error::new(io::ErrorKind::InvalidInput, "not a file name")))?;
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(name);
        prefix.push(".tmp.");
        remove_stale_temps(&dir, &prefix);
        let mut tmp_name = prefix;
        tmp_name.push(std::process::id().to_string());
        let tmp = dir.join(tmp_name);
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(Self { target, tmp, file: Some(file) })
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
        std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        let dir = match self.target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
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
    fn temp_files_of_dead_processes_are_removed() {
        let d = dir("stale");
        let target = d.join("out.db");
        // No process has this pid (above pid_max); a live one's temp file stays.
        let stale = d.join(".out.db.tmp.4294967295");
        let live = d.join(format!(".out.db.tmp.{}", std::process::id()));
        let other = d.join(".other.db.tmp.4294967295");
        for f in [&stale, &other] {
            std::fs::write(f, b"partial").unwrap();
        }
        let f = AtomicFile::create(&target, &[]).unwrap();
        assert!(live.exists(), "our own temporary file");
        drop(f);
        if cfg!(target_os = "linux") {
            assert!(!stale.exists(), "the dead writer's temporary file is removed");
        }
        assert!(other.exists(), "another target's temporary files are left alone");
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
