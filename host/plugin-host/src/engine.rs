//! The one wasmtime [`Engine`] of the host: component model, synchronous calls, epoch
//! interruption, optional fuel, the pooling allocator; its [`Linker`] (locked-down
//! WASI p2 plus the `wasmeow:bot` imports); the epoch ticker thread; and
//! compilation (through the on-disk cache when configured).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::Plugin;
use crate::cache::CompileCache;
use crate::config::EngineConfig;
use crate::error::HostError;
use crate::state::PluginState;

/// Engine, linker, ticker and cache, shared by every plugin.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<PluginState>,
    pub(crate) config: EngineConfig,
    cache: Option<CompileCache>,
    _ticker: EpochTicker,
}

impl Runtime {
    pub(crate) fn new(config: EngineConfig) -> Result<Self, HostError> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.pool_instances)
            // Components from other toolchains hold several core modules and
            // memories (componentize-py links libc and libpython separately).
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .total_core_instances(config.pool_instances.saturating_mul(8))
            .total_memories(config.pool_instances.saturating_mul(2))
            .total_tables(config.pool_instances.saturating_mul(4))
            // Calls are synchronous (no fibers), so no async stacks are reserved;
            // an accidental async call fails instead of growing memory.
            .total_stacks(0)
            .max_memory_size(config.pool_max_memory_bytes)
            .table_elements(200_000)
            .max_component_instance_size(4 << 20)
            .max_core_instance_size(4 << 20);

        let mut wt = Config::new();
        wt.wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(config.fuel)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wt).map_err(|e| HostError::Engine(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| HostError::Linker(format!("{e:#}")))?;
        Plugin::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)
            .map_err(|e| HostError::Linker(format!("{e:#}")))?;

        let cache = match &config.cache_dir {
            Some(dir) => Some(CompileCache::open(dir, &engine)?),
            None => None,
        };
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick);
        Ok(Runtime {
            engine,
            linker,
            config,
            cache,
            _ticker: ticker,
        })
    }

    /// Compiles a component (blocking; call it off the event path).
    pub(crate) fn compile(&self, wasm: &[u8], wasm_hash: &[u8; 32]) -> wasmtime::Result<Component> {
        match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, wasm, wasm_hash),
            None => Component::new(&self.engine, wasm),
        }
    }

    /// Epoch ticks in `d`, at least 1.
    pub(crate) fn ticks(&self, d: Duration) -> u64 {
        let tick = self.config.epoch_tick.as_nanos().max(1);
        u64::try_from(d.as_nanos().div_ceil(tick))
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Milliseconds in `ticks`.
    pub(crate) fn ticks_ms(&self, ticks: u64) -> u64 {
        u64::try_from(self.config.epoch_tick.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_mul(ticks)
    }
}

/// A thread that advances the engine's epoch every tick, stopped on drop.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasmeow-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .ok();
        if thread.is_none() {
            tracing::error!(
                "could not start the epoch ticker thread: plugin deadlines are not enforced"
            );
        }
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
