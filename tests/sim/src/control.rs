//! The in-process control API: [`Sim::start`] and the [`SimHandle`] tests drive the simulator
//! with (accounts, scans, simulated phones, groups, faults, limits, restart, stats).
//!
//! Contract: every method is safe to call from any task while clients are connected; methods
//! that wait for clients (`scan`, `enter_pairing_code`) are `async` and time out after 60 s with
//! [`PairError::Abandoned`]. JIDs are accepted as full JIDs (`…@s.whatsapp.net`, `…@lid`,
//! `…:3@s.whatsapp.net`, `…@g.us`) or bare phone numbers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use wasmeow_protocol::binary::{Jid, Server};
use wasmeow_protocol::keys::{KeyPair, PrivateKey};
use wasmeow_protocol::signal::{LocalIdentity, SignedPreKey};

use crate::SimError;
use crate::accounts::{DeviceRecord, SignedPreKeyPub};
use crate::config::{RateLimit, SimConfig};
use crate::faults::Kick;
use crate::pairing::PairError;
use crate::phone::{InboxMessage, PhoneAck, PhoneReceipt};
use crate::routing::Queue;
use crate::server::{self, Running, host_for};
use crate::state::{DevAddr, Shared, Stats};
use crate::util::{device_jid, now_ms};

/// How long control calls wait for a client to finish pairing. Generous: the pairing-code flow
/// runs PBKDF2 with 131,072 rounds on the client, which takes over 10 s in an unoptimized
/// build on a busy machine.
const PAIR_TIMEOUT: Duration = Duration::from_secs(60);

/// An account as the control API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// Phone number (digits).
    pub pn: String,
    /// LID (digits).
    pub lid: String,
    /// `<pn>@s.whatsapp.net`.
    pub jid: String,
    /// `<lid>@lid`.
    pub lid_jid: String,
}

/// Everything a client needs to log in as a pre-provisioned companion without pairing.
#[derive(Clone, Serialize, Deserialize)]
pub struct CompanionCredentials {
    /// Phone number (the ClientPayload `username`).
    pub pn: String,
    /// LID (digits).
    pub lid: String,
    /// Device id (the ClientPayload `device`).
    pub device: u16,
    /// `<pn>:<device>@s.whatsapp.net`.
    pub jid: String,
    /// The device's Noise static private key (hex).
    pub noise_private: String,
    /// The device's Signal identity private key (hex).
    pub identity_private: String,
    /// Registration id.
    pub registration_id: u32,
    /// Signed prekey id.
    pub signed_prekey_id: u32,
    /// Signed prekey private key (hex).
    pub signed_prekey_private: String,
}

impl std::fmt::Debug for CompanionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompanionCredentials")
            .field("jid", &self.jid)
            .finish_non_exhaustive()
    }
}

/// A device as the control API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Device id (0 = phone).
    pub id: u16,
    /// Whether it is logged in now.
    pub online: bool,
    /// One-time prekeys left on the server.
    pub prekeys: usize,
    /// Stanzas waiting for its acknowledgement.
    pub queued: usize,
    /// Platform.
    pub platform: String,
}

/// Where the simulator listens and what clients must trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimInfo {
    /// `ws://127.0.0.1:PORT/ws/chat`.
    pub ws_url: String,
    /// `wss://localhost:PORT/ws/chat`, when enabled.
    pub wss_url: Option<String>,
    /// `127.0.0.1:PORT` of the HTTPS media endpoint.
    pub media_host: String,
    /// `http://127.0.0.1:PORT` of the JSON control API, when enabled.
    pub control_url: Option<String>,
    /// The Noise certificate root public key clients must trust (hex).
    pub root_public_key: String,
    /// The same key, base64.
    pub root_public_key_b64: String,
    /// The test CA certificate for wss:// and media (PEM).
    pub ca_pem: String,
}

/// Entry point.
#[derive(Debug)]
pub struct Sim;

impl Sim {
    /// Starts a simulator: loads or creates its state, binds every listener.
    pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
        let world = server::load_world(&cfg)?;
        let control_port = cfg.control_port;
        let bind = cfg.bind;
        let shared = Shared::new(cfg, world);
        let running = server::start(&shared).await?;
        let inner = Arc::new(Inner {
            shared,
            running: tokio::sync::Mutex::new(running),
            control: StdMutex::new(None),
        });
        if let Some(port) = control_port {
            let addr = SocketAddr::new(bind, port);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| SimError::Bind { addr, source: e })?;
            let local = listener
                .local_addr()
                .map_err(|e| SimError::Bind { addr, source: e })?;
            *inner.control.lock().unwrap_or_else(|e| e.into_inner()) = Some(local);
            let task = crate::http::serve_control(Arc::downgrade(&inner), listener);
            inner.running.lock().await.add_task(task);
        }
        Ok(SimHandle { inner })
    }
}

pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    running: tokio::sync::Mutex<Running>,
    control: StdMutex<Option<SocketAddr>>,
}

/// A running simulator. Cheap to clone; all clones control the same server.
#[derive(Clone)]
pub struct SimHandle {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle").finish_non_exhaustive()
    }
}

/// Parses a JID or a bare phone number.
pub(crate) fn parse_jid(text: &str) -> Result<Jid, SimError> {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return Jid::new(text, Server::WhatsApp).map_err(|e| SimError::BadRequest(e.to_string()));
    }
    Jid::parse(text).map_err(|e| SimError::BadRequest(format!("{text:?}: {e}")))
}

impl SimHandle {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// URLs, keys and certificates.
    pub async fn info(&self) -> SimInfo {
        let ports = self.inner.running.lock().await.ports;
        let control = *self.inner.control.lock().unwrap_or_else(|e| e.into_inner());
        let world = self.shared().lock();
        let root = world.keys.root_public();
        SimInfo {
            ws_url: format!("ws://{}:{}/ws/chat", host_for(ports.ws), ports.ws.port()),
            wss_url: ports
                .wss
                .map(|a| format!("wss://localhost:{}/ws/chat", a.port())),
            media_host: world.media_host.clone(),
            control_url: control.map(|a| format!("http://{}:{}", host_for(a), a.port())),
            root_public_key: hex::encode(root),
            root_public_key_b64: base64::engine::general_purpose::STANDARD.encode(root),
            ca_pem: world.keys.ca_cert_pem.clone(),
        }
    }

    /// The `ws://` URL clients connect to.
    pub async fn ws_url(&self) -> String {
        self.info().await.ws_url
    }

    /// The Noise root public key clients must trust.
    pub fn root_public_key(&self) -> [u8; 32] {
        self.shared().lock().keys.root_public()
    }

    /// Creates an account with a simulated phone. `pn` defaults to a fresh `1555…` number.
    pub fn create_account(
        &self,
        pn: Option<&str>,
        push_name: Option<&str>,
    ) -> Result<AccountInfo, SimError> {
        let (pn, lid) = self
            .shared()
            .lock()
            .create_account(pn, push_name)
            .map_err(SimError::BadRequest)?;
        Ok(AccountInfo {
            jid: format!("{pn}@s.whatsapp.net"),
            lid_jid: format!("{lid}@lid"),
            pn,
            lid,
        })
    }

    /// The simulated phone of `pn` scans `qr`; resolves to the new device JID once the
    /// companion has signed its device identity (it then gets `515` and must log in again).
    pub async fn scan(&self, qr: &str, pn: &str) -> Result<String, PairError> {
        let rx = self.shared().lock().scan(qr, pn)?;
        match tokio::time::timeout(PAIR_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            _ => Err(PairError::Abandoned),
        }
    }

    /// The simulated phone of `pn` enters the pairing code a companion displays.
    pub async fn enter_pairing_code(&self, pn: &str, code: &str) -> Result<String, PairError> {
        let rx = self.shared().lock().enter_pairing_code(pn, code)?;
        match tokio::time::timeout(PAIR_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            _ => Err(PairError::Abandoned),
        }
    }

    /// Registers a companion device for `pn` as if it had paired, and returns its secrets, so
    /// a client can log in directly (used by load tests).
    pub fn provision_companion(&self, pn: &str) -> Result<CompanionCredentials, SimError> {
        let mut world = self.shared().lock();
        let world = &mut *world;
        let noise = KeyPair::generate(&mut world.rng);
        let identity = LocalIdentity::generate(&mut world.rng);
        let spk = SignedPreKey::generate(&identity.key_pair, 1, &mut world.rng);
        let account = world
            .accounts
            .get_mut(pn)
            .ok_or_else(|| SimError::BadRequest(format!("unknown account {pn}")))?;
        let device = account.next_device;
        account.next_device = account
            .next_device
            .checked_add(1)
            .ok_or_else(|| SimError::BadRequest("too many devices".into()))?;
        let key_index = account.next_key_index;
        account.next_key_index += 1;
        account.devices.insert(
            device,
            DeviceRecord {
                id: device,
                noise_pub: Some(noise.public.0),
                identity_pub: identity.key_pair.public.0,
                registration_id: identity.registration_id,
                signed_prekey: Some(SignedPreKeyPub {
                    id: spk.id,
                    public: spk.key_pair.public.0,
                    signature: spk.signature.to_vec(),
                }),
                prekeys: Default::default(),
                key_index,
                platform: "provisioned".into(),
                queue: Queue::default(),
            },
        );
        let lid = account.lid.clone();
        world.dirty = true;
        Ok(CompanionCredentials {
            pn: pn.to_owned(),
            lid,
            device,
            jid: device_jid(pn, Server::WhatsApp, device).to_string(),
            noise_private: hex::encode(noise.private.to_bytes()),
            identity_private: hex::encode(identity.key_pair.private.to_bytes()),
            registration_id: identity.registration_id,
            signed_prekey_id: spk.id,
            signed_prekey_private: hex::encode(spk.key_pair.private.to_bytes()),
        })
    }

    /// The phone of `pn` sends a text to a user or group. Returns the message id.
    pub fn phone_send_text(&self, pn: &str, to: &str, text: &str) -> Result<String, SimError> {
        let to = parse_jid(to)?;
        self.shared()
            .lock()
            .phone_send_text(pn, &to, text)
            .map_err(SimError::BadRequest)
    }

    /// What the phone of `pn` received and decrypted, in arrival order.
    pub fn phone_inbox(&self, pn: &str) -> Result<Vec<InboxMessage>, SimError> {
        let world = self.shared().lock();
        let phone = world
            .phones
            .get(pn)
            .ok_or_else(|| SimError::BadRequest(format!("unknown account {pn}")))?;
        Ok(phone.inbox.clone())
    }

    /// Receipts the phone of `pn` received for its messages.
    pub fn phone_receipts(&self, pn: &str) -> Result<Vec<PhoneReceipt>, SimError> {
        let world = self.shared().lock();
        let phone = world
            .phones
            .get(pn)
            .ok_or_else(|| SimError::BadRequest(format!("unknown account {pn}")))?;
        Ok(phone.receipts.clone())
    }

    /// Server acks for the phone's sends (errors included).
    pub fn phone_acks(&self, pn: &str) -> Result<Vec<PhoneAck>, SimError> {
        let world = self.shared().lock();
        let phone = world
            .phones
            .get(pn)
            .ok_or_else(|| SimError::BadRequest(format!("unknown account {pn}")))?;
        Ok(phone.acks.clone())
    }

    /// Messages the phone of `pn` could not decrypt.
    pub fn phone_undecryptable(&self, pn: &str) -> Result<u64, SimError> {
        let world = self.shared().lock();
        let phone = world
            .phones
            .get(pn)
            .ok_or_else(|| SimError::BadRequest(format!("unknown account {pn}")))?;
        Ok(phone.undecryptable)
    }

    /// The phone of `pn` creates a group with `participants`; returns `<id>@g.us`.
    pub fn create_group_as_phone(
        &self,
        pn: &str,
        subject: &str,
        participants: &[&str],
    ) -> Result<String, SimError> {
        let mut world = self.shared().lock();
        if !world.accounts.contains_key(pn) {
            return Err(SimError::BadRequest(format!("unknown account {pn}")));
        }
        let mut members = Vec::new();
        for p in participants {
            let jid = parse_jid(p)?;
            members.push(
                world
                    .resolve_user(&jid)
                    .ok_or_else(|| SimError::BadRequest(format!("unknown user {p}")))?,
            );
        }
        let gid = world.create_group(pn, subject, &members);
        let group = world
            .groups
            .get(&gid)
            .cloned()
            .ok_or_else(|| SimError::State("group vanished".into()))?;
        let node = world.group_node(&group);
        let child = wasmeow_protocol::binary::Node::new("create").children([node]);
        world.notify_group(&gid, pn, Some(&DevAddr::new(pn, 0)), child, &[]);
        Ok(crate::util::group_jid(&gid).to_string())
    }

    /// The phone of `pn` adds, removes, promotes or demotes (`action`) `users` in `group`, exactly
    /// as if it had sent the `w:g2` IQ (same permission checks, same notifications to every other
    /// member device). Returns the per-participant error codes (`None`: done).
    pub fn phone_group_participants(
        &self,
        pn: &str,
        group: &str,
        action: &str,
        users: &[&str],
    ) -> Result<Vec<(String, Option<String>)>, SimError> {
        if !matches!(action, "add" | "remove" | "promote" | "demote") {
            return Err(SimError::BadRequest(format!(
                "action must be add, remove, promote or demote, not {action:?}"
            )));
        }
        let group_jid = parse_jid(group)?;
        let mut op = wasmeow_protocol::binary::Node::new(action.to_owned());
        for u in users {
            op.push_child(
                wasmeow_protocol::binary::Node::new("participant").attr("jid", parse_jid(u)?),
            );
        }
        let iq = wasmeow_protocol::binary::Node::new("iq")
            .attr("to", group_jid)
            .child(op);
        let mut world = self.shared().lock();
        if !world.accounts.contains_key(pn) {
            return Err(SimError::BadRequest(format!("unknown account {pn}")));
        }
        let result = world
            .iq_groups(&DevAddr::new(pn, 0), &iq, "set")
            .map_err(|e| {
                SimError::BadRequest(format!("the server refused: {} {}", e.code, e.text))
            })?;
        Ok(result
            .iter()
            .flat_map(|n| n.child_nodes().iter())
            .map(|p| {
                (
                    p.attr_value("jid")
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    p.attr_value("error").map(|v| v.to_string()),
                )
            })
            .collect())
    }

    /// The phone numbers of a group's current members, in join order (`group` is `<id>@g.us` or
    /// the bare id).
    pub fn group_members(&self, group: &str) -> Result<Vec<String>, SimError> {
        let id = group.strip_suffix("@g.us").unwrap_or(group);
        let world = self.shared().lock();
        let g = world
            .groups
            .get(id)
            .ok_or_else(|| SimError::BadRequest(format!("unknown group {group}")))?;
        Ok(g.participants.iter().map(|p| p.pn.clone()).collect())
    }

    fn device(&self, jid: &str) -> Result<DevAddr, SimError> {
        let jid = parse_jid(jid)?;
        self.shared()
            .lock()
            .resolve_device(&jid)
            .ok_or_else(|| SimError::BadRequest(format!("unknown device {jid}")))
    }

    /// Ends a device's stream (see [`Kick`]). Returns whether it was online.
    pub fn kick(&self, jid: &str, kick: Kick) -> Result<bool, SimError> {
        let addr = self.device(jid)?;
        Ok(self.shared().lock().kick(&addr, kick))
    }

    /// Drops a device's socket without a goodbye. Returns whether it was online.
    pub fn drop_connection(&self, jid: &str) -> Result<bool, SimError> {
        let addr = self.device(jid)?;
        Ok(self.shared().lock().drop_connection(&addr))
    }

    /// Holds every stanza for this device for `delay` (zero clears the fault).
    pub fn delay_deliveries(&self, jid: &str, delay: Duration) -> Result<(), SimError> {
        let addr = self.device(jid)?;
        let mut world = self.shared().lock();
        if delay.is_zero() {
            world.faults.delay.remove(&addr);
        } else {
            world.faults.delay.insert(addr, delay);
        }
        Ok(())
    }

    /// Collects the next `count` stanzas for this device and writes them in reverse order.
    pub fn reorder_deliveries(&self, jid: &str, count: usize) -> Result<(), SimError> {
        let addr = self.device(jid)?;
        if count < 2 {
            return Err(SimError::BadRequest(
                "reordering needs at least 2 stanzas".into(),
            ));
        }
        self.shared().lock().faults.reorder.insert(addr, (count, 0));
        Ok(())
    }

    /// Answers every login with `<failure reason=…/>` for `duration`.
    pub fn refuse_logins(&self, duration: Duration, reason: u16) {
        let until = now_ms() + u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.shared().lock().faults.refuse_logins = Some((until, reason));
    }

    /// Clears every fault (held reorder batches are released in order).
    pub fn clear_faults(&self) {
        let mut world = self.shared().lock();
        world.faults = Default::default();
        let addrs: Vec<DevAddr> = world.online.keys().cloned().collect();
        for addr in addrs {
            if let Some(d) = world
                .accounts
                .get_mut(&addr.pn)
                .and_then(|a| a.devices.get_mut(&addr.dev))
            {
                d.queue.release_all();
            }
            world.flush(&addr);
        }
    }

    /// Restarts the server: every client socket drops, state is persisted and reloaded, and
    /// the client ports reopen after `downtime`.
    pub async fn restart(&self, downtime: Duration) -> Result<(), SimError> {
        let mut running = self.inner.running.lock().await;
        server::restart(self.shared(), &mut running, downtime).await
    }

    /// Sets (or clears) a per-account send rate.
    pub fn set_rate_limit(&self, pn: &str, limit: Option<RateLimit>) -> Result<(), SimError> {
        let mut world = self.shared().lock();
        let account = world
            .accounts
            .get_mut(pn)
            .ok_or_else(|| SimError::BadRequest(format!("unknown account {pn}")))?;
        account.rate_limit = limit;
        account.recent_sends.clear();
        world.dirty = true;
        Ok(())
    }

    /// Restricts (or unrestricts) an account: new 1:1 chats are refused with 463.
    pub fn set_restricted(&self, pn: &str, restricted: bool) -> Result<(), SimError> {
        let mut world = self.shared().lock();
        let account = world
            .accounts
            .get_mut(pn)
            .ok_or_else(|| SimError::BadRequest(format!("unknown account {pn}")))?;
        account.restricted = restricted;
        world.dirty = true;
        Ok(())
    }

    /// Devices of an account.
    pub fn devices(&self, pn: &str) -> Result<Vec<DeviceInfo>, SimError> {
        let world = self.shared().lock();
        let account = world
            .accounts
            .get(pn)
            .ok_or_else(|| SimError::BadRequest(format!("unknown account {pn}")))?;
        Ok(account
            .devices
            .values()
            .map(|d| DeviceInfo {
                id: d.id,
                online: world.online.contains_key(&DevAddr::new(pn, d.id)) || d.id == 0,
                prekeys: d.prekeys.len(),
                queued: d.queue.len(),
                platform: d.platform.clone(),
            })
            .collect())
    }

    /// Ids of the messages queued for a device (not yet acknowledged), in order.
    pub fn queued_messages(&self, jid: &str) -> Result<Vec<String>, SimError> {
        let addr = self.device(jid)?;
        let world = self.shared().lock();
        Ok(world
            .accounts
            .get(&addr.pn)
            .and_then(|a| a.devices.get(&addr.dev))
            .map(|d| d.queue.ids("message"))
            .unwrap_or_default())
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let open = self
            .shared()
            .open_sockets
            .load(std::sync::atomic::Ordering::Relaxed);
        self.shared().lock().stats(open)
    }

    /// Writes the state file now (if one is configured).
    pub fn save(&self) -> Result<(), SimError> {
        let Some(path) = self.shared().cfg.state_file.clone() else {
            return Ok(());
        };
        let snapshot = self.shared().lock().snapshot();
        server::write_snapshot(&path, &snapshot)
    }

    /// Stops every listener and drops every socket.
    pub async fn shutdown(&self) {
        let _ = self.save();
        let mut running = self.inner.running.lock().await;
        running.abort_all();
        let world = self.shared().lock();
        for tx in world.sockets.values() {
            let _ = tx.send(crate::state::ConnCmd::Drop);
        }
    }

    /// A private key from hex, for tests that log in with [`CompanionCredentials`].
    pub fn private_key(hex_key: &str) -> Result<PrivateKey, SimError> {
        let bytes: [u8; 32] = hex::decode(hex_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SimError::BadRequest("expected 32 bytes of hex".into()))?;
        Ok(PrivateKey::from_bytes(bytes))
    }
}
