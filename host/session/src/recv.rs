//! The receive path: `<message>` stanzas to decrypted, committed, receipted events.
//!
//! Contract — **the ordering rule**: for every message the driver runs [`handle_message`]
//! to completion before reading the next stanza, and inside it
//!
//! 1. one store write transaction marks the message id as seen (dedupe), decrypts every
//!    `<enc>` (pkmsg/msg through the pairwise session, then skmsg through the sender key, with
//!    any sender-key distribution processed in between), and writes the new session / sender
//!    key / identity records, the consumed one-time prekey's removal and the decrypted message
//!    (as an `Inbound` queue entry) — all or nothing;
//! 2. only after that commit is the delivery receipt returned for writing;
//! 3. then the event is emitted and the inbound entry acknowledged.
//!
//! A crash before (1) commits loses nothing (the server redelivers, the ratchet did not move);
//! a crash between (1) and (3) replays the entry from the inbound queue at the next start
//! ([`replay_inbound`]); a redelivered message is recognised in (1) by its id and only
//! receipted again. A decrypt failure rolls the whole transaction back (nothing is marked
//! seen) and answers with a retry receipt, so the resent message can still be accepted.

use std::sync::Arc;

use prost::Message as _;
use rand::rngs::StdRng;
use wasmeow_proto::wa;
use wasmeow_protocol::binary::{Jid, Node, Server};
use wasmeow_protocol::signal::{
    self, PreKeySignalMessage, PreKeys, SenderKeyRecord, SessionRecord, SignalError, padding,
};
use wasmeow_store::{
    AccountStore, DedupeStore as _, DeviceListStore as _, IdentityStore as _, LidStore as _,
    PreKeyStore as _, Queue, QueueStore as _, SenderKeyStore as _, SessionStore as _,
    SignedPreKeyStore as _, StoreError, Tx,
};

use crate::content::{self, MessageContent};
use crate::device::{self, Device};
use crate::events::{
    Event, IdentityChangeEvent, MessageEvent, MessageInfo, ReceiptEvent, ReceiptKind,
    UndecryptableEvent,
};
use crate::send::{canonical_address, store_lid_mapping};
use crate::session::{Inner, SMALL_MAP_CAP};
use crate::stanza::{self, jid_attr, str_attr, u64_attr};

/// Why a message could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecvError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{enc_type}: {source}")]
    Signal {
        enc_type: String,
        source: SignalError,
    },
    #[error("stored record malformed: {0}")]
    Record(String),
    #[error("payload is not a valid message: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("no usable <enc> in the message")]
    NothingToDecrypt,
}

impl From<device::DeviceError> for RecvError {
    fn from(e: device::DeviceError) -> Self {
        match e {
            device::DeviceError::Store(s) => Self::Store(s),
            other => Self::Record(other.to_string()),
        }
    }
}

/// Where a message is from, resolved from its attributes.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub info: MessageInfo,
    pub sender: Jid,
    pub chat: Jid,
    pub peer: bool,
}

/// What the decrypt transaction produced.
#[allow(clippy::large_enum_variant)] // built once per message, matched immediately
enum Outcome {
    Duplicate,
    Decrypted {
        event: Option<MessageEvent>,
        inbound_id: Option<u64>,
        identity_changed: bool,
    },
}

fn own_users(device: &Device) -> (Option<String>, Option<String>) {
    (
        device.jid.as_ref().map(|j| j.user().to_owned()),
        device.lid.as_ref().map(|j| j.user().to_owned()),
    )
}

/// Resolves chat, sender and flags of a `<message>`.
pub(crate) fn source(node: &Node, device: &Device) -> Option<Source> {
    let from = jid_attr(node, "from")?;
    let id = node.attr_str("id")?.to_owned();
    let participant = jid_attr(node, "participant");
    let is_group = from.is_group() || from.is_broadcast();
    let sender = if is_group { participant? } else { from.clone() };
    let (own_pn, own_lid) = own_users(device);
    let from_me =
        Some(sender.user()) == own_pn.as_deref() || Some(sender.user()) == own_lid.as_deref();
    let chat = if is_group {
        from.clone()
    } else if from_me {
        jid_attr(node, "recipient")
            .map(|r| r.to_non_ad())
            .unwrap_or_else(|| from.to_non_ad())
    } else {
        from.to_non_ad()
    };
    let sender_alt = [
        "participant_pn",
        "participant_lid",
        "sender_pn",
        "sender_lid",
    ]
    .iter()
    .find_map(|k| str_attr(node, k));
    let push_name = node
        .attr_str("notify")
        .filter(|n| *n != "-")
        .map(str::to_owned);
    Some(Source {
        info: MessageInfo {
            id,
            chat: chat.to_string(),
            sender: sender.to_non_ad().to_string(),
            sender_device: sender.to_string(),
            sender_alt,
            from_me,
            is_group,
            timestamp: u64_attr(node, "t").unwrap_or(0),
            push_name,
        },
        sender,
        chat,
        peer: node.attr_str("category") == Some("peer"),
    })
}

/// Processes one `<message>`; returns the stanzas to write (receipt, retry receipt, ack).
pub(crate) async fn handle_message<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    node: &Node,
) -> Vec<Node> {
    let Some(device) = inner.device() else {
        return vec![stanza::ack_for(node, Some(500))];
    };
    let Some(src) = source(node, &device) else {
        return vec![stanza::ack_for(node, Some(487))];
    };
    let encs: Vec<(String, Vec<u8>)> = node
        .children_by_tag("enc")
        .filter_map(|e| Some((e.attr_str("type")?.to_owned(), e.content_bytes()?.to_vec())))
        .collect();
    if encs.is_empty() {
        return vec![stanza::ack_for(node, None)];
    }
    let now_ms = crate::driver::unix_now() * 1000;
    let dedupe_key = format!("{}|{}|{}", src.info.chat, src.info.sender, src.info.id);
    let sender_alt = [
        "sender_pn",
        "participant_pn",
        "sender_lid",
        "participant_lid",
    ]
    .iter()
    .find_map(|k| jid_attr(node, k));
    let mut rng = inner.fork_rng();
    let task_src = src.clone();
    let result = inner
        .blocking(move |store| {
            store.write(|tx| {
                decrypt_in_tx(
                    tx,
                    &device,
                    &task_src,
                    &encs,
                    &dedupe_key,
                    now_ms,
                    sender_alt.as_ref(),
                    &mut rng,
                )
            })
        })
        .await;
    match result {
        Ok(Outcome::Duplicate) => {
            tracing::debug!(id = %src.info.id, "duplicate message dropped");
            vec![delivery_receipt(inner, node, &src)]
        }
        Ok(Outcome::Decrypted {
            event,
            inbound_id,
            identity_changed,
        }) => {
            let receipt = delivery_receipt(inner, node, &src);
            if identity_changed {
                inner.emit(Event::IdentityChange(IdentityChangeEvent {
                    jid: src.sender.to_non_ad().to_string(),
                    implicit: true,
                }));
            }
            inner
                .shared
                .lock()
                .expect("shared state lock")
                .retries_sent
                .remove(&src.info.id);
            if let Some(event) = event {
                inner.emit(Event::Message(event));
            }
            if let Some(id) = inbound_id {
                ack_inbound(inner, id).await;
            }
            vec![receipt]
        }
        Err(RecvError::Store(e)) => {
            // Nothing was committed; without a receipt the server delivers it again.
            tracing::error!(error = %e, "store failed while receiving a message");
            Vec::new()
        }
        Err(e) => {
            let reason = e.to_string();
            tracing::warn!(id = %src.info.id, %reason, "message could not be decrypted");
            let count = {
                let mut shared = inner.shared.lock().expect("shared state lock");
                if shared.retries_sent.len() >= SMALL_MAP_CAP {
                    shared.retries_sent.clear();
                }
                let c = shared.retries_sent.entry(src.info.id.clone()).or_insert(0);
                *c += 1;
                *c
            };
            let mut out = Vec::new();
            let retry_count = if count <= inner.config.max_retry_receipts {
                match retry_receipt(inner, node, &src, count).await {
                    Ok(r) => out.push(r),
                    Err(e) => tracing::warn!(error = %e, "building a retry receipt failed"),
                }
                count
            } else {
                0
            };
            out.push(stanza::ack_for(node, None));
            inner.emit(Event::Undecryptable(UndecryptableEvent {
                info: src.info.clone(),
                reason,
                retry_count,
            }));
            out
        }
    }
}

/// The decrypt-and-commit transaction body. Any error rolls everything back.
#[allow(clippy::too_many_arguments)]
fn decrypt_in_tx(
    tx: &Tx<'_>,
    device: &Device,
    src: &Source,
    encs: &[(String, Vec<u8>)],
    dedupe_key: &str,
    now_ms: u64,
    sender_alt: Option<&Jid>,
    rng: &mut StdRng,
) -> Result<Outcome, RecvError> {
    if !tx.mark_seen(dedupe_key, now_ms)? {
        return Ok(Outcome::Duplicate);
    }
    if let Some(alt) = sender_alt {
        match (src.sender.server(), alt.server()) {
            (Server::Lid, Server::WhatsApp) => {
                store_lid_mapping(tx, src.sender.user(), alt.user())?
            }
            (Server::WhatsApp, Server::Lid) => {
                store_lid_mapping(tx, alt.user(), src.sender.user())?
            }
            _ => {}
        }
    }
    let addr = canonical_address(tx, &src.sender)?;
    let mut identity_changed = false;
    let mut parsed: Option<content::ParsedMessage> = None;
    let mut decrypted_any = false;
    // Pairwise first: it may carry the sender key the skmsg needs.
    for (enc_type, bytes) in encs.iter().filter(|(t, _)| t == "pkmsg" || t == "msg") {
        let sig_err = |source| RecvError::Signal {
            enc_type: enc_type.clone(),
            source,
        };
        let record = tx
            .get_session(&addr)?
            .map(|b| SessionRecord::from_bytes(&b))
            .transpose()
            .map_err(|e| RecvError::Record(e.to_string()))?;
        let plaintext = if enc_type == "pkmsg" {
            let msg = PreKeySignalMessage::parse(bytes).map_err(sig_err)?;
            let spk = if msg.signed_pre_key_id() == device.signed_prekey.id {
                Some(device.signed_prekey.clone())
            } else {
                tx.get_signed_prekey(msg.signed_pre_key_id())?
                    .map(|r| device::parse_signed_prekey(msg.signed_pre_key_id(), &r))
                    .transpose()?
            };
            let opk = match msg.pre_key_id() {
                Some(id) => tx
                    .get_prekey(id)?
                    .map(|k| device::parse_prekey(id, &k.record))
                    .transpose()?,
                None => None,
            };
            let keys = PreKeys {
                signed: spk.as_ref(),
                one_time: opk.as_ref(),
            };
            let trusted = tx
                .get_identity(&addr)?
                .map(wasmeow_protocol::keys::PublicKey);
            let result = match signal::session::decrypt_prekey_message(
                record.as_ref(),
                &device.identity,
                keys,
                trusted.as_ref(),
                &msg,
                rng,
            ) {
                Err(SignalError::UntrustedIdentity { .. }) => {
                    // The peer re-installed: trust the new identity (as whatsmeow's
                    // AutoTrustIdentity does), start over, and report the change.
                    identity_changed = true;
                    signal::session::decrypt_prekey_message(
                        None,
                        &device.identity,
                        keys,
                        None,
                        &msg,
                        rng,
                    )
                }
                other => other,
            }
            .map_err(sig_err)?;
            tx.put_session(&addr, &result.record.to_bytes())?;
            tx.put_identity(&addr, &msg.identity_key().0)?;
            if let Some(id) = result.used_pre_key_id {
                tx.remove_prekey(id)?;
            }
            result.plaintext
        } else {
            let record = record.ok_or(sig_err(SignalError::NoSession))?;
            let result = signal::session::decrypt_message(&record, bytes, rng).map_err(sig_err)?;
            tx.put_session(&addr, &result.record.to_bytes())?;
            result.plaintext
        };
        let unpadded = padding::unpad(&plaintext).map_err(sig_err)?;
        let p = content::parse_message(unpadded)?;
        if let Some((group, skdm)) = &p.sender_key_distribution {
            let existing = tx
                .get_sender_key(group, &addr)?
                .map(|b| SenderKeyRecord::from_bytes(&b))
                .transpose()
                .map_err(|e| RecvError::Record(e.to_string()))?;
            let updated = signal::group::process_distribution_message(existing.as_ref(), skdm)
                .map_err(sig_err)?;
            tx.put_sender_key(group, &addr, &updated.to_bytes())?;
        }
        decrypted_any = true;
        if p.content.is_some() || parsed.is_none() {
            parsed = Some(p);
        }
    }
    for (_, bytes) in encs.iter().filter(|(t, _)| t == "skmsg") {
        let sig_err = |source| RecvError::Signal {
            enc_type: "skmsg".into(),
            source,
        };
        let group = src.chat.to_string();
        let record = tx
            .get_sender_key(&group, &addr)?
            .map(|b| SenderKeyRecord::from_bytes(&b))
            .transpose()
            .map_err(|e| RecvError::Record(e.to_string()))?
            .unwrap_or_default();
        let result = signal::group::decrypt(&record, bytes).map_err(sig_err)?;
        tx.put_sender_key(&group, &addr, &result.record.to_bytes())?;
        let unpadded = padding::unpad(&result.plaintext).map_err(sig_err)?;
        let p = content::parse_message(unpadded)?;
        decrypted_any = true;
        if p.content.is_some() {
            parsed = Some(p);
        }
    }
    if !decrypted_any {
        return Err(RecvError::NothingToDecrypt);
    }
    let mut info = src.info.clone();
    let parsed = parsed.unwrap_or(content::ParsedMessage {
        content: None,
        sender_key_distribution: None,
        device_sent_destination: None,
    });
    if let Some(dest) = &parsed.device_sent_destination
        && info.from_me
    {
        info.chat = dest.clone();
    }
    let (event, inbound_id) = match parsed.content {
        Some(content) => {
            let event = MessageEvent { info, content };
            let payload =
                serde_json::to_vec(&event).map_err(|e| RecvError::Record(e.to_string()))?;
            let id = tx.queue_push(Queue::Inbound, &payload)?;
            (Some(event), Some(id))
        }
        None => (None, None),
    };
    Ok(Outcome::Decrypted {
        event,
        inbound_id,
        identity_changed,
    })
}

async fn ack_inbound<A: AccountStore>(inner: &Arc<Inner<A>>, id: u64) {
    if let Err(e) = inner
        .blocking(move |store| store.write::<_, StoreError>(|tx| tx.queue_ack(Queue::Inbound, id)))
        .await
    {
        tracing::warn!(error = %e, "acknowledging an inbound entry failed");
    }
}

/// Re-emits messages that were committed but whose event may not have been delivered
/// (the process stopped between commit and emit).
pub(crate) async fn replay_inbound<A: AccountStore>(inner: &Arc<Inner<A>>) {
    let items = match inner
        .blocking(|store| {
            store.read::<_, StoreError>(|tx| tx.queue_peek(Queue::Inbound, usize::MAX))
        })
        .await
    {
        Ok(items) => items,
        Err(e) => {
            tracing::warn!(error = %e, "reading the inbound queue failed");
            return;
        }
    };
    for item in items {
        match serde_json::from_slice::<MessageEvent>(&item.payload) {
            Ok(event) => inner.emit(Event::Message(event)),
            Err(e) => tracing::warn!(error = %e, "dropping an unreadable inbound entry"),
        }
        ack_inbound(inner, item.id).await;
    }
}

/// `<receipt id to [participant] [type]/>` after a message was committed.
fn delivery_receipt<A: AccountStore>(inner: &Arc<Inner<A>>, node: &Node, src: &Source) -> Node {
    let mut r = Node::new("receipt").attr("id", src.info.id.clone());
    if let Some(from) = node.attr_value("from") {
        r.set_attr("to", from.clone());
    }
    if let Some(p) = node.attr_value("participant") {
        r.set_attr("participant", p.clone());
    }
    if src.peer {
        r.set_attr("type", "peer_msg");
    } else if src.info.from_me {
        r.set_attr("type", "sender");
        if let Some(rec) = node.attr_value("recipient") {
            r.set_attr("recipient", rec.clone());
        }
    } else if !inner
        .active_receipts
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        r.set_attr("type", "inactive");
    }
    r
}

/// The retry receipt for a message we failed to decrypt (keys from the second retry on).
async fn retry_receipt<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    node: &Node,
    src: &Source,
    count: u32,
) -> Result<Node, device::DeviceError> {
    let device = inner
        .device()
        .ok_or(device::DeviceError::Malformed("device"))?;
    let mut r = Node::new("receipt")
        .attr("id", src.info.id.clone())
        .attr("type", "retry");
    if let Some(from) = node.attr_value("from") {
        r.set_attr("to", from.clone());
    }
    if let Some(p) = node.attr_value("participant") {
        r.set_attr("participant", p.clone());
    }
    if let Some(rec) = node.attr_value("recipient") {
        r.set_attr("recipient", rec.clone());
    }
    r.push_child(
        Node::new("retry")
            .attr("count", count.to_string())
            .attr("id", src.info.id.clone())
            .attr("t", src.info.timestamp.to_string())
            .attr("v", "1"),
    );
    r.push_child(Node::new("registration").bytes(device::registration_bytes(&device.identity)));
    if count > 1 {
        let mut rng = inner.fork_rng();
        let key = inner
            .blocking(move |store| {
                let k = store.write::<_, StoreError>(|tx| {
                    tx.gen_prekeys(1, &mut |_| device::new_prekey_record(&mut rng))
                })?;
                let k = k
                    .into_iter()
                    .next()
                    .ok_or(device::DeviceError::Malformed("generated prekey"))?;
                device::parse_prekey(k.id, &k.record)
            })
            .await?;
        let mut keys = Node::new("keys").children([
            Node::new("type").bytes(vec![wasmeow_protocol::keys::DJB_TYPE]),
            Node::new("identity").bytes(device.identity.public().0.to_vec()),
            device::prekey_node(&key),
            device::signed_prekey_node(&device.signed_prekey),
        ]);
        if let Some(account) = &device.account {
            keys.push_child(Node::new("device-identity").bytes(account_without_key(account)));
        }
        r.push_child(keys);
    }
    Ok(r)
}

/// Our signed device identity as peers receive it (`accountSignatureKey` included, as
/// whatsmeow sends `Store.Account`).
pub(crate) fn account_without_key(account: &[u8]) -> Vec<u8> {
    match wa::AdvSignedDeviceIdentity::decode(account) {
        Ok(a) => a.encode_to_vec(),
        Err(_) => account.to_vec(),
    }
}

/// The event for an incoming `<receipt>`.
pub(crate) fn receipt_event(node: &Node) -> Option<ReceiptEvent> {
    let from = jid_attr(node, "from")?;
    let first = node.attr_str("id")?.to_owned();
    let participant = jid_attr(node, "participant");
    let raw_type = node.attr_str("type").unwrap_or_default().to_owned();
    let kind = match raw_type.as_str() {
        "" => ReceiptKind::Delivered,
        "read" => ReceiptKind::Read,
        "read-self" => ReceiptKind::ReadSelf,
        "played" => ReceiptKind::Played,
        "played-self" => ReceiptKind::PlayedSelf,
        "sender" => ReceiptKind::Sender,
        "retry" => ReceiptKind::Retry,
        "inactive" => ReceiptKind::Delivered,
        _ => ReceiptKind::Other,
    };
    let mut ids = vec![first];
    if let Some(list) = node.child_by_tag("list") {
        ids.extend(
            list.children_by_tag("item")
                .filter_map(|i| i.attr_str("id").map(str::to_owned)),
        );
    }
    let chat = if from.is_group() {
        from.clone()
    } else {
        jid_attr(node, "recipient")
            .unwrap_or_else(|| from.clone())
            .to_non_ad()
    };
    Some(ReceiptEvent {
        chat: chat.to_string(),
        sender: participant.unwrap_or(from).to_string(),
        ids,
        kind,
        raw_type,
        timestamp: u64_attr(node, "t").unwrap_or(0),
    })
}

/// A contact's identity changed (server notification): forget its identities and sessions.
pub(crate) async fn identity_changed<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    from: &Jid,
    implicit: bool,
) {
    let user = from.to_non_ad();
    let u = user.clone();
    if let Err(e) = inner
        .blocking(move |store| {
            store.write::<_, StoreError>(|tx| {
                // The user's state may sit under its phone-number or its LID address.
                let mut names = vec![u.signal_address_user().into_owned()];
                match u.server() {
                    Server::WhatsApp => {
                        names.extend(tx.get_lid_for_pn(u.user())?.map(|l| format!("{l}_1")))
                    }
                    Server::Lid => names.extend(tx.get_pn_for_lid(u.user())?),
                    _ => {}
                }
                for n in &names {
                    tx.delete_all_identities(n)?;
                    tx.delete_all_sessions(n)?;
                }
                Ok(())
            })
        })
        .await
    {
        tracing::warn!(error = %e, "forgetting a changed identity failed");
    }
    inner.emit(Event::IdentityChange(IdentityChangeEvent {
        jid: user.to_string(),
        implicit,
    }));
}

/// A contact's device list changed: drop the cached list.
pub(crate) async fn invalidate_devices<A: AccountStore>(inner: &Arc<Inner<A>>, from: &Jid) {
    let user = from.to_non_ad().to_string();
    if let Err(e) = inner
        .blocking(move |store| {
            store.write::<_, StoreError>(|tx| tx.delete_device_list(&user).map(|_| ()))
        })
        .await
    {
        tracing::warn!(error = %e, "invalidating a device list failed");
    }
}

/// Content of a message for tests and tools: the text, if it is text.
pub fn text_of(content: &MessageContent) -> Option<&str> {
    match content {
        MessageContent::Text { text, .. } => Some(text),
        _ => None,
    }
}
