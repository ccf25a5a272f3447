// WABinary interop with Baileys 7.0.0-rc14, both directions, through the wabinary-peer binary
// (cargo build --release -p wasmeow-interop-peer).
//
// - Baileys decodes our encoding of every corpus node to the node it decodes from its own bytes,
//   and our bytes equal its bytes;
// - our decoder reads Baileys' bytes as Baileys does, and our typed re-encoding of them is
//   byte-identical (also for FB_JID, INTEROP_JID, AD agents and compressed frames, which Baileys
//   only decodes);
// - the same on freshly generated random nodes (seed: WABINARY_SEED, default 1).
//
// The corpus side without Baileys at run time is `cargo test -p wasmeow-protocol --test wabinary_corpus`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { startJsonPeer, repoRoot } from './lib/peer.mjs';
import { baileysEncode, baileysDecode, rng, generators } from './wabinary-lib.mjs';

const corpus = JSON.parse(readFileSync(join(repoRoot, 'host/protocol/testdata/wabinary-corpus.json'), 'utf8'));
let peer;

before(() => {
  peer = startJsonPeer('wabinary-peer');
});
after(async () => {
  await peer?.close();
});

async function ask(request) {
  const reply = await peer.request(request);
  assert.equal(reply.error, undefined, `peer error for ${request.op}: ${reply.error}`);
  return reply;
}

/** The bytes an entry's frame fields (`hex`, or `sha256` + `len`) describe, given candidate bytes. */
function assertFrame(fields, bytes, name) {
  if (fields.hex !== undefined) {
    assert.equal(bytes.toString('hex'), fields.hex, `${name}: bytes`);
  } else {
    assert.equal(bytes.length, fields.len, `${name}: length`);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), fields.sha256, `${name}: sha256`);
  }
}

/** The uncompressed frame of an entry, as Baileys wrote it. */
function baileysFrame(entry) {
  if (entry.hex !== undefined) return Buffer.from(entry.hex, 'hex');
  const bytes = baileysEncode(entry.node);
  assertFrame(entry, bytes, entry.name);
  return bytes;
}

test('corpus: Baileys decodes our encoding of each node to the same node, from the same bytes', async () => {
  let n = 0;
  for (const entry of corpus.entries) {
    if (!entry.node) continue;
    const { hex } = await ask({ op: 'encode', node: entry.node });
    const ours = Buffer.from(hex, 'hex');
    assertFrame(entry.plain ?? entry, ours, entry.name);
    assert.deepEqual(await baileysDecode(ours), entry.decoded, `${entry.name}: Baileys' reading of our bytes`);
    n++;
  }
  assert.ok(n >= 200, `${n} nodes checked`);
});

test('corpus: our decoder reads Baileys bytes like Baileys, and re-encodes them byte for byte', async () => {
  for (const entry of corpus.entries) {
    const frame = baileysFrame(entry);
    const { node } = await ask({ op: 'decode', hex: frame.toString('hex') });
    assert.deepEqual(node, entry.decoded, `${entry.name}: our reading`);
    const { hex } = await ask({ op: 'reencode', hex: frame.toString('hex') });
    const ours = Buffer.from(hex, 'hex');
    assertFrame(entry.plain ?? entry, ours, `${entry.name} (re-encoded)`);
    assert.deepEqual(await baileysDecode(ours), entry.decoded, `${entry.name}: Baileys' reading of our re-encoding`);
  }
});

test('random nodes: both directions agree with Baileys', async () => {
  const seed = Number(process.env.WABINARY_SEED ?? 1);
  const g = generators(rng(seed));
  for (let i = 0; i < 400; i++) {
    const node = g.node();
    const theirs = baileysEncode(node);
    const theirReading = await baileysDecode(theirs);
    const label = `seed ${seed} node ${i}: ${JSON.stringify(node).slice(0, 200)}`;

    const { node: ourReading } = await ask({ op: 'decode', hex: theirs.toString('hex') });
    assert.deepEqual(ourReading, theirReading, `${label}: our reading of Baileys' bytes`);

    const { hex } = await ask({ op: 'encode', node });
    assert.equal(hex, theirs.toString('hex'), `${label}: our bytes`);
    assert.deepEqual(await baileysDecode(Buffer.from(hex, 'hex')), theirReading, `${label}: Baileys' reading of our bytes`);
  }
});

test('garbage is answered with an error, not a crash', async () => {
  for (const hex of ['', '00', '0000', '00f8', '00f80519', '00f80119ff', '02deadbeef', '00fe7fffffff']) {
    const reply = await peer.request({ op: 'decode', hex });
    assert.equal(typeof reply.error, 'string', `${hex}: ${JSON.stringify(reply)}`);
  }
  // The peer is still alive afterwards.
  const { hex } = await ask({ op: 'encode', node: { tag: 'iq', attrs: [['type', 'result'], ['id', 'abc']], content: null } });
  assert.equal(hex, '00f80519041408fc03616263');
});
