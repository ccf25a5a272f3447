//! [`Tx`]: the operations of one transaction on one account, written once against the backend
//! interface ([`crate::raw::Raw`]) so the memory and redb stores share their semantics.
//!
//! Record-key layouts (account-relative; the backend prepends the 8-byte account namespace).
//! `H(label, parts)` is the account's 16-byte keyed hash. Anything naming a contact is hashed;
//! where a listing needs the clear key, it is stored inside the (encrypted) value.
//!
//! | table | key | value |
//! |---|---|---|
//! | identities, signal_sessions | `H(user,name) ‖ device (u32 BE)` | name, device, key/record |
//! | prekeys, signed_prekeys | id (u32 BE) | record |
//! | sender_keys | `H(group,group) ‖ H(sender,name,device)` | group, name, device, record |
//! | device | `creds` | credentials |
//! | lid_to_pn / pn_to_lid | `H(lid,lid)` / `H(pn,pn)` | both sides |
//! | device_lists | `H(user,user)` | user, fetched_at, devices |
//! | seen / seen_order | `H(msg,id)` / seq (u64 BE) | seq, ts / hash, ts |
//! | recent_sent / recent_sent_order | `H(sent,chat,id)` / seq | seq, chat, id, payload / hash |
//! | queue | queue tag (u8) ‖ id (u64 BE) | attempts, payload |
//! | counters | `prekey`, `queue/<tag>` | next ids |
//! | plugin_kv | `H(plugin,plugin) ‖ H(kv,plugin,key)` | key, value |
//! | jobs | `H(job,id)` | id, data |

use crate::error::StoreError;
use crate::raw::{Dec, Enc, KeyRange, Raw, Table, take_tail};
use crate::traits::{
    DedupeStore, DeviceListStore, DeviceStore, IdentityStore, JobStore, LidStore, PluginKvStore,
    PreKeyStore, QueueStore, RecentSentStore, SenderKeyStore, SessionStore, SignedPreKeyStore,
};
use crate::types::{
    DeviceCredentials, DeviceList, Limits, PreKey, Queue, QueueItem, Secret, SignalAddress,
};

/// Largest value the store accepts (16 MiB).
pub const MAX_VALUE_LEN: usize = 16 << 20;
/// Prekey ids are 24-bit on the wire.
const MAX_PREKEY_ID: u32 = 0x00ff_ffff;
const DEVICE_KEY: &[u8] = b"creds";
const PREKEY_COUNTER: &[u8] = b"prekey";

/// One transaction on one account. Obtained from [`crate::AccountStore::read`] or
/// [`crate::AccountStore::write`]; implements every per-kind trait.
pub struct Tx<'a> {
    raw: &'a dyn Raw,
    limits: Limits,
}

impl<'a> Tx<'a> {
    pub(crate) fn new(raw: &'a dyn Raw, limits: Limits) -> Self {
        Self { raw, limits }
    }

    /// Two 16-byte hashes side by side.
    fn pair(a: [u8; 16], b: [u8; 16]) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..16].copy_from_slice(&a);
        k[16..].copy_from_slice(&b);
        k
    }

    /// `H(user, name) ‖ device (u32 BE)`. The device number stays clear: how many records
    /// share a user prefix is visible anyway, and a device number names no one.
    fn user_addr_key(&self, addr: &SignalAddress) -> [u8; 20] {
        let mut k = [0u8; 20];
        k[..16].copy_from_slice(&self.raw.hash(b"user", &[addr.name.as_bytes()]));
        k[16..].copy_from_slice(&addr.device.to_be_bytes());
        k
    }

    fn user_prefix(&self, name: &str) -> [u8; 16] {
        self.raw.hash(b"user", &[name.as_bytes()])
    }

    /// Removes every record of `t` in `range`; how many.
    fn remove_range(&self, t: Table, range: &KeyRange) -> Result<usize, StoreError> {
        let keys = self.raw.scan_keys(t, range, false, usize::MAX)?;
        for k in &keys {
            self.raw.remove(t, k)?;
        }
        Ok(keys.len())
    }

    fn read_counter(&self, name: &[u8], n: usize) -> Result<Vec<u64>, StoreError> {
        match self.raw.get(Table::Counters, name)? {
            None => Ok(vec![0; n]),
            Some(v) => {
                let mut d = Dec::new(&v, Table::Counters, name);
                let out = (0..n).map(|_| d.u64()).collect::<Result<Vec<_>, _>>()?;
                d.end()?;
                Ok(out)
            }
        }
    }

    fn write_counter(&self, name: &[u8], values: &[u64]) -> Result<(), StoreError> {
        let v = values.iter().fold(Enc::new(), |e, x| e.u64(*x)).finish();
        self.raw.put(Table::Counters, name, &v)
    }

    /// `(next_prekey_id, uploaded_up_to)`.
    fn prekey_counters(&self) -> Result<(u32, u32), StoreError> {
        let c = self.read_counter(PREKEY_COUNTER, 2)?;
        let next = if c[0] == 0 { 1 } else { c[0] };
        let malformed = || StoreError::Malformed {
            table: Table::Counters.name(),
            record: hex::encode(PREKEY_COUNTER),
            reason: "prekey counter out of range",
        };
        Ok((
            u32::try_from(next).map_err(|_| malformed())?,
            u32::try_from(c[1]).map_err(|_| malformed())?,
        ))
    }

    fn decode_prekey(
        &self,
        key: &[u8],
        v: Secret,
        uploaded_up_to: u32,
    ) -> Result<PreKey, StoreError> {
        let id = u32_key(Table::PreKeys, key)?;
        let at = Dec::new(&v, Table::PreKeys, key).tail_offset(v.len())?;
        Ok(PreKey {
            id,
            record: take_tail(v, at),
            uploaded: id <= uploaded_up_to,
        })
    }

    /// The last sequence number in an order table, if any.
    fn last_seq(&self, order: Table) -> Result<Option<u64>, StoreError> {
        let last = self.raw.scan_keys(order, &KeyRange::prefix(&[]), true, 1)?;
        last.first().map(|k| u64_key(order, k)).transpose()
    }

    /// Drops entries of a bounded map from the front of its order table while `evict(seq, ts)`
    /// says so. Order values are `hash16 ‖ ts (u64)`.
    fn evict_front(
        &self,
        map: Table,
        order: Table,
        mut evict: impl FnMut(u64, u64) -> bool,
    ) -> Result<(), StoreError> {
        let mut batch = 2;
        loop {
            let front = self.raw.scan(order, &KeyRange::prefix(&[]), false, batch)?;
            let n = front.len();
            for (k, v) in front {
                let seq = u64_key(order, &k)?;
                let mut d = Dec::new(&v, order, &k);
                let hash = d.bytes()?.to_vec();
                let ts = d.u64()?;
                d.end()?;
                if !evict(seq, ts) {
                    return Ok(());
                }
                self.raw.remove(order, &k)?;
                self.raw.remove(map, &hash)?;
            }
            if n < batch {
                return Ok(());
            }
            batch = 64;
        }
    }

    fn queue_counter_key(queue: Queue) -> Vec<u8> {
        [b"queue/".as_slice(), &[queue.tag()]].concat()
    }

    fn queue_key(queue: Queue, id: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(9);
        k.push(queue.tag());
        k.extend_from_slice(&id.to_be_bytes());
        k
    }

    fn kv_key(&self, plugin: &str, key: &str) -> [u8; 32] {
        Self::pair(
            self.raw.hash(b"plugin", &[plugin.as_bytes()]),
            self.raw.hash(b"kv", &[plugin.as_bytes(), key.as_bytes()]),
        )
    }

    fn decode_kv(&self, k: &[u8], v: &[u8]) -> Result<(String, Secret), StoreError> {
        let mut d = Dec::new(v, Table::PluginKv, k);
        let key = d.string()?;
        let value = d.secret()?;
        d.end()?;
        Ok((key, value))
    }

    fn sender_key_key(&self, group: &str, sender: &SignalAddress) -> [u8; 32] {
        let dev = sender.device.to_be_bytes();
        Self::pair(
            self.raw.hash(b"group", &[group.as_bytes()]),
            self.raw.hash(b"sender", &[sender.name.as_bytes(), &dev]),
        )
    }

    fn recent_key(&self, chat: &str, msg_id: &str) -> [u8; 16] {
        self.raw
            .hash(b"sent", &[chat.as_bytes(), msg_id.as_bytes()])
    }

    fn get_lid_pair(&self, t: Table, key: &[u8]) -> Result<Option<(String, String)>, StoreError> {
        let Some(v) = self.raw.get(t, key)? else {
            return Ok(None);
        };
        let mut d = Dec::new(&v, t, key);
        let a = d.string()?;
        let b = d.string()?;
        d.end()?;
        Ok(Some((a, b)))
    }
}

fn check_len(v: &[u8]) -> Result<(), StoreError> {
    if v.len() > MAX_VALUE_LEN {
        return Err(StoreError::InvalidInput("value larger than 16 MiB"));
    }
    Ok(())
}

fn check_name(s: &str, what: &'static str) -> Result<(), StoreError> {
    if s.is_empty() {
        return Err(StoreError::InvalidInput(what));
    }
    check_len(s.as_bytes())
}

fn u32_key(t: Table, k: &[u8]) -> Result<u32, StoreError> {
    let a: [u8; 4] = k.try_into().map_err(|_| StoreError::Malformed {
        table: t.name(),
        record: hex::encode(k),
        reason: "key is not a u32",
    })?;
    Ok(u32::from_be_bytes(a))
}

fn u64_key(t: Table, k: &[u8]) -> Result<u64, StoreError> {
    let a: [u8; 8] = k.try_into().map_err(|_| StoreError::Malformed {
        table: t.name(),
        record: hex::encode(k),
        reason: "key is not a u64",
    })?;
    Ok(u64::from_be_bytes(a))
}

impl IdentityStore for Tx<'_> {
    fn put_identity(&self, addr: &SignalAddress, key: &[u8; 32]) -> Result<(), StoreError> {
        check_name(&addr.name, "empty signal address name")?;
        let v = Enc::new()
            .bytes(addr.name.as_bytes())
            .u32(addr.device)
            .bytes(key)
            .finish();
        self.raw
            .put(Table::Identities, &self.user_addr_key(addr), &v)
    }

    fn get_identity(&self, addr: &SignalAddress) -> Result<Option<[u8; 32]>, StoreError> {
        let k = self.user_addr_key(addr);
        let Some(v) = self.raw.get(Table::Identities, &k)? else {
            return Ok(None);
        };
        let mut d = Dec::new(&v, Table::Identities, &k);
        d.bytes()?;
        d.u32()?;
        let key = d.array32()?;
        d.end()?;
        Ok(Some(*key))
    }

    fn is_trusted_identity(
        &self,
        addr: &SignalAddress,
        key: &[u8; 32],
    ) -> Result<bool, StoreError> {
        Ok(match self.get_identity(addr)? {
            None => true,
            Some(stored) => &stored == key,
        })
    }

    fn delete_identity(&self, addr: &SignalAddress) -> Result<bool, StoreError> {
        self.raw
            .remove(Table::Identities, &self.user_addr_key(addr))
    }

    fn delete_all_identities(&self, name: &str) -> Result<usize, StoreError> {
        self.remove_range(
            Table::Identities,
            &KeyRange::prefix(&self.user_prefix(name)),
        )
    }
}

impl SessionStore for Tx<'_> {
    fn get_session(&self, addr: &SignalAddress) -> Result<Option<Secret>, StoreError> {
        let k = self.user_addr_key(addr);
        let Some(v) = self.raw.get(Table::Sessions, &k)? else {
            return Ok(None);
        };
        let mut d = Dec::new(&v, Table::Sessions, &k);
        d.bytes()?;
        d.u32()?;
        let at = d.tail_offset(v.len())?;
        Ok(Some(take_tail(v, at)))
    }

    fn has_session(&self, addr: &SignalAddress) -> Result<bool, StoreError> {
        let k = self.user_addr_key(addr);
        let range = KeyRange {
            end: Some([k.as_slice(), &[0]].concat()),
            start: k.to_vec(),
        };
        Ok(!self
            .raw
            .scan_keys(Table::Sessions, &range, false, 1)?
            .is_empty())
    }

    fn put_session(&self, addr: &SignalAddress, record: &[u8]) -> Result<(), StoreError> {
        check_name(&addr.name, "empty signal address name")?;
        check_len(record)?;
        let v = Enc::new()
            .bytes(addr.name.as_bytes())
            .u32(addr.device)
            .bytes(record)
            .finish();
        self.raw.put(Table::Sessions, &self.user_addr_key(addr), &v)
    }

    fn delete_session(&self, addr: &SignalAddress) -> Result<bool, StoreError> {
        self.raw.remove(Table::Sessions, &self.user_addr_key(addr))
    }

    fn delete_all_sessions(&self, name: &str) -> Result<usize, StoreError> {
        self.remove_range(Table::Sessions, &KeyRange::prefix(&self.user_prefix(name)))
    }

    fn sessions_of(&self, name: &str) -> Result<Vec<(SignalAddress, Secret)>, StoreError> {
        let range = KeyRange::prefix(&self.user_prefix(name));
        let mut out = Vec::new();
        for (k, v) in self.raw.scan(Table::Sessions, &range, false, usize::MAX)? {
            let mut d = Dec::new(&v, Table::Sessions, &k);
            let n = d.string()?;
            let device = d.u32()?;
            let record = d.secret()?;
            d.end()?;
            // A 128-bit hash prefix collision between two users is negligible, but the clear
            // name is right here: never return another user's session.
            if n == name {
                out.push((SignalAddress::new(n, device), record));
            }
        }
        out.sort_by_key(|(a, _)| a.device);
        Ok(out)
    }
}

impl PreKeyStore for Tx<'_> {
    fn gen_prekeys(
        &self,
        count: u32,
        generate: &mut dyn FnMut(u32) -> Secret,
    ) -> Result<Vec<PreKey>, StoreError> {
        let (next, uploaded) = self.prekey_counters()?;
        let last = u64::from(next) + u64::from(count);
        if last - 1 > u64::from(MAX_PREKEY_ID) {
            return Err(StoreError::PreKeyIdsExhausted);
        }
        let mut out = Vec::with_capacity(count as usize);
        for id in next..next + count {
            let record = generate(id);
            check_len(&record)?;
            let v = Enc::new().bytes(&record).finish();
            self.raw.put(Table::PreKeys, &id.to_be_bytes(), &v)?;
            out.push(PreKey {
                id,
                record,
                uploaded: false,
            });
        }
        self.write_counter(PREKEY_COUNTER, &[last, u64::from(uploaded)])?;
        Ok(out)
    }

    fn get_or_gen_prekeys(
        &self,
        count: u32,
        generate: &mut dyn FnMut(u32) -> Secret,
    ) -> Result<Vec<PreKey>, StoreError> {
        let (_, uploaded) = self.prekey_counters()?;
        let start = uploaded.saturating_add(1);
        let range = KeyRange::from_within(&[], start.to_be_bytes().to_vec());
        let mut out = Vec::with_capacity(count as usize);
        if uploaded < u32::MAX {
            for (k, v) in self
                .raw
                .scan(Table::PreKeys, &range, false, count as usize)?
            {
                out.push(self.decode_prekey(&k, v, uploaded)?);
            }
        }
        let missing = count - out.len() as u32;
        if missing > 0 {
            out.extend(self.gen_prekeys(missing, generate)?);
        }
        Ok(out)
    }

    fn get_prekey(&self, id: u32) -> Result<Option<PreKey>, StoreError> {
        let k = id.to_be_bytes();
        let Some(v) = self.raw.get(Table::PreKeys, &k)? else {
            return Ok(None);
        };
        let (_, uploaded) = self.prekey_counters()?;
        self.decode_prekey(&k, v, uploaded).map(Some)
    }

    fn remove_prekey(&self, id: u32) -> Result<bool, StoreError> {
        self.raw.remove(Table::PreKeys, &id.to_be_bytes())
    }

    fn mark_prekeys_uploaded(&self, up_to: u32) -> Result<(), StoreError> {
        let (next, uploaded) = self.prekey_counters()?;
        if up_to > uploaded {
            self.write_counter(PREKEY_COUNTER, &[u64::from(next), u64::from(up_to)])?;
        }
        Ok(())
    }

    fn uploaded_prekey_count(&self) -> Result<u32, StoreError> {
        let (_, uploaded) = self.prekey_counters()?;
        if uploaded == 0 {
            return Ok(0);
        }
        let range = KeyRange {
            start: Vec::new(),
            end: uploaded.checked_add(1).map(|e| e.to_be_bytes().to_vec()),
        };
        let n = self
            .raw
            .scan_keys(Table::PreKeys, &range, false, usize::MAX)?
            .len();
        Ok(n as u32)
    }
}

impl SignedPreKeyStore for Tx<'_> {
    fn put_signed_prekey(&self, id: u32, record: &[u8]) -> Result<(), StoreError> {
        check_len(record)?;
        let v = Enc::new().bytes(record).finish();
        self.raw.put(Table::SignedPreKeys, &id.to_be_bytes(), &v)
    }

    fn get_signed_prekey(&self, id: u32) -> Result<Option<Secret>, StoreError> {
        let k = id.to_be_bytes();
        let Some(v) = self.raw.get(Table::SignedPreKeys, &k)? else {
            return Ok(None);
        };
        let at = Dec::new(&v, Table::SignedPreKeys, &k).tail_offset(v.len())?;
        Ok(Some(take_tail(v, at)))
    }

    fn remove_signed_prekey(&self, id: u32) -> Result<bool, StoreError> {
        self.raw.remove(Table::SignedPreKeys, &id.to_be_bytes())
    }

    fn signed_prekey_ids(&self) -> Result<Vec<u32>, StoreError> {
        self.raw
            .scan_keys(
                Table::SignedPreKeys,
                &KeyRange::prefix(&[]),
                false,
                usize::MAX,
            )?
            .iter()
            .map(|k| u32_key(Table::SignedPreKeys, k))
            .collect()
    }
}

impl SenderKeyStore for Tx<'_> {
    fn put_sender_key(
        &self,
        group: &str,
        sender: &SignalAddress,
        record: &[u8],
    ) -> Result<(), StoreError> {
        check_name(group, "empty group id")?;
        check_name(&sender.name, "empty signal address name")?;
        check_len(record)?;
        let v = Enc::new()
            .bytes(group.as_bytes())
            .bytes(sender.name.as_bytes())
            .u32(sender.device)
            .bytes(record)
            .finish();
        self.raw
            .put(Table::SenderKeys, &self.sender_key_key(group, sender), &v)
    }

    fn get_sender_key(
        &self,
        group: &str,
        sender: &SignalAddress,
    ) -> Result<Option<Secret>, StoreError> {
        let k = self.sender_key_key(group, sender);
        let Some(v) = self.raw.get(Table::SenderKeys, &k)? else {
            return Ok(None);
        };
        let mut d = Dec::new(&v, Table::SenderKeys, &k);
        d.bytes()?;
        d.bytes()?;
        d.u32()?;
        let at = d.tail_offset(v.len())?;
        Ok(Some(take_tail(v, at)))
    }

    fn delete_sender_key(&self, group: &str, sender: &SignalAddress) -> Result<bool, StoreError> {
        self.raw
            .remove(Table::SenderKeys, &self.sender_key_key(group, sender))
    }

    fn delete_group_sender_keys(&self, group: &str) -> Result<usize, StoreError> {
        let prefix = self.raw.hash(b"group", &[group.as_bytes()]);
        self.remove_range(Table::SenderKeys, &KeyRange::prefix(&prefix))
    }
}

impl DeviceStore for Tx<'_> {
    fn put_device(&self, c: &DeviceCredentials) -> Result<(), StoreError> {
        let v = Enc::new()
            .u8(1) // record version
            .bytes(c.noise_key.as_slice())
            .bytes(c.identity_key.as_slice())
            .u32(c.registration_id)
            .bytes(c.adv_secret.as_slice())
            .opt_bytes(c.account.as_deref())
            .opt_bytes(c.jid.as_ref().map(|s| s.as_bytes()))
            .opt_bytes(c.lid.as_ref().map(|s| s.as_bytes()))
            .bytes(c.push_name.as_bytes())
            .bytes(c.platform.as_bytes())
            .finish();
        check_len(&v)?;
        self.raw.put(Table::Device, DEVICE_KEY, &v)
    }

    fn get_device(&self) -> Result<Option<DeviceCredentials>, StoreError> {
        let Some(v) = self.raw.get(Table::Device, DEVICE_KEY)? else {
            return Ok(None);
        };
        let mut d = Dec::new(&v, Table::Device, DEVICE_KEY);
        let malformed = |reason| StoreError::Malformed {
            table: Table::Device.name(),
            record: hex::encode(DEVICE_KEY),
            reason,
        };
        if d.u8()? != 1 {
            return Err(malformed("unknown credentials record version"));
        }
        let noise_key = d.array32()?;
        let identity_key = d.array32()?;
        let registration_id = d.u32()?;
        let adv_secret = d.array32()?;
        let account = d.opt_bytes()?.map(Secret::from);
        let utf8 = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| malformed("invalid UTF-8"));
        let jid = d.opt_bytes()?.map(utf8).transpose()?;
        let lid = d.opt_bytes()?.map(utf8).transpose()?;
        let push_name = d.string()?;
        let platform = d.string()?;
        d.end()?;
        Ok(Some(DeviceCredentials {
            noise_key,
            identity_key,
            registration_id,
            adv_secret,
            account,
            jid,
            lid,
            push_name,
            platform,
        }))
    }

    fn delete_device(&self) -> Result<bool, StoreError> {
        self.raw.remove(Table::Device, DEVICE_KEY)
    }
}

impl LidStore for Tx<'_> {
    fn put_lid_mapping(&self, lid: &str, pn: &str) -> Result<(), StoreError> {
        check_name(lid, "empty LID")?;
        check_name(pn, "empty phone number")?;
        let lk = self.raw.hash(b"lid", &[lid.as_bytes()]);
        let pk = self.raw.hash(b"pn", &[pn.as_bytes()]);
        if let Some((_, old_pn)) = self.get_lid_pair(Table::LidToPn, &lk)?
            && old_pn != pn
        {
            self.raw
                .remove(Table::PnToLid, &self.raw.hash(b"pn", &[old_pn.as_bytes()]))?;
        }
        if let Some((_, old_lid)) = self.get_lid_pair(Table::PnToLid, &pk)?
            && old_lid != lid
        {
            self.raw.remove(
                Table::LidToPn,
                &self.raw.hash(b"lid", &[old_lid.as_bytes()]),
            )?;
        }
        let to_pn = Enc::new()
            .bytes(lid.as_bytes())
            .bytes(pn.as_bytes())
            .finish();
        let to_lid = Enc::new()
            .bytes(pn.as_bytes())
            .bytes(lid.as_bytes())
            .finish();
        self.raw.put(Table::LidToPn, &lk, &to_pn)?;
        self.raw.put(Table::PnToLid, &pk, &to_lid)
    }

    fn get_pn_for_lid(&self, lid: &str) -> Result<Option<String>, StoreError> {
        let k = self.raw.hash(b"lid", &[lid.as_bytes()]);
        Ok(self.get_lid_pair(Table::LidToPn, &k)?.map(|(_, pn)| pn))
    }

    fn get_lid_for_pn(&self, pn: &str) -> Result<Option<String>, StoreError> {
        let k = self.raw.hash(b"pn", &[pn.as_bytes()]);
        Ok(self.get_lid_pair(Table::PnToLid, &k)?.map(|(_, lid)| lid))
    }

    fn delete_lid_mapping(&self, lid: &str) -> Result<bool, StoreError> {
        let lk = self.raw.hash(b"lid", &[lid.as_bytes()]);
        let Some((_, pn)) = self.get_lid_pair(Table::LidToPn, &lk)? else {
            return Ok(false);
        };
        self.raw.remove(Table::LidToPn, &lk)?;
        self.raw
            .remove(Table::PnToLid, &self.raw.hash(b"pn", &[pn.as_bytes()]))?;
        Ok(true)
    }
}

impl DeviceListStore for Tx<'_> {
    fn put_device_list(&self, user: &str, list: &DeviceList) -> Result<(), StoreError> {
        check_name(user, "empty user")?;
        if list.devices.len() > 1 << 16 {
            return Err(StoreError::InvalidInput("more than 65536 devices"));
        }
        let e = Enc::new()
            .bytes(user.as_bytes())
            .u64(list.fetched_at_ms)
            .u32(list.devices.len() as u32);
        let v = list.devices.iter().fold(e, |e, d| e.u32(*d)).finish();
        self.raw.put(
            Table::DeviceLists,
            &self.raw.hash(b"user", &[user.as_bytes()]),
            &v,
        )
    }

    fn get_device_list(&self, user: &str) -> Result<Option<DeviceList>, StoreError> {
        let k = self.raw.hash(b"user", &[user.as_bytes()]);
        let Some(v) = self.raw.get(Table::DeviceLists, &k)? else {
            return Ok(None);
        };
        let mut d = Dec::new(&v, Table::DeviceLists, &k);
        d.bytes()?;
        let fetched_at_ms = d.u64()?;
        let n = d.u32()?;
        let devices = (0..n).map(|_| d.u32()).collect::<Result<Vec<_>, _>>()?;
        d.end()?;
        Ok(Some(DeviceList {
            devices,
            fetched_at_ms,
        }))
    }

    fn delete_device_list(&self, user: &str) -> Result<bool, StoreError> {
        self.raw.remove(
            Table::DeviceLists,
            &self.raw.hash(b"user", &[user.as_bytes()]),
        )
    }
}

impl DedupeStore for Tx<'_> {
    fn mark_seen(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        check_name(id, "empty message id")?;
        let next = self.last_seq(Table::SeenOrder)?.map_or(0, |s| s + 1);
        let cap = self.limits.dedupe_capacity.max(1);
        let max_age = self.limits.dedupe_max_age_ms;
        // Keep at most `cap` entries including the one about to be added, and none older than
        // the maximum age.
        self.evict_front(Table::Seen, Table::SeenOrder, |seq, ts| {
            seq + cap <= next || ts.saturating_add(max_age) < now_ms
        })?;
        let h = self.raw.hash(b"msg", &[id.as_bytes()]);
        if self.raw.get(Table::Seen, &h)?.is_some() {
            return Ok(false);
        }
        self.raw
            .put(Table::Seen, &h, &Enc::new().u64(next).u64(now_ms).finish())?;
        let order = Enc::new().bytes(&h).u64(now_ms).finish();
        self.raw
            .put(Table::SeenOrder, &next.to_be_bytes(), &order)?;
        Ok(true)
    }

    fn is_seen(&self, id: &str) -> Result<bool, StoreError> {
        let h = self.raw.hash(b"msg", &[id.as_bytes()]);
        Ok(self.raw.get(Table::Seen, &h)?.is_some())
    }
}

impl RecentSentStore for Tx<'_> {
    fn put_recent_sent(&self, chat: &str, msg_id: &str, payload: &[u8]) -> Result<(), StoreError> {
        check_name(chat, "empty chat")?;
        check_name(msg_id, "empty message id")?;
        check_len(payload)?;
        let h = self.recent_key(chat, msg_id);
        let seq = match self.raw.get(Table::RecentSent, &h)? {
            Some(v) => Dec::new(&v, Table::RecentSent, &h).u64()?,
            None => {
                let next = self.last_seq(Table::RecentSentOrder)?.map_or(0, |s| s + 1);
                let cap = self.limits.recent_sent_capacity.max(1);
                self.evict_front(Table::RecentSent, Table::RecentSentOrder, |seq, _| {
                    seq + cap <= next
                })?;
                let order = Enc::new().bytes(&h).u64(0).finish();
                self.raw
                    .put(Table::RecentSentOrder, &next.to_be_bytes(), &order)?;
                next
            }
        };
        let v = Enc::new()
            .u64(seq)
            .bytes(chat.as_bytes())
            .bytes(msg_id.as_bytes())
            .bytes(payload)
            .finish();
        self.raw.put(Table::RecentSent, &h, &v)
    }

    fn get_recent_sent(&self, chat: &str, msg_id: &str) -> Result<Option<Secret>, StoreError> {
        let h = self.recent_key(chat, msg_id);
        let Some(v) = self.raw.get(Table::RecentSent, &h)? else {
            return Ok(None);
        };
        let mut d = Dec::new(&v, Table::RecentSent, &h);
        d.u64()?;
        d.bytes()?;
        d.bytes()?;
        let at = d.tail_offset(v.len())?;
        Ok(Some(take_tail(v, at)))
    }

    fn delete_recent_sent(&self, chat: &str, msg_id: &str) -> Result<bool, StoreError> {
        let h = self.recent_key(chat, msg_id);
        let Some(v) = self.raw.get(Table::RecentSent, &h)? else {
            return Ok(false);
        };
        let seq = Dec::new(&v, Table::RecentSent, &h).u64()?;
        self.raw
            .remove(Table::RecentSentOrder, &seq.to_be_bytes())?;
        self.raw.remove(Table::RecentSent, &h)
    }
}

impl QueueStore for Tx<'_> {
    fn queue_push(&self, queue: Queue, payload: &[u8]) -> Result<u64, StoreError> {
        check_len(payload)?;
        let ck = Self::queue_counter_key(queue);
        let id = self.read_counter(&ck, 1)?[0] + 1;
        self.write_counter(&ck, &[id])?;
        let v = Enc::new().u32(0).bytes(payload).finish();
        self.raw
            .put(Table::Queue, &Self::queue_key(queue, id), &v)?;
        Ok(id)
    }

    fn queue_peek(&self, queue: Queue, max: usize) -> Result<Vec<QueueItem>, StoreError> {
        let range = KeyRange::prefix(&[queue.tag()]);
        let mut out = Vec::new();
        for (k, v) in self.raw.scan(Table::Queue, &range, false, max)? {
            let id = u64_key(Table::Queue, &k[1..])?;
            let mut d = Dec::new(&v, Table::Queue, &k);
            let attempts = d.u32()?;
            let at = d.tail_offset(v.len())?;
            out.push(QueueItem {
                id,
                attempts,
                payload: take_tail(v, at),
            });
        }
        Ok(out)
    }

    fn queue_ack(&self, queue: Queue, id: u64) -> Result<bool, StoreError> {
        self.raw.remove(Table::Queue, &Self::queue_key(queue, id))
    }

    fn queue_requeue(&self, queue: Queue, id: u64) -> Result<Option<u64>, StoreError> {
        let k = Self::queue_key(queue, id);
        let Some(v) = self.raw.get(Table::Queue, &k)? else {
            return Ok(None);
        };
        let mut d = Dec::new(&v, Table::Queue, &k);
        let attempts = d.u32()?;
        let payload = d.secret()?;
        d.end()?;
        self.raw.remove(Table::Queue, &k)?;
        let ck = Self::queue_counter_key(queue);
        let new_id = self.read_counter(&ck, 1)?[0] + 1;
        self.write_counter(&ck, &[new_id])?;
        let v = Enc::new()
            .u32(attempts.saturating_add(1))
            .bytes(&payload)
            .finish();
        self.raw
            .put(Table::Queue, &Self::queue_key(queue, new_id), &v)?;
        Ok(Some(new_id))
    }

    fn queue_len(&self, queue: Queue) -> Result<u64, StoreError> {
        let range = KeyRange::prefix(&[queue.tag()]);
        Ok(self
            .raw
            .scan_keys(Table::Queue, &range, false, usize::MAX)?
            .len() as u64)
    }
}

impl PluginKvStore for Tx<'_> {
    fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Secret>, StoreError> {
        let k = self.kv_key(plugin, key);
        let Some(v) = self.raw.get(Table::PluginKv, &k)? else {
            return Ok(None);
        };
        let mut d = Dec::new(&v, Table::PluginKv, &k);
        d.bytes()?;
        let at = d.tail_offset(v.len())?;
        Ok(Some(take_tail(v, at)))
    }

    fn kv_set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_name(plugin, "empty plugin name")?;
        check_len(key.as_bytes())?;
        check_len(value)?;
        let v = Enc::new().bytes(key.as_bytes()).bytes(value).finish();
        self.raw.put(Table::PluginKv, &self.kv_key(plugin, key), &v)
    }

    fn kv_delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError> {
        self.raw.remove(Table::PluginKv, &self.kv_key(plugin, key))
    }

    fn kv_list(&self, plugin: &str, prefix: &str) -> Result<Vec<(String, Secret)>, StoreError> {
        let p = self.raw.hash(b"plugin", &[plugin.as_bytes()]);
        let mut out = Vec::new();
        for (k, v) in self
            .raw
            .scan(Table::PluginKv, &KeyRange::prefix(&p), false, usize::MAX)?
        {
            let (key, value) = self.decode_kv(&k, &v)?;
            if key.starts_with(prefix) {
                out.push((key, value));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn kv_compare_and_swap(
        &self,
        plugin: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let current = self.kv_get(plugin, key)?;
        if current.as_deref() != expected {
            return Ok(false);
        }
        match new {
            Some(v) => self.kv_set(plugin, key, v)?,
            None => {
                self.kv_delete(plugin, key)?;
            }
        }
        Ok(true)
    }
}

impl JobStore for Tx<'_> {
    fn put_job(&self, id: &str, data: &[u8]) -> Result<(), StoreError> {
        check_name(id, "empty job id")?;
        check_len(data)?;
        let v = Enc::new().bytes(id.as_bytes()).bytes(data).finish();
        self.raw
            .put(Table::Jobs, &self.raw.hash(b"job", &[id.as_bytes()]), &v)
    }

    fn get_job(&self, id: &str) -> Result<Option<Secret>, StoreError> {
        let k = self.raw.hash(b"job", &[id.as_bytes()]);
        let Some(v) = self.raw.get(Table::Jobs, &k)? else {
            return Ok(None);
        };
        let mut d = Dec::new(&v, Table::Jobs, &k);
        d.bytes()?;
        let at = d.tail_offset(v.len())?;
        Ok(Some(take_tail(v, at)))
    }

    fn delete_job(&self, id: &str) -> Result<bool, StoreError> {
        self.raw
            .remove(Table::Jobs, &self.raw.hash(b"job", &[id.as_bytes()]))
    }

    fn list_jobs(&self) -> Result<Vec<(String, Secret)>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self
            .raw
            .scan(Table::Jobs, &KeyRange::prefix(&[]), false, usize::MAX)?
        {
            let mut d = Dec::new(&v, Table::Jobs, &k);
            let id = d.string()?;
            let data = d.secret()?;
            d.end()?;
            out.push((id, data));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
