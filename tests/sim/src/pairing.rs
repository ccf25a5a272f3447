//! Linking a companion to an account: QR refs, the simulated phone's scan, the ADV device
//! identity, `pair-success`, the companion's `pair-device-sign`, and the 515 restart.
//!
//! Contract (`protocol-whatsmeow.md` §2.7, `interop-baileys.md` §4.2):
//!
//! ```text
//!  companion                          server                               phone (simulated)
//!  ClientPayload{device_pairing_data} ─►
//!            ◄─ iq set md <pair-device><ref/>×N</pair-device>
//!  iq result ─►
//!  (shows QR "…#ref,noise,identity,adv,platform")                ◄── scan(qr) from the control API
//!            ◄─ iq set <pair-success><device-identity/><device jid lid/><platform/></pair-success>
//!                 device-identity = ADVSignedDeviceIdentityHMAC{
//!                    details = ADVSignedDeviceIdentity{details = ADVDeviceIdentity{raw_id, timestamp,
//!                      key_index, E2EE, E2EE}, account_signature_key = phone identity,
//!                      account_signature = XEdDSA(phone, 06 00 ‖ details ‖ companion identity)},
//!                    hmac = HMAC-SHA256(adv secret from the QR, details)}
//!  iq result <pair-device-sign><device-identity key-index>ADVSignedDeviceIdentity with
//!    device_signature = XEdDSA(companion, 06 01 ‖ details ‖ companion identity ‖ account key)
//!    and no account_signature_key</device-identity></pair-device-sign> ─►
//!                                   verify the device signature, register the device
//!            ◄─ <stream:error code="515"/>, close; the companion logs in with its Noise key
//! ```
//!
//! A ref is accepted until its deadline in the configured [`crate::config::QrSchedule`]; after
//! the last deadline the server closes the socket. The pairing-code flow (§2.8) is in
//! [`crate::paircode`] and ends in the same `pair-success`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use prost::Message as _;
use rand::RngExt as _;
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot};
use wasmeow_proto::wa::{
    AdvDeviceIdentity, AdvEncryptionType, AdvSignedDeviceIdentity, AdvSignedDeviceIdentityHmac,
    DeviceProps, client_payload::DevicePairingRegistrationData,
};
use wasmeow_protocol::binary::{Node, Server};
use wasmeow_protocol::keys::PublicKey;
use wasmeow_protocol::xeddsa;

use crate::accounts::{DeviceRecord, SignedPreKeyPub};
use crate::routing::Queue;
use crate::state::{ConnCmd, DevAddr, World};
use crate::util::{be_uint, device_jid, now_ms, now_secs, server_jid};

/// Prefix of the account signature message (`06 00`).
pub(crate) const ADV_ACCOUNT_SIG_PREFIX: [u8; 2] = [6, 0];
/// Prefix of the device signature message (`06 01`).
pub(crate) const ADV_DEVICE_SIG_PREFIX: [u8; 2] = [6, 1];
/// The prefix WhatsApp 7.x clients put before the QR payload.
pub(crate) const QR_URL_PREFIX: &str = "https://wa.me/settings/linked_devices#";

/// Pairing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    /// The QR text is not `[prefix]ref,noise,identity,adv[,platform]` with valid base64 keys.
    #[error("malformed QR payload: {0}")]
    MalformedQr(&'static str),
    /// No waiting companion has this ref (never issued, already used, or its socket closed).
    #[error("no companion is waiting with this QR ref")]
    UnknownRef,
    /// The ref's lifetime has passed.
    #[error("the QR ref has expired")]
    ExpiredRef,
    /// The keys in the QR differ from those the companion presented to the server.
    #[error("QR keys do not match the companion's connection")]
    KeyMismatch,
    /// No such account.
    #[error("unknown account {0}")]
    UnknownAccount(String),
    /// The companion answered pair-success with an error IQ.
    #[error("the companion rejected pair-success: {code} {text}")]
    Rejected {
        /// Error code from the companion.
        code: String,
        /// Error text from the companion.
        text: String,
    },
    /// The companion's device signature does not verify (or its reply is malformed).
    #[error("the companion's pair-device-sign is invalid: {0}")]
    BadDeviceSignature(&'static str),
    /// The companion disconnected or did not answer in time.
    #[error("the companion did not finish pairing")]
    Abandoned,
    /// The pairing code is wrong or no companion asked for one for this account.
    #[error("pairing code rejected: {0}")]
    BadCode(&'static str),
}

/// A pair-success sent and waiting for the companion's signature.
pub(crate) struct AwaitingSign {
    pub iq_id: String,
    pub pn: String,
    pub device: u16,
    pub key_index: u32,
    pub details: Vec<u8>,
    pub account_pub: [u8; 32],
    pub done: Option<oneshot::Sender<Result<String, PairError>>>,
}

/// An unpaired companion connection.
pub(crate) struct Pairing {
    pub tx: mpsc::UnboundedSender<ConnCmd>,
    pub noise_pub: [u8; 32],
    pub identity_pub: [u8; 32],
    pub registration_id: u32,
    pub signed_prekey: SignedPreKeyPub,
    pub platform: String,
    pub refs: Vec<String>,
    pub refs_sent_ms: u64,
    pub awaiting: Option<AwaitingSign>,
    pub link_code: Option<crate::paircode::LinkCode>,
}

/// The parts of a QR payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QrData {
    pub reference: String,
    pub noise: [u8; 32],
    pub identity: [u8; 32],
    pub adv_secret: Vec<u8>,
}

/// Parses `[https://wa.me/settings/linked_devices#]ref,noise,identity,adv[,platform]`.
pub(crate) fn parse_qr(text: &str) -> Result<QrData, PairError> {
    let body = text
        .trim()
        .strip_prefix(QR_URL_PREFIX)
        .unwrap_or(text.trim());
    let parts: Vec<&str> = body.split(',').collect();
    if !(4..=5).contains(&parts.len()) {
        return Err(PairError::MalformedQr(
            "expected 4 or 5 comma-separated fields",
        ));
    }
    let key = |s: &str, what: &'static str| -> Result<[u8; 32], PairError> {
        STANDARD
            .decode(s)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or(PairError::MalformedQr(what))
    };
    Ok(QrData {
        reference: parts[0].to_owned(),
        noise: key(parts[1], "noise key is not 32 bytes of base64")?,
        identity: key(parts[2], "identity key is not 32 bytes of base64")?,
        adv_secret: STANDARD
            .decode(parts[3])
            .map_err(|_| PairError::MalformedQr("adv secret is not base64"))?,
    })
}

/// Why a registration payload was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegistrationError {
    #[error("registration field {0} is missing or malformed")]
    Field(&'static str),
    #[error("signed prekey signature does not verify")]
    Signature,
}

impl World {
    /// Starts the QR flow for an unpaired companion: validates its registration data and sends
    /// the refs.
    pub(crate) fn start_pairing(
        &mut self,
        conn_id: u64,
        tx: &mpsc::UnboundedSender<ConnCmd>,
        noise: PublicKey,
        reg: &DevicePairingRegistrationData,
    ) -> Result<(), RegistrationError> {
        let field = |v: Option<&bytes::Bytes>,
                     name: &'static str,
                     len: usize|
         -> Result<Vec<u8>, RegistrationError> {
            v.filter(|b| b.len() == len)
                .map(|b| b.to_vec())
                .ok_or(RegistrationError::Field(name))
        };
        let registration_id =
            be_uint(&field(reg.e_regid.as_ref(), "e_regid", 4)?).unwrap_or(0) as u32;
        let identity: [u8; 32] = field(reg.e_ident.as_ref(), "e_ident", 32)?
            .try_into()
            .map_err(|_| RegistrationError::Field("e_ident"))?;
        let skey_id = be_uint(&field(reg.e_skey_id.as_ref(), "e_skey_id", 3)?).unwrap_or(0) as u32;
        let skey: [u8; 32] = field(reg.e_skey_val.as_ref(), "e_skey_val", 32)?
            .try_into()
            .map_err(|_| RegistrationError::Field("e_skey_val"))?;
        let signature = field(reg.e_skey_sig.as_ref(), "e_skey_sig", 64)?;
        let mut signed = vec![wasmeow_protocol::keys::DJB_TYPE];
        signed.extend_from_slice(&skey);
        xeddsa::verify(&PublicKey(identity), &signed, &signature)
            .map_err(|_| RegistrationError::Signature)?;
        let platform = reg
            .device_props
            .as_ref()
            .and_then(|b| DeviceProps::decode(&b[..]).ok())
            .and_then(|p| p.os)
            .unwrap_or_default();
        let refs: Vec<String> = (0..self.qr.count)
            .map(|_| {
                let raw: [u8; 24] = self.rng.random();
                format!("2@{}", STANDARD.encode(raw))
            })
            .collect();
        let iq = Node::new("iq")
            .attr("from", server_jid())
            .attr("type", "set")
            .attr("id", self.stanza_id())
            .attr("xmlns", "md")
            .children([Node::new("pair-device").children(
                refs.iter()
                    .map(|r| Node::new("ref").bytes(r.as_bytes().to_vec())),
            )]);
        let _ = tx.send(ConnCmd::Send(iq));
        self.pairings.insert(
            conn_id,
            Pairing {
                tx: tx.clone(),
                noise_pub: noise.0,
                identity_pub: identity,
                registration_id,
                signed_prekey: SignedPreKeyPub {
                    id: skey_id,
                    public: skey,
                    signature,
                },
                platform,
                refs,
                refs_sent_ms: now_ms(),
                awaiting: None,
                link_code: None,
            },
        );
        // When the last ref expires, the server gives up on this companion.
        let total = self.qr.total();
        self.after(total, move |w| {
            if let Some(p) = w.pairings.get(&conn_id)
                && p.awaiting.is_none()
            {
                let _ = p.tx.send(ConnCmd::Close(None));
                w.pairings.remove(&conn_id);
            }
        });
        Ok(())
    }

    /// The simulated phone of `pn` scans `qr`. Returns a receiver for the pairing result (the
    /// new device JID) once the companion has signed.
    pub(crate) fn scan(
        &mut self,
        qr: &str,
        pn: &str,
    ) -> Result<oneshot::Receiver<Result<String, PairError>>, PairError> {
        let data = parse_qr(qr)?;
        if !self.accounts.contains_key(pn) {
            return Err(PairError::UnknownAccount(pn.to_owned()));
        }
        let (conn_id, index) = self
            .pairings
            .iter()
            .find_map(|(id, p)| {
                p.refs
                    .iter()
                    .position(|r| *r == data.reference)
                    .map(|i| (*id, i))
            })
            .ok_or(PairError::UnknownRef)?;
        let pairing = self.pairings.get(&conn_id).ok_or(PairError::UnknownRef)?;
        if pairing.awaiting.is_some() {
            return Err(PairError::UnknownRef);
        }
        let elapsed = now_ms().saturating_sub(pairing.refs_sent_ms);
        if u128::from(elapsed) >= self.qr.ref_deadline(index).as_millis() {
            return Err(PairError::ExpiredRef);
        }
        if pairing.noise_pub != data.noise || pairing.identity_pub != data.identity {
            return Err(PairError::KeyMismatch);
        }
        self.send_pair_success(conn_id, pn, &data.adv_secret)
    }

    /// Builds and sends `pair-success` for the companion on `conn_id`, signed by `pn`'s phone.
    pub(crate) fn send_pair_success(
        &mut self,
        conn_id: u64,
        pn: &str,
        adv_secret: &[u8],
    ) -> Result<oneshot::Receiver<Result<String, PairError>>, PairError> {
        let companion_identity = self
            .pairings
            .get(&conn_id)
            .ok_or(PairError::Abandoned)?
            .identity_pub;
        let phone_private = self
            .phones
            .get(pn)
            .map(|p| p.identity_private())
            .ok_or_else(|| PairError::UnknownAccount(pn.to_owned()))?;
        let account = self
            .accounts
            .get_mut(pn)
            .ok_or_else(|| PairError::UnknownAccount(pn.to_owned()))?;
        let device = account.next_device;
        account.next_device = account.next_device.saturating_add(1);
        let key_index = account.next_key_index;
        account.next_key_index += 1;
        let lid = account.lid.clone();
        let raw_id = account.adv_raw_id;
        let details = AdvDeviceIdentity {
            raw_id: Some(raw_id),
            timestamp: Some(now_secs()),
            key_index: Some(key_index),
            account_type: Some(AdvEncryptionType::E2ee as i32),
            device_type: Some(AdvEncryptionType::E2ee as i32),
        }
        .encode_to_vec();
        let account_pub = phone_private.public_key();
        let mut message = ADV_ACCOUNT_SIG_PREFIX.to_vec();
        message.extend_from_slice(&details);
        message.extend_from_slice(&companion_identity);
        let account_signature = xeddsa::sign(&phone_private, &message, &mut self.rng);
        let signed = AdvSignedDeviceIdentity {
            details: Some(details.clone().into()),
            account_signature_key: Some(account_pub.0.to_vec().into()),
            account_signature: Some(account_signature.to_vec().into()),
            device_signature: None,
        }
        .encode_to_vec();
        let mut mac = Hmac::<Sha256>::new_from_slice(adv_secret)
            .map_err(|_| PairError::MalformedQr("adv secret"))?;
        mac.update(&signed);
        let hmac = mac.finalize().into_bytes().to_vec();
        let wrapper = AdvSignedDeviceIdentityHmac {
            details: Some(signed.into()),
            hmac: Some(hmac.into()),
            account_type: Some(AdvEncryptionType::E2ee as i32),
        }
        .encode_to_vec();
        let iq_id = self.stanza_id();
        let iq = Node::new("iq")
            .attr("from", server_jid())
            .attr("type", "set")
            .attr("id", iq_id.clone())
            .attr("t", now_secs())
            .children([Node::new("pair-success").children([
                Node::new("device-identity").bytes(wrapper),
                Node::new("device")
                    .attr("jid", device_jid(pn, Server::WhatsApp, device))
                    .attr("lid", device_jid(&lid, Server::Lid, device)),
                Node::new("platform").attr("name", "android"),
            ])]);
        let (done_tx, done_rx) = oneshot::channel();
        let pairing = self
            .pairings
            .get_mut(&conn_id)
            .ok_or(PairError::Abandoned)?;
        let _ = pairing.tx.send(ConnCmd::Send(iq));
        pairing.awaiting = Some(AwaitingSign {
            iq_id,
            pn: pn.to_owned(),
            device,
            key_index,
            details,
            account_pub: account_pub.0,
            done: Some(done_tx),
        });
        Ok(done_rx)
    }

    /// An IQ from a connection that is not logged in.
    pub(crate) fn on_pairing_iq(&mut self, conn_id: u64, node: &Node) {
        let id = node
            .attr_value("id")
            .map(|v| v.to_string())
            .unwrap_or_default();
        match node.attr_str("xmlns") {
            Some("w:p") => {
                self.send_on(
                    conn_id,
                    Node::new("iq")
                        .attr("from", server_jid())
                        .attr("type", "result")
                        .attr("id", id),
                );
                return;
            }
            Some("md") if node.child_by_tag("link_code_companion_reg").is_some() => {
                self.on_link_code_iq(conn_id, node);
                return;
            }
            _ => {}
        }
        let Some(pairing) = self.pairings.get_mut(&conn_id) else {
            return;
        };
        let Some(awaiting) = pairing.awaiting.as_ref() else {
            return;
        };
        if id != awaiting.iq_id {
            return;
        }
        let Some(mut awaiting) = pairing.awaiting.take() else {
            return;
        };
        let result = match node.attr_str("type") {
            Some("error") => {
                let error = node.child_by_tag("error");
                Err(PairError::Rejected {
                    code: error
                        .and_then(|e| e.attr_value("code"))
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    text: error
                        .and_then(|e| e.attr_value("text"))
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                })
            }
            _ => verify_device_sign(node, &awaiting, &pairing.identity_pub),
        };
        let tx = pairing.tx.clone();
        let outcome = match result {
            Ok(()) => {
                let device = DeviceRecord {
                    id: awaiting.device,
                    noise_pub: Some(pairing.noise_pub),
                    identity_pub: pairing.identity_pub,
                    registration_id: pairing.registration_id,
                    signed_prekey: Some(pairing.signed_prekey.clone()),
                    prekeys: Default::default(),
                    key_index: awaiting.key_index,
                    platform: pairing.platform.clone(),
                    queue: Queue::default(),
                };
                let jid = device_jid(&awaiting.pn, Server::WhatsApp, awaiting.device).to_string();
                if let Some(account) = self.accounts.get_mut(&awaiting.pn) {
                    account.devices.insert(awaiting.device, device);
                }
                self.pairings.remove(&conn_id);
                self.stats.pairings += 1;
                self.dirty = true;
                let _ = tx.send(ConnCmd::Close(Some(
                    Node::new("stream:error").attr("code", "515"),
                )));
                self.notify_device_added(&DevAddr::new(&awaiting.pn, awaiting.device));
                Ok(jid)
            }
            Err(e) => {
                self.pairings.remove(&conn_id);
                let _ = tx.send(ConnCmd::Close(None));
                Err(e)
            }
        };
        if let Some(done) = awaiting.done.take() {
            let _ = done.send(outcome);
        }
    }

    /// Tells the account's other logged-in devices that a device was linked.
    pub(crate) fn notify_device_added(&mut self, added: &DevAddr) {
        let others: Vec<DevAddr> = self
            .accounts
            .get(&added.pn)
            .map(|a| {
                a.device_ids()
                    .into_iter()
                    .filter(|d| *d != added.dev && *d != 0)
                    .map(|d| DevAddr::new(&added.pn, d))
                    .collect()
            })
            .unwrap_or_default();
        let key_index = self
            .accounts
            .get(&added.pn)
            .and_then(|a| a.devices.get(&added.dev))
            .map_or(0, |d| d.key_index);
        for other in others {
            let id = self.stanza_id();
            let node = Node::new("notification")
                .attr("from", self.user_jid(&added.pn, false))
                .attr("type", "devices")
                .attr("id", id)
                .attr("t", now_secs())
                .children([Node::new("add").children([Node::new("device")
                    .attr("jid", self.jid_of(added, false))
                    .attr("key-index", key_index)])]);
            self.enqueue(&other, node);
        }
    }
}

/// Checks `<pair-device-sign><device-identity key-index>` against what the phone signed.
fn verify_device_sign(
    node: &Node,
    awaiting: &AwaitingSign,
    companion: &[u8; 32],
) -> Result<(), PairError> {
    let identity = node
        .child_by_path(&["pair-device-sign", "device-identity"])
        .ok_or(PairError::BadDeviceSignature(
            "no pair-device-sign/device-identity",
        ))?;
    let bytes = crate::util::content_bytes(identity)
        .ok_or(PairError::BadDeviceSignature("empty device-identity"))?;
    let signed = AdvSignedDeviceIdentity::decode(bytes)
        .map_err(|_| PairError::BadDeviceSignature("not an ADVSignedDeviceIdentity"))?;
    if signed.details.as_deref() != Some(&awaiting.details[..]) {
        return Err(PairError::BadDeviceSignature(
            "details differ from what the phone signed",
        ));
    }
    if identity.attr_str("key-index") != Some(&awaiting.key_index.to_string()) {
        return Err(PairError::BadDeviceSignature("key-index differs"));
    }
    let signature = signed
        .device_signature
        .ok_or(PairError::BadDeviceSignature("no device signature"))?;
    let mut message = ADV_DEVICE_SIG_PREFIX.to_vec();
    message.extend_from_slice(&awaiting.details);
    message.extend_from_slice(companion);
    message.extend_from_slice(&awaiting.account_pub);
    xeddsa::verify(&PublicKey(*companion), &message, &signature)
        .map_err(|_| PairError::BadDeviceSignature("signature does not verify"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_forms_parse() {
        let k = STANDARD.encode([7u8; 32]);
        let long = format!("{QR_URL_PREFIX}2@abc,{k},{k},{k},1");
        let short = format!("2@abc,{k},{k},{k}");
        for text in [long, short] {
            let qr = parse_qr(&text).unwrap();
            assert_eq!(qr.reference, "2@abc");
            assert_eq!(qr.noise, [7; 32]);
            assert_eq!(qr.adv_secret, vec![7; 32]);
        }
        assert_eq!(
            parse_qr("a,b"),
            Err(PairError::MalformedQr(
                "expected 4 or 5 comma-separated fields"
            ))
        );
        assert!(matches!(
            parse_qr(&format!("r,xx,{k},{k}")),
            Err(PairError::MalformedQr(_))
        ));
    }
}
