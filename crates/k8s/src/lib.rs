//! Kubernetes value formats for etcdsnap: the API server's
//! `EncryptionConfiguration` and re-encryption of values that a key-bound
//! provider wrote, so a tenant's Secrets stay readable under renamed keys.
//!
//! Providers: `aesgcm` (keys from the file), KMS v2 and KMS v1 (the data key
//! from the provider's plugin over its unix socket, asked only to decrypt).
//! The [`census`] also opens `aescbc` and `secretbox` values, to count and
//! name what a configuration can and cannot read.
//!
//! kube-apiserver passes the full etcd key (its `--etcd-prefix` included) as
//! the AEAD's authenticated data of `aesgcm` and KMS values
//! (k8s.io/apiserver pkg/storage/etcd3/store.go, `authenticatedDataString`);
//! `aescbc`, `secretbox` and `identity` values do not depend on the key and are
//! carried byte for byte by the rewrite.

mod aescbc;
mod aesgcm;
pub mod census;
mod config;
mod kms;
pub mod plugin;
mod resealer;
pub mod resource;
mod secretbox;

pub use aesgcm::AesGcmResealer;
pub use config::{AesKey, EncryptionConfig, EntryProvider, KmsApiVersion, KmsProvider, ProviderKind, ResourceEntry};
pub use kms::{EncryptedObject, KmsResealer};
pub use resealer::ConfigResealer;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum K8sError {
    /// The configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is not a valid EncryptionConfiguration.
    #[error("{path}: {what}")]
    Config {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong (key material is never included).
        what: String,
    },
    /// No random bytes for the nonce seed.
    #[error("no randomness for nonces: {0}")]
    Random(String),
}
