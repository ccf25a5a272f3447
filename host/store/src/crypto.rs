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
//!
//! AES-256-GCM is `ring`'s (already linked through rustls): it picks its fastest code at run
//! time (VAES/VPCLMULQDQ with AVX2, else AES-NI/PCLMULQDQ, else constant-time software), without
//! any build flag. The expanded key (round keys and GHASH table) lives in one heap slot per
//! [`Sealer`] and is overwritten on drop (see [`Sealer`]'s `Drop`).

use std::hint::black_box;

use hmac::{Hmac, Mac as _};
use rand::Rng as _;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
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
    // Boxed so the expanded key stays in one place (moving a `Sealer` moves only the pointer)
    // and that one place is what `Drop` overwrites.
    key: Box<LessSafeKey>,
}

/// A sealed value did not authenticate (or was too short to be one).
#[derive(Debug)]
pub(crate) struct OpenFailed;

/// `key` expanded for AES-256-GCM.
fn expand(key: &[u8; 32]) -> LessSafeKey {
    // AES-256-GCM takes exactly 32 bytes; `UnboundKey::new` only rejects other lengths.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("AES-256 takes a 32-byte key"))
}

impl Sealer {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self {
            key: Box::new(expand(key)),
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
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(ad),
                &mut out[1 + NONCE_LEN..],
            )
            // AES-GCM only fails for plaintexts over 64 GiB; values are bounded far below.
            .expect("AES-GCM plaintext within limits");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Opens a value made by [`Sealer::seal`] with the same `ad`. On failure nothing of the
    /// (unauthenticated) plaintext escapes: the buffer is a [`Secret`], wiped when dropped.
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
        self.key
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(ad),
                tag,
                &mut buf,
                0..,
            )
            .map_err(|_| OpenFailed)?;
        Ok(buf)
    }
}

impl Drop for Sealer {
    /// Overwrites the expanded key in its heap slot with the expansion of an all-zero key, so
    /// nothing derived from the real key stays in freed memory (the `zeroize` crate's promise,
    /// for a type that does not implement `Zeroize`). `black_box` makes the slot look read
    /// afterwards, so the store cannot be dropped as dead before the deallocation.
    fn drop(&mut self) {
        *self.key = expand(&[0; 32]);
        black_box(&*self.key);
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

    /// Values are standard AES-256-GCM (the format written before `ring` was used, by the
    /// `aes-gcm` crate): each implementation opens what the other sealed, and tampering with
    /// either side's output is caught.
    #[test]
    fn sealed_values_interoperate_with_the_aes_gcm_crate() {
        use aes_gcm::aead::AeadInOut as _;
        use aes_gcm::{Aes256Gcm, KeyInit as _};
        let key = [9u8; 32];
        let ours = Sealer::new(&key);
        let theirs = Aes256Gcm::new(&key.into());
        for n in [0, 1, 15, 16, 17, 1559, 4096 + 3] {
            let pt: Vec<u8> = (0..n).map(|i| (i * 7 + 1) as u8).collect();

            let v = ours.seal(b"ad", &pt);
            let (nonce, rest) = v[1..].split_at(NONCE_LEN);
            let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
            let mut body = body.to_vec();
            theirs
                .decrypt_inout_detached(
                    &aes_gcm::Nonce::try_from(nonce).unwrap(),
                    b"ad",
                    body.as_mut_slice().into(),
                    &aes_gcm::Tag::try_from(tag).unwrap(),
                )
                .unwrap();
            assert_eq!(body, pt, "n = {n}");

            let nonce = [3u8; NONCE_LEN];
            let mut body = pt.clone();
            let tag = theirs
                .encrypt_inout_detached(&nonce.into(), b"ad", body.as_mut_slice().into())
                .unwrap();
            let sealed = [&[VALUE_FORMAT][..], &nonce, &body, &tag].concat();
            assert_eq!(
                &*ours.open(b"ad", &sealed).unwrap(),
                pt.as_slice(),
                "n = {n}"
            );
            assert!(ours.open(b"ae", &sealed).is_err());
            let mut bad = sealed.clone();
            *bad.last_mut().unwrap() ^= 0x80;
            assert!(ours.open(b"ad", &bad).is_err());
        }
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
