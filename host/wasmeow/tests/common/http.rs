//! A minimal HTTP/1.1 client over hyper for the tests (one connection per request), and an
//! SSE reader.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error body with `code`; returns its message.
    pub fn expect_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text());
        let j = self.json();
        assert_eq!(j["code"], code, "body: {j}");
        j["error"].as_str().expect("error message").to_owned()
    }
}

/// A request builder.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub token: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub fn req(method: Method, path: &str) -> Req {
    Req {
        method,
        path: path.into(),
        token: None,
        headers: Vec::new(),
        body: Vec::new(),
    }
}

impl Req {
    pub fn token(mut self, t: &str) -> Self {
        self.token = Some(t.into());
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn json(mut self, v: &serde_json::Value) -> Self {
        self.body = serde_json::to_vec(v).unwrap();
        self.header("content-type", "application/json")
    }

    pub fn raw(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    fn build(self, addr: SocketAddr) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(self.method)
            .uri(self.path)
            .header("host", addr.to_string());
        if let Some(t) = self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(Bytes::from(self.body))).unwrap()
    }

    /// Sends and reads the whole response (10 s limit).
    pub async fn send(self, addr: SocketAddr) -> Resp {
        self.send_within(addr, Duration::from_secs(10)).await
    }

    /// Sends and reads the whole response within `limit`.
    pub async fn send_within(self, addr: SocketAddr, limit: Duration) -> Resp {
        tokio::time::timeout(limit, async move {
            let resp = self.open(addr).await;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            Resp {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        })
        .await
        .expect("request timed out")
    }

    /// Sends and returns the response with its body still streaming.
    pub async fn open(self, addr: SocketAddr) -> hyper::Response<Incoming> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender.send_request(self.build(addr)).await.unwrap()
    }
}

/// One parsed server-sent event, or a comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    Event { event: String, data: String },
    Comment(String),
}

/// Reads server-sent events from a streaming body.
pub struct SseReader {
    body: Incoming,
    buf: String,
}

impl SseReader {
    pub fn new(resp: hyper::Response<Incoming>) -> Self {
        assert_eq!(resp.status(), StatusCode::OK);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Self {
            body: resp.into_body(),
            buf: String::new(),
        }
    }

    /// The next block (event or comment); `None` at the end of the stream. Panics after 10 s.
    pub async fn next(&mut self) -> Option<Sse> {
        tokio::time::timeout(Duration::from_secs(10), self.next_inner())
            .await
            .expect("no SSE block within 10 s")
    }

    async fn next_inner(&mut self) -> Option<Sse> {
        loop {
            if let Some(cut) = self.buf.find("\n\n") {
                let block: String = self.buf[..cut].to_owned();
                self.buf.drain(..cut + 2);
                let mut event = String::from("message");
                let mut data = Vec::new();
                let mut comment = None;
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        comment = Some(c.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                    }
                }
                if data.is_empty() {
                    if let Some(c) = comment {
                        return Some(Sse::Comment(c));
                    }
                    continue;
                }
                return Some(Sse::Event {
                    event,
                    data: data.join("\n"),
                });
            }
            let frame = self.body.frame().await?.ok()?;
            if let Ok(d) = frame.into_data() {
                self.buf.push_str(&String::from_utf8_lossy(&d));
            }
        }
    }

    /// The next real event, skipping keep-alive comments.
    pub async fn next_event(&mut self) -> Option<(String, serde_json::Value)> {
        loop {
            match self.next().await? {
                Sse::Comment(_) => continue,
                Sse::Event { event, data } => {
                    return Some((event, serde_json::from_str(&data).unwrap()));
                }
            }
        }
    }
}
