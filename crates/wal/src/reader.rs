//! Reading a whole WAL directory: segments in order, one running CRC chain
//! across them, each segment streamed through one reused window.

use std::fs::File;

use etcdsnap_io::Meter;
use std::io::Read;

use crate::decoder::{Failure, Frame, SegmentDecoder, Step};
use crate::error::{Corruption, Result, WalError};
use crate::segment::Segment;

/// Where a torn last record was found (repairable by truncating at `offset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Segment file name (always the last segment).
    pub segment: String,
    /// End of the last valid record: the truncation point.
    pub offset: u64,
    /// What failed.
    pub detail: String,
}

/// How a read ended without corruption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEnd {
    /// Running CRC after the last valid record.
    pub crc: u32,
    /// End of valid data per segment (etcd `lastOffset`), in segment order.
    pub data_ends: Vec<u64>,
    /// A torn write at the end of the last segment, if any.
    pub torn: Option<TornTail>,
}

/// Reads `seg` into `buf` (reusing its allocation).
pub fn read_segment(seg: &Segment, buf: &mut Vec<u8>) -> Result<()> {
    buf.clear();
    let mut f = File::open(&seg.path).map_err(|e| WalError::io(&seg.path, e))?;
    f.read_to_end(buf).map_err(|e| WalError::io(&seg.path, e))?;
    Ok(())
}

/// Bytes asked of the kernel per read (the window grows to hold the largest
/// frame). Small enough that the copy out of the page cache stays in the CPU
/// caches while the CRC runs over it: reading a 64 MiB segment into one buffer
/// and then checksumming it costs several times more memory traffic.
const CHUNK: usize = 1 << 20;

/// A reusable read buffer for [`read_segment_frames`].
#[derive(Debug)]
pub(crate) struct StreamBuf {
    buf: Vec<u8>,
    chunk: usize,
    /// Told the bytes read (a progress bar's count).
    meter: Option<Meter>,
}

impl Default for StreamBuf {
    fn default() -> Self {
        StreamBuf { buf: Vec::new(), chunk: CHUNK, meter: None }
    }
}

impl StreamBuf {
    /// A buffer whose reads are told to `meter`.
    pub(crate) fn metered(meter: Option<&Meter>) -> Self {
        StreamBuf { meter: meter.cloned(), ..StreamBuf::default() }
    }
}

/// How one segment ended without corruption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentEnd {
    /// Running CRC after its last valid record.
    pub crc: u32,
    /// End of valid data (etcd `lastOffset`).
    pub data_end: u64,
    /// A torn last record (only for `last`).
    pub torn: Option<TornTail>,
}

enum Outcome {
    End,
    More(u64),
    Fail(Failure),
}

/// Reads as much as fits into `buf[*filled..]`, until at least `want` bytes are
/// held or the file ends.
fn fill(
    meter: Option<&Meter>,
    f: &mut File,
    path: &std::path::Path,
    buf: &mut [u8],
    filled: &mut usize,
    want: usize,
    eof: &mut bool,
) -> Result<()> {
    while *filled < want {
        let Some(space) = buf.get_mut(*filled..) else { break };
        if space.is_empty() {
            break;
        }
        match f.read(space) {
            Ok(0) => {
                *eof = true;
                break;
            }
            Ok(n) => {
                *filled = filled.saturating_add(n);
                if let Some(m) = meter {
                    m.add(n as u64);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WalError::io(path, e)),
        }
    }
    Ok(())
}

/// Decodes the records of segment `i` streaming through `sb` (a window that
/// grows to the largest frame), continuing CRC `seed` (0: the segment's first
/// crc record seeds it) and calling `visit` for each valid record. `last_index`
/// carries the index of the last entry read (the `after_index` of corruption).
/// `last` enables the torn-write test. Results are those of decoding the whole
/// file at once with [`SegmentDecoder`].
pub(crate) fn read_segment_frames(
    seg: &Segment,
    i: usize,
    last: bool,
    seed: u32,
    last_index: &mut Option<u64>,
    sb: &mut StreamBuf,
    visit: &mut impl FnMut(usize, &Frame<'_>) -> Result<()>,
) -> Result<SegmentEnd> {
    let mut f = File::open(&seg.path).map_err(|e| WalError::io(&seg.path, e))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(seg.size);
    let chunk = sb.chunk.max(1);
    let buf = &mut sb.buf;
    if buf.len() < chunk {
        buf.resize(chunk, 0);
    }
    let mut base = 0u64; // file offset of buf[0]
    let mut start = 0usize; // first byte not yet consumed
    let mut filled = 0usize;
    let mut eof = false;
    let mut crc = seed;
    loop {
        let window = buf.get(start..filled).unwrap_or(&[]);
        let mut dec = SegmentDecoder::window(window, base.saturating_add(start as u64), eof, last, crc);
        let outcome = loop {
            match dec.step() {
                Step::Frame(frame) => {
                    if let Some(e) = &frame.entry {
                        *last_index = Some(e.index);
                    }
                    visit(i, &frame)?;
                }
                Step::End => break Outcome::End,
                Step::NeedMore(n) => break Outcome::More(n),
                Step::Fail(f) => break Outcome::Fail(f),
            }
        };
        crc = dec.crc();
        let offset = dec.offset();
        start = start.saturating_add(dec.consumed());
        match outcome {
            Outcome::End => return Ok(SegmentEnd { crc, data_end: offset, torn: None }),
            Outcome::Fail(Failure::Torn { offset, detail }) => {
                let torn = TornTail { segment: seg.name.clone(), offset, detail };
                return Ok(SegmentEnd { crc, data_end: offset, torn: Some(torn) });
            }
            Outcome::Fail(Failure::Corrupt { offset, index, kind }) => {
                return Err(WalError::Corrupt(Corruption {
                    segment: seg.name.clone(),
                    offset,
                    index,
                    after_index: *last_index,
                    kind,
                }));
            }
            Outcome::More(n) => {
                if start == filled {
                    base = base.saturating_add(start as u64);
                    (start, filled) = (0, 0);
                }
                // A length word beyond the end of the file asks for no more than the file holds
                // (plus one byte, to see the end).
                let left = size.saturating_sub(base.saturating_add(filled as u64));
                let want = n.min((filled.saturating_sub(start) as u64).saturating_add(left).saturating_add(1));
                let want = usize::try_from(want).unwrap_or(usize::MAX);
                // Move the partial frame to the front only when it cannot complete in place.
                if start.saturating_add(want) > buf.len() {
                    buf.copy_within(start..filled, 0);
                    base = base.saturating_add(start as u64);
                    filled = filled.saturating_sub(start);
                    start = 0;
                    if buf.len() < want {
                        buf.resize(want.checked_next_power_of_two().unwrap_or(want), 0);
                    }
                }
                // Read a chunk, or exactly up to the end of a larger frame (nothing to move next time).
                let end = start.saturating_add(want);
                let limit = if want > chunk { end } else { filled.saturating_add(chunk).max(end) };
                let limit = limit.min(buf.len());
                let meter = sb.meter.as_ref();
                fill(meter, &mut f, &seg.path, buf.get_mut(..limit).unwrap_or_default(), &mut filled, end, &mut eof)?;
            }
        }
    }
}

/// Decodes every record of `segments` (in the given order) and calls `visit` for
/// each valid one. A CRC chain runs across the segments, re-seeded by crc records.
/// Corruption is returned as [`WalError::Corrupt`] (segment, offset, index); a torn
/// last record ends the read and is reported in [`ReadEnd::torn`].
pub fn read_wal(segments: &[Segment], visit: impl FnMut(usize, &Frame<'_>) -> Result<()>) -> Result<ReadEnd> {
    read_wal_metered(segments, None, visit)
}

/// [`read_wal`], telling `meter` the bytes read (a progress bar's count).
pub fn read_wal_metered(
    segments: &[Segment],
    meter: Option<&Meter>,
    mut visit: impl FnMut(usize, &Frame<'_>) -> Result<()>,
) -> Result<ReadEnd> {
    let mut sb = StreamBuf::metered(meter);
    let mut crc = 0u32;
    let mut last_index: Option<u64> = None;
    let mut data_ends = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        let last = i.saturating_add(1) == segments.len();
        let end = read_segment_frames(seg, i, last, crc, &mut last_index, &mut sb, &mut visit)?;
        data_ends.push(end.data_end);
        crc = end.crc;
        if end.torn.is_some() {
            return Ok(ReadEnd { crc, data_ends, torn: end.torn });
        }
    }
    Ok(ReadEnd { crc, data_ends, torn: None })
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    use super::*;
    use crate::record::{Encoder, ENTRY_TYPE, METADATA_TYPE};

    /// What a read reports: every frame (offset, len, type, crc, entry index) and how it ended.
    type Trace = (Vec<(u64, u64, i64, u32, Option<u64>)>, std::result::Result<(u32, u64, Option<TornTail>), String>);

    fn whole(bytes: &[u8], last: bool) -> Trace {
        let mut d = SegmentDecoder::new(bytes, last, 0);
        let mut frames = Vec::new();
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    frames.push((f.offset, f.len, f.record.rec_type, f.record.crc, f.entry.map(|e| e.index)))
                }
                Ok(None) => return (frames, Ok((d.crc(), d.offset(), None))),
                Err(Failure::Torn { offset, detail }) => {
                    let t = TornTail { segment: "s".into(), offset, detail };
                    return (frames, Ok((d.crc(), offset, Some(t))));
                }
                Err(Failure::Corrupt { offset, index, kind }) => {
                    return (frames, Err(format!("{offset} {index:?} {kind}")));
                }
            }
        }
    }

    fn streamed(path: &std::path::Path, last: bool, chunk: usize) -> Trace {
        let seg = Segment { path: path.to_path_buf(), name: "s".into(), seq: 0, index: 0, size: 0 };
        let mut sb = StreamBuf { buf: Vec::new(), chunk, meter: None };
        let mut frames = Vec::new();
        let mut li = None;
        let r = read_segment_frames(&seg, 0, last, 0, &mut li, &mut sb, &mut |_, f| {
            frames.push((f.offset, f.len, f.record.rec_type, f.record.crc, f.entry.map(|e| e.index)));
            Ok(())
        });
        let end = match r {
            Ok(e) => Ok((e.crc, e.data_end, e.torn)),
            Err(WalError::Corrupt(c)) => Err(format!("{} {:?} {}", c.offset, c.index, c.kind)),
            Err(e) => Err(e.to_string()),
        };
        (frames, end)
    }

    fn segment(sizes: &[usize]) -> Vec<u8> {
        let mut e = Encoder::new(0);
        let mut out = Vec::new();
        e.encode_crc_record(&mut out).unwrap();
        e.encode(&mut out, METADATA_TYPE, Some(b"meta")).unwrap();
        for (i, &n) in sizes.iter().enumerate() {
            let ent = etcdsnap_proto::raftpb::Entry {
                r#type: 0,
                term: 1,
                index: i as u64 + 1,
                data: Some(vec![(i % 251) as u8 + 1; n]),
            };
            use etcdsnap_proto::Message;
            e.encode(&mut out, ENTRY_TYPE, Some(&ent.encode_to_vec())).unwrap();
        }
        out
    }

    /// Windows of any size give what decoding the whole file gives, clean or damaged.
    #[test]
    fn streaming_equals_whole_file_decoding() {
        let dir = std::env::temp_dir().join(format!("etcdsnap-wal-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("seg");
        let base = segment(&[0, 1, 7, 100, 513, 3000, 9, 20000, 4, 1500, 64]);
        let mut cases: Vec<Vec<u8>> = vec![base.clone()];
        let mut padded = base.clone();
        padded.resize(base.len() + 4096, 0);
        cases.push(padded);
        for cut in [5, 16, 20, 100, 700, 3000, base.len() - 3, base.len() - 1] {
            cases.push(base[..cut].to_vec());
            let mut zeroed = base.clone();
            zeroed[cut..].iter_mut().for_each(|b| *b = 0);
            cases.push(zeroed);
        }
        for at in [3, 9, 40, 600, 2000, 5000, base.len() - 10] {
            let mut flipped = base.clone();
            flipped[at] ^= 0x10;
            cases.push(flipped);
        }
        // A length word claiming far more than the file holds.
        let mut huge = base.clone();
        huge.extend_from_slice(&(1u64 << 40).to_le_bytes());
        huge.extend_from_slice(&[1; 100]);
        cases.push(huge);
        for bytes in &cases {
            std::fs::write(&path, bytes).unwrap();
            for last in [false, true] {
                let want = whole(bytes, last);
                for chunk in [1, 3, 8, 13, 64, 511, 4096, CHUNK] {
                    assert_eq!(streamed(&path, last, chunk), want, "len {} chunk {chunk} last {last}", bytes.len());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
