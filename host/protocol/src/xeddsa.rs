//! XEdDSA: Ed25519-style signatures made and checked with Curve25519 (Montgomery)
//! keys, as Signal and WhatsApp use them for signed prekeys, the Noise
//! certificate chain, ADV device identities and sender-key messages.
//!
//! The construction follows the XEdDSA specification
//! (<https://signal.org/docs/specifications/xeddsa/>) with the convention
//! libsignal established and every WhatsApp peer follows: the signer does *not*
//! force its Edwards public key to a positive sign; instead it stores the sign
//! bit of its Edwards public key `A` in the top bit of the signature's last byte.
//! The verifier converts the Montgomery `u` to an Edwards point using that bit,
//! clears it, and runs an ordinary Ed25519 verification.
//!
//! ```text
//!   r = SHA-512(0xFE || 0xFF*31 || a || M || Z) mod L      (Z: 64 random bytes)
//!   R = r·B,  A = a·B,  h = SHA-512(R || A || M) mod L,  s = r + h·a mod L
//!   signature = R || s,  with signature[63] |= sign(A) << 7
//! ```

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

use crate::keys::{PrivateKey, PublicKey};

/// Length of an XEdDSA signature.
pub const SIGNATURE_LEN: usize = 64;

/// A signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature was not 64 bytes.
    #[error("signature must be 64 bytes, got {0}")]
    BadLength(usize),
    /// The public key has no Edwards equivalent, or `s` is not a canonical scalar.
    #[error("signature or public key is malformed")]
    Malformed,
    /// The equation did not hold: wrong key, wrong message or forged signature.
    #[error("signature does not verify")]
    Mismatch,
}

/// Signs `message` with a Curve25519 private key.
///
/// `rng` supplies the 64 random bytes XEdDSA mixes into the nonce; signing the
/// same message twice gives different signatures, both valid.
pub fn sign<R: CryptoRng + ?Sized>(
    key: &PrivateKey,
    message: &[u8],
    rng: &mut R,
) -> [u8; SIGNATURE_LEN] {
    let mut random = [0u8; 64];
    rng.fill_bytes(&mut random);
    let sig = sign_with_nonce(key, message, &random);
    random.zeroize();
    sig
}

/// Signs with caller-chosen nonce randomness. Deterministic; used by [`sign`] and
/// by test vectors. Never reuse `random` for two different messages.
pub fn sign_with_nonce(key: &PrivateKey, message: &[u8], random: &[u8; 64]) -> [u8; SIGNATURE_LEN] {
    let mut a_bytes = key.to_bytes();
    let a = Scalar::from_bytes_mod_order(a_bytes);
    let big_a = (&a * ED25519_BASEPOINT_TABLE).compress();
    let sign_bit = big_a.as_bytes()[31] & 0x80;

    let mut prefix = [0xFFu8; 32];
    prefix[0] = 0xFE;
    let mut h = Sha512::new();
    h.update(prefix);
    h.update(a_bytes);
    h.update(message);
    h.update(random);
    let r = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    a_bytes.zeroize();

    let big_r = (&r * ED25519_BASEPOINT_TABLE).compress();
    let mut h = Sha512::new();
    h.update(big_r.as_bytes());
    h.update(big_a.as_bytes());
    h.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    let s = r + k * a;

    let mut sig = [0u8; SIGNATURE_LEN];
    sig[..32].copy_from_slice(big_r.as_bytes());
    sig[32..].copy_from_slice(s.as_bytes());
    sig[63] &= 0x7F;
    sig[63] |= sign_bit;
    sig
}

/// Verifies an XEdDSA `signature` over `message` by the Curve25519 key `public`.
pub fn verify(public: &PublicKey, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
    let sig: &[u8; SIGNATURE_LEN] = signature
        .try_into()
        .map_err(|_| SignatureError::BadLength(signature.len()))?;
    let sign_bit = sig[63] >> 7;
    let big_a = MontgomeryPoint(public.0)
        .to_edwards(sign_bit)
        .ok_or(SignatureError::Malformed)?;
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&sig[32..]);
    s_bytes[31] &= 0x7F;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))
        .ok_or(SignatureError::Malformed)?;
    let big_r =
        CompressedEdwardsY::from_slice(&sig[..32]).map_err(|_| SignatureError::Malformed)?;

    let mut h = Sha512::new();
    h.update(big_r.as_bytes());
    h.update(big_a.compress().as_bytes());
    h.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    // R' = s·B − k·A must equal R.
    let check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &(-big_a), &s);
    if check.compress() == big_r {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;

    use super::*;
    use crate::keys::KeyPair;

    fn rng(seed: u64) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(seed)
    }

    #[test]
    fn sign_then_verify() {
        let mut rng = rng(7);
        for i in 0..64 {
            let kp = KeyPair::generate(&mut rng);
            let msg = vec![i as u8; i];
            let sig = sign(&kp.private, &msg, &mut rng);
            verify(&kp.public, &msg, &sig).unwrap();
        }
    }

    #[test]
    fn rejects_wrong_key_message_and_tampering() {
        let mut rng = rng(8);
        let kp = KeyPair::generate(&mut rng);
        let other = KeyPair::generate(&mut rng);
        let sig = sign(&kp.private, b"hello", &mut rng);
        assert_eq!(
            verify(&other.public, b"hello", &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&kp.public, b"hellp", &sig),
            Err(SignatureError::Mismatch)
        );
        for i in 0..64 {
            let mut bad = sig;
            bad[i] ^= 0x01;
            assert!(
                verify(&kp.public, b"hello", &bad).is_err(),
                "flip in byte {i}"
            );
        }
        let mut bad = sig;
        bad[63] ^= 0x80;
        assert!(
            verify(&kp.public, b"hello", &bad).is_err(),
            "flipped sign bit"
        );
        assert_eq!(
            verify(&kp.public, b"hello", &sig[..63]),
            Err(SignatureError::BadLength(63))
        );
        assert!(verify(&kp.public, b"hello", &[0u8; 64]).is_err());
    }

    #[test]
    fn both_edwards_signs_occur_and_verify() {
        // Half of all keys have a negative Edwards twin; both must verify.
        let mut rng = rng(9);
        let (mut pos, mut neg) = (0, 0);
        for _ in 0..40 {
            let kp = KeyPair::generate(&mut rng);
            let sig = sign(&kp.private, b"m", &mut rng);
            if sig[63] & 0x80 == 0 {
                pos += 1
            } else {
                neg += 1
            }
            verify(&kp.public, b"m", &sig).unwrap();
        }
        assert!(pos > 0 && neg > 0);
    }
}
