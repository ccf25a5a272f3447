//! The session engine behind the plugin contract: [`SessionServices`] implements the plugin host's
//! [`HostServices`] by looking the named session up in the runtime's registry and calling it.
//!
//! Contract: grants were already checked by the plugin host. Every failure becomes an
//! [`ApiError`] (never a panic): an unknown session is `not-found`, a session that is not logged
//! in is `unavailable`, a malformed JID is `invalid` naming it, a server refusal is
//! `server-error` with WhatsApp's code. Sends go through the session's persistent, rate-limited
//! outbox and return the message id as soon as the message is durably queued (the plugin does not
//! wait out rate-limit spacing). Group member JIDs are presented in phone-number form where the
//! server told us the mapping, and translated back to the group's addressing when acted on.

use std::sync::Weak;

use async_trait::async_trait;
use wasmeow_plugin_host::types::{
    ApiError, ChatStateKind, GroupInfo, MessageRef, OutgoingText, Participant, ParticipantOutcome,
    ParticipantRole, ServerError,
};
use wasmeow_plugin_host::{GroupSetting, HostServices, ParticipantAction};
use wasmeow_protocol::binary::Jid;
use wasmeow_session::content::{ContextInfo, MessageContent};
use wasmeow_session::events::ChatState;
use wasmeow_session::groups::{self as sg};
use wasmeow_session::{IqError, SessionError};

use super::Registry;
use super::convert::{bare, prefer_pn};

/// [`HostServices`] over the runtime's sessions. Holds the registry weakly: the registry owns the
/// plugin host, which owns this, and a strong reference would keep the store open forever.
pub(crate) struct SessionServices {
    pub(crate) registry: Weak<Registry>,
}

fn jid(s: &str) -> Result<Jid, ApiError> {
    s.parse::<Jid>()
        .map_err(|e| ApiError::Invalid(format!("{s:?} is not a JID: {e}")))
}

/// Maps a session failure to the plugin-facing error.
pub(crate) fn api_error(e: SessionError) -> ApiError {
    match e {
        SessionError::NotLoggedIn => ApiError::Unavailable,
        SessionError::InvalidJid(j) => ApiError::Invalid(format!("invalid JID {j}")),
        SessionError::Iq(IqError::Server(node)) => {
            if node.code == 404 {
                ApiError::NotFound
            } else {
                ApiError::ServerError(ServerError {
                    code: u16::try_from(node.code).unwrap_or(u16::MAX),
                    text: node.text,
                })
            }
        }
        SessionError::Iq(_) | SessionError::Store(_) => ApiError::Unavailable,
        SessionError::Other(text) => ApiError::Invalid(text),
    }
}

fn role(r: &str) -> ParticipantRole {
    match r {
        "superadmin" => ParticipantRole::Owner,
        "admin" => ParticipantRole::Admin,
        _ => ParticipantRole::Member,
    }
}

fn group_info(g: sg::GroupInfo) -> GroupInfo {
    GroupInfo {
        group: bare(&g.jid),
        subject: g.subject,
        description: g.description,
        owner: g.creator.as_deref().map(bare),
        created: (g.creation > 0).then(|| (g.creation as i64).saturating_mul(1000)),
        participants: g
            .participants
            .iter()
            .map(|p| Participant {
                user: prefer_pn(&p.jid, p.alt.as_deref()),
                role: role(&p.role),
            })
            .collect(),
        announce: g.announce,
        locked: g.locked,
    }
}

impl SessionServices {
    fn session(
        &self,
        name: &str,
    ) -> Result<wasmeow_session::Session<wasmeow_store::RedbAccount>, ApiError> {
        self.registry
            .upgrade()
            .ok_or(ApiError::Unavailable)?
            .session(name)
            .ok_or(ApiError::NotFound)
    }

    async fn queue(
        &self,
        plugin: &str,
        session: &str,
        chat: &str,
        content: MessageContent,
    ) -> Result<String, ApiError> {
        let s = self.session(session)?;
        let to = jid(chat)?;
        let (id, _outcome) = s.send(&to, content).await.map_err(api_error)?;
        if let Some(r) = self.registry.upgrade() {
            r.metrics.messages_out.inc();
        }
        tracing::debug!(plugin, session, chat, id = %id, "plugin message queued");
        Ok(id)
    }
}

#[async_trait]
impl HostServices for SessionServices {
    async fn send_text(
        &self,
        plugin: &str,
        session: &str,
        chat: &str,
        message: OutgoingText,
    ) -> Result<String, ApiError> {
        let context =
            (message.quoted.is_some() || !message.mentions.is_empty()).then(|| ContextInfo {
                quoted_id: message.quoted.as_ref().map(|q| q.id.clone()),
                quoted_sender: message.quoted.as_ref().map(|q| q.sender.clone()),
                quoted_text: None,
                mentions: message.mentions.clone(),
                forwarded: false,
            });
        let content = MessageContent::Text {
            text: message.text,
            context,
        };
        self.queue(plugin, session, chat, content).await
    }

    async fn react(
        &self,
        plugin: &str,
        session: &str,
        chat: &str,
        target: MessageRef,
        emoji: String,
    ) -> Result<(), ApiError> {
        let own = self.own_jid(plugin, session).await?;
        let content = MessageContent::Reaction {
            target_id: target.id,
            target_chat: Some(chat.to_owned()),
            target_from_me: bare(&target.sender) == own,
            emoji,
        };
        self.queue(plugin, session, chat, content).await.map(|_| ())
    }

    async fn mark_read(
        &self,
        _plugin: &str,
        session: &str,
        chat: &str,
        sender: &str,
        ids: Vec<String>,
    ) -> Result<(), ApiError> {
        let s = self.session(session)?;
        let chat_jid = jid(chat)?;
        let sender = if chat_jid.is_group() {
            Some(jid(sender)?)
        } else {
            None
        };
        s.mark_read(&chat_jid, sender.as_ref(), &ids)
            .await
            .map_err(api_error)
    }

    async fn set_typing(
        &self,
        _plugin: &str,
        session: &str,
        chat: &str,
        state: ChatStateKind,
    ) -> Result<(), ApiError> {
        let s = self.session(session)?;
        let state = match state {
            ChatStateKind::Composing => ChatState::Composing,
            ChatStateKind::Recording => ChatState::Recording,
            ChatStateKind::Paused => ChatState::Paused,
        };
        s.send_chat_state(&jid(chat)?, state)
            .await
            .map_err(api_error)
    }

    async fn own_jid(&self, _plugin: &str, session: &str) -> Result<String, ApiError> {
        let s = self.session(session)?;
        s.own_jid()
            .map(|j| bare(&j.to_string()))
            .ok_or(ApiError::Unavailable)
    }

    async fn group_create(
        &self,
        _plugin: &str,
        session: &str,
        subject: String,
        participants: Vec<String>,
    ) -> Result<GroupInfo, ApiError> {
        let s = self.session(session)?;
        let members = participants
            .iter()
            .map(|p| jid(p))
            .collect::<Result<Vec<_>, _>>()?;
        s.create_group(&subject, &members)
            .await
            .map(group_info)
            .map_err(api_error)
    }

    async fn group_info(
        &self,
        _plugin: &str,
        session: &str,
        group: &str,
    ) -> Result<GroupInfo, ApiError> {
        let s = self.session(session)?;
        s.group_info(&jid(group)?)
            .await
            .map(group_info)
            .map_err(api_error)
    }

    async fn group_participants(
        &self,
        _plugin: &str,
        session: &str,
        group: &str,
        action: ParticipantAction,
        users: Vec<String>,
    ) -> Result<Vec<ParticipantOutcome>, ApiError> {
        let s = self.session(session)?;
        let group_jid = jid(group)?;
        // Members are presented to plugins by phone number; the group may address them by LID.
        // Translate back through the group's own member list (its `alt` attributes).
        let mut requested: Vec<(String, Jid)> = Vec::with_capacity(users.len());
        let members = if action == ParticipantAction::Add {
            None
        } else {
            Some(s.group_info(&group_jid).await.map_err(api_error)?)
        };
        for user in &users {
            let wanted = bare(user);
            let actual = members
                .as_ref()
                .and_then(|g| {
                    g.participants.iter().find(|p| {
                        bare(&p.jid) == wanted
                            || p.alt.as_deref().map(bare).as_deref() == Some(&wanted)
                    })
                })
                .map(|p| p.jid.clone())
                .unwrap_or_else(|| wanted.clone());
            requested.push((wanted, jid(&actual)?));
        }
        let action = match action {
            ParticipantAction::Add => sg::ParticipantAction::Add,
            ParticipantAction::Remove => sg::ParticipantAction::Remove,
            ParticipantAction::Promote => sg::ParticipantAction::Promote,
            ParticipantAction::Demote => sg::ParticipantAction::Demote,
        };
        let jids: Vec<Jid> = requested.iter().map(|(_, j)| j.clone()).collect();
        let results = s
            .update_participants(&group_jid, action, &jids)
            .await
            .map_err(api_error)?;
        Ok(requested
            .iter()
            .map(|(asked, actual)| {
                let actual = bare(&actual.to_string());
                let code = results
                    .iter()
                    .find(|r| bare(&r.jid) == actual)
                    .map(|r| r.error.unwrap_or(200))
                    .unwrap_or(200);
                ParticipantOutcome {
                    user: asked.clone(),
                    code: u16::try_from(code).unwrap_or(u16::MAX),
                }
            })
            .collect())
    }

    async fn group_setting(
        &self,
        _plugin: &str,
        session: &str,
        group: &str,
        setting: GroupSetting,
    ) -> Result<(), ApiError> {
        let s = self.session(session)?;
        let g = jid(group)?;
        match setting {
            GroupSetting::Subject(subject) => s.set_group_subject(&g, &subject).await,
            GroupSetting::Description(d) => s.set_group_description(&g, d.as_deref()).await,
            GroupSetting::Announce(on) => s.set_group_announce(&g, on).await,
            GroupSetting::Locked(on) => s.set_group_locked(&g, on).await,
        }
        .map_err(api_error)
    }

    async fn group_invite_link(
        &self,
        _plugin: &str,
        session: &str,
        group: &str,
        revoke: bool,
    ) -> Result<String, ApiError> {
        let s = self.session(session)?;
        s.group_invite_link(&jid(group)?, revoke)
            .await
            .map_err(api_error)
    }

    async fn group_join(
        &self,
        _plugin: &str,
        session: &str,
        invite: String,
    ) -> Result<String, ApiError> {
        let s = self.session(session)?;
        s.join_group_with_link(&invite)
            .await
            .map(|j| j.to_string())
            .map_err(api_error)
    }

    async fn group_leave(&self, _plugin: &str, session: &str, group: &str) -> Result<(), ApiError> {
        let s = self.session(session)?;
        s.leave_group(&jid(group)?).await.map_err(api_error)
    }
}
