//! The fate of one `key`-bucket entry: the one place that decides whether
//! the rewrite keeps, drops, renames or replaces it. The analysis pass and
//! the write pass both ask [`fate`]; the entry hook is asked once (the write
//! pass replays the analysis' answers, [`HookStep`]).

use std::borrow::Cow;

use etcdsnap_bolt::Entry as BoltEntry;

use super::hook::{Asked, Decision, HookStep};
use super::options::RewriteOptions;
use crate::error::{MvccError, Result};
use crate::kv::{encoded_len_with_key, KvRef};
use crate::revision::BucketKey;
use crate::schema::KEY;

/// What happens to one entry of the input's `key` bucket.
pub(crate) enum Fate<'e, 'h> {
    /// A revision marker (an empty value, as etcdutl's bump writes): no user
    /// key; kept unless the offline compaction removes it.
    Marker,
    /// Dropped by the key rules.
    Filtered(KvRef<'e>),
    /// Dropped by the entry hook.
    HookDropped(KvRef<'e>),
    /// Written after the point in time asked for (`at_revision`): cut.
    Cut,
    /// Written (unless the offline compaction removes it).
    Kept {
        /// The stored `KeyValue`.
        kv: KvRef<'e>,
        /// The user key it is written under (owned: renamed).
        key: Cow<'e, [u8]>,
        /// Its value.
        value: Value<'h>,
    },
}

/// How a kept entry's value is written.
pub(crate) enum Value<'h> {
    /// The stored bytes, untouched (the key was not renamed).
    Stored,
    /// Re-encoded under the renamed key (and re-sealed where key-bound and
    /// `--reencrypt` asks: the same length).
    Renamed,
    /// Re-encoded with the hook's value.
    Replaced(&'h [u8]),
}

/// An error naming a `key`-bucket entry that etcd could not read.
pub(crate) fn corrupt(key: &[u8], e: impl ToString) -> MvccError {
    MvccError::value(KEY, key, e.to_string())
}

/// The fate of entry `e`, the `ordinal`-th of the `key` bucket, and its revision.
pub(crate) fn fate<'e, 'h>(
    opts: &RewriteOptions,
    hook: &'h mut HookStep<'_>,
    ordinal: u64,
    e: &BoltEntry<'e>,
) -> Result<(BucketKey, Fate<'e, 'h>)> {
    let rules = &opts.rules;
    let at = BucketKey::parse(e.key).map_err(|err| corrupt(e.key, err))?;
    if opts.at_revision.is_some_and(|n| at.rev.main > n) {
        return Ok((at, Fate::Cut));
    }
    if e.value.is_empty() {
        return Ok((at, Fate::Marker));
    }
    let kv = KvRef::parse(e.value).map_err(|err| corrupt(e.key, err))?;
    let Some(key) = rules.apply(kv.key) else { return Ok((at, Fate::Filtered(kv))) };
    let renamed = matches!(key, Cow::Owned(_));
    let fate = match hook.decision(Asked { ordinal, new_key: &key, at, kv: &kv })? {
        Decision::Drop => Fate::HookDropped(kv),
        Decision::Keep => Fate::Kept { kv, key, value: if renamed { Value::Renamed } else { Value::Stored } },
        Decision::ReplaceValue(v) => Fate::Kept { kv, key, value: Value::Replaced(v) },
    };
    Ok((at, fate))
}

impl Fate<'_, '_> {
    /// Bytes of the value written for this entry, whose stored value is
    /// `stored`; `None` when it is dropped.
    pub(crate) fn written_len(&self, stored: &[u8]) -> Option<usize> {
        match self {
            Fate::Marker => Some(0),
            Fate::Filtered(_) | Fate::HookDropped(_) | Fate::Cut => None,
            Fate::Kept { value: Value::Stored, .. } => Some(stored.len()),
            // A re-sealed value keeps its length (checked where it is made).
            Fate::Kept { kv, key, value: Value::Renamed } => Some(encoded_len_with_key(kv, key.len())),
            Fate::Kept { kv, key, value: Value::Replaced(v) } => {
                Some(encoded_len_with_key(&KvRef { value: v, ..*kv }, key.len()))
            }
        }
    }
}
