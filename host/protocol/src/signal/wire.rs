//! The four Signal wire messages WhatsApp peers exchange, parsed strictly.
//!
//! ```text
//!   msg    (WhisperMessage, type 2):  0x33 || SignalMessage proto || MAC[8]
//!   pkmsg  (PreKeyWhisperMessage, 3): 0x33 || PreKeySignalMessage proto{…, message = msg}
//!   skmsg  (SenderKeyMessage, 4):     0x33 || SenderKeyMessage proto || XEdDSA sig[64]
//!   SKDM   (distribution, 5):         0x33 || SenderKeyDistributionMessage proto
//! ```
//!
//! The protobuf field numbers live in `proto/proto/signal.proto`. Parsing checks
//! the version byte, the length bounds, required fields and key encodings; it
//! verifies nothing cryptographic (that needs session state).

use prost::Message as _;
use prost::bytes::Bytes;
use wasmeow_proto::signal as pb;

use super::crypto::{MAC_LEN, Secret32};
use super::{MAX_MESSAGE_LEN, SignalError};
use crate::keys::PublicKey;
use crate::xeddsa::SIGNATURE_LEN;

/// The version byte of every message: `(3 << 4) | 3`.
pub const VERSION_BYTE: u8 = 0x33;

fn check_len(bytes: &[u8], min: usize) -> Result<(), SignalError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(SignalError::MessageTooLong {
            len: bytes.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    if bytes.len() < min {
        return Err(SignalError::Truncated {
            len: bytes.len(),
            min,
        });
    }
    if bytes[0] != VERSION_BYTE {
        return Err(SignalError::BadVersion(bytes[0]));
    }
    Ok(())
}

fn djb_key(field: Option<Bytes>, name: &'static str) -> Result<PublicKey, SignalError> {
    let bytes = field.ok_or(SignalError::MissingField(name))?;
    PublicKey::from_djb(&bytes).map_err(|_| SignalError::InvalidKey)
}

/// A 1:1 `SignalMessage` ("WhisperMessage"), type `msg`.
#[derive(Clone, Debug)]
pub struct SignalMessage {
    pub(crate) ratchet_key: PublicKey,
    pub(crate) counter: u32,
    pub(crate) previous_counter: u32,
    pub(crate) ciphertext: Bytes,
    /// The whole serialized message: version, proto, MAC.
    pub(crate) serialized: Vec<u8>,
}

impl SignalMessage {
    /// The shortest possible message: version byte + MAC.
    pub const MIN_LEN: usize = 1 + MAC_LEN;

    /// Parses `0x33 || proto || MAC[8]`.
    pub fn parse(bytes: &[u8]) -> Result<Self, SignalError> {
        check_len(bytes, Self::MIN_LEN + 1)?;
        let proto = &bytes[1..bytes.len() - MAC_LEN];
        let m = pb::SignalMessage::decode(proto).map_err(SignalError::InvalidProtobuf)?;
        let ratchet_key = djb_key(m.ratchet_key, "ratchet_key")?;
        let counter = m.counter.ok_or(SignalError::MissingField("counter"))?;
        let ciphertext = m
            .ciphertext
            .filter(|c| !c.is_empty())
            .ok_or(SignalError::MissingField("ciphertext"))?;
        Ok(Self {
            ratchet_key,
            counter,
            previous_counter: m.previous_counter.unwrap_or(0),
            ciphertext,
            serialized: bytes.to_vec(),
        })
    }

    /// Builds the serialized message from its parts; the MAC is computed by
    /// `mac(proto)` over the encoded protobuf.
    pub(crate) fn build(
        ratchet_key: &PublicKey,
        counter: u32,
        previous_counter: u32,
        ciphertext: Vec<u8>,
        mac: impl FnOnce(&[u8]) -> [u8; MAC_LEN],
    ) -> Vec<u8> {
        let m = pb::SignalMessage {
            ratchet_key: Some(Bytes::copy_from_slice(&ratchet_key.to_djb())),
            counter: Some(counter),
            previous_counter: Some(previous_counter),
            ciphertext: Some(Bytes::from(ciphertext)),
        };
        let mut out = Vec::with_capacity(1 + m.encoded_len() + MAC_LEN);
        out.push(VERSION_BYTE);
        m.encode(&mut out)
            .expect("a Vec grows to hold any protobuf encoding");
        let tag = mac(&out[1..]);
        out.extend_from_slice(&tag);
        out
    }

    /// The sender's ratchet public key.
    pub fn ratchet_key(&self) -> &PublicKey {
        &self.ratchet_key
    }

    /// The message counter in its chain.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// The sender's previous chain length hint (`max(last counter, 0)`).
    pub fn previous_counter(&self) -> u32 {
        self.previous_counter
    }

    /// The serialized protobuf (what the MAC covers after the identities and version).
    pub(crate) fn proto_bytes(&self) -> &[u8] {
        &self.serialized[1..self.serialized.len() - MAC_LEN]
    }

    /// The received MAC.
    pub(crate) fn mac(&self) -> &[u8] {
        &self.serialized[self.serialized.len() - MAC_LEN..]
    }
}

/// A `PreKeySignalMessage` ("PreKeyWhisperMessage"), type `pkmsg`: the first
/// messages of a session, carrying what the responder needs for X3DH.
#[derive(Clone, Debug)]
pub struct PreKeySignalMessage {
    pub(crate) registration_id: u32,
    pub(crate) pre_key_id: Option<u32>,
    pub(crate) signed_pre_key_id: u32,
    pub(crate) base_key: PublicKey,
    pub(crate) identity_key: PublicKey,
    pub(crate) message: SignalMessage,
}

impl PreKeySignalMessage {
    /// Parses `0x33 || proto`, including the embedded `SignalMessage`.
    pub fn parse(bytes: &[u8]) -> Result<Self, SignalError> {
        check_len(bytes, 2)?;
        let m =
            pb::PreKeySignalMessage::decode(&bytes[1..]).map_err(SignalError::InvalidProtobuf)?;
        let base_key = djb_key(m.base_key, "base_key")?;
        let identity_key = djb_key(m.identity_key, "identity_key")?;
        let signed_pre_key_id = m
            .signed_pre_key_id
            .ok_or(SignalError::MissingField("signed_pre_key_id"))?;
        let registration_id = m
            .registration_id
            .ok_or(SignalError::MissingField("registration_id"))?;
        let inner = m.message.ok_or(SignalError::MissingField("message"))?;
        let message = SignalMessage::parse(&inner)?;
        Ok(Self {
            registration_id,
            pre_key_id: m.pre_key_id,
            signed_pre_key_id,
            base_key,
            identity_key,
            message,
        })
    }

    pub(crate) fn build(
        registration_id: u32,
        pre_key_id: Option<u32>,
        signed_pre_key_id: u32,
        base_key: &PublicKey,
        identity_key: &PublicKey,
        message: Vec<u8>,
    ) -> Vec<u8> {
        let m = pb::PreKeySignalMessage {
            pre_key_id,
            base_key: Some(Bytes::copy_from_slice(&base_key.to_djb())),
            identity_key: Some(Bytes::copy_from_slice(&identity_key.to_djb())),
            message: Some(Bytes::from(message)),
            registration_id: Some(registration_id),
            signed_pre_key_id: Some(signed_pre_key_id),
        };
        let mut out = Vec::with_capacity(1 + m.encoded_len());
        out.push(VERSION_BYTE);
        m.encode(&mut out)
            .expect("a Vec grows to hold any protobuf encoding");
        out
    }

    /// The sender's registration id.
    pub fn registration_id(&self) -> u32 {
        self.registration_id
    }

    /// The one-time prekey the sender used, if any.
    pub fn pre_key_id(&self) -> Option<u32> {
        self.pre_key_id
    }

    /// The signed prekey the sender used.
    pub fn signed_pre_key_id(&self) -> u32 {
        self.signed_pre_key_id
    }

    /// The sender's X3DH base key (identifies the session).
    pub fn base_key(&self) -> &PublicKey {
        &self.base_key
    }

    /// The sender's identity key.
    pub fn identity_key(&self) -> &PublicKey {
        &self.identity_key
    }

    /// The embedded `SignalMessage`.
    pub fn message(&self) -> &SignalMessage {
        &self.message
    }
}

/// A group `SenderKeyMessage`, type `skmsg`.
#[derive(Clone, Debug)]
pub struct SenderKeyMessage {
    pub(crate) key_id: u32,
    pub(crate) iteration: u32,
    pub(crate) ciphertext: Bytes,
    /// The whole serialized message: version, proto, signature.
    pub(crate) serialized: Vec<u8>,
}

impl SenderKeyMessage {
    /// Version byte + signature + at least one protobuf byte.
    pub const MIN_LEN: usize = 1 + SIGNATURE_LEN + 1;

    /// Parses `0x33 || proto || signature[64]` (the signature is not checked here).
    pub fn parse(bytes: &[u8]) -> Result<Self, SignalError> {
        check_len(bytes, Self::MIN_LEN)?;
        let proto = &bytes[1..bytes.len() - SIGNATURE_LEN];
        let m = pb::SenderKeyMessage::decode(proto).map_err(SignalError::InvalidProtobuf)?;
        Ok(Self {
            key_id: m.id.ok_or(SignalError::MissingField("id"))?,
            iteration: m.iteration.ok_or(SignalError::MissingField("iteration"))?,
            ciphertext: m
                .ciphertext
                .filter(|c| !c.is_empty())
                .ok_or(SignalError::MissingField("ciphertext"))?,
            serialized: bytes.to_vec(),
        })
    }

    pub(crate) fn build(
        key_id: u32,
        iteration: u32,
        ciphertext: Vec<u8>,
        sign: impl FnOnce(&[u8]) -> [u8; SIGNATURE_LEN],
    ) -> Vec<u8> {
        let m = pb::SenderKeyMessage {
            id: Some(key_id),
            iteration: Some(iteration),
            ciphertext: Some(Bytes::from(ciphertext)),
        };
        let mut out = Vec::with_capacity(1 + m.encoded_len() + SIGNATURE_LEN);
        out.push(VERSION_BYTE);
        m.encode(&mut out)
            .expect("a Vec grows to hold any protobuf encoding");
        let sig = sign(&out);
        out.extend_from_slice(&sig);
        out
    }

    /// The sender-key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The chain iteration of this message.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// What the signature covers: `version || proto`.
    pub(crate) fn signed_part(&self) -> &[u8] {
        &self.serialized[..self.serialized.len() - SIGNATURE_LEN]
    }

    pub(crate) fn signature(&self) -> &[u8] {
        &self.serialized[self.serialized.len() - SIGNATURE_LEN..]
    }
}

/// A `SenderKeyDistributionMessage`: a sender's chain key and signing key,
/// delivered to each group member inside a 1:1 message.
#[derive(Clone, Debug)]
pub struct SenderKeyDistributionMessage {
    pub(crate) key_id: u32,
    pub(crate) iteration: u32,
    pub(crate) chain_key: Secret32,
    pub(crate) signing_key: PublicKey,
}

impl SenderKeyDistributionMessage {
    /// Parses `0x33 || proto`.
    pub fn parse(bytes: &[u8]) -> Result<Self, SignalError> {
        check_len(bytes, 2)?;
        let m = pb::SenderKeyDistributionMessage::decode(&bytes[1..])
            .map_err(SignalError::InvalidProtobuf)?;
        let chain = m.chain_key.ok_or(SignalError::MissingField("chain_key"))?;
        let chain_key =
            Secret32::from_slice(&chain).ok_or(SignalError::MissingField("chain_key"))?;
        super::records::wipe(chain);
        Ok(Self {
            key_id: m.id.ok_or(SignalError::MissingField("id"))?,
            iteration: m.iteration.ok_or(SignalError::MissingField("iteration"))?,
            chain_key,
            signing_key: djb_key(m.signing_key, "signing_key")?,
        })
    }

    pub(crate) fn build(
        key_id: u32,
        iteration: u32,
        chain_key: &Secret32,
        signing_key: &PublicKey,
    ) -> Vec<u8> {
        let mut m = pb::SenderKeyDistributionMessage {
            id: Some(key_id),
            iteration: Some(iteration),
            chain_key: Some(Bytes::copy_from_slice(&chain_key.0)),
            signing_key: Some(Bytes::copy_from_slice(&signing_key.to_djb())),
        };
        let mut out = Vec::with_capacity(1 + m.encoded_len());
        out.push(VERSION_BYTE);
        m.encode(&mut out)
            .expect("a Vec grows to hold any protobuf encoding");
        if let Some(c) = m.chain_key.take() {
            super::records::wipe(c);
        }
        out
    }

    /// The sender-key id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The chain iteration the chain key belongs to.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The sender's public signing key.
    pub fn signing_key(&self) -> &PublicKey {
        &self.signing_key
    }
}

/// An encrypted 1:1 message ready for an `<enc>` node.
#[derive(Clone, PartialEq, Eq)]
pub enum CiphertextMessage {
    /// A PreKeySignalMessage: `<enc type="pkmsg">`.
    Pkmsg(Vec<u8>),
    /// A SignalMessage: `<enc type="msg">`.
    Msg(Vec<u8>),
}

impl CiphertextMessage {
    /// The `type` attribute of the `<enc>` node.
    pub fn enc_type(&self) -> &'static str {
        match self {
            Self::Pkmsg(_) => "pkmsg",
            Self::Msg(_) => "msg",
        }
    }

    /// libsignal's numeric type: 3 for prekey messages, 2 for whisper messages
    /// (libsignal-node reports the latter as 1).
    pub fn message_type(&self) -> u8 {
        match self {
            Self::Pkmsg(_) => 3,
            Self::Msg(_) => 2,
        }
    }

    /// The serialized message.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Pkmsg(b) | Self::Msg(b) => b,
        }
    }

    /// The serialized message, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Self::Pkmsg(b) | Self::Msg(b) => b,
        }
    }
}

impl std::fmt::Debug for CiphertextMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CiphertextMessage::{}({} bytes)",
            self.enc_type(),
            self.as_bytes().len()
        )
    }
}
