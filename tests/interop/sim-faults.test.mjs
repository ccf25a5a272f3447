// What an unmodified Baileys 7.0.0-rc14 client sees when the local simulator injects faults
// (kicks, drops, refused logins, a server restart) or applies limits (429, 463).
//
// Build first:   cargo build --release -p wasmeow-sim
// Run:           cd tests/interop && node --test sim-faults.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSim, eventually } from './lib/sim.mjs';
import { BaileysClient, trustSimRoot } from './lib/baileys-client.mjs';

/** A fresh client that logs in with `paired`'s credentials. */
function relogin(sim, paired, name) {
  const c = new BaileysClient(sim, name);
  c.auth = paired.auth;
  c.jid = paired.jid;
  return c.start();
}

test('kicks, drops and refused logins give Baileys the matching disconnect reasons', { timeout: 120000 }, async () => {
  const sim = await startSim();
  trustSimRoot(sim.info);
  const clients = [];
  try {
    const a = await sim.post('/accounts', { push_name: 'Alice' });
    const alice = new BaileysClient(sim, 'alice');
    clients.push(alice);
    await alice.pair(a.pn);

    // 515: restart required; Baileys' owner reconnects and the session is open again.
    let opens = alice.opens;
    assert.equal((await sim.post('/faults/kick', { jid: alice.jid, kind: 'restart' })).online, true);
    await alice.waitFor(() => alice.opens > opens, 20000, 'reopen after 515');
    assert.equal(alice.closes.at(-1), 515);

    // Replaced: DisconnectReason.connectionReplaced (440).
    alice.restartOn515 = false;
    await sim.post('/faults/kick', { jid: alice.jid, kind: 'replaced' });
    await alice.waitFor(() => alice.closes.at(-1) === 440, 10000, 'close 440');

    // 503 stream error.
    const b1 = relogin(sim, alice, 'alice-2');
    clients.push(b1);
    await b1.waitFor(() => b1.opens > 0, 20000, 'open');
    await sim.post('/faults/kick', { jid: alice.jid, kind: 'unavailable' });
    await b1.waitFor(() => b1.closes.at(-1) === 503, 10000, 'close 503');

    // A dropped socket: Baileys notices the connection closed (428 connectionClosed).
    const b2 = relogin(sim, alice, 'alice-3');
    clients.push(b2);
    await b2.waitFor(() => b2.opens > 0, 20000, 'open');
    assert.equal((await sim.post('/faults/drop', { jid: alice.jid })).online, true);
    await b2.waitFor(() => b2.closes.length > 0, 10000, 'close after drop');
    assert.equal(b2.closes.at(-1), 428);

    // Refused logins: <failure reason="503"/> ends the attempt with 503; later logins work.
    await sim.post('/faults/refuse-logins', { ms: 1500, reason: 503 });
    const b3 = relogin(sim, alice, 'alice-4');
    clients.push(b3);
    await b3.waitFor(() => b3.closes.length > 0, 10000, 'refused');
    assert.equal(b3.closes[0], 503);
    assert.equal(b3.opens, 0);
    await new Promise((r) => setTimeout(r, 1600));
    const b4 = relogin(sim, alice, 'alice-5');
    clients.push(b4);
    await b4.waitFor(() => b4.opens > 0, 20000, 'open after the window');

    // 401 device_removed: logged out; the credentials no longer work.
    await sim.post('/faults/kick', { jid: alice.jid, kind: 'logged_out' });
    await b4.waitFor(() => b4.closes.at(-1) === 401, 10000, 'close 401');
    const b5 = relogin(sim, alice, 'alice-6');
    clients.push(b5);
    await b5.waitFor(() => b5.closes.length > 0, 10000, 'login refused after logout');
    assert.equal(b5.closes[0], 401);
    assert.equal((await sim.get(`/devices?pn=${a.pn}`)).length, 1, 'only the phone is left');
  } finally {
    for (const c of clients) c.end();
    await sim.close();
  }
});

test('rate limits (429) and restricted accounts (463) reach Baileys as message errors', { timeout: 120000 }, async () => {
  const sim = await startSim();
  trustSimRoot(sim.info);
  const alice = new BaileysClient(sim, 'alice');
  try {
    const a = await sim.post('/accounts', { push_name: 'Alice' });
    const b = await sim.post('/accounts', { push_name: 'Bob' });
    const c = await sim.post('/accounts', { push_name: 'Carol' });
    await alice.pair(a.pn);
    const ok = await alice.sendText(b.jid, 'first');
    await eventually(async () => (await sim.get(`/phone/inbox?pn=${b.pn}`)).some((m) => m.id === ok), 20000, 'bob phone got it');

    await sim.post('/limits', { pn: a.pn, rate: { messages: 2, per_ms: 60000 } });
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await alice.sendText(b.jid, `burst ${i}`));
    await alice.waitFor(() => ids.slice(2).every((id) => alice.errors.get(id) === '429'), 20000, '429 acks');
    assert.ok(!alice.errors.has(ids[0]) && !alice.errors.has(ids[1]));
    await sim.post('/limits', { pn: a.pn, rate: null, restricted: true });

    const refused = await alice.sendText(c.jid, 'hello stranger');
    await alice.waitFor(() => alice.errors.get(refused) === '463', 20000, '463 ack');
    const allowed = await alice.sendText(b.jid, 'existing chat still works');
    await eventually(async () => (await sim.get(`/phone/inbox?pn=${b.pn}`)).some((m) => m.id === allowed), 20000, 'existing chat delivered');
    assert.equal((await sim.get(`/phone/inbox?pn=${c.pn}`)).length, 0);
  } finally {
    alice.end();
    await sim.close();
  }
});

test('a server restart drops Baileys and keeps everything it needs to resume', { timeout: 120000 }, async () => {
  const sim = await startSim();
  trustSimRoot(sim.info);
  const alice = new BaileysClient(sim, 'alice');
  const bob = new BaileysClient(sim, 'bob');
  const clients = [alice, bob];
  try {
    const a = await sim.post('/accounts', { push_name: 'Alice' });
    const b = await sim.post('/accounts', { push_name: 'Bob' });
    await alice.pair(a.pn);
    await bob.pair(b.pn);
    const before = await alice.sendText(b.jid, 'before restart');
    await bob.waitFor(() => bob.received.some((m) => m.id === before), 20000, 'before');
    bob.end();
    await eventually(async () => (await sim.get('/stats')).authenticated === 1, 10000, 'bob away');
    const queued = await alice.sendText(b.jid, 'queued across the restart');
    await eventually(async () => (await sim.get(`/queue?jid=${encodeURIComponent(bob.jid)}`)).length === 1, 10000, 'queued');

    alice.restartOn515 = false;
    await sim.post('/restart', { downtime_ms: 200 });
    await alice.waitFor(() => alice.closes.length > 1, 10000, 'alice dropped by the restart');

    const alice2 = relogin(sim, alice, 'alice-after');
    const bob2 = relogin(sim, bob, 'bob-after');
    clients.push(alice2, bob2);
    await alice2.waitFor(() => alice2.opens > 0, 20000, 'alice reconnects');
    await bob2.waitFor(() => bob2.received.some((m) => m.id === queued), 20000, 'queued message after restart');
    const after = await alice2.sendText(b.jid, 'after restart');
    await bob2.waitFor(() => bob2.received.some((m) => m.id === after && m.text === 'after restart'), 20000, 'new message after restart');
  } finally {
    for (const c of clients) c.end();
    await sim.close();
  }
});
