//! kube-apiserver's `EncryptionConfiguration` (apiserver.config.k8s.io/v1),
//! read for the providers that bind values to their etcd key.

use std::path::Path;

use base64::Engine;
use serde::Deserialize;

use crate::K8sError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    kind: Option<String>,
    #[serde(default)]
    resources: Vec<ResourceConfig>,
}

#[derive(Deserialize)]
struct ResourceConfig {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<serde_yaml::Value>,
}

#[derive(Deserialize)]
struct KeysConfig {
    #[serde(default)]
    keys: Vec<KeyConfig>,
}

#[derive(Deserialize)]
struct KeyConfig {
    name: String,
    secret: String,
}

/// A provider kind as the configuration names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProviderKind {
    /// `aesgcm`: AES-GCM, the etcd key is authenticated data.
    AesGcm,
    /// `aescbc`: not bound to the key.
    AesCbc,
    /// `secretbox`: not bound to the key.
    Secretbox,
    /// `kms` (v1 or v2): bound to the key; needs the KMS plugin.
    Kms,
    /// `identity`: plain values.
    Identity,
}

/// One AES key of an `aesgcm` provider. Its secret never appears in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey {
    /// The key name (`k8s:enc:aesgcm:v1:<name>:`).
    pub name: String,
    /// 16, 24 or 32 bytes.
    pub secret: Vec<u8>,
    /// The resources of the configuration entry it came from.
    pub resources: Vec<String>,
}

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AesKey")
            .field("name", &self.name)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("resources", &self.resources)
            .finish()
    }
}

/// What etcdsnap needs of an EncryptionConfiguration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionConfig {
    /// Every `aesgcm` key, in file order.
    pub aesgcm: Vec<AesKey>,
    /// Provider kinds present (for messages about what cannot be handled).
    pub kinds: Vec<ProviderKind>,
}

impl EncryptionConfig {
    /// Reads and validates `path` (YAML or JSON).
    pub fn load(path: &Path) -> Result<Self, K8sError> {
        let text = std::fs::read_to_string(path).map_err(|source| K8sError::Io { path: path.to_path_buf(), source })?;
        Self::parse(&text).map_err(|what| K8sError::Config { path: path.to_path_buf(), what })
    }

    /// Parses the text of an EncryptionConfiguration.
    pub fn parse(text: &str) -> Result<Self, String> {
        // serde_yaml's messages quote the offending text, which could be a secret: keep only the location.
        let file: File = serde_yaml::from_str(text).map_err(|e| match e.location() {
            Some(l) => {
                format!("not an EncryptionConfiguration (YAML error at line {}, column {})", l.line(), l.column())
            }
            None => "not an EncryptionConfiguration (YAML error)".to_string(),
        })?;
        if file.kind.as_deref() != Some("EncryptionConfiguration") {
            return Err(format!("kind is {:?}, expected EncryptionConfiguration", file.kind.unwrap_or_default()));
        }
        let mut cfg = EncryptionConfig::default();
        for (i, rc) in file.resources.iter().enumerate() {
            for p in &rc.providers {
                let map = p.as_mapping().ok_or_else(|| format!("resources[{i}]: a provider is not a mapping"))?;
                for (k, v) in map {
                    let kind = match k.as_str() {
                        Some("aesgcm") => ProviderKind::AesGcm,
                        Some("aescbc") => ProviderKind::AesCbc,
                        Some("secretbox") => ProviderKind::Secretbox,
                        Some("kms") => ProviderKind::Kms,
                        Some("identity") => ProviderKind::Identity,
                        other => return Err(format!("resources[{i}]: unknown provider {other:?}")),
                    };
                    if !cfg.kinds.contains(&kind) {
                        cfg.kinds.push(kind);
                    }
                    if kind != ProviderKind::AesGcm {
                        continue;
                    }
                    let keys: KeysConfig = serde_yaml::from_value(v.clone())
                        .map_err(|_| format!("resources[{i}]: aesgcm provider without a valid keys list"))?;
                    for key in keys.keys {
                        let secret = base64::engine::general_purpose::STANDARD
                            .decode(key.secret.trim())
                            .map_err(|_| format!("resources[{i}]: aesgcm key {:?}: secret is not base64", key.name))?;
                        if ![16, 24, 32].contains(&secret.len()) {
                            return Err(format!(
                                "resources[{i}]: aesgcm key {:?}: {} bytes, expected 16, 24 or 32",
                                key.name,
                                secret.len()
                            ));
                        }
                        cfg.aesgcm.push(AesKey { name: key.name, secret, resources: rc.resources.clone() });
                    }
                }
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm:
          keys:
            - name: key1
              secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
      - identity: {}
  - resources: [configmaps]
    providers:
      - aescbc:
          keys:
            - name: k
              secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
"#;

    #[test]
    fn reads_aesgcm_keys_and_kinds() {
        let c = EncryptionConfig::parse(CFG).unwrap_or_default();
        assert_eq!(c.aesgcm.len(), 1);
        assert_eq!(c.aesgcm.first().map(|k| (k.name.as_str(), k.secret.len())), Some(("key1", 32)));
        assert_eq!(c.kinds, vec![ProviderKind::AesGcm, ProviderKind::Identity, ProviderKind::AesCbc]);
        assert!(!format!("{c:?}").contains("MDEyMzQ1"), "no key material in Debug");
    }

    #[test]
    fn refuses_bad_configs_without_quoting_secrets() {
        let bad = CFG.replace("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "c2VjcmV0");
        let e = EncryptionConfig::parse(&bad).err().unwrap_or_default();
        assert!(e.contains("6 bytes") && !e.contains("c2VjcmV0"), "{e}");
        let e = EncryptionConfig::parse("kind: Pod\n").err().unwrap_or_default();
        assert!(e.contains("EncryptionConfiguration"), "{e}");
        let e = EncryptionConfig::parse("kind: [\n").err().unwrap_or_default();
        assert!(e.contains("YAML error"), "{e}");
    }
}
