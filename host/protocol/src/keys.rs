//! Curve25519 key pairs as WhatsApp and Signal use them.
//!
//! Private keys are clamped 32-byte scalars. Public keys travel as raw 32 bytes
//! in binary nodes and Noise, and as 33 bytes with a leading `0x05` type byte
//! ("DJB" form) inside Signal structures. Private key material is zeroized on
//! drop and never printed by `Debug`.

use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The type byte that prefixes a serialized Curve25519 public key in Signal.
pub const DJB_TYPE: u8 = 0x05;

/// A Curve25519 public key (a Montgomery u-coordinate).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

/// A clamped Curve25519 private key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey([u8; 32]);

/// A private key and its public key.
#[derive(Clone)]
pub struct KeyPair {
    /// The private half.
    pub private: PrivateKey,
    /// The public half, derived from `private`.
    pub public: PublicKey,
}

/// A public key could not be read from bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The input had the wrong length for the expected form.
    #[error("public key must be {expected} bytes, got {got}")]
    BadLength {
        /// Bytes expected.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// A 33-byte key did not start with the 0x05 type byte.
    #[error("public key type byte must be 0x05, got {0:#04x}")]
    BadType(u8),
}

impl PublicKey {
    /// Reads a raw 32-byte public key.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::BadLength {
            expected: 32,
            got: bytes.len(),
        })?;
        Ok(Self(arr))
    }

    /// Reads the 33-byte `0x05 || key` form used inside Signal structures.
    pub fn from_djb(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != 33 {
            return Err(KeyError::BadLength {
                expected: 33,
                got: bytes.len(),
            });
        }
        if bytes[0] != DJB_TYPE {
            return Err(KeyError::BadType(bytes[0]));
        }
        Self::from_slice(&bytes[1..])
    }

    /// The 33-byte `0x05 || key` form.
    pub fn to_djb(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[0] = DJB_TYPE;
        out[1..].copy_from_slice(&self.0);
        out
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl PrivateKey {
    /// Builds a private key from 32 bytes, clamping them as X25519 requires.
    pub fn from_bytes(mut bytes: [u8; 32]) -> Self {
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        let key = Self(bytes);
        bytes.zeroize();
        key
    }

    /// Draws a fresh private key from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// The clamped scalar bytes. Handle with care: this is secret material.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    /// X25519 Diffie-Hellman with `their` public key.
    pub fn dh(&self, their: &PublicKey) -> [u8; 32] {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(their.0))
            .to_bytes()
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(<secret>)")
    }
}

impl KeyPair {
    /// Draws a fresh key pair from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_private(PrivateKey::generate(rng))
    }

    /// Completes a key pair from its private half.
    pub fn from_private(private: PrivateKey) -> Self {
        let public = private.public_key();
        Self { private, public }
    }
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dh_agrees_both_ways() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = KeyPair::generate(&mut rng);
        let b = KeyPair::generate(&mut rng);
        assert_eq!(a.private.dh(&b.public), b.private.dh(&a.public));
    }

    #[test]
    fn djb_form_round_trips_and_rejects_junk() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let a = KeyPair::generate(&mut rng);
        let djb = a.public.to_djb();
        assert_eq!(PublicKey::from_djb(&djb).unwrap(), a.public);
        let mut bad = djb;
        bad[0] = 0x06;
        assert_eq!(PublicKey::from_djb(&bad), Err(KeyError::BadType(0x06)));
        assert_eq!(
            PublicKey::from_djb(&djb[..32]),
            Err(KeyError::BadLength {
                expected: 33,
                got: 32
            })
        );
    }

    #[test]
    fn private_key_is_clamped_and_redacted() {
        let k = PrivateKey::from_bytes([0xff; 32]);
        let b = k.to_bytes();
        assert_eq!(b[0] & 7, 0);
        assert_eq!(b[31] & 0x80, 0);
        assert_eq!(b[31] & 0x40, 0x40);
        assert_eq!(format!("{k:?}"), "PrivateKey(<secret>)");
    }

    use rand::SeedableRng as _;
}
