//! Real emulators of the other clouds' object stores, for the `gs://`,
//! `az://` and `https://` inputs: fake-gcs-server 1.56.1 (Google Cloud
//! Storage: the JSON/XML APIs object_store's GCS client speaks, and plain
//! object downloads at `/<bucket>/<key>` with ranges, ETag and
//! Last-Modified, as any web server) and Azurite 3.35.0 (Azure Blob), both
//! built or installed by tools/install-oracles.sh, on 127.0.0.1, in scratch
//! directories. Stopped on drop.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

use super::*;

/// Azurite's well-known development account (public: every Azure emulator uses it).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Its well-known key.
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The fake-gcs-server binary; asserts it exists.
pub fn fake_gcs_bin() -> PathBuf {
    require_exe(&oracles_dir().join("fake-gcs-server-1.56.1/fake-gcs-server"))
}

/// Azurite's blob service entry point; asserts it exists.
pub fn azurite_bin() -> PathBuf {
    require_exe(&oracles_dir().join("azurite-3.35.0/node_modules/.bin/azurite-blob"))
}

/// A running fake-gcs-server serving the objects it was started with.
#[derive(Debug)]
pub struct GcsServer {
    child: Option<Child>,
    port: u16,
    bucket: String,
}

impl GcsServer {
    /// Starts fake-gcs-server (memory backend) on `target/test-scratch/<name>/`
    /// with bucket `bucket` holding `objects` (key, bytes), written as its
    /// `-data` directory, and waits until it answers.
    pub fn start(name: &str, bucket: &str, objects: &[(&str, &[u8])]) -> GcsServer {
        let dir = scratch(name);
        let data = dir.join("data");
        for (key, bytes) in objects {
            let p = data.join(bucket).join(key);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, bytes).unwrap();
        }
        fs::create_dir_all(data.join(bucket)).unwrap();
        let log_path = dir.join("fake-gcs-server.log");
        let log = File::create(&log_path).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(fake_gcs_bin())
            .args(["-backend", "memory", "-scheme", "http", "-host", "127.0.0.1", "-log-level", "warn"])
            .args(["-port", &port.to_string(), "-public-host", &addr, "-external-url", &format!("http://{addr}")])
            .arg("-data")
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning fake-gcs-server: {e}"));
        let mut s = GcsServer { child: Some(child), port, bucket: bucket.to_string() };
        wait_for_port(&mut s.child, port, "fake-gcs-server", &log_path, Duration::from_secs(60));
        s
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `gs://<bucket>/<key>`.
    pub fn url(&self, key: &str) -> String {
        format!("gs://{}/{key}", self.bucket)
    }

    /// The object's plain download address, `http://127.0.0.1:<port>/<bucket>/<key>`.
    pub fn http_url(&self, key: &str) -> String {
        format!("{}/{}/{key}", self.endpoint(), self.bucket)
    }

    /// The environment object_store's GCS client needs for this server
    /// (`GOOGLE_BASE_URL`; requests unsigned: the emulator checks no credentials).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("GOOGLE_BASE_URL", self.endpoint()), ("GOOGLE_SKIP_SIGNATURE", "true".to_string())]
    }
}

impl Drop for GcsServer {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(10));
    }
}

/// A running Azurite blob service with one container.
#[derive(Debug)]
pub struct AzuriteServer {
    child: Option<Child>,
    port: u16,
    container: String,
    store: Arc<MicrosoftAzure>,
    rt: tokio::runtime::Runtime,
}

impl AzuriteServer {
    /// Starts Azurite's blob service on `target/test-scratch/<name>/`, creates
    /// `container` and waits until it answers.
    pub fn start(name: &str, container: &str) -> AzuriteServer {
        let dir = scratch(name);
        let log_path = dir.join("azurite.log");
        let log = File::create(&log_path).unwrap();
        let port = free_port();
        let child = Command::new(azurite_bin())
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--silent", "--skipApiVersionCheck"])
            .arg("--location")
            .arg(dir.join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning azurite: {e}"));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let store = Arc::new(
            MicrosoftAzureBuilder::new()
                .with_account(AZURITE_ACCOUNT)
                .with_access_key(AZURITE_KEY)
                .with_container_name(container)
                .with_endpoint(format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"))
                .with_allow_http(true)
                .build()
                .unwrap(),
        );
        let mut s = AzuriteServer { child: Some(child), port, container: container.to_string(), store, rt };
        wait_for_port(&mut s.child, port, "azurite", &log_path, Duration::from_secs(60));
        s.create_container();
        s
    }

    /// Creates the container with Azure's Create Container call (object_store has none).
    fn create_container(&self) {
        let out = Command::new("node")
            .arg("-e")
            .arg(CREATE_CONTAINER_JS)
            .env("AZ_PORT", self.port.to_string())
            .env("AZ_ACCOUNT", AZURITE_ACCOUNT)
            .env("AZ_KEY", AZURITE_KEY)
            .env("AZ_CONTAINER", &self.container)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "creating container {}: {}",
            self.container,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `http://127.0.0.1:<port>/devstoreaccount1`, the account's blob endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port)
    }

    /// `az://<container>/<key>`.
    pub fn url(&self, key: &str) -> String {
        format!("az://{}/{key}", self.container)
    }

    /// The environment a client of the standard chain needs (account and key).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT.to_string()),
            ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY.to_string()),
        ]
    }

    /// Uploads `data` as `key` (a real Put Blob).
    pub fn put(&self, key: &str, data: Vec<u8>) {
        let store = Arc::clone(&self.store);
        let k = ObjectPath::from(key);
        self.rt.block_on(async move { store.put(&k, PutPayload::from(data)).await }).unwrap();
    }
}

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(10));
    }
}

/// Create Container with a Shared Key signature, in Node's standard library
/// only (the REST call Azure documents; object_store has no container calls).
const CREATE_CONTAINER_JS: &str = r#"
const crypto = require('crypto'); const http = require('http');
const {AZ_PORT: port, AZ_ACCOUNT: account, AZ_KEY: key, AZ_CONTAINER: container} = process.env;
const date = new Date().toUTCString(); const version = '2021-08-06';
const headers = {'x-ms-date': date, 'x-ms-version': version, 'Content-Length': '0'};
const canonHeaders = `x-ms-date:${date}\nx-ms-version:${version}\n`;
const canonResource = `/${account}/${account}/${container}\nrestype:container`;
const toSign = ['PUT', '', '', '', '', '', '', '', '', '', '', '', canonHeaders + canonResource].join('\n');
const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(toSign, 'utf8').digest('base64');
headers['Authorization'] = `SharedKey ${account}:${sig}`;
const req = http.request({host: '127.0.0.1', port, method: 'PUT', path: `/${account}/${container}?restype=container`, headers}, res => {
  let body = ''; res.on('data', d => body += d);
  res.on('end', () => { if (res.statusCode !== 201 && res.statusCode !== 409) { console.error(res.statusCode, body); process.exit(1); } });
});
req.on('error', e => { console.error(e.message); process.exit(1); }); req.end();
"#;
