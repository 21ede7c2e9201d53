//! The response header etcd puts on every reply (`etcdserverpb.ResponseHeader`),
//! as far as a db file holds it: etcdctl's `-w json` shows it, and scripts
//! written for etcdctl read it.

use etcdsnap_bolt::Db;
use sha1::{Digest, Sha1};

use crate::error::Result;
use crate::keyspace::bounds;
use crate::schema::{read_members, read_meta};

/// `ResponseHeader` of a Range served from this file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The cluster id etcd derived from its members at bootstrap ([`cluster_id`]).
    pub cluster_id: u64,
    /// The member that would answer: the only member, or the lowest id of several
    /// (a file does not say which member wrote it).
    pub member_id: u64,
    /// The store's current revision (etcd's Range header carries it whatever revision was read).
    pub revision: i64,
    /// `meta/term` (etcd ≥ 3.5 stores it; 0 for older files, which etcdctl's JSON then omits).
    pub raft_term: u64,
}

/// etcd's `RaftCluster.genID`: the first 8 bytes (big-endian) of the SHA-1 of
/// the sorted member ids, each as 8 big-endian bytes. It equals the running
/// cluster's id while the members are those it was bootstrapped with.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.iter_mut().zip(d.iter()).for_each(|(f, b)| *f = *b);
    u64::from_be_bytes(first)
}

/// The header of a Range served from `db`.
pub fn header(db: &Db<'_>) -> Result<Header> {
    let ids: Vec<u64> = read_members(db)?.iter().map(|m| m.id).collect();
    let (_, revision) = bounds(db)?;
    Ok(Header {
        cluster_id: if ids.is_empty() { 0 } else { cluster_id(&ids) },
        member_id: ids.iter().copied().min().unwrap_or(0),
        revision,
        raft_term: read_meta(db)?.term.unwrap_or(0),
    })
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_as_etcd_derives_it() {
        // testdata/etcd-3.5.1/expected/get.json: a one-member cluster's header.
        assert_eq!(cluster_id(&[12815492348431280481]), 9119059937047426253);
        assert_eq!(cluster_id(&[7935291578102559156]), 13530808605338343559);
        assert_eq!(cluster_id(&[2, 1]), cluster_id(&[1, 2]));
    }
}
