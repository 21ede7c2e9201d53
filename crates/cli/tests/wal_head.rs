//! `wal verify` on WALs that do not start as etcd starts every WAL (a crc
//! record, a metadata record, a snapshot record): an empty segment, one of
//! zeros as etcd preallocates it, a 10 GB sparse file, a segment cut after its
//! crc record and one cut after its metadata record. Each is a problem
//! (exit 1) naming the segment, and etcd's own reader (`walcount`) refuses
//! each; the fixture's WAL stays clean for both.
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
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use etcdsnap_testkit::{scratch, EtcdVersion};
use serde_json::Value;

const SEG0: &str = "0000000000000000-0000000000000000.wal";

fn verify_json(dir: &Path) -> (Option<i32>, Value) {
    let o: Output = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["wal", "verify", "--json"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", dir.display(), String::from_utf8_lossy(&o.stdout)));
    (o.status.code(), v)
}

/// etcd's reader on `dir`: (success, its last line).
fn walcount(dir: &Path) -> (bool, String) {
    let o = Command::new(EtcdVersion::V3_5_35.walcount()).arg(dir).stdin(Stdio::null()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.success(), text.lines().last().unwrap_or("").to_string())
}

/// The problem codes of a `wal verify --json` report.
fn codes(v: &Value) -> Vec<String> {
    v["problems"].as_array().unwrap().iter().map(|p| p["kind"].as_str().unwrap().to_string()).collect()
}

/// The end of the first `n` frames of a segment (8-byte length field, record, padding).
fn frames_end(seg: &[u8], n: usize) -> usize {
    let mut off = 0;
    for _ in 0..n {
        let lf = u64::from_le_bytes(seg[off..off + 8].try_into().unwrap());
        let (len, pad) = if lf >> 63 == 1 { (lf & 0x00ff_ffff_ffff_ffff, (lf >> 56) & 0x7) } else { (lf, 0) };
        off += 8 + (len + pad) as usize;
    }
    off
}

#[test]
fn wal_without_its_head_records_is_a_problem() {
    let dir = scratch("wal-head");
    let fixture = EtcdVersion::V3_5_35.fixture_dir().join("member/wal");
    let good = fs::read(fixture.join(SEG0)).unwrap();
    type Make<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Make<'_>, &[&str])> = vec![
        (
            "empty",
            Box::new(|p: &Path| fs::write(p, b"").unwrap()),
            &["missing-crc", "missing-metadata", "snapshot-not-found"],
        ),
        (
            "zeros",
            Box::new(|p: &Path| fs::write(p, vec![0u8; 64_000_000]).unwrap()),
            &["missing-crc", "missing-metadata", "snapshot-not-found"],
        ),
        (
            "sparse-10g",
            Box::new(|p: &Path| fs::File::create(p).unwrap().set_len(10 << 30).unwrap()),
            &["missing-crc", "missing-metadata", "snapshot-not-found"],
        ),
        (
            "crc-only",
            Box::new(|p: &Path| fs::write(p, &good[..frames_end(&good, 1)]).unwrap()),
            &["missing-metadata", "snapshot-not-found"],
        ),
        (
            "crc-and-metadata",
            Box::new(|p: &Path| fs::write(p, &good[..frames_end(&good, 2)]).unwrap()),
            &["snapshot-not-found"],
        ),
    ];
    for (name, make, want) in cases {
        let wal = dir.join(name);
        fs::create_dir_all(&wal).unwrap();
        make(&wal.join(SEG0));
        let started = Instant::now();
        let (code, v) = verify_json(&wal);
        assert!(started.elapsed() < Duration::from_secs(20), "{name}: wal verify took {:?}", started.elapsed());
        assert_eq!(code, Some(1), "{name}: {v}");
        assert_eq!(codes(&v), *want, "{name}: {v}");
        for p in v["problems"].as_array().unwrap() {
            assert_eq!(p["file"], SEG0, "{name}: {p}");
            assert!(p["message"].as_str().unwrap().contains(SEG0), "{name}: {p}");
        }
        let (ok, last) = walcount(&wal);
        assert!(!ok, "{name}: etcd's reader accepted it: {last}");
        assert!(last.contains("snapshot not found"), "{name}: etcd's reader says {last}");
    }
    // The fixture itself: clean for both.
    let (code, v) = verify_json(&fixture);
    assert_eq!(code, Some(0), "{v}");
    assert!(walcount(&fixture).0);
}
