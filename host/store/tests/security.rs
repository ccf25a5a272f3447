//! Confidentiality and integrity of the encrypted store file: no secret in clear, wrong keys
//! refused without touching the file, tampering detected and located, key-file permissions.

use std::path::{Path, PathBuf};

use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};
use sha2::{Digest as _, Sha256};
use wasmeow_store::testing::{Needle, assert_no_secrets, scan_for_secrets};
use wasmeow_store::{
    AccountStore, Argon2Params, DeviceCredentials, DeviceList, KekSource, KeyConfig, OpenError,
    OpenOptions, ProblemKind, Queue, RedbStore, Secret, SignalAddress, Store, StoreError, verify,
};
use wasmeow_store::{
    DedupeStore, DeviceListStore, DeviceStore, IdentityStore, JobStore, LidStore, PluginKvStore,
    PreKeyStore, QueueStore, RecentSentStore, SenderKeyStore, SessionStore, SignedPreKeyStore,
};
use zeroize::Zeroizing;

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;

fn options() -> OpenOptions {
    OpenOptions {
        argon2: Argon2Params::insecure_for_tests(),
        ..OpenOptions::default()
    }
}

fn key() -> KekSource {
    KekSource::key([0x5a; 32])
}

fn temp_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wasmeow.store");
    (dir, path)
}

fn sha256_file(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

/// All records of a table, read with redb directly (the store must be closed).
fn raw_records(path: &Path, table: &'static str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(Def::new(table)).unwrap();
    t.iter()
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.value().to_vec(), v.value().to_vec())
        })
        .collect()
}

/// Writes one record with redb directly, as an attacker who can rewrite the file (and its redb
/// checksums) would.
fn raw_put(path: &Path, table: &'static str, key: &[u8], value: &[u8]) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(Def::new(table))
        .unwrap()
        .insert(key, value)
        .unwrap();
    txn.commit().unwrap();
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::fill(&mut b[..]);
    b
}

#[test]
fn no_secret_appears_in_the_file_in_clear() {
    let (_dir, path) = temp_store();
    let identity: [u8; 32] = random();
    let noise: [u8; 32] = random();
    let adv: [u8; 32] = random();
    let chain_key: [u8; 32] = random();
    let root_key: [u8; 32] = random();
    let prekey_private: [u8; 32] = random();
    let sender_chain: [u8; 32] = random();
    let peer_identity: [u8; 32] = random();
    let plaintext = b"Meet me at the north entrance at 5pm, bring the contract".to_vec();
    let plaintext2 = b"Your verification code is 834-221, do not share it".to_vec();
    let phone = "15551234567";
    let jid = "15551234567@s.whatsapp.net";
    let device_jid = "15551234567:12@s.whatsapp.net";
    let lid = "123456789012345@lid";
    let group = "120363041234567890@g.us";

    // A session record as the protocol crate would serialize it: protobuf-ish framing around
    // chain and root keys.
    let mut session = b"\x0a\x20".to_vec();
    session.extend_from_slice(&root_key);
    session.extend_from_slice(b"\x12\x22\x0a\x20");
    session.extend_from_slice(&chain_key);
    let mut prekey_record = b"\x08\x01\x12\x20".to_vec();
    prekey_record.extend_from_slice(&prekey_private);

    {
        let store = RedbStore::open(&path, &key(), &options()).unwrap();
        for name in ["account-15551234567", "second"] {
            let a = store.create_account(name).unwrap();
            a.put_device(&DeviceCredentials {
                noise_key: Zeroizing::new(noise),
                identity_key: Zeroizing::new(identity),
                registration_id: 4242,
                adv_secret: Zeroizing::new(adv),
                account: Some(Secret::from(&b"signed device identity"[..])),
                jid: Some(device_jid.into()),
                lid: Some(lid.into()),
                push_name: "Mallory's Bakery".into(),
                platform: "android".into(),
            })
            .unwrap();
            let peer = SignalAddress::new(phone, 0);
            a.write(|tx| {
                tx.put_session(&peer, &session)?;
                tx.put_identity(&peer, &peer_identity)?;
                tx.mark_seen(&format!("{jid}/3EB0AAAA"), 1)?;
                tx.queue_push(Queue::Inbound, &plaintext)?;
                tx.queue_push(Queue::Outbox, &plaintext2)?;
                tx.put_recent_sent(jid, "3EB0BBBB", &plaintext2)?;
                tx.put_sender_key(group, &peer, &sender_chain)?;
                tx.put_lid_mapping(lid, phone)?;
                tx.put_device_list(
                    phone,
                    &DeviceList {
                        devices: vec![0, 12],
                        fetched_at_ms: 1,
                    },
                )?;
                tx.kv_set("crm", &format!("contact/{jid}"), plaintext.as_slice())?;
                tx.put_job(&format!("remind-{phone}"), &plaintext2)?;
                tx.put_signed_prekey(1, &prekey_record)?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
            a.get_or_gen_prekeys(30, &mut |_| Secret::new(prekey_record.clone()))
                .unwrap();
        }
        // Delete-and-rewrite churn leaves freed pages behind; they must not hold plaintext
        // either.
        let a = store.account("second").unwrap().unwrap();
        for i in 0..50u8 {
            let mut s = session.clone();
            s.push(i);
            a.put_session(&SignalAddress::new(phone, 0), &s).unwrap();
        }
    }

    let needles = [
        Needle::new("identity private key", &identity),
        Needle::new("noise private key", &noise),
        Needle::new("adv secret", &adv),
        Needle::new("session chain key", &chain_key),
        Needle::new("session root key", &root_key),
        Needle::new("prekey private key", &prekey_private),
        Needle::new("sender key", &sender_chain),
        Needle::new("peer identity key", &peer_identity),
        Needle::new("inbound plaintext", &plaintext),
        Needle::new("outbound plaintext", &plaintext2),
        Needle::new("phone number", phone.as_bytes()),
        Needle::new("jid", jid.as_bytes()),
        Needle::new("device jid", device_jid.as_bytes()),
        Needle::new("lid", lid.as_bytes()),
        Needle::new("group id", group.as_bytes()),
        Needle::new("push name", b"Mallory's Bakery"),
        Needle::new("whatsapp server", b"s.whatsapp.net"),
        Needle::new("account name", b"account-15551234567"),
        Needle::new("plugin kv key", b"contact/"),
        Needle::new("message id", b"3EB0AAAA"),
    ];
    assert_no_secrets(&path, &needles);
    assert!(verify(&path, &key()).unwrap().is_ok());
}

#[test]
fn the_scanner_finds_planted_secrets_in_every_form() {
    use base64::Engine as _;
    let (_dir, path) = temp_store();
    let secret: [u8; 32] = random();
    for (form, encoded) in [
        ("raw", secret.to_vec()),
        ("hex", hex::encode(secret).into_bytes()),
        ("HEX", hex::encode_upper(secret).into_bytes()),
        (
            "base64",
            base64::engine::general_purpose::STANDARD
                .encode(secret)
                .into_bytes(),
        ),
        (
            "base64url",
            base64::engine::general_purpose::URL_SAFE
                .encode(secret)
                .into_bytes(),
        ),
    ] {
        // Embedded at an odd offset inside a larger base64/hex/raw blob.
        let mut blob = vec![0x41u8; 1001];
        if form.starts_with("base64") {
            let mut raw = random::<7>().to_vec();
            raw.extend_from_slice(&secret);
            raw.extend_from_slice(&random::<5>());
            let engine = if form == "base64" {
                &base64::engine::general_purpose::STANDARD
            } else {
                &base64::engine::general_purpose::URL_SAFE
            };
            blob.extend(engine.encode(&raw).into_bytes());
        } else {
            blob.extend(&encoded);
        }
        blob.extend([0u8; 17]);
        std::fs::write(&path, &blob).unwrap();
        let found = scan_for_secrets(&path, &[Needle::new("k", &secret)]).unwrap();
        assert!(found.iter().any(|f| f.form == form), "{form}: {found:?}");
    }
}

#[test]
fn wrong_key_or_passphrase_is_refused_and_the_file_is_byte_identical() {
    for right in [
        KekSource::key([1; 32]),
        KekSource::passphrase("correct horse battery"),
    ] {
        let (_dir, path) = temp_store();
        {
            let store = RedbStore::open(&path, &right, &options()).unwrap();
            let a = store.create_account("main").unwrap();
            a.put_session(&SignalAddress::new("1555", 0), b"record")
                .unwrap();
        }
        let before = sha256_file(&path);
        let wrongs = [
            KekSource::key([2; 32]),
            KekSource::passphrase("correct horse battery staple"),
        ];
        for wrong in &wrongs {
            let err = RedbStore::open(&path, wrong, &options())
                .err()
                .expect("refused");
            match (&right, wrong) {
                (KekSource::Key(_), KekSource::Key(_))
                | (KekSource::Passphrase(_), KekSource::Passphrase(_)) => {
                    assert!(matches!(err, OpenError::WrongKey), "{err:?}");
                    assert!(err.to_string().contains("wrong key or passphrase"));
                }
                _ => assert!(matches!(err, OpenError::KekKindMismatch { .. }), "{err:?}"),
            }
            assert_eq!(
                sha256_file(&path),
                before,
                "file modified by a refused open"
            );
            assert!(matches!(
                verify(&path, wrong),
                Err(OpenError::WrongKey | OpenError::KekKindMismatch { .. })
            ));
            assert!(matches!(
                wasmeow_store::rekey(&path, wrong, &KekSource::key([3; 32]), &options()),
                Err(OpenError::WrongKey | OpenError::KekKindMismatch { .. })
            ));
            assert_eq!(
                sha256_file(&path),
                before,
                "file modified by a refused rekey/verify"
            );
        }
        let store = RedbStore::open(&path, &right, &options()).unwrap();
        let a = store.account("main").unwrap().unwrap();
        assert_eq!(
            &*a.get_session(&SignalAddress::new("1555", 0))
                .unwrap()
                .unwrap(),
            b"record"
        );
    }
}

#[test]
fn not_a_store_and_newer_schema_are_refused() {
    let (_dir, path) = temp_store();
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(Def::new("something"))
            .unwrap()
            .insert(b"a".as_slice(), b"b".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(
        RedbStore::open(&path, &key(), &options()),
        Err(OpenError::NotAStore(_))
    ));

    let (_dir2, path) = temp_store();
    drop(RedbStore::open(&path, &key(), &options()).unwrap());
    raw_put(&path, "meta", b"schema", &99u32.to_be_bytes());
    assert!(matches!(
        RedbStore::open(&path, &key(), &options()),
        Err(OpenError::SchemaTooNew {
            found: 99,
            supported: 2
        })
    ));
}

#[cfg(unix)]
#[test]
fn key_files_readable_by_others_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("store.key");
    std::fs::write(&key_path, format!("{}\n", hex::encode([9u8; 32]))).unwrap();
    let config = KeyConfig {
        key_file: Some(key_path.clone()),
        passphrase: None,
    };
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = KekSource::resolve_from(None, &config).unwrap_err();
        assert!(
            matches!(&err, OpenError::KeyFilePermissions { mode: m, .. } if *m == mode),
            "{err:?}"
        );
        assert!(err.to_string().contains("chmod 600"));
    }
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let from_file = KekSource::resolve_from(None, &config).unwrap();
    let path = dir.path().join("s");
    drop(RedbStore::open(&path, &from_file, &options()).unwrap());
    // The same key as raw bytes opens it too.
    std::fs::write(&key_path, [9u8; 32]).unwrap();
    RedbStore::open(
        &path,
        &KekSource::from_key_file(&key_path).unwrap(),
        &options(),
    )
    .unwrap();
    // Garbage in a key file is a clear error.
    std::fs::write(&key_path, "not a key").unwrap();
    assert!(matches!(
        KekSource::from_key_file(&key_path),
        Err(OpenError::BadKeyEncoding { .. })
    ));
    // The store file itself is created private.
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// One account with one session, closed; returns the raw record of the session.
fn store_with_one_session(path: &Path) -> (Vec<u8>, Vec<u8>) {
    let store = RedbStore::open(path, &key(), &options()).unwrap();
    let a = store.create_account("main").unwrap();
    a.put_session(&SignalAddress::new("15551234567", 0), &[7u8; 1500])
        .unwrap();
    a.put_identity(&SignalAddress::new("15551234567", 0), &[8u8; 32])
        .unwrap();
    drop((a, store));
    let records = raw_records(path, "signal_sessions");
    assert_eq!(records.len(), 1);
    records.into_iter().next().unwrap()
}

fn integrity_error_of(path: &Path) -> StoreError {
    let store = RedbStore::open(path, &key(), &options()).unwrap();
    let a = store.account("main").unwrap().unwrap();
    a.get_session(&SignalAddress::new("15551234567", 0))
        .unwrap_err()
}

#[test]
fn a_flipped_byte_in_a_value_is_an_integrity_error_naming_table_and_record() {
    // Every region of the sealed value: format byte, nonce, ciphertext, tag.
    for position in [0usize, 5, 100, 1400, 1540] {
        let (_dir, path) = temp_store();
        let (k, mut v) = store_with_one_session(&path);
        assert!(position < v.len());
        v[position] ^= 0x04;
        raw_put(&path, "signal_sessions", &k, &v);
        match integrity_error_of(&path) {
            StoreError::Integrity { table, record } => {
                assert_eq!(table, "signal_sessions");
                assert_eq!(record, hex::encode(&k));
            }
            other => panic!("expected an integrity error, got {other:?}"),
        }
        let report = verify(&path, &key()).unwrap();
        assert_eq!(report.problems.len(), 1, "{report}");
        assert_eq!(report.problems[0].table, "signal_sessions");
        assert_eq!(report.problems[0].record, hex::encode(&k));
        assert_eq!(report.problems[0].kind, ProblemKind::Integrity);
        assert!(
            report
                .to_string()
                .contains("table `signal_sessions` record")
        );
    }
}

#[test]
fn values_moved_to_another_record_table_or_account_fail_to_decrypt() {
    // Another record of the same table.
    let (_dir, path) = temp_store();
    {
        let store = RedbStore::open(&path, &key(), &options()).unwrap();
        let a = store.create_account("main").unwrap();
        a.put_session(&SignalAddress::new("111", 0), b"session of 111")
            .unwrap();
        a.put_session(&SignalAddress::new("222", 0), b"session of 222")
            .unwrap();
    }
    let recs = raw_records(&path, "signal_sessions");
    raw_put(&path, "signal_sessions", &recs[1].0, &recs[0].1);
    let store = RedbStore::open(&path, &key(), &options()).unwrap();
    let a = store.account("main").unwrap().unwrap();
    let (good, bad) = if a.get_session(&SignalAddress::new("111", 0)).is_ok() {
        ("111", "222")
    } else {
        ("222", "111")
    };
    assert!(
        a.get_session(&SignalAddress::new(good, 0))
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        a.get_session(&SignalAddress::new(bad, 0)),
        Err(StoreError::Integrity {
            table: "signal_sessions",
            ..
        })
    ));
    drop((a, store));

    // Another table with the same key layout.
    let (_dir, path) = temp_store();
    let (k, v) = store_with_one_session(&path);
    raw_put(&path, "identities", &k, &v);
    let store = RedbStore::open(&path, &key(), &options()).unwrap();
    let a = store.account("main").unwrap().unwrap();
    assert!(matches!(
        a.get_identity(&SignalAddress::new("15551234567", 0)),
        Err(StoreError::Integrity {
            table: "identities",
            ..
        })
    ));
    drop((a, store));

    // Another account: account two's record of the same job id, overwritten with account
    // one's sealed value.
    let (_dir, path) = temp_store();
    {
        let store = RedbStore::open(&path, &key(), &options()).unwrap();
        let one = store.create_account("one").unwrap();
        let two = store.create_account("two").unwrap();
        one.put_job("j", b"job of account one").unwrap();
        two.put_job("j", b"job of account two").unwrap();
    }
    let records = raw_records(&path, "jobs");
    let ns = |n: u64| n.to_be_bytes();
    let (_, v_one) = records
        .iter()
        .find(|(k, _)| k[..8] == ns(1))
        .unwrap()
        .clone();
    let (k_two, _) = records
        .iter()
        .find(|(k, _)| k[..8] == ns(2))
        .unwrap()
        .clone();
    raw_put(&path, "jobs", &k_two, &v_one);
    let store = RedbStore::open(&path, &key(), &options()).unwrap();
    let two = store.account("two").unwrap().unwrap();
    assert!(matches!(
        two.get_job("j"),
        Err(StoreError::Integrity { table: "jobs", record }) if record == hex::encode(&k_two)
    ));
    assert_eq!(
        &*store
            .account("one")
            .unwrap()
            .unwrap()
            .get_job("j")
            .unwrap()
            .unwrap(),
        b"job of account one"
    );
}

#[test]
fn flipping_the_ciphertext_in_the_raw_file_is_detected() {
    let (_dir, path) = temp_store();
    let (k, v) = store_with_one_session(&path);
    // Flip a ciphertext byte wherever this exact sealed value sits in the file (redb may keep a
    // stale copy of the page too), without fixing redb's page checksums.
    let mut bytes = std::fs::read(&path).unwrap();
    let pattern = &v[13..45];
    let mut hits = 0;
    let mut i = 0;
    while let Some(p) = bytes[i..].windows(pattern.len()).position(|w| w == pattern) {
        bytes[i + p + 10] ^= 0x80;
        hits += 1;
        i += p + pattern.len();
    }
    assert!(hits >= 1);
    std::fs::write(&path, &bytes).unwrap();
    let err = integrity_error_of(&path);
    assert!(
        matches!(&err, StoreError::Integrity { table: "signal_sessions", record } if *record == hex::encode(&k)),
        "{err:?}"
    );
    let report = verify(&path, &key()).unwrap();
    assert_eq!(report.problems.len(), 1, "{report}");
    assert_eq!(report.problems[0].kind, ProblemKind::Integrity);
}

#[test]
fn verify_reports_every_problem_and_serializes() {
    let (_dir, path) = temp_store();
    {
        let store = RedbStore::open(&path, &key(), &options()).unwrap();
        let a = store.create_account("main").unwrap();
        a.put_session(&SignalAddress::new("111", 0), b"s").unwrap();
        a.kv_set("p", "k", b"v").unwrap();
        a.put_job("j", b"d").unwrap();
    }
    let clean = verify(&path, &key()).unwrap();
    assert!(clean.is_ok(), "{clean}");
    assert_eq!(clean.accounts, 1);
    assert_eq!(clean.records_checked, 4);
    assert!(
        clean
            .to_string()
            .ends_with("OK: every value decrypted and authenticated")
    );

    let (kk, mut kv) = raw_records(&path, "plugin_kv").remove(0);
    kv[20] ^= 1;
    raw_put(&path, "plugin_kv", &kk, &kv);
    let (jk, mut jv) = raw_records(&path, "jobs").remove(0);
    let last = jv.len() - 1;
    jv[last] ^= 1;
    raw_put(&path, "jobs", &jk, &jv);
    let orphan = [77u64.to_be_bytes().as_slice(), b"x"].concat();
    raw_put(&path, "device_lists", &orphan, b"whatever");
    raw_put(&path, "prekeys", b"abc", b"short key");

    let report = verify(&path, &key()).unwrap();
    let mut got: Vec<(String, String, ProblemKind)> = report
        .problems
        .iter()
        .map(|p| (p.table.clone(), p.record.clone(), p.kind))
        .collect();
    got.sort();
    let mut want = vec![
        (
            "plugin_kv".to_string(),
            hex::encode(&kk),
            ProblemKind::Integrity,
        ),
        ("jobs".to_string(), hex::encode(&jk), ProblemKind::Integrity),
        (
            "device_lists".to_string(),
            hex::encode(&orphan),
            ProblemKind::UnknownAccount,
        ),
        (
            "prekeys".to_string(),
            hex::encode(b"abc"),
            ProblemKind::MalformedKey,
        ),
    ];
    want.sort();
    assert_eq!(got, want, "{report}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["problems"].as_array().unwrap().len(), 4);
    assert_eq!(json["schema_version"], 2);
    assert!(json["problems"].to_string().contains("\"integrity\""));
    let text = report.to_string();
    assert!(text.contains("4 problem(s)"), "{text}");
    assert!(
        !text.contains("111"),
        "no clear contact in the report: {text}"
    );
}
