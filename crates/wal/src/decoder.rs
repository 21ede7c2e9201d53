//! One segment's record decoder (etcd `decoder.decodeRecord` + `isTornEntry`),
//! zero-copy over the segment bytes.

use crate::entry::RawEntry;
use crate::error::CorruptKind;
use crate::record::{decode_frame_size, RawRecord, CRC_TYPE, ENTRY_TYPE, FRAME_HEADER, SECTOR};

/// etcd 3.4.10+ / 3.5.0–3.5.4 `maxWALEntrySizeLimit`; only used to tell an absurd
/// length word running past the end of the last segment from a torn write.
const MAX_ENTRY_SIZE: u64 = 10 * 1024 * 1024;

/// One valid record and where it sits.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Byte offset of the length word in the segment.
    pub offset: u64,
    /// Frame length: 8 + record bytes + padding.
    pub len: u64,
    /// The record.
    pub record: RawRecord<'a>,
    /// The entry, for entry records.
    pub entry: Option<RawEntry<'a>>,
}

/// Why decoding stopped before the end of data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A torn write in the last segment (etcd `io.ErrUnexpectedEOF`): repairable by truncating at `offset`.
    Torn {
        /// Offset of the failing frame (= end of the last valid record).
        offset: u64,
        /// What failed.
        detail: String,
    },
    /// Anything else.
    Corrupt {
        /// Offset of the failing frame.
        offset: u64,
        /// Raft index of the failing entry when known.
        index: Option<u64>,
        /// What is wrong.
        kind: CorruptKind,
    },
}

/// One step of a decoder over a window of a segment (see [`SegmentDecoder::window`]).
#[derive(Debug)]
pub(crate) enum Step<'a> {
    /// A valid record.
    Frame(Frame<'a>),
    /// End of data (zero length word or end of file).
    End,
    /// The window ends inside the next frame: this many bytes from the
    /// current position are needed to decide (the window is not the whole rest of the file).
    NeedMore(u64),
    /// Decoding stopped.
    Fail(Failure),
}

enum Stop {
    More(u64),
    Fail(Failure),
}

/// Decodes the records of one segment, carrying the running CRC.
#[derive(Debug)]
pub struct SegmentDecoder<'a> {
    buf: &'a [u8],
    pos: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// `buf` runs to the end of the file.
    complete: bool,
    last: bool,
    crc: u32,
}

impl<'a> SegmentDecoder<'a> {
    /// A decoder over `buf`, continuing CRC `crc`; `last` enables the torn-write test.
    pub fn new(buf: &'a [u8], last: bool, crc: u32) -> Self {
        Self::window(buf, 0, true, last, crc)
    }

    /// A decoder over a window of a segment starting at file offset `base`;
    /// `complete` says the window runs to the end of the file. Offsets in frames
    /// and failures are file offsets; an incomplete window yields [`Step::NeedMore`]
    /// where a complete one would decide on a short frame.
    pub(crate) fn window(buf: &'a [u8], base: u64, complete: bool, last: bool, crc: u32) -> Self {
        Self { buf, pos: 0, base, complete, last, crc }
    }

    /// Running CRC after the last valid record.
    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// etcd `lastOffset`: the offset following the last valid record.
    pub fn offset(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    /// Bytes of the window consumed by valid records.
    pub(crate) fn consumed(&self) -> usize {
        self.pos
    }

    /// etcd `isTornEntry`: some 512-byte file-sector chunk of the frame data is all zeros.
    fn is_torn(&self, data: &[u8]) -> bool {
        if !self.last {
            return false;
        }
        let mut file_off = self.offset().saturating_add(FRAME_HEADER as u64);
        let mut rest = data;
        while !rest.is_empty() {
            // SECTOR is a non-zero constant: the remainder is below it.
            let chunk_len =
                usize::try_from(SECTOR.saturating_sub(file_off % SECTOR)).unwrap_or(usize::MAX).min(rest.len());
            let (chunk, tail) = rest.split_at(chunk_len);
            if chunk.iter().all(|&b| b == 0) {
                return true;
            }
            file_off = file_off.saturating_add(chunk_len as u64);
            rest = tail;
        }
        false
    }

    fn fail(&self, data: &[u8], index: Option<u64>, kind: CorruptKind) -> Failure {
        if self.is_torn(data) {
            Failure::Torn { offset: self.offset(), detail: kind.to_string() }
        } else {
            Failure::Corrupt { offset: self.offset(), index, kind }
        }
    }

    /// The next valid record; `Ok(None)` at a zero length word or the end of the file.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'a>>, Failure> {
        match self.step() {
            Step::Frame(f) => Ok(Some(f)),
            // NeedMore only comes from incomplete windows, which `new` never makes.
            Step::End | Step::NeedMore(_) => Ok(None),
            Step::Fail(f) => Err(f),
        }
    }

    /// The next step: a valid record, the end of data, a request for more of the file, or a failure.
    pub(crate) fn step(&mut self) -> Step<'a> {
        match self.step_inner() {
            Ok(Some(f)) => Step::Frame(f),
            Ok(None) => Step::End,
            Err(Stop::Fail(f)) => Step::Fail(f),
            Err(Stop::More(n)) => Step::NeedMore(n),
        }
    }

    fn step_inner(&mut self) -> Result<Option<Frame<'a>>, Stop> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        let Some(word) = rest.get(..FRAME_HEADER) else {
            if !self.complete {
                return Err(Stop::More(FRAME_HEADER as u64));
            }
            // etcd reads the length word with binary.Read: a partial word is
            // io.ErrUnexpectedEOF, an empty remainder io.EOF.
            if rest.is_empty() || rest.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            return Err(Stop::Fail(self.short(FRAME_HEADER as u64, rest.len() as u64)));
        };
        let mut a = [0u8; 8];
        a.copy_from_slice(word);
        let len_field = u64::from_le_bytes(a);
        if len_field == 0 {
            return Ok(None);
        }
        let (rec_bytes, pad) = decode_frame_size(len_field);
        let body_len = rec_bytes.saturating_add(pad);
        let available = rest.len().saturating_sub(FRAME_HEADER) as u64;
        if body_len > available {
            if !self.complete {
                return Err(Stop::More((FRAME_HEADER as u64).saturating_add(body_len)));
            }
            if self.last && rec_bytes >= MAX_ENTRY_SIZE.saturating_sub(pad) {
                return Err(Stop::Fail(Failure::Corrupt {
                    offset: self.offset(),
                    index: None,
                    kind: CorruptKind::Decode(format!(
                        "length word 0x{len_field:016x} ({rec_bytes} bytes) runs past the end of the file"
                    )),
                }));
            }
            return Err(Stop::Fail(self.short(body_len, available)));
        }
        // body_len <= available < usize::MAX, so these fit.
        let body_usize = usize::try_from(body_len).unwrap_or(usize::MAX);
        let body = rest.get(FRAME_HEADER..FRAME_HEADER.saturating_add(body_usize)).unwrap_or(&[]);
        let rec_buf = body.get(..usize::try_from(rec_bytes).unwrap_or(usize::MAX)).unwrap_or(&[]);
        let record = match RawRecord::decode(rec_buf) {
            Ok(r) => r,
            Err(m) => return Err(Stop::Fail(self.fail(body, None, CorruptKind::Decode(m)))),
        };
        let mut entry = None;
        if record.rec_type == CRC_TYPE {
            if self.crc != 0 && record.crc != self.crc {
                return Err(Stop::Fail(Failure::Corrupt {
                    offset: self.offset(),
                    index: None,
                    kind: CorruptKind::CrcRecordMismatch { stored: record.crc, running: self.crc },
                }));
            }
            self.crc = record.crc;
        } else {
            let computed = etcdsnap_proto::crc32c::append(self.crc, record.data());
            let decoded = (record.rec_type == ENTRY_TYPE).then(|| RawEntry::decode(record.data()));
            let index = decoded.as_ref().and_then(|d| d.as_ref().ok()).map(|e| e.index);
            if computed != record.crc {
                return Err(Stop::Fail(self.fail(
                    body,
                    index,
                    CorruptKind::CrcMismatch { stored: record.crc, computed },
                )));
            }
            match decoded {
                Some(Ok(e)) => entry = Some(e),
                Some(Err(m)) => {
                    return Err(Stop::Fail(Failure::Corrupt {
                        offset: self.offset(),
                        index: None,
                        kind: CorruptKind::Decode(format!("entry: {m}")),
                    }))
                }
                None => {}
            }
            self.crc = computed;
        }
        let frame = Frame { offset: self.offset(), len: (FRAME_HEADER as u64).saturating_add(body_len), record, entry };
        self.pos = self.pos.saturating_add(FRAME_HEADER).saturating_add(body_usize);
        Ok(Some(frame))
    }

    fn short(&self, needed: u64, available: u64) -> Failure {
        if self.last {
            Failure::Torn {
                offset: self.offset(),
                detail: format!("frame needs {needed} bytes, {available} remain (unexpected EOF)"),
            }
        } else {
            Failure::Corrupt { offset: self.offset(), index: None, kind: CorruptKind::Truncated { needed, available } }
        }
    }
}
