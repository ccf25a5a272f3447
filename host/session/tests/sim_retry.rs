//! Retry receipts in both directions, between two sessions of our engine over `wasmeow-sim`:
//! the receiver loses its session with the sender, fails to decrypt, asks again (keys from the
//! second retry on); the sender answers from its recent-sent store with a fresh session. The
//! same with a simulated phone as the sender (the simulator's phones resend too).

mod common;

use common::*;
use wasmeow_protocol::binary::Jid;
use wasmeow_session::Event;
use wasmeow_session::recv::text_of;
use wasmeow_store::SessionStore as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_session_recovers_through_retry_receipts() {
    let sim = sim().await;
    let a = sim.create_account(None, Some("A")).unwrap();
    let b = sim.create_account(None, Some("B")).unwrap();
    let (host_a, _a_events, _) = paired(&sim, &a).await;
    let (host_b, mut b_events, b_store) = paired(&sim, &b).await;
    let b_jid: Jid = b.jid.parse().unwrap();

    // Establish the session.
    assert!(
        host_a
            .send_text(&b_jid, "first")
            .await
            .unwrap()
            .result
            .is_ok()
    );
    let first = next_event(&mut b_events, |e| match e {
        Event::Message(m) => text_of(&m.content).map(str::to_owned),
        _ => None,
    })
    .await;
    assert_eq!(first, "first");

    // B forgets every session with A's devices (phone-number and LID addresses).
    let removed = b_store.delete_all_sessions(&a.pn).unwrap()
        + b_store
            .delete_all_sessions(&format!("{}_1", a.lid))
            .unwrap();
    assert!(removed > 0, "B had a session with A");

    // A's next message is a plain `msg` B cannot decrypt: B sends retry receipts, A resends.
    let sent = host_a.send_text(&b_jid, "second").await.unwrap();
    assert!(sent.result.is_ok());
    let mut undecryptable = Vec::new();
    let text = next_event(&mut b_events, |e| match e {
        Event::Undecryptable(u) => {
            undecryptable.push(u.retry_count);
            None
        }
        Event::Message(m) => {
            assert_eq!(m.info.id, sent.id, "the resend keeps the message id");
            text_of(&m.content).map(str::to_owned)
        }
        _ => None,
    })
    .await;
    assert_eq!(text, "second");
    // Retry 1 carries no keys and A still uses its (now unknown) session: it fails again.
    // Retry 2 carries B's keys: A starts a new session from them and B decrypts the pkmsg.
    assert_eq!(undecryptable, vec![1, 2], "retry counts reported by B");
    // Both directions keep working afterwards.
    let a_jid: Jid = a.jid.parse().unwrap();
    assert!(
        host_b
            .send_text(&a_jid, "back to A")
            .await
            .unwrap()
            .result
            .is_ok()
    );
    assert!(
        host_a
            .send_text(&b_jid, "third")
            .await
            .unwrap()
            .result
            .is_ok()
    );
    let third = next_event(&mut b_events, |e| match e {
        Event::Message(m) => text_of(&m.content).map(str::to_owned),
        _ => None,
    })
    .await;
    assert_eq!(third, "third");
    host_a.stop().await;
    host_b.stop().await;
}

/// The same recovery with a simulated phone as the sender: the phone answers our retry
/// receipts from the messages it keeps (`wasmeow-sim` phones resend, fresh session from our
/// `<keys>`), and we decrypt its resend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_session_with_a_phone_recovers_through_the_phones_resend() {
    let sim = sim().await;
    let me = sim.create_account(None, Some("Host")).unwrap();
    let bob = sim.create_account(None, Some("Bob")).unwrap();
    let (host, mut events, store) = paired(&sim, &me).await;
    let bob_jid: Jid = bob.jid.parse().unwrap();

    // A confirmed session both ways: the phone's next message is a plain `msg`.
    sim.phone_send_text(&bob.pn, &me.jid, "first").unwrap();
    let first = next_event(&mut events, |e| match e {
        Event::Message(m) => text_of(&m.content).map(str::to_owned),
        _ => None,
    })
    .await;
    assert_eq!(first, "first");
    assert!(
        host.send_text(&bob_jid, "reply")
            .await
            .unwrap()
            .result
            .is_ok()
    );
    eventually(|| {
        sim.phone_inbox(&bob.pn)
            .unwrap()
            .iter()
            .any(|m| m.text.as_deref() == Some("reply"))
            .then_some(())
    })
    .await;

    let removed = store.delete_all_sessions(&bob.pn).unwrap()
        + store
            .delete_all_sessions(&format!("{}_1", bob.lid))
            .unwrap();
    assert!(removed > 0, "we had a session with Bob's phone");

    let id = sim.phone_send_text(&bob.pn, &me.jid, "second").unwrap();
    let mut undecryptable = Vec::new();
    let (got_id, text) = next_event(&mut events, |e| match e {
        Event::Undecryptable(u) => {
            undecryptable.push(u.retry_count);
            None
        }
        Event::Message(m) => text_of(&m.content).map(|t| (m.info.id.clone(), t.to_owned())),
        _ => None,
    })
    .await;
    assert_eq!((got_id.as_str(), text.as_str()), (id.as_str(), "second"));
    // Retry 1 (no keys): the phone resends on its old session, which we no longer have.
    // Retry 2 (our keys): the phone starts a fresh session and we decrypt its pkmsg.
    assert_eq!(undecryptable, vec![1, 2], "retry counts");
    let retries = sim
        .phone_receipts(&bob.pn)
        .unwrap()
        .into_iter()
        .filter(|r| r.id == id && r.kind == "retry")
        .count();
    assert_eq!(retries, 2);

    // And the chat keeps working both ways.
    sim.phone_send_text(&bob.pn, &me.jid, "third").unwrap();
    let third = next_event(&mut events, |e| match e {
        Event::Message(m) => text_of(&m.content).map(str::to_owned),
        _ => None,
    })
    .await;
    assert_eq!(third, "third");
    assert!(
        host.send_text(&bob_jid, "still here")
            .await
            .unwrap()
            .result
            .is_ok()
    );
    host.stop().await;
}
