//! A minimal, panic-free protobuf wire cursor for the records the WAL reader
//! decodes on its hot path (`walpb.Record`, `raftpb.Entry`) without copying.

/// One decoded field value, borrowing length-delimited payloads from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Why a message did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireError {
    Truncated,
    BadVarint,
    BadWireType(u8),
    BadField,
    WrongType(u32),
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

/// Reads a base-128 varint at `*pos`.
pub(crate) fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, WireError> {
    let mut v: u64 = 0;
    for i in 0..10u32 {
        let b = *buf.get(*pos).ok_or(WireError::Truncated)?;
        *pos = pos.saturating_add(1);
        if i == 9 && b > 1 {
            return Err(WireError::BadVarint);
        }
        // i < 10: the shift is at most 63.
        v |= u64::from(b & 0x7f).wrapping_shl(7u32.saturating_mul(i));
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(WireError::BadVarint)
}

/// Iterates `(field number, value)` over one message.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let key = varint(self.buf, &mut self.pos)?;
        let number = u32::try_from(key >> 3).map_err(|_| WireError::BadField)?;
        if number == 0 {
            return Err(WireError::BadField);
        }
        let value = match (key & 7) as u8 {
            0 => Value::Varint(varint(self.buf, &mut self.pos)?),
            1 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let len = varint(self.buf, &mut self.pos)?;
                let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                Value::Fixed32(u32::from_le_bytes(a))
            }
            w => return Err(WireError::BadWireType(w)),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

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

/// Appends a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        // The low seven bits, with the continuation bit.
        out.push(v.to_le_bytes()[0] | 0x80);
        v >>= 7;
    }
    out.push(v.to_le_bytes()[0]);
}

/// The low 32 bits of a varint value, little-endian, as gogo keeps them for 32-bit fields.
pub(crate) fn low32(v: u64) -> [u8; 4] {
    let [a, b, c, d, ..] = v.to_le_bytes();
    [a, b, c, d]
}

#[cfg(test)]
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
    }

    #[test]
    fn fields_reject_bad_input() {
        assert!(Fields::new(&[0x0a, 0x05, 1]).next().unwrap().is_err());
        assert!(Fields::new(&[0x0b]).next().unwrap().is_err());
        assert!(Fields::new(&[0x00, 0x00]).next().unwrap().is_err());
    }
}
