//! Signed webhooks: every [`HostEvent`] the runtime broadcasts is POSTed as JSON to one URL.
//!
//! Contract (what a receiver sees):
//! - `POST <url>` with `Content-Type: application/json`, the body being the [`HostEvent`] as
//!   JSON, and the headers `X-Wasmeow-Event: <event>`, `X-Wasmeow-Timestamp: <unix ms of this
//!   attempt>` and `X-Wasmeow-Signature: sha256=<lowercase hex HMAC-SHA256(secret,
//!   "<timestamp>.<body>")>`. Receivers recompute the HMAC over the exact bytes received
//!   ([`verify_signature`] does it in constant time) and should reject timestamps far from
//!   their clock to stop replays.
//! - Events are delivered one at a time, in broadcast order. A 2xx is success. 5xx, 408, 429,
//!   connection errors and timeouts ([`WebhookOptions::timeout`] per attempt) are retried with
//!   exponential backoff from [`WebhookOptions::backoff_initial`] doubling up to
//!   [`WebhookOptions::backoff_max`], at most [`WebhookOptions::max_attempts`] attempts in all;
//!   other statuses give up at once. Each retry is signed again with a fresh timestamp.
//! - Events wait in a bounded queue ([`WebhookOptions::queue_capacity`]); when it is full the
//!   oldest waiting event is dropped and counted ([`WebhookStats::dropped`]); events the
//!   broadcast channel itself skipped are counted in [`WebhookStats::lagged`].
//! - `http://` and `https://` (rustls with the webpki roots, or [`WebhookOptions::tls_roots`])
//!   URLs work; one HTTP/1.1 connection is kept alive and reopened after an error.
//!
//! - Outcomes are counted in [`WebhookStats`]; given to the admin router
//!   ([`crate::admin::AdminOptions::webhook_stats`]) they appear on `GET /metrics` as
//!   `wasmeow_webhook_deliveries_total{result}`, `wasmeow_webhook_retries_total` and
//!   `wasmeow_webhook_queue_depth` ([`crate::runtime::metrics::render_webhooks`]).
//!
//! The task ends once the runtime drops its event sender and the queue is drained.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{Request, StatusCode, Uri, header};
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::control::{Control, HostEvent};
use crate::runtime::metrics::WebhookSample;

/// Where webhooks go.
#[derive(Clone)]
pub struct WebhookTarget {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The HMAC-SHA256 key.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl WebhookTarget {
    /// The target `[admin]` in bot.toml names: its URL, and the secret read from the
    /// environment variable it names (which must be set and non-empty).
    pub fn from_config(cfg: &crate::config::WebhookConfig) -> Result<Self, WebhookError> {
        match std::env::var(&cfg.secret_env) {
            Ok(secret) if !secret.is_empty() => Ok(Self {
                url: cfg.url.clone(),
                secret: secret.into_bytes(),
            }),
            _ => Err(WebhookError::MissingSecret(cfg.secret_env.clone())),
        }
    }
}

/// Delivery tunables.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Events waiting at most; the oldest is dropped beyond it.
    pub queue_capacity: usize,
    /// Per attempt: connect, send and read the status.
    pub timeout: Duration,
    /// Attempts per event, the first included.
    pub max_attempts: u32,
    /// The first retry's delay.
    pub backoff_initial: Duration,
    /// The delay never exceeds this.
    pub backoff_max: Duration,
    /// Trust anchors for `https://` (default: the webpki roots).
    pub tls_roots: Option<Arc<rustls::RootCertStore>>,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            timeout: Duration::from_secs(10),
            max_attempts: 8,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            tls_roots: None,
        }
    }
}

/// Counters of one webhook task (monotonic, except the queue depth). Every event the task
/// sees ends in exactly one of delivered, refused, exhausted, dropped or lagged (or is still
/// queued or in flight). The admin API renders them on `GET /metrics` when the router is given
/// them ([`crate::admin::AdminOptions::webhook_stats`]).
#[derive(Debug, Default)]
pub struct WebhookStats {
    delivered: AtomicU64,
    retries: AtomicU64,
    refused: AtomicU64,
    exhausted: AtomicU64,
    dropped: AtomicU64,
    lagged: AtomicU64,
    queued: AtomicU64,
}

impl WebhookStats {
    /// Events the receiver acknowledged with a 2xx.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
    /// Attempts after the first, over all events.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }
    /// Events given up on: [`Self::refused`] plus [`Self::exhausted`].
    pub fn failed(&self) -> u64 {
        self.refused() + self.exhausted()
    }
    /// Events given up on at once: the receiver answered with a status that is not retried
    /// (not 2xx, 5xx, 408 or 429), or the request could not be built.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
    /// Events given up on after [`WebhookOptions::max_attempts`] attempts that all failed
    /// with a retryable error (5xx, 408, 429, connection error, timeout).
    pub fn exhausted(&self) -> u64 {
        self.exhausted.load(Ordering::Relaxed)
    }
    /// Events waiting in the queue now (the one being delivered not included).
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }
    /// All counters at once, for the metrics exposition.
    pub fn sample(&self) -> WebhookSample {
        WebhookSample {
            delivered: self.delivered(),
            refused: self.refused(),
            exhausted: self.exhausted(),
            dropped: self.dropped(),
            lagged: self.lagged(),
            retries: self.retries(),
            queued: self.queued(),
        }
    }
    /// Events dropped from the full queue.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    /// Events the broadcast channel skipped before they reached the queue.
    pub fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }
}

/// Why a webhook target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The URL does not parse, or is not http(s) with a host.
    #[error("webhook url {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS client configuration could not be built.
    #[error("webhook TLS setup: {0}")]
    Tls(String),
    /// The secret's environment variable is unset or empty (webhooks are never unsigned).
    #[error("environment variable {0} (the webhook secret) is not set or empty")]
    MissingSecret(String),
    /// The queue capacity or the attempt count is zero.
    #[error("webhook options: {0}")]
    Options(&'static str),
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut m = match <HmacSha256 as KeyInit>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm cannot run.
        Err(_) => unreachable!("HMAC accepts every key length"),
    };
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `X-Wasmeow-Signature` value for `body` sent at `timestamp`: `sha256=<hex>`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Whether `header` (an `X-Wasmeow-Signature` value) signs `body` at `timestamp` (the
/// `X-Wasmeow-Timestamp` value) under `secret`; constant-time in the signature.
pub fn verify_signature(secret: &[u8], timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    mac(secret, timestamp, body).verify_slice(&sig).is_ok()
}

struct Endpoint {
    tls: Option<tokio_rustls::TlsConnector>,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

impl Endpoint {
    fn parse(url: &str, opts: &WebhookOptions) -> Result<Self, WebhookError> {
        let bad = |reason: &str| WebhookError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let auth = uri.authority().ok_or_else(|| bad("no host"))?;
        if auth.as_str().contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = auth.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let roots = match &opts.tls_roots {
                Some(r) => (**r).clone(),
                None => {
                    let mut r = rustls::RootCertStore::empty();
                    r.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                    r
                }
            };
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| WebhookError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
            authority: auth.as_str().to_owned(),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("server name: {e}"))?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                handshake(stream).await
            }
        }
    }
}

async fn handshake<S>(io: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        // The connection ends on error or when the sender is dropped; either is fine here.
        let _ = conn.await;
    });
    Ok(sender)
}

enum Outcome {
    Delivered,
    Retry(String),
    GiveUp(String),
}

struct Deliverer {
    endpoint: Endpoint,
    secret: Vec<u8>,
    opts: WebhookOptions,
    conn: Option<SendRequest<Full<Bytes>>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Deliverer {
    async fn attempt(&mut self, event: &str, body: &Bytes) -> Outcome {
        let ts = now_ms().to_string();
        let sig = sign(&self.secret, &ts, body);
        let req = Request::post(self.endpoint.path.as_str())
            .header(header::HOST, self.endpoint.authority.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("wasmeow/", env!("CARGO_PKG_VERSION")),
            )
            .header("x-wasmeow-event", event)
            .header("x-wasmeow-timestamp", ts.as_str())
            .header("x-wasmeow-signature", sig.as_str())
            .body(Full::new(body.clone()));
        let req = match req {
            Ok(r) => r,
            Err(e) => return Outcome::GiveUp(format!("building the request: {e}")),
        };
        let fut = async {
            let mut sender = match self.conn.take() {
                Some(s) if !s.is_closed() => s,
                _ => self.endpoint.connect().await?,
            };
            sender
                .ready()
                .await
                .map_err(|e| format!("connection: {e}"))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let status = resp.status();
            // Read the (small) body so the connection can carry the next request.
            resp.into_body()
                .collect()
                .await
                .map_err(|e| format!("response body: {e}"))?;
            Ok::<_, String>((sender, status))
        };
        match tokio::time::timeout(self.opts.timeout, fut).await {
            Err(_) => Outcome::Retry("timed out".into()),
            Ok(Err(e)) => Outcome::Retry(e),
            Ok(Ok((sender, status))) => {
                self.conn = Some(sender);
                if status.is_success() {
                    Outcome::Delivered
                } else if status.is_server_error()
                    || status == StatusCode::REQUEST_TIMEOUT
                    || status == StatusCode::TOO_MANY_REQUESTS
                {
                    Outcome::Retry(format!("status {status}"))
                } else {
                    Outcome::GiveUp(format!("status {status}"))
                }
            }
        }
    }

    async fn deliver(&mut self, ev: &HostEvent, stats: &WebhookStats) {
        let body = match serde_json::to_vec(ev) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::warn!(error = %e, "webhook: event does not serialize");
                stats.refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let mut delay = self.opts.backoff_initial;
        for attempt in 1..=self.opts.max_attempts {
            if attempt > 1 {
                stats.retries.fetch_add(1, Ordering::Relaxed);
            }
            match self.attempt(&ev.event, &body).await {
                Outcome::Delivered => {
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Outcome::GiveUp(why) => {
                    tracing::warn!(event = %ev.event, session = %ev.session, %why, "webhook refused");
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Outcome::Retry(why) => {
                    tracing::debug!(event = %ev.event, attempt, %why, "webhook attempt failed");
                    if attempt == self.opts.max_attempts {
                        tracing::warn!(event = %ev.event, session = %ev.session, %why,
                            "webhook gave up after {attempt} attempts");
                        stats.exhausted.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.opts.backoff_max);
                }
            }
        }
    }
}

/// Starts delivering `ctl`'s events to `target` with default [`WebhookOptions`].
pub fn spawn_webhooks(
    ctl: Arc<dyn Control>,
    target: WebhookTarget,
) -> Result<JoinHandle<()>, WebhookError> {
    spawn_webhooks_with(ctl, target, WebhookOptions::default()).map(|(h, _)| h)
}

/// Starts delivering `ctl`'s events to `target`; returns the task and its counters. The
/// subscription is taken before this returns, so every event broadcast afterwards is seen.
pub fn spawn_webhooks_with(
    ctl: Arc<dyn Control>,
    target: WebhookTarget,
    opts: WebhookOptions,
) -> Result<(JoinHandle<()>, Arc<WebhookStats>), WebhookError> {
    if opts.queue_capacity == 0 {
        return Err(WebhookError::Options("queue_capacity must be at least 1"));
    }
    if opts.max_attempts == 0 {
        return Err(WebhookError::Options("max_attempts must be at least 1"));
    }
    let endpoint = Endpoint::parse(&target.url, &opts)?;
    let mut rx = ctl.subscribe();
    let stats = Arc::new(WebhookStats::default());
    let queue = Arc::new(Mutex::new(VecDeque::<HostEvent>::new()));
    let wake = Arc::new(Notify::new());
    let closed = Arc::new(AtomicBool::new(false));
    let capacity = opts.queue_capacity;

    let receive = {
        let (stats, queue, wake, closed) =
            (stats.clone(), queue.clone(), wake.clone(), closed.clone());
        async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        {
                            let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                            q.push_back(ev);
                            while q.len() > capacity {
                                q.pop_front();
                                stats.dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            stats.queued.store(q.len() as u64, Ordering::Relaxed);
                        }
                        wake.notify_one();
                    }
                    Err(RecvError::Lagged(n)) => {
                        stats.lagged.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => {
                        closed.store(true, Ordering::Release);
                        wake.notify_one();
                        return;
                    }
                }
            }
        }
    };
    let mut deliverer = Deliverer {
        endpoint,
        secret: target.secret,
        opts,
        conn: None,
    };
    let send = {
        let stats = stats.clone();
        async move {
            loop {
                let next = {
                    let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                    let next = q.pop_front();
                    stats.queued.store(q.len() as u64, Ordering::Relaxed);
                    next
                };
                match next {
                    Some(ev) => deliverer.deliver(&ev, &stats).await,
                    None if closed.load(Ordering::Acquire) => {
                        // The receiver pushes before it marks closed; check once more.
                        if queue.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
                            return;
                        }
                    }
                    None => wake.notified().await,
                }
            }
        }
    };
    let handle = tokio::spawn(async move {
        tokio::join!(receive, send);
    });
    Ok((handle, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_roundtrip_and_tamper() {
        let sig = sign(b"k", "1700000000000", b"{\"a\":1}");
        assert!(sig.starts_with("sha256="));
        assert_eq!(sig.len(), 7 + 64);
        assert!(verify_signature(b"k", "1700000000000", b"{\"a\":1}", &sig));
        assert!(!verify_signature(b"k", "1700000000001", b"{\"a\":1}", &sig));
        assert!(!verify_signature(b"k", "1700000000000", b"{\"a\":2}", &sig));
        assert!(!verify_signature(b"j", "1700000000000", b"{\"a\":1}", &sig));
        assert!(!verify_signature(
            b"k",
            "1700000000000",
            b"{\"a\":1}",
            &sig[7..]
        ));
        assert!(!verify_signature(
            b"k",
            "1700000000000",
            b"{\"a\":1}",
            "sha256=zz"
        ));
    }

    #[test]
    fn signs_timestamp_dot_body_with_hmac_sha256() {
        // The primitive against RFC 4231 test case 2, then `sign` as HMAC over "<ts>.<body>".
        let mut rfc = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").unwrap();
        rfc.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(rfc.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mut direct = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").unwrap();
        direct.update(b"123.{}");
        let want = format!("sha256={}", hex::encode(direct.finalize().into_bytes()));
        assert_eq!(sign(b"Jefe", "123", b"{}"), want);
    }

    #[test]
    fn bad_urls_are_typed_errors() {
        let o = WebhookOptions::default();
        assert!(matches!(
            Endpoint::parse("ftp://x/", &o),
            Err(WebhookError::BadUrl { .. })
        ));
        assert!(matches!(
            Endpoint::parse("not a url", &o),
            Err(WebhookError::BadUrl { .. })
        ));
        assert!(matches!(
            Endpoint::parse("/relative", &o),
            Err(WebhookError::BadUrl { .. })
        ));
        let e = Endpoint::parse("http://127.0.0.1:9/hook?x=1", &o).unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("127.0.0.1", 9, "/hook?x=1")
        );
        let e = Endpoint::parse("https://example.invalid", &o).unwrap();
        assert_eq!((e.port, e.path.as_str()), (443, "/"));
        assert!(e.tls.is_some());
    }
}
