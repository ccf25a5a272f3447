//! Session configuration: where to connect, what to announce, how long to wait, how fast to
//! send.
//!
//! Contract: [`SessionConfig::default`] is a working production configuration; tests override
//! the endpoint, the certificate root and the limits. Every duration has a stated purpose and
//! source. The WhatsApp Web version is a plain field ([`WaVersion`]) because a stale
//! hard-coded version is the most common breakage of WhatsApp libraries (`405 client
//! outdated`, `protocol-whatsmeow.md` §4 item 1): operators must be able to bump it without a
//! new build.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use wasmeow_protocol::keys::PublicKey;
use wasmeow_protocol::noise::CertVerifier;

use crate::backoff::BackoffPolicy;
use crate::ratelimit::RateLimits;
use crate::transport::{Endpoint, WHATSAPP_ORIGIN};

/// A WhatsApp Web version `primary.secondary.tertiary`, as sent in `ClientPayload.userAgent`
/// and hashed (MD5 of the dotted string) into the registration's build hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WaVersion(pub [u32; 3]);

impl WaVersion {
    /// The version known to work when this was written (whatsmeow at 2026-08-21).
    pub const DEFAULT: Self = Self([2, 3000, 1_045_649_367]);
}

impl Default for WaVersion {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for WaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0[0], self.0[1], self.0[2])
    }
}

/// A version string that is not `a.b.c` with decimal parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("WhatsApp Web version must be `primary.secondary.tertiary`, got {0:?}")]
pub struct WaVersionError(String);

impl FromStr for WaVersion {
    type Err = WaVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        let [a, b, c] = parts.as_slice() else {
            return Err(WaVersionError(s.to_owned()));
        };
        let p = |x: &str| x.parse::<u32>().map_err(|_| WaVersionError(s.to_owned()));
        Ok(Self([p(a)?, p(b)?, p(c)?]))
    }
}

/// Everything a session needs besides its store.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Where to connect. For `wss://` it also carries the TLS trust anchors: a test CA (the
    /// simulator's `ca_pem`) is added with [`Endpoint::url_with_roots`] and
    /// [`TlsRoots::with_extra_root_pem`](crate::transport::TlsRoots::with_extra_root_pem).
    pub endpoint: Endpoint,
    /// The `Origin` header (`None`: omit).
    pub origin: Option<String>,
    /// The root key the server's Noise certificate chain must lead to.
    pub cert_root: PublicKey,
    /// The WhatsApp Web version we claim.
    pub wa_version: WaVersion,
    /// The OS name shown in the phone's linked-devices list (`DeviceProps.os`).
    pub device_name: String,
    /// The push name sent with presence (empty: no presence is sent).
    pub push_name: String,
    /// TCP + TLS + WebSocket upgrade deadline.
    pub connect_timeout: Duration,
    /// Deadline for the server's Noise reply (whatsmeow: 20 s).
    pub handshake_timeout: Duration,
    /// Deadline of an IQ or a message ack (whatsmeow: 75 s).
    pub request_timeout: Duration,
    /// Keepalive pings are sent at a random interval in this range (whatsmeow: 20–30 s).
    pub keepalive_interval: (Duration, Duration),
    /// A ping must be answered within this (whatsmeow: 10 s).
    pub keepalive_deadline: Duration,
    /// Without a successful ping for this long, the connection is dropped and re-established
    /// (whatsmeow: 3 min).
    pub keepalive_max_silence: Duration,
    /// Reconnect delays.
    pub backoff: BackoffPolicy,
    /// Send limits.
    pub rate_limits: RateLimits,
    /// Send `<presence type="available">` after login (makes delivery receipts "active").
    pub send_presence_on_connect: bool,
    /// Number of prekeys uploaded when the server has none (whatsmeow: 812).
    pub initial_prekey_count: u32,
    /// Number of prekeys uploaded on refill (whatsmeow: 50).
    pub refill_prekey_count: u32,
    /// Refill when the server reports fewer than this (whatsmeow: 5).
    pub min_prekey_count: u32,
    /// Give up asking a peer to resend an undecryptable message after this many retries.
    pub max_retry_receipts: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            endpoint: Endpoint::whatsapp(),
            origin: Some(WHATSAPP_ORIGIN.to_owned()),
            cert_root: *CertVerifier::whatsapp().root(),
            wa_version: WaVersion::DEFAULT,
            device_name: "wasmeow".to_owned(),
            push_name: String::new(),
            connect_timeout: Duration::from_secs(20),
            handshake_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(75),
            keepalive_interval: (Duration::from_secs(20), Duration::from_secs(30)),
            keepalive_deadline: Duration::from_secs(10),
            keepalive_max_silence: Duration::from_secs(180),
            backoff: BackoffPolicy::default(),
            rate_limits: RateLimits::default(),
            send_presence_on_connect: true,
            initial_prekey_count: 812,
            refill_prekey_count: 50,
            min_prekey_count: 5,
            max_retry_receipts: 5,
        }
    }
}

impl SessionConfig {
    /// A configuration for a local test server: `endpoint`, its certificate root, no rate
    /// limits, short timeouts.
    pub fn for_test_server(endpoint: Endpoint, cert_root: PublicKey) -> Self {
        Self {
            endpoint,
            origin: Some(WHATSAPP_ORIGIN.to_owned()),
            cert_root,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(20),
            backoff: BackoffPolicy::new(Duration::from_millis(100), Duration::from_secs(2)),
            rate_limits: RateLimits::unlimited(),
            push_name: "wasmeow test".to_owned(),
            initial_prekey_count: 50,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parses_and_prints() {
        let v: WaVersion = "2.3000.1045649367".parse().unwrap();
        assert_eq!(v, WaVersion::DEFAULT);
        assert_eq!(v.to_string(), "2.3000.1045649367");
        assert!("2.3000".parse::<WaVersion>().is_err());
        assert!("2.x.1".parse::<WaVersion>().is_err());
        assert!("2.3.4.5".parse::<WaVersion>().is_err());
    }
}
