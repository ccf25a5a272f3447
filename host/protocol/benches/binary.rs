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
//!   its vectors are reused by the next one as in a receive loop).
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
    group.finish();
}

criterion_group!(benches, binary_codec);
criterion_main!(benches);
