//! The per-entry hook of embedders ([`EntryHook`]) and the memo that lets a
//! rebuild ask it once per entry although it walks the `key` bucket twice.

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

/// A per-entry hook of [`transform`](crate::transform::transform) and
/// [`rewrite`](crate::rewrite::rewrite) (`RewriteOptions::hook`): keeps, drops
/// or replaces the value of every `key`-bucket entry the key rules keep.
/// Revision markers (empty values) are not shown to it.
///
/// It is called once per such entry, in bucket order, in the analysis pass;
/// the write pass replays its decisions (replaced values are held in memory
/// until written). A hook that replaces many large values makes the rewrite
/// hold them all.
///
/// Dropping some revisions of a key but not others rewrites its history (an
/// older value shows again, versions skip): decide on the key to remove a key
/// cleanly. A replaced value is written as given: the key-bound encryption
/// check and [`Reseal`](etcdsnap_keys::Reseal) concern only values the hook
/// keeps, so a hook that re-encrypts returns values sealed for `new_key`.
pub trait EntryHook: Send + Sync + Debug {
    /// The decision for `entry`, or why the rewrite must stop (reported as
    /// [`MvccError::Hook`] with the key and revision; nothing is written).
    fn decide(&self, entry: &Entry<'_>) -> std::result::Result<Decision, String>;
}

/// `hook`'s decision on the entry stored at `at` with `kv`, to be written as `new_key`.
fn decide(hook: &dyn EntryHook, new_key: &[u8], at: BucketKey, kv: &KvRef<'_>) -> Result<Decision> {
    let fail = |reason: String| MvccError::Hook { key: kv.key.to_vec(), revision: at.rev.main, reason };
    let d = hook.decide(&Entry { key: kv.key, new_key, at, kv: *kv }).map_err(fail)?;
    if at.tombstone && matches!(d, Decision::ReplaceValue(_)) {
        return Err(fail("a tombstone has no value to replace".into()));
    }
    Ok(d)
}

/// The hook's decisions other than [`Decision::Keep`], by entry ordinal (its
/// position in bucket order), in order.
#[derive(Debug, Default)]
pub(crate) struct HookMemo {
    decided: Vec<(u64, Decision)>,
}

/// Where a pass gets the hook's decisions from.
pub(crate) enum HookStep<'m> {
    /// No hook: every entry is kept.
    Absent,
    /// Ask the hook, and remember what it said.
    Ask(&'m dyn EntryHook, &'m mut HookMemo),
    /// Replay what an earlier pass remembered.
    Replay(&'m [(u64, Decision)]),
}

impl HookMemo {
    /// A pass that replays these decisions.
    pub(crate) fn replay(&self) -> HookStep<'_> {
        HookStep::Replay(&self.decided)
    }
}

/// What [`HookStep::decision`] needs to know of the entry.
pub(crate) struct Asked<'k, 'e> {
    pub(crate) ordinal: u64,
    pub(crate) new_key: &'k [u8],
    pub(crate) at: BucketKey,
    pub(crate) kv: &'k KvRef<'e>,
}

/// The decision for an entry the hook does not name: keep it.
static KEEP: Decision = Decision::Keep;

impl HookStep<'_> {
    /// A step for `hook`, if any, remembering into `memo`.
    pub(crate) fn ask<'m>(hook: Option<&'m dyn EntryHook>, memo: &'m mut HookMemo) -> HookStep<'m> {
        match hook {
            Some(h) => HookStep::Ask(h, memo),
            None => HookStep::Absent,
        }
    }

    /// The decision on the entry at `q.ordinal` (entries come in bucket order).
    pub(crate) fn decision(&mut self, q: Asked<'_, '_>) -> Result<&Decision> {
        match self {
            HookStep::Absent => Ok(&KEEP),
            HookStep::Ask(hook, memo) => {
                let d = decide(*hook, q.new_key, q.at, q.kv)?;
                if d == Decision::Keep {
                    return Ok(&KEEP);
                }
                memo.decided.push((q.ordinal, d));
                Ok(memo.decided.last().map_or(&KEEP, |(_, d)| d))
            }
            HookStep::Replay(rest) => {
                while let Some(((o, _), tail)) = rest.split_first() {
                    if *o >= q.ordinal {
                        break;
                    }
                    *rest = tail;
                }
                match rest.split_first() {
                    Some(((o, d), tail)) if *o == q.ordinal => {
                        *rest = tail;
                        Ok(d)
                    }
                    _ => Ok(&KEEP),
                }
            }
        }
    }
}
