//! The worker: the session's second task, for everything that needs request/response round
//! trips and so cannot run inside the driver (which must keep reading).
//!
//! Contract: jobs from the driver run one at a time, in order:
//! - [`Job::LoggedIn`]: prekey count → upload (812 when the server has none, 50 when it has
//!   fewer than 5) → `passive`→`active` → presence → [`ConnState::Ready`] + `Connected`.
//! - [`Job::RefillPrekeys`]: upload more prekeys.
//! - [`Job::RetryReceipt`]: re-encrypt a recent message for the device that failed.
//! - [`Job::PairCodeFinish`]: the phone's half of the pairing-code flow.
//!
//! Between jobs the worker drains the outbox while the session is ready: entries are sent in
//! queue order without waiting for each ack (up to [`MAX_IN_FLIGHT`] outstanding), each only
//! when the [`RateLimiter`](crate::ratelimit::RateLimiter) allows; acks are matched as they
//! come. `429`/`463` pause all sends (back-off in the limiter) and the entry is sent again
//! later; other errors are final; timeouts and disconnects retry up to [`MAX_ATTEMPTS`].

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::sync::mpsc;
use wasmeow_protocol::binary::{Jid, Node};
use wasmeow_store::{
    AccountStore, PreKeyStore as _, Queue, QueueItem, QueueStore as _, SenderKeyStore as _,
    SessionStore as _, StoreError,
};

use crate::device;
use crate::events::{ConnectionEvent, Event, SendResultEvent};
use crate::iq::{Outcome, RequestError};
use crate::outbox::{OutboxEntry, SendError, SendOutcome};
use crate::session::{ConnState, Inner, IqError, SessionError};
use crate::stanza;

/// Most messages sent and not yet acknowledged.
pub const MAX_IN_FLIGHT: usize = 64;
/// Transient failures before an entry is given up.
pub const MAX_ATTEMPTS: u32 = 5;

/// Work the driver hands over. Nodes are boxed: the job channel keeps a block of 32 slots
/// allocated for the session's lifetime, and a small `Job` keeps that block small.
#[derive(Debug)]
pub(crate) enum Job {
    LoggedIn,
    RefillPrekeys,
    RetryReceipt(Box<Node>),
    PairCodeFinish(Box<Node>),
}

type AckFuture = Pin<Box<dyn Future<Output = (u64, String, String, bool, Outcome<Node>)> + Send>>;

struct Outbox {
    in_flight: FuturesUnordered<AckFuture>,
    in_flight_ids: HashSet<u64>,
    attempts: HashMap<u64, u32>,
    wake_at: Option<Instant>,
}

pub(crate) async fn run<A: AccountStore>(
    inner: Arc<Inner<A>>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    let mut state_rx = inner.state.subscribe();
    let mut ob = Outbox {
        in_flight: FuturesUnordered::new(),
        in_flight_ids: HashSet::new(),
        attempts: HashMap::new(),
        wake_at: None,
    };
    loop {
        let state = *state_rx.borrow_and_update();
        if state == ConnState::Stopped {
            fail_waiters(&inner);
            return;
        }
        // Settle every ack that already arrived (or failed) before sending more: a message
        // whose connection dropped must be resent before the ones queued after it.
        while let Some(Some(done)) = ob.in_flight.next().now_or_never() {
            on_ack(&inner, &mut ob, done).await;
        }
        if state == ConnState::Ready && ob.wake_at.is_none_or(|t| t <= Instant::now()) {
            ob.wake_at = None;
            dispatch(&inner, &mut ob).await;
        }
        let sleep = async {
            match ob.wake_at {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => handle_job(&inner, job).await,
                None => return,
            },
            () = inner.outbox_wake.notified() => {}
            Some(done) = ob.in_flight.next(), if !ob.in_flight.is_empty() => on_ack(&inner, &mut ob, done).await,
            () = sleep => {}
            changed = state_rx.changed() => if changed.is_err() { return },
        }
    }
}

fn fail_waiters<A: AccountStore>(inner: &Arc<Inner<A>>) {
    let waiters: Vec<_> = inner
        .shared
        .lock()
        .expect("shared state lock")
        .send_waiters
        .drain()
        .collect();
    for (id, tx) in waiters {
        let _ = tx.send(SendOutcome {
            id,
            result: Err(SendError::Stopped),
        });
    }
}

async fn handle_job<A: AccountStore>(inner: &Arc<Inner<A>>, job: Job) {
    let result = match job {
        Job::LoggedIn => after_login(inner).await,
        Job::RefillPrekeys => upload_prekeys(inner, inner.config.refill_prekey_count).await,
        Job::RetryReceipt(node) => answer_retry(inner, &node).await,
        Job::PairCodeFinish(node) => pair_code_finish(inner, &node).await,
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "worker job failed");
    }
}

async fn after_login<A: AccountStore>(inner: &Arc<Inner<A>>) -> Result<(), SessionError> {
    let count_node = stanza::iq("encrypt", "get", stanza::server()).child(Node::new("count"));
    let response = inner.request(count_node).await?;
    let server_count = response
        .child_by_tag("count")
        .and_then(|c| stanza::u64_attr(c, "value"))
        .unwrap_or(0);
    let local_uploaded = inner
        .blocking(|store| store.read::<_, StoreError>(|tx| tx.uploaded_prekey_count()))
        .await?;
    let cfg = &inner.config;
    if server_count == 0 {
        upload_prekeys(inner, cfg.initial_prekey_count).await?;
    } else if server_count < u64::from(cfg.min_prekey_count)
        || local_uploaded < cfg.min_prekey_count
    {
        upload_prekeys(inner, cfg.refill_prekey_count).await?;
    }
    let active = stanza::iq("passive", "set", stanza::server()).child(Node::new("active"));
    inner.request(active).await?;
    if cfg.send_presence_on_connect && !cfg.push_name.is_empty() {
        send_presence(inner, true).await?;
    }
    let _ = inner.state.send_replace(ConnState::Ready);
    inner.emit(Event::Connection(ConnectionEvent::Connected));
    inner.outbox_wake.notify_one();
    Ok(())
}

async fn upload_prekeys<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    count: u32,
) -> Result<(), SessionError> {
    let device = inner.device().ok_or(SessionError::NotLoggedIn)?;
    let mut rng = inner.fork_rng();
    let keys = inner
        .blocking(move |store| device::prekeys_for_upload(&store, count, &mut rng))
        .await
        .map_err(|e| SessionError::Other(e.to_string()))?;
    let Some(max_id) = keys.iter().map(|k| k.id).max() else {
        return Ok(());
    };
    inner
        .request(device::prekey_upload_node(&device, &keys))
        .await?;
    inner
        .blocking(move |store| store.write::<_, StoreError>(|tx| tx.mark_prekeys_uploaded(max_id)))
        .await?;
    tracing::debug!(count = keys.len(), "prekeys uploaded");
    Ok(())
}

/// `<presence type="available|unavailable" name>`; "available" also makes our delivery
/// receipts active.
pub(crate) async fn send_presence<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    available: bool,
) -> Result<(), SessionError> {
    let name = inner
        .device()
        .map(|d| d.push_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| inner.config.push_name.clone());
    let mut node = Node::new("presence").attr(
        "type",
        if available {
            "available"
        } else {
            "unavailable"
        },
    );
    if !name.is_empty() {
        node.set_attr("name", name);
    }
    inner.send_node(node).await?;
    inner
        .active_receipts
        .store(available, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

async fn answer_retry<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    receipt: &Node,
) -> Result<(), SessionError> {
    match crate::send::prepare_retry(inner, receipt).await {
        Ok(Some(node)) => {
            inner.send_node(node).await?;
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(SessionError::Other(e.to_string())),
    }
}

async fn pair_code_finish<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    node: &Node,
) -> Result<(), SessionError> {
    let reg = node
        .child_by_tag("link_code_companion_reg")
        .ok_or(SessionError::Other(
            "notification without link_code_companion_reg".into(),
        ))?;
    let bytes = |tag: &str| {
        reg.child_by_tag(tag).and_then(|n| {
            n.content_bytes()
                .map(<[u8]>::to_vec)
                .or_else(|| n.content_str().map(|s| s.as_bytes().to_vec()))
        })
    };
    let (Some(pairing_ref), Some(wrapped), Some(primary_identity)) = (
        bytes("link_code_pairing_ref"),
        bytes("link_code_pairing_wrapped_primary_ephemeral_pub"),
        bytes("primary_identity_pub"),
    ) else {
        return Err(SessionError::Other(
            "incomplete link_code_companion_reg".into(),
        ));
    };
    let session = inner
        .shared
        .lock()
        .expect("shared state lock")
        .pair_code
        .take()
        .ok_or(SessionError::Other(
            "no pairing-code attempt in progress".into(),
        ))?;
    let device = inner.device().ok_or(SessionError::NotLoggedIn)?;
    let mut rng = inner.fork_rng();
    let identity = device.identity.key_pair.clone();
    let pr = pairing_ref.clone();
    let finish = tokio::task::spawn_blocking(move || {
        session.finish(&pr, &wrapped, &primary_identity, &identity, &mut rng)
    })
    .await
    .map_err(|e| SessionError::Other(e.to_string()))?
    .map_err(|e| SessionError::Other(e.to_string()))?;
    // The derived adv secret keys the coming pair-success HMAC: persist it first.
    let mut updated = (*device).clone();
    updated.adv_secret = finish.adv_secret;
    let saved = updated.clone();
    inner
        .blocking(move |store| store.write(|tx| saved.save(tx)))
        .await?;
    inner.shared.lock().expect("shared state lock").device = Some(Arc::new(updated));
    let jid = reg.attr_value("jid").cloned();
    let mut reg_node = Node::new("link_code_companion_reg").attr("stage", "companion_finish");
    if let Some(jid) = jid {
        reg_node.set_attr("jid", jid);
    }
    let iq = stanza::iq("md", "set", stanza::server()).child(reg_node.children([
        Node::new("link_code_pairing_wrapped_key_bundle").bytes(finish.wrapped_key_bundle),
        Node::new("companion_identity_public").bytes(device.identity.public().0.to_vec()),
        Node::new("link_code_pairing_ref").bytes(pairing_ref),
    ]));
    inner.request(iq).await?;
    Ok(())
}

/// Forgets our sender key for `group` so the next message distributes a fresh one.
pub(crate) async fn rotate_sender_key<A: AccountStore>(inner: &Arc<Inner<A>>, group: &Jid) {
    let Some(own) = inner.own_jid() else { return };
    let key = group.to_string();
    inner
        .shared
        .lock()
        .expect("shared state lock")
        .skdm_sent
        .remove(&key);
    let addr = crate::send::address(&own);
    if let Err(e) = inner
        .blocking(move |store| {
            store.write::<_, StoreError>(|tx| tx.delete_sender_key(&key, &addr).map(|_| ()))
        })
        .await
    {
        tracing::warn!(error = %e, "rotating our sender key failed");
    }
}

/// Whether `chat` is a first contact (no session with any of its devices).
fn is_new_chat<A: AccountStore>(store: &A, chat: &Jid) -> Result<bool, StoreError> {
    if chat.is_group() {
        return Ok(false);
    }
    let name = chat.signal_address_user().into_owned();
    store.read(|tx| Ok(tx.sessions_of(&name)?.is_empty()))
}

/// Sends queue entries until the limiter, the in-flight cap or the queue says stop.
async fn dispatch<A: AccountStore>(inner: &Arc<Inner<A>>, ob: &mut Outbox) {
    // One peek per round: the head of the queue, past what is already in flight.
    while ob.in_flight.len() < MAX_IN_FLIGHT {
        let want = ob.in_flight_ids.len() + MAX_IN_FLIGHT;
        let items: Vec<QueueItem> = match inner
            .blocking(move |store| {
                store.read::<_, StoreError>(|tx| tx.queue_peek(Queue::Outbox, want))
            })
            .await
        {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "reading the outbox failed");
                ob.wake_at = Some(Instant::now() + Duration::from_secs(1));
                return;
            }
        };
        let fresh: Vec<QueueItem> = items
            .into_iter()
            .filter(|i| !ob.in_flight_ids.contains(&i.id))
            .collect();
        if fresh.is_empty() {
            return;
        }
        for item in fresh {
            if ob.in_flight.len() >= MAX_IN_FLIGHT {
                return;
            }
            if !dispatch_one(inner, ob, item).await {
                return;
            }
        }
    }
}

/// Sends one queue entry; `false` when dispatching must stop for now (rate limit, transient
/// failure, session gone).
async fn dispatch_one<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    ob: &mut Outbox,
    item: QueueItem,
) -> bool {
    let entry: OutboxEntry = match serde_json::from_slice(&item.payload) {
        Ok(e) => e,
        Err(_) => {
            finish(inner, ob, item.id, "?", "?", Err(SendError::Corrupt)).await;
            return true;
        }
    };
    let chat: Jid = match entry.chat.parse() {
        Ok(c) => c,
        Err(_) => {
            finish(
                inner,
                ob,
                item.id,
                &entry.id,
                &entry.chat,
                Err(SendError::Unsendable("invalid chat JID".into())),
            )
            .await;
            return true;
        }
    };
    let chat2 = chat.clone();
    let new_chat = inner
        .blocking(move |store| is_new_chat(&store, &chat2))
        .await
        .unwrap_or(false);
    let now = Instant::now();
    let verdict = inner
        .limiter
        .lock()
        .expect("limiter lock")
        .check(now, &entry.chat, new_chat);
    if let Err(deferred) = verdict {
        tracing::debug!(limit = ?deferred.limit, "outbox deferred by rate limit");
        ob.wake_at = Some(deferred.until);
        return false;
    }
    let Some(message) = entry.content.to_proto() else {
        finish(
            inner,
            ob,
            item.id,
            &entry.id,
            &entry.chat,
            Err(SendError::Unsendable("content cannot be sent".into())),
        )
        .await;
        return true;
    };
    let prepared = match crate::send::prepare(
        inner,
        &entry.id,
        &chat,
        message,
        entry.content.stanza_type(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) if e.is_transient() => {
            tracing::debug!(error = %e, "outbox send deferred");
            if bump_attempts(ob, item.id) {
                finish(
                    inner,
                    ob,
                    item.id,
                    &entry.id,
                    &entry.chat,
                    Err(SendError::GaveUp(MAX_ATTEMPTS)),
                )
                .await;
                return true;
            }
            ob.wake_at = Some(Instant::now() + Duration::from_secs(1));
            return false;
        }
        Err(e) => {
            finish(
                inner,
                ob,
                item.id,
                &entry.id,
                &entry.chat,
                Err(SendError::Unsendable(e.to_string())),
            )
            .await;
            return true;
        }
    };
    let rx = match inner.request_raw(prepared.node, entry.id.clone()).await {
        Ok(rx) => rx,
        Err(_) => return false,
    };
    {
        let mut rng = inner.fork_rng();
        inner
            .limiter
            .lock()
            .expect("limiter lock")
            .record(now, &entry.chat, new_chat, &mut rng);
    }
    if chat.is_group() && !prepared.skdm_devices.is_empty() {
        let mut shared = inner.shared.lock().expect("shared state lock");
        let set = shared.skdm_sent.entry(chat.to_string()).or_default();
        set.extend(prepared.skdm_devices);
    }
    ob.in_flight_ids.insert(item.id);
    let (qid, mid, chat_s) = (item.id, entry.id, entry.chat);
    ob.in_flight.push(Box::pin(async move {
        let outcome = rx.await.unwrap_or(Err(RequestError::Disconnected));
        (qid, mid, chat_s, chat.is_group(), outcome)
    }));
    true
}

/// Counts a transient failure; `true` when the entry has used up its attempts.
fn bump_attempts(ob: &mut Outbox, qid: u64) -> bool {
    let n = ob.attempts.entry(qid).or_insert(0);
    *n += 1;
    *n >= MAX_ATTEMPTS
}

async fn on_ack<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    ob: &mut Outbox,
    done: (u64, String, String, bool, Outcome<Node>),
) {
    let (qid, msg_id, chat, is_group, outcome) = done;
    ob.in_flight_ids.remove(&qid);
    match outcome {
        Ok(ack) => {
            let error = stanza::u64_attr(&ack, "error").map(|e| e as u32);
            match error {
                None => {
                    inner
                        .limiter
                        .lock()
                        .expect("limiter lock")
                        .server_accepted();
                    let t = stanza::u64_attr(&ack, "t").unwrap_or_else(crate::driver::unix_now);
                    finish(inner, ob, qid, &msg_id, &chat, Ok(t)).await;
                }
                Some(429 | 463) => {
                    let until = inner
                        .limiter
                        .lock()
                        .expect("limiter lock")
                        .server_overlimit(Instant::now());
                    tracing::warn!(?until, "server rate limit: pausing the outbox");
                    ob.wake_at = Some(until);
                }
                Some(code) => {
                    if is_group {
                        // Our distribution bookkeeping may be wrong now; start over.
                        inner
                            .shared
                            .lock()
                            .expect("shared state lock")
                            .skdm_sent
                            .remove(&chat);
                    }
                    finish(inner, ob, qid, &msg_id, &chat, Err(SendError::Server(code))).await;
                }
            }
        }
        Err(RequestError::Timeout | RequestError::Disconnected | RequestError::NotConnected) => {
            if bump_attempts(ob, qid) {
                finish(
                    inner,
                    ob,
                    qid,
                    &msg_id,
                    &chat,
                    Err(SendError::GaveUp(MAX_ATTEMPTS)),
                )
                .await;
            } else {
                ob.wake_at = Some(Instant::now() + Duration::from_millis(200));
            }
        }
    }
}

/// Removes the entry and reports its outcome.
async fn finish<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    ob: &mut Outbox,
    qid: u64,
    msg_id: &str,
    chat: &str,
    result: Result<u64, SendError>,
) {
    ob.attempts.remove(&qid);
    ob.in_flight_ids.remove(&qid);
    if let Err(e) = inner
        .blocking(move |store| store.write::<_, StoreError>(|tx| tx.queue_ack(Queue::Outbox, qid)))
        .await
    {
        tracing::warn!(error = %e, "removing an outbox entry failed");
    }
    inner.emit(Event::SendResult(SendResultEvent {
        id: msg_id.to_owned(),
        chat: chat.to_owned(),
        error: result.as_ref().err().map(ToString::to_string),
        timestamp: result.as_ref().ok().copied(),
    }));
    let waiter = inner
        .shared
        .lock()
        .expect("shared state lock")
        .send_waiters
        .remove(msg_id);
    if let Some(tx) = waiter {
        let _ = tx.send(SendOutcome {
            id: msg_id.to_owned(),
            result,
        });
    }
}

impl From<IqError> for SendError {
    fn from(e: IqError) -> Self {
        SendError::Unsendable(e.to_string())
    }
}
