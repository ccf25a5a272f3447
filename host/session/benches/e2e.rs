//! End-to-end throughput on loopback: a simulated phone (wasmeow-sim, in process) encrypts a
//! text → the simulator routes it → our session decrypts it (store transaction, receipt) →
//! replies through the outbox (encrypt, store transaction, server ack) → the phone decrypts
//! the reply. Prints round trips/s and messages/s (two per round trip).
//!
//! Run: `cargo bench -p wasmeow-session --bench e2e` (optionally `-- <round trips>`).
//! The Baileys figure for the ratio comes from `tests/interop/bench-session.mjs`, which runs
//! the same exchange with a Baileys client as the host.

use std::time::{Duration, Instant};

use wasmeow_protocol::binary::Jid;
use wasmeow_protocol::keys::PublicKey;
use wasmeow_session::events::ConnectionEvent;
use wasmeow_session::recv::text_of;
use wasmeow_session::{Endpoint, Event, MessageContent, Session, SessionConfig};
use wasmeow_sim::{Sim, SimConfig};
use wasmeow_store::{MemoryStore, Store as _};

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let sim = Sim::start(SimConfig::default()).await.expect("sim");
        let me = sim.create_account(None, Some("Host")).unwrap();
        let bob = sim.create_account(None, Some("Bob")).unwrap();
        let url = sim.ws_url().await;
        let config = SessionConfig::for_test_server(Endpoint::url(url), PublicKey(sim.root_public_key()));
        let store = MemoryStore::new();
        let (session, mut events) = Session::start(config, store.create_account("bench").unwrap());
        loop {
            match events.recv().await.expect("events") {
                Event::Connection(ConnectionEvent::Qr { code, .. }) => {
                    sim.scan(&code, &me.pn).await.expect("scan");
                }
                Event::Connection(ConnectionEvent::Connected) => break,
                _ => {}
            }
        }
        let bob_jid: Jid = bob.jid.parse().unwrap();
        // Establish the session both ways before measuring.
        sim.phone_send_text(&bob.pn, &me.jid, "hello").unwrap();
        while !matches!(events.recv().await, Some(Event::Message(_))) {}
        session.send_text(&bob_jid, "hello").await.unwrap();

        // 1. Receive only: phone → sim → host (decrypt, store transaction, receipt, event).
        let start = Instant::now();
        for i in 0..n {
            sim.phone_send_text(&bob.pn, &me.jid, &format!("r{i}")).unwrap();
        }
        let mut got = 0;
        while got < n {
            if let Some(Event::Message(_)) = events.recv().await {
                got += 1;
            }
        }
        let recv_rate = n as f64 / start.elapsed().as_secs_f64();
        println!("receive only: {n} messages in {:.2?}: {recv_rate:.0} messages/s", start.elapsed());

        // 2. Send only: host outbox → sim (server ack); the phone decrypts them all.
        let start = Instant::now();
        let mut pending = Vec::with_capacity(n);
        for i in 0..n {
            let (_, rx) = session.send(&bob_jid, MessageContent::text(format!("s{i}"))).await.unwrap();
            pending.push(rx);
        }
        for rx in pending {
            assert!(rx.await.unwrap().result.is_ok());
        }
        let send_rate = n as f64 / start.elapsed().as_secs_f64();
        println!("send only: {n} messages acked in {:.2?}: {send_rate:.0} messages/s", start.elapsed());

        // 3. The echo: every text from the phone is answered through the outbox.
        let echo = session.clone();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if let Event::Message(m) = e
                    && let Some(t) = text_of(&m.content)
                {
                    let reply = MessageContent::text(format!("re: {t}"));
                    if echo.send(&bob_jid, reply).await.is_err() {
                        break;
                    }
                }
            }
        });
        let replies = |sim: &wasmeow_sim::SimHandle| {
            sim.phone_inbox(&bob.pn)
                .unwrap()
                .iter()
                .filter(|m| m.text.as_deref().is_some_and(|t| t.starts_with("re: ")))
                .count()
        };
        // Warm up: sessions established, caches filled.
        let warm = 100;
        for i in 0..warm {
            sim.phone_send_text(&bob.pn, &me.jid, &format!("w{i}")).unwrap();
        }
        wait_for(|| replies(&sim) >= warm).await;

        let start = Instant::now();
        for i in 0..n {
            sim.phone_send_text(&bob.pn, &me.jid, &format!("m{i}")).unwrap();
            if i % 64 == 63 {
                tokio::task::yield_now().await;
            }
        }
        wait_for(|| replies(&sim) >= warm + n).await;
        let elapsed = start.elapsed();
        assert_eq!(sim.phone_undecryptable(&bob.pn).unwrap(), 0);
        let rt_per_s = n as f64 / elapsed.as_secs_f64();
        println!(
            "e2e echo: {n} round trips in {:.2?}: {:.0} round trips/s, {:.0} messages/s (phone → sim → host → sim → phone)",
            elapsed,
            rt_per_s,
            2.0 * rt_per_s
        );
        session.stop().await;
        sim.shutdown().await;
    });
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !done() {
        assert!(Instant::now() < deadline, "benchmark did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
