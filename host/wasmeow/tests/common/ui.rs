//! The browser check of the admin page: headless Chromium driven through chromedriver with
//! plain WebDriver JSON over HTTP on loopback.
//!
//! [`check_page_flips`] is written to run against any admin server: the fake control here, the
//! real runtime with the simulator (where `flip` is the simulated phone scanning the QR).

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper::Method;
use serde_json::{Value, json};

use super::http::req;
use super::qrdecode;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process and one WebDriver session with headless Chromium.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless Chromium session.
    pub async fn start() -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: apt-get install -y chromium chromium-driver \
                 (scripts/test-all.sh does this)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                let r = req(Method::GET, "/status").send(addr).await;
                if r.status.is_success() && r.json()["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        } } });
        let r = req(Method::POST, "/session")
            .json(&caps)
            .send_within(addr, Duration::from_secs(60))
            .await;
        assert!(r.status.is_success(), "new WebDriver session: {}", r.text());
        let session = r.json()["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Browser {
            driver,
            addr,
            session,
            _profile: profile,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut r = req(method, &format!("/session/{}{path}", self.session));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send_within(self.addr, Duration::from_secs(30)).await;
        assert!(
            resp.status.is_success(),
            "WebDriver {path}: {}",
            resp.text()
        );
        resp.json()["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs a synchronous script; `args` are `arguments[..]`.
    pub async fn exec(&self, script: &str, args: Value) -> Value {
        self.call(
            Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Runs an asynchronous script; it calls `arguments[arguments.length - 1]` with the result.
    pub async fn exec_async(&self, script: &str, args: Value) -> Value {
        self.call(
            Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// The WebDriver element reference for a CSS selector, if present.
    pub async fn find(&self, css: &str) -> Option<String> {
        let r = req(Method::POST, &format!("/session/{}/element", self.session))
            .json(&json!({ "using": "css selector", "value": css }))
            .send_within(self.addr, Duration::from_secs(30))
            .await;
        if !r.status.is_success() {
            return None;
        }
        r.json()["value"]
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }

    /// Clicks the element `css` selects, the way a user would (WebDriver element click: it
    /// must be displayed and enabled).
    pub async fn click(&self, css: &str) {
        let el = self
            .find(css)
            .await
            .unwrap_or_else(|| panic!("no element {css}"));
        self.call(
            Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Clears the input `css` selects and types `text` into it (WebDriver send keys).
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .find(css)
            .await
            .unwrap_or_else(|| panic!("no element {css}"));
        self.call(
            Method::POST,
            &format!("/element/{el}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Saves a PNG screenshot of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let b64 = self.call(Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("base64 screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }

    pub async fn displayed(&self, element: &str) -> bool {
        self.call(Method::GET, &format!("/element/{element}/displayed"), None)
            .await
            .as_bool()
            .unwrap_or(false)
    }

    /// Polls `script` (synchronous, returning a value) until `ok` accepts it, or panics with
    /// `what` and the last value after `limit`.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        script: &str,
        args: Value,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.exec(script, args.clone()).await;
            if ok(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}; last: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the WebDriver session and chromedriver.
    pub async fn quit(mut self) {
        let _ = req(Method::DELETE, &format!("/session/{}", self.session))
            .send_within(self.addr, Duration::from_secs(30))
            .await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // `Drop` sees the exited chromedriver and does nothing more.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // After a panic `quit` did not run: end the WebDriver session (chromedriver then
        // closes Chromium, which would outlive a killed chromedriver), then the chromedriver
        // this struct started. Blocking is fine here; this only runs in tests.
        if matches!(self.driver.try_wait(), Ok(None)) {
            delete_session_blocking(self.addr, &self.session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn delete_session_blocking(addr: SocketAddr, session: &str) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_ok() {
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
}

fn addr_of(base_url: &str) -> SocketAddr {
    base_url
        .strip_prefix("http://")
        .and_then(|r| r.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("base_url must be http://IP:port, got {base_url}"))
}

/// What [`check_page_flips`] saw.
#[derive(Debug)]
pub struct PageFlip {
    /// The QR string the page's image decoded to (equal to the API's `qr`).
    pub qr: String,
    /// The image's natural size in pixels.
    pub image_size: (u64, u64),
    /// From the end of `flip` to the page showing "connected".
    pub flip_to_connected: Duration,
}

const STATE_SCRIPT: &str = r#"
const s = arguments[0];
const li = document.getElementById("session-" + s);
const st = document.getElementById("state-" + s);
const img = document.getElementById("qr-" + s);
const live = document.getElementById("live");
return {
  state: li ? li.dataset.state : null,
  text: st ? st.textContent : null,
  img: img ? { complete: img.complete, w: img.naturalWidth, h: img.naturalHeight,
               src: img.src } : null,
  live: live ? live.dataset.live : null,
  href: location.href,
};
"#;

// Draws the decoded image onto a canvas at its natural size and returns it as PNG (base64):
// the pixels the page shows, whatever the image's source.
const IMG_PIXELS_SCRIPT: &str = r#"
const img = document.getElementById("qr-" + arguments[0]);
const c = document.createElement("canvas");
c.width = img.naturalWidth;
c.height = img.naturalHeight;
c.getContext("2d").drawImage(img, 0, 0);
return c.toDataURL("image/png").replace(/^data:image\/png;base64,/, "");
"#;

/// Opens the admin page at `base_url` with `token`, checks that session `session` (which must
/// be in state `qr`) shows a QR image that decodes to the API's current QR string, runs
/// `flip` (which must make the session connect and announce it), and checks that the page
/// shows "connected" and drops the QR within 10 s without a reload. Panics on any failure.
pub async fn check_page_flips<F, Fut>(
    base_url: &str,
    token: &str,
    session: &str,
    flip: F,
) -> PageFlip
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let api = addr_of(base_url);
    let status = req(Method::GET, &format!("/v1/sessions/{session}"))
        .token(token)
        .send(api)
        .await;
    assert!(
        status.status.is_success(),
        "session {session}: {}",
        status.text()
    );
    let status = status.json();
    assert_eq!(
        status["state"], "qr",
        "session {session} must be waiting for a scan: {status}"
    );
    let want_qr = status["qr"].as_str().expect("a QR string").to_owned();

    let browser = Browser::start().await;
    let token_enc: String = token
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    browser
        .goto(&format!(
            "{}/#token={token_enc}",
            base_url.trim_end_matches('/')
        ))
        .await;

    let args = json!([session]);
    let seen = browser
        .wait_for(
            "the QR image and the live event stream",
            Duration::from_secs(15),
            STATE_SCRIPT,
            args.clone(),
            |v| {
                v["state"] == "qr"
                    && v["live"] == "true"
                    && v["img"]["complete"] == true
                    && v["img"]["w"].as_u64().unwrap_or(0) > 0
            },
        )
        .await;
    assert!(
        !seen["href"].as_str().unwrap_or_default().contains(token),
        "the token must leave the address bar: {}",
        seen["href"]
    );
    assert!(
        seen["img"]["src"]
            .as_str()
            .unwrap_or_default()
            .starts_with("blob:"),
        "the QR is a blob URL: {}",
        seen["img"]["src"]
    );
    let el = browser
        .find(&format!("#qr-{session}"))
        .await
        .expect("the QR <img> element");
    assert!(browser.displayed(&el).await, "the QR <img> is displayed");

    // The image the page shows must be a QR of the API's code.
    let b64 = browser.exec(IMG_PIXELS_SCRIPT, args.clone()).await;
    let b64 = b64.as_str().expect("base64 image");
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    let (w, h, decoded) = qrdecode::decode_png(&png);
    if decoded != want_qr {
        // A real runtime rotates its QR; the page must then show the current one.
        let now = req(Method::GET, &format!("/v1/sessions/{session}"))
            .token(token)
            .send(api)
            .await
            .json();
        assert_eq!(
            now["qr"].as_str(),
            Some(decoded.as_str()),
            "the page's QR decodes to the session's code (first {want_qr:?})"
        );
    }
    let image_size = (
        seen["img"]["w"].as_u64().unwrap_or(0),
        seen["img"]["h"].as_u64().unwrap_or(0),
    );
    assert_eq!(image_size, (u64::from(w), u64::from(h)));

    // WASMEOW_UI_SCREENSHOTS=<dir> keeps a screenshot before and after the flip.
    let shots = std::env::var_os("WASMEOW_UI_SCREENSHOTS").map(std::path::PathBuf::from);
    if let Some(dir) = &shots {
        browser
            .screenshot(&dir.join(format!("{session}-qr.png")))
            .await;
    }
    flip().await;
    let flipped = Instant::now();
    browser
        .wait_for(
            "the page to show the session connected",
            Duration::from_secs(10),
            STATE_SCRIPT,
            args,
            |v| {
                v["state"] == "connected"
                    && v["text"].as_str().is_some_and(|t| t.contains("connected"))
                    && v["img"].is_null()
            },
        )
        .await;
    let flip_to_connected = flipped.elapsed();
    if let Some(dir) = &shots {
        browser
            .screenshot(&dir.join(format!("{session}-connected.png")))
            .await;
    }
    browser.quit().await;
    PageFlip {
        qr: decoded,
        image_size,
        flip_to_connected,
    }
}
