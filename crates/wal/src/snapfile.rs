//! `member/snap/*.snap` files (etcd `snapshotter.go`): `snappb.snapshot{crc, data}`
//! with crc = CRC-32C(data), data = `raftpb.Snapshot`, named `%016x-%016x.snap` (term-index).

use std::fs;
use std::path::{Path, PathBuf};

use etcdsnap_proto::raftpb;
use etcdsnap_proto::snappb;
use etcdsnap_proto::Message;

use crate::error::{Result, WalError};

/// One `.snap` file and what its check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapFile {
    /// File name.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// Term from the name.
    pub term: u64,
    /// Index from the name.
    pub index: u64,
    /// File size.
    pub size: u64,
    /// Voters of the snapshot's ConfState (when it decodes).
    pub voters: Vec<u64>,
    /// `None` when the file is good, else why not (etcd would rename it `.broken`).
    pub problem: Option<String>,
}

/// `Some((term, index))` for a `%016x-%016x.snap` name.
pub fn parse_snap_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".snap")?;
    let (a, b) = stem.split_once('-')?;
    if a.len() != 16 || b.len() != 16 {
        return None;
    }
    Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
}

/// Checks one `.snap` file's bytes as etcd's `Read` does, plus name vs metadata.
pub fn check_snap_bytes(term: u64, index: u64, bytes: &[u8]) -> (Vec<u64>, Option<String>) {
    if bytes.is_empty() {
        return (vec![], Some("empty file (ErrEmptySnapshot)".into()));
    }
    let s = match snappb::Snapshot::decode(bytes) {
        Ok(s) => s,
        Err(e) => return (vec![], Some(format!("snappb.snapshot does not decode: {e}"))),
    };
    let data = s.data.as_deref().unwrap_or(&[]);
    if data.is_empty() || s.crc == 0 {
        return (vec![], Some("empty data or zero crc (ErrEmptySnapshot)".into()));
    }
    let computed = etcdsnap_proto::crc32c::checksum(data);
    if computed != s.crc {
        return (vec![], Some(format!("crc mismatch (stored 0x{:08x}, computed 0x{computed:08x})", s.crc)));
    }
    let r = match raftpb::Snapshot::decode(data) {
        Ok(r) => r,
        Err(e) => return (vec![], Some(format!("raftpb.Snapshot does not decode: {e}"))),
    };
    let voters = r.metadata.conf_state.voters.clone();
    if r.metadata.term != term || r.metadata.index != index {
        let m = format!(
            "name says term {term} index {index} but metadata has term {} index {}",
            r.metadata.term, r.metadata.index
        );
        return (voters, Some(m));
    }
    (voters, None)
}

/// Whether `bytes` are a raft `.snap` file: a `snappb.snapshot` whose CRC-32C
/// matches its data (name and metadata aside).
pub fn looks_like_snap_file(bytes: &[u8]) -> bool {
    match snappb::Snapshot::decode(bytes) {
        Ok(s) => s
            .data
            .as_deref()
            .is_some_and(|d| !d.is_empty() && s.crc != 0 && etcdsnap_proto::crc32c::checksum(d) == s.crc),
        Err(_) => false,
    }
}

/// Every `*.snap` file of `dir`, in name order (oldest first), each checked.
pub fn check_snap_dir(dir: &Path) -> Result<Vec<SnapFile>> {
    let rd = fs::read_dir(dir).map_err(|e| WalError::io(dir, e))?;
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| WalError::io(dir, e))?;
        let Ok(name) = ent.file_name().into_string() else { continue };
        let Some((term, index)) = parse_snap_name(&name) else { continue };
        let path = ent.path();
        // Like `list_segments`: only regular files (reading a FIFO would block).
        if !fs::metadata(&path).map_err(|e| WalError::io(&path, e))?.is_file() {
            continue;
        }
        let bytes = fs::read(&path).map_err(|e| WalError::io(&path, e))?;
        let (voters, problem) = check_snap_bytes(term, index, &bytes);
        out.push(SnapFile { name, path, term, index, size: bytes.len() as u64, voters, problem });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
