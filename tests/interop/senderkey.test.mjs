// Group sender keys between Baileys 7.0.0-rc14's own code (lib/Signal/Group/*) and ours
// (`signal-peer`): distribution messages both ways, 100 group messages each way (partly out of
// order), the negative cases, WhatsApp's message padding against Baileys' helpers, and
// reproducibility of host/protocol/testdata/signal-senderkey.json.
//
//   cargo build --release -p wasmeow-interop-peer && cd tests/interop && node --test
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  GroupCipher, GroupSessionBuilder, SenderKeyDistributionMessage, SenderKeyRecord,
} from '@whiskeysockets/baileys/lib/Signal/Group/index.js';
import { unpadRandomMax16, writeRandomPadMax16 } from '@whiskeysockets/baileys/lib/Utils/generics.js';
import { hex, ok, plaintext, startRustPeer } from './signal-lib.mjs';
import { SENDERKEY_VECTORS, generateSenderKeyVectors, senderKeyName, toJson } from './signal-vectors.mjs';

const GROUP = '120363111111111111@g.us';

class Store {
  constructor() { this.records = new Map(); }
  async loadSenderKey(name) { return this.records.get(name.toString()) ?? new SenderKeyRecord(); }
  async storeSenderKey(name, record) { this.records.set(name.toString(), record); }
}

/** A delivery order: mostly in order, with every 7th message held back three places. */
function shuffled(n) {
  const order = [...Array(n).keys()];
  for (let i = 6; i + 3 < n; i += 7) order.splice(i + 3, 0, order.splice(i, 1)[0]);
  return order;
}

test('ours -> Baileys: distribution message and 100 group messages', async () => {
  const rust = await startRustPeer(11);
  try {
    const store = new Store();
    const name = senderKeyName(GROUP, 'rust');
    const { skdm } = await ok(rust, 'sk_create', { group: GROUP });
    await new GroupSessionBuilder(store).process(
      name, new SenderKeyDistributionMessage(null, null, null, null, Buffer.from(skdm, 'hex')));
    const sent = [];
    for (let i = 0; i < 100; i++) {
      const pt = plaintext('ours-to-baileys', i);
      sent.push({ pt, body: Buffer.from((await ok(rust, 'sk_encrypt', { group: GROUP, plaintext: hex(pt) })).body, 'hex') });
    }
    const cipher = new GroupCipher(store, name);
    for (const i of shuffled(sent.length)) {
      assert.deepEqual(Buffer.from(await cipher.decrypt(sent[i].body)), sent[i].pt, `Baileys decrypts our #${i}`);
    }
    // Baileys rejects a message whose signature we did not make.
    const forged = Buffer.from((await ok(rust, 'sk_encrypt', { group: GROUP, plaintext: hex('x') })).body, 'hex');
    forged[forged.length - 1] ^= 1;
    await assert.rejects(cipher.decrypt(forged), /Invalid signature/);
    // Redistributing our (advanced) key keeps working for Baileys.
    const again = await ok(rust, 'sk_create', { group: GROUP });
    assert.notEqual(again.skdm, skdm, 'the distribution message carries the current iteration');
  } finally {
    await rust.close();
  }
});

test('Baileys -> ours: distribution message and 100 group messages', async () => {
  const rust = await startRustPeer(12);
  try {
    const store = new Store();
    const name = senderKeyName(GROUP, 'baileys');
    const skdm = await new GroupSessionBuilder(store).create(name); // Baileys' own random key
    await ok(rust, 'sk_process', { group: GROUP, sender: 'baileys', skdm: hex(skdm.serialize()) });
    const cipher = new GroupCipher(store, name);
    const sent = [];
    for (let i = 0; i < 100; i++) {
      const pt = plaintext('baileys-to-ours', i);
      sent.push({ pt, body: await cipher.encrypt(pt) });
    }
    for (const i of shuffled(sent.length)) {
      const got = await ok(rust, 'sk_decrypt', { group: GROUP, sender: 'baileys', body: hex(sent[i].body) });
      assert.equal(got.plaintext, hex(sent[i].pt), `we decrypt Baileys' #${i}`);
    }
    // Replays, forgeries and malformed input are typed errors (and change nothing).
    assert.match((await rust.call('sk_decrypt', { group: GROUP, sender: 'baileys', body: hex(sent[5].body) })).error,
      /^DuplicateMessage/);
    const forged = Buffer.from(await cipher.encrypt(Buffer.from('forged')));
    const genuine = Buffer.from(forged);
    forged[forged.length - 10] ^= 1;
    assert.equal((await rust.call('sk_decrypt', { group: GROUP, sender: 'baileys', body: hex(forged) })).error, 'InvalidSignature');
    assert.match((await rust.call('sk_decrypt', { group: GROUP, sender: 'baileys', body: hex(forged.subarray(0, 40)) })).error,
      /^Truncated/);
    const version = Buffer.from(genuine);
    version[0] = 0x32;
    assert.equal((await rust.call('sk_decrypt', { group: GROUP, sender: 'baileys', body: hex(version) })).error, 'BadVersion(50)');
    assert.equal((await ok(rust, 'sk_decrypt', { group: GROUP, sender: 'baileys', body: hex(genuine) })).plaintext, hex('forged'));
    // A sender we have no distribution message from.
    assert.match((await rust.call('sk_decrypt', { group: GROUP, sender: 'stranger', body: hex(genuine) })).error,
      /^NoSenderKeyState/);
  } finally {
    await rust.close();
  }
});

test("WhatsApp padding: Baileys' writeRandomPadMax16 / unpadRandomMax16 against ours", async () => {
  const rust = await startRustPeer(13);
  try {
    for (let i = 0; i < 64; i++) {
      const msg = plaintext('pad', i);
      const theirs = writeRandomPadMax16(msg);
      assert.equal((await ok(rust, 'unpad', { padded: hex(theirs) })).plaintext, hex(msg));
      const ours = Buffer.from((await ok(rust, 'pad', { plaintext: hex(msg) })).padded, 'hex');
      const n = ours.length - msg.length;
      assert.ok(n >= 1 && n <= 16, `pad length ${n}`);
      assert.deepEqual(Buffer.from(unpadRandomMax16(ours)), msg);
    }
    // Baileys only reads the last byte; we check every pad byte.
    assert.deepEqual(Buffer.from(unpadRandomMax16(Buffer.from([7, 1, 2]))), Buffer.from([7]));
    assert.deepEqual(await rust.call('unpad', { padded: hex(Buffer.from([7, 1, 2])) }), { error: 'InvalidPadding' });
  } finally {
    await rust.close();
  }
});

test('recorded sender-key vectors (host/protocol/testdata/signal-senderkey.json) are reproducible', async () => {
  assert.equal(toJson(await generateSenderKeyVectors()), readFileSync(SENDERKEY_VECTORS, 'utf8'));
});
