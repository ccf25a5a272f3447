//! Binary XML nodes ("WABinary"): the stanza format inside every Noise transport frame, with
//! the token dictionaries and JIDs it uses.
//!
//! Contract: [`encode`] turns a [`Node`] into frame plaintext (flags byte `0x00` + node) that is
//! byte-identical to what the reference peers (Baileys `encodeBinaryNode`, whatsmeow) write for
//! the same node; [`decode`] reads frame plaintext from an untrusted peer (inflating it when flag
//! bit `0x02` is set) and returns the node or a typed [`DecodeError`], within [`DecodeLimits`],
//! without panicking. A decoded node re-encodes to the same bytes whenever the sender used the
//! canonical encoding (see [`decode`](decode::decode_with_limits) for the exact rules).
//!
//! ```
//! use wasmeow_protocol::binary::{self, AttrValue, Content, Jid, Node};
//!
//! // Build and encode a stanza.
//! let to: Jid = "15551234567:2@s.whatsapp.net".parse()?;
//! let message = Node::new("message")
//!     .attr("to", &to)
//!     .attr("id", "3EB0C431C26A1916E07A")
//!     .attr("type", "text")
//!     .children([Node::new("enc").attr("v", "2").attr("type", "pkmsg").bytes(vec![0x33; 20])]);
//! let bytes = binary::encode(&message)?;
//! assert_eq!(bytes[0], 0x00, "flags byte: not compressed");
//!
//! // Decode it again: same node, and the same bytes when re-encoded.
//! let decoded = binary::decode(&bytes)?;
//! assert_eq!(decoded, message);
//! assert_eq!(decoded.attr_jid("to"), Some(&to));
//! let enc = decoded.child_by_tag("enc").unwrap();
//! assert_eq!(enc.attr_str("type"), Some("pkmsg"));
//! assert_eq!(enc.content, Content::Bytes(vec![0x33; 20]));
//! assert_eq!(binary::encode(&decoded)?, bytes);
//!
//! // Garbage is an error, not a panic.
//! assert!(binary::decode(&[0x00, 0xf8, 0x05, 0x19]).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Three ways to read a frame, all validating the whole frame in one pass and accepting and
//! rejecting exactly the same input with the same errors:
//!
//! - [`decode`] builds the owned [`Node`] directly (simple, `Clone`, `'static`): no intermediate
//!   tree; dictionary words are borrowed `&'static str`s, and the only allocations are the ones
//!   the `Node` owns (one per attribute list, child list, byte blob, non-dictionary string and
//!   JID user).
//! - [`Tree::decode`] gives a validated flat arena with borrowed views ([`NodeRef`]): records of
//!   offsets into the input, byte content and raw strings borrowed, tokens resolved to
//!   `&'static str` only when read, packed strings unpacked into one buffer. Its vectors are
//!   reused from the previous tree dropped on the same thread, so a receive loop decodes
//!   without allocating. Call [`NodeRef::to_node`] for the parts worth keeping.
//! - [`TreeBuf::decode`] fills the same arena in a buffer the caller keeps (one per receive
//!   loop): no allocation and no thread-local hand-over in steady state. The fastest way in.
//!
//! `decode` and the full tree parser are one parser (`decode.rs`, generic over a builder). The
//! trees first try a fast path (`fast.rs`) that covers the common wire forms and writes the
//! same records; on anything else, valid or not, the full parser runs and decides (so errors
//! always come from it). Differential tests check the fast path record for record.
//!
//! Performance (the 213-byte benchmark stanza, `docs/benchmarks.md`): by callgrind,
//! `TreeBuf::decode` ≈2.3k instructions, `Tree::decode` ≈2.6k, `decode` ≈5.7k (of which ~1.6k
//! are the 11 allocations and frees the owned `Node` needs), against ≈30k–34k for Baileys'
//! decoder; by wall clock `TreeBuf::decode` is above 10x Baileys.
//!
//! Modules: [`Node`] and friends in `node.rs`; [`Tree`] and its views in `tree.rs`; [`Jid`] and
//! [`Server`] in `jid.rs`; the wire tags and dictionaries in `token.rs` (+ generated
//! `token_data.rs`); `encode.rs` and `decode.rs`.
//!
//! Values: attribute values are [`AttrValue::Str`] or [`AttrValue::Jid`]. When encoding, a `Str`
//! goes through the reference precedence (token, nibble-packed, hex-packed, JID if it parses,
//! raw), so `attr("to", "123@s.whatsapp.net")` and `attr("to", jid)` give the same bytes; when
//! decoding, JID forms come back as `AttrValue::Jid`. Content follows Baileys: raw bytes are
//! [`Content::Bytes`], tokens and packed strings are [`Content::Str`], JIDs are [`Content::Jid`].

mod decode;
mod encode;
mod fast;
mod jid;
mod node;
#[cfg(test)]
mod reference;
mod token;
mod token_data;
mod tree;

pub use decode::{
    DecodeError, DecodeLimits, FLAG_COMPRESSED, MAX_DEPTH, decode, decode_raw,
    decode_raw_with_limits, decode_with_limits,
};
pub use encode::{EncodeError, encode, encode_into, encode_raw_into};
pub use jid::{
    DOMAIN_HOSTED, DOMAIN_HOSTED_LID, DOMAIN_LID, DOMAIN_WHATSAPP, Jid, JidError, Server,
};
pub use node::{AttrValue, Content, Node};
pub use tree::{ContentRef, JidRef, NodeRef, Tree, TreeBuf, ValueRef};

/// Entry points for `fuzz/fuzz_targets/` (not a public API).
#[doc(hidden)]
pub mod fuzzing {
    use super::{
        AttrValue, Content, ContentRef, DecodeError, DecodeLimits, Node, NodeRef, Tree, TreeBuf,
        ValueRef, encode,
    };

    /// Decodes `data` both as frame plaintext and as a raw node. The owned decoder, the tree
    /// and a reused [`TreeBuf`] must give the same node or the same error, and the tree's fast
    /// path the same records as the full parser; whatever decodes must agree with its
    /// views, re-encode, decode again to the same node and re-encode to the same bytes (the
    /// canonical fixpoint). Panics (the fuzzer's signal) only if one of those breaks.
    pub fn node_decode(data: &[u8]) {
        let limits = DecodeLimits {
            max_len: 1 << 20,
            ..DecodeLimits::DEFAULT
        };
        let tree = Tree::decode(data, &limits);
        same_outcome(&tree, super::decode_with_limits(data, &limits));
        if let Ok(tree) = &tree {
            check(tree);
        }
        let tree = Tree::decode_raw(data, &limits);
        same_outcome(&tree, super::decode_raw_with_limits(data, &limits));
        if let Ok(tree) = &tree {
            check(tree);
        }
        same_tree(&tree, &Tree::decode_raw_full(data, &limits));
        // A reused buffer (leftovers of the previous input) decodes the same as a fresh tree.
        BUF.with_borrow_mut(|buf| {
            let node = buf.decode(data, &limits).map(|root| root.to_node());
            same_outcome(&Tree::decode(data, &limits), node);
        });
    }

    thread_local! {
        static BUF: std::cell::RefCell<TreeBuf> = std::cell::RefCell::new(TreeBuf::new());
    }

    /// The fast path and the full parser build the same arena, record for record, or fail
    /// with the same error.
    pub(crate) fn same_tree(
        fast: &Result<Tree<'_>, DecodeError>,
        full: &Result<Tree<'_>, DecodeError>,
    ) {
        match (fast, full) {
            (Ok(a), Ok(b)) => assert!(a.arena == b.arena, "fast and full arenas differ"),
            (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "same error"),
            (a, b) => panic!("fast path {a:?} but full parser {b:?}"),
        }
    }

    /// The two builders of the one parser agree: same node, or the same error.
    fn same_outcome(tree: &Result<Tree<'_>, DecodeError>, owned: Result<Node, DecodeError>) {
        match (tree, owned) {
            (Ok(tree), Ok(node)) => assert_eq!(tree.to_node(), node, "Tree and decode agree"),
            (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "same error"),
            (a, b) => panic!("Tree::decode {a:?} but decode {b:?}"),
        }
    }

    fn check(tree: &Tree<'_>) {
        let node = tree.to_node();
        same(tree.root(), &node);
        let bytes = encode(&node).expect("a decoded node is always encodable");
        let again = super::decode(&bytes).expect("our own encoding decodes");
        assert_eq!(again, node, "decode(encode(node)) == node");
        assert_eq!(
            encode(&again).expect("encodable"),
            bytes,
            "re-encoding is stable"
        );
    }

    /// The borrowed views and the owned copy say the same thing.
    fn same(view: NodeRef<'_>, node: &Node) {
        assert_eq!(view.tag(), node.tag);
        assert_eq!(view.attrs().len(), node.attrs.len());
        for ((key, value), (k, v)) in view.attrs().zip(&node.attrs) {
            assert_eq!(key, k);
            match (value, v) {
                (ValueRef::Str(a), AttrValue::Str(b)) => assert_eq!(a, b),
                (ValueRef::Jid(a), AttrValue::Jid(b)) => {
                    assert_eq!(&a.to_jid(), b);
                    assert_eq!(a.to_string(), b.to_string());
                }
                (a, b) => panic!("view {a:?} vs owned {b:?}"),
            }
        }
        match (view.content(), &node.content) {
            (ContentRef::None, Content::None) => {}
            (ContentRef::Nodes(n), Content::Nodes(children)) => {
                assert_eq!(n, children.len());
                for (child, owned) in view.children().zip(children) {
                    same(child, owned);
                }
            }
            (ContentRef::Bytes(a), Content::Bytes(b)) => assert_eq!(a, b.as_slice()),
            (ContentRef::Str(a), Content::Str(b)) => assert_eq!(a, b),
            (ContentRef::Jid(a), Content::Jid(b)) => assert_eq!(&a.to_jid(), b),
            (a, b) => panic!("view {a:?} vs owned {b:?}"),
        }
    }
}
