//! Acceptance: one process runs 200 paired sessions, and an idle paired session costs at most
//! 128 KiB of memory.
//!
//! Setup as in production: the sessions share ONE encrypted redb store (default
//! [`OpenOptions`], so its 128 MiB page-cache ceiling) with one account each, use the production
//! prekey count (812 uploaded at the first login) and talk to the simulator over loopback
//! WebSockets. The simulator runs as a **separate process** (its release binary,
//! `target/release/wasmeow-sim`, or `$WASMEOW_SIM_BIN`) so that its memory — 200 phones,
//! 200 × 812 server-side prekeys — is not counted; it is driven through its JSON-over-HTTP
//! control API (accounts, QR scans, phone sends, inbox, stats).
//!
//! Measured two ways, before the first account is created and after all 200 sessions are
//! connected and idle (prekey uploads and setup done, then a quiet period):
//!
//! - **live heap bytes**, from a counting global allocator (`stats_alloc`, which wraps the
//!   system allocator; the workspace forbids `unsafe`, so the test cannot implement
//!   `GlobalAlloc` itself) — the budget is asserted on this figure;
//! - **RSS** (`VmRSS` / `RssAnon` of `/proc/self/status`), printed for comparison: it also
//!   holds allocator fragmentation, freed-but-retained arenas and thread stacks, so it is noisy
//!   in either direction.
//!
//! Afterwards every session must still be connected (our state and the simulator's), and one
//! of them must still receive from and send to a phone.
//!
//! Heavy (a couple of minutes), so `#[ignore]`d; `scripts/test-all.sh` builds the simulator and
//! runs it with `--include-ignored`:
//! `cargo build --release -p wasmeow-sim && cargo test -p wasmeow-session --test idle_memory -- --include-ignored --nocapture`.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::sync::mpsc::UnboundedReceiver;
use wasmeow_protocol::binary::Jid;
use wasmeow_protocol::keys::PublicKey;
use wasmeow_session::events::ConnectionEvent;
use wasmeow_session::recv::text_of;
use wasmeow_session::{ConnState, Endpoint, Event, Session, SessionConfig};
use wasmeow_sim::process::SimProcess;
use wasmeow_store::{KekSource, OpenOptions, RedbAccount, RedbStore, Store as _};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Sessions in the process (the acceptance test's number).
const SESSIONS: usize = 200;
/// The budget per idle paired session.
const BUDGET_PER_SESSION: i64 = 128 * 1024;
/// Pairings running at once (each is a QR scan, a 515 reconnect and a prekey upload).
const PAIRING_CONCURRENCY: usize = 8;
/// Quiet period before measuring: the blocking pool's idle threads exit after 10 s.
const SETTLE: Duration = Duration::from_secs(12);
const WAIT: Duration = Duration::from_secs(120);

/// Live heap bytes (allocated minus freed; `stats_alloc` counts reallocations in both).
fn live_heap() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// (`VmRSS`, `RssAnon`) of this process in bytes.
fn rss() -> (i64, i64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| -> i64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<i64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// One control-API call; a failure fails the test.
async fn control(sim: &SimProcess, method: &str, path: &str, body: Value) -> Value {
    sim.call(method, path, body)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The simulator binary, with a long first QR lifetime: 200 pairings run through a handful of
/// concurrent scans.
fn spawn_sim() -> SimProcess {
    SimProcess::spawn(&["--qr-first-ms", "600000"]).unwrap_or_else(|e| panic!("{e}"))
}

/// One paired session with its simulated phone's number.
struct Paired {
    session: Session<RedbAccount>,
    pn: String,
    jid: String,
}

async fn wait_event<T>(
    events: &mut UnboundedReceiver<Event>,
    mut f: impl FnMut(&Event) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = events.recv().await.expect("event stream open");
            if let Some(t) = f(&e) {
                return t;
            }
        }
    })
    .await
    .expect("event in time")
}

/// Creates an account in the store and one at the simulator, starts a session, has the phone
/// scan its QR and waits until it is connected (prekeys uploaded). Returns the session and its
/// event stream.
async fn pair(
    sim: &SimProcess,
    store: &RedbStore,
    config: &SessionConfig,
    i: usize,
) -> (Paired, UnboundedReceiver<Event>) {
    let account = control(sim, "POST", "/accounts", json!({})).await;
    let pn = account["pn"].as_str().expect("pn").to_owned();
    let jid = account["jid"].as_str().expect("jid").to_owned();
    let acc = store
        .create_account(&format!("bot-{i:03}"))
        .expect("account");
    let (session, mut events) = Session::start(config.clone(), acc);
    let qr = wait_event(&mut events, |e| match e {
        Event::Connection(ConnectionEvent::Qr { code, .. }) => Some(code.clone()),
        _ => None,
    })
    .await;
    control(sim, "POST", "/scan", json!({ "qr": qr, "pn": pn })).await;
    wait_event(&mut events, |e| {
        matches!(e, Event::Connection(ConnectionEvent::Connected)).then_some(())
    })
    .await;
    (Paired { session, pn, jid }, events)
}

#[test]
#[ignore = "heavy: 200 paired sessions against the simulator binary; run with --include-ignored"]
fn two_hundred_idle_paired_sessions_fit_in_128_kib_each() {
    let sim = spawn_sim();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(sim));
}

async fn run(sim: SimProcess) {
    let dir = tempfile::tempdir().unwrap();
    let mut kek = [0u8; 32];
    rand::fill(&mut kek[..]);
    let store = RedbStore::open(
        dir.path().join("wasmeow.store"),
        &KekSource::key(kek),
        &OpenOptions::default(),
    )
    .expect("store opens");
    let config = SessionConfig {
        // Production prekey count: 812 uploaded at the first login, kept in the store.
        initial_prekey_count: SessionConfig::default().initial_prekey_count,
        ..SessionConfig::for_test_server(Endpoint::url(sim.ws_url.clone()), PublicKey(sim.root))
    };
    // Let the runtime, the store and the simulator settle before the baseline.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heap_before = live_heap();
    let (rss_before, anon_before) = rss();

    let started = Instant::now();
    let mut paired: Vec<(Paired, Option<UnboundedReceiver<Event>>)> =
        futures_util::stream::iter(0..SESSIONS)
            .map(|i| {
                let (sim, store, config) = (&sim, &store, &config);
                async move { pair(sim, store, config, i).await }
            })
            .buffer_unordered(PAIRING_CONCURRENCY)
            .map(|(p, events)| (p, Some(events)))
            .collect()
            .await;
    let pairing_time = started.elapsed();
    assert_eq!(paired.len(), SESSIONS);

    // Every session but the probe drains its events as an application would (an undrained
    // unbounded event channel would be the test's memory, not the session's).
    let probe_events = paired[0].1.take().expect("events");
    for (_, events) in paired.iter_mut().skip(1) {
        let mut events = events.take().expect("events");
        tokio::spawn(async move { while events.recv().await.is_some() {} });
    }
    let mut probe_events = probe_events;

    let stats = control(&sim, "GET", "/stats", Value::Null).await;
    assert_eq!(stats["authenticated"], SESSIONS, "{stats}");
    assert!(
        paired
            .iter()
            .all(|(p, _)| p.session.state() == ConnState::Ready)
    );

    // Idle: no traffic but keepalives; the blocking pool's threads time out.
    tokio::time::sleep(SETTLE).await;
    let heap_after = live_heap();
    let (rss_after, anon_after) = rss();
    let n = SESSIONS as i64;
    let heap_per = (heap_after - heap_before) / n;
    let rss_per = (rss_after - rss_before) / n;
    let anon_per = (anon_after - anon_before) / n;
    println!(
        "{SESSIONS} paired sessions in {:.1} s; per idle session: live heap {:.1} KiB \
         (total {:.1} MiB), RSS {:.1} KiB (total {:.1} MiB), anonymous RSS {:.1} KiB; \
         budget {} KiB",
        pairing_time.as_secs_f64(),
        heap_per as f64 / 1024.0,
        (heap_after - heap_before) as f64 / (1024.0 * 1024.0),
        rss_per as f64 / 1024.0,
        (rss_after - rss_before) as f64 / (1024.0 * 1024.0),
        anon_per as f64 / 1024.0,
        BUDGET_PER_SESSION / 1024,
    );

    // Still all connected, on both sides.
    assert!(
        paired
            .iter()
            .all(|(p, _)| p.session.state() == ConnState::Ready),
        "a session dropped while idle"
    );
    let stats = control(&sim, "GET", "/stats", Value::Null).await;
    assert_eq!(stats["authenticated"], SESSIONS, "{stats}");

    // And one of them still works both ways.
    let (probe, other) = (&paired[0].0, &paired[SESSIONS - 1].0);
    let text = "still alive after the measurement";
    let sent = control(
        &sim,
        "POST",
        "/phone/send",
        json!({ "pn": other.pn, "to": probe.jid, "text": text }),
    )
    .await;
    let (id, got) = wait_event(&mut probe_events, |e| match e {
        Event::Message(m) => text_of(&m.content).map(|t| (m.info.id.clone(), t.to_owned())),
        _ => None,
    })
    .await;
    assert_eq!(
        (Some(id.as_str()), got.as_str()),
        (sent["id"].as_str(), text)
    );
    let to: Jid = other.jid.parse().unwrap();
    let outcome = probe
        .session
        .send_text(&to, "and sending too")
        .await
        .unwrap();
    assert!(outcome.result.is_ok(), "{outcome:?}");
    let deadline = Instant::now() + WAIT;
    loop {
        let inbox = control(
            &sim,
            "GET",
            &format!("/phone/inbox?pn={}", other.pn),
            Value::Null,
        )
        .await;
        let delivered = inbox.as_array().expect("inbox list").iter().any(|m| {
            m["id"].as_str() == Some(outcome.id.as_str())
                && m["text"].as_str() == Some("and sending too")
        });
        if delivered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the probe's message never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for (p, _) in &paired {
        p.session.stop().await;
    }
    drop(probe_events);
    drop(paired);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heap_stopped = live_heap();
    drop(store);
    let heap_closed = live_heap();
    // Where the memory was: what the sessions themselves held (freed when they stopped) and
    // what the shared store kept (its page cache and allocator state, freed when it closed).
    println!(
        "breakdown per session: sessions {:.1} KiB, shared store (page cache) {:.1} KiB, \
         left after both {:.1} KiB",
        (heap_after - heap_stopped) as f64 / n as f64 / 1024.0,
        (heap_stopped - heap_closed) as f64 / n as f64 / 1024.0,
        (heap_closed - heap_before) as f64 / n as f64 / 1024.0,
    );
    drop(sim);
    assert!(
        heap_per <= BUDGET_PER_SESSION,
        "an idle paired session holds {heap_per} bytes of heap, over the {BUDGET_PER_SESSION} budget"
    );
}
