//! No secret at rest after a real session: a session runs on the encrypted redb store (as in
//! production) against `wasmeow-sim` — QR pairing with a simulated phone, 1:1 messages both
//! ways, a group created by the phone with messages both ways (sender keys, a second peer's
//! session) — is stopped, and then the raw bytes of the store file are scanned
//! (`wasmeow_store::testing::assert_no_secrets`, raw / hex / base64 forms) for every secret the
//! test can collect:
//!
//! - this device's Noise, identity and signed-prekey key pairs (private *and* public halves),
//!   the signed prekey's signature, the ADV secret and the one-time prekeys' private keys
//!   (collected right after pairing, before peers consumed some of them);
//! - the peers' identity keys, every root / chain / ratchet key in the Signal session records
//!   and every chain and signing key in the sender-key records (decoded with the record
//!   protobuf, `wasmeow_proto::signal`);
//! - the message plaintexts (long distinctive strings) and message ids;
//! - metadata the design (`host/store/DESIGN.md` §4) promises to hide: phone numbers, LIDs,
//!   JIDs (user, device and group), the push names and the WhatsApp server name. Record keys
//!   that could name a contact are keyed hashes and every value is sealed, so none of these may
//!   appear in clear either.
//!
//! The scan can fail: a control test writes one of the same plaintexts unencrypted into a copy
//! of the file (with redb directly, as a buggy table would) and the scanner finds it.

mod common;

use std::path::Path;

use common::*;
use prost::Message as _;
use wasmeow_protocol::binary::Jid;
use wasmeow_protocol::keys::PublicKey;
use wasmeow_session::device::{self, Device};
use wasmeow_session::events::ConnectionEvent;
use wasmeow_session::recv::text_of;
use wasmeow_session::{Endpoint, Event, Session, SessionConfig};
use wasmeow_store::testing::{Needle, assert_no_secrets, scan_for_secrets};
use wasmeow_store::{
    AccountStore as _, IdentityStore as _, KekSource, OpenOptions, PreKeyStore as _, RedbAccount,
    RedbStore, SenderKeyStore as _, SessionStore as _, SignalAddress, Store as _,
};

/// Long, distinctive plaintexts: a hit cannot be a coincidence.
const TO_HOST: &str = "Phone to host: the vault combination is 31-17-4, burn this note afterwards";
const TO_PHONE: &str = "Host to phone: wire 48,250.00 EUR to account DE89 3704 0044 0532 0130 00";
const PHONE_TO_GROUP: &str = "Phone to group: quarterly numbers leak on Thursday, keep it quiet";
const HOST_TO_GROUP: &str = "Host to group: the new door code for the lab is 7741-Alpha-Niner";
const PUSH_NAME: &str = "Zebulon Quartermaine Ltd";

/// The session's secrets collected from the store (owned bytes with labels).
#[derive(Default)]
struct Secrets(Vec<(String, Vec<u8>)>);

impl Secrets {
    fn add(&mut self, label: impl Into<String>, bytes: &[u8]) {
        // Optional protobuf fields may be empty; needles must be long enough to be meaningful.
        if bytes.len() >= 6 {
            self.0.push((label.into(), bytes.to_vec()));
        }
    }

    fn needles(&self) -> Vec<Needle<'_>> {
        self.0
            .iter()
            .map(|(l, b)| Needle::new(l.as_str(), b.as_slice()))
            .collect()
    }

    fn count(&self, prefix: &str) -> usize {
        self.0.iter().filter(|(l, _)| l.starts_with(prefix)).count()
    }

    /// Every key in a serialized `RecordSession`.
    fn session_record(&mut self, who: &str, bytes: &[u8]) {
        let record = wasmeow_proto::signal::RecordSession::decode(bytes).expect("session record");
        let states = record.current.iter().chain(record.archived.iter());
        for (i, s) in states.enumerate() {
            let l = |what: &str| format!("session {who} state {i} {what}");
            self.add(l("root key"), s.root_key.as_deref().unwrap_or_default());
            self.add(l("base key"), s.base_key.as_deref().unwrap_or_default());
            self.add(
                l("remote identity"),
                s.remote_identity.as_deref().unwrap_or_default(),
            );
            if let Some(c) = &s.sender_chain {
                self.add(
                    l("sender ratchet private"),
                    c.ratchet_private.as_deref().unwrap_or_default(),
                );
                self.add(
                    l("sender ratchet public"),
                    c.ratchet_public.as_deref().unwrap_or_default(),
                );
                if let Some(k) = &c.chain_key {
                    self.add(l("sender chain key"), k.key.as_deref().unwrap_or_default());
                }
            }
            for (j, c) in s.receiver_chains.iter().enumerate() {
                if let Some(k) = &c.chain_key {
                    self.add(
                        l(&format!("receiver chain {j} key")),
                        k.key.as_deref().unwrap_or_default(),
                    );
                }
                for (m, k) in c.skipped_keys.iter().enumerate() {
                    self.add(
                        l(&format!("receiver chain {j} skipped key {m}")),
                        k.seed.as_deref().unwrap_or_default(),
                    );
                }
            }
        }
    }

    /// Every key in a serialized `RecordSenderKey`.
    fn sender_key_record(&mut self, who: &str, bytes: &[u8]) {
        let record =
            wasmeow_proto::signal::RecordSenderKey::decode(bytes).expect("sender key record");
        for (i, s) in record.states.iter().enumerate() {
            let l = |what: &str| format!("sender key {who} state {i} {what}");
            if let Some(k) = &s.chain_key {
                self.add(l("chain key"), k.key.as_deref().unwrap_or_default());
            }
            self.add(
                l("signing public"),
                s.signing_public.as_deref().unwrap_or_default(),
            );
            self.add(
                l("signing private"),
                s.signing_private.as_deref().unwrap_or_default(),
            );
        }
    }
}

fn config(url: String, root: [u8; 32]) -> SessionConfig {
    SessionConfig {
        push_name: PUSH_NAME.to_owned(),
        ..SessionConfig::for_test_server(Endpoint::url(url), PublicKey(root))
    }
}

/// Signal addresses a peer's state may be kept under (phone number or LID, see
/// `send::canonical_address`).
fn addresses(pn: &str, lid: &str, device: u32) -> Vec<SignalAddress> {
    [pn.to_owned(), format!("{lid}_1"), lid.to_owned()]
        .into_iter()
        .map(|user| SignalAddress::new(user, device))
        .collect()
}

fn group_text(e: &Event, gid: &str) -> Option<String> {
    match e {
        Event::Message(m) if m.info.chat == gid => text_of(&m.content).map(str::to_owned),
        _ => None,
    }
}

/// Runs the real session on `account` and returns the secrets collected from the store, plus
/// the metadata strings the design promises to hide.
async fn real_session(account: RedbAccount) -> (Secrets, Vec<(String, String)>) {
    let sim = sim().await;
    let me = sim.create_account(None, Some(PUSH_NAME)).unwrap();
    let bob = sim.create_account(None, Some("Bartholomew Phone")).unwrap();
    let carol = sim.create_account(None, Some("Carolina Phone")).unwrap();
    let mut secrets = Secrets::default();

    let (session, mut events) = Session::start(
        config(sim.ws_url().await, sim.root_public_key()),
        account.clone(),
    );
    let qr = next_event(&mut events, |e| match e {
        Event::Connection(ConnectionEvent::Qr { code, .. }) => Some(code.clone()),
        _ => None,
    })
    .await;
    sim.scan(&qr, &me.pn).await.expect("phone scans the QR");
    next_event(&mut events, |e| {
        matches!(e, Event::Connection(ConnectionEvent::Connected)).then_some(())
    })
    .await;

    // Our credentials and every one-time prekey, before peers consume some.
    let dev = account
        .read(Device::load)
        .expect("device loads")
        .expect("device stored");
    secrets.add("noise private key", &dev.noise.private.to_bytes());
    secrets.add("noise public key", &dev.noise.public.0);
    secrets.add(
        "identity private key",
        &dev.identity.key_pair.private.to_bytes(),
    );
    secrets.add("identity public key", &dev.identity.key_pair.public.0);
    secrets.add("adv secret", &dev.adv_secret);
    secrets.add(
        "signed prekey private key",
        &dev.signed_prekey.key_pair.private.to_bytes(),
    );
    secrets.add(
        "signed prekey public key",
        &dev.signed_prekey.key_pair.public.0,
    );
    secrets.add("signed prekey signature", &dev.signed_prekey.signature);
    secrets.add(
        "signed device identity",
        dev.account.as_deref().expect("paired"),
    );
    for id in 1..=200u32 {
        if let Some(p) = account.get_prekey(id).unwrap() {
            let key = device::parse_prekey(id, &p.record).expect("prekey record");
            secrets.add(
                format!("one-time prekey {id} private"),
                &key.key_pair.private.to_bytes(),
            );
            secrets.add(
                format!("one-time prekey {id} public"),
                &key.key_pair.public.0,
            );
        }
    }
    assert!(
        secrets.count("one-time prekey") >= 2 * 50,
        "the initial prekeys were uploaded and stored"
    );
    let own = session.own_jid().expect("paired");
    let own_lid = session.own_lid();

    // 1:1 both ways.
    let in_id = sim.phone_send_text(&bob.pn, &me.jid, TO_HOST).unwrap();
    let got = next_event(&mut events, |e| match e {
        Event::Message(m) => text_of(&m.content).map(str::to_owned),
        _ => None,
    })
    .await;
    assert_eq!(got, TO_HOST);
    let bob_jid: Jid = bob.jid.parse().unwrap();
    let out = session.send_text(&bob_jid, TO_PHONE).await.unwrap();
    assert!(out.result.is_ok(), "{out:?}");
    eventually(|| {
        sim.phone_inbox(&bob.pn)
            .unwrap()
            .iter()
            .any(|m| m.text.as_deref() == Some(TO_PHONE))
            .then_some(())
    })
    .await;

    // A group created by Bob's phone with us and Carol; messages both ways.
    let gid = sim
        .create_group_as_phone(
            &bob.pn,
            "Secret Project Nightingale",
            &[&me.jid, &carol.jid],
        )
        .unwrap();
    sim.phone_send_text(&bob.pn, &gid, PHONE_TO_GROUP).unwrap();
    assert_eq!(
        next_event(&mut events, |e| group_text(e, &gid)).await,
        PHONE_TO_GROUP
    );
    let group: Jid = gid.parse().unwrap();
    let sent = session.send_text(&group, HOST_TO_GROUP).await.unwrap();
    assert!(sent.result.is_ok(), "{sent:?}");
    for pn in [&bob.pn, &carol.pn] {
        eventually(|| {
            sim.phone_inbox(pn)
                .unwrap()
                .iter()
                .any(|m| m.chat == gid && m.text.as_deref() == Some(HOST_TO_GROUP))
                .then_some(())
        })
        .await;
        assert_eq!(sim.phone_undecryptable(pn).unwrap(), 0);
    }
    session.stop().await;

    // Peer state: identities, sessions and sender keys, wherever they are kept.
    for (name, peer) in [("bob", &bob), ("carol", &carol)] {
        let mut sessions = 0;
        for addr in addresses(&peer.pn, &peer.lid, 0) {
            if let Some(key) = account.get_identity(&addr).unwrap() {
                secrets.add(format!("{name} phone identity key"), &key);
            }
            if let Some(record) = account.get_session(&addr).unwrap() {
                secrets.session_record(name, &record);
                sessions += 1;
            }
        }
        assert_eq!(sessions, 1, "one session with {name}'s phone");
    }
    assert!(secrets.count("bob phone identity key") >= 1);
    assert!(secrets.count("carol phone identity key") >= 1);
    let mut sender_keys = 0;
    let mut own_addrs = vec![wasmeow_session::send::address(&own)];
    own_addrs.extend(own_lid.as_ref().map(wasmeow_session::send::address));
    let bob_addrs = addresses(&bob.pn, &bob.lid, 0);
    for (who, addr) in own_addrs
        .iter()
        .map(|a| ("own", a))
        .chain(bob_addrs.iter().map(|a| ("bob", a)))
    {
        if let Some(record) = account.get_sender_key(&gid, addr).unwrap() {
            secrets.sender_key_record(who, &record);
            sender_keys += 1;
        }
    }
    assert_eq!(sender_keys, 2, "our sender key and Bob's for the group");
    assert!(secrets.count("sender key own") >= 3 && secrets.count("sender key bob") >= 2);

    for (label, text) in [
        ("message to host", TO_HOST),
        ("message to phone", TO_PHONE),
        ("phone's group message", PHONE_TO_GROUP),
        ("host's group message", HOST_TO_GROUP),
    ] {
        secrets.add(label, text.as_bytes());
    }
    let mut metadata = vec![
        ("inbound message id".to_owned(), in_id),
        ("outbound message id".to_owned(), out.id.clone()),
        ("group message id".to_owned(), sent.id.clone()),
        ("own device jid".to_owned(), own.to_string()),
        ("group jid".to_owned(), gid.clone()),
        (
            "group id".to_owned(),
            gid.trim_end_matches("@g.us").to_owned(),
        ),
        ("push name".to_owned(), PUSH_NAME.to_owned()),
        (
            "group subject".to_owned(),
            "Secret Project Nightingale".to_owned(),
        ),
        ("whatsapp server".to_owned(), "s.whatsapp.net".to_owned()),
    ];
    if let Some(lid) = &own_lid {
        metadata.push(("own lid jid".to_owned(), lid.to_string()));
    }
    for (name, a) in [("own", &me), ("bob", &bob), ("carol", &carol)] {
        metadata.push((format!("{name} phone number"), a.pn.clone()));
        metadata.push((format!("{name} lid"), a.lid.clone()));
        metadata.push((format!("{name} jid"), a.jid.clone()));
        metadata.push((format!("{name} lid jid"), a.lid_jid.clone()));
    }
    sim.shutdown().await;
    (secrets, metadata)
}

/// Opens the encrypted store at `path` with `kek` and returns the account the session runs on.
fn open(path: &Path, kek: &KekSource) -> (RedbStore, RedbAccount) {
    let store = RedbStore::open(path, kek, &OpenOptions::default()).expect("store opens");
    let account = store.create_account("main").expect("account");
    (store, account)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_the_store_file_after_a_real_paired_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmeow.store");
    let mut kek_bytes = [0u8; 32];
    rand::fill(&mut kek_bytes[..]);
    let kek = KekSource::key(kek_bytes);
    let (store, account) = open(&path, &kek);
    let (mut secrets, metadata) = real_session(account).await;
    drop(store);

    secrets.add("store key (KEK)", &kek_bytes);
    for (label, text) in &metadata {
        secrets.add(label.clone(), text.as_bytes());
    }
    let needles = secrets.needles();
    assert!(needles.len() > 150, "{} needles", needles.len());
    println!(
        "scanning {} ({} bytes) for {} secrets: {} one-time prekey halves, {} session keys, \
         {} sender-key keys, {} metadata strings",
        path.display(),
        std::fs::metadata(&path).map_or(0, |m| m.len()),
        needles.len(),
        secrets.count("one-time prekey"),
        secrets.count("session "),
        secrets.count("sender key "),
        metadata.len(),
    );
    assert_no_secrets(&path, &needles);
    let report = wasmeow_store::verify(&path, &kek).expect("verify runs");
    assert!(report.is_ok(), "{report}");

    // Control: the scanner does find one of these plaintexts (and a key) when a record holds
    // it unencrypted, in a copy of the very same file.
    let copy = dir.path().join("control.store");
    std::fs::copy(&path, &copy).unwrap();
    {
        let db = redb::Database::open(&copy).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<'_, &[u8], &[u8]> =
                redb::TableDefinition::new("control_plaintext");
            let mut table = txn.open_table(def).unwrap();
            table.insert(&b"leak"[..], TO_HOST.as_bytes()).unwrap();
            let identity = &secrets
                .0
                .iter()
                .find(|(l, _)| l == "identity private key")
                .unwrap()
                .1;
            table
                .insert(&b"leak-key"[..], hex::encode(identity).as_bytes())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let found = scan_for_secrets(&copy, &secrets.needles()).unwrap();
    let labels: Vec<(&str, &str)> = found.iter().map(|f| (f.label.as_str(), f.form)).collect();
    assert!(labels.contains(&("message to host", "raw")), "{labels:?}");
    assert!(
        labels.contains(&("identity private key", "hex")),
        "{labels:?}"
    );
    let caught = std::panic::catch_unwind(|| assert_no_secrets(&copy, &secrets.needles()));
    assert!(caught.is_err(), "assert_no_secrets must fail on a leak");
}
