//! Read-only memory map of a file: the crate's only `unsafe` code.
#![allow(unsafe_code)]

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use crate::error::{Error, Result};

/// A whole file mapped read-only (empty files are held as an empty slice).
#[derive(Debug)]
pub struct MappedFile {
    map: Option<memmap2::Mmap>,
}

impl MappedFile {
    /// Maps `path` read-only; refuses anything but a regular file (symbolic links
    /// are followed).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        // Look before opening: opening a FIFO for reading blocks until a writer
        // comes, and a device can be endless or have no meaningful length.
        let before = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        refuse_non_file(path, &before.file_type())?;
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // And after: the path may have been replaced in between.
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        refuse_non_file(path, &meta.file_type())?;
        let len = meta.len();
        if len == 0 {
            return Ok(Self { map: None });
        }
        // SAFETY: the map is read-only and private to this process. If another
        // process truncates the file while it is mapped, reads past the new end
        // fault (SIGBUS); as with every mmap-based reader, callers must not run
        // on files being truncated. We never write through the map.
        let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(|e| Error::io(path, e))?;
        #[cfg(unix)]
        {
            // Sequential scans dominate; a failed hint is harmless.
            let _ = map.advise(memmap2::Advice::Sequential);
        }
        Ok(Self { map: Some(map) })
    }
}

/// Fails with [`Error::NotRegularFile`] unless `ft` is a regular file.
fn refuse_non_file(path: &Path, ft: &std::fs::FileType) -> Result<()> {
    if ft.is_file() {
        return Ok(());
    }
    Err(Error::NotRegularFile { path: path.to_path_buf(), kind: file_kind(ft) })
}

/// A name for a file type that is not a regular file.
fn file_kind(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "FIFO";
        }
        if ft.is_char_device() {
            return "character device";
        }
        if ft.is_block_device() {
            return "block device";
        }
        if ft.is_socket() {
            return "socket";
        }
    }
    if ft.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

impl Deref for MappedFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_refused_with_their_path() {
        let dir = std::env::temp_dir();
        let err = MappedFile::open(&dir).expect_err("a directory is not a database");
        assert!(matches!(&err, Error::NotRegularFile { path, kind: "directory" } if path == &dir), "{err:?}");
        assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_refused() {
        let err = MappedFile::open("/dev/zero").expect_err("a device is not a database");
        assert!(matches!(err, Error::NotRegularFile { kind: "character device", .. }), "{err:?}");
        assert_eq!(err.to_string(), "/dev/zero is not a regular file but a character device");
    }
}
