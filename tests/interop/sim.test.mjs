// Unmodified Baileys 7.0.0-rc14 clients against the local simulator (tests/sim, crate wasmeow-sim).
//
// Build first:   cargo build --release -p wasmeow-sim
// Run:           cd tests/interop && node --test sim.test.mjs
//
// Everything talks to 127.0.0.1 only. Baileys' certificate check runs against the sim's test root
// (WA_CERT_DETAILS.PUBLIC_KEY is set to it), its QR is scanned by the sim's simulated phone, and
// every message is end-to-end encrypted by Baileys (libsignal / its sender keys) and, for the
// simulated phones, by wasmeow-protocol.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSim, eventually } from './lib/sim.mjs';
import { BaileysClient, trustSimRoot } from './lib/baileys-client.mjs';

const N = 50;

test('two Baileys clients pair by QR, exchange 50 texts each way with receipts, then a group with a phone', { timeout: 180000 }, async () => {
  const sim = await startSim();
  trustSimRoot(sim.info);
  const alice = new BaileysClient(sim, 'alice');
  const bob = new BaileysClient(sim, 'bob');
  try {
    const a = await sim.post('/accounts', { push_name: 'Alice' });
    const b = await sim.post('/accounts', { push_name: 'Bob' });
    const c = await sim.post('/accounts', { push_name: 'Carol' });

    // Pairing: QR from Baileys, scanned by the simulated phone, 515, re-login, open.
    const t0 = Date.now();
    await alice.pair(a.pn);
    await bob.pair(b.pn);
    assert.ok(Date.now() - t0 < 30000, 'both clients open within seconds');
    assert.deepEqual(alice.closes, [515], 'the only close so far is the post-pairing restart');
    assert.equal(alice.sock.user.id.split(':')[0], a.pn);
    const devices = await sim.get(`/devices?pn=${a.pn}`);
    assert.equal(devices.length, 2, 'phone + one companion');

    // 50 texts each way, sent concurrently in both directions.
    const aIds = [];
    const bIds = [];
    await Promise.all([
      (async () => { for (let i = 0; i < N; i++) aIds.push(await alice.sendText(b.jid, `a->b ${i}`)); })(),
      (async () => { for (let i = 0; i < N; i++) bIds.push(await bob.sendText(a.jid, `b->a ${i}`)); })(),
    ]);
    await bob.waitFor(() => bob.textsFrom((m) => m.text.startsWith('a->b')).length >= N, 60000, '50 texts from alice');
    await alice.waitFor(() => alice.textsFrom((m) => m.text.startsWith('b->a')).length >= N, 60000, '50 texts from bob');
    assert.deepEqual(bob.textsFrom((m) => m.text.startsWith('a->b')), aIds.map((_, i) => `a->b ${i}`), 'in order, exactly once');
    assert.deepEqual(alice.textsFrom((m) => m.text.startsWith('b->a')), bIds.map((_, i) => `b->a ${i}`));
    // Delivery receipts (status DELIVERY_ACK = 3) for every message, both ways.
    await alice.waitFor(() => aIds.every((id) => (alice.statuses.get(id) ?? 0) >= 3), 30000, 'delivery receipts at alice');
    await bob.waitFor(() => bIds.every((id) => (bob.statuses.get(id) ?? 0) >= 3), 30000, 'delivery receipts at bob');
    // The account phones got the same messages (to their own device 0, or as sent-by-me copies).
    const alicePhone = await sim.get(`/phone/inbox?pn=${a.pn}`);
    assert.equal(alicePhone.filter((m) => m.text?.startsWith('b->a')).length, N, "alice's phone decrypted bob's texts");
    assert.equal(alicePhone.filter((m) => m.from_me && m.text?.startsWith('a->b')).length, N, "alice's phone got her sent copies");

    // A group of the two plus a simulated phone (Carol), created by Alice with w:g2.
    const meta = await alice.sock.groupCreate('sim group', [b.jid, c.jid]);
    assert.equal(meta.participants.length, 3);
    const gid = meta.id;
    const g1 = await alice.sendText(gid, 'group hello from alice');
    await bob.waitFor(() => bob.received.some((m) => m.id === g1 && m.remoteJid === gid), 20000, 'alice group text at bob');
    await eventually(async () => (await sim.get(`/phone/inbox?pn=${c.pn}`)).some((m) => m.id === g1), 20000, 'alice group text at carol');
    const g2 = await bob.sendText(gid, 'group hello from bob');
    await alice.waitFor(() => alice.received.some((m) => m.id === g2), 20000, 'bob group text at alice');
    await eventually(async () => (await sim.get(`/phone/inbox?pn=${c.pn}`)).some((m) => m.id === g2), 20000, 'bob group text at carol');
    const { id: g3 } = await sim.post('/phone/send', { pn: c.pn, to: gid, text: 'group hello from carol' });
    await alice.waitFor(() => alice.received.some((m) => m.id === g3 && m.text === 'group hello from carol'), 20000, 'carol group text at alice');
    await bob.waitFor(() => bob.received.some((m) => m.id === g3 && m.text === 'group hello from carol'), 20000, 'carol group text at bob');
    const carol = await sim.get(`/phone/inbox?pn=${c.pn}`);
    assert.equal(carol.find((m) => m.id === g1).text, 'group hello from alice');
    assert.equal(carol.find((m) => m.id === g2).text, 'group hello from bob');
    assert.equal(carol.find((m) => m.id === g1).chat, gid);
    // A second round reuses the sender keys (skmsg only, no new distribution needed).
    const g4 = await alice.sendText(gid, 'second round');
    await bob.waitFor(() => bob.received.some((m) => m.id === g4), 20000, 'second group text at bob');
    await eventually(async () => (await sim.get(`/phone/inbox?pn=${c.pn}`)).some((m) => m.id === g4 && m.text === 'second round'), 20000, 'second group text at carol');
    const { id: g5 } = await sim.post('/phone/send', { pn: c.pn, to: gid, text: 'carol again' });
    await alice.waitFor(() => alice.received.some((m) => m.id === g5), 20000, 'second carol text at alice');
    assert.equal((await sim.get(`/phone/acks?pn=${c.pn}`)).filter((x) => x.error).length, 0, 'no refused phone sends');
  } finally {
    alice.end();
    bob.end();
    await sim.close();
  }
});

test('offline delivery: messages sent while a Baileys client is away arrive on reconnect, in order, exactly once', { timeout: 120000 }, async () => {
  const sim = await startSim();
  trustSimRoot(sim.info);
  const alice = new BaileysClient(sim, 'alice');
  const bob = new BaileysClient(sim, 'bob');
  try {
    const a = await sim.post('/accounts', { push_name: 'Alice' });
    const b = await sim.post('/accounts', { push_name: 'Bob' });
    await alice.pair(a.pn);
    await bob.pair(b.pn);
    // Establish the session while both are online.
    const first = await alice.sendText(b.jid, 'hello before');
    await bob.waitFor(() => bob.received.some((m) => m.id === first), 20000, 'first message');
    // Bob goes away; Alice and Alice's phone write to him.
    bob.end();
    await eventually(async () => (await sim.get('/stats')).authenticated === 1, 10000, 'bob offline');
    const ids = [];
    for (let i = 0; i < 10; i++) ids.push(await alice.sendText(b.jid, `while away ${i}`));
    const { id: phoneId } = await sim.post('/phone/send', { pn: a.pn, to: b.jid, text: 'from alice phone' });
    ids.push(phoneId);
    const queued = await eventually(async () => {
      const q = await sim.get(`/queue?jid=${encodeURIComponent(bob.jid)}`);
      return q.length === 11 && q;
    }, 20000, 'eleven queued for bob');
    assert.deepEqual(queued, ids, 'queued in send order');
    // Bob reconnects with the same credentials.
    const back = new BaileysClient(sim, 'bob-again');
    back.auth = bob.auth;
    back.start();
    await back.waitFor(() => back.opens > 0, 20000, 'bob reconnect');
    await back.waitFor(() => ids.every((id) => back.received.some((m) => m.id === id)), 30000, 'all queued messages');
    const got = back.received.filter((m) => ids.includes(m.id)).map((m) => m.id);
    assert.deepEqual(got, ids, 'in order, exactly once');
    assert.ok(back.received.filter((m) => ids.includes(m.id)).every((m) => m.upsertType === 'append'), 'flagged offline');
    await eventually(async () => (await sim.get(`/queue?jid=${encodeURIComponent(bob.jid)}`)).length === 0, 10000, 'queue drained by receipts');
    // A second reconnect delivers nothing again.
    back.end();
    const third = new BaileysClient(sim, 'bob-third');
    third.auth = bob.auth;
    third.start();
    await third.waitFor(() => third.opens > 0, 20000, 'bob third connect');
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(third.received.filter((m) => ids.includes(m.id)).length, 0, 'no redelivery once receipted');
    await alice.waitFor(() => ids.slice(0, 10).every((id) => (alice.statuses.get(id) ?? 0) >= 3), 20000, 'delivery receipts after reconnect');
    third.end();
  } finally {
    alice.end();
    bob.end();
    await sim.close();
  }
});

test('phone batch sends arrive in order and the inbox counter counts them', { timeout: 60000 }, async () => {
  const sim = await startSim();
  try {
    const a = await sim.post('/accounts', { push_name: 'A' });
    const b = await sim.post('/accounts', { push_name: 'B' });
    const texts = Array.from({ length: 5 }, (_, i) => `batch ${i}`);
    const { ids } = await sim.post('/phone/send-batch', { pn: a.pn, to: b.jid, texts });
    assert.equal(ids.length, 5);
    await eventually(async () => (await sim.get(`/phone/inbox-count?pn=${b.pn}&prefix=batch%20`)).count === 5, 20000, 'five batch texts');
    const inbox = (await sim.get(`/phone/inbox?pn=${b.pn}`)).filter((m) => m.text?.startsWith('batch '));
    assert.deepEqual(inbox.map((m) => m.text), texts, 'in order');
    assert.deepEqual(inbox.map((m) => m.id), ids);
    assert.equal((await sim.get(`/phone/inbox-count?pn=${b.pn}&prefix=nope`)).count, 0);
    await assert.rejects(sim.post('/phone/send-batch', { pn: a.pn, to: b.jid, texts: 'x' }), (e) => e.status === 400);
    await assert.rejects(sim.post('/phone/send-batch', { pn: a.pn, to: b.jid, texts: [1] }), (e) => e.status === 400);
  } finally {
    await sim.close();
  }
});
