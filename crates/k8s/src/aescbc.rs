//! Opening `aescbc` values.
//!
//! Stored form (k8s.io/apiserver pkg/storage/value/encrypt/aes, `cbc`, behind
//! the prefix transformers of pkg/server/options/encryptionconfig):
//! `k8s:enc:aescbc:v1:<name>:` + 16-byte IV + AES-CBC ciphertext of the value
//! padded with PKCS#7. No authenticated data: the etcd key is not bound (the
//! transformer ignores its `value.Context` in every version that has it), and
//! nothing authenticates the ciphertext, so a damaged value is caught only by
//! its padding.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};
use zeroize::Zeroizing;

const BLOCK: usize = 16;

/// The plaintext of `data` (IV + ciphertext) under `key`, unpadded as
/// upstream's `TransformFromStorage` does; or why not.
pub(crate) fn open(key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    let iv = data.get(..BLOCK).ok_or("the stored data is shorter than the IV")?;
    let ct = data.get(BLOCK..).unwrap_or_default();
    if ct.len() % BLOCK != 0 {
        return Err("the stored data is not a multiple of the block size");
    }
    let mut buf = Zeroizing::new(ct.to_vec());
    let wrong = "not an AES key";
    let res = match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| wrong)?
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map(<[u8]>::len),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
            .map_err(|_| wrong)?
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map(<[u8]>::len),
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| wrong)?
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map(<[u8]>::len),
        _ => return Err(wrong),
    };
    let n = res.map_err(|_| "the stored data is not a multiple of the block size")?;
    // Upstream's check, byte for byte: a pad length from 1 to the whole
    // plaintext, every pad byte equal to it (not limited to one block).
    let pad = usize::from(*buf.get(..n).and_then(<[u8]>::last).ok_or("invalid PKCS7 data (empty or not padded)")?);
    if pad == 0 || pad > n {
        return Err("invalid PKCS7 data (empty or not padded)");
    }
    let size = n.saturating_sub(pad);
    if buf.get(size..n).is_none_or(|p| p.iter().any(|&b| usize::from(b) != pad)) {
        return Err("invalid padding on input");
    }
    buf.truncate(size);
    Ok(buf)
}
