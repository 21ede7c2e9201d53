//! The reader, verifier, repair and rewrite on real etcd WALs (and damaged copies).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::fs;
use std::path::{Path, PathBuf};

use etcdsnap_keys::KeyRules;
use etcdsnap_testkit::{scratch, EtcdVersion};
use etcdsnap_wal::record::{Encoder, CRC_TYPE, ENTRY_TYPE, METADATA_TYPE, STATE_TYPE};
use etcdsnap_wal::repair::{repair, RepairOutcome};
use etcdsnap_wal::{list_segments, read_wal, segment_name, verify, CorruptKind, SegmentDecoder};

const SEG0: &str = "0000000000000000-0000000000000000.wal";

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
    let segs = list_segments(dir).unwrap();
    let mut out = Vec::new();
    let end = read_wal(&segs, |_, f| {
        out.push(Rec {
            rec_type: f.record.rec_type,
            data: f.record.data.map(<[u8]>::to_vec),
            index: f.entry.map(|e| e.index),
            offset: f.offset,
            len: f.len,
        });
        Ok(())
    })
    .unwrap();
    assert!(end.torn.is_none());
    out
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
    fs::create_dir_all(dir).unwrap();
    let mut enc = Encoder::new(0);
    let metadata = recs.iter().find(|r| r.rec_type == METADATA_TYPE).unwrap().data.clone();
    let mut last_state: Option<Vec<u8>> = None;
    let mut seq = 0u64;
    let mut buf = Vec::new();
    let mut name = segment_name(0, 0);
    for r in recs {
        if r.rec_type == ENTRY_TYPE && split_at.contains(&r.index.unwrap()) {
            fs::write(dir.join(&name), &buf).unwrap();
            buf.clear();
            seq += 1;
            name = segment_name(seq, r.index.unwrap());
            enc.encode_crc_record(&mut buf).unwrap();
            enc.encode(&mut buf, METADATA_TYPE, metadata.as_deref()).unwrap();
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
        assert_eq!(r.problems(), Vec::<String>::new(), "{v}");
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
    let msg = r.problems().join("\n");
    assert!(msg.contains(&format!("{SEG0}: offset {}: index {}", target.offset, target.index.unwrap())), "{msg}");
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
        assert_eq!(r.problems(), Vec::<String>::new());
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
    assert_eq!(r.problems(), Vec::<String>::new());
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
    assert!(r.problems().iter().any(|p| p.contains("segment sequence gap")), "{:?}", r.problems());
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
    let p = r.problems().join("\n");
    assert!(p.contains(name) && p.contains("crc mismatch"), "{p}");
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
