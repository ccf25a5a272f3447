//! The two failure domains of the store: [`StoreError`] for operations on an open store, and
//! [`OpenError`] for opening, creating, migrating, rekeying, verifying and compacting a file.
//!
//! No variant carries a secret or a plaintext value. Records are named by their table and by the
//! hex of their stored key, which for anything that could reveal a contact is a keyed hash.

use std::path::PathBuf;

/// An operation on an open store (or inside one of its transactions) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A stored value failed AES-GCM authentication: it was modified, moved to another record or
    /// table, or belongs to a data key that no longer exists.
    #[error("integrity error: value in table `{table}` at record {record} failed authentication")]
    Integrity {
        /// The table holding the value.
        table: &'static str,
        /// The stored record key, hex.
        record: String,
    },
    /// A value authenticated but its contents do not decode. This means a bug or a value written
    /// by an incompatible version, never tampering (tampering fails authentication first).
    #[error("malformed value in table `{table}` at record {record}: {reason}")]
    Malformed {
        /// The table holding the value.
        table: &'static str,
        /// The stored record key (relative to the account), hex.
        record: String,
        /// What did not decode.
        reason: &'static str,
    },
    /// A write was attempted through a read transaction.
    #[error("write attempted in a read transaction")]
    ReadOnly,
    /// The account this handle refers to was deleted.
    #[error("the account was deleted")]
    AccountDeleted,
    /// `create_account` was called with a name that already exists.
    #[error("an account with this name already exists")]
    AccountExists,
    /// One-time prekey ids are 24-bit; the account has used them all.
    #[error("one-time prekey ids exhausted (ids are below 2^24)")]
    PreKeyIdsExhausted,
    /// An argument was outside what the store accepts (empty names, oversized values).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// The embedded database failed (IO error, corruption detected by redb, ...).
    #[error("storage engine: {0}")]
    Engine(#[from] redb::Error),
}

macro_rules! engine_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Engine(e.into())
            }
        }
    )*};
}
engine_from!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError
);

/// Where a key-encryption key (KEK) came from, as stored in the file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum KekKind {
    /// A raw 256-bit key (environment variable, key file or explicit bytes).
    RawKey,
    /// A passphrase stretched by Argon2id with the parameters in the header.
    Passphrase,
}

impl std::fmt::Display for KekKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KekKind::RawKey => "raw key",
            KekKind::Passphrase => "passphrase",
        })
    }
}

/// Opening, creating, migrating, rekeying, verifying or compacting a store file failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The key-encryption key does not unwrap the file's root key: wrong key or passphrase (or a
    /// tampered header). The file was not modified.
    #[error("wrong key or passphrase for this store (the file was not modified)")]
    WrongKey,
    /// The file was sealed with one kind of key and another kind was supplied.
    #[error("this store is sealed with a {file}, but a {given} was supplied")]
    KekKindMismatch {
        /// What the file header says.
        file: KekKind,
        /// What the caller supplied.
        given: KekKind,
    },
    /// A key file is readable by its group or by others.
    #[error(
        "key file {path} has mode {mode:o}: it must not be readable by group or others (chmod 600)"
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file could not be read.
    #[error("cannot read key file {path}: {source}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// Key material was not 32 bytes of hex or base64 (or 32 raw bytes in a key file).
    #[error("key from {origin} is not a 256-bit key in hex (64 digits) or base64")]
    BadKeyEncoding {
        /// Where the key came from (an environment variable name or "key file").
        origin: String,
    },
    /// No key source was configured: no environment variable, no key file, no passphrase.
    #[error("no store key: set {env_var}, configure a key file, or supply a passphrase")]
    NoKeySource {
        /// The environment variable that was consulted.
        env_var: String,
    },
    /// An empty passphrase was supplied.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// The file exists but is not a wasmeow store (no magic record).
    #[error("not a wasmeow store: {0}")]
    NotAStore(PathBuf),
    /// The file's schema version is newer than this build understands.
    #[error("store schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// Version in the file.
        found: u32,
        /// Highest version this build supports.
        supported: u32,
    },
    /// An operation that does not migrate found an older schema.
    #[error(
        "store schema version {found} must be migrated to {current} first (open it once read-write)"
    )]
    NeedsMigration {
        /// Version in the file.
        found: u32,
        /// Current version.
        current: u32,
    },
    /// The file header is malformed (bad length, unknown kind, absurd Argon2 parameters).
    #[error("malformed store header: {0}")]
    BadHeader(&'static str),
    /// Argon2id rejected its parameters.
    #[error("argon2id: {0}")]
    Argon2(String),
    /// The store file is locked by another process (or another handle in this one).
    #[error("the store file is already open")]
    AlreadyOpen,
    /// The store file could not be inspected or created.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A store operation failed during open, migration or rekey.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The embedded database could not be opened or read.
    #[error("storage engine: {0}")]
    Engine(redb::Error),
}

impl From<redb::DatabaseError> for OpenError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::AlreadyOpen,
            other => OpenError::Engine(other.into()),
        }
    }
}

macro_rules! open_engine_from {
    ($($t:ty),*) => {$(
        impl From<$t> for OpenError {
            fn from(e: $t) -> Self {
                OpenError::Engine(e.into())
            }
        }
    )*};
}
open_engine_from!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::CompactionError
);
