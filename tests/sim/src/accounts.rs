//! Accounts and their devices as the server knows them: phone number, LID, the primary phone's
//! account key, every linked device's Noise key, Signal identity, signed prekey and one-time
//! prekeys, and the per-account settings (privacy, blocklist, limits).
//!
//! Contract: this is server-side bookkeeping only, no IO. One-time prekeys are consumed by
//! [`DeviceRecord::take_bundle`] exactly once, as the real server hands each out once. Device 0
//! is always the primary phone; its private keys live in [`crate::phone`], never here.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::config::RateLimit;
use crate::routing::Queue;
use crate::util::{b64, hex32, opt_hex32};

/// A signed prekey as uploaded: id, public key, XEdDSA signature by the identity key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SignedPreKeyPub {
    pub id: u32,
    #[serde(with = "hex32")]
    pub public: [u8; 32],
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}

/// What a prekey fetch returns for one device.
#[derive(Debug, Clone)]
pub(crate) struct Bundle {
    pub registration_id: u32,
    pub identity: [u8; 32],
    pub signed_prekey: SignedPreKeyPub,
    pub prekey: Option<(u32, [u8; 32])>,
}

/// One device of an account (0 = the primary phone, others = linked companions).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeviceRecord {
    pub id: u16,
    /// The companion's Noise static key; logins must present it. `None` for the phone.
    #[serde(with = "opt_hex32")]
    pub noise_pub: Option<[u8; 32]>,
    #[serde(with = "hex32")]
    pub identity_pub: [u8; 32],
    pub registration_id: u32,
    pub signed_prekey: Option<SignedPreKeyPub>,
    /// One-time prekeys not yet handed out, by id.
    #[serde(with = "prekey_map")]
    pub prekeys: BTreeMap<u32, [u8; 32]>,
    /// ADV key index assigned at pairing (0 for the phone).
    pub key_index: u32,
    /// Platform name the companion announced (DeviceProps.os) or the phone's platform.
    pub platform: String,
    /// Stanzas for this device not yet acknowledged, in delivery order.
    pub queue: Queue,
}

mod prekey_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        map: &BTreeMap<u32, [u8; 32]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(k, v)| (k.to_string(), hex::encode(v))))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<u32, [u8; 32]>, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                let id = k.parse::<u32>().map_err(serde::de::Error::custom)?;
                let bytes = hex::decode(v).map_err(serde::de::Error::custom)?;
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| serde::de::Error::custom("prekey must be 32 bytes"))?;
                Ok((id, key))
            })
            .collect()
    }
}

impl DeviceRecord {
    /// The bundle a peer gets for this device; consumes the lowest one-time prekey if any.
    pub(crate) fn take_bundle(&mut self) -> Option<Bundle> {
        let signed_prekey = self.signed_prekey.clone()?;
        let prekey = self.prekeys.pop_first();
        Some(Bundle {
            registration_id: self.registration_id,
            identity: self.identity_pub,
            signed_prekey,
            prekey,
        })
    }
}

/// A user account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Account {
    /// Phone number, digits only (the user part of `…@s.whatsapp.net`).
    pub pn: String,
    /// LID, digits only (the user part of `…@lid`).
    pub lid: String,
    /// Display name sent as `notify`.
    pub push_name: String,
    /// Devices by id; 0 is the phone.
    pub devices: BTreeMap<u16, DeviceRecord>,
    /// Next companion device id to assign.
    pub next_device: u16,
    /// Next ADV key index to assign.
    pub next_key_index: u32,
    /// ADV raw id of the account (constant per account, random).
    pub adv_raw_id: u32,
    /// Refuse new 1:1 chats with 463.
    pub restricted: bool,
    /// Send rate override (falls back to the server default).
    pub rate_limit: Option<RateLimit>,
    /// Send timestamps (ms) inside the current rate window.
    #[serde(skip)]
    pub recent_sends: VecDeque<u64>,
    /// Privacy settings by category name.
    pub privacy: BTreeMap<String, String>,
    /// Blocked JIDs (as strings).
    pub blocklist: BTreeSet<String>,
    /// Users (pn) this account has exchanged 1:1 messages with.
    pub chats: BTreeSet<String>,
    /// Last presence: true = available.
    #[serde(skip)]
    pub available: bool,
    /// Unix seconds of the last presence change.
    pub last_seen: u64,
}

/// The privacy settings a fresh account has (all names whatsmeow knows, typical defaults).
pub(crate) fn default_privacy() -> BTreeMap<String, String> {
    [
        ("groupadd", "all"),
        ("last", "all"),
        ("status", "contacts"),
        ("profile", "all"),
        ("readreceipts", "all"),
        ("online", "all"),
        ("calladd", "all"),
        ("messages", "all"),
        ("defense", "off"),
        ("stickers", "all"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

impl Account {
    /// Companion devices (id > 0) and the phone, in id order.
    pub(crate) fn device_ids(&self) -> Vec<u16> {
        self.devices.keys().copied().collect()
    }

    /// Whether a send now stays within `limit`; records the send if so.
    pub(crate) fn admit_send(&mut self, limit: Option<RateLimit>, now_ms: u64) -> bool {
        let Some(limit) = self.rate_limit.or(limit) else {
            return true;
        };
        while let Some(&first) = self.recent_sends.front() {
            if now_ms.saturating_sub(first) >= limit.per_ms {
                self.recent_sends.pop_front();
            } else {
                break;
            }
        }
        if self.recent_sends.len() >= limit.messages as usize {
            return false;
        }
        self.recent_sends.push_back(now_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            pn: "1".into(),
            lid: "2".into(),
            push_name: String::new(),
            devices: BTreeMap::new(),
            next_device: 1,
            next_key_index: 1,
            adv_raw_id: 7,
            restricted: false,
            rate_limit: None,
            recent_sends: VecDeque::new(),
            privacy: default_privacy(),
            blocklist: BTreeSet::new(),
            chats: BTreeSet::new(),
            available: false,
            last_seen: 0,
        }
    }

    #[test]
    fn rate_limit_window_slides() {
        let mut a = account();
        let limit = Some(RateLimit {
            messages: 2,
            per_ms: 1000,
        });
        assert!(a.admit_send(limit, 0));
        assert!(a.admit_send(limit, 10));
        assert!(!a.admit_send(limit, 20));
        assert!(a.admit_send(limit, 1001));
        assert!(a.admit_send(None, 1002) || a.recent_sends.len() == 2);
    }

    #[test]
    fn bundle_consumes_one_prekey() {
        let mut d = DeviceRecord {
            id: 1,
            noise_pub: None,
            identity_pub: [1; 32],
            registration_id: 5,
            signed_prekey: Some(SignedPreKeyPub {
                id: 1,
                public: [2; 32],
                signature: vec![0; 64],
            }),
            prekeys: [(3, [3; 32]), (4, [4; 32])].into_iter().collect(),
            key_index: 1,
            platform: String::new(),
            queue: Queue::default(),
        };
        assert_eq!(d.take_bundle().unwrap().prekey, Some((3, [3; 32])));
        assert_eq!(d.take_bundle().unwrap().prekey, Some((4, [4; 32])));
        assert_eq!(d.take_bundle().unwrap().prekey, None);
    }
}
