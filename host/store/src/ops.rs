//! Offline operations on a store file, for the `wasmeow store rekey|verify|compact` commands:
//! [`rekey`], [`verify`] (with its [`VerifyReport`]) and [`compact`].
//!
//! [`verify`] never opens a write transaction: it opens the file read-only (if the file needs
//! crash recovery, redb repairs it first; the report says so), unwraps the root key, decrypts
//! every account-directory entry and every value, and lists each failure with its table and
//! record. It reports no plaintext.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use redb::{
    Builder, Database, DatabaseError, ReadOnlyDatabase, ReadTransaction, ReadableDatabase as _,
    ReadableTable as _, TableError,
};
use serde::Serialize;

use crate::crypto::DataKeys;
use crate::error::{KekKind, OpenError, StoreError};
use crate::kek::KekSource;
use crate::raw::Table;
use crate::redb_store::backend::{
    ACCOUNTS, Def, Layout, SCHEMA_VERSION, def, open_value, read_meta_txn,
};
use crate::redb_store::{ACCOUNTS_NAME, OpenOptions, RedbStore, dir_key, open_dir_entry};

/// Re-wraps the root key of the store at `path` from the `old` KEK to the `new` one, atomically
/// (see [`RedbStore::rekey`]). The file is migrated first if it has an older schema.
/// [`OpenError::WrongKey`] if `old` is wrong (the file is then unchanged).
pub fn rekey(
    path: impl AsRef<Path>,
    old: &KekSource,
    new: &KekSource,
    options: &OpenOptions,
) -> Result<(), OpenError> {
    let store = RedbStore::open(path, old, options)?;
    store.rekey(new)
}

/// Compacts the store at `path` (see [`RedbStore::compact`]); whether anything was compacted.
pub fn compact(
    path: impl AsRef<Path>,
    kek: &KekSource,
    options: &OpenOptions,
) -> Result<bool, OpenError> {
    let mut store = RedbStore::open(path, kek, options)?;
    Ok(store.compact()?)
}

/// What [`verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The file checked.
    pub path: String,
    /// Its schema version.
    pub schema_version: u32,
    /// The kind of key its header expects.
    pub key_kind: KekKind,
    /// Whether redb had to repair the file (unclean shutdown) before it could be read.
    pub repaired: bool,
    /// Accounts in the directory (including any whose entry failed to decrypt).
    pub accounts: u64,
    /// Values decrypted (directory entries included).
    pub records_checked: u64,
    /// Records per table, in a fixed order.
    pub tables: Vec<TableCount>,
    /// Every failure found. Empty means the store is intact.
    pub problems: Vec<Problem>,
}

/// The record count of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableCount {
    /// Table name.
    pub table: String,
    /// Records in it.
    pub records: u64,
}

/// One failure found by [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Table name.
    pub table: String,
    /// The stored record key, hex (keyed hashes, never a clear contact).
    pub record: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// The kinds of failure [`verify`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The value failed authentication: modified, moved, or sealed with another key.
    Integrity,
    /// The value authenticated but does not decode.
    Malformed,
    /// The record's namespace belongs to no account in the directory.
    UnknownAccount,
    /// The record key is too short to carry a namespace.
    MalformedKey,
    /// A directory entry is stored under a key that does not match its name.
    DirectoryMismatch,
    /// redb could not read the table (corruption below the encryption layer).
    Engine,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::Integrity => "integrity error (value failed authentication)",
            ProblemKind::Malformed => "malformed value",
            ProblemKind::UnknownAccount => "record of an unknown account",
            ProblemKind::MalformedKey => "malformed record key",
            ProblemKind::DirectoryMismatch => "directory entry under the wrong key",
            ProblemKind::Engine => "storage engine error",
        })
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "store {}: schema {}, {} key, {} account(s), {} value(s) checked{}",
            self.path,
            self.schema_version,
            self.key_kind,
            self.accounts,
            self.records_checked,
            if self.repaired {
                " (repaired after an unclean shutdown)"
            } else {
                ""
            },
        )?;
        for t in &self.tables {
            writeln!(f, "  {:<18} {}", t.table, t.records)?;
        }
        if self.problems.is_empty() {
            write!(f, "OK: every value decrypted and authenticated")
        } else {
            writeln!(f, "{} problem(s):", self.problems.len())?;
            for p in &self.problems {
                writeln!(f, "  table `{}` record {}: {}", p.table, p.record, p.kind)?;
            }
            Ok(())
        }
    }
}

enum Opened {
    ReadOnly(ReadOnlyDatabase),
    Repaired(Database),
}

impl Opened {
    fn begin_read(&self) -> Result<ReadTransaction, redb::TransactionError> {
        match self {
            Opened::ReadOnly(db) => db.begin_read(),
            Opened::Repaired(db) => db.begin_read(),
        }
    }
}

/// Decrypts every value of the store at `path` and reports each failure precisely.
///
/// Errors (no report possible): [`OpenError::WrongKey`], [`OpenError::NeedsMigration`] (open it
/// read-write once), [`OpenError::NotAStore`], ...
pub fn verify(path: impl AsRef<Path>, kek: &KekSource) -> Result<VerifyReport, OpenError> {
    let path = path.as_ref();
    let db = match Builder::new().open_read_only(path) {
        Ok(db) => Opened::ReadOnly(db),
        Err(DatabaseError::RepairAborted) => Opened::Repaired(Builder::new().open(path)?),
        Err(e) => return Err(e.into()),
    };
    let txn = db.begin_read()?;
    let meta = read_meta_txn(&txn, path)?;
    if meta.schema > SCHEMA_VERSION {
        return Err(OpenError::SchemaTooNew {
            found: meta.schema,
            supported: SCHEMA_VERSION,
        });
    }
    if meta.schema < SCHEMA_VERSION {
        return Err(OpenError::NeedsMigration {
            found: meta.schema,
            current: SCHEMA_VERSION,
        });
    }
    let root_key = meta.header.unseal(kek, SCHEMA_VERSION)?;
    let root = DataKeys::derive(&root_key);

    let mut report = VerifyReport {
        path: path.display().to_string(),
        schema_version: meta.schema,
        key_kind: meta.header.kind(),
        repaired: matches!(db, Opened::Repaired(_)),
        accounts: 0,
        records_checked: 0,
        tables: Vec::new(),
        problems: Vec::new(),
    };
    let problem = |table: &str, record: &[u8], kind| Problem {
        table: table.to_owned(),
        record: hex::encode(record),
        kind,
    };

    // The directory: namespace → data keys.
    let mut accounts: HashMap<[u8; 8], DataKeys> = HashMap::new();
    let mut dir_count = 0;
    let dir_result = for_each(&txn, ACCOUNTS, |k, v| {
        dir_count += 1;
        report.accounts += 1;
        report.records_checked += 1;
        match open_dir_entry(&root, k, v) {
            Ok(e) => {
                if dir_key(&root, &e.name).as_slice() != k {
                    report
                        .problems
                        .push(problem(ACCOUNTS_NAME, k, ProblemKind::DirectoryMismatch));
                }
                accounts.insert(e.ns.to_be_bytes(), DataKeys::derive(&e.data_key));
            }
            Err(StoreError::Integrity { .. }) => {
                report
                    .problems
                    .push(problem(ACCOUNTS_NAME, k, ProblemKind::Integrity));
            }
            Err(_) => report
                .problems
                .push(problem(ACCOUNTS_NAME, k, ProblemKind::Malformed)),
        }
    });
    if dir_result.is_err() {
        report
            .problems
            .push(problem(ACCOUNTS_NAME, &[], ProblemKind::Engine));
    }
    report.tables.push(TableCount {
        table: ACCOUNTS_NAME.to_owned(),
        records: dir_count,
    });

    for t in Table::ALL {
        let mut count = 0;
        let result = for_each(&txn, def(t), |k, v| {
            count += 1;
            let Some(ns) = k.get(..8).and_then(|n| <[u8; 8]>::try_from(n).ok()) else {
                report
                    .problems
                    .push(problem(t.name(), k, ProblemKind::MalformedKey));
                return;
            };
            let Some(keys) = accounts.get(&ns) else {
                report
                    .problems
                    .push(problem(t.name(), k, ProblemKind::UnknownAccount));
                return;
            };
            report.records_checked += 1;
            if open_value(keys, Layout::V2 { ns }, t.name(), k, v).is_err() {
                report
                    .problems
                    .push(problem(t.name(), k, ProblemKind::Integrity));
            }
        });
        if result.is_err() {
            report
                .problems
                .push(problem(t.name(), &[], ProblemKind::Engine));
        }
        report.tables.push(TableCount {
            table: t.name().to_owned(),
            records: count,
        });
    }
    Ok(report)
}

/// Visits every record of a table (a missing table has none).
fn for_each(
    txn: &ReadTransaction,
    table: Def,
    mut visit: impl FnMut(&[u8], &[u8]),
) -> Result<(), redb::Error> {
    let t = match txn.open_table(table) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for item in t.iter()? {
        let (k, v) = item?;
        visit(k.value(), v.value());
    }
    Ok(())
}
