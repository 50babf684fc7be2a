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

/**
 * `relayIp` with its last octet + 100: the subscriber's relay of a configuration that gives each
 * side its own relay (kham, Janus).
 * @param {string} relayIp
 */
export function subscriberRelayIp(relayIp) {
  const o = relayIp.split('.').map(Number);
  if (o.length !== 4 || o[0] !== 127 || o[3] + 100 > 254) throw new Error(`relayIp ${relayIp}: need 127.x.y.z with z <= 154`);
  o[3] += 100;
  return o.join('.');
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
 * The old bypass, on demand, to check that the benchmark catches it: with
 * KHAM_BQ_UNSHAPED_FALLBACK=1 a relay that lists its first clients (p2p's) leaves every later
 * client on the relay's built-in default, no link at all, as the p2p relay did before 2026-12-03
 * (kham's and Janus's relays list none and keep their link). The run must then mark the
 * configurations whose traffic crossed such a client invalid.
 */
const UNSHAPED_FALLBACK = process.env.KHAM_BQ_UNSHAPED_FALLBACK === '1';

/**
 * Starts kham-relay on `listen` (an address, or `IP:FIRST-LAST` for a port range) towards
 * `upstream`. Clients numbered by first datagram get `clients[i]`, every later one `fallback`:
 * a browser reaches the relay from one address per local interface it gathers (eth0, Janus's
 * veth...), and each of those paths must cross the configuration's link, never an unshaped one.
 * `upstreamBind` fixes the source IP of what the relay sends upstream (so a peer sees the relay's
 * address, not the machine's). Resolves once the relay listens. Stops with SIGTERM (the relay then
 * writes its JSON report to `<dir>/relay-<name>.json`; `<dir>` defaults to the work folder).
 * @param {{relayBin: string, workDir: string, dir?: string, name: string, listen: string,
 *   upstream: string, upstreamBind?: string, clients: Record<string, string|number>[],
 *   fallback: Record<string, string|number>, seed: number, log: (msg: string) => void}} o
 */
export async function startRelay(o) {
  const dir = o.dir ?? o.workDir;
  const specFile = path.join(dir, `relay-${o.name}.spec.json`);
  const statsFile = path.join(dir, `relay-${o.name}.json`);
  const unshaped = UNSHAPED_FALLBACK && o.clients.length > 0;
  if (unshaped) o.log(`relay ${o.name}: KHAM_BQ_UNSHAPED_FALLBACK=1: later clients get NO link (checking the bypass check)`);
  fs.writeFileSync(specFile, JSON.stringify({ clients: o.clients, default: unshaped ? null : o.fallback }, null, 2));
  const args = ['--listen', o.listen, '--upstream', o.upstream, '--client-spec', specFile, '--seed', String(o.seed),
    '--stats-interval', '3600s', '--stats-json', statsFile];
  if (o.upstreamBind) args.push('--upstream-bind', o.upstreamBind);
  const proc = spawn(o.relayBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let partial = '';
  /** @type {() => void} */
  let listening = () => {};
  const ready = new Promise((resolve) => { listening = () => resolve(undefined); });
  const collect = (/** @type {Buffer} */ d) => {
    out += d.toString();
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() || '';
    for (const line of lines) {
      if (line.includes('listening on')) listening();
      if (/client \d+/.test(line)) o.log(`relay ${o.name}: ${line.trim()}`);
    }
  };
  proc.stdout.on('data', collect);
  proc.stderr.on('data', collect);
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const failed = exited.then((code) => { throw new Error(`kham-relay ${args.join(' ')} exited with ${code}: ${out}`); });
  /** @type {NodeJS.Timeout|undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`kham-relay ${o.name}: not listening after 10 s: ${out}`)), 10_000);
  });
  await Promise.race([ready, failed, timeout]).finally(() => clearTimeout(timer));
  failed.catch(() => {}); // exits later on stop(): not an error then
  const listenIp = o.listen.replace(/:[\d-]+$/, '');
  return {
    output: () => out,
    /** What the benchmark's link check reads (benches/src/browser/links.rs). */
    info: { name: o.name, stats: statsFile, spec: specFile, ip: listenIp },
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}
