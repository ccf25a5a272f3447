//! The `wasmeow` command line: the operator's entry point.
//!
//! Subcommands are added as the parts they drive land; each one works for real. Output is for people by
//! default and machine-readable with `--json`.

use wasmeow::config;

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
    }
}

fn store(command: StoreCommand, json: bool) -> ExitCode {
    let result = match command {
        StoreCommand::Verify { config } => load(&config)
            .and_then(|cfg| store_cmd::verify(&cfg.store))
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
                store_cmd::rekey(&cfg.store, &new)?;
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
    result.unwrap_or_else(|e| {
        if json {
            println!(
                "{}",
                serde_json::json!({"ok": false, "error": format!("{e:#}")})
            );
        } else {
            eprintln!("error: {e:#}");
        }
        ExitCode::from(2)
    })
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
