//! Isolation: grants (every import's denied path), deadlines, memory limits,
//! traps and quarantine, load-time rejection, ordering, the compilation cache.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use wasmeow_plugin_host::Capability::{
    self, Clock, Config, GroupAdmin, Groups, Kv, Log, Messaging, Random, Scheduler,
};
use wasmeow_plugin_host::{
    DispatchError, EngineConfig, Failure, Grant, Health, Limits, LoadError, LoadOutcome,
    PluginSpec, Scope,
};

use crate::common::*;

const ME: &str = "me@s.whatsapp.net";

/// Imports that act on the event being handled: its chat is always in the
/// grant's scope (else it would not have been delivered), so the probe checks
/// them apart (`reply_to_*` below) instead of against another session or chat.
const EVENT_IMPORTS: [&str; 1] = ["messaging.reply-current"];

/// Interfaces that are not capabilities (reading the event being handled).
const FREE_INTERFACES: [&str; 1] = ["current"];

/// The functions of every host interface, read from the WIT files, except
/// [`EVENT_IMPORTS`].
fn wit_imports() -> BTreeSet<String> {
    let world = std::fs::read_to_string(repo().join("wit/world.wit")).unwrap();
    let mut out = BTreeSet::new();
    for line in world.lines() {
        let Some(iface) = line
            .trim()
            .strip_prefix("import ")
            .and_then(|s| s.strip_suffix(';'))
        else {
            continue;
        };
        if FREE_INTERFACES.contains(&iface) {
            continue;
        }
        let text = std::fs::read_to_string(repo().join(format!("wit/{iface}.wit"))).unwrap();
        for l in text.lines() {
            if let Some((name, _)) = l.trim().split_once(": func(") {
                let import = format!("{iface}.{name}");
                if !EVENT_IMPORTS.contains(&import.as_str()) {
                    out.insert(import);
                }
            }
        }
    }
    out
}

/// Runs the probe fixture with `grant` against `session`/`chat` and returns the
/// outcome of every import.
async fn probe(grant: Grant, session: &str, chat: &str) -> BTreeMap<String, String> {
    let t = host(vec![("probe", PluginSpec::new(grant))]);
    t.services.set_group(
        SESSION,
        wasmeow_plugin_host::types::GroupInfo {
            group: "g@g.us".into(),
            subject: "g".into(),
            description: None,
            owner: None,
            created: None,
            participants: vec![],
            announce: false,
            locked: false,
        },
    );
    t.load("probe", &fixture("probe")).await;
    t.run(text(ME, ME, "P1", &format!("!probe {session} {chat}")))
        .await;
    let sent = t.services.sent();
    let report = &sent.last().expect("probe sent no report").2.text;
    report
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn reporter_grant(caps: &[Capability]) -> Grant {
    // Messaging to the reporting chat is always allowed; everything else per test.
    let mut g = Grant {
        capabilities: caps.iter().copied().collect(),
        sessions: Scope::only([SESSION]),
        chats: Scope::only([ME]),
    };
    g.capabilities.insert(Messaging);
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_import_has_a_denied_path() {
    // Only messaging, and only to ME in s1: every call to another session or chat,
    // and every other interface, is denied.
    let report = probe(reporter_grant(&[]), "s2", "other@g.us").await;
    let names: BTreeSet<String> = report.keys().cloned().collect();
    assert_eq!(
        names,
        wit_imports(),
        "the probe must cover every import of the world"
    );
    for (import, outcome) in &report {
        assert_eq!(outcome, "denied", "{import}");
    }
}

/// The probe's kv entry `key` after `event`, with `grant`.
async fn probe_kv(
    grant: Grant,
    event: wasmeow_plugin_host::Event,
    key: &str,
) -> (TestHost, String) {
    let t = host(vec![("probe", PluginSpec::new(grant))]);
    t.load("probe", &fixture("probe")).await;
    t.run(event).await;
    let value =
        t.kv.dump("probe")
            .get(key)
            .map(|v| String::from_utf8(v.clone()).unwrap())
            .unwrap_or_else(|| panic!("the probe stored no {key:?}"));
    (t, value)
}

fn receipt(chat: &str, sender: &str) -> wasmeow_plugin_host::Event {
    use wasmeow_plugin_host::types::{Receipt, ReceiptKind};
    wasmeow_plugin_host::Event {
        session: SESSION.into(),
        body: wasmeow_plugin_host::EventBody::Receipt(Receipt {
            chat: chat.into(),
            sender: sender.into(),
            message_ids: vec!["M1".into()],
            kind: ReceiptKind::Read,
            timestamp: 1,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_to_needs_messaging() {
    let (t, outcome) = probe_kv(open(&[Kv]), text(ME, ME, "R1", "!replyto"), "reply-to").await;
    assert_eq!(outcome, "denied");
    assert!(t.services.sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn there_is_no_current_event_in_init() {
    let (t, outcome) = probe_kv(
        open(&[Kv, Messaging]),
        text(ME, ME, "R1", "hello"),
        "reply-in-init",
    )
    .await;
    assert_eq!(outcome, "invalid");
    assert_eq!(t.kv.dump("probe")["current-in-init"], b"none");
    assert!(t.services.sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_to_answers_the_event_in_its_chat_quoting_it() {
    let chat = "c@s.whatsapp.net";
    let (t, outcome) = probe_kv(
        open(&[Kv, Messaging]),
        text(chat, "x@s.whatsapp.net", "R1", "!replyto"),
        "reply-to",
    )
    .await;
    assert_eq!(outcome, "ok");
    let sent = t.services.sent();
    assert_eq!(sent.len(), 1);
    let (plugin, to, message) = &sent[0];
    assert_eq!((plugin.as_str(), to.as_str()), ("probe", chat));
    assert_eq!(message.text, "t");
    let quoted = message.quoted.as_ref().expect("a reply quotes");
    assert_eq!(
        (quoted.id.as_str(), quoted.sender.as_str()),
        ("R1", "x@s.whatsapp.net")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_to_a_non_message_is_invalid() {
    let (t, outcome) = probe_kv(
        open(&[Kv, Messaging]),
        receipt("c@s.whatsapp.net", "x@s.whatsapp.net"),
        "reply-to",
    )
    .await;
    assert_eq!(outcome, "invalid");
    assert!(t.services.sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_accessors_read_the_current_event() {
    // A message: every accessor, and the whole event, agree with what was sent.
    let t = host(vec![("probe", PluginSpec::new(open(&[Messaging])))]);
    t.load("probe", &fixture("probe")).await;
    t.run(group_text("g@g.us", "x@s.whatsapp.net", "F1", "!fields"))
        .await;
    assert_eq!(
        t.texts(),
        ["s1|g@g.us|x@s.whatsapp.net|!fields|F1|\
          EventInfo { kind: EventKind::Message, from-me: false, is-group: true, text: Some(\"!fields\") }|s1/message"]
    );
    // A receipt: no text and no message; chat and sender are the receipt's.
    let (_, fields) = probe_kv(
        open(&[Kv]),
        receipt("c@s.whatsapp.net", "x@s.whatsapp.net"),
        "fields",
    )
    .await;
    assert_eq!(
        fields,
        "s1|c@s.whatsapp.net|x@s.whatsapp.net|-|-|\
         EventInfo { kind: EventKind::Receipt, from-me: false, is-group: false, text: None }|s1/receipt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_scope_alone_denies_messaging_and_groups() {
    let all = [
        Groups, GroupAdmin, Scheduler, Kv, Log, Config, Clock, Random,
    ];
    let report = probe(reporter_grant(&all), SESSION, "other@g.us").await;
    for (import, outcome) in &report {
        let chat_scoped = import.starts_with("messaging.") && import != "messaging.own-jid"
            || import.starts_with("groups.");
        if chat_scoped {
            assert_eq!(outcome, "denied", "{import}");
        } else {
            assert_ne!(outcome, "denied", "{import}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_admin_actions_need_their_own_grant() {
    let report = probe(open(&[Messaging, Groups]), SESSION, "g@g.us").await;
    let admin = [
        "add-participants",
        "remove-participants",
        "promote-participants",
        "demote-participants",
        "set-subject",
        "set-description",
        "set-announce",
        "set-locked",
        "invite-link",
        "revoke-invite-link",
    ];
    for (import, outcome) in report.iter().filter(|(i, _)| i.starts_with("groups.")) {
        let name = import.trim_start_matches("groups.");
        if admin.contains(&name) {
            assert_eq!(outcome, "denied", "{import}");
        } else {
            assert_ne!(outcome, "denied", "{import}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_grant_denies_nothing() {
    let report = probe(Grant::all(), SESSION, "g@g.us").await;
    assert_eq!(report.len(), wit_imports().len());
    for (import, outcome) in &report {
        assert_ne!(outcome, "denied", "{import}");
    }
    assert_eq!(report["kv.set"], "ok");
    assert_eq!(report["groups.info"], "ok");
    assert_eq!(report["groups.join"], "not-found");
    assert_eq!(report["scheduler.cancel"], "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_outside_the_scope_are_not_delivered() {
    let grant = Grant {
        sessions: Scope::only([SESSION]),
        chats: Scope::only([ME]),
        ..open(&[Messaging])
    };
    let t = host(vec![("echo", PluginSpec::new(grant))]);
    t.load("echo", &dist("echo")).await;
    assert_eq!(
        t.host
            .dispatch(wasmeow_plugin_host::Event::text("s2", ME, ME, "1", "!ping"))
            .delivered,
        0
    );
    assert_eq!(
        t.host
            .dispatch(text("x@s.whatsapp.net", ME, "2", "!ping"))
            .delivered,
        0
    );
    assert_eq!(t.host.dispatch(text(ME, ME, "3", "!ping")).delivered, 1);
    t.settle().await;
    assert_eq!(t.texts(), ["pong"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_cut_at_its_deadline_while_others_answer() {
    let spin_limits = Limits {
        quarantine_after: 100,
        ..fast_limits()
    };
    let t = host(vec![
        ("spin", PluginSpec::new(open(&[])).with_limits(spin_limits)),
        ("echo", PluginSpec::new(open(&[Messaging]))),
    ]);
    t.load("spin", &fixture("spin")).await;
    t.load("echo", &dist("echo")).await;
    let started = std::time::Instant::now();
    for i in 0..3 {
        t.host.dispatch(text(ME, ME, &format!("S{i}"), "!ping"));
    }
    t.settle().await;
    let spin = t.host.status("spin").unwrap();
    assert_eq!(spin.failures, 3);
    assert_eq!(spin.last_failure, Some(Failure::Deadline(100)));
    assert_eq!(t.texts(), ["pong", "pong", "pong"]);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_limits_calls_when_enabled() {
    let engine = EngineConfig {
        fuel: true,
        ..EngineConfig::default()
    };
    let limits = Limits {
        fuel: Some(5_000_000),
        ..fast_limits()
    };
    let t = host_with(
        engine,
        vec![("spin", PluginSpec::new(open(&[])).with_limits(limits))],
    );
    t.load("spin", &fixture("spin")).await;
    t.run(text(ME, ME, "F1", "go")).await;
    assert_eq!(
        t.host.status("spin").unwrap().last_failure,
        Some(Failure::OutOfFuel)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_traps_at_its_limit() {
    let limits = Limits {
        memory_bytes: 16 << 20,
        ..fast_limits()
    };
    let t = host(vec![
        ("membomb", PluginSpec::new(open(&[])).with_limits(limits)),
        ("echo", PluginSpec::new(open(&[Messaging]))),
    ]);
    t.load("membomb", &fixture("membomb")).await;
    t.load("echo", &dist("echo")).await;
    t.run(text(ME, ME, "B1", "!ping")).await;
    let status = t.host.status("membomb").unwrap();
    match status.last_failure {
        Some(Failure::MemoryLimit { limit, wanted }) => {
            assert_eq!(limit, 16 << 20);
            assert!(wanted > limit);
        }
        other => panic!("expected a memory limit failure, got {other:?}"),
    }
    assert_eq!(t.texts(), ["pong"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trapping_plugin_is_quarantined_and_others_keep_answering() {
    let limits = Limits {
        quarantine_after: 3,
        ..fast_limits()
    };
    let t = host(vec![
        ("trapper", PluginSpec::new(open(&[])).with_limits(limits)),
        ("echo", PluginSpec::new(open(&[Messaging]))),
    ]);
    t.load("trapper", &fixture("trapper")).await;
    t.load("echo", &dist("echo")).await;
    for i in 0..3 {
        t.run(text(ME, ME, &format!("T{i}"), "!ping")).await;
    }
    let status = t.host.status("trapper").unwrap();
    assert_eq!(status.health, Health::Quarantined);
    assert_eq!(status.failures, 3);
    assert!(
        matches!(&status.last_failure, Some(Failure::Trap(m)) if m.contains("unreachable")),
        "{status:?}"
    );

    let report = t.host.dispatch(text(ME, ME, "T9", "!ping"));
    assert_eq!(report.delivered, 1);
    assert_eq!(
        report.dropped,
        [DispatchError::Quarantined("trapper".into())]
    );
    t.settle().await;
    assert_eq!(t.texts().len(), 4, "echo answered every event");

    // A new version lifts the quarantine.
    let outcome = t
        .host
        .load_bytes("trapper", read(&dist("echo")))
        .await
        .unwrap();
    assert!(matches!(outcome, LoadOutcome::Replaced { .. }));
    assert_eq!(t.host.status("trapper").unwrap().health, Health::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_versions_are_rejected_and_the_old_one_keeps_running() {
    let t = host(vec![("echo", PluginSpec::new(open(&[Messaging])))]);
    let garbage = t.host.load_bytes("echo", b"not wasm".to_vec()).await;
    assert!(
        matches!(garbage, Err(LoadError::Compile { .. })),
        "{garbage:?}"
    );
    assert!(t.host.status("echo").is_none());

    t.load("echo", &dist("echo")).await;
    let v1 = t.host.status("echo").unwrap().version;
    let garbage = t.host.load_bytes("echo", b"\0asm garbage".to_vec()).await;
    assert!(
        matches!(garbage, Err(LoadError::Compile { .. })),
        "{garbage:?}"
    );
    // An empty component compiles but does not implement the world.
    let empty = t
        .host
        .load_bytes("echo", b"\0asm\x0d\x00\x01\x00".to_vec())
        .await;
    assert!(matches!(empty, Err(LoadError::World { .. })), "{empty:?}");
    // A plugin built against the previous contract (the echo build committed
    // for wasmeow:bot@0.1.0) is refused with a message saying what to do.
    let old = t.host.load_bytes("echo", read(&fixture("echo-0.1"))).await;
    match &old {
        Err(e @ LoadError::World { reason, .. }) => {
            assert!(
                reason.contains("built for wasmeow:bot@0.1.0")
                    && reason.contains("wasmeow:bot@0.2.0")
                    && reason.contains("rebuild"),
                "{e}"
            );
        }
        other => panic!("expected a contract mismatch, got {other:?}"),
    }
    assert_eq!(t.host.status("echo").unwrap().version, v1);
    t.run(text(ME, ME, "E1", "!ping")).await;
    assert_eq!(t.texts(), ["pong"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_init_rejects_the_plugin() {
    let spec = PluginSpec::new(open(&[Messaging]))
        .with_config(serde_json::json!({"max_warnings": "many"}));
    let t = host(vec![("moderation", spec)]);
    let err = t
        .host
        .load_bytes("moderation", read(&dist("moderation")))
        .await
        .unwrap_err();
    match err {
        LoadError::Init {
            failure: Failure::InitRejected(msg),
            ..
        } => assert!(msg.contains("max_warnings"), "{msg}"),
        other => panic!("expected an init rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfigured_and_misnamed_plugins_are_not_loaded() {
    let t = host(vec![]);
    assert!(matches!(
        t.host.load_bytes("echo", read(&dist("echo"))).await,
        Err(LoadError::NotConfigured(_))
    ));
    assert!(matches!(
        t.host.load_bytes("Echo!", read(&dist("echo"))).await,
        Err(LoadError::InvalidName(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_chat_stay_in_order_across_parallel_instances() {
    let limits = Limits {
        instances: 4,
        ..Limits::default()
    };
    let t = host(vec![(
        "recorder",
        PluginSpec::new(open(&[Messaging])).with_limits(limits),
    )]);
    t.load("recorder", &fixture("recorder")).await;
    let chats: Vec<String> = (0..8).map(|c| format!("{c}@s.whatsapp.net")).collect();
    for i in 0..400 {
        let chat = &chats[i % chats.len()];
        t.host
            .dispatch(text(chat, chat, &format!("{i}"), &format!("{i}")));
    }
    t.settle().await;
    let sent = t.services.sent();
    assert_eq!(sent.len(), 400);
    for chat in &chats {
        let seq: Vec<usize> = sent
            .iter()
            .filter(|(_, c, _)| c == chat)
            .map(|(_, _, m)| m.text.trim_start_matches("rec:").parse().unwrap())
            .collect();
        let mut sorted = seq.clone();
        sorted.sort_unstable();
        assert_eq!(seq, sorted, "chat {chat} out of order");
        assert_eq!(seq.len(), 50);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_drops_events_for_that_plugin_only() {
    let slow = Limits {
        max_in_flight: 2,
        instances: 1,
        quarantine_after: 1000,
        ..fast_limits()
    };
    let t = host(vec![
        ("spin", PluginSpec::new(open(&[])).with_limits(slow)),
        ("echo", PluginSpec::new(open(&[Messaging]))),
    ]);
    t.load("spin", &fixture("spin")).await;
    t.load("echo", &dist("echo")).await;
    let mut dropped = 0;
    for i in 0..5 {
        let r = t.host.dispatch(text(ME, ME, &format!("O{i}"), "!ping"));
        dropped += r
            .dropped
            .iter()
            .filter(|d| **d == DispatchError::Overloaded("spin".into()))
            .count();
    }
    assert_eq!(dropped, 3);
    t.settle().await;
    assert_eq!(t.texts().len(), 5);
    assert_eq!(t.host.status("spin").unwrap().dropped, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compilation_cache_is_reused_and_survives_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let engine = EngineConfig {
        cache_dir: Some(cache.clone()),
        ..EngineConfig::default()
    };
    let entries = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect()
    };
    {
        let t = host_with(
            engine.clone(),
            vec![("echo", PluginSpec::new(open(&[Messaging])))],
        );
        t.load("echo", &dist("echo")).await;
    }
    let files = entries();
    assert_eq!(files.len(), 1);
    let written = std::fs::read(&files[0]).unwrap();
    {
        let t = host_with(
            engine.clone(),
            vec![("echo", PluginSpec::new(open(&[Messaging])))],
        );
        t.load("echo", &dist("echo")).await;
        t.run(text(ME, ME, "C1", "!ping")).await;
        assert_eq!(t.texts(), ["pong"]);
    }
    assert_eq!(
        std::fs::read(&files[0]).unwrap(),
        written,
        "a valid entry is reused, not rewritten"
    );
    let mut corrupt = written.clone();
    let n = corrupt.len();
    corrupt[n / 2] ^= 0xff;
    std::fs::write(&files[0], &corrupt).unwrap();
    {
        let t = host_with(engine, vec![("echo", PluginSpec::new(open(&[Messaging])))]);
        t.load("echo", &dist("echo")).await;
        t.run(text(ME, ME, "C2", "!ping")).await;
        assert_eq!(t.texts(), ["pong"]);
    }
    assert_eq!(
        std::fs::read(&files[0]).unwrap(),
        written,
        "a corrupt entry is replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_updates_reinitialise_with_the_new_grant() {
    let t = host(vec![("echo", PluginSpec::new(open(&[Messaging])))]);
    t.load("echo", &dist("echo")).await;
    t.run(text(ME, ME, "U1", "!ping")).await;
    t.host
        .set_spec("echo", PluginSpec::new(open(&[])))
        .await
        .unwrap();
    t.run(text(ME, ME, "U2", "!ping")).await;
    assert_eq!(t.texts(), ["pong"]);
    assert_eq!(t.host.status("echo").unwrap().failures, 0);
}
