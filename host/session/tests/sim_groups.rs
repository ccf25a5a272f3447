//! Groups over `wasmeow-sim`: a group created by our host with a second host session and a
//! simulated phone; messages both ways (sender keys), then promote / demote / remove, seen by
//! the other member as typed w:gp2 events and in the group info.

mod common;

use common::*;
use wasmeow_protocol::binary::Jid;
use wasmeow_session::Event;
use wasmeow_session::events::{GroupChange, GroupEvent};
use wasmeow_session::groups::ParticipantAction;
use wasmeow_session::recv::text_of;

fn group_change(e: &Event, group: &str) -> Option<GroupChange> {
    match e {
        Event::Group(GroupEvent {
            group: g, change, ..
        }) if g == group => Some(change.clone()),
        _ => None,
    }
}

fn group_text(e: &Event, group: &str) -> Option<String> {
    match e {
        Event::Message(m) if m.info.chat == group => text_of(&m.content).map(str::to_owned),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_created_group_messages_and_admin_changes() {
    let sim = sim().await;
    let me = sim.create_account(None, Some("Host")).unwrap();
    let bob = sim.create_account(None, Some("Bob")).unwrap();
    let carol = sim.create_account(None, Some("Carol")).unwrap();
    let (host, mut host_events, _) = paired(&sim, &me).await;
    let (bob_host, mut bob_events, _) = paired(&sim, &bob).await;
    let bob_jid: Jid = bob.jid.parse().unwrap();
    let carol_jid: Jid = carol.jid.parse().unwrap();

    let info = host
        .create_group("wasmeow group", &[bob_jid.clone(), carol_jid.clone()])
        .await
        .unwrap();
    assert_eq!(info.subject, "wasmeow group");
    assert_eq!(info.participants.len(), 3, "{info:?}");
    let gid = info.jid.clone();
    let group: Jid = gid.parse().unwrap();
    next_event(&mut bob_events, |e| {
        group_change(e, &gid)
            .filter(|c| matches!(c, GroupChange::Created { .. } | GroupChange::Added { .. }))
    })
    .await;

    // Host → group: the phone and the other host decrypt it (sender key distribution included).
    let sent = host.send_text(&group, "hello group").await.unwrap();
    assert!(sent.result.is_ok(), "{sent:?}");
    assert_eq!(
        next_event(&mut bob_events, |e| group_text(e, &gid)).await,
        "hello group"
    );
    eventually(|| {
        sim.phone_inbox(&carol.pn)
            .unwrap()
            .iter()
            .any(|m| m.chat == gid && m.text.as_deref() == Some("hello group"))
            .then_some(())
    })
    .await;

    // Phone → group and other host → group: we decrypt both.
    sim.phone_send_text(&carol.pn, &gid, "carol here").unwrap();
    assert_eq!(
        next_event(&mut host_events, |e| group_text(e, &gid)).await,
        "carol here"
    );
    assert_eq!(
        next_event(&mut bob_events, |e| group_text(e, &gid)).await,
        "carol here"
    );
    let r = bob_host.send_text(&group, "bob here").await.unwrap();
    assert!(r.result.is_ok());
    assert_eq!(
        next_event(&mut host_events, |e| group_text(e, &gid)).await,
        "bob here"
    );

    // Promote, demote, remove: Bob's session sees each as a typed event.
    host.update_participants(
        &group,
        ParticipantAction::Promote,
        std::slice::from_ref(&bob_jid),
    )
    .await
    .unwrap();
    let c = next_event(&mut bob_events, |e| {
        group_change(e, &gid).filter(|c| matches!(c, GroupChange::Promoted { .. }))
    })
    .await;
    assert!(
        matches!(&c, GroupChange::Promoted { participants } if participants.iter().any(|p| p.starts_with(&bob.pn) || p.starts_with(&bob.lid))),
        "{c:?}"
    );
    let role = |info: &wasmeow_session::groups::GroupInfo, user: &str, lid: &str| {
        info.participants
            .iter()
            .find(|p| p.jid.starts_with(user) || p.jid.starts_with(lid))
            .map(|p| p.role.clone())
    };
    let info = host.group_info(&group).await.unwrap();
    assert_eq!(role(&info, &bob.pn, &bob.lid).as_deref(), Some("admin"));

    host.update_participants(
        &group,
        ParticipantAction::Demote,
        std::slice::from_ref(&bob_jid),
    )
    .await
    .unwrap();
    next_event(&mut bob_events, |e| {
        group_change(e, &gid).filter(|c| matches!(c, GroupChange::Demoted { .. }))
    })
    .await;
    let info = host.group_info(&group).await.unwrap();
    assert_eq!(role(&info, &bob.pn, &bob.lid).as_deref(), Some(""));

    let results = host
        .update_participants(
            &group,
            ParticipantAction::Remove,
            std::slice::from_ref(&carol_jid),
        )
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
    next_event(&mut bob_events, |e| {
        group_change(e, &gid).filter(|c| matches!(c, GroupChange::Removed { .. }))
    })
    .await;
    let info = host.group_info(&group).await.unwrap();
    assert_eq!(info.participants.len(), 2);
    assert!(role(&info, &carol.pn, &carol.lid).is_none());

    // After the removal our sender key is rotated: Bob still reads us, Carol is gone.
    let r = host.send_text(&group, "after removal").await.unwrap();
    assert!(r.result.is_ok(), "{r:?}");
    assert_eq!(
        next_event(&mut bob_events, |e| group_text(e, &gid)).await,
        "after removal"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !sim.phone_inbox(&carol.pn)
            .unwrap()
            .iter()
            .any(|m| m.text.as_deref() == Some("after removal"))
    );
    assert_eq!(sim.phone_undecryptable(&carol.pn).unwrap(), 0);
    host.stop().await;
    bob_host.stop().await;
}
