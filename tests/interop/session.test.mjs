// Our session engine (wasmeow-session, driven through the `session-peer` binary) next to
// unmodified Baileys 7.0.0-rc14 clients on the local simulator (tests/sim).
//
// Build first:   cargo build --release -p wasmeow-sim -p wasmeow-interop-peer
// Run:           cd tests/interop && node --test session.test.mjs
//
// Everything talks to 127.0.0.1 only. The host pairs by QR (scanned by the sim's simulated
// phone); Baileys and our engine exchange end-to-end encrypted texts 1:1 and in a group the host
// created; the host promotes, demotes and removes a Baileys member, and Baileys sees each w:gp2
// change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSessionPeer } from './lib/session-peer.mjs';
import { startSim } from './lib/sim.mjs';
import { BaileysClient, trustSimRoot } from './lib/baileys-client.mjs';

const isText = (e, text) => e.kind === 'message' && e.content?.type === 'text' && e.content.text === text;

test('host pairs by QR, talks 1:1 and in a host-created group with two Baileys clients, and manages members', { timeout: 180000 }, async () => {
  const sim = await startSim();
  trustSimRoot(sim.info);
  const host = startSessionPeer(sim.info);
  const b1 = new BaileysClient(sim, 'b1');
  const b2 = new BaileysClient(sim, 'b2');
  const groupUpdates = { b1: [], b2: [] };
  try {
    const h = await sim.post('/accounts', { push_name: 'Host' });
    const a1 = await sim.post('/accounts', { push_name: 'B1' });
    const a2 = await sim.post('/accounts', { push_name: 'B2' });

    // The host shows a QR; the host account's simulated phone scans it.
    const qr = await host.waitEvent((e) => e.kind === 'connection' && e.state === 'qr', 20000, 'a QR code');
    assert.match(qr.code, /^https:\/\/wa\.me\/settings\/linked_devices#/);
    await sim.post('/scan', { qr: qr.code, pn: h.pn });
    await host.waitEvent((e) => e.kind === 'connection' && e.state === 'connected', 20000, 'host connected');
    const own = await host.call('own_jid');
    assert.equal(own.split(':')[0], h.pn);

    await b1.pair(a1.pn);
    await b2.pair(a2.pn);
    for (const [c, key] of [[b1, 'b1'], [b2, 'b2']]) {
      c.sock.ev.on('group-participants.update', (u) => { groupUpdates[key].push(u); c.notify(); });
    }

    // Baileys → host: the host decrypts it.
    const m1 = await b1.sendText(h.jid, 'hello host, from Baileys');
    const got = await host.waitEvent((e) => isText(e, 'hello host, from Baileys'), 20000, 'Baileys text at the host');
    assert.equal(got.info.id, m1);
    assert.equal(got.info.is_group, false);

    // Host → Baileys: Baileys decrypts it.
    const r1 = await host.call('send_text', { to: a1.jid, text: 'hi Baileys, from the host' });
    await b1.waitFor(() => b1.received.some((m) => m.id === r1.id && m.text === 'hi Baileys, from the host'), 20000, 'host text at b1');

    // A group created by the host with both Baileys clients.
    const info = await host.call('create_group', { subject: 'interop group', participants: [a1.jid, a2.jid] });
    assert.equal(info.participants.length, 3);
    const gid = info.jid;
    const g1 = await host.call('send_text', { to: gid, text: 'group hello from the host' });
    await b1.waitFor(() => b1.received.some((m) => m.id === g1.id && m.remoteJid === gid), 20000, 'host group text at b1');
    await b2.waitFor(() => b2.received.some((m) => m.id === g1.id && m.remoteJid === gid), 20000, 'host group text at b2');
    const g2 = await b1.sendText(gid, 'group hello from b1');
    const atHost = await host.waitEvent((e) => isText(e, 'group hello from b1'), 20000, 'b1 group text at the host');
    assert.equal(atHost.info.chat, gid);
    assert.equal(atHost.info.id, g2);
    await b2.waitFor(() => b2.received.some((m) => m.id === g2), 20000, 'b1 group text at b2');
    await b2.sendText(gid, 'group hello from b2');
    await host.waitEvent((e) => isText(e, 'group hello from b2'), 20000, 'b2 group text at the host');
    const g3 = await host.call('send_text', { to: gid, text: 'second round from the host' });
    await b2.waitFor(() => b2.received.some((m) => m.id === g3.id), 20000, 'second host group text at b2');

    // Promote, demote, remove: Baileys sees each w:gp2 change.
    const userOf = (jid) => jid.split('@')[0].split(':')[0];
    const sawAction = (key, action, who) => groupUpdates[key].some((u) => u.id === gid && u.action === action
      && u.participants.some((p) => { const j = typeof p === 'string' ? p : (p.phoneNumber ?? p.id ?? ''); return [a1.pn, a1.lid, a2.pn, a2.lid].includes(userOf(j)) && (userOf(j) === who.pn || userOf(j) === who.lid); }));
    await host.call('participants', { group: gid, action: 'promote', jids: [a1.jid] });
    await b1.waitFor(() => sawAction('b1', 'promote', a1), 20000, 'promote seen by b1');
    await b2.waitFor(() => sawAction('b2', 'promote', a1), 20000, 'promote seen by b2');
    await host.call('participants', { group: gid, action: 'demote', jids: [a1.jid] });
    await b1.waitFor(() => sawAction('b1', 'demote', a1), 20000, 'demote seen by b1');
    const removed = await host.call('participants', { group: gid, action: 'remove', jids: [a2.jid] });
    assert.ok(removed.every((r) => r.error === null || r.error === undefined), JSON.stringify(removed));
    await b1.waitFor(() => sawAction('b1', 'remove', a2), 20000, 'remove seen by b1');
    await b2.waitFor(() => sawAction('b2', 'remove', a2), 20000, 'remove seen by b2 (the removed member)');
    const after = await host.call('group_info', { group: gid });
    assert.equal(after.participants.length, 2);

    // The group still works for the remaining member, with a rotated sender key.
    const g4 = await host.call('send_text', { to: gid, text: 'after the removal' });
    await b1.waitFor(() => b1.received.some((m) => m.id === g4.id && m.text === 'after the removal'), 20000, 'post-removal text at b1');
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(!b2.received.some((m) => m.id === g4.id), 'the removed member gets nothing');
    assert.equal(host.events.filter((e) => e.kind === 'undecryptable').length, 0, 'the host decrypted everything');
  } finally {
    b1.end();
    b2.end();
    await host.close();
    await sim.close();
  }
});
