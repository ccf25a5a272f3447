//! The wasmeow host as a library: configuration and the wiring behind the `wasmeow` binary.
//!
//! The binary (`src/main.rs`) is a thin command-line layer over these modules, so tests and embedders can
//! drive the same code.

pub mod config;
pub mod store_cmd;
