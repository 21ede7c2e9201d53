//! `rewrite` and `restore` reading their input from object storage (a real
//! S3 server: versitygw 1.8.0 on 127.0.0.1; the test fails, never skips,
//! without it): the object is spooled once and the local path runs on the
//! copy, so the output equals the same command's on the local file (byte for
//! byte for `rewrite`; each member's db for `restore`), reports name the
//! URL, errors name the URL (never the spool copy), and nothing is left in
//! the spool directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use etcdsnap_testkit::s3::S3Server;
use serde_json::Value;

const URL: &str = "s3://objects/backups/snapshot.db";
const FLIPPED_URL: &str = "s3://objects/backups/flipped.db";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `etcdsnap ARGS` against the server, credentials from `env` (the standard AWS_* chain).
fn remote(s3: &S3Server, spool: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = bin();
    c.args(args).args(["--endpoint", &s3.endpoint(), "--allow-http", "--spool-dir", spool.to_str().unwrap()]);
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    c.output().unwrap()
}

fn local(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// A JSON report with the run's own names and times taken out.
fn comparable(out: &Output, names: &[(&str, &str)]) -> Value {
    let mut s = text(&out.stdout);
    for (from, to) in names {
        s = s.replace(from, to);
    }
    let mut v: Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
    strip_elapsed(&mut v);
    v
}

fn strip_elapsed(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("elapsed_ms");
            m.values_mut().for_each(strip_elapsed);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_elapsed),
        _ => {}
    }
}

struct Setup {
    s3: S3Server,
    dir: PathBuf,
    spool: PathBuf,
    good: PathBuf,
    flipped: PathBuf,
}

fn setup(name: &str) -> Setup {
    let s3 = S3Server::start(name, "objects");
    let dir = etcdsnap_testkit::scratch(&format!("{name}_local"));
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let good = etcdsnap_testkit::testdata().join("etcd-3.5.1/snapshot.db");
    let mut data = std::fs::read(&good).unwrap();
    s3.put("backups/snapshot.db", data.clone());
    let mid = data.len() / 2;
    data[mid] ^= 1;
    let flipped = dir.join("flipped.db");
    std::fs::write(&flipped, &data).unwrap();
    s3.put("backups/flipped.db", data);
    Setup { s3, dir, spool, good, flipped }
}

fn spool_is_empty(s: &Setup) {
    assert_eq!(std::fs::read_dir(&s.spool).unwrap().count(), 0, "the spool copies are removed");
}

#[test]
fn rewrite_of_an_object_writes_the_bytes_the_local_rewrite_writes() {
    let s = setup("object_inputs_rewrite");
    let env = s.s3.env();
    let good = s.good.to_str().unwrap();
    let tenant = [
        "--include",
        "/tenant-1/",
        "--keep-key",
        "compact_rev_key",
        "--rename",
        "/tenant-1/registry/=/registry/",
        "--bump-revision",
        "1000000000",
        "--mark-compacted",
        "--json",
    ];
    // The tenant moved (pages laid out anew), and a bump alone (input pages patched copy-on-write).
    for (name, rules) in [("tenant", &tenant[..]), ("bump", &["--bump-revision", "1000", "--json"][..])] {
        let (r_out, l_out) = (s.dir.join(format!("{name}-remote.db")), s.dir.join(format!("{name}-local.db")));
        let r = remote(&s.s3, &s.spool, &[&["rewrite", URL, r_out.to_str().unwrap()], rules].concat(), &env);
        let l = local(&[&["rewrite", good, l_out.to_str().unwrap()], rules].concat());
        assert_eq!((r.status.code(), l.status.code()), (Some(0), Some(0)), "{name}: {}", text(&r.stderr));
        assert!(std::fs::read(&r_out).unwrap() == std::fs::read(&l_out).unwrap(), "{name}: the outputs differ");
        let rj = comparable(&r, &[(URL, good), (r_out.to_str().unwrap(), l_out.to_str().unwrap())]);
        assert_eq!(rj, comparable(&l, &[]), "{name}");
        let report: Value = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(report["input"], URL, "the report names the URL");
        spool_is_empty(&s);
    }
    // A damaged object is refused as the local file is, naming the URL.
    let (r_out, l_out) = (s.dir.join("flipped-remote.db"), s.dir.join("flipped-local.db"));
    let r = remote(&s.s3, &s.spool, &["rewrite", FLIPPED_URL, r_out.to_str().unwrap(), "--bump-revision", "10"], &env);
    let l = local(&["rewrite", s.flipped.to_str().unwrap(), l_out.to_str().unwrap(), "--bump-revision", "10"]);
    assert_eq!(r.status.code(), l.status.code());
    assert_ne!(r.status.code(), Some(0), "{}", text(&r.stderr));
    let r_err = text(&r.stderr);
    assert_eq!(
        r_err
            .replace(FLIPPED_URL, s.flipped.to_str().unwrap())
            .replace(r_out.to_str().unwrap(), l_out.to_str().unwrap()),
        text(&l.stderr)
    );
    assert!(r_err.contains(FLIPPED_URL) && !r_err.contains("etcdsnap-spool"), "{r_err}");
    assert!(!r_out.exists() && !l_out.exists());
    spool_is_empty(&s);
    // A data dir cannot be an object.
    let r = remote(&s.s3, &s.spool, &["rewrite", URL, s.dir.join("dd").to_str().unwrap(), "--data-dir"], &env);
    assert_eq!(r.status.code(), Some(2));
    assert!(text(&r.stderr).contains(URL), "{}", text(&r.stderr));
}

#[test]
fn restore_of_an_object_writes_the_members_the_local_restore_writes() {
    let s = setup("object_inputs_restore");
    let env = s.s3.env();
    let good = s.good.to_str().unwrap();
    let cluster = "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380,n3=http://10.0.0.3:2380";
    let rules = ["--initial-cluster", cluster, "--bump-revision", "1000", "--mark-compacted", "--json"];
    let (r_dir, l_dir) = (s.dir.join("members-remote"), s.dir.join("members-local"));
    let r = remote(
        &s.s3,
        &s.spool,
        &[&["restore", URL, "--members-out", r_dir.to_str().unwrap()], &rules[..]].concat(),
        &env,
    );
    let l = local(&[&["restore", good, "--members-out", l_dir.to_str().unwrap()], &rules[..]].concat());
    assert_eq!((r.status.code(), l.status.code()), (Some(0), Some(0)), "{}", text(&r.stderr));
    for m in ["n1", "n2", "n3"] {
        let db = |d: &Path| std::fs::read(d.join(m).join("member/snap/db")).unwrap();
        assert!(db(&r_dir) == db(&l_dir), "member {m}: the dbs differ");
        assert!(db(&r_dir).len() > 100_000);
    }
    let rj = comparable(&r, &[(URL, good), (r_dir.to_str().unwrap(), l_dir.to_str().unwrap())]);
    assert_eq!(rj, comparable(&l, &[]));
    assert_eq!(serde_json::from_slice::<Value>(&r.stdout).unwrap()["snapshot"], URL);
    spool_is_empty(&s);

    // One member, the default data dir name in the working directory: as locally.
    let (r_one, l_one) = (s.dir.join("one-remote"), s.dir.join("one-local"));
    let r = remote(&s.s3, &s.spool, &["restore", URL, "--data-dir", r_one.to_str().unwrap()], &env);
    let l = local(&["restore", good, "--data-dir", l_one.to_str().unwrap()]);
    assert_eq!((r.status.code(), l.status.code()), (Some(0), Some(0)), "{}", text(&r.stderr));
    let db = |d: &Path| std::fs::read(d.join("member/snap/db")).unwrap();
    assert!(db(&r_one) == db(&l_one), "the one member's dbs differ");

    // A damaged trailer: refused as locally, naming the URL; with --skip-hash-check restored as locally.
    let (r_bad, l_bad) = (s.dir.join("bad-remote"), s.dir.join("bad-local"));
    let flipped = s.flipped.to_str().unwrap();
    let r = remote(&s.s3, &s.spool, &["restore", FLIPPED_URL, "--data-dir", r_bad.to_str().unwrap()], &env);
    let l = local(&["restore", flipped, "--data-dir", l_bad.to_str().unwrap()]);
    assert_eq!((r.status.code(), l.status.code()), (l.status.code(), Some(2)), "{}", text(&l.stderr));
    let r_err = text(&r.stderr);
    let renamed = r_err.replace(FLIPPED_URL, flipped).replace(r_bad.to_str().unwrap(), l_bad.to_str().unwrap());
    assert_eq!(renamed, text(&l.stderr));
    assert!(r_err.contains(FLIPPED_URL) && !r_err.contains("etcdsnap-spool"), "{r_err}");
    spool_is_empty(&s);
}

#[test]
fn a_missing_object_or_bad_credentials_fail_with_exit_2_naming_the_url() {
    let s = setup("object_inputs_errors");
    let out = s.dir.join("out.db");
    let out = out.to_str().unwrap();
    let missing = "s3://objects/backups/nope.db";
    let mut wrong = s.s3.env();
    for (k, v) in &mut wrong {
        if *k == "AWS_SECRET_ACCESS_KEY" {
            *v = "not-the-secret".into();
        }
    }
    for (url, env, why) in [(missing, s.s3.env(), "not found"), (URL, wrong, "")] {
        for args in [vec!["rewrite", url, out, "--bump-revision", "1"], vec!["restore", url, "--data-dir", out]] {
            let r = remote(&s.s3, &s.spool, &args, &env);
            let err = text(&r.stderr);
            assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.starts_with(&format!("etcdsnap: {url}: ")), "{args:?}: {err}");
            assert!(err.to_lowercase().contains(why), "{args:?}: {err}");
            assert!(!Path::new(out).exists());
            spool_is_empty(&s);
        }
    }
}
