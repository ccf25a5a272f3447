//! Small helpers for building and reading stanzas (binary nodes) the way the session needs
//! them: IQ envelopes, IQ error parsing, attribute access that accepts a JID written either
//! as a JID or as a string.
//!
//! Contract: pure functions; reading never panics on a malformed node, it returns `None` or a
//! typed error.

use wasmeow_protocol::binary::{AttrValue, Content, Jid, Node, Server};

/// An IQ stanza without id (the session assigns one when sending).
pub fn iq(xmlns: &'static str, kind: &'static str, to: Jid) -> Node {
    Node::new("iq")
        .attr("xmlns", xmlns)
        .attr("type", kind)
        .attr("to", to)
}

/// `@s.whatsapp.net`.
pub fn server() -> Jid {
    Jid::server_jid(Server::WhatsApp)
}

/// `@g.us`.
pub fn group_server() -> Jid {
    Jid::server_jid(Server::Group)
}

/// An attribute as a JID, whether the peer encoded it as a JID or as a string.
pub fn jid_attr(node: &Node, key: &str) -> Option<Jid> {
    match node.attr_value(key)? {
        AttrValue::Jid(j) => Some(j.clone()),
        AttrValue::Str(s) => s.parse().ok(),
    }
}

/// An attribute as a string (a JID attribute is printed).
pub fn str_attr(node: &Node, key: &str) -> Option<String> {
    match node.attr_value(key)? {
        AttrValue::Str(s) => Some(s.to_string()),
        AttrValue::Jid(j) => Some(j.to_string()),
    }
}

/// An attribute parsed as an unsigned number.
pub fn u64_attr(node: &Node, key: &str) -> Option<u64> {
    node.attr_str(key)?.parse().ok()
}

/// Content as UTF-8 text, whether encoded as a string or raw bytes.
pub fn text_content(node: &Node) -> Option<String> {
    match &node.content {
        Content::Str(s) => Some(s.to_string()),
        Content::Bytes(b) => String::from_utf8(b.clone()).ok(),
        Content::Jid(j) => Some(j.to_string()),
        _ => None,
    }
}

/// An `<iq type="error">` answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server error {code}: {text}")]
pub struct IqErrorNode {
    /// The numeric code (0 if absent or unparsable).
    pub code: u32,
    /// The text.
    pub text: String,
}

/// `Err` with the `<error code text>` if `node` is an `iq type="error"`.
pub fn check_iq(node: Node) -> Result<Node, IqErrorNode> {
    if node.attr_str("type") == Some("error") {
        let e = node.child_by_tag("error");
        return Err(IqErrorNode {
            code: e.and_then(|e| u64_attr(e, "code")).unwrap_or(0) as u32,
            text: e
                .and_then(|e| e.attr_str("text"))
                .unwrap_or_default()
                .to_owned(),
        });
    }
    Ok(node)
}

/// `<ack class id to [participant] [type]/>` for a received stanza.
pub fn ack_for(node: &Node, error: Option<u32>) -> Node {
    let mut ack = Node::new("ack").attr("class", node.tag.to_string());
    if let Some(id) = node.attr_value("id") {
        ack.set_attr("id", id.clone());
    }
    if let Some(from) = node.attr_value("from") {
        ack.set_attr("to", from.clone());
    }
    if let Some(p) = node.attr_value("participant") {
        ack.set_attr("participant", p.clone());
    }
    if node.tag != "message"
        && let Some(t) = node.attr_value("type")
    {
        ack.set_attr("type", t.clone());
    }
    if let Some(code) = error {
        ack.set_attr("error", code.to_string());
    }
    ack
}
