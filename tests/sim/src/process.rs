//! The simulator as a separate process, for tests that must not count its memory or CPU as their
//! own (the idle-memory acceptance tests): [`SimProcess::spawn`] starts the `wasmeow-sim` binary,
//! reads the info line it prints, and [`SimProcess::call`] speaks its JSON control API.
//!
//! Contract: the process is killed and reaped when the [`SimProcess`] is dropped; the control
//! calls go to the loopback address the binary printed, one HTTP/1.1 request per connection,
//! and anything but `200` is an error naming the call and the answer.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A running `wasmeow-sim` binary.
#[derive(Debug)]
pub struct SimProcess {
    child: Child,
    /// The control API's base URL (`http://127.0.0.1:port`).
    pub control_url: String,
    /// The `ws://` URL clients connect to.
    pub ws_url: String,
    /// The Noise certificate root public key clients must trust.
    pub root: [u8; 32],
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SimProcess {
    /// The simulator binary: `$WASMEOW_SIM_BIN`, else `<target>/release/wasmeow-sim` of the
    /// target directory the calling test binary (`<target>/<profile>/deps/…`) was built in.
    pub fn binary() -> PathBuf {
        if let Some(p) = std::env::var_os("WASMEOW_SIM_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().unwrap_or_default();
        exe.ancestors()
            .nth(3)
            .map(|target| target.join("release").join("wasmeow-sim"))
            .unwrap_or_else(|| PathBuf::from("wasmeow-sim"))
    }

    /// Starts the binary with `args` (the ws:// listener and the control API are always on;
    /// wss is off) and waits for its info line.
    pub fn spawn(args: &[&str]) -> Result<Self, String> {
        let bin = Self::binary();
        if !bin.is_file() {
            return Err(format!(
                "the simulator binary {} is missing: build it first with \
                 `cargo build --release -p wasmeow-sim` (scripts/test-all.sh does), \
                 or point WASMEOW_SIM_BIN at one",
                bin.display()
            ));
        }
        let mut child = Command::new(&bin)
            .arg("--no-wss")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("reading the simulator's info line: {e}"))?;
        let info: Value =
            serde_json::from_str(&line).map_err(|e| format!("info line {line:?}: {e}"))?;
        let text = |key: &str| {
            info[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("the info line has no {key:?}: {line}"))
        };
        let root = hex::decode(text("root_public_key")?)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or("the root key is not 32 bytes of hex")?;
        Ok(Self {
            control_url: text("control_url")?,
            ws_url: text("ws_url")?,
            root,
            child,
        })
    }

    /// One JSON call to the control API (`body` `Null` sends none); the answer's JSON value.
    pub async fn call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let host = self.control_url.trim_start_matches("http://");
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let what = |e: std::io::Error| format!("{method} {path}: {e}");
        let mut tcp = tokio::net::TcpStream::connect(host).await.map_err(what)?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(request.as_bytes()).await.map_err(what)?;
        let mut response = Vec::new();
        tcp.read_to_end(&mut response).await.map_err(what)?;
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("{method} {path}: not an HTTP response"))?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("{method} {path}: {head}\n{body}"));
        }
        serde_json::from_str(body).map_err(|e| format!("{method} {path}: {e}: {body}"))
    }
}
