//! A decoded frame as a flat, validated arena ([`Tree`]) with borrowed views ([`NodeRef`],
//! [`ValueRef`], [`JidRef`]) — the zero-copy way to read a node.
//!
//! Contract: a `Tree` only exists if the whole frame decoded without error (the parser in
//! `decode.rs` validates everything; [`Arena`] only records what it was handed), so every
//! view accessor is infallible. Strings are either dictionary words (`&'static str`), UTF-8
//! slices of the input, or slices of one buffer holding all unpacked (nibble/hex) strings; byte
//! content is a slice of the input. A tree's records live in three vectors (nodes, attributes,
//! unpacked text) however large the frame is, and those vectors are taken over from the last
//! tree dropped on the same thread, so steady-state decoding does not allocate;
//! [`NodeRef::to_node`] converts to the owned [`Node`] when a caller wants to keep it.
//! ([`decode`](super::decode) builds an owned `Node` directly, without a tree, with the same
//! parser.)

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use super::decode::{
    self, Build, DecodeError, DecodeLimits, Item, JidItem, ServerItem, Text, Value,
};
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
    pub(super) arena: Arena,
}

/// Where a string lives.
#[derive(Clone, Copy, Debug)]
pub(super) enum StrRef {
    /// A dictionary word (see [`token::by_code`]).
    Word(WordCode),
    /// UTF-8 (checked) bytes of the input.
    Input { start: u32, len: u32 },
    /// A slice of [`Arena::text`].
    Text { start: u32, len: u32 },
}

/// A JID's server: an index into [`KNOWN_SERVERS`] or into [`Arena::others`].
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
    /// Decodes frame plaintext (flags byte + node) into a tree that borrows `frame` (or owns the
    /// inflated bytes of a compressed frame).
    pub fn decode(frame: &'a [u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        let input = decode::body(frame, limits)?;
        Self::parse(input, limits)
    }

    /// Decodes a node without the flags byte into a tree that borrows `bytes`.
    pub fn decode_raw(bytes: &'a [u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        Self::parse(Cow::Borrowed(bytes), limits)
    }

    fn parse(input: Cow<'a, [u8]>, limits: &DecodeLimits) -> Result<Self, DecodeError> {
        let arena = Arena::take(input.len());
        let mut tree = Tree { input, arena };
        let root = decode::parse(&tree.input, limits, &mut tree.arena)?;
        if let Some(slot) = tree.arena.nodes.first_mut() {
            *slot = root;
        }
        Ok(tree)
    }

    /// The root node.
    pub fn root(&self) -> NodeRef<'_> {
        NodeRef {
            tree: self,
            rec: &self.arena.nodes[0],
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
            StrRef::Text { start, len } => {
                // ASCII by construction (unpacked from the nibble/hex alphabets); checked here
                // for the same reason as input slices.
                std::str::from_utf8(&self.arena.text[start as usize..(start + len) as usize])
                    .unwrap_or_default()
            }
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
            ServerRec::Other(i) => &self.arena.others[i as usize],
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

/// A [`Tree`]'s records, filled by the parser (this is its [`Build`]er): children get
/// contiguous slots in `nodes` (reserved when their list starts, filled as each child
/// finishes), attributes are appended in order, packed strings are unpacked into `text`.
///
/// The vectors of a dropped tree are kept for the next decode on the same thread (one spare
/// arena per thread, and only if it is small), so decoding a stream of frames does not
/// allocate for its records.
#[derive(Clone, Debug)]
pub(super) struct Arena {
    /// Unpacked nibble/hex strings (ASCII).
    text: Vec<u8>,
    nodes: Vec<NodeRec>,
    attrs: Vec<AttrRec>,
    /// Servers that are not in [`Server::KNOWN`] (rare), referenced by [`ServerRec::Other`].
    others: Vec<Server>,
}

/// A node's attributes in [`Arena::attrs`] (a finished node has exactly `len`; see
/// [`Build::attrs`]).
pub(super) struct AttrSpan {
    start: u32,
    len: u32,
}

/// A list's reserved slots in [`Arena::nodes`] and the next one to fill.
pub(super) struct Slots {
    start: u32,
    next: u32,
}

thread_local! {
    /// The spare arena of this thread (see [`Arena`]).
    static SPARE: RefCell<Option<Arena>> = const { RefCell::new(None) };
}

/// Largest arena kept as a spare (in records / bytes), so one huge frame does not pin memory.
const SPARE_NODES: usize = 1024;
const SPARE_ATTRS: usize = 4096;
const SPARE_TEXT: usize = 16 << 10;

impl Arena {
    /// An empty arena with the root's slot: this thread's spare if there is one, else new.
    fn take(len: usize) -> Self {
        let spare = SPARE
            .try_with(|spare| spare.try_borrow_mut().ok().and_then(|mut s| s.take()))
            .ok()
            .flatten();
        let mut arena = spare.unwrap_or_else(|| Self {
            // Small capacity hints from the input size (a typical stanza has a node per ~40
            // bytes, an attribute per ~16, unpacked text of ~1/4), capped so a large frame that
            // is mostly one byte blob does not reserve much; the vectors grow as needed.
            text: Vec::with_capacity((len / 4 + 8).min(1024)),
            nodes: Vec::with_capacity((len / 40 + 2).min(64)),
            attrs: Vec::with_capacity((len / 16 + 2).min(128)),
            others: Vec::new(),
        });
        // The root's slot, filled when parsing is done.
        arena.nodes.push(NodeRec::PLACEHOLDER);
        arena
    }

    /// Keeps this arena's vectors as the thread's spare if they are small.
    fn recycle(&mut self) {
        if self.nodes.capacity() > SPARE_NODES
            || self.attrs.capacity() > SPARE_ATTRS
            || self.text.capacity() > SPARE_TEXT
        {
            return;
        }
        let mut arena = Self {
            text: std::mem::take(&mut self.text),
            nodes: std::mem::take(&mut self.nodes),
            attrs: std::mem::take(&mut self.attrs),
            others: Vec::new(),
        };
        arena.text.clear();
        arena.nodes.clear();
        arena.attrs.clear();
        // Fails only while the thread is being torn down; the vectors are then just freed.
        let _ = SPARE.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut() {
                *spare = Some(arena);
            }
        });
    }

    #[inline]
    fn str(&mut self, buf: &[u8], text: Text) -> StrRef {
        match text {
            Text::Word(code) => StrRef::Word(code),
            Text::Raw { start, len } => StrRef::Input { start, len },
            packed @ Text::Packed { .. } => {
                let start = self.text.len();
                packed.unpack_into(buf, &mut self.text);
                // Unpacked text is at most twice the input, which stays below 2 GiB.
                StrRef::Text {
                    start: start as u32,
                    len: (self.text.len() - start) as u32,
                }
            }
        }
    }

    #[inline]
    fn jid(&mut self, buf: &[u8], jid: JidItem) -> JidRec {
        let server = match jid.server {
            ServerItem::Known(i) => ServerRec::Known(i),
            other => {
                self.others.push(other.into_server());
                ServerRec::Other((self.others.len() - 1) as u32)
            }
        };
        JidRec {
            user: self.str(buf, jid.user),
            server,
            agent: jid.agent,
            device: jid.device,
            integrator: jid.integrator,
        }
    }
}

impl Drop for Tree<'_> {
    fn drop(&mut self) {
        self.arena.recycle();
    }
}

impl Build for Arena {
    type Node = NodeRec;
    type Attrs = AttrSpan;
    type Children = Slots;

    #[inline]
    fn attrs(&mut self, count: usize) -> AttrSpan {
        self.attrs.reserve(count);
        AttrSpan {
            start: self.attrs.len() as u32,
            len: count as u32,
        }
    }

    #[inline]
    fn attr(&mut self, buf: &[u8], _: &mut AttrSpan, key: Text, value: Value) {
        let key = self.str(buf, key);
        let value = match value {
            Value::Str(text) => ValueRec::Str(self.str(buf, text)),
            Value::Jid(jid) => ValueRec::Jid(self.jid(buf, jid)),
        };
        self.attrs.push(AttrRec { key, value });
    }

    #[inline]
    fn children(&mut self, len: usize) -> Slots {
        let start = self.nodes.len();
        self.nodes.reserve(len);
        for _ in 0..len {
            self.nodes.push(NodeRec::PLACEHOLDER);
        }
        Slots {
            start: start as u32,
            next: start as u32,
        }
    }

    #[inline]
    fn child(&mut self, slots: &mut Slots, node: NodeRec) {
        if let Some(slot) = self.nodes.get_mut(slots.next as usize) {
            *slot = node;
        }
        slots.next += 1;
    }

    #[inline]
    fn node(&mut self, buf: &[u8], tag: Text, attrs: AttrSpan, content: Item<Slots>) -> NodeRec {
        let content = match content {
            Item::None => ContentRec::None,
            Item::Nodes(slots) => ContentRec::Nodes {
                start: slots.start,
                len: slots.next - slots.start,
            },
            Item::Bytes { start, len } => ContentRec::Bytes { start, len },
            Item::Str(text) => ContentRec::Str(self.str(buf, text)),
            Item::Jid(jid) => ContentRec::Jid(self.jid(buf, jid)),
        };
        NodeRec {
            tag: self.str(buf, tag),
            attrs_start: attrs.start,
            attrs_len: attrs.len,
            content,
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
        &self.tree.arena.attrs[start..start + self.rec.attrs_len as usize]
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
        tree.arena.nodes[range]
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
    fn dropped_trees_lend_their_vectors_to_the_next_one() {
        let list = |n: usize| {
            encode(&Node::new("list").children((0..n).map(|i| Node::new("item").attr("n", i))))
                .unwrap()
        };
        let (big, small) = (list(300), list(1));
        let tree = Tree::decode(&big, &DecodeLimits::DEFAULT).unwrap();
        assert_eq!(tree.arena.nodes.len(), 301);
        drop(tree);
        // A fresh arena for a 20-byte frame would hold 2 node slots; this one is the spare.
        let tree = Tree::decode(&small, &DecodeLimits::DEFAULT).unwrap();
        assert!(tree.arena.nodes.capacity() >= 301);
        assert_eq!(tree.arena.nodes.len(), 2, "the spare was cleared");
        assert_eq!(tree.to_node(), crate::binary::decode(&small).unwrap());
        drop(tree);
        // Arenas above the spare limits are freed, not kept.
        let huge = list(SPARE_NODES + 10);
        drop(Tree::decode(&huge, &DecodeLimits::DEFAULT).unwrap());
        let tree = Tree::decode(&small, &DecodeLimits::DEFAULT).unwrap();
        assert!(tree.arena.nodes.capacity() < SPARE_NODES);
        // A failed decode hands its arena back too, and the next decode is unaffected.
        assert!(Tree::decode(&big[..big.len() - 1], &DecodeLimits::DEFAULT).is_err());
        assert_eq!(
            Tree::decode(&big, &DecodeLimits::DEFAULT)
                .unwrap()
                .to_node(),
            crate::binary::decode(&big).unwrap()
        );
    }

    #[test]
    fn a_frame_costs_three_buffers() {
        // Nodes, attributes and unpacked text live in one vector each, however many nodes.
        let node = Node::new("list")
            .children((0..50).map(|i| Node::new("item").attr("n", format!("{i}"))));
        let bytes = encode(&node).unwrap();
        let tree = Tree::decode(&bytes, &DecodeLimits::DEFAULT).unwrap();
        assert_eq!(tree.arena.nodes.len(), 51);
        assert_eq!(tree.arena.attrs.len(), 50);
        assert!(tree.arena.others.is_empty());
        assert!(matches!(tree.input, Cow::Borrowed(_)));
    }
}
