//! Simulated phones answer retry receipts: a companion that could not decrypt a phone's message
//! asks again and gets the same message re-encrypted for it alone — over the existing session,
//! or, when the receipt carries `<keys>`, over a fresh session built from those keys (a new
//! `pkmsg` naming the offered prekeys). Group messages are resent pairwise with the phone's
//! sender key distribution. Unknown messages and devices past the resend cap get nothing.

mod common;

use std::time::Duration;

use common::Client;
use prost::Message as _;
use wasmeow_proto::wa;
use wasmeow_protocol::binary::{Jid, Node};
use wasmeow_protocol::keys::DJB_TYPE;
use wasmeow_protocol::signal::{
    LocalIdentity, PreKey, PreKeySignalMessage, PreKeys, SignedPreKey, padding, session,
};

const T: Duration = Duration::from_secs(10);
/// How long "no resend" is waited for.
const QUIET: Duration = Duration::from_millis(500);

fn id3(id: u32) -> Vec<u8> {
    id.to_be_bytes()[1..].to_vec()
}

/// A retry receipt for `message`, as a companion sends it (keys from the second retry on).
fn retry_receipt(
    message: &Node,
    count: u32,
    identity: &LocalIdentity,
    keys: Option<(&PreKey, &SignedPreKey)>,
) -> Node {
    let mut r = Node::new("receipt")
        .attr("id", message.attr_value("id").unwrap().clone())
        .attr("type", "retry")
        .attr("to", message.attr_value("from").unwrap().clone());
    if let Some(p) = message.attr_value("participant") {
        r.set_attr("participant", p.clone());
    }
    r.push_child(
        Node::new("retry")
            .attr("count", count.to_string())
            .attr("id", message.attr_value("id").unwrap().clone())
            .attr("t", "1700000000")
            .attr("v", "1"),
    );
    r.push_child(Node::new("registration").bytes(identity.registration_id.to_be_bytes().to_vec()));
    if let Some((key, spk)) = keys {
        r.push_child(Node::new("keys").children([
            Node::new("type").bytes(vec![DJB_TYPE]),
            Node::new("identity").bytes(identity.key_pair.public.0.to_vec()),
            Node::new("key").children([
                Node::new("id").bytes(id3(key.id)),
                Node::new("value").bytes(key.key_pair.public.0.to_vec()),
            ]),
            Node::new("skey").children([
                Node::new("id").bytes(id3(spk.id)),
                Node::new("value").bytes(spk.key_pair.public.0.to_vec()),
                Node::new("signature").bytes(spk.signature.to_vec()),
            ]),
        ]));
    }
    r
}

/// The next `message` stanza with id `id`.
async fn message_with_id(client: &mut Client, id: &str) -> Node {
    client
        .recv_matching(T, |n| n.tag == "message" && n.attr_str("id") == Some(id))
        .await
        .unwrap()
}

/// The single top-level `<enc>` of a resend, with its retry count.
fn resent_enc(message: &Node) -> (&Node, &str) {
    let encs: Vec<&Node> = message.children_by_tag("enc").collect();
    assert_eq!(
        encs.len(),
        1,
        "one enc for the requesting device: {message}"
    );
    assert!(message.child_by_tag("participants").is_none());
    (encs[0], encs[0].attr_str("count").unwrap_or_default())
}

/// Decrypts a pkmsg from scratch with `keys`; returns the message and the parsed pkmsg.
fn open_pkmsg(enc: &Node, bob: &LocalIdentity, keys: PreKeys<'_>) -> (wa::Message, Vec<u8>) {
    assert_eq!(enc.attr_str("type"), Some("pkmsg"), "{enc}");
    let bytes = enc.content_bytes().unwrap().to_vec();
    let pkmsg = PreKeySignalMessage::parse(&bytes).unwrap();
    let dec =
        session::decrypt_prekey_message(None, bob, keys, None, &pkmsg, &mut common::rng()).unwrap();
    let msg = wa::Message::decode(padding::unpad(&dec.plaintext).unwrap()).unwrap();
    (msg, bytes)
}

/// No message with `id` arrives within [`QUIET`].
async fn no_message_with_id(client: &mut Client, id: &str) {
    let got = client
        .recv_matching(QUIET, |n| {
            n.tag == "message" && n.attr_str("id") == Some(id)
        })
        .await;
    assert!(got.is_err(), "unexpected resend: {:?}", got.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_resends_a_direct_message_on_retry_receipts() {
    let sim = common::sim().await;
    let alice = sim.create_account(None, Some("Alice")).unwrap();
    let bob_account = sim.create_account(None, Some("Bob")).unwrap();
    let creds = sim.provision_companion(&bob_account.pn).unwrap();
    let mut cb1 = common::login_ready(&sim, &creds).await;
    let (bob, bob_spk) = common::identity_of(&creds);

    let id = sim
        .phone_send_text(&alice.pn, &bob_account.jid, "please resend me")
        .unwrap();
    // The companion "fails" to decrypt the original and asks again, without keys.
    let original = message_with_id(&mut cb1, &id).await;
    cb1.send(&retry_receipt(&original, 1, &bob, None)).await;
    let resent = message_with_id(&mut cb1, &id).await;
    assert_eq!(
        resent.attr_value("from").unwrap().to_string(),
        alice.lid_jid
    );
    let (enc, count) = resent_enc(&resent);
    assert_eq!(count, "1");
    // The phone's session was never answered, so the resend is still a pkmsg of that session.
    let keys = PreKeys {
        signed: Some(&bob_spk),
        one_time: None,
    };
    let (msg, first_resend) = open_pkmsg(enc, &bob, keys);
    assert_eq!(msg.conversation.as_deref(), Some("please resend me"));
    assert!(
        sim.phone_receipts(&alice.pn)
            .unwrap()
            .iter()
            .any(|r| r.id == id && r.kind == "retry" && r.from == bob_account.pn)
    );

    // Second retry with keys: the phone builds a fresh session from them.
    let fresh_spk = SignedPreKey::generate(&bob.key_pair, 7, &mut common::rng());
    let one_time = PreKey::generate(777, &mut common::rng());
    cb1.send(&retry_receipt(
        &original,
        2,
        &bob,
        Some((&one_time, &fresh_spk)),
    ))
    .await;
    let resent = message_with_id(&mut cb1, &id).await;
    let (enc, count) = resent_enc(&resent);
    assert_eq!(count, "2");
    let pkmsg = PreKeySignalMessage::parse(enc.content_bytes().unwrap()).unwrap();
    assert_eq!(pkmsg.pre_key_id(), Some(777), "the offered one-time prekey");
    assert_eq!(pkmsg.signed_pre_key_id(), 7, "the offered signed prekey");
    let keys = PreKeys {
        signed: Some(&fresh_spk),
        one_time: Some(&one_time),
    };
    let (msg, second_resend) = open_pkmsg(enc, &bob, keys);
    assert_eq!(msg.conversation.as_deref(), Some("please resend me"));
    assert_ne!(first_resend, second_resend);

    // Three more resends, then the phone stops answering this device for this message.
    for count in 3..=5 {
        cb1.send(&retry_receipt(&original, count, &bob, None)).await;
        let resent = message_with_id(&mut cb1, &id).await;
        assert_eq!(resent_enc(&resent).1, count.to_string());
    }
    cb1.send(&retry_receipt(&original, 6, &bob, None)).await;
    no_message_with_id(&mut cb1, &id).await;

    // A retry for a message the phone never sent gets nothing.
    let mut unknown = original.clone();
    unknown.set_attr("id", "3A0000000000000000");
    cb1.send(&retry_receipt(&unknown, 1, &bob, None)).await;
    no_message_with_id(&mut cb1, "3A0000000000000000").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_resends_a_group_message_pairwise_with_its_sender_key() {
    let sim = common::sim().await;
    let alice = sim.create_account(None, Some("Alice")).unwrap();
    let bob_account = sim.create_account(None, Some("Bob")).unwrap();
    let creds = sim.provision_companion(&bob_account.pn).unwrap();
    let mut cb1 = common::login_ready(&sim, &creds).await;
    let (bob, bob_spk) = common::identity_of(&creds);
    let gid = sim
        .create_group_as_phone(&alice.pn, "retry group", &[&bob_account.jid])
        .unwrap();
    let group: Jid = gid.parse().unwrap();

    let id = sim
        .phone_send_text(&alice.pn, &gid, "group text to resend")
        .unwrap();
    let original = message_with_id(&mut cb1, &id).await;
    assert_eq!(original.attr_value("from").unwrap().to_string(), gid);
    cb1.send(&retry_receipt(&original, 1, &bob, None)).await;
    let resent = message_with_id(&mut cb1, &id).await;
    assert_eq!(
        resent.attr_value("from").unwrap().to_string(),
        group.to_string()
    );
    assert_eq!(
        resent.attr_value("participant"),
        original.attr_value("participant"),
        "still from Alice's phone"
    );
    let (enc, count) = resent_enc(&resent);
    assert_eq!(count, "1");
    let keys = PreKeys {
        signed: Some(&bob_spk),
        one_time: None,
    };
    let (msg, _) = open_pkmsg(enc, &bob, keys);
    assert_eq!(msg.conversation.as_deref(), Some("group text to resend"));
    let skdm = msg
        .sender_key_distribution_message
        .expect("the phone's sender key comes along");
    assert_eq!(skdm.group_id.as_deref(), Some(gid.as_str()));
    assert!(skdm.axolotl_sender_key_distribution_message.is_some());
}
