//! Whole small objects written and read: a fleet run's report files
//! (`--jsonl s3://bucket/reports/run-1/shard-0.jsonl`), each put once when
//! the run is done, and `report merge`'s inputs named by URL, prefix or a
//! `*` pattern in the last segment, so shards of a Kubernetes Job (whose
//! pods share no disk) leave their reports where one merge finds them.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::error::{RemoteError, Result};
use crate::location::{RemoteUrl, StoreOptions, Stores};

/// Objects up to this size are written with one PUT; larger ones in parts.
pub const SINGLE_PUT_MAX: usize = 64 << 20;
/// The part size of a multipart upload.
const PART_SIZE: usize = 16 << 20;

/// What a prefix URL given to [`read_objects`] selects: the reports `verify --jsonl` writes.
pub const PREFIX_SUFFIX: &str = ".jsonl";

fn unreadable(url: &str, message: String) -> RemoteError {
    RemoteError::Unreadable { url: url.to_string(), message }
}

/// Writes `data` as the object `url` (replacing it): one PUT, or a
/// multipart upload past [`SINGLE_PUT_MAX`], so readers see the whole
/// object or the previous one, never a part.
pub fn write_object(url: &str, data: Vec<u8>, opts: &StoreOptions) -> Result<()> {
    let u = RemoteUrl::parse(url)?;
    if u.is_prefix {
        return Err(RemoteError::Usage(format!("{url}: names a prefix; a report is written to an object URL")));
    }
    let store = Stores::new(opts.clone()).get(&u)?;
    let failed =
        |e: object_store::Error| RemoteError::Unreadable { url: url.to_string(), message: format!("PUT: {e}") };
    crate::fleet::runtime(2)?.block_on(async {
        if data.len() <= SINGLE_PUT_MAX {
            store.put(&u.path, PutPayload::from(data)).await.map_err(failed)?;
            return Ok(());
        }
        let upload = store.put_multipart(&u.path).await.map_err(failed)?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        for part in data.chunks(PART_SIZE) {
            w.wait_for_capacity(4).await.map_err(failed)?;
            w.write(part);
        }
        w.finish().await.map_err(failed)?;
        Ok(())
    })
}

/// Whether `name` matches `pattern`, where `*` is any run of characters and `?` any one.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // The classic two-pointer match, backtracking to the last `*`.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi = pi.saturating_add(1);
            }
            Some(c) if *c == '?' || Some(c) == n.get(ni) => {
                pi = pi.saturating_add(1);
                ni = ni.saturating_add(1);
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp.saturating_add(1);
                    ni = sn.saturating_add(1);
                    star = Some((sp, ni));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

/// Splits `input` into the prefix to list and the last segment's pattern
/// when that segment holds `*` or `?`.
fn split_pattern(input: &str) -> Option<(&str, &str)> {
    let (dir, last) = input.rsplit_once('/')?;
    last.contains(['*', '?']).then_some((dir, last))
}

/// Reads whole objects: `url` names one object, a prefix (ending in `/`:
/// its direct children ending in [`PREFIX_SUFFIX`]), or objects of a prefix
/// whose names match a pattern (`s3://b/run-1/shard-*.jsonl`). Returns each
/// object's URL and bytes, sorted by URL; nothing found is an error.
pub fn read_objects(url: &str, opts: &StoreOptions) -> Result<Vec<(String, Bytes)>> {
    let (list_url, pattern) = match split_pattern(url) {
        Some((dir, pattern)) => (format!("{dir}/"), Some(pattern)),
        None => (url.to_string(), None),
    };
    let u = RemoteUrl::parse(&list_url)?;
    let store = Stores::new(opts.clone()).get(&u)?;
    crate::fleet::runtime(2)?.block_on(async {
        let keys: Vec<ObjectPath> = if u.is_prefix {
            let prefix = (!u.path.as_ref().is_empty()).then_some(&u.path);
            let listed =
                store.list_with_delimiter(prefix).await.map_err(|e| unreadable(&list_url, format!("listing: {e}")))?;
            let wanted = |name: &str| match pattern {
                Some(p) => glob_match(p, name),
                None => name.ends_with(PREFIX_SUFFIX),
            };
            let mut keys: Vec<ObjectPath> =
                listed.objects.into_iter().map(|m| m.location).filter(|k| k.filename().is_some_and(wanted)).collect();
            keys.sort();
            if keys.is_empty() {
                let what = pattern.map_or_else(|| format!("*{PREFIX_SUFFIX}"), str::to_string);
                return Err(unreadable(url, format!("no object matches {what}")));
            }
            keys
        } else {
            vec![u.path.clone()]
        };
        let reads = keys.into_iter().map(|k| {
            let store: Arc<dyn ObjectStore> = Arc::clone(&store);
            let object_url = u.object_url(&k);
            async move {
                let got = store.get(&k).await.map_err(|e| unreadable(&object_url, format!("GET: {e}")))?;
                let bytes = got.bytes().await.map_err(|e| unreadable(&object_url, format!("reading the body: {e}")))?;
                Ok::<_, RemoteError>((object_url, bytes))
            }
        });
        let read: Vec<Result<(String, Bytes)>> = futures::stream::iter(reads).buffered(8).collect().await;
        read.into_iter().collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_a_shell_glob_of_one_segment() {
        assert!(glob_match("shard-*.jsonl", "shard-0.jsonl"));
        assert!(glob_match("shard-*.jsonl", "shard-.jsonl"));
        assert!(glob_match("shard-?.jsonl", "shard-3.jsonl"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("*-*-x", "a-b-c-x"));
        assert!(!glob_match("shard-*.jsonl", "shard-0.xml"));
        assert!(!glob_match("shard-?.jsonl", "shard-10.jsonl"));
        assert!(!glob_match("a*b", "acd"));
        assert_eq!(split_pattern("s3://b/r/shard-*.jsonl"), Some(("s3://b/r", "shard-*.jsonl")));
        assert_eq!(split_pattern("s3://b/r/shard-0.jsonl"), None);
        assert_eq!(split_pattern("s3://b/r/"), None);
    }
}
