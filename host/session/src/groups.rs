//! Groups: the `w:g2` IQs (create, info, participants, subject, description, settings,
//! invite links, join, leave) and `w:gp2` notifications as typed events.
//!
//! Contract: every operation is one IQ (`protocol-whatsmeow.md` §2.17); responses are parsed
//! into plain types and a server error becomes [`IqError::Server`]. Notification parsing is
//! pure and yields one [`GroupEvent`] per change child.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wasmeow_protocol::binary::{Jid, Node};
use wasmeow_store::AccountStore;

use crate::events::{GroupChange, GroupEvent};
use crate::session::{Inner, IqError, Session, SessionError};
use crate::stanza::{self, jid_attr, str_attr, text_content, u64_attr};

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The member's JID.
    pub jid: String,
    /// `admin`, `superadmin`, or empty.
    pub role: String,
    /// The other identity (phone number / LID), when given.
    pub alt: Option<String>,
}

/// What `w:g2` says about a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// The group JID.
    pub jid: String,
    /// The subject.
    pub subject: String,
    /// The creator.
    pub creator: Option<String>,
    /// Creation time, unix seconds.
    pub creation: u64,
    /// The description.
    pub description: Option<String>,
    /// The description's id (needed to change it).
    pub description_id: Option<String>,
    /// Only admins may send.
    pub announce: bool,
    /// Only admins may edit the info.
    pub locked: bool,
    /// The members.
    pub participants: Vec<Participant>,
}

/// A participant change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantAction {
    /// Add members.
    Add,
    /// Remove members.
    Remove,
    /// Make admins.
    Promote,
    /// Revoke admin.
    Demote,
}

impl ParticipantAction {
    fn tag(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Promote => "promote",
            Self::Demote => "demote",
        }
    }
}

/// The per-participant result of a participant change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantResult {
    /// Who.
    pub jid: String,
    /// The error code, if the change failed for this participant (e.g. 403: must invite).
    pub error: Option<u32>,
}

/// Parses a `<group>` node.
pub fn parse_group(node: &Node) -> Option<GroupInfo> {
    let id = str_attr(node, "id")?;
    let jid = if id.contains('@') {
        id
    } else {
        format!("{id}@g.us")
    };
    let description = node.child_by_tag("description");
    Some(GroupInfo {
        jid,
        subject: str_attr(node, "subject").unwrap_or_default(),
        creator: str_attr(node, "creator"),
        creation: u64_attr(node, "creation").unwrap_or(0),
        description: description
            .and_then(|d| d.child_by_tag("body"))
            .and_then(text_content),
        description_id: description.and_then(|d| str_attr(d, "id")),
        announce: node.child_by_tag("announcement").is_some(),
        locked: node.child_by_tag("locked").is_some(),
        participants: node
            .children_by_tag("participant")
            .filter_map(|p| {
                Some(Participant {
                    jid: str_attr(p, "jid")?,
                    role: p.attr_str("type").unwrap_or_default().to_owned(),
                    alt: str_attr(p, "phone_number").or_else(|| str_attr(p, "lid")),
                })
            })
            .collect(),
    })
}

/// `<query request="interactive"/>` to the group.
pub(crate) async fn query_info<A: AccountStore>(
    inner: &Arc<Inner<A>>,
    group: &Jid,
) -> Result<GroupInfo, IqError> {
    let node = stanza::iq("w:g2", "get", group.clone())
        .child(Node::new("query").attr("request", "interactive"));
    let response = inner.request(node).await?;
    response
        .child_by_tag("group")
        .and_then(parse_group)
        .ok_or(IqError::Unexpected("group info without <group>"))
}

fn participants_node(tag: &'static str, jids: &[Jid]) -> Node {
    Node::new(tag).children(
        jids.iter()
            .map(|j| Node::new("participant").attr("jid", j.to_non_ad())),
    )
}

impl<A: AccountStore> Session<A> {
    async fn group_iq(
        &self,
        kind: &'static str,
        to: Jid,
        child: Node,
    ) -> Result<Node, SessionError> {
        let result = self
            .inner
            .request(stanza::iq("w:g2", kind, to.clone()).child(child))
            .await?;
        if to.is_group() {
            self.inner
                .shared
                .lock()
                .expect("shared state lock")
                .group_members
                .remove(&to.to_string());
        }
        Ok(result)
    }

    /// Creates a group with `subject` and `participants` (user JIDs); returns its info.
    pub async fn create_group(
        &self,
        subject: &str,
        participants: &[Jid],
    ) -> Result<GroupInfo, SessionError> {
        let key = self.inner.next_id();
        let create = Node::new("create")
            .attr("subject", subject.to_owned())
            .attr("key", key)
            .children(
                participants
                    .iter()
                    .map(|j| Node::new("participant").attr("jid", j.to_non_ad())),
            );
        let response = self.group_iq("set", stanza::group_server(), create).await?;
        response
            .child_by_tag("group")
            .and_then(parse_group)
            .ok_or(SessionError::Iq(IqError::Unexpected(
                "create without <group>",
            )))
    }

    /// The group's current info.
    pub async fn group_info(&self, group: &Jid) -> Result<GroupInfo, SessionError> {
        Ok(query_info(&self.inner, group).await?)
    }

    /// Adds, removes, promotes or demotes members; returns the per-member outcome.
    pub async fn update_participants(
        &self,
        group: &Jid,
        action: ParticipantAction,
        jids: &[Jid],
    ) -> Result<Vec<ParticipantResult>, SessionError> {
        let response = self
            .group_iq("set", group.clone(), participants_node(action.tag(), jids))
            .await?;
        if action == ParticipantAction::Remove {
            // A removed member must not read what we send next: rotate our sender key.
            crate::worker::rotate_sender_key(&self.inner, group).await;
        }
        let results = response
            .child_by_tag(action.tag())
            .map(|n| {
                n.children_by_tag("participant")
                    .filter_map(|p| {
                        Some(ParticipantResult {
                            jid: str_attr(p, "jid")?,
                            error: u64_attr(p, "error").map(|e| e as u32),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(results)
    }

    /// Changes the subject.
    pub async fn set_group_subject(&self, group: &Jid, subject: &str) -> Result<(), SessionError> {
        self.group_iq(
            "set",
            group.clone(),
            Node::new("subject").bytes(subject.as_bytes().to_vec()),
        )
        .await?;
        Ok(())
    }

    /// Changes (or with `None` deletes) the description.
    pub async fn set_group_description(
        &self,
        group: &Jid,
        description: Option<&str>,
    ) -> Result<(), SessionError> {
        let prev = self.group_info(group).await?.description_id;
        let id = self.inner.next_id();
        let mut node = Node::new("description").attr("id", id);
        if let Some(prev) = prev {
            node.set_attr("prev", prev);
        }
        node = match description {
            Some(text) => node.child(Node::new("body").bytes(text.as_bytes().to_vec())),
            None => node.attr("delete", "true"),
        };
        self.group_iq("set", group.clone(), node).await?;
        Ok(())
    }

    /// Only admins may send (`true`) or everyone (`false`).
    pub async fn set_group_announce(&self, group: &Jid, on: bool) -> Result<(), SessionError> {
        let tag = if on {
            "announcement"
        } else {
            "not_announcement"
        };
        self.group_iq("set", group.clone(), Node::new(tag)).await?;
        Ok(())
    }

    /// Only admins may edit the group info (`true`) or everyone (`false`).
    pub async fn set_group_locked(&self, group: &Jid, on: bool) -> Result<(), SessionError> {
        let tag = if on { "locked" } else { "unlocked" };
        self.group_iq("set", group.clone(), Node::new(tag)).await?;
        Ok(())
    }

    /// The invite link (`https://chat.whatsapp.com/<code>`); `reset` revokes the old one first.
    pub async fn group_invite_link(
        &self,
        group: &Jid,
        reset: bool,
    ) -> Result<String, SessionError> {
        let kind = if reset { "set" } else { "get" };
        let response = self
            .group_iq(kind, group.clone(), Node::new("invite"))
            .await?;
        let code = response
            .child_by_tag("invite")
            .and_then(|i| str_attr(i, "code"))
            .ok_or(SessionError::Iq(IqError::Unexpected("invite without code")))?;
        Ok(format!("https://chat.whatsapp.com/{code}"))
    }

    /// Joins a group by invite link or code; returns the group JID.
    pub async fn join_group_with_link(&self, link: &str) -> Result<Jid, SessionError> {
        let code = link.rsplit('/').next().unwrap_or(link).to_owned();
        let response = self
            .group_iq(
                "set",
                stanza::group_server(),
                Node::new("invite").attr("code", code),
            )
            .await?;
        response
            .child_by_tag("group")
            .and_then(|g| jid_attr(g, "jid"))
            .ok_or(SessionError::Iq(IqError::Unexpected(
                "join without group jid",
            )))
    }

    /// Leaves a group.
    pub async fn leave_group(&self, group: &Jid) -> Result<(), SessionError> {
        self.group_iq(
            "set",
            stanza::group_server(),
            Node::new("leave").child(Node::new("group").attr("id", group.clone())),
        )
        .await?;
        Ok(())
    }
}

fn participant_jids(node: &Node) -> Vec<String> {
    node.children_by_tag("participant")
        .filter_map(|p| str_attr(p, "jid"))
        .collect()
}

/// One event per change in a `<notification type="w:gp2">`.
pub fn parse_notification(node: &Node) -> Vec<GroupEvent> {
    let Some(group) = str_attr(node, "from") else {
        return Vec::new();
    };
    let actor = str_attr(node, "participant");
    let timestamp = u64_attr(node, "t").unwrap_or(0);
    node.child_nodes()
        .iter()
        .map(|c| {
            let change = match &*c.tag {
                "create" => {
                    let g = c.child_by_tag("group").and_then(parse_group);
                    GroupChange::Created {
                        subject: g.as_ref().map(|g| g.subject.clone()).unwrap_or_default(),
                        participants: g
                            .map(|g| g.participants.into_iter().map(|p| p.jid).collect())
                            .unwrap_or_default(),
                    }
                }
                "add" => GroupChange::Added {
                    participants: participant_jids(c),
                },
                "remove" => GroupChange::Removed {
                    participants: participant_jids(c),
                },
                "promote" => GroupChange::Promoted {
                    participants: participant_jids(c),
                },
                "demote" => GroupChange::Demoted {
                    participants: participant_jids(c),
                },
                "subject" => GroupChange::Subject {
                    subject: str_attr(c, "subject")
                        .or_else(|| text_content(c))
                        .unwrap_or_default(),
                },
                "description" => GroupChange::Description {
                    description: c.child_by_tag("body").and_then(text_content),
                },
                "announcement" => GroupChange::Announce { on: true },
                "not_announcement" => GroupChange::Announce { on: false },
                "locked" => GroupChange::Locked { on: true },
                "unlocked" => GroupChange::Locked { on: false },
                "invite" => GroupChange::InviteReset {
                    code: str_attr(c, "code"),
                },
                "ephemeral" => GroupChange::Ephemeral {
                    expiration: u64_attr(c, "expiration").unwrap_or(0) as u32,
                },
                "not_ephemeral" => GroupChange::Ephemeral { expiration: 0 },
                "delete" => GroupChange::Deleted,
                other => GroupChange::Other {
                    tag: other.to_owned(),
                },
            };
            GroupEvent {
                group: group.clone(),
                actor: actor.clone(),
                timestamp,
                change,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_become_typed_events() {
        let n = Node::new("notification")
            .attr("type", "w:gp2")
            .attr("from", "1203@g.us")
            .attr("participant", "111@s.whatsapp.net")
            .attr("t", "1700000000")
            .children([
                Node::new("promote")
                    .child(Node::new("participant").attr("jid", "222@s.whatsapp.net")),
                Node::new("subject").attr("subject", "New name"),
                Node::new("announcement"),
                Node::new("frobnicate"),
            ]);
        let events = parse_notification(&n);
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].group, "1203@g.us");
        assert_eq!(events[0].actor.as_deref(), Some("111@s.whatsapp.net"));
        assert_eq!(events[0].timestamp, 1_700_000_000);
        assert_eq!(
            events[0].change,
            GroupChange::Promoted {
                participants: vec!["222@s.whatsapp.net".into()]
            }
        );
        assert_eq!(
            events[1].change,
            GroupChange::Subject {
                subject: "New name".into()
            }
        );
        assert_eq!(events[2].change, GroupChange::Announce { on: true });
        assert_eq!(
            events[3].change,
            GroupChange::Other {
                tag: "frobnicate".into()
            }
        );
    }

    #[test]
    fn group_info_parses() {
        let g = Node::new("group")
            .attr("id", "1203")
            .attr("subject", "S")
            .attr("creation", "5")
            .children([
                Node::new("participant")
                    .attr("jid", "1@s.whatsapp.net")
                    .attr("type", "superadmin"),
                Node::new("participant").attr("jid", "2@s.whatsapp.net"),
                Node::new("description")
                    .attr("id", "D1")
                    .child(Node::new("body").bytes(b"desc".to_vec())),
                Node::new("locked"),
            ]);
        let info = parse_group(&g).unwrap();
        assert_eq!(info.jid, "1203@g.us");
        assert_eq!(info.participants.len(), 2);
        assert_eq!(info.participants[0].role, "superadmin");
        assert_eq!(info.description.as_deref(), Some("desc"));
        assert_eq!(info.description_id.as_deref(), Some("D1"));
        assert!(info.locked && !info.announce);
    }
}
