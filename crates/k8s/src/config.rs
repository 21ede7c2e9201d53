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

/// The `kms` provider's fields (apiserver.config.k8s.io/v1 `KMSConfiguration`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KmsConfig {
    #[serde(default)]
    api_version: String,
    name: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    timeout: Option<String>,
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

/// One key of an `aesgcm`, `aescbc` or `secretbox` provider. Its secret never appears in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey {
    /// The key name (`k8s:enc:<provider>:v1:<name>:`).
    pub name: String,
    /// 16, 24 or 32 bytes (secretbox: 32).
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

/// The KMS plugin API a `kms` provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KmsApiVersion {
    /// `apiVersion: v1` (or none): the deprecated v1beta1 plugin API, values `k8s:enc:kms:v1:<name>:`.
    V1,
    /// `apiVersion: v2`: the `k8s.io/kms` v2 API, values `k8s:enc:kms:v2:<name>:`.
    V2,
}

impl KmsApiVersion {
    /// `v1` or `v2`, as in the value prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

/// One `kms` provider of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsProvider {
    /// The provider name (`k8s:enc:kms:v2:<name>:`), unique in the file.
    pub name: String,
    /// The plugin API.
    pub api_version: KmsApiVersion,
    /// The plugin's unix socket path (from `endpoint: unix:///path`).
    pub socket: std::path::PathBuf,
    /// The endpoint as written.
    pub endpoint: String,
    /// Deadline of each plugin call (`timeout`, default 3s as upstream).
    pub timeout: std::time::Duration,
    /// The resources of the configuration entry it came from.
    pub resources: Vec<String>,
}

/// One provider of a `resources:` entry, with what opens its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryProvider {
    /// `aesgcm` and its keys, in order.
    AesGcm(Vec<AesKey>),
    /// `aescbc` and its keys, in order.
    AesCbc(Vec<AesKey>),
    /// `secretbox` and its keys (32 bytes each), in order.
    Secretbox(Vec<AesKey>),
    /// `kms`: the provider of that name in [`EncryptionConfig::kms`].
    Kms {
        /// The provider name.
        name: String,
        /// The plugin API.
        api_version: KmsApiVersion,
    },
    /// `identity`: values stored in the clear.
    Identity,
}

impl EntryProvider {
    /// The kind of provider.
    pub fn kind(&self) -> ProviderKind {
        match self {
            Self::AesGcm(_) => ProviderKind::AesGcm,
            Self::AesCbc(_) => ProviderKind::AesCbc,
            Self::Secretbox(_) => ProviderKind::Secretbox,
            Self::Kms { .. } => ProviderKind::Kms,
            Self::Identity => ProviderKind::Identity,
        }
    }
}

/// One `resources:` entry: the resources it names and its providers, the first one writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceEntry {
    /// As written: `secrets`, `deployments.apps`, `*.apps`, `*.` (every core resource), `*.*`.
    pub resources: Vec<String>,
    /// In file order.
    pub providers: Vec<EntryProvider>,
}

/// What etcdsnap needs of an EncryptionConfiguration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionConfig {
    /// Every `aesgcm` key, in file order.
    pub aesgcm: Vec<AesKey>,
    /// Every `kms` provider, in file order.
    pub kms: Vec<KmsProvider>,
    /// Provider kinds present (for messages about what cannot be handled).
    pub kinds: Vec<ProviderKind>,
    /// The `resources:` entries, in file order (what the census judges by).
    pub entries: Vec<ResourceEntry>,
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
        // Upstream refuses a rule masked by an earlier `*.group` or `*.*` rule
        // (encryptionconfig.getTransformerOverridesAndKMSPluginProbes).
        let mut seen: Vec<crate::resource::GroupResource> = Vec::new();
        for (i, rc) in file.resources.iter().enumerate() {
            let mut entry = ResourceEntry { resources: rc.resources.clone(), providers: Vec::new() };
            for r in &rc.resources {
                let gr = crate::resource::GroupResource::parse(r);
                for mask in [gr.any_in_group(), crate::resource::GroupResource::any()] {
                    if seen.contains(&mask) {
                        return Err(format!(
                            "resources[{i}]: resource {r:?} is masked by earlier rule {:?}",
                            mask.to_string()
                        ));
                    }
                }
                seen.push(gr);
            }
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
                    let provider = match kind {
                        ProviderKind::Kms => {
                            let k = kms_provider(v, &rc.resources).map_err(|e| format!("resources[{i}]: {e}"))?;
                            if cfg.kms.iter().any(|o| o.name == k.name) {
                                // Upstream validation refuses it too: the name alone selects the provider of a value.
                                return Err(format!("resources[{i}]: kms provider name {:?} is used twice", k.name));
                            }
                            let p = EntryProvider::Kms { name: k.name.clone(), api_version: k.api_version };
                            cfg.kms.push(k);
                            p
                        }
                        ProviderKind::AesGcm => {
                            let keys = keys(v, "aesgcm", &[16, 24, 32], &rc.resources)
                                .map_err(|e| format!("resources[{i}]: {e}"))?;
                            cfg.aesgcm.extend(keys.iter().cloned());
                            EntryProvider::AesGcm(keys)
                        }
                        ProviderKind::AesCbc => EntryProvider::AesCbc(
                            keys(v, "aescbc", &[16, 24, 32], &rc.resources)
                                .map_err(|e| format!("resources[{i}]: {e}"))?,
                        ),
                        ProviderKind::Secretbox => EntryProvider::Secretbox(
                            keys(v, "secretbox", &[32], &rc.resources).map_err(|e| format!("resources[{i}]: {e}"))?,
                        ),
                        ProviderKind::Identity => EntryProvider::Identity,
                    };
                    entry.providers.push(provider);
                }
            }
            cfg.entries.push(entry);
        }
        Ok(cfg)
    }
}

/// The keys of an `aesgcm`, `aescbc` or `secretbox` provider (sizes as upstream's validation).
fn keys(v: &serde_yaml::Value, kind: &str, sizes: &[usize], resources: &[String]) -> Result<Vec<AesKey>, String> {
    let keys: KeysConfig =
        serde_yaml::from_value(v.clone()).map_err(|_| format!("{kind} provider without a valid keys list"))?;
    if keys.keys.is_empty() {
        return Err(format!("{kind} provider has no keys"));
    }
    let mut out = Vec::with_capacity(keys.keys.len());
    for key in keys.keys {
        if key.name.is_empty() {
            return Err(format!("{kind} key with an empty name"));
        }
        let secret = base64::engine::general_purpose::STANDARD
            .decode(key.secret.trim())
            .map_err(|_| format!("{kind} key {:?}: secret is not base64", key.name))?;
        if !sizes.contains(&secret.len()) {
            let want: Vec<String> = sizes.iter().map(ToString::to_string).collect();
            return Err(format!("{kind} key {:?}: {} bytes, expected {}", key.name, secret.len(), want.join(", ")));
        }
        out.push(AesKey { name: key.name, secret, resources: resources.to_vec() });
    }
    Ok(out)
}

fn kms_provider(v: &serde_yaml::Value, resources: &[String]) -> Result<KmsProvider, String> {
    let k: KmsConfig =
        serde_yaml::from_value(v.clone()).map_err(|_| "kms provider without a valid name/endpoint".to_string())?;
    let api_version = match k.api_version.as_str() {
        "" | "v1" => KmsApiVersion::V1,
        "v2" => KmsApiVersion::V2,
        other => return Err(format!("kms provider {:?}: unsupported apiVersion {other:?}", k.name)),
    };
    if k.name.is_empty() || k.name.contains(':') {
        return Err(format!("kms provider name {:?}: empty or contains ':'", k.name));
    }
    // Only unix sockets, as upstream (envelope grpc_service.go: "unix" is the only supported protocol).
    let socket = match k.endpoint.strip_prefix("unix://") {
        Some(p) if p.starts_with('/') => std::path::PathBuf::from(p),
        _ => {
            return Err(format!("kms provider {:?}: endpoint {:?} is not unix:///<absolute path>", k.name, k.endpoint))
        }
    };
    let timeout = match &k.timeout {
        None => std::time::Duration::from_secs(3),
        Some(t) => parse_duration(t).ok_or_else(|| format!("kms provider {:?}: bad timeout {t:?}", k.name))?,
    };
    Ok(KmsProvider { name: k.name, api_version, socket, endpoint: k.endpoint, timeout, resources: resources.to_vec() })
}

/// A Go duration of the simple kind configs use: `3s`, `500ms`, `1m30s`.
fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let mut total = std::time::Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let n: f64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let secs = match rest.get(..unit)? {
            "ns" => n / 1e9,
            "us" | "µs" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return None,
        };
        total = total.checked_add(std::time::Duration::try_from_secs_f64(secs).ok()?)?;
        rest = rest.get(unit..)?;
    }
    Some(total)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
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
    fn reads_kms_providers() {
        let text = r#"
kind: EncryptionConfiguration
apiVersion: apiserver.config.k8s.io/v1
resources:
  - resources: [secrets]
    providers:
      - kms:
          apiVersion: v2
          name: tenant-kms
          endpoint: unix:///run/kms/plugin.sock
          timeout: 1m30s
      - kms:
          name: old-kms
          endpoint: unix:///run/kms/v1.sock
          cachesize: 100
      - identity: {}
"#;
        let c = EncryptionConfig::parse(text).unwrap_or_default();
        assert_eq!(c.kms.len(), 2);
        let (v2, v1) = (&c.kms[0], &c.kms[1]);
        assert_eq!((v2.name.as_str(), v2.api_version), ("tenant-kms", KmsApiVersion::V2));
        assert_eq!(v2.socket, std::path::PathBuf::from("/run/kms/plugin.sock"));
        assert_eq!(v2.timeout, std::time::Duration::from_secs(90));
        assert_eq!((v1.api_version, v1.timeout), (KmsApiVersion::V1, std::time::Duration::from_secs(3)));
        assert_eq!(c.kinds, vec![ProviderKind::Kms, ProviderKind::Identity]);
        let tcp = text.replace("unix:///run/kms/plugin.sock", "tcp://127.0.0.1:1");
        assert!(EncryptionConfig::parse(&tcp).unwrap_err().contains("not unix:///"));
        let dup = text.replace("old-kms", "tenant-kms");
        assert!(EncryptionConfig::parse(&dup).unwrap_err().contains("used twice"));
        let v3 = text.replace("apiVersion: v2", "apiVersion: v3");
        assert!(EncryptionConfig::parse(&v3).unwrap_err().contains("unsupported apiVersion"));
        assert_eq!(parse_duration("250ms"), Some(std::time::Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Some(std::time::Duration::from_secs(7200)));
        assert_eq!(parse_duration("3x"), None);
    }

    #[test]
    fn rules_masked_by_earlier_wildcards_are_refused() {
        let text = "kind: EncryptionConfiguration\nresources:\n  - resources: ['*.apps']\n    providers: [{identity: {}}]\n  - resources: [deployments.apps]\n    providers: [{identity: {}}]\n";
        let e = EncryptionConfig::parse(text).unwrap_err();
        assert!(e.contains("masked by earlier rule \"*.apps\""), "{e}");
        let any = text.replace("'*.apps'", "'*.*'");
        assert!(EncryptionConfig::parse(&any).unwrap_err().contains("masked by earlier rule \"*.*\""));
        // The other order is fine: the exact rule wins for it, the wildcard for the rest.
        let fine =
            text.replace("'*.apps'", "X").replace("deployments.apps", "'*.apps'").replace("X", "deployments.apps");
        let c = EncryptionConfig::parse(&fine).unwrap_or_default();
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.entries[1].providers, vec![EntryProvider::Identity]);
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
