//! The checks of one spooled backup: the local `verify` (structure, MVCC,
//! the trailer as hashed during the download), then for a valid file the
//! figures a fleet report keeps — `snapshot status`'s hash and HashKV — and,
//! with an EncryptionConfiguration, the decryptability census. HashKV walks
//! beside verify's walk; status (two threads itself) and the census after it.

use chrono::{DateTime, Utc};
use etcdsnap_bolt::Db;
use etcdsnap_io::MappedFile;
use etcdsnap_k8s::census::{Census, CensusKind, CensusReport, Opener};
use etcdsnap_mvcc::keyspace::{at_revision, Selection};
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
        encryption: None,
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

/// The decryptability census of the latest revision of every live key:
/// what kube-apiserver would read after a restore (history revisions are
/// left out: compaction drops them and no read serves them).
pub fn census(db: &Db<'_>, opener: &Opener) -> etcdsnap_mvcc::Result<CensusReport> {
    let keys = at_revision(db, 0, &Selection::default())?;
    let mut c = Census::new(opener);
    for v in &keys {
        c.add(v.kv.key, v.kv.value);
    }
    Ok(c.finish())
}

/// The census's findings as problems of a backup (`encryption-failed`,
/// `encryption-plaintext`, `encryption-unknown-key`).
pub fn census_problems(r: &CensusReport) -> impl Iterator<Item = ProblemRecord> + '_ {
    r.findings.iter().map(|f| ProblemRecord {
        kind: format!("encryption-{}", f.kind.code()),
        message: format!("{} ({}): {}", f.key, f.resource, f.message),
    })
}

/// Census findings in all.
pub fn census_problem_count(r: &CensusReport) -> u64 {
    [CensusKind::Failed, CensusKind::Plaintext, CensusKind::UnknownKey]
        .iter()
        .fold(0u64, |n, k| n.saturating_add(r.count(*k)))
}

/// Checks a spooled copy (blocking: run it off the async threads); with an
/// opener, a valid backup also gets the census, whose findings make it a
/// backup with problems.
pub fn check_spooled(sp: &Spooled, cluster: Option<String>, judge: &Judge, opener: Option<&Opener>) -> BackupRecord {
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
        let h = kv?;
        let c = opener.map(|o| census(&db, o)).transpose().map_err(|e| format!("encryption census: {e}"))?;
        Ok((s, h, c))
    });
    match figures {
        Ok((s, h, c)) => {
            if let Some(c) = c {
                let n = census_problem_count(&c);
                if n > 0 {
                    r.problem_count = r.problem_count.saturating_add(n);
                    r.problems.extend(census_problems(&c).take(MAX_PROBLEMS.saturating_sub(r.problems.len())));
                }
                r.encryption = Some(c);
            }
            if r.problem_count > 0 {
                r.revision = Some(s.revision);
                return r;
            }
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
