//! `etcdsnap_mvcc::transform::transform` (the library's rewrite over bytes in
//! and any `Write` out) against the real tools: the identity compaction passes
//! every Go bbolt line's check with the input's canonical dump, and etcd's own
//! `snapshot restore` (hash checked) and server serve exactly the fixture's
//! keys and HashKV; an output an entry hook changed is served as the hook
//! made it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::io::{BufWriter, Write};
use std::sync::Arc;

use base64::Engine;
use etcdsnap_mvcc::rewrite::{NoProgress, RewriteOptions};
use etcdsnap_mvcc::transform::{transform, Decision, Entry, EntryHook};
use etcdsnap_testkit::{
    assert_server_matches_expected_get, assert_server_matches_expected_hashkv, boltoracle_dump, header_revision,
    kv_rows, restore_and_start, scratch, BboltVersion, EtcdVersion, KvRow,
};

/// Default options: the input, compacted. Written into a `Vec`.
fn identity_restored_and_served(version: EtcdVersion) {
    let dir = scratch(&format!("transform-identity-{version}"));
    let input = version.fixture_snapshot();
    let data = std::fs::read(&input).unwrap();
    let (out, report) = transform(&data, Vec::new(), &RewriteOptions::default(), &mut NoProgress).unwrap();
    assert!(report.trailer_out.is_some());
    assert!(out.len() <= data.len(), "{version}: compaction grew the file");
    let output = dir.join("identity.db");
    std::fs::write(&output, &out).unwrap();

    for b in BboltVersion::ALL {
        b.check_ok(&output);
    }
    assert!(boltoracle_dump(&input) == boltoracle_dump(&output), "{version}: Go reads other content");

    let server = restore_and_start(version, &output, &format!("transform-identity-{version}-etcd"));
    assert_server_matches_expected_get(&server);
    assert_server_matches_expected_hashkv(&server);
}

etcdsnap_testkit::per_version!(identity_restored_and_served);

/// Drops tenant-2, upper-cases tenant-1's values.
#[derive(Debug)]
struct Scrub;

impl EntryHook for Scrub {
    fn decide(&self, e: &Entry<'_>) -> Result<Decision, String> {
        if e.key.starts_with(b"/tenant-2/") {
            return Ok(Decision::Drop);
        }
        if e.key.starts_with(b"/tenant-1/") && !e.at.tombstone {
            return Ok(Decision::ReplaceValue(e.kv.value.to_ascii_uppercase()));
        }
        Ok(Decision::Keep)
    }
}

/// A hook's output, written through a `BufWriter<File>`, restored by the stock
/// tool and served: the fixture's keys without tenant-2, tenant-1's values in
/// upper case, every revision field as it was; HashKV as the report says.
fn hook_restored_and_served(version: EtcdVersion) {
    let dir = scratch(&format!("transform-hook-{version}"));
    let data = std::fs::read(version.fixture_snapshot()).unwrap();
    let output = dir.join("scrubbed.db");
    let opts = RewriteOptions { hook: Some(Arc::new(Scrub)), ..RewriteOptions::default() };
    let sink = BufWriter::new(std::fs::File::create(&output).unwrap());
    let (mut sink, report) = transform(&data, sink, &opts, &mut NoProgress).unwrap();
    sink.flush().unwrap();
    drop(sink);
    assert!(report.revisions_filtered > 0 && report.values_replaced > 0, "{report:?}");
    for b in BboltVersion::ALL {
        b.check_ok(&output);
    }

    let server = restore_and_start(version, &output, &format!("transform-hook-{version}-etcd"));
    let b64 = base64::engine::general_purpose::STANDARD;
    let expected = version.expected_json("get.json");
    let want: Vec<KvRow> = kv_rows(&expected)
        .into_iter()
        .filter(|r| !b64.decode(&r.key).unwrap().starts_with(b"/tenant-2/"))
        .map(|mut r| {
            if b64.decode(&r.key).unwrap().starts_with(b"/tenant-1/") {
                r.value = b64.encode(b64.decode(&r.value).unwrap().to_ascii_uppercase());
            }
            r
        })
        .collect();
    let got = server.ctl_json(&["get", "", "--prefix"]);
    // The revision is kept: tenant-2's last writes leave a marker if they were the latest.
    assert_eq!(header_revision(&got), header_revision(&expected), "{version}: revision");
    assert!(kv_rows(&got) == want, "{version}: served keys differ from the hook's");
    let hashkv = server.ctl_json(&["endpoint", "hashkv"]);
    assert_eq!(hashkv[0]["HashKV"]["hash"].as_u64(), Some(u64::from(report.hashkv.hash)), "{version}: hashkv");
}

etcdsnap_testkit::per_version!(hook_restored_and_served);
