//! Reading a file in order through `pread` into one reused buffer, for the
//! passes that stream an input once (the SHA-256 trailer check), or through
//! the memory map — whichever costs less on the CPU at hand, as measured:
//!
//! - Intel Xeon (a 2-core VM, 1.7 GB snapshot in the page cache, issue 22):
//!   SHA-256 over the map took 1.90 s, over `read()` into a reused 1 MiB
//!   buffer 1.22 s, as `openssl dgst` (the TLB walks of touching page cache
//!   through 4 KiB mappings, not the hash; `MAP_POPULATE`/`madvise` did not
//!   help).
//! - AMD EPYC (the same kind of VM and file): `verify` (the hash beside the
//!   checks) took 0.88 s with the map and 0.98 s with `pread` (medians of 5,
//!   openssl 1.08 s): the copy costs more than the mapping saves.
//!
//! So the default follows the CPU vendor (`/proc/cpuinfo`): the map on AMD,
//! `pread` elsewhere. `ETCDSNAP_SEQUENTIAL=map|read` overrides it, so both can
//! be measured on any machine. Random access (the B+tree walks) always reads
//! the map.

use std::fs::File;
use std::path::Path;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Bytes per read: large enough that system calls cost nothing, small
/// enough that the buffer stays in the CPU's caches while it is hashed.
pub const CHUNK: usize = 1 << 20;

/// How sequential passes read their input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequential {
    /// `pread` into a reused buffer (the default).
    Read,
    /// Through the memory map (`ETCDSNAP_SEQUENTIAL=map`).
    Map,
}

/// The mode of this process, decided once: `ETCDSNAP_SEQUENTIAL` (`map` or
/// `read`) when set, else the map on AMD CPUs and `pread` on others (see the
/// module docs for the measurements).
pub fn sequential() -> Sequential {
    static MODE: OnceLock<Sequential> = OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("ETCDSNAP_SEQUENTIAL").as_deref() {
        Ok("map") => Sequential::Map,
        Ok("read") => Sequential::Read,
        _ => by_cpu(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()),
    })
}

/// The measured-cheaper mode for the CPU `/proc/cpuinfo` describes.
fn by_cpu(cpuinfo: &str) -> Sequential {
    let vendor =
        cpuinfo.lines().find_map(|l| l.strip_prefix("vendor_id").map(|v| v.trim_start_matches([' ', '\t', ':'])));
    match vendor {
        Some("AuthenticAMD") => Sequential::Map,
        _ => Sequential::Read,
    }
}

/// Reads `len` bytes of a file from `start`, in order, one chunk at a time
/// into one reused buffer.
#[derive(Debug)]
pub struct SeqReader<'f> {
    file: &'f File,
    path: &'f Path,
    pos: u64,
    end: u64,
    chunk: usize,
    buf: Vec<u8>,
}

impl<'f> SeqReader<'f> {
    /// A reader of `file` (named `path` in errors) over `start..start + len`,
    /// `chunk` bytes at a time ([`CHUNK`] is the measured default).
    pub fn new(file: &'f File, path: &'f Path, start: u64, len: u64, chunk: usize) -> Self {
        Self { file, path, pos: start, end: start.saturating_add(len), chunk: chunk.max(1), buf: Vec::new() }
    }

    /// The next chunk, `None` at the end of the range. A file that ends
    /// before it (it shrank while read) is [`Error::InputChanged`]; short
    /// reads and interrupted calls are retried.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>> {
        let left = self.end.saturating_sub(self.pos);
        if left == 0 {
            return Ok(None);
        }
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(self.chunk);
        self.buf.resize(n, 0);
        read_exact_at(self.file, &mut self.buf, self.pos).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::InputChanged {
                path: self.path.to_path_buf(),
                what: format!("it ended at or before byte {} while being read", self.pos.saturating_add(n as u64)),
            },
            _ => Error::io(self.path, e),
        })?;
        self.pos = self.pos.saturating_add(n as u64);
        Ok(Some(&self.buf))
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    fn scratch(name: &str, bytes: &[u8]) -> (std::path::PathBuf, File) {
        let p = std::env::temp_dir().join(format!("etcdsnap-io-seq-{name}-{}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        let f = File::open(&p).unwrap();
        (p, f)
    }

    fn collect(r: &mut SeqReader<'_>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk()? {
            out.extend_from_slice(c);
        }
        Ok(out)
    }

    #[test]
    fn the_mode_follows_the_cpu_vendor() {
        assert_eq!(by_cpu("processor\t: 0\nvendor_id\t: AuthenticAMD\n"), Sequential::Map);
        assert_eq!(by_cpu("processor\t: 0\nvendor_id\t: GenuineIntel\n"), Sequential::Read);
        assert_eq!(by_cpu(""), Sequential::Read);
    }

    #[test]
    fn reads_the_range_in_order_in_chunks() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let (p, f) = scratch("range", &data);
        for chunk in [1, 7, 4096, 1 << 20] {
            let mut r = SeqReader::new(&f, &p, 3, 9_000, chunk);
            assert_eq!(collect(&mut r).unwrap(), &data[3..9_003], "chunk {chunk}");
            assert!(r.next_chunk().unwrap().is_none(), "stays at the end");
        }
        // An empty range has no chunk.
        assert!(SeqReader::new(&f, &p, 10, 0, 16).next_chunk().unwrap().is_none());
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_file_that_shrinks_while_read_is_reported_as_changed() {
        let (p, f) = scratch("shrink", &[7u8; 8192]);
        let mut r = SeqReader::new(&f, &p, 0, 8192, 4096);
        assert_eq!(r.next_chunk().unwrap().map(<[u8]>::len), Some(4096));
        // Another process truncates it.
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(5000).unwrap();
        let e = r.next_chunk().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InputChanged, "{e}");
        // A range past the end from the start: the same.
        let e = SeqReader::new(&f, &p, 0, 9000, 1 << 20).next_chunk().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InputChanged);
        std::fs::remove_file(&p).unwrap();
    }
}
