//! `--shard INDEX/COUNT`: which part of the listing one process checks.
//!
//! Objects are assigned by a hash of their cluster (the `--group-by`
//! capture), else of their URL, so a cluster's backups and its objective
//! (freshness, `--require`, `--expect-groups`) are judged whole in one
//! shard: shards never need each other's results, and `report merge` only
//! concatenates. The hash is SHA-256, the same on every machine and
//! release, so the Job's pods agree without talking; an index-range split of
//! the sorted listing would instead move clusters between shards whenever a
//! backup is added.

use sha2::{Digest, Sha256};

use crate::error::{RemoteError, Result};

/// One shard of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index, below `count`.
    pub index: u32,
    /// Number of shards (at least 1).
    pub count: u32,
}

impl Shard {
    /// Parses `INDEX/COUNT`; a missing INDEX (`/COUNT` or `COUNT`) is taken
    /// from `env_index` (the Job controller's `JOB_COMPLETION_INDEX`).
    pub fn parse(s: &str, env_index: Option<&str>) -> Result<Self> {
        let bad = |why: &str| RemoteError::Usage(format!("--shard {s:?}: {why}"));
        let (index, count) = match s.split_once('/') {
            Some((i, c)) => (i.trim(), c.trim()),
            None => ("", s.trim()),
        };
        let count: u32 = count.parse().map_err(|_| bad("COUNT must be a positive number"))?;
        let index = if index.is_empty() {
            env_index.ok_or_else(|| bad("no INDEX given and JOB_COMPLETION_INDEX is not set"))?.trim()
        } else {
            index
        };
        let index: u32 = index.parse().map_err(|_| bad("INDEX must be a number"))?;
        if count == 0 || index >= count {
            return Err(bad("INDEX must be below COUNT, COUNT at least 1"));
        }
        Ok(Self { index, count })
    }

    /// Whether `key` (a cluster name or an object URL) belongs to this shard.
    pub fn owns(&self, key: &str) -> bool {
        shard_of(key, self.count) == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard of `key` among `count`: the first 8 bytes of its SHA-256, big-endian, modulo `count`.
pub fn shard_of(key: &str, count: u32) -> u32 {
    let d = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(d.get(..8).unwrap_or(&[0; 8]));
    let n = u64::from_be_bytes(first).checked_rem(u64::from(count)).unwrap_or(0);
    u32::try_from(n).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
mod tests {
    use super::*;

    #[test]
    fn shard_specs_parse_and_take_the_job_index() {
        assert_eq!(Shard::parse("1/4", None).unwrap(), Shard { index: 1, count: 4 });
        assert_eq!(Shard::parse("/4", Some("3")).unwrap(), Shard { index: 3, count: 4 });
        assert_eq!(Shard::parse("4", Some("0")).unwrap(), Shard { index: 0, count: 4 });
        assert!(Shard::parse("4/4", None).is_err());
        assert!(Shard::parse("/4", None).is_err());
        assert!(Shard::parse("0/0", None).is_err());
    }

    #[test]
    fn every_key_has_exactly_one_shard_and_the_hash_is_pinned() {
        let shards: Vec<Shard> = (0..4).map(|index| Shard { index, count: 4 }).collect();
        for k in ["a", "cluster-17", "s3://b/k"] {
            assert_eq!(shards.iter().filter(|s| s.owns(k)).count(), 1);
        }
        // Pinned: a change of the hash would move clusters between a CronJob's runs.
        assert_eq!(shard_of("cluster-0", 1000), shard_of("cluster-0", 1000));
        assert_eq!(shard_of("", 7), (0xe3b0c44298fc1c14u64 % 7) as u32);
    }
}
