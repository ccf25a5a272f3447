//! The data of one plugin instance's `Store`: the plugin's context (name, grant,
//! config, services), a locked-down WASI context, the resource limiter, and the
//! per-call budget (epoch ticks, host calls).
//!
//! WASI is linked so components from other toolchains (componentize-js/py) run,
//! but the context grants nothing: no preopened directories, no environment, no
//! arguments, no sockets, stdin closed. Guest stdout/stderr go to the host log
//! (tracing, target `wasmeow::plugin`) tagged with the plugin's name.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::config::Limits;
use crate::error::Failure;
use crate::grant::{Grant, Op};
use crate::services::{HostServices, KvBackend, SchedulerBackend};
use crate::types::{ApiError, Event};

/// The service backends, shared by every plugin.
#[derive(Clone)]
pub(crate) struct Services {
    pub(crate) host: Arc<dyn HostServices>,
    pub(crate) kv: Arc<dyn KvBackend>,
    pub(crate) scheduler: Arc<dyn SchedulerBackend>,
    /// The runtime host calls that must wait are driven on.
    pub(crate) runtime: tokio::runtime::Handle,
}

/// Everything about a plugin that its instances share.
pub(crate) struct PluginCtx {
    pub(crate) name: Arc<str>,
    pub(crate) grant: Grant,
    /// The config table (always an object).
    pub(crate) config: serde_json::Value,
    /// `config` as JSON text, passed to `init`.
    pub(crate) config_json: String,
    pub(crate) limits: Limits,
    pub(crate) services: Services,
}

/// A guest hit a resource limit; carried through wasmtime as the trap's error so
/// the failure is classified precisely.
#[derive(Debug)]
pub(crate) struct LimitExceeded(pub(crate) Failure);

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for LimitExceeded {}

/// Memory and table limits of one instance.
pub(crate) struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            return Err(LimitExceeded(Failure::MemoryLimit {
                limit: self.memory_bytes,
                wanted: desired,
            })
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            return Err(LimitExceeded(Failure::TableLimit {
                limit: self.table_elements,
            })
            .into());
        }
        Ok(true)
    }
}

/// The `T` of `Store<T>` for plugin instances.
pub(crate) struct PluginState {
    pub(crate) ctx: Arc<PluginCtx>,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    /// Epoch ticks the current call may still observe before it is interrupted.
    pub(crate) ticks_left: u64,
    /// Host calls made in the current call.
    pub(crate) host_calls: u32,
    /// The event of the `handle` call in progress (what the `current`
    /// interface reads); `None` outside `handle`.
    pub(crate) current: Option<Arc<Event>>,
}

impl PluginState {
    pub(crate) fn new(ctx: Arc<PluginCtx>, pool_max_memory: usize) -> Self {
        let stdout = LogSink {
            plugin: ctx.name.clone(),
            stream: "stdout",
        };
        let stderr = LogSink {
            plugin: ctx.name.clone(),
            stream: "stderr",
        };
        let wasi = WasiCtx::builder()
            .stdout(stdout)
            .stderr(stderr)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limiter = Limiter {
            memory_bytes: ctx.limits.memory_bytes.min(pool_max_memory),
            table_elements: ctx.limits.table_elements,
        };
        PluginState {
            ctx,
            wasi,
            table: ResourceTable::new(),
            limiter,
            ticks_left: 0,
            host_calls: 0,
            current: None,
        }
    }

    /// Starts a new call's budget.
    pub(crate) fn begin_call(&mut self, ticks: u64) {
        self.ticks_left = ticks;
        self.host_calls = 0;
    }

    /// The choke point of every host function: counts the call and checks the
    /// grant.
    pub(crate) fn check(&mut self, op: Op<'_>) -> Result<(), ApiError> {
        self.host_calls = self.host_calls.saturating_add(1);
        if self.host_calls > self.ctx.limits.max_host_calls_per_event {
            tracing::debug!(plugin = %self.ctx.name, op = op.name(), "host call budget of this event used up");
            return Err(ApiError::RateLimited(1000));
        }
        self.ctx.grant.check(&op).inspect_err(|_| {
            tracing::debug!(plugin = %self.ctx.name, op = op.name(), "denied by grant");
        })
    }

    /// Runs a host service future to completion on the calling (lane) thread,
    /// bounded by the plugin's host-call timeout. The future is polled once
    /// first: a call that completes at once (most do: they queue work or answer
    /// from memory) touches neither the runtime nor a timer; one that waits is
    /// driven by the tokio runtime's [`Handle::block_on`](tokio::runtime::Handle::block_on)
    /// with `timeout`. Lanes are plain threads inside the runtime's context,
    /// never runtime workers, so blocking here is allowed.
    pub(crate) fn timed<T>(
        &self,
        timeout: Duration,
        fut: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let mut fut = std::pin::pin!(fut);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        self.ctx
            .services
            .runtime
            .block_on(async { tokio::time::timeout(timeout, fut).await })
            .unwrap_or(Err(ApiError::Unavailable))
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Longest line of guest output logged; longer lines are cut.
const MAX_LOG_LINE: usize = 4096;

/// Guest stdout or stderr, written line by line to the host log.
#[derive(Clone)]
struct LogSink {
    plugin: Arc<str>,
    stream: &'static str,
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter::new(self.clone()))
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter::new(self.clone()))
    }
}

/// Splits guest output into lines and logs each. Never fails and never blocks:
/// output past [`MAX_LOG_LINE`] on one line is dropped.
struct LineWriter {
    sink: LogSink,
    line: Vec<u8>,
}

impl LineWriter {
    fn new(sink: LogSink) -> Self {
        LineWriter {
            sink,
            line: Vec::new(),
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            self.append(&bytes[..nl]);
            self.emit();
            bytes = &bytes[nl + 1..];
        }
        self.append(bytes);
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = MAX_LOG_LINE.saturating_sub(self.line.len());
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        tracing::info!(target: "wasmeow::plugin", plugin = %self.sink.plugin, stream = self.sink.stream, "{}", text.trim_end_matches('\r'));
        self.line.clear();
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.emit();
    }
}

#[async_trait::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.get_mut().emit();
        Poll::Ready(Ok(()))
    }
}
