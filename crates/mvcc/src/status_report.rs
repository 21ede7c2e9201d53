//! `snapshot status` as one call: the bbolt check, the [`Status`] figures and
//! the trailer read side by side over the file; the figures of a structurally
//! damaged file refused, as etcdutl refuses them; the figures of the etcd line
//! asked for, or of the line that wrote the file; and the verdict.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use etcdsnap_mvcc::status_report::{status_report, StatusGate, StatusOptions};
//! let file = etcdsnap_io::MappedFile::open("snapshot.db")?;
//! let db = etcdsnap_bolt::Db::open(etcdsnap_mvcc::trailer::split(&file).0)?;
//! match status_report(&file, &db, &StatusOptions { verify_trailer: true, as_etcd: None })? {
//!     StatusGate::Damaged(check) => eprintln!("{} problems", check.problem_count),
//!     StatusGate::Report(r) => println!("revision {} totalKey {}", r.etcdutl.revision, r.etcdutl.total_key),
//! }
//! # Ok(()) }
//! ```

use etcdsnap_bolt::{CheckReport, Db};
use etcdsnap_io::MappedFile;

use crate::error::MvccError;
use crate::schema::EtcdLine;
use crate::status::{status, Status};
use crate::trailer::TrailerState;
use crate::verdict::Verdict;

/// Options of [`status_report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusOptions {
    /// Also verify the SHA-256 trailer (etcdutl's status never does; a mismatch is then a problem).
    pub verify_trailer: bool,
    /// The etcd line whose `etcdutl snapshot status` figures to give; `None`: the
    /// line that wrote the file (`meta/storageVersion`, else `meta/term` for 3.5, else 3.4).
    pub as_etcd: Option<EtcdLine>,
}

/// What `etcdutl snapshot status -w json` of one etcd line prints for a db.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdutlStatus {
    /// The line whose tool this is.
    pub line: EtcdLine,
    /// `hash`.
    pub hash: u32,
    /// `revision`.
    pub revision: i64,
    /// `totalKey`: every entry of every bucket (3.4, 3.5), or live user keys (3.6+).
    pub total_key: u64,
    /// `totalSize`.
    pub total_size: u64,
    /// `version` (3.6+ only): `meta/storageVersion`, empty when the db has none.
    pub version: Option<String>,
}

impl EtcdutlStatus {
    /// The figures `line`'s etcdutl prints for a db of `status`.
    pub fn of(status: &Status, line: EtcdLine) -> Self {
        let live = line.counts_live_keys();
        Self {
            line,
            hash: status.hash,
            revision: status.revision,
            total_key: if live { status.total_key_v36 } else { status.total_key },
            total_size: status.total_size,
            version: live.then(|| status.meta.storage_version.clone().unwrap_or_default()),
        }
    }

    /// The figures the etcdutl of the line that wrote the db prints. For a db
    /// etcdsnap wrote, whose storage version always names a line; a version no
    /// line names (never written by etcd) counts as the newest line.
    pub fn as_written(status: &Status) -> Self {
        Self::of(status, status.storage_version().line().unwrap_or(EtcdLine::V3_7))
    }
}

/// The three passes over a file, before the gate: run by [`StatusPasses::run`],
/// judged by [`StatusPasses::gate`]. A caller that can tell whether the file
/// changed meanwhile checks that in between, as [`status_report`] does.
#[derive(Debug)]
pub struct StatusPasses {
    /// The bbolt consistency check.
    pub check: CheckReport,
    /// The figures, or why they could not be read.
    pub status: Result<Status, MvccError>,
    /// The trailer, verified or only read.
    pub trailer: TrailerState,
}

impl StatusPasses {
    /// Runs the check, the figures and (when `verify_trailer`) the trailer's
    /// digest over `file`, whose bbolt image `db` is, on three threads.
    /// Fails only when a pass panicked (a bug).
    pub fn run(file: &[u8], db: &Db<'_>, verify_trailer: bool) -> Result<Self, MvccError> {
        let (trailer, check, status) = std::thread::scope(|scope| {
            let digest = verify_trailer
                .then(|| scope.spawn(|| TrailerState::Checked(crate::trailer::verify_metered(file, db.meter()))));
            let check = scope.spawn(|| db.check());
            let status = status(db);
            // A panicked digest is an error, never "no trailer".
            let trailer = match digest {
                Some(h) => h.join().map_err(|_| MvccError::WorkerPanicked("trailer check")),
                None => Ok(TrailerState::read(file, false)),
            };
            (trailer, check.join(), status)
        });
        let trailer = trailer?;
        let check = check.map_err(|_| MvccError::WorkerPanicked("bbolt check"))?;
        Ok(Self { check, status, trailer })
    }

    /// Judges the passes: a file the check finds damaged gets no figures (as
    /// etcdutl, whose status fails on it); else the figures of `as_etcd`, or of
    /// the line that wrote the file.
    pub fn gate(self, as_etcd: Option<EtcdLine>) -> Result<StatusGate, StatusError> {
        if !self.check.is_ok() {
            return Ok(StatusGate::Damaged(self.check));
        }
        let status = self.status.map_err(StatusError::Figures)?;
        let line = match as_etcd {
            Some(l) => l,
            None => {
                let sv = status.storage_version();
                sv.line().ok_or_else(|| StatusError::UnknownLine { storage_version: sv.as_str().to_string() })?
            }
        };
        let etcdutl = EtcdutlStatus::of(&status, line);
        Ok(StatusGate::Report(Box::new(StatusReport { status, etcdutl, trailer: self.trailer })))
    }
}

/// What [`status_report`] concluded.
#[derive(Debug)]
pub enum StatusGate {
    /// The bbolt check found problems: no figures are given for the file.
    Damaged(CheckReport),
    /// The figures.
    Report(Box<StatusReport>),
}

impl StatusGate {
    /// `Problems` for a damaged file or a trailer that was checked and does not match.
    pub fn verdict(&self) -> Verdict {
        match self {
            Self::Damaged(_) => Verdict::Problems,
            Self::Report(r) => r.verdict(),
        }
    }
}

/// The figures of a file whose structure checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// Every figure, etcdutl's and ours.
    pub status: Status,
    /// What the chosen line's etcdutl prints.
    pub etcdutl: EtcdutlStatus,
    /// The trailer.
    pub trailer: TrailerState,
}

impl StatusReport {
    /// `Problems` when the trailer was checked and does not match, else `Clean`.
    pub fn verdict(&self) -> Verdict {
        Verdict::from_ok(!self.trailer.is_mismatch())
    }
}

/// Why [`status_report`] gave no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// The file changed while it was read, or a pass panicked: nothing read is a statement about it.
    #[error(transparent)]
    Input(MvccError),
    /// The figures could not be read (the check passed, a value did not decode).
    #[error("reading the figures: {0}")]
    Figures(#[source] MvccError),
    /// No line was asked for and the file's storage version names none.
    #[error("meta/storageVersion {storage_version:?} names no etcd version; choose one")]
    UnknownLine {
        /// `meta/storageVersion` as stored.
        storage_version: String,
    },
}

/// `snapshot status` of a mapped file whose bbolt image is `db`: the passes,
/// a check that the file did not change while they read it, and the gate.
pub fn status_report(file: &MappedFile, db: &Db<'_>, opts: &StatusOptions) -> Result<StatusGate, StatusError> {
    let passes = StatusPasses::run(file, db, opts.verify_trailer).map_err(StatusError::Input)?;
    file.check_unchanged().map_err(|e| StatusError::Input(e.into()))?;
    passes.gate(opts.as_etcd)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::trailer::{self, Trailer};

    fn testdata() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
    }

    fn expected(version: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(testdata().join(version).join("expected/status.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn report(data: &[u8], opts: StatusOptions) -> StatusGate {
        let db = Db::open(trailer::split(data).0).unwrap();
        StatusPasses::run(data, &db, opts.verify_trailer).unwrap().gate(opts.as_etcd).unwrap()
    }

    fn figures(gate: StatusGate) -> StatusReport {
        match gate {
            StatusGate::Report(r) => *r,
            StatusGate::Damaged(c) => panic!("damaged: {:?}", c.problems),
        }
    }

    /// A scratch copy of a fixture file.
    fn scratch_copy(version: &str, rel: &str, tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("etcdsnap-status-report-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let to = dir.join("copy.db");
        std::fs::copy(testdata().join(version).join(rel), &to).unwrap();
        to
    }

    #[test]
    fn figures_of_the_writing_line_equal_etcdutls() {
        for v in ["etcd-3.4.23", "etcd-3.5.1", "etcd-3.5.35", "etcd-3.6.16", "etcd-3.7.3"] {
            let data = std::fs::read(testdata().join(v).join("snapshot.db")).unwrap();
            let r = figures(report(&data, StatusOptions::default()));
            let want = expected(v);
            let e = &r.etcdutl;
            assert_eq!(u64::from(e.hash), want["hash"].as_u64().unwrap(), "{v}");
            assert_eq!(e.revision, want["revision"].as_i64().unwrap(), "{v}");
            assert_eq!(e.total_key, want["totalKey"].as_u64().unwrap(), "{v}");
            assert_eq!(e.total_size, want["totalSize"].as_u64().unwrap(), "{v}");
            assert_eq!(e.version.as_deref(), want.get("version").and_then(|x| x.as_str()), "{v}");
            assert_eq!(e.line.as_str(), &v["etcd-".len().."etcd-".len() + 3], "{v}");
            assert_eq!(e, &EtcdutlStatus::as_written(&r.status), "{v}");
            // Not verified: seen, and no problem.
            assert_eq!(r.trailer.name(), "present");
            assert_eq!(r.verdict(), Verdict::Clean);
        }
    }

    #[test]
    fn an_asked_line_counts_as_that_line() {
        let data = std::fs::read(testdata().join("etcd-3.5.1/snapshot.db")).unwrap();
        let v35 = figures(report(&data, StatusOptions { as_etcd: Some(EtcdLine::V3_4), ..Default::default() }));
        let v36 = figures(report(&data, StatusOptions { as_etcd: Some(EtcdLine::V3_6), ..Default::default() }));
        assert_eq!(v35.etcdutl.total_key, v35.status.total_key);
        assert_eq!(v35.etcdutl.version, None);
        assert_eq!(v36.etcdutl.total_key, v36.status.total_key_v36);
        assert!(v36.etcdutl.total_key < v35.etcdutl.total_key);
        // 3.6's tool prints the version, empty for a 3.5 file.
        assert_eq!(v36.etcdutl.version.as_deref(), Some(""));
        assert_eq!(v36.etcdutl.line, EtcdLine::V3_6);
        let mut s = v36.status.clone();
        s.meta.storage_version = Some("3.9.0".into());
        assert_eq!(EtcdutlStatus::as_written(&s).line, EtcdLine::V3_7);
        s.meta.storage_version = Some("banana".into());
        assert_eq!(EtcdutlStatus::as_written(&s).line, EtcdLine::V3_7);
    }

    #[test]
    fn a_checked_trailer_that_does_not_match_is_a_problem() {
        let mut data = std::fs::read(testdata().join("etcd-3.5.1/snapshot.db")).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        let seen = figures(report(&data, StatusOptions::default()));
        assert_eq!((seen.trailer.name(), seen.verdict()), ("present", Verdict::Clean));
        let checked = report(&data, StatusOptions { verify_trailer: true, as_etcd: None });
        assert_eq!(checked.verdict(), Verdict::Problems);
        let checked = figures(checked);
        assert!(matches!(checked.trailer, TrailerState::Checked(Trailer::Mismatch { .. })));
        assert_eq!(checked.trailer.stored().map(|d| d[31]), Some(data[last]));
        // The figures are still given: the image itself is sound.
        assert_eq!(checked.etcdutl, seen.etcdutl);
        let raw = std::fs::read(testdata().join("etcd-3.5.1/member/snap/db")).unwrap();
        let r = figures(report(&raw, StatusOptions { verify_trailer: true, as_etcd: None }));
        assert_eq!((r.trailer.name(), r.verdict()), ("absent", Verdict::Clean));
    }

    #[test]
    fn a_damaged_structure_gets_no_figures() {
        let mut data = std::fs::read(testdata().join("etcd-3.5.1/member/snap/db")).unwrap();
        data[100 * 4096..101 * 4096].fill(0xab);
        let gate = report(&data, StatusOptions::default());
        assert_eq!(gate.verdict(), Verdict::Problems);
        match gate {
            StatusGate::Damaged(c) => {
                assert!(c.problem_count > 0);
                assert!(c.problems.iter().any(|p| p.page == Some(100)), "{:?}", c.problems);
            }
            StatusGate::Report(_) => panic!("figures of a damaged file"),
        }
    }

    #[test]
    fn the_gate_orders_damage_then_figures_then_line() {
        let data = std::fs::read(testdata().join("etcd-3.7.3/member/snap/db")).unwrap();
        let db = Db::open(&data).unwrap();
        let passes = || StatusPasses::run(&data, &db, false).unwrap();
        // A storage version that names no line: a line must be asked for.
        let mut p = passes();
        if let Ok(s) = &mut p.status {
            s.meta.storage_version = Some("banana".into());
        }
        match p.gate(None) {
            Err(StatusError::UnknownLine { storage_version }) => assert_eq!(storage_version, "banana"),
            other => panic!("{other:?}"),
        }
        let mut p = passes();
        if let Ok(s) = &mut p.status {
            s.meta.storage_version = Some("banana".into());
        }
        let r = figures(p.gate(Some(EtcdLine::V3_5)).unwrap());
        assert_eq!(r.etcdutl.total_key, r.status.total_key);
        // Figures that failed: an error, unless the check already refused the file.
        let mut p = passes();
        p.status = Err(MvccError::meta(b"term", "not 8 bytes".into()));
        assert!(matches!(p.gate(None), Err(StatusError::Figures(MvccError::Corrupt { .. }))));
        let mut damaged = std::fs::read(testdata().join("etcd-3.5.1/member/snap/db")).unwrap();
        damaged[100 * 4096..101 * 4096].fill(0xab);
        let ddb = Db::open(&damaged).unwrap();
        let mut p = StatusPasses::run(&damaged, &ddb, false).unwrap();
        p.status = Err(MvccError::meta(b"term", "not 8 bytes".into()));
        assert!(matches!(p.gate(None), Ok(StatusGate::Damaged(_))));
    }

    #[test]
    fn a_file_changed_while_read_gets_no_answer() {
        let path = scratch_copy("etcd-3.5.1", "snapshot.db", "changed");
        let file = MappedFile::open(&path).unwrap();
        let db = Db::open(trailer::split(&file).0).unwrap();
        let opts = StatusOptions::default();
        assert!(matches!(status_report(&file, &db, &opts), Ok(StatusGate::Report(_))));
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
            f.write_all(b"more").unwrap();
        }
        match status_report(&file, &db, &opts) {
            Err(StatusError::Input(MvccError::Os(etcdsnap_io::Error::InputChanged { .. }))) => {}
            other => panic!("{other:?}"),
        }
        drop(file);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
