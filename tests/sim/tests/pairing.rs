//! QR and pairing-code linking, checked from the companion's side with a client built only on
//! `wasmeow-protocol`: the refs, the ADV identity the phone signs, the HMAC, the 515 restart
//! and the login that follows; and the failure paths (expired ref, wrong keys, rejected
//! pair-success, bad device signature, wrong pairing code).

mod common;

use std::time::Duration;

use common::{Client, Registration, login_payload, verifies};
use hmac::{Hmac, KeyInit as _, Mac as _};
use prost::Message as _;
use sha2::Sha256;
use wasmeow_proto::wa::{AdvDeviceIdentity, AdvSignedDeviceIdentity, AdvSignedDeviceIdentityHmac};
use wasmeow_protocol::binary::Node;
use wasmeow_protocol::xeddsa;
use wasmeow_sim::{PairError, QrSchedule, Sim, SimConfig, SimHandle};

const T: Duration = Duration::from_secs(10);

async fn sim(qr: QrSchedule) -> SimHandle {
    Sim::start(SimConfig {
        wss_port: None,
        qr,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// Connects an unpaired companion and returns it with its refs (after acking pair-device).
async fn unpaired(sim: &SimHandle, reg: &Registration) -> (Client, Vec<String>) {
    let mut c = Client::connect(
        &sim.ws_url().await,
        sim.root_public_key(),
        reg.noise.clone(),
        &reg.payload(),
    )
    .await
    .unwrap();
    let iq = c.recv_timeout(T).await.unwrap();
    assert_eq!(iq.tag, "iq");
    assert_eq!(iq.attr_str("type"), Some("set"));
    assert_eq!(iq.attr_str("xmlns"), Some("md"));
    assert_eq!(
        iq.attr_jid("from").map(|j| j.to_string()),
        Some("@s.whatsapp.net".to_owned())
    );
    let refs: Vec<String> = iq
        .child_by_tag("pair-device")
        .unwrap()
        .children_by_tag("ref")
        .map(|r| String::from_utf8(r.content_bytes().unwrap().to_vec()).unwrap())
        .collect();
    let ack = Node::new("iq")
        .attr("to", common::server())
        .attr("type", "result")
        .attr("id", iq.attr_value("id").unwrap().clone());
    c.send(&ack).await;
    (c, refs)
}

struct Checked {
    iq_id: String,
    details: Vec<u8>,
    account_key: Vec<u8>,
    key_index: u32,
    device_jid: String,
    lid_jid: String,
}

/// Verifies pair-success exactly as a companion must (protocol-whatsmeow.md §2.7).
fn check_pair_success(iq: &Node, reg: &Registration) -> Checked {
    let success = iq.child_by_tag("pair-success").expect("pair-success");
    let wrapper = AdvSignedDeviceIdentityHmac::decode(
        success
            .child_by_tag("device-identity")
            .unwrap()
            .content_bytes()
            .unwrap(),
    )
    .unwrap();
    let signed_bytes = wrapper.details.clone().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&reg.adv_secret).unwrap();
    mac.update(&signed_bytes);
    mac.verify_slice(wrapper.hmac.as_deref().unwrap())
        .expect("HMAC keyed with our adv secret");
    let signed = AdvSignedDeviceIdentity::decode(&signed_bytes[..]).unwrap();
    let details = signed.details.clone().unwrap().to_vec();
    let account_key = signed.account_signature_key.clone().unwrap().to_vec();
    let mut message = vec![6, 0];
    message.extend_from_slice(&details);
    message.extend_from_slice(&reg.identity.key_pair.public.0);
    let account: [u8; 32] = account_key.as_slice().try_into().unwrap();
    assert!(
        verifies(
            &account,
            &message,
            signed.account_signature.as_deref().unwrap()
        ),
        "account signature (06 00)"
    );
    let identity = AdvDeviceIdentity::decode(&details[..]).unwrap();
    let device = success.child_by_tag("device").unwrap();
    Checked {
        iq_id: iq.attr_value("id").unwrap().to_string(),
        details,
        account_key,
        key_index: identity.key_index.expect("key index present"),
        device_jid: device.attr_value("jid").unwrap().to_string(),
        lid_jid: device.attr_value("lid").unwrap().to_string(),
    }
}

/// The companion's `pair-device-sign` answer.
fn pair_device_sign(checked: &Checked, reg: &Registration, tamper: bool) -> Node {
    let mut message = vec![6, 1];
    message.extend_from_slice(&checked.details);
    message.extend_from_slice(&reg.identity.key_pair.public.0);
    message.extend_from_slice(&checked.account_key);
    if tamper {
        message.push(0);
    }
    let signature = xeddsa::sign(&reg.identity.key_pair.private, &message, &mut common::rng());
    let signed = AdvSignedDeviceIdentity {
        details: Some(checked.details.clone().into()),
        account_signature_key: None,
        account_signature: None,
        device_signature: Some(signature.to_vec().into()),
    };
    Node::new("iq")
        .attr("to", common::server())
        .attr("type", "result")
        .attr("id", checked.iq_id.clone())
        .children([
            Node::new("pair-device-sign").children([Node::new("device-identity")
                .attr("key-index", checked.key_index)
                .bytes(signed.encode_to_vec())]),
        ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_pairing_links_a_companion_that_then_logs_in() {
    let sim = sim(QrSchedule::default()).await;
    let account = sim
        .create_account(Some("15550001111"), Some("Phone"))
        .unwrap();
    let reg = Registration::generate();
    let (mut c, refs) = unpaired(&sim, &reg).await;
    assert_eq!(refs.len(), 6, "six refs, as WhatsApp sends");
    assert!(refs.iter().all(|r| !r.contains(',')));

    let scan = tokio::spawn({
        let sim = sim.clone();
        let qr = reg.qr(&refs[0]);
        async move { sim.scan(&qr, "15550001111").await }
    });
    let iq = c
        .recv_matching(T, |n| n.child_by_tag("pair-success").is_some())
        .await
        .unwrap();
    let checked = check_pair_success(&iq, &reg);
    assert_eq!(checked.device_jid, "15550001111:1@s.whatsapp.net");
    assert_eq!(checked.lid_jid, format!("{}:1@lid", account.lid));
    c.send(&pair_device_sign(&checked, &reg, false)).await;
    let last = c.until_closed(T).await.unwrap();
    assert!(
        last.iter()
            .any(|n| n.tag == "stream:error" && n.attr_str("code") == Some("515")),
        "restart required after pairing: {last:?}"
    );
    assert_eq!(
        scan.await.unwrap(),
        Ok("15550001111:1@s.whatsapp.net".to_owned())
    );

    // The companion logs in with its registered Noise key.
    let mut c = Client::connect(
        &sim.ws_url().await,
        sim.root_public_key(),
        reg.noise.clone(),
        &login_payload("15550001111", 1),
    )
    .await
    .unwrap();
    let success = c.recv_timeout(T).await.unwrap();
    assert_eq!(success.tag, "success", "{success}");
    assert_eq!(
        success.attr_value("lid").unwrap().to_string(),
        format!("{}:1@lid", account.lid)
    );
    let offline = c.recv_matching(T, |n| n.tag == "ib").await.unwrap();
    assert!(offline.child_by_tag("offline").is_some());
    // A different Noise key for the same device is refused as logged out.
    let other = Registration::generate();
    let mut intruder = Client::connect(
        &sim.ws_url().await,
        sim.root_public_key(),
        other.noise,
        &login_payload("15550001111", 1),
    )
    .await
    .unwrap();
    let failure = intruder.recv_timeout(T).await.unwrap();
    assert_eq!(
        (failure.tag.as_ref(), failure.attr_str("reason")),
        ("failure", Some("401"))
    );
    assert_eq!(sim.stats().pairings, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_refs_and_wrong_keys_are_refused_and_the_socket_closes_after_the_last_ref() {
    let schedule = QrSchedule {
        first_ttl: Duration::from_millis(400),
        next_ttl: Duration::from_millis(200),
        count: 3,
    };
    let sim = sim(schedule).await;
    sim.create_account(Some("15550002222"), None).unwrap();
    let reg = Registration::generate();
    let (mut c, refs) = unpaired(&sim, &reg).await;
    assert_eq!(refs.len(), 3);
    // Keys that differ from the connection's.
    let other = Registration::generate();
    assert_eq!(
        sim.scan(&other.qr(&refs[0]), "15550002222").await,
        Err(PairError::KeyMismatch)
    );
    assert_eq!(
        sim.scan(&reg.qr("2@never-issued"), "15550002222").await,
        Err(PairError::UnknownRef)
    );
    assert_eq!(
        sim.scan("garbage", "15550002222").await,
        Err(PairError::MalformedQr(
            "expected 4 or 5 comma-separated fields"
        ))
    );
    assert_eq!(
        sim.scan(&reg.qr(&refs[0]), "19999999999").await,
        Err(PairError::UnknownAccount("19999999999".into()))
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The first ref lived 400 ms; the second lives until 600 ms.
    assert_eq!(
        sim.scan(&reg.qr(&refs[0]), "15550002222").await,
        Err(PairError::ExpiredRef)
    );
    // After the last ref (800 ms) the server gives up on the companion.
    let rest = c.until_closed(Duration::from_secs(3)).await.unwrap();
    assert!(rest.is_empty(), "closed without pair-success: {rest:?}");
    assert_eq!(
        sim.scan(&reg.qr(&refs[2]), "15550002222").await,
        Err(PairError::UnknownRef)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_device_signature_or_a_rejection_does_not_link() {
    let sim = sim(QrSchedule::default()).await;
    sim.create_account(Some("15550003333"), None).unwrap();

    let reg = Registration::generate();
    let (mut c, refs) = unpaired(&sim, &reg).await;
    let scan = tokio::spawn({
        let (sim, qr) = (sim.clone(), reg.qr(&refs[1]));
        async move { sim.scan(&qr, "15550003333").await }
    });
    let iq = c
        .recv_matching(T, |n| n.child_by_tag("pair-success").is_some())
        .await
        .unwrap();
    let checked = check_pair_success(&iq, &reg);
    c.send(&pair_device_sign(&checked, &reg, true)).await;
    assert_eq!(
        scan.await.unwrap(),
        Err(PairError::BadDeviceSignature("signature does not verify"))
    );
    let rest = c.until_closed(T).await.unwrap();
    assert!(
        rest.iter().all(|n| n.tag != "stream:error"),
        "no 515 for a failed pairing"
    );

    // The companion refuses pair-success (e.g. its HMAC check failed).
    let reg = Registration::generate();
    let (mut c, refs) = unpaired(&sim, &reg).await;
    let scan = tokio::spawn({
        let (sim, qr) = (sim.clone(), reg.qr(&refs[0]));
        async move { sim.scan(&qr, "15550003333").await }
    });
    let iq = c
        .recv_matching(T, |n| n.child_by_tag("pair-success").is_some())
        .await
        .unwrap();
    let error = Node::new("iq")
        .attr("to", common::server())
        .attr("type", "error")
        .attr("id", iq.attr_value("id").unwrap().clone())
        .children([Node::new("error")
            .attr("code", "401")
            .attr("text", "hmac-mismatch")]);
    c.send(&error).await;
    assert_eq!(
        scan.await.unwrap(),
        Err(PairError::Rejected {
            code: "401".into(),
            text: "hmac-mismatch".into()
        })
    );
    // Only the phone remains.
    assert_eq!(sim.devices("15550003333").unwrap().len(), 1);
}

mod code {
    //! The companion side of the pairing-code flow, written independently of the server.
    use aes::Aes256;
    use aes::cipher::{KeyIvInit as _, StreamCipher as _};
    use aes_gcm::Aes256Gcm;
    use aes_gcm::aead::{Aead as _, KeyInit as _};
    use hkdf::Hkdf;
    use sha2::Sha256;

    pub(super) fn key(code: &str, salt: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(code.as_bytes(), salt, 2 << 16, &mut out);
        out
    }

    pub(super) fn wrap(code: &str, public: &[u8; 32]) -> Vec<u8> {
        let salt: [u8; 32] = rand::random();
        let iv: [u8; 16] = rand::random();
        let mut body = *public;
        ctr::Ctr128BE::<Aes256>::new((&key(code, &salt)).into(), (&iv).into())
            .apply_keystream(&mut body);
        [&salt[..], &iv[..], &body[..]].concat()
    }

    pub(super) fn unwrap(code: &str, wrapped: &[u8]) -> [u8; 32] {
        let iv: [u8; 16] = wrapped[32..48].try_into().unwrap();
        let mut body: [u8; 32] = wrapped[48..80].try_into().unwrap();
        ctr::Ctr128BE::<Aes256>::new((&key(code, &wrapped[..32])).into(), (&iv).into())
            .apply_keystream(&mut body);
        body
    }

    pub(super) fn hkdf(ikm: &[u8], salt: Option<&[u8]>, info: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        Hkdf::<Sha256>::new(salt, ikm)
            .expand(info, &mut out)
            .unwrap();
        out
    }

    pub(super) fn seal(key: &[u8; 32], plain: &[u8]) -> Vec<u8> {
        let salt_nonce: [u8; 12] = rand::random();
        let ct = Aes256Gcm::new(key.into())
            .encrypt((&salt_nonce).into(), plain)
            .unwrap();
        [&salt_nonce[..], &ct[..]].concat()
    }
}

/// Runs the companion side of the pairing-code flow; the phone enters `phone_code`.
async fn code_pairing(
    sim: &SimHandle,
    pn: &str,
    companion_code: &str,
    phone_code: &str,
) -> (Result<String, PairError>, Vec<Node>) {
    let mut reg = Registration::generate();
    let (mut c, _refs) = unpaired(sim, &reg).await;
    let eph = wasmeow_protocol::keys::KeyPair::generate(&mut common::rng());
    let hello = Node::new("iq")
        .attr("to", common::server())
        .attr("type", "set")
        .attr("xmlns", "md")
        .children([Node::new("link_code_companion_reg")
            .attr(
                "jid",
                wasmeow_protocol::binary::Jid::parse(&format!("{pn}@s.whatsapp.net")).unwrap(),
            )
            .attr("stage", "companion_hello")
            .attr("should_show_push_notification", "true")
            .children([
                Node::new("link_code_pairing_wrapped_companion_ephemeral_pub")
                    .bytes(code::wrap(companion_code, &eph.public.0)),
                Node::new("companion_server_auth_key_pub").bytes(reg.noise.public.0.to_vec()),
                Node::new("companion_platform_id").text("1"),
                Node::new("companion_platform_display").text("Chrome (Linux)"),
                Node::new("link_code_pairing_nonce").text("0"),
            ])]);
    let answer = c.iq(hello).await;
    assert_eq!(answer.attr_str("type"), Some("result"), "{answer}");
    let reference = answer
        .child_by_path(&["link_code_companion_reg", "link_code_pairing_ref"])
        .unwrap()
        .content_bytes()
        .unwrap()
        .to_vec();
    let entered = tokio::spawn({
        let (sim, pn, code) = (sim.clone(), pn.to_owned(), phone_code.to_owned());
        async move { sim.enter_pairing_code(&pn, &code).await }
    });
    let notification = c
        .recv_matching(T, |n| {
            n.tag == "notification" && n.attr_str("type") == Some("link_code_companion_reg")
        })
        .await
        .unwrap();
    let reg_node = notification
        .child_by_tag("link_code_companion_reg")
        .unwrap();
    assert_eq!(
        reg_node
            .child_by_tag("link_code_pairing_ref")
            .unwrap()
            .content_bytes()
            .unwrap(),
        &reference[..]
    );
    let primary_identity: [u8; 32] = reg_node
        .child_by_tag("primary_identity_pub")
        .unwrap()
        .content_bytes()
        .unwrap()
        .try_into()
        .unwrap();
    let primary_eph = code::unwrap(
        companion_code,
        reg_node
            .child_by_tag("link_code_pairing_wrapped_primary_ephemeral_pub")
            .unwrap()
            .content_bytes()
            .unwrap(),
    );
    let eph_shared = eph
        .private
        .dh(&wasmeow_protocol::keys::PublicKey(primary_eph));
    let salt: [u8; 32] = rand::random();
    let bundle_key = code::hkdf(
        &eph_shared,
        Some(&salt),
        b"link_code_pairing_key_bundle_encryption_key",
    );
    let adv_random: [u8; 32] = rand::random();
    let plain = [
        &reg.identity.key_pair.public.0[..],
        &primary_identity[..],
        &adv_random[..],
    ]
    .concat();
    let bundle = [&salt[..], &code::seal(&bundle_key, &plain)[..]].concat();
    let ident_shared = reg
        .identity
        .key_pair
        .private
        .dh(&wasmeow_protocol::keys::PublicKey(primary_identity));
    reg.adv_secret = code::hkdf(
        &[&eph_shared[..], &ident_shared[..], &adv_random[..]].concat(),
        None,
        b"adv_secret",
    );
    let finish = Node::new("iq")
        .attr("to", common::server())
        .attr("type", "set")
        .attr("xmlns", "md")
        .children([Node::new("link_code_companion_reg")
            .attr(
                "jid",
                wasmeow_protocol::binary::Jid::parse(&format!("{pn}@s.whatsapp.net")).unwrap(),
            )
            .attr("stage", "companion_finish")
            .children([
                Node::new("link_code_pairing_wrapped_key_bundle").bytes(bundle),
                Node::new("companion_identity_public")
                    .bytes(reg.identity.key_pair.public.0.to_vec()),
                Node::new("link_code_pairing_ref").bytes(reference),
            ])]);
    let answer = c.iq(finish).await;
    if answer.attr_str("type") == Some("error") {
        return (entered.await.unwrap(), vec![answer]);
    }
    let iq = c
        .recv_matching(T, |n| n.child_by_tag("pair-success").is_some())
        .await
        .unwrap();
    let checked = check_pair_success(&iq, &reg);
    c.send(&pair_device_sign(&checked, &reg, false)).await;
    let rest = c.until_closed(T).await.unwrap();
    (entered.await.unwrap(), rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow in debug builds: eight PBKDF2-HMAC-SHA256 runs of 131,072 rounds; run with --include-ignored"]
async fn pairing_code_links_a_companion_and_a_wrong_code_does_not() {
    let sim = sim(QrSchedule::default()).await;
    sim.create_account(Some("15550004444"), None).unwrap();
    let (result, rest) = code_pairing(&sim, "15550004444", "ABCD2345", "ABCD-2345").await;
    assert_eq!(result, Ok("15550004444:1@s.whatsapp.net".to_owned()));
    assert!(
        rest.iter()
            .any(|n| n.tag == "stream:error" && n.attr_str("code") == Some("515"))
    );

    let (result, rest) = code_pairing(&sim, "15550004444", "ABCD2345", "ZZZZ9999").await;
    assert_eq!(
        result,
        Err(PairError::BadCode(
            "key bundle does not decrypt (wrong code)"
        ))
    );
    assert_eq!(rest[0].attr_str("type"), Some("error"));
    assert_eq!(
        sim.devices("15550004444").unwrap().len(),
        2,
        "phone + the one good companion"
    );
}
