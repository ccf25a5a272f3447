//! WABinary codec speed on a realistic 213-byte `<message>` stanza (`to`/`id`/`type`,
//! `<participants><to jid=…:2><enc v=2 type=pkmsg>` with 140 bytes, `<device-identity>`), the
//! same bytes `tests/interop/bench-wabinary.mjs` times Baileys on
//! (`testdata/wabinary-bench-stanza.json`).
//!
//! Target: encode and decode each at least 10x Baileys' WABinary on this stanza. Criterion
//! reports time per node and bytes/s; `bench-wabinary.mjs` prints nodes/s side by side.
//!
//! - `encode`: the decoded (typed) node, JIDs as `Jid` values, into a fresh `Vec`;
//! - `encode_into_reused`: the same into a cleared buffer (how a connection would send);
//! - `encode_str_attrs`: the node as Baileys takes it (every attribute a string, so JIDs are
//!   parsed from text on every call);
//! - `decode`: frame bytes (flags byte included) to an owned `Node` (built directly by the
//!   parser, dropped every iteration like any received node);
//! - `decode_tree`: frame bytes to a `Tree` (the zero-copy view; dropped every iteration, so
//!   its vectors are reused by the next one as in a receive loop);
//! - `decode_tree_buf`: frame bytes to the same validated tree in a reused `TreeBuf` (how a
//!   receive loop that owns its buffer decodes: no allocation, no thread-local hand-over).
//!
//! - `decode_tree_buf_read_all`: the same, then every tag, key, value, JID part and content
//!   read once (what a consumer of the whole stanza pays on top of the decode).
//!
//! Every decode variant validates the whole frame (same parser checks, same errors); the tree
//! variants leave dictionary words as codes and JIDs as records until read, and unpack packed
//! strings during the decode (so `decode_tree*` include that work).
//!
//! Instruction counts (load-independent): `examples/decode_count.rs` under callgrind.

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use wasmeow_protocol::binary::{self, AttrValue, Content, Node};

fn node_from_json(j: &Value) -> Node {
    let mut node = Node::new(j["tag"].as_str().unwrap().to_owned());
    for pair in j["attrs"].as_array().unwrap() {
        let (k, v) = (
            pair[0].as_str().unwrap().to_owned(),
            pair[1].as_str().unwrap().to_owned(),
        );
        node.attrs
            .push((Cow::Owned(k), AttrValue::Str(Cow::Owned(v))));
    }
    let c = &j["content"];
    node.content = if c.is_null() {
        Content::None
    } else if let Some(items) = c.as_array() {
        Content::Nodes(items.iter().map(node_from_json).collect())
    } else if let Some(s) = c.get("str") {
        Content::Str(Cow::Owned(s.as_str().unwrap().to_owned()))
    } else {
        Content::Bytes(hex::decode(c["hex"].as_str().unwrap()).unwrap())
    };
    node
}

fn stanza() -> (Vec<u8>, Node, Node) {
    let file: Value =
        serde_json::from_str(include_str!("../testdata/wabinary-bench-stanza.json")).unwrap();
    let bytes = hex::decode(file["hex"].as_str().unwrap()).unwrap();
    let as_strings = node_from_json(&file["node"]);
    let typed = binary::decode(&bytes).unwrap();
    assert_eq!(
        binary::encode(&typed).unwrap(),
        bytes,
        "typed node re-encodes to the stanza"
    );
    assert_eq!(
        binary::encode(&as_strings).unwrap(),
        bytes,
        "string node encodes to the stanza"
    );
    (bytes, typed, as_strings)
}

fn binary_codec(c: &mut Criterion) {
    let (bytes, typed, as_strings) = stanza();
    let mut group = c.benchmark_group("binary");
    group.throughput(Throughput::Bytes(bytes.len() as u64));

    group.bench_function("encode", |b| {
        b.iter(|| binary::encode(black_box(&typed)).unwrap())
    });
    let mut buf = Vec::with_capacity(512);
    group.bench_function("encode_into_reused", |b| {
        b.iter(|| {
            buf.clear();
            binary::encode_into(black_box(&typed), &mut buf).unwrap();
            black_box(buf.len())
        })
    });
    group.bench_function("encode_str_attrs", |b| {
        b.iter(|| binary::encode(black_box(&as_strings)).unwrap())
    });
    group.bench_function("decode", |b| {
        b.iter(|| binary::decode(black_box(&bytes)).unwrap())
    });
    group.bench_function("decode_tree", |b| {
        b.iter(|| binary::Tree::decode(black_box(&bytes), &binary::DecodeLimits::DEFAULT).unwrap())
    });
    let mut tree_buf = binary::TreeBuf::new();
    group.bench_function("decode_tree_buf", |b| {
        b.iter(|| {
            let root = tree_buf
                .decode(black_box(&bytes), &binary::DecodeLimits::DEFAULT)
                .unwrap();
            black_box(root.attrs().len())
        })
    });
    group.bench_function("decode_tree_buf_read_all", |b| {
        b.iter(|| {
            let root = tree_buf
                .decode(black_box(&bytes), &binary::DecodeLimits::DEFAULT)
                .unwrap();
            black_box(read_all(root))
        })
    });
    group.finish();
}

/// Reads every tag, key, value (JIDs: user and server) and content of a tree, the way a
/// consumer touching the whole stanza would; returns the total text length so nothing is
/// optimised away.
fn read_all(node: binary::NodeRef<'_>) -> usize {
    let mut total = node.tag().len();
    for (key, value) in node.attrs() {
        total += key.len();
        total += match value {
            binary::ValueRef::Str(s) => s.len(),
            binary::ValueRef::Jid(jid) => jid.user().len() + jid.server().as_str().len(),
        };
    }
    total += match node.content() {
        binary::ContentRef::Bytes(b) => b.len(),
        binary::ContentRef::Str(s) => s.len(),
        binary::ContentRef::Jid(jid) => jid.user().len(),
        binary::ContentRef::Nodes(_) => node.children().map(read_all).sum(),
        binary::ContentRef::None => 0,
    };
    total
}

criterion_group!(benches, binary_codec);
criterion_main!(benches);
