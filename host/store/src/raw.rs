//! The narrow interface between the account-level logic ([`crate::Tx`]) and a backend.
//!
//! A backend stores, per table, byte keys mapped to byte values, scoped to one account: keys
//! passed here are *account-relative* and the backend prefixes them with the account's 8-byte
//! namespace. The redb backend encrypts every value (AES-256-GCM, associated data binding table,
//! full key and schema version); the memory backend keeps plaintext. Both hash record-key parts
//! that could reveal contacts with [`Raw::hash`], so key layouts are identical.
//!
//! Also here: the table list and the small length-prefixed codec used for record values.

use std::ops::Bound;

use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::types::Secret;

/// The account-scoped tables. Their names are part of the file format (and of each value's
/// associated data): never rename one without a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Table {
    Identities,
    Sessions,
    PreKeys,
    SignedPreKeys,
    SenderKeys,
    Device,
    LidToPn,
    PnToLid,
    DeviceLists,
    Seen,
    SeenOrder,
    RecentSent,
    RecentSentOrder,
    Queue,
    Counters,
    PluginKv,
    Jobs,
}

impl Table {
    /// Every account-scoped table, in a fixed order.
    pub(crate) const ALL: [Table; 17] = [
        Table::Identities,
        Table::Sessions,
        Table::PreKeys,
        Table::SignedPreKeys,
        Table::SenderKeys,
        Table::Device,
        Table::LidToPn,
        Table::PnToLid,
        Table::DeviceLists,
        Table::Seen,
        Table::SeenOrder,
        Table::RecentSent,
        Table::RecentSentOrder,
        Table::Queue,
        Table::Counters,
        Table::PluginKv,
        Table::Jobs,
    ];

    /// The table's name in the file.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Table::Identities => "identities",
            Table::Sessions => "signal_sessions",
            Table::PreKeys => "prekeys",
            Table::SignedPreKeys => "signed_prekeys",
            Table::SenderKeys => "sender_keys",
            Table::Device => "device",
            Table::LidToPn => "lid_to_pn",
            Table::PnToLid => "pn_to_lid",
            Table::DeviceLists => "device_lists",
            Table::Seen => "seen",
            Table::SeenOrder => "seen_order",
            Table::RecentSent => "recent_sent",
            Table::RecentSentOrder => "recent_sent_order",
            Table::Queue => "queue",
            Table::Counters => "counters",
            Table::PluginKv => "plugin_kv",
            Table::Jobs => "jobs",
        }
    }

    /// Position in [`Table::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A range of account-relative keys: `start` inclusive, `end` exclusive (`None`: to the end of
/// the account's keys).
#[derive(Clone, Debug)]
pub(crate) struct KeyRange {
    pub(crate) start: Vec<u8>,
    pub(crate) end: Option<Vec<u8>>,
}

impl KeyRange {
    /// All keys that start with `prefix`.
    pub(crate) fn prefix(prefix: &[u8]) -> Self {
        Self {
            start: prefix.to_vec(),
            end: prefix_end(prefix),
        }
    }

    /// All keys `>= start` that start with `prefix` (`start` must itself start with `prefix`).
    pub(crate) fn from_within(prefix: &[u8], start: Vec<u8>) -> Self {
        Self {
            start,
            end: prefix_end(prefix),
        }
    }

    /// The bounds of this range with `ns` prepended, for a backend whose keys carry the account
    /// namespace (an empty `ns` leaves the keys as they are).
    pub(crate) fn absolute(&self, ns: &[u8]) -> (Vec<u8>, Bound<Vec<u8>>) {
        let start = [ns, &self.start].concat();
        let end = match &self.end {
            Some(end) => Bound::Excluded([ns, end].concat()),
            None => match prefix_end(ns) {
                Some(end) => Bound::Excluded(end),
                None => Bound::Unbounded,
            },
        };
        (start, end)
    }
}

/// The smallest key greater than every key starting with `prefix` (`None` if there is none,
/// i.e. the prefix is empty or all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The backend operations [`crate::Tx`] is written against. One value of this trait is one
/// transaction (read-only or read-write) on one account.
pub(crate) trait Raw {
    /// The value at `key`, decrypted.
    fn get(&self, t: Table, key: &[u8]) -> Result<Option<Secret>, StoreError>;
    /// Inserts or replaces the value at `key`.
    fn put(&self, t: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Removes `key`; whether it existed.
    fn remove(&self, t: Table, key: &[u8]) -> Result<bool, StoreError>;
    /// Up to `limit` records in `range`, ascending (or descending if `rev`), decrypted. Keys are
    /// account-relative.
    fn scan(
        &self,
        t: Table,
        range: &KeyRange,
        rev: bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Secret)>, StoreError>;
    /// Like [`Raw::scan`] but only the keys; nothing is decrypted.
    fn scan_keys(
        &self,
        t: Table,
        range: &KeyRange,
        rev: bool,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError>;
    /// The account's keyed hash (HMAC-SHA256, truncated to 16 bytes) of `parts` under `label`.
    fn hash(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 16];
}

/// Builds a record value: fixed-width integers big-endian, byte strings with a u32 length.
pub(crate) struct Enc(Secret);

impl Enc {
    pub(crate) fn new() -> Self {
        Self(Secret::with_capacity(64))
    }

    pub(crate) fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }

    fn raw(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }

    pub(crate) fn u32(self, v: u32) -> Self {
        self.raw(&v.to_be_bytes())
    }

    pub(crate) fn u64(self, v: u64) -> Self {
        self.raw(&v.to_be_bytes())
    }

    pub(crate) fn bytes(self, v: &[u8]) -> Self {
        // Values are bounded far below 4 GiB by `check_len` at the API boundary.
        self.raw(&(v.len() as u32).to_be_bytes()).raw(v)
    }

    pub(crate) fn opt_bytes(self, v: Option<&[u8]>) -> Self {
        match v {
            Some(v) => self.u8(1).bytes(v),
            None => self.u8(0),
        }
    }

    pub(crate) fn finish(self) -> Secret {
        self.0
    }
}

/// Reads a record value built by [`Enc`]; every error names the table and record.
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    table: Table,
    key: &'a [u8],
}

impl<'a> Dec<'a> {
    pub(crate) fn new(buf: &'a [u8], table: Table, key: &'a [u8]) -> Self {
        Self { buf, table, key }
    }

    fn err(&self, reason: &'static str) -> StoreError {
        StoreError::Malformed {
            table: self.table.name(),
            record: hex::encode(self.key),
            reason,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.buf.len() < n {
            return Err(self.err("value truncated"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, StoreError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub(crate) fn secret(&mut self) -> Result<Secret, StoreError> {
        Ok(Secret::from(self.bytes()?))
    }

    /// Reads the last field (a length-prefixed byte string) and returns its offset in the value,
    /// so the caller can keep it without copying ([`take_tail`]).
    pub(crate) fn tail_offset(mut self, whole: usize) -> Result<usize, StoreError> {
        let n = self.u32()? as usize;
        if self.buf.len() != n {
            return Err(self.err("bad length of the last field"));
        }
        Ok(whole - n)
    }

    pub(crate) fn array32(&mut self) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        let b = self.bytes()?;
        let mut out = Zeroizing::new([0u8; 32]);
        if b.len() != 32 {
            return Err(self.err("expected a 32-byte key"));
        }
        out.copy_from_slice(b);
        Ok(out)
    }

    pub(crate) fn string(&mut self) -> Result<String, StoreError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("invalid UTF-8"))
    }

    pub(crate) fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>, StoreError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.bytes()?)),
            _ => Err(self.err("invalid option tag")),
        }
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn end(self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

/// `value` reduced in place to its last field, which starts at `offset` (from
/// [`Dec::tail_offset`]).
pub(crate) fn take_tail(mut value: Secret, offset: usize) -> Secret {
    value.strip_front(offset);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_and_carries() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(&[]), None);
    }

    #[test]
    fn codec_round_trips_and_rejects_truncation() {
        let v = Enc::new()
            .u8(7)
            .u32(9)
            .u64(11)
            .bytes(b"abc")
            .opt_bytes(None)
            .opt_bytes(Some(b"x"))
            .finish();
        let mut d = Dec::new(&v, Table::Jobs, b"k");
        assert_eq!(d.u8().unwrap(), 7);
        assert_eq!(d.u32().unwrap(), 9);
        assert_eq!(d.u64().unwrap(), 11);
        assert_eq!(d.bytes().unwrap(), b"abc");
        assert_eq!(d.opt_bytes().unwrap(), None);
        assert_eq!(d.opt_bytes().unwrap(), Some(&b"x"[..]));
        d.end().unwrap();

        let mut d = Dec::new(&v[..6], Table::Jobs, b"k");
        d.u8().unwrap();
        d.u32().unwrap();
        assert!(matches!(
            d.u64(),
            Err(StoreError::Malformed {
                table: "jobs",
                reason: "value truncated",
                ..
            })
        ));
    }

    #[test]
    fn table_indexes_match_all() {
        for (i, t) in Table::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
    }
}
