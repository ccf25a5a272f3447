//! One connection's byte pipeline: the Noise handshake over a [`WsTransport`], then nodes in
//! and out through the sans-IO core.
//!
//! ```text
//!   outgoing:  Node ─binary::encode─► plaintext ─TransportWriter::seal─► ct ─FrameEncoder─► WS message
//!   incoming:  WS message ─Deframer::push─► frames ─TransportReader::open─► plaintext ─binary::decode─► Node
//! ```
//!
//! Contract: [`handshake`] runs the client side of Noise XX (`wasmeow_protocol::noise::client`)
//! within a deadline and returns a [`NodeCodec`] holding the transport keys; the server's
//! certificate chain must verify against the configured root. [`NodeCodec`] itself does no
//! IO: [`NodeCodec::encode`] produces the bytes of one WebSocket message,
//! [`NodeCodec::push`] + [`NodeCodec::next_node`] turn received messages into nodes. A
//! replayed frame is dropped (the transport reader proves it is a duplicate); any other
//! failure is fatal for the connection and reported as a [`SocketError`].

use std::time::Duration;

use rand_core::CryptoRng;
use wasmeow_protocol::binary::{self, Node};
use wasmeow_protocol::frame::{Deframer, FrameEncoder, FrameError};
use wasmeow_protocol::keys::KeyPair;
use wasmeow_protocol::noise::{
    CertVerifier, HandshakeError, TransportError as NoiseError, TransportReader, TransportWriter,
    client,
};

use crate::transport::{TransportError, WsTransport};

/// The connection failed below the stanza level.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The WebSocket failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// The server did not answer the ClientHello in time.
    #[error("no handshake reply within {0:?}")]
    HandshakeTimeout(Duration),
    /// The Noise handshake failed (including certificate verification).
    #[error("noise handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The frame stream is out of sync.
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    /// A transport frame failed authentication.
    #[error("transport cipher: {0}")]
    Cipher(#[from] NoiseError),
    /// A frame did not decode as a binary node.
    #[error("node decode: {0}")]
    Decode(#[from] binary::DecodeError),
    /// A node we built could not be encoded (a bug in the caller).
    #[error("node encode: {0}")]
    Encode(#[from] binary::EncodeError),
}

/// The established connection's codec.
pub struct NodeCodec {
    writer: TransportWriter,
    reader: TransportReader,
    encoder: FrameEncoder,
    deframer: Deframer,
}

impl std::fmt::Debug for NodeCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCodec")
            .field("sent", &self.writer.counter())
            .field("received", &self.reader.counter())
            .finish()
    }
}

impl NodeCodec {
    /// The WebSocket message carrying `node`.
    pub fn encode(&mut self, node: &Node) -> Result<Vec<u8>, SocketError> {
        let mut plain = binary::encode(node)?;
        self.writer.seal_in_place(&mut plain)?;
        Ok(self.encoder.encode_to_vec(&plain)?)
    }

    /// Buffers a received WebSocket message.
    pub fn push(&mut self, bytes: &[u8]) {
        self.deframer.push(bytes);
    }

    /// The next complete node, `Ok(None)` when more bytes are needed.
    pub fn next_node(&mut self) -> Result<Option<Node>, SocketError> {
        loop {
            let Some(mut frame) = self.deframer.next_frame()? else {
                return Ok(None);
            };
            match self.reader.open_in_place(&mut frame) {
                Ok(()) => return Ok(Some(binary::decode(&frame)?)),
                // A duplicate of an accepted frame: the reader is unchanged, drop it.
                Err(NoiseError::Replayed { counter }) => {
                    tracing::warn!(counter, "dropping a replayed transport frame");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Runs the client handshake on `ws` and returns the codec.
///
/// `payload` is the serialized `ClientPayload`; `now` (unix seconds) checks the certificate
/// validity window.
pub async fn handshake<R: CryptoRng + ?Sized>(
    ws: &mut WsTransport,
    noise_key: KeyPair,
    payload: &[u8],
    verifier: &CertVerifier,
    now: u64,
    timeout: Duration,
    rng: &mut R,
) -> Result<NodeCodec, SocketError> {
    let mut encoder = FrameEncoder::client();
    let mut deframer = Deframer::client();
    let (state, hello) = client::Start::new(noise_key, rng).client_hello();
    ws.send(encoder.encode_to_vec(&hello)?).await?;
    let server_hello = tokio::time::timeout(timeout, async {
        loop {
            if let Some(frame) = deframer.next_frame()? {
                return Ok::<_, SocketError>(frame);
            }
            match ws.recv().await? {
                Some(bytes) => deframer.push(&bytes),
                None => return Err(SocketError::Closed),
            }
        }
    })
    .await
    .map_err(|_| SocketError::HandshakeTimeout(timeout))??;
    let (transport, finish, _verified) = state.handle(&server_hello, verifier, now, payload)?;
    ws.send(encoder.encode_to_vec(&finish)?).await?;
    let (writer, reader) = transport.into_split();
    Ok(NodeCodec {
        writer,
        reader,
        encoder,
        deframer,
    })
}
