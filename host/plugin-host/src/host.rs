//! [`PluginHost`]: loads plugins, routes events to them, swaps new versions in,
//! and contains failures.
//!
//! # Execution model
//!
//! Each loaded plugin has a fixed number of *lanes* ([`Limits::instances`]). A
//! lane is an OS thread with a FIFO queue that owns at most one live instance
//! (`Store` + component instance). Calls into the guest are synchronous and run
//! on the lane's own stack: no fiber switch per call, and a host call that has
//! to wait for an async service blocks only its lane (the thread is inside the
//! tokio runtime's context but is never one of its workers, so the workers keep
//! serving sessions). A lane thread sleeps in its queue when it has nothing to
//! do. [`PluginHost::dispatch`] picks the lane by a hash of the event's session
//! and chat, so the events of one chat reach a plugin in order while different
//! chats run in parallel on different lanes.
//!
//! A lane instantiates lazily, calls `init`, then `handle` per event. Before each
//! event it compares its instance's version with the plugin's current version (an
//! atomic id, no lock) and re-instantiates if they differ: a reload is one
//! pointer swap, the event in progress finishes on the old version, every queued
//! event runs on the new one, and no event is lost or handled twice. A lane takes
//! whatever is queued (up to 64 events) in one wakeup and settles the shared
//! counters (`in_flight`, `handled`) once per batch; each event still gets its own
//! call, budget and deadline.
//!
//! A failed call (trap, deadline, memory or table limit, fuel, `init` error)
//! discards the instance. The lane waits a backoff (doubling per consecutive
//! failure) before the next instantiation; after [`Limits::quarantine_after`]
//! consecutive failures the plugin is quarantined: its events are dropped until
//! a new version (or spec) is installed. Other plugins are unaffected: they have
//! their own lanes, stores and instances.
//!
//! Events beyond [`Limits::max_in_flight`] per plugin are dropped for that plugin
//! and counted, so one slow plugin never holds up the event pipeline.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use wasmtime::{Store, Trap, UpdateDeadline};

use crate::bindings::{Plugin, PluginPre};
use crate::config::{HostConfig, Limits, PluginSpec};
use crate::engine::Runtime;
use crate::error::{DispatchError, Failure, HostError, LoadError};
use crate::services::{HostServices, KvBackend, SchedulerBackend};
use crate::state::{LimitExceeded, PluginCtx, PluginState, Services};
use crate::types::{Event, EventBody};

/// The longest failure or `init` message kept.
const MAX_FAILURE_TEXT: usize = 2000;

/// Runs plugins. Cheap to clone (all clones share one host). Must be created
/// inside a tokio runtime; plugin lanes run on that runtime.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<Inner>,
}

struct Inner {
    rt: Arc<Runtime>,
    services: Services,
    config: RwLock<HostConfig>,
    plugins: RwLock<HashMap<Arc<str>, Arc<Slot>>>,
    reload_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    handle: tokio::runtime::Handle,
    next_version: AtomicU64,
}

/// A plugin's registry entry. Dropping it closes the lanes' queues; the lanes
/// then finish the events already queued and exit.
struct Slot {
    shared: Arc<Shared>,
    lanes: Vec<mpsc::Sender<Arc<Event>>>,
}

/// Most events a lane takes off its queue in one go. A batch is handled in
/// order, one `handle` call per event; what it saves is per-event bookkeeping
/// (one wakeup, one in-flight update, one counter update per batch).
const LANE_BATCH: usize = 64;

/// The stack of a lane thread. Guest code runs on it (wasmtime's default
/// `max_wasm_stack` is 512 KiB), with the host functions it calls on top.
const LANE_STACK: usize = 4 << 20;

/// The state a plugin's lanes share.
struct Shared {
    name: Arc<str>,
    current: RwLock<Arc<Version>>,
    /// The id of `current`, written under its write lock: lanes compare it with
    /// their instance's version before each event without taking the lock.
    current_id: AtomicU64,
    /// Written by the dispatcher for every event: on its own cache line, so the
    /// lanes' per-event reads of the fields around it do not bounce between
    /// cores.
    in_flight: CacheLine<AtomicUsize>,
    idle: Notify,
    quarantined: AtomicBool,
    consecutive_failures: AtomicU32,
    next_restart: Mutex<Option<Instant>>,
    last_failure: Mutex<Option<Failure>>,
    handled: AtomicU64,
    failures: AtomicU64,
    dropped: AtomicU64,
    reloads: AtomicU64,
    busy_ns: AtomicU64,
}

/// A value alone on its cache line (128 bytes: adjacent-line prefetch pairs
/// 64-byte lines on x86).
#[repr(align(128))]
struct CacheLine<T>(T);

/// One compiled, validated version of a plugin with its spec.
struct Version {
    id: u64,
    sha256: [u8; 32],
    pre: PluginPre<PluginState>,
    ctx: Arc<PluginCtx>,
    spec: PluginSpec,
    source: Option<PathBuf>,
}

/// A lane's live instance.
struct Live {
    version: Arc<Version>,
    store: Store<PluginState>,
    plugin: Plugin,
}

/// The epoch callback's error when a call's tick budget is used up.
#[derive(Debug)]
struct DeadlineHit;

impl std::fmt::Display for DeadlineHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("plugin call deadline exceeded")
    }
}

impl std::error::Error for DeadlineHit {}

/// What [`PluginHost::dispatch`] did with an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Plugins the event was queued for.
    pub delivered: usize,
    /// Plugins in scope that did not get it, and why.
    pub dropped: Vec<DispatchError>,
}

/// The result of loading a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    /// A new plugin is running this version.
    Loaded {
        /// The version id.
        version: u64,
    },
    /// A new version replaced a running one.
    Replaced {
        /// The new version id.
        version: u64,
        /// The replaced version id.
        previous: u64,
    },
    /// The same bytes and spec were already running; nothing changed.
    Unchanged {
        /// The running version id.
        version: u64,
    },
}

impl LoadOutcome {
    /// The version now running.
    pub fn version(&self) -> u64 {
        match *self {
            LoadOutcome::Loaded { version }
            | LoadOutcome::Replaced { version, .. }
            | LoadOutcome::Unchanged { version } => version,
        }
    }
}

/// Whether a plugin is taking events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Handling events (possibly waiting out a restart backoff).
    Running,
    /// Dropping events after repeated failures, until a new version is loaded.
    Quarantined,
}

/// A snapshot of one plugin (for `wasmeow plugin list` and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginStatus {
    /// The plugin's name.
    pub name: String,
    /// The running version's id (unique in this host).
    pub version: u64,
    /// SHA-256 of the running component, hex.
    pub sha256: String,
    /// The file it was loaded from, if any.
    pub source: Option<PathBuf>,
    /// Running or quarantined.
    pub health: Health,
    /// Events handled successfully.
    pub handled: u64,
    /// Failed calls (each discarded an instance).
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Events dropped (overload, quarantine).
    pub dropped: u64,
    /// Events queued or running now.
    pub in_flight: usize,
    /// Versions installed over the first one.
    pub reloads: u64,
    /// Wall-clock time spent handling events (calls, host calls they made, restarts), for
    /// average latency: `busy / (handled + failures)`.
    pub busy: Duration,
    /// The most recent failure.
    pub last_failure: Option<Failure>,
}

impl PluginHost {
    /// Creates a host with the given backends. Call inside a tokio runtime.
    pub fn new(
        config: HostConfig,
        services: Arc<dyn HostServices>,
        kv: Arc<dyn KvBackend>,
        scheduler: Arc<dyn SchedulerBackend>,
    ) -> Result<Self, HostError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| HostError::NoRuntime)?;
        let rt = Arc::new(Runtime::new(config.engine.clone())?);
        Ok(PluginHost {
            inner: Arc::new(Inner {
                rt,
                services: Services {
                    host: services,
                    kv,
                    scheduler,
                    runtime: handle.clone(),
                },
                config: RwLock::new(config),
                plugins: RwLock::new(HashMap::new()),
                reload_locks: Mutex::new(HashMap::new()),
                handle,
                next_version: AtomicU64::new(1),
            }),
        })
    }

    /// Queues `event` for every loaded plugin whose grant covers its session and
    /// chat. Never blocks. Schedule events are not broadcast (they belong to one
    /// plugin): use [`PluginHost::dispatch_to`].
    pub fn dispatch(&self, event: Event) -> DispatchReport {
        let mut report = DispatchReport::default();
        if matches!(event.body, EventBody::ScheduleFired(_)) {
            tracing::warn!(job = ?event.body, "schedule-fired events go to their owner with dispatch_to; not broadcast");
            return report;
        }
        let event = Arc::new(event);
        let plugins = read(&self.inner.plugins);
        for slot in plugins.values() {
            match slot.offer(&event) {
                Ok(()) => report.delivered += 1,
                Err(DispatchError::OutOfScope(_)) => {}
                Err(e) => report.dropped.push(e),
            }
        }
        report
    }

    /// Queues `event` for one plugin (e.g. a `schedule-fired` event for the job's
    /// owner). The plugin's grant must still cover the event's session.
    pub fn dispatch_to(&self, plugin: &str, event: Event) -> Result<(), DispatchError> {
        let slot = read(&self.inner.plugins)
            .get(plugin)
            .cloned()
            .ok_or_else(|| DispatchError::NoSuchPlugin(plugin.to_owned()))?;
        slot.offer(&Arc::new(event))
    }

    /// Waits until no plugin has an event queued or running.
    pub async fn idle(&self) {
        let slots: Vec<Arc<Shared>> = read(&self.inner.plugins)
            .values()
            .map(|s| s.shared.clone())
            .collect();
        for shared in slots {
            shared.wait_idle().await;
        }
    }

    /// Loads (or reloads) the plugin in `path`; its name is the file stem.
    pub async fn load_file(&self, path: &Path) -> Result<LoadOutcome, LoadError> {
        let name = plugin_name(path)?;
        let owned = path.to_owned();
        let bytes = tokio::task::spawn_blocking(move || std::fs::read(&owned))
            .await
            .map_err(|_| LoadError::ShuttingDown)?
            .map_err(|source| LoadError::Io {
                path: path.to_owned(),
                source,
            })?;
        self.install(&name, bytes, Some(path.to_owned())).await
    }

    /// Loads (or reloads) a plugin from bytes.
    pub async fn load_bytes(&self, name: &str, wasm: Vec<u8>) -> Result<LoadOutcome, LoadError> {
        check_name(name)?;
        self.install(name, wasm, None).await
    }

    /// Loads every `*.wasm` file in `dir`. Returns each file's outcome; failures
    /// are also logged.
    pub async fn load_dir(
        &self,
        dir: &Path,
    ) -> Result<Vec<(PathBuf, Result<LoadOutcome, LoadError>)>, HostError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| HostError::Io {
                path: dir.to_owned(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_plugin_file(p))
            .collect();
        files.sort();
        let mut out = Vec::with_capacity(files.len());
        for path in files {
            let result = self.load_file(&path).await;
            out.push((path, result));
        }
        Ok(out)
    }

    /// Unloads a plugin: it takes no new events, finishes the queued ones, and
    /// its instances are dropped. Returns whether it was loaded.
    pub fn unload(&self, name: &str) -> bool {
        let removed = write(&self.inner.plugins).remove(name);
        if removed.is_some() {
            tracing::info!(plugin = name, "plugin unloaded");
        }
        removed.is_some()
    }

    /// Sets the spec of `name` (grant, config, limits). A loaded plugin is
    /// re-initialised with it like a reload (the trial `init` must pass), except
    /// that [`Limits::instances`] only takes effect on the next load.
    pub async fn set_spec(
        &self,
        name: &str,
        spec: PluginSpec,
    ) -> Result<Option<LoadOutcome>, LoadError> {
        check_name(name)?;
        let lock = self.reload_lock(name);
        let _guard = lock.lock().await;
        let slot = read(&self.inner.plugins).get(name).cloned();
        let Some(slot) = slot else {
            write(&self.inner.config)
                .plugins
                .insert(name.to_owned(), spec);
            return Ok(None);
        };
        let old = slot.shared.current();
        let ctx = self.make_ctx(name, &spec)?;
        let version = Arc::new(Version {
            id: self.inner.next_version.fetch_add(1, Ordering::Relaxed),
            sha256: old.sha256,
            pre: old.pre.clone(),
            ctx,
            spec: spec.clone(),
            source: old.source.clone(),
        });
        self.trial(&version).await?;
        write(&self.inner.config)
            .plugins
            .insert(name.to_owned(), spec);
        let id = version.id;
        slot.shared.swap(version);
        tracing::info!(
            plugin = name,
            version = id,
            previous = old.id,
            "plugin spec updated"
        );
        Ok(Some(LoadOutcome::Replaced {
            version: id,
            previous: old.id,
        }))
    }

    /// Snapshots of every loaded plugin, by name.
    pub fn list(&self) -> Vec<PluginStatus> {
        let mut out: Vec<PluginStatus> = read(&self.inner.plugins)
            .values()
            .map(|s| s.shared.status())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// A snapshot of one plugin.
    pub fn status(&self, name: &str) -> Option<PluginStatus> {
        read(&self.inner.plugins)
            .get(name)
            .map(|s| s.shared.status())
    }

    /// Instantiates and initialises a throwaway instance of the running version
    /// of `name` (a health probe; also what the instantiation benchmark measures).
    pub async fn check_instantiate(&self, name: &str) -> Result<(), Failure> {
        let slot = read(&self.inner.plugins).get(name).cloned();
        let Some(slot) = slot else {
            return Err(Failure::Instantiate(format!(
                "no plugin named {name:?} is loaded"
            )));
        };
        let version = slot.shared.current();
        self.instantiate_blocking(version).await
    }

    /// Instantiates and initialises a throwaway instance of `version` on the
    /// runtime's blocking pool (guest code never runs on a tokio worker).
    async fn instantiate_blocking(&self, version: Arc<Version>) -> Result<(), Failure> {
        let rt = self.inner.rt.clone();
        tokio::task::spawn_blocking(move || instantiate(&rt, &version).map(drop))
            .await
            .unwrap_or_else(|e| Err(Failure::Instantiate(format!("trial instance aborted: {e}"))))
    }

    /// Lifts a quarantine without loading a new version (the failure count starts
    /// over). Returns whether the plugin was quarantined.
    pub fn release(&self, name: &str) -> bool {
        let slot = read(&self.inner.plugins).get(name).cloned();
        slot.is_some_and(|s| {
            let was = s.shared.quarantined.swap(false, Ordering::AcqRel);
            s.shared.reset_health();
            was
        })
    }

    /// The plugin that `path` holds in a plugins directory (`dir/NAME.wasm`), and
    /// whether that plugin is loaded from exactly that file.
    pub(crate) fn loaded_from(&self, name: &str, path: &Path) -> bool {
        read(&self.inner.plugins)
            .get(name)
            .is_some_and(|s| s.shared.current().source.as_deref() == Some(path))
    }

    fn reload_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .reload_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        locks.entry(name.to_owned()).or_default().clone()
    }

    fn make_ctx(&self, name: &str, spec: &PluginSpec) -> Result<Arc<PluginCtx>, LoadError> {
        let config = match &spec.config {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            v @ serde_json::Value::Object(_) => v.clone(),
            _ => {
                return Err(LoadError::Config {
                    name: name.to_owned(),
                });
            }
        };
        Ok(Arc::new(PluginCtx {
            name: name.into(),
            grant: spec.grant.clone(),
            config_json: config.to_string(),
            config,
            limits: spec.limits.clone(),
            services: self.inner.services.clone(),
        }))
    }

    /// Instantiates and initialises a throwaway instance of `version`.
    async fn trial(&self, version: &Arc<Version>) -> Result<(), LoadError> {
        self.instantiate_blocking(version.clone())
            .await
            .map_err(|failure| LoadError::Init {
                name: version.ctx.name.to_string(),
                failure,
            })
    }

    async fn install(
        &self,
        name: &str,
        wasm: Vec<u8>,
        source: Option<PathBuf>,
    ) -> Result<LoadOutcome, LoadError> {
        let result = self.install_inner(name, wasm, source.clone()).await;
        match &result {
            Ok(LoadOutcome::Loaded { version }) => {
                tracing::info!(plugin = name, version, source = ?source, "plugin loaded")
            }
            Ok(LoadOutcome::Replaced { version, previous }) => {
                tracing::info!(plugin = name, version, previous, source = ?source, "plugin reloaded")
            }
            Ok(LoadOutcome::Unchanged { .. }) => {}
            Err(e) => match self.status(name) {
                Some(running) => tracing::error!(
                    plugin = name,
                    running_version = running.version,
                    "rejected new version of plugin {name:?}; version {} keeps running: {e}",
                    running.version
                ),
                None => tracing::error!(plugin = name, "plugin {name:?} not loaded: {e}"),
            },
        }
        result
    }

    async fn install_inner(
        &self,
        name: &str,
        wasm: Vec<u8>,
        source: Option<PathBuf>,
    ) -> Result<LoadOutcome, LoadError> {
        let spec = read(&self.inner.config)
            .spec_for(name)
            .cloned()
            .ok_or_else(|| LoadError::NotConfigured(name.to_owned()))?;
        let lock = self.reload_lock(name);
        let _guard = lock.lock().await;

        let sha256: [u8; 32] = Sha256::digest(&wasm).into();
        let existing = read(&self.inner.plugins).get(name).cloned();
        if let Some(slot) = &existing {
            let cur = slot.shared.current();
            if cur.sha256 == sha256
                && cur.spec == spec
                && !slot.shared.quarantined.load(Ordering::Acquire)
            {
                return Ok(LoadOutcome::Unchanged { version: cur.id });
            }
        }

        let rt = self.inner.rt.clone();
        let component = tokio::task::spawn_blocking(move || rt.compile(&wasm, &sha256))
            .await
            .map_err(|_| LoadError::ShuttingDown)?
            .map_err(|e| LoadError::Compile {
                name: name.to_owned(),
                reason: error_text(&e),
            })?;
        if let Some(built_for) = other_contract(&component, &self.inner.rt.engine) {
            return Err(LoadError::World {
                name: name.to_owned(),
                reason: format!(
                    "it was built for wasmeow:bot@{built_for}, this host implements \
                     wasmeow:bot@{CONTRACT_VERSION}; rebuild it against the current SDK \
                     and wit/ (wasmeow plugin build)"
                ),
            });
        }
        let world = |e: wasmtime::Error| LoadError::World {
            name: name.to_owned(),
            reason: error_text(&e),
        };
        let pre = self
            .inner
            .rt
            .linker
            .instantiate_pre(&component)
            .map_err(world)?;
        let pre = PluginPre::new(pre).map_err(world)?;

        let version = Arc::new(Version {
            id: self.inner.next_version.fetch_add(1, Ordering::Relaxed),
            sha256,
            pre,
            ctx: self.make_ctx(name, &spec)?,
            spec,
            source,
        });
        self.trial(&version).await?;

        let id = version.id;
        if let Some(slot) = existing {
            let previous = slot.shared.swap(version);
            return Ok(LoadOutcome::Replaced {
                version: id,
                previous,
            });
        }
        let slot = self.spawn_slot(name, version);
        write(&self.inner.plugins).insert(name.into(), slot);
        Ok(LoadOutcome::Loaded { version: id })
    }

    fn spawn_slot(&self, name: &str, version: Arc<Version>) -> Arc<Slot> {
        let lanes = version.ctx.limits.instances.clamp(1, 64);
        let shared = Arc::new(Shared {
            name: name.into(),
            current_id: AtomicU64::new(version.id),
            current: RwLock::new(version),
            in_flight: CacheLine(AtomicUsize::new(0)),
            idle: Notify::new(),
            quarantined: AtomicBool::new(false),
            consecutive_failures: AtomicU32::new(0),
            next_restart: Mutex::new(None),
            last_failure: Mutex::new(None),
            handled: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
        });
        let senders = (0..lanes)
            .filter_map(|i| {
                let (tx, rx) = mpsc::channel();
                let (shared, rt, handle) = (
                    shared.clone(),
                    self.inner.rt.clone(),
                    self.inner.handle.clone(),
                );
                let spawned = std::thread::Builder::new()
                    .name(format!("wasmeow-plugin-{name}-{i}"))
                    .stack_size(LANE_STACK)
                    .spawn(move || {
                        let _runtime = handle.enter();
                        run_lane(&shared, &rt, &rx);
                    });
                match spawned {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        tracing::error!(
                            plugin = name,
                            lane = i,
                            "could not start a plugin lane thread: {e}"
                        );
                        None
                    }
                }
            })
            .collect();
        Arc::new(Slot {
            shared,
            lanes: senders,
        })
    }
}

impl Slot {
    fn offer(&self, event: &Arc<Event>) -> Result<(), DispatchError> {
        let shared = &self.shared;
        let max = {
            let cur = read(&shared.current);
            if !cur.ctx.grant.allows_event(event) {
                return Err(DispatchError::OutOfScope(shared.name.to_string()));
            }
            cur.ctx.limits.max_in_flight
        };
        if shared.quarantined.load(Ordering::Acquire) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(DispatchError::Quarantined(shared.name.to_string()));
        }
        if shared.in_flight.0.fetch_add(1, Ordering::AcqRel) >= max {
            shared.finish_one();
            let n = shared.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() || n == 0 {
                tracing::warn!(plugin = %shared.name, dropped = n + 1, "plugin overloaded; dropping events");
            }
            return Err(DispatchError::Overloaded(shared.name.to_string()));
        }
        let lane = lane_for(event, self.lanes.len());
        let sent = self
            .lanes
            .get(lane)
            .is_some_and(|l| l.send(event.clone()).is_ok());
        if !sent {
            shared.finish_one();
            return Err(DispatchError::NoSuchPlugin(shared.name.to_string()));
        }
        Ok(())
    }
}

impl Shared {
    fn current(&self) -> Arc<Version> {
        read(&self.current).clone()
    }

    /// Installs a new version; returns the previous version's id.
    fn swap(&self, version: Arc<Version>) -> u64 {
        let previous = {
            let mut current = write(&self.current);
            self.current_id.store(version.id, Ordering::Release);
            std::mem::replace(&mut *current, version)
        };
        self.reset_health();
        self.quarantined.store(false, Ordering::Release);
        self.reloads.fetch_add(1, Ordering::Relaxed);
        previous.id
    }

    fn reset_health(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        *lock(&self.next_restart) = None;
    }

    fn finish_one(&self) {
        self.finish(1);
    }

    /// `n` events accepted by [`Slot::offer`] are done (handled or dropped).
    fn finish(&self, n: usize) {
        if n != 0 && self.in_flight.0.fetch_sub(n, Ordering::AcqRel) == n {
            self.idle.notify_waiters();
        }
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.0.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    fn succeed(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.reset_health();
        }
    }

    fn fail(&self, version: &Version, failure: Failure, during: &'static str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let n = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        let limits = &version.ctx.limits;
        tracing::warn!(
            plugin = %self.name,
            version = version.id,
            consecutive = n,
            "plugin failed during {during}, instance discarded: {failure}"
        );
        *lock(&self.last_failure) = Some(failure);
        if n >= limits.quarantine_after {
            if !self.quarantined.swap(true, Ordering::AcqRel) {
                tracing::error!(
                    plugin = %self.name,
                    version = version.id,
                    "plugin quarantined after {n} consecutive failures; its events are dropped until a new version is loaded"
                );
            }
            return;
        }
        let exp = (n - 1).min(20);
        let backoff = limits
            .backoff_initial
            .saturating_mul(1u32 << exp)
            .min(limits.backoff_max);
        *lock(&self.next_restart) = Some(Instant::now() + backoff);
    }

    /// Sleeps (the lane thread) until the restart backoff is over.
    fn wait_backoff(&self) {
        let until = *lock(&self.next_restart);
        if let Some(wait) = until.and_then(|u| u.checked_duration_since(Instant::now())) {
            std::thread::sleep(wait);
        }
    }

    fn status(&self) -> PluginStatus {
        let cur = self.current();
        PluginStatus {
            name: self.name.to_string(),
            version: cur.id,
            sha256: hex::encode(cur.sha256),
            source: cur.source.clone(),
            health: if self.quarantined.load(Ordering::Acquire) {
                Health::Quarantined
            } else {
                Health::Running
            },
            handled: self.handled.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            in_flight: self.in_flight.0.load(Ordering::Acquire),
            reloads: self.reloads.load(Ordering::Relaxed),
            busy: Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed)),
            last_failure: lock(&self.last_failure).clone(),
        }
    }
}

/// One lane: handles its queue in order until the queue closes. Events are
/// taken off the queue in batches of up to [`LANE_BATCH`]; each still gets its
/// own `handle` call, its own budget and the version check.
fn run_lane(shared: &Shared, rt: &Runtime, rx: &mpsc::Receiver<Arc<Event>>) {
    let mut live: Option<Live> = None;
    let mut batch: Vec<Arc<Event>> = Vec::with_capacity(LANE_BATCH);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < LANE_BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let n = batch.len();
        let mut handled = 0u64;
        // One clock read per batch, not per event.
        let started = Instant::now();
        for event in batch.drain(..) {
            if handle_one(shared, rt, &mut live, &event) {
                handled += 1;
            }
        }
        let busy = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        shared.busy_ns.fetch_add(busy, Ordering::Relaxed);
        // Counted before the events leave `in_flight`, so a caller woken by
        // `idle` sees them in `status`.
        shared.handled.fetch_add(handled, Ordering::Relaxed);
        shared.finish(n);
    }
}

/// Handles one event; returns whether the plugin handled it successfully.
fn handle_one(shared: &Shared, rt: &Runtime, live: &mut Option<Live>, event: &Arc<Event>) -> bool {
    if shared.quarantined.load(Ordering::Acquire) {
        shared.dropped.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    // A reload stores the new id under the `current` write lock: an instance of
    // an older version is discarded here, before the first event queued after
    // the swap (the lock is only taken when the version changed).
    let current = shared.current_id.load(Ordering::Acquire);
    if live.as_ref().is_some_and(|l| l.version.id != current) {
        *live = None;
    }
    if live.is_none() {
        let version = shared.current();
        shared.wait_backoff();
        if shared.quarantined.load(Ordering::Acquire) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        match instantiate(rt, &version) {
            Ok(l) => *live = Some(l),
            Err(failure) => {
                shared.fail(&version, failure, "instantiation");
                return false;
            }
        }
    }
    let Some(l) = live.as_mut() else { return false };
    let limits = &l.version.ctx.limits;
    let budget = rt.ticks(limits.deadline);
    begin_call(rt, &mut l.store, budget, limits);
    let info = event.info();
    l.store.data_mut().current = Some(event.clone());
    let result = l.plugin.call_handle(&mut l.store, &info);
    l.store.data_mut().current = None;
    match result {
        Ok(()) => {
            shared.succeed();
            true
        }
        Err(e) => {
            let version = l.version.clone();
            *live = None;
            shared.fail(&version, classify(&e, rt.ticks_ms(budget)), "handle");
            false
        }
    }
}

fn begin_call(rt: &Runtime, store: &mut Store<PluginState>, ticks: u64, limits: &Limits) {
    store.data_mut().begin_call(ticks);
    store.set_epoch_deadline(1);
    if rt.config.fuel {
        // Fuel is enabled engine-wide, so setting it cannot fail.
        let _ = store.set_fuel(limits.fuel.unwrap_or(u64::MAX));
    }
}

/// A new instance of `version` with `init` called (blocking: call it on a lane
/// or blocking-pool thread).
fn instantiate(rt: &Runtime, version: &Arc<Version>) -> Result<Live, Failure> {
    let mut store = Store::new(
        &rt.engine,
        PluginState::new(version.ctx.clone(), rt.config.pool_max_memory_bytes),
    );
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_callback(|mut cx| {
        let state = cx.data_mut();
        if state.ticks_left <= 1 {
            state.ticks_left = 0;
            return Err(DeadlineHit.into());
        }
        state.ticks_left -= 1;
        Ok(UpdateDeadline::Continue(1))
    });
    let budget = rt.ticks(version.ctx.limits.init_deadline);
    begin_call(rt, &mut store, budget, &version.ctx.limits);
    let ms = rt.ticks_ms(budget);
    let plugin = version
        .pre
        .instantiate(&mut store)
        .map_err(|e| match classify(&e, ms) {
            Failure::Trap(msg) if e.downcast_ref::<Trap>().is_none() => Failure::Instantiate(msg),
            other => other,
        })?;
    match plugin.call_init(&mut store, &version.ctx.config_json) {
        Ok(Ok(())) => Ok(Live {
            version: version.clone(),
            store,
            plugin,
        }),
        Ok(Err(msg)) => Err(Failure::InitRejected(cut(msg))),
        Err(e) => Err(classify(&e, ms)),
    }
}

/// Maps a wasmtime error from a guest call onto a [`Failure`].
fn classify(e: &wasmtime::Error, budget_ms: u64) -> Failure {
    if e.downcast_ref::<DeadlineHit>().is_some() {
        return Failure::Deadline(budget_ms);
    }
    if let Some(LimitExceeded(f)) = e.downcast_ref::<LimitExceeded>() {
        return f.clone();
    }
    if let Some(Trap::OutOfFuel) = e.downcast_ref::<Trap>() {
        return Failure::OutOfFuel;
    }
    Failure::Trap(cut(error_text(e)))
}

/// An error with its causes, on one line.
fn error_text(e: &wasmtime::Error) -> String {
    let mut out = String::new();
    for (i, cause) in e.chain().enumerate() {
        if i > 0 {
            out.push_str(": ");
        }
        out.push_str(&cause.to_string().replace('\n', " "));
    }
    out
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_FAILURE_TEXT {
        let mut end = MAX_FAILURE_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// The version of the `wasmeow:bot` package in `wit/` (what the bindings
/// implement).
const CONTRACT_VERSION: &str = "0.2.0";

/// The `wasmeow:bot` version a component imports, when it is not
/// [`CONTRACT_VERSION`] (a plugin built against an older contract). Import names
/// are `wasmeow:bot/INTERFACE@VERSION`.
fn other_contract(
    component: &wasmtime::component::Component,
    engine: &wasmtime::Engine,
) -> Option<String> {
    let ty = component.component_type();
    let mut imports = ty.imports(engine);
    imports.find_map(|(name, _)| {
        let version = name.strip_prefix("wasmeow:bot/")?.split_once('@')?.1;
        (version != CONTRACT_VERSION).then(|| version.to_owned())
    })
}

/// The lane of an event: FNV-1a of its session and chat.
fn lane_for(event: &Event, lanes: usize) -> usize {
    if lanes <= 1 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let key = event.chat().unwrap_or("");
    for b in event.session.bytes().chain([0]).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % lanes as u64) as usize
}

/// Whether `path` looks like a plugin file (`NAME.wasm`, not hidden).
pub(crate) fn is_plugin_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'))
}

/// The plugin name of a file: its stem.
pub(crate) fn plugin_name(path: &Path) -> Result<String, LoadError> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    check_name(&stem)?;
    Ok(stem)
}

fn check_name(name: &str) -> Result<(), LoadError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(LoadError::InvalidName(name.to_owned()))
    }
}

// Lock helpers: every critical section below is a single read, write or swap of
// plain data, so a lock poisoned by a panicking thread still holds consistent
// state and is used as is.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(plugin_name(Path::new("/x/echo.wasm")).unwrap(), "echo");
        assert!(plugin_name(Path::new("/x/Echo.wasm")).is_err());
        assert!(plugin_name(Path::new("/x/.wasm")).is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(is_plugin_file(Path::new("a/b.wasm")));
        assert!(!is_plugin_file(Path::new("a/.b.wasm")));
        assert!(!is_plugin_file(Path::new("a/b.wasm.tmp")));
    }

    #[test]
    fn the_contract_version_is_the_one_in_wit() {
        let world = include_str!("../../../wit/world.wit");
        assert!(world.starts_with(&format!("package wasmeow:bot@{CONTRACT_VERSION};")));
    }

    #[test]
    fn lanes_are_stable_per_chat() {
        let a = Event::text("s", "a@s.whatsapp.net", "a@s.whatsapp.net", "1", "x");
        let b = Event::text("s", "a@s.whatsapp.net", "b@s.whatsapp.net", "2", "y");
        assert_eq!(lane_for(&a, 4), lane_for(&b, 4));
        assert_eq!(lane_for(&a, 1), 0);
        let spread: std::collections::BTreeSet<usize> = (0..64)
            .map(|i| {
                lane_for(
                    &Event::text("s", &format!("{i}@s.whatsapp.net"), "x", "1", "x"),
                    4,
                )
            })
            .collect();
        assert_eq!(spread.len(), 4);
    }
}
