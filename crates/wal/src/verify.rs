//! `wal verify`: one pass over a WAL directory collecting what etcd's `ReadAll`
//! and `Verify` check, plus index continuity, sequence continuity and the `.snap` files.
//! Segments are read in parallel and merged in order (see [`verify_with`]).

use std::path::Path;

use etcdsnap_proto::etcdserverpb::Metadata;
use etcdsnap_proto::raftpb::HardState;
use etcdsnap_proto::walpb;
use etcdsnap_proto::Message;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::decoder::Frame;
use crate::error::{CorruptKind, Corruption, Result, WalError};
use crate::reader::{read_segment_frames, read_wal_metered, SegmentEnd, StreamBuf, TornTail};
use crate::record::{CRC_TYPE, ENTRY_TYPE, METADATA_TYPE, SNAPSHOT_TYPE, STATE_TYPE};
use crate::segment::{list_segments, sequence_gaps, Segment};
use crate::snapfile::SnapFile;

/// Per-segment figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// The segment.
    pub segment: Segment,
    /// Valid records in it.
    pub records: u64,
    /// End of valid data (etcd `lastOffset`); the rest of the file is zeros or torn.
    pub data_end: u64,
    /// Index of its first entry.
    pub first_index: Option<u64>,
    /// Index of its last entry.
    pub last_index: Option<u64>,
    /// Type of its first valid record (etcd starts every segment with a crc record).
    pub first_type: Option<i64>,
}

/// A jump in raft indexes that no snapshot record explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexGap {
    /// Segment of the entry after the gap.
    pub segment: String,
    /// Offset of that entry's frame.
    pub offset: u64,
    /// Index expected.
    pub expected: u64,
    /// Index found.
    pub found: u64,
}

/// A `walpb.Snapshot` marker record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapMark {
    /// Raft index.
    pub index: u64,
    /// Raft term.
    pub term: u64,
}

/// Everything `wal verify` found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WalReport {
    /// Segments in order.
    pub segments: Vec<SegmentReport>,
    /// Consecutive names whose sequence numbers do not follow (etcd refuses to open these).
    pub sequence_gaps: Vec<(String, String)>,
    /// Valid records.
    pub records: u64,
    /// crc records.
    pub crc_records: u64,
    /// metadata records.
    pub metadata_records: u64,
    /// entry records.
    pub entry_records: u64,
    /// hard-state records.
    pub state_records: u64,
    /// Index of the first entry.
    pub first_index: Option<u64>,
    /// Index of the last entry after raft overwrites (etcd `ReadAll`'s last entry).
    pub last_index: Option<u64>,
    /// Term of that entry.
    pub last_term: u64,
    /// Entries replaced by a later entry with the same index (raft log truncation).
    pub overwritten: u64,
    /// Unexplained index jumps.
    pub index_gaps: Vec<IndexGap>,
    /// The last HardState.
    pub hard_state: Option<HardState>,
    /// Metadata (etcd: NodeID, ClusterID), when it decodes as `etcdserverpb.Metadata`.
    pub metadata: Option<Metadata>,
    /// Snapshot marker records, in order.
    pub snapshots: Vec<SnapMark>,
    /// Running CRC after the last valid record.
    pub last_crc: u32,
    /// A torn last record (repairable).
    pub torn: Option<TornTail>,
    /// Corruption that stopped the read.
    pub corruption: Option<Corruption>,
    /// `.snap` files, when a snap dir was given.
    pub snap_files: Vec<SnapFile>,
    /// The newest `.snap` that matches a WAL snapshot record with index ≤ commit
    /// (etcd `LoadNewestAvailable` over `ValidSnapshotEntries`).
    pub usable_snapshot: Option<SnapMark>,
}

/// What kind of problem a [`WalFinding`] is; [`WalFindingKind::code`] is its
/// stable name in machine-readable output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WalFindingKind {
    /// The directory holds no WAL segment.
    NoSegments,
    /// Segment sequence numbers do not follow (etcd refuses to open the WAL).
    SequenceGap,
    /// Raft indexes jump without an overwrite to explain it.
    IndexGap,
    /// Corruption that stopped the read; the code is the corruption's
    /// ([`crate::CorruptKind::code`]).
    Corrupt(&'static str),
    /// A torn last record (repairable).
    TornTail,
    /// The hard state's commit index is beyond the last entry.
    CommitBeyondLastIndex,
    /// A `.snap` file that does not check.
    BadSnapFile,
    /// `.snap` files exist but none matches a committed WAL snapshot record.
    NoUsableSnapshot,
    /// The db's `consistent_index` is below the newest usable snapshot's index.
    ConsistentIndexBelowSnapshot,
    /// The db's `consistent_index` is beyond the WAL's last index.
    ConsistentIndexBeyondWal,
    /// A segment does not start with a crc record (empty, zeroed or never
    /// written: etcd writes one first in every segment it creates or cuts).
    MissingCrc,
    /// The WAL holds no metadata record (etcd writes it first in every segment).
    MissingMetadata,
    /// No snapshot record the WAL can be opened at: etcd's `ReadAll` fails
    /// with "wal: snapshot not found".
    SnapshotNotFound,
}

impl WalFindingKind {
    /// A stable kebab-case name, e.g. `sequence-gap`; corruption uses the
    /// corruption's name, e.g. `crc-mismatch`.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoSegments => "no-segments",
            Self::SequenceGap => "sequence-gap",
            Self::IndexGap => "index-gap",
            Self::Corrupt(code) => code,
            Self::TornTail => "torn-tail",
            Self::CommitBeyondLastIndex => "commit-beyond-last-index",
            Self::BadSnapFile => "bad-snap-file",
            Self::NoUsableSnapshot => "no-usable-snapshot",
            Self::ConsistentIndexBelowSnapshot => "consistent-index-below-snapshot",
            Self::ConsistentIndexBeyondWal => "consistent-index-beyond-wal",
            Self::MissingCrc => "missing-crc",
            Self::MissingMetadata => "missing-metadata",
            Self::SnapshotNotFound => "snapshot-not-found",
        }
    }
}

/// One problem `wal verify` found: its kind, where, and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalFinding {
    /// What kind of problem.
    pub kind: WalFindingKind,
    /// The segment or `.snap` file concerned, when one is.
    pub file: Option<String>,
    /// Byte offset in that file, when known.
    pub offset: Option<u64>,
    /// Raft index concerned, when known.
    pub index: Option<u64>,
    /// One line saying what and where.
    pub message: String,
}

impl WalFinding {
    fn new(kind: WalFindingKind, message: String) -> Self {
        Self { kind, file: None, offset: None, index: None, message }
    }

    fn at(mut self, file: &str, offset: Option<u64>) -> Self {
        self.file = Some(file.to_owned());
        self.offset = offset;
        self
    }
}

impl std::fmt::Display for WalFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl WalReport {
    /// Problems found; empty when the WAL is clean.
    pub fn problems(&self) -> Vec<WalFinding> {
        use WalFindingKind as K;
        let mut p = Vec::new();
        if self.segments.is_empty() {
            p.push(WalFinding::new(K::NoSegments, "no WAL segments".to_string()));
        }
        // Where a read stopped, the segments after it were not read: only
        // those before (and the one stopped in, if it had records) are judged.
        let stopped_in =
            self.corruption.as_ref().map(|c| c.segment.as_str()).or(self.torn.as_ref().map(|t| t.segment.as_str()));
        // A WAL starts with a crc record; later segments may lack theirs (the
        // chain continues across files) or be zeros (etcd's decoder skips to
        // the next file), as etcd's reader accepts both.
        if let Some(s) = self.segments.first() {
            let stopped_here = stopped_in == Some(s.segment.name.as_str());
            match s.first_type {
                Some(t) if t != CRC_TYPE => p.push(
                    WalFinding::new(
                        K::MissingCrc,
                        format!("{}: offset 0: the first record is of type {t}, not a crc record", s.segment.name),
                    )
                    .at(&s.segment.name, Some(0)),
                ),
                None if !stopped_here => p.push(
                    WalFinding::new(
                        K::MissingCrc,
                        format!(
                            "{}: offset 0: no record ({} bytes of zeros or nothing): every segment starts with a crc record",
                            s.segment.name, s.segment.size
                        ),
                    )
                    .at(&s.segment.name, Some(0)),
                ),
                _ => {}
            }
        }
        let read_whole = self.corruption.is_none() && self.torn.is_none();
        if !self.segments.is_empty() && self.metadata_records == 0 && read_whole {
            let first = self.segments.first().map(|s| s.segment.name.as_str()).unwrap_or("");
            p.push(
                WalFinding::new(
                    K::MissingMetadata,
                    format!("{first}: no metadata record in the WAL (etcd writes one at the start of every segment)"),
                )
                .at(first, None),
            );
        }
        if !self.segments.is_empty() && self.snapshots.is_empty() && read_whole {
            let first = self.segments.first().map(|s| s.segment.name.as_str()).unwrap_or("");
            p.push(
                WalFinding::new(
                    K::SnapshotNotFound,
                    format!("{first}: no snapshot record: etcd cannot open this WAL (\"wal: snapshot not found\")"),
                )
                .at(first, None),
            );
        }
        for (a, b) in &self.sequence_gaps {
            p.push(
                WalFinding::new(K::SequenceGap, format!("segment sequence gap: {b} does not follow {a}")).at(b, None),
            );
        }
        for g in &self.index_gaps {
            let mut f = WalFinding::new(
                K::IndexGap,
                format!(
                    "{}: offset {}: index gap: expected index {}, found {}",
                    g.segment, g.offset, g.expected, g.found
                ),
            )
            .at(&g.segment, Some(g.offset));
            f.index = Some(g.found);
            p.push(f);
        }
        if let Some(c) = &self.corruption {
            let mut f =
                WalFinding::new(K::Corrupt(c.kind.code()), format!("corrupt: {c}")).at(&c.segment, Some(c.offset));
            f.index = c.index;
            p.push(f);
        }
        if let Some(t) = &self.torn {
            p.push(
                WalFinding::new(
                    K::TornTail,
                    format!(
                        "{}: offset {}: torn last record ({}); repairable: truncate at offset {}",
                        t.segment, t.offset, t.detail, t.offset
                    ),
                )
                .at(&t.segment, Some(t.offset)),
            );
        }
        if let (Some(hs), Some(last)) = (&self.hard_state, self.last_index) {
            if hs.commit > last {
                let mut f = WalFinding::new(
                    K::CommitBeyondLastIndex,
                    format!("hard state commit {} is beyond the last entry index {last}", hs.commit),
                );
                f.index = Some(hs.commit);
                p.push(f);
            }
        }
        for s in &self.snap_files {
            if let Some(why) = &s.problem {
                let mut f = WalFinding::new(K::BadSnapFile, format!("{}: {why}", s.name)).at(&s.name, None);
                f.index = Some(s.index);
                p.push(f);
            }
        }
        if self.snap_files.iter().any(|s| s.problem.is_none()) && self.usable_snapshot.is_none() {
            p.push(WalFinding::new(
                K::NoUsableSnapshot,
                "no .snap file matches a committed WAL snapshot record".to_string(),
            ));
        }
        p
    }
}

impl WalReport {
    /// The problems of a data dir: the WAL's ([`problems`](Self::problems)), then,
    /// when the db's `consistent_index` is known, its relation to the newest usable
    /// snapshot and the WAL's last index ([`consistent_index_problems`]).
    pub fn data_dir_problems(&self, consistent_index: Option<u64>) -> Vec<WalFinding> {
        let mut p = self.problems();
        if let Some(ci) = consistent_index {
            p.extend(consistent_index_problems(ci, self.usable_snapshot.map(|s| s.index), self.last_index));
        }
        p
    }
}

/// Verifies the WAL in `wal_dir` and, when given, the `.snap` files of `snap_dir`,
/// reading the segments in parallel (one worker per core; see [`verify_with`]).
pub fn verify(wal_dir: &Path, snap_dir: Option<&Path>) -> Result<WalReport> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    verify_with(wal_dir, snap_dir, threads)
}

/// [`verify`] with `threads` segment workers; `threads <= 1` (or a single segment)
/// reads the segments one after the other. The report is the same either way.
///
/// Every segment opens with a crc record carrying the running CRC at the end of
/// the previous one, so each segment is checked on its own, seeded by that
/// record; the per-segment results are then merged in order: the head crc
/// record must equal the previous segment's final CRC (etcd's check), metadata
/// must equal the first one, and the first entry (after any snapshot records
/// before it) must follow the previous segment's last index. A segment whose
/// result depends on what came before in any other way (damaged, torn, no head
/// crc record, a chain or metadata mismatch) is read again in order with the
/// real state, so errors name the same segment, offset and index as a
/// sequential read.
pub fn verify_with(wal_dir: &Path, snap_dir: Option<&Path>, threads: usize) -> Result<WalReport> {
    verify_metered(wal_dir, snap_dir, threads, None)
}

/// [`verify_with`], telling `meter` the segment bytes read (a progress bar's count).
pub fn verify_metered(
    wal_dir: &Path,
    snap_dir: Option<&Path>,
    threads: usize,
    meter: Option<&etcdsnap_io::Meter>,
) -> Result<WalReport> {
    let segments = list_segments(wal_dir)?;
    let mut acc = Acc::new(WalReport {
        sequence_gaps: sequence_gaps(&segments),
        segments: segments.iter().map(SegmentReport::empty).collect(),
        ..WalReport::default()
    });
    if threads <= 1 || segments.len() <= 1 {
        let result = read_wal_metered(&segments, meter, |i, f| acc.visit(i, name_of(&segments, i), f));
        match result {
            Ok(end) => {
                acc.r.last_crc = end.crc;
                acc.r.torn = end.torn;
                for (s, e) in acc.r.segments.iter_mut().zip(end.data_ends) {
                    s.data_end = e;
                }
            }
            Err(WalError::Corrupt(c)) => acc.r.corruption = Some(c),
            Err(e) => return Err(e),
        }
    } else {
        parallel(&segments, &mut acc, threads, meter)?;
    }
    let mut r = acc.r;
    if let Some(dir) = snap_dir {
        r.snap_files = crate::snapfile::check_snap_dir(dir)?;
        let commit = r.hard_state.as_ref().map(|h| h.commit).unwrap_or(0);
        r.usable_snapshot = r
            .snap_files
            .iter()
            .rev()
            .filter(|s| s.problem.is_none())
            .find(|s| r.snapshots.iter().any(|m| m.index == s.index && m.term == s.term && m.index <= commit))
            .map(|s| SnapMark { index: s.index, term: s.term });
    }
    Ok(r)
}

fn name_of(segments: &[Segment], i: usize) -> &str {
    segments.get(i).map(|s| s.name.as_str()).unwrap_or("")
}

impl SegmentReport {
    fn empty(s: &Segment) -> Self {
        SegmentReport {
            segment: s.clone(),
            records: 0,
            data_end: 0,
            first_index: None,
            last_index: None,
            first_type: None,
        }
    }
}

/// A worker's view of one segment, read on its own.
#[derive(Debug, Default)]
struct Local {
    /// The `crc` of its first record, when that is a crc record.
    head_crc: Option<u32>,
    /// Indexes of snapshot records before its first entry (they move the expected
    /// next index depending on what came before, so they are applied at the merge).
    pre_snaps: Vec<u64>,
    /// Index and frame offset of its first entry (checked against the previous segments at the merge).
    first_entry: Option<(u64, u64)>,
}

/// The state of the verification: the report so far, the first metadata
/// record, the index the next entry should follow and the running CRC between
/// segments. `local` marks a worker's accumulator for a single segment.
#[derive(Debug)]
struct Acc {
    r: WalReport,
    metadata_bytes: Option<Vec<u8>>,
    last: Option<u64>,
    crc: u32,
    local: Option<Local>,
}

impl Acc {
    fn new(r: WalReport) -> Self {
        Acc { r, metadata_bytes: None, last: None, crc: 0, local: None }
    }

    fn corrupt(&self, name: &str, f: &Frame<'_>, kind: CorruptKind) -> WalError {
        WalError::Corrupt(Corruption {
            segment: name.to_string(),
            offset: f.offset,
            index: f.entry.map(|e| e.index),
            after_index: self.last,
            kind,
        })
    }

    /// One valid record of segment `slot` (in `r.segments`) named `name`.
    fn visit(&mut self, slot: usize, name: &str, f: &Frame<'_>) -> Result<()> {
        if let Some(l) = &mut self.local {
            if self.r.records == 0 && f.record.rec_type == CRC_TYPE {
                l.head_crc = Some(f.record.crc);
            }
        }
        self.r.records = self.r.records.saturating_add(1);
        if let Some(s) = self.r.segments.get_mut(slot) {
            s.first_type.get_or_insert(f.record.rec_type);
            s.records = s.records.saturating_add(1);
        }
        let data = f.record.data();
        match f.record.rec_type {
            CRC_TYPE => self.r.crc_records = self.r.crc_records.saturating_add(1),
            METADATA_TYPE => {
                self.r.metadata_records = self.r.metadata_records.saturating_add(1);
                match &self.metadata_bytes {
                    Some(m) if m.as_slice() != data => {
                        return Err(self.corrupt(name, f, CorruptKind::MetadataConflict))
                    }
                    Some(_) => {}
                    None => {
                        self.metadata_bytes = Some(data.to_vec());
                        self.r.metadata = Metadata::decode(data).ok();
                    }
                }
            }
            STATE_TYPE => {
                self.r.state_records = self.r.state_records.saturating_add(1);
                match HardState::decode(data) {
                    Ok(h) => self.r.hard_state = Some(h),
                    Err(e) => return Err(self.corrupt(name, f, CorruptKind::Decode(format!("HardState: {e}")))),
                }
            }
            SNAPSHOT_TYPE => match walpb::Snapshot::decode(data) {
                Ok(s) => {
                    self.r.snapshots.push(SnapMark { index: s.index, term: s.term });
                    match &mut self.local {
                        Some(l) if l.first_entry.is_none() => l.pre_snaps.push(s.index),
                        // etcd's SaveSnapshot moves enti forward: entries resume after the snapshot.
                        _ => self.last = snapshot_moves(self.last, s.index),
                    }
                }
                Err(e) => return Err(self.corrupt(name, f, CorruptKind::Decode(format!("Snapshot: {e}")))),
            },
            ENTRY_TYPE => {
                let r = &mut self.r;
                r.entry_records = r.entry_records.saturating_add(1);
                let Some(e) = f.entry else { return Ok(()) };
                if let Some(s) = r.segments.get_mut(slot) {
                    s.first_index.get_or_insert(e.index);
                    s.last_index = Some(e.index);
                }
                if let Some(l) = &mut self.local {
                    // `last` is None until a worker's first entry: that entry's check is the merge's.
                    l.first_entry.get_or_insert((e.index, f.offset));
                }
                if let Some(gap) = follow(self.last, e.index, &mut r.overwritten) {
                    r.index_gaps.push(IndexGap { segment: name.to_string(), offset: f.offset, ..gap });
                }
                r.first_index = Some(r.first_index.map_or(e.index, |fi| fi.min(e.index)));
                self.last = Some(e.index);
                r.last_index = Some(e.index);
                r.last_term = e.term;
            }
            t => return Err(self.corrupt(name, f, CorruptKind::UnknownType(t))),
        }
        Ok(())
    }

    /// Merges the worker's result for segment `k` (read on its own from CRC 0),
    /// or returns `false` (changing nothing) when it cannot stand for a read in order.
    fn merge(&mut self, k: usize, name: &str, w: Acc, end: &SegmentEnd) -> bool {
        let Some(l) = w.local else { return false };
        let frames = w.r.records > 0;
        if end.torn.is_some() || (frames && l.head_crc.is_none()) {
            return false;
        }
        // etcd: a crc record re-seeds the chain and must equal it when the chain is non-zero.
        if l.head_crc.is_some_and(|h| self.crc != 0 && h != self.crc) {
            return false;
        }
        if let (Some(g), Some(m)) = (&self.metadata_bytes, &w.metadata_bytes) {
            if g != m {
                return false;
            }
        }
        let r = &mut self.r;
        if self.metadata_bytes.is_none() && w.metadata_bytes.is_some() {
            self.metadata_bytes = w.metadata_bytes;
            r.metadata = w.r.metadata;
        }
        r.records = r.records.saturating_add(w.r.records);
        r.crc_records = r.crc_records.saturating_add(w.r.crc_records);
        r.metadata_records = r.metadata_records.saturating_add(w.r.metadata_records);
        r.entry_records = r.entry_records.saturating_add(w.r.entry_records);
        r.state_records = r.state_records.saturating_add(w.r.state_records);
        for s in &l.pre_snaps {
            self.last = snapshot_moves(self.last, *s);
        }
        if let Some((index, offset)) = l.first_entry {
            if let Some(gap) = follow(self.last, index, &mut r.overwritten) {
                r.index_gaps.push(IndexGap { segment: name.to_string(), offset, ..gap });
            }
            self.last = w.last;
            r.last_index = w.r.last_index;
            r.last_term = w.r.last_term;
        }
        r.overwritten = r.overwritten.saturating_add(w.r.overwritten);
        r.index_gaps.extend(w.r.index_gaps);
        if let Some(fi) = w.r.first_index {
            r.first_index = Some(r.first_index.map_or(fi, |g| g.min(fi)));
        }
        if w.r.hard_state.is_some() {
            r.hard_state = w.r.hard_state;
        }
        r.snapshots.extend(w.r.snapshots);
        if let (Some(s), Some(ws)) = (r.segments.get_mut(k), w.r.segments.first()) {
            s.records = ws.records;
            s.first_index = ws.first_index;
            s.last_index = ws.last_index;
            s.first_type = ws.first_type;
            s.data_end = end.data_end;
        }
        // A segment without records leaves the chain as it was.
        if frames {
            self.crc = end.crc;
        }
        true
    }
}

/// etcd's `SaveSnapshot` moves the expected next index to a snapshot beyond it.
fn snapshot_moves(last: Option<u64>, index: u64) -> Option<u64> {
    if last.is_none_or(|l| index > l) && index > 0 {
        Some(index)
    } else {
        last
    }
}

/// Checks that an entry with `index` follows `last`: a raft overwrite (an index at
/// or below it: etcd `ReadAll` truncates) is counted, a jump is returned as a gap
/// (segment and offset left to the caller).
fn follow(last: Option<u64>, index: u64, overwritten: &mut u64) -> Option<IndexGap> {
    match last {
        None => None,
        Some(l) if index <= l => {
            *overwritten = overwritten.saturating_add(l.saturating_sub(index).saturating_add(1));
            None
        }
        Some(l) if Some(index) != l.checked_add(1) => {
            Some(IndexGap { segment: String::new(), offset: 0, expected: l.saturating_add(1), found: index })
        }
        Some(_) => None,
    }
}

/// A worker's result for one segment: `None` when its read failed in any way
/// (the merge then reads it again in order and reports what that finds).
type Partial = Option<(Acc, SegmentEnd)>;

fn read_alone(segments: &[Segment], k: usize, sb: &mut StreamBuf) -> Partial {
    let seg = segments.get(k)?;
    let mut w = Acc::new(WalReport { segments: vec![SegmentReport::empty(seg)], ..WalReport::default() });
    w.local = Some(Local::default());
    let last = k.saturating_add(1) == segments.len();
    let mut last_index = None;
    let end = read_segment_frames(seg, k, last, 0, &mut last_index, sb, &mut |_, f| w.visit(0, &seg.name, f)).ok()?;
    Some((w, end))
}

fn parallel(segments: &[Segment], acc: &mut Acc, threads: usize, meter: Option<&etcdsnap_io::Meter>) -> Result<()> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let workers = threads.min(segments.len());
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<(usize, Partial)>();
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                let mut sb = StreamBuf::metered(meter);
                while !stop.load(Ordering::Relaxed) {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= segments.len() {
                        break;
                    }
                    if tx.send((k, read_alone(segments, k, &mut sb))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let result = merge_in_order(segments, acc, &rx, &stop);
        stop.store(true, Ordering::Relaxed);
        result
    })
}

fn merge_in_order(
    segments: &[Segment],
    acc: &mut Acc,
    rx: &mpsc::Receiver<(usize, Partial)>,
    stop: &AtomicBool,
) -> Result<()> {
    let mut pending: Vec<Option<Partial>> = segments.iter().map(|_| None).collect();
    let mut sb: Option<StreamBuf> = None;
    for (k, seg) in segments.iter().enumerate() {
        let partial = loop {
            if let Some(p) = pending.get_mut(k).and_then(Option::take) {
                break p;
            }
            match rx.recv() {
                Ok((j, p)) => {
                    if let Some(slot) = pending.get_mut(j) {
                        *slot = Some(p);
                    }
                }
                // Workers gone without this segment's result: read it here.
                Err(_) => break None,
            }
        };
        if let Some((w, end)) = partial {
            if acc.merge(k, &seg.name, w, &end) {
                continue;
            }
        }
        // Read in order with the real state: exactly the sequential read of this segment.
        let last = k.saturating_add(1) == segments.len();
        let mut last_index = acc.r.last_index;
        let sb = sb.get_or_insert_with(StreamBuf::default);
        let seed = acc.crc;
        let read = read_segment_frames(seg, k, last, seed, &mut last_index, sb, &mut |i, f| acc.visit(i, &seg.name, f));
        match read {
            Ok(end) => {
                acc.crc = end.crc;
                if let Some(s) = acc.r.segments.get_mut(k) {
                    s.data_end = end.data_end;
                }
                if end.torn.is_some() {
                    acc.r.torn = end.torn;
                    break;
                }
            }
            Err(WalError::Corrupt(c)) => {
                stop.store(true, Ordering::Relaxed);
                acc.r.corruption = Some(c);
                // As `read_wal`, which returns no ends of data when it fails.
                for s in &mut acc.r.segments {
                    s.data_end = 0;
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    acc.r.last_crc = acc.crc;
    Ok(())
}

/// The data-dir relation etcd relies on at boot: the backend's `consistent_index`
/// is at least the newest usable snapshot's index (else etcd needs `<index>.snap.db`)
/// and at most the WAL's last index (else the db is ahead of its log).
pub fn consistent_index_problems(
    consistent_index: u64,
    snapshot: Option<u64>,
    wal_last: Option<u64>,
) -> Vec<WalFinding> {
    let mut p = Vec::new();
    if let Some(s) = snapshot {
        if consistent_index < s {
            let mut f = WalFinding::new(
                WalFindingKind::ConsistentIndexBelowSnapshot,
                format!(
                    "db consistent_index {consistent_index} is below the snapshot index {s} (etcd would need {s:016x}.snap.db)"
                ),
            );
            f.index = Some(consistent_index);
            p.push(f);
        }
    }
    if let Some(l) = wal_last {
        if consistent_index > l {
            let mut f = WalFinding::new(
                WalFindingKind::ConsistentIndexBeyondWal,
                format!("db consistent_index {consistent_index} is beyond the WAL's last index {l}"),
            );
            f.index = Some(consistent_index);
            p.push(f);
        }
    }
    p
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    fn fixture_report() -> WalReport {
        let member = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/etcd-3.5.1/member");
        verify(&member.join("wal"), Some(&member.join("snap"))).unwrap()
    }

    #[test]
    fn data_dir_problems_add_the_consistent_index_relation() {
        let r = fixture_report();
        assert!(r.problems().is_empty(), "{:?}", r.problems());
        let (snap, last) = (r.usable_snapshot.unwrap().index, r.last_index.unwrap());
        assert!(snap < last);
        // No db, or a db between the snapshot and the WAL's end: the WAL's own problems only.
        assert!(r.data_dir_problems(None).is_empty());
        assert!(r.data_dir_problems(Some(snap)).is_empty());
        assert!(r.data_dir_problems(Some(last)).is_empty());
        let below = r.data_dir_problems(Some(snap - 1));
        assert_eq!(
            below.iter().map(|f| f.kind).collect::<Vec<_>>(),
            vec![WalFindingKind::ConsistentIndexBelowSnapshot]
        );
        assert_eq!(below[0].index, Some(snap - 1));
        let beyond = r.data_dir_problems(Some(last + 1));
        assert_eq!(beyond.iter().map(|f| f.kind).collect::<Vec<_>>(), vec![WalFindingKind::ConsistentIndexBeyondWal]);
        assert_eq!(
            beyond[0].message,
            format!("db consistent_index {} is beyond the WAL's last index {last}", last + 1)
        );
    }

    #[test]
    fn data_dir_problems_come_after_the_wals_own() {
        let mut r = fixture_report();
        r.snap_files.clear();
        r.usable_snapshot = None;
        r.segments.clear();
        let last = r.last_index.unwrap();
        let p = r.data_dir_problems(Some(last + 5));
        let kinds: Vec<_> = p.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, vec![WalFindingKind::NoSegments, WalFindingKind::ConsistentIndexBeyondWal]);
    }
}
