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

    /// The digest stored in the file, when there is a trailer.
    pub fn stored(&self) -> Option<[u8; TRAILER_LEN]> {
        match self {
            Self::Absent => None,
            Self::Valid(d) | Self::Mismatch { stored: d, .. } => Some(*d),
        }
    }
}

/// What a reader knows of a file's trailer: verified, or only seen.
/// `etcdutl snapshot status` never verifies it; `etcdsnap status` does on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailerState {
    /// The size says there is no trailer.
    Absent,
    /// A trailer is there; its digest was not checked.
    Unchecked([u8; TRAILER_LEN]),
    /// The trailer was checked (its digest computed over the whole image).
    Checked(Trailer),
}

impl TrailerState {
    /// The trailer of `file`, its digest computed when `verify` (one SHA-256 pass), else only read.
    pub fn read(file: &[u8], verify: bool) -> Self {
        if verify {
            return Self::Checked(self::verify(file));
        }
        match split(file).1 {
            Some(d) => Self::Unchecked(d),
            None => Self::Absent,
        }
    }

    /// `absent`, `present` (not checked), `valid` or `mismatch`, as the JSON outputs say it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Unchecked(_) => "present",
            Self::Checked(t) => t.name(),
        }
    }

    /// The digest stored in the file, when there is a trailer.
    pub fn stored(&self) -> Option<[u8; TRAILER_LEN]> {
        match self {
            Self::Absent => None,
            Self::Unchecked(d) => Some(*d),
            Self::Checked(t) => t.stored(),
        }
    }

    /// Whether the trailer was checked and does not match: the file is damaged.
    pub fn is_mismatch(&self) -> bool {
        matches!(self, Self::Checked(Trailer::Mismatch { .. }))
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
    digest_metered(bytes, None)
}

/// SHA-256 of `bytes`, in 4 MiB steps each told to `meter` (a progress bar's count).
pub fn digest_metered(bytes: &[u8], meter: Option<&etcdsnap_io::Meter>) -> [u8; TRAILER_LEN] {
    let mut h = Sha256::new();
    for chunk in bytes.chunks(4 << 20) {
        h.update(chunk);
        if let Some(m) = meter {
            m.add(chunk.len() as u64);
        }
    }
    h.finalize().into()
}

/// Verifies the trailer of a whole snapshot file.
pub fn verify(file: &[u8]) -> Trailer {
    verify_metered(file, None)
}

/// [`verify`] of a mapped file, the image read in order through `pread`
/// ([`etcdsnap_io::seq`]) rather than through the map, unless
/// `ETCDSNAP_SEQUENTIAL=map`; `meter` is told the bytes hashed. A file that
/// shrinks while it is read is reported as changed.
pub fn verify_file(
    file: &etcdsnap_io::MappedFile,
    meter: Option<&etcdsnap_io::Meter>,
) -> Result<Trailer, etcdsnap_io::Error> {
    verify_file_as(file, meter, etcdsnap_io::seq::sequential())
}

/// [`verify_file`] reading the file as `mode` says.
pub fn verify_file_as(
    file: &etcdsnap_io::MappedFile,
    meter: Option<&etcdsnap_io::Meter>,
    mode: etcdsnap_io::seq::Sequential,
) -> Result<Trailer, etcdsnap_io::Error> {
    if mode == etcdsnap_io::seq::Sequential::Map {
        return Ok(verify_metered(file, meter));
    }
    let Some(stored) = split(file).1 else { return Ok(Trailer::Absent) };
    let image = (file.len() as u64).saturating_sub(TRAILER_LEN as u64);
    let mut h = Sha256::new();
    let mut r = etcdsnap_io::seq::SeqReader::new(file.file(), file.path(), 0, image, etcdsnap_io::seq::CHUNK);
    while let Some(chunk) = r.next_chunk()? {
        h.update(chunk);
        if let Some(m) = meter {
            m.add(chunk.len() as u64);
        }
    }
    let computed: [u8; TRAILER_LEN] = h.finalize().into();
    Ok(if computed == stored { Trailer::Valid(stored) } else { Trailer::Mismatch { stored, computed } })
}

/// [`verify`], telling `meter` the bytes hashed.
pub fn verify_metered(file: &[u8], meter: Option<&etcdsnap_io::Meter>) -> Trailer {
    match split(file) {
        (_, None) => Trailer::Absent,
        (db, Some(stored)) => {
            let computed = digest_metered(db, meter);
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
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn reading_and_mapping_give_the_same_trailer_and_count() {
        use etcdsnap_io::seq::Sequential;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
        for rel in ["etcd-3.5.1/snapshot.db", "etcd-3.6.16/snapshot.db", "etcd-3.5.1/member/snap/db"] {
            let file = etcdsnap_io::MappedFile::open(root.join(rel)).unwrap();
            let (read, map) = (etcdsnap_io::Meter::new(), etcdsnap_io::Meter::new());
            let a = verify_file_as(&file, Some(&read), Sequential::Read).unwrap();
            let b = verify_file_as(&file, Some(&map), Sequential::Map).unwrap();
            assert_eq!(a, b, "{rel}");
            assert_eq!(a, verify(&file), "{rel}");
            assert_eq!(read.done(), map.done(), "{rel}");
            assert_eq!(matches!(a, Trailer::Valid(_)), rel.ends_with("snapshot.db"), "{rel}");
        }
    }

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
    fn state_names_the_trailer_checked_or_not() {
        let mut f = vec![7u8; 1024];
        assert_eq!(TrailerState::read(&f, false), TrailerState::Absent);
        assert_eq!(TrailerState::read(&f, true), TrailerState::Checked(Trailer::Absent));
        assert_eq!((TrailerState::Absent.name(), TrailerState::Absent.stored()), ("absent", None));
        assert_eq!(TrailerState::Checked(Trailer::Absent).name(), "absent");
        let d = digest(&f);
        f.extend_from_slice(&d);
        let seen = TrailerState::read(&f, false);
        assert_eq!(seen, TrailerState::Unchecked(d));
        assert_eq!((seen.name(), seen.stored(), seen.is_mismatch()), ("present", Some(d), false));
        let checked = TrailerState::read(&f, true);
        assert_eq!((checked.name(), checked.stored(), checked.is_mismatch()), ("valid", Some(d), false));
        // One flipped bit of the image: only a checked state knows it.
        f[0] ^= 1;
        let seen = TrailerState::read(&f, false);
        assert_eq!((seen.name(), seen.is_mismatch()), ("present", false));
        let checked = TrailerState::read(&f, true);
        assert_eq!((checked.name(), checked.stored(), checked.is_mismatch()), ("mismatch", Some(d), true));
        assert!(matches!(checked, TrailerState::Checked(Trailer::Mismatch { computed, .. }) if computed != d));
    }

    #[test]
    fn fixture_snapshot_has_a_valid_trailer_and_its_db_none() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/etcd-3.4.23");
        let snap = std::fs::read(root.join("snapshot.db")).unwrap();
        let t = TrailerState::read(&snap, true);
        assert_eq!(t.name(), "valid");
        assert_eq!(t.stored().as_ref().map(|d| d.as_slice()), snap.get(snap.len() - TRAILER_LEN..));
        let db = std::fs::read(root.join("member/snap/db")).unwrap();
        assert_eq!(TrailerState::read(&db, true), TrailerState::Checked(Trailer::Absent));
    }

    #[test]
    fn known_vector() {
        assert_eq!(hex(&digest(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
