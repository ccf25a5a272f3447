//! The connection driver: one task per session that owns the WebSocket, the Noise codec and
//! the table of outstanding requests, and is the session's only writer.
//!
//! ```text
//!                 ┌────────────── driver task (this module) ───────────────┐
//!  Session API ──►│ commands ─► encode ─► seal ─► frame ─► WebSocket write │
//!  worker task ──►│                                                        │
//!                 │ WebSocket read ─► deframe ─► open ─► decode ─► route:  │
//!                 │   iq/ack ───────► Pending (id → waiter, deadline)      │
//!                 │   message ──────► recv (decrypt + store tx) ► receipt  │
//!                 │   receipt / notification / presence / chatstate ► events, jobs
//!                 │   success / failure / stream:error ─► lifecycle        │
//!                 │ timers: request deadlines, keepalive ping, QR rotation │
//!                 └─────────────────────────┬──────────────────────────────┘
//!                                           │ end of connection (typed reason)
//!                  reconnect policy: 515 → at once (once); network/5xx → backoff
//!                  with jitter; 401/403/406 → wipe + LoggedOut; 440 → StreamReplaced;
//!                  402 → TemporaryBan; 405 → ClientOutdated; QR exhausted → QrTimeout
//! ```
//!
//! Contract: nodes are processed strictly in arrival order, one at a time, so the receive
//! path commits each message (ratchet state, dedupe id, inbound queue entry: one store
//! transaction) before the next node is read and before its receipt is written. The driver
//! never waits for a response to its own request inline (that would deadlock the reader);
//! work that needs request/response round trips is handed to the worker as a
//! [`Job`](crate::worker::Job). Between connections, commands are answered with
//! [`RequestError::NotConnected`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::RngExt as _;
use tokio::sync::mpsc;
use wasmeow_protocol::binary::{Jid, Node};
use wasmeow_protocol::noise::CertVerifier;
use wasmeow_store::{AccountStore, DeviceStore as _, StoreError};

use crate::backoff::Backoff;
use crate::device::Device;
use crate::events::{ChatState, ChatStateEvent, ConnectionEvent, Event, PresenceEvent};
use crate::iq::{Pending, RequestError};
use crate::pairing::{self, DEFAULT_QR_PLATFORM, PairCodeSession};
use crate::session::{Command, ConnState, Inner, SessionError};
use crate::socket::{self, NodeCodec, SocketError};
use crate::stanza::{self, jid_attr, str_attr, u64_attr};
use crate::transport::WsTransport;
use crate::worker::Job;
use crate::{payload, recv};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How long the first QR ref is valid, and each later one.
const FIRST_QR_VALIDITY: Duration = Duration::from_secs(60);
const NEXT_QR_VALIDITY: Duration = Duration::from_secs(20);

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The caller stopped the session.
    Stop,
    /// `515`: reconnect now (after pairing, or when the server asks).
    Restart,
    /// Logged out (`401`, `403`, `406`, `device_removed`).
    LoggedOut(String),
    /// `<conflict type="replaced"/>`.
    Replaced,
    /// `402`.
    TempBan { code: u32, expire: Option<u64> },
    /// `405`.
    Outdated,
    /// The QR refs ran out.
    QrTimeout,
    /// Anything transient: network, 5xx, keepalive.
    Error(String),
}

/// The session's connection loop; runs until the session stops for good.
pub(crate) async fn run<A: AccountStore>(
    inner: Arc<Inner<A>>,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut backoff = Backoff::new(inner.config.backoff);
    let mut immediate_restart = false;
    recv::replay_inbound(&inner).await;
    loop {
        let end = match load_device(&inner).await {
            Ok(device) => {
                let _ = inner.state.send_replace(ConnState::Connecting);
                inner.emit(Event::Connection(ConnectionEvent::Connecting));
                connect_and_run(&inner, &mut commands, device, &mut backoff).await
            }
            Err(e) => End::Error(format!("loading credentials: {e}")),
        };
        inner
            .active_receipts
            .store(false, std::sync::atomic::Ordering::Relaxed);
        if matches!(
            *inner.state.borrow(),
            ConnState::LoggedIn | ConnState::Ready
        ) {
            immediate_restart = false;
        }
        tracing::debug!(?end, account = inner.store.name(), "connection ended");
        let reason = match end {
            End::Stop => break,
            End::Restart if !immediate_restart => {
                // One immediate reconnect per 515; a second 515 without a login in between
                // goes through the back-off like any error.
                immediate_restart = true;
                let _ = inner.state.send_replace(ConnState::Disconnected);
                inner.emit(Event::Connection(ConnectionEvent::Disconnected {
                    reason: "restart required (515)".into(),
                    retry_in_ms: Some(0),
                }));
                continue;
            }
            End::Restart => "restart required (515) again".to_owned(),
            End::LoggedOut(reason) => {
                if let Err(e) = wipe_credentials(&inner).await {
                    tracing::error!(error = %e, "wiping credentials after logout failed");
                }
                inner.emit(Event::Connection(ConnectionEvent::LoggedOut { reason }));
                break;
            }
            End::Replaced => {
                inner.emit(Event::Connection(ConnectionEvent::StreamReplaced));
                break;
            }
            End::TempBan { code, expire } => {
                inner.emit(Event::Connection(ConnectionEvent::TemporaryBan {
                    code,
                    expire_secs: expire,
                }));
                break;
            }
            End::Outdated => {
                inner.emit(Event::Connection(ConnectionEvent::ClientOutdated));
                break;
            }
            End::QrTimeout => {
                inner.emit(Event::Connection(ConnectionEvent::QrTimeout));
                break;
            }
            End::Error(reason) => reason,
        };
        let delay = backoff.next_delay(&mut *inner.rng.lock().expect("rng lock"));
        let _ = inner.state.send_replace(ConnState::Disconnected);
        inner.emit(Event::Connection(ConnectionEvent::Disconnected {
            reason,
            retry_in_ms: Some(delay.as_millis() as u64),
        }));
        // Wait out the delay; refuse requests meanwhile, honour a stop.
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                cmd = commands.recv() => match cmd {
                    None | Some(Command::Stop) => {
                        let _ = inner.state.send_replace(ConnState::Stopped);
                        return;
                    }
                    Some(Command::Send { waiter: Some((_, tx)), .. }) => {
                        let _ = tx.send(Err(RequestError::NotConnected));
                    }
                    Some(Command::Send { waiter: None, .. }) => {}
                },
            }
        }
        immediate_restart = false;
    }
    let _ = inner.state.send_replace(ConnState::Stopped);
}

async fn load_device<A: AccountStore>(
    inner: &Arc<Inner<A>>,
) -> Result<Arc<Device>, crate::device::DeviceError> {
    let mut rng = inner.fork_rng();
    let device = Arc::new(
        inner
            .blocking(move |store| Device::load_or_create(&store, &mut rng))
            .await?,
    );
    inner.shared.lock().expect("shared state lock").device = Some(device.clone());
    Ok(device)
}

/// Deletes the credentials and Signal state of the account (after a logout).
pub(crate) async fn wipe_credentials<A: AccountStore>(
    inner: &Arc<Inner<A>>,
) -> Result<(), SessionError> {
    inner
        .blocking(|store| store.write::<_, StoreError>(|tx| tx.delete_device().map(|_| ())))
        .await?;
    inner.shared.lock().expect("shared state lock").device = None;
    Ok(())
}

/// What one connection needs besides the socket.
struct Conn<'a, A: AccountStore> {
    inner: &'a Arc<Inner<A>>,
    ws: WsTransport,
    codec: NodeCodec,
    pending: Pending<Node>,
    /// Pending keepalive: its id and answer deadline.
    ping: Option<(String, Instant)>,
    next_ping: Option<Instant>,
    last_pong: Instant,
    /// Remaining QR refs and when to show the next one.
    qr_refs: VecDeque<String>,
    qr_next: Option<Instant>,
    logged_in: bool,
    /// Frames were queued on the WebSocket but not flushed yet.
    unflushed: bool,
}

async fn connect_and_run<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    commands: &mut mpsc::Receiver<Command>,
    device: Arc<Device>,
    backoff: &mut Backoff,
) -> End {
    let cfg = &inner.config;
    let mut ws = match cfg
        .endpoint
        .connect(cfg.origin.as_deref(), cfg.connect_timeout)
        .await
    {
        Ok(ws) => ws,
        Err(e) => return End::Error(e.to_string()),
    };
    let client_payload = match (&device.jid, &device.account) {
        (Some(jid), Some(_)) => match jid.user().parse::<u64>() {
            Ok(user) => payload::login(
                cfg.wa_version,
                user,
                u32::from(jid.device()),
                &device.push_name,
            ),
            Err(_) => return End::LoggedOut(format!("stored JID {jid} has no numeric user")),
        },
        _ => payload::registration(
            cfg.wa_version,
            &payload::Registration {
                registration_id: device.identity.registration_id,
                identity: &device.identity.public(),
                signed_prekey_id: device.signed_prekey.id,
                signed_prekey: &device.signed_prekey.key_pair.public,
                signed_prekey_signature: &device.signed_prekey.signature,
                device_name: &cfg.device_name,
            },
        ),
    };
    let verifier = CertVerifier::new(cfg.cert_root);
    let mut rng = inner.fork_rng();
    let codec = match socket::handshake(
        &mut ws,
        device.noise.clone(),
        &client_payload,
        &verifier,
        unix_now(),
        cfg.handshake_timeout,
        &mut rng,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return End::Error(e.to_string()),
    };
    let mut conn = Conn {
        inner,
        ws,
        codec,
        pending: Pending::new(),
        ping: None,
        next_ping: None,
        last_pong: Instant::now(),
        qr_refs: VecDeque::new(),
        qr_next: None,
        logged_in: false,
        unflushed: false,
    };
    let end = conn.run(commands, backoff).await;
    conn.pending.fail_all(RequestError::Disconnected);
    conn.ws.close().await;
    end
}

impl<A: AccountStore> Conn<'_, A> {
    async fn run(&mut self, commands: &mut mpsc::Receiver<Command>, backoff: &mut Backoff) -> End {
        loop {
            let deadline = [
                self.pending.next_deadline(),
                self.ping.as_ref().map(|(_, d)| *d),
                self.next_ping,
                self.qr_next,
                self.next_ping
                    .map(|_| self.last_pong + self.inner.config.keepalive_max_silence),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Input first; once none is ready, what the input produced goes out in one
                // write (several receipts and acks per flush under load, one at a time when idle).
                biased;
                cmd = commands.recv() => match cmd {
                    None | Some(Command::Stop) => return End::Stop,
                    Some(Command::Send { node, waiter }) => {
                        if let Some((id, tx)) = waiter {
                            let deadline = Instant::now() + self.inner.config.request_timeout;
                            self.pending.insert(id, deadline, tx);
                        }
                        if let Err(e) = self.write(&node).await {
                            return End::Error(e.to_string());
                        }
                    }
                },
                received = self.ws.recv() => {
                    match received {
                        Ok(Some(bytes)) => {
                            self.codec.push(&bytes);
                            loop {
                                match self.codec.next_node() {
                                    Ok(Some(node)) => {
                                        if let Some(end) = self.handle_node(node, backoff).await {
                                            return end;
                                        }
                                    }
                                    Ok(None) => break,
                                    Err(e) => return End::Error(e.to_string()),
                                }
                            }
                        }
                        Ok(None) => return End::Error("connection closed by the server".into()),
                        Err(e) => return End::Error(e.to_string()),
                    }
                }
                () = std::future::ready(()), if self.unflushed => {
                    self.unflushed = false;
                    if let Err(e) = self.ws.flush().await {
                        return End::Error(e.to_string());
                    }
                }
                () = sleep => {
                    if let Some(end) = self.on_timer().await {
                        return end;
                    }
                }
            }
        }
    }

    async fn write(&mut self, node: &Node) -> Result<(), SocketError> {
        let bytes = self.codec.encode(node)?;
        self.ws.feed(bytes).await?;
        self.unflushed = true;
        Ok(())
    }

    /// Writes `node`, logging (not failing on) an error: the read side will notice a broken
    /// connection.
    async fn write_logged(&mut self, node: &Node) {
        if let Err(e) = self.write(node).await {
            tracing::warn!(error = %e, tag = %node.tag, "write failed");
        }
    }

    async fn on_timer(&mut self) -> Option<End> {
        let now = Instant::now();
        self.pending.expire(now);
        if let Some((_, deadline)) = &self.ping
            && *deadline <= now
        {
            tracing::debug!("keepalive ping unanswered");
            self.ping = None;
        }
        if self.next_ping.is_some()
            && now.duration_since(self.last_pong) >= self.inner.config.keepalive_max_silence
        {
            return Some(End::Error("keepalive timeout".into()));
        }
        if self.next_ping.is_some_and(|t| t <= now) && self.ping.is_none() {
            let id = self.inner.next_id();
            let ping = stanza::iq("w:p", "get", stanza::server()).attr("id", id.clone());
            self.ping = Some((id, now + self.inner.config.keepalive_deadline));
            self.schedule_ping(now);
            if let Err(e) = self.write(&ping).await {
                return Some(End::Error(e.to_string()));
            }
        }
        if self.qr_next.is_some_and(|t| t <= now) {
            return self.show_next_qr(now);
        }
        None
    }

    fn schedule_ping(&mut self, now: Instant) {
        let (lo, hi) = self.inner.config.keepalive_interval;
        let span = hi.saturating_sub(lo).as_millis() as u64;
        let extra = self
            .inner
            .rng
            .lock()
            .expect("rng lock")
            .random_range(0..=span);
        self.next_ping = Some(now + lo + Duration::from_millis(extra));
    }

    fn show_next_qr(&mut self, now: Instant) -> Option<End> {
        let Some(reference) = self.qr_refs.pop_front() else {
            return Some(End::QrTimeout);
        };
        let device = self.inner.device()?;
        let first = self.qr_next.is_none();
        let validity = if first {
            FIRST_QR_VALIDITY
        } else {
            NEXT_QR_VALIDITY
        };
        let code = pairing::qr_string(
            &reference,
            &device.noise.public,
            &device.identity.public(),
            &device.adv_secret,
            DEFAULT_QR_PLATFORM,
        );
        self.inner.emit(Event::Connection(ConnectionEvent::Qr {
            code,
            valid_for_secs: validity.as_secs(),
        }));
        self.qr_next = Some(now + validity);
        None
    }

    /// Routes one node. `Some(end)` closes the connection.
    async fn handle_node(&mut self, node: Node, backoff: &mut Backoff) -> Option<End> {
        match &*node.tag {
            "iq" => self.handle_iq(node).await,
            "ack" => {
                if let Some(id) = node.attr_str("id").map(str::to_owned) {
                    let _ = self.pending.resolve(&id, node);
                }
                None
            }
            "message" => {
                let replies = recv::handle_message(self.inner, &node).await;
                for reply in replies {
                    self.write_logged(&reply).await;
                }
                None
            }
            "receipt" => {
                self.handle_receipt(&node);
                self.write_logged(&stanza::ack_for(&node, None)).await;
                None
            }
            "notification" => {
                self.handle_notification(&node).await;
                self.write_logged(&stanza::ack_for(&node, None)).await;
                None
            }
            "presence" => {
                if let Some(from) = jid_attr(&node, "from") {
                    let last_seen = u64_attr(&node, "last");
                    self.inner.emit(Event::Presence(PresenceEvent {
                        from: from.to_string(),
                        available: node.attr_str("type") != Some("unavailable"),
                        last_seen,
                    }));
                }
                None
            }
            "chatstate" => {
                self.handle_chatstate(&node);
                None
            }
            "call" => {
                self.write_logged(&stanza::ack_for(&node, None)).await;
                None
            }
            "success" => {
                self.on_success(&node, backoff).await;
                None
            }
            "failure" => Some(failure_end(&node)),
            "stream:error" => Some(stream_error_end(&node)),
            "xmlstreamend" => Some(End::Error("server ended the stream".into())),
            "ib" => {
                if node.child_by_tag("downgrade_webclient").is_some() {
                    self.inner
                        .emit(Event::Connection(ConnectionEvent::PairError {
                            reason:
                                "the QR code was scanned by a phone without multi-device support"
                                    .into(),
                        }));
                }
                None
            }
            other => {
                tracing::debug!(tag = other, "unhandled stanza");
                None
            }
        }
    }

    async fn on_success(&mut self, node: &Node, backoff: &mut Backoff) {
        backoff.reset();
        self.logged_in = true;
        self.qr_next = None;
        self.qr_refs.clear();
        let now = Instant::now();
        self.last_pong = now;
        self.schedule_ping(now);
        // Learn our LID if the server tells it and we did not know it.
        if let (Some(lid), Some(device)) = (jid_attr(node, "lid"), self.inner.device())
            && device.lid.as_ref().map(Jid::to_non_ad) != Some(lid.to_non_ad())
        {
            let mut updated = (*device).clone();
            let dev_no = device.jid.as_ref().map(Jid::device).unwrap_or(0);
            updated.lid = Some(lid.to_non_ad().with_device(dev_no).unwrap_or(lid));
            let saved = updated.clone();
            if let Err(e) = self
                .inner
                .blocking(move |store| store.write(|tx| saved.save(tx)))
                .await
            {
                tracing::warn!(error = %e, "storing our LID failed");
            }
            self.inner.shared.lock().expect("shared state lock").device = Some(Arc::new(updated));
        }
        let _ = self.inner.state.send_replace(ConnState::LoggedIn);
        let _ = self.inner.jobs.send(Job::LoggedIn);
    }

    async fn handle_iq(&mut self, node: Node) -> Option<End> {
        let kind = node.attr_str("type").unwrap_or_default().to_owned();
        if kind == "result" || kind == "error" {
            let id = node.attr_str("id").unwrap_or_default().to_owned();
            if self.ping.as_ref().is_some_and(|(pid, _)| *pid == id) {
                self.ping = None;
                if kind == "result" {
                    self.last_pong = Instant::now();
                }
                return None;
            }
            if let Err(unsolicited) = self.pending.resolve(&id, node) {
                tracing::debug!(id = %id, tag = %unsolicited.tag, "response without a waiter");
            }
            return None;
        }
        let id = node.attr_str("id").unwrap_or_default().to_owned();
        let from = node.attr_value("from").cloned();
        let mut result = Node::new("iq")
            .attr("id", id.clone())
            .attr("type", "result");
        if let Some(from) = &from {
            result.set_attr("to", from.clone());
        }
        if let Some(pd) = node.child_by_tag("pair-device") {
            self.write_logged(&result).await;
            self.qr_refs = pd
                .children_by_tag("ref")
                .filter_map(stanza::text_content)
                .collect();
            let _ = self.inner.state.send_replace(ConnState::Pairing);
            self.qr_next = None;
            return self.show_next_qr(Instant::now());
        }
        if let Some(ps) = node.child_by_tag("pair-success") {
            let ps = ps.clone();
            return self.on_pair_success(&id, &ps).await;
        }
        if node.attr_str("xmlns") == Some("urn:xmpp:ping") {
            self.write_logged(&result).await;
            return None;
        }
        tracing::debug!(id = %id, "unhandled server iq");
        None
    }

    async fn on_pair_success(&mut self, id: &str, ps: &Node) -> Option<End> {
        let error_reply = |code: u32, text: &str| {
            Node::new("iq")
                .attr("id", id.to_owned())
                .attr("to", stanza::server())
                .attr("type", "error")
                .child(
                    Node::new("error")
                        .attr("code", code.to_string())
                        .attr("text", text.to_owned()),
                )
        };
        let device = self.inner.device()?;
        let identity_bytes = ps
            .child_by_tag("device-identity")
            .and_then(|n| n.content_bytes());
        let jid = ps.child_by_tag("device").and_then(|d| jid_attr(d, "jid"));
        let (Some(identity_bytes), Some(jid)) = (identity_bytes, jid) else {
            self.write_logged(&error_reply(500, "internal-error")).await;
            self.inner
                .emit(Event::Connection(ConnectionEvent::PairError {
                    reason: "pair-success without device-identity or device jid".into(),
                }));
            return None;
        };
        let lid = ps.child_by_tag("device").and_then(|d| jid_attr(d, "lid"));
        let mut rng = self.inner.fork_rng();
        let verified = match pairing::verify_device_identity(
            identity_bytes,
            &device.adv_secret,
            &device.identity.key_pair,
            &mut rng,
        ) {
            Ok(v) => v,
            Err(e) => {
                let text = match e {
                    pairing::PairError::HmacMismatch => "hmac-mismatch",
                    pairing::PairError::AccountSignatureMismatch => "signature-mismatch",
                    _ => "internal-error",
                };
                let code = if text == "internal-error" { 500 } else { 401 };
                self.write_logged(&error_reply(code, text)).await;
                self.inner
                    .emit(Event::Connection(ConnectionEvent::PairError {
                        reason: e.to_string(),
                    }));
                return None;
            }
        };
        let platform = ps
            .child_by_tag("platform")
            .and_then(|p| str_attr(p, "name"))
            .unwrap_or_default();
        let business_name = ps.child_by_tag("biz").and_then(|b| str_attr(b, "name"));
        let mut updated = (*device).clone();
        updated.account = Some(verified.account.clone());
        updated.jid = Some(jid.clone());
        updated.lid = lid.clone();
        updated.platform = platform.clone();
        updated.push_name = self.inner.config.push_name.clone();
        let saved = updated.clone();
        let primary = verified.primary_identity;
        let result = self
            .inner
            .blocking(move |store| {
                store.write(|tx| {
                    use wasmeow_store::IdentityStore as _;
                    saved.save(tx)?;
                    // The primary phone's identity is the account signature key: trust it for
                    // device 0 of our user (both identities, when the LID is known).
                    if let Some(jid) = &saved.jid {
                        tx.put_identity(&crate::send::address(&jid.to_non_ad()), &primary.0)?;
                    }
                    if let Some(lid) = &saved.lid {
                        tx.put_identity(&crate::send::address(&lid.to_non_ad()), &primary.0)?;
                        if let Some(jid) = &saved.jid {
                            crate::send::store_lid_mapping(tx, lid.user(), jid.user())?;
                        }
                    }
                    Ok::<_, StoreError>(())
                })
            })
            .await;
        if let Err(e) = result {
            self.write_logged(&error_reply(500, "internal-error")).await;
            self.inner
                .emit(Event::Connection(ConnectionEvent::PairError {
                    reason: format!("storing credentials: {e}"),
                }));
            return None;
        }
        self.inner.shared.lock().expect("shared state lock").device = Some(Arc::new(updated));
        let reply = Node::new("iq")
            .attr("to", stanza::server())
            .attr("type", "result")
            .attr("id", id.to_owned())
            .child(
                Node::new("pair-device-sign").child(
                    Node::new("device-identity")
                        .attr("key-index", verified.key_index.to_string())
                        .bytes(verified.reply),
                ),
            );
        self.write_logged(&reply).await;
        self.qr_next = None;
        self.qr_refs.clear();
        self.inner.emit(Event::Connection(ConnectionEvent::Paired {
            jid: jid.to_string(),
            lid: lid.map(|l| l.to_string()),
            platform,
            business_name,
        }));
        None
    }

    fn handle_receipt(&mut self, node: &Node) {
        if node.attr_str("type") == Some("retry") {
            let _ = self
                .inner
                .jobs
                .send(Job::RetryReceipt(Box::new(node.clone())));
        }
        if let Some(event) = recv::receipt_event(node) {
            self.inner.emit(Event::Receipt(event));
        }
    }

    fn handle_chatstate(&mut self, node: &Node) {
        let Some(from) = jid_attr(node, "from") else {
            return;
        };
        let sender = jid_attr(node, "participant").unwrap_or_else(|| from.clone());
        let state = match node.child_nodes().first() {
            Some(c) if c.tag == "composing" && c.attr_str("media") == Some("audio") => {
                ChatState::Recording
            }
            Some(c) if c.tag == "composing" => ChatState::Composing,
            Some(c) if c.tag == "paused" => ChatState::Paused,
            _ => return,
        };
        self.inner.emit(Event::ChatState(ChatStateEvent {
            chat: from.to_non_ad().to_string(),
            sender: sender.to_string(),
            state,
        }));
    }

    async fn handle_notification(&mut self, node: &Node) {
        match node.attr_str("type").unwrap_or_default() {
            "encrypt" => {
                if let Some(count) = node
                    .child_by_tag("count")
                    .and_then(|c| u64_attr(c, "value"))
                {
                    if count < u64::from(self.inner.config.min_prekey_count) {
                        let _ = self.inner.jobs.send(Job::RefillPrekeys);
                    }
                } else if node.child_by_tag("identity").is_some()
                    && let Some(from) = jid_attr(node, "from")
                {
                    recv::identity_changed(self.inner, &from, false).await;
                }
            }
            "devices" => {
                if let Some(from) = jid_attr(node, "from") {
                    recv::invalidate_devices(self.inner, &from).await;
                }
            }
            "w:gp2" => {
                // LID-addressed groups name members by LID and give their phone number alongside
                // (`<participant jid=lid phone_number=pn>`): remember the pairs, so later events
                // and sends can use either identity.
                let pairs: Vec<(String, String)> = node
                    .child_nodes()
                    .iter()
                    .flat_map(|change| change.child_nodes().iter())
                    .filter_map(|p| {
                        let jid = jid_attr(p, "jid")?;
                        let pn = jid_attr(p, "phone_number")?;
                        (*jid.server() == wasmeow_protocol::binary::Server::Lid)
                            .then(|| (jid.user().to_owned(), pn.user().to_owned()))
                    })
                    .collect();
                if !pairs.is_empty() {
                    let result = self
                        .inner
                        .blocking(move |store| {
                            store.write::<_, StoreError>(|tx| {
                                for (lid, pn) in &pairs {
                                    crate::send::store_lid_mapping(tx, lid, pn)?;
                                }
                                Ok(())
                            })
                        })
                        .await;
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "storing group LID mappings failed");
                    }
                }
                for event in crate::groups::parse_notification(node) {
                    self.inner
                        .shared
                        .lock()
                        .expect("shared state lock")
                        .group_members
                        .remove(&event.group);
                    self.inner.emit(Event::Group(event));
                }
            }
            "link_code_companion_reg" => {
                let _ = self
                    .inner
                    .jobs
                    .send(Job::PairCodeFinish(Box::new(node.clone())));
            }
            other => tracing::debug!(kind = other, "unhandled notification"),
        }
    }
}

fn failure_end(node: &Node) -> End {
    let reason = u64_attr(node, "reason").unwrap_or(0) as u32;
    match reason {
        401 | 403 | 406 => End::LoggedOut(format!("failure {reason}")),
        402 => End::TempBan {
            code: u64_attr(node, "code").unwrap_or(0) as u32,
            expire: u64_attr(node, "expire"),
        },
        405 => End::Outdated,
        _ => End::Error(format!("login failure {reason}")),
    }
}

fn stream_error_end(node: &Node) -> End {
    let code = node.attr_str("code").unwrap_or_default();
    if code == "515" {
        return End::Restart;
    }
    if let Some(conflict) = node.child_by_tag("conflict") {
        return match conflict.attr_str("type") {
            Some("replaced") => End::Replaced,
            Some("device_removed") => End::LoggedOut("device removed".into()),
            other => End::Error(format!("stream conflict {other:?}")),
        };
    }
    if code == "401" {
        return End::LoggedOut("stream error 401".into());
    }
    End::Error(format!("stream error {code:?}"))
}

/// Starts the pairing-code flow: companion hello. Returns the code to show.
pub(crate) async fn start_pair_code<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    phone: &str,
) -> Result<String, SessionError> {
    if *inner.state.borrow() != ConnState::Pairing {
        return Err(SessionError::Other(
            "pairing by code needs a connection waiting for a QR scan".into(),
        ));
    }
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return Err(SessionError::InvalidJid(phone.to_owned()));
    }
    let device = inner.device().ok_or(SessionError::NotLoggedIn)?;
    let jid: Jid = format!("{digits}@s.whatsapp.net")
        .parse()
        .map_err(|_| SessionError::InvalidJid(phone.to_owned()))?;
    let mut rng = inner.fork_rng();
    let (session, wrapped) = tokio::task::spawn_blocking(move || {
        let s = PairCodeSession::generate(&mut rng);
        let w = s.wrapped_ephemeral(&mut rng);
        (s, w)
    })
    .await
    .map_err(|e| SessionError::Other(e.to_string()))?;
    let node = stanza::iq("md", "set", stanza::server()).child(
        Node::new("link_code_companion_reg")
            .attr("jid", jid)
            .attr("stage", "companion_hello")
            .attr("should_show_push_notification", "true")
            .children([
                Node::new("link_code_pairing_wrapped_companion_ephemeral_pub").bytes(wrapped),
                Node::new("companion_server_auth_key_pub").bytes(device.noise.public.0.to_vec()),
                Node::new("companion_platform_id").bytes(vec![DEFAULT_QR_PLATFORM as u8]),
                Node::new("companion_platform_display").bytes(b"Chrome (Linux)".to_vec()),
                Node::new("link_code_pairing_nonce").bytes(vec![0u8]),
            ]),
    );
    let response = inner.request(node).await?;
    let pairing_ref = response
        .child_by_path(&["link_code_companion_reg", "link_code_pairing_ref"])
        .and_then(|n| {
            n.content_bytes()
                .map(<[u8]>::to_vec)
                .or_else(|| n.content_str().map(|s| s.as_bytes().to_vec()))
        })
        .ok_or(SessionError::Iq(crate::session::IqError::Unexpected(
            "no link_code_pairing_ref",
        )))?;
    let mut session = session;
    session.pairing_ref = Some(pairing_ref);
    let code = session.display_code();
    inner.shared.lock().expect("shared state lock").pair_code = Some(session);
    inner.emit(Event::Connection(ConnectionEvent::PairCode {
        code: code.clone(),
    }));
    Ok(code)
}
