//! Integration tests of the plugin host: real components (the committed builds of
//! `plugins/` and `tests/fixtures/`) running in the host with fake services.

mod build;
mod common;
mod examples;
mod reload;
mod sandbox;
