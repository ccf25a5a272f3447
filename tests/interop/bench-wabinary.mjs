// Times Baileys' WABinary encode/decode on the benchmark stanza (the same 213 bytes the criterion
// bench `cargo bench -p wasmeow-protocol --bench binary` uses) and prints a side-by-side table
// with our numbers, read from criterion's output (target/criterion/binary/*/new/estimates.json).
//
//   cargo bench -p wasmeow-protocol --bench binary      # our numbers
//   cd tests/interop && node bench-wabinary.mjs          # Baileys' numbers + the table
//
// Run both on an otherwise idle machine, one after the other; the ratio is what matters.
//
// Instruction counts (load-independent) with callgrind: `node bench-wabinary.mjs count <sync|async> N`
// decodes the stanza exactly N times and exits; run it under
// `valgrind --tool=callgrind --smc-check=all-non-file` for two values of N and divide the
// difference by the difference of N (docs/benchmarks.md; the Rust side is
// `host/protocol/examples/decode_count.rs`).
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './lib/peer.mjs';
import { encodeBinaryNode, decodeBinaryNode, fromJson } from './wabinary-lib.mjs';

const stanza = JSON.parse(readFileSync(join(repoRoot, 'host/protocol/testdata/wabinary-bench-stanza.json'), 'utf8'));
const bytes = Buffer.from(stanza.hex, 'hex');
const node = fromJson(stanza.node);
if (!encodeBinaryNode(node).equals(bytes)) throw new Error('Baileys does not encode the stanza to the stored bytes');

if (process.argv[2] === 'count') {
  const { decodeDecompressedBinaryNode } = await import('@whiskeysockets/baileys/lib/WABinary/decode.js');
  const constants = await import('@whiskeysockets/baileys/lib/WABinary/constants.js');
  const [mode, n] = [process.argv[3], Number(process.argv[4])];
  let tags = 0;
  for (let i = 0; i < n; i++) {
    const decoded = mode === 'async'
      ? await decodeBinaryNode(bytes)
      : decodeDecompressedBinaryNode(bytes.subarray(1), constants, { index: 0 });
    tags += decoded.tag.length;
  }
  console.log(`${mode} x${n}: ${tags}`);
  process.exit(0);
}

/**
 * Runs `fn` for about `ms` milliseconds after a warm-up; returns nanoseconds per call (best of 5
 * rounds). Synchronous functions are called in a plain loop; `isAsync` awaits each call.
 */
async function time(fn, isAsync = false, ms = 1500) {
  const batch = async () => {
    if (isAsync) for (let i = 0; i < 1000; i++) await fn();
    else for (let i = 0; i < 1000; i++) fn();
  };
  for (let i = 0; i < 50; i++) await batch();
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    let n = 0;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(Math.round(ms / 5)) * 1000000n;
    let now = start;
    while (now < deadline) {
      await batch();
      n += 1000;
      now = process.hrtime.bigint();
    }
    best = Math.min(best, Number(now - start) / n);
  }
  return best;
}

// decodeBinaryNode is async (it may inflate); time the synchronous core too, to be fair to Baileys.
const { decodeDecompressedBinaryNode } = await import('@whiskeysockets/baileys/lib/WABinary/decode.js');
const constants = await import('@whiskeysockets/baileys/lib/WABinary/constants.js');
const body = bytes.subarray(1);

const baileys = {
  encode: await time(() => encodeBinaryNode(node)),
  decode: await time(() => decodeBinaryNode(bytes), true),
  decodeSync: await time(() => decodeDecompressedBinaryNode(body, constants, { index: 0 })),
};

function criterion(name) {
  const path = join(process.env.CARGO_TARGET_DIR ?? join(repoRoot, 'target'), 'criterion', 'binary', name, 'new', 'estimates.json');
  if (!existsSync(path)) return undefined;
  const est = JSON.parse(readFileSync(path, 'utf8'));
  return (est.slope ?? est.mean).point_estimate; // ns per iteration
}
const ours = {
  encode: criterion('encode'),
  encodeReused: criterion('encode_into_reused'),
  encodeStr: criterion('encode_str_attrs'),
  decode: criterion('decode'),
  decodeTree: criterion('decode_tree'),
  decodeTreeBuf: criterion('decode_tree_buf'),
  decodeTreeBufReadAll: criterion('decode_tree_buf_read_all'),
};

const perSec = (ns) => (ns ? Math.round(1e9 / ns).toLocaleString('en-US') : 'n/a');
const mbps = (ns) => (ns ? ((bytes.length / ns) * 1e3).toFixed(1) : 'n/a');
const ratio = (theirs, mine) => (mine ? `${(theirs / mine).toFixed(1)}x` : 'n/a');
const rows = [
  ['encode', baileys.encode, ours.encode, 'wasmeow encode (typed Jid attrs, fresh Vec)'],
  ['encode', baileys.encode, ours.encodeReused, 'wasmeow encode_into (reused buffer)'],
  ['encode', baileys.encode, ours.encodeStr, 'wasmeow encode (string attrs, JIDs parsed per call)'],
  ['decode', baileys.decode, ours.decode, 'wasmeow decode to owned Node vs decodeBinaryNode (async)'],
  ['decode', baileys.decodeSync, ours.decode, 'wasmeow decode to owned Node vs decodeDecompressedBinaryNode (sync)'],
  ['decode', baileys.decode, ours.decodeTree, 'wasmeow Tree::decode (zero-copy view) vs decodeBinaryNode'],
  ['decode', baileys.decodeSync, ours.decodeTree, 'wasmeow Tree::decode (zero-copy view) vs sync core'],
  ['decode', baileys.decode, ours.decodeTreeBuf, 'wasmeow TreeBuf::decode (same tree, reused buffer) vs decodeBinaryNode'],
  ['decode', baileys.decodeSync, ours.decodeTreeBuf, 'wasmeow TreeBuf::decode (same tree, reused buffer) vs sync core'],
  ['decode', baileys.decodeSync, ours.decodeTreeBufReadAll, 'wasmeow TreeBuf::decode + reading every string/JID once vs sync core'],
];
console.log(`stanza: ${bytes.length} bytes; Node ${process.version}`);
console.log('| op | Baileys nodes/s | Baileys MB/s | wasmeow nodes/s | wasmeow MB/s | speed-up | variant |');
console.log('|---|---:|---:|---:|---:|---:|---|');
for (const [op, theirs, mine, note] of rows) {
  console.log(`| ${op} | ${perSec(theirs)} | ${mbps(theirs)} | ${perSec(mine)} | ${mbps(mine)} | ${ratio(theirs, mine)} | ${note} |`);
}
if (!ours.decode) console.log('\n(no criterion results found: run `cargo bench -p wasmeow-protocol --bench binary` first)');
