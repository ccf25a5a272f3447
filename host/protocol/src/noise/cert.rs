//! The server certificate chain carried (encrypted) in the Noise ServerHello: issuing it on
//! the server side, verifying it on the client side.
//!
//! Contract: [`CertVerifier::verify`] returns a [`ServerCertVerified`] token only if every
//! check below passes, and a precise [`CertError`] for the first one that fails. The current
//! time is a value (unix seconds); nothing here reads a clock. [`ChainIssuer`] produces chains
//! that our verifier, whatsmeow and Baileys accept.
//!
//! The chain is `CertChain{leaf = 1, intermediate = 2}`, each a `NoiseCertificate{details = 1,
//! signature = 2}` whose `details` are the serialized `Details{serial = 1, issuer_serial = 2,
//! key = 3, not_before = 4, not_after = 5}`. From `protocol-whatsmeow.md` §2.2:
//!
//! > - Both signatures must be 64 bytes.
//! > - `intermediate.signature` is an XEdDSA (curve25519) signature over the raw
//! >   `intermediate.details` bytes, verified with the **WA root public key** …
//! > - `intermediate.issuerSerial` must be `0` (`WACertIssuerSerial`), and `intermediate.key`
//! >   must be 32 bytes.
//! > - `leaf.signature` is verified over the raw `leaf.details` with `intermediate.key`.
//! > - `leaf.issuerSerial` must equal `intermediate.serial`. `leaf.key` must equal the
//! >   decrypted server static key.
//! > - Now must lie between `notBefore` and `notAfter` (unix seconds) for both certificates.
//!
//! Absent numeric fields read as their proto2 default 0, as whatsmeow's `Get…()` accessors do;
//! an absent `not_after` therefore means "expired". The issuer always writes
//! `issuer_serial = 0` explicitly, because Baileys compares the *decoded* field with 0 and an
//! absent field decodes to `null` there (`interop-baileys.md` §3).
//!
//! ```text
//!   root (configurable; production: 142375…8ee6b)
//!     └─ signs ─► intermediate Details {serial: I, issuer_serial: 0, key: K_int, validity}
//!                   └─ K_int signs ─► leaf Details {serial: L, issuer_serial: I, key: server static, validity}
//! ```

use prost::Message as _;
use rand_core::CryptoRng;
use wasmeow_proto::wa::CertChain;
use wasmeow_proto::wa::cert_chain::NoiseCertificate;
use wasmeow_proto::wa::cert_chain::noise_certificate::Details;

use crate::keys::{KeyPair, PrivateKey, PublicKey};
use crate::xeddsa::{self, SIGNATURE_LEN, SignatureError};

/// WhatsApp's production root public key for the Noise certificate chain.
pub const WA_ROOT_PUBLIC_KEY: PublicKey = PublicKey([
    0x14, 0x23, 0x75, 0x57, 0x4d, 0x0a, 0x58, 0x71, 0x66, 0xaa, 0xe7, 0x1e, 0xbe, 0x51, 0x64, 0x37,
    0xc4, 0xa2, 0x8b, 0x73, 0xe3, 0x69, 0x5c, 0x6c, 0xe1, 0xf7, 0xf9, 0x54, 0x5d, 0xa8, 0xee, 0x6b,
]);

/// The issuer serial an intermediate certificate must carry: that of the root (`WACertIssuerSerial`).
pub const ROOT_SERIAL: u32 = 0;

/// Which certificate of the chain an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRole {
    /// The certificate signed by the root.
    Intermediate,
    /// The certificate for the server's static key, signed by the intermediate.
    Leaf,
}

impl std::fmt::Display for CertRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Intermediate => "intermediate",
            Self::Leaf => "leaf",
        })
    }
}

/// The server's certificate chain was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The chain, or one certificate's details, is not valid protobuf.
    #[error("certificate {what} is not valid protobuf: {source}")]
    Decode {
        /// What failed to decode: "chain", "intermediate details" or "leaf details".
        what: &'static str,
        /// The protobuf error.
        source: prost::DecodeError,
    },
    /// A certificate, or its details or signature, is absent or empty.
    #[error("{role} certificate is missing its {field}")]
    Missing {
        /// The certificate concerned.
        role: CertRole,
        /// "certificate", "details" or "signature".
        field: &'static str,
    },
    /// A signature is not 64 bytes.
    #[error("{role} signature must be 64 bytes, got {len}")]
    BadSignatureLength {
        /// The certificate concerned.
        role: CertRole,
        /// The length received.
        len: usize,
    },
    /// The intermediate is not signed by the root we trust: a wrong root, or a forged or
    /// altered intermediate.
    #[error("intermediate certificate is not signed by the trusted root: {0}")]
    BadIntermediateSignature(SignatureError),
    /// The leaf is not signed by the intermediate's key.
    #[error("leaf certificate is not signed by the intermediate: {0}")]
    BadLeafSignature(SignatureError),
    /// The intermediate's issuer serial is not the root's (0).
    #[error("intermediate issuer serial is {got}, expected {ROOT_SERIAL}")]
    BadIntermediateIssuerSerial {
        /// The serial received.
        got: u32,
    },
    /// The leaf's issuer serial is not the intermediate's serial.
    #[error("leaf issuer serial is {got}, expected the intermediate's serial {expected}")]
    BadLeafIssuerSerial {
        /// The intermediate's serial.
        expected: u32,
        /// The leaf's issuer serial.
        got: u32,
    },
    /// A certificate's key is not a 32-byte Curve25519 key.
    #[error("{role} certificate key must be 32 bytes, got {len}")]
    BadKeyLength {
        /// The certificate concerned.
        role: CertRole,
        /// The length received.
        len: usize,
    },
    /// The leaf certifies a key other than the static key the server used in the handshake.
    #[error("leaf certificate key does not match the server's static key")]
    LeafKeyMismatch,
    /// `now` is after a certificate's `not_after`.
    #[error("{role} certificate expired at {not_after} (now {now})")]
    Expired {
        /// The certificate concerned.
        role: CertRole,
        /// Its `not_after`, unix seconds.
        not_after: u64,
        /// The time checked against.
        now: u64,
    },
    /// `now` is before a certificate's `not_before`.
    #[error("{role} certificate is not valid before {not_before} (now {now})")]
    NotYetValid {
        /// The certificate concerned.
        role: CertRole,
        /// Its `not_before`, unix seconds.
        not_before: u64,
        /// The time checked against.
        now: u64,
    },
}

/// Proof that the server's certificate chain verified against the trusted root and certified
/// the static key the server proved possession of in this handshake.
///
/// Only [`CertVerifier::verify`] creates one; a client handshake cannot finish without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerCertVerified(());

/// Checks server certificate chains against one trusted root key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertVerifier {
    root: PublicKey,
}

impl Default for CertVerifier {
    /// Trusts the production WhatsApp root.
    fn default() -> Self {
        Self::whatsapp()
    }
}

impl CertVerifier {
    /// Trusts `root` (a test root for local servers).
    pub fn new(root: PublicKey) -> Self {
        Self { root }
    }

    /// Trusts WhatsApp's production root, [`WA_ROOT_PUBLIC_KEY`].
    pub fn whatsapp() -> Self {
        Self::new(WA_ROOT_PUBLIC_KEY)
    }

    /// The trusted root key.
    pub fn root(&self) -> &PublicKey {
        &self.root
    }

    /// Verifies a serialized `CertChain` for a server whose decrypted static key is
    /// `server_static`, at time `now` (unix seconds).
    ///
    /// Checks run in this order and the first failure is returned: structure and signature
    /// lengths; the intermediate's signature (root); its issuer serial and key; the leaf's
    /// signature (intermediate key); its issuer serial; leaf key = server static; validity of
    /// the intermediate, then of the leaf.
    pub fn verify(
        &self,
        chain: &[u8],
        server_static: &PublicKey,
        now: u64,
    ) -> Result<ServerCertVerified, CertError> {
        let chain = CertChain::decode(chain).map_err(|source| CertError::Decode {
            what: "chain",
            source,
        })?;
        let intermediate = parts(chain.intermediate.as_ref(), CertRole::Intermediate)?;
        let leaf = parts(chain.leaf.as_ref(), CertRole::Leaf)?;

        xeddsa::verify(&self.root, intermediate.details, intermediate.signature)
            .map_err(CertError::BadIntermediateSignature)?;
        let int = Details::decode(intermediate.details).map_err(|source| CertError::Decode {
            what: "intermediate details",
            source,
        })?;
        let int_issuer = int.issuer_serial.unwrap_or_default();
        if int_issuer != ROOT_SERIAL {
            return Err(CertError::BadIntermediateIssuerSerial { got: int_issuer });
        }
        let int_key = key_of(&int, CertRole::Intermediate)?;

        xeddsa::verify(&int_key, leaf.details, leaf.signature)
            .map_err(CertError::BadLeafSignature)?;
        let lf = Details::decode(leaf.details).map_err(|source| CertError::Decode {
            what: "leaf details",
            source,
        })?;
        let int_serial = int.serial.unwrap_or_default();
        let leaf_issuer = lf.issuer_serial.unwrap_or_default();
        if leaf_issuer != int_serial {
            return Err(CertError::BadLeafIssuerSerial {
                expected: int_serial,
                got: leaf_issuer,
            });
        }
        let leaf_key = key_of(&lf, CertRole::Leaf)?;
        // Both keys are public; equality needs no constant-time comparison.
        if leaf_key != *server_static {
            return Err(CertError::LeafKeyMismatch);
        }

        check_validity(&int, CertRole::Intermediate, now)?;
        check_validity(&lf, CertRole::Leaf, now)?;
        Ok(ServerCertVerified(()))
    }
}

/// The non-empty details and 64-byte signature of one certificate.
struct Parts<'a> {
    details: &'a [u8],
    signature: &'a [u8],
}

fn parts(cert: Option<&NoiseCertificate>, role: CertRole) -> Result<Parts<'_>, CertError> {
    let cert = cert.ok_or(CertError::Missing {
        role,
        field: "certificate",
    })?;
    let details = cert
        .details
        .as_deref()
        .filter(|d| !d.is_empty())
        .ok_or(CertError::Missing {
            role,
            field: "details",
        })?;
    let signature =
        cert.signature
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(CertError::Missing {
                role,
                field: "signature",
            })?;
    if signature.len() != SIGNATURE_LEN {
        return Err(CertError::BadSignatureLength {
            role,
            len: signature.len(),
        });
    }
    Ok(Parts { details, signature })
}

fn key_of(details: &Details, role: CertRole) -> Result<PublicKey, CertError> {
    let key = details.key.as_deref().unwrap_or_default();
    PublicKey::from_slice(key).map_err(|_| CertError::BadKeyLength {
        role,
        len: key.len(),
    })
}

fn check_validity(details: &Details, role: CertRole, now: u64) -> Result<(), CertError> {
    let not_before = details.not_before.unwrap_or_default();
    let not_after = details.not_after.unwrap_or_default();
    if now < not_before {
        return Err(CertError::NotYetValid {
            role,
            not_before,
            now,
        });
    }
    if now > not_after {
        return Err(CertError::Expired {
            role,
            not_after,
            now,
        });
    }
    Ok(())
}

/// Signs `details` with `signer`: XEdDSA over the exact serialized bytes.
///
/// The building block of [`ChainIssuer::issue`]; exposed so tests and simulators can build
/// deliberately unusual chains.
pub fn sign_certificate<R: CryptoRng + ?Sized>(
    details: &Details,
    signer: &PrivateKey,
    rng: &mut R,
) -> NoiseCertificate {
    let bytes = details.encode_to_vec();
    let signature = xeddsa::sign(signer, &bytes, rng);
    NoiseCertificate {
        details: Some(bytes.into()),
        signature: Some(signature.to_vec().into()),
    }
}

/// Issues server certificate chains: a root signs an intermediate, the intermediate signs a
/// leaf for each server static key.
#[derive(Debug, Clone)]
pub struct ChainIssuer {
    /// The root private key; clients trust its public half.
    pub root: PrivateKey,
    /// The intermediate key pair; it signs leaves.
    pub intermediate: KeyPair,
    /// The intermediate's serial; leaves name it as their issuer.
    pub intermediate_serial: u32,
    /// The serial written into issued leaves.
    pub leaf_serial: u32,
    /// Start of validity for both certificates, unix seconds.
    pub not_before: u64,
    /// End of validity for both certificates, unix seconds.
    pub not_after: u64,
}

impl ChainIssuer {
    /// A fresh root and intermediate from `rng`, valid for `[not_before, not_after]`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R, not_before: u64, not_after: u64) -> Self {
        Self {
            root: PrivateKey::generate(rng),
            intermediate: KeyPair::generate(rng),
            intermediate_serial: 1,
            leaf_serial: 2,
            not_before,
            not_after,
        }
    }

    /// The public key clients must trust, e.g. `CertVerifier::new(issuer.root_public())`.
    pub fn root_public(&self) -> PublicKey {
        self.root.public_key()
    }

    /// The intermediate's details as issued.
    pub fn intermediate_details(&self) -> Details {
        Details {
            serial: Some(self.intermediate_serial),
            issuer_serial: Some(ROOT_SERIAL),
            key: Some(self.intermediate.public.0.to_vec().into()),
            not_before: Some(self.not_before),
            not_after: Some(self.not_after),
        }
    }

    /// The leaf details for `server_static` as issued.
    pub fn leaf_details(&self, server_static: &PublicKey) -> Details {
        Details {
            serial: Some(self.leaf_serial),
            issuer_serial: Some(self.intermediate_serial),
            key: Some(server_static.0.to_vec().into()),
            not_before: Some(self.not_before),
            not_after: Some(self.not_after),
        }
    }

    /// A complete chain certifying `server_static`.
    pub fn issue<R: CryptoRng + ?Sized>(
        &self,
        server_static: &PublicKey,
        rng: &mut R,
    ) -> CertChain {
        CertChain {
            intermediate: Some(sign_certificate(
                &self.intermediate_details(),
                &self.root,
                rng,
            )),
            leaf: Some(sign_certificate(
                &self.leaf_details(server_static),
                &self.intermediate.private,
                rng,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn setup(seed: u64) -> (StdRng, ChainIssuer, KeyPair) {
        let mut rng = StdRng::seed_from_u64(seed);
        let issuer = ChainIssuer::generate(&mut rng, NOW - 100, NOW + 100);
        let server = KeyPair::generate(&mut rng);
        (rng, issuer, server)
    }

    fn verify(
        issuer: &ChainIssuer,
        chain: &CertChain,
        server: &PublicKey,
        now: u64,
    ) -> Result<ServerCertVerified, CertError> {
        CertVerifier::new(issuer.root_public()).verify(&chain.encode_to_vec(), server, now)
    }

    #[test]
    fn production_root_constant_matches_the_published_hex() {
        assert_eq!(
            hex::encode(WA_ROOT_PUBLIC_KEY.0),
            "142375574d0a587166aae71ebe516437c4a28b73e3695c6ce1f7f9545da8ee6b"
        );
        assert_eq!(CertVerifier::default().root(), &WA_ROOT_PUBLIC_KEY);
    }

    #[test]
    fn the_proof_token_is_zero_sized() {
        assert_eq!(size_of::<ServerCertVerified>(), 0);
    }

    #[test]
    fn issued_chain_verifies_inside_its_window_inclusive() {
        let (mut rng, issuer, server) = setup(1);
        let chain = issuer.issue(&server.public, &mut rng);
        for now in [NOW - 100, NOW, NOW + 100] {
            verify(&issuer, &chain, &server.public, now).unwrap();
        }
    }

    #[test]
    fn intermediate_issuer_serial_zero_is_on_the_wire() {
        let (mut rng, issuer, server) = setup(2);
        let chain = issuer.issue(&server.public, &mut rng);
        let details = chain.intermediate.unwrap().details.unwrap();
        // Field 2, varint, value 0: bytes 10 00.
        assert!(
            details.windows(2).any(|w| w == [0x10, 0x00]),
            "{}",
            hex::encode(&details)
        );
        let decoded = Details::decode(&details[..]).unwrap();
        assert_eq!(decoded.issuer_serial, Some(0));
    }

    #[test]
    fn wrong_root_is_a_bad_intermediate_signature() {
        let (mut rng, issuer, server) = setup(3);
        let chain = issuer.issue(&server.public, &mut rng);
        let other_root = KeyPair::generate(&mut rng).public;
        assert_eq!(
            CertVerifier::new(other_root).verify(&chain.encode_to_vec(), &server.public, NOW),
            Err(CertError::BadIntermediateSignature(
                SignatureError::Mismatch
            ))
        );
        // The production root does not vouch for a test chain either.
        assert!(matches!(
            CertVerifier::whatsapp().verify(&chain.encode_to_vec(), &server.public, NOW),
            Err(CertError::BadIntermediateSignature(_))
        ));
    }

    #[test]
    fn altered_intermediate_details_break_its_signature() {
        let (mut rng, issuer, server) = setup(4);
        let mut chain = issuer.issue(&server.public, &mut rng);
        let int = chain.intermediate.as_mut().unwrap();
        let mut d = int.details.clone().unwrap().to_vec();
        *d.last_mut().unwrap() ^= 1;
        int.details = Some(d.into());
        assert_eq!(
            verify(&issuer, &chain, &server.public, NOW),
            Err(CertError::BadIntermediateSignature(
                SignatureError::Mismatch
            ))
        );
    }

    #[test]
    fn leaf_signed_by_another_key_is_a_bad_leaf_signature() {
        let (mut rng, issuer, server) = setup(5);
        let mut chain = issuer.issue(&server.public, &mut rng);
        let stranger = KeyPair::generate(&mut rng);
        chain.leaf = Some(sign_certificate(
            &issuer.leaf_details(&server.public),
            &stranger.private,
            &mut rng,
        ));
        assert_eq!(
            verify(&issuer, &chain, &server.public, NOW),
            Err(CertError::BadLeafSignature(SignatureError::Mismatch))
        );
    }

    #[test]
    fn bad_issuer_serials() {
        let (mut rng, issuer, server) = setup(6);
        let mut int = issuer.intermediate_details();
        int.issuer_serial = Some(5);
        let chain = CertChain {
            intermediate: Some(sign_certificate(&int, &issuer.root, &mut rng)),
            leaf: issuer.issue(&server.public, &mut rng).leaf,
        };
        assert_eq!(
            verify(&issuer, &chain, &server.public, NOW),
            Err(CertError::BadIntermediateIssuerSerial { got: 5 })
        );

        let mut leaf = issuer.leaf_details(&server.public);
        leaf.issuer_serial = Some(issuer.intermediate_serial + 1);
        let chain = CertChain {
            intermediate: issuer.issue(&server.public, &mut rng).intermediate,
            leaf: Some(sign_certificate(
                &leaf,
                &issuer.intermediate.private,
                &mut rng,
            )),
        };
        assert_eq!(
            verify(&issuer, &chain, &server.public, NOW),
            Err(CertError::BadLeafIssuerSerial {
                expected: 1,
                got: 2
            })
        );
    }

    #[test]
    fn leaf_for_another_key_is_a_mismatch() {
        let (mut rng, issuer, server) = setup(7);
        let other = KeyPair::generate(&mut rng);
        let chain = issuer.issue(&other.public, &mut rng);
        assert_eq!(
            verify(&issuer, &chain, &server.public, NOW),
            Err(CertError::LeafKeyMismatch)
        );
    }

    #[test]
    fn validity_windows_of_each_certificate() {
        let (mut rng, issuer, server) = setup(8);
        let chain = issuer.issue(&server.public, &mut rng);
        assert_eq!(
            verify(&issuer, &chain, &server.public, NOW + 101),
            Err(CertError::Expired {
                role: CertRole::Intermediate,
                not_after: NOW + 100,
                now: NOW + 101
            })
        );
        assert_eq!(
            verify(&issuer, &chain, &server.public, NOW - 101),
            Err(CertError::NotYetValid {
                role: CertRole::Intermediate,
                not_before: NOW - 100,
                now: NOW - 101
            })
        );
        // A leaf with its own, narrower window.
        let mut leaf = issuer.leaf_details(&server.public);
        leaf.not_before = Some(NOW - 10);
        leaf.not_after = Some(NOW + 10);
        let chain = CertChain {
            intermediate: chain.intermediate,
            leaf: Some(sign_certificate(
                &leaf,
                &issuer.intermediate.private,
                &mut rng,
            )),
        };
        assert_eq!(
            verify(&issuer, &chain, &server.public, NOW + 11),
            Err(CertError::Expired {
                role: CertRole::Leaf,
                not_after: NOW + 10,
                now: NOW + 11
            })
        );
        assert_eq!(
            verify(&issuer, &chain, &server.public, NOW - 11),
            Err(CertError::NotYetValid {
                role: CertRole::Leaf,
                not_before: NOW - 10,
                now: NOW - 11
            })
        );
        verify(&issuer, &chain, &server.public, NOW).unwrap();
    }

    #[test]
    fn absent_not_after_means_expired() {
        let (mut rng, issuer, server) = setup(9);
        let mut int = issuer.intermediate_details();
        int.not_after = None;
        let chain = CertChain {
            intermediate: Some(sign_certificate(&int, &issuer.root, &mut rng)),
            leaf: issuer.issue(&server.public, &mut rng).leaf,
        };
        assert!(matches!(
            verify(&issuer, &chain, &server.public, NOW),
            Err(CertError::Expired {
                role: CertRole::Intermediate,
                not_after: 0,
                ..
            })
        ));
    }

    #[test]
    fn structural_errors() {
        let (mut rng, issuer, server) = setup(10);
        let good = issuer.issue(&server.public, &mut rng);
        let v = CertVerifier::new(issuer.root_public());

        assert!(matches!(
            v.verify(&[0xFF, 0xFF], &server.public, NOW),
            Err(CertError::Decode { what: "chain", .. })
        ));
        assert_eq!(
            v.verify(&[], &server.public, NOW),
            Err(CertError::Missing {
                role: CertRole::Intermediate,
                field: "certificate"
            })
        );
        let mut c = good.clone();
        c.leaf = None;
        assert_eq!(
            v.verify(&c.encode_to_vec(), &server.public, NOW),
            Err(CertError::Missing {
                role: CertRole::Leaf,
                field: "certificate"
            })
        );
        let mut c = good.clone();
        c.leaf.as_mut().unwrap().details = Some(Default::default());
        assert_eq!(
            v.verify(&c.encode_to_vec(), &server.public, NOW),
            Err(CertError::Missing {
                role: CertRole::Leaf,
                field: "details"
            })
        );
        let mut c = good.clone();
        c.intermediate.as_mut().unwrap().signature = None;
        assert_eq!(
            v.verify(&c.encode_to_vec(), &server.public, NOW),
            Err(CertError::Missing {
                role: CertRole::Intermediate,
                field: "signature"
            })
        );
        let mut c = good.clone();
        c.leaf.as_mut().unwrap().signature = Some(vec![0u8; 63].into());
        assert_eq!(
            v.verify(&c.encode_to_vec(), &server.public, NOW),
            Err(CertError::BadSignatureLength {
                role: CertRole::Leaf,
                len: 63
            })
        );

        // Correctly signed details that are not protobuf.
        let garbage = vec![0xFF, 0xFF, 0xFF];
        let sig = xeddsa::sign(&issuer.root, &garbage, &mut rng);
        let mut c = good.clone();
        c.intermediate = Some(NoiseCertificate {
            details: Some(garbage.into()),
            signature: Some(sig.to_vec().into()),
        });
        assert!(matches!(
            v.verify(&c.encode_to_vec(), &server.public, NOW),
            Err(CertError::Decode {
                what: "intermediate details",
                ..
            })
        ));

        // A correctly signed intermediate with a 31-byte key.
        let mut int = issuer.intermediate_details();
        int.key = Some(vec![1u8; 31].into());
        let mut c = good;
        c.intermediate = Some(sign_certificate(&int, &issuer.root, &mut rng));
        assert_eq!(
            v.verify(&c.encode_to_vec(), &server.public, NOW),
            Err(CertError::BadKeyLength {
                role: CertRole::Intermediate,
                len: 31
            })
        );
    }
}
