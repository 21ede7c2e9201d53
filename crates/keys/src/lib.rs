//! Rules on etcd user keys shared by the snapshot rewrite and the WAL rewrite:
//! which keys a filter keeps, what a rename turns them into, and which values
//! Kubernetes encrypted in a way bound to the key; what kube-apiserver
//! stored in a value ([`kube`]); and the [`Reseal`] seam through which the
//! rewrite (etcdsnap-mvcc) re-seals such values with the encryption
//! providers of etcdsnap-k8s, neither depending on the other.

pub mod kube;
mod reseal;

pub use reseal::Reseal;

use std::borrow::Cow;
use std::fmt;

/// The key kube-apiserver writes, unprefixed, shared by every tenant of an etcd.
pub const COMPACT_REV_KEY: &[u8] = b"compact_rev_key";

/// What a rewrite did with `compact_rev_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactRevKey {
    /// The input has no such key.
    Absent,
    /// Kept.
    Kept,
    /// Dropped (by an explicit rule).
    Dropped,
}

impl CompactRevKey {
    /// `absent`, `kept` or `dropped`, as the reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Kept => "kept",
            Self::Dropped => "dropped",
        }
    }
}

/// A prefix rename `FROM=TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// Prefix to replace.
    pub from: Vec<u8>,
    /// Replacement.
    pub to: Vec<u8>,
}

impl Rename {
    /// Parses `FROM=TO` (the first `=` splits).
    pub fn parse(s: &str) -> Result<Self, KeysError> {
        let (from, to) = s.split_once('=').ok_or_else(|| KeysError::BadRename(s.to_string()))?;
        if from.is_empty() {
            return Err(KeysError::BadRename(s.to_string()));
        }
        Ok(Self { from: from.as_bytes().to_vec(), to: to.as_bytes().to_vec() })
    }
}

/// Errors in key rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// A rename not of the form `FROM=TO` with a non-empty FROM.
    #[error("rename {0:?} is not FROM=TO with a non-empty FROM")]
    BadRename(String),
    /// A key both kept and dropped explicitly.
    #[error("key {0:?} is both kept and dropped explicitly")]
    Conflict(String),
    /// `compact_rev_key` would be dropped by a prefix filter without a rule naming it.
    #[error(
        "compact_rev_key (written by kube-apiserver, shared by every tenant) would be dropped by the prefix filter: \
         say what to do with it with --keep-key compact_rev_key or --drop-key compact_rev_key"
    )]
    CompactRevKeyUnnamed,
}

/// Which user keys a rewrite keeps and how it renames them.
///
/// A key is kept when it is named by `keep_keys`, or when it matches an include
/// prefix (or no include prefix is given) and no exclude prefix, and it is not
/// named by `drop_keys`. Renames apply to kept keys: the first rule (in the
/// order given) whose `from` prefixes the key wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRules {
    /// Keep keys under these prefixes (all keys when empty).
    pub include: Vec<Vec<u8>>,
    /// Drop keys under these prefixes.
    pub exclude: Vec<Vec<u8>>,
    /// Always keep these exact keys.
    pub keep_keys: Vec<Vec<u8>>,
    /// Always drop these exact keys.
    pub drop_keys: Vec<Vec<u8>>,
    /// Prefix renames.
    pub renames: Vec<Rename>,
}

impl KeyRules {
    /// Checks that no key is both kept and dropped explicitly.
    pub fn validate(&self) -> Result<(), KeysError> {
        match self.keep_keys.iter().find(|k| self.drop_keys.contains(k)) {
            Some(k) => Err(KeysError::Conflict(String::from_utf8_lossy(k).into_owned())),
            None => Ok(()),
        }
    }

    /// Whether there is no rule at all (every key kept under its own name).
    pub fn is_empty(&self) -> bool {
        self.include.is_empty()
            && self.exclude.is_empty()
            && self.keep_keys.is_empty()
            && self.drop_keys.is_empty()
            && self.renames.is_empty()
    }

    /// Whether any key can be dropped by these rules.
    pub fn filters(&self) -> bool {
        !self.include.is_empty() || !self.exclude.is_empty() || !self.drop_keys.is_empty()
    }

    /// Whether `key` is kept.
    pub fn keeps(&self, key: &[u8]) -> bool {
        if self.keep_keys.iter().any(|k| k == key) {
            return true;
        }
        if self.drop_keys.iter().any(|k| k == key) {
            return false;
        }
        let included = self.include.is_empty() || self.include.iter().any(|p| key.starts_with(p));
        included && !self.exclude.iter().any(|p| key.starts_with(p))
    }

    /// Whether `key` is named by a rule that decides it explicitly (keep/drop key, or a
    /// prefix that is the whole key).
    pub fn names(&self, key: &[u8]) -> bool {
        self.keep_keys.iter().chain(&self.drop_keys).any(|k| k == key)
    }

    /// What these rules do to `compact_rev_key` when the input holds it
    /// (`present`): a prefix filter may not drop it by accident, only a
    /// `--drop-key` naming it (kube-apiserver's compaction, shared by every
    /// tenant, depends on it).
    pub fn compact_rev_key(&self, present: bool) -> Result<CompactRevKey, KeysError> {
        match (present, self.keeps(COMPACT_REV_KEY)) {
            (false, _) => Ok(CompactRevKey::Absent),
            (true, true) => Ok(CompactRevKey::Kept),
            (true, false) if self.names(COMPACT_REV_KEY) => Ok(CompactRevKey::Dropped),
            (true, false) => Err(KeysError::CompactRevKeyUnnamed),
        }
    }

    /// The rename rule that applies to `key`, if any.
    pub fn rename_for(&self, key: &[u8]) -> Option<&Rename> {
        self.renames.iter().find(|r| key.starts_with(&r.from))
    }

    /// `key` after renaming (borrowed when no rule applies).
    pub fn renamed<'k>(&self, key: &'k [u8]) -> Cow<'k, [u8]> {
        match self.rename_for(key) {
            Some(r) => {
                // `key` starts with `r.from` (rename_for), so the tail exists.
                let tail = key.get(r.from.len()..).unwrap_or_default();
                let mut out = Vec::with_capacity(tail.len().saturating_add(r.to.len()));
                out.extend_from_slice(&r.to);
                out.extend_from_slice(tail);
                Cow::Owned(out)
            }
            None => Cow::Borrowed(key),
        }
    }

    /// `None` when `key` is dropped, else the key to write.
    pub fn apply<'k>(&self, key: &'k [u8]) -> Option<Cow<'k, [u8]>> {
        self.keeps(key).then(|| self.renamed(key))
    }

    /// A permission range `[key, range_end)` after renaming: the key is renamed;
    /// a range end that closes a prefix (`prefix_end(key)`) is recomputed for the
    /// new key, one under a renamed prefix is renamed, and others stay.
    ///
    /// A range whose key a rename to the empty prefix empties starts at `\0`
    /// instead: etcd refuses an empty permission key and writes "every key" as
    /// `["\0", "\0")` (etcdctl's `permRange`); no key sorts below `\0` but the
    /// empty one, which etcd never stores. A single-key permission so emptied
    /// stays empty: it names no key etcd can hold, and callers must refuse it.
    pub fn renamed_range(&self, key: &[u8], range_end: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut new_key = self.renamed(key).into_owned();
        let new_end = if range_end.is_empty() || range_end == [0] {
            range_end.to_vec()
        } else if prefix_end(key).as_deref() == Some(range_end) && self.rename_for(key).is_some() {
            prefix_end(&new_key).unwrap_or_else(|| vec![0])
        } else {
            self.renamed(range_end).into_owned()
        };
        if new_key.is_empty() && !range_end.is_empty() {
            new_key.push(0);
        }
        (new_key, new_end)
    }
}

/// Which flag a rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// `--include PREFIX`.
    Include,
    /// `--exclude PREFIX`.
    Exclude,
    /// `--keep-key KEY`.
    KeepKey,
    /// `--drop-key KEY`.
    DropKey,
    /// `--rename FROM=TO`.
    Rename,
}

impl RuleKind {
    /// The flag's name without dashes (`include`, `keep-key`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Include => "include",
            Self::Exclude => "exclude",
            Self::KeepKey => "keep-key",
            Self::DropKey => "drop-key",
            Self::Rename => "rename",
        }
    }
}

/// One rule and how many keys (one per stored revision or request) it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// The flag.
    pub kind: RuleKind,
    /// The flag's value as given (`FROM=TO` for a rename).
    pub value: Vec<u8>,
    /// Keys it matched: a prefix rule every key under it, a key rule its key,
    /// a rename every kept key it renamed.
    pub matched: u64,
}

impl fmt::Display for RuleMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--{} {}", self.kind.name(), String::from_utf8_lossy(&self.value))
    }
}

/// Counts, per rule of a [`KeyRules`], the keys it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCounter {
    rules: Vec<RuleMatch>,
}

impl RuleCounter {
    /// A counter for every rule of `rules`, in flag order.
    pub fn new(rules: &KeyRules) -> Self {
        let mut v = Vec::new();
        let mut push = |kind, value: &[u8]| v.push(RuleMatch { kind, value: value.to_vec(), matched: 0 });
        rules.include.iter().for_each(|p| push(RuleKind::Include, p));
        rules.exclude.iter().for_each(|p| push(RuleKind::Exclude, p));
        rules.keep_keys.iter().for_each(|k| push(RuleKind::KeepKey, k));
        rules.drop_keys.iter().for_each(|k| push(RuleKind::DropKey, k));
        rules.renames.iter().for_each(|r| push(RuleKind::Rename, &[r.from.as_slice(), b"=", &r.to].concat()));
        Self { rules: v }
    }

    /// Counts one key seen in the input.
    pub fn count(&mut self, rules: &KeyRules, key: &[u8]) {
        let kept = rules.keeps(key);
        let rename = rules.renames.iter().position(|r| key.starts_with(&r.from));
        let mut renames = 0usize;
        for m in &mut self.rules {
            let hit = match m.kind {
                RuleKind::Include | RuleKind::Exclude => key.starts_with(&m.value),
                RuleKind::KeepKey | RuleKind::DropKey => key == m.value.as_slice(),
                RuleKind::Rename => {
                    let this = renames;
                    renames = renames.saturating_add(1);
                    kept && rename == Some(this)
                }
            };
            m.matched = m.matched.saturating_add(u64::from(hit));
        }
    }

    /// Every rule with its count.
    pub fn matches(&self) -> &[RuleMatch] {
        &self.rules
    }

    /// The rules that matched nothing.
    pub fn unmatched(&self) -> Vec<&RuleMatch> {
        self.rules.iter().filter(|m| m.matched == 0).collect()
    }

    /// Consumes the counter.
    pub fn into_matches(self) -> Vec<RuleMatch> {
        self.rules
    }
}

/// A key range `[start, end)`; `end` `None` runs to the end of the key space.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Span {
    fn is_empty(&self) -> bool {
        self.end.as_ref().is_some_and(|e| *e <= self.start)
    }

    /// The keys a rename rule's source holds: those prefixed by `from`.
    fn source(r: &Rename) -> Self {
        Self { start: r.from.clone(), end: prefix_end(&r.from) }
    }

    /// `self` ∩ `other`, when not empty.
    fn intersect(&self, other: &Span) -> Option<Span> {
        let start = self.start.clone().max(other.start.clone());
        let end = match (&self.end, &other.end) {
            (None, e) | (e, None) => e.clone(),
            (Some(a), Some(b)) => Some(a.clone().min(b.clone())),
        };
        let s = Span { start, end };
        (!s.is_empty()).then_some(s)
    }

    /// `self` minus `other`: up to two pieces.
    fn minus(&self, other: &Span) -> Vec<Span> {
        let mut out = Vec::new();
        let left = Span {
            start: self.start.clone(),
            end: Some(match &self.end {
                Some(e) => e.clone().min(other.start.clone()),
                None => other.start.clone(),
            }),
        };
        if !left.is_empty() {
            out.push(left);
        }
        if let Some(oe) = &other.end {
            let right = Span { start: self.start.clone().max(oe.clone()), end: self.end.clone() };
            if !right.is_empty() {
                out.push(right);
            }
        }
        out
    }

    /// The image under `r` of a span inside `r`'s source.
    fn renamed(&self, r: &Rename) -> Span {
        let tail = |k: &[u8]| -> Vec<u8> { [r.to.as_slice(), k.get(r.from.len()..).unwrap_or_default()].concat() };
        let end = if self.end == prefix_end(&r.from) { prefix_end(&r.to) } else { self.end.as_deref().map(tail) };
        Span { start: tail(&self.start), end }
    }

    /// As etcd stores a permission range: `(key, range_end)`, `"\0"` for "to the end" and for an empty start.
    fn into_range(self) -> (Vec<u8>, Vec<u8>) {
        let key = if self.start.is_empty() { vec![0] } else { self.start };
        (key, self.end.unwrap_or_else(|| vec![0]))
    }
}

impl KeyRules {
    /// The ranges an auth permission `[key, range_end)` becomes under the renames.
    ///
    /// Every part of the range inside a rename source (first rule wins, as for
    /// keys) gains that part's renamed image. A range wholly inside the sources
    /// is replaced by its images; one that reaches outside them is kept as it
    /// is, beside the images, so a grant on `/tenant-1/` stays and one on
    /// `/registry/` is added by `/tenant-1/registry/=/registry/`. A range no
    /// rename touches comes back unchanged; single-key permissions (empty
    /// `range_end`) follow [`renamed_range`](Self::renamed_range).
    pub fn renamed_permission(&self, key: &[u8], range_end: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let unchanged = vec![(key.to_vec(), range_end.to_vec())];
        if range_end.is_empty() {
            return vec![self.renamed_range(key, range_end)];
        }
        let whole = Span { start: key.to_vec(), end: (range_end != [0]).then(|| range_end.to_vec()) };
        if whole.is_empty() {
            return unchanged;
        }
        let mut rest = vec![whole];
        let mut images = Vec::new();
        for r in &self.renames {
            let src = Span::source(r);
            let mut next = Vec::new();
            for piece in rest {
                match piece.intersect(&src) {
                    Some(inside) => {
                        images.push(inside.renamed(r).into_range());
                        next.extend(piece.minus(&src));
                    }
                    None => next.push(piece),
                }
            }
            rest = next;
        }
        if images.is_empty() {
            return unchanged;
        }
        if !rest.is_empty() {
            images.insert(0, (key.to_vec(), range_end.to_vec()));
        }
        images
    }
}

/// The end of the range of keys prefixed by `prefix` (etcd's `GetPrefixRangeEnd`):
/// the prefix with its last byte below 0xff incremented and the rest cut; `None`
/// when every byte is 0xff (the range then runs to the end, written `\0`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let i = prefix.iter().rposition(|&b| b < 0xff)?;
    let mut end = prefix.get(..=i)?.to_vec();
    // The byte at `i` is below 0xff: incrementing it cannot overflow.
    let last = end.last_mut()?;
    *last = last.saturating_add(1);
    Some(end)
}

/// How Kubernetes stored a value, from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Encryption<'a> {
    /// `k8s:enc:<provider>:…` with this provider name.
    Provider(&'a str),
}

impl Encryption<'_> {
    /// Whether the ciphertext authenticates the etcd key, so it cannot be read
    /// under another key (AES-GCM and KMS providers use the key as additional data).
    pub fn key_bound(&self) -> bool {
        let Self::Provider(p) = self;
        matches!(*p, "aesgcm" | "kms")
    }
}

impl fmt::Display for Encryption<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self::Provider(p) = self;
        f.write_str(p)
    }
}

/// The encryption provider of a value written by kube-apiserver, if any.
pub fn encryption(value: &[u8]) -> Option<Encryption<'_>> {
    let rest = value.strip_prefix(b"k8s:enc:")?;
    let end = rest.iter().position(|&b| b == b':')?;
    let name = std::str::from_utf8(rest.get(..end)?).ok()?;
    (!name.is_empty()).then_some(Encryption::Provider(name))
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    fn rules() -> KeyRules {
        KeyRules {
            include: vec![b"/tenant-1/".to_vec()],
            exclude: vec![b"/tenant-1/registry/events/".to_vec()],
            keep_keys: vec![b"compact_rev_key".to_vec()],
            drop_keys: vec![],
            renames: vec![Rename::parse("/tenant-1/registry/=/registry/").unwrap()],
        }
    }

    #[test]
    fn filter_then_rename() {
        let r = rules();
        assert_eq!(r.apply(b"/tenant-1/registry/pods/a").as_deref(), Some(&b"/registry/pods/a"[..]));
        assert_eq!(r.apply(b"/tenant-1/other").as_deref(), Some(&b"/tenant-1/other"[..]));
        assert_eq!(r.apply(b"/tenant-1/registry/events/x"), None);
        assert_eq!(r.apply(b"/tenant-2/registry/pods/a"), None);
        assert_eq!(r.apply(b"compact_rev_key").as_deref(), Some(&b"compact_rev_key"[..]));
        assert!(KeyRules::default().keeps(b"anything"));
    }

    #[test]
    fn permission_ranges_follow_renames() {
        let r = rules();
        // A --prefix permission on the renamed prefix.
        assert_eq!(
            r.renamed_range(b"/tenant-1/registry/", b"/tenant-1/registry0"),
            (b"/registry/".to_vec(), b"/registry0".to_vec())
        );
        // A single key.
        assert_eq!(r.renamed_range(b"/tenant-1/registry/x", b""), (b"/registry/x".to_vec(), b"".to_vec()));
        // Open-ended.
        assert_eq!(r.renamed_range(b"/tenant-1/registry/a", b"\0"), (b"/registry/a".to_vec(), b"\0".to_vec()));
        // Outside the rename.
        assert_eq!(r.renamed_range(b"/tenant-2/", b"/tenant-20"), (b"/tenant-2/".to_vec(), b"/tenant-20".to_vec()));
    }

    #[test]
    fn permissions_overlapping_a_rename_source_gain_its_image() {
        let r = rules();
        // A tenant's prefix grant holds the source: kept, and the image added.
        assert_eq!(
            r.renamed_permission(b"/tenant-1/", b"/tenant-10"),
            vec![(b"/tenant-1/".to_vec(), b"/tenant-10".to_vec()), (b"/registry/".to_vec(), b"/registry0".to_vec())]
        );
        // Wholly inside: replaced.
        assert_eq!(
            r.renamed_permission(b"/tenant-1/registry/pods/", b"/tenant-1/registry/pods0"),
            vec![(b"/registry/pods/".to_vec(), b"/registry/pods0".to_vec())]
        );
        // Straddling the start of the source: kept, plus the image of the part inside.
        assert_eq!(
            r.renamed_permission(b"/tenant-1/a", b"/tenant-1/registry/m"),
            vec![
                (b"/tenant-1/a".to_vec(), b"/tenant-1/registry/m".to_vec()),
                (b"/registry/".to_vec(), b"/registry/m".to_vec())
            ]
        );
        // Straddling the end, and an open-ended range.
        assert_eq!(
            r.renamed_permission(b"/tenant-1/registry/x", b"\0"),
            vec![(b"/tenant-1/registry/x".to_vec(), b"\0".to_vec()), (b"/registry/x".to_vec(), b"/registry0".to_vec())]
        );
        // Every key.
        assert_eq!(r.renamed_permission(b"\0", b"\0").len(), 2);
        // Untouched, and single keys.
        assert_eq!(
            r.renamed_permission(b"/tenant-2/", b"/tenant-20"),
            vec![(b"/tenant-2/".to_vec(), b"/tenant-20".to_vec())]
        );
        assert_eq!(r.renamed_permission(b"/tenant-1/registry/k", b""), vec![(b"/registry/k".to_vec(), Vec::new())]);
        // Two renames inside one range: both images, first rule wins where sources nest.
        let two = KeyRules {
            renames: vec![Rename::parse("/t/a/x/=/q/").unwrap(), Rename::parse("/t/a/=/p/").unwrap()],
            ..KeyRules::default()
        };
        assert_eq!(
            two.renamed_permission(b"/t/a/", b"/t/a0"),
            vec![
                (b"/q/".to_vec(), b"/q0".to_vec()),
                (b"/p/".to_vec(), b"/p/x/".to_vec()),
                (b"/p/x0".to_vec(), b"/p0".to_vec())
            ]
        );
        // Renamed to the empty prefix: every key, as etcdctl writes it.
        let empty = KeyRules { renames: vec![Rename::parse("/tenant-1/=").unwrap()], ..KeyRules::default() };
        assert_eq!(empty.renamed_permission(b"/tenant-1/", b"/tenant-10"), vec![(b"\0".to_vec(), b"\0".to_vec())]);
    }

    #[test]
    fn permission_ranges_renamed_to_the_empty_prefix() {
        let r = KeyRules { renames: vec![Rename::parse("/tenant-1/=").unwrap()], ..KeyRules::default() };
        // The whole prefix becomes every key, as etcdctl writes it (never an empty key).
        assert_eq!(r.renamed_range(b"/tenant-1/", b"/tenant-10"), (b"\0".to_vec(), b"\0".to_vec()));
        assert_eq!(r.renamed_range(b"/tenant-1/", b"\0"), (b"\0".to_vec(), b"\0".to_vec()));
        assert_eq!(r.renamed_range(b"/tenant-1/", b"/tenant-1/m"), (b"\0".to_vec(), b"m".to_vec()));
        // A single key emptied stays empty, for the caller to refuse.
        assert_eq!(r.renamed_range(b"/tenant-1/", b""), (b"".to_vec(), b"".to_vec()));
        assert_eq!(r.renamed_range(b"/tenant-1/a", b""), (b"a".to_vec(), b"".to_vec()));
    }

    #[test]
    fn prefix_end_matches_etcd() {
        assert_eq!(prefix_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }

    #[test]
    fn encryption_providers() {
        assert_eq!(encryption(b"k8s:enc:aesgcm:v1:key1:\x01\x02"), Some(Encryption::Provider("aesgcm")));
        assert!(encryption(b"k8s:enc:kms:v2:x").unwrap().key_bound());
        assert!(!encryption(b"k8s:enc:aescbc:v1:k:x").unwrap().key_bound());
        assert_eq!(encryption(b"{\"kind\":\"Secret\"}"), None);
        assert_eq!(encryption(b"k8s:enc:"), None);
    }

    #[test]
    fn rule_counter_counts_each_rule() {
        let mut r = rules();
        r.include.push(b"/tenant-x/".to_vec());
        let mut c = RuleCounter::new(&r);
        for k in [&b"/tenant-1/registry/pods/a"[..], b"/tenant-1/registry/events/e", b"compact_rev_key", b"/tenant-2/a"]
        {
            c.count(&r, k);
        }
        let got: Vec<(String, u64)> = c.matches().iter().map(|m| (m.to_string(), m.matched)).collect();
        assert_eq!(
            got,
            vec![
                ("--include /tenant-1/".to_string(), 2),
                ("--include /tenant-x/".to_string(), 0),
                ("--exclude /tenant-1/registry/events/".to_string(), 1),
                ("--keep-key compact_rev_key".to_string(), 1),
                ("--rename /tenant-1/registry/=/registry/".to_string(), 1),
            ]
        );
        assert_eq!(c.unmatched().len(), 1);
    }

    #[test]
    fn rename_parse() {
        assert!(Rename::parse("nofrom").is_err());
        assert!(Rename::parse("=x").is_err());
        assert_eq!(Rename::parse("/a/=").unwrap().to, b"".to_vec());
    }
}
