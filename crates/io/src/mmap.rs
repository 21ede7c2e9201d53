//! Read-only memory map of a file: the crate's only `unsafe` code (with its
//! fault guard, [`guard`]).
#![allow(unsafe_code)]

#[cfg(unix)]
pub mod guard;

use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A whole file mapped read-only (empty files are held as an empty slice).
#[derive(Debug)]
pub struct MappedFile {
    // Field order is drop order: the registration goes before the map.
    #[cfg(unix)]
    _guard: Option<guard::MapRegistration>,
    map: Option<memmap2::Mmap>,
    file: File,
    path: PathBuf,
    stamp: Stamp,
}

/// What tells that a file was changed since it was opened: identity, length,
/// modification and status-change times (a write updates both times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Self {
                dev: meta.dev(),
                ino: meta.ino(),
                len: meta.len(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                ctime: (meta.ctime(), meta.ctime_nsec()),
            }
        }
        #[cfg(not(unix))]
        {
            let t = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or((0, 0), |d| (i64::try_from(d.as_secs()).unwrap_or(i64::MAX), i64::from(d.subsec_nanos())));
            Self { dev: 0, ino: 0, len: meta.len(), mtime: t, ctime: t }
        }
    }
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
        let stamp = Stamp::of(&meta);
        let path = path.to_path_buf();
        if meta.len() == 0 {
            #[cfg(unix)]
            return Ok(Self { _guard: None, map: None, file, path, stamp });
            #[cfg(not(unix))]
            return Ok(Self { map: None, file, path, stamp });
        }
        // SAFETY: the map is read-only and private to this process; we never
        // write through it. If another process truncates the file while it is
        // mapped, reads past the new end fault (SIGBUS): the map is registered
        // with the fault guard, whose handler (when a program installs it)
        // exits cleanly naming the file. A change in place is told by
        // `check_unchanged` (and by the trailer's hash where there is one).
        let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(|e| Error::io(&path, e))?;
        #[cfg(unix)]
        {
            // Sequential scans dominate; a failed hint is harmless.
            let _ = map.advise(memmap2::Advice::Sequential);
            let registration = guard::MapRegistration::new(&map, &path);
            Ok(Self { _guard: Some(registration), map: Some(map), file, path, stamp })
        }
        #[cfg(not(unix))]
        Ok(Self { map: Some(map), file, path, stamp })
    }

    /// The open file behind the map (for copies the kernel makes itself).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The path it was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fails with [`Error::InputChanged`] when the file was written, truncated
    /// or extended since it was opened (its length, modification or status
    /// change time differ), so that what was read from it cannot be trusted.
    /// Writers call it before they commit an output made from the file, and
    /// checkers before they report it clean.
    pub fn check_unchanged(&self) -> Result<()> {
        let now = self.file.metadata().map_err(|e| Error::io(&self.path, e))?;
        let now = Stamp::of(&now);
        if now == self.stamp {
            return Ok(());
        }
        let what = if now.len < self.stamp.len {
            format!("truncated by another process: its size went from {} to {} bytes", self.stamp.len, now.len)
        } else if now.len != self.stamp.len {
            format!("its size went from {} to {} bytes", self.stamp.len, now.len)
        } else {
            "it was written in place".to_string()
        };
        Err(Error::InputChanged { path: self.path.clone(), what })
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

/// Starts the write-back of `len` bytes of `file` from `offset` without waiting
/// for it (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that the fsync
/// that commits a large output finds little left to write. A hint: failures
/// are ignored, and elsewhere it does nothing.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let (Ok(off), Ok(n)) = (libc::off64_t::try_from(offset), libc::off64_t::try_from(len)) else { return };
        // SAFETY: a plain system call on a descriptor we hold open; it reads
        // no memory of ours.
        let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Alignment of direct writes: offsets, lengths and buffer addresses (the
/// largest logical block size in use, so it suits every device).
pub const DIRECT_ALIGN: usize = 4096;

/// A second handle on an output file that writes around the page cache
/// (Linux `O_DIRECT`): the device reads the bytes straight from the buffer
/// given, typically the mapped pages of an input, so a large copy costs no
/// CPU copy into the page cache and no write-back later. Only aligned runs
/// ([`DIRECT_ALIGN`]) can go this way; [`open`](Self::open) says `None` where
/// the file system refuses `O_DIRECT` (tmpfs) and elsewhere than Linux. The
/// caller still fsyncs the file through its own handle to make it durable.
#[derive(Debug)]
pub struct DirectOut {
    file: File,
}

impl DirectOut {
    /// Opens `path` (an existing file) for direct writes, or `None` when the
    /// file system refuses them.
    pub fn open(path: &Path) -> Option<Self> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path).ok()?;
            Some(Self { file })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = path;
            None
        }
    }

    /// Whether `buf` at `offset` can be written directly.
    pub fn aligned(buf: &[u8], offset: u64) -> bool {
        const A: u64 = DIRECT_ALIGN as u64;
        buf.as_ptr().addr().is_multiple_of(DIRECT_ALIGN)
            && buf.len().is_multiple_of(DIRECT_ALIGN)
            && offset.is_multiple_of(A)
    }

    /// Writes all of `buf` at `offset`; an unaligned run is refused
    /// (`InvalidInput`) without writing.
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        if !Self::aligned(buf, offset) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "unaligned direct write"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file.write_all_at(buf, offset)
        }
        #[cfg(not(unix))]
        {
            let _ = (buf, offset);
            Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "no direct writes here"))
        }
    }
}

/// Makes the C allocator (glibc) serve every allocation of `bytes` or more
/// with its own memory map, and so return it to the system when it is freed.
///
/// glibc raises that threshold by itself, up to 32 MiB, each time a mapped
/// block is freed; after that, the tables a pass builds and drops (a per-key
/// index of 20 MiB, say) come from the heap, where freed memory stays with the
/// process, and the next pass's tables add to it. A program calls this once at
/// start (the library never does); elsewhere than glibc it does nothing.
pub fn pin_mmap_threshold(bytes: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let Ok(n) = libc::c_int::try_from(bytes) else { return };
        // SAFETY: mallopt only sets an allocator parameter; it takes no pointer.
        let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, n) };
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = bytes;
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_refused_with_their_path() {
        let dir = std::env::temp_dir();
        let err = MappedFile::open(&dir).expect_err("a directory is not a database");
        assert!(matches!(&err, Error::NotRegularFile { path, kind: "directory" } if path == &dir), "{err:?}");
        assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
    }

    #[test]
    fn changes_after_opening_are_told() {
        use std::io::{Seek, SeekFrom, Write};
        let p = std::env::temp_dir().join(format!("etcdsnap-mmap-change-{}", std::process::id()));
        std::fs::write(&p, vec![1u8; 8192]).unwrap();
        let m = MappedFile::open(&p).unwrap();
        assert!(m.check_unchanged().is_ok());
        assert_eq!(m.path(), p);
        // Written in place, same size (after a tick of the file system's clock).
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.seek(SeekFrom::Start(100)).unwrap();
        f.write_all(b"x").unwrap();
        let e = m.check_unchanged().unwrap_err();
        assert!(matches!(&e, Error::InputChanged { what, .. } if what == "it was written in place"), "{e}");
        assert_eq!(e.kind(), crate::ErrorKind::InputChanged);
        // Truncated.
        let m = MappedFile::open(&p).unwrap();
        f.set_len(4096).unwrap();
        let e = m.check_unchanged().unwrap_err();
        assert!(e.to_string().contains("its size went from 8192 to 4096 bytes"), "{e}");
        assert!(e.to_string().starts_with(&format!("{}: the file changed while being read", p.display())), "{e}");
        drop(m);
        std::fs::remove_file(&p).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_refused() {
        let err = MappedFile::open("/dev/zero").expect_err("a device is not a database");
        assert!(matches!(err, Error::NotRegularFile { kind: "character device", .. }), "{err:?}");
        assert_eq!(err.to_string(), "/dev/zero is not a regular file but a character device");
    }
}
