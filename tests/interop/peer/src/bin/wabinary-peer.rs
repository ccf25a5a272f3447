//! WABinary peer for `tests/interop/wabinary.test.mjs`: our encoder and decoder behind a JSON-lines
//! protocol on stdin/stdout, so Baileys can check our bytes and we can read Baileys' bytes.
//!
//! Requests (one JSON object per line), each answered by one line:
//! - `{"op":"encode","node":N}` → `{"hex":H}`: encode the JSON node (attribute values and string
//!   content as strings, the way Baileys takes them);
//! - `{"op":"decode","hex":H}` → `{"node":N}`: decode frame bytes and answer the node in Baileys'
//!   view (JIDs as Baileys prints them); the borrowed decoders (`Tree`, `TreeBuf`) must read the
//!   same node, else this is an error;
//! - `{"op":"reencode","hex":H}` → `{"hex":H2}`: decode to our typed node and encode that again;
//! - any failure → `{"error":"…"}`.
//!
//! JSON node form: `{"tag":T,"attrs":[[k,v],…],"content":null|[N…]|{"str":S}|{"hex":H}|
//! {"fill":{"byte":B,"len":L}}}` (see `tests/interop/wabinary-lib.mjs`).

use std::borrow::Cow;
use std::io::{BufRead, Write};

use serde_json::{Value, json};
use wasmeow_protocol::binary::{self, AttrValue, Content, Jid, Node, Server};

fn main() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(request) => handle(&request).unwrap_or_else(|error| json!({ "error": error })),
            Err(error) => json!({ "error": format!("bad request: {error}") }),
        };
        if writeln!(stdout, "{reply}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
}

fn handle(request: &Value) -> Result<Value, String> {
    match request["op"].as_str() {
        Some("encode") => {
            let node = node_from_json(&request["node"])?;
            let bytes = binary::encode(&node).map_err(|e| e.to_string())?;
            Ok(json!({ "hex": hex::encode(bytes) }))
        }
        Some("decode") => {
            let frame = frame(request)?;
            let node = binary::decode(&frame).map_err(|e| e.to_string())?;
            // The tree decoders (fast path included) must read Baileys' bytes the same way.
            let limits = binary::DecodeLimits::DEFAULT;
            let tree = binary::Tree::decode(&frame, &limits).map_err(|e| e.to_string())?;
            let mut buf = binary::TreeBuf::new();
            let root = buf.decode(&frame, &limits).map_err(|e| e.to_string())?;
            if tree.to_node() != node || root.to_node() != node {
                return Err("Tree / TreeBuf and decode disagree".to_owned());
            }
            Ok(json!({ "node": node_to_json(&node) }))
        }
        Some("reencode") => {
            let node = binary::decode(&frame(request)?).map_err(|e| e.to_string())?;
            let bytes = binary::encode(&node).map_err(|e| e.to_string())?;
            Ok(json!({ "hex": hex::encode(bytes) }))
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

fn frame(request: &Value) -> Result<Vec<u8>, String> {
    let text = request["hex"].as_str().ok_or("missing hex")?;
    hex::decode(text).map_err(|e| format!("bad hex: {e}"))
}

fn str_field<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    v.as_str().ok_or_else(|| format!("{what} is not a string"))
}

fn node_from_json(j: &Value) -> Result<Node, String> {
    let mut node = Node::new(str_field(&j["tag"], "tag")?.to_owned());
    for pair in j["attrs"].as_array().ok_or("attrs is not an array")? {
        let key = str_field(&pair[0], "attribute key")?.to_owned();
        let value = str_field(&pair[1], "attribute value")?.to_owned();
        node.attrs
            .push((Cow::Owned(key), AttrValue::Str(Cow::Owned(value))));
    }
    let c = &j["content"];
    node.content = if c.is_null() {
        Content::None
    } else if let Some(items) = c.as_array() {
        Content::Nodes(items.iter().map(node_from_json).collect::<Result<_, _>>()?)
    } else if let Some(s) = c.get("str") {
        Content::Str(Cow::Owned(str_field(s, "str")?.to_owned()))
    } else if let Some(h) = c.get("hex") {
        Content::Bytes(hex::decode(str_field(h, "hex")?).map_err(|e| e.to_string())?)
    } else if let Some(fill) = c.get("fill") {
        let byte = fill["byte"]
            .as_u64()
            .and_then(|b| u8::try_from(b).ok())
            .ok_or("bad fill byte")?;
        let len = fill["len"]
            .as_u64()
            .and_then(|l| usize::try_from(l).ok())
            .ok_or("bad fill len")?;
        Content::Bytes(vec![byte; len])
    } else {
        return Err(format!("bad content {c}"));
    };
    Ok(node)
}

/// Baileys' string form of a JID (it drops agents and `:0` on AD JIDs).
fn baileys_jid(jid: &Jid) -> String {
    match jid.server() {
        Server::Messenger if jid.is_ad() => format!("{}:{}@msgr", jid.user(), jid.device()),
        Server::Interop if jid.is_ad() => format!(
            "{}-{}:{}@interop",
            jid.integrator(),
            jid.user(),
            jid.device()
        ),
        server if jid.is_ad() && jid.device() != 0 => {
            format!("{}:{}@{server}", jid.user(), jid.device())
        }
        server => format!("{}@{server}", jid.user()),
    }
}

const FILL_MIN: usize = 4096;

fn node_to_json(node: &Node) -> Value {
    let attrs: Vec<Value> = node
        .attrs
        .iter()
        .map(|(k, v)| {
            let value = match v {
                AttrValue::Str(s) => s.to_string(),
                AttrValue::Jid(jid) => baileys_jid(jid),
            };
            json!([k, value])
        })
        .collect();
    let content = match &node.content {
        Content::None => Value::Null,
        Content::Nodes(children) => Value::Array(children.iter().map(node_to_json).collect()),
        Content::Str(s) => json!({ "str": s }),
        Content::Jid(jid) => json!({ "str": baileys_jid(jid) }),
        Content::Bytes(b) if b.len() >= FILL_MIN && b.iter().all(|x| *x == b[0]) => {
            json!({ "fill": { "byte": b[0], "len": b.len() } })
        }
        Content::Bytes(b) => json!({ "hex": hex::encode(b) }),
    };
    json!({ "tag": node.tag, "attrs": attrs, "content": content })
}
