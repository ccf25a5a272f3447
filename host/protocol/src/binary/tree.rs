//! A decoded frame as a flat, validated arena ([`Tree`]) with borrowed views ([`NodeRef`],
//! [`ValueRef`], [`JidRef`]) — the zero-copy way to read a node.
//!
//! Contract: a `Tree` only exists if the whole frame decoded without error (the decoder in
//! `decode.rs` validates everything while building it), so every view accessor is infallible.
//! Strings are either dictionary words (`&'static str`), UTF-8 slices of the input, or slices of
//! one buffer holding all unpacked (nibble/hex) strings; byte content is a slice of the input.
//! Building a tree costs three allocations (nodes, attributes, unpacked text) however large the
//! frame is; [`NodeRef::to_node`] converts to the owned [`Node`] when a caller wants to keep it.

use std::borrow::Cow;
use std::fmt;

use super::jid::{Jid, KNOWN_SERVERS, Server};
use super::node::{AttrValue, Content, Node};
use super::token::{self, WordCode};

/// A decoded frame. Get the root with [`Tree::root`].
///
/// ```
/// use wasmeow_protocol::binary::{self, DecodeLimits, Tree, ValueRef};
///
/// let frame = hex_literal(b"00f80a19085511fa000304291657f801f80156");
/// let tree = Tree::decode(&frame, &DecodeLimits::DEFAULT)?;
/// let iq = tree.root();
/// assert_eq!(iq.tag(), "iq");
/// assert_eq!(iq.attr_str("type"), Some("get"));
/// assert!(matches!(iq.attr("to"), Some(ValueRef::Jid(jid)) if jid.is_server_jid()));
/// assert_eq!(iq.children().map(|c| c.tag()).collect::<Vec<_>>(), ["ping"]);
/// assert_eq!(iq.to_node(), binary::decode(&frame)?);
/// # fn hex_literal(h: &[u8]) -> Vec<u8> {
/// #     h.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
/// # }
/// # Ok::<(), binary::DecodeError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Tree<'a> {
    pub(super) input: Cow<'a, [u8]>,
    pub(super) text: String,
    pub(super) nodes: Vec<NodeRec>,
    pub(super) attrs: Vec<AttrRec>,
    /// Servers that are not in [`Server::KNOWN`] (rare), referenced by [`ServerRec::Other`].
    pub(super) others: Vec<Server>,
}

/// Where a string lives.
#[derive(Clone, Copy, Debug)]
pub(super) enum StrRef {
    /// A dictionary word (see [`token::by_code`]).
    Word(WordCode),
    /// UTF-8 (checked) bytes of the input.
    Input { start: u32, len: u32 },
    /// A slice of [`Tree::text`].
    Text { start: u32, len: u32 },
}

/// A JID's server: an index into [`KNOWN_SERVERS`] or into [`Tree::others`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ServerRec {
    Known(u8),
    Other(u32),
}

#[derive(Clone, Copy, Debug)]
pub(super) struct JidRec {
    pub(super) user: StrRef,
    pub(super) server: ServerRec,
    pub(super) agent: u8,
    pub(super) device: Option<u16>,
    pub(super) integrator: u16,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum ValueRec {
    Str(StrRef),
    Jid(JidRec),
}

#[derive(Clone, Copy, Debug)]
pub(super) struct AttrRec {
    pub(super) key: StrRef,
    pub(super) value: ValueRec,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum ContentRec {
    None,
    /// Children at `nodes[start..start + len]`.
    Nodes {
        start: u32,
        len: u32,
    },
    /// Input bytes at `start..start + len`.
    Bytes {
        start: u32,
        len: u32,
    },
    Str(StrRef),
    Jid(JidRec),
}

#[derive(Clone, Copy, Debug)]
pub(super) struct NodeRec {
    pub(super) tag: StrRef,
    pub(super) attrs_start: u32,
    pub(super) attrs_len: u32,
    pub(super) content: ContentRec,
}

impl NodeRec {
    /// A slot reserved for a child that is about to be read.
    pub(super) const PLACEHOLDER: Self = Self {
        tag: StrRef::Word(0),
        attrs_start: 0,
        attrs_len: 0,
        content: ContentRec::None,
    };
}

impl<'a> Tree<'a> {
    /// The root node.
    pub fn root(&self) -> NodeRef<'_> {
        NodeRef {
            tree: self,
            rec: &self.nodes[0],
        }
    }

    /// Converts the whole tree to an owned [`Node`].
    pub fn to_node(&self) -> Node {
        self.root().to_node()
    }

    #[inline]
    fn str(&self, s: StrRef) -> &str {
        match s {
            StrRef::Word(code) => token::by_code(code),
            StrRef::Input { start, len } => {
                let bytes = &self.input[start as usize..(start + len) as usize];
                // Checked by the decoder before the reference was stored; re-checking here keeps
                // the crate free of `unsafe` (an invalid slice would read as "", never happen).
                std::str::from_utf8(bytes).unwrap_or_default()
            }
            StrRef::Text { start, len } => &self.text[start as usize..(start + len) as usize],
        }
    }

    #[inline]
    fn cow(&self, s: StrRef) -> Cow<'static, str> {
        match s {
            StrRef::Word(code) => Cow::Borrowed(token::by_code(code)),
            other => Cow::Owned(self.str(other).to_owned()),
        }
    }

    fn server(&self, server: ServerRec) -> &Server {
        match server {
            ServerRec::Known(i) => &KNOWN_SERVERS[usize::from(i)],
            ServerRec::Other(i) => &self.others[i as usize],
        }
    }

    fn jid_ref<'t>(&'t self, jid: &'t JidRec) -> JidRef<'t> {
        JidRef {
            user: self.str(jid.user),
            server: self.server(jid.server),
            agent: jid.agent,
            device: jid.device,
            integrator: jid.integrator,
        }
    }
}

/// A node of a [`Tree`].
#[derive(Clone, Copy)]
pub struct NodeRef<'t> {
    tree: &'t Tree<'t>,
    rec: &'t NodeRec,
}

/// An attribute value in a [`Tree`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRef<'t> {
    /// A string.
    Str(&'t str),
    /// A JID.
    Jid(JidRef<'t>),
}

/// The content of a node in a [`Tree`].
#[derive(Clone, Copy, Debug)]
pub enum ContentRef<'t> {
    /// No content.
    None,
    /// Child nodes (iterate with [`NodeRef::children`]).
    Nodes(usize),
    /// Raw bytes.
    Bytes(&'t [u8]),
    /// A string.
    Str(&'t str),
    /// A JID.
    Jid(JidRef<'t>),
}

/// A JID in a [`Tree`]; [`JidRef::to_jid`] makes an owned [`Jid`]. Prints like `Jid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JidRef<'t> {
    user: &'t str,
    server: &'t Server,
    agent: u8,
    device: Option<u16>,
    integrator: u16,
}

impl<'t> JidRef<'t> {
    /// The user part.
    pub fn user(&self) -> &'t str {
        self.user
    }

    /// The server.
    pub fn server(&self) -> &'t Server {
        self.server
    }

    /// The device number, 0 without a device part.
    pub fn device(&self) -> u16 {
        self.device.unwrap_or(0)
    }

    /// Whether there is an explicit device part.
    pub fn is_ad(&self) -> bool {
        self.device.is_some()
    }

    /// The raw agent (0 when none).
    pub fn agent(&self) -> u8 {
        self.agent
    }

    /// The interop integrator (0 unless an interop device JID).
    pub fn integrator(&self) -> u16 {
        self.integrator
    }

    /// Whether this is a server JID (empty user).
    pub fn is_server_jid(&self) -> bool {
        self.user.is_empty()
    }

    /// The owned JID.
    pub fn to_jid(&self) -> Jid {
        // The decoder checked these parts with `check_wire_parts`.
        Jid::from_checked_parts(
            self.user.to_owned(),
            self.server.clone(),
            self.agent,
            self.device,
            self.integrator,
        )
    }
}

impl fmt::Display for JidRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self.server == Server::Interop && self.device.is_some() {
            write!(f, "{}-", self.integrator)?;
        }
        f.write_str(self.user)?;
        if self.agent != 0 {
            write!(f, ".{}", self.agent)?;
        }
        if let Some(device) = self.device {
            write!(f, ":{device}")?;
        }
        write!(f, "@{}", self.server)
    }
}

impl<'t> NodeRef<'t> {
    /// The tag.
    pub fn tag(&self) -> &'t str {
        self.tree.str(self.rec.tag)
    }

    fn attr_recs(&self) -> &'t [AttrRec] {
        let start = self.rec.attrs_start as usize;
        &self.tree.attrs[start..start + self.rec.attrs_len as usize]
    }

    fn value(&self, value: &'t ValueRec) -> ValueRef<'t> {
        match value {
            ValueRec::Str(s) => ValueRef::Str(self.tree.str(*s)),
            ValueRec::Jid(jid) => ValueRef::Jid(self.tree.jid_ref(jid)),
        }
    }

    /// The attributes in wire order.
    pub fn attrs(&self) -> impl ExactSizeIterator<Item = (&'t str, ValueRef<'t>)> + 't {
        let this = *self;
        self.attr_recs()
            .iter()
            .map(move |a| (this.tree.str(a.key), this.value(&a.value)))
    }

    /// The value of attribute `key`.
    pub fn attr(&self, key: &str) -> Option<ValueRef<'t>> {
        self.attrs().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The value of attribute `key` if it is a string.
    pub fn attr_str(&self, key: &str) -> Option<&'t str> {
        match self.attr(key)? {
            ValueRef::Str(s) => Some(s),
            ValueRef::Jid(_) => None,
        }
    }

    /// The value of attribute `key` if it is a JID.
    pub fn attr_jid(&self, key: &str) -> Option<JidRef<'t>> {
        match self.attr(key)? {
            ValueRef::Jid(jid) => Some(jid),
            ValueRef::Str(_) => None,
        }
    }

    /// The content.
    pub fn content(&self) -> ContentRef<'t> {
        match &self.rec.content {
            ContentRec::None => ContentRef::None,
            ContentRec::Nodes { len, .. } => ContentRef::Nodes(*len as usize),
            ContentRec::Bytes { start, len } => {
                ContentRef::Bytes(&self.tree.input[*start as usize..(*start + *len) as usize])
            }
            ContentRec::Str(s) => ContentRef::Str(self.tree.str(*s)),
            ContentRec::Jid(jid) => ContentRef::Jid(self.tree.jid_ref(jid)),
        }
    }

    /// The children (empty unless the content is a list).
    pub fn children(&self) -> impl ExactSizeIterator<Item = NodeRef<'t>> + 't {
        let tree = self.tree;
        let range = match self.rec.content {
            ContentRec::Nodes { start, len } => start as usize..(start + len) as usize,
            _ => 0..0,
        };
        tree.nodes[range]
            .iter()
            .map(move |rec| NodeRef { tree, rec })
    }

    /// The first child with this tag.
    pub fn child_by_tag(&self, tag: &str) -> Option<NodeRef<'t>> {
        self.children().find(|c| c.tag() == tag)
    }

    /// The content if it is raw bytes.
    pub fn content_bytes(&self) -> Option<&'t [u8]> {
        match self.content() {
            ContentRef::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The content if it is a string.
    pub fn content_str(&self) -> Option<&'t str> {
        match self.content() {
            ContentRef::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An owned copy of this node and everything below it.
    pub fn to_node(&self) -> Node {
        let tree = self.tree;
        let attrs = self
            .attr_recs()
            .iter()
            .map(|a| {
                let value = match &a.value {
                    ValueRec::Str(s) => AttrValue::Str(tree.cow(*s)),
                    ValueRec::Jid(jid) => AttrValue::Jid(tree.jid_ref(jid).to_jid()),
                };
                (tree.cow(a.key), value)
            })
            .collect();
        let content = match &self.rec.content {
            ContentRec::None => Content::None,
            ContentRec::Nodes { .. } => {
                Content::Nodes(self.children().map(|c| c.to_node()).collect())
            }
            ContentRec::Bytes { start, len } => {
                Content::Bytes(tree.input[*start as usize..(*start + *len) as usize].to_vec())
            }
            ContentRec::Str(s) => Content::Str(tree.cow(*s)),
            ContentRec::Jid(jid) => Content::Jid(tree.jid_ref(jid).to_jid()),
        };
        Node {
            tag: tree.cow(self.rec.tag),
            attrs,
            content,
        }
    }
}

impl fmt::Debug for NodeRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeRef")
            .field("tag", &self.tag())
            .field("attrs", &self.attrs().collect::<Vec<_>>())
            .field("content", &self.content())
            .finish()
    }
}

/// Renders like [`Node`]'s `Display` (via an owned copy; meant for logs, not hot paths).
impl fmt::Display for NodeRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_node(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::{DecodeLimits, encode};

    fn stanza() -> Node {
        Node::new("message")
            .attr("to", Jid::parse("15551234567@s.whatsapp.net").unwrap())
            .attr("id", "3EB0C431C26A1916E07A")
            .attr("type", "text")
            .attr("note", "héllo")
            .children([
                Node::new("participants").children([Node::new("to")
                    .attr("jid", Jid::parse("15551234567:2@s.whatsapp.net").unwrap())
                    .children([Node::new("enc")
                        .attr("v", "2")
                        .attr("type", "pkmsg")
                        .bytes(vec![7; 40])])]),
                Node::new("from").content(Content::Jid(Jid::parse("x@call").unwrap())),
                Node::new("body").text("12.5"),
                Node::new("empty").children([]),
            ])
    }

    #[test]
    fn views_read_every_part() {
        let node = stanza();
        let bytes = encode(&node).unwrap();
        let tree = Tree::decode(&bytes, &DecodeLimits::DEFAULT).unwrap();
        let root = tree.root();
        assert_eq!(root.tag(), "message");
        assert_eq!(root.attrs().len(), 4);
        assert_eq!(root.attr_str("id"), Some("3EB0C431C26A1916E07A"));
        assert_eq!(root.attr_str("note"), Some("héllo"));
        assert_eq!(root.attr_str("to"), None);
        let to = root.attr_jid("to").unwrap();
        assert_eq!(
            (to.user(), to.server(), to.is_ad()),
            ("15551234567", &Server::WhatsApp, false)
        );
        assert_eq!(to.to_string(), "15551234567@s.whatsapp.net");

        assert!(matches!(root.content(), ContentRef::Nodes(4)));
        let participant = root
            .child_by_tag("participants")
            .and_then(|p| p.child_by_tag("to"))
            .unwrap();
        let jid = participant.attr_jid("jid").unwrap();
        assert_eq!((jid.device(), jid.is_ad(), jid.agent()), (2, true, 0));
        assert_eq!(
            jid.to_jid(),
            Jid::parse("15551234567:2@s.whatsapp.net").unwrap()
        );
        let enc = participant.child_by_tag("enc").unwrap();
        assert_eq!(enc.content_bytes(), Some(&[7u8; 40][..]));
        assert_eq!(enc.attr("type"), Some(ValueRef::Str("pkmsg")));

        let from = root.child_by_tag("from").unwrap();
        match from.content() {
            ContentRef::Jid(jid) => {
                assert_eq!(jid.server(), &Server::Other("call".into()));
                assert_eq!(jid.to_string(), "x@call");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            root.child_by_tag("body").and_then(|b| b.content_str()),
            Some("12.5")
        );
        assert_eq!(
            root.child_by_tag("empty").map(|e| e.children().len()),
            Some(0)
        );
        assert!(root.child_by_tag("nope").is_none());

        assert_eq!(tree.to_node(), node);
        assert_eq!(root.to_string(), node.to_string());
        assert!(format!("{root:?}").contains("message"));
    }

    #[test]
    fn compressed_frames_own_their_inflated_bytes() {
        use std::io::Write as _;
        let node = stanza();
        let plain = encode(&node).unwrap();
        let mut z = flate2::write::ZlibEncoder::new(vec![0x02], flate2::Compression::fast());
        z.write_all(&plain[1..]).unwrap();
        let frame = z.finish().unwrap();
        let tree = Tree::decode(&frame, &DecodeLimits::DEFAULT).unwrap();
        assert!(matches!(tree.input, Cow::Owned(_)));
        assert_eq!(tree.to_node(), node);
    }

    #[test]
    fn a_frame_costs_three_buffers() {
        // Nodes, attributes and unpacked text live in one vector each, however many nodes.
        let node = Node::new("list")
            .children((0..50).map(|i| Node::new("item").attr("n", format!("{i}"))));
        let bytes = encode(&node).unwrap();
        let tree = Tree::decode(&bytes, &DecodeLimits::DEFAULT).unwrap();
        assert_eq!(tree.nodes.len(), 51);
        assert_eq!(tree.attrs.len(), 50);
        assert!(tree.others.is_empty());
        assert!(matches!(tree.input, Cow::Borrowed(_)));
    }
}
