//! Cross-check of our WABinary codec against Baileys' (`@whiskeysockets/baileys@7.0.0-rc14`).
//!
//! `testdata/wabinary-corpus.json` was written by `tests/interop/wabinary-corpus.mjs` with
//! Baileys' own `encodeBinaryNode` / `decodeBinaryNode`. For every entry:
//! 1. our decoder reads the frame bytes as the same node Baileys read (compared in Baileys'
//!    string view of JIDs);
//! 2. our encoder re-encodes our decoded node to exactly the same bytes;
//! 3. our encoder, given Baileys' input node (string attribute values, string/byte content),
//!    writes exactly Baileys' bytes.
//!
//! The reverse direction (Baileys decoding our bytes) is `tests/interop/wabinary.test.mjs`.

use std::borrow::Cow;

use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmeow_protocol::binary::{self, AttrValue, Content, Jid, Node, Server};

/// A node as Baileys sees it: attributes and string content are strings, raw content is bytes.
#[derive(Debug, PartialEq)]
struct View {
    tag: String,
    attrs: Vec<(String, String)>,
    content: ViewContent,
}

#[derive(Debug, PartialEq)]
enum ViewContent {
    None,
    Nodes(Vec<View>),
    Str(String),
    Bytes(Vec<u8>),
}

fn json_bytes(c: &Value) -> Option<Vec<u8>> {
    if let Some(hex) = c.get("hex") {
        return Some(hex::decode(hex.as_str().unwrap()).unwrap());
    }
    let fill = c.get("fill")?;
    let byte = u8::try_from(fill["byte"].as_u64().unwrap()).unwrap();
    Some(vec![
        byte;
        usize::try_from(fill["len"].as_u64().unwrap()).unwrap()
    ])
}

fn view_from_json(j: &Value) -> View {
    let attrs = j["attrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let c = &j["content"];
    let content = if c.is_null() {
        ViewContent::None
    } else if let Some(items) = c.as_array() {
        ViewContent::Nodes(items.iter().map(view_from_json).collect())
    } else if let Some(s) = c.get("str") {
        ViewContent::Str(s.as_str().unwrap().to_owned())
    } else {
        ViewContent::Bytes(json_bytes(c).unwrap())
    };
    View {
        tag: j["tag"].as_str().unwrap().to_owned(),
        attrs,
        content,
    }
}

/// Baileys' string form of a JID: it drops the agent and a device of 0 on AD JIDs, and prints
/// `integrator-user:device@interop` / `user:device@msgr` for the decode-only forms.
fn baileys_jid(jid: &Jid) -> String {
    match jid.server() {
        Server::Messenger if jid.is_ad() => format!("{}:{}@msgr", jid.user(), jid.device()),
        Server::Interop if jid.is_ad() => {
            format!(
                "{}-{}:{}@interop",
                jid.integrator(),
                jid.user(),
                jid.device()
            )
        }
        server if jid.is_ad() && jid.device() != 0 => {
            format!("{}:{}@{server}", jid.user(), jid.device())
        }
        server => format!("{}@{server}", jid.user()),
    }
}

fn view_of(node: &Node) -> View {
    let attrs = node
        .attrs
        .iter()
        .map(|(k, v)| {
            let value = match v {
                AttrValue::Str(s) => s.to_string(),
                AttrValue::Jid(jid) => baileys_jid(jid),
            };
            (k.to_string(), value)
        })
        .collect();
    let content = match &node.content {
        Content::None => ViewContent::None,
        Content::Nodes(children) => ViewContent::Nodes(children.iter().map(view_of).collect()),
        Content::Bytes(bytes) => ViewContent::Bytes(bytes.clone()),
        Content::Str(s) => ViewContent::Str(s.to_string()),
        Content::Jid(jid) => ViewContent::Str(baileys_jid(jid)),
    };
    View {
        tag: node.tag.to_string(),
        attrs,
        content,
    }
}

/// Baileys' input node as ours: every attribute value a string, string content as `Str`.
fn node_from_json(j: &Value) -> Node {
    let mut node = Node::new(j["tag"].as_str().unwrap().to_owned());
    for pair in j["attrs"].as_array().unwrap() {
        let key = pair[0].as_str().unwrap().to_owned();
        node.attrs.push((
            Cow::Owned(key),
            AttrValue::Str(Cow::Owned(pair[1].as_str().unwrap().to_owned())),
        ));
    }
    let c = &j["content"];
    node.content = if c.is_null() {
        Content::None
    } else if let Some(items) = c.as_array() {
        Content::Nodes(items.iter().map(node_from_json).collect())
    } else if let Some(s) = c.get("str") {
        Content::Str(Cow::Owned(s.as_str().unwrap().to_owned()))
    } else {
        Content::Bytes(json_bytes(c).unwrap())
    };
    node
}

/// The frame an entry describes: hex, or (for large frames) our encoding checked by sha256.
fn expected_frame(fields: &Value, ours: &[u8], name: &str) -> Vec<u8> {
    if let Some(hex) = fields.get("hex") {
        return hex::decode(hex.as_str().unwrap()).unwrap();
    }
    let len = usize::try_from(fields["len"].as_u64().unwrap()).unwrap();
    assert_eq!(ours.len(), len, "{name}: frame length");
    assert_eq!(
        hex::encode(Sha256::digest(ours)),
        fields["sha256"].as_str().unwrap(),
        "{name}: frame sha256"
    );
    ours.to_vec()
}

fn corpus() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/wabinary-corpus.json");
    let text = std::fs::read_to_string(path)
        .expect("testdata/wabinary-corpus.json (run tests/interop/wabinary-corpus.mjs)");
    let corpus: Value = serde_json::from_str(&text).unwrap();
    corpus["entries"].as_array().unwrap().clone()
}

#[test]
fn corpus_is_broad() {
    let entries = corpus();
    assert!(entries.len() >= 200, "{} entries", entries.len());
    // Entries are named by what they exercise; make sure every kind is still there.
    let kinds = [
        "ref-iq-result",
        "ref-ping",
        "single-tokens-1",
        "single-tokens-233",
        "double-dict0-0",
        "double-dict1-224",
        "double-dict2-0",
        "double-dict3-224",
        "nibble-len-1",
        "nibble-len-127",
        "nibble-len-128",
        "hex-len-127",
        "hex-len-128",
        "hex-lower-is-raw",
        "raw-empty",
        "raw-unicode",
        "raw-255",
        "raw-256",
        "bytes-0",
        "bytes-255",
        "bytes-256",
        "bytes-1048575",
        "bytes-1048576",
        "jids-0",
        "jid-content-123456789012345:3@lid",
        "jid-content-15551234567:7@hosted",
        "jid-content-123456789012345:9@hosted.lid",
        "fb-jid",
        "interop-jid",
        "ad-jid-agent",
        "compressed-small",
        "compressed-big",
        "list-empty",
        "list-255",
        "list-256",
        "attrs-128",
        "nested-20",
        "stanza-message",
        "random-0",
    ];
    for name in kinds {
        assert!(entries.iter().any(|e| e["name"] == name), "missing {name}");
    }
}

#[test]
fn our_decoder_reads_what_baileys_read_and_our_encoder_writes_the_same_bytes() {
    let mut checked = 0;
    for entry in corpus() {
        let name = entry["name"].as_str().unwrap();
        let input = entry
            .get("node")
            .filter(|n| !n.is_null())
            .map(node_from_json);
        let compressed = entry.get("plain").is_some();

        // Frame bytes (for large frames, reconstructed from the input node and checked by hash).
        let ours_from_input = input
            .as_ref()
            .map(|n| binary::encode(n).unwrap_or_else(|e| panic!("{name}: {e}")));
        let frame = expected_frame(&entry, ours_from_input.as_deref().unwrap_or_default(), name);

        // 1. Decode like Baileys.
        let decoded =
            binary::decode(&frame).unwrap_or_else(|e| panic!("{name}: decode failed: {e}"));
        assert_eq!(
            view_of(&decoded),
            view_from_json(&entry["decoded"]),
            "{name}: decoded node"
        );

        // 2. Re-encode byte for byte (compressed frames: the uncompressed plaintext).
        let plain = if compressed {
            expected_frame(&entry["plain"], ours_from_input.as_deref().unwrap(), name)
        } else {
            frame.clone()
        };
        let reencoded = binary::encode(&decoded).unwrap();
        assert!(
            reencoded == plain,
            "{name}: re-encoding differs\n ours: {}\n want: {}",
            hex::encode(&reencoded),
            hex::encode(&plain)
        );

        // 3. Encode Baileys' input exactly as Baileys did.
        if let Some(ours) = ours_from_input {
            assert!(
                ours == plain,
                "{name}: encoding differs\n ours: {}\n want: {}",
                hex::encode(&ours),
                hex::encode(&plain)
            );
        }
        checked += 1;
    }
    assert!(checked >= 200);
}

#[test]
fn bench_stanza_matches_baileys() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/wabinary-bench-stanza.json"
    );
    let stanza: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let bytes = hex::decode(stanza["hex"].as_str().unwrap()).unwrap();
    assert_eq!(bytes.len(), 213);
    assert_eq!(
        binary::encode(&node_from_json(&stanza["node"])).unwrap(),
        bytes
    );
    let decoded = binary::decode(&bytes).unwrap();
    assert_eq!(binary::encode(&decoded).unwrap(), bytes);
}
