//! The backend's `meta/consistent_index`: the raft index of the last WAL entry
//! applied to the db (8 bytes, big-endian; etcd's `UnsafeReadConsistentIndex`).
//!
//! At boot etcd replays the WAL entries above it, so it decides which writes a
//! WAL rewrite may touch, and a data dir is sound only when it lies between the
//! newest usable snapshot's index and the WAL's last index
//! (`etcdsnap_wal::verify::consistent_index_problems`). Only this key is read:
//! a damaged value of another meta key does not hide it.

use std::path::{Path, PathBuf};

use etcdsnap_bolt::Db;
use etcdsnap_io::MappedFile;

use crate::schema::{CONSISTENT_INDEX, META};

/// Why the `consistent_index` of a db could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsistentIndexError {
    /// The file could not be opened or mapped.
    #[error("cannot read {}", path.display())]
    Read {
        /// The db file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: etcdsnap_io::Error,
    },
    /// The file is no bbolt file.
    #[error("{} is not a bbolt file", path.display())]
    NotBolt {
        /// The db file.
        path: PathBuf,
        /// Why its metas do not read.
        #[source]
        source: etcdsnap_bolt::Error,
    },
    /// The bbolt tree down to the key could not be read.
    #[error(transparent)]
    Bolt(#[from] etcdsnap_bolt::Error),
    /// The value is not 8 bytes.
    #[error("consistent_index is {len} bytes, not 8")]
    Length {
        /// Its length.
        len: usize,
    },
}

/// Decodes a stored `consistent_index` value (8 bytes, big-endian).
pub fn decode(value: &[u8]) -> Result<u64, ConsistentIndexError> {
    let arr: [u8; 8] = value.try_into().map_err(|_| ConsistentIndexError::Length { len: value.len() })?;
    Ok(u64::from_be_bytes(arr))
}

/// `meta/consistent_index` of `db`; `None` when the bucket or the key is absent.
pub fn consistent_index(db: &Db<'_>) -> Result<Option<u64>, ConsistentIndexError> {
    let Some(meta) = db.bucket(&[META])? else { return Ok(None) };
    meta.get(CONSISTENT_INDEX)?.map(decode).transpose()
}

/// `meta/consistent_index` of the db file at `path` (a data dir's
/// `member/snap/db`, read as it is: no snapshot trailer).
pub fn read_consistent_index(path: &Path) -> Result<Option<u64>, ConsistentIndexError> {
    let file =
        MappedFile::open(path).map_err(|source| ConsistentIndexError::Read { path: path.to_path_buf(), source })?;
    let db = Db::open(&file).map_err(|source| ConsistentIndexError::NotBolt { path: path.to_path_buf(), source })?;
    consistent_index(&db)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    fn testdata() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
    }

    #[test]
    fn decodes_eight_big_endian_bytes_only() {
        assert_eq!(decode(&[0, 0, 0, 0, 0, 0, 0x02, 0x5b]).unwrap(), 0x25b);
        assert_eq!(decode(&u64::MAX.to_be_bytes()).unwrap(), u64::MAX);
        for bad in [&[][..], &[1; 7][..], &[1; 9][..]] {
            let e = decode(bad).unwrap_err();
            assert!(matches!(e, ConsistentIndexError::Length { len } if len == bad.len()));
            assert_eq!(e.to_string(), format!("consistent_index is {} bytes, not 8", bad.len()));
        }
    }

    #[test]
    fn fixture_dbs_agree_with_the_meta_bucket_and_the_wal() {
        for v in ["etcd-3.4.23", "etcd-3.5.1", "etcd-3.7.3"] {
            let path = testdata().join(v).join("member/snap/db");
            let ci = read_consistent_index(&path).unwrap().unwrap();
            let data = std::fs::read(&path).unwrap();
            let db = Db::open(&data).unwrap();
            assert_eq!(consistent_index(&db).unwrap(), Some(ci), "{v}");
            assert_eq!(crate::schema::read_meta(&db).unwrap().consistent_index, Some(ci), "{v}");
            // The server took snapshots every 200 entries: the newest .snap is at or below it.
            let newest_snap = std::fs::read_dir(testdata().join(v).join("member/snap"))
                .unwrap()
                .filter_map(|e| {
                    let name = e.unwrap().file_name().into_string().unwrap();
                    let index = name.strip_suffix(".snap")?.split('-').nth(1)?.to_string();
                    u64::from_str_radix(&index, 16).ok()
                })
                .max()
                .unwrap();
            assert!(ci >= newest_snap && ci < newest_snap + 400, "{v}: consistent_index {ci}, snap {newest_snap}");
        }
    }

    #[test]
    fn a_db_without_meta_has_none() {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut b = etcdsnap_bolt::builder::Builder::new(&mut out, Default::default()).unwrap();
        b.create_bucket(b"key", 0).unwrap();
        b.close_bucket().unwrap();
        b.create_bucket(META, 0).unwrap();
        b.put(b"term", &5u64.to_be_bytes()).unwrap();
        b.close_bucket().unwrap();
        b.finish().unwrap();
        let data = out.into_inner();
        assert_eq!(consistent_index(&Db::open(&data).unwrap()).unwrap(), None);

        let mut out = std::io::Cursor::new(Vec::new());
        let mut b = etcdsnap_bolt::builder::Builder::new(&mut out, Default::default()).unwrap();
        b.create_bucket(b"key", 0).unwrap();
        b.close_bucket().unwrap();
        b.finish().unwrap();
        let data = out.into_inner();
        assert_eq!(consistent_index(&Db::open(&data).unwrap()).unwrap(), None);
    }

    #[test]
    fn a_short_value_is_an_error_naming_its_length() {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut b = etcdsnap_bolt::builder::Builder::new(&mut out, Default::default()).unwrap();
        b.create_bucket(META, 0).unwrap();
        b.put(CONSISTENT_INDEX, &[0, 0, 1]).unwrap();
        b.close_bucket().unwrap();
        b.finish().unwrap();
        let data = out.into_inner();
        let e = consistent_index(&Db::open(&data).unwrap()).unwrap_err();
        assert!(matches!(e, ConsistentIndexError::Length { len: 3 }), "{e}");
    }

    #[test]
    fn files_that_are_no_db_say_which() {
        let missing = testdata().join("no-such-dir/db");
        let e = read_consistent_index(&missing).unwrap_err();
        assert!(matches!(&e, ConsistentIndexError::Read { path, .. } if path == &missing), "{e}");
        assert!(e.to_string().starts_with("cannot read "));
        let segment = testdata().join("etcd-3.5.1/member/wal/0000000000000000-0000000000000000.wal");
        let e = read_consistent_index(&segment).unwrap_err();
        assert!(matches!(&e, ConsistentIndexError::NotBolt { path, .. } if path == &segment), "{e}");
        assert_eq!(e.to_string(), format!("{} is not a bbolt file", segment.display()));
    }
}
