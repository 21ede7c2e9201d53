//! Opening `secretbox` values.
//!
//! Stored form (k8s.io/apiserver pkg/storage/value/encrypt/secretbox):
//! `k8s:enc:secretbox:v1:<name>:` + 24-byte nonce + NaCl secretbox
//! (XSalsa20-Poly1305, golang.org/x/crypto/nacl/secretbox) of the value under
//! a 32-byte key. No authenticated data: the etcd key is not bound.

use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use zeroize::Zeroizing;

const NONCE: usize = 24;
/// `secretbox.Overhead`: the Poly1305 tag.
const OVERHEAD: usize = 16;

/// The plaintext of `data` (nonce + box) under `key`, or why not.
pub(crate) fn open(key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    if data.len() < NONCE.saturating_add(OVERHEAD) {
        return Err("the stored data is shorter than the nonce and tag");
    }
    let (nonce, sealed) = data.split_at(NONCE);
    let cipher = XSalsa20Poly1305::new_from_slice(key).map_err(|_| "not a 32-byte key")?;
    cipher
        .decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed)
        .map(Zeroizing::new)
        .map_err(|_| "the key does not open it (wrong key, or the value is damaged)")
}
