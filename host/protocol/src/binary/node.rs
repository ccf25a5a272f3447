//! The binary XML node tree: [`Node`], [`AttrValue`], [`Content`], builders, getters and an
//! XML-ish [`Display`](fmt::Display) for logs.
//!
//! Contract: a `Node` is plain data. Attributes keep insertion order (the wire order), so a
//! decoded node re-encodes to the same bytes. Strings that come from the token dictionaries are
//! `Cow::Borrowed(&'static str)`, so decoding the common tags and attribute names allocates
//! nothing. Equality compares contents, not how a string is stored.

use std::borrow::Cow;
use std::fmt;

use super::jid::Jid;

/// A node: `<tag attr="value"…>content</tag>`.
///
/// ```
/// use wasmeow_protocol::binary::{Jid, Node};
///
/// let iq = Node::new("iq")
///     .attr("id", "1")
///     .attr("to", Jid::parse("@s.whatsapp.net")?)
///     .attr("type", "get")
///     .attr("xmlns", "w:p")
///     .children([Node::new("ping")]);
/// assert_eq!(iq.attr_str("type"), Some("get"));
/// assert!(iq.child_by_tag("ping").is_some());
/// assert_eq!(iq.to_string(), r#"<iq id="1" to="@s.whatsapp.net" type="get" xmlns="w:p"><ping/></iq>"#);
/// # Ok::<(), wasmeow_protocol::binary::JidError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// The tag (description). Never empty on the wire.
    pub tag: Cow<'static, str>,
    /// Attributes in wire order. Keys are unique when built with [`Node::attr`].
    pub attrs: Vec<(Cow<'static, str>, AttrValue)>,
    /// The content.
    pub content: Content,
}

/// An attribute value: a string or a JID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttrValue {
    /// A string. Written, in this order of precedence, as a dictionary token, a nibble- or
    /// hex-packed string, a JID (if it is a valid one) or raw UTF-8.
    Str(Cow<'static, str>),
    /// A JID.
    Jid(Jid),
}

/// What a node contains.
///
/// The decoder follows the reference (Baileys) reading: raw `BINARY_*` content is
/// [`Content::Bytes`], a dictionary word or packed string is [`Content::Str`], a JID is
/// [`Content::Jid`], a list (also an empty one) is [`Content::Nodes`]. When encoding,
/// `Content::Str` goes through the same string precedence as attribute values, so a `Str` that is
/// no token, packed string or JID is written raw and reads back as `Bytes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Content {
    /// No content (`<tag/>`).
    #[default]
    None,
    /// Child nodes (possibly an empty list, which is written and read as `LIST_EMPTY`).
    Nodes(Vec<Node>),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A string.
    Str(Cow<'static, str>),
    /// A JID.
    Jid(Jid),
}

impl Node {
    /// A node with this tag, no attributes and no content.
    pub fn new(tag: impl Into<Cow<'static, str>>) -> Self {
        Self {
            tag: tag.into(),
            attrs: Vec::new(),
            content: Content::None,
        }
    }

    /// Sets an attribute (builder form of [`Node::set_attr`]).
    #[must_use]
    pub fn attr(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<AttrValue>) -> Self {
        self.set_attr(key, value);
        self
    }

    /// Sets the content to these children.
    #[must_use]
    pub fn children(mut self, children: impl IntoIterator<Item = Node>) -> Self {
        self.content = Content::Nodes(children.into_iter().collect());
        self
    }

    /// Appends one child (turning any non-list content into a list).
    #[must_use]
    pub fn child(mut self, child: Node) -> Self {
        self.push_child(child);
        self
    }

    /// Sets the content to raw bytes.
    #[must_use]
    pub fn bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.content = Content::Bytes(bytes.into());
        self
    }

    /// Sets the content to a string.
    #[must_use]
    pub fn text(mut self, text: impl Into<Cow<'static, str>>) -> Self {
        self.content = Content::Str(text.into());
        self
    }

    /// Sets the content.
    #[must_use]
    pub fn content(mut self, content: Content) -> Self {
        self.content = content;
        self
    }

    /// Sets an attribute: replaces the value in place if the key exists, else appends.
    pub fn set_attr(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<AttrValue>) {
        let key = key.into();
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => self.attrs.push((key, value)),
        }
    }

    /// Removes an attribute, returning its value.
    pub fn remove_attr(&mut self, key: &str) -> Option<AttrValue> {
        let index = self.attrs.iter().position(|(k, _)| k == key)?;
        Some(self.attrs.remove(index).1)
    }

    /// Appends one child, turning any non-list content into a list.
    pub fn push_child(&mut self, child: Node) {
        match &mut self.content {
            Content::Nodes(children) => children.push(child),
            other => *other = Content::Nodes(vec![child]),
        }
    }

    /// The value of attribute `key`.
    pub fn attr_value(&self, key: &str) -> Option<&AttrValue> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of attribute `key` if it is a string (not a JID).
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        match self.attr_value(key)? {
            AttrValue::Str(s) => Some(s),
            AttrValue::Jid(_) => None,
        }
    }

    /// The value of attribute `key` if it is a JID.
    pub fn attr_jid(&self, key: &str) -> Option<&Jid> {
        match self.attr_value(key)? {
            AttrValue::Jid(jid) => Some(jid),
            AttrValue::Str(_) => None,
        }
    }

    /// The children (empty unless the content is a list).
    pub fn child_nodes(&self) -> &[Node] {
        match &self.content {
            Content::Nodes(children) => children,
            _ => &[],
        }
    }

    /// The first child with this tag.
    pub fn child_by_tag(&self, tag: &str) -> Option<&Node> {
        self.child_nodes().iter().find(|c| c.tag == tag)
    }

    /// All children with this tag.
    pub fn children_by_tag<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.child_nodes().iter().filter(move |c| c.tag == tag)
    }

    /// Follows a path of tags (`["participants", "to", "enc"]`), taking the first match each step.
    pub fn child_by_path(&self, path: &[&str]) -> Option<&Node> {
        path.iter()
            .try_fold(self, |node, tag| node.child_by_tag(tag))
    }

    /// The content if it is raw bytes.
    pub fn content_bytes(&self) -> Option<&[u8]> {
        match &self.content {
            Content::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The content if it is a string.
    pub fn content_str(&self) -> Option<&str> {
        match &self.content {
            Content::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl AttrValue {
    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            Self::Jid(_) => None,
        }
    }

    /// The JID, if this is a JID.
    pub fn as_jid(&self) -> Option<&Jid> {
        match self {
            Self::Jid(jid) => Some(jid),
            Self::Str(_) => None,
        }
    }
}

impl From<&'static str> for AttrValue {
    fn from(s: &'static str) -> Self {
        Self::Str(Cow::Borrowed(s))
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        Self::Str(Cow::Owned(s))
    }
}

impl From<Cow<'static, str>> for AttrValue {
    fn from(s: Cow<'static, str>) -> Self {
        Self::Str(s)
    }
}

impl From<Jid> for AttrValue {
    fn from(jid: Jid) -> Self {
        Self::Jid(jid)
    }
}

impl From<&Jid> for AttrValue {
    fn from(jid: &Jid) -> Self {
        Self::Jid(jid.clone())
    }
}

/// Integers are written as decimal strings, as every WhatsApp peer does.
macro_rules! attr_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for AttrValue {
            fn from(n: $t) -> Self {
                Self::Str(Cow::Owned(n.to_string()))
            }
        }
    )*};
}
attr_from_int!(u8, u16, u32, u64, usize, i32, i64);

/// Booleans are written `"true"` / `"false"`.
impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        Self::Str(Cow::Borrowed(if b { "true" } else { "false" }))
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => f.write_str(s),
            Self::Jid(jid) => jid.fmt(f),
        }
    }
}

impl From<Vec<Node>> for Content {
    fn from(nodes: Vec<Node>) -> Self {
        Self::Nodes(nodes)
    }
}

impl From<Vec<u8>> for Content {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Bytes(bytes)
    }
}

/// Bytes longer than this are elided in the compact (`{}`) rendering.
const DISPLAY_BYTES: usize = 32;

/// XML-ish rendering for logs. `{}` is one line, with raw content longer than 32 bytes elided;
/// `{:#}` indents children and prints all bytes. Raw content that is printable UTF-8 is shown as
/// text, anything else as `<!-- N bytes: hex -->`.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f, if f.alternate() { Some(0) } else { None })
    }
}

impl Node {
    fn render(&self, f: &mut fmt::Formatter<'_>, indent: Option<usize>) -> fmt::Result {
        if let Some(level) = indent {
            write!(f, "{:width$}", "", width = 2 * level)?;
        }
        write!(f, "<{}", self.tag)?;
        for (key, value) in &self.attrs {
            write!(f, " {key}=\"")?;
            match value {
                AttrValue::Str(s) => write_escaped(f, s)?,
                AttrValue::Jid(jid) => write!(f, "{jid}")?,
            }
            f.write_str("\"")?;
        }
        match &self.content {
            Content::None => return f.write_str("/>"),
            Content::Nodes(children) if children.is_empty() => f.write_str("></")?,
            Content::Nodes(children) => {
                f.write_str(">")?;
                for child in children {
                    if indent.is_some() {
                        f.write_str("\n")?;
                    }
                    child.render(f, indent.map(|level| level + 1))?;
                }
                if let Some(level) = indent {
                    write!(f, "\n{:width$}", "", width = 2 * level)?;
                }
                f.write_str("</")?;
            }
            Content::Str(s) => {
                f.write_str(">")?;
                write_escaped(f, s)?;
                f.write_str("</")?;
            }
            Content::Jid(jid) => write!(f, ">{jid}</")?,
            Content::Bytes(bytes) => {
                f.write_str(">")?;
                match std::str::from_utf8(bytes) {
                    Ok(text) if !text.chars().any(char::is_control) => write_escaped(f, text)?,
                    _ => {
                        let shown = if indent.is_some() {
                            bytes.len()
                        } else {
                            bytes.len().min(DISPLAY_BYTES)
                        };
                        write!(f, "<!-- {} bytes: ", bytes.len())?;
                        for b in &bytes[..shown] {
                            write!(f, "{b:02x}")?;
                        }
                        if shown < bytes.len() {
                            f.write_str("…")?;
                        }
                        f.write_str(" -->")?;
                    }
                }
                f.write_str("</")?;
            }
        }
        write!(f, "{}>", self.tag)
    }
}

fn write_escaped(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    let mut rest = s;
    while let Some(pos) = rest.find(['<', '>', '&', '"']) {
        f.write_str(&rest[..pos])?;
        f.write_str(match rest.as_bytes()[pos] {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'&' => "&amp;",
            _ => "&quot;",
        })?;
        rest = &rest[pos + 1..];
    }
    f.write_str(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_and_getters() {
        let jid = Jid::parse("123:4@s.whatsapp.net").unwrap();
        let mut node = Node::new("message")
            .attr("id", "ABC")
            .attr("to", &jid)
            .attr("t", 1_700_000_000u64)
            .attr("offline", false)
            .child(Node::new("enc").attr("v", 2u8).bytes(vec![1, 2, 3]))
            .child(Node::new("enc").attr("v", "3"));
        assert_eq!(node.attr_str("id"), Some("ABC"));
        assert_eq!(node.attr_str("to"), None, "a JID is not a string");
        assert_eq!(node.attr_jid("to"), Some(&jid));
        assert_eq!(node.attr_str("t"), Some("1700000000"));
        assert_eq!(node.attr_str("offline"), Some("false"));
        assert_eq!(node.child_nodes().len(), 2);
        assert_eq!(node.children_by_tag("enc").count(), 2);
        assert_eq!(
            node.child_by_tag("enc").and_then(Node::content_bytes),
            Some(&[1u8, 2, 3][..])
        );
        assert!(node.child_by_tag("nope").is_none());

        node.set_attr("id", "XYZ");
        assert_eq!(
            node.attrs[0],
            (Cow::Borrowed("id"), AttrValue::from("XYZ")),
            "replaced in place"
        );
        assert_eq!(node.remove_attr("t"), Some(AttrValue::from("1700000000")));
        assert_eq!(node.attrs.len(), 3);
    }

    #[test]
    fn child_by_path() {
        let node = Node::new("a").children([Node::new("b").children([Node::new("c").text("x")])]);
        assert_eq!(
            node.child_by_path(&["b", "c"]).and_then(Node::content_str),
            Some("x")
        );
        assert!(node.child_by_path(&["b", "d"]).is_none());
        assert_eq!(node.child_by_path(&[]), Some(&node));
    }

    #[test]
    fn display_compact_and_pretty() {
        let node = Node::new("iq").attr("id", "a\"<b").children([
            Node::new("ping"),
            Node::new("raw").bytes(vec![0u8; 40]),
            Node::new("t").bytes(*b"hi"),
        ]);
        let compact = node.to_string();
        assert_eq!(
            compact,
            format!(
                "<iq id=\"a&quot;&lt;b\"><ping/><raw><!-- 40 bytes: {}… --></raw><t>hi</t></iq>",
                "00".repeat(32)
            )
        );
        let pretty = format!("{node:#}");
        assert!(pretty.contains("\n  <ping/>\n"), "{pretty}");
        assert!(pretty.contains(&"00".repeat(40)), "{pretty}");
        assert_eq!(Node::new("x").children([]).to_string(), "<x></x>");
    }

    #[test]
    fn equality_ignores_storage() {
        let a = Node::new("iq").attr("type", "get");
        let b = Node::new(String::from("iq")).attr(String::from("type"), String::from("get"));
        assert_eq!(a, b);
    }
}
