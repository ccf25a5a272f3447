//! Answers to the IQs a logged-in device sends: prekeys (`encrypt`), `usync`, `passive`,
//! `w:p` pings, `abt`/`w` props, `blocklist`, `privacy`, `md` logout, and the namespaces a
//! client only needs acknowledged. Groups (`w:g2`) and media (`w:m`) live in their own modules.
//!
//! Contract: every IQ with `type="get"` or `type="set"` gets exactly one answer with the same
//! `id`: `<iq type="result" from=<request's to>>…</iq>` or `<iq type="error"><error code
//! text/></iq>`. Unknown namespaces get `501 feature-not-implemented`, as the real server
//! answers stanzas it does not support, so clients never wait for a timeout.

use sha2::{Digest as _, Sha256};
use wasmeow_protocol::binary::{Jid, Node, Server};

use crate::accounts::SignedPreKeyPub;
use crate::state::{DevAddr, World};
use crate::util::{
    attr_jid, attr_string, be_bytes, be_uint, child_bytes, content_bytes, server_jid,
};

/// Below this many one-time prekeys the server asks a device to upload more
/// (`MinPreKeyCount` in whatsmeow).
pub(crate) const MIN_PREKEYS: usize = 5;

/// An IQ error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IqError {
    pub code: u16,
    pub text: &'static str,
}

impl IqError {
    pub(crate) const BAD_REQUEST: Self = Self {
        code: 400,
        text: "bad-request",
    };
    pub(crate) const NOT_AUTHORIZED: Self = Self {
        code: 401,
        text: "not-authorized",
    };
    pub(crate) const FORBIDDEN: Self = Self {
        code: 403,
        text: "forbidden",
    };
    pub(crate) const NOT_FOUND: Self = Self {
        code: 404,
        text: "item-not-found",
    };
    pub(crate) const NOT_ACCEPTABLE: Self = Self {
        code: 406,
        text: "not-acceptable",
    };
    pub(crate) const GONE: Self = Self {
        code: 410,
        text: "gone",
    };
    pub(crate) const CONFLICT: Self = Self {
        code: 409,
        text: "conflict",
    };
    pub(crate) const NOT_IMPLEMENTED: Self = Self {
        code: 501,
        text: "feature-not-implemented",
    };
}

pub(crate) type IqResult = Result<Vec<Node>, IqError>;

/// The AB props this server announces (codes and names Baileys reads).
const PROPS: [(&str, &str); 3] = [("10518", "false"), ("9666", "false"), ("14303", "false")];

impl World {
    /// Answers one IQ from a logged-in device.
    pub(crate) fn on_iq(&mut self, from: &DevAddr, node: &Node) {
        let kind = node.attr_str("type").unwrap_or("");
        if kind != "get" && kind != "set" {
            return; // results/errors for server-initiated IQs
        }
        let Some(id) = attr_string(node, "id") else {
            return;
        };
        let xmlns = node.attr_str("xmlns").unwrap_or("");
        let result = match xmlns {
            "w:p" => Ok(Vec::new()),
            "encrypt" => self.iq_encrypt(from, node, kind),
            "passive" => Ok(Vec::new()),
            "usync" => self.iq_usync(from, node),
            "abt" => Ok(vec![props_node()]),
            "w" => Ok(vec![props_node()]),
            "blocklist" => self.iq_blocklist(from, node, kind),
            "privacy" => self.iq_privacy(from, node, kind),
            "w:g2" => self.iq_groups(from, node, kind),
            "w:m" => self.iq_media_conn(),
            "md" => self.iq_md(from, node),
            "w:profile:picture" => Err(IqError::NOT_FOUND),
            "w:sync:app:state" => Ok(app_state_empty(node)),
            "status"
            | "disappearing_mode"
            | "urn:xmpp:whatsapp:dirty"
            | "w:stats"
            | "bot"
            | "urn:xmpp:whatsapp:push"
            | "w:biz"
            | "tos" => Ok(Vec::new()),
            _ => Err(IqError::NOT_IMPLEMENTED),
        };
        let reply_from = attr_jid(node, "to").unwrap_or_else(server_jid);
        let reply = match result {
            Ok(children) => {
                let mut iq = Node::new("iq")
                    .attr("from", reply_from)
                    .attr("type", "result")
                    .attr("id", id);
                if !children.is_empty() {
                    iq = iq.children(children);
                }
                iq
            }
            Err(e) => Node::new("iq")
                .attr("from", reply_from)
                .attr("type", "error")
                .attr("id", id)
                .children([Node::new("error").attr("code", e.code).attr("text", e.text)]),
        };
        self.send_now(from, reply);
    }

    fn iq_encrypt(&mut self, from: &DevAddr, node: &Node, kind: &str) -> IqResult {
        if let Some(key) = node.child_by_tag("key") {
            return self.iq_fetch_bundles(key);
        }
        let device = self
            .accounts
            .get_mut(&from.pn)
            .and_then(|a| a.devices.get_mut(&from.dev))
            .ok_or(IqError::NOT_AUTHORIZED)?;
        if node.child_by_tag("count").is_some() {
            return Ok(vec![Node::new("count").attr("value", device.prekeys.len())]);
        }
        if node.child_by_tag("digest").is_some() {
            let mut hash = Sha256::new();
            hash.update(device.identity_pub);
            let mut children = vec![
                Node::new("type").bytes(vec![5]),
                Node::new("identity").bytes(device.identity_pub.to_vec()),
            ];
            if let Some(skey) = &device.signed_prekey {
                hash.update(skey.public);
                hash.update(&skey.signature);
                children.push(
                    Node::new("skey")
                        .children([Node::new("id").bytes(be_bytes(u64::from(skey.id), 3))]),
                );
            }
            let ids: Vec<Node> = device
                .prekeys
                .iter()
                .map(|(id, key)| {
                    hash.update(key);
                    Node::new("id").bytes(be_bytes(u64::from(*id), 3))
                })
                .collect();
            children.push(Node::new("list").children(ids));
            children.push(Node::new("hash").bytes(hash.finalize()[..20].to_vec()));
            return Ok(vec![Node::new("digest").children(children)]);
        }
        if let Some(rotate) = node.child_by_tag("rotate") {
            let skey = rotate.child_by_tag("skey").ok_or(IqError::BAD_REQUEST)?;
            device.signed_prekey = Some(parse_skey(skey)?);
            self.dirty = true;
            return Ok(Vec::new());
        }
        if kind == "set" {
            // Prekey upload.
            if let Some(identity) = child_bytes(node, "identity") {
                let identity: [u8; 32] = identity.try_into().map_err(|_| IqError::BAD_REQUEST)?;
                device.identity_pub = identity;
            }
            if let Some(reg) = child_bytes(node, "registration") {
                device.registration_id = be_uint(reg).ok_or(IqError::BAD_REQUEST)? as u32;
            }
            if let Some(list) = node.child_by_tag("list") {
                for key in list.children_by_tag("key") {
                    let id = child_bytes(key, "id")
                        .and_then(be_uint)
                        .ok_or(IqError::BAD_REQUEST)? as u32;
                    let value: [u8; 32] = child_bytes(key, "value")
                        .and_then(|v| v.try_into().ok())
                        .ok_or(IqError::BAD_REQUEST)?;
                    device.prekeys.insert(id, value);
                }
            }
            if let Some(skey) = node.child_by_tag("skey") {
                device.signed_prekey = Some(parse_skey(skey)?);
            }
            self.dirty = true;
            return Ok(Vec::new());
        }
        Err(IqError::BAD_REQUEST)
    }

    /// `<key><user jid/>…</key>`: one bundle per device, consuming one-time prekeys.
    fn iq_fetch_bundles(&mut self, key: &Node) -> IqResult {
        let mut users = Vec::new();
        for user in key.children_by_tag("user") {
            let Some(jid) = attr_jid(user, "jid") else {
                continue;
            };
            let addr = self.resolve_device(&jid);
            let bundle = addr
                .as_ref()
                .and_then(|a| self.accounts.get_mut(&a.pn))
                .and_then(|acc| acc.devices.get_mut(&jid.device()))
                .and_then(|d| d.take_bundle());
            let Some(bundle) = bundle else {
                users.push(
                    Node::new("user")
                        .attr("jid", jid)
                        .children([Node::new("error")
                            .attr("code", "404")
                            .attr("text", "item-not-found")]),
                );
                continue;
            };
            self.stats.bundles_served += 1;
            self.dirty = true;
            let mut children = vec![
                Node::new("registration").bytes(be_bytes(u64::from(bundle.registration_id), 4)),
                Node::new("type").bytes(vec![5]),
                Node::new("identity").bytes(bundle.identity.to_vec()),
                Node::new("skey").children([
                    Node::new("id").bytes(be_bytes(u64::from(bundle.signed_prekey.id), 3)),
                    Node::new("value").bytes(bundle.signed_prekey.public.to_vec()),
                    Node::new("signature").bytes(bundle.signed_prekey.signature.clone()),
                ]),
            ];
            if let Some((id, public)) = bundle.prekey {
                children.push(Node::new("key").children([
                    Node::new("id").bytes(be_bytes(u64::from(id), 3)),
                    Node::new("value").bytes(public.to_vec()),
                ]));
            }
            users.push(Node::new("user").attr("jid", jid).children(children));
            // Tell the device when its stock runs low, as the real server does.
            if let Some(addr) = addr {
                let left = self
                    .accounts
                    .get(&addr.pn)
                    .and_then(|a| a.devices.get(&addr.dev))
                    .map_or(0, |d| d.prekeys.len());
                if left == MIN_PREKEYS - 1 && addr.dev != 0 {
                    self.prekey_low_notification(&addr, left);
                }
                if addr.dev == 0 {
                    self.phone_refill_prekeys(&addr.pn);
                }
            }
        }
        Ok(vec![Node::new("list").children(users)])
    }

    fn iq_usync(&mut self, from: &DevAddr, node: &Node) -> IqResult {
        let usync = node.child_by_tag("usync").ok_or(IqError::BAD_REQUEST)?;
        let query = usync.child_by_tag("query").ok_or(IqError::BAD_REQUEST)?;
        let wants = |tag: &str| query.child_by_tag(tag).is_some();
        let list = usync.child_by_tag("list").ok_or(IqError::BAD_REQUEST)?;
        let mut users = Vec::new();
        for user in list.children_by_tag("user") {
            // A user is named by jid, or by phone number in <contact>+1555…</contact>.
            let jid = attr_jid(user, "jid").or_else(|| {
                let phone = user.child_by_tag("contact").and_then(content_bytes)?;
                let digits: String = String::from_utf8_lossy(phone)
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                Jid::new(digits, Server::WhatsApp).ok()
            });
            let Some(jid) = jid else { continue };
            let jid = jid.to_non_ad();
            let pn = self.resolve_user(&jid);
            let mut children = Vec::new();
            if wants("devices") {
                let devices: Vec<Node> = pn
                    .as_ref()
                    .and_then(|pn| self.accounts.get(pn))
                    .map(|a| {
                        a.devices
                            .values()
                            .map(|d| {
                                let mut n = Node::new("device").attr("id", d.id);
                                if d.id != 0 {
                                    n.set_attr("key-index", d.key_index);
                                }
                                n
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                children.push(
                    Node::new("devices").children([Node::new("device-list").children(devices)]),
                );
            }
            if wants("lid")
                && let Some(account) = pn.as_ref().and_then(|pn| self.accounts.get(pn))
            {
                children.push(Node::new("lid").attr("val", crate::util::lid_jid(&account.lid)));
            }
            if wants("contact") {
                children.push(
                    Node::new("contact").attr("type", if pn.is_some() { "in" } else { "out" }),
                );
            }
            if wants("status") && pn.is_some() {
                children.push(
                    Node::new("status")
                        .attr("t", "0")
                        .bytes(b"Hey there! I am using WhatsApp.".to_vec()),
                );
            }
            if wants("disappearing_mode") && pn.is_some() {
                children.push(
                    Node::new("disappearing_mode")
                        .attr("duration", "0")
                        .attr("t", "0"),
                );
            }
            users.push(Node::new("user").attr("jid", jid).children(children));
        }
        let _ = from;
        let mut result = Node::new("usync")
            .attr("index", "0")
            .attr("last", "true")
            .children([Node::new("list").children(users)]);
        for key in ["sid", "mode", "context"] {
            if let Some(v) = usync.attr_value(key) {
                result.set_attr(key, v.clone());
            }
        }
        Ok(vec![result])
    }

    fn iq_blocklist(&mut self, from: &DevAddr, node: &Node, kind: &str) -> IqResult {
        let account = self
            .accounts
            .get_mut(&from.pn)
            .ok_or(IqError::NOT_AUTHORIZED)?;
        if kind == "set" {
            for item in node.children_by_tag("item") {
                let jid = attr_string(item, "jid").ok_or(IqError::BAD_REQUEST)?;
                match item.attr_str("action") {
                    Some("block") => account.blocklist.insert(jid),
                    Some("unblock") => account.blocklist.remove(&jid),
                    _ => return Err(IqError::BAD_REQUEST),
                };
            }
            self.dirty = true;
        }
        let account = self.accounts.get(&from.pn).ok_or(IqError::NOT_AUTHORIZED)?;
        let items: Vec<Node> = account
            .blocklist
            .iter()
            .map(|j| Node::new("item").attr("jid", j.clone()))
            .collect();
        let dhash = hex::encode(
            &Sha256::digest(
                account
                    .blocklist
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .concat(),
            )[..8],
        );
        Ok(vec![Node::new("list").attr("dhash", dhash).children(items)])
    }

    fn iq_privacy(&mut self, from: &DevAddr, node: &Node, kind: &str) -> IqResult {
        if let Some(tokens) = node.child_by_tag("tokens") {
            // Trusted-contact token issuance: acknowledged, tokens are not enforced.
            return Ok(vec![
                Node::new("tokens").children(tokens.child_nodes().to_vec()),
            ]);
        }
        let account = self
            .accounts
            .get_mut(&from.pn)
            .ok_or(IqError::NOT_AUTHORIZED)?;
        if kind == "set" {
            let privacy = node.child_by_tag("privacy").ok_or(IqError::BAD_REQUEST)?;
            for category in privacy.children_by_tag("category") {
                let (Some(name), Some(value)) = (
                    attr_string(category, "name"),
                    attr_string(category, "value"),
                ) else {
                    return Err(IqError::BAD_REQUEST);
                };
                account.privacy.insert(name, value);
            }
            self.dirty = true;
        }
        let categories: Vec<Node> = account
            .privacy
            .iter()
            .map(|(k, v)| {
                Node::new("category")
                    .attr("name", k.clone())
                    .attr("value", v.clone())
            })
            .collect();
        Ok(vec![Node::new("privacy").children(categories)])
    }

    fn iq_md(&mut self, from: &DevAddr, node: &Node) -> IqResult {
        if let Some(remove) = node.child_by_tag("remove-companion-device") {
            let jid = attr_jid(remove, "jid").ok_or(IqError::BAD_REQUEST)?;
            let target = self.resolve_device(&jid).ok_or(IqError::NOT_FOUND)?;
            if target.pn != from.pn {
                return Err(IqError::FORBIDDEN);
            }
            // Unlink after the answer is on its way: the device gets 401 device_removed.
            let target2 = target.clone();
            self.after(std::time::Duration::from_millis(50), move |w| {
                if !w.kick(&target2, crate::faults::Kick::LoggedOut) {
                    w.remove_device(&target2);
                }
            });
            return Ok(Vec::new());
        }
        Err(IqError::BAD_REQUEST)
    }
}

fn props_node() -> Node {
    Node::new("props")
        .attr("protocol", "1")
        .attr("hash", "sim1")
        .children(PROPS.iter().map(|(code, value)| {
            Node::new("prop")
                .attr("config_code", *code)
                .attr("config_value", *value)
        }))
}

/// `w:sync:app:state`: every requested collection exists, at version 0, with no patches.
fn app_state_empty(node: &Node) -> Vec<Node> {
    let Some(sync) = node.child_by_tag("sync") else {
        return Vec::new();
    };
    let collections: Vec<Node> = sync
        .children_by_tag("collection")
        .map(|c| {
            let mut out = Node::new("collection").attr("version", "0");
            if let Some(name) = c.attr_value("name") {
                out.set_attr("name", name.clone());
            }
            out
        })
        .collect();
    vec![Node::new("sync").children(collections)]
}

fn parse_skey(skey: &Node) -> Result<SignedPreKeyPub, IqError> {
    let id = child_bytes(skey, "id")
        .and_then(be_uint)
        .ok_or(IqError::BAD_REQUEST)? as u32;
    let public: [u8; 32] = child_bytes(skey, "value")
        .and_then(|v| v.try_into().ok())
        .ok_or(IqError::BAD_REQUEST)?;
    let signature = child_bytes(skey, "signature")
        .filter(|s| s.len() == 64)
        .ok_or(IqError::BAD_REQUEST)?
        .to_vec();
    Ok(SignedPreKeyPub {
        id,
        public,
        signature,
    })
}
