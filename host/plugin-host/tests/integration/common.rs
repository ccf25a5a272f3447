//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmeow_plugin_host::memory::{MemoryKv, MemoryScheduler};
use wasmeow_plugin_host::testing::RecordingServices;
use wasmeow_plugin_host::types::{Content, Event, EventBody, Message};
use wasmeow_plugin_host::{
    Capability, EngineConfig, Grant, HostConfig, Limits, PluginHost, PluginSpec, Scope,
};

pub(crate) const SESSION: &str = "s1";

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A committed example plugin build.
pub(crate) fn dist(name: &str) -> PathBuf {
    repo().join("plugins/dist").join(format!("{name}.wasm"))
}

/// A committed test fixture build.
pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.wasm"))
}

pub(crate) fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run the build-plugins example)", path.display()))
}

/// A grant of `caps` in every session and chat.
pub(crate) fn open(caps: &[Capability]) -> Grant {
    Grant {
        capabilities: caps.iter().copied().collect(),
        sessions: Scope::All,
        chats: Scope::All,
    }
}

pub(crate) struct TestHost {
    pub(crate) host: PluginHost,
    pub(crate) services: Arc<RecordingServices>,
    pub(crate) kv: Arc<MemoryKv>,
    pub(crate) scheduler: Arc<MemoryScheduler>,
}

pub(crate) fn host_with(engine: EngineConfig, specs: Vec<(&str, PluginSpec)>) -> TestHost {
    let mut config = HostConfig {
        engine,
        ..HostConfig::default()
    };
    for (name, spec) in specs {
        config.plugins.insert(name.to_owned(), spec);
    }
    let services = Arc::new(RecordingServices::new());
    let kv = Arc::new(MemoryKv::new());
    let scheduler = Arc::new(MemoryScheduler::new());
    let host =
        PluginHost::new(config, services.clone(), kv.clone(), scheduler.clone()).expect("host");
    TestHost {
        host,
        services,
        kv,
        scheduler,
    }
}

pub(crate) fn host(specs: Vec<(&str, PluginSpec)>) -> TestHost {
    host_with(EngineConfig::default(), specs)
}

impl TestHost {
    /// Loads a committed build under `name`.
    pub(crate) async fn load(&self, name: &str, path: &Path) {
        self.host
            .load_bytes(name, read(path))
            .await
            .unwrap_or_else(|e| panic!("loading {name}: {e}"));
    }

    /// Dispatches and waits until every plugin is idle.
    pub(crate) async fn run(&self, event: Event) {
        self.host.dispatch(event);
        self.settle().await;
    }

    pub(crate) async fn settle(&self) {
        tokio::time::timeout(Duration::from_secs(30), self.host.idle())
            .await
            .expect("host did not go idle");
    }

    /// The texts sent so far.
    pub(crate) fn texts(&self) -> Vec<String> {
        self.services
            .sent()
            .into_iter()
            .map(|(_, _, m)| m.text)
            .collect()
    }
}

/// A text message in session `s1`.
pub(crate) fn text(chat: &str, sender: &str, id: &str, body: &str) -> Event {
    Event::text(SESSION, chat, sender, id, body)
}

/// A group message.
pub(crate) fn group_text(group: &str, sender: &str, id: &str, body: &str) -> Event {
    let mut e = Event::text(SESSION, group, sender, id, body);
    if let EventBody::Message(Message { is_group, .. }) = &mut e.body {
        *is_group = true;
    }
    e
}

/// Message content as text, if it is text.
#[allow(dead_code)]
pub(crate) fn content_text(c: &Content) -> Option<&str> {
    match c {
        Content::Text(t) => Some(t),
        _ => None,
    }
}

/// Limits with fast restarts, for failure tests.
pub(crate) fn fast_limits() -> Limits {
    Limits {
        backoff_initial: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..Limits::default()
    }
}
