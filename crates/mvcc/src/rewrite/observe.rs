//! Watching what is written: the output's `snapshot status` and HashKV
//! figures made from what the write pass hands the builder (no read-back),
//! and the end both writers share (trailer, figures, optional read-back).

use std::io::Write;
use std::path::Path;

use etcdsnap_bolt::builder::Sink;
use etcdsnap_bolt::Db;
use etcdsnap_io::{AtomicFile, MappedFile};

use super::options::RewriteOptions;
use super::report::Made;
use crate::error::{MvccError, Result};
use crate::hashkv::{hash_kv, KeyValueHash, KvHasher, TombstoneRule};
use crate::schema::KEY;
use crate::status::{status, Status, StatusObserver};
use crate::trailer::{self, TRAILER_LEN};

/// The output's `snapshot status` and HashKV figures, observed from what the
/// write pass hands the builder, so the output need not be read back.
pub(crate) struct Watched<'a, S: Sink> {
    out: &'a mut S,
    status: StatusObserver,
    kv: KvHasher,
    depth: usize,
    in_key: bool,
    failed: Option<MvccError>,
}

impl<'a, S: Sink> Watched<'a, S> {
    pub(crate) fn new(out: &'a mut S, compact: i64) -> Self {
        Self {
            out,
            // The HashKV records are per key already: they count the live
            // keys; and its CRC runs over the `key` bucket: it gives status
            // that bucket's share of the hash.
            status: StatusObserver::without_live_keys().key_crc_given(),
            // HashKV as etcd ≥3.5.16 answers it (the report's rule).
            kv: KvHasher::new(compact, TombstoneRule::Skip),
            depth: 0,
            in_key: false,
            failed: None,
        }
    }

    pub(crate) fn finish(self) -> Result<(StatusObserver, KvHasher)> {
        match self.failed {
            Some(e) => Err(e),
            None => Ok((self.status, self.kv)),
        }
    }
}

impl<S: Sink> Sink for Watched<'_, S> {
    fn create_bucket(&mut self, name: &[u8], sequence: u64) -> etcdsnap_bolt::Result<()> {
        self.out.create_bucket(name, sequence)?;
        self.status.open_bucket(name);
        if self.depth == 0 {
            self.in_key = name == KEY;
        } else if self.depth == 1 && self.in_key {
            // Status hashes a nested bucket's name; HashKV does not.
            self.kv.pass(name);
        }
        self.depth = self.depth.saturating_add(1);
        Ok(())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> etcdsnap_bolt::Result<()> {
        self.out.put(key, value)?;
        if self.failed.is_none() {
            let mut watch = || -> Result<()> {
                self.status.put(key, value)?;
                if self.depth == 1 && self.in_key {
                    self.kv.add(key, value)?;
                }
                Ok(())
            };
            self.failed = watch().err();
        }
        Ok(())
    }

    fn close_bucket(&mut self) -> etcdsnap_bolt::Result<()> {
        self.out.close_bucket()?;
        self.status.close_bucket();
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 && self.in_key {
            let (crc, len) = self.kv.stream_crc();
            self.status.key_bucket_crc(crc, len);
        }
        Ok(())
    }
}

/// A sink that keeps nothing: what the observers of a patched output watch.
pub(crate) struct Nothing;

impl Sink for Nothing {
    fn create_bucket(&mut self, _: &[u8], _: u64) -> etcdsnap_bolt::Result<()> {
        Ok(())
    }

    fn put(&mut self, _: &[u8], _: &[u8]) -> etcdsnap_bolt::Result<()> {
        Ok(())
    }

    fn close_bucket(&mut self) -> etcdsnap_bolt::Result<()> {
        Ok(())
    }
}

/// What the write pass observed of an output of `bytes` (`pgid × pageSize`).
pub(crate) struct Observed {
    pub(crate) status: StatusObserver,
    pub(crate) kv: KvHasher,
    pub(crate) bytes: u64,
    pub(crate) page_size: usize,
    pub(crate) compact: i64,
}

impl Observed {
    /// The output's status and HashKV ([`figures`]); `output` names it in errors.
    pub(crate) fn figures(self, output: &Path) -> Result<(Status, KeyValueHash)> {
        figures(self.status, self.kv, self.bytes, self.page_size, self.compact, output)
    }
}

/// Both writers' end: the trailer `trailer_out` appended to the output of
/// which `o` was observed, the figures made (and, with `verify_output`,
/// compared with a read-back of the temporary file); the output, not yet
/// committed, and its figures.
pub(crate) fn finish_output(
    mut atomic: AtomicFile,
    output: &Path,
    opts: &RewriteOptions,
    trailer_out: Option<[u8; TRAILER_LEN]>,
    o: Observed,
) -> Result<(AtomicFile, Made)> {
    let f = atomic.file()?;
    if let Some(d) = &trailer_out {
        f.write_all(d).map_err(|source| MvccError::Io { path: output.to_path_buf(), source })?;
    }
    let bytes_out = o.bytes.saturating_add(if trailer_out.is_some() { TRAILER_LEN as u64 } else { 0 });
    opts.cancel.check()?;
    let (st, hkv) = o.figures(output)?;
    if opts.verify_output {
        f.sync_data().map_err(|source| MvccError::Io { path: atomic.tmp_path().to_path_buf(), source })?;
        read_back(atomic.tmp_path(), output, &st, &hkv)?;
    }
    Ok((atomic, Made { st, hkv, trailer_out, bytes_out }))
}

/// `verify_output`: the written file (at `tmp`, committed as `output`) passes
/// the full check, and its status and HashKV read back equal what was observed.
fn read_back(tmp: &Path, output: &Path, st: &Status, hkv: &KeyValueHash) -> Result<()> {
    let fail = |what: String| MvccError::OutputVerification { path: output.to_path_buf(), what };
    let written = MappedFile::open(tmp)?;
    let report = crate::verify::verify(&written, crate::verify::VerifyOptions::default());
    if let Some(first) = report.findings.iter().find(|f| f.severity == crate::verify::Severity::Problem) {
        let what = format!("{} problem(s), the first: {} ({})", report.problem_count, first.message, first.kind.code());
        return Err(fail(what));
    }
    let db = Db::open(trailer::split(&written).0)?;
    let read = status(&db)?;
    if read != *st {
        return Err(fail(format!("status read back {read:?} differs from the one observed {st:?}")));
    }
    let read = hash_kv(&db, 0, TombstoneRule::Skip)?;
    if read != *hkv {
        return Err(fail(format!("HashKV read back {read:?} differs from the one observed {hkv:?}")));
    }
    Ok(())
}

/// The output's HashKV from what was observed, and a check of the compact
/// revision written against the planned one.
fn figures(
    observed: StatusObserver,
    kv: KvHasher,
    total_size: u64,
    page_size: usize,
    compact: i64,
    output: &Path,
) -> Result<(Status, KeyValueHash)> {
    let (live, marker_live) = kv.live();
    let st = observed.finish_with_live(total_size, page_size, live, marker_live);
    let current = st.revision.max(compact);
    let hkv =
        KeyValueHash { hash: kv.finish(), compact_revision: compact, revision: current, current_revision: current };
    if st.meta.compact_rev() != compact {
        return Err(MvccError::OutputVerification {
            path: output.to_path_buf(),
            what: format!("compact revision written {} differs from the planned {compact}", st.meta.compact_rev()),
        });
    }
    Ok((st, hkv))
}
