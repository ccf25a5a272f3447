//! The admin HTTP API: operators (and the CLI) manage sessions and plugins, watch events and
//! scrape metrics over REST/JSON, and pair a session from a small web page showing its QR code.
//!
//! Contract: every route goes through the runtime's [`Control`] trait only. Every route except
//! `GET /healthz`, `GET /readyz` and the page `GET /` needs `Authorization: Bearer <token>`
//! ([`AdminAuth`]); `GET /v1/events` also accepts `?token=`. Errors are JSON `{"error",
//! "code"}` ([`ApiError`]). Request bodies are limited to [`AdminOptions::body_limit`]. The
//! router logs nothing about requests (no URLs, no headers), so tokens never reach the logs.
//! [`openapi::document`] describes exactly the routes [`router_with_table`] registers (a test
//! checks both directions). Webhooks ([`webhook`]) are a separate task fed by
//! [`Control::subscribe`]; its counters join `GET /metrics` through
//! [`AdminOptions::webhook_stats`].
//!
//! Routes: `GET /`, `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /openapi.json`,
//! `GET|POST /v1/sessions`, `GET|DELETE /v1/sessions/{name}`,
//! `POST /v1/sessions/{name}/logout`, `POST /v1/sessions/{name}/pair-code`,
//! `GET /v1/sessions/{name}/qr`, `GET /v1/sessions/{name}/qr.png`,
//! `POST /v1/sessions/{name}/messages`, `GET /v1/plugins`, `POST /v1/plugins/{name}/reload`,
//! `GET /v1/events`.

mod auth;
mod error;
mod handlers;
pub mod openapi;
mod page;
mod sse;
pub mod validate;
pub mod webhook;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};
use tokio::net::TcpListener;

pub use auth::{Access, AdminAuth, AuthError};
pub use error::{ApiError, ErrorCode};
pub use webhook::{
    WebhookError, WebhookOptions, WebhookStats, WebhookTarget, sign, spawn_webhooks,
    spawn_webhooks_with, verify_signature,
};

use crate::control::Control;

/// Tunables of the admin router.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// The largest request body accepted (413 beyond it).
    pub body_limit: usize,
    /// How often the SSE stream sends a keep-alive comment.
    pub keep_alive: Duration,
    /// The webhook sender's counters ([`spawn_webhooks_with`]), appended to `GET /metrics`
    /// when set.
    pub webhook_stats: Option<Arc<WebhookStats>>,
}

impl Default for AdminOptions {
    fn default() -> Self {
        Self {
            body_limit: 256 * 1024,
            keep_alive: Duration::from_secs(15),
            webhook_stats: None,
        }
    }
}

/// One registered route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The method.
    pub method: Method,
    /// The path, with `{param}` placeholders (OpenAPI's syntax, and axum's).
    pub path: &'static str,
    /// Where the token may come from.
    pub access: Access,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) ctl: Arc<dyn Control>,
    pub(crate) opts: AdminOptions,
}

struct Builder {
    router: Router<AppState>,
    table: Vec<RouteInfo>,
    auth: AdminAuth,
}

impl Builder {
    fn add<H, T>(mut self, method: Method, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| unreachable!("only standard methods are registered"));
        let mut mr = on(filter, handler);
        if access != Access::Public {
            mr = mr.route_layer(axum::middleware::from_fn_with_state(
                auth::Guard {
                    auth: self.auth.clone(),
                    access,
                },
                auth::require_token,
            ));
        }
        self.router = self.router.route(path, mr);
        self.table.push(RouteInfo {
            method,
            path,
            access,
        });
        self
    }
}

/// The admin router with default [`AdminOptions`].
pub fn router(ctl: Arc<dyn Control>, auth: AdminAuth) -> Router {
    router_with(ctl, auth, AdminOptions::default())
}

/// The admin router with explicit options.
pub fn router_with(ctl: Arc<dyn Control>, auth: AdminAuth, opts: AdminOptions) -> Router {
    router_with_table(ctl, auth, opts).0
}

/// The admin router and the table of every route it registered (for the OpenAPI coverage
/// check and for tests that walk all routes).
pub fn router_with_table(
    ctl: Arc<dyn Control>,
    auth: AdminAuth,
    opts: AdminOptions,
) -> (Router, Vec<RouteInfo>) {
    use Access::{Bearer, BearerOrQuery, Public};
    use handlers as h;
    let b = Builder {
        router: Router::new(),
        table: Vec::new(),
        auth,
    };
    let b = b
        .add(Method::GET, "/", Public, h::page)
        .add(Method::GET, "/healthz", Public, h::healthz)
        .add(Method::GET, "/readyz", Public, h::readyz)
        .add(Method::GET, "/metrics", Bearer, h::metrics)
        .add(Method::GET, "/openapi.json", Bearer, h::openapi)
        .add(Method::GET, "/v1/sessions", Bearer, h::list_sessions)
        .add(Method::POST, "/v1/sessions", Bearer, h::create_session)
        .add(Method::GET, "/v1/sessions/{name}", Bearer, h::get_session)
        .add(
            Method::DELETE,
            "/v1/sessions/{name}",
            Bearer,
            h::remove_session,
        )
        .add(
            Method::POST,
            "/v1/sessions/{name}/logout",
            Bearer,
            h::logout,
        )
        .add(
            Method::POST,
            "/v1/sessions/{name}/pair-code",
            Bearer,
            h::pair_code,
        )
        .add(Method::GET, "/v1/sessions/{name}/qr", Bearer, h::qr_text)
        .add(Method::GET, "/v1/sessions/{name}/qr.png", Bearer, h::qr_png)
        .add(
            Method::POST,
            "/v1/sessions/{name}/messages",
            Bearer,
            h::send_message,
        )
        .add(Method::GET, "/v1/plugins", Bearer, h::list_plugins)
        .add(
            Method::POST,
            "/v1/plugins/{name}/reload",
            Bearer,
            h::reload_plugin,
        )
        .add(Method::GET, "/v1/campaigns", Bearer, h::list_campaigns)
        .add(
            Method::POST,
            "/v1/campaigns/{name}/run",
            Bearer,
            h::campaign_run,
        )
        .add(
            Method::POST,
            "/v1/campaigns/{name}/pause",
            Bearer,
            h::campaign_pause,
        )
        .add(
            Method::POST,
            "/v1/campaigns/{name}/resume",
            Bearer,
            h::campaign_resume,
        )
        .add(
            Method::POST,
            "/v1/campaigns/{name}/cancel",
            Bearer,
            h::campaign_cancel,
        )
        .add(Method::GET, "/v1/events", BearerOrQuery, sse::events);
    let state = AppState {
        ctl,
        opts: opts.clone(),
    };
    let router = b
        .router
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(opts.body_limit))
        .with_state(state);
    (router, b.table)
}

/// How long [`serve`] waits for open connections after `shutdown` before it returns anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, ends open
/// event streams, and lets in-flight requests finish; returns when they have, or after
/// [`SHUTDOWN_GRACE`] at the latest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let router = router.layer(axum::Extension(sse::Closing(closing_rx)));
    let fired = Arc::new(tokio::sync::Notify::new());
    let notify = fired.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = closing_tx.send(true);
        notify.notify_one();
    });
    tokio::select! {
        r = server.into_future() => r,
        () = async {
            fired.notified().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    }
}
