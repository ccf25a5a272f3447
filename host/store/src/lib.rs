//! Persistence for wasmeow: Signal state, device credentials, dedupe ids, queues, plugin
//! key-value data and scheduler jobs, behind synchronous traits, with an encrypted on-disk
//! implementation ([`RedbStore`]) and an in-memory one ([`MemoryStore`]) that behaves the same.
//!
//! - **Traits** ([`traits`]): [`Store`] holds accounts (one account = one WhatsApp session);
//!   [`AccountStore`] is a `Clone + Send + Sync` handle with explicit transactions; per-kind
//!   traits ([`SessionStore`], [`IdentityStore`], [`PreKeyStore`], [`DedupeStore`],
//!   [`QueueStore`], [`PluginKvStore`], ...) are implemented by [`Tx`] and by every handle.
//!   Calls are synchronous and short; the tokio session engine runs them on blocking threads.
//! - **One file, many accounts.** 200 sessions share one redb file (one page cache, one fsync
//!   stream, one file descriptor) instead of 200 databases. Every record key starts with the
//!   account's 8-byte namespace. Each account has its own random data key; deleting an account
//!   removes its records and its data key and rotates the root key, so pages the account left
//!   behind (redb is copy-on-write) can no longer be decrypted with any key in the file
//!   (crypto-shredding).
//! - **Envelope encryption.** Every value is sealed with AES-256-GCM under a fresh random nonce;
//!   the associated data binds the table, the full record key and the schema version. Record
//!   keys that could reveal contacts (JIDs, phone numbers, group ids, message ids, plugin keys)
//!   are HMAC-SHA256 hashes under a per-account key. A key-encryption key (KEK) from
//!   `WASMEOW_STORE_KEY`, a key file (mode 0600) or an Argon2id passphrase wraps the root key
//!   ([`KekSource`]).
//! - **Operations** ([`ops`]): [`rekey`], [`verify`] with a [`VerifyReport`] (Display and serde),
//!   [`compact`]; numbered schema migrations run on open.
//!
//! The file format is described in `host/store/DESIGN.md`.
//!
//! ```
//! use wasmeow_store::{
//!     AccountStore, DedupeStore, KekSource, OpenOptions, Queue, QueueStore, RedbStore,
//!     SessionStore, SignalAddress, Store,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("wasmeow.store");
//! let key = KekSource::key([7u8; 32]); // in production: KekSource::resolve(&config)
//! let store = RedbStore::open(&path, &key, &OpenOptions::default())?;
//! let account = store.open_or_create_account("main")?;
//!
//! // The message path: ratchet state, dedupe id and the decrypted message commit together,
//! // before the receipt is sent.
//! let peer = SignalAddress::new("15551234567", 0);
//! let fresh = account.write(|tx| {
//!     if !tx.mark_seen("3EB0C0FFEE", 1_700_000_000_000)? {
//!         return Ok(false); // duplicate: nothing to do
//!     }
//!     tx.put_session(&peer, b"updated session record")?;
//!     tx.queue_push(Queue::Inbound, b"decrypted message")?;
//!     Ok::<_, wasmeow_store::StoreError>(true)
//! })?;
//! assert!(fresh);
//!
//! // Reads outside a transaction; a wrong key is refused without touching the file.
//! assert!(account.has_session(&peer)?);
//! drop((account, store));
//! let wrong = RedbStore::open(&path, &KekSource::key([8u8; 32]), &OpenOptions::default());
//! assert!(matches!(wrong, Err(wasmeow_store::OpenError::WrongKey)));
//! # Ok(())
//! # }
//! ```

mod crypto;
mod error;
mod kek;
mod memory;
pub mod ops;
mod raw;
mod redb_store;
pub mod testing;
pub mod traits;
mod tx;
mod types;

pub use error::{KekKind, OpenError, StoreError};
pub use kek::{Argon2Params, KEY_ENV_VAR, KekSource, KeyConfig};
pub use memory::{MemoryAccount, MemoryStore};
pub use ops::{Problem, ProblemKind, TableCount, VerifyReport, compact, rekey, verify};
pub use redb_store::migrate::V1_ACCOUNT_NAME;
pub use redb_store::{DEFAULT_CACHE_BYTES, OpenOptions, RedbAccount, RedbStore};
pub use traits::{
    AccountStore, DedupeStore, DeviceListStore, DeviceStore, IdentityStore, JobStore, LidStore,
    PluginKvStore, PreKeyStore, QueueStore, RecentSentStore, SenderKeyStore, SessionStore,
    SignedPreKeyStore, Store,
};
pub use tx::{MAX_VALUE_LEN, Tx};
pub use types::{
    DeviceCredentials, DeviceList, Limits, PreKey, Queue, QueueItem, Secret, SignalAddress,
};
