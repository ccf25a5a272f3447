//! The REST handlers of the admin API: each validates its input, makes one [`Control`] call
//! and turns the answer into JSON (or PNG / Prometheus text).
//!
//! Contract: handlers never panic on input; malformed input is a 400 naming the field and
//! reaches the runtime not at all; runtime refusals keep their [`ControlError`] status. Bodies
//! are JSON (a `Content-Type` other than `application/json` is a 415; a missing one is accepted
//! for curl's sake) and limited by the router's body limit (413 beyond it).
//!
//! [`Control`]: crate::control::Control
//! [`ControlError`]: crate::control::ControlError

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::validate;
use crate::control::{
    CampaignCommand, CampaignStatus, NewSession, PluginInfo, Sent, SessionStatus,
};
use crate::qr;

/// A JSON request body whose failures are [`ApiError`]s (413, 415, 400 naming the field).
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default();
            let mime = ct.split(';').next().unwrap_or_default().trim();
            if !mime.eq_ignore_ascii_case("application/json") {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "the body must be application/json",
                ));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::TooLarge, "the request body is too large")
            } else {
                ApiError::invalid("body", e.body_text())
            }
        })?;
        // Structs also deserialize from arrays; the API takes JSON objects only.
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid("body", e))?;
        if !value.is_object() {
            return Err(ApiError::invalid("body", "must be a JSON object"));
        }
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| ApiError::invalid("body", e))
    }
}

/// The `{name}` path segment, checked with [`validate::name`]; a segment that is not valid
/// UTF-8 after percent-decoding is a 400 naming `name` too.
#[derive(Debug)]
pub(crate) struct Name(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Name {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid("name", e.body_text()))?;
        validate::name("name", &name)?;
        Ok(Name(name))
    }
}

type ApiResult<T> = Result<T, ApiError>;

pub(crate) async fn list_sessions(State(st): State<AppState>) -> Json<Vec<SessionStatus>> {
    Json(st.ctl.sessions())
}

pub(crate) async fn create_session(
    State(st): State<AppState>,
    JsonBody(spec): JsonBody<NewSession>,
) -> ApiResult<Response> {
    validate::new_session(&spec)?;
    let status = st.ctl.create_session(spec).await?;
    let mut resp = (StatusCode::CREATED, Json(&status)).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/sessions/{}", status.name)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

fn find(st: &AppState, name: &str) -> ApiResult<SessionStatus> {
    st.ctl
        .session(name)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("session {name:?} not found")))
}

pub(crate) async fn get_session(
    State(st): State<AppState>,
    Name(name): Name,
) -> ApiResult<Json<SessionStatus>> {
    find(&st, &name).map(Json)
}

/// `?logout=true|false` on `DELETE /v1/sessions/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoveParams {
    #[serde(default)]
    logout: bool,
}

pub(crate) async fn remove_session(
    State(st): State<AppState>,
    Name(name): Name,
    params: Result<Query<RemoveParams>, QueryRejection>,
) -> ApiResult<StatusCode> {
    let Query(params) = params.map_err(|e| ApiError::invalid("logout", e.body_text()))?;
    st.ctl.remove_session(&name, params.logout).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn logout(State(st): State<AppState>, Name(name): Name) -> ApiResult<StatusCode> {
    st.ctl.logout(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /v1/sessions/{name}/pair-code`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PairCodeRequest {
    phone: String,
}

/// Answer of `POST /v1/sessions/{name}/pair-code`.
#[derive(Debug, Serialize)]
pub(crate) struct PairCodeResponse {
    code: String,
}

pub(crate) async fn pair_code(
    State(st): State<AppState>,
    Name(name): Name,
    JsonBody(req): JsonBody<PairCodeRequest>,
) -> ApiResult<Json<PairCodeResponse>> {
    validate::phone(&req.phone)?;
    let code = st.ctl.pair_code(&name, &req.phone).await?;
    Ok(Json(PairCodeResponse { code }))
}

fn current_qr(st: &AppState, name: &str) -> ApiResult<String> {
    let s = find(st, name)?;
    s.qr.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NoQr,
            format!(
                "session {name:?} has no QR code to scan (state: {})",
                s.state.name()
            ),
        )
    })
}

fn render_error(e: qr::QrError) -> ApiError {
    ApiError::new(ErrorCode::Internal, e.to_string())
}

pub(crate) async fn qr_png(State(st): State<AppState>, Name(name): Name) -> ApiResult<Response> {
    let code = current_qr(&st, &name)?;
    let png = qr::qr_png(&code).map_err(render_error)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        png,
    )
        .into_response())
}

/// Answer of `GET /v1/sessions/{name}/qr`.
#[derive(Debug, Serialize)]
pub(crate) struct QrText {
    code: String,
    ascii: String,
}

pub(crate) async fn qr_text(State(st): State<AppState>, Name(name): Name) -> ApiResult<Response> {
    let code = current_qr(&st, &name)?;
    let ascii = qr::try_qr_terminal(&code).map_err(render_error)?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(QrText { code, ascii }),
    )
        .into_response())
}

/// Body of `POST /v1/sessions/{name}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendRequest {
    chat: String,
    text: String,
}

pub(crate) async fn send_message(
    State(st): State<AppState>,
    Name(name): Name,
    JsonBody(req): JsonBody<SendRequest>,
) -> ApiResult<Json<Sent>> {
    validate::chat(&req.chat)?;
    validate::text(&req.text)?;
    Ok(Json(st.ctl.send_text(&name, &req.chat, &req.text).await?))
}

pub(crate) async fn list_plugins(State(st): State<AppState>) -> Json<Vec<PluginInfo>> {
    Json(st.ctl.plugins())
}

pub(crate) async fn reload_plugin(
    State(st): State<AppState>,
    Name(name): Name,
) -> ApiResult<Json<PluginInfo>> {
    Ok(Json(st.ctl.reload_plugin(&name).await?))
}

pub(crate) async fn list_campaigns(State(st): State<AppState>) -> Json<Vec<CampaignStatus>> {
    Json(st.ctl.campaigns().await)
}

async fn campaign_command(
    st: AppState,
    name: String,
    cmd: CampaignCommand,
) -> ApiResult<Json<CampaignStatus>> {
    Ok(Json(st.ctl.campaign(&name, cmd).await?))
}

pub(crate) async fn campaign_run(
    State(st): State<AppState>,
    Name(name): Name,
) -> ApiResult<Json<CampaignStatus>> {
    campaign_command(st, name, CampaignCommand::Run).await
}

pub(crate) async fn campaign_pause(
    State(st): State<AppState>,
    Name(name): Name,
) -> ApiResult<Json<CampaignStatus>> {
    campaign_command(st, name, CampaignCommand::Pause).await
}

pub(crate) async fn campaign_resume(
    State(st): State<AppState>,
    Name(name): Name,
) -> ApiResult<Json<CampaignStatus>> {
    campaign_command(st, name, CampaignCommand::Resume).await
}

pub(crate) async fn campaign_cancel(
    State(st): State<AppState>,
    Name(name): Name,
) -> ApiResult<Json<CampaignStatus>> {
    campaign_command(st, name, CampaignCommand::Cancel).await
}

pub(crate) async fn metrics(State(st): State<AppState>) -> Response {
    let mut text = st.ctl.metrics();
    if let Some(w) = &st.opts.webhook_stats {
        text.push_str(&crate::runtime::metrics::render_webhooks(&w.sample()));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub(crate) async fn readyz(State(st): State<AppState>) -> Response {
    if st.ctl.ready() {
        Json(serde_json::json!({ "ready": true })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "ready": false })),
        )
            .into_response()
    }
}

pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document().to_string(),
    )
        .into_response()
}

pub(crate) async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src blob: data:; connect-src 'self'",
            ),
        ],
        Html(super::page::HTML),
    )
        .into_response()
}

pub(crate) async fn no_route() -> ApiError {
    ApiError::new(ErrorCode::NoRoute, "no such route")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    )
}
