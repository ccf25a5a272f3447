//! The fast path of [`Tree`](super::Tree) decoding: one pass over the common wire forms that
//! writes the same arena records as the full parser (`decode.rs` with the `tree::Arena`
//! builder).
//!
//! Contract: [`parse`] either succeeds, with the arena holding exactly the records (same order,
//! same unpacked text) the full parser would make for the same input and limits, or returns
//! `None`. It returns `None` for every input the full parser rejects and for valid
//! input in a rarer form it leaves to the full parser (`LIST_16` node headers, `BINARY_20` and
//! `BINARY_32` strings and blobs, raw attribute values containing `@`, `FB_JID` and
//! `INTEROP_JID`, JID servers that are not a dictionary word naming a known server, JID users
//! the fast checks do not clear). On `None` the caller resets the arena and runs the full
//! parser, which builds the tree or returns the typed error; so the fast path never decides an
//! error, and only has to accept nothing the full parser rejects. It performs every check the
//! full parser performs on the forms it accepts (lengths against the remaining input, depth and
//! node limits, non-empty tags, UTF-8 of raw strings, packed-string length, nibbles and
//! padding, JID user characters and server), just without building error values. Differential
//! tests compare both paths record for record: `reference.rs` and `tree.rs` unit tests, and
//! `fuzzing::node_decode`, which `tests/wabinary_props.rs` and the `node_decode` fuzz target run.
//!
//! Why it is faster than the generic parser with the arena builder: attribute values and JIDs
//! are written as records straight away (no `Value` / `Item` / `JidItem` values handed across
//! the builder interface), everything but the children loop is one inlined, non-recursive
//! function ([`Fast::head`]) so handles stay in registers, `Option` instead of a boxed error in
//! every return, and no error bookkeeping (offsets, names of what was expected).

use super::decode::{
    BAD_HIGH, BAD_LOW, DOT_HIGH, DOT_LOW, DecodeLimits, Form, KNOWN_HOSTED, KNOWN_HOSTED_LID,
    KNOWN_LID, KNOWN_WHATSAPP, MAX_DEPTH, MAX_INPUT, MIN_NODE_LEN, S_WHATSAPP_NET, Text,
    nibble_class, text_user_is_clean,
};
use super::jid::{DOMAIN_HOSTED, DOMAIN_HOSTED_LID, DOMAIN_LID, KNOWN_SERVERS};
use super::token::{self, WordCode};
use super::tree::{Arena, AttrRec, ContentRec, JidRec, NodeRec, ServerRec, StrRef};

/// Parses one node (no flags byte) into `arena`, which holds only the root's slot (`nodes[0]`,
/// where the root is written), or `None` (see the module contract).
pub(super) fn parse(input: &[u8], limits: &DecodeLimits, arena: &mut Arena) -> Option<()> {
    if input.len() > limits.max_len.min(MAX_INPUT) || limits.max_nodes == 0 {
        return None;
    }
    let mut fast = Fast {
        buf: input,
        pos: 0,
        arena,
        nodes: 1,
        max_depth: limits.max_depth.min(MAX_DEPTH),
        max_nodes: limits.max_nodes,
    };
    fast.node(1, 0)?;
    (fast.pos == input.len()).then_some(())
}

/// The parser state; `nodes` counts node slots handed out, as in the full parser.
struct Fast<'b, 'a> {
    buf: &'b [u8],
    pos: usize,
    arena: &'a mut Arena,
    nodes: usize,
    max_depth: usize,
    max_nodes: usize,
}

impl Fast<'_, '_> {
    #[inline(always)]
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// Skips the next `n` bytes, returning where they start.
    #[inline(always)]
    fn take(&mut self, n: usize) -> Option<usize> {
        let start = self.pos;
        if n > self.buf.len() - start {
            return None;
        }
        self.pos = start + n;
        Some(start)
    }

    /// A node, written to `nodes[slot]`. Only the children loop is in this recursive
    /// function; everything else is in [`Fast::head`], so a nesting level costs one small stack
    /// frame ([`MAX_DEPTH`] levels fit a 2 MiB thread stack, also unoptimized).
    fn node(&mut self, depth: usize, slot: usize) -> Option<()> {
        if depth > self.max_depth {
            return None;
        }
        let Head::List {
            tag,
            attrs_start,
            count,
            len,
        } = self.head(slot)?
        else {
            return Some(());
        };
        let start = self.arena.nodes.len();
        self.arena.nodes.reserve(len);
        for _ in 0..len {
            self.arena.nodes.push(NodeRec::PLACEHOLDER);
        }
        for i in start..start + len {
            self.node(depth + 1, i)?;
        }
        let content = ContentRec::Nodes {
            start: start as u32,
            len: len as u32,
        };
        self.finish(slot, tag, attrs_start, count, content)
    }

    /// A node's header, tag and attributes, then either its other content (the node is then
    /// written to `nodes[slot]`: [`Head::Done`]) or the header of its child list (checked
    /// against the input and the node limit).
    #[inline(never)]
    fn head(&mut self, slot: usize) -> Option<Head> {
        let &[token::LIST_8, size @ 1..=255] = self.buf.get(self.pos..self.pos + 2)? else {
            return None;
        };
        self.pos += 2;
        let tag = self.name()?;
        if tag.is_empty() {
            return None;
        }
        let attrs_start = self.arena.attrs.len() as u32;
        let count = (size - 1) / 2;
        for _ in 0..count {
            let key = self.name()?;
            let key = self.arena.str(self.buf, key);
            let value = self.value()?;
            self.arena.attrs.push(AttrRec { key, value });
        }
        if size % 2 == 1 {
            self.finish(slot, tag, attrs_start, count, ContentRec::None)?;
            return Some(Head::Done);
        }
        let len = match self.buf.get(self.pos) {
            Some(&token::LIST_8) => {
                self.pos += 1;
                usize::from(self.byte()?)
            }
            Some(&token::LIST_EMPTY) => {
                self.pos += 1;
                0
            }
            _ => {
                let content = self.content()?;
                self.finish(slot, tag, attrs_start, count, content)?;
                return Some(Head::Done);
            }
        };
        if len > (self.buf.len() - self.pos) / MIN_NODE_LEN || self.nodes + len > self.max_nodes {
            return None;
        }
        self.nodes += len;
        Some(Head::List {
            tag,
            attrs_start,
            count,
            len,
        })
    }

    /// Writes the node record (the tag is resolved last, as the full parser's builder does, so
    /// packed text lands in the same order).
    #[inline(always)]
    fn finish(
        &mut self,
        slot: usize,
        tag: Text,
        attrs_start: u32,
        count: u8,
        content: ContentRec,
    ) -> Option<()> {
        let rec = NodeRec {
            tag: self.arena.str(self.buf, tag),
            attrs_start,
            attrs_len: u32::from(count),
            content,
        };
        *self.arena.nodes.get_mut(slot)? = rec;
        Some(())
    }

    /// A tag, key or JID part: a plain string. Single-byte tokens are inlined.
    #[inline(always)]
    fn name(&mut self) -> Option<Text> {
        let tag = self.byte()?;
        match token::single_code(tag) {
            Some(code) => Some(Text::Word(code)),
            None => self.name_rest(tag),
        }
    }

    /// A plain string whose tag byte (not a single-byte token) was just read.
    #[inline(always)]
    fn name_rest(&mut self, tag: u8) -> Option<Text> {
        match tag {
            token::BINARY_8 => {
                let (start, len) = self.raw_utf8()?;
                Some(Text::Raw { start, len })
            }
            token::NIBBLE_8 | token::HEX_8 => self.packed(tag),
            token::LIST_EMPTY => Some(Text::Word(0)),
            token::DICTIONARY_0..=token::DICTIONARY_3 => self.double(tag).map(Text::Word),
            _ => None,
        }
    }

    /// The index byte of a two-byte token whose dictionary byte was just read.
    #[inline]
    fn double(&mut self, tag: u8) -> Option<WordCode> {
        let index = self.byte()?;
        token::double_code(tag - token::DICTIONARY_0, index)
    }

    /// The length byte and UTF-8 bytes of a `BINARY_8` string.
    #[inline]
    fn raw_utf8(&mut self) -> Option<(u32, u32)> {
        let len = usize::from(self.byte()?);
        let start = self.take(len)?;
        std::str::from_utf8(&self.buf[start..start + len]).ok()?;
        Some((start as u32, len as u32))
    }

    /// A checked nibble or hex string whose tag byte was just read.
    #[inline(always)]
    fn packed(&mut self, tag: u8) -> Option<Text> {
        let header = self.byte()?;
        let odd = header & 0x80 != 0;
        let n = usize::from(header & 0x7f);
        let at = self.take(n)?;
        let &last = self.buf[at..at + n].last()?;
        if odd && last & 0x0f != 0x0f {
            return None;
        }
        let hex = tag == token::HEX_8;
        let mut dot = false;
        if !hex {
            let class = nibble_class(&self.buf[at..at + n], odd);
            if class & (BAD_HIGH | BAD_LOW) != 0 {
                return None;
            }
            dot = class & (DOT_HIGH | DOT_LOW) != 0;
        }
        Some(Text::Packed {
            start: at as u32,
            len: n as u32,
            form: Form { hex, odd, dot },
        })
    }

    /// An attribute value. Single-byte tokens are inlined.
    #[inline(always)]
    fn value(&mut self) -> Option<StrRef> {
        let tag = self.byte()?;
        match token::single_code(tag) {
            Some(code) => Some(StrRef::word(code)),
            None => self.value_rest(tag),
        }
    }

    #[inline(always)]
    fn value_rest(&mut self, tag: u8) -> Option<StrRef> {
        match tag {
            token::JID_PAIR | token::AD_JID => self.jid(tag).map(StrRef::jid),
            token::BINARY_8 => {
                let (start, len) = self.raw_utf8()?;
                // A raw value with '@' may be a JID: the full parser decides.
                if self.buf[start as usize..(start + len) as usize].contains(&b'@') {
                    return None;
                }
                Some(StrRef::input(start, len))
            }
            _ => {
                let text = self.name_rest(tag)?;
                Some(self.arena.str(self.buf, text))
            }
        }
    }

    /// Content that is not a list.
    #[inline(always)]
    fn content(&mut self) -> Option<ContentRec> {
        let tag = self.byte()?;
        if let Some(code) = token::single_code(tag) {
            return Some(ContentRec::Str(StrRef::word(code)));
        }
        match tag {
            token::BINARY_8 => {
                let len = usize::from(self.byte()?);
                let start = self.take(len)?;
                Some(ContentRec::Bytes {
                    start: start as u32,
                    len: len as u32,
                })
            }
            token::JID_PAIR | token::AD_JID => self.jid(tag).map(ContentRec::Jid),
            token::NIBBLE_8 | token::HEX_8 => {
                let text = self.packed(tag)?;
                Some(ContentRec::Str(self.arena.str(self.buf, text)))
            }
            token::DICTIONARY_0..=token::DICTIONARY_3 => self
                .double(tag)
                .map(|code| ContentRec::Str(StrRef::word(code))),
            _ => None,
        }
    }

    /// The rest of a `JID_PAIR` or `AD_JID` whose tag byte was just read, if it is valid on a
    /// known server (the only JIDs whose checks reduce to the user's characters here).
    #[inline(always)]
    fn jid(&mut self, tag: u8) -> Option<u32> {
        let (user, server, agent, device) = if tag == token::AD_JID {
            let domain = self.byte()?;
            let device = self.byte()?;
            let user = self.name()?;
            // As the full parser: the domain names the server, any other value is an agent on
            // s.whatsapp.net; a one-byte device is in range there, and the user must not be
            // empty.
            let (server, agent) = match domain {
                DOMAIN_LID => (KNOWN_LID, 0),
                DOMAIN_HOSTED => (KNOWN_HOSTED, 0),
                DOMAIN_HOSTED_LID => (KNOWN_HOSTED_LID, 0),
                agent => (KNOWN_WHATSAPP, agent),
            };
            if user.is_empty() {
                return None;
            }
            (user, server, agent, Some(u16::from(device)))
        } else {
            let user = self.name()?;
            let Text::Word(code) = self.name()? else {
                return None;
            };
            (user, known_server_word(code)?, 0, None)
        };
        if !text_user_is_clean(self.buf, user, &KNOWN_SERVERS[usize::from(server)]) {
            return None;
        }
        let rec = JidRec {
            user: self.arena.str(self.buf, user),
            server: ServerRec::Known(server),
            agent,
            device,
            integrator: 0,
        };
        Some(self.arena.push_jid(rec))
    }
}

/// What [`Fast::head`] read.
enum Head {
    /// A node without children, already written.
    Done,
    /// A node whose `len` children come next.
    List {
        tag: Text,
        attrs_start: u32,
        count: u8,
        len: usize,
    },
}

/// The index in [`KNOWN_SERVERS`] of the server a dictionary word names, if it names one.
#[inline]
fn known_server_word(code: WordCode) -> Option<u8> {
    if code == S_WHATSAPP_NET {
        return Some(KNOWN_WHATSAPP);
    }
    let word = token::by_code(code);
    KNOWN_SERVERS
        .iter()
        .position(|server| server.as_str() == word)
        .map(|i| i as u8)
}
