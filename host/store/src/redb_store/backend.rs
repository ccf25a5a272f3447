//! The redb side of [`crate::raw::Raw`]: table definitions, the file header (`meta` table),
//! and encrypted reads and writes inside redb transactions.
//!
//! Every table maps `&[u8]` keys to `&[u8]` values. Except `meta` (clear header fields), every
//! value is sealed with AES-256-GCM; its associated data is
//! `"wasmeow-store/value" || u32 schema || u8 len || table name || full stored key` (schema 2),
//! or `"wasmeow-store/v1" || table name || 0x00 || key` in the version-1 layout.

use std::cell::RefCell;
use std::ops::Bound;

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableTable, TableDefinition, TableError, WriteTransaction,
};

use crate::crypto::DataKeys;
use crate::error::{OpenError, StoreError};
use crate::kek::KekHeader;
use crate::raw::{KeyRange, Raw, Table};
use crate::types::Secret;

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: u32 = 2;
/// The first bytes of the `magic` record.
pub(crate) const MAGIC: &[u8] = b"wasmeow-store";

pub(crate) type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;
type RwTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;
type RoTable = ReadOnlyTable<&'static [u8], &'static [u8]>;
type Guard<'a> = redb::AccessGuard<'a, &'static [u8]>;
type Entry<'a> = Result<(Guard<'a>, Guard<'a>), redb::StorageError>;

/// Clear header fields: `magic`, `schema` (u32 BE), `kek` (see [`crate::kek`]), `next_account`
/// (u64 BE).
pub(crate) const META: Def = TableDefinition::new("meta");
/// The account directory (schema 2): `HMAC(root hash key, "account", name)` → sealed
/// `(namespace u64, name, data key)`.
pub(crate) const ACCOUNTS: Def = TableDefinition::new("accounts");

pub(crate) const META_MAGIC: &[u8] = b"magic";
pub(crate) const META_SCHEMA: &[u8] = b"schema";
pub(crate) const META_KEK: &[u8] = b"kek";
pub(crate) const META_NEXT_ACCOUNT: &[u8] = b"next_account";

pub(crate) fn def(t: Table) -> Def {
    TableDefinition::new(t.name())
}

/// How a layout turns account-relative keys into stored keys and binds values.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Layout {
    /// Schema 1: one account per file, no namespace.
    V1,
    /// Schema 2: keys prefixed with the account's namespace.
    V2 { ns: [u8; 8] },
}

impl Layout {
    pub(crate) fn ns(&self) -> &[u8] {
        match self {
            Layout::V1 => &[],
            Layout::V2 { ns } => ns,
        }
    }

    pub(crate) fn abs(&self, key: &[u8]) -> Vec<u8> {
        [self.ns(), key].concat()
    }

    pub(crate) fn ad(&self, table: &str, abs_key: &[u8]) -> Vec<u8> {
        match self {
            Layout::V1 => [
                b"wasmeow-store/v1".as_slice(),
                table.as_bytes(),
                &[0],
                abs_key,
            ]
            .concat(),
            Layout::V2 { .. } => value_ad(table, abs_key),
        }
    }
}

/// Associated data of a schema-2 value.
pub(crate) fn value_ad(table: &str, abs_key: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(24 + table.len() + abs_key.len());
    ad.extend_from_slice(b"wasmeow-store/value");
    ad.extend_from_slice(&SCHEMA_VERSION.to_be_bytes());
    // Table names are short ASCII constants (< 256 bytes).
    ad.push(table.len() as u8);
    ad.extend_from_slice(table.as_bytes());
    ad.extend_from_slice(abs_key);
    ad
}

/// Runs `f` on the associated data of a value, built on the stack when it fits (it does for
/// every schema-2 key this crate writes).
fn with_ad<R>(layout: Layout, table: &str, abs_key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    const PREFIX: &[u8] = b"wasmeow-store/value";
    let len = PREFIX.len() + 4 + 1 + table.len() + abs_key.len();
    match layout {
        Layout::V2 { .. } if len <= 128 => {
            let mut buf = [0u8; 128];
            let mut at = 0;
            for part in [
                PREFIX,
                &SCHEMA_VERSION.to_be_bytes(),
                &[table.len() as u8],
                table.as_bytes(),
                abs_key,
            ] {
                buf[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            f(&buf[..at])
        }
        _ => f(&layout.ad(table, abs_key)),
    }
}

/// Opens one stored value, naming the table and record on failure.
pub(crate) fn open_value(
    keys: &DataKeys,
    layout: Layout,
    table: &'static str,
    abs_key: &[u8],
    sealed: &[u8],
) -> Result<Secret, StoreError> {
    with_ad(layout, table, abs_key, |ad| keys.sealer.open(ad, sealed)).map_err(|_| {
        StoreError::Integrity {
            table,
            record: hex::encode(abs_key),
        }
    })
}

pub(crate) fn seal_value(
    keys: &DataKeys,
    layout: Layout,
    table: &'static str,
    abs_key: &[u8],
    plain: &[u8],
) -> Vec<u8> {
    with_ad(layout, table, abs_key, |ad| keys.sealer.seal(ad, plain))
}

/// The header fields of a file.
pub(crate) struct FileMeta {
    pub(crate) schema: u32,
    pub(crate) header: KekHeader,
}

/// Reads the header from any readable `meta` table.
pub(crate) fn read_meta<T: ReadableTable<&'static [u8], &'static [u8]>>(
    meta: &T,
    path: &std::path::Path,
) -> Result<FileMeta, OpenError> {
    let not_store = || OpenError::NotAStore(path.to_owned());
    let magic = meta.get(META_MAGIC)?.ok_or_else(not_store)?;
    if magic.value() != MAGIC {
        return Err(not_store());
    }
    let schema = meta
        .get(META_SCHEMA)?
        .ok_or(OpenError::BadHeader("no schema version"))?;
    let schema = u32::from_be_bytes(
        schema
            .value()
            .try_into()
            .map_err(|_| OpenError::BadHeader("schema version is not a u32"))?,
    );
    let header = meta
        .get(META_KEK)?
        .ok_or(OpenError::BadHeader("no key header"))?;
    let header = KekHeader::decode(header.value())?;
    Ok(FileMeta { schema, header })
}

/// Reads the header through a read transaction; `NotAStore` if there is no `meta` table.
pub(crate) fn read_meta_txn(
    txn: &ReadTransaction,
    path: &std::path::Path,
) -> Result<FileMeta, OpenError> {
    match txn.open_table(META) {
        Ok(t) => read_meta(&t, path),
        Err(TableError::TableDoesNotExist(_)) => Err(OpenError::NotAStore(path.to_owned())),
        Err(e) => Err(e.into()),
    }
}

fn get_in<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    layout: Layout,
    keys: &DataKeys,
    t: Table,
    key: &[u8],
) -> Result<Option<Secret>, StoreError> {
    // The stored key, on the stack when it fits (every key this crate writes does).
    let ns = layout.ns();
    let mut buf = [0u8; 64];
    let heap;
    let abs: &[u8] = if ns.len() + key.len() <= buf.len() {
        buf[..ns.len()].copy_from_slice(ns);
        buf[ns.len()..ns.len() + key.len()].copy_from_slice(key);
        &buf[..ns.len() + key.len()]
    } else {
        heap = layout.abs(key);
        &heap
    };
    let Some(v) = table.get(abs)? else {
        return Ok(None);
    };
    open_value(keys, layout, t.name(), abs, v.value()).map(Some)
}

type Scanned = Vec<(Vec<u8>, Option<Secret>)>;

#[allow(clippy::too_many_arguments)]
fn scan_in<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    layout: Layout,
    keys: &DataKeys,
    t: Table,
    range: &KeyRange,
    rev: bool,
    limit: usize,
    decrypt: bool,
) -> Result<Scanned, StoreError> {
    let (start, end) = range.absolute(layout.ns());
    let end_ref = match &end {
        Bound::Excluded(e) => Bound::Excluded(e.as_slice()),
        Bound::Included(e) => Bound::Included(e.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    };
    let it = table.range::<&[u8]>((Bound::Included(start.as_slice()), end_ref))?;
    let strip = layout.ns().len();
    let mut out = Vec::new();
    let mut visit = |item: Entry<'_>| -> Result<(), StoreError> {
        let (k, v) = item?;
        let abs = k.value();
        let value = if decrypt {
            Some(open_value(keys, layout, t.name(), abs, v.value())?)
        } else {
            None
        };
        out.push((abs[strip..].to_vec(), value));
        Ok(())
    };
    if rev {
        for item in it.rev().take(limit) {
            visit(item)?;
        }
    } else {
        for item in it.take(limit) {
            visit(item)?;
        }
    }
    Ok(out)
}

fn decrypted(v: Scanned) -> Vec<(Vec<u8>, Secret)> {
    v.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

fn keys_only(v: Scanned) -> Vec<Vec<u8>> {
    v.into_iter().map(|(k, _)| k).collect()
}

/// A [`Raw`] over a redb write transaction.
pub(crate) struct WriteRaw<'t> {
    txn: &'t WriteTransaction,
    // The tables opened so far (a transaction touches few; a linear search beats a map).
    tables: RefCell<Vec<(Table, RwTable<'t>)>>,
    layout: Layout,
    keys: &'t DataKeys,
}

impl<'t> WriteRaw<'t> {
    pub(crate) fn new(txn: &'t WriteTransaction, layout: Layout, keys: &'t DataKeys) -> Self {
        Self {
            txn,
            tables: RefCell::new(Vec::new()),
            layout,
            keys,
        }
    }

    fn with<R>(
        &self,
        t: Table,
        f: impl FnOnce(&mut RwTable<'t>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut tables = self.tables.borrow_mut();
        let i = match tables.iter().position(|(name, _)| *name == t) {
            Some(i) => i,
            None => {
                tables.push((t, self.txn.open_table(def(t))?));
                tables.len() - 1
            }
        };
        f(&mut tables[i].1)
    }
}

impl Raw for WriteRaw<'_> {
    fn get(&self, t: Table, key: &[u8]) -> Result<Option<Secret>, StoreError> {
        self.with(t, |table| get_in(table, self.layout, self.keys, t, key))
    }

    fn put(&self, t: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let abs = self.layout.abs(key);
        let sealed = seal_value(self.keys, self.layout, t.name(), &abs, value);
        self.with(t, |table| {
            table.insert(abs.as_slice(), sealed.as_slice())?;
            Ok(())
        })
    }

    fn remove(&self, t: Table, key: &[u8]) -> Result<bool, StoreError> {
        let abs = self.layout.abs(key);
        self.with(t, |table| Ok(table.remove(abs.as_slice())?.is_some()))
    }

    fn scan(
        &self,
        t: Table,
        range: &KeyRange,
        rev: bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Secret)>, StoreError> {
        self.with(t, |table| {
            scan_in(table, self.layout, self.keys, t, range, rev, limit, true).map(decrypted)
        })
    }

    fn scan_keys(
        &self,
        t: Table,
        range: &KeyRange,
        rev: bool,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.with(t, |table| {
            scan_in(table, self.layout, self.keys, t, range, rev, limit, false).map(keys_only)
        })
    }

    fn hash(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 16] {
        self.keys.hasher.hash16(label, parts)
    }
}

/// A [`Raw`] over a redb read transaction; writes fail with [`StoreError::ReadOnly`].
pub(crate) struct ReadRaw<'t> {
    txn: &'t ReadTransaction,
    // The tables opened so far; `None`: the table does not exist (reads as empty).
    tables: RefCell<Vec<(Table, Option<RoTable>)>>,
    layout: Layout,
    keys: &'t DataKeys,
}

impl<'t> ReadRaw<'t> {
    pub(crate) fn new(txn: &'t ReadTransaction, layout: Layout, keys: &'t DataKeys) -> Self {
        Self {
            txn,
            tables: RefCell::new(Vec::new()),
            layout,
            keys,
        }
    }

    fn with<R: Default>(
        &self,
        t: Table,
        f: impl FnOnce(&RoTable) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut tables = self.tables.borrow_mut();
        let i = match tables.iter().position(|(name, _)| *name == t) {
            Some(i) => i,
            None => {
                let table = match self.txn.open_table(def(t)) {
                    Ok(table) => Some(table),
                    Err(TableError::TableDoesNotExist(_)) => None,
                    Err(e) => return Err(e.into()),
                };
                tables.push((t, table));
                tables.len() - 1
            }
        };
        match &tables[i].1 {
            Some(table) => f(table),
            None => Ok(R::default()),
        }
    }
}

impl Raw for ReadRaw<'_> {
    fn get(&self, t: Table, key: &[u8]) -> Result<Option<Secret>, StoreError> {
        self.with(t, |table| get_in(table, self.layout, self.keys, t, key))
    }

    fn put(&self, _t: Table, _key: &[u8], _value: &[u8]) -> Result<(), StoreError> {
        Err(StoreError::ReadOnly)
    }

    fn remove(&self, _t: Table, _key: &[u8]) -> Result<bool, StoreError> {
        Err(StoreError::ReadOnly)
    }

    fn scan(
        &self,
        t: Table,
        range: &KeyRange,
        rev: bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Secret)>, StoreError> {
        self.with(t, |table| {
            scan_in(table, self.layout, self.keys, t, range, rev, limit, true).map(decrypted)
        })
    }

    fn scan_keys(
        &self,
        t: Table,
        range: &KeyRange,
        rev: bool,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.with(t, |table| {
            scan_in(table, self.layout, self.keys, t, range, rev, limit, false).map(keys_only)
        })
    }

    fn hash(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 16] {
        self.keys.hasher.hash16(label, parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_associated_data_equals_the_heap_one() {
        let layout = Layout::V2 {
            ns: [0, 0, 0, 0, 0, 0, 0, 7],
        };
        for key in [&b"k"[..], &[0xab; 40], &[1; 100], &[2; 120]] {
            let want = layout.ad("signal_sessions", key);
            with_ad(layout, "signal_sessions", key, |ad| {
                assert_eq!(ad, want.as_slice())
            });
        }
    }
}
