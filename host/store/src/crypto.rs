//! The store's cryptography: AES-256-GCM value sealing, HMAC-SHA256 key derivation and keyed
//! hashing of record keys, and random key generation.
//!
//! Sealed value format (all versions): `0x01 || nonce (12) || ciphertext || tag (16)`. The nonce
//! is fresh and random for every write. The associated data is built by the caller and binds the
//! value to its table, its full stored key and the schema version, so a value copied to another
//! record, table or account fails to open.
//!
//! Key hierarchy (see `DESIGN.md`): a key-encryption key (KEK) wraps the random root key; the
//! root key seals the account directory, whose entries hold each account's random data key; from
//! a 256-bit data key `k` we derive `enc = HMAC(k, "wasmeow-store/enc")` for AES-GCM and
//! `hash = HMAC(k, "wasmeow-store/key-hash")` for record keys.

use aes_gcm::aead::AeadInOut as _;
use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce, Tag};
use hmac::{Hmac, Mac as _};
use rand::Rng as _;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::types::Secret;

type HmacSha256 = Hmac<Sha256>;

/// First byte of every sealed value.
pub(crate) const VALUE_FORMAT: u8 = 1;
/// Bytes added to a plaintext by [`Sealer::seal`].
pub(crate) const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A fresh random 256-bit key from the thread-local CSPRNG (seeded from the OS).
pub(crate) fn random_key() -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(k.as_mut_slice());
    k
}

/// Random bytes (salts, nonces).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// `HMAC-SHA256(key, label)`: a derived 256-bit subkey.
pub(crate) fn derive(key: &[u8; 32], label: &[u8]) -> Zeroizing<[u8; 32]> {
    // A 32-byte key is always a valid HMAC key; `new_from_slice` only rejects lengths some MACs
    // cannot take.
    let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(label);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// AES-256-GCM with one key.
#[derive(Clone)]
pub(crate) struct Sealer {
    cipher: Aes256Gcm,
}

/// A sealed value did not authenticate (or was too short to be one).
#[derive(Debug)]
pub(crate) struct OpenFailed;

impl Sealer {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// Seals `plaintext` under `ad` with a fresh random nonce.
    pub(crate) fn seal(&self, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.push(VALUE_FORMAT);
        let nonce: [u8; NONCE_LEN] = random_bytes();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_inout_detached(
                &Nonce::from(nonce),
                ad,
                out[1 + NONCE_LEN..].as_mut().into(),
            )
            // AES-GCM only fails for plaintexts over 64 GiB; values are bounded far below.
            .expect("AES-GCM plaintext within limits");
        out.extend_from_slice(&tag);
        out
    }

    /// Opens a value made by [`Sealer::seal`] with the same `ad`.
    pub(crate) fn open(&self, ad: &[u8], sealed: &[u8]) -> Result<Secret, OpenFailed> {
        if sealed.len() < SEAL_OVERHEAD || sealed[0] != VALUE_FORMAT {
            return Err(OpenFailed);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
        let body = &sealed[1 + NONCE_LEN..sealed.len() - TAG_LEN];
        let tag = Tag::try_from(&sealed[sealed.len() - TAG_LEN..]).map_err(|_| OpenFailed)?;
        let mut buf = Secret::with_capacity(body.len());
        buf.extend_from_slice(body);
        self.cipher
            .decrypt_inout_detached(&Nonce::from(nonce), ad, (&mut *buf).into(), &tag)
            .map_err(|_| OpenFailed)?;
        Ok(buf)
    }
}

/// HMAC-SHA256 under one key, for record keys that must not reveal contacts.
#[derive(Clone)]
pub(crate) struct KeyHasher {
    mac: HmacSha256,
}

impl KeyHasher {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self {
            mac: <HmacSha256 as hmac::KeyInit>::new_from_slice(key).expect("HMAC takes any key"),
        }
    }

    /// `HMAC(key, label || 0x00 || (len_u32_be || part)*)`, the full 32 bytes.
    pub(crate) fn hash32(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(label);
        mac.update(&[0]);
        for p in parts {
            mac.update(&(p.len() as u32).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// [`KeyHasher::hash32`] truncated to 16 bytes (a 128-bit keyed hash: collisions need about
    /// 2^64 records).
    pub(crate) fn hash16(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 16] {
        let full = self.hash32(label, parts);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

/// The working keys derived from one 256-bit data key (an account's, or the root key).
#[derive(Clone)]
pub(crate) struct DataKeys {
    pub(crate) sealer: Sealer,
    pub(crate) hasher: KeyHasher,
}

impl DataKeys {
    pub(crate) fn derive(data_key: &[u8; 32]) -> Self {
        Self {
            sealer: Sealer::new(&derive(data_key, b"wasmeow-store/enc")),
            hasher: KeyHasher::new(&derive(data_key, b"wasmeow-store/key-hash")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let s = Sealer::new(&[7u8; 32]);
        let v = s.seal(b"ad", b"hello");
        assert_eq!(v.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(&*s.open(b"ad", &v).unwrap(), b"hello");
        assert!(s.open(b"other", &v).is_err());
        let mut t = v.clone();
        t[3] ^= 1;
        assert!(s.open(b"ad", &t).is_err());
        assert!(Sealer::new(&[8u8; 32]).open(b"ad", &v).is_err());
        assert!(s.open(b"ad", &v[..SEAL_OVERHEAD - 1]).is_err());
        // Fresh nonce per write.
        assert_ne!(s.seal(b"ad", b"hello"), v);
    }

    #[test]
    fn hashes_separate_labels_and_part_boundaries() {
        let h = KeyHasher::new(&[1u8; 32]);
        assert_ne!(h.hash16(b"a", &[b"xy"]), h.hash16(b"b", &[b"xy"]));
        assert_ne!(h.hash16(b"a", &[b"x", b"y"]), h.hash16(b"a", &[b"xy"]));
        assert_eq!(h.hash16(b"a", &[b"xy"]), h.hash16(b"a", &[b"xy"]));
        assert_ne!(
            KeyHasher::new(&[2u8; 32]).hash16(b"a", &[b"xy"]),
            h.hash16(b"a", &[b"xy"])
        );
    }
}
