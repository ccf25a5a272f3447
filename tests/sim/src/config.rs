//! Configuration of a simulator instance: where it listens, the QR ref schedule, limits and
//! persistence.
//!
//! Contract: [`SimConfig::default`] is what tests want (loopback, ephemeral ports, the real
//! WhatsApp QR schedule, no rate limit, state in memory). Every knob is a plain public field so a
//! test can override exactly what it needs. Ports given as 0 are chosen by the OS at the first
//! start and then kept across [`crate::SimHandle::restart`].

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// The schedule of QR pairing refs sent to an unpaired companion.
///
/// > "Ref rotation: normally 6 refs. The first is shown 60 s, the rest 20 s each, about 160 s in
/// > total. After that the QR channel emits "timeout" and the server closes the socket."
/// > — `protocol-whatsmeow.md` §2.7
///
/// The server sends all refs at once in `<pair-device>`; the client rotates them. Ref `k` is
/// accepted by [`crate::SimHandle::scan`] until its end time, i.e. until
/// `first_ttl + k * next_ttl` after the refs were sent; after the last one the server closes the
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QrSchedule {
    /// How long the first ref lives.
    pub first_ttl: Duration,
    /// How long every later ref lives.
    pub next_ttl: Duration,
    /// How many refs are sent.
    pub count: usize,
}

impl Default for QrSchedule {
    fn default() -> Self {
        Self {
            first_ttl: Duration::from_secs(60),
            next_ttl: Duration::from_secs(20),
            count: 6,
        }
    }
}

impl QrSchedule {
    /// The time, from when the refs were sent, at which ref `index` stops being valid.
    pub fn ref_deadline(&self, index: usize) -> Duration {
        self.first_ttl + self.next_ttl * u32::try_from(index).unwrap_or(u32::MAX)
    }

    /// The time after which the whole pairing attempt has expired and the socket is closed.
    pub fn total(&self) -> Duration {
        self.ref_deadline(self.count.saturating_sub(1))
    }
}

/// A per-account send rate: at most `messages` message stanzas per `per`.
///
/// Over-limit sends are answered the way the real service answers them: the message is not
/// delivered and the sender gets `<ack class="message" error="429"/>` (rate-overlimit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RateLimit {
    /// Messages allowed per window.
    pub messages: u32,
    /// Window length in milliseconds.
    pub per_ms: u64,
}

/// How the server addresses the 1:1 messages it delivers (whatever the sender put in `to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Addressing {
    /// `from="<lid>:<dev>@lid" sender_pn=… addressing_mode="lid"`, as WhatsApp delivers 1:1
    /// messages after the LID migration (`interop-baileys.md` §6).
    #[default]
    Lid,
    /// `from="<pn>:<dev>@s.whatsapp.net" sender_lid=… addressing_mode="pn"` (pre-migration).
    Pn,
}

/// Everything a simulator needs to start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address every listener binds to. Only loopback addresses are accepted.
    pub bind: IpAddr,
    /// Port of the plain `ws://` listener (0: chosen by the OS).
    pub ws_port: u16,
    /// Port of the `wss://` listener (0: chosen by the OS); `None` disables it.
    pub wss_port: Option<u16>,
    /// Port of the HTTPS media endpoint (0: chosen by the OS).
    pub media_port: u16,
    /// Port of the HTTP JSON control API; `None` disables it (the in-process API always works).
    pub control_port: Option<u16>,
    /// QR ref schedule.
    pub qr: QrSchedule,
    /// Default per-account send rate; `None` is unlimited. Accounts can override it.
    pub rate_limit: Option<RateLimit>,
    /// Persist the state to this JSON file (written after changes and on restart, read at start).
    pub state_file: Option<PathBuf>,
    /// Seed for the simulator's randomness; `None` seeds from the OS.
    pub seed: Option<u64>,
    /// Addressing of delivered 1:1 messages (and of the phones' own sends).
    pub addressing: Addressing,
    /// How long the server waits for a client's Noise messages before dropping the socket.
    pub handshake_timeout: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ws_port: 0,
            wss_port: Some(0),
            media_port: 0,
            control_port: None,
            qr: QrSchedule::default(),
            rate_limit: None,
            state_file: None,
            seed: None,
            addressing: Addressing::default(),
            handshake_timeout: Duration::from_secs(20),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_schedule_is_160_seconds() {
        let q = QrSchedule::default();
        assert_eq!(q.ref_deadline(0), Duration::from_secs(60));
        assert_eq!(q.ref_deadline(1), Duration::from_secs(80));
        assert_eq!(q.total(), Duration::from_secs(160));
    }
}
