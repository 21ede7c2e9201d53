//! Record framing (etcd `encoder.go` / `decoder.go`) and the zero-copy `walpb.Record`.
//!
//! A frame is an 8-byte little-endian length word (record bytes in the low 56
//! bits; bit 63 set means the low 3 bits of the top byte count padding bytes),
//! the marshaled `walpb.Record`, then the padding up to 8-byte alignment.

use std::io::{self, Write};

use crate::wire::{put_varint, Fields, Value, WireError};

/// `frameSizeBytes`: the length word.
pub const FRAME_HEADER: usize = 8;
/// `minSectorSize`: the torn-write test splits frames on these file-sector boundaries.
pub const SECTOR: u64 = 512;

pub use etcdsnap_proto::walpb::{CRC_TYPE, ENTRY_TYPE, METADATA_TYPE, SNAPSHOT_TYPE, STATE_TYPE};

/// etcd `decodeFrameSize`: `(recBytes, padBytes)` of a length word.
pub fn decode_frame_size(len_field: u64) -> (u64, u64) {
    let rec = len_field & !(0xffu64 << 56);
    let pad = if len_field >> 63 == 1 { (len_field >> 56) & 7 } else { 0 };
    (rec, pad)
}

/// etcd `encodeFrameSize`: the length word and pad count for `rec_bytes` of record.
pub fn encode_frame_size(rec_bytes: u64) -> (u64, u64) {
    let pad = 8u64.saturating_sub(rec_bytes % 8) % 8;
    let mut len_field = rec_bytes;
    if pad != 0 {
        len_field |= (0x80 | pad) << 56;
    }
    (len_field, pad)
}

/// A decoded `walpb.Record` borrowing its data from the segment bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// `type`.
    pub rec_type: i64,
    /// `crc`.
    pub crc: u32,
    /// `data` (absent in crc records).
    pub data: Option<&'a [u8]>,
}

impl<'a> RawRecord<'a> {
    /// Decodes a marshaled `walpb.Record` (unknown fields skipped, like gogo's Unmarshal).
    pub fn decode(buf: &'a [u8]) -> Result<Self, String> {
        let mut r = RawRecord { rec_type: 0, crc: 0, data: None };
        for f in Fields::new(buf) {
            match f.map_err(|e| e.to_string())? {
                (1, Value::Varint(v)) => r.rec_type = v as i64,
                // gogo keeps the low 32 bits of a uint32 varint.
                (2, Value::Varint(v)) => r.crc = u32::from_le_bytes(crate::wire::low32(v)),
                (3, Value::Bytes(b)) => r.data = Some(b),
                (n @ 1..=3, _) => return Err(WireError::WrongType(n).to_string()),
                _ => {}
            }
        }
        Ok(r)
    }

    /// The data bytes, empty when absent.
    pub fn data(&self) -> &'a [u8] {
        self.data.unwrap_or(&[])
    }
}

/// Marshals a `walpb.Record` as gogo does (type, crc always; data when non-nil).
pub fn encode_record(out: &mut Vec<u8>, rec_type: i64, crc: u32, data: Option<&[u8]>) {
    out.push(0x08);
    // Protobuf encodes a negative int64 as its two's complement.
    put_varint(out, u64::from_ne_bytes(rec_type.to_ne_bytes()));
    out.push(0x10);
    put_varint(out, u64::from(crc));
    if let Some(d) = data {
        out.push(0x1a);
        put_varint(out, d.len() as u64);
        out.extend_from_slice(d);
    }
}

/// etcd's `encoder`: frames records and keeps the running CRC-32C over record data.
#[derive(Debug, Clone)]
pub struct Encoder {
    crc: u32,
    buf: Vec<u8>,
}

impl Encoder {
    /// An encoder continuing the CRC chain from `prev_crc` (0 for a new WAL).
    pub fn new(prev_crc: u32) -> Self {
        Self { crc: prev_crc, buf: Vec::new() }
    }

    /// The running CRC (what the next segment's crc record carries).
    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// Writes one record; for non-crc types the running CRC advances over `data`.
    /// Returns the frame length written.
    pub fn encode(&mut self, w: &mut impl Write, rec_type: i64, data: Option<&[u8]>) -> io::Result<u64> {
        let crc = if rec_type == CRC_TYPE {
            self.crc
        } else {
            self.crc = etcdsnap_proto::crc32c::append(self.crc, data.unwrap_or(&[]));
            self.crc
        };
        self.buf.clear();
        self.buf.extend_from_slice(&[0u8; FRAME_HEADER]);
        encode_record(&mut self.buf, rec_type, crc, data);
        let rec_bytes = self.buf.len().saturating_sub(FRAME_HEADER) as u64;
        let (len_field, pad) = encode_frame_size(rec_bytes);
        if let Some(h) = self.buf.get_mut(..FRAME_HEADER) {
            h.copy_from_slice(&len_field.to_le_bytes());
        }
        // pad < 8.
        self.buf.resize(self.buf.len().saturating_add(usize::try_from(pad).unwrap_or(0)), 0);
        w.write_all(&self.buf)?;
        Ok(self.buf.len() as u64)
    }

    /// Writes a `crcType` record carrying the running CRC (the head of every segment).
    pub fn encode_crc_record(&mut self, w: &mut impl Write) -> io::Result<u64> {
        self.encode(w, CRC_TYPE, None)
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn frame_size_round_trip() {
        for n in 0..64u64 {
            let (lf, pad) = encode_frame_size(n);
            assert_eq!(decode_frame_size(lf), (n, pad));
            assert_eq!((n + pad) % 8, 0);
        }
    }

    /// etcd's `TestNew.wal` head (etcd-formats.md §7.9): crc record, metadata "somedata", empty snapshot.
    #[test]
    fn reproduces_etcd_test_new_wal_head() {
        let mut e = Encoder::new(0);
        let mut out = Vec::new();
        e.encode_crc_record(&mut out).unwrap();
        e.encode(&mut out, METADATA_TYPE, Some(b"somedata")).unwrap();
        e.encode(&mut out, SNAPSHOT_TYPE, Some(&[0x08, 0x00, 0x10, 0x00])).unwrap();
        let want: Vec<u8> = [
            "04000000000000840804100000000000",
            "120000000000008608011085d4fda007",
            "1a08736f6d6564617461000000000000",
            "0e00000000000082",
        ]
        .concat()
        .as_bytes()
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect();
        assert_eq!(&out[..want.len()], &want[..]);
        assert_eq!(out.len(), 72);
        assert_eq!(&out[56..72], &[0x08, 0x05, 0x10, 0x80, 0xdb, 0x81, 0xc1, 0x01, 0x1a, 0x04, 0x08, 0, 0x10, 0, 0, 0]);
        let r = RawRecord::decode(&out[16 + FRAME_HEADER..][..18]).unwrap();
        assert_eq!((r.rec_type, r.crc, r.data), (METADATA_TYPE, 0x741F_6A05, Some(&b"somedata"[..])));
    }
}
