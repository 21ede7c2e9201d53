//! Object storage under network faults: a real fault proxy (toxiproxy
//! 2.12.0) between `etcdsnap verify s3://…` and versitygw. Each fault either
//! gives exactly the report of a run without it (after retries, reads
//! resumed where a connection was cut) or a clear error naming the object
//! (exit 2) within a bounded time: never a hang, never a wrong verdict.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use etcdsnap_remote::FleetReport;
use etcdsnap_testkit::s3::S3Server;
use etcdsnap_testkit::toxiproxy::Toxiproxy;
use serde_json::json;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `verify s3://faults/ -r … --report-format jsonl` through `endpoint`; the output and the wall time.
fn verify(s3: &S3Server, endpoint: &str, extra: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["verify", "s3://faults/", "-r", "--group-by", "^s3://faults/([^/]+)/", "--now", "2030-01-01T00:00:00Z"])
        .args(["--report-format", "jsonl", "-j", "2", "--endpoint", endpoint, "--allow-http"])
        .args(extra)
        .envs(s3.env())
        .output()
        .unwrap();
    (out, start.elapsed())
}

fn report(out: &Output) -> FleetReport {
    let mut r = etcdsnap_remote::jsonl::read(&mut std::io::BufReader::new(&out.stdout[..]), "stdout")
        .unwrap_or_else(|e| panic!("{e}\nstdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr)));
    r.backups.sort_by(|a, b| a.url.cmp(&b.url));
    r
}

#[test]
fn every_fault_gives_the_clean_report_after_retries_or_a_clear_error_never_a_hang() {
    let s3 = S3Server::start("fleet_faults", "faults");
    let mut items = Vec::new();
    for (i, v) in ["etcd-3.5.35", "etcd-3.6.16", "etcd-3.7.3", "etcd-3.4.23"].iter().enumerate() {
        let data = std::fs::read(etcdsnap_testkit::testdata().join(v).join("snapshot.db")).unwrap();
        items.push((format!("c{}/{v}.db", i % 2), data));
    }
    s3.put_many(items);
    let (direct, _) = verify(&s3, &s3.endpoint(), &[]);
    assert_eq!(direct.status.code(), Some(0), "{}", text(&direct.stderr));
    let clean = report(&direct);
    assert_eq!((clean.summary.objects, clean.summary.valid), (4, 4));

    let proxy = Toxiproxy::start("fleet_faults_proxy", s3.endpoint().trim_start_matches("http://"));
    let ep = proxy.endpoint();
    // Through the proxy without a toxic: the same report.
    let (out, _) = verify(&s3, &ep, &[]);
    assert_eq!((out.status.code(), report(&out)), (Some(0), clean.clone()), "{}", text(&out.stderr));

    // Faults a retrying reader gets through: the exact clean report.
    for (name, toxic) in [
        ("latency", json!({"type": "latency", "stream": "downstream", "attributes": {"latency": 150, "jitter": 50}})),
        ("bandwidth", json!({"type": "bandwidth", "stream": "downstream", "attributes": {"rate": 4000}})),
        // Every connection cut after 700 kB: each 2 MB object needs reads resumed on new connections.
        ("cut", json!({"type": "limit_data", "stream": "downstream", "attributes": {"bytes": 700_000}})),
    ] {
        proxy.add_toxic(name, toxic);
        let (out, took) = verify(&s3, &ep, &["--timeout", "3s", "--retries", "10"]);
        proxy.remove_toxic(name);
        let stderr = text(&out.stderr);
        eprintln!("{name}: exit {:?} in {took:?}", out.status.code());
        assert!(took < Duration::from_secs(120), "{name}: took {took:?}");
        match out.status.code() {
            Some(0) => assert_eq!(report(&out), clean, "{name}: the same verdicts, figures and hashes"),
            // A fault that outlasts the retries: that object unreadable and named, never damaged.
            Some(2) => {
                let r = report(&out);
                assert!(
                    r.backups.iter().all(|b| b.state.name() == "valid" || b.state.name() == "unreadable"),
                    "{name}: {r:?}"
                );
                for b in r.backups.iter().filter(|b| b.state.name() == "unreadable") {
                    assert!(b.problems[0].message.contains(&b.url), "{name}: {:?}", b.problems);
                }
                panic!("{name}: a fault the retries should get past left objects unreadable: {}", text(&out.stdout));
            }
            other => panic!("{name}: exit {other:?}: {stderr}"),
        }
    }

    // Faults no retry gets past: a clear error, exit 2, in bounded time.
    for (name, toxic, at_least) in [
        // Every answer 60 s late: each try ends at the 2 s request timeout, then the retries run out.
        ("slow-all", json!({"type": "latency", "stream": "downstream", "attributes": {"latency": 60_000}}), 2),
        // Every connection stalled for good or reset at once.
        ("stall-all", json!({"type": "timeout", "stream": "downstream", "attributes": {"timeout": 0}}), 0),
        ("reset-all", json!({"type": "reset_peer", "stream": "downstream", "attributes": {"timeout": 0}}), 0),
    ] {
        proxy.add_toxic(name, toxic);
        let (out, took) = verify(&s3, &ep, &["--timeout", "2s", "--retries", "2"]);
        proxy.remove_toxic(name);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        eprintln!(
            "{name}: exit {:?} in {took:?}: {}{}",
            out.status.code(),
            stdout.lines().last().unwrap_or(""),
            stderr
        );
        assert_eq!(out.status.code(), Some(2), "{name}: {stdout}{stderr}");
        assert!(took < Duration::from_secs(60) && took >= Duration::from_secs(at_least), "{name}: took {took:?}");
        assert!(
            stderr.contains("s3://faults/") || stdout.contains("s3://faults/"),
            "{name}: the error names the URL: {stdout}{stderr}"
        );
        assert!(!stdout.contains("\"state\":\"problems\""), "{name}: no verdict of damage: {stdout}");
    }
    // And after the faults, through the proxy again: clean.
    let (out, _) = verify(&s3, &ep, &[]);
    assert_eq!((out.status.code(), report(&out)), (Some(0), clean));
}
