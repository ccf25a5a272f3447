//! Property tests for the WABinary codec: random nodes round-trip through encode → decode, and
//! random or mutated bytes never make the decoder panic (and whatever decodes re-encodes to a
//! stable fixpoint, via the same check the fuzz target runs).

use std::borrow::Cow;

use proptest::prelude::*;
use wasmeow_protocol::binary::{self, AttrValue, Content, Jid, Node, Server};

/// A few dictionary words (single- and double-byte) so tokens are common in generated nodes.
const WORDS: &[&str] = &[
    "iq",
    "message",
    "type",
    "id",
    "to",
    "from",
    "participant",
    "enc",
    "v",
    "jid",
    "xmlns",
    "receipt",
    "notification",
    "ack",
    "class",
    "t",
    "s.whatsapp.net",
    "g.us",
    "lid",
    "read-self",
    "reject",
    "profile_picture",
    "ptt_playback_speed_enabled",
    "pkmsg",
    "msg",
    "skmsg",
    "result",
    "get",
    "set",
    "0",
    "1",
    "12",
    "true",
    "false",
];

fn name() -> impl Strategy<Value = Cow<'static, str>> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(Cow::Borrowed),
        2 => "[a-zA-Z_:-]{1,12}".prop_map(Cow::Owned),
        1 => "[0-9.-]{1,8}".prop_map(Cow::Owned),
        1 => "[0-9A-F]{1,8}".prop_map(Cow::Owned),
        1 => "[^@]{1,20}".prop_map(Cow::Owned),
    ]
}

/// Strings that read back as strings: anything without `@` (so never a JID).
fn string() -> impl Strategy<Value = Cow<'static, str>> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(Cow::Borrowed),
        2 => "[0-9.-]{1,130}".prop_map(Cow::Owned),
        2 => "[0-9A-F]{1,130}".prop_map(Cow::Owned),
        3 => "[^@]{0,40}".prop_map(Cow::Owned),
        1 => "[a-z]{250,300}".prop_map(Cow::Owned),
    ]
}

/// Strings that are written as tokens or packed strings, so they read back as `Content::Str`.
fn content_string() -> impl Strategy<Value = Cow<'static, str>> {
    prop_oneof![
        prop::sample::select(WORDS).prop_map(Cow::Borrowed),
        "[0-9.-]{1,127}".prop_map(Cow::Owned),
        "[0-9A-F]{1,127}".prop_map(Cow::Owned),
    ]
}

fn jid() -> impl Strategy<Value = Jid> {
    let user = prop_oneof![
        "[1-9][0-9]{5,15}",
        "[a-z][a-z0-9]{0,10}",
        Just(String::new())
    ];
    let server = prop_oneof![
        prop::sample::select(Server::KNOWN.to_vec()),
        Just(Server::parse("call").unwrap()),
        Just(Server::parse("temp.example").unwrap()),
    ];
    (
        user,
        server,
        any::<bool>(),
        any::<u16>(),
        any::<u8>(),
        any::<u16>(),
    )
        .prop_map(|(user, server, with_device, device, agent, integrator)| {
            let base = Jid::new(user, server.clone()).expect("generated users are valid");
            let Some(max) = server
                .max_device()
                .filter(|_| with_device && !base.user().is_empty())
            else {
                return base;
            };
            let device = u32::from(device) % (u32::from(max) + 1);
            let jid = base
                .with_device(u16::try_from(device).unwrap())
                .expect("device reduced into range");
            match server {
                Server::WhatsApp if agent > 1 && agent < 128 => {
                    jid.clone().with_agent(agent).unwrap_or(jid)
                }
                Server::Interop => jid.with_integrator(integrator).unwrap(),
                _ => jid,
            }
        })
}

fn attr_value() -> impl Strategy<Value = AttrValue> {
    prop_oneof![3 => string().prop_map(AttrValue::Str), 1 => jid().prop_map(AttrValue::Jid)]
}

fn leaf_content() -> impl Strategy<Value = Content> {
    prop_oneof![
        2 => Just(Content::None),
        2 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Content::Bytes),
        1 => content_string().prop_map(Content::Str),
        1 => jid().prop_map(Content::Jid),
        1 => Just(Content::Nodes(Vec::new())),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = (
        name(),
        prop::collection::vec((name(), attr_value()), 0..5),
        leaf_content(),
    )
        .prop_map(|(tag, attrs, content)| Node {
            tag,
            attrs,
            content,
        });
    leaf.prop_recursive(5, 64, 6, |inner| {
        (
            name(),
            prop::collection::vec((name(), attr_value()), 0..5),
            prop::collection::vec(inner, 0..6),
        )
            .prop_map(|(tag, attrs, children)| Node {
                tag,
                attrs,
                content: Content::Nodes(children),
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_nodes_round_trip(node in node()) {
        let bytes = binary::encode(&node).unwrap();
        let decoded = binary::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &node);
        prop_assert_eq!(&binary::encode(&decoded).unwrap(), &bytes);
        // The borrowed views agree with the owned node, and the fixpoint holds.
        binary::fuzzing::node_decode(&bytes);
    }

    #[test]
    fn jids_print_and_parse_back(jid in jid()) {
        prop_assert_eq!(Jid::parse(&jid.to_string()).unwrap(), jid.clone());
        // Written as a string attribute, a JID encodes exactly like the typed JID.
        let as_str = binary::encode(&Node::new("a").attr("k", jid.to_string())).unwrap();
        let typed = binary::encode(&Node::new("a").attr("k", jid)).unwrap();
        prop_assert_eq!(as_str, typed);
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..512), flags in any::<u8>()) {
        bytes.insert(0, flags & !binary::FLAG_COMPRESSED);
        let _ = binary::decode(&bytes);
        binary::fuzzing::node_decode(&bytes[1..]);
    }

    #[test]
    fn mutated_encodings_never_panic(
        node in node(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = binary::encode(&node).unwrap();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        bytes.truncate(1 + cut.index(bytes.len()));
        if let Ok(decoded) = binary::decode(&bytes) {
            let again = binary::decode(&binary::encode(&decoded).unwrap()).unwrap();
            prop_assert_eq!(again, decoded);
        }
        binary::fuzzing::node_decode(&bytes[1..]);
    }
}
