//! What etcd replays from the WAL at start: the entries above the db's
//! `consistent_index`. A WAL rewrite whose rules dropped a write among them
//! would shift the revision of every later replayed write, so it needs that
//! index; it is known only when the db is beside the WAL.

use etcdsnap_mvcc::consistent_index::read_consistent_index;
use etcdsnap_wal::WalPaths;

use crate::error::Result;

/// What the replay check can rest on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayCheck {
    /// The db beside the WAL was read: its `consistent_index` (`None`: the
    /// db has none, as a fresh member's).
    Db(Option<u64>),
    /// No db beside the WAL (a bare WAL directory was given): the rules'
    /// effect on replayed writes cannot be checked.
    NoDb,
}

impl ReplayCheck {
    /// The index above which etcd replays, when known.
    pub fn consistent_index(self) -> Option<u64> {
        match self {
            ReplayCheck::Db(ci) => ci,
            ReplayCheck::NoDb => None,
        }
    }
}

/// The replay check of the WAL laid out as `layout`.
pub fn replay_check(layout: &WalPaths) -> Result<ReplayCheck> {
    match &layout.db {
        Some(db) => Ok(ReplayCheck::Db(read_consistent_index(db)?)),
        None => Ok(ReplayCheck::NoDb),
    }
}
