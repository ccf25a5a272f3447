//! Linking this device to a phone: the QR string, ADV device-identity verification, and the
//! pairing-code ("link with phone number") cryptography.
//!
//! Contract: pure functions over bytes and keys; no IO, no clock, randomness passed in. Every
//! check is real and every failure is a [`PairError`] naming the check:
//!
//! - [`qr_string`] builds `https://wa.me/settings/linked_devices#ref,noise,identity,adv,type`
//!   (`protocol-whatsmeow.md` §2.7 step 3).
//! - [`verify_device_identity`] processes `<pair-success><device-identity>`
//!   (`ADVSignedDeviceIdentityHMAC`): HMAC-SHA256 keyed with our adv secret over
//!   `[06 05 if hosted] ‖ details`; the phone's account signature (XEdDSA, key in the message)
//!   over `06 00 ‖ device details ‖ our identity key` (`06 05` for hosted devices); then our
//!   device signature over `06 01 ‖ device details ‖ our identity key ‖ account key`. Only a
//!   [`VerifiedDevice`] (which cannot be built otherwise) yields the `<pair-device-sign>` reply.
//! - [`PairCodeSession`] is the phone-number flow (§2.8): an 8-character code from a custom
//!   base-32 alphabet, our ephemeral key wrapped as `salt(32) ‖ iv(16) ‖ AES-256-CTR(
//!   PBKDF2-HMAC-SHA256(code, salt, 131072), iv, ephemeral_pub)`, then the companion-finish
//!   key bundle and the derived adv secret.

use aes::Aes256;
use aes_gcm::aead::{Aead as _, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ctr::Ctr128BE;
use ctr::cipher::{KeyIvInit as _, StreamCipher as _};
use hkdf::Hkdf;
use hmac::{Hmac, Mac as _};
use prost::Message as _;
use rand_core::CryptoRng;
use sha2::Sha256;
use wasmeow_proto::wa::{
    AdvDeviceIdentity, AdvEncryptionType, AdvSignedDeviceIdentity, AdvSignedDeviceIdentityHmac,
};
use wasmeow_protocol::keys::{KeyPair, PrivateKey, PublicKey};
use wasmeow_protocol::xeddsa;

/// The QR string prefix used by current WhatsApp clients.
pub const QR_PREFIX: &str = "https://wa.me/settings/linked_devices#";

/// Signature prefix: account signature over a normal device.
pub const ADV_PREFIX_ACCOUNT_SIGNATURE: [u8; 2] = [6, 0];
/// Signature prefix: our device signature.
pub const ADV_PREFIX_DEVICE_SIGNATURE: [u8; 2] = [6, 1];
/// Signature/HMAC prefix for hosted accounts and devices.
pub const ADV_PREFIX_HOSTED_ACCOUNT: [u8; 2] = [6, 5];

/// PBKDF2 iterations for the pairing-code wrapping key (`2 << 16`).
pub const PAIR_CODE_PBKDF2_ROUNDS: u32 = 2 << 16;
/// The pairing-code alphabet (Crockford-like base 32 without 0, I, O, U).
pub const PAIR_CODE_ALPHABET: &[u8; 32] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";
/// HKDF info of the companion-finish key-bundle key.
const BUNDLE_KEY_INFO: &[u8] = b"link_code_pairing_key_bundle_encryption_key";
/// HKDF info of the adv secret derived in the pairing-code flow.
const ADV_SECRET_INFO: &[u8] = b"adv_secret";

/// A pairing step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    /// A protobuf in the pair-success payload did not decode.
    #[error("{what} is not valid protobuf: {source}")]
    Decode {
        /// Which message.
        what: &'static str,
        /// The decoder's error.
        source: prost::DecodeError,
    },
    /// A required field is absent.
    #[error("pair-success field {0} is missing")]
    MissingField(&'static str),
    /// The HMAC keyed with our adv secret does not match (the scan came from another QR).
    #[error("device identity HMAC does not match our adv secret")]
    HmacMismatch,
    /// A key has the wrong length.
    #[error("{field} must be {expected} bytes, got {got}")]
    BadLength {
        /// The field.
        field: &'static str,
        /// Required length.
        expected: usize,
        /// Received length.
        got: usize,
    },
    /// The phone's account signature over our identity does not verify.
    #[error("account signature does not verify")]
    AccountSignatureMismatch,
    /// The pairing-code notification refers to another pairing attempt.
    #[error("pairing-code ref does not match ours")]
    PairCodeRefMismatch,
}

fn decode<M: prost::Message + Default>(bytes: &[u8], what: &'static str) -> Result<M, PairError> {
    M::decode(bytes).map_err(|source| PairError::Decode { what, source })
}

/// The platform code of the QR string's fifth field (`9`: other web client, whatsmeow's
/// default).
pub const DEFAULT_QR_PLATFORM: char = '9';

/// The string to render as a QR code for one `<pair-device><ref>`.
pub fn qr_string(
    reference: &str,
    noise_public: &PublicKey,
    identity_public: &PublicKey,
    adv_secret: &[u8; 32],
    platform: char,
) -> String {
    format!(
        "{QR_PREFIX}{reference},{},{},{},{platform}",
        STANDARD.encode(noise_public.0),
        STANDARD.encode(identity_public.0),
        STANDARD.encode(adv_secret),
    )
}

/// The outcome of a verified `<pair-success>`: what to store and what to answer.
#[derive(Debug, Clone)]
pub struct VerifiedDevice {
    /// The full `ADVSignedDeviceIdentity` with the account key and our device signature:
    /// stored as the account, and sent as `<device-identity>` with every pkmsg.
    pub account: Vec<u8>,
    /// The `ADVSignedDeviceIdentity` without `account_signature_key`: the
    /// `<pair-device-sign><device-identity>` content.
    pub reply: Vec<u8>,
    /// `key-index` for the reply.
    pub key_index: u32,
    /// The primary phone's identity key (the account signature key).
    pub primary_identity: PublicKey,
    /// Whether the account is hosted.
    pub hosted: bool,
}

/// Verifies the `<device-identity>` bytes of a `<pair-success>` and signs them as our device.
pub fn verify_device_identity<R: CryptoRng + ?Sized>(
    container: &[u8],
    adv_secret: &[u8; 32],
    identity: &KeyPair,
    rng: &mut R,
) -> Result<VerifiedDevice, PairError> {
    let hmac_container: AdvSignedDeviceIdentityHmac =
        decode(container, "ADVSignedDeviceIdentityHMAC")?;
    let details = hmac_container
        .details
        .as_deref()
        .ok_or(PairError::MissingField("device-identity.details"))?;
    let their_hmac = hmac_container
        .hmac
        .as_deref()
        .ok_or(PairError::MissingField("device-identity.hmac"))?;
    let hosted_account = hmac_container.account_type == Some(AdvEncryptionType::Hosted as i32);
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(adv_secret)
        .expect("HMAC takes any key length");
    if hosted_account {
        mac.update(&ADV_PREFIX_HOSTED_ACCOUNT);
    }
    mac.update(details);
    mac.verify_slice(their_hmac)
        .map_err(|_| PairError::HmacMismatch)?;

    let mut signed: AdvSignedDeviceIdentity = decode(details, "ADVSignedDeviceIdentity")?;
    let device_details = signed
        .details
        .clone()
        .ok_or(PairError::MissingField("signed-identity.details"))?;
    let device: AdvDeviceIdentity = decode(&device_details, "ADVDeviceIdentity")?;
    let account_key_bytes = signed
        .account_signature_key
        .clone()
        .ok_or(PairError::MissingField("account_signature_key"))?;
    let account_key =
        PublicKey::from_slice(&account_key_bytes).map_err(|_| PairError::BadLength {
            field: "account_signature_key",
            expected: 32,
            got: account_key_bytes.len(),
        })?;
    let account_sig = signed
        .account_signature
        .as_deref()
        .ok_or(PairError::MissingField("account_signature"))?;
    if account_sig.len() != xeddsa::SIGNATURE_LEN {
        return Err(PairError::BadLength {
            field: "account_signature",
            expected: xeddsa::SIGNATURE_LEN,
            got: account_sig.len(),
        });
    }
    let hosted_device = device.device_type == Some(AdvEncryptionType::Hosted as i32);
    let prefix = if hosted_device {
        ADV_PREFIX_HOSTED_ACCOUNT
    } else {
        ADV_PREFIX_ACCOUNT_SIGNATURE
    };
    let mut msg = Vec::with_capacity(2 + device_details.len() + 64);
    msg.extend_from_slice(&prefix);
    msg.extend_from_slice(&device_details);
    msg.extend_from_slice(&identity.public.0);
    xeddsa::verify(&account_key, &msg, account_sig)
        .map_err(|_| PairError::AccountSignatureMismatch)?;

    let device_sig = device_signature(
        &identity.private,
        &identity.public,
        &device_details,
        &account_key,
        rng,
    );
    signed.device_signature = Some(device_sig.to_vec().into());
    let account = signed.encode_to_vec();
    signed.account_signature_key = None;
    let reply = signed.encode_to_vec();
    Ok(VerifiedDevice {
        account,
        reply,
        key_index: device.key_index.unwrap_or(0),
        primary_identity: account_key,
        hosted: hosted_account || hosted_device,
    })
}

/// Our device signature: XEdDSA over `06 01 ‖ device details ‖ our identity ‖ account key`.
pub fn device_signature<R: CryptoRng + ?Sized>(
    identity_private: &PrivateKey,
    identity_public: &PublicKey,
    device_details: &[u8],
    account_key: &PublicKey,
    rng: &mut R,
) -> [u8; 64] {
    let mut msg = Vec::with_capacity(2 + device_details.len() + 64);
    msg.extend_from_slice(&ADV_PREFIX_DEVICE_SIGNATURE);
    msg.extend_from_slice(device_details);
    msg.extend_from_slice(&identity_public.0);
    msg.extend_from_slice(&account_key.0);
    xeddsa::sign(identity_private, &msg, rng)
}

/// Encodes 5 random bytes as the 8-character pairing code.
fn encode_code(bytes: &[u8; 5]) -> String {
    let mut acc: u64 = 0;
    for b in bytes {
        acc = acc << 8 | u64::from(*b);
    }
    (0..8)
        .rev()
        .map(|i| PAIR_CODE_ALPHABET[((acc >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// AES-256-CTR keyed by PBKDF2-HMAC-SHA256(code, salt) over `data`, in place.
fn code_ctr(code: &str, salt: &[u8], iv: &[u8; 16], data: &mut [u8]) {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(code.as_bytes(), salt, PAIR_CODE_PBKDF2_ROUNDS, &mut key);
    let mut cipher = Ctr128BE::<Aes256>::new(&key.into(), &(*iv).into());
    cipher.apply_keystream(data);
}

/// A pairing-code attempt in progress (between companion hello and companion finish).
#[derive(Debug)]
pub struct PairCodeSession {
    code: String,
    ephemeral: KeyPair,
    /// The `link_code_pairing_ref` the server assigned; set after companion hello.
    pub pairing_ref: Option<Vec<u8>>,
}

/// What companion finish sends, and the adv secret that replaces the QR-mode one.
#[derive(Debug, Clone)]
pub struct PairCodeFinish {
    /// `link_code_pairing_wrapped_key_bundle`.
    pub wrapped_key_bundle: Vec<u8>,
    /// The new adv secret (keys the pair-success HMAC).
    pub adv_secret: [u8; 32],
}

impl PairCodeSession {
    /// A new attempt with a random code and ephemeral key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut raw = [0u8; 5];
        rng.fill_bytes(&mut raw);
        Self {
            code: encode_code(&raw),
            ephemeral: KeyPair::generate(rng),
            pairing_ref: None,
        }
    }

    /// The code as the user types it on the phone (8 characters).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The code as shown: `XXXX-XXXX`.
    pub fn display_code(&self) -> String {
        format!("{}-{}", &self.code[..4], &self.code[4..])
    }

    /// `link_code_pairing_wrapped_companion_ephemeral_pub`: `salt(32) ‖ iv(16) ‖ ct(32)`.
    /// Costs one PBKDF2 with 131072 rounds: run it off the async executor.
    pub fn wrapped_ephemeral<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Vec<u8> {
        let mut salt = [0u8; 32];
        let mut iv = [0u8; 16];
        rng.fill_bytes(&mut salt);
        rng.fill_bytes(&mut iv);
        let mut ct = self.ephemeral.public.0;
        code_ctr(&self.code, &salt, &iv, &mut ct);
        [&salt[..], &iv[..], &ct[..]].concat()
    }

    /// Processes the phone's `link_code_companion_reg` notification: unwraps its ephemeral
    /// key, builds the key bundle and derives the adv secret. `pairing_ref` must be ours.
    pub fn finish<R: CryptoRng + ?Sized>(
        &self,
        pairing_ref: &[u8],
        primary_wrapped_ephemeral: &[u8],
        primary_identity: &[u8],
        identity: &KeyPair,
        rng: &mut R,
    ) -> Result<PairCodeFinish, PairError> {
        if self.pairing_ref.as_deref() != Some(pairing_ref) {
            return Err(PairError::PairCodeRefMismatch);
        }
        if primary_wrapped_ephemeral.len() < 80 {
            return Err(PairError::BadLength {
                field: "link_code_pairing_wrapped_primary_ephemeral_pub",
                expected: 80,
                got: primary_wrapped_ephemeral.len(),
            });
        }
        let primary_identity =
            PublicKey::from_slice(primary_identity).map_err(|_| PairError::BadLength {
                field: "primary_identity_pub",
                expected: 32,
                got: primary_identity.len(),
            })?;
        let salt = &primary_wrapped_ephemeral[..32];
        let iv: [u8; 16] = primary_wrapped_ephemeral[32..48]
            .try_into()
            .expect("16 bytes");
        let mut primary_eph = [0u8; 32];
        primary_eph.copy_from_slice(&primary_wrapped_ephemeral[48..80]);
        code_ctr(&self.code, salt, &iv, &mut primary_eph);
        let primary_eph = PublicKey(primary_eph);

        let eph_shared = self.ephemeral.private.dh(&primary_eph);
        let mut adv_random = [0u8; 32];
        let mut bundle_salt = [0u8; 32];
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut adv_random);
        rng.fill_bytes(&mut bundle_salt);
        rng.fill_bytes(&mut nonce);
        let mut bundle_key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&bundle_salt), &eph_shared)
            .expand(BUNDLE_KEY_INFO, &mut bundle_key)
            .expect("32 bytes is a valid HKDF length");
        let plaintext = [
            &identity.public.0[..],
            &primary_identity.0[..],
            &adv_random[..],
        ]
        .concat();
        let ct = Aes256Gcm::new(&bundle_key.into())
            .encrypt(&Nonce::from(nonce), plaintext.as_slice())
            .expect("AES-GCM encryption of 96 bytes cannot fail");
        let wrapped_key_bundle = [&bundle_salt[..], &nonce[..], &ct[..]].concat();

        let ident_shared = identity.private.dh(&primary_identity);
        let ikm = [&eph_shared[..], &ident_shared[..], &adv_random[..]].concat();
        let mut adv_secret = [0u8; 32];
        Hkdf::<Sha256>::new(None, &ikm)
            .expand(ADV_SECRET_INFO, &mut adv_secret)
            .expect("32 bytes is a valid HKDF length");
        Ok(PairCodeFinish {
            wrapped_key_bundle,
            adv_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;

    use super::*;

    /// Builds what a phone sends in `<pair-success><device-identity>`.
    fn phone_identity(
        rng: &mut StdRng,
        account: &KeyPair,
        our_identity: &PublicKey,
        adv_secret: &[u8; 32],
        key_index: u32,
    ) -> Vec<u8> {
        let device = AdvDeviceIdentity {
            raw_id: Some(77),
            timestamp: Some(1_700_000_000),
            key_index: Some(key_index),
            account_type: Some(AdvEncryptionType::E2ee as i32),
            device_type: Some(AdvEncryptionType::E2ee as i32),
        }
        .encode_to_vec();
        let msg = [&ADV_PREFIX_ACCOUNT_SIGNATURE[..], &device, &our_identity.0].concat();
        let signed = AdvSignedDeviceIdentity {
            details: Some(device.into()),
            account_signature_key: Some(account.public.0.to_vec().into()),
            account_signature: Some(xeddsa::sign(&account.private, &msg, rng).to_vec().into()),
            device_signature: None,
        }
        .encode_to_vec();
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(adv_secret).unwrap();
        mac.update(&signed);
        AdvSignedDeviceIdentityHmac {
            details: Some(signed.into()),
            hmac: Some(mac.finalize().into_bytes().to_vec().into()),
            account_type: Some(AdvEncryptionType::E2ee as i32),
        }
        .encode_to_vec()
    }

    #[test]
    fn qr_string_layout() {
        let s = qr_string(
            "REF@1",
            &PublicKey([1; 32]),
            &PublicKey([2; 32]),
            &[3; 32],
            '9',
        );
        let body = s.strip_prefix(QR_PREFIX).unwrap();
        let parts: Vec<&str> = body.split(',').collect();
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[0], "REF@1");
        assert_eq!(STANDARD.decode(parts[1]).unwrap(), [1; 32]);
        assert_eq!(STANDARD.decode(parts[2]).unwrap(), [2; 32]);
        assert_eq!(STANDARD.decode(parts[3]).unwrap(), [3; 32]);
        assert_eq!(parts[4], "9");
    }

    #[test]
    fn a_genuine_device_identity_verifies_and_is_signed_by_us() {
        let mut rng = StdRng::seed_from_u64(11);
        let account = KeyPair::generate(&mut rng);
        let ours = KeyPair::generate(&mut rng);
        let adv = [9u8; 32];
        let container = phone_identity(&mut rng, &account, &ours.public, &adv, 4);
        let v = verify_device_identity(&container, &adv, &ours, &mut rng).unwrap();
        assert_eq!(v.key_index, 4);
        assert_eq!(v.primary_identity, account.public);
        let stored = AdvSignedDeviceIdentity::decode(v.account.as_slice()).unwrap();
        let reply = AdvSignedDeviceIdentity::decode(v.reply.as_slice()).unwrap();
        assert_eq!(
            stored.account_signature_key.as_deref(),
            Some(&account.public.0[..])
        );
        assert_eq!(reply.account_signature_key, None);
        // Our device signature verifies under our identity key.
        let details = stored.details.clone().unwrap();
        let msg = [
            &ADV_PREFIX_DEVICE_SIGNATURE[..],
            &details,
            &ours.public.0,
            &account.public.0,
        ]
        .concat();
        xeddsa::verify(
            &ours.public,
            &msg,
            stored.device_signature.as_deref().unwrap(),
        )
        .unwrap();
        assert_eq!(reply.device_signature, stored.device_signature);
    }

    #[test]
    fn wrong_adv_secret_is_an_hmac_mismatch() {
        let mut rng = StdRng::seed_from_u64(12);
        let account = KeyPair::generate(&mut rng);
        let ours = KeyPair::generate(&mut rng);
        let container = phone_identity(&mut rng, &account, &ours.public, &[9u8; 32], 1);
        let err = verify_device_identity(&container, &[8u8; 32], &ours, &mut rng).unwrap_err();
        assert_eq!(err, PairError::HmacMismatch);
    }

    #[test]
    fn an_account_signature_over_another_identity_is_rejected() {
        let mut rng = StdRng::seed_from_u64(13);
        let account = KeyPair::generate(&mut rng);
        let ours = KeyPair::generate(&mut rng);
        let other = KeyPair::generate(&mut rng);
        let adv = [9u8; 32];
        // The phone signed someone else's identity; the HMAC is still right.
        let container = phone_identity(&mut rng, &account, &other.public, &adv, 1);
        let err = verify_device_identity(&container, &adv, &ours, &mut rng).unwrap_err();
        assert_eq!(err, PairError::AccountSignatureMismatch);
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let mut rng = StdRng::seed_from_u64(14);
        let ours = KeyPair::generate(&mut rng);
        let err =
            verify_device_identity(&[0xFF, 0xFF, 0xFF], &[0; 32], &ours, &mut rng).unwrap_err();
        assert!(matches!(err, PairError::Decode { .. }), "{err:?}");
        let empty = AdvSignedDeviceIdentityHmac::default().encode_to_vec();
        let err = verify_device_identity(&empty, &[0; 32], &ours, &mut rng).unwrap_err();
        assert_eq!(err, PairError::MissingField("device-identity.details"));
    }

    #[test]
    fn pair_code_alphabet_and_shape() {
        assert_eq!(encode_code(&[0; 5]), "11111111");
        assert_eq!(encode_code(&[0xFF; 5]), "ZZZZZZZZ");
        let mut rng = StdRng::seed_from_u64(15);
        let s = PairCodeSession::generate(&mut rng);
        assert_eq!(s.code().len(), 8);
        assert!(s.code().bytes().all(|c| PAIR_CODE_ALPHABET.contains(&c)));
        assert_eq!(s.display_code().len(), 9);
        assert_eq!(&s.display_code()[4..5], "-");
    }

    /// Plays the phone's side of the pairing-code flow and checks both ends derive the same
    /// adv secret and the phone can open the key bundle.
    #[test]
    fn pair_code_round_trip_with_a_simulated_phone() {
        let mut rng = StdRng::seed_from_u64(16);
        let ours = KeyPair::generate(&mut rng);
        let mut session = PairCodeSession::generate(&mut rng);
        let wrapped = session.wrapped_ephemeral(&mut rng);
        assert_eq!(wrapped.len(), 80);
        session.pairing_ref = Some(b"ref-1".to_vec());

        // Phone: unwrap our ephemeral with the code the user typed.
        let mut companion_eph = [0u8; 32];
        companion_eph.copy_from_slice(&wrapped[48..80]);
        code_ctr(
            session.code(),
            &wrapped[..32],
            wrapped[32..48].try_into().unwrap(),
            &mut companion_eph,
        );
        assert_eq!(companion_eph, session.ephemeral.public.0);
        // Phone: its own ephemeral, wrapped the same way.
        let phone_eph = KeyPair::generate(&mut rng);
        let phone_identity = KeyPair::generate(&mut rng);
        let (salt, iv) = ([5u8; 32], [6u8; 16]);
        let mut ct = phone_eph.public.0;
        code_ctr(session.code(), &salt, &iv, &mut ct);
        let phone_wrapped = [&salt[..], &iv[..], &ct[..]].concat();

        assert_eq!(
            session
                .finish(
                    b"other",
                    &phone_wrapped,
                    &phone_identity.public.0,
                    &ours,
                    &mut rng
                )
                .unwrap_err(),
            PairError::PairCodeRefMismatch
        );
        let fin = session
            .finish(
                b"ref-1",
                &phone_wrapped,
                &phone_identity.public.0,
                &ours,
                &mut rng,
            )
            .unwrap();

        // Phone: open the bundle and derive the same adv secret.
        let eph_shared = phone_eph.private.dh(&PublicKey(companion_eph));
        let b = &fin.wrapped_key_bundle;
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&b[..32]), &eph_shared)
            .expand(BUNDLE_KEY_INFO, &mut key)
            .unwrap();
        let plain = Aes256Gcm::new(&key.into())
            .decrypt(&Nonce::try_from(&b[32..44]).unwrap(), &b[44..])
            .unwrap();
        assert_eq!(&plain[..32], &ours.public.0);
        assert_eq!(&plain[32..64], &phone_identity.public.0);
        let ident_shared = phone_identity.private.dh(&ours.public);
        let ikm = [&eph_shared[..], &ident_shared[..], &plain[64..96]].concat();
        let mut adv = [0u8; 32];
        Hkdf::<Sha256>::new(None, &ikm)
            .expand(ADV_SECRET_INFO, &mut adv)
            .unwrap();
        assert_eq!(adv, fin.adv_secret);
    }
}
