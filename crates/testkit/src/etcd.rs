//! Real etcd for the tests: loopback ports reserved across test processes,
//! the stock `snapshot restore` of every version, a running server, and what
//! it serves compared with the fixtures' expectations.

use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::*;

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

pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null());
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub(crate) fn describe(cmd: &Command, out: &Output) -> String {
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

    /// Spawns `version`'s etcd as the member `name` of the cluster
    /// `initial_cluster` (`name=http://127.0.0.1:port,…`) on `data_dir`,
    /// without waiting: a member of several is healthy only once a quorum runs
    /// ([`EtcdServer::wait_healthy`]). Logs to `<data_dir>.etcd.log`.
    pub fn spawn_member(
        version: EtcdVersion,
        name: &str,
        data_dir: &Path,
        client_port: u16,
        peer_port: u16,
        initial_cluster: &str,
    ) -> EtcdServer {
        let mut log_name = data_dir.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "etcd".into());
        log_name.push(".etcd.log");
        let log_path = data_dir.with_file_name(log_name);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let mut cmd = etcd_command(version, data_dir, client_port, peer_port, log);
        // Later flags win in etcd's flag parsing: the member's own name and cluster.
        cmd.args(["--name", name, "--initial-cluster", initial_cluster]);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        EtcdServer { version, child: Some(child), client_port, peer_port, data_dir: data_dir.to_path_buf(), log_path }
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

    /// Waits (30 s at most) until `etcdctl endpoint health` succeeds; fails with the log tail.
    pub fn wait_healthy(&mut self) {
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
