//! The trait-conformance suite, run against both implementations.

use wasmeow_store::{Argon2Params, KekSource, Limits, MemoryStore, OpenOptions, RedbStore};

fn memory(limits: Limits) -> (MemoryStore, ()) {
    (MemoryStore::with_limits(limits), ())
}

fn redb(limits: Limits) -> (RedbStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = OpenOptions {
        limits,
        argon2: Argon2Params::insecure_for_tests(),
        ..OpenOptions::default()
    };
    let store = RedbStore::open(
        dir.path().join("store"),
        &KekSource::key([42; 32]),
        &options,
    )
    .expect("open store");
    (store, dir)
}

/// A redb store that is closed and reopened (from disk) before it is handed out: the suite then
/// also exercises accounts and keys read back from the file. Each check creates its accounts
/// itself, so reopening an empty store is what we can do here; `reopen_*` tests in
/// `lifecycle.rs` cover data surviving a reopen.
fn redb_reopened(limits: Limits) -> (RedbStore, tempfile::TempDir) {
    let (store, dir) = redb(limits);
    drop(store);
    let options = OpenOptions {
        limits,
        ..OpenOptions::default()
    };
    let store = RedbStore::open(
        dir.path().join("store"),
        &KekSource::key([42; 32]),
        &options,
    )
    .expect("reopen store");
    (store, dir)
}

mod memory_store {
    wasmeow_store::store_conformance_tests!(super::memory);
}

mod redb_store {
    wasmeow_store::store_conformance_tests!(super::redb);
}

mod redb_store_reopened {
    wasmeow_store::store_conformance_tests!(super::redb_reopened);
}
