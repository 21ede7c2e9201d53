//! Little-endian field reads over untrusted bytes.
//!
//! bbolt maps Go structs straight onto the file, so every field is native-endian;
//! we read little-endian (amd64/arm64 files) through these helpers, which return
//! `None` instead of panicking when a read would run past the slice.

/// Reads `N` bytes at `off`, or `None` when they are not all inside `buf`.
#[inline]
fn array<const N: usize>(buf: &[u8], off: usize) -> Option<[u8; N]> {
    let end = off.checked_add(N)?;
    buf.get(off..end)?.try_into().ok()
}

/// A `u16` at byte offset `off`.
#[inline]
pub(crate) fn u16_at(buf: &[u8], off: usize) -> Option<u16> {
    array(buf, off).map(u16::from_le_bytes)
}

/// A `u32` at byte offset `off`.
#[inline]
pub(crate) fn u32_at(buf: &[u8], off: usize) -> Option<u32> {
    array(buf, off).map(u32::from_le_bytes)
}

/// A `u64` at byte offset `off`.
#[inline]
pub(crate) fn u64_at(buf: &[u8], off: usize) -> Option<u64> {
    array(buf, off).map(u64::from_le_bytes)
}

/// `len` bytes at `off`, or `None` when the range leaves `buf` or overflows.
#[inline]
pub(crate) fn slice_at(buf: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    buf.get(off..off.checked_add(len)?)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn reads_stay_in_bounds() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(u16_at(&b, 0), Some(0x0201));
        assert_eq!(u32_at(&b, 5), Some(0x0908_0706));
        assert_eq!(u32_at(&b, 6), None);
        assert_eq!(u64_at(&b, 1), Some(0x0908_0706_0504_0302));
        assert_eq!(u64_at(&b, usize::MAX - 3), None);
        assert_eq!(slice_at(&b, 8, 1), Some(&[9u8][..]));
        assert_eq!(slice_at(&b, 8, 2), None);
        assert_eq!(slice_at(&b, usize::MAX, 2), None);
    }
}
