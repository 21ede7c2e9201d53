//! Which directory is which: a WAL dir, a member dir (`wal/`, `snap/`) or a data dir (`member/…`).

use std::path::{Path, PathBuf};

/// The parts of an etcd data directory found from one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalPaths {
    /// The WAL directory.
    pub wal_dir: PathBuf,
    /// `member/snap`, when the path was a member or data dir and it exists.
    pub snap_dir: Option<PathBuf>,
    /// `member/snap/db`, when it exists.
    pub db: Option<PathBuf>,
}

impl WalPaths {
    /// Resolves `dir`: a data dir (has `member/wal`), a member dir (has `wal`), else a WAL dir.
    pub fn resolve(dir: &Path) -> WalPaths {
        let member = if dir.join("member").join("wal").is_dir() {
            Some(dir.join("member"))
        } else if dir.join("wal").is_dir() {
            Some(dir.to_path_buf())
        } else {
            None
        };
        match member {
            Some(m) => {
                let snap = m.join("snap");
                let db = snap.join("db");
                WalPaths {
                    wal_dir: m.join("wal"),
                    db: db.is_file().then_some(db),
                    snap_dir: snap.is_dir().then_some(snap),
                }
            }
            None => WalPaths { wal_dir: dir.to_path_buf(), snap_dir: None, db: None },
        }
    }
}
