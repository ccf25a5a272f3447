//! The one `bindgen!` of the host, over `wit/` (world `wasmeow:bot/plugin`).
//!
//! Imports and exports are synchronous: plugin calls run on the plugin's own lane
//! threads (never a tokio worker), straight on the thread's stack with no fiber
//! switch, and a host function that must wait for an async service blocks its
//! lane (see [`crate::state::PluginState::timed`]). No import is trappable: host
//! functions answer with the WIT `api-error` variant, never a trap. The generated
//! record and variant types are the crate's public event and value types
//! (re-exported from [`crate::types`]).
#![allow(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    elided_lifetimes_in_paths,
    clippy::all
)]

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin",
    additional_derives: [PartialEq],
});
