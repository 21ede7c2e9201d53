//! The WAL's view of the shared protobuf wire cursor
//! ([`etcdsnap_proto::wire`]) for the records its reader decodes on its hot
//! path (`walpb.Record`, `raftpb.Entry`) without copying: field numbers as
//! u32, errors as the WAL's corruption kinds.

use etcdsnap_proto::wire::WireErrorKind;
pub(crate) use etcdsnap_proto::wire::{put_varint, Value};

/// Why a message did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireError {
    Truncated,
    BadVarint,
    BadWireType(u8),
    BadField,
    WrongType(u32),
}

impl From<etcdsnap_proto::wire::WireError> for WireError {
    fn from(e: etcdsnap_proto::wire::WireError) -> Self {
        match e.kind {
            WireErrorKind::Truncated => WireError::Truncated,
            WireErrorKind::VarintTooLong => WireError::BadVarint,
            WireErrorKind::WireType(w) => WireError::BadWireType(w),
            WireErrorKind::FieldZero(_) => WireError::BadField,
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Truncated => write!(f, "protobuf message truncated"),
            WireError::BadVarint => write!(f, "protobuf varint overflows 64 bits"),
            WireError::BadWireType(w) => write!(f, "unsupported protobuf wire type {w}"),
            WireError::BadField => write!(f, "protobuf field number 0"),
            WireError::WrongType(n) => write!(f, "protobuf field {n} has the wrong wire type"),
        }
    }
}

/// Reads a base-128 varint at `*pos` ([`etcdsnap_proto::wire::varint`]).
#[cfg(test)]
pub(crate) fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    Ok(etcdsnap_proto::wire::varint(buf, pos)?)
}

/// Iterates `(field number, value)` over one message (the shared cursor,
/// [`etcdsnap_proto::wire::Fields`], with field numbers as the WAL's u32).
pub(crate) struct Fields<'a>(etcdsnap_proto::wire::Fields<'a>);

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self(etcdsnap_proto::wire::Fields::new(buf))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.0.next()? {
            Ok((n, v)) => u32::try_from(n).map(|n| (n, v)).map_err(|_| WireError::BadField),
            Err(e) => Err(e.into()),
        })
    }
}

/// The low 32 bits of a varint value, little-endian, as gogo keeps them for 32-bit fields.
pub(crate) fn low32(v: u64) -> [u8; 4] {
    let [a, b, c, d, ..] = v.to_le_bytes();
    [a, b, c, d]
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_bounds() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut p = 0;
            assert_eq!(varint(&b, &mut p), Ok(v));
            assert_eq!(p, b.len());
        }
        assert_eq!(varint(&[0x80], &mut 0), Err(WireError::Truncated));
        assert_eq!(varint(&[0xff; 11], &mut 0), Err(WireError::BadVarint));
        assert!(Fields::new(&[0x0a, 0x05, 1]).next().unwrap().is_err());
    }

    #[test]
    fn fields_reject_bad_input() {
        assert!(Fields::new(&[0x0a, 0x05, 1]).next().unwrap().is_err());
        assert!(Fields::new(&[0x0b]).next().unwrap().is_err());
        assert!(Fields::new(&[0x00, 0x00]).next().unwrap().is_err());
    }
}
