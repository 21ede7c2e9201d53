//! A real S3 server for the object storage tests: versitygw 1.8.0 (built by
//! tools/install-oracles.sh into `<oracles>/versitygw-1.8.0/`) with its
//! posix backend in a scratch directory, on 127.0.0.1, with known root keys
//! and one bucket. Stopped on drop.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::*;

/// The root access key the server is started with.
pub const ACCESS_KEY: &str = "etcdsnap-test-access";
/// The root secret key.
pub const SECRET_KEY: &str = "etcdsnap-test-secret-key-0123456789";
/// The region the server answers for.
pub const REGION: &str = "us-east-1";

/// The versitygw binary; asserts it exists.
pub fn versitygw_bin() -> PathBuf {
    require_exe(&oracles_dir().join("versitygw-1.8.0/versitygw"))
}

/// A running versitygw with one bucket.
#[derive(Debug)]
pub struct S3Server {
    child: Option<Child>,
    port: u16,
    root: PathBuf,
    bucket: String,
    log_path: PathBuf,
    store: Arc<AmazonS3>,
    rt: Arc<tokio::runtime::Runtime>,
}

impl S3Server {
    /// Starts versitygw on `target/test-scratch/<name>/` with bucket `bucket`
    /// and waits (30 s at most) until it answers.
    pub fn start(name: &str, bucket: &str) -> S3Server {
        let dir = scratch(name);
        let root = dir.join("posix");
        // The posix backend serves each directory of its root as a bucket.
        fs::create_dir_all(root.join(bucket)).unwrap();
        let log_path = dir.join("versitygw.log");
        let log = File::create(&log_path).unwrap();
        let port = free_port();
        let child = Command::new(versitygw_bin())
            .env("ROOT_ACCESS_KEY", ACCESS_KEY)
            .env("ROOT_SECRET_KEY", SECRET_KEY)
            .args(["--port", &format!("127.0.0.1:{port}"), "--region", REGION, "--quiet", "posix"])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning versitygw: {e}"));
        let rt = Arc::new(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap());
        let store = Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(format!("http://127.0.0.1:{port}"))
                .with_allow_http(true)
                .with_bucket_name(bucket)
                .with_region(REGION)
                .with_access_key_id(ACCESS_KEY)
                .with_secret_access_key(SECRET_KEY)
                .build()
                .unwrap(),
        );
        let mut s = S3Server { child: Some(child), port, root, bucket: bucket.to_string(), log_path, store, rt };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        wait_for_port(&mut self.child, self.port, "versitygw", &self.log_path, Duration::from_secs(30));
        // Listening is not yet serving: the first listing may fail for a moment.
        loop {
            let store = Arc::clone(&self.store);
            match self.rt.block_on(async move { store.list_with_delimiter(None).await }) {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => panic!("versitygw does not list: {e}\n{}", self.log_tail(40)),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `s3://<bucket>/<key>`.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The environment a client needs (AWS_* variables of the standard chain).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
        ]
    }

    /// The file the posix backend keeps `key` in (for tests that change an object behind the server).
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.root.join(&self.bucket).join(key)
    }

    /// Uploads `data` as `key` (a real S3 PUT).
    pub fn put(&self, key: &str, data: Vec<u8>) {
        self.put_many(vec![(key.to_string(), data)]);
    }

    /// Uploads every `(key, data)`, 16 at a time.
    pub fn put_many(&self, items: Vec<(String, Vec<u8>)>) {
        use futures::StreamExt;
        let store = Arc::clone(&self.store);
        self.rt.block_on(async move {
            let results: Vec<_> = futures::stream::iter(items)
                .map(|(k, d)| {
                    let store = Arc::clone(&store);
                    async move {
                        store
                            .put(&ObjectPath::from(k.as_str()), PutPayload::from(d))
                            .await
                            .map(|_| ())
                            .map_err(|e| format!("{k}: {e}"))
                    }
                })
                .buffer_unordered(16)
                .collect()
                .await;
            for r in results {
                r.unwrap_or_else(|e| panic!("PUT {e}"));
            }
        });
    }

    /// Deletes `key`.
    pub fn delete(&self, key: &str) {
        let store = Arc::clone(&self.store);
        let k = ObjectPath::from(key);
        self.rt.block_on(async move { store.delete(&k).await }).unwrap();
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&fs::read_to_string(&self.log_path).unwrap_or_default(), n)
    }

    /// The scratch root the posix backend serves.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stops the server now; idempotent.
    pub fn stop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}
