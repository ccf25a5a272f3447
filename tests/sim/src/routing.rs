//! Message fan-out, server acks, receipts, presence and chat state, and the per-device queue
//! that gives offline delivery its "in order, exactly once once receipted" guarantee.
//!
//! Contract:
//! - Every `message`, `receipt`, `notification` or `call` the server sends to a device is first
//!   appended to that device's [`Queue`] and stays there until the device acknowledges it (a
//!   `receipt` or `ack class=message` for messages, `ack class=<tag>` for the rest). While the
//!   device is online queued stanzas are written at once; on its next login every stanza not
//!   yet acknowledged is written again, in queue order, marked `offline="1"`, bracketed by
//!   `<ib><offline_preview/></ib>` and `<ib><offline count/></ib>` (`protocol-whatsmeow.md` §2.9).
//! - A client `message` is fanned out per device exactly as its `<participants>` say (1:1) or to
//!   every member device (groups, `skmsg`), and answered with `<ack class="message" id t from>`;
//!   refused sends get the same ack with `error` (429 over the rate limit, 463 for a restricted
//!   account's new chat, 403 not a group member, 404 unknown destination).
//! - Receipts are relayed to the device(s) they name; `inactive` is relayed as a plain delivery
//!   receipt. Presence and chat state go only to devices online at that moment.

use std::collections::{BTreeMap, VecDeque};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use wasmeow_protocol::binary::{self, Jid, Node, Server};

use crate::state::{DevAddr, World};
use crate::util::{attr_jid, attr_string, now_ms, now_secs};

/// One stanza waiting for a device's acknowledgement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Queued {
    /// The acknowledgement class: the stanza's tag.
    pub class: String,
    pub id: String,
    #[serde(with = "node_bytes")]
    pub node: Node,
    /// The connection it was last written to.
    #[serde(skip)]
    pub sent_on: Option<u64>,
    /// Fault injection: not before this time (unix ms).
    #[serde(skip)]
    pub deliver_at_ms: u64,
    /// Fault injection: held back for reordering.
    #[serde(skip)]
    pub held: bool,
}

/// A device's queue of unacknowledged stanzas.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Queue {
    entries: VecDeque<Queued>,
}

impl Queue {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Removes the first entry of this class and id; true if one was pending.
    pub(crate) fn ack(&mut self, class: &str, id: &str) -> bool {
        match self
            .entries
            .iter()
            .position(|e| e.class == class && e.id == id)
        {
            Some(index) => {
                self.entries.remove(index);
                true
            }
            None => false,
        }
    }

    /// Ids of the entries of a class, in order (for tests and inspection).
    pub(crate) fn ids(&self, class: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.class == class)
            .map(|e| e.id.clone())
            .collect()
    }

    /// Whether a `notification` of this type is waiting for acknowledgement.
    pub(crate) fn has_notification(&self, kind: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.class == "notification" && e.node.attr_str("type") == Some(kind))
    }

    /// Releases every entry held by a reorder fault, in queue order.
    pub(crate) fn release_all(&mut self) {
        for entry in &mut self.entries {
            entry.held = false;
        }
    }

    pub(crate) fn forget_connection(&mut self) {
        for entry in &mut self.entries {
            entry.sent_on = None;
        }
    }
}

mod node_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize as _, Deserializer, Serializer};
    use wasmeow_protocol::binary::{self, Node};

    pub(crate) fn serialize<S: Serializer>(node: &Node, s: S) -> Result<S::Ok, S::Error> {
        let bytes = binary::encode(node).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD.decode(text).map_err(serde::de::Error::custom)?;
        binary::decode(&bytes).map_err(serde::de::Error::custom)
    }
}

/// Why a send was refused (the `error` of the message ack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendRefusal {
    RateLimited,
    Restricted,
    NotParticipant,
    UnknownDestination,
    BadStanza,
}

impl SendRefusal {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::RateLimited => "429",
            Self::Restricted => "463",
            Self::NotParticipant => "403",
            Self::UnknownDestination => "404",
            Self::BadStanza => "400",
        }
    }
}

/// Attributes of a client `message` copied onto what recipients get.
const PASSTHROUGH_ATTRS: [&str; 6] = [
    "type",
    "edit",
    "category",
    "push_priority",
    "expiration",
    "media_id",
];

/// whatsmeow's participant hash: `2:` + base64(sha256(sorted AD strings))[..6 bytes].
pub(crate) fn participant_hash(jids: &[Jid]) -> String {
    let mut ad: Vec<String> = jids
        .iter()
        .map(|j| format!("{}.{}:{}@{}", j.user(), j.agent(), j.device(), j.server()))
        .collect();
    ad.sort();
    let digest = Sha256::digest(ad.concat().as_bytes());
    format!(
        "2:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&digest[..6])
    )
}

impl World {
    // ---------------------------------------------------------------------------------------
    // The per-device queue.

    /// Queues a stanza for a device and writes it if the device is online. Stanzas for a
    /// device 0 go to the simulated phone instead.
    pub(crate) fn enqueue(&mut self, to: &DevAddr, node: Node) {
        if to.dev == 0 && self.phones.contains_key(&to.pn) {
            self.phone_deliver(&to.pn.clone(), node);
            return;
        }
        let Some(id) = attr_string(&node, "id") else {
            return;
        };
        let mut entry = Queued {
            class: node.tag.to_string(),
            id,
            node,
            sent_on: None,
            deliver_at_ms: 0,
            held: false,
        };
        let release = self.apply_delivery_faults(to, &mut entry);
        let Some(device) = self.device_mut(to) else {
            return;
        };
        device.queue.entries.push_back(entry);
        if let Some(count) = release {
            reverse_held(&mut device.queue, count);
        }
        self.dirty = true;
        self.flush(to);
    }

    fn device_mut(&mut self, to: &DevAddr) -> Option<&mut crate::accounts::DeviceRecord> {
        self.accounts.get_mut(&to.pn)?.devices.get_mut(&to.dev)
    }

    /// Writes every ready, not-yet-written queue entry to the device's current connection.
    pub(crate) fn flush(&mut self, to: &DevAddr) {
        let Some(online) = self.online.get(to) else {
            return;
        };
        let conn = online.conn_id;
        let tx = online.tx.clone();
        let now = now_ms();
        let mut next_wake: Option<u64> = None;
        let mut written = 0u64;
        if let Some(device) = self
            .accounts
            .get_mut(&to.pn)
            .and_then(|a| a.devices.get_mut(&to.dev))
        {
            for entry in &mut device.queue.entries {
                if entry.sent_on == Some(conn) || entry.held {
                    continue;
                }
                if entry.deliver_at_ms > now {
                    next_wake =
                        Some(next_wake.map_or(entry.deliver_at_ms, |w| w.min(entry.deliver_at_ms)));
                    continue;
                }
                if tx
                    .send(crate::state::ConnCmd::Send(entry.node.clone()))
                    .is_err()
                {
                    break;
                }
                entry.sent_on = Some(conn);
                if entry.class == "message" {
                    written += 1;
                }
            }
        }
        self.stats.messages_out += written;
        if let Some(at) = next_wake {
            let addr = to.clone();
            self.after(
                std::time::Duration::from_millis(at.saturating_sub(now)),
                move |w| w.flush(&addr),
            );
        }
    }

    /// After a login: writes every unacknowledged stanza marked `offline`, then `<ib><offline>`.
    pub(crate) fn deliver_offline(&mut self, to: &DevAddr) {
        let Some(online) = self.online.get(to) else {
            return;
        };
        let conn = online.conn_id;
        let tx = online.tx.clone();
        let now = now_ms();
        let mut batch = Vec::new();
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        if let Some(device) = self
            .accounts
            .get_mut(&to.pn)
            .and_then(|a| a.devices.get_mut(&to.dev))
        {
            for entry in &mut device.queue.entries {
                if entry.held || entry.deliver_at_ms > now {
                    continue;
                }
                let mut node = entry.node.clone();
                node.set_attr("offline", "1");
                let kind = match entry.class.as_str() {
                    "message" => "message",
                    "receipt" => "receipt",
                    "notification" => "notification",
                    "call" => "call",
                    _ => "appdata",
                };
                *counts.entry(kind).or_default() += 1;
                entry.sent_on = Some(conn);
                batch.push(node);
            }
        }
        let total = batch.len();
        if total > 0 {
            let mut preview = Node::new("offline_preview").attr("count", total);
            for kind in ["message", "notification", "receipt", "appdata", "call"] {
                preview.set_attr(kind, counts.get(kind).copied().unwrap_or(0));
            }
            let _ = tx.send(crate::state::ConnCmd::Send(
                Node::new("ib").children([preview]),
            ));
        }
        let messages = counts.get("message").copied().unwrap_or(0) as u64;
        for node in batch {
            let _ = tx.send(crate::state::ConnCmd::Send(node));
        }
        self.stats.messages_out += messages;
        let _ = tx.send(crate::state::ConnCmd::Send(
            Node::new("ib").children([Node::new("offline").attr("count", total)]),
        ));
        // Entries delayed by a fault are written when they become ready.
        self.flush(to);
    }

    /// Drops an acknowledged stanza from a device's queue.
    pub(crate) fn ack_queued(&mut self, to: &DevAddr, class: &str, id: &str) -> bool {
        let removed = self.device_mut(to).is_some_and(|d| d.queue.ack(class, id));
        if removed {
            self.dirty = true;
        }
        removed
    }

    // ---------------------------------------------------------------------------------------
    // Messages.

    fn message_ack(
        &self,
        id: &str,
        to: &Jid,
        error: Option<SendRefusal>,
        phash: Option<String>,
    ) -> Node {
        let mut ack = Node::new("ack")
            .attr("class", "message")
            .attr("id", id.to_owned())
            .attr("from", to.to_non_ad())
            .attr("t", now_secs());
        if let Some(phash) = phash {
            ack.set_attr("phash", phash);
        }
        if let Some(error) = error {
            ack.set_attr("error", error.code());
        }
        ack
    }

    /// Sends an ack to the device that sent a message (the phone just records it).
    fn ack_sender(&mut self, from: &DevAddr, ack: Node) {
        if from.dev == 0 && self.phones.contains_key(&from.pn) {
            self.phone_ack(&from.pn.clone(), &ack);
        } else {
            self.send_now(from, ack);
        }
    }

    /// A `message` stanza from a device (a client, or a simulated phone).
    pub(crate) fn on_message(&mut self, from: &DevAddr, node: Node) {
        let Some(id) = attr_string(&node, "id") else {
            return;
        };
        let Some(to) = attr_jid(&node, "to") else {
            let ack = self.message_ack(
                &id,
                &crate::util::server_jid(),
                Some(SendRefusal::BadStanza),
                None,
            );
            self.ack_sender(from, ack);
            return;
        };
        self.stats.messages_in += 1;
        let limit = self.rate_limit;
        let now = now_ms();
        let admitted = self
            .accounts
            .get_mut(&from.pn)
            .is_some_and(|a| a.admit_send(limit, now));
        if !admitted {
            self.stats.rate_limited += 1;
            let ack = self.message_ack(&id, &to, Some(SendRefusal::RateLimited), None);
            self.ack_sender(from, ack);
            return;
        }
        let result = if to.is_group() {
            self.route_group_message(from, &id, &to, &node)
        } else if matches!(to.server(), Server::WhatsApp | Server::Lid) {
            self.route_direct_message(from, &id, &to, &node)
        } else {
            Err(SendRefusal::UnknownDestination)
        };
        let ack = match result {
            Ok(phash) => self.message_ack(&id, &to, None, phash),
            Err(refusal) => {
                if refusal == SendRefusal::Restricted {
                    self.stats.restricted_refusals += 1;
                }
                self.message_ack(&id, &to, Some(refusal), None)
            }
        };
        self.ack_sender(from, ack);
    }

    /// The `<enc>` children a device gets, from `<participants><to jid>`.
    fn participant_encs(&self, node: &Node) -> Vec<(DevAddr, Vec<Node>)> {
        let mut out: Vec<(DevAddr, Vec<Node>)> = Vec::new();
        let Some(participants) = node.child_by_tag("participants") else {
            return out;
        };
        for to in participants.children_by_tag("to") {
            let Some(jid) = attr_jid(to, "jid") else {
                continue;
            };
            let Some(addr) = self.resolve_device(&jid) else {
                continue;
            };
            let encs: Vec<Node> = to.children_by_tag("enc").cloned().collect();
            if encs.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(a, _)| *a == addr) {
                Some((_, existing)) => existing.extend(encs),
                None => out.push((addr, encs)),
            }
        }
        out
    }

    fn base_delivery(&self, node: &Node, id: &str) -> Node {
        let mut out = Node::new("message").attr("id", id.to_owned());
        for key in PASSTHROUGH_ATTRS {
            if let Some(value) = node.attr_value(key) {
                out.set_attr(key, value.clone());
            }
        }
        if out.attr_value("type").is_none() {
            out.set_attr("type", "text");
        }
        out.set_attr("t", now_secs());
        out
    }

    fn finish_delivery(mut out: Node, encs: Vec<Node>, node: &Node) -> Node {
        let has_pkmsg = encs.iter().any(|e| e.attr_str("type") == Some("pkmsg"));
        let mut children = encs;
        if has_pkmsg && let Some(identity) = node.child_by_tag("device-identity") {
            children.push(identity.clone());
        }
        out.content = binary::Content::Nodes(children);
        out
    }

    fn route_direct_message(
        &mut self,
        from: &DevAddr,
        id: &str,
        to: &Jid,
        node: &Node,
    ) -> Result<Option<String>, SendRefusal> {
        let target = self
            .resolve_user(to)
            .ok_or(SendRefusal::UnknownDestination)?;
        let lid = self.addressing == crate::config::Addressing::Lid;
        let category = node.attr_str("category");
        let own = target == from.pn;
        if !own && category != Some("peer") {
            let account = self.accounts.get(&from.pn).ok_or(SendRefusal::BadStanza)?;
            if account.restricted && !account.chats.contains(&target) {
                return Err(SendRefusal::Restricted);
            }
        }
        let mut deliveries = self.participant_encs(node);
        let top_encs: Vec<Node> = node.children_by_tag("enc").cloned().collect();
        if !top_encs.is_empty() {
            // A retry resend (`to` names one device) or a peer message to our own phone.
            let dest = if to.is_ad() || to.device() != 0 {
                self.resolve_device(to)
                    .ok_or(SendRefusal::UnknownDestination)?
            } else {
                DevAddr::new(&target, 0)
            };
            // Baileys' retry resends carry the same device in <participants> as well: one stanza.
            match deliveries.iter_mut().find(|(a, _)| *a == dest) {
                Some((_, encs)) => {
                    let mut merged = top_encs;
                    merged.append(encs);
                    *encs = merged;
                }
                None => deliveries.push((dest, top_encs)),
            }
        }
        let recipient = attr_jid(node, "recipient");
        let sender_jid = self.jid_of(from, lid);
        let push_name = self
            .accounts
            .get(&from.pn)
            .map(|a| a.push_name.clone())
            .unwrap_or_default();
        for (addr, encs) in deliveries {
            if addr == *from {
                continue;
            }
            let mut out = self.base_delivery(node, id);
            out.set_attr("from", sender_jid.clone());
            if addr.pn == from.pn && !own {
                // Our own other device: a "sent by me" copy (DSM) naming the chat.
                out.set_attr("recipient", self.user_jid(&target, lid));
            } else if addr.pn == from.pn {
                if let Some(recipient) = recipient.as_ref().and_then(|r| self.resolve_user(r)) {
                    out.set_attr("recipient", self.user_jid(&recipient, lid));
                }
            } else {
                if !push_name.is_empty() {
                    out.set_attr("notify", push_name.clone());
                }
                if lid {
                    out.set_attr("sender_pn", self.user_jid(&from.pn, false));
                    out.set_attr("addressing_mode", "lid");
                } else {
                    out.set_attr("sender_lid", self.user_jid(&from.pn, true));
                    out.set_attr("addressing_mode", "pn");
                }
            }
            let out = Self::finish_delivery(out, encs, node);
            self.enqueue(&addr, out);
        }
        if !own && category != Some("peer") {
            if let Some(a) = self.accounts.get_mut(&from.pn) {
                a.chats.insert(target.clone());
            }
            if let Some(a) = self.accounts.get_mut(&target) {
                a.chats.insert(from.pn.clone());
            }
        }
        // The devices the server would fan out to, for the phash check.
        let phash = node.attr_str("phash").and_then(|theirs| {
            let mut devices = Vec::new();
            for pn in [&target, &from.pn] {
                if let Some(account) = self.accounts.get(pn) {
                    for dev in account.device_ids() {
                        let addr = DevAddr::new(pn, dev);
                        if addr != *from {
                            devices.push(self.jid_of(&addr, lid));
                        }
                    }
                }
            }
            let ours = participant_hash(&devices);
            (ours != theirs).then_some(ours)
        });
        Ok(phash)
    }

    fn route_group_message(
        &mut self,
        from: &DevAddr,
        id: &str,
        to: &Jid,
        node: &Node,
    ) -> Result<Option<String>, SendRefusal> {
        let group = self
            .groups
            .get(to.user())
            .ok_or(SendRefusal::UnknownDestination)?;
        let member = group
            .participant(&from.pn)
            .ok_or(SendRefusal::NotParticipant)?;
        if group.announce && !member.is_admin() && node.attr_str("edit").is_none() {
            return Err(SendRefusal::NotParticipant);
        }
        let lid = group.lid_addressing();
        let members: Vec<String> = group.participants.iter().map(|p| p.pn.clone()).collect();
        let group_jid = to.to_non_ad();
        let direct = self.participant_encs(node);
        let top_encs: Vec<Node> = node.children_by_tag("enc").cloned().collect();
        let mut targets: Vec<(DevAddr, Vec<Node>)> = Vec::new();
        if let Some(one) = attr_jid(node, "participant") {
            // A retry resend for one device.
            let addr = self
                .resolve_device(&one)
                .ok_or(SendRefusal::UnknownDestination)?;
            targets.push((addr, top_encs.clone()));
        } else {
            for pn in &members {
                let Some(account) = self.accounts.get(pn) else {
                    continue;
                };
                for dev in account.device_ids() {
                    let addr = DevAddr::new(pn, dev);
                    if addr == *from {
                        continue;
                    }
                    let mut encs: Vec<Node> = direct
                        .iter()
                        .filter(|(a, _)| *a == addr)
                        .flat_map(|(_, e)| e.iter().cloned())
                        .collect();
                    encs.extend(top_encs.iter().cloned());
                    if !encs.is_empty() {
                        targets.push((addr, encs));
                    }
                }
            }
        }
        let sender = self.jid_of(from, lid);
        let push_name = self
            .accounts
            .get(&from.pn)
            .map(|a| a.push_name.clone())
            .unwrap_or_default();
        let mut fanned = Vec::new();
        for (addr, encs) in targets {
            fanned.push(self.jid_of(&addr, lid));
            let mut out = self.base_delivery(node, id);
            out.set_attr("from", group_jid.clone());
            out.set_attr("participant", sender.clone());
            if !push_name.is_empty() {
                out.set_attr("notify", push_name.clone());
            }
            if lid {
                out.set_attr("addressing_mode", "lid");
                out.set_attr("participant_pn", self.user_jid(&from.pn, false));
            } else {
                out.set_attr("addressing_mode", "pn");
                out.set_attr("participant_lid", self.user_jid(&from.pn, true));
            }
            let out = Self::finish_delivery(out, encs, node);
            self.enqueue(&addr, out);
        }
        let phash = node.attr_str("phash").and_then(|theirs| {
            let ours = participant_hash(&fanned);
            (ours != theirs).then_some(ours)
        });
        Ok(phash)
    }

    // ---------------------------------------------------------------------------------------
    // Receipts and acks.

    /// A `receipt` from a device: acknowledges queued messages and is relayed to their sender.
    pub(crate) fn on_receipt(&mut self, from: &DevAddr, node: Node) {
        let Some(id) = attr_string(&node, "id") else {
            return;
        };
        let mut ids = vec![id.clone()];
        if let Some(list) = node.child_by_tag("list") {
            ids.extend(
                list.children_by_tag("item")
                    .filter_map(|i| attr_string(i, "id")),
            );
        }
        for one in &ids {
            self.ack_queued(from, "message", one);
        }
        let Some(to) = attr_jid(&node, "to") else {
            return;
        };
        let kind = node.attr_str("type").map(str::to_owned);
        // Server-side confirmation that the receipt was taken.
        let mut ack = Node::new("ack")
            .attr("class", "receipt")
            .attr("id", id.clone())
            .attr("from", to.clone());
        if let Some(kind) = &kind {
            ack.set_attr("type", kind.clone());
        }
        if from.dev != 0 || !self.phones.contains_key(&from.pn) {
            self.send_now(from, ack);
        }
        let relayed_type = match kind.as_deref() {
            None | Some("inactive") => None,
            Some("hist_sync" | "peer_msg" | "server-error") => return,
            Some(other) => Some(other.to_owned()),
        };
        let lid = match (to.is_group(), attr_jid(&node, "participant")) {
            (true, Some(p)) => *p.server() == Server::Lid,
            _ => *to.server() == Server::Lid,
        };
        let mut relayed = Node::new("receipt")
            .attr("id", id.clone())
            .attr("t", now_secs());
        if let Some(t) = relayed_type {
            relayed.set_attr("type", t);
        }
        let targets: Vec<DevAddr> = if to.is_group() {
            let Some(sender) = attr_jid(&node, "participant") else {
                return;
            };
            relayed.set_attr("from", to.to_non_ad());
            relayed.set_attr("participant", self.jid_of(from, lid));
            self.devices_named(&sender)
        } else {
            relayed.set_attr("from", self.jid_of(from, lid));
            if let Some(recipient) = attr_jid(&node, "recipient") {
                relayed.set_attr("recipient", recipient);
            }
            self.devices_named(&to)
        };
        let extra: Vec<Node> = node
            .child_nodes()
            .iter()
            .filter(|c| matches!(&*c.tag, "list" | "retry" | "registration" | "keys"))
            .cloned()
            .collect();
        if !extra.is_empty() {
            relayed.content = binary::Content::Nodes(extra);
        }
        self.stats.receipts_relayed += 1;
        for target in targets {
            if target == *from {
                continue;
            }
            self.enqueue(&target, relayed.clone());
        }
    }

    /// The devices a JID names: one device for a device JID, every device for a user JID.
    pub(crate) fn devices_named(&self, jid: &Jid) -> Vec<DevAddr> {
        let Some(pn) = self.resolve_user(jid) else {
            return Vec::new();
        };
        if jid.is_ad() || jid.device() != 0 {
            return self.resolve_device(jid).into_iter().collect();
        }
        self.accounts
            .get(&pn)
            .map(|a| {
                a.device_ids()
                    .into_iter()
                    .map(|d| DevAddr::new(&pn, d))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An `ack` from a device: the stanza it names is no longer pending.
    pub(crate) fn on_client_ack(&mut self, from: &DevAddr, node: &Node) {
        let (Some(class), Some(id)) = (node.attr_str("class"), attr_string(node, "id")) else {
            return;
        };
        self.ack_queued(from, class, &id);
    }

    // ---------------------------------------------------------------------------------------
    // Presence and chat state.

    /// `presence` from a device: availability broadcast, or a subscription.
    pub(crate) fn on_presence(&mut self, from: &DevAddr, node: &Node) {
        match node.attr_str("type") {
            Some("subscribe") => {
                let Some(to) = attr_jid(node, "to") else {
                    return;
                };
                let Some(target) = self.resolve_user(&to) else {
                    return;
                };
                let lid = *to.server() == Server::Lid;
                self.presence_subs
                    .entry(target.clone())
                    .or_default()
                    .insert((from.clone(), lid));
                let update = self.presence_update(&target, lid);
                self.send_now(from, update);
            }
            Some("unsubscribe") => {
                let Some(to) = attr_jid(node, "to") else {
                    return;
                };
                let Some(target) = self.resolve_user(&to) else {
                    return;
                };
                if let Some(subs) = self.presence_subs.get_mut(&target) {
                    subs.retain(|(d, _)| d != from);
                }
            }
            kind => {
                let available = kind != Some("unavailable");
                if let Some(account) = self.accounts.get_mut(&from.pn) {
                    if let Some(name) = node.attr_str("name").filter(|n| !n.is_empty()) {
                        account.push_name = name.to_owned();
                    }
                    account.available = available;
                    account.last_seen = now_secs();
                }
                self.broadcast_presence(&from.pn.clone());
            }
        }
    }

    fn presence_update(&self, target: &str, lid: bool) -> Node {
        let mut node = Node::new("presence").attr("from", self.user_jid(target, lid));
        match self.accounts.get(target) {
            Some(a) if a.available => {}
            Some(a) => {
                node.set_attr("type", "unavailable");
                if a.last_seen > 0 {
                    node.set_attr("last", a.last_seen);
                }
            }
            None => node.set_attr("type", "unavailable"),
        }
        node
    }

    pub(crate) fn broadcast_presence(&mut self, pn: &str) {
        let Some(subs) = self.presence_subs.get(pn) else {
            return;
        };
        for (device, lid) in subs.clone() {
            let update = self.presence_update(pn, lid);
            self.send_now(&device, update);
        }
    }

    /// `chatstate` from a device: relayed to the peer's (or group members') online devices.
    pub(crate) fn on_chatstate(&mut self, from: &DevAddr, node: &Node) {
        let Some(to) = attr_jid(node, "to") else {
            return;
        };
        let children: Vec<Node> = node.child_nodes().to_vec();
        if to.is_group() {
            let Some(group) = self.groups.get(to.user()) else {
                return;
            };
            if group.participant(&from.pn).is_none() {
                return;
            }
            let lid = group.lid_addressing();
            let members: Vec<String> = group.participants.iter().map(|p| p.pn.clone()).collect();
            let out = Node::new("chatstate")
                .attr("from", to.to_non_ad())
                .attr("participant", self.user_jid(&from.pn, lid))
                .children(children);
            for pn in members.iter().filter(|pn| **pn != from.pn) {
                for addr in self.devices_named(&self.user_jid(pn, false)) {
                    self.send_now(&addr, out.clone());
                }
            }
        } else {
            let Some(target) = self.resolve_user(&to) else {
                return;
            };
            let lid = *to.server() == Server::Lid;
            let out = Node::new("chatstate")
                .attr("from", self.user_jid(&from.pn, lid))
                .children(children);
            for addr in self.devices_named(&self.user_jid(&target, false)) {
                self.send_now(&addr, out.clone());
            }
        }
    }
}

/// Reverses the order of the last `count` held entries and releases them.
fn reverse_held(queue: &mut Queue, count: usize) {
    let positions: Vec<usize> = queue
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.held)
        .map(|(i, _)| i)
        .collect();
    let take = positions.len().min(count);
    let chosen = &positions[positions.len() - take..];
    let mut nodes: Vec<Queued> = chosen.iter().map(|&i| queue.entries[i].clone()).collect();
    nodes.reverse();
    for (slot, mut entry) in chosen.iter().zip(nodes) {
        entry.held = false;
        queue.entries[*slot] = entry;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phash_is_order_independent() {
        let a: Jid = "1:2@s.whatsapp.net".parse().unwrap();
        let b: Jid = "3@s.whatsapp.net".parse().unwrap();
        assert_eq!(
            participant_hash(&[a.clone(), b.clone()]),
            participant_hash(&[b, a])
        );
        assert!(participant_hash(&[]).starts_with("2:"));
    }

    fn entry(id: &str) -> Queued {
        Queued {
            class: "message".into(),
            id: id.into(),
            node: Node::new("message").attr("id", id.to_owned()),
            sent_on: None,
            deliver_at_ms: 0,
            held: true,
        }
    }

    #[test]
    fn held_entries_are_released_reversed() {
        let mut q = Queue::default();
        for id in ["a", "b", "c"] {
            q.entries.push_back(entry(id));
        }
        reverse_held(&mut q, 3);
        assert_eq!(q.ids("message"), ["c", "b", "a"]);
        assert!(q.entries.iter().all(|e| !e.held));
        assert!(q.ack("message", "b"));
        assert!(!q.ack("message", "b"));
        assert_eq!(q.ids("message"), ["c", "a"]);
    }
}
