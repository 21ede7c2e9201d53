//! The snapshot file's integrity trailer: SHA-256 of the bbolt image, appended
//! by `etcdctl snapshot save` (32 bytes), detected by `size % 512 == 32`.
//!
//! The bbolt image is `pgid × pageSize` bytes (`Tx.WriteTo`), a multiple of
//! 512, so the rule is unambiguous for files etcd writes. `snapshot restore`
//! verifies the digest unless `--skip-hash-check`; raw `member/snap/db`
//! copies carry none.

use sha2::{Digest, Sha256};

/// Length of the trailer (`sha256.Size`).
pub const TRAILER_LEN: usize = 32;

/// What the end of a snapshot file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trailer {
    /// The size says there is no trailer (a raw db file).
    Absent,
    /// A trailer that matches the SHA-256 of the bytes before it.
    Valid([u8; TRAILER_LEN]),
    /// A trailer that does not match.
    Mismatch {
        /// The digest stored in the file.
        stored: [u8; TRAILER_LEN],
        /// The digest of the bytes before it.
        computed: [u8; TRAILER_LEN],
    },
}

impl Trailer {
    /// `absent`, `valid` or `mismatch`, as the JSON outputs say it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Valid(_) => "valid",
            Self::Mismatch { .. } => "mismatch",
        }
    }

    /// Whether the file carries a trailer, valid or not.
    pub fn is_present(&self) -> bool {
        !matches!(self, Self::Absent)
    }
}

/// Whether a file of `len` bytes carries a trailer (etcd's `hasChecksum`).
pub fn has_trailer(len: u64) -> bool {
    len % 512 == TRAILER_LEN as u64
}

/// Splits a snapshot file into the bbolt image and the trailer, if the size says there is one.
pub fn split(file: &[u8]) -> (&[u8], Option<[u8; TRAILER_LEN]>) {
    if !has_trailer(file.len() as u64) {
        return (file, None);
    }
    let (db, tail) = file.split_at(file.len().saturating_sub(TRAILER_LEN));
    (db, tail.try_into().ok())
}

/// SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> [u8; TRAILER_LEN] {
    // In 4 MiB steps, each counted for progress bars (etcdsnap_bolt::progress).
    let mut h = Sha256::new();
    for chunk in bytes.chunks(4 << 20) {
        h.update(chunk);
        etcdsnap_bolt::progress::add(chunk.len() as u64);
    }
    h.finalize().into()
}

/// Verifies the trailer of a whole snapshot file.
pub fn verify(file: &[u8]) -> Trailer {
    match split(file) {
        (_, None) => Trailer::Absent,
        (db, Some(stored)) => {
            let computed = digest(db);
            if computed == stored {
                Trailer::Valid(stored)
            } else {
                Trailer::Mismatch { stored, computed }
            }
        }
    }
}

/// Lowercase hex of a digest.
pub fn hex(d: &[u8; TRAILER_LEN]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_size_and_verifies() {
        let mut f = vec![7u8; 1024];
        assert_eq!(verify(&f), Trailer::Absent);
        let d = digest(&f);
        f.extend_from_slice(&d);
        assert_eq!(verify(&f), Trailer::Valid(d));
        let last = f.len() - 1;
        f[last] ^= 1;
        assert!(matches!(verify(&f), Trailer::Mismatch { .. }));
        assert!(!has_trailer(4096) && has_trailer(4096 + 32));
    }

    #[test]
    fn known_vector() {
        assert_eq!(hex(&digest(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
