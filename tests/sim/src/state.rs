//! The simulator's whole mutable state (`World`), the handle connections share (`Shared`), and
//! persistence.
//!
//! Contract: every piece of server state lives in one [`World`] behind one mutex. Handlers lock
//! it, mutate, and push outgoing stanzas into per-connection channels ([`ConnCmd`]); nothing
//! awaits while holding the lock. [`World::snapshot`] / [`World::restore`] round-trip everything
//! that must survive a restart (accounts, devices, queues, groups, phones' Signal state, media,
//! the Noise root and server keys, the TLS CA) through JSON; connections, pending QR pairings and
//! fault timers do not survive, exactly like sockets do not survive a real server restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use wasmeow_protocol::binary::{Jid, Node, Server};
use wasmeow_protocol::keys::{KeyPair, PrivateKey};
use wasmeow_protocol::noise::{ChainIssuer, ServerConfig};

use crate::accounts::Account;
use crate::config::{Addressing, QrSchedule, RateLimit, SimConfig};
use crate::faults::Faults;
use crate::groups::Group;
use crate::media::MediaStore;
use crate::pairing::Pairing;
use crate::phone::Phone;
use crate::util::{b64, device_jid, hex32, now_secs};

/// A device address: account phone number and device id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct DevAddr {
    pub pn: String,
    pub dev: u16,
}

impl DevAddr {
    pub(crate) fn new(pn: &str, dev: u16) -> Self {
        Self {
            pn: pn.to_owned(),
            dev,
        }
    }
}

/// What a connection task is told to do.
#[derive(Debug)]
pub(crate) enum ConnCmd {
    /// Encrypt and send this stanza.
    Send(Node),
    /// Send the stanza if any, then close the WebSocket cleanly.
    Close(Option<Node>),
    /// Drop the socket without a goodbye (no stanza, no WebSocket close frame).
    Drop,
}

/// An authenticated, logged-in connection of a device.
#[derive(Debug)]
pub(crate) struct Online {
    pub conn_id: u64,
    pub tx: mpsc::UnboundedSender<ConnCmd>,
}

/// Counters exposed by [`crate::SimHandle::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Sockets currently open (any state).
    pub open_sockets: usize,
    /// Devices currently logged in.
    pub authenticated: usize,
    /// Noise handshakes completed since start.
    pub handshakes: u64,
    /// Successful logins since start.
    pub logins: u64,
    /// Logins refused (failure or stream error) since start.
    pub refused_logins: u64,
    /// Companions paired since start.
    pub pairings: u64,
    /// Message stanzas accepted from clients and phones.
    pub messages_in: u64,
    /// Message stanzas delivered (written to a socket, including redeliveries).
    pub messages_out: u64,
    /// Sends answered with 429.
    pub rate_limited: u64,
    /// Sends answered with 463.
    pub restricted_refusals: u64,
    /// Receipts relayed.
    pub receipts_relayed: u64,
    /// Stanzas currently queued for devices (not yet acknowledged).
    pub queued: usize,
    /// Prekey bundles handed out.
    pub bundles_served: u64,
    /// Media blobs stored.
    pub media_blobs: usize,
}

/// Server key material that must survive restarts.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct ServerKeys {
    #[serde(with = "hex32")]
    pub root: [u8; 32],
    #[serde(with = "hex32")]
    pub intermediate: [u8; 32],
    #[serde(with = "hex32")]
    pub static_key: [u8; 32],
    pub not_before: u64,
    pub not_after: u64,
    pub ca_key_pem: String,
    pub ca_cert_pem: String,
}

impl ServerKeys {
    fn generate(rng: &mut StdRng) -> Result<Self, crate::SimError> {
        let ca = crate::tls::TestCa::generate()?;
        let now = now_secs();
        Ok(Self {
            root: PrivateKey::generate(rng).to_bytes(),
            intermediate: PrivateKey::generate(rng).to_bytes(),
            static_key: PrivateKey::generate(rng).to_bytes(),
            not_before: now.saturating_sub(86_400),
            not_after: now + 10 * 365 * 86_400,
            ca_key_pem: ca.key_pem(),
            ca_cert_pem: ca.cert_pem().to_owned(),
        })
    }

    /// The Noise responder configuration: static key plus a chain issued by our test root.
    pub(crate) fn noise_config(&self, rng: &mut StdRng) -> ServerConfig {
        let issuer = ChainIssuer {
            root: PrivateKey::from_bytes(self.root),
            intermediate: KeyPair::from_private(PrivateKey::from_bytes(self.intermediate)),
            intermediate_serial: 1,
            leaf_serial: 2,
            not_before: self.not_before,
            not_after: self.not_after,
        };
        let static_key = KeyPair::from_private(PrivateKey::from_bytes(self.static_key));
        let chain = issuer.issue(&static_key.public, rng);
        ServerConfig::new(static_key, &chain)
    }

    /// The root public key clients must trust.
    pub(crate) fn root_public(&self) -> [u8; 32] {
        PrivateKey::from_bytes(self.root).public_key().0
    }
}

/// State shared by every task of one simulator.
pub(crate) struct Shared {
    world: Mutex<World>,
    pub(crate) cfg: SimConfig,
    pub(crate) next_conn: AtomicU64,
    pub(crate) open_sockets: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(cfg: SimConfig, world: World) -> Arc<Self> {
        let shared = Arc::new(Self {
            world: Mutex::new(world),
            cfg,
            next_conn: AtomicU64::new(1),
            open_sockets: AtomicUsize::new(0),
        });
        shared.lock().self_ref = Arc::downgrade(&shared);
        shared
    }

    /// Locks the world. A panic in another handler poisons nothing we rely on, so the poison
    /// flag is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the world (restart).
    pub(crate) fn replace_world(self: &Arc<Self>, mut world: World) {
        world.self_ref = Arc::downgrade(self);
        *self.lock() = world;
    }

    pub(crate) fn new_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// Everything the server knows.
pub(crate) struct World {
    pub accounts: BTreeMap<String, Account>,
    /// LID user → phone number.
    pub lids: HashMap<String, String>,
    pub groups: BTreeMap<String, Group>,
    /// Invite code → group id.
    pub invites: HashMap<String, String>,
    /// Invite codes that were revoked (joining with one answers 410 gone).
    pub revoked_invites: std::collections::HashSet<String>,
    /// Simulated phones (device 0 of each account), by phone number.
    pub phones: BTreeMap<String, Phone>,
    pub media: MediaStore,
    /// Logged-in devices.
    pub online: HashMap<DevAddr, Online>,
    /// Every open socket (any state), for faults and restarts.
    pub sockets: HashMap<u64, mpsc::UnboundedSender<ConnCmd>>,
    /// Unpaired companions waiting for a scan or a pairing code, by connection id.
    pub pairings: HashMap<u64, Pairing>,
    /// Presence subscriptions: target phone number → subscribers (device, wants LID addressing).
    pub presence_subs: HashMap<String, BTreeSet<(DevAddr, bool)>>,
    pub faults: Faults,
    pub stats: Stats,
    pub rng: StdRng,
    pub keys: ServerKeys,
    pub noise: ServerConfig,
    pub qr: QrSchedule,
    pub rate_limit: Option<RateLimit>,
    pub addressing: Addressing,
    /// Host:port of the media endpoint, for media_conn answers.
    pub media_host: String,
    /// Set when persistent state changed since the last save.
    pub dirty: bool,
    pub self_ref: Weak<Shared>,
    next_stanza: u64,
}

/// The persisted form of a [`World`].
#[derive(Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub version: u32,
    pub keys: ServerKeys,
    pub accounts: BTreeMap<String, Account>,
    pub groups: BTreeMap<String, Group>,
    pub phones: BTreeMap<String, Phone>,
    pub media: MediaStore,
    pub next_stanza: u64,
    #[serde(with = "b64")]
    pub rng_seed: Vec<u8>,
}

const SNAPSHOT_VERSION: u32 = 1;

impl World {
    /// A fresh world with new keys.
    pub(crate) fn new(cfg: &SimConfig) -> Result<Self, crate::SimError> {
        let mut rng = match cfg.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::seed_from_u64(rand::rng().random()),
        };
        let keys = ServerKeys::generate(&mut rng)?;
        Ok(Self::from_parts(cfg, keys, rng))
    }

    fn from_parts(cfg: &SimConfig, keys: ServerKeys, mut rng: StdRng) -> Self {
        let noise = keys.noise_config(&mut rng);
        Self {
            accounts: BTreeMap::new(),
            lids: HashMap::new(),
            groups: BTreeMap::new(),
            invites: HashMap::new(),
            revoked_invites: Default::default(),
            phones: BTreeMap::new(),
            media: MediaStore::default(),
            online: HashMap::new(),
            sockets: HashMap::new(),
            pairings: HashMap::new(),
            presence_subs: HashMap::new(),
            faults: Faults::default(),
            stats: Stats::default(),
            rng,
            keys,
            noise,
            qr: cfg.qr,
            rate_limit: cfg.rate_limit,
            addressing: cfg.addressing,
            media_host: String::new(),
            dirty: false,
            self_ref: Weak::new(),
            next_stanza: 1,
        }
    }

    /// The persisted form.
    pub(crate) fn snapshot(&mut self) -> Snapshot {
        let seed: [u8; 32] = self.rng.random();
        Snapshot {
            version: SNAPSHOT_VERSION,
            keys: self.keys.clone(),
            accounts: self.accounts.clone(),
            groups: self.groups.clone(),
            phones: self.phones.clone(),
            media: self.media.clone(),
            next_stanza: self.next_stanza,
            rng_seed: seed.to_vec(),
        }
    }

    /// Rebuilds a world from its persisted form (no connections, no pairings, no faults).
    pub(crate) fn restore(cfg: &SimConfig, snap: Snapshot) -> Result<Self, crate::SimError> {
        if snap.version != SNAPSHOT_VERSION {
            return Err(crate::SimError::State(format!(
                "state file version {} is not {SNAPSHOT_VERSION}",
                snap.version
            )));
        }
        let seed: [u8; 32] = snap
            .rng_seed
            .try_into()
            .map_err(|_| crate::SimError::State("rng seed must be 32 bytes".into()))?;
        let mut world = Self::from_parts(cfg, snap.keys, StdRng::from_seed(seed));
        world.accounts = snap.accounts;
        world.lids = world
            .accounts
            .values()
            .map(|a| (a.lid.clone(), a.pn.clone()))
            .collect();
        world.groups = snap.groups;
        world.invites = world
            .groups
            .values()
            .map(|g| (g.invite_code.clone(), g.id.clone()))
            .collect();
        world.phones = snap.phones;
        world.media = snap.media;
        world.next_stanza = snap.next_stanza;
        Ok(world)
    }

    /// A fresh server-generated stanza id.
    pub(crate) fn stanza_id(&mut self) -> String {
        self.next_stanza += 1;
        format!(
            "{}.{}-{}",
            self.rng.random::<u8>(),
            self.rng.random::<u8>(),
            self.next_stanza
        )
    }

    /// Resolves a user JID (phone number or LID) to the phone number of a known account.
    pub(crate) fn resolve_user(&self, jid: &Jid) -> Option<String> {
        match jid.server() {
            Server::WhatsApp | Server::LegacyUser => self
                .accounts
                .contains_key(jid.user())
                .then(|| jid.user().to_owned()),
            Server::Lid => self.lids.get(jid.user()).cloned(),
            _ => None,
        }
    }

    /// Resolves a (possibly device) JID to a known device address.
    pub(crate) fn resolve_device(&self, jid: &Jid) -> Option<DevAddr> {
        let pn = self.resolve_user(jid)?;
        let dev = jid.device();
        self.accounts
            .get(&pn)?
            .devices
            .contains_key(&dev)
            .then_some(DevAddr { pn, dev })
    }

    /// The JID of a device in the requested addressing (LID or phone number).
    pub(crate) fn jid_of(&self, addr: &DevAddr, lid: bool) -> Jid {
        let user = if lid {
            self.accounts
                .get(&addr.pn)
                .map_or(addr.pn.as_str(), |a| a.lid.as_str())
        } else {
            addr.pn.as_str()
        };
        device_jid(
            user,
            if lid { Server::Lid } else { Server::WhatsApp },
            addr.dev,
        )
    }

    /// The user JID (no device) of an account in the requested addressing.
    pub(crate) fn user_jid(&self, pn: &str, lid: bool) -> Jid {
        self.jid_of(&DevAddr::new(pn, 0), lid)
    }

    /// Sends a stanza to a logged-in device now; returns false if it is not online.
    pub(crate) fn send_now(&self, addr: &DevAddr, node: Node) -> bool {
        match self.online.get(addr) {
            Some(online) => online.tx.send(ConnCmd::Send(node)).is_ok(),
            None => false,
        }
    }

    /// Sends a stanza on a specific socket.
    pub(crate) fn send_on(&self, conn_id: u64, node: Node) {
        if let Some(tx) = self.sockets.get(&conn_id) {
            let _ = tx.send(ConnCmd::Send(node));
        }
    }

    /// Runs `f` on the world after `delay` (a tokio task; does nothing if the simulator is gone).
    pub(crate) fn after(&self, delay: Duration, f: impl FnOnce(&mut World) + Send + 'static) {
        let weak = self.self_ref.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(shared) = weak.upgrade() {
                let mut world = shared.lock();
                f(&mut world);
            }
        });
    }

    /// Current counters, with the live gauges filled in.
    pub(crate) fn stats(&self, open_sockets: usize) -> Stats {
        let mut stats = self.stats.clone();
        stats.open_sockets = open_sockets;
        stats.authenticated = self.online.len();
        stats.queued = self
            .accounts
            .values()
            .flat_map(|a| a.devices.values())
            .map(|d| d.queue.len())
            .sum();
        stats.media_blobs = self.media.len();
        stats
    }
}
