//! Host ↔ simulated phone over `wasmeow-sim`: QR pairing, 1:1 text both ways, re-login.

mod common;

use common::*;
use wasmeow_protocol::binary::Jid;
use wasmeow_session::content::MessageContent;
use wasmeow_session::events::ConnectionEvent;
use wasmeow_session::{ConnState, Event, Session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_by_qr_then_text_both_ways() {
    let sim = sim().await;
    let me = sim.create_account(None, Some("Host")).unwrap();
    let bob = sim.create_account(None, Some("Bob")).unwrap();
    let (session, mut events, _acc) = paired(&sim, &me).await;
    let own = session.own_jid().expect("paired");
    assert_eq!(own.user(), me.pn);
    assert_ne!(own.device(), 0, "a companion is never device 0");

    let id = sim.phone_send_text(&bob.pn, &me.jid, "hello host").unwrap();
    let (got_id, text, sender) = next_event(&mut events, |e| match e {
        Event::Message(m) => match &m.content {
            MessageContent::Text { text, .. } => {
                Some((m.info.id.clone(), text.clone(), m.info.sender.clone()))
            }
            _ => None,
        },
        _ => None,
    })
    .await;
    assert_eq!(got_id, id);
    assert_eq!(text, "hello host");
    assert!(
        sender.starts_with(&bob.pn) || sender.starts_with(&bob.lid),
        "sender {sender}"
    );

    let bob_jid: Jid = bob.jid.parse().unwrap();
    let outcome = session.send_text(&bob_jid, "hi bob").await.unwrap();
    assert!(outcome.result.is_ok(), "{outcome:?}");
    let inbox = eventually(|| {
        let inbox = sim.phone_inbox(&bob.pn).unwrap();
        inbox
            .iter()
            .any(|m| m.text.as_deref() == Some("hi bob"))
            .then_some(inbox)
    })
    .await;
    let m = inbox
        .iter()
        .find(|m| m.text.as_deref() == Some("hi bob"))
        .unwrap();
    assert_eq!(m.id, outcome.id);
    assert_eq!(m.sender, me.pn);
    assert_eq!(sim.phone_undecryptable(&bob.pn).unwrap(), 0);
    session.stop().await;
    assert_eq!(session.state(), ConnState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relogin_with_stored_credentials() {
    let sim = sim().await;
    let me = sim.create_account(None, Some("Host")).unwrap();
    let bob = sim.create_account(None, Some("Bob")).unwrap();
    let (session, _events, acc) = paired(&sim, &me).await;
    let own = session.own_jid().unwrap();
    session.stop().await;

    // A new session on the same store logs in without pairing, as the same device.
    let (session, mut events) = Session::start(config(&sim).await, acc);
    next_event(&mut events, |e| match e {
        Event::Connection(ConnectionEvent::Qr { .. }) => {
            panic!("a paired device must not be asked to pair")
        }
        Event::Connection(ConnectionEvent::Connected) => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(session.own_jid(), Some(own));
    sim.phone_send_text(&bob.pn, &me.jid, "after relogin")
        .unwrap();
    let text = next_event(&mut events, |e| match e {
        Event::Message(m) => wasmeow_session::recv::text_of(&m.content).map(str::to_owned),
        _ => None,
    })
    .await;
    assert_eq!(text, "after relogin");
    session.stop().await;
}
