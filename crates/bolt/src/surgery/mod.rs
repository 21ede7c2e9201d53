//! Page-level repairs in the manner of `bbolt surgery` (`internal/surgeon` in
//! bbolt), done safely: the input is never changed. Each operation reads the
//! whole file, decides, and returns a [`Rewrite`] — the pages it replaces —
//! that the caller streams into a new file beside the old one.
//!
//! - [`revert_meta`]: the other meta page becomes the one bbolt reads
//!   (`surgery revert-meta-page`), losing the last transaction.
//! - [`clear_page_elements`]: removes a range of elements from a branch or
//!   leaf page (`surgery clear-page-elements`).
//! - [`abandon_freelist`] / [`rebuild_freelist`]: drop the persisted freelist
//!   so bbolt rebuilds it from the tree at open (`surgery freelist abandon`),
//!   or write one computed from the tree (`surgery freelist rebuild`).
//!
//! Where bbolt's surgeon would write a file that bbolt then refuses or panics
//! on, these refuse instead, saying which page and why ([`SurgeryFailure`]);
//! DIFFERENCES.md lists each such difference.

use std::io::{self, Write};

use crate::error::{Corruption, MetaFault, Result};
pub use crate::error::{Refusal, SurgeryFailure};
use crate::layout::{PageHeader, Pgid, META_OFFSET, META_SIZE, PAGE_HEADER_SIZE, PGID_NO_FREELIST};
use crate::meta::{Meta, Metas};

mod clear;
mod freelist;

pub use clear::{clear_page_elements, ClearedElements};
pub use freelist::{abandon_freelist, rebuild_freelist, Abandoned, PreviousFreelist, Rebuilt};

/// The output of a surgery: the input with some byte ranges replaced (whole
/// pages), `len` bytes long (longer than the input when pages were added).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    /// Replaced bytes by absolute file offset, sorted, not overlapping.
    edits: Vec<(u64, Vec<u8>)>,
    /// Length of the output.
    len: u64,
}

impl Rewrite {
    fn new(len: u64) -> Self {
        Self { edits: Vec::new(), len }
    }

    /// Replaces the bytes at `offset` (a page); a later edit at the same offset wins.
    fn put(&mut self, offset: u64, bytes: Vec<u8>) {
        self.len = self.len.max(offset.saturating_add(bytes.len() as u64));
        match self.edits.binary_search_by_key(&offset, |(o, _)| *o) {
            Ok(i) => {
                if let Some(e) = self.edits.get_mut(i) {
                    e.1 = bytes;
                }
            }
            Err(i) => self.edits.insert(i, (offset, bytes)),
        }
    }

    /// Length of the output in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the output is empty (never, for a bbolt file).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The replaced ranges: offset and bytes, in file order.
    pub fn edits(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.edits.iter().map(|(o, b)| (*o, b.as_slice()))
    }

    /// Writes the output: `input` with the edits applied, zero-filled past
    /// its end up to [`len`](Self::len).
    pub fn write_to<W: Write>(&self, input: &[u8], out: &mut W) -> io::Result<()> {
        let mut pos = 0u64;
        for (offset, bytes) in &self.edits {
            if *offset < pos {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "overlapping page edits"));
            }
            copy_range(input, pos, *offset, out)?;
            out.write_all(bytes)?;
            pos = offset.saturating_add(bytes.len() as u64);
        }
        copy_range(input, pos, self.len, out)
    }

    /// The whole output in memory (tests and small files).
    pub fn apply(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        // Writing into a Vec cannot fail; edits never overlap by construction.
        let _ = self.write_to(input, &mut out);
        out
    }
}

/// Writes `input[from..to]`, zeros where `input` ends before `to`.
fn copy_range<W: Write>(input: &[u8], from: u64, to: u64, out: &mut W) -> io::Result<()> {
    let in_len = input.len() as u64;
    if from < in_len.min(to) {
        let (a, b) = (usize::try_from(from), usize::try_from(in_len.min(to)));
        let (Ok(a), Ok(b)) = (a, b) else { return Err(io::Error::other("offset beyond memory")) };
        out.write_all(input.get(a..b).unwrap_or(&[]))?;
    }
    let mut zeros = to.saturating_sub(from.max(in_len));
    let block = [0u8; 4096];
    while zeros > 0 {
        let n = usize::try_from(zeros.min(block.len() as u64)).unwrap_or(block.len());
        out.write_all(block.get(..n).unwrap_or(&block))?;
        zeros = zeros.saturating_sub(n as u64);
    }
    Ok(())
}

/// The `page_size` bytes of meta page `slot` with its meta struct replaced by
/// `meta` (checksum recomputed) and its header id set to `slot`; the rest of the
/// page as it was.
fn meta_page_from(data: &[u8], page_size: usize, slot: u8, source: u8, meta: &Meta) -> Result<Vec<u8>> {
    let start = usize::from(source).saturating_mul(page_size);
    let mut page = data
        .get(start..start.saturating_add(page_size))
        .ok_or_else(|| {
            Corruption::on_page(Pgid::from(source), crate::error::CorruptKind::PastEndOfFile).at_offset(start as u64)
        })?
        .to_vec();
    let mut m = *meta;
    m.checksum = m.compute_checksum();
    if let Some(dst) = page.get_mut(META_OFFSET..META_OFFSET.saturating_add(META_SIZE)) {
        dst.copy_from_slice(&m.to_bytes());
    }
    if let Some(h) = PageHeader::parse(&page) {
        let mut head = [0u8; PAGE_HEADER_SIZE];
        PageHeader { id: Pgid::from(slot), ..h }.write_to(&mut head);
        if let Some(dst) = page.get_mut(..PAGE_HEADER_SIZE) {
            dst.copy_from_slice(&head);
        }
    }
    Ok(page)
}

/// Sets the no-freelist sentinel in every valid meta that has a persisted
/// freelist (bbolt's `ClearFreelist`, which also rewrites invalid metas: an
/// invalid meta is left as it is here, so no garbage gains a valid checksum).
/// Returns the meta pages changed.
fn abandon_in(data: &[u8], metas: &Metas, out: &mut Rewrite) -> Result<Vec<u8>> {
    let ps = metas.page_size as usize;
    let mut changed = Vec::new();
    for (slot, s) in (0u8..).zip(&metas.slots) {
        let Some(m) = s.valid().filter(|m| m.has_freelist()) else { continue };
        let m = Meta { freelist: PGID_NO_FREELIST, ..*m };
        out.put(u64::from(slot).saturating_mul(ps as u64), meta_page_from(data, ps, slot, slot, &m)?);
        changed.push(slot);
    }
    Ok(changed)
}

/// The result of [`revert_meta`].
#[derive(Debug, Clone)]
pub struct Reverted {
    /// The output.
    pub rewrite: Rewrite,
    /// The meta page overwritten (the newer one, by txid as bbolt compares them).
    pub target: u8,
    /// The meta page copied over it, now the one bbolt reads.
    pub source: u8,
    /// The overwritten meta's txid as stored (it may not have been valid).
    pub target_txid: u64,
    /// Why the overwritten meta was invalid, when it was (bbolt already read the other).
    pub target_fault: Option<MetaFault>,
    /// The txid of the state the output holds.
    pub txid: u64,
}

/// Copies the older meta page over the newer one, so the file reads as before
/// its last transaction (bbolt's `RevertMetaPage`: the newer is the one with
/// the larger stored txid, meta 0 on a tie; the copy gets the target's page id).
///
/// Refused when the older meta is not valid (bbolt's surgeon would copy it
/// anyway and leave no valid meta), or when its fields point outside the file.
pub fn revert_meta(data: &[u8]) -> Result<Reverted> {
    let metas = Metas::read(data)?;
    let ps = metas.page_size as usize;
    let txid = |i: usize| metas.slots.get(i).and_then(|s| s.meta).map_or(0, |m| m.txid);
    let target: u8 = u8::from(txid(0) < txid(1));
    let source = 1u8.saturating_sub(target);
    let [slot0, slot1] = &metas.slots;
    let (src, dst) = if source == 0 { (slot0, slot1) } else { (slot1, slot0) };
    let src_meta = match (src.valid(), &src.validity) {
        (Some(m), _) => *m,
        (None, Err(fault)) => {
            return Err(SurgeryFailure::on_page(
                Pgid::from(source),
                ps,
                Refusal::InvalidMeta { meta: source, fault: fault.clone() },
            )
            .into())
        }
        (None, Ok(())) => {
            let kind = Refusal::InvalidMeta { meta: source, fault: MetaFault::Truncated };
            return Err(SurgeryFailure::on_page(Pgid::from(source), ps, kind).into());
        }
    };
    sane_meta(data, ps, source, &src_meta)?;
    let mut rewrite = Rewrite::new(data.len() as u64);
    let page = meta_page_from(data, ps, target, source, &src_meta)?;
    rewrite.put(u64::from(target).saturating_mul(ps as u64), page);
    Ok(Reverted {
        rewrite,
        target,
        source,
        target_txid: txid(usize::from(target)),
        target_fault: dst.validity.clone().err(),
        txid: src_meta.txid,
    })
}

/// Checks that a valid meta's `root`, `freelist` and `pgid` fit the file, as a
/// read of the state it describes needs.
fn sane_meta(data: &[u8], page_size: usize, slot: u8, m: &Meta) -> Result<()> {
    use crate::error::CorruptKind;
    let at =
        |kind| Corruption::on_page(Pgid::from(slot), kind).at_offset(u64::from(slot).saturating_mul(page_size as u64));
    if m.root.root < 2 || m.root.root >= m.pgid {
        return Err(at(CorruptKind::MetaField { field: "root", value: m.root.root, hwm: m.pgid }).into());
    }
    if m.has_freelist() && (m.freelist < 2 || m.freelist >= m.pgid) {
        return Err(at(CorruptKind::MetaField { field: "freelist", value: m.freelist, hwm: m.pgid }).into());
    }
    let needed = m.pgid.saturating_mul(page_size as u64);
    if (data.len() as u64) < needed {
        return Err(at(CorruptKind::FileShorterThanHwm { len: data.len() as u64, needed }).into());
    }
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic,
    clippy::cast_possible_truncation
)]
mod tests;
