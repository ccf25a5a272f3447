//! The `wasmeow` command line: the operator's entry point.
//!
//! Subcommands are added as the parts they drive land; each one works for real. Output is for people by
//! default and machine-readable with `--json`.

use wasmeow::config;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    }
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
