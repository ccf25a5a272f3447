//! `w:g2` group IQs and the `w:gp2` notifications member devices receive, plus group message
//! fan-out to every member device (phones included), with a client built on `wasmeow-protocol`.

mod common;

use std::time::Duration;

use common::Client;
use wasmeow_protocol::binary::{Jid, Node};
use wasmeow_sim::{CompanionCredentials, Sim, SimConfig, SimHandle};

const T: Duration = Duration::from_secs(10);

async fn login(sim: &SimHandle, creds: &CompanionCredentials) -> Client {
    common::login_ready(sim, creds).await
}

fn g2(to: &str, kind: &str, child: Node) -> Node {
    Node::new("iq")
        .attr("to", Jid::parse(to).unwrap())
        .attr("type", kind.to_owned())
        .attr("xmlns", "w:g2")
        .children([child])
}

fn error_code(answer: &Node) -> Option<&str> {
    answer
        .child_by_tag("error")
        .and_then(|e| e.attr_str("code"))
}

/// The next w:gp2 notification about `change`, acknowledged like a client does.
async fn notification(c: &mut Client, change: &str) -> Node {
    let n = c
        .recv_matching(T, |n| {
            n.tag == "notification"
                && n.attr_str("type") == Some("w:gp2")
                && n.child_by_tag(change).is_some()
        })
        .await
        .expect("w:gp2 notification");
    let ack = Node::new("ack")
        .attr("class", "notification")
        .attr("id", n.attr_value("id").unwrap().clone())
        .attr("type", "w:gp2")
        .attr("to", n.attr_value("from").unwrap().clone());
    c.send(&ack).await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_lifecycle_with_notifications_and_permissions() {
    let sim = Sim::start(SimConfig {
        wss_port: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let a = sim.create_account(None, Some("Alice")).unwrap();
    let b = sim.create_account(None, Some("Bob")).unwrap();
    let c = sim.create_account(None, Some("Carol")).unwrap();
    let d = sim.create_account(None, Some("Dave")).unwrap();
    let a1 = sim.provision_companion(&a.pn).unwrap();
    let b1 = sim.provision_companion(&b.pn).unwrap();
    let d1 = sim.provision_companion(&d.pn).unwrap();
    let mut ca = login(&sim, &a1).await;
    let mut cb = login(&sim, &b1).await;
    let mut cd = login(&sim, &d1).await;

    // Create with Bob and Carol (a phone-only account).
    let create = Node::new("create")
        .attr("subject", "Team")
        .attr("key", "K1")
        .children([
            Node::new("participant").attr("jid", Jid::parse(&b.jid).unwrap()),
            Node::new("participant").attr("jid", Jid::parse(&c.jid).unwrap()),
        ]);
    let answer = ca.iq(g2("@g.us", "set", create)).await;
    let group = answer.child_by_tag("group").expect("group metadata");
    let gid = format!("{}@g.us", group.attr_str("id").unwrap());
    assert_eq!(group.attr_str("subject"), Some("Team"));
    assert_eq!(group.attr_str("addressing_mode"), Some("lid"));
    let participants: Vec<(String, Option<String>)> = group
        .children_by_tag("participant")
        .map(|p| {
            (
                p.attr_value("jid").unwrap().to_string(),
                p.attr_str("type").map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        participants[0],
        (a.lid_jid.clone(), Some("superadmin".into()))
    );
    assert_eq!(participants.len(), 3);
    let created = notification(&mut cb, "create").await;
    assert_eq!(created.attr_value("from").unwrap().to_string(), gid);
    assert_eq!(
        created.attr_value("participant").unwrap().to_string(),
        a.lid_jid
    );
    assert_eq!(
        created
            .child_by_path(&["create", "group"])
            .unwrap()
            .attr_str("subject"),
        Some("Team")
    );

    // Info for members only.
    let info = cb
        .iq(g2(
            &gid,
            "get",
            Node::new("query").attr("request", "interactive"),
        ))
        .await;
    assert_eq!(
        info.child_by_tag("group").unwrap().attr_str("size"),
        Some("3")
    );
    let denied = cd
        .iq(g2(
            &gid,
            "get",
            Node::new("query").attr("request", "interactive"),
        ))
        .await;
    assert_eq!(error_code(&denied), Some("403"));
    let missing = cd
        .iq(g2("120363000000000000@g.us", "get", Node::new("query")))
        .await;
    assert_eq!(error_code(&missing), Some("404"));

    // Participating lists it for Bob, not for Dave.
    let list = cb
        .iq(g2(
            "@g.us",
            "get",
            Node::new("participating").children([Node::new("participants")]),
        ))
        .await;
    assert_eq!(list.child_by_tag("groups").unwrap().child_nodes().len(), 1);
    let list = cd.iq(g2("@g.us", "get", Node::new("participating"))).await;
    assert_eq!(list.child_by_tag("groups").unwrap().child_nodes().len(), 0);

    // Non-admins cannot add; admins can, with per-participant results.
    let add = |jid: &str| {
        Node::new("add").children([Node::new("participant").attr("jid", Jid::parse(jid).unwrap())])
    };
    let refused = cb.iq(g2(&gid, "set", add(&d.jid))).await;
    assert_eq!(error_code(&refused), Some("403"));
    let added = ca.iq(g2(&gid, "set", add(&d.jid))).await;
    assert!(
        added
            .child_by_path(&["add", "participant"])
            .unwrap()
            .attr_str("error")
            .is_none()
    );
    let again = ca.iq(g2(&gid, "set", add(&d.jid))).await;
    assert_eq!(
        again
            .child_by_path(&["add", "participant"])
            .unwrap()
            .attr_str("error"),
        Some("409")
    );
    let n = notification(&mut cb, "add").await;
    let p = n.child_by_path(&["add", "participant"]).unwrap();
    assert_eq!(p.attr_value("jid").unwrap().to_string(), d.lid_jid);
    assert_eq!(p.attr_value("phone_number").unwrap().to_string(), d.jid);
    let n = notification(&mut cd, "add").await;
    assert!(
        n.child_by_tag("add").is_some(),
        "the added member is told too"
    );

    // Promote Bob; now he may lock the group and change the subject.
    let promote = Node::new("promote")
        .children([Node::new("participant").attr("jid", Jid::parse(&b.lid_jid).unwrap())]);
    ca.iq(g2(&gid, "set", promote)).await;
    assert!(
        notification(&mut cb, "promote")
            .await
            .child_by_tag("promote")
            .is_some()
    );
    let locked = cb.iq(g2(&gid, "set", Node::new("locked"))).await;
    assert_eq!(locked.attr_str("type"), Some("result"));
    assert!(
        notification(&mut ca, "locked")
            .await
            .child_by_tag("locked")
            .is_some()
    );
    let subject = cd
        .iq(g2(
            &gid,
            "set",
            Node::new("subject").bytes(b"Dave's".to_vec()),
        ))
        .await;
    assert_eq!(
        error_code(&subject),
        Some("403"),
        "locked: only admins edit info"
    );
    let subject = cb
        .iq(g2(
            &gid,
            "set",
            Node::new("subject").bytes("Équipe".as_bytes().to_vec()),
        ))
        .await;
    assert_eq!(subject.attr_str("type"), Some("result"));
    let n = notification(&mut ca, "subject").await;
    assert_eq!(
        n.child_by_tag("subject").unwrap().attr_str("subject"),
        Some("Équipe")
    );

    // Description with prev/id bookkeeping.
    let desc = Node::new("description")
        .attr("id", "D1")
        .children([Node::new("body").bytes(b"rules".to_vec())]);
    assert_eq!(
        ca.iq(g2(&gid, "set", desc)).await.attr_str("type"),
        Some("result")
    );
    let stale = Node::new("description")
        .attr("id", "D2")
        .attr("prev", "WRONG")
        .children([Node::new("body").bytes(b"x".to_vec())]);
    assert_eq!(
        error_code(&ca.iq(g2(&gid, "set", stale)).await),
        Some("409")
    );
    let n = notification(&mut cb, "description").await;
    assert_eq!(
        n.child_by_path(&["description", "body"])
            .unwrap()
            .content_bytes(),
        Some(&b"rules"[..])
    );
    let info = cd.iq(g2(&gid, "get", Node::new("query"))).await;
    let group = info.child_by_tag("group").unwrap();
    assert_eq!(
        group
            .child_by_path(&["description", "body"])
            .unwrap()
            .content_bytes(),
        Some(&b"rules"[..])
    );
    assert!(group.child_by_tag("locked").is_some());
    assert_eq!(group.attr_str("subject"), Some("Équipe"));

    // Announcement mode: only admins may send.
    ca.iq(g2(&gid, "set", Node::new("announcement"))).await;
    notification(&mut cb, "announcement").await;
    notification(&mut cd, "announcement").await;
    let msg = |id: &str| {
        Node::new("message")
            .attr("id", id.to_owned())
            .attr("to", Jid::parse(&gid).unwrap())
            .attr("type", "text")
            .children([Node::new("enc")
                .attr("v", "2")
                .attr("type", "skmsg")
                .bytes(b"sk".to_vec())])
    };
    cd.send(&msg("3EB0G001")).await;
    let ack = cd.recv_matching(T, |n| n.tag == "ack").await.unwrap();
    assert_eq!(ack.attr_str("error"), Some("403"));
    ca.send(&msg("3EB0G002")).await;
    assert!(
        ca.recv_matching(T, |n| n.tag == "ack")
            .await
            .unwrap()
            .attr_str("error")
            .is_none()
    );
    for c in [&mut cb, &mut cd] {
        let m = c.recv_matching(T, |n| n.tag == "message").await.unwrap();
        assert_eq!(m.attr_value("from").unwrap().to_string(), gid);
        assert_eq!(
            m.attr_value("participant").unwrap().to_string(),
            format!("{}:{}@lid", a.lid, a1.device)
        );
        assert_eq!(m.attr_value("participant_pn").unwrap().to_string(), a.jid);
        assert_eq!(
            m.child_by_tag("enc").unwrap().attr_str("type"),
            Some("skmsg")
        );
    }
    // Every member's phone got it too, Carol's included (garbage cannot decrypt: retry receipts).
    let carol = Jid::parse(&c.lid_jid).unwrap();
    ca.recv_matching(T, |n| {
        n.tag == "receipt"
            && n.attr_str("type") == Some("retry")
            && n.attr_jid("participant") == Some(&carol)
    })
    .await
    .unwrap();

    // Invite links: admin only; revoke makes the old code gone; join by link adds.
    let code = ca.iq(g2(&gid, "get", Node::new("invite"))).await;
    let code = code
        .child_by_tag("invite")
        .unwrap()
        .attr_str("code")
        .unwrap()
        .to_owned();
    let e = cd.iq(g2(&gid, "get", Node::new("invite"))).await;
    assert_eq!(error_code(&e), Some("403"));
    let revoked = ca.iq(g2(&gid, "set", Node::new("invite"))).await;
    let new_code = revoked
        .child_by_tag("invite")
        .unwrap()
        .attr_str("code")
        .unwrap()
        .to_owned();
    assert_ne!(new_code, code);
    let e = sim.create_account(None, None).unwrap();
    let mut ce = login(&sim, &sim.provision_companion(&e.pn).unwrap()).await;
    let gone = ce
        .iq(g2(
            "@g.us",
            "set",
            Node::new("invite").attr("code", code.clone()),
        ))
        .await;
    assert_eq!(error_code(&gone), Some("410"));
    let bad = ce
        .iq(g2("@g.us", "set", Node::new("invite").attr("code", "nope")))
        .await;
    assert_eq!(error_code(&bad), Some("406"));
    let preview = ce
        .iq(g2(
            "@g.us",
            "get",
            Node::new("invite").attr("code", new_code.clone()),
        ))
        .await;
    assert_eq!(
        preview.child_by_tag("group").unwrap().attr_str("subject"),
        Some("Équipe")
    );
    let joined = ce
        .iq(g2(
            "@g.us",
            "set",
            Node::new("invite").attr("code", new_code),
        ))
        .await;
    assert_eq!(
        joined
            .child_by_tag("group")
            .unwrap()
            .attr_value("jid")
            .unwrap()
            .to_string(),
        gid
    );
    let n = notification(&mut ca, "add").await;
    assert_eq!(
        n.child_by_tag("add").unwrap().attr_str("reason"),
        Some("invite")
    );

    // Remove Dave; leave as Bob. Both get told; the group shrinks.
    let remove = Node::new("remove")
        .children([Node::new("participant").attr("jid", Jid::parse(&d.jid).unwrap())]);
    ca.iq(g2(&gid, "set", remove)).await;
    let n = notification(&mut cd, "remove").await;
    assert_eq!(
        n.child_by_path(&["remove", "participant"])
            .unwrap()
            .attr_value("jid")
            .unwrap()
            .to_string(),
        d.lid_jid
    );
    let leave =
        Node::new("leave").children([Node::new("group").attr("id", Jid::parse(&gid).unwrap())]);
    let left = cb.iq(g2("@g.us", "set", leave)).await;
    assert!(left.child_by_path(&["leave", "group"]).is_some());
    let info = ca.iq(g2(&gid, "get", Node::new("query"))).await;
    assert_eq!(
        info.child_by_tag("group").unwrap().attr_str("size"),
        Some("3"),
        "alice, carol, erin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_talk_in_groups_with_sender_keys() {
    let sim = Sim::start(SimConfig {
        wss_port: None,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let a = sim.create_account(None, Some("Alice")).unwrap();
    let b = sim.create_account(None, Some("Bob")).unwrap();
    let c = sim.create_account(None, Some("Carol")).unwrap();
    let gid = sim
        .create_group_as_phone(&a.pn, "Phones", &[&b.jid, &c.lid_jid])
        .unwrap();
    let first = sim.phone_send_text(&a.pn, &gid, "hello group").unwrap();
    let second = sim.phone_send_text(&b.pn, &gid, "hello from bob").unwrap();
    let third = sim
        .phone_send_text(&a.pn, &gid, "second from alice")
        .unwrap();
    for (pn, want) in [
        (&b.pn, vec![&first, &third]),
        (&c.pn, vec![&first, &second, &third]),
    ] {
        let inbox = sim.phone_inbox(pn).unwrap();
        let ids: Vec<&String> = inbox.iter().map(|m| &m.id).collect();
        assert_eq!(ids, want, "{pn}");
        assert!(inbox.iter().all(|m| m.chat == gid && m.text.is_some()));
    }
    assert_eq!(
        sim.phone_inbox(&a.pn).unwrap()[0].text.as_deref(),
        Some("hello from bob")
    );
    for pn in [&a.pn, &b.pn, &c.pn] {
        assert_eq!(sim.phone_undecryptable(pn).unwrap(), 0);
    }
    let receipts = sim.phone_receipts(&a.pn).unwrap();
    assert_eq!(
        receipts.iter().filter(|r| r.id == first).count(),
        2,
        "both members' phones receipted"
    );
}
