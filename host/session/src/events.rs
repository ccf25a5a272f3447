//! The typed events a session emits: the one vocabulary the plugin host (and through WIT,
//! every plugin) sees.
//!
//! Contract: every type here is plain data — strings, numbers, booleans, byte vectors and
//! nested plain types — and implements `serde::Serialize` (and `Deserialize`, so tests and
//! tools can read event logs back). JIDs are their string form (`user[:device]@server`).
//! Timestamps are unix seconds. No event carries key material or a handle into the session.

use serde::{Deserialize, Serialize};

use crate::content::MessageContent;

/// Everything a session reports.
// Events are moved once through a channel; boxing the message variant would only make the
// plain-data API clumsier for plugins.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// Connection lifecycle: QR codes, pairing, login, logout, bans, disconnects.
    Connection(ConnectionEvent),
    /// A decrypted incoming message (or one of our own, sent from another of our devices).
    Message(MessageEvent),
    /// An incoming receipt (delivered, read, played, …).
    Receipt(ReceiptEvent),
    /// A group changed (w:gp2 notification), or we were added to one.
    Group(GroupEvent),
    /// A contact's availability.
    Presence(PresenceEvent),
    /// A contact is typing / recording / stopped.
    ChatState(ChatStateEvent),
    /// A message arrived that could not be decrypted; a retry receipt was sent.
    Undecryptable(UndecryptableEvent),
    /// A contact's identity key changed (new phone / reinstall).
    IdentityChange(IdentityChangeEvent),
    /// The final outcome of a message we sent through the outbox.
    SendResult(SendResultEvent),
}

/// Connection lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionEvent {
    /// Opening the WebSocket and running the Noise handshake.
    Connecting,
    /// A QR code to show: scan it with the phone (Linked devices → Link a device).
    Qr {
        /// The full string to encode in the QR code.
        code: String,
        /// How long this code stays valid, in seconds.
        valid_for_secs: u64,
    },
    /// A pairing code to type on the phone (the phone-number flow), shown as `XXXX-XXXX`.
    PairCode {
        /// The code.
        code: String,
    },
    /// The phone linked this device; a reconnect with the new credentials follows.
    Paired {
        /// Our device JID.
        jid: String,
        /// Our LID device JID, if the server gave one.
        lid: Option<String>,
        /// The platform the server reports for the phone.
        platform: String,
        /// The business name, for business accounts.
        business_name: Option<String>,
    },
    /// Pairing was attempted but failed (bad signature, wrong QR…); the QR flow continues.
    PairError {
        /// What failed.
        reason: String,
    },
    /// The QR codes ran out without a scan.
    QrTimeout,
    /// Logged in and ready: prekeys are uploaded and the session is active.
    Connected,
    /// The server logged this device out (unlinked from the phone, or `401`). Credentials
    /// were wiped; pairing again is required.
    LoggedOut {
        /// The failure reason / stream error code.
        reason: String,
    },
    /// Another connection with the same credentials took over (`<conflict type="replaced"/>`,
    /// reported as 440). The session does not reconnect by itself.
    StreamReplaced,
    /// The account is temporarily banned.
    TemporaryBan {
        /// The ban code (101 too many people, 102 blocked by users, 103 too many groups,
        /// 104 same message to many, 106 broadcast list).
        code: u32,
        /// Seconds until the ban expires, if given.
        expire_secs: Option<u64>,
    },
    /// The server rejected our WhatsApp Web version (`405`): configure a newer version.
    ClientOutdated,
    /// The connection closed; `retry_in_ms` is set when a reconnect is scheduled.
    Disconnected {
        /// Why.
        reason: String,
        /// When the next attempt happens, if any.
        retry_in_ms: Option<u64>,
    },
}

/// Who/where a message came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageInfo {
    /// The message id.
    pub id: String,
    /// The chat: the other user for a DM, the group JID for a group.
    pub chat: String,
    /// The sender (user JID without device).
    pub sender: String,
    /// The sender's device JID.
    pub sender_device: String,
    /// The sender's other identity (phone number ↔ LID), if the server told us.
    pub sender_alt: Option<String>,
    /// Whether we sent it (from another of our devices).
    pub from_me: bool,
    /// Whether the chat is a group.
    pub is_group: bool,
    /// Server timestamp, unix seconds.
    pub timestamp: u64,
    /// The sender's push name, if given.
    pub push_name: Option<String>,
}

/// An incoming message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    /// Where it came from.
    pub info: MessageInfo,
    /// What it says.
    pub content: MessageContent,
}

/// The kind of a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// Delivered to the recipient's device.
    Delivered,
    /// Read.
    Read,
    /// Read, but the reader has read receipts off (only reported to their own devices).
    ReadSelf,
    /// A voice note / view-once was played.
    Played,
    /// Played, own device.
    PlayedSelf,
    /// Our own other device received a message we sent.
    Sender,
    /// The recipient could not decrypt; handled internally by resending.
    Retry,
    /// Any other type, by name.
    Other,
}

/// An incoming receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptEvent {
    /// The chat the messages belong to.
    pub chat: String,
    /// Who sent the receipt (device JID).
    pub sender: String,
    /// The message ids.
    pub ids: Vec<String>,
    /// What kind of receipt.
    pub kind: ReceiptKind,
    /// The raw `type` attribute (empty for plain delivery).
    pub raw_type: String,
    /// Unix seconds.
    pub timestamp: u64,
}

/// A group change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEvent {
    /// The group.
    pub group: String,
    /// Who made the change, if known.
    pub actor: Option<String>,
    /// Unix seconds.
    pub timestamp: u64,
    /// What changed.
    pub change: GroupChange,
}

/// One w:gp2 change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GroupChange {
    /// The group was created (with us in it).
    Created {
        /// The subject.
        subject: String,
        /// The participants.
        participants: Vec<String>,
    },
    /// Participants were added.
    Added {
        /// Who.
        participants: Vec<String>,
    },
    /// Participants were removed (or left).
    Removed {
        /// Who.
        participants: Vec<String>,
    },
    /// Participants became admins.
    Promoted {
        /// Who.
        participants: Vec<String>,
    },
    /// Participants stopped being admins.
    Demoted {
        /// Who.
        participants: Vec<String>,
    },
    /// The subject changed.
    Subject {
        /// The new subject.
        subject: String,
    },
    /// The description changed (`None`: deleted).
    Description {
        /// The new description.
        description: Option<String>,
    },
    /// Only admins may send (`true`) or everyone (`false`).
    Announce {
        /// The new setting.
        on: bool,
    },
    /// Only admins may edit group info (`true`) or everyone (`false`).
    Locked {
        /// The new setting.
        on: bool,
    },
    /// The invite link was reset.
    InviteReset {
        /// The new code, if given.
        code: Option<String>,
    },
    /// Disappearing messages changed (0: off).
    Ephemeral {
        /// Seconds.
        expiration: u32,
    },
    /// The group was deleted.
    Deleted,
    /// A change type we do not model, by tag.
    Other {
        /// The child tag.
        tag: String,
    },
}

/// A presence update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEvent {
    /// Whose.
    pub from: String,
    /// Online now.
    pub available: bool,
    /// Last seen, unix seconds, when shared.
    pub last_seen: Option<u64>,
}

/// Typing state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatState {
    /// Typing.
    Composing,
    /// Recording audio.
    Recording,
    /// Stopped.
    Paused,
}

/// A chat-state update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatStateEvent {
    /// The chat.
    pub chat: String,
    /// Who (differs from `chat` in groups).
    pub sender: String,
    /// The state.
    pub state: ChatState,
}

/// A message we could not decrypt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndecryptableEvent {
    /// Where it came from.
    pub info: MessageInfo,
    /// Why decryption failed.
    pub reason: String,
    /// The retry count we asked for (1-based); 0 when no retry was sent.
    pub retry_count: u32,
}

/// A contact's identity key changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityChangeEvent {
    /// The user.
    pub jid: String,
    /// Whether we learned it from a message (rather than a server notification).
    pub implicit: bool,
}

/// The outcome of an outbox send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResultEvent {
    /// The message id.
    pub id: String,
    /// The chat.
    pub chat: String,
    /// `None` when the server accepted it; otherwise why it failed for good.
    pub error: Option<String>,
    /// The server's timestamp on success, unix seconds.
    pub timestamp: Option<u64>,
}
