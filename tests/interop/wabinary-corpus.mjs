// Builds the WABinary cross-check corpus with Baileys' own codec and writes
// host/protocol/testdata/wabinary-corpus.json (commit it) plus the benchmark stanza
// host/protocol/testdata/wabinary-bench-stanza.json.
//
//   cd tests/interop && node wabinary-corpus.mjs
//
// Every entry has the frame bytes Baileys' encodeBinaryNode wrote for `node` (or hand-written
// bytes for the decode-only forms FB_JID, INTEROP_JID, agents, compressed frames) and the node
// Baileys' decodeBinaryNode reads back (`decoded`). `cargo test -p wasmeow-protocol --test
// wabinary_corpus` checks that our decoder reads the same node and our encoder writes the same
// bytes; wabinary.test.mjs checks the reverse direction through the wabinary-peer binary.
import { writeFileSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { repoRoot } from './lib/peer.mjs';
import {
  baileysEncode, baileysDecode, fromJson, toJson, encodeBinaryNode, rng, generators,
  SINGLE_BYTE_TOKENS, DOUBLE_BYTE_TOKENS,
} from './wabinary-lib.mjs';

const r = rng(20250101);
const g = generators(r);
const entries = [];
const unstable = [];
/** Above this many bytes a frame is stored as sha256 + length instead of hex. */
const HEX_MAX = 64 * 1024;

function frameFields(bytes) {
  if (bytes.length <= HEX_MAX) return { hex: bytes.toString('hex') };
  return { sha256: createHash('sha256').update(bytes).digest('hex'), len: bytes.length };
}

/** An entry encoded by Baileys. */
async function add(name, node) {
  // Normalise to the attribute order Baileys uses (JS objects put integer-like keys first).
  node = toJson(fromJson(node));
  const bytes = baileysEncode(node);
  const decoded = await baileysDecode(bytes);
  // Baileys re-encodes its own decoding identically except where its string form of a JID is
  // lossy (an AD_JID with device 0 reads back as "user@server"); record which entries those are.
  const again = encodeBinaryNode(fromJson(decoded));
  const entry = { name, node, ...frameFields(bytes), decoded };
  if (!again.equals(bytes)) {
    entry.baileys_reencode_differs = true;
    unstable.push(name);
  }
  entries.push(entry);
}

/** A decode-only entry: hand-written frame bytes Baileys decodes but cannot produce. */
async function addBytes(name, bytes, note) {
  const decoded = await baileysDecode(bytes);
  entries.push({ name, node: null, ...frameFields(bytes), decoded, note });
}

const N = (tag, attrs = [], content = null) => ({ tag, attrs, content });
const hexc = (buf) => ({ hex: Buffer.from(buf).toString('hex') });

// 1. The two reference vectors from interop-baileys.md §8.
await add('ref-iq-result', N('iq', [['type', 'result'], ['id', 'abc']]));
await add('ref-ping', N('iq', [['id', '1'], ['to', '@s.whatsapp.net'], ['type', 'get'], ['xmlns', 'w:p']], [N('ping')]));

// 2. Every single-byte token, as tag, key and value.
for (let i = 1; i < SINGLE_BYTE_TOKENS.length; i += 8) {
  const words = SINGLE_BYTE_TOKENS.slice(i, i + 8).filter((w) => w !== 'constructor');
  const attrs = [];
  const seen = new Set();
  for (let k = 0; k + 1 < words.length; k += 2) {
    if (seen.has(words[k])) continue;
    seen.add(words[k]);
    attrs.push([words[k], words[k + 1]]);
  }
  await add(`single-tokens-${i}`, N(words[0], attrs, { str: words[words.length - 1] }));
}

// 3. Every word of all four double-byte dictionaries, as a value and (non-numeric words, since JS
//    reorders integer-like keys) as a key.
for (let d = 0; d < 4; d++) {
  for (let i = 0; i < 256; i += 32) {
    const words = DOUBLE_BYTE_TOKENS[d].slice(i, i + 32);
    const values = words.map((w, j) => [`w${j}`, w]);
    const keys = words.filter((w) => !/^\d+$/.test(w)).map((w) => [w, '1']);
    await add(`double-dict${d}-${i}`, N(words.find((w) => w !== ''), values, [N('keys', keys, { str: words[0] })]));
  }
}

// 4. Packing edge cases.
const nib = (n) => '0123456789-.'.repeat(20).slice(0, n);
const hx = (n) => '0123456789ABCDEF'.repeat(20).slice(0, n);
for (const n of [1, 2, 3, 4, 5, 126, 127, 128, 129, 200]) {
  await add(`nibble-len-${n}`, N('x', [['v', nib(n)], ['w', '9'.repeat(n)]]));
  await add(`hex-len-${n}`, N('x', [['v', hx(n)], ['w', 'F'.repeat(n)]], { str: hx(n) }));
}
await add('hex-lower-is-raw', N('x', [['v', 'abcdef0123'], ['w', '3eb0'], ['u', 'ABCdef']]));
await add('nibble-vs-hex', N('x', [['a', '12'], ['b', '1A'], ['c', '-.'], ['d', '.5'], ['e', '-'], ['f', 'A']]));
await add('content-nibble', N('x', [], { str: '12.34-56' }));
await add('content-hex', N('x', [], { str: '3EB0C431C26A1916E07A' }));

// 5. Raw strings of every length class.
await add('raw-empty', N('x', [['v', '']], { str: '' }));
await add('raw-unicode', N('x', [['v', 'héllo ✓ 😀'], ['w', '日本語']], { str: 'Ωmega' }));
await add('raw-255', N('x', [['v', 'a'.repeat(255)]]));
await add('raw-256', N('x', [['v', 'b'.repeat(256)]]));
await add('raw-3000', N('x', [['v', 'c'.repeat(3000)]]));
await add('raw-content-string', N('x', [], { str: 'hello world' }));

// 6. Binary content of each size class (8 / 20 / 32).
for (const n of [0, 1, 2, 255, 256, 1000, 65535, 65536, (1 << 20) - 1, 1 << 20, (1 << 20) + 7]) {
  const content = n >= 4096 ? { fill: { byte: n % 251, len: n } } : hexc(r.bytes(n));
  await add(`bytes-${n}`, N('enc', [['v', '2'], ['type', 'msg']], content));
}

// 7. JIDs in every form.
const jids = [
  '@s.whatsapp.net', '@g.us', '@lid', '@c.us', '@broadcast', '@newsletter', '@bot', '@call',
  '15551234567@s.whatsapp.net', '15551234567:1@s.whatsapp.net', '15551234567:0@s.whatsapp.net',
  '15551234567:99@s.whatsapp.net', '15551234567:255@s.whatsapp.net',
  '123456789012345@lid', '123456789012345:3@lid', '123456789012345:0@lid', '98765:255@lid',
  '15551234567@hosted', '15551234567:7@hosted', '15551234567:0@hosted',
  '123456789012345@hosted.lid', '123456789012345:9@hosted.lid',
  '120363025246125486@g.us', '15551234567-1600000000@g.us', 'status@broadcast', '1600000000@broadcast',
  '120363144038483540@newsletter', '13135550002@bot', '13135550002@c.us', '0@c.us', 'server@c.us',
  '100023@msgr', 'someone@interop', 'alice@s.whatsapp.net', 'xyz@call', 'abc-def@g.us',
];
for (let i = 0; i < jids.length; i += 3) {
  const part = jids.slice(i, i + 3);
  await add(`jids-${i}`, N('x', part.map((j, k) => [['to', 'from', 'participant'][k], j]), { str: part[0] }));
}
for (const j of jids) await add(`jid-content-${j}`, N('item', [['jid', j]], { str: j }));

// 8. Decode-only forms (Baileys can read them but never writes them).
const body = (...parts) => Buffer.concat(parts.map((p) => Buffer.from(p)));
// <x jid=FB_JID(user "100023", device 700, server "msgr")/>: f8 03 <x> <jid> f6 <user> 02bc <msgr>
const x = [0xfc, 0x01, 0x78];
const jidKey = encodeBinaryNode({ tag: 'jid', attrs: {} }).subarray(3); // the token for "jid"
const writeString = (s) => {
  // The encoding of `s` as Baileys writes it: take it out of a one-attribute node.
  const full = encodeBinaryNode({ tag: 'q', attrs: { k: s } }); // 00 f8 03 fc01'q' fc01'k' <s>
  if (full[3] !== 0xfc || full[6] !== 0xfc) throw new Error('"q" and "k" are expected to be raw strings');
  return full.subarray(9);
};
const frame = (...parts) => body([0x00, 0xf8, 0x03], x, jidKey, ...parts);
await addBytes('fb-jid', frame([0xf6], writeString('100023'), [0x02, 0xbc], writeString('msgr')), 'FB_JID');
await addBytes('fb-jid-device-0', frame([0xf6], writeString('5'), [0x00, 0x00], writeString('msgr')), 'FB_JID');
await addBytes('interop-jid', frame([0xf5], writeString('abc'), [0x00, 0x07], [0x00, 0x0c], writeString('interop')), 'INTEROP_JID');
await addBytes('interop-jid-max', frame([0xf5], writeString('15551234567'), [0xff, 0xff], [0xff, 0xff], writeString('interop')), 'INTEROP_JID');
await addBytes('ad-jid-agent', frame([0xf7, 0x05, 0x03], writeString('15551234567')), 'AD_JID with agent byte 5 (Baileys drops the agent)');
await addBytes('ad-jid-agent-2', frame([0xf7, 0x02, 0x00], writeString('42')), 'AD_JID with agent byte 2 and device 0');
await addBytes('fb-jid-content', body([0x00, 0xf8, 0x02], x, [0xf6], writeString('77'), [0x00, 0x01], writeString('msgr')), 'FB_JID content');

// 9. Compressed frames: flag 0x02, zlib body.
for (const [name, node] of [
  ['compressed-small', N('iq', [['id', '1'], ['type', 'result']], [N('ping')])],
  ['compressed-big', N('iq', [['id', '77'], ['type', 'result']], Array.from({ length: 120 }, (_, i) => N('item', [['jid', `1555000${i}@s.whatsapp.net`]], hexc(Buffer.alloc(20, i)))))],
]) {
  const plain = baileysEncode(node);
  const frameBytes = Buffer.concat([Buffer.from([0x02]), deflateSync(plain.subarray(1))]);
  const decoded = await baileysDecode(frameBytes);
  entries.push({ name, node, ...frameFields(frameBytes), plain: frameFields(plain), decoded, note: 'zlib-compressed' });
}

// 10. List sizes: empty list, 255 and 256 children (LIST_8 / LIST_16), LIST_16 node headers.
await add('list-empty', N('x', [], []));
await add('list-1', N('x', [], [N('a')]));
await add('list-255', N('x', [], Array.from({ length: 255 }, (_, i) => N('item', [['n', String(i)]]))));
await add('list-256', N('x', [], Array.from({ length: 256 }, () => N('item'))));
await add('list-260-jids', N('x', [], Array.from({ length: 260 }, (_, i) => N('user', [['jid', `${15550000000 + i}@s.whatsapp.net`]]))));
await add('attrs-127', N('x', Array.from({ length: 127 }, (_, i) => [`k${i}`, `v${i}`])));
await add('attrs-127-content', N('x', Array.from({ length: 127 }, (_, i) => [`k${i}`, `v${i}`]), hexc([1])));
await add('attrs-128', N('x', Array.from({ length: 128 }, (_, i) => [`k${i}`, String(i)])));
await add('attrs-300', N('x', Array.from({ length: 300 }, (_, i) => [`k${i}`, String(i)]), [N('y')]));
let deep = N('leaf', [['d', '20']], { str: 'bottom' });
for (let d = 19; d > 0; d--) deep = N(d % 2 ? 'list' : 'item', [['d', String(d)]], [deep]);
await add('nested-20', deep);

// 11. Realistic stanzas.
const benchStanza = N('message', [['to', '15551234567@s.whatsapp.net'], ['id', '3EB0C431C26A1916E07A'], ['type', 'text']], [
  N('participants', [], [
    N('to', [['jid', '15551234567:2@s.whatsapp.net']], [N('enc', [['v', '2'], ['type', 'pkmsg']], hexc(r.bytes(140)))]),
  ]),
  N('device-identity', [], hexc(r.bytes(5))),
]);
await add('stanza-message', benchStanza);
await add('stanza-message-group', N('message', [['to', '120363025246125486@g.us'], ['id', '3EB0ABCDEF0123456789'], ['type', 'text'], ['phash', '2:pnjz+W6m']], [
  N('participants', [], Array.from({ length: 12 }, (_, i) => N('to', [['jid', `1555123${1000 + i}:${i % 4}@s.whatsapp.net`]], [N('enc', [['v', '2'], ['type', i % 2 ? 'msg' : 'pkmsg']], hexc(r.bytes(90 + i)))]))),
  N('enc', [['v', '2'], ['type', 'skmsg']], hexc(r.bytes(120))),
]));
await add('stanza-receipt', N('receipt', [['id', '3EB0C431C26A1916E07A'], ['to', '15551234567@s.whatsapp.net'], ['participant', '123456789012345:2@lid'], ['type', 'read'], ['t', '1718000000']], [N('list', [], [N('item', [['id', '3EB0C431C26A1916E07B']])])]));
await add('stanza-ack', N('ack', [['id', 'ABCDEF'], ['class', 'message'], ['to', '15551234567@s.whatsapp.net'], ['type', 'text']]));
await add('stanza-usync', N('iq', [['id', '42.123-7'], ['to', '@s.whatsapp.net'], ['type', 'get'], ['xmlns', 'usync']], [
  N('usync', [['sid', '12345678-9'], ['mode', 'query'], ['last', 'true'], ['index', '0'], ['context', 'message']], [
    N('query', [], [N('devices', [['version', '2']])]),
    N('list', [], [N('user', [['jid', '15551234567@s.whatsapp.net']]), N('user', [['jid', '15557654321@s.whatsapp.net']])]),
  ]),
]));
await add('stanza-prekeys', N('iq', [['id', '7'], ['xmlns', 'encrypt'], ['type', 'set'], ['to', '@s.whatsapp.net']], [
  N('registration', [], hexc([0, 0, 0x30, 0x39])), N('type', [], hexc([5])), N('identity', [], hexc(r.bytes(32))),
  N('list', [], Array.from({ length: 30 }, (_, i) => N('key', [], [N('id', [], hexc([0, 0, i + 1])), N('value', [], hexc(r.bytes(32)))]))),
  N('skey', [], [N('id', [], hexc([0, 0, 1])), N('value', [], hexc(r.bytes(32))), N('signature', [], hexc(r.bytes(64)))]),
]));
await add('stanza-pair-device', N('iq', [['from', '@s.whatsapp.net'], ['type', 'set'], ['id', '1234567890'], ['xmlns', 'md']], [
  N('pair-device', [], Array.from({ length: 6 }, () => N('ref', [], { str: r.bytes(40).toString('base64') }))),
]));
await add('stanza-notification', N('notification', [['from', '120363025246125486@g.us'], ['type', 'w:gp2'], ['id', '1234'], ['participant', '15551234567@s.whatsapp.net'], ['t', '1718000000']], [
  N('add', [], [N('participant', [['jid', '15557654321@s.whatsapp.net'], ['lid', '98765432109876@lid']])]),
]));
await add('stanza-success', N('success', [['t', '1718000000'], ['props', '123'], ['abprops', '456'], ['location', 'frc'], ['creation', '1600000000'], ['lid', '98765432109876:3@lid']]));
await add('stanza-stream-error', N('stream:error', [['code', '515']]));
await add('stanza-presence', N('presence', [['type', 'available'], ['name', 'wasmeow bot ✓']]));
await add('stanza-chatstate', N('chatstate', [['to', '15551234567@s.whatsapp.net']], [N('composing', [['media', 'audio']])]));

// 12. Seeded random nodes (every kind mixed) to bring the corpus well past 200 entries.
for (let i = 0; entries.length < 420; i++) await add(`random-${i}`, g.node());

const corpusPath = join(repoRoot, 'host/protocol/testdata/wabinary-corpus.json');
writeFileSync(corpusPath, JSON.stringify({
  about: 'WABinary nodes encoded and decoded by @whiskeysockets/baileys@7.0.0-rc14; generated by tests/interop/wabinary-corpus.mjs',
  entries,
}, null, 0).replace(/\{"name"/g, '\n{"name"') + '\n');

const benchBytes = baileysEncode(benchStanza);
writeFileSync(join(repoRoot, 'host/protocol/testdata/wabinary-bench-stanza.json'), JSON.stringify({
  about: 'The benchmark stanza for benches/binary.rs and tests/interop/bench-wabinary.mjs (bytes from Baileys encodeBinaryNode)',
  node: benchStanza,
  hex: benchBytes.toString('hex'),
}, null, 1) + '\n');

// A small seed corpus for `cargo fuzz run node_decode`: a few dozen varied frames (not all).
const seedDir = join(repoRoot, 'fuzz/corpus/node_decode');
mkdirSync(seedDir, { recursive: true });
for (const f of readdirSync(seedDir)) if (f.endsWith('.bin')) unlinkSync(join(seedDir, f));
const seedNames = new Set([
  'ref-iq-result', 'ref-ping', 'single-tokens-1', 'single-tokens-113', 'double-dict0-0', 'double-dict1-96',
  'double-dict2-160', 'double-dict3-224', 'nibble-len-1', 'nibble-len-3', 'nibble-len-127', 'nibble-len-128',
  'hex-len-2', 'hex-len-127', 'hex-lower-is-raw', 'nibble-vs-hex', 'raw-empty', 'raw-unicode', 'raw-256',
  'bytes-0', 'bytes-255', 'bytes-256', 'jids-0', 'jids-9', 'jids-15', 'jids-30', 'fb-jid', 'interop-jid',
  'ad-jid-agent', 'fb-jid-content', 'compressed-small', 'list-empty', 'list-256', 'attrs-128', 'nested-20',
  'stanza-message', 'stanza-receipt', 'stanza-usync', 'stanza-notification', 'stanza-success', 'random-3',
  'random-17', 'random-42',
]);
let seeds = 0;
for (const e of entries) {
  if (!seedNames.has(e.name) || e.hex === undefined || e.hex.length > 8192) continue;
  writeFileSync(join(seedDir, `${e.name}.bin`), Buffer.from(e.hex, 'hex'));
  seeds++;
}
console.log(`wrote ${seeds} seed frames to ${seedDir}`);

console.log(`Baileys' own decode → encode differs (lossy JID strings) for: ${unstable.join(', ')}`);
console.log(`wrote ${entries.length} entries to ${corpusPath}; bench stanza is ${benchBytes.length} bytes`);
