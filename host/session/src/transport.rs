//! The byte pipe under a session: a WebSocket over TCP (`ws://`), over rustls (`wss://`), or
//! over an in-memory duplex (tests).
//!
//! Contract: [`Endpoint::connect`] opens a WebSocket and returns a [`WsTransport`] that sends
//! and receives *binary messages* (opaque chunks of the framed Noise stream; a WebSocket
//! message and a WhatsApp frame are independent, see `wasmeow_protocol::frame`). Text
//! messages from the server are a protocol violation; pings are answered by tungstenite;
//! a close frame or EOF ends the stream with `Ok(None)`.
//!
//! Production: `wss://web.whatsapp.com/ws/chat` with `Origin: https://web.whatsapp.com`
//! (`protocol-whatsmeow.md` §2.1), TLS roots from `webpki-roots`. Tests: any `ws://` or
//! `wss://` URL (the simulator's test CA is added with [`TlsRoots::with_extra_root`]), or
//! [`Endpoint::memory`].
//!
//! Memory: every idle session keeps one open WebSocket, so buffer sizes are chosen here, not
//! left at tungstenite's 128 KiB defaults: a 4 KiB read buffer, eager writes (no write
//! buffering; our frames are written one WebSocket message at a time), messages over 8 KiB
//! sent as fragmented WebSocket messages (tungstenite's write buffer keeps the size of the
//! largest frame it ever wrote), and the WhatsApp frame limit (16 MiB) as the message limit.
//! `host/session/tests/idle_memory.rs` measures the result (200 idle sessions).

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Request};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data as OpData, OpCode};
use tokio_tungstenite::tungstenite::{self, Message};

/// The production WebSocket URL.
pub const WHATSAPP_URL: &str = "wss://web.whatsapp.com/ws/chat";
/// The `Origin` header a WhatsApp Web client sends.
pub const WHATSAPP_ORIGIN: &str = "https://web.whatsapp.com";

/// The tungstenite read buffer per connection.
pub const READ_BUFFER_SIZE: usize = 4 * 1024;
/// The largest WebSocket *frame* payload we send; longer messages are fragmented. tungstenite
/// formats each outgoing frame into a write buffer that keeps its largest size for the life of
/// the connection, so without this one prekey upload (812 keys, about 40 KiB) would pin 40 KiB
/// in every idle session. Most stanzas are smaller and go out as a single frame.
pub const MAX_FRAME_PAYLOAD: usize = 8 * 1024;
/// The largest WebSocket message accepted: one maximal WhatsApp frame plus its prefix.
pub const MAX_MESSAGE_SIZE: usize = wasmeow_protocol::frame::MAX_FRAME_LEN + 3;

/// Opening or using the transport failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The URL is not a valid `ws://` or `wss://` URL.
    #[error("invalid WebSocket URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TCP connect, TLS or the WebSocket upgrade did not finish in time.
    #[error("connecting timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// TCP failed (or a TLS trust anchor could not be built).
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS handshake failed: most often the server's certificate does not chain to a
    /// trusted root (for the simulator: its test CA was not added, see
    /// [`TlsRoots::with_extra_root_pem`]).
    #[error("TLS handshake with {host} failed: {source}")]
    Tls {
        /// The host name the certificate was checked against.
        host: String,
        /// rustls' error (wrapped in an I/O error by tokio-rustls).
        source: std::io::Error,
    },
    /// A PEM trust anchor could not be read.
    #[error("invalid PEM certificate: {0}")]
    InvalidPem(String),
    /// The WebSocket layer failed (upgrade refused, protocol error, oversized message, …).
    #[error("websocket: {0}")]
    WebSocket(#[from] tungstenite::Error),
    /// The server sent a text message; WhatsApp only speaks binary.
    #[error("server sent a text WebSocket message")]
    UnexpectedText,
    /// The in-memory connector refused (its server is gone).
    #[error("in-memory endpoint is closed")]
    MemoryClosed,
}

/// Trust anchors for `wss://`.
#[derive(Clone)]
pub struct TlsRoots {
    config: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsRoots")
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsRoots {
    /// Mozilla's roots (the `webpki-roots` bundle). Built once per process and shared by all
    /// sessions.
    pub fn webpki() -> Self {
        static SHARED: OnceLock<TlsRoots> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                Self::from_store(roots)
                    .expect("the ring provider supports the default protocol versions")
            })
            .clone()
    }

    /// Mozilla's roots plus `der` (e.g. the simulator's test CA).
    pub fn with_extra_root(der: &[u8]) -> Result<Self, TransportError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        roots
            .add(rustls::pki_types::CertificateDer::from(der.to_vec()))
            .map_err(|e| TransportError::Io(std::io::Error::other(e)))?;
        Self::from_store(roots)
    }

    /// Mozilla's roots plus every certificate in `pem` (the simulator's `ca_pem`, a
    /// corporate proxy's CA, ...). Fails with [`TransportError::InvalidPem`] if `pem` holds no
    /// certificate or one that cannot be parsed.
    pub fn with_extra_root_pem(pem: &str) -> Result<Self, TransportError> {
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut added = 0usize;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| TransportError::InvalidPem(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| TransportError::InvalidPem(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(TransportError::InvalidPem("no CERTIFICATE block".into()));
        }
        Self::from_store(roots)
    }

    /// Only `der` is trusted (tests that must not depend on the public PKI).
    pub fn only(der: &[u8]) -> Result<Self, TransportError> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(der.to_vec()))
            .map_err(|e| TransportError::Io(std::io::Error::other(e)))?;
        Self::from_store(roots)
    }

    fn from_store(roots: rustls::RootCertStore) -> Result<Self, TransportError> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TransportError::Io(std::io::Error::other(e)))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

/// Anything a WebSocket can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

type BoxIo = Pin<Box<dyn Io>>;

/// Hands out one end of a fresh in-memory pipe per connection attempt; the test server gets
/// the other end. `None` means the server is gone.
pub type MemoryConnector = Arc<dyn Fn() -> Option<tokio::io::DuplexStream> + Send + Sync>;

/// Where a session connects.
#[derive(Clone)]
pub enum Endpoint {
    /// A `ws://` or `wss://` URL.
    Url {
        /// The URL.
        url: String,
        /// Trust anchors for `wss://`.
        roots: TlsRoots,
    },
    /// An in-memory pipe (tests). The WebSocket upgrade still runs, against `url`.
    Memory {
        /// Supplies one pipe end per attempt.
        connector: MemoryConnector,
    },
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url { url, .. } => f.debug_struct("Url").field("url", url).finish(),
            Self::Memory { .. } => f.write_str("Memory"),
        }
    }
}

impl Endpoint {
    /// The production WhatsApp endpoint.
    pub fn whatsapp() -> Self {
        Self::url(WHATSAPP_URL)
    }

    /// Any `ws://` / `wss://` URL with the public roots.
    pub fn url(url: impl Into<String>) -> Self {
        Self::Url {
            url: url.into(),
            roots: TlsRoots::webpki(),
        }
    }

    /// A `ws://` / `wss://` URL with the given trust anchors (e.g. the public roots plus the
    /// simulator's test CA: `Endpoint::url_with_roots(wss_url,
    /// TlsRoots::with_extra_root_pem(&ca_pem)?)`). This is how a [`SessionConfig`] carries an
    /// extra CA: its `endpoint` owns the roots.
    ///
    /// [`SessionConfig`]: crate::SessionConfig
    pub fn url_with_roots(url: impl Into<String>, roots: TlsRoots) -> Self {
        Self::Url {
            url: url.into(),
            roots,
        }
    }

    /// An in-memory endpoint.
    pub fn memory(connector: MemoryConnector) -> Self {
        Self::Memory { connector }
    }

    /// Opens the WebSocket (TCP, TLS if `wss`, HTTP upgrade with `origin`) within `timeout`.
    pub async fn connect(
        &self,
        origin: Option<&str>,
        timeout: Duration,
    ) -> Result<WsTransport, TransportError> {
        match tokio::time::timeout(timeout, self.connect_inner(origin)).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::ConnectTimeout(timeout)),
        }
    }

    async fn connect_inner(&self, origin: Option<&str>) -> Result<WsTransport, TransportError> {
        let (request, io): (Request<()>, BoxIo) = match self {
            Self::Memory { connector } => {
                let io = connector().ok_or(TransportError::MemoryClosed)?;
                (
                    request("ws://memory.invalid/ws/chat", origin)?,
                    Box::pin(io),
                )
            }
            Self::Url { url, roots } => {
                let request = request(url, origin)?;
                let uri = request.uri();
                let tls = match uri.scheme_str() {
                    Some("wss") => true,
                    Some("ws") => false,
                    _ => return Err(invalid(url, "scheme must be ws or wss")),
                };
                let host = uri
                    .host()
                    .ok_or_else(|| invalid(url, "no host"))?
                    .to_owned();
                let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
                // Literal IPv6 hosts come bracketed in URIs.
                let bare = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let tcp = TcpStream::connect((bare.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let io: BoxIo = if tls {
                    let name = rustls::pki_types::ServerName::try_from(bare)
                        .map_err(|e| invalid(url, &e.to_string()))?;
                    let connector = tokio_rustls::TlsConnector::from(roots.config.clone());
                    let tls = connector.connect(name, tcp).await.map_err(|source| {
                        TransportError::Tls {
                            host: host.clone(),
                            source,
                        }
                    })?;
                    Box::pin(tls)
                } else {
                    Box::pin(tcp)
                };
                (request, io)
            }
        };
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, io, Some(ws_config())).await?;
        Ok(WsTransport { ws })
    }
}

fn invalid(url: &str, reason: &str) -> TransportError {
    TransportError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The upgrade request: the URL plus the headers WhatsApp Web sends.
fn request(url: &str, origin: Option<&str>) -> Result<Request<()>, TransportError> {
    let mut req = url
        .into_client_request()
        .map_err(|e| invalid(url, &e.to_string()))?;
    let headers = req.headers_mut();
    if let Some(origin) = origin {
        let value =
            HeaderValue::from_str(origin).map_err(|e| invalid(url, &format!("origin: {e}")))?;
        headers.insert("Origin", value);
    }
    headers.insert("Cache-Control", HeaderValue::from_static("no-cache"));
    headers.insert("Pragma", HeaderValue::from_static("no-cache"));
    Ok(req)
}

/// tungstenite settings sized for many idle connections.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(MAX_FRAME_PAYLOAD)
        .max_write_buffer_size(MAX_MESSAGE_SIZE * 2)
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE))
}

/// An open WebSocket carrying the framed Noise stream.
pub struct WsTransport {
    ws: WebSocketStream<BoxIo>,
}

impl fmt::Debug for WsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WsTransport")
    }
}

impl WsTransport {
    /// Sends one binary message. A message longer than [`MAX_FRAME_PAYLOAD`] goes out as one
    /// fragmented WebSocket message (RFC 6455 §5.4: a first binary frame, then continuation
    /// frames; the peer reassembles the same message), each fragment flushed before the next,
    /// so tungstenite's write buffer never holds more than one fragment.
    pub async fn send(&mut self, bytes: Vec<u8>) -> Result<(), TransportError> {
        if bytes.len() <= MAX_FRAME_PAYLOAD {
            self.ws.send(Message::Binary(bytes.into())).await?;
            return Ok(());
        }
        let bytes = tungstenite::Bytes::from(bytes);
        let mut start = 0;
        while start < bytes.len() {
            let end = (start + MAX_FRAME_PAYLOAD).min(bytes.len());
            let opcode = if start == 0 {
                OpCode::Data(OpData::Binary)
            } else {
                OpCode::Data(OpData::Continue)
            };
            let frame = Frame::message(bytes.slice(start..end), opcode, end == bytes.len());
            self.ws.send(Message::Frame(frame)).await?;
            start = end;
        }
        Ok(())
    }

    /// Queues one binary message without writing it yet: queued messages go out together on
    /// [`flush`](Self::flush) (one write for several small frames), or as soon as they fill
    /// [`MAX_FRAME_PAYLOAD`]. A message longer than that is sent at once, as [`send`](Self::send)
    /// does.
    pub async fn feed(&mut self, bytes: Vec<u8>) -> Result<(), TransportError> {
        if bytes.len() > MAX_FRAME_PAYLOAD {
            return self.send(bytes).await;
        }
        self.ws.feed(Message::Binary(bytes.into())).await?;
        Ok(())
    }

    /// Writes out what [`feed`](Self::feed) queued.
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        self.ws.flush().await?;
        Ok(())
    }

    /// The next binary message; `Ok(None)` when the peer closed the connection.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        loop {
            match self.ws.next().await {
                None => return Ok(None),
                Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => {
                    return Ok(None);
                }
                Some(Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                ))) => return Ok(None),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Binary(b))) => return Ok(Some(b.into())),
                Some(Ok(Message::Text(_))) => return Err(TransportError::UnexpectedText),
                Some(Ok(Message::Close(_))) => return Ok(None),
                // Pings are answered inside tungstenite; pongs and raw frames carry nothing.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            }
        }
    }

    /// Closes the WebSocket politely (best effort).
    pub async fn close(&mut self) {
        let _ = self.ws.close(None).await;
    }
}
