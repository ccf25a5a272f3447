//! [`Incoming`]: the event a `handle` call is about, read from the host on demand
//! (the `current` interface).

use core::cell::OnceCell;

use crate::wit::wasmeow::bot::current;
use crate::{Event, EventInfo, EventKind, Message};

/// The event being handled. [`Incoming::info`] (kind, flags, a message's text)
/// came with the call; every other method asks the host (one call each, cached
/// where noted), so a plugin pays only for what it reads. Valid for the
/// duration of the handler.
pub struct Incoming {
    info: EventInfo,
    session: OnceCell<String>,
}

impl Incoming {
    pub(crate) fn new(info: EventInfo) -> Self {
        Incoming {
            info,
            session: OnceCell::new(),
        }
    }

    /// What came with the call: the event's kind and, for messages, the
    /// from-me and group flags and the text.
    pub fn info(&self) -> &EventInfo {
        &self.info
    }

    /// Which kind of event this is.
    pub fn kind(&self) -> EventKind {
        self.info.kind
    }

    /// The text of a message event (a text message's text or a media caption);
    /// it came with the call.
    pub fn text(&self) -> Option<&str> {
        self.info.text.as_deref()
    }

    /// The session the event belongs to (read once, then cached).
    pub fn session(&self) -> &str {
        self.session
            .get_or_init(|| current::session().unwrap_or_default())
    }

    /// The whole event as plain data.
    pub fn event(&self) -> Event {
        current::get().expect("the host has a current event during handle")
    }

    /// The whole message of a message event.
    pub fn message(&self) -> Option<Message> {
        current::get_message()
    }

    /// The chat the event belongs to (a message's chat, a group update's group,
    /// a presence update's user…).
    pub fn chat(&self) -> Option<String> {
        current::chat()
    }

    /// The author of a message, receipt or chat state.
    pub fn sender(&self) -> Option<String> {
        current::sender()
    }
}
