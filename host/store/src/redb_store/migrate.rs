//! Numbered schema migrations, and the earlier layouts they start from.
//!
//! Each migration runs in one write transaction that ends by writing the next schema number, so
//! a crash leaves the file at the old or the new version, never in between.
//!
//! **Schema 1** (one account per file): `meta` holds `magic`, `schema = 1` and a key header
//! whose sealed key is the file's *data key* itself (associated data with schema 1). The data
//! tables have today's names and account-relative keys with no namespace prefix; values are
//! sealed with the data key's derived keys under `"wasmeow-store/v1" || table || 0x00 || key`.
//! There is no account directory.
//!
//! **1 → 2**: creates a random root key and the account directory with one account,
//! [`V1_ACCOUNT_NAME`], whose data key is the schema-1 data key (so record-key hashes stay
//! valid); re-keys every record under namespace 1 and re-seals it with schema-2 associated data;
//! wraps the root key under the same KEK (same Argon2 salt and parameters).

use std::path::Path;

use redb::{Database, ReadableTable, WriteTransaction};
use zeroize::Zeroizing;

use super::backend::{
    ACCOUNTS, Layout, META, META_KEK, META_NEXT_ACCOUNT, META_SCHEMA, def, open_value, read_meta,
    seal_value,
};
use super::{dir_key, seal_dir_entry};
use crate::crypto::{DataKeys, random_key};
use crate::error::{OpenError, StoreError};
use crate::raw::Table;

/// The name the single account of a schema-1 file gets in schema 2.
pub const V1_ACCOUNT_NAME: &str = "default";

type Migration = fn(&WriteTransaction, &Path, &[u8; 32]) -> Result<(), OpenError>;

/// `(from_version, migration to from_version + 1)`.
const MIGRATIONS: &[(u32, Migration)] = &[(1, migrate_1_to_2)];

/// Runs every migration from the file's version to the current one.
pub(crate) fn run(db: &Database, path: &Path, kek: &[u8; 32]) -> Result<(), OpenError> {
    loop {
        let txn = db.begin_write()?;
        let schema = read_meta(&txn.open_table(META)?, path)?.schema;
        let Some((_, migration)) = MIGRATIONS.iter().find(|(from, _)| *from == schema) else {
            // Nothing to do (current) or no path (checked by the caller before).
            txn.abort()?;
            return Ok(());
        };
        migration(&txn, path, kek)?;
        txn.commit()?;
    }
}

fn migrate_1_to_2(txn: &WriteTransaction, path: &Path, kek: &[u8; 32]) -> Result<(), OpenError> {
    let meta = read_meta(&txn.open_table(META)?, path)?;
    let data_key = meta.header.unseal_with(kek, 1)?;
    let keys = DataKeys::derive(&data_key);
    let ns: u64 = 1;
    let v2 = Layout::V2 {
        ns: ns.to_be_bytes(),
    };
    for t in Table::ALL {
        let mut table = txn.open_table(def(t))?;
        let mut records = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            let plain = open_value(&keys, Layout::V1, t.name(), k.value(), v.value())?;
            records.push((k.value().to_vec(), plain));
        }
        table.retain(|_, _| false)?;
        for (k, plain) in records {
            let abs = v2.abs(&k);
            table.insert(
                abs.as_slice(),
                seal_value(&keys, v2, t.name(), &abs, &plain).as_slice(),
            )?;
        }
    }
    let root_key = random_key();
    let root = DataKeys::derive(&root_key);
    {
        let mut dir = txn.open_table(ACCOUNTS)?;
        let k = dir_key(&root, V1_ACCOUNT_NAME);
        dir.insert(
            k.as_slice(),
            seal_dir_entry(&root, &k, ns, V1_ACCOUNT_NAME, &data_key).as_slice(),
        )?;
    }
    let header = meta.header.reseal(kek, &root_key, 2);
    let mut m = txn.open_table(META)?;
    m.insert(META_KEK, header.encode().as_slice())?;
    m.insert(META_NEXT_ACCOUNT, (ns + 1).to_be_bytes().as_slice())?;
    m.insert(META_SCHEMA, 2u32.to_be_bytes().as_slice())?;
    Ok(())
}

/// Writes schema-1 files, for migration tests (and as the executable description of that
/// layout). Not used by the store itself.
pub(crate) mod v1 {
    use std::path::Path;

    use redb::Builder;

    use super::*;
    use crate::kek::{Argon2Params, KekHeader, KekSource};
    use crate::redb_store::backend::{MAGIC, META_MAGIC, WriteRaw};
    use crate::tx::Tx;
    use crate::types::Limits;

    /// Creates a schema-1 file at `path` and runs `f` in one write transaction on its single
    /// account.
    pub(crate) fn create(
        path: &Path,
        kek: &KekSource,
        argon2: Argon2Params,
        f: impl FnOnce(&Tx<'_>) -> Result<(), StoreError>,
    ) -> Result<(), OpenError> {
        let db = Builder::new().create(path)?;
        let data_key: Zeroizing<[u8; 32]> = random_key();
        let header = KekHeader::seal(kek, argon2, &data_key, 1)?;
        let keys = DataKeys::derive(&data_key);
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(META_MAGIC, MAGIC)?;
            meta.insert(META_SCHEMA, 1u32.to_be_bytes().as_slice())?;
            meta.insert(META_KEK, header.encode().as_slice())?;
            for t in Table::ALL {
                txn.open_table(def(t))?;
            }
        }
        {
            let raw = WriteRaw::new(&txn, Layout::V1, &keys);
            f(&Tx::new(&raw, Limits::default()))?;
        }
        txn.commit()?;
        Ok(())
    }
}
