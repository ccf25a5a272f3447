//! [`RecordingServices`]: a [`HostServices`] that records every call and keeps a
//! small model of groups, for tests of plugins and of the host (and, later, for
//! end-to-end tests that do not need a real session).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::services::{GroupSetting, HostServices, ParticipantAction};
use crate::types::{
    ApiError, ChatStateKind, GroupInfo, MessageRef, OutgoingText, Participant, ParticipantOutcome,
    ParticipantRole,
};

/// One call a plugin made through the host.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceCall {
    /// `send-text`, `reply` or `send`.
    SendText {
        plugin: String,
        session: String,
        chat: String,
        message: OutgoingText,
    },
    /// `react`.
    React {
        plugin: String,
        session: String,
        chat: String,
        target: MessageRef,
        emoji: String,
    },
    /// `mark-read`.
    MarkRead {
        plugin: String,
        session: String,
        chat: String,
        sender: String,
        ids: Vec<String>,
    },
    /// `set-typing`.
    SetTyping {
        plugin: String,
        session: String,
        chat: String,
        state: ChatStateKind,
    },
    /// `own-jid`.
    OwnJid { plugin: String, session: String },
    /// `groups.create`.
    GroupCreate {
        plugin: String,
        session: String,
        subject: String,
        participants: Vec<String>,
    },
    /// `groups.info`.
    GroupInfo {
        plugin: String,
        session: String,
        group: String,
    },
    /// `groups.*-participants`.
    GroupParticipants {
        plugin: String,
        session: String,
        group: String,
        action: ParticipantAction,
        users: Vec<String>,
    },
    /// `groups.set-*`.
    GroupSetting {
        plugin: String,
        session: String,
        group: String,
        setting: GroupSetting,
    },
    /// `groups.invite-link` / `revoke-invite-link`.
    GroupInviteLink {
        plugin: String,
        session: String,
        group: String,
        revoke: bool,
    },
    /// `groups.join`.
    GroupJoin {
        plugin: String,
        session: String,
        invite: String,
    },
    /// `groups.leave`.
    GroupLeave {
        plugin: String,
        session: String,
        group: String,
    },
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<ServiceCall>,
    next_id: u64,
    own_jids: BTreeMap<String, String>,
    /// (session, group) → info
    groups: BTreeMap<(String, String), GroupInfo>,
    /// (session, group) → invite code
    invites: BTreeMap<(String, String), String>,
    fail_with: Option<ApiError>,
}

/// Records calls; answers from an in-memory model. Message ids are `msg-N`.
/// Unknown groups are `NotFound`; `own_jid` of a session not set with
/// [`RecordingServices::set_own_jid`] is `bot@s.whatsapp.net`.
#[derive(Debug, Default)]
pub struct RecordingServices {
    state: Mutex<State>,
    changed: Notify,
}

impl RecordingServices {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is a handful of field writes with no early exit, so a
        // poisoned lock still holds a consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<ServiceCall> {
        self.lock().calls.clone()
    }

    /// The text messages sent so far as `(plugin, chat, message)`.
    pub fn sent(&self) -> Vec<(String, String, OutgoingText)> {
        self.lock()
            .calls
            .iter()
            .filter_map(|c| match c {
                ServiceCall::SendText {
                    plugin,
                    chat,
                    message,
                    ..
                } => Some((plugin.clone(), chat.clone(), message.clone())),
                _ => None,
            })
            .collect()
    }

    /// Forgets recorded calls (the group model stays).
    pub fn clear(&self) {
        self.lock().calls.clear();
    }

    /// Waits until at least `n` messages were sent, or `timeout` passes; returns
    /// the number sent.
    pub async fn wait_sent(&self, n: usize, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let count = self.sent().len();
            if count >= n {
                return count;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.sent().len();
            }
        }
    }

    /// Sets this account's JID in a session.
    pub fn set_own_jid(&self, session: &str, jid: &str) {
        self.lock()
            .own_jids
            .insert(session.to_owned(), jid.to_owned());
    }

    /// Adds or replaces a group in the model.
    pub fn set_group(&self, session: &str, info: GroupInfo) {
        self.lock()
            .groups
            .insert((session.to_owned(), info.group.clone()), info);
    }

    /// A group from the model.
    pub fn group(&self, session: &str, group: &str) -> Option<GroupInfo> {
        self.lock()
            .groups
            .get(&(session.to_owned(), group.to_owned()))
            .cloned()
    }

    /// Makes every later call fail with `error` (`None` restores success).
    pub fn fail_with(&self, error: Option<ApiError>) {
        self.lock().fail_with = error;
    }

    fn record(&self, call: ServiceCall) -> Result<(), ApiError> {
        let mut st = self.lock();
        st.calls.push(call);
        let result = match &st.fail_with {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        };
        drop(st);
        self.changed.notify_waiters();
        result
    }

    fn group_mut<R>(
        &self,
        session: &str,
        group: &str,
        f: impl FnOnce(&mut GroupInfo) -> R,
    ) -> Result<R, ApiError> {
        let mut st = self.lock();
        let info = st
            .groups
            .get_mut(&(session.to_owned(), group.to_owned()))
            .ok_or(ApiError::NotFound)?;
        Ok(f(info))
    }
}

fn same_user(a: &str, b: &str) -> bool {
    fn bare(j: &str) -> (&str, &str) {
        let (user, server) = j.split_once('@').unwrap_or((j, ""));
        (user.split(':').next().unwrap_or(user), server)
    }
    bare(a) == bare(b)
}

#[async_trait]
impl HostServices for RecordingServices {
    async fn send_text(
        &self,
        plugin: &str,
        session: &str,
        chat: &str,
        message: OutgoingText,
    ) -> Result<String, ApiError> {
        self.record(ServiceCall::SendText {
            plugin: plugin.into(),
            session: session.into(),
            chat: chat.into(),
            message,
        })?;
        let mut st = self.lock();
        st.next_id += 1;
        Ok(format!("msg-{}", st.next_id))
    }

    async fn react(
        &self,
        plugin: &str,
        session: &str,
        chat: &str,
        target: MessageRef,
        emoji: String,
    ) -> Result<(), ApiError> {
        self.record(ServiceCall::React {
            plugin: plugin.into(),
            session: session.into(),
            chat: chat.into(),
            target,
            emoji,
        })
    }

    async fn mark_read(
        &self,
        plugin: &str,
        session: &str,
        chat: &str,
        sender: &str,
        ids: Vec<String>,
    ) -> Result<(), ApiError> {
        self.record(ServiceCall::MarkRead {
            plugin: plugin.into(),
            session: session.into(),
            chat: chat.into(),
            sender: sender.into(),
            ids,
        })
    }

    async fn set_typing(
        &self,
        plugin: &str,
        session: &str,
        chat: &str,
        state: ChatStateKind,
    ) -> Result<(), ApiError> {
        self.record(ServiceCall::SetTyping {
            plugin: plugin.into(),
            session: session.into(),
            chat: chat.into(),
            state,
        })
    }

    async fn own_jid(&self, plugin: &str, session: &str) -> Result<String, ApiError> {
        self.record(ServiceCall::OwnJid {
            plugin: plugin.into(),
            session: session.into(),
        })?;
        Ok(self
            .lock()
            .own_jids
            .get(session)
            .cloned()
            .unwrap_or_else(|| "bot@s.whatsapp.net".into()))
    }

    async fn group_create(
        &self,
        plugin: &str,
        session: &str,
        subject: String,
        participants: Vec<String>,
    ) -> Result<GroupInfo, ApiError> {
        self.record(ServiceCall::GroupCreate {
            plugin: plugin.into(),
            session: session.into(),
            subject: subject.clone(),
            participants: participants.clone(),
        })?;
        let own = self.own_jid_of(session);
        let mut st = self.lock();
        st.next_id += 1;
        let mut members = vec![Participant {
            user: own.clone(),
            role: ParticipantRole::Owner,
        }];
        members.extend(participants.into_iter().map(|user| Participant {
            user,
            role: ParticipantRole::Member,
        }));
        let info = GroupInfo {
            group: format!("1203630000{:08}@g.us", st.next_id),
            subject,
            description: None,
            owner: Some(own),
            created: None,
            participants: members,
            announce: false,
            locked: false,
        };
        st.groups
            .insert((session.to_owned(), info.group.clone()), info.clone());
        Ok(info)
    }

    async fn group_info(
        &self,
        plugin: &str,
        session: &str,
        group: &str,
    ) -> Result<GroupInfo, ApiError> {
        self.record(ServiceCall::GroupInfo {
            plugin: plugin.into(),
            session: session.into(),
            group: group.into(),
        })?;
        self.group(session, group).ok_or(ApiError::NotFound)
    }

    async fn group_participants(
        &self,
        plugin: &str,
        session: &str,
        group: &str,
        action: ParticipantAction,
        users: Vec<String>,
    ) -> Result<Vec<ParticipantOutcome>, ApiError> {
        self.record(ServiceCall::GroupParticipants {
            plugin: plugin.into(),
            session: session.into(),
            group: group.into(),
            action,
            users: users.clone(),
        })?;
        self.group_mut(session, group, |info| {
            users
                .into_iter()
                .map(|user| {
                    let pos = info
                        .participants
                        .iter()
                        .position(|p| same_user(&p.user, &user));
                    let code = match (action, pos) {
                        (ParticipantAction::Add, Some(_)) => 409,
                        (ParticipantAction::Add, None) => {
                            info.participants.push(Participant {
                                user: user.clone(),
                                role: ParticipantRole::Member,
                            });
                            200
                        }
                        (_, None) => 404,
                        (ParticipantAction::Remove, Some(i)) => {
                            info.participants.remove(i);
                            200
                        }
                        (ParticipantAction::Promote, Some(i)) => {
                            info.participants[i].role = ParticipantRole::Admin;
                            200
                        }
                        (ParticipantAction::Demote, Some(i)) => {
                            info.participants[i].role = ParticipantRole::Member;
                            200
                        }
                    };
                    ParticipantOutcome { user, code }
                })
                .collect()
        })
    }

    async fn group_setting(
        &self,
        plugin: &str,
        session: &str,
        group: &str,
        setting: GroupSetting,
    ) -> Result<(), ApiError> {
        self.record(ServiceCall::GroupSetting {
            plugin: plugin.into(),
            session: session.into(),
            group: group.into(),
            setting: setting.clone(),
        })?;
        self.group_mut(session, group, |info| match setting {
            GroupSetting::Subject(s) => info.subject = s,
            GroupSetting::Description(d) => info.description = d,
            GroupSetting::Announce(a) => info.announce = a,
            GroupSetting::Locked(l) => info.locked = l,
        })
    }

    async fn group_invite_link(
        &self,
        plugin: &str,
        session: &str,
        group: &str,
        revoke: bool,
    ) -> Result<String, ApiError> {
        self.record(ServiceCall::GroupInviteLink {
            plugin: plugin.into(),
            session: session.into(),
            group: group.into(),
            revoke,
        })?;
        self.group(session, group).ok_or(ApiError::NotFound)?;
        let mut st = self.lock();
        st.next_id += 1;
        let fresh = format!("INVITE{}", st.next_id);
        let key = (session.to_owned(), group.to_owned());
        let code = if revoke {
            st.invites.insert(key, fresh.clone());
            fresh
        } else {
            st.invites.entry(key).or_insert(fresh).clone()
        };
        Ok(format!("https://chat.whatsapp.com/{code}"))
    }

    async fn group_join(
        &self,
        plugin: &str,
        session: &str,
        invite: String,
    ) -> Result<String, ApiError> {
        self.record(ServiceCall::GroupJoin {
            plugin: plugin.into(),
            session: session.into(),
            invite: invite.clone(),
        })?;
        let code = invite.rsplit('/').next().unwrap_or(&invite).to_owned();
        let own = self.own_jid_of(session);
        let mut st = self.lock();
        let group = st
            .invites
            .iter()
            .find(|((s, _), c)| s == session && **c == code)
            .map(|((_, g), _)| g.clone())
            .ok_or(ApiError::NotFound)?;
        if let Some(info) = st.groups.get_mut(&(session.to_owned(), group.clone()))
            && !info.participants.iter().any(|p| same_user(&p.user, &own))
        {
            info.participants.push(Participant {
                user: own,
                role: ParticipantRole::Member,
            });
        }
        Ok(group)
    }

    async fn group_leave(&self, plugin: &str, session: &str, group: &str) -> Result<(), ApiError> {
        self.record(ServiceCall::GroupLeave {
            plugin: plugin.into(),
            session: session.into(),
            group: group.into(),
        })?;
        let own = self.own_jid_of(session);
        self.group_mut(session, group, |info| {
            info.participants.retain(|p| !same_user(&p.user, &own))
        })
    }
}

impl RecordingServices {
    fn own_jid_of(&self, session: &str) -> String {
        self.lock()
            .own_jids
            .get(session)
            .cloned()
            .unwrap_or_else(|| "bot@s.whatsapp.net".into())
    }
}
