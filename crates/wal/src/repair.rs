//! `wal repair` (etcd `wal.Repair`): cut a torn last record off the last segment.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Refusal, Result, WalError};
use crate::reader::read_wal;
use crate::segment::list_segments;

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairOutcome {
    /// The WAL ends cleanly; nothing was changed.
    NothingToRepair {
        /// The last segment.
        segment: String,
    },
    /// The last segment was copied to `<name>.broken` and truncated.
    Repaired {
        /// The repaired segment.
        segment: String,
        /// Its size before.
        old_size: u64,
        /// Where it was cut (end of the last valid record).
        truncated_at: u64,
        /// The copy of the damaged file.
        broken: PathBuf,
        /// What was torn.
        detail: String,
    },
}

/// Reads the whole WAL (refusing any damage other than a torn last record, as a
/// [`WalError::Corrupt`]); when the last record is torn, copies the last segment
/// to `<name>.broken` (replacing an older copy), truncates it at the last valid
/// record and fsyncs it, like etcd's `Repair`.
pub fn repair(wal_dir: &Path) -> Result<RepairOutcome> {
    let segments = list_segments(wal_dir)?;
    let Some(last) = segments.last() else {
        return Err(WalError::Refused(Refusal::NoSegments { dir: wal_dir.to_path_buf() }));
    };
    let end = read_wal(&segments, |_, _| Ok(()))?;
    let Some(torn) = end.torn else {
        return Ok(RepairOutcome::NothingToRepair { segment: last.name.clone() });
    };
    let mut broken_name = last.path.clone().into_os_string();
    broken_name.push(".broken");
    let broken = PathBuf::from(broken_name);
    fs::copy(&last.path, &broken).map_err(|e| WalError::io(&broken, e))?;
    let f = OpenOptions::new().write(true).open(&last.path).map_err(|e| WalError::io(&last.path, e))?;
    f.set_len(torn.offset).map_err(|e| WalError::io(&last.path, e))?;
    f.sync_all().map_err(|e| WalError::io(&last.path, e))?;
    Ok(RepairOutcome::Repaired {
        segment: last.name.clone(),
        old_size: last.size,
        truncated_at: torn.offset,
        broken,
        detail: torn.detail,
    })
}
