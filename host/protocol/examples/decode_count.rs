//! Decodes the benchmark stanza (`testdata/wabinary-bench-stanza.json`) `N` times, for counting
//! instructions with callgrind, which is independent of machine load (`docs/benchmarks.md`).
//!
//! ```sh
//! cargo build --release -p wasmeow-protocol --example decode_count
//! valgrind --tool=callgrind target/release/examples/decode_count node 1
//! valgrind --tool=callgrind target/release/examples/decode_count node 10001
//! ```
//!
//! (instructions of the second run − the first) / 10 000 is the cost of one decode, start-up
//! excluded. Modes: `node` (owned [`Node`](wasmeow_protocol::binary::Node)), `tree`
//! ([`Tree`](wasmeow_protocol::binary::Tree)), `buf` (a reused
//! [`TreeBuf`](wasmeow_protocol::binary::TreeBuf)), `walk` (`buf`, then every tag, key, value,
//! JID part and content read once), `encode`.

use std::hint::black_box;

use wasmeow_protocol::binary::{self, ContentRef, DecodeLimits, NodeRef, Tree, TreeBuf, ValueRef};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "node".to_owned());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let file = include_str!("../testdata/wabinary-bench-stanza.json");
    // The hex string is the only `"hex": "…"` value at top level; find it without a JSON parser.
    let key = "\n \"hex\": \"";
    let start = file.find(key).expect("top-level hex") + key.len();
    let end = start + file[start..].find('"').expect("closing quote");
    let bytes: Vec<u8> = (start..end)
        .step_by(2)
        .map(|i| u8::from_str_radix(&file[i..i + 2], 16).expect("hex"))
        .collect();
    let mut total = 0usize;
    match mode.as_str() {
        "node" => {
            for _ in 0..n {
                let node = binary::decode(black_box(&bytes)).expect("stanza decodes");
                total += node.attrs.len();
            }
        }
        "tree" => {
            for _ in 0..n {
                let tree = Tree::decode(black_box(&bytes), &DecodeLimits::DEFAULT)
                    .expect("stanza decodes");
                total += tree.root().attrs().len();
            }
        }
        "buf" => {
            let mut buf = TreeBuf::new();
            for _ in 0..n {
                let root = buf
                    .decode(black_box(&bytes), &DecodeLimits::DEFAULT)
                    .expect("stanza decodes");
                total += root.attrs().len();
            }
        }
        "walk" => {
            let mut buf = TreeBuf::new();
            for _ in 0..n {
                let root = buf
                    .decode(black_box(&bytes), &DecodeLimits::DEFAULT)
                    .expect("stanza decodes");
                total += read_all(root);
            }
        }
        "encode" => {
            let node = binary::decode(&bytes).expect("stanza decodes");
            for _ in 0..n {
                total += binary::encode(black_box(&node)).expect("encodes").len();
            }
        }
        other => panic!("unknown mode {other:?} (node, tree, buf, walk, encode)"),
    }
    println!("{mode} x{n}: {total}");
}

/// Reads every tag, key, value (JIDs: user and server) and content once; returns the total text
/// length (the same walk as `benches/binary.rs`).
fn read_all(node: NodeRef<'_>) -> usize {
    let mut total = node.tag().len();
    for (key, value) in node.attrs() {
        total += key.len();
        total += match value {
            ValueRef::Str(s) => s.len(),
            ValueRef::Jid(jid) => jid.user().len() + jid.server().as_str().len(),
        };
    }
    total += match node.content() {
        ContentRef::Bytes(b) => b.len(),
        ContentRef::Str(s) => s.len(),
        ContentRef::Jid(jid) => jid.user().len(),
        ContentRef::Nodes(_) => node.children().map(read_all).sum(),
        ContentRef::None => 0,
    };
    total
}
