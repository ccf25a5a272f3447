//! Message content: the typed, plain-data view of a decrypted `wa::Message`, and the way back.
//!
//! Contract: [`parse_message`] takes the *unpadded* plaintext of an `<enc>` node and returns
//! the unwrapped content ([`MessageContent`]), the sender-key distribution it may carry, and
//! the device-sent envelope's destination. Wrappers are unwrapped in whatsmeow's order
//! (`protocol-whatsmeow.md` §2.11): device-sent, ephemeral, view-once (v1, v2, v2 extension),
//! document-with-caption, edited. A payload we do not model becomes
//! [`MessageContent::Unsupported`] with the protobuf field's name (or `field_<n>` for field
//! numbers we have no name for), found by scanning the raw top-level field tags — prost drops
//! unknown fields, so the name cannot come from the decoded value.
//!
//! [`MessageContent::to_proto`] builds the `wa::Message` for the kinds the send API offers.

use prost::Message as _;
use serde::{Deserialize, Serialize};
use wasmeow_proto::wa;

/// Quote and mention metadata of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextInfo {
    /// The id of the quoted message.
    pub quoted_id: Option<String>,
    /// The author of the quoted message.
    pub quoted_sender: Option<String>,
    /// The quoted message's text, when it is text.
    pub quoted_text: Option<String>,
    /// Mentioned JIDs.
    pub mentions: Vec<String>,
    /// Whether the message was forwarded.
    pub forwarded: bool,
}

/// The kind of a media attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A picture.
    Image,
    /// A video (or GIF).
    Video,
    /// Audio or a voice note (`ptt`).
    Audio,
    /// A file.
    Document,
    /// A sticker.
    Sticker,
}

/// Everything needed to download and decrypt a media attachment (the media itself is not
/// fetched by the session).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaDescriptor {
    /// The CDN URL.
    pub url: Option<String>,
    /// The direct path (host-independent).
    pub direct_path: Option<String>,
    /// The MIME type.
    pub mimetype: Option<String>,
    /// The caption.
    pub caption: Option<String>,
    /// The 32-byte media key.
    pub media_key: Vec<u8>,
    /// SHA-256 of the plaintext.
    pub file_sha256: Vec<u8>,
    /// SHA-256 of the encrypted upload.
    pub file_enc_sha256: Vec<u8>,
    /// Plaintext size.
    pub file_length: Option<u64>,
    /// Pixels.
    pub width: Option<u32>,
    /// Pixels.
    pub height: Option<u32>,
    /// Audio/video duration.
    pub seconds: Option<u32>,
    /// Document file name.
    pub file_name: Option<String>,
    /// Voice note.
    pub ptt: bool,
}

/// A decrypted message's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessageContent {
    /// Text (`conversation` or `extendedTextMessage`).
    Text {
        /// The text.
        text: String,
        /// Quote / mentions.
        context: Option<ContextInfo>,
    },
    /// A reaction to another message; an empty `emoji` removes the reaction.
    Reaction {
        /// The message reacted to.
        target_id: String,
        /// The chat of the target, if given.
        target_chat: Option<String>,
        /// Whether the target was sent by the reactor's counterpart.
        target_from_me: bool,
        /// The emoji.
        emoji: String,
    },
    /// Media.
    Media {
        /// Which kind.
        kind: MediaKind,
        /// How to fetch it.
        media: Box<MediaDescriptor>,
        /// Quote / mentions.
        context: Option<ContextInfo>,
    },
    /// A location pin.
    Location {
        /// Degrees.
        latitude: f64,
        /// Degrees.
        longitude: f64,
        /// The place name.
        name: Option<String>,
        /// The address.
        address: Option<String>,
        /// Whether it is a live location.
        live: bool,
    },
    /// A shared contact card.
    Contact {
        /// The name shown.
        display_name: String,
        /// The vCard.
        vcard: String,
    },
    /// A poll.
    Poll {
        /// The question.
        name: String,
        /// The options.
        options: Vec<String>,
        /// How many options one voter may select (0: any).
        selectable: u32,
    },
    /// The sender deleted one of their messages.
    Revoke {
        /// The deleted message.
        target_id: String,
    },
    /// The sender edited one of their messages.
    Edit {
        /// The edited message.
        target_id: String,
        /// The new content.
        new_content: Box<MessageContent>,
    },
    /// A protocol message we do not act on (history sync notice, app-state keys, …).
    Protocol {
        /// The `ProtocolMessage.Type` name.
        protocol_type: String,
    },
    /// A message kind we do not model.
    Unsupported {
        /// The `wa.Message` field name (e.g. `pollUpdateMessage`) or `field_<n>`.
        type_name: String,
    },
}

/// What [`parse_message`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedMessage {
    /// The content; `None` when the message only carried a sender-key distribution.
    pub content: Option<MessageContent>,
    /// A sender-key distribution: (group id, serialized SKDM).
    pub sender_key_distribution: Option<(String, Vec<u8>)>,
    /// For a device-sent envelope (our own other device): the real destination chat.
    pub device_sent_destination: Option<String>,
}

/// Field numbers of `wa.Message` and their names, for reporting unsupported kinds.
const MESSAGE_FIELD_NAMES: &[(u32, &str)] = &[
    (1, "conversation"),
    (2, "senderKeyDistributionMessage"),
    (3, "imageMessage"),
    (4, "contactMessage"),
    (5, "locationMessage"),
    (6, "extendedTextMessage"),
    (7, "documentMessage"),
    (8, "audioMessage"),
    (9, "videoMessage"),
    (10, "call"),
    (11, "chat"),
    (12, "protocolMessage"),
    (13, "contactsArrayMessage"),
    (14, "highlyStructuredMessage"),
    (15, "fastRatchetKeySenderKeyDistributionMessage"),
    (16, "sendPaymentMessage"),
    (18, "liveLocationMessage"),
    (22, "requestPaymentMessage"),
    (23, "declinePaymentRequestMessage"),
    (24, "cancelPaymentRequestMessage"),
    (25, "templateMessage"),
    (26, "stickerMessage"),
    (28, "groupInviteMessage"),
    (29, "templateButtonReplyMessage"),
    (30, "productMessage"),
    (31, "deviceSentMessage"),
    (35, "messageContextInfo"),
    (36, "listMessage"),
    (37, "viewOnceMessage"),
    (38, "orderMessage"),
    (39, "listResponseMessage"),
    (40, "ephemeralMessage"),
    (41, "invoiceMessage"),
    (42, "buttonsMessage"),
    (43, "buttonsResponseMessage"),
    (44, "paymentInviteMessage"),
    (45, "interactiveMessage"),
    (46, "reactionMessage"),
    (47, "stickerSyncRmrMessage"),
    (48, "interactiveResponseMessage"),
    (49, "pollCreationMessage"),
    (50, "pollUpdateMessage"),
    (51, "keepInChatMessage"),
    (53, "documentWithCaptionMessage"),
    (54, "requestPhoneNumberMessage"),
    (55, "viewOnceMessageV2"),
    (56, "encReactionMessage"),
    (58, "editedMessage"),
    (59, "viewOnceMessageV2Extension"),
    (60, "pollCreationMessageV2"),
    (64, "pollCreationMessageV3"),
];

/// Fields that carry no content of their own (metadata), skipped when naming an unsupported
/// message.
const METADATA_FIELDS: &[u32] = &[2, 35];

/// The top-level field numbers present in a serialized protobuf message, in order of
/// appearance, or `None` if the bytes are not a well-formed message.
fn top_level_fields(mut bytes: &[u8]) -> Option<Vec<u32>> {
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = bytes.split_first()?;
            *bytes = rest;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let field = u32::try_from(key >> 3).ok()?;
        match key & 7 {
            0 => {
                varint(&mut bytes)?;
            }
            1 => bytes = bytes.get(8..)?,
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                bytes = bytes.get(len..)?;
            }
            5 => bytes = bytes.get(4..)?,
            _ => return None,
        }
        if !out.contains(&field) {
            out.push(field);
        }
    }
    Some(out)
}

fn field_name(n: u32) -> String {
    MESSAGE_FIELD_NAMES
        .iter()
        .find(|(k, _)| *k == n)
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or_else(|| format!("field_{n}"))
}

fn context(ci: Option<&wa::ContextInfo>) -> Option<ContextInfo> {
    let ci = ci?;
    let quoted_text = ci.quoted_message.as_deref().and_then(|q| {
        q.conversation.clone().or_else(|| {
            q.extended_text_message
                .as_ref()
                .and_then(|e| e.text.clone())
        })
    });
    Some(ContextInfo {
        quoted_id: ci.stanza_id.clone(),
        quoted_sender: ci.participant.clone(),
        quoted_text,
        mentions: ci.mentioned_jid.clone(),
        forwarded: ci.is_forwarded.unwrap_or(false),
    })
}

fn bytes(b: &Option<prost::bytes::Bytes>) -> Vec<u8> {
    b.as_ref().map(|b| b.to_vec()).unwrap_or_default()
}

/// Decodes and classifies an unpadded `wa.Message` plaintext.
pub fn parse_message(plaintext: &[u8]) -> Result<ParsedMessage, prost::DecodeError> {
    let msg = wa::Message::decode(plaintext)?;
    let mut parsed = ParsedMessage {
        content: None,
        sender_key_distribution: None,
        device_sent_destination: None,
    };
    let mut raw_fields = top_level_fields(plaintext);
    let mut current = msg;
    // Unwrap envelopes (bounded: each step strictly descends into a sub-message).
    for _ in 0..8 {
        if let Some(skdm) = &current.sender_key_distribution_message
            && let (Some(group), Some(data)) = (
                &skdm.group_id,
                &skdm.axolotl_sender_key_distribution_message,
            )
        {
            parsed.sender_key_distribution = Some((group.clone(), data.to_vec()));
        }
        let inner = if let Some(dsm) = current.device_sent_message.take() {
            parsed.device_sent_destination = dsm.destination_jid.clone();
            dsm.message
        } else {
            [
                current.ephemeral_message.take(),
                current.view_once_message.take(),
                current.view_once_message_v2.take(),
                current.view_once_message_v2_extension.take(),
                current.document_with_caption_message.take(),
                current.edited_message.take(),
            ]
            .into_iter()
            .flatten()
            .find_map(|fp| fp.message)
        };
        match inner {
            Some(inner) => {
                // The wrapper's own raw fields no longer describe the content.
                raw_fields = Some(top_level_fields(&inner.encode_to_vec()).unwrap_or_default());
                current = *inner;
            }
            None => break,
        }
    }
    parsed.content = classify(&current, raw_fields.as_deref());
    Ok(parsed)
}

/// The content of an unwrapped message; `None` if it has only metadata (e.g. a bare SKDM).
fn classify(m: &wa::Message, raw_fields: Option<&[u32]>) -> Option<MessageContent> {
    if let Some(text) = &m.conversation {
        return Some(MessageContent::Text {
            text: text.clone(),
            context: None,
        });
    }
    if let Some(e) = &m.extended_text_message {
        return Some(MessageContent::Text {
            text: e.text.clone().unwrap_or_default(),
            context: context(e.context_info.as_deref()),
        });
    }
    if let Some(r) = &m.reaction_message {
        let key = r.key.clone().unwrap_or_default();
        return Some(MessageContent::Reaction {
            target_id: key.id.unwrap_or_default(),
            target_chat: key.remote_jid,
            target_from_me: key.from_me.unwrap_or(false),
            emoji: r.text.clone().unwrap_or_default(),
        });
    }
    if let Some(i) = &m.image_message {
        return Some(MessageContent::Media {
            kind: MediaKind::Image,
            media: Box::new(MediaDescriptor {
                url: i.url.clone(),
                direct_path: i.direct_path.clone(),
                mimetype: i.mimetype.clone(),
                caption: i.caption.clone(),
                media_key: bytes(&i.media_key),
                file_sha256: bytes(&i.file_sha256),
                file_enc_sha256: bytes(&i.file_enc_sha256),
                file_length: i.file_length,
                width: i.width,
                height: i.height,
                ..Default::default()
            }),
            context: context(i.context_info.as_deref()),
        });
    }
    if let Some(v) = &m.video_message {
        return Some(MessageContent::Media {
            kind: MediaKind::Video,
            media: Box::new(MediaDescriptor {
                url: v.url.clone(),
                direct_path: v.direct_path.clone(),
                mimetype: v.mimetype.clone(),
                caption: v.caption.clone(),
                media_key: bytes(&v.media_key),
                file_sha256: bytes(&v.file_sha256),
                file_enc_sha256: bytes(&v.file_enc_sha256),
                file_length: v.file_length,
                width: v.width,
                height: v.height,
                seconds: v.seconds,
                ..Default::default()
            }),
            context: context(v.context_info.as_deref()),
        });
    }
    if let Some(a) = &m.audio_message {
        return Some(MessageContent::Media {
            kind: MediaKind::Audio,
            media: Box::new(MediaDescriptor {
                url: a.url.clone(),
                direct_path: a.direct_path.clone(),
                mimetype: a.mimetype.clone(),
                media_key: bytes(&a.media_key),
                file_sha256: bytes(&a.file_sha256),
                file_enc_sha256: bytes(&a.file_enc_sha256),
                file_length: a.file_length,
                seconds: a.seconds,
                ptt: a.ptt.unwrap_or(false),
                ..Default::default()
            }),
            context: context(a.context_info.as_deref()),
        });
    }
    if let Some(d) = &m.document_message {
        return Some(MessageContent::Media {
            kind: MediaKind::Document,
            media: Box::new(MediaDescriptor {
                url: d.url.clone(),
                direct_path: d.direct_path.clone(),
                mimetype: d.mimetype.clone(),
                caption: d.caption.clone(),
                media_key: bytes(&d.media_key),
                file_sha256: bytes(&d.file_sha256),
                file_enc_sha256: bytes(&d.file_enc_sha256),
                file_length: d.file_length,
                file_name: d.file_name.clone(),
                ..Default::default()
            }),
            context: context(d.context_info.as_deref()),
        });
    }
    if let Some(s) = &m.sticker_message {
        return Some(MessageContent::Media {
            kind: MediaKind::Sticker,
            media: Box::new(MediaDescriptor {
                url: s.url.clone(),
                direct_path: s.direct_path.clone(),
                mimetype: s.mimetype.clone(),
                media_key: bytes(&s.media_key),
                file_sha256: bytes(&s.file_sha256),
                file_enc_sha256: bytes(&s.file_enc_sha256),
                file_length: s.file_length,
                width: s.width,
                height: s.height,
                ..Default::default()
            }),
            context: context(s.context_info.as_deref()),
        });
    }
    if let Some(l) = &m.location_message {
        return Some(MessageContent::Location {
            latitude: l.degrees_latitude.unwrap_or_default(),
            longitude: l.degrees_longitude.unwrap_or_default(),
            name: l.name.clone(),
            address: l.address.clone(),
            live: l.is_live.unwrap_or(false),
        });
    }
    if let Some(c) = &m.contact_message {
        return Some(MessageContent::Contact {
            display_name: c.display_name.clone().unwrap_or_default(),
            vcard: c.vcard.clone().unwrap_or_default(),
        });
    }
    if let Some(p) = m
        .poll_creation_message
        .as_ref()
        .or(m.poll_creation_message_v2.as_ref())
        .or(m.poll_creation_message_v3.as_ref())
    {
        return Some(MessageContent::Poll {
            name: p.name.clone().unwrap_or_default(),
            options: p
                .options
                .iter()
                .filter_map(|o| o.option_name.clone())
                .collect(),
            selectable: p.selectable_options_count.unwrap_or(0),
        });
    }
    if let Some(p) = &m.protocol_message {
        let target_id = p
            .key
            .as_ref()
            .and_then(|k| k.id.clone())
            .unwrap_or_default();
        let ty = p
            .r#type
            .and_then(|t| wa::message::protocol_message::Type::try_from(t).ok());
        return Some(match ty {
            Some(wa::message::protocol_message::Type::Revoke) => {
                MessageContent::Revoke { target_id }
            }
            Some(wa::message::protocol_message::Type::MessageEdit) => {
                let new_content = p
                    .edited_message
                    .as_deref()
                    .and_then(|e| classify(e, top_level_fields(&e.encode_to_vec()).as_deref()))
                    .unwrap_or(MessageContent::Unsupported {
                        type_name: "empty".to_owned(),
                    });
                MessageContent::Edit {
                    target_id,
                    new_content: Box::new(new_content),
                }
            }
            Some(t) => MessageContent::Protocol {
                protocol_type: t.as_str_name().to_owned(),
            },
            None => MessageContent::Protocol {
                protocol_type: format!("type_{}", p.r#type.unwrap_or(-1)),
            },
        });
    }
    // Nothing we model: name the first content-bearing field, if any.
    let fields = raw_fields.unwrap_or(&[]);
    let first = fields.iter().find(|f| !METADATA_FIELDS.contains(f))?;
    Some(MessageContent::Unsupported {
        type_name: field_name(*first),
    })
}

impl MessageContent {
    /// A plain text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            text: text.into(),
            context: None,
        }
    }

    /// The `type` attribute of the `<message>` stanza carrying this content.
    pub fn stanza_type(&self) -> &'static str {
        match self {
            Self::Media { .. } => "media",
            Self::Reaction { .. } => "reaction",
            Self::Poll { .. } => "poll",
            _ => "text",
        }
    }

    /// The `wa.Message` for this content, for the kinds that can be sent; `None` for
    /// receive-only kinds (protocol, unsupported, edits, media without a key).
    pub fn to_proto(&self) -> Option<wa::Message> {
        let ctx = |c: &Option<ContextInfo>| {
            c.as_ref().map(|c| wa::ContextInfo {
                stanza_id: c.quoted_id.clone(),
                participant: c.quoted_sender.clone(),
                quoted_message: c.quoted_text.as_ref().map(|t| {
                    Box::new(wa::Message {
                        conversation: Some(t.clone()),
                        ..Default::default()
                    })
                }),
                mentioned_jid: c.mentions.clone(),
                is_forwarded: c.forwarded.then_some(true),
                ..Default::default()
            })
        };
        let mut m = wa::Message::default();
        match self {
            Self::Text {
                text,
                context: None,
            } => m.conversation = Some(text.clone()),
            Self::Text { text, context } => {
                m.extended_text_message = Some(Box::new(wa::message::ExtendedTextMessage {
                    text: Some(text.clone()),
                    context_info: ctx(context).map(Box::new),
                    ..Default::default()
                }))
            }
            Self::Reaction {
                target_id,
                target_chat,
                target_from_me,
                emoji,
            } => {
                m.reaction_message = Some(wa::message::ReactionMessage {
                    key: Some(wa::MessageKey {
                        remote_jid: target_chat.clone(),
                        from_me: Some(*target_from_me),
                        id: Some(target_id.clone()),
                        participant: None,
                    }),
                    text: Some(emoji.clone()),
                    grouping_key: None,
                    sender_timestamp_ms: None,
                })
            }
            Self::Location {
                latitude,
                longitude,
                name,
                address,
                live,
            } => {
                m.location_message = Some(Box::new(wa::message::LocationMessage {
                    degrees_latitude: Some(*latitude),
                    degrees_longitude: Some(*longitude),
                    name: name.clone(),
                    address: address.clone(),
                    is_live: live.then_some(true),
                    ..Default::default()
                }))
            }
            Self::Contact {
                display_name,
                vcard,
            } => {
                m.contact_message = Some(Box::new(wa::message::ContactMessage {
                    display_name: Some(display_name.clone()),
                    vcard: Some(vcard.clone()),
                    context_info: None,
                }))
            }
            Self::Revoke { target_id } => {
                m.protocol_message = Some(Box::new(wa::message::ProtocolMessage {
                    key: Some(wa::MessageKey {
                        id: Some(target_id.clone()),
                        from_me: Some(true),
                        ..Default::default()
                    }),
                    r#type: Some(wa::message::protocol_message::Type::Revoke as i32),
                    ..Default::default()
                }))
            }
            _ => return None,
        }
        Some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(m: &wa::Message) -> Vec<u8> {
        m.encode_to_vec()
    }

    #[test]
    fn plain_and_extended_text() {
        let p = parse_message(&enc(&MessageContent::text("hi").to_proto().unwrap())).unwrap();
        assert_eq!(p.content, Some(MessageContent::text("hi")));

        let quoted = MessageContent::Text {
            text: "re".into(),
            context: Some(ContextInfo {
                quoted_id: Some("ABC".into()),
                quoted_sender: Some("1@s.whatsapp.net".into()),
                quoted_text: Some("orig".into()),
                mentions: vec!["2@s.whatsapp.net".into()],
                forwarded: false,
            }),
        };
        let p = parse_message(&enc(&quoted.to_proto().unwrap())).unwrap();
        assert_eq!(p.content, Some(quoted));
    }

    #[test]
    fn wrappers_are_unwrapped_and_dsm_destination_kept() {
        let inner = MessageContent::text("secret").to_proto().unwrap();
        let eph = wa::Message {
            ephemeral_message: Some(Box::new(wa::message::FutureProofMessage {
                message: Some(Box::new(inner)),
            })),
            ..Default::default()
        };
        let dsm = wa::Message {
            device_sent_message: Some(Box::new(wa::message::DeviceSentMessage {
                destination_jid: Some("5@s.whatsapp.net".into()),
                message: Some(Box::new(eph)),
                phash: None,
            })),
            ..Default::default()
        };
        let p = parse_message(&enc(&dsm)).unwrap();
        assert_eq!(p.content, Some(MessageContent::text("secret")));
        assert_eq!(
            p.device_sent_destination.as_deref(),
            Some("5@s.whatsapp.net")
        );
    }

    #[test]
    fn bare_skdm_has_no_content() {
        let m = wa::Message {
            sender_key_distribution_message: Some(wa::message::SenderKeyDistributionMessage {
                group_id: Some("123@g.us".into()),
                axolotl_sender_key_distribution_message: Some(vec![0x33, 1, 2].into()),
            }),
            message_context_info: Some(wa::MessageContextInfo {
                message_secret: None,
            }),
            ..Default::default()
        };
        let p = parse_message(&enc(&m)).unwrap();
        assert_eq!(p.content, None);
        assert_eq!(
            p.sender_key_distribution,
            Some(("123@g.us".into(), vec![0x33, 1, 2]))
        );
    }

    #[test]
    fn unknown_kinds_are_named() {
        // pollUpdateMessage (field 50), not declared in our schema: a length-delimited field.
        let raw = [0x92, 0x03, 0x02, 0x08, 0x01];
        let p = parse_message(&raw).unwrap();
        assert_eq!(
            p.content,
            Some(MessageContent::Unsupported {
                type_name: "pollUpdateMessage".into()
            })
        );
        // A field number we have no name for.
        let raw = [0xFA, 0x3E, 0x00]; // field 1007, empty bytes
        let p = parse_message(&raw).unwrap();
        assert_eq!(
            p.content,
            Some(MessageContent::Unsupported {
                type_name: "field_1007".into()
            })
        );
    }

    #[test]
    fn polls_reactions_revokes_edits() {
        let poll = wa::Message {
            poll_creation_message_v3: Some(Box::new(wa::message::PollCreationMessage {
                name: Some("lunch?".into()),
                options: vec![
                    wa::message::poll_creation_message::Option {
                        option_name: Some("yes".into()),
                        option_hash: None,
                    },
                    wa::message::poll_creation_message::Option {
                        option_name: Some("no".into()),
                        option_hash: None,
                    },
                ],
                selectable_options_count: Some(1),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(
            parse_message(&enc(&poll)).unwrap().content,
            Some(MessageContent::Poll {
                name: "lunch?".into(),
                options: vec!["yes".into(), "no".into()],
                selectable: 1
            })
        );
        let r = MessageContent::Reaction {
            target_id: "X".into(),
            target_chat: Some("1@s.whatsapp.net".into()),
            target_from_me: true,
            emoji: "👍".into(),
        };
        assert_eq!(
            parse_message(&enc(&r.to_proto().unwrap())).unwrap().content,
            Some(r)
        );
        let rv = MessageContent::Revoke {
            target_id: "Y".into(),
        };
        assert_eq!(
            parse_message(&enc(&rv.to_proto().unwrap()))
                .unwrap()
                .content,
            Some(rv)
        );
        let edit = wa::Message {
            protocol_message: Some(Box::new(wa::message::ProtocolMessage {
                key: Some(wa::MessageKey {
                    id: Some("Z".into()),
                    ..Default::default()
                }),
                r#type: Some(wa::message::protocol_message::Type::MessageEdit as i32),
                edited_message: Some(Box::new(MessageContent::text("fixed").to_proto().unwrap())),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(
            parse_message(&enc(&edit)).unwrap().content,
            Some(MessageContent::Edit {
                target_id: "Z".into(),
                new_content: Box::new(MessageContent::text("fixed"))
            })
        );
    }

    #[test]
    fn malformed_protobuf_is_an_error() {
        assert!(parse_message(&[0x0A, 0x05, 0x01]).is_err());
    }
}
