//! The persistent outbox: what an entry holds and what a sender is told at the end.
//!
//! Contract: every message the API sends is first written to the account's `Outbox` queue
//! (one JSON [`OutboxEntry`] per entry) and only removed once the server acknowledged it or
//! it failed for good; the worker ([`crate::worker`]) drains the queue in order, under the
//! [`RateLimiter`](crate::ratelimit::RateLimiter). A restart resends what was not
//! acknowledged, with the same message id (at-least-once; receivers de-duplicate by id).

use serde::{Deserialize, Serialize};

use crate::content::MessageContent;

/// One queued message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The message id (chosen at enqueue time, kept across resends).
    pub id: String,
    /// The chat JID (user or group, without device).
    pub chat: String,
    /// What to send.
    pub content: MessageContent,
}

/// Why a queued message was not delivered to the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SendError {
    /// The server refused it with this `<ack error>` code.
    #[error("server refused the message with error {0}")]
    Server(u32),
    /// It cannot be sent to this chat (no devices, not a member, unsupported chat type, …).
    #[error("cannot send: {0}")]
    Unsendable(String),
    /// It kept failing transiently and was given up.
    #[error("gave up after {0} attempts")]
    GaveUp(u32),
    /// The queued entry could not be read.
    #[error("unreadable outbox entry")]
    Corrupt,
    /// The session stopped before it was sent.
    #[error("session stopped")]
    Stopped,
}

/// The final outcome of one outbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    /// The message id.
    pub id: String,
    /// The server timestamp on success.
    pub result: Result<u64, SendError>,
}
