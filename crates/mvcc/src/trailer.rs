//! The snapshot file's integrity trailer: SHA-256 of the bbolt image, appended
//! by `etcdctl snapshot save` (32 bytes), detected by `size % 512 == 32`.
//!
//! The bbolt image is `pgid × pageSize` bytes (`Tx.WriteTo`), a multiple of
//! 512, so the rule is unambiguous for files etcd writes. `snapshot restore`
//! verifies the digest unless `--skip-hash-check`; raw `member/snap/db`
//! copies carry none.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

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
    let (db, tail) = file.split_at(file.len() - TRAILER_LEN);
    (db, tail.try_into().ok())
}

/// SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> [u8; TRAILER_LEN] {
    Sha256::digest(bytes).into()
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

/// Hashes the first `len` bytes of `file` and appends the digest after them.
pub fn append(file: &mut File, len: u64) -> std::io::Result<[u8; TRAILER_LEN]> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        file.read_exact(chunk)?;
        hasher.update(&*chunk);
        left -= want as u64;
    }
    let d: [u8; TRAILER_LEN] = hasher.finalize().into();
    file.seek(SeekFrom::Start(len))?;
    file.write_all(&d)?;
    file.set_len(len + TRAILER_LEN as u64)?;
    Ok(d)
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
