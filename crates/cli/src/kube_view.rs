//! `keys`/`get --decode`: what kube-apiserver stored in a value, as one text
//! line or a JSON object (README "Kubernetes values").

use std::collections::BTreeMap;

use etcdsnap_keys::kube::{decode, KubeValue};
use serde::Serialize;

/// The `kube` field of `keys --decode --json` / `get --decode --json`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KubeJson {
    /// A readable object.
    Object {
        api_version: String,
        kind: String,
        namespace: String,
        name: String,
        uid: String,
        creation_timestamp: String,
        labels: BTreeMap<String, String>,
        size: usize,
        encoding: &'static str,
    },
    /// Encrypted at rest.
    Encrypted { provider: String, version: String, key_name: String, size: usize },
}

/// The decoded value, or `None` when it is not something kube-apiserver wrote.
pub fn kube_json(value: &[u8]) -> Option<KubeJson> {
    Some(match decode(value)? {
        KubeValue::Object(o) => KubeJson::Object {
            api_version: o.api_version,
            kind: o.kind,
            namespace: o.namespace,
            name: o.name,
            uid: o.uid,
            creation_timestamp: o.creation_timestamp,
            labels: o.labels,
            size: o.size,
            encoding: o.encoding.map(|e| e.name()).unwrap_or_default(),
        },
        KubeValue::Encrypted { provider, version, key_name, size } => {
            KubeJson::Encrypted { provider, version, key_name, size }
        }
    })
}

/// One line for people: `v1 ConfigMap shop/cm-0 uid=… created=… labels=app=e2e 312 bytes protobuf`,
/// `encrypted aescbc v1 key=key-cbc 180 bytes`, or `-` when not a Kubernetes value.
pub fn kube_line(value: &[u8]) -> String {
    match kube_json(value) {
        None => "-".into(),
        Some(KubeJson::Encrypted { provider, version, key_name, size }) => {
            format!("encrypted {provider} {version} key={key_name} {size} bytes")
        }
        Some(KubeJson::Object {
            api_version,
            kind,
            namespace,
            name,
            uid,
            creation_timestamp,
            labels,
            size,
            encoding,
        }) => {
            let id = if namespace.is_empty() { name } else { format!("{namespace}/{name}") };
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "{api_version} {kind} {id} uid={uid} created={creation_timestamp} labels={} {size} bytes {encoding}",
                labels.join(",")
            )
        }
    }
}
