//! What a plugin may do: the capabilities (WIT interfaces, plus the group-admin
//! actions) and scopes (sessions, chats) the operator granted it, and the single
//! [`Grant::check`] choke point every host function goes through.
//!
//! Deny by default: [`Grant::default`] grants nothing and no session, so a plugin
//! with it receives no events and every call returns `denied`. The bot's config
//! loader maps `bot.toml` onto [`Grant`].

use std::collections::BTreeSet;

use crate::types::{ApiError, Event, EventBody};

/// One grantable permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// `messaging`: send, reply, react, mark read, typing, own JID.
    Messaging,
    /// `groups`: group info, create, join, leave.
    Groups,
    /// The admin actions of `groups` (participants, settings, invite links); needs
    /// [`Capability::Groups`] too.
    GroupAdmin,
    /// `scheduler`.
    Scheduler,
    /// `kv`.
    Kv,
    /// `log`.
    Log,
    /// `config`.
    Config,
    /// `clock`.
    Clock,
    /// `random`.
    Random,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 9] = [
        Capability::Messaging,
        Capability::Groups,
        Capability::GroupAdmin,
        Capability::Scheduler,
        Capability::Kv,
        Capability::Log,
        Capability::Config,
        Capability::Clock,
        Capability::Random,
    ];

    /// The name used in `bot.toml` (`"messaging"`, `"group-admin"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Capability::Messaging => "messaging",
            Capability::Groups => "groups",
            Capability::GroupAdmin => "group-admin",
            Capability::Scheduler => "scheduler",
            Capability::Kv => "kv",
            Capability::Log => "log",
            Capability::Config => "config",
            Capability::Clock => "clock",
            Capability::Random => "random",
        }
    }

    /// Parses a name as written by [`Capability::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// A set of sessions or chats.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    /// Every session (or chat).
    All,
    /// Only these; JIDs are compared without device suffixes.
    Only(BTreeSet<String>),
    /// None at all.
    #[default]
    Nothing,
}

impl Scope {
    /// A scope of exactly these items.
    pub fn only<I, S>(items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Scope::Only(items.into_iter().map(|s| jid_key(&s.into())).collect())
    }

    /// Whether `item` is in the scope.
    pub fn contains(&self, item: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(set) => set.contains(&jid_key(item)),
            Scope::Nothing => false,
        }
    }

    /// Whether the scope is unrestricted.
    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All)
    }
}

/// The form scopes compare JIDs in: `user:device@server` → `user@server` (a device
/// suffix only names one of a user's devices). Other strings are unchanged.
fn jid_key(jid: &str) -> String {
    match jid.split_once('@') {
        Some((user, server)) => {
            let user = user.split(':').next().unwrap_or(user);
            format!("{user}@{server}")
        }
        None => jid.to_owned(),
    }
}

/// The capabilities and scopes granted to one plugin.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// The granted capabilities.
    pub capabilities: BTreeSet<Capability>,
    /// The sessions the plugin receives events from and may act in.
    pub sessions: Scope,
    /// The chats (user or group JIDs) the plugin receives events from and may act
    /// in. Session-level events (connection state) are not chat-scoped.
    pub chats: Scope,
}

impl Grant {
    /// Everything, everywhere (for trusted plugins and tests).
    pub fn all() -> Self {
        Grant {
            capabilities: Capability::ALL.into_iter().collect(),
            sessions: Scope::All,
            chats: Scope::All,
        }
    }

    /// Adds capabilities.
    pub fn with(mut self, caps: impl IntoIterator<Item = Capability>) -> Self {
        self.capabilities.extend(caps);
        self
    }

    /// Removes a capability.
    pub fn without(mut self, cap: Capability) -> Self {
        self.capabilities.remove(&cap);
        self
    }

    /// Whether the capability is granted.
    pub fn has(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }

    /// Whether the plugin may receive `event`. Schedule events are delivered only
    /// to the plugin that owns the job (by [`crate::PluginHost::dispatch_to`]),
    /// which checks the session here too.
    pub fn allows_event(&self, event: &Event) -> bool {
        if !self.sessions.contains(&event.session) {
            return false;
        }
        match &event.body {
            EventBody::Connection(_) | EventBody::ScheduleFired(_) => true,
            _ => event.chat().is_some_and(|c| self.chat_allowed(c)),
        }
    }

    fn chat_allowed(&self, chat: &str) -> bool {
        self.chats.contains(chat)
    }

    /// The choke point: whether `op` is within this grant. Every host function
    /// calls it first; `Err(ApiError::Denied)` is returned to the guest as is.
    pub(crate) fn check(&self, op: &Op<'_>) -> Result<(), ApiError> {
        for cap in op.capabilities() {
            if !self.has(*cap) {
                return Err(ApiError::Denied);
            }
        }
        if let Some(session) = op.session()
            && !self.sessions.contains(session)
        {
            return Err(ApiError::Denied);
        }
        match op.chat() {
            ChatTarget::None => {}
            ChatTarget::One(chat) => {
                if !self.chat_allowed(chat) {
                    return Err(ApiError::Denied);
                }
            }
            ChatTarget::Unknown => {
                if !self.chats.is_all() {
                    return Err(ApiError::Denied);
                }
            }
        }
        Ok(())
    }
}

/// Which chat an operation acts on.
pub(crate) enum ChatTarget<'a> {
    /// Not chat-specific (kv, log, …).
    None,
    /// This chat.
    One(&'a str),
    /// A chat not known before the call (create or join a group): only an
    /// unrestricted chat scope covers it.
    Unknown,
}

/// Every host operation, with what it touches, for [`Grant::check`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op<'a> {
    /// send-text, reply, send, react, mark-read, set-typing.
    Message { session: &'a str, chat: &'a str },
    /// own-jid.
    OwnJid { session: &'a str },
    /// groups.info and groups.leave.
    Group { session: &'a str, group: &'a str },
    /// groups.create and groups.join.
    GroupNew { session: &'a str },
    /// participants, settings, invite links.
    GroupAdmin { session: &'a str, group: &'a str },
    /// scheduler.schedule.
    Schedule { session: &'a str },
    /// scheduler.cancel and scheduler.list-jobs (the plugin's own jobs).
    ScheduleOwn,
    /// kv.*.
    Kv,
    /// log.log.
    Log,
    /// config.*.
    Config,
    /// clock.now.
    Clock,
    /// random.*.
    Random,
}

impl<'a> Op<'a> {
    fn capabilities(&self) -> &'static [Capability] {
        match self {
            Op::Message { .. } | Op::OwnJid { .. } => &[Capability::Messaging],
            Op::Group { .. } | Op::GroupNew { .. } => &[Capability::Groups],
            Op::GroupAdmin { .. } => &[Capability::Groups, Capability::GroupAdmin],
            Op::Schedule { .. } | Op::ScheduleOwn => &[Capability::Scheduler],
            Op::Kv => &[Capability::Kv],
            Op::Log => &[Capability::Log],
            Op::Config => &[Capability::Config],
            Op::Clock => &[Capability::Clock],
            Op::Random => &[Capability::Random],
        }
    }

    fn session(&self) -> Option<&'a str> {
        match *self {
            Op::Message { session, .. }
            | Op::OwnJid { session }
            | Op::Group { session, .. }
            | Op::GroupNew { session }
            | Op::GroupAdmin { session, .. }
            | Op::Schedule { session } => Some(session),
            Op::ScheduleOwn | Op::Kv | Op::Log | Op::Config | Op::Clock | Op::Random => None,
        }
    }

    fn chat(&self) -> ChatTarget<'a> {
        match *self {
            Op::Message { chat, .. } => ChatTarget::One(chat),
            Op::Group { group, .. } | Op::GroupAdmin { group, .. } => ChatTarget::One(group),
            Op::GroupNew { .. } => ChatTarget::Unknown,
            _ => ChatTarget::None,
        }
    }

    /// The operation's name, for logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Message { .. } => "messaging",
            Op::OwnJid { .. } => "messaging.own-jid",
            Op::Group { .. } => "groups",
            Op::GroupNew { .. } => "groups.create/join",
            Op::GroupAdmin { .. } => "groups (admin)",
            Op::Schedule { .. } => "scheduler.schedule",
            Op::ScheduleOwn => "scheduler",
            Op::Kv => "kv",
            Op::Log => "log",
            Op::Config => "config",
            Op::Clock => "clock",
            Op::Random => "random",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(caps: &[Capability]) -> Grant {
        Grant {
            capabilities: caps.iter().copied().collect(),
            sessions: Scope::only(["s1"]),
            chats: Scope::only(["a@s.whatsapp.net", "g@g.us"]),
        }
    }

    #[test]
    fn default_grant_denies_everything() {
        let g = Grant::default();
        assert_eq!(g.check(&Op::Kv), Err(ApiError::Denied));
        assert_eq!(
            g.check(&Op::Message {
                session: "s1",
                chat: "a@s.whatsapp.net"
            }),
            Err(ApiError::Denied)
        );
        assert!(!g.allows_event(&Event::text(
            "s1",
            "a@s.whatsapp.net",
            "a@s.whatsapp.net",
            "1",
            "hi"
        )));
    }

    #[test]
    fn scopes_are_enforced() {
        let g = grant(&[Capability::Messaging, Capability::Groups]);
        assert_eq!(
            g.check(&Op::Message {
                session: "s1",
                chat: "a@s.whatsapp.net"
            }),
            Ok(())
        );
        assert_eq!(
            g.check(&Op::Message {
                session: "s1",
                chat: "a:7@s.whatsapp.net"
            }),
            Ok(())
        );
        assert_eq!(
            g.check(&Op::Message {
                session: "s2",
                chat: "a@s.whatsapp.net"
            }),
            Err(ApiError::Denied)
        );
        assert_eq!(
            g.check(&Op::Message {
                session: "s1",
                chat: "b@s.whatsapp.net"
            }),
            Err(ApiError::Denied)
        );
        assert_eq!(
            g.check(&Op::Group {
                session: "s1",
                group: "g@g.us"
            }),
            Ok(())
        );
        assert_eq!(
            g.check(&Op::GroupAdmin {
                session: "s1",
                group: "g@g.us"
            }),
            Err(ApiError::Denied)
        );
        assert_eq!(
            g.check(&Op::GroupNew { session: "s1" }),
            Err(ApiError::Denied)
        );
        let admin = g.clone().with([Capability::GroupAdmin]);
        assert_eq!(
            admin.check(&Op::GroupAdmin {
                session: "s1",
                group: "g@g.us"
            }),
            Ok(())
        );
        let open = Grant {
            chats: Scope::All,
            ..admin
        };
        assert_eq!(open.check(&Op::GroupNew { session: "s1" }), Ok(()));
    }

    #[test]
    fn event_scope() {
        let g = grant(&[]);
        assert!(g.allows_event(&Event::text("s1", "g@g.us", "x@s.whatsapp.net", "1", "hi")));
        assert!(!g.allows_event(&Event::text("s1", "h@g.us", "x@s.whatsapp.net", "1", "hi")));
        assert!(!g.allows_event(&Event::text("s2", "g@g.us", "x@s.whatsapp.net", "1", "hi")));
    }

    #[test]
    fn capability_names_round_trip() {
        for c in Capability::ALL {
            assert_eq!(Capability::from_name(c.name()), Some(c));
        }
        assert_eq!(Capability::from_name("root"), None);
    }
}
