//! The admin API's error responses: every refusal is `{"error": "<message>", "code": "<code>"}`
//! with a status that depends only on the code.
//!
//! Contract: [`ControlError`] variants map to statuses as their doc comments say (`NotFound` 404,
//! `Conflict` 409, `Invalid` 400, `Overloaded` and `Unavailable` 503, `Internal` 500); the HTTP
//! layer adds its own codes (`unauthorized` 401, `too_large` 413, `no_qr` 404, `no_route` 404,
//! `method_not_allowed` 405, `unsupported_media_type` 415). Messages never contain the token.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::control::ControlError;

/// A machine-readable error class, the `code` field of an error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed; the message names the field.
    Invalid,
    /// 401: no or wrong bearer token.
    Unauthorized,
    /// 404: no such session or plugin.
    NotFound,
    /// 404: the session exists but shows no QR code (connected, or not yet connecting).
    NoQr,
    /// 404: no route for this path.
    NoRoute,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 409: the name is taken.
    Conflict,
    /// 413: the body is larger than the limit.
    TooLarge,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 500: anything else.
    Internal,
    /// 503: admission control refused a new session.
    Overloaded,
    /// 503: the session is not connected, or the operation timed out.
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status that goes with this code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::Invalid => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NotFound | ErrorCode::NoQr | ErrorCode::NoRoute => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Overloaded | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The class (decides the status).
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error of class `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A 400 naming the offending field.
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Invalid, format!("{field}: {problem}"))
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let code = match &e {
            ControlError::NotFound(_) => ErrorCode::NotFound,
            ControlError::Conflict(_) => ErrorCode::Conflict,
            ControlError::Invalid(_) => ErrorCode::Invalid,
            ControlError::Overloaded(_) => ErrorCode::Overloaded,
            ControlError::Unavailable(_) => ErrorCode::Unavailable,
            ControlError::Internal(_) => ErrorCode::Internal,
        };
        Self::new(code, e.to_string())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    code: ErrorCode,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.code.status(),
            Json(Body {
                error: &self.message,
                code: self.code,
            }),
        )
            .into_response();
        if self.code == ErrorCode::Unauthorized {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"wasmeow\""),
            );
        }
        resp
    }
}
