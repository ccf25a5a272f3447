//! A decoded frame as a flat, validated arena ([`Tree`], or [`TreeBuf`] for a buffer the caller
//! reuses) with borrowed views ([`NodeRef`], [`ValueRef`], [`JidRef`]) — the zero-copy way to
//! read a node.
//!
//! Contract: a tree only exists if the whole frame decoded without error (the fast path in
//! `fast.rs` or the full parser in `decode.rs` validates everything; [`Arena`] only records
//! what it was handed), so every view accessor is infallible. Strings are either dictionary
//! words (`&'static str`), UTF-8 slices of the input, or slices of one buffer holding all
//! unpacked (nibble/hex) strings; byte content is a slice of the input. A tree's records live in
//! a few vectors (nodes, attributes, JIDs, unpacked text) however large the frame is, and those
//! are reused: a [`Tree`] takes them over from the last tree dropped on the same thread, a
//! [`TreeBuf`] keeps its own; so steady-state decoding does not allocate. Records are small
//! plain words (a string reference is one packed `u64`, [`StrRef`]) so the decoder writes them
//! without partial stores. [`NodeRef::to_node`] converts to the owned [`Node`] when a caller
//! wants to keep it. ([`decode`](super::decode) builds an owned `Node` directly, without a
//! tree, with the same parser.)

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use super::decode::{
    self, Build, DecodeError, DecodeLimits, Form, HEX_PAIRS, Item, JidItem, NIBBLE_PAIRS,
    ServerItem, Text, Value,
};
use super::fast;
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

/// Where a string (for attribute values also: which JID) lives, packed into one `u64` so the
/// records are plain words: written, spilled and copied whole (no partial stores). The low two
/// bits are the kind ([`Str`]); inputs are below 2^31 bytes (`decode::MAX_INPUT`), so an input
/// slice's start and length take 31 bits each, and an unpacked string is at most 254
/// characters at an offset below 2^32 in [`Arena::text`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct StrRef(u64);

const KIND_WORD: u64 = 0;
const KIND_INPUT: u64 = 1;
const KIND_TEXT: u64 = 2;
const KIND_JID: u64 = 3;

/// A [`StrRef`] unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Str {
    /// A dictionary word (see [`token::by_code`]).
    Word(WordCode),
    /// UTF-8 (checked) bytes `start..start + len` of the input.
    Input { start: usize, len: usize },
    /// `Arena::text[start..start + len]`.
    Text { start: usize, len: usize },
    /// `Arena::jids[index]` (attribute values only).
    Jid(usize),
}

impl StrRef {
    /// The empty string (dictionary code 0).
    pub(super) const EMPTY: Self = Self::word(0);

    #[inline(always)]
    pub(super) const fn word(code: WordCode) -> Self {
        Self((code as u64) << 2 | KIND_WORD)
    }

    #[inline(always)]
    pub(super) fn input(start: u32, len: u32) -> Self {
        Self(u64::from(start) << 2 | u64::from(len) << 33 | KIND_INPUT)
    }

    /// `len` is at most 254 (an unpacked 127-byte string).
    #[inline(always)]
    fn text(start: u32, len: u8) -> Self {
        Self(u64::from(start) << 10 | u64::from(len) << 2 | KIND_TEXT)
    }

    #[inline(always)]
    pub(super) fn jid(index: u32) -> Self {
        Self(u64::from(index) << 2 | KIND_JID)
    }

    #[inline(always)]
    pub(super) fn get(self) -> Str {
        let v = self.0;
        match v & 3 {
            KIND_WORD => Str::Word((v >> 2) as WordCode),
            KIND_INPUT => Str::Input {
                start: ((v >> 2) & 0x7fff_ffff) as usize,
                len: (v >> 33) as usize,
            },
            KIND_TEXT => Str::Text {
                start: (v >> 10) as usize,
                len: ((v >> 2) & 0xff) as usize,
            },
            _ => Str::Jid((v >> 2) as usize),
        }
    }
}

/// A JID's server: an index into [`KNOWN_SERVERS`] or into [`Arena::others`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ServerRec {
    Known(u8),
    Other(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct JidRec {
    pub(super) user: StrRef,
    pub(super) server: ServerRec,
    pub(super) agent: u8,
    pub(super) device: Option<u16>,
    pub(super) integrator: u16,
}

/// An attribute: its key, and its value (a string or, [`Str::Jid`], a JID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct AttrRec {
    pub(super) key: StrRef,
    pub(super) value: StrRef,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// `Arena::jids[index]`.
    Jid(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct NodeRec {
    pub(super) tag: StrRef,
    pub(super) attrs_start: u32,
    pub(super) attrs_len: u32,
    pub(super) content: ContentRec,
}

impl NodeRec {
    /// A slot reserved for a child that is about to be read.
    pub(super) const PLACEHOLDER: Self = Self {
        tag: StrRef::EMPTY,
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
        if fast::parse(&tree.input, limits, &mut tree.arena).is_none() {
            tree.arena.reset();
            let root = decode::parse(&tree.input, limits, &mut tree.arena)?;
            if let Some(slot) = tree.arena.nodes.first_mut() {
                *slot = root;
            }
        }
        Ok(tree)
    }

    /// Whether the fast path alone decodes `bytes` (a raw node), for tests.
    #[cfg(test)]
    pub(super) fn fast_accepts(bytes: &[u8], limits: &DecodeLimits) -> bool {
        let mut tree = Tree {
            input: Cow::Borrowed(bytes),
            arena: Arena::take(bytes.len()),
        };
        fast::parse(bytes, limits, &mut tree.arena).is_some()
    }

    /// [`Tree::decode_raw`] with the full parser only (no fast path): the differential tests
    /// compare both arenas record for record.
    pub(super) fn decode_raw_full(
        bytes: &'a [u8],
        limits: &DecodeLimits,
    ) -> Result<Self, DecodeError> {
        let arena = Arena::take(bytes.len());
        let mut tree = Tree {
            input: Cow::Borrowed(bytes),
            arena,
        };
        let root = decode::parse(&tree.input, limits, &mut tree.arena)?;
        if let Some(slot) = tree.arena.nodes.first_mut() {
            *slot = root;
        }
        Ok(tree)
    }

    /// The root node.
    pub fn root(&self) -> NodeRef<'_> {
        NodeRef {
            view: View {
                input: &self.input,
                text: self.arena.text_str(),
                arena: &self.arena,
            },
            rec: &self.arena.nodes[0],
        }
    }

    /// Converts the whole tree to an owned [`Node`].
    pub fn to_node(&self) -> Node {
        self.root().to_node()
    }
}

/// A reusable buffer to decode frames into, for receive loops: [`TreeBuf::decode`] returns the
/// root of a validated tree (the same views as [`Tree`], from the same parser, with the same
/// errors) that lives in this buffer until the next decode. Steady state allocates nothing:
/// the record vectors and the buffer for inflated frames are kept between decodes (and
/// replaced by small ones when one frame made them large).
///
/// ```
/// use wasmeow_protocol::binary::{self, DecodeLimits, Node, TreeBuf};
///
/// let mut buf = TreeBuf::new();
/// for id in ["1", "2"] {
///     let frame = binary::encode(&Node::new("iq").attr("id", id).attr("type", "get"))?;
///     let iq = buf.decode(&frame, &DecodeLimits::DEFAULT)?;
///     assert_eq!((iq.tag(), iq.attr_str("id")), ("iq", Some(id)));
/// }
/// assert!(buf.decode(&[0x00, 0xf8], &DecodeLimits::DEFAULT).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct TreeBuf {
    arena: Arena,
    inflated: Vec<u8>,
}

/// Largest inflated-frame buffer a [`TreeBuf`] keeps between decodes.
const SPARE_INFLATED: usize = 256 << 10;

impl TreeBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes frame plaintext (flags byte + node), inflating it into this buffer first if it is
    /// compressed, like [`Tree::decode`].
    pub fn decode<'s>(
        &'s mut self,
        frame: &'s [u8],
        limits: &DecodeLimits,
    ) -> Result<NodeRef<'s>, DecodeError> {
        let Some((&flags, body)) = frame.split_first() else {
            return Err(DecodeError::Empty);
        };
        if flags & decode::FLAG_COMPRESSED == 0 {
            return parse_into(&mut self.arena, body, limits);
        }
        if self.inflated.capacity() > SPARE_INFLATED {
            self.inflated = Vec::new();
        }
        decode::inflate_into(body, limits, &mut self.inflated)?;
        parse_into(&mut self.arena, &self.inflated, limits)
    }

    /// Decodes a node without the flags byte, like [`Tree::decode_raw`].
    pub fn decode_raw<'s>(
        &'s mut self,
        bytes: &'s [u8],
        limits: &DecodeLimits,
    ) -> Result<NodeRef<'s>, DecodeError> {
        parse_into(&mut self.arena, bytes, limits)
    }
}

/// Parses `input` into `arena` (emptied first): the fast path, else the full parser.
fn parse_into<'s>(
    arena: &'s mut Arena,
    input: &'s [u8],
    limits: &DecodeLimits,
) -> Result<NodeRef<'s>, DecodeError> {
    if arena.nodes.capacity() > SPARE_NODES
        || arena.attrs.capacity() > SPARE_ATTRS
        || arena.text.capacity() > SPARE_TEXT
    {
        *arena = Arena::default();
    }
    arena.reset();
    if fast::parse(input, limits, arena).is_none() {
        arena.reset();
        let root = decode::parse(input, limits, arena)?;
        if let Some(slot) = arena.nodes.first_mut() {
            *slot = root;
        }
    }
    let arena: &'s Arena = arena;
    Ok(NodeRef {
        view: View {
            input,
            text: arena.text_str(),
            arena,
        },
        rec: &arena.nodes[0],
    })
}

/// What the views read: the tree's input and its records.
#[derive(Clone, Copy)]
struct View<'t> {
    input: &'t [u8],
    /// The unpacked text ([`Arena::text_str`]), checked once rather than on every read.
    text: &'t str,
    arena: &'t Arena,
}

impl<'t> View<'t> {
    #[inline]
    fn str(self, s: StrRef) -> &'t str {
        match s.get() {
            Str::Word(code) => token::by_code(code),
            Str::Input { start, len } => {
                let bytes = self.input.get(start..start + len).unwrap_or_default();
                // Checked by the decoder before the reference was stored; re-checking here keeps
                // the crate free of `unsafe` (an invalid slice would read as "", never happen).
                std::str::from_utf8(bytes).unwrap_or_default()
            }
            Str::Text { start, len } => self.text.get(start..start + len).unwrap_or_default(),
            // Names are never JIDs.
            Str::Jid(_) => "",
        }
    }

    /// An attribute value.
    #[inline]
    fn value(self, s: StrRef) -> ValueRef<'t> {
        match s.get() {
            Str::Jid(index) => ValueRef::Jid(self.jid_ref(&self.arena.jids[index])),
            _ => ValueRef::Str(self.str(s)),
        }
    }

    #[inline]
    fn cow(self, s: StrRef) -> Cow<'static, str> {
        match s.get() {
            Str::Word(code) => Cow::Borrowed(token::by_code(code)),
            _ => Cow::Owned(self.str(s).to_owned()),
        }
    }

    fn server(self, server: ServerRec) -> &'t Server {
        match server {
            ServerRec::Known(i) => &KNOWN_SERVERS[usize::from(i)],
            ServerRec::Other(i) => &self.arena.others[i as usize],
        }
    }

    fn jid_ref(self, jid: &JidRec) -> JidRef<'t> {
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
#[derive(Clone, Debug, Default)]
pub(super) struct Arena {
    /// Unpacked nibble/hex strings (ASCII) in `text[..text_len]`; the bytes after `text_len`
    /// are storage kept initialized between decodes (so unpacking never re-zeroes it).
    pub(super) text: Vec<u8>,
    pub(super) text_len: usize,
    pub(super) nodes: Vec<NodeRec>,
    pub(super) attrs: Vec<AttrRec>,
    /// The JIDs attribute values and contents refer to.
    pub(super) jids: Vec<JidRec>,
    /// Servers that are not in [`Server::KNOWN`] (rare), referenced by [`ServerRec::Other`].
    pub(super) others: Vec<Server>,
}

/// Two arenas are equal when they hold the same records and the same unpacked text (the
/// storage after `text_len` does not count).
impl PartialEq for Arena {
    fn eq(&self, other: &Self) -> bool {
        self.text.get(..self.text_len) == other.text.get(..other.text_len)
            && self.nodes == other.nodes
            && self.attrs == other.attrs
            && self.jids == other.jids
            && self.others == other.others
    }
}

/// A node's attributes in [`Arena::attrs`] (a finished node has exactly `len`; see
/// [`Build::attrs`]).
pub(super) struct AttrSpan {
    start: u32,
    len: u32,
}

/// A list's reserved slots in [`Arena::nodes`] and the next one to fill.
pub(super) struct Slots {
    pub(super) start: u32,
    pub(super) next: u32,
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
            text: Vec::new(),
            text_len: 0,
            nodes: Vec::with_capacity((len / 40 + 2).min(64)),
            attrs: Vec::with_capacity((len / 16 + 2).min(128)),
            jids: Vec::new(),
            others: Vec::new(),
        });
        // The root's slot, filled when parsing is done.
        arena.nodes.push(NodeRec::PLACEHOLDER);
        arena
    }

    /// The unpacked text as a `str`: ASCII by construction (the nibble/hex alphabets), checked
    /// here (once per view, not per string read) to keep the crate free of `unsafe`; a failure
    /// cannot happen and would read as "".
    fn text_str(&self) -> &str {
        std::str::from_utf8(self.text.get(..self.text_len).unwrap_or_default()).unwrap_or_default()
    }

    /// Empties the arena back to just the root's slot.
    fn reset(&mut self) {
        self.text_len = 0;
        self.nodes.clear();
        self.attrs.clear();
        self.jids.clear();
        self.others.clear();
        self.nodes.push(NodeRec::PLACEHOLDER);
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
            text_len: 0,
            nodes: std::mem::take(&mut self.nodes),
            attrs: std::mem::take(&mut self.attrs),
            jids: std::mem::take(&mut self.jids),
            others: Vec::new(),
        };
        arena.nodes.clear();
        arena.jids.clear();
        arena.attrs.clear();
        // Fails only while the thread is being torn down; the vectors are then just freed.
        let _ = SPARE.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut() {
                *spare = Some(arena);
            }
        });
    }

    #[inline]
    pub(super) fn str(&mut self, buf: &[u8], text: Text) -> StrRef {
        match text {
            Text::Word(code) => StrRef::word(code),
            Text::Raw { start, len } => StrRef::input(start, len),
            Text::Packed { start, len, form } => self.unpack(buf, start, len, form),
        }
    }

    /// Unpacks a checked packed string into `text` (the same characters as
    /// [`Text::unpack_into`]), growing the storage only when it is too short.
    #[inline]
    fn unpack(&mut self, buf: &[u8], start: u32, len: u32, form: Form) -> StrRef {
        let bytes = buf
            .get(start as usize..(start + len) as usize)
            .unwrap_or_default();
        let at = self.text_len;
        let end = at + 2 * bytes.len();
        if self.text.len() < end {
            self.grow_text(end);
        }
        let pairs = if form.hex { &HEX_PAIRS } else { &NIBBLE_PAIRS };
        if let Some(dst) = self.text.get_mut(at..end) {
            for (dst, &b) in dst.chunks_exact_mut(2).zip(bytes) {
                dst.copy_from_slice(&pairs[usize::from(b)]);
            }
        }
        self.text_len = end - usize::from(form.odd);
        // Unpacked text is at most twice the input, which stays below 2 GiB, and a packed
        // string has at most 127 bytes (254 characters).
        StrRef::text(at as u32, (self.text_len - at) as u8)
    }

    #[cold]
    #[inline(never)]
    fn grow_text(&mut self, end: usize) {
        let len = end.max(2 * self.text.len()).max(64);
        self.text.resize(len, 0);
    }

    #[inline]
    fn jid(&mut self, buf: &[u8], jid: JidItem) -> u32 {
        let server = match jid.server {
            ServerItem::Known(i) => ServerRec::Known(i),
            other => {
                self.others.push(other.into_server());
                ServerRec::Other((self.others.len() - 1) as u32)
            }
        };
        let rec = JidRec {
            user: self.str(buf, jid.user),
            server,
            agent: jid.agent,
            device: jid.device,
            integrator: jid.integrator,
        };
        self.push_jid(rec)
    }

    /// Stores a JID record; returns its index (below the input length, so it fits `u32`).
    #[inline]
    pub(super) fn push_jid(&mut self, rec: JidRec) -> u32 {
        self.jids.push(rec);
        (self.jids.len() - 1) as u32
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
            Value::Str(text) => self.str(buf, text),
            Value::Jid(jid) => StrRef::jid(self.jid(buf, jid)),
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
    view: View<'t>,
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
        self.view.str(self.rec.tag)
    }

    fn attr_recs(&self) -> &'t [AttrRec] {
        let start = self.rec.attrs_start as usize;
        &self.view.arena.attrs[start..start + self.rec.attrs_len as usize]
    }

    /// The attributes in wire order.
    pub fn attrs(&self) -> impl ExactSizeIterator<Item = (&'t str, ValueRef<'t>)> + 't {
        let this = *self;
        self.attr_recs()
            .iter()
            .map(move |a| (this.view.str(a.key), this.view.value(a.value)))
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
                ContentRef::Bytes(&self.view.input[*start as usize..(*start + *len) as usize])
            }
            ContentRec::Str(s) => ContentRef::Str(self.view.str(*s)),
            ContentRec::Jid(index) => {
                ContentRef::Jid(self.view.jid_ref(&self.view.arena.jids[*index as usize]))
            }
        }
    }

    /// The children (empty unless the content is a list).
    pub fn children(&self) -> impl ExactSizeIterator<Item = NodeRef<'t>> + 't {
        let tree = self.view;
        let range = match self.rec.content {
            ContentRec::Nodes { start, len } => start as usize..(start + len) as usize,
            _ => 0..0,
        };
        tree.arena.nodes[range]
            .iter()
            .map(move |rec| NodeRef { view: tree, rec })
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
        let tree = self.view;
        let attrs = self
            .attr_recs()
            .iter()
            .map(|a| {
                let value = match a.value.get() {
                    Str::Jid(index) => {
                        AttrValue::Jid(tree.jid_ref(&tree.arena.jids[index]).to_jid())
                    }
                    _ => AttrValue::Str(tree.cow(a.value)),
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
            ContentRec::Jid(index) => {
                Content::Jid(tree.jid_ref(&tree.arena.jids[*index as usize]).to_jid())
            }
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
    fn tree_buf_reuses_its_buffers_and_agrees_with_tree() {
        use std::io::Write as _;
        let node = stanza();
        let plain = encode(&node).unwrap();
        let mut z = flate2::write::ZlibEncoder::new(vec![0x02], flate2::Compression::fast());
        z.write_all(&plain[1..]).unwrap();
        let compressed = z.finish().unwrap();
        let big = encode(&Node::new("list").children(
            (0..SPARE_NODES + 10).map(|i| Node::new("item").attr("id", format!("{i:X}"))),
        ))
        .unwrap();
        let limits = DecodeLimits::DEFAULT;
        let mut buf = TreeBuf::new();
        for frame in [&plain, &compressed, &plain, &big, &plain] {
            let expected = Tree::decode(frame, &limits).unwrap().to_node();
            assert_eq!(buf.decode(frame, &limits).unwrap().to_node(), expected);
            assert_eq!(
                buf.decode_raw(&frame[1..], &limits)
                    .map(|r| r.to_node())
                    .ok(),
                (frame[0] == 0).then_some(expected)
            );
        }
        // The large frame's vectors were replaced by small ones on the next decode.
        assert!(buf.arena.nodes.capacity() <= SPARE_NODES);
        let cap = buf.arena.text.capacity();
        assert!(buf.decode(&plain, &limits).is_ok());
        assert_eq!(buf.arena.text.capacity(), cap, "steady state does not grow");
        // Errors are the same as `Tree`'s, and leave the buffer usable.
        for cut in 0..plain.len() {
            let a = format!("{:?}", buf.decode(&plain[..cut], &limits).err());
            let b = format!("{:?}", Tree::decode(&plain[..cut], &limits).err());
            assert_eq!(a, b);
        }
        assert_eq!(buf.decode(&plain, &limits).unwrap().to_node(), node);
    }

    #[test]
    fn deepest_nesting_fits_a_small_stack() {
        // MAX_DEPTH levels through the fast path (and the full parser behind it) in a thread
        // with a 2 MiB stack, also in unoptimized builds.
        let mut deep = Node::new("x");
        for _ in 1..crate::binary::MAX_DEPTH {
            deep = Node::new("x").children([deep]);
        }
        let bytes = encode(&deep).unwrap();
        let limits = DecodeLimits {
            max_depth: usize::MAX,
            ..DecodeLimits::DEFAULT
        };
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                assert!(Tree::fast_accepts(&bytes[1..], &limits));
                let mut buf = TreeBuf::new();
                let root = buf.decode(&bytes, &limits).unwrap();
                assert_eq!(root.tag(), "x");
                assert_eq!(root.children().len(), 1);
                let full = Tree::decode_raw_full(&bytes[1..], &limits).unwrap();
                assert!(full.arena == Tree::decode(&bytes, &limits).unwrap().arena);
            })
            .unwrap()
            .join()
            .unwrap();
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
