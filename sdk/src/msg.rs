//! [`Msg`]: a received message, read from the host on demand, and the actions a
//! handler usually takes on it.

use core::cell::OnceCell;
use core::ops::Deref;

use crate::wit::wasmeow::bot::messaging as host;
use crate::{
    ApiError, ChatStateKind, Command, Incoming, Message, MessageId, MessageRef, OutgoingText,
};

/// A received message and the actions a handler usually takes on it.
///
/// Read lazily: [`Msg::text`], [`Msg::command`], [`Msg::from_me`] and
/// [`Msg::is_group`] came with the call, [`Msg::reply`] is one host call that
/// copies nothing but the reply; everything else (`msg.chat`, `msg.sender`, …
/// through `Deref` to [`Message`]) fetches the whole message once, on first use.
pub struct Msg<'a> {
    event: &'a Incoming,
    message: OnceCell<Message>,
}

impl<'a> Deref for Msg<'a> {
    type Target = Message;

    fn deref(&self) -> &Message {
        self.message.get_or_init(|| {
            self.event
                .message()
                .expect("the host gives a message for every message event")
        })
    }
}

impl<'a> Msg<'a> {
    /// The message `event` is about (read on demand).
    pub fn new(event: &'a Incoming) -> Self {
        Msg {
            event,
            message: OnceCell::new(),
        }
    }

    /// A message whose data was already read.
    pub fn with_message(event: &'a Incoming, message: Message) -> Self {
        Msg {
            event,
            message: OnceCell::from(message),
        }
    }

    /// The session the message arrived in.
    pub fn session(&self) -> &str {
        self.event.session()
    }

    /// The event this message came with.
    pub fn event(&self) -> &'a Incoming {
        self.event
    }

    /// Whether this account sent the message (no host call).
    pub fn from_me(&self) -> bool {
        self.event.info().from_me
    }

    /// Whether the message was sent in a group (no host call).
    pub fn is_group(&self) -> bool {
        self.event.info().is_group
    }

    /// The text of a text message, or the caption of a media message.
    pub fn text(&self) -> Option<&str> {
        self.event.text()
    }

    /// The `!command` in the text, if the text is one. Messages this account sent
    /// itself are never commands (so the bot cannot trigger itself).
    pub fn command(&self) -> Option<Command<'_>> {
        if self.from_me() {
            return None;
        }
        Command::parse(self.text()?)
    }

    /// A reference to this message, for quoting or reacting.
    pub fn as_ref(&self) -> MessageRef {
        MessageRef {
            id: self.id.clone(),
            sender: self.sender.clone(),
        }
    }

    /// Replies in the same chat, quoting this message (the cheapest way to
    /// answer: nothing but `text` crosses into the host).
    pub fn reply(&self, text: &str) -> Result<(), ApiError> {
        host::reply_current(text)
    }

    /// Like [`Msg::reply`], returning the new message's id (copies this
    /// message's ids to the host and the new id back).
    pub fn reply_with_id(&self, text: &str) -> Result<MessageId, ApiError> {
        host::reply(self.session(), &self.chat, text, &self.as_ref())
    }

    /// Replies quoting this message and mentioning `mentions` (the text should
    /// contain `@<number>` for each).
    pub fn reply_mentioning(&self, text: &str, mentions: &[String]) -> Result<MessageId, ApiError> {
        let out = OutgoingText {
            text: text.to_owned(),
            quoted: Some(self.as_ref()),
            mentions: mentions.to_vec(),
        };
        host::send(self.session(), &self.chat, &out)
    }

    /// Sends `text` to the same chat without quoting.
    pub fn respond(&self, text: &str) -> Result<MessageId, ApiError> {
        host::send_text(self.session(), &self.chat, text)
    }

    /// Reacts to this message with `emoji`.
    pub fn react(&self, emoji: &str) -> Result<(), ApiError> {
        host::react(self.session(), &self.chat, &self.as_ref(), emoji)
    }

    /// Marks this message as read.
    pub fn mark_read(&self) -> Result<(), ApiError> {
        host::mark_read(self.session(), &self.chat, &self.sender, &[self.id.clone()])
    }

    /// Shows or clears the typing indicator in this chat.
    pub fn typing(&self, state: ChatStateKind) -> Result<(), ApiError> {
        host::set_typing(self.session(), &self.chat, state)
    }
}

/// Sends `text` to `chat` in `session`.
pub fn send_text(session: &str, chat: &str, text: &str) -> Result<MessageId, ApiError> {
    host::send_text(session, chat, text)
}

/// This account's own JID in `session`.
pub fn own_jid(session: &str) -> Result<String, ApiError> {
    host::own_jid(session)
}

/// The `user` part of a JID: `"4917012345:3@s.whatsapp.net"` → `"4917012345"`.
pub fn jid_user(jid: &str) -> &str {
    let user = jid.split('@').next().unwrap_or(jid);
    user.split(':').next().unwrap_or(user)
}

/// Sends a message with every option (quote, mentions) to `chat` in `session`.
pub fn send(session: &str, chat: &str, message: &OutgoingText) -> Result<MessageId, ApiError> {
    host::send(session, chat, message)
}
