//! A one-connection loopback WebSocket server that runs *our* Noise server role against a real
//! client (Baileys, driven by `tests/interop/noise.test.mjs`).
//!
//! Contract: binds `127.0.0.1:0`, prints one JSON line `{"event":"listening","port",
//! "root_public_key"}` (the hex test root that signed its certificate chain), accepts one
//! WebSocket connection and reports each step as a JSON line on stdout:
//! `handshake` (the decrypted ClientPayload, summarised), `sent_node` (the encrypted
//! `<iq type=set xmlns=md><pair-device><ref>…</ref></pair-device></iq>` it sent), `received_node`
//! (each node the client sent back, decrypted and decoded), then `closed`, or `error` with the
//! stage and a message. Exits 0 after `closed`, 1 after `error`.
//!
//! Options: `--bad-issuer-serial` issues an intermediate whose issuer serial is 1 instead of 0
//! (clients must refuse it); `--ref <string>` sets the pairing ref (default: random).
//! Only loopback, one connection, 20-second read timeout; no tokio.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use rand::RngExt as _;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};
use wasmeow_proto::wa::{CertChain, ClientPayload};
use wasmeow_protocol::binary::{self, Node};
use wasmeow_protocol::frame::{Deframer, FrameEncoder};
use wasmeow_protocol::keys::KeyPair;
use wasmeow_protocol::noise::cert::sign_certificate;
use wasmeow_protocol::noise::{ChainIssuer, ServerConfig, Transport, server};

fn emit(v: Value) {
    println!("{v}");
}

fn fail(stage: &str, err: impl std::fmt::Display) -> ! {
    emit(json!({"event": "error", "stage": stage, "error": err.to_string()}));
    std::process::exit(1);
}

/// One WebSocket with our framing on top: yields whole frames, sends framed payloads.
struct Conn {
    ws: WebSocket<TcpStream>,
    deframer: Deframer,
    encoder: FrameEncoder,
}

impl Conn {
    /// The next frame, or `None` when the client closed the connection.
    fn next_frame(&mut self, stage: &str) -> Option<Vec<u8>> {
        loop {
            match self.deframer.next_frame() {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(e) => fail(stage, e),
            }
            match self.ws.read() {
                Ok(Message::Binary(data)) => self.deframer.push(&data),
                Ok(Message::Close(_))
                | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    if let Err(e) = self.deframer.finish() {
                        fail(stage, e);
                    }
                    return None;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::ConnectionReset
                        || e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    return None;
                }
                Err(e) => fail(stage, e),
            }
        }
    }

    fn send(&mut self, payload: &[u8], stage: &str) {
        let bytes = self
            .encoder
            .encode_to_vec(payload)
            .unwrap_or_else(|e| fail(stage, e));
        self.ws
            .send(Message::binary(bytes))
            .unwrap_or_else(|e| fail(stage, e));
    }
}

fn summarize(payload: &ClientPayload) -> Value {
    let ua = payload.user_agent.as_ref();
    let version = ua.and_then(|u| u.app_version.as_ref()).map(|v| {
        format!(
            "{}.{}.{}",
            v.primary.unwrap_or_default(),
            v.secondary.unwrap_or_default(),
            v.tertiary.unwrap_or_default()
        )
    });
    let reg = payload.device_pairing_data.as_ref();
    json!({
        "username": payload.username,
        "device": payload.device,
        "passive": payload.passive,
        "pull": payload.pull,
        "connect_type": payload.connect_type,
        "connect_reason": payload.connect_reason,
        "has_device_pairing_data": reg.is_some(),
        "registration": reg.map(|r| json!({
            "e_regid_len": r.e_regid.as_ref().map(|b| b.len()),
            "e_keytype": r.e_keytype.as_ref().map(hex::encode),
            "e_ident_len": r.e_ident.as_ref().map(|b| b.len()),
            "e_skey_id": r.e_skey_id.as_ref().map(hex::encode),
            "e_skey_val_len": r.e_skey_val.as_ref().map(|b| b.len()),
            "e_skey_sig_len": r.e_skey_sig.as_ref().map(|b| b.len()),
            "build_hash": r.build_hash.as_ref().map(hex::encode),
        })),
        "user_agent": ua.map(|u| json!({
            "platform": u.platform,
            "app_version": version,
            "os_version": u.os_version,
            "device": u.device,
            "locale_language": u.locale_language_iso_639_1,
            "locale_country": u.locale_country_iso_3166_1_alpha_2,
        })),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bad_issuer_serial = args.iter().any(|a| a == "--bad-issuer-serial");
    let mut rng = rand::rng();
    let pair_ref = match args.iter().position(|a| a == "--ref") {
        Some(i) => args
            .get(i + 1)
            .cloned()
            .unwrap_or_else(|| fail("args", "--ref needs a value")),
        None => format!("2@wasmeow{:016x}", rng.random::<u64>()),
    };

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_else(|e| fail("clock", e))
        .as_secs();
    let issuer = ChainIssuer::generate(&mut rng, now - 3600, now + 86_400);
    let static_key = KeyPair::generate(&mut rng);
    let mut chain = issuer.issue(&static_key.public, &mut rng);
    if bad_issuer_serial {
        let mut details = issuer.intermediate_details();
        details.issuer_serial = Some(1);
        chain = CertChain {
            intermediate: Some(sign_certificate(&details, &issuer.root, &mut rng)),
            ..chain
        };
    }
    let config = ServerConfig::new(static_key, &chain);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail("bind", e));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| fail("bind", e))
        .port();
    emit(json!({
        "event": "listening",
        "port": port,
        "root_public_key": hex::encode(issuer.root_public().0),
        "ref": pair_ref,
    }));

    let (stream, _) = listener.accept().unwrap_or_else(|e| fail("accept", e));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap_or_else(|e| fail("accept", e));
    let ws = tungstenite::accept(stream).unwrap_or_else(|e| fail("websocket", e));
    let mut conn = Conn {
        ws,
        deframer: Deframer::server(),
        encoder: FrameEncoder::server(),
    };

    // Noise XX, server role.
    let client_hello = conn
        .next_frame("client_hello")
        .unwrap_or_else(|| fail("client_hello", "connection closed"));
    let (expect_finish, server_hello) = server::Start::new(&config, &mut rng)
        .handle(&client_hello)
        .unwrap_or_else(|e| fail("client_hello", e));
    conn.send(&server_hello, "server_hello");
    let client_finish = conn
        .next_frame("client_finish")
        .unwrap_or_else(|| fail("client_finish", "connection closed"));
    let (mut transport, client_static, payload) = expect_finish
        .handle(&client_finish)
        .unwrap_or_else(|e| fail("client_finish", e));
    let payload = ClientPayload::decode(payload).unwrap_or_else(|e| fail("client_payload", e));
    let mut report = summarize(&payload);
    report["event"] = json!("handshake");
    report["client_static"] = json!(hex::encode(client_static.0));
    emit(report);

    // One encrypted node: the first QR pairing step.
    let node = Node::new("iq")
        .attr("from", "s.whatsapp.net")
        .attr("type", "set")
        .attr("id", "1")
        .attr("xmlns", "md")
        .child(
            Node::new("pair-device").child(Node::new("ref").bytes(pair_ref.as_bytes().to_vec())),
        );
    let plaintext = binary::encode(&node).unwrap_or_else(|e| fail("encode_node", e));
    send_sealed(&mut conn, &mut transport, &plaintext);
    emit(json!({"event": "sent_node", "ref": pair_ref, "plaintext": hex::encode(&plaintext)}));

    // Whatever the client says back, until it closes.
    while let Some(frame) = conn.next_frame("transport") {
        let plain = transport
            .open(&frame)
            .unwrap_or_else(|e| fail("transport", e));
        let node = binary::decode(&plain).unwrap_or_else(|e| fail("decode_node", e));
        emit(json!({
            "event": "received_node",
            "tag": node.tag.to_string(),
            "type": node.attr_str("type"),
            "id": node.attr_str("id"),
        }));
    }
    emit(json!({"event": "closed"}));
}

fn send_sealed(conn: &mut Conn, transport: &mut Transport, plaintext: &[u8]) {
    let sealed = transport
        .seal(plaintext)
        .unwrap_or_else(|e| fail("transport", e));
    conn.send(&sealed, "transport");
}
