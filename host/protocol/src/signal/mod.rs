//! The Signal protocol as WhatsApp peers speak it: X3DH session setup, the
//! Double Ratchet for 1:1 messages, sender keys for groups, and WhatsApp's
//! plaintext padding. Clean-room, from the public specifications
//! (<https://signal.org/docs/specifications/x3dh/>,
//! <https://signal.org/docs/specifications/doubleratchet/>,
//! <https://signal.org/docs/specifications/xeddsa/>), byte-compatible with
//! libsignal-node 6.0.0 and Baileys (checked by `tests/interop/signal*.test.mjs`
//! and the recorded vectors in `host/protocol/testdata/signal-*.json`).
//!
//! # Contract
//!
//! Everything here is a **pure operation over serializable records**: no store,
//! no clock, no IO. Randomness comes in as `&mut impl CryptoRng`.
//!
//! - [`SessionRecord`] holds every session state with one peer device (current
//!   plus up to [`MAX_ARCHIVED_STATES`] archived); [`SenderKeyRecord`] holds the
//!   sender-key states of one (group, sender). Both serialize with `to_bytes` /
//!   `from_bytes` to our own protobuf (`proto/proto/signal_records.proto`); the
//!   store keeps the bytes opaque (and encrypted: they contain private keys).
//! - **Decryption never mutates the caller's record.** It works on a copy and
//!   returns the new record with the plaintext, so the session engine commits
//!   "ratchet state + message" in one transaction. On any error nothing changed.
//!   Encryption takes `&mut` and advances only after every fallible step.
//! - Identity trust is the caller's decision: functions that meet a peer
//!   identity take the identity the caller trusts (`None` = unknown) and return
//!   [`IdentityTrust::FirstUse`] (store it) or fail with
//!   [`SignalError::UntrustedIdentity`] when it changed. Nothing is silently accepted.
//! - Secrets (private keys, root/chain/message keys) zeroize on drop and never
//!   appear in `Debug` output.
//!
//! # Session setup and the Double Ratchet
//!
//! ```text
//!   Bob publishes a bundle: IK_B, SPK_B + Sig(IK_B, 0x05‖SPK_B), [OPK_B], reg id
//!
//!   Alice  session::initiate(bundle)                       Bob
//!     verify Sig (abort on failure)
//!     EK_A, R_A ← rng
//!     root ← HKDF(0xFF*32‖DH(IK_A,SPK_B)‖DH(EK_A,IK_B)‖DH(EK_A,SPK_B)[‖DH(EK_A,OPK_B)],
//!                 salt 0*32, "WhisperText")
//!     root, CKs ← HKDF(DH(R_A,SPK_B), salt root, "WhisperRatchet")
//!
//!     session::encrypt ──── pkmsg{reg, [opk id], spk id, EK_A, IK_A, msg(R_A, n, pn, c, mac)} ──►
//!       (every message is a pkmsg until Alice          session::decrypt_prekey_message
//!        decrypts a reply: "pending prekey")              same X3DH from Bob's side → root, CK
//!                                                         DH ratchet on R_A (new R_B)
//!                                                         returns used_pre_key_id: delete OPK_B
//!     ◄───────────────────────────── msg(R_B, 0, pn, c, mac) ──────── session::encrypt
//!   session::decrypt_message: DH ratchet on R_B, pending cleared; both sides now send `msg`.
//!
//!   Per message:  seed = HMAC(CK, 0x01),  CK' = HMAC(CK, 0x02)
//!                 cipher key ‖ MAC key ‖ IV = HKDF(seed, salt 0*32, "WhisperMessageKeys", 80)
//!                 c = AES-256-CBC-PKCS#7(cipher key, IV, plaintext)
//!                 mac = HMAC-SHA256(MAC key, IK_sender(33) ‖ IK_receiver(33) ‖ 0x33 ‖ proto)[..8]
//! ```
//!
//! X3DH §2.2, as implemented in `crypto::derive_master`:
//!
//! > HKDF input key material = F || KM, where KM is an input byte sequence
//! > containing secret key material, and F is a byte sequence containing 32
//! > 0xFF bytes if curve is X25519 [...] HKDF salt = A zero-filled byte sequence
//! > with length equal to the hash output length.
//!
//! # Decisions worth knowing
//!
//! - **Receiving chains keep their chain key** (up to [`MAX_RECEIVER_CHAINS`]),
//!   as libsignal's Java/Rust ports do, instead of closing the previous chain at
//!   the sender's `previous_counter`; late messages from recent chains decrypt
//!   without trusting that field. We *send* `previous_counter = max(last
//!   counter sent on the previous chain, 0)`, which is what libsignal(-node)
//!   and whatsmeow send and expect.
//! - **Archived states are tried but not promoted.** A message that decrypts
//!   with an archived state updates that state in place; we keep encrypting on
//!   the current session, because a peer that re-initiated has usually lost the
//!   old one. (libsignal-node behaves the same; Java libsignal promotes.)
//! - **Decryption trials never leak into state.** libsignal-node keeps the DH
//!   ratchet step of a failed trial on another session (which corrupts its new
//!   session when an old-session message arrives late); we work on copies.
//! - **Strict where the JS peers are lenient:** the signed-prekey signature is
//!   verified on `initiate`; version bytes must be exactly `0x33`; a
//!   PreKeySignalMessage must carry its registration id; padding removal
//!   checks every pad byte; an all-zero X25519 result is rejected.
//!
//! # Bounds
//!
//! | constant | value | what happens beyond it |
//! |---|---|---|
//! | [`MAX_FORWARD_JUMP`] | 2,000 | a message further ahead in its chain fails with `TooManySkippedKeys` |
//! | [`MAX_SKIPPED_KEYS_PER_CHAIN`] | 2,000 | the oldest stored skipped key is evicted |
//! | [`MAX_RECEIVER_CHAINS`] | 5 | the oldest receiving chain (and its skipped keys) is dropped |
//! | [`MAX_ARCHIVED_STATES`] | 40 | the oldest archived session state is dropped |
//! | [`MAX_SENDER_KEY_STATES`] | 5 | the oldest sender-key state is dropped |
//! | [`MAX_MESSAGE_LEN`] | 1 MiB | the message is rejected with `MessageTooLong` |
//!
//! # Example
//!
//! ```
//! use rand::SeedableRng as _;
//! use wasmeow_protocol::signal::{
//!     self, CiphertextMessage, IdentityTrust, LocalIdentity, PreKey, PreKeySignalMessage,
//!     PreKeys, SessionRecord, SignedPreKey, padding, session,
//! };
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! let alice = LocalIdentity::generate(&mut rng);
//! let bob = LocalIdentity::generate(&mut rng);
//! let bob_spk = SignedPreKey::generate(&bob.key_pair, 1, &mut rng);
//! let bob_opk = PreKey::generate(31, &mut rng);
//! let bundle = bob.bundle(0, &bob_spk, Some(&bob_opk));
//!
//! // Alice starts a session from Bob's bundle (she has never seen his identity).
//! let init = session::initiate(None, &alice, &bundle, None, &mut rng)?;
//! assert_eq!(init.trust, IdentityTrust::FirstUse);
//! let mut alice_record = init.record;
//! let first = session::encrypt(&mut alice_record, &padding::pad(b"hi Bob", &mut rng))?;
//! assert_eq!(first.enc_type(), "pkmsg");
//!
//! // Bob parses the pkmsg, looks up the prekeys it names, and decrypts.
//! let pkmsg = PreKeySignalMessage::parse(first.as_bytes())?;
//! assert_eq!(pkmsg.pre_key_id(), Some(31));
//! let keys = PreKeys { signed: Some(&bob_spk), one_time: Some(&bob_opk) };
//! let got = session::decrypt_prekey_message(None, &bob, keys, None, &pkmsg, &mut rng)?;
//! assert_eq!(padding::unpad(&got.plaintext)?, b"hi Bob");
//! assert_eq!(got.used_pre_key_id, Some(31)); // delete it in the same transaction
//! let mut bob_record = got.record;
//!
//! // Bob replies; once Alice decrypts it she stops sending pkmsg.
//! let reply = session::encrypt(&mut bob_record, b"hello Alice")?;
//! let CiphertextMessage::Msg(reply) = reply else { unreachable!() };
//! let got = session::decrypt_message(&alice_record, &reply, &mut rng)?;
//! assert_eq!(got.plaintext, b"hello Alice");
//! alice_record = got.record;
//! assert_eq!(session::encrypt(&mut alice_record, b"ok")?.enc_type(), "msg");
//!
//! // Records round-trip through bytes for the store.
//! let stored = SessionRecord::from_bytes(&alice_record.to_bytes())?;
//! assert_eq!(stored.to_bytes(), alice_record.to_bytes());
//!
//! // A replayed message is refused, and the record passed in is untouched.
//! let before = alice_record.to_bytes();
//! let again = session::decrypt_message(&alice_record, &reply, &mut rng);
//! assert!(matches!(again, Err(signal::SignalError::DuplicateMessage { counter: 0 })));
//! assert_eq!(alice_record.to_bytes(), before);
//! # Ok::<(), signal::SignalError>(())
//! ```
//!
//! Groups: [`group::create_sender_key`], [`group::distribution_message`] (sent
//! to each member inside a 1:1 message), [`group::process_distribution_message`],
//! [`group::encrypt`] and [`group::decrypt`].

mod crypto;
mod error;
pub mod group;
mod identity;
pub mod padding;
mod records;
pub mod session;
mod wire;

#[cfg(test)]
mod tests;

pub use error::SignalError;
pub use group::{GroupDecrypted, SenderKeyRecord};
pub use identity::{
    IdentityTrust, LocalIdentity, PreKey, PreKeyBundle, PreKeyPublic, SignedPreKey, check_identity,
    generate_registration_id, verify_signed_pre_key,
};
pub use records::RECORD_FORMAT;
pub use session::{Decrypted, Initiated, PreKeyDecrypted, PreKeys, SessionRecord};
pub use wire::{
    CiphertextMessage, PreKeySignalMessage, SenderKeyDistributionMessage, SenderKeyMessage,
    SignalMessage, VERSION_BYTE,
};

/// The furthest a message may be ahead of its chain (keys skipped in one go),
/// for 1:1 chains and sender-key chains alike (whatsmeow and libsignal-node: 2,000).
pub const MAX_FORWARD_JUMP: u32 = 2000;

/// Skipped message keys kept per chain for out-of-order delivery; the oldest is
/// evicted beyond this (libsignal: 2,000).
pub const MAX_SKIPPED_KEYS_PER_CHAIN: usize = 2000;

/// Receiving chains kept per session state (libsignal: 5). Late messages from
/// older chains fail to decrypt.
pub const MAX_RECEIVER_CHAINS: usize = 5;

/// Archived session states kept per peer device (libsignal: 40).
pub const MAX_ARCHIVED_STATES: usize = 40;

/// Sender-key states kept per (group, sender) (libsignal and Baileys: 5).
pub const MAX_SENDER_KEY_STATES: usize = 5;

/// The largest serialized Signal message we parse. WhatsApp text is capped far
/// below this; the bound keeps hostile input from costing unbounded work.
pub const MAX_MESSAGE_LEN: usize = 1 << 20;
