//! Hot reload through the directory watcher.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wasmeow_plugin_host::Capability::Messaging;
use wasmeow_plugin_host::{EngineConfig, HostConfig, PluginHost, PluginSpec};

use crate::common::*;

/// Writes `bytes` to `dir/name.wasm` atomically (temp file + rename).
fn install(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.wasm.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).unwrap();
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_twenty_times_under_load_every_event_handled_once() {
    let dir = tempfile::tempdir().unwrap();
    // The two versions alternate: with the compilation cache each compiles once
    // (debug builds of cranelift are slow) and later swaps deserialize.
    let cache = tempfile::tempdir().unwrap();
    let engine = EngineConfig {
        cache_dir: Some(cache.path().to_owned()),
        ..EngineConfig::default()
    };
    let t = host_with(
        engine,
        vec![("subject", PluginSpec::new(open(&[Messaging])))],
    );
    let echo = read(&dist("echo"));
    let recorder = read(&fixture("recorder"));
    install(dir.path(), "subject", &echo);
    let _watcher = t.host.watch(dir.path()).await.unwrap();
    assert!(t.host.status("subject").is_some());

    // Stream events from another task for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let streamer = {
        let (host, stop, sent) = (t.host.clone(), stop.clone(), sent.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let chat = format!("{}@s.whatsapp.net", i % 7);
                let report =
                    host.dispatch(text(&chat, &chat, &format!("E{i}"), &format!("!echo {i}")));
                assert_eq!(report.delivered, 1, "event {i} not accepted: {report:?}");
                i += 1;
                sent.store(i, Ordering::Relaxed);
                if i.is_multiple_of(8) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };

    for round in 0..20 {
        let before = t.host.status("subject").unwrap().version;
        let bytes = if round % 2 == 0 { &recorder } else { &echo };
        install(dir.path(), "subject", bytes);
        let host = t.host.clone();
        wait_for("the reload", || {
            host.status("subject").is_some_and(|s| s.version != before)
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    streamer.await.unwrap();
    t.settle().await;

    let total = sent.load(Ordering::Relaxed);
    assert!(total > 200, "only {total} events streamed");
    let status = t.host.status("subject").unwrap();
    assert_eq!(status.reloads, 20);
    assert_eq!(status.failures, 0);
    assert_eq!(status.dropped, 0);

    // Every event got exactly one reply, from one version or the other.
    let mut replies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, _, m) in t.services.sent() {
        replies
            .entry(m.quoted.expect("replies quote").id)
            .or_default()
            .push(m.text);
    }
    assert_eq!(replies.len(), total, "every event answered");
    let (mut by_echo, mut by_recorder) = (0, 0);
    for (id, texts) in &replies {
        assert_eq!(texts.len(), 1, "{id} answered {texts:?}");
        let n = id.trim_start_matches('E');
        if texts[0] == n {
            by_echo += 1;
        } else {
            assert_eq!(texts[0], format!("rec:!echo {n}"));
            by_recorder += 1;
        }
    }
    assert!(
        by_echo > 0 && by_recorder > 0,
        "echo {by_echo}, recorder {by_recorder}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_rejects_broken_files_and_unloads_deleted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = HostConfig {
        default_spec: Some(PluginSpec::new(open(&[Messaging]))),
        ..HostConfig::default()
    };
    let services = Arc::new(wasmeow_plugin_host::testing::RecordingServices::new());
    let host = PluginHost::new(
        config,
        services.clone(),
        Arc::new(wasmeow_plugin_host::memory::MemoryKv::new()),
        Arc::new(wasmeow_plugin_host::memory::MemoryScheduler::new()),
    )
    .unwrap();
    let _watcher = host.watch(dir.path()).await.unwrap();
    assert!(host.list().is_empty());

    install(dir.path(), "echo", &read(&dist("echo")));
    wait_for("the new plugin", || host.status("echo").is_some()).await;
    let v1 = host.status("echo").unwrap().version;

    install(dir.path(), "echo", b"\0asm\x0d\x00\x01\x00");
    // Give the watcher time to see and reject it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(host.status("echo").unwrap().version, v1);
    host.dispatch(text(
        "me@s.whatsapp.net",
        "me@s.whatsapp.net",
        "W1",
        "!ping",
    ));
    host.idle().await;
    assert_eq!(services.sent().len(), 1);

    std::fs::remove_file(dir.path().join("echo.wasm")).unwrap();
    wait_for("the unload", || host.status("echo").is_none()).await;
    assert_eq!(
        host.dispatch(text(
            "me@s.whatsapp.net",
            "me@s.whatsapp.net",
            "W2",
            "!ping"
        ))
        .delivered,
        0
    );
}
