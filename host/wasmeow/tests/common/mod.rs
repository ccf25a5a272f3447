//! Shared helpers of the admin API tests: an in-memory [`fake::FakeControl`], a small HTTP
//! client over hyper ([`http`]), a server launcher, the browser check ([`ui`]) and the real
//! runtime on a temporary store ([`runtime`]).
//!
//! Each test binary uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code, unreachable_pub)]

pub mod fake;
pub mod http;
pub mod qrdecode;
pub mod runtime;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wasmeow::admin::{self, AdminAuth, AdminOptions, RouteInfo};
use wasmeow::control::Control;

/// The token every test server accepts.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A running admin server on 127.0.0.1.
pub struct Server {
    pub addr: SocketAddr,
    pub routes: Vec<RouteInfo>,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Signals shutdown and waits for `serve` to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.expect("serve task panicked")
    }
}

/// Serves the admin router over `ctl` on a free loopback port.
pub async fn start(ctl: Arc<dyn Control>, opts: AdminOptions) -> Server {
    let auth = AdminAuth::new(TOKEN).unwrap();
    let (router, routes) = admin::router_with_table(ctl, auth, opts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(admin::serve(listener, router, async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        routes,
        stop: Some(tx),
        task,
    }
}
