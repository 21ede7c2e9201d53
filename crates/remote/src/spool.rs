//! One object streamed once into a local spool file while its SHA-256 is
//! computed on the fly, so the trailer check is done when the download is.
//!
//! Why a spool and not ranged reads: the structure check walks pages in
//! tree order (random access), the MVCC checks, the status hash and HashKV
//! walk them again; ranged GETs would cost one request per page walk and
//! per pass, and a mid-walk change of the object could go unseen. One
//! sequential GET (resumed by object_store from the byte reached on a reset)
//! reads each byte once, and the existing local checks run on the file.
//! Disk use is bounded by the caller: one spool per running task.
//!
//! Where the time goes (issue 24; docs/benchmarks.md has the figures and
//! `tools/bench-remote.sh` measures them): the download, the SHA-256 and
//! the spool write overlap on threads of their own, the checks
//! ([`crate::check`]: verify's walk with HashKV beside it, then status) run
//! on the finished file. On two cores with the server on the same machine
//! the run is CPU-bound, not waiting on the network: a 1.8 GB object costs
//! the client about 1.2 s of SHA-256, 1.3 s receiving (0.5 s for the plain
//! GET, whose buffers stay hot; here the chunks queued for the threads
//! make the client read into fresh pages) and 0.3–2 s copying into the page
//! cache (the same `dd` to ext4 varies that much on this VM with its memory
//! state), then 0.7 s of checks. Overlapping the checks with the download
//! (reads of the spool waiting for the bytes to arrive) would not shorten
//! that on two cores; with more cores it would. Cheaper first: the checks'
//! three walks (verify, HashKV, status) each read the key bucket again.
//! Designs measured and not kept: copying the chunks into a pool of eight
//! 1 MiB blocks (no fresh receive pages, but slower overall: 3.3 s against
//! 2.6 s, the extra copy of every byte cost more than the faults it saved;
//! a spool on tmpfs was no faster either), `writev` of the queued chunks instead
//! of a `BufWriter` (no difference beyond the noise). Ranged reads instead
//! of a spool would fetch every page again for each walk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use etcdsnap_mvcc::trailer::{self, Trailer, TRAILER_LEN};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};

use crate::error::{RemoteError, Result};

/// Chunks (of the HTTP body, typically 8–64 KiB) each spool thread may lag behind the download.
const QUEUED_CHUNKS: usize = 64;

/// An object as listed: what the read is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its URL (`s3://bucket/key`).
    pub url: String,
    /// The store root it lives in (see [`crate::RemoteUrl::root`]).
    pub root: String,
    /// The key in the store.
    pub key: ObjectPath,
    /// Size in bytes, as listed.
    pub size: u64,
    /// Last-modified time, as listed.
    pub last_modified: DateTime<Utc>,
    /// ETag (or generation) as listed; the read must see the same.
    pub etag: Option<String>,
}

impl ObjectInfo {
    pub(crate) fn from_meta(root: &str, m: &object_store::ObjectMeta) -> Self {
        Self {
            url: format!("{root}/{}", m.location),
            root: root.to_string(),
            key: m.location.clone(),
            size: m.size,
            last_modified: m.last_modified,
            etag: m.e_tag.clone(),
        }
    }
}

/// A directory of spool files, removed (with what is left in it) on drop.
#[derive(Debug)]
pub struct SpoolDir {
    dir: PathBuf,
    next: AtomicU64,
}

impl SpoolDir {
    /// A new directory `etcdsnap-spool.<pid>.<n>` under `base` (default: the system temp dir).
    pub fn new(base: Option<&Path>) -> Result<Self> {
        static RUN: AtomicU64 = AtomicU64::new(0);
        let base = base.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
        let n = RUN.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("etcdsnap-spool.{}.{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| RemoteError::local(&dir, e))?;
        Ok(Self { dir, next: AtomicU64::new(0) })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("object-{n}.db"))
    }
}

impl Drop for SpoolDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An object spooled to a local file (removed on drop), its trailer checked.
#[derive(Debug)]
pub struct Spooled {
    /// The local copy.
    pub path: PathBuf,
    /// The object as read (size and ETag equal to the listing's).
    pub object: ObjectInfo,
    /// The trailer, its digest computed while downloading.
    pub trailer: Trailer,
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The SHA-256 of the image part of a stream, and the trailer bytes after it.
struct TrailerHasher {
    image_len: u64,
    seen: u64,
    sha: Sha256,
    tail: [u8; TRAILER_LEN],
    has_trailer: bool,
}

impl TrailerHasher {
    fn new(size: u64) -> Self {
        let has_trailer = trailer::has_trailer(size);
        let image_len = if has_trailer { size.saturating_sub(TRAILER_LEN as u64) } else { size };
        Self { image_len, seen: 0, sha: Sha256::new(), tail: [0; TRAILER_LEN], has_trailer }
    }

    fn update(&mut self, chunk: &[u8]) {
        let left = usize::try_from(self.image_len.saturating_sub(self.seen)).unwrap_or(usize::MAX);
        let (image, rest) = chunk.split_at(left.min(chunk.len()));
        if self.has_trailer {
            self.sha.update(image);
            let at = usize::try_from(self.seen.saturating_add(image.len() as u64).saturating_sub(self.image_len))
                .unwrap_or(TRAILER_LEN);
            for (i, b) in rest.iter().enumerate() {
                if let Some(slot) = at.checked_add(i).and_then(|p| self.tail.get_mut(p)) {
                    *slot = *b;
                }
            }
        }
        self.seen = self.seen.saturating_add(chunk.len() as u64);
    }

    fn finish(self) -> Trailer {
        if !self.has_trailer {
            return Trailer::Absent;
        }
        let computed: [u8; TRAILER_LEN] = self.sha.finalize().into();
        if computed == self.tail {
            Trailer::Valid(self.tail)
        } else {
            Trailer::Mismatch { stored: self.tail, computed }
        }
    }
}

fn changed(o: &ObjectInfo, message: impl Into<String>) -> RemoteError {
    RemoteError::Changed { url: o.url.clone(), message: message.into() }
}

fn unreadable(o: &ObjectInfo, message: impl Into<String>) -> RemoteError {
    RemoteError::Unreadable { url: o.url.clone(), message: message.into() }
}

/// An entity tag's opaque part: without the `W/` of a weak tag and without
/// its quotes. Listings and headers quote differently — Azure's List Blobs
/// gives `0x8D…` and Get Blob `"0x8D…"`, fake-gcs-server's XML listing drops
/// the quotes its headers carry — so tags are compared by this part.
fn opaque(etag: &str) -> &str {
    let t = etag.strip_prefix("W/").unwrap_or(etag);
    t.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(t)
}

/// Whether two entity tags name the same version (both absent counts as the same).
fn same_etag(a: Option<&str>, b: Option<&str>) -> bool {
    a.map(opaque) == b.map(opaque)
}

/// The ETag now, compared with the listing's: `Err(Changed)` when it moved.
async fn still_same(store: &dyn ObjectStore, o: &ObjectInfo) -> Result<()> {
    match store.head(&o.key).await {
        Ok(m) if !same_etag(m.e_tag.as_deref(), o.etag.as_deref()) || m.size != o.size => Err(changed(
            o,
            format!(
                "listed with ETag {} and {} bytes, now ETag {} and {} bytes",
                o.etag.as_deref().unwrap_or("-"),
                o.size,
                m.e_tag.as_deref().unwrap_or("-"),
                m.size
            ),
        )),
        Ok(_) => Ok(()),
        Err(object_store::Error::NotFound { .. }) => Err(changed(o, "deleted while it was read")),
        Err(e) => Err(unreadable(o, format!("HEAD after the read: {e}"))),
    }
}

/// Streams `o` into a new file of `dir`, hashing it on the way. The GET is
/// conditional on the listed ETag; a HEAD after the last byte confirms it
/// still holds, so an object replaced during the read is `Changed`.
pub async fn spool(store: &dyn ObjectStore, o: &ObjectInfo, dir: &SpoolDir) -> Result<Spooled> {
    // If-Match takes the quoted form (RFC 9110), however the listing spelled it.
    let if_match = o.etag.as_deref().map(|e| format!("\"{}\"", opaque(e)));
    let opts = GetOptions { if_match, ..GetOptions::default() };
    let got = match store.get_opts(&o.key, opts).await {
        Ok(g) => g,
        Err(object_store::Error::Precondition { .. }) => return Err(changed(o, "ETag no longer the listed one")),
        Err(object_store::Error::NotFound { .. }) => return Err(changed(o, "deleted since it was listed")),
        Err(e) => return Err(unreadable(o, format!("GET: {e}"))),
    };
    if got.meta.size != o.size || (o.etag.is_some() && !same_etag(got.meta.e_tag.as_deref(), o.etag.as_deref())) {
        return Err(changed(
            o,
            format!(
                "listed with ETag {} and {} bytes, read ETag {} and {} bytes",
                o.etag.as_deref().unwrap_or("-"),
                o.size,
                got.meta.e_tag.as_deref().unwrap_or("-"),
                got.meta.size
            ),
        ));
    }
    let path = dir.file();
    // The guard removes a partial file on every early return.
    let mut out = Spooled { path, object: o.clone(), trailer: Trailer::Absent };
    let file = std::fs::File::create(&out.path).map_err(|e| RemoteError::local(&out.path, e))?;
    // The SHA-256 and the disk write each run on a thread of their own, fed
    // the body's chunks (reference-counted, not copied) through bounded
    // queues, so the download, the hashing and the write overlap: in one
    // task they added up to 2.4 s for a 1.8 GB object whose GET alone takes 1.0 s.
    let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUED_CHUNKS);
    let (write_tx, mut write_rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUED_CHUNKS);
    let mut hasher = TrailerHasher::new(o.size);
    let hashing = tokio::task::spawn_blocking(move || {
        while let Some(c) = hash_rx.blocking_recv() {
            hasher.update(&c);
        }
        hasher
    });
    let writing = tokio::task::spawn_blocking(move || {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        while let Some(c) = write_rx.blocking_recv() {
            w.write_all(&c)?;
        }
        w.flush()
    });
    let mut seen = 0u64;
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                // object_store resumed resets already; a change explains a failure best.
                still_same(store, o).await?;
                return Err(unreadable(o, format!("reading the body at byte {seen}: {e}")));
            }
        };
        if seen.saturating_add(chunk.len() as u64) > o.size {
            return Err(changed(o, format!("more than the {} bytes listed", o.size)));
        }
        seen = seen.saturating_add(chunk.len() as u64);
        // A queue is closed only when its thread stopped: the writer on an I/O
        // error, which the join below reports.
        let (h, w) = (hash_tx.send(chunk.clone()).await, write_tx.send(chunk).await);
        if h.is_err() || w.is_err() {
            break;
        }
    }
    drop((hash_tx, write_tx));
    let thread_failed = |e: tokio::task::JoinError| unreadable(o, format!("the spool's thread failed: {e}"));
    let hasher = hashing.await.map_err(thread_failed)?;
    writing.await.map_err(thread_failed)?.map_err(|e| RemoteError::local(&out.path, e))?;
    if seen != o.size {
        still_same(store, o).await?;
        return Err(unreadable(o, format!("the body ended at byte {seen} of {}", o.size)));
    }
    still_same(store, o).await?;
    out.trailer = hasher.finish();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_tags_compare_by_their_opaque_part() {
        assert!(same_etag(Some("0x8DC1"), Some("\"0x8DC1\"")), "Azure: listing unquoted, header quoted");
        assert!(same_etag(Some("W/\"abc\""), Some("abc")));
        assert!(same_etag(None, None));
        assert!(!same_etag(Some("\"abc\""), Some("\"abd\"")));
        assert!(!same_etag(Some("abc"), None));
        assert_eq!(opaque("\""), "\"", "a lone quote is not a quoted empty tag");
    }

    #[test]
    fn the_hasher_finds_the_trailer_across_chunk_boundaries() {
        let mut file = vec![7u8; 1024];
        let d = trailer::digest(&file);
        file.extend_from_slice(&d);
        for step in [1usize, 7, 31, 32, 33, 500, 2000] {
            let mut h = TrailerHasher::new(file.len() as u64);
            for c in file.chunks(step) {
                h.update(c);
            }
            assert_eq!(h.finish(), Trailer::Valid(d), "chunks of {step}");
        }
        let last = file.len() - 1;
        file[last] ^= 1;
        let mut h = TrailerHasher::new(file.len() as u64);
        h.update(&file);
        assert!(matches!(h.finish(), Trailer::Mismatch { .. }));
        let mut h = TrailerHasher::new(1024);
        h.update(&file[..1024]);
        assert_eq!(h.finish(), Trailer::Absent);
    }
}
