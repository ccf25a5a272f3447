// Echo throughput through the local simulator, our engine against Baileys, in one run.
//
//   cargo build --release -p wasmeow-sim -p wasmeow-interop-peer
//   cd tests/interop && node bench-session.mjs [round trips, default 1000]
//
// For each host — our session engine (the `session-peer` binary) and an unmodified Baileys
// 7.0.0-rc14 client — a simulated phone sends N texts (POST /phone/send-batch, 32 texts per
// call, 8 calls in flight); the host decrypts each and replies `re: <text>`; the phone decrypts
// the replies (counted with GET /phone/inbox-count). Printed: round trips/s and messages/s (two
// per round trip) for both, and the ratio. The phone side (HTTP control calls, simulated-phone
// crypto) is the same harness for both hosts; `cargo bench -p wasmeow-session --bench e2e`
// measures our engine without the HTTP hop.
import { startSim } from './lib/sim.mjs';
import { BaileysClient, trustSimRoot } from './lib/baileys-client.mjs';
import { startSessionPeer } from './lib/session-peer.mjs';

const N = Number(process.argv[2] ?? 1000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function measure(sim, hostJid, phonePn, label) {
  // Warm up: one exchange establishes the Signal sessions both ways before the burst.
  await sim.post('/phone/send', { pn: phonePn, to: hostJid, text: `warm ${label}` });
  for (let t = 0; !(await sim.get(`/phone/inbox?pn=${phonePn}`)).some((m) => m.text === `re: warm ${label}`); t++) {
    if (t > 1000) throw new Error(`${label}: no warm-up reply`);
    await sleep(20);
  }
  const inFlight = 8;
  const batch = 32;
  const start = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < N) {
      const texts = [];
      while (texts.length < batch && next < N) texts.push(`${label} ${next++}`);
      await sim.post('/phone/send-batch', { pn: phonePn, to: hostJid, texts });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const prefix = encodeURIComponent(`re: ${label} `);
  for (;;) {
    const { count: replies } = await sim.get(`/phone/inbox-count?pn=${phonePn}&prefix=${prefix}`);
    if (replies >= N) break;
    if (performance.now() - start > 600000) throw new Error(`${label}: only ${replies} of ${N} replies`);
    await sleep(20);
  }
  const seconds = (performance.now() - start) / 1000;
  return { roundTrips: N / seconds, messages: (2 * N) / seconds, seconds };
}

const sim = await startSim();
trustSimRoot(sim.info);
const results = {};
try {
  // Our engine.
  {
    const h = await sim.post('/accounts', { push_name: 'Host' });
    const p = await sim.post('/accounts', { push_name: 'Phone' });
    const host = startSessionPeer(sim.info);
    const qr = await host.waitEvent((e) => e.kind === 'connection' && e.state === 'qr', 20000, 'QR');
    await sim.post('/scan', { qr: qr.code, pn: h.pn });
    await host.waitEvent((e) => e.kind === 'connection' && e.state === 'connected', 20000, 'connected');
    await host.call('echo', { on: true });
    results.wasmeow = await measure(sim, h.jid, p.pn, 'w');
    console.log(`wasmeow-session: ${JSON.stringify(results.wasmeow)}`);
    await host.close();
  }
  // Baileys.
  {
    const h = await sim.post('/accounts', { push_name: 'Baileys host' });
    const p = await sim.post('/accounts', { push_name: 'Phone 2' });
    const b = new BaileysClient(sim, 'bench');
    await b.pair(h.pn);
    b.sock.ev.on('messages.upsert', ({ messages }) => {
      for (const m of messages) {
        const text = m.message?.conversation ?? m.message?.extendedTextMessage?.text;
        if (!m.key.fromMe && text && !m.key.remoteJid.endsWith('@g.us')) {
          b.sock.sendMessage(m.key.remoteJid, { text: `re: ${text}` }).catch(() => {});
        }
      }
    });
    results.baileys = await measure(sim, h.jid, p.pn, 'b');
    console.log(`baileys: ${JSON.stringify(results.baileys)}`);
    b.end();
  }
} finally {
  await sim.close();
}
const fmt = (r) => `${r.roundTrips.toFixed(0)} round trips/s, ${r.messages.toFixed(0)} messages/s (${r.seconds.toFixed(2)} s)`;
console.log(`echo, ${N} round trips through wasmeow-sim over HTTP-driven phones`);
console.log(`  wasmeow-session: ${fmt(results.wasmeow)}`);
console.log(`  Baileys rc14:    ${fmt(results.baileys)}`);
console.log(`  ratio: ${(results.wasmeow.messages / results.baileys.messages).toFixed(1)}x`);
