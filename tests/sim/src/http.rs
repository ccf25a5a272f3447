//! HTTP servers: the HTTPS media endpoint and the JSON control API the `wasmeow-sim` binary
//! exposes (the same operations as [`crate::SimHandle`]).
//!
//! Contract: the control API speaks JSON over plain HTTP/1.1 on loopback. Requests are
//! `GET` with a query string or `POST` with a JSON body; answers are `200` with a JSON value,
//! `400 {"error"}` for bad input, `409 {"error"}` for pairing failures, `404` for unknown
//! routes. Routes:
//!
//! | route | body / query | answer |
//! |---|---|---|
//! | `GET /info` | | [`crate::SimInfo`] |
//! | `GET /stats` | | [`crate::Stats`] |
//! | `POST /accounts` | `{pn?, push_name?}` | [`crate::AccountInfo`] |
//! | `POST /scan` | `{qr, pn}` | `{jid}` |
//! | `POST /pairing-code` | `{pn, code}` | `{jid}` |
//! | `POST /companions` | `{pn}` | [`crate::CompanionCredentials`] |
//! | `GET /devices?pn=` | | `[DeviceInfo]` |
//! | `GET /queue?jid=` | | `[message id]` |
//! | `POST /phone/send` | `{pn, to, text}` | `{id}` |
//! | `POST /phone/send-batch` | `{pn, to, texts: [text]}` (at most 1,000) | `{ids}` |
//! | `GET /phone/inbox?pn=` | | `[InboxMessage]` |
//! | `GET /phone/inbox-count?pn=&prefix=` | | `{count}`: texts starting with `prefix` |
//! | `GET /phone/receipts?pn=` | | `[PhoneReceipt]` |
//! | `GET /phone/acks?pn=` | | `[PhoneAck]` |
//! | `POST /groups` | `{pn, subject, participants: [jid]}` | `{jid}` |
//! | `POST /limits` | `{pn, rate?: {messages, per_ms} \| null, restricted?}` | `{}` |
//! | `POST /faults/kick` | `{jid, kind: restart\|logged_out\|replaced\|unavailable}` | `{online}` |
//! | `POST /faults/drop` | `{jid}` | `{online}` |
//! | `POST /faults/delay` | `{jid, ms}` | `{}` |
//! | `POST /faults/reorder` | `{jid, count}` | `{}` |
//! | `POST /faults/refuse-logins` | `{ms, reason?}` | `{}` |
//! | `POST /faults/clear` | | `{}` |
//! | `POST /restart` | `{downtime_ms?}` | `{}` |

use std::convert::Infallible;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::SimError;
use crate::config::RateLimit;
use crate::control::{Inner, SimHandle};
use crate::faults::Kick;
use crate::media::{MAX_UPLOAD, percent_decode};
use crate::state::Shared;

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(respond(
            413,
            "application/json",
            br#"{"error":"body too large or unreadable"}"#.to_vec(),
        )),
    }
}

/// Serves the HTTPS media endpoint.
pub(crate) fn serve_media(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: TlsAcceptor,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(stream) = tls.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req| media_request(shared.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn media_request(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().as_str().to_owned();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let body = match read_body(req, MAX_UPLOAD + 1).await {
        Ok(body) => body,
        Err(response) => return Ok(response),
    };
    let answer = shared.lock().media_http(&method, &target, &body);
    Ok(respond(answer.status, answer.content_type, answer.body))
}

/// Serves the JSON control API.
pub(crate) fn serve_control(inner: Weak<Inner>, listener: TcpListener) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let inner = inner.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| control_request(inner.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    })
}

/// Why a control request failed, with its HTTP status.
struct Failure(u16, String);

impl From<SimError> for Failure {
    fn from(e: SimError) -> Self {
        Self(400, e.to_string())
    }
}

impl From<crate::pairing::PairError> for Failure {
    fn from(e: crate::pairing::PairError) -> Self {
        Self(409, e.to_string())
    }
}

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str, Failure> {
    body.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| Failure(400, format!("missing string field {name:?}")))
}

fn to_value<T: serde::Serialize>(value: T) -> Result<Value, Failure> {
    serde_json::to_value(value).map_err(|e| Failure(500, e.to_string()))
}

async fn control_request(
    inner: Weak<Inner>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let Some(inner) = inner.upgrade() else {
        return Ok(respond(
            503,
            "application/json",
            br#"{"error":"simulator stopped"}"#.to_vec(),
        ));
    };
    let sim = SimHandle::from_inner(inner);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let body = match read_body(req, 1 << 20).await {
        Ok(body) => body,
        Err(response) => return Ok(response),
    };
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return Ok(respond(
                    400,
                    "application/json",
                    json!({ "error": e.to_string() }).to_string().into_bytes(),
                ));
            }
        }
    };
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Failure(400, format!("missing query parameter {name:?}")))
    };
    let result: Result<Value, Failure> = async {
        match (method.as_str(), path.as_str()) {
            ("GET", "/info") => to_value(sim.info().await),
            ("GET", "/stats") => to_value(sim.stats()),
            ("POST", "/accounts") => {
                let pn = body.get("pn").and_then(Value::as_str);
                let name = body.get("push_name").and_then(Value::as_str);
                to_value(sim.create_account(pn, name)?)
            }
            ("POST", "/scan") => {
                let jid = sim.scan(field(&body, "qr")?, field(&body, "pn")?).await?;
                Ok(json!({ "jid": jid }))
            }
            ("POST", "/pairing-code") => {
                let jid = sim
                    .enter_pairing_code(field(&body, "pn")?, field(&body, "code")?)
                    .await?;
                Ok(json!({ "jid": jid }))
            }
            ("POST", "/companions") => to_value(sim.provision_companion(field(&body, "pn")?)?),
            ("GET", "/devices") => to_value(sim.devices(&param("pn")?)?),
            ("GET", "/queue") => to_value(sim.queued_messages(&param("jid")?)?),
            ("POST", "/phone/send") => {
                let id = sim.phone_send_text(
                    field(&body, "pn")?,
                    field(&body, "to")?,
                    field(&body, "text")?,
                )?;
                Ok(json!({ "id": id }))
            }
            ("POST", "/phone/send-batch") => {
                let texts = body
                    .get("texts")
                    .and_then(Value::as_array)
                    .ok_or_else(|| Failure(400, "missing array field \"texts\"".into()))?;
                if texts.len() > 1_000 {
                    return Err(Failure(400, "at most 1000 texts per batch".into()));
                }
                let (pn, to) = (field(&body, "pn")?, field(&body, "to")?);
                let mut ids = Vec::with_capacity(texts.len());
                for t in texts {
                    let text = t
                        .as_str()
                        .ok_or_else(|| Failure(400, "texts must be strings".into()))?;
                    ids.push(sim.phone_send_text(pn, to, text)?);
                }
                Ok(json!({ "ids": ids }))
            }
            ("GET", "/phone/inbox") => to_value(sim.phone_inbox(&param("pn")?)?),
            ("GET", "/phone/inbox-count") => {
                let prefix = param("prefix").unwrap_or_default();
                let count = sim
                    .phone_inbox(&param("pn")?)?
                    .iter()
                    .filter(|m| m.text.as_deref().is_some_and(|t| t.starts_with(&prefix)))
                    .count();
                Ok(json!({ "count": count }))
            }
            ("GET", "/phone/receipts") => to_value(sim.phone_receipts(&param("pn")?)?),
            ("GET", "/phone/acks") => to_value(sim.phone_acks(&param("pn")?)?),
            ("POST", "/groups") => {
                let participants: Vec<&str> = body
                    .get("participants")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let jid = sim.create_group_as_phone(
                    field(&body, "pn")?,
                    field(&body, "subject")?,
                    &participants,
                )?;
                Ok(json!({ "jid": jid }))
            }
            ("POST", "/limits") => {
                let pn = field(&body, "pn")?;
                if let Some(rate) = body.get("rate") {
                    let limit: Option<RateLimit> = serde_json::from_value(rate.clone())
                        .map_err(|e| Failure(400, e.to_string()))?;
                    sim.set_rate_limit(pn, limit)?;
                }
                if let Some(restricted) = body.get("restricted").and_then(Value::as_bool) {
                    sim.set_restricted(pn, restricted)?;
                }
                Ok(json!({}))
            }
            ("POST", "/faults/kick") => {
                let kind: Kick =
                    serde_json::from_value(body.get("kind").cloned().unwrap_or(Value::Null))
                        .map_err(|e| Failure(400, format!("kind: {e}")))?;
                Ok(json!({ "online": sim.kick(field(&body, "jid")?, kind)? }))
            }
            ("POST", "/faults/drop") => {
                Ok(json!({ "online": sim.drop_connection(field(&body, "jid")?)? }))
            }
            ("POST", "/faults/delay") => {
                let ms = body.get("ms").and_then(Value::as_u64).unwrap_or(0);
                sim.delay_deliveries(field(&body, "jid")?, Duration::from_millis(ms))?;
                Ok(json!({}))
            }
            ("POST", "/faults/reorder") => {
                let count = body.get("count").and_then(Value::as_u64).unwrap_or(0) as usize;
                sim.reorder_deliveries(field(&body, "jid")?, count)?;
                Ok(json!({}))
            }
            ("POST", "/faults/refuse-logins") => {
                let ms = body.get("ms").and_then(Value::as_u64).unwrap_or(0);
                let reason = body.get("reason").and_then(Value::as_u64).unwrap_or(503) as u16;
                sim.refuse_logins(Duration::from_millis(ms), reason);
                Ok(json!({}))
            }
            ("POST", "/faults/clear") => {
                sim.clear_faults();
                Ok(json!({}))
            }
            ("POST", "/restart") => {
                let ms = body.get("downtime_ms").and_then(Value::as_u64).unwrap_or(0);
                sim.restart(Duration::from_millis(ms)).await?;
                Ok(json!({}))
            }
            _ => Err(Failure(404, format!("no route {method} {path}"))),
        }
    }
    .await;
    Ok(match result {
        Ok(value) => respond(200, "application/json", value.to_string().into_bytes()),
        Err(Failure(status, error)) => respond(
            status,
            "application/json",
            json!({ "error": error }).to_string().into_bytes(),
        ),
    })
}
