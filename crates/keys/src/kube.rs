//! What kube-apiserver stored in a value, for people: the object's identity
//! (apiVersion, kind, namespace, name, uid, creationTimestamp, labels) from the
//! protobuf envelope or from JSON, or the provider and key name of an
//! encrypted value.
//!
//! Formats (k8s.io/apimachinery): a protobuf value is `k8s\0` followed by a
//! `runtime.Unknown` {typeMeta=1 {apiVersion=1, kind=2}, raw=2,
//! contentEncoding=3, contentType=4}; `raw` is the object without its TypeMeta,
//! whose field 1 is `metav1.ObjectMeta` {name=1, namespace=3, uid=5,
//! creationTimestamp=8 {seconds=1, nanos=2}, labels=11 (map entries key=1,
//! value=2)}. Custom resources and a few built-in kinds are stored as JSON.
//! Encrypted values start `k8s:enc:<provider>:<v1|v2>:<key name>:` (KMS v2
//! names no key there: its key id is inside the payload).

use std::collections::BTreeMap;

/// The protobuf envelope's magic (`protobuf.go`'s `protoEncodingPrefix`).
const PROTO_MAGIC: &[u8] = b"k8s\0";
/// The largest protobuf field number.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// A value as kube-apiserver stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeValue {
    /// An object, readable.
    Object(KubeObject),
    /// Encrypted at rest: `k8s:enc:<provider>:<version>:<key name>:…`.
    Encrypted {
        /// `aescbc`, `aesgcm`, `secretbox`, `kms`, …
        provider: String,
        /// `v1` or `v2`.
        version: String,
        /// The key's name in the EncryptionConfiguration (empty for KMS v2).
        key_name: String,
        /// The whole value's length.
        size: usize,
    },
}

/// How an object was serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `k8s\0` + runtime.Unknown.
    Protobuf,
    /// JSON (custom resources, some built-in kinds).
    Json,
}

impl Encoding {
    /// `protobuf` or `json`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Protobuf => "protobuf",
            Encoding::Json => "json",
        }
    }
}

/// The identity of a stored Kubernetes object (`metav1.TypeMeta` and part of `ObjectMeta`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KubeObject {
    /// `apiVersion`, e.g. `v1`, `example.com/v1`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace` (empty for cluster-scoped objects).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.creationTimestamp`, RFC 3339 in UTC as the API prints it (empty when unset).
    pub creation_timestamp: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The value's length in bytes.
    pub size: usize,
    /// How it was serialized.
    pub encoding: Option<Encoding>,
}

/// Decodes a value written by kube-apiserver; `None` when it is neither a
/// protobuf envelope, a JSON object with `kind`, nor an encrypted value (or is
/// damaged).
pub fn decode(value: &[u8]) -> Option<KubeValue> {
    if let Some(rest) = value.strip_prefix(b"k8s:enc:") {
        let mut parts = rest.splitn(4, |&b| b == b':');
        let provider = std::str::from_utf8(parts.next()?).ok()?;
        let version = std::str::from_utf8(parts.next()?).ok()?;
        // KMS v2 puts the payload right after the version.
        let key_name = if provider == "kms" && version == "v2" {
            ""
        } else {
            parts.next().and_then(|k| std::str::from_utf8(k).ok())?
        };
        if provider.is_empty() || version.is_empty() {
            return None;
        }
        return Some(KubeValue::Encrypted {
            provider: provider.to_string(),
            version: version.to_string(),
            key_name: key_name.to_string(),
            size: value.len(),
        });
    }
    if let Some(unknown) = value.strip_prefix(PROTO_MAGIC) {
        return decode_protobuf(unknown).map(|mut o| {
            o.size = value.len();
            KubeValue::Object(o)
        });
    }
    if value.first() == Some(&b'{') {
        return decode_json(value).map(KubeValue::Object);
    }
    None
}

fn decode_json(value: &[u8]) -> Option<KubeObject> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    let s = |p: &str| v.pointer(p).and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
    let kind = s("/kind");
    if kind.is_empty() {
        return None;
    }
    let labels = v
        .pointer("/metadata/labels")
        .and_then(serde_json::Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    Some(KubeObject {
        api_version: s("/apiVersion"),
        kind,
        namespace: s("/metadata/namespace"),
        name: s("/metadata/name"),
        uid: s("/metadata/uid"),
        creation_timestamp: s("/metadata/creationTimestamp"),
        labels,
        size: value.len(),
        encoding: Some(Encoding::Json),
    })
}

fn decode_protobuf(unknown: &[u8]) -> Option<KubeObject> {
    let mut o = KubeObject { encoding: Some(Encoding::Protobuf), ..KubeObject::default() };
    let mut raw = None;
    for field in fields(unknown) {
        match field? {
            (1, Field::Bytes(type_meta)) => {
                for f in fields(type_meta) {
                    match f? {
                        (1, Field::Bytes(b)) => o.api_version = string(b)?,
                        (2, Field::Bytes(b)) => o.kind = string(b)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = Some(b),
            _ => {}
        }
    }
    // ObjectMeta is field 1 of every object kube stores (a List would not be).
    for field in fields(raw?) {
        if let (1, Field::Bytes(meta)) = field? {
            object_meta(meta, &mut o)?;
        }
    }
    Some(o)
}

fn object_meta(meta: &[u8], o: &mut KubeObject) -> Option<()> {
    for field in fields(meta) {
        match field? {
            (1, Field::Bytes(b)) => o.name = string(b)?,
            (3, Field::Bytes(b)) => o.namespace = string(b)?,
            (5, Field::Bytes(b)) => o.uid = string(b)?,
            (8, Field::Bytes(b)) => {
                // seconds=1 (int64, a varint of the two's complement); nanos=2
                // is not printed: the API keeps whole seconds.
                let mut seconds = 0i64;
                for f in fields(b) {
                    if let (1, Field::Varint(v)) = f? {
                        seconds = i64::from_ne_bytes(v.to_ne_bytes());
                    }
                }
                o.creation_timestamp = rfc3339(seconds)?;
            }
            (11, Field::Bytes(entry)) => {
                let (mut k, mut v) = (String::new(), String::new());
                for f in fields(entry) {
                    match f? {
                        (1, Field::Bytes(b)) => k = string(b)?,
                        (2, Field::Bytes(b)) => v = string(b)?,
                        _ => {}
                    }
                }
                o.labels.insert(k, v);
            }
            _ => {}
        }
    }
    Some(())
}

fn string(b: &[u8]) -> Option<String> {
    std::str::from_utf8(b).ok().map(str::to_string)
}

/// `metav1.Time` as the API prints it: `2006-01-02T15:04:05Z`.
// The operations on values from the file (`seconds`) are checked or Euclidean;
// everything after them works on `doe` ∈ [0, 146097) and `secs` ∈ [0, 86400),
// where no operation can overflow.
#[allow(clippy::arithmetic_side_effects)]
fn rfc3339(seconds: i64) -> Option<String> {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days.checked_add(719_468)?;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe.checked_add(era.checked_mul(400)?)? + i64::from(month <= 2);
    Some(format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60))
}

/// One protobuf field's payload.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one protobuf message, in order (the shared cursor,
/// [`etcdsnap_proto::wire::Fields`]); a damaged message yields `None` and stops.
struct Fields<'a>(etcdsnap_proto::wire::Fields<'a>);

fn fields(b: &[u8]) -> Fields<'_> {
    Fields(etcdsnap_proto::wire::Fields::new(b))
}

impl<'a> Iterator for Fields<'a> {
    type Item = Option<(u64, Field<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        use etcdsnap_proto::wire::Value;
        let item = match self.0.next()? {
            Ok((n, _)) if n > MAX_FIELD_NUMBER => None,
            Ok((n, Value::Varint(v))) => Some((n, Field::Varint(v))),
            Ok((n, Value::Bytes(b))) => Some((n, Field::Bytes(b))),
            Ok((n, Value::Fixed32(_) | Value::Fixed64(_))) => Some((n, Field::Fixed)),
            Err(_) => None,
        };
        if item.is_none() {
            // Stops: what follows a damaged field is not trusted.
            self.0 = etcdsnap_proto::wire::Fields::new(&[]);
        }
        Some(item)
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn bytes_field(n: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(n << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    /// A ConfigMap as kube-apiserver writes it (fields in generated order).
    fn config_map() -> Vec<u8> {
        let mut ts = Vec::new();
        varint(1 << 3, &mut ts);
        varint(1_764_495_000, &mut ts); // 2025-11-30T09:30:00Z
        let mut label = Vec::new();
        bytes_field(1, b"app", &mut label);
        bytes_field(2, b"e2e", &mut label);
        let mut meta = Vec::new();
        bytes_field(1, b"cm-0", &mut meta);
        bytes_field(2, b"", &mut meta);
        bytes_field(3, b"shop", &mut meta);
        bytes_field(5, b"0b6c2a6e-1f0e-4c7d-9a39-8f1d2b3c4d5e", &mut meta);
        varint(7 << 3, &mut meta);
        varint(0, &mut meta);
        bytes_field(8, &ts, &mut meta);
        bytes_field(11, &label, &mut meta);
        let mut raw = Vec::new();
        bytes_field(1, &meta, &mut raw);
        let mut data = Vec::new();
        bytes_field(1, b"value", &mut data);
        bytes_field(2, b"zero", &mut data);
        bytes_field(2, &data, &mut raw);
        let mut type_meta = Vec::new();
        bytes_field(1, b"v1", &mut type_meta);
        bytes_field(2, b"ConfigMap", &mut type_meta);
        let mut v = b"k8s\0".to_vec();
        bytes_field(1, &type_meta, &mut v);
        bytes_field(2, &raw, &mut v);
        bytes_field(3, b"", &mut v);
        bytes_field(4, b"", &mut v);
        v
    }

    #[test]
    fn protobuf_envelope() {
        let v = config_map();
        let Some(KubeValue::Object(o)) = decode(&v) else { panic!("not decoded") };
        assert_eq!(o.api_version, "v1");
        assert_eq!(o.kind, "ConfigMap");
        assert_eq!((o.namespace.as_str(), o.name.as_str()), ("shop", "cm-0"));
        assert_eq!(o.uid, "0b6c2a6e-1f0e-4c7d-9a39-8f1d2b3c4d5e");
        assert_eq!(o.creation_timestamp, "2025-11-30T09:30:00Z");
        assert_eq!(o.labels.get("app").map(String::as_str), Some("e2e"));
        assert_eq!(o.size, v.len());
        assert_eq!(o.encoding, Some(Encoding::Protobuf));
    }

    #[test]
    fn every_truncation_is_refused_or_partial_never_a_panic() {
        let v = config_map();
        for n in 0..v.len() {
            let _ = decode(&v[..n]);
        }
        // Cut inside the envelope: a length runs past the end.
        assert_eq!(decode(&v[..20]), None);
    }

    #[test]
    fn json_object() {
        let v = br#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w-0","namespace":"shop","uid":"u","creationTimestamp":"2026-11-30T09:00:00Z","labels":{"a":"b"}},"spec":{}}"#;
        let Some(KubeValue::Object(o)) = decode(v) else { panic!("not decoded") };
        assert_eq!((o.kind.as_str(), o.name.as_str(), o.namespace.as_str()), ("Widget", "w-0", "shop"));
        assert_eq!(o.creation_timestamp, "2026-11-30T09:00:00Z");
        assert_eq!(o.encoding, Some(Encoding::Json));
        assert_eq!(decode(b"{\"a\":1}"), None);
        assert_eq!(decode(b"plain"), None);
    }

    #[test]
    fn encrypted() {
        assert_eq!(
            decode(b"k8s:enc:aescbc:v1:key-cbc:\x01\x02"),
            Some(KubeValue::Encrypted {
                provider: "aescbc".into(),
                version: "v1".into(),
                key_name: "key-cbc".into(),
                size: 28
            })
        );
        let Some(KubeValue::Encrypted { key_name, .. }) = decode(b"k8s:enc:kms:v2:\x0a\x01x") else { panic!() };
        assert_eq!(key_name, "");
    }

    /// An object encoded as kube does (TypeMeta, ObjectMeta as field 1 of raw)
    /// decodes to the same identity, and no prefix of it panics.
    fn encode(o: &KubeObject, seconds: i64) -> Vec<u8> {
        let mut meta = Vec::new();
        bytes_field(1, o.name.as_bytes(), &mut meta);
        bytes_field(3, o.namespace.as_bytes(), &mut meta);
        bytes_field(5, o.uid.as_bytes(), &mut meta);
        let mut ts = Vec::new();
        varint(1 << 3, &mut ts);
        varint(u64::from_ne_bytes(seconds.to_ne_bytes()), &mut ts);
        bytes_field(8, &ts, &mut meta);
        for (k, v) in &o.labels {
            let mut e = Vec::new();
            bytes_field(1, k.as_bytes(), &mut e);
            bytes_field(2, v.as_bytes(), &mut e);
            bytes_field(11, &e, &mut meta);
        }
        let mut raw = Vec::new();
        bytes_field(1, &meta, &mut raw);
        let mut tm = Vec::new();
        bytes_field(1, o.api_version.as_bytes(), &mut tm);
        bytes_field(2, o.kind.as_bytes(), &mut tm);
        let mut v = b"k8s\0".to_vec();
        bytes_field(1, &tm, &mut v);
        bytes_field(2, &raw, &mut v);
        bytes_field(3, b"", &mut v);
        bytes_field(4, b"", &mut v);
        v
    }

    proptest::proptest! {
        #[test]
        fn protobuf_round_trip(
            api_version in "[a-z./0-9]{1,20}",
            kind in "[A-Za-z]{1,20}",
            namespace in "[a-z0-9-]{0,20}",
            name in "[a-z0-9.-]{1,60}",
            uid in "[a-f0-9-]{0,36}",
            labels in proptest::collection::btree_map("[a-z./-]{1,20}", "[a-zA-Z0-9._-]{0,20}", 0..5),
            seconds in 0i64..4_102_444_800,
        ) {
            let want = KubeObject { api_version, kind, namespace, name, uid, creation_timestamp: rfc3339(seconds).unwrap_or_default(), labels, size: 0, encoding: Some(Encoding::Protobuf) };
            let bytes = encode(&want, seconds);
            let Some(KubeValue::Object(got)) = decode(&bytes) else { panic!("not decoded") };
            proptest::prop_assert_eq!(got, KubeObject { size: bytes.len(), ..want });
            for n in 0..bytes.len() {
                let _ = decode(&bytes[..n]);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut v = b"k8s\0".to_vec();
            v.extend_from_slice(&bytes);
            let _ = decode(&v);
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(rfc3339(951_782_400).as_deref(), Some("2000-02-29T00:00:00Z"));
        assert_eq!(rfc3339(-1).as_deref(), Some("1969-12-31T23:59:59Z"));
        assert_eq!(rfc3339(4_102_444_800).as_deref(), Some("2100-01-01T00:00:00Z"));
    }
}
