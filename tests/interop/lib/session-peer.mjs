// The `session-peer` binary (our session engine, wasmeow-session, on an in-memory store) as a
// process the Node harness drives: events are collected in order, commands are answered by
// `seq`. Build it with `cargo build --release -p wasmeow-interop-peer`.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { peerBin } from './peer.mjs';

/** The session-peer process: events are collected, commands answered by `seq`. */
export function startSessionPeer(info) {
  const child = spawn(peerBin('session-peer'), [info.ws_url, info.root_public_key], { stdio: ['pipe', 'pipe', 'inherit'] });
  const rl = createInterface({ input: child.stdout });
  const events = [];
  const pending = new Map();
  const listeners = new Set();
  let seq = 0;
  rl.on('line', (line) => {
    const msg = JSON.parse(line);
    if (msg.event) {
      events.push(msg.event);
      for (const l of listeners) l();
    } else if (pending.has(msg.reply)) {
      const { resolve, reject } = pending.get(msg.reply);
      pending.delete(msg.reply);
      if ('error' in msg) reject(new Error(msg.error)); else resolve(msg.ok);
    }
  });
  return {
    events,
    call(cmd, args = {}) {
      seq += 1;
      const id = seq;
      child.stdin.write(JSON.stringify({ seq: id, cmd, ...args }) + '\n');
      return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
    },
    waitEvent(pred, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const e = events.find(pred);
          if (e) { done(); resolve(e); }
        };
        const timer = setTimeout(() => { done(); reject(new Error(`session-peer: timed out after ${timeoutMs} ms waiting for ${what}`)); }, timeoutMs);
        const done = () => { clearTimeout(timer); listeners.delete(check); };
        listeners.add(check);
        check();
      });
    },
    close() {
      child.stdin.end();
      return new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => { clearTimeout(timer); resolve(); });
      });
    },
  };
}

