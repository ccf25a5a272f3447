//! Bearer-token authentication for the admin API.
//!
//! Contract: a protected route runs only when the request carries `Authorization: Bearer
//! <token>` equal to the configured token (for `GET /v1/events` only, `?token=<token>` is
//! accepted too, because browsers' `EventSource` cannot set headers). The comparison hashes both
//! sides with SHA-256 and compares the digests in constant time, so neither the content nor the
//! length of the token leaks through timing. Nothing here logs the token or the request URL.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ApiError, ErrorCode};

/// Why a token was refused at startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The environment variable is not set or not UTF-8.
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The token is shorter than [`AdminAuth::MIN_LEN`] bytes.
    #[error("the admin token must be at least {min} bytes long, got {len}")]
    TooShort {
        /// The minimum.
        min: usize,
        /// What was given.
        len: usize,
    },
    /// The token contains whitespace or control characters (it would not survive a header).
    #[error("the admin token must be printable ASCII without spaces")]
    BadCharacters,
}

/// The admin API's bearer token. `Debug` never prints it.
#[derive(Clone)]
pub struct AdminAuth {
    digest: Arc<[u8; 32]>,
}

impl fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminAuth(..)")
    }
}

impl AdminAuth {
    /// The shortest token accepted.
    pub const MIN_LEN: usize = 16;

    /// Accepts `token` if it is at least [`Self::MIN_LEN`] bytes of printable ASCII.
    pub fn new(token: &str) -> Result<Self, AuthError> {
        if token.len() < Self::MIN_LEN {
            return Err(AuthError::TooShort {
                min: Self::MIN_LEN,
                len: token.len(),
            });
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AuthError::BadCharacters);
        }
        Ok(Self {
            digest: Arc::new(Sha256::digest(token.as_bytes()).into()),
        })
    }

    /// Reads the token from the environment variable `var` (`[admin] token_env` in bot.toml).
    pub fn from_env(var: &str) -> Result<Self, AuthError> {
        let token = std::env::var(var).map_err(|_| AuthError::MissingEnv(var.to_owned()))?;
        Self::new(&token)
    }

    /// Whether `candidate` is the token, compared in constant time.
    pub fn check(&self, candidate: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        d.ct_eq(&*self.digest).into()
    }
}

/// Where a route accepts the token from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Public,
    /// `Authorization: Bearer` only.
    Bearer,
    /// `Authorization: Bearer` or `?token=` (the SSE stream).
    BearerOrQuery,
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn query_token(req: &Request) -> Option<String> {
    let q = req.uri().query()?;
    q.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token").then(|| percent_decode(v))
    })
}

/// Decodes `%XX` escapes and `+` (tokens are printable ASCII, so this is all a query needs).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Middleware state: the token and where it may come from.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub(crate) auth: AdminAuth,
    pub(crate) access: Access,
}

/// Rejects the request with 401 unless it carries the token.
pub(crate) async fn require_token(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let ok = match g.access {
        Access::Public => true,
        Access::Bearer => bearer(&req).is_some_and(|t| g.auth.check(t)),
        Access::BearerOrQuery => {
            bearer(&req).is_some_and(|t| g.auth.check(t))
                || query_token(&req).is_some_and(|t| g.auth.check(&t))
        }
    };
    if ok {
        next.run(req).await
    } else {
        ApiError::new(ErrorCode::Unauthorized, "missing or wrong bearer token").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        assert!(matches!(
            AdminAuth::new("short"),
            Err(AuthError::TooShort { .. })
        ));
        assert_eq!(
            AdminAuth::new("0123456789abcdef ghij").unwrap_err(),
            AuthError::BadCharacters
        );
        let a = AdminAuth::new("0123456789abcdef").unwrap();
        assert!(a.check("0123456789abcdef"));
        assert!(!a.check("0123456789abcdeF"));
        assert!(!a.check("0123456789abcde"));
        assert!(!format!("{a:?}").contains("0123"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Bb%3d+c"), "a+b= c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%é1"), "%é1");
    }
}
