//! Write wasmeow bot plugins in Rust.
//!
//! A plugin is a Wasm component of the `wasmeow:bot/plugin` world (`wit/world.wit`).
//! This crate hides the generated bindings behind a small facade: implement
//! [`Plugin`] (every method has a default), call [`export_plugin!`], and use the
//! helpers — [`Msg::reply`], [`Command`] parsing, typed [`kv`] with serde,
//! [`schedule`] helpers, [`log`] macros.
//!
//! ```ignore
//! use wasmeow_sdk::{export_plugin, Config, Msg, Plugin};
//!
//! struct Echo;
//!
//! impl Plugin for Echo {
//!     fn init(_config: &Config) -> Result<Self, String> {
//!         Ok(Echo)
//!     }
//!
//!     fn on_message(&mut self, msg: &Msg<'_>) {
//!         if let Some(cmd) = msg.command() {
//!             if cmd.is("ping") {
//!                 let _ = msg.reply("pong");
//!             }
//!         }
//!     }
//! }
//!
//! export_plugin!(Echo);
//! ```
//!
//! # The contract in one paragraph
//!
//! `handle` gets only what routes an event (its kind, a message's flags and text);
//! the rest is read from the host on demand, so a handler pays for the fields it
//! touches: [`Msg::text`], [`Msg::command`] and [`Msg::reply`] cost nothing or one
//! host call, while `msg.chat`, `msg.sender` and the other [`Message`] fields fetch
//! the whole message once, on first use.
//! The host calls `init` once per *instance* (it may run several instances of a
//! plugin, and makes a new one after a trap or a reload), so keep in-memory state a
//! cache and put what must survive in [`kv`]. Events of one chat arrive in order.
//! Each host call may return an [`ApiError`] (`Denied` when the operator did not
//! grant the capability in `bot.toml`); none of them traps. A panic traps the
//! instance: the host logs it, restarts the plugin with backoff, and quarantines it
//! if it keeps trapping.
//!
//! # Building
//!
//! `wasmeow plugin build DIR` (or `wasmeow_plugin_host::build::build_plugin`) builds
//! the crate for `wasm32-unknown-unknown` and turns the core module into a component
//! with `wit-component`. The crate must be a `cdylib`. It needs Rust ≥ 1.96 (for
//! wit-bindgen 0.63): rustup's `wasm32-unknown-unknown` target, or Debian's
//! `rustc-web`, `cargo-web` and `rust-web-src` packages (std is then rebuilt with
//! `-Zbuild-std`).

mod command;
pub mod config;
mod event;
pub mod groups;
pub mod kv;
pub mod log;
mod msg;
pub mod schedule;
pub mod time;

pub use command::Command;
pub use config::Config;
pub use event::Incoming;
pub use msg::{Msg, jid_user, own_jid, send, send_text};

/// The bindings `wit-bindgen` generates for `wit/`; use the re-exports instead.
#[doc(hidden)]
#[allow(missing_docs, clippy::all, unsafe_op_in_unsafe_fn)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        export_macro_name: "__export_world",
        pub_export_macro: true,
        default_bindings_module: "wasmeow_sdk::wit",
        additional_derives: [PartialEq],
    });
}

pub use wit::wasmeow::bot::messaging::{MessageRef, OutgoingText};
pub use wit::wasmeow::bot::types::{
    ApiError, BanInfo, ChatState, ChatStateKind, ConnectionState, Contact, Content, Event,
    EventBody, EventInfo, EventKind, GroupChange, GroupUpdate, Location, Media, MediaKind, Message,
    Poll, Presence, PresenceState, QuotedMessage, Reaction, Receipt, ReceiptKind, ScheduleFired,
    ServerError,
};

/// A session name (which linked WhatsApp account).
pub type SessionId = String;
/// A JID in string form, e.g. `491701234567@s.whatsapp.net`.
pub type Jid = String;
/// A message id.
pub type MessageId = String;

/// The errors of the SDK's convenience layers: a host error, or a value that did
/// not (de)serialize.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The host refused or failed the call.
    Api(ApiError),
    /// A stored or configured value was not the JSON the caller expected.
    Decode(String),
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Api(e) => f.write_str(&describe(e)),
            Error::Decode(why) => write!(f, "decode error: {why}"),
        }
    }
}

/// A one-line description of a host error, for logs and replies.
pub fn describe(e: &ApiError) -> String {
    match e {
        ApiError::Denied => "denied by the plugin's grant".to_owned(),
        ApiError::RateLimited(ms) => format!("rate limited, retry after {ms} ms"),
        ApiError::Invalid(why) => format!("invalid argument: {why}"),
        ApiError::NotFound => "not found".to_owned(),
        ApiError::ServerError(s) => format!("server error {}: {}", s.code, s.text),
        ApiError::Unavailable => "unavailable".to_owned(),
    }
}

/// A plugin. Implement [`Plugin::init`] and the `on_*` methods you need, then
/// call [`export_plugin!`] once in the crate.
///
/// [`Plugin::on_event`] receives every event and by default routes it to the
/// typed methods; override it to see events raw. Events are read lazily (see
/// [`Incoming`]): a message handler that only looks at the text and replies
/// never copies the rest of the message out of the host.
pub trait Plugin: Sized + 'static {
    /// Builds the instance from the plugin's `bot.toml` table. An `Err` rejects
    /// the instance (and, during a reload, the new version of the plugin).
    fn init(config: &Config) -> Result<Self, String>;

    /// Every event. The default calls the typed method for the event's kind:
    /// [`Plugin::on_message`] with a lazily read [`Msg`], the others with the
    /// event's data (read in one host call).
    fn on_event(&mut self, event: &Incoming) {
        if event.kind() == EventKind::Message {
            return self.on_message(&Msg::new(event));
        }
        let data = event.event();
        let session = data.session.as_str();
        match &data.body {
            EventBody::Message(m) => self.on_message(&Msg::with_message(event, m.clone())),
            EventBody::Receipt(r) => self.on_receipt(session, r),
            EventBody::GroupUpdate(u) => self.on_group_update(session, u),
            EventBody::Presence(p) => self.on_presence(session, p),
            EventBody::ChatState(c) => self.on_chat_state(session, c),
            EventBody::Connection(c) => self.on_connection(session, c),
            EventBody::ScheduleFired(f) => self.on_schedule(session, f),
        }
    }

    /// A message (including this account's own, see [`Message::from_me`]).
    fn on_message(&mut self, msg: &Msg<'_>) {
        let _ = msg;
    }

    /// A delivery or read receipt.
    fn on_receipt(&mut self, session: &str, receipt: &Receipt) {
        let _ = (session, receipt);
    }

    /// A group changed (members, admins, subject, settings).
    fn on_group_update(&mut self, session: &str, update: &GroupUpdate) {
        let _ = (session, update);
    }

    /// A user's presence changed.
    fn on_presence(&mut self, session: &str, presence: &Presence) {
        let _ = (session, presence);
    }

    /// Someone is typing or recording in a chat.
    fn on_chat_state(&mut self, session: &str, state: &ChatState) {
        let _ = (session, state);
    }

    /// The session's connection state changed.
    fn on_connection(&mut self, session: &str, state: &ConnectionState) {
        let _ = (session, state);
    }

    /// One of this plugin's scheduled jobs came due (see [`schedule`]).
    fn on_schedule(&mut self, session: &str, fired: &ScheduleFired) {
        let _ = (session, fired);
    }
}

/// Exports a [`Plugin`] implementation as the component's `init` and `handle`.
///
/// ```ignore
/// wasmeow_sdk::export_plugin!(MyPlugin);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __WasmeowExport;

        impl $crate::wit::Guest for __WasmeowExport {
            fn init(config: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                $crate::__private::init::<$plugin>(config)
            }

            fn handle(info: $crate::EventInfo) {
                $crate::__private::handle::<$plugin>(info)
            }
        }

        $crate::wit::__export_world!(__WasmeowExport with_types_in $crate::wit);
    };
}

/// Implementation details of [`export_plugin!`].
#[doc(hidden)]
pub mod __private {
    use core::any::Any;
    use core::cell::RefCell;

    use crate::{Config, EventInfo, Incoming, Plugin};

    std::thread_local! {
        // A component instance is single-threaded: this is the instance's plugin.
        static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    pub fn init<P: Plugin>(config: String) -> Result<(), String> {
        let config = Config::parse(&config)?;
        let plugin = P::init(&config)?;
        STATE.with(|s| *s.borrow_mut() = Some(Box::new(plugin)));
        Ok(())
    }

    pub fn handle<P: Plugin>(info: EventInfo) {
        let event = Incoming::new(info);
        STATE.with(|s| {
            let mut state = s.borrow_mut();
            match state.as_mut().and_then(|p| p.downcast_mut::<P>()) {
                Some(plugin) => plugin.on_event(&event),
                None => crate::log::error("handle called before a successful init"),
            }
        });
    }
}
