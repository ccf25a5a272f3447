// Locating and running the Rust peer programs (crate wasmeow-interop-peer) from
// the Node harness. `scripts/test-all.sh` builds them with
// `cargo build --release -p wasmeow-interop-peer` before running `node --test`.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Absolute path of a peer binary; throws a clear error if it was not built. */
export function peerBin(name) {
  const targetDir = process.env.CARGO_TARGET_DIR ?? join(repoRoot, 'target');
  const profile = process.env.WASMEOW_PEER_PROFILE ?? 'release';
  const path = join(targetDir, profile, name);
  if (!existsSync(path)) {
    throw new Error(`peer binary ${path} is missing: run \`cargo build --release -p wasmeow-interop-peer\``);
  }
  return path;
}

/**
 * Starts a peer binary that speaks JSON lines on stdin/stdout.
 * Returns { request(obj) -> Promise<obj>, lines: AsyncIterator<obj>, close() }.
 */
export function startJsonPeer(name, args = []) {
  const child = spawn(peerBin(name), args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const rl = createInterface({ input: child.stdout });
  const waiting = [];
  const queued = [];
  rl.on('line', (line) => {
    const msg = JSON.parse(line);
    const w = waiting.shift();
    if (w) w.resolve(msg); else queued.push(msg);
  });
  child.on('exit', (code) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`${name} exited with ${code}`));
  });
  return {
    child,
    next() {
      if (queued.length) return Promise.resolve(queued.shift());
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
    request(obj) {
      child.stdin.write(JSON.stringify(obj) + '\n');
      return this.next();
    },
    close() {
      child.stdin.end();
      return new Promise((r) => child.on('close', r));
    },
  };
}
