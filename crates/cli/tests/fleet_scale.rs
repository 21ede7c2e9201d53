//! Fleet verification at scale against a real S3 server (versitygw 1.8.0,
//! posix backend, on 127.0.0.1; the test fails, never skips, without it):
//! 2,000 backups under 200 cluster prefixes plus expected clusters with no
//! backup at all, some clusters stale, some with too few fresh backups, some
//! with damaged objects, some with a backup holding a Secret sealed under a
//! key the census config (`--encryption-config`, in every run) does not list.
//! Asserted: exactly the planted findings, per backup and per cluster, in
//! every report format (text, JSON Lines, JUnit XML, Prometheus), the
//! wrong-key Secret named as `encryption-unknown-key` under exactly its
//! backups and every backup's census equal to the local `verify`'s; 4 shards
//! (as a Job's pods, `--shard /4` with `JOB_COMPLETION_INDEX`) writing their
//! reports to the bucket cover every object exactly once, and `report merge`
//! reading them back from the bucket (by pattern and by prefix) equals the
//! unsharded report in every format.
//!
//! Kept fast: the bytes are the committed fixtures (less the Secrets of
//! theirs no key opens, random bytes behind a sealed prefix: every healthy
//! backup passes the census), plus two small snapshots of one real etcd
//! holding Secrets sealed by k8s.io/apiserver's own transformers
//! (`k8scrypt`), made once per run. Each distinct content and age is uploaded
//! once with a real PUT; the other objects of the same content and age are
//! hard links beside it in the posix backend's directory (its metadata, ETag
//! included, lives on the inode), so 2,000 objects cost some 47 MB of disk,
//! and the test's time is the checks'.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]

#[path = "fleet_e2e/formats.rs"]
mod formats;
use formats::backups_of;
#[path = "sealing/mod.rs"]
mod sealing;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use etcdsnap_testkit::s3::S3Server;
use etcdsnap_testkit::{free_port, EtcdServer, EtcdVersion};
use sealing::{aes, put_raw, seal, write_config, IDENTITY};
use serde_json::Value;

const VERSIONS: [&str; 5] = ["etcd-3.4.23", "etcd-3.5.1", "etcd-3.5.35", "etcd-3.6.16", "etcd-3.7.3"];
const CLUSTERS: usize = 200;
const PER_CLUSTER: usize = 10;
const GROUP_BY: &str = "s3://fleet/clusters/(?P<cluster>[^/]+)/";
const DAY: u64 = 86_400;
/// The snapshots beyond the fixtures ([`sealed_snapshots`]): index 5 holds
/// Secrets the census config opens, index 6 also one it cannot.
const SEALED: usize = VERSIONS.len();
const WRONG_KEY: usize = VERSIONS.len() + 1;
/// The aescbc key of the census config, and one it does not list.
const CBC: &str = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=";
const RETIRED: &str = "cmV0aXJlZC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM=";
/// The Secret sealed under the key the census config does not list.
const WRONG_SECRET: &str = "/registry/secrets/default/under-retired-key";

/// What a cluster is planted with. To plant another kind: add a variant,
/// say how many clusters get it in [`PLANTED`], and answer the four
/// questions below for it (snapshot, bytes, age, whether each backup is
/// valid, the cluster's finding); a kind that needs a flag of `verify` adds
/// it in [`Plant::verify_args`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plant {
    Healthy,
    /// Backup 0 has one flipped bit; the cluster still has fresh valid backups.
    OneFlipped,
    /// Every backup has a flipped bit.
    AllFlipped,
    /// Backup 0 is cut short (to half), as an interrupted upload leaves it.
    CutShort,
    /// Every backup three days old.
    Stale,
    /// Backup 0 fresh, the others two days old: too few for `--require 2`.
    TooFew,
    /// Expected (`--expect-groups`) but without any backup.
    Missing,
    /// Backup 0 holds a Secret sealed under a key the census config does
    /// not list (`encryption-unknown-key`), backup 1 Secrets it opens; the
    /// cluster still has fresh valid backups.
    WrongKeySecret,
}

/// How many clusters get each planted kind (the rest are healthy); the
/// `Missing` ones are extra names, beyond the 200 prefixes.
const PLANTED: [(Plant, usize); 7] = [
    (Plant::OneFlipped, 8),
    (Plant::AllFlipped, 3),
    (Plant::CutShort, 4),
    (Plant::Stale, 10),
    (Plant::TooFew, 5),
    (Plant::Missing, 5),
    (Plant::WrongKeySecret, 4),
];

impl Plant {
    /// Which snapshot backup `n` is (`v`: the fixture it would be).
    fn snapshot(self, n: usize, v: usize) -> usize {
        match self {
            Self::WrongKeySecret if n == 0 => WRONG_KEY,
            Self::WrongKeySecret if n == 1 => SEALED,
            _ => v,
        }
    }

    /// Changes backup `n`'s bytes; whether they changed.
    fn damage(self, n: usize, data: &mut Vec<u8>) -> bool {
        match self {
            Self::OneFlipped | Self::AllFlipped if self == Self::AllFlipped || n == 0 => {
                let mid = data.len() / 2 + n;
                data[mid] ^= 0x40;
                true
            }
            Self::CutShort if n == 0 => {
                data.truncate(data.len() / 2);
                true
            }
            _ => false,
        }
    }

    /// How old backup `n` is.
    fn age(self, n: usize) -> u64 {
        match self {
            Self::Stale => 3 * DAY,
            Self::TooFew if n > 0 => 2 * DAY,
            _ => 0,
        }
    }

    /// Whether backup `n` checks out.
    fn valid(self, n: usize) -> bool {
        match self {
            Self::OneFlipped | Self::CutShort | Self::WrongKeySecret => n != 0,
            Self::AllFlipped => false,
            _ => true,
        }
    }

    /// The cluster's finding (the JSON Lines `finding`).
    fn finding(self) -> Option<&'static str> {
        match self {
            Self::AllFlipped => Some("no_valid_backup"),
            Self::Stale => Some("stale"),
            Self::TooFew => Some("too_few"),
            Self::Missing => Some("missing"),
            Self::Healthy | Self::OneFlipped | Self::CutShort | Self::WrongKeySecret => None,
        }
    }

    /// Flags of `verify` this kind needs beyond the ones every run passes
    /// (none yet; `--encryption-config` is in every run).
    fn verify_args(self) -> Vec<String> {
        Vec::new()
    }
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etcdsnap"));
    c.env_remove("JOB_COMPLETION_INDEX");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `etcdsnap ARGS --endpoint … --allow-http`, the server's credentials in the environment.
fn run(s3: &S3Server, args: &[String], envs: &[(&str, String)]) -> Output {
    let mut c = bin();
    c.args(args).args(["--endpoint", &s3.endpoint(), "--allow-http"]);
    for (k, v) in s3.env().into_iter().chain(envs.iter().map(|(k, v)| (*k, v.clone()))) {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The census config of every run (`--encryption-config`) and the two
/// sealed snapshots ([`SEALED`], [`WRONG_KEY`]), made once per run with a
/// real etcd and k8s.io/apiserver's own transformers (`k8scrypt`).
///
/// The config is an API server's in the middle of turning encryption on:
/// `identity` still writes Secrets, `aescbc` key `cbc1` reads them. So the
/// fixtures' plaintext Secrets (under `/tenant-N/registry/secrets/`) are
/// counted and fine, and a Secret sealed under another aescbc key is one the
/// restored cluster could not read.
fn sealed_snapshots(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let census = dir.join("census.yaml");
    write_config(&census, &[("secrets", vec![IDENTITY.into(), aes("aescbc", "cbc1", CBC)])]);
    let (cbc, retired) = (dir.join("cbc.yaml"), dir.join("retired.yaml"));
    write_config(&cbc, &[("secrets", vec![aes("aescbc", "cbc1", CBC)])]);
    write_config(&retired, &[("secrets", vec![aes("aescbc", "retired", RETIRED)])]);
    let (good, wrong) = (dir.join("sealed.db"), dir.join("wrong-key.db"));
    let mut server = EtcdServer::start(EtcdVersion::V3_6_16, &dir.join("etcd"), free_port(), free_port());
    let secret = |n: &str| format!("{{\"kind\":\"Secret\",\"metadata\":{{\"name\":\"{n}\"}}}}").into_bytes();
    for n in ["a", "b"] {
        let key = format!("/registry/secrets/default/{n}");
        put_raw(&server, &key, &seal(&cbc, "secrets", &key, &secret(n)));
    }
    put_raw(&server, "/registry/pods/default/p0", b"{\"kind\":\"Pod\"}");
    server.ctl_ok(&["snapshot", "save", good.to_str().unwrap()]);
    put_raw(&server, WRONG_SECRET, &seal(&retired, "secrets", WRONG_SECRET, &secret("under-retired-key")));
    server.ctl_ok(&["snapshot", "save", wrong.to_str().unwrap()]);
    server.stop();
    std::fs::remove_dir_all(dir.join("etcd")).unwrap();
    (census, good, wrong)
}

/// The planted fleet: what each object and cluster must be found to be.
struct Fleet {
    /// Object URL -> (cluster, snapshot index, valid).
    objects: BTreeMap<String, (String, usize, bool)>,
    /// Cluster -> its planted kind.
    clusters: BTreeMap<String, Plant>,
    bytes: u64,
    /// The census config every run passes.
    census: PathBuf,
}

impl Fleet {
    fn count(&self, f: impl Fn(Plant) -> bool) -> usize {
        self.clusters.values().filter(|p| f(**p)).count()
    }
}

/// The fixtures' Secrets that no key opens: tenant 2's `aesgcm/key1` and
/// tenant 3's KMS v2 values are random bytes after the prefix.
const UNOPENABLE: [&str; 2] = ["/tenant-2/registry/secrets/", "/tenant-3/registry/secrets/"];

/// The snapshots the fleet is made of: the fixtures without [`UNOPENABLE`]
/// (`etcdsnap rewrite --exclude`, so that every healthy backup passes the
/// census; tenant 1's plaintext Secrets stay), then [`SEALED`] and [`WRONG_KEY`].
fn snapshot_files(dir: &Path, good: PathBuf, wrong: PathBuf) -> Vec<PathBuf> {
    let fixtures = VERSIONS.iter().map(|v| {
        let out = dir.join(format!("{v}.db"));
        let mut c = bin();
        c.arg("rewrite").arg(etcdsnap_testkit::testdata().join(v).join("snapshot.db")).arg(&out);
        for p in UNOPENABLE {
            c.args(["--exclude", p]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "rewrite {v}: {}", text(&o.stderr));
        out
    });
    fixtures.chain([good, wrong]).collect()
}

fn plant(s3: &S3Server, snapshots: &[PathBuf], census: PathBuf) -> Fleet {
    let fixtures: Vec<Vec<u8>> = snapshots.iter().map(|f| std::fs::read(f).unwrap()).collect();
    // Kinds spread over the cluster names (73 is prime to 200), so every shard gets some.
    let mut kinds = [Plant::Healthy; CLUSTERS];
    let mut slot = 0usize;
    let mut clusters = BTreeMap::new();
    for (kind, n) in PLANTED {
        for i in 0..n {
            if kind == Plant::Missing {
                clusters.insert(format!("m{i:02}"), kind);
            } else {
                kinds[(slot * 73) % CLUSTERS] = kind;
                slot += 1;
            }
        }
    }
    let mut objects = BTreeMap::new();
    let mut uploads = Vec::new();
    // (fixture, age) -> the key uploaded with those bytes; the others link to it.
    let mut seeds: BTreeMap<(usize, u64), String> = BTreeMap::new();
    let mut links = Vec::new();
    let mut bytes = 0u64;
    for (c, kind) in kinds.iter().enumerate() {
        let cluster = format!("c{c:03}");
        clusters.insert(cluster.clone(), *kind);
        for n in 0..PER_CLUSTER {
            let key = format!("clusters/{cluster}/snapshot-{n}.db");
            let v = kind.snapshot(n, (c + n) % VERSIONS.len());
            let mut data = fixtures[v].clone();
            let damaged = kind.damage(n, &mut data);
            bytes += data.len() as u64;
            objects.insert(format!("s3://fleet/{key}"), (cluster.clone(), v, kind.valid(n)));
            let age = kind.age(n);
            assert!(!damaged || age == 0, "damaged objects are uploaded fresh");
            if damaged {
                uploads.push((key, data));
            } else if let Some(seed) = seeds.get(&(v, age)) {
                links.push((key, seed.clone()));
            } else {
                seeds.insert((v, age), key.clone());
                uploads.push((key, data));
            }
        }
    }
    uploads.push(("clusters/README.txt".to_string(), b"not a backup".to_vec()));
    s3.put_many(uploads);
    for ((_, age), key) in &seeds {
        if *age > 0 {
            let f = std::fs::File::options().write(true).open(s3.object_file(key)).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(*age)).unwrap();
        }
    }
    for (key, seed) in links {
        let to = s3.object_file(&key);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::hard_link(s3.object_file(&seed), &to).unwrap();
    }
    Fleet { objects, clusters, bytes, census }
}

/// What the local commands say of a snapshot.
struct Local {
    status_hash: u64,
    hashkv: u64,
    /// `verify --json --encryption-config`'s census.
    encryption: Value,
}

/// What the local commands say of each snapshot.
fn local_figures(snapshots: &[PathBuf], census: &Path) -> Vec<Local> {
    snapshots
        .iter()
        .map(|f| {
            let f = f.to_str().unwrap();
            let st: Value =
                serde_json::from_slice(&bin().args(["status", "--json", f]).output().unwrap().stdout).unwrap();
            let kv: Value =
                serde_json::from_slice(&bin().args(["hashkv", "--json", f]).output().unwrap().stdout).unwrap();
            let cfg = census.to_str().unwrap();
            let o = bin().args(["verify", "--json", "--encryption-config", cfg, f]).output().unwrap();
            let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(o.status.code(), Some(if v["ok"] == true { 0 } else { 1 }), "{f}: {v}");
            let l = Local {
                status_hash: st["hash"].as_u64().unwrap(),
                hashkv: kv["hash"].as_u64().unwrap(),
                encryption: v["encryption"].clone(),
            };
            assert!(l.encryption.is_object(), "{f}: {v}");
            l
        })
        .collect()
}

/// The local census of each snapshot is the planted one: the fixtures'
/// plaintext Secrets read by identity, the sealed ones by aescbc/cbc1, the
/// Secret under the unlisted key named.
fn assert_local_census(local: &[Local]) {
    let keys = |e: &Value| -> BTreeMap<String, (u64, u64)> {
        e["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                let s = |f: &str| k[f].as_str().unwrap().to_string();
                let name = format!("{} {}/{}", s("resource"), s("provider"), s("key"));
                (name, (k["opened"].as_u64().unwrap(), k["failed"].as_u64().unwrap()))
            })
            .collect()
    };
    for (i, l) in local.iter().enumerate() {
        let e = &l.encryption;
        let findings: Vec<(&str, &str, &str)> = e["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["kind"].as_str().unwrap(), f["key"].as_str().unwrap(), f["key_name"].as_str().unwrap()))
            .collect();
        let secrets = keys(e).get("secrets identity/").copied();
        match i {
            SEALED | WRONG_KEY => {
                assert_eq!(keys(e).get("secrets aescbc/cbc1"), Some(&(2, 0)), "{e}");
                assert_eq!(secrets, None, "{e}");
                let want = if i == SEALED { vec![] } else { vec![("unknown-key", WRONG_SECRET, "retired")] };
                assert_eq!(findings, want, "{e}");
                assert_eq!(e["unknown_key"], u64::from(i == WRONG_KEY), "{e}");
            }
            _ => {
                assert!(secrets.is_some_and(|(opened, failed)| opened > 0 && failed == 0), "{e}");
                assert_eq!(findings, vec![], "fixture {i}: {e}");
            }
        }
    }
}

fn jsonl(s: &str) -> Vec<Value> {
    s.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn verify_args(groups: &Path, now: &str, fleet: &Fleet, extra: &[String]) -> Vec<String> {
    let mut a = strings(&[
        "verify",
        "s3://fleet/clusters/",
        "--recursive",
        "--group-by",
        GROUP_BY,
        "--max-age",
        "24h",
        "--require",
        "2",
        "-j",
        "4",
        "--now",
        now,
        "--expect-groups",
        groups.to_str().unwrap(),
        "--encryption-config",
        fleet.census.to_str().unwrap(),
    ]);
    let kinds: BTreeSet<String> = fleet.clusters.values().flat_map(|k| k.verify_args()).collect();
    a.extend(kinds);
    a.extend(extra.iter().cloned());
    a
}

/// The exact planted findings in the JSON Lines report.
/// Every backup's census is the local one of its snapshot; the wrong-key
/// backups' only problem is the Secret the config cannot open.
fn assert_jsonl(fleet: &Fleet, lines: &[Value], local: &[Local]) {
    let backups = backups_of(lines);
    assert_eq!(backups.keys().collect::<Vec<_>>(), fleet.objects.keys().collect::<Vec<_>>());
    for (url, (cluster, v, valid)) in &fleet.objects {
        let b = &backups[url];
        assert_eq!(b["cluster"].as_str(), Some(cluster.as_str()), "{b}");
        assert_eq!(b["state"], if *valid { "valid" } else { "problems" }, "{b}");
        let kinds: Vec<&str> = b["problems"].as_array().unwrap().iter().map(|p| p["kind"].as_str().unwrap()).collect();
        if *valid {
            let l = &local[*v];
            assert_eq!((b["status_hash"].as_u64(), b["hashkv"].as_u64()), (Some(l.status_hash), Some(l.hashkv)));
            assert_eq!(b["encryption"], l.encryption, "{url}");
        } else if *v == WRONG_KEY {
            assert_eq!((kinds, b["problem_count"].as_u64()), (vec!["encryption-unknown-key"], Some(1)), "{b}");
            assert!(b["problems"][0]["message"].as_str().unwrap().contains(WRONG_SECRET), "{b}");
            assert!(b["status_hash"].is_null() && b["encryption"] == local[WRONG_KEY].encryption, "{b}");
        } else {
            assert!(b["problem_count"].as_u64().unwrap() > 0 && b["status_hash"].is_null(), "{b}");
            assert!(kinds.iter().all(|k| !k.starts_with("encryption-")) && b["encryption"].is_null(), "{b}");
        }
    }
    let clusters: BTreeMap<&str, Option<&str>> = lines
        .iter()
        .filter(|l| l["type"] == "cluster")
        .map(|c| (c["cluster"].as_str().unwrap(), c["finding"].as_str()))
        .collect();
    let want: BTreeMap<&str, Option<&str>> = fleet.clusters.iter().map(|(c, k)| (c.as_str(), k.finding())).collect();
    assert_eq!(clusters, want);
}

/// The backups the text report names the wrong-key Secret under; every
/// census problem it prints must be that one.
fn wrong_key_named(stdout: &str) -> BTreeSet<&str> {
    let mut backup = "";
    let mut named = BTreeSet::new();
    for l in stdout.lines() {
        if l.starts_with("s3://") {
            backup = l.split_once(": ").unwrap().0;
        } else if let Some(p) = l.strip_prefix("  problem: encryption-") {
            assert!(p.starts_with(&format!("unknown-key: {WRONG_SECRET} (secrets): ")), "{backup}: {l}");
            assert!(named.insert(backup), "{backup} named twice");
        }
    }
    named
}

/// The backups whose JUnit case carries the wrong-key Secret's problem.
fn wrong_key_in_junit(xml: &str) -> BTreeSet<String> {
    xml.split("<testcase")
        .skip(1)
        .filter(|case| case.contains("encryption-unknown-key") && case.contains(WRONG_SECRET))
        .map(|case| case.split(" name=\"").nth(1).unwrap().split('"').next().unwrap().to_string())
        .collect()
}

/// The summary line the planted fleet must end the text report with.
fn summary_line(fleet: &Fleet) -> String {
    let damaged = fleet.objects.values().filter(|o| !o.2).count();
    let failing = fleet.count(|k| k.finding().is_some());
    format!(
        "{} objects, {} bytes: {} valid, {damaged} with problems, 0 changed while read, 0 unreadable, \
         1 not matched by --group-by; {} clusters, {failing} failing ({} missing, {} without a valid backup, \
         {} stale, {} too few)",
        fleet.objects.len(),
        fleet.bytes,
        fleet.objects.len() - damaged,
        fleet.clusters.len(),
        fleet.count(|k| k == Plant::Missing),
        fleet.count(|k| k == Plant::AllFlipped),
        fleet.count(|k| k == Plant::Stale),
        fleet.count(|k| k == Plant::TooFew),
    )
}

#[test]
fn two_thousand_backups_give_exactly_the_planted_findings_and_four_shards_merge_through_the_bucket() {
    let started = Instant::now();
    let s3 = S3Server::start("fleet_scale", "fleet");
    let dir = etcdsnap_testkit::scratch("fleet_scale_reports");
    let (census, good, wrong) = sealed_snapshots(&dir);
    let sealed = started.elapsed();
    let snapshots = snapshot_files(&dir, good, wrong);
    let fleet = plant(&s3, &snapshots, census);
    let planted = started.elapsed();
    assert_eq!((fleet.objects.len(), fleet.clusters.len()), (2_000, 205));
    let local = local_figures(&snapshots, &fleet.census);
    assert_local_census(&local);
    let groups = dir.join("expected-clusters.txt");
    let names: Vec<&str> = fleet.clusters.keys().map(String::as_str).collect();
    std::fs::write(&groups, format!("# the fleet\n{}\n", names.join("\n"))).unwrap();
    let now = (SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + 60).to_string();

    // The whole fleet in one run: text on stdout, the three files.
    let full = [dir.join("full.jsonl"), dir.join("full.xml"), dir.join("full.prom")];
    let files: Vec<String> = ["--jsonl", "--junit", "--prometheus"]
        .iter()
        .zip(&full)
        .flat_map(|(flag, f)| [flag.to_string(), f.display().to_string()])
        .collect();
    let t = Instant::now();
    let out = run(&s3, &verify_args(&groups, &now, &fleet, &files), &[]);
    let unsharded = t.elapsed();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "findings are exit 1: {}", text(&out.stderr));

    // Text: a line per backup with its state, a line per failing cluster, the summary;
    // the wrong-key Secret named under exactly its backups.
    for (url, (_, _, valid)) in &fleet.objects {
        let state = if *valid { "valid" } else { "problems" };
        assert_eq!(stdout.lines().filter(|l| l.starts_with(&format!("{url}: {state} ("))).count(), 1, "{url}");
    }
    let wrong_key: BTreeSet<&str> =
        fleet.objects.iter().filter(|(_, o)| o.1 == WRONG_KEY).map(|(u, _)| u.as_str()).collect();
    assert_eq!(wrong_key.len(), fleet.count(|k| k == Plant::WrongKeySecret));
    assert_eq!(wrong_key_named(&stdout), wrong_key);
    let failing: BTreeSet<(&str, &str)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("cluster "))
        .map(|l| {
            let mut parts = l.splitn(3, ": ");
            (parts.next().unwrap(), parts.next().unwrap())
        })
        .collect();
    let want: BTreeSet<(&str, &str)> =
        fleet.clusters.iter().filter_map(|(c, k)| k.finding().map(|f| (c.as_str(), f))).collect();
    assert_eq!(failing, want);
    assert_eq!(stdout.lines().last(), Some(summary_line(&fleet).as_str()));

    // JSON Lines.
    let full_jsonl = std::fs::read_to_string(&full[0]).unwrap();
    let lines = jsonl(&full_jsonl);
    assert_jsonl(&fleet, &lines, &local);

    // JUnit: a suite per cluster; a failing case per damaged backup and per failing objective.
    let xml = std::fs::read_to_string(&full[1]).unwrap();
    let j = formats::junit(&xml);
    let damaged = fleet.objects.values().filter(|o| !o.2).count() as u64;
    assert_eq!(j.suites.len(), fleet.clusters.len());
    assert_eq!(j.totals, (2_000 + fleet.clusters.len() as u64, damaged + want.len() as u64, 0));
    for c in &j.cases {
        let outcome = c.outcome.as_ref().map(|(_, t)| t.as_str());
        match fleet.objects.get(&c.name) {
            Some((cluster, _, valid)) => assert_eq!((&c.suite, outcome.is_none()), (cluster, *valid), "{c:?}"),
            None => assert_eq!(outcome, fleet.clusters[&c.suite].finding(), "{c:?}"),
        }
    }
    assert_eq!(wrong_key_in_junit(&xml), wrong_key.iter().map(|u| u.to_string()).collect());

    // Prometheus: every backup's validity and every cluster's objective.
    let prom = formats::prometheus(&std::fs::read_to_string(&full[2]).unwrap());
    for (url, (cluster, _, valid)) in &fleet.objects {
        let l = [("cluster", cluster.as_str()), ("object", url.as_str())];
        assert_eq!(formats::sample(&prom, "etcdsnap_backup_valid", &l), Some(f64::from(u8::from(*valid))), "{url}");
        // The census of every backup that got one (all but the damaged), as the local one.
        let census = &local[fleet.objects[url].1].encryption;
        for result in ["opened", "unknown_key"] {
            let l = [l[0], l[1], ("result", result)];
            let got = formats::sample(&prom, "etcdsnap_backup_encryption_values", &l);
            let want = (*valid || wrong_key.contains(url.as_str())).then(|| census[result].as_f64().unwrap());
            assert_eq!(got, want, "{url} {result}");
        }
    }
    for (c, k) in &fleet.clusters {
        let ok = f64::from(u8::from(k.finding().is_none()));
        assert_eq!(formats::sample(&prom, "etcdsnap_cluster_backup_ok", &[("cluster", c)]), Some(ok), "{c}");
    }

    // 4 shards as a Job's pods, each writing its reports to the bucket.
    let t = Instant::now();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..4u32 {
        let report = |ext: &str| format!("s3://fleet/reports/run-1/shard-{i}.{ext}");
        let extra = vec![
            "--shard".into(),
            "/4".into(),
            "--report-format".into(),
            "jsonl".into(),
            "--jsonl".into(),
            report("jsonl"),
            "--junit".into(),
            report("xml"),
        ];
        let out = run(&s3, &verify_args(&groups, &now, &fleet, &extra), &[("JOB_COMPLETION_INDEX", i.to_string())]);
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out.stderr));
        let shard = std::fs::read_to_string(s3.object_file(&format!("reports/run-1/shard-{i}.jsonl"))).unwrap();
        // Stdout streams the records as they finish; the object holds them sorted, with the tail.
        assert!(
            backups_of(&jsonl(&shard)) == backups_of(&jsonl(&text(&out.stdout))),
            "shard {i}: object and stdout differ"
        );
        assert_eq!(jsonl(&shard).last().unwrap()["shard"], format!("{i}/4"));
        let junit = std::fs::read_to_string(s3.object_file(&format!("reports/run-1/shard-{i}.xml"))).unwrap();
        assert!(formats::junit(&junit).totals.0 > 0);
        for url in backups_of(&jsonl(&shard)).keys() {
            assert!(seen.insert(url.clone(), i).is_none(), "{url} in two shards");
        }
    }
    let sharded = t.elapsed();
    assert_eq!(seen.keys().collect::<Vec<_>>(), fleet.objects.keys().collect::<Vec<_>>(), "every object once");
    let shards_of =
        |c: &str| seen.iter().filter(|(u, _)| fleet.objects[*u].0 == c).map(|(_, i)| *i).collect::<BTreeSet<_>>();
    assert!(fleet.clusters.keys().all(|c| shards_of(c).len() <= 1), "a cluster is judged whole in one shard");

    // The merge reads the shards from the bucket by pattern, writes the
    // merged JSON Lines back to it and the other formats locally.
    let merged_xml = dir.join("merged.xml");
    let merged_prom = dir.join("merged.prom");
    let merge = strings(&[
        "report",
        "merge",
        "s3://fleet/reports/run-1/shard-*.jsonl",
        "--jsonl",
        "s3://fleet/reports/run-1/merged.all",
        "--junit",
        merged_xml.to_str().unwrap(),
        "--prometheus",
        merged_prom.to_str().unwrap(),
    ]);
    let out = run(&s3, &merge, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout) == full_jsonl, "the merge's stdout is the unsharded JSON Lines report");
    let merged = std::fs::read_to_string(s3.object_file("reports/run-1/merged.all")).unwrap();
    assert!(merged == full_jsonl, "the merged object is the unsharded JSON Lines report");
    for (m, f) in [(&merged_xml, &full[1]), (&merged_prom, &full[2])] {
        let same = std::fs::read_to_string(m).unwrap() == std::fs::read_to_string(f).unwrap();
        assert!(same, "{} equals {}", m.display(), f.display());
    }
    // By prefix: its .jsonl objects (the JUnit ones and merged.all are not shards).
    let out = run(&s3, &strings(&["report", "merge", "s3://fleet/reports/run-1/"]), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout) == full_jsonl, "the merge of the prefix is the unsharded report");
    // Three of four shards do not make the fleet; a shard twice neither: refused, saying why.
    let shard = |i: u32| format!("s3://fleet/reports/run-1/shard-{i}.jsonl");
    for (inputs, why) in [
        (vec![shard(0), shard(1), shard(3)], "shard 2/4 is missing"),
        (vec!["s3://fleet/reports/run-1/shard-?.jsonl".into(), shard(0)], "shard 0/4 given twice"),
        (vec!["s3://fleet/reports/run-2/".into()], "s3://fleet/reports/run-2/: no object matches *.jsonl"),
    ] {
        let out = run(&s3, &[strings(&["report", "merge"]), inputs].concat(), &[]);
        assert_eq!(out.status.code(), Some(2), "{why}: {}", text(&out.stdout));
        assert!(text(&out.stderr).contains(why), "{why}: {}", text(&out.stderr));
    }

    eprintln!(
        "fleet_scale: sealed snapshots in {:.1}s, planted in {:.1}s, unsharded run {:.1}s, 4 shards {:.1}s, total {:.1}s",
        sealed.as_secs_f64(),
        (planted - sealed).as_secs_f64(),
        unsharded.as_secs_f64(),
        sharded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
