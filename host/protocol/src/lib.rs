//! The sans-IO core of wasmeow: everything a WhatsApp multi-device peer computes,
//! and nothing it waits for.
//!
//! This crate performs no IO, spawns no tasks and never reads a clock. Callers
//! feed it bytes (and, where time matters, the current time as a value) and get
//! back bytes, decoded values and typed errors. Randomness is always passed in as
//! a `rand_core::CryptoRng`, so every operation can be made deterministic in
//! tests. The tokio runtime that drives sockets lives in `wasmeow-session`; the
//! local server used by the tests (`wasmeow-sim`) drives the same core from the
//! other side.
//!
//! ```text
//!   WebSocket bytes ──► frame::Deframer ──► noise::Transport ──► binary::decode ──► Node
//!   Node ──► binary::encode ──► noise::Transport ──► frame::encode ──► WebSocket bytes
//! ```
//!
//! Modules:
//! - [`frame`]: the `WA 06 03` connection header and 3-byte length framing.
//! - [`noise`]: Noise_XX_25519_AESGCM_SHA256 in both roles, the certificate chain
//!   and the transport cipher.
//! - [`binary`]: binary XML nodes, token dictionaries and JIDs.
//! - [`keys`] and [`xeddsa`]: Curve25519 key pairs and XEdDSA signatures.
//! - [`signal`]: the Signal protocol (sessions, double ratchet, sender keys).

pub mod binary;
pub mod frame;
pub mod keys;
pub mod noise;
pub mod signal;
pub mod xeddsa;

pub use wasmeow_proto as proto;
