//! The reader, verifier, repair and rewrite on real etcd WALs (and damaged copies).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::fs;
use std::path::{Path, PathBuf};

use etcdsnap_keys::KeyRules;
use etcdsnap_proto::Message;
use etcdsnap_testkit::{scratch, EtcdVersion};
use etcdsnap_wal::record::SNAPSHOT_TYPE;
use etcdsnap_wal::record::{Encoder, CRC_TYPE, ENTRY_TYPE, METADATA_TYPE, STATE_TYPE};
use etcdsnap_wal::repair::{repair, RepairOutcome};
use etcdsnap_wal::{
    list_segments, read_wal, segment_name, verify, verify_with, CorruptKind, SegmentDecoder, WalFinding,
    WalFindingKind, WalReport,
};

const SEG0: &str = "0000000000000000-0000000000000000.wal";

/// The report's problem messages, one per line.
fn messages(r: &WalReport) -> String {
    r.problems().iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("\n")
}

fn wal_dir(v: EtcdVersion) -> PathBuf {
    v.fixture_dir().join("member/wal")
}

/// One record as read: type, data, entry index, frame offset and length.
#[derive(Debug, Clone)]
struct Rec {
    rec_type: i64,
    data: Option<Vec<u8>>,
    index: Option<u64>,
    offset: u64,
    len: u64,
}

fn records(dir: &Path) -> Vec<Rec> {
    let (frames, torn) = read_frames(dir);
    assert!(!torn);
    frames.into_iter().map(|(_, r)| r).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Re-frames `recs` into segments as etcd's `cut` would lay them out: each new
/// segment (`split_at` = entry index starting it) opens with a crc record, the
/// metadata record and the last hard state.
fn write_segments(dir: &Path, recs: &[Rec], split_at: &[u64]) {
    let cuts: Vec<usize> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.rec_type == ENTRY_TYPE && split_at.contains(&r.index.unwrap()))
        .map(|(i, _)| i)
        .collect();
    write_split(dir, recs, &cuts, None);
}

/// [`write_segments`] cutting before the records at positions `cuts` (a new
/// segment is named after the next entry's index); `alt_meta` = (seq, data)
/// writes other metadata at the head of that segment.
fn write_split(dir: &Path, recs: &[Rec], cuts: &[usize], alt_meta: Option<(u64, &[u8])>) {
    fs::create_dir_all(dir).unwrap();
    let mut enc = Encoder::new(0);
    let metadata = recs.iter().find(|r| r.rec_type == METADATA_TYPE).unwrap().data.clone();
    let mut last_state: Option<Vec<u8>> = None;
    let mut seq = 0u64;
    let mut buf = Vec::new();
    let mut name = segment_name(0, 0);
    for (i, r) in recs.iter().enumerate() {
        if cuts.contains(&i) {
            fs::write(dir.join(&name), &buf).unwrap();
            buf.clear();
            seq += 1;
            let next = recs[i..].iter().find_map(|r| r.index).unwrap_or(0);
            name = segment_name(seq, next);
            enc.encode_crc_record(&mut buf).unwrap();
            match alt_meta {
                Some((s, m)) if s == seq => enc.encode(&mut buf, METADATA_TYPE, Some(m)).unwrap(),
                _ => enc.encode(&mut buf, METADATA_TYPE, metadata.as_deref()).unwrap(),
            };
            if let Some(s) = &last_state {
                enc.encode(&mut buf, STATE_TYPE, Some(s)).unwrap();
            }
        }
        if r.rec_type == STATE_TYPE {
            last_state = r.data.clone();
        }
        if r.rec_type == CRC_TYPE {
            enc.encode_crc_record(&mut buf).unwrap();
        } else {
            enc.encode(&mut buf, r.rec_type, r.data.as_deref()).unwrap();
        }
    }
    fs::write(dir.join(&name), &buf).unwrap();
}

#[test]
fn fixtures_verify_clean() {
    for v in EtcdVersion::ALL {
        let snap = v.fixture_dir().join("member/snap");
        let r = verify(&wal_dir(v), Some(&snap)).unwrap();
        assert_eq!(r.problems(), Vec::<WalFinding>::new(), "{v}");
        assert_eq!(r.segments.len(), 1);
        assert_eq!(r.first_index, Some(1));
        let hs = r.hard_state.clone().unwrap();
        assert_eq!(r.last_index, Some(hs.commit), "{v}");
        assert_eq!(r.crc_records, 1);
        assert_eq!(r.metadata_records, 1);
        assert!(r.metadata.as_ref().unwrap().node_id != 0);
        assert!(!r.snapshots.is_empty());
        assert!(r.usable_snapshot.is_some());
        assert!(r.snap_files.len() >= 6 && r.snap_files.iter().all(|s| s.problem.is_none()));
    }
}

#[test]
fn identity_rewrite_is_byte_exact() {
    for v in EtcdVersion::ALL {
        let out = scratch(&format!("wal-identity-{v}")).join("wal");
        let rep = etcdsnap_wal::rewrite::rewrite(&wal_dir(v), &out, &KeyRules::default()).unwrap();
        assert_eq!((rep.rewritten, rep.emptied), (0, 0));
        let orig = fs::read(wal_dir(v).join(SEG0)).unwrap();
        let new = fs::read(out.join(SEG0)).unwrap();
        assert_eq!(&orig[..new.len()], &new[..], "{v}");
        assert!(orig[new.len()..].iter().all(|&b| b == 0));
    }
}

#[test]
fn rewrite_refuses_renaming_a_key_to_the_empty_key() {
    // The fixture WAL puts `compact_rev_key`; renaming that whole key away leaves the
    // empty key, which etcd rejects (the snapshot rewrite refuses it too).
    let out = scratch("wal-rewrite-empty-key").join("out");
    let rules =
        KeyRules { renames: vec![etcdsnap_keys::Rename::parse("compact_rev_key=").unwrap()], ..KeyRules::default() };
    let err = etcdsnap_wal::rewrite::rewrite(&wal_dir(EtcdVersion::V3_5_1), &out, &rules).unwrap_err();
    assert!(err.to_string().contains("empty key"), "{err}");
    assert!(!out.exists(), "nothing may be written");
    let parent = out.parent().unwrap();
    assert!(fs::read_dir(parent).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp.")));
}

/// A cancelled rewrite (the CLI's SIGINT/SIGTERM handler sets the flag) stops,
/// removes its temporary directory and says it was interrupted.
#[test]
fn cancelled_rewrite_leaves_nothing() {
    let dir = scratch("wal-rewrite-cancel");
    let out = dir.join("wal");
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(2));
    let opts = etcdsnap_wal::rewrite::RewriteOptions { consistent_index: None, cancel: Some(flag), meter: None };
    let err = etcdsnap_wal::rewrite::rewrite_with(&wal_dir(EtcdVersion::V3_5_1), &out, &KeyRules::default(), opts)
        .unwrap_err();
    assert!(matches!(err, etcdsnap_wal::WalError::Interrupted { signal: 2 }), "{err}");
    assert!(fs::read_dir(&dir).unwrap().next().is_none(), "nothing left");
}

#[test]
fn rewrite_refuses_non_empty_output() {
    let dir = scratch("wal-rewrite-nonempty");
    fs::write(dir.join("x"), b"x").unwrap();
    let err = etcdsnap_wal::rewrite::rewrite(&wal_dir(EtcdVersion::V3_5_1), &dir, &KeyRules::default()).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
}

#[test]
fn flipped_byte_is_a_crc_error_naming_segment_offset_and_index() {
    let v = EtcdVersion::V3_5_1;
    let dir = scratch("wal-flip").join("wal");
    copy_dir(&wal_dir(v), &dir);
    let recs = records(&dir);
    // A put in the middle: flip the last byte of its record (inside the value).
    let target = recs.iter().filter(|r| r.rec_type == ENTRY_TYPE).nth(700).unwrap().clone();
    let path = dir.join(SEG0);
    let mut bytes = fs::read(&path).unwrap();
    let data_len = target.data.as_ref().unwrap().len() as u64;
    let (rec_bytes, _) = etcdsnap_wal::record::decode_frame_size(u64::from_le_bytes(
        bytes[target.offset as usize..][..8].try_into().unwrap(),
    ));
    assert!(rec_bytes > data_len);
    let at = (target.offset + 8 + rec_bytes - 1) as usize;
    bytes[at] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let r = verify(&dir, None).unwrap();
    let c = r.corruption.clone().expect("corruption reported");
    assert_eq!(c.segment, SEG0);
    assert_eq!(c.offset, target.offset);
    assert_eq!(c.index, target.index);
    assert!(matches!(c.kind, CorruptKind::CrcMismatch { .. }), "{c}");
    assert!(r.torn.is_none());
    let msg = messages(&r);
    assert!(msg.contains(&format!("{SEG0}: offset {}: index {}", target.offset, target.index.unwrap())), "{msg}");
    let p = r.problems();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        (p[0].kind.code(), p[0].file.as_deref(), p[0].offset),
        ("crc-mismatch", Some(SEG0), Some(target.offset))
    );
    // Repair refuses: this is not a torn tail.
    assert!(matches!(repair(&dir), Err(etcdsnap_wal::WalError::Corrupt(_))));
}

#[test]
fn crc_record_must_continue_the_chain() {
    let v = EtcdVersion::V3_5_1;
    let recs = records(&wal_dir(v));
    let dir = scratch("wal-crcrec").join("wal");
    let idx = recs.iter().filter_map(|r| r.index).nth(600).unwrap();
    write_segments(&dir, &recs, &[idx]);
    // Patch the second segment's crc record value (first frame; crc varint at byte 11).
    let segs = list_segments(&dir).unwrap();
    let mut b = fs::read(&segs[1].path).unwrap();
    b[11] ^= 0x01;
    fs::write(&segs[1].path, &b).unwrap();
    let r = verify(&dir, None).unwrap();
    let c = r.corruption.expect("corruption");
    assert_eq!((c.segment.as_str(), c.offset), (segs[1].name.as_str(), 0));
    assert!(matches!(c.kind, CorruptKind::CrcRecordMismatch { .. }), "{c}");
}

/// Cuts the last segment inside its last record that spans a 512-byte sector
/// boundary (the sectors after the cut never reached the disk: zeros up to the
/// next 4 KiB page), dropping everything after it. Returns the frame offset.
pub fn make_torn(dir: &Path) -> u64 {
    let recs = records(dir);
    let segs = list_segments(dir).unwrap();
    let last = segs.last().unwrap();
    let r = recs
        .iter()
        .rev()
        .find(|r| r.rec_type == ENTRY_TYPE && (r.offset + 8) / 512 != (r.offset + r.len - 1) / 512)
        .unwrap()
        .clone();
    let cut = ((r.offset + 8) / 512 + 1) * 512;
    let end = (r.offset + r.len).div_ceil(4096) * 4096;
    let mut b = fs::read(&last.path).unwrap();
    b.truncate(cut as usize);
    b.resize(end as usize, 0);
    fs::write(&last.path, &b).unwrap();
    r.offset
}

#[test]
fn torn_tail_is_reported_and_repaired() {
    for v in EtcdVersion::ALL {
        let dir = scratch(&format!("wal-torn-{v}")).join("wal");
        copy_dir(&wal_dir(v), &dir);
        let off = make_torn(&dir);
        let r = verify(&dir, None).unwrap();
        assert!(r.corruption.is_none(), "{:?}", r.corruption);
        let t = r.torn.clone().expect("torn");
        assert_eq!((t.segment.as_str(), t.offset), (SEG0, off));
        assert_eq!(r.problems().len(), 1);
        match repair(&dir).unwrap() {
            RepairOutcome::Repaired { truncated_at, broken, .. } => {
                assert_eq!(truncated_at, off);
                assert!(broken.exists());
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(fs::metadata(dir.join(SEG0)).unwrap().len(), off);
        let r = verify(&dir, None).unwrap();
        assert_eq!(r.problems(), Vec::<WalFinding>::new());
        assert!(matches!(repair(&dir).unwrap(), RepairOutcome::NothingToRepair { .. }));
    }
}

#[test]
fn split_segments_verify_and_sequence_gap_is_reported() {
    let recs = records(&wal_dir(EtcdVersion::V3_4_23));
    let dir = scratch("wal-split").join("wal");
    let entries: Vec<u64> = recs.iter().filter_map(|r| r.index).collect();
    let (a, b) = (entries[500], entries[1000]);
    write_segments(&dir, &recs, &[a, b]);
    let r = verify(&dir, None).unwrap();
    assert_eq!(r.problems(), Vec::<WalFinding>::new());
    assert_eq!(r.segments.len(), 3);
    assert_eq!(r.segments[1].segment.index, a);
    assert_eq!(r.segments[1].first_index, Some(a));
    assert_eq!(r.entry_records as usize, entries.len());
    assert_eq!(r.crc_records, 3);

    // Identity rewrite keeps the layout byte for byte.
    let out = scratch("wal-split-rewrite").join("wal");
    etcdsnap_wal::rewrite::rewrite(&dir, &out, &KeyRules::default()).unwrap();
    for s in list_segments(&dir).unwrap() {
        assert_eq!(fs::read(&s.path).unwrap(), fs::read(out.join(&s.name)).unwrap(), "{}", s.name);
    }

    // Rename the middle segment: seq 1 is missing.
    let segs = list_segments(&dir).unwrap();
    fs::rename(&segs[1].path, dir.join(segment_name(7, a))).unwrap();
    let r = verify(&dir, None).unwrap();
    assert_eq!(r.sequence_gaps.len(), 2);
    assert!(
        r.problems()
            .iter()
            .any(|p| p.kind == WalFindingKind::SequenceGap && p.message.contains("segment sequence gap")),
        "{:?}",
        r.problems()
    );
}

#[test]
fn index_gap_is_reported() {
    let mut recs = records(&wal_dir(EtcdVersion::V3_5_1));
    let pos = recs.iter().position(|r| r.index == Some(900)).unwrap();
    recs.remove(pos);
    let dir = scratch("wal-index-gap").join("wal");
    write_segments(&dir, &recs, &[]);
    let r = verify(&dir, None).unwrap();
    assert_eq!(r.index_gaps.len(), 1);
    assert_eq!((r.index_gaps[0].expected, r.index_gaps[0].found), (900, 901));
}

#[test]
fn raft_overwrite_is_not_a_gap() {
    let mut recs = records(&wal_dir(EtcdVersion::V3_5_1));
    // Re-append entries 1400.. again (as a new leader overwriting an uncommitted tail would).
    let tail: Vec<Rec> = recs.iter().filter(|r| r.index.is_some_and(|i| i >= 1400)).cloned().collect();
    recs.extend(tail);
    let dir = scratch("wal-overwrite").join("wal");
    write_segments(&dir, &recs, &[]);
    let r = verify(&dir, None).unwrap();
    assert!(r.index_gaps.is_empty());
    assert_eq!(r.overwritten, 90);
}

#[test]
fn snap_file_crc_mismatch_is_reported() {
    let v = EtcdVersion::V3_5_1;
    let snap = scratch("wal-snap-flip").join("snap");
    copy_dir(&v.fixture_dir().join("member/snap"), &snap);
    fs::remove_file(snap.join("db")).unwrap();
    let name = "0000000000000002-000000000000057f.snap";
    let mut b = fs::read(snap.join(name)).unwrap();
    let n = b.len();
    b[n - 100] ^= 0x20;
    fs::write(snap.join(name), &b).unwrap();
    let r = verify(&wal_dir(v), Some(&snap)).unwrap();
    let p = messages(&r);
    assert!(p.contains(name) && p.contains("crc mismatch"), "{p}");
}

/// The parallel verification equals the sequential one, for several worker counts.
fn parallel_matches(dir: &Path, snap: Option<&Path>) -> WalReport {
    let seq = verify_with(dir, snap, 1).unwrap();
    for t in [2, 3, 8] {
        let par = verify_with(dir, snap, t).unwrap();
        assert_eq!(par, seq, "{}: {t} threads", dir.display());
    }
    seq
}

/// Frames per segment: (segment position, record).
fn frames(dir: &Path) -> Vec<(usize, Rec)> {
    read_frames(dir).0
}

/// Every record with its segment index, and whether the WAL ends torn.
fn read_frames(dir: &Path) -> (Vec<(usize, Rec)>, bool) {
    let segs = list_segments(dir).unwrap();
    let mut out = Vec::new();
    let end = read_wal(&segs, |i, f| {
        out.push((
            i,
            Rec {
                rec_type: f.record.rec_type,
                data: f.record.data.map(<[u8]>::to_vec),
                index: f.entry.map(|e| e.index),
                offset: f.offset,
                len: f.len,
            },
        ));
        Ok(())
    })
    .unwrap();
    (out, end.torn.is_some())
}

/// Cut positions (record positions) splitting `recs` into `parts` segments at entries.
fn even_cuts(recs: &[Rec], parts: usize) -> Vec<usize> {
    let entries: Vec<usize> = (0..recs.len()).filter(|&i| recs[i].rec_type == ENTRY_TYPE).collect();
    (1..parts).map(|k| entries[entries.len() * k / parts]).collect()
}

fn split_dir(name: &str, recs: &[Rec], cuts: &[usize]) -> PathBuf {
    let dir = scratch(name).join("wal");
    write_split(&dir, recs, cuts, None);
    dir
}

#[test]
fn parallel_verify_matches_sequential_on_fixtures_and_splits() {
    for v in EtcdVersion::ALL {
        let snap = v.fixture_dir().join("member/snap");
        parallel_matches(&wal_dir(v), Some(&snap));
        let recs = records(&wal_dir(v));
        let dir = split_dir(&format!("wal-par-split-{v}"), &recs, &even_cuts(&recs, 6));
        let r = parallel_matches(&dir, None);
        assert_eq!(r.problems(), Vec::<WalFinding>::new(), "{v}");
        assert_eq!(r.segments.len(), 6);
        assert_eq!(r.crc_records, 6);
        assert!(r.segments.iter().all(|s| s.data_end > 0 && s.first_index.is_some()));
        // Every snapshot record at the head of a segment, before its first entry.
        let snaps: Vec<usize> = (0..recs.len()).filter(|&i| recs[i].rec_type == SNAPSHOT_TYPE).collect();
        let dir = split_dir(&format!("wal-par-snaps-{v}"), &recs, &snaps);
        let r = parallel_matches(&dir, None);
        assert_eq!(r.problems(), Vec::<WalFinding>::new(), "{v}");
        assert_eq!(r.segments.len(), snaps.len() + 1);
    }
}

#[test]
fn parallel_verify_matches_sequential_on_damaged_splits() {
    let recs = records(&wal_dir(EtcdVersion::V3_5_1));
    let cuts = even_cuts(&recs, 5);

    // A flipped byte inside a record of a middle segment.
    let dir = split_dir("wal-par-flip", &recs, &cuts);
    let fr = frames(&dir);
    let (seg, target) = fr.iter().filter(|(i, r)| *i == 2 && r.rec_type == ENTRY_TYPE).nth(40).unwrap().clone();
    let segs = list_segments(&dir).unwrap();
    let mut b = fs::read(&segs[seg].path).unwrap();
    let o = target.offset as usize;
    let (rec_bytes, _) = etcdsnap_wal::record::decode_frame_size(u64::from_le_bytes(b[o..o + 8].try_into().unwrap()));
    b[o + 8 + rec_bytes as usize - 1] ^= 0x40;
    fs::write(&segs[seg].path, &b).unwrap();
    let r = parallel_matches(&dir, None);
    let c = r.corruption.clone().expect("corruption");
    assert_eq!((c.segment.as_str(), c.offset), (segs[2].name.as_str(), target.offset));
    assert!(matches!(c.kind, CorruptKind::CrcMismatch { .. }), "{c}");
    assert_eq!(c.index, target.index);

    // The head crc record of a middle segment does not continue the chain.
    let dir = split_dir("wal-par-crcrec", &recs, &cuts);
    let segs = list_segments(&dir).unwrap();
    let mut b = fs::read(&segs[3].path).unwrap();
    b[11] ^= 0x01;
    fs::write(&segs[3].path, &b).unwrap();
    let r = parallel_matches(&dir, None);
    let c = r.corruption.expect("corruption");
    assert_eq!((c.segment.as_str(), c.offset), (segs[3].name.as_str(), 0));
    assert!(matches!(c.kind, CorruptKind::CrcRecordMismatch { .. }), "{c}");

    // A middle segment cut short (a frame runs past its end).
    let dir = split_dir("wal-par-short", &recs, &cuts);
    let segs = list_segments(&dir).unwrap();
    let n = fs::metadata(&segs[1].path).unwrap().len();
    fs::OpenOptions::new().write(true).open(&segs[1].path).unwrap().set_len(n / 2 + 3).unwrap();
    let r = parallel_matches(&dir, None);
    let c = r.corruption.expect("corruption");
    assert_eq!(c.segment, segs[1].name);
    assert!(matches!(c.kind, CorruptKind::Truncated { .. }), "{c}");

    // A torn tail in the last segment.
    let dir = split_dir("wal-par-torn", &recs, &cuts);
    let off = make_torn(&dir);
    let r = parallel_matches(&dir, None);
    let t = r.torn.expect("torn");
    assert_eq!((t.segment.as_str(), t.offset), (list_segments(&dir).unwrap()[4].name.as_str(), off));
    assert!(r.corruption.is_none());

    // A segment sequence gap.
    let dir = split_dir("wal-par-seqgap", &recs, &cuts);
    let segs = list_segments(&dir).unwrap();
    fs::rename(&segs[2].path, dir.join(segment_name(9, segs[2].index))).unwrap();
    let r = parallel_matches(&dir, None);
    assert!(!r.sequence_gaps.is_empty());

    // Index gaps: at a segment boundary (the entry opening segment 2 removed) and inside segment 3.
    let mut gap = recs.clone();
    let at_cut = gap[cuts[1]].index.unwrap();
    let inside = gap[cuts[2] + 30].index.unwrap();
    gap.retain(|r| r.index != Some(at_cut) && r.index != Some(inside));
    let dir = scratch("wal-par-gap").join("wal");
    write_segments(&dir, &gap, &[recs[cuts[0]].index.unwrap(), at_cut + 1, recs[cuts[2]].index.unwrap()]);
    let r = parallel_matches(&dir, None);
    let found: Vec<(u64, u64)> = r.index_gaps.iter().map(|g| (g.expected, g.found)).collect();
    assert_eq!(found, vec![(at_cut, at_cut + 1), (inside, inside + 1)]);
    assert_eq!(
        r.index_gaps[0].offset,
        frames(&dir).iter().find(|(_, f)| f.index == Some(at_cut + 1)).unwrap().1.offset
    );

    // Raft overwrites at a segment boundary and inside a segment.
    let mut ow = recs.clone();
    let tail: Vec<Rec> = recs.iter().filter(|r| r.index.is_some_and(|i| i >= 1400)).cloned().collect();
    let cut_ow = ow.len();
    ow.extend(tail.iter().cloned());
    ow.extend(tail.iter().take(20).cloned());
    let dir = split_dir("wal-par-overwrite", &ow, &[cuts[0], cuts[3], cut_ow]);
    let r = parallel_matches(&dir, None);
    assert!(r.index_gaps.is_empty());
    assert_eq!(r.overwritten, 90 + 90);

    // A snapshot record beyond the last entry opening a segment (entries resume after it), and a gap after one.
    let mut sn = recs.clone();
    let (lo, hi) = (900u64, 950u64);
    let term = sn.iter().find(|r| r.index == Some(hi)).map(entry_term).unwrap();
    sn.retain(|r| !r.index.is_some_and(|i| (lo..=hi).contains(&i)));
    let pos = sn.iter().position(|r| r.index == Some(hi + 1)).unwrap();
    let snap = etcdsnap_proto::walpb::Snapshot { index: hi, term, conf_state: None };
    sn.insert(pos, Rec { rec_type: SNAPSHOT_TYPE, data: Some(snap.encode_to_vec()), index: None, offset: 0, len: 0 });
    let dir = split_dir("wal-par-snapjump", &sn, &[cuts[0], pos, cuts[3]]);
    let r = parallel_matches(&dir, None);
    assert!(r.index_gaps.is_empty(), "{:?}", r.index_gaps);
    let snap = etcdsnap_proto::walpb::Snapshot { index: hi - 10, term, conf_state: None };
    sn[pos].data = Some(snap.encode_to_vec());
    let dir = split_dir("wal-par-snapshort", &sn, &[cuts[0], pos, cuts[3]]);
    let r = parallel_matches(&dir, None);
    assert_eq!(r.index_gaps.len(), 1);

    // Other metadata at the head of a middle segment, and inside one.
    let dir = scratch("wal-par-meta").join("wal");
    write_split(&dir, &recs, &cuts, Some((3, b"other metadata")));
    let r = parallel_matches(&dir, None);
    let c = r.corruption.expect("corruption");
    assert!(matches!(c.kind, CorruptKind::MetadataConflict), "{c}");
    assert_eq!(c.segment, list_segments(&dir).unwrap()[3].name);
    let mut mm = recs.clone();
    mm.insert(cuts[2] + 5, Rec { rec_type: METADATA_TYPE, data: Some(b"x".to_vec()), index: None, offset: 0, len: 0 });
    let r = parallel_matches(&split_dir("wal-par-meta2", &mm, &cuts), None);
    assert!(matches!(r.corruption.expect("corruption").kind, CorruptKind::MetadataConflict));

    // An unknown record type in a middle segment.
    let mut uk = recs.clone();
    uk.insert(cuts[1] + 7, Rec { rec_type: 9, data: Some(b"?".to_vec()), index: None, offset: 0, len: 0 });
    let r = parallel_matches(&split_dir("wal-par-unknown", &uk, &cuts), None);
    assert!(matches!(r.corruption.expect("corruption").kind, CorruptKind::UnknownType(9)));

    // A middle segment without its head crc record (the chain simply continues), and an empty one.
    let dir = split_dir("wal-par-nohead", &recs, &cuts);
    let segs = list_segments(&dir).unwrap();
    let b = fs::read(&segs[2].path).unwrap();
    let (rec_bytes, pad) = etcdsnap_wal::record::decode_frame_size(u64::from_le_bytes(b[..8].try_into().unwrap()));
    fs::write(&segs[2].path, &b[(8 + rec_bytes + pad) as usize..]).unwrap();
    let r = parallel_matches(&dir, None);
    assert_eq!(r.problems(), Vec::<WalFinding>::new());
    assert_eq!(r.crc_records, 4);
    for s in segs.iter().skip(1).rev() {
        fs::rename(&s.path, dir.join(segment_name(s.seq + 1, s.index))).unwrap();
    }
    fs::write(dir.join(segment_name(1, segs[1].index)), vec![0u8; 4096]).unwrap();
    let r = parallel_matches(&dir, None);
    assert_eq!(r.problems(), Vec::<WalFinding>::new());
    assert_eq!(r.segments.len(), 6);
}

/// The fixture WAL's grant (etcdctl role grant-permission --prefix tenant1-rw readwrite /tenant-1/)
/// plus an appended revoke: both key ranges are renamed as the snapshot rewrite renames role permissions.
#[test]
fn rewrite_renames_auth_role_permission_ranges() {
    use etcdsnap_proto::etcdserverpb::{AuthRoleRevokePermissionRequest, InternalRaftRequest};
    use etcdsnap_proto::raftpb::Entry;
    let mut recs = records(&wal_dir(EtcdVersion::V3_5_1));
    let last = recs.iter().rev().find(|r| r.rec_type == ENTRY_TYPE).unwrap().clone();
    let last_entry = Entry::decode(last.data.as_deref().unwrap()).unwrap();
    let revoke = InternalRaftRequest {
        auth_role_revoke_permission: Some(AuthRoleRevokePermissionRequest {
            role: "tenant1-rw".into(),
            key: b"/tenant-1/registry/a".to_vec(),
            range_end: b"/tenant-1/registry/b".to_vec(),
        }),
        ..Default::default()
    };
    let entry = Entry { index: last_entry.index + 1, data: Some(revoke.encode_to_vec()), ..last_entry };
    let index = entry.index;
    recs.push(Rec { rec_type: ENTRY_TYPE, data: Some(entry.encode_to_vec()), index: Some(index), offset: 0, len: 0 });
    let dir = scratch("wal-perm").join("wal");
    write_segments(&dir, &recs, &[]);

    let perms = |dir: &Path| -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for r in records(dir).iter().filter(|r| r.rec_type == ENTRY_TYPE) {
            let e = Entry::decode(r.data.as_deref().unwrap()).unwrap();
            let Ok(irr) = InternalRaftRequest::decode(e.data.as_deref().unwrap_or(&[])) else { continue };
            if let Some(p) = irr.auth_role_grant_permission.and_then(|g| g.perm) {
                out.push((p.key, p.range_end));
            }
            if let Some(v) = irr.auth_role_revoke_permission {
                out.push((v.key, v.range_end));
            }
        }
        out
    };
    let before = perms(&dir);
    assert_eq!(
        before,
        vec![
            (b"/tenant-1/".to_vec(), b"/tenant-10".to_vec()),
            (b"/tenant-1/registry/a".to_vec(), b"/tenant-1/registry/b".to_vec())
        ]
    );

    let rules = KeyRules {
        include: vec![b"/tenant-1/".to_vec()],
        renames: vec![etcdsnap_keys::Rename::parse("/tenant-1/=/t1/").unwrap()],
        ..KeyRules::default()
    };
    // The fixture's WAL writes compact_rev_key: a prefix filter may not drop it unnamed.
    let crk = scratch("wal-perm-crk");
    let e = etcdsnap_wal::rewrite::rewrite(&dir, &crk.join("wal"), &rules).unwrap_err();
    assert!(e.to_string().contains("--keep-key compact_rev_key or --drop-key compact_rev_key"), "{e}");
    assert!(std::fs::read_dir(&crk).unwrap().next().is_none(), "nothing written");
    let rules = KeyRules { keep_keys: vec![b"compact_rev_key".to_vec()], ..rules };
    let out = scratch("wal-perm-out").join("wal");
    let rep = etcdsnap_wal::rewrite::rewrite(&dir, &out, &rules).unwrap();
    assert_eq!(rep.permissions_renamed, 2);
    assert_eq!(rep.compact_rev_key, etcdsnap_keys::CompactRevKey::Kept);
    let matched: Vec<(String, u64)> = rep.rules.iter().map(|m| (m.to_string(), m.matched)).collect();
    assert_eq!(matched.len(), 3);
    assert!(matched.iter().all(|(_, n)| *n > 0), "{matched:?}");
    let after = perms(&out);
    let want: Vec<(Vec<u8>, Vec<u8>)> = before.iter().map(|(k, e)| rules.renamed_range(k, e)).collect();
    assert_eq!(after, want);
    assert_eq!(
        after,
        vec![(b"/t1/".to_vec(), b"/t10".to_vec()), (b"/t1/registry/a".to_vec(), b"/t1/registry/b".to_vec())]
    );
    assert_eq!(verify(&out, None).unwrap().problems(), Vec::<WalFinding>::new());

    // A filter without renames leaves them alone.
    let rules = KeyRules {
        include: vec![b"/tenant-1/".to_vec()],
        drop_keys: vec![b"compact_rev_key".to_vec()],
        ..KeyRules::default()
    };
    let out = scratch("wal-perm-out2").join("wal");
    let rep = etcdsnap_wal::rewrite::rewrite(&dir, &out, &rules).unwrap();
    assert_eq!(rep.permissions_renamed, 0);
    assert_eq!(rep.compact_rev_key, etcdsnap_keys::CompactRevKey::Dropped);
    assert_eq!(perms(&out), before);

    // A grant reaching outside the rename source cannot also grant the renamed
    // part in one request: kept unchanged and listed; the one inside is renamed.
    let rules = KeyRules {
        keep_keys: vec![b"compact_rev_key".to_vec()],
        renames: vec![etcdsnap_keys::Rename::parse("/tenant-1/registry/=/registry/").unwrap()],
        ..KeyRules::default()
    };
    let out = scratch("wal-perm-out3").join("wal");
    let rep = etcdsnap_wal::rewrite::rewrite(&dir, &out, &rules).unwrap();
    assert_eq!((rep.permissions_renamed, rep.permissions_overlapping.len()), (1, 1), "{rep:?}");
    let grant_index = rep.permissions_overlapping[0].0;
    // etcd would replay that grant (above the db's consistent_index) without the renamed part: refused.
    let replayed = |ci: u64, name: &str| {
        let opts = etcdsnap_wal::rewrite::RewriteOptions { consistent_index: Some(ci), cancel: None, meter: None };
        etcdsnap_wal::rewrite::rewrite_with(&dir, &scratch(name).join("wal"), &rules, opts)
    };
    let e = replayed(grant_index - 1, "wal-perm-out4").unwrap_err().to_string();
    assert!(e.contains("reaches inside and outside a rename source") && e.contains("stop etcd cleanly"), "{e}");
    assert!(replayed(grant_index, "wal-perm-out5").is_ok());
    assert_eq!(
        perms(&out),
        vec![(b"/tenant-1/".to_vec(), b"/tenant-10".to_vec()), (b"/registry/a".to_vec(), b"/registry/b".to_vec())]
    );
}

fn entry_term(r: &Rec) -> u64 {
    etcdsnap_proto::raftpb::Entry::decode(r.data.as_deref().unwrap()).unwrap().term
}

proptest::proptest! {
    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096), last: bool) {
        let mut d = SegmentDecoder::new(&bytes, last, 0);
        for _ in 0..10_000 {
            match d.next_frame() {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }
}
