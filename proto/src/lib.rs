//! Generated protobuf types for the WhatsApp wire, and nothing else.
//!
//! The schemas live in `proto/*.proto` and hold only the messages wasmeow uses.
//! Helpers that give these types meaning belong in `wasmeow-protocol`.
//!
//! ```
//! use prost::Message as _;
//! let hello = wasmeow_proto::wa::HandshakeMessage {
//!     client_hello: Some(wasmeow_proto::wa::handshake_message::ClientHello {
//!         ephemeral: Some(vec![7u8; 32].into()),
//!     }),
//!     ..Default::default()
//! };
//! let bytes = hello.encode_to_vec();
//! assert_eq!(&bytes[..4], &[0x12, 0x22, 0x0a, 0x20]);
//! ```

#![allow(missing_docs, unreachable_pub, clippy::all)]

pub use prost;

/// WhatsApp messages: handshake, certificates, ClientPayload, ADV, E2E payloads.
pub mod wa {
    include!(concat!(env!("OUT_DIR"), "/wa.rs"));
}

/// Signal protocol wire messages (without their version byte, MAC or signature).
pub mod signal {
    include!(concat!(env!("OUT_DIR"), "/signal.rs"));
}
