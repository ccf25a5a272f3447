//! The host's error types, one enum per failure domain: setting the host up
//! ([`HostError`]), loading a plugin ([`LoadError`]), routing an event
//! ([`DispatchError`]), and why a plugin call failed ([`Failure`]).
//!
//! Errors a *plugin* sees are never these: host functions return the WIT
//! `api-error` variant ([`crate::ApiError`]).

use std::path::PathBuf;

/// Setting up the engine, the cache or the watcher failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// wasmtime rejected the engine configuration (e.g. pooling limits).
    #[error("wasmtime engine: {0}")]
    Engine(String),
    /// The linker could not be populated with WASI or the wasmeow interfaces.
    #[error("linker: {0}")]
    Linker(String),
    /// The compilation cache directory cannot be used.
    #[error("compilation cache at {path}: {reason}")]
    Cache {
        /// The cache directory.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// The file watcher could not be started.
    #[error("watching {path}: {reason}")]
    Watch {
        /// The watched directory.
        path: PathBuf,
        /// The watcher's error.
        reason: String,
    },
    /// Reading a plugins directory failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// [`crate::PluginHost::new`] was called outside a tokio runtime.
    #[error("the plugin host must be created inside a tokio runtime")]
    NoRuntime,
}

/// A plugin could not be loaded (or a new version of it was rejected).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The plugin name (the file stem) is not `[a-z0-9_-]{1,64}`.
    #[error("invalid plugin name {0:?}: use 1 to 64 characters of a-z, 0-9, '_' and '-'")]
    InvalidName(String),
    /// Reading the file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The plugin file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No `[plugins.NAME]` entry and no default spec: the file is ignored.
    #[error("plugin {0:?} is not configured (no spec and no default spec); not loaded")]
    NotConfigured(String),
    /// The bytes are not a valid component, or failed to compile.
    #[error("plugin {name:?} does not compile: {reason}")]
    Compile {
        /// The plugin.
        name: String,
        /// wasmtime's error.
        reason: String,
    },
    /// The component's imports or exports do not match the `wasmeow:bot/plugin`
    /// world (or the WASI subset the host provides).
    #[error("plugin {name:?} does not match the wasmeow:bot/plugin world: {reason}")]
    World {
        /// The plugin.
        name: String,
        /// wasmtime's type-check error.
        reason: String,
    },
    /// The trial instance trapped or `init` returned an error.
    #[error("plugin {name:?} failed its trial init: {failure}")]
    Init {
        /// The plugin.
        name: String,
        /// What went wrong.
        failure: Failure,
    },
    /// The config given in the spec is not a JSON object.
    #[error("plugin {name:?}: config must be a JSON object")]
    Config {
        /// The plugin.
        name: String,
    },
    /// The host is shutting down.
    #[error("the plugin host is shutting down")]
    ShuttingDown,
}

/// An event could not be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// No plugin of that name is loaded.
    #[error("no plugin named {0:?} is loaded")]
    NoSuchPlugin(String),
    /// The plugin's grant does not cover the event's session or chat.
    #[error("plugin {0:?} is not granted this event's session or chat")]
    OutOfScope(String),
    /// The plugin is quarantined after repeated traps.
    #[error("plugin {0:?} is quarantined")]
    Quarantined(String),
    /// The plugin already has its maximum number of events in flight.
    #[error("plugin {0:?} has too many events in flight; event dropped")]
    Overloaded(String),
}

/// Why a call into a plugin (instantiate, `init` or `handle`) failed. Every
/// failure discards the instance; repeated failures quarantine the plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The call ran past its CPU deadline (epoch interruption).
    #[error("deadline of {0} ms exceeded")]
    Deadline(u64),
    /// The call used up its fuel.
    #[error("out of fuel")]
    OutOfFuel,
    /// Linear memory would grow past the plugin's limit.
    #[error("memory limit of {limit} bytes exceeded (wanted {wanted})")]
    MemoryLimit {
        /// The configured limit in bytes.
        limit: usize,
        /// The size the guest asked for.
        wanted: usize,
    },
    /// A table would grow past the plugin's limit.
    #[error("table limit of {limit} elements exceeded")]
    TableLimit {
        /// The configured limit in elements.
        limit: usize,
    },
    /// The guest trapped (panic, unreachable, out-of-bounds access, …).
    #[error("trap: {0}")]
    Trap(String),
    /// Instantiation failed (e.g. the pool is exhausted).
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    /// `init` returned `err(..)`.
    #[error("init returned an error: {0}")]
    InitRejected(String),
}
