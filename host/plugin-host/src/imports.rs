//! The host side of every `wasmeow:bot` import. Each function first goes through
//! [`PluginState::check`] (grant + per-event call budget), then the host's own size
//! limits, then the service backend under the host-call timeout. Nothing here
//! traps: every failure is an [`ApiError`] for the guest.

use crate::bindings::wasmeow::bot::{
    clock, config, current, groups, kv, log, messaging, random, scheduler, types,
};
use crate::grant::Op;
use crate::services::{GroupSetting, ParticipantAction};
use crate::state::PluginState;
use crate::types::{
    ApiError, ChatStateKind, Event, GroupInfo, Job, Level, Message, MessageRef, OutgoingText,
    ParticipantOutcome, Trigger,
};

/// Longest message text (WhatsApp's own limit is 65 536 characters).
pub(crate) const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Longest JID, message id, emoji, invite or job id.
pub(crate) const MAX_ID_BYTES: usize = 256;
/// Most items in a list argument (message ids, mentions, users).
pub(crate) const MAX_LIST_ITEMS: usize = 1024;
/// Longest kv key.
pub(crate) const MAX_KEY_BYTES: usize = 512;
/// Largest kv value.
pub(crate) const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most keys one `list-keys` returns.
pub(crate) const MAX_LIST_KEYS: u32 = 1000;
/// Largest job payload.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Longest log message; longer ones are cut.
pub(crate) const MAX_LOG_BYTES: usize = 4096;
/// Most random bytes per call.
pub(crate) const MAX_RANDOM_BYTES: u32 = 4096;

fn limit_len(what: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.len() > max {
        return Err(ApiError::Invalid(format!("{what} longer than {max} bytes")));
    }
    Ok(())
}

fn nonempty_id(what: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::Invalid(format!("{what} is empty")));
    }
    limit_len(what, value, MAX_ID_BYTES)
}

fn limit_list(what: &str, items: &[String]) -> Result<(), ApiError> {
    if items.len() > MAX_LIST_ITEMS {
        return Err(ApiError::Invalid(format!(
            "more than {MAX_LIST_ITEMS} {what}"
        )));
    }
    items.iter().try_for_each(|i| nonempty_id(what, i))
}

fn check_outgoing(m: &OutgoingText) -> Result<(), ApiError> {
    limit_len("text", &m.text, MAX_TEXT_BYTES)?;
    if let Some(q) = &m.quoted {
        nonempty_id("quoted id", &q.id)?;
        nonempty_id("quoted sender", &q.sender)?;
    }
    limit_list("mentions", &m.mentions)
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl types::Host for PluginState {}

/// Reading the event being handled. Not a capability (every plugin may read the
/// events it is given) and not counted against the host-call budget: the
/// functions only copy data out, and the call's deadline bounds them.
impl current::Host for PluginState {
    fn get(&mut self) -> Option<Event> {
        self.current.as_deref().cloned()
    }

    fn session(&mut self) -> Option<String> {
        Some(self.current.as_ref()?.session.clone())
    }

    fn get_message(&mut self) -> Option<Message> {
        self.current.as_ref()?.message().cloned()
    }

    fn chat(&mut self) -> Option<String> {
        self.current.as_ref()?.chat().map(str::to_owned)
    }

    fn sender(&mut self) -> Option<String> {
        self.current.as_ref()?.sender().map(str::to_owned)
    }
}

impl PluginState {
    fn send(
        &mut self,
        session: String,
        chat: String,
        message: OutgoingText,
    ) -> Result<String, ApiError> {
        self.check(Op::Message {
            session: &session,
            chat: &chat,
        })?;
        nonempty_id("chat", &chat)?;
        check_outgoing(&message)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services
                .host
                .send_text(&ctx.name, &session, &chat, message),
        )
    }

    fn participants(
        &mut self,
        session: String,
        group: String,
        action: ParticipantAction,
        users: Vec<String>,
    ) -> Result<Vec<ParticipantOutcome>, ApiError> {
        self.check(Op::GroupAdmin {
            session: &session,
            group: &group,
        })?;
        nonempty_id("group", &group)?;
        limit_list("users", &users)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services
                .host
                .group_participants(&ctx.name, &session, &group, action, users),
        )
    }

    fn setting(
        &mut self,
        session: String,
        group: String,
        setting: GroupSetting,
    ) -> Result<(), ApiError> {
        self.check(Op::GroupAdmin {
            session: &session,
            group: &group,
        })?;
        nonempty_id("group", &group)?;
        match &setting {
            GroupSetting::Subject(s) => limit_len("subject", s, MAX_ID_BYTES)?,
            GroupSetting::Description(Some(d)) => limit_len("description", d, MAX_TEXT_BYTES)?,
            _ => {}
        }
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services
                .host
                .group_setting(&ctx.name, &session, &group, setting),
        )
    }

    fn invite(&mut self, session: String, group: String, revoke: bool) -> Result<String, ApiError> {
        self.check(Op::GroupAdmin {
            session: &session,
            group: &group,
        })?;
        nonempty_id("group", &group)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services
                .host
                .group_invite_link(&ctx.name, &session, &group, revoke),
        )
    }
}

impl messaging::Host for PluginState {
    fn send_text(
        &mut self,
        session: String,
        chat: String,
        text: String,
    ) -> Result<String, ApiError> {
        self.send(
            session,
            chat,
            OutgoingText {
                text,
                quoted: None,
                mentions: Vec::new(),
            },
        )
    }

    fn reply(
        &mut self,
        session: String,
        chat: String,
        text: String,
        quoted: MessageRef,
    ) -> Result<String, ApiError> {
        self.send(
            session,
            chat,
            OutgoingText {
                text,
                quoted: Some(quoted),
                mentions: Vec::new(),
            },
        )
    }

    fn send(
        &mut self,
        session: String,
        chat: String,
        message: OutgoingText,
    ) -> Result<String, ApiError> {
        PluginState::send(self, session, chat, message)
    }

    fn reply_current(&mut self, text: String) -> Result<(), ApiError> {
        let Some(event) = self.current.clone() else {
            return Err(ApiError::Invalid(
                "no event is being handled (reply-current outside handle)".into(),
            ));
        };
        let Some(m) = event.message() else {
            return Err(ApiError::Invalid(format!(
                "a {} event is not a message to reply to",
                event.kind()
            )));
        };
        self.check(Op::Message {
            session: &event.session,
            chat: &m.chat,
        })?;
        limit_len("text", &text, MAX_TEXT_BYTES)?;
        let message = OutgoingText {
            text,
            quoted: Some(MessageRef {
                id: m.id.clone(),
                sender: m.sender.clone(),
            }),
            mentions: Vec::new(),
        };
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services
                .host
                .send_text(&ctx.name, &event.session, &m.chat, message),
        )
        .map(drop)
    }

    fn react(
        &mut self,
        session: String,
        chat: String,
        target: MessageRef,
        emoji: String,
    ) -> Result<(), ApiError> {
        self.check(Op::Message {
            session: &session,
            chat: &chat,
        })?;
        nonempty_id("chat", &chat)?;
        nonempty_id("target id", &target.id)?;
        nonempty_id("target sender", &target.sender)?;
        limit_len("emoji", &emoji, 64)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services
                .host
                .react(&ctx.name, &session, &chat, target, emoji),
        )
    }

    fn mark_read(
        &mut self,
        session: String,
        chat: String,
        sender: String,
        ids: Vec<String>,
    ) -> Result<(), ApiError> {
        self.check(Op::Message {
            session: &session,
            chat: &chat,
        })?;
        nonempty_id("chat", &chat)?;
        nonempty_id("sender", &sender)?;
        limit_list("message ids", &ids)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services
                .host
                .mark_read(&ctx.name, &session, &chat, &sender, ids),
        )
    }

    fn set_typing(
        &mut self,
        session: String,
        chat: String,
        state: ChatStateKind,
    ) -> Result<(), ApiError> {
        self.check(Op::Message {
            session: &session,
            chat: &chat,
        })?;
        nonempty_id("chat", &chat)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services
                .host
                .set_typing(&ctx.name, &session, &chat, state),
        )
    }

    fn own_jid(&mut self, session: String) -> Result<String, ApiError> {
        self.check(Op::OwnJid { session: &session })?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services.host.own_jid(&ctx.name, &session),
        )
    }
}

impl groups::Host for PluginState {
    fn create(
        &mut self,
        session: String,
        subject: String,
        participants: Vec<String>,
    ) -> Result<GroupInfo, ApiError> {
        self.check(Op::GroupNew { session: &session })?;
        limit_len("subject", &subject, MAX_ID_BYTES)?;
        limit_list("participants", &participants)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services
                .host
                .group_create(&ctx.name, &session, subject, participants),
        )
    }

    fn info(&mut self, session: String, group: String) -> Result<GroupInfo, ApiError> {
        self.check(Op::Group {
            session: &session,
            group: &group,
        })?;
        nonempty_id("group", &group)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services.host.group_info(&ctx.name, &session, &group),
        )
    }

    fn add_participants(
        &mut self,
        session: String,
        group: String,
        users: Vec<String>,
    ) -> Result<Vec<ParticipantOutcome>, ApiError> {
        self.participants(session, group, ParticipantAction::Add, users)
    }

    fn remove_participants(
        &mut self,
        session: String,
        group: String,
        users: Vec<String>,
    ) -> Result<Vec<ParticipantOutcome>, ApiError> {
        self.participants(session, group, ParticipantAction::Remove, users)
    }

    fn promote_participants(
        &mut self,
        session: String,
        group: String,
        users: Vec<String>,
    ) -> Result<Vec<ParticipantOutcome>, ApiError> {
        self.participants(session, group, ParticipantAction::Promote, users)
    }

    fn demote_participants(
        &mut self,
        session: String,
        group: String,
        users: Vec<String>,
    ) -> Result<Vec<ParticipantOutcome>, ApiError> {
        self.participants(session, group, ParticipantAction::Demote, users)
    }

    fn set_subject(
        &mut self,
        session: String,
        group: String,
        subject: String,
    ) -> Result<(), ApiError> {
        self.setting(session, group, GroupSetting::Subject(subject))
    }

    fn set_description(
        &mut self,
        session: String,
        group: String,
        description: Option<String>,
    ) -> Result<(), ApiError> {
        self.setting(session, group, GroupSetting::Description(description))
    }

    fn set_announce(
        &mut self,
        session: String,
        group: String,
        announce: bool,
    ) -> Result<(), ApiError> {
        self.setting(session, group, GroupSetting::Announce(announce))
    }

    fn set_locked(&mut self, session: String, group: String, locked: bool) -> Result<(), ApiError> {
        self.setting(session, group, GroupSetting::Locked(locked))
    }

    fn invite_link(&mut self, session: String, group: String) -> Result<String, ApiError> {
        self.invite(session, group, false)
    }

    fn revoke_invite_link(&mut self, session: String, group: String) -> Result<String, ApiError> {
        self.invite(session, group, true)
    }

    fn join(&mut self, session: String, invite: String) -> Result<String, ApiError> {
        self.check(Op::GroupNew { session: &session })?;
        nonempty_id("invite", &invite)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services.host.group_join(&ctx.name, &session, invite),
        )
    }

    fn leave(&mut self, session: String, group: String) -> Result<(), ApiError> {
        self.check(Op::Group {
            session: &session,
            group: &group,
        })?;
        nonempty_id("group", &group)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services.host.group_leave(&ctx.name, &session, &group),
        )
    }
}

impl scheduler::Host for PluginState {
    fn schedule(
        &mut self,
        session: String,
        trigger: Trigger,
        payload: String,
    ) -> Result<String, ApiError> {
        self.check(Op::Schedule { session: &session })?;
        limit_len("payload", &payload, MAX_PAYLOAD_BYTES)?;
        if let Trigger::Cron(spec) = &trigger {
            limit_len("cron expression", &spec.expression, MAX_ID_BYTES)?;
            limit_len("time zone", &spec.timezone, MAX_ID_BYTES)?;
        }
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services
                .scheduler
                .schedule(&ctx.name, &session, trigger, payload),
        )
    }

    fn cancel(&mut self, id: String) -> Result<(), ApiError> {
        self.check(Op::ScheduleOwn)?;
        nonempty_id("job id", &id)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services.scheduler.cancel(&ctx.name, &id),
        )
    }

    fn list_jobs(&mut self) -> Result<Vec<Job>, ApiError> {
        self.check(Op::ScheduleOwn)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services.scheduler.list(&ctx.name),
        )
    }
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::Invalid("empty key".into()));
    }
    limit_len("key", key, MAX_KEY_BYTES)
}

fn check_value(value: &[u8]) -> Result<(), ApiError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::Invalid(format!(
            "value larger than {MAX_VALUE_BYTES} bytes"
        )));
    }
    Ok(())
}

impl kv::Host for PluginState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, ApiError> {
        self.check(Op::Kv)?;
        check_key(&key)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services.kv.get(&ctx.name, &key),
        )
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), ApiError> {
        self.check(Op::Kv)?;
        check_key(&key)?;
        check_value(&value)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services.kv.set(&ctx.name, &key, value),
        )
    }

    fn delete(&mut self, key: String) -> Result<bool, ApiError> {
        self.check(Op::Kv)?;
        check_key(&key)?;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services.kv.delete(&ctx.name, &key),
        )
    }

    fn list_keys(&mut self, prefix: String, limit: u32) -> Result<Vec<String>, ApiError> {
        self.check(Op::Kv)?;
        limit_len("prefix", &prefix, MAX_KEY_BYTES)?;
        let limit = limit.min(MAX_LIST_KEYS) as usize;
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services.kv.list(&ctx.name, &prefix, limit),
        )
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, ApiError> {
        self.check(Op::Kv)?;
        check_key(&key)?;
        if let Some(v) = &new {
            check_value(v)?;
        }
        let ctx = &*self.ctx;
        self.timed(
            ctx.limits.host_call_timeout,
            ctx.services
                .kv
                .compare_and_swap(&ctx.name, &key, expected, new),
        )
    }
}

impl log::Host for PluginState {
    fn log(&mut self, level: Level, message: String) -> Result<(), ApiError> {
        self.check(Op::Log)?;
        let plugin = &*self.ctx.name;
        let message = truncate(&message, MAX_LOG_BYTES);
        match level {
            Level::Trace => tracing::trace!(target: "wasmeow::plugin", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "wasmeow::plugin", plugin, "{message}"),
            Level::Info => tracing::info!(target: "wasmeow::plugin", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "wasmeow::plugin", plugin, "{message}"),
            Level::Error => tracing::error!(target: "wasmeow::plugin", plugin, "{message}"),
        }
        Ok(())
    }
}

impl config::Host for PluginState {
    fn get_all(&mut self) -> Result<String, ApiError> {
        self.check(Op::Config)?;
        Ok(self.ctx.config_json.clone())
    }

    fn get(&mut self, key: String) -> Result<Option<String>, ApiError> {
        self.check(Op::Config)?;
        limit_len("key", &key, MAX_KEY_BYTES)?;
        let value = key.split('.').try_fold(&self.ctx.config, |v, k| v.get(k));
        Ok(value.map(|v| v.to_string()))
    }
}

impl clock::Host for PluginState {
    fn now(&mut self) -> Result<i64, ApiError> {
        self.check(Op::Clock)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| ApiError::Unavailable)?;
        i64::try_from(now.as_millis()).map_err(|_| ApiError::Unavailable)
    }
}

impl random::Host for PluginState {
    fn bytes(&mut self, len: u32) -> Result<Vec<u8>, ApiError> {
        self.check(Op::Random)?;
        if len > MAX_RANDOM_BYTES {
            return Err(ApiError::Invalid(format!(
                "at most {MAX_RANDOM_BYTES} bytes per call"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        rand::fill(&mut buf[..]);
        Ok(buf)
    }

    fn next_u64(&mut self) -> Result<u64, ApiError> {
        self.check(Op::Random)?;
        Ok(rand::random())
    }
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
