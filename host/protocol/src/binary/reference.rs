//! The decoder as it was before the single-pass rewrite (arena of records, then a copy to
//! [`Node`]), kept verbatim for tests only: differential tests check that the current decoder
//! accepts exactly what this one accepted, builds the same nodes and fails with the same errors.
//!
//! Contract: [`decode`] behaves exactly like `binary::decode_with_limits` did at that point.
//! Test-only code (`#[cfg(test)]`), never compiled into the library.

#![allow(dead_code)]

use std::borrow::Cow;
use std::io::Read as _;

use super::decode::{DecodeError, DecodeLimits, FLAG_COMPRESSED, MAX_DEPTH};
use super::jid::{Jid, JidParts, KNOWN_SERVERS, Server, check_wire_parts};
use super::node::{AttrValue, Content, Node};
use super::token::{self, WordCode};

/// Decodes frame plaintext (flags byte + node) the old way.
pub(super) fn decode(frame: &[u8], limits: &DecodeLimits) -> Result<Node, DecodeError> {
    let Some((&flags, body)) = frame.split_first() else {
        return Err(DecodeError::Empty);
    };
    if flags & FLAG_COMPRESSED == 0 {
        return decode_raw(body, limits);
    }
    let cap = u64::try_from(limits.max_len)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(body)
        .take(cap)
        .read_to_end(&mut inflated)
        .map_err(DecodeError::Inflate)?;
    decode_raw(&inflated, limits)
}

/// Decodes a node without the flags byte the old way.
pub(super) fn decode_raw(input: &[u8], limits: &DecodeLimits) -> Result<Node, DecodeError> {
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
        buf: input,
        pos: 0,
        nodes: Vec::new(),
        attrs: Vec::new(),
        text: Vec::new(),
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
    let Ok(text) = String::from_utf8(text) else {
        return Err(DecodeError::InvalidPacked {
            offset: 0,
            reason: "not ASCII",
        });
    };
    let tree = RefTree {
        input,
        text,
        nodes,
        attrs,
        others,
    };
    Ok(tree.to_node(&tree.nodes[0]))
}

struct RefTree<'a> {
    input: &'a [u8],
    text: String,
    nodes: Vec<NodeRec>,
    attrs: Vec<AttrRec>,
    others: Vec<Server>,
}

impl RefTree<'_> {
    fn str(&self, s: StrRef) -> &str {
        match s {
            StrRef::Word(code) => token::by_code(code),
            StrRef::Input { start, len } => {
                std::str::from_utf8(&self.input[start as usize..(start + len) as usize]).unwrap()
            }
            StrRef::Text { start, len } => &self.text[start as usize..(start + len) as usize],
        }
    }

    fn cow(&self, s: StrRef) -> Cow<'static, str> {
        match s {
            StrRef::Word(code) => Cow::Borrowed(token::by_code(code)),
            other => Cow::Owned(self.str(other).to_owned()),
        }
    }

    fn jid(&self, jid: &JidRec) -> Jid {
        let server = match jid.server {
            ServerRec::Known(i) => KNOWN_SERVERS[usize::from(i)].clone(),
            ServerRec::Other(i) => self.others[i as usize].clone(),
        };
        Jid::from_checked_parts(
            self.str(jid.user).to_owned(),
            server,
            jid.agent,
            jid.device,
            jid.integrator,
        )
    }

    fn to_node(&self, rec: &NodeRec) -> Node {
        let start = rec.attrs_start as usize;
        let attrs = self.attrs[start..start + rec.attrs_len as usize]
            .iter()
            .map(|a| {
                let value = match &a.value {
                    ValueRec::Str(s) => AttrValue::Str(self.cow(*s)),
                    ValueRec::Jid(jid) => AttrValue::Jid(self.jid(jid)),
                };
                (self.cow(a.key), value)
            })
            .collect();
        let content = match &rec.content {
            ContentRec::None => Content::None,
            ContentRec::Nodes { start, len } => Content::Nodes(
                self.nodes[*start as usize..(*start + *len) as usize]
                    .iter()
                    .map(|c| self.to_node(c))
                    .collect(),
            ),
            ContentRec::Bytes { start, len } => {
                Content::Bytes(self.input[*start as usize..(*start + *len) as usize].to_vec())
            }
            ContentRec::Str(s) => Content::Str(self.cow(*s)),
            ContentRec::Jid(jid) => Content::Jid(self.jid(jid)),
        };
        Node {
            tag: self.cow(rec.tag),
            attrs,
            content,
        }
    }
}

/// Where a string lives.
#[derive(Clone, Copy, Debug)]
enum StrRef {
    /// A dictionary word (see [`token::by_code`]).
    Word(WordCode),
    /// UTF-8 (checked) bytes of the input.
    Input { start: u32, len: u32 },
    /// A slice of `RefTree::text`.
    Text { start: u32, len: u32 },
}

/// A JID's server: an index into [`KNOWN_SERVERS`] or into `RefTree::others`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServerRec {
    Known(u8),
    Other(u32),
}

#[derive(Clone, Copy, Debug)]
struct JidRec {
    user: StrRef,
    server: ServerRec,
    agent: u8,
    device: Option<u16>,
    integrator: u16,
}

#[derive(Clone, Copy, Debug)]
enum ValueRec {
    Str(StrRef),
    Jid(JidRec),
}

#[derive(Clone, Copy, Debug)]
struct AttrRec {
    key: StrRef,
    value: ValueRec,
}

#[derive(Clone, Copy, Debug)]
enum ContentRec {
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
struct NodeRec {
    tag: StrRef,
    attrs_start: u32,
    attrs_len: u32,
    content: ContentRec,
}

impl NodeRec {
    /// A slot reserved for a child that is about to be read.
    const PLACEHOLDER: Self = Self {
        tag: StrRef::Word(0),
        attrs_start: 0,
        attrs_len: 0,
        content: ContentRec::None,
    };
}

/// Offsets in a the reference tree are `u32`, and unpacked text can be twice the input: inputs stay below
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
    /// Unpacked strings (ASCII by construction; becomes `RefTree::text`).
    text: Vec<u8>,
    /// Servers outside [`Server::KNOWN`] (becomes `RefTree::others`).
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

/// Differential tests: the current decoders (owned [`Node`] and [`Tree`](super::Tree)) against
/// this reference, on the fuzz seed corpus, the Baileys cross-check corpus, and many mutations
/// of both. Same node, or the same error (compared by its full `Debug` text: variant, offsets,
/// reasons).
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt as _, SeedableRng as _};

    use std::cell::{Cell, RefCell};

    use super::super::{
        DecodeLimits, Tree, TreeBuf, decode_raw_with_limits, decode_with_limits, fuzzing,
    };
    use super::{DecodeError, Node};

    type Outcome = Result<Node, String>;

    fn show(result: Result<Node, DecodeError>) -> Outcome {
        result.map_err(|e| format!("{e:?}"))
    }

    thread_local! {
        /// One buffer for all `TreeBuf` decodes of a test thread, so every decode runs on the
        /// leftovers of the previous one (as in a receive loop).
        static BUF: RefCell<TreeBuf> = RefCell::new(TreeBuf::new());
        /// How many raw decodes the fast path accepted on its own.
        static FAST: Cell<usize> = const { Cell::new(0) };
    }

    /// Decodes `data` as a frame and as a raw node with every decoder and checks they agree
    /// (the tree's fast path also record for record with the full parser). Returns whether
    /// the frame form decoded.
    fn agree(data: &[u8], limits: &DecodeLimits) -> bool {
        let reference = show(super::decode(data, limits));
        let owned = show(decode_with_limits(data, limits));
        let tree = show(Tree::decode(data, limits).map(|t| t.to_node()));
        let buf = BUF.with_borrow_mut(|buf| show(buf.decode(data, limits).map(|r| r.to_node())));
        assert_eq!(
            buf,
            reference,
            "TreeBuf::decode vs reference on {}",
            hex::encode(data)
        );
        // The node with and without the first byte (the flags byte of a frame).
        for raw in [Some(data), data.get(1..)].into_iter().flatten() {
            fuzzing::same_tree(
                &Tree::decode_raw(raw, limits),
                &Tree::decode_raw_full(raw, limits),
            );
            if Tree::fast_accepts(raw, limits) {
                FAST.set(FAST.get() + 1);
            }
        }
        assert_eq!(
            owned,
            reference,
            "decode vs reference on {}",
            hex::encode(data)
        );
        assert_eq!(
            tree,
            reference,
            "Tree::decode vs reference on {}",
            hex::encode(data)
        );
        let reference_raw = show(super::decode_raw(data, limits));
        let owned_raw = show(decode_raw_with_limits(data, limits));
        let tree_raw = show(Tree::decode_raw(data, limits).map(|t| t.to_node()));
        assert_eq!(
            owned_raw,
            reference_raw,
            "decode_raw on {}",
            hex::encode(data)
        );
        assert_eq!(
            tree_raw,
            reference_raw,
            "Tree::decode_raw on {}",
            hex::encode(data)
        );
        reference.is_ok()
    }

    fn fuzz_corpus() -> Vec<(String, Vec<u8>)> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/node_decode");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect()
    }

    fn baileys_corpus() -> Vec<(String, Vec<u8>)> {
        let file: serde_json::Value =
            serde_json::from_str(include_str!("../../testdata/wabinary-corpus.json")).unwrap();
        let mut frames: Vec<_> = file["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| {
                let hex = e.get("hex")?.as_str()?;
                Some((e["name"].as_str()?.to_owned(), hex::decode(hex).ok()?))
            })
            .collect();
        let stanza: serde_json::Value =
            serde_json::from_str(include_str!("../../testdata/wabinary-bench-stanza.json"))
                .unwrap();
        frames.push((
            "bench-stanza".to_owned(),
            hex::decode(stanza["hex"].as_str().unwrap()).unwrap(),
        ));
        frames
    }

    /// Limits that make the depth, node and length checks fire on ordinary frames.
    const TIGHT: [DecodeLimits; 4] = [
        DecodeLimits {
            max_depth: 2,
            ..DecodeLimits::DEFAULT
        },
        DecodeLimits {
            max_nodes: 3,
            ..DecodeLimits::DEFAULT
        },
        DecodeLimits {
            max_len: 40,
            ..DecodeLimits::DEFAULT
        },
        DecodeLimits {
            max_depth: 0,
            max_nodes: 1,
            max_len: 0,
        },
    ];

    #[test]
    fn fuzz_seed_corpus_agrees_with_reference() {
        let corpus = fuzz_corpus();
        assert!(corpus.len() >= 40, "seed corpus found: {}", corpus.len());
        let mut decoded = 0;
        for (_, data) in &corpus {
            if agree(data, &DecodeLimits::DEFAULT) {
                decoded += 1;
            }
            for limits in &TIGHT {
                agree(data, limits);
            }
            // Every prefix is an error, the same one.
            for cut in 0..data.len() {
                agree(&data[..cut], &DecodeLimits::DEFAULT);
            }
        }
        // The seeds are real frames: most decode (the rest exercise errors).
        assert!(
            decoded * 2 > corpus.len(),
            "{decoded} of {} decoded",
            corpus.len()
        );
    }

    #[test]
    fn baileys_corpus_agrees_with_reference() {
        let corpus = baileys_corpus();
        assert!(corpus.len() > 400);
        for (name, data) in &corpus {
            assert!(agree(data, &DecodeLimits::DEFAULT), "{name} decodes");
            for limits in &TIGHT {
                agree(data, limits);
            }
        }
    }

    /// The tree's fast path (not just the full parser behind it) reads the common stanzas: the
    /// benchmark stanza, and most frames of the Baileys corpus (whose entries also exercise the
    /// rare forms it leaves to the full parser).
    #[test]
    fn fast_path_takes_the_common_frames() {
        let corpus = baileys_corpus();
        let limits = DecodeLimits::DEFAULT;
        let (name, stanza) = corpus.last().unwrap();
        assert_eq!(name, "bench-stanza");
        assert!(Tree::fast_accepts(&stanza[1..], &limits));
        let accepted = corpus
            .iter()
            .filter(|(_, data)| Tree::fast_accepts(&data[1..], &limits))
            .count();
        assert!(
            accepted * 10 > corpus.len() * 7,
            "fast path took {accepted} of {}",
            corpus.len()
        );
        // And some mutated inputs it accepts agree with the full parser record for record.
        FAST.set(0);
        for (_, data) in corpus.iter().filter(|(_, d)| d.len() <= 200).take(50) {
            for at in 1..data.len() {
                let mut m = data.clone();
                m[at] ^= 0x01;
                agree(&m, &limits);
            }
        }
        assert!(FAST.get() > 100, "fast path took {} mutants", FAST.get());
    }

    /// Every position of every seed (up to 128 bytes in) overwritten with bytes that matter to
    /// the decoder (list, JID, binary, packed, dictionary tags, token edges, nibble edges), and
    /// random multi-byte mutations: the decoders agree on all of them.
    #[test]
    fn mutations_agree_with_reference() {
        const INTERESTING: [u8; 24] = [
            0x00, 0x01, 0x03, 0x0b, 0x11, 0x7f, 0x80, 0xbf, 0xc0, 0xcb, 0xeb, 0xec, 0xef, 0xf0,
            0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xff,
        ];
        let mut corpus = fuzz_corpus();
        corpus.extend(baileys_corpus().into_iter().filter(|(_, d)| d.len() <= 400));
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let mut decoded = 0usize;
        let mut total = 0usize;
        for (_, data) in &corpus {
            for at in 0..data.len().min(128) {
                for &b in &INTERESTING {
                    if data[at] == b {
                        continue;
                    }
                    let mut m = data.clone();
                    m[at] = b;
                    total += 1;
                    decoded += usize::from(agree(&m, &DecodeLimits::DEFAULT));
                }
            }
            for _ in 0..200 {
                let mut m = data.clone();
                for _ in 0..rng.random_range(1..4usize) {
                    if m.is_empty() {
                        break;
                    }
                    let at = rng.random_range(0..m.len());
                    match rng.random_range(0..3u8) {
                        0 => m[at] = rng.random(),
                        1 => m[at] ^= 1 << rng.random_range(0..8u32),
                        _ => {
                            m.insert(at, rng.random());
                        }
                    }
                }
                total += 1;
                decoded += usize::from(agree(&m, &DecodeLimits::DEFAULT));
            }
        }
        // Both outcomes are well represented.
        assert!(
            decoded > 1000 && total - decoded > 1000,
            "{decoded} of {total} decoded"
        );
    }

    /// Short random byte strings over the tag bytes: mostly errors of every kind.
    #[test]
    fn random_short_inputs_agree_with_reference() {
        let alphabet: Vec<u8> = [0x00, 0x02, 0x03, 0x04, 0x11, 0x13, 0x19, 0x56]
            .into_iter()
            .chain(0xec..=0xff)
            .collect();
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..100_000 {
            let len = rng.random_range(0..16usize);
            let mut data = vec![0u8];
            data.extend((0..len).map(|_| {
                if rng.random_range(0..4u8) == 0 {
                    rng.random()
                } else {
                    alphabet[rng.random_range(0..alphabet.len())]
                }
            }));
            agree(&data, &DecodeLimits::DEFAULT);
        }
    }
}
