//! The `wasmeow-sim` binary: starts a simulator and prints, as one JSON line on stdout, where
//! it listens and what clients must trust (`{"ws_url", "wss_url", "media_host", "control_url",
//! "root_public_key", "root_public_key_b64", "ca_pem"}`), then serves until killed or until its
//! standard input closes (so a parent test process that dies takes the server with it).
//!
//! ```text
//! wasmeow-sim [--ws-port N] [--wss-port N] [--no-wss] [--media-port N] [--control-port N]
//!             [--state FILE] [--seed N] [--qr-first-ms N] [--qr-next-ms N] [--qr-count N]
//!             [--rate MESSAGES/MS] [--ca-out FILE] [--stay-up]
//! ```
//!
//! Everything listens on 127.0.0.1 only.

use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use wasmeow_sim::{RateLimit, Sim, SimConfig};

fn usage(error: &str) -> ! {
    eprintln!("wasmeow-sim: {error}");
    eprintln!(
        "usage: wasmeow-sim [--ws-port N] [--wss-port N] [--no-wss] [--media-port N] [--control-port N] \
         [--state FILE] [--seed N] [--qr-first-ms N] [--qr-next-ms N] [--qr-count N] [--rate MESSAGES/MS] \
         [--ca-out FILE] [--stay-up]"
    );
    std::process::exit(2)
}

fn main() {
    let mut cfg = SimConfig {
        control_port: Some(0),
        ..SimConfig::default()
    };
    let mut ca_out = None;
    let mut stay_up = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        let mut number = |name: &str| -> u64 {
            value(name)
                .parse()
                .unwrap_or_else(|_| usage(&format!("{name} needs a number")))
        };
        match arg.as_str() {
            "--ws-port" => cfg.ws_port = number("--ws-port") as u16,
            "--wss-port" => cfg.wss_port = Some(number("--wss-port") as u16),
            "--no-wss" => cfg.wss_port = None,
            "--media-port" => cfg.media_port = number("--media-port") as u16,
            "--control-port" => cfg.control_port = Some(number("--control-port") as u16),
            "--seed" => cfg.seed = Some(number("--seed")),
            "--qr-first-ms" => cfg.qr.first_ttl = Duration::from_millis(number("--qr-first-ms")),
            "--qr-next-ms" => cfg.qr.next_ttl = Duration::from_millis(number("--qr-next-ms")),
            "--qr-count" => cfg.qr.count = number("--qr-count") as usize,
            "--state" => cfg.state_file = Some(value("--state").into()),
            "--ca-out" => ca_out = Some(value("--ca-out")),
            "--rate" => {
                let text = value("--rate");
                let (m, ms) = text
                    .split_once('/')
                    .unwrap_or_else(|| usage("--rate is MESSAGES/MS"));
                cfg.rate_limit = Some(RateLimit {
                    messages: m.parse().unwrap_or_else(|_| usage("--rate is MESSAGES/MS")),
                    per_ms: ms
                        .parse()
                        .unwrap_or_else(|_| usage("--rate is MESSAGES/MS")),
                });
            }
            "--stay-up" => stay_up = true,
            "-h" | "--help" => usage("help"),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| usage(&format!("cannot start tokio: {e}")));
    runtime.block_on(async move {
        let sim = match Sim::start(cfg).await {
            Ok(sim) => sim,
            Err(e) => usage(&e.to_string()),
        };
        let info = sim.info().await;
        if let Some(path) = ca_out
            && let Err(e) = std::fs::write(&path, &info.ca_pem)
        {
            usage(&format!("cannot write {path}: {e}"));
        }
        println!("{}", serde_json::to_string(&info).unwrap_or_default());
        if stay_up {
            std::future::pending::<()>().await;
        }
        // Serve until stdin closes.
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 256];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        sim.shutdown().await;
    });
}
