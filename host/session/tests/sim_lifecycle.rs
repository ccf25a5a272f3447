//! Connection lifecycle over `wasmeow-sim`: stream errors and login failures become typed
//! events with the right reconnect decision; pairing by code; server rate limits (429) pause
//! the outbox without losing or reordering messages.

mod common;

use std::time::Duration;

use common::*;
use wasmeow_protocol::binary::Jid;
use wasmeow_session::events::ConnectionEvent;
use wasmeow_session::{ConnState, Event, Session};
use wasmeow_sim::{Kick, RateLimit};
use wasmeow_store::DeviceStore as _;

fn conn(e: &Event) -> Option<ConnectionEvent> {
    match e {
        Event::Connection(c) => Some(c.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_out_wipes_credentials_and_stops() {
    let sim = sim().await;
    let me = sim.create_account(None, None).unwrap();
    let (session, mut events, acc) = paired(&sim, &me).await;
    let own = session.own_jid().unwrap().to_string();
    assert!(sim.kick(&own, Kick::LoggedOut).unwrap());
    let reason = next_event(&mut events, |e| match conn(e) {
        Some(ConnectionEvent::LoggedOut { reason }) => Some(reason),
        _ => None,
    })
    .await;
    assert!(!reason.is_empty());
    assert!(
        session
            .wait_for_state(WAIT, |s| s == ConnState::Stopped)
            .await
            .is_some()
    );
    assert!(acc.get_device().unwrap().is_none(), "credentials are wiped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_stream_does_not_reconnect() {
    let sim = sim().await;
    let me = sim.create_account(None, None).unwrap();
    let (session, mut events, acc) = paired(&sim, &me).await;
    let own = session.own_jid().unwrap().to_string();
    sim.kick(&own, Kick::Replaced).unwrap();
    next_event(&mut events, |e| {
        matches!(conn(e), Some(ConnectionEvent::StreamReplaced)).then_some(())
    })
    .await;
    assert!(
        session
            .wait_for_state(WAIT, |s| s == ConnState::Stopped)
            .await
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !sim.devices(&me.pn)
            .unwrap()
            .iter()
            .any(|d| d.id != 0 && d.online),
        "no reconnect after conflict/replaced"
    );
    assert!(acc.get_device().unwrap().is_some(), "credentials are kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_unavailable_reconnect() {
    let sim = sim().await;
    let me = sim.create_account(None, None).unwrap();
    let bob = sim.create_account(None, None).unwrap();
    let (session, mut events, _) = paired(&sim, &me).await;
    let own = session.own_jid().unwrap().to_string();
    for kick in [Kick::Restart, Kick::Unavailable] {
        sim.kick(&own, kick).unwrap();
        let retry = next_event(&mut events, |e| match conn(e) {
            Some(ConnectionEvent::Disconnected { retry_in_ms, .. }) => Some(retry_in_ms),
            _ => None,
        })
        .await;
        assert!(retry.is_some(), "{kick:?}: a reconnect is scheduled");
        next_event(&mut events, |e| {
            matches!(conn(e), Some(ConnectionEvent::Connected)).then_some(())
        })
        .await;
    }
    // Still fully working.
    sim.phone_send_text(&bob.pn, &me.jid, "still there?")
        .unwrap();
    let text = next_event(&mut events, |e| match e {
        Event::Message(m) => wasmeow_session::recv::text_of(&m.content).map(str::to_owned),
        _ => None,
    })
    .await;
    assert_eq!(text, "still there?");
    session.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_are_typed() {
    let sim = sim().await;
    let me = sim.create_account(None, None).unwrap();
    let (session, _events, acc) = paired(&sim, &me).await;
    session.stop().await;

    sim.refuse_logins(Duration::from_secs(60), 405);
    let (session, mut events) = Session::start(config(&sim).await, acc.clone());
    next_event(&mut events, |e| {
        matches!(conn(e), Some(ConnectionEvent::ClientOutdated)).then_some(())
    })
    .await;
    assert!(
        session
            .wait_for_state(WAIT, |s| s == ConnState::Stopped)
            .await
            .is_some()
    );

    sim.refuse_logins(Duration::from_secs(60), 402);
    let (session, mut events) = Session::start(config(&sim).await, acc.clone());
    next_event(&mut events, |e| {
        matches!(conn(e), Some(ConnectionEvent::TemporaryBan { .. })).then_some(())
    })
    .await;
    assert!(
        session
            .wait_for_state(WAIT, |s| s == ConnState::Stopped)
            .await
            .is_some()
    );
    assert!(
        acc.get_device().unwrap().is_some(),
        "a ban keeps the credentials"
    );

    // 503 is transient: the session keeps retrying and gets in once logins work again.
    sim.refuse_logins(Duration::from_millis(700), 503);
    let (session, mut events) = Session::start(config(&sim).await, acc.clone());
    next_event(&mut events, |e| {
        matches!(
            conn(e),
            Some(ConnectionEvent::Disconnected {
                retry_in_ms: Some(_),
                ..
            })
        )
        .then_some(())
    })
    .await;
    next_event(&mut events, |e| {
        matches!(conn(e), Some(ConnectionEvent::Connected)).then_some(())
    })
    .await;
    session.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_with_phone_number_code() {
    let sim = sim().await;
    let me = sim.create_account(None, None).unwrap();
    let store = wasmeow_store::MemoryStore::new();
    let acc = wasmeow_store::Store::create_account(&store, "code").unwrap();
    let (session, mut events) = Session::start(config(&sim).await, acc);
    next_event(&mut events, |e| {
        matches!(conn(e), Some(ConnectionEvent::Qr { .. })).then_some(())
    })
    .await;
    let code = session.pair_phone(&me.pn).await.unwrap();
    assert_eq!(code.len(), 9);
    let device = sim.enter_pairing_code(&me.pn, &code).await.unwrap();
    next_event(&mut events, |e| {
        matches!(conn(e), Some(ConnectionEvent::Connected)).then_some(())
    })
    .await;
    assert_eq!(session.own_jid().unwrap().to_string(), device);
    session.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rate_limit_pauses_and_resends_in_order() {
    let sim = sim().await;
    let me = sim.create_account(None, None).unwrap();
    let bob = sim.create_account(None, None).unwrap();
    let (session, _events, _) = paired(&sim, &me).await;
    sim.set_rate_limit(
        &me.pn,
        Some(RateLimit {
            messages: 3,
            per_ms: 1000,
        }),
    )
    .unwrap();
    let bob_jid: Jid = bob.jid.parse().unwrap();
    let mut receivers = Vec::new();
    for i in 0..8 {
        let (_, rx) = session
            .send(
                &bob_jid,
                wasmeow_session::MessageContent::text(format!("m{i}")),
            )
            .await
            .unwrap();
        receivers.push(rx);
    }
    for rx in receivers {
        let outcome = tokio::time::timeout(WAIT, rx).await.unwrap().unwrap();
        assert!(outcome.result.is_ok(), "{outcome:?}");
    }
    let texts: Vec<String> = sim
        .phone_inbox(&bob.pn)
        .unwrap()
        .into_iter()
        .filter_map(|m| m.text)
        .collect();
    assert_eq!(
        texts,
        (0..8).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "all delivered exactly once, in order"
    );
    assert!(sim.phone_acks(&me.pn).is_ok(), "the account exists");
    session.stop().await;
}

/// `Session::state` is current even when nobody waits on it (the state channel keeps its value
/// without subscribers): pairing by code right after the QR event needs it, and so do callers that
/// poll the state (the runtime's campaign runner).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_current_without_anyone_waiting() {
    let sim = sim().await;
    let me = sim.create_account(None, None).unwrap();
    let store = wasmeow_store::MemoryStore::new();
    let acc = wasmeow_store::Store::create_account(&store, "state").unwrap();
    let (session, mut events) = Session::start(config(&sim).await, acc);
    let qr = next_event(&mut events, |e| match conn(e) {
        Some(ConnectionEvent::Qr { code, .. }) => Some(code.clone()),
        _ => None,
    })
    .await;
    assert_eq!(session.state(), ConnState::Pairing);
    sim.scan(&qr, &me.pn).await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while session.state() != ConnState::Ready {
        assert!(
            std::time::Instant::now() < deadline,
            "state stuck at {:?}",
            session.state()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    session.stop().await;
    assert_eq!(session.state(), ConnState::Stopped);
}
