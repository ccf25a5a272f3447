//! The initiator (client) side of WhatsApp's Noise XX handshake, as consuming typestates.
//!
//! Contract: [`Start`] → [`ExpectServerHello`] → ([`Transport`], ClientFinish bytes,
//! [`ServerCertVerified`]). Every step takes `self`; on error the state is consumed and the
//! connection must start over with a fresh ephemeral key (Noise has no recovery from a failed
//! handshake). Message bytes are serialized `HandshakeMessage` protobufs without framing.
//!
//! The steps follow `protocol-whatsmeow.md` §2.2 (whatsmeow `handshake.go`):
//!
//! > 4. `MixHash(server_eph)`; `MixKey(X25519(e.priv, server_eph))`.
//! > 5. `server_static = Decrypt(serverHello.static)` (must be 32 bytes);
//! >    `MixKey(X25519(e.priv, server_static))`.
//! > 6. `cert = Decrypt(serverHello.payload)`, then verify the chain.
//! > 7. `encStatic = Encrypt(noise_static_pub)`; `MixKey(X25519(noise_static_priv, server_eph))`.
//! > 8. `encPayload = Encrypt(protobuf ClientPayload)`.
//! > 9. Send `HandshakeMessage{clientFinish{static = encStatic, payload = encPayload}}`.
//! > 10. Split: … `writeKey = [0:32]`, `readKey = [32:64]`.

use prost::Message as _;
use rand_core::CryptoRng;
use wasmeow_proto::wa::HandshakeMessage;
use wasmeow_proto::wa::handshake_message::{ClientFinish, ClientHello};

use super::cert::{CertVerifier, ServerCertVerified};
use super::symmetric::{SymmetricState, dh};
use super::transport::Transport;
use super::{HandshakeError, PROLOGUE, public_key_field};
use crate::keys::KeyPair;

/// A client about to start a handshake: it holds its long-term Noise key and a fresh ephemeral.
#[derive(Debug)]
pub struct Start {
    noise_static: KeyPair,
    ephemeral: KeyPair,
}

impl Start {
    /// A client with the device's long-term Noise key and an ephemeral drawn from `rng`.
    pub fn new<R: CryptoRng + ?Sized>(noise_static: KeyPair, rng: &mut R) -> Self {
        Self::with_ephemeral(noise_static, KeyPair::generate(rng))
    }

    /// A client with a caller-chosen ephemeral (test vectors). Never reuse an ephemeral.
    pub fn with_ephemeral(noise_static: KeyPair, ephemeral: KeyPair) -> Self {
        Self {
            noise_static,
            ephemeral,
        }
    }

    /// Produces the ClientHello (`HandshakeMessage{client_hello{ephemeral}}`) and the state
    /// that waits for the server's reply.
    pub fn client_hello(self) -> (ExpectServerHello, Vec<u8>) {
        let mut state = SymmetricState::new(&PROLOGUE);
        state.mix_hash(&self.ephemeral.public.0);
        let hello = HandshakeMessage {
            client_hello: Some(ClientHello {
                ephemeral: Some(self.ephemeral.public.0.to_vec().into()),
            }),
            ..Default::default()
        };
        let next = ExpectServerHello {
            state,
            noise_static: self.noise_static,
            ephemeral: self.ephemeral,
        };
        (next, hello.encode_to_vec())
    }
}

/// A client that sent its ClientHello and waits for the ServerHello.
pub struct ExpectServerHello {
    state: SymmetricState,
    noise_static: KeyPair,
    ephemeral: KeyPair,
}

impl ExpectServerHello {
    /// Processes the ServerHello: authenticates the server's static key, verifies its
    /// certificate chain with `verifier` at time `now` (unix seconds), and answers with the
    /// ClientFinish carrying our static key and `client_payload` (a serialized `ClientPayload`).
    ///
    /// Returns the transport, the ClientFinish bytes to send, and the proof that the server's
    /// certificate verified. On error the handshake is over.
    pub fn handle(
        mut self,
        server_hello: &[u8],
        verifier: &CertVerifier,
        now: u64,
        client_payload: &[u8],
    ) -> Result<(Transport, Vec<u8>, ServerCertVerified), HandshakeError> {
        let msg = HandshakeMessage::decode(server_hello)?;
        let hello = msg.server_hello.ok_or(HandshakeError::UnexpectedMessage {
            expected: "server_hello",
        })?;
        let server_ephemeral =
            public_key_field(hello.ephemeral.as_deref(), "server_hello.ephemeral")?;
        let enc_static = hello
            .r#static
            .ok_or(HandshakeError::MissingField("server_hello.static"))?;
        let enc_payload = hello
            .payload
            .ok_or(HandshakeError::MissingField("server_hello.payload"))?;

        let s = &mut self.state;
        s.mix_hash(&server_ephemeral.0);
        s.mix_key(dh(&self.ephemeral.private, &server_ephemeral)?);
        let static_bytes = s.decrypt_and_hash(&enc_static, "server_hello.static")?;
        let server_static = public_key_field(Some(&static_bytes), "server_hello.static")?;
        s.mix_key(dh(&self.ephemeral.private, &server_static)?);
        let chain = s.decrypt_and_hash(&enc_payload, "server_hello.payload")?;
        let verified = verifier.verify(&chain, &server_static, now)?;

        let enc_our_static = s.encrypt_and_hash(&self.noise_static.public.0);
        s.mix_key(dh(&self.noise_static.private, &server_ephemeral)?);
        let enc_client_payload = s.encrypt_and_hash(client_payload);
        let finish = HandshakeMessage {
            client_finish: Some(ClientFinish {
                r#static: Some(enc_our_static.into()),
                payload: Some(enc_client_payload.into()),
            }),
            ..Default::default()
        };
        let (write_key, read_key) = s.split();
        Ok((
            Transport::new(write_key, read_key),
            finish.encode_to_vec(),
            verified,
        ))
    }

    /// The handshake hash so far.
    pub fn handshake_hash(&self) -> [u8; 32] {
        self.state.handshake_hash()
    }
}

impl std::fmt::Debug for ExpectServerHello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpectServerHello")
            .field("noise_static", &self.noise_static.public)
            .field("ephemeral", &self.ephemeral.public)
            .finish_non_exhaustive()
    }
}
