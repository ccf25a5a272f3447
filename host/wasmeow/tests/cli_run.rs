//! The `wasmeow` binary as an operator uses it: `wasmeow run` against the simulator with an admin
//! API, the QR code written as PNG, pairing, a plugin answering, `wasmeow session add|list|remove`
//! and `wasmeow plugin list|reload` talking to the running host, then SIGTERM for a clean exit.
//! Also: a broken bot.toml stops `run` with an error naming the line and key.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wasmeow::client::AdminClient;
use wasmeow_sim::{Sim, SimConfig};

const TOKEN: &str = "cli-test-token-0123456789abcdef";
const KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";
const WAIT: Duration = Duration::from_secs(30);

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmeow"));
    c.env("WASMEOW_CLI_TEST_KEY", KEY)
        .env("WASMEOW_CLI_TEST_TOKEN", TOKEN)
        .env("WASMEOW_LOG", "info");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(
    dir: &Path,
    ws_url: &str,
    root_hex: &str,
    admin_port: u16,
    recipient: &str,
) -> std::path::PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for (name, bytes) in wasmeow::demo::EMBEDDED_PLUGINS {
        std::fs::write(plugins.join(format!("{name}.wasm")), bytes).unwrap();
    }
    let text = format!(
        r#"
[store]
path = "bot.redb"
key_env = "WASMEOW_CLI_TEST_KEY"

[admin]
listen = "127.0.0.1:{admin_port}"
token_env = "WASMEOW_CLI_TEST_TOKEN"

[[session]]
name = "main"
server = "{ws_url}"
root_key = "{root_hex}"
[session.rate]
min_delay_ms = 0
jitter_ms = 0

[plugins]
dir = "plugins"
cache_dir = "cache"

[[plugin]]
name = "echo"
grants = ["messaging", "log"]

[[campaign]]
name = "news"
session = "main"
schedule = "0 0 29 2 *"
text = "News for {{name}}"
recipients = [{{ phone = "+{recipient}", name = "Alice" }}]
min_gap_secs = 0
max_gap_secs = 0
"#
    );
    let path = dir.join("bot.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs a CLI command to completion; returns (exit code, stdout).
fn cli(config: &Path, args: &[&str]) -> (i32, String) {
    let out = bin()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("wasmeow runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_pair_operate_and_stop_gracefully() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let ws = sim.ws_url().await;
    let root = hex::encode(sim.root_public_key());
    let bot = sim.create_account(None, Some("bot")).unwrap();
    let alice = sim.create_account(None, Some("Alice")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(tmp.path(), &ws, &root, port, &alice.pn);

    // The log goes to a file: a pipe nobody reads could fill up and block the host.
    let log_path = tmp.path().join("run.log");
    let mut run = Running(
        bin()
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("wasmeow run starts"),
    );
    let client = AdminClient {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        token: TOKEN.into(),
    };

    // The unpaired session's QR code: as PNG next to the store, and through the API.
    let png = tmp.path().join("qr-main.png");
    let deadline = Instant::now() + WAIT;
    let qr = loop {
        if let Ok(v) = client.request("GET", "/v1/sessions/main", None).await
            && let Some(qr) = v["qr"].as_str()
            && png.exists()
        {
            break qr.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no QR from wasmeow run within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        &std::fs::read(&png).unwrap()[..8],
        b"\x89PNG\r\n\x1a\n",
        "a PNG file"
    );
    sim.scan(&qr, &bot.pn).await.expect("the phone scans");
    let deadline = Instant::now() + WAIT;
    loop {
        let v = client
            .request("GET", "/v1/sessions/main", None)
            .await
            .unwrap();
        if v["state"] == "connected" {
            break;
        }
        assert!(Instant::now() < deadline, "not connected: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!png.exists(), "the QR file is removed once paired");

    // The echo plugin answers through the running host.
    sim.phone_send_text(&alice.pn, &bot.jid, "!ping").unwrap();
    let deadline = Instant::now() + WAIT;
    while !sim
        .phone_inbox(&alice.pn)
        .unwrap()
        .iter()
        .any(|m| m.text.as_deref() == Some("pong"))
    {
        assert!(Instant::now() < deadline, "no pong");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // Operating commands against the running host.
    let cfg = config.as_path();
    let (code, out) = cli(
        cfg,
        &[
            "session",
            "add",
            "extra",
            "--server",
            &ws,
            "--root-key",
            &root,
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(cfg, &["--json", "session", "list"]);
    assert_eq!(code, 0, "{out}");
    let list: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["extra", "main"]);
    assert_eq!(list[1]["state"], "connected");
    let (code, out) = cli(cfg, &["session", "add", "extra"]);
    assert_eq!(code, 2, "a duplicate is refused: {out}");
    assert!(
        out.contains("409") && out.contains("already exists"),
        "{out}"
    );
    let (code, out) = cli(cfg, &["session", "remove", "extra"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(cfg, &["--json", "plugin", "list"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"echo\""), "{out}");
    let (code, out) = cli(cfg, &["plugin", "reload", "echo"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cli(cfg, &["plugin", "reload", "nope"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("404"), "{out}");

    // Campaigns: the dry run, then a run started from the CLI reaches the phone.
    let (code, out) = cli(cfg, &["config", "check"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("campaign news")
            && out.contains("1 recipients")
            && out.contains("\"News for Alice\""),
        "{out}"
    );
    let (code, out) = cli(cfg, &["campaign", "run", "news"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("news") && out.contains("running"), "{out}");
    let deadline = Instant::now() + WAIT;
    while !sim
        .phone_inbox(&alice.pn)
        .unwrap()
        .iter()
        .any(|m| m.text.as_deref() == Some("News for Alice"))
    {
        assert!(Instant::now() < deadline, "no campaign message");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let (code, out) = cli(cfg, &["--json", "campaign", "list"]);
        assert_eq!(code, 0, "{out}");
        let list: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        if list[0]["run"]["finished_ms"].is_i64() {
            assert_eq!(list[0]["run"]["queued"], 1, "{list}");
            break;
        }
        assert!(Instant::now() < deadline, "the run never finished: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, out) = cli(cfg, &["campaign", "pause", "news"]);
    assert_eq!(code, 2, "nothing to pause: {out}");
    assert!(
        out.contains("409") && out.contains("no run is going"),
        "{out}"
    );
    let (code, out) = cli(cfg, &["campaign", "run", "nope"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("404"), "{out}");

    // Metrics and health through the same API.
    let metrics = client.raw("GET", "/metrics", None).await.unwrap();
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("wasmeow_sessions{state=\"connected\"} 1"),
        "{text}"
    );

    // SIGTERM: a clean, prompt exit.
    let pid = run.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = run.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "wasmeow run did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(status.success(), "exit {status}: {log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        client.raw("GET", "/healthz", None).await.is_err(),
        "the admin API is closed"
    );
    sim.shutdown().await;
}

#[test]
fn run_refuses_a_broken_config_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bot.toml");
    std::fs::write(
        &path,
        "[store]\npath = \"x.redb\"\n\n[[session]]\nname = \"bad name\"\n",
    )
    .unwrap();
    let (code, out) = cli(&path, &["run"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("bot.toml"), "{out}");
    assert!(out.contains("name"), "{out}");
}
