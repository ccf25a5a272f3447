//! The Noise `SymmetricState` during the handshake: `h`, `ck` and one AES-256-GCM key with a
//! single counter shared by both directions.
//!
//! Contract: a faithful transcription of the Noise framework's `MixHash`, `MixKey`,
//! `EncryptAndHash`, `DecryptAndHash` and `Split` with WhatsApp's parameters (see
//! `protocol-whatsmeow.md` §2.2):
//!
//! > "Initial state: `h = name`, `ck(salt) = h`, `k = AES-256-GCM(h)`, `counter = 0`. …
//! > `MixKey(ikm)`: `HKDF-SHA256(ikm, salt=ck, info=empty)`, read 64 bytes. Bytes 0..32 become
//! > the new `ck` and bytes 32..64 become the new AES-GCM key. The counter resets to 0. …
//! > 12-byte IV = 8 zero bytes + 32-bit big-endian counter (counter++ per op), AAD = current `h`.
//! > After encrypt or successful decrypt: `MixHash(ciphertext)`."
//!
//! A failed decrypt leaves `h` untouched but the caller always discards the state (the
//! handshake typestates consume `self`), so nothing can observe a half-updated transcript.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use hkdf::Hkdf;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroize as _;

use super::{HandshakeError, NOISE_PROTOCOL_NAME};
use crate::keys::{PrivateKey, PublicKey};

/// Length of the AES-GCM tag appended to every ciphertext.
pub(crate) const TAG_LEN: usize = 16;

/// The 12-byte AES-GCM nonce for `counter`: 8 zero bytes, then the counter big-endian.
pub(crate) fn nonce(counter: u32) -> aes_gcm::Nonce<aes_gcm::aead::consts::U12> {
    let mut iv = [0u8; 12];
    iv[8..].copy_from_slice(&counter.to_be_bytes());
    iv.into()
}

/// An AES-256-GCM cipher keyed with `key`.
pub(crate) fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

/// X25519 between `ours` and `theirs`, refusing an all-zero (non-contributory) result, which
/// only a low-order public key can cause.
pub(crate) fn dh(ours: &PrivateKey, theirs: &PublicKey) -> Result<[u8; 32], HandshakeError> {
    let shared = ours.dh(theirs);
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return Err(HandshakeError::LowOrderKey);
    }
    Ok(shared)
}

/// `h`, `ck` and the current handshake key with its counter.
pub(crate) struct SymmetricState {
    h: [u8; 32],
    ck: [u8; 32],
    cipher: Aes256Gcm,
    counter: u32,
}

impl SymmetricState {
    /// `InitializeSymmetric(name)` for a 32-byte name, followed by `MixHash(prologue)`.
    pub(crate) fn new(prologue: &[u8]) -> Self {
        let mut s = Self {
            h: NOISE_PROTOCOL_NAME,
            ck: NOISE_PROTOCOL_NAME,
            cipher: cipher(&NOISE_PROTOCOL_NAME),
            counter: 0,
        };
        s.mix_hash(prologue);
        s
    }

    /// `h = SHA-256(h || data)`.
    pub(crate) fn mix_hash(&mut self, data: &[u8]) {
        let mut hasher = Sha256::new();
        hasher.update(self.h);
        hasher.update(data);
        self.h = hasher.finalize().into();
    }

    /// `ck, k = HKDF(salt = ck, ikm)`; the counter restarts at 0.
    pub(crate) fn mix_key(&mut self, mut ikm: [u8; 32]) {
        let mut okm = self.hkdf(&ikm);
        ikm.zeroize();
        self.ck.copy_from_slice(&okm[..32]);
        let mut key = [0u8; 32];
        key.copy_from_slice(&okm[32..]);
        self.cipher = cipher(&key);
        self.counter = 0;
        key.zeroize();
        okm.zeroize();
    }

    fn hkdf(&self, ikm: &[u8]) -> [u8; 64] {
        let mut okm = [0u8; 64];
        Hkdf::<Sha256>::new(Some(&self.ck), ikm)
            .expand(&[], &mut okm)
            // Invariant: 64 bytes is far below HKDF-SHA256's 255 * 32 byte limit.
            .expect("64 bytes is a valid HKDF-SHA256 output length");
        okm
    }

    fn next_nonce(&mut self) -> aes_gcm::Nonce<aes_gcm::aead::consts::U12> {
        let n = nonce(self.counter);
        // The handshake performs at most three operations per key, so this never saturates.
        self.counter = self.counter.saturating_add(1);
        n
    }

    /// `EncryptAndHash`: AES-GCM with AAD = h, then `MixHash(ciphertext)`.
    pub(crate) fn encrypt_and_hash(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = self.next_nonce();
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &self.h,
                },
            )
            // Invariant: AES-GCM only fails on inputs above 2^36 bytes; handshake payloads are
            // protobufs that arrived in (or are bound for) a frame of at most 16 MiB.
            .expect("handshake plaintexts are far below the AES-GCM length limit");
        self.mix_hash(&ciphertext);
        ciphertext
    }

    /// `DecryptAndHash`: AES-GCM open with AAD = h, then `MixHash(ciphertext)`.
    ///
    /// `field` names the message field for the error.
    pub(crate) fn decrypt_and_hash(
        &mut self,
        ciphertext: &[u8],
        field: &'static str,
    ) -> Result<Vec<u8>, HandshakeError> {
        if ciphertext.len() < TAG_LEN {
            return Err(HandshakeError::Decrypt { field });
        }
        // Noise: "If an authentication failure occurs … then n is not incremented".
        let plaintext = self
            .cipher
            .decrypt(
                &nonce(self.counter),
                Payload {
                    msg: ciphertext,
                    aad: &self.h,
                },
            )
            .map_err(|_| HandshakeError::Decrypt { field })?;
        self.counter = self.counter.saturating_add(1);
        self.mix_hash(ciphertext);
        Ok(plaintext)
    }

    /// `Split()`: `HKDF(salt = ck, ikm = empty)` → (initiator's send key, responder's send key).
    pub(crate) fn split(&self) -> ([u8; 32], [u8; 32]) {
        let mut okm = self.hkdf(&[]);
        let mut k1 = [0u8; 32];
        let mut k2 = [0u8; 32];
        k1.copy_from_slice(&okm[..32]);
        k2.copy_from_slice(&okm[32..]);
        okm.zeroize();
        (k1, k2)
    }

    /// The handshake hash (for tests and channel binding).
    pub(crate) fn handshake_hash(&self) -> [u8; 32] {
        self.h
    }
}

impl Drop for SymmetricState {
    fn drop(&mut self) {
        self.ck.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_hash_is_the_raw_protocol_name() {
        // Baileys NOISE_MODE as hex (interop-baileys.md §3).
        assert_eq!(
            hex::encode(NOISE_PROTOCOL_NAME),
            "4e6f6973655f58585f32353531395f41455347434d5f53484132353600000000"
        );
        let s = SymmetricState::new(b"WA\x06\x03");
        let mut expect = Sha256::new();
        expect.update(NOISE_PROTOCOL_NAME);
        expect.update(b"WA\x06\x03");
        assert_eq!(s.handshake_hash(), <[u8; 32]>::from(expect.finalize()));
    }

    #[test]
    fn nonce_layout() {
        let n = nonce(0x0102_0304);
        assert_eq!(n.as_slice(), &[0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn mix_key_matches_rfc5869_hkdf_split() {
        let mut s = SymmetricState::new(b"");
        s.mix_key([7u8; 32]);
        let mut okm = [0u8; 64];
        Hkdf::<Sha256>::new(Some(&NOISE_PROTOCOL_NAME), &[7u8; 32])
            .expand(&[], &mut okm)
            .unwrap();
        assert_eq!(s.ck, okm[..32]);
        // The key half encrypts exactly like a fresh AES-256-GCM with that key, counter 0, AAD h.
        let h = s.handshake_hash();
        let mut key = [0u8; 32];
        key.copy_from_slice(&okm[32..]);
        let expected = cipher(&key)
            .encrypt(&nonce(0), Payload { msg: b"x", aad: &h })
            .unwrap();
        assert_eq!(s.encrypt_and_hash(b"x"), expected);
    }

    #[test]
    fn the_counter_is_shared_between_directions() {
        let mut a = SymmetricState::new(b"p");
        let mut b = SymmetricState::new(b"p");
        a.mix_key([1; 32]);
        b.mix_key([1; 32]);
        let c0 = a.encrypt_and_hash(b"one");
        assert_eq!(b.decrypt_and_hash(&c0, "t").unwrap(), b"one");
        // Both sides are now at counter 1; a ciphertext made with counter 0 must fail.
        let mut stale = SymmetricState::new(b"p");
        stale.mix_key([1; 32]);
        stale.h = a.h;
        let wrong = stale.encrypt_and_hash(b"two");
        assert_eq!(
            b.decrypt_and_hash(&wrong, "t"),
            Err(HandshakeError::Decrypt { field: "t" })
        );
        let c1 = a.encrypt_and_hash(b"two");
        assert_eq!(b.decrypt_and_hash(&c1, "t").unwrap(), b"two");
        assert_eq!(a.split(), b.split());
    }
}
