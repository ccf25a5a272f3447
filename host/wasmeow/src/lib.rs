//! The wasmeow host as a library: configuration and the wiring behind the `wasmeow` binary.
//!
//! The binary (`src/main.rs`) is a thin command-line layer over these modules, so tests and embedders can
//! drive the same code.

pub mod admin;
pub mod cli;
pub mod client;
pub mod config;
pub mod control;
pub mod demo;
pub mod qr;
pub mod runtime;
pub mod store_cmd;
