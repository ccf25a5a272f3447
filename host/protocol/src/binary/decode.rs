//! Bytes → node, for untrusted input.
//!
//! Contract: [`decode_with_limits`] reads one frame plaintext (flags byte, then a node, zlib
//! inflated first if flag bit `0x02` is set) and returns the node or a [`DecodeError`] that says
//! what is wrong and where. It never panics, rejects trailing bytes, and never allocates more
//! than the input (or the capped inflated input) can justify: lengths are checked against the
//! remaining bytes before anything is reserved, and nesting depth, node count and inflated size
//! are bounded by [`DecodeLimits`].
//!
//! Reading follows the reference decoders: `BINARY_*` content is bytes; every other string form
//! (tokens, packed strings, raw attribute values) is a string; JID forms (`JID_PAIR`, `AD_JID`,
//! `FB_JID`, `INTEROP_JID`) are [`Jid`]s. A raw attribute value that parses as a JID is a JID too,
//! because that is how the encoder would write that string. Stricter than the references, and on
//! purpose: tags and keys must be plain strings (not JIDs), strings must be UTF-8, a packed string
//! must be non-empty with `0xF` padding exactly in its last nibble, and JID parts must satisfy the
//! [`Jid`] rules (`FB_JID` must name `msgr`, `INTEROP_JID` `interop`).
//!
//! Canonical input (what this encoder, Baileys and whatsmeow write) re-encodes byte for byte.
//! Non-canonical spellings of the same value (a dictionary word sent raw, a short list sent as
//! `LIST_16`, an empty string sent as `LIST_EMPTY`, the ignored top nibble of a `BINARY_20`
//! length) decode to the same node and re-encode canonically.
//!
//! Structure: one validating, single-pass recursive parser ([`Parser`]) that is generic over a
//! [`Build`]er. The parser does every check and hands the builder validated items that still
//! point into the input ([`Text`]: a dictionary code, a UTF-8-checked input slice, or a checked
//! packed string not yet unpacked); builders never fail. Two builders exist: [`NodeBuilder`]
//! makes the owned [`Node`] directly (one allocation per owned string, list and byte blob, no
//! intermediate tree), and `tree::Arena` fills the flat arena of a [`Tree`](super::Tree). Both
//! are instances of the same parser code, so they accept and reject exactly the same input with
//! the same errors (`reference.rs` keeps the previous decoder for differential tests). Trees
//! try `fast.rs` first, a specialised pass over the common forms that falls back to this parser
//! for everything else (so this parser alone decides every error).
//!
//! Performance notes (callgrind, 213-byte benchmark stanza; `docs/benchmarks.md`): the hot paths
//! are `LIST_8` headers, single-byte tokens for tags/keys/values, nibble/hex-packed ids and JID
//! users, and `BINARY_8` blobs; each has an inlined fast path. Packed strings are validated with
//! one table lookup per byte and unpacked only by the builder; JID users that come packed are
//! checked from that same lookup instead of being re-scanned, and `JID_PAIR` / `AD_JID` skip the
//! device and agent rules their wire form cannot break. Each nesting level is one stack frame of
//! [`Parser::node`] (attributes and non-list content are read in helpers), so [`MAX_DEPTH`]
//! levels fit a 2 MiB thread stack even unoptimized.

use std::borrow::Cow;
use std::io::Read as _;

use super::jid::{
    DOMAIN_HOSTED, DOMAIN_HOSTED_LID, DOMAIN_LID, Jid, JidError, JidParts, KNOWN_SERVERS, Server,
    check_wire_parts, check_wire_rest, user_is_clean,
};
use super::node::{AttrValue, Content, Node};
use super::token::{self, WordCode};

/// Flag bit of the first byte: the rest of the frame is zlib-compressed.
pub const FLAG_COMPRESSED: u8 = 0x02;

/// Hard ceiling on nesting depth, for the decoder ([`DecodeLimits::max_depth`] is clamped to it)
/// and the encoder: both recurse once per level, and this keeps their stack use far below a
/// small (2 MiB) thread stack whatever the caller configures.
pub const MAX_DEPTH: usize = 1024;

/// Bounds on what one decode may build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Deepest nesting of nodes (the root is depth 1). Also bounds recursion, so values above
    /// [`MAX_DEPTH`] are treated as `MAX_DEPTH`.
    pub max_depth: usize,
    /// Most nodes in the whole tree; this also bounds every list length.
    pub max_nodes: usize,
    /// Largest input after inflating (for uncompressed input: its own length).
    pub max_len: usize,
}

impl DecodeLimits {
    /// The defaults used by [`decode`] and [`decode_raw`]: depth 64, 250 000 nodes, 16 MiB (the
    /// largest frame the 3-byte frame length allows).
    pub const DEFAULT: Self = Self {
        max_depth: 64,
        max_nodes: 250_000,
        max_len: 16 << 20,
    };
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why bytes are not a valid node. Offsets count from the first byte after the flags byte (the
/// inflated data, for compressed frames).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is empty: not even a flags byte.
    #[error("empty frame: no flags byte")]
    Empty,
    /// The input ends inside an item.
    #[error("input ends at offset {offset}: {needed} more bytes needed")]
    Truncated {
        /// Where the missing bytes would start.
        offset: usize,
        /// How many bytes were needed there.
        needed: usize,
    },
    /// Bytes are left after the root node.
    #[error("{remaining} trailing bytes after the node at offset {offset}")]
    TrailingBytes {
        /// Where the trailing bytes start.
        offset: usize,
        /// How many there are.
        remaining: usize,
    },
    /// A byte is not a valid tag where it stands.
    #[error("byte {tag:#04x} at offset {offset} is not a valid {expected}")]
    InvalidTag {
        /// The byte.
        tag: u8,
        /// Its offset.
        offset: usize,
        /// What was expected there.
        expected: &'static str,
    },
    /// A node's list has no items (not even a tag).
    #[error("node at offset {offset} has an empty list (no tag)")]
    EmptyNode {
        /// Offset of the list header.
        offset: usize,
    },
    /// A node's tag is the empty string.
    #[error("node at offset {offset} has an empty tag")]
    EmptyTag {
        /// Offset of the tag.
        offset: usize,
    },
    /// A string is not valid UTF-8.
    #[error("string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Offset of the string bytes.
        offset: usize,
    },
    /// A packed string is malformed (empty, bad nibble, or wrong padding).
    #[error("packed string at offset {offset}: {reason}")]
    InvalidPacked {
        /// Offset of the packed string's tag.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A JID's parts break the JID rules.
    #[error("invalid JID at offset {offset}: {source}")]
    InvalidJid {
        /// Offset of the JID's tag.
        offset: usize,
        /// What is wrong.
        #[source]
        source: Box<JidError>,
    },
    /// An `FB_JID` (only for `msgr`) or `INTEROP_JID` (only for `interop`) names another server.
    #[error("{form} at offset {offset} names server {found:?}, which that form does not carry")]
    WrongJidServer {
        /// Offset of the JID's tag.
        offset: usize,
        /// The wire form: `"FB_JID"` or `"INTEROP_JID"`.
        form: &'static str,
        /// The server it named.
        found: Box<str>,
    },
    /// Nested deeper than [`DecodeLimits::max_depth`].
    #[error("nodes nested deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// More nodes than [`DecodeLimits::max_nodes`].
    #[error("more than {max} nodes")]
    TooManyNodes {
        /// The limit.
        max: usize,
    },
    /// The input (or inflated input) is longer than [`DecodeLimits::max_len`].
    #[error("node data is longer than the {max}-byte limit")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The zlib stream is corrupt.
    #[error("zlib inflate failed: {0}")]
    Inflate(#[source] std::io::Error),
}

/// Decodes a frame plaintext (flags byte + node) with [`DecodeLimits::DEFAULT`].
pub fn decode(frame: &[u8]) -> Result<Node, DecodeError> {
    decode_with_limits(frame, &DecodeLimits::DEFAULT)
}

/// Decodes a frame plaintext (flags byte + node), inflating it first if flag bit `0x02` is set.
/// Other flag bits are ignored, as the reference clients do.
pub fn decode_with_limits(frame: &[u8], limits: &DecodeLimits) -> Result<Node, DecodeError> {
    match body(frame, limits)? {
        Cow::Borrowed(body) => decode_raw_with_limits(body, limits),
        Cow::Owned(inflated) => decode_raw_with_limits(&inflated, limits),
    }
}

/// Decodes a node without the flags byte, with [`DecodeLimits::DEFAULT`].
pub fn decode_raw(bytes: &[u8]) -> Result<Node, DecodeError> {
    decode_raw_with_limits(bytes, &DecodeLimits::DEFAULT)
}

/// Decodes a node without the flags byte.
pub fn decode_raw_with_limits(bytes: &[u8], limits: &DecodeLimits) -> Result<Node, DecodeError> {
    parse(bytes, limits, &mut NodeBuilder)
}

/// The node bytes of a frame: the rest after the flags byte, inflated if the frame is compressed
/// (at most `limits.max_len + 1` bytes are inflated, so an oversized result is caught by
/// [`parse`]'s length check without inflating a bomb).
pub(super) fn body<'f>(
    frame: &'f [u8],
    limits: &DecodeLimits,
) -> Result<Cow<'f, [u8]>, DecodeError> {
    let Some((&flags, body)) = frame.split_first() else {
        return Err(DecodeError::Empty);
    };
    if flags & FLAG_COMPRESSED == 0 {
        return Ok(Cow::Borrowed(body));
    }
    let mut inflated = Vec::new();
    inflate_into(body, limits, &mut inflated)?;
    Ok(Cow::Owned(inflated))
}

/// Inflates a compressed frame body into `out` (cleared first), at most `limits.max_len + 1`
/// bytes (see [`body`]).
pub(super) fn inflate_into(
    body: &[u8],
    limits: &DecodeLimits,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    out.clear();
    let cap = u64::try_from(limits.max_len)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    flate2::read::ZlibDecoder::new(body)
        .take(cap)
        .read_to_end(out)
        .map_err(DecodeError::Inflate)?;
    Ok(())
}

/// Parses one node (no flags byte) with `builder`; returns the root (which may point into arenas
/// the builder owns).
pub(super) fn parse<B: Build>(
    input: &[u8],
    limits: &DecodeLimits,
    builder: &mut B,
) -> Result<B::Node, DecodeError> {
    let len = input.len();
    let max_len = limits.max_len.min(MAX_INPUT);
    if len > max_len {
        return Err(DecodeError::TooLarge { max: max_len });
    }
    if limits.max_nodes == 0 {
        return Err(DecodeError::TooManyNodes { max: 0 });
    }
    let mut parser = Parser {
        buf: input,
        pos: 0,
        builder,
        nodes: 1,
        max_depth: limits.max_depth.min(MAX_DEPTH),
        max_nodes: limits.max_nodes,
    };
    let root = parser.node(1).map_err(|e| *e)?;
    if parser.pos != len {
        return Err(DecodeError::TrailingBytes {
            offset: parser.pos,
            remaining: len - parser.pos,
        });
    }
    Ok(root)
}

/// Offsets in a [`Tree`](super::Tree) are `u32`, and unpacked text can be twice the input:
/// inputs stay below 2 GiB whatever the limits say.
pub(super) const MAX_INPUT: usize = (u32::MAX / 2) as usize;

/// Smallest encoded node (`f8 01 <token>`): bounds how many nodes the remaining bytes can hold.
pub(super) const MIN_NODE_LEN: usize = 3;

/// A string item the parser has fully validated, as a small `Copy` handle into the input: the
/// builders resolve it (a `&'static str` for dictionary words, an input slice for raw strings,
/// unpacked characters for packed ones). Offsets fit `u32` because inputs stay below
/// [`MAX_INPUT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Text {
    /// A dictionary word (see [`token::by_code`]); code 0 is the empty string (`LIST_EMPTY`).
    Word(WordCode),
    /// UTF-8 (checked) input bytes `start..start + len`.
    Raw { start: u32, len: u32 },
    /// A nibble- or hex-packed string in input bytes `start..start + len` (at least one byte)
    /// whose nibbles and padding were checked.
    Packed { start: u32, len: u32, form: Form },
}

/// How a packed string is packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Form {
    /// `HEX_8` (else `NIBBLE_8`).
    pub(super) hex: bool,
    /// The last byte's low nibble is the `0xF` padding.
    pub(super) odd: bool,
    /// A character is `.` (only possible in nibble strings).
    pub(super) dot: bool,
}

impl Text {
    #[inline]
    pub(super) fn is_empty(self) -> bool {
        match self {
            Self::Word(code) => code == 0,
            Self::Raw { len, .. } => len == 0,
            Self::Packed { .. } => false,
        }
    }

    /// The bytes of a raw string.
    #[inline]
    fn slice(buf: &[u8], start: u32, len: u32) -> &[u8] {
        let start = start as usize;
        buf.get(start..start + len as usize).unwrap_or_default()
    }

    /// The string of a word or raw string; `None` for a packed string (see
    /// [`Text::unpack_into`]).
    #[inline]
    pub(super) fn as_str(self, buf: &[u8]) -> Option<&str> {
        match self {
            Self::Word(code) => Some(token::by_code(code)),
            // Checked by the parser before the handle was made; checking again keeps the crate
            // free of `unsafe` (a failure would read as "", and cannot happen).
            Self::Raw { start, len } => {
                Some(std::str::from_utf8(Self::slice(buf, start, len)).unwrap_or_default())
            }
            Self::Packed { .. } => None,
        }
    }

    /// Appends the characters of a packed string (ASCII) to `out`; other strings append
    /// nothing.
    #[inline]
    pub(super) fn unpack_into(self, buf: &[u8], out: &mut Vec<u8>) {
        let Self::Packed { start, len, form } = self else {
            return;
        };
        let bytes = Self::slice(buf, start, len);
        let pairs = if form.hex { &HEX_PAIRS } else { &NIBBLE_PAIRS };
        // Grow once, then write two characters per byte (no per-byte capacity checks).
        let at = out.len();
        out.resize(at + 2 * bytes.len(), 0);
        if let Some(dst) = out.get_mut(at..) {
            for (dst, &b) in dst.chunks_exact_mut(2).zip(bytes) {
                dst.copy_from_slice(&pairs[usize::from(b)]);
            }
        }
        if form.odd {
            out.pop();
        }
    }

    /// The string as a new `String`.
    #[inline]
    pub(super) fn into_string(self, buf: &[u8]) -> String {
        match self.as_str(buf) {
            Some(s) => s.to_owned(),
            None => {
                let mut out = match self {
                    Self::Packed { len, .. } => Vec::with_capacity(2 * len as usize),
                    _ => Vec::new(),
                };
                self.unpack_into(buf, &mut out);
                // Unpacked characters come from the ASCII alphabets, so this never fails (nor
                // yields the empty default); checking keeps the crate free of `unsafe`.
                String::from_utf8(out).unwrap_or_default()
            }
        }
    }

    /// The string as a `Cow`: dictionary words are borrowed, everything else is owned.
    #[inline]
    pub(super) fn to_cow(self, buf: &[u8]) -> Cow<'static, str> {
        match self {
            Self::Word(code) => Cow::Borrowed(token::by_code(code)),
            other => Cow::Owned(other.into_string(buf)),
        }
    }
}

/// Byte → its two characters, for `NIBBLE_8` (`0-9 - .`; the invalid nibbles 0xC..0xF never
/// reach unpacking, so their entries do not matter).
pub(super) static NIBBLE_PAIRS: [[u8; 2]; 256] = pair_table(b"0123456789-.????");
/// Byte → its two characters, for `HEX_8` (`0-9 A-F`).
pub(super) static HEX_PAIRS: [[u8; 2]; 256] = pair_table(b"0123456789ABCDEF");

const fn pair_table(alphabet: &[u8; 16]) -> [[u8; 2]; 256] {
    let mut table = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = [alphabet[b >> 4], alphabet[b & 0x0f]];
        b += 1;
    }
    table
}

/// `NIBBLE_CLASS[b]`: [`BAD_HIGH`] / [`BAD_LOW`] if the high / low nibble of `b` is not in the
/// nibble alphabet (0xC..0xF), [`DOT_HIGH`] / [`DOT_LOW`] if it is `.` (0xB).
static NIBBLE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let (high, low) = (b >> 4, b & 0x0f);
        let mut class = 0;
        if high >= 0x0c {
            class |= BAD_HIGH;
        }
        if low >= 0x0c {
            class |= BAD_LOW;
        }
        if high == 0x0b {
            class |= DOT_HIGH;
        }
        if low == 0x0b {
            class |= DOT_LOW;
        }
        table[b] = class;
        b += 1;
    }
    table
};
/// The [`NIBBLE_CLASS`]es of a nibble string's non-empty `bytes` or-ed together, without the
/// padding nibble of an `odd` string: every nibble but the padding must be in the alphabet
/// (no `BAD_*` bit), and `DOT_*` bits tell whether a `.` occurs.
#[inline]
pub(super) fn nibble_class(bytes: &[u8], odd: bool) -> u8 {
    let Some((&last, init)) = bytes.split_last() else {
        return 0;
    };
    let class = init
        .iter()
        .fold(0, |acc, &b| acc | NIBBLE_CLASS[usize::from(b)]);
    class | NIBBLE_CLASS[usize::from(last)] & if odd { BAD_HIGH | DOT_HIGH } else { u8::MAX }
}
pub(super) const BAD_HIGH: u8 = 1;
pub(super) const BAD_LOW: u8 = 2;
pub(super) const DOT_HIGH: u8 = 4;
pub(super) const DOT_LOW: u8 = 8;

/// A validated JID item.
#[derive(Debug)]
pub(super) struct JidItem {
    pub(super) user: Text,
    pub(super) server: ServerItem,
    pub(super) agent: u8,
    pub(super) device: Option<u16>,
    pub(super) integrator: u16,
}

impl JidItem {
    /// The owned JID.
    #[inline]
    pub(super) fn into_jid(self, buf: &[u8]) -> Jid {
        Jid::from_checked_parts(
            self.user.into_string(buf),
            self.server.into_server(),
            self.agent,
            self.device,
            self.integrator,
        )
    }
}

/// A JID's server: an index into [`KNOWN_SERVERS`], or the name of another (rare, valid) server.
#[derive(Debug)]
pub(super) enum ServerItem {
    Known(u8),
    Other(Box<str>),
}

impl ServerItem {
    fn from_server(server: Server) -> Self {
        match server {
            Server::Other(name) => Self::Other(name),
            known => Self::Known(known.known_index().unwrap_or(0)),
        }
    }

    pub(super) fn into_server(self) -> Server {
        match self {
            Self::Known(i) => KNOWN_SERVERS[usize::from(i)].clone(),
            Self::Other(name) => Server::Other(name),
        }
    }
}

/// An attribute value item.
#[derive(Debug)]
pub(super) enum Value {
    Str(Text),
    Jid(JidItem),
}

/// A content item; `C` is the builder's finished list of children.
#[derive(Debug)]
pub(super) enum Item<C> {
    None,
    Nodes(C),
    /// Raw bytes `start..start + len` of the input.
    Bytes {
        start: u32,
        len: u32,
    },
    Str(Text),
    Jid(JidItem),
}

/// What the parser builds with. Calls come in document order: for each node, `attrs`, one
/// `attr` per attribute, then (for a list) `children` and the children themselves, each handed
/// to `child`, and finally `node`. The parser checks everything first; builders never fail.
/// `buf` is always the parser's input, which the handles point into.
pub(super) trait Build {
    /// A finished node.
    type Node;
    /// Attributes being collected.
    type Attrs;
    /// Children being collected.
    type Children;
    /// Starts the attributes of a node: `count` (at most half the remaining input) follow, or
    /// the parse fails before the node is finished, so a finished node has exactly `count`.
    fn attrs(&mut self, count: usize) -> Self::Attrs;
    /// Adds an attribute.
    fn attr(&mut self, buf: &[u8], attrs: &mut Self::Attrs, key: Text, value: Value);
    /// Starts a list of exactly `len` children (bounded by the input and the limits).
    fn children(&mut self, len: usize) -> Self::Children;
    /// Adds the next child.
    fn child(&mut self, children: &mut Self::Children, node: Self::Node);
    /// Finishes a node.
    fn node(
        &mut self,
        buf: &[u8],
        tag: Text,
        attrs: Self::Attrs,
        content: Item<Self::Children>,
    ) -> Self::Node;
}

/// Builds the owned [`Node`] directly.
pub(super) struct NodeBuilder;

impl Build for NodeBuilder {
    type Node = Node;
    type Attrs = Vec<(Cow<'static, str>, AttrValue)>;
    type Children = Vec<Node>;

    #[inline]
    fn attrs(&mut self, count: usize) -> Self::Attrs {
        Vec::with_capacity(count)
    }

    #[inline]
    fn attr(&mut self, buf: &[u8], attrs: &mut Self::Attrs, key: Text, value: Value) {
        let value = match value {
            Value::Str(text) => AttrValue::Str(text.to_cow(buf)),
            Value::Jid(jid) => AttrValue::Jid(jid.into_jid(buf)),
        };
        attrs.push((key.to_cow(buf), value));
    }

    #[inline]
    fn children(&mut self, len: usize) -> Self::Children {
        Vec::with_capacity(len)
    }

    #[inline]
    fn child(&mut self, children: &mut Self::Children, node: Node) {
        children.push(node);
    }

    #[inline]
    fn node(
        &mut self,
        buf: &[u8],
        tag: Text,
        attrs: Self::Attrs,
        content: Item<Vec<Node>>,
    ) -> Node {
        let content = match content {
            Item::None => Content::None,
            Item::Nodes(children) => Content::Nodes(children),
            Item::Bytes { start, len } => Content::Bytes(Text::slice(buf, start, len).to_vec()),
            Item::Str(text) => Content::Str(text.to_cow(buf)),
            Item::Jid(jid) => Content::Jid(jid.into_jid(buf)),
        };
        Node {
            tag: tag.to_cow(buf),
            attrs,
            content,
        }
    }
}

/// Internal result: the error is boxed so the hot path moves small values.
type R<T> = Result<T, Box<DecodeError>>;

#[cold]
#[inline(never)]
fn fail<T>(error: DecodeError) -> R<T> {
    Err(Box::new(error))
}

/// A plain string item: a checked string, or raw `BINARY_*` bytes `start..start + len` (a
/// string for names and attribute values, bytes for content).
enum Piece {
    Str(Text),
    Raw { start: u32, len: u32 },
}

const TAG_NAME: &str = "node tag";
const KEY_NAME: &str = "attribute key";
const JID_PART: &str = "JID part (a plain string)";

/// The validating parser. `nodes` counts node slots handed out so far (the root is 1), which
/// [`DecodeLimits::max_nodes`] bounds.
struct Parser<'b, 'x, B> {
    buf: &'b [u8],
    pos: usize,
    builder: &'x mut B,
    nodes: usize,
    max_depth: usize,
    max_nodes: usize,
}

impl<B: Build> Parser<'_, '_, B> {
    #[inline]
    fn byte(&mut self) -> R<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => fail(DecodeError::Truncated {
                offset: self.pos,
                needed: 1,
            }),
        }
    }

    /// Skips the next `n` bytes, returning where they start.
    #[inline]
    fn take(&mut self, n: usize) -> R<usize> {
        let start = self.pos;
        if n <= self.buf.len() - start {
            self.pos = start + n;
            Ok(start)
        } else {
            fail(DecodeError::Truncated {
                offset: start,
                needed: n,
            })
        }
    }

    #[inline]
    fn u16(&mut self) -> R<u16> {
        let at = self.take(2)?;
        Ok(u16::from_be_bytes([self.buf[at], self.buf[at + 1]]))
    }

    #[inline]
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads a node.
    fn node(&mut self, depth: usize) -> R<B::Node> {
        if depth > self.max_depth {
            return fail(DecodeError::TooDeep {
                max: self.max_depth,
            });
        }
        let size = self.list_header()?;
        let tag_offset = self.pos;
        let tag = self.name(TAG_NAME)?;
        if tag.is_empty() {
            return fail(DecodeError::EmptyTag { offset: tag_offset });
        }
        let attrs = self.attrs((size - 1) / 2)?;
        let content = if size % 2 == 1 {
            Item::None
        } else if let Some(&tag @ (token::LIST_EMPTY | token::LIST_8 | token::LIST_16)) =
            self.buf.get(self.pos)
        {
            // Children are read here rather than in a helper, so each nesting level costs one
            // stack frame (`MAX_DEPTH` levels fit a 2 MiB thread stack, also unoptimized).
            let offset = self.pos;
            self.pos += 1;
            let len = self.list_len(tag, offset)?;
            let mut children = self.builder.children(len);
            for _ in 0..len {
                let child = self.node(depth + 1)?;
                self.builder.child(&mut children, child);
            }
            Item::Nodes(children)
        } else {
            self.content()?
        };
        Ok(self.builder.node(self.buf, tag, attrs, content))
    }

    /// A node's `count` attributes. (Kept out of [`Parser::node`], like non-list content in
    /// [`Parser::content`], so the recursion has small stack frames even in unoptimized builds:
    /// [`MAX_DEPTH`] levels must fit a 2 MiB thread stack.)
    #[inline]
    fn attrs(&mut self, count: usize) -> R<B::Attrs> {
        // Each attribute takes at least two bytes: a count the input cannot hold is caught
        // while reading, before more is reserved than the input justifies.
        let mut attrs = self.builder.attrs(count.min(self.remaining() / 2));
        for _ in 0..count {
            let key = self.name(KEY_NAME)?;
            let value = self.attr_value()?;
            self.builder.attr(self.buf, &mut attrs, key, value);
        }
        Ok(attrs)
    }

    /// A node's list header: its (non-zero) item count. `LIST_8` takes the inlined path.
    #[inline(always)]
    fn list_header(&mut self) -> R<usize> {
        if let Some(&[token::LIST_8, size @ 1..=255]) = self.buf.get(self.pos..self.pos + 2) {
            self.pos += 2;
            return Ok(usize::from(size));
        }
        self.list_header_slow()
    }

    #[inline(never)]
    fn list_header_slow(&mut self) -> R<usize> {
        let offset = self.pos;
        let tag = self.byte()?;
        let size = self.list_size(tag, offset, "node list header")?;
        if size == 0 {
            return fail(DecodeError::EmptyNode { offset });
        }
        Ok(size)
    }

    /// The size of a list whose tag byte (`LIST_*`, else an error) was just read.
    #[inline]
    fn list_size(&mut self, tag: u8, offset: usize, expected: &'static str) -> R<usize> {
        match tag {
            token::LIST_EMPTY => Ok(0),
            token::LIST_8 => self.byte().map(usize::from),
            token::LIST_16 => self.u16().map(usize::from),
            _ => fail(DecodeError::InvalidTag {
                tag,
                offset,
                expected,
            }),
        }
    }

    /// A tag, attribute key or JID part: a plain string, never a JID or a list. Single-byte
    /// tokens (almost every tag and key) take the inlined fast path.
    #[inline(always)]
    fn name(&mut self, expected: &'static str) -> R<Text> {
        if let Some(code) = self
            .buf
            .get(self.pos)
            .and_then(|&tag| token::single_code(tag))
        {
            self.pos += 1;
            return Ok(Text::Word(code));
        }
        self.name_slow(expected)
    }

    #[inline(never)]
    fn name_slow(&mut self, expected: &'static str) -> R<Text> {
        let offset = self.pos;
        let tag = self.byte()?;
        if let Some(code) = token::single_code(tag) {
            return Ok(Text::Word(code));
        }
        match self.text(tag, offset, expected)? {
            Piece::Str(s) => Ok(s),
            Piece::Raw { start, len } => self.utf8(start, len),
        }
    }

    /// An attribute value; single-byte tokens take the inlined fast path.
    #[inline(always)]
    fn attr_value(&mut self) -> R<Value> {
        if let Some(code) = self
            .buf
            .get(self.pos)
            .and_then(|&tag| token::single_code(tag))
        {
            self.pos += 1;
            return Ok(Value::Str(Text::Word(code)));
        }
        self.attr_value_slow()
    }

    #[inline(never)]
    fn attr_value_slow(&mut self) -> R<Value> {
        let offset = self.pos;
        let tag = self.byte()?;
        if let Some(code) = token::single_code(tag) {
            return Ok(Value::Str(Text::Word(code)));
        }
        if is_jid_tag(tag) {
            return self.jid(tag, offset).map(Value::Jid);
        }
        match self.text(tag, offset, "attribute value")? {
            Piece::Str(s) => Ok(Value::Str(s)),
            Piece::Raw { start, len } => {
                let text = self.utf8(start, len)?;
                Ok(match self.jid_in_raw(start, len) {
                    Some(jid) => Value::Jid(jid),
                    None => Value::Str(text),
                })
            }
        }
    }

    /// The length of a child list whose tag byte (at `offset`) was just read, once the input and
    /// the node limit are known to have room for that many children.
    #[inline]
    fn list_len(&mut self, tag: u8, offset: usize) -> R<usize> {
        let len = match (tag, self.buf.get(self.pos)) {
            (token::LIST_8, Some(&len)) => {
                self.pos += 1;
                usize::from(len)
            }
            _ => self.list_size(tag, offset, "list")?,
        };
        if len > 0 {
            // The children must fit the remaining bytes and the node limit before anything is
            // reserved for them.
            if len > self.remaining() / MIN_NODE_LEN {
                let needed = len * MIN_NODE_LEN - self.remaining();
                return fail(DecodeError::Truncated {
                    offset: self.pos,
                    needed,
                });
            }
            if self.nodes + len > self.max_nodes {
                return fail(DecodeError::TooManyNodes {
                    max: self.max_nodes,
                });
            }
            self.nodes += len;
        }
        Ok(len)
    }

    /// Content that is not a list.
    #[inline]
    fn content(&mut self) -> R<Item<B::Children>> {
        let offset = self.pos;
        let tag = self.byte()?;
        if let Some(code) = token::single_code(tag) {
            return Ok(Item::Str(Text::Word(code)));
        }
        if tag == token::BINARY_8 {
            // The common blob form (ciphertext, keys), read inline.
            let len = usize::from(self.byte()?);
            let start = self.take(len)?;
            return Ok(Item::Bytes {
                start: start as u32,
                len: len as u32,
            });
        }
        self.leaf(tag, offset)
    }

    /// Content that is not a list, a single-byte token or `BINARY_8`, whose tag byte (at
    /// `offset`) was just read.
    #[inline(never)]
    fn leaf(&mut self, tag: u8, offset: usize) -> R<Item<B::Children>> {
        if is_jid_tag(tag) {
            return self.jid(tag, offset).map(Item::Jid);
        }
        Ok(match self.text(tag, offset, "node content")? {
            Piece::Str(s) => Item::Str(s),
            Piece::Raw { start, len } => Item::Bytes { start, len },
        })
    }

    /// The rest of a plain string item whose tag byte (not a single-byte token) was just read.
    #[inline]
    fn text(&mut self, tag: u8, offset: usize, expected: &'static str) -> R<Piece> {
        match tag {
            token::BINARY_8 => {
                let len = usize::from(self.byte()?);
                self.raw(len)
            }
            token::NIBBLE_8 | token::HEX_8 => self.packed(tag, offset).map(Piece::Str),
            token::LIST_EMPTY => Ok(Piece::Str(Text::Word(0))),
            token::DICTIONARY_0..=token::DICTIONARY_3 => {
                let index = self.byte()?;
                match token::double_code(tag - token::DICTIONARY_0, index) {
                    Some(code) => Ok(Piece::Str(Text::Word(code))),
                    None => fail(DecodeError::InvalidTag {
                        tag,
                        offset,
                        expected,
                    }),
                }
            }
            token::BINARY_20 => {
                let at = self.take(3)?;
                let b = &self.buf[at..at + 3];
                let len =
                    (usize::from(b[0] & 0x0f) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
                self.raw(len)
            }
            token::BINARY_32 => {
                let at = self.take(4)?;
                let b = &self.buf[at..at + 4];
                let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                self.raw(usize::try_from(len).unwrap_or(usize::MAX))
            }
            _ => fail(DecodeError::InvalidTag {
                tag,
                offset,
                expected,
            }),
        }
    }

    // Offsets and lengths fit `u32`: inputs are shorter than `MAX_INPUT`.
    #[inline]
    fn raw(&mut self, len: usize) -> R<Piece> {
        let start = self.take(len)?;
        Ok(Piece::Raw {
            start: start as u32,
            len: len as u32,
        })
    }

    #[inline]
    fn utf8(&self, start: u32, len: u32) -> R<Text> {
        match std::str::from_utf8(Text::slice(self.buf, start, len)) {
            Ok(_) => Ok(Text::Raw { start, len }),
            Err(_) => fail(DecodeError::InvalidUtf8 {
                offset: start as usize,
            }),
        }
    }

    /// Checks a nibble or hex string (one table lookup per byte; unpacking is the builder's).
    fn packed(&mut self, tag: u8, offset: usize) -> R<Text> {
        let header = self.byte()?;
        let odd = header & 0x80 != 0;
        let n = usize::from(header & 0x7f);
        if n == 0 {
            return fail(DecodeError::InvalidPacked {
                offset,
                reason: "empty packed string",
            });
        }
        let at = self.take(n)?;
        let bytes = &self.buf[at..at + n];
        let last = bytes[n - 1];
        if odd && last & 0x0f != 0x0f {
            return fail(DecodeError::InvalidPacked {
                offset,
                reason: "odd-length padding nibble is not 0xF",
            });
        }
        let hex = tag == token::HEX_8;
        let mut dot = false;
        if !hex {
            let class = nibble_class(bytes, odd);
            if class & (BAD_HIGH | BAD_LOW) != 0 {
                return fail(bad_nibble(bytes, odd, offset));
            }
            dot = class & (DOT_HIGH | DOT_LOW) != 0;
        }
        Ok(Text::Packed {
            start: at as u32,
            len: n as u32,
            form: Form { hex, odd, dot },
        })
    }

    /// The rest of a JID item whose tag byte ([`is_jid_tag`]) was just read.
    #[inline(never)]
    fn jid(&mut self, tag: u8, offset: usize) -> R<JidItem> {
        let (user, server, agent, device, integrator) = match tag {
            token::AD_JID => {
                let domain = self.byte()?;
                let device = self.byte()?;
                let user = self.name(JID_PART)?;
                // The domain byte names the server; any other value is an agent on
                // s.whatsapp.net (`Server::from_ad_domain`).
                let (server, agent) = match domain {
                    DOMAIN_LID => (KNOWN_LID, 0),
                    DOMAIN_HOSTED => (KNOWN_HOSTED, 0),
                    DOMAIN_HOSTED_LID => (KNOWN_HOSTED_LID, 0),
                    agent => (KNOWN_WHATSAPP, agent),
                };
                // A one-byte device on these servers, with an agent only on s.whatsapp.net and
                // never a reserved one: only the user can be wrong.
                if !user.is_empty() && self.user_is_clean(user, &KNOWN_SERVERS[usize::from(server)])
                {
                    return Ok(JidItem {
                        user,
                        server: ServerItem::Known(server),
                        agent,
                        device: Some(u16::from(device)),
                        integrator: 0,
                    });
                }
                (
                    user,
                    ServerItem::Known(server),
                    agent,
                    Some(u16::from(device)),
                    0,
                )
            }
            token::JID_PAIR => {
                let user = self.name(JID_PART)?;
                let server = self.server(offset)?;
                // No device and no agent: only the user can be wrong.
                if let ServerItem::Known(i) = server
                    && self.user_is_clean(user, &KNOWN_SERVERS[usize::from(i)])
                {
                    return Ok(JidItem {
                        user,
                        server,
                        agent: 0,
                        device: None,
                        integrator: 0,
                    });
                }
                (user, server, 0, None, 0)
            }
            token::FB_JID => {
                let user = self.name(JID_PART)?;
                let device = self.u16()?;
                let server = self.server(offset)?;
                expect_server(&server, &Server::Messenger, "FB_JID", offset)?;
                (user, server, 0, Some(device), 0)
            }
            _ => {
                let user = self.name(JID_PART)?;
                let device = self.u16()?;
                let integrator = self.u16()?;
                let server = self.server(offset)?;
                expect_server(&server, &Server::Interop, "INTEROP_JID", offset)?;
                (user, server, 0, Some(device), integrator)
            }
        };
        let checked = match &server {
            ServerItem::Known(i) => self.check_jid(
                user,
                &KNOWN_SERVERS[usize::from(*i)],
                agent,
                device,
                integrator,
            ),
            ServerItem::Other(name) => {
                let found = Server::Other(name.clone());
                self.check_jid(user, &found, agent, device, integrator)
            }
        };
        match checked {
            Ok(integrator) => Ok(JidItem {
                user,
                server,
                agent,
                device,
                integrator,
            }),
            Err(source) => fail(DecodeError::InvalidJid {
                offset,
                source: Box::new(source),
            }),
        }
    }

    /// Whether `user` has no character a user part on `server` must not have.
    #[inline]
    fn user_is_clean(&self, user: Text, server: &Server) -> bool {
        text_user_is_clean(self.buf, user, server)
    }

    /// The JID rules ([`check_wire_parts`]) for a user handle.
    #[inline]
    fn check_jid(
        &self,
        user: Text,
        server: &Server,
        agent: u8,
        device: Option<u16>,
        integrator: u16,
    ) -> Result<u16, JidError> {
        if self.user_is_clean(user, server) {
            check_wire_rest(user.is_empty(), server, agent, device, integrator)
        } else {
            // Rare: let the full check name the offending user.
            let name = user.into_string(self.buf);
            check_wire_parts(name.as_bytes(), server, agent, device, integrator)
        }
    }

    /// A JID's server name.
    #[inline]
    fn server(&mut self, offset: usize) -> R<ServerItem> {
        let parsed = match self.name(JID_PART)? {
            Text::Word(S_WHATSAPP_NET) => return Ok(ServerItem::Known(0)),
            text => match text.as_str(self.buf) {
                Some(name) => Server::parse(name),
                None => Server::parse(&text.into_string(self.buf)),
            },
        };
        match parsed {
            Ok(server) => Ok(ServerItem::from_server(server)),
            Err(source) => fail(DecodeError::InvalidJid {
                offset,
                source: Box::new(source),
            }),
        }
    }

    /// A raw attribute string with `@` that is a valid JID is read as that JID: the encoder
    /// writes such a string as a JID, so this keeps `decode(encode(decode(x))) == decode(x)`.
    fn jid_in_raw(&self, start: u32, len: u32) -> Option<JidItem> {
        let text = std::str::from_utf8(Text::slice(self.buf, start, len)).ok()?;
        if !text.contains('@') {
            return None;
        }
        let parts = JidParts::parse(text).ok()?;
        // The user is a substring of `text`, which starts at `start` in the input.
        let user_start = start as usize + (parts.user.as_ptr() as usize - text.as_ptr() as usize);
        Some(JidItem {
            user: Text::Raw {
                start: user_start as u32,
                len: parts.user.len() as u32,
            },
            server: ServerItem::from_server(parts.server.into_owned()),
            agent: parts.agent,
            device: parts.device,
            integrator: parts.integrator,
        })
    }
}

/// Whether the user handle `user` (into `buf`) has no character a user part on `server` must
/// not have.
#[inline]
pub(super) fn text_user_is_clean(buf: &[u8], user: Text, server: &Server) -> bool {
    match user {
        // Packed characters are `0-9 A-F - .`: only '.' (on s.whatsapp.net) is forbidden in a
        // user.
        Text::Packed { form, .. } => !(form.dot && *server == Server::WhatsApp),
        other => user_is_clean(other.as_str(buf).unwrap_or_default().as_bytes(), server),
    }
}

/// The single-byte token of `s.whatsapp.net` ([`Server::WhatsApp`], index 0 of
/// [`KNOWN_SERVERS`]); a unit test checks both facts.
pub(super) const S_WHATSAPP_NET: WordCode = 3;
/// Indices in [`KNOWN_SERVERS`] of the `AD_JID` servers (a unit test checks them).
pub(super) const KNOWN_WHATSAPP: u8 = 0;
pub(super) const KNOWN_LID: u8 = 4;
pub(super) const KNOWN_HOSTED: u8 = 8;
pub(super) const KNOWN_HOSTED_LID: u8 = 9;

#[inline]
fn is_jid_tag(tag: u8) -> bool {
    matches!(
        tag,
        token::JID_PAIR | token::AD_JID | token::FB_JID | token::INTEROP_JID
    )
}

fn expect_server(
    server: &ServerItem,
    expected: &Server,
    form: &'static str,
    offset: usize,
) -> R<()> {
    let found: &str = match server {
        ServerItem::Known(i) => KNOWN_SERVERS[usize::from(*i)].as_str(),
        ServerItem::Other(name) => name,
    };
    if found == expected.as_str() {
        return Ok(());
    }
    fail(DecodeError::WrongJidServer {
        offset,
        form,
        found: found.into(),
    })
}

/// The error for a nibble string with a nibble outside the alphabet: names the first one.
#[cold]
fn bad_nibble(bytes: &[u8], odd: bool, offset: usize) -> DecodeError {
    let count = 2 * bytes.len() - usize::from(odd);
    let nibble = |i: usize| {
        let byte = bytes[i / 2];
        if i.is_multiple_of(2) {
            byte >> 4
        } else {
            byte & 0x0f
        }
    };
    let value = (0..count).map(nibble).find(|&v| v >= 0x0c).unwrap_or(0x0f);
    let reason = if value == 0x0f {
        "filler nibble 0xF inside the string"
    } else {
        "nibble 0xC..0xE is not in the nibble alphabet"
    };
    DecodeError::InvalidPacked { offset, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::{AttrValue, Content, Jid, encode};

    fn dec(hex: &str) -> Result<Node, DecodeError> {
        decode(&hex::decode(hex).unwrap())
    }

    /// Wraps the encoding of an attribute value in `<a k=…/>` (`a`, `k` raw) and decodes it.
    fn attr_of(value_hex: &str) -> Result<AttrValue, DecodeError> {
        let node = dec(&format!("00f803fc0161fc016b{value_hex}"))?;
        Ok(node.attrs.into_iter().next().unwrap().1)
    }

    fn content_of(content_hex: &str) -> Result<Content, DecodeError> {
        dec(&format!("00f802fc0161{content_hex}")).map(|n| n.content)
    }

    fn s(text: &'static str) -> AttrValue {
        AttrValue::Str(Cow::Borrowed(text))
    }

    fn jid(text: &str) -> AttrValue {
        AttrValue::Jid(Jid::parse(text).unwrap())
    }

    #[test]
    fn server_constants() {
        assert_eq!(token::by_code(S_WHATSAPP_NET), "s.whatsapp.net");
        for (index, server) in [
            (KNOWN_WHATSAPP, Server::WhatsApp),
            (KNOWN_LID, Server::Lid),
            (KNOWN_HOSTED, Server::Hosted),
            (KNOWN_HOSTED_LID, Server::HostedLid),
        ] {
            assert_eq!(server.known_index(), Some(index));
            assert_eq!(KNOWN_SERVERS[usize::from(index)], server);
        }
        for domain in 0..=255u8 {
            let server = Server::from_ad_domain(domain);
            let expected = match domain {
                DOMAIN_LID => KNOWN_LID,
                DOMAIN_HOSTED => KNOWN_HOSTED,
                DOMAIN_HOSTED_LID => KNOWN_HOSTED_LID,
                _ => KNOWN_WHATSAPP,
            };
            assert_eq!(server.known_index(), Some(expected), "{domain}");
        }
    }

    #[test]
    fn reference_vectors() {
        let node = dec("00f80519041408fc03616263").unwrap();
        assert_eq!(
            node,
            Node::new("iq").attr("type", "result").attr("id", "abc")
        );
        let node = dec("00f80a19085511fa000304291657f801f80156").unwrap();
        assert_eq!(node.tag, "iq");
        assert_eq!(
            node.attr_jid("to"),
            Some(&Jid::server_jid(Server::WhatsApp))
        );
        assert_eq!(node.child_nodes(), [Node::new("ping")]);
    }

    #[test]
    fn string_tags() {
        assert_eq!(attr_of("03").unwrap(), s("s.whatsapp.net"));
        assert_eq!(attr_of("ec00").unwrap(), s("read-self"));
        assert_eq!(attr_of("ed00").unwrap(), s("reject"));
        assert_eq!(attr_of("ee00").unwrap(), s("64"));
        assert_eq!(attr_of("ef01").unwrap(), s("profile_picture"));
        assert_eq!(attr_of("ff82123f").unwrap(), s("123"));
        assert_eq!(attr_of("ff831b2a3f").unwrap(), s("1.2-3"));
        assert_eq!(attr_of("fb82abcf").unwrap(), s("ABC"));
        assert_eq!(attr_of("fb023eb0").unwrap(), s("3EB0"));
        assert_eq!(attr_of("fc00").unwrap(), s(""));
        assert_eq!(
            attr_of("00").unwrap(),
            s(""),
            "LIST_EMPTY reads as the empty string"
        );
        assert_eq!(attr_of("fc0568656c6c6f").unwrap(), s("hello"));
        assert_eq!(
            attr_of("fd00000568656c6c6f").unwrap(),
            s("hello"),
            "non-canonical BINARY_20"
        );
        assert_eq!(
            attr_of("fdf0000568656c6c6f").unwrap(),
            s("hello"),
            "top nibble of BINARY_20 is ignored"
        );
        assert_eq!(attr_of("fe0000000568656c6c6f").unwrap(), s("hello"));
        assert_eq!(attr_of("fc03697121").unwrap(), s("iq!"));
    }

    #[test]
    fn packed_boundaries() {
        let long_nibble = format!("ffc0{}7f", "77".repeat(63));
        assert_eq!(
            attr_of(&long_nibble).unwrap(),
            AttrValue::from("7".repeat(127))
        );
        let even = format!("ff7f{}", "12".repeat(127));
        assert_eq!(
            attr_of(&even).unwrap(),
            AttrValue::from("12".repeat(127)),
            "254 characters still decode"
        );
        let bad = |hex: &str| match attr_of(hex) {
            Err(DecodeError::InvalidPacked { reason, .. }) => reason,
            other => panic!("{hex}: {other:?}"),
        };
        assert!(bad("ff00").contains("empty"));
        assert!(bad("ff80").contains("empty"));
        assert!(bad("ff8112").contains("padding"));
        assert!(bad("fb81a0").contains("padding"));
        assert!(bad("ff01f1").contains("filler"));
        assert!(bad("ff01c1").contains("alphabet"));
        assert!(matches!(
            attr_of("ff0312"),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn jid_tags() {
        assert_eq!(attr_of("fa0003").unwrap(), jid("@s.whatsapp.net"));
        assert_eq!(attr_of("faff82123f03").unwrap(), jid("123@s.whatsapp.net"));
        assert_eq!(
            attr_of("f70004ff82123f").unwrap(),
            jid("123:4@s.whatsapp.net")
        );
        assert_eq!(
            attr_of("f70000ff82123f").unwrap(),
            jid("123:0@s.whatsapp.net")
        );
        assert_eq!(attr_of("f70104ff82123f").unwrap(), jid("123:4@lid"));
        assert_eq!(attr_of("f78004ff82123f").unwrap(), jid("123:4@hosted"));
        assert_eq!(attr_of("f78104ff82123f").unwrap(), jid("123:4@hosted.lid"));
        assert_eq!(
            attr_of("f705ffff82123f").unwrap(),
            jid("123.5:255@s.whatsapp.net")
        );
        let msgr = hex::encode(&encode(&Node::new("a").attr("k", "msgr")).unwrap()[9..]);
        assert_eq!(
            attr_of(&format!("f6ff82123f02bc{msgr}")).unwrap(),
            jid("123:700@msgr")
        );
        let interop = hex::encode(&encode(&Node::new("a").attr("k", "interop")).unwrap()[9..]);
        assert_eq!(
            attr_of(&format!("f5fc03616263ffff000c{interop}")).unwrap(),
            jid("12-abc:65535@interop")
        );
        // A raw string that is a JID reads as that JID (the encoder writes it as one).
        assert_eq!(
            attr_of(&format!("fc10{}", hex::encode("1@s.whatsapp.net"))).unwrap(),
            jid("1@s.whatsapp.net")
        );
        assert_eq!(
            attr_of(&format!("fc05{}", hex::encode("a@b@c"))).unwrap(),
            AttrValue::from("a@b@c")
        );
    }

    #[test]
    fn jid_errors() {
        let invalid = |hex: &str| match attr_of(hex) {
            Err(DecodeError::InvalidJid { source, .. }) => *source,
            other => panic!("{hex}: {other:?}"),
        };
        assert_eq!(invalid("fa0300"), JidError::EmptyServer);
        assert_eq!(invalid("f70003fc00"), JidError::EmptyUserWithDevice);
        assert!(
            matches!(invalid("fafc03612e6203"), JidError::InvalidUser { .. }),
            "'.' in an s.whatsapp.net user"
        );
        assert!(matches!(
            invalid("fa01fc03412042"),
            JidError::InvalidServer(_)
        ));
        let g_us = hex::encode(&encode(&Node::new("a").attr("k", "g.us")).unwrap()[9..]);
        assert!(matches!(
            attr_of(&format!("f6ff82123f0001{g_us}")),
            Err(DecodeError::WrongJidServer { form: "FB_JID", .. })
        ));
        assert!(matches!(
            attr_of(&format!("f5ff82123f00010001{g_us}")),
            Err(DecodeError::WrongJidServer {
                form: "INTEROP_JID",
                ..
            })
        ));
        // JIDs do not nest, and a JID is not a tag or key.
        assert!(matches!(
            attr_of("fafa000303"),
            Err(DecodeError::InvalidTag { tag: 0xfa, .. })
        ));
        assert!(matches!(
            dec("00f801fa0003"),
            Err(DecodeError::InvalidTag { tag: 0xfa, .. })
        ));
        assert!(matches!(
            dec("00f803fc0161fa000303"),
            Err(DecodeError::InvalidTag { tag: 0xfa, .. })
        ));
    }

    #[test]
    fn content_kinds() {
        assert_eq!(content_of("fc020102").unwrap(), Content::Bytes(vec![1, 2]));
        assert_eq!(
            content_of("fc026971").unwrap(),
            Content::Bytes(b"iq".to_vec()),
            "raw is bytes"
        );
        assert_eq!(
            content_of("fc02ff00").unwrap(),
            Content::Bytes(vec![0xff, 0]),
            "bytes need not be UTF-8"
        );
        assert_eq!(content_of("19").unwrap(), Content::Str(Cow::Borrowed("iq")));
        assert_eq!(content_of("ff82123f").unwrap(), Content::Str("123".into()));
        assert_eq!(
            content_of("fa0003").unwrap(),
            Content::Jid(Jid::server_jid(Server::WhatsApp))
        );
        assert_eq!(content_of("00").unwrap(), Content::Nodes(vec![]));
        assert_eq!(
            content_of("f801f80119").unwrap(),
            Content::Nodes(vec![Node::new("iq")])
        );
        assert!(matches!(
            content_of("f90001"),
            Err(DecodeError::Truncated { offset: 8, .. })
        ));
        assert!(matches!(content_of("f90001f80119"), Ok(Content::Nodes(_))));
        assert!(matches!(
            content_of("f9000100fc00"),
            Err(DecodeError::EmptyNode { offset: 8 })
        ));
        let mut big = String::from("fd00012c");
        big.push_str(&"ab".repeat(300));
        assert_eq!(content_of(&big).unwrap(), Content::Bytes(vec![0xab; 300]));
    }

    #[test]
    fn node_structure_errors() {
        assert!(matches!(decode(&[]), Err(DecodeError::Empty)));
        assert!(matches!(
            dec("00"),
            Err(DecodeError::Truncated {
                offset: 0,
                needed: 1
            })
        ));
        assert!(matches!(
            dec("0000"),
            Err(DecodeError::EmptyNode { offset: 0 })
        ));
        assert!(matches!(
            dec("00f80100"),
            Err(DecodeError::EmptyTag { offset: 2 })
        ));
        assert!(matches!(
            dec("00f801fc00"),
            Err(DecodeError::EmptyTag { offset: 2 })
        ));
        assert!(matches!(
            dec("0019"),
            Err(DecodeError::InvalidTag {
                tag: 0x19,
                offset: 0,
                ..
            })
        ));
        assert!(matches!(
            dec("00f80119ff"),
            Err(DecodeError::TrailingBytes {
                offset: 3,
                remaining: 1
            })
        ));
        for tag in 240..=244u8 {
            assert!(
                matches!(
                    attr_of(&format!("{tag:02x}")),
                    Err(DecodeError::InvalidTag { .. })
                ),
                "{tag}"
            );
        }
        // Attribute values cannot be lists.
        assert!(matches!(
            attr_of("f80119"),
            Err(DecodeError::InvalidTag { tag: 0xf8, .. })
        ));
        // Invalid UTF-8 in a tag, key or attribute value.
        assert!(matches!(
            dec("00f801fc01ff"),
            Err(DecodeError::InvalidUtf8 { offset: 4 })
        ));
        assert!(matches!(
            attr_of("fc02c328"),
            Err(DecodeError::InvalidUtf8 { .. })
        ));
    }

    #[test]
    fn every_truncation_of_valid_input_is_an_error() {
        let node = Node::new("message")
            .attr("to", Jid::parse("123:4@s.whatsapp.net").unwrap())
            .attr("id", "3EB0C431")
            .attr("x", "hello")
            .children([
                Node::new("enc").attr("v", "2").bytes(vec![7; 300]),
                Node::new("body").text("12.3"),
            ]);
        let bytes = encode(&node).unwrap();
        assert_eq!(decode(&bytes).unwrap(), node);
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut]).is_err(),
                "prefix of {cut} bytes decoded"
            );
        }
    }

    #[test]
    fn huge_length_prefixes_do_not_allocate() {
        // BINARY_32 claiming 4 GiB, LIST_16 claiming 65535 children, with nothing behind them.
        assert!(matches!(
            content_of("feffffffff"),
            Err(DecodeError::Truncated {
                needed: 0xffff_ffff,
                ..
            })
        ));
        assert!(matches!(
            content_of("f9ffff"),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            dec("00f9ffff19"),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn limits() {
        let mut node = Node::new("x");
        for _ in 0..64 {
            node = Node::new("x").children([node]);
        }
        let bytes = encode(&node).unwrap();
        assert!(
            matches!(decode(&bytes), Err(DecodeError::TooDeep { max: 64 })),
            "65 levels"
        );
        let shallow = DecodeLimits {
            max_depth: 65,
            ..DecodeLimits::DEFAULT
        };
        assert!(decode_with_limits(&bytes, &shallow).is_ok());
        // The depth limit is clamped to MAX_DEPTH whatever the caller asks for. The encoder stops
        // at MAX_DEPTH too, so the last level is added by hand: <x>…</x> around the raw node.
        let mut deep = Node::new("x");
        for _ in 1..MAX_DEPTH {
            deep = Node::new("x").children([deep]);
        }
        let mut deep_bytes = vec![0x00, 0xf8, 0x02, 0xfc, 0x01, b'x', 0xf8, 0x01];
        crate::binary::encode_raw_into(&deep, &mut deep_bytes).unwrap();
        let at_limit = DecodeLimits {
            max_depth: usize::MAX,
            ..DecodeLimits::DEFAULT
        };
        assert_eq!(
            decode_with_limits(&encode(&deep).unwrap(), &at_limit).unwrap(),
            deep
        );
        let unlimited = DecodeLimits {
            max_depth: usize::MAX,
            ..DecodeLimits::DEFAULT
        };
        assert!(matches!(
            decode_with_limits(&deep_bytes, &unlimited),
            Err(DecodeError::TooDeep { max: MAX_DEPTH })
        ));

        let wide = encode(&Node::new("x").children((0..100).map(|_| Node::new("y")))).unwrap();
        let few = DecodeLimits {
            max_nodes: 100,
            ..DecodeLimits::DEFAULT
        };
        assert!(matches!(
            decode_with_limits(&wide, &few),
            Err(DecodeError::TooManyNodes { max: 100 })
        ));
        let enough = DecodeLimits {
            max_nodes: 101,
            ..DecodeLimits::DEFAULT
        };
        assert!(decode_with_limits(&wide, &enough).is_ok());

        let small = DecodeLimits {
            max_len: 10,
            ..DecodeLimits::DEFAULT
        };
        assert!(matches!(
            decode_with_limits(&wide, &small),
            Err(DecodeError::TooLarge { max: 10 })
        ));
    }

    fn compress(plain_without_flags: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut z =
            flate2::write::ZlibEncoder::new(vec![FLAG_COMPRESSED], flate2::Compression::default());
        z.write_all(plain_without_flags).unwrap();
        z.finish().unwrap()
    }

    #[test]
    fn compressed_frames() {
        let node = Node::new("iq")
            .attr("id", "1")
            .children([Node::new("ping").bytes(vec![0; 1000])]);
        let plain = encode(&node).unwrap();
        let frame = compress(&plain[1..]);
        assert!(frame.len() < plain.len());
        assert_eq!(decode(&frame).unwrap(), node);
        // Other flag bits are ignored.
        let mut flagged = frame.clone();
        flagged[0] |= 0x04;
        assert_eq!(decode(&flagged).unwrap(), node);
        // Corrupt zlib.
        let mut corrupt = frame.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert!(matches!(decode(&corrupt), Err(DecodeError::Inflate(_))));
        assert!(matches!(
            decode(&[FLAG_COMPRESSED, 1, 2, 3]),
            Err(DecodeError::Inflate(_))
        ));
    }

    #[test]
    fn zip_bomb_is_capped() {
        // 64 MiB of zeros behind a valid node header compresses to ~64 KiB.
        let mut plain = hex::decode("f802fc0161fe04000000").unwrap();
        plain.resize(plain.len() + (64 << 20), 0);
        let frame = compress(&plain);
        assert!(frame.len() < 1 << 20);
        drop(plain);
        assert!(matches!(decode(&frame), Err(DecodeError::TooLarge { max }) if max == 16 << 20));
        let roomy = DecodeLimits {
            max_len: 80 << 20,
            ..DecodeLimits::DEFAULT
        };
        assert_eq!(
            decode_with_limits(&frame, &roomy)
                .unwrap()
                .content_bytes()
                .map(<[u8]>::len),
            Some(64 << 20)
        );
    }
}
