//! What a path given as input is, so that an error says it: missing, a
//! directory (data dir, member dir, WAL dir), a WAL segment, a raft `.snap`
//! file, an empty file, or bytes that are no bbolt file. Recognised by
//! layout and content (a segment's first CRC record, a `.snap` file's
//! CRC-32C), not by name; files are sniffed by their first bytes, never
//! mapped, so the operation that then maps the input maps it once.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{DataDirError, Result};

/// What a directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirKind {
    /// An etcd data dir (`member/snap/db` or `member/wal` inside).
    DataDir,
    /// An etcd member dir (`snap/db` or `wal` inside).
    MemberDir,
    /// A directory of WAL segments.
    WalDir,
    /// None of those.
    Other,
}

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// Nothing is there; `parent_missing` when its directory is missing too.
    Missing {
        /// Whether the parent directory is missing as well.
        parent_missing: bool,
    },
    /// A directory.
    Dir(DirKind),
    /// An empty file.
    Empty,
    /// A WAL segment.
    WalSegment,
    /// A raft `.snap` file.
    SnapFile,
    /// A file that starts like a bbolt file (a snapshot or db).
    Bbolt,
    /// A file that is none of the above.
    Unknown,
    /// Not a regular file nor a directory (a FIFO, a device, a socket).
    Special,
}

/// Bytes sniffed from the start of a file: a segment's or `.snap` file's
/// first record, and a bbolt meta page's magic (page 0 is within them).
const SNIFF: u64 = 64 << 10;

/// What the directory `dir` is.
pub fn dir_kind(dir: &Path) -> DirKind {
    let has_wal = |d: &Path| {
        std::fs::read_dir(d)
            .map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().ends_with(".wal")))
            .unwrap_or(false)
    };
    if dir.join("member/snap/db").is_file() || dir.join("member/wal").is_dir() {
        DirKind::DataDir
    } else if dir.join("snap/db").is_file() || dir.join("wal").is_dir() {
        DirKind::MemberDir
    } else if has_wal(dir) {
        DirKind::WalDir
    } else {
        DirKind::Other
    }
}

/// What `path` is (reads at most its first 64 KiB).
pub fn detect(path: &Path) -> InputKind {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            return InputKind::Missing { parent_missing: parent.is_some_and(|p| !p.exists()) };
        }
    };
    if meta.is_dir() {
        return InputKind::Dir(dir_kind(path));
    }
    if !meta.is_file() {
        return InputKind::Special;
    }
    let mut head = Vec::new();
    if std::fs::File::open(path).and_then(|f| f.take(SNIFF).read_to_end(&mut head)).is_err() {
        return InputKind::Unknown;
    }
    classify(&head)
}

/// What a file starting with `head` is.
pub fn classify(head: &[u8]) -> InputKind {
    if head.is_empty() {
        InputKind::Empty
    } else if etcdsnap_wal::segment::looks_like_segment(head) {
        InputKind::WalSegment
    } else if etcdsnap_wal::snapfile::looks_like_snap_file(head) {
        InputKind::SnapFile
    } else if etcdsnap_bolt::Db::open(head).is_ok() || bolt_magic(head) {
        InputKind::Bbolt
    } else {
        InputKind::Unknown
    }
}

/// Whether meta page 0's magic is where bbolt puts it (the header is 16
/// bytes, the magic the meta's first field).
fn bolt_magic(head: &[u8]) -> bool {
    head.get(16..20).is_some_and(|m| m == 0xED0C_DAEDu32.to_le_bytes())
}

impl InputKind {
    /// Why `path` of this kind is not the snapshot or db file an operation
    /// expected; `None` when it is one (or may be: an unknown file is for
    /// the bbolt reader to judge, with its own error).
    pub fn not_a_db_file(&self, path: &Path) -> Option<String> {
        let p = path.display();
        Some(match self {
            InputKind::Missing { parent_missing: true } => {
                let parent = path.parent().map(Path::display);
                format!(
                    "{p}: no such file (directory {} does not exist)",
                    parent.map_or_else(String::new, |d| d.to_string())
                )
            }
            InputKind::Missing { parent_missing: false } => format!("{p}: no such file"),
            InputKind::Dir(d) => format!("{p} is {}; expected a snapshot or db file", describe_dir(path, d)),
            InputKind::Empty => format!("{p} is empty; expected a snapshot or db file"),
            InputKind::WalSegment => format!(
                "{p} is a WAL segment, not a snapshot or db file (read WAL segments with `etcdsnap wal verify|dump` \
                 on their directory)"
            ),
            InputKind::SnapFile => {
                format!("{p} is a raft .snap file (member/snap/*.snap), not a snapshot or db file; the db file is member/snap/db")
            }
            // The reader's own error says what it is (a FIFO, a device).
            InputKind::Special | InputKind::Bbolt | InputKind::Unknown => return None,
        })
    }
}

/// A directory of kind `d` at `dir`, for messages.
pub fn describe_dir(dir: &Path, d: &DirKind) -> String {
    match d {
        DirKind::DataDir => format!("an etcd data dir (its db file is {})", dir.join("member/snap/db").display()),
        DirKind::MemberDir => format!("an etcd member dir (its db file is {})", dir.join("snap/db").display()),
        DirKind::WalDir => "a WAL directory (read it with `etcdsnap wal verify|dump`)".to_string(),
        DirKind::Other => "a directory".to_string(),
    }
}

/// The db file `path` stands for, for the commands that also take a data
/// dir or member dir (`du`, `diff`): a data dir's `member/snap/db`, a member
/// dir's `snap/db`, else `path` itself.
pub fn db_file_of(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let (data_db, member_db) = (path.join("member/snap/db"), path.join("snap/db"));
    if data_db.is_file() {
        Ok(data_db)
    } else if member_db.is_file() {
        Ok(member_db)
    } else if path.join("member").is_dir() {
        let what = format!(
            "{} is an etcd data dir without its db file ({} does not exist)",
            path.display(),
            data_db.display()
        );
        Err(DataDirError::input(path, what))
    } else {
        let what = format!(
            "{} is {}; expected a snapshot or db file, or an etcd data dir",
            path.display(),
            describe_dir(path, &dir_kind(path))
        );
        Err(DataDirError::input(path, what))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    fn testdata(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata").join(rel)
    }

    #[test]
    fn recognises_every_file_of_a_data_dir() {
        let dir = testdata("etcd-3.5.1");
        assert_eq!(detect(&dir.join("snapshot.db")), InputKind::Bbolt);
        assert_eq!(detect(&dir.join("member/snap/db")), InputKind::Bbolt);
        assert_eq!(detect(&dir), InputKind::Dir(DirKind::DataDir));
        assert_eq!(detect(&dir.join("member")), InputKind::Dir(DirKind::MemberDir));
        assert_eq!(detect(&dir.join("member/wal")), InputKind::Dir(DirKind::WalDir));
        let seg = std::fs::read_dir(dir.join("member/wal"))
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with(".wal"));
        assert_eq!(detect(&seg.unwrap().path()), InputKind::WalSegment);
        assert_eq!(detect(&dir.join("member/snap/0000000000000002-0000000000000192.snap")), InputKind::SnapFile);
        assert_eq!(detect(&dir.join("nope")), InputKind::Missing { parent_missing: false });
        assert_eq!(detect(&dir.join("nope/x")), InputKind::Missing { parent_missing: true });
        assert_eq!(classify(b""), InputKind::Empty);
        assert_eq!(classify(b"hello"), InputKind::Unknown);
        assert!(InputKind::Bbolt.not_a_db_file(&dir).is_none());
        assert!(InputKind::WalSegment.not_a_db_file(&dir).is_some_and(|m| m.contains("WAL segment")));
        assert_eq!(db_file_of(&dir).unwrap(), dir.join("member/snap/db"));
        assert_eq!(db_file_of(&dir.join("member")).unwrap(), dir.join("member/snap/db"));
        assert!(db_file_of(&dir.join("member/wal")).is_err());
    }
}
