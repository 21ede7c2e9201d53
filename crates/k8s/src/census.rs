//! The decryptability census: every Kubernetes value of a snapshot opened
//! with the providers its resource's rule lists, as kube-apiserver would read
//! it, counted per resource, provider and key; values that do not open,
//! values stored in the clear where the rule writes encrypted, and values
//! sealed under a key or provider the rule does not list are named.
//!
//! Reading follows upstream's prefix transformers
//! (k8s.io/apiserver storage/value `prefixTransformers.TransformFromStorage`):
//! every provider (and key) whose prefix the value starts with is tried in
//! the rule's order, the first that opens it wins; identity reads anything
//! not starting `k8s:enc:`. KMS data keys come from the providers' plugins,
//! asked once per distinct DEK (see `kms`). Key material and plaintexts are
//! never kept beyond the open, never reported.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{EncryptionConfig, EntryProvider};
use crate::kms::KmsResealer;
use crate::resource::{covering, resource_of, GroupResource};
use crate::K8sError;

/// Findings listed per kind; the rest are counted.
pub const MAX_LISTED: usize = 20;

const ENC: &[u8] = b"k8s:enc:";

/// What opens values: the configuration's rules and the KMS plugins (their
/// DEK cache shared by every census made from it, so a fleet run asks each
/// plugin once per distinct DEK across all its backups).
#[derive(Debug)]
pub struct Opener {
    rules: Vec<(GroupResource, Vec<EntryProvider>)>,
    kms: KmsResealer,
}

impl Opener {
    /// An opener for `cfg`; KMS plugins are connected when a value needs them.
    pub fn new(cfg: &EncryptionConfig) -> Result<Self, K8sError> {
        let mut rules: Vec<(GroupResource, Vec<EntryProvider>)> = Vec::new();
        for e in &cfg.entries {
            for r in &e.resources {
                let gr = GroupResource::parse(r);
                // Entries naming the same resource add their providers after the earlier ones'.
                match rules.iter_mut().find(|(g, _)| *g == gr) {
                    Some((_, list)) => list.extend(e.providers.iter().cloned()),
                    None => rules.push((gr, e.providers.clone())),
                }
            }
        }
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| K8sError::Random(e.to_string()))?;
        Ok(Self { rules, kms: KmsResealer::new(&cfg.kms, seed) })
    }

    /// KMS plugin calls made so far, by provider (`kms-v2/<name>`) and method.
    pub fn calls(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        self.kms.calls()
    }

    /// How `value` of `etcd_key` reads under `providers`.
    fn read(&self, providers: &[EntryProvider], etcd_key: &[u8], value: &[u8]) -> Read {
        let mut tried: Option<(String, String, String)> = None;
        for p in providers {
            let (label, prefix): (&str, &[u8]) = match p {
                EntryProvider::AesGcm(_) => ("aesgcm", b"k8s:enc:aesgcm:v1:"),
                EntryProvider::AesCbc(_) => ("aescbc", b"k8s:enc:aescbc:v1:"),
                EntryProvider::Secretbox(_) => ("secretbox", b"k8s:enc:secretbox:v1:"),
                EntryProvider::Kms { api_version: crate::KmsApiVersion::V2, .. } => ("kms-v2", crate::kms::V2_PREFIX),
                EntryProvider::Kms { api_version: crate::KmsApiVersion::V1, .. } => ("kms-v1", crate::kms::V1_PREFIX),
                EntryProvider::Identity => {
                    if value.starts_with(ENC) {
                        continue;
                    }
                    return Read::Opened { provider: "identity".into(), key: String::new() };
                }
            };
            let Some(rest) = value.strip_prefix(prefix) else { continue };
            let outcome = match p {
                EntryProvider::Kms { name, .. } => {
                    if !rest.starts_with(name.as_bytes()) || rest.get(name.len()) != Some(&b':') {
                        continue;
                    }
                    self.kms.check(etcd_key, value).map(|_| name.clone()).map_err(|e| (name.clone(), e))
                }
                EntryProvider::AesGcm(keys) | EntryProvider::AesCbc(keys) | EntryProvider::Secretbox(keys) => {
                    let mut result = None;
                    for k in keys {
                        let Some(body) = rest.strip_prefix(k.name.as_bytes()).and_then(|b| b.strip_prefix(b":")) else {
                            continue;
                        };
                        let opened = match p {
                            EntryProvider::AesGcm(_) => open_gcm(&k.secret, body, etcd_key),
                            EntryProvider::AesCbc(_) => crate::aescbc::open(&k.secret, body).map(drop),
                            _ => crate::secretbox::open(&k.secret, body).map(drop),
                        };
                        match opened {
                            Ok(()) => {
                                result = Some(Ok(k.name.clone()));
                                break;
                            }
                            Err(why) => result = Some(Err((k.name.clone(), why.to_string()))),
                        }
                    }
                    match result {
                        Some(r) => r,
                        None => continue,
                    }
                }
                EntryProvider::Identity => continue,
            };
            match outcome {
                Ok(key) => return Read::Opened { provider: label.into(), key },
                // A later provider with the same prefix may still open it (key rotation).
                Err((key, why)) => {
                    if tried.is_none() {
                        tried = Some((label.into(), key, why));
                    }
                }
            }
        }
        match tried {
            Some((provider, key, why)) => Read::Failed { provider, key, why },
            None if value.starts_with(ENC) => Read::Unknown,
            None => Read::Plain,
        }
    }
}

fn open_gcm(secret: &[u8], body: &[u8], aad: &[u8]) -> Result<(), &'static str> {
    const NONCE: usize = 12;
    if body.len() < NONCE + 16 {
        return Err("the stored data is shorter than the nonce and tag");
    }
    let (nonce, ct) = body.split_at(NONCE);
    crate::aesgcm::open(secret, nonce, ct, aad)
        .map(|pt| drop(zeroize::Zeroizing::new(pt)))
        .ok_or("the key does not open it (wrong key, damaged, or not written under this etcd key)")
}

enum Read {
    Opened { provider: String, key: String },
    Failed { provider: String, key: String, why: String },
    Unknown,
    Plain,
}

/// Values of one resource under one provider key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCount {
    /// `secrets`, `deployments.apps`, `widgets.example.com`.
    pub resource: String,
    /// `aescbc`, `aesgcm`, `secretbox`, `kms-v1`, `kms-v2`, `identity`.
    pub provider: String,
    /// The key name (aescbc/aesgcm/secretbox), the KMS provider name, or "" for identity.
    pub key: String,
    /// Values it opened.
    pub opened: u64,
    /// Values under it that did not open.
    pub failed: u64,
}

/// What a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CensusKind {
    /// Sealed under a listed provider and key that does not open it.
    Failed,
    /// In the clear, where the rule's first (writing) provider encrypts.
    Plaintext,
    /// Sealed under a provider or key the resource's rule does not list.
    UnknownKey,
}

impl CensusKind {
    /// `failed`, `plaintext`, `unknown-key`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Plaintext => "plaintext",
            Self::UnknownKey => "unknown-key",
        }
    }
}

/// One value named by the census.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CensusFinding {
    /// What was found.
    pub kind: CensusKind,
    /// The etcd key (lossy UTF-8; Kubernetes keys are UTF-8).
    pub key: String,
    /// Its resource.
    pub resource: String,
    /// The provider its prefix names (`aesgcm`, `kms-v2`, …), "" for a plain value.
    pub provider: String,
    /// The key or KMS provider name its prefix names, "" for a plain value.
    pub key_name: String,
    /// Why, in words (never key material or plaintext).
    pub message: String,
}

/// The census of one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CensusReport {
    /// Values of Kubernetes resources looked at (the latest revision of every live key under `…/registry/`).
    pub values: u64,
    /// Of those, opened by the rule's providers (identity included).
    pub opened: u64,
    /// Sealed under a listed key that does not open them.
    pub failed: u64,
    /// In the clear where the rule writes encrypted.
    pub plaintext: u64,
    /// Sealed under a provider or key the rule does not list.
    pub unknown_key: u64,
    /// Plain values of resources no rule covers (read as identity; not findings).
    pub not_covered: u64,
    /// Per resource, provider and key, sorted.
    pub keys: Vec<KeyCount>,
    /// The first findings of each kind (at most [`MAX_LISTED`] each), in key order.
    pub findings: Vec<CensusFinding>,
}

impl CensusReport {
    /// No value failed, was plain where it should be sealed, or named an unknown key.
    pub fn is_ok(&self) -> bool {
        self.failed == 0 && self.plaintext == 0 && self.unknown_key == 0
    }

    /// Findings of `kind` in all (listed or not).
    pub fn count(&self, kind: CensusKind) -> u64 {
        match kind {
            CensusKind::Failed => self.failed,
            CensusKind::Plaintext => self.plaintext,
            CensusKind::UnknownKey => self.unknown_key,
        }
    }
}

/// A census in progress: feed it every (etcd key, value), then [`Census::finish`].
#[derive(Debug)]
pub struct Census<'o> {
    opener: &'o Opener,
    report: CensusReport,
    tally: BTreeMap<(String, String, String), (u64, u64)>,
}

impl<'o> Census<'o> {
    /// An empty census opening values with `opener`.
    pub fn new(opener: &'o Opener) -> Self {
        Self { opener, report: CensusReport::default(), tally: BTreeMap::new() }
    }

    /// Counts one value; keys outside `…/registry/<resource>/…` are ignored.
    pub fn add(&mut self, etcd_key: &[u8], value: &[u8]) {
        let Some(gr) = resource_of(etcd_key) else { return };
        let r = &mut self.report;
        r.values = r.values.saturating_add(1);
        let resource = gr.to_string();
        let Some(providers) = covering(&self.opener.rules, &gr) else {
            if value.starts_with(ENC) {
                let (provider, key_name) = named(value);
                let message = format!(
                    "sealed under {provider}/{key_name}, but no rule of the config covers {resource} (kube-apiserver reads it as identity and fails)"
                );
                self.finding(CensusKind::UnknownKey, etcd_key, resource, provider, key_name, message);
            } else {
                self.report.not_covered = self.report.not_covered.saturating_add(1);
            }
            return;
        };
        match self.opener.read(providers, etcd_key, value) {
            Read::Opened { provider, key } => {
                self.report.opened = self.report.opened.saturating_add(1);
                let t = self.tally.entry((resource, provider.clone(), key)).or_insert((0, 0));
                t.0 = t.0.saturating_add(1);
                if provider == "identity" && providers.first().is_some_and(|p| !matches!(p, EntryProvider::Identity)) {
                    let first = writer(providers);
                    let message = format!("stored in the clear; the rule for this resource writes {first}");
                    let resource = gr.to_string();
                    self.finding(CensusKind::Plaintext, etcd_key, resource, String::new(), String::new(), message);
                }
            }
            Read::Failed { provider, key, why } => {
                let t = self.tally.entry((resource.clone(), provider.clone(), key.clone())).or_insert((0, 0));
                t.1 = t.1.saturating_add(1);
                let message = format!("{provider}/{key} does not open it: {why}");
                self.finding(CensusKind::Failed, etcd_key, resource, provider, key, message);
            }
            Read::Unknown => {
                let (provider, key_name) = named(value);
                let listed: Vec<String> = providers.iter().map(describe).collect();
                let message = format!(
                    "sealed under {provider}/{key_name}, which the rule for this resource does not list ({})",
                    listed.join(", ")
                );
                self.finding(CensusKind::UnknownKey, etcd_key, resource, provider, key_name, message);
            }
            Read::Plain => {
                let message = format!(
                    "stored in the clear; the rule for this resource writes {} and has no identity provider to read it",
                    writer(providers)
                );
                self.finding(CensusKind::Plaintext, etcd_key, resource, String::new(), String::new(), message);
            }
        }
    }

    fn finding(
        &mut self,
        kind: CensusKind,
        etcd_key: &[u8],
        resource: String,
        provider: String,
        key_name: String,
        message: String,
    ) {
        let r = &mut self.report;
        let n = match kind {
            CensusKind::Failed => &mut r.failed,
            CensusKind::Plaintext => &mut r.plaintext,
            CensusKind::UnknownKey => &mut r.unknown_key,
        };
        *n = n.saturating_add(1);
        if r.findings.iter().filter(|f| f.kind == kind).count() < MAX_LISTED {
            let key = String::from_utf8_lossy(etcd_key).into_owned();
            r.findings.push(CensusFinding { kind, key, resource, provider, key_name, message });
        }
    }

    /// The report: counts sorted by resource, provider and key.
    pub fn finish(mut self) -> CensusReport {
        self.report.keys = self
            .tally
            .into_iter()
            .map(|((resource, provider, key), (opened, failed))| KeyCount { resource, provider, key, opened, failed })
            .collect();
        self.report.findings.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
        self.report
    }
}

/// The provider and key name a sealed value's prefix names (`kms-v2`, `tenant-kms`).
fn named(value: &[u8]) -> (String, String) {
    let rest = value.strip_prefix(ENC).unwrap_or_default();
    let mut parts = rest.splitn(3, |&b| b == b':');
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
    let provider = text(parts.next());
    let version = text(parts.next());
    let after = parts.next().unwrap_or_default();
    let name = text(after.iter().position(|&b| b == b':').and_then(|i| after.get(..i)));
    let provider = if provider == "kms" { format!("kms-{version}") } else { provider };
    (provider, name)
}

fn describe(p: &EntryProvider) -> String {
    let names = |kind: &str, keys: &[crate::AesKey]| {
        let n: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
        format!("{kind} keys {}", n.join("/"))
    };
    match p {
        EntryProvider::AesGcm(k) => names("aesgcm", k),
        EntryProvider::AesCbc(k) => names("aescbc", k),
        EntryProvider::Secretbox(k) => names("secretbox", k),
        EntryProvider::Kms { name, api_version } => format!("kms-{} {name}", api_version.as_str()),
        EntryProvider::Identity => "identity".into(),
    }
}

/// The writing (first) provider in words.
fn writer(providers: &[EntryProvider]) -> String {
    match providers.first() {
        Some(EntryProvider::AesGcm(k)) => format!("aesgcm/{}", first_name(k)),
        Some(EntryProvider::AesCbc(k)) => format!("aescbc/{}", first_name(k)),
        Some(EntryProvider::Secretbox(k)) => format!("secretbox/{}", first_name(k)),
        Some(EntryProvider::Kms { name, api_version }) => format!("kms-{}/{name}", api_version.as_str()),
        Some(EntryProvider::Identity) | None => "identity".into(),
    }
}

fn first_name(keys: &[crate::AesKey]) -> &str {
    keys.first().map(|k| k.name.as_str()).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    const K: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn report(cfg: &str, values: &[(&str, &[u8])]) -> CensusReport {
        let cfg = EncryptionConfig::parse(cfg).unwrap_or_default();
        let Ok(o) = Opener::new(&cfg) else { return CensusReport::default() };
        let mut c = Census::new(&o);
        for (k, v) in values {
            c.add(k.as_bytes(), v);
        }
        c.finish()
    }

    fn cfg(rules: &str) -> String {
        format!("kind: EncryptionConfiguration\napiVersion: apiserver.config.k8s.io/v1\nresources:\n{rules}")
    }

    fn gcm(names: &[&str]) -> String {
        let keys: String =
            names.iter().map(|n| format!("            - name: {n}\n              secret: {K}\n")).collect();
        format!("      - aesgcm:\n          keys:\n{keys}")
    }

    #[test]
    fn wildcards_and_repeated_rules_choose_providers_as_upstream() {
        // secrets: two entries (providers appended); *.apps: aesgcm; *.: identity first; *.*: aesgcm.
        let c = cfg(&format!(
            "  - resources: [secrets]\n    providers:\n{}  - resources: [secrets]\n    providers:\n      - identity: {{}}\n  - resources: ['*.apps']\n    providers:\n{}  - resources: ['*.']\n    providers:\n      - identity: {{}}\n  - resources: ['*.*']\n    providers:\n{}",
            gcm(&["a"]),
            gcm(&["b"]),
            gcm(&["c"])
        ));
        let plain: &[u8] = b"{\"kind\":\"X\"}";
        let r = report(
            &c,
            &[
                ("/registry/secrets/ns/s", plain),
                ("/registry/deployments/ns/d", plain),
                ("/registry/configmaps/ns/c", plain),
                ("/registry/example.com/widgets/ns/w", plain),
                ("/registry/example.com/widgets/ns/sealed", b"k8s:enc:aesgcm:v1:zz:0123456789abcdef0123456789"),
                ("compact_rev_key", plain),
            ],
        );
        assert_eq!((r.values, r.opened, r.plaintext, r.unknown_key, r.failed), (5, 2, 3, 1, 0), "{r:#?}");
        let named: Vec<(CensusKind, &str)> = r.findings.iter().map(|f| (f.kind, f.key.as_str())).collect();
        assert_eq!(
            named,
            vec![
                (CensusKind::Plaintext, "/registry/deployments/ns/d"),
                (CensusKind::Plaintext, "/registry/example.com/widgets/ns/w"),
                (CensusKind::Plaintext, "/registry/secrets/ns/s"),
                (CensusKind::UnknownKey, "/registry/example.com/widgets/ns/sealed"),
            ]
        );
        // Readable through the second secrets entry's identity, but written by aesgcm/a.
        assert!(r.findings[2].message.contains("writes aesgcm/a") && !r.findings[2].message.contains("no identity"));
        // *.apps has no identity: upstream cannot read the plain Deployment at all.
        assert!(r.findings[0].message.contains("no identity provider"), "{}", r.findings[0].message);
        assert_eq!(r.findings[3].key_name, "zz");
        assert!(!format!("{r:?}").contains(K));
    }

    #[test]
    fn uncovered_resources_read_as_identity() {
        let c = cfg(&format!("  - resources: [secrets]\n    providers:\n{}", gcm(&["a"])));
        let r = report(
            &c,
            &[("/registry/configmaps/ns/c", b"{}"), ("/registry/configmaps/ns/e", b"k8s:enc:secretbox:v1:k:xyz")],
        );
        assert_eq!((r.values, r.not_covered, r.unknown_key), (2, 1, 1), "{r:#?}");
        assert!(r.findings[0].message.contains("no rule of the config covers configmaps"));
        assert_eq!((r.findings[0].provider.as_str(), r.findings[0].key_name.as_str()), ("secretbox", "k"));
    }

    #[test]
    fn findings_are_capped_and_counted() {
        let c = cfg(&format!("  - resources: [secrets]\n    providers:\n{}", gcm(&["a"])));
        let keys: Vec<String> = (0..MAX_LISTED + 5).map(|i| format!("/registry/secrets/ns/s{i:03}")).collect();
        // Under key a but too short, or damaged: failed, named by key, at most MAX_LISTED.
        let values: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &b"k8s:enc:aesgcm:v1:a:short"[..])).collect();
        let r = report(&c, &values);
        assert_eq!(r.failed, (MAX_LISTED + 5) as u64);
        assert_eq!(r.findings.len(), MAX_LISTED);
        assert_eq!(
            r.keys,
            vec![KeyCount {
                resource: "secrets".into(),
                provider: "aesgcm".into(),
                key: "a".into(),
                opened: 0,
                failed: (MAX_LISTED + 5) as u64
            }]
        );
        assert!(!r.is_ok());
    }
}
