//! Fleet verification against a real S3 server (versitygw 1.8.0, posix
//! backend, on 127.0.0.1; the test fails, never skips, without it): 200
//! backups of 42 expected clusters, copies of the committed snapshots of
//! every etcd version, with planted damage (bit flips, a cut-short object),
//! stale and missing clusters. Asserted: each object's record equals what
//! the local `verify`, `status` and `hashkv` say of the same bytes; the
//! cluster findings; every report format parsed as its consumer parses it
//! (JSON Lines with unknown fields denied, JUnit XML, Prometheus text);
//! shards (`--shard I/N`, and `--shard /N` with `JOB_COMPLETION_INDEX` as
//! the Job controller sets it) partition the listing by cluster and their
//! `report merge` equals the unsharded report byte for byte in every format.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]

#[path = "fleet_e2e/formats.rs"]
mod formats;
use formats::backups_of;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use etcdsnap_testkit::s3::S3Server;
use serde_json::Value;
use sha2::{Digest, Sha256};

const VERSIONS: [&str; 5] = ["etcd-3.4.23", "etcd-3.5.1", "etcd-3.5.35", "etcd-3.6.16", "etcd-3.7.3"];
const CLUSTERS: usize = 40;
const PER_CLUSTER: usize = 5;
const GROUP_BY: &str = "s3://fleet/clusters/(?P<cluster>[^/]+)/";
/// What `--jsonl` files and `report merge` hold; the three formats each run writes.
const FORMATS: [&str; 3] = ["jsonl", "junit", "prometheus"];

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etcdsnap"));
    c.env_remove("JOB_COMPLETION_INDEX");
    c
}

/// `etcdsnap ARGS --endpoint … --allow-http` with the server's credentials in the environment.
fn etcdsnap(s3: &S3Server, args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut c = bin();
    c.args(args).args(["--endpoint", &s3.endpoint(), "--allow-http"]);
    for (k, v) in s3.env().into_iter().chain(envs.iter().map(|(k, v)| (*k, v.clone()))) {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn local(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn key(cluster: usize, n: usize) -> String {
    format!("clusters/c{cluster:02}/snapshot-{n}.db")
}

/// Sets the object's last-modified (the posix backend's file mtime) to `secs_ago` before now.
fn age(s3: &S3Server, key: &str, secs_ago: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago);
    let f = std::fs::File::options().write(true).open(s3.object_file(key)).unwrap();
    f.set_modified(t).unwrap();
}

/// The planted fleet: each object's key and a local file with the same bytes,
/// and the finding each cluster must get.
struct Fleet {
    objects: BTreeMap<String, PathBuf>,
    expect: BTreeMap<String, Option<&'static str>>,
}

/// Uploads the fleet; distinct contents are also kept as local files (under `dir`).
fn plant(s3: &S3Server, dir: &Path) -> Fleet {
    let fixtures: Vec<Vec<u8>> = VERSIONS
        .iter()
        .map(|v| std::fs::read(etcdsnap_testkit::testdata().join(v).join("snapshot.db")).unwrap())
        .collect();
    let copies = dir.join("local");
    std::fs::create_dir_all(&copies).unwrap();
    let mut items = Vec::new();
    let mut objects = BTreeMap::new();
    for c in 0..CLUSTERS {
        for n in 0..PER_CLUSTER {
            let mut data = fixtures[(c + n) % fixtures.len()].clone();
            // c05: one flipped bit (the cluster still has fresh valid backups); c10: every backup flipped.
            if (c == 5 && n == 0) || c == 10 {
                let mid = data.len() / 2 + n;
                data[mid] ^= 0x40;
            }
            // c07: one object cut short, as an interrupted upload leaves it (structure problems, no trailer).
            if c == 7 && n == 0 {
                data.truncate(1_000_000);
            }
            let local = copies.join(format!("{}.db", hex(&Sha256::digest(&data))));
            if !local.exists() {
                std::fs::write(&local, &data).unwrap();
            }
            objects.insert(key(c, n), local);
            items.push((key(c, n), data));
        }
    }
    items.push(("README.txt".to_string(), b"not a backup".to_vec()));
    s3.put_many(items);
    // c20..c22: every backup three days old (stale); c25: one fresh, four old (too few for --require 2).
    for c in 20..23 {
        for n in 0..PER_CLUSTER {
            age(s3, &key(c, n), 3 * 86_400);
        }
    }
    for n in 1..PER_CLUSTER {
        age(s3, &key(25, n), 2 * 86_400);
    }
    let mut expect: BTreeMap<String, Option<&'static str>> =
        (0..CLUSTERS).map(|c| (format!("c{c:02}"), None)).collect();
    expect.insert("c10".into(), Some("no_valid_backup"));
    for c in 20..23 {
        expect.insert(format!("c{c}"), Some("stale"));
    }
    expect.insert("c25".into(), Some("too_few"));
    expect.insert("c40".into(), Some("missing"));
    expect.insert("c41".into(), Some("missing"));
    Fleet { objects, expect }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// What the local commands say of each distinct local file: `verify --json`
/// (one run over all of them), and for the valid ones `status` and `hashkv`.
fn local_results(files: &BTreeSet<&PathBuf>) -> BTreeMap<PathBuf, (Value, Option<(u64, u64)>)> {
    let args: Vec<&str> =
        std::iter::once("verify").chain(["--json"]).chain(files.iter().map(|f| f.to_str().unwrap())).collect();
    let out = local(&args);
    assert_eq!(out.status.code(), Some(1), "some local copies are damaged: {}", text(&out.stderr));
    let mut r = BTreeMap::new();
    for line in text(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let path = PathBuf::from(v["file"].as_str().unwrap());
        let hashes = (v["ok"] == true).then(|| {
            let st: Value =
                serde_json::from_slice(&local(&["status", "--json", path.to_str().unwrap()]).stdout).unwrap();
            let kv: Value =
                serde_json::from_slice(&local(&["hashkv", "--json", path.to_str().unwrap()]).stdout).unwrap();
            (st["hash"].as_u64().unwrap(), kv["hash"].as_u64().unwrap())
        });
        r.insert(path, (v, hashes));
    }
    assert_eq!(r.len(), files.len());
    r
}

/// Every object's record equals what the local commands say of the same bytes.
fn assert_records_equal_local(fleet: &Fleet, backups: &BTreeMap<String, Value>) {
    let files: BTreeSet<&PathBuf> = fleet.objects.values().collect();
    let locals = local_results(&files);
    assert_eq!(backups.len(), fleet.objects.len());
    for (key, file) in &fleet.objects {
        let url = format!("s3://fleet/{key}");
        let b = backups.get(&url).unwrap_or_else(|| panic!("no record of {url}"));
        let (v, hashes) = &locals[file];
        let ctx = format!("{url} (local {}): {b}\nlocal: {v}", file.display());
        assert_eq!(b["size"].as_u64(), Some(std::fs::metadata(file).unwrap().len()), "{ctx}");
        assert_eq!(b["trailer"], v["trailer"], "{ctx}");
        assert_eq!(b["revision"].as_i64().unwrap_or(0), v["revision"].as_i64().unwrap(), "{ctx}");
        assert_eq!(b["problem_count"], v["problem_count"], "{ctx}");
        let local_problems: Vec<Value> = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == "problem")
            .take(10)
            .map(|f| serde_json::json!({"kind": f["kind"], "message": f["message"]}))
            .collect();
        assert_eq!(b["problems"].as_array().unwrap(), &local_problems, "{ctx}");
        assert_eq!(b["state"] == "valid", v["ok"] == true, "{ctx}");
        match hashes {
            Some((status, kv)) => {
                assert_eq!((b["status_hash"].as_u64(), b["hashkv"].as_u64()), (Some(*status), Some(*kv)), "{ctx}")
            }
            None => assert_eq!((&b["state"], &b["status_hash"]), (&Value::from("problems"), &Value::Null), "{ctx}"),
        }
    }
}

/// The verify arguments every run shares (same clock, so shards agree with the whole run).
fn fleet_args(groups: &Path, now: &str, extra: &[String]) -> Vec<String> {
    let mut a: Vec<String> =
        ["verify", "s3://fleet/", "--recursive", "--group-by", GROUP_BY, "--max-age", "24h", "--require", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    a.extend([
        "--now".into(),
        now.into(),
        "-j".into(),
        "2".into(),
        "--expect-groups".into(),
        groups.display().to_string(),
    ]);
    a.extend(extra.iter().cloned());
    a
}

/// `--jsonl D/P.jsonl --junit D/P.xml --prometheus D/P.prom`.
fn report_files(dir: &Path, prefix: &str) -> (Vec<String>, [PathBuf; 3]) {
    let files =
        [dir.join(format!("{prefix}.jsonl")), dir.join(format!("{prefix}.xml")), dir.join(format!("{prefix}.prom"))];
    let args = FORMATS.iter().zip(&files).flat_map(|(f, p)| [format!("--{f}"), p.display().to_string()]).collect();
    (args, files)
}

fn run(s3: &S3Server, args: &[String], envs: &[(&str, String)]) -> Output {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    etcdsnap(s3, &argv, envs)
}

#[test]
fn a_bucket_of_backups_gives_exactly_the_planted_findings_in_every_format_and_shards_merge_to_it() {
    let s3 = S3Server::start("fleet_e2e", "fleet");
    let dir = etcdsnap_testkit::scratch("fleet_e2e_reports");
    let fleet = plant(&s3, &dir);
    let groups = dir.join("expected-clusters.txt");
    let names: Vec<String> = fleet.expect.keys().cloned().collect();
    std::fs::write(&groups, format!("# the fleet\n{}\n", names.join("\n"))).unwrap();
    let now = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 60).to_string();

    let (files_args, [full_jsonl, full_junit, full_prom]) = report_files(&dir, "full");
    let out = run(&s3, &fleet_args(&groups, &now, &files_args), &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "findings are exit 1\n{stdout}\n{}", text(&out.stderr));
    // Text: a line per backup, the failing clusters, the summary.
    assert_eq!(stdout.lines().filter(|l| l.starts_with("s3://fleet/clusters/")).count(), CLUSTERS * PER_CLUSTER);
    assert!(stdout.contains("cluster c40: missing: expected, but no backup was found"), "{stdout}");
    assert!(stdout.contains("cluster c21: stale: newest valid backup is 259"), "{stdout}");
    // The cut-short object's problems name the page and the byte offset.
    let cut = stdout.lines().find(|l| l.starts_with("s3://fleet/clusters/c07/snapshot-0.db: ")).unwrap();
    assert!(cut.starts_with("s3://fleet/clusters/c07/snapshot-0.db: problems (cluster c07, age "), "{cut}");
    assert!(cut.ends_with("s, 1000000 bytes, trailer absent)"), "{cut}");
    // e.g. "  problem: past-end-of-file: page 469: past the end of the file (bucket key, offset 1921024)"
    let past_end: Vec<(u64, u64)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  problem: past-end-of-file: page "))
        .map(|l| {
            let (page, rest) = l.split_once(": past the end of the file (").unwrap();
            let offset = rest.rsplit_once("offset ").unwrap().1.trim_end_matches(')');
            (page.parse().unwrap(), offset.parse().unwrap())
        })
        .collect();
    assert!(
        !past_end.is_empty() && past_end.iter().all(|(page, offset)| page * 4096 == *offset && *offset >= 1_000_000),
        "{past_end:?}"
    );
    let bytes: u64 = fleet.objects.values().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    let last = format!(
        "200 objects, {bytes} bytes: 193 valid, 7 with problems, 0 changed while read, 0 unreadable, 1 not matched by --group-by; \
         42 clusters, 7 failing (2 missing, 1 without a valid backup, 3 stale, 1 too few)\n"
    );
    assert!(stdout.ends_with(&last), "{stdout}");

    // JSON Lines: each record equals the local commands' answer on the same bytes.
    let lines = jsonl(&full_jsonl);
    let backups = backups_of(&lines);
    assert_records_equal_local(&fleet, &backups);
    let damaged: BTreeSet<&str> =
        backups.values().filter(|b| b["state"] != "valid").map(|b| b["url"].as_str().unwrap()).collect();
    let mut planted: BTreeSet<String> = (0..PER_CLUSTER).map(|n| format!("s3://fleet/{}", key(10, n))).collect();
    planted.extend([format!("s3://fleet/{}", key(5, 0)), format!("s3://fleet/{}", key(7, 0))]);
    assert_eq!(damaged, planted.iter().map(String::as_str).collect());
    let clusters: BTreeMap<String, Option<String>> = lines
        .iter()
        .filter(|l| l["type"] == "cluster")
        .map(|c| (c["cluster"].as_str().unwrap().to_string(), c["finding"].as_str().map(str::to_string)))
        .collect();
    let want: BTreeMap<String, Option<String>> =
        fleet.expect.iter().map(|(k, v)| (k.clone(), v.map(str::to_string))).collect();
    assert_eq!(clusters, want);
    let summary = lines.iter().find(|l| l["type"] == "summary").unwrap();
    assert_eq!(
        (&summary["objects"], &summary["valid"], &summary["problems"], &summary["ignored"], &summary["unreadable"]),
        (&Value::from(200), &Value::from(193), &Value::from(7), &Value::from(1), &Value::from(0))
    );
    assert_eq!((&summary["clusters"], &summary["clusters_failing"]), (&Value::from(42), &Value::from(7)));

    // JUnit, parsed: a suite per cluster, a case per backup (failing iff it has
    // problems) and per objective (failing with the planted finding).
    let j = formats::junit(&std::fs::read_to_string(&full_junit).unwrap());
    assert_eq!(j.suites.len(), 42);
    assert_eq!(j.totals, (242, 14, 0));
    for c in &j.cases {
        let outcome = c.outcome.as_ref().map(|(k, t)| (k.as_str(), t.as_str()));
        if let Some(b) = backups.get(&c.name) {
            assert_eq!(Some(c.suite.as_str()), b["cluster"].as_str());
            assert_eq!(outcome.is_some(), b["state"] != "valid", "{c:?}");
        } else {
            assert_eq!(c.name, "objective: a fresh valid backup");
            assert_eq!(outcome.map(|o| o.1), fleet.expect[&c.suite], "{c:?}");
        }
    }

    // Prometheus, parsed: each backup's figures as the JSON says them.
    let prom = formats::prometheus(&std::fs::read_to_string(&full_prom).unwrap());
    for (url, b) in &backups {
        let l = [("cluster", b["cluster"].as_str().unwrap()), ("object", url.as_str())];
        let valid = if b["state"] == "valid" { 1.0 } else { 0.0 };
        assert_eq!(formats::sample(&prom, "etcdsnap_backup_valid", &l), Some(valid), "{url}");
        assert_eq!(formats::sample(&prom, "etcdsnap_backup_bytes", &l), b["size"].as_f64(), "{url}");
        assert_eq!(formats::sample(&prom, "etcdsnap_backup_age_seconds", &l), b["age_seconds"].as_f64(), "{url}");
        assert_eq!(formats::sample(&prom, "etcdsnap_backup_problems", &l), b["problem_count"].as_f64(), "{url}");
        if let Some(rev) = b["revision"].as_f64() {
            assert_eq!(formats::sample(&prom, "etcdsnap_backup_revision", &l), Some(rev), "{url}");
        }
    }
    for (c, finding) in &fleet.expect {
        let ok = if finding.is_some() { 0.0 } else { 1.0 };
        assert_eq!(formats::sample(&prom, "etcdsnap_cluster_backup_ok", &[("cluster", c)]), Some(ok), "{c}");
    }
    let stale = [("cluster", "c20"), ("object", "s3://fleet/clusters/c20/snapshot-0.db")];
    let stale_age = formats::sample(&prom, "etcdsnap_backup_age_seconds", &stale).unwrap();
    assert!((259_260.0..259_300.0).contains(&stale_age), "three days and the 60 s of --now: {stale_age}");

    // Shards: 3 by an explicit INDEX/COUNT, 4 as Job pods (JOB_COMPLETION_INDEX).
    let all: BTreeSet<&String> = backups.keys().collect();
    for (count, from_env) in [(3u32, false), (4, true)] {
        let mut shard_reports = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        let mut cluster_shard: BTreeMap<String, u32> = BTreeMap::new();
        for i in 0..count {
            let (mut extra, files) = report_files(&dir, &format!("shard-{i}-of-{count}"));
            let (spec, envs) = if from_env {
                (format!("/{count}"), vec![("JOB_COMPLETION_INDEX", i.to_string())])
            } else {
                (format!("{i}/{count}"), vec![])
            };
            extra.extend(["--shard".to_string(), spec, "--report-format".into(), "jsonl".into()]);
            let out = run(&s3, &fleet_args(&groups, &now, &extra), &envs);
            assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out.stderr));
            let shard = jsonl(&files[0]);
            assert_eq!(shard.last().unwrap()["shard"], format!("{i}/{count}"));
            // Stdout (JSON Lines as backups finish) holds the same records as the file.
            let streamed: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            assert_eq!(backups_of(&streamed), backups_of(&shard));
            for b in backups_of(&shard).values() {
                seen.push(b["url"].as_str().unwrap().to_string());
                let prev = cluster_shard.insert(b["cluster"].as_str().unwrap().to_string(), i);
                assert!(prev.is_none_or(|p| p == i), "a cluster's backups are in one shard: {b}");
                assert_eq!(Some(b), backups.get(b["url"].as_str().unwrap()), "a shard's record is the whole run's");
            }
            shard_reports.push(files[0].clone());
        }
        assert_eq!(seen.len(), all.len(), "every object in exactly one of {count} shards");
        assert_eq!(seen.iter().collect::<BTreeSet<_>>(), all);
        let (mut args, merged) = report_files(&dir, &format!("merged-{count}"));
        args.splice(0..0, ["report".to_string(), "merge".to_string()]);
        args.extend(shard_reports.iter().map(|f| f.display().to_string()));
        let out = local(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        for (m, f) in merged.iter().zip([&full_jsonl, &full_junit, &full_prom]) {
            assert_eq!(
                std::fs::read_to_string(m).unwrap(),
                std::fs::read_to_string(f).unwrap(),
                "{} = {}",
                m.display(),
                f.display()
            );
        }
        // Stdout of the merge: the JSON Lines report.
        assert_eq!(text(&out.stdout), std::fs::read_to_string(&full_jsonl).unwrap());
    }
    // A missing shard is refused: the merge would not cover the fleet.
    let (a, b) = (dir.join("shard-0-of-4.jsonl"), dir.join("shard-1-of-4.jsonl"));
    let out = local(&["report", "merge", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is missing"), "{}", text(&out.stderr));
}

#[test]
fn single_objects_read_by_url_equal_the_local_file_and_errors_name_the_url() {
    let s3 = S3Server::start("fleet_e2e_single", "single");
    let good = etcdsnap_testkit::testdata().join("etcd-3.6.16/snapshot.db");
    let dir = etcdsnap_testkit::scratch("fleet_e2e_single_local");
    let bad = dir.join("flipped.db");
    let mut data = std::fs::read(&good).unwrap();
    s3.put("a/snapshot.db", data.clone());
    let mid = data.len() / 2;
    data[mid] ^= 1;
    std::fs::write(&bad, &data).unwrap();
    s3.put("a/flipped.db", data);
    let (good_s, bad_s) = (good.to_str().unwrap(), bad.to_str().unwrap());
    let url = "s3://single/a/snapshot.db";
    let bad_url = "s3://single/a/flipped.db";
    // The read commands on an object answer as on the local file, byte for byte.
    for (remote_args, local_args) in [
        (vec!["status", "--json", url, "--verify-trailer"], vec!["status", "--json", good_s, "--verify-trailer"]),
        (vec!["status", url], vec!["status", good_s]),
        (
            vec!["status", "-w", "table", url, "--as-etcd", "3.5"],
            vec!["status", "-w", "table", good_s, "--as-etcd", "3.5"],
        ),
        (vec!["hashkv", "--json", url], vec!["hashkv", "--json", good_s]),
        (vec!["hashkv", "--json", url, "--rev", "1400"], vec!["hashkv", "--json", good_s, "--rev", "1400"]),
        (vec!["status", "--json", bad_url], vec!["status", "--json", bad_s]),
        (
            vec!["keys", url, "--prefix", "/tenant-1/registry/secrets/", "--decode"],
            vec!["keys", good_s, "--prefix", "/tenant-1/registry/secrets/", "--decode"],
        ),
        (
            vec!["keys", "--json", url, "--all-revisions", "--limit", "50"],
            vec!["keys", "--json", good_s, "--all-revisions", "--limit", "50"],
        ),
        (
            vec!["get", "-w", "json", url, "/tenant-1/", "--prefix", "--rev", "1400"],
            vec!["get", "-w", "json", good_s, "/tenant-1/", "--prefix", "--rev", "1400"],
        ),
        (vec!["du", url, "--by", "resource"], vec!["du", good_s, "--by", "resource"]),
    ] {
        let (r, l) = (etcdsnap(&s3, &remote_args, &[]), local(&local_args));
        // du names its input: the URL where the local run names the path.
        let remote_out = text(&r.stdout).replace(url, good_s).replace(bad_url, bad_s);
        assert_eq!(
            (r.status.code(), remote_out),
            (l.status.code(), text(&l.stdout)),
            "{remote_args:?}: {}",
            text(&r.stderr)
        );
        assert_eq!(r.status.code(), Some(0), "{remote_args:?}");
        assert!(l.stdout.len() > 100, "{local_args:?} says something: {}", text(&l.stdout));
    }
    // A trailer mismatch found through a URL names the URL, as locally the path.
    let (r, l) =
        (etcdsnap(&s3, &["status", "--verify-trailer", bad_url], &[]), local(&["status", "--verify-trailer", bad_s]));
    assert_eq!((r.status.code(), l.status.code()), (Some(1), Some(1)));
    assert_eq!(text(&r.stderr).replace(bad_url, bad_s), text(&l.stderr));
    assert!(
        text(&r.stderr).starts_with(&format!("etcdsnap: {bad_url}: the SHA-256 trailer does not match")),
        "{}",
        text(&r.stderr)
    );
    // verify of one object: valid, then the flipped one, as the local verify says it.
    let out = etcdsnap(&s3, &["verify", url, "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = etcdsnap(&s3, &["verify", bad_url], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let lv: Value = serde_json::from_slice(&local(&["verify", "--json", bad_s]).stdout).unwrap();
    let msg = lv["findings"][0]["message"].as_str().unwrap();
    assert!(text(&out.stdout).contains(&format!("problem: trailer-mismatch: {msg}")), "{}", text(&out.stdout));
    // A missing object is unreadable (exit 2), named by its URL.
    let out = etcdsnap(&s3, &["verify", "s3://single/a/nope.db"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("s3://single/a/nope.db: unreadable"));
    let out = etcdsnap(&s3, &["status", "s3://single/a/nope.db"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("s3://single/a/nope.db"), "{}", text(&out.stderr));
}

#[test]
fn an_object_replaced_after_it_was_listed_is_changed_not_damaged() {
    use etcdsnap_remote::location::{RemoteUrl, Stores};
    use etcdsnap_remote::spool::{spool, ObjectInfo, SpoolDir};
    use object_store::ObjectStoreExt;

    let s3 = S3Server::start("fleet_e2e_changed", "changing");
    let fixture = std::fs::read(etcdsnap_testkit::testdata().join("etcd-3.7.3/snapshot.db")).unwrap();
    s3.put("c/backup.db", fixture.clone());
    for (k, v) in s3.env() {
        // The store reads its credentials from the environment, as the CLI's does.
        std::env::set_var(k, v);
    }
    let opts = etcdsnap_remote::StoreOptions { endpoint: Some(s3.endpoint()), allow_http: true, ..Default::default() };
    let url = RemoteUrl::parse("s3://changing/c/backup.db").unwrap();
    let store = Stores::new(opts).get(&url).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let listed = rt.block_on(store.head(&url.path)).unwrap();
    let info = ObjectInfo {
        url: url.url.clone(),
        root: url.root.clone(),
        key: url.path.clone(),
        size: listed.size,
        last_modified: listed.last_modified,
        etag: listed.e_tag.clone(),
    };
    assert!(info.etag.is_some(), "versitygw gives ETags");
    let dir = SpoolDir::new(Some(&etcdsnap_testkit::scratch("fleet_e2e_changed_spool"))).unwrap();
    // As listed: read whole, trailer valid.
    let sp = rt.block_on(spool(store.as_ref(), &info, &dir)).unwrap();
    assert!(matches!(sp.trailer, etcdsnap_mvcc::trailer::Trailer::Valid(_)));
    drop(sp);
    // Replaced by another backup of the same size between the listing and the read.
    let mut other = fixture;
    let mid = other.len() / 2;
    other[mid] ^= 1;
    s3.put("c/backup.db", other);
    let err = rt.block_on(spool(store.as_ref(), &info, &dir)).unwrap_err();
    assert!(err.is_changed(), "{err}");
    assert!(err.to_string().contains("s3://changing/c/backup.db"), "{err}");
    // Deleted after the listing: changed too, not unreadable.
    s3.delete("c/backup.db");
    let err = rt.block_on(spool(store.as_ref(), &info, &dir)).unwrap_err();
    assert!(err.is_changed(), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no partial spool file is left");
}
