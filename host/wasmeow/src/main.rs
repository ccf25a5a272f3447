//! The `wasmeow` command line: the operator's entry point.
//!
//! Subcommands are added as the parts they drive land; each one works for real. Output is for people by
//! default and machine-readable with `--json`.

use wasmeow::{cli, config};

/// mimalloc instead of glibc's allocator: sessions build events and messages on
/// the tokio workers and plugin lanes free them on their own threads; glibc's
/// per-thread arenas make every such free a locked cross-arena operation (the
/// plugin dispatch benchmark runs ≈ 1.5x faster per event with mimalloc).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use wasmeow::store_cmd::{self, NewKey};

/// Runs WhatsApp multi-device sessions and sandboxed Wasm plugins.
#[derive(Debug, Parser)]
#[command(name = "wasmeow", version, about)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every session and plugin from bot.toml until SIGINT/SIGTERM.
    Run {
        /// The configuration file.
        #[arg(long, default_value = "bot.toml")]
        config: PathBuf,
        /// Pair an unpaired session by phone number instead of a QR code (digits, international
        /// format); the pairing code to type on the phone is printed.
        #[arg(long)]
        phone: Option<String>,
        /// The session `--phone` applies to (default: the only unpaired one).
        #[arg(long, requires = "phone")]
        session: Option<String>,
        /// Log JSON lines instead of human-readable text (overrides bot.toml [logging]).
        #[arg(long)]
        log_json: bool,
    },
    /// The whole product with nothing configured: an in-process simulator, the example plugins,
    /// automatic pairing and a short scripted conversation.
    Demo {
        /// Delay of the scripted reminder, in seconds.
        #[arg(long, default_value_t = 3)]
        reminder_secs: u64,
    },
    /// Run the WhatsApp simulator standalone (prints where it listens as JSON; stops on Ctrl-C).
    Sim {
        /// Port of the ws:// listener (0: any free port).
        #[arg(long, default_value_t = 0)]
        ws_port: u16,
        /// Port of the JSON control API (0: any free port).
        #[arg(long, default_value_t = 0)]
        control_port: u16,
        /// Persist the simulator's state in this file (and load it at start).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Create a phone account with this number at start (repeatable).
        #[arg(long)]
        phone: Vec<String>,
    },
    /// Manage the sessions of a running host (through its admin API).
    Session {
        #[command(subcommand)]
        command: SessionCommand,
        /// The configuration file (its [admin] section says where the API listens).
        #[arg(long, default_value = "bot.toml", global = true)]
        config: PathBuf,
    },
    /// Create, build, list and reload plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// List and steer the campaigns of a running host (through its admin API).
    Campaign {
        #[command(subcommand)]
        command: CampaignCmd,
        /// The configuration file (its [admin] section says where the API listens).
        #[arg(long, default_value = "bot.toml", global = true)]
        config: PathBuf,
    },
    /// Work with bot.toml.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Operate on the encrypted store named in bot.toml.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// Create and start a session (it then shows a QR code: `wasmeow session list`, the admin page).
    Add {
        /// Letters, digits, '-', '_'.
        name: String,
        /// WebSocket URL (default: WhatsApp).
        #[arg(long)]
        server: Option<String>,
        /// Noise certificate root, 64 hex digits (simulator only).
        #[arg(long)]
        root_key: Option<String>,
        /// Push name.
        #[arg(long)]
        push_name: Option<String>,
    },
    /// Stop a session and delete its keys from the store.
    Remove {
        /// The session.
        name: String,
        /// Unlink the device from the phone first.
        #[arg(long)]
        logout: bool,
    },
    /// List sessions and their states.
    List,
    /// Unlink a session's device from the phone; the session then shows a new QR code.
    Logout {
        /// The session.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum CampaignCmd {
    /// Every campaign with its schedule and its current or last run.
    List,
    /// Start a run now.
    Run {
        /// The campaign.
        name: String,
    },
    /// Pause the running run.
    Pause {
        /// The campaign.
        name: String,
    },
    /// Resume a paused run.
    Resume {
        /// The campaign.
        name: String,
    },
    /// Cancel the running run.
    Cancel {
        /// The campaign.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Scaffold a new plugin crate.
    New {
        /// The plugin's name (lowercase letters, digits, '-', '_').
        name: String,
        /// The folder to create NAME/ in (default: the current folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build a plugin crate into NAME.wasm (a component of the wasmeow:bot world).
    Build {
        /// The plugin crate (default: the current folder).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Write NAME.wasm here instead of the crate folder.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// List the plugins a running host has loaded (through its admin API).
    List {
        /// The configuration file.
        #[arg(long, default_value = "bot.toml")]
        config: PathBuf,
    },
    /// Reload a plugin from its file now (through the admin API).
    Reload {
        /// The plugin.
        name: String,
        /// The configuration file.
        #[arg(long, default_value = "bot.toml")]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Decrypt every value and report corruption precisely (table and record).
    Verify {
        /// The configuration file.
        #[arg(long, default_value = "bot.toml")]
        config: PathBuf,
    },
    /// Rewrap the store's keys under a new key-encryption key, atomically.
    Rekey {
        /// The configuration file (its [store] section names the current key).
        #[arg(long, default_value = "bot.toml")]
        config: PathBuf,
        #[command(flatten)]
        new: NewKeyArgs,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct NewKeyArgs {
    /// An environment variable holding the new 32-byte key (hex or base64).
    #[arg(long)]
    new_key_env: Option<String>,
    /// A file holding the new key (must not be group/world-readable).
    #[arg(long)]
    new_key_file: Option<PathBuf>,
    /// An environment variable holding the new passphrase (Argon2id).
    #[arg(long)]
    new_passphrase_env: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file and print what it resolves to.
    Check {
        /// The configuration file.
        #[arg(long, default_value = "bot.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { config },
        } => config_check(&config, cli.json),
        Command::Store { command } => store(command, cli.json),
        Command::Run {
            config,
            phone,
            session,
            log_json,
        } => finish(cli::run(&config, phone, session, log_json), cli.json),
        Command::Demo { reminder_secs } => finish(cli::demo(reminder_secs, cli.json), cli.json),
        Command::Sim {
            ws_port,
            control_port,
            state,
            phone,
        } => finish(cli::sim(ws_port, control_port, state, phone), cli.json),
        Command::Session { command, config } => {
            let action = match command {
                SessionCommand::Add {
                    name,
                    server,
                    root_key,
                    push_name,
                } => cli::SessionAction::Add(wasmeow::control::NewSession {
                    name,
                    server,
                    root_key,
                    push_name,
                }),
                SessionCommand::Remove { name, logout } => {
                    cli::SessionAction::Remove { name, logout }
                }
                SessionCommand::List => cli::SessionAction::List,
                SessionCommand::Logout { name } => cli::SessionAction::Logout(name),
            };
            finish(cli::session(&config, action, cli.json), cli.json)
        }
        Command::Campaign { command, config } => {
            let action = match command {
                CampaignCmd::List => None,
                CampaignCmd::Run { name } => Some(("run", name)),
                CampaignCmd::Pause { name } => Some(("pause", name)),
                CampaignCmd::Resume { name } => Some(("resume", name)),
                CampaignCmd::Cancel { name } => Some(("cancel", name)),
            };
            finish(cli::campaign(&config, action, cli.json), cli.json)
        }
        Command::Plugin { command } => {
            let result = match command {
                PluginCommand::New { name, dir } => cli::plugin_new(&name, dir, cli.json),
                PluginCommand::Build { dir, out_dir } => cli::plugin_build(&dir, out_dir, cli.json),
                PluginCommand::List { config } => cli::plugin_list(&config, cli.json),
                PluginCommand::Reload { name, config } => {
                    cli::plugin_reload(&config, &name, cli.json)
                }
            };
            finish(result, cli.json)
        }
    }
}

fn finish(result: anyhow::Result<()>, json: bool) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": format!("{e:#}")})
                );
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(2)
        }
    }
}

fn store(command: StoreCommand, json: bool) -> ExitCode {
    let result = match command {
        StoreCommand::Verify { config } => load(&config)
            .and_then(|cfg| {
                let spinner = cli::progress(
                    json,
                    format!("decrypting every record of {}", cfg.store.path.display()),
                );
                let report = store_cmd::verify(&cfg.store);
                spinner.finish_and_clear();
                report
            })
            .map(|report| {
                if json {
                    println!("{}", serde_json::to_string(&report).unwrap_or_default());
                } else {
                    print!("{report}");
                }
                if report.is_ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }),
        StoreCommand::Rekey { config, new } => {
            let new = if let Some(v) = new.new_key_env {
                NewKey::Env(v)
            } else if let Some(f) = new.new_key_file {
                NewKey::File(f)
            } else {
                // clap's argument group guarantees exactly one of the three options.
                NewKey::PassphraseEnv(new.new_passphrase_env.unwrap_or_default())
            };
            load(&config).and_then(|cfg| {
                let spinner = cli::progress(
                    json,
                    format!("rewrapping the keys of {}", cfg.store.path.display()),
                );
                let done = store_cmd::rekey(&cfg.store, &new);
                spinner.finish_and_clear();
                done?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"ok": true, "rekeyed": cfg.store.path})
                    );
                } else {
                    println!(
                        "rekeyed {}: point bot.toml [store] at the new key source",
                        cfg.store.path.display()
                    );
                }
                Ok(ExitCode::SUCCESS)
            })
        }
    };
    result.unwrap_or_else(|e| finish(Err(e), json))
}

fn load(path: &std::path::Path) -> anyhow::Result<config::Config> {
    Ok(config::Config::load(path)?)
}

fn config_check(path: &std::path::Path, json: bool) -> ExitCode {
    match config::Config::load(path) {
        Ok(cfg) => {
            if json {
                let out = serde_json::json!({
                    "ok": true,
                    "file": path,
                    "sessions": cfg.sessions.iter().map(|s| serde_json::json!({
                        "name": s.name, "server": s.server,
                        "wa_version": s.wa_version.iter().map(u32::to_string).collect::<Vec<_>>().join("."),
                    })).collect::<Vec<_>>(),
                    "plugins": cfg.plugins.plugins.iter().map(|p| serde_json::json!({
                        "name": p.name, "file": p.file, "enabled": p.enabled,
                        "grants": p.grants.iter().map(|g| g.name()).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    "store": cfg.store.path,
                    "campaigns": cfg.campaigns.iter().map(|c| serde_json::json!({
                        "name": c.name, "session": c.session, "enabled": c.enabled,
                        "recipients": c.plan.recipients.len(),
                        "next_run_ms": c.plan.schedule.next_after(chrono::Utc::now().timestamp_millis()),
                        "estimated_run_secs": cli::campaign_estimate_secs(&c.plan),
                        "preview": c.plan.recipients.first().and_then(|r| c.plan.template.render(&r.vars).ok()),
                    })).collect::<Vec<_>>(),
                });
                println!("{out}");
            } else {
                println!("{}: valid", path.display());
                println!("  store: {}", cfg.store.path.display());
                for s in &cfg.sessions {
                    let v = s
                        .wa_version
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(".");
                    println!("  session {:<16} {}  (WhatsApp Web {v})", s.name, s.server);
                }
                for p in &cfg.plugins.plugins {
                    let grants: Vec<_> = p.grants.iter().map(|g| g.name()).collect();
                    let state = if p.enabled { "" } else { "  [disabled]" };
                    println!(
                        "  plugin  {:<16} {}  grants: {}{state}",
                        p.name,
                        p.file.display(),
                        grants.join(", ")
                    );
                }
                for c in &cfg.campaigns {
                    println!("{}", cli::describe_campaign(c));
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                let out = serde_json::json!({
                    "ok": false, "file": e.file, "line": e.line, "column": e.column,
                    "key": e.key, "message": e.message,
                });
                println!("{out}");
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(2)
        }
    }
}
