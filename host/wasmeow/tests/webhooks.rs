//! Signed webhook delivery against a receiver on loopback.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::fake::FakeControl;
use serde_json::json;
use tokio::sync::Notify;
use wasmeow::admin::{
    WebhookError, WebhookOptions, WebhookStats, WebhookTarget, spawn_webhooks_with,
    verify_signature,
};
use wasmeow::control::Control;

const SECRET: &[u8] = b"webhook-secret-for-tests";

#[derive(Debug, Clone)]
struct Hit {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default)]
struct Receiver {
    hits: Mutex<Vec<Hit>>,
    /// Statuses to answer with, in order; 200 once empty.
    script: Mutex<VecDeque<u16>>,
    /// While set, requests wait for `release` before answering.
    hold: Mutex<bool>,
    release: Notify,
    arrived: Notify,
}

async fn hook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.hits.lock().unwrap().push(Hit { headers, body });
    r.arrived.notify_waiters();
    let held = *r.hold.lock().unwrap();
    if held {
        r.release.notified().await;
    }
    let code = r.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(code).unwrap()
}

async fn receiver() -> (String, Arc<Receiver>) {
    let r = Arc::new(Receiver::default());
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, r)
}

fn fast() -> WebhookOptions {
    WebhookOptions {
        timeout: Duration::from_secs(5),
        max_attempts: 4,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(80),
        ..WebhookOptions::default()
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn header<'a>(h: &'a Hit, name: &str) -> &'a str {
    h.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

fn check_signed(h: &Hit) {
    let ts = header(h, "x-wasmeow-timestamp");
    let sig = header(h, "x-wasmeow-signature");
    assert!(
        verify_signature(SECRET, ts, &h.body, sig),
        "valid signature"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i128;
    let ts: i128 = ts.parse().unwrap();
    assert!((now - ts).abs() < 60_000, "timestamp is unix ms near now");
}

fn spawn(
    ctl: Arc<dyn Control>,
    url: &str,
    opts: WebhookOptions,
) -> (tokio::task::JoinHandle<()>, Arc<WebhookStats>) {
    spawn_webhooks_with(
        ctl,
        WebhookTarget {
            url: url.into(),
            secret: SECRET.to_vec(),
        },
        opts,
    )
    .unwrap()
}

#[tokio::test]
async fn delivers_every_event_signed_and_in_order() {
    let (url, rx) = receiver().await;
    let f = Arc::new(FakeControl::new(64));
    let (task, stats) = spawn(f.clone(), &url, fast());
    for i in 0..5 {
        f.emit("alice", "message", json!({ "n": i }));
    }
    until("5 deliveries", || stats.delivered() == 5).await;
    let hits = rx.hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 5);
    for (i, h) in hits.iter().enumerate() {
        check_signed(h);
        assert_eq!(header(h, "content-type"), "application/json");
        assert_eq!(header(h, "x-wasmeow-event"), "message");
        let ev: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(ev["data"]["n"], i);
        assert_eq!(ev["session"], "alice");
        // A tampered body, timestamp or secret fails verification.
        let mut tampered = h.body.to_vec();
        let last = tampered.len() - 2;
        tampered[last] ^= 1;
        let ts = header(h, "x-wasmeow-timestamp");
        let sig = header(h, "x-wasmeow-signature");
        assert!(!verify_signature(SECRET, ts, &tampered, sig));
        assert!(!verify_signature(SECRET, &format!("{ts}1"), &h.body, sig));
        assert!(!verify_signature(b"other secret", ts, &h.body, sig));
    }
    assert_eq!(
        (stats.retries(), stats.failed(), stats.dropped()),
        (0, 0, 0)
    );
    // The task ends once the runtime is gone and the queue is empty.
    drop(f);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn retries_after_server_errors_with_a_fresh_signature() {
    let (url, rx) = receiver().await;
    rx.script.lock().unwrap().extend([500, 503]);
    let f = Arc::new(FakeControl::new(64));
    let (_task, stats) = spawn(f.clone(), &url, fast());
    f.emit("bob", "authenticated", json!({ "jid": "1@s.whatsapp.net" }));
    f.emit("bob", "message", json!({ "n": 2 }));
    until("2 deliveries", || stats.delivered() == 2).await;
    let hits = rx.hits.lock().unwrap().clone();
    assert_eq!(
        hits.len(),
        4,
        "two failed attempts, then the first event, then the second"
    );
    for h in &hits {
        check_signed(h);
    }
    assert_eq!(hits[0].body, hits[2].body, "the same event was retried");
    assert_eq!(header(&hits[3], "x-wasmeow-event"), "message");
    assert_eq!((stats.retries(), stats.failed()), (2, 0));
}

#[tokio::test]
async fn client_errors_are_not_retried_and_attempts_are_bounded() {
    let (url, rx) = receiver().await;
    rx.script.lock().unwrap().extend([400, 500, 500, 500, 500]);
    let f = Arc::new(FakeControl::new(64));
    let (_task, stats) = spawn(f.clone(), &url, fast());
    f.emit("bob", "message", json!({ "n": 1 })); // 400: given up at once
    f.emit("bob", "message", json!({ "n": 2 })); // 500 ×4: given up after max_attempts
    f.emit("bob", "message", json!({ "n": 3 })); // 200
    until("the third event", || stats.delivered() == 1).await;
    assert_eq!(rx.hits.lock().unwrap().len(), 1 + 4 + 1);
    assert_eq!((stats.failed(), stats.retries()), (2, 3));
}

#[tokio::test]
async fn connection_errors_are_retried_then_given_up() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = Arc::new(FakeControl::new(64));
    let opts = WebhookOptions {
        max_attempts: 3,
        ..fast()
    };
    let (_task, stats) = spawn(f.clone(), &format!("http://127.0.0.1:{port}/hook"), opts);
    f.emit("bob", "message", json!({}));
    until("the give-up", || stats.failed() == 1).await;
    assert_eq!((stats.retries(), stats.delivered()), (2, 0));
}

#[tokio::test]
async fn slow_receivers_time_out_and_are_retried() {
    let (url, rx) = receiver().await;
    *rx.hold.lock().unwrap() = true;
    let f = Arc::new(FakeControl::new(64));
    let opts = WebhookOptions {
        timeout: Duration::from_millis(200),
        max_attempts: 2,
        ..fast()
    };
    let (_task, stats) = spawn(f.clone(), &url, opts);
    f.emit("bob", "message", json!({}));
    until("two timed-out attempts", || stats.failed() == 1).await;
    assert_eq!(rx.hits.lock().unwrap().len(), 2);
    assert_eq!(stats.retries(), 1);
    rx.release.notify_waiters();
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_and_counts_it() {
    let (url, rx) = receiver().await;
    *rx.hold.lock().unwrap() = true;
    let f = Arc::new(FakeControl::new(64));
    let opts = WebhookOptions {
        queue_capacity: 2,
        ..fast()
    };
    let (_task, stats) = spawn(f.clone(), &url, opts);
    f.emit("s", "message", json!({ "n": 0 }));
    until("the first event in flight", || {
        rx.hits.lock().unwrap().len() == 1
    })
    .await;
    for i in 1..6 {
        f.emit("s", "message", json!({ "n": i }));
    }
    until("3 drops", || stats.dropped() == 3).await;
    *rx.hold.lock().unwrap() = false;
    rx.release.notify_waiters();
    until("3 deliveries", || stats.delivered() == 3).await;
    let ns: Vec<_> = rx
        .hits
        .lock()
        .unwrap()
        .iter()
        .map(|h| serde_json::from_slice::<serde_json::Value>(&h.body).unwrap()["data"]["n"].clone())
        .collect();
    assert_eq!(
        ns,
        [json!(0), json!(4), json!(5)],
        "the oldest waiting events were dropped"
    );
}

/// The value of the one sample `line_start` (name and labels) in a Prometheus text.
fn sample(text: &str, line_start: &str) -> u64 {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.strip_prefix(line_start)
                .is_some_and(|r| r.starts_with(' '))
        })
        .collect();
    assert_eq!(lines.len(), 1, "one {line_start} sample in:\n{text}");
    lines[0][line_start.len()..].trim().parse().unwrap()
}

/// (delivered, refused, exhausted, dropped, lagged, retries, queue depth) as `/metrics` shows.
async fn scrape(addr: std::net::SocketAddr) -> [u64; 7] {
    let r = common::http::req(hyper::Method::GET, "/metrics")
        .token(common::TOKEN)
        .send(addr)
        .await;
    assert!(r.status.is_success(), "{}", r.text());
    let text = r.text();
    // The runtime's own metrics come first, unchanged.
    assert!(
        text.starts_with("# TYPE wasmeow_sessions gauge\n"),
        "{text}"
    );
    for family in [
        "wasmeow_webhook_deliveries_total counter",
        "wasmeow_webhook_retries_total counter",
        "wasmeow_webhook_queue_depth gauge",
    ] {
        assert!(text.contains(&format!("# TYPE {family}\n")), "{text}");
        let name = family.split(' ').next().unwrap();
        assert!(text.contains(&format!("# HELP {name} ")), "{text}");
    }
    let d = |result: &str| {
        sample(
            &text,
            &format!("wasmeow_webhook_deliveries_total{{result=\"{result}\"}}"),
        )
    };
    [
        d("delivered"),
        d("refused"),
        d("exhausted"),
        d("dropped"),
        d("lagged"),
        sample(&text, "wasmeow_webhook_retries_total"),
        sample(&text, "wasmeow_webhook_queue_depth"),
    ]
}

#[tokio::test]
async fn metrics_count_every_delivery_outcome() {
    let (url, rx) = receiver().await;
    let f = Arc::new(FakeControl::new(64));
    let opts = WebhookOptions {
        max_attempts: 3,
        queue_capacity: 2,
        ..fast()
    };
    let (_task, stats) = spawn(f.clone(), &url, opts);
    let srv = common::start(
        f.clone(),
        wasmeow::admin::AdminOptions {
            webhook_stats: Some(stats.clone()),
            ..wasmeow::admin::AdminOptions::default()
        },
    )
    .await;
    // Without the stats the router shows no webhook families.
    let plain = common::start(f.clone(), wasmeow::admin::AdminOptions::default()).await;
    let r = common::http::req(hyper::Method::GET, "/metrics")
        .token(common::TOKEN)
        .send(plain.addr)
        .await;
    assert!(!r.text().contains("wasmeow_webhook"), "{}", r.text());
    assert_eq!(scrape(srv.addr).await, [0; 7]);

    // A receiver that accepts at once.
    f.emit("s", "message", json!({ "n": 1 }));
    until("the first delivery", || stats.delivered() == 1).await;
    // One that fails, then accepts the retry.
    rx.script.lock().unwrap().extend([503, 200]);
    f.emit("s", "message", json!({ "n": 2 }));
    until("the retried delivery", || stats.delivered() == 2).await;
    assert_eq!(scrape(srv.addr).await, [2, 0, 0, 0, 0, 1, 0]);
    // One that always fails: every attempt is used up.
    rx.script.lock().unwrap().extend([500, 502, 500]);
    f.emit("s", "message", json!({ "n": 3 }));
    until("the give-up", || stats.exhausted() == 1).await;
    // One that refuses for good: no retry.
    rx.script.lock().unwrap().extend([404]);
    f.emit("s", "message", json!({ "n": 4 }));
    until("the refusal", || stats.refused() == 1).await;
    assert_eq!(scrape(srv.addr).await, [2, 1, 1, 0, 0, 3, 0]);
    assert_eq!(rx.hits.lock().unwrap().len(), 1 + 2 + 3 + 1);

    // A stuck receiver: the queue fills (depth shows live), then the oldest are dropped.
    *rx.hold.lock().unwrap() = true;
    f.emit("s", "message", json!({ "n": 5 }));
    until("the fifth event in flight", || {
        rx.hits.lock().unwrap().len() == 8
    })
    .await;
    for n in 6..8 {
        f.emit("s", "message", json!({ "n": n }));
    }
    until("two queued", || stats.queued() == 2).await;
    assert_eq!(scrape(srv.addr).await, [2, 1, 1, 0, 0, 3, 2]);
    for n in 8..11 {
        f.emit("s", "message", json!({ "n": n }));
    }
    until("three dropped", || stats.dropped() == 3).await;
    assert_eq!(scrape(srv.addr).await, [2, 1, 1, 3, 0, 3, 2]);
    *rx.hold.lock().unwrap() = false;
    rx.release.notify_waiters();
    until("the rest delivered", || stats.delivered() == 5).await;
    assert_eq!(scrape(srv.addr).await, [5, 1, 1, 3, 0, 3, 0]);
    srv.stop().await.unwrap();
    plain.stop().await.unwrap();
}

#[tokio::test]
async fn bad_targets_are_typed_errors() {
    let f: Arc<dyn Control> = Arc::new(FakeControl::new(4));
    for url in [
        "ftp://127.0.0.1/x",
        "127.0.0.1:80",
        "http://user:pw@127.0.0.1/",
        "",
    ] {
        let e = spawn_webhooks_with(
            f.clone(),
            WebhookTarget {
                url: url.into(),
                secret: SECRET.to_vec(),
            },
            WebhookOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, WebhookError::BadUrl { .. }), "{url}: {e}");
    }
    let e = spawn_webhooks_with(
        f,
        WebhookTarget {
            url: "http://127.0.0.1:9/".into(),
            secret: SECRET.to_vec(),
        },
        WebhookOptions {
            queue_capacity: 0,
            ..WebhookOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, WebhookError::Options(_)));
}

/// An HTTPS receiver with a fresh self-signed certificate for `localhost`; returns its URL,
/// the certificate to trust, and the bodies and headers it received.
async fn tls_receiver() -> (
    String,
    rustls::pki_types::CertificateDer<'static>,
    Arc<Mutex<Vec<Hit>>>,
) {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;

    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://localhost:{}/hook",
        listener.local_addr().unwrap().port()
    );
    let hits = Arc::new(Mutex::new(Vec::new()));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, hits) = (acceptor.clone(), h.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let hits = hits.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await?.to_bytes();
                            hits.lock().unwrap().push(Hit {
                                headers: parts.headers,
                                body,
                            });
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (url, cert, hits)
}

#[tokio::test]
async fn delivers_over_https_and_refuses_untrusted_certificates() {
    let (url, cert, hits) = tls_receiver().await;
    let f = Arc::new(FakeControl::new(64));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let opts = WebhookOptions {
        tls_roots: Some(Arc::new(roots)),
        ..fast()
    };
    let (trusted, stats) = spawn(f.clone(), &url, opts);
    f.emit("alice", "message", json!({ "n": 1 }));
    until("an HTTPS delivery", || stats.delivered() == 1).await;
    check_signed(&hits.lock().unwrap()[0]);
    trusted.abort();
    let _ = trusted.await;

    // With the public roots only, the self-signed receiver is not trusted: retried, then failed.
    let opts = WebhookOptions {
        max_attempts: 2,
        ..fast()
    };
    let (_task, stats) = spawn(f.clone(), &url, opts);
    f.emit("alice", "message", json!({ "n": 2 }));
    until("the give-up", || stats.failed() == 1).await;
    assert_eq!(stats.delivered(), 0);
    assert_eq!(
        hits.lock().unwrap().len(),
        1,
        "nothing reached the untrusted receiver"
    );
}

#[test]
fn target_from_config_reads_the_secret_from_the_environment() {
    let cfg = wasmeow::config::WebhookConfig {
        url: "http://127.0.0.1:9/hook".into(),
        secret_env: "WASMEOW_TEST_WEBHOOK_SECRET_UNSET_7F3A".into(),
    };
    assert_eq!(
        WebhookTarget::from_config(&cfg).unwrap_err(),
        WebhookError::MissingSecret(cfg.secret_env.clone())
    );
    let cfg = wasmeow::config::WebhookConfig {
        secret_env: "PATH".into(), // set in every test environment
        ..cfg
    };
    let t = WebhookTarget::from_config(&cfg).unwrap();
    assert_eq!(t.secret, std::env::var("PATH").unwrap().into_bytes());
    assert!(
        !format!("{t:?}").contains(&std::env::var("PATH").unwrap()),
        "Debug hides the secret"
    );
}
