//! The one `bindgen!` of the host, over `wit/` (world `wasmeow:bot/plugin`).
//!
//! Every import is `async` (host services are async, and a plugin call must never
//! block a tokio worker) and none is trappable: host functions answer with the WIT
//! `api-error` variant, never a trap. Exports are `async` so calls run on a fiber
//! that yields at epoch ticks. The generated record and variant types are the
//! crate's public event and value types (re-exported from [`crate::types`]).
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
    imports: { default: async },
    exports: { default: async },
    additional_derives: [PartialEq],
});
