//! The public handle of one session and the state its two tasks share.
//!
//! Contract: [`Session::start`] spawns the session's two tasks — the *driver* (connection,
//! reader, the single writer, receive path; [`crate::driver`]) and the *worker* (outbox,
//! post-login setup, prekey refills, retry answers; [`crate::worker`]) — and returns the
//! handle plus the event stream. Every async method of [`Session`] is usable from any task;
//! requests reach the driver through a bounded command channel and come back through
//! one-shot channels, so callers never touch the socket. Store calls are synchronous and run
//! on tokio's blocking pool ([`Inner::blocking`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use wasmeow_protocol::binary::{Jid, Node};
use wasmeow_store::{AccountStore, StoreError};

use crate::config::SessionConfig;
use crate::content::MessageContent;
use crate::device::Device;
use crate::events::{ChatState, Event};
use crate::iq::{Outcome, RequestError};
use crate::outbox::{OutboxEntry, SendOutcome};
use crate::ratelimit::RateLimiter;
use crate::stanza::{self, IqErrorNode};

/// Capacity of the command channel to the driver: callers wait when it is full.
const COMMAND_CAPACITY: usize = 64;

/// A request to the driver.
///
/// Memory: a tokio channel allocates its slots in blocks of 32 and keeps one block per
/// channel for the session's lifetime, so the node is boxed to keep `Command` (and that block)
/// small — about 1.5 KiB per idle session instead of 4.4 KiB.
pub(crate) enum Command {
    /// Write `node`; if `waiter` is set, register it under the node's id first and answer it
    /// with the `<iq>` result or `<ack>` that carries the same id.
    Send {
        node: Box<Node>,
        waiter: Option<(String, oneshot::Sender<Outcome<Node>>)>,
    },
    /// Close the connection and stop the session.
    Stop,
}

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Not connected (initially, between attempts, after a disconnect).
    Disconnected,
    /// Handshaking / waiting for login.
    Connecting,
    /// Waiting for a QR scan or pairing code.
    Pairing,
    /// Logged in (`<success>` received) — IQs may be sent; setup may still run.
    LoggedIn,
    /// Ready: prekeys uploaded, active, outbox running.
    Ready,
    /// Stopped for good (logged out, replaced, banned, outdated, stopped by the caller).
    Stopped,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IqError {
    /// No response (timeout, disconnect, not connected).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The server answered with an error.
    #[error(transparent)]
    Server(#[from] IqErrorNode),
    /// The session has stopped.
    #[error("session stopped")]
    Stopped,
    /// The response did not have the expected shape.
    #[error("unexpected response: {0}")]
    Unexpected(&'static str),
}

/// A session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A request to the server failed.
    #[error(transparent)]
    Iq(#[from] IqError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Not paired / not logged in.
    #[error("not logged in")]
    NotLoggedIn,
    /// A JID argument is unusable here.
    #[error("invalid JID {0}")]
    InvalidJid(String),
    /// Something else, described.
    #[error("{0}")]
    Other(String),
}

/// In-memory state shared by the driver, the worker and the API. Small on purpose: keys
/// and sessions live in the store.
pub(crate) struct Shared {
    /// The credentials (cached copy of the store's record).
    pub device: Option<Arc<Device>>,
    /// Senders with an active pairing-code attempt.
    pub pair_code: Option<crate::pairing::PairCodeSession>,
    /// Per (group → devices) that already received our current sender key.
    pub skdm_sent: std::collections::HashMap<String, std::collections::HashSet<String>>,
    /// Group participant cache (group → participant JIDs), invalidated by w:gp2.
    pub group_members: std::collections::HashMap<String, Vec<Jid>>,
    /// Retry receipts we sent per incoming message id (bounded).
    pub retries_sent: std::collections::HashMap<String, u32>,
    /// Retry receipts we answered per (sender, message id) (bounded).
    pub retries_answered: std::collections::HashMap<String, u32>,
    /// Outbox waiters: message id → the caller waiting for the outcome.
    pub send_waiters: std::collections::HashMap<String, oneshot::Sender<SendOutcome>>,
}

/// Bounds of the small maps in [`Shared`].
pub(crate) const SMALL_MAP_CAP: usize = 256;

pub(crate) struct Inner<A: AccountStore> {
    pub config: SessionConfig,
    pub store: A,
    pub events: mpsc::UnboundedSender<Event>,
    pub commands: mpsc::Sender<Command>,
    pub jobs: mpsc::UnboundedSender<crate::worker::Job>,
    pub state: watch::Sender<ConnState>,
    pub shared: Mutex<Shared>,
    pub limiter: Mutex<RateLimiter>,
    pub outbox_wake: Notify,
    /// Send `<receipt>` without `type="inactive"` (after presence available).
    pub active_receipts: AtomicBool,
    id_prefix: String,
    id_counter: AtomicU64,
    pub rng: Mutex<StdRng>,
}

impl<A: AccountStore> Inner<A> {
    /// A fresh request id, unique for the session's lifetime.
    pub(crate) fn next_id(&self) -> String {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{}{}", self.id_prefix, n)
    }

    /// Runs a synchronous store operation without stalling the runtime: in place on a
    /// multi-thread runtime (`block_in_place` hands this worker's other tasks to another
    /// thread, and costs nothing when there are none), on the blocking pool otherwise. Store
    /// calls are short (a memory map, or one redb transaction), so doing them in place saves
    /// the thread hand-off that dominates a small call.
    pub(crate) async fn blocking<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(A) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: Send + 'static + From<StoreError>,
    {
        let store = self.store.clone();
        if tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread
        {
            return tokio::task::block_in_place(move || f(store));
        }
        match tokio::task::spawn_blocking(move || f(store)).await {
            Ok(r) => r,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// Emits an event (dropped silently if nobody listens any more).
    pub(crate) fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// The cached credentials.
    pub(crate) fn device(&self) -> Option<Arc<Device>> {
        self.shared
            .lock()
            .expect("shared state lock")
            .device
            .clone()
    }

    /// Our own phone-number JID (device form), once paired.
    pub(crate) fn own_jid(&self) -> Option<Jid> {
        self.device().and_then(|d| d.jid.clone())
    }

    /// Writes a node without waiting for anything.
    pub(crate) async fn send_node(&self, node: Node) -> Result<(), IqError> {
        self.commands
            .send(Command::Send {
                node: Box::new(node),
                waiter: None,
            })
            .await
            .map_err(|_| IqError::Stopped)
    }

    /// Writes `node` (assigning an id if it has none) and waits for the `<iq>`/`<ack>` with the
    /// same id. An `iq type="error"` becomes [`IqError::Server`].
    pub(crate) async fn request(&self, mut node: Node) -> Result<Node, IqError> {
        let id = match node.attr_str("id") {
            Some(id) => id.to_owned(),
            None => {
                let id = self.next_id();
                node.set_attr("id", id.clone());
                id
            }
        };
        let rx = self.request_raw(node, id).await?;
        let response = rx.await.map_err(|_| IqError::Stopped)??;
        Ok(stanza::check_iq(response)?)
    }

    /// Queues `node` with a waiter for `id`; returns the receiver of the answer.
    pub(crate) async fn request_raw(
        &self,
        node: Node,
        id: String,
    ) -> Result<oneshot::Receiver<Outcome<Node>>, IqError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Send {
                node: Box::new(node),
                waiter: Some((id, tx)),
            })
            .await
            .map_err(|_| IqError::Stopped)?;
        Ok(rx)
    }

    /// A per-call rng seeded from the session rng (cheap; usable inside blocking closures).
    pub(crate) fn fork_rng(&self) -> StdRng {
        let mut rng = self.rng.lock().expect("rng lock");
        StdRng::from_rng(&mut *rng)
    }
}

/// A running session. Cheap to clone.
pub struct Session<A: AccountStore> {
    pub(crate) inner: Arc<Inner<A>>,
}

impl<A: AccountStore> Clone for Session<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<A: AccountStore> std::fmt::Debug for Session<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("account", &self.inner.store.name())
            .finish_non_exhaustive()
    }
}

impl<A: AccountStore> Session<A> {
    /// Starts a session on `store` (one account) and returns its handle and event stream.
    /// Must be called inside a tokio runtime.
    pub fn start(config: SessionConfig, store: A) -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (events, event_rx) = mpsc::unbounded_channel();
        let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (jobs, job_rx) = mpsc::unbounded_channel();
        let (state, _) = watch::channel(ConnState::Disconnected);
        let mut seed_rng: StdRng = rand::make_rng();
        let mut b = [0u8; 2];
        rand::Rng::fill_bytes(&mut seed_rng, &mut b);
        let limiter = RateLimiter::new(config.rate_limits.clone());
        let inner = Arc::new(Inner {
            config,
            store,
            events,
            commands,
            jobs,
            state,
            shared: Mutex::new(Shared {
                device: None,
                pair_code: None,
                skdm_sent: Default::default(),
                group_members: Default::default(),
                retries_sent: Default::default(),
                retries_answered: Default::default(),
                send_waiters: Default::default(),
            }),
            limiter: Mutex::new(limiter),
            outbox_wake: Notify::new(),
            active_receipts: AtomicBool::new(false),
            id_prefix: format!("{}.{}-", b[0], b[1]),
            id_counter: AtomicU64::new(0),
            rng: Mutex::new(seed_rng),
        });
        tokio::spawn(crate::driver::run(inner.clone(), command_rx));
        tokio::spawn(crate::worker::run(inner.clone(), job_rx));
        (Self { inner }, event_rx)
    }

    /// The account's store handle.
    pub fn store(&self) -> &A {
        &self.inner.store
    }

    /// Our phone-number device JID, once paired.
    pub fn own_jid(&self) -> Option<Jid> {
        self.inner.own_jid()
    }

    /// Our LID device JID, once known.
    pub fn own_lid(&self) -> Option<Jid> {
        self.inner.device().and_then(|d| d.lid.clone())
    }

    /// The current connection state.
    pub fn state(&self) -> ConnState {
        *self.inner.state.borrow()
    }

    /// Waits until the state satisfies `pred` or `timeout` passes; returns the state.
    pub async fn wait_for_state(
        &self,
        timeout: Duration,
        pred: impl Fn(ConnState) -> bool,
    ) -> Option<ConnState> {
        let mut rx = self.inner.state.subscribe();
        let deadline = Instant::now() + timeout;
        loop {
            let s = *rx.borrow_and_update();
            if pred(s) {
                return Some(s);
            }
            if tokio::time::timeout_at(deadline.into(), rx.changed())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    /// Waits until the session is [`ConnState::Ready`].
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        self.wait_for_state(timeout, |s| s == ConnState::Ready)
            .await
            .is_some()
    }

    /// How many times the outbox held a send back to respect the rate limits (a metric).
    pub fn rate_limit_waits(&self) -> u64 {
        self.inner.limiter.lock().expect("limiter lock").waits()
    }

    /// Sends a raw IQ and waits for its result (advanced use and tests).
    pub async fn request(&self, node: Node) -> Result<Node, IqError> {
        self.inner.request(node).await
    }

    /// Queues `content` for `chat` in the persistent outbox and returns the message id and a
    /// receiver for the final outcome. The outbox obeys the configured rate limits.
    pub async fn send(
        &self,
        chat: &Jid,
        content: MessageContent,
    ) -> Result<(String, oneshot::Receiver<SendOutcome>), SessionError> {
        self.send_with(chat, content, |_| Ok(())).await
    }

    /// [`send`](Self::send), with `also` run in the same store transaction that queues the
    /// message: both commit or neither does. A caller that records its own progress this way
    /// (a campaign marking a recipient done) can never lose a message or queue it twice across a
    /// crash. If `also` fails, nothing is queued and its error is returned.
    pub async fn send_with<F>(
        &self,
        chat: &Jid,
        content: MessageContent,
        also: F,
    ) -> Result<(String, oneshot::Receiver<SendOutcome>), SessionError>
    where
        F: FnOnce(&wasmeow_store::Tx<'_>) -> Result<(), StoreError> + Send + 'static,
    {
        let device = self.inner.device().ok_or(SessionError::NotLoggedIn)?;
        let own = device.jid.clone().ok_or(SessionError::NotLoggedIn)?;
        if content.to_proto().is_none() {
            return Err(SessionError::Other(
                "this content kind cannot be sent".into(),
            ));
        }
        let id = crate::send::message_id(&own, &mut self.inner.fork_rng());
        let entry = OutboxEntry {
            id: id.clone(),
            chat: chat.to_non_ad().to_string(),
            content,
        };
        let payload = serde_json::to_vec(&entry).map_err(|e| SessionError::Other(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        self.inner
            .shared
            .lock()
            .expect("shared state lock")
            .send_waiters
            .insert(id.clone(), tx);
        let queued = self
            .inner
            .blocking(move |store| {
                store.write::<_, StoreError>(|tx| {
                    also(tx)?;
                    wasmeow_store::QueueStore::queue_push(
                        tx,
                        wasmeow_store::Queue::Outbox,
                        &payload,
                    )
                })
            })
            .await;
        if let Err(e) = queued {
            self.inner
                .shared
                .lock()
                .expect("shared state lock")
                .send_waiters
                .remove(&id);
            return Err(e.into());
        }
        self.inner.outbox_wake.notify_one();
        Ok((id, rx))
    }

    /// [`send`](Self::send) and wait for the outcome.
    pub async fn send_and_wait(
        &self,
        chat: &Jid,
        content: MessageContent,
    ) -> Result<SendOutcome, SessionError> {
        let (_, rx) = self.send(chat, content).await?;
        rx.await.map_err(|_| SessionError::Iq(IqError::Stopped))
    }

    /// Sends a text message and waits until the server accepted it.
    pub async fn send_text(&self, chat: &Jid, text: &str) -> Result<SendOutcome, SessionError> {
        self.send_and_wait(chat, MessageContent::text(text)).await
    }

    /// Marks messages as read. `sender` is the author in groups (`participant`).
    pub async fn mark_read(
        &self,
        chat: &Jid,
        sender: Option<&Jid>,
        ids: &[String],
    ) -> Result<(), SessionError> {
        let Some((first, rest)) = ids.split_first() else {
            return Ok(());
        };
        let now = crate::driver::unix_now();
        let mut node = Node::new("receipt")
            .attr("id", first.clone())
            .attr("to", chat.to_non_ad())
            .attr("type", "read")
            .attr("t", now.to_string());
        if let Some(s) = sender {
            node.set_attr("participant", s.clone());
        }
        if !rest.is_empty() {
            node.push_child(
                Node::new("list").children(
                    rest.iter()
                        .map(|id| Node::new("item").attr("id", id.clone())),
                ),
            );
        }
        self.inner.send_node(node).await?;
        Ok(())
    }

    /// Sets our availability (`<presence type="available|unavailable" name>`).
    pub async fn send_presence(&self, available: bool) -> Result<(), SessionError> {
        crate::worker::send_presence(&self.inner, available).await
    }

    /// Sends a typing state to `chat`.
    pub async fn send_chat_state(&self, chat: &Jid, state: ChatState) -> Result<(), SessionError> {
        let child = match state {
            ChatState::Composing => Node::new("composing"),
            ChatState::Recording => Node::new("composing").attr("media", "audio"),
            ChatState::Paused => Node::new("paused"),
        };
        let node = Node::new("chatstate")
            .attr("to", chat.to_non_ad())
            .child(child);
        self.inner.send_node(node).await?;
        Ok(())
    }

    /// Starts the phone-number pairing flow for `phone` (digits, international format) and
    /// returns the code to type on the phone (`XXXX-XXXX`). The session must be waiting for a
    /// QR scan ([`ConnState::Pairing`]).
    pub async fn pair_phone(&self, phone: &str) -> Result<String, SessionError> {
        crate::driver::start_pair_code(&self.inner, phone).await
    }

    /// Unlinks this device (`remove-companion-device`), wipes the credentials and stops.
    pub async fn logout(&self) -> Result<(), SessionError> {
        if let Some(jid) = self.own_jid() {
            let node = stanza::iq("md", "set", stanza::server()).child(
                Node::new("remove-companion-device")
                    .attr("jid", jid)
                    .attr("reason", "user_initiated"),
            );
            self.inner.request(node).await?;
        }
        crate::driver::wipe_credentials(&self.inner).await?;
        self.inner.emit(Event::Connection(
            crate::events::ConnectionEvent::LoggedOut {
                reason: "user_initiated".into(),
            },
        ));
        let _ = self.inner.commands.send(Command::Stop).await;
        Ok(())
    }

    /// Closes the connection and stops the session (credentials are kept).
    pub async fn stop(&self) {
        let _ = self.inner.commands.send(Command::Stop).await;
        let _ = self
            .wait_for_state(Duration::from_secs(10), |s| s == ConnState::Stopped)
            .await;
    }
}
