//! Every fault-injection control, with the effect a client sees.

mod common;

use std::time::{Duration, Instant};

use common::{Client, ReadError, raw_message};
use wasmeow_protocol::binary::Node;
use wasmeow_sim::{CompanionCredentials, Kick, Sim, SimConfig, SimHandle};

const T: Duration = Duration::from_secs(10);

async fn login(sim: &SimHandle, creds: &CompanionCredentials) -> Client {
    common::login_ready(sim, creds).await
}

/// Two accounts with one companion each, both logged in.
async fn pair_of_clients(
    sim: &SimHandle,
) -> (CompanionCredentials, Client, CompanionCredentials, Client) {
    let a = sim.create_account(None, None).unwrap();
    let b = sim.create_account(None, None).unwrap();
    let a1 = sim.provision_companion(&a.pn).unwrap();
    let b1 = sim.provision_companion(&b.pn).unwrap();
    let ca = login(sim, &a1).await;
    let cb = login(sim, &b1).await;
    (a1, ca, b1, cb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kicks_end_the_stream_with_the_whatsapp_stanza() {
    let sim = common::sim().await;
    let a = sim.create_account(None, None).unwrap();
    for (kick, code, conflict) in [
        (Kick::Restart, Some("515"), None),
        (Kick::Unavailable, Some("503"), None),
        (Kick::Replaced, None, Some("replaced")),
        (Kick::LoggedOut, Some("401"), Some("device_removed")),
    ] {
        let creds = sim.provision_companion(&a.pn).unwrap();
        let mut c = login(&sim, &creds).await;
        assert!(sim.kick(&creds.jid, kick).unwrap());
        let last = c.until_closed(T).await.unwrap();
        let error = last
            .iter()
            .find(|n| n.tag == "stream:error")
            .expect("a stream:error");
        assert_eq!(error.attr_str("code"), code, "{kick:?}");
        assert_eq!(
            error
                .child_by_tag("conflict")
                .and_then(|c| c.attr_str("type")),
            conflict,
            "{kick:?}"
        );
        // After 515/503/replaced the device can log in again; after 401 it is unlinked.
        let again = Client::login(&sim, &creds).await;
        match kick {
            Kick::LoggedOut => assert_eq!(again.err().unwrap().attr_str("reason"), Some("401")),
            _ => assert!(again.is_ok(), "{kick:?}"),
        }
    }
    assert!(
        !sim.kick("19990000000:1@s.whatsapp.net", Kick::Restart)
            .is_ok_and(|online| online)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_replaces_the_first() {
    let sim = common::sim().await;
    let a = sim.create_account(None, None).unwrap();
    let creds = sim.provision_companion(&a.pn).unwrap();
    let mut first = login(&sim, &creds).await;
    let _second = login(&sim, &creds).await;
    let last = first.until_closed(T).await.unwrap();
    let error = last.iter().find(|n| n.tag == "stream:error").unwrap();
    assert_eq!(
        error.child_by_tag("conflict").unwrap().attr_str("type"),
        Some("replaced")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_connection_closes_it_without_a_goodbye_and_keeps_its_queue() {
    let sim = common::sim().await;
    let (a1, mut ca, b1, mut cb) = pair_of_clients(&sim).await;
    assert!(sim.drop_connection(&b1.jid).unwrap());
    assert!(!sim.drop_connection(&b1.jid).unwrap(), "already offline");
    let last = cb.until_closed(T).await.unwrap();
    assert!(last.is_empty(), "no stanza before the drop: {last:?}");
    ca.send(&raw_message("3EB0F001", &b1.jid, &[&b1.jid], b"x"))
        .await;
    ca.recv_matching(T, |n| n.tag == "ack").await.unwrap();
    let (mut cb, _) = Client::login(&sim, &b1).await.unwrap();
    let m = cb.recv_matching(T, |n| n.tag == "message").await.unwrap();
    assert_eq!(m.attr_str("id"), Some("3EB0F001"));
    let _ = a1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_deliveries_arrive_late_and_reordered_ones_arrive_reversed() {
    let sim = common::sim().await;
    let (_a1, mut ca, b1, mut cb) = pair_of_clients(&sim).await;
    sim.delay_deliveries(&b1.jid, Duration::from_millis(700))
        .unwrap();
    let sent = Instant::now();
    ca.send(&raw_message("3EB0F101", &b1.jid, &[&b1.jid], b"x"))
        .await;
    let ack = ca.recv_matching(T, |n| n.tag == "ack").await.unwrap();
    assert!(
        sent.elapsed() < Duration::from_millis(500),
        "the sender's ack is not delayed"
    );
    assert!(ack.attr_str("error").is_none());
    assert!(matches!(
        cb.recv_timeout(Duration::from_millis(400)).await,
        Err(ReadError::Timeout)
    ));
    let m = cb.recv_matching(T, |n| n.tag == "message").await.unwrap();
    assert!(
        sent.elapsed() >= Duration::from_millis(700),
        "held for the delay"
    );
    assert_eq!(m.attr_str("id"), Some("3EB0F101"));
    sim.delay_deliveries(&b1.jid, Duration::ZERO).unwrap();

    sim.reorder_deliveries(&b1.jid, 3).unwrap();
    for id in ["3EB0F201", "3EB0F202", "3EB0F203"] {
        ca.send(&raw_message(id, &b1.jid, &[&b1.jid], b"x")).await;
        ca.recv_matching(T, |n| n.tag == "ack").await.unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = cb.recv_matching(T, |n| n.tag == "message").await.unwrap();
        got.push(m.attr_str("id").unwrap().to_owned());
    }
    assert_eq!(got, ["3EB0F203", "3EB0F202", "3EB0F201"]);
    // The fault is one-shot: the next message is in order again.
    ca.send(&raw_message("3EB0F204", &b1.jid, &[&b1.jid], b"x"))
        .await;
    assert_eq!(
        cb.recv_matching(T, |n| n.tag == "message")
            .await
            .unwrap()
            .attr_str("id"),
        Some("3EB0F204")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_get_a_failure_until_the_window_ends() {
    let sim = common::sim().await;
    let a = sim.create_account(None, None).unwrap();
    let creds = sim.provision_companion(&a.pn).unwrap();
    sim.refuse_logins(Duration::from_millis(600), 503);
    let failure = Client::login(&sim, &creds).await.err().expect("refused");
    assert_eq!(
        (failure.tag.as_ref(), failure.attr_str("reason")),
        ("failure", Some("503"))
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(Client::login(&sim, &creds).await.is_ok());
    assert_eq!(sim.stats().refused_logins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_drops_everyone_and_keeps_accounts_queues_and_phone_sessions() {
    let dir = std::env::temp_dir().join(format!("wasmeow-sim-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let _ = std::fs::remove_file(&state);
    let sim = Sim::start(SimConfig {
        wss_port: None,
        state_file: Some(state.clone()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let (a1, mut ca, b1, cb) = pair_of_clients(&sim).await;
    let url = sim.ws_url().await;
    drop(cb);
    ca.send(&raw_message(
        "3EB0F301",
        &b1.jid,
        &[&b1.jid],
        b"queued before restart",
    ))
    .await;
    ca.recv_matching(T, |n| n.tag == "ack").await.unwrap();

    sim.restart(Duration::from_millis(300)).await.unwrap();
    let last = ca.until_closed(T).await.unwrap();
    assert!(last.is_empty(), "dropped without a stanza");
    assert_eq!(sim.ws_url().await, url, "same port after the restart");
    assert!(state.exists(), "state persisted");

    // Everything the server knew survived: logins work and the queue is still there.
    let _ca = login(&sim, &a1).await;
    let (mut cb, _) = Client::login(&sim, &b1).await.unwrap();
    let m = cb.recv_matching(T, |n| n.tag == "message").await.unwrap();
    assert_eq!(m.attr_str("id"), Some("3EB0F301"));
    assert_eq!(m.attr_str("offline"), Some("1"));
    cb.receipt_for(&m).await;

    // A second server process reading the same state file knows the same accounts.
    sim.shutdown().await;
    let sim2 = Sim::start(SimConfig {
        wss_port: None,
        state_file: Some(state.clone()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(
        sim2.root_public_key(),
        sim.root_public_key(),
        "same Noise root"
    );
    let _ = login(&sim2, &b1).await;
    sim2.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = Node::new("unused");
}
