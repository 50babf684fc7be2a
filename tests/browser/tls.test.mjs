// HTTPS/WSS through rustls: a server with a certificate serves the page over https and the call
// connects over wss (browsers need a secure context for the camera off localhost).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
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
  kham = await startKham({ https: true, extraEnv: { KHAM_HTTP__TLS_CERT: cert, KHAM_HTTP__TLS_KEY: key } });
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
