//! `verify --encryption-config`: the decryptability census of a file, in
//! words (the JSON is the library's `CensusReport`, as `encryption`).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use etcdsnap_k8s::census::{CensusKind, CensusReport, Opener};

use crate::output::Out;

/// The opener of `--encryption-config FILE` (KMS plugins connected on first use).
pub fn opener(path: Option<&Path>) -> Result<Option<Arc<Opener>>> {
    let Some(path) = path else { return Ok(None) };
    let cfg = etcdsnap_k8s::EncryptionConfig::load(path)?;
    let o = Opener::new(&cfg).with_context(|| format!("--encryption-config {}", path.display()))?;
    Ok(Some(Arc::new(o)))
}

/// The census of a snapshot or db file that verified clean.
pub fn run(path: &Path, file: &etcdsnap_io::MappedFile, opener: &Opener) -> Result<CensusReport> {
    let db = crate::paths::open_snapshot(path, file)?;
    let r = etcdsnap_remote::check::census(&db, opener)
        .with_context(|| format!("{}: reading keys for the encryption census", path.display()))?;
    crate::paths::unchanged(file)?;
    Ok(r)
}

/// The census in lines: totals, a line per resource and key, the named findings.
pub fn lines(r: &CensusReport, out: &mut Out) -> Result<()> {
    out.line(format!(
        "  encryption: {} values: {} opened, {} failed to open, {} plaintext that should be encrypted, {} under keys the config does not list{}",
        r.values,
        r.opened,
        r.failed,
        r.plaintext,
        r.unknown_key,
        if r.not_covered > 0 { format!(" ({} of resources no rule covers)", r.not_covered) } else { String::new() }
    ))?;
    for k in &r.keys {
        let key = if k.key.is_empty() { k.provider.clone() } else { format!("{}/{}", k.provider, k.key) };
        let failed = if k.failed > 0 { format!(", {} failed", k.failed) } else { String::new() };
        out.line(format!("    {} {key}: {} opened{failed}", k.resource, k.opened))?;
    }
    for kind in [CensusKind::Failed, CensusKind::Plaintext, CensusKind::UnknownKey] {
        let mut listed = 0u64;
        for f in r.findings.iter().filter(|f| f.kind == kind) {
            listed = listed.saturating_add(1);
            out.line(format!("  problem: encryption-{}: key {} ({}): {}", kind.code(), f.key, f.resource, f.message))?;
        }
        let more = r.count(kind).saturating_sub(listed);
        if more > 0 {
            out.line(format!("  … and {more} more encryption-{} values", kind.code()))?;
        }
    }
    Ok(())
}
