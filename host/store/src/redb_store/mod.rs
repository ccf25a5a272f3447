//! [`RedbStore`]: the encrypted on-disk store, one redb file holding many accounts.
//!
//! Opening verifies the key before anything can write: the file is first opened read-only and
//! the root key unwrapped; a wrong key returns [`OpenError::WrongKey`] and leaves the file
//! byte-for-byte unchanged. (A file left unclean by a crash cannot be opened read-only; redb then
//! repairs it while opening read-write, and the key is verified before any transaction of ours.)
//! Older schema versions are migrated in place, one numbered migration per transaction.
//!
//! Accounts share the file; each has a random data key kept (sealed by the root key) in the
//! account directory. Deleting an account removes its records and its directory entry and
//! rotates the root key in one transaction, so no key that remains in the file can decrypt
//! anything the account left in freed pages (see `DESIGN.md`, "Crypto-shredding").

pub(crate) mod backend;
pub(crate) mod migrate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use redb::{
    Builder, Database, DatabaseError, ReadableDatabase as _, ReadableTable as _, WriteTransaction,
};
use zeroize::Zeroizing;

use crate::crypto::{DataKeys, random_key};
use crate::error::{OpenError, StoreError};
use crate::kek::{Argon2Params, KekHeader, KekSource};
use crate::raw::{Dec, Enc, KeyRange, Table};
use crate::traits::{AccountStore, Store};
use crate::tx::Tx;
use crate::types::Limits;
use backend::{
    ACCOUNTS, FileMeta, Layout, MAGIC, META, META_KEK, META_MAGIC, META_NEXT_ACCOUNT, META_SCHEMA,
    ReadRaw, SCHEMA_VERSION, WriteRaw, def, read_meta_txn, value_ad,
};

/// Options for opening a [`RedbStore`].
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Bounds of the dedupe set and recent-sent buffer.
    pub limits: Limits,
    /// Argon2id parameters used when a passphrase header is written (new file, rekey). Opening
    /// an existing file uses the parameters stored in its header.
    pub argon2: Argon2Params,
    /// redb page cache size in bytes: a ceiling for the whole file (all accounts), which redb
    /// fills with every page it reads or writes until it is reached. Default
    /// [`DEFAULT_CACHE_BYTES`].
    pub cache_bytes: usize,
}

/// The default page cache: 8 MiB. The cache keeps every page it touched up to its ceiling,
/// and 200 freshly paired accounts write about 20 MiB of pages (812 one-time prekeys each),
/// so with a larger ceiling those never-read prekey pages would stay in memory: 100 KiB per
/// idle session at 128 MiB (`host/session/tests/idle_memory.rs`, budget 128 KiB per
/// session). 8 MiB holds the branch pages and the hot records (credentials, Signal sessions,
/// dedupe ids) of a few hundred accounts; colder records are read from the OS page cache.
pub const DEFAULT_CACHE_BYTES: usize = 8 << 20;

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            argon2: Argon2Params::default(),
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// The encrypted redb [`Store`]. Cheap to clone; all clones share one open file.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    limits: Limits,
    argon2: Argon2Params,
    kek: Mutex<KekState>,
    root: RwLock<RootState>,
    // Serializes every change and lookup of the account directory (create, open, delete, list)
    // with the in-memory handle registry.
    registry: Mutex<HashMap<String, Arc<AccountKeys>>>,
}

struct KekState {
    kek: Zeroizing<[u8; 32]>,
    header: KekHeader,
}

struct RootState {
    key: Zeroizing<[u8; 32]>,
    keys: DataKeys,
}

pub(crate) struct AccountKeys {
    name: String,
    ns: [u8; 8],
    keys: DataKeys,
    deleted: AtomicBool,
}

/// A handle on one account of a [`RedbStore`].
#[derive(Clone)]
pub struct RedbAccount {
    inner: Arc<Inner>,
    account: Arc<AccountKeys>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are only replaced whole after a successful commit; a panic elsewhere
    // cannot leave them half-updated.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The key-verified state of a file before it is opened read-write.
struct Unlocked {
    kek: Zeroizing<[u8; 32]>,
}

/// Opens `path` read-only and unwraps the root key, without any possibility of writing. `None`
/// if the file needs crash recovery (redb refuses read-only opens then).
fn verify_read_only(path: &Path, kek: &KekSource) -> Result<Option<Unlocked>, OpenError> {
    let ro = match Builder::new().open_read_only(path) {
        Ok(ro) => ro,
        Err(DatabaseError::RepairAborted) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let txn = ro.begin_read()?;
    let meta = read_meta_txn(&txn, path)?;
    check_schema(&meta)?;
    let kek = meta.header.derive_kek(kek)?;
    meta.header.unseal_with(&kek, meta.schema)?;
    Ok(Some(Unlocked { kek }))
}

fn check_schema(meta: &FileMeta) -> Result<(), OpenError> {
    if meta.schema > SCHEMA_VERSION {
        return Err(OpenError::SchemaTooNew {
            found: meta.schema,
            supported: SCHEMA_VERSION,
        });
    }
    if meta.schema == 0 {
        return Err(OpenError::BadHeader("schema version 0"));
    }
    Ok(())
}

/// Whether `path` holds no store yet (missing or empty).
fn is_fresh(path: &Path) -> Result<bool, OpenError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len() == 0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// The scratch file a new store is built in before it appears at `path`.
fn creating_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".creating");
    path.with_file_name(name)
}

/// Creates a new, initialized store at `path` atomically: it is built (mode 0600) in a scratch
/// file next to it, closed, and then linked into place, so a crash leaves either no store or a
/// complete one, never a file without a header.
fn create_file(path: &Path, kek: &KekSource, options: &OpenOptions) -> Result<(), OpenError> {
    let scratch = creating_path(path);
    // A leftover from a crash during an earlier creation: it never holds data.
    match std::fs::remove_file(&scratch) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(&scratch)?;
    {
        let db = Builder::new()
            .set_cache_size(options.cache_bytes)
            .create(&scratch)?;
        let root_key = random_key();
        let header = KekHeader::seal(kek, options.argon2, &root_key, SCHEMA_VERSION)?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(META_MAGIC, MAGIC)?;
            meta.insert(META_SCHEMA, SCHEMA_VERSION.to_be_bytes().as_slice())?;
            meta.insert(META_KEK, header.encode().as_slice())?;
            meta.insert(META_NEXT_ACCOUNT, 1u64.to_be_bytes().as_slice())?;
            txn.open_table(ACCOUNTS)?;
            for t in Table::ALL {
                txn.open_table(def(t))?;
            }
        }
        txn.commit()?;
        db.close()?;
    }
    if path.exists() {
        // An empty file is replaced.
        std::fs::rename(&scratch, path)?;
    } else {
        match std::fs::hard_link(&scratch, path) {
            // Someone else created the store meanwhile: theirs wins and is opened.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
            Ok(()) => {}
        }
        std::fs::remove_file(&scratch)?;
    }
    // Make the new directory entry durable.
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

pub(crate) fn dir_key(root: &DataKeys, name: &str) -> [u8; 32] {
    root.hasher.hash32(b"account", &[name.as_bytes()])
}

fn seal_dir_entry(
    root: &DataKeys,
    key: &[u8],
    ns: u64,
    name: &str,
    data_key: &[u8; 32],
) -> Vec<u8> {
    let plain = Enc::new()
        .u64(ns)
        .bytes(name.as_bytes())
        .bytes(data_key)
        .finish();
    root.sealer.seal(&value_ad(ACCOUNTS_NAME, key), &plain)
}

pub(crate) const ACCOUNTS_NAME: &str = "accounts";

/// A decoded directory entry.
pub(crate) struct DirEntry {
    pub(crate) ns: u64,
    pub(crate) name: String,
    pub(crate) data_key: Zeroizing<[u8; 32]>,
}

pub(crate) fn open_dir_entry(
    root: &DataKeys,
    key: &[u8],
    sealed: &[u8],
) -> Result<DirEntry, StoreError> {
    let plain = root
        .sealer
        .open(&value_ad(ACCOUNTS_NAME, key), sealed)
        .map_err(|_| StoreError::Integrity {
            table: ACCOUNTS_NAME,
            record: hex::encode(key),
        })?;
    // `Dec` reports errors against a data table; the directory uses its own name.
    let malformed = |reason| StoreError::Malformed {
        table: ACCOUNTS_NAME,
        record: hex::encode(key),
        reason,
    };
    let mut d = Dec::new(&plain, Table::Counters, key);
    let ns = d
        .u64()
        .map_err(|_| malformed("truncated directory entry"))?;
    let name = d.string().map_err(|_| malformed("bad account name"))?;
    let data_key = d.array32().map_err(|_| malformed("bad data key"))?;
    d.end().map_err(|_| malformed("trailing bytes"))?;
    Ok(DirEntry { ns, name, data_key })
}

fn put_meta(txn: &WriteTransaction, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    meta.insert(key, value)?;
    Ok(())
}

impl RedbStore {
    /// Opens the store at `path`, creating it (mode 0600) if it does not exist or is empty.
    ///
    /// Errors: [`OpenError::WrongKey`] (file unchanged), [`OpenError::KekKindMismatch`],
    /// [`OpenError::NotAStore`], [`OpenError::SchemaTooNew`], [`OpenError::AlreadyOpen`], ...
    pub fn open(
        path: impl AsRef<Path>,
        kek: &KekSource,
        options: &OpenOptions,
    ) -> Result<Self, OpenError> {
        let path = path.as_ref();
        if is_fresh(path)? {
            create_file(path, kek, options)?;
        }
        let verified = verify_read_only(path, kek)?;
        let db = Builder::new()
            .set_cache_size(options.cache_bytes)
            .open(path)?;
        let meta = {
            let txn = db.begin_read()?;
            read_meta_txn(&txn, path)?
        };
        check_schema(&meta)?;
        let kek_bytes = match verified {
            Some(u) => u.kek,
            None => meta.header.derive_kek(kek)?,
        };
        // Verify (again, or for the first time after a repair) before any write transaction.
        meta.header.unseal_with(&kek_bytes, meta.schema)?;
        if meta.schema < SCHEMA_VERSION {
            migrate::run(&db, path, &kek_bytes)?;
        }
        let meta = {
            let txn = db.begin_read()?;
            read_meta_txn(&txn, path)?
        };
        let root_key = meta.header.unseal_with(&kek_bytes, SCHEMA_VERSION)?;
        Ok(Self::assemble(
            db,
            path,
            options,
            kek_bytes,
            meta.header,
            root_key,
        ))
    }

    fn assemble(
        db: Database,
        path: &Path,
        options: &OpenOptions,
        kek: Zeroizing<[u8; 32]>,
        header: KekHeader,
        root_key: Zeroizing<[u8; 32]>,
    ) -> Self {
        let keys = DataKeys::derive(&root_key);
        Self {
            inner: Arc::new(Inner {
                db,
                path: path.to_owned(),
                limits: options.limits,
                argon2: options.argon2,
                kek: Mutex::new(KekState { kek, header }),
                root: RwLock::new(RootState {
                    key: root_key,
                    keys,
                }),
                registry: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The file this store was opened from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Re-wraps the root key under the KEK from `new` (with this store's [`Argon2Params`] if it
    /// is a passphrase), in one transaction: after a crash either the old or the new KEK opens
    /// the file. Data keys and data are untouched.
    pub fn rekey(&self, new: &KekSource) -> Result<(), OpenError> {
        let root = self
            .inner
            .root
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let header = KekHeader::seal(new, self.inner.argon2, &root.key, SCHEMA_VERSION)?;
        let kek = header.derive_kek(new)?;
        let txn = self.inner.db.begin_write()?;
        put_meta(&txn, META_KEK, &header.encode())?;
        txn.commit()?;
        *lock(&self.inner.kek) = KekState { kek, header };
        Ok(())
    }

    /// Compacts the file (redb `compact`), releasing free pages at its end. Needs exclusive
    /// access: fails with [`StoreError::InvalidInput`] while clones or account handles exist.
    pub fn compact(&mut self) -> Result<bool, StoreError> {
        let inner = Arc::get_mut(&mut self.inner).ok_or(StoreError::InvalidInput(
            "compaction needs the only handle on the store (drop clones and accounts)",
        ))?;
        inner.db.compact().map_err(|e| StoreError::Engine(e.into()))
    }

    fn handle(&self, account: Arc<AccountKeys>) -> RedbAccount {
        RedbAccount {
            inner: self.inner.clone(),
            account,
        }
    }

    fn account_keys(entry: &DirEntry) -> Arc<AccountKeys> {
        Arc::new(AccountKeys {
            name: entry.name.clone(),
            ns: entry.ns.to_be_bytes(),
            keys: DataKeys::derive(&entry.data_key),
            deleted: AtomicBool::new(false),
        })
    }
}

impl Store for RedbStore {
    type Account = RedbAccount;

    fn create_account(&self, name: &str) -> Result<RedbAccount, StoreError> {
        if name.is_empty() {
            return Err(StoreError::InvalidInput("empty account name"));
        }
        let mut registry = lock(&self.inner.registry);
        let root = self
            .inner
            .root
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let key = dir_key(&root.keys, name);
        let txn = self.inner.db.begin_write()?;
        let entry = {
            let mut dir = txn.open_table(ACCOUNTS)?;
            if dir.get(key.as_slice())?.is_some() {
                return Err(StoreError::AccountExists);
            }
            let mut meta = txn.open_table(META)?;
            let ns = match meta.get(META_NEXT_ACCOUNT)? {
                Some(v) => {
                    u64::from_be_bytes(v.value().try_into().map_err(|_| StoreError::Malformed {
                        table: "meta",
                        record: hex::encode(META_NEXT_ACCOUNT),
                        reason: "next_account is not a u64",
                    })?)
                }
                None => 1,
            };
            meta.insert(META_NEXT_ACCOUNT, (ns + 1).to_be_bytes().as_slice())?;
            let data_key = random_key();
            dir.insert(
                key.as_slice(),
                seal_dir_entry(&root.keys, &key, ns, name, &data_key).as_slice(),
            )?;
            DirEntry {
                ns,
                name: name.to_owned(),
                data_key,
            }
        };
        txn.commit()?;
        let keys = Self::account_keys(&entry);
        registry.insert(name.to_owned(), keys.clone());
        Ok(self.handle(keys))
    }

    fn account(&self, name: &str) -> Result<Option<RedbAccount>, StoreError> {
        let mut registry = lock(&self.inner.registry);
        if let Some(keys) = registry.get(name) {
            return Ok(Some(self.handle(keys.clone())));
        }
        let root = self
            .inner
            .root
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let key = dir_key(&root.keys, name);
        let txn = self.inner.db.begin_read()?;
        let dir = txn.open_table(ACCOUNTS)?;
        let Some(sealed) = dir.get(key.as_slice())? else {
            return Ok(None);
        };
        let entry = open_dir_entry(&root.keys, &key, sealed.value())?;
        let keys = Self::account_keys(&entry);
        registry.insert(name.to_owned(), keys.clone());
        Ok(Some(self.handle(keys)))
    }

    fn delete_account(&self, name: &str) -> Result<bool, StoreError> {
        let mut registry = lock(&self.inner.registry);
        let mut root = self
            .inner
            .root
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let key = dir_key(&root.keys, name);
        let txn = self.inner.db.begin_write()?;
        let new_root_key = random_key();
        let new_root = DataKeys::derive(&new_root_key);
        {
            let mut dir = txn.open_table(ACCOUNTS)?;
            let Some(sealed) = dir.get(key.as_slice())?.map(|v| v.value().to_vec()) else {
                return Ok(false);
            };
            let gone = open_dir_entry(&root.keys, &key, &sealed)?;
            let ns = gone.ns.to_be_bytes();
            let (start, end) = KeyRange::prefix(&[]).absolute(&ns);
            let end = match &end {
                std::ops::Bound::Excluded(e) => std::ops::Bound::Excluded(e.as_slice()),
                _ => std::ops::Bound::Unbounded,
            };
            for t in Table::ALL {
                let mut table = txn.open_table(def(t))?;
                table.retain_in::<&[u8], _>(
                    (std::ops::Bound::Included(start.as_slice()), end),
                    |_, _| false,
                )?;
            }
            // Rotate the root key: re-seal every remaining directory entry (their keys are
            // root-keyed hashes, so they move too) and re-wrap the new root key.
            let mut keep = Vec::new();
            for item in dir.iter()? {
                let (k, v) = item?;
                if k.value() != key.as_slice() {
                    keep.push(open_dir_entry(&root.keys, k.value(), v.value())?);
                }
            }
            dir.retain(|_, _| false)?;
            for e in &keep {
                let k = dir_key(&new_root, &e.name);
                dir.insert(
                    k.as_slice(),
                    seal_dir_entry(&new_root, &k, e.ns, &e.name, &e.data_key).as_slice(),
                )?;
            }
            let kek = lock(&self.inner.kek);
            let header = kek.header.reseal(&kek.kek, &new_root_key, SCHEMA_VERSION);
            drop(kek);
            put_meta(&txn, META_KEK, &header.encode())?;
        }
        // Writers check this flag inside their write transaction; none can run until this
        // transaction ends, so no write can land in the deleted namespace after the commit.
        let handle = registry.get(name).cloned();
        if let Some(h) = &handle {
            h.deleted.store(true, Ordering::SeqCst);
        }
        if let Err(e) = txn.commit() {
            if let Some(h) = &handle {
                h.deleted.store(false, Ordering::SeqCst);
            }
            return Err(e.into());
        }
        registry.remove(name);
        *root = RootState {
            key: new_root_key,
            keys: new_root,
        };
        Ok(true)
    }

    fn list_accounts(&self) -> Result<Vec<String>, StoreError> {
        let _registry = lock(&self.inner.registry);
        let root = self
            .inner
            .root
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let txn = self.inner.db.begin_read()?;
        let dir = txn.open_table(ACCOUNTS)?;
        let mut names = Vec::new();
        for item in dir.iter()? {
            let (k, v) = item?;
            names.push(open_dir_entry(&root.keys, k.value(), v.value())?.name);
        }
        names.sort();
        Ok(names)
    }
}

impl AccountStore for RedbAccount {
    fn name(&self) -> &str {
        &self.account.name
    }

    fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let txn = self.inner.db.begin_read().map_err(StoreError::from)?;
        if self.account.deleted.load(Ordering::SeqCst) {
            return Err(StoreError::AccountDeleted.into());
        }
        let raw = ReadRaw::new(
            &txn,
            Layout::V2 {
                ns: self.account.ns,
            },
            &self.account.keys,
        );
        f(&Tx::new(&raw, self.inner.limits))
    }

    fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        let txn = self.inner.db.begin_write().map_err(StoreError::from)?;
        if self.account.deleted.load(Ordering::SeqCst) {
            return Err(StoreError::AccountDeleted.into());
        }
        let raw = WriteRaw::new(
            &txn,
            Layout::V2 {
                ns: self.account.ns,
            },
            &self.account.keys,
        );
        let result = f(&Tx::new(&raw, self.inner.limits));
        drop(raw);
        match result {
            Ok(v) => {
                txn.commit().map_err(StoreError::from)?;
                Ok(v)
            }
            Err(e) => {
                // Dropping would abort too; an abort error is secondary to the caller's error.
                let _ = txn.abort();
                Err(e)
            }
        }
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<RedbStore>();
    is::<RedbAccount>();
}

#[cfg(test)]
mod tests {
    use redb::ReadableTable as _;

    use super::*;
    use crate::traits::SessionStore as _;
    use crate::types::SignalAddress;

    fn raw(store: &RedbStore, table: Def) -> Vec<(Vec<u8>, Vec<u8>)> {
        let txn = store.inner.db.begin_read().unwrap();
        let t = txn.open_table(table).unwrap();
        t.iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k.value().to_vec(), v.value().to_vec())
            })
            .collect()
    }

    type Def = backend::Def;

    /// Deleting an account destroys its data key: with the KEK and everything the file holds
    /// afterwards, the account's old directory entry and records (as they may survive in freed
    /// pages) cannot be decrypted; before the deletion, the same bytes could.
    #[test]
    fn deleting_an_account_crypto_shreds_it() {
        let dir = tempfile::tempdir().unwrap();
        let kek = KekSource::key([3; 32]);
        let store = RedbStore::open(dir.path().join("s"), &kek, &OpenOptions::default()).unwrap();
        let a = store.create_account("alice").unwrap();
        let b = store.create_account("bob").unwrap();
        let peer = SignalAddress::new("15551234567", 0);
        a.put_session(&peer, b"alice's ratchet").unwrap();
        b.put_session(&peer, b"bob's ratchet").unwrap();

        // What an attacker could later find in freed pages.
        let old_root = store.inner.root.read().unwrap().keys.clone();
        let alice_key = dir_key(&old_root, "alice");
        let old_entry = raw(&store, ACCOUNTS)
            .into_iter()
            .find(|(k, _)| k.as_slice() == alice_key.as_slice())
            .unwrap();
        let (rec_key, rec_val) = raw(&store, def(Table::Sessions))
            .into_iter()
            .find(|(k, _)| k[..8] == 1u64.to_be_bytes())
            .unwrap();
        // Sanity: before the deletion these bytes do decrypt (the test would be vacuous
        // otherwise).
        let entry = open_dir_entry(&old_root, &old_entry.0, &old_entry.1).unwrap();
        let alice_keys = DataKeys::derive(&entry.data_key);
        let layout = Layout::V2 {
            ns: 1u64.to_be_bytes(),
        };
        backend::open_value(&alice_keys, layout, "signal_sessions", &rec_key, &rec_val).unwrap();

        assert!(store.delete_account("alice").unwrap());

        // Everything the file now holds, unlocked with the KEK.
        let txn = store.inner.db.begin_read().unwrap();
        let meta = read_meta_txn(&txn, Path::new("s")).unwrap();
        let root_now = DataKeys::derive(&meta.header.unseal(&kek, SCHEMA_VERSION).unwrap());
        assert!(matches!(
            open_dir_entry(&root_now, &old_entry.0, &old_entry.1),
            Err(StoreError::Integrity {
                table: "accounts",
                ..
            })
        ));
        let dir_now = raw(&store, ACCOUNTS);
        assert_eq!(dir_now.len(), 1);
        for (k, v) in &dir_now {
            let e = open_dir_entry(&root_now, k, v).unwrap();
            assert_eq!(e.name, "bob");
            assert_ne!(*e.data_key, *entry.data_key);
            assert!(
                backend::open_value(
                    &DataKeys::derive(&e.data_key),
                    layout,
                    "signal_sessions",
                    &rec_key,
                    &rec_val
                )
                .is_err()
            );
        }
        // No record of the namespace is left in any table.
        for t in Table::ALL {
            assert!(
                raw(&store, def(t))
                    .iter()
                    .all(|(k, _)| k[..8] != 1u64.to_be_bytes()),
                "{t:?}"
            );
        }
        // Bob is intact, through the old handle and a fresh one.
        assert_eq!(&*b.get_session(&peer).unwrap().unwrap(), b"bob's ratchet");
        drop((a, b, txn, store));
        let store = RedbStore::open(dir.path().join("s"), &kek, &OpenOptions::default()).unwrap();
        let b = store.account("bob").unwrap().unwrap();
        assert_eq!(&*b.get_session(&peer).unwrap().unwrap(), b"bob's ratchet");
        assert!(store.account("alice").unwrap().is_none());
    }
}
