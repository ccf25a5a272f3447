//! Configuration of the host and of each plugin: engine-wide settings
//! ([`EngineConfig`]), per-plugin limits ([`Limits`]) and the per-plugin spec the
//! bot's config loader builds from `bot.toml` ([`PluginSpec`]: grant, config table,
//! limits). Every default is a safe one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::grant::Grant;

/// Per-plugin resource limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// CPU deadline of one `handle` call, counted in epoch ticks while guest code
    /// runs (time the guest spends waiting on a host call counts as at most one
    /// tick per call). Default 100 ms.
    pub deadline: Duration,
    /// Deadline of instantiation plus `init`. Default 1 s.
    pub init_deadline: Duration,
    /// Fuel per call when the engine has fuel enabled ([`EngineConfig::fuel`]);
    /// `None` means unlimited fuel. Default `None`.
    pub fuel: Option<u64>,
    /// Largest linear memory of one instance, in bytes. Default 64 MiB.
    pub memory_bytes: usize,
    /// Largest table of one instance, in elements. Default 100 000.
    pub table_elements: usize,
    /// Events accepted but not yet handled; more are dropped for this plugin (and
    /// counted) so a slow plugin cannot hold up the others. Default 4096.
    pub max_in_flight: usize,
    /// Instances that handle events in parallel (one chat always goes to the same
    /// instance, so its events stay in order). Default 2.
    pub instances: usize,
    /// Consecutive failures (traps, deadline, limits, init errors) after which the
    /// plugin is quarantined until a new version is loaded. Default 5.
    pub quarantine_after: u32,
    /// Wait before re-instantiating after the first failure; doubles per
    /// consecutive failure up to [`Limits::backoff_max`]. Default 50 ms.
    pub backoff_initial: Duration,
    /// Longest wait between restarts. Default 10 s.
    pub backoff_max: Duration,
    /// Longest wait for one host service call before it returns `unavailable`.
    /// Default 10 s.
    pub host_call_timeout: Duration,
    /// Host calls allowed in one `handle` call; more return `rate-limited`.
    /// Default 1000.
    pub max_host_calls_per_event: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(100),
            init_deadline: Duration::from_secs(1),
            fuel: None,
            memory_bytes: 64 << 20,
            table_elements: 100_000,
            max_in_flight: 4096,
            instances: 2,
            quarantine_after: 5,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(10),
            host_call_timeout: Duration::from_secs(10),
            max_host_calls_per_event: 1000,
        }
    }
}

/// How one plugin runs: what it may do, its config table, its limits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PluginSpec {
    /// Capabilities and scopes.
    pub grant: Grant,
    /// The plugin's table from `bot.toml`, as a JSON object (`Null` means `{}`).
    pub config: serde_json::Value,
    /// Resource limits.
    pub limits: Limits,
}

impl PluginSpec {
    /// A spec with `grant`, no config and default limits.
    pub fn new(grant: Grant) -> Self {
        PluginSpec {
            grant,
            config: serde_json::Value::Null,
            limits: Limits::default(),
        }
    }

    /// Sets the config table.
    pub fn with_config(mut self, config: serde_json::Value) -> Self {
        self.config = config;
        self
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// Engine-wide settings. Changing any of these invalidates the compilation cache
/// (entries are keyed by the engine's compatibility hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Instrument code for fuel, so [`Limits::fuel`] can bound calls
    /// deterministically (costs 10–50 % speed). Default off.
    pub fuel: bool,
    /// Epoch tick: the granularity of deadlines. Default 5 ms.
    pub epoch_tick: Duration,
    /// Component instances the pooling allocator holds (all plugins, all
    /// instances, plus trial instances during reloads). Default 256.
    pub pool_instances: u32,
    /// The largest linear memory the pool supports; a plugin's
    /// [`Limits::memory_bytes`] above it is capped to it. Default 256 MiB.
    pub pool_max_memory_bytes: usize,
    /// Where compiled plugins are cached (created with mode 0700); `None` disables
    /// the cache.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            fuel: false,
            epoch_tick: Duration::from_millis(5),
            pool_instances: 256,
            pool_max_memory_bytes: 256 << 20,
            cache_dir: None,
        }
    }
}

/// Everything [`crate::PluginHost::new`] needs besides the service backends.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// Engine settings.
    pub engine: EngineConfig,
    /// Specs by plugin name (a plugin's name is its file stem: `echo.wasm` is
    /// `echo`).
    pub plugins: BTreeMap<String, PluginSpec>,
    /// The spec of plugins found without an entry in [`HostConfig::plugins`];
    /// `None` (the default) leaves such files unloaded.
    pub default_spec: Option<PluginSpec>,
}

impl HostConfig {
    /// The spec for `name`.
    pub fn spec_for(&self, name: &str) -> Option<&PluginSpec> {
        self.plugins.get(name).or(self.default_spec.as_ref())
    }
}
