//! Sender keys (group messages), as pure functions over [`SenderKeyRecord`].
//!
//! Each group member owns one sender key per group: a chain key, an iteration
//! and a signing key pair. It announces the chain with a
//! `SenderKeyDistributionMessage` (sent 1:1 inside an encrypted message) and then
//! encrypts each group message once:
//!
//! ```text
//!   seed_i   = HMAC-SHA256(CK_i, 0x01)        CK_{i+1} = HMAC-SHA256(CK_i, 0x02)
//!   IV ‖ key = HKDF(seed_i, salt 0*32, "WhisperGroup", 48)    (16 ‖ 32 bytes)
//!   skmsg    = 0x33 ‖ SenderKeyMessage{id, iteration i, AES-256-CBC(key, IV, m)} ‖ XEdDSA sig
//! ```
//!
//! Receivers verify the signature with the announced signing key before any
//! chain work, keep skipped keys (bounded) for out-of-order delivery, and hold
//! up to [`MAX_SENDER_KEY_STATES`] states per sender (one per key id).

use std::collections::VecDeque;

use rand_core::CryptoRng;

use super::crypto::{ChainKey, GroupMessageKeys, Secret32, aes_cbc_decrypt, aes_cbc_encrypt};
use super::session::{SkippedKey, advance, take_skipped};
use super::wire::{SenderKeyDistributionMessage, SenderKeyMessage};
use super::{MAX_FORWARD_JUMP, MAX_SENDER_KEY_STATES, SignalError};
use crate::keys::{KeyPair, PrivateKey, PublicKey};
use crate::xeddsa;

/// One sender-key chain of one sender.
#[derive(Clone, Debug)]
pub(crate) struct SenderKeyState {
    pub(crate) key_id: u32,
    /// `chain.index` is the iteration of the next message.
    pub(crate) chain: ChainKey,
    pub(crate) signing_public: PublicKey,
    /// Present only for our own sender key.
    pub(crate) signing_private: Option<PrivateKey>,
    /// Oldest first; at most [`MAX_SKIPPED_KEYS_PER_CHAIN`](super::MAX_SKIPPED_KEYS_PER_CHAIN).
    pub(crate) skipped: VecDeque<SkippedKey>,
}

/// The sender-key states of one (group, sender) pair: oldest first, the last
/// one is current. Serialize with [`to_bytes`](Self::to_bytes); the bytes hold
/// secret keys.
#[derive(Clone, Default)]
pub struct SenderKeyRecord {
    pub(crate) states: Vec<SenderKeyState>,
}

/// The result of [`decrypt`]. `Debug` shows the plaintext's length only.
pub struct GroupDecrypted {
    /// The record to commit together with the plaintext.
    pub record: SenderKeyRecord,
    /// The decrypted message body (still WhatsApp-padded).
    pub plaintext: Vec<u8>,
}

impl SenderKeyRecord {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the record holds no state.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The key ids held, oldest first.
    pub fn key_ids(&self) -> Vec<u32> {
        self.states.iter().map(|s| s.key_id).collect()
    }

    fn state_index(&self, key_id: u32) -> Option<usize> {
        self.states.iter().rposition(|s| s.key_id == key_id)
    }
}

impl std::fmt::Debug for GroupDecrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupDecrypted")
            .field("record", &self.record)
            .field("plaintext_len", &self.plaintext.len())
            .finish()
    }
}

impl std::fmt::Debug for SenderKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderKeyRecord")
            .field("key_ids", &self.key_ids())
            .field(
                "own",
                &self
                    .states
                    .last()
                    .is_some_and(|s| s.signing_private.is_some()),
            )
            .finish_non_exhaustive()
    }
}

/// Creates our own sender key for a group: a random 31-bit key id, a random
/// chain key at iteration 0 and a fresh signing key pair.
pub fn create_sender_key<R: CryptoRng + ?Sized>(rng: &mut R) -> SenderKeyRecord {
    let key_id = rng.next_u32() & 0x7FFF_FFFF;
    let mut chain = [0u8; 32];
    rng.fill_bytes(&mut chain);
    let signing = KeyPair::generate(rng);
    SenderKeyRecord {
        states: vec![SenderKeyState {
            key_id,
            chain: ChainKey {
                index: 0,
                key: Secret32(chain),
            },
            signing_public: signing.public,
            signing_private: Some(signing.private),
            skipped: VecDeque::new(),
        }],
    }
}

/// The `SenderKeyDistributionMessage` for our current sender key (its key id,
/// current iteration, chain key and public signing key).
pub fn distribution_message(record: &SenderKeyRecord) -> Result<Vec<u8>, SignalError> {
    let state = record
        .states
        .last()
        .filter(|s| s.signing_private.is_some())
        .ok_or(SignalError::NotOwnSenderKey)?;
    Ok(SenderKeyDistributionMessage::build(
        state.key_id,
        state.chain.index,
        &state.chain.key,
        &state.signing_public,
    ))
}

/// Stores a sender's `SenderKeyDistributionMessage` (bytes `0x33 || proto`).
///
/// A distribution for a key id we already hold with the same signing key is
/// ignored (re-delivery must not rewind the chain and re-open used keys); with a
/// different signing key it replaces the old state. Beyond
/// [`MAX_SENDER_KEY_STATES`] the oldest state is dropped.
pub fn process_distribution_message(
    record: Option<&SenderKeyRecord>,
    distribution: &[u8],
) -> Result<SenderKeyRecord, SignalError> {
    let skdm = SenderKeyDistributionMessage::parse(distribution)?;
    let mut record = record.cloned().unwrap_or_default();
    if let Some(i) = record.state_index(skdm.key_id) {
        if record.states[i].signing_public == skdm.signing_key {
            return Ok(record);
        }
        record.states.remove(i);
    }
    record.states.push(SenderKeyState {
        key_id: skdm.key_id,
        chain: ChainKey {
            index: skdm.iteration,
            key: skdm.chain_key.clone(),
        },
        signing_public: skdm.signing_key,
        signing_private: None,
        skipped: VecDeque::new(),
    });
    if record.states.len() > MAX_SENDER_KEY_STATES {
        record.states.remove(0);
    }
    Ok(record)
}

/// Encrypts one group message with our current sender key and signs it; the
/// chain advances by one iteration. The rng feeds the XEdDSA nonce.
pub fn encrypt<R: CryptoRng + ?Sized>(
    record: &mut SenderKeyRecord,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, SignalError> {
    let state = record
        .states
        .last_mut()
        .ok_or(SignalError::NotOwnSenderKey)?;
    let signing = state
        .signing_private
        .as_ref()
        .ok_or(SignalError::NotOwnSenderKey)?;
    let (seed, next) = state.chain.step()?;
    let keys = GroupMessageKeys::from_seed(&seed);
    let ciphertext = aes_cbc_encrypt(&keys.cipher_key, &keys.iv, plaintext);
    let message = SenderKeyMessage::build(state.key_id, state.chain.index, ciphertext, |signed| {
        xeddsa::sign(signing, signed, rng)
    });
    state.chain = next;
    Ok(message)
}

/// Verifies and decrypts a `skmsg`. Returns the advanced record; the caller's
/// record is unchanged on any error.
pub fn decrypt(record: &SenderKeyRecord, message: &[u8]) -> Result<GroupDecrypted, SignalError> {
    let msg = SenderKeyMessage::parse(message)?;
    let index = record
        .state_index(msg.key_id)
        .ok_or(SignalError::NoSenderKeyState(msg.key_id))?;
    let mut state = record.states[index].clone();
    xeddsa::verify(&state.signing_public, msg.signed_part(), msg.signature())
        .map_err(|_| SignalError::InvalidSignature)?;

    let seed = if msg.iteration < state.chain.index {
        take_skipped(&mut state.skipped, msg.iteration)?
    } else {
        let jump = msg.iteration - state.chain.index;
        if jump > MAX_FORWARD_JUMP {
            return Err(SignalError::TooManySkippedKeys {
                jump,
                max: MAX_FORWARD_JUMP,
            });
        }
        let (seed, next) = advance(&state.chain, msg.iteration, &mut state.skipped)?;
        state.chain = next;
        seed
    };
    let keys = GroupMessageKeys::from_seed(&seed);
    let plaintext = aes_cbc_decrypt(&keys.cipher_key, &keys.iv, &msg.ciphertext)?;
    let mut record = record.clone();
    record.states[index] = state;
    Ok(GroupDecrypted { record, plaintext })
}
