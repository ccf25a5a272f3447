//! The example plugins (plugins/dist) behave as documented.

use wasmeow_plugin_host::Capability::{Clock, GroupAdmin, Groups, Kv, Log, Messaging, Scheduler};
use wasmeow_plugin_host::testing::ServiceCall;
use wasmeow_plugin_host::types::{
    EventBody, GroupChange, GroupInfo, GroupUpdate, MessageRef, Participant, ParticipantRole,
    Trigger,
};
use wasmeow_plugin_host::{Event, ParticipantAction, PluginSpec};

use crate::common::*;

const ALICE: &str = "491701111111@s.whatsapp.net";
const BOB: &str = "491702222222@s.whatsapp.net";
const CAROL: &str = "491703333333@s.whatsapp.net";
const BOT: &str = "491709999999@s.whatsapp.net";
const GROUP: &str = "120363000000000001@g.us";

fn group(bot_role: ParticipantRole) -> GroupInfo {
    let p = |user: &str, role| Participant {
        user: user.to_owned(),
        role,
    };
    GroupInfo {
        group: GROUP.into(),
        subject: "Cats".into(),
        description: None,
        owner: Some(ALICE.into()),
        created: None,
        participants: vec![
            p(ALICE, ParticipantRole::Owner),
            p(BOB, ParticipantRole::Member),
            p(BOT, bot_role),
        ],
        announce: false,
        locked: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_answers_ping_and_echo_commands_only() {
    let t = host(vec![("echo", PluginSpec::new(open(&[Messaging, Log])))]);
    t.load("echo", &dist("echo")).await;
    t.run(text(ALICE, ALICE, "ID1", "!ping")).await;
    t.run(text(ALICE, ALICE, "ID2", "!echo hello  there")).await;
    t.run(text(ALICE, ALICE, "ID3", "just chatting")).await;
    let mut own = text(ALICE, BOT, "ID4", "!ping");
    if let EventBody::Message(m) = &mut own.body {
        m.from_me = true;
    }
    t.run(own).await;
    let sent = t.services.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].2.text, "pong");
    assert_eq!(
        sent[0].2.quoted,
        Some(MessageRef {
            id: "ID1".into(),
            sender: ALICE.into()
        })
    );
    assert_eq!(sent[1].2.text, "hello  there");
    assert_eq!(sent[1].1, ALICE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_without_messaging_grant_sends_nothing_and_stays_healthy() {
    let t = host(vec![("echo", PluginSpec::new(open(&[Log])))]);
    t.load("echo", &dist("echo")).await;
    t.run(text(ALICE, ALICE, "ID1", "!ping")).await;
    assert!(t.services.sent().is_empty());
    let status = t.host.status("echo").unwrap();
    assert_eq!((status.handled, status.failures), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welcome_greets_added_members_with_configurable_text() {
    let spec = PluginSpec::new(open(&[Messaging, Groups, Kv]))
        .with_config(serde_json::json!({"text": "Hello {mentions}, welcome to {group}!"}));
    let t = host(vec![("welcome", spec)]);
    t.services.set_own_jid(SESSION, BOT);
    t.services.set_group(SESSION, group(ParticipantRole::Admin));
    t.load("welcome", &dist("welcome")).await;

    let added = |users: &[&str]| Event {
        session: SESSION.into(),
        body: EventBody::GroupUpdate(GroupUpdate {
            group: GROUP.into(),
            actor: Some(ALICE.into()),
            timestamp: 0,
            change: GroupChange::ParticipantsAdded(users.iter().map(|u| u.to_string()).collect()),
        }),
    };
    t.run(added(&[CAROL, BOT])).await;
    let sent = t.services.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, GROUP);
    assert_eq!(sent[0].2.text, "Hello @491703333333, welcome to Cats!");
    assert_eq!(sent[0].2.mentions, [CAROL]);

    // A non-admin cannot change the text; an admin can, and it is stored in kv.
    t.run(group_text(
        GROUP,
        BOB,
        "M1",
        "!welcome set Go away {mentions}",
    ))
    .await;
    assert_eq!(
        t.texts().last().unwrap(),
        "Only group admins can change the welcome text."
    );
    t.run(group_text(
        GROUP,
        ALICE,
        "M2",
        "!welcome set Hi {mentions} in {group}",
    ))
    .await;
    assert_eq!(t.texts().last().unwrap(), "Welcome text saved.");
    assert!(
        t.kv.dump("welcome")
            .contains_key(&format!("welcome:{SESSION}:{GROUP}"))
    );
    t.run(added(&[BOB])).await;
    assert_eq!(t.texts().last().unwrap(), "Hi @491702222222 in Cats");
    t.run(group_text(GROUP, ALICE, "M3", "!welcome reset"))
        .await;
    t.run(added(&[BOB])).await;
    assert_eq!(
        t.texts().last().unwrap(),
        "Hello @491702222222, welcome to Cats!"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_warns_then_removes_link_posters() {
    let spec = PluginSpec::new(open(&[Messaging, Groups, GroupAdmin, Kv, Log]));
    let t = host(vec![("moderation", spec)]);
    t.services.set_own_jid(SESSION, BOT);
    t.services.set_group(SESSION, group(ParticipantRole::Admin));
    t.load("moderation", &dist("moderation")).await;

    t.run(group_text(GROUP, BOB, "L1", "no links here")).await;
    assert!(t.services.sent().is_empty());
    t.run(group_text(
        GROUP,
        BOB,
        "L2",
        "buy now at https://spam.example/x",
    ))
    .await;
    let sent = t.services.sent();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0]
            .2
            .text
            .starts_with("@491702222222 links are not allowed"),
        "{}",
        sent[0].2.text
    );
    assert_eq!(sent[0].2.mentions, [BOB]);
    assert_eq!(sent[0].2.quoted.as_ref().map(|q| q.id.as_str()), Some("L2"));
    assert!(
        t.services
            .group(SESSION, GROUP)
            .unwrap()
            .participants
            .iter()
            .any(|p| p.user == BOB)
    );

    // Admins may post links.
    t.run(group_text(GROUP, ALICE, "L3", "see www.cats.org"))
        .await;
    assert_eq!(t.services.sent().len(), 1);

    t.run(group_text(GROUP, BOB, "L4", "again: spam.xyz/deal"))
        .await;
    assert_eq!(
        t.texts().last().unwrap(),
        "Removed @491702222222 for posting links."
    );
    assert!(
        !t.services
            .group(SESSION, GROUP)
            .unwrap()
            .participants
            .iter()
            .any(|p| p.user == BOB)
    );
    assert!(t.services.calls().iter().any(|c| matches!(c,
        ServiceCall::GroupParticipants { action: ParticipantAction::Remove, users, .. } if users == &[BOB.to_owned()])));
    assert!(
        t.kv.dump("moderation").is_empty(),
        "strikes are cleared after removal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_does_nothing_where_the_bot_is_not_admin() {
    let spec = PluginSpec::new(open(&[Messaging, Groups, GroupAdmin, Kv]));
    let t = host(vec![("moderation", spec)]);
    t.services.set_own_jid(SESSION, BOT);
    t.services
        .set_group(SESSION, group(ParticipantRole::Member));
    t.load("moderation", &dist("moderation")).await;
    t.run(group_text(GROUP, BOB, "L1", "https://spam.example"))
        .await;
    t.run(group_text(GROUP, BOB, "L2", "https://spam.example"))
        .await;
    assert!(t.services.sent().is_empty());
    assert_eq!(t.host.status("moderation").unwrap().failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_one_shot_and_cron() {
    let spec = PluginSpec::new(open(&[Messaging, Scheduler, Clock, Log]));
    let t = host(vec![("reminders", spec)]);
    t.load("reminders", &dist("reminders")).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;

    t.run(text(ALICE, ALICE, "R1", "!remind 10m make tea"))
        .await;
    assert_eq!(
        t.texts().last().unwrap(),
        "Reminder job-1 set for 10m from now."
    );
    let jobs = t.scheduler.jobs();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].0, "reminders");
    let Trigger::At(at) = jobs[0].1.trigger else {
        panic!("not a one-shot job")
    };
    assert!((at - now - 600_000).abs() < 5_000, "due at {at}, now {now}");

    t.run(text(
        ALICE,
        ALICE,
        "R2",
        "!remind cron 0 9 * * 1-5 Europe/Berlin stand-up",
    ))
    .await;
    assert!(
        t.texts()
            .last()
            .unwrap()
            .starts_with("Repeating reminder job-2 set"),
        "{:?}",
        t.texts()
    );
    t.run(text(ALICE, ALICE, "R3", "!remind cron 0 9 * * $ UTC nope"))
        .await;
    assert!(
        t.texts()
            .last()
            .unwrap()
            .starts_with("Could not set the reminder"),
        "{:?}",
        t.texts()
    );
    t.run(text(ALICE, ALICE, "R4", "!remind list")).await;
    let list = t.texts().last().unwrap().clone();
    assert!(
        list.contains("job-1") && list.contains("make tea") && list.contains("job-2"),
        "{list}"
    );

    // The one-shot job fires (delivered to its owner only) …
    assert!(t.scheduler.take_due(now + 1000).is_empty());
    let due = t.scheduler.take_due(at);
    assert_eq!(due.len(), 1);
    for (owner, event) in due {
        t.host.dispatch_to(&owner, event).unwrap();
    }
    t.settle().await;
    let sent = t.services.sent();
    let (_, chat, msg) = sent.last().unwrap();
    assert_eq!(
        (chat.as_str(), msg.text.as_str()),
        (ALICE, "⏰ @491701111111 reminder: make tea")
    );
    assert_eq!(msg.mentions, [ALICE]);

    // … and so does the cron job, which stays scheduled until cancelled.
    let (owner, event) = t.scheduler.fire("job-2", now).unwrap();
    t.host.dispatch_to(&owner, event).unwrap();
    t.settle().await;
    assert_eq!(
        t.texts().last().unwrap(),
        "⏰ @491701111111 reminder: stand-up"
    );
    t.run(text(ALICE, ALICE, "R5", "!remind cancel job-2"))
        .await;
    assert_eq!(t.texts().last().unwrap(), "Cancelled job-2.");
    assert!(t.scheduler.jobs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_events_are_never_broadcast() {
    let t = host(vec![(
        "reminders",
        PluginSpec::new(open(&[Messaging, Scheduler, Clock])),
    )]);
    t.load("reminders", &dist("reminders")).await;
    let ev = Event {
        session: SESSION.into(),
        body: EventBody::ScheduleFired(wasmeow_plugin_host::types::ScheduleFired {
            job: "job-9".into(),
            payload: "{}".into(),
            scheduled_for: 0,
        }),
    };
    assert_eq!(t.host.dispatch(ev).delivered, 0);
}

/// The JavaScript plugin (componentize-js, SpiderMonkey, with locked-down WASI
/// imports) runs in the same host. Its 13 MB component takes a while to compile
/// in a debug build, so the compilation cache lives in the test target directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_plugin_runs_in_the_same_host() {
    js_echo_answers(&dist("js-echo")).await;
}

/// The JavaScript plugin built from its source with the npm packages pinned in
/// its lockfile (`npm ci`, then its `npm run build`) runs like the committed
/// build. Needs Node and npm (the registry the first time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "installs the npm toolchain and builds a 13 MB component (about a minute)"]
async fn javascript_plugin_builds_from_source() {
    let dir = repo().join("plugins/js-echo");
    let npm = |args: &[&str], envs: &[(&str, &std::path::Path)]| {
        let out = std::process::Command::new("npm")
            .args(args)
            .envs(envs.iter().copied())
            .current_dir(&dir)
            .output()
            .expect("npm runs (Node 20 and npm are needed for the JavaScript plugin)");
        assert!(
            out.status.success(),
            "npm {args:?} in {}: {}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    npm(&["ci", "--no-audit", "--no-fund"], &[]);
    let out = tempfile::tempdir().unwrap();
    let wasm = out.path().join("js-echo.wasm");
    npm(&["run", "build"], &[("JS_ECHO_OUT", &wasm)]);
    js_echo_answers(&wasm).await;
}

async fn js_echo_answers(wasm: &std::path::Path) {
    let engine = wasmeow_plugin_host::EngineConfig {
        cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")),
        ..wasmeow_plugin_host::EngineConfig::default()
    };
    let t = host_with(
        engine,
        vec![("js-echo", PluginSpec::new(open(&[Messaging, Log])))],
    );
    t.load("js-echo", wasm).await;
    t.run(text(ALICE, ALICE, "J1", "!ping")).await;
    t.run(text(ALICE, ALICE, "J2", "!echo from  js")).await;
    t.run(text(ALICE, ALICE, "J3", "not a command")).await;
    let sent = t.services.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].2.text, "pong");
    assert_eq!(
        sent[0].2.quoted,
        Some(MessageRef {
            id: "J1".into(),
            sender: ALICE.into()
        })
    );
    assert_eq!(sent[1].2.text, "from js");
    assert_eq!(t.host.status("js-echo").unwrap().failures, 0);

    // Without the grant, the JS plugin sees `denied` as a thrown error and goes on.
    t.host
        .set_spec("js-echo", PluginSpec::new(open(&[Log])))
        .await
        .unwrap();
    t.run(text(ALICE, ALICE, "J4", "!ping")).await;
    assert_eq!(t.services.sent().len(), 2);
    assert_eq!(t.host.status("js-echo").unwrap().failures, 0);
}
