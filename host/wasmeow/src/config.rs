//! `bot.toml`: the operator's configuration, parsed in two stages.
//!
//! Stage one deserializes the file into `Raw*` structs with serde (unknown keys are errors, and every
//! value keeps its byte span). Stage two, [`Config::from_raw`], validates and resolves those values into
//! the typed [`Config`] the rest of the binary uses. Every error, from either stage, is a [`ConfigError`]
//! that names the file, the line and column, the key (`session[1].server`) and what is allowed — the
//! sample `bot.toml` at the repository root documents every option.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_spanned::Spanned;

mod campaigns;

pub use campaigns::{CampaignConfig, MAX_RECIPIENTS};

/// A configuration problem, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The dotted key path, e.g. `session[0].server`; empty for syntax errors.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": `{}`: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------------------------
// Stage one: raw, spanned serde structs. Field names are the TOML keys.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    store: Option<RawStore>,
    #[serde(default)]
    admin: Option<RawAdmin>,
    #[serde(default)]
    logging: Option<RawLogging>,
    #[serde(default)]
    plugins: Option<RawPlugins>,
    #[serde(default)]
    plugin: Vec<RawPlugin>,
    #[serde(default)]
    session: Vec<RawSession>,
    #[serde(default)]
    admission: Option<RawAdmission>,
    #[serde(default)]
    campaign: Vec<campaigns::RawCampaign>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<Spanned<String>>,
    key_env: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    passphrase_env: Option<Spanned<String>>,
    argon2_memory_kib: Option<Spanned<u32>>,
    argon2_iterations: Option<Spanned<u32>>,
    argon2_parallelism: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
    allow_non_loopback: Option<bool>,
    webhook_url: Option<Spanned<String>>,
    webhook_secret_env: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogging {
    format: Option<Spanned<String>>,
    level: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugins {
    dir: Option<Spanned<String>>,
    watch: Option<bool>,
    cache_dir: Option<Spanned<String>>,
    #[serde(default)]
    defaults: Option<RawLimits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    deadline_ms: Option<Spanned<u64>>,
    fuel: Option<Spanned<u64>>,
    memory_mib: Option<Spanned<u64>>,
    max_in_flight: Option<Spanned<u32>>,
    instances: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    name: Spanned<String>,
    file: Option<Spanned<String>>,
    #[serde(default)]
    grants: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    sessions: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    chats: Option<Spanned<Vec<Spanned<String>>>>,
    group_admin: Option<bool>,
    enabled: Option<bool>,
    #[serde(default)]
    limits: Option<RawLimits>,
    #[serde(default)]
    config: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    name: Spanned<String>,
    server: Option<Spanned<String>>,
    root_key: Option<Spanned<String>>,
    wa_version: Option<Spanned<String>>,
    push_name: Option<Spanned<String>>,
    device_name: Option<Spanned<String>>,
    #[serde(default)]
    rate: Option<RawRate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    per_minute: Option<Spanned<u32>>,
    per_hour: Option<Spanned<u32>>,
    per_chat_per_minute: Option<Spanned<u32>>,
    new_chats_per_day: Option<Spanned<u32>>,
    min_delay_ms: Option<Spanned<u64>>,
    jitter_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmission {
    high_water_percent: Option<Spanned<u8>>,
    low_water_percent: Option<Spanned<u8>>,
}

// ---------------------------------------------------------------------------------------------
// Stage two: the validated configuration.
// ---------------------------------------------------------------------------------------------

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the encrypted store lives and how its key is obtained.
    pub store: StoreConfig,
    /// The admin API, if enabled.
    pub admin: Option<AdminConfig>,
    /// Log output.
    pub logging: LoggingConfig,
    /// The plugin folder and every configured plugin.
    pub plugins: PluginsConfig,
    /// WhatsApp sessions (accounts) this host runs.
    pub sessions: Vec<SessionConfig>,
    /// Admission control for new sessions.
    pub admission: AdmissionConfig,
    /// Cron-scheduled campaigns.
    pub campaigns: Vec<CampaignConfig>,
}

/// Store location and key source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The redb file.
    pub path: PathBuf,
    /// Where the key-encryption key comes from, in the documented order of precedence.
    pub key: KeySource,
}

/// The source of the store's key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An environment variable holding a 32-byte key (hex or base64).
    Env(String),
    /// A file holding the key; must not be readable by group or others.
    File(PathBuf),
    /// A passphrase read from an environment variable, stretched with Argon2id.
    Passphrase {
        /// The environment variable holding the passphrase.
        env: String,
        /// Argon2id parameters for new files (existing files keep theirs).
        argon2: Argon2Params,
    },
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        // OWASP's first recommended Argon2id configuration (m=19 MiB, t=2, p=1).
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// The admin HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Listen address; loopback unless `allow_non_loopback` was set.
    pub listen: SocketAddr,
    /// The environment variable holding the bearer token.
    pub token_env: String,
    /// Optional webhook receiving signed lifecycle and message events.
    pub webhook: Option<WebhookConfig>,
}

/// A signed webhook target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The http(s) URL events are POSTed to.
    pub url: String,
    /// The environment variable holding the HMAC-SHA256 secret.
    pub secret_env: String,
}

/// Log output settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingConfig {
    /// Human-readable or JSON lines.
    pub format: LogFormat,
    /// A tracing filter directive such as `info` or `wasmeow=debug,info`.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The plugin folder and per-plugin settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginsConfig {
    /// Folder scanned (and watched) for `*.wasm` components.
    pub dir: PathBuf,
    /// Hot reload on file changes.
    pub watch: bool,
    /// Compilation cache folder.
    pub cache_dir: PathBuf,
    /// Limits for plugins that set none.
    pub defaults: Limits,
    /// Plugins with explicit grants; a `.wasm` in `dir` without an entry is not loaded.
    pub plugins: Vec<PluginConfig>,
}

/// Resource limits for one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline per call, enforced with epochs.
    pub deadline_ms: u64,
    /// Optional fuel per call.
    pub fuel: Option<u64>,
    /// Linear memory ceiling.
    pub memory_mib: u64,
    /// Events queued or running before the host sheds load for this plugin.
    pub max_in_flight: u32,
    /// Instances in the plugin's pool (chats run in parallel up to this).
    pub instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline_ms: 100,
            fuel: None,
            memory_mib: 64,
            max_in_flight: 1024,
            instances: 2,
        }
    }
}

/// A capability a plugin can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grant {
    /// Send, reply, react, mark read, typing.
    Messaging,
    /// Group management (admin actions also need `group_admin = true`).
    Groups,
    /// One-shot and cron jobs.
    Scheduler,
    /// Plugin-private key-value storage.
    Kv,
    /// Logging into the host log.
    Log,
    /// Reading its own `[plugin.config]` table.
    Config,
    /// Wall-clock time.
    Clock,
    /// Random bytes.
    Random,
}

impl Grant {
    /// Every grant, in the order the sample documents them.
    pub const ALL: [Grant; 8] = [
        Grant::Messaging,
        Grant::Groups,
        Grant::Scheduler,
        Grant::Kv,
        Grant::Log,
        Grant::Config,
        Grant::Clock,
        Grant::Random,
    ];

    /// The name used in `bot.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Grant::Messaging => "messaging",
            Grant::Groups => "groups",
            Grant::Scheduler => "scheduler",
            Grant::Kv => "kv",
            Grant::Log => "log",
            Grant::Config => "config",
            Grant::Clock => "clock",
            Grant::Random => "random",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == s)
    }
}

/// Which sessions or chats a plugin may see and act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything (`["*"]`).
    All,
    /// Only these names or JIDs.
    Only(BTreeSet<String>),
}

/// One plugin's grants, limits and private configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// Plugin name (also its kv namespace and log tag).
    pub name: String,
    /// The component file, relative to the plugins folder unless absolute.
    pub file: PathBuf,
    /// Granted host interfaces.
    pub grants: BTreeSet<Grant>,
    /// Sessions whose events it receives and on whose behalf it acts.
    pub sessions: Scope,
    /// Chats (JIDs) it may see and act in.
    pub chats: Scope,
    /// Whether group admin actions (add/remove/promote/demote/settings) are allowed.
    pub group_admin: bool,
    /// Whether it is loaded.
    pub enabled: bool,
    /// Resource limits.
    pub limits: Limits,
    /// Its `[plugin.config]` table, handed to `init`.
    pub config: toml::Table,
}

/// One WhatsApp account run by this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Operator-chosen name (letters, digits, `-`, `_`).
    pub name: String,
    /// WebSocket URL of the server.
    pub server: String,
    /// Noise certificate root key override (32 bytes), for the simulator.
    pub root_key: Option<[u8; 32]>,
    /// The WhatsApp Web version sent in the ClientPayload.
    pub wa_version: [u32; 3],
    /// Push name shown to contacts.
    pub push_name: String,
    /// Name shown in the phone's linked-devices list.
    pub device_name: String,
    /// Host-enforced sending limits.
    pub rate: RateConfig,
}

/// Host-enforced sending limits for one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    /// Messages per minute for the whole session.
    pub per_minute: u32,
    /// Messages per hour for the whole session.
    pub per_hour: u32,
    /// Messages per minute into one chat.
    pub per_chat_per_minute: u32,
    /// Chats that never messaged us first, per day.
    pub new_chats_per_day: u32,
    /// Minimum spacing between two sends.
    pub min_delay_ms: u64,
    /// Random extra delay added to each send, up to this.
    pub jitter_ms: u64,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            per_minute: 30,
            per_hour: 600,
            per_chat_per_minute: 10,
            new_chats_per_day: 50,
            min_delay_ms: 250,
            jitter_ms: 750,
        }
    }
}

/// Admission control: stop accepting new sessions above the high-water mark of memory or CPU use,
/// accept again once both are below the low-water mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Percent of memory or CPU above which new sessions are refused.
    pub high_water_percent: u8,
    /// Percent both must fall below before sessions are accepted again.
    pub low_water_percent: u8,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            high_water_percent: 90,
            low_water_percent: 80,
        }
    }
}

/// The production WhatsApp Web WebSocket URL.
pub const DEFAULT_SERVER: &str = "wss://web.whatsapp.com/ws/chat";
/// The WhatsApp Web version sent when a session sets none.
pub const DEFAULT_WA_VERSION: [u32; 3] = [2, 3000, 1045649367];

// ---------------------------------------------------------------------------------------------
// Parsing and validation.
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: None,
            column: None,
            key: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates configuration text; `path` names the file in errors and anchors
    /// relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_col(text, s.start))
                .map_or((None, None), |(l, c)| (Some(l), Some(c)));
            ConfigError {
                file: path.to_owned(),
                line,
                column,
                key: String::new(),
                message: e.message().trim().to_string(),
            }
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let v = Validator {
            file: path,
            text,
            base: &base,
        };
        v.config(raw)
    }
}

struct Validator<'a> {
    file: &'a Path,
    text: &'a str,
    base: &'a Path,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Validator<'_> {
    fn err<T>(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        let (line, column) = span
            .map(|s| line_col(self.text, s.start))
            .map_or((None, None), |(l, c)| (Some(l), Some(c)));
        Err(ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            key: key.into(),
            message: message.into(),
        })
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }

    fn env_name(&self, v: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
        let s = v.get_ref();
        let ok = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit());
        if ok {
            Ok(s.clone())
        } else {
            self.err(
                Some(v.span()),
                key,
                format!("must name an environment variable (A-Z, 0-9, _), got {s:?}"),
            )
        }
    }

    fn positive<T: Copy + PartialOrd + Default + fmt::Display>(
        &self,
        v: &Spanned<T>,
        key: &str,
        max: T,
    ) -> Result<T, ConfigError> {
        let x = *v.get_ref();
        if x > T::default() && x <= max {
            Ok(x)
        } else {
            self.err(
                Some(v.span()),
                key,
                format!("must be between 1 and {max}, got {x}"),
            )
        }
    }

    fn config(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let store = self.store(raw.store)?;
        let admin = raw.admin.map(|a| self.admin(a)).transpose()?;
        let logging = self.logging(raw.logging)?;
        let sessions = self.sessions(raw.session)?;
        let plugins = self.plugins(raw.plugins, raw.plugin, &sessions)?;
        let admission = self.admission(raw.admission)?;
        let campaigns = self.campaigns(raw.campaign, &sessions)?;
        Ok(Config {
            store,
            admin,
            logging,
            plugins,
            sessions,
            admission,
            campaigns,
        })
    }

    fn store(&self, raw: Option<RawStore>) -> Result<StoreConfig, ConfigError> {
        let Some(raw) = raw else {
            return Ok(StoreConfig {
                path: self.path("wasmeow.redb"),
                key: KeySource::Env("WASMEOW_STORE_KEY".into()),
            });
        };
        let path = raw
            .path
            .as_ref()
            .map_or_else(|| self.path("wasmeow.redb"), |p| self.path(p.get_ref()));
        let sources = [
            raw.key_env.is_some(),
            raw.key_file.is_some(),
            raw.passphrase_env.is_some(),
        ];
        if sources.iter().filter(|x| **x).count() > 1 {
            let span = [&raw.key_env, &raw.key_file, &raw.passphrase_env]
                .into_iter()
                .flatten()
                .nth(1)
                .map(Spanned::span);
            return self.err(
                span,
                "store",
                "set exactly one of key_env, key_file or passphrase_env",
            );
        }
        let mut argon2 = Argon2Params::default();
        if let Some(m) = &raw.argon2_memory_kib {
            argon2.memory_kib = self.positive(m, "store.argon2_memory_kib", 4 * 1024 * 1024)?;
            if argon2.memory_kib < 8 {
                return self.err(
                    Some(m.span()),
                    "store.argon2_memory_kib",
                    "must be at least 8 KiB",
                );
            }
        }
        if let Some(t) = &raw.argon2_iterations {
            argon2.iterations = self.positive(t, "store.argon2_iterations", 64)?;
        }
        if let Some(p) = &raw.argon2_parallelism {
            argon2.parallelism = self.positive(p, "store.argon2_parallelism", 64)?;
        }
        let key = if let Some(e) = &raw.key_env {
            KeySource::Env(self.env_name(e, "store.key_env")?)
        } else if let Some(f) = &raw.key_file {
            if f.get_ref().is_empty() {
                return self.err(Some(f.span()), "store.key_file", "must be a file path");
            }
            KeySource::File(self.path(f.get_ref()))
        } else if let Some(p) = &raw.passphrase_env {
            KeySource::Passphrase {
                env: self.env_name(p, "store.passphrase_env")?,
                argon2,
            }
        } else {
            KeySource::Env("WASMEOW_STORE_KEY".into())
        };
        Ok(StoreConfig { path, key })
    }

    fn admin(&self, raw: RawAdmin) -> Result<AdminConfig, ConfigError> {
        let listen = match &raw.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 8787)),
            Some(l) => l.get_ref().parse::<SocketAddr>().or_else(|_| {
                self.err(
                    Some(l.span()),
                    "admin.listen",
                    format!(
                        "must be an IP:port address such as 127.0.0.1:8787, got {:?}",
                        l.get_ref()
                    ),
                )
            })?,
        };
        if !listen.ip().is_loopback() && raw.allow_non_loopback != Some(true) {
            let span = raw.listen.as_ref().map(Spanned::span);
            return self.err(span, "admin.listen", "is not a loopback address; set admin.allow_non_loopback = true to expose the admin API");
        }
        let token_env = match &raw.token_env {
            Some(t) => self.env_name(t, "admin.token_env")?,
            None => "WASMEOW_ADMIN_TOKEN".into(),
        };
        let webhook = match (&raw.webhook_url, &raw.webhook_secret_env) {
            (None, None) => None,
            (Some(u), s) => {
                let url = u.get_ref();
                if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
                    return self.err(
                        Some(u.span()),
                        "admin.webhook_url",
                        format!("must be an http:// or https:// URL, got {url:?}"),
                    );
                }
                let secret_env = match s {
                    Some(s) => self.env_name(s, "admin.webhook_secret_env")?,
                    None => return self.err(
                        Some(u.span()),
                        "admin.webhook_secret_env",
                        "is required with webhook_url: webhooks are always signed (HMAC-SHA256)",
                    ),
                };
                Some(WebhookConfig {
                    url: url.clone(),
                    secret_env,
                })
            }
            (None, Some(s)) => {
                return self.err(
                    Some(s.span()),
                    "admin.webhook_secret_env",
                    "has no webhook_url to sign for",
                );
            }
        };
        Ok(AdminConfig {
            listen,
            token_env,
            webhook,
        })
    }

    fn logging(&self, raw: Option<RawLogging>) -> Result<LoggingConfig, ConfigError> {
        let mut out = LoggingConfig {
            format: LogFormat::Human,
            level: "info".into(),
        };
        let Some(raw) = raw else { return Ok(out) };
        if let Some(f) = &raw.format {
            out.format = match f.get_ref().as_str() {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                other => {
                    return self.err(
                        Some(f.span()),
                        "logging.format",
                        format!("must be \"human\" or \"json\", got {other:?}"),
                    );
                }
            };
        }
        if let Some(l) = &raw.level {
            let s = l.get_ref();
            let valid = !s.is_empty()
                && s.split(',').all(|d| {
                    let level = d.rsplit('=').next().unwrap_or("");
                    matches!(level, "trace" | "debug" | "info" | "warn" | "error" | "off")
                });
            if !valid {
                return self.err(Some(l.span()), "logging.level", format!("must be a level (trace, debug, info, warn, error, off) or target=level list, got {s:?}"));
            }
            out.level = s.clone();
        }
        Ok(out)
    }

    fn limits(
        &self,
        raw: Option<&RawLimits>,
        base: Limits,
        key: &str,
    ) -> Result<Limits, ConfigError> {
        let mut out = base;
        let Some(raw) = raw else { return Ok(out) };
        if let Some(v) = &raw.deadline_ms {
            out.deadline_ms = self.positive(v, &format!("{key}.deadline_ms"), 60_000)?;
        }
        if let Some(v) = &raw.fuel {
            out.fuel = Some(self.positive(v, &format!("{key}.fuel"), u64::MAX)?);
        }
        if let Some(v) = &raw.memory_mib {
            out.memory_mib = self.positive(v, &format!("{key}.memory_mib"), 4096)?;
        }
        if let Some(v) = &raw.max_in_flight {
            out.max_in_flight = self.positive(v, &format!("{key}.max_in_flight"), 1_000_000)?;
        }
        if let Some(v) = &raw.instances {
            out.instances = self.positive(v, &format!("{key}.instances"), 64)?;
        }
        Ok(out)
    }

    fn scope(
        &self,
        raw: &Option<Spanned<Vec<Spanned<String>>>>,
        key: &str,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Result<Scope, ConfigError> {
        let Some(list) = raw else {
            return Ok(Scope::All);
        };
        if list.get_ref().is_empty() {
            return self.err(
                Some(list.span()),
                key,
                "is empty: list names, or [\"*\"] for all",
            );
        }
        if list.get_ref().iter().any(|s| s.get_ref() == "*") {
            if list.get_ref().len() > 1 {
                return self.err(
                    Some(list.span()),
                    key,
                    "\"*\" already means all; list nothing else beside it",
                );
            }
            return Ok(Scope::All);
        }
        let mut set = BTreeSet::new();
        for (i, item) in list.get_ref().iter().enumerate() {
            if let Err(msg) = check(item.get_ref()) {
                return self.err(Some(item.span()), format!("{key}[{i}]"), msg);
            }
            if !set.insert(item.get_ref().clone()) {
                return self.err(
                    Some(item.span()),
                    format!("{key}[{i}]"),
                    format!("{:?} is listed twice", item.get_ref()),
                );
            }
        }
        Ok(Scope::Only(set))
    }

    fn plugins(
        &self,
        raw: Option<RawPlugins>,
        list: Vec<RawPlugin>,
        sessions: &[SessionConfig],
    ) -> Result<PluginsConfig, ConfigError> {
        let dir = raw
            .as_ref()
            .and_then(|r| r.dir.as_ref())
            .map_or_else(|| self.path("plugins/dist"), |d| self.path(d.get_ref()));
        let cache_dir = raw
            .as_ref()
            .and_then(|r| r.cache_dir.as_ref())
            .map_or_else(|| self.path(".wasmeow-cache"), |d| self.path(d.get_ref()));
        let watch = raw.as_ref().and_then(|r| r.watch).unwrap_or(true);
        let defaults = self.limits(
            raw.as_ref().and_then(|r| r.defaults.as_ref()),
            Limits::default(),
            "plugins.defaults",
        )?;
        let session_names: BTreeSet<&str> = sessions.iter().map(|s| s.name.as_str()).collect();
        let mut seen = BTreeMap::new();
        let mut plugins = Vec::with_capacity(list.len());
        for (i, p) in list.into_iter().enumerate() {
            let key = format!("plugin[{i}]");
            let name = p.name.get_ref().clone();
            if let Err(msg) = check_name(&name) {
                return self.err(Some(p.name.span()), format!("{key}.name"), msg);
            }
            if let Some(prev) = seen.insert(name.clone(), i) {
                return self.err(
                    Some(p.name.span()),
                    format!("{key}.name"),
                    format!("{name:?} is already used by plugin[{prev}]"),
                );
            }
            let file = match &p.file {
                Some(f) if f.get_ref().ends_with(".wasm") => PathBuf::from(f.get_ref()),
                Some(f) => {
                    return self.err(
                        Some(f.span()),
                        format!("{key}.file"),
                        format!("must be a .wasm component file, got {:?}", f.get_ref()),
                    );
                }
                None => PathBuf::from(format!("{name}.wasm")),
            };
            let file = if file.is_absolute() {
                file
            } else {
                dir.join(file)
            };
            let mut grants = BTreeSet::new();
            match &p.grants {
                None => {
                    grants.extend([
                        Grant::Messaging,
                        Grant::Log,
                        Grant::Config,
                        Grant::Clock,
                        Grant::Random,
                    ]);
                }
                Some(g) => {
                    for (j, item) in g.get_ref().iter().enumerate() {
                        let Some(grant) = Grant::parse(item.get_ref()) else {
                            let allowed: Vec<_> = Grant::ALL.iter().map(|g| g.name()).collect();
                            return self.err(
                                Some(item.span()),
                                format!("{key}.grants[{j}]"),
                                format!(
                                    "unknown grant {:?}; allowed: {}",
                                    item.get_ref(),
                                    allowed.join(", ")
                                ),
                            );
                        };
                        grants.insert(grant);
                    }
                }
            }
            let sessions = self.scope(&p.sessions, &format!("{key}.sessions"), |s| {
                if session_names.contains(s) {
                    Ok(())
                } else {
                    Err(format!("no [[session]] is named {s:?}"))
                }
            })?;
            let chats = self.scope(&p.chats, &format!("{key}.chats"), check_chat)?;
            let group_admin = p.group_admin.unwrap_or(false);
            if group_admin && !grants.contains(&Grant::Groups) {
                return self.err(
                    Some(p.name.span()),
                    format!("{key}.group_admin"),
                    "needs the \"groups\" grant",
                );
            }
            let limits = self.limits(p.limits.as_ref(), defaults, &format!("{key}.limits"))?;
            plugins.push(PluginConfig {
                name,
                file,
                grants,
                sessions,
                chats,
                group_admin,
                enabled: p.enabled.unwrap_or(true),
                limits,
                config: p.config.unwrap_or_default(),
            });
        }
        Ok(PluginsConfig {
            dir,
            watch,
            cache_dir,
            defaults,
            plugins,
        })
    }

    fn sessions(&self, list: Vec<RawSession>) -> Result<Vec<SessionConfig>, ConfigError> {
        let mut seen = BTreeMap::new();
        let mut out = Vec::with_capacity(list.len());
        for (i, s) in list.into_iter().enumerate() {
            let key = format!("session[{i}]");
            let name = s.name.get_ref().clone();
            if let Err(msg) = check_name(&name) {
                return self.err(Some(s.name.span()), format!("{key}.name"), msg);
            }
            if let Some(prev) = seen.insert(name.clone(), i) {
                return self.err(
                    Some(s.name.span()),
                    format!("{key}.name"),
                    format!("{name:?} is already used by session[{prev}]"),
                );
            }
            let server = match &s.server {
                None => DEFAULT_SERVER.to_string(),
                Some(u) => {
                    let url = u.get_ref();
                    let rest = url
                        .strip_prefix("wss://")
                        .or_else(|| url.strip_prefix("ws://"));
                    match rest {
                        Some(r) if !r.is_empty() && !r.starts_with('/') => url.clone(),
                        _ => {
                            return self.err(
                                Some(u.span()),
                                format!("{key}.server"),
                                format!("must be a ws:// or wss:// URL, got {url:?}"),
                            );
                        }
                    }
                }
            };
            let root_key = match &s.root_key {
                None => None,
                Some(k) => match hex_32(k.get_ref()) {
                    Some(b) => Some(b),
                    None => {
                        return self.err(
                            Some(k.span()),
                            format!("{key}.root_key"),
                            "must be 64 hex digits (a 32-byte Curve25519 public key)",
                        );
                    }
                },
            };
            let wa_version = match &s.wa_version {
                None => DEFAULT_WA_VERSION,
                Some(v) => match parse_version(v.get_ref()) {
                    Some(v) => v,
                    None => {
                        return self.err(
                            Some(v.span()),
                            format!("{key}.wa_version"),
                            format!("must look like 2.3000.1045649367, got {:?}", v.get_ref()),
                        );
                    }
                },
            };
            let push_name = match &s.push_name {
                None => "wasmeow".to_string(),
                Some(p) if !p.get_ref().trim().is_empty() && p.get_ref().chars().count() <= 25 => {
                    p.get_ref().clone()
                }
                Some(p) => {
                    return self.err(
                        Some(p.span()),
                        format!("{key}.push_name"),
                        "must be 1 to 25 characters",
                    );
                }
            };
            let device_name = match &s.device_name {
                None => "wasmeow".to_string(),
                Some(p) if !p.get_ref().trim().is_empty() && p.get_ref().chars().count() <= 50 => {
                    p.get_ref().clone()
                }
                Some(p) => {
                    return self.err(
                        Some(p.span()),
                        format!("{key}.device_name"),
                        "must be 1 to 50 characters",
                    );
                }
            };
            let rate = self.rate(s.rate.as_ref(), &format!("{key}.rate"))?;
            out.push(SessionConfig {
                name,
                server,
                root_key,
                wa_version,
                push_name,
                device_name,
                rate,
            });
        }
        Ok(out)
    }

    fn rate(&self, raw: Option<&RawRate>, key: &str) -> Result<RateConfig, ConfigError> {
        let mut r = RateConfig::default();
        let Some(raw) = raw else { return Ok(r) };
        if let Some(v) = &raw.per_minute {
            r.per_minute = self.positive(v, &format!("{key}.per_minute"), 10_000)?;
        }
        if let Some(v) = &raw.per_hour {
            r.per_hour = self.positive(v, &format!("{key}.per_hour"), 600_000)?;
        }
        if let Some(v) = &raw.per_chat_per_minute {
            r.per_chat_per_minute =
                self.positive(v, &format!("{key}.per_chat_per_minute"), 10_000)?;
        }
        if let Some(v) = &raw.new_chats_per_day {
            r.new_chats_per_day =
                self.positive(v, &format!("{key}.new_chats_per_day"), 1_000_000)?;
        }
        if let Some(v) = &raw.min_delay_ms {
            r.min_delay_ms = *v.get_ref();
            if r.min_delay_ms > 3_600_000 {
                return self.err(
                    Some(v.span()),
                    format!("{key}.min_delay_ms"),
                    "must be at most 3600000 (one hour)",
                );
            }
        }
        if let Some(v) = &raw.jitter_ms {
            r.jitter_ms = *v.get_ref();
            if r.jitter_ms > 3_600_000 {
                return self.err(
                    Some(v.span()),
                    format!("{key}.jitter_ms"),
                    "must be at most 3600000 (one hour)",
                );
            }
        }
        if u64::from(r.per_minute) > u64::from(r.per_hour) {
            let span = raw
                .per_minute
                .as_ref()
                .or(raw.per_hour.as_ref())
                .map(Spanned::span);
            return self.err(
                span,
                format!("{key}.per_minute"),
                format!(
                    "{} per minute exceeds per_hour = {}",
                    r.per_minute, r.per_hour
                ),
            );
        }
        Ok(r)
    }

    fn admission(&self, raw: Option<RawAdmission>) -> Result<AdmissionConfig, ConfigError> {
        let mut a = AdmissionConfig::default();
        let Some(raw) = raw else { return Ok(a) };
        if let Some(v) = &raw.high_water_percent {
            a.high_water_percent = self.positive(v, "admission.high_water_percent", 100)?;
        }
        if let Some(v) = &raw.low_water_percent {
            a.low_water_percent = self.positive(v, "admission.low_water_percent", 100)?;
        }
        if a.low_water_percent >= a.high_water_percent {
            let span = raw
                .low_water_percent
                .as_ref()
                .or(raw.high_water_percent.as_ref())
                .map(Spanned::span);
            return self.err(
                span,
                "admission.low_water_percent",
                format!(
                    "must be below high_water_percent ({} >= {})",
                    a.low_water_percent, a.high_water_percent
                ),
            );
        }
        Ok(a)
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("must be 1 to 64 characters, got {name:?}"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "may contain only letters, digits, '-' and '_', got {name:?}"
        ));
    }
    Ok(())
}

fn check_chat(jid: &str) -> Result<(), String> {
    let Some((user, server)) = jid.split_once('@') else {
        return Err(format!(
            "must be a chat JID such as 15551234567@s.whatsapp.net or 1203630@g.us, got {jid:?}"
        ));
    };
    let servers = ["s.whatsapp.net", "g.us", "lid", "broadcast", "newsletter"];
    if user.is_empty() || !servers.contains(&server) || server.contains('@') {
        return Err(format!(
            "must be a chat JID on one of {servers:?}, got {jid:?}"
        ));
    }
    Ok(())
}

fn hex_32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hi = (chunk[0] as char).to_digit(16)?;
        let lo = (chunk[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn parse_version(s: &str) -> Option<[u32; 3]> {
    let mut parts = s.split('.');
    let v = [
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ];
    if parts.next().is_some() || v[0] == 0 {
        return None;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/wasmeow/bot.toml"), text)
    }

    fn err(text: &str) -> String {
        parse(text)
            .expect_err("config must be rejected")
            .to_string()
    }

    #[test]
    fn the_sample_bot_toml_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bot.toml");
        let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!cfg.sessions.is_empty());
        assert!(!cfg.plugins.plugins.is_empty());
    }

    #[test]
    fn empty_file_gives_safe_defaults() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.store.path, Path::new("/etc/wasmeow/wasmeow.redb"));
        assert_eq!(cfg.store.key, KeySource::Env("WASMEOW_STORE_KEY".into()));
        assert!(cfg.admin.is_none());
        assert_eq!(
            cfg.admission,
            AdmissionConfig {
                high_water_percent: 90,
                low_water_percent: 80
            }
        );
        assert_eq!(cfg.plugins.defaults.deadline_ms, 100);
        assert_eq!(cfg.logging.format, LogFormat::Human);
    }

    #[test]
    fn session_and_plugin_resolve() {
        let cfg = parse(
            r#"
[[session]]
name = "main"
server = "ws://127.0.0.1:9000/ws/chat"
root_key = "142375574d0a587166aae71ebe516437c4a28b73e3695c6ce1f7f9545da8ee6b"
wa_version = "2.3000.1"

[[plugin]]
name = "echo"
grants = ["messaging", "kv"]
sessions = ["main"]
chats = ["15551234567@s.whatsapp.net"]
limits = { deadline_ms = 50 }
config = { greeting = "hi" }
"#,
        )
        .unwrap();
        let s = &cfg.sessions[0];
        assert_eq!(s.server, "ws://127.0.0.1:9000/ws/chat");
        assert_eq!(s.wa_version, [2, 3000, 1]);
        assert_eq!(s.root_key.unwrap()[0], 0x14);
        let p = &cfg.plugins.plugins[0];
        assert_eq!(p.file, Path::new("/etc/wasmeow/plugins/dist/echo.wasm"));
        assert_eq!(p.grants, BTreeSet::from([Grant::Messaging, Grant::Kv]));
        assert_eq!(p.limits.deadline_ms, 50);
        assert_eq!(
            p.limits.memory_mib, 64,
            "unset limits fall back to the defaults"
        );
        assert_eq!(p.config["greeting"].as_str(), Some("hi"));
        assert!(matches!(&p.sessions, Scope::Only(s) if s.contains("main")));
    }

    #[test]
    fn errors_name_file_line_key_and_what_is_allowed() {
        let e = err("[[session]]\nname = \"main\"\nserver = \"http://x\"\n");
        assert_eq!(
            e,
            "/etc/wasmeow/bot.toml:3:10: `session[0].server`: must be a ws:// or wss:// URL, got \"http://x\""
        );

        let e = err(
            "[[session]]\nname = \"a\"\n[[plugin]]\nname = \"p\"\ngrants = [\"messaging\", \"sockets\"]\n",
        );
        assert!(e.starts_with("/etc/wasmeow/bot.toml:5:24: `plugin[0].grants[1]`: unknown grant \"sockets\"; allowed: messaging,"), "{e}");

        let e = err("[[plugin]]\nname = \"p\"\nsessions = [\"nope\"]\n");
        assert!(
            e.contains(":3:13: `plugin[0].sessions[0]`: no [[session]] is named \"nope\""),
            "{e}"
        );

        let e = err("[store]\nkey_env = \"A\"\nkey_file = \"k\"\n");
        assert!(
            e.contains("set exactly one of key_env, key_file or passphrase_env"),
            "{e}"
        );

        let e = err("[admin]\nlisten = \"0.0.0.0:80\"\n");
        assert!(
            e.contains("`admin.listen`: is not a loopback address"),
            "{e}"
        );

        let e = err("[admission]\nhigh_water_percent = 70\nlow_water_percent = 80\n");
        assert!(
            e.contains("`admission.low_water_percent`: must be below high_water_percent"),
            "{e}"
        );

        let e = err("[[session]]\nname = \"a b\"\n");
        assert!(
            e.contains("`session[0].name`: may contain only letters"),
            "{e}"
        );

        let e = err("[[session]]\nname = \"a\"\n[[session]]\nname = \"a\"\n");
        assert!(
            e.contains(":4:8: `session[1].name`: \"a\" is already used by session[0]"),
            "{e}"
        );

        let e = err("[[session]]\nname = \"a\"\nroot_key = \"zz\"\n");
        assert!(
            e.contains("`session[0].root_key`: must be 64 hex digits"),
            "{e}"
        );

        let e = err("[[plugin]]\nname = \"p\"\ngroup_admin = true\n");
        assert!(
            e.contains("`plugin[0].group_admin`: needs the \"groups\" grant"),
            "{e}"
        );

        let e = err("[[plugin]]\nname = \"p\"\nchats = [\"12345\"]\n");
        assert!(
            e.contains("`plugin[0].chats[0]`: must be a chat JID"),
            "{e}"
        );

        let e = err("[[session]]\nname = \"a\"\n[session.rate]\nper_minute = 0\n");
        assert!(
            e.contains("`session[0].rate.per_minute`: must be between 1 and 10000, got 0"),
            "{e}"
        );

        let e = err("[logging]\nformat = \"xml\"\n");
        assert!(
            e.contains("`logging.format`: must be \"human\" or \"json\", got \"xml\""),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_and_syntax_errors_are_located() {
        let e = err("[[session]]\nname = \"a\"\nsevrer = \"ws://x\"\n");
        assert!(
            e.starts_with("/etc/wasmeow/bot.toml:3:1: unknown field `sevrer`"),
            "{e}"
        );
        assert!(e.contains("expected one of"), "says what is allowed: {e}");
        let e = err("[store\npath = 1\n");
        assert!(e.starts_with("/etc/wasmeow/bot.toml:1:"), "{e}");
        let e = err("[store]\npath = 1\n");
        assert!(e.starts_with("/etc/wasmeow/bot.toml:2:8:"), "{e}");
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let e = Config::load(Path::new("/nonexistent/bot.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/bot.toml: cannot read the configuration file:"),
            "{e}"
        );
    }
}
