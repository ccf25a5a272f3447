//! The responder (server) side of WhatsApp's Noise XX handshake, for local servers and
//! simulators, as consuming typestates.
//!
//! Contract: [`Start`] (from a [`ServerConfig`]) → [`ExpectClientFinish`] → ([`Transport`],
//! client static key, client payload). Every step takes `self`; on error the state is
//! consumed and the connection must be closed. Message bytes are serialized
//! `HandshakeMessage` protobufs without framing; the client's `WA 06 03` header is the
//! prologue and is stripped by [`crate::frame::Deframer::server`].
//!
//! The server mirrors the client steps of `protocol-whatsmeow.md` §2.2: it answers a
//! ClientHello with `ServerHello{ephemeral, Enc(static), Enc(CertChain)}` after `MixHash(e_s)`,
//! `MixKey(DH(e_s, e_c))`, `MixKey(DH(s, e_c))`; it reads `ClientFinish{Enc(static),
//! Enc(ClientPayload)}` with `MixKey(DH(e_s, s_c))` between the two decryptions; it then
//! splits, writing with the second key and reading with the first.

use prost::Message as _;
use prost::bytes::Bytes;
use rand_core::CryptoRng;
use wasmeow_proto::wa::handshake_message::ServerHello;
use wasmeow_proto::wa::{CertChain, HandshakeMessage};

use super::cert::ChainIssuer;
use super::symmetric::{SymmetricState, dh};
use super::transport::Transport;
use super::{HandshakeError, PROLOGUE, public_key_field};
use crate::keys::{KeyPair, PublicKey};

/// What a server presents in every handshake: its static key and the chain certifying it.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server's long-term static key pair; the leaf certificate names its public half.
    pub static_key: KeyPair,
    /// The serialized `CertChain` sent (encrypted) in the ServerHello. Sent as is, so tests
    /// can present deliberately broken chains.
    pub cert_chain: Bytes,
}

impl ServerConfig {
    /// A config presenting `chain`.
    pub fn new(static_key: KeyPair, chain: &CertChain) -> Self {
        Self {
            static_key,
            cert_chain: chain.encode_to_vec().into(),
        }
    }

    /// A fresh static key from `rng` with a chain for it from `issuer`.
    pub fn issue<R: CryptoRng + ?Sized>(issuer: &ChainIssuer, rng: &mut R) -> Self {
        let static_key = KeyPair::generate(rng);
        let chain = issuer.issue(&static_key.public, rng);
        Self::new(static_key, &chain)
    }
}

/// A server waiting for a client's ClientHello.
#[derive(Debug)]
pub struct Start {
    static_key: KeyPair,
    cert_chain: Bytes,
    ephemeral: KeyPair,
}

impl Start {
    /// A server for one connection, with an ephemeral drawn from `rng`.
    pub fn new<R: CryptoRng + ?Sized>(config: &ServerConfig, rng: &mut R) -> Self {
        Self::with_ephemeral(config, KeyPair::generate(rng))
    }

    /// A server with a caller-chosen ephemeral (test vectors). Never reuse an ephemeral.
    pub fn with_ephemeral(config: &ServerConfig, ephemeral: KeyPair) -> Self {
        Self {
            static_key: config.static_key.clone(),
            cert_chain: config.cert_chain.clone(),
            ephemeral,
        }
    }

    /// Processes the ClientHello and produces the ServerHello to send.
    pub fn handle(
        self,
        client_hello: &[u8],
    ) -> Result<(ExpectClientFinish, Vec<u8>), HandshakeError> {
        let msg = HandshakeMessage::decode(client_hello)?;
        let hello = msg.client_hello.ok_or(HandshakeError::UnexpectedMessage {
            expected: "client_hello",
        })?;
        let client_ephemeral =
            public_key_field(hello.ephemeral.as_deref(), "client_hello.ephemeral")?;

        let mut s = SymmetricState::new(&PROLOGUE);
        s.mix_hash(&client_ephemeral.0);
        s.mix_hash(&self.ephemeral.public.0);
        s.mix_key(dh(&self.ephemeral.private, &client_ephemeral)?);
        let enc_static = s.encrypt_and_hash(&self.static_key.public.0);
        s.mix_key(dh(&self.static_key.private, &client_ephemeral)?);
        let enc_payload = s.encrypt_and_hash(&self.cert_chain);

        let reply = HandshakeMessage {
            server_hello: Some(ServerHello {
                ephemeral: Some(self.ephemeral.public.0.to_vec().into()),
                r#static: Some(enc_static.into()),
                payload: Some(enc_payload.into()),
            }),
            ..Default::default()
        };
        let next = ExpectClientFinish {
            state: s,
            ephemeral: self.ephemeral,
        };
        Ok((next, reply.encode_to_vec()))
    }
}

/// A server that sent its ServerHello and waits for the ClientFinish.
pub struct ExpectClientFinish {
    state: SymmetricState,
    ephemeral: KeyPair,
}

impl ExpectClientFinish {
    /// Processes the ClientFinish: decrypts the client's static key and its payload (a
    /// serialized `ClientPayload`, returned undecoded).
    ///
    /// Returns the transport, the client's static (Noise) public key and the payload.
    pub fn handle(
        mut self,
        client_finish: &[u8],
    ) -> Result<(Transport, PublicKey, Bytes), HandshakeError> {
        let msg = HandshakeMessage::decode(client_finish)?;
        let finish = msg.client_finish.ok_or(HandshakeError::UnexpectedMessage {
            expected: "client_finish",
        })?;
        let enc_static = finish
            .r#static
            .ok_or(HandshakeError::MissingField("client_finish.static"))?;
        let enc_payload = finish
            .payload
            .ok_or(HandshakeError::MissingField("client_finish.payload"))?;

        let s = &mut self.state;
        let static_bytes = s.decrypt_and_hash(&enc_static, "client_finish.static")?;
        let client_static = public_key_field(Some(&static_bytes), "client_finish.static")?;
        s.mix_key(dh(&self.ephemeral.private, &client_static)?);
        let payload = s.decrypt_and_hash(&enc_payload, "client_finish.payload")?;
        let (client_write, server_write) = s.split();
        Ok((
            Transport::new(server_write, client_write),
            client_static,
            payload.into(),
        ))
    }

    /// The handshake hash so far.
    pub fn handshake_hash(&self) -> [u8; 32] {
        self.state.handshake_hash()
    }
}

impl std::fmt::Debug for ExpectClientFinish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpectClientFinish")
            .field("ephemeral", &self.ephemeral.public)
            .finish_non_exhaustive()
    }
}
