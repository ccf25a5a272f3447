//! `session-peer`: one `wasmeow-session` session (our whole linked-device engine, on an
//! in-memory store) behind a JSON-lines interface, so `tests/interop/session*.test.mjs` can
//! put it next to unmodified Baileys clients on the local simulator.
//!
//! Usage: `session-peer <ws-url> <noise-root-hex>`.
//!
//! Output (stdout, one JSON object per line):
//! - `{"event": <wasmeow_session::Event as JSON>}` for every session event, in order;
//! - `{"reply": <seq>, "ok": <result>}` or `{"reply": <seq>, "error": "<message>"}` for each
//!   command.
//!
//! Commands (stdin, one per line, each with a numeric `seq`):
//! `send_text {to, text}` → `{id, t}`; `create_group {subject, participants}` → group info;
//! `participants {group, action: add|remove|promote|demote, jids}` → per-jid results;
//! `group_info {group}`; `mark_read {chat, ids, sender?}`; `own_jid`; `stop`;
//! `echo {on}`: while on, every incoming 1:1 text `t` is answered with `re: t` through the
//! outbox (the throughput benchmark `tests/interop/bench-session.mjs`).
//! The process exits when stdin closes.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use wasmeow_protocol::binary::Jid;
use wasmeow_protocol::keys::PublicKey;
use wasmeow_session::groups::ParticipantAction;
use wasmeow_session::recv::text_of;
use wasmeow_session::{Endpoint, Event, MessageContent, Session, SessionConfig};
use wasmeow_store::{MemoryAccount, MemoryStore, Store as _};

fn print(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn jid(v: &Value, key: &str) -> Result<Jid, String> {
    v[key]
        .as_str()
        .ok_or_else(|| format!("missing {key}"))?
        .parse()
        .map_err(|e| format!("{key}: {e}"))
}

fn jids(v: &Value, key: &str) -> Result<Vec<Jid>, String> {
    v[key]
        .as_array()
        .ok_or_else(|| format!("missing {key}"))?
        .iter()
        .map(|j| {
            j.as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| format!("{key}: {e}"))
        })
        .collect()
}

static ECHO: AtomicBool = AtomicBool::new(false);

async fn run(session: &Session<MemoryAccount>, cmd: &Value) -> Result<Value, String> {
    let err = |e: wasmeow_session::SessionError| e.to_string();
    match cmd["cmd"].as_str().unwrap_or_default() {
        "send_text" => {
            let outcome = session
                .send_text(&jid(cmd, "to")?, cmd["text"].as_str().unwrap_or_default())
                .await
                .map_err(err)?;
            let t = outcome.result.map_err(|e| e.to_string())?;
            Ok(json!({"id": outcome.id, "t": t}))
        }
        "create_group" => {
            let info = session
                .create_group(
                    cmd["subject"].as_str().unwrap_or_default(),
                    &jids(cmd, "participants")?,
                )
                .await
                .map_err(err)?;
            serde_json::to_value(info).map_err(|e| e.to_string())
        }
        "participants" => {
            let action = match cmd["action"].as_str().unwrap_or_default() {
                "add" => ParticipantAction::Add,
                "remove" => ParticipantAction::Remove,
                "promote" => ParticipantAction::Promote,
                "demote" => ParticipantAction::Demote,
                other => return Err(format!("unknown action {other:?}")),
            };
            let results = session
                .update_participants(&jid(cmd, "group")?, action, &jids(cmd, "jids")?)
                .await
                .map_err(err)?;
            serde_json::to_value(results).map_err(|e| e.to_string())
        }
        "group_info" => {
            let info = session.group_info(&jid(cmd, "group")?).await.map_err(err)?;
            serde_json::to_value(info).map_err(|e| e.to_string())
        }
        "mark_read" => {
            let ids: Vec<String> = cmd["ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let sender = cmd["sender"].as_str().and_then(|s| s.parse::<Jid>().ok());
            session
                .mark_read(&jid(cmd, "chat")?, sender.as_ref(), &ids)
                .await
                .map_err(err)?;
            Ok(json!(true))
        }
        "own_jid" => Ok(json!(session.own_jid().map(|j| j.to_string()))),
        "echo" => {
            ECHO.store(cmd["on"].as_bool().unwrap_or(false), Ordering::SeqCst);
            Ok(json!(true))
        }
        "stop" => {
            session.stop().await;
            Ok(json!(true))
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(root)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: session-peer <ws-url> <noise-root-hex>");
        std::process::exit(2);
    };
    let root: [u8; 32] = match hex::decode(root).ok().and_then(|b| b.try_into().ok()) {
        Some(r) => r,
        None => {
            eprintln!("the root key must be 32 bytes of hex");
            std::process::exit(2);
        }
    };
    let config = SessionConfig::for_test_server(Endpoint::url(url.clone()), PublicKey(root));
    let store = MemoryStore::new();
    let account = store
        .create_account("peer")
        .expect("a fresh memory store has no accounts");
    let (session, mut events) = Session::start(config, account);
    let echo = session.clone();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if ECHO.load(Ordering::SeqCst) {
                // Echo mode: answer, do not print (the benchmark only counts replies).
                if let Event::Message(m) = &e
                    && !m.info.from_me
                    && !m.info.is_group
                    && let (Some(text), Ok(chat)) =
                        (text_of(&m.content), m.info.chat.parse::<Jid>())
                {
                    let _ = echo
                        .send(&chat, MessageContent::text(format!("re: {text}")))
                        .await;
                }
                continue;
            }
            print(&json!({ "event": e }));
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let cmd: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                print(&json!({"reply": null, "error": format!("bad JSON: {e}")}));
                continue;
            }
        };
        // Commands run concurrently: a slow send must not block a group operation.
        let session = session.clone();
        tokio::spawn(async move {
            let seq = cmd["seq"].clone();
            match run(&session, &cmd).await {
                Ok(v) => print(&json!({"reply": seq, "ok": v})),
                Err(e) => print(&json!({"reply": seq, "error": e})),
            }
        });
    }
    session.stop().await;
}
