//! Serialization of [`SessionRecord`] and [`SenderKeyRecord`] to our own
//! protobuf record format (`proto/proto/signal_records.proto`, messages
//! `signal.RecordSession` and `signal.RecordSenderKey`).
//!
//! Loading validates everything a later operation relies on (key lengths,
//! bounds, presence of required fields) so a corrupt record fails here with
//! [`SignalError::InvalidRecord`], never later with a panic. Intermediate
//! protobuf buffers that held secrets are wiped.

use std::collections::VecDeque;

use prost::Message as _;
use prost::bytes::Bytes;
use wasmeow_proto::signal as pb;
use zeroize::Zeroize;

use super::crypto::{ChainKey, Secret32};
use super::group::{SenderKeyRecord, SenderKeyState};
use super::session::{
    PendingPreKey, ReceiverChain, SESSION_VERSION, SenderChain, SessionRecord, SessionState,
    SkippedKey,
};
use super::{
    MAX_ARCHIVED_STATES, MAX_RECEIVER_CHAINS, MAX_SENDER_KEY_STATES, MAX_SKIPPED_KEYS_PER_CHAIN,
    SignalError,
};
use crate::keys::{KeyPair, PrivateKey, PublicKey};

/// The record format version written by this code.
pub const RECORD_FORMAT: u32 = 1;

/// Zeroizes a `Bytes` buffer that held secret material, when we own it uniquely
/// (always the case for buffers we created or that prost decoded by copying).
pub(crate) fn wipe(b: Bytes) {
    if let Ok(mut m) = b.try_into_mut() {
        m.as_mut().zeroize();
    }
}

fn secret_bytes(s: &Secret32) -> Bytes {
    Bytes::copy_from_slice(&s.0)
}

fn private_bytes(k: &PrivateKey) -> Bytes {
    let mut raw = k.to_bytes();
    let b = Bytes::copy_from_slice(&raw);
    raw.zeroize();
    b
}

fn public_bytes(k: &PublicKey) -> Bytes {
    Bytes::copy_from_slice(k.as_bytes())
}

type R<T> = Result<T, SignalError>;

fn bad(reason: &'static str) -> SignalError {
    SignalError::InvalidRecord(reason)
}

fn read_public(b: Option<Bytes>, what: &'static str) -> R<PublicKey> {
    let b = b.ok_or(bad(what))?;
    PublicKey::from_slice(&b).map_err(|_| bad(what))
}

fn read_secret(b: Option<Bytes>, what: &'static str) -> R<Secret32> {
    let b = b.ok_or(bad(what))?;
    let s = Secret32::from_slice(&b).ok_or(bad(what));
    wipe(b);
    s
}

fn read_private(b: Option<Bytes>, what: &'static str) -> R<PrivateKey> {
    let mut s = read_secret(b, what)?;
    let k = PrivateKey::from_bytes(s.0);
    s.0.zeroize();
    Ok(k)
}

// --- chain keys and skipped keys ----------------------------------------------

fn chain_to_pb(c: &ChainKey) -> pb::RecordChainKey {
    pb::RecordChainKey {
        index: Some(c.index),
        key: Some(secret_bytes(&c.key)),
    }
}

fn chain_from_pb(c: Option<pb::RecordChainKey>) -> R<ChainKey> {
    let c = c.ok_or(bad("chain key"))?;
    Ok(ChainKey {
        index: c.index.ok_or(bad("chain index"))?,
        key: read_secret(c.key, "chain key bytes")?,
    })
}

fn wipe_chain(c: &mut Option<pb::RecordChainKey>) {
    if let Some(k) = c.as_mut().and_then(|c| c.key.take()) {
        wipe(k);
    }
}

fn skipped_to_pb(s: &VecDeque<SkippedKey>) -> Vec<pb::RecordMessageKey> {
    s.iter()
        .map(|k| pb::RecordMessageKey {
            index: Some(k.index),
            seed: Some(secret_bytes(&k.seed)),
        })
        .collect()
}

fn skipped_from_pb(v: Vec<pb::RecordMessageKey>, next_index: u32) -> R<VecDeque<SkippedKey>> {
    if v.len() > MAX_SKIPPED_KEYS_PER_CHAIN {
        return Err(bad("too many skipped keys"));
    }
    let mut out = VecDeque::with_capacity(v.len());
    for k in v {
        let index = k.index.ok_or(bad("skipped key index"))?;
        if index >= next_index {
            return Err(bad("skipped key ahead of its chain"));
        }
        out.push_back(SkippedKey {
            index,
            seed: read_secret(k.seed, "skipped key seed")?,
        });
    }
    Ok(out)
}

fn wipe_skipped(v: &mut [pb::RecordMessageKey]) {
    for k in v {
        if let Some(s) = k.seed.take() {
            wipe(s);
        }
    }
}

// --- sessions --------------------------------------------------------------------

fn state_to_pb(s: &SessionState) -> pb::RecordSessionState {
    pb::RecordSessionState {
        version: Some(SESSION_VERSION),
        local_identity: Some(public_bytes(&s.local_identity)),
        remote_identity: Some(public_bytes(&s.remote_identity)),
        local_registration_id: Some(s.local_registration_id),
        remote_registration_id: Some(s.remote_registration_id),
        root_key: Some(secret_bytes(&s.root_key)),
        previous_counter: Some(s.previous_counter),
        sender_chain: Some(pb::RecordSenderChain {
            ratchet_public: Some(public_bytes(&s.sender_chain.ratchet.public)),
            ratchet_private: Some(private_bytes(&s.sender_chain.ratchet.private)),
            chain_key: Some(chain_to_pb(&s.sender_chain.chain)),
        }),
        receiver_chains: s
            .receiver_chains
            .iter()
            .map(|c| pb::RecordReceiverChain {
                ratchet_public: Some(public_bytes(&c.ratchet_key)),
                chain_key: Some(chain_to_pb(&c.chain)),
                skipped_keys: skipped_to_pb(&c.skipped),
            })
            .collect(),
        pending_pre_key: s.pending_pre_key.as_ref().map(|p| pb::RecordPendingPreKey {
            pre_key_id: p.pre_key_id,
            signed_pre_key_id: Some(p.signed_pre_key_id),
            base_key: Some(public_bytes(&p.base_key)),
        }),
        base_key: Some(public_bytes(&s.base_key)),
        initiator: Some(s.initiator),
    }
}

fn wipe_state_pb(s: &mut pb::RecordSessionState) {
    if let Some(k) = s.root_key.take() {
        wipe(k);
    }
    if let Some(c) = s.sender_chain.as_mut() {
        if let Some(k) = c.ratchet_private.take() {
            wipe(k);
        }
        wipe_chain(&mut c.chain_key);
    }
    for c in &mut s.receiver_chains {
        wipe_chain(&mut c.chain_key);
        wipe_skipped(&mut c.skipped_keys);
    }
}

fn state_from_pb(mut s: pb::RecordSessionState) -> R<SessionState> {
    let result = state_from_pb_inner(&mut s);
    wipe_state_pb(&mut s);
    result
}

fn state_from_pb_inner(s: &mut pb::RecordSessionState) -> R<SessionState> {
    if s.version != Some(SESSION_VERSION) {
        return Err(bad("session version"));
    }
    let sender = s.sender_chain.take().ok_or(bad("sender chain"))?;
    let ratchet_public = read_public(sender.ratchet_public, "sender ratchet public")?;
    // The pair is not re-derived (a scalar multiplication per state per load);
    // the store authenticates what it returns, and a mismatched pair could only
    // make later MACs fail, never panic.
    let ratchet_private = read_private(sender.ratchet_private, "sender ratchet private")?;
    let sender_chain = SenderChain {
        ratchet: KeyPair {
            private: ratchet_private,
            public: ratchet_public,
        },
        chain: chain_from_pb(sender.chain_key)?,
    };
    if s.receiver_chains.len() > MAX_RECEIVER_CHAINS {
        return Err(bad("too many receiver chains"));
    }
    let mut receiver_chains = Vec::with_capacity(s.receiver_chains.len());
    for c in std::mem::take(&mut s.receiver_chains) {
        let chain = chain_from_pb(c.chain_key)?;
        receiver_chains.push(ReceiverChain {
            ratchet_key: read_public(c.ratchet_public, "receiver ratchet key")?,
            skipped: skipped_from_pb(c.skipped_keys, chain.index)?,
            chain,
        });
    }
    let pending_pre_key = match s.pending_pre_key.take() {
        None => None,
        Some(p) => Some(PendingPreKey {
            pre_key_id: p.pre_key_id,
            signed_pre_key_id: p.signed_pre_key_id.ok_or(bad("pending signed prekey id"))?,
            base_key: read_public(p.base_key, "pending base key")?,
        }),
    };
    Ok(SessionState {
        local_identity: read_public(s.local_identity.take(), "local identity")?,
        remote_identity: read_public(s.remote_identity.take(), "remote identity")?,
        local_registration_id: s
            .local_registration_id
            .ok_or(bad("local registration id"))?,
        remote_registration_id: s
            .remote_registration_id
            .ok_or(bad("remote registration id"))?,
        root_key: read_secret(s.root_key.take(), "root key")?,
        previous_counter: s.previous_counter.unwrap_or(0),
        sender_chain,
        receiver_chains,
        pending_pre_key,
        base_key: read_public(s.base_key.take(), "base key")?,
        initiator: s.initiator.ok_or(bad("initiator flag"))?,
    })
}

impl SessionRecord {
    /// Serializes to our `signal.RecordSession` protobuf. The bytes contain
    /// private keys: keep them encrypted at rest.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = pb::RecordSession {
            format: Some(RECORD_FORMAT),
            current: self.current.as_ref().map(state_to_pb),
            archived: self.archived.iter().map(state_to_pb).collect(),
        };
        let out = p.encode_to_vec();
        if let Some(s) = p.current.as_mut() {
            wipe_state_pb(s);
        }
        for s in &mut p.archived {
            wipe_state_pb(s);
        }
        out
    }

    /// Loads a record written by [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SignalError> {
        let p = pb::RecordSession::decode(bytes).map_err(|_| bad("not a RecordSession"))?;
        if p.format != Some(RECORD_FORMAT) {
            // Wipe whatever was decoded before reporting.
            drop_session_pb(p);
            return Err(bad("unknown record format"));
        }
        if p.archived.len() > MAX_ARCHIVED_STATES {
            drop_session_pb(p);
            return Err(bad("too many archived states"));
        }
        let mut states = Vec::with_capacity(p.archived.len());
        let mut first_err = None;
        let current = match p.current {
            Some(s) => match state_from_pb(s) {
                Ok(s) => Some(s),
                Err(e) => {
                    first_err = Some(e);
                    None
                }
            },
            None => None,
        };
        for s in p.archived {
            // Keep converting (and wiping) the rest even after an error.
            match state_from_pb(s) {
                Ok(s) => states.push(s),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(Self {
                current,
                archived: states,
            }),
        }
    }
}

fn drop_session_pb(mut p: pb::RecordSession) {
    if let Some(s) = p.current.as_mut() {
        wipe_state_pb(s);
    }
    for s in &mut p.archived {
        wipe_state_pb(s);
    }
}

// --- sender keys -----------------------------------------------------------------

fn sender_state_to_pb(s: &SenderKeyState) -> pb::RecordSenderKeyState {
    pb::RecordSenderKeyState {
        key_id: Some(s.key_id),
        chain_key: Some(chain_to_pb(&s.chain)),
        signing_public: Some(public_bytes(&s.signing_public)),
        signing_private: s.signing_private.as_ref().map(private_bytes),
        skipped_keys: skipped_to_pb(&s.skipped),
    }
}

fn wipe_sender_state_pb(s: &mut pb::RecordSenderKeyState) {
    wipe_chain(&mut s.chain_key);
    if let Some(k) = s.signing_private.take() {
        wipe(k);
    }
    wipe_skipped(&mut s.skipped_keys);
}

fn sender_state_from_pb(mut s: pb::RecordSenderKeyState) -> R<SenderKeyState> {
    let result = (|| {
        let chain = chain_from_pb(s.chain_key.take())?;
        let signing_public = read_public(s.signing_public.take(), "signing public")?;
        let signing_private = match s.signing_private.take() {
            None => None,
            Some(b) => Some(read_private(Some(b), "signing private")?),
        };
        Ok(SenderKeyState {
            key_id: s.key_id.ok_or(bad("sender key id"))?,
            skipped: skipped_from_pb(std::mem::take(&mut s.skipped_keys), chain.index)?,
            chain,
            signing_public,
            signing_private,
        })
    })();
    wipe_sender_state_pb(&mut s);
    result
}

impl SenderKeyRecord {
    /// Serializes to our `signal.RecordSenderKey` protobuf. The bytes contain
    /// secret keys: keep them encrypted at rest.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = pb::RecordSenderKey {
            format: Some(RECORD_FORMAT),
            states: self.states.iter().map(sender_state_to_pb).collect(),
        };
        let out = p.encode_to_vec();
        for s in &mut p.states {
            wipe_sender_state_pb(s);
        }
        out
    }

    /// Loads a record written by [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SignalError> {
        let mut p = pb::RecordSenderKey::decode(bytes).map_err(|_| bad("not a RecordSenderKey"))?;
        if p.format != Some(RECORD_FORMAT) || p.states.len() > MAX_SENDER_KEY_STATES {
            for s in &mut p.states {
                wipe_sender_state_pb(s);
            }
            return Err(bad(if p.format != Some(RECORD_FORMAT) {
                "unknown record format"
            } else {
                "too many sender key states"
            }));
        }
        let mut states = Vec::with_capacity(p.states.len());
        let mut first_err = None;
        for s in p.states {
            match sender_state_from_pb(s) {
                Ok(s) => states.push(s),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(Self { states }),
        }
    }
}
