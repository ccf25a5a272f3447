//! Test support, public so other crates' tests can use it (it panics on failure, like `assert!`):
//!
//! - [`scan_for_secrets`] / [`assert_no_secrets`]: look for secrets in the raw bytes of a store
//!   file, in raw, hex and base64 forms. Run it after writing realistic data (the session engine
//!   runs it after a real pairing).
//! - [`conformance`] and [`store_conformance_tests!`](crate::store_conformance_tests): the
//!   trait-conformance suite every [`Store`](crate::Store) implementation must pass.
//! - [`write_v1_store`]: writes a schema-1 file, for migration tests.

use std::path::Path;

use base64::Engine as _;

use crate::error::{OpenError, StoreError};
use crate::kek::{Argon2Params, KekSource};
use crate::tx::Tx;

/// A secret to look for, with a label that is printed instead of the secret.
#[derive(Clone, Copy)]
pub struct Needle<'a> {
    /// What the secret is ("identity private key", ...).
    pub label: &'a str,
    /// The secret bytes.
    pub bytes: &'a [u8],
}

impl<'a> Needle<'a> {
    /// A needle.
    pub fn new(label: &'a str, bytes: &'a [u8]) -> Self {
        Self { label, bytes }
    }
}

/// A secret found in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The needle's label.
    pub label: String,
    /// The form it was found in: `raw`, `hex`, `HEX`, `base64`, `base64url`.
    pub form: &'static str,
    /// Byte offset of the first occurrence.
    pub offset: usize,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)
        {
            None => return None,
            Some(p) => {
                let at = i + p;
                if &hay[at + 1..at + needle.len()] == rest {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

/// The encodings of `bytes` to look for. Base64 is position-dependent, so for each of the three
/// alignments only the complete 4-character groups are used (they do not depend on neighbouring
/// bytes); forms shorter than 8 characters are skipped as too likely to match by chance.
fn forms(bytes: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = vec![
        ("raw", bytes.to_vec()),
        ("hex", hex::encode(bytes).into_bytes()),
        ("HEX", hex::encode_upper(bytes).into_bytes()),
    ];
    for (name, engine) in [
        ("base64", &base64::engine::general_purpose::STANDARD_NO_PAD),
        (
            "base64url",
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ),
    ] {
        for offset in 0..3.min(bytes.len()) {
            let tail = &bytes[offset..];
            let whole = tail.len() / 3 * 3;
            let enc = engine.encode(&tail[..whole]).into_bytes();
            if enc.len() >= 8 {
                out.push((name, enc));
            }
        }
    }
    out
}

/// Every needle (in any form) found in the raw bytes of the file at `path`.
pub fn scan_for_secrets(path: &Path, needles: &[Needle<'_>]) -> std::io::Result<Vec<Finding>> {
    let hay = std::fs::read(path)?;
    let mut found = Vec::new();
    for n in needles {
        for (form, pattern) in forms(n.bytes) {
            if let Some(offset) = find(&hay, &pattern) {
                found.push(Finding {
                    label: n.label.to_owned(),
                    form,
                    offset,
                });
            }
        }
    }
    Ok(found)
}

/// Panics if any needle appears in the file at `path`, naming the needles by label only.
pub fn assert_no_secrets(path: &Path, needles: &[Needle<'_>]) {
    for n in needles {
        assert!(
            n.bytes.len() >= 6,
            "needle `{}` is too short to search for reliably",
            n.label
        );
    }
    let found = scan_for_secrets(path, needles).expect("read the store file");
    assert!(
        found.is_empty(),
        "secrets found in clear in {}: {:?}",
        path.display(),
        found
    );
}

/// Writes a schema-1 store (see `DESIGN.md`, "Migrations") at `path`, running `f` in one write
/// transaction on its single account. Used to test the 1 → 2 migration.
pub fn write_v1_store(
    path: &Path,
    kek: &KekSource,
    argon2: Argon2Params,
    f: impl FnOnce(&Tx<'_>) -> Result<(), StoreError>,
) -> Result<(), OpenError> {
    crate::redb_store::migrate::v1::create(path, kek, argon2, f)
}

/// Generates one `#[test]` per check of [`conformance`] for a store factory `make`, an
/// expression of type `fn(Limits) -> (S, G)` where `S: Store` and `G` keeps whatever the store
/// needs alive (a temporary directory, or `()`).
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@tests $make;
            accounts_are_isolated_and_deletable,
            identities,
            sessions,
            prekeys,
            signed_prekeys,
            sender_keys,
            device_credentials,
            lid_mapping,
            device_lists,
            dedupe_is_bounded_and_expiring,
            recent_sent_is_bounded,
            queues_keep_order,
            plugin_kv_and_cas,
            jobs,
            write_is_atomic,
            read_transactions_reject_writes,
            invalid_input_is_rejected
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            $crate::testing::conformance::$name($make);
        }
    )*};
}

/// The trait-conformance suite. Each check takes a factory `make(limits) -> (store, guard)`.
pub mod conformance {
    use std::panic::AssertUnwindSafe;

    use zeroize::Zeroizing;

    use crate::error::StoreError;
    use crate::traits::*;
    use crate::types::{DeviceCredentials, DeviceList, Limits, Queue, Secret, SignalAddress};

    fn secret(b: &[u8]) -> Secret {
        Secret::from(b)
    }

    fn addr(name: &str, device: u32) -> SignalAddress {
        SignalAddress::new(name, device)
    }

    fn one<S: Store, G>(make: fn(Limits) -> (S, G)) -> (S::Account, S, G) {
        let (s, g) = make(Limits::default());
        let a = s.create_account("acct").expect("create account");
        (a, s, g)
    }

    /// Accounts: create, duplicate, list, reopen, isolation, delete, recreate.
    pub fn accounts_are_isolated_and_deletable<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (s, _g) = make(Limits::default());
        assert_eq!(s.list_accounts().unwrap(), Vec::<String>::new());
        let a = s.create_account("alice").unwrap();
        let b = s.create_account("bob").unwrap();
        assert!(matches!(
            s.create_account("alice"),
            Err(StoreError::AccountExists)
        ));
        assert_eq!(s.list_accounts().unwrap(), vec!["alice", "bob"]);
        assert_eq!(a.name(), "alice");

        a.put_session(&addr("1555", 0), b"alice-session").unwrap();
        a.kv_set("p", "k", b"alice-kv").unwrap();
        b.put_session(&addr("1555", 0), b"bob-session").unwrap();
        assert_eq!(
            &*a.get_session(&addr("1555", 0)).unwrap().unwrap(),
            b"alice-session"
        );
        assert_eq!(
            &*b.get_session(&addr("1555", 0)).unwrap().unwrap(),
            b"bob-session"
        );
        assert!(b.kv_get("p", "k").unwrap().is_none());

        let a2 = s.account("alice").unwrap().expect("alice exists");
        assert_eq!(
            &*a2.get_session(&addr("1555", 0)).unwrap().unwrap(),
            b"alice-session"
        );
        assert!(s.account("carol").unwrap().is_none());
        let c = s.open_or_create_account("carol").unwrap();
        assert_eq!(c.name(), "carol");
        assert!(s.open_or_create_account("carol").is_ok());

        assert!(s.delete_account("alice").unwrap());
        assert!(!s.delete_account("alice").unwrap());
        assert_eq!(s.list_accounts().unwrap(), vec!["bob", "carol"]);
        for h in [&a, &a2] {
            assert!(matches!(
                h.get_session(&addr("1555", 0)),
                Err(StoreError::AccountDeleted)
            ));
            assert!(matches!(
                h.kv_set("p", "k", b"x"),
                Err(StoreError::AccountDeleted)
            ));
        }
        // Other accounts are untouched; a new account with the old name starts empty.
        assert_eq!(
            &*b.get_session(&addr("1555", 0)).unwrap().unwrap(),
            b"bob-session"
        );
        let a3 = s.create_account("alice").unwrap();
        assert!(a3.get_session(&addr("1555", 0)).unwrap().is_none());
        assert!(a3.kv_get("p", "k").unwrap().is_none());
        // Existing handles of other accounts still work after the root key changed.
        b.put_session(&addr("1556", 1), b"bob-2").unwrap();
        assert_eq!(
            s.account("bob")
                .unwrap()
                .unwrap()
                .sessions_of("1556")
                .unwrap()
                .len(),
            1
        );
    }

    /// Identity keys: put, get, trust on first use, delete, delete all of a user.
    pub fn identities<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, _s, _g) = one(make);
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        assert!(a.get_identity(&addr("111", 0)).unwrap().is_none());
        assert!(a.is_trusted_identity(&addr("111", 0), &k1).unwrap());
        a.put_identity(&addr("111", 0), &k1).unwrap();
        a.put_identity(&addr("111", 3), &k2).unwrap();
        a.put_identity(&addr("222", 0), &k2).unwrap();
        assert_eq!(a.get_identity(&addr("111", 0)).unwrap(), Some(k1));
        assert!(a.is_trusted_identity(&addr("111", 0), &k1).unwrap());
        assert!(!a.is_trusted_identity(&addr("111", 0), &k2).unwrap());
        a.put_identity(&addr("111", 0), &k2).unwrap();
        assert_eq!(a.get_identity(&addr("111", 0)).unwrap(), Some(k2));
        assert!(a.delete_identity(&addr("111", 0)).unwrap());
        assert!(!a.delete_identity(&addr("111", 0)).unwrap());
        a.put_identity(&addr("111", 0), &k1).unwrap();
        assert_eq!(a.delete_all_identities("111").unwrap(), 2);
        assert!(a.get_identity(&addr("111", 3)).unwrap().is_none());
        assert_eq!(a.get_identity(&addr("222", 0)).unwrap(), Some(k2));
        assert_eq!(a.delete_all_identities("111").unwrap(), 0);
    }

    /// Signal sessions: get, has, put, replace, delete, delete all, sessions of a user.
    pub fn sessions<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, _s, _g) = one(make);
        let x = addr("15551234567", 0);
        assert!(a.get_session(&x).unwrap().is_none());
        assert!(!a.has_session(&x).unwrap());
        a.put_session(&x, b"r1").unwrap();
        assert!(a.has_session(&x).unwrap());
        a.put_session(&x, b"r2").unwrap();
        assert_eq!(&*a.get_session(&x).unwrap().unwrap(), b"r2");
        a.put_session(&addr("15551234567", 7), b"r7").unwrap();
        a.put_session(&addr("15551234567", 2), b"r-two").unwrap();
        a.put_session(&addr("1555123456", 0), b"other user")
            .unwrap();
        let of = a.sessions_of("15551234567").unwrap();
        let devices: Vec<u32> = of.iter().map(|(ad, _)| ad.device).collect();
        assert_eq!(devices, vec![0, 2, 7]);
        assert_eq!(&*of[1].1, b"r-two");
        assert!(of.iter().all(|(ad, _)| ad.name == "15551234567"));
        assert!(a.delete_session(&x).unwrap());
        assert!(!a.delete_session(&x).unwrap());
        assert!(!a.has_session(&x).unwrap());
        assert_eq!(a.delete_all_sessions("15551234567").unwrap(), 2);
        assert!(a.sessions_of("15551234567").unwrap().is_empty());
        assert_eq!(
            &*a.get_session(&addr("1555123456", 0)).unwrap().unwrap(),
            b"other user"
        );
    }

    /// One-time prekeys: generation, get-or-generate, upload marks, count, removal, limits.
    pub fn prekeys<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, _s, _g) = one(make);
        let mut keygen = |id: u32| secret(format!("prekey-{id}").as_bytes());
        let first = a.gen_prekeys(3, &mut keygen).unwrap();
        assert_eq!(
            first.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(first.iter().all(|p| !p.uploaded));
        assert_eq!(&*first[1].record, b"prekey-2");
        assert_eq!(a.uploaded_prekey_count().unwrap(), 0);

        // Existing unuploaded keys first, then new ones.
        let got = a.get_or_gen_prekeys(5, &mut keygen).unwrap();
        assert_eq!(
            got.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        a.mark_prekeys_uploaded(5).unwrap();
        assert_eq!(a.uploaded_prekey_count().unwrap(), 5);
        assert!(a.get_prekey(4).unwrap().unwrap().uploaded);
        // Marking a lower id never un-marks.
        a.mark_prekeys_uploaded(2).unwrap();
        assert_eq!(a.uploaded_prekey_count().unwrap(), 5);

        let more = a.get_or_gen_prekeys(2, &mut keygen).unwrap();
        assert_eq!(more.iter().map(|p| p.id).collect::<Vec<_>>(), vec![6, 7]);
        assert!(!a.get_prekey(6).unwrap().unwrap().uploaded);
        assert_eq!(&*a.get_prekey(7).unwrap().unwrap().record, b"prekey-7");

        assert!(a.remove_prekey(2).unwrap());
        assert!(!a.remove_prekey(2).unwrap());
        assert!(a.get_prekey(2).unwrap().is_none());
        assert_eq!(a.uploaded_prekey_count().unwrap(), 4);
        // Ids are never reused after removal.
        assert_eq!(a.gen_prekeys(1, &mut keygen).unwrap()[0].id, 8);

        // 24-bit ids: asking past the end fails before generating anything.
        let mut called = false;
        let err = a.gen_prekeys(0x0100_0000, &mut |_| {
            called = true;
            secret(b"x")
        });
        assert!(matches!(err, Err(StoreError::PreKeyIdsExhausted)));
        assert!(!called);
        assert_eq!(a.gen_prekeys(1, &mut keygen).unwrap()[0].id, 9);
    }

    /// Signed prekeys: put, get, list, remove.
    pub fn signed_prekeys<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, _s, _g) = one(make);
        assert!(a.get_signed_prekey(1).unwrap().is_none());
        a.put_signed_prekey(9, b"nine").unwrap();
        a.put_signed_prekey(1, b"one").unwrap();
        a.put_signed_prekey(1, b"one'").unwrap();
        assert_eq!(&*a.get_signed_prekey(1).unwrap().unwrap(), b"one'");
        assert_eq!(a.signed_prekey_ids().unwrap(), vec![1, 9]);
        assert!(a.remove_signed_prekey(1).unwrap());
        assert!(!a.remove_signed_prekey(1).unwrap());
        assert_eq!(a.signed_prekey_ids().unwrap(), vec![9]);
    }

    /// Sender keys: by group and sender; delete one, delete a group.
    pub fn sender_keys<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, _s, _g) = one(make);
        let g1 = "120363000000000001@g.us";
        let g2 = "120363000000000002@g.us";
        a.put_sender_key(g1, &addr("111", 0), b"a").unwrap();
        a.put_sender_key(g1, &addr("111", 1), b"b").unwrap();
        a.put_sender_key(g2, &addr("111", 0), b"c").unwrap();
        assert_eq!(
            &*a.get_sender_key(g1, &addr("111", 1)).unwrap().unwrap(),
            b"b"
        );
        assert_eq!(
            &*a.get_sender_key(g2, &addr("111", 0)).unwrap().unwrap(),
            b"c"
        );
        assert!(a.get_sender_key(g2, &addr("111", 1)).unwrap().is_none());
        assert!(a.delete_sender_key(g1, &addr("111", 1)).unwrap());
        assert!(!a.delete_sender_key(g1, &addr("111", 1)).unwrap());
        a.put_sender_key(g1, &addr("222", 0), b"d").unwrap();
        assert_eq!(a.delete_group_sender_keys(g1).unwrap(), 2);
        assert!(a.get_sender_key(g1, &addr("111", 0)).unwrap().is_none());
        assert_eq!(
            &*a.get_sender_key(g2, &addr("111", 0)).unwrap().unwrap(),
            b"c"
        );
    }

    /// A credentials record for tests.
    pub fn sample_credentials() -> DeviceCredentials {
        DeviceCredentials {
            noise_key: Zeroizing::new([0x11; 32]),
            identity_key: Zeroizing::new([0x22; 32]),
            registration_id: 0x1234_5678,
            adv_secret: Zeroizing::new([0x33; 32]),
            account: Some(Secret::from(&b"adv signed identity"[..])),
            jid: Some("15551234567:12@s.whatsapp.net".into()),
            lid: None,
            push_name: "Bot".into(),
            platform: "smba".into(),
        }
    }

    /// Device credentials: one record, round trip, replace, delete; `Debug` redacts.
    pub fn device_credentials<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, _s, _g) = one(make);
        assert!(a.get_device().unwrap().is_none());
        let mut c = sample_credentials();
        a.put_device(&c).unwrap();
        assert_eq!(a.get_device().unwrap().unwrap(), c);
        c.lid = Some("123456789012345:12@lid".into());
        c.account = None;
        a.put_device(&c).unwrap();
        assert_eq!(a.get_device().unwrap().unwrap(), c);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("17") && !dbg.contains("15551234567"), "{dbg}");
        assert!(a.delete_device().unwrap());
        assert!(!a.delete_device().unwrap());
        assert!(a.get_device().unwrap().is_none());
    }

    /// LID ↔ phone number: both directions, uniqueness on both sides, delete.
    pub fn lid_mapping<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, _s, _g) = one(make);
        a.put_lid_mapping("L1", "P1").unwrap();
        assert_eq!(a.get_pn_for_lid("L1").unwrap().as_deref(), Some("P1"));
        assert_eq!(a.get_lid_for_pn("P1").unwrap().as_deref(), Some("L1"));
        // The LID moves to another number: the old number loses its LID.
        a.put_lid_mapping("L1", "P2").unwrap();
        assert_eq!(a.get_pn_for_lid("L1").unwrap().as_deref(), Some("P2"));
        assert!(a.get_lid_for_pn("P1").unwrap().is_none());
        // The number gets another LID: the old LID loses its number.
        a.put_lid_mapping("L2", "P2").unwrap();
        assert!(a.get_pn_for_lid("L1").unwrap().is_none());
        assert_eq!(a.get_lid_for_pn("P2").unwrap().as_deref(), Some("L2"));
        assert!(a.delete_lid_mapping("L2").unwrap());
        assert!(!a.delete_lid_mapping("L2").unwrap());
        assert!(a.get_lid_for_pn("P2").unwrap().is_none());
    }

    /// Device lists: put, get, replace, delete.
    pub fn device_lists<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, _s, _g) = one(make);
        assert!(a.get_device_list("111").unwrap().is_none());
        let l = DeviceList {
            devices: vec![0, 3, 17],
            fetched_at_ms: 1_700_000_000_000,
        };
        a.put_device_list("111", &l).unwrap();
        assert_eq!(a.get_device_list("111").unwrap().unwrap(), l);
        let l2 = DeviceList {
            devices: vec![],
            fetched_at_ms: 5,
        };
        a.put_device_list("111", &l2).unwrap();
        assert_eq!(a.get_device_list("111").unwrap().unwrap(), l2);
        assert!(a.get_device_list("112").unwrap().is_none());
        assert!(a.delete_device_list("111").unwrap());
        assert!(!a.delete_device_list("111").unwrap());
    }

    /// Dedupe: duplicates detected; capacity drops the oldest; age expiry.
    pub fn dedupe_is_bounded_and_expiring<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (s, _g) = make(Limits {
            dedupe_capacity: 3,
            dedupe_max_age_ms: 1_000,
            recent_sent_capacity: 10,
        });
        let a = s.create_account("acct").unwrap();
        assert!(a.mark_seen("m1", 100).unwrap());
        assert!(!a.mark_seen("m1", 101).unwrap());
        assert!(a.mark_seen("m2", 102).unwrap());
        assert!(a.mark_seen("m3", 103).unwrap());
        assert!(a.is_seen("m1").unwrap() && a.is_seen("m2").unwrap() && a.is_seen("m3").unwrap());
        // A fourth id pushes out the oldest.
        assert!(a.mark_seen("m4", 104).unwrap());
        assert!(!a.is_seen("m1").unwrap());
        assert!(a.is_seen("m2").unwrap() && a.is_seen("m4").unwrap());
        assert!(a.mark_seen("m1", 105).unwrap());
        assert!(!a.is_seen("m2").unwrap());
        // Everything older than 1 s before `now` goes on the next mark.
        assert!(a.mark_seen("m5", 1_104).unwrap());
        assert!(!a.is_seen("m3").unwrap());
        assert!(a.is_seen("m4").unwrap() && a.is_seen("m1").unwrap());
        assert!(a.mark_seen("m6", 5_000).unwrap());
        for m in ["m1", "m4", "m5"] {
            assert!(!a.is_seen(m).unwrap(), "{m} expired");
        }
        assert!(a.is_seen("m6").unwrap());
        // Many more than the capacity: still bounded.
        for i in 0..20 {
            assert!(a.mark_seen(&format!("x{i}"), 5_001).unwrap());
        }
        let live = (0..20)
            .filter(|i| a.is_seen(&format!("x{i}")).unwrap())
            .count();
        assert_eq!(live, 3);
        assert!(a.is_seen("x19").unwrap() && !a.is_seen("x16").unwrap());
    }

    /// Recent sent: get, replace in place, capacity drops the oldest, delete.
    pub fn recent_sent_is_bounded<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (s, _g) = make(Limits {
            dedupe_capacity: 10,
            dedupe_max_age_ms: u64::MAX,
            recent_sent_capacity: 3,
        });
        let a = s.create_account("acct").unwrap();
        a.put_recent_sent("chat", "id1", b"one").unwrap();
        a.put_recent_sent("chat", "id2", b"two").unwrap();
        a.put_recent_sent("other", "id1", b"other-one").unwrap();
        assert_eq!(&*a.get_recent_sent("chat", "id1").unwrap().unwrap(), b"one");
        assert_eq!(
            &*a.get_recent_sent("other", "id1").unwrap().unwrap(),
            b"other-one"
        );
        // Replacing keeps its place (and does not evict).
        a.put_recent_sent("chat", "id1", b"one'").unwrap();
        assert_eq!(
            &*a.get_recent_sent("chat", "id1").unwrap().unwrap(),
            b"one'"
        );
        assert!(a.get_recent_sent("chat", "id2").unwrap().is_some());
        a.put_recent_sent("chat", "id4", b"four").unwrap();
        assert!(a.get_recent_sent("chat", "id1").unwrap().is_none());
        assert!(a.get_recent_sent("chat", "id2").unwrap().is_some());
        assert!(a.delete_recent_sent("chat", "id2").unwrap());
        assert!(!a.delete_recent_sent("chat", "id2").unwrap());
        for i in 0..10 {
            a.put_recent_sent("c", &format!("n{i}"), b"p").unwrap();
        }
        let live = (0..10)
            .filter(|i| a.get_recent_sent("c", &format!("n{i}")).unwrap().is_some())
            .count();
        assert_eq!(live, 3);
        assert!(a.get_recent_sent("c", "n9").unwrap().is_some());
    }

    /// Queues: FIFO order, peek is non-destructive, ack, requeue to the tail, unique ids.
    pub fn queues_keep_order<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, _s, _g) = one(make);
        let ids: Vec<u64> = (0..4)
            .map(|i| {
                a.queue_push(Queue::Outbox, format!("msg{i}").as_bytes())
                    .unwrap()
            })
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let inbound = a.queue_push(Queue::Inbound, b"in0").unwrap();
        assert_eq!(a.queue_len(Queue::Outbox).unwrap(), 4);
        assert_eq!(a.queue_len(Queue::Inbound).unwrap(), 1);
        let head = a.queue_peek(Queue::Outbox, 2).unwrap();
        assert_eq!(head.iter().map(|i| i.id).collect::<Vec<_>>(), ids[..2]);
        assert_eq!(&*head[0].payload, b"msg0");
        assert_eq!(a.queue_peek(Queue::Outbox, 2).unwrap()[0].id, ids[0]);
        assert!(a.queue_peek(Queue::Outbox, 0).unwrap().is_empty());

        assert!(a.queue_ack(Queue::Outbox, ids[0]).unwrap());
        assert!(!a.queue_ack(Queue::Outbox, ids[0]).unwrap());
        // Queues are separate: the inbound queue has no entry with this outbox id.
        assert_ne!(ids[1], inbound);
        assert!(!a.queue_ack(Queue::Inbound, ids[1]).unwrap());
        let new_id = a.queue_requeue(Queue::Outbox, ids[1]).unwrap().unwrap();
        assert!(new_id > ids[3]);
        assert!(a.queue_requeue(Queue::Outbox, ids[1]).unwrap().is_none());
        let all = a.queue_peek(Queue::Outbox, 10).unwrap();
        assert_eq!(
            all.iter().map(|i| i.id).collect::<Vec<_>>(),
            vec![ids[2], ids[3], new_id]
        );
        assert_eq!(all[2].attempts, 1);
        assert_eq!(&*all[2].payload, b"msg1");
        assert_eq!(all[0].attempts, 0);

        for i in all {
            assert!(a.queue_ack(Queue::Outbox, i.id).unwrap());
        }
        assert_eq!(a.queue_len(Queue::Outbox).unwrap(), 0);
        // Ids are not reused after the queue empties.
        assert!(a.queue_push(Queue::Outbox, b"again").unwrap() > new_id);
        assert_eq!(
            &*a.queue_peek(Queue::Inbound, 5).unwrap()[0].payload,
            b"in0"
        );
    }

    /// Plugin KV: get/set/delete, per-plugin isolation, prefix listing, compare-and-swap.
    pub fn plugin_kv_and_cas<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, _s, _g) = one(make);
        assert!(a.kv_get("p1", "k").unwrap().is_none());
        a.kv_set("p1", "user/2", b"b").unwrap();
        a.kv_set("p1", "user/1", b"a").unwrap();
        a.kv_set("p1", "users", b"c").unwrap();
        a.kv_set("p1", "other", b"d").unwrap();
        a.kv_set("p2", "user/9", b"z").unwrap();
        a.kv_set("p1", "", b"empty key").unwrap();
        assert_eq!(&*a.kv_get("p1", "user/1").unwrap().unwrap(), b"a");
        assert!(a.kv_get("p2", "user/1").unwrap().is_none());
        let listed: Vec<(String, Vec<u8>)> = a
            .kv_list("p1", "user/")
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.to_vec()))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("user/1".into(), b"a".to_vec()),
                ("user/2".into(), b"b".to_vec())
            ]
        );
        assert_eq!(a.kv_list("p1", "").unwrap().len(), 5);
        assert_eq!(a.kv_list("p1", "").unwrap()[0].0, "");
        assert_eq!(a.kv_list("p2", "").unwrap().len(), 1);
        assert!(a.kv_list("p3", "").unwrap().is_empty());
        assert!(a.kv_delete("p1", "users").unwrap());
        assert!(!a.kv_delete("p1", "users").unwrap());

        // CAS: absent → present.
        assert!(
            a.kv_compare_and_swap("p1", "lock", None, Some(b"1"))
                .unwrap()
        );
        assert!(
            !a.kv_compare_and_swap("p1", "lock", None, Some(b"2"))
                .unwrap()
        );
        assert_eq!(&*a.kv_get("p1", "lock").unwrap().unwrap(), b"1");
        // Mismatch changes nothing.
        assert!(
            !a.kv_compare_and_swap("p1", "lock", Some(b"9"), Some(b"2"))
                .unwrap()
        );
        assert_eq!(&*a.kv_get("p1", "lock").unwrap().unwrap(), b"1");
        // Match replaces; match with `None` deletes.
        assert!(
            a.kv_compare_and_swap("p1", "lock", Some(b"1"), Some(b"2"))
                .unwrap()
        );
        assert_eq!(&*a.kv_get("p1", "lock").unwrap().unwrap(), b"2");
        assert!(
            a.kv_compare_and_swap("p1", "lock", Some(b"2"), None)
                .unwrap()
        );
        assert!(a.kv_get("p1", "lock").unwrap().is_none());
        assert!(
            !a.kv_compare_and_swap("p1", "lock", Some(b"2"), None)
                .unwrap()
        );
        // Absent and expected-absent with delete: a successful no-op.
        assert!(a.kv_compare_and_swap("p1", "lock", None, None).unwrap());
        assert!(a.kv_get("p1", "lock").unwrap().is_none());
    }

    /// Jobs: put, get, list sorted, delete.
    pub fn jobs<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, _s, _g) = one(make);
        a.put_job("campaign-2", b"two").unwrap();
        a.put_job("campaign-1", b"one").unwrap();
        a.put_job("campaign-1", b"one'").unwrap();
        assert_eq!(&*a.get_job("campaign-1").unwrap().unwrap(), b"one'");
        let ids: Vec<String> = a
            .list_jobs()
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, vec!["campaign-1", "campaign-2"]);
        assert!(a.delete_job("campaign-1").unwrap());
        assert!(!a.delete_job("campaign-1").unwrap());
        assert!(a.get_job("campaign-1").unwrap().is_none());
    }

    #[derive(Debug)]
    enum AppError {
        Store,
        Refused,
    }

    impl From<StoreError> for AppError {
        fn from(_: StoreError) -> Self {
            AppError::Store
        }
    }

    /// A write transaction commits everything or nothing (error and panic roll back); a read
    /// sees a consistent snapshot.
    pub fn write_is_atomic<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, _s, _g) = one(make);
        let x = addr("15551234567", 0);
        let id = a
            .write(|tx| {
                tx.put_session(&x, b"ratchet-1")?;
                assert!(tx.mark_seen("msg-1", 1)?);
                tx.queue_push(Queue::Inbound, b"hello")
            })
            .unwrap();
        assert_eq!(&*a.get_session(&x).unwrap().unwrap(), b"ratchet-1");
        assert!(a.is_seen("msg-1").unwrap());

        // The caller's own error aborts, and nothing of the transaction remains.
        let r: Result<(), AppError> = a.write(|tx| {
            tx.put_session(&x, b"ratchet-2")?;
            tx.mark_seen("msg-2", 2)?;
            tx.queue_ack(Queue::Inbound, id)?;
            tx.kv_set("p", "k", b"v")?;
            tx.gen_prekeys(2, &mut |i| secret(&[i as u8]))?;
            Err(AppError::Refused)
        });
        assert!(matches!(r, Err(AppError::Refused)));
        assert_eq!(&*a.get_session(&x).unwrap().unwrap(), b"ratchet-1");
        assert!(!a.is_seen("msg-2").unwrap());
        assert_eq!(a.queue_len(Queue::Inbound).unwrap(), 1);
        assert!(a.kv_get("p", "k").unwrap().is_none());
        assert!(a.get_prekey(1).unwrap().is_none());
        assert_eq!(a.gen_prekeys(1, &mut |_| secret(b"p")).unwrap()[0].id, 1);

        // A panic inside the closure rolls back too, and the store stays usable.
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _: Result<(), StoreError> = a.write(|tx| {
                tx.put_session(&x, b"ratchet-3")?;
                panic!("closure panicked");
            });
        }));
        assert!(caught.is_err());
        assert_eq!(&*a.get_session(&x).unwrap().unwrap(), b"ratchet-1");
        a.put_session(&x, b"ratchet-4").unwrap();

        // Reads inside a transaction see its own earlier writes.
        a.write::<_, StoreError>(|tx| {
            tx.put_job("j", b"1")?;
            assert_eq!(&*tx.get_job("j")?.unwrap(), b"1");
            assert_eq!(tx.list_jobs()?.len(), 1);
            Ok(())
        })
        .unwrap();
        let snapshot = a
            .read::<_, StoreError>(|tx| Ok((tx.get_session(&x)?, tx.get_job("j")?)))
            .unwrap();
        assert_eq!(&*snapshot.0.unwrap(), b"ratchet-4");
        assert_eq!(&*snapshot.1.unwrap(), b"1");
    }

    /// Every write method fails with `ReadOnly` inside a read transaction.
    pub fn read_transactions_reject_writes<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, _s, _g) = one(make);
        let x = addr("1", 0);
        a.read::<_, StoreError>(|tx| {
            let ro = |r: Result<(), StoreError>| assert!(matches!(r, Err(StoreError::ReadOnly)));
            ro(tx.put_session(&x, b"r"));
            ro(tx.put_identity(&x, &[0; 32]));
            ro(tx.kv_set("p", "k", b"v"));
            ro(tx.put_job("j", b"d"));
            ro(tx.mark_seen("m", 1).map(|_| ()));
            ro(tx.queue_push(Queue::Outbox, b"x").map(|_| ()));
            ro(tx.gen_prekeys(1, &mut |_| secret(b"p")).map(|_| ()));
            ro(tx.put_device(&sample_credentials()));
            ro(tx.put_lid_mapping("l", "p"));
            Ok(())
        })
        .unwrap();
        assert!(a.get_session(&x).unwrap().is_none());
    }

    /// Empty names and oversized values are refused with `InvalidInput`.
    pub fn invalid_input_is_rejected<S: Store, G>(make: fn(Limits) -> (S, G)) {
        let (a, s, _g) = one(make);
        let bad =
            |r: Result<(), StoreError>| assert!(matches!(r, Err(StoreError::InvalidInput(_))));
        bad(s.create_account("").map(|_| ()));
        bad(a.put_session(&addr("", 0), b"r"));
        bad(a.kv_set("", "k", b"v"));
        bad(a.put_job("", b"v"));
        bad(a.mark_seen("", 1).map(|_| ()));
        let big = vec![0u8; crate::tx::MAX_VALUE_LEN + 1];
        bad(a.put_session(&addr("1", 0), &big));
        bad(a.kv_set("p", "k", &big));
        assert!(matches!(
            SignalAddress::parse("15551234567"),
            Err(StoreError::InvalidInput(_))
        ));
        assert_eq!(
            SignalAddress::parse("1555.1234.7").unwrap(),
            addr("1555.1234", 7)
        );
        assert_eq!(addr("1555", 3).to_string(), "1555.3");
    }
}
