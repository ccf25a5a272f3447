//! 1:1 sessions: X3DH in both roles and the Double Ratchet, as pure functions
//! over [`SessionRecord`] values.
//!
//! Every decrypting function takes the caller's record by shared reference,
//! works on a copy and returns the new record only on success, so the caller
//! can commit "ratchet state + message" in one store transaction and a failed
//! or forged message changes nothing. [`encrypt`] mutates in place but only
//! after every fallible step has succeeded.

use std::collections::VecDeque;

use rand_core::CryptoRng;
use zeroize::Zeroize;

use super::crypto::{
    ChainKey, MessageKeys, Secret32, aes_cbc_decrypt, aes_cbc_encrypt, derive_master, dh,
    macs_equal, ratchet_step,
};
use super::identity::{
    IdentityTrust, LocalIdentity, PreKey, PreKeyBundle, SignedPreKey, check_identity,
    verify_signed_pre_key,
};
use super::wire::{CiphertextMessage, PreKeySignalMessage, SignalMessage, VERSION_BYTE};
use super::{
    MAX_ARCHIVED_STATES, MAX_FORWARD_JUMP, MAX_RECEIVER_CHAINS, MAX_SKIPPED_KEYS_PER_CHAIN,
    SignalError,
};
use crate::keys::{KeyPair, PublicKey};

/// The session version this module speaks (the high nibble of the version byte).
pub const SESSION_VERSION: u32 = 3;

/// A message key kept for a message that has not arrived yet.
#[derive(Clone, Debug)]
pub(crate) struct SkippedKey {
    pub(crate) index: u32,
    pub(crate) seed: Secret32,
}

/// Our current sending chain and the ratchet key pair it belongs to.
#[derive(Clone, Debug)]
pub(crate) struct SenderChain {
    pub(crate) ratchet: KeyPair,
    pub(crate) chain: ChainKey,
}

/// A receiving chain for one of the peer's ratchet keys.
#[derive(Clone, Debug)]
pub(crate) struct ReceiverChain {
    pub(crate) ratchet_key: PublicKey,
    pub(crate) chain: ChainKey,
    /// Oldest first; at most [`MAX_SKIPPED_KEYS_PER_CHAIN`].
    pub(crate) skipped: VecDeque<SkippedKey>,
}

/// Set on the initiator until the first reply arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PendingPreKey {
    pub(crate) pre_key_id: Option<u32>,
    pub(crate) signed_pre_key_id: u32,
    pub(crate) base_key: PublicKey,
}

/// One Double Ratchet session with one peer device.
#[derive(Clone, Debug)]
pub(crate) struct SessionState {
    pub(crate) local_identity: PublicKey,
    pub(crate) remote_identity: PublicKey,
    pub(crate) local_registration_id: u32,
    pub(crate) remote_registration_id: u32,
    pub(crate) root_key: Secret32,
    /// `max(last counter sent on the previous sending chain, 0)`, as libsignal sends it.
    pub(crate) previous_counter: u32,
    pub(crate) sender_chain: SenderChain,
    /// Oldest first; at most [`MAX_RECEIVER_CHAINS`].
    pub(crate) receiver_chains: Vec<ReceiverChain>,
    pub(crate) pending_pre_key: Option<PendingPreKey>,
    /// The initiator's X3DH base key: it names the session.
    pub(crate) base_key: PublicKey,
    /// Whether `base_key` is ours (we initiated).
    pub(crate) initiator: bool,
}

/// All session states we hold for one peer device: the current one and up to
/// [`MAX_ARCHIVED_STATES`] archived ones (most recent first), which are tried
/// when a message does not decrypt with the current state.
///
/// Serialize with [`to_bytes`](Self::to_bytes) (our `signal.RecordSession`
/// protobuf). The bytes contain secret keys: store them encrypted.
#[derive(Clone, Default)]
pub struct SessionRecord {
    pub(crate) current: Option<SessionState>,
    pub(crate) archived: Vec<SessionState>,
}

/// The result of [`initiate`].
#[derive(Debug)]
pub struct Initiated {
    /// The new record: the new session is current, any previous one archived.
    pub record: SessionRecord,
    /// Whether the bundle's identity was new to the caller (store it) or trusted.
    pub trust: IdentityTrust,
}

/// The result of [`decrypt_message`]. `Debug` shows the plaintext's length only.
pub struct Decrypted {
    /// The record to commit together with the plaintext.
    pub record: SessionRecord,
    /// The decrypted message body (still WhatsApp-padded, see [`super::padding`]).
    pub plaintext: Vec<u8>,
}

/// The result of [`decrypt_prekey_message`]. `Debug` shows the plaintext's length only.
pub struct PreKeyDecrypted {
    /// The record to commit together with the plaintext.
    pub record: SessionRecord,
    /// The decrypted message body.
    pub plaintext: Vec<u8>,
    /// The one-time prekey this message consumed: delete it in the same transaction.
    /// `None` when no one-time prekey was used or the session already existed.
    pub used_pre_key_id: Option<u32>,
    /// Whether the sender's identity was new to the caller (store it) or trusted.
    pub trust: IdentityTrust,
}

/// Our prekeys that a PreKeySignalMessage may name. Look them up by
/// [`PreKeySignalMessage::signed_pre_key_id`] and
/// [`PreKeySignalMessage::pre_key_id`] before calling [`decrypt_prekey_message`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PreKeys<'a> {
    /// The signed prekey with the message's `signed_pre_key_id`, if we still have it.
    pub signed: Option<&'a SignedPreKey>,
    /// The one-time prekey with the message's `pre_key_id`, if we still have it.
    pub one_time: Option<&'a PreKey>,
}

/// X3DH as the initiator ("Alice") from a peer's prekey bundle.
///
/// > "Alice verifies the prekey signature and aborts the protocol if
/// > verification fails." (X3DH §3.3)
///
/// Checks the bundle's identity against `trusted` (trust on first use, see
/// [`check_identity`]), verifies the signed-prekey signature, then computes
///
/// ```text
///   DH1 = DH(IK_A, SPK_B)  DH2 = DH(EK_A, IK_B)  DH3 = DH(EK_A, SPK_B)  [DH4 = DH(EK_A, OPK_B)]
///   root, _ = HKDF(0xFF*32 || DH1 || DH2 || DH3 [|| DH4], salt 0*32, "WhisperText")
///   root, CK_s = HKDF(DH(R_A, SPK_B), salt root, "WhisperRatchet")      (R_A fresh)
/// ```
///
/// The new session is current in the returned record; the current state of
/// `previous` (if any) is archived. Until a reply arrives, [`encrypt`] emits
/// PreKeySignalMessages. The rng draws the base key `EK_A`, then `R_A`.
pub fn initiate<R: CryptoRng + ?Sized>(
    previous: Option<&SessionRecord>,
    ours: &LocalIdentity,
    bundle: &PreKeyBundle,
    trusted: Option<&PublicKey>,
    rng: &mut R,
) -> Result<Initiated, SignalError> {
    let trust = check_identity(trusted, &bundle.identity_key)?;
    verify_signed_pre_key(
        &bundle.identity_key,
        &bundle.signed_pre_key_public,
        &bundle.signed_pre_key_signature,
    )?;
    let base = KeyPair::generate(rng);
    let ratchet = KeyPair::generate(rng);

    let spk = &bundle.signed_pre_key_public;
    let mut dhs = Vec::with_capacity(4);
    dhs.push(dh(&ours.key_pair.private, spk)?);
    dhs.push(dh(&base.private, &bundle.identity_key)?);
    dhs.push(dh(&base.private, spk)?);
    if let Some(opk) = &bundle.pre_key {
        dhs.push(dh(&base.private, &opk.public)?);
    }
    let (root, _unused_chain) = derive_master(&dhs);
    dhs.zeroize();
    let (root, sending) = ratchet_step(&root, &ratchet.private, spk)?;

    let state = SessionState {
        local_identity: ours.key_pair.public,
        remote_identity: bundle.identity_key,
        local_registration_id: ours.registration_id,
        remote_registration_id: bundle.registration_id,
        root_key: root,
        previous_counter: 0,
        sender_chain: SenderChain {
            ratchet,
            chain: ChainKey {
                index: 0,
                key: sending,
            },
        },
        receiver_chains: Vec::new(),
        pending_pre_key: Some(PendingPreKey {
            pre_key_id: bundle.pre_key.map(|k| k.id),
            signed_pre_key_id: bundle.signed_pre_key_id,
            base_key: base.public,
        }),
        base_key: base.public,
        initiator: true,
    };
    let mut record = previous.cloned().unwrap_or_default();
    record.promote(state);
    Ok(Initiated { record, trust })
}

/// Encrypts `plaintext` with the current session of `record`.
///
/// Returns a [`CiphertextMessage::Pkmsg`] while the session is pending (we
/// initiated and have not received a reply), a [`CiphertextMessage::Msg`]
/// afterwards. The record advances by one message key; on error it is unchanged.
pub fn encrypt(
    record: &mut SessionRecord,
    plaintext: &[u8],
) -> Result<CiphertextMessage, SignalError> {
    let state = record.current.as_mut().ok_or(SignalError::NoSession)?;
    state.encrypt(plaintext)
}

/// Decrypts a `msg` (WhisperMessage) with the current or an archived session.
///
/// States are tried current first, then archived ones from the most recent.
/// A state that decrypts is updated in place (an archived state is *not*
/// promoted: the peer may have discarded it, so we keep sending on the current
/// one). On failure the most specific error wins: `InvalidCiphertext` (the MAC
/// verified) over `DuplicateMessage` over `TooManySkippedKeys` over `BadMac`.
/// The rng draws a new ratchet key when the message starts a new DH ratchet step.
pub fn decrypt_message<R: CryptoRng + ?Sized>(
    record: &SessionRecord,
    message: &[u8],
    rng: &mut R,
) -> Result<Decrypted, SignalError> {
    let msg = SignalMessage::parse(message)?;
    let mut best: Option<SignalError> = None;
    for slot in record.slots() {
        let mut state = record.state(slot).clone();
        match state.decrypt(&msg, rng) {
            Ok(plaintext) => {
                let mut record = record.clone();
                *record.state_mut(slot) = state;
                return Ok(Decrypted { record, plaintext });
            }
            Err(e) => {
                if best.as_ref().is_none_or(|b| rank(&e) > rank(b)) {
                    best = Some(e);
                }
            }
        }
    }
    Err(best.unwrap_or(SignalError::NoSession))
}

fn rank(e: &SignalError) -> u8 {
    match e {
        SignalError::InvalidCiphertext => 4,
        SignalError::DuplicateMessage { .. } => 3,
        SignalError::TooManySkippedKeys { .. } => 2,
        _ => 1,
    }
}

/// X3DH as the responder ("Bob") and decryption of the embedded message.
///
/// Checks the sender's identity against `trusted` (trust on first use). If the
/// record already holds a session with this base key (the initiator keeps
/// sending PreKeySignalMessages until it hears from us), that session decrypts
/// and no prekey is consumed. Otherwise `pre_keys` must hold the signed prekey
/// (and the one-time prekey, if the message names one) and a new session is
/// built:
///
/// ```text
///   DH1 = DH(SPK_B, IK_A)  DH2 = DH(IK_B, EK_A)  DH3 = DH(SPK_B, EK_A)  [DH4 = DH(OPK_B, EK_A)]
///   root, CK = HKDF(0xFF*32 || DH1 || DH2 || DH3 [|| DH4], salt 0*32, "WhisperText")
///   sending chain = (SPK_B, CK); the embedded message then drives the first DH ratchet step.
/// ```
///
/// The new session becomes current and the previous current state is archived.
pub fn decrypt_prekey_message<R: CryptoRng + ?Sized>(
    record: Option<&SessionRecord>,
    ours: &LocalIdentity,
    pre_keys: PreKeys<'_>,
    trusted: Option<&PublicKey>,
    message: &PreKeySignalMessage,
    rng: &mut R,
) -> Result<PreKeyDecrypted, SignalError> {
    let trust = check_identity(trusted, &message.identity_key)?;
    let mut record = record.cloned().unwrap_or_default();

    if let Some(slot) = record.find_responder_session(&message.base_key, &message.identity_key) {
        let plaintext = record.state_mut(slot).decrypt(&message.message, rng)?;
        return Ok(PreKeyDecrypted {
            record,
            plaintext,
            used_pre_key_id: None,
            trust,
        });
    }

    let spk = pre_keys
        .signed
        .filter(|k| k.id == message.signed_pre_key_id)
        .ok_or(SignalError::InvalidSignedPreKeyId(
            message.signed_pre_key_id,
        ))?;
    let opk = match message.pre_key_id {
        Some(id) => Some(
            pre_keys
                .one_time
                .filter(|k| k.id == id)
                .ok_or(SignalError::InvalidPreKeyId(id))?,
        ),
        None => None,
    };

    let mut dhs = Vec::with_capacity(4);
    dhs.push(dh(&spk.key_pair.private, &message.identity_key)?);
    dhs.push(dh(&ours.key_pair.private, &message.base_key)?);
    dhs.push(dh(&spk.key_pair.private, &message.base_key)?);
    if let Some(opk) = opk {
        dhs.push(dh(&opk.key_pair.private, &message.base_key)?);
    }
    let (root, chain) = derive_master(&dhs);
    dhs.zeroize();

    let mut state = SessionState {
        local_identity: ours.key_pair.public,
        remote_identity: message.identity_key,
        local_registration_id: ours.registration_id,
        remote_registration_id: message.registration_id,
        root_key: root,
        previous_counter: 0,
        sender_chain: SenderChain {
            ratchet: spk.key_pair.clone(),
            chain: ChainKey {
                index: 0,
                key: chain,
            },
        },
        receiver_chains: Vec::new(),
        pending_pre_key: None,
        base_key: message.base_key,
        initiator: false,
    };
    let plaintext = state.decrypt(&message.message, rng)?;
    record.promote(state);
    Ok(PreKeyDecrypted {
        record,
        plaintext,
        used_pre_key_id: message.pre_key_id,
        trust,
    })
}

/// Which state of a record: the current one or the n-th archived one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Current,
    Archived(usize),
}

impl SessionRecord {
    /// An empty record (no session).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a current session exists (so [`encrypt`] can be used).
    pub fn has_current_session(&self) -> bool {
        self.current.is_some()
    }

    /// The peer identity bound to the current session.
    pub fn remote_identity(&self) -> Option<PublicKey> {
        self.current.as_ref().map(|s| s.remote_identity)
    }

    /// The peer's registration id in the current session.
    pub fn remote_registration_id(&self) -> Option<u32> {
        self.current.as_ref().map(|s| s.remote_registration_id)
    }

    /// Whether the current session still sends PreKeySignalMessages (we
    /// initiated it and have not decrypted a reply yet).
    pub fn is_pending_pre_key(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|s| s.pending_pre_key.is_some())
    }

    /// The X3DH base key that names the current session.
    pub fn current_base_key(&self) -> Option<PublicKey> {
        self.current.as_ref().map(|s| s.base_key)
    }

    /// How many archived states are kept.
    pub fn archived_count(&self) -> usize {
        self.archived.len()
    }

    /// Archives the current session (e.g. after a peer's identity change was
    /// accepted, or before a forced re-initiation). Old messages can still be
    /// decrypted with it; [`encrypt`] fails until a new session is built.
    pub fn archive_current_session(&mut self) {
        if let Some(state) = self.current.take() {
            self.push_archived(state);
        }
    }

    /// Makes `state` current, archiving the previous current state.
    fn promote(&mut self, state: SessionState) {
        if let Some(old) = self.current.replace(state) {
            self.push_archived(old);
        }
    }

    fn push_archived(&mut self, state: SessionState) {
        self.archived.insert(0, state);
        self.archived.truncate(MAX_ARCHIVED_STATES);
    }

    fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.current
            .iter()
            .map(|_| Slot::Current)
            .chain((0..self.archived.len()).map(Slot::Archived))
    }

    fn state(&self, slot: Slot) -> &SessionState {
        match slot {
            // `slots()` only yields `Current` when it exists.
            Slot::Current => self
                .current
                .as_ref()
                .expect("slot refers to a present state"),
            Slot::Archived(i) => &self.archived[i],
        }
    }

    fn state_mut(&mut self, slot: Slot) -> &mut SessionState {
        match slot {
            Slot::Current => self
                .current
                .as_mut()
                .expect("slot refers to a present state"),
            Slot::Archived(i) => &mut self.archived[i],
        }
    }

    fn find_responder_session(&self, base_key: &PublicKey, identity: &PublicKey) -> Option<Slot> {
        self.slots().find(|&slot| {
            let s = self.state(slot);
            !s.initiator && s.base_key == *base_key && s.remote_identity == *identity
        })
    }
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("record", &self.record)
            .field("plaintext_len", &self.plaintext.len())
            .finish()
    }
}

impl std::fmt::Debug for PreKeyDecrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreKeyDecrypted")
            .field("record", &self.record)
            .field("plaintext_len", &self.plaintext.len())
            .field("used_pre_key_id", &self.used_pre_key_id)
            .field("trust", &self.trust)
            .finish()
    }
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field(
                "current_base_key",
                &self.current.as_ref().map(|s| s.base_key),
            )
            .field("pending_pre_key", &self.is_pending_pre_key())
            .field("archived", &self.archived.len())
            .finish_non_exhaustive()
    }
}

impl SessionState {
    fn encrypt(&mut self, plaintext: &[u8]) -> Result<CiphertextMessage, SignalError> {
        let (seed, next) = self.sender_chain.chain.step()?;
        let keys = MessageKeys::from_seed(&seed);
        let ciphertext = aes_cbc_encrypt(&keys.cipher_key, &keys.iv, plaintext);
        let (local, remote) = (self.local_identity, self.remote_identity);
        let message = SignalMessage::build(
            &self.sender_chain.ratchet.public,
            self.sender_chain.chain.index,
            self.previous_counter,
            ciphertext,
            |proto| keys.mac(&local, &remote, VERSION_BYTE, proto),
        );
        self.sender_chain.chain = next;
        Ok(match &self.pending_pre_key {
            Some(p) => CiphertextMessage::Pkmsg(PreKeySignalMessage::build(
                self.local_registration_id,
                p.pre_key_id,
                p.signed_pre_key_id,
                &p.base_key,
                &self.local_identity,
                message,
            )),
            None => CiphertextMessage::Msg(message),
        })
    }

    /// Decrypts one message, advancing this state. Callers work on a copy.
    fn decrypt<R: CryptoRng + ?Sized>(
        &mut self,
        msg: &SignalMessage,
        rng: &mut R,
    ) -> Result<Vec<u8>, SignalError> {
        let chain = match self
            .receiver_chains
            .iter()
            .position(|c| c.ratchet_key == msg.ratchet_key)
        {
            Some(i) => i,
            None => {
                self.dh_ratchet(&msg.ratchet_key, rng)?;
                self.receiver_chains.len() - 1
            }
        };
        let seed = self.receiver_chains[chain].take_seed(msg.counter)?;
        let keys = MessageKeys::from_seed(&seed);
        let mac = keys.mac(
            &self.remote_identity,
            &self.local_identity,
            VERSION_BYTE,
            msg.proto_bytes(),
        );
        if !macs_equal(&mac, msg.mac()) {
            return Err(SignalError::BadMac);
        }
        let plaintext = aes_cbc_decrypt(&keys.cipher_key, &keys.iv, &msg.ciphertext)?;
        // An authenticated message from the peer proves it has the session:
        // stop wrapping our messages in PreKeySignalMessages.
        self.pending_pre_key = None;
        Ok(plaintext)
    }

    /// The Double Ratchet's DH step on a new peer ratchet key
    /// (<https://signal.org/docs/specifications/doubleratchet/>, §3.5 `DHRatchet`):
    ///
    /// > state.RK, state.CKr = KDF_RK(state.RK, DH(state.DHs, state.DHr))
    /// > state.DHs = GENERATE_DH()
    /// > state.RK, state.CKs = KDF_RK(state.RK, DH(state.DHs, state.DHr))
    ///
    /// `KDF_RK` is `HKDF(dh, salt = RK, "WhisperRatchet", 64)`. Unlike the
    /// spec, the previous receiving chain keeps its chain key (up to
    /// [`MAX_RECEIVER_CHAINS`] chains), so late messages from it still decrypt
    /// without trusting the peer's `previous_counter`.
    fn dh_ratchet<R: CryptoRng + ?Sized>(
        &mut self,
        their: &PublicKey,
        rng: &mut R,
    ) -> Result<(), SignalError> {
        let (root, receiving) =
            ratchet_step(&self.root_key, &self.sender_chain.ratchet.private, their)?;
        let ratchet = KeyPair::generate(rng);
        let (root, sending) = ratchet_step(&root, &ratchet.private, their)?;
        self.receiver_chains.push(ReceiverChain {
            ratchet_key: *their,
            chain: ChainKey {
                index: 0,
                key: receiving,
            },
            skipped: VecDeque::new(),
        });
        if self.receiver_chains.len() > MAX_RECEIVER_CHAINS {
            self.receiver_chains.remove(0);
        }
        self.previous_counter = self.sender_chain.chain.index.saturating_sub(1);
        self.sender_chain = SenderChain {
            ratchet,
            chain: ChainKey {
                index: 0,
                key: sending,
            },
        };
        self.root_key = root;
        Ok(())
    }
}

impl ReceiverChain {
    /// The message-key seed for `counter`, storing the keys it skips.
    ///
    /// > [MAX_SKIP] should be set high enough to tolerate routine lost or
    /// > delayed messages, but low enough that a malicious sender can't
    /// > trigger excessive recipient computation. (Double Ratchet §3.2)
    fn take_seed(&mut self, counter: u32) -> Result<Secret32, SignalError> {
        if counter < self.chain.index {
            return take_skipped(&mut self.skipped, counter);
        }
        let jump = counter - self.chain.index;
        if jump > MAX_FORWARD_JUMP {
            return Err(SignalError::TooManySkippedKeys {
                jump,
                max: MAX_FORWARD_JUMP,
            });
        }
        let (seed, next) = advance(&self.chain, counter, &mut self.skipped)?;
        self.chain = next;
        Ok(seed)
    }
}

/// Removes and returns the stored key for `counter`, or reports a duplicate.
pub(crate) fn take_skipped(
    skipped: &mut VecDeque<SkippedKey>,
    counter: u32,
) -> Result<Secret32, SignalError> {
    let pos = skipped
        .iter()
        .position(|k| k.index == counter)
        .ok_or(SignalError::DuplicateMessage { counter })?;
    Ok(skipped
        .remove(pos)
        .expect("position() returned an index inside the deque")
        .seed)
}

/// Steps `chain` up to `target` (≥ `chain.index`), storing each skipped key
/// (evicting the oldest beyond [`MAX_SKIPPED_KEYS_PER_CHAIN`]), and returns the
/// seed for `target` and the chain key after it.
pub(crate) fn advance(
    chain: &ChainKey,
    target: u32,
    skipped: &mut VecDeque<SkippedKey>,
) -> Result<(Secret32, ChainKey), SignalError> {
    let mut chain = chain.clone();
    while chain.index < target {
        let (seed, next) = chain.step()?;
        skipped.push_back(SkippedKey {
            index: chain.index,
            seed,
        });
        if skipped.len() > MAX_SKIPPED_KEYS_PER_CHAIN {
            skipped.pop_front();
        }
        chain = next;
    }
    chain.step()
}
