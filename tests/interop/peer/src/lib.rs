//! Shared helpers for the interop peer binaries in `src/bin/`.
//!
//! Each binary is a small, single-purpose program that the Node harness in
//! `tests/interop/*.test.mjs` starts and talks to over stdin/stdout (JSON lines)
//! or loopback sockets, so that Baileys and libsignal-node can check our wire
//! formats from the other side.
