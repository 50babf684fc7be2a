// Starting a real `kham serve --dev` on free loopback ports for a browser test, and minting
// join links for it with `kham token create`.
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import net from 'node:net';
import dgram from 'node:dgram';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const run = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** $KHAM_BIN, else the most recently built of target/{release,debug}/kham, else null. */
export function findBinary() {
  if (process.env.KHAM_BIN) return path.resolve(process.env.KHAM_BIN);
  const built = ['target/release/kham', 'target/debug/kham']
    .map((p) => path.join(REPO, p))
    .filter((p) => fs.existsSync(p))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  return built[0] || null;
}

/** A TCP port free on 127.0.0.1 right now. */
export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

/** A UDP port free on 127.0.0.1 right now. */
export function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Whether TCP `port` can be listened on at 127.0.0.1 right now. */
function tcpFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A port free on 127.0.0.1 for UDP and TCP alike: kham's media socket, and its ICE-TCP listener
 * on the same number (`media.ice_tcp`). A UDP port alone was once taken on TCP (CI: "binding
 * ICE-TCP ...: Address already in use", four tests of one file lost).
 */
export async function freeMediaPort() {
  for (let i = 0; i < 50; i++) {
    const port = await freeUdpPort();
    if (await tcpFree(port)) return port;
  }
  throw new Error('no port free on both UDP and TCP in 50 tries');
}

/**
 * Starts `kham serve --dev` with `extraEnv` on free ports and waits for /healthz.
 * `host`: the address kham listens on (HTTP and media), 127.0.0.1 by default; `httpPort`: its
 * HTTP port, a free one by default (a browser launched earlier may need to know the origin).
 * @param {{extraEnv?: Record<string, string>, https?: boolean, host?: string, httpPort?: number}} [opts]
 */
export async function startKham({ extraEnv = {}, https = false, host = '127.0.0.1', httpPort = 0 } = {}) {
  const bin = findBinary();
  if (!bin) throw new Error('no kham binary: build it (cargo build -p kham-server) or set KHAM_BIN');
  httpPort ||= await freeTcpPort();
  const udpPort = await freeMediaPort();
  const baseUrl = `${https ? 'https' : 'http'}://${host}:${httpPort}`;
  const env = {
    ...process.env,
    KHAM_HTTP__LISTEN: `${host}:${httpPort}`,
    ...(host === '127.0.0.1' ? {} : { KHAM_MEDIA__BIND: host }),
    KHAM_MEDIA__UDP_PORT: String(udpPort),
    ...extraEnv,
  };
  const proc = spawn(bin, ['serve', '--dev'], { env, cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const collect = (d) => {
    log += d.toString();
    if (log.length > 200_000) log = log.slice(-100_000);
    if (process.env.KHAM_TEST_VERBOSE) process.stderr.write(`[kham] ${d}`);
  };
  proc.stdout.on('data', collect);
  proc.stderr.on('data', collect);

  const end = Date.now() + 30_000;
  let last = '';
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`kham exited with ${proc.exitCode}\n${log}`);
    try {
      // Self-signed certificates in tests: node's fetch is told to accept them below.
      const res = await fetch(`${baseUrl}/healthz`);
      if (res.status === 200) break;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = String(err.cause?.code || err.message);
    }
    if (Date.now() > end) throw new Error(`${baseUrl}/healthz not healthy (${last})\n${log}`);
    await sleep(200);
  }

  return {
    baseUrl,
    /** The UDP media port (kham's socket on 127.0.0.1). */
    udpPort,
    log: () => log,
    /**
     * A join link from the kham CLI, pointed at this server.
     * `extra`: more `token create` arguments (e.g. `['--health-data', 'true']`).
     * @param {{room: string, identity: string, name: string, role: string, extra?: string[]}} who
     */
    async joinLink({ room, identity, name, role, extra = [] }) {
      const args = ['token', 'create', '--dev', '--room', room, '--identity', identity, '--name', name, '--role', role, ...extra, '--url'];
      const { stdout } = await run(bin, args, { env, cwd: REPO });
      const printed = new URL(stdout.trim().split('\n').filter(Boolean).pop() || '');
      return new URL(printed.pathname + printed.search, baseUrl).toString();
    },
    /**
     * A specialist-queue link from the kham CLI: a station's (`--queue`) or a doctor's duty
     * page (`--specialty NAME`, repeated), pointed at this server.
     * @param {{identity: string, name: string, specialties?: string[]}} who
     */
    async queueLink({ identity, name, specialties = [] }) {
      const kind = specialties.length ? specialties.flatMap((s) => ['--specialty', s]) : ['--queue'];
      const args = ['token', 'create', '--dev', ...kind, '--identity', identity, '--name', name, '--url'];
      const { stdout } = await run(bin, args, { env, cwd: REPO });
      const printed = new URL(stdout.trim().split('\n').filter(Boolean).pop() || '');
      return new URL(printed.pathname + printed.search, baseUrl).toString();
    },
    /** An operator token from the kham CLI (`token create --dev --admin`). */
    async adminToken() {
      const { stdout } = await run(bin, ['token', 'create', '--dev', '--admin'], { env, cwd: REPO });
      return stdout.trim();
    },
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}
