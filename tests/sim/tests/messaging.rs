//! Login, the IQs a client needs answered, per-device routing with server acks, receipts, the
//! offline queue, phones that really decrypt, limits (429, 463), presence and chat state —
//! driven by a client built only on `wasmeow-protocol`.

mod common;

use std::time::Duration;

use common::{Client, raw_message};
use prost::Message as _;
use wasmeow_proto::wa;
use wasmeow_protocol::binary::{Jid, Node};
use wasmeow_protocol::keys::{KeyPair, PublicKey};
use wasmeow_protocol::signal::{PreKeyBundle, PreKeySignalMessage, PreKeys, padding, session};
use wasmeow_sim::{CompanionCredentials, RateLimit, SimHandle};

const T: Duration = Duration::from_secs(10);

fn iq(xmlns: &str, kind: &str, children: Vec<Node>) -> Node {
    Node::new("iq")
        .attr("to", common::server())
        .attr("type", kind.to_owned())
        .attr("xmlns", xmlns.to_owned())
        .children(children)
}

async fn login(sim: &SimHandle, creds: &CompanionCredentials) -> Client {
    common::login_ready(sim, creds).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_time_iqs_are_all_answered() {
    let sim = common::sim().await;
    let a = sim.create_account(None, Some("A")).unwrap();
    let creds = sim.provision_companion(&a.pn).unwrap();
    let (mut c, success) = Client::login(&sim, &creds).await.unwrap();
    assert_eq!(
        success.attr_value("lid").unwrap().to_string(),
        format!("{}:{}@lid", a.lid, creds.device)
    );
    assert!(success.attr_str("t").is_some());
    // No prekeys yet: the server asks for an upload.
    let low = c
        .recv_matching(T, |n| n.tag == "notification")
        .await
        .unwrap();
    assert_eq!(low.attr_str("type"), Some("encrypt"));
    assert_eq!(
        low.child_by_tag("count").unwrap().attr_str("value"),
        Some("0")
    );

    let count = c.iq(iq("encrypt", "get", vec![Node::new("count")])).await;
    assert_eq!(
        count.child_by_tag("count").unwrap().attr_str("value"),
        Some("0")
    );
    let keys: Vec<Node> = (1u32..=30)
        .map(|id| {
            Node::new("key").children([
                Node::new("id").bytes(id.to_be_bytes()[1..].to_vec()),
                Node::new("value").bytes(vec![id as u8; 32]),
            ])
        })
        .collect();
    let identity = KeyPair::from_private(common::key(&creds.identity_private)).public;
    let upload = c
        .iq(iq(
            "encrypt",
            "set",
            vec![
                Node::new("registration").bytes(creds.registration_id.to_be_bytes().to_vec()),
                Node::new("type").bytes(vec![5]),
                Node::new("identity").bytes(identity.0.to_vec()),
                Node::new("list").children(keys),
            ],
        ))
        .await;
    assert_eq!(upload.attr_str("type"), Some("result"));
    let count = c.iq(iq("encrypt", "get", vec![Node::new("count")])).await;
    assert_eq!(
        count.child_by_tag("count").unwrap().attr_str("value"),
        Some("30")
    );
    let digest = c.iq(iq("encrypt", "get", vec![Node::new("digest")])).await;
    assert_eq!(
        digest
            .child_by_path(&["digest", "list"])
            .unwrap()
            .child_nodes()
            .len(),
        30
    );
    for (ns, kind, child) in [
        ("passive", "set", Some("active")),
        ("w:p", "get", None),
        ("abt", "get", Some("props")),
        ("blocklist", "get", None),
        ("privacy", "get", Some("privacy")),
    ] {
        let answer = c
            .iq(iq(
                ns,
                kind,
                child.map(|t| vec![Node::new(t)]).unwrap_or_default(),
            ))
            .await;
        assert_eq!(answer.attr_str("type"), Some("result"), "{ns}: {answer}");
    }
    let privacy = c.iq(iq("privacy", "get", vec![Node::new("privacy")])).await;
    assert!(
        privacy
            .child_by_tag("privacy")
            .unwrap()
            .children_by_tag("category")
            .count()
            >= 5
    );
    let unknown = c.iq(iq("no:such:namespace", "get", vec![])).await;
    assert_eq!(unknown.attr_str("type"), Some("error"));
    assert_eq!(
        unknown.child_by_tag("error").unwrap().attr_str("code"),
        Some("501")
    );

    // usync: devices (with key-index for companions) and the LID.
    let b = sim.create_account(None, None).unwrap();
    let b_creds = sim.provision_companion(&b.pn).unwrap();
    let usync = c
        .iq(iq(
            "usync",
            "get",
            vec![
                Node::new("usync")
                    .attr("sid", "s1")
                    .attr("mode", "query")
                    .attr("context", "message")
                    .children([
                        Node::new("query").children([
                            Node::new("devices").attr("version", "2"),
                            Node::new("lid"),
                        ]),
                        Node::new("list")
                            .children([Node::new("user").attr("jid", Jid::parse(&b.jid).unwrap())]),
                    ]),
            ],
        ))
        .await;
    let user = usync.child_by_path(&["usync", "list", "user"]).unwrap();
    let devices: Vec<(String, Option<String>)> = user
        .child_by_path(&["devices", "device-list"])
        .unwrap()
        .children_by_tag("device")
        .map(|d| {
            (
                d.attr_str("id").unwrap().to_owned(),
                d.attr_str("key-index").map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        devices,
        vec![
            ("0".to_owned(), None),
            (b_creds.device.to_string(), Some("1".to_owned()))
        ]
    );
    assert_eq!(
        user.child_by_tag("lid")
            .unwrap()
            .attr_value("val")
            .unwrap()
            .to_string(),
        b.lid_jid
    );

    // Prekey bundles for a LID device consume one-time keys; the phone always has some.
    let fetch = |jid: String| {
        iq(
            "encrypt",
            "get",
            vec![
                Node::new("key")
                    .children([Node::new("user").attr("jid", Jid::parse(&jid).unwrap())]),
            ],
        )
    };
    let bundle = c.iq(fetch(format!("{}@lid", b.lid))).await;
    let user = bundle.child_by_path(&["list", "user"]).unwrap();
    assert_eq!(
        user.child_by_tag("identity")
            .unwrap()
            .content_bytes()
            .unwrap()
            .len(),
        32
    );
    assert!(
        user.child_by_tag("key").is_some(),
        "phone bundle has a one-time prekey"
    );
    let bundle = c
        .iq(fetch(format!("{}:{}@lid", b.lid, b_creds.device)))
        .await;
    let user = bundle.child_by_path(&["list", "user"]).unwrap();
    assert!(user.child_by_tag("skey").is_some());
    assert!(
        user.child_by_tag("key").is_none(),
        "provisioned device uploaded no one-time prekeys"
    );
    let missing = c.iq(fetch("19990000000:7@s.whatsapp.net".into())).await;
    assert!(missing.child_by_path(&["list", "user", "error"]).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_fan_out_per_device_with_acks_receipts_and_sent_copies() {
    let sim = common::sim().await;
    let a = sim.create_account(None, Some("Alice")).unwrap();
    let b = sim.create_account(None, Some("Bob")).unwrap();
    let a1 = sim.provision_companion(&a.pn).unwrap();
    let a2 = sim.provision_companion(&a.pn).unwrap();
    let b1 = sim.provision_companion(&b.pn).unwrap();
    let mut ca1 = login(&sim, &a1).await;
    let mut ca2 = login(&sim, &a2).await;
    let mut cb1 = login(&sim, &b1).await;

    let b1_lid = format!("{}:{}@lid", b.lid, b1.device);
    let a2_lid = format!("{}:{}@lid", a.lid, a2.device);
    let msg = raw_message(
        "3EB0AA01",
        &b.lid_jid,
        &[&b1_lid, &a2_lid],
        b"ciphertext-for-device",
    );
    ca1.send(&msg).await;
    let ack = ca1.recv_matching(T, |n| n.tag == "ack").await.unwrap();
    assert_eq!(ack.attr_str("class"), Some("message"));
    assert_eq!(ack.attr_str("id"), Some("3EB0AA01"));
    assert!(ack.attr_str("error").is_none());
    assert!(ack.attr_str("t").is_some());

    let got = cb1.recv_matching(T, |n| n.tag == "message").await.unwrap();
    assert_eq!(
        got.attr_value("from").unwrap().to_string(),
        format!("{}:{}@lid", a.lid, a1.device)
    );
    assert_eq!(got.attr_value("sender_pn").unwrap().to_string(), a.jid);
    assert_eq!(got.attr_str("addressing_mode"), Some("lid"));
    assert_eq!(got.attr_str("notify"), Some("Alice"));
    assert_eq!(
        got.child_by_tag("enc").unwrap().content_bytes(),
        Some(&b"ciphertext-for-device"[..])
    );

    let copy = ca2.recv_matching(T, |n| n.tag == "message").await.unwrap();
    assert_eq!(
        copy.attr_value("recipient").unwrap().to_string(),
        b.lid_jid,
        "sent-by-me copy names the chat"
    );

    // Bob's receipt reaches Alice's sending device and clears Bob's queue.
    assert_eq!(sim.queued_messages(&b1.jid).unwrap(), vec!["3EB0AA01"]);
    cb1.receipt_for(&got).await;
    let receipt = ca1.recv_matching(T, |n| n.tag == "receipt").await.unwrap();
    assert_eq!(receipt.attr_str("id"), Some("3EB0AA01"));
    assert_eq!(receipt.attr_value("from").unwrap().to_string(), b1_lid);
    assert!(receipt.attr_str("type").is_none(), "plain delivery receipt");
    let ack = cb1.recv_matching(T, |n| n.tag == "ack").await.unwrap();
    assert_eq!(ack.attr_str("class"), Some("receipt"));
    assert!(sim.queued_messages(&b1.jid).unwrap().is_empty());

    // A read receipt with a list of ids, addressed to the phone-number JID.
    let read = Node::new("receipt")
        .attr("id", "3EB0AA01")
        .attr(
            "to",
            Jid::parse(&format!("{}:{}@s.whatsapp.net", a.pn, a1.device)).unwrap(),
        )
        .attr("type", "read")
        .children([Node::new("list").children([Node::new("item").attr("id", "3EB0AA02")])]);
    cb1.send(&read).await;
    let receipt = ca1.recv_matching(T, |n| n.tag == "receipt").await.unwrap();
    assert_eq!(receipt.attr_str("type"), Some("read"));
    assert_eq!(
        receipt.attr_value("from").unwrap().to_string(),
        b1.jid,
        "PN addressing follows the receipt"
    );
    assert_eq!(
        receipt
            .child_by_path(&["list", "item"])
            .unwrap()
            .attr_str("id"),
        Some("3EB0AA02")
    );

    // Unknown destination.
    ca1.send(&raw_message(
        "3EB0AA03",
        "19990000000@s.whatsapp.net",
        &[],
        b"x",
    ))
    .await;
    let ack = ca1
        .recv_matching(T, |n| {
            n.tag == "ack" && n.attr_str("id") == Some("3EB0AA03")
        })
        .await
        .unwrap();
    assert_eq!(ack.attr_str("error"), Some("404"));
    assert!(sim.stats().messages_in >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_encrypt_and_decrypt_for_real() {
    let sim = common::sim().await;
    let a = sim.create_account(None, Some("Alice")).unwrap();
    let b = sim.create_account(None, Some("Bob")).unwrap();
    let b1 = sim.provision_companion(&b.pn).unwrap();
    let mut cb1 = login(&sim, &b1).await;
    let (bob, bob_spk) = common::identity_of(&b1);

    // Alice's phone → Bob: Bob's companion decrypts a pkmsg with wasmeow-protocol's Signal.
    let id = sim
        .phone_send_text(&a.pn, &b.jid, "hello from a phone")
        .unwrap();
    let got = cb1.recv_matching(T, |n| n.tag == "message").await.unwrap();
    assert_eq!(got.attr_str("id"), Some(id.as_str()));
    assert_eq!(got.attr_value("from").unwrap().to_string(), a.lid_jid);
    let enc = got.child_by_tag("enc").unwrap();
    assert_eq!(enc.attr_str("type"), Some("pkmsg"));
    let pkmsg = PreKeySignalMessage::parse(enc.content_bytes().unwrap()).unwrap();
    let keys = PreKeys {
        signed: Some(&bob_spk),
        one_time: None,
    };
    let dec = session::decrypt_prekey_message(None, &bob, keys, None, &pkmsg, &mut common::rng())
        .unwrap();
    let text = wa::Message::decode(padding::unpad(&dec.plaintext).unwrap())
        .unwrap()
        .conversation;
    assert_eq!(text.as_deref(), Some("hello from a phone"));
    let mut bob_to_alice_phone = dec.record;
    cb1.receipt_for(&got).await;
    let receipts = async {
        loop {
            let r = sim.phone_receipts(&a.pn).unwrap();
            if !r.is_empty() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let receipts = tokio::time::timeout(T, receipts).await.unwrap();
    assert_eq!(
        (
            receipts[0].id.as_str(),
            receipts[0].from.as_str(),
            receipts[0].kind.as_str()
        ),
        (id.as_str(), b.pn.as_str(), "delivery")
    );

    // Bob → Alice's phone over the session Alice's phone started.
    let reply = wa::Message {
        conversation: Some("hi phone".into()),
        ..Default::default()
    };
    let ct = session::encrypt(
        &mut bob_to_alice_phone,
        &padding::pad(&reply.encode_to_vec(), &mut common::rng()),
    )
    .unwrap();
    assert_eq!(ct.enc_type(), "msg");
    let stanza = Node::new("message")
        .attr("id", "3EB0BB01")
        .attr("to", Jid::parse(&a.lid_jid).unwrap())
        .attr("type", "text")
        .children([Node::new("participants").children([Node::new("to")
            .attr("jid", Jid::parse(&a.lid_jid).unwrap())
            .children([Node::new("enc")
                .attr("v", "2")
                .attr("type", "msg")
                .bytes(ct.into_bytes())])])]);
    cb1.send(&stanza).await;
    let receipt = cb1.recv_matching(T, |n| n.tag == "receipt").await.unwrap();
    assert_eq!(
        receipt.attr_str("id"),
        Some("3EB0BB01"),
        "the phone acknowledged with a delivery receipt"
    );
    let inbox = sim.phone_inbox(&a.pn).unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].text.as_deref(), Some("hi phone"));
    assert_eq!(inbox[0].sender, b.pn);
    assert_eq!(inbox[0].sender_device, b1.device);

    // Bob starts a fresh session with Carol's phone from a fetched bundle.
    let c = sim.create_account(None, None).unwrap();
    let mut cb1 = cb1;
    let answer = cb1
        .iq(iq(
            "encrypt",
            "get",
            vec![
                Node::new("key")
                    .children([Node::new("user").attr("jid", Jid::parse(&c.lid_jid).unwrap())]),
            ],
        ))
        .await;
    let user = answer.child_by_path(&["list", "user"]).unwrap();
    let bytes = |path: &[&str]| {
        user.child_by_path(path)
            .unwrap()
            .content_bytes()
            .unwrap()
            .to_vec()
    };
    let be = |b: Vec<u8>| b.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x));
    let bundle = PreKeyBundle {
        registration_id: be(bytes(&["registration"])),
        device_id: 0,
        identity_key: PublicKey::from_slice(&bytes(&["identity"])).unwrap(),
        signed_pre_key_id: be(bytes(&["skey", "id"])),
        signed_pre_key_public: PublicKey::from_slice(&bytes(&["skey", "value"])).unwrap(),
        signed_pre_key_signature: bytes(&["skey", "signature"]).try_into().unwrap(),
        pre_key: Some(wasmeow_protocol::signal::PreKeyPublic {
            id: be(bytes(&["key", "id"])),
            public: PublicKey::from_slice(&bytes(&["key", "value"])).unwrap(),
        }),
    };
    let mut record = session::initiate(None, &bob, &bundle, None, &mut common::rng())
        .unwrap()
        .record;
    let hello = wa::Message {
        conversation: Some("hello carol".into()),
        ..Default::default()
    };
    let ct = session::encrypt(
        &mut record,
        &padding::pad(&hello.encode_to_vec(), &mut common::rng()),
    )
    .unwrap();
    let stanza = Node::new("message")
        .attr("id", "3EB0BB02")
        .attr("to", Jid::parse(&c.jid).unwrap())
        .attr("type", "text")
        .children([Node::new("participants").children([Node::new("to")
            .attr("jid", Jid::parse(&c.jid).unwrap())
            .children([Node::new("enc")
                .attr("v", "2")
                .attr("type", ct.enc_type())
                .bytes(ct.into_bytes())])])]);
    cb1.send(&stanza).await;
    cb1.recv_matching(T, |n| {
        n.tag == "receipt" && n.attr_str("id") == Some("3EB0BB02")
    })
    .await
    .unwrap();
    let inbox = sim.phone_inbox(&c.pn).unwrap();
    assert_eq!(inbox[0].text.as_deref(), Some("hello carol"));
    assert_eq!(inbox[0].chat, b.jid);
    assert_eq!(sim.phone_undecryptable(&c.pn).unwrap(), 0);

    // Garbage for a phone gets a retry receipt back.
    let stanza = raw_message("3EB0BB03", &c.jid, &[&c.jid], b"\x33not a signal message");
    cb1.send(&stanza).await;
    let retry = cb1
        .recv_matching(T, |n| {
            n.tag == "receipt" && n.attr_str("id") == Some("3EB0BB03")
        })
        .await
        .unwrap();
    assert_eq!(retry.attr_str("type"), Some("retry"));
    assert_eq!(
        retry.child_by_tag("retry").unwrap().attr_str("count"),
        Some("1")
    );
    assert_eq!(sim.phone_undecryptable(&c.pn).unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_queue_redelivers_in_order_until_receipted() {
    let sim = common::sim().await;
    let a = sim.create_account(None, Some("Alice")).unwrap();
    let b = sim.create_account(None, None).unwrap();
    let a1 = sim.provision_companion(&a.pn).unwrap();
    let b1 = sim.provision_companion(&b.pn).unwrap();
    let mut ca1 = login(&sim, &a1).await;
    let b1_jid = b1.jid.clone();
    for i in 0..5 {
        ca1.send(&raw_message(
            &format!("3EB0CC0{i}"),
            &b.jid,
            &[&b1_jid],
            &[i],
        ))
        .await;
        ca1.recv_matching(T, |n| n.tag == "ack").await.unwrap();
    }
    assert_eq!(sim.queued_messages(&b1.jid).unwrap().len(), 5);

    let read_batch = |mut c: Client| async move {
        let preview = c.recv_matching(T, |n| n.tag == "ib").await.unwrap();
        let mut messages = Vec::new();
        let end = loop {
            let n = c.recv_timeout(T).await.unwrap();
            if n.tag == "ib" {
                break n;
            }
            if n.tag == "message" {
                messages.push(n);
            }
        };
        (c, preview, messages, end)
    };
    // First login: all five, flagged offline, bracketed by offline_preview / offline.
    let (c, _) = Client::login(&sim, &b1).await.unwrap();
    let (c, preview, messages, end) = read_batch(c).await;
    assert_eq!(
        preview
            .child_by_tag("offline_preview")
            .unwrap()
            .attr_str("message"),
        Some("5")
    );
    assert_eq!(
        end.child_by_tag("offline").unwrap().attr_str("count"),
        Some("5")
    );
    let ids: Vec<&str> = messages.iter().map(|m| m.attr_str("id").unwrap()).collect();
    assert_eq!(
        ids,
        ["3EB0CC00", "3EB0CC01", "3EB0CC02", "3EB0CC03", "3EB0CC04"]
    );
    assert!(messages.iter().all(|m| m.attr_str("offline") == Some("1")));
    drop(c); // disconnect without receipts

    // Second login: the same five again; receipt three of them (two in one list).
    let (c, _) = Client::login(&sim, &b1).await.unwrap();
    let (mut c, _, messages, _) = read_batch(c).await;
    assert_eq!(messages.len(), 5);
    c.receipt_for(&messages[0]).await;
    let list = Node::new("receipt")
        .attr("id", "3EB0CC01")
        .attr("to", messages[1].attr_value("from").unwrap().clone())
        .children([Node::new("list").children([Node::new("item").attr("id", "3EB0CC02")])]);
    c.send(&list).await;
    c.recv_matching(T, |n| {
        n.tag == "ack" && n.attr_str("id") == Some("3EB0CC01")
    })
    .await
    .unwrap();
    assert_eq!(
        sim.queued_messages(&b1.jid).unwrap(),
        vec!["3EB0CC03", "3EB0CC04"]
    );
    // A nack (error ack) also settles a message.
    let nack = Node::new("ack")
        .attr("id", "3EB0CC03")
        .attr("class", "message")
        .attr("to", messages[3].attr_value("from").unwrap().clone())
        .attr("error", "500");
    c.send(&nack).await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.queued_messages(&b1.jid).unwrap(), vec!["3EB0CC04"]);

    // Receipts went back to Alice's device while it was online.
    let r = ca1.recv_matching(T, |n| n.tag == "receipt").await.unwrap();
    assert_eq!(r.attr_str("id"), Some("3EB0CC00"));
    // Third login: only the last one.
    let (c, _) = Client::login(&sim, &b1).await.unwrap();
    let (_c, preview, messages, end) = read_batch(c).await;
    assert_eq!(
        messages
            .iter()
            .map(|m| m.attr_str("id").unwrap())
            .collect::<Vec<_>>(),
        ["3EB0CC04"]
    );
    let preview = preview.child_by_tag("offline_preview").unwrap();
    assert_eq!(preview.attr_str("message"), Some("1"));
    // The one unacknowledged prekey-low notification is pending too (never duplicated).
    assert_eq!(preview.attr_str("notification"), Some("1"));
    assert_eq!(
        end.child_by_tag("offline").unwrap().attr_str("count"),
        Some("2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_and_restricted_accounts_get_463_for_new_chats() {
    let sim = common::sim().await;
    let a = sim.create_account(None, None).unwrap();
    let b = sim.create_account(None, None).unwrap();
    let c = sim.create_account(None, None).unwrap();
    let a1 = sim.provision_companion(&a.pn).unwrap();
    let mut ca1 = login(&sim, &a1).await;
    let send = |id: String, to: String| raw_message(&id, &to, &[&to], b"x");

    sim.set_rate_limit(
        &a.pn,
        Some(RateLimit {
            messages: 3,
            per_ms: 60_000,
        }),
    )
    .unwrap();
    let mut errors = Vec::new();
    for i in 0..5 {
        ca1.send(&send(format!("3EB0DD0{i}"), b.jid.clone())).await;
        let ack = ca1.recv_matching(T, |n| n.tag == "ack").await.unwrap();
        errors.push(ack.attr_str("error").map(str::to_owned));
    }
    assert_eq!(
        errors,
        [
            None,
            None,
            None,
            Some("429".to_owned()),
            Some("429".to_owned())
        ]
    );
    assert_eq!(
        sim.queued_messages(&b.jid).unwrap().len(),
        0,
        "phones drain at once"
    );
    assert_eq!(
        sim.phone_undecryptable(&b.pn).unwrap(),
        3,
        "three were delivered (as garbage) to the phone"
    );
    assert_eq!(sim.stats().rate_limited, 2);
    sim.set_rate_limit(&a.pn, None).unwrap();

    // Restricted: the existing chat with B still works, a new chat with C is refused.
    sim.set_restricted(&a.pn, true).unwrap();
    ca1.send(&send("3EB0DD10".into(), b.jid.clone())).await;
    let ack = ca1.recv_matching(T, |n| n.tag == "ack").await.unwrap();
    assert_eq!(ack.attr_str("error"), None);
    ca1.send(&send("3EB0DD11".into(), c.jid.clone())).await;
    let ack = ca1.recv_matching(T, |n| n.tag == "ack").await.unwrap();
    assert_eq!(ack.attr_str("error"), Some("463"));
    assert!(
        sim.phone_inbox(&c.pn).unwrap().is_empty() && sim.phone_undecryptable(&c.pn).unwrap() == 0
    );
    sim.set_restricted(&a.pn, false).unwrap();
    ca1.send(&send("3EB0DD12".into(), c.jid.clone())).await;
    let ack = ca1.recv_matching(T, |n| n.tag == "ack").await.unwrap();
    assert_eq!(ack.attr_str("error"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_chat_state_are_relayed_to_online_devices() {
    let sim = common::sim().await;
    let a = sim.create_account(None, Some("Alice")).unwrap();
    let b = sim.create_account(None, None).unwrap();
    let mut ca = login(&sim, &sim.provision_companion(&a.pn).unwrap()).await;
    let mut cb = login(&sim, &sim.provision_companion(&b.pn).unwrap()).await;
    cb.send(
        &Node::new("presence")
            .attr("type", "subscribe")
            .attr("to", Jid::parse(&a.jid).unwrap()),
    )
    .await;
    let p = cb.recv_matching(T, |n| n.tag == "presence").await.unwrap();
    assert_eq!(p.attr_str("type"), Some("unavailable"));
    ca.send(
        &Node::new("presence")
            .attr("type", "available")
            .attr("name", "Alice"),
    )
    .await;
    let p = cb.recv_matching(T, |n| n.tag == "presence").await.unwrap();
    assert_eq!(p.attr_value("from").unwrap().to_string(), a.jid);
    assert_eq!(p.attr_str("type"), None, "available");
    ca.send(
        &Node::new("chatstate")
            .attr("to", Jid::parse(&b.lid_jid).unwrap())
            .children([Node::new("composing")]),
    )
    .await;
    let cs = cb.recv_matching(T, |n| n.tag == "chatstate").await.unwrap();
    assert_eq!(cs.attr_value("from").unwrap().to_string(), a.lid_jid);
    assert!(cs.child_by_tag("composing").is_some());
    drop(ca);
    let p = cb.recv_matching(T, |n| n.tag == "presence").await.unwrap();
    assert_eq!(p.attr_str("type"), Some("unavailable"));
    assert!(p.attr_str("last").is_some());
}
