//! `wasmeow-sim`: a local server that speaks WhatsApp's multi-device protocol from the server
//! side, so that our host and unmodified third-party clients (Baileys) can be tested end to end
//! without WhatsApp.
//!
//! It serves `ws://` and `wss://` on loopback with Noise XX (server role) and a certificate
//! chain under a test root, links companions to accounts whose primary phones are simulated
//! with real Signal keys (QR scan and pairing code), answers the login-time IQs, routes
//! end-to-end encrypted messages per device with server acks, relays receipts, presence and chat
//! state, keeps an offline queue per device, runs groups (`w:g2`/`w:gp2`, sender keys), stores
//! media over HTTPS, applies rate limits and account restrictions, and injects faults on demand.
//! Everything protocol-level comes from `wasmeow-protocol` (codec, framing, Noise, Signal);
//! this crate never depends on the client runtime (`wasmeow-session`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), wasmeow_sim::SimError> {
//! use wasmeow_sim::{Sim, SimConfig};
//!
//! let sim = Sim::start(SimConfig::default()).await?;
//! let alice = sim.create_account(None, Some("Alice"))?;
//! let info = sim.info().await;
//! println!("connect to {} trusting root {}", info.ws_url, info.root_public_key);
//! // … a client connects and shows a QR; the test scans it with Alice's phone:
//! // let device = sim.scan(&qr, &alice.pn).await?;
//! let id = sim.phone_send_text(&alice.pn, &alice.jid, "note to self")?;
//! # let _ = id; Ok(()) }
//! ```
//!
//! See `README.md` next to this crate for what is faithful and what is simplified.

mod accounts;
mod config;
mod conn;
mod control;
mod faults;
mod groups;
mod http;
mod iq;
mod media;
mod paircode;
mod pairing;
mod phone;
pub mod process;
mod routing;
mod server;
mod state;
mod tls;
mod util;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

pub use config::{Addressing, QrSchedule, RateLimit, SimConfig};
pub use control::{AccountInfo, CompanionCredentials, DeviceInfo, Sim, SimHandle, SimInfo};
pub use faults::Kick;
pub use pairing::PairError;
pub use phone::{InboxMessage, PhoneAck, PhoneReceipt};
pub use state::Stats;
pub use tls::TlsError;

/// Starting or controlling the simulator failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A listener could not bind.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configured bind address is not a loopback address.
    #[error("refusing to listen on {0}: only loopback addresses are allowed")]
    NotLoopback(IpAddr),
    /// The test PKI could not be built.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The state file is unreadable or inconsistent.
    #[error("state: {0}")]
    State(String),
    /// Reading or writing a file failed.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// A control call named something that does not exist or passed a malformed value.
    #[error("bad request: {0}")]
    BadRequest(String),
}

/// Logs to stderr when `WASMEOW_SIM_LOG` is set (any value).
#[macro_export]
#[doc(hidden)]
macro_rules! log {
    ($($arg:tt)*) => {
        if $crate::log_enabled() {
            eprintln!("[wasmeow-sim] {}", format_args!($($arg)*));
        }
    };
}

#[doc(hidden)]
pub fn log_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("WASMEOW_SIM_LOG").is_some())
}
