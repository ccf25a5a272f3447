//! [`Msg`]: a received message together with its session, and the actions a
//! handler usually takes on it.

use core::ops::Deref;

use crate::wit::wasmeow::bot::messaging as host;
use crate::{
    ApiError, ChatStateKind, Command, Content, Message, MessageId, MessageRef, OutgoingText,
};

/// A message and the session it arrived in. Dereferences to [`Message`].
#[derive(Debug, Clone, Copy)]
pub struct Msg<'a> {
    /// The session the message arrived in.
    pub session: &'a str,
    /// The message.
    pub message: &'a Message,
}

impl<'a> Deref for Msg<'a> {
    type Target = Message;

    fn deref(&self) -> &Message {
        self.message
    }
}

impl<'a> Msg<'a> {
    /// Pairs a message with its session.
    pub fn new(session: &'a str, message: &'a Message) -> Self {
        Msg { session, message }
    }

    /// The text of a text message, or the caption of a media message.
    pub fn text(&self) -> Option<&'a str> {
        match &self.message.content {
            Content::Text(t) => Some(t),
            Content::Media(m) => m.caption.as_deref(),
            _ => None,
        }
    }

    /// The `!command` in the text, if the text is one. Messages this account sent
    /// itself are never commands (so the bot cannot trigger itself).
    pub fn command(&self) -> Option<Command<'a>> {
        if self.message.from_me {
            return None;
        }
        Command::parse(self.text()?)
    }

    /// A reference to this message, for quoting or reacting.
    pub fn as_ref(&self) -> MessageRef {
        MessageRef {
            id: self.message.id.clone(),
            sender: self.message.sender.clone(),
        }
    }

    /// Replies in the same chat, quoting this message.
    pub fn reply(&self, text: &str) -> Result<MessageId, ApiError> {
        host::reply(self.session, &self.message.chat, text, &self.as_ref())
    }

    /// Replies quoting this message and mentioning `mentions` (the text should
    /// contain `@<number>` for each).
    pub fn reply_mentioning(&self, text: &str, mentions: &[String]) -> Result<MessageId, ApiError> {
        let out = OutgoingText {
            text: text.to_owned(),
            quoted: Some(self.as_ref()),
            mentions: mentions.to_vec(),
        };
        host::send(self.session, &self.message.chat, &out)
    }

    /// Sends `text` to the same chat without quoting.
    pub fn respond(&self, text: &str) -> Result<MessageId, ApiError> {
        host::send_text(self.session, &self.message.chat, text)
    }

    /// Reacts to this message with `emoji`.
    pub fn react(&self, emoji: &str) -> Result<(), ApiError> {
        host::react(self.session, &self.message.chat, &self.as_ref(), emoji)
    }

    /// Marks this message as read.
    pub fn mark_read(&self) -> Result<(), ApiError> {
        host::mark_read(
            self.session,
            &self.message.chat,
            &self.message.sender,
            &[self.message.id.clone()],
        )
    }

    /// Shows or clears the typing indicator in this chat.
    pub fn typing(&self, state: ChatStateKind) -> Result<(), ApiError> {
        host::set_typing(self.session, &self.message.chat, state)
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
