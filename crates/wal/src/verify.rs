//! `wal verify`: one pass over a WAL directory collecting what etcd's `ReadAll`
//! and `Verify` check, plus index continuity, sequence continuity and the `.snap` files.

use std::path::Path;

use etcdsnap_proto::etcdserverpb::Metadata;
use etcdsnap_proto::raftpb::HardState;
use etcdsnap_proto::walpb;
use etcdsnap_proto::Message;

use crate::decoder::Frame;
use crate::error::{CorruptKind, Corruption, Result, WalError};
use crate::reader::{read_wal, TornTail};
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

impl WalReport {
    /// Problems, one line each; empty when the WAL is clean.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.segments.is_empty() {
            p.push("no WAL segments".to_string());
        }
        for (a, b) in &self.sequence_gaps {
            p.push(format!("segment sequence gap: {b} does not follow {a}"));
        }
        for g in &self.index_gaps {
            p.push(format!(
                "{}: offset {}: index gap: expected index {}, found {}",
                g.segment, g.offset, g.expected, g.found
            ));
        }
        if let Some(c) = &self.corruption {
            p.push(format!("corrupt: {c}"));
        }
        if let Some(t) = &self.torn {
            p.push(format!(
                "{}: offset {}: torn last record ({}); repairable: truncate at offset {}",
                t.segment, t.offset, t.detail, t.offset
            ));
        }
        if let (Some(hs), Some(last)) = (&self.hard_state, self.last_index) {
            if hs.commit > last {
                p.push(format!("hard state commit {} is beyond the last entry index {last}", hs.commit));
            }
        }
        for s in &self.snap_files {
            if let Some(why) = &s.problem {
                p.push(format!("{}: {why}", s.name));
            }
        }
        if self.snap_files.iter().any(|s| s.problem.is_none()) && self.usable_snapshot.is_none() {
            p.push("no .snap file matches a committed WAL snapshot record".to_string());
        }
        p
    }
}

/// Verifies the WAL in `wal_dir` and, when given, the `.snap` files of `snap_dir`.
pub fn verify(wal_dir: &Path, snap_dir: Option<&Path>) -> Result<WalReport> {
    let segments = list_segments(wal_dir)?;
    let mut r = WalReport {
        sequence_gaps: sequence_gaps(&segments),
        segments: segments
            .iter()
            .map(|s| SegmentReport { segment: s.clone(), records: 0, data_end: 0, first_index: None, last_index: None })
            .collect(),
        ..WalReport::default()
    };
    let mut metadata_bytes: Option<Vec<u8>> = None;
    let mut last: Option<u64> = None;
    let result = read_wal(&segments, |i, f| visit(&mut r, &segments, &mut metadata_bytes, &mut last, i, f));
    match result {
        Ok(end) => {
            r.last_crc = end.crc;
            r.torn = end.torn;
            for (s, e) in r.segments.iter_mut().zip(end.data_ends) {
                s.data_end = e;
            }
        }
        Err(WalError::Corrupt(c)) => r.corruption = Some(c),
        Err(e) => return Err(e),
    }
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

fn corrupt(segments: &[Segment], i: usize, f: &Frame<'_>, last: Option<u64>, kind: CorruptKind) -> WalError {
    WalError::Corrupt(Corruption {
        segment: segments.get(i).map(|s| s.name.clone()).unwrap_or_default(),
        offset: f.offset,
        index: f.entry.map(|e| e.index),
        after_index: last,
        kind,
    })
}

fn visit(
    r: &mut WalReport,
    segments: &[Segment],
    metadata_bytes: &mut Option<Vec<u8>>,
    last: &mut Option<u64>,
    i: usize,
    f: &Frame<'_>,
) -> Result<()> {
    r.records += 1;
    if let Some(s) = r.segments.get_mut(i) {
        s.records += 1;
    }
    let data = f.record.data();
    match f.record.rec_type {
        CRC_TYPE => r.crc_records += 1,
        METADATA_TYPE => {
            r.metadata_records += 1;
            match metadata_bytes {
                Some(m) if m.as_slice() != data => {
                    return Err(corrupt(segments, i, f, *last, CorruptKind::MetadataConflict))
                }
                Some(_) => {}
                None => {
                    *metadata_bytes = Some(data.to_vec());
                    r.metadata = Metadata::decode(data).ok();
                }
            }
        }
        STATE_TYPE => {
            r.state_records += 1;
            match HardState::decode(data) {
                Ok(h) => r.hard_state = Some(h),
                Err(e) => return Err(corrupt(segments, i, f, *last, CorruptKind::Decode(format!("HardState: {e}")))),
            }
        }
        SNAPSHOT_TYPE => match walpb::Snapshot::decode(data) {
            Ok(s) => {
                r.snapshots.push(SnapMark { index: s.index, term: s.term });
                // etcd's SaveSnapshot moves enti forward: entries resume after the snapshot.
                if last.is_none_or(|l| s.index > l) && s.index > 0 {
                    *last = Some(s.index);
                }
            }
            Err(e) => return Err(corrupt(segments, i, f, *last, CorruptKind::Decode(format!("Snapshot: {e}")))),
        },
        ENTRY_TYPE => {
            r.entry_records += 1;
            let Some(e) = f.entry else { return Ok(()) };
            if let Some(s) = r.segments.get_mut(i) {
                s.first_index.get_or_insert(e.index);
                s.last_index = Some(e.index);
            }
            match *last {
                None => {}
                // raft log overwrite: this entry replaces index..=l (etcd ReadAll truncates).
                Some(l) if e.index <= l => r.overwritten += (l - e.index).saturating_add(1),
                Some(l) if Some(e.index) != l.checked_add(1) => r.index_gaps.push(IndexGap {
                    segment: segments.get(i).map(|s| s.name.clone()).unwrap_or_default(),
                    offset: f.offset,
                    expected: l.saturating_add(1),
                    found: e.index,
                }),
                Some(_) => {}
            }
            r.first_index = Some(r.first_index.map_or(e.index, |fi| fi.min(e.index)));
            *last = Some(e.index);
            r.last_index = Some(e.index);
            r.last_term = e.term;
        }
        t => return Err(corrupt(segments, i, f, *last, CorruptKind::UnknownType(t))),
    }
    Ok(())
}

/// The data-dir relation etcd relies on at boot: the backend's `consistent_index`
/// is at least the newest usable snapshot's index (else etcd needs `<index>.snap.db`)
/// and at most the WAL's last index (else the db is ahead of its log).
pub fn consistent_index_problems(consistent_index: u64, snapshot: Option<u64>, wal_last: Option<u64>) -> Vec<String> {
    let mut p = Vec::new();
    if let Some(s) = snapshot {
        if consistent_index < s {
            p.push(format!("db consistent_index {consistent_index} is below the snapshot index {s} (etcd would need {s:016x}.snap.db)"));
        }
    }
    if let Some(l) = wal_last {
        if consistent_index > l {
            p.push(format!("db consistent_index {consistent_index} is beyond the WAL's last index {l}"));
        }
    }
    p
}
