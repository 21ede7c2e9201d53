//! The entry hook of the rewrite ([`EntryHook`]): keeps, drops or replaces
//! the value of each `key`-bucket entry the key rules keep.
//!
//! Renaming stays the key rules' job ([`etcdsnap_keys::KeyRules::renames`]),
//! so rename collisions and role permissions are handled in one place.

use std::fmt::Debug;

use crate::error::{MvccError, Result};
use crate::kv::KvRef;
use crate::revision::BucketKey;

/// What an [`EntryHook`] does with one `key`-bucket entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Write it as the key rules made it.
    Keep,
    /// Leave it out (counted in `RewriteReport::revisions_filtered`).
    Drop,
    /// Write it with this value (`mvccpb.KeyValue.value`) instead; every other
    /// field is kept. Refused for a tombstone, which carries no value.
    ReplaceValue(Vec<u8>),
}

/// One `key`-bucket entry, as an [`EntryHook`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The user key as stored in the input.
    pub key: &'a [u8],
    /// The name it gets in the output (`key` unless a rename rule applies).
    pub new_key: &'a [u8],
    /// Its revision and tombstone mark (the `key` bucket's key).
    pub at: BucketKey,
    /// The stored `KeyValue` (a tombstone carries only the key); `kv.key` is `key`.
    pub kv: KvRef<'a>,
}

/// A per-entry hook of [`rewrite`](crate::rewrite::rewrite)
/// (`RewriteOptions::hook`): keeps, drops or replaces the value of every
/// `key`-bucket entry the key rules keep. Revision markers (empty values) are
/// not shown to it.
///
/// The hook must be deterministic: it is called for every such entry in the
/// plan pass (which decides the latest revision, lease references and the
/// compaction's keep set from its drops) and again in each write pass (a
/// rebuild lays the output out, then writes it), and every call for an entry
/// must give the same decision and the same bytes. A hook that is not is
/// caught where it changes the output's layout or its drop/replace counts
/// ([`MvccError::HookNotDeterministic`]), not everywhere.
///
/// Dropping some revisions of a key but not others rewrites its history (an
/// older value shows again, versions skip): decide on the key to remove a key
/// cleanly. A replaced value is written as given: the key-bound encryption
/// check and [`Reseal`](crate::rewrite::Reseal) concern only values the hook
/// keeps, so a hook that re-encrypts returns values sealed for `new_key`.
pub trait EntryHook: Send + Sync + Debug {
    /// The decision for `entry`, or why the rewrite must stop (reported as
    /// [`MvccError::Hook`] with the key and revision; nothing is written).
    fn decide(&self, entry: &Entry<'_>) -> std::result::Result<Decision, String>;
}

/// `hook`'s decision on the entry stored at `at` with `kv`, to be written as `new_key`.
pub(crate) fn decide(hook: &dyn EntryHook, new_key: &[u8], at: BucketKey, kv: &KvRef<'_>) -> Result<Decision> {
    let fail = |reason: String| MvccError::Hook { key: kv.key.to_vec(), revision: at.rev.main, reason };
    let d = hook.decide(&Entry { key: kv.key, new_key, at, kv: *kv }).map_err(fail)?;
    if at.tombstone && matches!(d, Decision::ReplaceValue(_)) {
        return Err(fail("a tombstone has no value to replace".into()));
    }
    Ok(d)
}

/// What a hook decided over a whole pass, to compare passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HookTally {
    pub(crate) dropped: u64,
    pub(crate) replaced: u64,
}

impl HookTally {
    pub(crate) fn add(&mut self, d: &Decision) {
        match d {
            Decision::Keep => {}
            Decision::Drop => self.dropped = self.dropped.saturating_add(1),
            Decision::ReplaceValue(_) => self.replaced = self.replaced.saturating_add(1),
        }
    }

    /// An error unless `written` (a write pass) equals `self` (the plan pass).
    pub(crate) fn check(self, written: Self) -> Result<()> {
        if self == written {
            return Ok(());
        }
        Err(MvccError::HookNotDeterministic {
            planned_drops: self.dropped,
            planned_replaced: self.replaced,
            drops: written.dropped,
            replaced: written.replaced,
        })
    }
}
