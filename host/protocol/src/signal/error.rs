//! [`SignalError`]: every way a Signal operation can fail, one precise variant
//! each. A function that returns an error has changed nothing the caller owns.

use crate::keys::PublicKey;

/// A Signal operation failed. The caller's records are unchanged.
///
/// Variants are grouped by fault: the peer sent something malformed
/// (`BadVersion` … `MissingField`), cryptographic checks failed (`BadMac`,
/// `InvalidSignature`, …), the message does not fit our state (`DuplicateMessage`,
/// `NoSession`, …), a trust decision is needed (`UntrustedIdentity`), or stored
/// state is corrupt (`InvalidRecord`). Do not rely on the `Display` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    // --- malformed input -------------------------------------------------
    /// The version byte was not `0x33` (message version 3, current version 3).
    #[error("unsupported message version byte {0:#04x}")]
    BadVersion(u8),
    /// The message is shorter than its fixed parts (version byte, MAC or signature).
    #[error("message truncated: {len} bytes, need at least {min}")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Minimum length for this message type.
        min: usize,
    },
    /// The message exceeds [`MAX_MESSAGE_LEN`](super::MAX_MESSAGE_LEN).
    #[error("message too long: {len} bytes, limit {max}")]
    MessageTooLong {
        /// Bytes received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The protobuf body did not decode.
    #[error("invalid protobuf: {0}")]
    InvalidProtobuf(prost::DecodeError),
    /// A field the protocol requires was absent or had the wrong length.
    #[error("missing or malformed field `{0}`")]
    MissingField(&'static str),
    /// A public key was malformed, or a Diffie-Hellman result was all zeros
    /// (a low-order point).
    #[error("invalid public key")]
    InvalidKey,
    /// The AES-CBC body had a bad length or bad PKCS#7 padding (after the MAC
    /// or signature verified).
    #[error("invalid ciphertext")]
    InvalidCiphertext,
    /// WhatsApp's random padding (1..=16 bytes, each equal to the count) was wrong.
    #[error("invalid message padding")]
    InvalidPadding,

    // --- cryptographic failures ------------------------------------------
    /// The 8-byte message MAC did not verify in any session state.
    #[error("bad MAC")]
    BadMac,
    /// An XEdDSA signature (signed prekey or sender-key message) did not verify.
    #[error("invalid signature")]
    InvalidSignature,

    // --- trust -------------------------------------------------------------
    /// The peer presented an identity key different from the one the caller
    /// trusts for this address. Nothing was changed; the caller decides whether
    /// to accept `received` (and call again with it as the trusted key).
    #[error("untrusted identity: the peer's identity key changed")]
    UntrustedIdentity {
        /// The identity the caller trusted.
        trusted: PublicKey,
        /// The identity the peer presented.
        received: PublicKey,
    },

    // --- state mismatches --------------------------------------------------
    /// The message key for this counter/iteration was already used (a replay or
    /// a duplicate delivery).
    #[error("duplicate message (counter {counter})")]
    DuplicateMessage {
        /// The counter or iteration of the message.
        counter: u32,
    },
    /// The message is further ahead in its chain than
    /// [`MAX_FORWARD_JUMP`](super::MAX_FORWARD_JUMP) allows.
    #[error("message is {jump} keys ahead of its chain, limit {max}")]
    TooManySkippedKeys {
        /// How many message keys would have to be skipped.
        jump: u32,
        /// The limit.
        max: u32,
    },
    /// No session state exists (or none can decrypt a normal message).
    #[error("no session")]
    NoSession,
    /// The PreKeySignalMessage names a one-time prekey the caller did not supply.
    #[error("invalid or missing one-time prekey {0}")]
    InvalidPreKeyId(u32),
    /// The PreKeySignalMessage names a signed prekey the caller did not supply.
    #[error("invalid or missing signed prekey {0}")]
    InvalidSignedPreKeyId(u32),
    /// No sender-key state with this key id is known for the sender.
    #[error("no sender key state for key id {0}")]
    NoSenderKeyState(u32),
    /// Group encryption needs our own sender key (with its private signing key).
    #[error("sender key record has no private signing key")]
    NotOwnSenderKey,
    /// A chain counter would pass `u32::MAX`.
    #[error("chain counter exhausted")]
    ChainExhausted,

    // --- storage -----------------------------------------------------------
    /// Stored record bytes are corrupt or of an unknown format.
    #[error("invalid stored record: {0}")]
    InvalidRecord(&'static str),
}
