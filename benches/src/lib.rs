//! Helpers of the etcdsnap benchmarks: finding (or making) the bbolt file to
//! measure, and a full scan that touches every key and value byte.

use std::path::{Path, PathBuf};
use std::process::Command;

use etcdsnap_bolt::walk::{walk, Visitor};
use etcdsnap_bolt::{BucketHeader, Db};

/// Environment variable naming the bbolt file to benchmark.
pub const FILE_VAR: &str = "ETCDSNAP_BENCH_FILE";
/// Keys of the file generated when [`FILE_VAR`] is not set.
pub const DEFAULT_KEYS: u32 = 200_000;

/// The repository root (this crate lives in `<root>/benches`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The file to benchmark: `$ETCDSNAP_BENCH_FILE`, or else
/// `target/bench-data/scan-4096-200000.db`, generated with the Go oracle
/// (`boltoracle gen --page-size 4096 --keys 200000`, about 130 MB) when missing.
pub fn bench_file() -> Result<PathBuf, String> {
    if let Some(f) = std::env::var_os(FILE_VAR) {
        let f = PathBuf::from(f);
        if !f.is_file() {
            return Err(format!("{FILE_VAR}={} is not a file", f.display()));
        }
        return Ok(f);
    }
    let root = repo_root();
    let dir = root.join("target").join("bench-data");
    let out = dir.join(format!("scan-4096-{DEFAULT_KEYS}.db"));
    if out.is_file() {
        return Ok(out);
    }
    let oracles = std::env::var_os("ETCDSNAP_ORACLES").map_or_else(|| root.join(".oracles"), PathBuf::from);
    let oracle = oracles.join("bin").join("boltoracle");
    if !oracle.is_file() {
        return Err(format!(
            "no benchmark file: set {FILE_VAR} to a bbolt file, or install the Go oracle \
             ({} missing; see tools/install-oracles.sh) so one can be generated",
            oracle.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let part = dir.join(format!("scan-4096-{DEFAULT_KEYS}.db.part"));
    eprintln!("generating {} with {} (takes about a minute)", out.display(), oracle.display());
    let status = Command::new(&oracle)
        .arg("gen")
        .arg(&part)
        .args(["--page-size", "4096", "--keys", &DEFAULT_KEYS.to_string()])
        .status()
        .map_err(|e| format!("run {}: {e}", oracle.display()))?;
    if !status.success() {
        return Err(format!("{} gen failed: {status}", oracle.display()));
    }
    std::fs::rename(&part, &out).map_err(|e| format!("rename to {}: {e}", out.display()))?;
    Ok(out)
}

/// What a full scan saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    /// Buckets entered (not counting the root bucket).
    pub buckets: u64,
    /// Key/value pairs.
    pub keys: u64,
    /// Sum of every key and value byte, so no byte can be skipped.
    pub byte_sum: u64,
}

impl<'a> Visitor<'a> for ScanStats {
    fn enter_bucket(&mut self, _path: &[Vec<u8>], _header: BucketHeader) -> etcdsnap_bolt::Result<()> {
        self.buckets = self.buckets.saturating_add(1);
        Ok(())
    }

    fn value(&mut self, _path: &[Vec<u8>], key: &'a [u8], value: &'a [u8]) -> etcdsnap_bolt::Result<()> {
        self.keys = self.keys.saturating_add(1);
        let sum = |b: &[u8]| b.iter().map(|&x| u64::from(x)).sum::<u64>();
        self.byte_sum = self.byte_sum.wrapping_add(sum(key)).wrapping_add(sum(value));
        Ok(())
    }
}

/// Walks every bucket and key of `db`, touching every key and value byte.
pub fn full_scan(db: &Db<'_>) -> etcdsnap_bolt::Result<ScanStats> {
    let mut s = ScanStats::default();
    walk(db, &mut s)?;
    Ok(s)
}
