//! Reconnect soak over `wasmeow-sim`: 2,000 messages (1,000 each way between our host and a
//! simulated phone) while the simulator drops the host's connection 20 times. Every message
//! arrives exactly once and in order, and every session still decrypts afterwards.
//!
//! `#[ignore]`d: run by the full suite (`cargo test -- --include-ignored`).

mod common;

use std::time::Duration;

use common::*;
use wasmeow_protocol::binary::Jid;
use wasmeow_session::recv::text_of;
use wasmeow_session::{Event, MessageContent};

const N: usize = 1000;
const DROPS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: ~2,000 messages and 20 forced reconnects"]
async fn two_thousand_messages_through_twenty_dropped_connections() {
    let sim = sim().await;
    let me = sim.create_account(None, Some("Host")).unwrap();
    let bob = sim.create_account(None, Some("Bob")).unwrap();
    let (session, mut events, _) = paired(&sim, &me).await;
    let own = session.own_jid().unwrap().to_string();
    let bob_jid: Jid = bob.jid.parse().unwrap();

    let mut receivers = Vec::with_capacity(N);
    let mut drops = 0;
    for i in 0..N {
        sim.phone_send_text(&bob.pn, &me.jid, &format!("p{i}"))
            .unwrap();
        let (_, rx) = session
            .send(&bob_jid, MessageContent::text(format!("h{i}")))
            .await
            .unwrap();
        receivers.push(rx);
        if i % (N / DROPS) == N / DROPS / 2 {
            // Wait until the host is online again, then cut it.
            eventually(|| {
                sim.devices(&me.pn)
                    .unwrap()
                    .iter()
                    .any(|d| d.id != 0 && d.online)
                    .then_some(())
            })
            .await;
            assert!(sim.drop_connection(&own).unwrap());
            drops += 1;
        }
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert_eq!(drops, DROPS);

    // Host → phone: every outbox entry is accepted by the server.
    for rx in receivers {
        let outcome = tokio::time::timeout(Duration::from_secs(120), rx)
            .await
            .expect("outcome in time")
            .unwrap();
        assert!(outcome.result.is_ok(), "{outcome:?}");
    }
    // Phone → host: exactly once, in order, nothing undecryptable.
    let mut got = Vec::new();
    let mut undecryptable = 0;
    let mut reasons: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while got.len() < N {
        let Ok(e) = tokio::time::timeout_at(deadline, events.recv()).await else {
            let missing: Vec<usize> = (0..N).filter(|i| !got.contains(&format!("p{i}"))).collect();
            panic!(
                "only {} of {N} phone messages arrived ({undecryptable} undecryptable: {reasons:?}); missing {:?}; queued for us: {:?}; devices: {:?}",
                got.len(),
                &missing[..missing.len().min(20)],
                sim.queued_messages(&own).unwrap().len(),
                sim.devices(&me.pn).unwrap()
            );
        };
        let e = e.unwrap();
        match e {
            Event::Message(m) => {
                if let Some(t) = text_of(&m.content) {
                    got.push(t.to_owned());
                }
            }
            Event::Undecryptable(u) => {
                if undecryptable < 5 {
                    reasons.push(format!("{} #{}: {}", u.info.id, u.retry_count, u.reason));
                }
                undecryptable += 1
            }
            _ => {}
        }
    }
    assert_eq!(got, (0..N).map(|i| format!("p{i}")).collect::<Vec<_>>());
    assert_eq!(undecryptable, 0);

    // At the phone: every host message, in order of first arrival. A message whose ack was lost
    // with the connection is sent again with the same id; the simulator does not de-duplicate
    // ids, so the phone may see such a message twice — it is counted once by id.
    let inbox = eventually(|| {
        let inbox = sim.phone_inbox(&bob.pn).unwrap();
        let mut seen = std::collections::HashSet::new();
        let firsts: Vec<String> = inbox
            .iter()
            .filter(|m| seen.insert(m.id.clone()))
            .filter_map(|m| m.text.clone())
            .filter(|t| t.starts_with('h'))
            .collect();
        (firsts.len() >= N).then_some(firsts)
    })
    .await;
    assert_eq!(inbox, (0..N).map(|i| format!("h{i}")).collect::<Vec<_>>());
    assert_eq!(sim.phone_undecryptable(&bob.pn).unwrap(), 0);

    // Every session still decrypts, both ways.
    sim.phone_send_text(&bob.pn, &me.jid, "final").unwrap();
    let last = next_event(&mut events, |e| match e {
        Event::Message(m) => text_of(&m.content).map(str::to_owned),
        _ => None,
    })
    .await;
    assert_eq!(last, "final");
    let r = session.send_text(&bob_jid, "final reply").await.unwrap();
    assert!(r.result.is_ok());
    eventually(|| {
        sim.phone_inbox(&bob.pn)
            .unwrap()
            .iter()
            .any(|m| m.text.as_deref() == Some("final reply"))
            .then_some(())
    })
    .await;
    session.stop().await;
}
