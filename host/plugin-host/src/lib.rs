//! Runs wasmeow bot plugins: WebAssembly components of the `wasmeow:bot/plugin`
//! world (`wit/`), sandboxed under wasmtime 48.
//!
//! Events come in as [`Event`] values through [`PluginHost::dispatch`]; what
//! plugins ask the host to do goes out through the [`HostServices`],
//! [`KvBackend`] and [`SchedulerBackend`] traits. That is the whole surface the
//! session engine, the store and the scheduler see, and what end-to-end tests
//! drive.
//!
//! ```no_run
//! use std::sync::Arc;
//! use wasmeow_plugin_host::memory::{MemoryKv, MemoryScheduler};
//! use wasmeow_plugin_host::testing::RecordingServices;
//! use wasmeow_plugin_host::{Capability, Event, Grant, HostConfig, PluginHost, PluginSpec, Scope};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = HostConfig::default();
//! let grant = Grant { sessions: Scope::All, chats: Scope::All, ..Grant::default() }
//!     .with([Capability::Messaging]);
//! config.plugins.insert("echo".into(), PluginSpec::new(grant));
//! let services = Arc::new(RecordingServices::new());
//! let host = PluginHost::new(config, services.clone(), Arc::new(MemoryKv::new()), Arc::new(MemoryScheduler::new()))?;
//! let _watcher = host.watch("plugins/dist".as_ref()).await?; // loads and hot-reloads *.wasm
//! host.dispatch(Event::text("main", "123@s.whatsapp.net", "123@s.whatsapp.net", "ID1", "!ping"));
//! host.idle().await;
//! assert_eq!(services.sent()[0].2.text, "pong");
//! # Ok(()) }
//! ```
//!
//! # Sandbox
//!
//! * **Capabilities.** Every import is a capability ([`Capability`]); a plugin's
//!   [`Grant`] also scopes it to sessions and chats, and group-admin actions are a
//!   separate capability. Calls outside the grant return `api-error::denied`
//!   (one choke point, `Grant::check`), never a trap. Events outside the scope
//!   are not delivered.
//! * **WASI** p2 is linked (so componentize-js/py components run) but grants
//!   nothing: no files, sockets, environment or arguments; stdout/stderr go to
//!   the log (tracing target `wasmeow::plugin`) tagged with the plugin's name.
//! * **Limits** ([`Limits`]): a CPU deadline per call via epoch interruption
//!   (100 ms; a ticker thread advances the epoch, and a call still running when
//!   its ticks are used up traps), optional fuel, linear memory and table limits,
//!   a cap on events in flight, a cap on host calls per event, a timeout per host
//!   call. All allocations guests can cause in the host are bounded.
//! * **Failures** (trap, deadline, limits, `init` error) discard the instance;
//!   the plugin is restarted with exponential backoff and **quarantined** after
//!   [`Limits::quarantine_after`] consecutive failures, until a new version is
//!   loaded. Other plugins never notice.
//!
//! # Execution
//!
//! One engine (pooling allocator, epochs, synchronous calls), one linker, and per
//! plugin version one `InstancePre`. Each plugin runs on a few *lanes*
//! ([`Limits::instances`]): OS threads, each owning one instance; a chat always
//! maps to the same lane, so events of one chat are handled in order while chats
//! run in parallel. Guest code runs straight on the lane's stack (no fiber switch
//! per call) and never on a tokio worker; an import whose service has to wait
//! blocks only its lane (the lane is inside the runtime's context, so it drives
//! the service's future with the runtime's handle).
//!
//! `handle` receives only an `event-info` (kind, flags, a message's text); the
//! plugin reads the rest of the event through the `current` interface while the
//! call runs, and answers with `messaging.reply-current`. Each string crossing
//! the boundary costs a guest allocation, so a plugin pays for what it reads.
//!
//! # Loading and hot reload
//!
//! [`PluginHost::watch`] loads `NAME.wasm` files from a directory and reloads them
//! when they change: compile (off the event path; cached on disk by content hash
//! when [`EngineConfig::cache_dir`] is set), type-check against the world, run a
//! trial `init`, then swap atomically. Events in progress finish on the old
//! version, queued ones run on the new one, none is lost or repeated. A broken
//! file is rejected with a log line and the old version keeps running; a deleted
//! file unloads the plugin.
//!
//! # Building plugins
//!
//! [`build::build_plugin`] compiles a plugin crate to a component reproducibly and
//! [`build::scaffold_plugin`] creates a new one (see `sdk/` for the guest SDK and
//! `plugins/README.md` for the guest workspace). The example `build-plugins`
//! rebuilds the committed components.
//!
//! # Performance
//!
//! `cargo bench -p wasmeow-plugin-host --bench dispatch` (criterion; the Rust
//! `echo` plugin answering `!ping` with one `reply-current` host call;
//! production engine, limits and allocator). Quiet machine (2 vCPUs, AMD EPYC
//! 2.45 GHz), 2026-11-24:
//!
//! | benchmark | per event | plugin calls/s |
//! |---|---:|---:|
//! | `dispatch/plugins_1/one_chat` (one lane, sequential) | 0.81 µs | 1.23 M |
//! | `dispatch/plugins_1/64_chats` (2 lanes, both cores) | 0.61 µs | 1.64 M |
//! | `dispatch/plugins_10/one_chat` (10 lanes) | 4.1 µs (0.41 µs per call) | 2.44 M |
//! | `dispatch/plugins_10/64_chats` (20 lanes) | 5.2 µs (0.52 µs per call) | 1.91 M |
//! | `dispatch/plugins_1/no_host_call` (the plugin ignores the text) | 0.49 µs | 2.04 M |
//! | `instantiate/echo` (new instance + `init`, on the blocking pool) | 48 µs | – |
//! | `reload/file_to_new_version` (rename → first answer of the new version, compile included) | 49 ms | – |
//!
//! Targets: ≤ 1 µs per event with one host call, ≥ 1 M calls/s over both cores,
//! reload ≤ 250 ms — met. Load-independent (callgrind, the bench's
//! `WASMEOW_DISPATCH_EVENTS` mode): ≈ 6.4 k instructions per `!ping` on the lane
//! (≈ 8.4 k with the harness building the events), of which wasmtime ≈ 3.4 k,
//! the guest ≈ 1.1 k, this crate ≈ 0.8 k, the allocator the rest. See
//! `docs/benchmarks.md` for how the 0.1 contract's 19.7 k came down.

mod bindings;
pub mod build;
mod cache;
mod config;
mod engine;
mod error;
mod grant;
mod host;
mod imports;
pub mod memory;
mod services;
mod state;
pub mod testing;
pub mod types;
mod watch;

pub use config::{EngineConfig, HostConfig, Limits, PluginSpec};
pub use error::{DispatchError, Failure, HostError, LoadError};
pub use grant::{Capability, Grant, Scope};
pub use host::{DispatchReport, Health, LoadOutcome, PluginHost, PluginStatus};
pub use services::{GroupSetting, HostServices, KvBackend, ParticipantAction, SchedulerBackend};
pub use types::{ApiError, Event, EventBody};
pub use watch::{RELOAD_DEBOUNCE, Watcher};
