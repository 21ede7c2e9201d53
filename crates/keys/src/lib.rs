//! Rules on etcd user keys shared by the snapshot rewrite and the WAL rewrite:
//! which keys a filter keeps, what a rename turns them into, and which values
//! Kubernetes encrypted in a way bound to the key; and what kube-apiserver
//! stored in a value ([`kube`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod kube;

use std::borrow::Cow;
use std::fmt;

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
    #[error("key {0:?} is both in --keep-key and --drop-key")]
    Conflict(String),
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

    /// The rename rule that applies to `key`, if any.
    pub fn rename_for(&self, key: &[u8]) -> Option<&Rename> {
        self.renames.iter().find(|r| key.starts_with(&r.from))
    }

    /// `key` after renaming (borrowed when no rule applies).
    pub fn renamed<'k>(&self, key: &'k [u8]) -> Cow<'k, [u8]> {
        match self.rename_for(key) {
            Some(r) => {
                let mut out = Vec::with_capacity(key.len() - r.from.len() + r.to.len());
                out.extend_from_slice(&r.to);
                out.extend_from_slice(&key[r.from.len()..]);
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

/// The end of the range of keys prefixed by `prefix` (etcd's `GetPrefixRangeEnd`):
/// the prefix with its last byte below 0xff incremented and the rest cut; `None`
/// when every byte is 0xff (the range then runs to the end, written `\0`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let i = prefix.iter().rposition(|&b| b < 0xff)?;
    let mut end = prefix[..=i].to_vec();
    end[i] += 1;
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
    fn rename_parse() {
        assert!(Rename::parse("nofrom").is_err());
        assert!(Rename::parse("=x").is_err());
        assert_eq!(Rename::parse("/a/=").unwrap().to, b"".to_vec());
    }
}
