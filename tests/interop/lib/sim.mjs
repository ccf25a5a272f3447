// Starting the local WhatsApp-compatible server (crate wasmeow-sim, tests/sim) from the Node
// harness and calling its JSON control API.
//
// Build it first:  cargo build --release -p wasmeow-sim
// (scripts/test-all.sh does this before running `node --test`).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { repoRoot } from './peer.mjs';

/** Absolute path of the wasmeow-sim binary; throws a clear error if it was not built. */
export function simBin() {
  const targetDir = process.env.CARGO_TARGET_DIR ?? join(repoRoot, 'target');
  const profile = process.env.WASMEOW_PEER_PROFILE ?? 'release';
  const path = join(targetDir, profile, 'wasmeow-sim');
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: run \`cargo build --release -p wasmeow-sim\``);
  }
  return path;
}

/**
 * Starts a simulator. Resolves to { info, get(path), post(path, body), close() } where info is
 * what the binary printed: ws_url, wss_url, media_host, control_url, root_public_key, ca_pem.
 * The server exits when its stdin closes, so a crashed test never leaks it.
 */
export async function startSim(args = []) {
  const child = spawn(simBin(), ['--no-wss', ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const rl = createInterface({ input: child.stdout });
  const info = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('wasmeow-sim did not start within 20 s')), 20000);
    rl.once('line', (line) => {
      clearTimeout(timer);
      try { resolve(JSON.parse(line)); } catch (e) { reject(e); }
    });
    child.once('exit', (code) => reject(new Error(`wasmeow-sim exited with ${code}`)));
  });
  const call = async (method, path, body) => {
    const res = await fetch(info.control_url + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) {
      const err = new Error(`${method} ${path}: ${res.status} ${json.error}`);
      err.status = res.status;
      throw err;
    }
    return json;
  };
  return {
    info,
    child,
    get: (path) => call('GET', path),
    post: (path, body = {}) => call('POST', path, body),
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

/** Polls `predicate` until it returns a truthy value or `timeoutMs` passes. */
export async function eventually(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
