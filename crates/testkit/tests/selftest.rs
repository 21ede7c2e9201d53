//! Self-test of the testkit against real etcd: restore each version's committed
//! fixture snapshot with that version's stock tool (hash checked), start that
//! version's etcd on loopback, and compare with the fixture's expected output.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

use etcdsnap_testkit::{
    assert_server_matches_expected_get, assert_server_matches_expected_hashkv, boltoracle, free_port, require_exe,
    restore_and_start, EtcdVersion,
};
use serde_json::Value;

fn restore_fixture_and_compare(version: EtcdVersion) {
    let t = Instant::now();
    let server = restore_and_start(version, &version.fixture_snapshot(), &format!("testkit-selftest-{version}"));
    eprintln!("etcd {version}: restored and healthy in {:?}", t.elapsed());

    assert_server_matches_expected_get(&server);
    assert_server_matches_expected_hashkv(&server);

    // Leases: the fixture's 4 leases (TTL 3600 s, granted when the fixture was
    // made) survive the restore with their TTL restarted (etcd re-arms every
    // lease's expiry when the member becomes leader), so no leased key vanishes.
    let summary = version.expected_json("summary.json");
    let leases = summary["leases"].as_array().expect("summary.leases");
    let want: BTreeSet<i64> = leases
        .iter()
        .map(|l| i64::from_str_radix(l["id"].as_str().expect("lease id"), 16).expect("hex lease id"))
        .collect();
    assert_eq!(want.len(), 4, "fixture leases");
    let list = server.ctl_json(&["lease", "list"]);
    let got: BTreeSet<i64> =
        list["leases"].as_array().expect("leases array").iter().map(|l| l["id"].as_i64().expect("lease id")).collect();
    assert_eq!(got, want, "lease list after restore ({version})");
    for l in leases {
        let id = l["id"].as_str().expect("lease id");
        let ttl = server.ctl_json(&["lease", "timetolive", id, "--keys"]);
        let remaining = ttl["ttl"].as_i64().expect("ttl");
        assert!(remaining > 3000, "lease {id} ({version}): ttl {remaining} s after restore: {ttl}");
        assert_eq!(ttl["granted-ttl"].as_i64(), Some(3600), "lease {id} granted ttl: {ttl}");
        let keys = ttl.get("keys").and_then(Value::as_array).map_or(0, Vec::len);
        assert_eq!(keys, l["keys"].as_array().map_or(0, Vec::len), "keys attached to lease {id} ({version})");
    }
    eprintln!("etcd {version}: self-test done in {:?}", t.elapsed());
}

#[test]
fn restore_fixture_snapshot_3_5_1() {
    restore_fixture_and_compare(EtcdVersion::V3_5_1);
}

#[test]
fn restore_fixture_snapshot_3_4_23() {
    restore_fixture_and_compare(EtcdVersion::V3_4_23);
}

#[test]
fn oracles_present() {
    for v in EtcdVersion::ALL {
        v.etcd();
        v.etcdctl();
    }
    EtcdVersion::V3_5_1.etcdutl();
    boltoracle();
}

#[test]
#[should_panic(expected = "run tools/install-oracles.sh")]
fn missing_oracle_fails() {
    require_exe(std::path::Path::new("/nonexistent/etcdsnap-testkit/oracle"));
}

#[test]
fn free_ports_are_distinct_and_bindable() {
    let handles: Vec<_> =
        (0..4).map(|_| std::thread::spawn(|| (0..25).map(|_| free_port()).collect::<Vec<_>>())).collect();
    let mut all = HashSet::new();
    for h in handles {
        for p in h.join().unwrap() {
            assert!(all.insert(p), "port {p} handed out twice");
            std::net::TcpListener::bind(("127.0.0.1", p)).unwrap_or_else(|e| panic!("port {p} not bindable: {e}"));
        }
    }
    assert_eq!(all.len(), 100);
}

/// A server that cannot come up fails the test with its log, not after a hang.
#[test]
#[should_panic(expected = "exited during startup")]
fn start_failure_reports_log() {
    let dir = etcdsnap_testkit::scratch("testkit-start-failure");
    let client = free_port();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", client)).unwrap();
    etcdsnap_testkit::EtcdServer::start(EtcdVersion::V3_5_1, &dir.join("data"), client, free_port());
}
