// Adaptive forwarding under a constrained link: real Chromium (fake camera and microphone)
// against a real `kham serve --dev`, with one subscriber's link shaped by Chromium's own WebRTC
// network emulation (DevTools `Network.emulateNetworkConditions`: rate, latency and, for WebRTC,
// `packetLoss`). Each room has a doctor publishing (720p fake camera, three simulcast layers) and
// two observers receiving it: one on the unshaped loopback link, one on the shaped link.
//
// The subscribers are observers, i.e. they send no media: what is asserted is what they receive,
// and a 2-core CI machine then encodes only the doctor's simulcast (three 720p encoders would
// push Chromium into CPU adaptation and make the figures noisy).
//
// Cases:
//   1. adaptation on, 300 kbit/s down, 150 ms, 3 % loss: the shaped page gets a lower layer than
//      the unshaped one; its audio flows with < 5 % concealment; frozen time is recorded.
//   2. adaptation off (KHAM_MEDIA__ADAPTATION=false), same link: frozen time is recorded and must
//      exceed case 1's.
//   3. adaptation on, 60 kbit/s down: the doctor's tile shows the "video paused" notice within
//      20 s while the audio goes on; the shaped participant's quality is not "excellent"; the
//      connection never drops and audio concealment stays under 4 % from 5 s after the notice on
//      (the 5 s before are logged: they drain what the start queued; joining
//      on such a link used to start with a high layer whose burst delayed audio and ICE checks
//      by seconds: the server now starts every subscription on the lowest layer).
//
// Notes on the emulation (Chromium 156, services/network/throttling): the WebRTC emulation is a
// webrtc::SimulatedNetwork per direction. The download direction's queue is unbounded (the
// `packetQueueLength` parameter only applies to the upload direction), so what is sent above the
// link rate is delayed, never dropped: a burst becomes seconds of queueing delay for every later
// packet, audio and ICE checks included. Every figure measured here is logged.
//
// Env: KHAM_BIN, KHAM_CHROMIUM, KHAM_TEST_VERBOSE as in call.test.mjs.
//   node --test weak-link.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, newPage, screenshot } from './browser.mjs';
import { startKham } from './server.mjs';

/** Frozen time of the doctor's video on a page over a window, the larger of two measures:
 *  - WebRTC's: the increase of inbound-rtp totalFreezesDuration (a freeze is an inter-frame gap
 *    of at least max(3 x the mean frame interval, mean + 150 ms), counted whole, once the next
 *    frame arrives) plus the gap still open at the window's end if it is at least FREEZE_MS.
 *    The open gap matters: a video that stalls, or that the SFU pauses for bandwidth (no frames
 *    at all), is not in totalFreezesDuration until it resumes, yet nothing moves on screen.
 *  - Polled: framesDecoded is read every SAMPLE_MS; every gap of at least FREEZE_MS between new
 *    frames counts whole, the gap open at the window's end included. Unlike WebRTC's adaptive
 *    threshold this does not get more lenient as the frame rate drops (at 2 fps WebRTC does not
 *    count one-second gaps), but it misses hitches shorter than FREEZE_MS in a fluid stream.
 * Either is a lower bound of the time without a moving picture. A gap already open when the
 * window starts counts from the window's start (WebRTC counts such a freeze whole; the total is
 * capped at the window's length). 600 ms is WebRTC's threshold for a 5 fps stream. */
const FREEZE_MS = 600;
const SAMPLE_MS = 100;
/** The link of the shaped subscriber in cases 1 and 2, and its rate in case 3. */
const WEAK = { downKbps: 300, upKbps: 300, latencyMs: 150, lossPct: 3 };
const STARVED_DOWN_KBPS = 60;
/** Warm-up after the shaped page joined, then the measurement window. */
const WARM_UP_MS = 15_000;
const WINDOW_MS = 15_000;
/** Opus at 20 ms: 50 packets a second. */
/** Opus plays out at 48 kHz in Chromium (totalSamplesReceived counts at that rate). */
const AUDIO_RATE = 48_000;

/** @type {Awaited<ReturnType<typeof startKham>>} */
let khamOn;
/** @type {Awaited<ReturnType<typeof startKham>>} */
let khamOff;
/** @type {import('playwright-core').Browser} */
let browser;
const started = Date.now();

before(async () => {
  [khamOn, khamOff] = await Promise.all([
    startKham(),
    startKham({ extraEnv: { KHAM_MEDIA__ADAPTATION: 'false' } }),
  ]);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await Promise.all([khamOn?.stop(), khamOff?.stop()]);
  console.log(`weak-link: total ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const visible = (testid) => `[data-testid="${testid}"]:not([hidden])`;
const tile = (id) => `[data-participant-id="${id}"]`;
let roomSeq = 0;
const nextRoom = () => `weak-${process.pid}-${Date.now().toString(36)}-${++roomSeq}`;

/**
 * CDP network conditions; rates in bytes/s as the protocol wants them. `packetLoss` applies to
 * WebRTC only (both directions); `packetQueueLength: 0` is the default unbounded queue.
 * @param {{downKbps: number, upKbps: number, latencyMs: number, lossPct: number}} l
 */
const conditions = (l) => ({
  offline: false,
  latency: l.latencyMs,
  downloadThroughput: (l.downKbps * 1000) / 8,
  uploadThroughput: (l.upKbps * 1000) / 8,
  packetLoss: l.lossPct,
  packetQueueLength: 0,
  packetReordering: false,
});

/**
 * Opens a join link in its own browser context and joins the call. With `link`, Chromium's
 * network emulation is applied on the page's CDP session after the page loaded and before the
 * join click, i.e. before the SDK opens its WebSocket and RTCPeerConnection. Records the SDK's
 * events (video_state, quality, connection state, closed) in `window.__events`.
 * @param {Awaited<ReturnType<typeof startKham>>} kham
 * @param {string} name
 * @param {{room: string, identity: string, name: string, role: string}} who
 * @param {{downKbps: number, upKbps: number, latencyMs: number, lossPct: number}} [link]
 */
async function join(kham, name, who, link) {
  const page = await newPage(browser, { name });
  await page.goto(await kham.joinLink(who));
  await page.waitForSelector('[data-testid="join"]:not([disabled])');
  if (link) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', conditions(link));
  }
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    const t0 = performance.now();
    w.__events = [];
    const rec = (type) => (/** @type {any} */ ev) =>
      w.__events.push({ t: Math.round(performance.now() - t0), type, detail: ev.detail });
    for (const type of ['videostate', 'quality', 'connectionstate', 'closed', 'packettime']) w.__kham.addEventListener(type, rec(type));
  });
  const t0 = Date.now();
  await page.click('[data-testid="join"]');
  await page.waitForSelector(visible('call'), { timeout: 30_000 });
  const id = await page.evaluate(() => /** @type {any} */ (window).__kham.me.id);
  return { page, id, joinedAt: t0 };
}

/**
 * A doctor publishing and two observers, one of them on `link`.
 * @param {Awaited<ReturnType<typeof startKham>>} kham
 * @param {{downKbps: number, upKbps: number, latencyMs: number, lossPct: number}} link
 */
async function openRoom(kham, link) {
  const room = nextRoom();
  const doctor = await join(kham, 'doctor', { room, identity: 'dr-an', name: 'BS. Nguyễn Văn An', role: 'doctor' });
  const free = await join(kham, 'free', { room, identity: 'sv-free', name: 'Phòng khám tỉnh', role: 'observer' });
  const weak = await join(kham, 'weak', { room, identity: 'sv-weak', name: 'Trạm y tế xã Tân Phú', role: 'observer' }, link);
  return { doctor, free, weak, close: () => Promise.all([doctor, free, weak].map((p) => p.page.context().close())) };
}

/**
 * The doctor's camera and what its simulcast encodings send now.
 * @param {import('playwright-core').Page} page
 */
function publisherState(page) {
  return page.evaluate(async () => {
    const pc = /** @type {any} */ (window).__kham.pc;
    const sender = pc.getSenders().find((/** @type {RTCRtpSender} */ s) => s.track && s.track.kind === 'video');
    const settings = sender ? sender.track.getSettings() : {};
    /** @type {Record<string, {height: number, fps: number, limitation: string}>} */
    const layers = {};
    (await pc.getStats()).forEach((/** @type {any} */ s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.rid) {
        layers[s.rid] = { height: s.frameHeight || 0, fps: Math.round(s.framesPerSecond || 0), limitation: s.qualityLimitationReason };
      }
    });
    return { camera: { width: settings.width, height: settings.height, fps: settings.frameRate }, layers };
  });
}

/**
 * The doctor's video as received on `page` now: frame height and frames decoded (null when the
 * page has no such video).
 * @param {import('playwright-core').Page} page
 * @param {string} publisherId
 */
function receivedVideo(page, publisherId) {
  return page.evaluate(async (publisherId) => {
    const c = /** @type {any} */ (window).__kham;
    if (!c.pc) return null;
    const tr = c.pc.getTransceivers().find((/** @type {RTCRtpTransceiver} */ t) =>
      t.mid && t.receiver.track.kind === 'video' && c.participantForMid(t.mid) === publisherId);
    if (!tr) return null;
    let out = null;
    (await tr.receiver.getStats()).forEach((/** @type {any} */ s) => {
      if (s.type === 'inbound-rtp') out = { height: s.frameHeight || 0, frames: s.framesDecoded || 0 };
    });
    return out;
  }, publisherId);
}

/**
 * Measures what `page` receives from `publisherId` for `ms`: the doctor's video polled every
 * SAMPLE_MS (frozen time as defined at FREEZE_MS, time per frame height, time paused by the
 * server), and its audio every second. Start and end figures come from inbound-rtp.
 * @param {import('playwright-core').Page} page
 * @param {string} publisherId
 * @param {number} ms
 */
function measure(page, publisherId, ms) {
  return page.evaluate(async ({ publisherId, ms, FREEZE_MS, SAMPLE_MS }) => {
    const c = /** @type {any} */ (window).__kham;
    const wait = (/** @type {number} */ d) => new Promise((r) => setTimeout(r, d));
    const receiver = (/** @type {string} */ kind) => {
      if (!c.pc) return null;
      const tr = c.pc.getTransceivers().find((/** @type {RTCRtpTransceiver} */ t) =>
        t.mid && t.receiver.track.kind === kind && c.participantForMid(t.mid) === publisherId);
      return tr ? tr.receiver : null;
    };
    const inbound = async (/** @type {string} */ kind) => {
      const r = receiver(kind);
      if (!r) return null;
      let out = null;
      (await r.getStats()).forEach((/** @type {any} */ s) => {
        if (s.type === 'inbound-rtp') out = s;
      });
      return out;
    };
    const pick = (/** @type {any} */ v) => v && {
      height: v.frameHeight || 0, width: v.frameWidth || 0, framesDecoded: v.framesDecoded || 0,
      freezeCount: v.freezeCount || 0, totalFreezesDuration: v.totalFreezesDuration || 0,
      fps: v.framesPerSecond || 0, bytes: v.bytesReceived || 0,
    };
    const pickAudio = (/** @type {any} */ a) => a && {
      packets: a.packetsReceived || 0, lost: a.packetsLost || 0, bytes: a.bytesReceived || 0,
      concealed: a.concealedSamples || 0, samples: a.totalSamplesReceived || 0,
    };

    const v0 = pick(await inbound('video'));
    const a0 = pickAudio(await inbound('audio'));
    const t0 = performance.now();
    const end = t0 + ms;
    let last = performance.now();
    let lastFrames = v0 ? v0.framesDecoded : 0;
    let lastChange = t0;
    let sampledMs = 0;
    let pausedMs = 0;
    /** @type {number[]} */
    const stalls = [];
    /** @type {Record<string, number>} */
    const heightMs = {};
    let height = v0 ? v0.height : 0;
    const audioPackets = [a0 ? a0.packets : 0];
    // Samples played from received audio (played minus concealed), sampled each second: how
    // much speech came through, whatever the packet time (20 or 60 ms, audio_rate).
    const heard = (/** @type {any} */ a) => (a ? (a.totalSamplesReceived || 0) - (a.concealedSamples || 0) : 0);
    const audioHeard = [a0 ? a0.samples - a0.concealed : 0];
    // Everything the page receives on its transport (media, repair, padding, RTCP), in bytes,
    // sampled with the audio packets: what the shaped link carried each second.
    const linkBytes = async () => {
      let b = 0;
      if (c.pc) {
        (await c.pc.getStats()).forEach((/** @type {any} */ s) => {
          if (s.type === 'transport') b += s.bytesReceived || 0;
        });
      }
      return b;
    };
    const linkPerSecond = [await linkBytes()];
    let nextAudio = t0 + 1000;
    let closed = false;
    while (performance.now() < end) {
      await wait(SAMPLE_MS);
      const now = Math.min(performance.now(), end);
      const dt = now - last;
      last = now;
      heightMs[height] = (heightMs[height] || 0) + dt;
      const state = c.videoStateOf(publisherId);
      if (state && state.paused) pausedMs += dt;
      if (!c.pc) {
        closed = true;
        continue;
      }
      const v = await inbound('video');
      if (v) {
        height = v.frameHeight || 0;
        const frames = v.framesDecoded || 0;
        if (frames > lastFrames) {
          const gap = now - lastChange;
          if (gap >= FREEZE_MS) {
            sampledMs += gap;
            stalls.push(Math.round(gap));
          }
          lastFrames = frames;
          lastChange = now;
        }
      }
      if (now >= nextAudio) {
        nextAudio += 1000;
        const a = await inbound('audio');
        audioPackets.push(a ? a.packetsReceived || 0 : audioPackets[audioPackets.length - 1]);
        audioHeard.push(a ? heard(a) : audioHeard[audioHeard.length - 1]);
        linkPerSecond.push(await linkBytes());
      }
    }
    const openGap = end - lastChange;
    const openStallMs = openGap >= FREEZE_MS ? Math.round(openGap) : 0;
    if (openStallMs) {
      sampledMs += openGap;
      stalls.push(openStallMs);
    }
    const v1 = pick(await inbound('video'));
    const a1 = pickAudio(await inbound('audio'));
    const webrtcFreezesMs = v0 && v1 ? Math.round(1000 * (v1.totalFreezesDuration - v0.totalFreezesDuration)) : 0;
    return {
      ms, frozenMs: Math.round(Math.min(ms, Math.max(webrtcFreezesMs + openStallMs, sampledMs))), webrtcFreezesMs, openStallMs,
      sampledStallMs: Math.round(sampledMs), pausedMs: Math.round(pausedMs), stalls, closed,
      heightMs: Object.fromEntries(Object.entries(heightMs).map(([h, t]) => [h, Math.round(t)])),
      video: { start: v0, end: v1 }, audio: { start: a0, end: a1, perSecond: audioPackets, heardPerSecond: audioHeard }, linkPerSecond,
      state: c.videoStateOf(publisherId), connection: c.pc ? c.pc.connectionState : 'closed',
    };
  }, { publisherId, ms, FREEZE_MS, SAMPLE_MS });
}

/** The frame height shown longest during a measurement. @param {{heightMs: Record<string, number>}} m */
const mainHeight = (m) => Number(Object.entries(m.heightMs).sort((a, b) => b[1] - a[1])[0]?.[0] || 0);
/** The largest frame height received during a measurement. @param {{heightMs: Record<string, number>}} m */
const maxHeight = (m) => Math.max(0, ...Object.keys(m.heightMs).map(Number));

/** A one-line account of a measurement. @param {string} name @param {Awaited<ReturnType<typeof measure>>} m */
function summarize(name, m) {
  const v0 = m.video.start;
  const v1 = m.video.end;
  const a0 = m.audio.start;
  const a1 = m.audio.end;
  const freezes = v0 && v1 ? `freezeCount +${v1.freezeCount - v0.freezeCount}` : 'no video stats';
  const frames = v0 && v1 ? `${v1.framesDecoded - v0.framesDecoded} frames, ${v1.width}x${v1.height} at ${v1.fps} fps, ${Math.round(((v1.bytes - v0.bytes) * 8) / m.ms)} kbit/s video` : '';
  const audio = a0 && a1
    ? `audio ${a1.packets - a0.packets} packets (${Math.round((a1.bytes - a0.bytes) / Math.max(1, a1.packets - a0.packets))} payload bytes each, lost ${a1.lost - a0.lost}), concealed ${(100 * concealment(m)).toFixed(2)} %`
    : 'no audio stats';
  return `${name}: frozen ${(m.frozenMs / 1000).toFixed(2)} s of ${(m.ms / 1000).toFixed(1)} s `
    + `(WebRTC: freezes ${(m.webrtcFreezesMs / 1000).toFixed(2)} s + open stall ${(m.openStallMs / 1000).toFixed(2)} s; `
    + `polled: gaps >= ${FREEZE_MS} ms ${(m.sampledStallMs / 1000).toFixed(2)} s ${JSON.stringify(m.stalls)}), `
    + `paused ${(m.pausedMs / 1000).toFixed(1)} s, ${freezes}; ${frames}; time per height ${JSON.stringify(m.heightMs)}; `
    + `${audio}, packets per second ${JSON.stringify(m.audio.perSecond.slice(1).map((p, i) => p - m.audio.perSecond[i]))}; `
    + `received kbit/s per second ${JSON.stringify(m.linkPerSecond.slice(1).map((b, i) => Math.round((8 * (b - m.linkPerSecond[i])) / 1000)))}; `
    + `connection ${m.connection}${m.closed ? ' (session closed)' : ''}`;
}

/** Concealed / received audio samples over a measurement. @param {Awaited<ReturnType<typeof measure>>} m */
function concealment(m) {
  const { start, end } = m.audio;
  if (!start || !end) return 1;
  const samples = end.samples - start.samples;
  return samples > 0 ? (end.concealed - start.concealed) / samples : 1;
}

/** The SDK events a page recorded, compacted for the log. @param {import('playwright-core').Page} page */
/**
 * The longest time between a 'disconnected' in an event log and the next 'connected' (to the
 * log's last event when it never came back), in ms.
 * @param {string} events  as eventLog returns it
 */
function longestDisconnect(events) {
  const entries = [...events.matchAll(/(\d+)ms (\w+)/g)].map((m) => ({ t: Number(m[1]), what: m[2] }));
  let longest = 0;
  /** @type {number|null} */
  let since = null;
  for (const e of entries) {
    if (e.what === 'disconnected' && since === null) since = e.t;
    else if (e.what === 'connected' && since !== null) {
      longest = Math.max(longest, e.t - since);
      since = null;
    }
  }
  if (since !== null) longest = Math.max(longest, Infinity);
  return longest;
}

async function eventLog(page) {
  const events = await page.evaluate(() => /** @type {any} */ (window).__events);
  return events.map((/** @type {any} */ e) => {
    const d = e.detail;
    if (e.type === 'videostate') {
      return `${e.t}ms video_state ${d.tracks.map((/** @type {any} */ s) => (s.paused ? `paused(${s.reason})` : `layer ${s.layer ? `${s.layer.spatial}/${s.layer.temporal}` : '?'}`)).join(',')}`;
    }
    if (e.type === 'quality') return `${e.t}ms quality ${d.participants.map((/** @type {any} */ q) => `${q.id.slice(0, 6)}=${q.quality}`).join(',')}`;
    if (e.type === 'connectionstate') return `${e.t}ms ${d.state}`;
    return `${e.t}ms ${e.type} ${JSON.stringify(d)}`;
  }).join(' | ');
}

/** The `data-quality` of a participant's tile on `page` now, null without tile or score.
 * @param {import('playwright-core').Page} page @param {string} id */
function qualityShown(page, id) {
  return page.evaluate((sel) => document.querySelector(sel)?.getAttribute('data-quality') ?? null, tile(id));
}

/**
 * Waits until `fn` returns a truthy value (polled every `every` ms); returns it, or the last
 * value after `timeout`.
 * @template T
 * @param {() => Promise<T>} fn
 */
async function poll(fn, { timeout, every = 500 }) {
  const end = Date.now() + timeout;
  let v = await fn();
  while (!v && Date.now() < end) {
    await sleep(every);
    v = await fn();
  }
  return v;
}

/** What the unshaped and the shaped page receive, after the warm-up, over one window. */
async function warmUpAndMeasure(room, label, { waitForFreeLayer }) {
  const { doctor, free, weak } = room;
  // The fake camera honours the 1280x720 constraint and all three layers go out.
  const pub = await poll(async () => {
    const s = await publisherState(doctor.page);
    return s.layers.f && s.layers.f.height >= 720 && s.layers.h && s.layers.q ? s : null;
  }, { timeout: 20_000 }) || await publisherState(doctor.page);
  console.log(`${label}: doctor camera ${JSON.stringify(pub.camera)}, layers sent ${JSON.stringify(pub.layers)}`);
  assert.equal(pub.camera.height, 720, 'the fake camera captures 720p');
  assert.ok(pub.layers.f && pub.layers.f.height >= 720, 'the top simulcast layer is 720p');

  const warmUpLeft = weak.joinedAt + WARM_UP_MS - Date.now();
  if (warmUpLeft > 0) await sleep(warmUpLeft);
  if (waitForFreeLayer) {
    // The unshaped page's estimate may start low (a loaded 2-core machine); the comparison is
    // only meaningful once it receives more than the lowest layer.
    const t0 = Date.now();
    const v = await poll(async () => {
      const r = await receivedVideo(free.page, doctor.id);
      return r && r.height >= 360 ? r : null;
    }, { timeout: 30_000 });
    console.log(`${label}: unshaped page at ${v ? v.height : 'less than 360'}p (waited ${Date.now() - t0} ms after the warm-up)`);
  }
  const [mFree, mWeak] = await Promise.all([
    measure(free.page, doctor.id, WINDOW_MS),
    measure(weak.page, doctor.id, WINDOW_MS),
  ]);
  console.log(summarize(`${label} unshaped`, mFree));
  console.log(summarize(`${label} shaped (${WEAK.downKbps} kbit/s, ${WEAK.latencyMs} ms, ${WEAK.lossPct} % loss)`, mWeak));
  console.log(`${label} shaped page events: ${await eventLog(weak.page)}`);
  return { mFree, mWeak };
}

/** Asserts that audio flowed through a whole measurement: in both halves, at least 40 % of the
 * time is played from received audio rather than concealed. Counted in samples, not packets:
 * the server may ask the publisher for 60 ms packets (audio_rate) while a listener's link is
 * thin, a third of the 20 ms packet rate for the same speech.
 * @param {string} what @param {Awaited<ReturnType<typeof measure>>} m */
function assertAudioFlows(what, m) {
  const h = m.audio.heardPerSecond;
  const half = Math.floor((h.length - 1) / 2);
  assert.ok(half >= 1, `${what}: audio sampled`);
  const first = h[half] - h[0];
  const second = h[h.length - 1] - h[half];
  const rest = h.length - 1 - half;
  const min = 0.4 * AUDIO_RATE * half;
  console.log(`${what}: received audio played ${(first / AUDIO_RATE).toFixed(1)} s of ${half} then ${(second / AUDIO_RATE).toFixed(1)} s of ${rest}`);
  assert.ok(first >= min && second >= min,
    `${what}: received audio keeps playing (${(first / AUDIO_RATE).toFixed(1)} s of ${half} then ${(second / AUDIO_RATE).toFixed(1)} s of ${rest}, at least ${(min / AUDIO_RATE).toFixed(1)} s in each)`);
}

/** @type {{frozenMs: number}|null} */
let frozenWithAdaptation = null;

test('adaptation on, 300 kbit/s / 150 ms / 3 % loss: a lower layer, audio intact', async () => {
  const room = await openRoom(khamOn, WEAK);
  try {
    const { mFree, mWeak } = await warmUpAndMeasure(room, 'adaptation on', { waitForFreeLayer: true });
    frozenWithAdaptation = mWeak;
    // Compared by the largest height each page received in the window: the unshaped page's
    // estimate can dip on a loaded machine, the shaped page must never reach its layer.
    const [maxFree, maxWeak] = [maxHeight(mFree), maxHeight(mWeak)];
    console.log(`adaptation on: received height unshaped ${mainHeight(mFree)}p (largest ${maxFree}p), shaped ${mainHeight(mWeak)}p (largest ${maxWeak}p)`);
    assert.ok(maxWeak > 0, 'the shaped page shows the doctor video');
    assert.ok(maxWeak < maxFree, `the shaped page gets a lower layer (at most ${maxWeak}p) than the unshaped one (${maxFree}p)`);
    assert.equal(mWeak.closed, false, 'the shaped session stays up');
    assertAudioFlows('adaptation on, shaped page', mWeak);
    const c = concealment(mWeak);
    assert.ok(c < 0.05, `concealed audio below 5 % (${(100 * c).toFixed(2)} %)`);

    // The server scores the shaped participant; the unshaped page shows it on its tile.
    const q = await qualityShown(room.free.page, room.weak.id);
    console.log(`adaptation on: shaped participant's quality as seen by the unshaped page: ${q}`);
    assert.ok(q && q !== 'excellent', `the shaped participant is not shown as excellent (${q})`);
    await screenshot(room.weak.page, 'weak-link-300k-shaped');
  } finally {
    await room.close();
  }
});

test('adaptation off, same link: more frozen video than with adaptation', async () => {
  const room = await openRoom(khamOff, WEAK);
  try {
    const { mWeak } = await warmUpAndMeasure(room, 'adaptation off', { waitForFreeLayer: false });
    const on = frozenWithAdaptation;
    console.log(`frozen time of the shaped page over ${WINDOW_MS / 1000} s: adaptation on ${on ? (on.frozenMs / 1000).toFixed(2) : '-'} s, adaptation off ${(mWeak.frozenMs / 1000).toFixed(2)} s`);
    console.log(`concealed audio of the shaped page: adaptation on ${on ? (100 * concealment(/** @type {any} */ (on))).toFixed(2) : '-'} %, adaptation off ${(100 * concealment(mWeak)).toFixed(2)} %`);
    assert.ok(on, 'the adaptation-on figure was measured (first test)');
    assert.ok(on.frozenMs < mWeak.frozenMs, `frozen time with adaptation (${on.frozenMs} ms) below without (${mWeak.frozenMs} ms)`);
  } finally {
    await room.close();
  }
});

test(`adaptation on, ${STARVED_DOWN_KBPS} kbit/s: the video pauses with a notice, the audio goes on`, async (t) => {
  const link = { ...WEAK, downKbps: STARVED_DOWN_KBPS };
  const room = await openRoom(khamOn, link);
  const { doctor, free, weak } = room;
  try {
    const notice = `${tile(doctor.id)} [data-testid="video-paused"][data-reason="bandwidth"]`;
    await weak.page.waitForSelector(notice, { timeout: Math.max(1000, weak.joinedAt + 20_000 - Date.now()) });
    const pausedAfter = Date.now() - weak.joinedAt;
    console.log(`${STARVED_DOWN_KBPS} kbit/s: "video paused" shown ${pausedAfter} ms after clicking join`);

    // The server scores the shaped participant; the unshaped page shows it on its tile. Right
    // after connecting there may be no link verdict yet; wait a little for one, but any score
    // other than "excellent" passes.
    const q = await poll(async () => {
      const v = await qualityShown(free.page, weak.id);
      return v === 'good' || v === 'poor' ? v : null;
    }, { timeout: 6000 }) || await qualityShown(free.page, weak.id);
    console.log(`${STARVED_DOWN_KBPS} kbit/s: shaped participant's quality as seen by the unshaped page: ${q}`);
    assert.ok(q && q !== 'excellent', `the shaped participant is not shown as excellent (${q})`);

    const m = await measure(weak.page, doctor.id, 5000);
    console.log(summarize(`${STARVED_DOWN_KBPS} kbit/s, 5 s after the notice`, m));
    console.log(`${STARVED_DOWN_KBPS} kbit/s shaped page events: ${await eventLog(weak.page)}`);
    const grew = m.audio.end && m.audio.start ? m.audio.end.packets - m.audio.start.packets : 0;
    // 50 packets a second are sent, 17 once the packet time is 60 ms; most must arrive.
    assert.ok(grew >= 50, `audio packets keep arriving while the video is paused (${grew} in 5 s)`);
    assert.ok(m.state && m.state.paused, 'still paused after the window');
    assert.equal(await weak.page.locator(notice).count(), 1, 'the notice is still shown');
    await screenshot(weak.page, 'weak-link-60k-paused');

    // A new subscriber starts on the lowest layer and video pauses at once when the estimate
    // is far below it, so the start does not queue seconds of video in front of the audio
    // (Chromium's emulated download queue is unbounded): the connection stays up and the
    // audio is clear.
    await t.test('the media connection stays up and the audio is clear once the start has drained', async () => {
      const settleMs = Math.max(1000, weak.joinedAt + 25_000 - Date.now());
      const settle = await measure(weak.page, doctor.id, settleMs);
      console.log(summarize(`${STARVED_DOWN_KBPS} kbit/s, until 25 s after join`, settle));
      const events = await eventLog(weak.page);
      console.log(`${STARVED_DOWN_KBPS} kbit/s shaped page events until then: ${events}`);
      // The connection never fails or closes. A 'disconnected' blip of a few milliseconds is
      // possible: the lowest layer's keyframe and first frames, forwarded for 1-2 s before the
      // estimate shows the link cannot carry them, queue seconds ahead on a 60 kbit/s link, and
      // one of Chromium's STUN checks answered behind that queue can time out (seen in about one
      // run in five, 17-30 ms long). Any such spell must end by itself within a second.
      assert.doesNotMatch(events, /failed|closed/, 'the connection never failed');
      const spell = longestDisconnect(events);
      console.log(`${STARVED_DOWN_KBPS} kbit/s: longest 'disconnected' spell ${spell} ms`);
      assert.ok(spell < 1000, `the connection came back by itself at once (${spell} ms disconnected)`);
      // While video is paused the link carries the audio alone and the audio is clear. The
      // first seconds after the notice are logged, not asserted: they drain what was queued
      // before the pause (the lowest layer's keyframe and about a second of its frames, the
      // estimator's initial probes) at what the audio leaves of the link, and their
      // concealment varies with the machine (15-34 % locally, 45 % in one CI run, 2026-12-04;
      // the open part of issue 14). Padding that keeps the link full during the pause showed
      // here as 5-16 % concealed (str0m's automatic padding, fixed 2026-12-04).
      const both = { audio: { start: m.audio.start, end: settle.audio.end } };
      console.log(`${STARVED_DOWN_KBPS} kbit/s: concealed audio from the notice on ${(100 * concealment(/** @type {any} */ (both))).toFixed(1)} %`);
      const c = concealment(settle);
      assert.ok(c < 0.04, `concealed audio from 5 s after the notice below 4 % (${(100 * c).toFixed(1)} %)`);
      // The server capped the doctor's Opus at 16 kbit/s for this listener and asked for 60 ms
      // packets (audio_rate; the SDK renegotiates with a=ptime:60): about 17 packets a second
      // instead of 50, a third of the headers, so the audio fits the thin link.
      const a0 = settle.audio.start;
      const a1 = settle.audio.end;
      const secs = settleMs / 1000;
      const pps = a0 && a1 ? (a1.packets - a0.packets) / secs : Infinity;
      const kbps = a0 && a1 ? (8 * (a1.bytes - a0.bytes)) / secs / 1000 : Infinity;
      console.log(`${STARVED_DOWN_KBPS} kbit/s: the doctor's audio arrives at ${pps.toFixed(1)} packets a second, ${kbps.toFixed(1)} kbit/s of payload`);
      assert.ok(kbps <= 21, `the doctor's audio arrives capped (${kbps.toFixed(1)} kbit/s of payload)`);
      assert.ok(pps <= 25, `the doctor's audio arrives in 60 ms packets (${pps.toFixed(1)} packets a second)`);
      assert.match(await eventLog(doctor.page), /packettime [^|]*"ptime":60/, 'the doctor was asked for 60 ms packets');
    });
  } finally {
    await room.close();
  }
});
