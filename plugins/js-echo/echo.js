// A wasmeow plugin in JavaScript: `!ping` -> `pong`, `!echo TEXT` -> `TEXT`
// (replies quoting the command), like the Rust `echo` plugin. Built with
// `npm install && npm run build` (componentize-js 0.22 from jco 1.35, SpiderMonkey,
// without wasi:http) into ../dist/js-echo.wasm. The host links WASI p2 for it,
// locked down: console.log output goes to the host log.
import { replyCurrent } from 'wasmeow:bot/messaging@0.2.0';
import { log } from 'wasmeow:bot/log@0.2.0';

let prefix = '!';

export function init(config) {
  console.log('js-echo init');
  const table = JSON.parse(config || '{}');
  if (typeof table.prefix === 'string' && table.prefix.length === 1) {
    prefix = table.prefix;
  }
}

// `info` says what the event is and carries a message's text, so this plugin
// never reads anything else of it (that would be `wasmeow:bot/current`).
export function handle(info) {
  if (info.kind !== 'message' || info.fromMe) return;
  const text = (info.text ?? '').trim();
  if (!text.startsWith(prefix)) return;
  const [name, ...rest] = text.slice(1).split(/\s+/);
  const args = rest.join(' ');
  let answer;
  if (name.toLowerCase() === 'ping') answer = 'pong';
  else if (name.toLowerCase() === 'echo' && args) answer = args;
  else return;
  try {
    replyCurrent(answer);
  } catch (e) {
    try { log('warn', `reply failed: ${JSON.stringify(e.payload ?? e)}`); } catch (_) {}
  }
}
