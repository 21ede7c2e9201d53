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
//! - [`objects`]: reports written to object storage once a run is done,
//!   and read back by URL, prefix or pattern for the merge.
#![forbid(unsafe_code)]

pub mod check;
mod error;
pub mod fleet;
pub mod jsonl;
pub mod junit;
pub mod location;
pub mod objects;
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

/// Parses `--now`: RFC 3339 (`2026-12-05T08:00:00Z`), Unix seconds, or
/// `job:NAME`, the time a Kubernetes CronJob scheduled the Job `NAME` (its
/// controller names each Job `<cronjob>-<scheduled time in Unix minutes>`),
/// which every pod of the Job can read from its `batch.kubernetes.io/job-name`
/// label, so all shards of one run judge ages by one clock.
pub fn parse_now(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Some(job) = s.trim().strip_prefix("job:") {
        let minutes = job
            .rsplit_once('-')
            .and_then(|(_, m)| m.parse::<i64>().ok())
            .ok_or_else(|| {
                RemoteError::Usage(format!(
                    "--now {s:?}: a CronJob's Job is named <cronjob>-<Unix minutes>; {job:?} is not (a Job created by hand needs --now TIME)"
                ))
            })?;
        return minutes
            .checked_mul(60)
            .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
            .ok_or_else(|| RemoteError::Usage(format!("--now {s}: out of range")));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_takes_rfc3339_unix_seconds_and_a_cronjobs_job_name() {
        let t = |s: &str| parse_now(s).map(|d| d.timestamp());
        assert_eq!(t("2026-12-05T08:00:00Z").ok(), Some(1_796_457_600));
        assert_eq!(t("1796457600").ok(), Some(1_796_457_600));
        // The CronJob controller's name for the Job it scheduled at 2026-12-05T08:00:00Z.
        assert_eq!(t("job:etcdsnap-fleet-verify-29940960").ok(), Some(1_796_457_600));
        for bad in ["job:manual-run", "job:", "job:x-", "yesterday"] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_take_units_and_refuse_others() {
        assert_eq!(parse_duration("24h").ok(), Some(std::time::Duration::from_secs(86_400)));
        assert_eq!(parse_duration("90m").ok(), Some(std::time::Duration::from_secs(5_400)));
        assert_eq!(parse_duration("3600").ok(), Some(std::time::Duration::from_secs(3_600)));
        assert!(parse_duration("1y").is_err() && parse_duration("h").is_err());
    }
}
