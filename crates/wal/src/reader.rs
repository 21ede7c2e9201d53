//! Reading a whole WAL directory: segments in order, one running CRC chain
//! across them, each segment read into one reused buffer.

use std::fs::File;
use std::io::Read;

use crate::decoder::{Failure, Frame, SegmentDecoder};
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

/// Decodes every record of `segments` (in the given order) and calls `visit` for
/// each valid one. A CRC chain runs across the segments, re-seeded by crc records.
/// Corruption is returned as [`WalError::Corrupt`] (segment, offset, index); a torn
/// last record ends the read and is reported in [`ReadEnd::torn`].
pub fn read_wal(segments: &[Segment], mut visit: impl FnMut(usize, &Frame<'_>) -> Result<()>) -> Result<ReadEnd> {
    // Segment i+1 is read on a helper thread while segment i is decoded, so the
    // copy from the page cache overlaps the CRC work.
    std::thread::scope(|scope| {
        let (to_reader, from_main) = std::sync::mpsc::channel::<Vec<u8>>();
        let (to_main, from_reader) = std::sync::mpsc::sync_channel::<Result<Vec<u8>>>(1);
        scope.spawn(move || {
            for seg in segments {
                let mut buf = from_main.recv().unwrap_or_default();
                let r = read_segment(seg, &mut buf).map(|()| buf);
                if to_main.send(r).is_err() {
                    return;
                }
            }
        });
        let _ = to_reader.send(Vec::new());
        let _ = to_reader.send(Vec::new());
        decode_all(
            segments,
            &mut visit,
            || from_reader.recv().unwrap_or_else(|_| Ok(Vec::new())),
            |b| {
                let _ = to_reader.send(b);
            },
        )
    })
}

fn decode_all(
    segments: &[Segment],
    visit: &mut impl FnMut(usize, &Frame<'_>) -> Result<()>,
    mut next_buf: impl FnMut() -> Result<Vec<u8>>,
    mut give_back: impl FnMut(Vec<u8>),
) -> Result<ReadEnd> {
    let mut crc = 0u32;
    let mut last_index: Option<u64> = None;
    let mut data_ends = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        let buf = next_buf()?;
        let last = i + 1 == segments.len();
        let mut dec = SegmentDecoder::new(&buf, last, crc);
        loop {
            match dec.next_frame() {
                Ok(Some(frame)) => {
                    if let Some(e) = &frame.entry {
                        last_index = Some(e.index);
                    }
                    visit(i, &frame)?;
                }
                Ok(None) => break,
                Err(Failure::Torn { offset, detail }) => {
                    data_ends.push(offset);
                    let torn = TornTail { segment: seg.name.clone(), offset, detail };
                    return Ok(ReadEnd { crc: dec.crc(), data_ends, torn: Some(torn) });
                }
                Err(Failure::Corrupt { offset, index, kind }) => {
                    return Err(WalError::Corrupt(Corruption {
                        segment: seg.name.clone(),
                        offset,
                        index,
                        after_index: last_index,
                        kind,
                    }));
                }
            }
        }
        data_ends.push(dec.offset());
        crc = dec.crc();
        give_back(buf);
    }
    Ok(ReadEnd { crc, data_ends, torn: None })
}
