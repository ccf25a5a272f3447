//! Plugin host benchmarks: per-event dispatch cost with one host call, event
//! throughput with 1 and 10 plugins, instantiation time, and hot-reload latency
//! (file written → new version answering). Uses the committed plugin builds.
//!
//! `cargo bench -p wasmeow-plugin-host --bench dispatch`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wasmeow_plugin_host::memory::{MemoryKv, MemoryScheduler};
use wasmeow_plugin_host::types::{
    ChatStateKind, GroupInfo, MessageRef, OutgoingText, ParticipantOutcome,
};
use wasmeow_plugin_host::{
    ApiError, Capability, Event, Grant, GroupSetting, HostConfig, HostServices, Limits,
    ParticipantAction, PluginHost, PluginSpec, Scope,
};

/// Services that count sends and do nothing else.
#[derive(Default)]
struct Counting {
    sends: AtomicU64,
    last: std::sync::Mutex<String>,
}

#[async_trait]
impl HostServices for Counting {
    async fn send_text(
        &self,
        _: &str,
        _: &str,
        _: &str,
        m: OutgoingText,
    ) -> Result<String, ApiError> {
        self.sends.fetch_add(1, Ordering::Relaxed);
        if !m.text.starts_with('p') {
            *self.last.lock().unwrap() = m.text;
        }
        Ok(String::new())
    }
    async fn react(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: MessageRef,
        _: String,
    ) -> Result<(), ApiError> {
        Ok(())
    }
    async fn mark_read(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &str,
        _: Vec<String>,
    ) -> Result<(), ApiError> {
        Ok(())
    }
    async fn set_typing(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: ChatStateKind,
    ) -> Result<(), ApiError> {
        Ok(())
    }
    async fn own_jid(&self, _: &str, _: &str) -> Result<String, ApiError> {
        Ok(String::new())
    }
    async fn group_create(
        &self,
        _: &str,
        _: &str,
        _: String,
        _: Vec<String>,
    ) -> Result<GroupInfo, ApiError> {
        Err(ApiError::Unavailable)
    }
    async fn group_info(&self, _: &str, _: &str, _: &str) -> Result<GroupInfo, ApiError> {
        Err(ApiError::NotFound)
    }
    async fn group_participants(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: ParticipantAction,
        _: Vec<String>,
    ) -> Result<Vec<ParticipantOutcome>, ApiError> {
        Ok(Vec::new())
    }
    async fn group_setting(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: GroupSetting,
    ) -> Result<(), ApiError> {
        Ok(())
    }
    async fn group_invite_link(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: bool,
    ) -> Result<String, ApiError> {
        Ok(String::new())
    }
    async fn group_join(&self, _: &str, _: &str, _: String) -> Result<String, ApiError> {
        Ok(String::new())
    }
    async fn group_leave(&self, _: &str, _: &str, _: &str) -> Result<(), ApiError> {
        Ok(())
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn echo() -> Vec<u8> {
    std::fs::read(repo().join("plugins/dist/echo.wasm")).expect("plugins/dist/echo.wasm")
}

fn spec(instances: usize) -> PluginSpec {
    let grant = Grant {
        sessions: Scope::All,
        chats: Scope::All,
        ..Grant::default()
    }
    .with([Capability::Messaging]);
    PluginSpec::new(grant).with_limits(Limits {
        instances,
        max_in_flight: 1 << 20,
        ..Limits::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn host_with(plugins: usize, instances: usize) -> (PluginHost, Arc<Counting>) {
    let config = HostConfig {
        default_spec: Some(spec(instances)),
        ..HostConfig::default()
    };
    let services = Arc::new(Counting::default());
    let host = PluginHost::new(
        config,
        services.clone(),
        Arc::new(MemoryKv::new()),
        Arc::new(MemoryScheduler::new()),
    )
    .unwrap();
    for i in 0..plugins {
        host.load_bytes(&format!("echo{i}"), echo()).await.unwrap();
    }
    (host, services)
}

/// `!ping` events spread over `chats` chats.
fn events(n: u64, chats: u64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let chat = format!("{}@s.whatsapp.net", i % chats);
            Event::text("s", &chat, &chat, "ID", "!ping")
        })
        .collect()
}

fn bench_dispatch(c: &mut Criterion) {
    let rt = runtime();
    let (host, services) = rt.block_on(host_with(1, 1));
    let mut g = c.benchmark_group("dispatch");
    g.throughput(Throughput::Elements(1));
    // One plugin, one instance: the sequential cost of one event, including one
    // host call (the `pong` reply).
    g.bench_function("one_host_call", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let host = host.clone();
            let evs = events(iters, 1);
            async move {
                let start = Instant::now();
                for e in evs {
                    host.dispatch(e);
                }
                host.idle().await;
                start.elapsed()
            }
        })
    });
    // The same without the host call: a text the plugin ignores.
    g.bench_function("no_host_call", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let host = host.clone();
            async move {
                let evs: Vec<Event> = (0..iters)
                    .map(|_| {
                        Event::text("s", "0@s.whatsapp.net", "0@s.whatsapp.net", "ID", "hello")
                    })
                    .collect();
                let start = Instant::now();
                for e in evs {
                    host.dispatch(e);
                }
                host.idle().await;
                start.elapsed()
            }
        })
    });
    g.finish();
    assert!(services.sends.load(Ordering::Relaxed) > 0);
}

fn bench_throughput(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("throughput");
    for plugins in [1usize, 10] {
        let (host, _) = rt.block_on(host_with(plugins, 2));
        let batch = 20_000u64;
        let evs = events(batch, 64);
        // Elements = plugin calls (events × plugins).
        g.throughput(Throughput::Elements(batch * plugins as u64));
        g.sample_size(10);
        g.bench_function(format!("plugins_{plugins}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let host = host.clone();
                let evs = evs.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let evs = evs.clone();
                        let start = Instant::now();
                        for e in evs {
                            host.dispatch(e);
                        }
                        host.idle().await;
                        total += start.elapsed();
                    }
                    total
                }
            })
        });
    }
    g.finish();
}

fn bench_instantiate(c: &mut Criterion) {
    let rt = runtime();
    let (host, _) = rt.block_on(host_with(1, 1));
    c.bench_function("instantiate/echo", |b| {
        b.to_async(&rt).iter(|| {
            let host = host.clone();
            async move { host.check_instantiate("echo0").await.unwrap() }
        })
    });
}

fn bench_reload(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let recorder =
        std::fs::read(repo().join("host/plugin-host/tests/fixtures/recorder.wasm")).unwrap();
    let echo = echo();
    let config = HostConfig {
        default_spec: Some(spec(1)),
        ..HostConfig::default()
    };
    let services = Arc::new(Counting::default());
    let host = PluginHost::new_in(&rt, config, services.clone());
    std::fs::write(dir.path().join("subject.wasm"), &echo).unwrap();
    let watcher = rt.block_on(host.watch(dir.path())).unwrap();
    let mut flip = false;
    let mut g = c.benchmark_group("reload");
    g.sample_size(10);
    // From the rename of a new file into the plugins directory until an event
    // dispatched after it is answered by the new version (no compilation cache:
    // every swap compiles).
    g.bench_function("file_to_new_version", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut plan = Vec::new();
            for _ in 0..iters {
                flip = !flip;
                plan.push(flip);
            }
            let (host, services, dir) = (host.clone(), services.clone(), dir.path().to_owned());
            let (echo, recorder) = (echo.clone(), recorder.clone());
            async move {
                for to_recorder in plan {
                    let (bytes, expect) = if to_recorder {
                        (&recorder, "rec:!echo x")
                    } else {
                        (&echo, "x")
                    };
                    let tmp = dir.join(".subject.tmp");
                    std::fs::write(&tmp, bytes).unwrap();
                    let start = Instant::now();
                    std::fs::rename(&tmp, dir.join("subject.wasm")).unwrap();
                    loop {
                        host.dispatch(Event::text(
                            "s",
                            "c@s.whatsapp.net",
                            "c@s.whatsapp.net",
                            "ID",
                            "!echo x",
                        ));
                        host.idle().await;
                        if *services.last.lock().unwrap() == expect {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        assert!(
                            start.elapsed() < Duration::from_secs(10),
                            "reload did not happen"
                        );
                    }
                    total += start.elapsed();
                }
                total
            }
        })
    });
    g.finish();
    drop(watcher);
}

trait NewIn {
    fn new_in(
        rt: &tokio::runtime::Runtime,
        config: HostConfig,
        services: Arc<Counting>,
    ) -> PluginHost;
}

impl NewIn for PluginHost {
    fn new_in(
        rt: &tokio::runtime::Runtime,
        config: HostConfig,
        services: Arc<Counting>,
    ) -> PluginHost {
        let _guard = rt.enter();
        PluginHost::new(
            config,
            services,
            Arc::new(MemoryKv::new()),
            Arc::new(MemoryScheduler::new()),
        )
        .unwrap()
    }
}

criterion_group!(
    benches,
    bench_dispatch,
    bench_throughput,
    bench_instantiate,
    bench_reload
);
criterion_main!(benches);
