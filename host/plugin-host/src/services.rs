//! What the host does on a plugin's behalf: the traits the rest of wasmeow
//! implements. [`HostServices`] is the session engine (WhatsApp actions),
//! [`KvBackend`] the plugin key-value store, [`SchedulerBackend`] the job
//! scheduler. In-memory implementations live in [`crate::memory`] and
//! [`crate::testing`].
//!
//! Grants are checked before these are called, and arguments have passed the
//! host's size limits; implementations add their own rules (rate limits, WhatsApp's
//! answers) and report them as [`ApiError`]s. Every method gets the calling
//! plugin's name (`plugin`), for attribution and per-plugin limits.

use async_trait::async_trait;

use crate::types::{
    ApiError, ChatStateKind, GroupInfo, Job, MessageRef, OutgoingText, ParticipantOutcome, Trigger,
};

/// A participants change (`groups.*-participants`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParticipantAction {
    /// Add users to the group.
    Add,
    /// Remove users from the group.
    Remove,
    /// Make users admins.
    Promote,
    /// Take admin rights away.
    Demote,
}

/// A group setting change (`groups.set-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSetting {
    /// A new subject.
    Subject(String),
    /// A new description, or none to remove it.
    Description(Option<String>),
    /// Announce mode on or off.
    Announce(bool),
    /// Locked mode on or off.
    Locked(bool),
}

/// The session engine's side of the plugin API.
#[async_trait]
pub trait HostServices: Send + Sync + 'static {
    /// Sends a text message; returns its id.
    async fn send_text(
        &self,
        plugin: &str,
        session: &str,
        chat: &str,
        message: OutgoingText,
    ) -> Result<String, ApiError>;

    /// Reacts to a message (the empty emoji removes the reaction).
    async fn react(
        &self,
        plugin: &str,
        session: &str,
        chat: &str,
        target: MessageRef,
        emoji: String,
    ) -> Result<(), ApiError>;

    /// Sends read receipts.
    async fn mark_read(
        &self,
        plugin: &str,
        session: &str,
        chat: &str,
        sender: &str,
        ids: Vec<String>,
    ) -> Result<(), ApiError>;

    /// Sets this account's chat state in `chat`.
    async fn set_typing(
        &self,
        plugin: &str,
        session: &str,
        chat: &str,
        state: ChatStateKind,
    ) -> Result<(), ApiError>;

    /// This account's JID in `session`.
    async fn own_jid(&self, plugin: &str, session: &str) -> Result<String, ApiError>;

    /// Creates a group.
    async fn group_create(
        &self,
        plugin: &str,
        session: &str,
        subject: String,
        participants: Vec<String>,
    ) -> Result<GroupInfo, ApiError>;

    /// A group's metadata.
    async fn group_info(
        &self,
        plugin: &str,
        session: &str,
        group: &str,
    ) -> Result<GroupInfo, ApiError>;

    /// Adds, removes, promotes or demotes participants.
    async fn group_participants(
        &self,
        plugin: &str,
        session: &str,
        group: &str,
        action: ParticipantAction,
        users: Vec<String>,
    ) -> Result<Vec<ParticipantOutcome>, ApiError>;

    /// Changes a group setting.
    async fn group_setting(
        &self,
        plugin: &str,
        session: &str,
        group: &str,
        setting: GroupSetting,
    ) -> Result<(), ApiError>;

    /// The group's invite link; with `revoke`, revokes it first and returns the
    /// new one.
    async fn group_invite_link(
        &self,
        plugin: &str,
        session: &str,
        group: &str,
        revoke: bool,
    ) -> Result<String, ApiError>;

    /// Joins a group by invite link or code; returns the group's JID.
    async fn group_join(
        &self,
        plugin: &str,
        session: &str,
        invite: String,
    ) -> Result<String, ApiError>;

    /// Leaves a group.
    async fn group_leave(&self, plugin: &str, session: &str, group: &str) -> Result<(), ApiError>;
}

/// Plugin-private persistent key-value storage. `namespace` is the plugin's name;
/// implementations must keep namespaces apart.
#[async_trait]
pub trait KvBackend: Send + Sync + 'static {
    /// The value under `key`.
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, ApiError>;
    /// Stores a value.
    async fn set(&self, namespace: &str, key: &str, value: Vec<u8>) -> Result<(), ApiError>;
    /// Deletes a key; returns whether it existed.
    async fn delete(&self, namespace: &str, key: &str) -> Result<bool, ApiError>;
    /// Up to `limit` keys starting with `prefix`, ascending.
    async fn list(
        &self,
        namespace: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, ApiError>;
    /// Replaces the value with `new` (`None` deletes) iff it currently equals
    /// `expected` (`None` = absent), atomically; returns whether it did.
    async fn compare_and_swap(
        &self,
        namespace: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, ApiError>;
}

/// Durable jobs. `owner` is the plugin's name: a plugin only sees and cancels its
/// own jobs, and the scheduler delivers a due job as a `schedule-fired` event with
/// [`crate::PluginHost::dispatch_to`]`(owner, ..)`.
#[async_trait]
pub trait SchedulerBackend: Send + Sync + 'static {
    /// Stores a job and returns its id. Invalid cron expressions or time zones are
    /// `ApiError::Invalid`.
    async fn schedule(
        &self,
        owner: &str,
        session: &str,
        trigger: Trigger,
        payload: String,
    ) -> Result<String, ApiError>;
    /// Cancels one of `owner`'s jobs (`NotFound` if it has none with that id).
    async fn cancel(&self, owner: &str, id: &str) -> Result<(), ApiError>;
    /// `owner`'s jobs.
    async fn list(&self, owner: &str) -> Result<Vec<Job>, ApiError>;
}
