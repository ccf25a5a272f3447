// 1:1 Signal sessions between libsignal-node 6.0.0 and our implementation (the
// `signal-peer` binary), both directions: XEdDSA, X3DH from each side's bundles, over a
// thousand interleaved messages with out-of-order delivery, re-initiation by either side,
// the checks libsignal-node skips (we are strict), and reproducibility of the recorded
// vectors in host/protocol/testdata/signal-*.json.
//
//   cargo build --release -p wasmeow-interop-peer && cd tests/interop && node --test
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  NodeParty, curve, hex, keyPairFromSeed, ok, plaintext, quietly, startRustPeer,
} from './signal-lib.mjs';
import {
  SESSION_VECTORS, XEDDSA_VECTORS, generateSessionVectors, generateXeddsaVectors, toJson,
} from './signal-vectors.mjs';
import { createHash, randomBytes } from 'node:crypto';

/** A small seeded PRNG (mulberry32) so a failing schedule can be replayed. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('XEdDSA interoperates with libsignal-node curve.calculateSignature / verifySignature', async () => {
  const rust = await startRustPeer(1);
  try {
    let signBits = new Set();
    for (let i = 0; i < 40; i++) {
      const kp = keyPairFromSeed(createHash('sha256').update(`x${i}`).digest());
      const msg = randomBytes(1 + i * 7);
      // libsignal-node signs, we verify (and reject a wrong message).
      const sig = curve.calculateSignature(kp.privKey, msg);
      signBits.add(sig[63] >> 7);
      assert.equal((await ok(rust, 'xeddsa_verify', { pub: hex(kp.pubKey), msg: hex(msg), sig: hex(sig) })).ok, true);
      const wrong = Buffer.from(msg); wrong[0] ^= 1;
      assert.equal((await ok(rust, 'xeddsa_verify', { pub: hex(kp.pubKey), msg: hex(wrong), sig: hex(sig) })).ok, false);
      // We sign, libsignal-node verifies (verifySignature returns false on mismatch).
      const ours = Buffer.from((await ok(rust, 'xeddsa_sign', { priv: hex(kp.privKey), msg: hex(msg) })).sig, 'hex');
      assert.equal(curve.verifySignature(kp.pubKey, msg, ours), true, `libsignal-node verifies our signature #${i}`);
      assert.equal(curve.verifySignature(kp.pubKey, wrong, ours), false);
      const flipped = Buffer.from(ours); flipped[63] ^= 0x80;
      assert.equal(curve.verifySignature(kp.pubKey, msg, flipped), false, 'the sign bit matters');
    }
    assert.deepEqual([...signBits].sort(), [0, 1], 'both Edwards sign bits exercised');
  } finally {
    await rust.close();
  }
});

/**
 * Drives a conversation: `send(from)` encrypts on one side and queues for the other;
 * `deliver(to, index)` decrypts a queued message and checks the plaintext.
 */
function conversation(rust, node, nodeName, rustName) {
  const inbox = { rust: [], node: [] };
  const stats = { sent: 0, delivered: 0, pkmsg: 0, outOfOrder: 0 };
  let n = 0;
  return {
    inbox,
    stats,
    async send(from) {
      const pt = plaintext(`conv-${from}`, n++);
      const m = from === 'node'
        ? await node.encrypt(rustName, pt)
        : await ok(rust, 'encrypt', { peer: nodeName, plaintext: hex(pt) });
      stats.sent++;
      if (m.type === 'pkmsg') stats.pkmsg++;
      const queue = inbox[from === 'node' ? 'rust' : 'node'];
      queue.push({ ...m, plaintext: hex(pt), age: 0 });
      return m;
    },
    async deliver(to, index = 0) {
      const queue = inbox[to];
      if (index > 0) stats.outOfOrder++;
      const [m] = queue.splice(index, 1);
      if (to === 'rust') {
        const got = await ok(rust, 'decrypt', { peer: nodeName, type: m.type, body: m.body });
        assert.equal(got.plaintext, m.plaintext);
      } else {
        const got = await quietly(() => node.decrypt(rustName, m));
        assert.equal(hex(got), m.plaintext);
      }
      stats.delivered++;
    },
    async flush(to) {
      while (inbox[to].length) await this.deliver(to, 0);
    },
  };
}

/** Random traffic: sends in both directions, deliveries partly out of order, held back a while. */
async function traffic(c, rand, count) {
  for (let i = 0; i < count; i++) {
    await c.send(rand() < 0.5 ? 'node' : 'rust');
    for (const to of ['rust', 'node']) {
      const q = c.inbox[to];
      for (const m of q) m.age++;
      // Anything held for 3 rounds is delivered now: a message may be overtaken by a few
      // DH ratchet steps, but not by more than the 5 receiving chains a session keeps.
      while (q.length && q[0].age > 3) await c.deliver(to, 0);
      if (q.length && rand() < 0.55) {
        const index = rand() < 0.5 ? Math.floor(rand() * q.length) : 0;
        await c.deliver(to, index);
      }
    }
  }
}

test('libsignal-node <-> ours: 1,000+ interleaved messages, out of order, re-initiation by both sides', async (t) => {
  const rust = await startRustPeer(42);
  const alice = new NodeParty('alice', 4242);
  try {
    // libsignal-node initiates from our bundle.
    await alice.initiate('rust', await ok(rust, 'bundle', { spk_id: 1, opk_id: 100 }));
    const c = conversation(rust, alice, 'alice', 'rust');
    const rand = prng(7);
    // First messages while pending: pkmsg, two of them delivered swapped.
    await c.send('node'); await c.send('node'); await c.send('node');
    await c.deliver('rust', 1);
    await c.deliver('rust', 0);
    assert.equal(c.stats.pkmsg, 3);
    await traffic(c, rand, 500);

    // libsignal-node loses its session and starts again from a fresh bundle of ours.
    await c.flush('node'); // what we sent on the old session reaches it before it is lost
    const heldForRust = c.inbox.rust.splice(0); // node's old-session messages, still in flight
    alice.forget('rust');
    await alice.initiate('rust', await ok(rust, 'bundle', { spk_id: 2, opk_id: 101 }));
    const restart = await c.send('node');
    assert.equal(restart.type, 'pkmsg');
    await c.deliver('rust', c.inbox.rust.length - 1);
    const info = await ok(rust, 'session_info', { peer: 'alice' });
    assert.ok(info.current && info.archived >= 1, 'our old session was archived');
    // The late old-session messages still decrypt (archived state) ...
    for (const m of heldForRust) {
      c.inbox.rust.push(m);
      await c.deliver('rust', c.inbox.rust.length - 1);
    }
    // ... and we keep talking on the new session.
    await traffic(c, rand, 300);

    // Now we lose our session and initiate from a fresh libsignal-node bundle; it archives
    // (closes) its open session and continues with ours. Everything in flight is delivered
    // first: libsignal-node tries a late old-session message on its *new* session first and
    // keeps the ratchet step that trial makes even though the MAC then fails, which corrupts
    // its new session (we work on copies, so the mirror case above is safe for us).
    await c.flush('rust');
    await c.flush('node');
    await ok(rust, 'reset', { peer: 'alice' });
    assert.equal((await ok(rust, 'initiate', { peer: 'alice', bundle: alice.bundle(7, 70) })).trust, 'trusted');
    const ours = await c.send('rust');
    assert.equal(ours.type, 'pkmsg');
    await c.deliver('node', 0);
    const nodeRecord = alice.store.sessions.get('rust.1');
    const states = Object.values(nodeRecord.sessions);
    assert.equal(states.filter((s) => s.indexInfo.closed === -1).length, 1, 'one open session on the node side');
    assert.ok(states.length >= 2, 'libsignal-node kept its previous session, closed');
    await traffic(c, rand, 250);
    await c.flush('rust');
    await c.flush('node');

    assert.ok(c.stats.sent >= 1000, `${c.stats.sent} messages`);
    assert.equal(c.stats.delivered, c.stats.sent);
    assert.ok(c.stats.outOfOrder >= 50, `${c.stats.outOfOrder} out-of-order deliveries`);
    t.diagnostic(`${c.stats.sent} messages, ${c.stats.pkmsg} pkmsg, ${c.stats.outOfOrder} delivered out of order`);
  } finally {
    await rust.close();
  }
});

test('ours -> libsignal-node: we initiate from its bundle (with and without a one-time prekey)', async () => {
  for (const opk of [9, null]) {
    const rust = await startRustPeer(43);
    const bob = new NodeParty('bob', 777);
    try {
      assert.equal((await ok(rust, 'initiate', { peer: 'bob', bundle: bob.bundle(5, opk) })).trust, 'first_use');
      const c = conversation(rust, bob, 'bob', 'rust');
      await c.send('rust'); await c.send('rust');
      await c.deliver('node', 1);
      await c.deliver('node', 0);
      assert.equal(c.stats.pkmsg, 2);
      if (opk != null) assert.equal(bob.store.preKeys.has(opk), false, 'libsignal-node consumed its prekey');
      await traffic(c, prng(opk ?? 1), 150);
      await c.flush('rust');
      await c.flush('node');
      assert.equal(c.stats.delivered, c.stats.sent);
      const info = await ok(rust, 'session_info', { peer: 'bob' });
      assert.equal(info.pending_pre_key, false, 'a reply ended the pkmsg phase');
    } finally {
      await rust.close();
    }
  }
});

test('we are strict where libsignal-node is lenient', async () => {
  const rust = await startRustPeer(44);
  const bob = new NodeParty('bob', 778);
  try {
    // A bundle with a broken signed-prekey signature: libsignal-node's initOutgoing accepts it,
    // we refuse with a typed error.
    const bad = bob.bundle(5, 9);
    const sig = Buffer.from(bad.signed_pre_key.signature, 'hex');
    sig[7] ^= 1;
    bad.signed_pre_key.signature = hex(sig);
    const lenient = new NodeParty('lenient', 1);
    await lenient.initiate('bob', bad); // no error: libsignal-node skips the check
    assert.deepEqual(await rust.call('initiate', { peer: 'bob', bundle: bad }), { error: 'InvalidSignature' });
    assert.deepEqual(await ok(rust, 'session_info', { peer: 'bob' }), { exists: false });

    // A working session, then tampering, replay and an identity change.
    const alice = new NodeParty('alice', 4243);
    await alice.initiate('rust', await ok(rust, 'bundle', { spk_id: 1, opk_id: 1 }));
    const first = await alice.encrypt('rust', Buffer.from('first'));
    await ok(rust, 'decrypt', { peer: 'alice', ...first });
    const reply = await ok(rust, 'encrypt', { peer: 'alice', plaintext: hex('reply') });
    await quietly(() => alice.decrypt('rust', reply));
    const m = await alice.encrypt('rust', Buffer.from('authentic'));
    const tampered = Buffer.from(m.body, 'hex');
    tampered[tampered.length - 1] ^= 1;
    assert.deepEqual(await rust.call('decrypt', { peer: 'alice', type: 'msg', body: hex(tampered) }), { error: 'BadMac' });
    const cut = m.body.slice(0, 8);
    assert.match((await rust.call('decrypt', { peer: 'alice', type: 'msg', body: cut })).error, /^Truncated/);
    const version = Buffer.from(m.body, 'hex');
    version[0] = 0x22;
    assert.equal((await rust.call('decrypt', { peer: 'alice', type: 'msg', body: hex(version) })).error, 'BadVersion(34)');
    assert.equal((await ok(rust, 'decrypt', { peer: 'alice', ...m })).plaintext, hex('authentic'));
    assert.match((await rust.call('decrypt', { peer: 'alice', ...m })).error, /^DuplicateMessage/);
    // The session still works after all the rejected input.
    const next = await alice.encrypt('rust', Buffer.from('still fine'));
    assert.equal((await ok(rust, 'decrypt', { peer: 'alice', ...next })).plaintext, hex('still fine'));

    // Someone else claims to be "alice": a typed identity change, no session built.
    const mallory = new NodeParty('mallory', 666);
    await mallory.initiate('rust', await ok(rust, 'bundle', { spk_id: 3, opk_id: 3 }));
    const claim = await mallory.encrypt('rust', Buffer.from('trust me'));
    const refused = await rust.call('decrypt', { peer: 'alice', ...claim });
    assert.match(refused.error, /^UntrustedIdentity/);
    // Explicitly accepting the new identity is the caller's decision; then it decrypts.
    await ok(rust, 'accept_identity', { peer: 'alice', identity: hex(mallory.identity.pubKey) });
    assert.equal((await ok(rust, 'decrypt', { peer: 'alice', ...claim })).plaintext, hex('trust me'));
  } finally {
    await rust.close();
  }
});

test('recorded vectors (host/protocol/testdata/signal-session.json, signal-xeddsa.json) are reproducible', async () => {
  assert.equal(toJson(generateXeddsaVectors()), readFileSync(XEDDSA_VECTORS, 'utf8'));
  assert.equal(toJson(await generateSessionVectors()), readFileSync(SESSION_VECTORS, 'utf8'));
});
