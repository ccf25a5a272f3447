//! Scale: the simulator (its release or debug binary, as a separate process so its memory can be
//! measured alone) holds 2,000 concurrent authenticated connections from clients built on
//! `wasmeow-protocol`'s Noise client role, and reports memory per connection.
//!
//! Heavy, so `#[ignore]`d: `cargo test -p wasmeow-sim --test scale -- --include-ignored --nocapture`.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Client, login_payload};
use wasmeow_protocol::binary::Node;
use wasmeow_protocol::keys::KeyPair;
use wasmeow_sim::{CompanionCredentials, SimHandle};

const CONNECTIONS: usize = 2000;
const PER_ACCOUNT: usize = 100;

/// A blocking HTTP/1.1 JSON call to the control API.
fn control(base: &str, method: &str, path: &str, body: &str) -> serde_json::Value {
    let host = base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(host).unwrap();
    write!(
        tcp,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    serde_json::from_str(body).unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
#[ignore = "heavy: 2,000 concurrent connections; run with --include-ignored"]
fn two_thousand_concurrent_authenticated_connections() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmeow-sim"))
        .args(["--no-wss"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    let base = info["control_url"].as_str().unwrap().to_owned();
    let url = info["ws_url"].as_str().unwrap().to_owned();
    let root: [u8; 32] = hex::decode(info["root_public_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();

    let mut creds: Vec<CompanionCredentials> = Vec::with_capacity(CONNECTIONS);
    while creds.len() < CONNECTIONS {
        let account = control(&base, "POST", "/accounts", "{}");
        let pn = account["pn"].as_str().unwrap().to_owned();
        for _ in 0..PER_ACCOUNT.min(CONNECTIONS - creds.len()) {
            let c = control(
                &base,
                "POST",
                "/companions",
                &format!("{{\"pn\":\"{pn}\"}}"),
            );
            creds.push(serde_json::from_value(c).unwrap());
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(child.id());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let clients: Vec<Client> = runtime.block_on(async {
        let limit = Arc::new(tokio::sync::Semaphore::new(64));
        let mut tasks = Vec::new();
        for c in creds.iter().cloned() {
            let (url, limit) = (url.clone(), limit.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                let noise =
                    KeyPair::from_private(SimHandle::private_key(&c.noise_private).unwrap());
                let mut client =
                    Client::connect(&url, root, noise, &login_payload(&c.pn, c.device))
                        .await
                        .unwrap();
                let success = client.recv_timeout(Duration::from_secs(60)).await.unwrap();
                assert_eq!(success.tag, "success", "{success}");
                client
                    .recv_matching(Duration::from_secs(60), |n| {
                        n.tag == "ib" && n.child_by_tag("offline").is_some()
                    })
                    .await
                    .unwrap();
                client
            }));
        }
        let mut clients = Vec::new();
        for t in tasks {
            clients.push(t.await.unwrap());
        }
        clients
    });
    let connect_time = started.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kib(child.id());
    let stats = control(&base, "GET", "/stats", "");
    assert_eq!(stats["authenticated"].as_u64(), Some(CONNECTIONS as u64));
    assert_eq!(stats["open_sockets"].as_u64(), Some(CONNECTIONS as u64));

    // Every connection is still alive and answered: one ping each.
    let clients = runtime.block_on(async {
        let mut tasks = Vec::new();
        for mut c in clients {
            tasks.push(tokio::spawn(async move {
                let ping = Node::new("iq")
                    .attr("to", common::server())
                    .attr("type", "get")
                    .attr("xmlns", "w:p");
                let answer = c.iq(ping).await;
                assert_eq!(answer.attr_str("type"), Some("result"));
                c
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let per_connection = (after.saturating_sub(before)) as f64 / CONNECTIONS as f64;
    println!(
        "scale: {CONNECTIONS} authenticated connections in {:.1} s; sim RSS {before} KiB -> {after} KiB; {per_connection:.1} KiB per connection",
        connect_time.as_secs_f64()
    );
    // Regression guard against large per-connection buffers (e.g. a default 128 KiB WebSocket
    // read buffer would be > 128 KiB per connection).
    assert!(
        per_connection < 96.0,
        "{per_connection:.1} KiB per connection"
    );
    drop(clients);
    drop(child.stdin.take());
    let _ = child.wait();
}
