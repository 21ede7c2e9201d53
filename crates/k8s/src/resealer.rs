//! The re-encryption hook of a whole EncryptionConfiguration: each key-bound
//! value goes to the provider its prefix names (aesgcm keys from the file,
//! KMS v2 and v1 through their plugins).

use std::collections::BTreeMap;

use etcdsnap_keys::Reseal;

use crate::aesgcm::AesGcmResealer;
use crate::config::EncryptionConfig;
use crate::kms::KmsResealer;
use crate::K8sError;

/// Re-seals the values of every key-bound provider of an EncryptionConfiguration
/// for their renamed etcd key: the [`Reseal`] hook `rewrite --reencrypt` uses.
#[derive(Debug)]
pub struct ConfigResealer {
    aesgcm: AesGcmResealer,
    kms: KmsResealer,
}

impl ConfigResealer {
    /// A resealer for `cfg`. KMS plugins are connected when the first value needs them.
    pub fn new(cfg: &EncryptionConfig) -> Result<Self, K8sError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| K8sError::Random(e.to_string()))?;
        Ok(Self { aesgcm: AesGcmResealer::new(cfg)?, kms: KmsResealer::new(&cfg.kms, seed) })
    }
}

impl Reseal for ConfigResealer {
    fn check(&self, old_key: &[u8], value: &[u8]) -> Result<String, String> {
        if KmsResealer::handles(value) {
            return self.kms.check(old_key, value);
        }
        self.aesgcm.check(old_key, value)
    }

    fn reseal(&self, old_key: &[u8], new_key: &[u8], rev: &[u8], value: &[u8]) -> Result<(String, Vec<u8>), String> {
        if KmsResealer::handles(value) {
            return self.kms.reseal(old_key, new_key, rev, value);
        }
        self.aesgcm.reseal(old_key, new_key, rev, value)
    }

    fn calls(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.kms.calls()
    }
}
