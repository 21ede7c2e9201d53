//! Re-sealing `aesgcm` values for a renamed etcd key.
//!
//! Stored form (k8s.io/apiserver pkg/storage/value/encrypt/aes, `gcm`, behind
//! the prefix transformer of pkg/server/options/encryptionconfig):
//! `k8s:enc:aesgcm:v1:<name>:` + 12-byte nonce + ciphertext + 16-byte tag,
//! with the full etcd key as authenticated data.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, Nonce};
use sha2::{Digest, Sha256};

use etcdsnap_keys::Reseal;

use crate::config::{AesKey, EncryptionConfig};
use crate::K8sError;

const PREFIX: &[u8] = b"k8s:enc:aesgcm:v1:";
const NONCE: usize = 12;
const TAG: usize = 16;

type Aes192Gcm = AesGcm<aes_gcm::aes::Aes192, aes_gcm::aead::consts::U12>;

/// Splits a stored value into (key name, nonce, ciphertext with tag).
fn split(value: &[u8]) -> Option<(&str, &[u8], &[u8])> {
    let rest = value.strip_prefix(PREFIX)?;
    let colon = rest.iter().position(|&b| b == b':')?;
    let name = std::str::from_utf8(rest.get(..colon)?).ok()?;
    let body = rest.get(colon.checked_add(1)?..)?;
    if body.len() < NONCE + TAG {
        return None;
    }
    Some((name, body.get(..NONCE)?, body.get(NONCE..)?))
}

pub(crate) fn open(secret: &[u8], nonce: &[u8], ct: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let n = Nonce::from_slice(nonce);
    let p = Payload { msg: ct, aad };
    match secret.len() {
        16 => Aes128Gcm::new_from_slice(secret).ok()?.decrypt(n, p).ok(),
        24 => Aes192Gcm::new_from_slice(secret).ok()?.decrypt(n, p).ok(),
        32 => Aes256Gcm::new_from_slice(secret).ok()?.decrypt(n, p).ok(),
        _ => None,
    }
}

pub(crate) fn seal(secret: &[u8], nonce: &[u8], pt: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let n = Nonce::from_slice(nonce);
    let p = Payload { msg: pt, aad };
    match secret.len() {
        16 => Aes128Gcm::new_from_slice(secret).ok()?.encrypt(n, p).ok(),
        24 => Aes192Gcm::new_from_slice(secret).ok()?.encrypt(n, p).ok(),
        32 => Aes256Gcm::new_from_slice(secret).ok()?.encrypt(n, p).ok(),
        _ => None,
    }
}

/// Re-seals `aesgcm` values with the keys of an EncryptionConfiguration.
///
/// Nonces: SHA-256 over a random seed drawn once per resealer, the revision
/// key and the new etcd key, cut to 12 bytes. Every stored value has its own
/// revision key, so no nonce repeats within a run, a new seed makes them fresh
/// for every run, and the rewrite's passes (layout, then write) see the same
/// bytes. kube-apiserver's own nonces are random 12-byte values.
pub struct AesGcmResealer {
    keys: Vec<AesKey>,
    seed: [u8; 32],
}

impl std::fmt::Debug for AesGcmResealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AesGcmResealer").field("keys", &self.keys).finish_non_exhaustive()
    }
}

impl AesGcmResealer {
    /// A resealer with the `aesgcm` keys of `cfg`.
    pub fn new(cfg: &EncryptionConfig) -> Result<Self, K8sError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| K8sError::Random(e.to_string()))?;
        Ok(Self { keys: cfg.aesgcm.clone(), seed })
    }

    /// The key that opens `value` under `aad`, and the plaintext.
    fn open_value<'k>(&'k self, aad: &[u8], value: &[u8]) -> Result<(&'k AesKey, Vec<u8>), String> {
        let (name, nonce, ct) =
            split(value).ok_or("not an aesgcm value etcdsnap can read (k8s:enc:aesgcm:v1:<name>:…)")?;
        let mut named = self.keys.iter().filter(|k| k.name == name).peekable();
        if named.peek().is_none() {
            return Err(format!("the encryption config has no aesgcm key named {name:?}"));
        }
        for k in named {
            if let Some(pt) = open(&k.secret, nonce, ct, aad) {
                return Ok((k, pt));
            }
        }
        Err(format!(
            "aesgcm key {name:?} does not decrypt it (wrong key, or the value was not written under this etcd key)"
        ))
    }

    fn nonce(&self, rev: &[u8], new_key: &[u8]) -> [u8; NONCE] {
        let mut h = Sha256::new();
        h.update(self.seed);
        h.update((rev.len() as u64).to_be_bytes());
        h.update(rev);
        h.update(new_key);
        let d = h.finalize();
        let mut n = [0u8; NONCE];
        n.copy_from_slice(d.get(..NONCE).unwrap_or(&[0u8; NONCE]));
        n
    }
}

impl Reseal for AesGcmResealer {
    fn check(&self, old_key: &[u8], value: &[u8]) -> Result<String, String> {
        self.open_value(old_key, value).map(|(k, _)| format!("aesgcm/{}", k.name))
    }

    fn reseal(&self, old_key: &[u8], new_key: &[u8], rev: &[u8], value: &[u8]) -> Result<(String, Vec<u8>), String> {
        let (k, pt) = self.open_value(old_key, value)?;
        let nonce = self.nonce(rev, new_key);
        let ct = seal(&k.secret, &nonce, &pt, new_key).ok_or("AES-GCM sealing failed")?;
        let mut out = Vec::with_capacity(value.len());
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(k.name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok((format!("aesgcm/{}", k.name), out))
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    fn resealer(secret: &[u8]) -> AesGcmResealer {
        let cfg = EncryptionConfig {
            aesgcm: vec![AesKey { name: "key1".into(), secret: secret.to_vec(), resources: vec!["secrets".into()] }],
            kms: vec![],
            kinds: vec![],
            entries: vec![],
        };
        AesGcmResealer::new(&cfg).unwrap_or_else(|_| AesGcmResealer { keys: cfg.aesgcm.clone(), seed: [7; 32] })
    }

    fn stored(secret: &[u8], aad: &[u8], pt: &[u8]) -> Vec<u8> {
        let nonce = [9u8; NONCE];
        let mut v = b"k8s:enc:aesgcm:v1:key1:".to_vec();
        v.extend_from_slice(&nonce);
        v.extend_from_slice(&seal(secret, &nonce, pt, aad).unwrap_or_default());
        v
    }

    #[test]
    fn reseal_moves_the_value_to_the_new_key() {
        for len in [16usize, 24, 32] {
            let secret = vec![0x42u8; len];
            let r = resealer(&secret);
            let (old, new) = (&b"/tenant-a/registry/secrets/ns/s"[..], &b"/registry/secrets/ns/s"[..]);
            let v = stored(&secret, old, b"plain secret");
            assert_eq!(r.check(old, &v).as_deref(), Ok("aesgcm/key1"));
            let (label, out) = r.reseal(old, new, b"rev-1", &v).unwrap_or_default();
            assert_eq!(label, "aesgcm/key1");
            assert_eq!(out.len(), v.len());
            let (name, nonce, ct) = split(&out).unwrap_or(("", &[], &[]));
            assert_eq!(name, "key1");
            assert_eq!(open(&secret, nonce, ct, new).as_deref(), Some(&b"plain secret"[..]));
            assert_eq!(open(&secret, nonce, ct, old), None, "bound to the new key only");
            // Same run, same revision: the same bytes (layout and write passes agree).
            assert_eq!(r.reseal(old, new, b"rev-1", &v).map(|x| x.1), Ok(out.clone()));
            assert_ne!(r.reseal(old, new, b"rev-2", &v).map(|x| x.1), Ok(out));
        }
    }

    #[test]
    fn refusals_name_the_reason() {
        let r = resealer(&[1u8; 32]);
        let v = stored(&[2u8; 32], b"/k", b"x");
        assert!(r.check(b"/k", &v).unwrap_err().contains("does not decrypt"));
        let ok = stored(&[1u8; 32], b"/k", b"x");
        assert!(r.check(b"/other", &ok).unwrap_err().contains("does not decrypt"));
        let other_name = [&b"k8s:enc:aesgcm:v1:key2:"[..], &ok[23..]].concat();
        assert!(r.check(b"/k", &other_name).unwrap_err().contains("no aesgcm key named \"key2\""));
        assert!(r.check(b"/k", b"k8s:enc:aesgcm:v1:key1:short").is_err());
    }
}
