// Signal throughput on this machine: libsignal-node 6.0.0 (1:1 sessions) and Baileys
// 7.0.0-rc14 lib/Signal/Group (sender keys) against our implementation, same operations,
// printed as a ratio table.
//
//   cargo build --release -p wasmeow-interop-peer && node tests/interop/bench-signal.mjs
//
// Ours runs inside the release `signal-peer` binary (`bench` command: the loops of
// host/protocol/benches/signal.rs, timed in-process); `cargo bench -p wasmeow-protocol
// --bench signal` gives the same operations with criterion statistics. Operations:
//   setup       initiator builds a session from a bundle and encrypts 100 B; responder
//               decrypts the PreKeyWhisperMessage (X3DH on both sides + first DH ratchet)
//   same_chain  encrypt + decrypt 100 B on one sending chain (symmetric ratchet only)
//   ratchet     encrypt + decrypt 100 B, the sender alternating: a DH ratchet step per message
//   sender_key  group encrypt (XEdDSA sign) + decrypt (verify) 100 B
// Targets: ours >= 10x libsignal-node for the first three, >= 100x Baileys for sender keys.
import { performance } from 'node:perf_hooks';
import {
  GroupCipher, GroupSessionBuilder, SenderKeyDistributionMessage, SenderKeyName, SenderKeyRecord,
} from '@whiskeysockets/baileys/lib/Signal/Group/index.js';
import { NodeParty, libsignal, quietly, startRustPeer, ok } from './signal-lib.mjs';

const BODY = Buffer.alloc(100, 0x5a);
const seconds = Number(process.env.BENCH_SECONDS ?? 3);

/**
 * Runs `step` repeatedly for about `seconds` (after a short warm-up). Returns ops per
 * wall-clock second and ops per CPU second (process.cpuUsage: all of node's threads), the
 * latter being robust when other jobs share the machine.
 */
async function measure(step) {
  const warmEnd = performance.now() + 300;
  while (performance.now() < warmEnd) await step();
  let n = 0;
  const start = performance.now();
  const cpu = process.cpuUsage();
  const end = start + seconds * 1000;
  while (performance.now() < end) { await step(); n++; }
  const used = process.cpuUsage(cpu);
  return { wall: n / ((performance.now() - start) / 1000), cpu: n / ((used.user + used.system) / 1e6) };
}

async function nodeSetup() {
  const alice = new NodeParty('alice', 1);
  const bob = new NodeParty('bob', 2);
  bob.store.removePreKey = async () => {}; // reuse one bundle, as the Rust bench does
  const bundle = bob.bundle(1, 2);
  let i = 0;
  return measure(async () => {
    const peer = `bob${i}`;
    const self = `alice${i++}`;
    await alice.initiate(peer, bundle);
    const m = await alice.encrypt(peer, BODY);
    await bob.decrypt(self, m);
  });
}

async function established() {
  const alice = new NodeParty('alice', 1);
  const bob = new NodeParty('bob', 2);
  await alice.initiate('bob', bob.bundle(1, 2));
  await bob.decrypt('alice', await alice.encrypt('bob', BODY));
  await alice.decrypt('bob', await bob.encrypt('alice', BODY));
  return { alice, bob };
}

async function nodeSameChain() {
  const { alice, bob } = await established();
  const aCipher = new libsignal.SessionCipher(alice.store, alice.address('bob'));
  const bCipher = new libsignal.SessionCipher(bob.store, bob.address('alice'));
  return measure(async () => {
    const m = await aCipher.encrypt(BODY);
    await bCipher.decryptWhisperMessage(m.body);
  });
}

async function nodeRatchet() {
  const { alice, bob } = await established();
  const ciphers = [
    [new libsignal.SessionCipher(bob.store, bob.address('alice')), new libsignal.SessionCipher(alice.store, alice.address('bob'))],
    [new libsignal.SessionCipher(alice.store, alice.address('bob')), new libsignal.SessionCipher(bob.store, bob.address('alice'))],
  ];
  let i = 0;
  return measure(async () => {
    const [from, to] = ciphers[i++ % 2];
    const m = await from.encrypt(BODY);
    await to.decryptWhisperMessage(m.body);
  });
}

async function baileysSenderKey() {
  const records = new Map();
  const store = {
    async loadSenderKey(name) { return records.get(name.toString()) ?? new SenderKeyRecord(); },
    async storeSenderKey(name, record) { records.set(name.toString(), record); },
  };
  const mine = new SenderKeyName('g@g.us', { id: 'me', deviceId: 1, toString: () => 'me.1' });
  const theirs = new SenderKeyName('g@g.us', { id: 'them', deviceId: 1, toString: () => 'them.1' });
  const skdm = await new GroupSessionBuilder(store).create(mine);
  await new GroupSessionBuilder(store).process(
    theirs, new SenderKeyDistributionMessage(null, null, null, null, skdm.serialize()));
  const enc = new GroupCipher(store, mine);
  const dec = new GroupCipher(store, theirs);
  return measure(async () => { await dec.decrypt(await enc.encrypt(BODY)); });
}

async function ours(peer, op, reference) {
  // Size the run to about `seconds` from a short probe.
  const probe = await ok(peer, 'bench', { op, iterations: Math.max(10, Math.round(reference.wall / 10)) });
  const iterations = Math.max(50, Math.round(probe.ops_per_sec * seconds));
  const r = await ok(peer, 'bench', { op, iterations });
  return { wall: r.ops_per_sec, cpu: r.cpu_ops_per_sec };
}

const rows = [];
const peer = await startRustPeer(1);
try {
  await quietly(async () => {
    for (const [op, who, target, fn] of [
      ['setup', 'libsignal-node', 10, nodeSetup],
      ['same_chain', 'libsignal-node', 10, nodeSameChain],
      ['ratchet', 'libsignal-node', 10, nodeRatchet],
      ['sender_key', 'Baileys', 100, baileysSenderKey],
    ]) {
      const theirs = await fn();
      const mine = await ours(peer, op, theirs);
      rows.push({ op, who, theirs, mine, target });
    }
  });
} finally {
  await peer.close();
}

const fmt = (x) => (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));
const load = (await import('node:os')).loadavg()[0].toFixed(1);
console.log(`Signal throughput (ops/s), ${seconds}s per measurement, node ${process.version}, load ${load}`);
console.log('                              ---- per wall-clock second ----   ----- per CPU second ------');
console.log('operation    reference          reference   wasmeow    ratio     reference   wasmeow    ratio   target');
for (const r of rows) {
  const wallRatio = r.mine.wall / r.theirs.wall;
  const cpuRatio = r.mine.cpu / r.theirs.cpu;
  const verdict = Math.min(wallRatio, cpuRatio) >= r.target ? 'met' : 'MISSED';
  console.log(
    `${r.op.padEnd(12)} ${r.who.padEnd(15)} ${fmt(r.theirs.wall).padStart(12)} ${fmt(r.mine.wall).padStart(9)} ` +
    `${(wallRatio.toFixed(1) + 'x').padStart(8)}  ${fmt(r.theirs.cpu).padStart(12)} ${fmt(r.mine.cpu).padStart(9)} ` +
    `${(cpuRatio.toFixed(1) + 'x').padStart(8)}   >=${r.target}x ${verdict}`,
  );
}
