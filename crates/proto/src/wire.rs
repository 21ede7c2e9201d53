//! The one panic-free protobuf wire cursor of etcdsnap: the hand decoders
//! that must not copy (`mvccpb.KeyValue` values on every scan, WAL records
//! on the WAL reader's hot path, Kubernetes object metadata) walk their
//! messages field by field through [`Fields`], borrowing length-delimited
//! payloads from the input. Every error names the byte offset of the field
//! (or varint) where it happened.
//!
//! Varints are read as gogo-protobuf's generated unmarshalers read them
//! (what etcd runs): at most ten bytes, the bits of a tenth byte beyond the
//! 64th fall off; an eleventh byte is an error.

use std::fmt;

/// One decoded field value, borrowing length-delimited payloads from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1, little-endian.
    Fixed64(u64),
    /// Wire type 2.
    Bytes(&'a [u8]),
    /// Wire type 5, little-endian.
    Fixed32(u32),
}

/// What is wrong with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireErrorKind {
    /// The bytes end inside a varint or a field.
    Truncated,
    /// A varint longer than ten bytes.
    VarintTooLong,
    /// A wire type protobuf does not define or etcd never writes (groups: 3, 4).
    WireType(u8),
    /// Field number 0 (with the wire type it came with).
    FieldZero(u8),
}

/// Why a message did not decode, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError {
    /// What is wrong.
    pub kind: WireErrorKind,
    /// Byte offset (in the message) of the field or varint concerned.
    pub offset: usize,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.offset;
        match self.kind {
            WireErrorKind::Truncated => write!(f, "protobuf message truncated at byte {at}"),
            WireErrorKind::VarintTooLong => write!(f, "protobuf varint longer than 10 bytes at byte {at}"),
            WireErrorKind::WireType(w) => write!(f, "unsupported protobuf wire type {w} at byte {at}"),
            WireErrorKind::FieldZero(_) => write!(f, "protobuf field number 0 at byte {at}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Reads a base-128 varint at `*pos`, advancing it.
pub fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let start = *pos;
    let mut v: u64 = 0;
    for i in 0..10u32 {
        let b = *buf.get(*pos).ok_or(WireError { kind: WireErrorKind::Truncated, offset: start })?;
        *pos = pos.saturating_add(1);
        // i < 10: the shift is at most 63; higher bits fall off, as in gogo.
        v |= u64::from(b & 0x7f).wrapping_shl(7u32.saturating_mul(i));
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(WireError { kind: WireErrorKind::VarintTooLong, offset: start })
}

/// Bytes of `v` as a varint.
pub fn varint_len(v: u64) -> usize {
    (64usize.saturating_sub(v.leading_zeros() as usize)).div_ceil(7).max(1)
}

/// Appends `v` as a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        // The low seven bits, with the continuation bit.
        out.push(v.to_le_bytes()[0] | 0x80);
        v >>= 7;
    }
    out.push(v.to_le_bytes()[0]);
}

/// The fields of one message in order, `(field number, value)`; after an
/// error the iteration ends.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    /// The fields of the message `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Offset of the next field.
    pub fn offset(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize, at: usize) -> Result<&'a [u8], WireError> {
        let truncated = WireError { kind: WireErrorKind::Truncated, offset: at };
        let end = self.pos.checked_add(n).ok_or(truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn field(&mut self) -> Result<(u64, Value<'a>), WireError> {
        let at = self.pos;
        let key = varint(self.buf, &mut self.pos)?;
        let (number, wire) = (key >> 3, (key & 7) as u8);
        if number == 0 {
            return Err(WireError { kind: WireErrorKind::FieldZero(wire), offset: at });
        }
        let value = match wire {
            0 => Value::Varint(varint(self.buf, &mut self.pos)?),
            1 => Value::Fixed64(u64::from_le_bytes(self.take(8, at)?.try_into().unwrap_or_default())),
            2 => {
                let len = varint(self.buf, &mut self.pos)?;
                let len = usize::try_from(len).map_err(|_| WireError { kind: WireErrorKind::Truncated, offset: at })?;
                Value::Bytes(self.take(len, at)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.take(4, at)?.try_into().unwrap_or_default())),
            w => return Err(WireError { kind: WireErrorKind::WireType(w), offset: at }),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let r = self.field();
        if r.is_err() {
            self.pos = self.buf.len();
        }
        Some(r)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varints_as_gogo_reads_them() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(varint_len(v), b.len());
            let mut p = 0;
            assert_eq!(varint(&b, &mut p), Ok(v));
            assert_eq!(p, b.len());
        }
        assert_eq!(varint(&[0x80], &mut 0).unwrap_err().kind, WireErrorKind::Truncated);
        let mut at = 3;
        assert_eq!(
            varint(&[0, 0, 0, 0xff, 0xff], &mut at),
            Err(WireError { kind: WireErrorKind::Truncated, offset: 3 })
        );
        assert_eq!(varint(&[0xff; 11], &mut 0).unwrap_err().kind, WireErrorKind::VarintTooLong);
        // A tenth byte's bits past the 64th fall off.
        let mut ten = vec![0xff; 9];
        ten.push(0x7f);
        assert_eq!(varint(&ten, &mut 0), Ok(u64::MAX));
    }

    #[test]
    fn fields_name_where_they_fail() {
        let e = Fields::new(&[0x08, 0x01, 0x0a, 0x05, 1]).nth(1).unwrap().unwrap_err();
        assert_eq!(e, WireError { kind: WireErrorKind::Truncated, offset: 2 });
        assert_eq!(Fields::new(&[0x0b]).next().unwrap().unwrap_err().kind, WireErrorKind::WireType(3));
        assert_eq!(Fields::new(&[0x02, 0x00]).next().unwrap().unwrap_err().kind, WireErrorKind::FieldZero(2));
        // A tag whose value should start where the message ends: truncated at the end.
        assert_eq!(
            Fields::new(&[0x48]).next().unwrap().unwrap_err(),
            WireError { kind: WireErrorKind::Truncated, offset: 1 }
        );
        let mut f = Fields::new(&[0x0a, 0x05, 1]);
        assert!(f.next().unwrap().is_err() && f.next().is_none(), "iteration ends after an error");
    }

    proptest! {
        /// What prost encodes decodes field by field to the same values.
        #[test]
        fn decodes_what_prost_encodes(key in proptest::collection::vec(any::<u8>(), 0..40), rev in any::<i64>(),
                                      value in proptest::collection::vec(any::<u8>(), 0..200), lease in any::<i64>()) {
            use prost::Message;
            let kv = crate::mvccpb::KeyValue { key, create_revision: rev, mod_revision: rev, version: 1, value, lease };
            let bytes = kv.encode_to_vec();
            let mut got = crate::mvccpb::KeyValue::default();
            for f in Fields::new(&bytes) {
                match f.unwrap() {
                    (1, Value::Bytes(b)) => got.key = b.to_vec(),
                    (2, Value::Varint(v)) => got.create_revision = v as i64,
                    (3, Value::Varint(v)) => got.mod_revision = v as i64,
                    (4, Value::Varint(v)) => got.version = v as i64,
                    (5, Value::Bytes(b)) => got.value = b.to_vec(),
                    (6, Value::Varint(v)) => got.lease = v as i64,
                    other => prop_assert!(false, "unexpected field {other:?}"),
                }
            }
            prop_assert_eq!(got, kv);
        }

        /// No bytes make it panic, and every error offset lies in the message or
        /// at its end (a value that should start where the message stops).
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            for f in Fields::new(&bytes) {
                if let Err(e) = f {
                    prop_assert!(e.offset <= bytes.len(), "offset {} past a {}-byte message", e.offset, bytes.len());
                }
            }
        }
    }
}
