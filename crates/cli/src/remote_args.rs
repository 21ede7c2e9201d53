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
/// place of the URL, with the copy's path replaced by the URL: what the
/// user named. Without a copy, `err` as it is.
pub fn named_by_url(err: anyhow::Error, copy: Option<&LocalCopy>, input: &Path) -> anyhow::Error {
    let Some(copy) = copy else { return err };
    let spool = copy.path().display().to_string();
    let msg = format!("{err:#}");
    if msg.contains(&spool) {
        anyhow::anyhow!(msg.replace(&spool, &input.display().to_string()))
    } else {
        err
    }
}
