// Shared helpers for the Signal interop checks (signal*.test.mjs, senderkey*.test.mjs,
// signal-vectors.mjs, bench-signal.mjs): libsignal-node 6.0.0 with an in-memory store,
// an optional seeded key generator, Baileys' sender-key classes, and a client for the
// Rust `signal-peer` binary.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { startJsonPeer } from './lib/peer.mjs';

const require = createRequire(import.meta.url);
export const libsignal = require('libsignal');
export const curve = require('libsignal/src/curve');
const curveJs = require('curve25519-js');

const originalGenerateKeyPair = curve.generateKeyPair;

/**
 * Makes libsignal-node's key generation deterministic (interop-baileys.md §7): key i is
 * curve25519-js generateKeyPair(SHA-256(label || i)). Every generated private key is
 * appended to `log` so a Rust replay rng can feed the same 32 bytes in the same order.
 * Returns a function that restores the original generator.
 */
export function seedKeyGenerator(label, log = []) {
  let i = 0;
  curve.generateKeyPair = () => {
    const seed = createHash('sha256').update(`${label}:${i++}`).digest();
    const kp = curveJs.generateKeyPair(seed);
    const privKey = Buffer.from(kp.private);
    log.push(privKey.toString('hex'));
    return { privKey, pubKey: Buffer.concat([Buffer.from([5]), Buffer.from(kp.public)]) };
  };
  return () => { curve.generateKeyPair = originalGenerateKeyPair; };
}

/** A key pair in libsignal-node's shape from a 32-byte seed (curve25519-js clamps it). */
export function keyPairFromSeed(seed) {
  const kp = curveJs.generateKeyPair(seed);
  return {
    privKey: Buffer.from(kp.private),
    pubKey: Buffer.concat([Buffer.from([5]), Buffer.from(kp.public)]),
  };
}

/** libsignal-node's storage interface, in memory, with trust on first use. */
export class MemoryStore {
  constructor(identityKeyPair, registrationId) {
    this.identityKeyPair = identityKeyPair;
    this.registrationId = registrationId;
    this.sessions = new Map();
    this.preKeys = new Map();
    this.signedPreKeys = new Map();
    this.identities = new Map();
  }
  async getOurIdentity() { return this.identityKeyPair; }
  async getOurRegistrationId() { return this.registrationId; }
  async isTrustedIdentity(id, key) {
    const known = this.identities.get(id);
    if (!known) { this.identities.set(id, Buffer.from(key)); return true; }
    return known.equals(key);
  }
  async loadSession(addr) { return this.sessions.get(addr); }
  async storeSession(addr, record) { this.sessions.set(addr, record); }
  async loadPreKey(id) { return this.preKeys.get(id); }
  async removePreKey(id) { this.preKeys.delete(id); }
  async loadSignedPreKey(id) { return this.signedPreKeys.get(id); }
}

/** A libsignal-node party: identity, store, and helpers to publish bundles and talk to `addr`. */
export class NodeParty {
  constructor(name, registrationId) {
    this.name = name;
    const identity = curve.generateKeyPair();
    this.store = new MemoryStore(identity, registrationId);
    this.identity = identity;
  }

  /** Publishes a bundle in the JSON shape signal-peer's `initiate` takes. */
  bundle(spkId, opkId) {
    const spk = libsignal.keyhelper.generateSignedPreKey(this.identity, spkId);
    this.store.signedPreKeys.set(spkId, spk.keyPair);
    let preKey = null;
    if (opkId != null) {
      const opk = libsignal.keyhelper.generatePreKey(opkId);
      this.store.preKeys.set(opkId, opk.keyPair);
      preKey = { id: opkId, public: opk.keyPair.pubKey.toString('hex') };
    }
    return {
      registration_id: this.store.registrationId,
      identity_key: this.identity.pubKey.toString('hex'),
      signed_pre_key: { id: spkId, public: spk.keyPair.pubKey.toString('hex'), signature: spk.signature.toString('hex') },
      pre_key: preKey,
    };
  }

  address(peer) { return new libsignal.ProtocolAddress(peer, 1); }

  /** Starts a session from a bundle in signal-peer's JSON shape. */
  async initiate(peer, b) {
    const builder = new libsignal.SessionBuilder(this.store, this.address(peer));
    await builder.initOutgoing({
      registrationId: b.registration_id,
      identityKey: Buffer.from(b.identity_key, 'hex'),
      signedPreKey: {
        keyId: b.signed_pre_key.id,
        publicKey: Buffer.from(b.signed_pre_key.public, 'hex'),
        signature: Buffer.from(b.signed_pre_key.signature, 'hex'),
      },
      preKey: b.pre_key ? { keyId: b.pre_key.id, publicKey: Buffer.from(b.pre_key.public, 'hex') } : undefined,
    });
  }

  /** Encrypts; returns { type: 'pkmsg' | 'msg', body: hex } like signal-peer. */
  async encrypt(peer, plaintext) {
    const cipher = new libsignal.SessionCipher(this.store, this.address(peer));
    const { type, body } = await cipher.encrypt(Buffer.from(plaintext));
    // libsignal-node reports 3 for PreKeyWhisperMessage and 1 for WhisperMessage.
    return { type: type === 3 ? 'pkmsg' : 'msg', body: Buffer.from(body, typeof body === 'string' ? 'binary' : undefined).toString('hex') };
  }

  async decrypt(peer, { type, body }) {
    const cipher = new libsignal.SessionCipher(this.store, this.address(peer));
    const buf = Buffer.from(body, 'hex');
    const pt = type === 'pkmsg' ? await cipher.decryptPreKeyWhisperMessage(buf) : await cipher.decryptWhisperMessage(buf);
    return Buffer.from(pt);
  }

  /** Forgets the session with `peer` (simulates a lost session). */
  forget(peer) { this.store.sessions.delete(this.address(peer).toString()); }
}

/** Starts signal-peer and sends `init`; returns a client with `call(cmd, args)`. */
export async function startRustPeer(seed) {
  const p = startJsonPeer('signal-peer');
  const call = async (cmd, args = {}) => {
    const reply = await p.request({ cmd, ...args });
    return reply;
  };
  const init = await call('init', { seed });
  return { call, init, close: () => p.close() };
}

/** Calls signal-peer and throws on `{error}`. */
export async function ok(peer, cmd, args) {
  const r = await peer.call(cmd, args);
  if (r.error) throw new Error(`${cmd}: ${r.error}`);
  return r;
}

/** Deterministic test plaintext number `i` (0..=300 bytes, varied content). */
export function plaintext(label, i) {
  const len = (i * 37) % 301;
  const out = Buffer.alloc(len);
  let block = Buffer.alloc(0);
  for (let off = 0, j = 0; off < len; off += 32, j++) {
    block = createHash('sha256').update(`${label}:${i}:${j}`).digest();
    block.copy(out, off, 0, Math.min(32, len - off));
  }
  return out;
}

export const hex = (b) => Buffer.from(b).toString('hex');
export const unhex = (s) => Buffer.from(s, 'hex');

/** Silences libsignal-node's console chatter (session open/close notices) while `fn` runs. */
export async function quietly(fn) {
  const saved = { info: console.info, warn: console.warn, error: console.error, log: console.log };
  console.info = console.warn = console.error = console.log = () => {};
  try { return await fn(); } finally { Object.assign(console, saved); }
}
