//! Plugin host benchmarks: per-event dispatch cost and plugin calls per second
//! with 1 and 10 plugins, on one lane and spread over both cores; instantiation
//! time; hot-reload latency (file written → new version answering). Uses the
//! committed plugin builds (`plugins/dist/echo.wasm`: the Rust `echo` plugin
//! answering `!ping` with one `reply-current` host call).
//!
//! Everything runs in the production configuration: the default engine (epoch
//! interruption with the ticker thread, pooling allocator, synchronous calls on
//! lane threads), the `wasmeow` binary's allocator and the default [`Limits`] (100 ms deadline per call, host-call
//! budget and timeout, memory limits), except `instances` and `max_in_flight`
//! (raised so the producer, which floods the host far faster than any real
//! session, never has events dropped). Nothing in the sandbox is turned off.
//!
//! `cargo bench -p wasmeow-plugin-host --bench dispatch`; for a load-independent
//! instruction count per event see [`count`] (`WASMEOW_DISPATCH_EVENTS`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group};
use wasmeow_plugin_host::memory::{MemoryKv, MemoryScheduler};
use wasmeow_plugin_host::types::{
    ChatStateKind, GroupInfo, MessageRef, OutgoingText, ParticipantOutcome,
};
use wasmeow_plugin_host::{
    ApiError, Capability, Event, Grant, GroupSetting, HostConfig, HostServices, Limits,
    ParticipantAction, PluginHost, PluginSpec, Scope,
};

/// The allocator of the `wasmeow` binary, so the figures are the product's:
/// events are built on one thread and freed on a plugin lane, a pattern glibc's
/// per-thread arenas serve far worse (see `docs/benchmarks.md`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        // Criterion's warm-up doubles its batch until 3 s have passed: at
        // ≈ 0.5 µs per event its last batch is several million events, all
        // dispatched before the first is handled. None may be dropped.
        max_in_flight: 1 << 28,
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

/// Dispatches `evs` and waits until every plugin has handled them.
async fn run_batch(host: &PluginHost, evs: Vec<Event>) -> Duration {
    let start = Instant::now();
    for e in evs {
        host.dispatch(e);
    }
    host.idle().await;
    start.elapsed()
}

/// Per-event cost and throughput. Each criterion iteration is one event
/// dispatched to every plugin, and its "elements" are plugin calls, so criterion
/// reports the time per event (divide by the plugin count for ns per plugin
/// call) and plugin calls per second.
///
/// * `one_chat`: every event in one chat, so each plugin uses one lane (one
///   instance, strictly sequential). With 10 plugins that is 10 lanes, which
///   the runtime spreads over both cores.
/// * `64_chats`: events spread over 64 chats and 2 instances per plugin, so one
///   plugin alone already runs on both cores.
fn bench_dispatch(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("dispatch");
    for (plugins, instances, chats, name) in [
        (1usize, 1usize, 1u64, "plugins_1/one_chat"),
        (1, 2, 64, "plugins_1/64_chats"),
        (10, 1, 1, "plugins_10/one_chat"),
        (10, 2, 64, "plugins_10/64_chats"),
    ] {
        let (host, services) = rt.block_on(host_with(plugins, instances));
        g.throughput(Throughput::Elements(plugins as u64));
        g.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let host = host.clone();
                let evs = events(iters, chats);
                async move { run_batch(&host, evs).await }
            })
        });
        // Every event was handled (the bench may also have been filtered out).
        let handled: u64 = host.list().iter().map(|p| p.handled).sum();
        assert_eq!(services.sends.load(Ordering::Relaxed), handled);
        assert!(
            host.list()
                .iter()
                .all(|p| p.failures == 0 && p.dropped == 0)
        );
    }
    // One plugin, one lane, a text the plugin ignores: no host call.
    let (host, _) = rt.block_on(host_with(1, 1));
    g.throughput(Throughput::Elements(1));
    g.bench_function("plugins_1/no_host_call", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let host = host.clone();
            let evs: Vec<Event> = (0..iters)
                .map(|_| Event::text("s", "0@s.whatsapp.net", "0@s.whatsapp.net", "ID", "hello"))
                .collect();
            async move { run_batch(&host, evs).await }
        })
    });
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

criterion_group!(benches, bench_dispatch, bench_instantiate, bench_reload);

fn main() {
    if let Ok(n) = std::env::var("WASMEOW_DISPATCH_EVENTS") {
        count(
            n.parse()
                .expect("WASMEOW_DISPATCH_EVENTS: a number of events"),
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

/// `WASMEOW_DISPATCH_EVENTS=N`: instead of criterion, dispatches N `!ping`
/// events to one plugin on one lane (the `plugins_1/one_chat` setup) and prints
/// wall time and the process's CPU time per event. Made for instruction counts
/// that do not depend on machine load: run it under
/// `valgrind --tool=callgrind` with two values of N and divide the difference
/// of the totals by the difference of N (the fixed start-up cost cancels out).
/// `WASMEOW_DISPATCH_CACHE=DIR` keeps compiled plugins in DIR, so a second run
/// does not compile again; `WASMEOW_DISPATCH_SMALL_POOL=1` shrinks the pooling
/// allocator (4 instances, 64 MiB memories), because valgrind cannot reserve the
/// default pool's address space (the per-call path is the same).
fn count(n: u64) {
    let rt = runtime();
    let cache = std::env::var_os("WASMEOW_DISPATCH_CACHE").map(PathBuf::from);
    let (host, services) = rt.block_on(async {
        let mut config = HostConfig {
            default_spec: Some(spec(1)),
            ..HostConfig::default()
        };
        config.engine.cache_dir = cache;
        if std::env::var_os("WASMEOW_DISPATCH_SMALL_POOL").is_some() {
            // Valgrind cannot reserve the default pool's address space.
            config.engine.pool_instances = 4;
            config.engine.pool_max_memory_bytes = 64 << 20;
        }
        let services = Arc::new(Counting::default());
        let host = PluginHost::new(
            config,
            services.clone(),
            Arc::new(MemoryKv::new()),
            Arc::new(MemoryScheduler::new()),
        )
        .unwrap();
        host.load_bytes("echo0", echo()).await.unwrap();
        (host, services)
    });
    let evs = events(n, 1);
    let cpu0 = cpu_time();
    let wall = rt.block_on(run_batch(&host, evs));
    let cpu = cpu_time().saturating_sub(cpu0);
    assert_eq!(services.sends.load(Ordering::Relaxed), n);
    let per = |d: Duration| d.as_nanos() as f64 / n.max(1) as f64;
    println!(
        "{n} events: wall {wall:?} ({:.0} ns/event, {:.0} events/s), process CPU {cpu:?} ({:.0} ns/event)",
        per(wall),
        n as f64 / wall.as_secs_f64(),
        per(cpu),
    );
}

/// User + system CPU time of this process so far (Linux `/proc`; zero elsewhere).
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which is in parentheses); utime and stime
    // are fields 14 and 15, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}
