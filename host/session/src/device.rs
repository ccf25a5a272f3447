//! This device's credentials and prekeys: generating them, loading them from the store, and
//! the record formats the session engine gives the (opaque-bytes) store.
//!
//! Contract: [`Device::load_or_create`] returns the credentials of an account, creating and
//! persisting a fresh unpaired device (Noise key, identity key, registration id, adv secret,
//! signed prekey 1) in one write transaction when there are none. Record formats, owned here:
//!
//! | record | bytes |
//! |---|---|
//! | one-time prekey | the 32-byte private key |
//! | signed prekey | 32-byte private key ‖ 64-byte signature |
//!
//! Public halves are derived. [`prekey_upload_node`] builds the `encrypt` IQ of
//! `protocol-whatsmeow.md` §2.9.

use rand_core::CryptoRng;
use wasmeow_protocol::binary::{Jid, Node};
use wasmeow_protocol::keys::{KeyPair, PrivateKey};
use wasmeow_protocol::signal::{self, LocalIdentity, PreKey, SignedPreKey};
use wasmeow_store::{
    AccountStore, DeviceCredentials, DeviceStore as _, PreKeyStore as _, SignedPreKeyStore as _,
    StoreError, Tx,
};
use zeroize::Zeroizing;

/// The id of our signed prekey (whatsmeow uses 1 forever).
pub const SIGNED_PREKEY_ID: u32 = 1;

/// A record read from the store is not in the format written here.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record has the wrong length or content.
    #[error("stored {0} record is malformed")]
    Malformed(&'static str),
}

/// The credentials in memory.
#[derive(Clone)]
pub struct Device {
    /// The Noise static key.
    pub noise: KeyPair,
    /// The Signal identity and registration id.
    pub identity: LocalIdentity,
    /// The adv secret (QR flow: random; pairing-code flow: derived).
    pub adv_secret: [u8; 32],
    /// Our signed prekey.
    pub signed_prekey: SignedPreKey,
    /// The signed device identity once paired (sent as `<device-identity>`).
    pub account: Option<Vec<u8>>,
    /// Our phone-number device JID once paired.
    pub jid: Option<Jid>,
    /// Our LID device JID once known.
    pub lid: Option<Jid>,
    /// Push name.
    pub push_name: String,
    /// Platform reported at pairing.
    pub platform: String,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("jid", &self.jid)
            .field("lid", &self.lid)
            .field("paired", &self.account.is_some())
            .finish_non_exhaustive()
    }
}

impl Device {
    /// A fresh, unpaired device.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let noise = KeyPair::generate(rng);
        let identity = LocalIdentity::generate(rng);
        let signed_prekey = SignedPreKey::generate(&identity.key_pair, SIGNED_PREKEY_ID, rng);
        let mut adv_secret = [0u8; 32];
        rng.fill_bytes(&mut adv_secret);
        Self {
            noise,
            identity,
            adv_secret,
            signed_prekey,
            account: None,
            jid: None,
            lid: None,
            push_name: String::new(),
            platform: String::new(),
        }
    }

    /// Whether the device is linked to a phone.
    pub fn is_paired(&self) -> bool {
        self.jid.is_some() && self.account.is_some()
    }

    /// The store form.
    pub fn credentials(&self) -> DeviceCredentials {
        DeviceCredentials {
            noise_key: Zeroizing::new(self.noise.private.to_bytes()),
            identity_key: Zeroizing::new(self.identity.key_pair.private.to_bytes()),
            registration_id: self.identity.registration_id,
            adv_secret: Zeroizing::new(self.adv_secret),
            account: self.account.clone().map(wasmeow_store::Secret::new),
            jid: self.jid.as_ref().map(ToString::to_string),
            lid: self.lid.as_ref().map(ToString::to_string),
            push_name: self.push_name.clone(),
            platform: self.platform.clone(),
        }
    }

    /// Writes the credentials and the signed prekey.
    pub fn save(&self, tx: &Tx<'_>) -> Result<(), StoreError> {
        tx.put_device(&self.credentials())?;
        tx.put_signed_prekey(
            self.signed_prekey.id,
            &signed_prekey_record(&self.signed_prekey),
        )?;
        Ok(())
    }

    /// Reads the credentials, if any.
    pub fn load(tx: &Tx<'_>) -> Result<Option<Self>, DeviceError> {
        let Some(c) = tx.get_device()? else {
            return Ok(None);
        };
        let spk = tx
            .get_signed_prekey(SIGNED_PREKEY_ID)?
            .ok_or(DeviceError::Malformed("signed prekey (missing)"))?;
        let signed_prekey = parse_signed_prekey(SIGNED_PREKEY_ID, &spk)?;
        let parse_jid = |s: &Option<String>| -> Result<Option<Jid>, DeviceError> {
            s.as_deref()
                .map(|s| {
                    s.parse::<Jid>()
                        .map_err(|_| DeviceError::Malformed("device jid"))
                })
                .transpose()
        };
        Ok(Some(Self {
            noise: KeyPair::from_private(PrivateKey::from_bytes(*c.noise_key)),
            identity: LocalIdentity {
                key_pair: KeyPair::from_private(PrivateKey::from_bytes(*c.identity_key)),
                registration_id: c.registration_id,
            },
            adv_secret: *c.adv_secret,
            signed_prekey,
            account: c.account.as_ref().map(|a| a.to_vec()),
            jid: parse_jid(&c.jid)?,
            lid: parse_jid(&c.lid)?,
            push_name: c.push_name.clone(),
            platform: c.platform.clone(),
        }))
    }

    /// Loads the account's device, creating and saving a fresh one if there is none.
    pub fn load_or_create<A: AccountStore, R: CryptoRng + ?Sized>(
        store: &A,
        rng: &mut R,
    ) -> Result<Self, DeviceError> {
        if let Some(d) = store.read(Self::load)? {
            return Ok(d);
        }
        let fresh = Self::generate(rng);
        store.write(|tx| {
            // Another caller may have created it in between: keep theirs.
            if let Some(d) = Self::load(tx)? {
                return Ok(d);
            }
            fresh.save(tx)?;
            Ok::<_, DeviceError>(fresh)
        })
    }
}

/// `private(32) ‖ signature(64)`.
pub fn signed_prekey_record(spk: &SignedPreKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(&spk.key_pair.private.to_bytes());
    out.extend_from_slice(&spk.signature);
    out
}

/// Reads a signed prekey record.
pub fn parse_signed_prekey(id: u32, record: &[u8]) -> Result<SignedPreKey, DeviceError> {
    if record.len() != 96 {
        return Err(DeviceError::Malformed("signed prekey"));
    }
    let mut private = [0u8; 32];
    private.copy_from_slice(&record[..32]);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&record[32..]);
    Ok(SignedPreKey {
        id,
        key_pair: KeyPair::from_private(PrivateKey::from_bytes(private)),
        signature,
    })
}

/// Reads a one-time prekey record.
pub fn parse_prekey(id: u32, record: &[u8]) -> Result<PreKey, DeviceError> {
    let private: [u8; 32] = record
        .try_into()
        .map_err(|_| DeviceError::Malformed("prekey"))?;
    Ok(PreKey {
        id,
        key_pair: KeyPair::from_private(PrivateKey::from_bytes(private)),
    })
}

/// Generates the record of a new one-time prekey.
pub fn new_prekey_record<R: CryptoRng + ?Sized>(rng: &mut R) -> wasmeow_store::Secret {
    wasmeow_store::Secret::new(PrivateKey::generate(rng).to_bytes().to_vec())
}

/// The 3-byte big-endian form of a 24-bit key id.
pub fn id3(id: u32) -> Vec<u8> {
    id.to_be_bytes()[1..].to_vec()
}

/// `<key><id/><value/></key>` for a one-time prekey.
pub fn prekey_node(key: &PreKey) -> Node {
    Node::new("key").children([
        Node::new("id").bytes(id3(key.id)),
        Node::new("value").bytes(key.key_pair.public.0.to_vec()),
    ])
}

/// `<skey><id/><value/><signature/></skey>`.
pub fn signed_prekey_node(spk: &SignedPreKey) -> Node {
    Node::new("skey").children([
        Node::new("id").bytes(id3(spk.id)),
        Node::new("value").bytes(spk.key_pair.public.0.to_vec()),
        Node::new("signature").bytes(spk.signature.to_vec()),
    ])
}

/// The prekey upload IQ content (without the `iq` envelope's id).
pub fn prekey_upload_node(device: &Device, keys: &[PreKey]) -> Node {
    Node::new("iq")
        .attr("xmlns", "encrypt")
        .attr("type", "set")
        .attr("to", server_jid())
        .children([
            Node::new("registration").bytes(device.identity.registration_id.to_be_bytes().to_vec()),
            Node::new("type").bytes(vec![wasmeow_protocol::keys::DJB_TYPE]),
            Node::new("identity").bytes(device.identity.public().0.to_vec()),
            Node::new("list").children(keys.iter().map(prekey_node)),
            signed_prekey_node(&device.signed_prekey),
        ])
}

/// `@s.whatsapp.net`.
pub fn server_jid() -> Jid {
    Jid::server_jid(wasmeow_protocol::binary::Server::WhatsApp)
}

/// Ensures `count` not-yet-uploaded prekeys exist and returns them.
pub fn prekeys_for_upload<A: AccountStore, R: CryptoRng + ?Sized>(
    store: &A,
    count: u32,
    rng: &mut R,
) -> Result<Vec<PreKey>, DeviceError> {
    let records = store.write::<_, StoreError>(|tx| {
        tx.get_or_gen_prekeys(count, &mut |_| new_prekey_record(rng))
    })?;
    records
        .iter()
        .map(|k| parse_prekey(k.id, &k.record))
        .collect()
}

/// The registration id as signal uses it (re-exported for the retry receipt).
pub fn registration_bytes(identity: &LocalIdentity) -> Vec<u8> {
    identity.registration_id.to_be_bytes().to_vec()
}

/// Generates a registration id (re-export for tests).
pub fn registration_id<R: CryptoRng + ?Sized>(rng: &mut R) -> u32 {
    signal::generate_registration_id(rng)
}
