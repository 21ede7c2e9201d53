//! The re-sealing seam between the rewrite (`etcdsnap-mvcc`) and the
//! Kubernetes encryption providers (`etcdsnap-k8s`): defined here, below
//! both, so neither depends on the other.

use std::collections::BTreeMap;

/// Re-seals values that a key-bound encryption provider wrote (the etcd key is
/// their authenticated data), so they stay readable under their renamed key.
/// Implemented by `etcdsnap-k8s` from a Kubernetes EncryptionConfiguration.
pub trait Reseal: Send + Sync + std::fmt::Debug {
    /// Called in the analysis pass, before anything is written, for every
    /// key-bound value under a renamed key: decrypts it under `old_key` and
    /// returns the label it is counted under (`aesgcm/key1`), or why it
    /// cannot be re-sealed (wrong key, unknown key name, unsupported provider).
    fn check(&self, old_key: &[u8], value: &[u8]) -> Result<String, String>;

    /// The value sealed again for `new_key`: same provider and key name, a
    /// new nonce. Called once per value, in the write pass. `rev` (the
    /// revision key) is unique per stored value, so an implementation can
    /// derive nonces from it. The output must have the input's length (the
    /// rewrite lays its pages out before it re-seals).
    fn reseal(&self, old_key: &[u8], new_key: &[u8], rev: &[u8], value: &[u8]) -> Result<(String, Vec<u8>), String>;

    /// Calls made to outside services so far (a KMS plugin's `Status`,
    /// `Decrypt`), by provider label and method; for the report.
    fn calls(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        BTreeMap::new()
    }
}
