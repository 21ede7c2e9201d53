//! The key-rule flags shared by `rewrite` and `wal rewrite`, so both apply the same rules.

use anyhow::Result;
use clap::Args;
use etcdsnap_keys::{KeyRules, Rename};

/// `--include`, `--exclude`, `--keep-key`, `--drop-key`, `--rename`.
#[derive(Debug, Args)]
pub struct KeyRuleArgs {
    /// Keep only keys under this prefix (repeatable; default: all keys).
    #[arg(long = "include", value_name = "PREFIX")]
    include: Vec<String>,
    /// Drop keys under this prefix (repeatable).
    #[arg(long = "exclude", value_name = "PREFIX")]
    exclude: Vec<String>,
    /// Keep this exact key whatever the prefixes say (repeatable), e.g. compact_rev_key.
    #[arg(long = "keep-key", value_name = "KEY")]
    keep_key: Vec<String>,
    /// Drop this exact key whatever the prefixes say (repeatable).
    #[arg(long = "drop-key", value_name = "KEY")]
    drop_key: Vec<String>,
    /// Rename a key prefix, FROM=TO (repeatable; applied after filtering; first match wins).
    #[arg(long = "rename", value_name = "FROM=TO")]
    rename: Vec<String>,
}

fn bytes(v: &[String]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

impl KeyRuleArgs {
    /// The checked rules.
    pub fn rules(&self) -> Result<KeyRules> {
        let renames = self.rename.iter().map(|r| Rename::parse(r)).collect::<Result<Vec<_>, _>>()?;
        let rules = KeyRules {
            include: bytes(&self.include),
            exclude: bytes(&self.exclude),
            keep_keys: bytes(&self.keep_key),
            drop_keys: bytes(&self.drop_key),
            renames,
        };
        rules.validate()?;
        Ok(rules)
    }
}
