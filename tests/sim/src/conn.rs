//! One client connection: WebSocket → frames → Noise XX (server role) → ClientPayload →
//! pairing or login → a loop of binary-node stanzas in both directions.
//!
//! Contract: [`serve`] owns one socket for its whole life and holds only small per-connection
//! state (a deframer, the transport cipher halves, a channel of outgoing stanzas). Everything
//! the connection does to the rest of the server happens inside short [`World`] method calls
//! under the world lock; the world talks back only through the connection's [`ConnCmd`]
//! channel. Protocol violations (bad frames, failed decryption, undecodable nodes) close the
//! socket, as the real server does. When the socket closes for any reason the device is marked
//! offline and its unacknowledged stanzas stay queued for the next login.
//!
//! ```text
//!   accept ─► WS upgrade ─► ClientHello ─► ServerHello(cert chain) ─► ClientFinish
//!        ─► ClientPayload ─┬─ registration data ─► pairing (QR refs / pairing code) ─► 515
//!                          └─ username + device ─► <success> / <failure reason>
//! ```

use std::sync::Arc;

use futures_util::{SinkExt as _, StreamExt as _};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use wasmeow_proto::wa::ClientPayload;
use wasmeow_protocol::binary::{self, Node};
use wasmeow_protocol::frame::{Deframer, FrameEncoder};
use wasmeow_protocol::keys::PublicKey;
use wasmeow_protocol::noise::{Transport, server};

use crate::state::{ConnCmd, DevAddr, Online, Shared, World};
use crate::util::{lid_jid, now_secs, server_jid};

/// Why a connection ended early. Only logged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("framing: {0}")]
    Frame(#[from] wasmeow_protocol::frame::FrameError),
    #[error("noise handshake: {0}")]
    Handshake(#[from] wasmeow_protocol::noise::HandshakeError),
    #[error("transport: {0}")]
    Transport(#[from] wasmeow_protocol::noise::TransportError),
    #[error("node decode: {0}")]
    Decode(#[from] binary::DecodeError),
    #[error("node encode: {0}")]
    Encode(#[from] binary::EncodeError),
    #[error("client payload: {0}")]
    Payload(#[from] prost::DecodeError),
    #[error("peer closed the socket")]
    Closed,
    #[error("handshake timed out")]
    Timeout,
}

/// The WebSocket configuration: small buffers so that thousands of idle connections stay cheap.
pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(8 << 10)
        .max_write_buffer_size(16 << 20)
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

/// Serves one accepted socket (plain TCP or TLS) until it closes.
pub(crate) async fn serve<S>(shared: Arc<Shared>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws = match tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())).await {
        Ok(ws) => ws,
        Err(e) => {
            crate::log!("websocket upgrade failed: {e}");
            return;
        }
    };
    let conn_id = shared.new_conn_id();
    let (tx, rx) = mpsc::unbounded_channel();
    shared
        .open_sockets
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    shared.lock().sockets.insert(conn_id, tx.clone());
    let mut conn = Connection {
        shared: shared.clone(),
        conn_id,
        tx,
        ws,
        deframer: Deframer::server(),
        encoder: FrameEncoder::server(),
        transport: None,
        addr: None,
    };
    if let Err(e) = conn.run(rx).await {
        crate::log!("connection {conn_id} ended: {e}");
    }
    let addr = conn.addr.take();
    drop(conn);
    shared.lock().on_socket_closed(conn_id, addr.as_ref());
    shared
        .open_sockets
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

struct Connection<S> {
    shared: Arc<Shared>,
    conn_id: u64,
    tx: mpsc::UnboundedSender<ConnCmd>,
    ws: WebSocketStream<S>,
    deframer: Deframer,
    encoder: FrameEncoder,
    transport: Option<Transport>,
    addr: Option<DevAddr>,
}

/// What authentication decided.
pub(crate) enum AuthOutcome {
    /// An unpaired companion: the pairing flow has started.
    Pairing,
    /// A logged-in device.
    LoggedIn(DevAddr),
    /// Refused; the closing stanza is already queued.
    Refused,
}

impl<S> Connection<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn run(&mut self, mut rx: mpsc::UnboundedReceiver<ConnCmd>) -> Result<(), ConnError> {
        let timeout = self.shared.cfg.handshake_timeout;
        let hello = tokio::time::timeout(timeout, self.read_frame())
            .await
            .map_err(|_| ConnError::Timeout)??;
        let start = {
            let mut world = self.shared.lock();
            let world = &mut *world;
            server::Start::new(&world.noise, &mut world.rng)
        };
        let (expect_finish, server_hello) = start.handle(&hello)?;
        self.write_frame(&server_hello).await?;
        let finish = tokio::time::timeout(timeout, self.read_frame())
            .await
            .map_err(|_| ConnError::Timeout)??;
        let (transport, client_static, payload) = expect_finish.handle(&finish)?;
        self.transport = Some(transport);
        let payload = ClientPayload::decode(&payload[..])?;
        let outcome =
            self.shared
                .lock()
                .authenticate(self.conn_id, &self.tx, client_static, &payload);
        if let AuthOutcome::LoggedIn(addr) = outcome {
            self.addr = Some(addr);
        }
        // Frames produced while more input is waiting are queued and written together once
        // nothing is ready (one write for many frames under load, one per frame when idle).
        let mut unflushed = false;
        loop {
            tokio::select! {
                biased;
                cmd = rx.recv() => match cmd {
                    Some(ConnCmd::Send(node)) => {
                        self.queue_node(&node).await?;
                        unflushed = true;
                    }
                    Some(ConnCmd::Close(node)) => {
                        if let Some(node) = node {
                            self.write_node(&node).await?;
                        }
                        let _ = self.ws.close(None).await;
                        return Ok(());
                    }
                    Some(ConnCmd::Drop) | None => return Ok(()),
                },
                msg = self.ws.next() => {
                    let bytes = match msg {
                        Some(Ok(Message::Binary(bytes))) => bytes,
                        Some(Ok(Message::Close(_))) | None => return Ok(()),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return Err(e.into()),
                    };
                    self.deframer.push(&bytes);
                    while let Some(frame) = self.deframer.next_frame()? {
                        let plain = match self.transport.as_mut() {
                            Some(t) => t.open(&frame)?,
                            None => return Err(ConnError::Closed),
                        };
                        let node = binary::decode(&plain)?;
                        crate::log!("conn {} <- {}", self.conn_id, node);
                        let addr = self.shared.lock().handle_node(self.conn_id, self.addr.as_ref(), node);
                        if addr.is_some() {
                            self.addr = addr;
                        }
                    }
                }
                () = std::future::ready(()), if unflushed => {
                    unflushed = false;
                    self.ws.flush().await?;
                }
            }
        }
    }

    /// Reads WebSocket messages until one whole frame is available.
    async fn read_frame(&mut self) -> Result<Vec<u8>, ConnError> {
        loop {
            if let Some(frame) = self.deframer.next_frame()? {
                return Ok(frame);
            }
            match self.ws.next().await {
                Some(Ok(Message::Binary(bytes))) => self.deframer.push(&bytes),
                Some(Ok(Message::Close(_))) | None => return Err(ConnError::Closed),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    async fn write_frame(&mut self, payload: &[u8]) -> Result<(), ConnError> {
        let wire = self.encoder.encode_to_vec(payload)?;
        self.ws.send(Message::Binary(wire.into())).await?;
        Ok(())
    }

    fn seal_node(&mut self, node: &Node) -> Result<Vec<u8>, ConnError> {
        crate::log!("conn {} -> {}", self.conn_id, node);
        let plain = binary::encode(node)?;
        match self.transport.as_mut() {
            Some(t) => Ok(t.seal(&plain)?),
            None => Err(ConnError::Closed),
        }
    }

    async fn write_node(&mut self, node: &Node) -> Result<(), ConnError> {
        let sealed = self.seal_node(node)?;
        self.write_frame(&sealed).await
    }

    /// Queues `node` without flushing (see the connection loop).
    async fn queue_node(&mut self, node: &Node) -> Result<(), ConnError> {
        let sealed = self.seal_node(node)?;
        let wire = self.encoder.encode_to_vec(&sealed)?;
        self.ws.feed(Message::Binary(wire.into())).await?;
        Ok(())
    }
}

impl World {
    /// Decides what a freshly handshaken connection is: a pairing companion or a login.
    pub(crate) fn authenticate(
        &mut self,
        conn_id: u64,
        tx: &mpsc::UnboundedSender<ConnCmd>,
        client_static: PublicKey,
        payload: &ClientPayload,
    ) -> AuthOutcome {
        self.stats.handshakes += 1;
        let refuse = |world: &mut World, reason: u16| {
            world.stats.refused_logins += 1;
            let failure = Node::new("failure")
                .attr("reason", reason)
                .attr("location", "sim");
            let _ = tx.send(ConnCmd::Close(Some(failure)));
            AuthOutcome::Refused
        };
        if let Some(username) = payload.username {
            if let Some(reason) = self.login_refusal() {
                return refuse(self, reason);
            }
            let addr = DevAddr::new(
                &username.to_string(),
                payload.device.map_or(0, |d| d as u16),
            );
            let known = self
                .accounts
                .get(&addr.pn)
                .and_then(|a| a.devices.get(&addr.dev))
                .is_some_and(|d| d.noise_pub == Some(client_static.0));
            if !known {
                return refuse(self, 401);
            }
            if self.online.contains_key(&addr) {
                self.kick(&addr, crate::faults::Kick::Replaced);
            }
            self.online.insert(
                addr.clone(),
                Online {
                    conn_id,
                    tx: tx.clone(),
                },
            );
            self.stats.logins += 1;
            let lid = self
                .accounts
                .get(&addr.pn)
                .map(|a| a.lid.clone())
                .unwrap_or_default();
            let lid_device = lid_jid(&lid)
                .with_device(addr.dev)
                .unwrap_or_else(|_| lid_jid(&lid));
            let success = Node::new("success")
                .attr("t", now_secs())
                .attr("props", "1")
                .attr("abprops", "1")
                .attr("location", "sim")
                .attr("creation", now_secs())
                .attr("lid", lid_device);
            let _ = tx.send(ConnCmd::Send(success));
            self.deliver_offline(&addr);
            let prekeys = self
                .accounts
                .get(&addr.pn)
                .and_then(|a| a.devices.get(&addr.dev))
                .map_or(0, |d| d.prekeys.len());
            if prekeys < crate::iq::MIN_PREKEYS {
                self.prekey_low_notification(&addr, prekeys);
            }
            return AuthOutcome::LoggedIn(addr);
        }
        if let Some(registration) = &payload.device_pairing_data {
            return match self.start_pairing(conn_id, tx, client_static, registration) {
                Ok(()) => AuthOutcome::Pairing,
                Err(_) => refuse(self, 400),
            };
        }
        refuse(self, 400)
    }

    /// `<notification type="encrypt"><count value/></notification>`: asks the device to upload.
    pub(crate) fn prekey_low_notification(&mut self, addr: &DevAddr, count: usize) {
        let pending = self
            .accounts
            .get(&addr.pn)
            .and_then(|a| a.devices.get(&addr.dev))
            .is_some_and(|d| d.queue.has_notification("encrypt"));
        if pending {
            return; // one unacknowledged request is enough
        }
        let id = self.stanza_id();
        let node = Node::new("notification")
            .attr("from", server_jid())
            .attr("type", "encrypt")
            .attr("id", id)
            .attr("t", now_secs())
            .children([Node::new("count").attr("value", count)]);
        self.enqueue(addr, node);
    }

    /// Dispatches one stanza from a connection. Returns the device address if this stanza
    /// changed who the connection is (never, today: pairing ends with a reconnect).
    pub(crate) fn handle_node(
        &mut self,
        conn_id: u64,
        addr: Option<&DevAddr>,
        node: Node,
    ) -> Option<DevAddr> {
        let Some(addr) = addr.cloned() else {
            // Not logged in: only the pairing IQs and pings are meaningful.
            if node.tag == "iq" {
                self.on_pairing_iq(conn_id, &node);
            }
            return None;
        };
        // A stale connection (replaced or kicked) says nothing any more.
        if self.online.get(&addr).is_none_or(|o| o.conn_id != conn_id) {
            return None;
        }
        match &*node.tag {
            "iq" => self.on_iq(&addr, &node),
            "message" => self.on_message(&addr, node),
            "receipt" => self.on_receipt(&addr, node),
            "ack" => self.on_client_ack(&addr, &node),
            "presence" => self.on_presence(&addr, &node),
            "chatstate" => self.on_chatstate(&addr, &node),
            "call" => {
                if let Some(id) = node.attr_value("id").cloned() {
                    let ack = Node::new("ack").attr("class", "call").attr("id", id);
                    self.send_now(&addr, ack);
                }
            }
            _ => {}
        }
        None
    }

    /// Bookkeeping when a socket is gone.
    pub(crate) fn on_socket_closed(&mut self, conn_id: u64, addr: Option<&DevAddr>) {
        self.sockets.remove(&conn_id);
        self.pairings.remove(&conn_id);
        if let Some(addr) = addr
            && self.online.get(addr).is_some_and(|o| o.conn_id == conn_id)
        {
            self.online.remove(addr);
            for subs in self.presence_subs.values_mut() {
                subs.retain(|(d, _)| d != addr);
            }
            let any_online = self.online.keys().any(|a| a.pn == addr.pn);
            if !any_online && let Some(account) = self.accounts.get_mut(&addr.pn) {
                if account.available {
                    account.available = false;
                    account.last_seen = now_secs();
                }
                let pn = addr.pn.clone();
                self.broadcast_presence(&pn);
            }
        }
    }
}
