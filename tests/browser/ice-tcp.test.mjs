// ICE over TCP (issue 13): a browser that cannot use UDP still gets the call, through kham's
// passive ICE-TCP candidate (RFC 6544, RFC 4571 framing). Real Chromium against a real
// `kham serve --dev`; the station's page is kept off UDP by removing the server's UDP candidates
// from every remote description it applies (its browser then has no UDP pair to try, as behind
// a firewall that drops UDP). The doctor's page is unchanged (UDP).
//
// Asserted: the station's selected candidate pair is TCP, to kham's media port; audio flows both
// ways and the station decodes the doctor's video; junk sent to the TCP port (an HTTP request, an
// oversized frame) is closed by the server without disturbing the call.
//
// Env: KHAM_BIN, KHAM_CHROMIUM, KHAM_TEST_VERBOSE as in call.test.mjs.
//   node --test ice-tcp.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { launchChromium, newPage } from './browser.mjs';
import { startKham } from './server.mjs';
import { audioBothWays, audioPacketsIn, selectedPair } from './rtc-stats.mjs';

/** @type {Awaited<ReturnType<typeof startKham>>} */
let kham;
/** @type {import('playwright-core').Browser} */
let browser;

before(async () => {
  kham = await startKham();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await kham?.stop();
});

const ROOM = `icetcp-${process.pid}-${Date.now().toString(36)}`;

/** @param {string} name @param {object} who @param {boolean} noUdp */
async function join(name, who, noUdp) {
  const page = await newPage(browser, { name });
  if (noUdp) {
    await page.addInitScript(() => {
      const apply = RTCPeerConnection.prototype.setRemoteDescription;
      RTCPeerConnection.prototype.setRemoteDescription = function (desc) {
        if (desc && typeof desc.sdp === 'string') {
          const sdp = desc.sdp.split('\r\n').filter((l) => !(l.startsWith('a=candidate:') && / udp /i.test(l))).join('\r\n');
          desc = { type: desc.type, sdp };
        }
        return apply.call(this, desc);
      };
    });
  }
  await page.goto(await kham.joinLink(who));
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  await page.click('[data-testid="join"]');
  await page.waitForSelector('[data-testid="call"]:not([hidden])');
  return page;
}

/** Sends `bytes` to the TCP port and resolves with how the server ended the connection. */
function junk(port, bytes) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    const timer = setTimeout(() => {
      s.destroy();
      resolve('still open after 5 s');
    }, 5_000);
    s.on('data', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
    s.on('error', () => {});
  });
}

test('a browser without UDP joins over ICE-TCP; junk on the TCP port is closed', async () => {
  const doctor = await join('doctor', { room: ROOM, identity: 'bs-binh', name: 'BS Bình', role: 'doctor' }, false);
  const station = await join('station', { room: ROOM, identity: 'tram-2', name: 'Trạm 2', role: 'station' }, true);
  const t0 = Date.now();
  await station.waitForFunction(() => {
    const v = /** @type {HTMLVideoElement|null} */ (document.querySelector('[data-testid="remote-video"]'));
    return !!v && v.getVideoPlaybackQuality().totalVideoFrames > 0;
  }, null, { timeout: 30_000, polling: 100 });
  console.log(`first remote frame over ICE-TCP ${Date.now() - t0} ms after the station joined`);

  const pair = await selectedPair(station);
  console.log(`station's selected pair: ${JSON.stringify(pair)}`);
  assert.ok(pair, 'a selected candidate pair');
  assert.equal(pair.local, 'tcp');
  assert.equal(pair.remote, 'tcp');
  assert.equal(pair.port, kham.udpPort, 'the TCP listener mirrors the media port');

  const audio = await audioBothWays(station, doctor);
  console.log(`audio packets per 2 s (station, doctor): ${JSON.stringify(audio.windows)}`);
  assert.ok(audio.ok, `audio both ways in one of three 2 s windows: ${JSON.stringify(audio.windows)}`);

  // Junk on the ICE-TCP port: closed, the call unaffected.
  assert.equal(await junk(kham.udpPort, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'closed');
  assert.equal(await junk(kham.udpPort, Buffer.from([0xff, 0xff, 1, 2, 3])), 'closed');
  const afterJunk = await audioPacketsIn(station);
  assert.ok(afterJunk >= 70, `audio still flows to the station (${afterJunk})`);
  const metrics = await (await fetch(`${kham.baseUrl}/metrics`, { headers: { authorization: `Bearer ${await kham.adminToken()}` } })).text();
  assert.match(metrics, /kham_ice_tcp_connections_accepted_total [1-9]/, metrics.split('\n').filter((l) => l.includes('tcp')).join('\n'));
  assert.match(metrics, /kham_media_sessions\{path="tcp"\} [1-9]/, metrics.split('\n').filter((l) => l.includes('sessions')).join('\n'));
});
