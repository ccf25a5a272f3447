//! `Noise_XX_25519_AESGCM_SHA256` exactly as WhatsApp uses it, in both roles, with the server
//! certificate chain and the post-handshake transport cipher.
//!
//! Contract: sans-IO and deterministic given its inputs. Handshake steps are consuming
//! typestates that take and return *unframed* `HandshakeMessage` protobuf bytes (wrap them with
//! [`crate::frame`]); randomness comes in as a `CryptoRng`, time as unix seconds. A client can
//! only reach a [`Transport`] through a certificate chain that verified, witnessed by the
//! [`ServerCertVerified`] token. Every failure is a typed error; a handshake error consumes the
//! state, a transport error leaves the transport unchanged (see [`transport`] for the counter
//! policy).
//!
//! # Message flow
//!
//! ```text
//!  client (initiator)                                        server (responder)
//!  h = ck = "Noise_XX_25519_AESGCM_SHA256\0\0\0\0"  (32 bytes, used raw, not hashed)
//!  MixHash("WA\x06\x03")                                     MixHash("WA\x06\x03")
//!  MixHash(e_c)
//!        ── WA 06 03 │ len │ HandshakeMessage{client_hello{ephemeral: e_c}} ──►
//!                                                            MixHash(e_c), MixHash(e_s)
//!                                                            MixKey(DH(e_s, e_c))
//!                                                            Enc(s_s)        ← counter 0
//!                                                            MixKey(DH(s_s, e_c))
//!                                                            Enc(CertChain)  ← counter 0
//!        ◄── len │ HandshakeMessage{server_hello{e_s, Enc(s_s), Enc(CertChain)}} ──
//!  MixHash(e_s), MixKey(DH(e_c, e_s))
//!  s_s = Dec(static)            ← counter 0
//!  MixKey(DH(e_c, s_s))
//!  chain = Dec(payload)         ← counter 0
//!  verify chain (root → intermediate → leaf == s_s, validity at `now`)
//!  Enc(s_c)                     ← counter 1 (one counter shared by both directions)
//!  MixKey(DH(s_c, e_s))
//!  Enc(ClientPayload)           ← counter 0
//!        ── len │ HandshakeMessage{client_finish{Enc(s_c), Enc(ClientPayload)}} ──►
//!                                                            s_c = Dec(static)
//!                                                            MixKey(DH(e_s, s_c))
//!                                                            payload = Dec(payload)
//!  (k1, k2) = HKDF(salt = ck, ikm = ∅)                       (k1, k2) = HKDF(salt = ck, ikm = ∅)
//!  write k1 / read k2                                        write k2 / read k1
//!        ◄══ len │ AES-256-GCM(k, IV = 0^8 ‖ counter_be32, AAD = ∅) ══►
//! ```
//!
//! `MixHash(x)`: `h = SHA-256(h ‖ x)`. `MixKey(ikm)`: `ck ‖ k = HKDF-SHA256(salt = ck, ikm,
//! info = ∅, 64 bytes)`, counter = 0. Every `Enc`/`Dec` uses AES-256-GCM with IV = 8 zero
//! bytes ‖ counter (u32 BE) and AAD = `h`, followed by `MixHash(ciphertext)`.
//! (`protocol-whatsmeow.md` §2.2–2.3, `interop-baileys.md` §3.)
//!
//! # Example: a handshake in memory
//!
//! ```
//! use rand::SeedableRng as _;
//! use wasmeow_protocol::keys::KeyPair;
//! use wasmeow_protocol::noise::{client, server, CertVerifier, ChainIssuer, ServerConfig};
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(42);
//! let now = 1_800_000_000; // unix seconds, supplied by the caller
//!
//! // A local server with a chain issued by a test root.
//! let issuer = ChainIssuer::generate(&mut rng, now - 3600, now + 3600);
//! let config = ServerConfig::issue(&issuer, &mut rng);
//! let verifier = CertVerifier::new(issuer.root_public()); // production: CertVerifier::whatsapp()
//!
//! // The device's long-term Noise key.
//! let noise_key = KeyPair::generate(&mut rng);
//! let noise_pub = noise_key.public;
//!
//! let (client, client_hello) = client::Start::new(noise_key, &mut rng).client_hello();
//! let (server, server_hello) = server::Start::new(&config, &mut rng).handle(&client_hello)?;
//! let (mut client_tx, client_finish, _proof) =
//!     client.handle(&server_hello, &verifier, now, b"serialized ClientPayload")?;
//! let (mut server_tx, client_static, payload) = server.handle(&client_finish)?;
//! assert_eq!(client_static, noise_pub);
//! assert_eq!(&payload[..], b"serialized ClientPayload");
//!
//! let frame = server_tx.seal(b"\x00node bytes")?;
//! assert_eq!(client_tx.open(&frame)?, b"\x00node bytes");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors consume handshake states
//!
//! Each handshake step takes `self`, so a state that produced an error (or a message) cannot be
//! used again; retrying means a new connection and a new ephemeral key:
//!
//! ```compile_fail,E0382
//! # use rand::SeedableRng as _;
//! # use wasmeow_protocol::keys::KeyPair;
//! # use wasmeow_protocol::noise::{client, CertVerifier};
//! # let mut rng = rand::rngs::StdRng::seed_from_u64(1);
//! let (client, _hello) = client::Start::new(KeyPair::generate(&mut rng), &mut rng).client_hello();
//! let verifier = CertVerifier::whatsapp();
//! let _ = client.handle(b"garbage", &verifier, 0, b"");
//! let _ = client.handle(b"retry", &verifier, 0, b""); // use of moved value
//! ```
//!
//! # Modules
//!
//! - [`client`]: `Start` → `ExpectServerHello` → `(Transport, ClientFinish, ServerCertVerified)`.
//! - [`server`]: `ServerConfig`, `Start` → `ExpectClientFinish` → `(Transport, client static, payload)`.
//! - [`cert`]: `CertVerifier` (client side) and `ChainIssuer` (server side).
//! - [`transport`]: `Transport` and its split halves.

pub mod cert;
pub mod client;
pub mod server;
mod symmetric;
pub mod transport;

#[cfg(test)]
mod tests;

pub use cert::{CertError, CertVerifier, ChainIssuer, ServerCertVerified, WA_ROOT_PUBLIC_KEY};
pub use server::ServerConfig;
pub use transport::{REPLAY_WINDOW, Transport, TransportError, TransportReader, TransportWriter};

use crate::keys::PublicKey;

/// The Noise protocol name, NUL-padded to exactly 32 bytes so that it is used directly as the
/// initial `h` and `ck` (Noise hashes names longer than the hash length only).
pub const NOISE_PROTOCOL_NAME: [u8; 32] = *b"Noise_XX_25519_AESGCM_SHA256\0\0\0\0";

/// The Noise prologue: the client's connection header `WA 06 03`, mixed into `h` by both sides.
pub const PROLOGUE: [u8; 4] = crate::frame::WA_CONN_HEADER;

/// A handshake step failed. The handshake state that produced it has been consumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The message is not a valid `HandshakeMessage` protobuf.
    #[error("handshake message is not valid protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The message does not contain the one this state waits for.
    #[error("expected a {expected} message")]
    UnexpectedMessage {
        /// The awaited field of `HandshakeMessage`.
        expected: &'static str,
    },
    /// A required field of the message is absent.
    #[error("handshake field {0} is missing")]
    MissingField(&'static str),
    /// A public key (ephemeral, or decrypted static) is not 32 bytes.
    #[error("{field} must be a 32-byte key, got {len} bytes")]
    BadKeyLength {
        /// The field, e.g. "server_hello.ephemeral".
        field: &'static str,
        /// The length received.
        len: usize,
    },
    /// A peer key is a low-order point: the Diffie-Hellman result would be all zeros.
    #[error("peer public key is a low-order point")]
    LowOrderKey,
    /// An encrypted field failed authentication: tampered ciphertext, or a peer that does not
    /// share our transcript (wrong prologue, keys or protocol).
    #[error("cannot decrypt {field}: authentication failed")]
    Decrypt {
        /// The encrypted field, e.g. "server_hello.payload".
        field: &'static str,
    },
    /// The server's certificate chain was rejected.
    #[error("server certificate rejected: {0}")]
    Certificate(#[from] CertError),
}

/// Reads a 32-byte public key from an (optional) message field.
fn public_key_field(
    bytes: Option<&[u8]>,
    field: &'static str,
) -> Result<PublicKey, HandshakeError> {
    let bytes = bytes.ok_or(HandshakeError::MissingField(field))?;
    PublicKey::from_slice(bytes).map_err(|_| HandshakeError::BadKeyLength {
        field,
        len: bytes.len(),
    })
}
