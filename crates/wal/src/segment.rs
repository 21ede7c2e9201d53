//! Segment files: `%016x-%016x.wal` = `<seq>-<first raft index>` (etcd `walName` / `parseWALName`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Result, WalError};

/// One WAL segment file found in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Full path.
    pub path: PathBuf,
    /// File name.
    pub name: String,
    /// Sequence number (first hex field).
    pub seq: u64,
    /// Raft index of the first entry expected in the file (second hex field).
    pub index: u64,
    /// File size in bytes.
    pub size: u64,
}

/// etcd's `walName(seq, index)`.
pub fn segment_name(seq: u64, index: u64) -> String {
    format!("{seq:016x}-{index:016x}.wal")
}

/// etcd's `parseWALName`: `Some((seq, index))` for a well-formed segment name.
/// (etcd uses `fmt.Sscanf("%016x-%016x.wal")`, which also accepts a few odd
/// spellings; we accept exactly what `walName` writes.)
pub fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (a, b) = stem.split_once('-')?;
    if a.len() != 16 || b.len() != 16 || !a.bytes().chain(b.bytes()).all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
}

/// All `*.wal` segments of `dir` in name order; other files (`*.tmp`, `*.broken`, …) are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<Segment>> {
    let rd = fs::read_dir(dir).map_err(|e| WalError::io(dir, e))?;
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| WalError::io(dir, e))?;
        let Ok(name) = ent.file_name().into_string() else { continue };
        let Some((seq, index)) = parse_segment_name(&name) else { continue };
        let path = ent.path();
        let meta = fs::metadata(&path).map_err(|e| WalError::io(&path, e))?;
        if !meta.is_file() {
            continue;
        }
        out.push(Segment { path, name, seq, index, size: meta.len() });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Sequence breaks: pairs of consecutive names whose seqs do not increase by one
/// (etcd `isValidSeq` refuses such a directory).
pub fn sequence_gaps(segments: &[Segment]) -> Vec<(String, String)> {
    segments
        .windows(2)
        .filter_map(|w| match w {
            [a, b] if a.seq.checked_add(1) != Some(b.seq) => Some((a.name.clone(), b.name.clone())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_name(1, 0x1f), "0000000000000001-000000000000001f.wal");
        assert_eq!(parse_segment_name("0000000000000001-000000000000001f.wal"), Some((1, 0x1f)));
        assert_eq!(parse_segment_name("0000000000000001-000000000000001f.wal.broken"), None);
        assert_eq!(parse_segment_name("0.tmp"), None);
        assert_eq!(parse_segment_name("000000000000001-000000000000001f.wal"), None);
    }
}

/// Whether `bytes` start like a WAL segment: a valid first frame holding
/// etcd's first record, the CRC record (`crcType`) that opens every segment.
pub fn looks_like_segment(bytes: &[u8]) -> bool {
    matches!(
        crate::decoder::SegmentDecoder::new(bytes, false, 0).next_frame(),
        Ok(Some(f)) if f.record.rec_type == crate::record::CRC_TYPE
    )
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod sniff_tests {
    use super::*;

    #[test]
    fn fixture_segments_and_snap_files_are_recognised() {
        let member = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/etcd-3.5.1/member");
        let wal = std::fs::read(member.join("wal/0000000000000000-0000000000000000.wal")).unwrap_or_default();
        assert!(looks_like_segment(&wal));
        let db = std::fs::read(member.join("snap/db")).unwrap_or_default();
        assert!(!db.is_empty() && !looks_like_segment(&db));
        assert!(!crate::snapfile::looks_like_snap_file(&db) && !crate::snapfile::looks_like_snap_file(&wal));
        let snap = std::fs::read(member.join("snap/0000000000000002-0000000000000192.snap")).unwrap_or_default();
        assert!(crate::snapfile::looks_like_snap_file(&snap) && !looks_like_segment(&snap));
        assert!(!looks_like_segment(b"") && !crate::snapfile::looks_like_snap_file(b""));
    }
}
