//! Listeners: `ws://` and `wss://` for clients and HTTPS for media (the control API's listener is
//! started by [`crate::Sim::start`]); the accept loops; persistence to the state file; and the whole-server restart.
//!
//! Contract: every listener binds the configured loopback address (non-loopback addresses are
//! refused at start). Ports chosen by the OS at the first start are reused by restarts, so URLs
//! handed to clients stay valid. A restart closes the client listeners and drops every client
//! socket without a goodbye, persists the world, rebuilds it from the persisted form (which is
//! what proves persistence works), waits `downtime` with the ports closed, and listens again.
//! The control and media listeners keep running across restarts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::SimError;
use crate::state::{ConnCmd, Shared, Snapshot, World};

/// The bound addresses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub ws: SocketAddr,
    pub wss: Option<SocketAddr>,
}

/// Running accept loops.
pub(crate) struct Running {
    pub ports: Ports,
    client_tasks: Vec<JoinHandle<()>>,
    other_tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Keeps a task that must stop with the simulator (not on restart).
    pub(crate) fn add_task(&mut self, task: JoinHandle<()>) {
        self.other_tasks.push(task);
    }

    pub(crate) fn abort_all(&mut self) {
        for t in self
            .client_tasks
            .drain(..)
            .chain(self.other_tasks.drain(..))
        {
            t.abort();
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, SimError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| SimError::Bind { addr, source: e })
}

fn tls_acceptor(shared: &Shared) -> Result<TlsAcceptor, SimError> {
    let (key, cert) = {
        let world = shared.lock();
        (
            world.keys.ca_key_pem.clone(),
            world.keys.ca_cert_pem.clone(),
        )
    };
    let ca = crate::tls::TestCa::from_pem(&key, &cert)?;
    Ok(TlsAcceptor::from(ca.server_config()?))
}

/// Binds and starts the client listeners (ws, wss).
async fn start_client_listeners(
    shared: &Arc<Shared>,
    ws_addr: SocketAddr,
    wss_addr: Option<SocketAddr>,
) -> Result<(SocketAddr, Option<SocketAddr>, Vec<JoinHandle<()>>), SimError> {
    let mut tasks = Vec::new();
    let ws = bind(ws_addr).await?;
    let ws_local = ws.local_addr().map_err(|e| SimError::Bind {
        addr: ws_addr,
        source: e,
    })?;
    let s = shared.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = ws.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(crate::conn::serve(s.clone(), stream));
        }
    }));
    let mut wss_local = None;
    if let Some(addr) = wss_addr {
        let listener = bind(addr).await?;
        wss_local = Some(
            listener
                .local_addr()
                .map_err(|e| SimError::Bind { addr, source: e })?,
        );
        let acceptor = tls_acceptor(shared)?;
        let s = shared.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let s = s.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        crate::conn::serve(s, tls).await;
                    }
                });
            }
        }));
    }
    Ok((ws_local, wss_local, tasks))
}

/// Starts every listener.
pub(crate) async fn start(shared: &Arc<Shared>) -> Result<Running, SimError> {
    let cfg = shared.cfg.clone();
    if !cfg.bind.is_loopback() {
        return Err(SimError::NotLoopback(cfg.bind));
    }
    let (ws, wss, client_tasks) = start_client_listeners(
        shared,
        SocketAddr::new(cfg.bind, cfg.ws_port),
        cfg.wss_port.map(|p| SocketAddr::new(cfg.bind, p)),
    )
    .await?;
    let mut other_tasks = Vec::new();
    let media_listener = bind(SocketAddr::new(cfg.bind, cfg.media_port)).await?;
    let media = media_listener.local_addr().map_err(|e| SimError::Bind {
        addr: SocketAddr::new(cfg.bind, cfg.media_port),
        source: e,
    })?;
    shared.lock().media_host = format!("{}:{}", host_for(media), media.port());
    other_tasks.push(crate::http::serve_media(
        shared.clone(),
        media_listener,
        tls_acceptor(shared)?,
    ));
    if cfg.state_file.is_some() {
        other_tasks.push(tokio::spawn(persist_loop(shared.clone())));
    }
    Ok(Running {
        ports: Ports { ws, wss },
        client_tasks,
        other_tasks,
    })
}

/// `127.0.0.1` or `[::1]` for URLs.
pub(crate) fn host_for(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}

/// Writes the state file if anything changed, every 300 ms.
async fn persist_loop(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if let Err(e) = save_if_dirty(&shared) {
            crate::log!("persisting state failed: {e}");
        }
    }
}

/// Saves the world to the state file when it is dirty.
pub(crate) fn save_if_dirty(shared: &Shared) -> Result<(), SimError> {
    let Some(path) = shared.cfg.state_file.clone() else {
        return Ok(());
    };
    let snapshot = {
        let mut world = shared.lock();
        if !world.dirty {
            return Ok(());
        }
        world.dirty = false;
        world.snapshot()
    };
    write_snapshot(&path, &snapshot)
}

pub(crate) fn write_snapshot(path: &std::path::Path, snapshot: &Snapshot) -> Result<(), SimError> {
    let json = serde_json::to_vec(snapshot).map_err(|e| SimError::State(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json).map_err(|e| SimError::Io(tmp.clone(), e))?;
    std::fs::rename(&tmp, path).map_err(|e| SimError::Io(path.to_owned(), e))
}

/// Loads the world from the state file if it exists, else a fresh one.
pub(crate) fn load_world(cfg: &crate::SimConfig) -> Result<World, SimError> {
    if let Some(path) = &cfg.state_file
        && path.exists()
    {
        let bytes = std::fs::read(path).map_err(|e| SimError::Io(path.clone(), e))?;
        let snapshot: Snapshot =
            serde_json::from_slice(&bytes).map_err(|e| SimError::State(e.to_string()))?;
        return World::restore(cfg, snapshot);
    }
    World::new(cfg)
}

/// Restarts the client side of the server with its state kept.
pub(crate) async fn restart(
    shared: &Arc<Shared>,
    running: &mut Running,
    downtime: Duration,
) -> Result<(), SimError> {
    for task in running.client_tasks.drain(..) {
        task.abort();
    }
    let snapshot = {
        let mut world = shared.lock();
        for tx in world.sockets.values() {
            let _ = tx.send(ConnCmd::Drop);
        }
        world.snapshot()
    };
    if let Some(path) = &shared.cfg.state_file {
        write_snapshot(path, &snapshot)?;
    }
    // Round-trip through JSON: the restarted server knows exactly what was persisted.
    let json = serde_json::to_vec(&snapshot).map_err(|e| SimError::State(e.to_string()))?;
    let snapshot: Snapshot =
        serde_json::from_slice(&json).map_err(|e| SimError::State(e.to_string()))?;
    let mut world = World::restore(&shared.cfg, snapshot)?;
    {
        let old = shared.lock();
        world.media_host = old.media_host.clone();
    }
    shared.replace_world(world);
    tokio::time::sleep(downtime).await;
    let (ws, wss, tasks) =
        start_client_listeners(shared, running.ports.ws, running.ports.wss).await?;
    running.ports.ws = ws;
    running.ports.wss = wss;
    running.client_tasks = tasks;
    Ok(())
}
