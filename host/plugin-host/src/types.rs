//! The values that cross the plugin boundary, as Rust types generated from the WIT
//! (`wit/types.wit` and the record types of the host interfaces). The session
//! engine builds [`Event`]s from these and implements [`crate::HostServices`] with
//! them.

pub use crate::bindings::wasmeow::bot::groups::{
    GroupInfo, Participant, ParticipantOutcome, ParticipantRole,
};
pub use crate::bindings::wasmeow::bot::log::Level;
pub use crate::bindings::wasmeow::bot::messaging::{MessageRef, OutgoingText};
pub use crate::bindings::wasmeow::bot::scheduler::{CronSpec, Job, Trigger};
pub use crate::bindings::wasmeow::bot::types::{
    ApiError, BanInfo, ChatState, ChatStateKind, ConnectionState, Contact, Content, Event,
    EventBody, EventInfo, EventKind, GroupChange, GroupUpdate, Location, Media, MediaKind, Message,
    Poll, Presence, PresenceState, QuotedMessage, Reaction, Receipt, ReceiptKind, ScheduleFired,
    ServerError,
};

impl Event {
    /// The chat an event belongs to, for ordering and scoping: the chat of a
    /// message, receipt or chat state, the group of a group update, the user of a
    /// presence update. `None` for connection and schedule events.
    pub fn chat(&self) -> Option<&str> {
        match &self.body {
            EventBody::Message(m) => Some(&m.chat),
            EventBody::Receipt(r) => Some(&r.chat),
            EventBody::GroupUpdate(g) => Some(&g.group),
            EventBody::Presence(p) => Some(&p.user),
            EventBody::ChatState(c) => Some(&c.chat),
            EventBody::Connection(_) | EventBody::ScheduleFired(_) => None,
        }
    }

    /// What `handle` gets by value with the event (copies the message text).
    pub fn info(&self) -> EventInfo {
        let kind = match &self.body {
            EventBody::Message(_) => EventKind::Message,
            EventBody::Receipt(_) => EventKind::Receipt,
            EventBody::GroupUpdate(_) => EventKind::GroupUpdate,
            EventBody::Presence(_) => EventKind::Presence,
            EventBody::ChatState(_) => EventKind::ChatState,
            EventBody::Connection(_) => EventKind::Connection,
            EventBody::ScheduleFired(_) => EventKind::ScheduleFired,
        };
        let (from_me, is_group) = match &self.body {
            EventBody::Message(m) => (m.from_me, m.is_group),
            _ => (false, false),
        };
        EventInfo {
            kind,
            from_me,
            is_group,
            text: self.message_text().map(str::to_owned),
        }
    }

    /// The message of a message event.
    pub fn message(&self) -> Option<&Message> {
        match &self.body {
            EventBody::Message(m) => Some(m),
            _ => None,
        }
    }

    /// The text of a message event: a text message's text or a media caption.
    pub fn message_text(&self) -> Option<&str> {
        match &self.message()?.content {
            Content::Text(t) => Some(t),
            Content::Media(m) => m.caption.as_deref(),
            _ => None,
        }
    }

    /// The author of a message, receipt or chat state.
    pub fn sender(&self) -> Option<&str> {
        match &self.body {
            EventBody::Message(m) => Some(&m.sender),
            EventBody::Receipt(r) => Some(&r.sender),
            EventBody::ChatState(c) => Some(&c.sender),
            _ => None,
        }
    }

    /// A short name of the event's kind, for logs.
    pub fn kind(&self) -> &'static str {
        match &self.body {
            EventBody::Message(_) => "message",
            EventBody::Receipt(_) => "receipt",
            EventBody::GroupUpdate(_) => "group-update",
            EventBody::Presence(_) => "presence",
            EventBody::ChatState(_) => "chat-state",
            EventBody::Connection(_) => "connection",
            EventBody::ScheduleFired(_) => "schedule-fired",
        }
    }

    /// A text message event, mostly for tests and examples.
    pub fn text(session: &str, chat: &str, sender: &str, id: &str, text: &str) -> Self {
        Event {
            session: session.to_owned(),
            body: EventBody::Message(Message {
                id: id.to_owned(),
                chat: chat.to_owned(),
                sender: sender.to_owned(),
                push_name: None,
                timestamp: 0,
                from_me: false,
                is_group: chat.ends_with("@g.us"),
                quoted: None,
                mentions: Vec::new(),
                content: Content::Text(text.to_owned()),
            }),
        }
    }
}
