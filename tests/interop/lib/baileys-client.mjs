// An unmodified Baileys 7.0.0-rc14 client configured for the local simulator
// (interop-baileys.md §11): loopback URL, in-memory auth state, silent logger, no history sync,
// and the sim's Noise root key installed as WA_CERT_DETAILS.PUBLIC_KEY so Baileys' own
// certificate check runs against it (§3).
import makeWASocket, { initAuthCreds, WA_CERT_DETAILS, proto } from '@whiskeysockets/baileys';
import pino from 'pino';

/** Trust the simulator's Noise root (the exported object is read at handshake time). */
export function trustSimRoot(info) {
  WA_CERT_DETAILS.PUBLIC_KEY = Buffer.from(info.root_public_key, 'hex');
}

/** Baileys' SignalKeyStore over plain objects. */
function memoryAuthState() {
  const creds = initAuthCreds();
  const data = {};
  const keys = {
    async get(type, ids) {
      const out = {};
      for (const id of ids) {
        let value = data[type]?.[id];
        if (value !== undefined && type === 'app-state-sync-key') {
          value = proto.Message.AppStateSyncKeyData.fromObject(value);
        }
        if (value !== undefined) out[id] = value;
      }
      return out;
    },
    async set(update) {
      for (const type of Object.keys(update)) {
        data[type] ??= {};
        for (const id of Object.keys(update[type])) {
          const value = update[type][id];
          if (value) data[type][id] = value; else delete data[type][id];
        }
      }
    },
  };
  return { creds, keys };
}

const textOf = (m) => m?.conversation ?? m?.extendedTextMessage?.text ?? null;

export class BaileysClient {
  constructor(sim, name, options = {}) {
    this.sim = sim;
    this.name = name;
    this.options = options;
    this.auth = memoryAuthState();
    this.received = [];      // { id, text, remoteJid, participant, upsertType }
    this.statuses = new Map(); // message id -> highest status seen
    this.errors = new Map();   // message id -> ack error code
    this.sent = new Map();     // message id -> proto.Message (for retries)
    this.qrs = [];
    this.opens = 0;
    this.closes = [];        // status codes of every close
    this.restartOn515 = true;
    this.listeners = new Set();
  }

  notify() { for (const l of this.listeners) l(); }

  start() {
    const sock = makeWASocket({
      waWebSocketUrl: this.sim.info.ws_url,
      auth: this.auth,
      logger: pino({ level: process.env.BAILEYS_LOG ?? 'silent' }),
      shouldSyncHistoryMessage: () => false,
      markOnlineOnConnect: false,
      defaultQueryTimeoutMs: 5000,
      connectTimeoutMs: 5000,
      browser: ['Ubuntu', 'Chrome', '22.04.4'],
      getMessage: async (key) => this.sent.get(key.id),
      ...this.options,
    });
    this.sock = sock;
    sock.ev.on('connection.update', (u) => {
      if (sock !== this.sock) return;
      if (u.qr) this.qrs.push(u.qr);
      if (u.connection === 'open') this.opens += 1;
      if (u.connection === 'close') {
        const code = u.lastDisconnect?.error?.output?.statusCode;
        this.closes.push(code);
        if (code === 515 && this.restartOn515) this.start();
      }
      this.notify();
    });
    sock.ev.on('messages.upsert', ({ messages, type }) => {
      for (const m of messages) {
        if (m.key.fromMe) {
          // Baileys folds updates into a buffered upsert of our own message (e.g. an error ack).
          if (m.status === proto.WebMessageInfo.Status.ERROR && m.messageStubParameters?.length) {
            this.errors.set(m.key.id, m.messageStubParameters[0]);
          }
          continue;
        }
        const text = textOf(m.message);
        if (text === null) continue;
        this.received.push({ id: m.key.id, text, remoteJid: m.key.remoteJid, participant: m.key.participant, upsertType: type });
      }
      this.notify();
    });
    sock.ev.on('messages.update', (updates) => {
      for (const { key, update } of updates) {
        if (update.status === proto.WebMessageInfo.Status.ERROR) {
          this.errors.set(key.id, update.messageStubParameters?.[0]);
        } else if (typeof update.status === 'number') {
          this.statuses.set(key.id, Math.max(this.statuses.get(key.id) ?? 0, update.status));
        }
      }
      this.notify();
    });
    return this;
  }

  /** Resolves when `predicate()` is truthy, re-checking on every event. */
  waitFor(predicate, timeoutMs, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        let v;
        try { v = predicate(); } catch (e) { done(); reject(e); return; }
        if (v) { done(); resolve(v); }
      };
      const timer = setTimeout(() => { done(); reject(new Error(`${this.name}: timed out after ${timeoutMs} ms waiting for ${what}`)); }, timeoutMs);
      const done = () => { clearTimeout(timer); this.listeners.delete(check); };
      this.listeners.add(check);
      check();
    });
  }

  /** Starts a fresh client, waits for its QR and has the sim's phone of `pn` scan it. */
  async pair(pn, timeoutMs = 20000) {
    this.start();
    const qr = await this.waitFor(() => this.qrs[0], timeoutMs, 'a QR code');
    const opensBefore = this.opens;
    const { jid } = await this.sim.post('/scan', { qr, pn });
    this.jid = jid;
    await this.waitFor(() => this.opens > opensBefore, timeoutMs, 'connection open after pairing');
    return jid;
  }

  async sendText(to, text) {
    const msg = await this.sock.sendMessage(to, { text });
    this.sent.set(msg.key.id, msg.message);
    return msg.key.id;
  }

  textsFrom(predicate = () => true) {
    return this.received.filter(predicate).map((m) => m.text);
  }

  end() {
    this.restartOn515 = false;
    try { this.sock?.end(undefined); } catch { /* already closed */ }
  }
}
