//! The subcommands behind `wasmeow run|demo|sim|session|plugin`, as functions the binary calls.
//!
//! Contract: each returns `Ok(())` or an error whose message says what to fix; output is for
//! people by default and one JSON document per line with `--json`. `run` owns the process: it
//! installs logging, opens the encrypted store, starts the runtime (and the admin API when
//! configured), prints QR codes of unpaired sessions in the terminal and as PNG files next to the
//! store, and shuts down gracefully on SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tracing_subscriber::EnvFilter;

use crate::client::AdminClient;
use crate::config::{Config, LogFormat};
use crate::control::{Control, NewSession};
use crate::runtime::{Runtime, RuntimeOptions};
use crate::store_cmd;

fn tokio() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Installs the global tracing subscriber.
pub fn init_logging(level: &str, json: bool) {
    let filter = EnvFilter::try_from_env("WASMEOW_LOG")
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// `wasmeow run`.
pub fn run(path: &Path, phone: Option<String>, only: Option<String>, log_json: bool) -> Result<()> {
    let cfg = Config::load(path)?;
    init_logging(
        &cfg.logging.level,
        log_json || cfg.logging.format == LogFormat::Json,
    );
    if let Some(p) = &phone
        && (p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()))
    {
        bail!(
            "--phone must be the phone number in international format, digits only (e.g. 4917012345678)"
        );
    }
    tokio()?.block_on(run_async(cfg, phone, only))
}

async fn run_async(cfg: Config, phone: Option<String>, only: Option<String>) -> Result<()> {
    // Listen for SIGINT/SIGTERM from the start, so a signal during start-up also stops cleanly.
    let stop = tokio::spawn(shutdown_signal());
    let kek = store_cmd::kek(&cfg.store.key)?;
    let options = store_cmd::open_options(&cfg.store);
    let store_path = cfg.store.path.clone();
    let store = tokio::task::spawn_blocking(move || {
        wasmeow_store::RedbStore::open(&store_path, &kek, &options)
    })
    .await?
    .with_context(|| format!("opening the store {}", cfg.store.path.display()))?;
    let qr_dir = cfg
        .store
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let default_rate = cfg.sessions.first().map(|s| s.rate).unwrap_or_default();
    let rt = Runtime::start(
        Arc::new(store),
        RuntimeOptions {
            sessions: cfg.sessions.clone(),
            plugins: cfg.plugins.clone(),
            admission: cfg.admission,
            default_rate,
            tweak: None,
            load: None,
            campaigns: cfg.campaigns.clone(),
        },
    )
    .await?;
    tracing::info!(
        sessions = cfg.sessions.len(),
        plugins = rt.plugins().len(),
        "wasmeow is running; Ctrl-C stops it"
    );

    // QR codes and pairing codes for people at the terminal.
    let mut events = rt.subscribe();
    let pairing_rt = rt.clone();
    let pairing = tokio::spawn(async move {
        let mut phone = phone;
        while let Ok(ev) = events.recv().await {
            match ev.event.as_str() {
                "qr" => {
                    let code = ev.data["code"].as_str().unwrap_or_default().to_owned();
                    if let Some(number) = phone.clone()
                        && only.as_deref().is_none_or(|s| s == ev.session)
                    {
                        phone = None;
                        match pairing_rt.pair_code(&ev.session, &number).await {
                            Ok(code) => eprintln!(
                                "\nSession {}: on the phone +{number}, open WhatsApp → Linked devices → Link with phone number, and enter {code}\n",
                                ev.session
                            ),
                            Err(e) => eprintln!(
                                "session {}: pairing by phone number failed: {e}",
                                ev.session
                            ),
                        }
                        continue;
                    }
                    let png = qr_dir.join(format!("qr-{}.png", ev.session));
                    let saved = crate::qr::qr_png(&code)
                        .ok()
                        .is_some_and(|bytes| std::fs::write(&png, bytes).is_ok());
                    eprintln!(
                        "\nSession {}: scan this with WhatsApp → Linked devices → Link a device{}\n{}",
                        ev.session,
                        if saved {
                            format!(" (also saved as {})", png.display())
                        } else {
                            String::new()
                        },
                        crate::qr::qr_terminal(&code)
                    );
                }
                "authenticated" => {
                    let _ = std::fs::remove_file(qr_dir.join(format!("qr-{}.png", ev.session)));
                }
                _ => {}
            }
        }
    });

    let admin = match &cfg.admin {
        Some(a) => Some(start_admin(rt.clone(), a).await?),
        None => None,
    };

    let _ = stop.await;
    tracing::info!("shutting down: intake stopped, draining");
    if let Some(a) = admin {
        a.stop().await;
    }
    pairing.abort();
    rt.shutdown().await;
    Ok(())
}

/// A running admin API.
pub struct AdminHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    webhooks: Option<tokio::task::JoinHandle<()>>,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
}

impl AdminHandle {
    /// Stops accepting requests and waits (bounded) for in-flight ones.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
        if let Some(w) = self.webhooks.take() {
            w.abort();
        }
    }
}

/// Starts the admin API (and the webhook sender, when configured) for `ctl`.
pub async fn start_admin(
    ctl: Arc<dyn Control>,
    cfg: &crate::config::AdminConfig,
) -> Result<AdminHandle> {
    let auth = crate::admin::AdminAuth::from_env(&cfg.token_env).with_context(|| {
        format!(
            "admin API token (bot.toml [admin] token_env = {:?})",
            cfg.token_env
        )
    })?;
    let mut opts = crate::admin::AdminOptions::default();
    let webhooks = match &cfg.webhook {
        Some(w) => {
            let target = crate::admin::WebhookTarget::from_config(w)
                .context("bot.toml [admin] webhook_url / webhook_secret_env")?;
            let (task, stats) = crate::admin::spawn_webhooks_with(
                ctl.clone(),
                target,
                crate::admin::WebhookOptions::default(),
            )?;
            opts.webhook_stats = Some(stats);
            Some(task)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding the admin API to {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let router = crate::admin::router_with(ctl, auth, opts);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::admin::serve(listener, router, async move {
        let _ = rx.await;
    }));
    tracing::info!(%addr, "admin API listening (page: http://{addr}/)");
    Ok(AdminHandle {
        stop: Some(tx),
        server,
        webhooks,
        addr,
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `wasmeow demo`.
pub fn demo(reminder_secs: u64, json: bool) -> Result<()> {
    init_logging("warn", json);
    let output = if json {
        crate::demo::Output::Json
    } else {
        crate::demo::Output::Human
    };
    tokio()?
        .block_on(crate::demo::run(output, reminder_secs))
        .map(|_| ())
}

/// `wasmeow sim`.
pub fn sim(
    ws_port: u16,
    control_port: u16,
    state: Option<PathBuf>,
    phones: Vec<String>,
) -> Result<()> {
    init_logging("info", false);
    tokio()?.block_on(async move {
        let sim = wasmeow_sim::Sim::start(wasmeow_sim::SimConfig {
            ws_port,
            control_port: Some(control_port),
            state_file: state,
            ..wasmeow_sim::SimConfig::default()
        })
        .await
        .context("starting the simulator")?;
        let mut accounts = Vec::new();
        for pn in &phones {
            if pn.is_empty() || !pn.chars().all(|c| c.is_ascii_digit()) {
                bail!("--phone {pn:?}: digits only");
            }
            accounts.push(
                sim.create_account(Some(pn), None)
                    .with_context(|| format!("creating phone {pn}"))?,
            );
        }
        let info = sim.info().await;
        println!(
            "{}",
            serde_json::json!({
                "ws_url": info.ws_url,
                "wss_url": info.wss_url,
                "control_url": info.control_url,
                "root_public_key": info.root_public_key,
                "phones": accounts.iter().map(|a| serde_json::json!({"pn": a.pn, "lid": a.lid})).collect::<Vec<_>>(),
            })
        );
        eprintln!(
            "simulator running: point a [[session]] at server = \"{}\" with root_key = \"{}\"; Ctrl-C stops it",
            info.ws_url, info.root_public_key
        );
        shutdown_signal().await;
        sim.shutdown().await;
        Ok(())
    })
}

/// A `wasmeow session` action.
#[derive(Debug)]
pub enum SessionAction {
    /// Create one.
    Add(NewSession),
    /// Remove one.
    Remove {
        /// Which.
        name: String,
        /// Unlink first.
        logout: bool,
    },
    /// List them.
    List,
    /// Unlink one.
    Logout(String),
}

fn admin_client(path: &Path) -> Result<AdminClient> {
    let cfg = Config::load(path)?;
    let admin = cfg.admin.with_context(|| {
        format!(
            "{} has no [admin] section: the session and plugin commands talk to a running host's admin API",
            path.display()
        )
    })?;
    let token = std::env::var(&admin.token_env).with_context(|| {
        format!(
            "the admin token variable {} is not set (bot.toml [admin] token_env)",
            admin.token_env
        )
    })?;
    Ok(AdminClient {
        addr: admin.listen,
        token,
    })
}

fn print_json_or(json: bool, value: &serde_json::Value, human: impl FnOnce()) {
    if json {
        println!("{value}");
    } else {
        human();
    }
}

/// `wasmeow session …`.
pub fn session(path: &Path, action: SessionAction, json: bool) -> Result<()> {
    let client = admin_client(path)?;
    tokio()?.block_on(async move {
        match action {
            SessionAction::Add(spec) => {
                let v = client
                    .request("POST", "/v1/sessions", Some(&serde_json::to_value(&spec)?))
                    .await?;
                print_json_or(json, &v, || {
                    println!(
                        "session {} created ({}); scan its QR code on the admin page or with `wasmeow session list`",
                        spec.name,
                        v["state"].as_str().unwrap_or("?")
                    )
                });
            }
            SessionAction::Remove { name, logout } => {
                let v = client
                    .request(
                        "DELETE",
                        &format!("/v1/sessions/{name}?logout={logout}"),
                        None,
                    )
                    .await?;
                print_json_or(json, &v, || println!("session {name} removed"));
            }
            SessionAction::List => {
                let v = client.request("GET", "/v1/sessions", None).await?;
                print_json_or(json, &v, || {
                    let list = v.as_array().cloned().unwrap_or_default();
                    if list.is_empty() {
                        println!("no sessions");
                    }
                    for s in list {
                        println!(
                            "{:<20} {:<13} {:<40} outbox {}",
                            s["name"].as_str().unwrap_or(""),
                            s["state"].as_str().unwrap_or(""),
                            s["jid"].as_str().unwrap_or("-"),
                            s["outbox_depth"]
                        );
                        if let Some(qr) = s["qr"].as_str() {
                            println!("{}", crate::qr::qr_terminal(qr));
                        }
                    }
                });
            }
            SessionAction::Logout(name) => {
                let v = client
                    .request("POST", &format!("/v1/sessions/{name}/logout"), None)
                    .await?;
                print_json_or(json, &v, || {
                    println!("session {name} logged out; it now shows a new QR code")
                });
            }
        }
        Ok(())
    })
}

/// `wasmeow plugin new`.
pub fn plugin_new(name: &str, dir: Option<PathBuf>, json: bool) -> Result<()> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    let path = wasmeow_plugin_host::build::scaffold_plugin(name, &dir)?;
    // `./NAME` reads better as `NAME` in the hint.
    let path = path.strip_prefix(".").map(Path::to_owned).unwrap_or(path);
    print_json_or(
        json,
        &serde_json::json!({"ok": true, "created": path}),
        || {
            println!(
                "created {}; build it with `wasmeow plugin build {}`",
                path.display(),
                path.display()
            )
        },
    );
    Ok(())
}

/// `wasmeow plugin build`.
pub fn plugin_build(dir: &Path, out_dir: Option<PathBuf>, json: bool) -> Result<()> {
    let options = wasmeow_plugin_host::build::BuildOptions {
        out_dir,
        ..Default::default()
    };
    if !json {
        eprintln!(
            "building {} (first builds compile the standard library: a few minutes)…",
            dir.display()
        );
    }
    let started = std::time::Instant::now();
    let built = wasmeow_plugin_host::build::build_plugin_with(dir, &options)?;
    let path = &built.path;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    print_json_or(
        json,
        &serde_json::json!({
            "ok": true,
            "wasm": path,
            "bytes": size,
            "secs": started.elapsed().as_secs_f64(),
            "warnings": built.warnings,
        }),
        || {
            for warning in &built.warnings {
                eprintln!("{warning}\n");
            }
            println!(
                "wrote {} ({} KiB) in {:.1} s",
                path.display(),
                size / 1024,
                started.elapsed().as_secs_f64()
            )
        },
    );
    Ok(())
}

/// A spinner on stderr for a long operation (hidden with `--json` or when stderr is not a terminal).
pub fn progress(json: bool, message: String) -> indicatif::ProgressBar {
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr())
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// `wasmeow plugin list`.
pub fn plugin_list(path: &Path, json: bool) -> Result<()> {
    let client = admin_client(path)?;
    tokio()?.block_on(async move {
        let v = client.request("GET", "/v1/plugins", None).await?;
        print_json_or(json, &v, || {
            for p in v.as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<20} v{:<4} {:<12} handled {:<8} failures {}",
                    p["name"].as_str().unwrap_or(""),
                    p["version"],
                    p["health"].as_str().unwrap_or(""),
                    p["handled"],
                    p["failures"]
                );
            }
        });
        Ok(())
    })
}

/// `wasmeow plugin reload`.
pub fn plugin_reload(path: &Path, name: &str, json: bool) -> Result<()> {
    let client = admin_client(path)?;
    tokio()?.block_on(async move {
        let v = client
            .request("POST", &format!("/v1/plugins/{name}/reload"), None)
            .await?;
        print_json_or(json, &v, || {
            println!("plugin {name} reloaded: now v{}", v["version"])
        });
        Ok(())
    })
}

/// The time one run of `plan` takes at least, in seconds: the mean gap between two sends plus the
/// long pauses (send windows and rate limits can only make it longer).
pub fn campaign_estimate_secs(plan: &wasmeow_scheduler::Plan) -> u64 {
    let n = plan.recipients.len() as u64;
    let p = plan.pacing;
    let gaps = n.saturating_sub(1) * (p.min_gap_ms + p.max_gap_ms) / 2;
    let pauses = if p.pause_every == 0 {
        0
    } else {
        n.saturating_sub(1) / u64::from(p.pause_every) * p.pause_ms
    };
    (gaps + pauses) / 1000
}

/// One line per campaign for `wasmeow config check`: what will be sent, to how many, when next,
/// and how long a run takes — a dry run that sends nothing.
pub fn describe_campaign(c: &crate::config::CampaignConfig) -> String {
    let plan = &c.plan;
    let schedule = match &plan.schedule {
        wasmeow_scheduler::Schedule::Cron { expr, tz } => format!("\"{expr}\" {tz}"),
        wasmeow_scheduler::Schedule::At { at_ms } => format!("at {at_ms}"),
    };
    let next = plan
        .schedule
        .next_after(chrono::Utc::now().timestamp_millis())
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || "never".to_string(),
            |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
        );
    let mins = campaign_estimate_secs(plan).div_ceil(60);
    let preview = plan
        .recipients
        .first()
        .and_then(|r| plan.template.render(&r.vars).ok())
        .unwrap_or_default();
    let state = if c.enabled { "" } else { "  [disabled]" };
    format!(
        "  campaign {:<15} session {}  {schedule}  {} recipients  next {next}  run ≥ {mins} min{state}\n    first message: {preview:?}",
        c.name,
        c.session,
        plan.recipients.len()
    )
}

/// `wasmeow campaign list|run|pause|resume|cancel`.
pub fn campaign(path: &Path, action: Option<(&str, String)>, json: bool) -> Result<()> {
    let client = admin_client(path)?;
    tokio()?.block_on(async move {
        let v = match &action {
            None => client.request("GET", "/v1/campaigns", None).await?,
            Some((verb, name)) => {
                client
                    .request("POST", &format!("/v1/campaigns/{name}/{verb}"), None)
                    .await?
            }
        };
        print_json_or(json, &v, || {
            let list = match v.as_array() {
                Some(a) => a.clone(),
                None => vec![v.clone()],
            };
            for c in list {
                let run = &c["run"];
                let progress = if run.is_null() {
                    "no run yet".to_string()
                } else {
                    let state = if !run["finished_ms"].is_null() {
                        if run["cancelled"] == true {
                            "cancelled"
                        } else {
                            "finished"
                        }
                    } else if run["paused"] == true {
                        "paused"
                    } else {
                        "running"
                    };
                    format!(
                        "{state}: {} queued, {} failed, {} opted out, {} remaining",
                        run["queued"], run["failed"], run["opted_out"], run["remaining"]
                    )
                };
                let next = c["next_run_ms"]
                    .as_i64()
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map_or_else(
                        || "-".to_string(),
                        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
                    );
                println!(
                    "{:<20} {:<12} {} recipients  next {next}  {progress}",
                    c["name"].as_str().unwrap_or(""),
                    c["session"].as_str().unwrap_or(""),
                    c["recipients"],
                );
            }
        });
        Ok(())
    })
}
