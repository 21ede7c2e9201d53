//! `diff`: where two copies of an etcd key space part — the keys served at a
//! revision (with a rename, a tenant of a shared etcd against its moved copy),
//! the lease, auth and member buckets, and, for two members of one cluster,
//! the first stored revision at which their histories differ.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use etcdsnap_bolt::{Cursor, Db};
use etcdsnap_keys::KeyRules;

use crate::error::{MvccError, Result};
use crate::keyspace::{read, KeySpace, Visible};
use crate::kv::KvRef;
use crate::revision::BucketKey;
use crate::schema::{AUTH, AUTH_ROLES, AUTH_USERS, KEY, LEASE, MEMBERS, MEMBERS_REMOVED};

/// Options of [`diff`].
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Only keys starting with this (named as in B).
    pub prefix: Vec<u8>,
    /// Revision to compare at in both (0: each side's latest).
    pub rev: i64,
    /// Renames applied to A's keys before comparing. When any is given, A is
    /// limited to the rename sources and B to the rename targets: a tenant of
    /// a shared etcd against its moved copy.
    pub rules: KeyRules,
}

/// How a key differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffKind {
    /// Only A has it.
    OnlyA,
    /// Only B has it.
    OnlyB,
    /// Both have it, with the fields named in [`KeyDiff::fields`] different.
    Changed,
}

impl DiffKind {
    /// `only_a`, `only_b`, `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnlyA => "only_a",
            Self::OnlyB => "only_b",
            Self::Changed => "changed",
        }
    }
}

/// One side of a key that differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side<'a> {
    /// The key as that side stores it.
    pub key: &'a [u8],
    /// `create_revision`.
    pub create_revision: i64,
    /// `mod_revision`.
    pub mod_revision: i64,
    /// `version`.
    pub version: i64,
    /// `lease`.
    pub lease: i64,
    /// The value.
    pub value: &'a [u8],
}

impl<'a> Side<'a> {
    fn of(v: &Visible<'a>) -> Self {
        Side {
            key: v.kv.key,
            create_revision: v.kv.create_revision,
            mod_revision: v.kv.mod_revision,
            version: v.kv.version,
            lease: v.kv.lease,
            value: v.kv.value,
        }
    }
}

/// A key that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDiff<'a> {
    /// The key as B names it (A's key renamed).
    pub key: Vec<u8>,
    /// How.
    pub kind: DiffKind,
    /// With [`DiffKind::Changed`]: which of `value`, `create_revision`,
    /// `mod_revision`, `version`, `lease` differ.
    pub fields: Vec<&'static str>,
    /// A's side.
    pub a: Option<Side<'a>>,
    /// B's side.
    pub b: Option<Side<'a>>,
}

/// An entry of a non-`key` bucket that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketDiff {
    /// The bucket.
    pub bucket: &'static [u8],
    /// The entry's key.
    pub key: Vec<u8>,
    /// How (`Changed`: different values).
    pub kind: DiffKind,
}

/// What [`diff`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffReport<'a> {
    /// Revision compared at in A.
    pub rev_a: i64,
    /// Revision compared at in B.
    pub rev_b: i64,
    /// Keys compared in A (after the selection).
    pub keys_a: u64,
    /// Keys compared in B.
    pub keys_b: u64,
    /// Keys that differ, in B's key order.
    pub keys: Vec<KeyDiff<'a>>,
    /// Entries of the lease, auth and member buckets that differ.
    pub buckets: Vec<BucketDiff>,
    /// Buckets compared.
    pub buckets_compared: Vec<&'static [u8]>,
}

impl DiffReport<'_> {
    /// Whether nothing differs.
    pub fn is_equal(&self) -> bool {
        self.keys.is_empty() && self.buckets.is_empty()
    }
}

fn fields_differing(a: &Side<'_>, b: &Side<'_>) -> Vec<&'static str> {
    let mut f = Vec::new();
    if a.value != b.value {
        f.push("value");
    }
    if a.create_revision != b.create_revision {
        f.push("create_revision");
    }
    if a.mod_revision != b.mod_revision {
        f.push("mod_revision");
    }
    if a.version != b.version {
        f.push("version");
    }
    if a.lease != b.lease {
        f.push("lease");
    }
    f
}

/// `key` renamed by `rules` as two parts to read one after the other: the
/// rename target and the rest of the key, or the key itself and nothing.
fn renamed_parts<'k>(rules: &'k KeyRules, key: &'k [u8]) -> [&'k [u8]; 2] {
    match rules.rename_for(key) {
        // `key` starts with `r.from` (rename_for), so the tail exists.
        Some(r) => [r.to.as_slice(), key.get(r.from.len()..).unwrap_or_default()],
        None => [key, &[]],
    }
}

/// Compares two byte strings each given in parts, as their concatenations
/// compare, without building them.
fn cmp_parts(a: [&[u8]; 2], b: [&[u8]; 2]) -> Ordering {
    let (mut a, mut b) = (a.into_iter().filter(|p| !p.is_empty()), b.into_iter().filter(|p| !p.is_empty()));
    let (mut x, mut y): (&[u8], &[u8]) = (a.next().unwrap_or_default(), b.next().unwrap_or_default());
    loop {
        if x.is_empty() || y.is_empty() {
            // A part ran out: the string with more bytes left sorts after.
            return match (x.is_empty(), y.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Less,
                _ => Ordering::Greater,
            };
        }
        let n = x.len().min(y.len());
        let (Some((xh, xt)), Some((yh, yt))) = (x.split_at_checked(n), y.split_at_checked(n)) else {
            return x.cmp(y);
        };
        match xh.cmp(yh) {
            Ordering::Equal => {}
            o => return o,
        }
        x = if xt.is_empty() { a.next().unwrap_or_default() } else { xt };
        y = if yt.is_empty() { b.next().unwrap_or_default() } else { yt };
    }
}

/// Whether the concatenation of `parts` starts with `prefix`.
fn parts_start_with(parts: [&[u8]; 2], prefix: &[u8]) -> bool {
    let [head, tail] = parts;
    match prefix.split_at_checked(head.len()) {
        Some((p, rest)) => p == head && tail.starts_with(rest),
        None => head.starts_with(prefix),
    }
}

/// Compares the key spaces of `a` and `b` (and their lease, auth and member
/// buckets) as [`DiffOptions`] says.
///
/// Memory is the two key spaces (a slot per compared key) and what differs:
/// the sides are walked in step, A's keys ordered by the names B gives them.
pub fn diff<'a>(a: &Db<'a>, b: &Db<'a>, opts: &DiffOptions) -> Result<DiffReport<'a>> {
    let rules = &opts.rules;
    let renaming = !rules.renames.is_empty();
    let prefix = opts.prefix.as_slice();
    let targets: Vec<&[u8]> = rules.renames.iter().map(|r| r.to.as_slice()).collect();
    // A's keys as B names them, limited to the rename sources when renaming.
    let keep_a =
        |k: &[u8]| (!renaming || rules.rename_for(k).is_some()) && parts_start_with(renamed_parts(rules, k), prefix);
    // By B's names; keys a rename makes equal stay in their own order.
    let order_a = |x: &[u8], y: &[u8]| {
        if renaming {
            cmp_parts(renamed_parts(rules, x), renamed_parts(rules, y)).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        }
    };
    let keep_b = |k: &[u8]| k.starts_with(prefix) && (!renaming || targets.iter().any(|t| k.starts_with(t)));
    // The two key spaces are independent passes over two files: one per core.
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| read(a, opts.rev, keep_a, order_a));
        let rb = read(b, opts.rev, keep_b, <[u8]>::cmp);
        (ha.join(), rb)
    });
    let left = ra.map_err(|_| MvccError::WorkerPanicked("diff"))??;
    let right = rb?;
    let mut keys = Vec::new();
    let (mut ia, mut ib) = (left.iter(), right.iter());
    let (mut ea, mut eb) = (ia.next(), ib.next());
    loop {
        let ord = match (&ea, &eb) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(l), Some(r)) => cmp_parts(renamed_parts(rules, l.kv.key), [r.kv.key, &[]]),
        };
        match (ord, ea, eb) {
            (Ordering::Less, Some(l), _) => {
                keys.push(KeyDiff {
                    key: rules.renamed(l.kv.key).into_owned(),
                    kind: DiffKind::OnlyA,
                    fields: Vec::new(),
                    a: Some(Side::of(&l)),
                    b: None,
                });
                ea = ia.next();
            }
            (Ordering::Greater, _, Some(r)) => {
                keys.push(KeyDiff {
                    key: r.kv.key.to_vec(),
                    kind: DiffKind::OnlyB,
                    fields: Vec::new(),
                    a: None,
                    b: Some(Side::of(&r)),
                });
                eb = ib.next();
            }
            (_, Some(l), Some(r)) => {
                let (sa, sb) = (Side::of(&l), Side::of(&r));
                let fields = fields_differing(&sa, &sb);
                if !fields.is_empty() {
                    keys.push(KeyDiff {
                        key: rules.renamed(l.kv.key).into_owned(),
                        kind: DiffKind::Changed,
                        fields,
                        a: Some(sa),
                        b: Some(sb),
                    });
                }
                ea = ia.next();
                eb = ib.next();
            }
            _ => break,
        }
    }

    // Leases: all of them, or with renames those the compared keys use.
    let mut buckets = Vec::new();
    let mut compared: Vec<&'static [u8]> = Vec::new();
    let leases = |ks: &KeySpace<'_>| -> Option<BTreeSet<[u8; 8]>> {
        renaming.then(|| ks.iter().map(|v| v.kv.lease).filter(|&l| l != 0).map(i64::to_be_bytes).collect())
    };
    let (la, lb) = (leases(&left), leases(&right));
    compared.push(LEASE);
    compare_bucket(
        a,
        b,
        LEASE,
        |k, side| match (side, &la, &lb) {
            (Which::A, Some(set), _) | (Which::B, _, Some(set)) => {
                <[u8; 8]>::try_from(k).is_ok_and(|id| set.contains(&id))
            }
            _ => true,
        },
        &mut buckets,
    )?;
    // Auth and members: compared as stored. Role permissions name keys, which a
    // rename changes by design, so roles are not compared under renames.
    for bucket in [AUTH, AUTH_USERS, AUTH_ROLES, MEMBERS, MEMBERS_REMOVED] {
        if renaming && bucket == AUTH_ROLES {
            continue;
        }
        compared.push(bucket);
        compare_bucket(a, b, bucket, |_, _| true, &mut buckets)?;
    }
    Ok(DiffReport {
        rev_a: left.rev(),
        rev_b: right.rev(),
        keys_a: left.len() as u64,
        keys_b: right.len() as u64,
        keys,
        buckets,
        buckets_compared: compared,
    })
}

#[derive(Clone, Copy)]
enum Which {
    A,
    B,
}

fn next_selected<'a>(
    c: &mut Option<Cursor<'a>>,
    side: Which,
    keep: &impl Fn(&[u8], Which) -> bool,
) -> Result<Option<(&'a [u8], &'a [u8])>> {
    let Some(cur) = c.as_mut() else { return Ok(None) };
    for e in cur.by_ref() {
        let e = e?;
        if keep(e.key, side) {
            return Ok(Some((e.key, e.value)));
        }
    }
    Ok(None)
}

/// Merges two buckets in key order (both are sorted), recording what differs.
fn compare_bucket(
    a: &Db<'_>,
    b: &Db<'_>,
    bucket: &'static [u8],
    keep: impl Fn(&[u8], Which) -> bool,
    out: &mut Vec<BucketDiff>,
) -> Result<()> {
    let mut ca = a.bucket(&[bucket])?.map(|x| x.cursor());
    let mut cb = b.bucket(&[bucket])?.map(|x| x.cursor());
    let mut ea = next_selected(&mut ca, Which::A, &keep)?;
    let mut eb = next_selected(&mut cb, Which::B, &keep)?;
    loop {
        let ord = match (ea, eb) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        match (ord, ea, eb) {
            (Ordering::Less, Some((k, _)), _) => {
                out.push(BucketDiff { bucket, key: k.to_vec(), kind: DiffKind::OnlyA });
                ea = next_selected(&mut ca, Which::A, &keep)?;
            }
            (Ordering::Greater, _, Some((k, _))) => {
                out.push(BucketDiff { bucket, key: k.to_vec(), kind: DiffKind::OnlyB });
                eb = next_selected(&mut cb, Which::B, &keep)?;
            }
            (_, Some((k, va)), Some((_, vb))) => {
                if va != vb {
                    out.push(BucketDiff { bucket, key: k.to_vec(), kind: DiffKind::Changed });
                }
                ea = next_selected(&mut ca, Which::A, &keep)?;
                eb = next_selected(&mut cb, Which::B, &keep)?;
            }
            _ => return Ok(()),
        }
    }
}

/// One stored revision of the `key` bucket, as [`history_diff`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRev {
    /// Revision and tombstone mark.
    pub at: BucketKey,
    /// The user key (empty for a marker).
    pub key: Vec<u8>,
}

/// Where the histories of two members part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryDiff {
    /// Revisions up to this one were not compared: they may differ only by
    /// when each member compacted (max of both compact revisions).
    pub compared_after: i64,
    /// Stored revisions compared (entries of A or B above `compared_after`).
    pub compared: u64,
    /// The first main revision at which the `key` buckets differ, if any.
    pub first_difference: Option<i64>,
    /// What A and B store at that revision (every sub-revision of it).
    pub at_first_a: Vec<StoredRev>,
    /// The same for B.
    pub at_first_b: Vec<StoredRev>,
    /// Entries only A stores.
    pub only_a: u64,
    /// Entries only B stores.
    pub only_b: u64,
    /// Entries both store with different values.
    pub changed: u64,
    /// Latest revision of A.
    pub latest_a: i64,
    /// Latest revision of B.
    pub latest_b: i64,
}

fn stored_at(db: &Db<'_>, main: i64) -> Result<Vec<StoredRev>> {
    let mut out = Vec::new();
    let Some(b) = db.bucket(&[KEY])? else { return Ok(out) };
    let mut c = b.cursor();
    c.seek(&crate::revision::Revision::new(main, 0).to_bytes())?;
    for e in c {
        let e = e?;
        let bk = BucketKey::parse(e.key).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
        if bk.rev.main != main {
            break;
        }
        let key = if e.value.is_empty() {
            Vec::new()
        } else {
            KvRef::parse(e.value).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?.key.to_vec()
        };
        out.push(StoredRev { at: bk, key });
    }
    Ok(out)
}

fn open_at<'a>(db: &Db<'a>, start: &[u8]) -> Result<Option<Cursor<'a>>> {
    match db.bucket(&[KEY])? {
        Some(bk) => {
            let mut c = bk.cursor();
            c.seek(start)?;
            Ok(Some(c))
        }
        None => Ok(None),
    }
}

/// Walks the `key` buckets of two members of one cluster side by side in
/// revision order (streaming: two cursors, constant memory) and finds the
/// first revision at which they differ — the offline answer to etcd's
/// "hash mismatch at revision R". Revisions at or below either compact
/// revision are skipped: members compact at different times.
pub fn history_diff(a: &Db<'_>, b: &Db<'_>) -> Result<HistoryDiff> {
    let (compact_a, latest_a) = crate::keyspace::bounds(a)?;
    let (compact_b, latest_b) = crate::keyspace::bounds(b)?;
    let from = compact_a.max(compact_b);
    let start = crate::revision::Revision::new(from.saturating_add(1), 0).to_bytes();
    let (mut ca, mut cb) = (open_at(a, &start)?, open_at(b, &start)?);
    let all = |_: &[u8], _: Which| true;
    let mut ea = next_selected(&mut ca, Which::A, &all)?;
    let mut eb = next_selected(&mut cb, Which::B, &all)?;
    let mut d = HistoryDiff {
        compared_after: from,
        compared: 0,
        first_difference: None,
        at_first_a: Vec::new(),
        at_first_b: Vec::new(),
        only_a: 0,
        only_b: 0,
        changed: 0,
        latest_a,
        latest_b,
    };
    let mut first: Option<Vec<u8>> = None;
    loop {
        let ord = match (ea, eb) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        d.compared = d.compared.saturating_add(1);
        let differing = match (ord, ea, eb) {
            (Ordering::Less, Some((k, _)), _) => {
                d.only_a = d.only_a.saturating_add(1);
                ea = next_selected(&mut ca, Which::A, &all)?;
                Some(k)
            }
            (Ordering::Greater, _, Some((k, _))) => {
                d.only_b = d.only_b.saturating_add(1);
                eb = next_selected(&mut cb, Which::B, &all)?;
                Some(k)
            }
            (_, Some((k, va)), Some((_, vb))) => {
                ea = next_selected(&mut ca, Which::A, &all)?;
                eb = next_selected(&mut cb, Which::B, &all)?;
                (va != vb).then(|| {
                    d.changed = d.changed.saturating_add(1);
                    k
                })
            }
            _ => break,
        };
        if let (None, Some(k)) = (&first, differing) {
            first = Some(k.to_vec());
        }
    }
    if let Some(k) = first {
        let main = BucketKey::lenient_main(&k);
        d.first_difference = Some(main);
        d.at_first_a = stored_at(a, main)?;
        d.at_first_b = stored_at(b, main)?;
    }
    Ok(d)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        // A small alphabet, so that parts share prefixes and run out mid-comparison.
        prop::collection::vec(prop::sample::select(vec![b'/', b'a', b'b']), 0..6)
    }

    proptest! {
        #[test]
        fn parts_compare_as_their_concatenation(a0 in bytes(), a1 in bytes(), b0 in bytes(), b1 in bytes()) {
            let (a, b) = ([a0.as_slice(), &a1], [b0.as_slice(), &b1]);
            prop_assert_eq!(cmp_parts(a, b), a.concat().cmp(&b.concat()));
            prop_assert_eq!(parts_start_with(a, &b0), a.concat().starts_with(&b0));
        }
    }

    #[test]
    fn renamed_parts_are_target_and_tail() {
        let rules = KeyRules {
            renames: vec![etcdsnap_keys::Rename { from: b"/t1/".to_vec(), to: b"/x/".to_vec() }],
            ..KeyRules::default()
        };
        assert_eq!(renamed_parts(&rules, b"/t1/k").concat(), b"/x/k");
        assert_eq!(renamed_parts(&rules, b"/t2/k").concat(), b"/t2/k");
    }
}
