//! Reconnect policy without a server: every attempt fails at once, and the session must back
//! off exponentially with jitter — never a tight loop. Runs on tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wasmeow_protocol::keys::PublicKey;
use wasmeow_session::backoff::BackoffPolicy;
use wasmeow_session::events::ConnectionEvent;
use wasmeow_session::transport::MemoryConnector;
use wasmeow_session::{ConnState, Endpoint, Event, Session, SessionConfig};
use wasmeow_store::{MemoryStore, Store as _};

#[tokio::test(start_paused = true)]
async fn failing_connects_back_off_exponentially_and_never_spin() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    // Every attempt: the "server" is gone.
    let connector: MemoryConnector = Arc::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        None
    });
    let mut config =
        SessionConfig::for_test_server(Endpoint::memory(connector), PublicKey([9; 32]));
    config.backoff = BackoffPolicy::new(Duration::from_secs(1), Duration::from_secs(60));
    let store = MemoryStore::new();
    let (session, mut events) = Session::start(config, store.create_account("a").unwrap());

    let start = tokio::time::Instant::now();
    let mut delays = Vec::new();
    while start.elapsed() < Duration::from_secs(600) {
        match tokio::time::timeout(Duration::from_secs(120), events.recv()).await {
            Ok(Some(Event::Connection(ConnectionEvent::Disconnected { retry_in_ms, .. }))) => {
                delays.push(Duration::from_millis(
                    retry_in_ms.expect("a retry is scheduled"),
                ));
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("event stream closed"),
            Err(_) => panic!("no reconnect attempt for two minutes"),
        }
    }
    let n = attempts.load(Ordering::SeqCst);
    // 1 + 2 + 4 + … capped at 60 s, each at least half its base: in 600 s at most ~25 attempts.
    assert!(n >= 8, "too few attempts: {n}");
    assert!(n <= 30, "tight loop: {n} attempts in 10 minutes");
    for (i, d) in delays.iter().enumerate() {
        let base = Duration::from_secs(1u64 << i.min(6)).min(Duration::from_secs(60));
        assert!(
            *d >= base / 2 && *d <= base,
            "delay {i}: {d:?} outside [{:?}, {base:?}]",
            base / 2
        );
    }
    assert!(
        delays
            .iter()
            .rev()
            .take(3)
            .all(|d| *d >= Duration::from_secs(30)),
        "capped delays stay near the cap: {delays:?}"
    );
    // Stop: blocking store calls do not hold the paused clock, so poll in real time.
    let stopper = session.clone();
    tokio::spawn(async move { stopper.stop().await });
    for _ in 0..2000 {
        if session.state() == ConnState::Stopped {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
        tokio::task::yield_now().await;
    }
    assert_eq!(session.state(), ConnState::Stopped);
}
