//! Translating the session engine's events into the plugin contract's events (WIT types) and into
//! the operator vocabulary ([`HostEvent`]).
//!
//! Contract: pure functions. Identities are presented to plugins the way people know them: when
//! the server tells us a hidden-number sender's phone-number JID (`sender_alt`), plugins see the
//! phone-number JID as sender (and as chat, for a one-to-one chat), so `own-jid`, group member
//! lists and senders compare equal. Device suffixes are stripped. Timestamps become Unix ms.
//! Session events with no plugin-facing meaning (send results, identity changes, undecryptable
//! notices) map to `None`.

use serde_json::json;
use wasmeow_plugin_host::types as wit;
use wasmeow_session::content::{ContextInfo, MediaKind, MessageContent};
use wasmeow_session::events::{self as ev, ConnectionEvent, Event};

use crate::control::HostEvent;

/// `user@server` without a device part.
pub fn bare(jid: &str) -> String {
    match jid.split_once('@') {
        Some((user, server)) => {
            let user = user.split(':').next().unwrap_or(user);
            format!("{user}@{server}")
        }
        None => jid.to_owned(),
    }
}

fn is_lid(jid: &str) -> bool {
    jid.ends_with("@lid")
}

fn is_pn(jid: &str) -> bool {
    jid.ends_with("@s.whatsapp.net")
}

/// The phone-number form of `jid` when `alt` provides one for a LID.
pub fn prefer_pn(jid: &str, alt: Option<&str>) -> String {
    match alt {
        Some(alt) if is_lid(jid) && is_pn(alt) => bare(alt),
        _ => bare(jid),
    }
}

fn content(c: &MessageContent) -> (wit::Content, Option<&ContextInfo>) {
    match c {
        MessageContent::Text { text, context } => {
            (wit::Content::Text(text.clone()), context.as_ref())
        }
        MessageContent::Reaction {
            target_id, emoji, ..
        } => (
            wit::Content::Reaction(wit::Reaction {
                target: target_id.clone(),
                target_sender: String::new(),
                emoji: emoji.clone(),
            }),
            None,
        ),
        MessageContent::Media {
            kind,
            media,
            context,
        } => (
            wit::Content::Media(wit::Media {
                kind: match kind {
                    MediaKind::Image => wit::MediaKind::Image,
                    MediaKind::Video => wit::MediaKind::Video,
                    MediaKind::Audio if media.ptt => wit::MediaKind::VoiceNote,
                    MediaKind::Audio => wit::MediaKind::Audio,
                    MediaKind::Document => wit::MediaKind::Document,
                    MediaKind::Sticker => wit::MediaKind::Sticker,
                },
                mimetype: media.mimetype.clone().unwrap_or_default(),
                size: media.file_length.unwrap_or(0),
                caption: media.caption.clone(),
                sha256: media.file_sha256.clone(),
                file_name: media.file_name.clone(),
                width: media.width,
                height: media.height,
                duration_seconds: media.seconds,
            }),
            context.as_ref(),
        ),
        MessageContent::Location {
            latitude,
            longitude,
            name,
            address,
            live,
        } => (
            wit::Content::Location(wit::Location {
                latitude: *latitude,
                longitude: *longitude,
                name: name.clone(),
                address: address.clone(),
                live: *live,
            }),
            None,
        ),
        MessageContent::Contact {
            display_name,
            vcard,
        } => (
            wit::Content::Contact(wit::Contact {
                display_name: display_name.clone(),
                vcard: vcard.clone(),
            }),
            None,
        ),
        MessageContent::Poll {
            name,
            options,
            selectable,
        } => (
            wit::Content::Poll(wit::Poll {
                question: name.clone(),
                options: options.clone(),
                selectable_count: *selectable,
            }),
            None,
        ),
        MessageContent::Revoke { .. } => (wit::Content::Unsupported("revoke".into()), None),
        MessageContent::Edit { .. } => (wit::Content::Unsupported("edit".into()), None),
        MessageContent::Protocol { protocol_type } => (
            wit::Content::Unsupported(format!("protocol:{protocol_type}")),
            None,
        ),
        MessageContent::Unsupported { type_name } => {
            (wit::Content::Unsupported(type_name.clone()), None)
        }
    }
}

/// The plugin-facing form of a message.
pub fn message(m: &ev::MessageEvent) -> wit::Message {
    let info = &m.info;
    let sender = prefer_pn(&info.sender, info.sender_alt.as_deref());
    let chat = if !info.is_group && bare(&info.chat) == bare(&info.sender) {
        sender.clone()
    } else {
        bare(&info.chat)
    };
    let (content, context) = content(&m.content);
    let quoted = context.and_then(|c| {
        Some(wit::QuotedMessage {
            id: c.quoted_id.clone()?,
            sender: c.quoted_sender.as_deref().map(bare).unwrap_or_default(),
            content: wit::Content::Text(c.quoted_text.clone().unwrap_or_default()),
        })
    });
    wit::Message {
        id: info.id.clone(),
        chat,
        sender,
        push_name: info.push_name.clone(),
        timestamp: (info.timestamp as i64).saturating_mul(1000),
        from_me: info.from_me,
        is_group: info.is_group,
        quoted,
        mentions: context.map(|c| c.mentions.clone()).unwrap_or_default(),
        content,
    }
}

/// The plugin-facing form of a session event, if it has one. `own_jid` is the session's
/// phone-number JID (for the `connected` state).
pub fn plugin_event(session: &str, event: &Event, own_jid: Option<&str>) -> Option<wit::Event> {
    let body = match event {
        Event::Message(m) => wit::EventBody::Message(message(m)),
        Event::Receipt(r) => {
            let kind = match r.kind {
                ev::ReceiptKind::Delivered | ev::ReceiptKind::Sender => wit::ReceiptKind::Delivered,
                ev::ReceiptKind::Read | ev::ReceiptKind::ReadSelf => wit::ReceiptKind::Read,
                ev::ReceiptKind::Played | ev::ReceiptKind::PlayedSelf => wit::ReceiptKind::Played,
                ev::ReceiptKind::Retry => wit::ReceiptKind::Retry,
                ev::ReceiptKind::Other => return None,
            };
            wit::EventBody::Receipt(wit::Receipt {
                chat: bare(&r.chat),
                sender: bare(&r.sender),
                message_ids: r.ids.clone(),
                kind,
                timestamp: (r.timestamp as i64).saturating_mul(1000),
            })
        }
        Event::Group(g) => {
            let change = match &g.change {
                ev::GroupChange::Added { participants }
                | ev::GroupChange::Created { participants, .. } => {
                    wit::GroupChange::ParticipantsAdded(
                        participants.iter().map(|p| bare(p)).collect(),
                    )
                }
                ev::GroupChange::Removed { participants } => wit::GroupChange::ParticipantsRemoved(
                    participants.iter().map(|p| bare(p)).collect(),
                ),
                ev::GroupChange::Promoted { participants } => {
                    wit::GroupChange::ParticipantsPromoted(
                        participants.iter().map(|p| bare(p)).collect(),
                    )
                }
                ev::GroupChange::Demoted { participants } => wit::GroupChange::ParticipantsDemoted(
                    participants.iter().map(|p| bare(p)).collect(),
                ),
                ev::GroupChange::Subject { subject } => wit::GroupChange::Subject(subject.clone()),
                ev::GroupChange::Description { description } => {
                    wit::GroupChange::Description(description.clone())
                }
                ev::GroupChange::Announce { on } => wit::GroupChange::Announce(*on),
                ev::GroupChange::Locked { on } => wit::GroupChange::Locked(*on),
                _ => return None,
            };
            wit::EventBody::GroupUpdate(wit::GroupUpdate {
                group: bare(&g.group),
                actor: g.actor.as_deref().map(bare),
                timestamp: (g.timestamp as i64).saturating_mul(1000),
                change,
            })
        }
        Event::Presence(p) => wit::EventBody::Presence(wit::Presence {
            user: bare(&p.from),
            state: if p.available {
                wit::PresenceState::Available
            } else {
                wit::PresenceState::Unavailable
            },
            last_seen: p.last_seen.map(|s| (s as i64).saturating_mul(1000)),
        }),
        Event::ChatState(c) => wit::EventBody::ChatState(wit::ChatState {
            chat: bare(&c.chat),
            sender: bare(&c.sender),
            state: match c.state {
                ev::ChatState::Composing => wit::ChatStateKind::Composing,
                ev::ChatState::Recording => wit::ChatStateKind::Recording,
                ev::ChatState::Paused => wit::ChatStateKind::Paused,
            },
        }),
        Event::Connection(c) => wit::EventBody::Connection(match c {
            ConnectionEvent::Qr { code, .. } => wit::ConnectionState::PairingQr(code.clone()),
            ConnectionEvent::Connected => {
                wit::ConnectionState::Connected(own_jid.map(bare).unwrap_or_default())
            }
            ConnectionEvent::Disconnected { .. } => wit::ConnectionState::Disconnected,
            ConnectionEvent::LoggedOut { reason } => {
                wit::ConnectionState::LoggedOut(reason.clone())
            }
            ConnectionEvent::TemporaryBan { code, expire_secs } => {
                wit::ConnectionState::Banned(wit::BanInfo {
                    code: u16::try_from(*code).unwrap_or(u16::MAX),
                    expires: expire_secs
                        .map(|s| (chrono::Utc::now().timestamp() + s as i64).saturating_mul(1000)),
                })
            }
            _ => return None,
        }),
        Event::Undecryptable(_) | Event::IdentityChange(_) | Event::SendResult(_) => return None,
    };
    Some(wit::Event {
        session: session.to_owned(),
        body,
    })
}

/// The operator-facing form of a session event, if operators care about it.
pub fn host_event(session: &str, event: &Event, at_ms: u64) -> Option<HostEvent> {
    let (name, data) = match event {
        Event::Connection(c) => match c {
            ConnectionEvent::Qr {
                code,
                valid_for_secs,
            } => (
                "qr",
                json!({ "code": code, "valid_for_secs": valid_for_secs }),
            ),
            ConnectionEvent::PairCode { code } => ("pair_code", json!({ "code": code })),
            ConnectionEvent::Paired { jid, lid, .. } => {
                ("paired", json!({ "jid": jid, "lid": lid }))
            }
            ConnectionEvent::Connected => ("authenticated", json!({})),
            ConnectionEvent::PairError { reason } => ("auth_failure", json!({ "reason": reason })),
            ConnectionEvent::QrTimeout => (
                "auth_failure",
                json!({ "reason": "the QR codes expired without a scan" }),
            ),
            ConnectionEvent::LoggedOut { reason } => ("logged_out", json!({ "reason": reason })),
            ConnectionEvent::Disconnected {
                reason,
                retry_in_ms,
            } => (
                "disconnected",
                json!({ "reason": reason, "retry_in_ms": retry_in_ms }),
            ),
            ConnectionEvent::StreamReplaced => (
                "disconnected",
                json!({ "reason": "replaced by another connection", "retry_in_ms": null }),
            ),
            ConnectionEvent::TemporaryBan { code, expire_secs } => (
                "auth_failure",
                json!({ "reason": "temporary ban", "code": code, "expire_secs": expire_secs }),
            ),
            ConnectionEvent::ClientOutdated => (
                "auth_failure",
                json!({ "reason": "client outdated (405): configure a newer wa_version" }),
            ),
            ConnectionEvent::Connecting => return None,
        },
        Event::Message(m) => (
            "message",
            serde_json::to_value(message_summary(m)).unwrap_or_default(),
        ),
        _ => return None,
    };
    Some(HostEvent {
        session: session.to_owned(),
        event: name.to_owned(),
        at_ms,
        data,
    })
}

fn message_summary(m: &ev::MessageEvent) -> serde_json::Value {
    let msg = message(m);
    let text = match &msg.content {
        wit::Content::Text(t) => Some(t.clone()),
        wit::Content::Media(media) => media.caption.clone(),
        _ => None,
    };
    json!({
        "id": msg.id,
        "chat": msg.chat,
        "sender": msg.sender,
        "from_me": msg.from_me,
        "is_group": msg.is_group,
        "timestamp_ms": msg.timestamp,
        "push_name": msg.push_name,
        "text": text,
        "content": m.content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmeow_session::events::{MessageEvent, MessageInfo};

    fn info(chat: &str, sender: &str, alt: Option<&str>, group: bool) -> MessageInfo {
        MessageInfo {
            id: "ID1".into(),
            chat: chat.into(),
            sender: sender.into(),
            sender_device: sender.replace('@', ":3@"),
            sender_alt: alt.map(str::to_owned),
            from_me: false,
            is_group: group,
            timestamp: 1_700_000_000,
            push_name: Some("Ann".into()),
        }
    }

    #[test]
    fn lid_dm_is_presented_with_the_phone_number() {
        let m = MessageEvent {
            info: info("111@lid", "111@lid", Some("4912345@s.whatsapp.net"), false),
            content: MessageContent::text("hi"),
        };
        let w = message(&m);
        assert_eq!(w.chat, "4912345@s.whatsapp.net");
        assert_eq!(w.sender, "4912345@s.whatsapp.net");
        assert_eq!(w.timestamp, 1_700_000_000_000);
        assert!(matches!(w.content, wit::Content::Text(ref t) if t == "hi"));
    }

    #[test]
    fn group_keeps_the_group_as_chat() {
        let m = MessageEvent {
            info: info(
                "123-456@g.us",
                "111@lid",
                Some("4912345@s.whatsapp.net"),
                true,
            ),
            content: MessageContent::text("x"),
        };
        let w = message(&m);
        assert_eq!(w.chat, "123-456@g.us");
        assert_eq!(w.sender, "4912345@s.whatsapp.net");
        assert!(w.is_group);
    }

    #[test]
    fn without_alt_the_lid_stays() {
        assert_eq!(prefer_pn("111:2@lid", None), "111@lid");
        assert_eq!(prefer_pn("111@lid", Some("222@lid")), "111@lid");
        assert_eq!(bare("49:12@s.whatsapp.net"), "49@s.whatsapp.net");
    }

    #[test]
    fn operator_vocabulary() {
        let e = Event::Connection(ConnectionEvent::Connected);
        assert_eq!(host_event("main", &e, 5).unwrap().event, "authenticated");
        let e = Event::Connection(ConnectionEvent::LoggedOut {
            reason: "401".into(),
        });
        assert_eq!(host_event("main", &e, 5).unwrap().event, "logged_out");
        let e = Event::Connection(ConnectionEvent::Connecting);
        assert!(host_event("main", &e, 5).is_none());
    }
}
