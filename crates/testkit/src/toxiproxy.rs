//! A real TCP fault proxy for the object storage tests: toxiproxy 2.12.0
//! (built by tools/install-oracles.sh into `<oracles>/toxiproxy-2.12.0/`)
//! on 127.0.0.1, driven through its HTTP API: one proxy in front of an
//! upstream, toxics (latency, bandwidth, connections cut after N bytes,
//! stalls) added and removed between runs. Stopped on drop.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

/// The toxiproxy server binary; asserts it exists.
pub fn toxiproxy_bin() -> PathBuf {
    require_exe(&oracles_dir().join("toxiproxy-2.12.0/toxiproxy-server"))
}

/// A running toxiproxy with one proxy `listen` -> `upstream`.
#[derive(Debug)]
pub struct Toxiproxy {
    child: Option<Child>,
    api_port: u16,
    listen_port: u16,
    log_path: PathBuf,
}

impl Toxiproxy {
    /// Starts toxiproxy (API and proxy on free 127.0.0.1 ports) in front of
    /// `upstream` (`127.0.0.1:PORT`), waiting (10 s at most) for its API.
    pub fn start(name: &str, upstream: &str) -> Toxiproxy {
        let dir = scratch(name);
        let log_path = dir.join("toxiproxy.log");
        let log = File::create(&log_path).unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let log2 = log.try_clone().unwrap_or_else(|e| panic!("cloning log handle: {e}"));
        let (api_port, listen_port) = (free_port(), free_port());
        let child = Command::new(toxiproxy_bin())
            .args(["-host", "127.0.0.1", "-port", &api_port.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning toxiproxy: {e}"));
        let mut t = Toxiproxy { child: Some(child), api_port, listen_port, log_path };
        wait_for_port(&mut t.child, api_port, "toxiproxy", &t.log_path, Duration::from_secs(10));
        let created = t.api(
            "POST",
            "/proxies",
            &json!({"name": "s3", "listen": format!("127.0.0.1:{listen_port}"), "upstream": upstream}),
        );
        assert_eq!(created.0, 201, "creating the proxy: {}", created.1);
        t
    }

    /// `http://127.0.0.1:<proxy port>`: the endpoint clients use.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.listen_port)
    }

    /// Adds a toxic (`{"type": "latency", "attributes": {...}, ...}`) named `name`.
    pub fn add_toxic(&self, name: &str, toxic: Value) {
        let mut body = toxic;
        body["name"] = json!(name);
        let (status, answer) = self.api("POST", "/proxies/s3/toxics", &body);
        assert_eq!(status, 200, "adding toxic {name}: {answer}");
    }

    /// Removes the toxic `name` (toxiproxy answers 503 while connections it
    /// delays still drain: asked again for up to 30 s).
    pub fn remove_toxic(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, answer) = self.api("DELETE", &format!("/proxies/s3/toxics/{name}"), &Value::Null);
            if status == 204 {
                return;
            }
            assert!(status == 503 && Instant::now() < deadline, "removing toxic {name}: {answer}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// One API request (HTTP/1.1, `Connection: close`); the status and the body.
    fn api(&self, method: &str, path: &str, body: &Value) -> (u16, String) {
        let body = if body.is_null() { String::new() } else { body.to_string() };
        let mut s = TcpStream::connect(("127.0.0.1", self.api_port)).unwrap_or_else(|e| panic!("toxiproxy API: {e}"));
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap_or_else(|e| panic!("toxiproxy API: {e}"));
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap_or_else(|e| panic!("toxiproxy API: {e}"));
        let status = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, answer)
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&std::fs::read_to_string(&self.log_path).unwrap_or_default(), n)
    }

    /// Stops it now; idempotent.
    pub fn stop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}

impl Drop for Toxiproxy {
    fn drop(&mut self) {
        self.stop();
    }
}
