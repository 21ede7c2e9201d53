//! A real kube-apiserver (1.37.2, built from Go modules by
//! `tools/install-oracles.sh`) on loopback against a test etcd, and the
//! client-go driver `k8sdriver` that writes, reads and watches through it.
//!
//! The apiserver runs with self-signed serving certificates, one static token
//! (`--token-auth-file`; kube-apiserver turns anonymous requests off under
//! AlwaysAllow) and `--authorization-mode=AlwaysAllow`, a generated
//! service-account key pair, `--etcd-prefix` and an `EncryptionConfiguration`
//! for Secrets; no other Kubernetes component runs. Like the rest of testkit, a missing binary or a
//! server that does not come up fails the test.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{oracles_dir, require_exe, tail};

/// The kube-apiserver version the oracle is built at (tools/oracles/kube-apiserver-<v>).
pub const KUBE_VERSION: &str = "1.37.2";

/// The bearer token of the test's only user (a member of `system:masters`).
pub const TOKEN: &str = "etcdsnap-e2e-token";

/// `<oracles>/kube-apiserver-<v>/kube-apiserver` (asserted to exist).
pub fn kube_apiserver_bin() -> PathBuf {
    require_exe(&oracles_dir().join(format!("kube-apiserver-{KUBE_VERSION}/kube-apiserver")))
}

/// `<oracles>/k8sdriver-<v>/k8sdriver` (asserted to exist).
pub fn k8sdriver_bin() -> PathBuf {
    require_exe(&oracles_dir().join(format!("k8sdriver-{KUBE_VERSION}/k8sdriver")))
}

/// A Secrets encryption provider of an `EncryptionConfiguration`, with one key.
#[derive(Debug, Clone)]
pub enum Provider {
    /// `aescbc` (no authenticated data: survives a key rename).
    AesCbc {
        /// Key name (it appears in every value: `k8s:enc:aescbc:v1:<name>:`).
        name: String,
        /// 32 bytes.
        key: [u8; 32],
    },
    /// `aesgcm` (the etcd key is the authenticated data: bound to the key).
    AesGcm {
        /// Key name.
        name: String,
        /// 32 bytes.
        key: [u8; 32],
    },
    /// `secretbox` (no authenticated data).
    Secretbox {
        /// Key name.
        name: String,
        /// 32 bytes.
        key: [u8; 32],
    },
    /// `kms` through a plugin socket (KMS v2 or the deprecated v1).
    Kms {
        /// Provider name (`k8s:enc:kms:v2:<name>:`).
        name: String,
        /// `v2` or `v1`.
        api_version: String,
        /// The plugin's unix socket.
        socket: PathBuf,
    },
    /// `identity` (plain; reads unencrypted values).
    Identity,
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Provider {
    fn to_json(&self) -> Value {
        let keys = |name: &str, key: &[u8; 32]| json!({"keys": [{"name": name, "secret": base64(key)}]});
        match self {
            Provider::AesCbc { name, key } => json!({ "aescbc": keys(name, key) }),
            Provider::AesGcm { name, key } => json!({ "aesgcm": keys(name, key) }),
            Provider::Secretbox { name, key } => json!({ "secretbox": keys(name, key) }),
            Provider::Kms { name, api_version, socket } => json!({ "kms": {
                "apiVersion": api_version, "name": name,
                "endpoint": format!("unix://{}", socket.display()), "timeout": "3s"} }),
            Provider::Identity => json!({ "identity": {} }),
        }
    }
}

/// Writes an `EncryptionConfiguration` (JSON, which is YAML) encrypting Secrets
/// with `providers`, the first one writing.
pub fn write_encryption_config(path: &Path, providers: &[Provider]) {
    let config = json!({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{
            "resources": ["secrets"],
            "providers": providers.iter().map(Provider::to_json).collect::<Vec<_>>(),
        }],
    });
    fs::write(path, serde_json::to_vec_pretty(&config).expect("config to JSON"))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The KMS plugin oracle (tools/oracles/kmsplugin-<v>, k8s.io/kms v0.37.2).
pub fn kmsplugin_bin() -> PathBuf {
    require_exe(&oracles_dir().join("kmsplugin-0.37.2/kmsplugin"))
}

/// A running `kmsplugin` serving the KMS v2 and v1beta1 APIs on a unix
/// socket, its key-encryption key from a file; stopped on drop.
#[derive(Debug)]
pub struct KmsPlugin {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl KmsPlugin {
    /// Starts the plugin on `<dir>/<name>.sock` with `kek`; `key_id` overrides
    /// the id it derives from the KEK.
    pub fn start(dir: &Path, name: &str, kek: &[u8; 32], key_id: Option<&str>) -> KmsPlugin {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let socket = dir.join(format!("{name}.sock"));
        let kek_path = dir.join(format!("{name}.kek"));
        let log = dir.join(format!("{name}.calls"));
        fs::write(&kek_path, kek).unwrap_or_else(|e| panic!("writing {}: {e}", kek_path.display()));
        let _ = fs::remove_file(&log);
        let stderr = File::create(dir.join(format!("{name}.stderr.log"))).expect("plugin stderr file");
        let mut cmd = Command::new(kmsplugin_bin());
        cmd.arg("--socket").arg(&socket).arg("--kek").arg(&kek_path).arg("--log").arg(&log);
        if let Some(id) = key_id {
            cmd.args(["--key-id", id]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting kmsplugin: {e}"));
        let mut p = KmsPlugin { child, socket, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !p.socket.exists() {
            assert!(matches!(p.child.try_wait(), Ok(None)), "kmsplugin exited; see {}", dir.display());
            assert!(Instant::now() < deadline, "kmsplugin did not create {}", p.socket.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    /// Its socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Every call so far, by `<api> <method> <ok|error>` (`v2 Decrypt ok`).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        for l in fs::read_to_string(&self.log).unwrap_or_default().lines() {
            *m.entry(l.to_string()).or_insert(0) += 1;
        }
        m
    }

    /// Stops it (also on drop).
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for KmsPlugin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes a fresh service-account key pair into `dir` (`sa.key`, `sa.pub`) with
/// `k8sdriver sakeys`; returns (private, public).
pub fn service_account_keys(dir: &Path) -> (PathBuf, PathBuf) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let out = driver_output(driver_cmd().arg("sakeys").arg(dir));
    assert!(out.status.success(), "k8sdriver sakeys: {}", String::from_utf8_lossy(&out.stderr));
    (dir.join("sa.key"), dir.join("sa.pub"))
}

/// How to start one kube-apiserver.
#[derive(Debug, Clone)]
pub struct ApiserverConfig {
    /// `http://127.0.0.1:PORT` of the etcd.
    pub etcd: String,
    /// `--etcd-prefix`, e.g. `/tenant-a/registry`.
    pub etcd_prefix: String,
    /// `--secure-port` on 127.0.0.1.
    pub port: u16,
    /// `--encryption-provider-config`.
    pub encryption_config: PathBuf,
    /// The service-account key pair (private, public).
    pub sa_keys: (PathBuf, PathBuf),
    /// Scratch directory for certificates and the log.
    pub dir: PathBuf,
    /// `--etcd-compaction-interval` (kube-apiserver's own compactor; `0s` is off).
    pub compaction_interval: String,
}

/// A running kube-apiserver, stopped (SIGTERM, then SIGKILL after 5 s) on drop.
#[derive(Debug)]
pub struct KubeApiserver {
    child: Option<Child>,
    url: String,
    log_path: PathBuf,
    ready_after: Duration,
}

const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// kube-apiserver stops listening at once on SIGTERM but may linger longer
/// (15 s and more here) before it exits; nothing it does then matters to a test.
const APISERVER_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Numbers the log files, so a restart on the same port keeps the earlier log.
static STARTS: AtomicU32 = AtomicU32::new(0);

impl KubeApiserver {
    /// Starts kube-apiserver with `config` and waits until `/readyz` answers `ok`
    /// (3 minutes at most); fails with the log tail otherwise.
    pub fn start(config: &ApiserverConfig) -> KubeApiserver {
        Self::start_excluding(config, &[])
    }

    /// [`KubeApiserver::start`], waiting for `/readyz` without the checks named
    /// in `exclude` (for a server that cannot be ready, such as one whose
    /// Secrets cannot be decrypted: `informer-sync`).
    pub fn start_excluding(config: &ApiserverConfig, exclude: &[&str]) -> KubeApiserver {
        fs::create_dir_all(&config.dir).unwrap_or_else(|e| panic!("creating {}: {e}", config.dir.display()));
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let log_path = config.dir.join(format!("kube-apiserver-{}-{n}.log", config.port));
        let log = File::create(&log_path).unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let log2 = log.try_clone().expect("cloning log handle");
        let tokens = config.dir.join("tokens.csv");
        fs::write(&tokens, format!("{TOKEN},e2e-admin,e2e-admin,\"system:masters\"\n"))
            .unwrap_or_else(|e| panic!("writing {}: {e}", tokens.display()));
        let mut cmd = Command::new(kube_apiserver_bin());
        cmd.arg(format!("--etcd-servers={}", config.etcd))
            .arg(format!("--etcd-prefix={}", config.etcd_prefix))
            .arg(format!("--etcd-compaction-interval={}", config.compaction_interval))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={}", config.port))
            .arg(format!("--cert-dir={}", config.dir.join("certs").display()))
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!("--service-account-signing-key-file={}", config.sa_keys.0.display()))
            .arg(format!("--service-account-key-file={}", config.sa_keys.1.display()))
            .arg("--service-cluster-ip-range=10.96.0.0/24")
            .arg("--authorization-mode=AlwaysAllow")
            .arg(format!("--token-auth-file={}", tokens.display()))
            .arg(format!("--encryption-provider-config={}", config.encryption_config.display()))
            // Nothing else runs: no endpoint leases to reconcile, no profiling.
            .arg("--endpoint-reconciler-type=none")
            .arg("--profiling=false")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let mut server = KubeApiserver {
            child: Some(child),
            url: format!("https://127.0.0.1:{}", config.port),
            log_path,
            ready_after: Duration::ZERO,
        };
        let begin = Instant::now();
        server.wait_ready(exclude);
        server.ready_after = begin.elapsed();
        server
    }

    fn wait_ready(&mut self, exclude: &[&str]) {
        let mut ready = driver_cmd();
        ready.args(["ready", "--server", &self.url, "--timeout"]).arg(format!("{}s", READY_TIMEOUT.as_secs()));
        for e in exclude {
            ready.args(["--exclude", e]);
        }
        let mut probe =
            ready.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("k8sdriver ready");
        loop {
            if let Some(status) = probe.try_wait().expect("waiting for k8sdriver ready") {
                let mut err = String::new();
                if let Some(mut e) = probe.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                assert!(status.success(), "kube-apiserver {} not ready: {err}\nlog:\n{}", self.url, self.log_tail(60));
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let _ = probe.kill();
                    let _ = probe.wait();
                    self.child = None;
                    panic!("kube-apiserver {} exited during startup ({status}); log:\n{}", self.url, self.log_tail(60));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asks `/readyz` for `within` and asserts it never answers `ok`; returns
    /// the last answer (kube lists each check, `[-]name failed` for failing ones).
    pub fn not_ready(&self, within: Duration) -> String {
        let out = driver_output(
            driver_cmd().args(["ready", "--server", &self.url, "--timeout"]).arg(format!("{}s", within.as_secs())),
        );
        assert!(!out.status.success(), "kube-apiserver {} became ready", self.url);
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How long the start took until `/readyz` answered `ok`.
    pub fn ready_after(&self) -> Duration {
        self.ready_after
    }

    /// The last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        tail(&s, n)
    }

    /// Stops the server (SIGTERM, up to 5 s, then SIGKILL); idempotent.
    pub fn stop(&mut self) {
        crate::stop_child(&mut self.child, APISERVER_STOP_TIMEOUT);
    }

    /// `k8sdriver apply`: each op (`{"op": "create"|"update"|"delete", "object": {...}}`)
    /// in order; asserts success and returns the resulting objects.
    pub fn apply(&self, ops: &[Value]) -> Vec<Value> {
        self.try_apply(ops)
            .unwrap_or_else(|e| panic!("k8sdriver apply on {}: {e}\nserver log:\n{}", self.url, self.log_tail(30)))
    }

    /// [`KubeApiserver::apply`] (ops also `dry-run-create`, a server-side dry
    /// run), returning the server's refusal instead of failing.
    pub fn try_apply(&self, ops: &[Value]) -> Result<Vec<Value>, String> {
        let mut input = Vec::new();
        for op in ops {
            serde_json::to_writer(&mut input, op).expect("op to JSON");
            input.push(b'\n');
        }
        let mut child = driver_cmd()
            .args(["apply", "--server", &self.url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning k8sdriver apply");
        child.stdin.take().expect("stdin").write_all(&input).expect("writing ops");
        let out = child.wait_with_output().expect("k8sdriver apply");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(json_lines(&out.stdout))
    }

    /// `k8sdriver dump RES...` (`[group/]version/resource[@namespace]`): every
    /// object, sorted by resource, namespace, name; asserts success.
    pub fn dump(&self, resources: &[&str]) -> Vec<Value> {
        let out = driver_output(driver_cmd().args(["dump", "--server", &self.url]).args(resources));
        assert!(
            out.status.success(),
            "k8sdriver dump {resources:?} on {}: {}\nserver log:\n{}",
            self.url,
            String::from_utf8_lossy(&out.stderr),
            self.log_tail(30)
        );
        json_lines(&out.stdout)
    }

    /// `k8sdriver watch --rv RV RES`: one watch from `rv`, answering
    /// `{"error": ...}` (refused), `{"event": TYPE, "object": ...}` (its first
    /// event) or `{"event": "NONE"}` (nothing within `wait`).
    pub fn watch_from(&self, resource: &str, rv: &str, wait: Duration) -> Value {
        let timeout = format!("{}ms", wait.as_millis());
        let out = driver_output(driver_cmd().args([
            "watch",
            "--server",
            &self.url,
            "--rv",
            rv,
            "--timeout",
            &timeout,
            resource,
        ]));
        assert!(out.status.success(), "k8sdriver watch on {}: {}", self.url, String::from_utf8_lossy(&out.stderr));
        json_lines(&out.stdout).into_iter().next().expect("k8sdriver watch printed nothing")
    }

    /// `k8sdriver get RES NAME`: the object, or the server's error message.
    pub fn get(&self, resource: &str, name: &str) -> Result<Value, String> {
        let out = driver_output(driver_cmd().args(["get", "--server", &self.url, resource, name]));
        if out.status.success() {
            json_lines(&out.stdout).into_iter().next().ok_or_else(|| "no output".to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for KubeApiserver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn driver_cmd() -> Command {
    let mut c = Command::new(k8sdriver_bin());
    // Plain list + watch (see tools/oracles/k8sdriver/main.go).
    c.env("KUBE_FEATURE_WatchListClient", "false").env("K8SDRIVER_TOKEN", TOKEN);
    c
}

fn driver_output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null());
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("k8sdriver output is not JSON ({e}): {l}")))
        .collect()
}

/// `k8sdriver informer` running in the background: a shared informer on the
/// ConfigMaps and Secrets of one namespace, whose JSON-lines log is collected
/// as it arrives. Killed on drop.
#[derive(Debug)]
pub struct Informer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<Value>>>,
    stderr_path: PathBuf,
}

impl Informer {
    /// Starts the informer against `server` (a URL that stays the same while
    /// servers behind it come and go) for `namespace`; waits (60 s) for `SYNCED`.
    pub fn start(server: &str, namespace: &str, dir: &Path) -> Informer {
        let stderr_path = dir.join("informer.stderr.log");
        let stderr = File::create(&stderr_path).unwrap_or_else(|e| panic!("creating {}: {e}", stderr_path.display()));
        let mut child = driver_cmd()
            .args(["informer", "--server", server, "--namespace", namespace])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawning k8sdriver informer");
        let stdout = child.stdout.take().expect("informer stdout");
        let stdin = child.stdin.take();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| json!({"type": "UNPARSED", "error": e.to_string(), "line": line}));
                sink.lock().expect("informer log lock").push(value);
            }
        });
        let informer = Informer { child, stdin, lines, stderr_path };
        informer.wait_for("SYNCED", Duration::from_secs(60), |l| l.iter().any(|v| v["type"] == "SYNCED"));
        informer
    }

    /// A copy of every line so far.
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().expect("informer log lock").clone()
    }

    /// How many lines so far (a mark for [`Informer::lines_since`]).
    pub fn mark(&self) -> usize {
        self.lines.lock().expect("informer log lock").len()
    }

    /// The lines after `mark`.
    pub fn lines_since(&self, mark: usize) -> Vec<Value> {
        self.lines.lock().expect("informer log lock").get(mark..).map(<[Value]>::to_vec).unwrap_or_default()
    }

    /// Waits until `pred` holds on all lines so far; fails after `timeout`
    /// with `what` and the log's tail.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.lines.lock().expect("informer log lock")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "informer: no {what} after {timeout:?}; last lines:\n{}\nstderr:\n{}",
                self.lines().iter().rev().take(30).rev().map(Value::to_string).collect::<Vec<_>>().join("\n"),
                tail(&fs::read_to_string(&self.stderr_path).unwrap_or_default(), 20)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The informer's store now: kind (`ConfigMap`, `Secret`) → name →
    /// resourceVersion, asked for with `dump` on its stdin.
    pub fn store(&mut self) -> Vec<(String, Value)> {
        let mark = self.mark();
        let stdin = self.stdin.as_mut().expect("informer stdin");
        stdin.write_all(b"dump\n").and_then(|()| stdin.flush()).expect("writing to the informer");
        self.wait_for("STORE answer", Duration::from_secs(30), |l| {
            l.get(mark..).is_some_and(|new| new.iter().filter(|v| v["type"] == "STORE").count() == 2)
        });
        self.lines_since(mark)
            .into_iter()
            .filter(|v| v["type"] == "STORE")
            .map(|v| (v["kind"].as_str().unwrap_or_default().to_string(), v["store"].clone()))
            .collect()
    }

    /// Whether the process is still the one started (it never exited).
    pub fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Informer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
