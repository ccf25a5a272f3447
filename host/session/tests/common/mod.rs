//! Shared helpers for the session's integration tests against `wasmeow-sim`.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use wasmeow_protocol::keys::PublicKey;
use wasmeow_session::events::ConnectionEvent;
use wasmeow_session::{Endpoint, Event, Session, SessionConfig};
use wasmeow_sim::{AccountInfo, Sim, SimConfig, SimHandle};
use wasmeow_store::{MemoryAccount, MemoryStore, Store as _};

pub const WAIT: Duration = Duration::from_secs(30);

pub async fn sim() -> SimHandle {
    Sim::start(SimConfig::default()).await.expect("sim starts")
}

pub async fn config(sim: &SimHandle) -> SessionConfig {
    let url = sim.ws_url().await;
    SessionConfig::for_test_server(Endpoint::url(url), PublicKey(sim.root_public_key()))
}

/// Waits for the first event matching `f`, returning what `f` extracts.
pub async fn next_event<T>(
    events: &mut UnboundedReceiver<Event>,
    mut f: impl FnMut(&Event) -> Option<T>,
) -> T {
    let fut = async {
        loop {
            let e = events.recv().await.expect("event stream open");
            if let Some(t) = f(&e) {
                return t;
            }
        }
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("event in time")
}

/// A fresh session on its own memory store, paired by QR to `account`'s phone and connected.
pub async fn paired(
    sim: &SimHandle,
    account: &AccountInfo,
) -> (
    Session<MemoryAccount>,
    UnboundedReceiver<Event>,
    MemoryAccount,
) {
    let store = MemoryStore::new();
    let acc = store.create_account("test").expect("account");
    let (session, mut events) = Session::start(config(sim).await, acc.clone());
    let qr = next_event(&mut events, |e| match e {
        Event::Connection(ConnectionEvent::Qr { code, .. }) => Some(code.clone()),
        _ => None,
    })
    .await;
    sim.scan(&qr, &account.pn)
        .await
        .expect("phone scans the QR");
    next_event(&mut events, |e| {
        matches!(e, Event::Connection(ConnectionEvent::Connected)).then_some(())
    })
    .await;
    (session, events, acc)
}

/// Polls `f` until it returns `Some` (or panics after `WAIT`).
pub async fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
