//! `verify` of many backups in object storage: list, map keys to clusters,
//! keep this shard's part, check each object through a spool with at most
//! `jobs` at once (so memory and local disk are bounded by `jobs` objects,
//! whatever the fleet's size), then judge each cluster's freshness.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use regex::Regex;

use crate::check::{check_spooled, failed, Judge};
use crate::error::{RemoteError, Result};
use crate::location::{RemoteUrl, StoreOptions, Stores};
use crate::record::{judge_clusters, summarize, BackupRecord, FleetReport, Objective};
use crate::shard::Shard;
use crate::spool::{spool, ObjectInfo, SpoolDir};

/// What a fleet run reads and how it judges it.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Object or prefix URLs (`s3://bucket/prefix/`); `--from-list` lines included.
    pub inputs: Vec<String>,
    /// List every object under a prefix, not only its direct children.
    pub recursive: bool,
    /// Objects checked at once (each holds one spool file).
    pub jobs: usize,
    /// Maps an object's URL to its cluster: the `cluster` named group, else the first group.
    pub group_by: Option<Regex>,
    /// A cluster needs a valid backup younger than this.
    pub max_age: Option<Duration>,
    /// Fresh valid backups each cluster needs (at least 1).
    pub require: u64,
    /// Clusters that must have backups (`--expect-groups`).
    pub expect_groups: Vec<String>,
    /// This process's part of the listing.
    pub shard: Option<Shard>,
    /// The report's clock (default: now).
    pub now: Option<DateTime<Utc>>,
    /// A backup without a SHA-256 trailer is a problem.
    pub require_trailer: bool,
    /// Where spool files go (default: the system temp dir).
    pub spool_dir: Option<PathBuf>,
    /// How stores are reached.
    pub store: StoreOptions,
    /// Opens values for the decryptability census of each valid backup (`--encryption-config`).
    pub census: Option<Arc<etcdsnap_k8s::census::Opener>>,
}

/// A listed object, its store and its cluster.
struct Planned {
    object: ObjectInfo,
    store: Arc<dyn ObjectStore>,
    cluster: Option<String>,
    head_error: Option<String>,
}

/// The cluster `re` maps `url` to, or None when it does not match.
pub fn cluster_of(re: &Regex, url: &str) -> Option<String> {
    let caps = re.captures(url)?;
    let m = caps.name("cluster").or_else(|| caps.get(1)).or_else(|| caps.get(0))?;
    Some(m.as_str().to_string())
}

/// Reads a list file: one entry a line, blank lines and `#` comments skipped.
pub fn read_list(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| RemoteError::local(path, e))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect())
}

/// A multi-threaded runtime of `threads` workers for the downloads.
pub(crate) fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| RemoteError::Usage(format!("starting the I/O runtime: {e}")))
}

/// Lists the inputs: objects with their store, and for a named object
/// that HEAD could not find, the error (it becomes that object's record).
type Listed = Vec<(ObjectInfo, Arc<dyn ObjectStore>, Option<String>)>;

async fn list(stores: &Stores, o: &FleetOptions) -> Result<Listed> {
    let mut found: Listed = Vec::new();
    for input in &o.inputs {
        let url = RemoteUrl::parse(input)?;
        let store = stores.get(&url)?;
        let listing_failed =
            |e: object_store::Error| RemoteError::Unreadable { url: url.url.clone(), message: format!("listing: {e}") };
        let prefix = (!url.path.as_ref().is_empty()).then_some(&url.path);
        if o.recursive {
            let mut s = store.list(prefix);
            while let Some(m) = s.next().await {
                found.push((ObjectInfo::from_meta(&url.root, &m.map_err(listing_failed)?), Arc::clone(&store), None));
            }
        } else if url.is_prefix {
            let l = store.list_with_delimiter(prefix).await.map_err(listing_failed)?;
            found.extend(l.objects.iter().map(|m| (ObjectInfo::from_meta(&url.root, m), Arc::clone(&store), None)));
        } else {
            match store.head(&url.path).await {
                Ok(m) => found.push((ObjectInfo::from_meta(&url.root, &m), Arc::clone(&store), None)),
                Err(e) => {
                    let o = ObjectInfo {
                        url: url.url.clone(),
                        root: url.root.clone(),
                        key: url.path.clone(),
                        size: 0,
                        last_modified: DateTime::<Utc>::UNIX_EPOCH,
                        etag: None,
                    };
                    found.push((o, Arc::clone(&store), Some(format!("HEAD: {e}"))));
                }
            }
        }
    }
    found.sort_by(|a, b| a.0.url.cmp(&b.0.url));
    found.dedup_by(|a, b| a.0.url == b.0.url);
    Ok(found)
}

/// Verifies the fleet; `on_backup` is told each backup's record as it is
/// done (in completion order). Returns the whole report, backups sorted by
/// URL. A listing that fails is an error; an object that fails is a record.
pub fn verify_fleet(
    o: &FleetOptions,
    on_backup: &mut dyn FnMut(&BackupRecord) -> std::io::Result<()>,
) -> Result<FleetReport> {
    let jobs = o.jobs.max(1);
    let rt = runtime(jobs.min(std::thread::available_parallelism().map_or(2, usize::from)).max(2))?;
    let stores = Stores::new(o.store.clone());
    let now = o.now.unwrap_or_else(Utc::now);
    let max_age_seconds = o.max_age.map(|d| d.as_secs());
    let judge = Judge { now, max_age_seconds, require_trailer: o.require_trailer };
    let objective = Objective {
        now: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        max_age_seconds,
        require: o.require.max(1),
    };
    let owned = |key: &str| o.shard.is_none_or(|s| s.owns(key));
    rt.block_on(async {
        let listed = list(&stores, o).await?;
        let mut ignored = 0u64;
        let mut plan = Vec::new();
        for (object, store, head_error) in listed {
            let cluster = match &o.group_by {
                Some(re) => match cluster_of(re, &object.url) {
                    Some(c) => Some(c),
                    None => {
                        if owned(&object.url) {
                            ignored = ignored.saturating_add(1);
                        }
                        continue;
                    }
                },
                None => None,
            };
            if owned(cluster.as_deref().unwrap_or(&object.url)) {
                plan.push(Planned { object, store, cluster, head_error });
            }
        }
        let dir = Arc::new(SpoolDir::new(o.spool_dir.as_deref())?);
        let mut backups: Vec<BackupRecord> = Vec::with_capacity(plan.len());
        let mut results = futures::stream::iter(plan)
            .map(|p| {
                let dir = Arc::clone(&dir);
                let opener = o.census.clone();
                async move {
                    if let Some(message) = p.head_error {
                        let err = RemoteError::Unreadable { url: p.object.url.clone(), message };
                        return failed(&p.object, p.cluster, &judge, &err);
                    }
                    match spool(p.store.as_ref(), &p.object, &dir).await {
                        Ok(sp) => {
                            let cluster = p.cluster.clone();
                            let done = tokio::task::spawn_blocking(move || {
                                check_spooled(&sp, cluster, &judge, opener.as_deref())
                            })
                            .await;
                            done.unwrap_or_else(|e| {
                                let err = RemoteError::Unreadable {
                                    url: p.object.url.clone(),
                                    message: format!("the check failed: {e}"),
                                };
                                failed(&p.object, p.cluster, &judge, &err)
                            })
                        }
                        Err(e) => failed(&p.object, p.cluster, &judge, &e),
                    }
                }
            })
            .buffer_unordered(jobs);
        while let Some(r) = results.next().await {
            on_backup(&r).map_err(RemoteError::Output)?;
            backups.push(r);
        }
        backups.sort_by(|a, b| a.url.cmp(&b.url));
        let expected: Vec<String> = o.expect_groups.iter().filter(|g| owned(g)).cloned().collect();
        let clusters = if o.group_by.is_some() { judge_clusters(&backups, &expected, &objective) } else { Vec::new() };
        let summary = summarize(&backups, &clusters, &objective, o.shard.map(|s| s.to_string()), ignored);
        Ok(FleetReport { backups, clusters, summary })
    })
}
