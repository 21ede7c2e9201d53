//! `etcdsnap bolt compact` against the real tools: the output must pass Go
//! bbolt's check with the same canonical dump as the input, and etcd's own
//! `snapshot restore` (hash checked, never `--skip-hash-check` on files that
//! carry a trailer) must accept it, with the restored server answering exactly
//! like the server the fixture was saved from (`get`, `hashkv`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::path::Path;
use std::process::Command;

use etcdsnap_testkit::{
    assert_server_matches_expected_get, assert_server_matches_expected_hashkv, boltoracle_check_ok, boltoracle_dump,
    free_port, restore, restore_and_start, restore_skip_hash_check, scratch, try_restore, BboltVersion, EtcdServer,
    EtcdVersion,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Runs `etcdsnap bolt compact IN OUT --json EXTRA...`, asserts exit 0, returns the report.
fn compact(input: &Path, output: &Path, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["bolt", "compact"])
        .arg(input)
        .arg(output)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bolt compact {} {extra:?}: {}\n{}",
        input.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("compact --json output not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    let size = std::fs::metadata(output).unwrap().len();
    assert_eq!(report["bytes_out"].as_u64(), Some(size), "bytes_out vs file size: {report}");
    assert_eq!(report["bytes_in"].as_u64(), Some(std::fs::metadata(input).unwrap().len()), "bytes_in: {report}");
    report
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asserts `file` ends with the SHA-256 of everything before it; returns the hex digest.
fn assert_sha256_trailer(file: &Path) -> String {
    let data = std::fs::read(file).unwrap();
    assert!(data.len() > 32, "{} too short for a trailer", file.display());
    let (body, trailer) = data.split_at(data.len() - 32);
    assert_eq!(body.len() % 512, 0, "{}: size % 512 should be 32 (body {} bytes)", file.display(), body.len());
    let digest = Sha256::digest(body);
    assert_eq!(hex(trailer), hex(&digest), "{}: trailer is not SHA-256 of the rest", file.display());
    hex(&digest)
}

/// Go bbolt accepts `output` and reads exactly what it reads from `input`;
/// every bbolt line's check (1.3.6, 1.4.3 with 1.3.7+'s page and key-order
/// checks, 1.5.0) passes on the output.
fn assert_go_same_content(input: &Path, output: &Path) {
    boltoracle_check_ok(output);
    for b in BboltVersion::ALL {
        b.check_ok(output);
    }
    let a = boltoracle_dump(input);
    let b = boltoracle_dump(output);
    assert!(!a.is_empty(), "empty dump of {}", input.display());
    if a != b {
        let a = String::from_utf8_lossy(&a);
        let b = String::from_utf8_lossy(&b);
        let first = a.lines().zip(b.lines()).position(|(x, y)| x != y);
        panic!(
            "Go dump of {} differs from {} ({} vs {} lines), first differing line {first:?}",
            output.display(),
            input.display(),
            b.lines().count(),
            a.lines().count()
        );
    }
}

/// Default compact of the fixture snapshot: valid trailer in, fresh trailer out,
/// smaller; Go check/dump; stock restore (hash checked) + server get/hashkv.
fn compact_snapshot_restore_and_serve(version: EtcdVersion) {
    let dir = scratch(&format!("compact-restore-{version}"));
    let input = version.fixture_snapshot();
    let output = dir.join("compact.db");
    let report = compact(&input, &output, &[]);
    assert_eq!(report["trailer_in"], "valid", "{report}");
    let digest = assert_sha256_trailer(&output);
    assert_eq!(report["trailer_out"].as_str(), Some(digest.as_str()), "trailer_out vs file: {report}");
    assert!(report["bytes_out"].as_u64() < report["bytes_in"].as_u64(), "not smaller: {report}");
    assert_eq!(report["page_size"].as_u64(), Some(4096), "{report}");

    assert_go_same_content(&input, &output);

    let server = restore_and_start(version, &output, &format!("compact-restore-{version}-etcd"));
    assert_server_matches_expected_get(&server);
    // hashkv hashes the `key` bucket up to the revision plus the compact revision;
    // restore keeps both, so the hash is the one of the live server the fixture
    // was saved from.
    assert_server_matches_expected_hashkv(&server);
}

etcdsnap_testkit::per_version!(compact_snapshot_restore_and_serve);

/// The raw `member/snap/db` (no trailer): no trailer out by default, Go sees the
/// same content; with `--trailer` the output is a snapshot the stock restore
/// accepts with its hash check.
#[test]
fn compact_raw_db_both_versions() {
    for version in EtcdVersion::ALL {
        let dir = scratch(&format!("compact-rawdb-{version}"));
        let input = version.fixture_raw_db();
        let output = dir.join("compact.db");
        let report = compact(&input, &output, &[]);
        assert_eq!(report["trailer_in"], "absent", "{report}");
        assert!(report["trailer_out"].is_null(), "{report}");
        assert!(report["bytes_out"].as_u64() < report["bytes_in"].as_u64(), "not smaller: {report}");
        assert_eq!(report["bytes_out"].as_u64().unwrap() % 4096, 0, "{report}");
        assert_go_same_content(&input, &output);

        let with_trailer = dir.join("compact-trailer.db");
        let report = compact(&input, &with_trailer, &["--trailer"]);
        let digest = assert_sha256_trailer(&with_trailer);
        assert_eq!(report["trailer_out"].as_str(), Some(digest.as_str()), "{report}");
        assert_go_same_content(&input, &with_trailer);
        restore(version, &with_trailer, &dir.join("data"), free_port());
    }
}

/// `--page-size 16384 --fill-percent 0.5`: Go check OK, same dump, and each
/// version's stock restore accepts it; 3.5.1 and 3.7.3 also serve the same data.
#[test]
fn compact_page_size_16k_fill_half() {
    for version in EtcdVersion::ALL {
        let dir = scratch(&format!("compact-16k-{version}"));
        let input = version.fixture_snapshot();
        let output = dir.join("compact-16k.db");
        let report = compact(&input, &output, &["--page-size", "16384", "--fill-percent", "0.5"]);
        assert_eq!(report["page_size"].as_u64(), Some(16384), "{report}");
        assert_eq!(report["trailer_in"], "valid", "{report}");
        let digest = assert_sha256_trailer(&output);
        assert_eq!(report["trailer_out"].as_str(), Some(digest.as_str()), "{report}");
        assert_go_same_content(&input, &output);

        let data = dir.join("data");
        let (client, peer) = (free_port(), free_port());
        restore(version, &output, &data, peer);
        if version == EtcdVersion::V3_5_1 || version == EtcdVersion::V3_7_3 {
            let server = EtcdServer::start(version, &data, client, peer);
            assert_server_matches_expected_get(&server);
            assert_server_matches_expected_hashkv(&server);
        }
    }
}

/// `--no-trailer` on a snapshot: a plain bbolt file (size a multiple of the page
/// size, hence of 512). Both stock restores REFUSE it without `--skip-hash-check`
/// ("snapshot missing hash but --skip-hash-check=false": etcd decides "has a hash"
/// from size % 512 == 32), and accept it with `--skip-hash-check`.
#[test]
fn compact_no_trailer_needs_skip_hash_check() {
    for version in EtcdVersion::ALL {
        let dir = scratch(&format!("compact-notrailer-{version}"));
        let input = version.fixture_snapshot();
        let output = dir.join("compact-nt.db");
        let report = compact(&input, &output, &["--no-trailer"]);
        assert_eq!(report["trailer_in"], "valid", "{report}");
        assert!(report["trailer_out"].is_null(), "{report}");
        let size = std::fs::metadata(&output).unwrap().len();
        assert_eq!(size % 512, 0, "size {size}");
        assert_eq!(size % 4096, 0, "size {size}");
        assert_go_same_content(&input, &output);

        let refused = try_restore(version, &output, &dir.join("data"), free_port());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "etcd {version} restored a trailer-less file without --skip-hash-check");
        assert!(
            stderr.contains("snapshot missing hash but --skip-hash-check=false"),
            "etcd {version}: unexpected refusal: {stderr}"
        );
        restore_skip_hash_check(version, &output, &dir.join("data-skip"), free_port());
    }
}

/// A snapshot whose trailer is damaged (its last byte flipped): `bolt compact`
/// refuses it, naming both digests and leaving no output; with
/// `--skip-hash-check` (the input's trailer read, not hashed) it compacts it,
/// says `trailer_in: present`, and the output carries a fresh, valid trailer that
/// the stock restore checks and accepts.
#[test]
fn compact_skip_hash_check_takes_a_damaged_trailer() {
    let version = EtcdVersion::V3_5_1;
    let dir = scratch("compact-skip-hash-check");
    let input = dir.join("damaged-trailer.db");
    let mut data = std::fs::read(version.fixture_snapshot()).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0x01;
    std::fs::write(&input, &data).unwrap();

    let output = dir.join("compact.db");
    let refused = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["bolt", "compact"])
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a damaged trailer was compacted without --skip-hash-check");
    assert!(
        stderr.contains("trailer") && stderr.contains(&hex(&data[last - 31..])),
        "refusal names the stored digest: {stderr}"
    );
    assert!(!output.exists(), "a refused compact left {}", output.display());

    let report = compact(&input, &output, &["--skip-hash-check"]);
    assert_eq!(report["trailer_in"], "present", "{report}");
    let digest = assert_sha256_trailer(&output);
    assert_eq!(report["trailer_out"].as_str(), Some(digest.as_str()), "{report}");
    assert_go_same_content(&input, &output);
    let server = restore_and_start(version, &output, "compact-skip-hash-check-etcd");
    assert_server_matches_expected_get(&server);
}
