//! Zero-copy decoding of `mvccpb.KeyValue` values, and their encoding.
//!
//! Scans go through every value of the `key` bucket; decoding them into owned
//! structs would copy every value. [`KvRef`] borrows key and value from the file.

use etcdsnap_proto::mvccpb::KeyValue;
use etcdsnap_proto::wire::{put_varint, varint, varint_len, Fields, Value, WireError, WireErrorKind};

/// A `mvccpb.KeyValue` borrowed from the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KvRef<'a> {
    /// `key` (1).
    pub key: &'a [u8],
    /// `create_revision` (2).
    pub create_revision: i64,
    /// `mod_revision` (3).
    pub mod_revision: i64,
    /// `version` (4).
    pub version: i64,
    /// `value` (5).
    pub value: &'a [u8],
    /// `lease` (6).
    pub lease: i64,
}

/// Why bytes are not a `KeyValue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The bytes end inside a field.
    #[error("truncated protobuf at byte {0}")]
    Truncated(usize),
    /// A varint longer than 10 bytes.
    #[error("overlong varint at byte {0}")]
    Varint(usize),
    /// A wire type a KeyValue field cannot have, or a reserved one.
    #[error("field {field} has wire type {wire} at byte {at}")]
    WireType {
        /// Field number.
        field: u64,
        /// Wire type.
        wire: u8,
        /// Offset.
        at: usize,
    },
}

impl From<WireError> for KvError {
    fn from(e: WireError) -> Self {
        match e.kind {
            WireErrorKind::Truncated => KvError::Truncated(e.offset),
            WireErrorKind::VarintTooLong => KvError::Varint(e.offset),
            WireErrorKind::WireType(wire) => KvError::WireType { field: 0, wire, at: e.offset },
            WireErrorKind::FieldZero(wire) => KvError::WireType { field: 0, wire, at: e.offset },
        }
    }
}

/// [`KvRef::key_of`] for values holding only single-byte tags of the six
/// `KeyValue` fields with their proper wire types; `None` for anything else
/// (including every error), which `parse` then decides. Later fields win, as
/// in `parse`.
fn key_fast(b: &[u8]) -> Option<&[u8]> {
    let mut key: &[u8] = &[];
    let mut pos = 0usize;
    while let Some(&tag) = b.get(pos) {
        pos = pos.checked_add(1)?;
        match tag {
            0x0a | 0x2a => {
                let len = usize::try_from(varint(b, &mut pos).ok()?).ok()?;
                let end = pos.checked_add(len)?;
                let bytes = b.get(pos..end)?;
                if tag == 0x0a {
                    key = bytes;
                }
                pos = end;
            }
            0x10 | 0x18 | 0x20 | 0x30 => {
                varint(b, &mut pos).ok()?;
            }
            _ => return None,
        }
    }
    Some(key)
}

impl<'a> KvRef<'a> {
    /// Decodes `b` as proto3 `KeyValue`, skipping unknown fields; later fields win.
    pub fn parse(b: &'a [u8]) -> Result<Self, KvError> {
        let mut kv = Self::default();
        let mut fields = Fields::new(b);
        loop {
            let at = fields.offset();
            let Some(f) = fields.next() else { return Ok(kv) };
            let wrong = |field: u64, wire: u8| KvError::WireType { field, wire, at };
            let f = f.map_err(|e| match e.kind {
                // Name the field whose tag carried the wire type.
                WireErrorKind::WireType(wire) | WireErrorKind::FieldZero(wire) => {
                    wrong(varint(b, &mut e.offset.clone()).map_or(0, |tag| tag >> 3), wire)
                }
                _ => KvError::from(e),
            })?;
            match f {
                (1, Value::Bytes(v)) => kv.key = v,
                (5, Value::Bytes(v)) => kv.value = v,
                // Two's complement, as protobuf encodes a negative int64.
                (2, Value::Varint(v)) => kv.create_revision = v as i64,
                (3, Value::Varint(v)) => kv.mod_revision = v as i64,
                (4, Value::Varint(v)) => kv.version = v as i64,
                (6, Value::Varint(v)) => kv.lease = v as i64,
                (field @ (1 | 5), Value::Varint(_)) => return Err(wrong(field, 0)),
                (field @ (2 | 3 | 4 | 6), Value::Bytes(_)) => return Err(wrong(field, 2)),
                _ => {}
            }
        }
    }

    /// The `key` field alone, as [`parse`](Self::parse) would decode it (empty
    /// when `b` is not a `KeyValue`). A key space holds only the stored value
    /// and finds, hashes and sorts by its key through this, once per probe or
    /// comparison: the common shape (fields 1 to 6 as etcd writes them) is
    /// walked without decoding the numbers, anything else goes through `parse`.
    pub fn key_of(b: &'a [u8]) -> &'a [u8] {
        match key_fast(b) {
            Some(key) => key,
            None => Self::parse(b).map(|kv| kv.key).unwrap_or_default(),
        }
    }

    /// An owned `KeyValue` with the same fields.
    pub fn to_owned(&self) -> KeyValue {
        KeyValue {
            key: self.key.to_vec(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: self.value.to_vec(),
            lease: self.lease,
        }
    }
}

/// Encodes a `KeyValue` exactly as etcd's gogo marshaler does (fields in order,
/// zero values omitted) into `out`, with `key` in place of `kv.key`.
pub fn encode_with_key(kv: &KvRef<'_>, key: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if !key.is_empty() {
        out.push(0x0a);
        put_varint(out, key.len() as u64);
        out.extend_from_slice(key);
    }
    for (tag, v) in [(0x10u8, kv.create_revision), (0x18, kv.mod_revision), (0x20, kv.version)] {
        if v != 0 {
            out.push(tag);
            // Protobuf encodes a negative int64 as its two's complement (10 bytes).
            put_varint(out, u64::from_ne_bytes(v.to_ne_bytes()));
        }
    }
    if !kv.value.is_empty() {
        out.push(0x2a);
        put_varint(out, kv.value.len() as u64);
        out.extend_from_slice(kv.value);
    }
    if kv.lease != 0 {
        out.push(0x30);
        put_varint(out, u64::from_ne_bytes(kv.lease.to_ne_bytes()));
    }
}

/// The length [`encode_with_key`] gives `kv` under a key of `key_len` bytes,
/// without encoding it (a rebuild lays its pages out from lengths alone).
pub fn encoded_len_with_key(kv: &KvRef<'_>, key_len: usize) -> usize {
    let field = |len: usize| 1usize.saturating_add(varint_len(len as u64)).saturating_add(len);
    let mut n = if key_len == 0 { 0 } else { field(key_len) };
    for v in [kv.create_revision, kv.mod_revision, kv.version, kv.lease] {
        if v != 0 {
            n = n.saturating_add(1).saturating_add(varint_len(u64::from_ne_bytes(v.to_ne_bytes())));
        }
    }
    if !kv.value.is_empty() {
        n = n.saturating_add(field(kv.value.len()));
    }
    n
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;
    use etcdsnap_proto::Message;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn agrees_with_prost(key in prop::collection::vec(any::<u8>(), 0..40), value in prop::collection::vec(any::<u8>(), 0..300),
                             c in any::<i64>(), m in any::<i64>(), v in any::<i64>(), l in any::<i64>()) {
            let kv = KeyValue { key, create_revision: c, mod_revision: m, version: v, value, lease: l };
            let bytes = kv.encode_to_vec();
            let r = KvRef::parse(&bytes).unwrap();
            prop_assert_eq!(r.to_owned(), kv.clone());
            let mut again = Vec::new();
            encode_with_key(&r, r.key, &mut again);
            prop_assert_eq!(encoded_len_with_key(&r, r.key.len()), again.len());
            prop_assert_eq!(again, bytes);
        }

        #[test]
        fn key_of_agrees_with_parse(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(KvRef::key_of(&bytes), KvRef::parse(&bytes).map(|kv| kv.key).unwrap_or_default());
        }

        #[test]
        fn key_of_finds_encoded_keys(key in prop::collection::vec(any::<u8>(), 0..40), value in prop::collection::vec(any::<u8>(), 0..300),
                                     c in any::<i64>(), l in any::<i64>(), tail in prop::collection::vec(any::<u8>(), 0..8)) {
            let kv = KeyValue { key: key.clone(), create_revision: c, mod_revision: c, version: 1, value, lease: l };
            let mut bytes = kv.encode_to_vec();
            prop_assert_eq!(KvRef::key_of(&bytes), key.as_slice());
            // Whatever follows (a second key field, unknown fields, garbage), parse decides.
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(KvRef::key_of(&bytes), KvRef::parse(&bytes).map(|kv| kv.key).unwrap_or_default());
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let ours = KvRef::parse(&bytes);
            // Where prost accepts, we agree on the fields.
            if let (Ok(a), Ok(b)) = (ours, KeyValue::decode(&bytes[..])) {
                prop_assert_eq!(a.to_owned(), b);
            }
        }
    }

    #[test]
    fn key_of_takes_the_last_key_field() {
        // Two key fields: the later wins, in both decoders; fixed64 field 7 forces the slow path.
        assert_eq!(KvRef::key_of(b"\x0a\x01a\x10\x02\x0a\x02bc"), b"bc");
        assert_eq!(KvRef::key_of(b"\x0a\x01a\x39\x00\x00\x00\x00\x00\x00\x00\x00\x0a\x01d"), b"d");
        assert_eq!(KvRef::key_of(b"\x0a\x05ab"), b"");
        assert_eq!(KvRef::key_of(b""), b"");
    }

    #[test]
    fn empty_value_is_an_empty_keyvalue() {
        assert_eq!(KvRef::parse(b""), Ok(KvRef::default()));
    }
}
