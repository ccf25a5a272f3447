//! The operator's control surface of a running host: what the admin API (and the CLI talking to
//! it) may ask of the runtime, as one trait, [`Control`].
//!
//! Contract: the runtime implements [`Control`]; the admin API only ever goes through it, so the
//! HTTP layer is tested against an in-memory fake and the runtime against the simulator. Every
//! value here is plain data (serde), and every refusal is a typed [`ControlError`] that maps to
//! one HTTP status.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// The state of one session, as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Opening the connection.
    Connecting,
    /// Unpaired: waiting for a QR scan (see [`SessionStatus::qr`]) or a pairing code.
    Qr,
    /// Paired and logged in.
    Connected,
    /// Disconnected; a reconnect is scheduled.
    Disconnected,
    /// Unlinked by the phone or the server; pairing again is required.
    LoggedOut,
    /// Temporarily banned, replaced by another connection, or the client is outdated.
    Failed,
    /// Stopped by the operator.
    Stopped,
}

impl SessionState {
    /// The snake_case name used on the wire and in metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            SessionState::Connecting => "connecting",
            SessionState::Qr => "qr",
            SessionState::Connected => "connected",
            SessionState::Disconnected => "disconnected",
            SessionState::LoggedOut => "logged_out",
            SessionState::Failed => "failed",
            SessionState::Stopped => "stopped",
        }
    }
}

/// One session's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// The session's name (from bot.toml or the create call).
    pub name: String,
    /// Its state.
    pub state: SessionState,
    /// Our device JID once paired.
    pub jid: Option<String>,
    /// The current QR code string while `state` is `qr` (render it as a QR code to scan).
    pub qr: Option<String>,
    /// The latest pairing code, when the phone-number flow was requested.
    pub pair_code: Option<String>,
    /// Why the session is disconnected / logged out / failed, if known.
    pub reason: Option<String>,
    /// Messages waiting in the session's persistent outbox.
    pub outbox_depth: u64,
}

/// A session to create at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSession {
    /// Letters, digits, `-`, `_`; unique.
    pub name: String,
    /// WebSocket URL (default: production WhatsApp).
    #[serde(default)]
    pub server: Option<String>,
    /// Noise certificate root override, 64 hex digits (simulator only).
    #[serde(default)]
    pub root_key: Option<String>,
    /// Push name.
    #[serde(default)]
    pub push_name: Option<String>,
}

/// A loaded plugin, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// Loaded version counter (bumps on every successful reload).
    pub version: u64,
    /// `running`, `restarting` or `quarantined`.
    pub health: String,
    /// Events handled so far.
    pub handled: u64,
    /// Traps and deadline hits so far.
    pub failures: u64,
}

/// What a successful send returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The message id.
    pub id: String,
}

/// A lifecycle or message event for the SSE stream and webhooks, in the vocabulary operators of
/// multi-session WhatsApp services already use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostEvent {
    /// The session it concerns.
    pub session: String,
    /// `qr`, `authenticated`, `disconnected`, `auth_failure`, `logged_out`, `message`, or
    /// `session_added` / `session_removed`.
    pub event: String,
    /// Unix milliseconds.
    pub at_ms: u64,
    /// Event-specific data (the QR string, the message, the reason…).
    pub data: serde_json::Value,
}

/// One campaign run's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRunStatus {
    /// The schedule slot it serves (Unix ms; for a manual run, when it was started).
    pub slot_ms: i64,
    /// When it started (Unix ms).
    pub started_ms: i64,
    /// When it finished or was cancelled.
    pub finished_ms: Option<i64>,
    /// Whether an operator cancelled it.
    pub cancelled: bool,
    /// Whether an operator paused it.
    pub paused: bool,
    /// Recipients whose message was queued in the session's outbox.
    pub queued: usize,
    /// Recipients that failed (template, refused by the server).
    pub failed: usize,
    /// Recipients skipped because they opted out.
    pub opted_out: usize,
    /// Recipients not handled yet.
    pub remaining: usize,
    /// When the next message may go out (Unix ms), while running.
    pub next_send_ms: Option<i64>,
}

/// A campaign from bot.toml, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignStatus {
    /// Its name.
    pub name: String,
    /// The session sending it.
    pub session: String,
    /// Whether it runs on its schedule.
    pub enabled: bool,
    /// The cron expression and time zone.
    pub schedule: String,
    /// The next scheduled start (Unix ms).
    pub next_run_ms: Option<i64>,
    /// Number of recipients.
    pub recipients: usize,
    /// The current run, or the last one.
    pub run: Option<CampaignRunStatus>,
    /// Scheduled starts skipped (previous run still going, or missed while the host was down).
    pub skipped_slots: u64,
}

/// What an operator can do to a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignCommand {
    /// Start a run now (refused while one is going).
    Run,
    /// Pause the running run.
    Pause,
    /// Resume a paused run.
    Resume,
    /// Cancel the running run.
    Cancel,
}

impl CampaignCommand {
    /// Parses the name used in the admin API path.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "run" => Self::Run,
            "pause" => Self::Pause,
            "resume" => Self::Resume,
            "cancel" => Self::Cancel,
            _ => return None,
        })
    }
}

/// Why the runtime refused an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No session / plugin with that name (HTTP 404).
    #[error("{0} not found")]
    NotFound(String),
    /// A session with that name already exists (HTTP 409).
    #[error("{0} already exists")]
    Conflict(String),
    /// The request is malformed; the message names the field (HTTP 400).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Admission control refuses new sessions: memory or CPU above the high-water mark (HTTP 503).
    #[error("admission refused: {0}")]
    Overloaded(String),
    /// The session is not connected, or the operation timed out (HTTP 503).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

/// The runtime, as the admin API sees it.
#[async_trait]
pub trait Control: Send + Sync + 'static {
    /// Every session, sorted by name.
    fn sessions(&self) -> Vec<SessionStatus>;
    /// One session.
    fn session(&self, name: &str) -> Option<SessionStatus>;
    /// Creates and starts a session (admission control applies).
    async fn create_session(&self, spec: NewSession) -> Result<SessionStatus, ControlError>;
    /// Stops a session and deletes its store namespace (with `logout`, unlinks it first).
    async fn remove_session(&self, name: &str, logout: bool) -> Result<(), ControlError>;
    /// Unlinks the device from the phone; the session then shows a fresh QR.
    async fn logout(&self, name: &str) -> Result<(), ControlError>;
    /// Starts the phone-number pairing flow; returns the code to type on the phone (`XXXX-XXXX`).
    async fn pair_code(&self, name: &str, phone: &str) -> Result<String, ControlError>;
    /// Sends a text message through the session's outbox (rate limits apply).
    async fn send_text(&self, name: &str, chat: &str, text: &str) -> Result<Sent, ControlError>;
    /// Loaded plugins, sorted by name.
    fn plugins(&self) -> Vec<PluginInfo>;
    /// Reloads a plugin from its file now.
    async fn reload_plugin(&self, name: &str) -> Result<PluginInfo, ControlError>;
    /// Lifecycle and message events from now on.
    fn subscribe(&self) -> broadcast::Receiver<HostEvent>;
    /// Prometheus text exposition of the host's metrics.
    fn metrics(&self) -> String;
    /// Whether the host is ready (store open, plugins loaded, not shutting down).
    fn ready(&self) -> bool;
    /// Campaigns from bot.toml, sorted by name.
    async fn campaigns(&self) -> Vec<CampaignStatus> {
        Vec::new()
    }
    /// Runs, pauses, resumes or cancels a campaign; returns its new status.
    async fn campaign(
        &self,
        name: &str,
        command: CampaignCommand,
    ) -> Result<CampaignStatus, ControlError> {
        let _ = command;
        Err(ControlError::NotFound(format!("campaign {name:?}")))
    }
}
