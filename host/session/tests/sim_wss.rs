//! `wss://` end to end: a session pairs with a simulated phone and exchanges messages over the
//! simulator's TLS listener, trusting the simulator's generated test CA (carried by the
//! session's [`Endpoint`], see [`Endpoint::url_with_roots`]); without that CA the connection
//! fails at once with a typed TLS error, not a hang or a timeout.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wasmeow_protocol::binary::Jid;
use wasmeow_protocol::keys::PublicKey;
use wasmeow_session::events::ConnectionEvent;
use wasmeow_session::recv::text_of;
use wasmeow_session::transport::{TlsRoots, TransportError};
use wasmeow_session::{ConnState, Endpoint, Event, Session, SessionConfig};
use wasmeow_sim::SimHandle;
use wasmeow_store::{MemoryStore, Store as _};

/// The simulator's `wss://` URL and CA.
async fn wss(sim: &SimHandle) -> (String, String) {
    let info = sim.info().await;
    let url = info
        .wss_url
        .expect("the simulator serves wss:// by default");
    assert!(url.starts_with("wss://"), "{url}");
    (url, info.ca_pem)
}

fn wss_config(sim: &SimHandle, endpoint: Endpoint) -> SessionConfig {
    SessionConfig::for_test_server(endpoint, PublicKey(sim.root_public_key()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_and_text_both_ways_over_wss_trusting_the_sim_ca() {
    let sim = sim().await;
    let me = sim.create_account(None, Some("Host")).unwrap();
    let bob = sim.create_account(None, Some("Bob")).unwrap();
    let (url, ca_pem) = wss(&sim).await;
    let roots = TlsRoots::with_extra_root_pem(&ca_pem).expect("the sim's CA parses");
    let config = SessionConfig {
        // The production prekey count: the upload (about 40 KiB) goes out as a fragmented
        // WebSocket message, through TLS.
        initial_prekey_count: SessionConfig::default().initial_prekey_count,
        ..wss_config(&sim, Endpoint::url_with_roots(url, roots))
    };

    let store = MemoryStore::new();
    let acc = store.create_account("wss").unwrap();
    let (session, mut events) = Session::start(config.clone(), acc.clone());
    let qr = next_event(&mut events, |e| match e {
        Event::Connection(ConnectionEvent::Qr { code, .. }) => Some(code.clone()),
        Event::Connection(ConnectionEvent::Disconnected { reason, .. }) => {
            panic!("the wss connection failed: {reason}")
        }
        _ => None,
    })
    .await;
    sim.scan(&qr, &me.pn).await.expect("phone scans the QR");
    next_event(&mut events, |e| {
        matches!(e, Event::Connection(ConnectionEvent::Connected)).then_some(())
    })
    .await;
    let own = session.own_jid().expect("paired");
    assert_eq!(own.user(), me.pn);
    let ours = sim
        .devices(&me.pn)
        .unwrap()
        .into_iter()
        .find(|d| d.id == own.device())
        .expect("our device is registered");
    assert_eq!(
        ours.prekeys,
        SessionConfig::default().initial_prekey_count as usize,
        "the fragmented prekey upload arrived whole"
    );

    // Phone → host.
    let id = sim
        .phone_send_text(&bob.pn, &me.jid, "hello over TLS")
        .unwrap();
    let (got_id, text) = next_event(&mut events, |e| match e {
        Event::Message(m) => text_of(&m.content).map(|t| (m.info.id.clone(), t.to_owned())),
        _ => None,
    })
    .await;
    assert_eq!(
        (got_id.as_str(), text.as_str()),
        (id.as_str(), "hello over TLS")
    );

    // Host → phone.
    let bob_jid: Jid = bob.jid.parse().unwrap();
    let outcome = session.send_text(&bob_jid, "reply over TLS").await.unwrap();
    assert!(outcome.result.is_ok(), "{outcome:?}");
    eventually(|| {
        sim.phone_inbox(&bob.pn)
            .unwrap()
            .iter()
            .any(|m| m.id == outcome.id && m.text.as_deref() == Some("reply over TLS"))
            .then_some(())
    })
    .await;
    assert_eq!(sim.phone_undecryptable(&bob.pn).unwrap(), 0);
    session.stop().await;
    assert_eq!(session.state(), ConnState::Stopped);

    // The stored credentials log in again over wss without pairing.
    let (session, mut events) = Session::start(config, acc);
    next_event(&mut events, |e| match e {
        Event::Connection(ConnectionEvent::Qr { .. }) => panic!("a paired device must not pair"),
        Event::Connection(ConnectionEvent::Connected) => Some(()),
        _ => None,
    })
    .await;
    sim.phone_send_text(&bob.pn, &me.jid, "after wss relogin")
        .unwrap();
    let text = next_event(&mut events, |e| match e {
        Event::Message(m) => text_of(&m.content).map(str::to_owned),
        _ => None,
    })
    .await;
    assert_eq!(text, "after wss relogin");
    session.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_without_the_sim_ca_fails_fast_with_a_tls_error() {
    let sim = sim().await;
    let (url, _ca_pem) = wss(&sim).await;

    // The transport alone: public roots only → a typed TLS error naming the certificate
    // problem, well before the connect timeout.
    let timeout = Duration::from_secs(10);
    let started = Instant::now();
    let err = Endpoint::url(url.clone())
        .connect(None, timeout)
        .await
        .expect_err("an untrusted certificate must be refused");
    assert!(
        started.elapsed() < timeout / 2,
        "took {:?}",
        started.elapsed()
    );
    let TransportError::Tls { host, source } = &err else {
        panic!("expected a TLS error, got {err:?}");
    };
    assert_eq!(host, "localhost");
    let rustls_error = source
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a rustls error: {source:?}"));
    assert!(
        matches!(
            rustls_error,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ),
        "{rustls_error:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("TLS handshake with localhost failed") && message.contains("certificate"),
        "{message}"
    );

    // A session reports it as a disconnect with that reason (and retries with back-off); it
    // never gets as far as a QR code.
    let store = MemoryStore::new();
    let acc = store.create_account("no-ca").unwrap();
    let (session, mut events) = Session::start(wss_config(&sim, Endpoint::url(url)), acc);
    let (reason, retry) = next_event(&mut events, |e| match e {
        Event::Connection(ConnectionEvent::Qr { .. }) => {
            panic!("pairing must not start over an untrusted TLS connection")
        }
        Event::Connection(ConnectionEvent::Disconnected {
            reason,
            retry_in_ms,
        }) => Some((reason.clone(), *retry_in_ms)),
        _ => None,
    })
    .await;
    assert!(
        reason.contains("TLS handshake") && reason.contains("UnknownIssuer"),
        "{reason}"
    );
    assert!(retry.is_some(), "a TLS failure is retried with back-off");
    assert!(session.own_jid().is_none());
    session.stop().await;
    assert_eq!(session.state(), ConnState::Stopped);
}

#[test]
fn a_pem_without_a_certificate_is_a_typed_error() {
    for bad in [
        "",
        "not a certificate",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    ] {
        assert!(
            matches!(
                TlsRoots::with_extra_root_pem(bad),
                Err(TransportError::InvalidPem(_))
            ),
            "{bad:?}"
        );
    }
}
