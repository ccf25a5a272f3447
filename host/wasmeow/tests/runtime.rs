//! The runtime against the simulator: sessions created and removed while running and remembered
//! across restarts, plugin jobs that survive a restart, admission control, metrics, logout.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmeow::config::{self, RateConfig};
use wasmeow::control::{Control, ControlError, NewSession, SessionState};
use wasmeow::runtime::Runtime;
use wasmeow::runtime::admission::{Load, LoadSource};
use wasmeow_sim::{AccountInfo, Sim, SimConfig, SimHandle};

const WAIT: Duration = Duration::from_secs(30);

struct Fixed(Arc<Mutex<Load>>);
impl LoadSource for Fixed {
    fn sample(&self) -> Option<Load> {
        Some(*self.0.lock().unwrap())
    }
}

fn fast_rate() -> RateConfig {
    RateConfig {
        min_delay_ms: 0,
        jitter_ms: 0,
        ..RateConfig::default()
    }
}

async fn start(
    tmp: &Path,
    key: [u8; 32],
    sessions: Vec<config::SessionConfig>,
    load: Option<Box<dyn LoadSource>>,
) -> Arc<Runtime> {
    let mut opts = common::runtime::options(tmp);
    opts.sessions = sessions;
    opts.default_rate = fast_rate();
    opts.load = load;
    common::runtime::start(tmp, key, opts).await.0
}

async fn wait_text(
    sim: &SimHandle,
    who: &AccountInfo,
    from: &str,
    f: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let inbox = sim.phone_inbox(&who.pn).unwrap();
        if let Some(m) = inbox
            .iter()
            .find(|m| m.sender == from && m.text.as_deref().is_some_and(&f))
        {
            return m.text.clone().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no matching message at {}: {inbox:?}",
            who.pn
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn qr_of(rt: &Runtime, name: &str) -> String {
    assert!(
        rt.wait_state(name, SessionState::Qr, WAIT).await,
        "{name} shows a QR"
    );
    Control::session(rt, name)
        .unwrap()
        .qr
        .expect("qr while in state qr")
}

fn new_session(name: &str, url: &str, sim: &SimHandle) -> NewSession {
    NewSession {
        name: name.into(),
        server: Some(url.into()),
        root_key: Some(hex::encode(sim.root_public_key())),
        push_name: Some("bot".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_come_and_go_at_run_time_and_are_remembered() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let url = sim.ws_url().await;
    let bot = sim.create_account(None, Some("bot")).unwrap();
    let alice = sim.create_account(None, Some("Alice")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let key = [7u8; 32];

    let rt = start(tmp.path(), key, vec![], None).await;
    assert!(rt.ready());
    assert!(rt.sessions().is_empty());
    let mut events = rt.subscribe();

    // Bad input is refused with a reason naming the field; nothing is created.
    let mut bad = new_session("no spaces allowed", &url, &sim);
    assert!(
        matches!(rt.create_session(bad.clone()).await, Err(ControlError::Invalid(m)) if m.contains("session name"))
    );
    bad.name = "ok".into();
    bad.root_key = Some("abc".into());
    assert!(
        matches!(rt.create_session(bad).await, Err(ControlError::Invalid(m)) if m.contains("root_key"))
    );
    assert!(rt.sessions().is_empty());

    let status = rt
        .create_session(new_session("support", &url, &sim))
        .await
        .unwrap();
    assert_eq!(status.name, "support");
    assert!(matches!(
        rt.create_session(new_session("support", &url, &sim)).await,
        Err(ControlError::Conflict(_))
    ));
    let qr = qr_of(&rt, "support").await;
    sim.scan(&qr, &bot.pn).await.expect("scan");
    assert!(
        rt.wait_state("support", SessionState::Connected, WAIT)
            .await
    );
    // Operators saw it in their vocabulary.
    let mut seen = Vec::new();
    while let Ok(ev) = events.try_recv() {
        seen.push(ev.event);
    }
    for name in ["session_added", "qr", "authenticated"] {
        assert!(seen.iter().any(|e| e == name), "{name} in {seen:?}");
    }

    sim.phone_send_text(&alice.pn, &bot.jid, "!ping").unwrap();
    wait_text(&sim, &alice, &bot.pn, |t| t == "pong").await;
    let metrics = rt.metrics();
    assert!(
        metrics.contains("wasmeow_sessions{state=\"connected\"} 1\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("wasmeow_messages_received_total 0\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("wasmeow_plugin_calls_total{plugin=\"echo\"} 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wasmeow_plugin_busy_seconds_total{plugin=\"echo\"} ")
            && !metrics.contains("wasmeow_plugin_busy_seconds_total{plugin=\"echo\"} 0.000000\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wasmeow_rate_limit_waits_total{session=\"support\"} "),
        "{metrics}"
    );

    // An admin send goes through the outbox to the phone.
    let sent = rt
        .send_text("support", &alice.jid, "hello from the operator")
        .await
        .unwrap();
    assert!(!sent.id.is_empty());
    wait_text(&sim, &alice, &bot.pn, |t| t == "hello from the operator").await;
    assert!(matches!(
        rt.send_text("support", "not a jid", "x").await,
        Err(ControlError::Invalid(_))
    ));
    assert!(matches!(
        rt.send_text("nope", &alice.jid, "x").await,
        Err(ControlError::NotFound(_))
    ));

    // Restart: the session created at run time comes back, logged in, without a QR code.
    rt.shutdown().await;
    drop(rt);
    let rt = start(tmp.path(), key, vec![], None).await;
    assert!(
        rt.wait_state("support", SessionState::Connected, WAIT)
            .await,
        "remembered and logged in"
    );
    sim.phone_send_text(&alice.pn, &bot.jid, "!ping again")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sim.phone_send_text(&alice.pn, &bot.jid, "!ping").unwrap();
    let deadline = Instant::now() + WAIT;
    while sim
        .phone_inbox(&alice.pn)
        .unwrap()
        .iter()
        .filter(|m| m.text.as_deref() == Some("pong"))
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "second pong after restart");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Removal: gone now and after a restart; its keys are deleted from the store.
    rt.remove_session("support", true).await.unwrap();
    assert!(Control::session(rt.as_ref(), "support").is_none());
    assert!(matches!(
        rt.remove_session("support", false).await,
        Err(ControlError::NotFound(_))
    ));
    rt.shutdown().await;
    drop(rt);
    let rt = start(tmp.path(), key, vec![], None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rt.sessions().is_empty(), "removed sessions stay removed");
    // The phone no longer lists the device (logout unlinked it).
    let devices = sim.devices(&bot.pn).unwrap();
    assert_eq!(
        devices.len(),
        1,
        "only the phone itself remains: {devices:?}"
    );
    rt.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_job_fires_after_a_restart() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let url = sim.ws_url().await;
    let bot = sim.create_account(None, Some("bot")).unwrap();
    let alice = sim.create_account(None, Some("Alice")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let key = [9u8; 32];
    let session = config::SessionConfig {
        name: "main".into(),
        server: url.clone(),
        root_key: Some(sim.root_public_key()),
        wa_version: config::DEFAULT_WA_VERSION,
        push_name: "bot".into(),
        device_name: "wasmeow".into(),
        rate: fast_rate(),
    };
    let rt = start(tmp.path(), key, vec![session.clone()], None).await;
    let qr = qr_of(&rt, "main").await;
    sim.scan(&qr, &bot.pn).await.unwrap();
    assert!(rt.wait_state("main", SessionState::Connected, WAIT).await);
    sim.phone_send_text(&alice.pn, &bot.jid, "!remind 6s water the plants")
        .unwrap();
    wait_text(&sim, &alice, &bot.pn, |t| {
        t.contains("water the plants") || t.to_lowercase().contains("reminder")
    })
    .await;
    assert!(rt.metrics().contains("wasmeow_jobs 1\n"));
    // Stop before it is due; start again; it still fires, once.
    rt.shutdown().await;
    drop(rt);
    let rt = start(tmp.path(), key, vec![session], None).await;
    assert!(rt.wait_state("main", SessionState::Connected, WAIT).await);
    wait_text(&sim, &alice, &bot.pn, |t| {
        t.contains("reminder: water the plants")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fired = sim
        .phone_inbox(&alice.pn)
        .unwrap()
        .iter()
        .filter(|m| {
            m.text
                .as_deref()
                .is_some_and(|t| t.contains("reminder: water the plants"))
        })
        .count();
    assert_eq!(fired, 1, "fired exactly once");
    assert!(rt.metrics().contains("wasmeow_jobs 0\n"));
    rt.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_control_refuses_new_sessions_above_the_mark() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let url = sim.ws_url().await;
    let tmp = tempfile::tempdir().unwrap();
    let load = Arc::new(Mutex::new(Load {
        memory_percent: 95.0,
        cpu_percent: 10.0,
    }));
    let rt = start(
        tmp.path(),
        [3u8; 32],
        vec![],
        Some(Box::new(Fixed(load.clone()))),
    )
    .await;
    let err = rt
        .create_session(new_session("a", &url, &sim))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ControlError::Overloaded(m) if m.contains("memory 95%")),
        "{err}"
    );
    assert!(rt.sessions().is_empty());
    assert!(rt.metrics().contains("wasmeow_admission_refusing 1\n"));
    load.lock().unwrap().memory_percent = 85.0; // between the marks: still refusing
    assert!(
        rt.create_session(new_session("a", &url, &sim))
            .await
            .is_err()
    );
    load.lock().unwrap().memory_percent = 50.0;
    rt.create_session(new_session("a", &url, &sim))
        .await
        .expect("accepted below the low mark");
    assert!(
        rt.metrics()
            .contains("wasmeow_admission_refusals_total 2\n")
    );
    rt.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_unlinks_and_offers_a_new_qr() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let url = sim.ws_url().await;
    let bot = sim.create_account(None, Some("bot")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rt = start(tmp.path(), [4u8; 32], vec![], None).await;
    assert!(matches!(
        rt.logout("x").await,
        Err(ControlError::NotFound(_))
    ));
    rt.create_session(new_session("s", &url, &sim))
        .await
        .unwrap();
    let first = qr_of(&rt, "s").await;
    assert!(
        matches!(rt.logout("s").await, Err(ControlError::Invalid(_))),
        "not paired yet"
    );
    sim.scan(&first, &bot.pn).await.unwrap();
    assert!(rt.wait_state("s", SessionState::Connected, WAIT).await);
    assert_eq!(sim.devices(&bot.pn).unwrap().len(), 2);
    rt.logout("s").await.unwrap();
    let second = qr_of(&rt, "s").await;
    assert_ne!(first, second);
    // The server unlinks the device just after answering the logout request (the simulator
    // 50 ms later), and the session restarts faster than that: poll.
    let deadline = Instant::now() + WAIT;
    while sim.devices(&bot.pn).unwrap().len() != 1 {
        assert!(Instant::now() < deadline, "the device was unlinked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(Control::session(rt.as_ref(), "s").unwrap().jid.is_none());
    rt.shutdown().await;
    sim.shutdown().await;
}
