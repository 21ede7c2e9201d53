//! Writing an output file in order on a second thread, hashing it on the way,
//! so the SHA-256 trailer needs no second pass over what was written.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

use etcdsnap_io::{Cancel, DirectOut, DIRECT_ALIGN};
use sha2::{Digest, Sha256};

use crate::error::{MvccError, Result};
use crate::progress::Progress;
use crate::trailer::TRAILER_LEN;

/// Bytes a buffer of the writer thread holds: up to four are alive at once
/// (filling, two queued, being written), so this is most of a rebuilt
/// output's fixed memory.
const CHUNK: usize = 1 << 20;

/// Room a chunk has beyond [`CHUNK`]: its alignment, and a page that
/// crosses the end written in parts (header, data, padding).
const SLACK: usize = 68 << 10;

/// Bytes per write of pieces that are slices of a mapped input (no buffer
/// of ours: the size only sets the number of system calls and checks).
const MAPPED_CHUNK: usize = 4 << 20;

/// Starts the write-back of what was written every this many bytes.
const WRITEBACK_EVERY: u64 = 64 << 20;

/// Keeps the kernel writing an output back while it is being written, a
/// window behind, so the fsync that commits it does not wait for all of it.
struct Writeback {
    start: u64,
    pos: u64,
}

impl Writeback {
    fn new(file: &mut File) -> io::Result<Self> {
        use std::io::Seek;
        let pos = file.stream_position()?;
        Ok(Self { start: pos, pos })
    }

    fn wrote(&mut self, file: &File, n: usize) {
        self.pos = self.pos.saturating_add(n as u64);
        let pending = self.pos.saturating_sub(self.start);
        if pending >= WRITEBACK_EVERY {
            etcdsnap_io::start_writeback(file, self.start, pending);
            self.start = self.pos;
        }
    }
}

/// A buffer of the writer thread: its bytes start at `pad`, where the
/// allocation is aligned for a direct write ([`DIRECT_ALIGN`]).
pub struct Chunk {
    buf: Vec<u8>,
    pad: usize,
}

impl Chunk {
    fn new() -> Self {
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK.saturating_add(SLACK));
        let pad = buf.as_ptr().addr().wrapping_neg() % DIRECT_ALIGN;
        buf.resize(pad, 0);
        Self { buf, pad }
    }

    fn bytes(&self) -> &[u8] {
        self.buf.get(self.pad..).unwrap_or_default()
    }

    fn len(&self) -> usize {
        self.buf.len().saturating_sub(self.pad)
    }

    /// Empties the buffer, aligned again (a write larger than a chunk may have moved it).
    fn clear(&mut self) {
        self.buf.clear();
        self.pad = self.buf.as_ptr().addr().wrapping_neg() % DIRECT_ALIGN;
        self.buf.resize(self.pad, 0);
    }
}

/// The writing end handed to the producer: fills chunks and passes them on.
pub struct ChunkWriter<'p> {
    buf: Chunk,
    full: SyncSender<Chunk>,
    empty: Receiver<Chunk>,
    written: u64,
    cancel: Cancel,
    /// Told the bytes handed over at each chunk, of `total`.
    progress: &'p mut dyn Progress,
    total: u64,
}

impl std::fmt::Debug for ChunkWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkWriter").field("written", &self.written).field("total", &self.total).finish()
    }
}

impl ChunkWriter<'_> {
    fn send(&mut self) -> io::Result<()> {
        // Not ErrorKind::Interrupted: write_all retries on that.
        if self.cancel.reason().is_some() {
            return Err(io::Error::other("interrupted"));
        }
        if self.buf.len() == 0 {
            return Ok(());
        }
        let next = self.empty.try_recv().unwrap_or_else(|_| Chunk::new());
        let chunk = std::mem::replace(&mut self.buf, next);
        self.progress.update("writing", self.written, self.total);
        self.full.send(chunk).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "output writer stopped"))
    }
}

impl Write for ChunkWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // A chunk ends only where its length is aligned (whole pages, when
        // pages are written), and before a write that would not fit, so
        // that chunks stay in their aligned allocation and start at aligned
        // offsets: direct writes all along.
        let aligned = |n: usize| n.is_multiple_of(DIRECT_ALIGN);
        let len = self.buf.len();
        if len > 0 && aligned(len) && len.saturating_add(data.len()) > CHUNK {
            self.send()?;
        }
        self.buf.buf.extend_from_slice(data);
        self.written = self.written.saturating_add(data.len() as u64);
        if self.buf.len() >= CHUNK && aligned(self.buf.len()) {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Writes the chunks in order from the file's position: around the page
/// cache through `direct` where a chunk is aligned (no CPU copy, no
/// write-back later), else through the page cache; leaves the file's
/// position after the last byte.
fn drain(file: &mut File, direct: Option<DirectOut>, full: Receiver<Chunk>, empty: Sender<Chunk>) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::FileExt;
    let mut direct = direct;
    let mut pos = file.stream_position()?;
    let mut behind = Writeback::new(file)?;
    for mut chunk in full {
        let data = chunk.bytes();
        let mut written = false;
        if let Some(d) = direct.as_ref().filter(|_| DirectOut::aligned(data, pos)) {
            match d.write_all_at(data, pos) {
                Ok(()) => written = true,
                // Refused by the file system: the page cache from here on
                // (what a partial write left is written over).
                Err(e) if matches!(e.kind(), io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported) => {
                    direct = None;
                }
                Err(e) => return Err(e),
            }
        }
        if !written {
            file.write_all_at(data, pos)?;
        }
        let n = data.len();
        pos = pos.saturating_add(n as u64);
        behind.wrote(file, n);
        chunk.clear();
        // The producer may be gone already; the buffer is then simply dropped.
        let _ = empty.send(chunk);
    }
    file.seek(SeekFrom::Start(pos))?;
    Ok(())
}

/// Hashes the chunks on their way to the writer: a stage of its own, so that
/// the hashing, the writing and the producing share the cores as their costs
/// fall (the kernel's copy into the page cache costs as much as the SHA-256
/// on some machines, and a light producer would leave a core idle).
fn hash_on(full: Receiver<Chunk>, to_writer: SyncSender<Chunk>) -> [u8; TRAILER_LEN] {
    let mut hasher = Sha256::new();
    for chunk in full {
        hasher.update(chunk.bytes());
        if to_writer.send(chunk).is_err() {
            // The writer failed; its error is the one reported.
            break;
        }
    }
    hasher.finalize().into()
}

/// Runs `produce` with a writer whose bytes go to `file` (from its current
/// position) on another thread, hashed with SHA-256 when `hash` is set.
/// Returns what `produce` returned and the digest. Once `cancel` is set the
/// writer fails at its next chunk, which ends `produce`. `progress` is told
/// the bytes written so far of `total` (phase `writing`) at every chunk.
///
/// With `direct` (the path of `file`), aligned chunks go to the device around
/// the page cache ([`DirectOut`]) where the file system allows it.
pub fn write_hashed<T>(
    file: &mut File,
    path: &Path,
    direct: Option<&Path>,
    hash: bool,
    cancel: &Cancel,
    progress: (&mut dyn Progress, u64),
    produce: impl FnOnce(&mut ChunkWriter<'_>) -> Result<T>,
) -> Result<(T, Option<[u8; TRAILER_LEN]>)> {
    let (full_tx, full_rx) = sync_channel::<Chunk>(2);
    let (empty_tx, empty_rx) = channel::<Chunk>();
    let direct = direct.and_then(DirectOut::open);
    std::thread::scope(|scope| {
        let (hasher, write_rx) = if hash {
            let (hashed_tx, hashed_rx) = sync_channel::<Chunk>(1);
            (Some(scope.spawn(move || hash_on(full_rx, hashed_tx))), hashed_rx)
        } else {
            (None, full_rx)
        };
        let writer = scope.spawn(move || drain(file, direct, write_rx, empty_tx));
        let mut w = ChunkWriter {
            buf: Chunk::new(),
            full: full_tx,
            empty: empty_rx,
            written: 0,
            cancel: cancel.clone(),
            progress: progress.0,
            total: progress.1,
        };
        let produced = produce(&mut w).and_then(|t| {
            w.flush().map_err(|source| MvccError::Io { path: path.to_path_buf(), source })?;
            Ok(t)
        });
        drop(w);
        let panicked = |what: &str| MvccError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(format!("{what} panicked")),
        };
        let digest = hasher.map(|h| h.join().map_err(|_| panicked("output hasher thread"))).transpose();
        let written = writer
            .join()
            .map_err(|_| panicked("output writer thread"))?
            .map_err(|source| MvccError::Io { path: path.to_path_buf(), source });
        // An I/O error of the writer explains a failed producer better than its own error.
        written?;
        let digest = digest?;
        Ok((produced?, digest))
    })
}

/// One piece of an output written by [`write_pieces`].
#[derive(Debug, Clone, Copy)]
pub enum Piece<'a> {
    /// Bytes made in memory.
    Bytes(&'a [u8]),
    /// Bytes of an input file, also mapped: hashed from the map, copied by the
    /// kernel (`copy_file_range` where the file system has it) from `file` at
    /// `offset`, so they never pass through a buffer of ours.
    Carried {
        /// The mapped bytes.
        bytes: &'a [u8],
        /// The same bytes in the file.
        file: &'a File,
        /// Where they start in it.
        offset: u64,
    },
}

/// Writes `pieces` in order to `out` (from its current position), hashing
/// them with SHA-256 when `hash` is set: the output of a patch, mostly pages
/// of the input. Stops at the next chunk once any of `cancel` is set.
///
/// With `direct` (the path of `out`), carried pieces that are page-aligned go
/// to the device around the page cache ([`DirectOut`]) on a thread of their
/// own while this one hashes: no CPU copy and no write-back for the bulk of
/// the file. Where the file system refuses that, everything is written
/// through the page cache (`copy_file_range` for carried pieces).
pub fn write_pieces(
    out: &mut File,
    path: &Path,
    direct: Option<&Path>,
    hash: bool,
    cancel: &[&Cancel],
    pieces: &[Piece<'_>],
) -> Result<Option<[u8; TRAILER_LEN]>> {
    use std::io::{Seek, SeekFrom};
    let io = |source| MvccError::Io { path: path.to_path_buf(), source };
    let start = out.stream_position().map_err(io)?;
    if let Some(d) = direct.and_then(DirectOut::open) {
        if let Some(digest) = write_pieces_direct(out, path, &d, start, hash, cancel, pieces)? {
            return Ok(digest);
        }
        // Refused by the file system at the first write: start over buffered.
        out.seek(SeekFrom::Start(start)).map_err(io)?;
    }
    write_pieces_buffered(out, path, hash, cancel, pieces)
}

/// Where each piece starts, from `start`.
fn offsets(start: u64, pieces: &[Piece<'_>]) -> Vec<u64> {
    let mut pos = start;
    pieces
        .iter()
        .map(|p| {
            let at = pos;
            pos = pos.saturating_add(p.bytes().len() as u64);
            at
        })
        .collect()
}

/// [`write_pieces`] with aligned carried pieces written directly; `None` when
/// the file system refused the first direct write (nothing counts as written).
fn write_pieces_direct(
    out: &mut File,
    path: &Path,
    direct: &DirectOut,
    start: u64,
    hash: bool,
    cancel: &[&Cancel],
    pieces: &[Piece<'_>],
) -> Result<Option<Option<[u8; TRAILER_LEN]>>> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::FileExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    let io = |source| MvccError::Io { path: path.to_path_buf(), source };
    let at = offsets(start, pieces);
    let is_direct = |p: &Piece<'_>, off: u64| matches!(p, Piece::Carried { .. }) && DirectOut::aligned(p.bytes(), off);
    let stop = AtomicBool::new(false);
    let stopped = || stop.load(Ordering::Relaxed) || cancel.iter().any(|c| c.reason().is_some());
    let (digest, direct_result) = std::thread::scope(|s| {
        let writer = s.spawn(|| -> std::io::Result<()> {
            for (p, &off) in pieces.iter().zip(&at) {
                if !is_direct(p, off) {
                    continue;
                }
                let mut pos = off;
                for chunk in p.bytes().chunks(MAPPED_CHUNK) {
                    if stopped() {
                        return Ok(());
                    }
                    direct.write_all_at(chunk, pos)?;
                    pos = pos.saturating_add(chunk.len() as u64);
                }
            }
            Ok(())
        });
        let digest = (|| -> Result<Option<[u8; TRAILER_LEN]>> {
            let mut hasher = hash.then(Sha256::new);
            for (p, &off) in pieces.iter().zip(&at) {
                let direct_piece = is_direct(p, off);
                if let (Piece::Carried { .. }, false) = (p, direct_piece) {
                    // An unaligned carried piece (not in files bbolt writes): through the page cache.
                    out.seek(SeekFrom::Start(off)).map_err(io)?;
                    write_pieces_buffered(out, path, false, cancel, std::slice::from_ref(p))?;
                }
                let mut pos = off;
                for chunk in p.bytes().chunks(MAPPED_CHUNK) {
                    for c in cancel {
                        c.check()?;
                    }
                    if let Some(h) = hasher.as_mut() {
                        h.update(chunk);
                    }
                    if let Piece::Bytes(_) = p {
                        out.write_all_at(chunk, pos).map_err(io)?;
                    }
                    pos = pos.saturating_add(chunk.len() as u64);
                }
            }
            Ok(hasher.map(|h| h.finalize().into()))
        })();
        if digest.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let direct_result = writer.join();
        (digest, direct_result)
    });
    let digest = digest?;
    match direct_result {
        Ok(Ok(())) => {}
        Ok(Err(e)) if matches!(e.kind(), std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported) => {
            return Ok(None);
        }
        Ok(Err(e)) => return Err(io(e)),
        Err(_) => return Err(MvccError::WorkerPanicked("direct writer")),
    }
    for c in cancel {
        c.check()?;
    }
    let end = at.last().zip(pieces.last()).map_or(start, |(o, p)| o.saturating_add(p.bytes().len() as u64));
    out.seek(SeekFrom::Start(end)).map_err(io)?;
    Ok(Some(digest))
}

impl<'a> Piece<'a> {
    /// The piece's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        match *self {
            Piece::Bytes(b) | Piece::Carried { bytes: b, .. } => b,
        }
    }
}

/// [`write_pieces`] through the page cache, in order.
fn write_pieces_buffered(
    out: &mut File,
    path: &Path,
    hash: bool,
    cancel: &[&Cancel],
    pieces: &[Piece<'_>],
) -> Result<Option<[u8; TRAILER_LEN]>> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |source| MvccError::Io { path: path.to_path_buf(), source };
    let mut hasher = hash.then(Sha256::new);
    let mut behind = Writeback::new(out).map_err(io)?;
    for piece in pieces {
        let (bytes, carried) = match *piece {
            Piece::Bytes(b) => (b, None),
            Piece::Carried { bytes, file, offset } => (bytes, Some((file, offset))),
        };
        let mut src = match carried {
            Some((file, offset)) => {
                // A handle of our own: the map's file keeps its position.
                let mut f = file.try_clone().map_err(io)?;
                f.seek(SeekFrom::Start(offset)).map_err(io)?;
                Some(f)
            }
            None => None,
        };
        for chunk in bytes.chunks(MAPPED_CHUNK) {
            for c in cancel {
                c.check()?;
            }
            if let Some(h) = hasher.as_mut() {
                h.update(chunk);
            }
            match src.as_mut() {
                Some(f) => {
                    let want = chunk.len() as u64;
                    let copied = std::io::copy(&mut Read::by_ref(f).take(want), out).map_err(io)?;
                    if copied != want {
                        return Err(io(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the input ended while its pages were copied",
                        )));
                    }
                }
                None => out.write_all(chunk).map_err(io)?,
            }
            behind.wrote(out, chunk.len());
        }
    }
    Ok(hasher.map(|h| h.finalize().into()))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    /// A patch-shaped output (pages made in memory, a long run of an input's
    /// pages, a short tail) comes out byte for byte with its digest: written
    /// directly where the file system allows it (the temporary directory
    /// here), through the page cache where it does not (tmpfs), and without
    /// direct writes at all; an unaligned carried run goes through the page
    /// cache in every case.
    #[test]
    fn pieces_are_written_in_order_directly_or_not() {
        let dir = std::env::temp_dir().join(format!("etcdsnap-pieces-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = dir.join("input");
        let data: Vec<u8> = (0..(3 * MAPPED_CHUNK + 5 * 4096)).map(|i| (i * 7 % 253) as u8).collect();
        std::fs::write(&input, &data).unwrap();
        let map = etcdsnap_io::MappedFile::open(&input).unwrap();
        let head: Vec<u8> = (0..8192).map(|i| (i % 13) as u8).collect();
        let tail: Vec<u8> = (0..1000).map(|i| (i % 17) as u8).collect();
        let carried = Piece::Carried { bytes: &map[4096..], file: map.file(), offset: 4096 };
        let odd = Piece::Carried { bytes: &map[100..4196], file: map.file(), offset: 100 };
        let cases: Vec<(Vec<Piece<'_>>, Vec<u8>)> = vec![
            (vec![Piece::Bytes(&head), carried, Piece::Bytes(&tail)], [&head[..], &data[4096..], &tail].concat()),
            (vec![Piece::Bytes(&tail), odd, carried], [&tail[..], &data[100..4196], &data[4096..]].concat()),
        ];
        let mut dirs = vec![(dir.clone(), true), (dir.clone(), false)];
        if std::path::Path::new("/dev/shm").is_dir() {
            dirs.push((std::path::PathBuf::from("/dev/shm"), true));
        }
        for (out_dir, direct) in dirs {
            for (i, (pieces, want)) in cases.iter().enumerate() {
                let path = out_dir.join(format!("etcdsnap-pieces-out-{}-{i}", std::process::id()));
                let mut f = File::create(&path).unwrap();
                let digest =
                    write_pieces(&mut f, &path, direct.then_some(path.as_path()), true, &[&Cancel::default()], pieces)
                        .unwrap();
                f.write_all(b"END").unwrap();
                drop(f);
                let got = std::fs::read(&path).unwrap();
                assert_eq!(&got[..want.len()], &want[..], "{} direct {direct} case {i}", out_dir.display());
                assert_eq!(&got[want.len()..], b"END", "the file continues where the pieces end");
                assert_eq!(digest, Some(crate::trailer::digest(want)));
                std::fs::remove_file(&path).unwrap();
            }
        }
        drop(map);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writes_in_order_and_hashes() {
        let dir = std::env::temp_dir().join(format!("etcdsnap-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out");
        let data: Vec<u8> = (0..(3 * CHUNK + 12345)).map(|i| (i * 31 % 251) as u8).collect();
        // Odd pieces (every chunk unaligned), pages (aligned chunks, then an
        // odd tail), each with and without direct writes, from a position
        // that is not 0: the file holds the bytes in order and continues
        // where they end.
        for (piece, direct) in [(100_003, false), (100_003, true), (4096, false), (4096, true)] {
            let mut f = File::create(&path).unwrap();
            f.write_all(&[7u8; 4096]).unwrap();
            let ((), digest) = write_hashed(
                &mut f,
                &path,
                direct.then_some(path.as_path()),
                true,
                &Cancel::default(),
                (&mut crate::progress::NoProgress, 0),
                |w| {
                    for p in data.chunks(piece) {
                        w.write_all(p).unwrap();
                    }
                    Ok(())
                },
            )
            .unwrap();
            f.write_all(b"END").unwrap();
            drop(f);
            let got = std::fs::read(&path).unwrap();
            assert_eq!(got.len(), 4096 + data.len() + 3, "piece {piece} direct {direct}");
            assert!(got[..4096].iter().all(|&b| b == 7), "piece {piece} direct {direct}");
            assert!(got[4096..4096 + data.len()] == data[..], "piece {piece} direct {direct}");
            assert_eq!(&got[4096 + data.len()..], b"END", "piece {piece} direct {direct}");
            assert_eq!(digest, Some(crate::trailer::digest(&data)));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
