//! Revision keys of the `key` bucket: 8-byte big-endian main, `_`, 8-byte
//! big-endian sub, and a trailing `t` on tombstones (etcd's `revision` /
//! `BucketKey`).

use std::fmt;

/// Length of a revision key (`revBytesLen`).
pub const REV_BYTES_LEN: usize = 17;
/// Length of a tombstone's revision key (`markedRevBytesLen`).
pub const MARKED_REV_BYTES_LEN: usize = 18;
/// The tombstone mark (`markTombstone`).
pub const MARK_TOMBSTONE: u8 = b't';

/// A store revision: the main revision of a write transaction and the index
/// of the change within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    /// Main revision (one per write transaction).
    pub main: i64,
    /// Sub revision (0-based index of the change within the transaction).
    pub sub: i64,
}

impl Revision {
    /// A revision.
    pub fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }

    /// The 17 bytes etcd stores (`revToBytes`).
    pub fn to_bytes(self) -> [u8; REV_BYTES_LEN] {
        // etcd writes the int64s' two's-complement bytes, big-endian.
        let mut b = [0u8; REV_BYTES_LEN];
        let (main, rest) = b.split_at_mut(8);
        main.copy_from_slice(&self.main.to_be_bytes());
        if let Some((sep, sub)) = rest.split_first_mut() {
            *sep = b'_';
            sub.copy_from_slice(&self.sub.to_be_bytes());
        }
        b
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.main, self.sub)
    }
}

/// A key of the `key` bucket: a revision, and whether it records a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketKey {
    /// The revision.
    pub rev: Revision,
    /// Whether the key carries the tombstone mark.
    pub tombstone: bool,
}

/// Why bytes are not a revision key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevisionError {
    /// Neither 17 nor 18 bytes.
    #[error("revision key of {0} bytes (want 17, or 18 for a tombstone)")]
    Length(usize),
    /// Byte 8 is not `_`.
    #[error("revision key without '_' separator")]
    Separator,
    /// An 18-byte key whose last byte is not `t`.
    #[error("revision key with unknown mark {0:#04x}")]
    Mark(u8),
    /// Main or sub revision does not fit a non-negative int64.
    #[error("negative revision")]
    Negative,
}

impl BucketKey {
    /// Decodes a `key`-bucket key strictly (etcd 3.6's `BytesToBucketKey`).
    pub fn parse(b: &[u8]) -> Result<Self, RevisionError> {
        let tombstone = match b.len() {
            REV_BYTES_LEN => false,
            MARKED_REV_BYTES_LEN => match b.get(17) {
                Some(&MARK_TOMBSTONE) => true,
                Some(&m) => return Err(RevisionError::Mark(m)),
                None => return Err(RevisionError::Length(b.len())),
            },
            n => return Err(RevisionError::Length(n)),
        };
        if b.get(8) != Some(&b'_') {
            return Err(RevisionError::Separator);
        }
        let main = be_i64(b, 0).ok_or(RevisionError::Length(b.len()))?;
        let sub = be_i64(b, 9).ok_or(RevisionError::Length(b.len()))?;
        if main < 0 || sub < 0 {
            return Err(RevisionError::Negative);
        }
        Ok(Self { rev: Revision { main, sub }, tombstone })
    }

    /// The main revision as etcd ≤3.5's lenient `bytesToRev` reads it (first 8 bytes),
    /// used where etcd itself does no validation (`snapshot status`).
    pub fn lenient_main(b: &[u8]) -> i64 {
        be_i64(b, 0).unwrap_or(0)
    }

    /// The bytes etcd stores for this key.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut v = self.rev.to_bytes().to_vec();
        if self.tombstone {
            v.push(MARK_TOMBSTONE);
        }
        v
    }
}

fn be_i64(b: &[u8], off: usize) -> Option<i64> {
    let bytes: [u8; 8] = b.get(off..off.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes) as i64)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_bytes() {
        let k = BucketKey { rev: Revision::new(2, 1), tombstone: true };
        assert_eq!(k.to_bytes(), b"\0\0\0\0\0\0\0\x02_\0\0\0\0\0\0\0\x01t");
        assert_eq!(BucketKey::parse(&k.to_bytes()), Ok(k));
        assert_eq!(BucketKey::parse(b"short"), Err(RevisionError::Length(5)));
        let mut bad = k.to_bytes();
        bad[8] = b'-';
        assert_eq!(BucketKey::parse(&bad), Err(RevisionError::Separator));
        bad[8] = b'_';
        bad[17] = b'x';
        assert_eq!(BucketKey::parse(&bad), Err(RevisionError::Mark(b'x')));
        let neg = BucketKey { rev: Revision::new(-1, 0), tombstone: false }.to_bytes();
        assert_eq!(BucketKey::parse(&neg), Err(RevisionError::Negative));
    }

    proptest! {
        #[test]
        fn round_trip_and_order(a in (0i64..i64::MAX, 0i64..i64::MAX, any::<bool>()), b in (0i64..i64::MAX, 0i64..i64::MAX, any::<bool>())) {
            let ka = BucketKey { rev: Revision::new(a.0, a.1), tombstone: a.2 };
            let kb = BucketKey { rev: Revision::new(b.0, b.1), tombstone: b.2 };
            let (ba, bb) = (ka.to_bytes(), kb.to_bytes());
            prop_assert_eq!(BucketKey::parse(&ba), Ok(ka));
            prop_assert_eq!(ba.len(), if a.2 { 18 } else { 17 });
            // Byte order of the keys is revision order (what the bucket relies on).
            if ka.rev != kb.rev {
                prop_assert_eq!(ba.cmp(&bb), ka.rev.cmp(&kb.rev));
            }
        }
    }
}
