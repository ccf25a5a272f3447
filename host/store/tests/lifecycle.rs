//! Store lifecycle: data surviving reopen, rekey, the schema 1 → 2 migration, account deletion
//! and compaction.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use wasmeow_store::testing::{Needle, assert_no_secrets, write_v1_store};
use wasmeow_store::{
    AccountStore, Argon2Params, DeviceList, KekSource, OpenError, OpenOptions, Queue, RedbStore,
    Secret, SignalAddress, Store, StoreError, V1_ACCOUNT_NAME, rekey, verify,
};
use wasmeow_store::{
    DedupeStore, DeviceListStore, DeviceStore, IdentityStore, JobStore, LidStore, PluginKvStore,
    PreKeyStore, QueueStore, RecentSentStore, SenderKeyStore, SessionStore, SignedPreKeyStore,
};

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;

fn options() -> OpenOptions {
    OpenOptions {
        argon2: Argon2Params::insecure_for_tests(),
        ..OpenOptions::default()
    }
}

fn temp_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmeow.store");
    (dir, path)
}

fn peer() -> SignalAddress {
    SignalAddress::new("15551234567", 3)
}

/// Writes one of everything.
fn fill(tx: &wasmeow_store::Tx<'_>) -> Result<(), StoreError> {
    tx.put_device(&wasmeow_store::testing::conformance::sample_credentials())?;
    tx.put_identity(&peer(), &[0x42; 32])?;
    tx.put_session(&peer(), b"session record with chain keys")?;
    tx.gen_prekeys(5, &mut |id| {
        Secret::new(format!("prekey {id}").into_bytes())
    })?;
    tx.mark_prekeys_uploaded(3)?;
    tx.put_signed_prekey(7, b"signed prekey")?;
    tx.put_sender_key("120363041234567890@g.us", &peer(), b"sender key")?;
    tx.put_lid_mapping("123456789012345", "15551234567")?;
    tx.put_device_list(
        "15551234567",
        &DeviceList {
            devices: vec![0, 3],
            fetched_at_ms: 99,
        },
    )?;
    assert!(tx.mark_seen("3EB0DEDUPE", 1_000)?);
    tx.put_recent_sent("15551234567@s.whatsapp.net", "3EB0SENT", b"sent message")?;
    tx.queue_push(Queue::Outbox, b"pending send")?;
    tx.queue_push(Queue::Inbound, b"undelivered message")?;
    tx.kv_set("crm", "contact/15551234567", b"VIP")?;
    tx.put_job("campaign-1", b"state")?;
    Ok(())
}

/// Checks everything `fill` wrote.
fn check<A: AccountStore>(a: &A) {
    assert_eq!(
        a.get_device().unwrap().unwrap(),
        wasmeow_store::testing::conformance::sample_credentials()
    );
    assert_eq!(a.get_identity(&peer()).unwrap(), Some([0x42; 32]));
    assert_eq!(
        &*a.get_session(&peer()).unwrap().unwrap(),
        b"session record with chain keys"
    );
    assert_eq!(a.sessions_of("15551234567").unwrap().len(), 1);
    assert_eq!(&*a.get_prekey(4).unwrap().unwrap().record, b"prekey 4");
    assert_eq!(a.uploaded_prekey_count().unwrap(), 3);
    assert_eq!(&*a.get_signed_prekey(7).unwrap().unwrap(), b"signed prekey");
    assert_eq!(
        &*a.get_sender_key("120363041234567890@g.us", &peer())
            .unwrap()
            .unwrap(),
        b"sender key"
    );
    assert_eq!(
        a.get_lid_for_pn("15551234567").unwrap().as_deref(),
        Some("123456789012345")
    );
    assert_eq!(
        a.get_device_list("15551234567").unwrap().unwrap().devices,
        vec![0, 3]
    );
    assert!(a.is_seen("3EB0DEDUPE").unwrap());
    assert!(!a.mark_seen("3EB0DEDUPE", 2_000).unwrap());
    assert_eq!(
        &*a.get_recent_sent("15551234567@s.whatsapp.net", "3EB0SENT")
            .unwrap()
            .unwrap(),
        b"sent message"
    );
    assert_eq!(
        &*a.queue_peek(Queue::Outbox, 9).unwrap()[0].payload,
        b"pending send"
    );
    assert_eq!(
        &*a.queue_peek(Queue::Inbound, 9).unwrap()[0].payload,
        b"undelivered message"
    );
    assert_eq!(a.kv_list("crm", "contact/").unwrap().len(), 1);
    assert_eq!(&*a.get_job("campaign-1").unwrap().unwrap(), b"state");
}

/// Counters (prekey ids, queue ids) continue where they were.
fn check_counters_continue<A: AccountStore>(a: &A) {
    let next = a.gen_prekeys(1, &mut |_| Secret::from(&b"x"[..])).unwrap();
    assert_eq!(next[0].id, 6);
    assert_eq!(a.queue_push(Queue::Outbox, b"next").unwrap(), 2);
}

fn raw_meta(path: &Path, key: &[u8]) -> Option<Vec<u8>> {
    let db = redb::ReadOnlyDatabase::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(Def::new("meta")).unwrap();
    t.get(key).unwrap().map(|v| v.value().to_vec())
}

fn raw_table(path: &Path, table: &'static str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = redb::ReadOnlyDatabase::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let t = match txn.open_table(Def::new(table)) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Vec::new(),
        Err(e) => panic!("{e}"),
    };
    t.iter()
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.value().to_vec(), v.value().to_vec())
        })
        .collect()
}

#[test]
fn data_survives_close_and_reopen() {
    let (_dir, path) = temp_store();
    let key = KekSource::key([1; 32]);
    {
        let store = RedbStore::open(&path, &key, &options()).unwrap();
        store.create_account("main").unwrap().write(fill).unwrap();
    }
    let store = RedbStore::open(&path, &key, &options()).unwrap();
    let a = store.account("main").unwrap().unwrap();
    check(&a);
    check_counters_continue(&a);
}

#[test]
fn rekey_keeps_the_data_and_retires_the_old_key() {
    let (_dir, path) = temp_store();
    let k1 = KekSource::key([1; 32]);
    let k2 = KekSource::key([2; 32]);
    let p3 = KekSource::passphrase("a long passphrase for the store");
    {
        let store = RedbStore::open(&path, &k1, &options()).unwrap();
        store.create_account("main").unwrap().write(fill).unwrap();
        store
            .create_account("second")
            .unwrap()
            .put_job("x", b"y")
            .unwrap();
    }
    let before_accounts = raw_table(&path, "accounts");
    let before_sessions = raw_table(&path, "signal_sessions");

    rekey(&path, &k1, &k2, &options()).unwrap();
    assert!(matches!(
        RedbStore::open(&path, &k1, &options()),
        Err(OpenError::WrongKey)
    ));
    // Rekey only re-wraps the root key: every data record is byte-identical.
    assert_eq!(raw_table(&path, "accounts"), before_accounts);
    assert_eq!(raw_table(&path, "signal_sessions"), before_sessions);
    {
        let store = RedbStore::open(&path, &k2, &options()).unwrap();
        check(&store.account("main").unwrap().unwrap());
    }

    // To a passphrase and back, through the method on an open store.
    {
        let store = RedbStore::open(&path, &k2, &options()).unwrap();
        store.rekey(&p3).unwrap();
        // The open store keeps working under the new KEK (root rotation re-wraps with it).
        assert!(store.delete_account("second").unwrap());
    }
    assert!(matches!(
        RedbStore::open(&path, &k2, &options()),
        Err(OpenError::KekKindMismatch { .. })
    ));
    assert!(matches!(
        RedbStore::open(&path, &KekSource::passphrase("wrong"), &options()),
        Err(OpenError::WrongKey)
    ));
    let report = verify(&path, &p3).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.accounts, 1);
    rekey(&path, &p3, &k1, &options()).unwrap();
    let store = RedbStore::open(&path, &k1, &options()).unwrap();
    check(&store.account("main").unwrap().unwrap());
    assert_eq!(store.list_accounts().unwrap(), vec!["main"]);
}

#[test]
fn migration_from_schema_1() {
    for key in [
        KekSource::key([7; 32]),
        KekSource::passphrase("v1 passphrase"),
    ] {
        let (_dir, path) = temp_store();
        write_v1_store(&path, &key, Argon2Params::insecure_for_tests(), fill).unwrap();
        assert_eq!(raw_meta(&path, b"schema").unwrap(), 1u32.to_be_bytes());
        assert!(raw_meta(&path, b"next_account").is_none());
        // The v1 layout: keys without a namespace (sessions: 16-byte user hash + device).
        assert_eq!(raw_table(&path, "signal_sessions")[0].0.len(), 20);

        // verify() does not migrate; a wrong key neither.
        assert!(matches!(
            verify(&path, &key),
            Err(OpenError::NeedsMigration {
                found: 1,
                current: 2
            })
        ));
        let before = std::fs::read(&path).unwrap();
        let wrong = match &key {
            KekSource::Key(_) => KekSource::key([8; 32]),
            KekSource::Passphrase(_) => KekSource::passphrase("v2 passphrase"),
        };
        assert!(matches!(
            RedbStore::open(&path, &wrong, &options()),
            Err(OpenError::WrongKey)
        ));
        assert_eq!(std::fs::read(&path).unwrap(), before);

        {
            let store = RedbStore::open(&path, &key, &options()).unwrap();
            assert_eq!(store.list_accounts().unwrap(), vec![V1_ACCOUNT_NAME]);
            check(&store.account(V1_ACCOUNT_NAME).unwrap().unwrap());
            store
                .create_account("another")
                .unwrap()
                .put_job("j", b"new")
                .unwrap();
        }
        assert_eq!(raw_meta(&path, b"schema").unwrap(), 2u32.to_be_bytes());
        assert_eq!(raw_table(&path, "signal_sessions")[0].0.len(), 28);
        let report = verify(&path, &key).unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.accounts, 2);
        assert_no_secrets(
            &path,
            &[
                Needle::new("phone", b"15551234567"),
                Needle::new("session", b"session record with chain keys"),
            ],
        );
        // Reopening a migrated file does not migrate again.
        let store = RedbStore::open(&path, &key, &options()).unwrap();
        let a = store.account(V1_ACCOUNT_NAME).unwrap().unwrap();
        check(&a);
        check_counters_continue(&a);
    }
}

#[test]
fn a_corrupt_v1_record_aborts_the_migration_and_leaves_the_v1_data() {
    let (_dir, path) = temp_store();
    let key = KekSource::key([7; 32]);
    write_v1_store(&path, &key, Argon2Params::insecure_for_tests(), fill).unwrap();
    let (k, mut v) = raw_table(&path, "jobs").remove(0);
    v[15] ^= 1;
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(Def::new("jobs"))
            .unwrap()
            .insert(k.as_slice(), v.as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let tables = ["meta", "jobs", "signal_sessions", "plugin_kv"];
    let before: Vec<_> = tables.iter().map(|t| raw_table(&path, t)).collect();
    let err = RedbStore::open(&path, &key, &options())
        .err()
        .expect("migration fails");
    assert!(
        matches!(&err, OpenError::Store(StoreError::Integrity { table: "jobs", record }) if *record == hex::encode(&k)),
        "{err:?}"
    );
    let after: Vec<_> = tables.iter().map(|t| raw_table(&path, t)).collect();
    assert_eq!(before, after);
    assert!(raw_table(&path, "accounts").is_empty());
}

#[test]
fn deleting_an_account_removes_every_record_and_compaction_reclaims_space() {
    let (_dir, path) = temp_store();
    let key = KekSource::key([1; 32]);
    let big = vec![0xabu8; 4000];
    {
        let mut store = RedbStore::open(&path, &key, &options()).unwrap();
        {
            let doomed = store.create_account("doomed").unwrap();
            let kept = store.create_account("kept").unwrap();
            kept.write(fill).unwrap();
            doomed.write(fill).unwrap();
            doomed
                .write(|tx| {
                    for i in 0..500 {
                        tx.kv_set("bulk", &format!("k{i}"), &big)?;
                    }
                    Ok::<_, StoreError>(())
                })
                .unwrap();
            assert!(store.delete_account("doomed").unwrap());
            assert!(matches!(
                doomed.get_job("campaign-1"),
                Err(StoreError::AccountDeleted)
            ));
            check(&kept);
        }
        let size_before = std::fs::metadata(&path).unwrap().len();
        assert!(store.compact().unwrap());
        let size_after = std::fs::metadata(&path).unwrap().len();
        assert!(
            size_after < size_before / 2,
            "{size_before} -> {size_after}"
        );
    }
    let ns_doomed = 1u64.to_be_bytes();
    for table in [
        "identities",
        "signal_sessions",
        "prekeys",
        "signed_prekeys",
        "sender_keys",
        "device",
        "lid_to_pn",
        "pn_to_lid",
        "device_lists",
        "seen",
        "seen_order",
        "recent_sent",
        "recent_sent_order",
        "queue",
        "counters",
        "plugin_kv",
        "jobs",
    ] {
        let rows = raw_table(&path, table);
        assert!(rows.iter().all(|(k, _)| k[..8] != ns_doomed), "{table}");
        assert!(
            rows.iter().any(|(k, _)| k[..8] == 2u64.to_be_bytes()),
            "{table} of kept"
        );
    }
    assert_eq!(raw_table(&path, "accounts").len(), 1);
    let report = verify(&path, &key).unwrap();
    assert!(report.is_ok(), "{report}");
    let store = RedbStore::open(&path, &key, &options()).unwrap();
    assert_eq!(store.list_accounts().unwrap(), vec!["kept"]);
    check(&store.account("kept").unwrap().unwrap());
}

#[test]
fn compaction_needs_the_only_handle() {
    let (_dir, path) = temp_store();
    let mut store = RedbStore::open(&path, &KekSource::key([1; 32]), &options()).unwrap();
    let a = store.create_account("a").unwrap();
    assert!(matches!(store.compact(), Err(StoreError::InvalidInput(_))));
    drop(a);
    store.compact().unwrap();
}

#[test]
fn a_second_open_of_the_same_file_is_refused() {
    let (_dir, path) = temp_store();
    let key = KekSource::key([1; 32]);
    let _store = RedbStore::open(&path, &key, &options()).unwrap();
    assert!(matches!(
        RedbStore::open(&path, &key, &options()),
        Err(OpenError::AlreadyOpen)
    ));
}
