//! Value types the store traits take and return.
//!
//! Signal records (sessions, prekeys, sender keys) are opaque bytes produced by the protocol
//! crate; the store never interprets them. Secret-bearing values are returned as [`Secret`]
//! (zeroized on drop) and no type here prints key material or plaintext through `Debug`.

use std::fmt;
use std::ops::{Deref, DerefMut};

use zeroize::{Zeroize as _, Zeroizing};

use crate::error::StoreError;

/// Bytes that are wiped from memory when dropped (the spare capacity too). Every value read
/// back from the store is one. `Debug` prints only the length.
///
/// (Unlike `Zeroizing<Vec<u8>>`, which wipes a `Vec` byte by byte with volatile writes, this
/// wipes with one bulk fill: it matters for 1-2 KiB session records on the hot path.)
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub(crate) fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    pub(crate) fn extend_from_slice(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    pub(crate) fn push(&mut self, b: u8) {
        self.0.push(b);
    }

    /// Drops the first `n` bytes in place (the vacated tail stays in the spare capacity, which
    /// is wiped on drop).
    pub(crate) fn strip_front(&mut self, n: usize) {
        self.0.copy_within(n.., 0);
        let len = self.0.len() - n;
        self.0[len..].zeroize();
        self.0.truncate(len);
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.as_mut_slice().zeroize();
        self.0.spare_capacity_mut().zeroize();
    }
}

impl Deref for Secret {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for Secret {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl AsRef<[u8]> for Secret {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Secret {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl From<&[u8]> for Secret {
    fn from(v: &[u8]) -> Self {
        Self(v.to_vec())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// A Signal protocol address: a user (phone number or LID user part) and a device number.
///
/// Its text form is `name.device`, the form whatsmeow persists (e.g. `15551234567.0`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignalAddress {
    /// The user part: a phone number or a LID, without server.
    pub name: String,
    /// The device number (0 is the primary phone).
    pub device: u32,
}

impl SignalAddress {
    /// An address from its parts.
    pub fn new(name: impl Into<String>, device: u32) -> Self {
        Self {
            name: name.into(),
            device,
        }
    }

    /// Parses `name.device`, splitting at the last dot.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        let (name, device) = s.rsplit_once('.').ok_or(StoreError::InvalidInput(
            "signal address must be `name.device`",
        ))?;
        if name.is_empty() {
            return Err(StoreError::InvalidInput("signal address has an empty name"));
        }
        let device = device
            .parse()
            .map_err(|_| StoreError::InvalidInput("signal address device is not a number"))?;
        Ok(Self::new(name, device))
    }
}

impl fmt::Display for SignalAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.name, self.device)
    }
}

// Addresses contain phone numbers: keep them out of debug logs.
impl fmt::Debug for SignalAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalAddress(<redacted>.{})", self.device)
    }
}

/// This device's long-lived credentials, stored as one record per account.
///
/// Private keys are the raw 32-byte Curve25519 scalars; the session engine derives the public
/// halves. `Debug` prints only which optional fields are present.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCredentials {
    /// The Noise static private key.
    pub noise_key: Zeroizing<[u8; 32]>,
    /// The Signal identity private key.
    pub identity_key: Zeroizing<[u8; 32]>,
    /// The Signal registration id.
    pub registration_id: u32,
    /// The ADV secret shared with the phone at pairing.
    pub adv_secret: Zeroizing<[u8; 32]>,
    /// The serialized ADV signed device identity (account signature etc.), once paired.
    pub account: Option<Secret>,
    /// Our own JID (`user:device@s.whatsapp.net`), once paired.
    pub jid: Option<String>,
    /// Our own LID (`user:device@lid`), once known.
    pub lid: Option<String>,
    /// The push name.
    pub push_name: String,
    /// The platform string reported by the server after pairing.
    pub platform: String,
}

impl fmt::Debug for DeviceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCredentials")
            .field("keys", &"<redacted>")
            .field("registration_id", &self.registration_id)
            .field("paired", &self.account.is_some())
            .field("has_jid", &self.jid.is_some())
            .field("has_lid", &self.lid.is_some())
            .finish_non_exhaustive()
    }
}

/// A cached device list of one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceList {
    /// The user's device numbers.
    pub devices: Vec<u32>,
    /// When the list was fetched, milliseconds since the Unix epoch (caller's clock).
    pub fetched_at_ms: u64,
}

/// One one-time prekey record.
#[derive(Clone, PartialEq, Eq)]
pub struct PreKey {
    /// The prekey id (below 2^24).
    pub id: u32,
    /// The serialized prekey record (opaque).
    pub record: Secret,
    /// Whether it was marked uploaded to the server.
    pub uploaded: bool,
}

impl fmt::Debug for PreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreKey")
            .field("id", &self.id)
            .field("uploaded", &self.uploaded)
            .finish_non_exhaustive()
    }
}

/// The persistent queues of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Pending sends: written before the send, acknowledged after the server acked.
    Outbox,
    /// Decrypted incoming messages not yet delivered to plugins, written in the same transaction
    /// as the ratchet state and the dedupe id, before the receipt is sent.
    Inbound,
}

impl Queue {
    pub(crate) fn tag(self) -> u8 {
        match self {
            Queue::Outbox => 1,
            Queue::Inbound => 2,
        }
    }
}

/// An entry of a [`Queue`].
#[derive(Clone, PartialEq, Eq)]
pub struct QueueItem {
    /// The entry's id: unique within the queue for the account's lifetime and increasing in
    /// queue order. A requeue gives the entry a new id.
    pub id: u64,
    /// How many times the entry was requeued.
    pub attempts: u32,
    /// The payload (opaque).
    pub payload: Secret,
}

impl fmt::Debug for QueueItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueItem")
            .field("id", &self.id)
            .field("attempts", &self.attempts)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Bounds of the dedupe set and the recent-sent buffer. Runtime settings, not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most message ids remembered by the dedupe set per account.
    pub dedupe_capacity: u64,
    /// Dedupe ids older than this (relative to the `now_ms` of a later `mark_seen`) are dropped.
    pub dedupe_max_age_ms: u64,
    /// Most sent messages kept for retry receipts per account.
    pub recent_sent_capacity: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            dedupe_capacity: 50_000,
            dedupe_max_age_ms: 14 * 24 * 3600 * 1000,
            recent_sent_capacity: 1_000,
        }
    }
}
