//! The object storage flags shared by the commands that read `s3://…`,
//! `gs://…`, `az://…` or `https://…` inputs, checked into the library's
//! options; and the one place a remote input becomes a local spool copy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use etcdsnap_remote::{is_remote, LocalCopy, StoreOptions};

/// `--endpoint`, `--allow-http`, `--retries`, `--timeout`, `--spool-dir`.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// S3-compatible endpoint for s3:// URLs (path-style requests), e.g.
    /// http://127.0.0.1:7070; Azure: the blob endpoint. Credentials come from
    /// each cloud's standard chain (AWS_*, GOOGLE_*, AZURE_* variables,
    /// profiles, instance metadata).
    #[arg(long, value_name = "URL", help_heading = "Object storage")]
    endpoint: Option<String>,
    /// Allow plain http:// endpoints (loopback, in-cluster gateways).
    #[arg(long, help_heading = "Object storage")]
    allow_http: bool,
    /// Retries of a failed request (exponential backoff from 100 ms to 15 s).
    #[arg(long, default_value_t = 10, value_name = "N", help_heading = "Object storage")]
    retries: usize,
    /// Timeout of one request, body included, e.g. 10m [default: object_store's 30s per read].
    #[arg(long, value_name = "DURATION", help_heading = "Object storage")]
    timeout: Option<String>,
    /// Directory for the local spool copies (one per object being checked) [default: $TMPDIR].
    #[arg(long, value_name = "DIR", help_heading = "Object storage")]
    spool_dir: Option<PathBuf>,
}

impl RemoteArgs {
    /// The library's store options.
    pub fn store_options(&self) -> Result<StoreOptions> {
        let request_timeout = self.timeout.as_deref().map(etcdsnap_remote::parse_duration).transpose()?;
        Ok(StoreOptions {
            endpoint: self.endpoint.clone(),
            allow_http: self.allow_http,
            max_retries: self.retries,
            request_timeout: request_timeout.filter(|d| *d > Duration::ZERO),
            ..StoreOptions::default()
        })
    }

    /// `--spool-dir`.
    pub fn spool_dir(&self) -> Option<&Path> {
        self.spool_dir.as_deref()
    }
}

/// Whether an input argument is a URL of object storage.
pub fn is_url(p: &Path) -> bool {
    p.to_str().is_some_and(is_remote)
}

/// A local copy of `input` when it is a URL (downloaded once, removed on
/// drop), else None: the command reads `input` itself.
pub fn localize(input: &Path, remote: &RemoteArgs) -> Result<Option<LocalCopy>> {
    let Some(url) = input.to_str().filter(|s| is_remote(s)) else { return Ok(None) };
    Ok(Some(etcdsnap_remote::fetch(url, &remote.store_options()?, remote.spool_dir())?))
}

/// `err`, from a command that read `copy` (the spool copy of `input`) in
/// place of the URL, told with the copy's path replaced by the URL: what the
/// user named. Without a copy, or when the copy is not named, `err` as it is.
pub fn named_by_url(err: anyhow::Error, copy: Option<&LocalCopy>, input: &Path) -> anyhow::Error {
    match copy {
        Some(copy) => renamed(err, copy.path(), input),
        None => err,
    }
}

/// `err` told with `spool` replaced by `shown`, its chain kept as the
/// wrapper's source of kind ([`NamedByUrl::inner`]).
fn renamed(err: anyhow::Error, spool: &Path, shown: &Path) -> anyhow::Error {
    let spool = spool.display().to_string();
    let text = format!("{err:#}");
    if !text.contains(&spool) {
        return err;
    }
    anyhow::Error::new(NamedByUrl { text: text.replace(&spool, &shown.display().to_string()), inner: err })
}

/// An error of a command that read a spool copy, told with the URL in
/// place of the copy's path. The text is the whole chain (so it has no
/// source of its own); the original error stays inside, for its kind.
#[derive(Debug)]
pub struct NamedByUrl {
    text: String,
    inner: anyhow::Error,
}

impl NamedByUrl {
    /// The error as the library reported it (naming the spool copy).
    pub fn inner(&self) -> &anyhow::Error {
        &self.inner
    }
}

impl std::fmt::Display for NamedByUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for NamedByUrl {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renamed_names_the_url_and_keeps_the_chain() {
        let spool = Path::new("/tmp/spool-1/etcdsnap-obj-0001");
        let url = Path::new("s3://backups/c1/snap.db");
        let inner = anyhow::Error::new(etcdsnap_io::Error::InputChanged { path: spool.into(), what: "size".into() })
            .context(format!("rewriting {} into out.db", url.display()));
        let e = renamed(inner, spool, url);
        let text = format!("{e:#}");
        assert!(text.contains("s3://backups/c1/snap.db: the file changed"), "{text}");
        assert!(!text.contains("/tmp/spool-1"), "{text}");
        // The exit code's kind (exit 1 for a changed input) survives the renaming.
        assert_eq!(crate::kind(&e), Some(etcdsnap_io::ErrorKind::InputChanged));
    }

    #[test]
    fn renamed_leaves_an_error_without_the_spool_path() {
        let e = renamed(anyhow::anyhow!("bad flag"), Path::new("/tmp/spool-1/x"), Path::new("s3://b/k"));
        assert!(e.downcast_ref::<NamedByUrl>().is_none());
        assert_eq!(format!("{e:#}"), "bad flag");
    }
}
