//! A file's summary, as `bbolt info` and `bbolt stats` open with it: sizes
//! against the high-water mark, the meta in use, the freelist's state.

use crate::db::Db;
use crate::freelist::Freelist;
use crate::layout::Pgid;

/// The freelist as a summary sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreelistState {
    /// No freelist is persisted (`NoFreelistSync`, etcd's default).
    NotPersisted,
    /// A freelist page listing `ids` page ids.
    Persisted {
        /// The freelist page id (`meta.freelist`).
        page: Pgid,
        /// Ids it lists (free and pending).
        ids: usize,
    },
    /// The meta names a freelist page that cannot be read.
    Unreadable {
        /// The page the meta names (`meta.freelist`).
        page: Pgid,
    },
}

impl FreelistState {
    /// The state of `db`'s freelist.
    pub fn of(db: &Db<'_>) -> Self {
        match db.freelist() {
            Ok(Freelist::NotPersisted) => Self::NotPersisted,
            Ok(Freelist::Persisted { page, ids, .. }) => Self::Persisted { page, ids: ids.len() },
            Err(_) => Self::Unreadable { page: db.meta().freelist },
        }
    }

    /// `none`, `persisted` or `unreadable`, as the JSON outputs say it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NotPersisted => "none",
            Self::Persisted { .. } => "persisted",
            Self::Unreadable { .. } => "unreadable",
        }
    }

    /// The freelist page, when the meta names one.
    pub fn page(&self) -> Option<Pgid> {
        match self {
            Self::NotPersisted => None,
            Self::Persisted { page, .. } | Self::Unreadable { page } => Some(*page),
        }
    }

    /// How many ids the freelist lists, when it could be read.
    pub fn ids(&self) -> Option<usize> {
        match self {
            Self::Persisted { ids, .. } => Some(*ids),
            Self::NotPersisted | Self::Unreadable { .. } => None,
        }
    }
}

/// What a file's summary says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbInfo {
    /// Bytes in the file (a snapshot's trailer or preallocated tail included).
    pub file_size: u64,
    /// Page size in bytes.
    pub page_size: usize,
    /// Which meta page (0 or 1) is in use.
    pub active_meta: usize,
    /// The high-water mark (`meta.pgid`).
    pub hwm: Pgid,
    /// Bytes below the HWM (`pgid × pageSize`, etcdutl's `totalSize`).
    pub used_bytes: u64,
    /// Bytes of the file past the HWM (preallocation, a trailer), 0 when the file is short.
    pub bytes_beyond_hwm: u64,
    /// The freelist.
    pub freelist: FreelistState,
}

impl DbInfo {
    /// The summary of `db`, the whole file being `db.data()`.
    pub fn of(db: &Db<'_>) -> Self {
        let file_size = db.data().len() as u64;
        let used_bytes = db.hwm().saturating_mul(db.page_size() as u64);
        Self {
            file_size,
            page_size: db.page_size(),
            active_meta: db.metas().active,
            hwm: db.hwm(),
            used_bytes,
            bytes_beyond_hwm: file_size.saturating_sub(used_bytes),
            freelist: FreelistState::of(db),
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn sizes_of_a_snapshot_and_a_preallocated_db() {
        // A snapshot: the image, then the 32-byte trailer past the HWM.
        let snap = crate::testdata("etcd-3.5.1/snapshot.db");
        let db = Db::open(&snap).unwrap();
        let i = DbInfo::of(&db);
        assert_eq!(i.file_size, snap.len() as u64);
        assert_eq!(i.used_bytes, db.hwm() * 4096);
        assert_eq!(i.bytes_beyond_hwm, 32);
        assert_eq!(i.page_size, 4096);
        assert_eq!(i.freelist, FreelistState::NotPersisted);
        assert_eq!((i.freelist.name(), i.freelist.page(), i.freelist.ids()), ("none", None, None));
        // bbolt 1.3.12 preallocates: 16,801,792 bytes, the HWM far below.
        let raw = crate::testdata("etcd-3.5.35/member/snap/db");
        let db = Db::open(&raw).unwrap();
        let i = DbInfo::of(&db);
        assert_eq!(i.file_size, 16_801_792);
        assert_eq!(i.bytes_beyond_hwm, 16_801_792 - db.hwm() * 4096);
        assert_eq!(i.active_meta, db.metas().active);
    }

    #[test]
    fn our_builder_persists_an_empty_freelist() {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut b = crate::builder::Builder::new(&mut out, crate::builder::BuildOptions::default()).unwrap();
        b.create_bucket(b"meta", 0).unwrap();
        b.put(b"k", b"v").unwrap();
        b.close_bucket().unwrap();
        b.finish().unwrap();
        let data = out.into_inner();
        let db = Db::open(&data).unwrap();
        let f = DbInfo::of(&db).freelist;
        assert_eq!(f, FreelistState::Persisted { page: 2, ids: 0 });
        assert_eq!((f.name(), f.page(), f.ids()), ("persisted", Some(2), Some(0)));
    }

    #[test]
    fn a_short_file_has_nothing_beyond_the_hwm() {
        let mut raw = crate::testdata("etcd-3.5.1/member/snap/db");
        raw.truncate(100 * 4096);
        let db = Db::open(&raw).unwrap();
        let i = DbInfo::of(&db);
        assert!(i.used_bytes > i.file_size);
        assert_eq!(i.bytes_beyond_hwm, 0);
    }

    #[test]
    fn a_freelist_the_meta_names_but_cannot_be_read_is_unreadable() {
        // Point the active meta's freelist at page 1 (a meta page, below 2): it is named, not readable.
        let mut raw = crate::testdata("etcd-3.5.1/member/snap/db");
        let active = Db::open(&raw).unwrap().metas().active;
        let meta = active * 4096 + 16;
        // meta: magic, version, page_size, flags (4 each), root bucket (16), freelist (8) at +32.
        raw[meta + 32..meta + 40].copy_from_slice(&1u64.to_le_bytes());
        // Fix the meta's FNV-1a checksum over its first 56 bytes so the meta stays valid.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in &raw[meta..meta + 56] {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        raw[meta + 56..meta + 64].copy_from_slice(&h.to_le_bytes());
        let db = Db::open(&raw).unwrap();
        assert_eq!(db.metas().active, active);
        let f = FreelistState::of(&db);
        assert_eq!(f, FreelistState::Unreadable { page: 1 });
        assert_eq!((f.name(), f.page(), f.ids()), ("unreadable", Some(1), None));
    }
}
