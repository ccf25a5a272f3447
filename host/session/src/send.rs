//! The send path: message ids, device lists (usync, cached in the store), prekey bundles for
//! devices without a session, pairwise fan-out (recipient devices get the message, our own
//! other devices get it wrapped as a device-sent message), sender keys for groups, and the
//! `<message>` stanza.
//!
//! Contract: [`prepare`] does the network lookups it needs first (device lists, bundles),
//! then encrypts for every target device and commits every advanced session / sender key and
//! the recent-sent copy (for retry receipts) in **one** store transaction, and only then
//! returns the stanza to write. A crash after the commit and before the write leaves
//! ratchets one step ahead, which Signal tolerates (the receiver skips the unused key); the
//! outbox entry is still there and the message is sent again with the same id.

use std::collections::HashSet;
use std::sync::Arc;

use prost::Message as _;
use rand::rngs::StdRng;
use sha2::{Digest as _, Sha256};
use wasmeow_proto::wa;
use wasmeow_protocol::binary::{Jid, Node, Server};
use wasmeow_protocol::keys::PublicKey;
use wasmeow_protocol::signal::{
    self, CiphertextMessage, PreKeyBundle, PreKeyPublic, SenderKeyRecord, SessionRecord,
    SignalError, padding,
};
use wasmeow_store::{
    AccountStore, DeviceList, DeviceListStore as _, IdentityStore as _, LidStore as _,
    RecentSentStore as _, SenderKeyStore as _, SessionStore as _, SignalAddress, StoreError, Tx,
};

use crate::device::Device;
use crate::events::{Event, IdentityChangeEvent};
use crate::session::{Inner, IqError};
use crate::stanza::{self, jid_attr, u64_attr};

/// How long a cached device list is trusted without a `devices` notification.
pub const DEVICE_LIST_TTL_MS: u64 = 24 * 3600 * 1000;

/// Preparing a message failed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A lookup request failed (transient: retry later).
    #[error("request failed: {0}")]
    Iq(#[from] IqError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Encryption failed.
    #[error("signal: {0}")]
    Signal(#[from] SignalError),
    /// Not logged in.
    #[error("not logged in")]
    NotLoggedIn,
    /// The chat cannot receive messages (bad JID, no devices, not a member, …).
    #[error("cannot send to {chat}: {reason}")]
    Unsendable {
        /// The chat.
        chat: String,
        /// Why.
        reason: String,
    },
    /// A stored record is malformed.
    #[error("stored record malformed: {0}")]
    Record(String),
}

impl PrepareError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Iq(IqError::Request(_)) | Self::Iq(IqError::Stopped) | Self::Store(_)
        )
    }
}

/// The Signal address of a (device) JID: `user[_domain].device`.
pub fn address(jid: &Jid) -> SignalAddress {
    SignalAddress::new(jid.signal_address_user(), u32::from(jid.device()))
}

/// The address a device's Signal state is kept under: the LID address when the phone number
/// has a known LID (WhatsApp addresses users by LID since the migration, and a peer may write
/// from either identity), else the JID's own address. Keeping one address per device is what
/// keeps the two sides of a session in step.
pub(crate) fn canonical_address(tx: &Tx<'_>, jid: &Jid) -> Result<SignalAddress, StoreError> {
    if jid.server() == &Server::WhatsApp
        && jid.domain_type() == 0
        && let Some(lid) = tx.get_lid_for_pn(jid.user())?
    {
        return Ok(SignalAddress::new(
            format!("{lid}_1"),
            u32::from(jid.device()),
        ));
    }
    Ok(address(jid))
}

/// Records that `lid` and `pn` (user parts) are the same user and moves Signal state kept
/// under the phone-number address to the LID address.
pub(crate) fn store_lid_mapping(tx: &Tx<'_>, lid: &str, pn: &str) -> Result<(), StoreError> {
    if tx.get_lid_for_pn(pn)?.as_deref() == Some(lid) {
        return Ok(());
    }
    tx.put_lid_mapping(lid, pn)?;
    let lid_name = format!("{lid}_1");
    for (addr, record) in tx.sessions_of(pn)? {
        let to = SignalAddress::new(lid_name.clone(), addr.device);
        if !tx.has_session(&to)? {
            tx.put_session(&to, &record)?;
            if let Some(identity) = tx.get_identity(&addr)? {
                tx.put_identity(&to, &identity)?;
            }
        }
    }
    tx.delete_all_sessions(pn)?;
    Ok(())
}

/// A new message id: `3EB0` + 18 upper-case hex digits of
/// `SHA-256(u64be(unix seconds) ‖ own user ‖ "@c.us" ‖ 16 random bytes)` (whatsmeow's format).
pub fn message_id<R: rand_core::Rng + ?Sized>(own: &Jid, rng: &mut R) -> String {
    let mut random = [0u8; 16];
    rng.fill_bytes(&mut random);
    let mut h = Sha256::new();
    h.update(crate::driver::unix_now().to_be_bytes());
    h.update(own.user().as_bytes());
    h.update(b"@c.us");
    h.update(random);
    format!("3EB0{}", hex::encode_upper(&h.finalize()[..9]))
}

/// The devices of `users` (non-AD JIDs), from the cache or a usync query.
pub(crate) async fn devices<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    users: &[Jid],
) -> Result<Vec<Jid>, PrepareError> {
    let now_ms = crate::driver::unix_now() * 1000;
    let keys: Vec<String> = users.iter().map(|u| u.to_non_ad().to_string()).collect();
    let cached: Vec<Option<DeviceList>> = inner
        .blocking(move |store| {
            store.read::<_, StoreError>(|tx| {
                keys.iter()
                    .map(|k| tx.get_device_list(k))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .await?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (user, list) in users.iter().zip(cached) {
        match list {
            Some(l) if now_ms.saturating_sub(l.fetched_at_ms) < DEVICE_LIST_TTL_MS => {
                for d in l.devices {
                    out.push(device_jid(user, d)?);
                }
            }
            _ => missing.push(user.to_non_ad()),
        }
    }
    if !missing.is_empty() {
        out.extend(usync_devices(inner, &missing).await?);
    }
    Ok(out)
}

fn device_jid(user: &Jid, device: u32) -> Result<Jid, PrepareError> {
    let d = u16::try_from(device).map_err(|_| PrepareError::Record("device number".into()))?;
    user.to_non_ad()
        .with_device(d)
        .map_err(|e| PrepareError::Record(format!("device JID: {e}")))
}

/// A usync device query; stores the lists and any LID mappings.
async fn usync_devices<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    users: &[Jid],
) -> Result<Vec<Jid>, PrepareError> {
    let sid = inner.next_id();
    let node = stanza::iq("usync", "get", stanza::server()).child(
        Node::new("usync")
            .attr("sid", sid)
            .attr("mode", "query")
            .attr("last", "true")
            .attr("index", "0")
            .attr("context", "message")
            .children([
                Node::new("query")
                    .children([Node::new("devices").attr("version", "2"), Node::new("lid")]),
                Node::new("list").children(
                    users
                        .iter()
                        .map(|u| Node::new("user").attr("jid", u.clone())),
                ),
            ]),
    );
    let response = inner.request(node).await?;
    let list = response
        .child_by_path(&["usync", "list"])
        .ok_or(PrepareError::Iq(IqError::Unexpected("usync without list")))?;
    let now_ms = crate::driver::unix_now() * 1000;
    let mut lists: Vec<(String, DeviceList)> = Vec::new();
    let mut lids: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for user in list.children_by_tag("user") {
        let Some(jid) = jid_attr(user, "jid") else {
            continue;
        };
        let jid = jid.to_non_ad();
        let devices: Vec<u32> = user
            .child_by_path(&["devices", "device-list"])
            .map(|dl| {
                dl.children_by_tag("device")
                    .filter_map(|d| u64_attr(d, "id").and_then(|id| u32::try_from(id).ok()))
                    .collect()
            })
            .unwrap_or_default();
        for d in &devices {
            out.push(device_jid(&jid, *d)?);
        }
        if let Some(lid) = user.child_by_tag("lid").and_then(|l| jid_attr(l, "val"))
            && jid.server() == &Server::WhatsApp
        {
            lids.push((lid.user().to_owned(), jid.user().to_owned()));
        }
        lists.push((
            jid.to_string(),
            DeviceList {
                devices,
                fetched_at_ms: now_ms,
            },
        ));
    }
    inner
        .blocking(move |store| {
            store.write::<_, StoreError>(|tx| {
                for (user, list) in &lists {
                    tx.put_device_list(user, list)?;
                }
                for (lid, pn) in &lids {
                    store_lid_mapping(tx, lid, pn)?;
                }
                Ok(())
            })
        })
        .await?;
    Ok(out)
}

/// Fetches prekey bundles for `devices`.
pub(crate) async fn fetch_bundles<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    devices: &[Jid],
) -> Result<Vec<(Jid, PreKeyBundle)>, PrepareError> {
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    let node = stanza::iq("encrypt", "get", stanza::server()).child(Node::new("key").children(
        devices.iter().map(|d| {
            Node::new("user")
                .attr("jid", d.clone())
                .attr("reason", "identity")
        }),
    ));
    let response = inner.request(node).await?;
    let list = response
        .child_by_tag("list")
        .ok_or(PrepareError::Iq(IqError::Unexpected(
            "prekey response without list",
        )))?;
    let mut out = Vec::new();
    for user in list.children_by_tag("user") {
        let Some(jid) = jid_attr(user, "jid") else {
            continue;
        };
        if user.child_by_tag("error").is_some() {
            tracing::debug!(%jid, "no prekey bundle for device");
            continue;
        }
        match parse_bundle(user, u32::from(jid.device())) {
            Some(b) => out.push((jid, b)),
            None => tracing::warn!(%jid, "malformed prekey bundle"),
        }
    }
    Ok(out)
}

/// Reads `<registration/><type/><identity/><skey/>[<key/>]` (the key may sit in `<keys>`).
pub(crate) fn parse_bundle(node: &Node, device_id: u32) -> Option<PreKeyBundle> {
    fn bytes(n: Option<&Node>) -> Option<&[u8]> {
        n.and_then(Node::content_bytes)
    }
    let reg = bytes(node.child_by_tag("registration"))?;
    let registration_id = u32::from_be_bytes(reg.try_into().ok()?);
    let identity_key = PublicKey::from_slice(bytes(node.child_by_tag("identity"))?).ok()?;
    let skey = node.child_by_tag("skey")?;
    let id3 = |n: &Node| -> Option<u32> {
        let b = bytes(n.child_by_tag("id"))?;
        (b.len() == 3).then(|| u32::from_be_bytes([0, b[0], b[1], b[2]]))
    };
    let signed_pre_key_signature: [u8; 64] =
        bytes(skey.child_by_tag("signature"))?.try_into().ok()?;
    let key = node.child_by_tag("key").or_else(|| {
        node.child_by_tag("keys")
            .and_then(|k| k.child_by_tag("key"))
    });
    let pre_key = match key {
        Some(k) => Some(PreKeyPublic {
            id: id3(k)?,
            public: PublicKey::from_slice(bytes(k.child_by_tag("value"))?).ok()?,
        }),
        None => None,
    };
    Some(PreKeyBundle {
        registration_id,
        device_id,
        identity_key,
        signed_pre_key_id: id3(skey)?,
        signed_pre_key_public: PublicKey::from_slice(bytes(skey.child_by_tag("value"))?).ok()?,
        signed_pre_key_signature,
        pre_key,
    })
}

/// Which of `devices` have no session yet.
async fn without_session<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    devices: &[Jid],
) -> Result<Vec<Jid>, PrepareError> {
    let devs = devices.to_vec();
    Ok(inner
        .blocking(move |store| {
            store.read::<_, StoreError>(|tx| {
                let mut out = Vec::new();
                for d in &devs {
                    if !tx.has_session(&canonical_address(tx, d)?)? {
                        out.push(d.clone());
                    }
                }
                Ok(out)
            })
        })
        .await?)
}

/// Loads (or, from `bundles`, creates) the session with `device` inside `tx`.
fn session_for(
    tx: &Tx<'_>,
    device: &Device,
    target: &Jid,
    bundles: &[(Jid, PreKeyBundle)],
    rng: &mut StdRng,
    identity_changes: &mut Vec<Jid>,
) -> Result<Option<SessionRecord>, PrepareError> {
    let addr = canonical_address(tx, target)?;
    if let Some(bytes) = tx.get_session(&addr)? {
        let record =
            SessionRecord::from_bytes(&bytes).map_err(|e| PrepareError::Record(e.to_string()))?;
        if record.has_current_session() {
            return Ok(Some(record));
        }
    }
    let Some((_, bundle)) = bundles.iter().find(|(j, _)| j == target) else {
        return Ok(None);
    };
    let trusted = tx.get_identity(&addr)?.map(PublicKey);
    let init =
        match signal::session::initiate(None, &device.identity, bundle, trusted.as_ref(), rng) {
            Err(SignalError::UntrustedIdentity { .. }) => {
                identity_changes.push(target.to_non_ad());
                signal::session::initiate(None, &device.identity, bundle, None, rng)?
            }
            other => other?,
        };
    tx.put_identity(&addr, &bundle.identity_key.0)?;
    Ok(Some(init.record))
}

/// Encrypts `plaintext` (already padded) for `target`, committing the advanced session.
fn encrypt_for(
    tx: &Tx<'_>,
    device: &Device,
    target: &Jid,
    padded: &[u8],
    bundles: &[(Jid, PreKeyBundle)],
    rng: &mut StdRng,
    identity_changes: &mut Vec<Jid>,
) -> Result<Option<CiphertextMessage>, PrepareError> {
    let Some(mut record) = session_for(tx, device, target, bundles, rng, identity_changes)? else {
        return Ok(None);
    };
    let ct = signal::session::encrypt(&mut record, padded)?;
    tx.put_session(&canonical_address(tx, target)?, &record.to_bytes())?;
    Ok(Some(ct))
}

fn enc_node(ct: CiphertextMessage, media_type: Option<&str>, count: Option<u32>) -> Node {
    let mut n = Node::new("enc").attr("v", "2").attr("type", ct.enc_type());
    if let Some(m) = media_type {
        n.set_attr("mediatype", m.to_owned());
    }
    if let Some(c) = count {
        n.set_attr("count", c.to_string());
    }
    n.bytes(ct.into_bytes())
}

/// A message ready to write.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The `<message>` stanza.
    pub node: Node,
    /// Devices that received our sender-key distribution (groups).
    pub skdm_devices: Vec<String>,
}

/// Everything to send one message to `chat`.
pub(crate) async fn prepare<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    id: &str,
    chat: &Jid,
    message: wa::Message,
    stanza_type: &'static str,
) -> Result<Prepared, PrepareError> {
    let device = inner.device().ok_or(PrepareError::NotLoggedIn)?;
    let own = device.jid.clone().ok_or(PrepareError::NotLoggedIn)?;
    if chat.is_group() {
        return prepare_group(inner, &device, &own, id, chat, message, stanza_type).await;
    }
    if chat.server() != &Server::WhatsApp && chat.server() != &Server::Lid {
        return Err(PrepareError::Unsendable {
            chat: chat.to_string(),
            reason: "only user and group chats are supported".into(),
        });
    }
    let own_user = own.to_non_ad();
    let targets: Vec<Jid> = devices(inner, &[chat.to_non_ad(), own_user.clone()])
        .await?
        .into_iter()
        .filter(|d| *d != own && !(d.user() == own.user() && d.device() == own.device()))
        .collect();
    if !targets.iter().any(|d| d.user() == chat.user()) {
        return Err(PrepareError::Unsendable {
            chat: chat.to_string(),
            reason: "the user has no devices".into(),
        });
    }
    let missing = without_session(inner, &targets).await?;
    let bundles = fetch_bundles(inner, &missing).await?;

    let plain = message.encode_to_vec();
    let dsm = wa::Message {
        device_sent_message: Some(Box::new(wa::message::DeviceSentMessage {
            destination_jid: Some(chat.to_non_ad().to_string()),
            message: Some(Box::new(message)),
            phash: None,
        })),
        ..Default::default()
    }
    .encode_to_vec();
    let mut rng = inner.fork_rng();
    let chat_s = chat.to_non_ad().to_string();
    let msg_id = id.to_owned();
    let device2 = device.clone();
    let (participants, has_pkmsg, identity_changes) = inner
        .blocking(move |store| {
            store.write::<_, PrepareError>(|tx| {
                let mut nodes = Vec::new();
                let mut has_pkmsg = false;
                let mut changes = Vec::new();
                for target in &targets {
                    let body = if target.user() == own.user() {
                        &dsm
                    } else {
                        &plain
                    };
                    let padded = padding::pad(body, &mut rng);
                    match encrypt_for(
                        tx,
                        &device2,
                        target,
                        &padded,
                        &bundles,
                        &mut rng,
                        &mut changes,
                    )? {
                        Some(ct) => {
                            has_pkmsg |= matches!(ct, CiphertextMessage::Pkmsg(_));
                            nodes.push(
                                Node::new("to")
                                    .attr("jid", target.clone())
                                    .child(enc_node(ct, None, None)),
                            );
                        }
                        None => {
                            tracing::debug!(%target, "no session and no bundle: device skipped")
                        }
                    }
                }
                tx.put_recent_sent(&chat_s, &msg_id, &plain)?;
                Ok((nodes, has_pkmsg, changes))
            })
        })
        .await?;
    report_identity_changes(inner, identity_changes);
    if participants.is_empty() {
        return Err(PrepareError::Unsendable {
            chat: chat.to_string(),
            reason: "no device could be encrypted for".into(),
        });
    }
    let mut node = Node::new("message")
        .attr("id", id.to_owned())
        .attr("to", chat.to_non_ad())
        .attr("type", stanza_type)
        .child(Node::new("participants").children(participants));
    if has_pkmsg && let Some(account) = &device.account {
        node.push_child(
            Node::new("device-identity").bytes(crate::recv::account_without_key(account)),
        );
    }
    Ok(Prepared {
        node,
        skdm_devices: Vec::new(),
    })
}

fn report_identity_changes<A: AccountStore>(inner: &Arc<Inner<A>>, changes: Vec<Jid>) {
    let mut seen = HashSet::new();
    for jid in changes {
        if seen.insert(jid.to_string()) {
            inner.emit(Event::IdentityChange(IdentityChangeEvent {
                jid: jid.to_string(),
                implicit: true,
            }));
        }
    }
}

/// The members of `group` (cached until a w:gp2 notification for it).
pub(crate) async fn group_members<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    group: &Jid,
) -> Result<Vec<Jid>, PrepareError> {
    let key = group.to_string();
    if let Some(m) = inner
        .shared
        .lock()
        .expect("shared state lock")
        .group_members
        .get(&key)
    {
        return Ok(m.clone());
    }
    let info = crate::groups::query_info(inner, group).await?;
    let members: Vec<Jid> = info
        .participants
        .iter()
        .filter_map(|p| p.jid.parse().ok())
        .collect();
    let mut shared = inner.shared.lock().expect("shared state lock");
    if shared.group_members.len() >= 64 {
        shared.group_members.clear();
    }
    shared.group_members.insert(key, members.clone());
    Ok(members)
}

#[allow(clippy::too_many_arguments)]
async fn prepare_group<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    device: &Arc<Device>,
    own: &Jid,
    id: &str,
    group: &Jid,
    message: wa::Message,
    stanza_type: &'static str,
) -> Result<Prepared, PrepareError> {
    let members = group_members(inner, group).await?;
    let own_user = own.to_non_ad();
    let own_lid_user = device.lid.as_ref().map(Jid::to_non_ad);
    let mut users: Vec<Jid> = members
        .iter()
        .map(Jid::to_non_ad)
        .filter(|u| Some(u) != own_lid_user.as_ref())
        .collect();
    if !users.contains(&own_user) {
        users.push(own_user.clone());
    }
    let all_devices: Vec<Jid> = devices(inner, &users)
        .await?
        .into_iter()
        .filter(|d| !(d.user() == own.user() && d.device() == own.device()))
        .collect();
    let group_key = group.to_string();
    let already: HashSet<String> = inner
        .shared
        .lock()
        .expect("shared state lock")
        .skdm_sent
        .get(&group_key)
        .cloned()
        .unwrap_or_default();
    let needs_skdm: Vec<Jid> = all_devices
        .iter()
        .filter(|d| !already.contains(&d.to_string()))
        .cloned()
        .collect();
    let missing = without_session(inner, &needs_skdm).await?;
    let bundles = fetch_bundles(inner, &missing).await?;
    let plain = message.encode_to_vec();
    let own_addr = address(own);
    let mut rng = inner.fork_rng();
    let device2 = device.clone();
    let msg_id = id.to_owned();
    let (skmsg, participants, sent_to, has_pkmsg, changes) = inner
        .blocking(move |store| {
            store.write::<_, PrepareError>(|tx| {
                let mut record = match tx.get_sender_key(&group_key, &own_addr)? {
                    Some(b) => SenderKeyRecord::from_bytes(&b)
                        .map_err(|e| PrepareError::Record(e.to_string()))?,
                    None => SenderKeyRecord::new(),
                };
                if record.is_empty() || signal::group::distribution_message(&record).is_err() {
                    record = signal::group::create_sender_key(&mut rng);
                }
                let skdm = signal::group::distribution_message(&record)?;
                let skdm_message = wa::Message {
                    sender_key_distribution_message: Some(
                        wa::message::SenderKeyDistributionMessage {
                            group_id: Some(group_key.clone()),
                            axolotl_sender_key_distribution_message: Some(skdm.into()),
                        },
                    ),
                    ..Default::default()
                }
                .encode_to_vec();
                let padded = padding::pad(&plain, &mut rng);
                let skmsg = signal::group::encrypt(&mut record, &padded, &mut rng)?;
                tx.put_sender_key(&group_key, &own_addr, &record.to_bytes())?;
                let mut nodes = Vec::new();
                let mut sent_to = Vec::new();
                let mut has_pkmsg = false;
                let mut changes = Vec::new();
                for target in &needs_skdm {
                    let padded = padding::pad(&skdm_message, &mut rng);
                    if let Some(ct) = encrypt_for(
                        tx,
                        &device2,
                        target,
                        &padded,
                        &bundles,
                        &mut rng,
                        &mut changes,
                    )? {
                        has_pkmsg |= matches!(ct, CiphertextMessage::Pkmsg(_));
                        nodes.push(
                            Node::new("to")
                                .attr("jid", target.clone())
                                .child(enc_node(ct, None, None)),
                        );
                        sent_to.push(target.to_string());
                    }
                }
                tx.put_recent_sent(&group_key, &msg_id, &plain)?;
                Ok((skmsg, nodes, sent_to, has_pkmsg, changes))
            })
        })
        .await?;
    report_identity_changes(inner, changes);
    let mut node = Node::new("message")
        .attr("id", id.to_owned())
        .attr("to", group.clone())
        .attr("type", stanza_type);
    if !participants.is_empty() {
        node.push_child(Node::new("participants").children(participants));
    }
    node.push_child(
        Node::new("enc")
            .attr("v", "2")
            .attr("type", "skmsg")
            .bytes(skmsg),
    );
    if has_pkmsg && let Some(account) = &device.account {
        node.push_child(
            Node::new("device-identity").bytes(crate::recv::account_without_key(account)),
        );
    }
    Ok(Prepared {
        node,
        skdm_devices: sent_to,
    })
}

/// Re-encrypts a recently sent message for one device that sent us a retry receipt.
pub(crate) async fn prepare_retry<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    receipt: &Node,
) -> Result<Option<Node>, PrepareError> {
    let device = inner.device().ok_or(PrepareError::NotLoggedIn)?;
    let own = device.jid.clone().ok_or(PrepareError::NotLoggedIn)?;
    let Some(from) = jid_attr(receipt, "from") else {
        return Ok(None);
    };
    let Some(id) = receipt.attr_str("id").map(str::to_owned) else {
        return Ok(None);
    };
    let participant = jid_attr(receipt, "participant");
    let (chat, target) = if from.is_group() {
        let Some(p) = participant else {
            return Ok(None);
        };
        (from.clone(), p)
    } else {
        let chat = jid_attr(receipt, "recipient")
            .unwrap_or_else(|| from.clone())
            .to_non_ad();
        (chat, participant.unwrap_or(from.clone()))
    };
    let count = receipt
        .child_by_tag("retry")
        .and_then(|r| u64_attr(r, "count"))
        .unwrap_or(1) as u32;
    {
        let mut shared = inner.shared.lock().expect("shared state lock");
        if shared.retries_answered.len() >= crate::session::SMALL_MAP_CAP {
            shared.retries_answered.clear();
        }
        let n = shared
            .retries_answered
            .entry(format!("{target}|{id}"))
            .or_insert(0);
        *n += 1;
        if *n > 10 {
            tracing::warn!(%id, "too many retry receipts for one message; ignoring");
            return Ok(None);
        }
    }
    // The receipt may name the chat by the other identity (LID vs phone number) than the one
    // we sent to: look under both.
    let chat2 = chat.clone();
    let id2 = id.clone();
    let stored = inner
        .blocking(move |store| {
            store.read::<_, StoreError>(|tx| {
                if let Some(m) = tx.get_recent_sent(&chat2.to_string(), &id2)? {
                    return Ok(Some(m));
                }
                let alt = match chat2.server() {
                    Server::Lid => tx
                        .get_pn_for_lid(chat2.user())?
                        .map(|pn| format!("{pn}@s.whatsapp.net")),
                    Server::WhatsApp => tx
                        .get_lid_for_pn(chat2.user())?
                        .map(|lid| format!("{lid}@lid")),
                    _ => None,
                };
                match alt {
                    Some(alt) => tx.get_recent_sent(&alt, &id2),
                    None => Ok(None),
                }
            })
        })
        .await?;
    let Some(stored) = stored else {
        tracing::warn!(%id, "retry receipt for a message we no longer have");
        return Ok(None);
    };
    let mut message =
        wa::Message::decode(&stored[..]).map_err(|e| PrepareError::Record(e.to_string()))?;
    // A bundle in the receipt replaces whatever session we had.
    let mut bundles = Vec::new();
    if let Some(keys) = receipt.child_by_tag("keys") {
        let mut merged = keys.clone();
        if let Some(reg) = receipt.child_by_tag("registration") {
            merged.push_child(reg.clone());
        }
        if let Some(b) = parse_bundle(&merged, u32::from(target.device())) {
            bundles.push((target.clone(), b));
        }
    }
    let reset = !bundles.is_empty();
    if bundles.is_empty()
        && !without_session(inner, std::slice::from_ref(&target))
            .await?
            .is_empty()
    {
        bundles = fetch_bundles(inner, std::slice::from_ref(&target)).await?;
    }
    let group_key = chat.to_string();
    let own_addr = address(&own);
    let to_own_device = target.user() == own.user();
    let mut rng = inner.fork_rng();
    let t2 = target.clone();
    let is_group = chat.is_group();
    let dest = chat.clone();
    let (ct, changes) = inner
        .blocking(move |store| {
            store.write::<_, PrepareError>(|tx| {
                if reset {
                    tx.delete_session(&canonical_address(tx, &t2)?)?;
                }
                if is_group && let Some(b) = tx.get_sender_key(&group_key, &own_addr)? {
                    let record = SenderKeyRecord::from_bytes(&b)
                        .map_err(|e| PrepareError::Record(e.to_string()))?;
                    if let Ok(skdm) = signal::group::distribution_message(&record) {
                        message.sender_key_distribution_message =
                            Some(wa::message::SenderKeyDistributionMessage {
                                group_id: Some(group_key.clone()),
                                axolotl_sender_key_distribution_message: Some(skdm.into()),
                            });
                    }
                }
                let body = if to_own_device {
                    wa::Message {
                        device_sent_message: Some(Box::new(wa::message::DeviceSentMessage {
                            destination_jid: Some(dest.to_string()),
                            message: Some(Box::new(message)),
                            phash: None,
                        })),
                        ..Default::default()
                    }
                } else {
                    message
                };
                let padded = padding::pad(&body.encode_to_vec(), &mut rng);
                let mut changes = Vec::new();
                let ct = encrypt_for(tx, &device, &t2, &padded, &bundles, &mut rng, &mut changes)?;
                Ok((ct, changes))
            })
        })
        .await?;
    report_identity_changes(inner, changes);
    let Some(ct) = ct else {
        return Ok(None);
    };
    let has_pkmsg = matches!(ct, CiphertextMessage::Pkmsg(_));
    let mut node = Node::new("message")
        .attr("id", id)
        .attr("to", chat.clone())
        .attr("type", "text")
        .child(
            Node::new("participants").child(Node::new("to").attr("jid", target).child(enc_node(
                ct,
                None,
                Some(count),
            ))),
        );
    let device = inner.device();
    if has_pkmsg && let Some(account) = device.as_ref().and_then(|d| d.account.as_ref()) {
        node.push_child(
            Node::new("device-identity").bytes(crate::recv::account_without_key(account)),
        );
    }
    Ok(Some(node))
}

/// Exposed for tests: a random 16-byte value.
pub fn random_bytes<R: rand_core::Rng + ?Sized>(rng: &mut R) -> [u8; 16] {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;

    use super::*;

    #[test]
    fn message_ids_have_whatsmeows_shape() {
        let own: Jid = "15551234567:3@s.whatsapp.net".parse().unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let a = message_id(&own, &mut rng);
        let b = message_id(&own, &mut rng);
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(a.starts_with("3EB0"));
        assert!(
            a[4..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        );
    }

    #[test]
    fn bundles_parse_with_and_without_keys_wrapper() {
        let mut rng = StdRng::seed_from_u64(2);
        let dev = Device::generate(&mut rng);
        let key = signal::PreKey::generate(7, &mut rng);
        let base = |wrapped: bool| {
            let key_node = crate::device::prekey_node(&key);
            Node::new("user").children([
                Node::new("registration")
                    .bytes(dev.identity.registration_id.to_be_bytes().to_vec()),
                Node::new("type").bytes(vec![5]),
                Node::new("identity").bytes(dev.identity.public().0.to_vec()),
                crate::device::signed_prekey_node(&dev.signed_prekey),
                if wrapped {
                    Node::new("keys").child(key_node)
                } else {
                    key_node
                },
            ])
        };
        for wrapped in [false, true] {
            let b = parse_bundle(&base(wrapped), 2).unwrap();
            assert_eq!(b.registration_id, dev.identity.registration_id);
            assert_eq!(b.identity_key, dev.identity.public());
            assert_eq!(b.signed_pre_key_id, 1);
            assert_eq!(
                b.pre_key,
                Some(PreKeyPublic {
                    id: 7,
                    public: key.key_pair.public
                })
            );
            signal::verify_signed_pre_key(
                &b.identity_key,
                &b.signed_pre_key_public,
                &b.signed_pre_key_signature,
            )
            .unwrap();
        }
        // Missing pieces are rejected.
        assert!(parse_bundle(&Node::new("user"), 0).is_none());
    }
}
