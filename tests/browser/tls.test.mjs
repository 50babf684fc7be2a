// HTTPS/WSS through rustls: a server with a certificate serves the page over https and the call
// connects over wss (browsers need a secure context for the camera off localhost).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from './browser.mjs';
import { startKham } from './server.mjs';

/** @type {Awaited<ReturnType<typeof startKham>>} */
let kham;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kham-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  // The self-signed certificate is trusted for this process's health check only.
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  kham = await startKham({
    https: true,
    extraEnv: { KHAM_HTTP__TLS_CERT: cert, KHAM_HTTP__TLS_KEY: key, KHAM_HTTP__HEADER_READ_TIMEOUT: '2s' },
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: false, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await kham?.stop();
});

test('the call page loads over https and signaling connects over wss', async () => {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  const link = await kham.joinLink({ room: 'tls-room', identity: 'dr-tls', name: 'BS. TLS', role: 'doctor' });
  assert.ok(link.startsWith('https://'), link);
  await page.goto(link);
  await page.click('[data-testid="join"]:not([disabled])');
  await page.waitForFunction(() => /** @type {any} */ (window).__kham?.me?.id, null, { timeout: 15_000 });
  const wsUrl = await page.evaluate(() => /** @type {any} */ (window).__kham.ws.url);
  assert.match(wsUrl, /^wss:\/\//, 'signaling runs over wss');
  assert.equal(await page.evaluate(() => window.isSecureContext), true);
});

/**
 * Resolves with the ms from `since` until `socket` closes; rejects if it is still open after
 * `limitMs`.
 * @param {net.Socket} socket @param {number} since @param {number} limitMs
 */
function closedWithin(socket, since, limitMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still open after ${limitMs} ms`)), limitMs);
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - since);
    });
  });
}

test('TLS: silent clients are closed after http.header_read_timeout; HTTP/2 is not offered', async () => {
  const port = Number(new URL(kham.baseUrl).port);
  // 2 s configured; room for a loaded machine, far below the 10 s rustls default.
  const limit = 2000 + 5000;
  // No ClientHello at all: the handshake timeout.
  const started = Date.now();
  const raw = net.connect(port, '127.0.0.1');
  const rawMs = await closedWithin(raw, started, limit);
  assert.ok(rawMs >= 1500, `closed after ${rawMs} ms, before the timeout`);
  // A finished handshake, then no request: the first-request timeout.
  const t = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'] });
  const closed = closedWithin(t, Date.now(), limit + 2000);
  await new Promise((resolve, reject) => {
    t.once('secureConnect', resolve);
    t.once('error', reject);
  });
  assert.equal(t.alpnProtocol, 'http/1.1', 'only HTTP/1.1 is offered');
  const handshaken = Date.now();
  await closed;
  const idleMs = Date.now() - handshaken;
  assert.ok(idleMs >= 1500 && idleMs <= limit, `closed ${idleMs} ms after the handshake`);
});
