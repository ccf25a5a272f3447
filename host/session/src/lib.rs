//! wasmeow-session: the WhatsApp linked-device engine.
//!
//! One [`Session`] is one linked device: it connects (WebSocket over rustls, or plain `ws://`
//! for the local simulator), runs the Noise handshake, pairs by QR code or pairing code, logs
//! in, keeps the connection alive and reconnects with capped, jittered back-off, decrypts and
//! encrypts Signal messages, runs group operations and reports everything as typed [`Event`]s.
//! All durable state — credentials, prekeys, sessions, sender keys, dedupe ids, the outbox and
//! inbound queues — lives in a [`wasmeow_store::AccountStore`]; memory holds only a few small
//! caches, so hundreds of idle sessions fit in one process (`tests/idle_memory.rs`: 200 idle
//! paired sessions on one encrypted store, at most 128 KiB each).
//!
//! # Tasks and data flow
//!
//! Each session runs exactly two tasks (quinn's split: a sans-IO core — here
//! `wasmeow-protocol` — driven by a runtime loop that owns the socket and the timers):
//!
//! ```text
//!   caller tasks ── Session API (send, groups, receipts, presence) ──┐
//!        ▲                                                           │ commands (bounded)
//!        │ events (unbounded mpsc)                                   ▼
//!   ┌────┴──────────────────────── driver task ─────────────────────────────────────┐
//!   │ WebSocket ⇄ frame::Deframer/FrameEncoder ⇄ noise::Transport ⇄ binary codec   │
//!   │ single writer · Pending<id → waiter, deadline> · keepalive · QR rotation      │
//!   │ receive path: decrypt + ONE store tx (ratchet, prekey, sender key, dedupe,    │
//!   │               inbound entry) → receipt → event                                │
//!   │ lifecycle: success / failure / stream:error → reconnect policy (backoff.rs)   │
//!   └────┬──────────────────────────────────────────────────────────────────────────┘
//!        │ jobs (login setup, prekey refill, retry receipts, pair-code finish)
//!   ┌────▼──────────────────────── worker task ─────────────────────────────────────┐
//!   │ outbox (persistent queue) → rate limiter → usync / prekey fetch → encrypt +   │
//!   │ ONE store tx → message stanza → ack (pipelined, ≤ 64 in flight)               │
//!   └───────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! # Modules
//!
//! - [`transport`]: WebSocket connect (TCP/TLS/in-memory), sized buffers.
//! - [`socket`]: the Noise handshake and the node codec of one connection.
//! - [`driver`]: the connection task; [`worker`]: the second task.
//! - [`recv`], [`send`], [`groups`]: the message paths and the group API.
//! - [`pairing`]: QR strings, ADV verification, pairing-code crypto (pure).
//! - [`payload`]: ClientPayload for registration and login; [`config`]: settings.
//! - [`iq`]: request correlation; [`backoff`]; [`ratelimit`]; [`outbox`].
//! - [`events`], [`content`]: the plain-data event vocabulary.
//! - [`device`]: credentials and prekey records.

pub mod backoff;
pub mod config;
pub mod content;
pub mod device;
pub mod driver;
pub mod events;
pub mod groups;
pub mod iq;
pub mod outbox;
pub mod pairing;
pub mod payload;
pub mod ratelimit;
pub mod recv;
pub mod send;
pub mod session;
pub mod socket;
pub mod stanza;
pub mod transport;
pub mod worker;

pub use config::{SessionConfig, WaVersion};
pub use content::MessageContent;
pub use events::Event;
pub use outbox::{SendError, SendOutcome};
pub use ratelimit::RateLimits;
pub use session::{ConnState, IqError, Session, SessionError};
pub use transport::Endpoint;
