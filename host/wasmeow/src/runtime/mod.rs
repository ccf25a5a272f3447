//! The running host: many WhatsApp sessions, the plugin host and the job scheduler, wired together
//! on one tokio runtime and one encrypted store.
//!
//! ```text
//!   bot.toml / admin API ──▶ Runtime (Control) ──▶ Registry: name → Slot { Session, status, pump }
//!                                                         │ events (one pump task per session)
//!        ┌────────────────────────────────────────────────┼──────────────────────────────┐
//!        ▼                                                ▼                              ▼
//!   status + metrics                  convert::plugin_event → PluginHost::dispatch   HostEvent broadcast
//!                                                         │                           (SSE, webhooks)
//!                       plugin imports ◀──────────────────┘
//!   SessionServices (HostServices) · StoreKv (KvBackend) · StoreScheduler (SchedulerBackend + loop)
//! ```
//!
//! Contract:
//! - Each session has its own store account (namespace) named after it, its own outbox and rate
//!   limits (inside `wasmeow-session`); plugin data and jobs live in the reserved account
//!   [`backends::HOST_ACCOUNT`]. Memory per idle session is the session's own few small caches
//!   plus one pump task: keys and records stay in the store.
//! - Sessions can be created and removed while running ([`Control`]); sessions created at run
//!   time are remembered in the store and started again after a restart. Admission control
//!   refuses *new* sessions above the high-water mark.
//! - [`Runtime::shutdown`] stops intake (admin API first, by its caller), stops the scheduler,
//!   lets plugins finish queued events, then stops every session cleanly (the outbox is
//!   persistent: unsent messages stay queued in the store and go out after the next start).

pub mod admission;
pub(crate) mod backends;
pub(crate) mod campaigns;
pub mod convert;
pub mod metrics;
pub(crate) mod services;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use wasmeow_plugin_host::{
    Capability, EngineConfig, Grant as PGrant, Health, HostConfig, Limits as PLimits, PluginHost,
    PluginSpec, Scope as PScope, Watcher,
};
use wasmeow_protocol::binary::Jid;
use wasmeow_protocol::keys::PublicKey;
use wasmeow_session::events::ConnectionEvent;
use wasmeow_session::{Endpoint, Event, RateLimits, Session, WaVersion};
use wasmeow_store::{
    LidStore as _, PluginKvStore as _, Queue, QueueStore as _, RedbAccount, RedbStore, Store as _,
};

use crate::config::{self, AdmissionConfig, CampaignConfig, PluginsConfig, RateConfig};
use crate::control::{
    Control, ControlError, HostEvent, NewSession, PluginInfo, Sent, SessionState, SessionStatus,
};
use admission::{Admission, LoadSource, ProcLoad};
use backends::{HOST_ACCOUNT, StoreKv, StoreScheduler};
use metrics::{Gauges, Metrics, PluginSample};
use services::SessionServices;

/// The kv namespace (in the host account) remembering sessions created at run time.
const DYNAMIC_SESSIONS: &str = "wasmeow.sessions";

/// Adjusts every session's engine configuration before it starts (extra TLS roots for a test
/// server, shorter timeouts in tests…).
pub type SessionTweak = Arc<dyn Fn(&mut wasmeow_session::SessionConfig) + Send + Sync>;

/// Everything [`Runtime::start`] needs besides the store.
pub struct RuntimeOptions {
    /// Sessions from bot.toml.
    pub sessions: Vec<config::SessionConfig>,
    /// The plugin folder and plugin grants.
    pub plugins: PluginsConfig,
    /// Admission control marks.
    pub admission: AdmissionConfig,
    /// Rate limits for sessions created at run time.
    pub default_rate: RateConfig,
    /// Applied to every session's engine configuration.
    pub tweak: Option<SessionTweak>,
    /// Load readings for admission control (default: `/proc`).
    pub load: Option<Box<dyn LoadSource>>,
    /// Campaigns from bot.toml (their sessions must be among `sessions`).
    pub campaigns: Vec<CampaignConfig>,
}

/// One session in the registry.
pub(crate) struct Slot {
    spec: config::SessionConfig,
    session: Session<RedbAccount>,
    status: Mutex<SessionStatus>,
    pump: Mutex<Option<JoinHandle<()>>>,
    /// Tells the pump the session has stopped: it handles what is queued, then ends (the
    /// session's event channel stays open while any handle to the session lives).
    stopped: Arc<Notify>,
}

/// State shared by the runtime, the session pumps and the plugin services.
pub(crate) struct Registry {
    store: Arc<RedbStore>,
    host_account: RedbAccount,
    sessions: RwLock<BTreeMap<String, Arc<Slot>>>,
    events: broadcast::Sender<HostEvent>,
    pub(crate) metrics: Metrics,
    plugins: OnceLock<PluginHost>,
    admission: Admission,
    tweak: Option<SessionTweak>,
    default_rate: RateConfig,
    ready: AtomicBool,
    /// Serializes creations and removals, so names stay unique.
    lifecycle: tokio::sync::Mutex<()>,
    /// Campaigns and their state.
    pub(crate) campaigns: campaigns::Campaigns,
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The engine configuration of one configured session.
pub fn engine_config(c: &config::SessionConfig) -> wasmeow_session::SessionConfig {
    let mut s = wasmeow_session::SessionConfig {
        endpoint: Endpoint::url(c.server.clone()),
        wa_version: WaVersion(c.wa_version),
        device_name: c.device_name.clone(),
        push_name: c.push_name.clone(),
        rate_limits: rate_limits(&c.rate),
        ..wasmeow_session::SessionConfig::default()
    };
    if let Some(root) = c.root_key {
        s.cert_root = PublicKey(root);
    }
    s
}

fn rate_limits(r: &RateConfig) -> RateLimits {
    RateLimits {
        per_minute: r.per_minute,
        per_hour: r.per_hour,
        per_chat_per_minute: r.per_chat_per_minute,
        new_chats_per_day: r.new_chats_per_day,
        min_spacing: Duration::from_millis(r.min_delay_ms),
        jitter: Duration::from_millis(r.jitter_ms),
        ..RateLimits::default()
    }
}

/// The plugin host's configuration from bot.toml.
pub fn host_config(p: &PluginsConfig) -> HostConfig {
    let mut plugins = BTreeMap::new();
    for pc in p.plugins.iter().filter(|pc| pc.enabled) {
        let mut caps: Vec<Capability> = pc
            .grants
            .iter()
            .map(|g| match g {
                config::Grant::Messaging => Capability::Messaging,
                config::Grant::Groups => Capability::Groups,
                config::Grant::Scheduler => Capability::Scheduler,
                config::Grant::Kv => Capability::Kv,
                config::Grant::Log => Capability::Log,
                config::Grant::Config => Capability::Config,
                config::Grant::Clock => Capability::Clock,
                config::Grant::Random => Capability::Random,
            })
            .collect();
        if pc.group_admin {
            caps.push(Capability::GroupAdmin);
        }
        let scope = |s: &config::Scope| match s {
            config::Scope::All => PScope::All,
            config::Scope::Only(items) => PScope::only(items.iter().cloned()),
        };
        let grant = PGrant {
            capabilities: caps.into_iter().collect(),
            sessions: scope(&pc.sessions),
            chats: scope(&pc.chats),
        };
        let limits = PLimits {
            deadline: Duration::from_millis(pc.limits.deadline_ms),
            fuel: pc.limits.fuel,
            memory_bytes: usize::try_from(pc.limits.memory_mib << 20).unwrap_or(usize::MAX),
            max_in_flight: pc.limits.max_in_flight as usize,
            instances: pc.limits.instances.max(1) as usize,
            ..PLimits::default()
        };
        let config = serde_json::to_value(&pc.config).unwrap_or_default();
        plugins.insert(
            pc.name.clone(),
            PluginSpec::new(grant)
                .with_config(config)
                .with_limits(limits),
        );
    }
    let fuel = p.plugins.iter().any(|pc| pc.limits.fuel.is_some());
    HostConfig {
        engine: EngineConfig {
            fuel,
            cache_dir: Some(p.cache_dir.clone()),
            ..EngineConfig::default()
        },
        plugins,
        default_spec: None,
    }
}

impl Registry {
    /// The session named `name`.
    pub(crate) fn session(&self, name: &str) -> Option<Session<RedbAccount>> {
        read(&self.sessions).get(name).map(|s| s.session.clone())
    }

    fn status_of(&self, slot: &Slot) -> SessionStatus {
        let mut st = lock(&slot.status).clone();
        if st.jid.is_none() {
            st.jid = slot.session.own_jid().map(|j| j.to_string());
        }
        st.outbox_depth = slot.session.store().queue_len(Queue::Outbox).unwrap_or(0);
        st
    }

    fn publish(&self, event: HostEvent) {
        let _ = self.events.send(event);
    }

    /// Handles one session event: status, metrics, operators, plugins.
    fn on_event(&self, name: &str, slot: &Slot, event: &Event) {
        tracing::debug!(session = name, event = ?event, "session event");
        match event {
            Event::Connection(c) => {
                let mut st = lock(&slot.status);
                match c {
                    ConnectionEvent::Connecting => {
                        st.state = SessionState::Connecting;
                    }
                    ConnectionEvent::Qr { code, .. } => {
                        st.state = SessionState::Qr;
                        st.qr = Some(code.clone());
                    }
                    ConnectionEvent::PairCode { code } => st.pair_code = Some(code.clone()),
                    ConnectionEvent::Paired { jid, .. } => {
                        st.state = SessionState::Connecting;
                        st.qr = None;
                        st.pair_code = None;
                        st.jid = Some(jid.clone());
                    }
                    ConnectionEvent::PairError { reason } => st.reason = Some(reason.clone()),
                    ConnectionEvent::QrTimeout => {
                        st.state = SessionState::Failed;
                        st.qr = None;
                        st.reason = Some(
                            "the QR codes expired without a scan; restart the session to get new ones"
                                .into(),
                        );
                    }
                    ConnectionEvent::Connected => {
                        st.state = SessionState::Connected;
                        st.qr = None;
                        st.pair_code = None;
                        st.reason = None;
                        st.jid = slot.session.own_jid().map(|j| j.to_string());
                    }
                    ConnectionEvent::LoggedOut { reason } => {
                        st.state = SessionState::LoggedOut;
                        st.jid = None;
                        st.reason = Some(reason.clone());
                    }
                    ConnectionEvent::StreamReplaced => {
                        st.state = SessionState::Failed;
                        st.reason =
                            Some("replaced by another connection with the same credentials".into());
                    }
                    ConnectionEvent::TemporaryBan { code, expire_secs } => {
                        st.state = SessionState::Failed;
                        st.reason = Some(format!(
                            "temporarily banned (code {code}){}",
                            expire_secs
                                .map(|s| format!(", for {s} s"))
                                .unwrap_or_default()
                        ));
                    }
                    ConnectionEvent::ClientOutdated => {
                        st.state = SessionState::Failed;
                        st.reason = Some(
                            "WhatsApp refused this client version (405): set a newer wa_version"
                                .into(),
                        );
                    }
                    ConnectionEvent::Disconnected {
                        reason,
                        retry_in_ms,
                    } => {
                        st.state = SessionState::Disconnected;
                        st.reason = Some(reason.clone());
                        if retry_in_ms.is_some() {
                            self.metrics.reconnects.inc();
                        }
                    }
                }
                tracing::info!(
                    session = name,
                    state = st.state.name(),
                    "session {}",
                    describe(c)
                );
            }
            Event::Message(m) => {
                self.metrics.messages_in.inc();
                self.campaigns.on_message(name, &slot.session, m);
            }
            Event::Undecryptable(u) => {
                self.metrics.decrypt_failures.inc();
                if u.retry_count > 0 {
                    self.metrics.retries.inc();
                }
            }
            Event::SendResult(r) if r.error.is_some() => self.metrics.send_failures.inc(),
            _ => {}
        }
        if let Some(h) = convert::host_event(name, event, now_ms()) {
            self.publish(h);
        }
        if let Some(plugins) = self.plugins.get() {
            let own = slot.session.own_jid().map(|j| j.to_string());
            let mapped;
            let event = match event {
                Event::Group(g) => {
                    mapped = Event::Group(pn_members(slot.session.store(), g));
                    &mapped
                }
                other => other,
            };
            if let Some(pe) = convert::plugin_event(name, event, own.as_deref()) {
                let report = plugins.dispatch(pe);
                if report.delivered > 0 {
                    self.metrics.plugin_events.add(report.delivered as u64);
                }
                for d in &report.dropped {
                    self.metrics.plugin_events_dropped.inc();
                    tracing::warn!(session = name, error = %d, "event not delivered to a plugin");
                }
            }
        }
    }
}

/// The group event with LID members replaced by their phone-number JIDs where the store knows
/// the mapping (plugins see members the way `own-jid` and group info present them).
fn pn_members(
    store: &RedbAccount,
    g: &wasmeow_session::events::GroupEvent,
) -> wasmeow_session::events::GroupEvent {
    use wasmeow_session::events::GroupChange as C;
    let map = |list: &Vec<String>| -> Vec<String> {
        list.iter()
            .map(|j| {
                let bare = convert::bare(j);
                match bare.strip_suffix("@lid") {
                    Some(lid) => match store.get_pn_for_lid(lid) {
                        Ok(Some(pn)) => format!("{pn}@s.whatsapp.net"),
                        _ => bare,
                    },
                    None => bare,
                }
            })
            .collect()
    };
    let mut out = g.clone();
    if let C::Added { participants }
    | C::Removed { participants }
    | C::Promoted { participants }
    | C::Demoted { participants }
    | C::Created { participants, .. } = &mut out.change
    {
        *participants = map(participants);
    }
    out
}

fn describe(c: &ConnectionEvent) -> String {
    match c {
        ConnectionEvent::Connecting => "connecting".into(),
        ConnectionEvent::Qr { valid_for_secs, .. } => {
            format!("waiting for a QR scan (code valid {valid_for_secs} s)")
        }
        ConnectionEvent::PairCode { code } => format!("pairing code {code}"),
        ConnectionEvent::Paired { jid, platform, .. } => {
            format!("paired as {jid} (phone: {platform})")
        }
        ConnectionEvent::PairError { reason } => format!("pairing failed: {reason}"),
        ConnectionEvent::QrTimeout => "QR codes expired".into(),
        ConnectionEvent::Connected => "connected".into(),
        ConnectionEvent::LoggedOut { reason } => format!("logged out ({reason})"),
        ConnectionEvent::StreamReplaced => "replaced by another connection".into(),
        ConnectionEvent::TemporaryBan { code, .. } => format!("temporarily banned ({code})"),
        ConnectionEvent::ClientOutdated => "client version outdated (405)".into(),
        ConnectionEvent::Disconnected {
            reason,
            retry_in_ms,
        } => match retry_in_ms {
            Some(ms) => format!("disconnected ({reason}); retrying in {ms} ms"),
            None => format!("disconnected ({reason})"),
        },
    }
}

/// A session created at run time, as remembered in the store.
#[derive(Debug, Serialize, Deserialize)]
struct DynamicSession {
    server: String,
    root_key: Option<String>,
    push_name: String,
}

/// The running host.
pub struct Runtime {
    reg: Arc<Registry>,
    plugins: PluginHost,
    scheduler: Arc<StoreScheduler>,
    stop: Arc<Notify>,
    scheduler_task: Mutex<Option<JoinHandle<()>>>,
    campaign_tasks: Mutex<Vec<JoinHandle<()>>>,
    watcher: Mutex<Option<Watcher>>,
    plugin_dir: PathBuf,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field(
                "sessions",
                &read(&self.reg.sessions).keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] wasmeow_store::StoreError),
    /// The job table could not be read.
    #[error("scheduler: {0}")]
    Jobs(#[from] wasmeow_scheduler::StoreFailure),
    /// The plugin host could not start.
    #[error("plugin host: {0}")]
    Plugins(#[from] wasmeow_plugin_host::HostError),
    /// A session could not start.
    #[error("session {name}: {reason}")]
    Session {
        /// The session.
        name: String,
        /// Why.
        reason: String,
    },
}

impl Runtime {
    /// Starts plugins, the scheduler and every configured (and remembered) session. Call inside a
    /// multi-threaded tokio runtime.
    pub async fn start(
        store: Arc<RedbStore>,
        opts: RuntimeOptions,
    ) -> Result<Arc<Self>, StartError> {
        let host_account = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.open_or_create_account(HOST_ACCOUNT))
                .await
                .map_err(|e| StartError::Session {
                    name: HOST_ACCOUNT.into(),
                    reason: e.to_string(),
                })??
        };
        let (events, _) = broadcast::channel(1024);
        let admission = Admission::new(
            opts.admission.high_water_percent,
            opts.admission.low_water_percent,
            opts.load.unwrap_or_else(|| Box::new(ProcLoad::default())),
        );
        let reg = Arc::new(Registry {
            store,
            host_account: host_account.clone(),
            sessions: RwLock::new(BTreeMap::new()),
            events,
            metrics: Metrics::default(),
            plugins: OnceLock::new(),
            admission,
            tweak: opts.tweak,
            default_rate: opts.default_rate,
            ready: AtomicBool::new(false),
            lifecycle: tokio::sync::Mutex::new(()),
            campaigns: campaigns::Campaigns::new(opts.campaigns),
        });
        let scheduler = StoreScheduler::open(host_account.clone())?;
        let services = Arc::new(SessionServices {
            registry: Arc::downgrade(&reg),
        });
        let plugins = PluginHost::new(
            host_config(&opts.plugins),
            services,
            Arc::new(StoreKv {
                account: host_account.clone(),
            }),
            scheduler.clone(),
        )?;
        let _ = reg.plugins.set(plugins.clone());
        let stop = Arc::new(Notify::new());
        let rt = Arc::new(Runtime {
            reg: reg.clone(),
            plugins: plugins.clone(),
            scheduler: scheduler.clone(),
            stop: stop.clone(),
            scheduler_task: Mutex::new(None),
            campaign_tasks: Mutex::new(Vec::new()),
            watcher: Mutex::new(None),
            plugin_dir: opts.plugins.dir.clone(),
        });
        // Plugins first, so the first events of the sessions reach them.
        rt.load_plugins(&opts.plugins).await;
        *lock(&rt.scheduler_task) = Some(tokio::spawn(scheduler.run(plugins, stop.clone())));
        for spec in &opts.sessions {
            rt.start_session(spec.clone())
                .await
                .map_err(|e| StartError::Session {
                    name: spec.name.clone(),
                    reason: e.to_string(),
                })?;
        }
        for (name, spec) in rt.remembered_sessions()? {
            if read(&reg.sessions).contains_key(&name) {
                continue;
            }
            if let Err(e) = rt.start_session(spec).await {
                tracing::warn!(session = %name, error = %e, "a remembered session could not start");
            }
        }
        *lock(&rt.campaign_tasks) = reg.campaigns.spawn(Arc::downgrade(&reg), stop.clone());
        reg.ready.store(true, Ordering::Relaxed);
        Ok(rt)
    }

    async fn load_plugins(&self, cfg: &PluginsConfig) {
        let mut by_stem = true;
        for pc in cfg.plugins.iter().filter(|p| p.enabled) {
            let stem = pc.file.file_stem().and_then(|s| s.to_str());
            if stem != Some(pc.name.as_str()) {
                by_stem = false;
            }
        }
        if cfg.watch && by_stem {
            match self.plugins.watch(&cfg.dir).await {
                Ok(w) => {
                    *lock(&self.watcher) = Some(w);
                    return;
                }
                Err(e) => {
                    tracing::warn!(dir = %cfg.dir.display(), error = %e, "cannot watch the plugin folder; loading once")
                }
            }
        }
        for pc in cfg.plugins.iter().filter(|p| p.enabled) {
            let path = if pc.file.is_absolute() {
                pc.file.clone()
            } else {
                cfg.dir.join(&pc.file)
            };
            match std::fs::read(&path) {
                Ok(bytes) => {
                    if let Err(e) = self.plugins.load_bytes(&pc.name, bytes).await {
                        tracing::error!(plugin = %pc.name, file = %path.display(), error = %e, "plugin rejected");
                    }
                }
                Err(e) => {
                    tracing::error!(plugin = %pc.name, file = %path.display(), error = %e, "plugin file unreadable")
                }
            }
        }
    }

    fn remembered_sessions(&self) -> Result<Vec<(String, config::SessionConfig)>, StartError> {
        let rows = self.reg.host_account.kv_list(DYNAMIC_SESSIONS, "")?;
        let mut out = Vec::new();
        for (name, data) in rows {
            match serde_json::from_slice::<DynamicSession>(&data) {
                Ok(d) => match self.dynamic_spec(&name, &d) {
                    Ok(spec) => out.push((name, spec)),
                    Err(e) => {
                        tracing::warn!(session = %name, error = %e, "remembered session is invalid")
                    }
                },
                Err(e) => {
                    tracing::warn!(session = %name, error = %e, "remembered session is unreadable")
                }
            }
        }
        Ok(out)
    }

    fn dynamic_spec(
        &self,
        name: &str,
        d: &DynamicSession,
    ) -> Result<config::SessionConfig, ControlError> {
        validate_name(name)?;
        let server = d.server.clone();
        if !(server.starts_with("ws://") || server.starts_with("wss://")) {
            return Err(ControlError::Invalid(format!(
                "server must be a ws:// or wss:// URL, got {server:?}"
            )));
        }
        let root_key = match &d.root_key {
            None => None,
            Some(hex_key) => {
                let bytes = hex::decode(hex_key)
                    .map_err(|_| ControlError::Invalid("root_key must be 64 hex digits".into()))?;
                Some(<[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    ControlError::Invalid("root_key must be 64 hex digits (32 bytes)".into())
                })?)
            }
        };
        if d.push_name.chars().count() > 25 {
            return Err(ControlError::Invalid(
                "push_name must be at most 25 characters".into(),
            ));
        }
        Ok(config::SessionConfig {
            name: name.to_owned(),
            server,
            root_key,
            wa_version: config::DEFAULT_WA_VERSION,
            push_name: d.push_name.clone(),
            device_name: "wasmeow".into(),
            rate: self.reg.default_rate,
        })
    }

    /// Starts one session (not yet registered).
    async fn start_session(
        &self,
        spec: config::SessionConfig,
    ) -> Result<SessionStatus, ControlError> {
        let name = spec.name.clone();
        let account = {
            let store = self.reg.store.clone();
            let n = name.clone();
            tokio::task::spawn_blocking(move || store.open_or_create_account(&n))
                .await
                .map_err(|e| ControlError::Internal(e.to_string()))?
                .map_err(|e| ControlError::Internal(format!("store: {e}")))?
        };
        let mut engine = engine_config(&spec);
        if let Some(t) = &self.reg.tweak {
            t(&mut engine);
        }
        let (session, mut rx) = Session::start(engine, account);
        let slot = Arc::new(Slot {
            spec,
            session,
            status: Mutex::new(SessionStatus {
                name: name.clone(),
                state: SessionState::Connecting,
                jid: None,
                qr: None,
                pair_code: None,
                reason: None,
                outbox_depth: 0,
            }),
            pump: Mutex::new(None),
            stopped: Arc::new(Notify::new()),
        });
        // The pump holds the registry and its slot weakly: it ends when the session's event
        // channel closes or the session was stopped, and never keeps the store open on its own.
        let reg = Arc::downgrade(&self.reg);
        let pump_slot = Arc::downgrade(&slot);
        let pump_name = name.clone();
        let stopped = slot.stopped.clone();
        let handle = tokio::spawn(async move {
            let deliver = |event: &Event| {
                let (Some(reg), Some(slot)) = (reg.upgrade(), pump_slot.upgrade()) else {
                    return false;
                };
                reg.on_event(&pump_name, &slot, event);
                true
            };
            let stopped = stopped.notified();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    event = rx.recv() => match event {
                        Some(event) if deliver(&event) => {}
                        _ => break,
                    },
                    () = &mut stopped => {
                        // The session's last events are queued by now: hand them on, then end.
                        while let Ok(event) = rx.try_recv() {
                            if !deliver(&event) {
                                break;
                            }
                        }
                        break;
                    }
                }
            }
        });
        *lock(&slot.pump) = Some(handle);
        write(&self.reg.sessions).insert(name.clone(), slot.clone());
        Ok(self.reg.status_of(&slot))
    }

    /// Stops and unregisters a session (its store data stays).
    async fn stop_session(&self, name: &str) -> Option<Arc<Slot>> {
        let slot = write(&self.reg.sessions).remove(name)?;
        slot.session.stop().await;
        // Let the pump deliver the session's last events (bounded), then end it.
        slot.stopped.notify_one();
        let pump = lock(&slot.pump).take();
        if let Some(mut p) = pump
            && tokio::time::timeout(Duration::from_millis(200), &mut p)
                .await
                .is_err()
        {
            p.abort();
        }
        lock(&slot.status).state = SessionState::Stopped;
        Some(slot)
    }

    /// The plugin host.
    pub fn plugin_host(&self) -> &PluginHost {
        &self.plugins
    }

    /// The session named `name` (for embedding and tests).
    pub fn session_handle(&self, name: &str) -> Option<Session<RedbAccount>> {
        self.reg.session(name)
    }

    /// Waits until `name` reaches `state` (or `timeout` passes); returns whether it did.
    pub async fn wait_state(&self, name: &str, state: SessionState, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.session_status(name).is_some_and(|s| s.state == state) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn session_status(&self, name: &str) -> Option<SessionStatus> {
        let slot = read(&self.reg.sessions).get(name).cloned()?;
        Some(self.reg.status_of(&slot))
    }

    /// Graceful shutdown: not ready, scheduler stopped, plugins drained (bounded), sessions closed.
    pub async fn shutdown(&self) {
        self.reg.ready.store(false, Ordering::Relaxed);
        self.stop.notify_waiters();
        self.stop.notify_one();
        let task = lock(&self.scheduler_task).take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        // A campaign step is one store transaction at most; aborting between steps loses nothing.
        let campaign_tasks = std::mem::take(&mut *lock(&self.campaign_tasks));
        for t in campaign_tasks {
            t.abort();
            let _ = t.await;
        }
        drop(lock(&self.watcher).take());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.plugins.idle()).await;
        for p in self.plugins.list() {
            self.plugins.unload(&p.name);
        }
        let names: Vec<String> = read(&self.reg.sessions).keys().cloned().collect();
        // Each stop is bounded (10 s) by the session itself.
        for n in &names {
            self.stop_session(n).await;
        }
        tracing::info!(sessions = names.len(), "shut down");
    }
}

fn validate_name(name: &str) -> Result<(), ControlError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ControlError::Invalid(format!(
            "session name {name:?} must be 1-64 letters, digits, '-' or '_'"
        )));
    }
    Ok(())
}

#[async_trait]
impl Control for Runtime {
    fn sessions(&self) -> Vec<SessionStatus> {
        let slots: Vec<Arc<Slot>> = read(&self.reg.sessions).values().cloned().collect();
        slots.iter().map(|s| self.reg.status_of(s)).collect()
    }

    fn session(&self, name: &str) -> Option<SessionStatus> {
        self.session_status(name)
    }

    async fn create_session(&self, spec: NewSession) -> Result<SessionStatus, ControlError> {
        let _guard = self.reg.lifecycle.lock().await;
        validate_name(&spec.name)?;
        if read(&self.reg.sessions).contains_key(&spec.name) {
            return Err(ControlError::Conflict(format!("session {:?}", spec.name)));
        }
        if let Err(reason) = self.reg.admission.check() {
            self.reg.metrics.admission_refusals.inc();
            return Err(ControlError::Overloaded(reason));
        }
        let d = DynamicSession {
            server: spec
                .server
                .clone()
                .unwrap_or_else(|| config::DEFAULT_SERVER.to_owned()),
            root_key: spec.root_key.clone(),
            push_name: spec.push_name.clone().unwrap_or_else(|| "wasmeow".into()),
        };
        let cfg = self.dynamic_spec(&spec.name, &d)?;
        let data = serde_json::to_vec(&d).map_err(|e| ControlError::Internal(e.to_string()))?;
        self.reg
            .host_account
            .kv_set(DYNAMIC_SESSIONS, &spec.name, &data)
            .map_err(|e| ControlError::Internal(format!("store: {e}")))?;
        let status = self.start_session(cfg).await?;
        self.reg.publish(HostEvent {
            session: spec.name.clone(),
            event: "session_added".into(),
            at_ms: now_ms(),
            data: serde_json::json!({}),
        });
        Ok(status)
    }

    async fn remove_session(&self, name: &str, logout: bool) -> Result<(), ControlError> {
        let _guard = self.reg.lifecycle.lock().await;
        let session = self
            .reg
            .session(name)
            .ok_or_else(|| ControlError::NotFound(format!("session {name:?}")))?;
        if logout && session.own_jid().is_some() {
            session
                .logout()
                .await
                .map_err(|e| ControlError::Unavailable(format!("logout failed: {e}")))?;
        }
        self.stop_session(name).await;
        let store = self.reg.store.clone();
        let n = name.to_owned();
        let host = self.reg.host_account.clone();
        tokio::task::spawn_blocking(move || -> Result<(), wasmeow_store::StoreError> {
            host.kv_delete(DYNAMIC_SESSIONS, &n)?;
            store.delete_account(&n)?;
            Ok(())
        })
        .await
        .map_err(|e| ControlError::Internal(e.to_string()))?
        .map_err(|e| ControlError::Internal(format!("store: {e}")))?;
        self.reg.campaigns.forget_session(name).await;
        self.reg.publish(HostEvent {
            session: name.to_owned(),
            event: "session_removed".into(),
            at_ms: now_ms(),
            data: serde_json::json!({}),
        });
        Ok(())
    }

    async fn logout(&self, name: &str) -> Result<(), ControlError> {
        let _guard = self.reg.lifecycle.lock().await;
        let session = self
            .reg
            .session(name)
            .ok_or_else(|| ControlError::NotFound(format!("session {name:?}")))?;
        if session.own_jid().is_none() {
            return Err(ControlError::Invalid(format!(
                "session {name:?} is not paired"
            )));
        }
        session
            .logout()
            .await
            .map_err(|e| ControlError::Unavailable(format!("logout failed: {e}")))?;
        // Start it again unpaired, so it offers a fresh QR code.
        let slot = self
            .stop_session(name)
            .await
            .ok_or_else(|| ControlError::NotFound(format!("session {name:?}")))?;
        self.start_session(slot.spec.clone()).await.map(|_| ())
    }

    async fn pair_code(&self, name: &str, phone: &str) -> Result<String, ControlError> {
        let session = self
            .reg
            .session(name)
            .ok_or_else(|| ControlError::NotFound(format!("session {name:?}")))?;
        if phone.is_empty() || phone.len() > 20 || !phone.chars().all(|c| c.is_ascii_digit()) {
            return Err(ControlError::Invalid(
                "phone must be the number in international format, digits only (e.g. 4917012345678)".into(),
            ));
        }
        session
            .pair_phone(phone)
            .await
            .map_err(|e| ControlError::Unavailable(e.to_string()))
    }

    async fn send_text(&self, name: &str, chat: &str, text: &str) -> Result<Sent, ControlError> {
        let session = self
            .reg
            .session(name)
            .ok_or_else(|| ControlError::NotFound(format!("session {name:?}")))?;
        let to: Jid = chat
            .parse()
            .map_err(|e| ControlError::Invalid(format!("chat {chat:?} is not a JID: {e}")))?;
        if text.is_empty() {
            return Err(ControlError::Invalid("text must not be empty".into()));
        }
        let (id, _rx) = session
            .send(&to, wasmeow_session::MessageContent::text(text))
            .await
            .map_err(|e| match e {
                wasmeow_session::SessionError::NotLoggedIn => {
                    ControlError::Unavailable(format!("session {name:?} is not logged in"))
                }
                other => ControlError::Invalid(other.to_string()),
            })?;
        self.reg.metrics.messages_out.inc();
        Ok(Sent { id })
    }

    fn plugins(&self) -> Vec<PluginInfo> {
        let mut list: Vec<PluginInfo> = self
            .plugins
            .list()
            .into_iter()
            .map(|p| PluginInfo {
                name: p.name,
                version: p.version,
                health: match p.health {
                    Health::Running if p.consecutive_failures > 0 => "restarting".into(),
                    Health::Running => "running".into(),
                    Health::Quarantined => "quarantined".into(),
                },
                handled: p.handled,
                failures: p.failures,
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    async fn reload_plugin(&self, name: &str) -> Result<PluginInfo, ControlError> {
        let status = self
            .plugins
            .status(name)
            .ok_or_else(|| ControlError::NotFound(format!("plugin {name:?}")))?;
        let path = status
            .source
            .clone()
            .unwrap_or_else(|| self.plugin_dir.join(format!("{name}.wasm")));
        let bytes = std::fs::read(&path).map_err(|e| {
            ControlError::Unavailable(format!("cannot read {}: {e}", path.display()))
        })?;
        self.plugins
            .load_bytes(name, bytes)
            .await
            .map_err(|e| ControlError::Invalid(format!("the new version was rejected: {e}")))?;
        self.plugins()
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ControlError::NotFound(format!("plugin {name:?}")))
    }

    fn subscribe(&self) -> broadcast::Receiver<HostEvent> {
        self.reg.events.subscribe()
    }

    fn metrics(&self) -> String {
        let sessions = self.sessions();
        let states = [
            SessionState::Connecting,
            SessionState::Qr,
            SessionState::Connected,
            SessionState::Disconnected,
            SessionState::LoggedOut,
            SessionState::Failed,
            SessionState::Stopped,
        ];
        let gauges = Gauges {
            sessions_by_state: states
                .iter()
                .map(|st| {
                    (
                        st.name(),
                        sessions.iter().filter(|s| s.state == *st).count() as u64,
                    )
                })
                .collect(),
            outbox: sessions
                .iter()
                .map(|s| (s.name.clone(), s.outbox_depth))
                .collect(),
            rate_limit_waits: read(&self.reg.sessions)
                .iter()
                .map(|(name, slot)| (name.clone(), slot.session.rate_limit_waits()))
                .collect(),
            plugins: self
                .plugins
                .list()
                .into_iter()
                .map(|p| PluginSample {
                    name: p.name,
                    handled: p.handled,
                    failures: p.failures,
                    dropped: p.dropped,
                    in_flight: p.in_flight as u64,
                    quarantined: p.health == Health::Quarantined,
                    busy_secs: p.busy.as_secs_f64(),
                })
                .collect(),
            jobs: self.scheduler.len() as u64,
            admission_refusing: self.reg.admission.refusing(),
            campaigns: self
                .reg
                .campaigns
                .iter()
                .map(|c| metrics::CampaignSample {
                    name: c.cfg.name.clone(),
                    queued: c.counters.queued.load(Ordering::Relaxed),
                    failed: c.counters.failed.load(Ordering::Relaxed),
                    opted_out: c.counters.opted_out.load(Ordering::Relaxed),
                    running: c.running.load(Ordering::Relaxed),
                })
                .collect(),
        };
        self.reg.metrics.render(&gauges)
    }

    fn ready(&self) -> bool {
        self.reg.ready.load(Ordering::Relaxed)
    }

    async fn campaigns(&self) -> Vec<crate::control::CampaignStatus> {
        self.reg.campaigns.statuses(&self.reg).await
    }

    async fn campaign(
        &self,
        name: &str,
        command: crate::control::CampaignCommand,
    ) -> Result<crate::control::CampaignStatus, ControlError> {
        self.reg.campaigns.command(&self.reg, name, command).await
    }
}
