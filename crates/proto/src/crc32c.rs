//! CRC-32C (Castagnoli), the checksum etcd puts on WAL records and snap
//! files and folds its `snapshot status` hash and `HashKV` with.
//!
//! Values are the finished CRC (pre- and post-inverted), as Go's
//! `crc32.Update(crc, crc32.MakeTable(crc32.Castagnoli), p)` returns it, so
//! `append(append(0, a), b) == checksum(a ‖ b)`. The work is done by carry-less
//! multiplication where the CPU has it: about twice the speed of the CRC32
//! instruction alone on values of a few KiB, which is what `status`, `verify`
//! and HashKV spend most of their time on.

use crc_fast::{CrcAlgorithm, Digest};

/// CRC-32C of `data`.
pub fn checksum(data: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(data)
}

/// The CRC-32C `crc` continued over `data`.
pub fn append(crc: u32, data: &[u8]) -> u32 {
    if data.is_empty() {
        return crc;
    }
    let mut d = Digest::new_with_init_state(CrcAlgorithm::Crc32Iscsi, u64::from(!crc));
    d.update(data);
    u32::try_from(d.finalize() & u64::from(u32::MAX)).unwrap_or_default()
}

/// CRC-32C of `a ‖ b` from the CRC-32C of `a`, that of `b` and `b`'s length.
pub fn combine(crc_a: u32, crc_b: u32, len_b: u64) -> u32 {
    let c = crc_fast::checksum_combine(CrcAlgorithm::Crc32Iscsi, u64::from(crc_a), u64::from(crc_b), len_b);
    u32::try_from(c & u64::from(u32::MAX)).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Lengths across every path of the implementation: below a vector, one
    /// vector, the folding loops, and long runs.
    fn data() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(any::<u8>(), 64..600),
            proptest::collection::vec(any::<u8>(), 600..20_000),
        ]
    }

    proptest! {
        #[test]
        fn equals_the_crc32c_crate(a in data(), b in data(), start in any::<u32>()) {
            prop_assert_eq!(checksum(&a), crc32c::crc32c(&a));
            prop_assert_eq!(append(start, &a), crc32c::crc32c_append(start, &a));
            let whole: Vec<u8> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(append(append(0, &a), &b), checksum(&whole));
            prop_assert_eq!(combine(checksum(&a), checksum(&b), b.len() as u64), checksum(&whole));
        }
    }

    #[test]
    fn check_value() {
        // The CRC-32/ISCSI catalogue check value.
        assert_eq!(checksum(b"123456789"), 0xe306_9283);
        assert_eq!(append(0, b""), 0);
    }
}
