//! etcd backups where they live: object storage as input, and fleet
//! verification with reports CI and monitoring read.
//!
//! - [`location`]: `s3://`, `gs://`, `az://`/`abfs://`, `https://` URLs and
//!   the `object_store` stores serving them (each cloud's credential chain,
//!   `--endpoint`, retries with backoff).
//! - [`spool`]: one object streamed once into a bounded local spool file,
//!   its SHA-256 trailer hashed on the way; a change of the object during the
//!   read (ETag, size) is reported as such, never as damage.
//! - [`fleet`]: many objects checked with bounded concurrency, mapped to
//!   clusters, judged against a freshness objective, optionally one shard of
//!   a Kubernetes Indexed Job ([`shard`]).
//! - [`record`], [`jsonl`], [`junit`], [`prometheus`]: the report and its
//!   formats; [`jsonl::merge`] combines shards' reports.
#![forbid(unsafe_code)]

pub mod check;
mod error;
pub mod fleet;
pub mod jsonl;
pub mod junit;
pub mod location;
pub mod prometheus;
pub mod record;
pub mod shard;
pub mod spool;

use std::path::{Path, PathBuf};

pub use error::{RemoteError, Result};
pub use fleet::{verify_fleet, FleetOptions};
pub use location::{is_remote, RemoteUrl, StoreOptions};
pub use record::{BackupRecord, BackupState, ClusterRecord, FleetReport, Summary};
pub use shard::Shard;

/// A local copy of one remote object, removed on drop: what the
/// single-file commands (`status`, `hashkv`, …) read instead of the URL.
#[derive(Debug)]
pub struct LocalCopy {
    spooled: spool::Spooled,
    // Dropped after the file (fields drop in order).
    _dir: spool::SpoolDir,
}

impl LocalCopy {
    /// The local file.
    pub fn path(&self) -> &Path {
        &self.spooled.path
    }

    /// The object as listed and read.
    pub fn object(&self) -> &spool::ObjectInfo {
        &self.spooled.object
    }
}

/// Downloads the object `url` once into a spool file under `spool_base`
/// (default: the system temp dir).
pub fn fetch(url: &str, opts: &StoreOptions, spool_base: Option<&Path>) -> Result<LocalCopy> {
    let u = RemoteUrl::parse(url)?;
    if u.is_prefix {
        return Err(RemoteError::Usage(format!("{url}: names a prefix; this command reads one object")));
    }
    let stores = location::Stores::new(opts.clone());
    let store = stores.get(&u)?;
    let dir = spool::SpoolDir::new(spool_base)?;
    let rt = fleet::runtime(2)?;
    let spooled = rt.block_on(async {
        use object_store::ObjectStoreExt;
        let meta = store
            .head(&u.path)
            .await
            .map_err(|e| RemoteError::Unreadable { url: url.to_string(), message: format!("HEAD: {e}") })?;
        let mut o = spool::ObjectInfo::from_meta(&u.root, &meta);
        o.url = url.to_string();
        spool::spool(store.as_ref(), &o, &dir).await
    })?;
    Ok(LocalCopy { spooled, _dir: dir })
}

/// Parses a duration such as `24h`, `90m`, `7d`, `3600s` or `3600`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| RemoteError::Usage(format!("{s:?} is not a duration like 24h, 90m, 7d")))?;
    let mult: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(RemoteError::Usage(format!("{s:?}: the unit must be s, m, h, d or w"))),
    };
    n.checked_mul(mult)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| RemoteError::Usage(format!("{s:?} is too long")))
}

/// Parses `--now`: RFC 3339 (`2026-12-05T08:00:00Z`) or Unix seconds.
pub fn parse_now(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(secs) = s.trim().parse::<i64>() {
        return chrono::DateTime::from_timestamp(secs, 0)
            .ok_or_else(|| RemoteError::Usage(format!("--now {s}: out of range")));
    }
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| RemoteError::Usage(format!("--now {s:?}: not RFC 3339 or Unix seconds: {e}")))
}

/// Where spools go when `--spool-dir` is not given.
pub fn default_spool_base() -> PathBuf {
    std::env::temp_dir()
}
