//! A minimal WhatsApp client for the simulator's tests, built directly on `wasmeow-protocol`
//! (frames, Noise client role with certificate verification, binary nodes, Signal) and nothing
//! else: no session runtime. It logs in as a pre-provisioned companion or registers for pairing,
//! sends stanzas and reads them back.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use prost::Message as _;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wasmeow_proto::wa::{ClientPayload, DeviceProps, client_payload};
use wasmeow_protocol::binary::{self, Jid, Node};
use wasmeow_protocol::frame::{Deframer, FrameEncoder};
use wasmeow_protocol::keys::{KeyPair, PrivateKey, PublicKey};
use wasmeow_protocol::noise::{CertVerifier, Transport, client};
use wasmeow_protocol::signal::{LocalIdentity, SignedPreKey};
use wasmeow_protocol::xeddsa;
use wasmeow_sim::{CompanionCredentials, Sim, SimConfig, SimHandle};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn rng() -> StdRng {
    StdRng::seed_from_u64(rand::random())
}

/// A connected, handshaken client.
pub struct Client {
    ws: Ws,
    deframer: Deframer,
    encoder: FrameEncoder,
    transport: Transport,
    next_id: u64,
    /// Stanzas read while waiting for something else.
    pub backlog: Vec<Node>,
}

/// Why reading failed.
#[derive(Debug)]
pub enum ReadError {
    Timeout,
    Closed,
    Other(String),
}

fn web_payload() -> ClientPayload {
    ClientPayload {
        user_agent: Some(client_payload::UserAgent {
            platform: Some(client_payload::user_agent::Platform::Web as i32),
            app_version: Some(client_payload::user_agent::AppVersion {
                primary: Some(2),
                secondary: Some(3000),
                tertiary: Some(1_045_649_367),
                ..Default::default()
            }),
            mcc: Some("000".into()),
            mnc: Some("000".into()),
            os_version: Some("0.1".into()),
            device: Some("Desktop".into()),
            os_build_number: Some("0.1".into()),
            ..Default::default()
        }),
        connect_type: Some(client_payload::ConnectType::WifiUnknown as i32),
        connect_reason: Some(client_payload::ConnectReason::UserActivated as i32),
        ..Default::default()
    }
}

/// The login payload of a paired companion.
pub fn login_payload(pn: &str, device: u16) -> ClientPayload {
    ClientPayload {
        username: Some(pn.parse().unwrap()),
        device: Some(u32::from(device)),
        passive: Some(true),
        pull: Some(true),
        ..web_payload()
    }
}

/// A fresh companion's registration keys.
pub struct Registration {
    pub noise: KeyPair,
    pub identity: LocalIdentity,
    pub signed_prekey: SignedPreKey,
    pub adv_secret: [u8; 32],
}

impl Registration {
    pub fn generate() -> Self {
        let mut rng = rng();
        let identity = LocalIdentity::generate(&mut rng);
        let signed_prekey = SignedPreKey::generate(&identity.key_pair, 1, &mut rng);
        Self {
            noise: KeyPair::generate(&mut rng),
            identity,
            signed_prekey,
            adv_secret: rand::random(),
        }
    }

    pub fn payload(&self) -> ClientPayload {
        let props = DeviceProps {
            os: Some("sim-test".into()),
            ..Default::default()
        };
        ClientPayload {
            passive: Some(false),
            pull: Some(false),
            device_pairing_data: Some(client_payload::DevicePairingRegistrationData {
                e_regid: Some(self.identity.registration_id.to_be_bytes().to_vec().into()),
                e_keytype: Some(vec![5].into()),
                e_ident: Some(self.identity.key_pair.public.0.to_vec().into()),
                e_skey_id: Some(self.signed_prekey.id.to_be_bytes()[1..].to_vec().into()),
                e_skey_val: Some(self.signed_prekey.key_pair.public.0.to_vec().into()),
                e_skey_sig: Some(self.signed_prekey.signature.to_vec().into()),
                build_hash: Some(vec![0; 16].into()),
                device_props: Some(props.encode_to_vec().into()),
            }),
            ..web_payload()
        }
    }

    /// The QR text a client shows for `reference`.
    pub fn qr(&self, reference: &str) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        format!(
            "https://wa.me/settings/linked_devices#{reference},{},{},{},9",
            b64.encode(self.noise.public.0),
            b64.encode(self.identity.key_pair.public.0),
            b64.encode(self.adv_secret)
        )
    }
}

impl Client {
    /// Connects and runs the Noise handshake, sending `payload`. The certificate chain is
    /// verified against `root`.
    pub async fn connect(
        url: &str,
        root: [u8; 32],
        noise: KeyPair,
        payload: &ClientPayload,
    ) -> Result<Self, String> {
        // Small buffers: the scale test holds thousands of these.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| e.to_string())?;
        let mut encoder = FrameEncoder::client();
        let mut deframer = Deframer::client();
        let mut rng = rng();
        let (expect, hello) = client::Start::new(noise, &mut rng).client_hello();
        ws.send(Message::Binary(
            encoder.encode_to_vec(&hello).unwrap().into(),
        ))
        .await
        .map_err(|e| e.to_string())?;
        let server_hello = read_frame(&mut ws, &mut deframer).await?;
        let verifier = CertVerifier::new(PublicKey(root));
        let (transport, finish, _proof) = expect
            .handle(&server_hello, &verifier, now(), &payload.encode_to_vec())
            .map_err(|e| e.to_string())?;
        ws.send(Message::Binary(
            encoder.encode_to_vec(&finish).unwrap().into(),
        ))
        .await
        .map_err(|e| e.to_string())?;
        Ok(Self {
            ws,
            deframer,
            encoder,
            transport,
            next_id: 1,
            backlog: Vec::new(),
        })
    }

    /// Logs in as a provisioned companion and waits for `<success>` (or returns the failure).
    pub async fn login(
        sim: &SimHandle,
        creds: &CompanionCredentials,
    ) -> Result<(Self, Node), Node> {
        let url = sim.ws_url().await;
        let noise = KeyPair::from_private(SimHandle::private_key(&creds.noise_private).unwrap());
        let mut client = Self::connect(
            &url,
            sim.root_public_key(),
            noise,
            &login_payload(&creds.pn, creds.device),
        )
        .await
        .expect("handshake");
        let first = client
            .recv_timeout(Duration::from_secs(10))
            .await
            .expect("first stanza");
        if first.tag == "success" {
            Ok((client, first))
        } else {
            Err(first)
        }
    }

    pub fn id(&mut self) -> String {
        self.next_id += 1;
        format!("t.{}", self.next_id)
    }

    pub async fn send(&mut self, node: &Node) {
        let plain = binary::encode(node).unwrap();
        let sealed = self.transport.seal(&plain).unwrap();
        let wire = self.encoder.encode_to_vec(&sealed).unwrap();
        self.ws.send(Message::Binary(wire.into())).await.unwrap();
    }

    /// Reads the next stanza (backlog first).
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Node, ReadError> {
        if !self.backlog.is_empty() {
            return Ok(self.backlog.remove(0));
        }
        loop {
            if let Some(frame) = self
                .deframer
                .next_frame()
                .map_err(|e| ReadError::Other(e.to_string()))?
            {
                let plain = self
                    .transport
                    .open(&frame)
                    .map_err(|e| ReadError::Other(e.to_string()))?;
                return binary::decode(&plain).map_err(|e| ReadError::Other(e.to_string()));
            }
            match tokio::time::timeout(timeout, self.ws.next()).await {
                Err(_) => return Err(ReadError::Timeout),
                Ok(None) | Ok(Some(Ok(Message::Close(_)))) => return Err(ReadError::Closed),
                Ok(Some(Ok(Message::Binary(b)))) => self.deframer.push(&b),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_))) => return Err(ReadError::Closed),
            }
        }
    }

    /// Reads until a stanza matches, keeping the others in the backlog.
    pub async fn recv_matching(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Node) -> bool,
    ) -> Result<Node, ReadError> {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return Ok(self.backlog.remove(i));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut skipped = Vec::new();
        let result = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let saved = std::mem::take(&mut self.backlog);
            let r = self.recv_timeout(left).await;
            self.backlog = saved;
            match r {
                Ok(node) if pred(&node) => break Ok(node),
                Ok(node) => skipped.push(node),
                Err(e) => break Err(e),
            }
        };
        self.backlog.extend(skipped);
        result
    }

    /// Sends an IQ and waits for its answer.
    pub async fn iq(&mut self, mut node: Node) -> Node {
        let id = self.id();
        node.set_attr("id", id.clone());
        self.send(&node).await;
        self.recv_matching(Duration::from_secs(10), |n| {
            n.tag == "iq" && n.attr_str("id") == Some(&id)
        })
        .await
        .expect("iq answer")
    }

    /// Waits until the socket closes; returns the stanzas received before that.
    pub async fn until_closed(&mut self, timeout: Duration) -> Result<Vec<Node>, ReadError> {
        let mut seen = std::mem::take(&mut self.backlog);
        loop {
            match self.recv_timeout(timeout).await {
                Ok(n) => seen.push(n),
                Err(ReadError::Closed) => return Ok(seen),
                Err(e) => return Err(e),
            }
        }
    }

    /// Acknowledges a delivered message with a delivery receipt.
    pub async fn receipt_for(&mut self, message: &Node) {
        let mut r = Node::new("receipt").attr("id", message.attr_value("id").unwrap().clone());
        r.set_attr("to", message.attr_value("from").unwrap().clone());
        if let Some(p) = message.attr_value("participant") {
            r.set_attr("participant", p.clone());
        }
        self.send(&r).await;
    }
}

async fn read_frame(ws: &mut Ws, deframer: &mut Deframer) -> Result<Vec<u8>, String> {
    loop {
        if let Some(frame) = deframer.next_frame().map_err(|e| e.to_string())? {
            return Ok(frame);
        }
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => deframer.push(&b),
            Some(Ok(_)) => {}
            other => return Err(format!("socket ended during handshake: {other:?}")),
        }
    }
}

/// `server_jid` as the tests write it.
pub fn server() -> Jid {
    Jid::parse("@s.whatsapp.net").unwrap()
}

/// A raw message stanza with opaque `enc` payloads for the given device JIDs (the server never
/// looks inside; tests that need real encryption use the phones).
pub fn raw_message(id: &str, to: &str, devices: &[&str], payload: &[u8]) -> Node {
    Node::new("message")
        .attr("id", id.to_owned())
        .attr("to", Jid::parse(to).unwrap())
        .attr("type", "text")
        .children([Node::new("participants").children(devices.iter().map(|d| {
            Node::new("to")
                .attr("jid", Jid::parse(d).unwrap())
                .children([Node::new("enc")
                    .attr("v", "2")
                    .attr("type", "msg")
                    .bytes(payload.to_vec())])
        }))])
}

/// The private key in credentials.
pub fn key(hex_key: &str) -> PrivateKey {
    SimHandle::private_key(hex_key).unwrap()
}

/// XEdDSA verify shorthand.
pub fn verifies(public: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    xeddsa::verify(&PublicKey(*public), message, signature).is_ok()
}

/// Logs in a provisioned companion and waits until the login burst is over: `<success>`, the
/// offline marker, and the prekey-low notification a device without one-time prekeys gets
/// (which it acknowledges). Afterwards the client's stream is quiet.
pub async fn login_ready(sim: &SimHandle, creds: &CompanionCredentials) -> Client {
    let (mut c, _) = Client::login(sim, creds).await.expect("login");
    let t = Duration::from_secs(10);
    c.recv_matching(t, |n| n.tag == "ib" && n.child_by_tag("offline").is_some())
        .await
        .unwrap();
    let low = c
        .recv_matching(t, |n| {
            n.tag == "notification" && n.attr_str("type") == Some("encrypt")
        })
        .await
        .unwrap();
    let ack = Node::new("ack")
        .attr("class", "notification")
        .attr("id", low.attr_value("id").unwrap().clone())
        .attr("type", "encrypt")
        .attr("to", low.attr_value("from").unwrap().clone());
    c.send(&ack).await;
    c
}

/// A simulator on loopback without the wss:// listener (the tests speak ws://).
pub async fn sim() -> SimHandle {
    Sim::start(SimConfig {
        wss_port: None,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// A provisioned companion's Signal identity and signed prekey, rebuilt from its credentials
/// (the signature is not needed to decrypt, so the record carries a placeholder).
pub fn identity_of(creds: &CompanionCredentials) -> (LocalIdentity, SignedPreKey) {
    let identity = LocalIdentity {
        key_pair: KeyPair::from_private(key(&creds.identity_private)),
        registration_id: creds.registration_id,
    };
    let spk = SignedPreKey {
        id: creds.signed_prekey_id,
        key_pair: KeyPair::from_private(key(&creds.signed_prekey_private)),
        signature: [0; 64],
    };
    (identity, spk)
}
