// Shared helpers for the WABinary interop checks: Baileys' codec, the JSON form of nodes that
// the Rust side also reads, and a seeded generator of varied nodes.
//
// JSON node form (also read by host/protocol/tests/wabinary_corpus.rs and wabinary-peer):
//   { "tag": "iq", "attrs": [["id", "1"], ...], "content": null | [node...] | {"str": "..."}
//     | {"hex": "..."} | {"fill": {"byte": 90, "len": 1048576}} }
// `attrs` is an ordered list of [key, string value]; Baileys' decoded attributes come back in the
// same order. `fill` is a compact form of large byte content (len copies of one byte).
import { encodeBinaryNode } from '@whiskeysockets/baileys/lib/WABinary/encode.js';
import { decodeBinaryNode } from '@whiskeysockets/baileys/lib/WABinary/decode.js';
import { SINGLE_BYTE_TOKENS, DOUBLE_BYTE_TOKENS } from '@whiskeysockets/baileys/lib/WABinary/constants.js';

export { encodeBinaryNode, decodeBinaryNode, SINGLE_BYTE_TOKENS, DOUBLE_BYTE_TOKENS };

/** Byte content at least this long, made of one repeated byte, is written as `fill`. */
const FILL_MIN = 4096;

/** JSON node → Baileys BinaryNode. */
export function fromJson(j) {
  const attrs = {};
  for (const [k, v] of j.attrs) attrs[k] = v;
  let content;
  const c = j.content;
  if (c === null || c === undefined) content = undefined;
  else if (Array.isArray(c)) content = c.map(fromJson);
  else if ('str' in c) content = c.str;
  else if ('hex' in c) content = Buffer.from(c.hex, 'hex');
  else if ('fill' in c) content = Buffer.alloc(c.fill.len, c.fill.byte);
  else throw new Error(`bad JSON content ${JSON.stringify(c)}`);
  return content === undefined ? { tag: j.tag, attrs } : { tag: j.tag, attrs, content };
}

/** Baileys BinaryNode → JSON node. */
export function toJson(n) {
  const attrs = Object.entries(n.attrs ?? {}).map(([k, v]) => [k, v]);
  let content = null;
  const c = n.content;
  if (c === undefined || c === null) content = null;
  else if (Array.isArray(c)) content = c.map(toJson);
  else if (typeof c === 'string') content = { str: c };
  else if (Buffer.isBuffer(c) || c instanceof Uint8Array) {
    const b = Buffer.from(c);
    if (b.length >= FILL_MIN && b.every((x) => x === b[0])) content = { fill: { byte: b[0], len: b.length } };
    else content = { hex: b.toString('hex') };
  } else throw new Error(`bad content ${typeof c}`);
  return { tag: n.tag, attrs, content };
}

export const baileysEncode = (json) => encodeBinaryNode(fromJson(json));
export const baileysDecode = async (bytes) => toJson(await decodeBinaryNode(Buffer.from(bytes)));

/** mulberry32: a tiny seeded PRNG, so the corpus is reproducible. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)); // inclusive
  const pick = (arr) => arr[int(0, arr.length - 1)];
  const bytes = (n) => Buffer.from(Array.from({ length: n }, () => int(0, 255)));
  const chars = (alphabet, n) => Array.from({ length: n }, () => pick(alphabet)).join('');
  return { next, int, pick, bytes, chars };
}

// Names Baileys' TOKEN_MAP lookup would find on Object.prototype (a Baileys quirk); never use them.
const PROTO_NAMES = new Set(Object.getOwnPropertyNames(Object.prototype));

export const DIGITS = '0123456789';
export const HEXU = '0123456789ABCDEF';
const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const PRINTABLE = ALNUM + ' !#$%&()*+,-./;<=>?[]^_`{|}~\'"';

/**
 * String and JID generators whose output Baileys and wasmeow encode identically. (Strings with
 * '@' that are not valid JIDs, JID users with '_' or, on s.whatsapp.net, '.', and device parts on
 * servers without devices are encoded differently on purpose; see encode.rs.)
 */
export function generators(r) {
  const singleToken = () => SINGLE_BYTE_TOKENS[r.int(1, SINGLE_BYTE_TOKENS.length - 1)];
  const doubleToken = (dict = r.int(0, 3)) => DOUBLE_BYTE_TOKENS[dict][r.int(0, 255)];
  const nibble = (n = r.int(1, 40)) => r.chars(DIGITS + '-.', n);
  const hex = (n = r.int(1, 40)) => r.chars(HEXU, n);
  const raw = (n = r.int(1, 30)) => {
    for (;;) {
      const s = r.chars(PRINTABLE, n);
      if (!PROTO_NAMES.has(s)) return s;
    }
  };
  const unicode = () => r.pick(['héllo', 'ünïcödé ✓', '😀 emoji', 'ç', 'Ω≈ç√∫', '日本語テキスト', 'a\u0000b', 'tab\tnew\nline']);
  const phone = () => r.pick(['1', '2', '3', '4', '5', '6', '7', '8', '9']) + r.chars(DIGITS, r.int(6, 14));
  const jid = () => {
    const u = phone();
    switch (r.int(0, 21)) {
      case 0: return `${u}@s.whatsapp.net`;
      case 1: return `${u}:${r.int(1, 99)}@s.whatsapp.net`;
      case 2: return `${u}:0@s.whatsapp.net`;
      case 3: return `${u}:${r.int(0, 255)}@lid`;
      case 4: return `${u}@lid`;
      case 5: return `${u}:${r.int(0, 255)}@hosted`;
      case 6: return `${u}:${r.int(0, 255)}@hosted.lid`;
      case 7: return `${u}@hosted`;
      case 8: return `${u}@hosted.lid`;
      case 9: return `${u}@g.us`;
      case 10: return `${u}-${r.int(1000000000, 1999999999)}@g.us`;
      case 11: return 'status@broadcast';
      case 12: return `${u}@broadcast`;
      case 13: return `${u}@newsletter`;
      case 14: return `${u}@bot`;
      case 15: return `${u}@c.us`;
      case 16: return r.pick(['@s.whatsapp.net', '@g.us', '@lid', '@c.us', '@broadcast', '@newsletter']);
      case 17: return `${u}@msgr`;
      case 18: return `${u}@interop`;
      case 19: return `${raw(r.int(3, 10)).replace(/[^a-zA-Z0-9]/g, 'x')}@s.whatsapp.net`;
      case 20: return `${u}:${r.int(1, 255)}@s.whatsapp.net`;
      default: return `${u}@call`;
    }
  };
  const string = () => {
    switch (r.int(0, 9)) {
      case 0: return singleToken();
      case 1: return doubleToken();
      case 2: return nibble();
      case 3: return hex();
      case 4: return jid();
      case 5: return raw();
      case 6: return unicode();
      case 7: return r.pick(['', 'x'.repeat(r.int(200, 300)), nibble(127), hex(127), nibble(128), hex(128)]);
      case 8: return String(r.int(0, 2 ** 31));
      default: return r.pick([singleToken(), doubleToken(), hex(20)]);
    }
  };
  const name = () => {
    // Tags and attribute keys: tokens mostly, else plain words (never with '@').
    switch (r.int(0, 4)) {
      case 0: case 1: return singleToken();
      case 2: return doubleToken();
      default: return raw(r.int(1, 12)).replace(/@/g, 'a');
    }
  };
  const content = (depth) => {
    switch (r.int(0, depth > 3 ? 4 : 6)) {
      case 0: return null;
      case 1: return { hex: r.bytes(r.pick([0, 1, 2, 16, 32, 150, r.int(0, 300)])).toString('hex') };
      case 2: return { str: r.pick([singleToken(), doubleToken(), nibble(), hex(), jid()]) };
      case 3: return { str: raw() }; // raw string content: Baileys reads it back as bytes
      case 4: return { hex: r.bytes(r.int(0, 40)).toString('hex') };
      default: return Array.from({ length: r.int(0, 5) }, () => node(depth + 1));
    }
  };
  const node = (depth = 0) => {
    const attrs = [];
    const keys = new Set();
    for (let i = r.int(0, 6); i > 0; i--) {
      const k = name();
      if (keys.has(k) || PROTO_NAMES.has(k) || /^\d+$/.test(k)) continue; // JS objects reorder integer keys
      keys.add(k);
      attrs.push([k, string()]);
    }
    let tag = name();
    while (PROTO_NAMES.has(tag)) tag = name();
    return { tag, attrs, content: content(depth) };
  };
  return { singleToken, doubleToken, nibble, hex, raw, unicode, phone, jid, string, name, content, node };
}
