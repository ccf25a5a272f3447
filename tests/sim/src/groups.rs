//! Groups: the `w:g2` IQs and the `w:gp2` notifications every member device receives.
//!
//! Contract (`protocol-whatsmeow.md` §2.17): create, info (`query`), `participating`,
//! add/remove/promote/demote with per-participant results, subject, description,
//! announcement/not_announcement, locked/unlocked, ephemeral, invite code get/revoke, join by
//! link (`invite code` to `@g.us`), link preview, leave. Groups are LID-addressed
//! (`addressing_mode="lid"`, participants as `<lid>@lid` with `phone_number`), as WhatsApp
//! groups are after the LID migration. Every change is announced with
//! `<notification type="w:gp2" from=<group> participant=<actor> participant_pn t>` to every
//! member device except the one that made it (and to removed members), queued like messages
//! until acknowledged. Admin-only operations by non-admins get `403 forbidden`; operations on
//! groups one is not in get `403` too; unknown groups `404`; bad invite codes `406`; revoked
//! codes `410`.

use rand::RngExt as _;
use serde::{Deserialize, Serialize};
use wasmeow_protocol::binary::Node;

use crate::iq::{IqError, IqResult};
use crate::state::{DevAddr, World};
use crate::util::{attr_jid, attr_string, content_bytes, group_jid, now_secs};

/// A participant's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Role {
    Member,
    Admin,
    SuperAdmin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Participant {
    pub pn: String,
    pub role: Role,
}

impl Participant {
    pub(crate) fn is_admin(&self) -> bool {
        self.role != Role::Member
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Description {
    pub id: String,
    pub text: String,
    pub owner: String,
    pub t: u64,
}

/// A group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Group {
    /// The user part of `<id>@g.us`.
    pub id: String,
    pub subject: String,
    pub subject_owner: String,
    pub subject_time: u64,
    pub creator: String,
    pub creation: u64,
    pub description: Option<Description>,
    pub announce: bool,
    pub locked: bool,
    pub ephemeral: u32,
    pub all_member_add: bool,
    pub invite_code: String,
    pub participants: Vec<Participant>,
}

impl Group {
    pub(crate) fn participant(&self, pn: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.pn == pn)
    }

    /// Groups are LID-addressed.
    pub(crate) fn lid_addressing(&self) -> bool {
        true
    }
}

impl World {
    /// After someone leaves, every member phone starts a fresh sender key, so the one who left
    /// cannot read later messages (what WhatsApp clients do).
    fn rotate_phone_sender_keys(&mut self, gid: &str) {
        let members: Vec<String> = self
            .groups
            .get(gid)
            .map(|g| g.participants.iter().map(|p| p.pn.clone()).collect())
            .unwrap_or_default();
        for pn in members {
            self.phone_reset_sender_key(&pn, gid);
        }
    }

    fn new_invite_code(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..22)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }

    /// The `<group>` node describing `group` (info, create, participating, notifications).
    pub(crate) fn group_node(&self, group: &Group) -> Node {
        let lid = group.lid_addressing();
        let mut node = Node::new("group")
            .attr("id", group.id.clone())
            .attr("creator", self.user_jid(&group.creator, lid))
            .attr("creator_pn", self.user_jid(&group.creator, false))
            .attr("creation", group.creation)
            .attr("subject", group.subject.clone())
            .attr("s_t", group.subject_time)
            .attr("s_o", self.user_jid(&group.subject_owner, lid))
            .attr("size", group.participants.len())
            .attr("addressing_mode", if lid { "lid" } else { "pn" });
        for p in &group.participants {
            let mut child = Node::new("participant")
                .attr("jid", self.user_jid(&p.pn, lid))
                .attr("phone_number", self.user_jid(&p.pn, false));
            match p.role {
                Role::Member => {}
                Role::Admin => child.set_attr("type", "admin"),
                Role::SuperAdmin => child.set_attr("type", "superadmin"),
            }
            node.push_child(child);
        }
        if let Some(d) = &group.description {
            node.push_child(
                Node::new("description")
                    .attr("id", d.id.clone())
                    .attr("participant", self.user_jid(&d.owner, lid))
                    .attr("t", d.t)
                    .children([Node::new("body").bytes(d.text.as_bytes().to_vec())]),
            );
        }
        if group.announce {
            node.push_child(Node::new("announcement"));
        }
        if group.locked {
            node.push_child(Node::new("locked"));
        }
        if group.ephemeral > 0 {
            node.push_child(Node::new("ephemeral").attr("expiration", group.ephemeral));
        }
        node.push_child(Node::new("member_add_mode").text(if group.all_member_add {
            "all_member_add"
        } else {
            "admin_add"
        }));
        node
    }

    /// Creates a group (used by the IQ and by simulated phones). Unknown users are skipped.
    pub(crate) fn create_group(
        &mut self,
        creator: &str,
        subject: &str,
        members: &[String],
    ) -> String {
        let id = format!(
            "120363{:012}",
            self.rng.random_range(0..1_000_000_000_000u64)
        );
        let now = now_secs();
        let mut participants = vec![Participant {
            pn: creator.to_owned(),
            role: Role::SuperAdmin,
        }];
        for pn in members {
            if self.accounts.contains_key(pn) && participants.iter().all(|p| p.pn != *pn) {
                participants.push(Participant {
                    pn: pn.clone(),
                    role: Role::Member,
                });
            }
        }
        let invite_code = self.new_invite_code();
        let group = Group {
            id: id.clone(),
            subject: subject.to_owned(),
            subject_owner: creator.to_owned(),
            subject_time: now,
            creator: creator.to_owned(),
            creation: now,
            description: None,
            announce: false,
            locked: false,
            ephemeral: 0,
            all_member_add: false,
            invite_code: invite_code.clone(),
            participants,
        };
        self.invites.insert(invite_code, id.clone());
        self.groups.insert(id.clone(), group);
        self.dirty = true;
        id
    }

    /// Sends a `w:gp2` notification about `group_id` made by `actor` to every member device
    /// except `skip`, plus `extra` users (e.g. removed members).
    pub(crate) fn notify_group(
        &mut self,
        group_id: &str,
        actor: &str,
        skip: Option<&DevAddr>,
        child: Node,
        extra: &[String],
    ) {
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        let lid = group.lid_addressing();
        let mut users: Vec<String> = group.participants.iter().map(|p| p.pn.clone()).collect();
        for e in extra {
            if !users.contains(e) {
                users.push(e.clone());
            }
        }
        let notify = self
            .accounts
            .get(actor)
            .map(|a| a.push_name.clone())
            .unwrap_or_default();
        for pn in users {
            let Some(account) = self.accounts.get(&pn) else {
                continue;
            };
            for dev in account.device_ids() {
                let addr = DevAddr::new(&pn, dev);
                if Some(&addr) == skip {
                    continue;
                }
                let id = self.stanza_id();
                let mut node = Node::new("notification")
                    .attr("from", group_jid(group_id))
                    .attr("type", "w:gp2")
                    .attr("id", id)
                    .attr("participant", self.user_jid(actor, lid))
                    .attr("participant_pn", self.user_jid(actor, false))
                    .attr("t", now_secs());
                if !notify.is_empty() {
                    node.set_attr("notify", notify.clone());
                }
                let node = node.children([child.clone()]);
                self.enqueue(&addr, node);
            }
        }
    }

    fn participant_node(&self, pn: &str, lid: bool) -> Node {
        Node::new("participant")
            .attr("jid", self.user_jid(pn, lid))
            .attr("phone_number", self.user_jid(pn, false))
    }

    /// One `w:g2` IQ.
    pub(crate) fn iq_groups(&mut self, from: &DevAddr, node: &Node, kind: &str) -> IqResult {
        let to = attr_jid(node, "to").ok_or(IqError::BAD_REQUEST)?;
        let op = node
            .child_nodes()
            .first()
            .ok_or(IqError::BAD_REQUEST)?
            .clone();
        if to.user().is_empty() {
            return self.iq_groups_server(from, &op, kind);
        }
        let gid = to.user().to_owned();
        let group = self.groups.get(&gid).ok_or(IqError::NOT_FOUND)?;
        let me = group.participant(&from.pn).cloned();
        let lid = group.lid_addressing();
        let require_member = || me.clone().ok_or(IqError::FORBIDDEN);
        let require_admin = || match &me {
            Some(p) if p.is_admin() => Ok(()),
            _ => Err(IqError::FORBIDDEN),
        };
        match (&*op.tag, kind) {
            ("query", "get") => {
                require_member()?;
                Ok(vec![self.group_node(group)])
            }
            ("invite", "get") => {
                require_admin()?;
                Ok(vec![
                    Node::new("invite").attr("code", group.invite_code.clone()),
                ])
            }
            ("invite", "set") => {
                require_admin()?;
                let code = self.new_invite_code();
                let group = self.groups.get_mut(&gid).ok_or(IqError::NOT_FOUND)?;
                let old = std::mem::replace(&mut group.invite_code, code.clone());
                self.invites.remove(&old);
                self.revoked_invites.insert(old);
                self.invites.insert(code.clone(), gid.clone());
                self.dirty = true;
                Ok(vec![Node::new("invite").attr("code", code)])
            }
            ("add" | "remove" | "promote" | "demote", "set") => {
                let is_add = op.tag == "add";
                if !(is_add && group.all_member_add) {
                    require_admin()?;
                }
                let mut results = Vec::new();
                let mut changed = Vec::new();
                for p in op.children_by_tag("participant") {
                    let Some(jid) = attr_jid(p, "jid") else {
                        continue;
                    };
                    let target = self.resolve_user(&jid);
                    let group = self.groups.get_mut(&gid).ok_or(IqError::NOT_FOUND)?;
                    let code = match (&*op.tag, target) {
                        (_, None) => Some("404"),
                        ("add", Some(pn)) => {
                            if group.participant(&pn).is_some() {
                                Some("409")
                            } else {
                                group.participants.push(Participant {
                                    pn: pn.clone(),
                                    role: Role::Member,
                                });
                                changed.push(pn);
                                None
                            }
                        }
                        ("remove", Some(pn)) => {
                            if group
                                .participant(&pn)
                                .is_some_and(|p| p.role == Role::SuperAdmin)
                                && pn != from.pn
                            {
                                Some("406")
                            } else if let Some(i) =
                                group.participants.iter().position(|x| x.pn == pn)
                            {
                                group.participants.remove(i);
                                changed.push(pn);
                                None
                            } else {
                                Some("404")
                            }
                        }
                        (op_tag, Some(pn)) => {
                            match group.participants.iter_mut().find(|x| x.pn == pn) {
                                Some(x) => {
                                    if x.role != Role::SuperAdmin {
                                        x.role = if op_tag == "promote" {
                                            Role::Admin
                                        } else {
                                            Role::Member
                                        };
                                    }
                                    changed.push(pn);
                                    None
                                }
                                None => Some("404"),
                            }
                        }
                    };
                    let mut result = Node::new("participant").attr("jid", jid);
                    if let Some(code) = code {
                        result.set_attr("error", code);
                    }
                    results.push(result);
                }
                if !changed.is_empty() {
                    self.dirty = true;
                    let mut child = Node::new(op.tag.clone());
                    for pn in &changed {
                        child.push_child(self.participant_node(pn, lid));
                    }
                    let extra: Vec<String> = if op.tag == "remove" {
                        changed.clone()
                    } else {
                        Vec::new()
                    };
                    if op.tag == "remove" {
                        self.rotate_phone_sender_keys(&gid);
                    }
                    self.notify_group(&gid, &from.pn, Some(from), child, &extra);
                }
                Ok(vec![Node::new(op.tag.clone()).children(results)])
            }
            ("subject", "set") => {
                require_member()?;
                if group.locked {
                    require_admin()?;
                }
                let subject = content_bytes(&op)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .ok_or(IqError::BAD_REQUEST)?;
                let now = now_secs();
                let group = self.groups.get_mut(&gid).ok_or(IqError::NOT_FOUND)?;
                group.subject = subject.clone();
                group.subject_owner = from.pn.clone();
                group.subject_time = now;
                self.dirty = true;
                let child = Node::new("subject")
                    .attr("subject", subject)
                    .attr("s_t", now)
                    .attr("s_o", self.user_jid(&from.pn, lid));
                self.notify_group(&gid, &from.pn, Some(from), child, &[]);
                Ok(Vec::new())
            }
            ("description", "set") => {
                require_member()?;
                if group.locked {
                    require_admin()?;
                }
                let current = group.description.as_ref().map(|d| d.id.clone());
                if let Some(prev) = op.attr_str("prev")
                    && current.as_deref() != Some(prev)
                {
                    return Err(IqError::CONFLICT);
                }
                let delete = op.attr_str("delete") == Some("true");
                let id = attr_string(&op, "id").unwrap_or_else(|| self.stanza_id());
                let text = op
                    .child_by_tag("body")
                    .and_then(content_bytes)
                    .map(|b| String::from_utf8_lossy(b).into_owned());
                let group = self.groups.get_mut(&gid).ok_or(IqError::NOT_FOUND)?;
                let mut child = Node::new("description").attr("id", id.clone());
                if delete || text.is_none() {
                    group.description = None;
                    child.push_child(Node::new("delete"));
                } else {
                    let text = text.unwrap_or_default();
                    group.description = Some(Description {
                        id,
                        text: text.clone(),
                        owner: from.pn.clone(),
                        t: now_secs(),
                    });
                    child.push_child(Node::new("body").bytes(text.into_bytes()));
                }
                self.dirty = true;
                self.notify_group(&gid, &from.pn, Some(from), child, &[]);
                Ok(Vec::new())
            }
            ("announcement" | "not_announcement" | "locked" | "unlocked", "set") => {
                require_admin()?;
                let group = self.groups.get_mut(&gid).ok_or(IqError::NOT_FOUND)?;
                match &*op.tag {
                    "announcement" => group.announce = true,
                    "not_announcement" => group.announce = false,
                    "locked" => group.locked = true,
                    _ => group.locked = false,
                }
                self.dirty = true;
                self.notify_group(&gid, &from.pn, Some(from), Node::new(op.tag.clone()), &[]);
                Ok(Vec::new())
            }
            ("ephemeral" | "not_ephemeral", "set") => {
                require_member()?;
                if group.locked {
                    require_admin()?;
                }
                let expiration: u32 = op
                    .attr_str("expiration")
                    .and_then(|e| e.parse().ok())
                    .unwrap_or(0);
                let group = self.groups.get_mut(&gid).ok_or(IqError::NOT_FOUND)?;
                group.ephemeral = if op.tag == "ephemeral" { expiration } else { 0 };
                self.dirty = true;
                self.notify_group(&gid, &from.pn, Some(from), op.clone(), &[]);
                Ok(Vec::new())
            }
            ("member_add_mode", "set") => {
                require_admin()?;
                let mode = content_bytes(&op)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                let group = self.groups.get_mut(&gid).ok_or(IqError::NOT_FOUND)?;
                group.all_member_add = mode == "all_member_add";
                self.dirty = true;
                Ok(Vec::new())
            }
            ("membership_approval_mode", "set") => {
                require_admin()?;
                Ok(Vec::new())
            }
            _ => Err(IqError::BAD_REQUEST),
        }
    }

    /// `w:g2` IQs addressed to `@g.us`.
    fn iq_groups_server(&mut self, from: &DevAddr, op: &Node, kind: &str) -> IqResult {
        match (&*op.tag, kind) {
            ("create", "set") => {
                let subject = attr_string(op, "subject").unwrap_or_default();
                let members: Vec<String> = op
                    .children_by_tag("participant")
                    .filter_map(|p| attr_jid(p, "jid"))
                    .filter_map(|j| self.resolve_user(&j))
                    .collect();
                let gid = self.create_group(&from.pn, &subject, &members);
                let group = self.groups.get(&gid).cloned().ok_or(IqError::NOT_FOUND)?;
                let node = self.group_node(&group);
                self.notify_group(
                    &gid,
                    &from.pn,
                    Some(from),
                    Node::new("create").children([node.clone()]),
                    &[],
                );
                Ok(vec![node])
            }
            ("leave", "set") => {
                let mut left = Vec::new();
                for g in op.children_by_tag("group") {
                    let Some(gid) = attr_jid(g, "id")
                        .map(|j| j.user().to_owned())
                        .or_else(|| attr_string(g, "id"))
                    else {
                        continue;
                    };
                    let Some(group) = self.groups.get_mut(&gid) else {
                        continue;
                    };
                    let Some(i) = group.participants.iter().position(|p| p.pn == from.pn) else {
                        continue;
                    };
                    group.participants.remove(i);
                    let lid = group.lid_addressing();
                    self.dirty = true;
                    self.rotate_phone_sender_keys(&gid);
                    let child =
                        Node::new("remove").children([self.participant_node(&from.pn, lid)]);
                    self.notify_group(
                        &gid,
                        &from.pn,
                        Some(from),
                        child,
                        std::slice::from_ref(&from.pn),
                    );
                    left.push(Node::new("group").attr("id", group_jid(&gid)));
                }
                Ok(vec![Node::new("leave").children(left)])
            }
            ("participating", "get") => {
                let groups: Vec<Node> = self
                    .groups
                    .values()
                    .filter(|g| g.participant(&from.pn).is_some())
                    .map(|g| self.group_node(g))
                    .collect();
                Ok(vec![Node::new("groups").children(groups)])
            }
            ("invite", _) => {
                let code = attr_string(op, "code").ok_or(IqError::BAD_REQUEST)?;
                let gid = match self.invites.get(&code) {
                    Some(gid) => gid.clone(),
                    None if self.revoked_invites.contains(&code) => return Err(IqError::GONE),
                    None => return Err(IqError::NOT_ACCEPTABLE),
                };
                let group = self.groups.get(&gid).cloned().ok_or(IqError::GONE)?;
                if kind == "get" {
                    return Ok(vec![self.group_node(&group)]);
                }
                if group.participant(&from.pn).is_none() {
                    let lid = group.lid_addressing();
                    if let Some(g) = self.groups.get_mut(&gid) {
                        g.participants.push(Participant {
                            pn: from.pn.clone(),
                            role: Role::Member,
                        });
                    }
                    self.dirty = true;
                    let child = Node::new("add")
                        .attr("reason", "invite")
                        .children([self.participant_node(&from.pn, lid)]);
                    self.notify_group(&gid, &from.pn, Some(from), child, &[]);
                }
                Ok(vec![Node::new("group").attr("jid", group_jid(&gid))])
            }
            _ => Err(IqError::BAD_REQUEST),
        }
    }
}
