//! The checks of one spooled backup: the local `verify` (structure, MVCC,
//! the trailer as hashed during the download), then for a valid file the
//! figures a fleet report keeps — `snapshot status`'s hash and HashKV.
//! HashKV walks beside verify's walk, status (two threads itself) after it.

use chrono::{DateTime, Utc};
use etcdsnap_bolt::Db;
use etcdsnap_io::MappedFile;
use etcdsnap_mvcc::trailer;
use etcdsnap_mvcc::verify::{verify_file_with_trailer, Severity, VerifyOptions};
use etcdsnap_mvcc::{hash_kv, TombstoneRule};

use crate::record::{BackupRecord, BackupState, ProblemRecord};
use crate::spool::{ObjectInfo, Spooled};

/// Problems kept per backup in a report.
pub const MAX_PROBLEMS: usize = 10;

/// How a backup is judged: the clock and `--max-age`.
#[derive(Debug, Clone, Copy)]
pub struct Judge {
    /// The report's clock.
    pub now: DateTime<Utc>,
    /// `--max-age` in seconds.
    pub max_age_seconds: Option<u64>,
    /// A file without a SHA-256 trailer is a problem.
    pub require_trailer: bool,
}

/// The record of `o` before any check (what unreadable or changed objects keep).
pub fn record_of(o: &ObjectInfo, cluster: Option<String>, judge: &Judge, state: BackupState) -> BackupRecord {
    let age = judge.now.signed_duration_since(o.last_modified).num_seconds();
    BackupRecord {
        url: o.url.clone(),
        cluster,
        state,
        size: o.size,
        last_modified: o.last_modified.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        age_seconds: age,
        etag: o.etag.clone(),
        trailer: "unknown".into(),
        revision: None,
        status_hash: None,
        hashkv: None,
        hashkv_compact_revision: None,
        fresh: false,
        problem_count: 0,
        problems: Vec::new(),
    }
}

/// A record for an object that could not be judged.
pub fn failed(o: &ObjectInfo, cluster: Option<String>, judge: &Judge, e: &crate::RemoteError) -> BackupRecord {
    let state = if e.is_changed() { BackupState::Changed } else { BackupState::Unreadable };
    let mut r = record_of(o, cluster, judge, state);
    r.problem_count = 1;
    r.problems.push(ProblemRecord { kind: state.name().to_string(), message: e.to_string() });
    r
}

/// Checks a spooled copy (blocking: run it off the async threads).
pub fn check_spooled(sp: &Spooled, cluster: Option<String>, judge: &Judge) -> BackupRecord {
    let mut r = record_of(&sp.object, cluster, judge, BackupState::Problems);
    let file = match MappedFile::open(&sp.path) {
        Ok(f) => f,
        Err(e) => {
            r.state = BackupState::Unreadable;
            r.problem_count = 1;
            r.problems.push(ProblemRecord { kind: "unreadable".into(), message: format!("the local spool: {e}") });
            return r;
        }
    };
    let opts = VerifyOptions { require_trailer: judge.require_trailer };
    // HashKV walks the key bucket on a thread of its own while verify walks
    // the file (status is itself two threads, so it runs after): the check
    // of a downloaded object took verify + status + HashKV one after the
    // other. On a damaged file the figure is computed for nothing and
    // dropped; its walk is as bounded as verify's.
    let (v, kv) = std::thread::scope(|s| {
        let kv = s.spawn(|| {
            let db = Db::open(trailer::split(&file).0).map_err(|e| e.to_string())?;
            hash_kv(&db, 0, TombstoneRule::Skip).map_err(|e| format!("hashkv: {e}"))
        });
        let v = verify_file_with_trailer(&file, opts, None, sp.trailer);
        (v, kv.join().unwrap_or_else(|_| Err("hashkv: internal error: its walk panicked".to_string())))
    });
    r.trailer = v.trailer.name().to_string();
    r.problem_count = v.problem_count;
    r.problems = v
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Problem)
        .take(MAX_PROBLEMS)
        .map(|f| ProblemRecord { kind: f.kind.code().to_string(), message: f.message.clone() })
        .collect();
    if v.stats.revision > 0 {
        r.revision = Some(v.stats.revision);
    }
    if !v.is_ok() {
        return r;
    }
    let figures = Db::open(trailer::split(&file).0).map_err(|e| e.to_string()).and_then(|db| {
        let s = etcdsnap_mvcc::status(&db).map_err(|e| format!("status: {e}"))?;
        Ok((s, kv?))
    });
    match figures {
        Ok((s, h)) => {
            r.state = BackupState::Valid;
            r.revision = Some(s.revision);
            r.status_hash = Some(s.hash);
            r.hashkv = Some(h.hash);
            r.hashkv_compact_revision = Some(h.compact_revision);
            let young = judge.max_age_seconds.is_none_or(|max| r.age_seconds <= i64::try_from(max).unwrap_or(i64::MAX));
            r.fresh = young;
        }
        Err(message) => {
            r.problem_count = r.problem_count.saturating_add(1);
            r.problems.push(ProblemRecord { kind: "read-error".into(), message });
        }
    }
    r
}
