//! `wasmeow demo`: the whole product on one machine with nothing configured.
//!
//! Starts the simulator in-process (a WhatsApp-compatible server with simulated phones), a host
//! with the four example plugins (their committed builds, embedded in the binary) on a fresh
//! encrypted store in a temporary folder, pairs the bot's session by having the bot's simulated
//! phone scan the real QR code, and plays a short scripted conversation:
//!
//! 1. Alice sends `!ping`; the echo plugin answers `pong`.
//! 2. The bot creates a group with Alice and adds Bob; the welcome plugin greets Bob.
//! 3. Bob posts a link in the group: the moderation plugin warns him; a second link gets him removed.
//! 4. Alice asks for a reminder in a few seconds; the reminders plugin schedules it and it fires.
//!
//! Contract: every step is observed for real — messages are checked where they land (decrypted by
//! the simulated phones), the removal is checked in the simulator's group state — and a step that
//! does not happen within its deadline fails the demo with an error naming it. [`run`] returns a
//! [`DemoReport`] of what was observed, which the end-to-end test asserts on.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use wasmeow_sim::{AccountInfo, InboxMessage, Sim, SimConfig, SimHandle};
use wasmeow_store::{KekSource, OpenOptions, RedbStore};

use crate::config::{self, Limits, PluginConfig, PluginsConfig, RateConfig, Scope};
use crate::control::{Control, SessionState};
use crate::runtime::{Runtime, RuntimeOptions};

/// The example plugins, as committed in `plugins/dist`.
pub const EMBEDDED_PLUGINS: [(&str, &[u8]); 4] = [
    ("echo", include_bytes!("../../../plugins/dist/echo.wasm")),
    (
        "welcome",
        include_bytes!("../../../plugins/dist/welcome.wasm"),
    ),
    (
        "moderation",
        include_bytes!("../../../plugins/dist/moderation.wasm"),
    ),
    (
        "reminders",
        include_bytes!("../../../plugins/dist/reminders.wasm"),
    ),
];

/// How long each scripted step may take.
const STEP: Duration = Duration::from_secs(30);

/// What the demo observed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DemoReport {
    /// The bot's device JID after pairing.
    pub bot_jid: String,
    /// The echo plugin's answer to `!ping`, as Alice's phone decrypted it.
    pub pong: String,
    /// The welcome plugin's greeting, as Bob's phone decrypted it.
    pub welcome: String,
    /// The moderation plugin's warning after Bob's first link.
    pub warning: String,
    /// Whether Bob was removed from the group after his second link (simulator state).
    pub removed: bool,
    /// The reminders plugin's confirmation.
    pub reminder_set: String,
    /// The reminder itself when it fired.
    pub reminder: String,
    /// Milliseconds from `!ping` sent to `pong` decrypted at the phone.
    pub ping_roundtrip_ms: u64,
    /// Milliseconds the whole script took (pairing included).
    pub total_ms: u64,
}

/// How the demo prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Lines for people (with the QR code drawn in the terminal).
    Human,
    /// One JSON object per step, for scripts.
    Json,
    /// Nothing (tests).
    Quiet,
}

struct Printer {
    mode: Output,
    start: Instant,
}

impl Printer {
    fn line(&self, who: &str, text: &str) {
        let t = self.start.elapsed().as_secs_f64();
        match self.mode {
            Output::Human => {
                println!("{t:6.2}s  {who:<16} {text}");
            }
            Output::Json => {
                println!(
                    "{}",
                    serde_json::json!({ "t": (t * 1000.0).round() / 1000.0, "who": who, "text": text })
                );
            }
            Output::Quiet => {}
        }
        let _ = std::io::stdout().flush();
    }

    fn raw(&self, text: &str) {
        if self.mode == Output::Human {
            println!("{text}");
        }
    }
}

/// The demo's plugin grants (as the sample bot.toml gives them).
pub fn demo_plugins(dir: std::path::PathBuf, cache: std::path::PathBuf) -> PluginsConfig {
    use config::Grant::*;
    let plugin =
        |name: &str, grants: &[config::Grant], group_admin: bool, cfg: toml::Table| PluginConfig {
            name: name.to_owned(),
            file: format!("{name}.wasm").into(),
            grants: grants.iter().copied().collect(),
            sessions: Scope::All,
            chats: Scope::All,
            group_admin,
            enabled: true,
            limits: Limits::default(),
            config: cfg,
        };
    let mut welcome = toml::Table::new();
    welcome.insert(
        "text".into(),
        toml::Value::String(
            "Welcome {mentions} to {group}! Please read the rules: no links.".into(),
        ),
    );
    PluginsConfig {
        dir,
        watch: true,
        cache_dir: cache,
        defaults: Limits::default(),
        plugins: vec![
            plugin("echo", &[Messaging, Log], false, toml::Table::new()),
            plugin(
                "welcome",
                &[Messaging, Groups, Kv, Log, Config],
                false,
                welcome,
            ),
            plugin(
                "moderation",
                &[Messaging, Groups, Kv, Log, Config],
                true,
                toml::Table::new(),
            ),
            plugin(
                "reminders",
                &[Messaging, Scheduler, Kv, Log, Clock],
                false,
                toml::Table::new(),
            ),
        ],
    }
}

/// Polls phones' inboxes and prints what the bot sent them, once each.
struct Inboxes {
    sim: SimHandle,
    seen: Mutex<HashSet<String>>,
}

impl Inboxes {
    fn poll(&self, p: &Printer, who: &AccountInfo, name: &str, bot_pn: &str) -> Vec<InboxMessage> {
        let msgs = self.sim.phone_inbox(&who.pn).unwrap_or_default();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for m in &msgs {
            if m.sender == bot_pn && seen.insert(format!("{}:{}", who.pn, m.id)) {
                let place = if m.chat.ends_with("@g.us") {
                    " (group)"
                } else {
                    ""
                };
                p.line(
                    &format!("bot → {name}{place}"),
                    m.text.as_deref().unwrap_or("<non-text>"),
                );
            }
        }
        msgs
    }

    /// Waits for a message from the bot to `who` in `chat` whose text satisfies `f`.
    #[allow(clippy::too_many_arguments)]
    async fn wait_for(
        &self,
        p: &Printer,
        who: &AccountInfo,
        name: &str,
        bot_pn: &str,
        chat: &str,
        what: &str,
        f: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + STEP;
        loop {
            let msgs = self.poll(p, who, name, bot_pn);
            if let Some(m) = msgs
                .iter()
                .find(|m| m.sender == bot_pn && m.chat == chat && m.text.as_deref().is_some_and(&f))
            {
                return Ok(m.text.clone().unwrap_or_default());
            }
            if Instant::now() > deadline {
                bail!(
                    "{what} did not arrive at {name}'s phone within {} s",
                    STEP.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Runs the demo. `reminder_secs` is the reminder's delay.
pub async fn run(output: Output, reminder_secs: u64) -> Result<DemoReport> {
    let p = Printer {
        mode: output,
        start: Instant::now(),
    };
    let mut report = DemoReport::default();
    let tmp = tempfile::tempdir().context("creating a temporary folder")?;

    // The simulator.
    let sim = Sim::start(SimConfig {
        wss_port: None,
        ..SimConfig::default()
    })
    .await
    .context("starting the simulator")?;
    let ws_url = sim.ws_url().await;
    let bot = sim.create_account(None, Some("wasmeow bot"))?;
    let alice = sim.create_account(None, Some("Alice"))?;
    let bob = sim.create_account(None, Some("Bob"))?;
    p.line("simulator", &format!("listening on {ws_url}"));
    p.line(
        "simulator",
        &format!(
            "phones: bot +{}, Alice +{}, Bob +{}",
            bot.pn, alice.pn, bob.pn
        ),
    );

    // The host: plugins, store, one session.
    let plugin_dir = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugin_dir)?;
    for (name, bytes) in EMBEDDED_PLUGINS {
        std::fs::write(plugin_dir.join(format!("{name}.wasm")), bytes)?;
    }
    let mut key = [0u8; 32];
    rand::fill(&mut key);
    let store = Arc::new(
        RedbStore::open(
            tmp.path().join("demo.redb"),
            &KekSource::key(key),
            &OpenOptions::default(),
        )
        .context("creating the encrypted store")?,
    );
    let rate = RateConfig {
        min_delay_ms: 100,
        jitter_ms: 100,
        ..RateConfig::default()
    };
    let session = config::SessionConfig {
        name: "demo".into(),
        server: ws_url.clone(),
        root_key: Some(sim.root_public_key()),
        wa_version: config::DEFAULT_WA_VERSION,
        push_name: "wasmeow bot".into(),
        device_name: "wasmeow demo".into(),
        rate,
    };
    let rt = Runtime::start(
        store,
        RuntimeOptions {
            sessions: vec![session],
            plugins: demo_plugins(plugin_dir, tmp.path().join("cache")),
            admission: config::AdmissionConfig::default(),
            default_rate: rate,
            tweak: Some(Arc::new(|c: &mut wasmeow_session::SessionConfig| {
                // The simulator answers fast; the production defaults stay otherwise.
                c.initial_prekey_count = 100;
            })),
            load: None,
            campaigns: Vec::new(),
        },
    )
    .await
    .context("starting the host")?;
    let result = script(
        &p,
        &rt,
        &sim,
        &bot,
        &alice,
        &bob,
        reminder_secs,
        &mut report,
    )
    .await;
    rt.shutdown().await;
    sim.shutdown().await;
    result?;
    report.total_ms = p.start.elapsed().as_millis() as u64;
    p.line(
        "demo",
        &format!("done in {:.1} s", report.total_ms as f64 / 1000.0),
    );
    if output == Output::Json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn script(
    p: &Printer,
    rt: &Arc<Runtime>,
    sim: &SimHandle,
    bot: &AccountInfo,
    alice: &AccountInfo,
    bob: &AccountInfo,
    reminder_secs: u64,
    report: &mut DemoReport,
) -> Result<()> {
    let plugins = rt.plugins();
    p.line(
        "host",
        &format!(
            "plugins loaded: {}",
            plugins
                .iter()
                .map(|pl| format!("{} v{}", pl.name, pl.version))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    if plugins.len() != EMBEDDED_PLUGINS.len() {
        bail!(
            "expected {} plugins, {} loaded",
            EMBEDDED_PLUGINS.len(),
            plugins.len()
        );
    }

    // Pairing: the bot's phone scans the QR code the session shows.
    let mut events = rt.subscribe();
    let qr = match Control::session(rt.as_ref(), "demo").and_then(|s| s.qr) {
        Some(qr) => qr,
        None => {
            let deadline = tokio::time::Instant::now() + STEP;
            loop {
                let ev = tokio::time::timeout_at(deadline, events.recv())
                    .await
                    .context("no QR code within 30 s")??;
                if ev.event == "qr" {
                    break ev.data["code"].as_str().unwrap_or_default().to_owned();
                }
            }
        }
    };
    p.line("session demo", "unpaired: showing a QR code to scan");
    p.raw(&crate::qr::qr_terminal(&qr));
    p.line(
        "bot's phone",
        "scans the QR code (Linked devices → Link a device)",
    );
    let device = sim
        .scan(&qr, &bot.pn)
        .await
        .map_err(|e| anyhow::anyhow!("the phone could not pair: {e:?}"))?;
    p.line("session demo", &format!("paired as {device}"));
    if !rt.wait_state("demo", SessionState::Connected, STEP).await {
        bail!("the session did not connect within 30 s after pairing");
    }
    report.bot_jid = device;
    p.line("session demo", "connected (prekeys uploaded, ready)");

    let inbox = Inboxes {
        sim: sim.clone(),
        seen: Mutex::new(HashSet::new()),
    };
    let bot_jid = bot.jid.clone();

    // 1. ping → pong
    p.line("Alice → bot", "!ping");
    let t0 = Instant::now();
    sim.phone_send_text(&alice.pn, &bot_jid, "!ping")?;
    report.pong = inbox
        .wait_for(
            p,
            alice,
            "Alice",
            &bot.pn,
            &bot_jid,
            "the echo plugin's pong",
            |t| t == "pong",
        )
        .await?;
    report.ping_roundtrip_ms = t0.elapsed().as_millis() as u64;

    // 2. a group with a welcome
    let session = rt
        .session_handle("demo")
        .context("the demo session vanished")?;
    p.line(
        "operator",
        "the bot creates the group \"wasmeow demo\" with Alice and makes her an admin",
    );
    let alice_jid: wasmeow_protocol::binary::Jid = alice.jid.parse()?;
    let group = session
        .create_group("wasmeow demo", std::slice::from_ref(&alice_jid))
        .await
        .context("creating the group")?;
    let group_jid = group.jid.clone();
    session
        .update_participants(
            &group_jid.parse()?,
            wasmeow_session::groups::ParticipantAction::Promote,
            std::slice::from_ref(&alice_jid),
        )
        .await
        .context("promoting Alice")?;
    p.line("Alice's phone", &format!("adds Bob to {group_jid}"));
    let outcome = sim.phone_group_participants(&alice.pn, &group_jid, "add", &[&bob.jid])?;
    if outcome.iter().any(|(_, err)| err.is_some()) {
        bail!("the simulator refused to add Bob: {outcome:?}");
    }
    report.welcome = inbox
        .wait_for(
            p,
            bob,
            "Bob",
            &bot.pn,
            &group_jid,
            "the welcome greeting",
            |t| t.contains("Welcome") && t.contains(&bob.pn),
        )
        .await?;

    // 3. moderation: a warning, then a removal
    let spam1 = "great deals at https://spam.example.com/offer";
    p.line("Bob → group", spam1);
    sim.phone_send_text(&bob.pn, &group_jid, spam1)?;
    report.warning = inbox
        .wait_for(
            p,
            bob,
            "Bob",
            &bot.pn,
            &group_jid,
            "the moderation warning",
            |t| t.contains("links are not allowed"),
        )
        .await?;
    let spam2 = "last chance: www.spam-deals.io";
    p.line("Bob → group", spam2);
    sim.phone_send_text(&bob.pn, &group_jid, spam2)?;
    let deadline = Instant::now() + STEP;
    loop {
        let members = sim.group_members(&group_jid)?;
        if !members.contains(&bob.pn) {
            report.removed = true;
            p.line(
                "simulator",
                &format!(
                    "Bob is no longer in the group (members: {})",
                    members.join(", ")
                ),
            );
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the moderation plugin did not remove Bob within {} s",
                STEP.as_secs()
            );
        }
        inbox.poll(p, alice, "Alice", &bot.pn);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    inbox
        .wait_for(
            p,
            alice,
            "Alice",
            &bot.pn,
            &group_jid,
            "the removal notice",
            |t| t.starts_with("Removed"),
        )
        .await?;

    // 4. a reminder
    let ask = format!("!remind {reminder_secs}s stretch your legs");
    p.line("Alice → bot", &ask);
    sim.phone_send_text(&alice.pn, &bot_jid, &ask)?;
    report.reminder_set = inbox
        .wait_for(
            p,
            alice,
            "Alice",
            &bot.pn,
            &bot_jid,
            "the reminder confirmation",
            |t| t.to_lowercase().contains("remind"),
        )
        .await?;
    report.reminder = inbox
        .wait_for(p, alice, "Alice", &bot.pn, &bot_jid, "the reminder", |t| {
            t.contains("stretch your legs") && t.contains("reminder:")
        })
        .await?;
    Ok(())
}
