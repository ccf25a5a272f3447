//! Long-term and medium-term keys: our identity, signed prekeys, one-time
//! prekeys, prekey bundles, registration ids, and the trust-on-first-use check.
//!
//! A signed prekey's signature is XEdDSA by the identity key over the 33-byte
//! serialized public key `0x05 || spk` (X3DH §3.2: "Bob's signed prekey SPK_B,
//! Bob's prekey signature Sig(IK_B, Encode(SPK_B))").

use rand_core::CryptoRng;

use super::SignalError;
use crate::keys::{KeyPair, PublicKey};
use crate::xeddsa;

/// Our identity as the Signal layer needs it: the identity key pair and the
/// registration id we announce in PreKeySignalMessages.
#[derive(Clone, Debug)]
pub struct LocalIdentity {
    /// The long-term identity key pair (`IK`).
    pub key_pair: KeyPair,
    /// Our registration id.
    pub registration_id: u32,
}

impl LocalIdentity {
    /// Draws a fresh identity key pair and registration id.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let key_pair = KeyPair::generate(rng);
        let registration_id = generate_registration_id(rng);
        Self {
            key_pair,
            registration_id,
        }
    }

    /// Our public identity key.
    pub fn public(&self) -> PublicKey {
        self.key_pair.public
    }

    /// The bundle a peer needs to start a session with us.
    pub fn bundle(
        &self,
        device_id: u32,
        signed_pre_key: &SignedPreKey,
        one_time_pre_key: Option<&PreKey>,
    ) -> PreKeyBundle {
        PreKeyBundle {
            registration_id: self.registration_id,
            device_id,
            identity_key: self.key_pair.public,
            signed_pre_key_id: signed_pre_key.id,
            signed_pre_key_public: signed_pre_key.key_pair.public,
            signed_pre_key_signature: signed_pre_key.signature,
            pre_key: one_time_pre_key.map(|k| PreKeyPublic {
                id: k.id,
                public: k.key_pair.public,
            }),
        }
    }
}

/// Draws a registration id in `1..=16380`, the range libsignal uses (14 bits,
/// never zero). WhatsApp carries it as a 32-bit value.
pub fn generate_registration_id<R: CryptoRng + ?Sized>(rng: &mut R) -> u32 {
    (rng.next_u32() % 16380) + 1
}

/// A signed prekey: a medium-term key pair signed by the identity key.
#[derive(Clone, Debug)]
pub struct SignedPreKey {
    /// Its id (24 bits on the WhatsApp wire).
    pub id: u32,
    /// The key pair.
    pub key_pair: KeyPair,
    /// XEdDSA signature by the identity key over `0x05 || public`.
    pub signature: [u8; xeddsa::SIGNATURE_LEN],
}

impl SignedPreKey {
    /// Generates a key pair and signs it with `identity`.
    pub fn generate<R: CryptoRng + ?Sized>(identity: &KeyPair, id: u32, rng: &mut R) -> Self {
        let key_pair = KeyPair::generate(rng);
        let signature = xeddsa::sign(&identity.private, &key_pair.public.to_djb(), rng);
        Self {
            id,
            key_pair,
            signature,
        }
    }
}

/// Checks a signed prekey's signature by `identity`.
pub fn verify_signed_pre_key(
    identity: &PublicKey,
    signed_pre_key: &PublicKey,
    signature: &[u8],
) -> Result<(), SignalError> {
    xeddsa::verify(identity, &signed_pre_key.to_djb(), signature)
        .map_err(|_| SignalError::InvalidSignature)
}

/// A one-time prekey.
#[derive(Clone, Debug)]
pub struct PreKey {
    /// Its id (24 bits on the WhatsApp wire).
    pub id: u32,
    /// The key pair.
    pub key_pair: KeyPair,
}

impl PreKey {
    /// Generates a one-time prekey with `id`.
    pub fn generate<R: CryptoRng + ?Sized>(id: u32, rng: &mut R) -> Self {
        Self {
            id,
            key_pair: KeyPair::generate(rng),
        }
    }
}

/// The public half of a one-time prekey, as it appears in a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreKeyPublic {
    /// Its id.
    pub id: u32,
    /// The public key.
    pub public: PublicKey,
}

/// What a peer publishes so others can start a session with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeyBundle {
    /// The peer's registration id.
    pub registration_id: u32,
    /// The peer's device id (informational; the session engine keys sessions by address).
    pub device_id: u32,
    /// The peer's identity key `IK_B`.
    pub identity_key: PublicKey,
    /// The signed prekey's id.
    pub signed_pre_key_id: u32,
    /// The signed prekey `SPK_B`.
    pub signed_pre_key_public: PublicKey,
    /// `Sig(IK_B, 0x05 || SPK_B)`.
    pub signed_pre_key_signature: [u8; xeddsa::SIGNATURE_LEN],
    /// An optional one-time prekey `OPK_B`.
    pub pre_key: Option<PreKeyPublic>,
}

/// How a peer's identity key relates to the one the caller trusts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityTrust {
    /// The caller had no identity for this address: trust on first use. The
    /// caller should now store the presented identity.
    FirstUse,
    /// The presented identity equals the trusted one.
    Trusted,
}

/// Trust on first use: `None` trusted → [`IdentityTrust::FirstUse`]; equal →
/// [`IdentityTrust::Trusted`]; different → [`SignalError::UntrustedIdentity`],
/// which the caller resolves explicitly (never silently accepted here).
pub fn check_identity(
    trusted: Option<&PublicKey>,
    presented: &PublicKey,
) -> Result<IdentityTrust, SignalError> {
    match trusted {
        None => Ok(IdentityTrust::FirstUse),
        Some(t) if t == presented => Ok(IdentityTrust::Trusted),
        Some(t) => Err(SignalError::UntrustedIdentity {
            trusted: *t,
            received: *presented,
        }),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;

    use super::*;

    #[test]
    fn signed_pre_key_verifies_and_rejects_other_identity() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let id = LocalIdentity::generate(&mut rng);
        let other = LocalIdentity::generate(&mut rng);
        let spk = SignedPreKey::generate(&id.key_pair, 5, &mut rng);
        verify_signed_pre_key(&id.public(), &spk.key_pair.public, &spk.signature).unwrap();
        assert_eq!(
            verify_signed_pre_key(&other.public(), &spk.key_pair.public, &spk.signature),
            Err(SignalError::InvalidSignature)
        );
        assert_eq!(
            verify_signed_pre_key(&id.public(), &spk.key_pair.public, &spk.signature[..63]),
            Err(SignalError::InvalidSignature)
        );
    }

    #[test]
    fn registration_ids_are_in_range() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        for _ in 0..1000 {
            let id = generate_registration_id(&mut rng);
            assert!((1..=16380).contains(&id));
        }
    }

    #[test]
    fn trust_on_first_use() {
        let a = PublicKey([1; 32]);
        let b = PublicKey([2; 32]);
        assert_eq!(check_identity(None, &a), Ok(IdentityTrust::FirstUse));
        assert_eq!(check_identity(Some(&a), &a), Ok(IdentityTrust::Trusted));
        assert_eq!(
            check_identity(Some(&a), &b),
            Err(SignalError::UntrustedIdentity {
                trusted: a,
                received: b
            })
        );
    }
}
