//! Object storage URLs (`s3://`, `gs://`, `az://`/`abfs://`, `https://`) and
//! the stores that serve them, built from each cloud's standard credential
//! chain (`object_store`'s `from_env` builders) plus our few options.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreScheme, RetryConfig};
use url::Url;

use crate::error::{RemoteError, Result};

/// Whether a command-line input names object storage rather than a local path.
pub fn is_remote(input: &str) -> bool {
    ["s3://", "s3a://", "gs://", "az://", "adl://", "azure://", "abfs://", "abfss://", "https://", "http://"]
        .iter()
        .any(|s| input.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)))
}

/// How stores are reached: endpoint, plain HTTP, retries, timeouts.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// An S3-compatible (or Azurite) endpoint, e.g. `http://127.0.0.1:7070`;
    /// S3 requests then put the bucket in the path (path-style), as such
    /// stores expect. Else the cloud's own endpoint (or `AWS_ENDPOINT` …).
    pub endpoint: Option<String>,
    /// Allow `http://` endpoints (loopback tests, in-cluster gateways).
    pub allow_http: bool,
    /// Retries of a failed request (connect errors, 5xx, 429, resets
    /// mid-body, which resume from the byte reached), with exponential backoff.
    pub max_retries: usize,
    /// First backoff; doubles up to [`StoreOptions::max_backoff`].
    pub init_backoff: Duration,
    /// Longest backoff between two tries.
    pub max_backoff: Duration,
    /// No retry starts after this long since the first try of a request.
    pub retry_timeout: Duration,
    /// Timeout of one request, body included (None: object_store's default).
    pub request_timeout: Option<Duration>,
    /// Timeout to connect.
    pub connect_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            endpoint: None,
            allow_http: false,
            max_retries: 10,
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            retry_timeout: Duration::from_secs(180),
            request_timeout: None,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl StoreOptions {
    fn retry(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig { init_backoff: self.init_backoff, max_backoff: self.max_backoff, base: 2.0 },
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
        }
    }

    fn client(&self) -> ClientOptions {
        let mut c = ClientOptions::new().with_allow_http(self.allow_http).with_connect_timeout(self.connect_timeout);
        if let Some(t) = self.request_timeout {
            c = c.with_timeout(t);
        }
        c
    }
}

/// An object or prefix URL split into the store it lives in and the path in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    /// The URL as given (what reports name).
    pub url: String,
    /// The store's root URL (`s3://bucket`, `https://host`): one store per root.
    pub root: String,
    /// The key or prefix inside the store, percent-decoded.
    pub path: ObjectPath,
    /// Whether the URL ends with `/` (a prefix, not one object).
    pub is_prefix: bool,
    scheme: Scheme,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    S3,
    Gcs,
    Azure,
    Http,
}

impl RemoteUrl {
    /// Parses `s3://bucket/key`, `gs://…`, `az://container/…`,
    /// `abfs://container@account.dfs.core.windows.net/…`, `https://…`.
    pub fn parse(input: &str) -> Result<Self> {
        let url = Url::parse(input).map_err(|e| RemoteError::Usage(format!("{input}: not a URL: {e}")))?;
        let (scheme, path) = ObjectStoreScheme::parse(&url)
            .map_err(|e| RemoteError::Usage(format!("{input}: not an object storage URL: {e}")))?;
        let scheme = match scheme {
            ObjectStoreScheme::AmazonS3 => Scheme::S3,
            ObjectStoreScheme::GoogleCloudStorage => Scheme::Gcs,
            ObjectStoreScheme::MicrosoftAzure => Scheme::Azure,
            ObjectStoreScheme::Http => Scheme::Http,
            other => {
                return Err(RemoteError::Usage(format!(
                    "{input}: {other:?} URLs are not object storage; give local files as paths"
                )))
            }
        };
        // The URL path segments before the key's (an Azure container on its host).
        let segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
        let lead_len = segments.len().saturating_sub(path.parts().count());
        let lead: String = segments.iter().take(lead_len).map(|s| format!("/{s}")).collect();
        let base = &url[..url::Position::BeforePath];
        let root = format!("{base}{lead}");
        let is_prefix = input.ends_with('/') || path.as_ref().is_empty();
        Ok(Self { url: input.to_string(), root, path, is_prefix, scheme })
    }

    /// The URL of `key`, an object of this URL's store.
    pub fn object_url(&self, key: &ObjectPath) -> String {
        format!("{}/{}", self.root, key)
    }
}

/// The stores of a run, one per root URL, built once and shared by every task.
#[derive(Debug)]
pub struct Stores {
    opts: StoreOptions,
    built: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Stores {
    /// No store built yet.
    pub fn new(opts: StoreOptions) -> Self {
        Self { opts, built: Mutex::new(HashMap::new()) }
    }

    /// The store serving `url`, built on first use.
    pub fn get(&self, url: &RemoteUrl) -> Result<Arc<dyn ObjectStore>> {
        let mut built = self.built.lock().map_err(|_| RemoteError::Usage("store cache poisoned".into()))?;
        if let Some(s) = built.get(&url.root) {
            return Ok(Arc::clone(s));
        }
        let store = build(url, &self.opts)?;
        built.insert(url.root.clone(), Arc::clone(&store));
        Ok(store)
    }
}

/// The plain-HTTP address a store would be reached at (the URL, the
/// `--endpoint`, or GCS's `GOOGLE_BASE_URL`), if any.
fn plain_http(url: &RemoteUrl, o: &StoreOptions) -> Option<String> {
    let is_http = |s: &str| s.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("http://"));
    let gcs_base = (url.scheme == Scheme::Gcs).then(|| std::env::var("GOOGLE_BASE_URL").ok()).flatten();
    [Some(url.url.clone()), o.endpoint.clone(), gcs_base].into_iter().flatten().find(|s| is_http(s))
}

fn build(url: &RemoteUrl, o: &StoreOptions) -> Result<Arc<dyn ObjectStore>> {
    let bad = |e: object_store::Error| RemoteError::Usage(format!("{}: {e}", url.url));
    if let (false, Some(addr)) = (o.allow_http, plain_http(url, o)) {
        return Err(RemoteError::Usage(format!(
            "{}: {addr} is plain http://, unencrypted; pass --allow-http to read through it anyway",
            url.url
        )));
    }
    let store: Arc<dyn ObjectStore> = match url.scheme {
        Scheme::S3 => {
            let mut b = AmazonS3Builder::from_env()
                .with_url(url.root.as_str())
                .with_retry(o.retry())
                .with_client_options(o.client())
                .with_allow_http(o.allow_http);
            if let Some(ep) = &o.endpoint {
                b = b.with_endpoint(ep.as_str()).with_virtual_hosted_style_request(false);
            }
            Arc::new(b.build().map_err(bad)?)
        }
        Scheme::Gcs => {
            if o.endpoint.is_some() {
                return Err(RemoteError::Usage(format!(
                    "{}: --endpoint applies to S3 and Azure URLs (GCS: set GOOGLE_BASE_URL)",
                    url.url
                )));
            }
            let b = GoogleCloudStorageBuilder::from_env()
                .with_url(url.root.as_str())
                .with_retry(o.retry())
                .with_client_options(o.client());
            Arc::new(b.build().map_err(bad)?)
        }
        Scheme::Azure => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_url(url.root.as_str())
                .with_retry(o.retry())
                .with_client_options(o.client())
                .with_allow_http(o.allow_http);
            if let Some(ep) = &o.endpoint {
                b = b.with_endpoint(ep.clone());
            }
            Arc::new(b.build().map_err(bad)?)
        }
        Scheme::Http => {
            let b =
                HttpBuilder::new().with_url(url.root.as_str()).with_retry(o.retry()).with_client_options(o.client());
            Arc::new(b.build().map_err(bad)?)
        }
    };
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_store_and_key() {
        let u = RemoteUrl::parse("s3://bucket/a/b/snap.db").unwrap();
        assert_eq!((u.root.as_str(), u.path.as_ref(), u.is_prefix), ("s3://bucket", "a/b/snap.db", false));
        let u = RemoteUrl::parse("s3://bucket/a/").unwrap();
        assert_eq!((u.root.as_str(), u.path.as_ref(), u.is_prefix), ("s3://bucket", "a", true));
        assert_eq!(u.object_url(&ObjectPath::from("a/x")), "s3://bucket/a/x");
        let u = RemoteUrl::parse("gs://b/k%20x").unwrap();
        assert_eq!((u.root.as_str(), u.path.as_ref()), ("gs://b", "k x"));
        let u = RemoteUrl::parse("https://acct.blob.core.windows.net/container/dir/f").unwrap();
        assert_eq!((u.root.as_str(), u.path.as_ref()), ("https://acct.blob.core.windows.net/container", "dir/f"));
        let u = RemoteUrl::parse("https://example.com/backups/f.db").unwrap();
        assert_eq!((u.root.as_str(), u.path.as_ref()), ("https://example.com", "backups/f.db"));
        assert!(RemoteUrl::parse("file:///tmp/x").is_err());
        assert!(is_remote("S3://b/k") && !is_remote("/tmp/s3://x"));
    }
}
