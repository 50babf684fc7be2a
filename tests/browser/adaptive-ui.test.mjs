// Adaptive forwarding in the web client, in real Chromium against the protocol mock
// (mock-server.mjs plays the server: it pushes video_state / quality / publish_layers and
// records what the client sends). Covers the paused-video note (vi/en), the quality bars,
// the audio-only toggle, adaptive stream reports (video_view) and dynacast (publish_layers).
//
//   node --test adaptive-ui.test.mjs   (screenshots in $KHAM_SCREENSHOTS or $TMPDIR/kham-screenshots)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMockServer } from './mock-server.mjs';
import { launchChromium, newPage, screenshot } from './browser.mjs';

/** @type {Awaited<ReturnType<typeof startMockServer>>} */
let mock;
/** @type {import('playwright-core').Browser} */
let browser;
let roomSeq = 0;
const nextRoom = () => `adaptive-${process.pid}-${++roomSeq}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  mock = await startMockServer();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await mock?.close();
});

/**
 * Joins a room as a doctor (no lobby) and waits for the call screen and the published offer.
 * Counts HTMLMediaElement.pause() calls (remote sound must never be paused) and page errors.
 * @param {{lang?: 'vi'|'en', width?: number, height?: number, deviceScaleFactor?: number, name?: string}} [opts]
 */
async function joinCall(opts = {}) {
  const page = await newPage(browser, { name: opts.name || 'doctor', ...opts });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.context().addInitScript((lang) => {
    if (lang) localStorage.setItem('kham.lang', lang);
    const w = /** @type {any} */ (window);
    w.__pauseCalls = 0;
    const pause = HTMLMediaElement.prototype.pause;
    HTMLMediaElement.prototype.pause = function () {
      w.__pauseCalls += 1;
      return pause.call(this);
    };
  }, opts.lang || null);
  await page.goto(mock.joinLink(nextRoom(), 'BS. Nguyễn Văn An', 'doctor'));
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  await page.click('[data-testid="join"]');
  await page.waitForSelector('[data-testid="call"]:not([hidden])');
  const me = await page.evaluate(() => /** @type {any} */ (window).__kham.me.id);
  await waitFor(() => mock.sentBy(me, 'offer').length === 1, 'the client offer');
  return { page, me, errors };
}

/**
 * Makes remote participants appear, the way the server does: participant_joined, then the
 * mid -> participant mapping (audio + video per participant). Returns the video mid of each.
 * @param {string} me
 * @param {{id: string, name: string, role?: string}[]} people
 */
function addRemotes(me, people) {
  const tracks = [];
  let mid = 2; // 0 and 1 are the client's own audio and video
  /** @type {Record<string, string>} */
  const videoMid = {};
  for (const p of people) {
    mock.push(me, {
      type: 'participant_joined',
      participant: { id: p.id, name: p.name, role: p.role || 'patient', audio_muted: false, video_muted: false },
    });
    tracks.push({ mid: String(mid++), participant: p.id, kind: 'audio', active: true });
    videoMid[p.id] = String(mid);
    tracks.push({ mid: String(mid++), participant: p.id, kind: 'video', active: true });
  }
  mock.push(me, { type: 'tracks', tracks });
  return videoMid;
}

const tile = (id) => `[data-participant-id="${id}"]`;
const pausedIn = (id) => `${tile(id)} [data-testid="video-paused"]`;

/** @param {import('playwright-core').Page} page @param {string} id */
async function pausedNote(page, id) {
  return (await page.textContent(`${pausedIn(id)} [data-testid="video-paused-note"]`)).trim();
}

/** @param {import('playwright-core').Page} page @param {string} id */
function videoVisibility(page, id) {
  return page.$eval(`${tile(id)} video`, (v) => getComputedStyle(v).visibility);
}

test('a paused remote video shows the name, initials and why (vi, then en); resumed shows the video', async () => {
  const { page, me, errors } = await joinCall({ name: 'paused' });
  addRemotes(me, [{ id: 'p-binh', name: 'Trần Thị Bình' }, { id: 'p-tram', name: 'Trạm y tế xã Tân Phú', role: 'station' }]);
  await page.waitForSelector(tile('p-tram'));
  assert.equal(await page.locator(pausedIn('p-binh')).count(), 0, 'no note before any video_state');
  assert.equal(await videoVisibility(page, 'p-binh'), 'visible');

  // Bandwidth pause of one video, matched by participant; no_video of the other matched by mid only.
  mock.push(me, {
    type: 'video_state', tracks: [
      { mid: '3', participant: 'p-binh', paused: true, reason: 'bandwidth', layer: null },
      { mid: '5', paused: true, reason: 'no_video', layer: null },
    ],
  });
  await page.waitForSelector(`${pausedIn('p-binh')}[data-reason="bandwidth"]`);
  assert.equal(await pausedNote(page, 'p-binh'), 'Kết nối yếu, video tạm dừng');
  const panel = await page.textContent(pausedIn('p-binh'));
  assert.match(panel, /Trần Thị Bình/, 'the panel names the participant');
  assert.match(panel, /TB/, 'with initials');
  assert.equal(await videoVisibility(page, 'p-binh'), 'hidden');
  await page.waitForSelector(`${pausedIn('p-tram')}[data-reason="no_video"]`);
  assert.equal(await pausedNote(page, 'p-tram'), 'Chưa có hình');
  await screenshot(page, 'adaptive-paused-vi');

  // English after the language switch.
  await page.click('[data-testid="lang-toggle"]');
  assert.equal(await pausedNote(page, 'p-binh'), 'Weak connection, video paused');
  assert.equal(await pausedNote(page, 'p-tram'), 'No video yet');

  // Resumed: the note goes, the video shows again. The full list leaves p-tram paused.
  mock.push(me, {
    type: 'video_state', tracks: [
      { mid: '3', participant: 'p-binh', paused: false, reason: null, layer: { spatial: 1, temporal: 2 } },
      { mid: '5', participant: 'p-tram', paused: true, reason: 'no_video', layer: null },
    ],
  });
  await page.waitForSelector(pausedIn('p-binh'), { state: 'detached' });
  assert.equal(await videoVisibility(page, 'p-binh'), 'visible');
  assert.equal(await page.locator(pausedIn('p-tram')).count(), 1);
  mock.push(me, { type: 'video_state', tracks: [] });
  await page.waitForSelector(pausedIn('p-tram'), { state: 'detached' });

  assert.equal(await page.evaluate(() => /** @type {any} */ (window).__pauseCalls), 0, 'no media element was paused');
  const muted = await page.$$eval('[data-testid="remote-video"]', (vs) => vs.map((v) => /** @type {HTMLVideoElement} */ (v).muted));
  assert.deepEqual(muted, [false, false], 'remote sound stays on');
  assert.deepEqual(errors, []);
  await page.context().close();
});

test('quality bars on every tile follow the quality message (phone size, English)', async () => {
  const { page, me, errors } = await joinCall({ name: 'quality', lang: 'en', width: 390, height: 780 });
  addRemotes(me, [{ id: 'p-binh', name: 'Trần Thị Bình' }]);
  await page.waitForSelector(tile('p-binh'));
  const quality = (id) => page.getAttribute(tile(id), 'data-quality');
  assert.equal(await quality(me), null, 'no attribute before a score is known');
  assert.equal(await quality('p-binh'), null);
  assert.equal(await page.locator('[data-testid="quality"]').count(), 0);

  mock.push(me, { type: 'quality', participants: [{ id: me, quality: 'excellent' }, { id: 'p-binh', quality: 'poor' }] });
  await page.waitForSelector(`${tile('p-binh')}[data-quality="poor"]`);
  assert.equal(await quality(me), 'excellent');
  const bars = (id) => page.$eval(`${tile(id)} [data-testid="quality"]`, (el) => ({
    lit: el.querySelectorAll('i.on').length,
    all: el.querySelectorAll('i').length,
    label: el.getAttribute('aria-label'),
    title: el.getAttribute('title'),
  }));
  assert.deepEqual(await bars(me), { lit: 4, all: 4, label: 'Connection quality: excellent', title: 'Connection quality: excellent' });
  assert.deepEqual(await bars('p-binh'), { lit: 1, all: 4, label: 'Connection quality: poor', title: 'Connection quality: poor' });
  // The bars fit inside the small tiles of a phone.
  for (const id of [me, 'p-binh']) {
    const inside = await page.$eval(tile(id), (t) => {
      const a = t.getBoundingClientRect();
      const b = t.querySelector('[data-testid="quality"]').getBoundingClientRect();
      return b.width > 0 && b.left >= a.left && b.right <= a.right && b.top >= a.top && b.bottom <= a.bottom;
    });
    assert.ok(inside, `quality bars visible inside tile ${id === me ? 'self' : id}`);
  }
  await screenshot(page, 'adaptive-quality-phone-en');

  // An update for one participant (and one unknown id) changes only that tile.
  mock.push(me, { type: 'quality', participants: [{ id: 'p-binh', quality: 'lost' }, { id: 'p-nobody', quality: 'good' }] });
  await page.waitForSelector(`${tile('p-binh')}[data-quality="lost"]`);
  assert.equal(await quality(me), 'excellent');
  assert.equal((await bars('p-binh')).lit, 0);

  await page.click('[data-testid="lang-toggle"]');
  assert.equal((await bars('p-binh')).label, 'Chất lượng kết nối: mất kết nối');
  assert.equal((await bars(me)).label, 'Chất lượng kết nối: rất tốt');
  mock.push(me, { type: 'quality', participants: [{ id: 'p-binh', quality: 'good' }] });
  await page.waitForSelector(`${tile('p-binh')}[data-quality="good"]`);
  assert.equal((await bars('p-binh')).label, 'Chất lượng kết nối: tốt');
  assert.deepEqual(errors, []);
  await page.context().close();
});

test('the audio-only toggle sends audio_only and shows the note until the server resumes video', async () => {
  const { page, me, errors } = await joinCall({ name: 'audio-only', width: 390, height: 780 });
  addRemotes(me, [{ id: 'p-binh', name: 'Trần Thị Bình' }]);
  await page.waitForSelector(tile('p-binh'));
  const button = '[data-testid="audio-only"]';
  assert.equal((await page.textContent(button)).trim(), 'Chỉ âm thanh');
  assert.equal(await page.getAttribute(button, 'aria-pressed'), 'false');
  assert.equal(mock.sentBy(me, 'audio_only').length, 0);

  await page.click(button);
  await waitFor(() => mock.sentBy(me, 'audio_only').length === 1, 'audio_only sent');
  assert.deepEqual(mock.sentBy(me, 'audio_only')[0].msg, { type: 'audio_only', enabled: true });
  assert.equal(await page.getAttribute(button, 'aria-pressed'), 'true');
  await page.waitForSelector(`${pausedIn('p-binh')}[data-reason="audio_only"]`);
  assert.equal(await pausedNote(page, 'p-binh'), 'Chỉ âm thanh để tiết kiệm dữ liệu');
  // The mock confirmed with video_state (reason audio_only), as the server does.
  await page.waitForFunction(() => /** @type {any} */ (window).__kham.videoStateOf('p-binh')?.reason === 'audio_only');
  await screenshot(page, 'adaptive-audio-only-phone');

  await page.click(button);
  await waitFor(() => mock.sentBy(me, 'audio_only').length === 2, 'audio_only off sent');
  assert.deepEqual(mock.sentBy(me, 'audio_only')[1].msg, { type: 'audio_only', enabled: false });
  assert.equal(await page.getAttribute(button, 'aria-pressed'), 'false');
  await page.waitForSelector(pausedIn('p-binh'), { state: 'detached' });
  assert.equal(await videoVisibility(page, 'p-binh'), 'visible');

  await page.click('[data-testid="lang-toggle"]');
  assert.equal((await page.textContent(button)).trim(), 'Audio only');
  await page.click(button);
  await page.waitForSelector(`${pausedIn('p-binh')}[data-reason="audio_only"]`);
  assert.equal(await pausedNote(page, 'p-binh'), 'Audio only to save data');
  assert.equal(await page.evaluate(() => /** @type {any} */ (window).__pauseCalls), 0, 'no media element was paused');
  assert.deepEqual(errors, []);
  await page.context().close();
});

test('video_view reports remote tile sizes in device pixels, hidden tiles, at most ~4 per second', async () => {
  const { page, me, errors } = await joinCall({ name: 'views', width: 800, height: 600, deviceScaleFactor: 2 });
  const mids = addRemotes(me, [{ id: 'p-a', name: 'Trần Thị Bình' }, { id: 'p-b', name: 'Lê Văn Cường' }]);
  await page.waitForSelector(tile('p-b'));
  const views = () => mock.sentBy(me, 'video_view');
  const last = () => views().at(-1)?.msg.views || [];
  const viewOf = (id) => last().find((v) => v.mid === mids[id]);
  /** Expected device-pixel size of a tile's video element. */
  const expected = (id) => page.$eval(`${tile(id)} video`, (v) => {
    const r = v.getBoundingClientRect();
    return { width: Math.round(r.width * devicePixelRatio), height: Math.round(r.height * devicePixelRatio) };
  });
  const matches = async (id, visible) => {
    const v = viewOf(id);
    if (!v || v.visible !== visible) return false;
    if (!visible) return true;
    const e = await expected(id);
    return Math.abs(v.width - e.width) <= 2 && Math.abs(v.height - e.height) <= 2;
  };
  const until = async (cond, what) => {
    const end = Date.now() + 5000;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error(`timed out: ${what}; last video_view ${JSON.stringify(last())}`);
      await sleep(50);
    }
  };

  // Both remote tiles, visible, at their drawn size x devicePixelRatio 2 (the own tile is not reported).
  await until(async () => (await matches('p-a', true)) && (await matches('p-b', true)), 'both tiles reported');
  assert.deepEqual(last().map((v) => v.mid).sort(), [mids['p-a'], mids['p-b']].sort());
  const a = viewOf('p-a');
  const cssWidth = await page.$eval(`${tile('p-a')} video`, (v) => v.getBoundingClientRect().width);
  assert.ok(a.width > 200 && a.height > 100, `plausible size ${a.width}x${a.height}`);
  assert.ok(Math.abs(a.width - 2 * cssWidth) <= 2, 'device pixels, not CSS pixels');

  // Nothing changes: nothing is sent. A paused video's tile (picture hidden, panel shown) is
  // still on screen: it stays reported visible at its size, so the server can resume it.
  let count = views().length;
  mock.push(me, { type: 'video_state', tracks: [{ mid: mids['p-a'], participant: 'p-a', paused: true, reason: 'bandwidth', layer: null }] });
  await page.waitForSelector(pausedIn('p-a'));
  await sleep(800);
  assert.equal(views().length, count, 'no repeat of an unchanged report');
  assert.ok(await matches('p-a', true));

  // The page hides one tile with CSS: it is reported not visible, the other stays visible.
  // (Through the CSSOM: the page's Content-Security-Policy refuses inline <style> elements.)
  await page.evaluate((sel) => {
    document.querySelector(sel).style.setProperty('display', 'none', 'important');
  }, tile('p-b'));
  await until(async () => (await matches('p-b', false)) && (await matches('p-a', true)), 'hidden tile reported');
  assert.deepEqual({ width: viewOf('p-b').width, height: viewOf('p-b').height }, { width: 0, height: 0 });

  // A smaller window: new sizes.
  const before = viewOf('p-a');
  await page.setViewportSize({ width: 420, height: 700 });
  await until(() => matches('p-a', true), 'resized tile reported');
  assert.notDeepEqual({ w: viewOf('p-a').width, h: viewOf('p-a').height }, { w: before.width, h: before.height });

  // The page goes to the background (another app on the phone): nothing is visible.
  await page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await until(async () => last().length === 2 && last().every((v) => v.visible === false), 'page hidden reported');
  await page.evaluate(() => {
    // @ts-ignore
    delete document.visibilityState;
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await until(() => matches('p-a', true), 'page visible again');

  // Continuous resizing for ~1.5 s: reports keep coming but no more than 4 a second.
  count = views().length;
  // Send times as the page sends them: the mock's receive times also carry delivery jitter
  // (a loaded CI machine delivered one report 140 ms late, making the next gap look 185 ms).
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.__viewSends = [];
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      if (typeof data === 'string' && data.includes('"video_view"')) w.__viewSends.push(performance.now());
      return send.call(this, data);
    };
  });
  const start = Date.now();
  for (let i = 0; i < 50; i++) {
    await page.setViewportSize({ width: 420 + (i % 2 ? 0 : 60) + i * 4, height: 700 - i * 3 });
    await sleep(30);
  }
  const burstMs = Date.now() - start;
  await sleep(400);
  const burst = views().slice(count);
  const sends = await page.evaluate(() => /** @type {number[]} */ (/** @type {any} */ (window).__viewSends));
  assert.equal(sends.length, burst.length, 'every report sent was received');
  const gaps = sends.slice(1).map((t, i) => Math.round(t - sends[i]));
  console.log(`resize burst: ${burst.length} video_view in ${burstMs} ms, gaps ${gaps.join(',')} ms`);
  assert.ok(burst.length >= 3, `reports during a long resize (${burst.length})`);
  assert.ok(burst.length <= Math.ceil((burstMs + 400) / 250) + 1, `at most ~4/s (${burst.length} in ${burstMs + 400} ms)`);
  assert.ok(gaps.every((g) => g >= 200), `at least ~250 ms apart: ${gaps.join(',')}`);
  await until(() => matches('p-a', true), 'final size reported');

  // A participant who leaves is no longer reported.
  mock.push(me, { type: 'participant_left', id: 'p-a', reason: 'left' });
  await until(async () => last().length === 1 && last()[0].mid === mids['p-b'], 'left tile dropped');
  assert.deepEqual(errors, []);
  await page.context().close();
});

test('publish_layers switches the own simulcast encodings, in message order, and never throws', async () => {
  const { page, me, errors } = await joinCall({ name: 'dynacast' });
  const state = () => page.evaluate(() => {
    const pc = /** @type {any} */ (window).__kham.pc;
    const tr = pc.getTransceivers().find((t) => t.sender.track && t.sender.track.kind === 'video');
    return { mid: tr.mid, encodings: tr.sender.getParameters().encodings.map((e) => `${e.rid}:${e.active}`) };
  });
  const initial = await state();
  assert.deepEqual(initial.encodings, ['q:true', 'h:true', 'f:true']);
  const mid = initial.mid;
  assert.match(mock.sentBy(me, 'offer')[0].msg.sdp, new RegExp(`a=mid:${mid}[\\s\\S]*a=simulcast:send q;h;f`));
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.__layerEvents = [];
    w.__kham.addEventListener('publishlayers', (ev) => w.__layerEvents.push(ev.detail));
    // A slow setParameters (as on a busy phone) makes overlapping calls observable.
    w.__inFlight = 0;
    w.__maxInFlight = 0;
    const setParameters = RTCRtpSender.prototype.setParameters;
    RTCRtpSender.prototype.setParameters = async function (...args) {
      w.__inFlight += 1;
      w.__maxInFlight = Math.max(w.__maxInFlight, w.__inFlight);
      try {
        await new Promise((r) => setTimeout(r, 150));
        return await setParameters.apply(this, args);
      } finally {
        w.__inFlight -= 1;
      }
    };
  });
  const events = () => page.evaluate(() => /** @type {any} */ (window).__layerEvents);

  // Only the quarter layer is needed.
  mock.push(me, { type: 'publish_layers', mid, layers: [{ rid: 'h', active: false }, { rid: 'f', active: false }] });
  await page.waitForFunction(() => /** @type {any} */ (window).__layerEvents.length === 1);
  assert.deepEqual((await state()).encodings, ['q:true', 'h:false', 'f:false']);

  // Two messages back to back: applied one after the other, the last one wins.
  mock.push(me, { type: 'publish_layers', mid, layers: [{ rid: 'q', active: false }, { rid: 'h', active: true }, { rid: 'f', active: true }] });
  mock.push(me, { type: 'publish_layers', mid, layers: [{ rid: 'f', active: false }] });
  await page.waitForFunction(() => /** @type {any} */ (window).__layerEvents.length === 3);
  assert.deepEqual((await state()).encodings, ['q:false', 'h:true', 'f:false']);
  const ev = await events();
  /** @param {{rid: string, active: boolean}[]} e */
  const onOff = (e) => e.map(({ rid, active }) => ({ rid, active }));
  assert.deepEqual(onOff(ev[1].encodings), [{ rid: 'q', active: false }, { rid: 'h', active: true }, { rid: 'f', active: true }]);
  assert.deepEqual(onOff(ev[2].encodings), [{ rid: 'q', active: false }, { rid: 'h', active: true }, { rid: 'f', active: false }]);
  assert.equal(await page.evaluate(() => /** @type {any} */ (window).__maxInFlight), 1, 'one setParameters call at a time');

  // An unknown mid and a malformed layer list: logged, nothing changes, the session goes on.
  mock.push(me, { type: 'publish_layers', mid: '42', layers: [{ rid: 'q', active: true }] });
  mock.push(me, { type: 'publish_layers', mid, layers: [{ rid: 'q' }, 'x', null] });
  await page.waitForFunction(() => /** @type {any} */ (window).__layerEvents.length === 5);
  assert.equal((await events())[3].encodings, null);
  assert.deepEqual((await state()).encodings, ['q:false', 'h:true', 'f:false']);
  mock.push(me, { type: 'publish_layers', mid, layers: [{ rid: 'q', active: true }, { rid: 'h', active: true }, { rid: 'f', active: true }] });
  await page.waitForFunction(() => /** @type {any} */ (window).__layerEvents.length === 6);
  assert.deepEqual((await state()).encodings, ['q:true', 'h:true', 'f:true']);

  // The video floor and the encoder following the viewer: limits applied, then the defaults
  // back when the server leaves them out.
  const limits = () => page.evaluate(() => {
    const pc = /** @type {any} */ (window).__kham.pc;
    const tr = pc.getTransceivers().find((t) => t.sender.track && t.sender.track.kind === 'video');
    return tr.sender.getParameters().encodings.map((e) => [e.rid, e.maxBitrate, e.maxFramerate ?? null, e.scaleResolutionDownBy]);
  });
  mock.push(me, {
    type: 'publish_layers',
    mid,
    layers: [
      { rid: 'q', active: true, max_bitrate: 60_000, max_framerate: 15, scale_resolution_down_by: 8 },
      { rid: 'h', active: true, max_bitrate: 420_000 },
      { rid: 'f', active: false },
    ],
  });
  await page.waitForFunction(() => /** @type {any} */ (window).__layerEvents.length === 7);
  assert.deepEqual(await limits(), [['q', 60_000, 15, 8], ['h', 420_000, null, 2], ['f', 1_500_000, null, 1]]);
  mock.push(me, { type: 'publish_layers', mid, layers: [{ rid: 'q', active: true }, { rid: 'h', active: true }, { rid: 'f', active: true }] });
  await page.waitForFunction(() => /** @type {any} */ (window).__layerEvents.length === 8);
  assert.deepEqual(await limits(), [['q', 150_000, null, 4], ['h', 500_000, null, 2], ['f', 1_500_000, null, 1]]);
  assert.equal(await page.locator('[data-testid="call"]:not([hidden])').count(), 1);
  assert.deepEqual(errors, []);
  await page.context().close();
});

test('publish_layers caps a single encoding (the screen share) and returns it to the share default when the cap is left out', async () => {
  const { page, errors } = await joinCall({ name: 'share-cap' });
  // The SDK's own functions and defaults on a sender with one rid-less encoding, as the share's.
  const after = (/** @type {unknown[]} */ layers) => page.evaluate(async (layers) => {
    const { applyPublishLayers } = await import('/sdk/layers.js');
    const { PUBLISH_DEFAULTS } = await import('/sdk/kham.js');
    const { SHARE_ENCODING } = await import('/sdk/share.js');
    const w = /** @type {any} */ (window);
    if (!w.__sharePc) {
      const canvas = document.createElement('canvas');
      canvas.getContext('2d')?.fillRect(0, 0, 10, 10);
      const track = canvas.captureStream(5).getVideoTracks()[0];
      w.__sharePc = new RTCPeerConnection();
      w.__sharePc.addTransceiver(track, { direction: 'sendonly', sendEncodings: [{ ...SHARE_ENCODING }] });
      await w.__sharePc.setLocalDescription();
    }
    const pc = w.__sharePc;
    const tr = pc.getTransceivers()[0];
    const out = await applyPublishLayers(pc, tr.mid, layers, PUBLISH_DEFAULTS);
    const enc = tr.sender.getParameters().encodings[0];
    return { out, maxBitrate: enc.maxBitrate ?? null, active: enc.active !== false, scale: enc.scaleResolutionDownBy ?? null };
  }, layers);
  const capped = await after([{ rid: '', active: true, max_bitrate: 95_000 }]);
  assert.equal(capped.maxBitrate, 95_000, 'the cap is applied to the only encoding');
  assert.equal(capped.active, true);
  // A wish to stop or scale it is not applied: only its bitrate is the server's.
  const stopped = await after([{ rid: '', active: false, max_bitrate: 80_000, scale_resolution_down_by: 4 }]);
  assert.deepEqual([stopped.maxBitrate, stopped.active, stopped.scale], [80_000, true, capped.scale]);
  // Cap left out: back to the share's default, not uncapped.
  const lifted = await after([{ rid: '', active: true }]);
  assert.equal(lifted.maxBitrate, 1_200_000);
  // Simulcast rids mean nothing to it.
  const other = await after([{ rid: 'q', active: true, max_bitrate: 30_000 }]);
  assert.equal(other.maxBitrate, 1_200_000);
  assert.deepEqual(errors, []);
  await page.context().close();
});

test('against a server without adaptive messages the client stops sending them and shows no error', async () => {
  mock.rejectTypes.add('video_view');
  mock.rejectTypes.add('audio_only');
  try {
    const { page, me, errors } = await joinCall({ name: 'old-server' });
    addRemotes(me, [{ id: 'p-binh', name: 'Trần Thị Bình' }]);
    await waitFor(() => mock.sentBy(me, 'video_view').length === 1, 'first video_view');
    await page.click('[data-testid="audio-only"]');
    await waitFor(() => mock.sentBy(me, 'audio_only').length === 1, 'first audio_only');
    // Still shown locally: the user asked for no video.
    await page.waitForSelector(`${pausedIn('p-binh')}[data-reason="audio_only"]`);
    await page.setViewportSize({ width: 600, height: 500 });
    await page.click('[data-testid="audio-only"]');
    await page.click('[data-testid="audio-only"]');
    await sleep(700);
    assert.equal(mock.sentBy(me, 'video_view').length, 1, 'no more video_view after unknown_type');
    assert.equal(mock.sentBy(me, 'audio_only').length, 1, 'no more audio_only after unknown_type');
    assert.equal(await page.locator('#toast:not([hidden])').count(), 0, 'no error toast');
    assert.deepEqual(errors, []);
    await page.context().close();
  } finally {
    mock.rejectTypes.clear();
  }
});

/** Polls a condition (in the test process) until true or times out. */
async function waitFor(cond, what, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}
