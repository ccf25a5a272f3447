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

use std::borrow::Cow;
use std::io::Read as _;

use super::jid::{JidError, JidParts, KNOWN_SERVERS, Server, check_wire_parts};
use super::node::Node;
use super::token;
use super::tree::{AttrRec, ContentRec, JidRec, NodeRec, ServerRec, StrRef, Tree, ValueRec};

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
    Ok(Tree::decode(frame, limits)?.to_node())
}

/// Decodes a node without the flags byte, with [`DecodeLimits::DEFAULT`].
pub fn decode_raw(bytes: &[u8]) -> Result<Node, DecodeError> {
    decode_raw_with_limits(bytes, &DecodeLimits::DEFAULT)
}

/// Decodes a node without the flags byte.
pub fn decode_raw_with_limits(bytes: &[u8], limits: &DecodeLimits) -> Result<Node, DecodeError> {
    Ok(Tree::decode_raw(bytes, limits)?.to_node())
}

impl<'a> Tree<'a> {
    /// Decodes frame plaintext (flags byte + node) into a tree that borrows `frame` (or owns the
    /// inflated bytes of a compressed frame).
    pub fn decode(frame: &'a [u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        let Some((&flags, body)) = frame.split_first() else {
            return Err(DecodeError::Empty);
        };
        if flags & FLAG_COMPRESSED == 0 {
            return Self::parse(Cow::Borrowed(body), limits);
        }
        let cap = u64::try_from(limits.max_len)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let mut inflated = Vec::new();
        flate2::read::ZlibDecoder::new(body)
            .take(cap)
            .read_to_end(&mut inflated)
            .map_err(DecodeError::Inflate)?;
        Self::parse(Cow::Owned(inflated), limits)
    }

    /// Decodes a node without the flags byte into a tree that borrows `bytes`.
    pub fn decode_raw(bytes: &'a [u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        Self::parse(Cow::Borrowed(bytes), limits)
    }

    fn parse(input: Cow<'a, [u8]>, limits: &DecodeLimits) -> Result<Self, DecodeError> {
        let len = input.len();
        if len > limits.max_len.min(MAX_INPUT) {
            return Err(DecodeError::TooLarge {
                max: limits.max_len.min(MAX_INPUT),
            });
        }
        if limits.max_nodes == 0 {
            return Err(DecodeError::TooManyNodes { max: 0 });
        }
        let mut parser = Parser {
            buf: &input,
            pos: 0,
            // Small capacity hints from the input size (a typical stanza has a node per ~40
            // bytes, an attribute per ~16, unpacked text of ~1/4), capped so a large frame that
            // is mostly one byte blob does not reserve much; the vectors grow as needed.
            nodes: Vec::with_capacity((len / 40 + 2).min(64)),
            attrs: Vec::with_capacity((len / 16 + 2).min(128)),
            text: Vec::with_capacity((len / 4 + 8).min(1024)),
            others: Vec::new(),
            max_depth: limits.max_depth.min(MAX_DEPTH),
            max_nodes: limits.max_nodes,
        };
        parser.nodes.push(NodeRec::PLACEHOLDER);
        parser.node(0, 1).map_err(|e| *e)?;
        if parser.pos != len {
            return Err(DecodeError::TrailingBytes {
                offset: parser.pos,
                remaining: len - parser.pos,
            });
        }
        let Parser {
            nodes,
            attrs,
            text,
            others,
            ..
        } = parser;
        // Only unpacked nibble/hex characters (ASCII) were written to `text`: one check for all.
        let Ok(text) = String::from_utf8(text) else {
            return Err(DecodeError::InvalidPacked {
                offset: 0,
                reason: "not ASCII",
            });
        };
        Ok(Tree {
            input,
            text,
            nodes,
            attrs,
            others,
        })
    }
}

/// Offsets in a [`Tree`] are `u32`, and unpacked text can be twice the input: inputs stay below
/// 2 GiB whatever the limits say.
const MAX_INPUT: usize = (u32::MAX / 2) as usize;

/// Smallest encoded node (`f8 01 <token>`): bounds how many nodes the remaining bytes can hold.
const MIN_NODE_LEN: usize = 3;

/// Marks a nibble value outside the alphabet in the pair tables below.
const INVALID: u8 = 0xff;

/// Byte → its two characters, for `NIBBLE_8` (`0-9 - .`; 0xC..0xE and the filler 0xF invalid).
static NIBBLE_PAIRS: [[u8; 2]; 256] = pair_table(b"0123456789-.\xff\xff\xff\xff");
/// Byte → its two characters, for `HEX_8` (`0-9 A-F`).
static HEX_PAIRS: [[u8; 2]; 256] = pair_table(b"0123456789ABCDEF");

const fn pair_table(alphabet: &[u8; 16]) -> [[u8; 2]; 256] {
    let mut table = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = [alphabet[b >> 4], alphabet[b & 0x0f]];
        b += 1;
    }
    table
}

/// Internal result: the error is boxed so the hot path moves small values.
type R<T> = Result<T, Box<DecodeError>>;

#[cold]
#[inline(never)]
fn fail<T>(error: DecodeError) -> R<T> {
    Err(Box::new(error))
}

/// A plain string item: a resolved string, or raw `BINARY_*` bytes (a string for names and
/// attribute values, bytes for content).
enum Piece {
    Str(StrRef),
    Raw { start: usize, len: usize },
}

const TAG_NAME: &str = "node tag";
const KEY_NAME: &str = "attribute key";
const JID_PART: &str = "JID part (a plain string)";

struct Parser<'b> {
    buf: &'b [u8],
    pos: usize,
    nodes: Vec<NodeRec>,
    attrs: Vec<AttrRec>,
    /// Unpacked strings (ASCII by construction; becomes [`Tree::text`]).
    text: Vec<u8>,
    /// Servers outside [`Server::KNOWN`] (becomes [`Tree::others`]).
    others: Vec<Server>,
    max_depth: usize,
    max_nodes: usize,
}

impl Parser<'_> {
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

    #[inline]
    fn take(&mut self, n: usize) -> R<usize> {
        let start = self.pos;
        match start.checked_add(n).filter(|&end| end <= self.buf.len()) {
            Some(end) => {
                self.pos = end;
                Ok(start)
            }
            None => fail(DecodeError::Truncated {
                offset: start,
                needed: n,
            }),
        }
    }

    #[inline]
    fn u16(&mut self) -> R<u16> {
        let at = self.take(2)?;
        Ok(u16::from_be_bytes([self.buf[at], self.buf[at + 1]]))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes of a string reference (UTF-8: input slices were checked when stored, unpacked
    /// text is ASCII).
    fn view(&self, s: StrRef) -> &[u8] {
        match s {
            StrRef::Word(code) => token::by_code(code).as_bytes(),
            StrRef::Input { start, len } => &self.buf[start as usize..(start + len) as usize],
            StrRef::Text { start, len } => &self.text[start as usize..(start + len) as usize],
        }
    }

    /// Reads the node whose slot `nodes[slot]` is reserved.
    fn node(&mut self, slot: usize, depth: usize) -> R<()> {
        if depth > self.max_depth {
            return fail(DecodeError::TooDeep {
                max: self.max_depth,
            });
        }
        let list_offset = self.pos;
        let list_tag = self.byte()?;
        let size = self.list_size(list_tag, list_offset, "node list header")?;
        if size == 0 {
            return fail(DecodeError::EmptyNode {
                offset: list_offset,
            });
        }
        let tag_offset = self.pos;
        let tag = self.name(TAG_NAME)?;
        if is_empty(tag) {
            return fail(DecodeError::EmptyTag { offset: tag_offset });
        }
        let attr_count = (size - 1) / 2;
        let attrs_start = self.attrs.len();
        // Each attribute takes at least two bytes.
        self.attrs.reserve(attr_count.min(self.remaining() / 2));
        for _ in 0..attr_count {
            let key = self.name(KEY_NAME)?;
            let value = self.attr_value()?;
            self.attrs.push(AttrRec { key, value });
        }
        let content = if size % 2 == 0 {
            self.content(depth)?
        } else {
            ContentRec::None
        };
        self.nodes[slot] = NodeRec {
            tag,
            attrs_start: attrs_start as u32,
            attrs_len: attr_count as u32,
            content,
        };
        Ok(())
    }

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
    fn name(&mut self, expected: &'static str) -> R<StrRef> {
        if let Some(code) = self
            .buf
            .get(self.pos)
            .and_then(|&tag| token::single_code(tag))
        {
            self.pos += 1;
            return Ok(StrRef::Word(code));
        }
        self.name_slow(expected)
    }

    #[inline(never)]
    fn name_slow(&mut self, expected: &'static str) -> R<StrRef> {
        let offset = self.pos;
        let tag = self.byte()?;
        if let Some(code) = token::single_code(tag) {
            return Ok(StrRef::Word(code));
        }
        match self.text(tag, offset, expected)? {
            Piece::Str(s) => Ok(s),
            Piece::Raw { start, len } => self.utf8(start, len),
        }
    }

    fn attr_value(&mut self) -> R<ValueRec> {
        let offset = self.pos;
        let tag = self.byte()?;
        if let Some(code) = token::single_code(tag) {
            return Ok(ValueRec::Str(StrRef::Word(code)));
        }
        if let Some(jid) = self.jid(tag, offset)? {
            return Ok(ValueRec::Jid(jid));
        }
        match self.text(tag, offset, "attribute value")? {
            Piece::Str(s) => Ok(ValueRec::Str(s)),
            Piece::Raw { start, len } => {
                let s = self.utf8(start, len)?;
                Ok(match self.jid_in_raw(start, len) {
                    Some(jid) => ValueRec::Jid(jid),
                    None => ValueRec::Str(s),
                })
            }
        }
    }

    fn content(&mut self, depth: usize) -> R<ContentRec> {
        let offset = self.pos;
        let tag = self.byte()?;
        if let Some(code) = token::single_code(tag) {
            return Ok(ContentRec::Str(StrRef::Word(code)));
        }
        if matches!(tag, token::LIST_EMPTY | token::LIST_8 | token::LIST_16) {
            let len = self.list_size(tag, offset, "list")?;
            let start = self.nodes.len();
            if len > 0 {
                // Reserve the children's slots up front (so siblings are contiguous), but only as
                // many as the remaining bytes can hold and the node limit allows.
                if len > self.remaining() / MIN_NODE_LEN {
                    let needed = len * MIN_NODE_LEN - self.remaining();
                    return fail(DecodeError::Truncated {
                        offset: self.pos,
                        needed,
                    });
                }
                if start + len > self.max_nodes {
                    return fail(DecodeError::TooManyNodes {
                        max: self.max_nodes,
                    });
                }
                self.nodes.resize(start + len, NodeRec::PLACEHOLDER);
                for k in 0..len {
                    self.node(start + k, depth + 1)?;
                }
            }
            return Ok(ContentRec::Nodes {
                start: start as u32,
                len: len as u32,
            });
        }
        if let Some(jid) = self.jid(tag, offset)? {
            return Ok(ContentRec::Jid(jid));
        }
        Ok(match self.text(tag, offset, "node content")? {
            Piece::Str(s) => ContentRec::Str(s),
            Piece::Raw { start, len } => ContentRec::Bytes {
                start: start as u32,
                len: len as u32,
            },
        })
    }

    /// The rest of a plain string item whose tag byte (not a single-byte token) was just read.
    fn text(&mut self, tag: u8, offset: usize, expected: &'static str) -> R<Piece> {
        match tag {
            token::LIST_EMPTY => Ok(Piece::Str(StrRef::Word(0))),
            token::DICTIONARY_0..=token::DICTIONARY_3 => {
                let index = self.byte()?;
                match token::double_code(tag - token::DICTIONARY_0, index) {
                    Some(code) => Ok(Piece::Str(StrRef::Word(code))),
                    None => fail(DecodeError::InvalidTag {
                        tag,
                        offset,
                        expected,
                    }),
                }
            }
            token::BINARY_8 => {
                let len = usize::from(self.byte()?);
                self.raw(len)
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
            token::NIBBLE_8 | token::HEX_8 => self.packed(tag, offset).map(Piece::Str),
            _ => fail(DecodeError::InvalidTag {
                tag,
                offset,
                expected,
            }),
        }
    }

    #[inline]
    fn raw(&mut self, len: usize) -> R<Piece> {
        let start = self.take(len)?;
        Ok(Piece::Raw { start, len })
    }

    fn utf8(&self, start: usize, len: usize) -> R<StrRef> {
        match std::str::from_utf8(&self.buf[start..start + len]) {
            Ok(_) => Ok(StrRef::Input {
                start: start as u32,
                len: len as u32,
            }),
            Err(_) => fail(DecodeError::InvalidUtf8 { offset: start }),
        }
    }

    /// Unpacks a nibble or hex string into `text`.
    fn packed(&mut self, tag: u8, offset: usize) -> R<StrRef> {
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
        let pairs = if tag == token::NIBBLE_8 {
            &NIBBLE_PAIRS
        } else {
            &HEX_PAIRS
        };
        // At most 127 input bytes, so at most 254 characters.
        let mut out = [0u8; 254];
        // Valid characters are ASCII; INVALID (0xff) has the high bit set.
        let mut seen = 0u8;
        for (i, &b) in bytes.iter().enumerate() {
            let [high, low] = pairs[usize::from(b)];
            out[2 * i] = high;
            out[2 * i + 1] = low;
            seen |= high | low;
        }
        let mut len = 2 * n;
        if odd {
            if bytes[n - 1] & 0x0f != 0x0f {
                return fail(DecodeError::InvalidPacked {
                    offset,
                    reason: "odd-length padding nibble is not 0xF",
                });
            }
            // The padding nibble is not part of the string.
            len -= 1;
            seen = out[..len].iter().fold(0, |acc, &c| acc | c);
        }
        let out = &out[..len];
        if seen & 0x80 != 0 {
            let at = out.iter().position(|&c| c == INVALID).unwrap_or(0);
            // Say which nibble is wrong.
            let byte = bytes[at / 2];
            let value = if at % 2 == 0 { byte >> 4 } else { byte & 0x0f };
            let reason = if value == 0x0f {
                "filler nibble 0xF inside the string"
            } else {
                "nibble 0xC..0xE is not in the nibble alphabet"
            };
            return fail(DecodeError::InvalidPacked { offset, reason });
        }
        let start = self.text.len();
        self.text.extend_from_slice(out);
        Ok(StrRef::Text {
            start: start as u32,
            len: len as u32,
        })
    }

    /// The rest of a JID item if `tag` is a JID tag, `None` otherwise.
    #[inline]
    fn jid(&mut self, tag: u8, offset: usize) -> R<Option<JidRec>> {
        let (user, server, agent, device, integrator) = match tag {
            token::JID_PAIR => {
                let user = self.name(JID_PART)?;
                let server = self.server(offset)?;
                (user, server, 0, None, 0)
            }
            token::AD_JID => {
                let domain = self.byte()?;
                let device = self.byte()?;
                let user = self.name(JID_PART)?;
                let server = Server::from_ad_domain(domain);
                let agent = if server == Server::WhatsApp {
                    domain
                } else {
                    0
                };
                let index = server.known_index().unwrap_or(0);
                (
                    user,
                    ServerRec::Known(index),
                    agent,
                    Some(u16::from(device)),
                    0,
                )
            }
            token::FB_JID => {
                let user = self.name(JID_PART)?;
                let device = self.u16()?;
                let server = self.server(offset)?;
                self.expect_server(server, &Server::Messenger, "FB_JID", offset)?;
                (user, server, 0, Some(device), 0)
            }
            token::INTEROP_JID => {
                let user = self.name(JID_PART)?;
                let device = self.u16()?;
                let integrator = self.u16()?;
                let server = self.server(offset)?;
                self.expect_server(server, &Server::Interop, "INTEROP_JID", offset)?;
                (user, server, 0, Some(device), integrator)
            }
            _ => return Ok(None),
        };
        match check_wire_parts(
            self.view(user),
            self.resolve(server),
            agent,
            device,
            integrator,
        ) {
            Ok(integrator) => Ok(Some(JidRec {
                user,
                server,
                agent,
                device,
                integrator,
            })),
            Err(source) => fail(DecodeError::InvalidJid {
                offset,
                source: Box::new(source),
            }),
        }
    }

    fn resolve(&self, server: ServerRec) -> &Server {
        match server {
            ServerRec::Known(i) => &KNOWN_SERVERS[usize::from(i)],
            ServerRec::Other(i) => &self.others[i as usize],
        }
    }

    fn expect_server(
        &self,
        server: ServerRec,
        expected: &Server,
        form: &'static str,
        offset: usize,
    ) -> R<()> {
        let found = self.resolve(server);
        if found == expected {
            return Ok(());
        }
        fail(DecodeError::WrongJidServer {
            offset,
            form,
            found: found.as_str().into(),
        })
    }

    fn server(&mut self, offset: usize) -> R<ServerRec> {
        let name = match self.name(JID_PART)? {
            StrRef::Word(code) => token::by_code(code),
            other => std::str::from_utf8(self.view(other)).unwrap_or_default(),
        };
        match Server::parse(name) {
            Ok(server) => Ok(self.server_rec(server)),
            Err(source) => fail(DecodeError::InvalidJid {
                offset,
                source: Box::new(source),
            }),
        }
    }

    fn server_rec(&mut self, server: Server) -> ServerRec {
        match server.known_index() {
            Some(i) => ServerRec::Known(i),
            None => {
                self.others.push(server);
                ServerRec::Other((self.others.len() - 1) as u32)
            }
        }
    }

    /// A raw attribute string with `@` that is a valid JID is read as that JID: the encoder
    /// writes such a string as a JID, so this keeps `decode(encode(decode(x))) == decode(x)`.
    fn jid_in_raw(&mut self, start: usize, len: usize) -> Option<JidRec> {
        let text = std::str::from_utf8(&self.buf[start..start + len]).ok()?;
        if !text.contains('@') {
            return None;
        }
        let parts = JidParts::parse(text).ok()?;
        // The user is a substring of `text`, which starts at `start` in the input.
        let user_start = start + (parts.user.as_ptr() as usize - text.as_ptr() as usize);
        let (user_len, agent, device, integrator) = (
            parts.user.len(),
            parts.agent,
            parts.device,
            parts.integrator,
        );
        let server = parts.server.into_owned();
        Some(JidRec {
            user: StrRef::Input {
                start: user_start as u32,
                len: user_len as u32,
            },
            server: self.server_rec(server),
            agent,
            device,
            integrator,
        })
    }
}

fn is_empty(s: StrRef) -> bool {
    match s {
        StrRef::Word(code) => token::by_code(code).is_empty(),
        StrRef::Input { len, .. } | StrRef::Text { len, .. } => len == 0,
    }
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
