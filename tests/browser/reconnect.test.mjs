// The call survives a dropped signaling socket (issue 13): real Chromium against a real
// `kham serve --dev`. The station's page reaches kham through a TCP proxy in this process, so
// the test can cut its WebSocket (an abrupt close, as when a phone changes networks) or freeze it
// (no more bytes, no close: a TCP connection left hanging on the old network) while its media,
// which goes straight to kham's UDP port, is untouched.
//
// Asserted: the SDK resumes the same session (same participant id, `reconnected` with
// `resumed: true`); the doctor never sees the station leave or join again, and its tile stays;
// the station's audio reaching the doctor has no gap over 300 ms across the cut; a client-asked
// ICE restart renews the station's ICE credentials on the same peer connection while audio keeps
// flowing.
//
// Env: KHAM_BIN, KHAM_CHROMIUM, KHAM_TEST_VERBOSE as in call.test.mjs.
//   node --test reconnect.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { launchChromium, newPage } from './browser.mjs';
import { startKham } from './server.mjs';

/** @type {Awaited<ReturnType<typeof startKham>>} */
let kham;
/** @type {import('playwright-core').Browser} */
let browser;
/** @type {Awaited<ReturnType<typeof startProxy>>} */
let proxy;

/**
 * A TCP proxy to `target` on a free loopback port. `cut()` destroys every connection open now
 * (the browser sees an abnormal close); `freeze()` stops passing bytes on them without closing.
 * New connections pass normally.
 * @param {number} targetPort
 */
function startProxy(targetPort) {
  /** @type {Set<{client: net.Socket, upstream: net.Socket, frozen: boolean}>} */
  const links = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    const link = { client, upstream, frozen: false };
    links.add(link);
    client.on('data', (d) => { if (!link.frozen) upstream.write(d); });
    upstream.on('data', (d) => { if (!link.frozen) client.write(d); });
    const end = () => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (server.address());
      resolve({
        port,
        cut() {
          for (const l of links) {
            l.client.resetAndDestroy();
            l.upstream.destroy();
          }
        },
        freeze() {
          for (const l of links) l.frozen = true;
        },
        close: () => new Promise((r) => server.close(() => r(undefined))),
      });
    });
  });
}

before(async () => {
  kham = await startKham();
  proxy = await startProxy(Number(new URL(kham.baseUrl).port));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  proxy?.cut();
  await proxy?.close();
  await kham?.stop();
});

const ROOM = `reconnect-${process.pid}-${Date.now().toString(36)}`;

/**
 * Opens a join page and joins; `viaProxy`: the page (and so its WebSocket) goes through the proxy.
 * @param {string} name @param {object} who @param {boolean} viaProxy
 */
async function join(name, who, viaProxy) {
  const page = await newPage(browser, { name });
  const link = new URL(await kham.joinLink(who));
  if (viaProxy) link.port = String(proxy.port);
  await page.goto(link.toString());
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  // What the SDK reports, in order, from now on.
  await page.evaluate(() => {
    const client = /** @type {any} */ (window).__kham;
    const log = [];
    /** @type {any} */ (window).__log = log;
    for (const type of ['reconnecting', 'reconnected', 'participantleft', 'participantjoined', 'closed']) {
      client.addEventListener(type, (/** @type {CustomEvent} */ ev) => log.push({ type, at: Date.now(), detail: ev.detail }));
    }
  });
  await page.click('[data-testid="join"]');
  await page.waitForSelector('[data-testid="call"]:not([hidden])');
  return page;
}

/** @param {import('playwright-core').Page} page */
const eventsOf = (page) => page.evaluate(() => /** @type {any} */ (window).__log);

/**
 * Watches the audio received from `participantId` on `page` for `ms`: the longest time without
 * a new packet, and the packets received, polled every 50 ms.
 * @param {import('playwright-core').Page} page @param {string} participantId @param {number} ms
 */
function watchAudio(page, participantId, ms) {
  return page.evaluate(async ({ participantId, ms }) => {
    const client = /** @type {any} */ (window).__kham;
    const packets = async () => {
      const stats = await client.pc.getStats();
      let n = 0;
      stats.forEach((/** @type {any} */ s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'audio' && client.participantForMid(s.mid) === participantId) n += s.packetsReceived;
      });
      return n;
    };
    const start = Date.now();
    const first = await packets();
    let last = first;
    let lastAt = start;
    let longest = 0;
    while (Date.now() - start < ms) {
      await new Promise((r) => setTimeout(r, 50));
      const n = await packets();
      const now = Date.now();
      if (n > last) {
        longest = Math.max(longest, now - lastAt);
        last = n;
        lastAt = now;
      }
    }
    longest = Math.max(longest, Date.now() - lastAt);
    return { packets: last - first, longestGapMs: longest };
  }, { participantId, ms });
}

/** @param {import('playwright-core').Page} page */
const localUfrag = (page) => page.evaluate(async () => {
  const stats = await /** @type {any} */ (window).__kham.pc.getStats();
  let ufrag = null;
  stats.forEach((/** @type {any} */ s) => { if (s.type === 'transport') ufrag = s.iceLocalUsernameFragment; });
  return ufrag;
});

test('a dropped or hanging signaling socket is resumed; ICE restarts on request; nobody sees a leave', async () => {
  const doctor = await join('doctor', { room: ROOM, identity: 'bs-an', name: 'BS An', role: 'doctor' }, false);
  const station = await join('station', { room: ROOM, identity: 'tram-1', name: 'Trạm 1', role: 'station' }, true);
  const stationId = await station.evaluate(() => /** @type {any} */ (window).__kham.me.id);
  await doctor.waitForSelector(`[data-participant-id="${stationId}"] [data-testid="remote-video"]`, { timeout: 20_000 });
  await doctor.waitForFunction((id) => {
    const v = /** @type {HTMLVideoElement|null} */ (document.querySelector(`[data-participant-id="${id}"] video`));
    return !!v && v.getVideoPlaybackQuality().totalVideoFrames > 0;
  }, stationId, { timeout: 20_000 });

  // 1. The socket is cut: the station's audio goes on, the SDK resumes at once.
  const watching = watchAudio(doctor, stationId, 4_000);
  await new Promise((r) => setTimeout(r, 500));
  const cutAt = Date.now();
  proxy.cut();
  await station.waitForFunction(() => /** @type {any} */ (window).__log.some((e) => e.type === 'reconnected'), null, { timeout: 15_000 });
  const audio = await watching;
  const log = await eventsOf(station);
  const back = log.find((e) => e.type === 'reconnected');
  console.log(`cut: resumed after ${back.at - cutAt} ms; doctor got ${audio.packets} audio packets in 4 s, longest gap ${audio.longestGapMs} ms`);
  assert.equal(back.detail.resumed, true, 'the same session was resumed');
  assert.equal(await station.evaluate(() => /** @type {any} */ (window).__kham.me.id), stationId, 'same participant id');
  // 50 packets a second at Chromium's 20 ms, 17 at 60 ms (the server asks for 60 when a
  // listener's estimate falls below 110 kbit/s: on a loaded 2-core CI machine the doctor's
  // estimate can dip that far at the start of a loopback call, seen once in CI).
  assert.ok(audio.packets >= 55, `audio kept flowing (${audio.packets} packets in 4 s)`);
  assert.ok(audio.longestGapMs < 300, `no audio gap over 300 ms (${audio.longestGapMs} ms)`);
  await station.waitForSelector('[data-testid="reconnecting"]', { state: 'hidden' });

  // 2. An ICE restart asked by the client: new local credentials, same peer connection, audio on.
  const ufragBefore = await localUfrag(station);
  assert.ok(ufragBefore, 'the station has an ICE transport');
  await station.evaluate(() => /** @type {any} */ (window).__kham._askIceRestart(true));
  await station.waitForFunction(async (before) => {
    const stats = await /** @type {any} */ (window).__kham.pc.getStats();
    let ufrag = null;
    let state = null;
    stats.forEach((/** @type {any} */ s) => {
      if (s.type === 'transport') {
        ufrag = s.iceLocalUsernameFragment;
        state = s.iceState;
      }
    });
    return ufrag && ufrag !== before && state === 'connected';
  }, ufragBefore, { timeout: 15_000, polling: 200 });
  const afterRestart = await watchAudio(doctor, stationId, 2_000);
  console.log(`ICE restart: ufrag changed, then ${afterRestart.packets} audio packets in 2 s`);
  assert.ok(afterRestart.packets >= 25, `audio after the restart (${afterRestart.packets}; 17 a second at 60 ms)`);

  // 3. The socket hangs (no bytes, no close): the SDK notices the silence and resumes anew.
  const frozenAt = Date.now();
  proxy.freeze();
  await station.waitForFunction(() => /** @type {any} */ (window).__log.filter((e) => e.type === 'reconnected').length >= 2, null, { timeout: 30_000 });
  const again = (await eventsOf(station)).filter((e) => e.type === 'reconnected')[1];
  console.log(`frozen socket: resumed after ${again.at - frozenAt} ms`);
  assert.equal(again.detail.resumed, true);

  // The doctor saw no leave and no new join of the station, and kept its tile all along.
  const seen = (await eventsOf(doctor)).filter((e) => e.at >= cutAt);
  assert.deepEqual(seen.filter((e) => e.type === 'participantleft' || e.type === 'participantjoined').map((e) => e.type), [], JSON.stringify(seen));
  assert.equal(await doctor.locator(`[data-participant-id="${stationId}"]`).count(), 1);
  await doctor.waitForSelector(`[data-participant-id="${stationId}"][data-reconnecting="false"]`, { timeout: 10_000 });
  assert.deepEqual((await eventsOf(station)).filter((e) => e.type === 'closed'), []);
  const metrics = await (await fetch(`${kham.baseUrl}/metrics`, { headers: { authorization: `Bearer ${await kham.adminToken()}` } })).text();
  assert.match(metrics, /kham_resumes_total\{result="ok"\} [2-9]/, 'resumes counted');
  assert.match(metrics, /kham_ice_restarts_total [1-9]/, 'the restart counted');
});
