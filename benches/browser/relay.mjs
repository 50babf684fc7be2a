// Starting a kham-relay for one configuration, with per-client links from kham-relay option
// lists (`['--rate', '1mbit', '--delay', '75ms']`), and composing two links into one.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import dgram from 'node:dgram';

/**
 * An option list as a client spec entry (`--rate 1mbit` -> `{"rate": "1mbit"}`); numbers stay
 * numbers where the spec wants them (loss).
 * @param {string[]} args
 * @returns {Record<string, string|number>}
 */
export function specEntry(args) {
  /** @type {Record<string, string|number>} */
  const out = {};
  for (let i = 0; i < args.length; i += 2) {
    const key = args[i];
    const value = args[i + 1];
    if (!key.startsWith('--') || value === undefined) throw new Error(`bad link option list ${JSON.stringify(args)}`);
    const name = key.slice(2);
    out[name] = ['loss', 'uplink-loss', 'trace-scale'].includes(name) ? Number(value) : value;
  }
  return out;
}

/** `75ms` / `1s` / `0` -> milliseconds. @param {string|number|undefined} v */
function ms(v) {
  if (v === undefined) return 0;
  const m = /^([\d.]+)\s*(ms|s)?$/.exec(String(v));
  if (!m) throw new Error(`unsupported duration ${v}`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

/**
 * One link standing for a publisher's uplink followed by a subscriber's downlink (what a
 * direct call crosses), and the reverse path for what the subscriber sends back. Capacity: a
 * trace wins over a fixed rate (the publisher's uplink trace first), two fixed rates give the
 * smaller; delays add; losses combine.
 * @param {string[]} publisher @param {string[]} subscriber
 */
export function composeDirect(publisher, subscriber) {
  const p = specEntry(publisher);
  const s = specEntry(subscriber);
  /** @type {Record<string, string|number>} */
  const out = {};
  if (p['uplink-trace'] !== undefined) {
    out.trace = p['uplink-trace'];
    if (p['uplink-queue'] !== undefined) out.queue = p['uplink-queue'];
  } else if (s.trace !== undefined) {
    out.trace = s.trace;
    if (s['trace-scale'] !== undefined) out['trace-scale'] = s['trace-scale'];
  } else {
    const rates = [p['uplink-rate'], s.rate].filter((r) => r !== undefined);
    if (rates.length) out.rate = rates.sort((a, b) => bits(a) - bits(b))[0];
  }
  if (out.queue === undefined && s.queue !== undefined) out.queue = s.queue;
  const pUpDelay = p['uplink-delay'] ?? p.delay;
  out.delay = `${ms(pUpDelay) + ms(s.delay)}ms`;
  out['uplink-delay'] = `${ms(s['uplink-delay'] ?? s.delay) + ms(p.delay)}ms`;
  const jitter = Math.max(ms(s.jitter), ms(p.jitter));
  if (jitter) out.jitter = `${jitter}ms`;
  const both = (/** @type {any} */ a, /** @type {any} */ b) => 1 - (1 - Number(a || 0)) * (1 - Number(b || 0));
  const down = both(p['uplink-loss'] ?? p.loss, s.loss);
  const up = both(s['uplink-loss'] ?? s.loss, p.loss);
  if (down) out.loss = down;
  if (up !== down) out['uplink-loss'] = up;
  if (s['bursty-loss'] !== undefined) out['bursty-loss'] = s['bursty-loss'];
  return out;
}

/** `500kbit` / `2mbit` / `300000` -> bit/s. @param {string|number} r */
function bits(r) {
  const m = /^([\d.]+)\s*(bit|kbit|mbit|gbit)?$/.exec(String(r));
  if (!m) throw new Error(`unsupported rate ${r}`);
  return Number(m[1]) * ({ bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 }[m[2] || 'bit'] || 1);
}

/** A UDP port free on `ip` right now. @param {string} ip */
export function freeUdpPort(ip) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, ip, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts kham-relay on `listen` towards `upstream`, clients numbered by first datagram getting
 * `clients[i]` and later ones `fallback`. Stops with SIGTERM (the relay then writes its JSON
 * report to `<workDir>/relay-<name>.json`).
 * @param {{relayBin: string, workDir: string, name: string, listen: string, upstream: string,
 *   clients: Record<string, string|number>[], fallback?: Record<string, string|number>, seed: number,
 *   log: (msg: string) => void}} o
 */
export async function startRelay(o) {
  const specFile = path.join(o.workDir, `relay-${o.name}.spec.json`);
  fs.writeFileSync(specFile, JSON.stringify({ clients: o.clients, default: o.fallback ?? null }, null, 2));
  const args = ['--listen', o.listen, '--upstream', o.upstream, '--client-spec', specFile, '--seed', String(o.seed),
    '--stats-interval', '3600s', '--stats-json', path.join(o.workDir, `relay-${o.name}.json`)];
  const proc = spawn(o.relayBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let partial = '';
  const collect = (/** @type {Buffer} */ d) => {
    out += d.toString();
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() || '';
    for (const line of lines) if (/client \d+/.test(line)) o.log(`relay ${o.name}: ${line.trim()}`);
  };
  proc.stdout.on('data', collect);
  proc.stderr.on('data', collect);
  await new Promise((r) => setTimeout(r, 300));
  if (proc.exitCode !== null) throw new Error(`kham-relay ${args.join(' ')} exited with ${proc.exitCode}: ${out}`);
  return {
    output: () => out,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}
