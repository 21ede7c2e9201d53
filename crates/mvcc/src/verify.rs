//! Verifies a snapshot or db file without restoring it: the trailer, the bbolt
//! structure, and etcd's MVCC invariants. Every finding names the bucket and,
//! where it applies, the page, revision and key.

use std::collections::HashSet;

use etcdsnap_bolt::{CheckOptions, Db};
use etcdsnap_proto::{authpb, etcdserverpb, leasepb, Message};

use crate::kv::KvRef;
use crate::revision::{BucketKey, Revision};
use crate::schema::{self, ALL_BUCKETS, KEY, LEASE, META};
use crate::trailer::{self, Trailer};
use crate::verdict::Verdict;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; etcd still serves the file as intended.
    Warning,
    /// The file is damaged or breaks an invariant etcd relies on.
    Problem,
}

impl Severity {
    /// `warning` or `problem`, as the JSON outputs say it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Problem => "problem",
        }
    }
}

/// What kind of thing a [`Finding`] is; [`FindingKind::code`] is its stable name
/// in machine-readable output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// The SHA-256 trailer does not match the bytes before it.
    TrailerMismatch,
    /// No trailer where one is required.
    TrailerMissing,
    /// The file could not be read or opened (I/O, not a regular file).
    Unreadable,
    /// The bbolt structure breaks a rule; the code is the bbolt corruption's
    /// ([`etcdsnap_bolt::CorruptKind::code`]).
    Structure(&'static str),
    /// A top-level key that is not a bucket.
    ValueInRoot,
    /// A bucket etcd needs (or creates at start) is absent.
    BucketMissing,
    /// The `meta` bucket has no `consistent_index`.
    NoConsistentIndex,
    /// `scheduledCompactRev` is below `finishedCompactRev`.
    CompactRevisionsOutOfOrder,
    /// A compact revision is beyond the latest revision.
    CompactRevisionBeyondLatest,
    /// A value that does not decode as the message its bucket holds.
    ValueUndecodable,
    /// A key that does not decode as what its bucket holds.
    KeyUndecodable,
    /// An alarm is raised (a warning).
    AlarmRaised,
    /// A lease record stored under another lease's ID.
    LeaseIdMismatch,
    /// A live key references a lease that is not in the `lease` bucket.
    LeaseMissing,
    /// A `key` bucket key that is not a revision (`main_sub`, optional `t`).
    RevisionKeyMalformed,
    /// A tombstone revision with an empty value (no key to delete).
    TombstoneWithoutKey,
    /// A `KeyValue` with an empty key.
    EmptyUserKey,
    /// A tombstone carrying more than its key.
    TombstoneWithData,
    /// A tombstone right after another tombstone of the same key.
    DoubleTombstone,
    /// `mod_revision` differs from the revision the value is stored under.
    ModRevisionMismatch,
    /// `create_revision` outside `1..=mod_revision`.
    CreateRevisionOutOfRange,
    /// `version` below 1, or not continuing the previous revision of the key.
    VersionMismatch,
    /// A key recreated after a tombstone without starting a new generation.
    GenerationStartMismatch,
    /// Any other error while reading the file.
    ReadError,
    /// The file was changed by another process while it was being verified:
    /// what was read is no statement about any version of it.
    InputChanged,
}

impl FindingKind {
    /// A stable kebab-case name, e.g. `mod-revision-mismatch`; structural findings
    /// use the bbolt corruption's name, e.g. `element-layout`.
    pub fn code(self) -> &'static str {
        match self {
            Self::TrailerMismatch => "trailer-mismatch",
            Self::TrailerMissing => "trailer-missing",
            Self::Unreadable => "unreadable",
            Self::Structure(code) => code,
            Self::ValueInRoot => "value-in-root",
            Self::BucketMissing => "bucket-missing",
            Self::NoConsistentIndex => "no-consistent-index",
            Self::CompactRevisionsOutOfOrder => "compact-revisions-out-of-order",
            Self::CompactRevisionBeyondLatest => "compact-revision-beyond-latest",
            Self::ValueUndecodable => "value-undecodable",
            Self::KeyUndecodable => "key-undecodable",
            Self::AlarmRaised => "alarm-raised",
            Self::LeaseIdMismatch => "lease-id-mismatch",
            Self::LeaseMissing => "lease-missing",
            Self::RevisionKeyMalformed => "revision-key-malformed",
            Self::TombstoneWithoutKey => "tombstone-without-key",
            Self::EmptyUserKey => "empty-user-key",
            Self::TombstoneWithData => "tombstone-with-data",
            Self::DoubleTombstone => "double-tombstone",
            Self::ModRevisionMismatch => "mod-revision-mismatch",
            Self::CreateRevisionOutOfRange => "create-revision-out-of-range",
            Self::VersionMismatch => "version-mismatch",
            Self::GenerationStartMismatch => "generation-start-mismatch",
            Self::ReadError => "read-error",
            Self::InputChanged => "input-changed",
        }
    }
}

/// One thing verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Problem or warning.
    pub severity: Severity,
    /// What kind of finding.
    pub kind: FindingKind,
    /// Bucket concerned (empty for the file as a whole).
    pub bucket: Vec<u8>,
    /// bbolt page, for structural problems.
    pub page: Option<u64>,
    /// Stored key (a revision key in the `key` bucket).
    pub key: Option<Vec<u8>>,
    /// Revision, in the `key` bucket.
    pub revision: Option<Revision>,
    /// User key, in the `key` bucket.
    pub user_key: Option<Vec<u8>>,
    /// What was found.
    pub message: String,
}

impl Finding {
    fn new(severity: Severity, kind: FindingKind, bucket: &[u8], message: impl Into<String>) -> Self {
        Self {
            severity,
            kind,
            bucket: bucket.to_vec(),
            page: None,
            key: None,
            revision: None,
            user_key: None,
            message: message.into(),
        }
    }

    fn problem(kind: FindingKind, bucket: &[u8], message: impl Into<String>) -> Self {
        Self::new(Severity::Problem, kind, bucket, message)
    }

    fn warning(kind: FindingKind, bucket: &[u8], message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, kind, bucket, message)
    }

    fn with_key(mut self, key: &[u8]) -> Self {
        self.key = Some(key.to_vec());
        self
    }

    fn at(mut self, rev: Revision, user_key: &[u8]) -> Self {
        self.revision = Some(rev);
        self.user_key = Some(user_key.to_vec());
        self
    }
}

/// Options of [`verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyOptions {
    /// A file without a SHA-256 trailer is a problem (backups made by `snapshot save` have one).
    pub require_trailer: bool,
}

/// Counts gathered while verifying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyStats {
    /// Entries of the `key` bucket.
    pub revisions: u64,
    /// Of those, tombstones.
    pub tombstones: u64,
    /// Of those, empty-value revision markers.
    pub markers: u64,
    /// Live keys at the latest revision.
    pub live_keys: u64,
    /// Latest revision.
    pub revision: i64,
    /// Lease records.
    pub leases: u64,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The trailer state.
    pub trailer: Trailer,
    /// Findings, problems and warnings, in the order found (at most 10 000).
    pub findings: Vec<Finding>,
    /// Problems found in all.
    pub problem_count: u64,
    /// Counts.
    pub stats: VerifyStats,
}

impl VerifyReport {
    /// Whether no problem (warnings aside) was found.
    pub fn is_ok(&self) -> bool {
        self.problem_count == 0
    }

    /// The report on a file that could not be read at all (missing, not a
    /// regular file, unreadable): one [`FindingKind::Unreadable`] problem.
    pub fn unreadable(message: impl Into<String>) -> Self {
        Self {
            trailer: Trailer::Absent,
            findings: vec![Finding::problem(FindingKind::Unreadable, b"", message)],
            problem_count: 1,
            stats: VerifyStats::default(),
        }
    }

    /// Warnings among the findings kept.
    pub fn warning_count(&self) -> u64 {
        self.findings.iter().filter(|f| f.severity == Severity::Warning).count() as u64
    }

    /// `Clean` when no problem was found, warnings aside.
    pub fn verdict(&self) -> Verdict {
        Verdict::from_ok(self.is_ok())
    }

    /// Adds the problem that the file changed while it was read (the caller
    /// compares the file before and after, e.g. `MappedFile::check_unchanged`).
    pub fn input_changed(&mut self, message: impl Into<String>) {
        self.findings.push(Finding::problem(FindingKind::InputChanged, b"", message));
        self.problem_count = self.problem_count.saturating_add(1);
    }
}

const MAX_FINDINGS: usize = 10_000;

struct Collector {
    findings: Vec<Finding>,
    problems: u64,
}

impl Collector {
    fn push(&mut self, f: Finding) {
        if f.severity == Severity::Problem {
            self.problems = self.problems.saturating_add(1);
        }
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(f);
        }
    }

    fn error(&mut self, bucket: &[u8], e: impl Into<crate::MvccError>) {
        let e = e.into();
        let page = match &e {
            crate::MvccError::Bolt(b) => b.corruption().and_then(|c| c.page),
            _ => None,
        };
        let kind = match &e {
            crate::MvccError::Bolt(etcdsnap_bolt::Error::Corrupt(c)) => FindingKind::Structure(c.kind.code()),
            crate::MvccError::Bolt(etcdsnap_bolt::Error::Os(
                etcdsnap_io::Error::Io { .. } | etcdsnap_io::Error::NotRegularFile { .. },
            ))
            | crate::MvccError::Os(etcdsnap_io::Error::Io { .. } | etcdsnap_io::Error::NotRegularFile { .. })
            | crate::MvccError::Io { .. } => FindingKind::Unreadable,
            crate::MvccError::Corrupt { .. } => FindingKind::ValueUndecodable,
            _ => FindingKind::ReadError,
        };
        let mut f = Finding::problem(kind, bucket, e.to_string());
        f.page = page;
        self.push(f);
    }
}

/// Bytes [`verify`] reads from a file of `len` bytes: the trailer hash (when
/// the size says there is one), the bbolt check and the MVCC checks, each a
/// pass over the file — what a progress bar's total is.
pub fn planned_reads(len: u64) -> u64 {
    let passes = if trailer::has_trailer(len) { 3 } else { 2 };
    len.saturating_mul(passes)
}

/// Verifies a whole snapshot file (trailer included) or raw db. The SHA-256
/// trailer is checked on a second thread while this one checks structure and
/// MVCC invariants, so the whole costs about one SHA-256 pass over the file.
pub fn verify(file: &[u8], opts: VerifyOptions) -> VerifyReport {
    verify_metered(file, opts, None)
}

/// [`verify`], telling `meter` the bytes read and hashed (a progress bar's count).
pub fn verify_metered(file: &[u8], opts: VerifyOptions, meter: Option<&etcdsnap_io::Meter>) -> VerifyReport {
    verify_with(file, opts, meter, || Ok(trailer::verify_metered(file, meter)))
}

/// [`verify_metered`] of a mapped file: the trailer hash reads the file in
/// order through `pread` ([`trailer::verify_file`]) while the checks walk the map.
pub fn verify_file(
    file: &etcdsnap_io::MappedFile,
    opts: VerifyOptions,
    meter: Option<&etcdsnap_io::Meter>,
) -> VerifyReport {
    verify_with(file, opts, meter, || trailer::verify_file(file, meter))
}

/// [`verify_file`] with the trailer already checked by the caller: the
/// digest computed while the file was downloaded into a spool
/// (`etcdsnap-remote`), so the SHA-256 pass is not repeated here.
pub fn verify_file_with_trailer(
    file: &etcdsnap_io::MappedFile,
    opts: VerifyOptions,
    meter: Option<&etcdsnap_io::Meter>,
    trailer: Trailer,
) -> VerifyReport {
    verify_with(file, opts, meter, move || Ok(trailer))
}

fn verify_with(
    file: &[u8],
    opts: VerifyOptions,
    meter: Option<&etcdsnap_io::Meter>,
    check: impl FnOnce() -> std::result::Result<Trailer, etcdsnap_io::Error> + Send,
) -> VerifyReport {
    let (trailer, mut c, stats) = std::thread::scope(|scope| {
        let sha = scope.spawn(check);
        let mut c = Collector { findings: Vec::new(), problems: 0 };
        let mut stats = VerifyStats::default();
        verify_image(trailer::split(file).0, meter, &mut c, &mut stats);
        (sha.join(), c, stats)
    });
    // The trailer's findings come first, as the file's own.
    let mut first = Collector { findings: Vec::new(), problems: 0 };
    let trailer = match trailer {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            first.push(Finding::problem(
                FindingKind::Unreadable,
                b"",
                format!("reading the file for its trailer: {e}"),
            ));
            Trailer::Absent
        }
        Err(_) => {
            // A panicked check is a problem, never read as "no trailer".
            first.push(Finding::problem(FindingKind::ReadError, b"", "internal error: the trailer check panicked"));
            Trailer::Absent
        }
    };
    match trailer {
        Trailer::Mismatch { stored, computed } => first.push(Finding::problem(
            FindingKind::TrailerMismatch,
            b"",
            format!("SHA-256 trailer mismatch: stored {}, computed {}", trailer::hex(&stored), trailer::hex(&computed)),
        )),
        Trailer::Absent if opts.require_trailer => first.push(Finding::problem(
            FindingKind::TrailerMissing,
            b"",
            "no SHA-256 trailer (size % 512 != 32): not a file written by snapshot save",
        )),
        _ => {}
    }
    first.problems = first.problems.saturating_add(c.problems);
    for f in c.findings.drain(..) {
        if first.findings.len() < MAX_FINDINGS {
            first.findings.push(f);
        }
    }
    VerifyReport { trailer, findings: first.findings, problem_count: first.problems, stats }
}

/// Structure and MVCC checks of the bbolt image.
fn verify_image(image: &[u8], meter: Option<&etcdsnap_io::Meter>, c: &mut Collector, stats: &mut VerifyStats) {
    let db = match Db::open(image) {
        Ok(db) => match meter {
            Some(m) => db.metered(m),
            None => db,
        },
        Err(e) => {
            c.error(b"", e);
            return;
        }
    };
    let check = etcdsnap_bolt::check::check(&db, &CheckOptions { max_problems: MAX_FINDINGS });
    for p in &check.problems {
        let bucket = p.bucket.first().map(Vec::as_slice).unwrap_or_default();
        let mut f = Finding::problem(FindingKind::Structure(p.kind.code()), bucket, p.to_string());
        f.page = p.page;
        f.key = p.key.clone();
        c.push(f);
    }
    c.problems = c.problems.saturating_add(check.problem_count.saturating_sub(check.problems.len() as u64));
    verify_schema(&db, c, stats);
}

/// Per key, what its next revision is checked against: 40 bytes (the
/// lease id is read again from the bucket for the few live leased keys).
#[derive(Debug, Clone, Copy)]
struct KeyState {
    rev: Revision,
    create: i64,
    version: i64,
    alive: bool,
    leased: bool,
}

fn verify_schema(db: &Db<'_>, c: &mut Collector, stats: &mut VerifyStats) {
    // etcd only ever writes buckets at the top level; etcdutl's status and hash fail on a plain key there.
    if let Ok(root) = db.root() {
        for e in root.cursor() {
            match e {
                Ok(e) if !e.is_bucket() => {
                    c.push(
                        Finding::problem(FindingKind::ValueInRoot, b"", "top-level key is not a bucket")
                            .with_key(e.key),
                    );
                }
                Ok(_) => {}
                Err(_) => break, // reported by the bbolt check
            }
        }
    }
    for name in ALL_BUCKETS {
        match db.bucket(&[name]) {
            Ok(Some(_)) => {}
            Ok(None) if name == KEY || name == META => {
                c.push(Finding::problem(FindingKind::BucketMissing, name, "required bucket missing"))
            }
            Ok(None) => {
                c.push(Finding::warning(FindingKind::BucketMissing, name, "bucket missing (etcd creates it at start)"))
            }
            Err(e) => c.error(name, e),
        }
    }
    let meta = match schema::read_meta(db) {
        Ok(m) => m,
        Err(e) => {
            c.error(META, e);
            Default::default()
        }
    };
    if meta.consistent_index.is_none() {
        c.push(
            Finding::warning(FindingKind::NoConsistentIndex, META, "no consistent_index")
                .with_key(schema::CONSISTENT_INDEX),
        );
    }
    let leases = verify_leases(db, c, stats);
    verify_keys(db, c, stats, &leases);
    if let (Some(s), Some(f)) = (meta.scheduled_compact, meta.finished_compact) {
        if s.main < f.main {
            c.push(
                Finding::problem(
                    FindingKind::CompactRevisionsOutOfOrder,
                    META,
                    format!("scheduledCompactRev {} < finishedCompactRev {}", s.main, f.main),
                )
                .with_key(schema::SCHEDULED_COMPACT_REV),
            );
        }
    }
    for (key, rev) in
        [(schema::SCHEDULED_COMPACT_REV, meta.scheduled_compact), (schema::FINISHED_COMPACT_REV, meta.finished_compact)]
    {
        if let Some(r) = rev {
            if r.main > stats.revision {
                c.push(
                    Finding::problem(
                        FindingKind::CompactRevisionBeyondLatest,
                        META,
                        format!("compact revision {} is beyond the latest revision {}", r.main, stats.revision),
                    )
                    .with_key(key),
                );
            }
        }
    }
    for (name, users) in [(schema::AUTH_USERS, true), (schema::AUTH_ROLES, false)] {
        if let Ok(Some(b)) = db.bucket(&[name]) {
            for e in b.cursor() {
                match e {
                    Err(e) => {
                        c.error(name, e);
                        break;
                    }
                    Ok(e) => {
                        let r = if users {
                            authpb::User::decode(e.value).map(|_| ())
                        } else {
                            authpb::Role::decode(e.value).map(|_| ())
                        };
                        if let Err(err) = r {
                            c.push(
                                Finding::problem(
                                    FindingKind::ValueUndecodable,
                                    name,
                                    format!("value does not decode: {err}"),
                                )
                                .with_key(e.key),
                            );
                        }
                    }
                }
            }
        }
    }
    if let Ok(Some(b)) = db.bucket(&[schema::ALARM]) {
        for e in b.cursor() {
            match e {
                Err(e) => {
                    c.error(schema::ALARM, e);
                    break;
                }
                Ok(e) => match etcdserverpb::AlarmMember::decode(e.key) {
                    Ok(a) => c.push(
                        Finding::warning(
                            FindingKind::AlarmRaised,
                            schema::ALARM,
                            format!("alarm {} raised on member {:x}", a.alarm, a.member_id),
                        )
                        .with_key(e.key),
                    ),
                    Err(err) => c.push(
                        Finding::problem(
                            FindingKind::KeyUndecodable,
                            schema::ALARM,
                            format!("key does not decode: {err}"),
                        )
                        .with_key(e.key),
                    ),
                },
            }
        }
    }
}

fn verify_leases(db: &Db<'_>, c: &mut Collector, stats: &mut VerifyStats) -> HashSet<i64> {
    let mut ids = HashSet::new();
    let Ok(Some(b)) = db.bucket(&[LEASE]) else { return ids };
    for e in b.cursor() {
        let e = match e {
            Ok(e) => e,
            Err(e) => {
                c.error(LEASE, e);
                break;
            }
        };
        stats.leases = stats.leases.saturating_add(1);
        let id = match <[u8; 8]>::try_from(e.key) {
            Ok(b) => i64::from_be_bytes(b),
            Err(_) => {
                c.push(
                    Finding::problem(FindingKind::KeyUndecodable, LEASE, "lease key is not 8 bytes").with_key(e.key),
                );
                continue;
            }
        };
        match leasepb::Lease::decode(e.value) {
            Ok(l) if l.id == id => {
                ids.insert(id);
            }
            Ok(l) => c.push(
                Finding::problem(
                    FindingKind::LeaseIdMismatch,
                    LEASE,
                    format!("lease record has ID {:x}, stored under {id:x}", l.id),
                )
                .with_key(e.key),
            ),
            Err(err) => c.push(
                Finding::problem(FindingKind::ValueUndecodable, LEASE, format!("value does not decode: {err}"))
                    .with_key(e.key),
            ),
        }
    }
    ids
}

fn verify_keys(db: &Db<'_>, c: &mut Collector, stats: &mut VerifyStats, leases: &HashSet<i64>) {
    let Ok(Some(b)) = db.bucket(&[KEY]) else { return };
    let ids = crate::keytable::KeyHasher::new();
    let mut state: crate::keytable::KeyTable<KeyState> = crate::keytable::KeyTable::new();
    for e in b.cursor() {
        let e = match e {
            Ok(e) => e,
            Err(e) => {
                c.error(KEY, e);
                break;
            }
        };
        stats.revisions = stats.revisions.saturating_add(1);
        let bk = match BucketKey::parse(e.key) {
            Ok(bk) => bk,
            Err(err) => {
                c.push(
                    Finding::problem(FindingKind::RevisionKeyMalformed, KEY, format!("malformed revision key: {err}"))
                        .with_key(e.key),
                );
                continue;
            }
        };
        let rev = bk.rev;
        stats.revision = rev.main;
        let kv = match KvRef::parse(e.value) {
            Ok(kv) => kv,
            Err(err) => {
                c.push(
                    Finding::problem(
                        FindingKind::ValueUndecodable,
                        KEY,
                        format!("value does not decode as KeyValue: {err}"),
                    )
                    .with_key(e.key),
                );
                continue;
            }
        };
        let here = |kind: FindingKind, msg: String| Finding::problem(kind, KEY, msg).with_key(e.key).at(rev, kv.key);
        if e.value.is_empty() {
            // An empty value: a revision marker, as etcdutl's --bump-revision writes.
            stats.markers = stats.markers.saturating_add(1);
            if bk.tombstone {
                c.push(here(FindingKind::TombstoneWithoutKey, "tombstone without a key".into()));
            }
            continue;
        }
        if kv.key.is_empty() {
            c.push(here(FindingKind::EmptyUserKey, "KeyValue with an empty key".into()));
            continue;
        }
        let id = ids.hash(kv.key);
        let prev = state.get(&id).copied();
        if bk.tombstone {
            stats.tombstones = stats.tombstones.saturating_add(1);
            if kv.create_revision != 0
                || kv.mod_revision != 0
                || kv.version != 0
                || !kv.value.is_empty()
                || kv.lease != 0
            {
                c.push(here(FindingKind::TombstoneWithData, "tombstone carries more than its key".into()));
            }
            if let Some(p) = prev.filter(|p| !p.alive) {
                c.push(here(FindingKind::DoubleTombstone, format!("tombstone follows the tombstone at {}", p.rev)));
            }
            if let Err(full) = state.insert(id, KeyState { rev, create: 0, version: 0, alive: false, leased: false }) {
                c.error(KEY, crate::MvccError::value(KEY, e.key, full.to_string()));
                break;
            }
            continue;
        }
        if kv.mod_revision != rev.main {
            c.push(here(
                FindingKind::ModRevisionMismatch,
                format!("mod_revision {} differs from the revision's main {}", kv.mod_revision, rev.main),
            ));
        }
        if kv.create_revision <= 0 || kv.create_revision > kv.mod_revision {
            c.push(here(
                FindingKind::CreateRevisionOutOfRange,
                format!("create_revision {} not in 1..=mod_revision {}", kv.create_revision, kv.mod_revision),
            ));
        }
        if kv.version < 1 {
            c.push(here(FindingKind::VersionMismatch, format!("put with version {}", kv.version)));
        }
        match prev {
            Some(p) if p.alive => {
                // `version` comes from the file: i64::MAX must not overflow.
                if kv.create_revision != p.create || Some(kv.version) != p.version.checked_add(1) {
                    c.push(here(
                        FindingKind::VersionMismatch,
                        format!(
                            "create_revision {} / version {} do not continue create_revision {} / version {} at {}",
                            kv.create_revision, kv.version, p.create, p.version, p.rev
                        ),
                    ));
                }
            }
            Some(p) => {
                if kv.create_revision != rev.main || kv.version != 1 {
                    c.push(here(
                        FindingKind::GenerationStartMismatch,
                        format!(
                        "new generation after the tombstone at {} must have create_revision {} and version 1, has {} and {}",
                        p.rev, rev.main, kv.create_revision, kv.version
                    )));
                }
            }
            None => {
                // Earlier revisions may have been compacted away.
                if kv.create_revision == rev.main && kv.version != 1 {
                    c.push(here(
                        FindingKind::VersionMismatch,
                        format!("created at this revision with version {}", kv.version),
                    ));
                }
            }
        }
        let now = KeyState { rev, create: kv.create_revision, version: kv.version, alive: true, leased: kv.lease != 0 };
        if let Err(full) = state.insert(id, now) {
            c.error(KEY, crate::MvccError::value(KEY, e.key, full.to_string()));
            break;
        }
    }
    stats.live_keys = state.values().filter(|s| s.alive).count() as u64;
    // Live leased keys: their latest entry read again for its lease id.
    let mut leased: Vec<Revision> = state.values().filter(|s| s.alive && s.leased).map(|s| s.rev).collect();
    drop(state);
    leased.sort_unstable();
    for rev in leased {
        let key = BucketKey { rev, tombstone: false }.to_bytes();
        let Ok(Some(value)) = b.get(&key) else { continue };
        let Ok(kv) = KvRef::parse(value) else { continue };
        if !leases.contains(&kv.lease) {
            let f = Finding::problem(
                FindingKind::LeaseMissing,
                KEY,
                format!("live key references lease {:x}, which is not in the lease bucket", kv.lease),
            );
            c.push(f.with_key(&key).at(rev, kv.key));
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    fn fixture_report() -> VerifyReport {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/etcd-3.5.1/snapshot.db");
        verify(&std::fs::read(path).unwrap(), VerifyOptions { require_trailer: true })
    }

    #[test]
    fn warnings_are_counted_and_leave_the_verdict_clean() {
        let mut r = fixture_report();
        assert_eq!((r.warning_count(), r.verdict()), (0, Verdict::Clean), "{:?}", r.findings);
        r.findings.push(Finding::warning(FindingKind::AlarmRaised, schema::ALARM, "alarm NOSPACE raised"));
        r.findings.push(Finding::warning(
            FindingKind::BucketMissing,
            b"cluster",
            "bucket missing (etcd creates it at start)",
        ));
        assert_eq!((r.warning_count(), r.verdict()), (2, Verdict::Clean));
        r.input_changed("it was written in place");
        assert_eq!((r.warning_count(), r.verdict()), (2, Verdict::Problems));
    }

    #[test]
    fn an_unreadable_file_is_one_problem() {
        let r = VerifyReport::unreadable("x.db: no such file");
        assert_eq!(r.verdict(), Verdict::Problems);
        assert_eq!((r.problem_count, r.warning_count(), r.trailer), (1, 0, Trailer::Absent));
        assert_eq!(r.stats, VerifyStats::default());
        let f = &r.findings[..];
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].severity, f[0].kind, f[0].message.as_str()),
            (Severity::Problem, FindingKind::Unreadable, "x.db: no such file")
        );
        assert!(f[0].bucket.is_empty() && f[0].page.is_none() && f[0].key.is_none() && f[0].revision.is_none());
        assert_eq!((Severity::Problem.name(), Severity::Warning.name()), ("problem", "warning"));
    }
}
