//! `signal-peer`: our Signal implementation behind a JSON-lines interface, so
//! `tests/interop/signal*.test.mjs` and `senderkey*.test.mjs` can drive it
//! against libsignal-node and Baileys.
//!
//! One request per stdin line, one response per stdout line. Byte strings are
//! hex. Every record lives only as bytes between commands (`to_bytes` /
//! `from_bytes` each time), exactly as the encrypted store will keep them. All
//! randomness comes from one `StdRng` seeded by `init`, so a transcript is
//! reproducible: `host/protocol/src/signal/tests.rs` replays the same command
//! sequence to check the recorded vectors.
//!
//! Commands (`cmd`): `init {seed}`, `bundle {spk_id, opk_id?}`,
//! `initiate {peer, bundle}`, `encrypt {peer, plaintext}`,
//! `decrypt {peer, type, body}`, `reset {peer}`, `accept_identity {peer, identity}`,
//! `session_info {peer}`, `sk_create {group}`, `sk_process {group, sender, skdm}`,
//! `sk_encrypt {group, plaintext}`, `sk_decrypt {group, sender, body}`,
//! `xeddsa_sign {priv, msg}`, `xeddsa_verify {pub, msg, sig}`, `pad {plaintext}`,
//! `unpad {padded}`. Failures answer `{"error": "<SignalError variant>"}`.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use wasmeow_protocol::keys::{PrivateKey, PublicKey};
use wasmeow_protocol::signal::{
    IdentityTrust, LocalIdentity, PreKey, PreKeyBundle, PreKeyPublic, PreKeySignalMessage, PreKeys,
    SenderKeyRecord, SessionRecord, SignalError, SignedPreKey, group, padding, session,
};
use wasmeow_protocol::xeddsa;

struct Peer {
    rng: StdRng,
    identity: LocalIdentity,
    signed_pre_keys: HashMap<u32, SignedPreKey>,
    pre_keys: HashMap<u32, PreKey>,
    /// Session records by peer name, as bytes.
    sessions: HashMap<String, Vec<u8>>,
    /// Trusted identities by peer name.
    identities: HashMap<String, PublicKey>,
    /// Our own sender-key record per group, as bytes.
    own_sender_keys: HashMap<String, Vec<u8>>,
    /// Others' sender-key records by (group, sender), as bytes.
    sender_keys: HashMap<(String, String), Vec<u8>>,
}

type Res = Result<Value, String>;

fn err(e: SignalError) -> String {
    // The variant name (and fields) identify the failure for the harness.
    format!("{e:?}")
}

fn hex_field(v: &Value, name: &str) -> Result<Vec<u8>, String> {
    let s = v[name]
        .as_str()
        .ok_or(format!("missing string field {name}"))?;
    hex::decode(s).map_err(|e| format!("{name}: {e}"))
}

fn str_field<'a>(v: &'a Value, name: &str) -> Result<&'a str, String> {
    v[name]
        .as_str()
        .ok_or(format!("missing string field {name}"))
}

fn u32_field(v: &Value, name: &str) -> Result<u32, String> {
    v[name]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(format!("missing u32 field {name}"))
}

fn djb(v: &Value, name: &str) -> Result<PublicKey, String> {
    PublicKey::from_djb(&hex_field(v, name)?).map_err(|e| format!("{name}: {e}"))
}

fn trust_str(t: IdentityTrust) -> &'static str {
    match t {
        IdentityTrust::FirstUse => "first_use",
        IdentityTrust::Trusted => "trusted",
    }
}

impl Peer {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let identity = LocalIdentity::generate(&mut rng);
        Self {
            rng,
            identity,
            signed_pre_keys: HashMap::new(),
            pre_keys: HashMap::new(),
            sessions: HashMap::new(),
            identities: HashMap::new(),
            own_sender_keys: HashMap::new(),
            sender_keys: HashMap::new(),
        }
    }

    fn record(&self, peer: &str) -> Result<Option<SessionRecord>, String> {
        self.sessions
            .get(peer)
            .map(|b| SessionRecord::from_bytes(b).map_err(err))
            .transpose()
    }

    fn handle(&mut self, req: &Value) -> Res {
        match str_field(req, "cmd")? {
            "bundle" => self.bundle(req),
            "initiate" => self.initiate(req),
            "encrypt" => self.encrypt(req),
            "decrypt" => self.decrypt(req),
            "reset" => {
                self.sessions.remove(str_field(req, "peer")?);
                Ok(json!({}))
            }
            "accept_identity" => {
                let peer = str_field(req, "peer")?.to_owned();
                let identity = djb(req, "identity")?;
                self.identities.insert(peer, identity);
                Ok(json!({}))
            }
            "session_info" => {
                let rec = self.record(str_field(req, "peer")?)?;
                Ok(match rec {
                    None => json!({"exists": false}),
                    Some(r) => json!({
                        "exists": true,
                        "current": r.has_current_session(),
                        "pending_pre_key": r.is_pending_pre_key(),
                        "archived": r.archived_count(),
                    }),
                })
            }
            "sk_create" => self.sk_create(req),
            "sk_process" => self.sk_process(req),
            "sk_encrypt" => self.sk_encrypt(req),
            "sk_decrypt" => self.sk_decrypt(req),
            "xeddsa_sign" => {
                let key: [u8; 32] = hex_field(req, "priv")?
                    .try_into()
                    .map_err(|_| "priv must be 32 bytes".to_owned())?;
                let sig = xeddsa::sign(
                    &PrivateKey::from_bytes(key),
                    &hex_field(req, "msg")?,
                    &mut self.rng,
                );
                Ok(json!({"sig": hex::encode(sig)}))
            }
            "xeddsa_verify" => {
                let ok = xeddsa::verify(
                    &djb(req, "pub")?,
                    &hex_field(req, "msg")?,
                    &hex_field(req, "sig")?,
                )
                .is_ok();
                Ok(json!({"ok": ok}))
            }
            "pad" => Ok(
                json!({"padded": hex::encode(padding::pad(&hex_field(req, "plaintext")?, &mut self.rng))}),
            ),
            "unpad" => {
                let padded = hex_field(req, "padded")?;
                let body = padding::unpad(&padded).map_err(err)?;
                Ok(json!({"plaintext": hex::encode(body)}))
            }
            "bench" => bench(str_field(req, "op")?, u32_field(req, "iterations")?),
            other => Err(format!("unknown cmd {other}")),
        }
    }

    fn bundle(&mut self, req: &Value) -> Res {
        let spk_id = u32_field(req, "spk_id")?;
        let spk = SignedPreKey::generate(&self.identity.key_pair, spk_id, &mut self.rng);
        let opk = match req["opk_id"].as_u64() {
            Some(id) => Some(PreKey::generate(
                u32::try_from(id).map_err(|_| "opk_id")?,
                &mut self.rng,
            )),
            None => None,
        };
        let bundle = self.identity.bundle(1, &spk, opk.as_ref());
        self.signed_pre_keys.insert(spk.id, spk);
        if let Some(k) = opk {
            self.pre_keys.insert(k.id, k);
        }
        Ok(json!({
            "registration_id": bundle.registration_id,
            "identity_key": hex::encode(bundle.identity_key.to_djb()),
            "signed_pre_key": {
                "id": bundle.signed_pre_key_id,
                "public": hex::encode(bundle.signed_pre_key_public.to_djb()),
                "signature": hex::encode(bundle.signed_pre_key_signature),
            },
            "pre_key": bundle.pre_key.map(|k| json!({"id": k.id, "public": hex::encode(k.public.to_djb())})),
        }))
    }

    fn initiate(&mut self, req: &Value) -> Res {
        let peer = str_field(req, "peer")?.to_owned();
        let b = &req["bundle"];
        let spk = &b["signed_pre_key"];
        let bundle = PreKeyBundle {
            registration_id: u32_field(b, "registration_id")?,
            device_id: 1,
            identity_key: djb(b, "identity_key")?,
            signed_pre_key_id: u32_field(spk, "id")?,
            signed_pre_key_public: djb(spk, "public")?,
            signed_pre_key_signature: hex_field(spk, "signature")?
                .try_into()
                .map_err(|_| "signature must be 64 bytes".to_owned())?,
            pre_key: match b["pre_key"].is_object() {
                true => Some(PreKeyPublic {
                    id: u32_field(&b["pre_key"], "id")?,
                    public: djb(&b["pre_key"], "public")?,
                }),
                false => None,
            },
        };
        let previous = self.record(&peer)?;
        let out = session::initiate(
            previous.as_ref(),
            &self.identity,
            &bundle,
            self.identities.get(&peer),
            &mut self.rng,
        )
        .map_err(err)?;
        if out.trust == IdentityTrust::FirstUse {
            self.identities.insert(peer.clone(), bundle.identity_key);
        }
        self.sessions.insert(peer, out.record.to_bytes());
        Ok(json!({"trust": trust_str(out.trust)}))
    }

    fn encrypt(&mut self, req: &Value) -> Res {
        let peer = str_field(req, "peer")?.to_owned();
        let mut record = self
            .record(&peer)?
            .ok_or_else(|| err(SignalError::NoSession))?;
        let msg = session::encrypt(&mut record, &hex_field(req, "plaintext")?).map_err(err)?;
        self.sessions.insert(peer, record.to_bytes());
        Ok(json!({"type": msg.enc_type(), "body": hex::encode(msg.as_bytes())}))
    }

    fn decrypt(&mut self, req: &Value) -> Res {
        let peer = str_field(req, "peer")?.to_owned();
        let body = hex_field(req, "body")?;
        let record = self.record(&peer)?;
        match str_field(req, "type")? {
            "pkmsg" => {
                let msg = PreKeySignalMessage::parse(&body).map_err(err)?;
                let keys = PreKeys {
                    signed: self.signed_pre_keys.get(&msg.signed_pre_key_id()),
                    one_time: msg.pre_key_id().and_then(|id| self.pre_keys.get(&id)),
                };
                let out = session::decrypt_prekey_message(
                    record.as_ref(),
                    &self.identity,
                    keys,
                    self.identities.get(&peer),
                    &msg,
                    &mut self.rng,
                )
                .map_err(err)?;
                if let Some(id) = out.used_pre_key_id {
                    self.pre_keys.remove(&id);
                }
                if out.trust == IdentityTrust::FirstUse {
                    self.identities.insert(peer.clone(), *msg.identity_key());
                }
                self.sessions.insert(peer, out.record.to_bytes());
                Ok(json!({
                    "plaintext": hex::encode(&out.plaintext),
                    "used_pre_key_id": out.used_pre_key_id,
                    "trust": trust_str(out.trust),
                }))
            }
            "msg" => {
                let record = record.ok_or_else(|| err(SignalError::NoSession))?;
                let out = session::decrypt_message(&record, &body, &mut self.rng).map_err(err)?;
                self.sessions.insert(peer, out.record.to_bytes());
                Ok(json!({"plaintext": hex::encode(&out.plaintext)}))
            }
            other => Err(format!("unknown message type {other}")),
        }
    }

    fn sk_create(&mut self, req: &Value) -> Res {
        let g = str_field(req, "group")?.to_owned();
        let record = match self.own_sender_keys.get(&g) {
            Some(b) => SenderKeyRecord::from_bytes(b).map_err(err)?,
            None => group::create_sender_key(&mut self.rng),
        };
        let skdm = group::distribution_message(&record).map_err(err)?;
        self.own_sender_keys.insert(g, record.to_bytes());
        Ok(json!({"skdm": hex::encode(skdm)}))
    }

    fn sk_process(&mut self, req: &Value) -> Res {
        let key = (
            str_field(req, "group")?.to_owned(),
            str_field(req, "sender")?.to_owned(),
        );
        let existing = self
            .sender_keys
            .get(&key)
            .map(|b| SenderKeyRecord::from_bytes(b))
            .transpose()
            .map_err(err)?;
        let record =
            group::process_distribution_message(existing.as_ref(), &hex_field(req, "skdm")?)
                .map_err(err)?;
        self.sender_keys.insert(key, record.to_bytes());
        Ok(json!({}))
    }

    fn sk_encrypt(&mut self, req: &Value) -> Res {
        let g = str_field(req, "group")?.to_owned();
        let bytes = self
            .own_sender_keys
            .get(&g)
            .ok_or_else(|| err(SignalError::NotOwnSenderKey))?;
        let mut record = SenderKeyRecord::from_bytes(bytes).map_err(err)?;
        let body = group::encrypt(&mut record, &hex_field(req, "plaintext")?, &mut self.rng)
            .map_err(err)?;
        self.own_sender_keys.insert(g, record.to_bytes());
        Ok(json!({"body": hex::encode(body)}))
    }

    fn sk_decrypt(&mut self, req: &Value) -> Res {
        let key = (
            str_field(req, "group")?.to_owned(),
            str_field(req, "sender")?.to_owned(),
        );
        let record = match self.sender_keys.get(&key) {
            Some(b) => SenderKeyRecord::from_bytes(b).map_err(err)?,
            None => SenderKeyRecord::new(),
        };
        let out = group::decrypt(&record, &hex_field(req, "body")?).map_err(err)?;
        self.sender_keys.insert(key, out.record.to_bytes());
        Ok(json!({"plaintext": hex::encode(&out.plaintext)}))
    }
}

/// Runs one of the operations of `host/protocol/benches/signal.rs` `iterations`
/// times in this (release) process and reports operations per second, so
/// `bench-signal.mjs` can compare with libsignal-node and Baileys side by side.
fn bench(op: &str, iterations: u32) -> Res {
    const BODY: [u8; 100] = [0x5A; 100];
    let mut rng = StdRng::seed_from_u64(1);
    let alice = LocalIdentity::generate(&mut rng);
    let bob = LocalIdentity::generate(&mut rng);
    let spk = SignedPreKey::generate(&bob.key_pair, 1, &mut rng);
    let opk = PreKey::generate(2, &mut rng);
    let bundle = bob.bundle(1, &spk, Some(&opk));
    let keys = PreKeys {
        signed: Some(&spk),
        one_time: Some(&opk),
    };
    let setup = |rng: &mut StdRng| -> Result<(SessionRecord, SessionRecord), SignalError> {
        let mut a = session::initiate(None, &alice, &bundle, None, rng)?.record;
        let first = session::encrypt(&mut a, &BODY)?;
        let pk = PreKeySignalMessage::parse(first.as_bytes())?;
        let b = session::decrypt_prekey_message(None, &bob, keys, None, &pk, rng)?.record;
        Ok((a, b))
    };
    let established = |rng: &mut StdRng| -> Result<(SessionRecord, SessionRecord), SignalError> {
        let (a, mut b) = setup(rng)?;
        let reply = session::encrypt(&mut b, &BODY)?;
        Ok((
            session::decrypt_message(&a, reply.as_bytes(), rng)?.record,
            b,
        ))
    };
    let start;
    let cpu_start;
    match op {
        "setup" => {
            (start, cpu_start) = (std::time::Instant::now(), cpu_time_ns());
            for _ in 0..iterations {
                std::hint::black_box(setup(&mut rng).map_err(err)?);
            }
        }
        "same_chain" => {
            let (mut a, mut b) = established(&mut rng).map_err(err)?;
            (start, cpu_start) = (std::time::Instant::now(), cpu_time_ns());
            for _ in 0..iterations {
                let m = session::encrypt(&mut a, &BODY).map_err(err)?;
                b = session::decrypt_message(&b, m.as_bytes(), &mut rng)
                    .map_err(err)?
                    .record;
            }
        }
        "ratchet" => {
            let (mut a, mut b) = established(&mut rng).map_err(err)?;
            (start, cpu_start) = (std::time::Instant::now(), cpu_time_ns());
            for i in 0..iterations {
                let (from, to) = if i % 2 == 0 {
                    (&mut b, &mut a)
                } else {
                    (&mut a, &mut b)
                };
                let m = session::encrypt(from, &BODY).map_err(err)?;
                *to = session::decrypt_message(to, m.as_bytes(), &mut rng)
                    .map_err(err)?
                    .record;
            }
        }
        "sender_key" => {
            let mut own = group::create_sender_key(&mut rng);
            let skdm = group::distribution_message(&own).map_err(err)?;
            let mut theirs = group::process_distribution_message(None, &skdm).map_err(err)?;
            (start, cpu_start) = (std::time::Instant::now(), cpu_time_ns());
            for _ in 0..iterations {
                let m = group::encrypt(&mut own, &BODY, &mut rng).map_err(err)?;
                theirs = group::decrypt(&theirs, &m).map_err(err)?.record;
            }
        }
        other => return Err(format!("unknown bench op {other}")),
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu_secs = (cpu_time_ns() - cpu_start) as f64 / 1e9;
    Ok(json!({
        "ops_per_sec": f64::from(iterations) / secs,
        "cpu_ops_per_sec": f64::from(iterations) / cpu_secs,
    }))
}

/// CPU time consumed by this (single-threaded) process so far, in nanoseconds,
/// from `/proc/self/schedstat`; lets the benchmark ignore time stolen by other
/// processes on a busy machine. Zero where that file does not exist.
fn cpu_time_ns() -> u64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    let mut peer: Option<Peer> = None;
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Err(e) => json!({"error": format!("bad JSON: {e}")}),
            Ok(req) if req["cmd"] == "init" => {
                let seed = req["seed"].as_u64().unwrap_or(0);
                let p = Peer::new(seed);
                let reply = json!({
                    "identity_key": hex::encode(p.identity.public().to_djb()),
                    "registration_id": p.identity.registration_id,
                });
                peer = Some(p);
                reply
            }
            Ok(req) => match peer.as_mut() {
                None => json!({"error": "send init first"}),
                Some(p) => match p.handle(&req) {
                    Ok(v) => v,
                    Err(e) => json!({"error": e}),
                },
            },
        };
        if writeln!(stdout, "{reply}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}
