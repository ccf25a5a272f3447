// Our Noise XX *server* role against a real client: unmodified Baileys 7.0.0-rc14 connects to the
// noise-server peer binary (cargo build --release -p wasmeow-interop-peer) over loopback.
//
// - Positive: Baileys trusts the server's test root (WA_CERT_DETAILS.PUBLIC_KEY, read at call
//   time; interop-baileys.md §3 "A robust way"), completes the handshake (our server decrypts a
//   ClientPayload with registration data), then decrypts and decodes the transport frame we send
//   (<iq type=set xmlns=md><pair-device><ref/></pair-device></iq>): it answers the iq and emits a
//   QR string built from our ref and the Noise key our server received.
// - Negative: a chain whose intermediate has issuer serial 1 makes Baileys abort the handshake
//   ("certification match failed"); Baileys does not check signatures (interop-baileys.md §3), so
//   a wrong-root chain is not a usable negative case.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import makeWASocket, { WA_CERT_DETAILS, initAuthCreds } from '@whiskeysockets/baileys';
import pino from 'pino';
import { startJsonPeer } from './lib/peer.mjs';

const PRODUCTION_ROOT = Buffer.from(WA_CERT_DETAILS.PUBLIC_KEY);
const STEP_TIMEOUT_MS = 15_000;

const cleanups = [];
afterEach(async () => {
  WA_CERT_DETAILS.PUBLIC_KEY = PRODUCTION_ROOT;
  for (const c of cleanups.splice(0).reverse()) await c();
});

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), STEP_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** An in-memory Signal key store in Baileys' `{ get, set }` shape. */
function memoryKeys() {
  const data = {};
  return {
    async get(type, ids) {
      const out = {};
      for (const id of ids) {
        const v = data[type]?.[id];
        if (v !== undefined) out[id] = v;
      }
      return out;
    },
    async set(update) {
      for (const [type, entries] of Object.entries(update)) {
        data[type] ??= {};
        for (const [id, v] of Object.entries(entries)) {
          if (v === null || v === undefined) delete data[type][id];
          else data[type][id] = v;
        }
      }
    },
  };
}

/** Starts the server (with `args`) and a fresh-creds Baileys socket pointed at it. */
async function connect(args = []) {
  const peer = startJsonPeer('noise-server', args);
  cleanups.push(() => {
    if (peer.child.exitCode === null) peer.child.kill();
  });
  const listening = await withTimeout(peer.next(), 'noise-server to listen');
  assert.equal(listening.event, 'listening');
  assert.match(listening.root_public_key, /^[0-9a-f]{64}$/);
  WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(listening.root_public_key, 'hex');

  const creds = initAuthCreds();
  const sock = makeWASocket({
    waWebSocketUrl: `ws://127.0.0.1:${listening.port}/ws/chat`,
    auth: { creds, keys: memoryKeys() },
    logger: pino({ level: 'silent' }),
    browser: ['Ubuntu', 'Chrome', '22.04.4'],
    shouldSyncHistoryMessage: () => false,
    markOnlineOnConnect: false,
    defaultQueryTimeoutMs: 5_000,
    connectTimeoutMs: 5_000,
  });
  cleanups.push(() => sock.end(undefined));

  let resolveQr, resolveClose;
  const qr = new Promise((r) => (resolveQr = r));
  const closed = new Promise((r) => (resolveClose = r));
  sock.ev.on('connection.update', (u) => {
    if (u.qr) resolveQr(u.qr);
    if (u.connection === 'close') resolveClose(u.lastDisconnect?.error);
  });
  return { peer, listening, creds, sock, qr, closed };
}

test('Baileys completes our server handshake and decrypts our transport frame', async () => {
  const { peer, listening, creds, sock, qr } = await connect();

  // 1. Our server completed the handshake: it decrypted Baileys' static key and ClientPayload.
  const hs = await withTimeout(peer.next(), 'the handshake report');
  assert.equal(hs.event, 'handshake', JSON.stringify(hs));
  assert.equal(hs.client_static, Buffer.from(creds.noiseKey.public).toString('hex'));
  assert.equal(hs.passive, false);
  assert.equal(hs.pull, false);
  assert.equal(hs.username, null, 'fresh creds do not log in');
  assert.equal(hs.has_device_pairing_data, true);
  const reg = hs.registration;
  assert.equal(reg.e_regid_len, 4);
  assert.equal(reg.e_keytype, '05');
  assert.equal(reg.e_ident_len, 32);
  assert.equal(reg.e_skey_id, '000001');
  assert.equal(reg.e_skey_val_len, 32);
  assert.equal(reg.e_skey_sig_len, 64);
  assert.match(reg.build_hash, /^[0-9a-f]{32}$/);
  assert.equal(hs.user_agent.platform, 14, 'WEB');
  assert.match(hs.user_agent.app_version, /^2\.3000\.\d+$/);
  assert.equal(hs.connect_type, 1, 'WIFI_UNKNOWN');
  assert.equal(hs.connect_reason, 1, 'USER_ACTIVATED');

  const sent = await withTimeout(peer.next(), 'the sent node');
  assert.equal(sent.event, 'sent_node');

  // 2. Baileys decrypted and decoded our frame: it answers the iq through its own transport...
  const reply = await withTimeout(peer.next(), 'the iq result from Baileys');
  assert.deepEqual(
    { event: reply.event, tag: reply.tag, type: reply.type, id: reply.id },
    { event: 'received_node', tag: 'iq', type: 'result', id: '1' },
  );

  // ...and shows a QR built from our ref and the Noise key our server saw.
  const qrString = await withTimeout(qr, 'connection.update { qr }');
  const [head, noisePub, identityPub, advSecret] = qrString.split(',');
  assert.equal(head, `https://wa.me/settings/linked_devices#${listening.ref}`);
  assert.equal(Buffer.from(noisePub, 'base64').toString('hex'), hs.client_static);
  assert.equal(Buffer.from(identityPub, 'base64').length, 32);
  assert.equal(Buffer.from(advSecret, 'base64').length, 32);

  sock.end(undefined);
  const last = await withTimeout(peer.next(), 'the server to see the close');
  assert.equal(last.event, 'closed', JSON.stringify(last));
});

test('Baileys rejects a chain whose intermediate issuer serial is not 0', async () => {
  const { peer, closed } = await connect(['--bad-issuer-serial']);
  const error = await withTimeout(closed, 'Baileys to close');
  assert.match(String(error?.message), /certification match failed/);
  const report = await withTimeout(peer.next(), 'the server report');
  assert.deepEqual(
    { event: report.event, stage: report.stage },
    { event: 'error', stage: 'client_finish' },
    JSON.stringify(report),
  );
});
