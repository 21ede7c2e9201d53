//! Re-sealing KMS v2 and KMS v1 values for a renamed etcd key.
//!
//! KMS v2 (k8s.io/apiserver pkg/storage/value/encrypt/envelope/kmsv2,
//! `envelopeTransformer`): `k8s:enc:kms:v2:<name>:` + protobuf
//! `EncryptedObject` {encryptedData=1, keyID=2, encryptedDEKSource=3,
//! annotations=4, encryptedDEKSourceType=5}. The plugin's `Decrypt` of
//! encryptedDEKSource gives either an AES key (`AES_GCM_KEY`: encryptedData is
//! 12-byte nonce + GCM ciphertext) or a seed (`HKDF_SHA256_XNONCE_AES_GCM_SEED`,
//! what kube-apiserver writes since 1.29: encryptedData is a 32-byte info +
//! 12-byte nonce + GCM ciphertext under HKDF-Expand(SHA-256, seed, info), 32
//! bytes; pkg/storage/value/encrypt/aes/aes_extended_nonce.go). The etcd key
//! is the GCM authenticated data in both.
//!
//! Re-sealing keeps the object's bytes and replaces only encryptedData
//! (same length: same plaintext, same overhead), so the DEK source, key id,
//! annotations and type stay exactly as the plugin made them; the plugin is
//! asked only to decrypt, once per distinct DEK source (upstream's cache key:
//! type, DEK source, key id, annotations).
//!
//! KMS v1 (pkg/storage/value/encrypt/envelope, `envelopeTransformer`):
//! `k8s:enc:kms:v1:<name>:` + big-endian u16 length + encrypted DEK + data.
//! The DEK is an AES key decrypted by the v1beta1 plugin API; data is written
//! as AES-GCM (12-byte nonce) with the etcd key as authenticated data and read
//! as GCM or, for values written before 1.25, AES-CBC (16-byte IV, PKCS#7; not
//! bound to the key, so carried as it is).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::{KmsApiVersion, KmsProvider};
use crate::plugin::{request_uid, DecryptRequest, PluginClient};

const GCM_NONCE: usize = 12;
const GCM_TAG: usize = 16;
/// `infoSizeExtendedNonceGCM` and `MinSeedSizeExtendedNonceGCM` (aes_extended_nonce.go: `commonSize`).
const SEED_INFO: usize = 32;
/// encryptedDEKSource and keyID limits (kmsv2 envelope.go `encryptedDEKSourceMaxSize`, `KeyIDMaxSize`).
const MAX_DEK_SOURCE: usize = 1024;
const MAX_KEY_ID: usize = 1024;
/// `annotationsMaxSize`.
const MAX_ANNOTATIONS: usize = 32 * 1024;

/// `EncryptedDEKSourceType` values.
const AES_GCM_KEY: i32 = 0;
const HKDF_SHA256_XNONCE_AES_GCM_SEED: i32 = 1;

/// `v2.EncryptedObject` (apiserver pkg/storage/value/encrypt/envelope/kmsv2/v2/api.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct EncryptedObject {
    /// The value sealed with the DEK (or a key derived from the seed).
    #[prost(bytes = "vec", tag = "1")]
    pub encrypted_data: Vec<u8>,
    /// The KMS key id that wrapped the DEK source.
    #[prost(string, tag = "2")]
    pub key_id: String,
    /// The DEK or seed, wrapped by the plugin.
    #[prost(bytes = "vec", tag = "3")]
    pub encrypted_dek_source: Vec<u8>,
    /// The plugin's annotations.
    #[prost(btree_map = "string, bytes", tag = "4")]
    pub annotations: BTreeMap<String, Vec<u8>>,
    /// 0 `AES_GCM_KEY`, 1 `HKDF_SHA256_XNONCE_AES_GCM_SEED`.
    #[prost(int32, tag = "5")]
    pub encrypted_dek_source_type: i32,
}

impl EncryptedObject {
    /// The checks upstream's `ValidateEncryptedObject` makes on read.
    fn validate(&self) -> Result<(), String> {
        if !matches!(self.encrypted_dek_source_type, AES_GCM_KEY | HKDF_SHA256_XNONCE_AES_GCM_SEED) {
            return Err(format!("unknown encryptedDEKSourceType {}", self.encrypted_dek_source_type));
        }
        if self.encrypted_data.is_empty() {
            return Err("encrypted data is empty".into());
        }
        if self.encrypted_dek_source.is_empty() || self.encrypted_dek_source.len() > MAX_DEK_SOURCE {
            return Err(format!("encrypted DEK source of {} bytes", self.encrypted_dek_source.len()));
        }
        if self.key_id.is_empty() || self.key_id.len() > MAX_KEY_ID {
            return Err(format!("key id of {} bytes", self.key_id.len()));
        }
        let size = self.annotations.iter().fold(0usize, |n, (k, v)| n.saturating_add(k.len()).saturating_add(v.len()));
        if size > MAX_ANNOTATIONS {
            return Err(format!("annotations of {size} bytes"));
        }
        Ok(())
    }

    /// Distinct DEK sources get distinct keys (as upstream's `generateCacheKey`).
    fn cache_key(&self) -> Vec<u8> {
        let mut k = Vec::new();
        let mut put = |b: &[u8]| {
            k.extend_from_slice(&(b.len() as u64).to_be_bytes());
            k.extend_from_slice(b);
        };
        put(&self.encrypted_dek_source_type.to_be_bytes());
        put(&self.encrypted_dek_source);
        put(self.key_id.as_bytes());
        for (name, v) in &self.annotations {
            put(name.as_bytes());
            put(v);
        }
        k
    }
}

/// The byte range of the last field 1 (encryptedData) in an encoded
/// `EncryptedObject`: protobuf's last-one-wins for a repeated scalar field.
fn encrypted_data_range(buf: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut pos = 0usize;
    let mut found = None;
    while pos < buf.len() {
        let mut rest = buf.get(pos..)?;
        let before = rest.len();
        let key = prost::encoding::decode_varint(&mut rest).ok()?;
        let wire = key & 7;
        let field = key >> 3;
        let mut end_of_key = pos.checked_add(before.checked_sub(rest.len())?)?;
        match wire {
            0 => {
                let before = rest.len();
                prost::encoding::decode_varint(&mut rest).ok()?;
                end_of_key = end_of_key.checked_add(before.checked_sub(rest.len())?)?;
                pos = end_of_key;
            }
            1 => pos = end_of_key.checked_add(8)?,
            5 => pos = end_of_key.checked_add(4)?,
            2 => {
                let before = rest.len();
                let len = usize::try_from(prost::encoding::decode_varint(&mut rest).ok()?).ok()?;
                let start = end_of_key.checked_add(before.checked_sub(rest.len())?)?;
                let end = start.checked_add(len)?;
                if field == 1 {
                    found = Some(start..end);
                }
                pos = end;
            }
            _ => return None,
        }
        if pos > buf.len() {
            return None;
        }
    }
    found
}

/// Parses `<name>:<rest>` after a provider prefix.
fn split_name(rest: &[u8]) -> Option<(&str, &[u8])> {
    let colon = rest.iter().position(|&b| b == b':')?;
    let name = std::str::from_utf8(rest.get(..colon)?).ok()?;
    Some((name, rest.get(colon.checked_add(1)?..)?))
}

/// The `k8s:enc:kms:v2:` prefix.
pub(crate) const V2_PREFIX: &[u8] = b"k8s:enc:kms:v2:";
/// The `k8s:enc:kms:v1:` prefix.
pub(crate) const V1_PREFIX: &[u8] = b"k8s:enc:kms:v1:";

/// A decrypted DEK or seed, wiped when the last user drops it.
type Secret = Arc<Zeroizing<Vec<u8>>>;

/// One configured provider: its plugin connection (made on first use),
/// decrypted DEK sources and the calls made.
struct Provider {
    cfg: KmsProvider,
    client: Mutex<Option<Result<Arc<PluginClient>, String>>>,
    /// Each distinct DEK source's plaintext, or why the plugin did not give it.
    deks: Mutex<HashMap<Vec<u8>, Result<Secret, String>>>,
    /// Held while a DEK is asked for, so threads wanting the same DEK at
    /// once (a fleet run's backups) make one Decrypt, not one each.
    fetch: Mutex<()>,
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these maps half-updated: keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Provider {
    fn label(&self) -> String {
        format!("kms-{}/{}", self.cfg.api_version.as_str(), self.cfg.name)
    }

    fn count(&self, method: &'static str) {
        let mut c = lock(&self.calls);
        let n = c.entry(method).or_insert(0);
        *n = n.saturating_add(1);
    }

    fn what(&self) -> String {
        format!("KMS {} plugin of provider {:?} at {}", self.cfg.api_version.as_str(), self.cfg.name, self.cfg.endpoint)
    }

    /// The connection, made and checked (v2 Status / v1beta1 Version) once.
    ///
    /// A failure is kept too: every later value gets it at once instead of
    /// waiting out the timeout again (a census reads every value of a run).
    fn client(&self) -> Result<Arc<PluginClient>, String> {
        let mut slot = lock(&self.client);
        if let Some(c) = slot.as_ref() {
            return c.clone();
        }
        let c = self.connect();
        *slot = Some(c.clone());
        c
    }

    fn connect(&self) -> Result<Arc<PluginClient>, String> {
        let c =
            PluginClient::connect(&self.cfg.socket, self.cfg.timeout).map_err(|e| format!("{}: {e}", self.what()))?;
        match self.cfg.api_version {
            KmsApiVersion::V2 => {
                self.count("Status");
                let s = c.status().map_err(|e| format!("{}: {e}", self.what()))?;
                if s.version != "v2" && s.version != "v2beta1" {
                    return Err(format!("{}: Status gave API version {:?}, expected v2", self.what(), s.version));
                }
                if s.healthz != "ok" {
                    return Err(format!("{}: Status reports healthz {:?}", self.what(), s.healthz));
                }
            }
            KmsApiVersion::V1 => {
                self.count("Version");
                let v = c.v1_version().map_err(|e| format!("{}: {e}", self.what()))?;
                if v.version != crate::plugin::V1_API_VERSION {
                    return Err(format!("{}: Version gave {:?}, expected v1beta1", self.what(), v.version));
                }
            }
        }
        Ok(Arc::new(c))
    }

    /// The plaintext of a DEK source, from the cache or the plugin's Decrypt.
    fn dek(
        &self,
        cache_key: Vec<u8>,
        decrypt: impl FnOnce(&PluginClient) -> Result<Zeroizing<Vec<u8>>, String>,
    ) -> Result<Secret, String> {
        if let Some(d) = lock(&self.deks).get(&cache_key) {
            return d.clone();
        }
        let _one = lock(&self.fetch);
        if let Some(d) = lock(&self.deks).get(&cache_key) {
            return d.clone();
        }
        let client = self.client()?;
        self.count("Decrypt");
        // A refused DEK is remembered too: one Decrypt per distinct DEK, whatever the answer.
        let d = decrypt(&client).map(Arc::new).map_err(|e| format!("{}: DEK not decrypted: {e}", self.what()));
        lock(&self.deks).insert(cache_key, d.clone());
        d
    }
}

/// What `open` found: enough to seal the plaintext again.
struct Opened {
    label: String,
    plaintext: Zeroizing<Vec<u8>>,
    how: Seal,
}

enum Seal {
    /// KMS v2: replace encryptedData (range in the value) sealed with this DEK source.
    V2 { range: std::ops::Range<usize>, dek: Secret, seed: bool },
    /// KMS v1 AES-GCM: replace the data after the encrypted DEK.
    V1Gcm { data_at: usize, dek: Secret },
    /// KMS v1 AES-CBC: not bound to the key, carried as it is.
    V1Cbc,
}

/// Re-seals KMS v2 and KMS v1 values through the providers' plugins.
pub struct KmsResealer {
    providers: Vec<Provider>,
    seed: [u8; 32],
}

impl std::fmt::Debug for KmsResealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsResealer")
            .field("providers", &self.providers.iter().map(|p| &p.cfg).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KmsResealer {
    /// A resealer for these providers; nothing is connected until a value needs it.
    pub fn new(providers: &[KmsProvider], seed: [u8; 32]) -> Self {
        let providers = providers
            .iter()
            .map(|cfg| Provider {
                cfg: cfg.clone(),
                client: Mutex::new(None),
                deks: Mutex::new(HashMap::new()),
                fetch: Mutex::new(()),
                calls: Mutex::new(BTreeMap::new()),
            })
            .collect();
        Self { providers, seed }
    }

    /// Plugin calls made so far, by provider label (`kms-v2/<name>`) and method.
    pub fn calls(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for p in &self.providers {
            let c = lock(&p.calls);
            if !c.is_empty() {
                out.insert(p.label(), c.iter().map(|(m, n)| ((*m).to_string(), *n)).collect());
            }
        }
        out
    }

    fn provider(&self, version: KmsApiVersion, name: &str) -> Result<&Provider, String> {
        self.providers
            .iter()
            .find(|p| p.cfg.name == name && p.cfg.api_version == version)
            .ok_or_else(|| format!("the encryption config has no KMS {} provider named {name:?}", version.as_str()))
    }

    /// Whether `value` is one this resealer handles.
    pub fn handles(value: &[u8]) -> bool {
        value.starts_with(V2_PREFIX) || value.starts_with(V1_PREFIX)
    }

    fn open(&self, aad: &[u8], value: &[u8]) -> Result<Opened, String> {
        if let Some(rest) = value.strip_prefix(V2_PREFIX) {
            let (name, body) = split_name(rest).ok_or("not a KMS v2 value (k8s:enc:kms:v2:<name>:…)")?;
            let p = self.provider(KmsApiVersion::V2, name)?;
            let obj = <EncryptedObject as prost::Message>::decode(body)
                .map_err(|e| format!("KMS v2 EncryptedObject does not decode: {e}"))?;
            obj.validate().map_err(|e| format!("invalid KMS v2 EncryptedObject: {e}"))?;
            let range = encrypted_data_range(body).ok_or("KMS v2 EncryptedObject without encryptedData")?;
            let at = value.len().saturating_sub(body.len());
            let range = range.start.saturating_add(at)..range.end.saturating_add(at);
            let seed = obj.encrypted_dek_source_type == HKDF_SHA256_XNONCE_AES_GCM_SEED;
            let dek = p.dek(obj.cache_key(), |c| {
                c.decrypt(DecryptRequest {
                    ciphertext: obj.encrypted_dek_source.clone(),
                    uid: request_uid(),
                    key_id: obj.key_id.clone(),
                    annotations: obj.annotations.clone(),
                })
            })?;
            let plaintext = open_v2(&dek, seed, &obj.encrypted_data, aad)?;
            return Ok(Opened { label: p.label(), plaintext, how: Seal::V2 { range, dek, seed } });
        }
        if let Some(rest) = value.strip_prefix(V1_PREFIX) {
            let (name, body) = split_name(rest).ok_or("not a KMS v1 value (k8s:enc:kms:v1:<name>:…)")?;
            let p = self.provider(KmsApiVersion::V1, name)?;
            let len = body.get(..2).ok_or("KMS v1 value without a DEK length")?;
            let len =
                usize::from(u16::from_be_bytes([len.first().copied().unwrap_or(0), len.get(1).copied().unwrap_or(0)]));
            let end = len.checked_add(2).ok_or("bad DEK length")?;
            let enc_dek = body.get(2..end).ok_or("KMS v1 value shorter than its DEK length")?;
            let data = body.get(end..).ok_or("KMS v1 value without data")?;
            let dek = p.dek(enc_dek.to_vec(), |c| c.v1_decrypt(enc_dek.to_vec()))?;
            if let Some(pt) = open_gcm(&dek, data, aad) {
                let data_at = value.len().saturating_sub(data.len());
                return Ok(Opened { label: p.label(), plaintext: pt, how: Seal::V1Gcm { data_at, dek } });
            }
            if let Some(pt) = open_cbc(&dek, data) {
                return Ok(Opened {
                    label: format!("{} (aes-cbc, carried)", p.label()),
                    plaintext: pt,
                    how: Seal::V1Cbc,
                });
            }
            return Err(format!(
                "{} DEK does not decrypt it (the value was not written under this etcd key, or is damaged)",
                p.label()
            ));
        }
        Err("not a KMS value".into())
    }

    /// Deterministic per run, revision and key: see `Reseal::reseal`.
    fn fresh(&self, domain: &[u8], rev: &[u8], new_key: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.seed);
        h.update(domain);
        h.update((rev.len() as u64).to_be_bytes());
        h.update(rev);
        h.update(new_key);
        h.finalize().into()
    }

    /// Checks that `value` opens under `old_key`; its label.
    pub fn check(&self, old_key: &[u8], value: &[u8]) -> Result<String, String> {
        self.open(old_key, value).map(|o| o.label)
    }

    /// `value` sealed for `new_key`.
    pub fn reseal(
        &self,
        old_key: &[u8],
        new_key: &[u8],
        rev: &[u8],
        value: &[u8],
    ) -> Result<(String, Vec<u8>), String> {
        let o = self.open(old_key, value)?;
        let nonce_bytes = self.fresh(b"nonce", rev, new_key);
        let nonce = nonce_bytes.get(..GCM_NONCE).ok_or("nonce")?;
        let (range, data) = match o.how {
            Seal::V1Cbc => return Ok((o.label, value.to_vec())),
            Seal::V1Gcm { data_at, dek } => {
                let ct = crate::aesgcm::seal(&dek, nonce, &o.plaintext, new_key).ok_or("AES-GCM sealing failed")?;
                (data_at..value.len(), [nonce, &ct].concat())
            }
            Seal::V2 { range, dek, seed: false } => {
                let ct = crate::aesgcm::seal(&dek, nonce, &o.plaintext, new_key).ok_or("AES-GCM sealing failed")?;
                (range, [nonce, &ct].concat())
            }
            Seal::V2 { range, dek, seed: true } => {
                let info = self.fresh(b"info", rev, new_key);
                let key = derive(&dek, &info)?;
                let ct = crate::aesgcm::seal(&key[..], nonce, &o.plaintext, new_key).ok_or("AES-GCM sealing failed")?;
                (range, [&info[..], nonce, &ct].concat())
            }
        };
        if data.len() != range.len() {
            return Err(format!("re-sealed data is {} bytes, the stored one {}", data.len(), range.len()));
        }
        let mut out = Vec::with_capacity(value.len());
        out.extend_from_slice(value.get(..range.start).ok_or("range")?);
        out.extend_from_slice(&data);
        out.extend_from_slice(value.get(range.end..).ok_or("range")?);
        Ok((o.label, out))
    }
}

/// HKDF-Expand(SHA-256, PRK = seed, info), 32 bytes (aes_extended_nonce.go `sha256KDFExpandOnly`).
fn derive(seed: &[u8], info: &[u8]) -> Result<Zeroizing<[u8; 32]>, String> {
    if seed.len() < SEED_INFO {
        return Err(format!("the plugin's seed is {} bytes, expected at least {SEED_INFO}", seed.len()));
    }
    let hk = hkdf::Hkdf::<Sha256>::from_prk(seed).map_err(|_| "seed unusable as HKDF key".to_string())?;
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(info, &mut key[..]).map_err(|_| "HKDF expand failed".to_string())?;
    Ok(key)
}

fn open_gcm(key: &[u8], data: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if data.len() < GCM_NONCE.saturating_add(GCM_TAG) {
        return None;
    }
    crate::aesgcm::open(key, data.get(..GCM_NONCE)?, data.get(GCM_NONCE..)?, aad).map(Zeroizing::new)
}

fn open_v2(dek: &[u8], seed: bool, data: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let why = "the DEK does not decrypt it (the value was not written under this etcd key, or is damaged)";
    if !seed {
        if ![16, 24, 32].contains(&dek.len()) {
            return Err(format!("the plugin's DEK is {} bytes, not an AES key", dek.len()));
        }
        return open_gcm(dek, data, aad).ok_or_else(|| why.to_string());
    }
    let info = data.get(..SEED_INFO).ok_or("encrypted data shorter than the KDF info")?;
    let key = derive(dek, info)?;
    open_gcm(&key[..], data.get(SEED_INFO..).unwrap_or_default(), aad).ok_or_else(|| why.to_string())
}

fn open_cbc(key: &[u8], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
    let iv = data.get(..16)?;
    let ct = data.get(16..)?;
    if ct.is_empty() || ct.len() % 16 != 0 {
        return None;
    }
    let mut buf = Zeroizing::new(ct.to_vec());
    let n = match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .ok()?
            .len(),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .ok()?
            .len(),
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .ok()?
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .ok()?
            .len(),
        _ => return None,
    };
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;
    use prost::Message;

    fn object(data: Vec<u8>, ty: i32) -> EncryptedObject {
        EncryptedObject {
            encrypted_data: data,
            key_id: "kek-1".into(),
            encrypted_dek_source: vec![7; 60],
            annotations: [("a.example.com".to_string(), b"x".to_vec())].into_iter().collect(),
            encrypted_dek_source_type: ty,
        }
    }

    #[test]
    fn finds_encrypted_data_and_validates() {
        let o = object(vec![5; 300], HKDF_SHA256_XNONCE_AES_GCM_SEED);
        let buf = o.encode_to_vec();
        let r = encrypted_data_range(&buf).unwrap();
        assert_eq!(&buf[r.clone()], &o.encrypted_data[..]);
        assert!(o.validate().is_ok());
        // A later field 1 wins, as in protobuf.
        let mut twice = buf.clone();
        twice.extend_from_slice(&[0x0a, 2, 9, 9]);
        let r2 = encrypted_data_range(&twice).unwrap();
        assert_eq!(&twice[r2], &[9, 9]);
        assert!(encrypted_data_range(&buf[..buf.len() - 1]).is_none());
        assert!(object(vec![], 0).validate().is_err());
        assert!(object(vec![1], 2).validate().is_err());
        assert_ne!(object(vec![1], 0).cache_key(), object(vec![1], 1).cache_key());
    }

    #[test]
    fn seed_mode_round_trip() {
        let seed = [3u8; 32];
        let info = [4u8; 32];
        let key = derive(&seed, &info).unwrap();
        let ct = crate::aesgcm::seal(&key[..], &[1; 12], b"secret", b"/k").unwrap();
        let data = [&info[..], &[1; 12], &ct].concat();
        assert_eq!(open_v2(&seed, true, &data, b"/k").unwrap().as_slice(), b"secret");
        assert!(open_v2(&seed, true, &data, b"/other").is_err());
        assert!(open_v2(&seed[..16], true, &data, b"/k").is_err());
    }
}
