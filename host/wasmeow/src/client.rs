//! A minimal HTTP/1.1 client for the CLI's admin commands (`wasmeow session …`, `wasmeow plugin
//! list|reload`): they talk to a running host's admin API on its (loopback) address.
//!
//! Contract: one request per connection (`Connection: close`), JSON bodies, the bearer token from
//! the configured environment variable; responses with `Content-Length`, chunked encoding or
//! read-to-close bodies are understood. A non-2xx answer becomes an error carrying the API's own
//! error message. Responses are capped at 16 MiB.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const MAX_RESPONSE: usize = 16 << 20;

/// Where the admin API is and how to authenticate.
#[derive(Debug, Clone)]
pub struct AdminClient {
    /// The API's address.
    pub addr: SocketAddr,
    /// The bearer token.
    pub token: String,
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl AdminClient {
    /// Sends one request; `body` is JSON when given.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let resp = self.raw(method, path, body).await?;
        let json: serde_json::Value = if resp.body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&resp.body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&resp.body).into_owned())
            })
        };
        if !(200..300).contains(&resp.status) {
            let msg = json
                .get("error")
                .and_then(|e| e.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| json.to_string());
            bail!("the admin API answered {}: {msg}", resp.status);
        }
        Ok(json)
    }

    /// Sends one request and returns the raw response.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response> {
        let fut = async {
            let mut stream = tokio::net::TcpStream::connect(self.addr).await.with_context(|| {
                format!(
                    "cannot reach the admin API at {} (is `wasmeow run` running with an [admin] section?)",
                    self.addr
                )
            })?;
            let payload = body.map(|b| b.to_string()).unwrap_or_default();
            let mut req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\nAccept: application/json\r\n",
                self.addr, self.token
            );
            if body.is_some() {
                req.push_str(&format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    payload.len()
                ));
            }
            req.push_str("\r\n");
            req.push_str(&payload);
            stream.write_all(req.as_bytes()).await?;
            let mut buf = Vec::new();
            stream
                .take(MAX_RESPONSE as u64 + 1)
                .read_to_end(&mut buf)
                .await?;
            if buf.len() > MAX_RESPONSE {
                bail!("the admin API's response is larger than 16 MiB");
            }
            parse_response(&buf)
        };
        tokio::time::timeout(Duration::from_secs(60), fut)
            .await
            .context("the admin API did not answer within 60 s")?
    }
}

fn parse_response(buf: &[u8]) -> Result<Response> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response: no end of headers")?;
    let head = std::str::from_utf8(&buf[..end]).context("malformed HTTP response headers")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("malformed HTTP status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = v.parse::<usize>().ok();
            }
        }
    }
    let rest = &buf[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .context("HTTP response shorter than its Content-Length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("malformed chunked body")?;
        let size_text = std::str::from_utf8(&data[..line_end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("malformed chunk size")?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).context("truncated chunk")?);
        data = data.get(size + 2..).context("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_chunked_and_close_delimited() {
        let r = parse_response(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}junk").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
        let r = parse_response(b"HTTP/1.1 404 Not Found\r\n\r\nnope").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"nope"[..]));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab").is_err());
        assert!(parse_response(b"garbage").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
    }
}
