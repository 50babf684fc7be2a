// TURN (issue 13): a browser that can only use a relay gets the call through Debian's coturn,
// with the time-limited credentials kham hands out (TURN REST API: coturn's use-auth-secret).
// The test starts coturn itself on loopback (allow-loopback-peers: kham is on 127.0.0.1 too)
// and kham with `[turn]` pointing at it. The station's page forces `iceTransportPolicy: 'relay'`
// (as a browser behind a firewall that lets only the TURN server through would end up).
//
// Asserted: the station's selected local candidate is a relay (UDP to coturn); audio both ways;
// the credentials name the participant id, never its name; an expired but correctly signed
// credential gets no relay candidate (coturn refuses it), so no connection.
//
// Env: KHAM_BIN, KHAM_CHROMIUM, KHAM_TEST_VERBOSE as in call.test.mjs.
//   node --test turn.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchChromium, newPage } from './browser.mjs';
import { startKham, freeUdpPort } from './server.mjs';
import { audioBothWays, selectedPair } from './rtc-stats.mjs';

const SECRET = 'turn-test-secret-0123456789';
/** @type {Awaited<ReturnType<typeof startKham>>} */
let kham;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {import('node:child_process').ChildProcess} */
let coturn;
let coturnLog = '';
let turnPort = 0;

before(async () => {
  turnPort = await freeUdpPort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kham-coturn-'));
  const conf = path.join(dir, 'turnserver.conf');
  fs.writeFileSync(conf, [
    'use-auth-secret', `static-auth-secret=${SECRET}`, 'realm=kham.test',
    'listening-ip=127.0.0.1', 'relay-ip=127.0.0.1', `listening-port=${turnPort}`,
    'no-tls', 'no-dtls', 'no-cli', 'allow-loopback-peers', 'fingerprint',
    'min-port=49300', 'max-port=49400', 'log-file=stdout', 'simple-log', 'verbose',
    `pidfile=${path.join(dir, 'turnserver.pid')}`, `userdb=${path.join(dir, 'turndb')}`,
  ].join('\n'));
  coturn = spawn('turnserver', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  const collect = (d) => {
    coturnLog += d.toString();
    if (coturnLog.length > 400_000) coturnLog = coturnLog.slice(-200_000);
    if (process.env.KHAM_TEST_VERBOSE) process.stderr.write(`[coturn] ${d}`);
  };
  coturn.stdout.on('data', collect);
  coturn.stderr.on('data', collect);
  kham = await startKham({
    extraEnv: {
      KHAM_TURN__URLS: JSON.stringify([`turn:127.0.0.1:${turnPort}?transport=udp`]),
      KHAM_TURN__SECRET: SECRET,
    },
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await kham?.stop();
  coturn?.kill('SIGTERM');
});

const ROOM = `turn-${process.pid}-${Date.now().toString(36)}`;

/**
 * @param {string} name @param {object} who
 * @param {{relayOnly?: boolean, expired?: boolean}} [opts]  relayOnly: iceTransportPolicy relay;
 *   expired: the TURN credential replaced by one signed with the right secret that expired
 */
async function join(name, who, { relayOnly = false, expired = false } = {}) {
  const page = await newPage(browser, { name });
  if (relayOnly) {
    const past = Math.floor(Date.now() / 1000) - 60;
    const username = `${past}:p-expired`;
    const credential = crypto.createHmac('sha1', SECRET).update(username).digest('base64');
    await page.addInitScript(({ expired, username, credential }) => {
      const Native = window.RTCPeerConnection;
      const force = (/** @type {any} */ cfg) => {
        const c = { ...(cfg || {}), iceTransportPolicy: 'relay' };
        if (expired && Array.isArray(c.iceServers)) c.iceServers = c.iceServers.map((s) => ({ ...s, username, credential }));
        return c;
      };
      class Relayed extends Native {
        constructor(/** @type {any} */ cfg) { super(force(cfg)); }
        setConfiguration(/** @type {any} */ cfg) { return super.setConfiguration(force(cfg)); }
      }
      /** @type {any} */ (window).RTCPeerConnection = Relayed;
    }, { expired, username, credential });
  }
  await page.goto(await kham.joinLink(who));
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  await page.click('[data-testid="join"]');
  await page.waitForSelector('[data-testid="call"]:not([hidden])');
  return page;
}

test('a relay-only browser gets the call through coturn with the credentials kham hands out', async () => {
  const doctor = await join('doctor', { room: ROOM, identity: 'bs-chi', name: 'BS Chi', role: 'doctor' });
  const welcomeServers = await doctor.evaluate(() => /** @type {any} */ (window).__kham._iceServers);
  assert.equal(welcomeServers.length, 1);
  const doctorId = await doctor.evaluate(() => /** @type {any} */ (window).__kham.me.id);
  assert.match(welcomeServers[0].username, new RegExp(`^\\d+:${doctorId}$`), 'expiry:participant id, no name');
  const t0 = Date.now();
  const station = await join('station', { room: ROOM, identity: 'tram-3', name: 'Trạm 3', role: 'station' }, { relayOnly: true });
  await station.waitForFunction(() => {
    const v = /** @type {HTMLVideoElement|null} */ (document.querySelector('[data-testid="remote-video"]'));
    return !!v && v.getVideoPlaybackQuality().totalVideoFrames > 0;
  }, null, { timeout: 30_000, polling: 100 });
  console.log(`first remote frame through TURN ${Date.now() - t0} ms after the station's page opened`);
  const pair = await selectedPair(station);
  console.log(`station's selected local candidate: ${JSON.stringify(pair)}`);
  assert.equal(pair?.type, 'relay');
  assert.equal(pair?.relayProtocol, 'udp');
  const audio = await audioBothWays(station, doctor);
  console.log(`audio packets per 2 s through TURN (station, doctor): ${JSON.stringify(audio.windows)}`);
  assert.ok(audio.ok, `audio both ways in one of three 2 s windows: ${JSON.stringify(audio.windows)}`);
  const stationId = await station.evaluate(() => /** @type {any} */ (window).__kham.me.id);
  assert.ok(coturnLog.includes(stationId), 'coturn saw the participant id as the user');
  assert.ok(!coturnLog.includes('Trạm 3') && !coturnLog.includes('tram-3'), 'no name or identity reaches coturn');
});

test('an expired credential gets no relay, so no media', async () => {
  const late = await join('late', { room: ROOM, identity: 'tram-4', name: 'Trạm 4', role: 'station' }, { relayOnly: true, expired: true });
  await new Promise((r) => setTimeout(r, 8_000));
  assert.ok(await late.evaluate(() => !!(/** @type {any} */ (window).__kham.pc)), 'media was started');
  const pair = await selectedPair(late);
  console.log(`with an expired credential: ${JSON.stringify(pair)}`);
  assert.ok(!pair || pair.state !== 'connected', `no connection: ${JSON.stringify(pair)}`);
  const frames = await late.evaluate(() => [...document.querySelectorAll('[data-testid="remote-video"]')]
    .reduce((n, v) => n + /** @type {HTMLVideoElement} */ (v).getVideoPlaybackQuality().totalVideoFrames, 0));
  assert.equal(frames, 0);
  assert.match(coturnLog, /p-expired/, 'coturn was asked with the expired user');
});
