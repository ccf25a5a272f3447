//! The symmetric primitives of the Signal protocol as WhatsApp peers use them:
//! HKDF-SHA256 with the `Whisper*` labels, HMAC-SHA256 chain steps, AES-256-CBC
//! with PKCS#7 and the 8-byte truncated message MAC.
//!
//! Everything here is deterministic and allocation-light; secrets live in
//! [`Secret32`] and [`MessageKeys`], which zeroize on drop and never print.

use std::sync::LazyLock;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use curve25519_dalek::montgomery::MontgomeryPoint;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::SignalError;
use crate::keys::{PrivateKey, PublicKey};

type HmacSha256 = Hmac<Sha256>;

/// HKDF info for the X3DH master secret.
pub(crate) const INFO_TEXT: &[u8] = b"WhisperText";
/// HKDF info for a Diffie-Hellman ratchet step.
pub(crate) const INFO_RATCHET: &[u8] = b"WhisperRatchet";
/// HKDF info for the keys of one 1:1 message.
pub(crate) const INFO_MESSAGE_KEYS: &[u8] = b"WhisperMessageKeys";
/// HKDF info for the keys of one group (sender-key) message.
pub(crate) const INFO_GROUP: &[u8] = b"WhisperGroup";

/// Length of the truncated HMAC that ends a `SignalMessage`.
pub(crate) const MAC_LEN: usize = 8;

/// 32 bytes of secret key material (root, chain or message-key seed).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Secret32(pub(crate) [u8; 32]);

impl std::fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret32(<secret>)")
    }
}

impl Secret32 {
    /// Reads exactly 32 bytes, or `None`.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(arr))
    }
}

/// HMAC-SHA256 keyed with `key` over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // A 32-byte key is always a valid HMAC key; `new_from_slice` only rejects
    // keys for MACs with a fixed key size, which HMAC is not.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// HKDF-SHA256 (RFC 5869) with a 32-byte salt, filling `out` (≤ 80 bytes here).
fn hkdf(ikm: &[u8], salt: &[u8; 32], info: &[u8], out: &mut [u8]) {
    if salt == &[0u8; 32] {
        return hkdf_zero_salt(ikm, info, out);
    }
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), ikm);
    // Our outputs are at most 80 bytes, far below HKDF's 255 * 32 limit.
    hk.expand(info, out)
        .expect("HKDF output length is within 255 blocks");
}

/// HKDF with the all-zero salt every message key uses: the extract step's HMAC
/// key schedule for that salt is computed once and cloned.
fn hkdf_zero_salt(ikm: &[u8], info: &[u8], out: &mut [u8]) {
    static ZERO_SALT: LazyLock<HmacSha256> = LazyLock::new(|| {
        <HmacSha256 as KeyInit>::new_from_slice(&[0u8; 32]).expect("HMAC takes any key length")
    });
    let mut extract = ZERO_SALT.clone();
    extract.update(ikm);
    let mut prk: [u8; 32] = extract.finalize().into_bytes().into();
    let hk = hkdf::Hkdf::<Sha256>::from_prk(&prk).expect("a 32-byte PRK is valid");
    prk.zeroize();
    hk.expand(info, out)
        .expect("HKDF output length is within 255 blocks");
}

/// Splits 64 bytes of HKDF output into (root key, chain key).
fn split_root_chain(mut okm: [u8; 64]) -> (Secret32, Secret32) {
    let mut root = [0u8; 32];
    let mut chain = [0u8; 32];
    root.copy_from_slice(&okm[..32]);
    chain.copy_from_slice(&okm[32..]);
    okm.zeroize();
    (Secret32(root), Secret32(chain))
}

/// X3DH: `HKDF(0xFF*32 || DH1 || DH2 || DH3 [|| DH4], salt = 0*32, "WhisperText", 64)`
/// → (root key, chain key).
pub(crate) fn derive_master(dhs: &[[u8; 32]]) -> (Secret32, Secret32) {
    let mut ikm = Vec::with_capacity(32 * (1 + dhs.len()));
    ikm.extend_from_slice(&[0xFF; 32]);
    for dh in dhs {
        ikm.extend_from_slice(dh);
    }
    let mut okm = [0u8; 64];
    hkdf(&ikm, &[0u8; 32], INFO_TEXT, &mut okm);
    ikm.zeroize();
    split_root_chain(okm)
}

/// One Diffie-Hellman ratchet step:
/// `HKDF(DH(ours, theirs), salt = root, "WhisperRatchet", 64)` → (new root, new chain).
pub(crate) fn ratchet_step(
    root: &Secret32,
    ours: &PrivateKey,
    theirs: &PublicKey,
) -> Result<(Secret32, Secret32), SignalError> {
    let mut shared = dh(ours, theirs)?;
    let mut okm = [0u8; 64];
    hkdf(&shared, &root.0, INFO_RATCHET, &mut okm);
    shared.zeroize();
    Ok(split_root_chain(okm))
}

/// X25519 that refuses an all-zero result (a low-order or zero public key), so a
/// malicious peer cannot force a known shared secret.
///
/// Computed on the birationally equivalent Edwards curve when `theirs` is on
/// Curve25519 (every honest key): `u(k·P) = X25519(k, u(P))` for either sign of
/// `P`, and curve25519-dalek's vectorized constant-time variable-base
/// multiplication is about twice as fast as its Montgomery ladder. Points on the
/// twist (and `u = -1`) have no Edwards twin and take the ladder
/// ([`PrivateKey::dh`]), so the result equals RFC 7748 X25519 for every input
/// (`tests::edwards_dh_equals_the_ladder`). The branch depends only on the
/// public key.
pub(crate) fn dh(ours: &PrivateKey, theirs: &PublicKey) -> Result<[u8; 32], SignalError> {
    let shared = match MontgomeryPoint(theirs.0).to_edwards(0) {
        Some(point) => {
            let mut scalar = ours.to_bytes();
            let shared = point.mul_clamped(scalar).to_montgomery().to_bytes();
            scalar.zeroize();
            shared
        }
        None => ours.dh(theirs),
    };
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return Err(SignalError::InvalidKey);
    }
    Ok(shared)
}

/// A symmetric-ratchet chain key and the index of the next message key it yields.
#[derive(Clone, Debug)]
pub(crate) struct ChainKey {
    pub(crate) index: u32,
    pub(crate) key: Secret32,
}

impl ChainKey {
    /// The message-key seed for `self.index` (`HMAC-SHA256(ck, 0x01)`) and the
    /// chain key for `index + 1` (`HMAC-SHA256(ck, 0x02)`), computed with one
    /// HMAC key schedule.
    pub(crate) fn step(&self) -> Result<(Secret32, ChainKey), SignalError> {
        let index = self
            .index
            .checked_add(1)
            .ok_or(SignalError::ChainExhausted)?;
        let keyed = <HmacSha256 as KeyInit>::new_from_slice(&self.key.0)
            .expect("HMAC takes any key length");
        let mut m1 = keyed.clone();
        m1.update(&[0x01]);
        let mut m2 = keyed;
        m2.update(&[0x02]);
        Ok((
            Secret32(m1.finalize().into_bytes().into()),
            ChainKey {
                index,
                key: Secret32(m2.finalize().into_bytes().into()),
            },
        ))
    }
}

/// The keys of one 1:1 message: `HKDF(seed, 0*32, "WhisperMessageKeys", 80)` →
/// cipher key (32) ‖ MAC key (32) ‖ IV (16).
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct MessageKeys {
    pub(crate) cipher_key: [u8; 32],
    pub(crate) mac_key: [u8; 32],
    pub(crate) iv: [u8; 16],
}

impl MessageKeys {
    pub(crate) fn from_seed(seed: &Secret32) -> Self {
        let mut okm = [0u8; 80];
        hkdf(&seed.0, &[0u8; 32], INFO_MESSAGE_KEYS, &mut okm);
        let mut keys = MessageKeys {
            cipher_key: [0; 32],
            mac_key: [0; 32],
            iv: [0; 16],
        };
        keys.cipher_key.copy_from_slice(&okm[..32]);
        keys.mac_key.copy_from_slice(&okm[32..64]);
        keys.iv.copy_from_slice(&okm[64..]);
        okm.zeroize();
        keys
    }

    /// The truncated MAC over `sender(33) || receiver(33) || version || proto`.
    pub(crate) fn mac(
        &self,
        sender: &PublicKey,
        receiver: &PublicKey,
        version: u8,
        proto: &[u8],
    ) -> [u8; MAC_LEN] {
        let full = hmac_sha256(
            &self.mac_key,
            &[&sender.to_djb(), &receiver.to_djb(), &[version], proto],
        );
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }
}

/// The keys of one group message: `HKDF(seed, 0*32, "WhisperGroup", 48)` →
/// IV (16) ‖ cipher key (32).
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct GroupMessageKeys {
    pub(crate) iv: [u8; 16],
    pub(crate) cipher_key: [u8; 32],
}

impl GroupMessageKeys {
    pub(crate) fn from_seed(seed: &Secret32) -> Self {
        let mut okm = [0u8; 48];
        hkdf(&seed.0, &[0u8; 32], INFO_GROUP, &mut okm);
        let mut keys = GroupMessageKeys {
            iv: [0; 16],
            cipher_key: [0; 32],
        };
        keys.iv.copy_from_slice(&okm[..16]);
        keys.cipher_key.copy_from_slice(&okm[16..]);
        okm.zeroize();
        keys
    }
}

/// Compares two MACs in constant time.
pub(crate) fn macs_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// AES-256-CBC with PKCS#7 padding.
pub(crate) fn aes_cbc_encrypt(key: &[u8; 32], iv: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
    cbc::Encryptor::<aes::Aes256>::new(key.into(), iv.into()).encrypt_padded_vec::<Pkcs7>(plaintext)
}

/// AES-256-CBC decryption with strict PKCS#7 removal.
pub(crate) fn aes_cbc_decrypt(
    key: &[u8; 32],
    iv: &[u8; 16],
    ciphertext: &[u8],
) -> Result<Vec<u8>, SignalError> {
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
        return Err(SignalError::InvalidCiphertext);
    }
    cbc::Decryptor::<aes::Aes256>::new(key.into(), iv.into())
        .decrypt_padded_vec::<Pkcs7>(ciphertext)
        .map_err(|_| SignalError::InvalidCiphertext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_is_rfc5869_extract_then_expand() {
        // RFC 5869 by hand: PRK = HMAC(salt, IKM); T(i) = HMAC(PRK, T(i-1) || info || i).
        let ikm = [0x0b; 40];
        let salt = [0x5a; 32];
        let prk = hmac_sha256(&salt, &[&ikm]);
        let t1 = hmac_sha256(&prk, &[INFO_MESSAGE_KEYS, &[1]]);
        let t2 = hmac_sha256(&prk, &[&t1, INFO_MESSAGE_KEYS, &[2]]);
        let t3 = hmac_sha256(&prk, &[&t2, INFO_MESSAGE_KEYS, &[3]]);
        let mut okm = [0u8; 80];
        hkdf(&ikm, &salt, INFO_MESSAGE_KEYS, &mut okm);
        assert_eq!(&okm[..32], &t1);
        assert_eq!(&okm[32..64], &t2);
        assert_eq!(&okm[64..], &t3[..16]);
        // The cached zero-salt path computes the same function.
        let mut fast = [0u8; 80];
        hkdf(&ikm, &[0u8; 32], INFO_MESSAGE_KEYS, &mut fast);
        let mut slow = [0u8; 80];
        hkdf::Hkdf::<Sha256>::new(Some(&[0u8; 32]), &ikm)
            .expand(INFO_MESSAGE_KEYS, &mut slow)
            .unwrap();
        assert_eq!(fast, slow);
    }

    #[test]
    fn chain_step_matches_separate_hmacs() {
        let ck = ChainKey {
            index: 7,
            key: Secret32([0x42; 32]),
        };
        let (seed, next) = ck.step().unwrap();
        assert_eq!(seed.0, hmac_sha256(&[0x42; 32], &[&[0x01]]));
        assert_eq!(next.key.0, hmac_sha256(&[0x42; 32], &[&[0x02]]));
        assert_eq!(next.index, 8);
        let last = ChainKey {
            index: u32::MAX,
            key: Secret32([1; 32]),
        };
        assert_eq!(last.step().unwrap_err(), SignalError::ChainExhausted);
    }

    #[test]
    fn cbc_round_trip_and_rejects_bad_lengths() {
        let key = [3u8; 32];
        let iv = [4u8; 16];
        for len in [0usize, 1, 15, 16, 17, 100] {
            let pt = vec![0xAB; len];
            let ct = aes_cbc_encrypt(&key, &iv, &pt);
            assert_eq!(ct.len(), (len / 16 + 1) * 16);
            assert_eq!(aes_cbc_decrypt(&key, &iv, &ct).unwrap(), pt);
        }
        assert_eq!(
            aes_cbc_decrypt(&key, &iv, &[0u8; 15]),
            Err(SignalError::InvalidCiphertext)
        );
        assert_eq!(
            aes_cbc_decrypt(&key, &iv, &[]),
            Err(SignalError::InvalidCiphertext)
        );
        // Wrong key: the padding check fails (with overwhelming probability).
        let ct = aes_cbc_encrypt(&key, &iv, b"hello");
        assert!(aes_cbc_decrypt(&[5u8; 32], &iv, &ct).is_err());
    }

    #[test]
    fn edwards_dh_equals_the_ladder() {
        use rand::{RngExt as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let mut twist = 0;
        for i in 0..300 {
            let ours = PrivateKey::generate(&mut rng);
            // Honest keys, and arbitrary 32-byte strings (about half on the twist,
            // some with the top bit set or non-canonical).
            let theirs = if i % 2 == 0 {
                PrivateKey::generate(&mut rng).public_key()
            } else {
                PublicKey(rng.random())
            };
            if MontgomeryPoint(theirs.0).to_edwards(0).is_none() {
                twist += 1;
            }
            let ladder = ours.dh(&theirs);
            match dh(&ours, &theirs) {
                Ok(shared) => assert_eq!(shared, ladder, "input {i}"),
                Err(e) => {
                    assert_eq!(e, SignalError::InvalidKey);
                    assert_eq!(ladder, [0u8; 32]);
                }
            }
        }
        assert!(twist > 30, "twist points exercised the fallback ({twist})");
        // u = p - 1 (= -1) and u = p (= 0, non-canonical) are handled too.
        let k = PrivateKey::generate(&mut rng);
        let mut minus_one = [0xFFu8; 32];
        minus_one[0] = 0xEC;
        minus_one[31] = 0x7F;
        assert_eq!(
            dh(&k, &PublicKey(minus_one)).ok(),
            Some(k.dh(&PublicKey(minus_one))).filter(|s| s != &[0; 32])
        );
        let mut p = minus_one;
        p[0] = 0xED;
        assert_eq!(dh(&k, &PublicKey(p)), Err(SignalError::InvalidKey));
    }

    #[test]
    fn dh_rejects_low_order_points() {
        let k = PrivateKey::from_bytes([9u8; 32]);
        assert_eq!(dh(&k, &PublicKey([0u8; 32])), Err(SignalError::InvalidKey));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(dh(&k, &PublicKey(one)), Err(SignalError::InvalidKey));
    }
}
