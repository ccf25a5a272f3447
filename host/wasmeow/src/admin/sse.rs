//! `GET /v1/events[?session=NAME]`: the runtime's [`HostEvent`]s as server-sent events.
//!
//! Contract: each event is sent as `event: <HostEvent.event>` with `data: <HostEvent as JSON>`
//! (one line), in the order the runtime broadcast them, optionally only those of one session.
//! When the subscriber falls behind the broadcast channel, the stream does not skip silently:
//! it sends `event: lagged` with `data: {"missed": <count>}` and continues with the oldest
//! event still buffered. A comment line (`: keep-alive`) goes out every keep-alive interval so
//! proxies and clients see the connection live. The stream ends when the runtime drops its
//! sender, or when [`super::serve`] begins shutting down.

use std::convert::Infallible;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

use super::AppState;
use super::error::ApiError;
use super::validate;
use crate::control::HostEvent;

/// Set to `true` by [`super::serve`] when shutdown begins; open streams end then, so graceful
/// shutdown does not wait on them.
#[derive(Debug, Clone)]
pub(crate) struct Closing(pub(crate) watch::Receiver<bool>);

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsParams {
    session: Option<String>,
    /// Read by the auth middleware; accepted here so `deny_unknown_fields` lets it through.
    #[serde(default, rename = "token")]
    _token: Option<String>,
}

/// The SSE event for one host event.
pub(crate) fn to_sse(ev: &HostEvent) -> Event {
    let data = serde_json::to_string(ev).unwrap_or_else(|_| "{}".into());
    Event::default().event(&ev.event).data(data)
}

fn event_stream(
    rx: broadcast::Receiver<HostEvent>,
    session: Option<String>,
    closing: Option<watch::Receiver<bool>>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let state = (rx, session, closing);
    futures_util::stream::unfold(state, |(mut rx, session, mut closing)| async move {
        loop {
            let next = match closing.as_mut() {
                None => rx.recv().await,
                Some(c) => tokio::select! {
                    r = rx.recv() => r,
                    // Shutdown began (or the server is gone): end the stream.
                    _ = c.wait_for(|closing| *closing) => return None,
                },
            };
            match next {
                Ok(ev) => {
                    if session.as_ref().is_none_or(|s| *s == ev.session) {
                        return Some((Ok(to_sse(&ev)), (rx, session, closing)));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let ev = Event::default()
                        .event("lagged")
                        .data(format!("{{\"missed\":{missed}}}"));
                    return Some((Ok(ev), (rx, session, closing)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

pub(crate) async fn events(
    State(st): State<AppState>,
    closing: Option<Extension<Closing>>,
    params: Result<Query<EventsParams>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    if let Some(s) = &params.session {
        validate::name("session", s)?;
    }
    // Subscribe before the response starts, so nothing sent after the client saw the headers
    // is missed.
    let rx = st.ctl.subscribe();
    let closing = closing.map(|Extension(Closing(c))| c);
    Ok(
        Sse::new(event_stream(rx, params.session, closing)).keep_alive(
            KeepAlive::new()
                .interval(st.opts.keep_alive)
                .text("keep-alive"),
        ),
    )
}
