//! Simulated primary phones: device 0 of every account, with real Signal keys. A phone
//! decrypts what it receives (pkmsg, msg, skmsg), processes sender-key distributions, keeps an
//! inbox, answers with delivery (or retry) receipts, and sends 1:1 and group messages that it
//! really encrypts, through the same routing as any client.
//!
//! Contract: the phone uses only `wasmeow-protocol`'s Signal primitives (X3DH, Double Ratchet,
//! sender keys, padding); its session state is persisted with the rest of the world. A phone
//! never touches a socket: stanzas for device 0 are handed to [`World::phone_deliver`]
//! synchronously, and the phone's own stanzas enter [`World::on_message`] /
//! [`World::on_receipt`] as if a connection had sent them. Identity keys are trusted on first
//! use and replaced when a peer re-pairs (whatsmeow's default `AutoTrustIdentity`). The phone
//! does not verify companions' ADV device identities.
//!
//! Retry receipts: a phone keeps its last [`PHONE_RECENT_SENT`] sent messages and answers a
//! retry receipt for one of them by re-encrypting it to the requesting device alone (a group
//! message pairwise, with the phone's sender key distribution), at most [`PHONE_MAX_RESENDS`]
//! times per message and device. A receipt carrying `<keys>` replaces the phone's session with
//! that device by a fresh one built from those keys, so the resend is a new `pkmsg`.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use rand::RngExt as _;
use serde::{Deserialize, Serialize};
use wasmeow_proto::wa::{self, message};
use wasmeow_protocol::binary::{Content, Jid, Node};
use wasmeow_protocol::keys::{KeyPair, PrivateKey, PublicKey};
use wasmeow_protocol::signal::{
    CiphertextMessage, LocalIdentity, PreKey, PreKeyBundle, PreKeyPublic, PreKeySignalMessage,
    PreKeys, SenderKeyRecord, SessionRecord, SignalError, SignedPreKey, group, padding, session,
};

use crate::accounts::{Account, DeviceRecord, SignedPreKeyPub, default_privacy};
use crate::routing::Queue;
use crate::state::{DevAddr, World};
use crate::util::{
    attr_jid, attr_string, b64, be_bytes, content_bytes, group_jid, hex32, now_secs,
};

/// One-time prekeys a phone keeps published.
const PHONE_PREKEYS: u32 = 30;
/// Sent messages a phone keeps for answering retry receipts (the newest).
pub(crate) const PHONE_RECENT_SENT: usize = 64;
/// Resends of one message to one device before the phone stops answering its retries.
pub(crate) const PHONE_MAX_RESENDS: u32 = 5;

/// A message a simulated phone received and decrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMessage {
    /// Message id.
    pub id: String,
    /// The chat: the peer's phone number JID (`…@s.whatsapp.net`) or the group JID.
    pub chat: String,
    /// The sender's phone number (digits).
    pub sender: String,
    /// The sender's device id.
    pub sender_device: u16,
    /// Whether an own companion sent it (a "sent by me" copy).
    pub from_me: bool,
    /// The text, if the message is a text message.
    pub text: Option<String>,
    /// Server timestamp (unix seconds).
    pub t: u64,
    /// Delivered from the offline queue.
    pub offline: bool,
}

/// A receipt a phone received for a message it sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneReceipt {
    /// Message id.
    pub id: String,
    /// Who sent the receipt (phone number digits).
    pub from: String,
    /// Receipt type (`delivery`, `read`, `played`, `retry`, …).
    pub kind: String,
}

/// The outcome of a phone's send, from the server's ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneAck {
    /// Message id.
    pub id: String,
    /// The ack's `error` attribute, if the server refused the message.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPreKey {
    #[serde(with = "hex32")]
    private: [u8; 32],
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Blob(#[serde(with = "b64")] Vec<u8>);

/// A message a phone sent, kept to answer retry receipts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SentMessage {
    id: String,
    /// The peer's phone number (1:1) or the group id.
    chat: String,
    group: bool,
    /// The encoded `wa::Message`.
    content: Blob,
    /// Resends so far, by device ("pn:device").
    resends: BTreeMap<String, u32>,
}

/// A simulated primary phone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Phone {
    #[serde(with = "hex32")]
    identity: [u8; 32],
    registration_id: u32,
    signed_prekey_id: u32,
    #[serde(with = "hex32")]
    signed_prekey: [u8; 32],
    #[serde(with = "b64")]
    signed_prekey_signature: Vec<u8>,
    prekeys: BTreeMap<u32, StoredPreKey>,
    next_prekey: u32,
    /// Session records by peer device ("pn:device").
    sessions: BTreeMap<String, Blob>,
    /// Trusted identity keys by peer device.
    identities: BTreeMap<String, Blob>,
    /// Received sender keys by "group|pn:device".
    sender_keys: BTreeMap<String, Blob>,
    /// Our own sender key per group.
    own_sender_keys: BTreeMap<String, Blob>,
    /// Devices that have our current sender key, per group.
    skdm_sent: BTreeMap<String, BTreeSet<String>>,
    pub(crate) inbox: Vec<InboxMessage>,
    pub(crate) receipts: Vec<PhoneReceipt>,
    pub(crate) acks: Vec<PhoneAck>,
    pub(crate) undecryptable: u64,
    /// The newest sent messages, oldest first (for retry receipts).
    #[serde(default)]
    recent_sent: std::collections::VecDeque<SentMessage>,
    /// The identity and signed-prekey public keys, derived once from the private keys (a
    /// base-point multiplication each; a phone receiving prekey messages needs both every time).
    #[serde(skip)]
    publics: std::sync::OnceLock<(PublicKey, PublicKey)>,
}

fn addr_key(addr: &DevAddr) -> String {
    format!("{}:{}", addr.pn, addr.dev)
}

impl Phone {
    pub(crate) fn identity_private(&self) -> PrivateKey {
        PrivateKey::from_bytes(self.identity)
    }

    fn publics(&self) -> &(PublicKey, PublicKey) {
        self.publics.get_or_init(|| {
            (
                self.identity_private().public_key(),
                PrivateKey::from_bytes(self.signed_prekey).public_key(),
            )
        })
    }

    fn local(&self) -> LocalIdentity {
        LocalIdentity {
            key_pair: KeyPair {
                private: self.identity_private(),
                public: self.publics().0,
            },
            registration_id: self.registration_id,
        }
    }

    fn signed_prekey(&self) -> SignedPreKey {
        let mut signature = [0u8; 64];
        signature.copy_from_slice(
            &self.signed_prekey_signature[..64.min(self.signed_prekey_signature.len())],
        );
        SignedPreKey {
            id: self.signed_prekey_id,
            key_pair: KeyPair {
                private: PrivateKey::from_bytes(self.signed_prekey),
                public: self.publics().1,
            },
            signature,
        }
    }

    fn session(&self, peer: &DevAddr) -> Option<SessionRecord> {
        self.sessions
            .get(&addr_key(peer))
            .and_then(|b| SessionRecord::from_bytes(&b.0).ok())
    }

    fn trusted(&self, peer: &DevAddr) -> Option<PublicKey> {
        self.identities
            .get(&addr_key(peer))
            .and_then(|b| PublicKey::from_slice(&b.0).ok())
    }
}

/// Extracts displayable text from a message (unwrapping the usual wrappers).
fn message_text(msg: &wa::Message) -> Option<String> {
    if let Some(text) = &msg.conversation {
        return Some(text.clone());
    }
    if let Some(ext) = &msg.extended_text_message {
        return ext.text.clone();
    }
    for wrapper in [
        &msg.ephemeral_message,
        &msg.view_once_message,
        &msg.view_once_message_v2,
        &msg.edited_message,
    ]
    .into_iter()
    .flatten()
    {
        if let Some(inner) = &wrapper.message
            && let Some(text) = message_text(inner)
        {
            return Some(text);
        }
    }
    None
}

impl World {
    /// Creates an account with its simulated phone. `pn`/`lid` default to fresh numbers.
    pub(crate) fn create_account(
        &mut self,
        pn: Option<&str>,
        push_name: Option<&str>,
    ) -> Result<(String, String), String> {
        let pn = match pn {
            Some(p) if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) => {
                return Err(format!("phone number {p:?} must be digits"));
            }
            Some(p) if self.accounts.contains_key(p) => return Err(format!("account {p} exists")),
            Some(p) => p.to_owned(),
            None => loop {
                let candidate = format!("1555{:07}", self.rng.random_range(0..10_000_000u32));
                if !self.accounts.contains_key(&candidate) {
                    break candidate;
                }
            },
        };
        let lid = loop {
            let candidate = format!(
                "{}",
                self.rng
                    .random_range(100_000_000_000_000u64..999_999_999_999_999u64)
            );
            if !self.lids.contains_key(&candidate) {
                break candidate;
            }
        };
        let local = LocalIdentity::generate(&mut self.rng);
        let spk = SignedPreKey::generate(&local.key_pair, 1, &mut self.rng);
        let mut phone = Phone {
            identity: local.key_pair.private.to_bytes(),
            registration_id: local.registration_id,
            signed_prekey_id: spk.id,
            signed_prekey: spk.key_pair.private.to_bytes(),
            signed_prekey_signature: spk.signature.to_vec(),
            prekeys: BTreeMap::new(),
            next_prekey: 1,
            sessions: BTreeMap::new(),
            identities: BTreeMap::new(),
            sender_keys: BTreeMap::new(),
            own_sender_keys: BTreeMap::new(),
            skdm_sent: BTreeMap::new(),
            inbox: Vec::new(),
            receipts: Vec::new(),
            acks: Vec::new(),
            undecryptable: 0,
            recent_sent: Default::default(),
            publics: Default::default(),
        };
        let mut device = DeviceRecord {
            id: 0,
            noise_pub: None,
            identity_pub: local.key_pair.public.0,
            registration_id: local.registration_id,
            signed_prekey: Some(SignedPreKeyPub {
                id: spk.id,
                public: spk.key_pair.public.0,
                signature: spk.signature.to_vec(),
            }),
            prekeys: BTreeMap::new(),
            key_index: 0,
            platform: "android".to_owned(),
            queue: Queue::default(),
        };
        for _ in 0..PHONE_PREKEYS {
            let id = phone.next_prekey;
            phone.next_prekey += 1;
            let key = PreKey::generate(id, &mut self.rng);
            device.prekeys.insert(id, key.key_pair.public.0);
            phone.prekeys.insert(
                id,
                StoredPreKey {
                    private: key.key_pair.private.to_bytes(),
                },
            );
        }
        let account = Account {
            pn: pn.clone(),
            lid: lid.clone(),
            push_name: push_name.unwrap_or("").to_owned(),
            devices: [(0, device)].into_iter().collect(),
            next_device: 1,
            next_key_index: 1,
            adv_raw_id: self.rng.random(),
            restricted: false,
            rate_limit: None,
            recent_sends: Default::default(),
            privacy: default_privacy(),
            blocklist: BTreeSet::new(),
            chats: BTreeSet::new(),
            available: false,
            last_seen: 0,
        };
        self.accounts.insert(pn.clone(), account);
        self.lids.insert(lid.clone(), pn.clone());
        self.phones.insert(pn.clone(), phone);
        self.dirty = true;
        Ok((pn, lid))
    }

    /// Tops up the phone's published one-time prekeys.
    pub(crate) fn phone_refill_prekeys(&mut self, pn: &str) {
        let Some(phone) = self.phones.get_mut(pn) else {
            return;
        };
        let Some(device) = self
            .accounts
            .get_mut(pn)
            .and_then(|a| a.devices.get_mut(&0))
        else {
            return;
        };
        while device.prekeys.len() < PHONE_PREKEYS as usize {
            let id = phone.next_prekey;
            phone.next_prekey += 1;
            let key = PreKey::generate(id, &mut self.rng);
            device.prekeys.insert(id, key.key_pair.public.0);
            phone.prekeys.insert(
                id,
                StoredPreKey {
                    private: key.key_pair.private.to_bytes(),
                },
            );
        }
    }

    /// A server ack for something the phone sent.
    pub(crate) fn phone_ack(&mut self, pn: &str, ack: &Node) {
        if ack.attr_str("class") != Some("message") {
            return;
        }
        if let Some(phone) = self.phones.get_mut(pn) {
            phone.acks.push(PhoneAck {
                id: attr_string(ack, "id").unwrap_or_default(),
                error: attr_string(ack, "error"),
            });
        }
    }

    /// A stanza for a phone: decrypt messages, record receipts.
    pub(crate) fn phone_deliver(&mut self, pn: &str, node: Node) {
        match &*node.tag {
            "message" => self.phone_on_message(pn, &node),
            "receipt" => {
                let from = attr_jid(&node, "participant")
                    .filter(|_| attr_jid(&node, "from").is_some_and(|f| f.is_group()))
                    .or_else(|| attr_jid(&node, "from"));
                let from = from.and_then(|j| self.resolve_user(&j)).unwrap_or_default();
                let kind = node.attr_str("type").unwrap_or("delivery").to_owned();
                let mut ids = vec![attr_string(&node, "id").unwrap_or_default()];
                if let Some(list) = node.child_by_tag("list") {
                    ids.extend(
                        list.children_by_tag("item")
                            .filter_map(|i| attr_string(i, "id")),
                    );
                }
                if let Some(phone) = self.phones.get_mut(pn) {
                    for id in ids {
                        phone.receipts.push(PhoneReceipt {
                            id,
                            from: from.clone(),
                            kind: kind.clone(),
                        });
                    }
                }
                if kind == "retry" {
                    self.phone_answer_retry(pn, &node);
                }
            }
            _ => {}
        }
    }

    fn phone_on_message(&mut self, pn: &str, node: &Node) {
        let me = DevAddr::new(pn, 0);
        let (Some(from), Some(id)) = (attr_jid(node, "from"), attr_string(node, "id")) else {
            return;
        };
        let group = from.is_group().then(|| from.user().to_owned());
        let sender_jid = if group.is_some() {
            attr_jid(node, "participant")
        } else {
            Some(from.clone())
        };
        let Some(sender) = sender_jid.as_ref().and_then(|j| self.resolve_device(j)) else {
            return;
        };
        let t = node
            .attr_str("t")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(now_secs);
        let offline = node.attr_value("offline").is_some();
        let mut texts: Vec<(Option<String>, bool)> = Vec::new();
        let mut failed = false;
        // Pairwise messages first: they may carry the sender key the skmsg needs.
        let mut encs: Vec<&Node> = node.children_by_tag("enc").collect();
        encs.sort_by_key(|e| e.attr_str("type") == Some("skmsg"));
        for enc in encs {
            let Some(bytes) = content_bytes(enc) else {
                continue;
            };
            let plain = match enc.attr_str("type") {
                Some("pkmsg") => self.phone_decrypt_pkmsg(pn, &sender, bytes),
                Some("msg") => self.phone_decrypt_msg(pn, &sender, bytes),
                Some("skmsg") => match &group {
                    Some(g) => self.phone_decrypt_skmsg(pn, g, &sender, bytes),
                    None => Err(SignalError::MissingField("group")),
                },
                _ => continue,
            };
            let Ok(plain) = plain else {
                failed = true;
                continue;
            };
            let Ok(body) = padding::unpad(&plain) else {
                failed = true;
                continue;
            };
            let Ok(msg) = wa::Message::decode(body) else {
                failed = true;
                continue;
            };
            if let Some(skdm) = &msg.sender_key_distribution_message
                && let (Some(gid), Some(dist)) = (
                    &skdm.group_id,
                    &skdm.axolotl_sender_key_distribution_message,
                )
            {
                let gid = Jid::parse(gid)
                    .map(|j| j.user().to_owned())
                    .unwrap_or_else(|_| gid.clone());
                self.phone_store_sender_key(pn, &gid, &sender, dist);
            }
            let (inner, from_me) = match &msg.device_sent_message {
                Some(dsm) => (dsm.message.as_deref().cloned().unwrap_or_default(), true),
                None => (msg.clone(), sender.pn == pn),
            };
            let text = message_text(&inner);
            let mut stripped = inner.clone();
            stripped.sender_key_distribution_message = None;
            stripped.message_context_info = None;
            if stripped != wa::Message::default() {
                texts.push((text, from_me));
            }
        }
        let chat = match (&group, attr_jid(node, "recipient")) {
            (Some(g), _) => group_jid(g).to_string(),
            (None, Some(r)) => self
                .resolve_user(&r)
                .map(|p| self.user_jid(&p, false).to_string())
                .unwrap_or_default(),
            (None, None) => self.user_jid(&sender.pn, false).to_string(),
        };
        if let Some(phone) = self.phones.get_mut(pn) {
            for (text, from_me) in texts {
                phone.inbox.push(InboxMessage {
                    id: id.clone(),
                    chat: chat.clone(),
                    sender: sender.pn.clone(),
                    sender_device: sender.dev,
                    from_me,
                    text,
                    t,
                    offline,
                });
            }
            if failed {
                phone.undecryptable += 1;
            }
        }
        self.dirty = true;
        // Answer like a real phone: a delivery receipt, or a retry receipt.
        let mut receipt = Node::new("receipt").attr("id", id.clone());
        match &group {
            Some(g) => {
                receipt.set_attr("to", group_jid(g));
                if let Some(p) = &sender_jid {
                    receipt.set_attr("participant", p.clone());
                }
            }
            None => {
                receipt.set_attr("to", from.clone());
                if sender.pn == pn {
                    receipt.set_attr("type", "sender");
                    if let Some(r) = attr_jid(node, "recipient") {
                        receipt.set_attr("recipient", r);
                    }
                }
            }
        }
        if failed {
            let registration = self.phones.get(pn).map_or(0, |p| p.registration_id);
            receipt.set_attr("type", "retry");
            receipt.content = Content::Nodes(vec![
                Node::new("retry")
                    .attr("count", "1")
                    .attr("id", id)
                    .attr("t", t)
                    .attr("v", "1"),
                Node::new("registration").bytes(be_bytes(u64::from(registration), 4)),
            ]);
        }
        self.on_receipt(&me, receipt);
    }

    fn phone_decrypt_pkmsg(
        &mut self,
        pn: &str,
        sender: &DevAddr,
        bytes: &[u8],
    ) -> Result<Vec<u8>, SignalError> {
        let phone = self.phones.get(pn).ok_or(SignalError::NoSession)?;
        let message = PreKeySignalMessage::parse(bytes)?;
        let spk = phone.signed_prekey();
        let one_time = message.pre_key_id().and_then(|id| {
            phone.prekeys.get(&id).map(|k| PreKey {
                id,
                key_pair: KeyPair::from_private(PrivateKey::from_bytes(k.private)),
            })
        });
        let keys = PreKeys {
            signed: (spk.id == message.signed_pre_key_id()).then_some(&spk),
            one_time: one_time.as_ref(),
        };
        let record = phone.session(sender);
        let local = phone.local();
        let trusted = phone.trusted(sender);
        let result = match session::decrypt_prekey_message(
            record.as_ref(),
            &local,
            keys,
            trusted.as_ref(),
            &message,
            &mut self.rng,
        ) {
            Err(SignalError::UntrustedIdentity { .. }) => {
                // The peer re-paired: trust the new identity, start over.
                session::decrypt_prekey_message(None, &local, keys, None, &message, &mut self.rng)?
            }
            other => other?,
        };
        let phone = self.phones.get_mut(pn).ok_or(SignalError::NoSession)?;
        if let Some(used) = result.used_pre_key_id {
            phone.prekeys.remove(&used);
        }
        phone
            .identities
            .insert(addr_key(sender), Blob(message.identity_key().0.to_vec()));
        phone
            .sessions
            .insert(addr_key(sender), Blob(result.record.to_bytes()));
        Ok(result.plaintext)
    }

    fn phone_decrypt_msg(
        &mut self,
        pn: &str,
        sender: &DevAddr,
        bytes: &[u8],
    ) -> Result<Vec<u8>, SignalError> {
        let phone = self.phones.get(pn).ok_or(SignalError::NoSession)?;
        let record = phone.session(sender).ok_or(SignalError::NoSession)?;
        let result = session::decrypt_message(&record, bytes, &mut self.rng)?;
        let phone = self.phones.get_mut(pn).ok_or(SignalError::NoSession)?;
        phone
            .sessions
            .insert(addr_key(sender), Blob(result.record.to_bytes()));
        Ok(result.plaintext)
    }

    fn phone_decrypt_skmsg(
        &mut self,
        pn: &str,
        gid: &str,
        sender: &DevAddr,
        bytes: &[u8],
    ) -> Result<Vec<u8>, SignalError> {
        let key = format!("{gid}|{}", addr_key(sender));
        let phone = self.phones.get(pn).ok_or(SignalError::NoSession)?;
        let record = phone
            .sender_keys
            .get(&key)
            .and_then(|b| SenderKeyRecord::from_bytes(&b.0).ok())
            .ok_or(SignalError::NoSession)?;
        let result = group::decrypt(&record, bytes)?;
        let phone = self.phones.get_mut(pn).ok_or(SignalError::NoSession)?;
        phone
            .sender_keys
            .insert(key, Blob(result.record.to_bytes()));
        Ok(result.plaintext)
    }

    fn phone_store_sender_key(
        &mut self,
        pn: &str,
        gid: &str,
        sender: &DevAddr,
        distribution: &[u8],
    ) {
        let key = format!("{gid}|{}", addr_key(sender));
        let Some(phone) = self.phones.get_mut(pn) else {
            return;
        };
        let current = phone
            .sender_keys
            .get(&key)
            .and_then(|b| SenderKeyRecord::from_bytes(&b.0).ok());
        if let Ok(record) = group::process_distribution_message(current.as_ref(), distribution) {
            phone.sender_keys.insert(key, Blob(record.to_bytes()));
        }
    }

    /// Encrypts `plaintext` (already padded) for one device, creating the session from the
    /// device's published bundle if needed. `None` if the device has no bundle.
    fn phone_encrypt_for(
        &mut self,
        pn: &str,
        target: &DevAddr,
        plaintext: &[u8],
    ) -> Option<CiphertextMessage> {
        let mut record = self.phones.get(pn)?.session(target);
        if record.as_ref().is_none_or(|r| !r.has_current_session()) {
            let bundle = self
                .accounts
                .get_mut(&target.pn)?
                .devices
                .get_mut(&target.dev)?
                .take_bundle()?;
            self.stats.bundles_served += 1;
            let bundle = PreKeyBundle {
                registration_id: bundle.registration_id,
                device_id: u32::from(target.dev),
                identity_key: PublicKey(bundle.identity),
                signed_pre_key_id: bundle.signed_prekey.id,
                signed_pre_key_public: PublicKey(bundle.signed_prekey.public),
                signed_pre_key_signature: bundle
                    .signed_prekey
                    .signature
                    .as_slice()
                    .try_into()
                    .ok()?,
                pre_key: bundle.prekey.map(|(id, public)| PreKeyPublic {
                    id,
                    public: PublicKey(public),
                }),
            };
            let phone = self.phones.get(pn)?;
            let local = phone.local();
            let init =
                session::initiate(record.as_ref(), &local, &bundle, None, &mut self.rng).ok()?;
            self.phones
                .get_mut(pn)?
                .identities
                .insert(addr_key(target), Blob(bundle.identity_key.0.to_vec()));
            record = Some(init.record);
        }
        let mut record = record?;
        let out = session::encrypt(&mut record, plaintext).ok()?;
        self.phones
            .get_mut(pn)?
            .sessions
            .insert(addr_key(target), Blob(record.to_bytes()));
        Some(out)
    }

    fn phone_message_id(&mut self) -> String {
        format!("3A{}", hex::encode_upper(self.rng.random::<[u8; 9]>()))
    }

    /// The phone of `pn` sends `text` to a user or group JID. Returns the message id.
    pub(crate) fn phone_send_text(
        &mut self,
        pn: &str,
        to: &Jid,
        text: &str,
    ) -> Result<String, String> {
        if !self.phones.contains_key(pn) {
            return Err(format!("unknown account {pn}"));
        }
        let content = wa::Message {
            conversation: Some(text.to_owned()),
            ..Default::default()
        };
        if to.is_group() {
            return self.phone_send_group(pn, to.user(), &content);
        }
        let target = self
            .resolve_user(to)
            .ok_or_else(|| format!("unknown user {to}"))?;
        let lid = self.addressing == crate::config::Addressing::Lid;
        let to_jid = self.user_jid(&target, lid);
        let dsm = wa::Message {
            device_sent_message: Some(Box::new(message::DeviceSentMessage {
                destination_jid: Some(self.user_jid(&target, false).to_string()),
                message: Some(Box::new(content.clone())),
                phash: None,
            })),
            ..Default::default()
        };
        let mut devices: Vec<DevAddr> = self
            .accounts
            .get(&target)
            .map(|a| {
                a.device_ids()
                    .into_iter()
                    .map(|d| DevAddr::new(&target, d))
                    .collect()
            })
            .unwrap_or_default();
        if target != pn {
            devices.extend(
                self.accounts
                    .get(pn)
                    .map(|a| {
                        a.device_ids()
                            .into_iter()
                            .filter(|d| *d != 0)
                            .map(|d| DevAddr::new(pn, d))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
            );
        }
        let mut participants = Vec::new();
        for device in devices {
            if device == DevAddr::new(pn, 0) {
                continue;
            }
            let body = if device.pn == pn && target != pn {
                &dsm
            } else {
                &content
            };
            let padded = padding::pad(&body.encode_to_vec(), &mut self.rng);
            let Some(ct) = self.phone_encrypt_for(pn, &device, &padded) else {
                continue;
            };
            participants.push(
                Node::new("to")
                    .attr("jid", self.jid_of(&device, lid))
                    .children([Node::new("enc")
                        .attr("v", "2")
                        .attr("type", ct.enc_type())
                        .bytes(ct.into_bytes())]),
            );
        }
        let id = self.phone_message_id();
        self.phone_remember_sent(pn, &id, &target, false, &content);
        let stanza = Node::new("message")
            .attr("id", id.clone())
            .attr("to", to_jid)
            .attr("type", "text")
            .children([Node::new("participants").children(participants)]);
        self.on_message(&DevAddr::new(pn, 0), stanza);
        Ok(id)
    }

    fn phone_send_group(
        &mut self,
        pn: &str,
        gid: &str,
        content: &wa::Message,
    ) -> Result<String, String> {
        let group = self
            .groups
            .get(gid)
            .ok_or_else(|| format!("unknown group {gid}"))?;
        if group.participant(pn).is_none() {
            return Err(format!("{pn} is not in group {gid}"));
        }
        let lid = group.lid_addressing();
        let members: Vec<String> = group.participants.iter().map(|p| p.pn.clone()).collect();
        let phone = self
            .phones
            .get(pn)
            .ok_or_else(|| format!("unknown account {pn}"))?;
        let mut own = match phone
            .own_sender_keys
            .get(gid)
            .and_then(|b| SenderKeyRecord::from_bytes(&b.0).ok())
        {
            Some(record) => record,
            None => group::create_sender_key(&mut self.rng),
        };
        let distribution = group::distribution_message(&own).map_err(|e| e.to_string())?;
        let skdm = wa::Message {
            sender_key_distribution_message: Some(message::SenderKeyDistributionMessage {
                group_id: Some(group_jid(gid).to_string()),
                axolotl_sender_key_distribution_message: Some(distribution.into()),
            }),
            ..Default::default()
        };
        let already: BTreeSet<String> = phone.skdm_sent.get(gid).cloned().unwrap_or_default();
        let mut participants = Vec::new();
        let mut newly = Vec::new();
        for member in &members {
            let devices: Vec<u16> = self
                .accounts
                .get(member)
                .map(|a| a.device_ids())
                .unwrap_or_default();
            for dev in devices {
                let device = DevAddr::new(member, dev);
                if device == DevAddr::new(pn, 0) || already.contains(&addr_key(&device)) {
                    continue;
                }
                let padded = padding::pad(&skdm.encode_to_vec(), &mut self.rng);
                let Some(ct) = self.phone_encrypt_for(pn, &device, &padded) else {
                    continue;
                };
                participants.push(
                    Node::new("to")
                        .attr("jid", self.jid_of(&device, lid))
                        .children([Node::new("enc")
                            .attr("v", "2")
                            .attr("type", ct.enc_type())
                            .bytes(ct.into_bytes())]),
                );
                newly.push(addr_key(&device));
            }
        }
        let padded = padding::pad(&content.encode_to_vec(), &mut self.rng);
        let skmsg = group::encrypt(&mut own, &padded, &mut self.rng).map_err(|e| e.to_string())?;
        if let Some(phone) = self.phones.get_mut(pn) {
            phone
                .own_sender_keys
                .insert(gid.to_owned(), Blob(own.to_bytes()));
            phone
                .skdm_sent
                .entry(gid.to_owned())
                .or_default()
                .extend(newly);
        }
        let id = self.phone_message_id();
        self.phone_remember_sent(pn, &id, gid, true, content);
        let mut children = Vec::new();
        if !participants.is_empty() {
            children.push(Node::new("participants").children(participants));
        }
        children.push(
            Node::new("enc")
                .attr("v", "2")
                .attr("type", "skmsg")
                .bytes(skmsg),
        );
        let stanza = Node::new("message")
            .attr("id", id.clone())
            .attr("to", group_jid(gid))
            .attr("type", "text")
            .children(children);
        self.on_message(&DevAddr::new(pn, 0), stanza);
        Ok(id)
    }

    fn phone_remember_sent(
        &mut self,
        pn: &str,
        id: &str,
        chat: &str,
        group: bool,
        content: &wa::Message,
    ) {
        let Some(phone) = self.phones.get_mut(pn) else {
            return;
        };
        if phone.recent_sent.len() >= PHONE_RECENT_SENT {
            phone.recent_sent.pop_front();
        }
        phone.recent_sent.push_back(SentMessage {
            id: id.to_owned(),
            chat: chat.to_owned(),
            group,
            content: Blob(content.encode_to_vec()),
            resends: BTreeMap::new(),
        });
        self.dirty = true;
    }

    /// Answers a retry receipt the phone of `pn` received: re-encrypts the named message for
    /// the requesting device alone (see the module docs). Unknown messages, devices and
    /// unusable keys are ignored, as a phone would.
    fn phone_answer_retry(&mut self, pn: &str, receipt: &Node) {
        let Some(id) = attr_string(receipt, "id") else {
            return;
        };
        let from = attr_jid(receipt, "from");
        let requester_jid = match &from {
            Some(f) if f.is_group() => attr_jid(receipt, "participant"),
            other => other.clone(),
        };
        let Some(requester) = requester_jid.and_then(|j| self.resolve_device(&j)) else {
            return;
        };
        let Some(phone) = self.phones.get_mut(pn) else {
            return;
        };
        let Some(sent) = phone.recent_sent.iter_mut().find(|m| m.id == id) else {
            return;
        };
        let resends = sent.resends.entry(addr_key(&requester)).or_insert(0);
        if *resends >= PHONE_MAX_RESENDS {
            return;
        }
        *resends += 1;
        let count = *resends;
        let (chat, group, content) = (sent.chat.clone(), sent.group, sent.content.0.clone());
        let Ok(mut message) = wa::Message::decode(content.as_slice()) else {
            return;
        };
        // Keys in the receipt: the device lost its session; start a fresh one from them.
        if let Some(keys) = receipt.child_by_tag("keys")
            && let Some(bundle) = retry_bundle(receipt, keys, requester.dev)
        {
            let Some(phone) = self.phones.get(pn) else {
                return;
            };
            let local = phone.local();
            let Ok(init) = session::initiate(None, &local, &bundle, None, &mut self.rng) else {
                return;
            };
            if let Some(phone) = self.phones.get_mut(pn) {
                phone
                    .identities
                    .insert(addr_key(&requester), Blob(bundle.identity_key.0.to_vec()));
                phone
                    .sessions
                    .insert(addr_key(&requester), Blob(init.record.to_bytes()));
            }
        }
        let lid;
        let mut stanza = Node::new("message")
            .attr("id", id.clone())
            .attr("type", "text");
        if group {
            let Some(g) = self.groups.get(&chat) else {
                return;
            };
            lid = g.lid_addressing();
            // The device may also have lost our sender key: send it along.
            if let Some(own) = self
                .phones
                .get(pn)
                .and_then(|p| p.own_sender_keys.get(&chat))
                .and_then(|b| SenderKeyRecord::from_bytes(&b.0).ok())
                && let Ok(distribution) = group::distribution_message(&own)
            {
                message.sender_key_distribution_message =
                    Some(message::SenderKeyDistributionMessage {
                        group_id: Some(group_jid(&chat).to_string()),
                        axolotl_sender_key_distribution_message: Some(distribution.into()),
                    });
            }
            stanza.set_attr("to", group_jid(&chat));
            stanza.set_attr("participant", self.jid_of(&requester, lid));
        } else {
            lid = self.addressing == crate::config::Addressing::Lid;
            if requester.pn == pn {
                // One of the phone's own companions: the "sent by me" form.
                message = wa::Message {
                    device_sent_message: Some(Box::new(message::DeviceSentMessage {
                        destination_jid: Some(self.user_jid(&chat, false).to_string()),
                        message: Some(Box::new(message)),
                        phash: None,
                    })),
                    ..Default::default()
                };
                stanza.set_attr("recipient", self.user_jid(&chat, lid));
            }
            stanza.set_attr("to", self.jid_of(&requester, lid));
        }
        let padded = padding::pad(&message.encode_to_vec(), &mut self.rng);
        let Some(ct) = self.phone_encrypt_for(pn, &requester, &padded) else {
            return;
        };
        stanza.push_child(
            Node::new("enc")
                .attr("v", "2")
                .attr("type", ct.enc_type())
                .attr("count", count.to_string())
                .bytes(ct.into_bytes()),
        );
        self.on_message(&DevAddr::new(pn, 0), stanza);
    }

    /// Forgets which devices have the phone's sender key for a group (e.g. after membership
    /// changes), so the next group send distributes a fresh key to everyone.
    pub(crate) fn phone_reset_sender_key(&mut self, pn: &str, gid: &str) {
        if let Some(phone) = self.phones.get_mut(pn) {
            phone.own_sender_keys.remove(gid);
            phone.skdm_sent.remove(gid);
        }
    }
}

/// The prekey bundle in a retry receipt: `<registration>` beside `<keys>` holding `<identity>`,
/// `<skey>{id, value, signature}` and optionally `<key>{id, value}`. `None` if malformed.
fn retry_bundle(receipt: &Node, keys: &Node, device: u16) -> Option<PreKeyBundle> {
    fn bytes(n: Option<&Node>) -> Option<&[u8]> {
        n.and_then(Node::content_bytes)
    }
    let id3 = |n: &Node| -> Option<u32> {
        let b = bytes(n.child_by_tag("id"))?;
        (b.len() == 3).then(|| u32::from_be_bytes([0, b[0], b[1], b[2]]))
    };
    let registration = bytes(receipt.child_by_tag("registration"))?;
    let skey = keys.child_by_tag("skey")?;
    Some(PreKeyBundle {
        registration_id: u32::from_be_bytes(registration.try_into().ok()?),
        device_id: u32::from(device),
        identity_key: PublicKey::from_slice(bytes(keys.child_by_tag("identity"))?).ok()?,
        signed_pre_key_id: id3(skey)?,
        signed_pre_key_public: PublicKey::from_slice(bytes(skey.child_by_tag("value"))?).ok()?,
        signed_pre_key_signature: bytes(skey.child_by_tag("signature"))?.try_into().ok()?,
        pre_key: match keys.child_by_tag("key") {
            Some(k) => Some(PreKeyPublic {
                id: id3(k)?,
                public: PublicKey::from_slice(bytes(k.child_by_tag("value"))?).ok()?,
            }),
            None => None,
        },
    })
}
