//! Campaigns end to end against the simulator: a campaign from bot.toml text runs through the
//! real runtime and session, each recipient's phone decrypts exactly one rendered message, a
//! recipient who answered "stop" gets nothing (and a confirmation), a restart in the middle of a
//! run resumes it without sending anyone a second copy, and pause / resume / cancel work.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmeow::config::Config;
use wasmeow::control::{CampaignCommand, Control, ControlError, SessionState};
use wasmeow::runtime::Runtime;
use wasmeow_sim::{AccountInfo, Sim, SimConfig, SimHandle};

const WAIT: Duration = Duration::from_secs(30);

async fn start(tmp: &Path, cfg: &Config) -> Arc<Runtime> {
    let mut opts = common::runtime::options(tmp);
    opts.sessions = cfg.sessions.clone();
    opts.default_rate = cfg.sessions[0].rate;
    opts.campaigns = cfg.campaigns.clone();
    common::runtime::start(tmp, [3; 32], opts).await.0
}

/// Texts `who` received from `from`.
fn texts(sim: &SimHandle, who: &AccountInfo, from: &str) -> Vec<String> {
    sim.phone_inbox(&who.pn)
        .unwrap()
        .into_iter()
        .filter(|m| m.sender == from)
        .filter_map(|m| m.text)
        .collect()
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_reaches_everyone_once_across_a_restart_and_honours_opt_outs() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let url = sim.ws_url().await;
    let bot = sim.create_account(None, Some("bot")).unwrap();
    let names = ["Ana", "Bo", "Cy", "Di", "Ed"];
    let people: Vec<AccountInfo> = names
        .iter()
        .map(|n| sim.create_account(None, Some(n)).unwrap())
        .collect();
    let recipients: Vec<String> = people
        .iter()
        .zip(names)
        .map(|(p, n)| format!("{{ phone = \"+{}\", name = \"{n}\" }}", p.pn))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    // 29 February at midnight: the schedule never fires during the test; runs start by hand.
    let text = format!(
        r#"
[[session]]
name = "main"
server = "{url}"
root_key = "{root}"
[session.rate]
min_delay_ms = 0
jitter_ms = 0

[[campaign]]
name = "news"
session = "main"
schedule = "0 0 29 2 *"
text = "Hi {{name}}, this week's news for {{phone}}"
recipients = [{list}]
min_gap_secs = 0
max_gap_secs = 1
pause_every = 2
pause_secs = 1
opt_out = ["stop", "unsubscribe"]
opt_out_reply = "You will get no more news."
"#,
        root = hex::encode(sim.root_public_key()),
        list = recipients.join(", ")
    );
    let cfg = Config::parse(&tmp.path().join("bot.toml"), &text).unwrap_or_else(|e| panic!("{e}"));

    let rt = start(tmp.path(), &cfg).await;
    assert!(rt.wait_state("main", SessionState::Qr, WAIT).await);
    let qr = Control::session(&*rt, "main").unwrap().qr.unwrap();
    sim.scan(&qr, &bot.pn).await.unwrap();
    assert!(rt.wait_state("main", SessionState::Connected, WAIT).await);

    let status = rt.campaigns().await;
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].recipients, 5);
    assert!(status[0].run.is_none());
    assert!(status[0].next_run_ms.is_some());

    // Bo opts out first (any case, surrounding blanks) and is told so once.
    sim.phone_send_text(&people[1].pn, &bot.jid, "  STOP ")
        .unwrap();
    wait_until("the opt-out confirmation", || {
        texts(&sim, &people[1], &bot.pn) == ["You will get no more news."]
    })
    .await;

    // Unknown campaign, and a second run while one goes, are refused.
    assert!(matches!(
        rt.campaign("nope", CampaignCommand::Run).await,
        Err(ControlError::NotFound(_))
    ));
    assert!(matches!(
        rt.campaign("news", CampaignCommand::Pause).await,
        Err(ControlError::Conflict(_))
    ));
    let st = rt.campaign("news", CampaignCommand::Run).await.unwrap();
    assert!(st.run.as_ref().is_some_and(|r| r.finished_ms.is_none()));
    assert!(matches!(
        rt.campaign("news", CampaignCommand::Run).await,
        Err(ControlError::Conflict(_))
    ));

    // Stop the host as soon as the first message arrived: the run is cut in the middle.
    wait_until("the first campaign message", || {
        !texts(&sim, &people[0], &bot.pn).is_empty()
    })
    .await;
    let before = rt.campaigns().await[0].run.clone().unwrap();
    rt.shutdown().await;
    drop(rt);
    assert!(
        before.remaining > 0,
        "the run was cut in the middle: {before:?}"
    );

    // After the restart the run resumes where it stopped.
    let rt = start(tmp.path(), &cfg).await;
    assert!(rt.wait_state("main", SessionState::Connected, WAIT).await);
    let deadline = Instant::now() + WAIT;
    let done = loop {
        let run = rt.campaigns().await[0].run.clone().unwrap();
        if run.finished_ms.is_some() {
            break run;
        }
        assert!(Instant::now() < deadline, "the run never finished: {run:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (done.queued, done.opted_out, done.failed, done.remaining),
        (4, 1, 0, 0)
    );
    assert!(!done.cancelled);
    for (i, p) in people.iter().enumerate() {
        if i == 1 {
            continue;
        }
        let expected = format!("Hi {}, this week's news for {}", names[i], p.pn);
        wait_until("every message to land", || {
            texts(&sim, p, &bot.pn).contains(&expected)
        })
        .await;
    }
    // Give a duplicate every chance to show up, then count: exactly one each, none for Bo.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, p) in people.iter().enumerate() {
        let got: Vec<String> = texts(&sim, p, &bot.pn)
            .into_iter()
            .filter(|t| t.starts_with("Hi "))
            .collect();
        assert_eq!(got.len(), usize::from(i != 1), "{}: {got:?}", names[i]);
    }
    let metrics = rt.metrics();
    assert!(
        metrics.contains("wasmeow_campaign_running{campaign=\"news\"} 0\n"),
        "{metrics}"
    );

    // Pause holds a run; resume continues it; cancel ends it.
    let count = |sim: &SimHandle| -> usize {
        people
            .iter()
            .map(|p| {
                texts(sim, p, &bot.pn)
                    .iter()
                    .filter(|t| t.starts_with("Hi "))
                    .count()
            })
            .sum()
    };
    rt.campaign("news", CampaignCommand::Run).await.unwrap();
    let paused = rt.campaign("news", CampaignCommand::Pause).await.unwrap();
    assert!(paused.run.as_ref().unwrap().paused);
    // At most the send that was already under way when the pause came lands.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = count(&sim);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(count(&sim), held, "nothing is sent while paused");
    assert!(
        rt.metrics()
            .contains("wasmeow_campaign_running{campaign=\"news\"} 1\n")
    );
    rt.campaign("news", CampaignCommand::Resume).await.unwrap();
    wait_until("the resumed run to send", || count(&sim) > held).await;
    let cancelled = rt.campaign("news", CampaignCommand::Cancel).await.unwrap();
    let run = cancelled.run.unwrap();
    assert!(run.cancelled && run.finished_ms.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_cancel = count(&sim);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(count(&sim), at_cancel, "nothing is sent after a cancel");
    assert!(
        at_cancel < 4 + 4,
        "the cancelled run did not reach everyone ({at_cancel} messages in all)"
    );
    assert!(
        !metrics.contains(
            "wasmeow_campaign_recipients_total{campaign=\"news\",outcome=\"queued\"} 0\n"
        ),
        "{metrics}"
    );
    rt.shutdown().await;
}

/// The schedule path for real: a campaign on `* * * * *` starts its first run at the next minute
/// boundary after the host first saw it (never for a slot before that), and its recipient's phone
/// decrypts the message. Waits up to a minute for the boundary, hence ignored in plain `cargo test`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "waits for the next cron minute (up to 60 s); CI runs it with --include-ignored"]
async fn a_cron_campaign_starts_at_its_next_slot() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let url = sim.ws_url().await;
    let bot = sim.create_account(None, Some("bot")).unwrap();
    let ana = sim.create_account(None, Some("Ana")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[[session]]
name = "main"
server = "{url}"
root_key = "{root}"

[[campaign]]
name = "minutely"
session = "main"
schedule = "* * * * *"
timezone = "Europe/Lisbon"
text = "Tick for {{name}}"
recipients = [{{ phone = "+{pn}", name = "Ana" }}]
min_gap_secs = 0
max_gap_secs = 0
"#,
        root = hex::encode(sim.root_public_key()),
        pn = ana.pn
    );
    let cfg = Config::parse(&tmp.path().join("bot.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let rt = start(tmp.path(), &cfg).await;
    let first_seen = chrono::Utc::now().timestamp_millis();
    assert!(rt.wait_state("main", SessionState::Qr, WAIT).await);
    let qr = Control::session(&*rt, "main").unwrap().qr.unwrap();
    sim.scan(&qr, &bot.pn).await.unwrap();
    assert!(rt.wait_state("main", SessionState::Connected, WAIT).await);

    let status = &rt.campaigns().await[0];
    let next = status.next_run_ms.expect("a next run");
    assert!(
        next > first_seen - 1_000 && next <= first_seen + 61_000,
        "{status:?}"
    );
    assert_eq!(next % 60_000, 0, "on a minute boundary");

    let deadline = Instant::now() + Duration::from_secs(90);
    while !texts(&sim, &ana, &bot.pn).contains(&"Tick for Ana".to_string()) {
        assert!(Instant::now() < deadline, "no scheduled message");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let arrived = chrono::Utc::now().timestamp_millis();
    assert!(arrived >= next, "not before its slot ({arrived} < {next})");
    let run = rt.campaigns().await[0].run.clone().expect("a run");
    assert_eq!(
        run.slot_ms, next,
        "the run serves the slot it was scheduled for"
    );
    assert_eq!(run.queued, 1);
    assert_eq!(texts(&sim, &ana, &bot.pn).len(), 1, "exactly one message");
    rt.shutdown().await;
}
