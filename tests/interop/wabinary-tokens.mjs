// One-off generator: transcribes the WABinary token dictionaries (protocol facts, dictionary
// version 3) from the pinned Baileys package into a Rust data file of string arrays.
//
//   cd tests/interop && node wabinary-tokens.mjs
//
// writes host/protocol/src/binary/token_data.rs. Only the data is taken; the lookup code is ours.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { repoRoot } from './lib/peer.mjs';
import { SINGLE_BYTE_TOKENS, DOUBLE_BYTE_TOKENS } from '@whiskeysockets/baileys/lib/WABinary/constants.js';

if (SINGLE_BYTE_TOKENS.length !== 236) throw new Error(`expected 236 single-byte tokens, got ${SINGLE_BYTE_TOKENS.length}`);
if (DOUBLE_BYTE_TOKENS.length !== 4 || DOUBLE_BYTE_TOKENS.some((d) => d.length !== 256)) {
  throw new Error('expected 4 double-byte dictionaries of 256 tokens');
}

const lit = (s) => JSON.stringify(s); // every token is printable ASCII, so a JSON string is a valid Rust literal
for (const t of [...SINGLE_BYTE_TOKENS, ...DOUBLE_BYTE_TOKENS.flat()]) {
  if (!/^[\x20-\x7e]*$/.test(t) || t.includes('\\') || t.includes('"')) throw new Error(`unexpected token ${lit(t)}`);
}
const digest = createHash('sha256')
  .update(JSON.stringify({ single: SINGLE_BYTE_TOKENS, double: DOUBLE_BYTE_TOKENS }))
  .digest('hex');

let out = '';
out += '//! The WABinary token dictionaries, dictionary version 3 (data only; generated, do not edit).\n';
out += '//!\n';
out += '//! Transcribed from `@whiskeysockets/baileys@7.0.0-rc14` `lib/WABinary/constants.js` by\n';
out += '//! `tests/interop/wabinary-tokens.mjs`; they are protocol facts (the server checks them against\n';
out += '//! the dictionary version in the connection header). sha256 of `JSON.stringify({single, double})`:\n';
out += `//! \`${digest}\`.\n\n`;
out += '/// Single-byte tokens: byte `i` (1..=235) on the wire stands for `SINGLE_BYTE[i]`. Index 0 is\n';
out += '/// the empty string and is never used as a token (byte 0 is `LIST_EMPTY`).\n';
out += `pub(super) static SINGLE_BYTE: [&str; ${SINGLE_BYTE_TOKENS.length}] = [\n`;
for (const t of SINGLE_BYTE_TOKENS) out += `    ${lit(t)},\n`;
out += '];\n\n';
out += '/// Double-byte tokens: `DICTIONARY_n i` (tag 236 + n, then byte i) stands for `DOUBLE_BYTE[n][i]`.\n';
out += 'pub(super) static DOUBLE_BYTE: [[&str; 256]; 4] = [\n';
for (const d of DOUBLE_BYTE_TOKENS) {
  out += '    [\n';
  for (const t of d) out += `        ${lit(t)},\n`;
  out += '    ],\n';
}
out += '];\n';

const path = join(repoRoot, 'host/protocol/src/binary/token_data.rs');
writeFileSync(path, out);
console.log(`wrote ${path} (sha256 of tables ${digest})`);
